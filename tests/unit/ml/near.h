/*
 * near.h - assert_near for the ml unit tests: cmocka's assert_float_equal
 * compares in float, too coarse for these checks. Include after cmocka.h.
 */
#ifndef OMNIFY_TEST_ML_NEAR_H
#define OMNIFY_TEST_ML_NEAR_H

#include <math.h>

static inline void near_(double a, double b, double eps, const char *expr,
                         const char *file, int line) {
        if (!(fabs(a - b) <= eps)) {
                print_error("%s = %.10g, want %.10g +- %g\n", expr, a, b, eps);
                _fail(file, line);
        }
}

#define assert_near(a, b, eps) \
        near_((double)(a), (double)(b), (double)(eps), #a, __FILE__, __LINE__)

#endif
