/*
 * oauth.h - the parts of OAuth 2.0 (RFC 6749) that providers share: the
 * authorize URL, the token endpoint's form post and its answer, refresh
 * with rotation. Connectors call these with their own URLs, parameter
 * names and client authentication.
 */
#ifndef OMNIFY_IG_OAUTH_H
#define OMNIFY_IG_OAUTH_H

#include "connector.h"

/* base + path + "?" + the n parameters (NULL values skipped),
 * percent-encoded: a new string. */
char *ig_oauth_url(const char *base, const char *path, size_t n,
                   const char *const *names, const char *const *values);

/* How the client authenticates at the token endpoint. */
typedef enum ig_client_auth {
        IG_CLIENT_FORM,  /* client_id and client_secret in the form */
        IG_CLIENT_BASIC, /* HTTP Basic (Klaviyo) */
} ig_client_auth_t;

/*
 * POST the form (n names and values, NULL values skipped) to url; *out the
 * JSON object answered (2xx). The call is made once (a code or a rotating
 * refresh token must not be sent twice). Refusals (400, 401 invalid_grant
 * and the like) are IG_AUTH with the provider's error code in job->error.
 */
ig_err_t ig_oauth_post(ig_job_t *job, const char *url, const char *route,
                       ig_client_auth_t how, size_t n, const char *const *names,
                       const char *const *values, json_t **out);

/* The credentials in a token answer: access_token, refresh_token (kept
 * when absent), expires_in / refresh_token_expires_in (or the given
 * names), from now. */
void ig_oauth_creds(ig_creds_t *c, const json_t *tok, const char *expires_in,
                    const char *refresh_expires_in);

/*
 * The usual refresh: grant_type=refresh_token at url; a new refresh token
 * replaces the old (kept as prev_refresh with its time, for the grace).
 */
ig_err_t ig_oauth_refresh(ig_job_t *job, const char *url, const char *route,
                          ig_client_auth_t how);

/* The usual code exchange: grant_type=authorization_code with code,
 * redirect_uri and (when given) the PKCE verifier; the credentials into
 * out->creds. tok (may be NULL) receives the whole answer. */
ig_err_t ig_oauth_exchange(ig_job_t *job, const char *url, const char *route,
                           ig_client_auth_t how, const char *code,
                           const char *redirect_uri, const char *verifier,
                           ig_grant_t *out, json_t **tok);

/* The callback's code (or the named parameter), or NULL with job->error
 * set (the user refused: its error). */
const char *ig_oauth_code(ig_job_t *job, const ig_callback_t *cb,
                          const char *name, char *buf, size_t size);

#endif
