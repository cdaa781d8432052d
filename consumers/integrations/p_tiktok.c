/*
 * p_tiktok.c - TikTok API for Business (v1.3).
 *
 * Auth: the portal's auth_code is exchanged by a JSON POST
 * {app_id, secret, auth_code} for a long-lived access token (no expiry and
 * no refresh token by default; when the app gets one, it is used);
 * header Access-Token. Revocation: oauth2/revoke_token.
 *
 * Errors arrive as HTTP 200 with a code in the body: 0 ok, 40100 too many
 * requests, 40102 expired, 40104 empty and 40105 invalid or revoked token,
 * 40001/40002 refused, 50000 a system error that may pass.
 *
 * Accounts: the token answer's advertiser_ids, named by advertiser/info.
 *
 * Data: campaigns (their names and objectives, noted for the metrics:
 * reports give campaign ids only), then report/integrated/get (BASIC,
 * AUCTION_CAMPAIGN, dimensions campaign_id and stat_time_day) over 7-day
 * chunks (at most 30 days with stat_time_day), page/page_size 1000.
 *
 * Limits: 10 requests a second per token (sliding second), paced at 6/s
 * with a burst of 3 (at most 9 in any second). No webhooks.
 */
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

#define TIKTOK_API "/open_api/v1.3"
#define TIKTOK_CHUNK_DAYS 7
#define TIKTOK_PAGE 1000

static char *tiktok_authorize_url(ig_job_t *job, const char *redirect_uri,
                                  const char *state, const char *challenge,
                                  const char *shop) {
        const char *names[] = {"app_id", "redirect_uri", "state"};
        const char *values[] = {job->ps->client_id, redirect_uri, state};
        (void)challenge;
        (void)shop;
        return ig_oauth_url(job->ps->auth_url, "/portal/auth", 3, names,
                            values);
}

/* The pacing key of a token: a hash of it, never the token. */
static void tiktok_pace(const ig_job_t *job, ig_req_t *req) {
        unsigned char d[SHA256_DIGEST_LENGTH];
        char hex[2 * SHA256_DIGEST_LENGTH + 1];
        const char *t = job->creds ? job->creds->access_token : NULL;
        if (!t)
                return;
        SHA256((const unsigned char *)t, strlen(t), d);
        ig_hex(d, 8, hex);
        snprintf(req->pace_key, sizeof(req->pace_key), "tiktok|%s", hex);
        req->rate = 6;
        req->burst = 3;
}

static ig_err_t tiktok_classify(ig_job_t *job, const ig_req_t *req,
                                ig_resp_t *resp) {
        int64_t code;
        if (resp->status != 200 || !json_is_object(resp->json))
                return ig_classify_default(job, req, resp);
        code = ig_json_int(resp->json, "code", -1);
        switch (code) {
        case 0:
                return IG_OK;
        case 40100:
                job->wait_ms = 1000;
                ig_job_error(job, "too many requests (40100)");
                return IG_RATE_LIMITED;
        case 40102:
        case 40104:
        case 40105:
                ig_job_error(job, "token refused (%lld)", (long long)code);
                return IG_AUTH;
        case 50000:
                ig_job_error(job, "system error (50000)");
                return IG_TRANSIENT;
        default:
                ig_job_error(job, "refused (%lld)", (long long)code);
                return IG_REFUSED;
        }
}

/* GET path?query with the token; *data the answer's data. */
static ig_err_t tiktok_get(ig_job_t *job, const char *path_query,
                           const char *route, json_t **data) {
        char url[2048];
        ig_req_t req = {0};
        json_t *ans = NULL;
        ig_err_t err;
        *data = NULL;
        snprintf(url, sizeof(url), "%s" TIKTOK_API "%s", job->ps->api_url,
                 path_query);
        httpc_headers_add(&req.headers, "Access-Token",
                          job->creds->access_token ? job->creds->access_token
                                                   : "");
        req.url = url;
        req.route = route;
        tiktok_pace(job, &req);
        if ((err = ig_http_object(job, &req, &ans)))
                return err;
        *data = json_incref(json_object_get(ans, "data"));
        json_decref(ans);
        return IG_OK;
}

/* POST a JSON body with the app's credentials added; *data the data. */
static ig_err_t tiktok_post(ig_job_t *job, const char *path, json_t *body,
                            json_t **data) {
        char url[600], *text;
        ig_req_t req = {0};
        json_t *ans = NULL;
        ig_err_t err;
        *data = NULL;
        json_object_set_new(body, "app_id", json_string(job->ps->client_id));
        json_object_set_new(body, "secret",
                            json_string(job->ps->client_secret));
        text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        snprintf(url, sizeof(url), "%s" TIKTOK_API "%s", job->ps->api_url,
                 path);
        httpc_headers_add(&req.headers, "Content-Type", "application/json");
        req.method = "POST";
        req.url = url;
        req.route = path;
        req.body = slice_of(text);
        req.once = true;
        err = ig_http_object(job, &req, &ans);
        ig_creds_set(&text, NULL);
        if (err)
                return err;
        *data = json_incref(json_object_get(ans, "data"));
        json_decref(ans);
        return IG_OK;
}

