/*
 * anomalies.c - each new day of every tenant x metric x channel series
 * checked against a robust seasonal baseline (anomaly.h), the anomalies
 * kept and published, and the route that lists them.
 *
 * Which series: every series of the tenant's overview (refresh.c: the
 * metrics by provider, the tenant's totals, ROAS per channel) whose
 * baseline window (8 weeks before the checked days) has at least half its
 * days with activity; a sparse series (a few conversions a week) has no
 * baseline worth the name and is left out. Positive series are checked on
 * logs (noise that grows with the level: a range wider upwards).
 *
 * The noise floor: the baseline's MAD can be near zero for a capped daily
 * budget or a steady count, which would make every small move an anomaly.
 * The noise scale is never below 5% of the level (money, ratios, counts),
 * nor below the Poisson noise sqrt(level) of a count (on logs: 0.05 and
 * 1 / sqrt(level)).
 *
 * Ids: anomaly_id derives from (tenant, kind, metric, channel, currency,
 * day), so a day found again (a refresh, a redelivered reply) is the same
 * anomaly: it is stored once and published once, except that the reply
 * which first stored it publishes it again when delivered again (its
 * events may not have gone out before a crash).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anomaly.h"
#include "decompose.h"
#include "log.h"
#include "ml_internal.h"
#include "msgid.h"

#define AN_COLL "anomalies"
#define AN_PERIOD 7
#define AN_WINDOW (8 * AN_PERIOD)
#define AN_THRESHOLD 3.5
#define AN_SHIFT_THRESHOLD 6.0
#define AN_REL_FLOOR 0.05

typedef struct an_found {
        const char *kind; /* "spike" or "level_shift" */
        int32_t day;
        double value, expected, lower, upper, score;
        anomaly_direction_t direction;
} an_found_t;

static handler_result_t an_emit(rt_ctx_t *ctx, const char *id,
                                const ml_series_t *s, const an_found_t *a) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        char day[ML_DAY_TEXT];
        bool total = strcmp(s->channel, ML_TOTAL) == 0;
        int rc;
        ml_day_format(a->day, day);
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 11 + !total + (s->currency[0] != 0));
        ml_kv_str(&pk, "anomaly_id", id);
        ml_kv_str(&pk, "kind", a->kind);
        ml_kv_str(&pk, "metric", ml_metrics[s->metric].name);
        if (!total)
                ml_kv_str(&pk, "provider", s->channel);
        if (s->currency[0])
                ml_kv_str(&pk, "currency", s->currency);
        ml_kv_str(&pk, "day", day);
        ml_kv_num(&pk, "value", a->value);
        ml_kv_num(&pk, "expected", a->expected);
        ml_kv_num(&pk, "lower", a->lower);
        ml_kv_num(&pk, "upper", a->upper);
        ml_kv_num(&pk, "score", a->score);
        ml_kv_str(&pk, "direction", a->direction == ANOMALY_UP ? "up" : "down");
        ml_kv_str(&pk, "model_version", ML_ANOMALY_MODEL);
        rc = rt_emit(ctx, "ml.anomaly.detected", rt_env(ctx)->tenant, &sb);
        msgpack_sbuffer_destroy(&sb);
        return rc == 0 ? HANDLER_OK : HANDLER_PERMANENT;
}

