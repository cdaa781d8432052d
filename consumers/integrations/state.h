/*
 * state.h - the OAuth state and PKCE.
 *
 * A state is "<nonce>.<mac>": 16 random bytes, and an HMAC-SHA256 (under a
 * key derived from the current token key) of the nonce with the provider,
 * tenant, user, shop and expiry it was made for. The record of the nonce
 * holds those (and the PKCE verifier, sealed) until it expires (TTL index).
 * The callback finds the record, checks the MAC against what it says
 * (constant time), then consumes it with one atomic update: a state works
 * once, for the provider, tenant and user it was made for, until it
 * expires; a forged or altered one is refused without touching anything.
 *
 * Thread-safety: any thread.
 */
#ifndef OMNIFY_IG_STATE_H
#define OMNIFY_IG_STATE_H

#include "ig.h"

#define IG_STATE_MAX 96
#define IG_PKCE_MAX 64
#define IG_COLL_STATES "oauth_states"

typedef struct ig_oauth_state {
        char tenant[128];
        char user[128];
        char shop[256];
        char verifier[IG_PKCE_MAX]; /* "" without PKCE */
} ig_oauth_state_t;

/* A new state for tenant and user at provider p (shop: Shopify's, else
 * NULL), with a PKCE verifier when pkce (its S256 challenge into
 * challenge). */
ig_err_t ig_state_new(ig_state_t *st, const char *tenant, const char *user,
                      ig_provider_t p, const char *shop, bool pkce,
                      char state[IG_STATE_MAX], char challenge[IG_PKCE_MAX],
                      int64_t *expires_at_ms);

/* Check and consume state for provider p: IG_OK and what it was made for;
 * IG_BAD_INPUT when it is malformed, forged, expired, used or for another
 * provider (out->... empty); store errors as such. */
ig_err_t ig_state_take(ig_state_t *st, ig_provider_t p, const char *state,
                       ig_oauth_state_t *out);

/* The PKCE S256 challenge of a verifier (base64url of its SHA-256). */
void ig_pkce_challenge(const char *verifier, char out[IG_PKCE_MAX]);

/* Wipe out's verifier. */
void ig_state_clear(ig_oauth_state_t *out);

#endif
