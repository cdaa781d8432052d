/*
 * runtime.c - the consumer loop every group runs (see runtime.h).
 */
#include "runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "codec.h"
#include "log.h"
#include "metrics.h"
#include "msgid.h"
#include "oplog.h"

/* How often a transient handler failure is retried before the message is
 * dead-lettered, and the backoff bounds between tries. */
#define RT_MAX_ATTEMPTS 5
#define RT_BACKOFF_MIN_MS 100
#define RT_BACKOFF_MAX_MS 2000

typedef struct rt_type_metrics {
        metrics_counter_t *ok, *failed;
        metrics_histogram_t *latency;
} rt_type_metrics_t;

/*
 * A handled command waiting for its outputs (reply, events, dead letter) to
 * be acknowledged by the broker. Its offset is stored only when it and every
 * earlier command of its partition are fully delivered; a failed delivery
 * rewinds the partition to it, so it is read again and its outputs sent
 * again from the operation log.
 */
typedef struct rt_tracker {
        bus_delivery_t base;
        struct rt_tracker *next; /* partition FIFO, consumer thread only */
        int64_t offset;
        atomic_int
                outstanding; /* deliveries not reported yet, +1 while sending */
        atomic_bool failed;
        bool done;    /* handled; false: abandoned at shutdown */
        bool discard; /* after a rewind: never store, only free */
} rt_tracker_t;

typedef struct rt_fifo {
        rt_tracker_t *head, *tail;
} rt_fifo_t;

struct runtime {
        const group_def_t *def;
        const config_t *cfg;
        const schema_set_t *schemas;
        bus_t *bus;
        store_t *store;
        runtime_mode_t mode;
        bus_consumer_t *consumer;
        char group_id[256]; /* the consumer group: prefix + group name */
        void *state;
        char commands_topic[256];
        char events_topic[256];
        char dlq_topic[256];
        char instance[256];
        char host[128];
        uint64_t started_ms;
        atomic_bool initialised;
        rt_type_metrics_t *type_metrics; /* one per handler */
        rt_tracker_t *cur;               /* the command being handled */
        bool cur_withhold;               /* its answer must not be kept */
        rt_fifo_t *fifos;                /* per partition of commands */
        int n_fifos;
        metrics_counter_t *dlq_total, *retries_total, *duplicates_total;
        metrics_counter_t *rejoins_total;
        uint64_t last_rejoin_ms; /* consumer thread only */
        int quick_rejoins;       /* fenced again within a minute, in a row */
};

typedef struct rt_event {
        char id[MSGID_TEXT_SIZE];
        char *type;
        char *key;
        size_t key_len;
        char *body;
        size_t body_len;
} rt_event_t;

struct rt_ctx {
        runtime_t *rt;
        const env_t *env;
        int status;
        msgpack_sbuffer reply;
        msgpack_packer pk;
        rt_event_t *events;
        size_t n_events;
};

/* ---------------------------------------------------------------------------
 * Set-up
 * ------------------------------------------------------------------------ */

runtime_t *runtime_new(const group_def_t *def, const config_t *cfg,
                       const schema_set_t *schemas, bus_t *bus, store_t *store,
                       runtime_mode_t mode, char *errstr, size_t errlen) {
        runtime_t *rt = xcalloc(1, sizeof(*rt));
        const char *topics[3];
        char name[128], labels[256];
        bus_err_t berr;

        rt->def = def;
        rt->cfg = cfg;
        rt->schemas = schemas;
        rt->bus = bus;
        rt->store = store;
        rt->mode = mode;
        rt->started_ms = clock_mono_ms();
        atomic_init(&rt->initialised, false);
        if (gethostname(rt->host, sizeof(rt->host)) != 0)
                snprintf(rt->host, sizeof(rt->host), "unknown");
        rt->host[sizeof(rt->host) - 1] = '\0';
        if (cfg->instance_id[0])
                snprintf(rt->instance, sizeof(rt->instance), "%s",
                         cfg->instance_id);
        else
                snprintf(rt->instance, sizeof(rt->instance), "%s-%ld", rt->host,
                         (long)getpid());

        /* Every handler needs a schema: a table entry without one is a
         * build mistake worth failing loudly for. */
        for (size_t i = 0; i < def->n_handlers; i++) {
                if (!schema_find(schemas, slice_of(def->handlers[i].type))) {
                        snprintf(errstr, errlen,
                                 "group %s: handler '%s' has no schema",
                                 def->name, def->handlers[i].type);
                        goto fail;
                }
        }

        snprintf(name, sizeof(name), "%s.commands", def->name);
        bus_topic(cfg, name, rt->commands_topic, sizeof(rt->commands_topic));
        snprintf(name, sizeof(name), "%s.events", def->name);
        bus_topic(cfg, name, rt->events_topic, sizeof(rt->events_topic));
        snprintf(name, sizeof(name), "%s.dlq", def->name);
        bus_topic(cfg, name, rt->dlq_topic, sizeof(rt->dlq_topic));
        topics[0] = rt->commands_topic;
        topics[1] = rt->events_topic;
        topics[2] = rt->dlq_topic;
        berr = bus_check_topics(bus, topics, 3, NULL, errstr, errlen);
        if (berr != BUS_OK) {
                size_t n = strlen(errstr);
                if (berr == BUS_UNKNOWN_TOPIC)
                        snprintf(errstr + n, errlen - n,
                                 " (group %s; create them with: omnify topics "
                                 "apply)",
                                 def->name);
                goto fail;
        }

        rt->type_metrics = xcalloc(def->n_handlers ? def->n_handlers : 1,
                                   sizeof(rt_type_metrics_t));
        for (size_t i = 0; i < def->n_handlers; i++) {
                snprintf(labels, sizeof(labels),
                         "group=\"%s\",type=\"%s\",result=\"ok\"", def->name,
                         def->handlers[i].type);
                rt->type_metrics[i].ok = metrics_counter(
                        "omnify_messages_handled_total",
                        "Commands handled, by group, type and result.", labels);
                snprintf(labels, sizeof(labels),
                         "group=\"%s\",type=\"%s\",result=\"failed\"",
                         def->name, def->handlers[i].type);
                rt->type_metrics[i].failed = metrics_counter(
                        "omnify_messages_handled_total",
                        "Commands handled, by group, type and result.", labels);
                snprintf(labels, sizeof(labels), "group=\"%s\",type=\"%s\"",
                         def->name, def->handlers[i].type);
                rt->type_metrics[i].latency = metrics_histogram(
                        "omnify_handler_seconds", "Handler latency.", labels);
        }
        snprintf(labels, sizeof(labels), "group=\"%s\"", def->name);
        rt->dlq_total = metrics_counter(
                "omnify_dlq_total", "Messages sent to the dead-letter queue.",
                labels);
        rt->retries_total = metrics_counter(
                "omnify_retries_total",
                "Handler retries after transient errors.", labels);
        rt->duplicates_total = metrics_counter(
                "omnify_redeliveries_total",
                "Commands seen again and answered from the operation log.",
                labels);

        /* The consumer group carries the topic prefix, so deployments that
         * share a cluster under different prefixes never share a group. */
        snprintf(rt->group_id, sizeof(rt->group_id), "%s%s", cfg->topic_prefix,
                 def->name);
        rt->rejoins_total = metrics_counter(
                "omnify_consumer_rejoins_total",
                "Consumers replaced after a fatal error (fenced by the "
                "group).",
                labels);
        rt->consumer = bus_consumer_new(cfg, rt->group_id, def->name,
                                        rt->commands_topic, errstr, errlen);
        if (!rt->consumer)
                goto fail;
        return rt;

fail:
        runtime_destroy(rt);
        return NULL;
}

