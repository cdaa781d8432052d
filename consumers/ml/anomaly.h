/*
 * anomaly.h - is the newest day of a daily series out of line? A robust
 * seasonal baseline, and level shifts.
 *
 * The baseline is built from the history before the checked days only
 * (the last `window` values before them, 8 weeks by default), so that the
 * days under test never move their own yardstick:
 *  1. robust decomposition of that history (decompose_robust: a running
 *     median of one period as the trend, per-weekday medians of what is
 *     left as the seasonal figure);
 *  2. the noise scale sigma = 1.4826 MAD of the remainder, inflated by
 *     sqrt(1 + 1/L) for the error of the level (L below);
 *  3. the expected value of a checked day: the level (median of the last
 *     L = 2 periods of seasonally adjusted history), plus a Theil-Sen
 *     slope of the last 4 periods carried forward, plus the day's
 *     seasonal figure;
 *  4. score = (value - expected) / sigma, a robust z-score; the day is an
 *     anomaly when |score| >= threshold (3.5 by default), its direction
 *     the score's sign; the expected range is expected +- threshold sigma.
 * With `multiplicative` (positive data only), steps 1-4 run on log values
 * and the range is exp() of theirs: for metrics whose noise grows with
 * their level (revenue, orders), a range that is wider upwards.
 *
 * Level shift: the split of the last shift_max days (4 periods by
 * default) where two medians fit the seasonally adjusted values of those
 * days and the 4 periods before them best (least absolute deviations),
 * with at least shift_min days (3 by default) after it. It is a shift when
 * the median after it and the median of the 4 periods before it differ by
 * at least shift_sigma sigmas (4 by default) and by shift_threshold (6 by
 * default) standard errors of that difference (1.2533 sigma sqrt(1/n_after
 * + 1/n_before)). A single spike moves no median, so it is never a shift.
 *
 * Data: y[0..n-1], oldest first, one value per day (or per step of the
 * period's unit); NaN is a missing day (skipped by the medians; a missing
 * checked day is reported as missing). Infinite values are refused. The
 * history before the checked days needs at least 3 periods (21 days for
 * weekly seasonality) with at least 2 periods observed: ANOMALY_TOO_SHORT
 * otherwise. A level-shift search needs shift_min checked-or-recent days
 * after the split and 4 periods before it; with less it reports none.
 *
 * Pure functions; no global state; any thread.
 */
#ifndef OMNIFY_ML_ANOMALY_H
#define OMNIFY_ML_ANOMALY_H

#include <stdbool.h>
#include <stddef.h>

#define ANOMALY_ERRORS(X)                                                \
        X(ANOMALY_OK, "ok")                                              \
        X(ANOMALY_TOO_SHORT, "too little history for a baseline (3 "     \
                             "periods before the checked days)")         \
        X(ANOMALY_BAD_VALUE, "the series holds an infinite value")       \
        X(ANOMALY_NOT_POSITIVE,                                          \
          "multiplicative needs strictly positive values")               \
        X(ANOMALY_BAD_OPTIONS, "period (2 to 366), checked days (1 to "  \
                               "the series) or thresholds out of range") \
        X(ANOMALY_NO_MEMORY, "out of memory")

typedef enum anomaly_err {
#define X(name, msg) name,
        ANOMALY_ERRORS(X)
#undef X
} anomaly_err_t;

const char *anomaly_strerror(anomaly_err_t err);

#define ANOMALY_PERIOD_MAX 366

typedef struct anomaly_options {
        size_t period;          /* 7 for daily data */
        size_t check;           /* newest values to check, >= 1 */
        size_t window;          /* history for the baseline; 0 = 8 periods */
        double threshold;       /* |score| of an anomaly; 0 = 3.5 */
        bool multiplicative;    /* work on logs (positive data only) */
        size_t shift_min;       /* days after a shift; 0 = 3 */
        size_t shift_max;       /* days searched for a shift; 0 = 4 periods */
        double shift_threshold; /* score of a level shift; 0 = 6 */
        double shift_sigma;     /* and its least size in sigmas; 0 = 4 */
} anomaly_options_t;

#define ANOMALY_OPTIONS_DEFAULT ((anomaly_options_t){.period = 7, .check = 1})

typedef enum anomaly_direction {
        ANOMALY_DOWN = -1,
        ANOMALY_FLAT = 0,
        ANOMALY_UP = 1
} anomaly_direction_t;

/* The verdict on one checked value. */
typedef struct anomaly_point {
        size_t index;    /* in y */
        bool missing;    /* y[index] is NaN: nothing else is set */
        double value;    /* y[index] */
        double expected; /* the baseline's value for that day */
        double lower;    /* the expected range */
        double upper;
        double score; /* robust z-score (on logs when multiplicative) */
        bool anomaly; /* |score| >= threshold */
        anomaly_direction_t direction; /* FLAT unless an anomaly */
} anomaly_point_t;

/* The level shift found, if any. */
typedef struct anomaly_shift {
        bool detected;
        size_t index;  /* first value at the new level */
        double before; /* seasonally adjusted medians either side */
        double after;
        double score;
        anomaly_direction_t direction;
} anomaly_shift_t;

/*
 * Checks y[n - check .. n - 1] against the baseline of the values before
 * them (see above) into out[0 .. check - 1], and looks for a level shift
 * into *shift (NULL: no search). Caller-owned outputs; on an error they
 * are left unset.
 */
anomaly_err_t anomaly_check(const double *y, size_t n,
                            const anomaly_options_t *opt, anomaly_point_t *out,
                            anomaly_shift_t *shift);

#endif
