/*
 * logreg.c - L2 logistic regression through LIBLINEAR, its split and its
 * validation measures (contracts in logreg.h).
 *
 * LIBLINEAR is used at one boundary (fit_liblinear): our dense,
 * standardised rows go in as its sparse feature_node lists, and the weight
 * vector comes out into our own model, so no LIBLINEAR type leaks out and
 * the LIBLINEAR model is freed at once.
 */
#include "logreg.h"
#include "rng.h"

#include <linear.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define INTERCEPT_SCALING 10.0
#define DEFAULT_SEED 0x10915eedULL

struct logreg_model {
        size_t p;
        double *mean, *sd, *w; /* p each, one allocation */
        double b;
        size_t n_train;
        int n_bins;
};

const char *logreg_strerror(logreg_err_t err) {
        switch (err) {
#define X(name, msg) \
        case name:   \
                return msg;
                LOGREG_ERRORS(X)
#undef X
        }
        return "unknown error";
}

static void quiet(const char *s) {
        (void)s;
}

static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;

static void make_quiet(void) {
        set_print_string_function(quiet);
}

static logreg_err_t check_options(const logreg_options_t *in, size_t p,
                                  logreg_options_t *o) {
        *o = in ? *in : (logreg_options_t){0};
        if (o->C == 0)
                o->C = 1.0;
        if (o->valid_fraction == 0)
                o->valid_fraction = 0.25;
        if (o->seed == 0)
                o->seed = DEFAULT_SEED;
        if (o->n_bins == 0)
                o->n_bins = 10;
        if (!(o->C > 0) || !isfinite(o->C) || !(o->valid_fraction > 0) ||
            o->valid_fraction > 0.5 || o->n_bins < 1 ||
            o->n_bins > LOGREG_BINS_MAX || p < 1 || p > LOGREG_FEATURES_MAX)
                return LOGREG_BAD_OPTIONS;
        return LOGREG_OK;
}

static logreg_err_t check_data(const double *x, const int *y, size_t n,
                               size_t p) {
        for (size_t i = 0; i < n; i++) {
                if (y[i] != 0 && y[i] != 1)
                        return LOGREG_BAD_VALUE;
                for (size_t j = 0; j < p; j++)
                        if (!isfinite(x[i * p + j]))
                                return LOGREG_BAD_VALUE;
        }
        return LOGREG_OK;
}

static logreg_err_t check_classes(const int *y, size_t n) {
        size_t pos = 0;
        for (size_t i = 0; i < n; i++)
                pos += (size_t)y[i];
        if (pos == 0 || pos == n)
                return LOGREG_ONE_CLASS;
        if (pos < LOGREG_MIN_PER_CLASS || n - pos < LOGREG_MIN_PER_CLASS)
                return LOGREG_TOO_FEW_ROWS;
        return LOGREG_OK;
}

/* ------------------------------------------------------------------------
 * Fitting.
 * --------------------------------------------------------------------- */

/* Fits the weights on standardised rows through LIBLINEAR. */
static logreg_err_t fit_liblinear(const double *x, const int *y, size_t n,
                                  logreg_model_t *model, double C) {
        size_t p = model->p;
        struct feature_node *nodes = malloc(n * (p + 2) * sizeof(*nodes));
        struct feature_node **rows = malloc(n * sizeof(*rows));
        double *labels = malloc(n * sizeof(double));
        logreg_err_t err = LOGREG_NO_MEMORY;
        if (nodes == NULL || rows == NULL || labels == NULL)
                goto done;
        for (size_t i = 0; i < n; i++) {
                struct feature_node *r = nodes + i * (p + 2);
                size_t k = 0;
                for (size_t j = 0; j < p; j++) {
                        double z =
                                (x[i * p + j] - model->mean[j]) / model->sd[j];
                        if (z == 0)
                                continue; /* sparse: zeros are implied */
                        r[k].index = (int)j + 1;
                        r[k].value = z;
                        k++;
                }
                r[k].index = (int)p + 1;
                r[k].value = INTERCEPT_SCALING;
                r[k + 1].index = -1;
                rows[i] = r;
                labels[i] = y[i] ? 1 : -1;
        }
        struct problem prob = {
                .l = (int)n,
                .n = (int)p + 1,
                .y = labels,
                .x = rows,
                .bias = -1, /* the constant feature is in the rows */
        };
        struct parameter param = {.solver_type = L2R_LR, .eps = 1e-4, .C = C};
        pthread_once(&quiet_once, make_quiet);
        err = LOGREG_SOLVER;
        if (check_parameter(&prob, &param) != NULL)
                goto done;
        struct model *lm = train(&prob, &param);
        if (lm == NULL)
                goto done;
        /* Decision values are for label[0]: flip when that is -1. */
        int labs[2] = {1, -1};
        get_labels(lm, labs);
        double sign = labs[0] == 1 ? 1 : -1;
        for (size_t j = 0; j < p; j++)
                model->w[j] = sign * get_decfun_coef(lm, (int)j + 1, 0);
        model->b =
                sign * get_decfun_coef(lm, (int)p + 1, 0) * INTERCEPT_SCALING;
        free_and_destroy_model(&lm);
        err = LOGREG_OK;
done:
        free(nodes);
        free(rows);
        free(labels);
        return err;
}

