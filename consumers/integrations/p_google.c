/*
 * p_google.c - Google Ads, and YouTube (video campaigns read through the
 * Google Ads API: the same code with advertising_channel_type = VIDEO).
 *
 * Auth: Google OAuth 2.0 with PKCE (S256), access_type=offline and
 * prompt=consent so a refresh token comes (it is not rotated); an access
 * token lives an hour. Every API call carries Bearer and the
 * developer-token header. Revocation: POST /revoke.
 *
 * Accounts: customers:listAccessibleCustomers, then per customer a GAQL
 * query of its name and currency.
 *
 * Data: googleAds:search with GAQL, campaign x day over 7-day chunks of the
 * window (at most ~1,400 rows: one page; the API's pages are a fixed
 * 10,000 rows with nextPageToken bound to the query, followed when there is
 * one). Money: cost_micros (int64 as a string) and conversions_value (a
 * float, major units).
 *
 * Limits: per customer (a bucket of 10 at 5 requests a second in the
 * stand-in; Google publishes no number) paced at 4/s with a burst of 5;
 * RESOURCE_EXHAUSTED (HTTP 429) carries the wait in
 * quotaErrorDetails.retryDelay ("30s"). No webhooks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "connector.h"
#include "log.h"
#include "msgid.h"
#include "oauth.h"

#define GOOGLE_CHUNK_DAYS 7

static bool is_youtube(const ig_job_t *job) {
        return job->c && job->c->id == IG_YOUTUBE;
}

static char *google_authorize_url(ig_job_t *job, const char *redirect_uri,
                                  const char *state, const char *challenge,
                                  const char *shop) {
        const char *names[] = {
                "client_id", "redirect_uri",   "response_type",
                "scope",     "access_type",    "prompt",
                "state",     "code_challenge", "code_challenge_method"};
        const char *values[] = {job->ps->client_id,
                                redirect_uri,
                                "code",
                                "https://www.googleapis.com/auth/adwords",
                                "offline",
                                "consent",
                                state,
                                challenge,
                                challenge ? "S256" : NULL};
        (void)shop;
        return ig_oauth_url(job->ps->auth_url, "/o/oauth2/v2/auth", 9, names,
                            values);
}

static const char *google_version(const ig_job_t *job) {
        /* YouTube's rows hold no version of their own: Google's. */
        return job->st->set->p[IG_GOOGLE_ADS].api_version;
}

static void google_headers(ig_job_t *job, ig_req_t *req) {
        ig_req_bearer(req,
                      job->creds->access_token ? job->creds->access_token : "");
        httpc_headers_add(&req->headers, "developer-token",
                          job->ps->developer_token);
        httpc_headers_add(&req->headers, "Content-Type", "application/json");
        httpc_headers_add(&req->headers, "Accept", "application/json");
}

/* "30s" -> 30000. */
static int64_t google_delay(const char *s) {
        char *end;
        double v;
        if (!s)
                return -1;
        v = strtod(s, &end);
        return end != s && v >= 0 ? (int64_t)(v * 1000) : -1;
}

static ig_err_t google_classify(ig_job_t *job, const ig_req_t *req,
                                ig_resp_t *resp) {
        const json_t *err = json_object_get(resp->json, "error");
        if (resp->status == 429) {
                json_t *d, *e;
                size_t i, k;
                int64_t wait = -1;
                json_array_foreach(json_object_get(err, "details"), i, d) {
                        json_array_foreach(json_object_get(d, "errors"), k, e) {
                                int64_t w = google_delay(ig_json_str(
                                        ig_json_path(e, "details",
                                                     "quotaErrorDetails", NULL),
                                        "retryDelay"));
                                if (w > wait)
                                        wait = w;
                        }
                }
                job->wait_ms = wait >= 0 ? wait : 30000;
                ig_job_error(job, "quota exhausted (RESOURCE_EXHAUSTED)");
                return IG_RATE_LIMITED;
        }
        if (resp->status == 401) {
                ig_job_error(job, "credentials refused (%s)",
                             ig_json_str(err, "status")
                                     ? ig_json_str(err, "status")
                                     : "HTTP 401");
                return IG_AUTH;
        }
        if (resp->status == 403) {
                ig_job_error(job, "permission denied (HTTP 403)");
                return IG_REFUSED;
        }
        return ig_classify_default(job, req, resp);
}

