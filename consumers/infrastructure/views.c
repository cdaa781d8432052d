/*
 * views.c - the infrastructure group's read routes, answered from its own
 * database only (the sampler wrote it), and the helpers its files share.
 *
 * Every answer says how old it is (sampled_at, age_s) and lists in
 * "unknown" what it cannot say and why: the broker did not answer at the
 * last sample, no sample for a while (no infrastructure process, or the
 * broker down), sizes in bytes (librdkafka has no DescribeLogDirs).
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

/* ---------------------------------------------------------------------------
 * Shared helpers
 * ------------------------------------------------------------------------ */

bool infra_allowed(rt_ctx_t *ctx) {
        const infra_settings_t *set = rt_settings(ctx, &infra_settings);
        rt_caller_t c;
        const char *p;
        if (!rt_require_role(ctx, SCHEMA_ROLE_ADMIN))
                return false;
        if (!set->tenants[0])
                return true;
        rt_caller(ctx, &c);
        for (p = set->tenants; *p;) {
                size_t len = strcspn(p, ",");
                if (len == c.tenant.len && memcmp(p, c.tenant.ptr, len) == 0)
                        return true;
                p += len;
                if (*p == ',')
                        p++;
        }
        rt_reply_problem(ctx, 403, "Forbidden",
                         "the infrastructure views are open to the admins "
                         "of the operators' organisations only");
        return false;
}

json_t *infra_find(store_t *store, const char *coll, const bson_t *filter,
                   int64_t limit, store_err_t *err) {
        static const char *const drop[] = {"expires_at", NULL};
        bson_t opts = BSON_INITIALIZER, sort;
        json_t *out;
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
        BSON_APPEND_INT32(&sort, "_id", 1);
        bson_append_document_end(&opts, &sort);
        if (limit > 0)
                BSON_APPEND_INT64(&opts, "limit", limit);
        out = docjson_find(store, INFRA_DB, coll, filter, &opts, drop, err);
        bson_destroy(&opts);
        return out;
}

handler_result_t infra_store_failed(rt_ctx_t *ctx, store_err_t err) {
        if (store_err_transient(err))
                return HANDLER_TRANSIENT;
        rt_reply_problem(ctx, 500, "Internal error", store_strerror(err));
        return HANDLER_OK;
}

size_t infra_expected_groups(const config_t *cfg, infra_expected_t *out,
                             size_t max) {
        size_t n = 0;
        for (size_t i = 0; i < registry_count && n < max; i++) {
                const group_def_t *def = registry_groups[i];
                snprintf(out[n].id, sizeof(out[n].id), "%s%s",
                         cfg->topic_prefix, def->name);
                out[n].group = def->name;
                out[n++].subscription = NULL;
                for (size_t s = 0; s < def->n_subscriptions && n < max; s++) {
                        snprintf(out[n].id, sizeof(out[n].id), "%s%s.%s",
                                 cfg->topic_prefix, def->name,
                                 def->subscriptions[s].name);
                        out[n].group = def->name;
                        out[n++].subscription = def->subscriptions[s].name;
                }
        }
        return n;
}

/* ---------------------------------------------------------------------------
 * What every answer says of its age
 * ------------------------------------------------------------------------ */

/* The cluster document ({} when there is none yet). */
static json_t *infra__current(infra_state_t *st, store_err_t *err) {
        bson_t filter = BSON_INITIALIZER;
        json_t *all, *doc;
        BSON_APPEND_UTF8(&filter, "_id", "current");
        all = infra_find(st->store, "cluster", &filter, 1, err);
        bson_destroy(&filter);
        if (!all)
                return NULL;
        doc = json_array_size(all) ? json_incref(json_array_get(all, 0))
                                   : json_object();
        json_decref(all);
        return doc;
}

/* out gets sampled_at, age_s, ok and unknown[] from the cluster doc. */
static void infra__age(infra_state_t *st, const json_t *cur, json_t *out) {
        json_t *unknown = json_array();
        int64_t sampled =
                json_integer_value(json_object_get(cur, "sampled_at"));
        int64_t ok_at = json_integer_value(json_object_get(cur, "ok_at"));
        int64_t now = (int64_t)clock_wall_ms();
        char text[640];
        bool ok = json_is_true(json_object_get(cur, "ok"));
        if (!sampled) {
                json_array_append_new(
                        unknown, json_string("everything: nothing sampled yet "
                                             "(the sampler starts with the "
                                             "first heartbeat of an "
                                             "infrastructure process)"));
        } else {
                if (!ok) {
                        char when[64] = "never";
                        if (ok_at)
                                snprintf(when, sizeof(when),
                                         "%" PRId64 " s ago",
                                         (now - ok_at) / 1000);
                        snprintf(
                                text, sizeof(text),
                                "the cluster now: the broker did not answer "
                                "the last sample (%s); the figures are from "
                                "the last good sample, %s",
                                json_string_value(json_object_get(cur, "error"))
                                        ?: "",
                                when);
                        json_array_append_new(unknown, json_string(text));
                }
                if (now - sampled > 3000LL * st->set->sample_s) {
                        snprintf(text, sizeof(text),
                                 "the cluster now: no sample for %" PRId64
                                 " s (no infrastructure process is running, "
                                 "or Kafka is down)",
                                 (now - sampled) / 1000);
                        json_array_append_new(unknown, json_string(text));
                }
        }
        json_object_set_new(out, "sampled_at",
                            sampled ? json_integer(sampled) : json_null());
        json_object_set_new(out, "age_s",
                            sampled ? json_real((double)(now - sampled) / 1000)
                                    : json_null());
        json_object_set_new(out, "ok", json_boolean(ok));
        json_object_set_new(out, "unknown", unknown);
}

