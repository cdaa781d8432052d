/*
 * logreg.h - lead and churn scores: L2-regularised logistic regression
 * with its validation (AUC, Brier score, reliability bins).
 *
 * Model: P(y = 1 | x) = 1 / (1 + exp(-(b + sum_j w_j z_j))), z_j = (x_j -
 * mean_j) / sd_j, the features standardised with the training rows' mean
 * and standard deviation (a constant feature gets sd 1 and weight 0). The
 * weights minimise 0.5 |w|^2 + C sum_i log(1 + exp(-y_i (b + w'z_i))),
 * scikit-learn's LogisticRegression objective, solved by LIBLINEAR's
 * trust-region Newton method (solver L2R_LR, tolerance 1e-4). LIBLINEAR
 * 2.3 penalises the intercept too, as a weight on a constant feature; that
 * feature is 10 (scikit-learn's intercept_scaling), so its penalty is 100
 * times weaker than a weight's.
 *
 * Training (logreg_train): a stratified random split (valid_fraction of
 * each class, 25% by default, drawn with seed) into training and
 * validation rows; the model is fitted on the training rows and judged on
 * the validation rows. logreg_fit and logreg_evaluate do the two halves
 * when the caller has its own split.
 *
 * Too small to train: fewer than LOGREG_MIN_PER_CLASS rows of either class
 * among the training rows (LOGREG_TOO_FEW_ROWS), or one class only
 * (LOGREG_ONE_CLASS); a validation part without both classes gets no AUC
 * (NaN) but the model is kept.
 *
 * Data: x is row-major, n rows of p features (p <= LOGREG_FEATURES_MAX),
 * every value finite (LOGREG_BAD_VALUE otherwise: impute before); y holds
 * 0 or 1. Threads: any; models are immutable once made and may be shared.
 */
#ifndef OMNIFY_ML_LOGREG_H
#define OMNIFY_ML_LOGREG_H

#include <stddef.h>
#include <stdint.h>

#define LOGREG_ERRORS(X)                                                   \
        X(LOGREG_OK, "ok")                                                 \
        X(LOGREG_TOO_FEW_ROWS, "too few rows to train: each class needs "  \
                               "LOGREG_MIN_PER_CLASS training rows")       \
        X(LOGREG_ONE_CLASS, "the labels hold a single class")              \
        X(LOGREG_BAD_VALUE, "a feature is not finite or a label not 0/1")  \
        X(LOGREG_BAD_OPTIONS, "C, the validation fraction or the feature " \
                              "count is out of range")                     \
        X(LOGREG_SOLVER, "the solver refused the problem")                 \
        X(LOGREG_NO_MEMORY, "out of memory")

typedef enum logreg_err {
#define X(name, msg) name,
        LOGREG_ERRORS(X)
#undef X
} logreg_err_t;

const char *logreg_strerror(logreg_err_t err);

#define LOGREG_MIN_PER_CLASS 5
#define LOGREG_FEATURES_MAX 1000
#define LOGREG_BINS_MAX 20

typedef struct logreg_options {
        double C;              /* inverse regularisation; 0 = 1.0 */
        double valid_fraction; /* in (0, 0.5]; 0 = 0.25 */
        uint64_t seed;         /* of the split; 0 = a fixed default */
        int n_bins;            /* reliability bins, 0 = 10 */
} logreg_options_t;

/* One reliability bin: predictions in [lo, hi). */
typedef struct logreg_bin {
        double lo, hi;
        size_t count;
        double mean_predicted; /* NaN when empty */
        double observed_rate;  /* NaN when empty */
} logreg_bin_t;

/* How a model does on some rows. */
typedef struct logreg_report {
        size_t n, n_positive;
        double auc;      /* NaN with one class */
        double brier;    /* mean (p - y)^2 */
        double log_loss; /* mean -log likelihood */
        double ece;      /* expected calibration error over the bins */
        int n_bins;
        logreg_bin_t bins[LOGREG_BINS_MAX];
} logreg_report_t;

typedef struct logreg_model logreg_model_t;

/*
 * Splits, fits and validates (see above). On LOGREG_OK *out is a new model
 * (free with logreg_destroy) and *valid (may be NULL) its report on the
 * validation rows; otherwise *out is NULL.
 */
logreg_err_t logreg_train(const double *x, const int *y, size_t n, size_t p,
                          const logreg_options_t *opt, logreg_model_t **out,
                          logreg_report_t *valid);

/* Fits on every row given (no split). Same results as logreg_train. */
logreg_err_t logreg_fit(const double *x, const int *y, size_t n, size_t p,
                        const logreg_options_t *opt, logreg_model_t **out);

/* Scores rows x (n x p) against labels y into *report (n_bins from opt
 * of the fit). LOGREG_BAD_VALUE on a non-finite value or a bad label. */
logreg_err_t logreg_evaluate(const logreg_model_t *model, const double *x,
                             const int *y, size_t n, logreg_report_t *report);

/* P(y = 1) for one row of p features (assumed finite). */
double logreg_predict(const logreg_model_t *model, const double *row);

/* Frees a model. NULL ok. */
void logreg_destroy(logreg_model_t *model);

size_t logreg_n_features(const logreg_model_t *model);
/* Weights on the standardised features (p entries) and the intercept. */
const double *logreg_weights(const logreg_model_t *model);
double logreg_intercept(const logreg_model_t *model);
/* The same model on the raw features: coef[0..p-1] (caller-owned) and
 * the intercept as return value. */
double logreg_raw_coefficients(const logreg_model_t *model, double *coef);
/* Training rows and the mean and sd used to standardise. */
size_t logreg_n_train(const logreg_model_t *model);
const double *logreg_means(const logreg_model_t *model);
const double *logreg_sds(const logreg_model_t *model);

/* AUC of scores s against 0/1 labels y (ties count one half); NaN with
 * one class. Allocates n entries; NaN if that fails. */
double logreg_auc(const double *s, const int *y, size_t n);

#endif