/* One search page of GAQL query on customer; *out the answer. */
static ig_err_t google_search(ig_job_t *job, const char *customer,
                              const char *query, const char *page_token,
                              json_t **out) {
        char url[700];
        json_t *body = json_object();
        ig_req_t req = {0};
        char *text;
        ig_err_t err;

        snprintf(url, sizeof(url), "%s/%s/customers/%s/googleAds:search",
                 job->ps->api_url, google_version(job), customer);
        json_object_set_new(body, "query", json_string(query));
        if (page_token)
                json_object_set_new(body, "pageToken", json_string(page_token));
        text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        google_headers(job, &req);
        req.method = "POST";
        req.url = url;
        req.route = "/{version}/customers/{id}/googleAds:search";
        req.body = slice_of(text);
        req.max_bytes = 64u * 1024 * 1024; /* a 10,000-row page */
        snprintf(req.pace_key, sizeof(req.pace_key), "%s|%s",
                 ig_provider_name(job->c->id), customer);
        req.rate = 4;
        req.burst = 5;
        err = ig_http_object(job, &req, out);
        free(text);
        return err;
}

/* ---------------------------------------------------------------------------
 * OAuth
 * ------------------------------------------------------------------------ */

static ig_err_t google_accounts(ig_job_t *job, ig_grant_t *out) {
        char url[600];
        ig_req_t req = {0};
        json_t *list = NULL, *name;
        size_t i;
        ig_err_t err;

        snprintf(url, sizeof(url), "%s/%s/customers:listAccessibleCustomers",
                 job->ps->api_url, google_version(job));
        google_headers(job, &req);
        req.url = url;
        req.route = "/{version}/customers:listAccessibleCustomers";
        if ((err = ig_http_object(job, &req, &list)))
                return err;
        json_array_foreach(json_object_get(list, "resourceNames"), i, name) {
                const char *rn = json_string_value(name);
                const char *cid = rn ? strrchr(rn, '/') : NULL;
                json_t *ans = NULL, *cust;
                if (!cid)
                        continue;
                cid++;
                err = google_search(job, cid,
                                    "SELECT customer.id, "
                                    "customer.descriptive_name, "
                                    "customer.currency_code FROM customer",
                                    NULL, &ans);
                if (err) {
                        json_decref(list);
                        return err;
                }
                cust = ig_json_path(
                        json_array_get(json_object_get(ans, "results"), 0),
                        "customer", NULL);
                ig_grant_add(out, cid, ig_json_str(cust, "descriptiveName"),
                             ig_json_str(cust, "currencyCode"), NULL);
                json_decref(ans);
        }
        json_decref(list);
        return IG_OK;
}

static ig_err_t google_exchange(ig_job_t *job, const ig_callback_t *cb,
                                const char *redirect_uri, const char *verifier,
                                const char *shop, ig_grant_t *out) {
        char code[1024], url[600];
        ig_creds_t *saved = job->creds;
        ig_err_t err;
        (void)shop;
        if (!ig_oauth_code(job, cb, "code", code, sizeof(code)))
                return IG_AUTH;
        snprintf(url, sizeof(url), "%s/token", job->ps->token_url);
        if ((err = ig_oauth_exchange(job, url, "/token", IG_CLIENT_FORM, code,
                                     redirect_uri, verifier, out, NULL)))
                return err;
        if (!out->creds.refresh_token) {
                ig_job_error(job, "no refresh token (offline access refused)");
                return IG_REFUSED;
        }
        job->creds = &out->creds;
        err = google_accounts(job, out);
        job->creds = saved;
        return err;
}

static ig_err_t google_refresh(ig_job_t *job) {
        char url[600];
        snprintf(url, sizeof(url), "%s/token", job->ps->token_url);
        return ig_oauth_refresh(job, url, "/token", IG_CLIENT_FORM);
}

static ig_err_t google_revoke(ig_job_t *job) {
        const char *names[] = {"token"};
        const char *values[] = {job->creds->refresh_token
                                        ? job->creds->refresh_token
                                        : job->creds->access_token};
        char url[600];
        ig_req_t req = {0};
        ig_resp_t resp;
        char *form;
        ig_err_t err;
        snprintf(url, sizeof(url), "%s/revoke", job->ps->token_url);
        form = ig_form(1, names, values);
        httpc_headers_add(&req.headers, "Content-Type",
                          "application/x-www-form-urlencoded");
        req.method = "POST";
        req.url = url;
        req.route = "/revoke";
        req.body = slice_of(form);
        req.once = true;
        err = ig_http(job, &req, &resp);
        ig_resp_clear(&resp);
        ig_creds_set(&form, NULL);
        return err;
}

