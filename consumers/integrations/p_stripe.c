/*
 * p_stripe.c - Stripe: a secret (sk_) or restricted (rk_) key as Bearer,
 * checked with GET /v1/account; lists paged with limit (100) and
 * starting_after while has_more, filtered by created[gte]/[lt]; 25 reads a
 * second in test mode and 100 live, per account (429 with code rate_limit,
 * no Retry-After: the window is one second); webhooks signed
 * Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256("<t>.<body>")> under the
 * endpoint's whsec_ secret, 300 s tolerance.
 *
 * Streams over the window: customers (when each was created: a charge is a
 * new customer's when made with it), charges (one order each), refunds
 * (refunds now of charges made before the window: those charges again).
 * A charge has no line items and no subtotal at Stripe: lines are empty and
 * subtotal is the amount.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "aux.h"
#include "connector.h"
#include "log.h"
#include "msgid.h"
#include "vault.h"

#define STRIPE_PAGE "100"

static bool stripe_live(const ig_job_t *job) {
        const char *k = job->creds ? job->creds->api_key : NULL;
        return k && strstr(k, "_live_") != NULL;
}

static void stripe_req(ig_job_t *job, ig_req_t *req, const char *key,
                       const char *url, const char *route) {
        memset(req, 0, sizeof(*req));
        ig_req_bearer(req, key);
        httpc_headers_add(&req->headers, "Accept", "application/json");
        req->url = url;
        req->route = route;
        if (job->account_id) {
                bool live = stripe_live(job);
                snprintf(req->pace_key, sizeof(req->pace_key), "stripe|%s",
                         job->account_id);
                /* b + r <= the limit in any one-second window. */
                req->rate = live ? 85 : 20;
                req->burst = live ? 10 : 4;
        }
}

static ig_err_t stripe_classify(ig_job_t *job, const ig_req_t *req,
                                ig_resp_t *resp) {
        if (resp->status == 429) {
                job->wait_ms = 1000;
                ig_job_error(job, "rate limited (HTTP 429)");
                return IG_RATE_LIMITED;
        }
        if (resp->status == 404) {
                ig_job_error(job, "not found (HTTP 404)");
                return IG_REFUSED;
        }
        return ig_classify_default(job, req, resp);
}

/* GET url (the connection's key); *out the JSON object answered. */
static ig_err_t stripe_get(ig_job_t *job, const char *url, const char *route,
                           json_t **out) {
        ig_req_t req;
        stripe_req(job, &req, job->creds->api_key, url, route);
        return ig_http_object(job, &req, out);
}

static ig_err_t stripe_check_key(ig_job_t *job, const char *key,
                                 const char *shop, ig_grant_t *out) {
        char url[600];
        ig_creds_t creds = {0};
        json_t *acct = NULL;
        const char *id, *cur, *name;
        char upper[8] = "";
        ig_err_t err;
        (void)shop;
        if (strncmp(key, "sk_", 3) != 0 && strncmp(key, "rk_", 3) != 0) {
                ig_job_error(job, "a Stripe key starts sk_ or rk_");
                return IG_REFUSED;
        }
        ig_creds_set(&creds.api_key, key);
        job->creds = &creds;
        snprintf(url, sizeof(url), "%s/v1/account", job->ps->api_url);
        err = stripe_get(job, url, "/v1/account", &acct);
        ig_creds_clear(&creds);
        job->creds = NULL;
        if (err)
                return err;
        id = ig_json_str(acct, "id");
        cur = ig_json_str(acct, "default_currency");
        name = ig_json_str(ig_json_path(acct, "business_profile", NULL),
                           "name");
        if (!id) {
                json_decref(acct);
                ig_job_error(job, "the account has no id");
                return IG_PROVIDER;
        }
        for (size_t i = 0; cur && cur[i] && i < 7; i++) {
                upper[i] = (char)(cur[i] >= 'a' && cur[i] <= 'z' ? cur[i] - 32
                                                                 : cur[i]);
                upper[i + 1] = '\0';
        }
        ig_grant_add(out, id, name, upper[0] ? upper : NULL, NULL);
        json_decref(acct);
        return IG_OK;
}

/* ---------------------------------------------------------------------------
 * Charges as orders
 * ------------------------------------------------------------------------ */

/* How close a customer's creation must be to a charge for the charge to be
 * the customer's first. */
#define STRIPE_NEW_WINDOW_S 600

