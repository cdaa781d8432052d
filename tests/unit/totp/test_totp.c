/*
 * test_totp.c - one-time passwords: the RFC 4226 and RFC 6238 test vectors,
 * the verification window and replay rule, base32 both ways and what it
 * refuses, and the otpauth URI with its escaping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "totp.h"

/* The key of both RFCs' SHA-1 vectors: the ASCII digits, 20 bytes. */
static const uint8_t RFC_KEY[] = "12345678901234567890";
#define RFC_KEY_LEN 20

/* ---------------------------------------------------------------------------
 * Vectors
 * ------------------------------------------------------------------------ */

/* RFC 4226 appendix D: HOTP values for counters 0..9, six digits. */
static void test_rfc4226_hotp_vectors(void **state) {
        static const uint32_t want[] = {755224, 287082, 359152, 969429, 338314,
                                        254676, 287922, 162583, 399871, 520489};
        static const char *const text[] = {
                "755224", "287082", "359152", "969429", "338314",
                "254676", "287922", "162583", "399871", "520489"};
        (void)state;
        for (uint64_t c = 0; c < 10; c++) {
                uint32_t code = 0;
                char buf[TOTP_DIGITS_MAX + 1];
                assert_int_equal(totp_hotp(RFC_KEY, RFC_KEY_LEN, c, 6, &code),
                                 TOTP_OK);
                assert_int_equal(code, want[c]);
                totp_format(code, 6, buf);
                assert_string_equal(buf, text[c]);
        }
}

/* RFC 6238 appendix B: TOTP values of the SHA-1 mode, eight digits. */
static void test_rfc6238_sha1_vectors(void **state) {
        static const struct {
                int64_t time;
                uint64_t step;
                const char *code;
        } v[] = {
                {59, 0x1, "94287082"},
                {1111111109, 0x23523EC, "07081804"},
                {1111111111, 0x23523ED, "14050471"},
                {1234567890, 0x273EF07, "89005924"},
                {2000000000, 0x3F940AA, "69279037"},
                {20000000000, 0x27BC86AA, "65353130"},
        };
        (void)state;
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                uint32_t code = 0;
                char buf[TOTP_DIGITS_MAX + 1];
                assert_int_equal(totp_step(v[i].time, 30), v[i].step);
                assert_int_equal(
                        totp_at(RFC_KEY, RFC_KEY_LEN, v[i].time, 30, 8, &code),
                        TOTP_OK);
                totp_format(code, 8, buf);
                assert_string_equal(buf, v[i].code);
        }
}

/* Six digits are the last six of the eight (the same truncated value). */
static void test_six_digits_are_a_suffix(void **state) {
        uint32_t six = 0, eight = 0;
        (void)state;
        assert_int_equal(totp_at(RFC_KEY, RFC_KEY_LEN, 1111111109, 30, 6, &six),
                         TOTP_OK);
        assert_int_equal(
                totp_at(RFC_KEY, RFC_KEY_LEN, 1111111109, 30, 8, &eight),
                TOTP_OK);
        assert_int_equal(six, 81804);
        assert_int_equal(eight % 1000000, six);
}

static void test_hotp_refuses_bad_arguments(void **state) {
        uint32_t code = 0;
        uint8_t big[TOTP_KEY_MAX + 1];
        (void)state;
        memset(big, 'k', sizeof(big));
        assert_int_equal(totp_hotp(RFC_KEY, 0, 0, 6, &code), TOTP_BAD_ARGUMENT);
        assert_int_equal(totp_hotp(NULL, 20, 0, 6, &code), TOTP_BAD_ARGUMENT);
        assert_int_equal(totp_hotp(big, sizeof(big), 0, 6, &code),
                         TOTP_BAD_ARGUMENT);
        assert_int_equal(totp_hotp(big, TOTP_KEY_MAX, 0, 6, &code), TOTP_OK);
        assert_int_equal(totp_hotp(RFC_KEY, 20, 0, 5, &code),
                         TOTP_BAD_ARGUMENT);
        assert_int_equal(totp_hotp(RFC_KEY, 20, 0, 9, &code),
                         TOTP_BAD_ARGUMENT);
        assert_int_equal(totp_hotp(RFC_KEY, 20, 0, 6, NULL), TOTP_BAD_ARGUMENT);
        assert_int_equal(totp_at(RFC_KEY, 20, 59, 0, 6, &code),
                         TOTP_BAD_ARGUMENT);
        assert_int_equal(totp_step(-5, 30), 0);
        assert_string_equal(totp_strerror(TOTP_BAD_CODE),
                            "the code does not match");
        assert_string_equal(totp_strerror((totp_err_t)999), "unknown error");
}

