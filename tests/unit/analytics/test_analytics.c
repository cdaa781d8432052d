/*
 * test_analytics.c - the analytics group's handlers through the handler
 * harness against the real store (no broker): projections folded from
 * events (last writer wins, any order), the metrics query model and its
 * refusals, the dashboard against figures computed here from the same
 * events (two currencies, comparison periods), the attribution models on
 * hand-made journeys, tenants kept apart, days closing, insights.
 *
 * Needs the store of compose/local/infra (OMNIFY_MONGO_URI); exits 77
 * (skipped) when it is unreachable. Each run uses a database prefix of its
 * own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caltime.h"
#include "config.h"
#include "harness.h"
#include "log.h"
#include "mail.h"
#include "msgid.h"
#include "registry.h"

extern const config_table_t analytics_settings;

typedef struct {
        config_t cfg;
        harness_t *h;
} fixture_t;

static fixture_t fx;

static const char *env_of(const char *name) {
        return getenv(name);
}

/* A fresh tenant id per test: tests share the group's database. */
static void new_tenant(char out[MSGID_TEXT_SIZE]) {
        msgid_t id;
        msgid_new(&id);
        msgid_format(&id, out);
}

/* ---------------------------------------------------------------------------
 * Events and commands
 * ------------------------------------------------------------------------ */

static void ad(const char *tenant, const char *provider, const char *account,
               const char *campaign, const char *day, const char *currency,
               long spend, long impressions, long clicks, double conversions,
               long value, long observed) {
        char json[1024];
        snprintf(json, sizeof(json),
                 "{\"provider\":\"%s\",\"account_id\":\"%s\","
                 "\"campaign_id\":\"%s\",\"campaign_name\":\"Camp %s\","
                 "\"day\":\"%s\",\"currency\":\"%s\",\"spend_minor\":%ld,"
                 "\"impressions\":%ld,\"clicks\":%ld,\"conversions\":%.17g,"
                 "\"conversion_value_minor\":%ld,\"observed_ms\":%ld}",
                 provider, account, campaign, campaign, day, currency, spend,
                 impressions, clicks, conversions, value, observed);
        assert_int_equal(harness_event(fx.h, "integrations.ad_metrics.recorded",
                                       json, tenant),
                         0);
}

static void order(const char *tenant, const char *id, const char *day,
                  const char *currency, long total, long refunded, bool fresh,
                  const char *touchpoints) {
        char json[4096];
        snprintf(json, sizeof(json),
                 "{\"provider\":\"shopify\",\"account_id\":\"shop1\","
                 "\"order_id\":\"%s\",\"placed_at\":\"%sT12:00:00Z\","
                 "\"day\":\"%s\",\"currency\":\"%s\",\"total_minor\":%ld,"
                 "\"subtotal_minor\":%ld,\"refunded_minor\":%ld,"
                 "\"customer_id\":\"cust-%s\",\"new_customer\":%s,"
                 "\"status\":\"paid\",\"line_items\":[{\"sku\":\"A\","
                 "\"name\":\"a\",\"quantity\":2,\"price_minor\":100}],"
                 "\"touchpoints\":%s,\"observed_ms\":1000}",
                 id, day, day, currency, total, total, refunded, id,
                 fresh ? "true" : "false", touchpoints ? touchpoints : "[]");
        assert_int_equal(harness_event(fx.h, "integrations.order.recorded",
                                       json, tenant),
                         0);
}

/* Run a command as an owner of tenant; the reply parsed. */
static json_t *cmd(const char *type, const char *body, const char *tenant,
                   int *status) {
        harness_caller_t who = {tenant, "user-1", "owner"};
        const harness_msg_t *r;
        json_t *j;
        *status = harness_command(fx.h, type, body, &who);
        r = harness_reply(fx.h);
        assert_non_null(r);
        j = json_loads(r->json, 0, NULL);
        if (!j)
                fail_msg("reply is not JSON: %s", r->json);
        return j;
}

static json_int_t jint(const json_t *o, const char *key) {
        const json_t *v = json_object_get(o, key);
        if (!json_is_integer(v))
                fail_msg("%s is not an integer", key);
        return json_integer_value(v);
}

