/*
 * forecast.c - forecasts of a tenant's daily metrics.
 *
 * A forecast is a definition (metric, provider, campaign, currency,
 * horizon) whose id is derived from it and the tenant, so posting the same
 * definition again refreshes the same forecast. Creating one asks
 * analytics for the series (history_days up to yesterday) and answers 202;
 * the reply (refresh.c) fits the ETS family by AICc (ets.h: weekly season
 * once there are two weeks of history) and stores a new version: points
 * with 80% and 95% intervals per day, the model, its fit error. Every
 * refresh of the tenant (a closed day, the schedule) asks again.
 *
 * Statuses: pending until the first answer; ready once a version exists
 * (a later refresh that fails keeps the version and says why in
 * refresh_error); failed when the first answer could not give one (422:
 * too little history, a horizon longer than the history, several
 * currencies; 502: analytics refused).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ets.h"
#include "log.h"
#include "ml_internal.h"
#include "msgid.h"

#define FC_COLL "forecasts"

/* ---------------------------------------------------------------------------
 * Fitting
 * ------------------------------------------------------------------------ */

struct ets_model *ml_fit_daily(const double *v, size_t n, int h, int min_days,
                               int *status, char *errstr, size_t errlen) {
        size_t first, observed = ml_observed(v, n, &first);
        ets_options_t opt = ETS_OPTIONS_DEFAULT;
        ets_model_t *model = NULL;
        ets_err_t err;
        *status = 422;
        if (observed < (size_t)min_days) {
                snprintf(errstr, errlen,
                         "too little history: %zu day%s with a value, a "
                         "forecast needs at least %d",
                         observed, observed == 1 ? "" : "s", min_days);
                return NULL;
        }
        if ((size_t)h > n - first) {
                snprintf(errstr, errlen,
                         "the horizon (%d days) is longer than the history "
                         "(%zu days)",
                         h, n - first);
                return NULL;
        }
        /* Weekly seasonality once two full weeks allow it (ets.h). */
        opt.period = observed >= 2 * 7 ? 7 : 1;
        opt.horizon = h;
        err = ets_fit(v, n, &opt, &model);
        if (err == ETS_TOO_SHORT) {
                snprintf(errstr, errlen, "too little history: %s",
                         ets_strerror(err));
                return NULL;
        }
        if (err != ETS_OK) {
                *status = err == ETS_NO_MEMORY ? 500 : 422;
                snprintf(errstr, errlen, "no model fits the series: %s",
                         ets_strerror(err));
                return NULL;
        }
        *status = 200;
        return model;
}

/* ---------------------------------------------------------------------------
 * Creating and refreshing
 * ------------------------------------------------------------------------ */

typedef struct fc_def {
        int metric;
        int64_t horizon;
        char provider[ML_CHANNEL_MAX];
        char campaign_id[160];
        char currency[8];
} fc_def_t;

/* The definition in body, or false after a 400/422 reply. */
static bool def_read(rt_ctx_t *ctx, const msgpack_object *body, fc_def_t *d) {
        memset(d, 0, sizeof(*d));
        d->metric = ml_metric_find(codec_map_str(body, "metric"));
        if (d->metric < 0) {
                rt_reply_problem(ctx, 400, "Bad Request", "unknown metric");
                return false;
        }
        if (!ml_int(body, "horizon", &d->horizon))
                d->horizon = 30;
        if (d->horizon < 1 || d->horizon > 365) {
                rt_reply_problem(ctx, 400, "Bad Request",
                                 "horizon must be 1 to 365 days");
                return false;
        }
        ml_str(body, "provider", d->provider, sizeof(d->provider));
        ml_str(body, "campaign_id", d->campaign_id, sizeof(d->campaign_id));
        ml_str(body, "currency", d->currency, sizeof(d->currency));
        if (d->campaign_id[0] && !d->provider[0]) {
                ml_unprocessable(ctx, "campaign_id needs provider: a "
                                      "campaign belongs to an ad platform");
                return false;
        }
        if (d->campaign_id[0] && !ml_metrics[d->metric].ads) {
                ml_unprocessable(ctx,
                                 "campaign_id filters ad platform metrics "
                                 "only; %s is not one",
                                 ml_metrics[d->metric].name);
                return false;
        }
        return true;
}

