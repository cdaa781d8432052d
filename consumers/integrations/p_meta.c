/*
 * p_meta.c - Meta (Facebook) Ads through the Marketing API.
 *
 * Auth: the Login dialog's code is exchanged for a short-lived user token
 * (two hours), at once exchanged (grant_type=fb_exchange_token) for a
 * long-lived one (about 60 days). There is no refresh token: a long-lived
 * token still valid is exchanged again for a new one, which is what
 * "refresh" does here, a week before expiry. Revocation: DELETE
 * /me/permissions.
 *
 * Accounts: /me/adaccounts (act_<id>; account_id is the number).
 *
 * Data: /act_<id>/insights at level=campaign, time_increment=1 over the
 * window, 500 rows a page with cursor paging (paging.cursors.after while
 * paging.next is there). Spend and counts come as strings; conversions and
 * their value are the "purchase" action and action value; video views the
 * "video_view" play action (video campaigns only).
 *
 * Limits: Business Use Case limits, 600 calls an hour per ad account
 * (rolling), paced at 0.15/s with a burst of 50 (at most 590 an hour); the
 * X-Business-Use-Case-Usage header's call_count and
 * estimated_time_to_regain_access hold the account back when high; error
 * 17 (and 4, 32, 613, 80000-80014) is "rate limited". Error 190 is a dead
 * token.
 *
 * Webhooks: X-Hub-Signature-256 = "sha256=" hex HMAC-SHA256 of the raw body
 * under the app secret; ad_account changes bring the account's sync
 * forward (they carry no figures). No event id is sent: the id is a hash
 * of the entry.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "connector.h"
#include "log.h"
#include "msgid.h"
#include "oauth.h"
#include "pacer.h"

#define META_MARGIN_S (7 * 86400)

static char *meta_authorize_url(ig_job_t *job, const char *redirect_uri,
                                const char *state, const char *challenge,
                                const char *shop) {
        const char *names[] = {"client_id", "redirect_uri", "state", "scope",
                               "response_type"};
        const char *values[] = {job->ps->client_id, redirect_uri, state,
                                job->ps->scopes, "code"};
        char path[64];
        (void)challenge;
        (void)shop;
        snprintf(path, sizeof(path), "/%s/dialog/oauth", job->ps->api_version);
        return ig_oauth_url(job->ps->auth_url, path, 5, names, values);
}

static void meta_key(const ig_job_t *job, ig_req_t *req) {
        if (!job->account_id)
                return;
        snprintf(req->pace_key, sizeof(req->pace_key), "meta_ads|%s",
                 job->account_id);
        req->rate = 0.15;
        req->burst = 50;
}

static ig_err_t meta_classify(ig_job_t *job, const ig_req_t *req,
                              ig_resp_t *resp) {
        const json_t *e = json_object_get(resp->json, "error");
        slice_t buc =
                httpc_response_header(&resp->raw, "X-Business-Use-Case-Usage");
        int64_t code = ig_json_int(e, "code", 0), regain_min = 0, pct = 0;

        if (buc.ptr && buc.len < 8192) {
                json_error_t je;
                json_t *u = json_loadb(buc.ptr, buc.len, 0, &je), *list, *x;
                const char *k;
                size_t i;
                json_object_foreach(u, k, list) {
                        json_array_foreach(list, i, x) {
                                int64_t c = ig_json_int(x, "call_count", 0);
                                int64_t r = ig_json_int(
                                        x, "estimated_time_to_regain_access",
                                        0);
                                pct = c > pct ? c : pct;
                                regain_min = r > regain_min ? r : regain_min;
                        }
                }
                json_decref(u);
                /* Close to the account's hourly budget: hold it back. */
                if (req->pace_key[0] && (pct >= 95 || regain_min > 0))
                        ig_pacer_block(job->st->pacer, req->pace_key,
                                       (int64_t)clock_wall_ms() +
                                               (regain_min > 0
                                                        ? regain_min * 60000
                                                        : 60000));
        }
        if (!json_is_object(e))
                return ig_classify_default(job, req, resp);
        if (code == 190 || code == 102) {
                ig_job_error(job, "token refused (code %lld, subcode %lld)",
                             (long long)code,
                             (long long)ig_json_int(e, "error_subcode", 0));
                return IG_AUTH;
        }
        if (code == 17 || code == 4 || code == 32 || code == 613 ||
            (code >= 80000 && code <= 80014)) {
                job->wait_ms = regain_min > 0 ? regain_min * 60000 : 60000;
                ig_job_error(job, "rate limited (code %lld)", (long long)code);
                return IG_RATE_LIMITED;
        }
        if (code == 1 || code == 2 ||
            json_is_true(json_object_get(e, "is_transient"))) {
                ig_job_error(job, "failing for now (code %lld)",
                             (long long)code);
                return IG_TRANSIENT;
        }
        if (resp->status >= 500)
                return ig_classify_default(job, req, resp);
        ig_job_error(job, "refused (code %lld)", (long long)code);
        return IG_REFUSED;
}

