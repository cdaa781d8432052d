/*
 * outbox.h - the durable outbox: outbound HTTP calls that handlers write
 * into their group's database and a sender thread makes.
 *
 * A handler that must call a provider (send a mail, push a contact, ask an
 * LLM) does not call it: it writes the request into the outbox as part of
 * its work (outbox_enqueue), under an id of its own making (e.g. "<command
 * id>.<what>"), so a redelivered command finds the record its earlier run
 * wrote instead of writing a second. Once the command is handled the call
 * is durable; a provider outage delays it, never fails the command, and
 * nothing accepted is lost.
 *
 * One sender thread per outbox and process claims due records with a lease
 * (lease.h: several processes of the group never send one record at the
 * same time; a dead sender's lease runs out), sends them through the
 * process's HTTP client (httpc.h) one try per claim, and records the
 * outcome: sent (2xx), failed for good (an answer retrying will not change,
 * too many attempts, or past the give-up time), or due again later with
 * backoff and jitter (at least what Retry-After asked). Secrets are never
 * stored: a kind's prepare hook adds credentials just before each try.
 * Bodies that hold secrets (a single-use link) can be dropped once the
 * outcome is final.
 *
 * A record may ask for its final outcome to be reported as a command of a
 * type the caller names, onto the group's own commands topic (cmdsend.h),
 * with the enqueuer's tenant, user and roles and a message id derived from
 * the outbox id: a handler can "finish on its answer", and a report
 * produced twice is one message to the operation log. Report body (one
 * msgpack map, for the group's schema):
 *   {outbox_id: string, kind: string, outcome: "sent" | "failed",
 *    status: integer (0: no answer), attempts: integer,
 *    error?: string (when failed), body?: string (the answer, when asked
 *    for and UTF-8)}
 *
 * Collection <prefix><db>.<collection> ("outbox" by default):
 *   {_id, kind, method, url, route, headers: ["Name: value"], body (binary),
 *    idempotency_key, policy: {...}, give_up_at, drop_body, report: {...},
 *    status: "queued" | "reporting" (final outcome known, report not yet
 *    acknowledged) | "sent" | "failed", outcome, attempts, next_attempt_at,
 *    lease_until, lease_owner, last_status, last_error, response (binary,
 *    kept for a report), created_at, sent_at, failed_at, reported_at,
 *    expires_at, and the caller's extra fields}
 * Indexes (created by the sender once the store answers):
 *   <index_prefix>_due (status, next_attempt_at), <index_prefix>_expiry
 *   (TTL on expires_at: final records are kept keep_s, then dropped).
 *
 * Logs name the kind, the outbox id, the HTTP status and the attempt:
 * "mail 0190...-...verify sent (HTTP 202, attempt 1)". Never URLs, header
 * values or bodies.
 *
 * From a handler (st: the group's state holding its outbox):
 *   outbox_request_t r = {.id = id, .kind = "crm.contact", .url = url,
 *                         .body = body, .headers = &headers,
 *                         .report = {.type = "crm.contact.pushed",
 *                                    .caller = cmdsend_caller(rt_env(ctx)),
 *                                    .key = rt_env(ctx)->key}};
 *   switch (outbox_enqueue(st->outbox, &r, errstr, sizeof(errstr))) {
 *   case OUTBOX_OK: case OUTBOX_EXISTS: reply 202 ...
 *   case OUTBOX_STORE_DOWN: return HANDLER_TRANSIENT;
 *   default: return HANDLER_PERMANENT; }
 * with id made of the command's id ("<message id>.push"), so that a
 * redelivery finds its record; the handler of "crm.contact.pushed" then
 * finishes the work on the provider's answer.
 *
 * Thread-safety: outbox_enqueue and outbox_find may be called from any
 * thread (handlers call them); a kind's hooks run on the sender thread.
 */
#ifndef OMNIFY_OUTBOX_H
#define OMNIFY_OUTBOX_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

#include "backoff.h"
#include "bus.h"
#include "cmdsend.h"
#include "config.h"
#include "httpc.h"
#include "metrics.h"
#include "store.h"

#define OUTBOX_ERRORS(X)                                              \
        X(OUTBOX_OK, "ok")                                            \
        X(OUTBOX_EXISTS, "a record with this id exists; it was kept") \
        X(OUTBOX_NOT_FOUND, "no outbox record has this id")           \
        X(OUTBOX_BAD_REQUEST, "the outbound request is malformed")    \
        X(OUTBOX_STORE_DOWN, "the store is unreachable")              \
        X(OUTBOX_STORE_ERROR, "store error")

typedef enum outbox_err {
#define X(name, msg) name,
        OUTBOX_ERRORS(X)
#undef X
} outbox_err_t;

const char *outbox_strerror(outbox_err_t err);

#define OUTBOX_ID_MAX 200 /* bytes of an outbox id */