static void stripe_order(ig_job_t *job, const json_t *ch, bool new_customer,
                         ig_records_t *out) {
        static const char *const clicks[] = {"gclid", "fbclid", "ttclid",
                                             "li_fat_id"};
        const json_t *meta = json_object_get(ch, "metadata");
        const char *cur = ig_json_str(ch, "currency");
        int64_t amount = ig_json_int(ch, "amount", 0);
        int64_t refunded = ig_json_int(ch, "amount_refunded", 0);
        char upper[8] = "USD";
        ig_order_t o;
        memset(&o, 0, sizeof(o));
        for (size_t i = 0; cur && cur[i] && i < 7; i++) {
                upper[i] = (char)(cur[i] >= 'a' && cur[i] <= 'z' ? cur[i] - 32
                                                                 : cur[i]);
                upper[i + 1] = '\0';
        }
        o.order_id = ig_json_str(ch, "id");
        o.placed_ms = ig_json_int(ch, "created", 0) * 1000;
        o.currency = upper;
        o.total_minor = amount;
        o.subtotal_minor = amount;
        o.refunded_minor = refunded;
        o.customer_id =
                ig_json_str(ch, "customer") ? ig_json_str(ch, "customer") : "";
        o.new_customer = new_customer;
        o.status =
                json_is_true(json_object_get(ch, "refunded")) ||
                                (amount && refunded >= amount)
                        ? "refunded"
                : refunded > 0 ? "partially_refunded"
                : ig_json_str(ch, "status") && strcmp(ig_json_str(ch, "status"),
                                                      "succeeded") == 0
                        ? "paid"
                        : (ig_json_str(ch, "status") ? ig_json_str(ch, "status")
                                                     : "unknown");
        if (ig_json_str(meta, "utm_source")) {
                const char *param = NULL, *click = NULL;
                for (size_t i = 0; i < 4 && !click; i++)
                        if (ig_json_str(meta, clicks[i])) {
                                param = clicks[i];
                                click = ig_json_str(meta, clicks[i]);
                        }
                ig_touch_from_utm(&o.touches[0], o.placed_ms,
                                  ig_json_str(meta, "utm_source"),
                                  ig_json_str(meta, "utm_medium"),
                                  ig_json_str(meta, "utm_campaign"), param,
                                  click);
                o.n_touches = 1;
        }
        if (o.order_id)
                ig_rec_order(out, job, &o);
}

/* When customer id was created: from what the customers stream noted, or
 * one list call around the charge (webhooks). -1 when unknown. */
static int64_t stripe_customer_created(ig_job_t *job, const char *cus,
                                       int64_t around_s, bool ask) {
        const char *keys[1] = {cus};
        bool found = false;
        int64_t created = -1;
        char url[800];
        json_t *list = NULL, *item;
        size_t i;
        if (ig_aux_get(job->st, job->connection_id, "cus", keys, 1, &found,
                       &created, NULL) == IG_OK &&
            found)
                return created;
        if (!ask)
                return -1;
        snprintf(url, sizeof(url),
                 "%s/v1/customers?limit=100&created%%5Bgte%%5D=%lld&created%%"
                 "5Blte%%5D=%lld",
                 job->ps->api_url, (long long)(around_s - STRIPE_NEW_WINDOW_S),
                 (long long)(around_s + STRIPE_NEW_WINDOW_S));
        if (stripe_get(job, url, "/v1/customers", &list))
                return -1;
        json_array_foreach(json_object_get(list, "data"), i, item) {
                if (ig_json_str(item, "id") &&
                    strcmp(ig_json_str(item, "id"), cus) == 0)
                        created = ig_json_int(item, "created", -1);
        }
        json_decref(list);
        return created;
}

static bool stripe_is_new(int64_t cus_created, int64_t charge_created) {
        int64_t d = cus_created - charge_created;
        return cus_created >= 0 && d <= STRIPE_NEW_WINDOW_S &&
               d >= -STRIPE_NEW_WINDOW_S;
}

/* ---------------------------------------------------------------------------
 * Streams
 * ------------------------------------------------------------------------ */

/* One page of a list over the window: *list the answer; the cursor moves
 * to its last item. */
