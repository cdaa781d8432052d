/*
 * ets_fit.c - fitting ETS models by maximum likelihood and choosing one by
 * AICc (contracts in ets.h; the recursion is in ets.c).
 *
 * The optimiser works on the series divided by its mean absolute value
 * (every ETS model is scale-equivariant, and -2 log L only moves by a
 * constant), on the vector
 *   alpha, beta/alpha, gamma/(1 - alpha), phi, l0, b0, s0 .. s(m-2)
 * (the entries the model has), so that the bounds of ets.h are a box.
 * NLopt's BOBYQA (a trust-region method on quadratic models, no
 * derivatives) finds the optimum and Nelder-Mead polishes it.
 */
#include "decompose.h"
#include "ets_internal.h"

#include <math.h>
#include <nlopt.h>
#include <stdlib.h>
#include <string.h>

#define ALPHA_LO 1e-4
#define ALPHA_HI 0.9999
#define PHI_LO 0.8
#define PHI_HI 0.98
#define MAXEVAL 2000
/* Relative step and absolute -2 log L change that end a search: tighter
 * moves the sum of AICc over 55 M3 series by 2 and doubles the time. */
#define TOL 1e-4
#define DEFAULT_SIM 5000
#define DEFAULT_SEED 0x5eed5eed5eedULL
#define MAX_DIM (5 + ETS_PERIOD_MAX)

typedef struct fit_ctx {
        ets_spec_t spec;
        size_t m;
        const double *y; /* the scaled series */
        size_t n;
        ets__theta_t th; /* unpacked from the optimiser's vector */
} fit_ctx_t;

static bool has_trend(ets_spec_t spec) {
        return spec.trend != ETS_T_NONE;
}

static bool has_season(ets_spec_t spec) {
        return spec.season != ETS_S_NONE;
}

static bool is_multiplicative(ets_spec_t spec) {
        return spec.error == ETS_E_MUL || spec.season == ETS_S_MUL;
}

static void unpack(fit_ctx_t *c, const double *x) {
        size_t k = 0;
        ets__theta_t *th = &c->th;
        th->alpha = x[k++];
        if (has_trend(c->spec))
                th->beta = th->alpha * x[k++];
        if (has_season(c->spec))
                th->gamma = (1 - th->alpha) * x[k++];
        th->phi = c->spec.trend == ETS_T_DAMPED ? x[k++] : 1;
        th->l0 = x[k++];
        if (has_trend(c->spec))
                th->b0 = x[k++];
        if (has_season(c->spec)) {
                double sum = 0;
                for (size_t i = 0; i + 1 < c->m; i++) {
                        th->s0[i] = x[k++];
                        sum += th->s0[i];
                }
                th->s0[c->m - 1] =
                        (c->spec.season == ETS_S_MUL ? (double)c->m : 0) - sum;
        }
}

static double objective(unsigned dim, const double *x, double *grad,
                        void *arg) {
        (void)dim;
        (void)grad;
        fit_ctx_t *c = arg;
        unpack(c, x);
        ets__run_t r = ets__recursion(c->spec, c->m, &c->th, c->y, c->n, NULL);
        return ets__objective(c->spec, &r);
}

/* ------------------------------------------------------------------------
 * Starting values: forecast::ets's heuristics (initstate, initparam).
 * --------------------------------------------------------------------- */

/* Least squares of v[0..n-1] on (1, t + 1): intercept and slope. */
static void line_fit(const double *v, size_t n, double *a, double *b) {
        double st = 0, sv = 0, stt = 0, stv = 0;
        for (size_t i = 0; i < n; i++) {
                double t = (double)(i + 1);
                st += t;
                sv += v[i];
                stt += t * t;
                stv += t * v[i];
        }
        double nn = (double)n, den = nn * stt - st * st;
        *b = den != 0 ? (nn * stv - st * sv) / den : 0;
        *a = (sv - *b * st) / nn;
}