static double jnum(const json_t *o, const char *key) {
        const json_t *v = json_object_get(o, key);
        if (!json_is_number(v))
                fail_msg("%s is not a number", key);
        return json_number_value(v);
}

/* The row of rows whose field key equals value (and currency). */
static json_t *row(json_t *rows, const char *currency, const char *key,
                   const char *value) {
        size_t i;
        json_t *r;
        json_array_foreach(rows, i, r) {
                const char *c =
                        json_string_value(json_object_get(r, "currency"));
                const char *v =
                        key ? json_string_value(json_object_get(r, key)) : NULL;
                if (c && strcmp(c, currency) == 0 &&
                    (!key || (v && strcmp(v, value) == 0)))
                        return r;
        }
        fail_msg("no row %s %s=%s", currency, key ? key : "",
                 value ? value : "");
        return NULL;
}

/* ---------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------ */

static void test_last_writer_wins_in_any_order(void **state) {
        char t[MSGID_TEXT_SIZE];
        int status;
        json_t *j, *r;
        (void)state;
        new_tenant(t);
        /* Newest first, then an older version, then the same again. */
        ad(t, "google_ads", "a1", "c1", "2025-03-01", "USD", 1500, 1000, 30, 3,
           6000, 200);
        ad(t, "google_ads", "a1", "c1", "2025-03-01", "USD", 900, 800, 20, 1,
           2000, 150);
        ad(t, "google_ads", "a1", "c1", "2025-03-01", "USD", 1500, 1000, 30, 3,
           6000, 200);
        ad(t, "google_ads", "a1", "c2", "2025-03-01", "USD", 500, 400, 10, 0.5,
           700, 100);
        ad(t, "meta_ads", "m1", "c3", "2025-03-02", "EUR", 700, 2000, 40, 2,
           2100, 100);
        j = cmd("analytics.metrics",
                "{\"metric\":[\"spend\",\"clicks\",\"roas\",\"cpc\","
                "\"conversions\"],\"group_by\":[\"provider\"],"
                "\"from\":\"2025-03-01\",\"to\":\"2025-03-31\"}",
                t, &status);
        assert_int_equal(status, 200);
        r = row(json_object_get(j, "rows"), "USD", "provider", "google_ads");
        assert_int_equal(jint(r, "spend"), 2000);
        assert_int_equal(jint(r, "clicks"), 40);
        assert_true(fabs(jnum(r, "roas") - 6700.0 / 2000.0) < 1e-12);
        assert_true(fabs(jnum(r, "cpc") - 2000.0 / 40.0) < 1e-12);
        assert_true(fabs(jnum(r, "conversions") - 3.5) < 1e-12);
        r = row(json_object_get(j, "rows"), "EUR", "provider", "meta_ads");
        assert_int_equal(jint(r, "spend"), 700);
        assert_int_equal(json_array_size(json_object_get(j, "rows")), 2);
        json_decref(j);
}

static void test_unknown_names_are_refused(void **state) {
        char t[MSGID_TEXT_SIZE];
        int status;
        json_t *j, *e;
        (void)state;
        new_tenant(t);
        j = cmd("analytics.metrics", "{\"metric\":[\"spend\",\"nope\"]}", t,
                &status);
        assert_int_equal(status, 400);
        e = json_array_get(json_object_get(j, "errors"), 0);
        assert_string_equal(json_string_value(json_object_get(e, "field")),
                            "metric[1]");
        json_decref(j);
        j = cmd("analytics.metrics",
                "{\"metric\":[\"spend\"],\"group_by\":[\"planet\"]}", t,
                &status);
        assert_int_equal(status, 400);
        e = json_array_get(json_object_get(j, "errors"), 0);
        assert_string_equal(json_string_value(json_object_get(e, "field")),
                            "group_by[0]");
        json_decref(j);
        /* A metric that cannot be grouped so: valid by the schema, refused
         * by a rule across fields (422); the handler names both. */
        j = cmd("analytics.metrics",
                "{\"metric\":[\"mer\"],\"group_by\":[\"campaign\"]}", t,
                &status);
        assert_int_equal(status, 422);
        e = json_array_get(json_object_get(j, "errors"), 0);
        assert_string_equal(json_string_value(json_object_get(e, "field")),
                            "group_by[0]");
        assert_non_null(strstr(json_string_value(json_object_get(e, "reason")),
                               "mer cannot be grouped by campaign"));
        json_decref(j);
}

