/*
 * p_shopify.c - Shopify.
 *
 * Auth: OAuth authorization code per shop ({shop}.myshopify.com, from a
 * base URL template). The callback's hmac (hex HMAC-SHA256 of the other
 * query parameters, sorted, under the app's secret) is checked before the
 * code is used, and its shop must be the one the state was made for.
 * Expiring offline tokens (expiring=1): an hour of access, a refresh token
 * that rotates on each use (grant_type=refresh_token); header
 * X-Shopify-Access-Token. No revocation endpoint is used.
 *
 * Data: the GraphQL Admin API. Orders updated in the window, sorted by
 * UPDATED_AT, 15 a page with up to 10 line items each (a requested cost
 * near 700 of the 1,000 a query may cost) and pageInfo.endCursor. Limits:
 * the calculated-cost bucket (2,000 points, 100 restored a second per app
 * and shop): each query reserves its requested cost in the pacer, and the
 * throttleStatus every answer carries sets the bucket's level (Shopify
 * refunds what a query did not use). A THROTTLED answer (HTTP 200 with
 * errors[].extensions.code) waits what throttleStatus says.
 *
 * Webhooks: X-Shopify-Hmac-Sha256 = base64 HMAC-SHA256 of the raw body
 * under the app's secret; orders/create and orders/updated carry the REST
 * order (published as it is), app/uninstalled kills the credentials; the
 * shop is X-Shopify-Shop-Domain, the event X-Shopify-Event-Id.
 *
 * The same order read by a sync (GraphQL) and by a webhook (REST) is
 * normalised to the same values, so both publish the same id: order_id is
 * the legacy resource id, touchpoints are timed at the order (REST has no
 * visit time) with the UTM parameters and click id of the landing page.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "connector.h"
#include "log.h"
#include "msgid.h"
#include "oauth.h"
#include "pacer.h"
#include "vault.h"

#define SHOPIFY_PAGE 15
#define SHOPIFY_LINES 10
#define SHOPIFY_COST 700 /* what a page asks at most, by the cost rules */
#define SHOPIFY_BUCKET 2000
#define SHOPIFY_RESTORE 100
#define SHOPIFY_NEW_WINDOW_MS (600 * 1000)

/* The shop's base URL: the template with {shop} replaced by the shop's
 * subdomain ("acme" of acme.myshopify.com). */
static void shop_base(const ig_job_t *job, const char *shop, char *out,
                      size_t size) {
        const char *tpl = job->ps->api_url, *at = strstr(tpl, "{shop}");
        const char *dot = shop ? strchr(shop, '.') : NULL;
        int sub = dot ? (int)(dot - shop) : (int)(shop ? strlen(shop) : 0);
        if (!at)
                snprintf(out, size, "%s", tpl);
        else
                snprintf(out, size, "%.*s%.*s%s", (int)(at - tpl), tpl, sub,
                         shop ? shop : "", at + 6);
}

static char *shopify_authorize_url(ig_job_t *job, const char *redirect_uri,
                                   const char *state, const char *challenge,
                                   const char *shop) {
        const char *names[] = {"client_id", "scope", "redirect_uri", "state"};
        const char *values[] = {job->ps->client_id, job->ps->scopes,
                                redirect_uri, state};
        char base[600];
        (void)challenge;
        shop_base(job, shop, base, sizeof(base));
        return ig_oauth_url(base, "/admin/oauth/authorize", 4, names, values);
}

/* The callback's hmac: hex HMAC-SHA256 of "k=v&..." of every other
 * parameter, sorted by name. */
