/*
 * timer.c - durable timers and schedules (see timer.h).
 *
 * Setting writes the record with one upsert whose filter refuses a fired
 * timer, a record a firer holds (its lease), and leaves an identical armed
 * record alone; the duplicate key any of these raises is told apart by one
 * read. The firing thread is in timer_fire.c.
 */
#include "timer.h"

#include <assert.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "metrics.h"
#include "msgid.h"
#include "timer_internal.h"

#define TIMER_DEFAULT_POLL_MS 1000
#define TIMER_DEFAULT_BATCH 256
#define TIMER_DEFAULT_KEEP_S (7 * 24 * 3600)
#define TIMER_DEFAULT_BODY (64 * 1024)
#define TIMER_DEFAULT_HORIZON_MS 250
#define TIMER_MAX_MS (100LL * 365 * 24 * 3600 * 1000) /* ~year 2070 + */

static const char *timer_errors[] = {
#define X(name, msg) msg,
        TIMER_ERRORS(X)
#undef X
};

const char *timer_strerror(timer_err_t err) {
        if ((unsigned)err >= sizeof(timer_errors) / sizeof(timer_errors[0]))
                return "unknown timer error";
        return timer_errors[err];
}

static timer_err_t timer__store_err(store_err_t err) {
        return err == STORE_OK            ? TIMER_OK
               : err == STORE_NOT_FOUND   ? TIMER_NOT_FOUND
               : store_err_transient(err) ? TIMER_STORE_DOWN
                                          : TIMER_STORE_ERROR;
}

static timer_err_t timer__bad(char *errstr, size_t errlen, const char *why) {
        if (errstr && errlen)
                snprintf(errstr, errlen, "%s", why);
        return TIMER_BAD_SPEC;
}

/* ---------------------------------------------------------------------------
 * The service
 * ------------------------------------------------------------------------ */

timer_service_t *timer_service_new(const timer_opts_t *opts, char *errstr,
                                   size_t errlen) {
        timer_service_t *ts;
        const char *db = opts->db ? opts->db : opts->group;
        const char *coll = opts->collection ? opts->collection : "timers";
        char name[TIMER_NAME_MAX + 16];
        char labels[TIMER_NAME_MAX + 16];

        if (!opts->cfg || !opts->store ||
            !lease_name_ok(opts->group, TIMER_NAME_MAX) ||
            !lease_name_ok(db, TIMER_NAME_MAX) ||
            !lease_name_ok(coll, TIMER_NAME_MAX) || opts->poll_ms < 0 ||
            opts->batch < 0 || opts->lease_ms < 0 || opts->keep_s < 0 ||
            opts->max_body_bytes < 0 || opts->horizon_ms < -1) {
                snprintf(errstr, errlen, "timer: bad options");
                return NULL;
        }
        ts = xcalloc(1, sizeof(*ts));
        ts->cfg = opts->cfg;
        ts->store = opts->store;
        ts->bus = opts->bus;
        snprintf(ts->group, sizeof(ts->group), "%s", opts->group);
        snprintf(ts->db, sizeof(ts->db), "%s", db);
        snprintf(ts->coll, sizeof(ts->coll), "%s", coll);
        snprintf(ts->ns, sizeof(ts->ns), "timer|%s|%s", db, coll);
        snprintf(name, sizeof(name), "%s.commands", opts->group);
        bus_topic(opts->cfg, name, ts->topic, sizeof(ts->topic));
        ts->poll_ms = opts->poll_ms ? opts->poll_ms : TIMER_DEFAULT_POLL_MS;
        ts->batch = opts->batch ? opts->batch : TIMER_DEFAULT_BATCH;
        ts->keep_s = opts->keep_s ? opts->keep_s : TIMER_DEFAULT_KEEP_S;
        ts->max_body = opts->max_body_bytes ? opts->max_body_bytes
                                            : TIMER_DEFAULT_BODY;
        /* A claim must outlast the wait for the broker's answers. */
        ts->horizon_ms = opts->horizon_ms < 0 ? 0
                         : opts->horizon_ms   ? opts->horizon_ms
                                              : TIMER_DEFAULT_HORIZON_MS;
        ts->held = xcalloc((size_t)ts->batch, sizeof(*ts->held));
        ts->lease_ms = opts->lease_ms
                               ? opts->lease_ms
                               : opts->cfg->kafka_message_timeout_ms + 30000;
        snprintf(labels, sizeof(labels), "group=\"%s\"", opts->group);
        ts->fired = metrics_counter("omnify_timer_fired_total",
                                    "Timer and schedule firings the broker "
                                    "acknowledged.",
                                    labels);
        ts->failed = metrics_counter("omnify_timer_fire_failures_total",
                                     "Firings the broker refused (tried "
                                     "again later).",
                                     labels);
        ts->delay = metrics_histogram(
                "omnify_timer_delay_seconds",
                "From a firing's due time to the broker's ack.", labels);
        return ts;
}

