/*
 * p_linkedin.c - LinkedIn Marketing API (ads).
 *
 * Auth: OAuth 2.0 authorization code; 60-day access tokens and a 365-day
 * refresh token that is not rotated. Revocation: /oauth/v2/revoke.
 * Every API call carries Linkedin-Version (YYYYMM; versions are sunset
 * after a year and then answered 426, which we report as refused with the
 * setting to change) and X-Restli-Protocol-Version 2.0.0.
 *
 * Accounts: /rest/adAccounts?q=search.
 *
 * Data: campaigns (names and objectives, paged by pageToken: analytics give
 * campaign URNs only), then /rest/adAnalytics (q=analytics, pivot=CAMPAIGN,
 * timeGranularity=DAILY), which has no paging and refuses more than 15,000
 * elements: 7-day chunks (a few thousand at most).
 *
 * Limits: daily per member and per application, with no headers; a 429
 * means the day's budget is spent: the sync comes back after midnight UTC.
 * Paced at 0.2/s with a burst of 100 (under 20,000 a day). No webhooks.
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

#define LINKEDIN_CHUNK_DAYS 7
#define LINKEDIN_ACCOUNT_URN "urn:li:sponsoredAccount:"
#define LINKEDIN_CAMPAIGN_URN "urn:li:sponsoredCampaign:"

static char *linkedin_authorize_url(ig_job_t *job, const char *redirect_uri,
                                    const char *state, const char *challenge,
                                    const char *shop) {
        const char *names[] = {"response_type", "client_id", "redirect_uri",
                               "state", "scope"};
        const char *values[] = {"code", job->ps->client_id, redirect_uri, state,
                                job->ps->scopes};
        (void)challenge;
        (void)shop;
        return ig_oauth_url(job->ps->auth_url, "/oauth/v2/authorization", 5,
                            names, values);
}

/* The version header: the setting, or the month before this one. */
static void linkedin_version(const ig_job_t *job, char out[8]) {
        int y, m, d;
        if (job->ps->api_version[0]) {
                snprintf(out, 8, "%.6s", job->ps->api_version);
                return;
        }
        ig_day_to_civil(ig_day_today(), &y, &m, &d);
        if (--m == 0) {
                m = 12;
                y--;
        }
        snprintf(out, 8, "%04u%02u", (unsigned)y % 10000u, (unsigned)m % 100u);
}

static ig_err_t linkedin_classify(ig_job_t *job, const ig_req_t *req,
                                  ig_resp_t *resp) {
        if (resp->status == 426) {
                char v[8];
                linkedin_version(job, v);
                ig_job_error(job,
                             "version %s is not active: set "
                             "OMNIFY_INTEGRATIONS_LINKEDIN_VERSION",
                             v);
                return IG_REFUSED;
        }
        if (resp->status == 429) {
                int64_t now = (int64_t)clock_wall_ms();
                job->wait_ms =
                        ig_day_start_ms(ig_day_of_ms(now) + 1) - now + 60000;
                ig_job_error(job, "daily call limit reached (HTTP 429)");
                return IG_RATE_LIMITED;
        }
        return ig_classify_default(job, req, resp);
}

static void linkedin_pace(const ig_job_t *job, ig_req_t *req) {
        unsigned char d[SHA256_DIGEST_LENGTH];
        char hex[17];
        const char *t = job->creds ? job->creds->access_token : NULL;
        if (!t)
                return;
        SHA256((const unsigned char *)t, strlen(t), d);
        ig_hex(d, 8, hex);
        snprintf(req->pace_key, sizeof(req->pace_key), "linkedin|%s", hex);
        req->rate = 0.2;
        req->burst = 100;
}

static ig_err_t linkedin_get(ig_job_t *job, const char *path_query,
                             const char *route, json_t **out) {
        char url[2048], v[8];
        ig_req_t req = {0};
        linkedin_version(job, v);
        snprintf(url, sizeof(url), "%s%s", job->ps->api_url, path_query);
        ig_req_bearer(&req,
                      job->creds->access_token ? job->creds->access_token : "");
        httpc_headers_add(&req.headers, "Linkedin-Version", v);
        httpc_headers_add(&req.headers, "X-Restli-Protocol-Version", "2.0.0");
        req.url = url;
        req.route = route;
        linkedin_pace(job, &req);
        return ig_http_object(job, &req, out);
}

