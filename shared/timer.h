/*
 * timer.h - durable timers and recurring schedules of a group.
 *
 * A handler sets a timer (fire once at or after a time) or a schedule (fire
 * every period) as part of its work; the record is in the group's database,
 * so it survives restarts. When it is due, a firing thread produces a
 * command of the type the setter named onto the group's own commands topic
 * (see cmdsend.h), which the group's handlers then take like any command.
 * At least once, never lost: a firing counts only once the broker
 * acknowledged it, and a command produced twice carries one message id (the
 * operation log answers the second).
 *
 * Collection <prefix><db>.<collection> ("timers" by default):
 *   {_id: the caller's id, kind: "timer" | "schedule",
 *    status: "armed" | "fired" | "cancelled", fire_at (date), gen (bumped
 *    at each replacement), def_hash, type, version, key, body (binary),
 *    tenant, user, roles, correlation_id, lease_until, lease_owner,
 *    created_at, updated_at, fired_at, expires_at;
 *    schedules also every_ms, anchor_ms, period (the number of the period
 *    fire_at starts), fired (count), last_period, last_fired_at}
 * Indexes (created by the firing thread once the store answers):
 *   <collection>_due (status, fire_at) and <collection>_expiry (TTL on
 *   expires_at: fired and cancelled records are kept keep_s, then dropped).
 *
 * Firing: each process of the group runs one firing thread per service. It
 * claims due records with a lease (lease.h), produces their commands, waits
 * for the broker, then marks timers fired and moves schedules to their next
 * period, each only while its lease is held. Message ids derive from (id,
 * gen, period) (timers: period 0), so a refire after a crash is the same
 * message, and a replaced timer (new gen) is a new one. A schedule fires
 * once per period across all processes; after downtime it fires once, for
 * the latest period begun, and then keeps its rhythm (anchor + k·every).
 * The command's created-at is the firing's due time (the period's start).
 *
 * Latency: the thread claims records horizon_ms before their time and
 * fires them at it (no store round trip then: only the broker's ack); it
 * sleeps until the earliest time it knows (read by each claim), a local
 * timer_set or schedule_set wakes it at once when it brings that time
 * forward, and it reads the store every poll_ms to learn of records other
 * processes set. Store cost when idle: one indexed find
 * (at most batch + 1 small documents) per poll_ms per process and service;
 * a firing costs three round trips per batch to claim, and one (timers,
 * per batch) or one per schedule to mark.
 *
 * From a handler: timer_spec_t s = {.id = "<message id>.remind", .fire_at_ms
 * = at, .type = "onboarding.reminder.due", .key = env->key, .body = body,
 * .caller = cmdsend_caller(rt_env(ctx))}; timer_set(st->timers, &s, ...):
 * TIMER_OK, TIMER_FIRED and (for a change) TIMER_FIRING answer the client;
 * TIMER_STORE_DOWN is HANDLER_TRANSIENT.
 *
 * Thread-safety: timer_set, timer_cancel, schedule_set and schedule_cancel
 * may be called from any thread (handlers call them). The service is
 * started and stopped by its owner.
 */
#ifndef OMNIFY_TIMER_H
#define OMNIFY_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "cmdsend.h"
#include "config.h"
#include "slice.h"
#include "store.h"

#define TIMER_ERRORS(X)                                                 \
        X(TIMER_OK, "ok")                                               \
        X(TIMER_FIRED, "the timer fired already; it was not replaced")  \
        X(TIMER_FIRING, "the timer is being fired; it was not changed") \
        X(TIMER_NOT_FOUND, "no armed timer or schedule has this id")    \
        X(TIMER_BAD_SPEC, "the timer or schedule is malformed")         \
        X(TIMER_STORE_DOWN, "the store is unreachable")                 \
        X(TIMER_STORE_ERROR, "store error")

typedef enum timer_err {
#define X(name, msg) name,
        TIMER_ERRORS(X)
#undef X
} timer_err_t;

const char *timer_strerror(timer_err_t err);

#define TIMER_ID_MAX 200 /* bytes of a timer or schedule id */

