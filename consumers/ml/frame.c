/*
 * frame.c - analytics' rows as daily series (contract in ml_internal.h).
 *
 * analytics.metrics answers {metrics, group_by, from, to, rows}, a row per
 * currency and value of each dimension asked (day, and provider for the
 * overview) with one entry per metric: an integer or float, or nil when
 * the metric has no value for the row (a ratio over zero). A frame holds
 * one series per (metric, channel, currency) over the days from..to.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "ml_internal.h"

/* Frames are bounded by what analytics may answer (its range limit). */
#define ML_FRAME_DAYS_MAX 4000
#define ML_FRAME_SERIES_MAX 4096

void ml_frame_free(ml_frame_t *f) {
        if (!f)
                return;
        for (size_t i = 0; i < f->n; i++)
                free(f->s[i].v);
        free(f->s);
        memset(f, 0, sizeof(*f));
}

ml_series_t *ml_frame_find(const ml_frame_t *f, ml_metric_t metric,
                           const char *channel, const char *currency) {
        for (size_t i = 0; i < f->n; i++) {
                ml_series_t *s = &f->s[i];
                if (s->metric == metric && strcmp(s->channel, channel) == 0 &&
                    strcmp(s->currency, currency) == 0)
                        return s;
        }
        return NULL;
}

/* The series of (metric, channel, currency), made (all NaN) when new;
 * NULL past ML_FRAME_SERIES_MAX. */
static ml_series_t *frame_series(ml_frame_t *f, ml_metric_t metric,
                                 const char *channel, const char *currency) {
        ml_series_t *s = ml_frame_find(f, metric, channel, currency);
        if (s)
                return s;
        if (f->n == ML_FRAME_SERIES_MAX)
                return NULL;
        if (f->n == f->cap) {
                f->cap = f->cap ? 2 * f->cap : 16;
                f->s = xrealloc(f->s, f->cap * sizeof(*f->s));
        }
        s = &f->s[f->n++];
        memset(s, 0, sizeof(*s));
        s->metric = metric;
        snprintf(s->channel, sizeof(s->channel), "%s", channel);
        snprintf(s->currency, sizeof(s->currency), "%s", currency);
        s->v = xmalloc(f->days * sizeof(double));
        for (size_t d = 0; d < f->days; d++)
                s->v[d] = NAN;
        return s;
}

static void add_value(ml_series_t *s, size_t d, double v) {
        s->v[d] = isnan(s->v[d]) ? v : s->v[d] + v;
}

static bool read_row(ml_frame_t *f, const msgpack_object *row, bool totals,
                     char *errstr, size_t errlen) {
        char currency[8] = "", channel[ML_CHANNEL_MAX] = ML_TOTAL;
        int32_t day;
        slice_t ds;
        const msgpack_object *cur;
        if (row->type != MSGPACK_OBJECT_MAP) {
                snprintf(errstr, errlen, "a row is not a map");
                return false;
        }
        ds = codec_map_str(row, "day");
        if (!ml_day_parse(ds, &day) || day < f->from || day > f->to) {
                snprintf(errstr, errlen,
                         "a row's day is missing or outside "
                         "the period");
                return false;
        }
        cur = codec_map_get(row, "currency");
        if (cur && cur->type == MSGPACK_OBJECT_STR &&
            cur->via.str.size < sizeof(currency)) {
                memcpy(currency, cur->via.str.ptr, cur->via.str.size);
                currency[cur->via.str.size] = '\0';
        }
        if (codec_map_get(row, "provider") &&
            !ml_str(row, "provider", channel, sizeof(channel))) {
                snprintf(errstr, errlen, "a row's provider is not a string");
                return false;
        }
        for (uint32_t i = 0; i < row->via.map.size; i++) {
                const msgpack_object_kv *kv = &row->via.map.ptr[i];
                double v;
                int m;
                if (kv->key.type != MSGPACK_OBJECT_STR)
                        continue;
                m = ml_metric_find(
                        (slice_t){kv->key.via.str.ptr, kv->key.via.str.size});
                if (m < 0 || !ml_obj_num(&kv->val, &v))
                        continue;
                ml_series_t *s =
                        frame_series(f, (ml_metric_t)m, channel, currency);
                if (!s) {
                        snprintf(errstr, errlen, "too many series");
                        return false;
                }
                add_value(s, (size_t)(day - f->from), v);
                if (totals && strcmp(channel, ML_TOTAL) != 0 &&
                    ml_metrics[m].unit != ML_RATIO) {
                        s = frame_series(f, (ml_metric_t)m, ML_TOTAL, currency);
                        if (!s) {
                                snprintf(errstr, errlen, "too many series");
                                return false;
                        }
                        add_value(s, (size_t)(day - f->from), v);
                }
        }
        return true;
}

