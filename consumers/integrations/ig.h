/*
 * ig.h - what the files of the integrations group share.
 *
 * The group connects a tenant's accounts at eleven providers, keeps their
 * credentials encrypted, syncs their data into normalised events and takes
 * their webhooks. It is split by job:
 *
 *   integrations.c  the table, start-up and shutdown
 *   settings.c      the group's settings (URLs, client ids, keys, intervals)
 *   util.c          days, times, money, JSON and bson helpers
 *   vault.c         AES-256-GCM of credentials under key ids (rotation)
 *   state.c         OAuth state (HMAC-signed, stored, single use) and PKCE
 *   http.c          provider calls: pacing, classification, JSON
 *   pacer.c         per-account rate limits from each provider's rules
 *   conns.c         connections in the store, credentials, refresh lease
 *   connect.c       connect, API keys, callback (the OAuth dance)
 *   manage.c        list, get, disconnect, providers
 *   sync.c          the sync engine: windows, pages, schedules
 *   records.c       normalised events with derived ids
 *   webhooks.c      verify, map, deduplicate, publish
 *   p_<name>.c      one connector per provider (connector.h)
 *
 * Data (database <prefix>integrations):
 *   connections  {_id, tenant, provider, account_id, account_name, auth,
 *                 status, shop, currency, grant_id, creds: {kid, iv, ct}
 *                 (encrypted JSON of the tokens or key), token_expires_at,
 *                 lease_until, lease_owner (the refresh lock), extra (the
 *                 connector's public ids), synced_until, last_sync_*,
 *                 running_sync_id, last_error, created_by, connected_at,
 *                 updated_at}
 *   oauth_states {_id: the state's nonce, tenant, user, provider, shop,
 *                 verifier (encrypted), kid, used, expires_at (TTL)}
 *   syncs        {_id, tenant, connection_id, provider, account_id, kind,
 *                 status, since, until, stream, pages, records, streams,
 *                 started_at, updated_at, finished_at, waiting_until,
 *                 error, expires_at (TTL once finished)}
 *   webhook_seen {_id: provider|event id, msg_id, expires_at (TTL)}
 *   aux          {_id: connection|kind|key, v, expires_at (TTL)}: what a
 *                 connector keeps between pages (campaign names, customers'
 *                 first orders, engagement)
 *   timers       the durable timers and schedules (shared/timer.h)
 *
 * Threads: handlers run on the group's workers (concurrency, keyed by the
 * message key); everything here may be called from any of them.
 */
#ifndef OMNIFY_IG_H
#define OMNIFY_IG_H

#include <bson/bson.h>
#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "httpc.h"
#include "registry.h"
#include "runtime.h"
#include "slice.h"
#include "timer.h"

/* ---------------------------------------------------------------------------
 * Providers
 * ------------------------------------------------------------------------ */

typedef enum ig_provider {
        IG_TRIPLEWHALE,
        IG_HUBSPOT,
        IG_KLAVIYO,
        IG_GOOGLE_ADS,
        IG_META_ADS,
        IG_LINKEDIN_ADS,
        IG_TIKTOK_ADS,
        IG_YOUTUBE,
        IG_SHOPIFY,
        IG_STRIPE,
        IG_GOHIGHLEVEL,
        IG_N_PROVIDERS
} ig_provider_t;

/* The provider's name in routes and events ("google_ads"). */
const char *ig_provider_name(ig_provider_t p);
/* By name; -1 when unknown. */
int ig_provider_find(slice_t name);

/* ---------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------ */

#define IG_ERRORS(X)                                                        \
        X(IG_OK, "ok")                                                      \
        X(IG_AUTH, "the provider refused our credentials")                  \
        X(IG_RATE_LIMITED, "the provider's rate limit holds us back")       \
        X(IG_TRANSIENT, "the provider is unreachable or failing for now")   \
        X(IG_PROVIDER, "the provider answered something we cannot use")     \
        X(IG_REFUSED, "the provider refused the request")                   \
        X(IG_BAD_INPUT, "the request is not valid")                         \
        X(IG_NOT_CONFIGURED, "the provider is not configured here")         \
        X(IG_STORE_DOWN, "the store is unreachable")                        \
        X(IG_STORE, "store error")                                          \
        X(IG_CRYPTO, "the credentials cannot be read (key missing or bad)") \
        X(IG_GONE, "the connection is not active")

typedef enum ig_err {
#define X(name, msg) name,
        IG_ERRORS(X)
#undef X
} ig_err_t;

