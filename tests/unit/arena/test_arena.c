/*
 * test_arena.c - unit tests of the per-request arena (shared/arena.c).
 *
 * Checks alignment, growth over several chunks (and that earlier allocations
 * survive it), strndup, the byte count, and the failure paths: an injected
 * try_malloc failure and sizes no machine can satisfy must return NULL and
 * leave the arena usable, never abort.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdalign.h>
#include <string.h>

#include "alloc.h"
#include "arena.h"

#define ALIGN alignof(max_align_t)

static size_t round_up(size_t n) {
        return (n + ALIGN - 1) / ALIGN * ALIGN;
}

static void assert_aligned(const void *p) {
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % ALIGN, 0);
}

/* Reset the allocation hook whatever a test did. */
static int teardown(void **state) {
        (void)state;
        alloc_fail_after(-1);
        return 0;
}

static void test_alignment(void **state) {
        arena_t *a = arena_new(100); /* deliberately not a multiple */
        (void)state;
        for (size_t size = 0; size < 200; size++) {
                unsigned char *p = arena_alloc(a, size);
                assert_aligned(p);
                memset(p, 0xAB, size);
        }
        arena_destroy(a);
}

static void test_allocations_do_not_overlap(void **state) {
        enum { N = 500 };
        arena_t *a = arena_new(64);
        unsigned char *p[N];
        size_t len[N];
        (void)state;
        for (size_t i = 0; i < N; i++) {
                len[i] = 1 + (i * 37) % 301;
                p[i] = arena_alloc(a, len[i]);
                assert_aligned(p[i]);
                memset(p[i], (int)(i & 0xff), len[i]);
        }
        /* Every block still holds its own pattern after all the growth. */
        for (size_t i = 0; i < N; i++)
                for (size_t k = 0; k < len[i]; k++)
                        assert_int_equal(p[i][k], i & 0xff);
        arena_destroy(a);
}

static void test_growth_with_large_sizes(void **state) {
        arena_t *a = arena_new(128);
        unsigned char *small, *big, *bigger, *after;
        size_t used = 0;
        (void)state;
        small = arena_alloc(a, 100);
        assert_aligned(small);
        memset(small, 1, 100);
        used += round_up(100);
        /* Far beyond the first chunk and beyond its doubling. */
        big = arena_alloc(a, 1u << 20);
        assert_aligned(big);
        memset(big, 2, 1u << 20);
        used += round_up(1u << 20);
        bigger = arena_alloc(a, (3u << 20) + 5);
        assert_aligned(bigger);
        memset(bigger, 3, (3u << 20) + 5);
        used += round_up((3u << 20) + 5);
        /* Small allocations keep working after a big one. */
        after = arena_alloc(a, 10);
        assert_aligned(after);
        memset(after, 4, 10);
        used += round_up(10);
        assert_int_equal(arena_used(a), used);
        assert_int_equal(small[99], 1);
        assert_int_equal(big[0], 2);
        assert_int_equal(big[(1u << 20) - 1], 2);
        assert_int_equal(bigger[(3u << 20) + 4], 3);
        assert_int_equal(after[9], 4);
        arena_destroy(a);
}

static void test_default_first_chunk(void **state) {
        arena_t *a = arena_new(0); /* 0: the arena picks a size */
        (void)state;
        assert_aligned(arena_alloc(a, 1));
        assert_aligned(arena_alloc(a, 5000));
        arena_destroy(a);
}

static void test_strndup(void **state) {
        arena_t *a = arena_new(32);
        const char src[] = "hello world";
        char *s;
        (void)state;
        /* Stops at len: the input need not be NUL-terminated there. */
        s = arena_strndup(a, src, 5);
        assert_non_null(s);
        assert_string_equal(s, "hello");
        s = arena_strndup(a, src, 0);
        assert_non_null(s);
        assert_string_equal(s, "");
        /* Embedded NULs are copied as they are. */
        s = arena_strndup(a, "a\0b", 3);
        assert_non_null(s);
        assert_memory_equal(s, "a\0b\0", 4);
        /* Longer than the first chunk. */
        {
                char big[300];
                memset(big, 'q', sizeof(big));
                s = arena_strndup(a, big, sizeof(big));
                assert_non_null(s);
                assert_int_equal(strlen(s), sizeof(big));
        }
        assert_null(arena_strndup(a, src, SIZE_MAX));
        arena_destroy(a);
}