static void def_id(const char *tenant, const fc_def_t *d,
                   char out[MSGID_TEXT_SIZE]) {
        char h[24];
        snprintf(h, sizeof(h), "%lld", (long long)d->horizon);
        const char *parts[] = {"forecast",
                               tenant,
                               ml_metrics[d->metric].name,
                               d->provider,
                               d->campaign_id,
                               d->currency,
                               h};
        ml_derive_id(out, 0, 7, parts);
}

/* Ask analytics for a forecast's series through day `to`. */
static handler_result_t fc_ask(rt_ctx_t *ctx, const char *tenant,
                               const char *id, const fc_def_t *d, int32_t to) {
        ml_state_t *st = rt_state(ctx);
        const char *metric = ml_metrics[d->metric].name;
        ml_ask_t a = {.kind = "forecast",
                      .forecast_id = id,
                      .metrics = &metric,
                      .n_metrics = 1,
                      .from = to - st->set->history_days + 1,
                      .to = to,
                      .provider = d->provider[0] ? d->provider : NULL,
                      .campaign_id = d->campaign_id[0] ? d->campaign_id : NULL,
                      .currency = d->currency[0] ? d->currency : NULL};
        return ml_ask(ctx, tenant, &a);
}

static void def_of_doc(const bson_t *doc, fc_def_t *d) {
        char metric[32];
        memset(d, 0, sizeof(*d));
        ml_bson_str(doc, "metric", metric, sizeof(metric));
        d->metric = ml_metric_find(slice_of(metric));
        d->horizon = ml_bson_int(doc, "horizon", 30);
        ml_bson_str(doc, "provider", d->provider, sizeof(d->provider));
        ml_bson_str(doc, "campaign_id", d->campaign_id, sizeof(d->campaign_id));
        ml_bson_str(doc, "currency", d->currency, sizeof(d->currency));
}

handler_result_t ml_forecasts_create(rt_ctx_t *ctx,
                                     const msgpack_object *body) {
        ml_state_t *st = rt_state(ctx);
        rt_caller_t caller;
        char tenant[ML_TENANT_MAX], id[MSGID_TEXT_SIZE], err[256];
        char location[128], user[ML_TENANT_MAX] = "";
        fc_def_t d;
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, child;
        int64_t count = 0, now = (int64_t)clock_wall_ms();
        store_err_t serr;
        handler_result_t res = HANDLER_OK;
        msgpack_packer *pk;

        if (!rt_require_role(ctx, SCHEMA_ROLE_MEMBER) ||
            !ml_tenant(ctx, tenant) || !def_read(ctx, body, &d))
                goto done;
        rt_caller(ctx, &caller);
        if (caller.user.len < sizeof(user)) {
                memcpy(user, caller.user.ptr, caller.user.len);
                user[caller.user.len] = '\0';
        }
        def_id(tenant, &d, id);
        BSON_APPEND_UTF8(&filter, "_id", id);
        serr = store_count(st->store, ML_DB, FC_COLL, &filter, &count, err,
                           sizeof(err));
        if (serr == STORE_OK && count == 0) {
                bson_reinit(&filter);
                BSON_APPEND_UTF8(&filter, "tenant", tenant);
                serr = store_count(st->store, ML_DB, FC_COLL, &filter, &count,
                                   err, sizeof(err));
                if (serr == STORE_OK && count >= st->set->forecasts_max) {
                        ml_unprocessable(ctx,
                                         "a tenant may keep at most %d "
                                         "forecasts: delete one first",
                                         st->set->forecasts_max);
                        goto done;
                }
                bson_reinit(&filter);
                BSON_APPEND_UTF8(&filter, "_id", id);
        }
        if (serr != STORE_OK) {
                res = ml_store_failed(ctx, serr, "forecasts", err);
                goto done;
        }
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &child);
        BSON_APPEND_UTF8(&child, "tenant", tenant);
        BSON_APPEND_UTF8(&child, "metric", ml_metrics[d.metric].name);
        BSON_APPEND_INT64(&child, "horizon", d.horizon);
        BSON_APPEND_UTF8(&child, "provider", d.provider);
        BSON_APPEND_UTF8(&child, "campaign_id", d.campaign_id);
        BSON_APPEND_UTF8(&child, "currency", d.currency);
        BSON_APPEND_DATE_TIME(&child, "requested_at", now);
        bson_append_document_end(&update, &child);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &child);
        BSON_APPEND_UTF8(&child, "status", "pending");
        BSON_APPEND_DATE_TIME(&child, "created_at", now);
        BSON_APPEND_UTF8(&child, "created_by", user);
        bson_append_document_end(&update, &child);
        serr = store_update(st->store, ML_DB, FC_COLL, &filter, &update,
                            STORE_UPSERT, NULL, err, sizeof(err));
        if (serr != STORE_OK) {
                res = ml_store_failed(ctx, serr, "forecasts", err);
                goto done;
        }
        if ((res = fc_ask(ctx, tenant, id, &d, ml_default_to())) != HANDLER_OK)
                goto done;
        ml_schedule_tenant(ctx, tenant);
        snprintf(location, sizeof(location), "/api/ml/forecasts/%s", id);
        pk = rt_reply(ctx, 202);
        msgpack_pack_map(pk, 3);
        ml_kv_str(pk, "forecast_id", id);
        ml_kv_str(pk, "status", "pending");
        ml_kv_str(pk, "location", location);