bool timer__indexes_done(timer_service_t *ts) {
        char errstr[256];
        timer_err_t err = timer_service_indexes(ts, errstr, sizeof(errstr));
        if (err == TIMER_STORE_DOWN)
                return false;
        if (err)
                log_error("timers: indexes: %s", errstr);
        return true;
}

timer_err_t timer_service_indexes(timer_service_t *ts, char *errstr,
                                  size_t errlen) {
        char due[TIMER_NAME_MAX + 8], expiry[TIMER_NAME_MAX + 8];
        store_index_t indexes[3] = {{NULL}};

        snprintf(due, sizeof(due), "%s_due", ts->coll);
        snprintf(expiry, sizeof(expiry), "%s_expiry", ts->coll);
        indexes[0] =
                (store_index_t){ts->coll, due, "status,fire_at", false, -1};
        indexes[1] = (store_index_t){ts->coll, expiry, "expires_at", false, 0};
        return timer__store_err(store_ensure_indexes(ts->store, ts->db, indexes,
                                                     errstr, errlen));
}

/* ---------------------------------------------------------------------------
 * Setting and cancelling
 * ------------------------------------------------------------------------ */

/* The command a timer or schedule produces, checked. */
typedef struct timer_cmd {
        const char *type;
        int version;
        slice_t key, body;
        const cmd_caller_t *caller;
} timer_cmd_t;

static bool timer__utf8(slice_t s) {
        return !s.len || bson_utf8_validate(s.ptr, s.len, false);
}

static timer_err_t timer__check(const timer_service_t *ts, const char *id,
                                const timer_cmd_t *c, char *errstr,
                                size_t errlen) {
        if (!lease_id_ok(id, TIMER_ID_MAX))
                return timer__bad(errstr, errlen,
                                  "the id must be 1 to 200 printable bytes");
        if (c->body.len > (size_t)ts->max_body)
                return timer__bad(errstr, errlen, "the body is too large");
        if (c->key.len > 1024)
                return timer__bad(errstr, errlen, "the key is too long");
        if (!cmdsend_check(c->type, c->version, c->body, c->caller, errstr,
                           errlen))
                return TIMER_BAD_SPEC;
        if (!timer__utf8(c->caller->tenant) || !timer__utf8(c->caller->user) ||
            !timer__utf8(c->caller->roles))
                return timer__bad(errstr, errlen,
                                  "the caller's fields are not UTF-8");
        return TIMER_OK;
}

/* The $set fields of a record that is done (fired or cancelled): kept
 * keep_s, then dropped by the TTL index; its lease is free. */
void timer__append_ended(const timer_service_t *ts, bson_t *set,
                         const char *status, const char *at_field,
                         int64_t now) {
        BSON_APPEND_UTF8(set, "status", status);
        BSON_APPEND_DATE_TIME(set, at_field, now);
        BSON_APPEND_DATE_TIME(set, "updated_at", now);
        BSON_APPEND_DATE_TIME(set, "expires_at",
                              now + (int64_t)ts->keep_s * 1000);
        lease_append_free(set);
}