/* Additive series: 0 on days without a row once the series has begun. */
static void fill_gaps(ml_frame_t *f) {
        for (size_t i = 0; i < f->n; i++) {
                ml_series_t *s = &f->s[i];
                size_t first;
                if (ml_metrics[s->metric].unit == ML_RATIO ||
                    !ml_observed(s->v, f->days, &first))
                        continue;
                for (size_t d = first; d < f->days; d++)
                        if (isnan(s->v[d]))
                                s->v[d] = 0;
        }
}

/* ROAS of every channel that has spend and conversion value (and no ROAS
 * of its own from the rows): their ratio per day, NaN without spend. */
static void derive_roas(ml_frame_t *f) {
        size_t n = f->n;
        for (size_t i = 0; i < n; i++) {
                ml_series_t *sp = &f->s[i], *cv, *r;
                if (sp->metric != ML_M_SPEND ||
                    ml_frame_find(f, ML_M_ROAS, sp->channel, sp->currency))
                        continue;
                cv = ml_frame_find(f, ML_M_CONVERSION_VALUE, sp->channel,
                                   sp->currency);
                if (!cv)
                        continue;
                /* frame_series may move f->s: keep indexes, not pointers. */
                size_t ci = (size_t)(cv - f->s);
                char channel[ML_CHANNEL_MAX], currency[8];
                memcpy(channel, sp->channel, sizeof(channel));
                memcpy(currency, sp->currency, sizeof(currency));
                r = frame_series(f, ML_M_ROAS, channel, currency);
                if (!r)
                        return;
                sp = &f->s[i];
                cv = &f->s[ci];
                for (size_t d = 0; d < f->days; d++)
                        r->v[d] = sp->v[d] > 0 ? cv->v[d] / sp->v[d] : NAN;
        }
}

bool ml_frame_read(const msgpack_object *reply, bool totals, ml_frame_t *f,
                   char *errstr, size_t errlen) {
        const msgpack_object *rows;
        memset(f, 0, sizeof(*f));
        if (!reply || reply->type != MSGPACK_OBJECT_MAP ||
            !ml_day_parse(codec_map_str(reply, "from"), &f->from) ||
            !ml_day_parse(codec_map_str(reply, "to"), &f->to) ||
            f->to < f->from || f->to - f->from >= ML_FRAME_DAYS_MAX) {
                snprintf(errstr, errlen,
                         "analytics' answer has no valid "
                         "period (from, to)");
                return false;
        }
        rows = codec_map_get(reply, "rows");
        if (!rows || rows->type != MSGPACK_OBJECT_ARRAY) {
                snprintf(errstr, errlen, "analytics' answer has no rows");
                return false;
        }
        f->days = (size_t)(f->to - f->from) + 1;
        for (uint32_t i = 0; i < rows->via.array.size; i++) {
                if (!read_row(f, &rows->via.array.ptr[i], totals, errstr,
                              errlen)) {
                        ml_frame_free(f);
                        return false;
                }
        }
        fill_gaps(f);
        derive_roas(f);
        return true;
}

size_t ml_observed(const double *v, size_t n, size_t *first) {
        size_t count = 0;
        *first = n;
        for (size_t i = 0; i < n; i++) {
                if (isnan(v[i]))
                        continue;
                if (!count)
                        *first = i;
                count++;
        }
        return count;
}