logreg_err_t logreg_fit(const double *x, const int *y, size_t n, size_t p,
                        const logreg_options_t *opt, logreg_model_t **out) {
        *out = NULL;
        logreg_options_t o;
        logreg_err_t err = check_options(opt, p, &o);
        if (err == LOGREG_OK)
                err = check_data(x, y, n, p);
        if (err == LOGREG_OK)
                err = check_classes(y, n);
        if (err != LOGREG_OK)
                return err;
        logreg_model_t *model = calloc(1, sizeof(*model));
        double *buf = malloc(3 * p * sizeof(double));
        if (model == NULL || buf == NULL) {
                free(model);
                free(buf);
                return LOGREG_NO_MEMORY;
        }
        model->p = p;
        model->mean = buf;
        model->sd = buf + p;
        model->w = buf + 2 * p;
        model->n_train = n;
        model->n_bins = o.n_bins;
        for (size_t j = 0; j < p; j++) {
                double s = 0, ss = 0;
                for (size_t i = 0; i < n; i++)
                        s += x[i * p + j];
                double mu = s / (double)n;
                for (size_t i = 0; i < n; i++)
                        ss += (x[i * p + j] - mu) * (x[i * p + j] - mu);
                double sd = sqrt(ss / (double)n);
                model->mean[j] = mu;
                model->sd[j] = sd > 1e-12 * fmax(1, fabs(mu)) ? sd : 1;
        }
        err = fit_liblinear(x, y, n, model, o.C);
        if (err != LOGREG_OK) {
                logreg_destroy(model);
                return err;
        }
        *out = model;
        return LOGREG_OK;
}

/* ------------------------------------------------------------------------
 * The split.
 * --------------------------------------------------------------------- */

/* Marks valid[i] for round(fraction * count) random rows of each class. */
static void stratified_split(const int *y, size_t n, double fraction,
                             uint64_t seed, size_t *order, bool *valid) {
        for (int c = 0; c <= 1; c++) {
                size_t k = 0;
                for (size_t i = 0; i < n; i++)
                        if (y[i] == c)
                                order[k++] = i;
                for (size_t i = k; i > 1; i--) { /* Fisher-Yates */
                        size_t j = (size_t)(rng_next(&seed) % i);
                        size_t t = order[i - 1];
                        order[i - 1] = order[j];
                        order[j] = t;
                }
                size_t nv = (size_t)floor(fraction * (double)k + 0.5);
                for (size_t i = 0; i < k; i++)
                        valid[order[i]] = i < nv;
        }
}

logreg_err_t logreg_train(const double *x, const int *y, size_t n, size_t p,
                          const logreg_options_t *opt, logreg_model_t **out,
                          logreg_report_t *report) {
        *out = NULL;
        logreg_options_t o;
        logreg_err_t err = check_options(opt, p, &o);
        if (err == LOGREG_OK)
                err = check_data(x, y, n, p);
        if (err != LOGREG_OK)
                return err;
        size_t pos = 0;
        for (size_t i = 0; i < n; i++)
                pos += (size_t)y[i];
        if (pos == 0 || pos == n)
                return LOGREG_ONE_CLASS;
        size_t *order = malloc(n * sizeof(size_t));
        bool *valid = calloc(n, sizeof(bool));
        double *xs = malloc(n * p * sizeof(double));
        int *ys = malloc(n * sizeof(int));
        err = LOGREG_NO_MEMORY;
        if (order == NULL || valid == NULL || xs == NULL || ys == NULL)
                goto done;
        stratified_split(y, n, o.valid_fraction, o.seed, order, valid);
        /* Training rows first, then validation rows, in xs/ys. */
        size_t nt = 0;
        for (int part = 0; part <= 1; part++)
                for (size_t i = 0; i < n; i++)
                        if (valid[i] == (part == 1)) {
                                memcpy(xs + nt * p, x + i * p,
                                       p * sizeof(double));
                                ys[nt++] = y[i];
                        }
        size_t ntrain = 0;
        for (size_t i = 0; i < n; i++)
                ntrain += !valid[i];
        err = logreg_fit(xs, ys, ntrain, p, &o, out);
        if (err == LOGREG_OK && report)
                err = logreg_evaluate(*out, xs + ntrain * p, ys + ntrain,
                                      n - ntrain, report);
        if (err != LOGREG_OK) {
                logreg_destroy(*out);
                *out = NULL;
        }
done:
        free(order);
        free(valid);
        free(xs);
        free(ys);
        return err;
}

