/*
 * p_hubspot.c - HubSpot CRM.
 *
 * Auth: OAuth 2.0 authorization code; 30-minute access tokens, a refresh
 * token that does not change. The portal (hub id) comes from the token's
 * metadata. Revocation: DELETE /oauth/v1/refresh-tokens/{token} (the token
 * is in the path: logs show the route template only).
 *
 * Data: contacts modified in the window through CRM search
 * (lastmodifieddate between the window's ends, 200 a page, paging.next.
 * after; search answers at most 10,000 results per query), and deals
 * through the objects list with their contact associations (100 a page,
 * paging.next.after), keeping those modified in the window (search gives
 * no associations).
 *
 * Limits: 110 requests per 10 seconds per app and portal, with
 * X-HubSpot-RateLimit-Max/-Remaining/-Interval-Milliseconds; search 5 a
 * second and no headers. Paced at 9/s with a burst of 10 (at most 100 in
 * ten seconds); searches also at 4/s with a burst of 1. A 429 names its
 * policy (TEN_SECONDLY_ROLLING, SECONDLY): wait the window.
 *
 * Webhooks: X-HubSpot-Signature-v3 = base64 HMAC-SHA256 of
 * "POST" + the webhook's public URL + body + X-HubSpot-Request-Timestamp
 * under the app's secret; the timestamp (ms) within the tolerance. Events
 * say what changed (object id, property): the portal's sync is brought
 * forward.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "connector.h"
#include "log.h"
#include "msgid.h"
#include "oauth.h"
#include "pacer.h"

static char *hubspot_authorize_url(ig_job_t *job, const char *redirect_uri,
                                   const char *state, const char *challenge,
                                   const char *shop) {
        const char *names[] = {"client_id", "redirect_uri", "scope", "state"};
        const char *values[] = {job->ps->client_id, redirect_uri,
                                job->ps->scopes, state};
        (void)challenge;
        (void)shop;
        return ig_oauth_url(job->ps->auth_url, "/oauth/authorize", 4, names,
                            values);
}

static ig_err_t hubspot_classify(ig_job_t *job, const ig_req_t *req,
                                 ig_resp_t *resp) {
        slice_t rem = httpc_response_header(&resp->raw,
                                            "X-HubSpot-RateLimit-Remaining");
        slice_t iv = httpc_response_header(
                &resp->raw, "X-HubSpot-RateLimit-Interval-Milliseconds");
        int64_t interval = iv.ptr ? strtoll(iv.ptr, NULL, 10) : 10000;
        if (rem.ptr && req->pace_key[0] && strtoll(rem.ptr, NULL, 10) <= 3)
                ig_pacer_block(job->st->pacer, req->pace_key,
                               (int64_t)clock_wall_ms() + interval);
        if (resp->status == 429) {
                const char *policy = ig_json_str(resp->json, "policyName");
                job->wait_ms = policy && strcmp(policy, "SECONDLY") == 0 ? 1000
                               : interval > 0 ? interval
                                              : 10000;
                ig_job_error(job, "rate limited (%s)",
                             policy ? policy : "HTTP 429");
                return IG_RATE_LIMITED;
        }
        if (resp->status == 401) {
                ig_job_error(job, "credentials refused (%s)",
                             ig_json_str(resp->json, "category")
                                     ? ig_json_str(resp->json, "category")
                                     : "HTTP 401");
                return IG_AUTH;
        }
        return ig_classify_default(job, req, resp);
}

static void hubspot_req(ig_job_t *job, ig_req_t *req, const char *url,
                        const char *route, bool search) {
        memset(req, 0, sizeof(*req));
        ig_req_bearer(req,
                      job->creds->access_token ? job->creds->access_token : "");
        httpc_headers_add(&req->headers, "Accept", "application/json");
        req->url = url;
        req->route = route;
        if (!job->account_id)
                return;
        snprintf(req->pace_key, sizeof(req->pace_key), "hubspot|%s",
                 job->account_id);
        req->rate = 9;
        req->burst = 10;
        if (search) {
                snprintf(req->pace_key2, sizeof(req->pace_key2),
                         "hubspot-search|%s", job->account_id);
                req->rate2 = 4;
                req->burst2 = 1;
        }
}

static ig_err_t hubspot_exchange(ig_job_t *job, const ig_callback_t *cb,
                                 const char *redirect_uri, const char *verifier,
                                 const char *shop, ig_grant_t *out) {
        char code[1024], url[1200], id[32], *enc;
        json_t *meta = NULL, *extra;
        ig_req_t req;
        ig_err_t err;
        (void)verifier;
        (void)shop;
        if (!ig_oauth_code(job, cb, "code", code, sizeof(code)))
                return IG_AUTH;
        snprintf(url, sizeof(url), "%s/oauth/v1/token", job->ps->api_url);
        if ((err = ig_oauth_exchange(job, url, "/oauth/v1/token",
                                     IG_CLIENT_FORM, code, redirect_uri, NULL,
                                     out, NULL)))
                return err;
        enc = ig_urlencode(out->creds.access_token);
        snprintf(url, sizeof(url), "%s/oauth/v1/access-tokens/%s",
                 job->ps->api_url, enc);
        ig_creds_set(&enc, NULL);
        memset(&req, 0, sizeof(req));
        req.url = url;
        req.route = "/oauth/v1/access-tokens/{token}";
        err = ig_http_object(job, &req, &meta);
        OPENSSL_cleanse(url, sizeof(url));
        if (err)
                return err;
        if (!ig_json_int(meta, "hub_id", 0)) {
                json_decref(meta);
                ig_job_error(job, "the token names no portal");
                return IG_PROVIDER;
        }
        snprintf(id, sizeof(id), "%lld",
                 (long long)ig_json_int(meta, "hub_id", 0));
        extra = json_object();
        if (ig_json_str(meta, "hub_domain"))
                json_object_set_new(
                        extra, "hub_domain",
                        json_string(ig_json_str(meta, "hub_domain")));
        ig_grant_add(out, id, ig_json_str(meta, "hub_domain"), NULL, extra);
        json_decref(meta);
        return IG_OK;
}

static ig_err_t hubspot_refresh(ig_job_t *job) {
        char url[600];
        snprintf(url, sizeof(url), "%s/oauth/v1/token", job->ps->api_url);
        return ig_oauth_refresh(job, url, "/oauth/v1/token", IG_CLIENT_FORM);
}

static ig_err_t hubspot_revoke(ig_job_t *job) {
        char url[1200], *enc;
        ig_req_t req = {0};
        ig_resp_t resp;
        ig_err_t err;
        if (!job->creds->refresh_token)
                return IG_OK;
        enc = ig_urlencode(job->creds->refresh_token);
        snprintf(url, sizeof(url), "%s/oauth/v1/refresh-tokens/%s",
                 job->ps->api_url, enc);
        ig_creds_set(&enc, NULL);
        req.method = "DELETE";
        req.url = url;
        req.route = "/oauth/v1/refresh-tokens/{token}";
        req.once = true;
        err = ig_http(job, &req, &resp);
        ig_resp_clear(&resp);
        OPENSSL_cleanse(url, sizeof(url));
        return err;
}

/* ---------------------------------------------------------------------------
 * Contacts and deals
 * ------------------------------------------------------------------------ */