done:
        bson_destroy(&filter);
        bson_destroy(&update);
        return res;
}

typedef struct fc_list {
        rt_ctx_t *ctx;
        const char *tenant;
        int32_t to;
        handler_result_t res;
} fc_list_t;

/* Apply update (destroyed here) to forecast id; no match is no error. */
static store_err_t fc_update(ml_state_t *st, const char *id, bson_t *update,
                             char *err, size_t errlen) {
        bson_t filter = BSON_INITIALIZER;
        store_err_t serr;
        BSON_APPEND_UTF8(&filter, "_id", id);
        serr = store_update(st->store, ML_DB, FC_COLL, &filter, update, 0, NULL,
                            err, errlen);
        bson_destroy(&filter);
        bson_destroy(update);
        return serr == STORE_NOT_FOUND ? STORE_OK : serr;
}

/* requested_at: when analytics was last asked (a pending forecast answers
 * 502 once it has waited request_timeout_s since). */
static handler_result_t asked_now(rt_ctx_t *ctx, const char *id) {
        ml_state_t *st = rt_state(ctx);
        bson_t update = BSON_INITIALIZER, set;
        char err[256];
        store_err_t serr;
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_DATE_TIME(&set, "requested_at", (int64_t)clock_wall_ms());
        bson_append_document_end(&update, &set);
        serr = fc_update(st, id, &update, err, sizeof(err));
        if (serr != STORE_OK)
                return ml_store_failed(ctx, serr, "forecasts", err);
        return HANDLER_OK;
}

static bool refresh_one(const bson_t *doc, void *arg) {
        fc_list_t *l = arg;
        char id[MSGID_TEXT_SIZE];
        fc_def_t d;
        ml_bson_str(doc, "_id", id, sizeof(id));
        def_of_doc(doc, &d);
        if (d.metric < 0)
                return true;
        l->res = fc_ask(l->ctx, l->tenant, id, &d, l->to);
        if (l->res == HANDLER_OK)
                l->res = asked_now(l->ctx, id);
        return l->res == HANDLER_OK;
}

