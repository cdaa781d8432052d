/*
 * outbox_send.c - the outbox's sender thread (see outbox.h).
 *
 * The sender is a ticker (ticker.h). Each round it first records what came
 * back (calls the HTTP client ended, reports the broker answered), then
 * claims due records up to its free slots and hands each out as a job: a
 * try of the call (httpc_submit), or the report of an outcome
 * (cmdsend_produce). Both answer on other threads, which only queue the job
 * back and kick the sender: every store write about a record is made here,
 * under the record's lease.
 *
 * A record's life: queued -> (tries, each due after backoff) -> sent or
 * failed; with a report: -> reporting (outcome written) -> the report
 * acknowledged -> sent or failed.
 */
#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "codec.h"
#include "lease.h"
#include "log.h"
#include "msgid.h"
#include "outbox_internal.h"

#define OUTBOX_DEFAULT_BACKOFF ((backoff_policy_t){1000, 5 * 60 * 1000})
#define OUTBOX_DEFAULT_TIMEOUT_MS 10000
#define OUTBOX_DEFAULT_CONNECT_MS 2000
#define OUTBOX_DEFAULT_RESPONSE ((size_t)64 * 1024)
#define OUTBOX_NOT_READY_MS 60000
#define OUTBOX_REPORT_RETRY ((backoff_policy_t){1000, 60000})

typedef enum outbox_what {
        OUTBOX_JOB_SEND,
        OUTBOX_JOB_REPORT,
} outbox_what_t;

/* One claimed record out for a try or a report. */
struct outbox_job {
        outbox_job_t *next;
        outbox_t *ob;
        outbox_kind_state_t *ks; /* NULL: a kind this process lacks */
        outbox_what_t what;
        bson_t *doc; /* the record as claimed (libbson aligns it) */
        const char *id, *kind;
        char owner[LEASE_OWNER_SIZE];
        int64_t attempts; /* with this try */
        /* Back from the HTTP client. */
        httpc_response_t resp;
        /* The report and how its delivery ended. */
        bus_delivery_t d;
        bus_err_t berr;
        msgpack_sbuffer report;
        char msg_id[MSGID_TEXT_SIZE];
        bool sent; /* the outcome the report carries */
};

#define JOB_OF_DELIVERY(dp) \
        ((outbox_job_t *)((char *)(dp)-offsetof(outbox_job_t, d)))

/* A final outcome, as written to the record and its report. */
typedef struct outbox_outcome {
        bool sent;
        long status;
        const char *error; /* NULL when sent */
        slice_t response;  /* kept for the report; may be empty */
} outbox_outcome_t;

static void job_free(outbox_job_t *job) {
        bson_destroy(job->doc);
        httpc_response_deinit(&job->resp);
        msgpack_sbuffer_destroy(&job->report);
        free(job);
}

static bool doc_bool(const bson_t *doc, const char *key) {
        bson_iter_t it;
        return bson_iter_init_find(&it, doc, key) &&
               BSON_ITER_HOLDS_BOOL(&it) && bson_iter_bool(&it);
}

/* The record's report subdocument (pointing into doc); false if none. */
static bool doc_report(const bson_t *doc, bson_t *report) {
        bson_iter_t it;
        const uint8_t *data;
        uint32_t len;
        if (!bson_iter_init_find(&it, doc, "report") ||
            !BSON_ITER_HOLDS_DOCUMENT(&it))
                return false;
        bson_iter_document(&it, &len, &data);
        return bson_init_static(report, data, len);
}

/* Hand a job back to the sender (any thread). */
static void job_back(outbox_job_t *job) {
        outbox_t *ob = job->ob;
        pthread_mutex_lock(&ob->lock);
        job->next = ob->done;
        ob->done = job;
        pthread_cond_broadcast(&ob->idle);
        ticker_kick(ob->ticker, 0);
        pthread_mutex_unlock(&ob->lock);
}

static bool job_is_retry(const outbox_job_t *job) {
        return job->what == OUTBOX_JOB_SEND && job->attempts > 1;
}

