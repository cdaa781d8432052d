/*
 * p_gohighlevel.c - GoHighLevel (LeadConnector API v2).
 *
 * Auth: OAuth through the location chooser; the code is exchanged for a
 * Location token (user_type=Location): about a day of access and a refresh
 * token that is single use and rotates at every refresh (the refresh lock
 * in conns.c makes sure it is used once). Every call carries
 * Version: 2021-07-28. No revocation endpoint is used.
 *
 * Accounts: the token's locationId, named by /locations/{id}.
 *
 * Data: contacts created in the window (startAfter, the window's start in
 * ms, then startAfterId/startAfter from meta; the API lists by creation),
 * and opportunities (page/limit, all of them, kept when updated in the
 * window), with the pipeline's stage names read first.
 *
 * Limits: 100 requests per 10 seconds and 200,000 a day per app and
 * location, in X-RateLimit-Max/-Remaining/-Interval-Milliseconds and
 * X-RateLimit-Limit-Daily/-Daily-Remaining: paced at 8/s with a burst of
 * 10 (at most 90 in ten seconds), held back when the headers run low.
 *
 * Webhooks: X-GHL-Signature = base64 Ed25519 signature of the raw body
 * under GoHighLevel's key (a setting); contact events carry the whole
 * contact (published as they are), others bring the sync forward; the
 * body's timestamp within the tolerance.
 */
#include <openssl/evp.h>
#include <openssl/x509.h>
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

#define GHL_VERSION "2021-07-28"

static char *ghl_authorize_url(ig_job_t *job, const char *redirect_uri,
                               const char *state, const char *challenge,
                               const char *shop) {
        const char *names[] = {"response_type", "client_id", "redirect_uri",
                               "scope", "state"};
        const char *values[] = {"code", job->ps->client_id, redirect_uri,
                                job->ps->scopes, state};
        (void)challenge;
        (void)shop;
        return ig_oauth_url(job->ps->auth_url, "/oauth/chooselocation", 5,
                            names, values);
}

static ig_err_t ghl_classify(ig_job_t *job, const ig_req_t *req,
                             ig_resp_t *resp) {
        slice_t rem =
                httpc_response_header(&resp->raw, "X-RateLimit-Remaining");
        slice_t day = httpc_response_header(&resp->raw,
                                            "X-RateLimit-Daily-Remaining");
        slice_t iv = httpc_response_header(&resp->raw,
                                           "X-RateLimit-Interval-Milliseconds");
        int64_t now = (int64_t)clock_wall_ms();
        int64_t interval = iv.ptr ? strtoll(iv.ptr, NULL, 10) : 10000;
        if (req->pace_key[0] && rem.ptr && strtoll(rem.ptr, NULL, 10) <= 3)
                ig_pacer_block(job->st->pacer, req->pace_key, now + interval);
        if (req->pace_key[0] && day.ptr && strtoll(day.ptr, NULL, 10) <= 10)
                ig_pacer_block(job->st->pacer, req->pace_key,
                               ig_day_start_ms(ig_day_of_ms(now) + 1) + 60000);
        if (resp->status == 429) {
                job->wait_ms =
                        day.ptr && strtoll(day.ptr, NULL, 10) <= 0
                                ? ig_day_start_ms(ig_day_of_ms(now) + 1) - now +
                                          60000
                                : interval;
                ig_job_error(job, "rate limited (HTTP 429)");
                return IG_RATE_LIMITED;
        }
        return ig_classify_default(job, req, resp);
}

static ig_err_t ghl_get(ig_job_t *job, const char *path_query,
                        const char *route, json_t **out) {
        char url[1200];
        ig_req_t req = {0};
        snprintf(url, sizeof(url), "%s%s", job->ps->api_url, path_query);
        ig_req_bearer(&req,
                      job->creds->access_token ? job->creds->access_token : "");
        httpc_headers_add(&req.headers, "Version", GHL_VERSION);
        httpc_headers_add(&req.headers, "Accept", "application/json");
        req.url = url;
        req.route = route;
        if (job->account_id) {
                snprintf(req.pace_key, sizeof(req.pace_key), "gohighlevel|%s",
                         job->account_id);
                req.rate = 8;
                req.burst = 10;
        }
        return ig_http_object(job, &req, out);
}