handler_result_t ml_forecasts_refresh(rt_ctx_t *ctx, const char *tenant,
                                      int32_t to) {
        ml_state_t *st = rt_state(ctx);
        fc_list_t l = {ctx, tenant, to, HANDLER_OK};
        bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
        char err[256];
        store_err_t serr;
        BSON_APPEND_UTF8(&filter, "tenant", tenant);
        BSON_APPEND_INT64(&opts, "limit", st->set->forecasts_max);
        serr = store_find(st->store, ML_DB, FC_COLL, &filter, &opts,
                          refresh_one, &l, err, sizeof(err));
        bson_destroy(&filter);
        bson_destroy(&opts);
        if (serr != STORE_OK)
                return ml_store_failed(ctx, serr, "forecasts", err);
        return l.res;
}

/* ---------------------------------------------------------------------------
 * The answer: fit and store a version
 * ------------------------------------------------------------------------ */

/* The forecast's series in f: the one of its channel and currency; count
 * metrics in several currencies are summed into *owned (caller frees).
 * NULL and a 422 detail when there is none or the currency is ambiguous. */
static const double *pick_series(const ml_frame_t *f, const fc_def_t *d,
                                 char *currency, double **owned, char *why,
                                 size_t whylen) {
        /* Filtered by provider and campaign, not grouped by them: every
         * row is the forecast's own, under ML_TOTAL. */
        const char *channel = ML_TOTAL;
        const char *metric = ml_metrics[d->metric].name;
        const ml_series_t *one = NULL;
        char seen[128] = "";
        size_t n = 0, off = 0;
        *owned = NULL;
        for (size_t i = 0; i < f->n; i++) {
                const ml_series_t *s = &f->s[i];
                if ((int)s->metric != d->metric ||
                    strcmp(s->channel, channel) != 0)
                        continue;
                if (d->currency[0] && strcmp(s->currency, d->currency) != 0)
                        continue;
                one = s;
                n++;
                if (off < sizeof(seen))
                        off += (size_t)snprintf(seen + off, sizeof(seen) - off,
                                                "%s%s", n > 1 ? ", " : "",
                                                s->currency[0] ? s->currency
                                                               : "none");
        }
        if (n == 0) {
                snprintf(why, whylen,
                         "too little history: no %s data%s%s%s%s in the "
                         "%zu days up to %s",
                         metric, d->provider[0] ? " for " : "", d->provider,
                         d->currency[0] ? " in " : "", d->currency, f->days,
                         "the last complete day");
                return NULL;
        }
        if (n == 1) {
                snprintf(currency, 8, "%s", one->currency);
                return one->v;
        }
        if (ml_metrics[d->metric].unit != ML_COUNT) {
                snprintf(why, whylen,
                         "the %s data is in several currencies (%s): name "
                         "one with currency",
                         metric, seen);
                return NULL;
        }
        double *sum = malloc(f->days * sizeof(double));
        if (!sum) {
                snprintf(why, whylen, "out of memory");
                return NULL;
        }
        for (size_t t = 0; t < f->days; t++)
                sum[t] = NAN;
        for (size_t i = 0; i < f->n; i++) {
                const ml_series_t *s = &f->s[i];
                if ((int)s->metric != d->metric ||
                    strcmp(s->channel, channel) != 0)
                        continue;
                for (size_t t = 0; t < f->days; t++)
                        if (!isnan(s->v[t]))
                                sum[t] = (isnan(sum[t]) ? 0 : sum[t]) + s->v[t];
        }
        currency[0] = '\0';
        *owned = sum;
        return sum;
}

