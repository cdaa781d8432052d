/*
 * sample.c - the sampler: what the cluster and the consumer groups look
 * like now, written into the group's database, and the snapshot event the
 * console follows (see infra.h for when it runs and what it writes). The
 * consumer groups' partitions, lags and statuses are worked out in
 * sample_groups.c.
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
 * Helpers (those not static: infra.h)
 * ------------------------------------------------------------------------ */

json_t *infra_int_or_null(int64_t v) {
        return v == KADMIN_UNKNOWN ? json_null() : json_integer(v);
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
                                  "low", infra_int_or_null(kp->low), "high",
                                  infra_int_or_null(kp->high)));
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
                infra_int_or_null(t->retention_ms), "retention_bytes",
                infra_int_or_null(t->retention_bytes), "cleanup", t->cleanup,
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
                t = known ? infra_topic(c, topic) : NULL;
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
                        infra_group_parts(&gs[i], &c, st->cfg);
                }
                infra_group_timestamps(st, s, gs, n_ids);
                log_debug("sample: timestamps %llu ms",
                          (unsigned long long)(clock_mono_ms() - t0));
                for (size_t i = 0; i < n_ids; i++) {
                        json_t *doc = infra_group_doc(st, s, &gs[i], now, dt);
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