static void test_tenants_are_kept_apart(void **state) {
        char a[MSGID_TEXT_SIZE], b[MSGID_TEXT_SIZE];
        int status;
        json_t *j;
        (void)state;
        new_tenant(a);
        new_tenant(b);
        ad(a, "google_ads", "a1", "c1", "2025-04-01", "USD", 100, 10, 1, 0, 0,
           1);
        j = cmd("analytics.metrics",
                "{\"metric\":[\"spend\"],\"from\":\"2025-04-01\","
                "\"to\":\"2025-04-01\"}",
                b, &status);
        assert_int_equal(status, 200);
        assert_int_equal(json_array_size(json_object_get(j, "rows")), 0);
        json_decref(j);
        /* No caller: refused. */
        assert_int_equal(harness_command(fx.h, "analytics.metrics",
                                         "{\"metric\":[\"spend\"]}", NULL),
                         401);
}

/* The dashboard against sums made here: USD and GBP, previous period and
 * previous year. */
static void test_dashboard_figures(void **state) {
        char t[MSGID_TEXT_SIZE];
        int status;
        json_t *j, *cur, *k;
        size_t i;
        (void)state;
        new_tenant(t);
        /* Period 2025-05-11..20, previous 05-01..10, a year back
         * 2024-05-11..20. */
        ad(t, "google_ads", "g", "c1", "2025-05-12", "USD", 10000, 50000, 500,
           20, 40000, 1);
        ad(t, "meta_ads", "m", "c2", "2025-05-13", "USD", 5000, 20000, 100, 5,
           8000, 1);
        ad(t, "google_ads", "g", "c1", "2025-05-02", "USD", 8000, 40000, 400,
           16, 24000, 1);
        ad(t, "tiktok_ads", "tk", "c9", "2025-05-14", "GBP", 3000, 9000, 90, 3,
           4500, 1);
        ad(t, "google_ads", "g", "c1", "2024-05-15", "USD", 2000, 1, 1, 1, 1,
           1);
        order(t, "o1", "2025-05-12", "USD", 20000, 0, true, NULL);
        order(t, "o2", "2025-05-15", "USD", 30000, 5000, false, NULL);
        order(t, "o3", "2025-05-03", "USD", 10000, 0, true, NULL);
        order(t, "o4", "2025-05-16", "GBP", 7000, 0, true, NULL);
        j = cmd("analytics.dashboard",
                "{\"from\":\"2025-05-11\",\"to\":\"2025-05-20\"}", t, &status);
        assert_int_equal(status, 200);
        assert_string_equal(json_string_value(json_object_get(
                                    json_object_get(j, "compare"), "from")),
                            "2025-05-01");
        assert_int_equal(json_array_size(json_object_get(j, "currencies")), 2);
        cur = NULL;
        json_array_foreach(json_object_get(j, "currencies"), i, k) {
                if (!strcmp(json_string_value(json_object_get(k, "currency")),
                            "USD"))
                        cur = k;
        }
        assert_non_null(cur);
        k = json_object_get(cur, "kpis");
        /* spend 15000 vs 8000; revenue (net) 20000 + 25000 vs 10000. */
        assert_int_equal(jint(json_object_get(k, "spend"), "value"), 15000);
        assert_int_equal(jint(json_object_get(k, "spend"), "previous"), 8000);
        assert_int_equal(jint(json_object_get(k, "spend"), "delta"), 7000);
        assert_true(fabs(jnum(json_object_get(k, "spend"), "delta_pct") -
                         87.5) < 1e-9);
        assert_int_equal(jint(json_object_get(k, "revenue"), "value"), 45000);
        assert_int_equal(jint(json_object_get(k, "refunds"), "value"), 5000);
        assert_int_equal(jint(json_object_get(k, "orders"), "value"), 2);
        assert_int_equal(jint(json_object_get(k, "new_customers"), "value"), 1);
        assert_int_equal(
                jint(json_object_get(k, "new_customer_revenue"), "value"),
                20000);
        assert_true(fabs(jnum(json_object_get(k, "mer"), "value") -
                         45000.0 / 15000.0) < 1e-12);
        assert_true(fabs(jnum(json_object_get(k, "tw_mer"), "value") -
                         15000.0 / 45000.0) < 1e-12);
        assert_true(fabs(jnum(json_object_get(k, "roas"), "value") -
                         48000.0 / 15000.0) < 1e-12);
        assert_true(fabs(jnum(json_object_get(k, "cpa"), "value") -
                         15000.0 / 25.0) < 1e-12);
        assert_true(fabs(jnum(json_object_get(k, "cac"), "value") - 15000.0) <
                    1e-9);
        assert_true(fabs(jnum(json_object_get(k, "ctr"), "value") -
                         600.0 / 70000.0) < 1e-12);
        assert_true(fabs(jnum(json_object_get(k, "cpm"), "value") -
                         15000.0 * 1000 / 70000.0) < 1e-9);
        assert_true(fabs(jnum(json_object_get(k, "aov"), "value") - 22500.0) <
                    1e-9);
        assert_true(fabs(jnum(json_object_get(k, "mer"), "previous") - 1.25) <
                    1e-12);
        /* Two channels in USD this period, google in the previous one. */
        assert_int_equal(json_array_size(json_object_get(cur, "channels")), 2);
        json_decref(j);
        /* A year back: only the 2024 fact. */
        j = cmd("analytics.dashboard",
                "{\"from\":\"2025-05-11\",\"to\":\"2025-05-20\","
                "\"compare\":\"previous_year\"}",
                t, &status);
        assert_int_equal(status, 200);
        json_array_foreach(json_object_get(j, "currencies"), i, k) {
                if (!strcmp(json_string_value(json_object_get(k, "currency")),
                            "USD"))
                        assert_int_equal(
                                jint(json_object_get(json_object_get(k, "kpis"),
                                                     "spend"),
                                     "previous"),
                                2000);
        }
        json_decref(j);
}