/* The fit measures and points of a fitted model as bson. */
static void append_result(bson_t *set, const ets_model_t *model,
                          const ets_point_t *pts, int h, const ml_frame_t *f,
                          size_t first, size_t observed, bool nonneg,
                          const char *version) {
        ets_stats_t sts = ets_stats(model);
        bson_t child, arr, pt;
        char day[ML_DAY_TEXT], key[16];
        BSON_APPEND_UTF8(set, "model", ets_name(model));
        BSON_APPEND_UTF8(set, "model_version", version);
        BSON_APPEND_DOCUMENT_BEGIN(set, "fit", &child);
#define NUM(k, v)                                         \
        do {                                              \
                if (isfinite(v))                          \
                        BSON_APPEND_DOUBLE(&child, k, v); \
        } while (0)
        NUM("aicc", sts.aicc);
        NUM("rmse", sts.rmse);
        NUM("mae", sts.mae);
        NUM("mape", sts.mape);
        NUM("smape", sts.smape);
        NUM("mase", sts.mase);
        NUM("sigma", sqrt(sts.sigma2));
#undef NUM
        BSON_APPEND_INT32(&child, "models_compared", sts.n_models);
        bson_append_document_end(set, &child);
        BSON_APPEND_DOCUMENT_BEGIN(set, "history", &child);
        ml_day_format(f->from + (int32_t)first, day);
        BSON_APPEND_UTF8(&child, "from", day);
        ml_day_format(f->to, day);
        BSON_APPEND_UTF8(&child, "to", day);
        BSON_APPEND_INT64(&child, "days", (int64_t)(f->days - first));
        BSON_APPEND_INT64(&child, "observed", (int64_t)observed);
        bson_append_document_end(set, &child);
        BSON_APPEND_ARRAY_BEGIN(set, "points", &arr);
        for (int i = 0; i < h; i++) {
                ets_point_t p = pts[i];
                if (nonneg) {
                        /* The metric cannot be negative: neither can its
                         * forecast nor the low ends of its intervals. */
                        p.mean = fmax(p.mean, 0);
                        p.lo80 = fmax(p.lo80, 0);
                        p.lo95 = fmax(p.lo95, 0);
                        p.hi80 = fmax(p.hi80, 0);
                        p.hi95 = fmax(p.hi95, 0);
                }
                snprintf(key, sizeof(key), "%d", i);
                BSON_APPEND_DOCUMENT_BEGIN(&arr, key, &pt);
                ml_day_format(f->to + 1 + i, day);
                BSON_APPEND_UTF8(&pt, "day", day);
                BSON_APPEND_DOUBLE(&pt, "mean", p.mean);
                BSON_APPEND_DOUBLE(&pt, "lo80", p.lo80);
                BSON_APPEND_DOUBLE(&pt, "hi80", p.hi80);
                BSON_APPEND_DOUBLE(&pt, "lo95", p.lo95);
                BSON_APPEND_DOUBLE(&pt, "hi95", p.hi95);
                bson_append_document_end(&arr, &pt);
        }
        bson_append_array_end(set, &arr);
}

/* Record a failure: failed (never ready) or refresh_error (ready). */
static handler_result_t fc_failed(rt_ctx_t *ctx, const bson_t *doc, int status,
                                  const char *detail) {
        ml_state_t *st = rt_state(ctx);
        char id[MSGID_TEXT_SIZE], now_s[ML_TIME_TEXT], err[256];
        char cur[16];
        bson_t update = BSON_INITIALIZER, set, e;
        store_err_t serr;
        ml_bson_str(doc, "_id", id, sizeof(id));
        ml_bson_str(doc, "status", cur, sizeof(cur));
        ml_time_format((int64_t)clock_wall_ms(), now_s);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        if (strcmp(cur, "ready") != 0)
                BSON_APPEND_UTF8(&set, "status", "failed");
        BSON_APPEND_DOCUMENT_BEGIN(
                &set, strcmp(cur, "ready") == 0 ? "refresh_error" : "error",
                &e);
        BSON_APPEND_INT32(&e, "status", status);
        BSON_APPEND_UTF8(&e, "detail", detail);
        BSON_APPEND_UTF8(&e, "at", now_s);
        bson_append_document_end(&set, &e);
        bson_append_document_end(&update, &set);
        serr = fc_update(st, id, &update, err, sizeof(err));
        if (serr != STORE_OK)
                return store_err_transient(serr) ? HANDLER_TRANSIENT
                                                 : HANDLER_PERMANENT;
        log_info("ml: forecast %s: %s", id, detail);
        return HANDLER_OK;
}