static ig_err_t ghl_exchange(ig_job_t *job, const ig_callback_t *cb,
                             const char *redirect_uri, const char *verifier,
                             const char *shop, ig_grant_t *out) {
        const char *names[] = {"grant_type", "code", "redirect_uri",
                               "user_type"};
        const char *values[4];
        char code[1024], url[600], path[300];
        ig_creds_t *saved = job->creds;
        json_t *tok = NULL, *loc = NULL, *l;
        const char *location;
        ig_err_t err;
        (void)verifier;
        (void)shop;
        if (!ig_oauth_code(job, cb, "code", code, sizeof(code)))
                return IG_AUTH;
        values[0] = "authorization_code";
        values[1] = code;
        values[2] = redirect_uri;
        values[3] = "Location";
        snprintf(url, sizeof(url), "%s/oauth/token", job->ps->api_url);
        if ((err = ig_oauth_post(job, url, "/oauth/token", IG_CLIENT_FORM, 4,
                                 names, values, &tok)))
                return err;
        location = ig_json_str(tok, "locationId");
        if (!ig_json_str(tok, "access_token") || !location) {
                json_decref(tok);
                ig_job_error(job, "no Location token");
                return IG_PROVIDER;
        }
        ig_oauth_creds(&out->creds, tok, NULL, NULL);
        job->creds = &out->creds;
        snprintf(path, sizeof(path), "/locations/%s", location);
        err = ghl_get(job, path, "/locations/{id}", &loc);
        job->creds = saved;
        if (err) {
                json_decref(tok);
                return err;
        }
        l = json_object_get(loc, "location");
        ig_grant_add(out, location, ig_json_str(l, "name"),
                     ig_json_str(l, "currency"),
                     json_pack("{s:s?}", "company_id",
                               ig_json_str(tok, "companyId")));
        json_decref(loc);
        json_decref(tok);
        return IG_OK;
}

static ig_err_t ghl_refresh(ig_job_t *job) {
        const char *names[] = {"grant_type", "refresh_token", "user_type"};
        const char *values[] = {"refresh_token", job->creds->refresh_token,
                                "Location"};
        char url[600];
        json_t *tok = NULL;
        ig_err_t err;
        if (!job->creds->refresh_token) {
                ig_job_error(job, "no refresh token");
                return IG_AUTH;
        }
        snprintf(url, sizeof(url), "%s/oauth/token", job->ps->api_url);
        if ((err = ig_oauth_post(job, url, "/oauth/token", IG_CLIENT_FORM, 3,
                                 names, values, &tok)))
                return err;
        ig_oauth_creds(job->creds, tok, NULL, NULL);
        json_decref(tok);
        job->creds_changed = true;
        return IG_OK;
}

/* ---------------------------------------------------------------------------
 * Contacts and opportunities
 * ------------------------------------------------------------------------ */

static void ghl_contact(ig_job_t *job, const json_t *c, ig_records_t *out) {
        const char *stage = json_string_value(
                json_array_get(json_object_get(c, "tags"), 0));
        ig_contact_t ct;
        memset(&ct, 0, sizeof(ct));
        ct.contact_id = ig_json_str(c, "id");
        if (!ct.contact_id ||
            !ig_time_parse(ig_json_str(c, "dateAdded"), &ct.created_ms))
                return;
        if (!ig_time_parse(ig_json_str(c, "dateUpdated"), &ct.updated_ms))
                ct.updated_ms = ct.created_ms;
        /* GoHighLevel keeps no lifecycle stage: the first tag names it (as
         * accounts commonly use tags), else the contact's type. */
        ct.stage = stage                    ? stage
                   : ig_json_str(c, "type") ? ig_json_str(c, "type")
                                            : "lead";
        ct.email = ig_json_str(c, "email");
        ig_rec_contact(out, job, &ct);
}

static ig_err_t ghl_contacts(ig_page_t *pg) {
        ig_job_t *job = pg->job;
        const char *after_id = ig_json_str(pg->cursor, "after_id");
        int64_t after = ig_json_int(pg->cursor, "after",
                                    ig_day_start_ms(pg->since) - 1);
        int64_t hi = ig_day_start_ms(pg->until + 1);
        char path[900];
        json_t *ans = NULL, *c, *meta;
        const char *next_id;
        bool past = false;
        size_t i;
        ig_err_t err;

        snprintf(path, sizeof(path),
                 "/contacts/?locationId=%s&limit=100&startAfter=%lld%s%s",
                 job->account_id, (long long)after,
                 after_id ? "&startAfterId=" : "", after_id ? after_id : "");
        if ((err = ghl_get(job, path, "/contacts/", &ans)))
                return err;
        json_array_foreach(json_object_get(ans, "contacts"), i, c) {
                int64_t added = 0;
                if (ig_time_parse(ig_json_str(c, "dateAdded"), &added) &&
                    added >= hi) {
                        past = true;
                        break;
                }
                ghl_contact(job, c, pg->out);
        }
        meta = json_object_get(ans, "meta");
        next_id = ig_json_str(meta, "startAfterId");
        if (!past && next_id && ig_json_int(meta, "startAfter", 0)) {
                json_object_set_new(pg->cursor, "after_id",
                                    json_string(next_id));
                json_object_set_new(
                        pg->cursor, "after",
                        json_integer(ig_json_int(meta, "startAfter", 0)));
        } else {
                pg->done = true;
        }
        json_decref(ans);
        return IG_OK;
}

