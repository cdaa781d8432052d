/*
 * rt_job.c - one message through the runtime: checks, then the handler with
 * its retries (the handler API is in rt_ctx.c). See rt_internal.h for where
 * a job comes from and goes to.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "backoff.h"
#include "codec.h"
#include "log.h"
#include "rt_internal.h"

/* ---------------------------------------------------------------------------
 * Checks: what a job is and whether it is acceptable
 * ------------------------------------------------------------------------ */

/* Refuse a message whose envelope is fine but whose content is not: a
 * problem reply, a record (so a redelivery is answered the same way) and a
 * dead letter naming what to mend. */
static void rt__refuse(rt_job_t *job, int status, const char *title,
                       const char *detail, const schema_report_t *report) {
        char why[512];
        size_t off;
        rt__problem(&job->ctx, status, title, detail, report);
        off = (size_t)snprintf(why, sizeof(why), "%s", detail ? detail : title);
        if (report && report->n) {
                off += (size_t)snprintf(why + off, sizeof(why) - off, ":");
                for (size_t i = 0; i < report->n && off < sizeof(why); i++)
                        off += (size_t)snprintf(why + off, sizeof(why) - off,
                                                "%s %s %s", i ? ";" : "",
                                                report->v[i].field,
                                                report->v[i].reason);
        }
        job->dead_why = xstrdup(why);
        job->attempts = 1;
        job->record = job->loop->commands;
        job->state = RT_JOB_FINISH;
}

/* The reply handler of a group, as a table entry. */
static const group_handler_t *rt__reply_handler(const rt_job_t *job) {
        const runtime_t *rt = job->loop->rt;
        static __thread group_handler_t h;
        if (!rt->def->on_reply || !job->env.status || job->env.type.len < 6 ||
            memcmp(job->env.type.ptr + job->env.type.len - 6, ".reply", 6))
                return NULL;
        h.type = NULL;
        h.fn = rt->def->on_reply;
        h.batch = NULL;
        return &h;
}

static bool rt__unpack(rt_job_t *job) {
        msgpack_zone_init(&job->zone, 4096);
        job->zone_used = true;
        return env_unpack(&job->env, &job->zone, &job->body) == ENV_OK;
}

static void rt__check_command(rt_job_t *job) {
        runtime_t *rt = job->loop->rt;
        const env_t *env = &job->env;
        schema_report_t report;
        char err[256];
        size_t hi = 0;

        if ((job->h = rt__reply_handler(job)) != NULL) {
                /* A reply to one of our requests: no schema, no record. */
                if (!rt__unpack(job)) {
                        job->dead_why = xstrdup("a reply that is not a "
                                                "msgpack map");
                        job->state = RT_JOB_FINISH;
                        return;
                }
                job->state = RT_JOB_RUN;
                return;
        }
        job->h = rt__loop_handler(job->loop, env->type, &hi);
        job->sm = schema_find(rt->schemas, env->type);
        if (!job->h || !job->sm) {
                job->h = NULL;
                snprintf(err, sizeof(err),
                         "unknown message type '%.*s' for group %s",
                         (int)(env->type.len > 64 ? 64 : env->type.len),
                         env->type.ptr, rt->def->name);
                rt__refuse(job, 400, "Unknown message type", err, NULL);
                return;
        }
        job->tm = &job->loop->tm[hi];
        job->withhold = job->sm->route.secret_reply;
        if (env->schema_version != job->sm->version) {
                snprintf(err, sizeof(err),
                         "schema version %d of %s is not supported (expected "
                         "%d)",
                         env->schema_version, job->sm->type, job->sm->version);
                rt__refuse(job, 400, "Unsupported schema version", err, NULL);
                return;
        }
        if (!rt__unpack(job)) {
                rt__refuse(job, 400, "Malformed message",
                           "the value is not a msgpack map", NULL);
                return;
        }
        if (!schema_validate(job->sm, &job->body, &report)) {
                rt__refuse(job, 400, "Invalid message",
                           "the message does not match its schema", &report);
                return;
        }
        /* A synchronous read-only command still fresh is simply run again
         * if redelivered: its caller is waiting for the reply. One older
         * than half the shortest wait a caller may ask for (Prefer: wait=1)
         * may have been given up on (504 with an operation id, or its group
         * was down): its result goes to the operation log like everything
         * else, which is also looked up first. */
        job->record = !(job->sm->read_only && env->reply_to.len &&
                        clock_wall_ms() < (uint64_t)env->created_at_ms +
                                                  RT_READ_ONLY_FRESH_MS);
        job->state = RT_JOB_RUN;
}

