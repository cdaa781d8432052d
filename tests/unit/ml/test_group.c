/*
 * test_group.c - the ml group's handlers through the handler harness,
 * against the real store (no broker): analytics' answers are given to the
 * group's on_reply as analytics would send them (harness_reply_to), and
 * integrations' events to its feature subscription.
 *
 * Forecasts (created, answered, refused for too little history, a horizon
 * longer than the history, several currencies, bad filters; another
 * tenant's forecast is not found), a refresh and its overview (anomalies
 * found, stored once and published once; pacing; response curves and the
 * what-if), the feature store (last writer wins by observed_ms), lead and
 * churn training (too small says so; a model's version on every answer),
 * model versions.
 *
 * Needs the store of compose/local/infra (OMNIFY_MONGO_URI); exit 77
 * (skipped) when it does not answer. Each run uses a database prefix of
 * its own.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "harness.h"
#include "log.h"
#include "ml_internal.h"
#include "msgid.h"
#include "registry.h"
#include "rng.h"

/* ---------------------------------------------------------------------------
 * Fixture
 * ------------------------------------------------------------------------ */

typedef struct fixture {
        config_t cfg;
        harness_t *h;
} fixture_t;

static fixture_t fx;

static const char *env_of(const char *name) {
        return getenv(name);
}

static const harness_caller_t ann = {"mlt1", "u1", "owner"};
static const harness_caller_t viewer = {"mlt1", "u3", "viewer"};
static const harness_caller_t eve = {"mlt2", "u2", "owner"};

/* A growing text buffer for JSON documents. */
typedef struct sbuf {
        char *p;
        size_t len, cap;
} sbuf_t;

static void sb_add(sbuf_t *b, const char *fmt, ...) {
        va_list ap;
        for (;;) {
                size_t room = b->cap - b->len;
                va_start(ap, fmt);
                int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0,
                                  fmt, ap);
                va_end(ap);
                if (b->p && (size_t)n < room) {
                        b->len += (size_t)n;
                        return;
                }
                b->cap = (b->cap + (size_t)n + 1) * 2;
                b->p = realloc(b->p, b->cap);
                assert_non_null(b->p);
        }
}

static void day_text(int32_t day, char out[ML_DAY_TEXT]) {
        ml_day_format(day, out);
}

/* The output of the last call of type, or NULL. */
static const harness_msg_t *output_of(const char *type, size_t nth) {
        for (size_t i = 0; i < harness_outputs(fx.h); i++) {
                const harness_msg_t *m = harness_output(fx.h, i);
                if (strcmp(m->type, type) == 0 && nth-- == 0)
                        return m;
        }
        return NULL;
}

/* The output of the last call of type whose JSON holds both needles. */
static const harness_msg_t *output_with(const char *type, const char *a,
                                        const char *b) {
        for (size_t i = 0; i < harness_outputs(fx.h); i++) {
                const harness_msg_t *m = harness_output(fx.h, i);
                if (strcmp(m->type, type) == 0 && strstr(m->json, a) &&
                    strstr(m->json, b))
                        return m;
        }
        return NULL;
}

/* A JSON string field's value in json (the first occurrence) into out. */
static bool json_field(const char *json, const char *key, char *out,
                       size_t len) {
        char pat[128];
        const char *p, *e;
        snprintf(pat, sizeof(pat), "\"%s\":\"", key);
        if (!(p = strstr(json, pat)))
                return false;
        p += strlen(pat);
        if (!(e = strchr(p, '"')) || (size_t)(e - p) >= len)
                return false;
        memcpy(out, p, (size_t)(e - p));
        out[e - p] = '\0';
        return true;
}

/* A JSON number field's value in json (the first occurrence). */
static double json_num(const char *json, const char *key) {
        char pat[128];
        const char *p;
        snprintf(pat, sizeof(pat), "\"%s\":", key);
        if (!(p = strstr(json, pat)))
                return NAN;
        return strtod(p + strlen(pat), NULL);
}

/* With ML_TEST_VERBOSE set, the last reply on stderr (to read answers). */
static void show(const char *what) {
        const harness_msg_t *r = harness_reply(fx.h);
        if (getenv("ML_TEST_VERBOSE") && r)
                fprintf(stderr, "--- %s (%d): %s\n", what, r->status, r->json);
}

