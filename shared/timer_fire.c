/*
 * timer_fire.c - the firing thread of a timer service (see timer.h).
 *
 * A ticker (ticker.h) whose round:
 *   1. fires the records it holds that are due now;
 *   2. claims (lease.h) the records due up to horizon_ms ahead, as many
 *      as it has room for, and holds them;
 *   3. fires those already due;
 * and asks to run again at the earliest due time it holds or knows. A
 * record claimed early is fired at its time without another store round
 * trip: the claim is out of the latency path. While a record is held (or
 * being fired) its lease keeps timer_set and timer_cancel off it: they
 * answer TIMER_FIRING, never a change the firing would ignore.
 *
 * Firing a set: its commands are produced as one batch (cmdsend.h), the
 * broker's answers awaited, then one-shot timers are marked fired in one
 * update and schedules moved to their next period one by one, each under
 * its lease. A refused produce keeps the lease a while longer (backoff):
 * the record is tried again after it, with the same message id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "backoff.h"
#include "log.h"
#include "msgid.h"
#include "timer_internal.h"

#define TIMER_RETRY ((backoff_policy_t){1000, 30000})

struct timer_firing {
        bson_t *doc; /* the claimed record; msg points into it */
        char owner[LEASE_OWNER_SIZE];
        const char *id;
        bool schedule;
        int64_t period; /* the period this firing stands for */
        int64_t due;
        int64_t next_at; /* schedules: the next period's start */
        cmdsend_msg_t msg;
};

static void firing_free(timer_firing_t *f) {
        if (!f)
                return;
        bson_destroy(f->doc);
        free(f);
}

static slice_t doc_slice(const bson_t *doc, const char *key) {
        return slice_of(lease_doc_str(doc, key));
}

static void store_failed(timer_service_t *ts, const char *what,
                         const char *errstr) {
        if (!ts->store_down_logged)
                log_warn("timers: %s: %s", what, errstr);
        ts->store_down_logged = true;
}

/* ---------------------------------------------------------------------------
 * Claiming
 * ------------------------------------------------------------------------ */

typedef struct timer_claim {
        timer_service_t *ts;
        int64_t now;
        const char *owner;
} timer_claim_t;

/* A claimed record as a held firing; an unusable record is logged and
 * left leased (not ours to fix). */
static bool claimed(const bson_t *doc, void *arg) {
        timer_claim_t *cl = arg;
        timer_service_t *ts = cl->ts;
        timer_firing_t *f = xcalloc(1, sizeof(*f));
        const char *kind;
        int64_t gen;
        char name[TIMER_ID_MAX + 24];

        f->doc = bson_copy(doc); /* libbson aligns it */
        snprintf(f->owner, sizeof(f->owner), "%s", cl->owner);
        f->id = lease_doc_str(f->doc, "_id");
        kind = lease_doc_str(f->doc, "kind");
        f->msg.type = lease_doc_str(f->doc, "type");
        if (!f->id || !kind || !f->msg.type) {
                log_error("timers: a claimed record is malformed; left alone");
                firing_free(f);
                return true;
        }
        f->schedule = strcmp(kind, "schedule") == 0;
        gen = lease_doc_int(f->doc, "gen", 0);
        f->due = lease_doc_date(f->doc, "fire_at");
        if (f->schedule) {
                int64_t every = lease_doc_int(f->doc, "every_ms", 0);
                int64_t anchor = lease_doc_int(f->doc, "anchor_ms", f->due);
                int64_t k = lease_doc_int(f->doc, "period", 0);
                if (every < TIMER_MIN_EVERY_MS) {
                        log_error("schedule %s has no usable period; left "
                                  "alone",
                                  f->id);
                        firing_free(f);
                        return true;
                }
                /* After downtime: once, for the latest period begun. */
                if (cl->now >= anchor && (cl->now - anchor) / every > k)
                        k = (cl->now - anchor) / every;
                f->period = k;
                f->due = anchor + k * every;
                f->next_at = f->due + every;
        }
        snprintf(name, sizeof(name), "%s#%lld", f->id, (long long)gen);
        cmdsend_derive_id(f->due, ts->ns, name, f->period, f->msg.id);
        f->msg.version = (int)lease_doc_int(f->doc, "version", 1);
        f->msg.key = lease_doc_bin(f->doc, "key");
        f->msg.body = lease_doc_bin(f->doc, "body");
        f->msg.caller.tenant = doc_slice(f->doc, "tenant");
        f->msg.caller.user = doc_slice(f->doc, "user");
        f->msg.caller.roles = doc_slice(f->doc, "roles");
        f->msg.caller.correlation_id = doc_slice(f->doc, "correlation_id");
        f->msg.created_at_ms = f->due;
        ts->held[ts->n_held++] = f;
        return true;
}