/* One order of 1001 minor units, touched three times: each model's
 * credits, computed here. */
static void test_attribution_models(void **state) {
        char t[MSGID_TEXT_SIZE];
        static const char *const models[] = {"last_click", "first_click",
                                             "linear", "time_decay",
                                             "position_based"};
        /* Touches 10, 3 and 0 days before the order (12:00Z). */
        const char *tp =
                "[{\"at\":\"2025-06-10T12:00:00Z\",\"source\":\"google\","
                "\"medium\":\"cpc\",\"campaign\":\"g1\",\"provider\":"
                "\"google_ads\",\"campaign_id\":\"g1\"},"
                "{\"at\":\"2025-06-17T12:00:00Z\",\"source\":\"klaviyo\","
                "\"medium\":\"email\",\"campaign\":\"news\"},"
                "{\"at\":\"2025-06-20T12:00:00Z\",\"source\":\"facebook\","
                "\"medium\":\"paid\",\"campaign\":\"m1\",\"provider\":"
                "\"meta_ads\",\"campaign_id\":\"m1\"}]";
        const char *channels[3] = {"google_ads", "klaviyo/email", "meta_ads"};
        (void)state;
        new_tenant(t);
        order(t, "j1", "2025-06-20", "USD", 1001, 0, true, tp);
        for (size_t m = 0; m < 5; m++) {
                double w[3], sum = 0, rem[3];
                long got[3], given = 0;
                char body[200];
                int status;
                json_t *j, *cur;
                double ages[3] = {10, 3, 0};
                switch (m) {
                case 0:
                        w[0] = 0, w[1] = 0, w[2] = 1;
                        break;
                case 1:
                        w[0] = 1, w[1] = 0, w[2] = 0;
                        break;
                case 2:
                        w[0] = w[1] = w[2] = 1.0 / 3;
                        break;
                case 3:
                        for (int i = 0; i < 3; i++)
                                sum += w[i] = pow(2.0, -ages[i] / 7.0);
                        for (int i = 0; i < 3; i++)
                                w[i] /= sum;
                        break;
                default:
                        w[0] = 0.4, w[1] = 0.2, w[2] = 0.4;
                }
                for (int i = 0; i < 3; i++) {
                        got[i] = (long)floor(1001 * w[i]);
                        rem[i] = 1001 * w[i] - (double)got[i];
                        given += got[i];
                }
                while (given < 1001) {
                        int best = 0;
                        for (int i = 1; i < 3; i++)
                                if (rem[i] > rem[best] + 1e-12)
                                        best = i;
                        got[best]++;
                        rem[best] = -1;
                        given++;
                }
                snprintf(body, sizeof(body),
                         "{\"model\":\"%s\",\"from\":\"2025-06-20\","
                         "\"to\":\"2025-06-20\"}",
                         models[m]);
                j = cmd("analytics.attribution", body, t, &status);
                assert_int_equal(status, 200);
                cur = json_array_get(json_object_get(j, "currencies"), 0);
                assert_int_equal(jint(cur, "revenue_minor"), 1001);
                for (int i = 0; i < 3; i++) {
                        json_t *r = NULL, *x;
                        size_t k;
                        json_array_foreach(json_object_get(cur, "rows"), k, x) {
                                if (!strcmp(json_string_value(json_object_get(
                                                    x, "channel")),
                                            channels[i]))
                                        r = x;
                        }
                        if (got[i] == 0 && w[i] == 0) {
                                assert_null(r);
                                continue;
                        }
                        if (!r)
                                fail_msg("%s: no row %s", models[m],
                                         channels[i]);
                        assert_int_equal(jint(r, "revenue_minor"), got[i]);
                        assert_true(fabs(jnum(r, "orders") - w[i]) < 1e-12);
                }
                json_decref(j);
        }
}

