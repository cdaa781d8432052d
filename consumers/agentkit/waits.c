/*
 * waits.c - wait_event steps: an index of waiting steps, and the
 * subscription that matches every group's events against it.
 *
 * Collection waits: {_id: "<tenant>|<event type>", waiters: [{run_id,
 * step_id, a, filter (JSON text), since}]}. A step that starts waiting adds
 * itself (one update, idempotent: $addToSet of the same entry), and takes
 * itself out when it ends. The subscription (consumer group
 * <prefix>agentkit.waits) reads the events topics of every group; for a
 * poll of events it looks the (tenant, type) pairs up in one query, and for
 * each waiter whose filter the event passes (every filter field, a dotted
 * path into the event's body, equal to its value) and that began waiting
 * before the event was made, sends agentkit.run.matched to the run, under
 * an id derived from the event and the waiter: a redelivered event sends
 * the same message again, and the run applies it once.
 *
 * Tenants never meet: the index is keyed by the event's tenant header.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentkit_internal.h"

#define AK_WAIT_KEY_MAX 320

static void ak__wait_key(const char *tenant, const char *event, char *out,
                         size_t size) {
        snprintf(out, size, "%s|%s", tenant ? tenant : "", event ? event : "");
}

store_err_t ak_wait_add(ak_state_t *st, const json_t *run, const char *step_id,
                        int a, const char *event, const json_t *filter,
                        int64_t since_ms) {
        bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, add, w;
        char key[AK_WAIT_KEY_MAX], errstr[256];
        char *text = json_dumps(filter ? filter : json_object(),
                                JSON_COMPACT | JSON_SORT_KEYS);
        store_err_t err;
        ak__wait_key(ak_str(run, "tenant"), event, key, sizeof(key));
        BSON_APPEND_UTF8(&f, "_id", key);
        BSON_APPEND_DOCUMENT_BEGIN(&u, "$addToSet", &add);
        BSON_APPEND_DOCUMENT_BEGIN(&add, "waiters", &w);
        BSON_APPEND_UTF8(&w, "run_id", ak_str(run, "run_id"));
        BSON_APPEND_UTF8(&w, "step_id", step_id);
        BSON_APPEND_INT32(&w, "a", a);
        BSON_APPEND_UTF8(&w, "filter", text ? text : "{}");
        BSON_APPEND_INT64(&w, "since", since_ms);
        bson_append_document_end(&add, &w);
        bson_append_document_end(&u, &add);
        err = store_update(st->store, runtime_db(st->rt), AK_WAITS, &f, &u,
                           STORE_UPSERT, NULL, errstr, sizeof(errstr));
        if (err)
                log_warn("wait index: %s", errstr);
        free(text);
        bson_destroy(&f);
        bson_destroy(&u);
        return err;
}

store_err_t ak_wait_remove(ak_state_t *st, const json_t *run,
                           const char *step_id, int a, const char *event) {
        bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, pull, w;
        char key[AK_WAIT_KEY_MAX], errstr[256];
        store_err_t err;
        if (!event)
                return STORE_OK;
        ak__wait_key(ak_str(run, "tenant"), event, key, sizeof(key));
        BSON_APPEND_UTF8(&f, "_id", key);
        BSON_APPEND_DOCUMENT_BEGIN(&u, "$pull", &pull);
        BSON_APPEND_DOCUMENT_BEGIN(&pull, "waiters", &w);
        BSON_APPEND_UTF8(&w, "run_id", ak_str(run, "run_id"));
        BSON_APPEND_UTF8(&w, "step_id", step_id);
        BSON_APPEND_INT32(&w, "a", a);
        bson_append_document_end(&pull, &w);
        bson_append_document_end(&u, &pull);
        err = store_update(st->store, runtime_db(st->rt), AK_WAITS, &f, &u, 0,
                           NULL, errstr, sizeof(errstr));
        if (err == STORE_NOT_FOUND)
                err = STORE_OK;
        if (err)
                log_warn("wait index: %s", errstr);
        bson_destroy(&f);
        bson_destroy(&u);
        return err;
}

/* ---------------------------------------------------------------------------
 * Matching
 * ------------------------------------------------------------------------ */

static const json_t *ak__path(const json_t *v, const char *path) {
        char part[128];
        while (v && *path) {
                const char *dot = strchr(path, '.');
                size_t n = dot ? (size_t)(dot - path) : strlen(path);
                if (n >= sizeof(part))
                        return NULL;
                memcpy(part, path, n);
                part[n] = '\0';
                v = json_object_get(v, part);
                path += n + (dot ? 1 : 0);
        }
        return v;
}

static bool ak__same(const json_t *a, const json_t *b) {
        if (json_is_number(a) && json_is_number(b))
                return json_number_value(a) == json_number_value(b);
        return json_equal(a, b);
}

static bool ak__passes(const json_t *filter, const json_t *body) {
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)filter, k, v) {
                const json_t *x = ak__path(body, k);
                if (!x || !ak__same(x, v))
                        return false;
        }
        return true;
}

typedef struct ak_waits_found {
        json_t *by_key; /* key -> array of waiters */
} ak_waits_found_t;

