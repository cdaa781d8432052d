/*
 * connector.h - one provider behind one small interface.
 *
 * A connector (p_<name>.c) is a static const table of what its provider
 * needs: how to send a user to consent and exchange the code, how to
 * refresh and revoke, how to check an API key, how to read its answers
 * (errors, rate limits, in the provider's own shapes), its streams (each a
 * function that reads one page), and how to verify and read its webhooks.
 * Everything provider-agnostic (state, vault, refresh lock, pacing, the
 * sync engine, ids of events, replies) lives outside the connectors.
 *
 * A call sequence runs with a job (ig_job_t): the group, the provider's
 * settings, the connection (when there is one) and its decrypted
 * credentials. Connectors make calls with ig_http (http.c), which paces
 * them, makes them through the shared HTTP client, parses JSON and asks the
 * connector's classify what the answer means.
 *
 * Secrets (tokens, keys, client secrets) go only into headers and bodies of
 * calls, never into the error texts a job leaves (job->error ends up in the
 * store, replies, events and logs).
 */
#ifndef OMNIFY_IG_CONNECTOR_H
#define OMNIFY_IG_CONNECTOR_H

#include "ig.h"
#include "records.h"

typedef enum ig_auth {
        IG_AUTH_OAUTH,
        IG_AUTH_KEY,
        IG_AUTH_BOTH, /* OAuth or an API key (Klaviyo) */
} ig_auth_t;

/* A connection's credentials, decrypted. Strings owned (ig_creds_clear). */
typedef struct ig_creds {
        char *access_token;
        char *refresh_token;
        int64_t expires_at_ms; /* 0: does not expire (or unknown) */
        int64_t refresh_expires_at_ms;
        char *api_key;
        /* The refresh token a rotation replaced, kept for a grace period:
         * if the new one is refused (our write of it was lost), the old one
         * is tried once. */
        char *prev_refresh;
        int64_t rotated_at_ms;
} ig_creds_t;

void ig_creds_clear(ig_creds_t *c);
/* As JSON text (new string; ig_vault_free it) and back. */
char *ig_creds_dump(const ig_creds_t *c, size_t *len);
bool ig_creds_load(ig_creds_t *c, const char *json, size_t len);
/* Replace *slot with a copy of s (NULL clears), wiping the old value. */
void ig_creds_set(char **slot, const char *s);

/* An account a grant or key reaches. */
typedef struct ig_account {
        char *id;
        char *name;
        char *currency; /* may be NULL */
        json_t *extra;  /* the connector's public ids (hub id, location...);
                         * may be NULL */
} ig_account_t;

/* What an exchange or a key check gives. */
typedef struct ig_grant {
        ig_creds_t creds;
        ig_account_t *accounts;
        size_t n_accounts;
} ig_grant_t;

void ig_grant_add(ig_grant_t *g, const char *id, const char *name,
                  const char *currency, json_t *extra /* taken */);
void ig_grant_clear(ig_grant_t *g);

/* One call sequence against a provider. */
typedef struct ig_job {
        ig_state_t *st;
        const ig_connector_t *c;
        const ig_provider_settings_t *ps;
        /* The connection (all NULL while connecting). */
        const char *connection_id;
        const char *tenant;
        const char *account_id;
        const char *account_name;
        const char *shop; /* Shopify, TripleWhale: the shop's domain */
        const char *currency;
        json_t *extra; /* the connection's connector data; may be NULL */
        ig_creds_t *creds;
        /* What went wrong (no secrets): set by ig_http and connectors. */
        char error[256];
        /* IG_RATE_LIMITED: how long to wait before the next try. */
        int64_t wait_ms;
        /* The credentials changed (a refresh inside a call): store them. */
        bool creds_changed;
} ig_job_t;

/* ---------------------------------------------------------------------------
 * Calls (http.c)
 * ------------------------------------------------------------------------ */

typedef struct ig_req {
        const char *method; /* NULL: GET */
        const char *url;
        const char *route; /* how logs name the path (no ids, no secrets) */
        httpc_headers_t headers;
        slice_t body;
        /* Pacing: a key of the provider's limit ("stripe|acct_1"), its rate
         * (calls or cost points per second), its burst and this call's cost
         * (0: 1). "": not paced. */
        char pace_key[160];
        double rate, burst, cost;
        /* A second limit the call also counts against (HubSpot's search
         * calls count in its ten-second window too); "": none. */
        char pace_key2[160];
        double rate2, burst2;
        size_t max_bytes; /* 0: 4 MiB */
        int timeout_ms;   /* 0: 30 s */
        /* A call that must never be repeated (a code exchange, a refresh
         * of a rotating token): one try unless nothing was sent. */
        bool once;
} ig_req_t;

typedef struct ig_resp {
        long status;
        json_t *json; /* the body parsed when it is JSON; may be NULL */
        httpc_response_t raw;
} ig_resp_t;

void ig_resp_clear(ig_resp_t *r);

/*
 * Make the call. Waits for the pacer (at most a few seconds; beyond,
 * IG_RATE_LIMITED and job->wait_ms without calling), then asks the
 * connector's classify. IG_OK: *resp holds a 2xx answer (ig_resp_clear it in
 * any case). Other results leave job->error set. Frees req's headers.
 */
ig_err_t ig_http(ig_job_t *job, ig_req_t *req, ig_resp_t *resp);

/* ig_http, then the answer's JSON object into *out (a reference; NULL on
 * error): a 2xx that is not an object is IG_PROVIDER. */
ig_err_t ig_http_object(ig_job_t *job, ig_req_t *req, json_t **out);

