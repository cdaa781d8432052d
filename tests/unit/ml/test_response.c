/*
 * test_response.c - the budget response model recovers a curve it was
 * given, projects, moves budget and allocates as its equations say.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "near.h"

#include "response.h"

static double unif(uint64_t *s) {
        *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
        return (double)(*s >> 11) * 0x1.0p-53;
}

/* 90 days of spend between 200 and 2000 and revenue from the curve. */
static void channel(const response_params_t *p, double noise, uint64_t seed,
                    double *x, double *r) {
        uint64_t s = seed;
        double a = 0;
        for (int t = 0; t < 90; t++) {
                x[t] = 200 + 1800 * unif(&s);
                a = t == 0 ? x[0] / (1 - p->lambda) : x[t] + p->lambda * a;
                r[t] = response_curve(p, a) * (1 + noise * (unif(&s) - 0.5));
        }
}

static void test_recovers_known_curve(void **state) {
        (void)state;
        response_params_t truth = {
                .base = 500, .beta = 6000, .half = 900, .shape = 1.3};
        double x[90], r[90];
        channel(&truth, 0, 1, x, r);
        response_model_t m;
        assert_int_equal(response_fit(x, r, 90, false, &m), RESPONSE_OK);
        assert_near(m.p.base, 500, 5);
        assert_near(m.p.beta, 6000, 60);
        assert_near(m.p.half, 900, 9);
        assert_near(m.p.shape, 1.3, 0.01);
        assert_true(m.fit.r2 > 0.9999);
        assert_true(m.holdout.mape < 0.1);
        assert_true(m.max_spend > 1900 && m.max_spend <= 2000);
}

static void test_recovers_adstock(void **state) {
        (void)state;
        response_params_t truth = {.base = 100,
                                   .beta = 3000,
                                   .half = 1500,
                                   .shape = 1,
                                   .lambda = 0.4};
        double x[90], r[90];
        channel(&truth, 0.02, 2, x, r);
        response_model_t m;
        assert_int_equal(response_fit(x, r, 90, true, &m), RESPONSE_OK);
        assert_near(m.p.lambda, 0.4, 0.05);
        assert_true(m.fit.mape < 2);
        assert_true(m.holdout.mape < 3);
}

static void test_project_move_allocate(void **state) {
        (void)state;
        response_params_t pa = {
                .base = 0, .beta = 5000, .half = 1000, .shape = 1};
        response_params_t pb = {
                .base = 0, .beta = 2000, .half = 4000, .shape = 1};
        double x[90], r[90];
        response_model_t m[2];
        channel(&pa, 0, 3, x, r);
        assert_int_equal(response_fit(x, r, 90, false, &m[0]), RESPONSE_OK);
        channel(&pb, 0, 4, x, r);
        assert_int_equal(response_fit(x, r, 90, false, &m[1]), RESPONSE_OK);
        /* Ten days at 1000 a day on channel a: beta / 2 a day. */
        double plan[10];
        for (int i = 0; i < 10; i++)
                plan[i] = 1000;
        response_projection_t pr;
        assert_int_equal(response_project(&m[0], plan, 10, &pr), RESPONSE_OK);
        assert_near(pr.spend, 10000, 1e-9);
        assert_near(pr.revenue, 10 * 2500, 25);
        assert_true(pr.lo95 <= pr.revenue && pr.revenue <= pr.hi95);
        assert_false(pr.out_of_range);
        plan[3] = 5000;
        assert_int_equal(response_project(&m[0], plan, 10, &pr), RESPONSE_OK);
        assert_true(pr.out_of_range);
        /* Moving 500 a day from b (flat) to a (steep) pays. */
        double spend[2] = {1000, 1000}, delta[2], total;
        bool oor;
        assert_int_equal(
                response_move(m, spend, 2, 1, 0, 500, 30, delta, &total, &oor),
                RESPONSE_OK);
        double want_a = 30 * (5000 * 1500 / 2500.0 - 2500);
        double want_b = 30 * (2000 * 500 / 4500.0 - 2000 * 1000 / 5000.0);
        assert_near(delta[0], want_a, 0.01 * fabs(want_a));
        assert_near(delta[1], want_b, 0.01 * fabs(want_b));
        assert_near(total, delta[0] + delta[1], 1e-9);
        assert_true(total > 0);
        assert_int_equal(
                response_move(m, spend, 2, 0, 0, 1, 30, delta, &total, &oor),
                RESPONSE_BAD_ARGS);
        assert_int_equal(
                response_move(m, spend, 2, 0, 1, 2000, 30, delta, &total, &oor),
                RESPONSE_BAD_ARGS);
        /* Equal marginal returns beta K / (K + x)^2 for both: a gets
         * 3857, b 2143 of 6000 (caps raised out of the way). */
        double alloc[2];
        assert_int_equal(response_allocate(m, 2, 6000, 10, alloc), RESPONSE_OK);
        assert_near(alloc[0] + alloc[1], 6000, 1e-6);
        assert_near(alloc[0], 3857, 30);
        assert_near(response_marginal(&m[0], alloc[0]),
                    response_marginal(&m[1], alloc[1]), 0.005);
        /* With 2000 the optimum is a corner: all of it on a. */
        assert_int_equal(response_allocate(m, 2, 2000, 0, alloc), RESPONSE_OK);
        assert_near(alloc[0], 2000, 1e-6);
        /* Caps: at most 1.5 x the largest day seen per channel. */
        assert_int_equal(response_allocate(m, 2, 1e6, 0, alloc), RESPONSE_OK);
        assert_true(alloc[0] <= 1.5 * m[0].max_spend + 1e-6);
        assert_true(alloc[1] <= 1.5 * m[1].max_spend + 1e-6);
}

static void test_guard_rails(void **state) {
        (void)state;
        double x[90], r[90];
        response_model_t m;
        for (int t = 0; t < 90; t++) {
                x[t] = 100;
                r[t] = 50;
        }
        assert_int_equal(response_fit(x, r, 90, false, &m),
                         RESPONSE_NO_VARIATION);
        assert_int_equal(response_fit(x, r, 20, false, &m), RESPONSE_TOO_SHORT);
        x[5] = -1;
        assert_int_equal(response_fit(x, r, 90, false, &m), RESPONSE_BAD_VALUE);
        x[5] = NAN;
        assert_int_equal(response_fit(x, r, 90, false, &m), RESPONSE_BAD_VALUE);
        response_params_t p = {.base = 10, .beta = 100, .half = 50, .shape = 1};
        channel(&p, 0.05, 9, x, r);
        for (int t = 0; t < 90; t += 3)
                r[t] = NAN; /* missing revenue days are skipped */
        assert_int_equal(response_fit(x, r, 90, false, &m), RESPONSE_OK);
        assert_int_equal(m.n, 60);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_recovers_known_curve),
                cmocka_unit_test(test_recovers_adstock),
                cmocka_unit_test(test_project_move_allocate),
                cmocka_unit_test(test_guard_rails),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
