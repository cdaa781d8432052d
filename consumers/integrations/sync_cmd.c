/*
 * sync_cmd.c - the page command's body (read and packed), and commands
 * sent as a tenant (see sync.h, sync_internal.h).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "codec.h"
#include "log.h"
#include "msgid.h"
#include "sync_internal.h"

/* ---------------------------------------------------------------------------
 * The page command
 * ------------------------------------------------------------------------ */

void sync__cmd_clear(page_cmd_t *p) {
        free(p->cursor);
        json_decref(p->counts);
        memset(p, 0, sizeof(*p));
}

/* A map of {string: int} as a JSON object. */
static json_t *map_counts(const msgpack_object *v) {
        json_t *o = json_object();
        if (!v || v->type != MSGPACK_OBJECT_MAP)
                return o;
        for (uint32_t i = 0; i < v->via.map.size; i++) {
                const msgpack_object_kv *kv = &v->via.map.ptr[i];
                char k[64];
                if (kv->key.type != MSGPACK_OBJECT_STR)
                        continue;
                ig_copy_slice(
                        k, sizeof(k),
                        (slice_t){kv->key.via.str.ptr, kv->key.via.str.size});
                if (kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                        json_object_set_new(
                                o, k,
                                json_integer((json_int_t)kv->val.via.u64));
        }
        return o;
}

bool sync__cmd_read(const msgpack_object *body, page_cmd_t *p) {
        slice_t s;
        memset(p, 0, sizeof(*p));
        ig_copy_slice(p->sync_id, sizeof(p->sync_id),
                      codec_map_str(body, "sync_id"));
        ig_copy_slice(p->connection_id, sizeof(p->connection_id),
                      codec_map_str(body, "connection_id"));
        p->stream = (int)ig_map_int(body, "stream", 0);
        p->page = ig_map_int(body, "page", 0);
        s = codec_map_str(body, "cursor");
        p->cursor = xstrndup(s.ptr ? s.ptr : "{}", s.ptr ? s.len : 2);
        ig_copy_slice(p->kind, sizeof(p->kind), codec_map_str(body, "kind"));
        p->first_sync = ig_map_bool(body, "first_sync");
        p->records = ig_map_int(body, "records", 0);
        p->counts = map_counts(codec_map_get(body, "counts"));
        p->attempt = (int)ig_map_int(body, "attempt", 0);
        s = codec_map_str(body, "since");
        if (!ig_day_parse(s.ptr, s.len, &p->since))
                return false;
        s = codec_map_str(body, "until");
        return ig_day_parse(s.ptr, s.len, &p->until);
}

void sync__pack_counts(msgpack_packer *pk, const json_t *counts) {
        const char *k;
        json_t *v;
        msgpack_pack_map(pk, (uint32_t)json_object_size(counts));
        json_object_foreach((json_t *)counts, k, v)
                ig_kv_int(pk, k, json_integer_value(v));
}

void sync__cmd_pack(const page_cmd_t *p, msgpack_sbuffer *sb) {
        msgpack_packer pk;
        msgpack_sbuffer_init(sb);
        msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, p->attempt ? 12 : 11);
        ig_kv_str(&pk, "sync_id", p->sync_id);
        ig_kv_str(&pk, "connection_id", p->connection_id);
        ig_kv_int(&pk, "stream", p->stream);
        ig_kv_int(&pk, "page", p->page);
        ig_kv_str(&pk, "cursor", p->cursor);
        ig_kv_day(&pk, "since", p->since);
        ig_kv_day(&pk, "until", p->until);
        ig_kv_str(&pk, "kind", p->kind);
        codec_pack_str(&pk, "first_sync");
        if (p->first_sync)
                msgpack_pack_true(&pk);
        else
                msgpack_pack_false(&pk);
        ig_kv_int(&pk, "records", p->records);
        codec_pack_str(&pk, "counts");
        sync__pack_counts(&pk, p->counts);
        if (p->attempt)
                ig_kv_int(&pk, "attempt", p->attempt);
}

cmd_caller_t sync__caller(const rt_ctx_t *ctx) {
        const env_t *env = rt_env(ctx);
        return (cmd_caller_t){env->tenant, env->user, env->roles,
                              env->correlation_id};
}

/* ---------------------------------------------------------------------------
 * Sending as a tenant
 * ------------------------------------------------------------------------ */

typedef struct send_wait {
        bus_delivery_t base;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool done;
        bus_err_t err;
} send_wait_t;

static void send__done(bus_delivery_t *d, bus_err_t err) {
        send_wait_t *w = (send_wait_t *)d;
        pthread_mutex_lock(&w->lock);
        w->done = true;
        w->err = err;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
}

ig_err_t ig_send_as(ig_state_t *st, const char *type, const char *key,
                    const msgpack_sbuffer *body, const char *tenant,
                    const char *user, const char *roles, int64_t at_ms,
                    const char *seed) {
        bus_t *bus = runtime_bus(st->rt);
        send_wait_t w = {.base = {send__done}};
        cmdsend_msg_t m = {0};
        char topic[256];
        bus_err_t err;

        if (!bus) {
                log_warn("%s: no broker here (harness): not sent", type);
                return IG_NOT_CONFIGURED;
        }
        cmdsend_derive_id(at_ms, "integrations", seed, 0, m.id);
        m.type = type;
        m.version = 1;
        m.key = slice_of(key);
        m.body = (slice_t){body->data, body->size};
        m.caller = (cmd_caller_t){slice_of(tenant), slice_of(user),
                                  slice_of(roles), SLICE_NULL};
        m.created_at_ms = at_ms;
        bus_topic(st->cfg, "integrations.commands", topic, sizeof(topic));
        pthread_mutex_init(&w.lock, NULL);
        pthread_cond_init(&w.cond, NULL);
        err = cmdsend_produce(bus, topic, &m, &w.base);
        if (err == BUS_OK) {
                pthread_mutex_lock(&w.lock);
                while (!w.done)
                        pthread_cond_wait(&w.cond, &w.lock);
                err = w.err;
                pthread_mutex_unlock(&w.lock);
        }
        pthread_cond_destroy(&w.cond);
        pthread_mutex_destroy(&w.lock);
        if (err != BUS_OK) {
                log_warn("%s: not produced (%s)", type, bus_strerror(err));
                return IG_TRANSIENT;
        }
        return IG_OK;
}