/* A new reference to cur's member name, or dflt (taken over) when absent. */
static json_t *infra__or(const json_t *cur, const char *name, json_t *dflt) {
        json_t *v = json_object_get(cur, name);
        if (!v)
                return dflt;
        json_decref(dflt);
        return json_incref(v);
}

static infra_state_t *infra__st(rt_ctx_t *ctx) {
        return rt_state(ctx);
}

/* ---------------------------------------------------------------------------
 * Routes
 * ------------------------------------------------------------------------ */

handler_result_t infra_cluster(rt_ctx_t *ctx, const msgpack_object *body) {
        infra_state_t *st = infra__st(ctx);
        const msgpack_object *lim = codec_map_get(body, "limit");
        const msgpack_object *off = codec_map_get(body, "offset");
        slice_t search = codec_map_str(body, "search");
        int64_t limit = lim ? lim->via.i64 : 100, skip = off ? off->via.i64 : 0;
        bson_t filter = BSON_INITIALIZER, range;
        store_err_t err;
        json_t *cur, *out, *topics, *page;
        char lo[300], hi[310];

        if (!infra_allowed(ctx))
                return HANDLER_OK;
        if (!(cur = infra__current(st, &err)))
                return infra_store_failed(ctx, err);
        /* A name prefix after the system's own, e.g. "auth." */
        snprintf(lo, sizeof(lo), "%s%.*s", st->cfg->topic_prefix,
                 (int)search.len, search.ptr);
        snprintf(hi, sizeof(hi), "%s\xf4\x8f\xbf\xbf", lo);
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &range);
        BSON_APPEND_UTF8(&range, "$gte", lo);
        BSON_APPEND_UTF8(&range, "$lt", hi);
        bson_append_document_end(&filter, &range);
        topics = infra_find(st->store, "topics", &filter, skip + limit, &err);
        bson_destroy(&filter);
        if (!topics) {
                json_decref(cur);
                return infra_store_failed(ctx, err);
        }
        page = json_array();
        for (size_t i = (size_t)skip; i < json_array_size(topics); i++) {
                json_t *t = json_array_get(topics, i);
                json_object_del(t, "_id");
                json_object_del(t, "end_offsets");
                json_array_append(page, t);
        }
        json_decref(topics);
        out = json_object();
        infra__age(st, cur, out);
        json_array_append_new(
                json_object_get(out, "unknown"),
                json_string("topic sizes in bytes: librdkafka has no "
                            "DescribeLogDirs; messages retained (high - low "
                            "watermark) are given instead"));
        if (json_is_null(json_object_get(cur, "controller")) ||
            !json_object_get(cur, "controller"))
                json_array_append_new(
                        json_object_get(out, "unknown"),
                        json_string("the controller: the metadata did not "
                                    "name one"));
        json_object_set_new(out, "brokers",
                            infra__or(cur, "brokers", json_array()));
        json_object_set_new(out, "controller",
                            infra__or(cur, "controller", json_null()));
        json_object_set_new(out, "topics_total",
                            infra__or(cur, "topics", json_integer(0)));
        json_object_set_new(out, "partitions",
                            infra__or(cur, "partitions", json_integer(0)));
        json_object_set_new(out, "messages_per_s",
                            infra__or(cur, "messages_per_s", json_real(0)));
        json_object_set_new(out, "sample_ms",
                            infra__or(cur, "duration_ms", json_null()));
        json_object_set_new(out, "topics", page);
        json_object_set_new(out, "limit", json_integer(limit));
        json_object_set_new(out, "offset", json_integer(skip));
        json_decref(cur);
        return docjson_reply_present(ctx, 200, out);
}