static bool ak__found_one(const bson_t *doc, void *arg) {
        ak_waits_found_t *f = arg;
        char *text = bson_as_relaxed_extended_json(doc, NULL);
        json_t *j = text ? json_loads(text, 0, NULL) : NULL;
        bson_free(text);
        if (ak_str(j, "_id"))
                json_object_set(f->by_key, ak_str(j, "_id"),
                                json_object_get(j, "waiters"));
        json_decref(j);
        return true;
}

static void ak__matched(rt_ctx_t *ctx, const env_t *env, const json_t *body,
                        const json_t *w) {
        json_t *msg;
        msgpack_sbuffer sb;
        msgpack_packer pk;
        rt_out_opts_t o = {0};
        char seed[400], id[MSGID_TEXT_SIZE];
        snprintf(seed, sizeof(seed), "%.*s|%s|%s|%lld", (int)env->id.len,
                 env->id.ptr, ak_str(w, "run_id"), ak_str(w, "step_id"),
                 (long long)ak_int(w, "a", 0));
        ak_derive_id(env->created_at_ms, seed, id);
        o.id = id;
        o.tenant = env->tenant;
        msg = json_pack("{s:s, s:s, s:I, s:s#, s:s#, s:O}", "run_id",
                        ak_str(w, "run_id"), "step_id", ak_str(w, "step_id"),
                        "attempt", (json_int_t)ak_int(w, "a", 1), "event_id",
                        env->id.ptr, (int)env->id.len, "event_type",
                        env->type.ptr, (int)env->type.len, "event", body);
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        ak_pack_json(&pk, msg);
        rt_send_with(ctx, "agentkit.run.matched", slice_of(ak_str(w, "run_id")),
                     &sb, &o);
        msgpack_sbuffer_destroy(&sb);
        json_decref(msg);
}

handler_result_t ak_waits_batch(rt_ctx_t *const *ctxs,
                                const msgpack_object *const *bodies, size_t n) {
        ak_state_t *st;
        bson_t filter = BSON_INITIALIZER, in, ids;
        ak_waits_found_t found;
        char errstr[256];
        store_err_t err;
        size_t k = 0;
        if (!n)
                return HANDLER_OK;
        st = ak_state(ctxs[0]);
        found.by_key = json_object();
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &in);
        BSON_APPEND_ARRAY_BEGIN(&in, "$in", &ids);
        for (size_t i = 0; i < n; i++) {
                const env_t *env = rt_env(ctxs[i]);
                char key[AK_WAIT_KEY_MAX], idx[16];
                const char *s;
                snprintf(key, sizeof(key), "%.*s|%.*s", (int)env->tenant.len,
                         env->tenant.ptr ? env->tenant.ptr : "",
                         (int)env->type.len, env->type.ptr);
                bson_uint32_to_string((uint32_t)k++, &s, idx, sizeof(idx));
                BSON_APPEND_UTF8(&ids, s, key);
        }
        bson_append_array_end(&in, &ids);
        bson_append_document_end(&filter, &in);
        err = store_find(st->store, runtime_db(st->rt), AK_WAITS, &filter, NULL,
                         ak__found_one, &found, errstr, sizeof(errstr));
        bson_destroy(&filter);
        if (err) {
                json_decref(found.by_key);
                log_warn("wait index: %s", errstr);
                return store_err_transient(err) ? HANDLER_TRANSIENT
                                                : HANDLER_PERMANENT;
        }
        for (size_t i = 0; json_object_size(found.by_key) && i < n; i++) {
                const env_t *env = rt_env(ctxs[i]);
                char key[AK_WAIT_KEY_MAX];
                const json_t *waiters, *w;
                json_t *body = NULL;
                size_t j;
                snprintf(key, sizeof(key), "%.*s|%.*s", (int)env->tenant.len,
                         env->tenant.ptr ? env->tenant.ptr : "",
                         (int)env->type.len, env->type.ptr);
                waiters = json_object_get(found.by_key, key);
                json_array_foreach(waiters, j, w) {
                        json_t *f;
                        if (ak_int(w, "since", 0) > env->created_at_ms)
                                continue;
                        if (!body && !(body = ak_json_of_msgpack(bodies[i])))
                                break;
                        f = json_loads(ak_str(w, "filter") ? ak_str(w, "filter")
                                                           : "{}",
                                       0, NULL);
                        if (f && ak__passes(f, body))
                                ak__matched(ctxs[i], env, body, w);
                        json_decref(f);
                }
                json_decref(body);
        }
        json_decref(found.by_key);
        return HANDLER_OK;
}

static const char *const ak_wait_topics[] = {
        "auth.events",           "integrations.events",
        "agentkit.events",       "analytics.events",
        "onboarding.events",     "ml.events",
        "infrastructure.events", NULL,
};

static const group_handler_t ak_wait_handlers[] = {
        {"auth.*", NULL, ak_waits_batch},
        {"integrations.*", NULL, ak_waits_batch},
        {"agentkit.*", NULL, ak_waits_batch},
        {"analytics.*", NULL, ak_waits_batch},
        {"onboarding.*", NULL, ak_waits_batch},
        {"ml.*", NULL, ak_waits_batch},
        {"infrastructure.*", NULL, ak_waits_batch},
};

const group_subscription_t ak_subscriptions[] = {
        {"waits", ak_wait_topics, ak_wait_handlers,
         sizeof(ak_wait_handlers) / sizeof(ak_wait_handlers[0]), 0},
};
const size_t ak_n_subscriptions =
        sizeof(ak_subscriptions) / sizeof(ak_subscriptions[0]);