static int64_t prop_time(const json_t *props, const char *name) {
        int64_t ms = 0;
        const char *v = ig_json_str(props, name);
        if (v && !ig_time_parse(v, &ms))
                ms = strtoll(v, NULL, 10);
        return ms;
}

static void hubspot_contact(ig_job_t *job, const json_t *o, ig_records_t *out) {
        const json_t *p = json_object_get(o, "properties");
        ig_contact_t c;
        memset(&c, 0, sizeof(c));
        c.contact_id = ig_json_str(o, "id");
        if (!c.contact_id)
                return;
        c.created_ms = prop_time(p, "createdate");
        c.updated_ms = prop_time(p, "lastmodifieddate");
        c.stage = ig_json_str(p, "lifecyclestage")
                          ? ig_json_str(p, "lifecyclestage")
                          : "";
        c.email = ig_json_str(p, "email");
        c.opened = ig_json_int(p, "hs_email_open", 0);
        c.clicked = ig_json_int(p, "hs_email_click", 0);
        c.views = ig_json_int(p, "hs_analytics_num_page_views", 0);
        c.last_engaged_ms = prop_time(p, "hs_last_sales_activity_timestamp");
        ig_rec_contact(out, job, &c);
}

static ig_err_t hubspot_contacts(ig_page_t *pg) {
        ig_job_t *job = pg->job;
        const char *after = ig_json_str(pg->cursor, "after");
        char url[600], lo[24], hi[24], *text;
        json_t *body, *ans = NULL, *o, *filters, *props;
        const char *next;
        ig_req_t req;
        size_t i;
        ig_err_t err;
        static const char *const wanted[] = {
                "email",
                "lifecyclestage",
                "createdate",
                "lastmodifieddate",
                "hs_email_open",
                "hs_email_click",
                "hs_analytics_num_page_views",
                "hs_last_sales_activity_timestamp"};

        snprintf(lo, sizeof(lo), "%lld", (long long)ig_day_start_ms(pg->since));
        snprintf(hi, sizeof(hi), "%lld",
                 (long long)ig_day_start_ms(pg->until + 1));
        filters = json_pack("[{s:s, s:s, s:s}, {s:s, s:s, s:s}]",
                            "propertyName", "lastmodifieddate", "operator",
                            "GTE", "value", lo, "propertyName",
                            "lastmodifieddate", "operator", "LT", "value", hi);
        props = json_array();
        for (i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++)
                json_array_append_new(props, json_string(wanted[i]));
        body = json_pack("{s:[{s:o}], s:[{s:s, s:s}], s:o, s:i}",
                         "filterGroups", "filters", filters, "sorts",
                         "propertyName", "lastmodifieddate", "direction",
                         "ASCENDING", "properties", props, "limit", 200);
        if (after)
                json_object_set_new(body, "after", json_string(after));
        text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        snprintf(url, sizeof(url), "%s/crm/v3/objects/contacts/search",
                 job->ps->api_url);
        hubspot_req(job, &req, url, "/crm/v3/objects/contacts/search", true);
        httpc_headers_add(&req.headers, "Content-Type", "application/json");
        req.method = "POST";
        req.body = slice_of(text);
        err = ig_http_object(job, &req, &ans);
        free(text);
        if (err)
                return err;
        json_array_foreach(json_object_get(ans, "results"), i, o)
                hubspot_contact(job, o, pg->out);
        next = ig_json_str(ig_json_path(ans, "paging", "next", NULL), "after");
        if (next && *next)
                json_object_set_new(pg->cursor, "after", json_string(next));
        else
                pg->done = true;
        json_decref(ans);
        return IG_OK;
}