static handler_result_t emit_completed(rt_ctx_t *ctx, const char *id,
                                       const fc_def_t *d, const char *model,
                                       const char *version) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        int rc;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, d->provider[0] ? 6 : 5);
        ml_kv_str(&pk, "forecast_id", id);
        ml_kv_str(&pk, "metric", ml_metrics[d->metric].name);
        ml_kv_int(&pk, "horizon", d->horizon);
        ml_kv_str(&pk, "model", model);
        ml_kv_str(&pk, "model_version", version);
        if (d->provider[0])
                ml_kv_str(&pk, "provider", d->provider);
        rc = rt_emit(ctx, "ml.forecast.completed", rt_env(ctx)->tenant, &sb);
        msgpack_sbuffer_destroy(&sb);
        return rc == 0 ? HANDLER_OK : HANDLER_PERMANENT;
}

handler_result_t ml_forecast_answer(rt_ctx_t *ctx, const char *tenant,
                                    const char *forecast_id, int status,
                                    const msgpack_object *body) {
        ml_state_t *st = rt_state(ctx);
        bson_t filter = BSON_INITIALIZER, doc, update = BSON_INITIALIZER, set;
        bson_t extra = BSON_INITIALIZER;
        char err[256], why[512], currency[8] = "", kind[96];
        char version[ML_VERSION_MAX];
        ml_frame_t f = {0};
        fc_def_t d;
        double *owned = NULL;
        const double *v;
        ets_model_t *model = NULL;
        ets_point_t *pts = NULL;
        int fit_status;
        int64_t n;
        size_t first = 0, observed;
        bool nonneg = true;
        store_err_t serr;
        handler_result_t res = HANDLER_OK;

        BSON_APPEND_UTF8(&filter, "_id", forecast_id);
        BSON_APPEND_UTF8(&filter, "tenant", tenant);
        serr = store_find_one(st->store, ML_DB, FC_COLL, &filter, NULL, &doc,
                              err, sizeof(err));
        if (serr == STORE_NOT_FOUND) /* deleted meanwhile */
                goto out;
        if (serr != STORE_OK) {
                res = store_err_transient(serr) ? HANDLER_TRANSIENT
                                                : HANDLER_PERMANENT;
                goto out;
        }
        def_of_doc(&doc, &d);
        if (d.metric < 0)
                goto done;
        if (status != 200) {
                slice_t detail = codec_map_str(body, "detail");
                snprintf(why, sizeof(why), "analytics answered %d: %.*s",
                         status, (int)(detail.len > 300 ? 300 : detail.len),
                         detail.ptr ? detail.ptr : "");
                res = fc_failed(ctx, &doc, 502, why);
                goto done;
        }
        if (!ml_frame_read(body, false, &f, err, sizeof(err))) {
                snprintf(why, sizeof(why), "analytics' answer: %s", err);
                res = fc_failed(ctx, &doc, 502, why);
                goto done;
        }
        v = pick_series(&f, &d, currency, &owned, why, sizeof(why));
        if (!v) {
                res = fc_failed(ctx, &doc, 422, why);
                goto done;
        }
        observed = ml_observed(v, f.days, &first);
        for (size_t t = 0; t < f.days; t++)
                if (v[t] < 0)
                        nonneg = false;
        model = ml_fit_daily(v, f.days, (int)d.horizon,
                             st->set->forecast_min_days, &fit_status, err,
                             sizeof(err));
        if (!model) {
                snprintf(why, sizeof(why), "%s: %s", ml_metrics[d.metric].name,
                         err);
                res = fc_failed(ctx, &doc, fit_status, why);
                goto done;
        }
        pts = malloc((size_t)d.horizon * sizeof(*pts));
        if (!pts || ets_forecast(model, (int)d.horizon, pts) != ETS_OK) {
                res = HANDLER_TRANSIENT;
                goto done;
        }
        snprintf(kind, sizeof(kind), "forecast/%s", forecast_id);
        serr = ml_version_next(st->store, tenant, kind, rt_env(ctx)->id, &n,
                               version, err, sizeof(err));
        if (serr != STORE_OK) {
                res = ml_store_failed(ctx, serr, "heads", err);
                goto done;
        }
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_UTF8(&set, "status", "ready");
        BSON_APPEND_INT64(&set, "version", n);
        BSON_APPEND_UTF8(&set, "series_currency", currency);
        BSON_APPEND_DATE_TIME(&set, "updated_at", (int64_t)clock_wall_ms());
        append_result(&set, model, pts, (int)d.horizon, &f, first, observed,
                      nonneg, version);
        bson_append_document_end(&update, &set);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$unset", &set);
        BSON_APPEND_UTF8(&set, "error", "");
        BSON_APPEND_UTF8(&set, "refresh_error", "");
        bson_append_document_end(&update, &set);
        serr = store_update(st->store, ML_DB, FC_COLL, &filter, &update, 0,
                            NULL, err, sizeof(err));
        if (serr == STORE_NOT_FOUND)
                goto done;
        if (serr != STORE_OK) {
                res = ml_store_failed(ctx, serr, "forecasts", err);
                goto done;
        }
        BSON_APPEND_UTF8(&extra, "forecast_id", forecast_id);
        BSON_APPEND_UTF8(&extra, "metric", ml_metrics[d.metric].name);
        BSON_APPEND_UTF8(&extra, "model", ets_name(model));
        BSON_APPEND_DOUBLE(&extra, "aicc", ets_stats(model).aicc);
        BSON_APPEND_INT64(&extra, "history_days", (int64_t)observed);
        serr = ml_version_record(st->store, tenant, kind, n, version, &extra,
                                 err, sizeof(err));
        if (serr != STORE_OK) {
                res = ml_store_failed(ctx, serr, "models", err);
                goto done;
        }
        res = emit_completed(ctx, forecast_id, &d, ets_name(model), version);
done:
        bson_destroy(&doc);
out:
        bson_destroy(&filter);
        bson_destroy(&update);
        bson_destroy(&extra);
        ets_destroy(model);
        free(pts);
        free(owned);
        ml_frame_free(&f);
        return res;
}

