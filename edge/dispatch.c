/*
 * dispatch.c - a checked request becomes a command on its group's topic.
 *
 * On an HTTP loop thread: the body (JSON, or the raw bytes for a raw_body
 * route), the path and query parameters and the declared headers become one
 * msgpack map (codec_request_to_msgpack converts each to its declared
 * type), validated against the route's schema; it passes the rate limits
 * and goes to <group>.commands, keyed by the route's key field (or the
 * tenant), with the envelope headers (ids, the caller from the token, trace
 * context, Idempotency-Key). The request is
 * registered in the pending table and suspended before the produce call, so
 * whichever comes first (the delivery report on the bus's thread, the reply
 * on the reply thread, the deadline) finds it. Nothing here blocks: the
 * producer queues and returns.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "codec.h"
#include "edge_internal.h"
#include "envelope.h"
#include "log.h"

/* Waits for the broker's answer on one command. Separate from the request:
 * the request may be answered (by its reply) and freed before this runs. */
typedef struct edge_delivery {
        bus_delivery_t base;
        edge_t *edge;
        msgid_t id;
} edge_delivery_t;

static void edge__on_delivery(bus_delivery_t *d, bus_err_t err) {
        edge_delivery_t *ed = (edge_delivery_t *)d;
        pending_entry_t *e = pending_take_delivered(ed->edge->pending, &ed->id,
                                                    err == BUS_OK);
        free(ed);
        if (!e)
                return;
        if (err)
                log_warn("command not delivered: %s", bus_strerror(err));
        edge__complete(e->owner,
                       err == BUS_OK ? OUT_ACCEPTED : OUT_UNAVAILABLE);
}

/* W3C traceparent: 00-<32 hex>-<16 hex>-<2 hex>, ids not all zero. */
static bool edge__valid_traceparent(const char *tp) {
        static const int dash[] = {2, 35, 52};
        size_t n = tp ? strlen(tp) : 0;
        bool trace_zero = true, span_zero = true;
        if (n != 55 || tp[0] != '0' || tp[1] != '0')
                return false;
        for (size_t i = 0; i < n; i++) {
                bool is_dash = i == (size_t)dash[0] || i == (size_t)dash[1] ||
                               i == (size_t)dash[2];
                if (is_dash) {
                        if (tp[i] != '-')
                                return false;
                        continue;
                }
                if (!((tp[i] >= '0' && tp[i] <= '9') ||
                      (tp[i] >= 'a' && tp[i] <= 'f')))
                        return false;
                if (i > 2 && i < 35 && tp[i] != '0')
                        trace_zero = false;
                if (i > 35 && i < 52 && tp[i] != '0')
                        span_zero = false;
        }
        return !trace_zero && !span_zero;
}

static void edge__new_traceparent(char out[56]) {
        static const char hex[] = "0123456789abcdef";
        uint8_t r[24];
        size_t j = 0;
        msgid_random(r, sizeof(r));
        r[0] |= 1; /* never all zero */
        r[16] |= 1;
        out[j++] = '0';
        out[j++] = '0';
        out[j++] = '-';
        for (int i = 0; i < 16; i++) {
                out[j++] = hex[r[i] >> 4];
                out[j++] = hex[r[i] & 15];
        }
        out[j++] = '-';
        for (int i = 16; i < 24; i++) {
                out[j++] = hex[r[i] >> 4];
                out[j++] = hex[r[i] & 15];
        }
        memcpy(out + j, "-01", 4);
}

/* Prefer: respond-async, wait=N (RFC 7240). */
static void edge__prefer(const char *prefer, bool *async, int *wait_ms) {
        const char *p = prefer;
        while (p && *p) {
                while (*p == ' ' || *p == ',' || *p == '\t')
                        p++;
                if (edge__ieq_prefix(p, "respond-async")) {
                        *async = true;
                } else if (edge__ieq_prefix(p, "wait=")) {
                        long v = strtol(p + 5, NULL, 10);
                        if (v > 0 && v < 3600)
                                *wait_ms = (int)v * 1000;
                }
                p = strchr(p, ',');
        }
}

static bool edge__valid_idempotency_key(const char *k) {
        size_t n = k ? strlen(k) : 0;
        if (n == 0 || n > 255)
                return false;
        for (size_t i = 0; i < n; i++)
                if (k[i] < 0x21 || k[i] > 0x7e)
                        return false;
        return true;
}

/* ---------------------------------------------------------------------------
 * The command: body, path, query and headers as one map
 * ------------------------------------------------------------------------ */

typedef struct edge_query {
        arena_t *arena;
        codec_kv_t *kv;
        size_t n, cap;
        bool full; /* EDGE_MAX_QUERY reached: the rest is refused */
} edge_query_t;

#define EDGE_MAX_QUERY 64