static bool shopify_callback_hmac_ok(const ig_job_t *job,
                                     const ig_callback_t *cb) {
        const msgpack_object *m = cb->fields;
        const char *names[32];
        char given[130], expect[65], *msg;
        unsigned char mac[32];
        unsigned int mlen = 0;
        size_t n = 0;
        ig_buf_t b = {0};
        bool ok;

        if (!ig_cb_get(cb, "hmac", given, sizeof(given)) || !m ||
            m->type != MSGPACK_OBJECT_MAP)
                return false;
        for (uint32_t i = 0; i < m->via.map.size && n < 32; i++) {
                const msgpack_object *k = &m->via.map.ptr[i].key;
                char key[64];
                if (k->type != MSGPACK_OBJECT_STR)
                        continue;
                ig_copy_slice(key, sizeof(key),
                              (slice_t){k->via.str.ptr, k->via.str.size});
                if (!strcmp(key, "hmac") || !strcmp(key, "signature") ||
                    !strcmp(key, "provider"))
                        continue;
                names[n++] = xstrdup(key);
        }
        for (size_t i = 1; i < n; i++) /* a few names: insertion sort */
                for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0;
                     j--) {
                        const char *t = names[j];
                        names[j] = names[j - 1];
                        names[j - 1] = t;
                }
        for (size_t i = 0; i < n; i++) {
                char v[4200];
                ig_cb_get(cb, names[i], v, sizeof(v));
                ig_buf_printf(&b, "%s%s=%s", i ? "&" : "", names[i], v);
                free((void *)names[i]);
        }
        msg = b.p ? b.p : "";
        HMAC(EVP_sha256(), job->ps->client_secret,
             (int)strlen(job->ps->client_secret), (const unsigned char *)msg,
             strlen(msg), mac, &mlen);
        ig_buf_free(&b);
        ig_hex(mac, 32, expect);
        ok = ig_equal(given, strlen(given), expect, 64);
        return ok;
}

static void shopify_headers(ig_job_t *job, ig_req_t *req) {
        httpc_headers_add(&req->headers, "X-Shopify-Access-Token",
                          job->creds->access_token ? job->creds->access_token
                                                   : "");
        httpc_headers_add(&req->headers, "Content-Type", "application/json");
        httpc_headers_add(&req->headers, "Accept", "application/json");
}

static ig_err_t shopify_classify(ig_job_t *job, const ig_req_t *req,
                                 ig_resp_t *resp) {
        json_t *errors = json_object_get(resp->json, "errors");
        json_t *ts = ig_json_path(resp->json, "extensions", "cost",
                                  "throttleStatus", NULL);
        if (json_is_object(ts) && req->pace_key[0])
                ig_pacer_level(
                        job->st->pacer, req->pace_key,
                        ig_json_num(ts, "restoreRate", SHOPIFY_RESTORE),
                        ig_json_num(ts, "maximumAvailable", SHOPIFY_BUCKET),
                        ig_json_num(ts, "currentlyAvailable", 0));
        if (resp->status == 200 && json_is_array(errors) &&
            json_array_size(errors)) {
                const char *code =
                        ig_json_str(ig_json_path(json_array_get(errors, 0),
                                                 "extensions", NULL),
                                    "code");
                if (code && strcmp(code, "THROTTLED") == 0) {
                        double want = ig_json_num(
                                ig_json_path(resp->json, "extensions", "cost",
                                             NULL),
                                "requestedQueryCost", SHOPIFY_COST);
                        double have = ig_json_num(ts, "currentlyAvailable", 0);
                        double rate =
                                ig_json_num(ts, "restoreRate", SHOPIFY_RESTORE);
                        job->wait_ms =
                                (int64_t)((want - have) / rate * 1000) + 100;
                        ig_job_error(job, "throttled (calculated cost)");
                        return IG_RATE_LIMITED;
                }
                ig_job_error(job, "GraphQL error: %s",
                             code ? code : "(no code)");
                return IG_PROVIDER;
        }
        if (resp->status == 402 || resp->status == 423) {
                ig_job_error(job, "the shop is frozen or locked (HTTP %ld)",
                             resp->status);
                return IG_AUTH;
        }
        return ig_classify_default(job, req, resp);
}

/* POST a GraphQL query with variables (a JSON object, taken); *data its
 * answer's data. */
static ig_err_t shopify_gql(ig_job_t *job, const char *shop, const char *query,
                            json_t *vars, double cost, json_t **data) {
        char base[600], url[800];
        json_t *req_body = json_object(), *out = NULL;
        ig_req_t req = {0};
        char *text;
        ig_err_t err;

        *data = NULL;
        shop_base(job, shop, base, sizeof(base));
        snprintf(url, sizeof(url), "%s/admin/api/%s/graphql.json", base,
                 job->ps->api_version);
        json_object_set_new(req_body, "query", json_string(query));
        json_object_set_new(req_body, "variables", vars ? vars : json_object());
        text = json_dumps(req_body, JSON_COMPACT);
        json_decref(req_body);
        shopify_headers(job, &req);
        req.method = "POST";
        req.url = url;
        req.route = "/admin/api/{version}/graphql.json";
        req.body = slice_of(text);
        snprintf(req.pace_key, sizeof(req.pace_key), "shopify|%s", shop);
        req.rate = SHOPIFY_RESTORE;
        req.burst = SHOPIFY_BUCKET;
        req.cost = cost;
        err = ig_http_object(job, &req, &out);
        free(text);
        if (err)
                return err;
        *data = json_incref(json_object_get(out, "data"));
        json_decref(out);
        if (!json_is_object(*data)) {
                json_decref(*data);
                *data = NULL;
                ig_job_error(job, "GraphQL answered no data");
                return IG_PROVIDER;
        }
        return IG_OK;
}

