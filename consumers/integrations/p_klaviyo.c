/*
 * p_klaviyo.c - Klaviyo.
 *
 * Auth: a private key (Authorization: Klaviyo-API-Key pk_...) checked with
 * GET /api/accounts, or OAuth with PKCE (S256, required) and HTTP Basic
 * client authentication at the token endpoint; an hour of access, a refresh
 * token (not rotated). Every call carries the revision header. Revocation
 * (OAuth): POST /oauth/revoke.
 *
 * Data (JSON:API, links.next cursors): metrics (their names), events in the
 * window (each noted per profile: which metric, when), then profiles
 * updated in the window, each published with the engagement its noted
 * events count (Opened Email, Clicked Email, Viewed Product; the last
 * event's time). Engagement before the window is not read: a profile
 * created in the window is counted whole, an older one from the window on.
 *
 * Limits: per endpoint tiers, burst a second and steady a minute (accounts
 * XS 1/15, metrics M 10/150, profiles L 75/700, events XL 350/3500), with
 * RateLimit-Limit/-Remaining/-Reset and 429 + Retry-After; paced per
 * account and endpoint within both windows.
 *
 * Webhooks: Klaviyo-Signature = hex HMAC-SHA256 of body + Klaviyo-Timestamp
 * under the webhook secret; the timestamp within the tolerance; events
 * bring the account's sync forward.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "aux.h"
#include "connector.h"
#include "log.h"
#include "msgid.h"
#include "oauth.h"
#include "pacer.h"

#define KLAVIYO_EVENTS "klaviyo_events"

static char *klaviyo_authorize_url(ig_job_t *job, const char *redirect_uri,
                                   const char *state, const char *challenge,
                                   const char *shop) {
        const char *names[] = {"response_type",
                               "client_id",
                               "redirect_uri",
                               "scope",
                               "state",
                               "code_challenge",
                               "code_challenge_method"};
        const char *values[] = {
                "code", job->ps->client_id, redirect_uri, job->ps->scopes,
                state,  challenge,          "S256"};
        (void)shop;
        return ig_oauth_url(job->ps->auth_url, "/oauth/authorize", 7, names,
                            values);
}

/* Pacing of one endpoint's tier: rate and burst within both windows. */
static void klaviyo_pace(const ig_job_t *job, ig_req_t *req,
                         const char *endpoint) {
        static const struct {
                const char *endpoint;
                double rate, burst;
        } tiers[] = {
                {"accounts", 0.2, 1}, /* XS: 1/s, 15/min */
                {"metrics", 2, 5},    /* M: 10/s, 150/min */
                {"profiles", 10, 10}, /* L: 75/s, 700/min */
                {"events", 50, 50},   /* XL: 350/s, 3500/min */
        };
        char who[24];
        /* Per account; before the account is known (connecting), per
         * credential (a hash of it, never the credential). */
        if (job->account_id) {
                snprintf(who, sizeof(who), "%.20s", job->account_id);
        } else {
                const char *cred = job->creds->api_key
                                           ? job->creds->api_key
                                           : job->creds->access_token;
                unsigned char d[SHA256_DIGEST_LENGTH];
                SHA256((const unsigned char *)(cred ? cred : ""),
                       cred ? strlen(cred) : 0, d);
                ig_hex(d, 8, who);
        }
        for (size_t i = 0; i < sizeof(tiers) / sizeof(tiers[0]); i++)
                if (strcmp(tiers[i].endpoint, endpoint) == 0) {
                        snprintf(req->pace_key, sizeof(req->pace_key),
                                 "klaviyo|%s|%s", who, endpoint);
                        req->rate = tiers[i].rate;
                        req->burst = tiers[i].burst;
                }
}