/* Connections and syncs are UUIDs, as schemas/integrations.json declares. */
#define CONN_ID "0b6f3c52-6a38-4c1e-9d1a-3f1c2e5a7b01"
#define SYNC_ID_1 "5d2e8f10-2b3c-4d5e-8f60-7a8b9c0d1e21"
#define SYNC_ID_2 "5d2e8f10-2b3c-4d5e-8f60-7a8b9c0d1e22"

/* A connected provider that completed a sync closes the days before; a
 * second sync of the same day closes nothing new. */
static void test_days_close(void **state) {
        char t[MSGID_TEXT_SIZE], expect[CALTIME_DATE_SIZE];
        int64_t now = (int64_t)clock_wall_ms();
        (void)state;
        new_tenant(t);
        assert_int_equal(
                harness_event(fx.h, "integrations.connection.connected",
                              "{\"connection_id\":\"" CONN_ID "\",\"provider\":"
                              "\"google_ads\",\"account_id\":\"g\","
                              "\"account_name\":\"G\"}",
                              t),
                0);
        assert_int_equal(harness_count(fx.h, "analytics.day.closed"), 0);
        assert_int_equal(
                harness_event(fx.h, "integrations.sync.completed",
                              "{\"sync_id\":\"" SYNC_ID_1
                              "\",\"connection_id\":\"" CONN_ID "\","
                              "\"provider\":\"google_ads\",\"account_id\":"
                              "\"g\",\"kind\":"
                              "\"scheduled\",\"records\":10,\"streams\":{},"
                              "\"first_sync\":true}",
                              t),
                0);
        assert_int_equal(harness_count(fx.h, "analytics.day.closed"), 1);
        caltime_format_date(caltime_day_of_ms(now - 12 * 3600000LL) - 1,
                            expect);
        {
                const harness_msg_t *m = harness_output(fx.h, 0);
                json_t *j = json_loads(m->json, 0, NULL);
                assert_string_equal(
                        json_string_value(json_object_get(j, "day")), expect);
                assert_string_equal(
                        json_string_value(json_array_get(
                                json_object_get(j, "providers"), 0)),
                        "google_ads");
                assert_string_equal(m->tenant, t);
                json_decref(j);
        }
        assert_int_equal(
                harness_event(fx.h, "integrations.sync.completed",
                              "{\"sync_id\":\"" SYNC_ID_2
                              "\",\"connection_id\":\"" CONN_ID "\","
                              "\"provider\":\"google_ads\",\"account_id\":"
                              "\"g\",\"kind\":"
                              "\"scheduled\",\"records\":1,\"streams\":{},"
                              "\"first_sync\":false}",
                              t),
                0);
        assert_int_equal(harness_count(fx.h, "analytics.day.closed"), 0);
}