static void tiktok_creds(ig_creds_t *c, const json_t *d) {
        int64_t now = (int64_t)clock_wall_ms();
        int64_t ttl = ig_json_int(d, "access_token_expire_in", 0);
        ig_creds_set(&c->access_token, ig_json_str(d, "access_token"));
        c->expires_at_ms = ttl > 0 ? now + ttl * 1000 : 0;
        if (ig_json_str(d, "refresh_token"))
                ig_creds_set(&c->refresh_token,
                             ig_json_str(d, "refresh_token"));
}

static ig_err_t tiktok_exchange(ig_job_t *job, const ig_callback_t *cb,
                                const char *redirect_uri, const char *verifier,
                                const char *shop, ig_grant_t *out) {
        char code[1024], path[2048];
        ig_creds_t *saved = job->creds;
        json_t *body = json_object(), *d = NULL, *ids, *info = NULL, *a;
        char *ids_text, *enc;
        size_t i;
        ig_err_t err;
        (void)redirect_uri;
        (void)verifier;
        (void)shop;
        if (!ig_oauth_code(job, cb, "auth_code", code, sizeof(code))) {
                json_decref(body);
                return IG_AUTH;
        }
        json_object_set_new(body, "auth_code", json_string(code));
        if ((err = tiktok_post(job, "/oauth2/access_token/", body, &d)))
                return err == IG_REFUSED ? IG_AUTH : err;
        tiktok_creds(&out->creds, d);
        ids = json_object_get(d, "advertiser_ids");
        if (!out->creds.access_token || !json_is_array(ids)) {
                json_decref(d);
                ig_job_error(job, "no token or advertisers");
                return IG_PROVIDER;
        }
        ids_text = json_dumps(ids, JSON_COMPACT);
        enc = ig_urlencode(ids_text ? ids_text : "[]");
        snprintf(path, sizeof(path), "/advertiser/info/?advertiser_ids=%s",
                 enc);
        free(ids_text);
        free(enc);
        job->creds = &out->creds;
        err = tiktok_get(job, path, "/advertiser/info/", &info);
        job->creds = saved;
        json_decref(d);
        if (err)
                return err;
        json_array_foreach(json_object_get(info, "list"), i, a) {
                if (ig_json_str(a, "advertiser_id"))
                        ig_grant_add(out, ig_json_str(a, "advertiser_id"),
                                     ig_json_str(a, "name"),
                                     ig_json_str(a, "currency"), NULL);
        }
        json_decref(info);
        return IG_OK;
}

static ig_err_t tiktok_refresh(ig_job_t *job) {
        json_t *body, *d = NULL;
        ig_err_t err;
        if (!job->creds->refresh_token) {
                ig_job_error(job, "a long-lived token without a refresh "
                                  "token cannot be renewed");
                return IG_AUTH;
        }
        body = json_object();
        json_object_set_new(body, "refresh_token",
                            json_string(job->creds->refresh_token));
        if ((err = tiktok_post(job, "/oauth2/refresh_token/", body, &d)))
                return err == IG_REFUSED ? IG_AUTH : err;
        tiktok_creds(job->creds, d);
        json_decref(d);
        job->creds_changed = true;
        return IG_OK;
}

static ig_err_t tiktok_revoke(ig_job_t *job) {
        json_t *body = json_object(), *d = NULL;
        ig_err_t err;
        json_object_set_new(body, "access_token",
                            json_string(job->creds->access_token
                                                ? job->creds->access_token
                                                : ""));
        err = tiktok_post(job, "/oauth2/revoke_token/", body, &d);
        json_decref(d);
        return err;
}

/* ---------------------------------------------------------------------------
 * Campaigns and reports
 * ------------------------------------------------------------------------ */

static ig_err_t tiktok_campaigns(ig_page_t *pg) {
        ig_job_t *job = pg->job;
        int64_t page = ig_json_int(pg->cursor, "page", 1);
        char path[512];
        ig_aux_item_t items[TIKTOK_PAGE];
        json_t *d = NULL, *c;
        size_t i, n = 0;
        ig_err_t err;

        snprintf(path, sizeof(path),
                 "/campaign/get/?advertiser_id=%s&page=%lld&page_size=%d",
                 job->account_id, (long long)page, TIKTOK_PAGE);
        if ((err = tiktok_get(job, path, "/campaign/get/", &d)))
                return err;
        json_array_foreach(json_object_get(d, "list"), i, c) {
                const char *obj = ig_json_str(c, "objective_type");
                if (n == TIKTOK_PAGE || !ig_json_str(c, "campaign_id"))
                        continue;
                items[n].key = ig_json_str(c, "campaign_id");
                items[n].s = ig_json_str(c, "campaign_name");
                items[n].i = obj && strcmp(obj, "VIDEO_VIEWS") == 0;
                n++;
        }
        err = ig_aux_put(job->st, job->connection_id, "campaign", items, n);
        if (!err) {
                int64_t pages = ig_json_int(json_object_get(d, "page_info"),
                                            "total_page", 1);
                pg->done = page >= pages;
                json_object_set_new(pg->cursor, "page", json_integer(page + 1));
        }
        json_decref(d);
        return err;
}