static void rt__check_event(rt_job_t *job) {
        const schema_event_t *decl;
        schema_report_t report;
        size_t hi = 0;
        char why[512];
        job->h = rt__loop_handler(job->loop, job->env.type, &hi);
        if (!job->h) {
                job->state = RT_JOB_SKIP; /* not followed here */
                return;
        }
        job->tm = &job->loop->tm[hi];
        job->state = RT_JOB_FINISH;
        if (!rt__unpack(job)) {
                job->dead_why = xstrdup("the value is not a msgpack map");
                return;
        }
        /* A declared event must match its declaration; one of a newer
         * version than this build knows waits in the DLQ for an upgrade. */
        decl = schema_find_event(job->loop->rt->schemas, job->env.type);
        if (decl && job->env.schema_version > decl->version) {
                snprintf(why, sizeof(why),
                         "event version %d is newer than this build's %d",
                         job->env.schema_version, decl->version);
                job->dead_why = xstrdup(why);
                return;
        }
        if (decl && !schema_event_validate(decl, &job->body, &report)) {
                snprintf(why, sizeof(why),
                         "the event breaks its declaration: %s %s",
                         report.n ? report.v[0].field : "",
                         report.n ? report.v[0].reason : "");
                job->dead_why = xstrdup(why);
                return;
        }
        job->state = RT_JOB_RUN;
}

rt_job_t *rt__job_new(rt_loop_t *loop, rd_kafka_message_t *msg,
                      const env_t *env) {
        rt_job_t *job = xcalloc(1, sizeof(*job));
        char err[256];
        job->loop = loop;
        job->msg = msg;
        job->partition = msg ? msg->partition : 0;
        if (msg) {
                if (env_decode(msg, &job->env, err, sizeof(err)) != ENV_OK) {
                        /* Without a valid envelope there is no id to record
                         * and no trusted reply-to: straight to the DLQ. */
                        memset(&job->env, 0, sizeof(job->env));
                        rt__ctx_init(&job->ctx, loop->rt, job, &job->env);
                        job->dead_why = xstrdup(err);
                        job->attempts = 1;
                        job->state = RT_JOB_FINISH;
                        return job;
                }
        } else {
                job->env = *env;
        }
        rt__ctx_init(&job->ctx, loop->rt, job, &job->env);
        if (loop->commands)
                rt__check_command(job);
        else
                rt__check_event(job);
        return job;
}

void rt__job_free(rt_job_t *job) {
        if (!job)
                return;
        rt__ctx_deinit(&job->ctx);
        if (job->zone_used)
                msgpack_zone_destroy(&job->zone);
        if (job->answered)
                oplog_entry_deinit(&job->seen);
        free(job->dead_why);
        if (job->msg)
                rd_kafka_message_destroy(job->msg);
        free(job);
}

bool rt__job_needs_lookup(const rt_job_t *job) {
        return job->loop->commands && job->state == RT_JOB_RUN && job->record &&
               job->sm != NULL;
}

void rt__job_answered(rt_job_t *job, oplog_entry_t *seen) {
        job->seen = *seen;
        job->answered = true;
        job->record = false;
        job->state = RT_JOB_FINISH;
        metrics_add(job->loop->rt->duplicates_total, 1);
        log_info("redelivered %.*s answered from the operation log",
                 (int)job->env.type.len, job->env.type.ptr);
}

/* ---------------------------------------------------------------------------
 * Running handlers
 * ------------------------------------------------------------------------ */

/* The log context of a job on the calling thread. */
static void rt__log_context(const rt_job_t *job) {
        char ids[2][MSGID_TEXT_SIZE] = {"", ""};
        const env_t *env = &job->env;
        if (env->id.len == MSGID_TEXT_LEN)
                memcpy(ids[0], env->id.ptr, MSGID_TEXT_LEN);
        if (env->correlation_id.len == MSGID_TEXT_LEN)
                memcpy(ids[1], env->correlation_id.ptr, MSGID_TEXT_LEN);
        log_set_ids(ids[0], ids[1][0] ? ids[1] : ids[0]);
        log_set_trace(env->traceparent.ptr, env->traceparent.len);
}