void runtime_destroy(runtime_t *rt) {
        if (!rt)
                return;
        bus_consumer_destroy(rt->consumer);
        if (rt->def->shutdown && rt->state)
                rt->def->shutdown(rt->state);
        free(rt->type_metrics);
        for (int p = 0; p < rt->n_fifos; p++) {
                for (rt_tracker_t *t = rt->fifos[p].head, *n; t; t = n) {
                        n = t->next;
                        free(t);
                }
        }
        free(rt->fifos);
        free(rt);
}

const group_def_t *runtime_def(const runtime_t *rt) {
        return rt->def;
}

const config_t *runtime_config(const runtime_t *rt) {
        return rt->cfg;
}

store_t *runtime_store(const runtime_t *rt) {
        return rt->store;
}

/* Sleep ms, waking early when stop is set. Returns true if stopped. */
static bool rt__sleep(const atomic_bool *stop, int ms) {
        while (ms > 0 && !atomic_load(stop)) {
                int step = ms > 50 ? 50 : ms;
                struct timespec ts = {0, step * 1000000L};
                nanosleep(&ts, NULL);
                ms -= step;
        }
        return atomic_load(stop);
}

static int rt__backoff(int attempt) {
        int ms = RT_BACKOFF_MIN_MS << (attempt < 5 ? attempt : 5);
        unsigned jitter;
        if (ms > RT_BACKOFF_MAX_MS)
                ms = RT_BACKOFF_MAX_MS;
        msgid_random(&jitter, sizeof(jitter));
        return ms / 2 + (int)(jitter % (unsigned)(ms / 2 + 1));
}

/* ---------------------------------------------------------------------------
 * Handler context
 * ------------------------------------------------------------------------ */

const env_t *rt_env(const rt_ctx_t *ctx) {
        return ctx->env;
}

runtime_t *rt_runtime(const rt_ctx_t *ctx) {
        return ctx->rt;
}

void *rt_state(const rt_ctx_t *ctx) {
        return ctx->rt->state;
}

msgpack_packer *rt_reply(rt_ctx_t *ctx, int status) {
        msgpack_sbuffer_clear(&ctx->reply);
        ctx->status = status;
        return &ctx->pk;
}

static void rt__problem(rt_ctx_t *ctx, int status, const char *title,
                        const char *detail, const schema_report_t *report) {
        msgpack_packer *pk = rt_reply(ctx, status);
        msgpack_pack_map(pk, 4 + (report ? 1 : 0));
        codec_pack_str(pk, "type");
        codec_pack_str(pk, "about:blank");
        codec_pack_str(pk, "title");
        codec_pack_str(pk, title);
        codec_pack_str(pk, "status");
        msgpack_pack_int(pk, status);
        codec_pack_str(pk, "detail");
        codec_pack_str(pk, detail ? detail : title);
        if (report) {
                codec_pack_str(pk, "errors");
                msgpack_pack_array(pk, report->n);
                for (size_t i = 0; i < report->n; i++) {
                        msgpack_pack_map(pk, 2);
                        codec_pack_str(pk, "field");
                        codec_pack_str(pk, report->v[i].field);
                        codec_pack_str(pk, "reason");
                        codec_pack_str(pk, report->v[i].reason);
                }
        }
}

void rt_reply_problem(rt_ctx_t *ctx, int status, const char *title,
                      const char *detail) {
        rt__problem(ctx, status, title, detail, NULL);
}

