/*
 * edge_internal.h - what the edge's files share: the edge and the request.
 *
 * The edge is split along its threads and jobs (edge.h lists them); this
 * header holds the two structs they all touch and the functions one file
 * offers the others (named edge__*). Nothing here is for use outside edge/.
 *
 * Threads and who owns what:
 *   HTTP loop threads (libmicrohttpd, a pool of cfg->http_threads) own a
 *     request until it is suspended, and again once it is resumed.
 *   While a request is suspended, exactly one other thread completes it:
 *   the one that took its pending entry (pending.h), or the lookup thread
 *   for an operation lookup. Completing sets the outcome and the reply and
 *   resumes the connection (edge__complete); nothing else touches it.
 */
#ifndef OMNIFY_EDGE_INTERNAL_H
#define OMNIFY_EDGE_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "bus.h"
#include "config.h"
#include "edge.h"
#include "envelope.h"
#include "facts.h"
#include "guard.h"
#include "heartbeat.h"
#include "metrics.h"
#include "msgid.h"
#include "pending.h"
#include "runtime.h"
#include "schema.h"
#include "store.h"
#include "stream.h"
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

typedef struct edge_stream_topic edge_stream_topic_t;

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
        const schema_fact_t *denied; /* the deny fact that refused the token */
        uint64_t t0_us;
        unsigned status; /* the answer's status once known */
        /* Set by the completing thread before it resumes the connection. */
        req_outcome_t outcome;
        int reply_status;
        char *reply_mp; /* malloc'd msgpack, or the bytes of reply_ctype */
        size_t reply_mp_len;
        char *reply_ctype; /* malloc'd: the reply's own content type */
        char op_tenant[64];
        char op_user[64];
        stream_sub_t *sub;    /* a stream route's subscriber, once open */
        struct req *next_job; /* lookup queue */
} req_t;

struct edge {
        const config_t *cfg;
        const schema_set_t *schemas;
        /* Set once by the warm-up thread before it stores started (and
         * read by others only after they load started as true). */
        bus_t *bus;
        store_t *store;
        bus_consumer_t *listener;
        char reply_to[300];
        char replies_topic[256];
        struct {
                const char *group;
                char topic[256]; /* <prefix><group>.commands */
        } * commands;
        size_t n_commands;
        char *openapi, *asyncapi;
        size_t openapi_len, asyncapi_len;
        pending_t *pending;
        struct MHD_Daemon *daemon;
        token_keys_t keys;
        runtime_t *ops[EDGE_MAX_OPS];
        atomic_size_t n_ops; /* slots of ops filled */
        atomic_bool stopping;
        atomic_bool started; /* connected: Kafka, the store, the threads */
        atomic_bool failed;  /* the warm-up failed for good (fatal says why) */
        atomic_int ready_holds;     /* /ready says 503 while > 0 (monolith) */
        pthread_mutex_t start_lock; /* guards fatal; start_cond's mutex */
        pthread_cond_t start_cond;
        char fatal[512];
        atomic_int inflight;
        atomic_llong buffered; /* body bytes held by requests, all threads */
        /* The process's heartbeat as "edge" (heartbeat.h): started by the
         * warm-up once connected, stopped once it is joined. handled:
         * requests finished; standalone: omnify-edge, not a monolith. */
        heartbeat_t *heartbeat;
        atomic_uint_fast64_t handled;
        bool standalone;
        pthread_t warmup_thread, reply_thread, lookup_thread;
        bool warmup_started, reply_started, lookup_started;
        pthread_mutex_t
                jobs_lock; /* guards jobs_head/tail and lookup wakeups */
        pthread_cond_t jobs_cond;
        req_t *jobs_head, *jobs_tail;
        metrics_counter_t *m_inflight, *m_produce_errors, *m_rate_limited;
        guard_t *guard;
        facts_t *facts;
        /* The follower: <group>.events of the groups declaring facts. */
        bus_consumer_t **followed;
        size_t n_followed;
        pthread_t events_thread;
        bool events_started;
        pthread_mutex_t query_lock; /* guards query_ids */
        msgid_t *query_ids;         /* our last query per facts_query_at */
        char **cors;                /* allowed origins */
        size_t n_cors;
        stream_hub_t *hub;                  /* Server-Sent Events subscribers */
        edge_stream_topic_t *stream_topics; /* one reader per topic */
        size_t n_stream_topics;
};

/* The prefixed command topic of a group (edge.c), or NULL. */
const char *edge__commands_topic(const edge_t *edge, const char *group);

/* ---------------------------------------------------------------------------
 * server.c: HTTP entry and routing
 * ------------------------------------------------------------------------ */

/* libmicrohttpd's access handler and completion callback (cls: the edge). */
enum MHD_Result edge__handler(void *cls, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              const char *version, const char *upload,
                              size_t *upload_size, void **con_cls);
void edge__completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                     enum MHD_RequestTerminationCode toe);

/* Case-insensitive: does s start with prefix (given in lower case)? */
bool edge__ieq_prefix(const char *s, const char *prefix);

/* Suspend the request until another thread completes it (counted in
 * flight until edge__done_waiting or its end). */
void edge__wait(req_t *req);
void edge__done_waiting(req_t *req);

/* ---------------------------------------------------------------------------
 * respond.c: answers
 * ------------------------------------------------------------------------ */

/* Mark the request as completed by this thread and wake its connection. */
void edge__complete(req_t *req, req_outcome_t outcome);