/* ---------------------------------------------------------------------------
 * Verification
 * ------------------------------------------------------------------------ */

/* The six-digit code of step s under the RFC key. */
static void code_at_step(uint64_t s, char out[TOTP_DIGITS + 1]) {
        uint32_t v = 0;
        assert_int_equal(totp_hotp(RFC_KEY, RFC_KEY_LEN, s, TOTP_DIGITS, &v),
                         TOTP_OK);
        totp_format(v, TOTP_DIGITS, out);
}

static void test_verify_window(void **state) {
        const int64_t now = 1111111111; /* step 0x23523ED */
        const uint64_t s = totp_step(now, TOTP_PERIOD);
        char code[TOTP_DIGITS + 1];
        int64_t step = 0;
        (void)state;

        code_at_step(s, code);
        assert_int_equal(totp_verify(RFC_KEY, RFC_KEY_LEN, slice_of(code), now,
                                     1, TOTP_NO_STEP, &step),
                         TOTP_OK);
        assert_int_equal(step, (int64_t)s);
        assert_string_equal(code, "050471");

        /* One step either side is within a window of 1, not of 0. */
        code_at_step(s - 1, code);
        assert_int_equal(totp_verify(RFC_KEY, RFC_KEY_LEN, slice_of(code), now,
                                     1, TOTP_NO_STEP, &step),
                         TOTP_OK);
        assert_int_equal(step, (int64_t)s - 1);
        assert_int_equal(totp_verify(RFC_KEY, RFC_KEY_LEN, slice_of(code), now,
                                     0, TOTP_NO_STEP, &step),
                         TOTP_BAD_CODE);
        code_at_step(s + 1, code);
        assert_int_equal(totp_verify(RFC_KEY, RFC_KEY_LEN, slice_of(code), now,
                                     1, TOTP_NO_STEP, &step),
                         TOTP_OK);
        assert_int_equal(step, (int64_t)s + 1);

        /* Two steps away is outside. */
        code_at_step(s + 2, code);
        assert_int_equal(totp_verify(RFC_KEY, RFC_KEY_LEN, slice_of(code), now,
                                     1, TOTP_NO_STEP, NULL),
                         TOTP_BAD_CODE);
        code_at_step(s - 2, code);
        assert_int_equal(totp_verify(RFC_KEY, RFC_KEY_LEN, slice_of(code), now,
                                     1, TOTP_NO_STEP, NULL),
                         TOTP_BAD_CODE);

        /* At the very start of time there is no step -1. */
        code_at_step(0, code);
        assert_int_equal(totp_verify(RFC_KEY, RFC_KEY_LEN, slice_of(code), 5, 1,
                                     TOTP_NO_STEP, &step),
                         TOTP_OK);
        assert_int_equal(step, 0);
        assert_int_equal(totp_verify(RFC_KEY, RFC_KEY_LEN, slice_of(code), 5,
                                     11, TOTP_NO_STEP, &step),
                         TOTP_BAD_ARGUMENT);
}

/* A step at or below the last one used never matches again. */
static void test_verify_refuses_replay(void **state) {
        const int64_t now = 2000000000;
        const int64_t s = (int64_t)totp_step(now, TOTP_PERIOD);
        char code[TOTP_DIGITS + 1];
        int64_t step = 0;
        (void)state;

        code_at_step((uint64_t)s, code);
        assert_int_equal(totp_verify(RFC_KEY, RFC_KEY_LEN, slice_of(code), now,
                                     1, s - 1, &step),
                         TOTP_OK);
        assert_int_equal(step, s);
        assert_int_equal(totp_verify(RFC_KEY, RFC_KEY_LEN, slice_of(code), now,
                                     1, s, &step),
                         TOTP_BAD_CODE);
        assert_int_equal(totp_verify(RFC_KEY, RFC_KEY_LEN, slice_of(code), now,
                                     1, s + 1, &step),
                         TOTP_BAD_CODE);
        /* The previous step's code is refused once the current one was used,
         * the next step's is still good. */
        code_at_step((uint64_t)s - 1, code);
        assert_int_equal(totp_verify(RFC_KEY, RFC_KEY_LEN, slice_of(code), now,
                                     1, s, &step),
                         TOTP_BAD_CODE);
        code_at_step((uint64_t)s + 1, code);
        assert_int_equal(totp_verify(RFC_KEY, RFC_KEY_LEN, slice_of(code), now,
                                     1, s, &step),
                         TOTP_OK);
        assert_int_equal(step, s + 1);
}

