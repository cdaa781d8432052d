/*
 * budget.c - budget pacing and what-if, computed from each tenant's
 * overview (refresh.c) and answered from the store.
 *
 * Pacing (per currency): for every ad channel, the spend and the revenue
 * the platform reports (conversion value) of the month so far, plus the
 * forecast of the rest of the month (ETS, ets_forecast_total: the
 * interval of a sum, not a sum of intervals); for the tenant, its total
 * spend and its store revenue (net sales) the same way. The month is the
 * one of the first day not yet complete.
 *
 * Response curves (per currency and ad channel): response.h's Hill curve
 * with adstock, revenue (conversion value) against spend over the
 * overview's days, with its in-sample and holdout error. The what-if
 * route moves daily budget from one channel to another under these
 * curves: an answer of a model, labelled so, with the curves' errors and
 * the model's assumptions (response.h) in every answer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ets.h"
#include "log.h"
#include "ml_internal.h"
#include "msgid.h"
#include "response.h"

#define CHANNELS_MAX 32

static const char *const assumptions[] = {
        "spend drives revenue, not the other way round: a channel whose "
        "budget follows its sales looks more responsive than it is",
        "channels act independently: moving budget changes only the two "
        "channels involved",
        "the curve is known only within the daily spend seen in the "
        "history; beyond it the answer extrapolates (out_of_range)",
        "revenue is the conversion value the ad platform reports for the "
        "channel",
        "no seasonality, trend or competition beyond the curve's base",
        "the error is the curve's on days it was not fitted to (holdout: "
        "the last 20% of the days); parameter uncertainty is not included",
};

#define MODEL_TEXT                                                        \
        "a model, not a measurement: each channel's revenue as a "        \
        "diminishing-returns (Hill) curve of its adstocked daily spend, " \
        "fitted to the last days of the channel's own history"

/* ---------------------------------------------------------------------------
 * Pacing
 * ------------------------------------------------------------------------ */

/* Sum of v[a..b] (NaN counted as 0). */
static double sum_range(const double *v, size_t a, size_t b) {
        double s = 0;
        for (size_t i = a; i <= b; i++)
                if (!isnan(v[i]))
                        s += v[i];
        return s;
}

/* One measure's projection into child "key" of doc. */
static void project(bson_t *doc, const char *key, const double *v,
                    const ml_frame_t *f, int32_t month_start, int days_left,
                    int min_days) {
        bson_t c;
        double actual = 0;
        char err[256];
        int status;
        if (month_start <= f->to)
                actual = sum_range(v,
                                   (size_t)(month_start > f->from
                                                    ? month_start - f->from
                                                    : 0),
                                   f->days - 1);
        BSON_APPEND_DOCUMENT_BEGIN(doc, key, &c);
        BSON_APPEND_DOUBLE(&c, "actual", actual);
        ets_model_t *m = ml_fit_daily(v, f->days, days_left, min_days, &status,
                                      err, sizeof(err));
        ets_point_t t;
        if (m && ets_forecast_total(m, days_left, &t) == ETS_OK) {
                BSON_APPEND_DOUBLE(&c, "forecast", fmax(t.mean, 0));
                BSON_APPEND_DOUBLE(&c, "projected", actual + fmax(t.mean, 0));
                BSON_APPEND_DOUBLE(&c, "lo80", actual + fmax(t.lo80, 0));
                BSON_APPEND_DOUBLE(&c, "hi80", actual + fmax(t.hi80, 0));
                BSON_APPEND_DOUBLE(&c, "lo95", actual + fmax(t.lo95, 0));
                BSON_APPEND_DOUBLE(&c, "hi95", actual + fmax(t.hi95, 0));
                BSON_APPEND_UTF8(&c, "model", ets_name(m));
                if (isfinite(ets_stats(m).mape))
                        BSON_APPEND_DOUBLE(&c, "fit_mape", ets_stats(m).mape);
        } else {
                BSON_APPEND_UTF8(&c, "error", m ? "the forecast failed" : err);
        }
        ets_destroy(m);
        bson_append_document_end(doc, &c);
}