static void timer__append_slice(bson_t *doc, const char *key, slice_t s) {
        bson_append_utf8(doc, key, -1, s.ptr ? s.ptr : "", (int)s.len);
}

/* The command's fields, in a fixed order (they are hashed). */
static void timer__append_cmd(bson_t *doc, const timer_cmd_t *c) {
        BSON_APPEND_UTF8(doc, "type", c->type);
        BSON_APPEND_INT32(doc, "version", c->version);
        BSON_APPEND_BINARY(doc, "key", BSON_SUBTYPE_BINARY,
                           (const uint8_t *)(c->key.ptr ? c->key.ptr : ""),
                           (uint32_t)c->key.len);
        BSON_APPEND_BINARY(doc, "body", BSON_SUBTYPE_BINARY,
                           (const uint8_t *)(c->body.ptr ? c->body.ptr : ""),
                           (uint32_t)c->body.len);
        timer__append_slice(doc, "tenant", c->caller->tenant);
        timer__append_slice(doc, "user", c->caller->user);
        timer__append_slice(doc, "roles", c->caller->roles);
        timer__append_slice(doc, "correlation_id", c->caller->correlation_id);
}

static void timer__hash(const bson_t *def, char out[65]) {
        unsigned char h[SHA256_DIGEST_LENGTH];
        SHA256(bson_get_data(def), def->len, h);
        for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
                snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/*
 * Write an armed record: fields (the kind's and the command's) plus status,
 * lease and times, hash naming the definition; gen is bumped. A fired record
 * is refused (TIMER_FIRED) and an armed one of the same hash left as it is
 * (TIMER_OK): a redelivered command changes nothing.
 */
static timer_err_t timer__arm(timer_service_t *ts, const char *id,
                              const char *kind, const char *hash,
                              const bson_t *fields, const char *const *unset,
                              int64_t fire_at, char *errstr, size_t errlen) {
        int64_t now = (int64_t)clock_wall_ms();
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, sub, arr,
               one, set, found;
        bson_iter_t it;
        store_err_t err;
        const char *status, *have;

        BSON_APPEND_UTF8(&filter, "_id", id);
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "status", &sub);
        BSON_APPEND_UTF8(&sub, "$ne", "fired");
        bson_append_document_end(&filter, &sub);
        BSON_APPEND_ARRAY_BEGIN(&filter, "$nor", &arr);
        BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &one);
        BSON_APPEND_UTF8(&one, "status", "armed");
        BSON_APPEND_UTF8(&one, "def_hash", hash);
        bson_append_document_end(&arr, &one);
        bson_append_array_end(&filter, &arr);
        /* Not while a firer holds it: its firing would ignore us. */
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "lease_until", &sub);
        BSON_APPEND_DATE_TIME(&sub, "$lte", now);
        bson_append_document_end(&filter, &sub);

        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        if (bson_iter_init(&it, fields))
                while (bson_iter_next(&it))
                        bson_append_iter(&set, bson_iter_key(&it), -1, &it);
        BSON_APPEND_UTF8(&set, "kind", kind);
        BSON_APPEND_UTF8(&set, "status", "armed");
        BSON_APPEND_UTF8(&set, "def_hash", hash);
        BSON_APPEND_DATE_TIME(&set, "updated_at", now);
        lease_append_free(&set);
        bson_append_document_end(&update, &set);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$inc", &sub);
        BSON_APPEND_INT64(&sub, "gen", 1);
        bson_append_document_end(&update, &sub);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &sub);
        BSON_APPEND_DATE_TIME(&sub, "created_at", now);
        bson_append_document_end(&update, &sub);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$unset", &sub);
        for (; unset && *unset; unset++)
                BSON_APPEND_UTF8(&sub, *unset, "");
        bson_append_document_end(&update, &sub);

        err = store_update_one(ts->store, ts->db, ts->coll, &filter, &update,
                               true, errstr, errlen);
        bson_destroy(&filter);
        bson_destroy(&update);
        if (err == STORE_OK) {
                ticker_kick(ts->ticker, fire_at - ts->horizon_ms);
                return TIMER_OK;
        }
        if (err != STORE_DUPLICATE)
                return timer__store_err(err);

        /* The filter refused the record that is there: which case? */
        bson_init(&filter);
        BSON_APPEND_UTF8(&filter, "_id", id);
        err = store_find_one(ts->store, ts->db, ts->coll, &filter, NULL, &found,
                             errstr, errlen);
        bson_destroy(&filter);
        if (err)
                return timer__store_err(
                        err == STORE_NOT_FOUND ? STORE_UNAVAILABLE : err);
        status = lease_doc_str(&found, "status");
        have = lease_doc_str(&found, "def_hash");
        err = STORE_OK;
        if (status && strcmp(status, "fired") == 0) {
                bson_destroy(&found);
                return TIMER_FIRED;
        }
        if (status && strcmp(status, "armed") == 0 && have &&
            strcmp(have, hash) != 0 &&
            lease_doc_date(&found, "lease_until") > now) {
                bson_destroy(&found);
                return TIMER_FIRING;
        }
        if (!(status && strcmp(status, "armed") == 0 && have &&
              strcmp(have, hash) == 0)) {
                /* Changed between the two calls: the caller tries again. */
                snprintf(errstr, errlen, "%s %s changed while being set", kind,
                         id);
                err = STORE_UNAVAILABLE;
        }
        bson_destroy(&found);
        return timer__store_err(err);
}