static ig_err_t stripe_list(ig_page_t *pg, const char *path, json_t **list) {
        ig_job_t *job = pg->job;
        const char *after = ig_json_str(pg->cursor, "after");
        int64_t lo = ig_day_start_ms(pg->since) / 1000;
        int64_t hi = ig_day_start_ms(pg->until + 1) / 1000;
        char url[900], *enc = NULL;
        json_t *data, *last;
        ig_err_t err;

        if (after)
                enc = ig_urlencode(after);
        snprintf(url, sizeof(url),
                 "%s%s?limit=" STRIPE_PAGE
                 "&created%%5Bgte%%5D=%lld&created%%5Blt%%5D=%lld%s%s",
                 job->ps->api_url, path, (long long)lo, (long long)hi,
                 enc ? "&starting_after=" : "", enc ? enc : "");
        free(enc);
        if ((err = stripe_get(job, url, path, list)))
                return err;
        data = json_object_get(*list, "data");
        if (!json_is_array(data)) {
                json_decref(*list);
                *list = NULL;
                ig_job_error(job, "a list without data");
                return IG_PROVIDER;
        }
        last = json_array_get(data, json_array_size(data) - 1);
        pg->done = !json_is_true(json_object_get(*list, "has_more")) ||
                   !ig_json_str(last, "id");
        if (!pg->done)
                json_object_set_new(pg->cursor, "after",
                                    json_string(ig_json_str(last, "id")));
        return IG_OK;
}

static ig_err_t stripe_customers(ig_page_t *pg) {
        ig_aux_item_t items[100];
        json_t *list = NULL, *c;
        size_t i, n = 0;
        ig_err_t err = stripe_list(pg, "/v1/customers", &list);
        if (err)
                return err;
        json_array_foreach(json_object_get(list, "data"), i, c) {
                if (n < 100 && ig_json_str(c, "id")) {
                        items[n].key = ig_json_str(c, "id");
                        items[n].i = ig_json_int(c, "created", 0);
                        items[n].s = NULL;
                        n++;
                }
        }
        err = ig_aux_put(pg->job->st, pg->job->connection_id, "cus", items, n);
        json_decref(list);
        return err;
}

static ig_err_t stripe_charges(ig_page_t *pg) {
        const char *keys[100];
        bool found[100];
        int64_t created[100];
        json_t *list = NULL, *ch;
        size_t i, n = 0;
        ig_err_t err = stripe_list(pg, "/v1/charges", &list);
        if (err)
                return err;
        json_array_foreach(json_object_get(list, "data"), i, ch) {
                if (n < 100)
                        keys[n++] = ig_json_str(ch, "customer")
                                            ? ig_json_str(ch, "customer")
                                            : "";
        }
        if ((err = ig_aux_get(pg->job->st, pg->job->connection_id, "cus", keys,
                              n, found, created, NULL))) {
                json_decref(list);
                return err;
        }
        json_array_foreach(json_object_get(list, "data"), i, ch) {
                if (i >= 100)
                        break;
                stripe_order(pg->job, ch,
                             found[i] && stripe_is_new(
                                                 created[i],
                                                 ig_json_int(ch, "created", 0)),
                             pg->out);
        }
        json_decref(list);
        return IG_OK;
}

static ig_err_t stripe_refunds(ig_page_t *pg) {
        ig_job_t *job = pg->job;
        int64_t lo = ig_day_start_ms(pg->since) / 1000;
        json_t *list = NULL, *r;
        size_t i;
        ig_err_t err = stripe_list(pg, "/v1/refunds", &list);
        if (err)
                return err;
        json_array_foreach(json_object_get(list, "data"), i, r) {
                const char *charge = ig_json_str(r, "charge");
                char url[600], *enc;
                json_t *ch = NULL;
                int64_t cus;
                if (!charge)
                        continue;
                enc = ig_urlencode(charge);
                snprintf(url, sizeof(url), "%s/v1/charges/%s", job->ps->api_url,
                         enc);
                free(enc);
                if ((err = stripe_get(job, url, "/v1/charges/{id}", &ch)))
                        break;
                /* Charges of the window went out with the charges stream. */
                if (ig_json_int(ch, "created", 0) < lo) {
                        cus = ig_json_str(ch, "customer")
                                      ? stripe_customer_created(
                                                job,
                                                ig_json_str(ch, "customer"),
                                                ig_json_int(ch, "created", 0),
                                                false)
                                      : -1;
                        stripe_order(
                                job, ch,
                                stripe_is_new(cus,
                                              ig_json_int(ch, "created", 0)),
                                pg->out);
                }
                json_decref(ch);
        }
        json_decref(list);
        return err;
}

static const ig_stream_t stripe_streams[] = {
        {"customers", stripe_customers},
        {"orders", stripe_charges},
        {"refunds", stripe_refunds},
};

