/*
 * ets.h - exponential smoothing state space models (ETS) for forecasts.
 *
 * The ETS family of Hyndman, Koehler, Snyder & Grose (2002) and Hyndman et
 * al. (2008), "Forecasting with Exponential Smoothing", as R's
 * forecast::ets and statsmodels' ETSModel implement it:
 *   error    A (additive) or M (multiplicative),
 *   trend    N (none), A (additive) or Ad (additive damped),
 *   season   N (none), A (additive) or M (multiplicative),
 * named "ETS(error,trend,season)", e.g. "ETS(M,Ad,M)". Multiplicative
 * trends are left out (as forecast::ets does by default), and so is
 * additive error with multiplicative season (infinite forecast variance;
 * forecast's restrict = TRUE): 15 models, 6 of them non-seasonal.
 *
 * Fitting. The smoothing parameters (alpha, beta, gamma, phi) and the
 * initial states (level l0, slope b0, the seasonal states s0 .. s(m-2);
 * the last one makes the seasonal states sum to 0, or to m when
 * multiplicative) maximise the Gaussian likelihood of the one-step errors,
 *   -2 log L = n log(2 pi e SSE / n) + 2 sum log|yhat_t|  (the last term
 *   for multiplicative error only),
 * under the usual bounds 1e-4 <= alpha <= 0.9999, beta <= alpha,
 * gamma <= 1 - alpha, 0.8 <= phi <= 0.98, with beta >= 1e-4 alpha and
 * gamma >= 1e-4 (1 - alpha) (forecast::ets has 1e-4 for both; a box on
 * the shares below found worse optima on the airline data). The starting
 * values are forecast::ets's: a classical decomposition of the first three
 * seasons for
 * the seasonal states, a regression on the first ten (or 2m) seasonally
 * adjusted values for l0 and b0. The optimiser is NLopt's derivative-free
 * bound-constrained BOBYQA (MIT-licensed part of NLopt), polished by
 * Nelder-Mead, on beta/alpha and gamma/(1-alpha) so that every bound is a
 * box, and on the series divided by its mean level so that every
 * dimension has the same scale. With auto selection every admissible
 * model is fitted and the one with the smallest AICc wins
 * (AICc = -2 log L + 2k + 2k(k+1)/(n-k-1), k = parameters + initial
 * states + 1 for the variance).
 *
 * Forecasts. The point forecast is the model's recursion with zero future
 * errors. Intervals (80% and 95%): for the linear models (additive error)
 * the exact variance sigma^2 (1 + sum_{j<h} c_j^2), c_j = w' F^(j-1) g;
 * for multiplicative error, quantiles of simulated sample paths (a fixed
 * seed, so the same fit gives the same intervals).
 *
 * Data. y[0..n-1] is equally spaced, oldest first. A NaN inside is a
 * missing observation: the states move on with a zero error and it counts
 * nowhere (leading NaNs are dropped). Infinite values are refused.
 * Multiplicative models need every observed value > 0; with auto selection
 * they are only tried on such data. Minimum history (observed values):
 * n >= p + 5 where p counts the smoothing parameters and initial states
 * (forecast's rule), and seasonal models need two full seasons (n >= 2m):
 *   ETS(.,N,N) 7, ETS(.,A,N) 9, ETS(.,Ad,N) 10;
 *   period 7:  ETS(.,N,.) 14, ETS(.,A,.) 16, ETS(.,Ad,.) 17;
 *   period 12: ETS(.,N,.) 24, ETS(.,A,.) 24, ETS(.,Ad,.) 24.
 * ets_min_history() gives the figure for any model and period. With auto
 * selection, models the data is too short for are skipped; fewer than 7
 * observed values is ETS_TOO_SHORT.
 *
 * Threads: no global state; every function may be called from any thread
 * on distinct models, and ets_forecast concurrently on the same model.
 */
#ifndef OMNIFY_ML_ETS_H
#define OMNIFY_ML_ETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ETS_ERRORS(X)                                                     \
        X(ETS_OK, "ok")                                                   \
        X(ETS_TOO_SHORT, "too little history for the model")              \
        X(ETS_BAD_VALUE, "the series holds an infinite value")            \
        X(ETS_NOT_POSITIVE,                                               \
          "a multiplicative model needs strictly positive values")        \
        X(ETS_BAD_PERIOD, "the seasonal period must be 1 (none) to 366")  \
        X(ETS_BAD_MODEL, "no such model (or not allowed: additive error " \
                         "with multiplicative season, season without "    \
                         "a period)")                                     \
        X(ETS_BAD_HORIZON, "the horizon must be 1 to ETS_HORIZON_MAX")    \
        X(ETS_NO_FIT, "no parameters give a finite likelihood")           \
        X(ETS_NO_MEMORY, "out of memory")