static size_t count_of(const char *json, const char *needle) {
        size_t n = 0;
        for (const char *p = json; (p = strstr(p, needle)); p++)
                n++;
        return n;
}

static int setup(void **state) {
        char err[512], prefix[32];
        char *argv[] = {"test_ml_group", NULL};
        const config_table_t *tables[] = {&ml_settings, NULL};
        msgid_t id;
        (void)state;
        memset(&fx, 0, sizeof(fx));
        assert_int_equal(config_load_tables(&fx.cfg, CONFIG_SCOPE_GROUP, tables,
                                            "test_ml_group", 1, argv, NULL,
                                            env_of, NULL, err, sizeof(err)),
                         CONFIG_OK);
        log_init((log_level_t)fx.cfg.log_level, "test_ml_group");
        msgid_new(&id);
        snprintf(prefix, sizeof(prefix), "mlg%02x%02x%02x_", id.b[13], id.b[14],
                 id.b[15]);
        free(fx.cfg.mongo_db_prefix);
        fx.cfg.mongo_db_prefix = strdup(prefix);
        fx.h = harness_new(&group_ml, &fx.cfg, NULL, err, sizeof(err));
        if (!fx.h) {
                fprintf(stderr, "test_ml_group: skipped: %s\n", err);
                exit(77);
        }
        return 0;
}

static int teardown(void **state) {
        static const char *const colls[] = {
                "forecasts", "requests", "tenants", "anomalies", "pacing",
                "curves",    "models",   "heads",   "contacts",  "deals",
                "orders",    "scores",   "timers",  NULL};
        char err[256];
        (void)state;
        for (size_t i = 0; colls[i]; i++)
                store_drop(runtime_store(harness_runtime(fx.h)), ML_DB,
                           colls[i], err, sizeof(err));
        harness_destroy(fx.h);
        config_deinit(&fx.cfg);
        return 0;
}

/* ---------------------------------------------------------------------------
 * analytics' answers
 * ------------------------------------------------------------------------ */

/* A day's spend of an ad channel: a weekly pattern around `level`, a
 * budget that moves slowly (so a response curve can be told), noise. */
static double spend_of(int32_t d, double level, uint64_t *rng) {
        static const double week[7] = {1.0, 1.05, 1.1, 1.1, 1.0, 0.8, 0.75};
        double budget = level * (1 + 0.3 * sin((double)d / 9.0));
        return fmax(0, budget * week[((d % 7) + 7) % 7] *
                               (1 + 0.03 * rng_normal(rng)));
}

/* Revenue the platform reports for a day's spend: a Hill curve. */
static double value_of(double spend, double half, uint64_t *rng) {
        double r = spend / half;
        return fmax(0, 4 * half * r / (1 + r) * (1 + 0.05 * rng_normal(rng)));
}

/*
 * The overview answer of an analytics.metrics request by day and
 * provider over [from, to]: google_ads and meta_ads in EUR with spend,
 * impressions, clicks, conversions, conversion value; shopify with
 * revenue, orders, new customers. spike multiplies google_ads' spend on
 * the last day.
 */
static char *overview_json(int32_t from, int32_t to, double spike) {
        sbuf_t b = {0};
        char day[ML_DAY_TEXT];
        uint64_t rng = 42;
        bool first = true;
        day_text(from, day);
        sb_add(&b,
               "{\"metrics\":[],\"group_by\":[\"day\",\"provider\"],"
               "\"from\":\"%s\",",
               day);
        day_text(to, day);
        sb_add(&b, "\"to\":\"%s\",\"rows\":[", day);
        for (int32_t d = from; d <= to; d++) {
                day_text(d, day);
                for (int c = 0; c < 2; c++) {
                        double level = c ? 20000 : 50000;
                        double sp = spend_of(d, level, &rng);
                        if (c == 0 && d == to)
                                sp *= spike;
                        double cv = value_of(sp, level, &rng);
                        sb_add(&b,
                               "%s{\"currency\":\"EUR\",\"day\":\"%s\","
                               "\"provider\":\"%s\",\"spend\":%lld,"
                               "\"impressions\":%lld,\"clicks\":%lld,"
                               "\"conversions\":%.1f,\"conversion_value\":"
                               "%lld,\"revenue\":0,\"orders\":0,"
                               "\"new_customers\":0}",
                               first ? "" : ",", day,
                               c ? "meta_ads" : "google_ads", (long long)sp,
                               (long long)(sp * 3), (long long)(sp / 50),
                               sp / 2000, (long long)cv);
                        first = false;
                }
                double rev = 300000 * (1 + 0.05 * rng_normal(&rng));
                sb_add(&b,
                       ",{\"currency\":\"EUR\",\"day\":\"%s\",\"provider\":"
                       "\"shopify\",\"spend\":0,\"impressions\":0,"
                       "\"clicks\":0,\"conversions\":0,\"conversion_value\":"
                       "0,\"revenue\":%lld,\"orders\":%d,\"new_customers\":"
                       "%d}",
                       day, (long long)rev, 60 + (int)(d % 7), 20);
        }
        sb_add(&b, "]}");
        return b.p;
}

