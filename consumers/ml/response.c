/*
 * response.c - the Hill-curve budget response model (the model and its
 * assumptions are in response.h).
 */
#include "response.h"

#include <math.h>
#include <nlopt.h>
#include <stdlib.h>
#include <string.h>

#define MAXEVAL 3000

const char *response_strerror(response_err_t err) {
        switch (err) {
#define X(name, msg) \
        case name:   \
                return msg;
                RESPONSE_ERRORS(X)
#undef X
        }
        return "unknown error";
}

double response_curve(const response_params_t *p, double a) {
        if (a <= 0)
                return p->base;
        double r = pow(a / p->half, p->shape);
        return p->base + p->beta * r / (1 + r);
}

/* A_t over x[0..n-1]; the first day starts at steady state. */
static void adstock(const double *x, size_t n, double lambda, double *a) {
        double prev = n ? x[0] / (1 - lambda) : 0;
        for (size_t t = 0; t < n; t++)
                a[t] = prev = x[t] + lambda * prev;
}

typedef struct fit_ctx {
        const double *x, *r; /* scaled spend and revenue */
        size_t n;
        double *a; /* adstock scratch */
        bool adstock;
} fit_ctx_t;

static void unpack(const double *v, bool ad, response_params_t *p) {
        p->base = v[0];
        p->beta = v[1];
        p->half = v[2];
        p->shape = v[3];
        p->lambda = ad ? v[4] : 0;
}

static double sse_of(unsigned dim, const double *v, double *grad, void *arg) {
        (void)dim;
        (void)grad;
        fit_ctx_t *c = arg;
        response_params_t p;
        unpack(v, c->adstock, &p);
        adstock(c->x, c->n, p.lambda, c->a);
        double sse = 0;
        for (size_t t = 0; t < c->n; t++) {
                if (isnan(c->r[t]))
                        continue;
                double e = c->r[t] - response_curve(&p, c->a[t]);
                sse += e * e;
        }
        return isfinite(sse) ? sse : 1e300;
}

/* Least squares from a few starts on data scaled to mean 1. */
static response_err_t fit_scaled(fit_ctx_t *c, double rmax,
                                 response_params_t *best) {
        unsigned dim = c->adstock ? 5 : 4;
        double lo[5] = {0, 0, 0.01, 0.5, 0};
        double hi[5] = {rmax, 10 * rmax, 100, 3, 0.9};
        double step[5] = {0.05 * rmax, 0.1 * rmax, 0.2, 0.2, 0.1};
        double best_f = INFINITY;
        static const double halves[] = {0.3, 1, 3};
        static const double shapes[] = {1, 2};
        for (size_t i = 0; i < 3; i++) {
                for (size_t j = 0; j < 2; j++) {
                        double v[5] = {0.2 * rmax, rmax, halves[i], shapes[j],
                                       0.3};
                        double f;
                        nlopt_opt opt = nlopt_create(NLOPT_LN_BOBYQA, dim);
                        if (opt == NULL)
                                return RESPONSE_NO_MEMORY;
                        nlopt_set_lower_bounds(opt, lo);
                        nlopt_set_upper_bounds(opt, hi);
                        nlopt_set_initial_step(opt, step);
                        nlopt_set_min_objective(opt, sse_of, c);
                        nlopt_set_xtol_rel(opt, 1e-8);
                        nlopt_set_maxeval(opt, MAXEVAL);
                        nlopt_result res = nlopt_optimize(opt, v, &f);
                        nlopt_destroy(opt);
                        if ((res > 0 || res == NLOPT_ROUNDOFF_LIMITED) &&
                            f < best_f) {
                                best_f = f;
                                unpack(v, c->adstock, best);
                        }
                }
        }
        return isfinite(best_f) && best_f < 1e300 ? RESPONSE_OK
                                                  : RESPONSE_NO_FIT;
}

