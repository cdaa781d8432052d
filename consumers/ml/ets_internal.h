/*
 * ets_internal.h - what ets.c (recursion, forecasts, intervals) and
 * ets_fit.c (initial states, optimiser, model selection) share. Not a
 * public header: callers use ets.h.
 */
#ifndef OMNIFY_ML_ETS_INTERNAL_H
#define OMNIFY_ML_ETS_INTERNAL_H

#include "ets.h"

/* The objective's value for inadmissible parameters. */
#define ETS__HUGE 1e10

/* Parameters and initial states of one model, on some scale. */
typedef struct ets__theta {
        double alpha, beta, gamma, phi;
        double l0, b0;
        double *s0; /* period entries: the seasonal state of y[i % period] */
} ets__theta_t;

struct ets_model {
        ets_spec_t spec;
        size_t period; /* m; 1 without season */
        char name[16];
        ets__theta_t theta; /* on the data's scale; theta.s0 owned */
        /* The states after the last value: level, slope, and the seasonal
         * states of the next period steps (seas[j]: step j + 1). */
        double level, slope;
        double *seas; /* owned, period entries */
        ets_stats_t stats;
        int n_sim;
        uint64_t seed;
};

/* What one pass of the recursion over the data gives. */
typedef struct ets__run {
        double sse;    /* sum of squared errors (relative for M error) */
        double sumlog; /* sum of log|f| over observed values */
        size_t n;      /* observed values */
        bool ok;       /* false: a forecast left the admissible range */
} ets__run_t;

/*
 * Runs the recursion over y[0..n-1] (NaN = missing) from th. When model is
 * not NULL, fills its final states (level, slope, seas) and the error
 * measures of its stats (rmse, mae, mape, smape, mase; not the criteria).
 */
ets__run_t ets__recursion(ets_spec_t spec, size_t m, const ets__theta_t *th,
                          const double *y, size_t n, ets_model_t *model);

/* -2 log L without constants (the optimiser's objective), or ETS__HUGE. */
double ets__objective(ets_spec_t spec, const ets__run_t *r);

/* Number of smoothing parameters plus free initial states. */
size_t ets__n_params(ets_spec_t spec, size_t m);

#endif