/* A forecast's answer: one metric by day, in currencies[] (n_cur of
 * them), over [from, to] with values from `first` on. */
static char *series_json(const char *metric, int32_t from, int32_t to,
                         int32_t first, const char *const *currencies,
                         int n_cur) {
        sbuf_t b = {0};
        char day[ML_DAY_TEXT];
        uint64_t rng = 7;
        bool sep = false;
        day_text(from, day);
        sb_add(&b,
               "{\"metrics\":[\"%s\"],\"group_by\":[\"day\"],"
               "\"from\":\"%s\",",
               metric, day);
        day_text(to, day);
        sb_add(&b, "\"to\":\"%s\",\"rows\":[", day);
        for (int32_t d = first; d <= to; d++) {
                day_text(d, day);
                for (int c = 0; c < n_cur; c++) {
                        sb_add(&b,
                               "%s{\"currency\":\"%s\",\"day\":\"%s\","
                               "\"%s\":%lld}",
                               sep ? "," : "", currencies[c], day, metric,
                               (long long)spend_of(d, 10000, &rng));
                        sep = true;
                }
        }
        sb_add(&b, "]}");
        return b.p;
}

/* ---------------------------------------------------------------------------
 * Forecasts
 * ------------------------------------------------------------------------ */

/* POST a forecast; the analytics.metrics request it made into req_id, the
 * forecast id into fid. */
static void create(const harness_caller_t *who, const char *body,
                   char req_id[64], char fid[64]) {
        const harness_msg_t *req;
        assert_int_equal(
                harness_command(fx.h, "ml.forecasts.create", body, who), 202);
        assert_true(
                json_field(harness_reply(fx.h)->json, "forecast_id", fid, 64));
        req = output_of("analytics.metrics", 0);
        assert_non_null(req);
        assert_non_null(strstr(req->topic, "analytics.commands"));
        snprintf(req_id, 64, "%s", req->id);
}

static void test_forecast_answered(void **state) {
        char req[64], fid[64], path[160], ver[64];
        const char *eur[] = {"EUR"};
        int32_t to = ml_default_to();
        const harness_msg_t *r;
        (void)state;
        create(&ann, "{\"metric\":\"spend\",\"horizon\":14}", req, fid);
        /* The request names the metric and the period. */
        r = output_of("analytics.metrics", 0);
        assert_non_null(strstr(r->json, "\"metric\":[\"spend\"]"));
        assert_non_null(strstr(r->json, "\"group_by\":[\"day\"]"));
        snprintf(path, sizeof(path), "{\"forecast_id\":\"%s\"}", fid);
        assert_int_equal(
                harness_command(fx.h, "ml.forecasts.get", path, &viewer), 200);
        assert_non_null(
                strstr(harness_reply(fx.h)->json, "\"status\":\"pending\""));

        char *json = series_json("spend", to - 729, to, to - 119, eur, 1);
        assert_int_equal(harness_reply_to(fx.h, req, "analytics.metrics", 200,
                                          json, ann.tenant),
                         0);
        free(json);
        r = output_of("ml.forecast.completed", 0);
        assert_non_null(r);
        assert_true(json_field(r->json, "model_version", ver, sizeof(ver)));
        assert_non_null(strstr(ver, fid));
        assert_non_null(strstr(ver, "/v1"));

        assert_int_equal(
                harness_command(fx.h, "ml.forecasts.get", path, &viewer), 200);
        show("forecast");
        r = harness_reply(fx.h);
        assert_non_null(strstr(r->json, "\"status\":\"ready\""));
        assert_non_null(strstr(r->json, "\"model\":\"ETS("));
        assert_non_null(strstr(r->json, ver));
        assert_int_equal(count_of(r->json, "\"lo95\""), 14);
        assert_true(json_num(r->json, "smape") < 20);
        assert_true(json_num(r->json, "days") >= 119);
        /* Every point is ordered lo95 <= lo80 <= mean <= hi80 <= hi95. */
        for (const char *p = r->json; (p = strstr(p, "\"mean\":")); p++) {
                double mean = json_num(p, "mean"), lo80 = json_num(p, "lo80");
                double hi80 = json_num(p, "hi80"), lo95 = json_num(p, "lo95");
                double hi95 = json_num(p, "hi95");
                assert_true(lo95 <= lo80 && lo80 <= mean && mean <= hi80 &&
                            hi80 <= hi95 && lo95 >= 0);
        }
        /* Another tenant does not see it. */
        assert_int_equal(harness_command(fx.h, "ml.forecasts.get", path, &eve),
                         404);
        /* It is listed, and a refresh of the tenant asks for it again. */
        assert_int_equal(
                harness_command(fx.h, "ml.forecasts.list", "{}", &viewer), 200);
        assert_non_null(strstr(harness_reply(fx.h)->json, fid));
}