typedef enum rt_idem {
        RT_IDEM_PROCEED, /* first use of the key: handle the command */
        RT_IDEM_DONE,    /* answered from the first use, or refused */
        RT_IDEM_STOPPED, /* asked to stop while the store was away */
} rt_idem_t;

/* An Idempotency-Key seen before answers with its first result, or 422
 * when the request differs from the first one. */
static rt_idem_t rt__idempotent(rt_job_t *job, const atomic_bool *stop) {
        runtime_t *rt = job->loop->rt;
        const env_t *env = &job->env;
        char stored_hash[OPLOG_HASH_SIZE], first_id[MSGID_TEXT_SIZE + 1],
                err[256];
        oplog_entry_t first;
        store_err_t serr;

        snprintf(job->idem_id, sizeof(job->idem_id), "%s|%.*s|%.*s",
                 rt->def->name, (int)env->tenant.len,
                 env->tenant.ptr ? env->tenant.ptr : "",
                 (int)env->idempotency_key.len, env->idempotency_key.ptr);
        oplog_request_hash(env->type, env->value, job->hash);
        for (int attempt = 0;; attempt++) {
                serr = oplog_idem_find(rt->store, job->idem_id, stored_hash,
                                       first_id, sizeof(first_id), err,
                                       sizeof(err));
                if (!store_err_transient(serr))
                        break;
                log_warn("idempotency lookup: %s", err);
                if (backoff_wait(stop, RT_BACKOFF, attempt))
                        return RT_IDEM_STOPPED;
        }
        if (serr == STORE_NOT_FOUND)
                return RT_IDEM_PROCEED;
        if (serr != STORE_OK) {
                log_error("idempotency lookup: %s", err);
                return RT_IDEM_PROCEED;
        }
        if (strcmp(stored_hash, job->hash) != 0) {
                /* Known: this message only answers. */
                job->idem_id[0] = '\0';
                rt_reply_problem(&job->ctx, 422, "Unprocessable Content",
                                 "this Idempotency-Key was used for a "
                                 "different request");
                return RT_IDEM_DONE;
        }
        if (oplog_find(rt->store, slice_of(first_id), &first, err,
                       sizeof(err)) != STORE_OK) {
                /* The first never finished: this one does, as the key's
                 * use (its record stays the first one's). */
                return RT_IDEM_PROCEED;
        }
        job->idem_id[0] = '\0';
        metrics_add(rt->duplicates_total, 1);
        rt_reply(&job->ctx, first.status);
        if (first.content_type[0])
                job->ctx.content_type = xstrdup(first.content_type);
        msgpack_sbuffer_write(&job->ctx.reply, first.body, first.body_len);
        oplog_entry_deinit(&first);
        return RT_IDEM_DONE;
}

/* Try fn until it is not transient (or attempts run out); while the store
 * is unreachable, wait without spending attempts. Returns the result, or
 * -1 when stopped. */
static int rt__with_retries(rt_job_t *job, handler_result_t (*fn)(void *),
                            void *arg, void (*reset)(void *),
                            const atomic_bool *stop) {
        runtime_t *rt = job->loop->rt;
        handler_result_t res = HANDLER_TRANSIENT;
        int attempts = 0;
        while (attempts < RT_MAX_ATTEMPTS) {
                attempts++;
                reset(arg);
                res = fn(arg);
                if (res != HANDLER_TRANSIENT)
                        break;
                metrics_add(rt->retries_total, 1);
                if (!store_is_up(rt->store)) {
                        /* An outage is not this message's fault: wait for
                         * the store without spending attempts, rather than
                         * flooding the dead-letter queue. */
                        attempts--;
                        if (backoff_sleep(stop, 500))
                                return -1;
                        continue;
                }
                log_warn("%.*s: transient failure, attempt %d of %d",
                         (int)job->env.type.len, job->env.type.ptr, attempts,
                         RT_MAX_ATTEMPTS);
                if (attempts < RT_MAX_ATTEMPTS &&
                    backoff_wait(stop, RT_BACKOFF, attempts))
                        return -1;
        }
        job->attempts = attempts;
        return (int)res;
}

static void rt__reset_one(void *arg) {
        rt_job_t *job = arg;
        rt__ctx_drop_outputs(&job->ctx);
        rt_reply_problem(&job->ctx, 500, "Internal error",
                         "the handler gave no reply");
}