static void job_out(outbox_job_t *job) {
        outbox_t *ob = job->ob;
        pthread_mutex_lock(&ob->lock);
        ob->inflight++;
        ob->inflight_retries += job_is_retry(job);
        pthread_mutex_unlock(&ob->lock);
}

static void store_failed(outbox_t *ob, const char *what, const char *errstr) {
        if (!ob->store_down_logged)
                log_warn("outbox %s: %s: %s", ob->coll, what, errstr);
        ob->store_down_logged = true;
}

/* Write update under the job's lease; a lost lease or a store failure is
 * logged (the lease runs out and the record is claimed again). */
static bool job_write(outbox_job_t *job, const bson_t *update) {
        char errstr[256];
        store_err_t err = lease_update(job->ob->store, job->ob->db,
                                       job->ob->coll, job->id, job->owner,
                                       update, errstr, sizeof(errstr));
        if (err == STORE_NOT_FOUND)
                log_warn("%s %s: lease lost before the outcome was recorded",
                         job->kind, job->id);
        else if (err)
                log_warn("%s %s: outcome not recorded: %s", job->kind, job->id,
                         errstr);
        return err == STORE_OK;
}

/* Free the record again, due at due_ms; count (when not NULL) is a field
 * to add 1 to, and a failed try records its status and error (when
 * error is not NULL). */
static void job_later(outbox_job_t *job, int64_t due_ms, const char *count,
                      long status, const char *error) {
        bson_t update = BSON_INITIALIZER, set, inc;
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_DATE_TIME(&set, "next_attempt_at", due_ms);
        if (error) {
                BSON_APPEND_INT64(&set, "last_status", status);
                BSON_APPEND_UTF8(&set, "last_error", error);
        }
        lease_append_free(&set);
        bson_append_document_end(&update, &set);
        if (count) {
                BSON_APPEND_DOCUMENT_BEGIN(&update, "$inc", &inc);
                BSON_APPEND_INT64(&inc, count, 1);
                bson_append_document_end(&update, &inc);
        }
        job_write(job, &update);
        bson_destroy(&update);
}

/* ---------------------------------------------------------------------------
 * Reports
 * ------------------------------------------------------------------------ */

static void report_done(bus_delivery_t *d, bus_err_t err) {
        outbox_job_t *job = JOB_OF_DELIVERY(d);
        job->berr = err;
        job_back(job);
}

/* Produce the report of outcome o. true: the job is out (it comes back
 * through report_done); false: the report cannot be made (logged; the
 * record stays reporting, not ours to fix). */
static bool job_report(outbox_job_t *job, const outbox_outcome_t *o,
                       int64_t attempts) {
        outbox_t *ob = job->ob;
        bson_t report;
        msgpack_packer pk;
        cmdsend_msg_t m;
        bool with_body;
        bus_err_t err;

        memset(&m, 0, sizeof(m));
        if (!doc_report(job->doc, &report) ||
            !(m.type = lease_doc_str(&report, "type"))) {
                log_error("%s %s: its report is malformed", job->kind, job->id);
                return false;
        }
        with_body = doc_bool(&report, "with_body") && o->response.len &&
                    bson_utf8_validate(o->response.ptr, o->response.len, false);
        msgpack_sbuffer_destroy(&job->report);
        msgpack_sbuffer_init(&job->report);
        msgpack_packer_init(&pk, &job->report, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 5 + (o->error ? 1 : 0) + (with_body ? 1 : 0));
        codec_pack_str(&pk, "outbox_id");
        codec_pack_str(&pk, job->id);
        codec_pack_str(&pk, "kind");
        codec_pack_str(&pk, job->kind);
        codec_pack_str(&pk, "outcome");
        codec_pack_str(&pk, o->sent ? "sent" : "failed");
        codec_pack_str(&pk, "status");
        msgpack_pack_int64(&pk, o->status);
        codec_pack_str(&pk, "attempts");
        msgpack_pack_int64(&pk, attempts);
        if (o->error) {
                codec_pack_str(&pk, "error");
                codec_pack_str(&pk, o->error);
        }
        if (with_body) {
                codec_pack_str(&pk, "body");
                codec_pack_slice(&pk, o->response);
        }
        cmdsend_derive_id(lease_doc_date(job->doc, "created_at"), ob->ns,
                          job->id, 0, m.id);
        snprintf(job->msg_id, sizeof(job->msg_id), "%s", m.id);
        m.version = (int)lease_doc_int(&report, "version", 1);
        m.key = lease_doc_bin(&report, "key");
        m.body = (slice_t){job->report.data, job->report.size};
        m.caller.tenant = slice_of(lease_doc_str(&report, "tenant"));
        m.caller.user = slice_of(lease_doc_str(&report, "user"));
        m.caller.roles = slice_of(lease_doc_str(&report, "roles"));
        m.caller.correlation_id =
                slice_of(lease_doc_str(&report, "correlation_id"));
        m.created_at_ms = (int64_t)clock_wall_ms();
        job->sent = o->sent;
        job->what = OUTBOX_JOB_REPORT;
        job->d.done = report_done;
        job_out(job);
        err = cmdsend_produce(ob->bus, ob->topic, &m, &job->d);
        if (err)
                report_done(&job->d, err); /* no report will come */
        return true;
}