static void test_forecast_too_little_history(void **state) {
        char req[64], fid[64], path[160];
        const char *eur[] = {"EUR"};
        int32_t to = ml_default_to();
        (void)state;
        create(&ann, "{\"metric\":\"clicks\",\"horizon\":7}", req, fid);
        char *json = series_json("clicks", to - 729, to, to - 9, eur, 1);
        assert_int_equal(harness_reply_to(fx.h, req, "analytics.metrics", 200,
                                          json, ann.tenant),
                         0);
        free(json);
        assert_null(output_of("ml.forecast.completed", 0));
        snprintf(path, sizeof(path), "{\"forecast_id\":\"%s\"}", fid);
        assert_int_equal(
                harness_command(fx.h, "ml.forecasts.get", path, &viewer), 422);
        assert_non_null(strstr(harness_reply(fx.h)->json,
                               "too little history: 10 days"));
        assert_non_null(strstr(harness_reply(fx.h)->json, "clicks"));
}

static void test_forecast_horizon_beyond_history(void **state) {
        char req[64], fid[64], path[160];
        const char *eur[] = {"EUR"};
        int32_t to = ml_default_to();
        (void)state;
        create(&ann, "{\"metric\":\"impressions\",\"horizon\":90}", req, fid);
        char *json = series_json("impressions", to - 729, to, to - 39, eur, 1);
        harness_reply_to(fx.h, req, "analytics.metrics", 200, json, ann.tenant);
        free(json);
        snprintf(path, sizeof(path), "{\"forecast_id\":\"%s\"}", fid);
        assert_int_equal(
                harness_command(fx.h, "ml.forecasts.get", path, &viewer), 422);
        assert_non_null(strstr(harness_reply(fx.h)->json,
                               "horizon (90 days) is longer than the "
                               "history (40 days)"));
}

static void test_forecast_currencies(void **state) {
        char req[64], fid[64], path[160];
        const char *two[] = {"EUR", "USD"};
        int32_t to = ml_default_to();
        char *json;
        (void)state;
        /* Money in two currencies: name one. */
        create(&ann, "{\"metric\":\"conversion_value\",\"horizon\":7}", req,
               fid);
        json = series_json("conversion_value", to - 729, to, to - 59, two, 2);
        harness_reply_to(fx.h, req, "analytics.metrics", 200, json, ann.tenant);
        free(json);
        snprintf(path, sizeof(path), "{\"forecast_id\":\"%s\"}", fid);
        assert_int_equal(
                harness_command(fx.h, "ml.forecasts.get", path, &viewer), 422);
        assert_non_null(strstr(harness_reply(fx.h)->json,
                               "several currencies (EUR, USD)"));
        /* Counts add up over currencies. */
        create(&ann, "{\"metric\":\"orders\",\"horizon\":7}", req, fid);
        json = series_json("orders", to - 729, to, to - 59, two, 2);
        harness_reply_to(fx.h, req, "analytics.metrics", 200, json, ann.tenant);
        free(json);
        assert_non_null(output_of("ml.forecast.completed", 0));
}

