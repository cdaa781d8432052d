/*
 * timer_internal.h - what the files of the timers share (timer.c: the
 * service, setting and cancelling; timer_fire.c: the firing thread).
 */
#ifndef OMNIFY_TIMER_INTERNAL_H
#define OMNIFY_TIMER_INTERNAL_H

#include <stdatomic.h>

#include "lease.h"
#include "metrics.h"
#include "ticker.h"
#include "timer.h"

#define TIMER_NAME_MAX 64
#define TIMER_MIN_EVERY_MS 1000

typedef struct timer_firing timer_firing_t;

struct timer_service {
        const config_t *cfg;
        store_t *store;
        bus_t *bus;
        char group[TIMER_NAME_MAX];
        char db[TIMER_NAME_MAX];
        char coll[TIMER_NAME_MAX];
        char ns[3 * TIMER_NAME_MAX]; /* of derived message ids */
        char topic[256];
        int poll_ms, batch, keep_s, max_body;
        int64_t lease_ms, horizon_ms;
        ticker_t *ticker;
        /* The firing thread's own. */
        timer_firing_t **held; /* claimed, not yet due (batch at most) */
        size_t n_held;
        bool indexed;
        bool store_down_logged;
        int produce_failures;
        metrics_counter_t *fired, *failed;
        metrics_histogram_t *delay;
};

/* The $set fields of a record that is done (fired or cancelled): kept
 * keep_s, then dropped by the TTL index; its lease is free. */
void timer__append_ended(const timer_service_t *ts, bson_t *set,
                         const char *status, const char *at_field, int64_t now);

/* Create the indexes; true when done (or not worth trying again). */
bool timer__indexes_done(timer_service_t *ts);

/* The firing thread's round (a ticker_fn). */
int64_t timer__round(void *arg, const atomic_bool *stop);

/* After the thread stopped: free the records it held for the next firer. */
void timer__release_held(timer_service_t *ts);

#endif