/* The outcome a reporting record holds. */
static void outcome_of(const bson_t *doc, outbox_outcome_t *o) {
        const char *outcome = lease_doc_str(doc, "outcome");
        o->sent = outcome && strcmp(outcome, "sent") == 0;
        o->status = (long)lease_doc_int(doc, "last_status", 0);
        o->error = o->sent ? NULL : lease_doc_str(doc, "last_error");
        if (!o->sent && !o->error)
                o->error = "failed";
        o->response = lease_doc_bin(doc, "response");
}

/* The broker answered for a report. */
static void job_reported(outbox_job_t *job) {
        outbox_t *ob = job->ob;
        int64_t now = (int64_t)clock_wall_ms();
        bson_t update = BSON_INITIALIZER, set, unset;

        if (job->berr) {
                int64_t delay = backoff_delay_ms(
                        OUTBOX_REPORT_RETRY,
                        (int)lease_doc_int(job->doc, "report_failures", 0));
                log_warn("%s %s: outcome not reported (%s); again in %lld ms",
                         job->kind, job->id, bus_strerror(job->berr),
                         (long long)delay);
                job_later(job, now + delay, "report_failures", 0, NULL);
                return;
        }
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_UTF8(&set, "status", job->sent ? "sent" : "failed");
        BSON_APPEND_DATE_TIME(&set, "reported_at", now);
        BSON_APPEND_DATE_TIME(&set, "expires_at", now + ob->keep_ms);
        lease_append_free(&set);
        bson_append_document_end(&update, &set);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$unset", &unset);
        BSON_APPEND_UTF8(&unset, "outcome", "");
        BSON_APPEND_UTF8(&unset, "report_failures", "");
        if (doc_bool(job->doc, "drop_body")) {
                BSON_APPEND_UTF8(&unset, "body", "");
                BSON_APPEND_UTF8(&unset, "response", "");
        }
        bson_append_document_end(&update, &unset);
        if (job_write(job, &update))
                log_info("%s %s: outcome reported as message %s", job->kind,
                         job->id, job->msg_id);
        bson_destroy(&update);
}

/* ---------------------------------------------------------------------------
 * Tries
 * ------------------------------------------------------------------------ */

static void send_done(void *arg, httpc_response_t *resp) {
        outbox_job_t *job = arg;
        job->resp = *resp;
        job_back(job);
}

