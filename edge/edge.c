/*
 * edge.c - the HTTP edge (see edge.h).
 *
 * Threads:
 *   HTTP loop threads (libmicrohttpd, a pool of cfg->http_threads): parse,
 *     check, produce, suspend; later build the answer once resumed.
 *   the delivery thread (the bus's): broker acknowledged or refused a
 *     command; completes async requests and failed sends.
 *   the reply thread: reads this replica's reply partition, completes
 *     sync requests, and sweeps requests past their deadline (504).
 *   the lookup thread: reads the operation log for /api/operations/{id}.
 * Whoever takes a request's pending entry completes it (pending.h).
 */
#include "edge.h"

#include <ctype.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "arena.h"
#include "codec.h"
#include "envelope.h"
#include "guard.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "msgid.h"
#include "ops.h"
#include "oplog.h"
#include "pending.h"
#include "service.h"
#include "token.h"

#define EDGE_MAX_OPS 16
#define EDGE_SWEEP_BATCH 256

typedef enum req_outcome {
        OUT_NONE,
        OUT_REPLY,       /* reply_mp holds the group's answer */
        OUT_ACCEPTED,    /* async: the broker has it */
        OUT_TIMEOUT,     /* no reply in time: 504 with the operation id */
        OUT_UNAVAILABLE, /* Kafka refused or is down: 503 */
        OUT_OPERATION,   /* operation lookup done: reply_mp/status or pending */
        OUT_OP_PENDING,
        OUT_OP_NOT_FOUND,
        OUT_OP_STORE_DOWN,
        OUT_SHUTDOWN,
} req_outcome_t;

typedef struct req {
        struct edge *edge;
        struct MHD_Connection *conn;
        arena_t *arena;
        const schema_msg_t *msg;
        schema_params_t params;
        const char *label; /* route label for metrics */
        char *body;        /* try_realloc'd; freed at completion */
        size_t body_len;
        bool too_large;
        bool overloaded; /* the edge's body budget was spent */
        bool waiting;    /* suspended, counted in flight */
        bool registered; /* has a pending entry */
        bool async;
        bool answered;
        bool begun;              /* routed and checked */
        const char *cors_origin; /* an allowed Origin: answers carry CORS */
        char client_ip[64];
        pending_entry_t pending;
        char id[MSGID_TEXT_SIZE];
        token_claims_t claims;
        bool authed;
        uint64_t t0_us;
        unsigned status; /* the answer's status once known */
        /* Set by the completing thread before it resumes the connection. */
        req_outcome_t outcome;
        int reply_status;
        char *reply_mp; /* malloc'd msgpack */
        size_t reply_mp_len;
        char op_tenant[64];
        char op_user[64];
        struct req *next_job; /* lookup queue */
} req_t;

struct edge {
        const config_t *cfg;
        const schema_set_t *schemas;
        bus_t *bus;
        store_t *store;
        bus_consumer_t *listener;
        pending_t *pending;
        struct MHD_Daemon *daemon;
        token_keys_t keys;
        char reply_to[300];
        char replies_topic[256];
        char *openapi;
        size_t openapi_len;
        runtime_t *ops[EDGE_MAX_OPS];
        size_t n_ops;
        atomic_bool stopping;
        atomic_int inflight;
        atomic_llong buffered; /* body bytes held by requests, all threads */
        pthread_t reply_thread, lookup_thread;
        bool reply_started, lookup_started;
        pthread_mutex_t
                jobs_lock; /* guards jobs_head/tail and lookup wakeups */
        pthread_cond_t jobs_cond;
        req_t *jobs_head, *jobs_tail;
        metrics_counter_t *m_inflight, *m_produce_errors, *m_rate_limited;
        guard_t *guard;
        bus_consumer_t *events; /* auth.events: revocations, documents */
        pthread_t events_thread;
        bool events_started;
        msgid_t versions_id; /* our pending auth.legal.versions query */
        atomic_bool versions_known;
        char **cors; /* allowed origins */
        size_t n_cors;
};