static ig_err_t klaviyo_classify(ig_job_t *job, const ig_req_t *req,
                                 ig_resp_t *resp) {
        slice_t rem = httpc_response_header(&resp->raw, "RateLimit-Remaining");
        slice_t reset = httpc_response_header(&resp->raw, "RateLimit-Reset");
        if (rem.ptr && reset.ptr && req->pace_key[0] &&
            strtoll(rem.ptr, NULL, 10) <= 1)
                ig_pacer_block(job->st->pacer, req->pace_key,
                               (int64_t)clock_wall_ms() +
                                       strtoll(reset.ptr, NULL, 10) * 1000 +
                                       1000);
        return ig_classify_default(job, req, resp);
}

static ig_err_t klaviyo_get(ig_job_t *job, const char *url, const char *route,
                            const char *endpoint, json_t **out) {
        ig_req_t req = {0};
        if (job->creds->api_key) {
                size_t n = strlen(job->creds->api_key) + 20;
                char *line = xmalloc(n);
                snprintf(line, n, "Klaviyo-API-Key %s", job->creds->api_key);
                httpc_headers_add(&req.headers, "Authorization", line);
                ig_creds_set(&line, NULL);
        } else {
                ig_req_bearer(&req, job->creds->access_token
                                            ? job->creds->access_token
                                            : "");
        }
        httpc_headers_add(&req.headers, "revision", job->ps->api_version);
        httpc_headers_add(&req.headers, "Accept", "application/vnd.api+json");
        req.url = url;
        req.route = route;
        klaviyo_pace(job, &req, endpoint);
        return ig_http_object(job, &req, out);
}

static ig_err_t klaviyo_account(ig_job_t *job, ig_grant_t *out) {
        char url[600];
        json_t *ans = NULL, *a;
        ig_err_t err;
        snprintf(url, sizeof(url), "%s/api/accounts", job->ps->api_url);
        if ((err = klaviyo_get(job, url, "/api/accounts", "accounts", &ans)))
                return err;
        a = json_array_get(json_object_get(ans, "data"), 0);
        if (!ig_json_str(a, "id")) {
                json_decref(ans);
                ig_job_error(job, "no account");
                return IG_PROVIDER;
        }
        ig_grant_add(out, ig_json_str(a, "id"),
                     ig_json_str(ig_json_path(a, "attributes",
                                              "contact_information", NULL),
                                 "organization_name"),
                     ig_json_str(json_object_get(a, "attributes"),
                                 "preferred_currency"),
                     NULL);
        json_decref(ans);
        return IG_OK;
}

static ig_err_t klaviyo_check_key(ig_job_t *job, const char *key,
                                  const char *shop, ig_grant_t *out) {
        ig_creds_t creds = {0};
        ig_err_t err;
        (void)shop;
        if (strncmp(key, "pk_", 3) != 0) {
                ig_job_error(job, "a private key starts pk_");
                return IG_REFUSED;
        }
        ig_creds_set(&creds.api_key, key);
        job->creds = &creds;
        err = klaviyo_account(job, out);
        job->creds = NULL;
        ig_creds_clear(&creds);
        return err;
}

static ig_err_t klaviyo_exchange(ig_job_t *job, const ig_callback_t *cb,
                                 const char *redirect_uri, const char *verifier,
                                 const char *shop, ig_grant_t *out) {
        char code[1024], url[600];
        ig_creds_t *saved = job->creds;
        ig_err_t err;
        (void)shop;
        if (!ig_oauth_code(job, cb, "code", code, sizeof(code)))
                return IG_AUTH;
        snprintf(url, sizeof(url), "%s/oauth/token", job->ps->api_url);
        if ((err = ig_oauth_exchange(job, url, "/oauth/token", IG_CLIENT_BASIC,
                                     code, redirect_uri, verifier, out, NULL)))
                return err;
        job->creds = &out->creds;
        err = klaviyo_account(job, out);
        job->creds = saved;
        return err;
}

static ig_err_t klaviyo_refresh(ig_job_t *job) {
        char url[600];
        if (job->creds->api_key) {
                ig_job_error(job, "the private key was refused");
                return IG_AUTH;
        }
        snprintf(url, sizeof(url), "%s/oauth/token", job->ps->api_url);
        return ig_oauth_refresh(job, url, "/oauth/token", IG_CLIENT_BASIC);
}