static ig_err_t ghl_stages(ig_job_t *job) {
        char path[300];
        ig_aux_item_t items[128];
        json_t *ans = NULL, *p, *s;
        size_t i, k, n = 0;
        ig_err_t err;
        snprintf(path, sizeof(path), "/opportunities/pipelines?locationId=%s",
                 job->account_id);
        if ((err = ghl_get(job, path, "/opportunities/pipelines", &ans)))
                return err;
        json_array_foreach(json_object_get(ans, "pipelines"), i, p) {
                json_array_foreach(json_object_get(p, "stages"), k, s) {
                        if (n < 128 && ig_json_str(s, "id")) {
                                items[n].key = ig_json_str(s, "id");
                                items[n].s = ig_json_str(s, "name");
                                items[n].i = 0;
                                n++;
                        }
                }
        }
        err = ig_aux_put(job->st, job->connection_id, "stage", items, n);
        json_decref(ans);
        return err;
}

static ig_err_t ghl_opportunities(ig_page_t *pg) {
        ig_job_t *job = pg->job;
        int64_t page = ig_json_int(pg->cursor, "page", 1);
        int64_t lo = ig_day_start_ms(pg->since),
                hi = ig_day_start_ms(pg->until + 1);
        const char *keys[100];
        bool found[100];
        char *names[100], path[300];
        json_t *ans = NULL, *list, *o;
        size_t i, n;
        ig_err_t err;

        if (page == 1 && (err = ghl_stages(job)))
                return err;
        snprintf(path, sizeof(path),
                 "/opportunities/search?location_id=%s&limit=100&page=%lld",
                 job->account_id, (long long)page);
        if ((err = ghl_get(job, path, "/opportunities/search", &ans)))
                return err;
        list = json_object_get(ans, "opportunities");
        n = json_array_size(list) < 100 ? json_array_size(list) : 100;
        for (i = 0; i < n; i++) {
                const char *sid =
                        ig_json_str(json_array_get(list, i), "pipelineStageId");
                keys[i] = sid ? sid : "";
        }
        if ((err = ig_aux_get(job->st, job->connection_id, "stage", keys, n,
                              found, NULL, names))) {
                json_decref(ans);
                return err;
        }
        for (i = 0; i < n; i++) {
                const char *status, *cur;
                int64_t updated = 0;
                ig_deal_t d;
                o = json_array_get(list, i);
                status = ig_json_str(o, "status");
                cur = ig_json_str(o, "currency");
                if (!cur)
                        cur = job->currency ? job->currency : "USD";
                if (!ig_time_parse(ig_json_str(o, "updatedAt"), &updated) ||
                    updated < lo || updated >= hi)
                        continue;
                memset(&d, 0, sizeof(d));
                d.deal_id = ig_json_str(o, "id");
                if (!d.deal_id ||
                    !ig_time_parse(ig_json_str(o, "createdAt"), &d.created_ms))
                        continue;
                d.contact_id = ig_json_str(o, "contactId")
                                       ? ig_json_str(o, "contactId")
                                       : "";
                d.stage = names[i] ? names[i] : keys[i];
                d.currency = cur;
                d.amount_minor = ig_money_from_double(
                        ig_json_num(o, "monetaryValue", 0), cur);
                d.won = status && strcmp(status, "won") == 0    ? 1
                        : status && strcmp(status, "lost") == 0 ? 0
                                                                : -1;
                if (d.won >= 0)
                        ig_time_parse(ig_json_str(o, "lastStatusChangeAt"),
                                      &d.closed_ms);
                ig_rec_deal(pg->out, job, &d);
        }
        for (i = 0; i < n; i++)
                free(names[i]);
        if (ig_json_int(json_object_get(ans, "meta"), "nextPage", 0) > page)
                json_object_set_new(pg->cursor, "page", json_integer(page + 1));
        else
                pg->done = true;
        json_decref(ans);
        return IG_OK;
}