static enum MHD_Result edge__query_kv(void *cls, enum MHD_ValueKind kind,
                                      const char *key, size_t key_size,
                                      const char *value, size_t value_size) {
        edge_query_t *q = cls;
        (void)kind;
        if (q->n == EDGE_MAX_QUERY) {
                q->full = true;
                return MHD_NO;
        }
        if (q->n == q->cap) {
                size_t cap = q->cap ? q->cap * 2 : 8;
                codec_kv_t *grown = arena_alloc(q->arena, cap * sizeof(*grown));
                if (!grown)
                        return MHD_NO;
                if (q->n)
                        memcpy(grown, q->kv, q->n * sizeof(*grown));
                q->kv = grown;
                q->cap = cap;
        }
        /* "?flag" has no value: an empty one. */
        q->kv[q->n++] = (codec_kv_t){
                (slice_t){key, key_size},
                (slice_t){value ? value : "", value ? value_size : 0}};
        return MHD_YES;
}

static slice_t edge__header(void *ctx, const char *name) {
        req_t *req = ctx;
        const char *v = NULL;
        size_t len = 0;
        if (MHD_lookup_connection_value_n(req->conn, MHD_HEADER_KIND, name,
                                          strlen(name), &v, &len) != MHD_YES ||
            !v)
                return SLICE_NULL;
        return (slice_t){v, len};
}

bool edge__command(req_t *req, const schema_msg_t *msg, msgpack_sbuffer *mp,
                   msgpack_zone *zone, msgpack_object *obj,
                   enum MHD_Result *ret) {
        edge_query_t q = {.arena = req->arena};
        codec_request_t rq = {.body = {req->body, req->body_len},
                              .path = &req->params,
                              .header = edge__header,
                              .header_ctx = req};
        schema_report_t report;
        char err[256];
        size_t off = 0;
        codec_err_t cerr;

        MHD_get_connection_values_n(req->conn, MHD_GET_ARGUMENT_KIND,
                                    edge__query_kv, &q);
        if (q.full) {
                *ret = edge__problem(req, 400, "Bad Request",
                                     "too many query parameters", NULL, NULL);
                return false;
        }
        rq.query = q.kv;
        rq.n_query = q.n;
        cerr = codec_request_to_msgpack(msg, &rq, mp, &report, err,
                                        sizeof(err));
        if (cerr == CODEC_BAD_PARAM) {
                *ret = edge__problem(req, 400, "Bad Request",
                                     "a parameter is invalid", &report, NULL);
                return false;
        }
        if (cerr != CODEC_OK) {
                *ret = edge__problem(req, 400, "Bad Request", err, NULL, NULL);
                return false;
        }
        if (msgpack_unpack(mp->data, mp->size, &off, zone, obj) !=
                    MSGPACK_UNPACK_SUCCESS ||
            !schema_validate(msg, obj, &report)) {
                *ret = edge__problem(req, 400, "Bad Request",
                                     "the request does not match the schema",
                                     &report, NULL);
                return false;
        }
        return true;
}

/* The Kafka key: the route's key field when it has one and the command
 * carries it; else the tenant, which keeps a tenant's commands in order;
 * without one, the Idempotency-Key sends repeats to the same partition,
 * where they are handled one after the other. */