/* A command answers status, and its reply holds needle (NULL: any). */
static void expect(int status, const char *type, const char *json,
                   const harness_caller_t *who, const char *needle) {
        assert_int_equal(harness_command(fx.h, type, json, who), status);
        if (needle && !strstr(harness_reply(fx.h)->json, needle))
                fail_msg("%s: no \"%s\" in %s", type, needle,
                         harness_reply(fx.h)->json);
}

static void test_forecast_refusals(void **state) {
        const char *create = "ml.forecasts.create";
        (void)state;
        /* A campaign belongs to an ad platform. */
        expect(422, create, "{\"metric\":\"spend\",\"campaign_id\":\"c1\"}",
               &ann, "needs provider");
        expect(422, create,
               "{\"metric\":\"revenue\",\"provider\":\"shopify\","
               "\"campaign_id\":\"c1\"}",
               &ann, "revenue is not one");
        /* The schema refuses unknown metrics and horizons out of range. */
        expect(400, create, "{\"metric\":\"happiness\"}", &ann, "metric");
        expect(400, create, "{\"metric\":\"spend\",\"horizon\":400}", &ann,
               "horizon");
        /* A viewer may read, not create. */
        expect(403, create, "{\"metric\":\"spend\"}", &viewer, NULL);
}

/* analytics refuses: the forecast says so. */
static void test_forecast_analytics_refused(void **state) {
        char req[64], fid[64], path[160];
        (void)state;
        create(&ann, "{\"metric\":\"roas\",\"horizon\":3}", req, fid);
        harness_reply_to(fx.h, req, "analytics.metrics", 400,
                         "{\"type\":\"about:blank\",\"title\":\"Bad "
                         "Request\",\"status\":400,\"detail\":\"the period "
                         "may span at most 90 days\"}",
                         ann.tenant);
        snprintf(path, sizeof(path), "{\"forecast_id\":\"%s\"}", fid);
        assert_int_equal(
                harness_command(fx.h, "ml.forecasts.get", path, &viewer), 502);
        assert_non_null(strstr(harness_reply(fx.h)->json,
                               "analytics answered 400: the period may span "
                               "at most 90 days"));
}

/* ---------------------------------------------------------------------------
 * Refresh: anomalies, pacing, curves, what-if
 * ------------------------------------------------------------------------ */

/* ml.refresh as its timer fires it; the overview request's id. */
static void refresh(const char *day, char req[64]) {
        static const harness_caller_t service = {"mlt1", ML_SERVICE_USER,
                                                 ML_SERVICE_ROLES};
        char body[96];
        const harness_msg_t *r;
        snprintf(body, sizeof(body),
                 "{\"reason\":\"day_closed\",\"day\":\"%s\"}", day);
        assert_int_equal(harness_command(fx.h, "ml.refresh", body, &service),
                         202);
        r = output_of("analytics.metrics", 0);
        assert_non_null(r);
        assert_non_null(strstr(r->json, "\"group_by\":[\"day\",\"provider\"]"));
        snprintf(req, 64, "%s", r->id);
}