static ig_err_t shopify_token(ig_job_t *job, const char *shop,
                              const char *const *names,
                              const char *const *values, size_t n,
                              json_t **tok) {
        char base[600], url[800];
        shop_base(job, shop, base, sizeof(base));
        snprintf(url, sizeof(url), "%s/admin/oauth/access_token", base);
        return ig_oauth_post(job, url, "/admin/oauth/access_token",
                             IG_CLIENT_FORM, n, names, values, tok);
}

static ig_err_t shopify_exchange(ig_job_t *job, const ig_callback_t *cb,
                                 const char *redirect_uri, const char *verifier,
                                 const char *shop, ig_grant_t *out) {
        char code[512], given_shop[300], ts[32];
        const char *names[] = {"code", "expiring"};
        const char *values[2];
        json_t *tok = NULL, *data = NULL;
        ig_creds_t *saved = job->creds;
        int64_t t;
        ig_err_t err;
        (void)redirect_uri;
        (void)verifier;

        if (!ig_oauth_code(job, cb, "code", code, sizeof(code)))
                return IG_AUTH;
        if (!shopify_callback_hmac_ok(job, cb)) {
                ig_job_error(job, "the callback's hmac does not match");
                return IG_BAD_INPUT;
        }
        if (!shop || !ig_cb_get(cb, "shop", given_shop, sizeof(given_shop)) ||
            strcmp(given_shop, shop) != 0) {
                ig_job_error(job, "the callback names another shop");
                return IG_BAD_INPUT;
        }
        t = ig_cb_get(cb, "timestamp", ts, sizeof(ts)) ? strtoll(ts, NULL, 10)
                                                       : 0;
        if (llabs((long long)((int64_t)clock_wall_ms() / 1000 - t)) >
            job->st->set->state_ttl_s) {
                ig_job_error(job, "the callback is too old");
                return IG_BAD_INPUT;
        }
        values[0] = code;
        values[1] = "1";
        if ((err = shopify_token(job, shop, names, values, 2, &tok)))
                return err;
        ig_oauth_creds(&out->creds, tok, NULL, NULL);
        json_decref(tok);
        if (!out->creds.access_token) {
                ig_job_error(job, "no access token");
                return IG_PROVIDER;
        }
        job->creds = &out->creds;
        err = shopify_gql(job, shop, "{ shop { name currencyCode } }", NULL, 2,
                          &data);
        job->creds = saved;
        if (err)
                return err;
        ig_grant_add(out, shop,
                     ig_json_str(json_object_get(data, "shop"), "name"),
                     ig_json_str(json_object_get(data, "shop"), "currencyCode"),
                     NULL);
        json_decref(data);
        return IG_OK;
}

static ig_err_t shopify_refresh(ig_job_t *job) {
        char base[600], url[800];
        shop_base(job, job->shop, base, sizeof(base));
        snprintf(url, sizeof(url), "%s/admin/oauth/access_token", base);
        return ig_oauth_refresh(job, url, "/admin/oauth/access_token",
                                IG_CLIENT_FORM);
}

/* ---------------------------------------------------------------------------
 * Orders
 * ------------------------------------------------------------------------ */

static const char *const shopify_clicks[] = {"gclid", "fbclid", "ttclid",
                                             "li_fat_id"};

/* A touchpoint at the order from a landing URL (path or URL) and UTM
 * values; bufs hold the strings it points to. */
typedef struct shop_touch_bufs {
        char src[128], med[128], camp[256], click[256];
} shop_touch_bufs_t;

