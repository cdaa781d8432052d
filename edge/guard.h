/*
 * guard.h - the edge's protections that need memory: rate limits, revoked
 * sessions, and the current versions of the legal documents.
 *
 * Rate limits are token buckets per key (bucket name plus client address, or
 * plus account), kept by each edge replica: with N replicas behind a load
 * balancer a client gets at most N times the rate, which is the usual
 * trade for needing no shared store on the request path.
 *
 * Revoked sessions and document versions come from auth.events, which every
 * replica reads (edge.c's events thread), so a revocation takes effect at
 * every replica on its next request.
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

/* Session sid is revoked until until_ms (wall clock). */
void guard_revoke(guard_t *g, slice_t sid, uint64_t until_ms);
bool guard_is_revoked(guard_t *g, slice_t sid);

/* The current version of a legal document type ("terms"); -1 unknown. */
void guard_set_version(guard_t *g, slice_t type, int64_t version);
int64_t guard_version(guard_t *g, const char *type);

#endif