static ig_err_t tiktok_report(ig_page_t *pg) {
        ig_job_t *job = pg->job;
        const char *start_s = ig_json_str(pg->cursor, "start");
        int64_t page = ig_json_int(pg->cursor, "page", 1), pages;
        const char *cur = job->currency ? job->currency : "USD";
        ig_day_t start = pg->since, end;
        char d1[11], d2[11], path[1500], *dims, *mets;
        const char *keys[TIKTOK_PAGE];
        bool found[TIKTOK_PAGE];
        int64_t video[TIKTOK_PAGE];
        char *names[TIKTOK_PAGE];
        json_t *d = NULL, *list, *r;
        size_t i, n;
        ig_err_t err;

        if (start_s)
                ig_day_parse(start_s, strlen(start_s), &start);
        end = start + TIKTOK_CHUNK_DAYS - 1 < pg->until
                      ? start + TIKTOK_CHUNK_DAYS - 1
                      : pg->until;
        ig_day_format(start, d1);
        ig_day_format(end, d2);
        dims = ig_urlencode("[\"campaign_id\",\"stat_time_day\"]");
        mets = ig_urlencode("[\"spend\",\"impressions\",\"clicks\","
                            "\"conversion\",\"total_purchase_value\","
                            "\"video_play_actions\"]");
        snprintf(path, sizeof(path),
                 "/report/integrated/get/?advertiser_id=%s&report_type=BASIC"
                 "&data_level=AUCTION_CAMPAIGN&dimensions=%s&metrics=%s"
                 "&start_date=%s&end_date=%s&page=%lld&page_size=%d",
                 job->account_id, dims, mets, d1, d2, (long long)page,
                 TIKTOK_PAGE);
        free(dims);
        free(mets);
        if ((err = tiktok_get(job, path, "/report/integrated/get/", &d)))
                return err;
        list = json_object_get(d, "list");
        n = json_array_size(list) < TIKTOK_PAGE ? json_array_size(list)
                                                : TIKTOK_PAGE;
        for (i = 0; i < n; i++) {
                const char *cid =
                        ig_json_str(ig_json_path(json_array_get(list, i),
                                                 "dimensions", NULL),
                                    "campaign_id");
                keys[i] = cid ? cid : "";
        }
        if ((err = ig_aux_get(job->st, job->connection_id, "campaign", keys, n,
                              found, video, names))) {
                json_decref(d);
                return err;
        }
        for (i = 0; i < n; i++) {
                const json_t *m;
                const char *day;
                ig_ad_row_t row;
                r = json_array_get(list, i);
                m = json_object_get(r, "metrics");
                day = ig_json_str(json_object_get(r, "dimensions"),
                                  "stat_time_day");
                memset(&row, 0, sizeof(row));
                row.campaign_id = keys[i];
                row.campaign_name = names[i] ? names[i] : "";
                if (!*keys[i] || !day ||
                    !ig_day_parse(day, strlen(day), &row.day))
                        continue;
                row.currency = cur;
                ig_money_parse(ig_json_str(m, "spend"), cur, &row.spend_minor);
                row.impressions = ig_json_int(m, "impressions", 0);
                row.clicks = ig_json_int(m, "clicks", 0);
                row.conversions = ig_json_num(m, "conversion", 0);
                ig_money_parse(ig_json_str(m, "total_purchase_value"), cur,
                               &row.conversion_value_minor);
                row.video_views =
                        found[i] && video[i]
                                ? ig_json_int(m, "video_play_actions", 0)
                                : -1;
                ig_rec_ad(pg->out, job, &row);
        }
        for (i = 0; i < n; i++)
                free(names[i]);
        pages = ig_json_int(json_object_get(d, "page_info"), "total_page", 1);
        if (page < pages) {
                json_object_set_new(pg->cursor, "start", json_string(d1));
                json_object_set_new(pg->cursor, "page", json_integer(page + 1));
        } else if (end < pg->until) {
                char d3[11];
                ig_day_format(end + 1, d3);
                json_object_set_new(pg->cursor, "start", json_string(d3));
                json_object_set_new(pg->cursor, "page", json_integer(1));
        } else {
                pg->done = true;
        }
        json_decref(d);
        return IG_OK;
}

static const ig_stream_t tiktok_streams[] = {
        {"campaigns", tiktok_campaigns},
        {"ad_metrics", tiktok_report},
};

const ig_connector_t ig_tiktok_ads = {
        .id = IG_TIKTOK_ADS,
        .auth = IG_AUTH_OAUTH,
        .authorize_url = tiktok_authorize_url,
        .exchange = tiktok_exchange,
        .refresh = tiktok_refresh,
        .revoke = tiktok_revoke,
        .classify = tiktok_classify,
        .streams = tiktok_streams,
        .n_streams = sizeof(tiktok_streams) / sizeof(tiktok_streams[0]),
};