/* ---------------------------------------------------------------------------
 * Webhooks
 * ------------------------------------------------------------------------ */

static ig_err_t stripe_hook_verify(ig_hook_t *h) {
        const char *secret = h->ps->webhook_secret;
        slice_t sig = ig_hook_field(h, "stripe_signature");
        char hdr[1100], *save = NULL, *part, expect[65];
        unsigned char mac[32];
        unsigned int mlen = 0;
        int64_t t = -1;
        bool ok = false;
        json_error_t je;
        json_t *ev, *obj;
        const char *type, *id, *account;
        if (!secret[0]) {
                snprintf(h->error, sizeof(h->error),
                         "the Stripe webhook secret is not configured");
                return IG_NOT_CONFIGURED;
        }
        if (!sig.ptr || sig.len >= sizeof(hdr)) {
                snprintf(h->error, sizeof(h->error), "no Stripe-Signature");
                return IG_AUTH;
        }
        ig_copy_slice(hdr, sizeof(hdr), sig);
        for (part = strtok_r(hdr, ",", &save); part;
             part = strtok_r(NULL, ",", &save))
                if (strncmp(part, "t=", 2) == 0)
                        t = strtoll(part + 2, NULL, 10);
        if (t < 0) {
                snprintf(h->error, sizeof(h->error), "no timestamp");
                return IG_AUTH;
        }
        {
                char ts[24];
                unsigned char *msg;
                size_t n =
                        (size_t)snprintf(ts, sizeof(ts), "%lld.", (long long)t);
                msg = xmalloc(n + h->body.len + 1);
                memcpy(msg, ts, n);
                if (h->body.len)
                        memcpy(msg + n, h->body.ptr, h->body.len);
                HMAC(EVP_sha256(), secret, (int)strlen(secret), msg,
                     n + h->body.len, mac, &mlen);
                free(msg);
                ig_hex(mac, 32, expect);
        }
        ig_copy_slice(hdr, sizeof(hdr), sig);
        for (part = strtok_r(hdr, ",", &save); part;
             part = strtok_r(NULL, ",", &save))
                if (strncmp(part, "v1=", 3) == 0 &&
                    ig_equal(part + 3, strlen(part + 3), expect, 64))
                        ok = true;
        if (!ok) {
                snprintf(h->error, sizeof(h->error), "signature mismatch");
                return IG_AUTH;
        }
        if (t * 1000 < h->now_ms - (int64_t)h->st->set->webhook_tolerance_s *
                                           1000 ||
            t * 1000 > h->now_ms + (int64_t)h->st->set->webhook_tolerance_s *
                                           1000) {
                snprintf(h->error, sizeof(h->error),
                         "timestamp outside the tolerance");
                return IG_AUTH;
        }
        ev = json_loadb(h->body.ptr, h->body.len, 0, &je);
        type = ig_json_str(ev, "type");
        id = ig_json_str(ev, "id");
        account = ig_json_str(ev, "account");
        obj = ig_json_path(ev, "data", "object", NULL);
        if (!json_is_object(ev) || !type || !id) {
                json_decref(ev);
                snprintf(h->error, sizeof(h->error), "not a Stripe event");
                return IG_BAD_INPUT;
        }
        if (account && strncmp(type, "charge.", 7) == 0 && json_is_object(obj))
                ig_hook_add(h, id, account, IG_HOOK_RECORD, json_incref(obj));
        else if (account)
                ig_hook_add(h, id, account, IG_HOOK_SYNC, NULL);
        json_decref(ev);
        return IG_OK;
}

static void stripe_hook_record(ig_job_t *job, const ig_hook_item_t *item,
                               ig_records_t *out) {
        const char *cus = ig_json_str(item->payload, "customer");
        int64_t created = ig_json_int(item->payload, "created", 0);
        int64_t cus_created =
                cus ? stripe_customer_created(job, cus, created, true) : -1;
        stripe_order(job, item->payload, stripe_is_new(cus_created, created),
                     out);
}

const ig_connector_t ig_stripe = {
        .id = IG_STRIPE,
        .auth = IG_AUTH_KEY,
        .check_key = stripe_check_key,
        .classify = stripe_classify,
        .streams = stripe_streams,
        .n_streams = sizeof(stripe_streams) / sizeof(stripe_streams[0]),
        .hook_verify = stripe_hook_verify,
        .hook_record = stripe_hook_record,
};