/* GET api + path + query (a token in Bearer). */
static ig_err_t meta_get(ig_job_t *job, const char *path_query,
                         const char *route, json_t **out) {
        char url[2048];
        ig_req_t req = {0};
        snprintf(url, sizeof(url), "%s/%s%s", job->ps->api_url,
                 job->ps->api_version, path_query);
        ig_req_bearer(&req,
                      job->creds->access_token ? job->creds->access_token : "");
        req.url = url;
        req.route = route;
        meta_key(job, &req);
        return ig_http_object(job, &req, out);
}

/* The token endpoint (a GET with the app's secret in the query, as Meta
 * has it; logs show the route only). */
static ig_err_t meta_token(ig_job_t *job, const char *const *names,
                           const char *const *values, size_t n, json_t **tok) {
        const char *nm[8] = {"client_id", "client_secret"};
        const char *vl[8] = {job->ps->client_id, job->ps->client_secret};
        char path[64], *url;
        ig_req_t req = {0};
        ig_err_t err;
        for (size_t i = 0; i < n && i < 6; i++) {
                nm[2 + i] = names[i];
                vl[2 + i] = values[i];
        }
        snprintf(path, sizeof(path), "/%s/oauth/access_token",
                 job->ps->api_version);
        url = ig_oauth_url(job->ps->api_url, path, 2 + n, nm, vl);
        req.url = url;
        req.route = "/{version}/oauth/access_token";
        req.once = true;
        err = ig_http_object(job, &req, tok);
        ig_creds_set(&url, NULL);
        if (err == IG_REFUSED)
                err = IG_AUTH;
        return err;
}

static ig_err_t meta_long_lived(ig_job_t *job, const char *short_token,
                                ig_creds_t *out) {
        const char *names[] = {"grant_type", "fb_exchange_token"};
        const char *values[] = {"fb_exchange_token", short_token};
        json_t *tok = NULL;
        ig_err_t err = meta_token(job, names, values, 2, &tok);
        if (err)
                return err;
        if (!ig_json_str(tok, "access_token")) {
                json_decref(tok);
                ig_job_error(job, "the exchange answered no token");
                return IG_PROVIDER;
        }
        ig_oauth_creds(out, tok, NULL, NULL);
        json_decref(tok);
        return IG_OK;
}