typedef struct timer_opts {
        const config_t *cfg; /* topic prefix, producer message timeout */
        store_t *store;
        bus_t *bus;             /* NULL: set and cancel only, no firing */
        const char *group;      /* commands go to <prefix><group>.commands */
        const char *db;         /* NULL: group */
        const char *collection; /* NULL: "timers" */
        int poll_ms;            /* 0: 1000; how soon others' timers are seen */
        int batch;              /* 0: 256 firings per claim */
        int lease_ms;           /* 0: the producer's message timeout + 30 s */
        int keep_s;             /* 0: 7 days: fired and cancelled records */
        int max_body_bytes;     /* 0: 64 KiB */
        /* Claim records due up to this far ahead and fire them at their
         * time, so the store's round trips are out of the latency path;
         * a record held so is TIMER_FIRING to set and cancel. 0: 250 ms;
         * -1: none (claim at the due time). */
        int horizon_ms;
} timer_opts_t;

/* A one-shot timer. */
typedef struct timer_spec {
        const char *id;      /* 1..TIMER_ID_MAX printable bytes */
        int64_t fire_at_ms;  /* wall clock; in the past: fires at once */
        const char *type;    /* the command it produces, a type of the group */
        int version;         /* its schema version; 0: 1 */
        slice_t key;         /* the command's key (order per key) */
        slice_t body;        /* the command's body: one msgpack map */
        cmd_caller_t caller; /* rt_env's tenant, user, roles, id */
} timer_spec_t;

/* A recurring schedule: fires at anchor + k·every for k = 0, 1, ... */
typedef struct schedule_spec {
        const char *id;
        int64_t every_ms; /* >= 1000 */
        /* The anchor (wall clock). In the future: the first firing. In the
         * past: the phase; the first firing is the first anchor + k·every
         * not before now. 0: now + every. */
        int64_t first_at_ms;
        const char *type;
        int version;
        slice_t key;
        slice_t body;
        cmd_caller_t caller;
} schedule_spec_t;

typedef struct timer_service timer_service_t;

/* A service over the group's timers; no thread yet. opts is copied. NULL and
 * errstr on bad options. */
timer_service_t *timer_service_new(const timer_opts_t *opts, char *errstr,
                                   size_t errlen);

/* Start the firing thread (needs opts->bus). 0, or -1 and errstr. */
int timer_service_start(timer_service_t *ts, char *errstr, size_t errlen);

/* Stop the firing thread: a batch in hand is produced and waited for (at
 * most the producer's message timeout) and recorded. Then free. NULL ok. */
void timer_service_destroy(timer_service_t *ts);

/* Create the indexes now (the thread does it too). */
timer_err_t timer_service_indexes(timer_service_t *ts, char *errstr,
                                  size_t errlen);

/*
 * Arm a timer. Idempotent by id: the same timer set again changes nothing
 * (a redelivered command); a different one replaces it (new gen: it fires
 * as a new message) unless it fired already (TIMER_FIRED) or a firer holds
 * it (TIMER_FIRING: within horizon_ms of its time, or being fired; it will
 * fire as it was): then nothing changed.
 */
timer_err_t timer_set(timer_service_t *ts, const timer_spec_t *spec,
                      char *errstr, size_t errlen);

/* Disarm an armed timer. TIMER_NOT_FOUND when none is armed (fired,
 * cancelled or unknown); TIMER_FIRING when a firer holds it (too late: it
 * fires). Never an OK for a timer that then fires. */
timer_err_t timer_cancel(timer_service_t *ts, const char *id, char *errstr,
                         size_t errlen);

/* Arm a schedule; the same schedule set again changes nothing, a different
 * one replaces it (from its own next period); TIMER_FIRING while a firer
 * holds it. */
timer_err_t schedule_set(timer_service_t *ts, const schedule_spec_t *spec,
                         char *errstr, size_t errlen);

/* Stop a schedule. TIMER_NOT_FOUND when none is armed under id;
 * TIMER_FIRING while a firer holds it (try again after its firing). */
timer_err_t schedule_cancel(timer_service_t *ts, const char *id, char *errstr,
                            size_t errlen);

#endif