const char *ig_strerror(ig_err_t err);

/* ---------------------------------------------------------------------------
 * Settings (settings.c)
 * ------------------------------------------------------------------------ */

/* One provider's rows; unused ones stay "". */
typedef struct ig_provider_settings {
        char *auth_url;  /* where the browser goes (authorize page) */
        char *token_url; /* the token endpoint's host (Google) */
        char *api_url;   /* the API host; Shopify: a template with {shop} */
        char *client_id;
        char *client_secret;
        char *developer_token; /* Google Ads, YouTube */
        char *api_version;
        char *scopes;
        char *webhook_secret; /* Stripe, Klaviyo */
        char *webhook_key;    /* GoHighLevel: Ed25519 public key, base64 */
} ig_provider_settings_t;

typedef struct ig_settings {
        char *public_url;   /* the API's public base URL */
        char *frontend_url; /* where the callback sends the browser */
        char *token_keys;   /* "kid:base64(32 bytes),..."; first encrypts */
        int state_ttl_s;
        int sync_interval_s;
        int lookback_days;
        int initial_days;
        int backfill_days;
        int refresh_margin_s;
        int webhook_tolerance_s;
        int sync_stale_s;
        int host_concurrency;
        int pace_pct;
        ig_provider_settings_t p[IG_N_PROVIDERS];
} ig_settings_t;

extern const config_table_t ig_settings;

/* ---------------------------------------------------------------------------
 * The group's state
 * ------------------------------------------------------------------------ */

typedef struct ig_vault ig_vault_t;
typedef struct ig_pacer ig_pacer_t;
typedef struct ig_connector ig_connector_t;

typedef struct ig_state {
        runtime_t *rt;
        const config_t *cfg;
        const ig_settings_t *set;
        store_t *store;
        httpc_t *http;
        timer_service_t *timers;
        ig_vault_t *vault; /* NULL: no token keys configured */
        ig_pacer_t *pacer;
} ig_state_t;

#define IG_DB "integrations"
#define IG_ID_TEXT 37 /* a UUID, NUL */

/* ---------------------------------------------------------------------------
 * util.c: days, times, money, JSON, bson
 * ------------------------------------------------------------------------ */

/* Days since 1970-01-01 (negative before). */
typedef int32_t ig_day_t;

ig_day_t ig_day_from_civil(int y, int m, int d);
void ig_day_to_civil(ig_day_t day, int *y, int *m, int *d);
/* "YYYY-MM-DD" (11 bytes with the NUL). */
void ig_day_format(ig_day_t day, char out[11]);
/* Parse the first 10 characters as a real date; false otherwise. */
bool ig_day_parse(const char *s, size_t len, ig_day_t *out);
/* Today (UTC) and the day of a Unix ms time (UTC). */
ig_day_t ig_day_today(void);
ig_day_t ig_day_of_ms(int64_t ms);
int64_t ig_day_start_ms(ig_day_t day);

/* RFC 3339 UTC with milliseconds: "2025-01-02T03:04:05.678Z" (25 bytes). */
void ig_time_format(int64_t ms, char out[32]);
/* RFC 3339 / ISO 8601 ("...Z", "+00:00", "+0000", fractions, a space for
 * the T, a date alone) to Unix ms; false when it does not read. */
bool ig_time_parse(const char *s, int64_t *ms);

/* A decimal amount in major units ("12.34", "-5", "0.5") as integer minor
 * units of currency (ISO 4217 exponent: JPY 0, KWD 3, others 2), rounded
 * half away from zero; false when it does not read. */
bool ig_money_parse(const char *s, const char *currency, int64_t *minor);
/* A float amount in major units, the same way. */
int64_t ig_money_from_double(double v, const char *currency);
/* Micros of the currency (Google's cost_micros) as minor units. */
int64_t ig_money_from_micros(int64_t micros, const char *currency);
int ig_currency_exponent(const char *currency);

/* JSON: a string member or NULL; an integer member (also from a string of
 * digits, as Google and Meta send int64) or def; a number (int, real or a
 * decimal string) or def. */
const char *ig_json_str(const json_t *obj, const char *key);
int64_t ig_json_int(const json_t *obj, const char *key, int64_t def);
double ig_json_num(const json_t *obj, const char *key, double def);
/* obj[k1][k2]...: a path of object keys ending at a NULL. */
json_t *ig_json_path(const json_t *obj, ...);