static void test_verify_refuses_malformed_codes(void **state) {
        const int64_t now = 1234567890;
        char code[TOTP_DIGITS + 1], longer[TOTP_DIGITS + 2];
        static const char *const bad[] = {"",       "12345",  "1234567",
                                          "12345a", " 12345", "123 45",
                                          "-12345", "+12345", "１２３"};
        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(totp_verify(RFC_KEY, RFC_KEY_LEN,
                                             slice_of(bad[i]), now, 1,
                                             TOTP_NO_STEP, NULL),
                                 TOTP_BAD_CODE);
        assert_int_equal(totp_verify(RFC_KEY, RFC_KEY_LEN, SLICE_NULL, now, 1,
                                     TOTP_NO_STEP, NULL),
                         TOTP_BAD_CODE);
        /* The right code with a trailing byte, or cut short, is wrong. */
        code_at_step(totp_step(now, TOTP_PERIOD), code);
        memcpy(longer, code, TOTP_DIGITS);
        longer[TOTP_DIGITS] = '0';
        longer[TOTP_DIGITS + 1] = '\0';
        assert_int_equal(totp_verify(RFC_KEY, RFC_KEY_LEN, slice_of(longer),
                                     now, 1, TOTP_NO_STEP, NULL),
                         TOTP_BAD_CODE);
        assert_int_equal(totp_verify(RFC_KEY, RFC_KEY_LEN,
                                     (slice_t){code, TOTP_DIGITS - 1}, now, 1,
                                     TOTP_NO_STEP, NULL),
                         TOTP_BAD_CODE);
        /* Not NUL-terminated input: only len bytes are read. */
        memcpy(longer, code, TOTP_DIGITS);
        longer[TOTP_DIGITS] = 'x';
        assert_int_equal(totp_verify(RFC_KEY, RFC_KEY_LEN,
                                     (slice_t){longer, TOTP_DIGITS}, now, 1,
                                     TOTP_NO_STEP, NULL),
                         TOTP_OK);
        /* Another key's code does not pass. */
        {
                static const uint8_t other[] = "abcdefghijabcdefghij";
                assert_int_equal(totp_verify(other, 20, slice_of(code), now, 1,
                                             TOTP_NO_STEP, NULL),
                                 TOTP_BAD_CODE);
        }
}

/* ---------------------------------------------------------------------------
 * Base32
 * ------------------------------------------------------------------------ */

/* RFC 4648 section 10, without and with padding. */
static void test_base32_rfc4648_vectors(void **state) {
        static const struct {
                const char *plain, *b32, *padded;
        } v[] = {
                {"", "", ""},
                {"f", "MY", "MY======"},
                {"fo", "MZXQ", "MZXQ===="},
                {"foo", "MZXW6", "MZXW6==="},
                {"foob", "MZXW6YQ", "MZXW6YQ="},
                {"fooba", "MZXW6YTB", "MZXW6YTB"},
                {"foobar", "MZXW6YTBOI", "MZXW6YTBOI======"},
        };
        (void)state;
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                char text[64];
                uint8_t bytes[64];
                size_t n = 99;
                size_t plen = strlen(v[i].plain);
                assert_int_equal(totp_base32_len(plen), strlen(v[i].b32));
                assert_int_equal(totp_base32_encode((const uint8_t *)v[i].plain,
                                                    plen, text, sizeof(text)),
                                 TOTP_OK);
                assert_string_equal(text, v[i].b32);
                assert_int_equal(totp_base32_decode(slice_of(v[i].b32), bytes,
                                                    sizeof(bytes), &n),
                                 TOTP_OK);
                assert_int_equal(n, plen);
                assert_memory_equal(bytes, v[i].plain, plen);
                n = 99;
                assert_int_equal(totp_base32_decode(slice_of(v[i].padded),
                                                    bytes, sizeof(bytes), &n),
                                 TOTP_OK);
                assert_int_equal(n, plen);
                assert_memory_equal(bytes, v[i].plain, plen);
        }
}