/* A seasonal figure for short series (fewer than three seasons): y less
 * (or over) a fitted line with one Fourier pair, as forecast::ets does. */
static void fourier_season(const double *y, size_t n, size_t m, bool mult,
                           double *season) {
        /* Normal equations of y on (1, t, sin, cos), 4 x 4, by Gauss. */
        double a[4][5] = {{0}};
        for (size_t i = 0; i < n; i++) {
                double t = (double)(i + 1), w = 2 * M_PI * t / (double)m;
                double xv[4] = {1, t, sin(w), cos(w)};
                for (int r = 0; r < 4; r++) {
                        for (int c = 0; c < 4; c++)
                                a[r][c] += xv[r] * xv[c];
                        a[r][4] += xv[r] * y[i];
                }
        }
        for (int p = 0; p < 4; p++) {
                int best = p;
                for (int r = p + 1; r < 4; r++)
                        if (fabs(a[r][p]) > fabs(a[best][p]))
                                best = r;
                for (int c = 0; c < 5; c++) {
                        double tmp = a[p][c];
                        a[p][c] = a[best][c];
                        a[best][c] = tmp;
                }
                if (fabs(a[p][p]) < 1e-300)
                        continue;
                for (int r = 0; r < 4; r++) {
                        if (r == p)
                                continue;
                        double f = a[r][p] / a[p][p];
                        for (int c = p; c < 5; c++)
                                a[r][c] -= f * a[p][c];
                }
        }
        double c0 = fabs(a[0][0]) > 1e-300 ? a[0][4] / a[0][0] : 0;
        double c1 = fabs(a[1][1]) > 1e-300 ? a[1][4] / a[1][1] : 0;
        for (size_t i = 0; i < m; i++) {
                double tr = c0 + c1 * (double)(i + 1);
                season[i] = mult ? (tr != 0 ? y[i] / tr : 1) : y[i] - tr;
        }
}

/* Starting states on the scaled, gap-filled series yf[0..n-1]. */
static void initial_states(ets_spec_t spec, size_t m, const double *yf,
                           size_t n, ets__theta_t *th, double *sa) {
        bool mult = spec.season == ETS_S_MUL;
        if (has_season(spec)) {
                if (n >= 3 * m)
                        decompose_classical(yf, 3 * m, m, mult, th->s0, NULL);
                else
                        fourier_season(yf, n, m, mult, th->s0);
                double avg = 0;
                for (size_t i = 0; i < m; i++) {
                        if (mult && th->s0[i] < 1e-2)
                                th->s0[i] = 1e-2;
                        avg += th->s0[i];
                }
                avg /= (double)m;
                for (size_t i = 0; i < m; i++)
                        th->s0[i] = mult ? th->s0[i] / avg : th->s0[i] - avg;
        }
        size_t maxn = 2 * m > 10 ? 2 * m : 10;
        if (!has_season(spec))
                maxn = 10;
        if (maxn > n)
                maxn = n;
        for (size_t i = 0; i < maxn; i++) {
                double s = has_season(spec) ? th->s0[i % m] : (mult ? 1 : 0);
                sa[i] = mult ? yf[i] / fmax(s, 1e-2) : yf[i] - s;
        }
        if (!has_trend(spec)) {
                double sum = 0;
                for (size_t i = 0; i < maxn; i++)
                        sum += sa[i];
                th->l0 = sum / (double)maxn;
                th->b0 = 0;
                return;
        }
        line_fit(sa, maxn, &th->l0, &th->b0);
        if (fabs(th->l0 + th->b0) < 1e-8) {
                th->l0 *= 1 + 1e-3;
                th->b0 *= 1 - 1e-3;
        }
}

/* ------------------------------------------------------------------------
 * Optimisation.
 * --------------------------------------------------------------------- */

/* Packs the starting values, bounds and steps; returns the dimension.
 * big is the largest absolute scaled value. */