/* The record's policy subdocument, read into a request. */
static void read_policy(const bson_t *doc, httpc_request_t *req,
                        backoff_policy_t *backoff, int *max_attempts) {
        bson_iter_t it;
        bson_t p;
        const uint8_t *data;
        uint32_t len;

        *backoff = OUTBOX_DEFAULT_BACKOFF;
        *max_attempts = 0;
        req->timeout_ms = OUTBOX_DEFAULT_TIMEOUT_MS;
        req->connect_timeout_ms = OUTBOX_DEFAULT_CONNECT_MS;
        req->max_response_bytes = OUTBOX_DEFAULT_RESPONSE;
        if (!bson_iter_init_find(&it, doc, "policy") ||
            !BSON_ITER_HOLDS_DOCUMENT(&it))
                return;
        bson_iter_document(&it, &len, &data);
        bson_init_static(&p, data, len);
        *max_attempts = (int)lease_doc_int(&p, "max_attempts", 0);
        if (lease_doc_int(&p, "backoff_base_ms", 0) > 0 ||
            lease_doc_int(&p, "backoff_cap_ms", 0) > 0)
                *backoff = (backoff_policy_t){
                        lease_doc_int(&p, "backoff_base_ms", 0),
                        lease_doc_int(&p, "backoff_cap_ms", 0)};
        if (lease_doc_int(&p, "timeout_ms", 0) > 0)
                req->timeout_ms = (int)lease_doc_int(&p, "timeout_ms", 0);
        if (lease_doc_int(&p, "connect_timeout_ms", 0) > 0)
                req->connect_timeout_ms =
                        (int)lease_doc_int(&p, "connect_timeout_ms", 0);
        if (lease_doc_int(&p, "max_response_bytes", 0) > 0)
                req->max_response_bytes =
                        (size_t)lease_doc_int(&p, "max_response_bytes", 0);
}

/*
 * Record a final outcome: the record's last state, or "reporting" and the
 * report when one was asked for. Like every job_* step below, returns true
 * when the job is out again (it comes back to collect), false when the
 * caller frees it.
 */
static bool job_final(outbox_job_t *job, const outbox_outcome_t *o) {
        outbox_t *ob = job->ob;
        int64_t now = (int64_t)clock_wall_ms();
        bson_t report, update = BSON_INITIALIZER, set, unset;
        bool reported = doc_report(job->doc, &report);
        bool report_now = reported && ob->bus && !atomic_load(&ob->stopping);
        bool drop = doc_bool(job->doc, "drop_body");

        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_INT64(&set, "last_status", o->status);
        BSON_APPEND_INT64(&set, "attempts", job->attempts);
        BSON_APPEND_DATE_TIME(&set, o->sent ? "sent_at" : "failed_at", now);
        if (o->error)
                BSON_APPEND_UTF8(&set, "last_error", o->error);
        if (reported) {
                /* The outcome waits for its report: now, or from the next
                 * sender when this one is stopping. */
                BSON_APPEND_UTF8(&set, "status", "reporting");
                BSON_APPEND_UTF8(&set, "outcome", o->sent ? "sent" : "failed");
                BSON_APPEND_DATE_TIME(&set, "next_attempt_at", now);
                if (o->response.len && doc_bool(&report, "with_body"))
                        BSON_APPEND_BINARY(&set, "response",
                                           BSON_SUBTYPE_BINARY,
                                           (const uint8_t *)o->response.ptr,
                                           (uint32_t)o->response.len);
                if (!report_now)
                        lease_append_free(&set);
        } else {
                BSON_APPEND_UTF8(&set, "status", o->sent ? "sent" : "failed");
                BSON_APPEND_DATE_TIME(&set, "expires_at", now + ob->keep_ms);
                lease_append_free(&set);
        }
        bson_append_document_end(&update, &set);
        if (!reported && (o->sent || drop)) {
                BSON_APPEND_DOCUMENT_BEGIN(&update, "$unset", &unset);
                if (o->sent)
                        BSON_APPEND_UTF8(&unset, "last_error", "");
                if (drop)
                        BSON_APPEND_UTF8(&unset, "body", "");
                bson_append_document_end(&update, &unset);
        }
        if (!job_write(job, &update)) {
                bson_destroy(&update);
                return false;
        }
        bson_destroy(&update);
        if (job->ks) {
                const outbox_kind_t *k = job->ks->kind;
                metrics_add(job->ks->queued, -1);
                metrics_add(o->sent ? job->ks->sent : job->ks->failed, 1);
                if (k->queued)
                        metrics_add(k->queued, -1);
                if (o->sent && k->sent)
                        metrics_add(k->sent, 1);
                if (!o->sent && k->failed)
                        metrics_add(k->failed, 1);
        }
        return report_now && job_report(job, o, job->attempts);
}

