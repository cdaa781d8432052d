/*
 * test_status.c - the Burrow-style status of a consumer group's partitions
 * over a sliding window of samples (consumers/infrastructure/status.c):
 * each rule of infra.h, which rule wins when several hold, the reasons
 * given, and the order in which a group takes its worst partition's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "infra.h"

#define FULL 5

/* w = {committed, lag} pairs, oldest first. */
static infra_status_t eval(const infra_point_t *w, size_t n, bool members,
                           const char **why) {
        return infra_partition_status(w, n, FULL, members, why);
}

static void test_nothing_sampled_is_ok(void **state) {
        const char *why;
        (void)state;
        assert_int_equal(eval(NULL, 0, true, &why), INFRA_OK);
        assert_string_equal(why, "not sampled yet");
        /* why may be NULL */
        assert_int_equal(eval(NULL, 0, false, NULL), INFRA_OK);
}

static void test_no_member_with_messages_waiting_is_stop(void **state) {
        const infra_point_t one[] = {{10, 3}};
        const infra_point_t caught_up[] = {{10, 3}, {13, 0}};
        const char *why;
        (void)state;
        /* At once: no need for a full window. */
        assert_int_equal(eval(one, 1, false, &why), INFRA_STOP);
        assert_string_equal(why, "no consumer, messages waiting");
        /* No member but nothing waits now: fine. */
        assert_int_equal(eval(caught_up, 2, false, &why), INFRA_OK);
        assert_int_equal(eval(one, 1, true, &why), INFRA_OK);
        assert_string_equal(why, "window not full yet");
}

static void test_a_rewind_is_err(void **state) {
        const infra_point_t w[] = {{10, 0}, {12, 0}, {4, 8}};
        const infra_point_t stopped[] = {{10, 2}, {4, 8}};
        const char *why;
        (void)state;
        /* Even with a caught-up sample in the window, and a short window. */
        assert_int_equal(eval(w, 3, true, &why), INFRA_ERR);
        assert_string_equal(why, "committed offset went backwards");
        /* A reset while stopped shows as STOP while nobody consumes. */
        assert_int_equal(eval(stopped, 2, false, &why), INFRA_STOP);
        assert_int_equal(eval(stopped, 2, true, &why), INFRA_ERR);
}

static void test_caught_up_once_in_the_window_is_ok(void **state) {
        const infra_point_t w[] = {
                {10, 0}, {10, 4}, {10, 6}, {10, 9}, {10, 12}};
        const char *why;
        (void)state;
        /* Full, not moving and growing since, but lag 0 was seen. */
        assert_int_equal(eval(w, 5, true, &why), INFRA_OK);
        assert_string_equal(why, "caught up within the window");
}

static void test_stuck_with_a_full_window_is_stall(void **state) {
        const infra_point_t w[] = {{10, 2}, {10, 2}, {10, 5}, {10, 5}, {10, 9}};
        const char *why;
        (void)state;
        assert_int_equal(eval(w, 5, true, &why), INFRA_STALL);
        assert_string_equal(why, "committed offset not moving, lag above zero");
        /* One sample short of full: not judged yet. */
        assert_int_equal(eval(w, 4, true, &why), INFRA_OK);
        assert_string_equal(why, "window not full yet");
        /* A window of one cannot judge anything. */
        assert_int_equal(infra_partition_status(w, 5, 1, true, &why), INFRA_OK);
}

static void test_falling_behind_at_every_step_is_warn(void **state) {
        const infra_point_t grows[] = {
                {10, 2}, {12, 3}, {14, 5}, {15, 8}, {16, 9}};
        const infra_point_t dips[] = {
                {10, 2}, {12, 3}, {14, 5}, {18, 4}, {19, 9}};
        const infra_point_t flat[] = {
                {10, 2}, {12, 3}, {14, 3}, {18, 4}, {19, 5}};
        const char *why;
        (void)state;
        assert_int_equal(eval(grows, 5, true, &why), INFRA_WARN);
        assert_string_equal(why, "lag grew at every sample");
        /* One step where it fell, or held: consuming. */
        assert_int_equal(eval(dips, 5, true, &why), INFRA_OK);
        assert_string_equal(why, "consuming");
        assert_int_equal(eval(flat, 5, true, &why), INFRA_OK);
}

static void test_a_group_takes_its_worst_partition(void **state) {
        (void)state;
        assert_int_equal(infra_worse(INFRA_OK, INFRA_WARN), INFRA_WARN);
        assert_int_equal(infra_worse(INFRA_STALL, INFRA_WARN), INFRA_STALL);
        assert_int_equal(infra_worse(INFRA_STALL, INFRA_STOP), INFRA_STOP);
        assert_int_equal(infra_worse(INFRA_ERR, INFRA_STOP), INFRA_ERR);
        assert_int_equal(infra_worse(INFRA_OK, INFRA_OK), INFRA_OK);
        assert_string_equal(infra_status_name(INFRA_OK), "OK");
        assert_string_equal(infra_status_name(INFRA_WARN), "WARN");
        assert_string_equal(infra_status_name(INFRA_STALL), "STALL");
        assert_string_equal(infra_status_name(INFRA_STOP), "STOP");
        assert_string_equal(infra_status_name(INFRA_ERR), "ERR");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_nothing_sampled_is_ok),
                cmocka_unit_test(test_no_member_with_messages_waiting_is_stop),
                cmocka_unit_test(test_a_rewind_is_err),
                cmocka_unit_test(test_caught_up_once_in_the_window_is_ok),
                cmocka_unit_test(test_stuck_with_a_full_window_is_stall),
                cmocka_unit_test(test_falling_behind_at_every_step_is_warn),
                cmocka_unit_test(test_a_group_takes_its_worst_partition),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
