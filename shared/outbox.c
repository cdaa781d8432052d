/*
 * outbox.c - the outbox's records: options, indexes, enqueue and lookup
 * (see outbox.h; the sender thread is in outbox_send.c).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "lease.h"
#include "log.h"
#include "msgid.h"
#include "outbox_internal.h"

#define OUTBOX_DEFAULT_POLL_MS 500
#define OUTBOX_DEFAULT_BATCH 50
#define OUTBOX_DEFAULT_INFLIGHT 16
#define OUTBOX_DEFAULT_LEASE_MS 60000
#define OUTBOX_DEFAULT_KEEP_S (7 * 24 * 3600)
#define OUTBOX_DEFAULT_BODY ((size_t)1 << 20)
#define OUTBOX_DEFAULT_GIVE_UP_MS (3LL * 24 * 3600 * 1000)
#define OUTBOX_KEY_MAX 1024

static const char *outbox_errors[] = {
#define X(name, msg) msg,
        OUTBOX_ERRORS(X)
#undef X
};

const char *outbox_strerror(outbox_err_t err) {
        if ((unsigned)err >= sizeof(outbox_errors) / sizeof(outbox_errors[0]))
                return "unknown outbox error";
        return outbox_errors[err];
}

static outbox_err_t outbox__store_err(store_err_t err) {
        return err == STORE_OK            ? OUTBOX_OK
               : err == STORE_NOT_FOUND   ? OUTBOX_NOT_FOUND
               : err == STORE_DUPLICATE   ? OUTBOX_EXISTS
               : store_err_transient(err) ? OUTBOX_STORE_DOWN
                                          : OUTBOX_STORE_ERROR;
}

static outbox_err_t outbox__bad(char *errstr, size_t errlen, const char *why) {
        if (errstr && errlen)
                snprintf(errstr, errlen, "%s", why);
        return OUTBOX_BAD_REQUEST;
}

/* ---------------------------------------------------------------------------
 * The outbox
 * ------------------------------------------------------------------------ */

outbox_kind_state_t *outbox__kind(outbox_t *ob, const char *name) {
        for (size_t i = 0; name && i < ob->n_kinds; i++)
                if (strcmp(ob->kinds[i].kind->name, name) == 0)
                        return &ob->kinds[i];
        return NULL;
}

outbox_t *outbox_new(const outbox_opts_t *opts, char *errstr, size_t errlen) {
        const char *db = opts->db ? opts->db : opts->group;
        const char *coll = opts->collection ? opts->collection : "outbox";
        const char *prefix = opts->index_prefix ? opts->index_prefix : coll;
        char name[OUTBOX_NAME_MAX + 16], labels[3 * OUTBOX_NAME_MAX];
        outbox_t *ob;

        if (!opts->cfg || !opts->store ||
            !lease_name_ok(opts->group, OUTBOX_NAME_MAX) ||
            !lease_name_ok(db, OUTBOX_NAME_MAX) ||
            !lease_name_ok(coll, OUTBOX_NAME_MAX) ||
            !lease_name_ok(prefix, OUTBOX_NAME_MAX) || opts->poll_ms < 0 ||
            opts->batch < 0 || opts->inflight < 0 || opts->lease_ms < 0 ||
            opts->keep_s < 0 || (opts->n_kinds && !opts->kinds)) {
                snprintf(errstr, errlen, "outbox: bad options");
                return NULL;
        }
        for (size_t i = 0; i < opts->n_kinds; i++)
                if (!lease_name_ok(opts->kinds[i].name, OUTBOX_NAME_MAX)) {
                        snprintf(errstr, errlen, "outbox: bad kind name");
                        return NULL;
                }
        ob = xcalloc(1, sizeof(*ob));
        ob->cfg = opts->cfg;
        ob->store = opts->store;
        ob->bus = opts->bus;
        ob->http = opts->http;
        snprintf(ob->group, sizeof(ob->group), "%s", opts->group);
        snprintf(ob->db, sizeof(ob->db), "%s", db);
        snprintf(ob->coll, sizeof(ob->coll), "%s", coll);
        snprintf(ob->index_prefix, sizeof(ob->index_prefix), "%s", prefix);
        snprintf(ob->ns, sizeof(ob->ns), "outbox|%s|%s", db, coll);
        snprintf(name, sizeof(name), "%s.commands", opts->group);
        bus_topic(opts->cfg, name, ob->topic, sizeof(ob->topic));
        ob->hold = opts->hold;
        ob->poll_ms = opts->poll_ms ? opts->poll_ms : OUTBOX_DEFAULT_POLL_MS;
        ob->batch = opts->batch ? opts->batch : OUTBOX_DEFAULT_BATCH;
        ob->inflight_max =
                opts->inflight ? opts->inflight : OUTBOX_DEFAULT_INFLIGHT;
        ob->lease_ms =
                opts->lease_ms ? opts->lease_ms : OUTBOX_DEFAULT_LEASE_MS;
        ob->keep_ms =
                1000LL * (opts->keep_s ? opts->keep_s : OUTBOX_DEFAULT_KEEP_S);
        ob->max_body = opts->max_body_bytes ? opts->max_body_bytes
                                            : OUTBOX_DEFAULT_BODY;
        ob->n_kinds = opts->n_kinds;
        ob->kinds =
                xcalloc(opts->n_kinds ? opts->n_kinds : 1, sizeof(*ob->kinds));
        for (size_t i = 0; i < opts->n_kinds; i++) {
                outbox_kind_state_t *k = &ob->kinds[i];
                k->kind = &opts->kinds[i];
                snprintf(labels, sizeof(labels), "group=\"%s\",kind=\"%s\"",
                         opts->group, k->kind->name);
                k->sent = metrics_counter("omnify_outbox_sent_total",
                                          "Outbox calls the provider "
                                          "accepted.",
                                          labels);
                k->failed = metrics_counter(
                        "omnify_outbox_failed_total",
                        "Outbox calls given up for good (refused, or retried "
                        "too long).",
                        labels);
                k->retries = metrics_counter(
                        "omnify_outbox_retries_total",
                        "Outbox tries that failed and were scheduled again.",
                        labels);
                k->queued = metrics_gauge(
                        "omnify_outbox_queued",
                        "Outbox calls this process queued minus those it "
                        "finished (the sum over processes is the backlog).",
                        labels);
        }
        atomic_init(&ob->stopping, false);
        pthread_mutex_init(&ob->lock, NULL);
        pthread_cond_init(&ob->idle, NULL);
        return ob;
}

