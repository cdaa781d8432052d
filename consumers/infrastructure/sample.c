/*
 * sample.c - the sampler: what the cluster and the consumer groups look
 * like now, written into the group's database, and the snapshot event the
 * console follows (see infra.h for when it runs and what it writes).
 *
 * Cost per sample (one broker): Metadata, ListOffsets (high watermarks),
 * ListGroups, DescribeGroups, one OffsetFetch per consumer group, and a
 * Fetch only for lagging partitions whose committed offset moved since the
 * last sample (message timestamps are cached by offset); every
 * OMNIFY_INFRA_CONFIGS_S also DescribeConfigs and ListOffsets (low
 * watermarks). Store cost: the topics that changed, one document per
 * consumer group, one history push per group, three small documents.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "codec.h"
#include "docjson.h"
#include "infra.h"
#include "log.h"
#include "msgid.h"

/* Cached message timestamps at most; the cache is emptied beyond. */
#define INFRA_TS_CACHE_MAX 20000

struct infra_sampler {
        uint64_t prev_ms;       /* wall clock of the previous sample */
        json_t *prev_ends;      /* topic -> sum of high watermarks */
        json_t *prev_committed; /* group id -> sum of committed offsets */
        json_t *written;        /* topic -> JSON text last written */
        json_t *windows;        /* group id -> {"t|p": [[c, lag]...]} */
        json_t *ts_cache;       /* "t|p|offset" -> timestamp ms */
        json_t *configs;        /* topic -> {retention_ms, ...} */
        json_t *lows;           /* "t|p" -> low watermark */
        uint64_t configs_ms;    /* when configs were last read */
};

infra_sampler_t *infra_sampler_new(void) {
        infra_sampler_t *s = xcalloc(1, sizeof(*s));
        s->prev_ends = json_object();
        s->prev_committed = json_object();
        s->written = json_object();
        s->windows = json_object();
        s->ts_cache = json_object();
        s->configs = json_object();
        s->lows = json_object();
        return s;
}

void infra_sampler_destroy(infra_sampler_t *s) {
        if (!s)
                return;
        json_decref(s->prev_ends);
        json_decref(s->prev_committed);
        json_decref(s->written);
        json_decref(s->windows);
        json_decref(s->ts_cache);
        json_decref(s->configs);
        json_decref(s->lows);
        free(s);
}

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static json_t *infra__int_or_null(int64_t v) {
        return v == KADMIN_UNKNOWN ? json_null() : json_integer(v);
}

/* The instance in a member's client id "<group id>-consumer/<instance>". */
static const char *infra__member_instance(const char *client_id) {
        const char *slash = strstr(client_id, "-consumer/");
        return slash ? slash + strlen("-consumer/") : "";
}

/* ---------------------------------------------------------------------------
 * Cluster
 * ------------------------------------------------------------------------ */

/* Configs and low watermarks from the last read that had them. */
static void infra__fill_configs(infra_sampler_t *s, kadmin_cluster_t *c,
                                bool fresh) {
        char key[320];
        for (size_t i = 0; i < c->n_topics; i++) {
                kadmin_topic_t *t = &c->topics[i];
                json_t *cf;
                if (fresh && t->retention_ms != KADMIN_UNKNOWN) {
                        json_object_set_new(
                                s->configs, t->name,
                                json_pack("{s:I, s:I, s:s}", "retention_ms",
                                          (json_int_t)t->retention_ms,
                                          "retention_bytes",
                                          (json_int_t)t->retention_bytes,
                                          "cleanup", t->cleanup));
                } else if ((cf = json_object_get(s->configs, t->name))) {
                        t->retention_ms = json_integer_value(
                                json_object_get(cf, "retention_ms"));
                        t->retention_bytes = json_integer_value(
                                json_object_get(cf, "retention_bytes"));
                        snprintf(t->cleanup, sizeof(t->cleanup), "%s",
                                 json_string_value(
                                         json_object_get(cf, "cleanup"))
                                         ?: "");
                }
                for (int p = 0; p < t->n_parts; p++) {
                        snprintf(key, sizeof(key), "%s|%d", t->name,
                                 (int)t->parts[p].id);
                        if (fresh && t->parts[p].low != KADMIN_UNKNOWN)
                                json_object_set_new(
                                        s->lows, key,
                                        json_integer(t->parts[p].low));
                        else if (json_object_get(s->lows, key))
                                t->parts[p].low = json_integer_value(
                                        json_object_get(s->lows, key));
                }
        }
}