static slice_t edge__key(const req_t *req, const msgpack_object *obj,
                         const env_t *env, char *buf, size_t size) {
        const char *field = req->msg->route.key;
        const msgpack_object *v = field ? codec_map_get(obj, field) : NULL;
        if (v && v->type == MSGPACK_OBJECT_STR && v->via.str.size)
                return (slice_t){v->via.str.ptr, v->via.str.size};
        if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                return (slice_t){
                        buf, (size_t)snprintf(buf, size, "%llu",
                                              (unsigned long long)v->via.u64)};
        if (v && v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                return (slice_t){buf, (size_t)snprintf(buf, size, "%lld",
                                                       (long long)v->via.i64)};
        return env->tenant.len            ? env->tenant
               : env->idempotency_key.len ? env->idempotency_key
                                          : env->id;
}

/* ---------------------------------------------------------------------------
 * Publishing
 * ------------------------------------------------------------------------ */

enum MHD_Result edge__send(req_t *req, const schema_msg_t *msg,
                           const msgpack_sbuffer *mp, const msgpack_object *obj,
                           slice_t idempotency_key, int wait_ms) {
        edge_t *edge = req->edge;
        const config_t *cfg = edge->cfg;
        char traceparent[56], tv[24], key_buf[24];
        const char *topic;
        env_t env = {0};
        msgid_t id;
        edge_delivery_t *delivery;
        const char *h;
        bus_err_t berr;

        if (!atomic_load(&edge->started))
                return edge__starting(req);
        if (!bus_is_up(edge->bus))
                return edge__unavailable(req, "the message bus is unreachable");
        if (atomic_load(&edge->inflight) >= cfg->max_inflight)
                return edge__unavailable(req, "too many requests in flight");

        h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                        "traceparent");
        if (h && edge__valid_traceparent(h))
                memcpy(traceparent, h, 56);
        else
                edge__new_traceparent(traceparent);
        msgid_new(&id);
        msgid_format(&id, req->id);
        env.id = slice_of(req->id);
        env.type = slice_of(msg->type);
        env.schema_version = msg->version;
        env.created_at_ms = (int64_t)clock_wall_ms();
        env.correlation_id = env.id;
        env.traceparent = slice_of(traceparent);
        env.idempotency_key = idempotency_key;
        if (!req->async)
                env.reply_to = slice_of(edge->reply_to);
        if (req->authed) {
                snprintf(tv, sizeof(tv), "%lld", (long long)req->claims.tv);
                env.tenant = slice_of(req->claims.tid);
                env.user = slice_of(req->claims.sub);
                env.roles = slice_of(req->claims.roles);
                env.session = slice_of(req->claims.sid);
                env.terms_version = slice_of(tv);
        }
        env.client_ip = slice_of(req->client_ip);
        h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                        MHD_HTTP_HEADER_USER_AGENT);
        env.user_agent = (slice_t){h ? h : "", h ? strnlen(h, 256) : 0};
        topic = edge__commands_topic(edge, msg->group);
        if (!topic)
                return edge__unavailable(req,
                                         "no command topic for this route");

        req->pending.id = id;
        req->pending.async = req->async;
        req->pending.owner = req;
        req->pending.deadline_ms =
                clock_mono_ms() +
                (uint64_t)(req->async ? cfg->kafka_message_timeout_ms + 1000
                                      : wait_ms);
        pending_add(edge->pending, &req->pending);
        req->registered = true;
        edge__wait(req);

        log_set_ids(req->id, req->id);
        log_set_trace(traceparent, strlen(traceparent));
        log_debug("%s %s -> %s", req->msg->route.method, req->msg->route.path,
                  topic);

        delivery = xmalloc(sizeof(*delivery));
        delivery->base.done = edge__on_delivery;
        delivery->edge = edge;
        delivery->id = id;
        berr = bus_produce(edge->bus, topic, RD_KAFKA_PARTITION_UA,
                           edge__key(req, obj, &env, key_buf, sizeof(key_buf)),
                           env_headers(&env), (slice_t){mp->data, mp->size},
                           &delivery->base);
        if (berr != BUS_OK) {
                free(delivery);
                log_warn("produce to %s: %s", topic, bus_strerror(berr));
                if (pending_take(edge->pending, &id))
                        edge__complete(req, OUT_UNAVAILABLE);
        }
        log_context_clear();
        return MHD_YES;
}

/* The route's rate limit, per client address and per account (the
 * rate_key field): 0, or the seconds to wait. */
static int edge__rate(req_t *req, const msgpack_object *obj) {
        const schema_route_t *route = &req->msg->route;
        slice_t account = route->rate_key ? codec_map_str(obj, route->rate_key)
                                          : SLICE_NULL;
        return guard_rate(req->edge->guard, route->rate_limit, req->client_ip,
                          account);
}

/* Publish the command and suspend until it completes. */
enum MHD_Result edge__dispatch(req_t *req) {
        edge_t *edge = req->edge;
        const config_t *cfg = edge->cfg;
        msgpack_sbuffer mp;
        msgpack_zone zone;
        msgpack_object obj;
        int wait_ms = cfg->reply_timeout_ms, wait;
        const char *idem;
        enum MHD_Result ret;

        if (req->overloaded)
                return edge__unavailable(
                        req, "the edge is holding too many request bodies");
        if (req->too_large)
                return edge__problem(req, 413, "Content Too Large",
                                     "the body exceeds the configured limit",
                                     NULL, NULL);
        msgpack_sbuffer_init(&mp);
        msgpack_zone_init(&zone, 2048);
        if (!edge__command(req, req->msg, &mp, &zone, &obj, &ret))
                goto out;

        req->async = req->msg->route.mode == SCHEMA_MODE_ASYNC;
        edge__prefer(MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                 "Prefer"),
                     &req->async, &wait_ms);
        if (wait_ms > cfg->reply_timeout_ms)
                wait_ms = cfg->reply_timeout_ms;
        idem = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                           "Idempotency-Key");
        if (idem && !edge__valid_idempotency_key(idem)) {
                ret = edge__problem(req, 400, "Bad Request",
                                    "Idempotency-Key must be 1-255 visible "
                                    "ASCII characters",
                                    NULL, NULL);
                goto out;
        }
        if (req->msg->route.rate_limit && (wait = edge__rate(req, &obj))) {
                char secs[16];
                const char *hdr[] = {"Retry-After", secs, NULL};
                snprintf(secs, sizeof(secs), "%d", wait);
                metrics_add(edge->m_rate_limited, 1);
                ret = edge__problem(req, 429, "Too Many Requests",
                                    "slow down: too many attempts", NULL, hdr);
                goto out;
        }
        ret = edge__send(req, req->msg, &mp, &obj, slice_of(idem), wait_ms);
out:
        msgpack_zone_destroy(&zone);
        msgpack_sbuffer_destroy(&mp);
        return ret;
}