static void test_base32_rfc_key(void **state) {
        char text[TOTP_SECRET_B32];
        uint8_t key[TOTP_SECRET_LEN];
        size_t n = 0;
        (void)state;
        assert_int_equal(totp_base32_len(TOTP_SECRET_LEN), TOTP_SECRET_B32 - 1);
        assert_int_equal(
                totp_base32_encode(RFC_KEY, RFC_KEY_LEN, text, sizeof(text)),
                TOTP_OK);
        assert_string_equal(text, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        /* Lower case, as people type it, decodes the same. */
        assert_int_equal(
                totp_base32_decode(slice_of("gezdgnbvgy3tqojqgezdgnbvgy3tqojq"),
                                   key, sizeof(key), &n),
                TOTP_OK);
        assert_int_equal(n, RFC_KEY_LEN);
        assert_memory_equal(key, RFC_KEY, RFC_KEY_LEN);
}

static void test_base32_round_trips(void **state) {
        uint8_t in[64], back[64];
        char text[128];
        (void)state;
        srand(4226);
        for (size_t len = 0; len <= sizeof(in); len++) {
                for (int round = 0; round < 20; round++) {
                        size_t n = 0;
                        for (size_t i = 0; i < len; i++)
                                in[i] = (uint8_t)(rand() & 0xff);
                        if (round == 0)
                                memset(in, 0xff, len);
                        if (round == 1)
                                memset(in, 0x00, len);
                        assert_int_equal(
                                totp_base32_encode(in, len, text, sizeof(text)),
                                TOTP_OK);
                        assert_int_equal(strlen(text), totp_base32_len(len));
                        assert_int_equal(totp_base32_decode(slice_of(text),
                                                            back, sizeof(back),
                                                            &n),
                                         TOTP_OK);
                        assert_int_equal(n, len);
                        assert_memory_equal(back, in, len);
                }
        }
}

static void test_base32_refuses_bad_input(void **state) {
        static const char *const bad[] = {
                "M",              /* one character is no byte */
                "MZX",            /* three neither */
                "MZXW6Y",         /* nor six */
                "MZ",             /* "f" is MY: Z leaves non-zero bits */
                "MZXR",           /* "fo" is MZXQ */
                "MZXW7",          /* "foo" is MZXW6 */
                "MZ1Q",           /* 1 is not in the alphabet */
                "MZ0Q",           /* nor 0 */
                "MZ8Q",           /* nor 8 */
                "MZ Q",           /* nor a space */
                "MZ-Q",           /* nor a dash */
                "MZXQ\n",         /* nor a newline */
                "MY=",            /* padding short of the group */
                "MY=======",      /* padding past the group */
                "MZXQ==",         /* padding short */
                "MZXW6YTB=",      /* padding after a whole group */
                "========",       /* padding alone */
                "M=Y=====",       /* padding inside */
                "MZ=XQ===",       /* padding inside */
                "MZXW6Y\xc3\xa9", /* a non-ASCII letter */
        };
        uint8_t out[32];
        size_t n = 77;
        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_int_equal(totp_base32_decode(slice_of(bad[i]), out,
                                                    sizeof(out), &n),
                                 TOTP_BAD_BASE32);
        }
        assert_int_equal(n, 77); /* untouched on failure */
        /* A NUL inside the slice is a bad character, not an end. */
        assert_int_equal(
                totp_base32_decode((slice_t){"MZ\0Q", 4}, out, sizeof(out), &n),
                TOTP_BAD_BASE32);
        /* Too small an output. */
        assert_int_equal(totp_base32_decode(slice_of("MZXW6YTBOI"), out, 5, &n),
                         TOTP_NO_SPACE);
        assert_int_equal(totp_base32_decode(slice_of("MZXW6YTBOI"), out, 6, &n),
                         TOTP_OK);
        assert_int_equal(n, 6);
}

static void test_base32_encode_needs_room(void **state) {
        char text[9];
        (void)state;
        /* "fooba" is eight characters and a NUL. */
        assert_int_equal(
                totp_base32_encode((const uint8_t *)"fooba", 5, text, 8),
                TOTP_NO_SPACE);
        assert_int_equal(
                totp_base32_encode((const uint8_t *)"fooba", 5, text, 9),
                TOTP_OK);
        assert_string_equal(text, "MZXW6YTB");
        assert_int_equal(totp_base32_encode((const uint8_t *)"", 0, text, 1),
                         TOTP_OK);
        assert_string_equal(text, "");
        assert_int_equal(totp_base32_encode((const uint8_t *)"", 0, text, 0),
                         TOTP_NO_SPACE);
}

/* ---------------------------------------------------------------------------
 * URIs
 * ------------------------------------------------------------------------ */