/* The topic's document, and its messages retained and rate. */
static json_t *infra__topic_doc(infra_sampler_t *s, const kadmin_topic_t *t,
                                double dt_s, double *rate_out) {
        json_t *parts = json_array(), *doc;
        int64_t messages = 0, ends = 0;
        bool messages_known = true;
        json_t *prev;
        double rate = -1;
        for (int p = 0; p < t->n_parts; p++) {
                const kadmin_partition_t *kp = &t->parts[p];
                json_array_append_new(
                        parts,
                        json_pack("{s:i, s:i, s:i, s:i, s:o, s:o}", "partition",
                                  (int)kp->id, "leader", (int)kp->leader,
                                  "replicas", kp->replicas, "isr", kp->isr,
                                  "low", infra__int_or_null(kp->low), "high",
                                  infra__int_or_null(kp->high)));
                if (kp->high == KADMIN_UNKNOWN || kp->low == KADMIN_UNKNOWN)
                        messages_known = false;
                else
                        messages += kp->high - kp->low;
                if (kp->high != KADMIN_UNKNOWN)
                        ends += kp->high;
        }
        prev = json_object_get(s->prev_ends, t->name);
        if (prev && dt_s > 0.5 && ends >= json_integer_value(prev))
                rate = (double)(ends - json_integer_value(prev)) / dt_s;
        json_object_set_new(s->prev_ends, t->name, json_integer(ends));
        *rate_out = rate < 0 ? 0 : rate;
        doc = json_pack(
                "{s:s, s:s, s:i, s:i, s:o, s:o, s:s, s:o, s:I, s:o, s:o, s:s}",
                "_id", t->name, "name", t->name, "partitions", t->n_parts,
                "replication", t->replication, "retention_ms",
                infra__int_or_null(t->retention_ms), "retention_bytes",
                infra__int_or_null(t->retention_bytes), "cleanup", t->cleanup,
                "messages",
                messages_known ? json_integer(messages) : json_null(),
                "end_offsets", (json_int_t)ends, "messages_per_s",
                rate < 0 ? json_null() : json_real(rate), "parts", parts,
                "error", t->error);
        return doc;
}

/* Write the topics that changed since the last sample; delete those gone. */
static store_err_t infra__write_topics(infra_state_t *st, infra_sampler_t *s,
                                       json_t *docs, size_t *written,
                                       char *errstr, size_t errlen) {
        store_bulk_t *b = store_bulk_new(st->store, INFRA_DB, "topics", false);
        json_t *seen = json_object(), *doc;
        const char *name;
        void *tmp;
        size_t i;
        store_err_t err;
        *written = 0;
        json_array_foreach(docs, i, doc) {
                /* The rate changes with every sample; compare without it. */
                json_t *cmp = json_deep_copy(doc);
                char *text;
                const char *id = json_string_value(json_object_get(doc, "_id"));
                json_object_del(cmp, "messages_per_s");
                text = json_dumps(cmp, JSON_COMPACT | JSON_SORT_KEYS);
                json_decref(cmp);
                json_object_set_new(seen, id, json_true());
                if (text) {
                        json_t *old = json_object_get(s->written, id);
                        bool same = old &&
                                    strcmp(json_string_value(old), text) == 0;
                        if (!same) {
                                bson_t *bd = docjson_to_bson(doc);
                                bson_t filter = BSON_INITIALIZER;
                                BSON_APPEND_UTF8(&filter, "_id", id);
                                if (bd) {
                                        store_bulk_replace(b, &filter, bd,
                                                           true);
                                        json_object_set_new(s->written, id,
                                                            json_string(text));
                                        (*written)++;
                                }
                                bson_destroy(&filter);
                                bson_destroy(bd);
                        }
                        free(text);
                }
        }
        json_object_foreach_safe(s->written, tmp, name, doc) {
                if (!json_object_get(seen, name)) {
                        bson_t filter = BSON_INITIALIZER;
                        BSON_APPEND_UTF8(&filter, "_id", name);
                        store_bulk_delete(b, &filter, 0);
                        bson_destroy(&filter);
                        json_object_del(s->written, name);
                }
        }
        json_decref(seen);
        err = store_bulk_run(b, NULL, errstr, errlen);
        store_bulk_destroy(b);
        if (err != STORE_OK)
                json_object_clear(s->written); /* write them all next time */
        return err;
}

/* ---------------------------------------------------------------------------
 * Consumer groups
 * ------------------------------------------------------------------------ */

/* One partition a group consumes, while a sample is worked out. */
typedef struct infra_gp {
        const char *topic;
        int32_t partition;
        int64_t committed; /* KADMIN_UNKNOWN: no commit */
        int64_t end;       /* KADMIN_UNKNOWN: not known */
        int64_t low;       /* the low watermark, or KADMIN_UNKNOWN */
        int64_t lag;       /* KADMIN_UNKNOWN when either is */
        int64_t ts;        /* of the message at committed */
        const char *owner; /* member instance, or NULL */
} infra_gp_t;

typedef struct infra_gsample {
        const infra_expected_t *expected; /* NULL: found in the cluster */
        kadmin_group_t *kg;
        infra_gp_t *parts;
        size_t n_parts, cap;
} infra_gsample_t;

