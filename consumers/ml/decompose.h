/*
 * decompose.h - seasonal decomposition and robust statistics for the ml
 * group's numerics.
 *
 * Two decompositions of a series with period m:
 *  - decompose_classical: the moving-average decomposition (R's decompose):
 *    a centred moving average of order m (2 x m when m is even) as the
 *    trend, and the seasonal figure as the per-position mean of the
 *    detrended values, normalised to sum 0 (additive) or to average 1
 *    (multiplicative). ETS uses it for its initial states.
 *  - decompose_robust: the same shape with medians in place of means (a
 *    running median trend, per-position medians of the detrended values),
 *    so that a few outliers move neither. The anomaly detector uses it.
 * And the robust summaries they share: median, MAD, Theil-Sen slope.
 *
 * Pure functions on caller-owned arrays: no allocation unless said, no
 * global state; every function may be called from any thread. NaN values
 * are skipped where the contract says so.
 */
#ifndef OMNIFY_ML_DECOMPOSE_H
#define OMNIFY_ML_DECOMPOSE_H

#include <stdbool.h>
#include <stddef.h>

/* The MAD of normal data times this estimates its standard deviation. */
#define DECOMPOSE_MAD_SCALE 1.482602218505602

/* Sorts x[0..n-1] ascending (no NaN). */
void decompose_sort(double *x, size_t n);

/*
 * The median of the non-NaN values of x[0..n-1] (x is left untouched; a
 * copy is sorted in scratch, which must hold n doubles). NaN when no value.
 */
double decompose_median(const double *x, size_t n, double *scratch);

/*
 * The median absolute deviation around med of the non-NaN values of
 * x[0..n-1], unscaled (multiply by DECOMPOSE_MAD_SCALE for a sigma).
 * scratch holds n doubles. NaN when no value.
 */
double decompose_mad(const double *x, size_t n, double med, double *scratch);

/*
 * Theil-Sen slope of the non-NaN points (i, x[i]), i = 0..n-1: the median
 * of the pairwise slopes. scratch holds n * (n - 1) / 2 doubles. 0 when
 * fewer than two points.
 */
double decompose_theil_sen(const double *x, size_t n, double *scratch);

/*
 * Classical decomposition of y[0..n-1] with period m >= 2, n >= 2 * m, no
 * NaN. Writes the seasonal figure season[0..m-1] (position i is the
 * seasonal of y[i], y[i + m], ...): additive figures sum to 0,
 * multiplicative ones (mult true, y > 0) average 1. trend[0..n-1], when
 * not NULL, gets the centred moving average (NaN at the ends where it is
 * not defined). Returns false when n < 2 * m or m < 2.
 */
bool decompose_classical(const double *y, size_t n, size_t m, bool mult,
                         double *season, double *trend);

/*
 * Robust decomposition of y[0..n-1] with period m >= 2, n >= 2 * m: a
 * running median of width m (odd: m, even: m + 1), shrinking at the ends,
 * as the trend, and the seasonal figure as the per-position median of
 * y - trend, centred to median 0. NaN values are skipped (the trend there
 * is the median of the window's other values). Writes season[0..m-1] and
 * trend[0..n-1]; scratch holds n doubles. Returns false when
 * n < 2 * m or m < 2.
 */
bool decompose_robust(const double *y, size_t n, size_t m, double *season,
                      double *trend, double *scratch);

#endif