/* ------------------------------------------------------------------------
 * Scoring and validation.
 * --------------------------------------------------------------------- */

double logreg_predict(const logreg_model_t *model, const double *row) {
        double eta = model->b;
        for (size_t j = 0; j < model->p; j++)
                eta += model->w[j] * (row[j] - model->mean[j]) / model->sd[j];
        return eta >= 0 ? 1 / (1 + exp(-eta)) : exp(eta) / (1 + exp(eta));
}

typedef struct scored {
        double s;
        int y;
} scored_t;

static int cmp_scored(const void *a, const void *b) {
        double x = ((const scored_t *)a)->s, y = ((const scored_t *)b)->s;
        return (x > y) - (x < y);
}

double logreg_auc(const double *s, const int *y, size_t n) {
        scored_t *v = malloc((n ? n : 1) * sizeof(*v));
        if (v == NULL)
                return NAN;
        size_t pos = 0;
        for (size_t i = 0; i < n; i++) {
                v[i] = (scored_t){s[i], y[i]};
                pos += y[i] == 1;
        }
        if (pos == 0 || pos == n) {
                free(v);
                return NAN;
        }
        qsort(v, n, sizeof(*v), cmp_scored);
        /* Mann-Whitney U from the positives' ranks (mid-ranks for ties). */
        double rank_sum = 0;
        for (size_t i = 0; i < n;) {
                size_t j = i;
                while (j < n && v[j].s == v[i].s)
                        j++;
                double mid = 0.5 * (double)(i + 1 + j);
                for (size_t k = i; k < j; k++)
                        if (v[k].y == 1)
                                rank_sum += mid;
                i = j;
        }
        free(v);
        double np = (double)pos, nn = (double)(n - pos);
        return (rank_sum - np * (np + 1) / 2) / (np * nn);
}

logreg_err_t logreg_evaluate(const logreg_model_t *model, const double *x,
                             const int *y, size_t n, logreg_report_t *r) {
        logreg_err_t err = check_data(x, y, n, model->p);
        if (err != LOGREG_OK)
                return err;
        double *s = malloc((n ? n : 1) * sizeof(double));
        if (s == NULL)
                return LOGREG_NO_MEMORY;
        memset(r, 0, sizeof(*r));
        r->n = n;
        r->n_bins = model->n_bins;
        double sum_p[LOGREG_BINS_MAX] = {0}, sum_y[LOGREG_BINS_MAX] = {0};
        for (size_t i = 0; i < n; i++) {
                double pr = logreg_predict(model, x + i * model->p);
                s[i] = pr;
                r->n_positive += (size_t)y[i];
                r->brier += (pr - y[i]) * (pr - y[i]);
                double q = fmin(fmax(y[i] ? pr : 1 - pr, 1e-15), 1);
                r->log_loss -= log(q);
                int b = (int)(pr * r->n_bins);
                if (b >= r->n_bins)
                        b = r->n_bins - 1;
                r->bins[b].count++;
                sum_p[b] += pr;
                sum_y[b] += y[i];
        }
        double nn = n ? (double)n : 1;
        r->brier /= nn;
        r->log_loss /= nn;
        for (int b = 0; b < r->n_bins; b++) {
                logreg_bin_t *bin = &r->bins[b];
                bin->lo = (double)b / r->n_bins;
                bin->hi = (double)(b + 1) / r->n_bins;
                double c = (double)bin->count;
                bin->mean_predicted = c ? sum_p[b] / c : NAN;
                bin->observed_rate = c ? sum_y[b] / c : NAN;
                if (c)
                        r->ece +=
                                c / nn *
                                fabs(bin->mean_predicted - bin->observed_rate);
        }
        r->auc = logreg_auc(s, y, n);
        free(s);
        return LOGREG_OK;
}

/* ------------------------------------------------------------------------
 * Accessors.
 * --------------------------------------------------------------------- */

void logreg_destroy(logreg_model_t *model) {
        if (model == NULL)
                return;
        free(model->mean); /* mean, sd and w share one allocation */
        free(model);
}

size_t logreg_n_features(const logreg_model_t *model) {
        return model->p;
}

const double *logreg_weights(const logreg_model_t *model) {
        return model->w;
}

double logreg_intercept(const logreg_model_t *model) {
        return model->b;
}

double logreg_raw_coefficients(const logreg_model_t *model, double *coef) {
        double b = model->b;
        for (size_t j = 0; j < model->p; j++) {
                coef[j] = model->w[j] / model->sd[j];
                b -= coef[j] * model->mean[j];
        }
        return b;
}

size_t logreg_n_train(const logreg_model_t *model) {
        return model->n_train;
}

const double *logreg_means(const logreg_model_t *model) {
        return model->mean;
}

const double *logreg_sds(const logreg_model_t *model) {
        return model->sd;
}