static ig_err_t meta_exchange(ig_job_t *job, const ig_callback_t *cb,
                              const char *redirect_uri, const char *verifier,
                              const char *shop, ig_grant_t *out) {
        const char *names[] = {"redirect_uri", "code"};
        const char *values[2];
        char code[1024], path[128];
        ig_creds_t *saved = job->creds;
        json_t *tok = NULL, *list = NULL, *a;
        size_t i;
        ig_err_t err;
        (void)verifier;
        (void)shop;
        if (!ig_oauth_code(job, cb, "code", code, sizeof(code)))
                return IG_AUTH;
        values[0] = redirect_uri;
        values[1] = code;
        if ((err = meta_token(job, names, values, 2, &tok)))
                return err;
        err = ig_json_str(tok, "access_token")
                      ? meta_long_lived(job, ig_json_str(tok, "access_token"),
                                        &out->creds)
                      : IG_PROVIDER;
        json_decref(tok);
        if (err)
                return err;
        job->creds = &out->creds;
        snprintf(path, sizeof(path),
                 "/me/adaccounts?fields=account_id,name,currency&limit=100");
        err = meta_get(job, path, "/{version}/me/adaccounts", &list);
        job->creds = saved;
        if (err)
                return err;
        json_array_foreach(json_object_get(list, "data"), i, a) {
                if (ig_json_str(a, "account_id"))
                        ig_grant_add(out, ig_json_str(a, "account_id"),
                                     ig_json_str(a, "name"),
                                     ig_json_str(a, "currency"), NULL);
        }
        json_decref(list);
        return IG_OK;
}

static ig_err_t meta_refresh(ig_job_t *job) {
        ig_err_t err;
        if (!job->creds->access_token) {
                ig_job_error(job, "no token to exchange");
                return IG_AUTH;
        }
        err = meta_long_lived(job, job->creds->access_token, job->creds);
        if (!err)
                job->creds_changed = true;
        return err;
}

static ig_err_t meta_revoke(ig_job_t *job) {
        char url[600];
        ig_req_t req = {0};
        ig_resp_t resp;
        ig_err_t err;
        snprintf(url, sizeof(url), "%s/%s/me/permissions", job->ps->api_url,
                 job->ps->api_version);
        ig_req_bearer(&req,
                      job->creds->access_token ? job->creds->access_token : "");
        req.method = "DELETE";
        req.url = url;
        req.route = "/{version}/me/permissions";
        req.once = true;
        err = ig_http(job, &req, &resp);
        ig_resp_clear(&resp);
        return err;
}

/* ---------------------------------------------------------------------------
 * Insights
 * ------------------------------------------------------------------------ */

/* The value of the action of type (or of the pixel purchase) in a list of
 * {action_type, value}. */
static const char *meta_action(const json_t *list, const char *type) {
        json_t *a;
        size_t i;
        json_array_foreach(list, i, a) {
                const char *t = ig_json_str(a, "action_type");
                if (t && strcmp(t, type) == 0)
                        return ig_json_str(a, "value");
        }
        return NULL;
}

static void meta_row(ig_job_t *job, const json_t *r, ig_records_t *out) {
        const char *cur = ig_json_str(r, "account_currency");
        const char *day = ig_json_str(r, "date_start");
        const char *conv =
                meta_action(json_object_get(r, "actions"), "purchase");
        const char *value =
                meta_action(json_object_get(r, "action_values"), "purchase");
        const char *views = meta_action(
                json_object_get(r, "video_play_actions"), "video_view");
        ig_ad_row_t row;
        memset(&row, 0, sizeof(row));
        if (!cur)
                cur = job->currency ? job->currency : "USD";
        row.campaign_id = ig_json_str(r, "campaign_id");
        row.campaign_name = ig_json_str(r, "campaign_name")
                                    ? ig_json_str(r, "campaign_name")
                                    : "";
        if (!row.campaign_id || !day ||
            !ig_day_parse(day, strlen(day), &row.day))
                return;
        row.currency = cur;
        ig_money_parse(ig_json_str(r, "spend"), cur, &row.spend_minor);
        row.impressions = ig_json_int(r, "impressions", 0);
        row.clicks = ig_json_int(r, "clicks", 0);
        row.conversions = conv ? strtod(conv, NULL) : 0;
        if (value)
                ig_money_parse(value, cur, &row.conversion_value_minor);
        row.video_views = views ? strtoll(views, NULL, 10) : -1;
        ig_rec_ad(out, job, &row);
}