/* Ad channels with spend in currency c: indexes of their spend series. */
static size_t ad_channels(const ml_frame_t *f, const char *currency,
                          size_t *out) {
        size_t n = 0;
        for (size_t i = 0; i < f->n && n < CHANNELS_MAX; i++) {
                const ml_series_t *s = &f->s[i];
                bool spent = false;
                if (s->metric != ML_M_SPEND ||
                    strcmp(s->channel, ML_TOTAL) == 0 ||
                    strcmp(s->currency, currency) != 0)
                        continue;
                for (size_t d = 0; d < f->days && !spent; d++)
                        spent = s->v[d] > 0;
                if (spent)
                        out[n++] = i;
        }
        return n;
}

/* The fields pacing and curve documents begin with. */
static void doc_begin(bson_t *doc, const char *tenant, const char *currency,
                      int32_t through, const char *version) {
        char id[ML_TENANT_MAX + 16], day[ML_DAY_TEXT];
        snprintf(id, sizeof(id), "%s|%s", tenant, currency);
        ml_day_format(through, day);
        BSON_APPEND_UTF8(doc, "_id", id);
        BSON_APPEND_UTF8(doc, "tenant", tenant);
        BSON_APPEND_UTF8(doc, "currency", currency);
        BSON_APPEND_UTF8(doc, "through", day);
        BSON_APPEND_UTF8(doc, "model_version", version);
}

static store_err_t version_of(rt_ctx_t *ctx, const char *tenant,
                              const char *kind, int64_t *n,
                              char version[ML_VERSION_MAX], char *err,
                              size_t errlen) {
        ml_state_t *st = rt_state(ctx);
        return ml_version_next(st->store, tenant, kind, rt_env(ctx)->id, n,
                               version, err, errlen);
}

static handler_result_t pacing_update(rt_ctx_t *ctx, const char *tenant,
                                      const ml_frame_t *f,
                                      const char *currency) {
        ml_state_t *st = rt_state(ctx);
        size_t idx[CHANNELS_MAX], n = ad_channels(f, currency, idx);
        int y, m, d;
        int32_t month_start, month_end;
        char id[ML_TENANT_MAX + 16], kind[32], version[ML_VERSION_MAX];
        char err[256], month[16], key[24];
        bson_t doc = BSON_INITIALIZER, filter = BSON_INITIALIZER, arr, ch;
        const ml_series_t *s;
        int64_t vn;
        store_err_t serr;
        if (n == 0)
                goto none;
        ml_day_civil(f->to + 1, &y, &m, &d);
        month_start = ml_day_of_civil(y, m, 1);
        month_end =
                ml_day_of_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) -
                1;
        snprintf(kind, sizeof(kind), "pacing/%s", currency);
        serr = version_of(ctx, tenant, kind, &vn, version, err, sizeof(err));
        if (serr != STORE_OK) {
                bson_destroy(&doc);
                bson_destroy(&filter);
                return ml_store_failed(ctx, serr, "heads", err);
        }
        snprintf(id, sizeof(id), "%s|%s", tenant, currency);
        snprintf(month, sizeof(month), "%04d-%02d", y, m);
        doc_begin(&doc, tenant, currency, f->to, version);
        BSON_APPEND_UTF8(&doc, "month", month);
        BSON_APPEND_INT32(&doc, "days_left", month_end - f->to);
        BSON_APPEND_UTF8(&doc, "revenue_is",
                         "channels: the conversion value their platform "
                         "reports; total: store revenue (net sales)");
        BSON_APPEND_ARRAY_BEGIN(&doc, "channels", &arr);
        for (size_t i = 0; i < n; i++) {
                s = &f->s[idx[i]];
                const ml_series_t *cv = ml_frame_find(f, ML_M_CONVERSION_VALUE,
                                                      s->channel, currency);
                snprintf(key, sizeof(key), "%zu", i);
                BSON_APPEND_DOCUMENT_BEGIN(&arr, key, &ch);
                BSON_APPEND_UTF8(&ch, "provider", s->channel);
                project(&ch, "spend", s->v, f, month_start, month_end - f->to,
                        st->set->forecast_min_days);
                if (cv)
                        project(&ch, "revenue", cv->v, f, month_start,
                                month_end - f->to, st->set->forecast_min_days);
                bson_append_document_end(&arr, &ch);
        }
        bson_append_array_end(&doc, &arr);
        BSON_APPEND_DOCUMENT_BEGIN(&doc, "total", &ch);
        if ((s = ml_frame_find(f, ML_M_SPEND, ML_TOTAL, currency)))
                project(&ch, "spend", s->v, f, month_start, month_end - f->to,
                        st->set->forecast_min_days);
        if ((s = ml_frame_find(f, ML_M_REVENUE, ML_TOTAL, currency)))
                project(&ch, "revenue", s->v, f, month_start, month_end - f->to,
                        st->set->forecast_min_days);
        bson_append_document_end(&doc, &ch);
        BSON_APPEND_DATE_TIME(&doc, "updated_at", (int64_t)clock_wall_ms());
        BSON_APPEND_UTF8(&filter, "_id", id);
        serr = ml_replace(st->store, "pacing", &filter, &doc, err, sizeof(err));
        if (serr == STORE_OK)
                serr = ml_version_record(st->store, tenant, kind, vn, version,
                                         NULL, err, sizeof(err));
        bson_destroy(&doc);
        bson_destroy(&filter);
        if (serr != STORE_OK)
                return ml_store_failed(ctx, serr, "pacing", err);
        return HANDLER_OK;
