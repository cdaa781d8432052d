/*
 * backoff.h - the one retry-with-backoff helper.
 *
 * Every loop that retries something (a store write while the store is away,
 * an outbound call that answered 503, a consumer that could not be created)
 * waits with backoff_delay_ms between tries and sleeps with backoff_sleep,
 * which wakes early when the caller is asked to stop. The delay doubles from
 * base_ms up to cap_ms, and the wait is drawn from [delay/2, delay] ("equal
 * jitter") so that many retrying callers do not move in step.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef OMNIFY_BACKOFF_H
#define OMNIFY_BACKOFF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct backoff_policy {
        int64_t base_ms; /* the delay before the second try */
        int64_t cap_ms;  /* the delay never grows beyond this */
} backoff_policy_t;

/* What most loops use: 100 ms doubling to 2 s. */
#define BACKOFF_DEFAULT ((backoff_policy_t){100, 2000})

/* The wait before try number attempt + 1 (attempt counts from 0), with
 * jitter. Never negative; never more than cap_ms. */
int64_t backoff_delay_ms(backoff_policy_t p, int attempt);

/* Sleep ms, waking early once *stop is true (stop may be NULL). Returns true
 * when stopped. */
bool backoff_sleep(const atomic_bool *stop, int64_t ms);

/* backoff_sleep(stop, backoff_delay_ms(p, attempt)). */
bool backoff_wait(const atomic_bool *stop, backoff_policy_t p, int attempt);

#endif