/* ---------------------------------------------------------------------------
 * Firing
 * ------------------------------------------------------------------------ */

/* Record a schedule's firing: on to its next period. */
static void record_schedule(timer_service_t *ts, const timer_firing_t *f,
                            int64_t now) {
        bson_t update = BSON_INITIALIZER, set, inc;
        char errstr[256];
        store_err_t err;

        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_INT64(&set, "period", f->period + 1);
        BSON_APPEND_DATE_TIME(&set, "fire_at", f->next_at);
        BSON_APPEND_INT64(&set, "last_period", f->period);
        BSON_APPEND_DATE_TIME(&set, "last_fired_at", now);
        lease_append_free(&set);
        bson_append_document_end(&update, &set);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$inc", &inc);
        BSON_APPEND_INT64(&inc, "fired", 1);
        bson_append_document_end(&update, &inc);
        err = lease_update(ts->store, ts->db, ts->coll, f->id, f->owner,
                           &update, errstr, sizeof(errstr));
        bson_destroy(&update);
        if (err && err != STORE_NOT_FOUND)
                /* The lease runs out; the refire has the same id. */
                store_failed(ts, "recording a firing", errstr);
}

/* Record one-shot timers fired: one update per claim they came from. */
static void record_timers(timer_service_t *ts, timer_firing_t **v, size_t n,
                          int64_t now) {
        const char **ids = xcalloc(n ? n : 1, sizeof(*ids));
        char owner[LEASE_OWNER_SIZE], errstr[256];

        for (size_t i = 0; i < n; i++) {
                bson_t update = BSON_INITIALIZER, set;
                size_t m = 0;
                if (!v[i])
                        continue;
                snprintf(owner, sizeof(owner), "%s", v[i]->owner);
                for (size_t j = i; j < n; j++)
                        if (v[j] && strcmp(v[j]->owner, owner) == 0) {
                                ids[m++] = v[j]->id;
                                v[j] = NULL; /* recorded (still owned by
                                              * the caller) */
                        }
                BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
                timer__append_ended(ts, &set, "fired", "fired_at", now);
                bson_append_document_end(&update, &set);
                if (lease_update_many(ts->store, ts->db, ts->coll, ids, m,
                                      owner, &update, NULL, errstr,
                                      sizeof(errstr)))
                        store_failed(ts, "recording firings", errstr);
                bson_destroy(&update);
        }
        free(ids);
}

/* Produce v (n firings), wait for the broker, record each; frees them. */
static void fire(timer_service_t *ts, timer_firing_t **v, size_t n) {
        cmdsend_batch_t *b = cmdsend_batch_new(n);
        timer_firing_t **done = xcalloc(n, sizeof(*done));
        size_t n_done = 0, n_failed = 0;
        uint64_t t0 = clock_mono_ms(), t1;
        int64_t now, wait = 0;
        char errstr[256];

        for (size_t i = 0; i < n; i++)
                cmdsend_batch_produce(b, i, ts->bus, ts->topic, &v[i]->msg);
        cmdsend_batch_wait(b);
        now = (int64_t)clock_wall_ms();
        t1 = clock_mono_ms();
        for (size_t i = 0; i < n; i++) {
                timer_firing_t *f = v[i];
                bus_err_t err = cmdsend_batch_result(b, i);
                if (err) {
                        bson_t update = BSON_INITIALIZER, set;
                        if (!n_failed++)
                                wait = backoff_delay_ms(TIMER_RETRY,
                                                        ts->produce_failures++);
                        log_warn("%s %s not fired: %s; again in %lld ms",
                                 f->schedule ? "schedule" : "timer", f->id,
                                 bus_strerror(err), (long long)wait);
                        /* Keep the lease a while longer. */
                        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
                        BSON_APPEND_DATE_TIME(&set, "lease_until", now + wait);
                        bson_append_document_end(&update, &set);
                        lease_update(ts->store, ts->db, ts->coll, f->id,
                                     f->owner, &update, errstr, sizeof(errstr));
                        bson_destroy(&update);
                        continue;
                }
                metrics_observe_us(ts->delay,
                                   (uint64_t)(now > f->due ? now - f->due : 0) *
                                           1000);
                metrics_add(ts->fired, 1);
                log_debug("%s %s fired (period %lld) as message %s",
                          f->schedule ? "schedule" : "timer", f->id,
                          (long long)f->period, f->msg.id);
                if (f->schedule)
                        record_schedule(ts, f, now);
                else
                        done[n_done++] = f;
        }
        record_timers(ts, done, n_done, now);
        if (n_failed)
                metrics_add(ts->failed, (int64_t)n_failed);
        else
                ts->produce_failures = 0;
        log_debug("timers: %zu produced in %llu ms, recorded in %llu ms", n,
                  (unsigned long long)(t1 - t0),
                  (unsigned long long)(clock_mono_ms() - t1));
        for (size_t i = 0; i < n; i++)
                firing_free(v[i]);
        free(done);
        cmdsend_batch_destroy(b);
}