static bool shop_touch(ig_touch_t *t, shop_touch_bufs_t *b, int64_t at,
                       const char *landing, const char *src, const char *med,
                       const char *camp) {
        const char *param = NULL, *click = NULL;
        if (landing) {
                if (!src &&
                    ig_url_param(landing, "utm_source", b->src, sizeof(b->src)))
                        src = b->src;
                if (!med &&
                    ig_url_param(landing, "utm_medium", b->med, sizeof(b->med)))
                        med = b->med;
                if (!camp && ig_url_param(landing, "utm_campaign", b->camp,
                                          sizeof(b->camp)))
                        camp = b->camp;
                for (size_t i = 0; i < 4 && !click; i++)
                        if (ig_url_param(landing, shopify_clicks[i], b->click,
                                         sizeof(b->click))) {
                                param = shopify_clicks[i];
                                click = b->click;
                        }
        }
        if (!src || !*src)
                return false;
        ig_touch_from_utm(t, at, src, med, camp, param, click);
        return true;
}

static void lower_status(const char *in, char *out, size_t size) {
        size_t i = 0;
        for (; in && in[i] && i + 1 < size; i++)
                out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] + 32
                                                             : in[i]);
        out[i] = '\0';
}

static int64_t money_of(const json_t *bag, const char *cur) {
        int64_t v = 0;
        const char *amount =
                ig_json_str(ig_json_path(bag, "shopMoney", NULL), "amount");
        if (!amount)
                amount = ig_json_str(bag, "amount");
        ig_money_parse(amount, cur, &v);
        return v;
}

/* One GraphQL order node as a record. */
static void shopify_gql_order(ig_job_t *job, const json_t *n,
                              ig_records_t *out) {
        const char *cur = ig_json_str(n, "currencyCode");
        const json_t *cust = json_object_get(n, "customer");
        const json_t *journey = json_object_get(n, "customerJourneySummary");
        const json_t *visit = json_object_get(journey, "firstVisit");
        char status[48];
        shop_touch_bufs_t tb = {0};
        int64_t cust_ms = 0;
        json_t *li;
        size_t i;
        ig_order_t o;

        memset(&o, 0, sizeof(o));
        if (!cur)
                cur = job->currency ? job->currency : "USD";
        o.order_id = ig_json_str(n, "legacyResourceId");
        if (!o.order_id ||
            !ig_time_parse(ig_json_str(n, "createdAt"), &o.placed_ms))
                return;
        o.currency = cur;
        o.total_minor = money_of(json_object_get(n, "totalPriceSet"), cur);
        o.subtotal_minor =
                money_of(json_object_get(n, "subtotalPriceSet"), cur);
        o.refunded_minor =
                money_of(json_object_get(n, "totalRefundedSet"), cur);
        o.customer_id = ig_json_str(cust, "legacyResourceId")
                                ? ig_json_str(cust, "legacyResourceId")
                                : "";
        o.new_customer =
                ig_time_parse(ig_json_str(cust, "createdAt"), &cust_ms) &&
                llabs((long long)(cust_ms - o.placed_ms)) <=
                        SHOPIFY_NEW_WINDOW_MS;
        lower_status(ig_json_str(n, "displayFinancialStatus"), status,
                     sizeof(status));
        o.status = status[0] ? status : "unknown";
        json_array_foreach(ig_json_path(n, "lineItems", "nodes", NULL), i, li) {
                if (o.n_lines == IG_MAX_LINES)
                        break;
                o.lines[o.n_lines].sku =
                        ig_json_str(li, "sku") ? ig_json_str(li, "sku") : "";
                o.lines[o.n_lines].name =
                        ig_json_str(li, "name") ? ig_json_str(li, "name") : "";
                o.lines[o.n_lines].quantity = ig_json_int(li, "quantity", 0);
                o.lines[o.n_lines].price_minor = money_of(
                        json_object_get(li, "originalUnitPriceSet"), cur);
                o.n_lines++;
        }
        if (json_is_object(visit)) {
                const json_t *utm = json_object_get(visit, "utmParameters");
                if (shop_touch(&o.touches[0], &tb, o.placed_ms,
                               ig_json_str(visit, "landingPage"),
                               ig_json_str(utm, "source"),
                               ig_json_str(utm, "medium"),
                               ig_json_str(utm, "campaign")))
                        o.n_touches = 1;
        }
        ig_rec_order(out, job, &o);
}