/* ---------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

static uint64_t edge__now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static bool edge__ieq_prefix(const char *s, const char *prefix) {
        for (; *prefix; s++, prefix++)
                if (tolower((unsigned char)*s) != *prefix)
                        return false;
        return true;
}

/* "application/json" optionally followed by parameters. */
static bool edge__is_json(const char *ctype) {
        if (!ctype || !edge__ieq_prefix(ctype, "application/json"))
                return false;
        ctype += strlen("application/json");
        return *ctype == '\0' || *ctype == ';' || *ctype == ' ';
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

/* Mark the request as completed by this thread and wake its connection. */
static void edge__complete(req_t *req, req_outcome_t outcome) {
        req->outcome = outcome;
        MHD_resume_connection(req->conn);
}

/* ---------------------------------------------------------------------------
 * Answers
 * ------------------------------------------------------------------------ */

/* extra plus the CORS headers when the request came from an allowed
 * origin, into out (room for 16 pairs). */
static const char *const *
edge__headers(const req_t *req, const char *const *extra, const char **out) {
        size_t n = 0;
        for (; extra && extra[0] && extra[1] && n < 20; extra += 2) {
                out[n++] = extra[0];
                out[n++] = extra[1];
        }
        if (req->cors_origin) {
                out[n++] = "Access-Control-Allow-Origin";
                out[n++] = req->cors_origin;
                out[n++] = "Vary";
                out[n++] = "Origin";
                out[n++] = "Access-Control-Expose-Headers";
                out[n++] = "Location, Retry-After, X-Request-Id";
        }
        out[n] = NULL;
        return out;
}

static enum MHD_Result edge__answer(req_t *req, unsigned status,
                                    const char *ctype, const char *body,
                                    size_t len, const char *const *extra) {
        const char *hdrs[32];
        req->status = status;
        req->answered = true;
        return http_send(req->conn, status, ctype, body, len,
                         edge__headers(req, extra, hdrs));
}

static enum MHD_Result edge__problem(req_t *req, unsigned status,
                                     const char *title, const char *detail,
                                     const schema_report_t *report,
                                     const char *const *extra) {
        const char *hdrs[32];
        req->status = status;
        req->answered = true;
        return http_send_problem(req->conn, status, title, detail, report,
                                 edge__headers(req, extra, hdrs));
}

static enum MHD_Result edge__unavailable(req_t *req, const char *detail) {
        static const char *const retry[] = {"Retry-After", "1", NULL};
        metrics_add(req->edge->m_produce_errors, 1);
        return edge__problem(req, 503, "Service Unavailable", detail, NULL,
                             retry);
}

/* The group's reply, rendered as JSON. */
static enum MHD_Result edge__send_reply(req_t *req, int status, const char *mp,
                                        size_t mp_len) {
        char *json = NULL;
        size_t json_len = 0;
        enum MHD_Result ret;
        char retry[16];
        const char *extra[] = {"X-Request-Id", req->id, NULL, NULL, NULL};
        if (status == 429 || status == 503) {
                /* A group says how long to wait in its problem body. */
                msgpack_zone zone;
                msgpack_object obj;
                size_t off = 0;
                msgpack_zone_init(&zone, 1024);
                if (msgpack_unpack(mp, mp_len, &off, &zone, &obj) ==
                    MSGPACK_UNPACK_SUCCESS) {
                        const msgpack_object *ra =
                                codec_map_get(&obj, "retry_after");
                        long long secs = 1;
                        if (ra && ra->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                            ra->via.u64 < 86400 * 7)
                                secs = (long long)ra->via.u64;
                        snprintf(retry, sizeof(retry), "%lld", secs);
                        extra[2] = "Retry-After";
                        extra[3] = retry;
                }
                msgpack_zone_destroy(&zone);
        }
        if (status < 100 || status > 599 ||
            codec_msgpack_to_json((slice_t){mp, mp_len}, &json, &json_len) !=
                    CODEC_OK) {
                log_error("reply to %s is malformed", req->id);
                return edge__problem(req, 502, "Bad Gateway",
                                     "the service answered something malformed",
                                     NULL, NULL);
        }
        ret = edge__answer(req, (unsigned)status,
                           status >= 400 ? "application/problem+json"
                                         : "application/json",
                           json, json_len, extra);
        free(json);
        return ret;
}

static enum MHD_Result edge__send_operation(req_t *req, const char *state,
                                            int status, const char *mp,
                                            size_t mp_len) {
        char *json = NULL, *text;
        size_t json_len = 0;
        enum MHD_Result ret;
        size_t cap;
        if (mp && codec_msgpack_to_json((slice_t){mp, mp_len}, &json,
                                        &json_len) != CODEC_OK)
                return edge__problem(req, 502, "Bad Gateway",
                                     "the stored result is malformed", NULL,
                                     NULL);
        cap = json_len + 256;
        text = xmalloc(cap);
        if (json)
                snprintf(text, cap,
                         "{\"operation_id\":\"%s\",\"status\":\"%s\","
                         "\"result\":{\"status\":%d,\"body\":%s}}",
                         req->id, state, status, json);
        else
                snprintf(text, cap,
                         "{\"operation_id\":\"%s\",\"status\":\"%s\"}", req->id,
                         state);
        ret = edge__answer(req, 200, "application/json", text, strlen(text),
                           NULL);
        free(text);
        free(json);
        return ret;
}

/* Build the answer of a request that was suspended and is now resumed. */
static enum MHD_Result edge__finish(req_t *req) {
        char location[128];
        const char *loc[] = {"Location", location, "X-Request-Id", req->id,
                             NULL};
        char body[320];

        snprintf(location, sizeof(location), "/api/operations/%s", req->id);
        switch (req->outcome) {
        case OUT_REPLY:
                return edge__send_reply(req, req->reply_status, req->reply_mp,
                                        req->reply_mp_len);
        case OUT_ACCEPTED:
                snprintf(body, sizeof(body),
                         "{\"operation_id\":\"%s\",\"status\":\"accepted\"}",
                         req->id);
                return edge__answer(req, 202, "application/json", body,
                                    strlen(body), loc);
        case OUT_TIMEOUT: {
                char detail[160];
                snprintf(detail, sizeof(detail),
                         "no reply in time; the command stays queued as "
                         "operation %s",
                         req->id);
                return edge__problem(req, 504, "Gateway Timeout", detail, NULL,
                                     loc);
        }
        case OUT_UNAVAILABLE:
                return edge__unavailable(
                        req, "the message bus did not accept the command");
        case OUT_OPERATION:
                /* A tenant's operation is its user's: other tenants and
                 * other members of the same one see nothing. */
                if ((req->op_tenant[0] &&
                     (!req->authed ||
                      strcmp(req->op_tenant, req->claims.tid) != 0)) ||
                    (req->op_user[0] &&
                     (!req->authed ||
                      strcmp(req->op_user, req->claims.sub) != 0)))
                        return edge__problem(req, 404, "Not Found",
                                             "no such operation", NULL, NULL);
                return edge__send_operation(req, "completed", req->reply_status,
                                            req->reply_mp, req->reply_mp_len);
        case OUT_OP_PENDING:
                return edge__send_operation(req, "pending", 0, NULL, 0);
        case OUT_OP_NOT_FOUND:
                return edge__problem(req, 404, "Not Found", "no such operation",
                                     NULL, NULL);
        case OUT_OP_STORE_DOWN:
                return edge__unavailable(req,
                                         "the operation log is unreachable");
        case OUT_SHUTDOWN:
                return edge__unavailable(req, "the edge is shutting down");
        case OUT_NONE:
                break;
        }
        return edge__problem(req, 500, "Internal Server Error", NULL, NULL,
                             NULL);
}

/* ---------------------------------------------------------------------------
 * Kafka: produce, delivery reports, replies, deadlines
 * ------------------------------------------------------------------------ */

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

/* The answer to our auth.legal.versions query: {terms: N, privacy: M}. */
static void edge__on_versions(edge_t *edge, const env_t *env) {
        msgpack_zone zone;
        msgpack_object obj;
        static const char *const types[] = {"terms", "privacy"};
        if (env->status != 200) {
                log_warn("document versions unavailable (status %d); asking "
                         "again later",
                         env->status);
                return;
        }
        msgpack_zone_init(&zone, 1024);
        if (env_unpack(env, &zone, &obj) == ENV_OK) {
                for (size_t i = 0; i < 2; i++) {
                        const msgpack_object *v = codec_map_get(&obj, types[i]);
                        if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                                guard_set_version(edge->guard,
                                                  slice_of(types[i]),
                                                  (int64_t)v->via.u64);
                }
                atomic_store(&edge->versions_known, true);
                log_info("current terms version %lld",
                         (long long)guard_version(edge->guard, "terms"));
        }
        msgpack_zone_destroy(&zone);
}

static void edge__on_reply(edge_t *edge, const rd_kafka_message_t *msg) {
        env_t env;
        char err[160];
        msgid_t corr;
        pending_entry_t *e;
        req_t *req;

        if (env_decode(msg, &env, err, sizeof(err)) != ENV_OK) {
                log_warn("malformed reply at offset %lld: %s",
                         (long long)msg->offset, err);
                return;
        }
        if (!msgid_parse(env.correlation_id.ptr, env.correlation_id.len,
                         &corr)) {
                log_warn("reply without a correlation id");
                return;
        }
        if (memcmp(corr.b, edge->versions_id.b, 16) == 0) {
                edge__on_versions(edge, &env);
                return;
        }
        e = pending_take(edge->pending, &corr);
        if (!e)
                return; /* timed out already, or another edge's */
        req = e->owner;
        req->reply_status = env.status ? env.status : 500;
        req->reply_mp = xmalloc(env.value.len ? env.value.len : 1);
        memcpy(req->reply_mp, env.value.ptr, env.value.len);
        req->reply_mp_len = env.value.len;
        edge__complete(req, OUT_REPLY);
}

static void *edge__reply_loop(void *arg) {
        edge_t *edge = arg;
        pending_entry_t *expired[EDGE_SWEEP_BATCH];
        log_set_group("edge");
        while (!atomic_load(&edge->stopping)) {
                rd_kafka_message_t *msg = bus_consumer_poll(edge->listener, 20);
                size_t n;
                if (msg) {
                        edge__on_reply(edge, msg);
                        rd_kafka_message_destroy(msg);
                }
                n = pending_take_expired(edge->pending, clock_mono_ms(),
                                         expired, EDGE_SWEEP_BATCH);
                for (size_t i = 0; i < n; i++) {
                        req_t *req = expired[i]->owner;
                        edge__complete(req, req->async ? OUT_UNAVAILABLE
                                                       : OUT_TIMEOUT);
                }
        }
        return NULL;
}

/* ---------------------------------------------------------------------------
 * auth.events: revoked sessions and published documents
 * ------------------------------------------------------------------------ */

/* An integer field given as a number or a decimal string. */
static int64_t edge__int_field(const msgpack_object *map, const char *key) {
        const msgpack_object *v = codec_map_get(map, key);
        if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                return (int64_t)v->via.u64;
        if (v && v->type == MSGPACK_OBJECT_STR && v->via.str.size < 20) {
                char buf[24];
                memcpy(buf, v->via.str.ptr, v->via.str.size);
                buf[v->via.str.size] = '\0';
                return strtoll(buf, NULL, 10);
        }
        return -1;
}

static void edge__on_event(edge_t *edge, const rd_kafka_message_t *msg) {
        env_t env;
        char err[160];
        msgpack_zone zone;
        msgpack_object obj;

        if (env_decode(msg, &env, err, sizeof(err)) != ENV_OK)
                return; /* not ours to judge: the group that wrote it logs */
        if (!slice_eq(env.type, "auth.session.revoked") &&
            !slice_eq(env.type, "auth.legal.published"))
                return;
        msgpack_zone_init(&zone, 1024);
        if (env_unpack(&env, &zone, &obj) == ENV_OK) {
                if (slice_eq(env.type, "auth.session.revoked")) {
                        int64_t until = edge__int_field(&obj, "until");
                        guard_revoke(edge->guard,
                                     codec_map_str(&obj, "session_id"),
                                     until > 0 ? (uint64_t)until * 1000u
                                               : clock_wall_ms() + 86400000u);
                } else {
                        guard_set_version(edge->guard,
                                          codec_map_str(&obj, "type"),
                                          edge__int_field(&obj, "version"));
                }
        }
        msgpack_zone_destroy(&zone);
}

/* Ask auth for the current document versions; the reply comes back on our
 * reply partition (edge__on_versions). */
static void edge__ask_versions(edge_t *edge) {
        char id[MSGID_TEXT_SIZE], topic[256];
        env_t env = {0};
        static const char empty_map = (char)0x80;
        msgid_new(&edge->versions_id);
        msgid_format(&edge->versions_id, id);
        env.id = slice_of(id);
        env.type = slice_of("auth.legal.versions");
        env.schema_version = 1;
        env.created_at_ms = (int64_t)clock_wall_ms();
        env.correlation_id = env.id;
        env.reply_to = slice_of(edge->reply_to);
        bus_topic(edge->cfg, "auth.commands", topic, sizeof(topic));
        if (bus_produce(edge->bus, topic, RD_KAFKA_PARTITION_UA, env.id,
                        env_headers(&env), (slice_t){&empty_map, 1},
                        NULL) != BUS_OK)
                log_warn("cannot ask for the document versions yet");
}

static void *edge__events_loop(void *arg) {
        edge_t *edge = arg;
        uint64_t next_ask = 0;
        int backoff_ms = 1000;
        log_set_group("edge");
        while (!atomic_load(&edge->stopping)) {
                rd_kafka_message_t *msg = bus_consumer_poll(edge->events, 100);
                if (msg) {
                        edge__on_event(edge, msg);
                        rd_kafka_message_destroy(msg);
                }
                if (!atomic_load(&edge->versions_known) &&
                    clock_mono_ms() >= next_ask && bus_is_up(edge->bus)) {
                        edge__ask_versions(edge);
                        next_ask = clock_mono_ms() + (uint64_t)backoff_ms;
                        if (backoff_ms < 30000)
                                backoff_ms *= 2;
                }
        }
        return NULL;
}

/* ---------------------------------------------------------------------------
 * The operation log lookups
 * ------------------------------------------------------------------------ */

static void edge__lookup(edge_t *edge, req_t *req) {
        oplog_entry_t entry;
        char err[256];
        msgid_t id;
        store_err_t serr;

        msgid_parse(req->id, MSGID_TEXT_LEN, &id);
        serr = oplog_find(edge->store, slice_of(req->id), &entry, err,
                          sizeof(err));
        if (serr == STORE_OK) {
                req->reply_status = entry.status;
                req->reply_mp = entry.body;
                if (entry.events)
                        bson_destroy(entry.events);
                req->reply_mp_len = entry.body_len;
                snprintf(req->op_tenant, sizeof(req->op_tenant), "%s",
                         entry.tenant);
                snprintf(req->op_user, sizeof(req->op_user), "%s", entry.user);
                edge__complete(req, OUT_OPERATION);
                return;
        }
        if (serr != STORE_NOT_FOUND) {
                log_warn("operation lookup: %s", err);
                edge__complete(req, OUT_OP_STORE_DOWN);
                return;
        }
        /* Not recorded yet: pending if the id could be a live operation. */
        {
                uint64_t t = msgid_time_ms(&id), now = clock_wall_ms();
                uint64_t horizon =
                        (uint64_t)edge->cfg->operation_retention_s * 1000u;
                bool live = t <= now + 60000 && t + horizon >= now;
                edge__complete(req, live ? OUT_OP_PENDING : OUT_OP_NOT_FOUND);
        }
}

static void *edge__lookup_loop(void *arg) {
        edge_t *edge = arg;
        log_set_group("edge");
        pthread_mutex_lock(&edge->jobs_lock);
        for (;;) {
                req_t *req;
                while (!edge->jobs_head && !atomic_load(&edge->stopping))
                        pthread_cond_wait(&edge->jobs_cond, &edge->jobs_lock);
                req = edge->jobs_head;
                if (!req)
                        break; /* stopping and nothing left */
                edge->jobs_head = req->next_job;
                if (!edge->jobs_head)
                        edge->jobs_tail = NULL;
                pthread_mutex_unlock(&edge->jobs_lock);
                edge__lookup(edge, req);
                pthread_mutex_lock(&edge->jobs_lock);
        }
        pthread_mutex_unlock(&edge->jobs_lock);
        return NULL;
}

static void edge__enqueue_lookup(edge_t *edge, req_t *req) {
        pthread_mutex_lock(&edge->jobs_lock);
        req->next_job = NULL;
        if (edge->jobs_tail)
                edge->jobs_tail->next_job = req;
        else
                edge->jobs_head = req;
        edge->jobs_tail = req;
        pthread_cond_signal(&edge->jobs_cond);
        pthread_mutex_unlock(&edge->jobs_lock);
}

/* ---------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------ */

/* Suspend the request until another thread completes it. */
static void edge__wait(req_t *req) {
        req->waiting = true;
        atomic_fetch_add(&req->edge->inflight, 1);
        metrics_add(req->edge->m_inflight, 1);
        MHD_suspend_connection(req->conn);
}

/* Check the bearer token when the route needs one (or when one is sent). */
static int edge__authenticate(req_t *req, bool required) {
        const char *h = MHD_lookup_connection_value(
                req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        token_err_t err;
        if (!h)
                return required ? -1 : 0;
        if (!edge__ieq_prefix(h, "bearer "))
                return -1;
        h += 7;
        while (*h == ' ')
                h++;
        err = token_verify(&req->edge->keys, slice_of(h), time(NULL),
                           &req->claims);
        if (err != TOKEN_OK) {
                log_info("token refused: %s", token_strerror(err));
                return -1;
        }
        if (req->claims.sid[0] &&
            guard_is_revoked(req->edge->guard, slice_of(req->claims.sid))) {
                log_info("token of a revoked session refused");
                return -1;
        }
        req->authed = true;
        return 0;
}

static enum MHD_Result edge__unauthorized(req_t *req) {
        static const char *const hdr[] = {"WWW-Authenticate",
                                          "Bearer realm=\"omnify\"", NULL};
        return edge__problem(req, 401, "Unauthorized",
                             "a valid bearer token is required", NULL, hdr);
}

/* Publish the command and suspend until it completes. */
static enum MHD_Result edge__dispatch(req_t *req) {
        edge_t *edge = req->edge;
        const config_t *cfg = edge->cfg;
        msgpack_sbuffer mp;
        char err[256], topic[256], traceparent[56], tv[24];
        schema_report_t report;
        msgpack_zone zone;
        msgpack_object obj;
        size_t off = 0;
        codec_err_t cerr;
        env_t env = {0};
        msgid_t id;
        edge_delivery_t *delivery;
        int wait_ms = cfg->reply_timeout_ms;
        const char *h;
        bus_err_t berr;
        enum MHD_Result ret;

        if (req->overloaded)
                return edge__unavailable(
                        req, "the edge is holding too many request bodies");
        if (req->too_large)
                return edge__problem(req, 413, "Content Too Large",
                                     "the body exceeds the configured limit",
                                     NULL, NULL);
        msgpack_sbuffer_init(&mp);
        /* Body and path parameters as the declarations say (types,
         * defaults); query and header fields are not read here yet. */
        cerr = codec_request_to_msgpack(
                req->msg,
                &(codec_request_t){.body = {req->body, req->body_len},
                                   .path = &req->params},
                &mp, &report, err, sizeof(err));
        if (cerr != CODEC_OK) {
                msgpack_sbuffer_destroy(&mp);
                return edge__problem(req, 400, "Bad Request", err,
                                     cerr == CODEC_BAD_PARAM ? &report : NULL,
                                     NULL);
        }
        msgpack_zone_init(&zone, 2048);
        if (msgpack_unpack(mp.data, mp.size, &off, &zone, &obj) !=
                    MSGPACK_UNPACK_SUCCESS ||
            !schema_validate(req->msg, &obj, &report)) {
                msgpack_zone_destroy(&zone);
                msgpack_sbuffer_destroy(&mp);
                return edge__problem(req, 400, "Bad Request",
                                     "the body does not match the schema",
                                     &report, NULL);
        }
        msgpack_zone_destroy(&zone);

        req->async = req->msg->route.mode == SCHEMA_MODE_ASYNC;
        edge__prefer(MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                 "Prefer"),
                     &req->async, &wait_ms);
        if (wait_ms > cfg->reply_timeout_ms)
                wait_ms = cfg->reply_timeout_ms;

        h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                        "Idempotency-Key");
        if (h && !edge__valid_idempotency_key(h)) {
                msgpack_sbuffer_destroy(&mp);
                return edge__problem(req, 400, "Bad Request",
                                     "Idempotency-Key must be 1-255 visible "
                                     "ASCII characters",
                                     NULL, NULL);
        }
        env.idempotency_key = slice_of(h);
        h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                        "traceparent");
        if (h && edge__valid_traceparent(h))
                snprintf(traceparent, sizeof(traceparent), "%s", h);
        else
                edge__new_traceparent(traceparent);

        if (req->msg->route.rate_limit) {
                slice_t account = SLICE_NULL;
                int wait;
                msgpack_zone_init(&zone, 1024);
                off = 0;
                if (req->msg->route.rate_key &&
                    msgpack_unpack(mp.data, mp.size, &off, &zone, &obj) ==
                            MSGPACK_UNPACK_SUCCESS)
                        account = codec_map_str(&obj, req->msg->route.rate_key);
                wait = guard_rate(edge->guard, req->msg->route.rate_limit,
                                  req->client_ip, account);
                msgpack_zone_destroy(&zone);
                if (wait) {
                        char secs[16];
                        const char *hdr[] = {"Retry-After", secs, NULL};
                        snprintf(secs, sizeof(secs), "%d", wait);
                        msgpack_sbuffer_destroy(&mp);
                        metrics_add(edge->m_rate_limited, 1);
                        return edge__problem(req, 429, "Too Many Requests",
                                             "slow down: too many attempts",
                                             NULL, hdr);
                }
        }
        if (!bus_is_up(edge->bus)) {
                msgpack_sbuffer_destroy(&mp);
                return edge__unavailable(req, "the message bus is unreachable");
        }
        if (atomic_load(&edge->inflight) >= cfg->max_inflight) {
                msgpack_sbuffer_destroy(&mp);
                return edge__unavailable(req, "too many requests in flight");
        }

        msgid_new(&id);
        msgid_format(&id, req->id);
        env.id = slice_of(req->id);
        env.type = slice_of(req->msg->type);
        env.schema_version = req->msg->version;
        env.created_at_ms = (int64_t)clock_wall_ms();
        env.correlation_id = env.id;
        env.traceparent = slice_of(traceparent);
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
        snprintf(topic, sizeof(topic), "%s%s.commands", cfg->topic_prefix,
                 req->msg->group);

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
        /* Key: the tenant keeps a tenant's commands in order; without one,
         * the Idempotency-Key sends repeats to the same partition, where
         * they are handled one after the other. */
        berr = bus_produce(edge->bus, topic, RD_KAFKA_PARTITION_UA,
                           env.tenant.len            ? env.tenant
                           : env.idempotency_key.len ? env.idempotency_key
                                                     : env.id,
                           env_headers(&env), (slice_t){mp.data, mp.size},
                           &delivery->base);
        msgpack_sbuffer_destroy(&mp);
        ret = MHD_YES;
        if (berr != BUS_OK) {
                free(delivery);
                log_warn("produce to %s: %s", topic, bus_strerror(berr));
                if (pending_take(edge->pending, &id))
                        edge__complete(req, OUT_UNAVAILABLE);
        }
        log_context_clear();
        return ret;
}