static ig_err_t klaviyo_revoke(ig_job_t *job) {
        const char *names[] = {"token", "token_type_hint"};
        const char *values[] = {job->creds->refresh_token, "refresh_token"};
        char url[600];
        json_t *out = NULL;
        ig_err_t err;
        if (job->creds->api_key || !job->creds->refresh_token)
                return IG_OK; /* a private key is revoked in Klaviyo itself */
        snprintf(url, sizeof(url), "%s/oauth/revoke", job->ps->api_url);
        err = ig_oauth_post(job, url, "/oauth/revoke", IG_CLIENT_BASIC, 2,
                            names, values, &out);
        json_decref(out);
        return err == IG_PROVIDER ? IG_OK : err; /* an empty 200 */
}

/* ---------------------------------------------------------------------------
 * Streams
 * ------------------------------------------------------------------------ */

/* The page's URL: the cursor's next link (the provider's own), or the
 * first one made here. The next link must stay on the API's host. */
static void klaviyo_url(ig_page_t *pg, const char *first, char *url,
                        size_t size) {
        const char *next = ig_json_str(pg->cursor, "next");
        const char *base = pg->job->ps->api_url;
        if (next && strncmp(next, base, strlen(base)) == 0)
                snprintf(url, size, "%s", next);
        else
                snprintf(url, size, "%s%s", base, first);
}

static void klaviyo_next(ig_page_t *pg, const json_t *ans) {
        const char *next = ig_json_str(json_object_get(ans, "links"), "next");
        if (next && *next)
                json_object_set_new(pg->cursor, "next", json_string(next));
        else
                pg->done = true;
}

static ig_err_t klaviyo_metrics(ig_page_t *pg) {
        ig_job_t *job = pg->job;
        ig_aux_item_t items[256];
        char url[2048];
        json_t *ans = NULL, *m;
        size_t i, n = 0;
        ig_err_t err;
        klaviyo_url(pg, "/api/metrics", url, sizeof(url));
        if ((err = klaviyo_get(job, url, "/api/metrics", "metrics", &ans)))
                return err;
        json_array_foreach(json_object_get(ans, "data"), i, m) {
                if (n < 256 && ig_json_str(m, "id")) {
                        items[n].key = ig_json_str(m, "id");
                        items[n].s = ig_json_str(
                                json_object_get(m, "attributes"), "name");
                        items[n].i = 0;
                        n++;
                }
        }
        err = ig_aux_put(job->st, job->connection_id, "metric", items, n);
        klaviyo_next(pg, ans);
        json_decref(ans);
        return err;
}

/* The engagement kind of a metric name: 'o'pened, 'c'licked, 'v'iewed or
 * another ('x'). */
static char metric_kind(const char *name) {
        if (!name)
                return 'x';
        if (strcmp(name, "Opened Email") == 0)
                return 'o';
        if (strcmp(name, "Clicked Email") == 0)
                return 'c';
        if (strcmp(name, "Viewed Product") == 0 ||
            strcmp(name, "Active on Site") == 0)
                return 'v';
        return 'x';
}