/* The processes known by instance: {instance: process}. */
static json_t *infra__process_index(infra_state_t *st) {
        store_err_t err;
        json_t *procs = infra_processes(st, &err), *idx = json_object(), *p;
        size_t i;
        json_array_foreach(procs, i, p) {
                const char *inst =
                        json_string_value(json_object_get(p, "instance"));
                if (inst && !json_object_get(idx, inst))
                        json_object_set(idx, inst, p);
        }
        json_decref(procs);
        return idx;
}

/* Members with the process behind each (pid, mode, version) when its
 * heartbeat is known. */
static void infra__join_members(json_t *group, json_t *procs) {
        json_t *members = json_object_get(group, "members"), *m;
        size_t i;
        json_array_foreach(members, i, m) {
                const char *inst =
                        json_string_value(json_object_get(m, "instance"));
                json_t *p = inst ? json_object_get(procs, inst) : NULL;
                json_object_set_new(
                        m, "process",
                        p ? json_pack("{s:O, s:O, s:O, s:O, s:O}", "pid",
                                      json_object_get(p, "pid"), "host",
                                      json_object_get(p, "host"), "mode",
                                      json_object_get(p, "mode"), "version",
                                      json_object_get(p, "version"), "stale",
                                      json_object_get(p, "stale"))
                          : json_null());
        }
}

handler_result_t infra_groups(rt_ctx_t *ctx, const msgpack_object *body) {
        infra_state_t *st = infra__st(ctx);
        store_err_t err;
        json_t *cur, *groups, *out, *procs, *g;
        bson_t opts = BSON_INITIALIZER, doc;
        size_t i;
        (void)body;
        if (!infra_allowed(ctx))
                return HANDLER_OK;
        if (!(cur = infra__current(st, &err)))
                return infra_store_failed(ctx, err);
        /* Without their partitions (a few thousand entries for a large
         * group): the list gives their number only. */
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &doc);
        BSON_APPEND_INT32(&doc, "_id", 1);
        bson_append_document_end(&opts, &doc);
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &doc);
        BSON_APPEND_INT32(&doc, "partitions", 0);
        BSON_APPEND_INT32(&doc, "expires_at", 0);
        bson_append_document_end(&opts, &doc);
        groups = docjson_find(st->store, INFRA_DB, "groups", NULL, &opts, NULL,
                              &err);
        bson_destroy(&opts);
        if (!groups) {
                json_decref(cur);
                return infra_store_failed(ctx, err);
        }
        procs = infra__process_index(st);
        json_array_foreach(groups, i, g) {
                json_object_del(g, "_id");
                infra__join_members(g, procs);
        }
        out = json_object();
        infra__age(st, cur, out);
        json_object_set_new(out, "groups", groups);
        json_decref(procs);
        json_decref(cur);
        return docjson_reply_present(ctx, 200, out);
}

handler_result_t infra_group(rt_ctx_t *ctx, const msgpack_object *body) {
        infra_state_t *st = infra__st(ctx);
        slice_t id = codec_map_str(body, "group_id");
        bson_t filter = BSON_INITIALIZER, in;
        store_err_t err;
        json_t *cur, *found, *g, *hist, *points, *doc, *procs;
        uint64_t minute = clock_wall_ms() / 60000;
        size_t i;
        char key[16], hid[320];
        if (!infra_allowed(ctx))
                return HANDLER_OK;
        if (!(cur = infra__current(st, &err)))
                return infra_store_failed(ctx, err);
        bson_append_utf8(&filter, "_id", 3, id.ptr, (int)id.len);
        found = infra_find(st->store, "groups", &filter, 1, &err);
        bson_destroy(&filter);
        if (!found) {
                json_decref(cur);
                return infra_store_failed(ctx, err);
        }
        if (!json_array_size(found)) {
                json_decref(found);
                json_decref(cur);
                rt_reply_problem(ctx, 404, "Not Found",
                                 "no consumer group of this system has this "
                                 "id (GET /api/infrastructure/groups lists "
                                 "them)");
                return HANDLER_OK;
        }
        g = json_incref(json_array_get(found, 0));
        json_decref(found);
        /* The hour of history: one document per minute, by _id. */
        bson_init(&filter);
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &in);
        {
                bson_t arr;
                BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
                for (uint64_t m = 0; m <= INFRA_HISTORY_S / 60; m++) {
                        snprintf(key, sizeof(key), "%" PRIu64, m);
                        snprintf(hid, sizeof(hid), "%.*s|%" PRIu64, (int)id.len,
                                 id.ptr, minute - m);
                        BSON_APPEND_UTF8(&arr, key, hid);
                }
                bson_append_array_end(&in, &arr);
        }
        bson_append_document_end(&filter, &in);
        hist = infra_find(st->store, "history", &filter, 0, &err);
        bson_destroy(&filter);
        points = json_array();
        json_array_foreach(hist, i, doc) {
                size_t k;
                json_t *pt;
                json_array_foreach(
                        json_object_get(doc, "points"), k,
                        pt) if (json_integer_value(json_array_get(pt, 0)) >=
                                (json_int_t)(clock_wall_ms() -
                                             INFRA_HISTORY_S * 1000ull))
                        json_array_append(points, pt);
        }
        json_decref(hist);
        json_object_del(g, "_id");
        json_object_del(g, "partition_count"); /* it lists them */
        procs = infra__process_index(st);
        infra__join_members(g, procs);
        json_decref(procs);
        json_object_set_new(g, "history", points);
        json_object_set_new(
                g, "history_fields",
                json_pack("[s, s, s]", "t_ms", "lag", "consumed_per_s"));
        infra__age(st, cur, g);
        if (!json_array_size(json_object_get(g, "members")))
                json_array_append_new(
                        json_object_get(g, "unknown"),
                        json_string("lag in seconds of partitions without "
                                    "a commit, and who would consume them: "
                                    "the group has no members now"));
        json_decref(cur);
        return docjson_reply_present(ctx, 200, g);
}