timer_err_t timer_set(timer_service_t *ts, const timer_spec_t *spec,
                      char *errstr, size_t errlen) {
        static const char *const unset[] = {
                "expires_at", "fired_at",  "cancelled_at",
                "every_ms",   "anchor_ms", "period",
                NULL};
        timer_cmd_t c = {spec->type, spec->version ? spec->version : 1,
                         spec->key, spec->body, &spec->caller};
        bson_t def = BSON_INITIALIZER;
        char hash[65];
        timer_err_t err;

        if ((err = timer__check(ts, spec->id, &c, errstr, errlen)))
                return err;
        if (spec->fire_at_ms < 0 || spec->fire_at_ms > TIMER_MAX_MS)
                return timer__bad(errstr, errlen, "fire_at is out of range");
        BSON_APPEND_DATE_TIME(&def, "fire_at", spec->fire_at_ms);
        timer__append_cmd(&def, &c);
        timer__hash(&def, hash);
        err = timer__arm(ts, spec->id, "timer", hash, &def, unset,
                         spec->fire_at_ms, errstr, errlen);
        bson_destroy(&def);
        return err;
}

timer_err_t schedule_set(timer_service_t *ts, const schedule_spec_t *spec,
                         char *errstr, size_t errlen) {
        static const char *const unset[] = {"expires_at", "cancelled_at", NULL};
        timer_cmd_t c = {spec->type, spec->version ? spec->version : 1,
                         spec->key, spec->body, &spec->caller};
        int64_t now = (int64_t)clock_wall_ms(), anchor, period = 0, fire_at;
        bson_t def = BSON_INITIALIZER;
        char hash[65];
        timer_err_t err;

        if ((err = timer__check(ts, spec->id, &c, errstr, errlen)))
                return err;
        if (spec->every_ms < TIMER_MIN_EVERY_MS ||
            spec->every_ms > TIMER_MAX_MS || spec->first_at_ms < 0 ||
            spec->first_at_ms > TIMER_MAX_MS)
                return timer__bad(errstr, errlen,
                                  "every_ms must be at least 1000 and "
                                  "first_at_ms in range");
        anchor = spec->first_at_ms ? spec->first_at_ms : now + spec->every_ms;
        if (anchor < now)
                period = (now - anchor + spec->every_ms - 1) / spec->every_ms;
        fire_at = anchor + period * spec->every_ms;
        /* The hash covers what the caller gave (not the anchor made of
         * "now"), so the same schedule set again is recognised. */
        BSON_APPEND_INT64(&def, "every_ms", spec->every_ms);
        BSON_APPEND_INT64(&def, "first_at_ms", spec->first_at_ms);
        timer__append_cmd(&def, &c);
        timer__hash(&def, hash);
        BSON_APPEND_INT64(&def, "anchor_ms", anchor);
        BSON_APPEND_INT64(&def, "period", period);
        BSON_APPEND_DATE_TIME(&def, "fire_at", fire_at);
        err = timer__arm(ts, spec->id, "schedule", hash, &def, unset, fire_at,
                         errstr, errlen);
        bson_destroy(&def);
        return err;
}