static enum MHD_Result edge__builtin(req_t *req, const char *url) {
        edge_t *edge = req->edge;
        if (strcmp(url, "/health") == 0) {
                static const char ok[] = "{\"status\":\"ok\"}",
                                  failed[] = "{\"status\":\"failed\","
                                             "\"reason\":\"the Kafka producer "
                                             "hit a fatal error\"}";
                req->label = "health";
                if (bus_failed(edge->bus))
                        return edge__answer(req, 503, "application/json",
                                            failed, sizeof(failed) - 1, NULL);
                return edge__answer(req, 200, "application/json", ok,
                                    sizeof(ok) - 1, NULL);
        }
        if (strcmp(url, "/ready") == 0) {
                char body[160];
                bool kafka = bus_is_up(edge->bus),
                     store = store_is_up(edge->store);
                req->label = "ready";
                snprintf(body, sizeof(body),
                         "{\"status\":\"%s\",\"kafka\":%s,\"store\":%s}",
                         kafka && store ? "ready" : "not ready",
                         kafka ? "true" : "false", store ? "true" : "false");
                return edge__answer(req, kafka && store ? 200 : 503,
                                    "application/json", body, strlen(body),
                                    NULL);
        }
        if (strcmp(url, "/metrics") == 0) {
                size_t len;
                char *text = metrics_render(&len);
                enum MHD_Result ret;
                req->label = "metrics";
                ret = edge__answer(req, 200, "text/plain; version=0.0.4", text,
                                   len, NULL);
                free(text);
                return ret;
        }
        if (strcmp(url, "/openapi.json") == 0) {
                req->label = "openapi";
                return edge__answer(req, 200, "application/json", edge->openapi,
                                    edge->openapi_len, NULL);
        }
        return MHD_NO; /* not a built-in */
}