none:
        bson_destroy(&doc);
        bson_destroy(&filter);
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * Response curves
 * ------------------------------------------------------------------------ */

static void append_error(bson_t *doc, const char *key,
                         const response_error_t *e) {
        bson_t c;
        BSON_APPEND_DOCUMENT_BEGIN(doc, key, &c);
        if (isfinite(e->rmse))
                BSON_APPEND_DOUBLE(&c, "rmse", e->rmse);
        if (isfinite(e->mae))
                BSON_APPEND_DOUBLE(&c, "mae", e->mae);
        if (isfinite(e->mape))
                BSON_APPEND_DOUBLE(&c, "mape", e->mape);
        if (isfinite(e->r2))
                BSON_APPEND_DOUBLE(&c, "r2", e->r2);
        bson_append_document_end(doc, &c);
}

static handler_result_t curves_update(rt_ctx_t *ctx, const char *tenant,
                                      const ml_frame_t *f,
                                      const char *currency) {
        ml_state_t *st = rt_state(ctx);
        size_t idx[CHANNELS_MAX], n = ad_channels(f, currency, idx);
        char id[ML_TENANT_MAX + 16], kind[32], version[ML_VERSION_MAX];
        char err[256], key[24];
        bson_t doc = BSON_INITIALIZER, filter = BSON_INITIALIZER, arr, ch, p;
        int64_t vn;
        store_err_t serr;
        if (n == 0)
                goto done;
        snprintf(kind, sizeof(kind), "response/%s", currency);
        serr = version_of(ctx, tenant, kind, &vn, version, err, sizeof(err));
        if (serr != STORE_OK)
                goto failed;
        snprintf(id, sizeof(id), "%s|%s", tenant, currency);
        doc_begin(&doc, tenant, currency, f->to, version);
        BSON_APPEND_ARRAY_BEGIN(&doc, "channels", &arr);
        for (size_t i = 0; i < n; i++) {
                const ml_series_t *s = &f->s[idx[i]];
                const ml_series_t *cv = ml_frame_find(f, ML_M_CONVERSION_VALUE,
                                                      s->channel, currency);
                size_t first, last7 = 0;
                double recent = 0;
                response_model_t rm;
                response_err_t re = RESPONSE_TOO_SHORT;
                ml_observed(s->v, f->days, &first);
                for (size_t d = f->days; d > first && last7 < 7; d--, last7++)
                        recent += isnan(s->v[d - 1]) ? 0 : s->v[d - 1];
                snprintf(key, sizeof(key), "%zu", i);
                BSON_APPEND_DOCUMENT_BEGIN(&arr, key, &ch);
                BSON_APPEND_UTF8(&ch, "provider", s->channel);
                BSON_APPEND_DOUBLE(&ch, "current_spend",
                                   last7 ? recent / (double)last7 : 0);
                if (cv) {
                        /* Spend before the channel began is not spend. */
                        double *x = malloc(f->days * sizeof(double));
                        if (!x) {
                                bson_destroy(&doc);
                                bson_destroy(&filter);
                                return HANDLER_TRANSIENT;
                        }
                        for (size_t d = 0; d < f->days; d++)
                                x[d] = isnan(s->v[d]) ? 0 : s->v[d];
                        re = response_fit(x + first, cv->v + first,
                                          f->days - first, true, &rm);
                        free(x);
                }
                BSON_APPEND_BOOL(&ch, "ok", re == RESPONSE_OK);
                if (re != RESPONSE_OK) {
                        BSON_APPEND_UTF8(&ch, "reason",
                                         cv ? response_strerror(re)
                                            : "no conversion value");
                        bson_append_document_end(&arr, &ch);
                        continue;
                }
                BSON_APPEND_DOCUMENT_BEGIN(&ch, "params", &p);
                BSON_APPEND_DOUBLE(&p, "base", rm.p.base);
                BSON_APPEND_DOUBLE(&p, "beta", rm.p.beta);
                BSON_APPEND_DOUBLE(&p, "half", rm.p.half);
                BSON_APPEND_DOUBLE(&p, "shape", rm.p.shape);
                BSON_APPEND_DOUBLE(&p, "lambda", rm.p.lambda);
                bson_append_document_end(&ch, &p);
                BSON_APPEND_DOUBLE(&ch, "sigma", rm.sigma);
                append_error(&ch, "fit", &rm.fit);
                append_error(&ch, "holdout", &rm.holdout);
                BSON_APPEND_INT64(&ch, "days", (int64_t)rm.n);
                BSON_APPEND_DOUBLE(&ch, "max_spend", rm.max_spend);
                BSON_APPEND_DOUBLE(&ch, "last_adstock", rm.last_adstock);
                bson_append_document_end(&arr, &ch);
        }
        bson_append_array_end(&doc, &arr);
        BSON_APPEND_DATE_TIME(&doc, "updated_at", (int64_t)clock_wall_ms());
        BSON_APPEND_UTF8(&filter, "_id", id);
        serr = ml_replace(st->store, "curves", &filter, &doc, err, sizeof(err));
        if (serr == STORE_OK)
                serr = ml_version_record(st->store, tenant, kind, vn, version,
                                         NULL, err, sizeof(err));
        if (serr != STORE_OK)
                goto failed;
done:
        bson_destroy(&doc);
        bson_destroy(&filter);
        return HANDLER_OK;
failed:
        bson_destroy(&doc);
        bson_destroy(&filter);
        return ml_store_failed(ctx, serr, "curves", err);
}