/* Error measures of p on days [from, to) of the unscaled data. */
static response_error_t measure(const response_params_t *p, const double *a,
                                const double *r, size_t from, size_t to) {
        response_error_t e = {0};
        double sse = 0, sae = 0, sape = 0, mean = 0, sst = 0;
        size_t k = 0, kp = 0;
        for (size_t t = from; t < to; t++)
                if (!isnan(r[t])) {
                        mean += r[t];
                        k++;
                }
        if (k == 0)
                return (response_error_t){NAN, NAN, NAN, NAN};
        mean /= (double)k;
        for (size_t t = from; t < to; t++) {
                if (isnan(r[t]))
                        continue;
                double d = r[t] - response_curve(p, a[t]);
                sse += d * d;
                sae += fabs(d);
                sst += (r[t] - mean) * (r[t] - mean);
                if (r[t] > 0) {
                        sape += fabs(d) / r[t];
                        kp++;
                }
        }
        e.rmse = sqrt(sse / (double)k);
        e.mae = sae / (double)k;
        e.mape = kp ? 100 * sape / (double)kp : NAN;
        e.r2 = sst > 0 ? 1 - sse / sst : NAN;
        return e;
}

/* Fits days [0, n) of spend/revenue into *p (unscaled). */
static response_err_t fit_range(const double *spend, const double *revenue,
                                size_t n, bool ad, double *buf,
                                response_params_t *p) {
        double sx = 0, sr = 0, rmax = 0;
        size_t k = 0;
        for (size_t t = 0; t < n; t++) {
                sx += spend[t];
                if (!isnan(revenue[t])) {
                        sr += revenue[t];
                        k++;
                }
        }
        double xs = sx > 0 ? sx / (double)n : 1;
        double rs = sr > 0 ? sr / (double)k : 1;
        double *x = buf, *r = buf + n, *a = buf + 2 * n;
        for (size_t t = 0; t < n; t++) {
                x[t] = spend[t] / xs;
                r[t] = revenue[t] / rs;
                if (!isnan(r[t]) && r[t] > rmax)
                        rmax = r[t];
        }
        fit_ctx_t c = {.x = x, .r = r, .n = n, .a = a, .adstock = ad};
        response_err_t err = fit_scaled(&c, rmax > 0 ? rmax : 1, p);
        if (err != RESPONSE_OK)
                return err;
        p->base *= rs;
        p->beta *= rs;
        p->half *= xs;
        return RESPONSE_OK;
}

response_err_t response_fit(const double *spend, const double *revenue,
                            size_t n, bool ad, response_model_t *out) {
        memset(out, 0, sizeof(*out));
        out->adstock = ad;
        double sx = 0, sxx = 0;
        size_t k = 0;
        for (size_t t = 0; t < n; t++) {
                if (!isfinite(spend[t]) || spend[t] < 0)
                        return RESPONSE_BAD_VALUE;
                if (isnan(revenue[t]))
                        continue;
                if (!isfinite(revenue[t]) || revenue[t] < 0)
                        return RESPONSE_BAD_VALUE;
                k++;
        }
        if (k < RESPONSE_MIN_DAYS)
                return RESPONSE_TOO_SHORT;
        for (size_t t = 0; t < n; t++) {
                sx += spend[t];
                sxx += spend[t] * spend[t];
                if (spend[t] > out->max_spend)
                        out->max_spend = spend[t];
        }
        double mx = sx / (double)n, var = sxx / (double)n - mx * mx;
        if (!(mx > 0) || sqrt(fmax(var, 0)) < 0.05 * mx)
                return RESPONSE_NO_VARIATION;
        double *buf = malloc(3 * n * sizeof(double));
        if (buf == NULL)
                return RESPONSE_NO_MEMORY;
        response_err_t err = fit_range(spend, revenue, n, ad, buf, &out->p);
        if (err != RESPONSE_OK)
                goto done;
        double *a = buf + 2 * n;
        adstock(spend, n, out->p.lambda, a);
        out->n = k;
        out->last_adstock = a[n - 1];
        out->fit = measure(&out->p, a, revenue, 0, n);
        double dof = k > 5 ? (double)(k - 5) : 1;
        out->sigma = out->fit.rmse * sqrt((double)k / dof);
        /* Holdout: refit on the first 80%, judge on the rest. */
        size_t cut = (size_t)(0.8 * (double)n);
        response_params_t hp;
        if (fit_range(spend, revenue, cut, ad, buf, &hp) == RESPONSE_OK) {
                adstock(spend, n, hp.lambda, a);
                out->holdout = measure(&hp, a, revenue, cut, n);
        } else {
                out->holdout = (response_error_t){NAN, NAN, NAN, NAN};
        }
done:
        free(buf);
        return err;
}