static ig_err_t klaviyo_events(ig_page_t *pg) {
        ig_job_t *job = pg->job;
        char url[2048], first[400], d1[11], d2[11], errstr[256];
        const char *keys[200];
        char *names[200];
        bool found[200];
        json_t *ans = NULL, *ev, *data;
        store_bulk_t *b;
        int64_t exp = (int64_t)clock_wall_ms() + IG_AUX_KEEP_MS;
        size_t i, n;
        ig_err_t err;
        store_err_t e;

        ig_day_format(pg->since, d1);
        ig_day_format(pg->until + 1, d2);
        snprintf(first, sizeof(first),
                 "/api/events?filter=greater-or-equal(datetime,%sT00:00:00Z),"
                 "less-than(datetime,%sT00:00:00Z)&sort=datetime",
                 d1, d2);
        klaviyo_url(pg, first, url, sizeof(url));
        if ((err = klaviyo_get(job, url, "/api/events", "events", &ans)))
                return err;
        data = json_object_get(ans, "data");
        n = json_array_size(data) < 200 ? json_array_size(data) : 200;
        for (i = 0; i < n; i++) {
                const char *mid = ig_json_str(
                        ig_json_path(json_array_get(data, i), "relationships",
                                     "metric", "data", NULL),
                        "id");
                keys[i] = mid ? mid : "";
        }
        if ((err = ig_aux_get(job->st, job->connection_id, "metric", keys, n,
                              found, NULL, names))) {
                json_decref(ans);
                return err;
        }
        b = store_bulk_new(job->st->store, IG_DB, KLAVIYO_EVENTS, false);
        for (i = 0; i < n; i++) {
                const char *pid, *eid;
                bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER,
                       set;
                char id[600], kind[2] = {metric_kind(names[i]), 0};
                ev = json_array_get(data, i);
                eid = ig_json_str(ev, "id");
                pid = ig_json_str(ig_json_path(ev, "relationships", "profile",
                                               "data", NULL),
                                  "id");
                free(names[i]);
                if (!eid || !pid)
                        continue;
                snprintf(id, sizeof(id), "%s|%s", job->connection_id, eid);
                BSON_APPEND_UTF8(&filter, "_id", id);
                BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
                BSON_APPEND_UTF8(&set, "conn", job->connection_id);
                BSON_APPEND_UTF8(&set, "profile", pid);
                BSON_APPEND_UTF8(&set, "kind", kind);
                BSON_APPEND_INT64(&set, "ts",
                                  ig_json_int(json_object_get(ev, "attributes"),
                                              "timestamp", 0));
                BSON_APPEND_DATE_TIME(&set, "expires_at", exp);
                bson_append_document_end(&update, &set);
                store_bulk_update(b, &filter, &update, STORE_UPSERT);
                bson_destroy(&filter);
                bson_destroy(&update);
        }
        e = store_bulk_run(b, NULL, errstr, sizeof(errstr));
        store_bulk_destroy(b);
        klaviyo_next(pg, ans);
        json_decref(ans);
        if (e) {
                log_warn("klaviyo events: %s", errstr);
                return store_err_transient(e) ? IG_STORE_DOWN : IG_STORE;
        }
        return IG_OK;
}

/* Engagement of up to 100 profiles from the noted events. */
typedef struct kl_eng {
        const char *const *ids;
        size_t n;
        int64_t opened[100], clicked[100], viewed[100], last[100];
} kl_eng_t;

static bool kl_eng_row(const bson_t *doc, void *arg) {
        kl_eng_t *e = arg;
        bson_iter_t it, id;
        const char *p = NULL, *k = NULL;
        if (bson_iter_init_find(&it, doc, "_id") &&
            BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &id)) {
                while (bson_iter_next(&id)) {
                        if (strcmp(bson_iter_key(&id), "p") == 0 &&
                            BSON_ITER_HOLDS_UTF8(&id))
                                p = bson_iter_utf8(&id, NULL);
                        if (strcmp(bson_iter_key(&id), "k") == 0 &&
                            BSON_ITER_HOLDS_UTF8(&id))
                                k = bson_iter_utf8(&id, NULL);
                }
        }
        for (size_t i = 0; p && k && i < e->n; i++) {
                int64_t cnt = ig_bson_int(doc, "n", 0);
                int64_t last = ig_bson_int(doc, "last", 0);
                if (strcmp(e->ids[i], p) != 0)
                        continue;
                if (*k == 'o')
                        e->opened[i] += cnt;
                else if (*k == 'c')
                        e->clicked[i] += cnt;
                else if (*k == 'v')
                        e->viewed[i] += cnt;
                if (last > e->last[i])
                        e->last[i] = last;
        }
        return true;
}