handler_result_t ml_budget_update(rt_ctx_t *ctx, const char *tenant,
                                  const ml_frame_t *f) {
        handler_result_t res = HANDLER_OK;
        for (size_t i = 0; i < f->n && res == HANDLER_OK; i++) {
                const ml_series_t *s = &f->s[i];
                bool first = true;
                if (s->metric != ML_M_SPEND ||
                    strcmp(s->channel, ML_TOTAL) != 0)
                        continue;
                for (size_t j = 0; j < i && first; j++)
                        first = !(f->s[j].metric == ML_M_SPEND &&
                                  strcmp(f->s[j].channel, ML_TOTAL) == 0 &&
                                  strcmp(f->s[j].currency, s->currency) == 0);
                if (!first)
                        continue;
                res = pacing_update(ctx, tenant, f, s->currency);
                if (res == HANDLER_OK)
                        res = curves_update(ctx, tenant, f, s->currency);
        }
        return res;
}

/* ---------------------------------------------------------------------------
 * Reading: one document per currency, the caller names it when several
 * ------------------------------------------------------------------------ */

typedef struct pick {
        bson_t doc;
        bool found;
        size_t n;
        char seen[128];
} pick_t;

static bool pick_each(const bson_t *doc, void *arg) {
        pick_t *p = arg;
        char cur[8];
        size_t off = strlen(p->seen);
        ml_bson_str(doc, "currency", cur, sizeof(cur));
        snprintf(p->seen + off, sizeof(p->seen) - off, "%s%s", p->n ? ", " : "",
                 cur);
        if (!p->found) {
                bson_copy_to(doc, &p->doc);
                p->found = true;
        }
        p->n++;
        return true;
}

