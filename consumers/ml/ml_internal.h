/*
 * ml_internal.h - what the files of the ml group share.
 *
 * The ml group turns a tenant's numbers into forecasts, anomalies, scores
 * and budget answers, on top of its numerical core (ets.h, anomaly.h,
 * logreg.h, response.h). It never reads another group's database:
 *  - daily series come from analytics' read-only command analytics.metrics
 *    (rt_request; the reply arrives through on_reply), asked when a user
 *    creates a forecast, when analytics closes a day (analytics.day.closed)
 *    and on each tenant's schedule (durable timers, shared/timer.h);
 *  - scoring features come from integrations' contact, deal and order
 *    events, folded into ml's own feature store (features.c).
 *
 * Files: ml.c (the table, start-up), settings.c, common.c (days, ids,
 * packing, model versions), frame.c (analytics' rows as daily series),
 * refresh.c (refreshes: requests, replies, schedules), forecast.c,
 * anomalies.c, budget.c (pacing, response curves, what-if), features.c
 * (the feature store), scoring.c (lead and churn models and scores),
 * models.c (the models route).
 *
 * Data (database <prefix>ml; every document carries its tenant and every
 * read filters on it):
 *   forecasts  {_id forecast_id, tenant, metric, provider, campaign_id,
 *               currency, horizon, status, created_at, created_by,
 *               requested_at, version, model_version, reply_id, result,
 *               error {status, detail}}
 *   requests   {_id correlation id, tenant, kind "recent"|"forecast",
 *               forecast_id, to, created_at, expires_at (TTL)}
 *   tenants    {_id tenant, checked_through (day number), refreshed_at,
 *               reason}
 *   anomalies  {_id anomaly_id, tenant, kind, metric, channel, currency,
 *               day, value, expected, lower, upper, score, direction,
 *               model_version, reply_id, created_at}
 *   pacing     {_id "<tenant>|<currency>", the pacing answer, reply_id}
 *   curves     {_id "<tenant>|<currency>", channels: [...], version,
 *               model_version, reply_id}
 *   models     {_id "<tenant>|<kind>|<n>", tenant, kind, version,
 *               model_version, created_at, report...}  every version kept
 *   heads      {_id "<tenant>|<kind>", n (versions so far), current,
 *               every_days}
 *   contacts, deals, orders   the feature store (features.c)
 *   scores     {_id "<tenant>|<kind>|<provider>|<account>|<id>", tenant,
 *               kind, provider, account_id, id, score, factors,
 *               model_version}
 *   timers     the timer service's records (shared/timer.h)
 *
 * Every function runs on the thread of the handler calling it.
 */
#ifndef OMNIFY_ML_INTERNAL_H
#define OMNIFY_ML_INTERNAL_H

#include <bson/bson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "codec.h"
#include "registry.h"
#include "runtime.h"
#include "slice.h"
#include "timer.h"

/* ---------------------------------------------------------------------------
 * Settings (settings.c) and state (ml.c)
 * ------------------------------------------------------------------------ */

typedef struct ml_settings {
        int history_days;       /* history a forecast asks analytics for */
        int recent_days;        /* the overview: anomalies, pacing, curves */
        int refresh_interval_s; /* each tenant's scheduled refresh */
        int anomaly_days;       /* newest days checked at most per refresh */
        int forecasts_max;      /* forecasts per tenant */
        int forecast_min_days;  /* least history of a forecast */
        int churn_days;         /* no order this long: churned */
        int request_timeout_s;  /* analytics' answer awaited this long */
} ml_settings_t;

extern const config_table_t ml_settings;

typedef struct ml_state {
        const config_t *cfg;
        const ml_settings_t *set;
        store_t *store;
        timer_service_t *timers;
} ml_state_t;

#define ML_DB "ml"

/* The identity of ml's own requests to analytics (refreshes fired by an
 * event or a schedule, which have no user): the tenant of the event, this
 * user and the viewer role, the least analytics' reads need. */
#define ML_SERVICE_USER "service:ml"
#define ML_SERVICE_ROLES "viewer"

/* ---------------------------------------------------------------------------
 * Metrics (common.c): the daily metrics ml works on
 * ------------------------------------------------------------------------ */