typedef enum ets_err {
#define X(name, msg) name,
        ETS_ERRORS(X)
#undef X
} ets_err_t;

const char *ets_strerror(ets_err_t err);

/* Forecast horizon bounds (steps). */
#define ETS_HORIZON_MAX 730
/* Seasonal period bound (1 means no season). */
#define ETS_PERIOD_MAX 366

typedef enum ets_error_type { ETS_E_ADD, ETS_E_MUL } ets_error_type_t;
typedef enum ets_trend_type {
        ETS_T_NONE,
        ETS_T_ADD,
        ETS_T_DAMPED
} ets_trend_type_t;
typedef enum ets_season_type {
        ETS_S_NONE,
        ETS_S_ADD,
        ETS_S_MUL
} ets_season_type_t;

typedef struct ets_spec {
        ets_error_type_t error;
        ets_trend_type_t trend;
        ets_season_type_t season;
} ets_spec_t;

typedef struct ets_options {
        size_t period;   /* 1 = no season; 7 daily data, 12 monthly */
        bool select;     /* true: every admissible model, best AICc */
        ets_spec_t spec; /* the one model fitted when select is false */
        int n_sim;       /* simulated paths for intervals, 0 = 5000 */
        uint64_t seed;   /* of the simulations, 0 = a fixed default */
} ets_options_t;

/* What ets_fit does by default: auto selection, no season. */
#define ETS_OPTIONS_DEFAULT ((ets_options_t){.period = 1, .select = true})

/* The fitted parameters and initial states, on the data's scale. */
typedef struct ets_params {
        double alpha, beta, gamma, phi; /* beta, gamma 0 when unused */
        double l0, b0;                  /* b0 0 without trend */
        /* s[0..period-1]: the seasonal state of y[i] is s[i % period]
         * (the first season, oldest first); unused without season. */
        const double *season;
} ets_params_t;

/* Fit measures, in-sample, one-step-ahead. */
typedef struct ets_stats {
        size_t n;      /* observed values used */
        size_t k;      /* parameters + initial states + 1 (variance) */
        double loglik; /* Gaussian log-likelihood */
        double aic, aicc, bic;
        double sigma2; /* residual variance, SSE / (n - k) */
        double rmse, mae;
        double mape;  /* percent; NaN when a value is 0 */
        double smape; /* percent, 200 |y - f| / (|y| + |f|) */
        double mase;  /* MAE / in-sample seasonal naive MAE; NaN if 0 */
        int n_models; /* models fitted to choose this one */
} ets_stats_t;

/* One forecast step: the point forecast and its 80%/95% intervals. */
typedef struct ets_point {
        double mean;
        double lo80, hi80;
        double lo95, hi95;
} ets_point_t;

typedef struct ets_model ets_model_t;

/*
 * Fits y[0..n-1] (see Data above) with opt (NULL: ETS_OPTIONS_DEFAULT).
 * On ETS_OK *out is a new model the caller frees with ets_destroy; on any
 * other result *out is NULL. With select, ETS_TOO_SHORT when no model has
 * the history it needs; without, ETS_TOO_SHORT, ETS_NOT_POSITIVE or
 * ETS_BAD_MODEL name what the chosen model lacks.
 */
ets_err_t ets_fit(const double *y, size_t n, const ets_options_t *opt,
                  ets_model_t **out);

/* Frees a model. NULL ok. */
void ets_destroy(ets_model_t *model);

/*
 * Forecasts steps 1..h after the last value into out[0..h-1] (caller-owned,
 * h entries). ETS_BAD_HORIZON unless 1 <= h <= ETS_HORIZON_MAX.
 */
ets_err_t ets_forecast(const ets_model_t *model, int h, ets_point_t *out);

/* "ETS(A,Ad,A)": valid while the model lives. */
const char *ets_name(const ets_model_t *model);
ets_spec_t ets_model_spec(const ets_model_t *model);
size_t ets_period(const ets_model_t *model);
/* The parameters (season points into the model: valid while it lives). */
ets_params_t ets_params(const ets_model_t *model);
ets_stats_t ets_stats(const ets_model_t *model);

/* Writes the name of spec, "ETS(M,A,N)", into buf (>= 16 bytes). */
void ets_spec_name(ets_spec_t spec, char *buf, size_t len);

/* Minimum observed values the model needs with this period (see Data). */
size_t ets_min_history(ets_spec_t spec, size_t period);

#endif