/* The tenant's document of coll for the currency of body (or the only
 * one). false after a reply (404, 422, store failure in *res). */
static bool pick_currency(rt_ctx_t *ctx, const msgpack_object *body,
                          const char *coll, const char *what, pick_t *p,
                          handler_result_t *res) {
        ml_state_t *st = rt_state(ctx);
        char tenant[ML_TENANT_MAX], currency[8], err[256];
        bson_t filter = BSON_INITIALIZER;
        store_err_t serr;
        bool have_currency;
        memset(p, 0, sizeof(*p));
        *res = HANDLER_OK;
        if (!rt_require_role(ctx, SCHEMA_ROLE_VIEWER) ||
            !ml_tenant(ctx, tenant)) {
                bson_destroy(&filter);
                return false;
        }
        have_currency = ml_str(body, "currency", currency, sizeof(currency));
        BSON_APPEND_UTF8(&filter, "tenant", tenant);
        if (have_currency)
                BSON_APPEND_UTF8(&filter, "currency", currency);
        serr = store_find(st->store, ML_DB, coll, &filter, NULL, pick_each, p,
                          err, sizeof(err));
        bson_destroy(&filter);
        if (serr != STORE_OK) {
                *res = ml_store_failed(ctx, serr, coll, err);
                goto refused;
        }
        if (!p->found) {
                char detail[256];
                snprintf(detail, sizeof(detail),
                         "no %s%s%s yet: it is computed from the ad spend "
                         "when analytics closes a day",
                         what, have_currency ? " in " : "",
                         have_currency ? currency : "");
                rt_reply_problem(ctx, 404, "Not Found", detail);
                return false;
        }
        if (p->n > 1) {
                ml_unprocessable(ctx,
                                 "the spend is in several currencies (%s): "
                                 "name one with currency",
                                 p->seen);
                goto refused;
        }
        return true;
refused:
        if (p->found)
                bson_destroy(&p->doc);
        return false;
}