typedef enum ml_metric {
        ML_M_SPEND,
        ML_M_IMPRESSIONS,
        ML_M_CLICKS,
        ML_M_CONVERSIONS,
        ML_M_CONVERSION_VALUE,
        ML_M_ROAS,
        ML_M_REVENUE,
        ML_M_ORDERS,
        ML_M_NEW_CUSTOMERS,
        ML_M_COUNT
} ml_metric_t;

typedef enum ml_unit { ML_MONEY, ML_COUNT, ML_RATIO } ml_unit_t;

typedef struct ml_metric_def {
        const char *name;
        ml_unit_t unit;
        bool ads; /* an ad platform's metric (a campaign filter applies) */
} ml_metric_def_t;

extern const ml_metric_def_t ml_metrics[ML_M_COUNT];

/* The metric of that name, or -1. */
int ml_metric_find(slice_t name);

/* ---------------------------------------------------------------------------
 * Days (common.c): civil days as day numbers (days since 1970-01-01)
 * ------------------------------------------------------------------------ */

#define ML_DAY_TEXT 11 /* "YYYY-MM-DD" + NUL */

/* "YYYY-MM-DD" (a real date) to a day number; false otherwise. */
bool ml_day_parse(slice_t text, int32_t *day);
void ml_day_format(int32_t day, char out[ML_DAY_TEXT]);
/* The civil date of a day number. */
void ml_day_civil(int32_t day, int *y, int *m, int *d);
int32_t ml_day_of_civil(int y, int m, int d);
/* Today (UTC) as a day number. */
int32_t ml_today(void);
/* The day number of a Unix-ms time (UTC). */
int32_t ml_day_of_ms(int64_t ms);
/* RFC 3339 ("2026-01-02T03:04:05Z", an offset or fraction allowed) to Unix
 * ms; false when it is not one. */
bool ml_time_parse(slice_t text, int64_t *ms);
/* Unix ms as "YYYY-MM-DDTHH:MM:SSZ". */
#define ML_TIME_TEXT 21
void ml_time_format(int64_t ms, char out[ML_TIME_TEXT]);

/* ---------------------------------------------------------------------------
 * Helpers (common.c)
 * ------------------------------------------------------------------------ */

/* The caller's tenant (validated by the edge or by the event header) as a
 * NUL-terminated copy into out; false when there is none or it is too
 * long. */
#define ML_TENANT_MAX 128
bool ml_tenant(const rt_ctx_t *ctx, char out[ML_TENANT_MAX]);

/* A deterministic id (UUID text) from the parts, joined with '|'. */
void ml_derive_id(char out[MSGID_TEXT_SIZE], int64_t time_ms, int n_parts,
                  const char *const *parts);

/* A string field's value as a NUL-terminated copy (out of size len);
 * false when absent, not a string or too long. */
bool ml_str(const msgpack_object *map, const char *key, char *out, size_t len);
/* An integer or float field as a double; false when absent or neither. */
bool ml_num(const msgpack_object *map, const char *key, double *out);
bool ml_int(const msgpack_object *map, const char *key, int64_t *out);
/* A msgpack integer or finite float as a double; false otherwise. */
bool ml_obj_num(const msgpack_object *o, double *out);

/* Packing key/value pairs of a map being written. */
void ml_kv_str(msgpack_packer *pk, const char *key, const char *value);
void ml_kv_int(msgpack_packer *pk, const char *key, int64_t value);
/* A double, or nil when it is not finite. */
void ml_kv_num(msgpack_packer *pk, const char *key, double value);
void ml_pack_num(msgpack_packer *pk, double value);

/* Already packed msgpack bytes (whole values) appended to pk. */
void ml_pack_raw(msgpack_packer *pk, const void *data, size_t len);

/* A bson document as a msgpack value (maps, arrays, strings, numbers,
 * booleans, dates as RFC 3339 text, null), leaving out at its top level
 * the keys listed in skip (NULL-terminated; may be NULL) and empty
 * strings (an absent optional field in our documents). */
void ml_pack_bson(msgpack_packer *pk, const bson_t *doc,
                  const char *const *skip);

/* A double field of a bson document, or def. */
double ml_bson_num(const bson_t *doc, const char *key, double def);
int64_t ml_bson_int(const bson_t *doc, const char *key, int64_t def);
/* A string field into out (NUL-terminated, truncated); "" when absent. */
void ml_bson_str(const bson_t *doc, const char *key, char *out, size_t len);

