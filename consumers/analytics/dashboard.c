/*
 * dashboard.c - the dashboard: the KPIs of a period per currency with
 * deltas against a comparison period, the ad channels, a daily series, and
 * the currency-free totals; one read of the facts of both periods, summed
 * in the query model's terms (query.c).
 *
 * analytics.dashboard (Kafka, read-only) is what ml and agentkit ask;
 * analytics.dashboard.view (GET /api/analytics/dashboard) is the same
 * answer for people, and publishes analytics.dashboard.viewed with first
 * = true for the tenant's first view (views {_id: tenant, first_user,
 * first_msg, first_ms}).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "analytics_internal.h"

#define VIEWS_COLL "views"

static const char *const kpi_metrics[] = {
        "spend",
        "revenue",
        "gross_revenue",
        "refunds",
        "orders",
        "new_customers",
        "new_customer_revenue",
        "conversions",
        "conversion_value",
        "roas",
        "blended_roas",
        "mer",
        "tw_mer",
        "cpa",
        "cac",
        "ctr",
        "cpc",
        "cpm",
        "cvr",
        "aov",
};
static const char *const channel_metrics[] = {
        "spend",
        "impressions",
        "clicks",
        "conversions",
        "conversion_value",
        "video_views",
        "roas",
        "cpa",
        "ctr",
        "cpc",
        "cpm",
        "cvr",
};
static const char *const series_metrics[] = {
        "spend", "revenue", "orders", "conversions", "roas", "mer",
};
static const char *const total_metrics[] = {
        "impressions",   "clicks", "conversions", "orders",
        "new_customers", "ctr",    "cvr",
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* What the facts add to: "k|<period>|<currency>" KPIs, "c|<period>|
 * <currency>|<provider>" channels, "s|<currency>|<day>" the series (the
 * period only), "t|<period>" totals across currencies. */
typedef struct dash {
        macc_t *acc;
        int period; /* 0: the period, 1: the comparison */
} dash_t;

static void dash__on_ad(const ad_entry_t *e, void *arg) {
        dash_t *d = arg;
        char key[256], day[CALTIME_DATE_SIZE];
        snprintf(key, sizeof(key), "k|%d|%s", d->period, e->currency);
        measures_add_ad(macc_get(d->acc, key), e);
        snprintf(key, sizeof(key), "c|%d|%s|%s", d->period, e->currency,
                 e->provider);
        measures_add_ad(macc_get(d->acc, key), e);
        snprintf(key, sizeof(key), "t|%d", d->period);
        measures_add_ad(macc_get(d->acc, key), e);
        if (d->period == 0) {
                caltime_format_date(e->day, day);
                snprintf(key, sizeof(key), "s|%s|%s", e->currency, day);
                measures_add_ad(macc_get(d->acc, key), e);
        }
}

static void dash__on_order(const order_entry_t *e, void *arg) {
        dash_t *d = arg;
        char key[256], day[CALTIME_DATE_SIZE];
        snprintf(key, sizeof(key), "k|%d|%s", d->period, e->currency);
        measures_add_order(macc_get(d->acc, key), e);
        snprintf(key, sizeof(key), "t|%d", d->period);
        measures_add_order(macc_get(d->acc, key), e);
        if (d->period == 0) {
                caltime_format_date(e->day, day);
                snprintf(key, sizeof(key), "s|%s|%s", e->currency, day);
                measures_add_order(macc_get(d->acc, key), e);
        }
}

static store_err_t dash__read(const aview_t *v, macc_t *acc, int period,
                              int64_t from, int64_t to, char *errstr,
                              size_t errlen) {
        dash_t d = {acc, period};
        afilter_t none;
        store_err_t err;
        memset(&none, 0, sizeof(none));
        err = read_ads(v, &none, from, to, dash__on_ad, &d, errstr, errlen);
        if (err == STORE_OK)
                err = read_orders(v, &none, from, to, dash__on_order, &d,
                                  errstr, errlen);
        return err;
}