/* What a group sends, and how: one row per kind of call. */
typedef struct outbox_kind {
        const char *name; /* [a-z0-9._-]: in records, logs and metrics */
        /* Add what must never be stored (credentials) to the headers of a
         * try, on the sender thread, just before it. record is the claimed
         * record (its extra fields included). false: not ready (e.g. no
         * credentials yet): the record waits a minute, no attempt counted.
         * NULL: nothing to add. */
        bool (*prepare)(void *arg, const bson_t *record,
                        httpc_headers_t *headers);
        httpc_classify_fn classify; /* NULL: httpc's defaults */
        void *arg;                  /* for prepare and classify */
        /* A kind's own counters, counted besides the outbox's (NULL: none):
         * sent, failed for good, and this process's queued minus finished.
         */
        metrics_counter_t *sent, *failed, *queued;
} outbox_kind_t;

typedef struct outbox_policy {
        int max_attempts;          /* 0: no bound but give_up_after_ms */
        backoff_policy_t backoff;  /* {0, 0}: 1 s doubling to 5 min */
        int64_t give_up_after_ms;  /* from enqueue; 0: 3 days */
        int64_t give_up_at_ms;     /* wall clock; overrides the above */
        int timeout_ms;            /* per try; 0: 10 s */
        int connect_timeout_ms;    /* 0: 2 s */
        size_t max_response_bytes; /* 0: 64 KiB (an error beyond) */
} outbox_policy_t;

/* The command that reports a record's final outcome. */
typedef struct outbox_report {
        const char *type;    /* a command type of the group; NULL: no report */
        int version;         /* 0: 1 */
        slice_t key;         /* the report's record key (order per key) */
        cmd_caller_t caller; /* rt_env's tenant, user, roles, id */
        bool with_body;      /* the answer's body goes in the report */
} outbox_report_t;

typedef struct outbox_request {
        const char *id;     /* 1..OUTBOX_ID_MAX printable bytes: one per id */
        const char *kind;   /* a kind of the outbox's table */
        const char *method; /* NULL: POST */
        const char *url;
        const char *route; /* logs and metrics (httpc.h); NULL: the path */
        /* Stored with the record: nothing secret here (see prepare). */
        const httpc_headers_t *headers;
        slice_t body;
        const char *idempotency_key; /* NULL: the outbox id */
        outbox_policy_t policy;
        bool drop_body; /* remove body and kept answer once final */
        outbox_report_t report;
        /* Fields copied to the record's top level for the group's own
         * lookups (e.g. {to: ...}); names of the record's own fields are
         * refused. May be NULL. */
        const bson_t *extra;
} outbox_request_t;

typedef struct outbox_opts {
        const config_t *cfg; /* topic prefix */
        store_t *store;
        bus_t *bus;    /* NULL: records may not ask for reports */
        httpc_t *http; /* the process's client; NULL: no sender */
        const char *group;
        const char *db;           /* NULL: group */
        const char *collection;   /* NULL: "outbox" */
        const char *index_prefix; /* NULL: the collection's name */
        const outbox_kind_t *kinds;
        size_t n_kinds;
        /* Send nothing: records stay queued (e.g. no credentials are
         * configured in this process). Indexes are still made. */
        bool hold;
        int poll_ms;           /* 0: 500; how soon others' records are seen */
        int batch;             /* 0: 50 claims per round */
        int inflight;          /* 0: 16 calls in flight per sender */
        int lease_ms;          /* 0: 60 s; must outlast a try and a report */
        int keep_s;            /* 0: 7 days: sent and failed records */
        size_t max_body_bytes; /* 0: 1 MiB request bodies */
} outbox_opts_t;

typedef struct outbox outbox_t;

/* An outbox (no thread yet). opts is copied (the kinds table is not: it
 * must outlive the outbox). NULL and errstr on bad options. */
outbox_t *outbox_new(const outbox_opts_t *opts, char *errstr, size_t errlen);

/* Start the sender thread (needs opts->http). 0, or -1 and errstr. */
int outbox_start(outbox_t *ob, char *errstr, size_t errlen);

/* Stop the sender: calls in flight are cancelled and their records made
 * due again at once for the next sender; reports in flight are waited for.
 * Then free. NULL ok. */
void outbox_destroy(outbox_t *ob);

/* Create the indexes now (the sender does it too). */
outbox_err_t outbox_indexes(outbox_t *ob, char *errstr, size_t errlen);

/* Write the request as a queued record. OUTBOX_EXISTS when a record has
 * this id already (an earlier run of the same command): it is kept as it
 * is. Wakes this process's sender. */
outbox_err_t outbox_enqueue(outbox_t *ob, const outbox_request_t *req,
                            char *errstr, size_t errlen);

/* The record of id into *out (the caller bson_destroys it), or
 * OUTBOX_NOT_FOUND. */
outbox_err_t outbox_find(outbox_t *ob, const char *id, bson_t *out,
                         char *errstr, size_t errlen);

#endif