/* ---------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------ */

/* Fields the answers never show. */
static const char *const fc_hidden[] = {"_id", "tenant", "reply_id",
                                        "series_currency", NULL};
static const char *const fc_summary_hidden[] = {
        "_id", "tenant", "reply_id", "series_currency", "points", NULL};

/* The caller's forecast named in body: role checked, {_id, tenant} into
 * filter (initialised). false after a reply. */
static bool fc_filter(rt_ctx_t *ctx, const msgpack_object *body,
                      schema_role_t least, bson_t *filter, char *id,
                      size_t idlen) {
        char tenant[ML_TENANT_MAX];
        bson_init(filter);
        if (!rt_require_role(ctx, least) || !ml_tenant(ctx, tenant))
                return false;
        if (!ml_str(body, "forecast_id", id, idlen))
                id[0] = '\0';
        BSON_APPEND_UTF8(filter, "_id", id);
        BSON_APPEND_UTF8(filter, "tenant", tenant);
        return true;
}

/* The answer of a failed forecast: 422 (its data) or 502 (analytics). */
static void reply_failed(rt_ctx_t *ctx, const bson_t *doc) {
        char detail[512] = "the forecast failed";
        int code = 422;
        bson_iter_t it;
        bson_t sub;
        uint32_t len;
        const uint8_t *data;
        if (bson_iter_init_find(&it, doc, "error") &&
            BSON_ITER_HOLDS_DOCUMENT(&it)) {
                bson_iter_document(&it, &len, &data);
                if (bson_init_static(&sub, data, len)) {
                        code = (int)ml_bson_int(&sub, "status", 422);
                        ml_bson_str(&sub, "detail", detail, sizeof(detail));
                }
        }
        rt_reply_problem(ctx, code == 422 ? 422 : 502,
                         code == 422 ? "Unprocessable Content" : "Bad Gateway",
                         detail);
}

