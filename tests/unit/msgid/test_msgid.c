/*
 * test_msgid.c - unit tests of UUIDv7 message ids (shared/msgid.c).
 *
 * Covers the text form (format, parse, rejection of malformed text), the
 * RFC 9562 layout (version and variant bits, the millisecond timestamp),
 * ordering of ids made at different milliseconds, uniqueness over many ids
 * and threads, and the hash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msgid.h"

static void sleep_ms(long ms) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0)
                ;
}

static int cmp_id(const void *a, const void *b) {
        return memcmp(a, b, sizeof(msgid_t));
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------------------ */
/* Text form                                                                 */
/* ------------------------------------------------------------------------ */

static void test_format_parse_round_trip(void **state) {
        (void)state;
        for (int i = 0; i < 1000; i++) {
                msgid_t id, back;
                char text[MSGID_TEXT_SIZE];
                msgid_new(&id);
                memset(text, 'X', sizeof(text));
                msgid_format(&id, text);
                assert_int_equal(strlen(text), MSGID_TEXT_LEN);
                assert_true(text[8] == '-' && text[13] == '-' &&
                            text[18] == '-' && text[23] == '-');
                for (size_t k = 0; k < MSGID_TEXT_LEN; k++) {
                        if (k == 8 || k == 13 || k == 18 || k == 23)
                                continue;
                        /* Canonical form is lowercase hex. */
                        assert_non_null(strchr("0123456789abcdef", text[k]));
                }
                memset(&back, 0, sizeof(back));
                assert_true(msgid_parse(text, MSGID_TEXT_LEN, &back));
                assert_memory_equal(&id, &back, sizeof(id));
        }
}

static void test_known_vector(void **state) {
        /* The UUIDv7 example of RFC 9562, appendix A.6. */
        static const char text[] = "017F22E2-79B0-7CC3-98C4-DC0C0C07398F";
        msgid_t id;
        char out[MSGID_TEXT_SIZE];
        (void)state;
        assert_true(msgid_parse(text, strlen(text), &id));
        assert_int_equal(id.b[0], 0x01);
        assert_int_equal(id.b[15], 0x8f);
        assert_int_equal(msgid_time_ms(&id), 0x017F22E279B0ull);
        assert_int_equal(msgid_time_ms(&id), 1645557742000ull);
        msgid_format(&id, out);
        assert_string_equal(out, "017f22e2-79b0-7cc3-98c4-dc0c0c07398f");
}

static void test_parse_not_nul_terminated(void **state) {
        char buf[64];
        msgid_t id;
        (void)state;
        /* Only len bytes are read; what follows does not matter. */
        memcpy(buf, "017f22e2-79b0-7cc3-98c4-dc0c0c07398fTRAILING", 44);
        assert_true(msgid_parse(buf, MSGID_TEXT_LEN, &id));
        assert_int_equal(msgid_time_ms(&id), 1645557742000ull);
}

static void test_parse_rejects_wrong_length(void **state) {
        static const char good[] = "017f22e2-79b0-7cc3-98c4-dc0c0c07398f";
        msgid_t id;
        (void)state;
        assert_false(msgid_parse(good, 0, &id));
        assert_false(msgid_parse(good, 35, &id));
        assert_false(msgid_parse(good, 37, &id));
        assert_false(
                msgid_parse("017f22e2-79b0-7cc3-98c4-dc0c0c07398f0", 37, &id));
        assert_false(msgid_parse("017f22e279b07cc398c4dc0c0c07398f", 32, &id));
        assert_false(msgid_parse(NULL, 36, &id));
        assert_false(msgid_parse(NULL, 0, &id));
}