handler_result_t ml_pacing_get(rt_ctx_t *ctx, const msgpack_object *body) {
        static const char *const hidden[] = {"_id", "tenant", NULL};
        pick_t p;
        handler_result_t res;
        if (!pick_currency(ctx, body, "pacing", "pacing", &p, &res))
                return res;
        ml_pack_bson(rt_reply(ctx, 200), &p.doc, hidden);
        bson_destroy(&p.doc);
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * What-if
 * ------------------------------------------------------------------------ */

typedef struct curve {
        char provider[ML_CHANNEL_MAX];
        bool ok;
        char reason[128];
        double current;
        double holdout_mape, holdout_rmse, fit_r2;
        response_model_t m;
} curve_t;

static bool sub_doc(const bson_t *doc, const char *key, bson_t *out) {
        bson_iter_t it;
        uint32_t len;
        const uint8_t *data;
        if (!bson_iter_init_find(&it, doc, key) ||
            !BSON_ITER_HOLDS_DOCUMENT(&it))
                return false;
        bson_iter_document(&it, &len, &data);
        return bson_init_static(out, data, len);
}

static size_t curves_read(const bson_t *doc, curve_t *c, size_t max) {
        bson_iter_t it, arr;
        size_t n = 0;
        if (!bson_iter_init_find(&it, doc, "channels") ||
            !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &arr))
                return 0;
        while (bson_iter_next(&arr) && n < max) {
                bson_t ch, p, e;
                uint32_t len;
                const uint8_t *data;
                bson_iter_t ok;
                if (!BSON_ITER_HOLDS_DOCUMENT(&arr))
                        continue;
                bson_iter_document(&arr, &len, &data);
                if (!bson_init_static(&ch, data, len))
                        continue;
                curve_t *k = &c[n++];
                memset(k, 0, sizeof(*k));
                ml_bson_str(&ch, "provider", k->provider, sizeof(k->provider));
                ml_bson_str(&ch, "reason", k->reason, sizeof(k->reason));
                k->ok = bson_iter_init_find(&ok, &ch, "ok") &&
                        BSON_ITER_HOLDS_BOOL(&ok) && bson_iter_bool(&ok);
                k->current = ml_bson_num(&ch, "current_spend", 0);
                k->holdout_mape = k->holdout_rmse = k->fit_r2 = NAN;
                if (!k->ok || !sub_doc(&ch, "params", &p))
                        continue;
                k->m.p.base = ml_bson_num(&p, "base", 0);
                k->m.p.beta = ml_bson_num(&p, "beta", 0);
                k->m.p.half = ml_bson_num(&p, "half", 1);
                k->m.p.shape = ml_bson_num(&p, "shape", 1);
                k->m.p.lambda = ml_bson_num(&p, "lambda", 0);
                k->m.adstock = true;
                k->m.sigma = ml_bson_num(&ch, "sigma", 0);
                k->m.n = (size_t)ml_bson_int(&ch, "days", 0);
                k->m.max_spend = ml_bson_num(&ch, "max_spend", 0);
                k->m.last_adstock = ml_bson_num(&ch, "last_adstock", 0);
                if (sub_doc(&ch, "holdout", &e)) {
                        k->holdout_mape = ml_bson_num(&e, "mape", NAN);
                        k->holdout_rmse = ml_bson_num(&e, "rmse", NAN);
                }
                if (sub_doc(&ch, "fit", &e))
                        k->fit_r2 = ml_bson_num(&e, "r2", NAN);
        }
        return n;
}

static void pack_channel(msgpack_packer *pk, const curve_t *c, double before,
                         double after, size_t days, double delta, bool oor) {
        msgpack_pack_map(pk, 8);
        ml_kv_str(pk, "provider", c->provider);
        ml_kv_num(pk, "daily_spend_before", before);
        ml_kv_num(pk, "daily_spend_after", after);
        ml_kv_num(pk, "revenue_before",
                  response_steady(&c->m, before) * (double)days);
        ml_kv_num(pk, "revenue_after",
                  response_steady(&c->m, after) * (double)days);
        ml_kv_num(pk, "revenue_change", delta);
        codec_pack_str(pk, "out_of_range");
        if (oor)
                msgpack_pack_true(pk);
        else
                msgpack_pack_false(pk);
        codec_pack_str(pk, "error");
        msgpack_pack_map(pk, 3);
        ml_kv_num(pk, "holdout_mape", c->holdout_mape);
        ml_kv_num(pk, "holdout_rmse", c->holdout_rmse);
        ml_kv_num(pk, "fit_r2", c->fit_r2);
}