static void test_refresh_anomalies_pacing_whatif(void **state) {
        char req[64], day[ML_DAY_TEXT], q[160];
        int32_t to = ml_default_to() - 3;
        const harness_msg_t *r;
        char *json;
        (void)state;
        /* First refresh: a calm last day, no anomaly. */
        day_text(to - 1, day);
        refresh(day, req);
        json = overview_json(to - 120, to - 1, 1.0);
        harness_reply_to(fx.h, req, "analytics.metrics", 200, json, ann.tenant);
        free(json);
        assert_null(
                output_with("ml.anomaly.detected", "\"spend\"", "google_ads"));

        /* Next day: google_ads spends three times its usual. */
        day_text(to, day);
        refresh(day, req);
        json = overview_json(to - 119, to, 3.0);
        harness_reply_to(fx.h, req, "analytics.metrics", 200, json, ann.tenant);
        r = output_with("ml.anomaly.detected", "\"metric\":\"spend\"",
                        "\"provider\":\"google_ads\"");
        assert_non_null(r);
        assert_non_null(strstr(r->json, "\"direction\":\"up\""));
        assert_non_null(strstr(r->json, ML_ANOMALY_MODEL));
        assert_true(json_num(r->json, "value") > json_num(r->json, "upper"));
        assert_true(json_num(r->json, "score") >= 3.5);
        /* The same answer again (a refresh): stored and published once. */
        refresh(day, req);
        harness_reply_to(fx.h, req, "analytics.metrics", 200, json, ann.tenant);
        free(json);
        assert_null(output_of("ml.anomaly.detected", 0));

        snprintf(q, sizeof(q), "{\"from\":\"%s\",\"to\":\"%s\"}", day, day);
        assert_int_equal(harness_command(fx.h, "ml.anomalies.list", q, &viewer),
                         200);
        show("anomalies");
        r = harness_reply(fx.h);
        assert_non_null(strstr(r->json, "\"provider\":\"google_ads\""));
        assert_non_null(strstr(r->json, "\"expected\""));
        assert_int_equal(harness_command(fx.h, "ml.anomalies.list", q, &eve),
                         200);
        assert_null(strstr(harness_reply(fx.h)->json, "google_ads"));
        assert_int_equal(harness_command(fx.h, "ml.anomalies.list",
                                         "{\"from\":\"2026-02-01\","
                                         "\"to\":\"2026-01-01\"}",
                                         &viewer),
                         422);

        /* Pacing: both channels, projected >= actual, ordered bounds. */
        assert_int_equal(harness_command(fx.h, "ml.pacing.get", "{}", &viewer),
                         200);
        show("pacing");
        r = harness_reply(fx.h);
        assert_non_null(strstr(r->json, "\"provider\":\"google_ads\""));
        assert_non_null(strstr(r->json, "\"provider\":\"meta_ads\""));
        assert_non_null(strstr(r->json, "\"model_version\":\"pacing/EUR/v"));
        assert_true(json_num(r->json, "projected") >=
                    json_num(r->json, "actual"));
        assert_true(json_num(r->json, "lo95") <= json_num(r->json, "lo80"));
        assert_int_equal(harness_command(fx.h, "ml.pacing.get", "{}", &eve),
                         404);

        /* What-if: moving budget from the saturated channel to the other. */
        assert_int_equal(harness_command(fx.h, "ml.budget.whatif",
                                         "{\"from\":\"google_ads\","
                                         "\"to\":\"meta_ads\","
                                         "\"amount_minor\":5000,\"days\":30}",
                                         &viewer),
                         200);
        show("what-if");
        r = harness_reply(fx.h);
        assert_non_null(strstr(r->json, "a model, not a measurement"));
        assert_non_null(strstr(r->json, "\"model_version\":\"response/EUR/v"));
        assert_non_null(strstr(r->json, "holdout_mape"));
        assert_non_null(strstr(r->json, "assumptions"));
        assert_true(isfinite(json_num(r->json, "revenue_change")));
        expect(422, "ml.budget.whatif",
               "{\"from\":\"google_ads\",\"to\":\"tiktok_ads\","
               "\"amount_minor\":5000}",
               &viewer, "no ad spend on tiktok_ads");
        expect(422, "ml.budget.whatif",
               "{\"from\":\"meta_ads\",\"to\":\"google_ads\","
               "\"amount_minor\":99999999}",
               &viewer, "current daily spend");
        expect(422, "ml.budget.whatif",
               "{\"from\":\"meta_ads\",\"to\":\"meta_ads\","
               "\"amount_minor\":10}",
               &viewer, "the same channel");

        /* Versions of the curves are kept. */
        assert_int_equal(harness_command(fx.h, "ml.models.get",
                                         "{\"kind\":\"response\"}", &viewer),
                         200);
        assert_true(count_of(harness_reply(fx.h)->json, "\"model_version\"") >=
                    2);
}

/* ---------------------------------------------------------------------------
 * Features and scoring
 * ------------------------------------------------------------------------ */

