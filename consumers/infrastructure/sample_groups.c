/*
 * sample_groups.c - the consumer groups of a sample (sample.c takes it):
 * the partitions each group consumes, their committed offsets, ends and
 * lags, the timestamps that turn lag into seconds, and each group's
 * document with its windows and Burrow-style statuses (status.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "infra.h"
#include "log.h"

/* Cached message timestamps at most; the cache is emptied beyond. */
#define INFRA_TS_CACHE_MAX 20000

/* ---------------------------------------------------------------------------
 * Consumer groups
 * ------------------------------------------------------------------------ */

/* The instance in a member's client id "<group id>-consumer/<instance>". */
static const char *infra__member_instance(const char *client_id) {
        const char *slash = strstr(client_id, "-consumer/");
        return slash ? slash + strlen("-consumer/") : "";
}

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

const kadmin_topic_t *infra_topic(const kadmin_cluster_t *c, const char *name) {
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
        const kadmin_topic_t *t = infra_topic(c, topic);
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
        const kadmin_topic_t *t = infra_topic(c, topic);
        for (int i = 0; t && i < t->n_parts; i++)
                if (t->parts[i].id == p)
                        return &t->parts[i];
        return NULL;
}

void infra_group_parts(infra_gsample_t *g, const kadmin_cluster_t *c,
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

void infra_group_timestamps(infra_state_t *st, infra_sampler_t *s,
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

json_t *infra_group_doc(infra_state_t *st, infra_sampler_t *s,
                        infra_gsample_t *g, uint64_t now_ms, double dt_s) {
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
                                          "end", infra_int_or_null(gp->end),
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
                                  infra_int_or_null(gp->end), "lag",
                                  infra_int_or_null(gp->lag), "lag_s",
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
        /* Kept beside the partitions, so the list of groups reads the
         * documents without them. */
        json_object_set_new(doc, "partition_count",
                            json_integer((json_int_t)json_array_size(
                                    json_object_get(doc, "partitions"))));
        json_object_set_new(doc, "window_samples",
                            json_integer((json_int_t)window));
        return doc;
}
