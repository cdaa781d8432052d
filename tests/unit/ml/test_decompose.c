/*
 * test_decompose.c - decompositions and robust statistics on series whose
 * components are known exactly.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "near.h"

#include "decompose.h"

static const double fig7[7] = {-3, 1, 2, 4, 0.5, -1.5, -3};

static void test_classical_recovers_figure_and_trend(void **state) {
        (void)state;
        double y[42], season[7], trend[42];
        for (int t = 0; t < 42; t++)
                y[t] = 100 + 0.5 * t + fig7[t % 7];
        assert_true(decompose_classical(y, 42, 7, false, season, trend));
        for (int i = 0; i < 7; i++)
                assert_near(season[i], fig7[i], 1e-9);
        assert_true(isnan(trend[0]) && isnan(trend[2]));
        assert_near(trend[3], 100 + 0.5 * 3, 1e-9);
        assert_near(trend[38], 100 + 0.5 * 38, 1e-9);
        assert_true(isnan(trend[39]));
}

static void test_classical_even_period_multiplicative(void **state) {
        (void)state;
        double f[12], y[48], season[12];
        double sum = 0;
        for (int i = 0; i < 12; i++)
                sum += f[i] = 1 + 0.3 * sin(2 * M_PI * i / 12.0);
        for (int i = 0; i < 12; i++)
                f[i] *= 12 / sum;
        for (int t = 0; t < 48; t++)
                y[t] = 200 * f[t % 12];
        assert_true(decompose_classical(y, 48, 12, true, season, NULL));
        for (int i = 0; i < 12; i++)
                assert_near(season[i], f[i], 1e-9);
        assert_false(decompose_classical(y, 23, 12, true, season, NULL));
}

static void test_robust_ignores_outliers(void **state) {
        (void)state;
        double y[56], season[7], trend[56], scratch[56];
        for (int t = 0; t < 56; t++)
                y[t] = 50 + fig7[t % 7];
        y[10] = 500;
        y[30] = -300;
        y[44] = NAN;
        assert_true(decompose_robust(y, 56, 7, season, trend, scratch));
        double med = decompose_median(fig7, 7, scratch);
        for (int i = 0; i < 7; i++)
                assert_near(season[i], fig7[i] - med, 1e-9);
}

static void test_median_mad_theil_sen(void **state) {
        (void)state;
        double s[64];
        const double x[] = {3, NAN, 1, 2, 100};
        assert_near(decompose_median(x, 5, s), 2.5, 1e-12);
        assert_near(decompose_mad(x, 5, 2.5, s), 1, 1e-12);
        const double line[] = {1, 3, 5, 7, 90, 11};
        assert_near(decompose_theil_sen(line, 6, s), 2, 1e-12);
        const double none[] = {NAN, NAN};
        assert_true(isnan(decompose_median(none, 2, s)));
        assert_near(decompose_theil_sen(none, 2, s), 0, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_classical_recovers_figure_and_trend),
                cmocka_unit_test(test_classical_even_period_multiplicative),
                cmocka_unit_test(test_robust_ignores_outliers),
                cmocka_unit_test(test_median_mad_theil_sen),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