double response_marginal(const response_model_t *m, double x) {
        double k = 1 / (1 - m->p.lambda), h = fmax(1e-6 * x, 1e-9);
        double up = response_curve(&m->p, (x + h) * k);
        double down = response_curve(&m->p, fmax(x - h, 0) * k);
        return (up - down) / (x + h - fmax(x - h, 0));
}

response_err_t response_project(const response_model_t *m, const double *plan,
                                size_t days, response_projection_t *out) {
        memset(out, 0, sizeof(*out));
        if (days == 0)
                return RESPONSE_BAD_ARGS;
        double a = m->last_adstock;
        for (size_t t = 0; t < days; t++) {
                if (!isfinite(plan[t]) || plan[t] < 0)
                        return RESPONSE_BAD_ARGS;
                a = plan[t] + m->p.lambda * a;
                out->spend += plan[t];
                out->revenue += response_curve(&m->p, a);
                if (plan[t] > m->max_spend)
                        out->out_of_range = true;
        }
        double band = 1.959963984540054 * m->sigma * sqrt((double)days);
        out->lo95 = fmax(out->revenue - band, 0);
        out->hi95 = out->revenue + band;
        return RESPONSE_OK;
}

/* Steady-state revenue of one day at daily spend x. */
static double steady(const response_model_t *m, double x) {
        return response_curve(&m->p, x / (1 - m->p.lambda));
}

response_err_t response_move(const response_model_t *models,
                             const double *spend, size_t n_channels,
                             size_t from, size_t to, double amount, size_t days,
                             double *delta, double *total, bool *out_of_range) {
        if (from >= n_channels || to >= n_channels || from == to ||
            !(amount >= 0) || amount > spend[from] || days == 0)
                return RESPONSE_BAD_ARGS;
        for (size_t c = 0; c < n_channels; c++)
                delta[c] = 0;
        const response_model_t *mf = &models[from], *mt = &models[to];
        delta[from] =
                (steady(mf, spend[from] - amount) - steady(mf, spend[from])) *
                (double)days;
        delta[to] = (steady(mt, spend[to] + amount) - steady(mt, spend[to])) *
                    (double)days;
        *total = delta[from] + delta[to];
        *out_of_range = spend[to] + amount > mt->max_spend;
        return RESPONSE_OK;
}

response_err_t response_allocate(const response_model_t *models,
                                 size_t n_channels, double budget,
                                 double cap_factor, double *alloc) {
        if (n_channels == 0 || !(budget >= 0) || !isfinite(budget) ||
            cap_factor < 0)
                return RESPONSE_BAD_ARGS;
        if (cap_factor == 0)
                cap_factor = 1.5;
        double step = budget / 1000, left = budget;
        for (size_t c = 0; c < n_channels; c++)
                alloc[c] = 0;
        while (left > 1e-12 * budget && step > 0) {
                double inc = fmin(step, left), best_gain = -INFINITY;
                size_t best = n_channels;
                for (size_t c = 0; c < n_channels; c++) {
                        double cap = cap_factor * models[c].max_spend;
                        if (alloc[c] + inc > cap)
                                continue;
                        double gain = steady(&models[c], alloc[c] + inc) -
                                      steady(&models[c], alloc[c]);
                        if (gain > best_gain) {
                                best_gain = gain;
                                best = c;
                        }
                }
                if (best == n_channels)
                        break; /* every channel at its cap */
                alloc[best] += inc;
                left -= inc;
        }
        return RESPONSE_OK;
}