/* Fire the held firings due by now; returns the earliest due of those
 * still held (INT64_MAX: none). */
static int64_t fire_due(timer_service_t *ts, int64_t now) {
        timer_firing_t **due =
                xcalloc(ts->n_held ? ts->n_held : 1, sizeof(*due));
        size_t n = 0, kept = 0;
        int64_t next = INT64_MAX;

        for (size_t i = 0; i < ts->n_held; i++) {
                timer_firing_t *f = ts->held[i];
                if (f->due <= now) {
                        due[n++] = f;
                        continue;
                }
                ts->held[kept++] = f;
                if (f->due < next)
                        next = f->due;
        }
        ts->n_held = kept;
        if (n)
                fire(ts, due, n);
        free(due);
        return next;
}

int64_t timer__round(void *arg, const atomic_bool *stop) {
        timer_service_t *ts = arg;
        bson_t filter = BSON_INITIALIZER;
        lease_query_t q = {.db = ts->db,
                           .coll = ts->coll,
                           .filter = &filter,
                           .time_field = "fire_at",
                           .lease_ms = ts->lease_ms,
                           .horizon_ms = ts->horizon_ms};
        char owner[LEASE_OWNER_SIZE], errstr[256];
        timer_claim_t cl = {.ts = ts, .owner = owner};
        int64_t next = INT64_MAX, held_next;
        int claimed_n = 0;
        store_err_t err;

        held_next = fire_due(ts, (int64_t)clock_wall_ms());
        if (!store_is_up(ts->store))
                return held_next;
        if (!ts->indexed)
                ts->indexed = timer__indexes_done(ts);
        BSON_APPEND_UTF8(&filter, "status", "armed");
        do {
                uint64_t t0 = clock_mono_ms();
                q.limit = ts->batch - (int)ts->n_held;
                if (q.limit <= 0)
                        break; /* full: a held one comes due first */
                cl.now = (int64_t)clock_wall_ms();
                err = lease_claim(ts->store, &q, cl.now, owner, claimed, &cl,
                                  &claimed_n, &next, errstr, sizeof(errstr));
                if (err) {
                        store_failed(ts, "claiming due timers", errstr);
                        next = INT64_MAX;
                        break;
                }
                ts->store_down_logged = false;
                if (claimed_n)
                        log_debug("timers: %d claimed in %llu ms", claimed_n,
                                  (unsigned long long)(clock_mono_ms() - t0));
                held_next = fire_due(ts, (int64_t)clock_wall_ms());
        } while (claimed_n == q.limit && !atomic_load(stop));
        bson_destroy(&filter);
        /* The next record beyond the horizon is claimed a horizon early. */
        if (next != INT64_MAX)
                next -= ts->horizon_ms;
        return held_next < next ? held_next : next;
}

void timer__release_held(timer_service_t *ts) {
        char errstr[256];

        for (size_t i = 0; i < ts->n_held; i++) {
                timer_firing_t *f = ts->held[i];
                bson_t update = BSON_INITIALIZER, set;
                BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
                lease_append_free(&set);
                bson_append_document_end(&update, &set);
                lease_update(ts->store, ts->db, ts->coll, f->id, f->owner,
                             &update, errstr, sizeof(errstr));
                bson_destroy(&update);
                firing_free(f);
        }
        ts->n_held = 0;
}