static void contact_event(const char *tenant, int i, int opened, int views,
                          const char *stage, int64_t observed) {
        char json[1024];
        snprintf(json, sizeof(json),
                 "{\"provider\":\"hubspot\",\"account_id\":\"p1\","
                 "\"contact_id\":\"c%d\",\"created_at\":"
                 "\"2026-01-%02dT10:00:00Z\",\"updated_at\":"
                 "\"2026-03-01T10:00:00Z\",\"lifecycle_stage\":\"%s\","
                 "\"email_domain\":\"%s\",\"engagement\":{\"emails_opened\":"
                 "%d,\"emails_clicked\":%d,\"page_views\":%d,"
                 "\"last_engaged_at\":\"2026-02-%02dT10:00:00Z\"},"
                 "\"observed_ms\":%lld}",
                 i, 1 + i % 28, stage, i % 3 ? "acme.com" : "gmail.com", opened,
                 opened / 3, views, 1 + (i * 7) % 28, (long long)observed);
        assert_int_equal(harness_event(fx.h, "integrations.contact.recorded",
                                       json, tenant),
                         0);
}

static void test_lead_model(void **state) {
        uint64_t rng = 11;
        const harness_msg_t *r;
        char ver[64];
        (void)state;
        /* Too few: 8 contacts, 2 converted. */
        for (int i = 0; i < 8; i++)
                contact_event(eve.tenant, i, i, i, i < 2 ? "customer" : "lead",
                              1000);
        assert_int_equal(harness_command(fx.h, "ml.models.train",
                                         "{\"kind\":\"lead\"}", &eve),
                         422);
        assert_non_null(strstr(harness_reply(fx.h)->json,
                               "too few examples to train a lead model: 8 "
                               "contacts, 2 of them converted"));
        /* 300 contacts whose engagement tells converts apart. */
        for (int i = 0; i < 300; i++) {
                double u = (double)(rng_next(&rng) >> 11) * 0x1.0p-53;
                int opened = (int)(u * 40);
                bool converts = u + 0.25 * rng_normal(&rng) > 0.7;
                contact_event(ann.tenant, i, opened, opened * 2,
                              converts ? "customer" : "lead", 2000);
        }
        /* An older record of contact 0 arrives late: it changes nothing. */
        contact_event(ann.tenant, 0, 999, 999, "lead", 1500);
        {
                bson_t filter = BSON_INITIALIZER, doc;
                char err[256];
                BSON_APPEND_UTF8(&filter, "_id", "mlt1|hubspot|p1|c0");
                assert_int_equal(
                        store_find_one(runtime_store(harness_runtime(fx.h)),
                                       ML_DB, "contacts", &filter, NULL, &doc,
                                       err, sizeof(err)),
                        STORE_OK);
                assert_int_equal(ml_bson_int(&doc, "observed_ms", 0), 2000);
                assert_true(ml_bson_int(&doc, "opened", 0) != 999);
                bson_destroy(&doc);
                bson_destroy(&filter);
        }
        assert_int_equal(harness_command(fx.h, "ml.models.train",
                                         "{\"kind\":\"lead\"}", &ann),
                         200);
        show("lead model");
        r = harness_reply(fx.h);
        assert_true(json_field(r->json, "model_version", ver, sizeof(ver)));
        assert_string_equal(ver, "lead/v1");
        assert_true(json_num(r->json, "auc") > 0.75);
        assert_non_null(strstr(r->json, "\"calibration\""));
        assert_non_null(strstr(r->json, "log_emails_opened"));
        r = output_of("ml.model.trained", 0);
        assert_non_null(r);
        assert_non_null(strstr(r->json, "\"kind\":\"lead\""));

        /* Ranked scores of open leads, each naming the version. */
        assert_int_equal(harness_command(fx.h, "ml.scores.list",
                                         "{\"kind\":\"lead\",\"limit\":5}",
                                         &viewer),
                         200);
        r = harness_reply(fx.h);
        assert_int_equal(count_of(r->json, "\"model_version\":\"lead/v1\""), 6);
        assert_non_null(strstr(r->json, "\"rank\":1"));
        assert_non_null(strstr(r->json, "\"factors\""));
        {
                double prev = 2;
                for (const char *p = r->json; (p = strstr(p, "\"score\":"));
                     p++) {
                        double s = json_num(p, "score");
                        assert_true(s <= prev);
                        prev = s;
                }
        }
        assert_int_equal(harness_command(fx.h, "ml.scores.get",
                                         "{\"kind\":\"lead\",\"id\":\"c0\"}",
                                         &viewer),
                         200);
        assert_non_null(
                strstr(harness_reply(fx.h)->json, "\"provider\":\"hubspot\""));
        /* Not another tenant's. */
        assert_int_equal(harness_command(fx.h, "ml.scores.get",
                                         "{\"kind\":\"lead\",\"id\":\"c299\"}",
                                         &eve),
                         404);
        /* Trained again: a new version, the scores follow it. */
        assert_int_equal(harness_command(fx.h, "ml.models.train",
                                         "{\"kind\":\"lead\"}", &ann),
                         200);
        assert_non_null(strstr(harness_reply(fx.h)->json, "lead/v2"));
        assert_int_equal(harness_command(fx.h, "ml.models.get",
                                         "{\"kind\":\"lead\"}", &viewer),
                         200);
        r = harness_reply(fx.h);
        assert_non_null(strstr(r->json, "lead/v1"));
        assert_true(strstr(r->json, "lead/v2") < strstr(r->json, "lead/v1"));
        assert_int_equal(harness_command(fx.h, "ml.models.get",
                                         "{\"kind\":\"churn\"}", &viewer),
                         404);
}

