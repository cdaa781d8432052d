/*
 * token.h - access tokens: HS256 JWTs signed by auth, checked by the edge.
 *
 * Claims: iss, aud, sub (user id), tid (tenant id), roles (array of strings),
 * sid (session id), tv (accepted terms version), iat, nbf, exp, jti; header kid
 * names the signing key so keys can rotate. Verification decodes with the key
 * and then insists on HS256: with libjwt 1.10 a token with alg "none" decodes
 * without error when no key is given, and an RS256/ES256 token must never be
 * checked against our HMAC secret.
 */
#ifndef OMNIFY_TOKEN_H
#define OMNIFY_TOKEN_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "slice.h"

#define TOKEN_ERRORS(X)                                             \
        X(TOKEN_OK, "ok")                                           \
        X(TOKEN_MALFORMED, "the token is malformed")                \
        X(TOKEN_BAD_SIGNATURE, "the token signature is invalid")    \
        X(TOKEN_BAD_ALG, "the token algorithm is not allowed")      \
        X(TOKEN_EXPIRED, "the token has expired")                   \
        X(TOKEN_NOT_YET_VALID, "the token is not valid yet")        \
        X(TOKEN_BAD_ISSUER, "the token issuer is not accepted")     \
        X(TOKEN_BAD_AUDIENCE, "the token audience is not accepted") \
        X(TOKEN_BAD_KID, "the token key id is unknown")             \
        X(TOKEN_MISSING_CLAIM, "the token lacks a required claim")  \
        X(TOKEN_ERROR, "the token could not be made")

typedef enum token_err {
#define X(name, msg) name,
        TOKEN_ERRORS(X)
#undef X
} token_err_t;

const char *token_strerror(token_err_t err);

/* The key and the names a token must carry; points into config. */
typedef struct token_keys {
        const char *secret;
        const char *issuer;
        const char *audience;
        const char *kid;
} token_keys_t;

#define TOKEN_ID_SIZE 64
#define TOKEN_ROLES_SIZE 256

typedef struct token_claims {
        char sub[TOKEN_ID_SIZE];
        char tid[TOKEN_ID_SIZE];
        char roles[TOKEN_ROLES_SIZE]; /* comma-separated */
        char sid[TOKEN_ID_SIZE];      /* session id; "" when none */
        int64_t tv;                   /* terms version accepted; 0 none */
        int64_t exp;
} token_claims_t;

/* Largest token accepted, in bytes. */
#define TOKEN_MAX_LEN 4096

/*
 * Sign an access token for claims (sub, tid, roles) valid from now for
 * ttl_s seconds. Returns a new string (free()) or NULL.
 */
char *token_sign(const token_keys_t *keys, const token_claims_t *claims,
                 time_t now, int ttl_s);

/* Check a token (not NUL-terminated) and fill claims. Allows 30 s of clock
 * skew on nbf and exp. */
token_err_t token_verify(const token_keys_t *keys, slice_t token, time_t now,
                         token_claims_t *claims);

#endif
