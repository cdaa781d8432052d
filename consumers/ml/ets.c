/*
 * ets.c - the ETS recursion, its likelihood, point forecasts and their
 * intervals (contracts in ets.h). Fitting and model selection live in
 * ets_fit.c.
 *
 * The recursion is forecast::ets's error-correction form, which gives the
 * same states for additive and multiplicative errors (Hyndman et al. 2008,
 * table 2.3): with q = l + phi b and s the seasonal state of time t,
 *   f   = q (+ s | * s)
 *   l'  = q + alpha (p - q),          p = y (- s | / s)
 *   b'  = phi b + beta (l' - l - phi b) / alpha
 *   s'  = s + gamma (u - s),          u = y (- q | / q)
 * A missing y moves the states on with a zero error (l' = q, b' = phi b).
 */
#include "ets_internal.h"
#include "decompose.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ets_strerror(ets_err_t err) {
        switch (err) {
#define X(name, msg) \
        case name:   \
                return msg;
                ETS_ERRORS(X)
#undef X
        }
        return "unknown error";
}

void ets_spec_name(ets_spec_t spec, char *buf, size_t len) {
        static const char *const trend[] = {"N", "A", "Ad"};
        static const char *const season[] = {"N", "A", "M"};
        snprintf(buf, len, "ETS(%s,%s,%s)", spec.error == ETS_E_MUL ? "M" : "A",
                 trend[spec.trend], season[spec.season]);
}

size_t ets__n_params(ets_spec_t spec, size_t m) {
        size_t p = 2; /* alpha, l0 */
        if (spec.trend != ETS_T_NONE)
                p += 2; /* beta, b0 */
        if (spec.trend == ETS_T_DAMPED)
                p += 1; /* phi */
        if (spec.season != ETS_S_NONE)
                p += m; /* gamma, m - 1 seasonal states */
        return p;
}

size_t ets_min_history(ets_spec_t spec, size_t period) {
        size_t need = ets__n_params(spec, period) + 5;
        if (spec.season != ETS_S_NONE && need < 2 * period)
                need = 2 * period;
        return need;
}

/* ------------------------------------------------------------------------
 * The recursion.
 * --------------------------------------------------------------------- */

ets__run_t ets__recursion(ets_spec_t spec, size_t m, const ets__theta_t *th,
                          const double *y, size_t n, ets_model_t *model) {
        ets__run_t r = {.ok = true};
        bool trend = spec.trend != ETS_T_NONE;
        bool mul_err = spec.error == ETS_E_MUL;
        bool positive = mul_err || spec.season == ETS_S_MUL;
        double phi = spec.trend == ETS_T_DAMPED ? th->phi : 1.0;
        double l = th->l0, b = trend ? th->b0 : 0;
        double seas_buf[64];
        double *seas = model ? model->seas : (m <= 64 ? seas_buf : NULL);
        if (seas == NULL)
                seas = malloc(m * sizeof(double));
        if (seas == NULL) {
                r.ok = false;
                return r;
        }
        if (spec.season != ETS_S_NONE)
                memcpy(seas, th->s0, m * sizeof(double));
        double sae = 0, sse = 0, sape = 0, ssape = 0, snaive = 0;
        size_t n_naive = 0;
        bool ape_ok = true;
        for (size_t t = 0; t < n; t++) {
                double q = l + phi * b, phib = phi * b;
                double *s = &seas[t % m];
                double f = q;
                if (spec.season == ETS_S_ADD)
                        f += *s;
                else if (spec.season == ETS_S_MUL)
                        f *= *s;
                if (!isfinite(f) || (positive && f <= 0)) {
                        r.ok = false;
                        break;
                }
                if (isnan(y[t])) {
                        l = q;
                        b = phib;
                        continue;
                }
                double err = y[t] - f;
                double e = mul_err ? err / f : err;
                r.sse += e * e;
                r.sumlog += log(fabs(f));
                r.n++;
                if (model) {
                        sae += fabs(err);
                        sse += err * err;
                        if (y[t] == 0)
                                ape_ok = false;
                        else
                                sape += fabs(err / y[t]);
                        if (fabs(y[t]) + fabs(f) > 0)
                                ssape += 2 * fabs(err) / (fabs(y[t]) + fabs(f));
                        if (t >= m && !isnan(y[t - m])) {
                                snaive += fabs(y[t] - y[t - m]);
                                n_naive++;
                        }
                }
                double p = y[t];
                if (spec.season == ETS_S_ADD)
                        p -= *s;
                else if (spec.season == ETS_S_MUL)
                        p /= *s;
                double lnew = q + th->alpha * (p - q);
                if (trend)
                        b = phib + th->beta / th->alpha * (lnew - l - phib);
                l = lnew;
                if (spec.season == ETS_S_ADD)
                        *s += th->gamma * (y[t] - q - *s);
                else if (spec.season == ETS_S_MUL)
                        *s += th->gamma * (y[t] / q - *s);
        }
        if (model && r.ok) {
                /* seas[] is indexed by time modulo m: rotate it so that
                 * seas[j] belongs to step j + 1 after the last value. */
                if (spec.season != ETS_S_NONE) {
                        double tmp[64];
                        double *rot =
                                m <= 64 ? tmp : malloc(m * sizeof(double));
                        if (rot) {
                                for (size_t j = 0; j < m; j++)
                                        rot[j] = seas[(n + j) % m];
                                memcpy(seas, rot, m * sizeof(double));
                                if (rot != tmp)
                                        free(rot);
                        } else {
                                r.ok = false;
                        }
                }
                model->level = l;
                model->slope = b;
                double nn = (double)r.n;
                model->stats.mae = sae / nn;
                model->stats.rmse = sqrt(sse / nn);
                model->stats.mape = ape_ok ? 100 * sape / nn : NAN;
                model->stats.smape = 100 * ssape / nn;
                model->stats.mase =
                        n_naive && snaive > 0
                                ? (sae / nn) / (snaive / (double)n_naive)
                                : NAN;
        }
        if (!model && seas != seas_buf)
                free(seas);
        return r;
}

