/*
 * pacer.h - calls to providers paced per limit key, so that their rate
 * limiters never have to say no.
 *
 * Provider limits are per account (a Shopify shop's cost bucket, a Google
 * Ads customer, a Meta ad account's hourly calls, a Stripe account, a
 * HubSpot portal and app), while the shared HTTP client's limits are per
 * host (every Google customer shares one host). So each connector names
 * the limit a call counts against (a key such as "hubspot|4242|1234") with
 * the provider's documented rate and burst, and the pacer spaces calls as a
 * token bucket (a generic cell rate algorithm: each key keeps the time its
 * bucket would be full again). What a provider says in its answers lowers
 * the budget further: a Retry-After or reset blocks a key until then, a
 * low remaining count stops it until its window resets, Shopify's
 * throttleStatus sets the bucket's level.
 *
 * Limits are per process: one connection's pages run in one process at a
 * time (its sync's commands share a Kafka key), which is what makes a
 * per-account bucket hold.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef OMNIFY_IG_PACER_H
#define OMNIFY_IG_PACER_H

#include <stdint.h>

#include "ig.h"

/* pct scales every rate (1..100). */
ig_pacer_t *ig_pacer_new(int pct);
void ig_pacer_destroy(ig_pacer_t *p);

/*
 * Reserve cost units under key (rate units/s, burst units): 0 when the call
 * may go now, else how many ms until it may, reserved (the caller waits
 * that long, then goes). When that is more than max_wait_ms nothing is
 * reserved and the wait is returned as is (the caller comes back later).
 */
int64_t ig_pacer_take(ig_pacer_t *p, const char *key, double rate, double burst,
                      double cost, int64_t max_wait_ms);

/* No call under key before until_ms (a Retry-After, a window's reset). */
void ig_pacer_block(ig_pacer_t *p, const char *key, int64_t until_ms);

/* The provider says the bucket of key holds `available` units now, of
 * burst, restored at rate (Shopify's throttleStatus, after it refunded
 * what a query did not use): the level becomes that, and later calls pace
 * by this rate and burst where they are stricter than the caller's. */
void ig_pacer_level(ig_pacer_t *p, const char *key, double rate, double burst,
                    double available);

/* The provider says `remaining` calls are left under key until reset_at_ms:
 * at or under `reserve` left, the key waits for the reset. */
void ig_pacer_budget(ig_pacer_t *p, const char *key, int64_t remaining,
                     int64_t reserve, int64_t reset_at_ms);

#endif
