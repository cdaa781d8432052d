/*
 * decompose.c - classical and robust seasonal decomposition, median, MAD,
 * Theil-Sen (contracts in decompose.h).
 */
#include "decompose.h"

#include <math.h>
#include <stdlib.h>

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

void decompose_sort(double *x, size_t n) {
        qsort(x, n, sizeof(double), cmp_double);
}

/* Copies the non-NaN values of x into scratch, sorted; returns how many. */
static size_t sorted_values(const double *x, size_t n, double *scratch) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
                if (!isnan(x[i]))
                        scratch[k++] = x[i];
        qsort(scratch, k, sizeof(double), cmp_double);
        return k;
}

static double median_sorted(const double *s, size_t k) {
        if (k == 0)
                return NAN;
        return k % 2 ? s[k / 2] : 0.5 * (s[k / 2 - 1] + s[k / 2]);
}

double decompose_median(const double *x, size_t n, double *scratch) {
        return median_sorted(scratch, sorted_values(x, n, scratch));
}

double decompose_mad(const double *x, size_t n, double med, double *scratch) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
                if (!isnan(x[i]))
                        scratch[k++] = fabs(x[i] - med);
        qsort(scratch, k, sizeof(double), cmp_double);
        return median_sorted(scratch, k);
}

double decompose_theil_sen(const double *x, size_t n, double *scratch) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                if (isnan(x[i]))
                        continue;
                for (size_t j = i + 1; j < n; j++)
                        if (!isnan(x[j]))
                                scratch[k++] = (x[j] - x[i]) / (double)(j - i);
        }
        if (k == 0)
                return 0;
        qsort(scratch, k, sizeof(double), cmp_double);
        return median_sorted(scratch, k);
}

/* The centred moving average of order m at t (2 x m when m is even); NaN
 * where the window leaves the series. */
static double moving_average(const double *y, size_t n, size_t m, size_t t) {
        size_t half = m / 2;
        if (t < half || t + half >= n)
                return NAN;
        double s = 0;
        if (m % 2) {
                for (size_t j = t - half; j <= t + half; j++)
                        s += y[j];
        } else {
                s = 0.5 * (y[t - half] + y[t + half]);
                for (size_t j = t - half + 1; j < t + half; j++)
                        s += y[j];
        }
        return s / (double)m;
}

bool decompose_classical(const double *y, size_t n, size_t m, bool mult,
                         double *season, double *trend) {
        if (m < 2 || n < 2 * m)
                return false;
        double avg = 0;
        for (size_t i = 0; i < m; i++) {
                double sum = 0;
                size_t cnt = 0;
                for (size_t t = i; t < n; t += m) {
                        double tr = moving_average(y, n, m, t);
                        if (trend)
                                trend[t] = tr;
                        if (isnan(tr))
                                continue;
                        sum += mult ? y[t] / tr : y[t] - tr;
                        cnt++;
                }
                season[i] = cnt ? sum / (double)cnt : (mult ? 1 : 0);
                avg += season[i];
        }
        avg /= (double)m;
        for (size_t i = 0; i < m; i++)
                season[i] = mult ? season[i] / avg : season[i] - avg;
        return true;
}

bool decompose_robust(const double *y, size_t n, size_t m, double *season,
                      double *trend, double *scratch) {
        if (m < 2 || n < 2 * m)
                return false;
        size_t half = m / 2; /* width 2 * half + 1: m when odd, m + 1 even */
        for (size_t t = 0; t < n; t++) {
                size_t lo = t >= half ? t - half : 0;
                size_t hi = t + half < n ? t + half : n - 1;
                trend[t] = decompose_median(y + lo, hi - lo + 1, scratch);
        }
        for (size_t i = 0; i < m; i++) {
                size_t k = 0;
                for (size_t t = i; t < n; t += m)
                        if (!isnan(y[t]) && !isnan(trend[t]))
                                scratch[k++] = y[t] - trend[t];
                qsort(scratch, k, sizeof(double), cmp_double);
                double med = median_sorted(scratch, k);
                season[i] = isnan(med) ? 0 : med;
        }
        double c = decompose_median(season, m, scratch);
        for (size_t i = 0; i < m; i++)
                season[i] -= c;
        return true;
}
