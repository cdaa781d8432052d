/*
 * anomaly.c - robust seasonal baseline and level shifts (contracts and
 * the method in anomaly.h).
 */
#include "anomaly.h"

#include <math.h>
#include <stdlib.h>

#include "decompose.h"

/* Standard error of a median of normal data, in sigmas times sqrt(n). */
#define MEDIAN_SE 1.2533141373155001

const char *anomaly_strerror(anomaly_err_t err) {
        switch (err) {
#define X(name, msg) \
        case name:   \
                return msg;
                ANOMALY_ERRORS(X)
#undef X
        }
        return "unknown error";
}

/* What the baseline of the history gives. */
typedef struct baseline {
        size_t start, end;    /* history y[start .. end - 1] */
        const double *season; /* figure; position of index a: (a - start) % m */
        size_t m;
        double level, centre, slope;
        double sigma; /* of the remainder */
} baseline_t;

static double seasonal_at(const baseline_t *b, size_t a) {
        return b->season[(a - b->start) % b->m];
}

static anomaly_err_t fill_defaults(const anomaly_options_t *in, size_t n,
                                   anomaly_options_t *o) {
        *o = *in;
        if (o->period < 2 || o->period > ANOMALY_PERIOD_MAX || o->check < 1 ||
            o->check >= n || o->threshold < 0 || o->shift_threshold < 0 ||
            o->shift_sigma < 0)
                return ANOMALY_BAD_OPTIONS;
        if (o->window == 0)
                o->window = 8 * o->period;
        if (o->threshold == 0)
                o->threshold = 3.5;
        if (o->shift_min == 0)
                o->shift_min = 3;
        if (o->shift_max == 0)
                o->shift_max = 4 * o->period;
        if (o->shift_threshold == 0)
                o->shift_threshold = 6;
        if (o->shift_sigma == 0)
                o->shift_sigma = 4;
        return ANOMALY_OK;
}

/* The baseline of z[start .. end - 1]: work holds 3 (end - start) + the
 * pairs of 4 periods doubles, season m. */
static void build_baseline(const double *z, size_t start, size_t end, size_t m,
                           double *season, double *work, baseline_t *b) {
        size_t w = end - start;
        double *trend = work, *rest = work + w, *scratch = work + 2 * w;
        decompose_robust(z + start, w, m, season, trend, scratch);
        b->start = start;
        b->end = end;
        b->season = season;
        b->m = m;
        for (size_t t = 0; t < w; t++)
                rest[t] = z[start + t] - trend[t] - season[t % m];
        double med = decompose_median(rest, w, scratch);
        b->sigma = DECOMPOSE_MAD_SCALE * decompose_mad(rest, w, med, scratch);
        /* Seasonally adjusted history, reusing rest[]. */
        for (size_t t = 0; t < w; t++)
                rest[t] = z[start + t] - season[t % m];
        size_t nl = 2 * m <= w ? 2 * m : w;
        size_t ns = 4 * m <= w ? 4 * m : w;
        b->level = decompose_median(rest + w - nl, nl, scratch);
        b->centre = (double)end - 0.5 * (double)(nl + 1);
        b->slope = decompose_theil_sen(rest + w - ns, ns, scratch);
        /* The noise scale of the baseline as a predictor: its errors on
         * the history's own days, each predicted from the nl days before
         * it (the remainder of a centred smoother is too small). */
        double *errs = trend; /* the trend is no longer needed */
        size_t ne = 0;
        for (size_t t = nl; t < w; t++) {
                double pred = decompose_median(rest + t - nl, nl, scratch);
                if (!isnan(rest[t]) && !isnan(pred))
                        errs[ne++] = rest[t] - pred;
        }
        if (ne >= m) {
                med = decompose_median(errs, ne, scratch);
                b->sigma = DECOMPOSE_MAD_SCALE *
                           decompose_mad(errs, ne, med, scratch);
        }
        double floor = 1e-9 * fmax(1, fabs(b->level));
        if (!(b->sigma > floor))
                b->sigma = floor;
}

static void check_points(const double *y, const double *z, size_t n,
                         const anomaly_options_t *o, const baseline_t *b,
                         anomaly_point_t *out) {
        double th = o->threshold;
        for (size_t j = 0; j < o->check; j++) {
                size_t a = n - o->check + j;
                anomaly_point_t *p = &out[j];
                *p = (anomaly_point_t){.index = a, .value = y[a]};
                if (isnan(y[a])) {
                        p->missing = true;
                        continue;
                }
                double e = b->level + b->slope * ((double)a - b->centre) +
                           seasonal_at(b, a);
                p->score = (z[a] - e) / b->sigma;
                if (o->multiplicative) {
                        p->expected = exp(e);
                        p->lower = exp(e - th * b->sigma);
                        p->upper = exp(e + th * b->sigma);
                } else {
                        p->expected = e;
                        p->lower = e - th * b->sigma;
                        p->upper = e + th * b->sigma;
                }
                p->anomaly = fabs(p->score) >= th;
                if (p->anomaly)
                        p->direction = p->score > 0 ? ANOMALY_UP : ANOMALY_DOWN;
        }
}

