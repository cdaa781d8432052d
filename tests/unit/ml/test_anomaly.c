/*
 * test_anomaly.c - the seasonal baseline on series with a known weekly
 * pattern, known noise and anomalies put in at known days.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "near.h"

#include "anomaly.h"

static const double week[7] = {0.8, 1.1, 1.15, 1.1, 1.05, 1.0, 0.8};

/* A reproducible standard normal. */
static double noise(uint64_t *s) {
        double u = 0;
        for (int i = 0; i < 12; i++) {
                *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
                u += (double)(*s >> 11) * 0x1.0p-53;
        }
        return u - 6;
}

/* 1000 a day with the weekly pattern and 2% noise. */
static void series(double *y, size_t n, uint64_t seed) {
        for (size_t t = 0; t < n; t++)
                y[t] = 1000 * week[t % 7] * (1 + 0.02 * noise(&seed));
}

static void test_clean_day_is_not_an_anomaly(void **state) {
        (void)state;
        double y[85];
        anomaly_point_t p;
        anomaly_shift_t sh;
        int alarms = 0;
        for (uint64_t seed = 1; seed <= 50; seed++) {
                series(y, 85, seed);
                anomaly_options_t o = ANOMALY_OPTIONS_DEFAULT;
                assert_int_equal(anomaly_check(y, 85, &o, &p, &sh), ANOMALY_OK);
                alarms += p.anomaly + sh.detected;
                assert_true(p.lower < p.expected && p.expected < p.upper);
                assert_near(p.expected, 1000 * week[84 % 7], 0.05 * 1000);
        }
        assert_true(alarms <= 2);
}

static void test_spike_and_drop_found_with_direction(void **state) {
        (void)state;
        double y[85];
        anomaly_point_t p;
        anomaly_options_t o = ANOMALY_OPTIONS_DEFAULT;
        series(y, 85, 7);
        y[84] *= 1.3;
        assert_int_equal(anomaly_check(y, 85, &o, &p, NULL), ANOMALY_OK);
        assert_true(p.anomaly);
        assert_int_equal(p.direction, ANOMALY_UP);
        assert_true(p.score > 3.5);
        assert_true(p.value > p.upper);
        series(y, 85, 7);
        y[84] *= 0.7;
        assert_int_equal(anomaly_check(y, 85, &o, &p, NULL), ANOMALY_OK);
        assert_true(p.anomaly);
        assert_int_equal(p.direction, ANOMALY_DOWN);
        assert_true(p.value < p.lower);
}

static void test_checked_days_do_not_move_their_baseline(void **state) {
        (void)state;
        double y[90];
        anomaly_point_t p[3];
        series(y, 90, 3);
        y[87] = y[88] = y[89] = 5000;
        anomaly_options_t o = ANOMALY_OPTIONS_DEFAULT;
        o.check = 3;
        assert_int_equal(anomaly_check(y, 90, &o, p, NULL), ANOMALY_OK);
        for (int i = 0; i < 3; i++) {
                assert_true(p[i].anomaly);
                assert_int_equal(p[i].index, 87 + i);
                assert_true(p[i].expected < 1300);
        }
}

static void test_level_shift_located(void **state) {
        (void)state;
        double y[90];
        anomaly_shift_t sh;
        anomaly_point_t p;
        series(y, 90, 11);
        for (int t = 80; t < 90; t++)
                y[t] *= 0.75;
        anomaly_options_t o = ANOMALY_OPTIONS_DEFAULT;
        assert_int_equal(anomaly_check(y, 90, &o, &p, &sh), ANOMALY_OK);
        assert_true(sh.detected);
        assert_int_equal(sh.direction, ANOMALY_DOWN);
        assert_true(sh.index >= 79 && sh.index <= 81);
        assert_true(sh.after < sh.before);
        /* One spike is no shift. */
        series(y, 90, 11);
        y[88] *= 3;
        assert_int_equal(anomaly_check(y, 90, &o, &p, &sh), ANOMALY_OK);
        assert_false(sh.detected);
}

static void test_multiplicative_range_is_wider_upwards(void **state) {
        (void)state;
        double y[85];
        anomaly_point_t p;
        series(y, 85, 5);
        anomaly_options_t o = ANOMALY_OPTIONS_DEFAULT;
        o.multiplicative = true;
        assert_int_equal(anomaly_check(y, 85, &o, &p, NULL), ANOMALY_OK);
        assert_true(p.upper - p.expected > p.expected - p.lower);
        y[10] = 0;
        assert_int_equal(anomaly_check(y, 85, &o, &p, NULL),
                         ANOMALY_NOT_POSITIVE);
}

static void test_missing_and_guard_rails(void **state) {
        (void)state;
        double y[85];
        anomaly_point_t p[2];
        anomaly_options_t o = ANOMALY_OPTIONS_DEFAULT;
        series(y, 85, 9);
        y[84] = NAN;
        y[50] = NAN;
        o.check = 2;
        assert_int_equal(anomaly_check(y, 85, &o, p, NULL), ANOMALY_OK);
        assert_false(p[0].missing);
        assert_true(p[1].missing);
        assert_false(p[1].anomaly);
        o.check = 1;
        assert_int_equal(anomaly_check(y, 21, &o, p, NULL), ANOMALY_TOO_SHORT);
        assert_int_equal(anomaly_check(y, 22, &o, p, NULL), ANOMALY_OK);
        o.check = 0;
        assert_int_equal(anomaly_check(y, 85, &o, p, NULL),
                         ANOMALY_BAD_OPTIONS);
        o.check = 1;
        o.period = 1;
        assert_int_equal(anomaly_check(y, 85, &o, p, NULL),
                         ANOMALY_BAD_OPTIONS);
        o.period = 7;
        y[3] = INFINITY;
        assert_int_equal(anomaly_check(y, 85, &o, p, NULL), ANOMALY_BAD_VALUE);
        /* A flat series: any change is out of range, no division by 0. */
        for (int t = 0; t < 85; t++)
                y[t] = 100;
        assert_int_equal(anomaly_check(y, 85, &o, p, NULL), ANOMALY_OK);
        assert_false(p[0].anomaly);
        y[84] = 101;
        assert_int_equal(anomaly_check(y, 85, &o, p, NULL), ANOMALY_OK);
        assert_true(p[0].anomaly);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_clean_day_is_not_an_anomaly),
                cmocka_unit_test(test_spike_and_drop_found_with_direction),
                cmocka_unit_test(test_checked_days_do_not_move_their_baseline),
                cmocka_unit_test(test_level_shift_located),
                cmocka_unit_test(test_multiplicative_range_is_wider_upwards),
                cmocka_unit_test(test_missing_and_guard_rails),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