/* Store one anomaly (once) and publish it when new here. */
static handler_result_t an_record(rt_ctx_t *ctx, const char *tenant,
                                  const ml_series_t *s, const an_found_t *a) {
        ml_state_t *st = rt_state(ctx);
        const env_t *env = rt_env(ctx);
        char id[MSGID_TEXT_SIZE], day[ML_DAY_TEXT], err[256], me[64] = "";
        char by[64];
        bson_t doc = BSON_INITIALIZER, found;
        store_err_t serr;
        bool publish = true;
        ml_day_format(a->day, day);
        const char *parts[] = {
                "anomaly",  tenant,      a->kind, ml_metrics[s->metric].name,
                s->channel, s->currency, day};
        ml_derive_id(id, (int64_t)a->day * 86400000, 7, parts);
        if (env->id.len < sizeof(me)) {
                memcpy(me, env->id.ptr, env->id.len);
                me[env->id.len] = '\0';
        }
        BSON_APPEND_UTF8(&doc, "_id", id);
        BSON_APPEND_UTF8(&doc, "tenant", tenant);
        BSON_APPEND_UTF8(&doc, "kind", a->kind);
        BSON_APPEND_UTF8(&doc, "metric", ml_metrics[s->metric].name);
        BSON_APPEND_UTF8(&doc, "channel", s->channel);
        if (strcmp(s->channel, ML_TOTAL) != 0)
                BSON_APPEND_UTF8(&doc, "provider", s->channel);
        if (s->currency[0])
                BSON_APPEND_UTF8(&doc, "currency", s->currency);
        BSON_APPEND_UTF8(&doc, "day", day);
        BSON_APPEND_INT32(&doc, "day_n", a->day);
        BSON_APPEND_DOUBLE(&doc, "value", a->value);
        BSON_APPEND_DOUBLE(&doc, "expected", a->expected);
        BSON_APPEND_DOUBLE(&doc, "lower", a->lower);
        BSON_APPEND_DOUBLE(&doc, "upper", a->upper);
        BSON_APPEND_DOUBLE(&doc, "score", a->score);
        BSON_APPEND_UTF8(&doc, "direction",
                         a->direction == ANOMALY_UP ? "up" : "down");
        BSON_APPEND_UTF8(&doc, "model_version", ML_ANOMALY_MODEL);
        BSON_APPEND_UTF8(&doc, "reply_id", me);
        BSON_APPEND_DATE_TIME(&doc, "created_at", (int64_t)clock_wall_ms());
        serr = store_insert(st->store, ML_DB, AN_COLL, &doc, err, sizeof(err));
        bson_destroy(&doc);
        if (serr == STORE_DUPLICATE) {
                bson_t filter = BSON_INITIALIZER;
                BSON_APPEND_UTF8(&filter, "_id", id);
                serr = store_find_one(st->store, ML_DB, AN_COLL, &filter, NULL,
                                      &found, err, sizeof(err));
                bson_destroy(&filter);
                if (serr == STORE_OK) {
                        ml_bson_str(&found, "reply_id", by, sizeof(by));
                        publish = me[0] && strcmp(by, me) == 0;
                        bson_destroy(&found);
                }
        }
        if (serr != STORE_OK)
                return store_err_transient(serr) ? HANDLER_TRANSIENT
                                                 : HANDLER_PERMANENT;
        return publish ? an_emit(ctx, id, s, a) : HANDLER_OK;
}

/* The median of the positive values of v[0..n-1] (0 when none). */
static double positive_level(const double *v, size_t n, double *scratch) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
                if (v[i] > 0)
                        scratch[k++] = v[i];
        return k ? decompose_median(scratch, k, scratch + n) : 0;
}

static handler_result_t check_series(rt_ctx_t *ctx, const char *tenant,
                                     const ml_frame_t *f, const ml_series_t *s,
                                     int32_t start) {
        size_t n = f->days, check = (size_t)(f->to - start) + 1;
        size_t base_from, active = 0;
        anomaly_options_t o = ANOMALY_OPTIONS_DEFAULT;
        anomaly_point_t *pts = NULL;
        anomaly_shift_t shift;
        double *scratch = NULL, level;
        bool positive = true, count = ml_metrics[s->metric].unit == ML_COUNT;
        handler_result_t res = HANDLER_OK;
        if (check >= n || n - check < 3 * AN_PERIOD)
                return HANDLER_OK;
        base_from = n - check > AN_WINDOW ? n - check - AN_WINDOW : 0;
        for (size_t i = base_from; i < n; i++) {
                if (i < n - check && s->v[i] > 0)
                        active++;
                if (!isnan(s->v[i]) && s->v[i] <= 0)
                        positive = false;
        }
        if (2 * active < n - check - base_from)
                return HANDLER_OK; /* sparse: no baseline */
        scratch = malloc(2 * n * sizeof(double));
        pts = calloc(check, sizeof(*pts));
        if (!scratch || !pts) {
                res = HANDLER_TRANSIENT;
                goto done;
        }
        level = positive_level(s->v + base_from, n - check - base_from,
                               scratch);
        o.period = AN_PERIOD;
        o.check = check;
        o.window = AN_WINDOW;
        o.threshold = AN_THRESHOLD;
        o.shift_threshold = AN_SHIFT_THRESHOLD;
        o.multiplicative = positive;
        if (positive)
                o.min_sigma = fmax(AN_REL_FLOOR,
                                   count ? 1 / sqrt(fmax(level, 1)) : 0);
        else
                o.min_sigma = fmax(AN_REL_FLOOR * level,
                                   count ? sqrt(fmax(level, 1)) : 0);
        if (anomaly_check(s->v, n, &o, pts, &shift) != ANOMALY_OK)
                goto done;
        log_debug("ml: %s %s %s: last day %g expected %g score %g", tenant,
                  ml_metrics[s->metric].name, s->channel, pts[check - 1].value,
                  pts[check - 1].expected, pts[check - 1].score);
        for (size_t j = 0; j < check && res == HANDLER_OK; j++) {
                const anomaly_point_t *p = &pts[j];
                if (p->missing || !p->anomaly)
                        continue;
                an_found_t a = {"spike",  f->from + (int32_t)p->index,
                                p->value, p->expected,
                                p->lower, p->upper,
                                p->score, p->direction};
                res = an_record(ctx, tenant, s, &a);
        }
        /* A level shift that begins among the newest days (it needs a few
         * days after it to be seen at all). */
        if (res == HANDLER_OK && shift.detected &&
            shift.index + 3 + check >= n) {
                double se =
                        fabs(shift.score) > 0
                                ? fabs((positive ? log(shift.after) -
                                                           log(shift.before)
                                                 : shift.after - shift.before) /
                                       shift.score)
                                : 0;
                double w = AN_SHIFT_THRESHOLD * se;
                an_found_t a = {
                        "level_shift",
                        f->from + (int32_t)shift.index,
                        shift.after,
                        shift.before,
                        positive ? shift.before * exp(-w) : shift.before - w,
                        positive ? shift.before * exp(w) : shift.before + w,
                        shift.score,
                        shift.direction};
                res = an_record(ctx, tenant, s, &a);
        }
done:
        free(scratch);
        free(pts);
        return res;
}