static void hubspot_deal(ig_job_t *job, const json_t *o, int64_t lo, int64_t hi,
                         ig_records_t *out) {
        const json_t *p = json_object_get(o, "properties");
        const char *stage = ig_json_str(p, "dealstage");
        const char *cur = ig_json_str(p, "deal_currency_code");
        int64_t updated = prop_time(p, "hs_lastmodifieddate");
        ig_deal_t d;
        if (updated < lo || updated >= hi)
                return;
        memset(&d, 0, sizeof(d));
        if (!cur)
                cur = job->currency ? job->currency : "USD";
        d.deal_id = ig_json_str(o, "id");
        if (!d.deal_id)
                return;
        d.contact_id = ig_json_str(
                json_array_get(ig_json_path(o, "associations", "contacts",
                                            "results", NULL),
                               0),
                "id");
        if (!d.contact_id)
                d.contact_id = "";
        d.stage = stage ? stage : "";
        d.currency = cur;
        ig_money_parse(ig_json_str(p, "amount"), cur, &d.amount_minor);
        d.created_ms = prop_time(p, "createdate");
        d.closed_ms = prop_time(p, "closedate");
        d.won = stage && strcmp(stage, "closedwon") == 0    ? 1
                : stage && strcmp(stage, "closedlost") == 0 ? 0
                                                            : -1;
        if (d.won < 0)
                d.closed_ms = 0;
        ig_rec_deal(out, job, &d);
}

static ig_err_t hubspot_deals(ig_page_t *pg) {
        ig_job_t *job = pg->job;
        const char *after = ig_json_str(pg->cursor, "after");
        char url[900], *enc = after ? ig_urlencode(after) : NULL;
        json_t *ans = NULL, *o;
        const char *next;
        ig_req_t req;
        size_t i;
        ig_err_t err;

        snprintf(url, sizeof(url),
                 "%s/crm/v3/objects/deals?limit=100&associations=contacts"
                 "&properties=amount,dealstage,createdate,closedate,"
                 "hs_lastmodifieddate,deal_currency_code%s%s",
                 job->ps->api_url, enc ? "&after=" : "", enc ? enc : "");
        free(enc);
        hubspot_req(job, &req, url, "/crm/v3/objects/deals", false);
        if ((err = ig_http_object(job, &req, &ans)))
                return err;
        json_array_foreach(json_object_get(ans, "results"), i, o)
                hubspot_deal(job, o, ig_day_start_ms(pg->since),
                             ig_day_start_ms(pg->until + 1), pg->out);
        next = ig_json_str(ig_json_path(ans, "paging", "next", NULL), "after");
        if (next && *next)
                json_object_set_new(pg->cursor, "after", json_string(next));
        else
                pg->done = true;
        json_decref(ans);
        return IG_OK;
}