/* A week whose ROAS halved and a budget overspent raise insights when the
 * day closes; the list shows them. */
static void test_insights(void **state) {
        char t[MSGID_TEXT_SIZE], day[CALTIME_DATE_SIZE];
        int64_t closed =
                caltime_day_of_ms((int64_t)clock_wall_ms() - 12 * 3600000LL) -
                1;
        int status;
        json_t *j;
        size_t raised;
        (void)state;
        new_tenant(t);
        for (int64_t d = closed - 13; d <= closed; d++) {
                bool recent = d > closed - 7;
                caltime_format_date(d, day);
                /* ROAS 4 the week before, 2 this week. */
                ad(t, "google_ads", "g", "c1", day, "USD", 100000, 1000, 100,
                   10, recent ? 200000 : 400000, 1);
                ad(t, "meta_ads", "m", "c2", day, "USD", 50000, 1000, 100, 0, 0,
                   1);
        }
        j = cmd("analytics.budgets.set",
                "{\"currency\":\"USD\",\"monthly_minor\":100}", t, &status);
        assert_int_equal(status, 200);
        json_decref(j);
        harness_event(fx.h, "integrations.connection.connected",
                      "{\"connection_id\":\"" CONN_ID
                      "\",\"provider\":\"google_ads\","
                      "\"account_id\":\"g\",\"account_name\":\"G\"}",
                      t);
        harness_event(fx.h, "integrations.sync.completed",
                      "{\"sync_id\":\"" SYNC_ID_1
                      "\",\"connection_id\":\"" CONN_ID "\","
                      "\"provider\":\"google_ads\",\"account_id\":\"g\","
                      "\"kind\":\"scheduled\","
                      "\"records\":1,\"streams\":{},\"first_sync\":true}",
                      t);
        raised = harness_count(fx.h, "analytics.insight.raised");
        assert_true(raised >= 3);
        j = cmd("analytics.insights.list", "{}", t, &status);
        assert_int_equal(status, 200);
        {
                bool roas = false, none = false, pacing = false;
                size_t i;
                json_t *x;
                json_array_foreach(json_object_get(j, "insights"), i, x) {
                        const char *m =
                                json_string_value(json_object_get(x, "module"));
                        json_t *nums = json_object_get(x, "numbers");
                        if (!strcmp(m, "roas_change")) {
                                roas = true;
                                assert_true(fabs(jnum(nums, "change_pct") +
                                                 50.0) < 1e-9);
                        }
                        none = none || !strcmp(m, "spend_no_conversions");
                        pacing = pacing || !strcmp(m, "pacing");
                }
                assert_true(roas && none && pacing);
                assert_int_equal(
                        json_array_size(json_object_get(j, "insights")),
                        raised);
        }
        json_decref(j);
}

static void test_dashboard_view_first(void **state) {
        char t[MSGID_TEXT_SIZE];
        harness_caller_t who;
        const harness_msg_t *m;
        (void)state;
        new_tenant(t);
        who = (harness_caller_t){t, "user-9", "viewer"};
        assert_int_equal(
                harness_command(fx.h, "analytics.dashboard.view", "{}", &who),
                200);
        assert_int_equal(harness_count(fx.h, "analytics.dashboard.viewed"), 1);
        m = harness_output(fx.h, 0);
        assert_non_null(strstr(m->json, "\"first\":true"));
        assert_int_equal(
                harness_command(fx.h, "analytics.dashboard.view", "{}", &who),
                200);
        m = harness_output(fx.h, 0);
        assert_non_null(strstr(m->json, "\"first\":false"));
}