/* A try came back: sent, failed for good, or due again later. */
static bool job_tried(outbox_job_t *job) {
        const httpc_response_t *r = &job->resp;
        int64_t now = (int64_t)clock_wall_ms(), delay;
        backoff_policy_t backoff;
        httpc_request_t policy = {0};
        int max_attempts;
        char what[96];
        outbox_outcome_t o = {.status = r->status};

        if (r->err == HTTPC_CANCELLED || r->err == HTTPC_STOPPED ||
            r->err == HTTPC_NOT_STARTED) {
                /* Stopping, or the host was too busy to start it within the
                 * lease: tried again (at once, or in a second for a busy
                 * host), no attempt counted. */
                job_later(job, r->err == HTTPC_NOT_STARTED ? now + 1000 : now,
                          NULL, 0, NULL);
                return false;
        }
        read_policy(job->doc, &policy, &backoff, &max_attempts);
        if (r->err == HTTPC_OK)
                snprintf(what, sizeof(what), "HTTP %ld", r->status);
        else
                snprintf(what, sizeof(what), "%s", httpc_strerror(r->err));
        o.response = (slice_t){r->body, r->body_len};
        if (r->verdict == HTTPC_VERDICT_OK) {
                o.sent = true;
                log_info("%s %s sent (HTTP %ld, attempt %lld)", job->kind,
                         job->id, r->status, (long long)job->attempts);
                return job_final(job, &o);
        }
        o.error = what;
        if (r->verdict == HTTPC_VERDICT_FAILED) {
                log_error("%s %s rejected (%s, attempt %lld); given up",
                          job->kind, job->id, what, (long long)job->attempts);
                return job_final(job, &o);
        }
        if ((max_attempts > 0 && job->attempts >= max_attempts) ||
            now >= lease_doc_date(job->doc, "give_up_at")) {
                log_error("%s %s not sent (%s) after %lld attempts; given up",
                          job->kind, job->id, what, (long long)job->attempts);
                return job_final(job, &o);
        }
        delay = backoff_delay_ms(backoff, (int)job->attempts - 1);
        if (r->retry_after_ms > delay)
                delay = r->retry_after_ms;
        log_warn("%s %s not sent (%s), attempt %lld; next in %lld ms",
                 job->kind, job->id, what, (long long)job->attempts,
                 (long long)delay);
        if (job->ks)
                metrics_add(job->ks->retries, 1);
        job_later(job, now + delay, "attempts", r->status, what);
        return false;
}

/* Start a try of a claimed record. */
static bool job_send(outbox_job_t *job) {
        outbox_t *ob = job->ob;
        httpc_headers_t headers = HTTPC_HEADERS_INIT;
        httpc_request_t req = {0};
        backoff_policy_t backoff;
        int max_attempts;
        bson_iter_t it, arr;
        httpc_err_t err;

        if (!job->ks) {
                outbox_outcome_t o = {.error = "unknown kind"};
                log_error("%s %s: this process has no such kind; given up",
                          job->kind, job->id);
                return job_final(job, &o);
        }
        read_policy(job->doc, &req, &backoff, &max_attempts);
        req.method = lease_doc_str(job->doc, "method");
        req.url = lease_doc_str(job->doc, "url");
        req.route = lease_doc_str(job->doc, "route");
        req.body = lease_doc_bin(job->doc, "body");
        req.idempotency_key = lease_doc_str(job->doc, "idempotency_key");
        req.retry.attempts = 1; /* our retries are durable */
        /* A try must end within the lease, or another sender could claim
         * the record and send it too: it starts soon enough or not at all
         * (the enqueue check keeps timeouts 5 s inside the lease). */
        req.retry.budget_ms = ob->lease_ms - req.timeout_ms - 5000;
        if (req.retry.budget_ms < 1000)
                req.retry.budget_ms = 1000;
        req.retry.classify = job->ks->kind->classify;
        req.retry.classify_arg = job->ks->kind->arg;
        req.cancel = &ob->stopping;
        if (bson_iter_init_find(&it, job->doc, "headers") &&
            BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &arr))
                while (bson_iter_next(&arr))
                        if (BSON_ITER_HOLDS_UTF8(&arr))
                                httpc_headers_add_line(
                                        &headers, bson_iter_utf8(&arr, NULL));
        if (job->ks->kind->prepare &&
            !job->ks->kind->prepare(job->ks->kind->arg, job->doc, &headers)) {
                log_info("%s %s: not ready to send; waits", job->kind, job->id);
                httpc_headers_deinit(&headers);
                job_later(job, (int64_t)clock_wall_ms() + OUTBOX_NOT_READY_MS,
                          NULL, 0, NULL);
                return false;
        }
        req.headers = &headers;
        job->what = OUTBOX_JOB_SEND;
        job_out(job);
        err = httpc_submit(ob->http, &req, send_done, job);
        httpc_headers_deinit(&headers); /* copied (and wiped) by now */
        if (err) {
                httpc_response_t resp = {
                        .err = err,
                        .retry_after_ms = -1,
                        .verdict = err == HTTPC_QUEUE_FULL
                                           ? HTTPC_VERDICT_RETRY
                                           : HTTPC_VERDICT_FAILED};
                send_done(job, &resp); /* back through collect */
        }
        return true;
}