static ig_err_t klaviyo_engagement(ig_job_t *job, kl_eng_t *e) {
        bson_t *pipeline;
        char errstr[256];
        store_err_t err;
        bson_t match, in, arr, group, id, sum, max, stage;
        pipeline = bson_new();
        BSON_APPEND_DOCUMENT_BEGIN(pipeline, "0", &stage);
        BSON_APPEND_DOCUMENT_BEGIN(&stage, "$match", &match);
        BSON_APPEND_UTF8(&match, "conn", job->connection_id);
        BSON_APPEND_DOCUMENT_BEGIN(&match, "profile", &in);
        BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
        for (size_t i = 0; i < e->n; i++) {
                char idx[16];
                const char *ks;
                bson_uint32_to_string((uint32_t)i, &ks, idx, sizeof(idx));
                BSON_APPEND_UTF8(&arr, ks, e->ids[i]);
        }
        bson_append_array_end(&in, &arr);
        bson_append_document_end(&match, &in);
        bson_append_document_end(&stage, &match);
        bson_append_document_end(pipeline, &stage);
        BSON_APPEND_DOCUMENT_BEGIN(pipeline, "1", &stage);
        BSON_APPEND_DOCUMENT_BEGIN(&stage, "$group", &group);
        BSON_APPEND_DOCUMENT_BEGIN(&group, "_id", &id);
        BSON_APPEND_UTF8(&id, "p", "$profile");
        BSON_APPEND_UTF8(&id, "k", "$kind");
        bson_append_document_end(&group, &id);
        BSON_APPEND_DOCUMENT_BEGIN(&group, "n", &sum);
        BSON_APPEND_INT32(&sum, "$sum", 1);
        bson_append_document_end(&group, &sum);
        BSON_APPEND_DOCUMENT_BEGIN(&group, "last", &max);
        BSON_APPEND_UTF8(&max, "$max", "$ts");
        bson_append_document_end(&group, &max);
        bson_append_document_end(&stage, &group);
        bson_append_document_end(pipeline, &stage);
        err = store_aggregate(job->st->store, IG_DB, KLAVIYO_EVENTS, pipeline,
                              kl_eng_row, e, errstr, sizeof(errstr));
        bson_destroy(pipeline);
        if (err) {
                log_warn("klaviyo events: %s", errstr);
                return store_err_transient(err) ? IG_STORE_DOWN : IG_STORE;
        }
        return IG_OK;
}

static ig_err_t klaviyo_profiles(ig_page_t *pg) {
        ig_job_t *job = pg->job;
        char url[2048], first[400], d1[11];
        const char *ids[100];
        kl_eng_t *eng;
        json_t *ans = NULL, *data, *p;
        size_t i, n;
        ig_err_t err;

        ig_day_format(pg->since, d1);
        snprintf(first, sizeof(first),
                 "/api/profiles?page%%5Bsize%%5D=100"
                 "&filter=greater-or-equal(updated,%sT00:00:00Z)",
                 d1);
        klaviyo_url(pg, first, url, sizeof(url));
        if ((err = klaviyo_get(job, url, "/api/profiles", "profiles", &ans)))
                return err;
        data = json_object_get(ans, "data");
        n = json_array_size(data) < 100 ? json_array_size(data) : 100;
        eng = xcalloc(1, sizeof(*eng));
        for (i = 0; i < n; i++) {
                const char *id = ig_json_str(json_array_get(data, i), "id");
                ids[i] = id ? id : "";
        }
        eng->ids = ids;
        eng->n = n;
        if (n && (err = klaviyo_engagement(job, eng))) {
                free(eng);
                json_decref(ans);
                return err;
        }
        for (i = 0; i < n; i++) {
                const json_t *a;
                ig_contact_t c;
                p = json_array_get(data, i);
                a = json_object_get(p, "attributes");
                memset(&c, 0, sizeof(c));
                c.contact_id = ids[i];
                if (!*ids[i] ||
                    !ig_time_parse(ig_json_str(a, "created"), &c.created_ms))
                        continue;
                ig_time_parse(ig_json_str(a, "updated"), &c.updated_ms);
                c.stage = ig_json_str(json_object_get(a, "properties"),
                                      "lifecycle_stage");
                if (!c.stage)
                        c.stage = "subscriber";
                c.email = ig_json_str(a, "email");
                c.opened = eng->opened[i];
                c.clicked = eng->clicked[i];
                c.views = eng->viewed[i];
                c.last_engaged_ms = eng->last[i] * 1000;
                if (!c.last_engaged_ms)
                        ig_time_parse(ig_json_str(a, "last_event_date"),
                                      &c.last_engaged_ms);
                ig_rec_contact(pg->out, job, &c);
        }
        free(eng);
        klaviyo_next(pg, ans);
        json_decref(ans);
        return IG_OK;
}