static void test_bad_events_are_refused(void **state) {
        char t[MSGID_TEXT_SIZE];
        (void)state;
        new_tenant(t);
        assert_int_equal(
                harness_event(fx.h, "integrations.ad_metrics.recorded",
                              "{\"provider\":\"google_ads\",\"account_id\":"
                              "\"a\",\"campaign_id\":\"c\",\"day\":"
                              "\"2025-02-30\",\"currency\":\"USD\","
                              "\"spend_minor\":1,\"impressions\":1,"
                              "\"clicks\":1,\"conversions\":1,"
                              "\"conversion_value_minor\":1,"
                              "\"observed_ms\":1}",
                              t),
                0);
        /* Dead-lettered, naming the field. */
        assert_int_equal(harness_outputs(fx.h), 1);
        assert_non_null(
                strstr(harness_output(fx.h, 0)->topic, "analytics.dlq"));
}

/* A report: saved, run (its rows as the metrics query gives them), read
 * back as JSON and as CSV, deleted. */
static void test_reports(void **state) {
        char t[MSGID_TEXT_SIZE], body[512], run_id[64], report_id[64];
        int status;
        json_t *j, *r;
        const harness_msg_t *m;
        harness_caller_t who;
        (void)state;
        new_tenant(t);
        ad(t, "google_ads", "g", "c1", "2025-07-01", "USD", 1000, 100, 10, 1,
           3000, 1);
        ad(t, "google_ads", "g", "c=2", "2025-07-02", "USD", 500, 50, 5, 1, 500,
           1);
        j = cmd("analytics.reports.create",
                "{\"name\":\"July\",\"metrics\":[\"spend\",\"roas\"],"
                "\"group_by\":[\"campaign\"],\"period\":{\"preset\":"
                "\"custom\",\"from\":\"2025-07-01\",\"to\":"
                "\"2025-07-31\"},\"schedule\":{\"every\":\"weekly\","
                "\"recipients\":[\"a@example.com\"]}}",
                t, &status);
        assert_int_equal(status, 201);
        snprintf(report_id, sizeof(report_id), "%s",
                 json_string_value(json_object_get(j, "report_id")));
        assert_int_equal(harness_count(fx.h, "analytics.report.scheduled"), 1);
        json_decref(j);
        snprintf(body, sizeof(body), "{\"report_id\":\"%s\"}", report_id);
        j = cmd("analytics.reports.run", body, t, &status);
        assert_int_equal(status, 201);
        assert_int_equal(jint(j, "rows"), 2);
        assert_int_equal(harness_count(fx.h, "analytics.report.completed"), 1);
        snprintf(run_id, sizeof(run_id), "%s",
                 json_string_value(json_object_get(j, "run_id")));
        json_decref(j);
        snprintf(body, sizeof(body), "{\"report_id\":\"%s\",\"run_id\":\"%s\"}",
                 report_id, run_id);
        j = cmd("analytics.reports.result", body, t, &status);
        assert_int_equal(status, 200);
        r = row(json_object_get(j, "rows"), "USD", "campaign_id", "c1");
        assert_int_equal(jint(r, "spend"), 1000);
        assert_true(fabs(jnum(r, "roas") - 3.0) < 1e-12);
        json_decref(j);
        snprintf(body, sizeof(body),
                 "{\"report_id\":\"%s\",\"run_id\":\"%s\","
                 "\"accept\":\"text/csv\"}",
                 report_id, run_id);
        who = (harness_caller_t){t, "u", "viewer"};
        assert_int_equal(
                harness_command(fx.h, "analytics.reports.result", body, &who),
                200);
        m = harness_reply(fx.h);
        assert_non_null(m->content_type);
        assert_non_null(strstr(m->content_type, "text/csv"));
        assert_non_null(strstr(m->json,
                               "currency,provider,campaign_id,campaign_name,"
                               "spend,roas\r\n"));
        assert_non_null(
                strstr(m->json, "USD,google_ads,c1,Camp c1,1000,3\r\n"));
        /* Its schedule is armed (weekly), and a firing mails the CSV. */
        {
                runtime_t *rt = harness_runtime(fx.h);
                bson_t filter, doc;
                bson_iter_t it;
                char tid[128], err[256];
                int64_t n = 0;
                snprintf(tid, sizeof(tid), "report|%s", report_id);
                bson_init(&filter);
                BSON_APPEND_UTF8(&filter, "_id", tid);
                assert_int_equal(store_find_one(runtime_store(rt),
                                                runtime_db(rt), "timers",
                                                &filter, NULL, &doc, err,
                                                sizeof(err)),
                                 STORE_OK);
                assert_true(bson_iter_init_find(&it, &doc, "every_ms"));
                assert_int_equal(bson_iter_as_int64(&it), 7 * 86400000LL);
                bson_destroy(&doc);
                bson_destroy(&filter);
                char fire[128];
                snprintf(fire, sizeof(fire), "{\"report_id\":\"%s\"}",
                         report_id);
                assert_int_equal(
                        harness_command(fx.h, "analytics.reports.fire", fire,
                                        &(harness_caller_t){t, "u", "member"}),
                        201);
                bson_init(&filter);
                BSON_APPEND_UTF8(&filter, "to", "a@example.com");
                assert_int_equal(store_count(runtime_store(rt), runtime_db(rt),
                                             "report_outbox", &filter, &n, err,
                                             sizeof(err)),
                                 STORE_OK);
                assert_int_equal(n, 1);
                bson_destroy(&filter);
        }
        /* Another tenant sees nothing of it. */
        {
                char other[MSGID_TEXT_SIZE];
                new_tenant(other);
                j = cmd("analytics.reports.result", body, other, &status);
                assert_int_equal(status, 404);
                json_decref(j);
        }
        snprintf(body, sizeof(body), "{\"report_id\":\"%s\"}", report_id);
        assert_int_equal(harness_command(fx.h, "analytics.reports.delete", body,
                                         &(harness_caller_t){t, "u", "member"}),
                         204);
        j = cmd("analytics.reports.get", body, t, &status);
        assert_int_equal(status, 404);
        json_decref(j);
}