handler_result_t infra_dead_letters(rt_ctx_t *ctx, const msgpack_object *body) {
        infra_state_t *st = infra__st(ctx);
        store_err_t err;
        json_t *cur, *out;
        (void)body;
        if (!infra_allowed(ctx))
                return HANDLER_OK;
        if (!(cur = infra__current(st, &err)))
                return infra_store_failed(ctx, err);
        out = json_object();
        infra__age(st, cur, out);
        json_object_set_new(out, "groups",
                            infra__or(cur, "dead_letters", json_array()));
        json_object_set_new(
                out, "commands",
                json_pack("{s:s, s:s, s:s, s:s}", "list",
                          "omnify dlq list GROUP [--type TYPE] [--since "
                          "UNIX_MS]",
                          "show", "omnify dlq show GROUP --id MESSAGE_ID",
                          "replay", "omnify dlq replay GROUP [--id MESSAGE_ID]",
                          "purge", "omnify dlq purge GROUP"));
        json_decref(cur);
        return docjson_reply_present(ctx, 200, out);
}

handler_result_t infra_dependencies(rt_ctx_t *ctx, const msgpack_object *body) {
        infra_state_t *st = infra__st(ctx);
        store_err_t err;
        json_t *cur, *deps, *out, *d;
        size_t i;
        (void)body;
        if (!infra_allowed(ctx))
                return HANDLER_OK;
        if (!(cur = infra__current(st, &err)))
                return infra_store_failed(ctx, err);
        if (!(deps = infra_find(st->store, "dependencies", NULL, 0, &err))) {
                json_decref(cur);
                return infra_store_failed(ctx, err);
        }
        out = json_object();
        infra__age(st, cur, out);
        json_array_foreach(deps, i, d) {
                json_object_set(d, "name", json_object_get(d, "_id"));
                json_object_del(d, "_id");
        }
        json_object_set_new(out, "dependencies", deps);
        json_decref(cur);
        return docjson_reply_present(ctx, 200, out);
}

handler_result_t infra_topology(rt_ctx_t *ctx, const msgpack_object *body) {
        infra_state_t *st = infra__st(ctx);
        store_err_t err;
        json_t *procs, *out, *groups, *edges, *p;
        size_t i;
        (void)body;
        if (!infra_allowed(ctx))
                return HANDLER_OK;
        if (!(procs = infra_processes(st, &err)))
                return infra_store_failed(ctx, err);
        groups = json_array();
        for (size_t g = 0; g < registry_count; g++) {
                const char *name = registry_groups[g]->name;
                json_t *list = json_array();
                int live = 0;
                json_array_foreach(procs, i, p) {
                        if (strcmp(json_string_value(
                                           json_object_get(p, "group"))
                                           ?: "",
                                   name) != 0)
                                continue;
                        if (!json_is_true(json_object_get(p, "stale")))
                                live++;
                        json_array_append(list, p);
                }
                json_array_append_new(
                        groups, json_pack("{s:s, s:i, s:o}", "group", name,
                                          "live", live, "processes", list));
        }
        /* The edges (HTTP): their own heartbeats, as the group "edge". */
        edges = json_array();
        json_array_foreach(procs, i, p) {
                if (strcmp(json_string_value(json_object_get(p, "group")) ?: "",
                           "edge") == 0)
                        json_array_append(edges, p);
        }
        out = json_pack("{s:I, s:o, s:o, s:i}", "now",
                        (json_int_t)clock_wall_ms(), "groups", groups, "edges",
                        edges, "stale_after_s", st->set->stale_s);
        json_decref(procs);
        return docjson_reply_present(ctx, 200, out);
}