static const char shopify_orders_query[] =
        "query Orders($first: Int!, $after: String, $query: String) {"
        " orders(first: $first, after: $after, query: $query,"
        " sortKey: UPDATED_AT) {"
        " pageInfo { hasNextPage endCursor }"
        " nodes { legacyResourceId createdAt updatedAt currencyCode"
        " displayFinancialStatus"
        " totalPriceSet { shopMoney { amount } }"
        " subtotalPriceSet { shopMoney { amount } }"
        " totalRefundedSet { shopMoney { amount } }"
        " customer { legacyResourceId createdAt }"
        " lineItems(first: 10) { nodes { sku name quantity"
        " originalUnitPriceSet { shopMoney { amount } } } }"
        " customerJourneySummary { firstVisit { landingPage"
        " utmParameters { source medium campaign } } } } } }";

static ig_err_t shopify_orders(ig_page_t *pg) {
        ig_job_t *job = pg->job;
        const char *after = ig_json_str(pg->cursor, "after");
        char q[160], d1[11], d2[11];
        json_t *vars = json_object(), *data = NULL, *conn, *n;
        size_t i;
        ig_err_t err;

        ig_day_format(pg->since, d1);
        ig_day_format(pg->until + 1, d2);
        snprintf(q, sizeof(q),
                 "updated_at:>='%sT00:00:00Z' updated_at:<'%sT00:00:00Z'", d1,
                 d2);
        json_object_set_new(vars, "first", json_integer(SHOPIFY_PAGE));
        json_object_set_new(vars, "query", json_string(q));
        if (after)
                json_object_set_new(vars, "after", json_string(after));
        err = shopify_gql(job, job->shop ? job->shop : job->account_id,
                          shopify_orders_query, vars, SHOPIFY_COST, &data);
        if (err)
                return err;
        conn = json_object_get(data, "orders");
        json_array_foreach(json_object_get(conn, "nodes"), i, n)
                shopify_gql_order(job, n, pg->out);
        pg->done = !json_is_true(ig_json_path(conn, "pageInfo", "hasNextPage",
                                              NULL)) ||
                   !ig_json_str(json_object_get(conn, "pageInfo"), "endCursor");
        if (!pg->done)
                json_object_set_new(pg->cursor, "after",
                                    json_string(ig_json_str(
                                            json_object_get(conn, "pageInfo"),
                                            "endCursor")));
        json_decref(data);
        return IG_OK;
}

static const ig_stream_t shopify_streams[] = {
        {"orders", shopify_orders},
};

/* ---------------------------------------------------------------------------
 * Webhooks
 * ------------------------------------------------------------------------ */

static ig_err_t shopify_hook_verify(ig_hook_t *h) {
        const char *secret = h->ps->client_secret;
        slice_t sig = ig_hook_field(h, "shopify_hmac");
        slice_t topic = ig_hook_field(h, "shopify_topic");
        slice_t shop = ig_hook_field(h, "shopify_shop");
        slice_t ev = ig_hook_field(h, "shopify_event_id");
        char shop_s[300], ev_s[200], topic_s[64], *expect;
        unsigned char mac[32];
        unsigned int mlen = 0;
        json_error_t je;
        json_t *body;

        if (!secret[0]) {
                snprintf(h->error, sizeof(h->error),
                         "the Shopify app secret is not configured");
                return IG_NOT_CONFIGURED;
        }
        if (!sig.ptr) {
                snprintf(h->error, sizeof(h->error),
                         "no X-Shopify-Hmac-Sha256");
                return IG_AUTH;
        }
        HMAC(EVP_sha256(), secret, (int)strlen(secret),
             (const unsigned char *)h->body.ptr, h->body.len, mac, &mlen);
        expect = ig_b64(mac, 32);
        if (!ig_equal(sig.ptr, sig.len, expect, strlen(expect))) {
                free(expect);
                snprintf(h->error, sizeof(h->error), "signature mismatch");
                return IG_AUTH;
        }
        free(expect);
        if (!ev.ptr)
                ev = ig_hook_field(h, "shopify_webhook_id");
        ig_copy_slice(shop_s, sizeof(shop_s), shop);
        ig_copy_slice(ev_s, sizeof(ev_s), ev);
        ig_copy_slice(topic_s, sizeof(topic_s), topic);
        body = json_loadb(h->body.ptr, h->body.len, 0, &je);
        if (!json_is_object(body) || !shop_s[0] || !ev_s[0]) {
                json_decref(body);
                snprintf(h->error, sizeof(h->error),
                         "not a Shopify webhook (body, shop or event id)");
                return IG_BAD_INPUT;
        }
        if (strcmp(topic_s, "app/uninstalled") == 0)
                ig_hook_add(h, ev_s, shop_s, IG_HOOK_GONE, NULL);
        else if (strncmp(topic_s, "orders/", 7) == 0)
                ig_hook_add(h, ev_s, shop_s, IG_HOOK_RECORD, json_incref(body));
        else
                ig_hook_add(h, ev_s, shop_s, IG_HOOK_SYNC, NULL);
        json_decref(body);
        return IG_OK;
}