void rt_emit(rt_ctx_t *ctx, const char *type, slice_t key,
             const msgpack_sbuffer *body) {
        rt_event_t *e;
        ctx->events = xrealloc(ctx->events, (ctx->n_events + 1) * sizeof(*e));
        e = &ctx->events[ctx->n_events++];
        {
                msgid_t mid;
                msgid_new(&mid);
                msgid_format(&mid, e->id);
        }
        e->type = xstrdup(type);
        e->key = xstrndup(key.ptr ? key.ptr : "", key.len);
        e->key_len = key.len;
        e->body = xmalloc(body->size);
        memcpy(e->body, body->data, body->size);
        e->body_len = body->size;
}

static void rt__ctx_init(rt_ctx_t *ctx, runtime_t *rt, const env_t *env) {
        memset(ctx, 0, sizeof(*ctx));
        ctx->rt = rt;
        ctx->env = env;
        msgpack_sbuffer_init(&ctx->reply);
        msgpack_packer_init(&ctx->pk, &ctx->reply, msgpack_sbuffer_write);
}

static void rt__ctx_drop_events(rt_ctx_t *ctx) {
        for (size_t i = 0; i < ctx->n_events; i++) {
                free(ctx->events[i].type);
                free(ctx->events[i].key);
                free(ctx->events[i].body);
        }
        free(ctx->events);
        ctx->events = NULL;
        ctx->n_events = 0;
}

static void rt__ctx_deinit(rt_ctx_t *ctx) {
        rt__ctx_drop_events(ctx);
        msgpack_sbuffer_destroy(&ctx->reply);
}