/* Sum of |v - median| over the non-NaN values of v[0..n-1]. */
static double l1_cost(const double *v, size_t n, double *scratch, double *med) {
        *med = decompose_median(v, n, scratch);
        double c = 0;
        for (size_t i = 0; i < n; i++)
                if (!isnan(v[i]))
                        c += fabs(v[i] - *med);
        return c;
}

/* The split of the last shift_max values: placed where two medians fit
 * the adjusted values of [lo - 4 periods, n) best (least absolute
 * deviations), then judged by the difference of the medians of the days
 * after it and the 4 periods before it. adj holds n values, scratch n. */
static void find_shift(const double *z, size_t n, const anomaly_options_t *o,
                       const baseline_t *b, double *adj, double *scratch,
                       anomaly_shift_t *shift) {
        *shift = (anomaly_shift_t){0};
        size_t before = 4 * b->m;
        size_t lo = n > o->shift_max ? n - o->shift_max : 0;
        if (lo < b->start + before)
                lo = b->start + before;
        if (lo + o->shift_min > n)
                return;
        for (size_t a = b->start; a < n; a++)
                adj[a] = z[a] - seasonal_at(b, a);
        size_t from = lo - before, tau = n, na = 0, nb = 0;
        double best_cost = INFINITY, ma = 0, mb = 0;
        for (size_t t = lo; t + o->shift_min <= n; t++) {
                size_t ka = 0;
                for (size_t a = t; a < n; a++)
                        ka += !isnan(adj[a]);
                if (ka < o->shift_min)
                        continue;
                double m1, m2;
                double cost = l1_cost(adj + from, t - from, scratch, &m1) +
                              l1_cost(adj + t, n - t, scratch, &m2);
                if (cost < best_cost) {
                        best_cost = cost;
                        tau = t;
                        na = ka;
                }
        }
        if (tau == n)
                return;
        for (size_t a = tau - before; a < tau; a++)
                nb += !isnan(adj[a]);
        if (nb < b->m)
                return;
        ma = decompose_median(adj + tau, n - tau, scratch);
        mb = decompose_median(adj + tau - before, before, scratch);
        double se =
                MEDIAN_SE * b->sigma * sqrt(1 / (double)na + 1 / (double)nb);
        shift->index = tau;
        shift->before = mb;
        shift->after = ma;
        shift->score = (ma - mb) / se;
        if (fabs(shift->score) >= o->shift_threshold &&
            fabs(ma - mb) >= o->shift_sigma * b->sigma) {
                shift->detected = true;
                shift->direction = ma > mb ? ANOMALY_UP : ANOMALY_DOWN;
        }
        if (o->multiplicative) {
                shift->before = exp(shift->before);
                shift->after = exp(shift->after);
        }
}

anomaly_err_t anomaly_check(const double *y, size_t n,
                            const anomaly_options_t *opt, anomaly_point_t *out,
                            anomaly_shift_t *shift) {
        anomaly_options_t o;
        anomaly_err_t err = fill_defaults(opt, n, &o);
        if (err != ANOMALY_OK)
                return err;
        size_t m = o.period, end = n - o.check;
        size_t w = o.window < end ? o.window : end;
        size_t start = end - w, observed = 0;
        for (size_t i = 0; i < n; i++) {
                if (isnan(y[i]))
                        continue;
                if (!isfinite(y[i]))
                        return ANOMALY_BAD_VALUE;
                if (o.multiplicative && y[i] <= 0)
                        return ANOMALY_NOT_POSITIVE;
                if (i >= start && i < end)
                        observed++;
        }
        if (w < 3 * m || observed < 2 * m)
                return ANOMALY_TOO_SHORT;
        size_t pairs = 4 * m * (4 * m - 1) / 2;
        size_t nwork = 3 * w + (pairs > n ? pairs : n);
        double *z = malloc((2 * n + nwork + m) * sizeof(double));
        if (z == NULL)
                return ANOMALY_NO_MEMORY;
        double *adj = z + n, *work = adj + n, *season = work + nwork;
        for (size_t i = 0; i < n; i++)
                z[i] = o.multiplicative ? log(y[i]) : y[i];
        baseline_t b;
        build_baseline(z, start, end, m, season, work, &b);
        check_points(y, z, n, &o, &b, out);
        if (shift)
                find_shift(z, n, &o, &b, adj, work, shift);
        free(z);
        return ANOMALY_OK;
}