/* ---------------------------------------------------------------------------
 * Campaign metrics
 * ------------------------------------------------------------------------ */

static void google_row(ig_job_t *job, const json_t *r, ig_records_t *out) {
        const json_t *c = json_object_get(r, "campaign");
        const json_t *m = json_object_get(r, "metrics");
        const char *cur = job->currency ? job->currency : "USD";
        const char *channel = ig_json_str(c, "advertisingChannelType");
        const char *date = ig_json_str(json_object_get(r, "segments"), "date");
        ig_ad_row_t row;

        memset(&row, 0, sizeof(row));
        row.campaign_id = ig_json_str(c, "id");
        row.campaign_name =
                ig_json_str(c, "name") ? ig_json_str(c, "name") : "";
        if (!row.campaign_id || !date ||
            !ig_day_parse(date, strlen(date), &row.day))
                return;
        row.currency = cur;
        row.spend_minor =
                ig_money_from_micros(ig_json_int(m, "costMicros", 0), cur);
        row.impressions = ig_json_int(m, "impressions", 0);
        row.clicks = ig_json_int(m, "clicks", 0);
        row.conversions = ig_json_num(m, "conversions", 0);
        row.conversion_value_minor = ig_money_from_double(
                ig_json_num(m, "conversionsValue", 0), cur);
        row.video_views = channel && strcmp(channel, "VIDEO") == 0
                                  ? ig_json_int(m, "videoViews", 0)
                                  : -1;
        ig_rec_ad(out, job, &row);
}

static ig_err_t google_metrics(ig_page_t *pg) {
        ig_job_t *job = pg->job;
        const char *start_s = ig_json_str(pg->cursor, "start");
        const char *token = ig_json_str(pg->cursor, "token");
        char q[900], d1[11], d2[11];
        ig_day_t start = pg->since, end;
        json_t *ans = NULL, *r;
        const char *next;
        size_t i;
        ig_err_t err;

        if (start_s)
                ig_day_parse(start_s, strlen(start_s), &start);
        end = start + GOOGLE_CHUNK_DAYS - 1 < pg->until
                      ? start + GOOGLE_CHUNK_DAYS - 1
                      : pg->until;
        ig_day_format(start, d1);
        ig_day_format(end, d2);
        snprintf(q, sizeof(q),
                 "SELECT campaign.id, campaign.name, "
                 "campaign.advertising_channel_type, segments.date, "
                 "metrics.cost_micros, metrics.impressions, metrics.clicks, "
                 "metrics.conversions, metrics.conversions_value, "
                 "metrics.video_views FROM campaign WHERE segments.date "
                 "BETWEEN '%s' AND '%s'%s ORDER BY segments.date",
                 d1, d2,
                 is_youtube(job)
                         ? " AND campaign.advertising_channel_type = 'VIDEO'"
                         : "");
        if ((err = google_search(job, job->account_id, q, token, &ans)))
                return err;
        json_array_foreach(json_object_get(ans, "results"), i, r)
                google_row(job, r, pg->out);
        next = ig_json_str(ans, "nextPageToken");
        if (next && *next) {
                json_object_set_new(pg->cursor, "start", json_string(d1));
                json_object_set_new(pg->cursor, "token", json_string(next));
        } else if (end < pg->until) {
                char d3[11];
                ig_day_format(end + 1, d3);
                json_object_set_new(pg->cursor, "start", json_string(d3));
                json_object_del(pg->cursor, "token");
        } else {
                pg->done = true;
        }
        json_decref(ans);
        return IG_OK;
}

static const ig_stream_t google_streams[] = {
        {"ad_metrics", google_metrics},
};

const ig_connector_t ig_google_ads = {
        .id = IG_GOOGLE_ADS,
        .auth = IG_AUTH_OAUTH,
        .pkce = true,
        .authorize_url = google_authorize_url,
        .exchange = google_exchange,
        .refresh = google_refresh,
        .revoke = google_revoke,
        .classify = google_classify,
        .streams = google_streams,
        .n_streams = 1,
};

const ig_connector_t ig_youtube = {
        .id = IG_YOUTUBE,
        .auth = IG_AUTH_OAUTH,
        .pkce = true,
        .authorize_url = google_authorize_url,
        .exchange = google_exchange,
        .refresh = google_refresh,
        .revoke = google_revoke,
        .classify = google_classify,
        .streams = google_streams,
        .n_streams = 1,
};
