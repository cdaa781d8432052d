/*
 * test_logreg.c - logistic regression against published coefficients,
 * and its validation measures against hand-computed values.
 *
 * Published: the 23 space shuttle flights before Challenger (Dalal,
 * Fowlkes & Hoadley 1989, JASA 84:945): O-ring thermal distress against
 * launch temperature (F); the maximum likelihood fit is
 * logit p = 15.0429 - 0.2322 temperature. With C = 1e7 the L2 penalty is
 * negligible and we must find the same.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "near.h"

#include "logreg.h"

static const double temp[23] = {66, 70, 69, 68, 67, 72, 73, 70, 57, 63, 70, 78,
                                67, 53, 67, 75, 70, 81, 76, 79, 75, 76, 58};
static const int distress[23] = {0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0,
                                 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1};

static void test_challenger_published_coefficients(void **state) {
        (void)state;
        logreg_model_t *m = NULL;
        logreg_options_t o = {.C = 1e7};
        assert_int_equal(logreg_fit(temp, distress, 23, 1, &o, &m), LOGREG_OK);
        double coef;
        double b = logreg_raw_coefficients(m, &coef);
        assert_near(b, 15.0429, 0.002);
        assert_near(coef, -0.2322, 0.0001);
        /* P(distress) at 31 F, the morning of the launch: 0.9996. */
        double t31 = 31;
        assert_near(logreg_predict(m, &t31), 0.9996, 0.0002);
        logreg_destroy(m);
}

static void test_regularisation_shrinks(void **state) {
        (void)state;
        logreg_model_t *m = NULL;
        logreg_options_t o = {.C = 0.01};
        assert_int_equal(logreg_fit(temp, distress, 23, 1, &o, &m), LOGREG_OK);
        double coef;
        logreg_raw_coefficients(m, &coef);
        assert_true(coef < 0 && coef > -0.1);
        logreg_destroy(m);
}

static void test_auc_and_calibration_by_hand(void **state) {
        (void)state;
        const double s[] = {0.1, 0.4, 0.35, 0.8, 0.4};
        const int y[] = {0, 0, 1, 1, 1};
        /* Pairs (pos, neg): (0.35, 0.1) 1, (0.35, 0.4) 0, (0.8, *) 2,
         * (0.4, 0.1) 1, (0.4, 0.4) 0.5: 4.5 of 6. */
        assert_near(logreg_auc(s, y, 5), 4.5 / 6, 1e-12);
        const int one[] = {1, 1, 1, 1, 1};
        assert_true(isnan(logreg_auc(s, one, 5)));
        /* A model of x alone on separable-ish data: Brier and bins. */
        double x[40];
        int lab[40];
        for (int i = 0; i < 40; i++) {
                x[i] = i;
                lab[i] = i >= 20;
        }
        lab[18] = 1;
        lab[22] = 0;
        logreg_model_t *m = NULL;
        assert_int_equal(logreg_fit(x, lab, 40, 1, NULL, &m), LOGREG_OK);
        logreg_report_t r;
        assert_int_equal(logreg_evaluate(m, x, lab, 40, &r), LOGREG_OK);
        double brier = 0;
        size_t total = 0;
        for (int i = 0; i < 40; i++) {
                double p = logreg_predict(m, &x[i]);
                brier += (p - lab[i]) * (p - lab[i]);
        }
        assert_near(r.brier, brier / 40, 1e-12);
        assert_int_equal(r.n_bins, 10);
        for (int b = 0; b < r.n_bins; b++)
                total += r.bins[b].count;
        assert_int_equal(total, 40);
        assert_true(r.auc > 0.95);
        assert_true(r.ece >= 0 && r.ece < 0.2);
        logreg_destroy(m);
}

static void test_train_split_is_stratified_and_reproducible(void **state) {
        (void)state;
        double x[200 * 2];
        int y[200];
        uint64_t s = 42;
        for (int i = 0; i < 200; i++) {
                s = s * 6364136223846793005ULL + 1;
                double u = (double)(s >> 11) * 0x1.0p-53;
                x[2 * i] = u;
                x[2 * i + 1] = (double)(i % 5);
                y[i] = u + 0.3 * ((i % 3) - 1) > 0.5;
        }
        logreg_model_t *a = NULL, *b = NULL;
        logreg_report_t ra, rb;
        assert_int_equal(logreg_train(x, y, 200, 2, NULL, &a, &ra), LOGREG_OK);
        assert_int_equal(logreg_train(x, y, 200, 2, NULL, &b, &rb), LOGREG_OK);
        assert_int_equal(logreg_n_train(a), 150);
        assert_int_equal(ra.n, 50);
        assert_near(ra.auc, rb.auc, 0);
        assert_true(ra.auc > 0.8);
        logreg_destroy(a);
        logreg_destroy(b);
}

static void test_too_small_says_so(void **state) {
        (void)state;
        logreg_model_t *m = NULL;
        const int all0[23] = {0};
        assert_int_equal(logreg_fit(temp, all0, 23, 1, NULL, &m),
                         LOGREG_ONE_CLASS);
        assert_null(m);
        int few[23] = {0};
        few[3] = few[7] = few[9] = 1;
        assert_int_equal(logreg_fit(temp, few, 23, 1, NULL, &m),
                         LOGREG_TOO_FEW_ROWS);
        /* 7 positives: 5 left for training after a 25% split. */
        logreg_report_t r;
        assert_int_equal(logreg_train(temp, distress, 23, 1, NULL, &m, &r),
                         LOGREG_OK);
        logreg_destroy(m);
        double bad[23];
        for (int i = 0; i < 23; i++)
                bad[i] = temp[i];
        bad[4] = NAN;
        assert_int_equal(logreg_fit(bad, distress, 23, 1, NULL, &m),
                         LOGREG_BAD_VALUE);
        int two[23];
        for (int i = 0; i < 23; i++)
                two[i] = distress[i] ? 2 : 0;
        assert_int_equal(logreg_fit(temp, two, 23, 1, NULL, &m),
                         LOGREG_BAD_VALUE);
        logreg_options_t o = {.C = -1};
        assert_int_equal(logreg_fit(temp, distress, 23, 1, &o, &m),
                         LOGREG_BAD_OPTIONS);
}

static void test_constant_feature_gets_no_weight(void **state) {
        (void)state;
        double x[23 * 2];
        for (int i = 0; i < 23; i++) {
                x[2 * i] = temp[i];
                x[2 * i + 1] = 3;
        }
        logreg_model_t *m = NULL;
        assert_int_equal(logreg_fit(x, distress, 23, 2, NULL, &m), LOGREG_OK);
        assert_near(logreg_weights(m)[1], 0, 1e-12);
        assert_near(logreg_sds(m)[1], 1, 0);
        logreg_destroy(m);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_challenger_published_coefficients),
                cmocka_unit_test(test_regularisation_shrinks),
                cmocka_unit_test(test_auc_and_calibration_by_hand),
                cmocka_unit_test(
                        test_train_split_is_stratified_and_reproducible),
                cmocka_unit_test(test_too_small_says_so),
                cmocka_unit_test(test_constant_feature_gets_no_weight),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