static void test_used(void **state) {
        arena_t *a = arena_new(256);
        (void)state;
        assert_int_equal(arena_used(a), 0);
        arena_alloc(a, 1);
        assert_int_equal(arena_used(a), ALIGN);
        arena_alloc(a, ALIGN);
        assert_int_equal(arena_used(a), 2 * ALIGN);
        arena_alloc(a, 0);
        assert_int_equal(arena_used(a), 2 * ALIGN);
        arena_strndup(a, "abc", 3);
        assert_int_equal(arena_used(a), 3 * ALIGN);
        arena_alloc(a, 1000); /* in a new chunk */
        assert_int_equal(arena_used(a), 3 * ALIGN + round_up(1000));
        arena_destroy(a);
}

static void test_destroy_null(void **state) {
        (void)state;
        arena_destroy(NULL);
}

static void test_try_malloc_failure(void **state) {
        arena_t *a = arena_new(256);
        void *p;
        size_t used;
        (void)state;
        alloc_fail_after(0);
        /* What fits the first chunk needs no allocation. */
        p = arena_alloc(a, 64);
        assert_aligned(p);
        used = arena_used(a);
        /* A size beyond the chunk needs one, and it fails cleanly. */
        assert_null(arena_alloc(a, 4096));
        assert_null(arena_strndup(a, "x", 1000));
        assert_int_equal(arena_used(a), used);
        /* Still room in the first chunk. */
        assert_aligned(arena_alloc(a, 64));
        alloc_fail_after(-1);
        p = arena_alloc(a, 4096);
        assert_aligned(p);
        memset(p, 0x5c, 4096);
        arena_destroy(a);
}

static void test_try_malloc_fails_after_n(void **state) {
        arena_t *a = arena_new(64);
        (void)state;
        /* The first growth succeeds, the second fails. */
        alloc_fail_after(1);
        assert_aligned(arena_alloc(a, 1000));
        assert_null(arena_alloc(a, 100000));
        alloc_fail_after(-1);
        assert_aligned(arena_alloc(a, 100000));
        arena_destroy(a);
}

static void test_huge_sizes(void **state) {
        arena_t *a = arena_new(64);
        (void)state;
        assert_null(arena_alloc(a, SIZE_MAX));
        assert_null(arena_alloc(a, SIZE_MAX - 1));
        assert_null(arena_alloc(a, SIZE_MAX - ALIGN + 1));
        /* Rounds up without wrapping but no chunk header fits with it.
         * (Sizes that pass these checks go to malloc, whose NULL is tested
         * with alloc_fail_after: ASan would abort on a real huge malloc.) */
        assert_null(arena_alloc(a, SIZE_MAX - ALIGN));
        assert_int_equal(arena_used(a), 0);
        /* And the arena is fine afterwards. */
        assert_aligned(arena_alloc(a, 32));
        arena_destroy(a);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_alignment, teardown),
                cmocka_unit_test_teardown(test_allocations_do_not_overlap,
                                          teardown),
                cmocka_unit_test_teardown(test_growth_with_large_sizes,
                                          teardown),
                cmocka_unit_test_teardown(test_default_first_chunk, teardown),
                cmocka_unit_test_teardown(test_strndup, teardown),
                cmocka_unit_test_teardown(test_used, teardown),
                cmocka_unit_test_teardown(test_destroy_null, teardown),
                cmocka_unit_test_teardown(test_try_malloc_failure, teardown),
                cmocka_unit_test_teardown(test_try_malloc_fails_after_n,
                                          teardown),
                cmocka_unit_test_teardown(test_huge_sizes, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