/* ---------------------------------------------------------------------------
 * Rounds
 * ------------------------------------------------------------------------ */

/* Record what came back. */
static void collect(outbox_t *ob) {
        outbox_job_t *jobs, *job;

        pthread_mutex_lock(&ob->lock);
        jobs = ob->done;
        ob->done = NULL;
        pthread_mutex_unlock(&ob->lock);
        while ((job = jobs)) {
                bool out;
                jobs = job->next;
                pthread_mutex_lock(&ob->lock);
                ob->inflight--;
                ob->inflight_retries -= job_is_retry(job);
                pthread_mutex_unlock(&ob->lock);
                if (job->what == OUTBOX_JOB_SEND) {
                        out = job_tried(job);
                } else {
                        job_reported(job);
                        out = false;
                }
                if (!out)
                        job_free(job);
        }
}

/* The records a claim won, kept for after it: no store call is made from
 * inside the claim's read. */
typedef struct outbox_claim {
        outbox_t *ob;
        const char *owner;
        outbox_job_t *head, **tail; /* in claim order */
} outbox_claim_t;

static bool claimed(const bson_t *doc, void *arg) {
        outbox_claim_t *cl = arg;
        outbox_job_t *job = xcalloc(1, sizeof(*job));

        job->ob = cl->ob;
        job->doc = bson_copy(doc);
        snprintf(job->owner, sizeof(job->owner), "%s", cl->owner);
        job->id = lease_doc_str(job->doc, "_id");
        job->kind = lease_doc_str(job->doc, "kind");
        job->resp.retry_after_ms = -1;
        msgpack_sbuffer_init(&job->report);
        job->ks = outbox__kind(cl->ob, job->kind);
        job->attempts = lease_doc_int(job->doc, "attempts", 0) + 1;
        *cl->tail = job;
        cl->tail = &job->next;
        return true;
}

/* Hand a claimed record out: a try, or the report of its outcome. */
static void job_start(outbox_job_t *job) {
        const char *status = lease_doc_str(job->doc, "status");
        bool out = false;

        if (!job->id || !job->kind || !status) {
                log_error("outbox %s: a claimed record is malformed; left "
                          "alone",
                          job->ob->coll);
        } else if (strcmp(status, "reporting") == 0) {
                outbox_outcome_t o;
                outcome_of(job->doc, &o);
                if (job->ob->bus)
                        out = job_report(job, &o, job->attempts - 1);
                else
                        log_error("%s %s: its outcome waits for a report and "
                                  "this outbox has no producer",
                                  job->kind, job->id);
        } else {
                out = job_send(job);
        }
        if (!out)
                job_free(job);
}

