/*
 * test_cmdsend.c - the commands a group sends to itself (shared/cmdsend.c):
 * derived message ids (deterministic, UUIDv7-shaped, sorted by their time,
 * distinct for distinct inputs), the checks of what a command carries, and
 * the caller taken from the command being handled. No network.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cmdsend.h"
#include "msgid.h"

static void test_derived_ids_are_stable_uuid7s(void **state) {
        char a[MSGID_TEXT_SIZE], b[MSGID_TEXT_SIZE], c[MSGID_TEXT_SIZE];
        int64_t at = 1700000000123LL;
        msgid_t id;
        (void)state;
        cmdsend_derive_id(at, "timer|g|timers", "t-1#1", 0, a);
        cmdsend_derive_id(at, "timer|g|timers", "t-1#1", 0, b);
        assert_string_equal(a, b);
        assert_true(msgid_parse(a, strlen(a), &id));
        assert_int_equal(msgid_time_ms(&id), (uint64_t)at);
        assert_int_equal(a[14], '7');           /* version */
        assert_non_null(strchr("89ab", a[19])); /* variant */
        /* Any input changed: another id. */
        cmdsend_derive_id(at, "timer|g|timers", "t-1#1", 1, c);
        assert_string_not_equal(a, c);
        cmdsend_derive_id(at, "timer|g|timers", "t-1#2", 0, c);
        assert_string_not_equal(a, c);
        cmdsend_derive_id(at, "timer|h|timers", "t-1#1", 0, c);
        assert_string_not_equal(a, c);
        /* No ambiguity between the parts: ("ab", "c") is not ("a", "bc"). */
        cmdsend_derive_id(at, "ab", "c", 0, b);
        cmdsend_derive_id(at, "a", "bc", 0, c);
        assert_string_not_equal(b, c);
        /* Sorted by time. */
        cmdsend_derive_id(at + 1, "timer|g|timers", "t-1#1", 0, c);
        assert_true(strcmp(a, c) < 0);
}

static void test_what_a_command_carries_is_checked(void **state) {
        const char map[] = "\x81\xa1x\x01";
        slice_t body = {map, sizeof(map) - 1};
        cmd_caller_t caller = {slice_of("t"), slice_of("u"), slice_of("r"),
                               SLICE_NULL};
        char errstr[128], big[300];
        (void)state;
        assert_true(cmdsend_check("grp.thing_done", 1, body, &caller, errstr,
                                  sizeof(errstr)));
        assert_false(cmdsend_check("Grp.Thing", 1, body, &caller, errstr,
                                   sizeof(errstr)));
        assert_false(
                cmdsend_check("", 1, body, &caller, errstr, sizeof(errstr)));
        assert_false(cmdsend_check("grp.x", 0, body, &caller, errstr,
                                   sizeof(errstr)));
        assert_false(cmdsend_check("grp.x", 1, slice_of("\x91\x01"), &caller,
                                   errstr, sizeof(errstr))); /* an array */
        assert_false(cmdsend_check("grp.x", 1, slice_of("\x81\xa1x"), &caller,
                                   errstr, sizeof(errstr))); /* truncated */
        assert_false(cmdsend_check("grp.x", 1, slice_of("\x80\x80"), &caller,
                                   errstr, sizeof(errstr))); /* two maps */
        caller.correlation_id = slice_of("not-a-uuid");
        assert_false(cmdsend_check("grp.x", 1, body, &caller, errstr,
                                   sizeof(errstr)));
        caller.correlation_id = SLICE_NULL;
        memset(big, 'a', sizeof(big));
        caller.tenant = (slice_t){big, sizeof(big)};
        assert_false(cmdsend_check("grp.x", 1, body, &caller, errstr,
                                   sizeof(errstr)));
}

static void test_the_caller_of_a_command(void **state) {
        env_t env = {0};
        cmd_caller_t c;
        (void)state;
        env.id = slice_of("0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee");
        env.tenant = slice_of("tenant-1");
        env.user = slice_of("user-1");
        env.roles = slice_of("admin");
        c = cmdsend_caller(&env);
        assert_true(slice_eq(c.tenant, "tenant-1"));
        assert_true(slice_eq(c.user, "user-1"));
        assert_true(slice_eq(c.roles, "admin"));
        assert_true(slice_eq(c.correlation_id,
                             "0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee"));
        env.correlation_id = slice_of("0190ffff-bbbb-7ccc-8ddd-eeeeeeeeeeee");
        c = cmdsend_caller(&env);
        assert_true(slice_eq(c.correlation_id,
                             "0190ffff-bbbb-7ccc-8ddd-eeeeeeeeeeee"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_derived_ids_are_stable_uuid7s),
                cmocka_unit_test(test_what_a_command_carries_is_checked),
                cmocka_unit_test(test_the_caller_of_a_command),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