/* A list of documents for an answer: each found document packed (its _id
 * shown as id_key when not NULL, a rank 1, 2, ... when rank is set first,
 * the hidden keys and empty strings left out). */
typedef struct ml_list {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        size_t n;
        const char *id_key;
        const char *const *hidden;
        int64_t rank; /* the next rank shown; 0: none */
} ml_list_t;

void ml_list_init(ml_list_t *l, const char *id_key, const char *const *hidden);
void ml_list_free(ml_list_t *l);
/* Every document of coll matching filter, in the order and number of
 * opts, appended to l. */
store_err_t ml_list_find(ml_list_t *l, store_t *store, const char *coll,
                         const bson_t *filter, const bson_t *opts, char *errstr,
                         size_t errlen);
/* key: [the list] into a map being packed. */
void ml_list_pack(msgpack_packer *pk, const char *key, const ml_list_t *l);
/* Find options (bson_init'ed here, caller destroys): sorted by sort (dir
 * 1 or -1) then _id, skipping skip, at most limit. */
void ml_find_opts(bson_t *opts, const char *sort, int dir, int64_t skip,
                  int64_t limit);

/* Replace (or insert) the document of coll matching filter with doc. */
store_err_t ml_replace(store_t *store, const char *coll, const bson_t *filter,
                       const bson_t *doc, char *errstr, size_t errlen);

/* Answer a store failure: HANDLER_TRANSIENT while the store is
 * unreachable, else a 500 problem (logged). */
handler_result_t ml_store_failed(rt_ctx_t *ctx, store_err_t err,
                                 const char *what, const char *errstr);

