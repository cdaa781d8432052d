/*
 * test_pending.c - unit tests of the edge's pending table (edge/pending.c).
 *
 * Entries are taken exactly once, whichever way (reply, delivery report,
 * deadline, shutdown); the sweep takes what is due and nothing else, also
 * when a bounded batch cuts a walk short, and sweeps before the earliest
 * deadline find nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "pending.h"

#define N 300

static pending_entry_t entries[N];

static void fill(pending_t *p, uint64_t base_deadline) {
        memset(entries, 0, sizeof(entries));
        for (size_t i = 0; i < N; i++) {
                msgid_new(&entries[i].id);
                entries[i].deadline_ms = base_deadline + i;
                entries[i].owner = &entries[i];
                entries[i].async = i % 2 == 0;
                pending_add(p, &entries[i]);
        }
}

static void test_take_once(void **state) {
        pending_t *p = pending_new(16);
        (void)state;
        fill(p, 1000);
        assert_int_equal(pending_count(p), N);
        assert_ptr_equal(pending_take(p, &entries[7].id), &entries[7]);
        assert_null(pending_take(p, &entries[7].id));
        /* A delivered sync entry waits on for its reply; an async one or a
         * failed delivery is taken. */
        assert_null(pending_take_delivered(p, &entries[9].id, true));
        assert_ptr_equal(pending_take_delivered(p, &entries[8].id, true),
                         &entries[8]);
        assert_ptr_equal(pending_take_delivered(p, &entries[9].id, false),
                         &entries[9]);
        assert_null(pending_take_delivered(p, &entries[9].id, false));
        assert_int_equal(pending_count(p), N - 3);
        pending_destroy(p);
}

static void test_expired_only_due(void **state) {
        pending_t *p = pending_new(64);
        pending_entry_t *out[N];
        (void)state;
        fill(p, 1000);
        /* Nothing is due before the earliest deadline. */
        assert_int_equal(pending_take_expired(p, 999, out, N), 0);
        /* Deadlines 1000..1049 are due at 1049. */
        assert_int_equal(pending_take_expired(p, 1049, out, N), 50);
        for (size_t i = 0; i < 50; i++)
                assert_true(((pending_entry_t *)out[i])->deadline_ms <= 1049);
        assert_int_equal(pending_take_expired(p, 1049, out, N), 0);
        assert_int_equal(pending_count(p), N - 50);
        pending_destroy(p);
}

/* A batch smaller than what is due: the next sweep goes on at once. */
static void test_expired_in_batches(void **state) {
        pending_t *p = pending_new(64);
        pending_entry_t *out[N];
        size_t total = 0, n;
        (void)state;
        fill(p, 1000);
        while ((n = pending_take_expired(p, 1000 + 199, out, 16)) > 0) {
                assert_true(n <= 16);
                total += n;
        }
        assert_int_equal(total, 200);
        assert_int_equal(pending_count(p), N - 200);
        pending_destroy(p);
}

/* An entry added with an earlier deadline than all others is seen. */
static void test_earlier_entry_added_later(void **state) {
        pending_t *p = pending_new(64);
        pending_entry_t *out[N], early = {0};
        (void)state;
        fill(p, 5000);
        assert_int_equal(pending_take_expired(p, 100, out, N), 0);
        msgid_new(&early.id);
        early.deadline_ms = 50;
        pending_add(p, &early);
        assert_int_equal(pending_take_expired(p, 100, out, N), 1);
        assert_ptr_equal(out[0], &early);
        pending_destroy(p);
}

static void test_take_all(void **state) {
        pending_t *p = pending_new(64);
        pending_entry_t *out[N];
        size_t total = 0, n;
        (void)state;
        fill(p, 1000000);
        while ((n = pending_take_all(p, out, 64)) > 0)
                total += n;
        assert_int_equal(total, N);
        assert_int_equal(pending_count(p), 0);
        pending_destroy(p);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_take_once),
                cmocka_unit_test(test_expired_only_due),
                cmocka_unit_test(test_expired_in_batches),
                cmocka_unit_test(test_earlier_entry_added_later),
                cmocka_unit_test(test_take_all),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