static const ig_stream_t klaviyo_streams[] = {
        {"metrics", klaviyo_metrics},
        {"events", klaviyo_events},
        {"contacts", klaviyo_profiles},
};

/* ---------------------------------------------------------------------------
 * Webhooks
 * ------------------------------------------------------------------------ */

static ig_err_t klaviyo_hook_verify(ig_hook_t *h) {
        const char *secret = h->ps->webhook_secret;
        slice_t sig = ig_hook_field(h, "klaviyo_signature");
        slice_t ts = ig_hook_field(h, "klaviyo_timestamp");
        unsigned char mac[32];
        unsigned int mlen = 0;
        char expect[65], tsbuf[64];
        int64_t t = 0;
        unsigned char *msg;
        json_error_t je;
        json_t *body, *item;
        const char *account;
        size_t i;

        if (!secret[0]) {
                snprintf(h->error, sizeof(h->error),
                         "the Klaviyo webhook secret is not configured");
                return IG_NOT_CONFIGURED;
        }
        if (!sig.ptr || !ts.ptr || ts.len >= sizeof(tsbuf)) {
                snprintf(h->error, sizeof(h->error),
                         "no Klaviyo-Signature or timestamp");
                return IG_AUTH;
        }
        msg = xmalloc(h->body.len + ts.len + 1);
        if (h->body.len)
                memcpy(msg, h->body.ptr, h->body.len);
        memcpy(msg + h->body.len, ts.ptr, ts.len);
        HMAC(EVP_sha256(), secret, (int)strlen(secret), msg,
             h->body.len + ts.len, mac, &mlen);
        free(msg);
        ig_hex(mac, 32, expect);
        if (!ig_equal(sig.ptr, sig.len, expect, 64)) {
                snprintf(h->error, sizeof(h->error), "signature mismatch");
                return IG_AUTH;
        }
        ig_copy_slice(tsbuf, sizeof(tsbuf), ts);
        if (!ig_time_parse(tsbuf, &t) ||
            llabs((long long)(h->now_ms - t)) >
                    (long long)h->st->set->webhook_tolerance_s * 1000) {
                snprintf(h->error, sizeof(h->error),
                         "timestamp outside the tolerance");
                return IG_AUTH;
        }
        body = json_loadb(h->body.ptr, h->body.len, 0, &je);
        account = ig_json_str(json_object_get(body, "meta"),
                              "klaviyo_account_id");
        if (!json_is_object(body) || !account) {
                json_decref(body);
                snprintf(h->error, sizeof(h->error), "not a Klaviyo webhook");
                return IG_BAD_INPUT;
        }
        json_array_foreach(json_object_get(body, "data"), i, item) {
                const char *id = ig_json_str(item, "external_id");
                if (!id)
                        id = ig_json_str(json_object_get(item, "payload"),
                                         "id");
                if (id)
                        ig_hook_add(h, id, account, IG_HOOK_SYNC, NULL);
        }
        json_decref(body);
        return IG_OK;
}

const ig_connector_t ig_klaviyo = {
        .id = IG_KLAVIYO,
        .auth = IG_AUTH_BOTH,
        .pkce = true,
        .authorize_url = klaviyo_authorize_url,
        .exchange = klaviyo_exchange,
        .refresh = klaviyo_refresh,
        .revoke = klaviyo_revoke,
        .check_key = klaviyo_check_key,
        .classify = klaviyo_classify,
        .streams = klaviyo_streams,
        .n_streams = sizeof(klaviyo_streams) / sizeof(klaviyo_streams[0]),
        .hook_verify = klaviyo_hook_verify,
};