static void test_parse_rejects_missing_dashes(void **state) {
        static const char good[] = "017f22e2-79b0-7cc3-98c4-dc0c0c07398f";
        static const size_t dashes[] = {8, 13, 18, 23};
        char text[MSGID_TEXT_SIZE];
        msgid_t id;
        (void)state;
        for (size_t i = 0; i < 4; i++) {
                memcpy(text, good, sizeof(text));
                text[dashes[i]] = '0';
                assert_false(msgid_parse(text, MSGID_TEXT_LEN, &id));
                memcpy(text, good, sizeof(text));
                text[dashes[i]] = '_';
                assert_false(msgid_parse(text, MSGID_TEXT_LEN, &id));
        }
        /* Dashes moved: right length, wrong places. */
        assert_false(msgid_parse("017f22e27-9b0-7cc3-98c4-dc0c0c07398f",
                                 MSGID_TEXT_LEN, &id));
        assert_false(msgid_parse("017f22e2-79b07-cc3-98c4-dc0c0c07398f",
                                 MSGID_TEXT_LEN, &id));
        /* 36 characters without dashes. */
        assert_false(msgid_parse("017f22e279b07cc398c4dc0c0c07398f0000",
                                 MSGID_TEXT_LEN, &id));
}

static void test_parse_rejects_non_hex(void **state) {
        static const char good[] = "017f22e2-79b0-7cc3-98c4-dc0c0c07398f";
        static const char bad_chars[] = {'g',  'G',  'z', ' ', '-', '+', 'x',
                                         '\0', '\n', '/', ':', '@', '`'};
        char text[MSGID_TEXT_SIZE];
        msgid_t id;
        (void)state;
        /* Every hex position, with every bad character. */
        for (size_t pos = 0; pos < MSGID_TEXT_LEN; pos++) {
                if (pos == 8 || pos == 13 || pos == 18 || pos == 23)
                        continue;
                for (size_t c = 0; c < sizeof(bad_chars); c++) {
                        memcpy(text, good, sizeof(text));
                        text[pos] = bad_chars[c];
                        if (msgid_parse(text, MSGID_TEXT_LEN, &id))
                                fail_msg("accepted '%c' at %zu", bad_chars[c],
                                         pos);
                }
        }
        /* A byte with the high bit set. */
        memcpy(text, good, sizeof(text));
        text[0] = (char)0xc3;
        assert_false(msgid_parse(text, MSGID_TEXT_LEN, &id));
}

/* ------------------------------------------------------------------------ */
/* Layout and time                                                           */
/* ------------------------------------------------------------------------ */

static void test_version_and_variant(void **state) {
        (void)state;
        for (int i = 0; i < 10000; i++) {
                msgid_t id;
                char text[MSGID_TEXT_SIZE];
                msgid_new(&id);
                assert_int_equal(id.b[6] >> 4, 7);
                assert_int_equal(id.b[8] >> 6, 2);
                msgid_format(&id, text);
                assert_int_equal(text[14], '7');
                assert_non_null(strchr("89ab", text[19]));
        }
}

static void test_time_close_to_wall_clock(void **state) {
        msgid_t id;
        uint64_t before, after, t;
        (void)state;
        before = clock_wall_ms();
        msgid_new(&id);
        after = clock_wall_ms();
        t = msgid_time_ms(&id);
        assert_true(before <= t && t <= after);
        /* And the clock itself is sane: after 2020-01-01. */
        assert_true(before > 1577836800000ull);
}

static void test_mono_clock_does_not_go_back(void **state) {
        uint64_t prev = clock_mono_ms(), now;
        (void)state;
        for (int i = 0; i < 1000; i++) {
                now = clock_mono_ms();
                assert_true(now >= prev);
                prev = now;
        }
        sleep_ms(3);
        assert_true(clock_mono_ms() >= prev + 2);
}

static void test_sorted_by_creation_time(void **state) {
        enum { N = 20 };
        msgid_t ids[N];
        char text[N][MSGID_TEXT_SIZE];
        (void)state;
        for (int i = 0; i < N; i++) {
                msgid_new(&ids[i]);
                msgid_format(&ids[i], text[i]);
                sleep_ms(2);
        }
        for (int i = 1; i < N; i++) {
                /* Bytes, text and timestamps all sort in creation order. */
                assert_true(memcmp(&ids[i - 1], &ids[i], sizeof(msgid_t)) < 0);
                assert_true(strcmp(text[i - 1], text[i]) < 0);
                assert_true(msgid_time_ms(&ids[i - 1]) <
                            msgid_time_ms(&ids[i]));
        }
}

/* ------------------------------------------------------------------------ */
/* Uniqueness and hashing                                                    */
/* ------------------------------------------------------------------------ */