double ets__objective(ets_spec_t spec, const ets__run_t *r) {
        if (!r->ok || r->n == 0 || !isfinite(r->sse))
                return ETS__HUGE;
        double lik = (double)r->n * log(fmax(r->sse, 1e-300));
        if (spec.error == ETS_E_MUL)
                lik += 2 * r->sumlog;
        if (!isfinite(lik))
                return ETS__HUGE;
        return fmax(lik, -1e10);
}

/* ------------------------------------------------------------------------
 * Forecasts.
 * --------------------------------------------------------------------- */

/* The point forecasts of steps 1..h from the model's final states. */
static void point_forecasts(const ets_model_t *model, int h, ets_point_t *out) {
        double phi = model->spec.trend == ETS_T_DAMPED ? model->theta.phi : 1;
        double damp = 0, phik = 1;
        for (int i = 0; i < h; i++) {
                phik *= phi;
                damp += phik; /* phi + phi^2 + ... + phi^(i+1) */
                double f = model->level;
                if (model->spec.trend != ETS_T_NONE)
                        f += damp * model->slope;
                double s = model->seas[(size_t)i % model->period];
                if (model->spec.season == ETS_S_ADD)
                        f += s;
                else if (model->spec.season == ETS_S_MUL)
                        f *= s;
                out[i].mean = f;
        }
}

/* Standard normal quantiles of the two interval levels. */
#define Z80 1.2815515655446004
#define Z95 1.959963984540054

/* Additive error: the exact variance, c_j = alpha + beta (phi + .. + phi^j)
 * + gamma [j a multiple of m] (Hyndman et al. 2008, class 1). */
static void analytic_intervals(const ets_model_t *model, int h,
                               ets_point_t *out) {
        const ets__theta_t *th = &model->theta;
        bool trend = model->spec.trend != ETS_T_NONE;
        bool season = model->spec.season != ETS_S_NONE;
        double phi = model->spec.trend == ETS_T_DAMPED ? th->phi : 1;
        double sum = 0, damp = 0, phik = 1;
        for (int i = 0; i < h; i++) {
                if (i > 0) {
                        size_t j = (size_t)i;
                        phik *= phi;
                        damp += phik;
                        double c = th->alpha;
                        if (trend)
                                c += th->beta * damp;
                        if (season && j % model->period == 0)
                                c += th->gamma;
                        sum += c * c;
                }
                double sd = sqrt(model->stats.sigma2 * (1 + sum));
                out[i].lo80 = out[i].mean - Z80 * sd;
                out[i].hi80 = out[i].mean + Z80 * sd;
                out[i].lo95 = out[i].mean - Z95 * sd;
                out[i].hi95 = out[i].mean + Z95 * sd;
        }
}

