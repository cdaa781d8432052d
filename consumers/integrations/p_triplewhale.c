/*
 * p_triplewhale.c - TripleWhale.
 *
 * Auth: an API key (x-api-key) checked with GET /api/v2/users/api-keys/me,
 * whose shops must include the one connected (or "*").
 *
 * Data: the summary page (POST /api/v2/summary-page/get-data with the shop
 * and a period), one day a page over the window: blended ad spend, order
 * revenue, orders and new customers, in the shop's currency (major units,
 * as floats).
 *
 * Limits: TripleWhale publishes none; the stand-in's 60 a minute per key
 * with 429 + Retry-After: paced at 0.9/s with a burst of 5 (at most 59 a
 * minute). No webhooks.
 */
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "connector.h"
#include "log.h"
#include "msgid.h"

static void tw_req(ig_job_t *job, ig_req_t *req, const char *key,
                   const char *url, const char *route) {
        unsigned char d[SHA256_DIGEST_LENGTH];
        char hex[17];
        memset(req, 0, sizeof(*req));
        httpc_headers_add(&req->headers, "x-api-key", key ? key : "");
        httpc_headers_add(&req->headers, "Accept", "application/json");
        req->url = url;
        req->route = route;
        if (key) {
                SHA256((const unsigned char *)key, strlen(key), d);
                ig_hex(d, 8, hex);
                snprintf(req->pace_key, sizeof(req->pace_key), "triplewhale|%s",
                         hex);
                req->rate = 0.9;
                req->burst = 5;
        }
        (void)job;
}

static ig_err_t tw_check_key(ig_job_t *job, const char *key, const char *shop,
                             ig_grant_t *out) {
        char url[600];
        ig_req_t req;
        json_t *me = NULL, *s;
        bool allowed = false;
        size_t i;
        ig_err_t err;
        snprintf(url, sizeof(url), "%s/api/v2/users/api-keys/me",
                 job->ps->api_url);
        tw_req(job, &req, key, url, "/api/v2/users/api-keys/me");
        if ((err = ig_http_object(job, &req, &me)))
                return err;
        json_array_foreach(json_object_get(me, "shops"), i, s) {
                const char *v = json_string_value(s);
                if (v && (strcmp(v, "*") == 0 || strcmp(v, shop) == 0))
                        allowed = true;
        }
        json_decref(me);
        if (!allowed) {
                ig_job_error(job, "the key does not reach this shop");
                return IG_REFUSED;
        }
        ig_grant_add(out, shop, shop, NULL, NULL);
        return IG_OK;
}

/* A metric's current value from the summary's list. */
static double tw_metric(const json_t *metrics, const char *id) {
        json_t *m;
        size_t i;
        json_array_foreach(metrics, i, m) {
                const char *mid = ig_json_str(m, "id");
                if (mid && strcmp(mid, id) == 0)
                        return ig_json_num(json_object_get(m, "values"),
                                           "current", 0);
        }
        return 0;
}

static ig_err_t tw_summary(ig_page_t *pg) {
        ig_job_t *job = pg->job;
        const char *day_s = ig_json_str(pg->cursor, "day");
        ig_day_t day = pg->since;
        char url[600], d[11], *text;
        json_t *body, *ans = NULL, *metrics;
        const char *cur;
        ig_summary_t s;
        ig_req_t req;
        ig_err_t err;

        if (day_s)
                ig_day_parse(day_s, strlen(day_s), &day);
        ig_day_format(day, d);
        body = json_pack("{s:s, s:{s:s, s:s}}", "shopDomain",
                         job->shop ? job->shop : job->account_id, "period",
                         "start", d, "end", d);
        text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        snprintf(url, sizeof(url), "%s/api/v2/summary-page/get-data",
                 job->ps->api_url);
        tw_req(job, &req, job->creds->api_key, url,
               "/api/v2/summary-page/get-data");
        httpc_headers_add(&req.headers, "Content-Type", "application/json");
        req.method = "POST";
        req.body = slice_of(text);
        err = ig_http_object(job, &req, &ans);
        free(text);
        if (err)
                return err;
        metrics = json_object_get(ans, "metrics");
        cur = ig_json_str(ans, "currency");
        if (!cur)
                cur = job->currency ? job->currency : "USD";
        memset(&s, 0, sizeof(s));
        s.day = day;
        s.currency = cur;
        s.spend_minor =
                ig_money_from_double(tw_metric(metrics, "blendedAds"), cur);
        s.revenue_minor =
                ig_money_from_double(tw_metric(metrics, "sales"), cur);
        s.orders = (int64_t)(tw_metric(metrics, "orders") + 0.5);
        s.new_customers = (int64_t)(tw_metric(metrics, "newCustomers") + 0.5);
        ig_rec_summary(pg->out, job, &s);
        json_decref(ans);
        if (day < pg->until) {
                char next[11];
                ig_day_format(day + 1, next);
                json_object_set_new(pg->cursor, "day", json_string(next));
        } else {
                pg->done = true;
        }
        return IG_OK;
}

static const ig_stream_t tw_streams[] = {
        {"summary", tw_summary},
};

const ig_connector_t ig_triplewhale = {
        .id = IG_TRIPLEWHALE,
        .auth = IG_AUTH_KEY,
        .check_key = tw_check_key,
        .streams = tw_streams,
        .n_streams = 1,
};