/* /ops/<group>/<what> in the monolith. */
static enum MHD_Result edge__ops(req_t *req, const char *url) {
        const char *group = url + strlen("/ops/");
        const char *slash = strchr(group, '/');
        req->label = "ops";
        if (slash) {
                for (size_t i = 0; i < req->edge->n_ops; i++) {
                        runtime_t *rt = req->edge->ops[i];
                        const char *name = runtime_def(rt)->name;
                        if (strlen(name) == (size_t)(slash - group) &&
                            strncmp(name, group, (size_t)(slash - group)) ==
                                    0) {
                                int status;
                                char *body;
                                size_t len;
                                const char *ctype;
                                enum MHD_Result ret;
                                runtime_ops_answer(rt, slash + 1, &status,
                                                   &body, &len, &ctype);
                                ret = edge__answer(req, (unsigned)status, ctype,
                                                   body, len, NULL);
                                free(body);
                                return ret;
                        }
                }
        }
        return edge__problem(req, 404, "Not Found",
                             "no such group in this process", NULL, NULL);
}

/* The strongest role in a comma-separated roles claim. */
static schema_role_t edge__token_role(const char *roles) {
        schema_role_t best = SCHEMA_ROLE_NONE;
        const char *p = roles;
        while (p && *p) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t)(comma - p) : strlen(p);
                schema_role_t r = schema_role_parse(p, len);
                if (r > best)
                        best = r;
                p += len + (comma ? 1 : 0);
        }
        return best;
}

