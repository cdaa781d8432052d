/*
 * cmdsend.c - commands a group sends to itself (see cmdsend.h).
 */
#include "cmdsend.h"

#include <assert.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "codec.h"
#include "envelope.h"

void cmdsend_derive_id(int64_t at_ms, const char *ns, const char *name,
                       int64_t n, char out[MSGID_TEXT_SIZE]) {
        unsigned char h[SHA256_DIGEST_LENGTH];
        size_t ns_len = strlen(ns) + 1, name_len = strlen(name) + 1, len;
        uint64_t ms = at_ms > 0 ? (uint64_t)at_ms : 0;
        char *buf = xmalloc(ns_len + name_len + 24);
        msgid_t id;

        /* ns NUL name NUL n */
        memcpy(buf, ns, ns_len);
        memcpy(buf + ns_len, name, name_len);
        len = ns_len + name_len +
              (size_t)snprintf(buf + ns_len + name_len, 24, "%lld",
                               (long long)n);
        SHA256((const unsigned char *)buf, len, h);
        free(buf);
        for (int i = 0; i < 6; i++)
                id.b[i] = (uint8_t)(ms >> (40 - 8 * i));
        id.b[6] = (uint8_t)(0x70 | (h[0] & 0x0f));
        id.b[7] = h[1];
        id.b[8] = (uint8_t)(0x80 | (h[2] & 0x3f));
        memcpy(&id.b[9], &h[3], 7);
        msgid_format(&id, out);
}

static bool cmdsend__fail(char *errstr, size_t errlen, const char *why) {
        if (errstr && errlen)
                snprintf(errstr, errlen, "%s", why);
        return false;
}

bool cmdsend_check(const char *type, int version, slice_t body,
                   const cmd_caller_t *caller, char *errstr, size_t errlen) {
        msgid_t id;
        size_t off = 0;
        msgpack_zone zone;
        msgpack_object obj;
        msgpack_unpack_return ret;

        if (!type || !*type || strlen(type) >= CMDSEND_TYPE_MAX)
                return cmdsend__fail(errstr, errlen, "bad command type");
        for (const char *c = type; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
                      *c == '.' || *c == '_'))
                        return cmdsend__fail(errstr, errlen,
                                             "bad command type");
        if (version < 1 || version > 1000000)
                return cmdsend__fail(errstr, errlen, "bad schema version");
        if (!body.ptr || !body.len || codec_msgpack_check(body) != CODEC_OK)
                return cmdsend__fail(errstr, errlen,
                                     "the body is not one msgpack map");
        msgpack_zone_init(&zone, 1024);
        ret = msgpack_unpack(body.ptr, body.len, &off, &zone, &obj);
        if (ret != MSGPACK_UNPACK_SUCCESS || off != body.len ||
            obj.type != MSGPACK_OBJECT_MAP) {
                msgpack_zone_destroy(&zone);
                return cmdsend__fail(errstr, errlen,
                                     "the body is not one msgpack map");
        }
        msgpack_zone_destroy(&zone);
        if (caller) {
                if (caller->tenant.len > CMDSEND_CALLER_MAX ||
                    caller->user.len > CMDSEND_CALLER_MAX ||
                    caller->roles.len > CMDSEND_CALLER_MAX)
                        return cmdsend__fail(errstr, errlen,
                                             "caller fields too long");
                if (caller->correlation_id.len &&
                    !msgid_parse(caller->correlation_id.ptr,
                                 caller->correlation_id.len, &id))
                        return cmdsend__fail(errstr, errlen,
                                             "the correlation id is not a "
                                             "UUID");
        }
        return true;
}

cmd_caller_t cmdsend_caller(const env_t *env) {
        return (cmd_caller_t){env->tenant, env->user, env->roles,
                              env->correlation_id.len ? env->correlation_id
                                                      : env->id};
}

bus_err_t cmdsend_produce(bus_t *bus, const char *topic, const cmdsend_msg_t *m,
                          bus_delivery_t *d) {
        env_t env;

        memset(&env, 0, sizeof(env));
        env.id = slice_of(m->id);
        env.type = slice_of(m->type);
        env.schema_version = m->version;
        env.created_at_ms = m->created_at_ms;
        env.tenant = m->caller.tenant;
        env.user = m->caller.user;
        env.roles = m->caller.roles;
        env.correlation_id = m->caller.correlation_id;
        return bus_produce(bus, topic, RD_KAFKA_PARTITION_UA, m->key,
                           env_headers(&env), m->body, d);
}

/* ---------------------------------------------------------------------------
 * Batches
 * ------------------------------------------------------------------------ */

typedef struct cmdsend_item {
        bus_delivery_t d; /* first: the report's pointer is the item's */
        cmdsend_batch_t *batch;
        bus_err_t err;
        bool produced;
} cmdsend_item_t;

struct cmdsend_batch {
        pthread_mutex_t lock; /* guards pending and the items' err */
        pthread_cond_t cond;
        size_t n, pending;
        cmdsend_item_t *items;
};

static void cmdsend__done(bus_delivery_t *d, bus_err_t err) {
        cmdsend_item_t *it = (cmdsend_item_t *)d;
        cmdsend_batch_t *b = it->batch;
        pthread_mutex_lock(&b->lock);
        it->err = err;
        if (--b->pending == 0)
                pthread_cond_broadcast(&b->cond);
        pthread_mutex_unlock(&b->lock);
}

cmdsend_batch_t *cmdsend_batch_new(size_t n) {
        cmdsend_batch_t *b = xcalloc(1, sizeof(*b));
        b->n = n;
        b->items = xcalloc(n ? n : 1, sizeof(*b->items));
        for (size_t i = 0; i < n; i++) {
                b->items[i].d.done = cmdsend__done;
                b->items[i].batch = b;
                b->items[i].err = BUS_ERROR;
        }
        pthread_mutex_init(&b->lock, NULL);
        pthread_cond_init(&b->cond, NULL);
        return b;
}

void cmdsend_batch_produce(cmdsend_batch_t *b, size_t i, bus_t *bus,
                           const char *topic, const cmdsend_msg_t *m) {
        cmdsend_item_t *it = &b->items[i];
        bus_err_t err;

        assert(i < b->n && !it->produced);
        it->produced = true;
        pthread_mutex_lock(&b->lock);
        b->pending++;
        pthread_mutex_unlock(&b->lock);
        err = cmdsend_produce(bus, topic, m, &it->d);
        if (err) {
                /* No report will come. */
                pthread_mutex_lock(&b->lock);
                it->err = err;
                b->pending--;
                pthread_mutex_unlock(&b->lock);
        }
}

void cmdsend_batch_wait(cmdsend_batch_t *b) {
        pthread_mutex_lock(&b->lock);
        while (b->pending)
                pthread_cond_wait(&b->cond, &b->lock);
        pthread_mutex_unlock(&b->lock);
}

bus_err_t cmdsend_batch_result(const cmdsend_batch_t *b, size_t i) {
        assert(i < b->n);
        return b->items[i].err;
}

void cmdsend_batch_destroy(cmdsend_batch_t *b) {
        if (!b)
                return;
        cmdsend_batch_wait(b);
        pthread_cond_destroy(&b->cond);
        pthread_mutex_destroy(&b->lock);
        free(b->items);
        free(b);
}