/* ---------------------------------------------------------------------------
 * Set-up
 * ------------------------------------------------------------------------ */

static int setup(void **state) {
        char err[512], prefix[32];
        char *argv[] = {"test_analytics", NULL};
        const config_table_t *tables[] = {&analytics_settings, &mail_settings,
                                          NULL};
        msgid_t id;
        (void)state;
        memset(&fx, 0, sizeof(fx));
        if (config_load_tables(&fx.cfg, CONFIG_SCOPE_GROUP, tables,
                               "test_analytics", 1, argv, NULL, env_of, NULL,
                               err, sizeof(err)) != CONFIG_OK)
                fail_msg("config: %s", err);
        msgid_new(&id);
        snprintf(prefix, sizeof(prefix), "ant%02x%02x%02x_", id.b[13], id.b[14],
                 id.b[15]);
        free(fx.cfg.mongo_db_prefix);
        fx.cfg.mongo_db_prefix = strdup(prefix);
        fx.h = harness_new(&group_analytics, &fx.cfg, NULL, err, sizeof(err));
        if (!fx.h) {
                fprintf(stderr, "test_analytics: skipped: %s\n", err);
                exit(77);
        }
        return 0;
}

static int teardown(void **state) {
        (void)state;
        harness_destroy(fx.h);
        config_deinit(&fx.cfg);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_last_writer_wins_in_any_order),
                cmocka_unit_test(test_unknown_names_are_refused),
                cmocka_unit_test(test_tenants_are_kept_apart),
                cmocka_unit_test(test_dashboard_figures),
                cmocka_unit_test(test_attribution_models),
                cmocka_unit_test(test_days_close),
                cmocka_unit_test(test_insights),
                cmocka_unit_test(test_dashboard_view_first),
                cmocka_unit_test(test_bad_events_are_refused),
                cmocka_unit_test(test_reports),
        };
        log_init(getenv("TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR,
                 "test_analytics");
        return cmocka_run_group_tests(tests, setup, teardown);
}