/* A REST order (webhooks) as the same record a sync makes. */
static void shopify_hook_record(ig_job_t *job, const ig_hook_item_t *item,
                                ig_records_t *out) {
        const json_t *r = item->payload;
        const char *cur = ig_json_str(r, "currency");
        const json_t *cust = json_object_get(r, "customer");
        shop_touch_bufs_t tb = {0};
        char id[32], cid[32], status[48];
        int64_t cust_ms = 0;
        json_t *li, *rf, *tx;
        size_t i, k;
        ig_order_t o;

        memset(&o, 0, sizeof(o));
        if (!cur)
                cur = job->currency ? job->currency : "USD";
        snprintf(id, sizeof(id), "%lld", (long long)ig_json_int(r, "id", 0));
        if (!ig_json_int(r, "id", 0) ||
            !ig_time_parse(ig_json_str(r, "created_at"), &o.placed_ms))
                return;
        o.order_id = id;
        o.currency = cur;
        ig_money_parse(ig_json_str(r, "total_price"), cur, &o.total_minor);
        ig_money_parse(ig_json_str(r, "subtotal_price"), cur,
                       &o.subtotal_minor);
        json_array_foreach(json_object_get(r, "refunds"), i, rf) {
                json_array_foreach(json_object_get(rf, "transactions"), k, tx) {
                        int64_t a = 0;
                        if (ig_money_parse(ig_json_str(tx, "amount"), cur, &a))
                                o.refunded_minor += a;
                }
        }
        snprintf(cid, sizeof(cid), "%lld",
                 (long long)ig_json_int(cust, "id", 0));
        o.customer_id = ig_json_int(cust, "id", 0) ? cid : "";
        o.new_customer =
                ig_time_parse(ig_json_str(cust, "created_at"), &cust_ms) &&
                llabs((long long)(cust_ms - o.placed_ms)) <=
                        SHOPIFY_NEW_WINDOW_MS;
        lower_status(ig_json_str(r, "financial_status"), status,
                     sizeof(status));
        o.status = status[0] ? status : "unknown";
        json_array_foreach(json_object_get(r, "line_items"), i, li) {
                if (o.n_lines == IG_MAX_LINES)
                        break;
                o.lines[o.n_lines].sku =
                        ig_json_str(li, "sku") ? ig_json_str(li, "sku") : "";
                o.lines[o.n_lines].name = ig_json_str(li, "title")
                                                  ? ig_json_str(li, "title")
                                                  : "";
                o.lines[o.n_lines].quantity = ig_json_int(li, "quantity", 0);
                ig_money_parse(ig_json_str(li, "price"), cur,
                               &o.lines[o.n_lines].price_minor);
                o.n_lines++;
        }
        if (shop_touch(&o.touches[0], &tb, o.placed_ms,
                       ig_json_str(r, "landing_site"), NULL, NULL, NULL))
                o.n_touches = 1;
        ig_rec_order(out, job, &o);
}

const ig_connector_t ig_shopify = {
        .id = IG_SHOPIFY,
        .auth = IG_AUTH_OAUTH,
        .authorize_url = shopify_authorize_url,
        .exchange = shopify_exchange,
        .refresh = shopify_refresh,
        .classify = shopify_classify,
        .streams = shopify_streams,
        .n_streams = sizeof(shopify_streams) / sizeof(shopify_streams[0]),
        .hook_verify = shopify_hook_verify,
        .hook_record = shopify_hook_record,
};
