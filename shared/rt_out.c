/*
 * rt_out.c - what a finished job sends: its operation record (one bulk per
 * flush), then its events and commands, its reply and its dead letter, each
 * delivery tracked so the message's offset is stored only once the broker
 * has them all (see rt_internal.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "backoff.h"
#include "log.h"
#include "rt_internal.h"

/* ---------------------------------------------------------------------------
 * Producing, tracked by the job's tracker
 * ------------------------------------------------------------------------ */

static void rt__delivered(bus_delivery_t *d, bus_err_t err) {
        rt_tracker_t *t = (rt_tracker_t *)d;
        if (err)
                atomic_store(&t->failed, true);
        atomic_fetch_sub(&t->outstanding, 1);
}

/* Produce one output of a job; takes hdrs. In the harness (no bus) the
 * output is handed to the capture instead. */
static void rt__produce(runtime_t *rt, rt_tracker_t *t, const char *topic,
                        int32_t partition, slice_t key,
                        rd_kafka_headers_t *hdrs, slice_t value,
                        const char *what) {
        bus_err_t err;
        if (!rt->bus) {
                env_t env;
                char e[160];
                if (rt->capture && env_decode_headers(hdrs, key, value, &env, e,
                                                      sizeof(e)) == ENV_OK)
                        rt->capture(rt->capture_arg, topic, &env, value);
                rd_kafka_headers_destroy(hdrs);
                return;
        }
        if (t) {
                t->base.done = rt__delivered;
                atomic_fetch_add(&t->outstanding, 1);
        }
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

static void rt__send_reply(runtime_t *rt, rt_tracker_t *t, const env_t *env,
                           int status, const char *content_type, slice_t body) {
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
        r.content_type = slice_of(content_type);
        rt__produce(rt, t, topic, partition, env->id, env_headers(&r), body,
                    "reply");
}

/* One output (event or command) of the message env, with the id it was
 * given when made (the same on a resend). */
static void rt__send_output(runtime_t *rt, rt_tracker_t *t, const env_t *cmd,
                            const char *id, const char *type, const char *topic,
                            const char *reply_to, slice_t key, slice_t body,
                            const rt_output_t *as) {
        env_t out = {0};
        out.id = slice_of(id);
        out.type = slice_of(type);
        out.schema_version = 1;
        out.created_at_ms = (int64_t)clock_wall_ms();
        out.correlation_id =
                cmd->correlation_id.len ? cmd->correlation_id : cmd->id;
        out.tenant = cmd->tenant;
        out.user = cmd->user;
        out.traceparent = cmd->traceparent;
        if (topic) {
                /* A command: it acts with the sender's rights, never more. */
                out.roles = cmd->roles;
                out.reply_to = slice_of(reply_to);
        }
        if (as && as->tenant)
                out.tenant = slice_of(as->tenant);
        if (as && as->user)
                out.user = slice_of(as->user);
        if (as && as->roles && topic)
                out.roles = slice_of(as->roles);
        rt__produce(rt, t, topic ? topic : rt->events_topic,
                    RD_KAFKA_PARTITION_UA, key, env_headers(&out), body,
                    topic ? "command" : "event");
}

/* The outputs of ctx as a new bson array for the operation log. */
static bson_t *rt__outputs_bson(const rt_ctx_t *ctx) {
        bson_t *out = bson_new(); /* bson_t wants 128-byte alignment */
        for (size_t i = 0; i < ctx->n_outs; i++) {
                const rt_output_t *o = &ctx->outs[i];
                char buf[16];
                const char *idx;
                bson_t doc;
                bson_uint32_to_string((uint32_t)i, &idx, buf, sizeof(buf));
                BSON_APPEND_DOCUMENT_BEGIN(out, idx, &doc);
                BSON_APPEND_UTF8(&doc, "id", o->id);
                BSON_APPEND_UTF8(&doc, "type", o->type);
                if (o->topic)
                        BSON_APPEND_UTF8(&doc, "topic", o->topic);
                if (o->reply_to)
                        BSON_APPEND_UTF8(&doc, "reply_to", o->reply_to);
                bson_append_utf8(&doc, "key", 3, o->key, (int)o->key_len);
                if (o->tenant)
                        BSON_APPEND_UTF8(&doc, "tenant", o->tenant);
                if (o->user)
                        BSON_APPEND_UTF8(&doc, "user", o->user);
                if (o->roles)
                        BSON_APPEND_UTF8(&doc, "roles", o->roles);
                BSON_APPEND_BINARY(&doc, "body", BSON_SUBTYPE_BINARY,
                                   (const uint8_t *)o->body,
                                   (uint32_t)o->body_len);
                bson_append_document_end(out, &doc);
        }
        return out;
}

/* Publish again the outputs a command recorded in the operation log. */
static void rt__resend_outputs(runtime_t *rt, rt_tracker_t *t, const env_t *cmd,
                               const bson_t *outs) {
        bson_iter_t it, doc;
        if (!outs || !bson_iter_init(&it, outs))
                return;
        while (bson_iter_next(&it)) {
                const char *id = NULL, *type = NULL, *key = "", *topic = NULL,
                           *reply_to = NULL;
                rt_output_t as = {0};
                uint32_t key_len = 0, body_len = 0;
                const uint8_t *body = NULL;
                if (!BSON_ITER_HOLDS_DOCUMENT(&it) ||
                    !bson_iter_recurse(&it, &doc))
                        continue;
                while (bson_iter_next(&doc)) {
                        const char *k = bson_iter_key(&doc);
                        bool text = BSON_ITER_HOLDS_UTF8(&doc);
                        if (strcmp(k, "id") == 0 && text)
                                id = bson_iter_utf8(&doc, NULL);
                        else if (strcmp(k, "type") == 0 && text)
                                type = bson_iter_utf8(&doc, NULL);
                        else if (strcmp(k, "topic") == 0 && text)
                                topic = bson_iter_utf8(&doc, NULL);
                        else if (strcmp(k, "reply_to") == 0 && text)
                                reply_to = bson_iter_utf8(&doc, NULL);
                        else if (strcmp(k, "key") == 0 && text)
                                key = bson_iter_utf8(&doc, &key_len);
                        else if (strcmp(k, "tenant") == 0 && text)
                                as.tenant = (char *)bson_iter_utf8(&doc, NULL);
                        else if (strcmp(k, "user") == 0 && text)
                                as.user = (char *)bson_iter_utf8(&doc, NULL);
                        else if (strcmp(k, "roles") == 0 && text)
                                as.roles = (char *)bson_iter_utf8(&doc, NULL);
                        else if (strcmp(k, "body") == 0 &&
                                 BSON_ITER_HOLDS_BINARY(&doc))
                                bson_iter_binary(&doc, NULL, &body_len, &body);
                }
                if (id && type && body)
                        rt__send_output(rt, t, cmd, id, type, topic, reply_to,
                                        (slice_t){key, key_len},
                                        (slice_t){(const char *)body, body_len},
                                        &as);
        }
}

/* The original record, its headers, plus why it failed and where it was. */
static void rt__dead_letter(runtime_t *rt, rt_job_t *job) {
        const rd_kafka_message_t *msg = job->msg;
        rd_kafka_headers_t *orig = NULL, *hdrs;
        char num[32];

        metrics_add(rt->dlq_total, 1);
        if (!msg) {
                /* The harness: the dead letter is the message itself. */
                hdrs = env_headers(&job->env);
                rd_kafka_header_add(hdrs, "error", -1, job->dead_why, -1);
                rt__produce(rt, NULL, rt->dlq_topic, RD_KAFKA_PARTITION_UA,
                            job->env.key, hdrs, job->env.value, "dead letter");
                return;
        }
        if (rd_kafka_message_headers(msg, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR)
                hdrs = rd_kafka_headers_copy(orig);
        else
                hdrs = rd_kafka_headers_new(4);
        rd_kafka_header_remove(hdrs, "error");
        rd_kafka_header_add(hdrs, "error", -1, job->dead_why, -1);
        snprintf(num, sizeof(num), "%d", job->attempts ? job->attempts : 1);
        rd_kafka_header_add(hdrs, "attempts", -1, num, -1);
        rd_kafka_header_add(hdrs, "original-topic", -1,
                            rd_kafka_topic_name(msg->rkt), -1);
        snprintf(num, sizeof(num), "%d", (int)msg->partition);
        rd_kafka_header_add(hdrs, "original-partition", -1, num, -1);
        snprintf(num, sizeof(num), "%lld", (long long)msg->offset);
        rd_kafka_header_add(hdrs, "original-offset", -1, num, -1);
        if (!job->loop->commands)
                rd_kafka_header_add(hdrs, "subscription", -1,
                                    job->loop->group_id, -1);
        rt__produce(rt, job->tracker, rt->dlq_topic, RD_KAFKA_PARTITION_UA,
                    (slice_t){msg->key, msg->key_len}, hdrs,
                    (slice_t){msg->payload, msg->len}, "dead letter");
        log_warn("dead-lettered message at %s[%d]@%lld: %s",
                 rd_kafka_topic_name(msg->rkt), (int)msg->partition,
                 (long long)msg->offset, job->dead_why);
}

int32_t rt__key_partition(const runtime_t *rt, slice_t key) {
        if (rt->commands_partitions <= 1)
                return 0;
        /* librdkafka's default partitioner (consistent_random: CRC32 of the
         * key), so a reply lands where the key's commands do. */
        return rd_kafka_msg_partitioner_consistent_random(
                NULL, key.ptr, key.len, rt->commands_partitions, NULL, NULL);
}

/* ---------------------------------------------------------------------------
 * Flushing finished jobs
 * ------------------------------------------------------------------------ */

/* An answer with secrets (tokens, keys) is given once: the log keeps only
 * that there was one. */
static const char rt__withheld_mp[] =
        "\x82\xa8"
        "withheld\xc3\xa6"
        "detail\xd9\x3b"
        "this answer held secrets: it was given once and is not kept";

/* Write the operation records of every job of list that needs one, in one
 * bulk, retrying while the store is unreachable. False when stopped first. */
static bool rt__record(runtime_t *rt, rt_job_t *list, const atomic_bool *stop) {
        size_t n = 0, i = 0;
        oplog_rec_t *recs;
        bson_t **outs;
        bool ok = true;
        for (rt_job_t *j = list; j; j = j->next)
                if (j->state == RT_JOB_FINISH && j->record)
                        n++;
        if (n == 0)
                return true;
        recs = xcalloc(n, sizeof(*recs));
        outs = xcalloc(n, sizeof(*outs));
        for (rt_job_t *j = list; j; j = j->next) {
                const rt_ctx_t *ctx = &j->ctx;
                if (j->state != RT_JOB_FINISH || !j->record)
                        continue;
                outs[i] = rt__outputs_bson(ctx);
                recs[i] = (oplog_rec_t){
                        .id = j->env.id,
                        .group = rt->def->name,
                        .type = j->env.type,
                        .tenant = j->env.tenant,
                        .user = j->env.user,
                        .status = ctx->status,
                        .body = j->withhold && ctx->status < 400
                                        ? (slice_t){rt__withheld_mp,
                                                    sizeof(rt__withheld_mp) - 1}
                                        : (slice_t){ctx->reply.data,
                                                    ctx->reply.size},
                        .events = outs[i],
                        .content_type = ctx->content_type,
                };
                i++;
        }
        /* The outputs go into the record first: if they are then lost on
         * the way to Kafka, the redelivery publishes them again from it. */
        for (int attempt = 0;; attempt++) {
                char errstr[256];
                store_err_t err = oplog_record_many(
                        rt->store, recs, n, rt->cfg->operation_retention_s,
                        errstr, sizeof(errstr));
                if (err == STORE_OK)
                        break;
                log_warn("operation log write: %s", errstr);
                if (!store_err_transient(err))
                        break; /* answered anyway; a redelivery redoes it */
                if (backoff_wait(stop, RT_BACKOFF, attempt)) {
                        ok = false;
                        break;
                }
        }
        for (i = 0; i < n; i++)
                bson_destroy(outs[i]);
        free(outs);
        free(recs);
        return ok;
}

/* Remember an Idempotency-Key's first use (rare: one call per job). */
static bool rt__idem_record(runtime_t *rt, rt_job_t *job,
                            const atomic_bool *stop) {
        for (int attempt = 0;; attempt++) {
                char errstr[256];
                store_err_t err = oplog_idem_record(
                        rt->store, job->idem_id, job->hash, job->env.id,
                        rt->cfg->operation_retention_s, errstr, sizeof(errstr));
                if (err == STORE_OK || !store_err_transient(err)) {
                        if (err)
                                log_warn("idempotency record: %s", errstr);
                        return true;
                }
                if (backoff_wait(stop, RT_BACKOFF, attempt))
                        return false;
        }
}

/* Let go of the job's tracker: its offset may be stored once its outputs
 * are delivered (done), or never (abandoned). */
static void rt__release(rt_job_t *job, bool done) {
        rt_tracker_t *t = job->tracker;
        if (!t)
                return;
        t->done = done;
        atomic_fetch_sub(&t->outstanding, 1);
        job->tracker = NULL;
}

/* Everything a finished job sends, in order: dead letter, outputs, the
 * key's first use, the reply. */
static bool rt__send_job(runtime_t *rt, rt_job_t *job,
                         const atomic_bool *stop) {
        const rt_ctx_t *ctx = &job->ctx;
        if (job->answered) {
                /* Its outputs may not have reached Kafka the first time:
                 * send them again, with the same ids. */
                rt__resend_outputs(rt, job->tracker, &job->env,
                                   job->seen.events);
                rt__send_reply(rt, job->tracker, &job->env, job->seen.status,
                               job->seen.content_type[0]
                                       ? job->seen.content_type
                                       : NULL,
                               (slice_t){job->seen.body, job->seen.body_len});
                return true;
        }
        if (job->dead_why)
                rt__dead_letter(rt, job);
        for (size_t i = 0; i < ctx->n_outs; i++) {
                const rt_output_t *o = &ctx->outs[i];
                rt__send_output(rt, job->tracker, &job->env, o->id, o->type,
                                o->topic, o->reply_to,
                                (slice_t){o->key, o->key_len},
                                (slice_t){o->body, o->body_len}, o);
        }
        if (job->idem_id[0] && !rt__idem_record(rt, job, stop))
                return false;
        if (job->loop->commands && job->env.id.len)
                rt__send_reply(rt, job->tracker, &job->env, ctx->status,
                               ctx->content_type,
                               (slice_t){ctx->reply.data, ctx->reply.size});
        return true;
}

bool rt__flush(runtime_t *rt, rt_job_t *list, const atomic_bool *stop) {
        bool ok = rt__record(rt, list, stop);
        for (rt_job_t *job = list, *next; job; job = next) {
                next = job->next;
                switch (job->state) {
                case RT_JOB_FINISH:
                        rt__release(job, ok && rt__send_job(rt, job, stop));
                        break;
                case RT_JOB_SKIP:
                        rt__release(job, true);
                        break;
                default: /* RUN left over at shutdown, or ABANDON */
                        rt__release(job, false);
                        break;
                }
                rt__job_free(job);
        }
        return ok;
}