/* What the route asks beyond a valid token: a role, accepted terms. */
static enum MHD_Result edge__permit(req_t *req) {
        const schema_route_t *route = &req->msg->route;
        if (route->role != SCHEMA_ROLE_NONE &&
            edge__token_role(req->claims.roles) < route->role) {
                char detail[128];
                snprintf(detail, sizeof(detail),
                         "this needs the %s role in the organisation",
                         schema_role_name(route->role));
                return edge__problem(req, 403, "Forbidden", detail, NULL, NULL);
        }
        if (route->terms) {
                int64_t current = guard_version(req->edge->guard, "terms");
                if (current < 0) {
                        static const char *const retry[] = {"Retry-After", "2",
                                                            NULL};
                        return edge__problem(
                                req, 503, "Service Unavailable",
                                "the current terms are not known yet", NULL,
                                retry);
                }
                if (current > 0 && req->claims.tv < current) {
                        char detail[200];
                        snprintf(detail, sizeof(detail),
                                 "accept the current terms (version %lld) with "
                                 "POST "
                                 "/api/legal/accept first",
                                 (long long)current);
                        return edge__problem(req, 403, "Terms not accepted",
                                             detail, NULL, NULL);
                }
        }
        return MHD_YES;
}

/* The Origin of the request if it is one we allow (NULL otherwise). */
static const char *edge__cors_origin(req_t *req) {
        const char *origin = MHD_lookup_connection_value(
                req->conn, MHD_HEADER_KIND, "Origin");
        if (!origin)
                return NULL;
        for (size_t i = 0; i < req->edge->n_cors; i++)
                if (strcmp(req->edge->cors[i], origin) == 0 ||
                    strcmp(req->edge->cors[i], "*") == 0)
                        return origin;
        return NULL;
}

/* A CORS preflight: which methods and headers a browser may send. */
static enum MHD_Result edge__preflight(req_t *req, const char *url) {
        char allow[64] = "GET, POST, PUT, PATCH, DELETE";
        const schema_msg_t *msg;
        schema_params_t params;
        const char *hdrs[] = {
                "Access-Control-Allow-Methods",
                allow,
                "Access-Control-Allow-Headers",
                "Authorization, Content-Type, Idempotency-Key, Prefer, "
                "traceparent",
                "Access-Control-Max-Age",
                "600",
                NULL};
        req->label = "preflight";
        if (!req->cors_origin)
                return edge__problem(req, 403, "Forbidden",
                                     "this origin may not call the API", NULL,
                                     NULL);
        if (schema_route_match(req->edge->schemas, slice_of("OPTIONS"),
                               slice_of(url), &msg, &params, allow,
                               sizeof(allow)) == SCHEMA_MATCH_NOT_FOUND)
                return edge__problem(req, 404, "Not Found", "no such route",
                                     NULL, NULL);
        return edge__answer(req, 204, "text/plain", "", 0, hdrs);
}