static void infra__gp_add(infra_gsample_t *g, const char *topic, int32_t p) {
        for (size_t i = 0; i < g->n_parts; i++)
                if (g->parts[i].partition == p &&
                    strcmp(g->parts[i].topic, topic) == 0)
                        return;
        if (g->n_parts == g->cap) {
                g->cap = g->cap ? g->cap * 2 : 16;
                g->parts = xrealloc(g->parts, g->cap * sizeof(*g->parts));
        }
        g->parts[g->n_parts++] = (infra_gp_t){
                .topic = topic,
                .partition = p,
                .committed = KADMIN_UNKNOWN,
                .end = KADMIN_UNKNOWN,
                .low = KADMIN_UNKNOWN,
                .lag = KADMIN_UNKNOWN,
                .ts = KADMIN_UNKNOWN,
        };
}

static const kadmin_topic_t *infra__topic(const kadmin_cluster_t *c,
                                          const char *name) {
        size_t lo = 0, hi = c->n_topics;
        while (lo < hi) { /* sorted by name */
                size_t mid = (lo + hi) / 2;
                int cmp = strcmp(c->topics[mid].name, name);
                if (cmp == 0)
                        return &c->topics[mid];
                if (cmp < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

/* Every partition of a topic (prefixed name). */
static void infra__gp_topic(infra_gsample_t *g, const kadmin_cluster_t *c,
                            const char *topic) {
        const kadmin_topic_t *t = infra__topic(c, topic);
        for (int p = 0; t && p < t->n_parts; p++)
                infra__gp_add(g, t->name, t->parts[p].id);
}

/* The topics an expected group consumes: its commands, or the topics of
 * its subscription. */
static void infra__expected_topics(infra_gsample_t *g,
                                   const kadmin_cluster_t *c,
                                   const config_t *cfg) {
        const group_def_t *def;
        char topic[256];
        if (!g->expected)
                return;
        def = registry_find(g->expected->group, strlen(g->expected->group));
        if (!def)
                return;
        if (!g->expected->subscription) {
                snprintf(topic, sizeof(topic), "%s%s.commands",
                         cfg->topic_prefix, def->name);
                infra__gp_topic(g, c, topic);
                return;
        }
        for (size_t s = 0; s < def->n_subscriptions; s++) {
                if (strcmp(def->subscriptions[s].name,
                           g->expected->subscription) != 0)
                        continue;
                for (size_t t = 0; def->subscriptions[s].topics[t]; t++) {
                        snprintf(topic, sizeof(topic), "%s%s",
                                 cfg->topic_prefix,
                                 def->subscriptions[s].topics[t]);
                        infra__gp_topic(g, c, topic);
                }
        }
}

static const kadmin_partition_t *infra__part(const kadmin_cluster_t *c,
                                             const char *topic, int32_t p) {
        const kadmin_topic_t *t = infra__topic(c, topic);
        for (int i = 0; t && i < t->n_parts; i++)
                if (t->parts[i].id == p)
                        return &t->parts[i];
        return NULL;
}

/* Partitions, committed offsets, ends and lags of g. */
static void infra__group_parts(infra_gsample_t *g, const kadmin_cluster_t *c,
                               const config_t *cfg) {
        kadmin_group_t *kg = g->kg;
        infra__expected_topics(g, c, cfg);
        for (size_t i = 0; i < kg->n_committed; i++)
                infra__gp_add(g, kg->committed[i].topic,
                              kg->committed[i].partition);
        for (size_t m = 0; m < kg->n_members; m++)
                for (size_t a = 0; a < kg->members[m].n_assigned; a++)
                        infra__gp_add(g, kg->members[m].assigned[a].topic,
                                      kg->members[m].assigned[a].partition);
        for (size_t i = 0; i < g->n_parts; i++) {
                infra_gp_t *gp = &g->parts[i];
                const kadmin_partition_t *kp;
                for (size_t k = 0; k < kg->n_committed; k++)
                        if (kg->committed[k].partition == gp->partition &&
                            strcmp(kg->committed[k].topic, gp->topic) == 0)
                                gp->committed = kg->committed[k].offset;
                for (size_t m = 0; m < kg->n_members; m++)
                        for (size_t a = 0; a < kg->members[m].n_assigned; a++)
                                if (kg->members[m].assigned[a].partition ==
                                            gp->partition &&
                                    strcmp(kg->members[m].assigned[a].topic,
                                           gp->topic) == 0)
                                        gp->owner = infra__member_instance(
                                                kg->members[m].client_id);
                kp = infra__part(c, gp->topic, gp->partition);
                gp->end = kp ? kp->high : KADMIN_UNKNOWN;
                gp->low = kp ? kp->low : KADMIN_UNKNOWN;
                if (gp->committed != KADMIN_UNKNOWN &&
                    gp->end != KADMIN_UNKNOWN)
                        gp->lag = gp->end > gp->committed
                                          ? gp->end - gp->committed
                                          : 0;
        }
}

/* Timestamps of the messages at the committed offsets of lagging
 * partitions: from the cache, the rest read in one go. */
static void infra__timestamps(infra_state_t *st, infra_sampler_t *s,
                              infra_gsample_t *gs, size_t n_gs) {
        kadmin_tp_t *ask = NULL;
        infra_gp_t **who = NULL;
        size_t n = 0, cap = 0;
        char key[320], errstr[256];
        for (size_t g = 0; g < n_gs; g++) {
                for (size_t i = 0; i < gs[g].n_parts; i++) {
                        infra_gp_t *gp = &gs[g].parts[i];
                        json_t *hit;
                        if (gp->lag == KADMIN_UNKNOWN || gp->lag <= 0)
                                continue;
                        snprintf(key, sizeof(key), "%s|%d|%" PRId64, gp->topic,
                                 (int)gp->partition, gp->committed);
                        if ((hit = json_object_get(s->ts_cache, key))) {
                                gp->ts = json_integer_value(hit);
                                continue;
                        }
                        if (n == cap) {
                                cap = cap ? cap * 2 : 32;
                                ask = xrealloc(ask, cap * sizeof(*ask));
                                who = xrealloc(who, cap * sizeof(*who));
                        }
                        ask[n] = (kadmin_tp_t){(char *)gp->topic, gp->partition,
                                               gp->committed};
                        who[n++] = gp;
                }
        }
        if (n) {
                int64_t *ts = xcalloc(n, sizeof(*ts));
                if (json_object_size(s->ts_cache) + n > INFRA_TS_CACHE_MAX)
                        json_object_clear(s->ts_cache);
                if (kadmin_timestamps(st->admin, ask, n, ts, 1500, errstr,
                                      sizeof(errstr)) != KADMIN_OK)
                        log_warn("lag in seconds: %s", errstr);
                for (size_t i = 0; i < n; i++) {
                        who[i]->ts = ts[i];
                        if (ts[i] == KADMIN_UNKNOWN)
                                continue;
                        snprintf(key, sizeof(key), "%s|%d|%" PRId64,
                                 ask[i].topic, (int)ask[i].partition,
                                 ask[i].offset);
                        json_object_set_new(s->ts_cache, key,
                                            json_integer(ts[i]));
                }
                free(ts);
        }
        free(ask);
        free(who);
}

/* The group's document: partitions with their windows and statuses,
 * totals, members. Appends to the group's window. */
static json_t *infra__group_doc(infra_state_t *st, infra_sampler_t *s,
                                infra_gsample_t *g, uint64_t now_ms,
                                double dt_s) {
        kadmin_group_t *kg = g->kg;
        json_t *parts = json_array(), *members = json_array(), *doc;
        json_t *win = json_object_get(s->windows, kg->id), *prev;
        int64_t lag = 0, committed_sum = 0, waiting = 0;
        int64_t lag_s = -1;
        size_t uncommitted = 0, window = (size_t)st->set->window;
        infra_status_t status = INFRA_OK;
        const char *why = "", *pwhy;
        double rate = -1;
        bool has_members = kg->n_members > 0;
        char key[320];

        if (!win) {
                win = json_object();
                json_object_set_new(s->windows, kg->id, win);
        }
        for (size_t i = 0; i < g->n_parts; i++) {
                infra_gp_t *gp = &g->parts[i];
                infra_point_t pts[INFRA_WINDOW_MAX];
                json_t *w, *pt;
                size_t n = 0, k;
                infra_status_t ps = INFRA_OK;
                int64_t pl_s = -1;
                snprintf(key, sizeof(key), "%s|%d", gp->topic,
                         (int)gp->partition);
                if (gp->committed == KADMIN_UNKNOWN) {
                        /* Consumers start at the earliest: what a consumer
                         * would read is the whole partition. */
                        int64_t wait = gp->end != KADMIN_UNKNOWN &&
                                                       gp->low != KADMIN_UNKNOWN
                                               ? gp->end - gp->low
                                               : 0;
                        waiting += wait;
                        uncommitted++;
                        if (!has_members && wait > 0 && status < INFRA_STOP) {
                                status = INFRA_STOP;
                                why = "no consumer, and partitions without a "
                                      "commit hold messages";
                        }
                        json_array_append_new(
                                parts,
                                json_pack("{s:s, s:i, s:n, s:o, s:n, s:n, "
                                          "s:s, s:s, s:o}",
                                          "topic", gp->topic, "partition",
                                          (int)gp->partition, "committed",
                                          "end", infra__int_or_null(gp->end),
                                          "lag", "lag_s", "status", "NO COMMIT",
                                          "note",
                                          "no offset committed on this "
                                          "partition",
                                          "owner",
                                          gp->owner ? json_string(gp->owner)
                                                    : json_null()));
                        json_object_set_new(
                                json_array_get(parts,
                                               json_array_size(parts) - 1),
                                "waiting", json_integer(wait));
                        continue;
                }
                committed_sum += gp->committed;
                if (!(w = json_object_get(win, key))) {
                        w = json_array();
                        json_object_set_new(win, key, w);
                }
                if (gp->lag != KADMIN_UNKNOWN) {
                        json_array_append_new(
                                w,
                                json_pack("[I, I]", (json_int_t)gp->committed,
                                          (json_int_t)gp->lag));
                        while (json_array_size(w) > window)
                                json_array_remove(w, 0);
                }
                json_array_foreach(w, k, pt) {
                        pts[n].committed =
                                json_integer_value(json_array_get(pt, 0));
                        pts[n++].lag =
                                json_integer_value(json_array_get(pt, 1));
                }
                ps = infra_partition_status(pts, n, window, has_members, &pwhy);
                if (ps > status) {
                        status = ps;
                        why = pwhy;
                }
                if (gp->lag != KADMIN_UNKNOWN)
                        lag += gp->lag;
                if (gp->lag == 0)
                        pl_s = 0;
                else if (gp->ts != KADMIN_UNKNOWN && gp->ts > 0)
                        pl_s = (int64_t)now_ms > gp->ts
                                       ? ((int64_t)now_ms - gp->ts) / 1000
                                       : 0;
                if (pl_s > lag_s)
                        lag_s = pl_s;
                json_array_append_new(
                        parts,
                        json_pack("{s:s, s:i, s:I, s:o, s:o, s:o, s:s, s:s, "
                                  "s:o}",
                                  "topic", gp->topic, "partition",
                                  (int)gp->partition, "committed",
                                  (json_int_t)gp->committed, "end",
                                  infra__int_or_null(gp->end), "lag",
                                  infra__int_or_null(gp->lag), "lag_s",
                                  pl_s < 0 ? json_null() : json_integer(pl_s),
                                  "status", infra_status_name(ps), "note", pwhy,
                                  "owner",
                                  gp->owner ? json_string(gp->owner)
                                            : json_null()));
        }
        prev = json_object_get(s->prev_committed, kg->id);
        if (prev && dt_s > 0.5 && committed_sum >= json_integer_value(prev))
                rate = (double)(committed_sum - json_integer_value(prev)) /
                       dt_s;
        json_object_set_new(s->prev_committed, kg->id,
                            json_integer(committed_sum));
        for (size_t m = 0; m < kg->n_members; m++) {
                kadmin_member_t *km = &kg->members[m];
                json_t *assigned = json_array();
                for (size_t a = 0; a < km->n_assigned; a++) {
                        char tp[300];
                        snprintf(tp, sizeof(tp), "%s:%d", km->assigned[a].topic,
                                 (int)km->assigned[a].partition);
                        json_array_append_new(assigned, json_string(tp));
                }
                json_array_append_new(
                        members,
                        json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "client_id",
                                  km->client_id, "consumer_id", km->consumer_id,
                                  "instance",
                                  infra__member_instance(km->client_id),
                                  "static_id", km->instance_id, "host",
                                  km->host, "assigned", assigned));
        }
        if (!kg->found) {
                why = kg->error[0] ? kg->error
                                   : "not in the cluster: never started, or "
                                     "its offsets expired";
        }
        doc = json_pack(
                "{s:s, s:s, s:o, s:o, s:s, s:b, s:s, s:o, s:o, s:I, s:o, "
                "s:I, s:o, s:s, s:s, s:I, s:s}",
                "_id", kg->id, "id", kg->id, "group",
                g->expected ? json_string(g->expected->group) : json_null(),
                "subscription",
                g->expected && g->expected->subscription
                        ? json_string(g->expected->subscription)
                        : json_null(),
                "state", kg->state, "found", kg->found, "assignor",
                kg->assignor, "members", members, "partitions", parts, "lag",
                (json_int_t)lag, "lag_s",
                lag_s < 0 ? json_null() : json_integer(lag_s),
                "uncommitted_partitions", (json_int_t)uncommitted,
                "consumed_per_s", rate < 0 ? json_null() : json_real(rate),
                "status", infra_status_name(status), "status_reason", why,
                "sampled_at", (json_int_t)now_ms, "error", kg->error);
        /* Messages in partitions without a commit, from the low
         * watermark (consumers start at the earliest): not lag, since
         * nothing was committed, but what a consumer would have to read. */
        json_object_set_new(doc, "waiting_uncommitted", json_integer(waiting));
        json_object_set_new(doc, "window_samples",
                            json_integer((json_int_t)window));
        return doc;
}

/* ---------------------------------------------------------------------------
 * The sample
 * ------------------------------------------------------------------------ */

/* Dead letters of each registered group: messages held by <group>.dlq. */
static json_t *infra__dead_letters(const config_t *cfg,
                                   const kadmin_cluster_t *c, bool known) {
        json_t *out = json_array();
        for (size_t i = 0; i < registry_count; i++) {
                const char *g = registry_groups[i]->name;
                char topic[256], cmd[320];
                const kadmin_topic_t *t;
                int64_t held = 0, total = 0;
                bool ok = known;
                snprintf(topic, sizeof(topic), "%s%s.dlq", cfg->topic_prefix,
                         g);
                t = known ? infra__topic(c, topic) : NULL;
                if (!t)
                        ok = false;
                for (int p = 0; t && p < t->n_parts; p++) {
                        if (t->parts[p].high == KADMIN_UNKNOWN ||
                            t->parts[p].low == KADMIN_UNKNOWN) {
                                ok = false;
                                break;
                        }
                        held += t->parts[p].high - t->parts[p].low;
                        total += t->parts[p].high;
                }
                snprintf(cmd, sizeof(cmd), "omnify dlq list %s", g);
                json_array_append_new(
                        out, json_pack("{s:s, s:s, s:o, s:o, s:s}", "group", g,
                                       "topic", topic, "count",
                                       ok ? json_integer(held) : json_null(),
                                       "total",
                                       ok ? json_integer(total) : json_null(),
                                       "command", cmd));
        }
        return out;
}

/* Kafka's and the store's health as this sample saw them. */
static void infra__deps(infra_state_t *st, store_bulk_t *b, uint64_t now,
                        bool kafka_ok, int64_t kafka_ms, const char *kafka_err,
                        bool store_ok, int64_t store_ms) {
        struct {
                const char *name;
                bool ok;
                int64_t ms;
                const char *err;
        } d[] = {{"kafka", kafka_ok, kafka_ms, kafka_err},
                 {"store", store_ok, store_ms, "the store did not answer"}};
        (void)st;
        for (size_t i = 0; i < 2; i++)
                infra_dep_put(b, d[i].name, d[i].ok, d[i].ms, -1, d[i].err,
                              now);
}

/* One history point per group: pushed into the document of its minute. */
static void infra__history(store_bulk_t *b, json_t *groups, uint64_t now) {
        size_t i;
        json_t *g;
        uint64_t minute = now / 60000;
        json_array_foreach(groups, i, g) {
                const char *id = json_string_value(json_object_get(g, "_id"));
                char hid[320];
                json_t *up;
                bson_t *bup, filter = BSON_INITIALIZER;
                snprintf(hid, sizeof(hid), "%s|%" PRIu64, id, minute);
                up = json_pack("{s:{s:[I, O, O]}, s:{s:s, s:I, s:o}}", "$push",
                               "points", (json_int_t)now,
                               json_object_get(g, "lag"),
                               json_object_get(g, "consumed_per_s"),
                               "$setOnInsert", "group_id", id, "minute",
                               (json_int_t)minute, "expires_at",
                               docjson_date((int64_t)(minute + 1) * 60000 +
                                            INFRA_HISTORY_S * 1000ull));
                bup = docjson_to_bson(up);
                BSON_APPEND_UTF8(&filter, "_id", hid);
                if (bup)
                        store_bulk_update(b, &filter, bup, STORE_UPSERT);
                bson_destroy(bup);
                bson_destroy(&filter);
                json_decref(up);
        }
}

/* The snapshot event: a summary small enough for every few seconds. */
static void infra__emit(rt_ctx_t *ctx, json_t *snap) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        if (codec_pack_json(&pk, snap) == CODEC_OK &&
            rt_emit(ctx, "infrastructure.snapshot.sampled", slice_of("cluster"),
                    &sb) != 0)
                log_error("the snapshot breaks its declaration");
        msgpack_sbuffer_destroy(&sb);
}

/* The latest snapshot, for the stream's history (a new console's first
 * picture). */
static void infra__keep_snapshot(infra_state_t *st, json_t *snap) {
        json_t *doc = json_pack("{s:s, s:O}", "_id", "snapshot", "data", snap);
        bson_t *bd = docjson_to_bson(doc), filter = BSON_INITIALIZER;
        char errstr[256];
        BSON_APPEND_UTF8(&filter, "_id", "snapshot");
        if (bd) {
                store_bulk_t *b =
                        store_bulk_new(st->store, INFRA_DB, "cluster", false);
                store_bulk_replace(b, &filter, bd, true);
                if (store_bulk_run(b, NULL, errstr, sizeof(errstr)) != STORE_OK)
                        log_warn("snapshot not kept: %s", errstr);
                store_bulk_destroy(b);
        }
        bson_destroy(bd);
        bson_destroy(&filter);
        json_decref(doc);
}

static json_t *infra__group_summary(json_t *g) {
        json_t *sum, *v;
        const char *k;
        void *tmp;
        sum = json_pack(
                "{s:O, s:O, s:O, s:O, s:O, s:i, s:O, s:O, s:O, s:O}", "id",
                json_object_get(g, "id"), "group", json_object_get(g, "group"),
                "subscription", json_object_get(g, "subscription"), "state",
                json_object_get(g, "state"), "status",
                json_object_get(g, "status"), "members",
                (int)json_array_size(json_object_get(g, "members")), "lag",
                json_object_get(g, "lag"), "lag_s", json_object_get(g, "lag_s"),
                "consumed_per_s", json_object_get(g, "consumed_per_s"),
                "uncommitted_partitions",
                json_object_get(g, "uncommitted_partitions"));
        json_object_set(sum, "waiting_uncommitted",
                        json_object_get(g, "waiting_uncommitted"));
        /* Unknown values are left out (the event's fields are typed). */
        json_object_foreach_safe(sum, tmp, k, v) {
                if (json_is_null(v))
                        json_object_del(sum, k);
        }
        return sum;
}

handler_result_t infra_sample(rt_ctx_t *ctx, infra_state_t *st) {
        infra_sampler_t *s = st->sampler;
        kadmin_cluster_t c;
        kadmin_cluster_opts_t opts = {.prefix = st->cfg->topic_prefix};
        infra_expected_t expected[64];
        size_t n_expected, n_ids = 0, n_found = 0, written = 0;
        char **found = NULL, errstr[512] = "", serr[256];
        const char **ids = NULL;
        kadmin_group_t *kgs = NULL;
        infra_gsample_t *gs = NULL;
        json_t *topics = json_array(), *groups = json_array(), *snap = NULL;
        json_t *cluster, *sums = json_array(), *procs;
        uint64_t t0 = clock_mono_ms(), now = clock_wall_ms(), t_store;
        double dt = s->prev_ms ? (double)(now - s->prev_ms) / 1000.0 : 0;
        double total_rate = 0;
        int64_t partitions = 0;
        kadmin_err_t kerr;
        store_err_t err;
        store_bulk_t *b;
        bool store_ok;

        opts.configs = opts.low =
                now - s->configs_ms >= (uint64_t)st->set->configs_s * 1000;
        kerr = kadmin_cluster(st->admin, &opts, &c, errstr, sizeof(errstr));
        if (kerr == KADMIN_OK && opts.configs)
                s->configs_ms = now;
        infra__fill_configs(s, &c, opts.configs && kerr == KADMIN_OK);

        log_debug("sample: cluster %llu ms",
                  (unsigned long long)(clock_mono_ms() - t0));
        n_expected = infra_expected_groups(st->cfg, expected, 64);
        if (kerr == KADMIN_OK)
                kerr = kadmin_list_groups(st->admin, st->cfg->topic_prefix,
                                          &found, &n_found, errstr,
                                          sizeof(errstr));
        ids = xcalloc(n_expected + n_found + 1, sizeof(char *));
        gs = xcalloc(n_expected + n_found + 1, sizeof(*gs));
        for (size_t i = 0; i < n_expected; i++) {
                gs[n_ids].expected = &expected[i];
                ids[n_ids++] = expected[i].id;
        }
        for (size_t i = 0; i < n_found; i++) {
                bool dup = false;
                for (size_t k = 0; k < n_expected && !dup; k++)
                        dup = strcmp(found[i], expected[k].id) == 0;
                if (!dup)
                        ids[n_ids++] = found[i];
        }
        kgs = xcalloc(n_ids + 1, sizeof(*kgs));
        if (kerr == KADMIN_OK)
                kerr = kadmin_groups(st->admin, ids, n_ids, kgs, errstr,
                                     sizeof(errstr));

        log_debug("sample: groups %llu ms",
                  (unsigned long long)(clock_mono_ms() - t0));
        if (kerr == KADMIN_OK) {
                for (size_t i = 0; i < c.n_topics; i++) {
                        double rate;
                        json_array_append_new(
                                topics,
                                infra__topic_doc(s, &c.topics[i], dt, &rate));
                        total_rate += rate;
                        partitions += c.topics[i].n_parts;
                }
                for (size_t i = 0; i < n_ids; i++) {
                        gs[i].kg = &kgs[i];
                        infra__group_parts(&gs[i], &c, st->cfg);
                }
                infra__timestamps(st, s, gs, n_ids);
                log_debug("sample: timestamps %llu ms",
                          (unsigned long long)(clock_mono_ms() - t0));
                for (size_t i = 0; i < n_ids; i++) {
                        json_t *doc = infra__group_doc(st, s, &gs[i], now, dt);
                        json_array_append_new(sums, infra__group_summary(doc));
                        json_array_append_new(groups, doc);
                }
                s->prev_ms = now;
        } else {
                log_warn("sample: %s", errstr);
        }

        /* Write down what was seen (or that nothing could be). */
        t_store = clock_mono_ms();
        store_ok = store_ping(st->store) == STORE_OK;
        cluster = json_pack(
                "{s:s, s:I, s:b, s:s, s:I, s:I, s:f, s:I}", "_id", "current",
                "sampled_at", (json_int_t)now, "ok", kerr == KADMIN_OK, "error",
                kerr == KADMIN_OK ? "" : errstr, "topics",
                (json_int_t)c.n_topics, "partitions", (json_int_t)partitions,
                "messages_per_s", total_rate, "duration_ms",
                (json_int_t)(clock_mono_ms() - t0));
        if (kerr == KADMIN_OK) {
                json_t *brokers = json_array();
                for (size_t i = 0; i < c.n_brokers; i++)
                        json_array_append_new(
                                brokers, json_pack("{s:i, s:s, s:i}", "id",
                                                   (int)c.brokers[i].id, "host",
                                                   c.brokers[i].host, "port",
                                                   c.brokers[i].port));
                json_object_set_new(cluster, "brokers", brokers);
                json_object_set_new(cluster, "controller",
                                    c.controller >= 0
                                            ? json_integer(c.controller)
                                            : json_null());
                json_object_set_new(cluster, "dead_letters",
                                    infra__dead_letters(st->cfg, &c, true));
                json_object_set_new(cluster, "ok_at", json_integer(now));
        }
        err = STORE_OK;
        if (kerr == KADMIN_OK)
                err = infra__write_topics(st, s, topics, &written, serr,
                                          sizeof(serr));
        b = store_bulk_new(st->store, INFRA_DB, "cluster", false);
        {
                /* Set only what this sample knows: a failed sample keeps the
                 * last good brokers and dead letters. */
                bson_t filter = BSON_INITIALIZER, *set;
                json_t *up = json_pack("{s:O}", "$set", cluster);
                json_object_del(json_object_get(up, "$set"), "_id");
                set = docjson_to_bson(up);
                BSON_APPEND_UTF8(&filter, "_id", "current");
                if (set)
                        store_bulk_update(b, &filter, set, STORE_UPSERT);
                bson_destroy(set);
                bson_destroy(&filter);
                json_decref(up);
        }
        if (err == STORE_OK)
                err = store_bulk_run(b, NULL, serr, sizeof(serr));
        store_bulk_destroy(b);
        if (err == STORE_OK && kerr == KADMIN_OK && json_array_size(groups)) {
                size_t i;
                json_t *g;
                b = store_bulk_new(st->store, INFRA_DB, "groups", false);
                json_array_foreach(groups, i, g) {
                        bson_t filter = BSON_INITIALIZER,
                               *bd = docjson_to_bson(g);
                        BSON_APPEND_UTF8(
                                &filter, "_id",
                                json_string_value(json_object_get(g, "_id")));
                        if (bd)
                                store_bulk_replace(b, &filter, bd, true);
                        bson_destroy(bd);
                        bson_destroy(&filter);
                }
                err = store_bulk_run(b, NULL, serr, sizeof(serr));
                store_bulk_destroy(b);
                if (err == STORE_OK) {
                        b = store_bulk_new(st->store, INFRA_DB, "history",
                                           false);
                        infra__history(b, groups, now);
                        err = store_bulk_run(b, NULL, serr, sizeof(serr));
                        store_bulk_destroy(b);
                }
        }
        if (err == STORE_OK) {
                b = store_bulk_new(st->store, INFRA_DB, "dependencies", false);
                infra__deps(st, b, now, kerr == KADMIN_OK,
                            (int64_t)(t_store - t0), errstr, store_ok,
                            (int64_t)(clock_mono_ms() - t_store));
                infra_probe_deps(ctx, st, b, now);
                err = store_bulk_run(b, NULL, serr, sizeof(serr));
                store_bulk_destroy(b);
        }

        if (err == STORE_OK) {
                store_err_t perr;
                procs = infra_processes(st, &perr);
                store_err_t derr;
                json_t *deps =
                        infra_find(st->store, "dependencies", NULL, 0, &derr);
                json_t *d;
                size_t k;
                json_array_foreach(deps, k, d) {
                        json_object_set(d, "name", json_object_get(d, "_id"));
                        json_object_del(d, "_id");
                }
                snap = json_pack(
                        "{s:I, s:b, s:s, s:I, s:f, s:o, s:o, s:o, s:o}",
                        "sampled_at", (json_int_t)now, "ok", kerr == KADMIN_OK,
                        "error", kerr == KADMIN_OK ? "" : errstr, "duration_ms",
                        (json_int_t)(clock_mono_ms() - t0), "messages_per_s",
                        total_rate, "groups", sums, "dead_letters",
                        kerr == KADMIN_OK
                                ? infra__dead_letters(st->cfg, &c, true)
                                : json_array(),
                        "processes", procs ? procs : json_array(),
                        "dependencies", deps ? deps : json_array());
                sums = NULL;
                infra__emit(ctx, snap);
                infra__keep_snapshot(st, snap);
                log_debug("sampled %zu topics (%zu written), %zu groups in "
                          "%llu ms",
                          c.n_topics, written, n_ids,
                          (unsigned long long)(clock_mono_ms() - t0));
        } else {
                log_warn("sample not written: %s", serr);
        }

        json_decref(snap);
        json_decref(sums);
        json_decref(cluster);
        json_decref(topics);
        json_decref(groups);
        for (size_t i = 0; i < n_ids; i++) {
                kadmin_group_free(&kgs[i]);
                free(gs[i].parts);
        }
        free(kgs);
        free(gs);
        free(ids);
        for (size_t i = 0; i < n_found; i++)
                free(found[i]);
        free(found);
        kadmin_cluster_free(&c);
        return store_err_transient(err) ? HANDLER_TRANSIENT : HANDLER_OK;
}