static unsigned pack_start(const fit_ctx_t *c, double big, double *x,
                           double *lo, double *hi, double *step) {
        const ets__theta_t *th = &c->th;
        unsigned k = 0;
        double alpha = ALPHA_LO + 0.2 * (ALPHA_HI - ALPHA_LO) / (double)c->m;
#define PUT(v, l, h, s)                               \
        do {                                          \
                lo[k] = (l);                          \
                hi[k] = (h);                          \
                x[k] = fmin(fmax((v), lo[k]), hi[k]); \
                step[k] = (s);                        \
                k++;                                  \
        } while (0)
        PUT(alpha, ALPHA_LO, ALPHA_HI, 0.05);
        if (has_trend(c->spec))
                PUT(0.1, 1e-4, 1, 0.05);
        if (has_season(c->spec))
                PUT(0.05, 1e-4, 1, 0.05);
        if (c->spec.trend == ETS_T_DAMPED)
                PUT(PHI_LO + 0.99 * (PHI_HI - PHI_LO), PHI_LO, PHI_HI, 0.02);
        PUT(th->l0, th->l0 - 10 * big, th->l0 + 10 * big, 0.05 * big);
        if (has_trend(c->spec))
                PUT(th->b0, th->b0 - 2 * big, th->b0 + 2 * big, 0.01 * big);
        if (has_season(c->spec)) {
                bool mult = c->spec.season == ETS_S_MUL;
                for (size_t i = 0; i + 1 < c->m; i++) {
                        if (mult)
                                PUT(th->s0[i], 1e-3, (double)c->m, 0.05);
                        else
                                PUT(th->s0[i], th->s0[i] - 10 * big,
                                    th->s0[i] + 10 * big, 0.05 * big);
                }
        }
#undef PUT
        return k;
}

/* Minimises the objective from x (dim entries) with one NLopt algorithm. */
static double run_nlopt(nlopt_algorithm alg, fit_ctx_t *c, unsigned dim,
                        double *x, const double *lo, const double *hi,
                        const double *step) {
        double best = objective(dim, x, NULL, c);
        nlopt_opt opt = nlopt_create(alg, dim);
        if (opt == NULL)
                return best;
        nlopt_set_lower_bounds(opt, lo);
        nlopt_set_upper_bounds(opt, hi);
        nlopt_set_min_objective(opt, objective, c);
        nlopt_set_initial_step(opt, step);
        nlopt_set_xtol_rel(opt, TOL);
        nlopt_set_ftol_abs(opt, TOL);
        nlopt_set_maxeval(opt, MAXEVAL);
        double xs[MAX_DIM], f = best;
        memcpy(xs, x, dim * sizeof(double));
        nlopt_result res = nlopt_optimize(opt, xs, &f);
        if (res > 0 || res == NLOPT_ROUNDOFF_LIMITED) {
                if (f < best) {
                        best = f;
                        memcpy(x, xs, dim * sizeof(double));
                }
        }
        nlopt_destroy(opt);
        return best;
}

/* ------------------------------------------------------------------------
 * One model, and the selection.
 * --------------------------------------------------------------------- */

typedef struct series {
        const double *y;  /* the data, leading NaNs dropped */
        const double *ys; /* scaled */
        const double *yf; /* scaled, gaps filled (starting values only) */
        double *work;     /* n doubles for the heuristics */
        size_t n;         /* length */
        size_t n_obs;     /* observed values */
        double scale;     /* ys = y / scale */
        double big;       /* max |ys| */
        bool positive;    /* every observed value > 0 */
} series_t;

/* Fills the criteria of model->stats from a recursion over the data. */
static void criteria(ets_model_t *model, const ets__run_t *r) {
        ets_stats_t *st = &model->stats;
        double n = (double)r->n, k = (double)st->k;
        double sse = fmax(r->sse, 1e-300);
        st->n = r->n;
        st->loglik = -0.5 * n * (log(2 * M_PI * sse / n) + 1);
        if (model->spec.error == ETS_E_MUL)
                st->loglik -= r->sumlog;
        st->aic = -2 * st->loglik + 2 * k;
        st->aicc = n - k - 1 > 0 ? st->aic + 2 * k * (k + 1) / (n - k - 1)
                                 : INFINITY;
        st->bic = -2 * st->loglik + k * log(n);
        st->sigma2 = r->sse / (n - k > 0 ? n - k : n);
}