/* First call for a request: route, headers, token. Returns MHD_YES to go on
 * reading the body, or the result of an answer queued already. */
static enum MHD_Result edge__begin(req_t *req, const char *url,
                                   const char *method) {
        edge_t *edge = req->edge;
        char allow[64];
        const char *clen, *ctype;
        schema_match_t m;
        bool is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
                req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

        if (ci && ci->client_addr) {
                const struct sockaddr *sa = ci->client_addr;
                if (sa->sa_family == AF_INET)
                        inet_ntop(AF_INET,
                                  &((const struct sockaddr_in *)sa)->sin_addr,
                                  req->client_ip, sizeof(req->client_ip));
                else if (sa->sa_family == AF_INET6)
                        inet_ntop(AF_INET6,
                                  &((const struct sockaddr_in6 *)sa)->sin6_addr,
                                  req->client_ip, sizeof(req->client_ip));
        }
        req->cors_origin = edge__cors_origin(req);
        if (strcmp(method, "OPTIONS") == 0)
                return edge__preflight(req, url);

        if (strncmp(url, "/api/", 5) != 0) {
                if (!is_get && (strcmp(url, "/health") == 0 ||
                                strcmp(url, "/ready") == 0 ||
                                strcmp(url, "/metrics") == 0 ||
                                strcmp(url, "/openapi.json") == 0)) {
                        static const char *const hdr[] = {"Allow", "GET", NULL};
                        req->label = "builtin";
                        return edge__problem(req, 405, "Method Not Allowed",
                                             NULL, NULL, hdr);
                }
                if (is_get && edge__builtin(req, url) == MHD_YES)
                        return MHD_YES;
                if (req->answered)
                        return MHD_NO;
                if (is_get && edge->n_ops && strncmp(url, "/ops/", 5) == 0)
                        return edge__ops(req, url);
                req->label = "unknown";
                return edge__problem(req, 404, "Not Found", "no such route",
                                     NULL, NULL);
        }
        if (strncmp(url, "/api/operations/", 16) == 0) {
                const char *id = url + 16;
                msgid_t parsed;
                req->label = "operations";
                if (!is_get) {
                        static const char *const hdr[] = {"Allow", "GET", NULL};
                        return edge__problem(req, 405, "Method Not Allowed",
                                             NULL, NULL, hdr);
                }
                if (!msgid_parse(id, strlen(id), &parsed))
                        return edge__problem(req, 404, "Not Found",
                                             "no such operation", NULL, NULL);
                if (edge__authenticate(req, false))
                        return edge__unauthorized(req);
                msgid_format(&parsed, req->id);
                return MHD_YES;
        }

        m = schema_route_match(edge->schemas, slice_of(method), slice_of(url),
                               &req->msg, &req->params, allow, sizeof(allow));
        if (m == SCHEMA_MATCH_NOT_FOUND) {
                req->label = "unknown";
                return edge__problem(req, 404, "Not Found", "no such route",
                                     NULL, NULL);
        }
        if (m == SCHEMA_MATCH_METHOD_NOT_ALLOWED) {
                const char *hdr[] = {"Allow", allow, NULL};
                req->label = "unknown";
                return edge__problem(req, 405, "Method Not Allowed", NULL, NULL,
                                     hdr);
        }
        req->label = req->msg->type;
        clen = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                           MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (clen && strtoull(clen, NULL, 10) >
                            (unsigned long long)edge->cfg->max_body_bytes)
                return edge__problem(req, 413, "Content Too Large",
                                     "the body exceeds the configured limit",
                                     NULL, NULL);
        ctype = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                            MHD_HTTP_HEADER_CONTENT_TYPE);
        if (!is_get && ((clen && strcmp(clen, "0") != 0) || ctype) &&
            !edge__is_json(ctype))
                return edge__problem(req, 415, "Unsupported Media Type",
                                     "send the body as application/json", NULL,
                                     NULL);
        if (edge__authenticate(req, req->msg->route.auth)) {
                if (req->msg->route.auth)
                        return edge__unauthorized(req);
        }
        return edge__permit(req);
}