static const ig_stream_t ghl_streams[] = {
        {"contacts", ghl_contacts},
        {"deals", ghl_opportunities},
};

/* ---------------------------------------------------------------------------
 * Webhooks (Ed25519)
 * ------------------------------------------------------------------------ */

/* The public key of the setting: base64 of the SubjectPublicKeyInfo (a
 * PEM's body) or of the raw 32 bytes. */
static EVP_PKEY *ghl_key(const char *b64) {
        size_t n = 0;
        unsigned char *raw = ig_unb64(b64, strlen(b64), &n);
        EVP_PKEY *k = NULL;
        if (!raw)
                return NULL;
        if (n == 32) {
                k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, n);
        } else {
                const unsigned char *p = raw;
                k = d2i_PUBKEY(NULL, &p, (long)n);
        }
        free(raw);
        return k;
}

static ig_err_t ghl_hook_verify(ig_hook_t *h) {
        const char *key_b64 = h->ps->webhook_key;
        slice_t sig = ig_hook_field(h, "ghl_signature");
        unsigned char *raw = NULL;
        size_t raw_len = 0;
        EVP_MD_CTX *md = NULL;
        EVP_PKEY *key;
        bool ok = false;
        json_error_t je;
        json_t *body;
        int64_t t = 0;
        const char *type, *loc, *id;

        if (!key_b64[0]) {
                snprintf(h->error, sizeof(h->error),
                         "GoHighLevel's webhook key is not configured");
                return IG_NOT_CONFIGURED;
        }
        if (!(key = ghl_key(key_b64))) {
                snprintf(h->error, sizeof(h->error),
                         "GoHighLevel's webhook key does not read");
                return IG_NOT_CONFIGURED;
        }
        if (sig.ptr)
                raw = ig_unb64(sig.ptr, sig.len, &raw_len);
        if (raw && raw_len == 64 && (md = EVP_MD_CTX_new()) &&
            EVP_DigestVerifyInit(md, NULL, NULL, NULL, key) == 1)
                ok = EVP_DigestVerify(md, raw, raw_len,
                                      (const unsigned char *)h->body.ptr,
                                      h->body.len) == 1;
        EVP_MD_CTX_free(md);
        EVP_PKEY_free(key);
        free(raw);
        if (!ok) {
                snprintf(h->error, sizeof(h->error), "signature mismatch");
                return IG_AUTH;
        }
        body = json_loadb(h->body.ptr, h->body.len, 0, &je);
        type = ig_json_str(body, "type");
        loc = ig_json_str(body, "locationId");
        id = ig_json_str(body, "webhookId");
        if (!json_is_object(body) || !type || !loc || !id) {
                json_decref(body);
                snprintf(h->error, sizeof(h->error),
                         "not a GoHighLevel webhook");
                return IG_BAD_INPUT;
        }
        if (ig_time_parse(ig_json_str(body, "timestamp"), &t) &&
            llabs((long long)(h->now_ms - t)) >
                    (long long)h->st->set->webhook_tolerance_s * 1000) {
                json_decref(body);
                snprintf(h->error, sizeof(h->error),
                         "timestamp outside the tolerance");
                return IG_AUTH;
        }
        if (strcmp(type, "ContactCreate") == 0 ||
            strcmp(type, "ContactUpdate") == 0)
                ig_hook_add(h, id, loc, IG_HOOK_RECORD, json_incref(body));
        else
                ig_hook_add(h, id, loc, IG_HOOK_SYNC, NULL);
        json_decref(body);
        return IG_OK;
}

static void ghl_hook_record(ig_job_t *job, const ig_hook_item_t *item,
                            ig_records_t *out) {
        ghl_contact(job, item->payload, out);
}

const ig_connector_t ig_gohighlevel = {
        .id = IG_GOHIGHLEVEL,
        .auth = IG_AUTH_OAUTH,
        .authorize_url = ghl_authorize_url,
        .exchange = ghl_exchange,
        .refresh = ghl_refresh,
        .classify = ghl_classify,
        .streams = ghl_streams,
        .n_streams = sizeof(ghl_streams) / sizeof(ghl_streams[0]),
        .hook_verify = ghl_hook_verify,
        .hook_record = ghl_hook_record,
};