static ets_err_t fit_one(ets_spec_t spec, size_t m, const series_t *s,
                         const ets_options_t *opt, ets_model_t **out) {
        *out = NULL;
        ets_model_t *model = calloc(1, sizeof(*model));
        if (model == NULL)
                return ETS_NO_MEMORY;
        model->spec = spec;
        model->period = m;
        model->n_sim = opt->n_sim > 0 ? opt->n_sim : DEFAULT_SIM;
        model->seed = opt->seed ? opt->seed : DEFAULT_SEED;
        ets_spec_name(spec, model->name, sizeof(model->name));
        model->theta.s0 = calloc(m, sizeof(double));
        model->seas = calloc(m, sizeof(double));
        if (model->theta.s0 == NULL || model->seas == NULL) {
                ets_destroy(model);
                return ETS_NO_MEMORY;
        }
        fit_ctx_t c = {.spec = spec, .m = m, .y = s->ys, .n = s->n};
        c.th.s0 = model->theta.s0;
        initial_states(spec, m, s->yf, s->n, &c.th, s->work);
        double x[MAX_DIM], lo[MAX_DIM], hi[MAX_DIM], step[MAX_DIM];
        unsigned dim = pack_start(&c, s->big, x, lo, hi, step);
        run_nlopt(NLOPT_LN_BOBYQA, &c, dim, x, lo, hi, step);
        double f = run_nlopt(NLOPT_LN_NELDERMEAD, &c, dim, x, lo, hi, step);
        if (f >= ETS__HUGE) {
                ets_destroy(model);
                return ETS_NO_FIT;
        }
        unpack(&c, x);
        /* Back to the data's scale: levels, slopes and additive seasonal
         * states scale; smoothing parameters and seasonal factors do not. */
        model->theta.alpha = c.th.alpha;
        model->theta.beta = c.th.beta;
        model->theta.gamma = c.th.gamma;
        model->theta.phi = c.th.phi;
        model->theta.l0 = c.th.l0 * s->scale;
        model->theta.b0 = c.th.b0 * s->scale;
        if (spec.season == ETS_S_ADD)
                for (size_t i = 0; i < m; i++)
                        model->theta.s0[i] *= s->scale;
        model->stats.k = ets__n_params(spec, m) + 1;
        ets__run_t r =
                ets__recursion(spec, m, &model->theta, s->y, s->n, model);
        if (!r.ok || r.n == 0) {
                ets_destroy(model);
                return ETS_NO_FIT;
        }
        criteria(model, &r);
        *out = model;
        return ETS_OK;
}

static bool spec_valid(ets_spec_t spec, size_t m) {
        if ((unsigned)spec.error > ETS_E_MUL ||
            (unsigned)spec.trend > ETS_T_DAMPED ||
            (unsigned)spec.season > ETS_S_MUL)
                return false;
        if (spec.season != ETS_S_NONE && m < 2)
                return false;
        return !(spec.error == ETS_E_ADD && spec.season == ETS_S_MUL);
}

