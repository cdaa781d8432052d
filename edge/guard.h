/*
 * guard.h - the edge's rate limits.
 *
 * Rate limits are token buckets per key (bucket name plus client address, or
 * plus account), kept by each edge replica: with N replicas behind a load
 * balancer a client gets at most N times the rate, which is the usual
 * trade for needing no shared store on the request path.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef OMNIFY_GUARD_H
#define OMNIFY_GUARD_H

#include <stdbool.h>
#include <stdint.h>

#include "slice.h"

typedef struct guard guard_t;

guard_t *guard_new(int ip_per_min, int account_per_min);
void guard_destroy(guard_t *g);

/*
 * Take one token from bucket for the client address and, when account is
 * not empty, for the account. Returns 0 when allowed, else the seconds to
 * wait (for Retry-After).
 */
int guard_rate(guard_t *g, const char *bucket, const char *ip, slice_t account);

#endif