static ig_err_t meta_insights(ig_page_t *pg) {
        ig_job_t *job = pg->job;
        const char *after = ig_json_str(pg->cursor, "after");
        char d1[11], d2[11], path[1200], range[64], *range_enc, *after_enc;
        json_t *ans = NULL, *r;
        size_t i;
        ig_err_t err;

        ig_day_format(pg->since, d1);
        ig_day_format(pg->until, d2);
        snprintf(range, sizeof(range), "{\"since\":\"%s\",\"until\":\"%s\"}",
                 d1, d2);
        range_enc = ig_urlencode(range);
        after_enc = after ? ig_urlencode(after) : NULL;
        snprintf(path, sizeof(path),
                 "/act_%s/insights?level=campaign&time_increment=1"
                 "&time_range=%s&limit=500&fields=campaign_id,campaign_name,"
                 "objective,account_currency,spend,impressions,clicks,actions,"
                 "action_values,video_play_actions,date_start%s%s",
                 job->account_id, range_enc, after_enc ? "&after=" : "",
                 after_enc ? after_enc : "");
        free(range_enc);
        free(after_enc);
        if ((err = meta_get(job, path, "/{version}/act_{id}/insights", &ans)))
                return err;
        json_array_foreach(json_object_get(ans, "data"), i, r)
                meta_row(job, r, pg->out);
        if (ig_json_str(json_object_get(ans, "paging"), "next") &&
            ig_json_str(ig_json_path(ans, "paging", "cursors", NULL), "after"))
                json_object_set_new(
                        pg->cursor, "after",
                        json_string(ig_json_str(
                                ig_json_path(ans, "paging", "cursors", NULL),
                                "after")));
        else
                pg->done = true;
        json_decref(ans);
        return IG_OK;
}

static const ig_stream_t meta_streams[] = {
        {"ad_metrics", meta_insights},
};

/* ---------------------------------------------------------------------------
 * Webhooks
 * ------------------------------------------------------------------------ */

static ig_err_t meta_hook_verify(ig_hook_t *h) {
        const char *secret = h->ps->client_secret;
        slice_t sig = ig_hook_field(h, "meta_signature");
        unsigned char mac[32], digest[32];
        unsigned int mlen = 0;
        char expect[72], hex[65];
        json_error_t je;
        json_t *body, *entry;
        size_t i;

        if (!secret[0]) {
                snprintf(h->error, sizeof(h->error),
                         "the Meta app secret is not configured");
                return IG_NOT_CONFIGURED;
        }
        HMAC(EVP_sha256(), secret, (int)strlen(secret),
             (const unsigned char *)h->body.ptr, h->body.len, mac, &mlen);
        memcpy(expect, "sha256=", 7);
        ig_hex(mac, 32, expect + 7);
        if (!sig.ptr || !ig_equal(sig.ptr, sig.len, expect, strlen(expect))) {
                snprintf(h->error, sizeof(h->error), "signature mismatch");
                return IG_AUTH;
        }
        body = json_loadb(h->body.ptr, h->body.len, 0, &je);
        if (!json_is_object(body)) {
                json_decref(body);
                snprintf(h->error, sizeof(h->error), "not JSON");
                return IG_BAD_INPUT;
        }
        json_array_foreach(json_object_get(body, "entry"), i, entry) {
                char *text = json_dumps(entry, JSON_COMPACT | JSON_SORT_KEYS);
                const char *id = ig_json_str(entry, "id");
                if (text && id) {
                        SHA256((const unsigned char *)text, strlen(text),
                               digest);
                        ig_hex(digest, 32, hex);
                        ig_hook_add(h, hex, id, IG_HOOK_SYNC, NULL);
                }
                free(text);
        }
        json_decref(body);
        return IG_OK;
}

const ig_connector_t ig_meta_ads = {
        .id = IG_META_ADS,
        .auth = IG_AUTH_OAUTH,
        .refresh_margin_s = META_MARGIN_S,
        .authorize_url = meta_authorize_url,
        .exchange = meta_exchange,
        .refresh = meta_refresh,
        .revoke = meta_revoke,
        .classify = meta_classify,
        .streams = meta_streams,
        .n_streams = 1,
        .hook_verify = meta_hook_verify,
};
