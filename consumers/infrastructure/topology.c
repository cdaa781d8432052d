/*
 * topology.c - heartbeats (shared/heartbeat.h) into the processes
 * collection, the processes known now, the sampler's clock, and the
 * history of the console's stream.
 *
 * A process's document is replaced by each beat and dropped by a TTL
 * index ten minutes after its last; views mark it stale after
 * OMNIFY_INFRA_STALE_S, or at once when its last beat said it stopped.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "codec.h"
#include "docjson.h"
#include "heartbeat.h"
#include "infra.h"
#include "log.h"
#include "msgid.h"

#define INFRA_PROCESS_TTL_MS (10 * 60 * 1000)

json_t *infra_processes(infra_state_t *st, store_err_t *err) {
        json_t *procs = infra_find(st->store, "processes", NULL, 0, err), *p;
        int64_t now = (int64_t)clock_wall_ms();
        size_t i;
        if (!procs)
                return NULL;
        json_array_foreach(procs, i, p) {
                int64_t seen =
                        json_integer_value(json_object_get(p, "seen_ms"));
                bool stale = now - seen > 1000LL * st->set->stale_s ||
                             json_is_true(json_object_get(p, "stopping"));
                json_object_del(p, "_id");
                json_object_set_new(p, "stale", json_boolean(stale));
                json_object_set_new(p, "age_s",
                                    json_real((double)(now - seen) / 1000));
        }
        return procs;
}

static uint64_t infra__mono_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

handler_result_t infra_on_heartbeat(rt_ctx_t *ctx, const msgpack_object *body) {
        infra_state_t *st = rt_state(ctx);
        const env_t *env = rt_env(ctx);
        char *text = NULL, id[320], exp[64], errstr[256];
        size_t len = 0;
        json_t *doc;
        bson_t *bd, filter = BSON_INITIALIZER;
        slice_t group = codec_map_str(body, "group"),
                instance = codec_map_str(body, "instance");
        int64_t now = (int64_t)clock_wall_ms();
        store_err_t err;

        if (!group.len || !instance.len ||
            codec_msgpack_to_json(env->value, &text, &len) != CODEC_OK) {
                rt_fail(ctx, "a heartbeat without group and instance");
                return HANDLER_PERMANENT;
        }
        doc = json_loadb(text, len, 0, NULL);
        free(text);
        if (!json_is_object(doc)) {
                json_decref(doc);
                return HANDLER_PERMANENT;
        }
        snprintf(id, sizeof(id), "%.*s|%.*s", (int)instance.len, instance.ptr,
                 (int)group.len, group.ptr);
        snprintf(exp, sizeof(exp), "%" PRId64, now + INFRA_PROCESS_TTL_MS);
        json_object_set_new(doc, "_id", json_string(id));
        /* The beat's own time: an old beat read late is not "seen now". */
        json_object_set_new(doc, "seen_ms",
                            json_integer(env->created_at_ms < now
                                                 ? env->created_at_ms
                                                 : now));
        json_object_set_new(
                doc, "expires_at",
                json_pack("{s:{s:s}}", "$date", "$numberLong", exp));
        bd = docjson_to_bson(doc);
        json_decref(doc);
        if (!bd)
                return HANDLER_PERMANENT;
        BSON_APPEND_UTF8(&filter, "_id", id);
        {
                store_bulk_t *b =
                        store_bulk_new(st->store, INFRA_DB, "processes", false);
                store_bulk_replace(b, &filter, bd, true);
                err = store_bulk_run(b, NULL, errstr, sizeof(errstr));
                store_bulk_destroy(b);
        }
        bson_destroy(&filter);
        bson_destroy(bd);
        if (err != STORE_OK)
                return store_err_transient(err) ? HANDLER_TRANSIENT
                                                : HANDLER_PERMANENT;

        /* The sampler's clock: a fresh beat of an infrastructure process,
         * once per period, never while replaying. */
        if (rt_replaying(ctx) || !slice_eq(group, "infrastructure") ||
            now - env->created_at_ms > 2LL * HEARTBEAT_INTERVAL_MS ||
            (int64_t)(clock_mono_ms() - st->last_sample_ms) <
                    1000LL * st->set->sample_s - 500)
                return HANDLER_OK;
        st->last_sample_ms = clock_mono_ms();
        {
                handler_result_t r;
                uint64_t t0 = infra__mono_us(), us;
                pthread_mutex_lock(&st->admin_lock);
                r = infra_sample(ctx, st);
                us = infra__mono_us() - t0;
                /* The counter last: a reader that sees a new sample count
                 * sees this sample's duration and requests. */
                metrics_set(st->m_last_us, (int64_t)us);
                metrics_observe_us(st->m_seconds, us);
                if (st->set->count_requests)
                        metrics_set(st->m_requests,
                                    (int64_t)kadmin_requests(st->admin));
                pthread_mutex_unlock(&st->admin_lock);
                metrics_add(st->m_samples, 1);
                return r;
        }
}

handler_result_t infra_snapshot(rt_ctx_t *ctx, const msgpack_object *body) {
        infra_state_t *st = rt_state(ctx);
        bson_t filter = BSON_INITIALIZER;
        store_err_t err;
        json_t *found, *events = json_array(), *out;
        (void)body;
        if (!infra_allowed(ctx)) {
                json_decref(events);
                return HANDLER_OK;
        }
        BSON_APPEND_UTF8(&filter, "_id", "snapshot");
        found = infra_find(st->store, "cluster", &filter, 1, &err);
        bson_destroy(&filter);
        if (!found) {
                json_decref(events);
                return infra_store_failed(ctx, err);
        }
        if (json_array_size(found)) {
                json_t *doc = json_array_get(found, 0);
                char id[64];
                snprintf(id, sizeof(id), "snapshot-%" PRId64,
                         (int64_t)json_integer_value(json_object_get(
                                 json_object_get(doc, "data"), "sampled_at")));
                json_array_append_new(
                        events,
                        json_pack("{s:s, s:s, s:O}", "id", id, "type",
                                  "infrastructure.snapshot.sampled", "data",
                                  json_object_get(doc, "data")));
        }
        json_decref(found);
        out = json_pack("{s:o, s:b}", "events", events, "done", false);
        return docjson_reply_present(ctx, 200, out);
}