/* bson: a string or NULL; an int or def; a date (ms) or 0; a bool. */
const char *ig_bson_str(const bson_t *doc, const char *key);
int64_t ig_bson_int(const bson_t *doc, const char *key, int64_t def);
int64_t ig_bson_date(const bson_t *doc, const char *key);
bool ig_bson_bool(const bson_t *doc, const char *key);

/* Random bytes as base64url without padding (out: 4 * n / 3 + 2). */
void ig_random_b64url(size_t n, char *out, size_t out_size);
/* A new UUIDv7 as text. */
void ig_uuid(char out[IG_ID_TEXT]);
/* base64url (no padding) / standard base64 of bytes into a new string. */
char *ig_b64url(const unsigned char *p, size_t n);
char *ig_b64(const unsigned char *p, size_t n);
/* Decode standard or url base64 (padding optional); NULL when malformed.
 * *n receives the length. Caller frees. */
unsigned char *ig_unb64(const char *s, size_t len, size_t *n);
/* Lowercase hex of bytes into out (2n + 1). */
void ig_hex(const unsigned char *p, size_t n, char *out);
/* Constant-time comparison of two byte strings of possibly different
 * length (the length is not secret). */
bool ig_equal(const void *a, size_t alen, const void *b, size_t blen);
/* Percent-encode s (RFC 3986 unreserved kept) into a new string. */
char *ig_urlencode(const char *s);

/* A growing string (printf appends). */
typedef struct ig_buf {
        char *p;
        size_t len, cap;
} ig_buf_t;

void ig_buf_printf(ig_buf_t *b, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* Append "name=<percent-encoded value>" with '?' or '&' before it. */
void ig_buf_param(ig_buf_t *b, const char *name, const char *value);
void ig_buf_free(ig_buf_t *b);

/* A Shopify shop as its domain: "acme" or "acme.myshopify.com" gives
 * "acme.myshopify.com"; false when it is not a shop name (lowercase
 * letters, digits, '-'), so it can never steer a URL elsewhere. */
bool ig_shop_domain(const char *in, char *out, size_t size);

/* The value of query parameter name in url, percent-decoded ('+' is a
 * space) into buf; NULL when absent. */
const char *ig_url_param(const char *url, const char *name, char *buf,
                         size_t size);

/* The domain of an email address ("" when there is none), lowercase. */
void ig_email_domain(const char *email, char *out, size_t size);

/* msgpack map entries: a string (NULL packs ""), an integer, a boolean,
 * a time (RFC 3339 of Unix ms), a day. */
void ig_kv_str(msgpack_packer *pk, const char *k, const char *v);
void ig_kv_int(msgpack_packer *pk, const char *k, int64_t v);
void ig_kv_bool(msgpack_packer *pk, const char *k, bool v);
void ig_kv_time(msgpack_packer *pk, const char *k, int64_t ms);
void ig_kv_day(msgpack_packer *pk, const char *k, ig_day_t day);

/* A msgpack map's string into a NUL-terminated buffer (cut to fit; "" when
 * absent); its integer or def; its boolean (false when absent). */
void ig_map_copy(const msgpack_object *map, const char *key, char *dst,
                 size_t size);
int64_t ig_map_int(const msgpack_object *map, const char *key, int64_t def);
bool ig_map_bool(const msgpack_object *map, const char *key);
/* A slice into a NUL-terminated buffer (cut to fit). */
void ig_copy_slice(char *dst, size_t size, slice_t s);

/* ---------------------------------------------------------------------------
 * Replies
 * ------------------------------------------------------------------------ */

/* A store error as the handler's result: transient is retried, the rest a
 * 500 problem. */
handler_result_t ig_store_failed(rt_ctx_t *ctx, store_err_t err,
                                 const char *errstr);
/* The caller's tenant (NUL-terminated, 128 bytes) when they hold at least
 * least; otherwise the reply is 401/403 and false. */
bool ig_caller_tenant(rt_ctx_t *ctx, schema_role_t least, char tenant[128]);

/* Reply {key: [...]} with the documents of coll that filter finds, newest
 * first by sort_field, at most limit, each packed by fn. */
typedef rt_pack_doc_fn ig_pack_fn;
handler_result_t ig_reply_list(rt_ctx_t *ctx, const char *key, const char *coll,
                               const bson_t *filter, const char *sort_field,
                               int64_t limit, ig_pack_fn fn, void *arg);

/* The problem for an ig error (502 provider, 404 not configured here...). */
handler_result_t ig_reply_error(rt_ctx_t *ctx, ig_err_t err,
                                const char *detail);

#endif