/* {value, previous, delta, delta_pct} of a metric. */
static void dash__delta(msgpack_packer *pk, const metric_def_t *md,
                        const measures_t *cur, const measures_t *prev,
                        bool compare) {
        static const measures_t zero;
        double a = 0, b = 0;
        bool ha = query_value(md, cur ? cur : &zero, &a);
        bool hb = compare && query_value(md, prev ? prev : &zero, &b);
        msgpack_pack_map(pk, 4);
        codec_pack_str(pk, "value");
        query_pack_value(pk, md, cur ? cur : &zero);
        codec_pack_str(pk, "previous");
        if (compare)
                query_pack_value(pk, md, prev ? prev : &zero);
        else
                msgpack_pack_nil(pk);
        codec_pack_str(pk, "delta");
        if (ha && hb) {
                if (md->ratio)
                        msgpack_pack_double(pk, a - b);
                else
                        msgpack_pack_int64(pk, (int64_t)(a - b));
        } else {
                msgpack_pack_nil(pk);
        }
        codec_pack_str(pk, "delta_pct");
        if (ha && hb && b != 0)
                msgpack_pack_double(pk, (a - b) / (b < 0 ? -b : b) * 100.0);
        else
                msgpack_pack_nil(pk);
}

static void dash__metrics(msgpack_packer *pk, const char *const *names,
                          size_t n, const measures_t *cur,
                          const measures_t *prev, bool compare) {
        msgpack_pack_map(pk, n);
        for (size_t i = 0; i < n; i++) {
                const metric_def_t *md =
                        query_metric(names[i], strlen(names[i]));
                codec_pack_str(pk, names[i]);
                dash__delta(pk, md, cur, prev, compare);
        }
}

static void dash__currency(msgpack_packer *pk, const macc_t *acc,
                           const char *currency, bool compare) {
        char key[256];
        const char **keys;
        size_t n;
        const measures_t *cur, *prev;
        static const measures_t zero;
        msgpack_pack_map(pk, 4);
        mp_pack_kv_str(pk, "currency", currency);
        snprintf(key, sizeof(key), "k|0|%s", currency);
        cur = macc_find(acc, key);
        snprintf(key, sizeof(key), "k|1|%s", currency);
        prev = macc_find(acc, key);
        codec_pack_str(pk, "kpis");
        dash__metrics(pk, kpi_metrics, N(kpi_metrics), cur, prev, compare);
        /* Channels of either period, by provider. */
        {
                const char **k0, **k1;
                size_t n0, n1, i = 0, j = 0, count = 0;
                char p0[80], p1[80];
                snprintf(p0, sizeof(p0), "c|0|%s|", currency);
                snprintf(p1, sizeof(p1), "c|1|%s|", currency);
                n0 = macc_keys(acc, p0, &k0);
                n1 = macc_keys(acc, p1, &k1);
                /* Merge the two sorted lists of providers. */
                for (i = 0, j = 0; i < n0 || j < n1; count++) {
                        int c = i == n0   ? 1
                                : j == n1 ? -1
                                          : strcmp(k0[i] + strlen(p0),
                                                   k1[j] + strlen(p1));
                        if (c <= 0)
                                i++;
                        if (c >= 0)
                                j++;
                }
                codec_pack_str(pk, "channels");
                msgpack_pack_array(pk, count);
                for (i = 0, j = 0; i < n0 || j < n1;) {
                        int c = i == n0   ? 1
                                : j == n1 ? -1
                                          : strcmp(k0[i] + strlen(p0),
                                                   k1[j] + strlen(p1));
                        const char *provider = c <= 0 ? k0[i] + strlen(p0)
                                                      : k1[j] + strlen(p1);
                        const measures_t *a =
                                c <= 0 ? macc_find(acc, k0[i]) : &zero;
                        const measures_t *b =
                                c >= 0 ? macc_find(acc, k1[j]) : &zero;
                        msgpack_pack_map(pk, 1 + N(channel_metrics));
                        mp_pack_kv_str(pk, "provider", provider);
                        for (size_t m = 0; m < N(channel_metrics); m++) {
                                codec_pack_str(pk, channel_metrics[m]);
                                dash__delta(pk,
                                            query_metric(
                                                    channel_metrics[m],
                                                    strlen(channel_metrics[m])),
                                            a, b, compare);
                        }
                        if (c <= 0)
                                i++;
                        if (c >= 0)
                                j++;
                }
                free(k0);
                free(k1);
        }
        snprintf(key, sizeof(key), "s|%s|", currency);
        n = macc_keys(acc, key, &keys);
        codec_pack_str(pk, "series");
        msgpack_pack_array(pk, n);
        for (size_t i = 0; i < n; i++) {
                const measures_t *m = macc_find(acc, keys[i]);
                msgpack_pack_map(pk, 1 + N(series_metrics));
                mp_pack_kv_str(pk, "day", keys[i] + strlen(key));
                for (size_t s = 0; s < N(series_metrics); s++) {
                        codec_pack_str(pk, series_metrics[s]);
                        query_pack_value(
                                pk,
                                query_metric(series_metrics[s],
                                             strlen(series_metrics[s])),
                                m);
                }
        }
        free(keys);
}