/* The default reading of an answer: 2xx ok; 401 IG_AUTH; 429 rate limited
 * (Retry-After, else a minute); 408, 425 and 5xx transient; other 4xx
 * refused; unreachable transient. Connectors call it for what they do not
 * read themselves. */
ig_err_t ig_classify_default(ig_job_t *job, const ig_req_t *req,
                             ig_resp_t *resp);

/* Set job->error ("<provider>: <what>", printf). */
void ig_job_error(ig_job_t *job, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Bearer header helpers. */
void ig_req_bearer(ig_req_t *req, const char *token);
/* A form body "a=1&b=2" (values percent-encoded): a new string to free
 * with ig_vault_free (it may hold secrets). */
char *ig_form(size_t n, const char *const *names, const char *const *values);

/* ---------------------------------------------------------------------------
 * Streams
 * ------------------------------------------------------------------------ */

typedef struct ig_page {
        ig_job_t *job;
        ig_day_t since, until; /* the sync's window */
        const char *kind;      /* scheduled, manual, backfill */
        /* In: this page's cursor, {} on a stream's first page. The stream
         * updates it for the next page. */
        json_t *cursor;
        bool done;         /* out: no page after this one */
        ig_records_t *out; /* out: the records read */
} ig_page_t;

typedef struct ig_stream {
        const char *name; /* "orders": counts in sync events */
        ig_err_t (*fetch)(ig_page_t *pg);
} ig_stream_t;

/* ---------------------------------------------------------------------------
 * Webhooks
 * ------------------------------------------------------------------------ */

typedef enum ig_hook_action {
        IG_HOOK_RECORD, /* the payload is a whole record: publish it */
        IG_HOOK_SYNC,   /* it says something changed: sync soon */
        IG_HOOK_GONE,   /* the app was uninstalled: credentials are dead */
} ig_hook_action_t;

typedef struct ig_hook_item {
        char *event_id;   /* the provider's id (deduplication) */
        char *account_id; /* maps it to connections */
        ig_hook_action_t action;
        json_t *payload; /* IG_HOOK_RECORD: what record() reads */
} ig_hook_item_t;

typedef struct ig_hook {
        ig_state_t *st;
        const ig_provider_settings_t *ps;
        const msgpack_object *fields; /* the command: headers by name */
        slice_t body;                 /* the raw body, as signed */
        int64_t now_ms;
        /* Out. */
        ig_hook_item_t *items;
        size_t n_items;
        char error[160]; /* why it was refused (no secrets) */
} ig_hook_t;

void ig_hook_add(ig_hook_t *h, const char *event_id, const char *account_id,
                 ig_hook_action_t action, json_t *payload /* taken */);
void ig_hook_clear(ig_hook_t *h);
/* A header field of the command ("stripe_signature"), or SLICE_NULL. */
slice_t ig_hook_field(const ig_hook_t *h, const char *name);

/* ---------------------------------------------------------------------------
 * The connector
 * ------------------------------------------------------------------------ */

/* The query of the OAuth callback: every parameter given, by name. */
typedef struct ig_callback {
        const msgpack_object *fields;
} ig_callback_t;

/* A parameter of the callback (NUL-terminated copy in buf), or NULL. */
const char *ig_cb_get(const ig_callback_t *cb, const char *name, char *buf,
                      size_t size);

struct ig_connector {
        ig_provider_t id;
        ig_auth_t auth;
        bool pkce; /* S256 */
        bool webhooks;
        int64_t refresh_margin_s; /* 0: the setting */

        /* The authorize URL (new string). shop: Shopify's, else NULL;
         * challenge: PKCE's, else NULL. */
        char *(*authorize_url)(ig_job_t *job, const char *redirect_uri,
                               const char *state, const char *challenge,
                               const char *shop);
        /* Check the callback's own signature (Shopify), exchange its code
         * and list the accounts the grant reaches. */
        ig_err_t (*exchange)(ig_job_t *job, const ig_callback_t *cb,
                             const char *redirect_uri, const char *verifier,
                             const char *shop, ig_grant_t *out);
        /* Renew job->creds (access token; a rotating refresh token too).
         * NULL: nothing to renew. */
        ig_err_t (*refresh)(ig_job_t *job);
        /* Revoke our grant. NULL: the provider offers no revocation. */
        ig_err_t (*revoke)(ig_job_t *job);
        /* API keys: one real call; the accounts the key reaches. */
        ig_err_t (*check_key)(ig_job_t *job, const char *key, const char *shop,
                              ig_grant_t *out);
        /* What an answer means (NULL: ig_classify_default). */
        ig_err_t (*classify)(ig_job_t *job, const ig_req_t *req,
                             ig_resp_t *resp);

        const ig_stream_t *streams;
        size_t n_streams;

        /* Verify a webhook (before parsing anything) and read its items.
         * IG_AUTH: the signature or timestamp is wrong. NULL: none. */
        ig_err_t (*hook_verify)(ig_hook_t *h);
        /* Records of an IG_HOOK_RECORD item for one connection. */
        void (*hook_record)(ig_job_t *job, const ig_hook_item_t *item,
                            ig_records_t *out);
};

/* The connector of a provider. */
const ig_connector_t *ig_connector(ig_provider_t p);

extern const ig_connector_t ig_shopify, ig_stripe, ig_hubspot, ig_klaviyo,
        ig_google_ads, ig_youtube, ig_meta_ads, ig_linkedin_ads, ig_tiktok_ads,
        ig_triplewhale, ig_gohighlevel;

#endif