static ig_err_t linkedin_exchange(ig_job_t *job, const ig_callback_t *cb,
                                  const char *redirect_uri,
                                  const char *verifier, const char *shop,
                                  ig_grant_t *out) {
        char code[1024], url[600];
        ig_creds_t *saved = job->creds;
        json_t *list = NULL, *a;
        size_t i;
        ig_err_t err;
        (void)verifier;
        (void)shop;
        if (!ig_oauth_code(job, cb, "code", code, sizeof(code)))
                return IG_AUTH;
        snprintf(url, sizeof(url), "%s/oauth/v2/accessToken",
                 job->ps->auth_url);
        if ((err = ig_oauth_exchange(job, url, "/oauth/v2/accessToken",
                                     IG_CLIENT_FORM, code, redirect_uri, NULL,
                                     out, NULL)))
                return err;
        job->creds = &out->creds;
        err = linkedin_get(job, "/rest/adAccounts?q=search", "/rest/adAccounts",
                           &list);
        job->creds = saved;
        if (err)
                return err;
        json_array_foreach(json_object_get(list, "elements"), i, a) {
                char id[32];
                if (!ig_json_int(a, "id", 0))
                        continue;
                snprintf(id, sizeof(id), "%lld",
                         (long long)ig_json_int(a, "id", 0));
                ig_grant_add(out, id, ig_json_str(a, "name"),
                             ig_json_str(a, "currency"), NULL);
        }
        json_decref(list);
        return IG_OK;
}

static ig_err_t linkedin_refresh(ig_job_t *job) {
        char url[600];
        snprintf(url, sizeof(url), "%s/oauth/v2/accessToken",
                 job->ps->auth_url);
        return ig_oauth_refresh(job, url, "/oauth/v2/accessToken",
                                IG_CLIENT_FORM);
}

static ig_err_t linkedin_revoke(ig_job_t *job) {
        const char *names[] = {"token"};
        const char *values[] = {job->creds->access_token};
        char url[600];
        json_t *out = NULL;
        ig_err_t err;
        snprintf(url, sizeof(url), "%s/oauth/v2/revoke", job->ps->auth_url);
        err = ig_oauth_post(job, url, "/oauth/v2/revoke", IG_CLIENT_FORM, 1,
                            names, values, &out);
        json_decref(out);
        /* The revocation answers an empty body: not an error here. */
        return err == IG_PROVIDER ? IG_OK : err;
}

/* ---------------------------------------------------------------------------
 * Campaigns and analytics
 * ------------------------------------------------------------------------ */

static ig_err_t linkedin_campaigns(ig_page_t *pg) {
        ig_job_t *job = pg->job;
        const char *token = ig_json_str(pg->cursor, "token");
        char path[1024], ids[100][32],
                *enc = token ? ig_urlencode(token) : NULL;
        ig_aux_item_t items[100];
        json_t *ans = NULL, *c;
        const char *next;
        size_t i, n = 0;
        ig_err_t err;

        snprintf(path, sizeof(path),
                 "/rest/adAccounts/%s/adCampaigns?q=search&pageSize=100%s%s",
                 job->account_id, enc ? "&pageToken=" : "", enc ? enc : "");
        free(enc);
        if ((err = linkedin_get(job, path, "/rest/adAccounts/{id}/adCampaigns",
                                &ans)))
                return err;
        json_array_foreach(json_object_get(ans, "elements"), i, c) {
                const char *obj = ig_json_str(c, "objectiveType");
                if (n == 100 || !ig_json_int(c, "id", 0))
                        continue;
                snprintf(ids[n], sizeof(ids[n]), "%lld",
                         (long long)ig_json_int(c, "id", 0));
                items[n].key = ids[n];
                items[n].s = ig_json_str(c, "name");
                items[n].i = obj && strcmp(obj, "VIDEO_VIEW") == 0;
                n++;
        }
        err = ig_aux_put(job->st, job->connection_id, "campaign", items, n);
        next = ig_json_str(json_object_get(ans, "metadata"), "nextPageToken");
        if (next && *next)
                json_object_set_new(pg->cursor, "token", json_string(next));
        else
                pg->done = true;
        json_decref(ans);
        return err;
}

static void restli_date(ig_day_t day, char *out, size_t size) {
        int y, m, d;
        ig_day_to_civil(day, &y, &m, &d);
        snprintf(out, size, "(year:%d,month:%d,day:%d)", y, m, d);
}