/* The currencies of either period, sorted, each once. */
static size_t dash__currencies(const macc_t *acc, char out[][4], size_t max) {
        const char **keys;
        size_t n = macc_keys(acc, "k|", &keys), k = 0;
        for (size_t i = 0; i < n; i++) {
                const char *c = keys[i] + 4; /* "k|0|" */
                bool seen = false;
                for (size_t j = 0; j < k; j++)
                        seen = seen || strcmp(out[j], c) == 0;
                if (!seen && k < max)
                        snprintf(out[k++], 4, "%s", c);
        }
        free(keys);
        for (size_t i = 1; i < k; i++)
                for (size_t j = i; j > 0 && strcmp(out[j - 1], out[j]) > 0;
                     j--) {
                        char t[4];
                        memcpy(t, out[j], 4);
                        memcpy(out[j], out[j - 1], 4);
                        memcpy(out[j - 1], t, 4);
                }
        return k;
}

static void dash__range(msgpack_packer *pk, int64_t from, int64_t to) {
        char f[CALTIME_DATE_SIZE], t[CALTIME_DATE_SIZE];
        caltime_format_date(from, f);
        caltime_format_date(to, t);
        mp_pack_kv_str(pk, "from", f);
        mp_pack_kv_str(pk, "to", t);
}

/* The answer; *ok when it is the dashboard (not a refusal). */
static handler_result_t dash__answer(rt_ctx_t *ctx, const msgpack_object *body,
                                     const aview_t *v, bool *ok) {
        int64_t from, to, cfrom = 0, cto = -1;
        slice_t compare = mp_str(body, "compare");
        bool cmp = true;
        macc_t *acc;
        char err[256], currencies[64][4];
        size_t n_cur;
        store_err_t serr;
        msgpack_packer *pk;
        *ok = false;
        if (!query_period(ctx, body, &from, &to))
                return HANDLER_OK;
        if (!compare.len || slice_eq(compare, "previous_period")) {
                compare = slice_of("previous_period");
                cfrom = from - (to - from + 1);
                cto = from - 1;
        } else if (slice_eq(compare, "previous_year")) {
                cfrom = caltime_year_back(from);
                cto = caltime_year_back(to);
        } else if (slice_eq(compare, "none")) {
                cmp = false;
        } else {
                analytics_bad_field(ctx, "compare",
                                    "must be one of: previous_period, "
                                    "previous_year, none");
                return HANDLER_OK;
        }
        acc = macc_new();
        serr = dash__read(v, acc, 0, from, to, err, sizeof(err));
        if (serr == STORE_OK && cmp)
                serr = dash__read(v, acc, 1, cfrom, cto, err, sizeof(err));
        if (serr != STORE_OK) {
                macc_free(acc);
                return analytics_store_failed(ctx, serr, err);
        }
        n_cur = dash__currencies(acc, currencies, 64);
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 6);
        dash__range(pk, from, to);
        codec_pack_str(pk, "compare");
        msgpack_pack_map(pk, cmp ? 3 : 1);
        codec_pack_str(pk, "kind");
        mp_pack_slice(pk, compare);
        if (cmp)
                dash__range(pk, cfrom, cto);
        codec_pack_str(pk, "currencies");
        msgpack_pack_array(pk, n_cur);
        for (size_t i = 0; i < n_cur; i++)
                dash__currency(pk, acc, currencies[i], cmp);
        codec_pack_str(pk, "totals");
        dash__metrics(pk, total_metrics, N(total_metrics),
                      macc_find(acc, "t|0"), macc_find(acc, "t|1"), cmp);
        codec_pack_str(pk, "definitions");
        msgpack_pack_map(pk, 6);
        for (size_t i = 0; i < 6; i++) {
                static const char *const defs[] = {"revenue",      "roas",
                                                   "blended_roas", "mer",
                                                   "tw_mer",       "cac"};
                const metric_def_t *md = query_metric(defs[i], strlen(defs[i]));
                mp_pack_kv_str(pk, defs[i], md->doc);
        }
        macc_free(acc);
        *ok = true;
        return HANDLER_OK;
}