static handler_result_t rt__call_one(void *arg) {
        rt_job_t *job = arg;
        handler_result_t res = job->h->fn(&job->ctx, &job->body);
        if (res == HANDLER_OK && job->ctx.bad_output) {
                rt_reply_problem(&job->ctx, 500, "Internal error",
                                 "the handler published an invalid message");
                return HANDLER_PERMANENT;
        }
        return res;
}

/* The outcome of a handled job: metrics, dead letter, no outputs on
 * failure. */
static void rt__settle_result(rt_job_t *job, handler_result_t res,
                              const char *why) {
        atomic_fetch_add(&job->loop->rt->handled, 1);
        if (res == HANDLER_OK) {
                if (job->tm)
                        metrics_add(job->tm->ok, 1);
        } else {
                rt__ctx_drop_outputs(&job->ctx); /* a failure changed nothing */
                if (job->tm)
                        metrics_add(job->tm->failed, 1);
                if (res == HANDLER_TRANSIENT)
                        rt_reply_problem(&job->ctx, 503, "Service unavailable",
                                         "a dependency stayed unavailable; "
                                         "the command was dead-lettered");
                free(job->dead_why);
                job->dead_why = xstrdup(why ? why
                                        : res == HANDLER_TRANSIENT
                                                ? "retries exhausted"
                                                : "permanent handler error");
        }
        job->state = RT_JOB_FINISH;
}

void rt__job_exec(rt_job_t *job, const atomic_bool *stop) {
        uint64_t t0;
        int res;
        rt__log_context(job);
        if (job->env.idempotency_key.len && job->record) {
                switch (rt__idempotent(job, stop)) {
                case RT_IDEM_PROCEED:
                        break;
                case RT_IDEM_DONE:
                        job->state = RT_JOB_FINISH;
                        goto out;
                case RT_IDEM_STOPPED:
                        job->state = RT_JOB_ABANDON;
                        goto out;
                }
        }
        t0 = clock_mono_ms();
        res = rt__with_retries(job, rt__call_one, job, rt__reset_one, stop);
        if (res < 0) {
                job->state = RT_JOB_ABANDON; /* read again by whoever is next */
                goto out;
        }
        if (job->tm)
                metrics_observe_us(job->tm->latency,
                                   (clock_mono_ms() - t0) * 1000);
        rt__settle_result(job, (handler_result_t)res, NULL);
out:
        log_context_clear();
}

typedef struct rt_batch {
        rt_job_t **jobs;
        rt_ctx_t **ctxs;
        const msgpack_object **bodies;
        size_t n;
} rt_batch_t;

static void rt__reset_batch(void *arg) {
        rt_batch_t *b = arg;
        for (size_t i = 0; i < b->n; i++) {
                rt__reset_one(b->jobs[i]);
                free(b->jobs[i]->ctx.fail_why);
                b->jobs[i]->ctx.fail_why = NULL;
        }
}

static handler_result_t rt__call_batch(void *arg) {
        rt_batch_t *b = arg;
        return b->jobs[0]->h->batch(b->ctxs, b->bodies, b->n);
}

void rt__batch_exec(rt_job_t **jobs, size_t n, const atomic_bool *stop) {
        rt_batch_t b = {jobs, xcalloc(n, sizeof(rt_ctx_t *)),
                        xcalloc(n, sizeof(msgpack_object *)), n};
        uint64_t t0 = clock_mono_ms();
        int res;
        for (size_t i = 0; i < n; i++) {
                b.ctxs[i] = &jobs[i]->ctx;
                b.bodies[i] = &jobs[i]->body;
        }
        res = rt__with_retries(jobs[0], rt__call_batch, &b, rt__reset_batch,
                               stop);
        for (size_t i = 0; i < n; i++) {
                rt_job_t *job = jobs[i];
                if (res < 0) {
                        job->state = RT_JOB_ABANDON;
                        continue;
                }
                job->attempts = jobs[0]->attempts;
                if (job->tm)
                        metrics_observe_us(job->tm->latency,
                                           (clock_mono_ms() - t0) * 1000 / n);
                if (res == HANDLER_OK &&
                    (job->ctx.fail_why || job->ctx.bad_output))
                        rt__settle_result(job, HANDLER_PERMANENT,
                                          job->ctx.fail_why
                                                  ? job->ctx.fail_why
                                                  : "published an invalid "
                                                    "message");
                else
                        rt__settle_result(job, (handler_result_t)res, NULL);
        }
        free(b.ctxs);
        free(b.bodies);
}