static void order_event(const char *customer, int32_t day, int64_t total,
                        int64_t observed) {
        char json[1024], d[ML_DAY_TEXT];
        static int n;
        day_text(day, d);
        snprintf(json, sizeof(json),
                 "{\"provider\":\"shopify\",\"account_id\":\"shop1\","
                 "\"order_id\":\"o%d\",\"placed_at\":\"%sT12:00:00Z\","
                 "\"day\":\"%s\",\"currency\":\"EUR\",\"total_minor\":%lld,"
                 "\"subtotal_minor\":%lld,\"refunded_minor\":0,"
                 "\"customer_id\":\"%s\",\"new_customer\":false,"
                 "\"status\":\"paid\",\"line_items\":[],\"touchpoints\":[],"
                 "\"observed_ms\":%lld}",
                 n++, d, d, (long long)total, (long long)total, customer,
                 (long long)observed);
        assert_int_equal(harness_event(fx.h, "integrations.order.recorded",
                                       json, ann.tenant),
                         0);
}

static void test_churn_model(void **state) {
        uint64_t rng = 5;
        int32_t today = ml_day_of_civil(2026, 6, 30);
        (void)state;
        /* Loyal customers order every few weeks; others stop. */
        for (int c = 0; c < 120; c++) {
                char id[16];
                bool loyal = c % 2 == 0;
                int32_t gap = loyal ? 20 + (int32_t)(rng_next(&rng) % 15)
                                    : 40 + (int32_t)(rng_next(&rng) % 40);
                int32_t stop =
                        loyal ? today
                              : today - 100 - (int32_t)(rng_next(&rng) % 100);
                snprintf(id, sizeof(id), "cu%d", c);
                for (int32_t d = today - 400 + c; d <= stop; d += gap)
                        order_event(id, d, 4000 + c * 10, 100);
        }
        assert_int_equal(harness_command(fx.h, "ml.models.train",
                                         "{\"kind\":\"churn\"}", &ann),
                         200);
        assert_true(json_num(harness_reply(fx.h)->json, "auc") > 0.8);
        assert_non_null(strstr(harness_reply(fx.h)->json, "churn/v1"));
        assert_int_equal(harness_command(fx.h, "ml.scores.get",
                                         "{\"kind\":\"churn\",\"id\":\"cu1\"}",
                                         &viewer),
                         200);
        double quit = json_num(harness_reply(fx.h)->json, "score");
        assert_int_equal(harness_command(fx.h, "ml.scores.get",
                                         "{\"kind\":\"churn\",\"id\":\"cu0\"}",
                                         &viewer),
                         200);
        double loyal = json_num(harness_reply(fx.h)->json, "score");
        assert_true(quit > loyal);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_forecast_answered),
                cmocka_unit_test(test_forecast_too_little_history),
                cmocka_unit_test(test_forecast_horizon_beyond_history),
                cmocka_unit_test(test_forecast_currencies),
                cmocka_unit_test(test_forecast_refusals),
                cmocka_unit_test(test_forecast_analytics_refused),
                cmocka_unit_test(test_refresh_anomalies_pacing_whatif),
                cmocka_unit_test(test_lead_model),
                cmocka_unit_test(test_churn_model),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