static void test_unique_100k(void **state) {
        enum { N = 100000 };
        msgid_t *ids = malloc(N * sizeof(*ids));
        (void)state;
        assert_non_null(ids);
        for (int i = 0; i < N; i++)
                msgid_new(&ids[i]);
        qsort(ids, N, sizeof(*ids), cmp_id);
        for (int i = 1; i < N; i++)
                if (memcmp(&ids[i - 1], &ids[i], sizeof(msgid_t)) == 0)
                        fail_msg("duplicate id at %d", i);
        free(ids);
}

enum { PER_THREAD = 20000, THREADS = 4 };

static void *make_ids(void *arg) {
        msgid_t *out = arg;
        for (int i = 0; i < PER_THREAD; i++)
                msgid_new(&out[i]);
        return NULL;
}

static void test_unique_across_threads(void **state) {
        msgid_t *ids = malloc(THREADS * PER_THREAD * sizeof(*ids));
        pthread_t th[THREADS];
        (void)state;
        assert_non_null(ids);
        /* Each thread seeds its own generator: no two may share a stream. */
        for (int t = 0; t < THREADS; t++)
                assert_int_equal(pthread_create(&th[t], NULL, make_ids,
                                                ids + t * PER_THREAD),
                                 0);
        for (int t = 0; t < THREADS; t++)
                assert_int_equal(pthread_join(th[t], NULL), 0);
        qsort(ids, THREADS * PER_THREAD, sizeof(*ids), cmp_id);
        for (int i = 1; i < THREADS * PER_THREAD; i++)
                if (memcmp(&ids[i - 1], &ids[i], sizeof(msgid_t)) == 0)
                        fail_msg("duplicate id at %d", i);
        free(ids);
}

static void test_hash(void **state) {
        enum { N = 10000 };
        uint64_t *h = malloc(N * sizeof(*h));
        msgid_t a, b;
        (void)state;
        assert_non_null(h);
        msgid_new(&a);
        b = a;
        assert_true(msgid_hash(&a) == msgid_hash(&b));
        /* One bit flipped anywhere changes the hash. */
        for (int byte = 0; byte < 16; byte++) {
                for (int bit = 0; bit < 8; bit++) {
                        b = a;
                        b.b[byte] ^= (uint8_t)(1u << bit);
                        assert_true(msgid_hash(&a) != msgid_hash(&b));
                }
        }
        for (int i = 0; i < N; i++) {
                msgid_t id;
                msgid_new(&id);
                h[i] = msgid_hash(&id);
        }
        qsort(h, N, sizeof(*h), cmp_u64);
        for (int i = 1; i < N; i++)
                assert_true(h[i - 1] != h[i]);
        free(h);
}

static void test_random_fills_every_length(void **state) {
        uint8_t buf[67];
        (void)state;
        for (size_t n = 1; n <= 64; n++) {
                int nonzero = 0;
                memset(buf, 0, sizeof(buf));
                /* Canaries after the requested length must survive. */
                buf[n] = 0xA5;
                buf[n + 1] = 0x5A;
                msgid_random(buf, n);
                assert_int_equal(buf[n], 0xA5);
                assert_int_equal(buf[n + 1], 0x5A);
                for (size_t i = 0; i < n; i++)
                        nonzero |= buf[i] != 0;
                /* 1/256 per byte of being zero: only 1-byte runs may be. */
                if (n >= 4)
                        assert_true(nonzero);
        }
        msgid_random(buf, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_format_parse_round_trip),
                cmocka_unit_test(test_known_vector),
                cmocka_unit_test(test_parse_not_nul_terminated),
                cmocka_unit_test(test_parse_rejects_wrong_length),
                cmocka_unit_test(test_parse_rejects_missing_dashes),
                cmocka_unit_test(test_parse_rejects_non_hex),
                cmocka_unit_test(test_version_and_variant),
                cmocka_unit_test(test_time_close_to_wall_clock),
                cmocka_unit_test(test_mono_clock_does_not_go_back),
                cmocka_unit_test(test_sorted_by_creation_time),
                cmocka_unit_test(test_unique_100k),
                cmocka_unit_test(test_unique_across_threads),
                cmocka_unit_test(test_hash),
                cmocka_unit_test(test_random_fills_every_length),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