/* Drops leading NaNs, checks the values, scales and fills gaps. */
static ets_err_t prepare(const double *y, size_t n, series_t *s,
                         double **owned) {
        size_t first = 0;
        while (first < n && isnan(y[first]))
                first++;
        memset(s, 0, sizeof(*s));
        s->y = y + first;
        s->n = n - first;
        s->positive = true;
        double sum = 0;
        for (size_t i = 0; i < s->n; i++) {
                double v = s->y[i];
                if (isnan(v))
                        continue;
                if (!isfinite(v))
                        return ETS_BAD_VALUE;
                s->n_obs++;
                sum += fabs(v);
                if (v <= 0)
                        s->positive = false;
        }
        if (s->n_obs == 0)
                return ETS_TOO_SHORT;
        s->scale = sum > 0 ? sum / (double)s->n_obs : 1;
        double *buf = malloc(3 * s->n * sizeof(double));
        if (buf == NULL)
                return ETS_NO_MEMORY;
        *owned = buf;
        double *ys = buf, *yf = buf + s->n;
        s->work = buf + 2 * s->n;
        double last = NAN;
        for (size_t i = 0; i < s->n; i++) {
                ys[i] = s->y[i] / s->scale;
                if (!isnan(ys[i]) && fabs(ys[i]) > s->big)
                        s->big = fabs(ys[i]);
        }
        /* Gaps: a straight line between the neighbours. */
        for (size_t i = 0; i < s->n; i++) {
                if (!isnan(ys[i])) {
                        yf[i] = last = ys[i];
                        continue;
                }
                size_t j = i;
                while (j < s->n && isnan(ys[j]))
                        j++;
                for (size_t g = i; g < j; g++)
                        yf[g] = j < s->n ? last + (ys[j] - last) *
                                                           (double)(g - i + 1) /
                                                           (double)(j - i + 1)
                                         : last;
                i = j - 1;
        }
        if (s->big == 0)
                s->big = 1;
        s->ys = ys;
        s->yf = yf;
        return ETS_OK;
}

ets_err_t ets_fit(const double *y, size_t n, const ets_options_t *opt,
                  ets_model_t **out) {
        ets_options_t def = ETS_OPTIONS_DEFAULT;
        if (opt == NULL)
                opt = &def;
        *out = NULL;
        size_t m = opt->period;
        if (m < 1 || m > ETS_PERIOD_MAX)
                return ETS_BAD_PERIOD;
        if (!opt->select && !spec_valid(opt->spec, m))
                return ETS_BAD_MODEL;
        series_t s;
        double *owned = NULL;
        ets_err_t err = prepare(y, n, &s, &owned);
        if (err != ETS_OK)
                goto done;
        if (!opt->select) {
                if (s.n_obs < ets_min_history(opt->spec, m)) {
                        err = ETS_TOO_SHORT;
                        goto done;
                }
                if (is_multiplicative(opt->spec) && !s.positive) {
                        err = ETS_NOT_POSITIVE;
                        goto done;
                }
                err = fit_one(opt->spec, m, &s, opt, out);
                if (err == ETS_OK)
                        (*out)->stats.n_models = 1;
                goto done;
        }
        ets_model_t *best = NULL;
        int fitted = 0;
        bool tried = false;
        for (int e = ETS_E_ADD; e <= ETS_E_MUL; e++) {
                for (int t = ETS_T_NONE; t <= ETS_T_DAMPED; t++) {
                        for (int se = ETS_S_NONE; se <= ETS_S_MUL; se++) {
                                ets_spec_t spec = {e, t, se};
                                if (!spec_valid(spec, m) ||
                                    s.n_obs < ets_min_history(spec, m) ||
                                    (is_multiplicative(spec) && !s.positive))
                                        continue;
                                tried = true;
                                ets_model_t *cand = NULL;
                                err = fit_one(spec, m, &s, opt, &cand);
                                if (err == ETS_NO_MEMORY) {
                                        ets_destroy(best);
                                        goto done;
                                }
                                if (err != ETS_OK)
                                        continue;
                                fitted++;
                                if (best == NULL ||
                                    cand->stats.aicc < best->stats.aicc) {
                                        ets_destroy(best);
                                        best = cand;
                                } else {
                                        ets_destroy(cand);
                                }
                        }
                }
        }
        if (best == NULL) {
                err = tried ? ETS_NO_FIT : ETS_TOO_SHORT;
                goto done;
        }
        best->stats.n_models = fitted;
        *out = best;
        err = ETS_OK;
done:
        free(owned);
        return err;
}