handler_result_t ml_anomalies_check(rt_ctx_t *ctx, const char *tenant,
                                    const ml_frame_t *f,
                                    int32_t checked_through) {
        ml_state_t *st = rt_state(ctx);
        int32_t start = f->to;
        handler_result_t res = HANDLER_OK;
        if (checked_through != INT32_MIN) {
                start = checked_through + 1;
                if (start < f->to - st->set->anomaly_days + 1)
                        start = f->to - st->set->anomaly_days + 1;
        }
        if (start > f->to || rt_replaying(ctx))
                return HANDLER_OK;
        for (size_t i = 0; i < f->n && res == HANDLER_OK; i++)
                res = check_series(ctx, tenant, f, &f->s[i], start);
        return res;
}

/* ---------------------------------------------------------------------------
 * GET /api/ml/anomalies
 * ------------------------------------------------------------------------ */

/* Fields the answers never show. */
static const char *const an_hidden[] = {
        "_id", "tenant", "reply_id", "day_n", "channel", "created_at", NULL};

handler_result_t ml_anomalies_list(rt_ctx_t *ctx, const msgpack_object *body) {
        ml_state_t *st = rt_state(ctx);
        char tenant[ML_TENANT_MAX], err[256], metric[32], provider[80];
        char from_s[ML_DAY_TEXT], to_s[ML_DAY_TEXT];
        int32_t from, to = ml_today();
        int64_t limit = 200;
        bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, child;
        ml_list_t l;
        store_err_t serr;
        msgpack_packer *pk;
        handler_result_t res = HANDLER_OK;

        ml_list_init(&l, "anomaly_id", an_hidden);
        if (!rt_require_role(ctx, SCHEMA_ROLE_VIEWER) ||
            !ml_tenant(ctx, tenant))
                goto done;
        if (codec_map_get(body, "to") &&
            !ml_day_parse(codec_map_str(body, "to"), &to)) {
                rt_reply_problem(ctx, 400, "Bad Request", "to is not a date");
                goto done;
        }
        from = to - 30;
        if (codec_map_get(body, "from") &&
            !ml_day_parse(codec_map_str(body, "from"), &from)) {
                rt_reply_problem(ctx, 400, "Bad Request", "from is not a date");
                goto done;
        }
        if (from > to) {
                ml_unprocessable(ctx, "from is after to");
                goto done;
        }
        if (to - from > 366) {
                ml_unprocessable(ctx, "the period may span at most 366 days");
                goto done;
        }
        ml_int(body, "limit", &limit);
        if (limit < 1 || limit > 1000)
                limit = 200;
        BSON_APPEND_UTF8(&filter, "tenant", tenant);
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "day_n", &child);
        BSON_APPEND_INT32(&child, "$gte", from);
        BSON_APPEND_INT32(&child, "$lte", to);
        bson_append_document_end(&filter, &child);
        if (ml_str(body, "metric", metric, sizeof(metric))) {
                if (ml_metric_find(slice_of(metric)) < 0) {
                        rt_reply_problem(ctx, 400, "Bad Request",
                                         "unknown metric");
                        goto done;
                }
                BSON_APPEND_UTF8(&filter, "metric", metric);
        }
        if (ml_str(body, "provider", provider, sizeof(provider)))
                BSON_APPEND_UTF8(&filter, "channel", provider);
        bson_destroy(&opts);
        ml_find_opts(&opts, "day_n", -1, 0, limit);
        serr = ml_list_find(&l, st->store, AN_COLL, &filter, &opts, err,
                            sizeof(err));
        if (serr != STORE_OK) {
                res = ml_store_failed(ctx, serr, "anomalies", err);
                goto done;
        }
        ml_day_format(from, from_s);
        ml_day_format(to, to_s);
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 3);
        ml_kv_str(pk, "from", from_s);
        ml_kv_str(pk, "to", to_s);
        ml_list_pack(pk, "anomalies", &l);
done:
        ml_list_free(&l);
        bson_destroy(&filter);
        bson_destroy(&opts);
        return res;
}