int outbox_start(outbox_t *ob, char *errstr, size_t errlen) {
        ticker_t *t;

        assert(!ob->ticker);
        if (!ob->http) {
                snprintf(errstr, errlen,
                         "outbox: sending needs an HTTP "
                         "client");
                return -1;
        }
        t = ticker_start(ob->group, ob->poll_ms, outbox__round, ob, errstr,
                         errlen);
        if (!t)
                return -1;
        pthread_mutex_lock(&ob->lock);
        ob->ticker = t;
        pthread_mutex_unlock(&ob->lock);
        ticker_kick(t, 0);
        return 0;
}

void outbox_destroy(outbox_t *ob) {
        ticker_t *t;

        if (!ob)
                return;
        atomic_store(&ob->stopping, true);
        pthread_mutex_lock(&ob->lock);
        t = ob->ticker;
        ob->ticker = NULL;
        pthread_mutex_unlock(&ob->lock);
        ticker_stop(t);
        if (ob->http)
                httpc_wake(ob->http); /* calls in flight see the flag */
        outbox__drain(ob);
        pthread_cond_destroy(&ob->idle);
        pthread_mutex_destroy(&ob->lock);
        free(ob->kinds);
        free(ob);
}

outbox_err_t outbox_indexes(outbox_t *ob, char *errstr, size_t errlen) {
        char due[OUTBOX_NAME_MAX + 8], expiry[OUTBOX_NAME_MAX + 8];
        store_index_t indexes[3] = {{NULL}};

        snprintf(due, sizeof(due), "%s_due", ob->index_prefix);
        snprintf(expiry, sizeof(expiry), "%s_expiry", ob->index_prefix);
        indexes[0] = (store_index_t){ob->coll, due, "status,next_attempt_at",
                                     false, -1};
        indexes[1] = (store_index_t){ob->coll, expiry, "expires_at", false, 0};
        return outbox__store_err(store_ensure_indexes(ob->store, ob->db,
                                                      indexes, errstr, errlen));
}

bool outbox__indexes_done(outbox_t *ob) {
        char errstr[256];
        outbox_err_t err = outbox_indexes(ob, errstr, sizeof(errstr));
        if (err == OUTBOX_STORE_DOWN)
                return false;
        if (err)
                log_error("outbox %s: indexes: %s", ob->coll, errstr);
        return true;
}

/* ---------------------------------------------------------------------------
 * Records
 * ------------------------------------------------------------------------ */

/* The record's own fields: extra fields may not take these names. */
static const char *const outbox_fields[] = {
        "_id",         "kind",        "method",      "url",
        "route",       "headers",     "body",        "idempotency_key",
        "policy",      "give_up_at",  "drop_body",   "report",
        "status",      "outcome",     "attempts",    "next_attempt_at",
        "lease_until", "lease_owner", "last_status", "last_error",
        "response",    "created_at",  "sent_at",     "failed_at",
        "reported_at", "expires_at",  NULL};