/* The p-quantile of sorted v[0..n-1] (R's type 7). */
static double quantile_sorted(const double *v, size_t n, double p) {
        double pos = p * (double)(n - 1);
        size_t i = (size_t)pos;
        if (i + 1 >= n)
                return v[n - 1];
        return v[i] + (pos - (double)i) * (v[i + 1] - v[i]);
}

/* Multiplicative error: quantiles of n_sim sample paths, all moved one
 * step at a time (states: level, slope and m seasonal states per path). */
static ets_err_t simulated_intervals(const ets_model_t *model, int h,
                                     ets_point_t *out) {
        size_t np = (size_t)model->n_sim, m = model->period;
        const ets__theta_t *th = &model->theta;
        double phi = model->spec.trend == ETS_T_DAMPED ? th->phi : 1;
        double sigma = sqrt(model->stats.sigma2);
        double *st = malloc(np * (m + 2) * sizeof(double));
        double *ys = malloc(np * sizeof(double));
        if (st == NULL || ys == NULL) {
                free(st);
                free(ys);
                return ETS_NO_MEMORY;
        }
        for (size_t p = 0; p < np; p++) {
                double *x = st + p * (m + 2);
                x[0] = model->level;
                x[1] = model->slope;
                memcpy(x + 2, model->seas, m * sizeof(double));
        }
        uint64_t rng = model->seed;
        for (int i = 0; i < h; i++) {
                for (size_t p = 0; p < np; p++) {
                        double *x = st + p * (m + 2);
                        double *s = &x[2 + (size_t)i % m];
                        double q = x[0] + phi * x[1], phib = phi * x[1];
                        double f = q;
                        if (model->spec.season == ETS_S_ADD)
                                f += *s;
                        else if (model->spec.season == ETS_S_MUL)
                                f *= *s;
                        double y = f * (1 + sigma * rng_normal(&rng));
                        ys[p] = y;
                        double pr = y;
                        if (model->spec.season == ETS_S_ADD)
                                pr -= *s;
                        else if (model->spec.season == ETS_S_MUL)
                                pr /= *s;
                        double lnew = q + th->alpha * (pr - q);
                        if (model->spec.trend != ETS_T_NONE)
                                x[1] = phib + th->beta / th->alpha *
                                                      (lnew - x[0] - phib);
                        x[0] = lnew;
                        if (model->spec.season == ETS_S_ADD)
                                *s += th->gamma * (y - q - *s);
                        else if (model->spec.season == ETS_S_MUL)
                                *s += th->gamma * (y / q - *s);
                }
                decompose_sort(ys, np);
                out[i].lo80 = quantile_sorted(ys, np, 0.10);
                out[i].hi80 = quantile_sorted(ys, np, 0.90);
                out[i].lo95 = quantile_sorted(ys, np, 0.025);
                out[i].hi95 = quantile_sorted(ys, np, 0.975);
        }
        free(st);
        free(ys);
        return ETS_OK;
}

ets_err_t ets_forecast(const ets_model_t *model, int h, ets_point_t *out) {
        if (h < 1 || h > ETS_HORIZON_MAX)
                return ETS_BAD_HORIZON;
        point_forecasts(model, h, out);
        if (model->spec.error == ETS_E_ADD) {
                analytic_intervals(model, h, out);
                return ETS_OK;
        }
        return simulated_intervals(model, h, out);
}

/* ------------------------------------------------------------------------
 * Accessors.
 * --------------------------------------------------------------------- */

void ets_destroy(ets_model_t *model) {
        if (model == NULL)
                return;
        free(model->theta.s0);
        free(model->seas);
        free(model);
}

const char *ets_name(const ets_model_t *model) {
        return model->name;
}

ets_spec_t ets_model_spec(const ets_model_t *model) {
        return model->spec;
}

size_t ets_period(const ets_model_t *model) {
        return model->period;
}

ets_params_t ets_params(const ets_model_t *model) {
        const ets__theta_t *th = &model->theta;
        return (ets_params_t){
                .alpha = th->alpha,
                .beta = model->spec.trend != ETS_T_NONE ? th->beta : 0,
                .gamma = model->spec.season != ETS_S_NONE ? th->gamma : 0,
                .phi = model->spec.trend == ETS_T_DAMPED ? th->phi : 1,
                .l0 = th->l0,
                .b0 = model->spec.trend != ETS_T_NONE ? th->b0 : 0,
                .season = th->s0,
        };
}

ets_stats_t ets_stats(const ets_model_t *model) {
        return model->stats;
}