handler_result_t ml_forecasts_get(rt_ctx_t *ctx, const msgpack_object *body) {
        ml_state_t *st = rt_state(ctx);
        char id[80], err[256], status[16];
        bson_t filter, doc, shown = BSON_INITIALIZER;
        store_err_t serr;
        handler_result_t res = HANDLER_OK;
        if (!fc_filter(ctx, body, SCHEMA_ROLE_VIEWER, &filter, id, sizeof(id)))
                goto done;
        serr = store_find_one(st->store, ML_DB, FC_COLL, &filter, NULL, &doc,
                              err, sizeof(err));
        if (serr == STORE_NOT_FOUND) {
                rt_reply_problem(ctx, 404, "Not Found", "no such forecast");
                goto done;
        }
        if (serr != STORE_OK) {
                res = ml_store_failed(ctx, serr, "forecasts", err);
                goto done;
        }
        ml_bson_str(&doc, "status", status, sizeof(status));
        if (strcmp(status, "pending") == 0 &&
            (int64_t)clock_wall_ms() - ml_bson_int(&doc, "requested_at", 0) >
                    (int64_t)st->set->request_timeout_s * 1000)
                rt_reply_problem(ctx, 502, "Bad Gateway",
                                 "analytics has not answered for this "
                                 "forecast; the next refresh asks again");
        else if (strcmp(status, "failed") == 0)
                reply_failed(ctx, &doc);
        else {
                /* forecast_id first, then the stored fields. */
                BSON_APPEND_UTF8(&shown, "forecast_id", id);
                bson_concat(&shown, &doc);
                ml_pack_bson(rt_reply(ctx, 200), &shown, fc_hidden);
        }
        bson_destroy(&doc);
done:
        bson_destroy(&filter);
        bson_destroy(&shown);
        return res;
}

handler_result_t ml_forecasts_list(rt_ctx_t *ctx, const msgpack_object *body) {
        ml_state_t *st = rt_state(ctx);
        char tenant[ML_TENANT_MAX], err[256];
        bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
        int64_t limit = 50;
        ml_list_t l;
        store_err_t serr;
        handler_result_t res = HANDLER_OK;
        msgpack_packer *pk;
        ml_list_init(&l, "forecast_id", fc_summary_hidden);
        if (!rt_require_role(ctx, SCHEMA_ROLE_VIEWER) ||
            !ml_tenant(ctx, tenant))
                goto done;
        ml_int(body, "limit", &limit);
        if (limit < 1 || limit > 200)
                limit = 50;
        BSON_APPEND_UTF8(&filter, "tenant", tenant);
        bson_destroy(&opts);
        ml_find_opts(&opts, "created_at", -1, 0, limit);
        serr = ml_list_find(&l, st->store, FC_COLL, &filter, &opts, err,
                            sizeof(err));
        if (serr != STORE_OK) {
                res = ml_store_failed(ctx, serr, "forecasts", err);
                goto done;
        }
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 1);
        ml_list_pack(pk, "forecasts", &l);
done:
        ml_list_free(&l);
        bson_destroy(&filter);
        bson_destroy(&opts);
        return res;
}

handler_result_t ml_forecasts_delete(rt_ctx_t *ctx,
                                     const msgpack_object *body) {
        ml_state_t *st = rt_state(ctx);
        char id[80], err[256];
        bson_t filter;
        int64_t deleted = 0;
        store_err_t serr;
        handler_result_t res = HANDLER_OK;
        if (!fc_filter(ctx, body, SCHEMA_ROLE_MEMBER, &filter, id, sizeof(id)))
                goto done;
        serr = store_delete(st->store, ML_DB, FC_COLL, &filter, 0, &deleted,
                            err, sizeof(err));
        if (serr != STORE_OK)
                res = ml_store_failed(ctx, serr, "forecasts", err);
        else if (!deleted)
                rt_reply_problem(ctx, 404, "Not Found", "no such forecast");
        else
                msgpack_pack_map(rt_reply(ctx, 204), 0);
done:
        bson_destroy(&filter);
        return res;
}