static ig_err_t linkedin_analytics(ig_page_t *pg) {
        ig_job_t *job = pg->job;
        const char *start_s = ig_json_str(pg->cursor, "start");
        const char *cur = job->currency ? job->currency : "USD";
        ig_day_t start = pg->since, end;
        char path[1500], r1[48], r2[48];
        const char **keys;
        bool *found;
        int64_t *video;
        char **names, (*ids)[32];
        json_t *ans = NULL, *els;
        size_t i, n;
        ig_err_t err;

        if (start_s)
                ig_day_parse(start_s, strlen(start_s), &start);
        end = start + LINKEDIN_CHUNK_DAYS - 1 < pg->until
                      ? start + LINKEDIN_CHUNK_DAYS - 1
                      : pg->until;
        restli_date(start, r1, sizeof(r1));
        restli_date(end, r2, sizeof(r2));
        snprintf(path, sizeof(path),
                 "/rest/adAnalytics?q=analytics&pivot=CAMPAIGN"
                 "&timeGranularity=DAILY&dateRange=(start:%s,end:%s)"
                 "&accounts=List(urn%%3Ali%%3AsponsoredAccount%%3A%s)"
                 "&fields=impressions,clicks,costInLocalCurrency,"
                 "externalWebsiteConversions,conversionValueInLocalCurrency,"
                 "videoViews,dateRange,pivotValues",
                 r1, r2, job->account_id);
        if ((err = linkedin_get(job, path, "/rest/adAnalytics", &ans)))
                return err;
        els = json_object_get(ans, "elements");
        n = json_array_size(els);
        keys = xcalloc(n + 1, sizeof(*keys));
        found = xcalloc(n + 1, sizeof(*found));
        video = xcalloc(n + 1, sizeof(*video));
        names = xcalloc(n + 1, sizeof(*names));
        ids = xcalloc(n + 1, sizeof(*ids));
        for (i = 0; i < n; i++) {
                const char *urn = json_string_value(json_array_get(
                        json_object_get(json_array_get(els, i), "pivotValues"),
                        0));
                const char *id =
                        urn && strncmp(urn, LINKEDIN_CAMPAIGN_URN,
                                       strlen(LINKEDIN_CAMPAIGN_URN)) == 0
                                ? urn + strlen(LINKEDIN_CAMPAIGN_URN)
                                : "";
                snprintf(ids[i], sizeof(ids[i]), "%s", id);
                keys[i] = ids[i];
        }
        err = ig_aux_get(job->st, job->connection_id, "campaign", keys, n,
                         found, video, names);
        for (i = 0; !err && i < n; i++) {
                const json_t *e = json_array_get(els, i);
                const json_t *s = ig_json_path(e, "dateRange", "start", NULL);
                ig_ad_row_t row;
                memset(&row, 0, sizeof(row));
                if (!ids[i][0] || !json_is_object(s))
                        continue;
                row.campaign_id = ids[i];
                row.campaign_name = names[i] ? names[i] : "";
                row.day = ig_day_from_civil((int)ig_json_int(s, "year", 1970),
                                            (int)ig_json_int(s, "month", 1),
                                            (int)ig_json_int(s, "day", 1));
                row.currency = cur;
                ig_money_parse(ig_json_str(e, "costInLocalCurrency"), cur,
                               &row.spend_minor);
                row.impressions = ig_json_int(e, "impressions", 0);
                row.clicks = ig_json_int(e, "clicks", 0);
                row.conversions =
                        ig_json_num(e, "externalWebsiteConversions", 0);
                ig_money_parse(ig_json_str(e, "conversionValueInLocalCurrency"),
                               cur, &row.conversion_value_minor);
                row.video_views = found[i] && video[i]
                                          ? ig_json_int(e, "videoViews", 0)
                                          : -1;
                ig_rec_ad(pg->out, job, &row);
        }
        for (i = 0; i < n; i++)
                free(names[i]);
        free(keys);
        free(found);
        free(video);
        free(names);
        free(ids);
        json_decref(ans);
        if (err)
                return err;
        if (end < pg->until) {
                char d3[11];
                ig_day_format(end + 1, d3);
                json_object_set_new(pg->cursor, "start", json_string(d3));
        } else {
                pg->done = true;
        }
        return IG_OK;
}

static const ig_stream_t linkedin_streams[] = {
        {"campaigns", linkedin_campaigns},
        {"ad_metrics", linkedin_analytics},
};

const ig_connector_t ig_linkedin_ads = {
        .id = IG_LINKEDIN_ADS,
        .auth = IG_AUTH_OAUTH,
        .authorize_url = linkedin_authorize_url,
        .exchange = linkedin_exchange,
        .refresh = linkedin_refresh,
        .revoke = linkedin_revoke,
        .classify = linkedin_classify,
        .streams = linkedin_streams,
        .n_streams = sizeof(linkedin_streams) / sizeof(linkedin_streams[0]),
};
