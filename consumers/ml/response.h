/*
 * response.h - budget response: a diminishing-returns model of a
 * channel's daily revenue (or conversions) against its daily spend, the
 * month-end projection it gives, and the effect of moving budget between
 * channels.
 *
 * THE MODEL (a model, not a measurement: every answer carries its error).
 * Per channel, on days t with spend x_t >= 0 and revenue r_t >= 0:
 *   adstock   A_t = x_t + lambda A_{t-1},  A_{-1} = x_0 / (1 - lambda)
 *   response  r_t = base + beta A_t^s / (A_t^s + K^s) + e_t
 * a Hill curve: base is the revenue the channel brings without spend, beta
 * the most that spend can add, K the adstocked spend that reaches half of
 * it, s its shape (s <= 1 concave from the start; s > 1 an S-curve that
 * needs some spend before it pays). lambda carries part of a day's spend
 * into the next days (adstock; 0 when the option is off, else fitted in
 * [0, 0.9]). The parameters minimise the sum of squared errors (NLopt's
 * BOBYQA from several starts, bounds: base in [0, max r], beta in [0, 10
 * max r], K in [0.01, 100] x mean spend, s in [0.5, 3]).
 *
 * ITS ASSUMPTIONS, which a user must know:
 *  - spend drives revenue, not the other way round (a channel whose
 *    budget follows its sales will look more responsive than it is);
 *  - channels act independently: moving budget changes only the two
 *    channels involved, with no interaction or shared saturation;
 *  - the curve holds outside the spend seen in the history only as a
 *    guess: answers for spend beyond the largest day seen (out_of_range)
 *    extrapolate and say so;
 *  - the errors e_t are independent with one variance, so a projection
 *    over d days has the band +- 1.96 sigma sqrt(d) (no parameter
 *    uncertainty: it is narrower than the truth);
 *  - no seasonality, trend or competition beyond what base absorbs.
 *
 * ITS ERROR: the in-sample RMSE, MAE, MAPE and R^2, and the same measures
 * on a holdout (the model refitted on the first 80% of the days, judged
 * on the last 20%): the holdout MAPE is the honest figure to show.
 *
 * Data: spend[0..n-1] and revenue[0..n-1], one value per day, oldest
 * first. spend must be finite and >= 0; a NaN revenue is a missing day
 * (its spend still counts for the adstock). Needs RESPONSE_MIN_DAYS
 * observed days and spend that varies (a coefficient of variation of at
 * least 5%): a curve cannot be told from constant spend.
 *
 * Pure functions; models immutable once fitted; any thread.
 */
#ifndef OMNIFY_ML_RESPONSE_H
#define OMNIFY_ML_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

#define RESPONSE_ERRORS(X)                                               \
        X(RESPONSE_OK, "ok")                                             \
        X(RESPONSE_TOO_SHORT, "too little history: RESPONSE_MIN_DAYS "   \
                              "days with revenue are needed")            \
        X(RESPONSE_NO_VARIATION, "spend barely varies: no curve can be " \
                                 "fitted to it")                         \
        X(RESPONSE_BAD_VALUE, "spend must be finite and >= 0, revenue "  \
                              ">= 0 or missing")                         \
        X(RESPONSE_BAD_ARGS, "bad arguments (days, channels, amounts)")  \
        X(RESPONSE_NO_FIT, "the optimiser found no finite fit")          \
        X(RESPONSE_NO_MEMORY, "out of memory")

typedef enum response_err {
#define X(name, msg) name,
        RESPONSE_ERRORS(X)
#undef X
} response_err_t;

const char *response_strerror(response_err_t err);

#define RESPONSE_MIN_DAYS 21

typedef struct response_params {
        double base, beta, half, shape; /* base, beta, K, s */
        double lambda;                  /* 0 without adstock */
} response_params_t;

typedef struct response_error {
        double rmse, mae, mape, r2; /* mape over days with revenue > 0 */
} response_error_t;

typedef struct response_model {
        response_params_t p;
        bool adstock;
        double sigma;             /* residual sd, SSE / (n - 5) */
        response_error_t fit;     /* in-sample */
        response_error_t holdout; /* refit on 80%, judged on the last 20% */
        size_t n;                 /* observed days */
        double max_spend;         /* largest daily spend seen */
        double last_adstock;      /* A after the last day */
} response_model_t;

/*
 * Fits one channel (see above) into *out (caller-owned, plain values).
 */
response_err_t response_fit(const double *spend, const double *revenue,
                            size_t n, bool adstock, response_model_t *out);

/* Expected revenue of one day with adstocked spend a. */
double response_curve(const response_params_t *p, double a);

/* Marginal revenue of one more unit of steady daily spend x. */
double response_marginal(const response_model_t *m, double x);

/* A projection over some days. */
typedef struct response_projection {
        double spend;      /* total planned spend */
        double revenue;    /* total expected revenue */
        double lo95, hi95; /* revenue +- 1.96 sigma sqrt(days) */
        bool out_of_range; /* some planned day above max_spend */
} response_projection_t;

/*
 * Expected revenue of the planned daily spend plan[0..days-1] from the
 * model's last adstock on. Month-end: add the month's actuals to it.
 * RESPONSE_BAD_ARGS on days 0 or a negative or non-finite plan value.
 */
response_err_t response_project(const response_model_t *m, const double *plan,
                                size_t days, response_projection_t *out);

/*
 * What-if: moving `amount` of daily spend from channel `from` to channel
 * `to` (models[], current daily spend[] per channel) for `days` days at
 * steady state. delta[c] (caller-owned, n_channels) gets each channel's
 * revenue change over the period (0 for the others); the return is via
 * *total. RESPONSE_BAD_ARGS when from == to, an index is out of range, or
 * amount exceeds the spend of `from`.
 */
response_err_t response_move(const response_model_t *models,
                             const double *spend, size_t n_channels,
                             size_t from, size_t to, double amount, size_t days,
                             double *delta, double *total, bool *out_of_range);

/*
 * The split of a daily budget over the channels that the models say
 * brings the most revenue (equal marginal revenue, found in steps of
 * budget / 1000), each channel kept within [0, cap_factor x its largest
 * daily spend seen] (cap_factor 0 = 1.5). Writes alloc[0..n_channels-1].
 */
response_err_t response_allocate(const response_model_t *models,
                                 size_t n_channels, double budget,
                                 double cap_factor, double *alloc);

#endif