/* A 422 problem naming what is wrong (detail formatted). */
void ml_unprocessable(rt_ctx_t *ctx, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/*
 * The next version number of a tenant's model kind ("lead", "churn",
 * "response/EUR", "forecast/<id>", "pacing/EUR"): the counter of heads
 * "<tenant>|<kind>" moved on by one, unless source (a message id) made the
 * current version already, which is then answered again (a redelivered
 * message makes no new version). Writes "<kind>/v<n>" into version_out.
 */
#define ML_VERSION_MAX 200
store_err_t ml_version_next(store_t *store, const char *tenant,
                            const char *kind, slice_t source, int64_t *n,
                            char version_out[ML_VERSION_MAX], char *errstr,
                            size_t errlen);

/* Insert or replace a version record in models ({_id "<tenant>|<kind>|<n>",
 * tenant, kind, version, model_version, created_at} + the fields of
 * extra, which may be NULL) and make it the head's current one. */
store_err_t ml_version_record(store_t *store, const char *tenant,
                              const char *kind, int64_t n,
                              const char *model_version, const bson_t *extra,
                              char *errstr, size_t errlen);

/* ---------------------------------------------------------------------------
 * Frames (frame.c): analytics' rows as daily series
 * ------------------------------------------------------------------------ */

#define ML_CHANNEL_MAX 64
#define ML_TOTAL "total" /* the channel of a tenant's totals */

/* One daily series: a metric of one channel in one currency. */
typedef struct ml_series {
        ml_metric_t metric;
        char channel[ML_CHANNEL_MAX]; /* a provider, or ML_TOTAL */
        char currency[8];             /* "" when the rows had none */
        double *v;                    /* frame days; NaN: no value */
} ml_series_t;

typedef struct ml_frame {
        int32_t from, to; /* days, to included */
        size_t days;
        ml_series_t *s;
        size_t n, cap;
} ml_frame_t;

/*
 * Reads an analytics.metrics reply ({from, to, rows: [{currency, day,
 * provider?, <metric>: value|nil}]}) into f: a series per metric,
 * provider (ML_TOTAL without one) and currency. With totals, rows with a
 * provider are also summed into ML_TOTAL series (additive metrics), and
 * ROAS series are derived per channel from conversion value and spend.
 * Additive series read 0 on days without a row after their first value
 * (nothing happened) and NaN before it; ratios read NaN without a value.
 * false and errstr when the reply is not such a document.
 */
bool ml_frame_read(const msgpack_object *reply, bool totals, ml_frame_t *f,
                   char *errstr, size_t errlen);
void ml_frame_free(ml_frame_t *f);
/* The series of (metric, channel, currency), or NULL. */
ml_series_t *ml_frame_find(const ml_frame_t *f, ml_metric_t metric,
                           const char *channel, const char *currency);

/* Observed (non-NaN) values of v[0..n-1] and the index of the first. */
size_t ml_observed(const double *v, size_t n, size_t *first);

/* ---------------------------------------------------------------------------
 * Refreshes (refresh.c)
 * ------------------------------------------------------------------------ */

/* analytics.metrics to analytics as the caller of ctx: metric names,
 * optional group_by "day,provider" style list, the period and filters
 * (NULL: none). Records the request ({kind, forecast_id}) so that the
 * reply finds its purpose. */
typedef struct ml_ask {
        const char *kind;        /* "recent" or "forecast" */
        const char *forecast_id; /* forecast requests */
        const char *const *metrics;
        size_t n_metrics;
        bool by_provider;
        int32_t from, to;
        const char *provider, *campaign_id, *currency;
} ml_ask_t;

handler_result_t ml_ask(rt_ctx_t *ctx, const char *tenant, const ml_ask_t *a);

/* Arm the tenant's scheduled refresh (idempotent). Logs and goes on when
 * the store refuses: the next request arms it. */
void ml_schedule_tenant(rt_ctx_t *ctx, const char *tenant);

/* The last complete day ml assumes when none is given: yesterday, UTC. */
int32_t ml_default_to(void);

handler_result_t ml_handle_refresh(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ml_on_day_closed(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ml_on_reply(rt_ctx_t *ctx, const msgpack_object *body);

/* ---------------------------------------------------------------------------
 * Forecasts (forecast.c)
 * ------------------------------------------------------------------------ */

handler_result_t ml_forecasts_create(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ml_forecasts_get(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ml_forecasts_list(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ml_forecasts_delete(rt_ctx_t *ctx, const msgpack_object *body);

/* The tenant's forecasts to refresh: their asks are sent (refresh.c). */
handler_result_t ml_forecasts_refresh(rt_ctx_t *ctx, const char *tenant,
                                      int32_t to);

/* A reply to a forecast's request: fit, store the new version, emit
 * ml.forecast.completed. status is analytics' answer. */
handler_result_t ml_forecast_answer(rt_ctx_t *ctx, const char *tenant,
                                    const char *forecast_id, int status,
                                    const msgpack_object *body);

/* Fit a daily series for h days (period 7 when the history allows): the
 * model (caller destroys) or NULL with the reason in errstr and the
 * status to answer (422: too little history). */
struct ets_model;
struct ets_model *ml_fit_daily(const double *v, size_t n, int h, int min_days,
                               int *status, char *errstr, size_t errlen);

/* ---------------------------------------------------------------------------
 * Anomalies (anomalies.c), budget (budget.c): from a tenant's overview
 * ------------------------------------------------------------------------ */

#define ML_ANOMALY_MODEL "anomaly/robust-seasonal/v1"

/* Check the new days of every series of f (days after checked_through,
 * at most anomaly_days; only f->to the first time): record anomalies and
 * emit ml.anomaly.detected for new ones. */
handler_result_t ml_anomalies_check(rt_ctx_t *ctx, const char *tenant,
                                    const ml_frame_t *f,
                                    int32_t checked_through);
handler_result_t ml_anomalies_list(rt_ctx_t *ctx, const msgpack_object *body);

/* Month-end pacing and response curves per currency from f. */
handler_result_t ml_budget_update(rt_ctx_t *ctx, const char *tenant,
                                  const ml_frame_t *f);
handler_result_t ml_pacing_get(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ml_whatif(rt_ctx_t *ctx, const msgpack_object *body);

/* ---------------------------------------------------------------------------
 * Features and scoring (features.c, scoring.c), models (models.c)
 * ------------------------------------------------------------------------ */

handler_result_t ml_features_batch(rt_ctx_t *const *ctxs,
                                   const msgpack_object *const *bodies,
                                   size_t n);

handler_result_t ml_models_train(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ml_models_retrain(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ml_models_schedule(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ml_models_get(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ml_scores_list(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ml_scores_get(rt_ctx_t *ctx, const msgpack_object *body);

#endif