static timer_err_t timer__cancel(timer_service_t *ts, const char *kind,
                                 const char *id, char *errstr, size_t errlen) {
        int64_t now = (int64_t)clock_wall_ms();
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, inc;
        store_err_t err;

        if (!lease_id_ok(id, TIMER_ID_MAX))
                return timer__bad(errstr, errlen,
                                  "the id must be 1 to 200 printable bytes");
        BSON_APPEND_UTF8(&filter, "_id", id);
        BSON_APPEND_UTF8(&filter, "kind", kind);
        BSON_APPEND_UTF8(&filter, "status", "armed");
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "lease_until", &set);
        BSON_APPEND_DATE_TIME(&set, "$lte", now);
        bson_append_document_end(&filter, &set);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        timer__append_ended(ts, &set, "cancelled", "cancelled_at", now);
        bson_append_document_end(&update, &set);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$inc", &inc);
        BSON_APPEND_INT64(&inc, "gen", 1);
        bson_append_document_end(&update, &inc);
        err = store_update_one(ts->store, ts->db, ts->coll, &filter, &update,
                               false, errstr, errlen);
        bson_destroy(&filter);
        bson_destroy(&update);
        if (err == STORE_NOT_FOUND) {
                /* Unknown, done, or held by a firer? */
                bson_t found;
                bson_init(&filter);
                BSON_APPEND_UTF8(&filter, "_id", id);
                BSON_APPEND_UTF8(&filter, "kind", kind);
                BSON_APPEND_UTF8(&filter, "status", "armed");
                err = store_find_one(ts->store, ts->db, ts->coll, &filter, NULL,
                                     &found, errstr, errlen);
                bson_destroy(&filter);
                if (err == STORE_OK) {
                        bool held = lease_doc_date(&found, "lease_until") > now;
                        bson_destroy(&found);
                        return held ? TIMER_FIRING : TIMER_STORE_DOWN;
                }
        }
        return timer__store_err(err);
}

timer_err_t timer_cancel(timer_service_t *ts, const char *id, char *errstr,
                         size_t errlen) {
        return timer__cancel(ts, "timer", id, errstr, errlen);
}

timer_err_t schedule_cancel(timer_service_t *ts, const char *id, char *errstr,
                            size_t errlen) {
        return timer__cancel(ts, "schedule", id, errstr, errlen);
}

int timer_service_start(timer_service_t *ts, char *errstr, size_t errlen) {
        assert(!ts->ticker);
        if (!ts->bus) {
                snprintf(errstr, errlen, "timers: firing needs a producer");
                return -1;
        }
        ts->ticker = ticker_start(ts->group, ts->poll_ms, timer__round, ts,
                                  errstr, errlen);
        return ts->ticker ? 0 : -1;
}

void timer_service_destroy(timer_service_t *ts) {
        if (!ts)
                return;
        ticker_stop(ts->ticker);
        timer__release_held(ts); /* the next firer need not wait */
        free(ts->held);
        free(ts);
}