/* The channel named in body[key] among c, or -1 after a 422. */
static int channel_of(rt_ctx_t *ctx, const msgpack_object *body,
                      const char *key, const curve_t *c, size_t n) {
        char name[ML_CHANNEL_MAX], known[256] = "";
        size_t off = 0;
        ml_str(body, key, name, sizeof(name));
        for (size_t i = 0; i < n; i++) {
                if (strcmp(c[i].provider, name) == 0) {
                        if (c[i].ok)
                                return (int)i;
                        ml_unprocessable(ctx,
                                         "%s has no fitted response curve: %s",
                                         name, c[i].reason);
                        return -1;
                }
                off += (size_t)snprintf(known + off, sizeof(known) - off,
                                        "%s%s", i ? ", " : "", c[i].provider);
                if (off >= sizeof(known))
                        off = sizeof(known) - 1;
        }
        ml_unprocessable(ctx,
                         "%s: no ad spend on %s in the history (channels: "
                         "%s)",
                         key, name, known[0] ? known : "none");
        return -1;
}

handler_result_t ml_whatif(rt_ctx_t *ctx, const msgpack_object *body) {
        curve_t c[CHANNELS_MAX];
        double spend[CHANNELS_MAX], delta[CHANNELS_MAX], total, amount;
        response_model_t models[CHANNELS_MAX];
        int64_t days = 30, amount_minor = 0;
        char version[ML_VERSION_MAX], currency[8];
        size_t n;
        int from, to;
        bool oor;
        pick_t p;
        handler_result_t res;
        msgpack_packer *pk;
        if (!pick_currency(ctx, body, "curves", "response curves", &p, &res))
                return res;
        n = curves_read(&p.doc, c, CHANNELS_MAX);
        ml_bson_str(&p.doc, "model_version", version, sizeof(version));
        ml_bson_str(&p.doc, "currency", currency, sizeof(currency));
        bson_destroy(&p.doc);
        ml_int(body, "days", &days);
        ml_int(body, "amount_minor", &amount_minor);
        if (days < 1 || days > 366 || amount_minor < 1) {
                rt_reply_problem(ctx, 400, "Bad Request",
                                 "days must be 1 to 366 and amount_minor at "
                                 "least 1");
                return HANDLER_OK;
        }
        if ((from = channel_of(ctx, body, "from", c, n)) < 0 ||
            (to = channel_of(ctx, body, "to", c, n)) < 0)
                return HANDLER_OK;
        if (from == to) {
                ml_unprocessable(ctx, "from and to are the same channel");
                return HANDLER_OK;
        }
        amount = (double)amount_minor;
        if (amount > c[from].current) {
                ml_unprocessable(ctx,
                                 "amount_minor (%lld) is more than %s's "
                                 "current daily spend (%.0f)",
                                 (long long)amount_minor, c[from].provider,
                                 c[from].current);
                return HANDLER_OK;
        }
        for (size_t i = 0; i < n; i++) {
                models[i] = c[i].m;
                spend[i] = c[i].current;
        }
        if (response_move(models, spend, n, (size_t)from, (size_t)to, amount,
                          (size_t)days, delta, &total, &oor) != RESPONSE_OK) {
                ml_unprocessable(ctx, "the move cannot be evaluated");
                return HANDLER_OK;
        }
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 9);
        ml_kv_str(pk, "model", MODEL_TEXT);
        ml_kv_str(pk, "model_version", version);
        ml_kv_str(pk, "currency", currency);
        ml_kv_int(pk, "amount_minor", amount_minor);
        ml_kv_int(pk, "days", days);
        ml_kv_num(pk, "revenue_change", total);
        codec_pack_str(pk, "channels");
        msgpack_pack_array(pk, 2);
        pack_channel(pk, &c[from], spend[from], spend[from] - amount,
                     (size_t)days, delta[from], false);
        pack_channel(pk, &c[to], spend[to], spend[to] + amount, (size_t)days,
                     delta[to], oor);
        codec_pack_str(pk, "assumptions");
        msgpack_pack_array(pk, sizeof(assumptions) / sizeof(assumptions[0]));
        for (size_t i = 0; i < sizeof(assumptions) / sizeof(assumptions[0]);
             i++)
                codec_pack_str(pk, assumptions[i]);
        codec_pack_str(pk, "out_of_range");
        if (oor)
                msgpack_pack_true(pk);
        else
                msgpack_pack_false(pk);
        return HANDLER_OK;
}