/* Queue an answer; extra is NULL or a NULL-terminated list of pairs. CORS
 * headers are added when the request came from an allowed origin. */
enum MHD_Result edge__answer(req_t *req, unsigned status, const char *ctype,
                             const char *body, size_t len,
                             const char *const *extra);
enum MHD_Result edge__problem(req_t *req, unsigned status, const char *title,
                              const char *detail, const schema_report_t *report,
                              const char *const *extra);
/* 503 with Retry-After, counted as a produce error. */
enum MHD_Result edge__unavailable(req_t *req, const char *detail);

/* A 200 whose body reader pulls as it comes (Server-Sent Events). */
enum MHD_Result edge__answer_stream(req_t *req, const char *ctype,
                                    MHD_ContentReaderCallback reader);

/* 503 with Retry-After: the edge has not connected yet. */
enum MHD_Result edge__starting(req_t *req);

/* The answer of a request that was suspended and is now resumed. */
enum MHD_Result edge__finish(req_t *req);

/* ---------------------------------------------------------------------------
 * access.c: who may call a route
 * ------------------------------------------------------------------------ */

/* Check the bearer token when the route needs one (or when one is sent):
 * 0, or -1 when it is missing (and required) or refused. */
int edge__authenticate(req_t *req, bool required);
enum MHD_Result edge__unauthorized(req_t *req);

/* What the route asks beyond a valid token: a role, the version facts it
 * requires. MHD_YES to go on, or the result of a queued refusal. */
enum MHD_Result edge__permit(req_t *req);

/* ---------------------------------------------------------------------------
 * dispatch.c: the command on Kafka
 * ------------------------------------------------------------------------ */

/* Turn the request into a command, publish it and suspend until it
 * completes (or answer at once when it is refused). */
enum MHD_Result edge__dispatch(req_t *req);

/* The command msg takes from the request (body, path, query, headers),
 * packed into mp and unpacked into obj (allocated in zone) and validated:
 * true, or false after answering 400 (*ret: the answer's result). */
bool edge__command(req_t *req, const schema_msg_t *msg, msgpack_sbuffer *mp,
                   msgpack_zone *zone, msgpack_object *obj,
                   enum MHD_Result *ret);

/* Publish msg's command mp (obj: the same, unpacked) for the request, sync
 * (a reply within wait_ms) or async (req->async), register it and suspend
 * the request until it completes; answers 503 at once when the edge cannot
 * take it. */
enum MHD_Result edge__send(req_t *req, const schema_msg_t *msg,
                           const msgpack_sbuffer *mp, const msgpack_object *obj,
                           slice_t idempotency_key, int wait_ms);

/* ---------------------------------------------------------------------------
 * replies.c: the reply listener and deadlines
 * ------------------------------------------------------------------------ */

void *edge__reply_loop(void *arg);

/* ---------------------------------------------------------------------------
 * lookup.c: operation lookups
 * ------------------------------------------------------------------------ */

void *edge__lookup_loop(void *arg);
/* Queue GET /api/operations/{id} for the lookup thread. */
void edge__enqueue_lookup(edge_t *edge, req_t *req);

/* ---------------------------------------------------------------------------
 * builtin.c: the edge's own routes
 * ------------------------------------------------------------------------ */

/* GET /health, /ready, /metrics, /openapi.json, /asyncapi.json: the
 * answer's result, or
 * MHD_NO without answering when url is not one of them. */
enum MHD_Result edge__builtin(req_t *req, const char *url);
/* Is url one of the built-in routes (any method)? */
bool edge__is_builtin(const char *url);
/* An embedded static file (assets.h) for a GET of url: MHD_NO when there is
 * none at that path. */
enum MHD_Result edge__asset(req_t *req, const char *url);
/* /ops/<group>/<what> in the monolith. */
enum MHD_Result edge__ops(req_t *req, const char *url);

/* ---------------------------------------------------------------------------
 * follower.c: the facts follower
 * ------------------------------------------------------------------------ */

/* Open the follower's consumers (warm-up thread). 0, or -1 and errstr. */
int edge__follower_open(edge_t *edge, char *errstr, size_t errlen);
/* Close them (the thread is joined). */
void edge__follower_close(edge_t *edge);
void *edge__events_loop(void *arg);
/* A reply on our reply partition that answers one of the follower's own
 * queries: consumed (true) or not ours (false). */
bool edge__on_fact_reply(edge_t *edge, const msgid_t *corr, const env_t *env);

/* ---------------------------------------------------------------------------
 * streams.c: Server-Sent Events routes
 * ------------------------------------------------------------------------ */

/* Start one reader per stream topic (warm-up thread). 0, or -1 and errstr. */
int edge__streams_open(edge_t *edge, char *errstr, size_t errlen);
/* Join the readers and close them (stopping is set). */
void edge__streams_close(edge_t *edge);

/* A stream route's request, its token checked: subscribe, send the history
 * command (the request waits for its reply) or answer the stream at once. */
enum MHD_Result edge__stream_begin(req_t *req);
/* The history's reply came (status 200): queue it, answer the stream. */
enum MHD_Result edge__stream_history(req_t *req);

/* The hub's wake and sleep: resume and suspend the request's connection;
 * gone: has the client of a sleeping stream closed its connection? */
void edge__stream_wake(void *owner);
void edge__stream_sleep(void *owner);
bool edge__stream_gone(void *owner);

#endif