handler_result_t dashboard_handle(rt_ctx_t *ctx, const msgpack_object *body) {
        aview_t v;
        handler_result_t res;
        bool ok;
        if (!analytics_view(ctx, SCHEMA_ROLE_VIEWER, &v, &res))
                return res;
        return dash__answer(ctx, body, &v, &ok);
}

handler_result_t dashboard_view(rt_ctx_t *ctx, const msgpack_object *body) {
        aview_t v;
        handler_result_t res;
        const env_t *env = rt_env(ctx);
        bson_t filter, update, ins, doc;
        bson_iter_t it;
        bool first = false, ok = false;
        char err[256];
        store_err_t serr;
        msgpack_sbuffer sb;
        msgpack_packer pk;
        if (!analytics_view(ctx, SCHEMA_ROLE_VIEWER, &v, &res))
                return res;
        res = dash__answer(ctx, body, &v, &ok);
        if (res != HANDLER_OK || !ok)
                return res;
        /* The tenant's first view: the view that created the record. */
        bson_init(&filter);
        BSON_APPEND_UTF8(&filter, "_id", v.tenant);
        bson_init(&update);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &ins);
        bson_append_utf8(&ins, "first_user", -1, env->user.ptr,
                         (int)env->user.len);
        bson_append_utf8(&ins, "first_msg", -1, env->id.ptr, (int)env->id.len);
        BSON_APPEND_INT64(&ins, "first_ms", (int64_t)clock_wall_ms());
        bson_append_document_end(&update, &ins);
        serr = store_find_and_modify(rt_store(ctx), rt_db(ctx), VIEWS_COLL,
                                     &filter, NULL, &update, true, true, &doc,
                                     err, sizeof(err));
        bson_destroy(&filter);
        bson_destroy(&update);
        if (serr != STORE_OK)
                return analytics_store_failed(ctx, serr, err);
        first = bson_iter_init_find(&it, &doc, "first_msg") &&
                BSON_ITER_HOLDS_UTF8(&it) &&
                slice_eq(env->id, bson_iter_utf8(&it, NULL));
        bson_destroy(&doc);
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        codec_pack_str(&pk, "user_id");
        codec_pack_slice(&pk, env->user);
        codec_pack_str(&pk, "first");
        if (first)
                msgpack_pack_true(&pk);
        else
                msgpack_pack_false(&pk);
        if (rt_emit(ctx, "analytics.dashboard.viewed", env->tenant, &sb) != 0)
                res = HANDLER_PERMANENT;
        msgpack_sbuffer_destroy(&sb);
        return res;
}