/* Records to send or report: never tried ones, or (retried) the others. */
static void claimable(bson_t *filter, bool retried) {
        bson_t in, arr, cond;
        BSON_APPEND_DOCUMENT_BEGIN(filter, "status", &in);
        BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
        BSON_APPEND_UTF8(&arr, "0", "queued");
        BSON_APPEND_UTF8(&arr, "1", "reporting");
        bson_append_array_end(&in, &arr);
        bson_append_document_end(filter, &in);
        BSON_APPEND_DOCUMENT_BEGIN(filter, "attempts", &cond);
        BSON_APPEND_INT64(&cond, retried ? "$gt" : "$lte", 0);
        bson_append_document_end(filter, &cond);
}

/* One claim of up to limit records matching filter (with status); their
 * jobs started. Returns the store's answer; *n and *next as lease_claim. */
static store_err_t claim_some(outbox_t *ob, const bson_t *filter, int limit,
                              int *n, int64_t *next) {
        lease_query_t q = {.db = ob->db,
                           .coll = ob->coll,
                           .filter = filter,
                           .time_field = "next_attempt_at",
                           .limit = limit,
                           .lease_ms = ob->lease_ms};
        outbox_claim_t cl = {.ob = ob, .head = NULL, .tail = &cl.head};
        char owner[LEASE_OWNER_SIZE], errstr[256];
        store_err_t err;

        cl.owner = owner;
        *n = 0;
        err = lease_claim(ob->store, &q, (int64_t)clock_wall_ms(), owner,
                          claimed, &cl, n, next, errstr, sizeof(errstr));
        for (outbox_job_t *job = cl.head, *after; job; job = after) {
                after = job->next;
                job->next = NULL;
                job_start(job);
        }
        if (err)
                store_failed(ob, "claiming due records", errstr);
        return err;
}

/*
 * A round: records never tried (and outcomes to report) first, then the
 * retries, which may hold at most three quarters of the slots: a
 * destination that times out cannot keep a new record waiting behind the
 * backlog of its own retries (found with hundreds of mails to a dead mail
 * API ahead of a verification mail to a live one).
 */
int64_t outbox__round(void *arg, const atomic_bool *stop) {
        outbox_t *ob = arg;
        bson_t fresh = BSON_INITIALIZER, retry = BSON_INITIALIZER;
        int64_t next = INT64_MAX, next_retry = INT64_MAX;
        int n = 0, n_retry = 0, free_slots, retry_slots, limit;
        bool full = false;

        collect(ob);
        if (atomic_load(stop) || !store_is_up(ob->store))
                return INT64_MAX;
        if (!ob->indexed)
                ob->indexed = outbox__indexes_done(ob);
        if (ob->hold)
                return INT64_MAX;
        pthread_mutex_lock(&ob->lock);
        free_slots = ob->inflight_max - ob->inflight;
        retry_slots =
                ob->inflight_max - ob->inflight_max / 4 - ob->inflight_retries;
        pthread_mutex_unlock(&ob->lock);
        if (free_slots <= 0)
                return INT64_MAX; /* a job coming back kicks us */
        limit = free_slots < ob->batch ? free_slots : ob->batch;
        claimable(&fresh, false);
        if (claim_some(ob, &fresh, limit, &n, &next))
                goto down;
        full = n == limit;
        limit -= n;
        if (retry_slots < limit)
                limit = retry_slots;
        if (limit > 0) {
                claimable(&retry, true);
                if (claim_some(ob, &retry, limit, &n_retry, &next_retry))
                        goto down;
                full = full || n_retry == limit;
                if (next_retry < next)
                        next = next_retry;
        }
        ob->store_down_logged = false;
        bson_destroy(&fresh);
        bson_destroy(&retry);
        return full ? 0 : next;
down:
        bson_destroy(&fresh);
        bson_destroy(&retry);
        return INT64_MAX;
}

void outbox__drain(outbox_t *ob) {
        for (;;) {
                bool idle;
                pthread_mutex_lock(&ob->lock);
                while (!ob->done && ob->inflight > 0)
                        pthread_cond_wait(&ob->idle, &ob->lock);
                idle = !ob->done && ob->inflight == 0;
                pthread_mutex_unlock(&ob->lock);
                if (idle)
                        return;
                collect(ob);
        }
}