handler_result_t runtime_handle_status(rt_ctx_t *ctx,
                                       const msgpack_object *body) {
        runtime_t *rt = ctx->rt;
        msgpack_packer *pk = rt_reply(ctx, 200);
        (void)body;
        msgpack_pack_map(pk, 7);
        codec_pack_str(pk, "group");
        codec_pack_str(pk, rt->def->name);
        codec_pack_str(pk, "instance_id");
        codec_pack_str(pk, rt->instance);
        codec_pack_str(pk, "pid");
        msgpack_pack_int64(pk, (int64_t)getpid());
        codec_pack_str(pk, "host");
        codec_pack_str(pk, rt->host);
        codec_pack_str(pk, "mode");
        codec_pack_str(pk, rt->mode == RUNTIME_MONOLITH ? "monolith"
                                                        : "standalone");
        codec_pack_str(pk, "uptime_s");
        msgpack_pack_double(pk, (double)(clock_mono_ms() - rt->started_ms) /
                                        1000.0);
        codec_pack_str(pk, "version");
        codec_pack_str(pk, OMNIFY_VERSION);
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * Sending: replies, events, dead letters
 * ------------------------------------------------------------------------ */

static void rt__delivered(bus_delivery_t *d, bus_err_t err) {
        rt_tracker_t *t = (rt_tracker_t *)d;
        if (err)
                atomic_store(&t->failed, true);
        atomic_fetch_sub(&t->outstanding, 1);
}

/* Produce one output of the command being handled, tracked by it. */
static void rt__produce(runtime_t *rt, const char *topic, int32_t partition,
                        slice_t key, rd_kafka_headers_t *hdrs, slice_t value,
                        const char *what) {
        rt_tracker_t *t = rt->cur;
        bus_err_t err;
        if (t)
                atomic_fetch_add(&t->outstanding, 1);
        err = bus_produce(rt->bus, topic, partition, key, hdrs, value,
                          t ? &t->base : NULL);
        if (err) {
                log_error("%s to %s not queued: %s", what, topic,
                          bus_strerror(err));
                if (t) {
                        atomic_store(&t->failed, true);
                        atomic_fetch_sub(&t->outstanding, 1);
                }
        }
}

static void rt__send_reply(runtime_t *rt, const env_t *env, int status,
                           slice_t body) {
        char topic[256], id[MSGID_TEXT_SIZE], type[160];
        int32_t partition;
        msgid_t mid;
        env_t r = {0};

        if (!env->reply_to.len)
                return;
        if (env_parse_reply_to(env->reply_to, topic, sizeof(topic), &partition))
                return; /* checked at decode; unreachable */
        msgid_new(&mid);
        msgid_format(&mid, id);
        snprintf(type, sizeof(type), "%.*s.reply", (int)env->type.len,
                 env->type.ptr);
        r.id = slice_of(id);
        r.type = slice_of(type);
        r.schema_version = 1;
        r.created_at_ms = (int64_t)clock_wall_ms();
        r.correlation_id = env->id;
        r.tenant = env->tenant;
        r.traceparent = env->traceparent;
        r.status = status;
        rt__produce(rt, topic, partition, env->id, env_headers(&r), body,
                    "reply");
}

/* One event, with the id it was given when emitted (the same on a resend). */
static void rt__send_event(runtime_t *rt, const env_t *cmd, const char *id,
                           const char *type, slice_t key, slice_t body) {
        env_t ev = {0};
        ev.id = slice_of(id);
        ev.type = slice_of(type);
        ev.schema_version = 1;
        ev.created_at_ms = (int64_t)clock_wall_ms();
        ev.correlation_id = cmd->id;
        ev.tenant = cmd->tenant;
        ev.user = cmd->user;
        ev.traceparent = cmd->traceparent;
        rt__produce(rt, rt->events_topic, RD_KAFKA_PARTITION_UA, key,
                    env_headers(&ev), body, "event");
}

/* The events of ctx as a bson array for the operation log. */
static void rt__events_bson(const rt_ctx_t *ctx, bson_t *out) {
        bson_init(out);
        for (size_t i = 0; ctx && i < ctx->n_events; i++) {
                const rt_event_t *e = &ctx->events[i];
                char buf[16];
                const char *idx;
                bson_t doc;
                bson_uint32_to_string((uint32_t)i, &idx, buf, sizeof(buf));
                BSON_APPEND_DOCUMENT_BEGIN(out, idx, &doc);
                BSON_APPEND_UTF8(&doc, "id", e->id);
                BSON_APPEND_UTF8(&doc, "type", e->type);
                bson_append_utf8(&doc, "key", 3, e->key, (int)e->key_len);
                BSON_APPEND_BINARY(&doc, "body", BSON_SUBTYPE_BINARY,
                                   (const uint8_t *)e->body,
                                   (uint32_t)e->body_len);
                bson_append_document_end(out, &doc);
        }
}

/* Publish again the events a command recorded in the operation log. */
static void rt__resend_events(runtime_t *rt, const env_t *cmd,
                              const bson_t *events) {
        bson_iter_t it, doc;
        if (!events || !bson_iter_init(&it, events))
                return;
        while (bson_iter_next(&it)) {
                const char *id = NULL, *type = NULL, *key = "";
                uint32_t key_len = 0, body_len = 0;
                const uint8_t *body = NULL;
                if (!BSON_ITER_HOLDS_DOCUMENT(&it) ||
                    !bson_iter_recurse(&it, &doc))
                        continue;
                while (bson_iter_next(&doc)) {
                        const char *k = bson_iter_key(&doc);
                        if (strcmp(k, "id") == 0 && BSON_ITER_HOLDS_UTF8(&doc))
                                id = bson_iter_utf8(&doc, NULL);
                        else if (strcmp(k, "type") == 0 &&
                                 BSON_ITER_HOLDS_UTF8(&doc))
                                type = bson_iter_utf8(&doc, NULL);
                        else if (strcmp(k, "key") == 0 &&
                                 BSON_ITER_HOLDS_UTF8(&doc))
                                key = bson_iter_utf8(&doc, &key_len);
                        else if (strcmp(k, "body") == 0 &&
                                 BSON_ITER_HOLDS_BINARY(&doc))
                                bson_iter_binary(&doc, NULL, &body_len, &body);
                }
                if (id && type && body)
                        rt__send_event(rt, cmd, id, type,
                                       (slice_t){key, key_len},
                                       (slice_t){(const char *)body, body_len});
        }
}

/* The original record, its headers, plus why it failed and where it was. */
static void rt__dead_letter(runtime_t *rt, const rd_kafka_message_t *msg,
                            const char *why, int attempts) {
        rd_kafka_headers_t *orig = NULL, *hdrs;
        char num[32];

        if (rd_kafka_message_headers(msg, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR)
                hdrs = rd_kafka_headers_copy(orig);
        else
                hdrs = rd_kafka_headers_new(4);
        rd_kafka_header_remove(hdrs, "error");
        rd_kafka_header_add(hdrs, "error", -1, why, -1);
        snprintf(num, sizeof(num), "%d", attempts);
        rd_kafka_header_add(hdrs, "attempts", -1, num, -1);
        rd_kafka_header_add(hdrs, "original-topic", -1,
                            rd_kafka_topic_name(msg->rkt), -1);
        snprintf(num, sizeof(num), "%d", (int)msg->partition);
        rd_kafka_header_add(hdrs, "original-partition", -1, num, -1);
        snprintf(num, sizeof(num), "%lld", (long long)msg->offset);
        rd_kafka_header_add(hdrs, "original-offset", -1, num, -1);
        rt__produce(rt, rt->dlq_topic, RD_KAFKA_PARTITION_UA,
                    (slice_t){msg->key, msg->key_len}, hdrs,
                    (slice_t){msg->payload, msg->len}, "dead letter");
        metrics_add(rt->dlq_total, 1);
        log_warn("dead-lettered message at %s[%d]@%lld: %s",
                 rd_kafka_topic_name(msg->rkt), (int)msg->partition,
                 (long long)msg->offset, why);
}

/* ---------------------------------------------------------------------------
 * The operation log
 * ------------------------------------------------------------------------ */

/* ---------------------------------------------------------------------------
 * Handling one message
 * ------------------------------------------------------------------------ */

static const group_handler_t *rt__handler(const runtime_t *rt, slice_t type,
                                          size_t *index) {
        for (size_t i = 0; i < rt->def->n_handlers; i++) {
                if (slice_eq(type, rt->def->handlers[i].type)) {
                        *index = i;
                        return &rt->def->handlers[i];
                }
        }
        return NULL;
}

/* Record, reply, and report whether the offset may be stored. The record
 * is retried while the store is unreachable: committing without it would
 * lose the answer of an async request. */
/* Retry a store write while the store is unreachable. False if stopped. */
#define RT_STORE_RETRY(rt, stop, what, call)                  \
        for (int attempt_ = 0;; attempt_++) {                 \
                char errstr[256];                             \
                store_err_t err_ = (call);                    \
                if (err_ == STORE_OK)                         \
                        break;                                \
                log_warn("%s: %s", (what), errstr);           \
                if (!store_err_transient(err_))               \
                        break;                                \
                if (rt__sleep((stop), rt__backoff(attempt_))) \
                        return false;                         \
        }

/* Record, reply, and report whether the offset may be stored. The record
 * is retried while the store is unreachable: committing without it would
 * lose the answer of an async request. idem_id and hash (or NULL) remember
 * an Idempotency-Key's first use. */
static bool rt__finish(runtime_t *rt, const env_t *env, int status,
                       slice_t body, const rt_ctx_t *ctx, const char *idem_id,
                       const char *hash, const atomic_bool *stop) {
        bson_t events;
        /* An answer with secrets (tokens, keys) is given once: the log keeps
         * only that there was one. */
        static const char withheld_mp[] =
                "\x82\xa8"
                "withheld\xc3\xa6"
                "detail\xd9\x3b"
                "this answer held secrets: it was given once and is not kept";
        const slice_t withheld = {withheld_mp, sizeof(withheld_mp) - 1};
        rt__events_bson(ctx, &events);
        /* The events go into the record first: if they are then lost on the
         * way to Kafka, the redelivery publishes them again from here. */
        for (int attempt = 0;; attempt++) {
                char errstr[256];
                store_err_t err = oplog_record(
                        rt->store, env->id, rt->def->name, env->type,
                        env->tenant, env->user, status,
                        rt->cur_withhold && status < 400 ? withheld : body,
                        &events, rt->cfg->operation_retention_s, errstr,
                        sizeof(errstr));
                if (err == STORE_OK)
                        break;
                log_warn("operation log write: %s", errstr);
                if (!store_err_transient(err))
                        break;
                if (rt__sleep(stop, rt__backoff(attempt))) {
                        bson_destroy(&events);
                        return false;
                }
        }
        bson_destroy(&events);
        for (size_t i = 0; ctx && i < ctx->n_events; i++) {
                const rt_event_t *e = &ctx->events[i];
                rt__send_event(rt, env, e->id, e->type,
                               (slice_t){e->key, e->key_len},
                               (slice_t){e->body, e->body_len});
        }
        if (idem_id && idem_id[0])
                RT_STORE_RETRY(rt, stop, "idempotency record",
                               oplog_idem_record(rt->store, idem_id, hash,
                                                 env->id,
                                                 rt->cfg->operation_retention_s,
                                                 errstr, sizeof(errstr)));
        rt__send_reply(rt, env, status, body);
        return true;
}

typedef enum rt_idem {
        RT_IDEM_PROCEED, /* first use of the key: handle the command */
        RT_IDEM_DONE,    /* answered from the first use, or refused */
        RT_IDEM_STOPPED, /* asked to stop while the store was away */
} rt_idem_t;

/* An Idempotency-Key seen before answers with its first result, or 422
 * when the request differs from the first one. */
static rt_idem_t rt__idempotent(runtime_t *rt, const env_t *env,
                                const char *idem_id, const char *hash,
                                const atomic_bool *stop) {
        char stored_hash[OPLOG_HASH_SIZE], first_id[MSGID_TEXT_SIZE + 1],
                err[256];
        oplog_entry_t first;
        store_err_t serr;
        for (int attempt = 0;; attempt++) {
                serr = oplog_idem_find(rt->store, idem_id, stored_hash,
                                       first_id, sizeof(first_id), err,
                                       sizeof(err));
                if (!store_err_transient(serr))
                        break;
                log_warn("idempotency lookup: %s", err);
                if (rt__sleep(stop, rt__backoff(attempt)))
                        return RT_IDEM_STOPPED;
        }
        if (serr == STORE_NOT_FOUND)
                return RT_IDEM_PROCEED;
        if (serr != STORE_OK) {
                log_error("idempotency lookup: %s", err);
                return RT_IDEM_PROCEED;
        }
        if (strcmp(stored_hash, hash) != 0) {
                rt_ctx_t ctx;
                bool done;
                rt__ctx_init(&ctx, rt, env);
                rt_reply_problem(&ctx, 422, "Unprocessable Content",
                                 "this Idempotency-Key was used for a "
                                 "different request");
                done = rt__finish(rt, env, 422,
                                  (slice_t){ctx.reply.data, ctx.reply.size},
                                  NULL, NULL, NULL, stop);
                rt__ctx_deinit(&ctx);
                return done ? RT_IDEM_DONE : RT_IDEM_STOPPED;
        }
        serr = oplog_find(rt->store, slice_of(first_id), &first, err,
                          sizeof(err));
        if (serr != STORE_OK)
                return RT_IDEM_PROCEED; /* the first never finished: this one
                                           does */
        metrics_add(rt->duplicates_total, 1);
        {
                bool done = rt__finish(rt, env, first.status,
                                       (slice_t){first.body, first.body_len},
                                       NULL, NULL, NULL, stop);
                oplog_entry_deinit(&first);
                return done ? RT_IDEM_DONE : RT_IDEM_STOPPED;
        }
}

/* Reject a message whose envelope is fine but whose content is not. */
static bool rt__reject(runtime_t *rt, const rd_kafka_message_t *msg,
                       const env_t *env, int status, const char *title,
                       const char *detail, const schema_report_t *report,
                       const atomic_bool *stop) {
        rt_ctx_t ctx;
        bool done;
        rt__ctx_init(&ctx, rt, env);
        rt__problem(&ctx, status, title, detail, report);
        if (report && report->n) {
                /* Name the bad fields, so the DLQ says what to mend. */
                char why[512];
                size_t off = (size_t)snprintf(why, sizeof(why),
                                              "%s:", detail ? detail : title);
                for (size_t i = 0; i < report->n && off < sizeof(why); i++)
                        off += (size_t)snprintf(why + off, sizeof(why) - off,
                                                "%s %s %s", i ? ";" : "",
                                                report->v[i].field,
                                                report->v[i].reason);
                rt__dead_letter(rt, msg, why, 1);
        } else {
                rt__dead_letter(rt, msg, detail ? detail : title, 1);
        }
        done = rt__finish(rt, env, status,
                          (slice_t){ctx.reply.data, ctx.reply.size}, NULL, NULL,
                          NULL, stop);
        rt__ctx_deinit(&ctx);
        return done;
}

/* Returns true when the message is finished and its offset may be stored. */
static bool rt__handle(runtime_t *rt, const rd_kafka_message_t *msg,
                       const atomic_bool *stop) {
        env_t env;
        char err[256], ids[2][MSGID_TEXT_SIZE] = {"", ""};
        const group_handler_t *h;
        const schema_msg_t *sm;
        size_t hi = 0;
        msgpack_zone zone;
        msgpack_object body;
        schema_report_t report;
        rt_ctx_t ctx;
        handler_result_t res = HANDLER_TRANSIENT;
        int attempts = 0;
        bool done;
        uint64_t t0;
        char idem_id[400] = "", hash[OPLOG_HASH_SIZE] = "";

        rt->cur_withhold = false;
        if (env_decode(msg, &env, err, sizeof(err)) != ENV_OK) {
                /* Without a valid envelope there is no id to record and no
                 * trusted reply-to: straight to the DLQ. */
                rt__dead_letter(rt, msg, err, 1);
                return true;
        }
        memcpy(ids[0], env.id.ptr, env.id.len);
        if (env.correlation_id.len == MSGID_TEXT_LEN)
                memcpy(ids[1], env.correlation_id.ptr, env.correlation_id.len);
        log_set_ids(ids[0], ids[1][0] ? ids[1] : ids[0]);
        log_set_trace(env.traceparent.ptr, env.traceparent.len);

        h = rt__handler(rt, env.type, &hi);
        sm = schema_find(rt->schemas, env.type);
        if (!h || !sm) {
                snprintf(err, sizeof(err),
                         "unknown message type '%.*s' for group %s",
                         (int)(env.type.len > 64 ? 64 : env.type.len),
                         env.type.ptr, rt->def->name);
                return rt__reject(rt, msg, &env, 400, "Unknown message type",
                                  err, NULL, stop);
        }
        rt->cur_withhold = sm->route.secret_reply;
        if (env.schema_version != sm->version) {
                snprintf(err, sizeof(err),
                         "schema version %d of %s is not supported (expected "
                         "%d)",
                         env.schema_version, sm->type, sm->version);
                return rt__reject(rt, msg, &env, 400,
                                  "Unsupported schema version", err, NULL,
                                  stop);
        }
        msgpack_zone_init(&zone, 4096);
        if (env_unpack(&env, &zone, &body) != ENV_OK) {
                msgpack_zone_destroy(&zone);
                return rt__reject(rt, msg, &env, 400, "Malformed message",
                                  "the value is not a msgpack map", NULL, stop);
        }
        if (!schema_validate(sm, &body, &report)) {
                msgpack_zone_destroy(&zone);
                return rt__reject(rt, msg, &env, 400, "Invalid message",
                                  "the message does not match its schema",
                                  &report, stop);
        }

        /* Seen before? Answer as the first time, change nothing. */
        for (int attempt = 0;; attempt++) {
                oplog_entry_t seen;
                store_err_t serr =
                        oplog_find(rt->store, env.id, &seen, err, sizeof(err));
                if (serr == STORE_OK) {
                        metrics_add(rt->duplicates_total, 1);
                        log_info("redelivered %s answered from the operation "
                                 "log",
                                 sm->type);
                        /* Its outputs may not have reached Kafka the first
                         * time: send them again, with the same event ids. */
                        rt__resend_events(rt, &env, seen.events);
                        rt__send_reply(rt, &env, seen.status,
                                       (slice_t){seen.body, seen.body_len});
                        oplog_entry_deinit(&seen);
                        msgpack_zone_destroy(&zone);
                        return true;
                }
                if (serr == STORE_NOT_FOUND || !store_err_transient(serr))
                        break;
                log_warn("operation log lookup: %s", err);
                if (rt__sleep(stop, rt__backoff(attempt))) {
                        msgpack_zone_destroy(&zone);
                        return false;
                }
        }

        if (env.idempotency_key.len) {
                rt_idem_t idem;
                snprintf(idem_id, sizeof(idem_id), "%s|%.*s|%.*s",
                         rt->def->name, (int)env.tenant.len,
                         env.tenant.ptr ? env.tenant.ptr : "",
                         (int)env.idempotency_key.len, env.idempotency_key.ptr);
                oplog_request_hash(env.type, env.value, hash);
                idem = rt__idempotent(rt, &env, idem_id, hash, stop);
                if (idem != RT_IDEM_PROCEED) {
                        msgpack_zone_destroy(&zone);
                        return idem == RT_IDEM_DONE;
                }
        }

        rt__ctx_init(&ctx, rt, &env);
        t0 = clock_mono_ms();
        while (attempts < RT_MAX_ATTEMPTS) {
                attempts++;
                rt_reply_problem(&ctx, 500, "Internal error",
                                 "the handler gave no reply");
                res = h->fn(&ctx, &body);
                if (res != HANDLER_TRANSIENT)
                        break;
                rt__ctx_drop_events(&ctx);
                metrics_add(rt->retries_total, 1);
                if (!store_is_up(rt->store)) {
                        /* An outage is not this message's fault: wait for the
                         * store without spending attempts, rather than
                         * flooding the dead-letter queue. */
                        attempts--;
                        if (rt__sleep(stop, 500)) {
                                rt__ctx_deinit(&ctx);
                                msgpack_zone_destroy(&zone);
                                return false;
                        }
                        continue;
                }
                log_warn("%s: transient failure, attempt %d of %d", sm->type,
                         attempts, RT_MAX_ATTEMPTS);
                if (attempts < RT_MAX_ATTEMPTS &&
                    rt__sleep(stop, rt__backoff(attempts))) {
                        rt__ctx_deinit(&ctx);
                        msgpack_zone_destroy(&zone);
                        return false; /* redelivered to whoever comes next */
                }
        }
        metrics_observe_us(rt->type_metrics[hi].latency,
                           (clock_mono_ms() - t0) * 1000);
        if (res == HANDLER_OK) {
                metrics_add(rt->type_metrics[hi].ok, 1);
        } else {
                rt__ctx_drop_events(
                        &ctx); /* a failed command changed nothing */
                metrics_add(rt->type_metrics[hi].failed, 1);
                if (res == HANDLER_TRANSIENT)
                        rt_reply_problem(&ctx, 503, "Service unavailable",
                                         "a dependency stayed unavailable; the "
                                         "command was dead-lettered");
                rt__dead_letter(rt, msg,
                                res == HANDLER_TRANSIENT
                                        ? "retries exhausted"
                                        : "permanent handler error",
                                attempts);
        }
        done = rt__finish(rt, &env, ctx.status,
                          (slice_t){ctx.reply.data, ctx.reply.size}, &ctx,
                          idem_id, hash, stop);
        rt__ctx_deinit(&ctx);
        msgpack_zone_destroy(&zone);
        return done;
}

/* ---------------------------------------------------------------------------
 * Offsets: stored in order, once outputs are delivered
 * ------------------------------------------------------------------------ */

static rt_fifo_t *rt__fifo(runtime_t *rt, int32_t partition) {
        if (partition < 0)
                return NULL;
        if (partition >= rt->n_fifos) {
                int n = partition + 1;
                rt->fifos = xrealloc(rt->fifos, (size_t)n * sizeof(*rt->fifos));
                memset(rt->fifos + rt->n_fifos, 0,
                       (size_t)(n - rt->n_fifos) * sizeof(*rt->fifos));
                rt->n_fifos = n;
        }
        return &rt->fifos[partition];
}

/* Store the offsets of every command whose outputs (and whose
 * predecessors' outputs) are delivered; rewind a partition to a command
 * whose outputs failed. Consumer thread only. Returns how many trackers are
 * still waiting. */
static size_t rt__settle(runtime_t *rt) {
        size_t waiting = 0;
        for (int p = 0; p < rt->n_fifos; p++) {
                rt_fifo_t *f = &rt->fifos[p];
                while (f->head && atomic_load(&f->head->outstanding) == 0) {
                        rt_tracker_t *t = f->head;
                        if (!t->discard && t->done && atomic_load(&t->failed)) {
                                /* Read it again: the operation log resends. */
                                log_warn(
                                        "outputs of %s[%d]@%lld not delivered; "
                                        "reading it again",
                                        rt->commands_topic, p,
                                        (long long)t->offset);
                                bus_consumer_seek(rt->consumer,
                                                  rt->commands_topic, p,
                                                  t->offset);
                                for (rt_tracker_t *u = t; u; u = u->next)
                                        u->discard = true;
                        } else if (!t->discard && t->done) {
                                bus_consumer_store(rt->consumer,
                                                   rt->commands_topic, p,
                                                   t->offset);
                        } else if (!t->discard) {
                                break; /* abandoned: nothing after it counts */
                        }
                        f->head = t->next;
                        if (!f->head)
                                f->tail = NULL;
                        free(t);
                }
                for (rt_tracker_t *t = f->head; t; t = t->next)
                        waiting++;
        }
        return waiting;
}

/* Wait up to ms for the outputs in flight, storing what settles. */
static size_t rt__drain(runtime_t *rt, int ms) {
        uint64_t deadline = clock_mono_ms() + (uint64_t)ms;
        size_t waiting;
        while ((waiting = rt__settle(rt)) > 0 && clock_mono_ms() < deadline) {
                struct timespec ts = {0, 2 * 1000000L};
                nanosleep(&ts, NULL);
        }
        return waiting;
}

static void rt__on_revoke(void *arg,
                          const rd_kafka_topic_partition_list_t *parts) {
        (void)parts;
        /* Store what is finished before the partitions go to another
         * consumer, so it does not redo them. */
        rt__drain(arg, 2000);
}

/* The consumer can never read again (fenced by the group): forget what is
 * in hand, since its offsets can no longer be committed by this member and
 * the group hands the partitions out again from the last commit, and join
 * with a new consumer. Nothing is lost: every command not committed is read
 * again and answered from the operation log. False if stopped meanwhile. */
static bool rt__rejoin(runtime_t *rt, const atomic_bool *stop) {
        char errstr[512];
        uint64_t now = clock_mono_ms();
        /* Fenced again soon after the last time: most likely another process
         * runs with the same OMNIFY_INSTANCE_ID, and each join fences the
         * other. Back off (1 s doubling to 32 s) rather than fight. */
        if (rt->last_rejoin_ms && now - rt->last_rejoin_ms < 60000)
                rt->quick_rejoins++;
        else
                rt->quick_rejoins = 0;
        log_error("the consumer of %s was fenced out of group %s; joining "
                  "again with a new one (unfinished commands are read again)%s",
                  rt->commands_topic, rt->group_id,
                  rt->quick_rejoins ? "; fenced again within a minute: is "
                                      "another process running with the same "
                                      "OMNIFY_INSTANCE_ID?"
                                    : "");
        metrics_add(rt->rejoins_total, 1);
        for (int p = 0; p < rt->n_fifos; p++)
                for (rt_tracker_t *t = rt->fifos[p].head; t; t = t->next)
                        t->discard = true;
        bus_consumer_destroy(rt->consumer);
        rt->consumer = NULL;
        if (rt->quick_rejoins &&
            rt__sleep(stop,
                      1000 << (rt->quick_rejoins < 6 ? rt->quick_rejoins - 1
                                                     : 5)))
                return false;
        for (int attempt = 0;; attempt++) {
                rt->consumer = bus_consumer_new(
                        rt->cfg, rt->group_id, rt->def->name,
                        rt->commands_topic, errstr, sizeof(errstr));
                if (rt->consumer)
                        break;
                log_warn("new consumer for %s: %s; retrying", rt->group_id,
                         errstr);
                if (rt__sleep(stop, rt__backoff(attempt)))
                        return false;
        }
        bus_consumer_on_revoke(rt->consumer, rt__on_revoke, rt);
        rt->last_rejoin_ms = clock_mono_ms();
        return true;
}

/* ---------------------------------------------------------------------------
 * The loop
 * ------------------------------------------------------------------------ */

int runtime_run(runtime_t *rt, const atomic_bool *stop) {
        char errstr[512];
        log_set_group(rt->def->name);

        for (int attempt = 0;; attempt++) {
                if (oplog_init(rt->store, errstr, sizeof(errstr)) == STORE_OK)
                        break;
                log_warn("operation log index: %s; retrying", errstr);
                if (rt__sleep(stop, rt__backoff(attempt)))
                        return 0;
        }
        if (rt->def->init) {
                for (int attempt = 0;; attempt++) {
                        handler_result_t r = rt->def->init(
                                rt, &rt->state, errstr, sizeof(errstr));
                        if (r == HANDLER_OK)
                                break;
                        if (r == HANDLER_PERMANENT) {
                                log_error("init failed: %s", errstr);
                                return -1;
                        }
                        log_warn("init: %s; retrying", errstr);
                        if (rt__sleep(stop, rt__backoff(attempt)))
                                return 0;
                }
        }
        atomic_store(&rt->initialised, true);
        log_info("consuming %s as %s (%s)", rt->commands_topic, rt->instance,
                 rt->mode == RUNTIME_MONOLITH ? "monolith" : "standalone");

        bus_consumer_on_revoke(rt->consumer, rt__on_revoke, rt);
        while (!atomic_load(stop)) {
                rd_kafka_message_t *msg;
                rt_fifo_t *f;
                rt_tracker_t *t;
                if (bus_consumer_failed(rt->consumer) && !rt__rejoin(rt, stop))
                        break;
                msg = bus_consumer_poll(rt->consumer, 20);
                if (!msg) {
                        rt__settle(rt);
                        continue;
                }
                t = xcalloc(1, sizeof(*t));
                t->base.done = rt__delivered;
                t->offset = msg->offset;
                atomic_init(&t->outstanding, 1); /* ours while handling */
                atomic_init(&t->failed, false);
                rt->cur = t;
                t->done = rt__handle(rt, msg, stop);
                rt->cur = NULL;
                f = rt__fifo(rt, msg->partition);
                if (f->tail)
                        f->tail->next = t;
                else
                        f->head = t;
                f->tail = t;
                atomic_fetch_sub(&t->outstanding, 1);
                log_context_clear();
                rd_kafka_message_destroy(msg);
                rt__settle(rt);
        }
        log_info("stopping: committing and leaving the group");
        if (rt__drain(rt, rt->cfg->shutdown_timeout_ms) > 0) {
                /* Deliveries still running will touch their trackers: leave
                 * them allocated rather than free memory in use. */
                log_warn("outputs still in flight at shutdown; their commands "
                         "will "
                         "be read again");
                for (int p = 0; p < rt->n_fifos; p++)
                        rt->fifos[p].head = rt->fifos[p].tail = NULL;
        }
        /* Close here, on the group's own thread, so the final commit and
         * the revoke happen where the group's offsets were stored. */
        bus_consumer_destroy(rt->consumer);
        rt->consumer = NULL;
        return 0;
}

void runtime_ops_answer(runtime_t *rt, const char *what, int *status,
                        char **body, size_t *len, const char **content_type) {
        char buf[256];
        *content_type = "application/json";
        if (strcmp(what, "health") == 0) {
                bool failed = bus_failed(rt->bus);
                *status = failed ? 503 : 200;
                snprintf(buf, sizeof(buf),
                         "{\"status\":\"%s\",\"group\":\"%s\"%s}",
                         failed ? "failed" : "ok", rt->def->name,
                         failed ? ",\"reason\":\"the Kafka producer hit a "
                                  "fatal error\""
                                : "");
        } else if (strcmp(what, "ready") == 0) {
                bool kafka = bus_is_up(rt->bus), store = store_is_up(rt->store);
                bool init = atomic_load(&rt->initialised);
                *status = kafka && store && init ? 200 : 503;
                snprintf(buf, sizeof(buf),
                         "{\"status\":\"%s\",\"group\":\"%s\",\"kafka\":%s,"
                         "\"store\":%s,\"initialised\":%s}",
                         *status == 200 ? "ready" : "not ready", rt->def->name,
                         kafka ? "true" : "false", store ? "true" : "false",
                         init ? "true" : "false");
        } else if (strcmp(what, "metrics") == 0) {
                *status = 200;
                *content_type = "text/plain; version=0.0.4";
                *body = metrics_render(len);
                return;
        } else {
                *status = 404;
                snprintf(buf, sizeof(buf), "{\"status\":\"not found\"}");
        }
        *body = xstrdup(buf);
        *len = strlen(buf);
}