static enum MHD_Result edge__handler(void *cls, struct MHD_Connection *conn,
                                     const char *url, const char *method,
                                     const char *version, const char *upload,
                                     size_t *upload_size, void **con_cls) {
        edge_t *edge = cls;
        req_t *req = *con_cls;
        (void)version;

        if (!req) {
                /* MHD takes an answer only on this first call or once the
                 * whole body is in. A request with a body is looked at now,
                 * so a refusal (401, 404, 413, 415...) needs no reading of
                 * the body; MHD then closes the connection. A request
                 * without one waits for the final call, so the connection
                 * stays open for the next request. */
                const char *clen, *te;
                arena_t *arena = arena_new(2048);
                req = arena_alloc(arena, sizeof(*req));
                memset(req, 0, sizeof(*req));
                req->arena = arena;
                req->edge = edge;
                req->conn = conn;
                req->t0_us = edge__now_us();
                *con_cls = req;
                clen = MHD_lookup_connection_value(
                        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                te = MHD_lookup_connection_value(
                        conn, MHD_HEADER_KIND,
                        MHD_HTTP_HEADER_TRANSFER_ENCODING);
                if (!te && (!clen || strcmp(clen, "0") == 0))
                        return MHD_YES;
                req->begun = true;
                return edge__begin(req, url, method);
        }
        if (!req->begun) {
                enum MHD_Result r;
                req->begun = true;
                r = edge__begin(req, url, method);
                if (r != MHD_YES || req->answered)
                        return r;
        }
        if (req->answered) {
                *upload_size = 0; /* discard the rest of a refused body */
                return MHD_YES;
        }
        if (*upload_size) {
                if (!req->msg || req->too_large || req->overloaded) {
                        *upload_size = 0; /* refused already: discard */
                        return MHD_YES;
                }
                if (req->body_len + *upload_size >
                    (size_t)edge->cfg->max_body_bytes) {
                        req->too_large = true;
                        *upload_size = 0;
                        return MHD_YES;
                }
                long long held = atomic_fetch_add(&edge->buffered,
                                                  (long long)*upload_size) +
                                 (long long)*upload_size;
                char *grown =
                        held > edge->cfg->max_buffered_bytes
                                ? NULL
                                : try_realloc(req->body,
                                              req->body_len + *upload_size);
                if (!grown) {
                        atomic_fetch_sub(&edge->buffered,
                                         (long long)*upload_size);
                        req->overloaded = true;
                        *upload_size = 0;
                        return MHD_YES;
                }
                req->body = grown;
                memcpy(req->body + req->body_len, upload, *upload_size);
                req->body_len += *upload_size;
                *upload_size = 0;
                return MHD_YES;
        }
        if (req->waiting)
                return edge__finish(req);
        if (!req->msg) {
                /* GET /api/operations/{id}: look it up off the loop thread. */
                edge__wait(req);
                edge__enqueue_lookup(edge, req);
                return MHD_YES;
        }
        return edge__dispatch(req);
}

static void edge__completed(void *cls, struct MHD_Connection *conn,
                            void **con_cls,
                            enum MHD_RequestTerminationCode toe) {
        edge_t *edge = cls;
        req_t *req = *con_cls;
        char labels[256];
        (void)conn;
        (void)toe;
        if (!req)
                return;
        if (req->registered)
                pending_take(edge->pending,
                             &req->pending.id); /* if still there */
        if (req->waiting) {
                atomic_fetch_sub(&edge->inflight, 1);
                metrics_add(edge->m_inflight, -1);
        }
        if (req->label) {
                snprintf(labels, sizeof(labels), "route=\"%s\",status=\"%u\"",
                         req->label, req->status);
                metrics_add(
                        metrics_counter("omnify_http_requests_total",
                                        "HTTP requests by route and status.",
                                        labels),
                        1);
                snprintf(labels, sizeof(labels), "route=\"%s\"", req->label);
                metrics_observe_us(
                        metrics_histogram("omnify_http_request_seconds",
                                          "HTTP request latency by route.",
                                          labels),
                        edge__now_us() - req->t0_us);
        }
        if (req->body)
                atomic_fetch_sub(&edge->buffered, (long long)req->body_len);
        free(req->body);
        free(req->reply_mp);
        arena_destroy(req->arena);
        *con_cls = NULL;
}

/* ---------------------------------------------------------------------------
 * Life
 * ------------------------------------------------------------------------ */

edge_t *edge_new(const config_t *cfg, const schema_set_t *schemas, char *errstr,
                 size_t errlen) {
        edge_t *edge = xcalloc(1, sizeof(*edge));
        const char *topics[1 + 7];
        char cmd_topics[7][256];
        size_t n_topics = 0;
        int partitions = 0;
        char client_id[64];
        bus_err_t berr;

        edge->cfg = cfg;
        edge->schemas = schemas;
        atomic_init(&edge->stopping, false);
        atomic_init(&edge->inflight, 0);
        atomic_init(&edge->buffered, 0);
        pthread_mutex_init(&edge->jobs_lock, NULL);
        pthread_cond_init(&edge->jobs_cond, NULL);
        edge->keys.secret = cfg->jwt_secret;
        edge->keys.issuer = cfg->jwt_issuer;
        edge->keys.audience = cfg->jwt_audience;
        edge->keys.kid = cfg->jwt_kid;
        edge->pending = pending_new((size_t)cfg->max_inflight);
        edge->m_inflight =
                metrics_gauge("omnify_http_inflight",
                              "Requests waiting on Kafka or the store.", "");
        edge->m_produce_errors = metrics_counter(
                "omnify_produce_errors_total",
                "Commands refused because Kafka was unreachable or full.", "");
        edge->m_rate_limited =
                metrics_counter("omnify_rate_limited_total",
                                "Requests refused by a rate limit.", "");
        edge->guard =
                guard_new(cfg->rate_ip_per_min, cfg->rate_account_per_min);
        atomic_init(&edge->versions_known, false);
        for (const char *p = cfg->cors_origins; *p;) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t)(comma - p) : strlen(p);
                while (len && p[0] == ' ') {
                        p++;
                        len--;
                }
                while (len && p[len - 1] == ' ')
                        len--;
                if (len) {
                        edge->cors = xrealloc(edge->cors, (edge->n_cors +
                                                           1) * sizeof(char *));
                        edge->cors[edge->n_cors++] = xstrndup(p, len);
                }
                p = comma ? comma + 1 : p + strlen(p);
        }
        edge->openapi = schema_openapi(schemas, OMNIFY_VERSION);
        edge->openapi_len = edge->openapi ? strlen(edge->openapi) : 0;
        if (!edge->openapi) {
                snprintf(errstr, errlen,
                         "cannot generate the OpenAPI document");
                goto fail;
        }

        snprintf(client_id, sizeof(client_id), "omnify-edge-%d",
                 cfg->edge_reply_partition);
        edge->bus = bus_new(cfg, client_id, errstr, errlen);
        if (!edge->bus)
                goto fail;
        edge->store = store_new(cfg, "omnify-edge", errstr, errlen);
        if (!edge->store)
                goto fail;

        bus_topic(cfg, "edge.replies", edge->replies_topic,
                  sizeof(edge->replies_topic));
        topics[n_topics++] = edge->replies_topic;
        for (size_t g = 0; g < schema_group_count(schemas) && g < 7; g++) {
                char name[128];
                snprintf(name, sizeof(name), "%s.commands",
                         schema_group_at(schemas, g));
                bus_topic(cfg, name, cmd_topics[g], sizeof(cmd_topics[g]));
                topics[n_topics++] = cmd_topics[g];
        }
        berr = bus_check_topics(edge->bus, topics, n_topics, &partitions,
                                errstr, errlen);
        if (berr != BUS_OK) {
                size_t n = strlen(errstr);
                if (berr == BUS_UNKNOWN_TOPIC)
                        snprintf(errstr + n, errlen - n,
                                 " (create them with: omnify topics apply)");
                goto fail;
        }
        if (cfg->edge_reply_partition >= partitions) {
                snprintf(errstr, errlen,
                         "OMNIFY_EDGE_REPLY_PARTITION: %d but %s has %d "
                         "partitions",
                         cfg->edge_reply_partition, edge->replies_topic,
                         partitions);
                goto fail;
        }
        snprintf(edge->reply_to, sizeof(edge->reply_to), "%s:%d",
                 edge->replies_topic, cfg->edge_reply_partition);
        edge->listener =
                bus_listener_new(cfg, edge->replies_topic,
                                 cfg->edge_reply_partition, errstr, errlen);
        if (!edge->listener)
                goto fail;
        {
                /* Revocations of the last token lifetime still matter. */
                char events[256];
                bus_topic(cfg, "auth.events", events, sizeof(events));
                edge->events = bus_tail_new(
                        cfg, events,
                        (int64_t)clock_wall_ms() -
                                ((int64_t)cfg->jwt_ttl_s + 120) * 1000,
                        errstr, errlen);
                if (!edge->events)
                        goto fail;
        }
        return edge;