static void test_uri_escape(void **state) {
        static const struct {
                const char *in, *out;
        } v[] = {
                {"", ""},
                {"Omnify", "Omnify"},
                {"AZaz09-._~", "AZaz09-._~"},
                {"Omnify Inc.", "Omnify%20Inc."},
                {"ann+x@example.com", "ann%2Bx%40example.com"},
                {"a:b/c?d&e=f#g%h", "a%3Ab%2Fc%3Fd%26e%3Df%23g%25h"},
                {"caf\xc3\xa9", "caf%C3%A9"},
                {"\"<>\\^`{|}", "%22%3C%3E%5C%5E%60%7B%7C%7D"},
                {"\x7f\x01", "%7F%01"},
        };
        char out[128];
        size_t n = 0;
        (void)state;
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
                assert_int_equal(totp_uri_escape(slice_of(v[i].in), out,
                                                 sizeof(out), &n),
                                 TOTP_OK);
                assert_string_equal(out, v[i].out);
                assert_int_equal(n, strlen(v[i].out));
        }
        /* Bytes after a NUL inside the slice are escaped too. */
        assert_int_equal(
                totp_uri_escape((slice_t){"a\0b", 3}, out, sizeof(out), &n),
                TOTP_OK);
        assert_string_equal(out, "a%00b");
        /* Room for exactly the text and its NUL, and one byte less. */
        assert_int_equal(totp_uri_escape(slice_of("a b"), out, 6, &n), TOTP_OK);
        assert_string_equal(out, "a%20b");
        assert_int_equal(totp_uri_escape(slice_of("a b"), out, 5, &n),
                         TOTP_NO_SPACE);
        assert_string_equal(out, "");
        assert_int_equal(totp_uri_escape(slice_of("ab"), out, 2, &n),
                         TOTP_NO_SPACE);
        assert_int_equal(totp_uri_escape(slice_of("a"), out, 0, &n),
                         TOTP_NO_SPACE);
}

static void test_uri(void **state) {
        char out[512];
        (void)state;
        assert_int_equal(
                totp_uri(slice_of("Omnify"), slice_of("ann@example.com"),
                         "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", out, sizeof(out)),
                TOTP_OK);
        assert_string_equal(out,
                            "otpauth://totp/Omnify:ann%40example.com"
                            "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
                            "&issuer=Omnify&algorithm=SHA1&digits=6&period=30");

        /* An issuer with a space, a colon and an ampersand cannot break the
         * label or the query. */
        assert_int_equal(totp_uri(slice_of("Acme: R&D"), slice_of("b+c@x.io"),
                                  "MZXW6YTB", out, sizeof(out)),
                         TOTP_OK);
        assert_string_equal(out, "otpauth://totp/Acme%3A%20R%26D:b%2Bc%40x.io"
                                 "?secret=MZXW6YTB&issuer=Acme%3A%20R%26D"
                                 "&algorithm=SHA1&digits=6&period=30");

        /* Too small: an error and an empty string, never a cut URI. */
        {
                size_t full = strlen(out);
                char small[256];
                assert_int_equal(totp_uri(slice_of("Acme: R&D"),
                                          slice_of("b+c@x.io"), "MZXW6YTB",
                                          small, full),
                                 TOTP_NO_SPACE);
                assert_string_equal(small, "");
                assert_int_equal(totp_uri(slice_of("Acme: R&D"),
                                          slice_of("b+c@x.io"), "MZXW6YTB",
                                          small, full + 1),
                                 TOTP_OK);
                assert_string_equal(small, out);
                for (size_t size = 1; size < full; size += 7) {
                        assert_int_equal(totp_uri(slice_of("Acme: R&D"),
                                                  slice_of("b+c@x.io"),
                                                  "MZXW6YTB", small, size),
                                         TOTP_NO_SPACE);
                        assert_string_equal(small, "");
                }
        }
        assert_int_equal(
                totp_uri(slice_of("x"), slice_of("y"), NULL, out, sizeof(out)),
                TOTP_BAD_ARGUMENT);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rfc4226_hotp_vectors),
                cmocka_unit_test(test_rfc6238_sha1_vectors),
                cmocka_unit_test(test_six_digits_are_a_suffix),
                cmocka_unit_test(test_hotp_refuses_bad_arguments),
                cmocka_unit_test(test_verify_window),
                cmocka_unit_test(test_verify_refuses_replay),
                cmocka_unit_test(test_verify_refuses_malformed_codes),
                cmocka_unit_test(test_base32_rfc4648_vectors),
                cmocka_unit_test(test_base32_rfc_key),
                cmocka_unit_test(test_base32_round_trips),
                cmocka_unit_test(test_base32_refuses_bad_input),
                cmocka_unit_test(test_base32_encode_needs_room),
                cmocka_unit_test(test_uri_escape),
                cmocka_unit_test(test_uri),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