static outbox_err_t outbox__check(outbox_t *ob, const outbox_request_t *req,
                                  char *errstr, size_t errlen) {
        const outbox_policy_t *p = &req->policy;
        bson_iter_t it;

        if (!lease_id_ok(req->id, OUTBOX_ID_MAX))
                return outbox__bad(errstr, errlen,
                                   "the id must be 1 to 200 printable bytes");
        if (!outbox__kind(ob, req->kind))
                return outbox__bad(errstr, errlen, "unknown kind");
        if (req->method && (strlen(req->method) > 15 || !*req->method ||
                            strspn(req->method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") !=
                                    strlen(req->method)))
                return outbox__bad(errstr, errlen, "bad method");
        if (!httpc_url_parts(req->url, NULL, 0, NULL, 0) ||
            strlen(req->url) > 4096)
                return outbox__bad(errstr, errlen, "bad URL");
        if (req->route &&
            (strlen(req->route) > 200 || strpbrk(req->route, "?#\r\n")))
                return outbox__bad(errstr, errlen, "bad route");
        for (size_t i = 0; req->headers && i < req->headers->n; i++)
                if (strpbrk(req->headers->lines[i], "\r\n"))
                        return outbox__bad(errstr, errlen, "bad header");
        if (req->body.len > ob->max_body)
                return outbox__bad(errstr, errlen, "the body is too large");
        if (req->idempotency_key &&
            (!*req->idempotency_key || strlen(req->idempotency_key) > 255 ||
             strpbrk(req->idempotency_key, "\r\n")))
                return outbox__bad(errstr, errlen, "bad idempotency key");
        if (p->max_attempts < 0 || p->backoff.base_ms < 0 ||
            p->backoff.cap_ms < 0 || p->give_up_after_ms < 0 ||
            p->give_up_at_ms < 0 || p->timeout_ms < 0 ||
            p->connect_timeout_ms < 0 ||
            (p->timeout_ms && p->timeout_ms >= ob->lease_ms - 5000))
                return outbox__bad(errstr, errlen,
                                   "bad policy (a try must end well within "
                                   "the lease)");
        if (req->report.type) {
                if (!ob->bus)
                        return outbox__bad(errstr, errlen,
                                           "reports need a producer");
                if (req->report.key.len > OUTBOX_KEY_MAX)
                        return outbox__bad(errstr, errlen,
                                           "the report key is too long");
                if (!cmdsend_check(req->report.type,
                                   req->report.version ? req->report.version
                                                       : 1,
                                   (slice_t){"\x80", 1}, &req->report.caller,
                                   errstr, errlen))
                        return OUTBOX_BAD_REQUEST;
        }
        if (req->extra && bson_iter_init(&it, req->extra))
                while (bson_iter_next(&it))
                        for (const char *const *f = outbox_fields; *f; f++)
                                if (strcmp(bson_iter_key(&it), *f) == 0)
                                        return outbox__bad(
                                                errstr, errlen,
                                                "an extra field takes a "
                                                "name of the record's");
        return OUTBOX_OK;
}

static void outbox__append_slice(bson_t *doc, const char *key, slice_t s) {
        bson_append_utf8(doc, key, -1, s.ptr ? s.ptr : "", (int)s.len);
}

static void outbox__append_report(bson_t *doc, const outbox_report_t *r) {
        bson_t sub;
        BSON_APPEND_DOCUMENT_BEGIN(doc, "report", &sub);
        BSON_APPEND_UTF8(&sub, "type", r->type);
        BSON_APPEND_INT32(&sub, "version", r->version ? r->version : 1);
        BSON_APPEND_BINARY(&sub, "key", BSON_SUBTYPE_BINARY,
                           (const uint8_t *)(r->key.ptr ? r->key.ptr : ""),
                           (uint32_t)r->key.len);
        outbox__append_slice(&sub, "tenant", r->caller.tenant);
        outbox__append_slice(&sub, "user", r->caller.user);
        outbox__append_slice(&sub, "roles", r->caller.roles);
        outbox__append_slice(&sub, "correlation_id", r->caller.correlation_id);
        BSON_APPEND_BOOL(&sub, "with_body", r->with_body);
        bson_append_document_end(doc, &sub);
}

outbox_err_t outbox_enqueue(outbox_t *ob, const outbox_request_t *req,
                            char *errstr, size_t errlen) {
        int64_t now = (int64_t)clock_wall_ms();
        const outbox_policy_t *p = &req->policy;
        outbox_kind_state_t *ks;
        bson_t doc = BSON_INITIALIZER, sub;
        bson_iter_t it;
        char key[24];
        outbox_err_t err;

        if ((err = outbox__check(ob, req, errstr, errlen)))
                return err;
        ks = outbox__kind(ob, req->kind);
        BSON_APPEND_UTF8(&doc, "_id", req->id);
        BSON_APPEND_UTF8(&doc, "kind", req->kind);
        BSON_APPEND_UTF8(&doc, "method", req->method ? req->method : "POST");
        BSON_APPEND_UTF8(&doc, "url", req->url);
        if (req->route)
                BSON_APPEND_UTF8(&doc, "route", req->route);
        BSON_APPEND_ARRAY_BEGIN(&doc, "headers", &sub);
        for (size_t i = 0; req->headers && i < req->headers->n; i++) {
                snprintf(key, sizeof(key), "%zu", i);
                BSON_APPEND_UTF8(&sub, key, req->headers->lines[i]);
        }
        bson_append_array_end(&doc, &sub);
        BSON_APPEND_BINARY(
                &doc, "body", BSON_SUBTYPE_BINARY,
                (const uint8_t *)(req->body.ptr ? req->body.ptr : ""),
                (uint32_t)req->body.len);
        BSON_APPEND_UTF8(&doc, "idempotency_key",
                         req->idempotency_key ? req->idempotency_key : req->id);
        BSON_APPEND_DOCUMENT_BEGIN(&doc, "policy", &sub);
        BSON_APPEND_INT32(&sub, "max_attempts", p->max_attempts);
        BSON_APPEND_INT64(&sub, "backoff_base_ms", p->backoff.base_ms);
        BSON_APPEND_INT64(&sub, "backoff_cap_ms", p->backoff.cap_ms);
        BSON_APPEND_INT32(&sub, "timeout_ms", p->timeout_ms);
        BSON_APPEND_INT32(&sub, "connect_timeout_ms", p->connect_timeout_ms);
        BSON_APPEND_INT64(&sub, "max_response_bytes",
                          (int64_t)p->max_response_bytes);
        bson_append_document_end(&doc, &sub);
        BSON_APPEND_DATE_TIME(
                &doc, "give_up_at",
                p->give_up_at_ms ? p->give_up_at_ms
                                 : now + (p->give_up_after_ms
                                                  ? p->give_up_after_ms
                                                  : OUTBOX_DEFAULT_GIVE_UP_MS));
        BSON_APPEND_BOOL(&doc, "drop_body", req->drop_body);
        if (req->report.type)
                outbox__append_report(&doc, &req->report);
        BSON_APPEND_UTF8(&doc, "status", "queued");
        BSON_APPEND_INT64(&doc, "attempts", 0);
        BSON_APPEND_DATE_TIME(&doc, "next_attempt_at", now);
        BSON_APPEND_DATE_TIME(&doc, "lease_until", 0);
        BSON_APPEND_UTF8(&doc, "lease_owner", "");
        BSON_APPEND_DATE_TIME(&doc, "created_at", now);
        if (req->extra && bson_iter_init(&it, req->extra))
                while (bson_iter_next(&it))
                        bson_append_iter(&doc, bson_iter_key(&it), -1, &it);
        err = outbox__store_err(store_insert(ob->store, ob->db, ob->coll, &doc,
                                             errstr, errlen));
        bson_destroy(&doc);
        if (err == OUTBOX_EXISTS) {
                log_info("%s %s was queued already", req->kind, req->id);
                return err;
        }
        if (err)
                return err;
        metrics_add(ks->queued, 1);
        if (ks->kind->queued)
                metrics_add(ks->kind->queued, 1);
        log_info("%s %s queued", req->kind, req->id);
        pthread_mutex_lock(&ob->lock);
        ticker_kick(ob->ticker, 0); /* send now, not at the next poll */
        pthread_mutex_unlock(&ob->lock);
        return OUTBOX_OK;
}

outbox_err_t outbox_find(outbox_t *ob, const char *id, bson_t *out,
                         char *errstr, size_t errlen) {
        bson_t filter = BSON_INITIALIZER;
        store_err_t err;

        if (!lease_id_ok(id, OUTBOX_ID_MAX))
                return outbox__bad(errstr, errlen, "bad id");
        BSON_APPEND_UTF8(&filter, "_id", id);
        err = store_find_one(ob->store, ob->db, ob->coll, &filter, NULL, out,
                             errstr, errlen);
        bson_destroy(&filter);
        return outbox__store_err(err);
}