static const ig_stream_t hubspot_streams[] = {
        {"contacts", hubspot_contacts},
        {"deals", hubspot_deals},
};

/* ---------------------------------------------------------------------------
 * Webhooks (signature v3)
 * ------------------------------------------------------------------------ */

static ig_err_t hubspot_hook_verify(ig_hook_t *h) {
        const char *secret = h->ps->client_secret;
        slice_t sig = ig_hook_field(h, "hubspot_signature");
        slice_t ts = ig_hook_field(h, "hubspot_timestamp");
        const char *base = h->st->set->public_url;
        size_t blen = strlen(base);
        unsigned char mac[32];
        unsigned int mlen = 0;
        char tsbuf[24], *expect;
        int64_t t;
        ig_buf_t msg = {0};
        json_error_t je;
        json_t *body, *e;
        size_t i;

        if (!secret[0]) {
                snprintf(h->error, sizeof(h->error),
                         "the HubSpot app secret is not configured");
                return IG_NOT_CONFIGURED;
        }
        if (!sig.ptr || !ts.ptr || ts.len >= sizeof(tsbuf)) {
                snprintf(h->error, sizeof(h->error),
                         "no X-HubSpot-Signature-v3 or timestamp");
                return IG_AUTH;
        }
        ig_copy_slice(tsbuf, sizeof(tsbuf), ts);
        while (blen && base[blen - 1] == '/')
                blen--;
        ig_buf_printf(&msg, "POST%.*s/api/integrations/webhooks/hubspot",
                      (int)blen, base);
        if (h->body.len)
                ig_buf_printf(&msg, "%.*s", (int)h->body.len, h->body.ptr);
        ig_buf_printf(&msg, "%s", tsbuf);
        HMAC(EVP_sha256(), secret, (int)strlen(secret),
             (const unsigned char *)msg.p, msg.len, mac, &mlen);
        ig_buf_free(&msg);
        expect = ig_b64(mac, 32);
        if (!ig_equal(sig.ptr, sig.len, expect, strlen(expect))) {
                free(expect);
                snprintf(h->error, sizeof(h->error), "signature mismatch");
                return IG_AUTH;
        }
        free(expect);
        t = strtoll(tsbuf, NULL, 10);
        if (llabs((long long)(h->now_ms - t)) >
            (long long)h->st->set->webhook_tolerance_s * 1000) {
                snprintf(h->error, sizeof(h->error),
                         "timestamp outside the tolerance");
                return IG_AUTH;
        }
        body = json_loadb(h->body.ptr, h->body.len, 0, &je);
        if (!json_is_array(body)) {
                json_decref(body);
                snprintf(h->error, sizeof(h->error), "not a list of events");
                return IG_BAD_INPUT;
        }
        json_array_foreach(body, i, e) {
                char id[32], portal[32];
                if (!ig_json_int(e, "eventId", 0) ||
                    !ig_json_int(e, "portalId", 0))
                        continue;
                snprintf(id, sizeof(id), "%lld",
                         (long long)ig_json_int(e, "eventId", 0));
                snprintf(portal, sizeof(portal), "%lld",
                         (long long)ig_json_int(e, "portalId", 0));
                ig_hook_add(h, id, portal, IG_HOOK_SYNC, NULL);
        }
        json_decref(body);
        return IG_OK;
}

const ig_connector_t ig_hubspot = {
        .id = IG_HUBSPOT,
        .auth = IG_AUTH_OAUTH,
        .authorize_url = hubspot_authorize_url,
        .exchange = hubspot_exchange,
        .refresh = hubspot_refresh,
        .revoke = hubspot_revoke,
        .classify = hubspot_classify,
        .streams = hubspot_streams,
        .n_streams = sizeof(hubspot_streams) / sizeof(hubspot_streams[0]),
        .hook_verify = hubspot_hook_verify,
};