fail:
        edge_destroy(edge);
        return NULL;
}

bus_t *edge_bus(edge_t *edge) {
        return edge->bus;
}

store_t *edge_store(edge_t *edge) {
        return edge->store;
}

void edge_add_ops(edge_t *edge, runtime_t *rt) {
        if (edge->n_ops < EDGE_MAX_OPS)
                edge->ops[edge->n_ops++] = rt;
}

int edge_start(edge_t *edge, char *errstr, size_t errlen) {
        const config_t *cfg = edge->cfg;
        struct sockaddr_storage addr;
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                         MHD_ALLOW_SUSPEND_RESUME;

        if (ops_parse_bind(cfg->http_bind, cfg->http_port, &addr)) {
                snprintf(errstr, errlen,
                         "OMNIFY_HTTP_BIND: '%s' is not an IP address",
                         cfg->http_bind);
                return -1;
        }
        if (addr.ss_family == AF_INET6)
                flags |= MHD_USE_IPv6;
        if (pthread_create(&edge->reply_thread, NULL, edge__reply_loop, edge) ||
            (edge->reply_started = true,
             pthread_create(&edge->lookup_thread, NULL, edge__lookup_loop,
                            edge))) {
                snprintf(errstr, errlen, "cannot start the edge threads");
                return -1;
        }
        edge->lookup_started = true;
        if (pthread_create(&edge->events_thread, NULL, edge__events_loop,
                           edge)) {
                snprintf(errstr, errlen, "cannot start the edge threads");
                return -1;
        }
        edge->events_started = true;
        edge->daemon = MHD_start_daemon(
                flags, (uint16_t)cfg->http_port, NULL, NULL, edge__handler,
                edge, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads,
                MHD_OPTION_NOTIFY_COMPLETED, edge__completed, edge,
                MHD_OPTION_CONNECTION_TIMEOUT, 60u,
                MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
                MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
                MHD_OPTION_END);
        if (!edge->daemon) {
                snprintf(errstr, errlen, "cannot listen on %s:%d",
                         cfg->http_bind, cfg->http_port);
                return -1;
        }
        log_info("edge listening on %s:%d, replies on %s", cfg->http_bind,
                 cfg->http_port, edge->reply_to);
        return 0;
}

void edge_stop(edge_t *edge) {
        pending_entry_t *left[EDGE_SWEEP_BATCH];
        uint64_t deadline;
        size_t n;

        if (!edge->daemon)
                return;
        MHD_quiesce_daemon(edge->daemon);
        deadline = clock_mono_ms() + (uint64_t)edge->cfg->shutdown_timeout_ms;
        while (atomic_load(&edge->inflight) > 0 && clock_mono_ms() < deadline) {
                struct timespec ts = {0, 20 * 1000000L};
                nanosleep(&ts, NULL);
        }
        while ((n = pending_take_all(edge->pending, left, EDGE_SWEEP_BATCH)) >
               0)
                for (size_t i = 0; i < n; i++)
                        edge__complete(left[i]->owner, OUT_SHUTDOWN);
        /* Let the lookup thread drain its queue, then stop the threads. */
        pthread_mutex_lock(&edge->jobs_lock);
        atomic_store(&edge->stopping, true);
        pthread_cond_broadcast(&edge->jobs_cond);
        pthread_mutex_unlock(&edge->jobs_lock);
        if (edge->lookup_started)
                pthread_join(edge->lookup_thread, NULL);
        if (edge->reply_started)
                pthread_join(edge->reply_thread, NULL);
        if (edge->events_started)
                pthread_join(edge->events_thread, NULL);
        edge->lookup_started = edge->reply_started = edge->events_started =
                false;
        /* Answers resumed above still need a moment to be written. */
        deadline = clock_mono_ms() + 1000;
        while (atomic_load(&edge->inflight) > 0 && clock_mono_ms() < deadline) {
                struct timespec ts = {0, 10 * 1000000L};
                nanosleep(&ts, NULL);
        }
        MHD_stop_daemon(edge->daemon);
        edge->daemon = NULL;
}

void edge_destroy(edge_t *edge) {
        if (!edge)
                return;
        if (edge->daemon)
                edge_stop(edge);
        atomic_store(&edge->stopping, true);
        if (edge->reply_started)
                pthread_join(edge->reply_thread, NULL);
        if (edge->events_started)
                pthread_join(edge->events_thread, NULL);
        if (edge->lookup_started) {
                pthread_mutex_lock(&edge->jobs_lock);
                pthread_cond_broadcast(&edge->jobs_cond);
                pthread_mutex_unlock(&edge->jobs_lock);
                pthread_join(edge->lookup_thread, NULL);
        }
        bus_consumer_destroy(edge->listener);
        bus_consumer_destroy(edge->events);
        bus_destroy(edge->bus);
        guard_destroy(edge->guard);
        for (size_t i = 0; i < edge->n_cors; i++)
                free(edge->cors[i]);
        free(edge->cors);
        store_destroy(edge->store);
        pending_destroy(edge->pending);
        free(edge->openapi);
        pthread_cond_destroy(&edge->jobs_cond);
        pthread_mutex_destroy(&edge->jobs_lock);
        free(edge);
}

int edge_main(int argc, char **argv) {
        config_t cfg;
        char errstr[512] = "";
        schema_set_t *schemas = NULL;
        edge_t *edge = NULL;
        int status = 1;

        config_load_or_exit(&cfg, CONFIG_SCOPE_EDGE, "omnify-edge", argc, argv,
                            NULL);
        log_init((log_level_t)cfg.log_level, "omnify-edge");
        log_set_group("edge");
        service_install_signals();
        schemas = service_load_schemas(errstr, sizeof(errstr));
        if (!schemas)
                goto out;
        edge = edge_new(&cfg, schemas, errstr, sizeof(errstr));
        if (!edge || edge_start(edge, errstr, sizeof(errstr)))
                goto out;
        log_info("omnify-edge %s started (pid %ld)", OMNIFY_VERSION,
                 (long)getpid());
        while (!atomic_load(&service_stop)) {
                struct timespec ts = {0, 100 * 1000000L};
                nanosleep(&ts, NULL);
        }
        log_info("stopping: draining requests in flight");
        edge_stop(edge);
        status = 0;
out:
        if (status && errstr[0])
                log_error("%s", errstr);
        /* An error naming a setting is a configuration error (exit 2), even
         * when only the cluster showed it (a reply partition past the end). */
        if (status && strncmp(errstr, "OMNIFY_", 7) == 0)
                status = 2;
        edge_destroy(edge);
        schema_set_destroy(schemas);
        config_deinit(&cfg);
        return status;
}
