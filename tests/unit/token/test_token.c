/*
 * test_token.c - access tokens: what the edge accepts and what it refuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jwt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

static const token_keys_t keys = {
        .secret = "0123456789abcdef0123456789abcdef-test-secret",
        .issuer = "omnify",
        .audience = "omnify-api",
        .kid = "k1",
};

static const char *USER = "0193a4c2-7b1d-7c3e-9f00-123456789abc";
static const char *TENANT = "0193a4c2-7b1d-7c3e-9f00-cba987654321";

static char *make(time_t now, int ttl) {
        token_claims_t c = {0};
        strcpy(c.sub, USER);
        strcpy(c.tid, TENANT);
        strcpy(c.roles, "owner,admin");
        return token_sign(&keys, &c, now, ttl);
}

static void test_round_trip(void **state) {
        (void)state;
        time_t now = time(NULL);
        char *t = make(now, 900);
        token_claims_t c;
        assert_non_null(t);
        assert_int_equal(token_verify(&keys, slice_of(t), now, &c), TOKEN_OK);
        assert_string_equal(c.sub, USER);
        assert_string_equal(c.tid, TENANT);
        assert_string_equal(c.roles, "owner,admin");
        assert_int_equal(c.exp, (int64_t)now + 900);
        free(t);
}

static void test_expired_and_not_yet(void **state) {
        (void)state;
        time_t now = time(NULL);
        char *t = make(now - 1000, 900); /* expired 100 s ago */
        token_claims_t c;
        assert_int_equal(token_verify(&keys, slice_of(t), now, &c),
                         TOKEN_EXPIRED);
        free(t);
        t = make(now + 600, 900); /* valid only in 10 minutes */
        assert_int_equal(token_verify(&keys, slice_of(t), now, &c),
                         TOKEN_NOT_YET_VALID);
        free(t);
}

static void test_tampered(void **state) {
        (void)state;
        time_t now = time(NULL);
        char *t = make(now, 900);
        token_claims_t c;
        char *dot = strchr(t, '.');
        /* Flip a character of the payload. */
        dot[5] = dot[5] == 'A' ? 'B' : 'A';
        assert_int_not_equal(token_verify(&keys, slice_of(t), now, &c),
                             TOKEN_OK);
        free(t);
}

static void test_wrong_key_issuer_audience_kid(void **state) {
        (void)state;
        time_t now = time(NULL);
        char *t = make(now, 900);
        token_claims_t c;
        token_keys_t k = keys;
        k.secret = "another-secret-another-secret-another!!";
        assert_int_equal(token_verify(&k, slice_of(t), now, &c),
                         TOKEN_BAD_SIGNATURE);
        k = keys;
        k.issuer = "someone-else";
        assert_int_equal(token_verify(&k, slice_of(t), now, &c),
                         TOKEN_BAD_ISSUER);
        k = keys;
        k.audience = "other-api";
        assert_int_equal(token_verify(&k, slice_of(t), now, &c),
                         TOKEN_BAD_AUDIENCE);
        k = keys;
        k.kid = "k2";
        assert_int_equal(token_verify(&k, slice_of(t), now, &c), TOKEN_BAD_KID);
        free(t);
}

/* alg "none": the classic bypass. Must be refused although it carries
 * valid-looking claims. */
static void test_alg_none_refused(void **state) {
        (void)state;
        time_t now = time(NULL);
        jwt_t *jwt = NULL;
        char *t;
        token_claims_t c;
        assert_int_equal(jwt_new(&jwt), 0);
        jwt_set_alg(jwt, JWT_ALG_NONE, NULL, 0);
        jwt_add_header(jwt, "kid", "k1");
        jwt_add_grant(jwt, "iss", "omnify");
        jwt_add_grant(jwt, "aud", "omnify-api");
        jwt_add_grant(jwt, "sub", USER);
        jwt_add_grant(jwt, "tid", TENANT);
        jwt_add_grant_int(jwt, "exp", (long)now + 900);
        t = jwt_encode_str(jwt);
        assert_non_null(t);
        assert_int_not_equal(token_verify(&keys, slice_of(t), now, &c),
                             TOKEN_OK);
        /* Also with a fake signature part appended. */
        {
                char buf[4096];
                snprintf(buf, sizeof(buf), "%sAAAA", t);
                assert_int_not_equal(
                        token_verify(&keys, slice_of(buf), now, &c), TOKEN_OK);
        }
        free(t);
        jwt_free(jwt);
}

/* HS512 with the right secret is still not the pinned algorithm. */
static void test_other_hmac_refused(void **state) {
        (void)state;
        time_t now = time(NULL);
        jwt_t *jwt = NULL;
        char *t;
        token_claims_t c;
        assert_int_equal(jwt_new(&jwt), 0);
        jwt_set_alg(jwt, JWT_ALG_HS512, (const unsigned char *)keys.secret,
                    (int)strlen(keys.secret));
        jwt_add_header(jwt, "kid", "k1");
        jwt_add_grant(jwt, "iss", "omnify");
        jwt_add_grant(jwt, "aud", "omnify-api");
        jwt_add_grant(jwt, "sub", USER);
        jwt_add_grant(jwt, "tid", TENANT);
        jwt_add_grant_int(jwt, "exp", (long)now + 900);
        t = jwt_encode_str(jwt);
        assert_int_not_equal(token_verify(&keys, slice_of(t), now, &c),
                             TOKEN_OK);
        free(t);
        jwt_free(jwt);
}

/* Regression (found by fuzz_token): exp at the top of the range overflowed
 * exp + skew. */
static void test_huge_exp_no_overflow(void **state) {
        (void)state;
        time_t now = time(NULL);
        jwt_t *jwt = NULL;
        char *t;
        token_claims_t c;
        assert_int_equal(jwt_new(&jwt), 0);
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)keys.secret,
                    (int)strlen(keys.secret));
        jwt_add_header(jwt, "kid", "k1");
        jwt_add_grant(jwt, "iss", "omnify");
        jwt_add_grant(jwt, "aud", "omnify-api");
        jwt_add_grant(jwt, "sub", USER);
        jwt_add_grant(jwt, "tid", TENANT);
        jwt_add_grant_int(jwt, "exp", LONG_MAX);
        jwt_add_grant_int(jwt, "nbf", LONG_MIN);
        t = jwt_encode_str(jwt);
        assert_int_equal(token_verify(&keys, slice_of(t), now, &c), TOKEN_OK);
        free(t);
        jwt_free(jwt);
}

static void test_malformed(void **state) {
        (void)state;
        token_claims_t c;
        char big[TOKEN_MAX_LEN + 10];
        time_t now = time(NULL);
        assert_int_equal(token_verify(&keys, slice_of(""), now, &c),
                         TOKEN_MALFORMED);
        assert_int_equal(token_verify(&keys, slice_of("abc"), now, &c),
                         TOKEN_MALFORMED);
        assert_int_equal(token_verify(&keys, slice_of("a.b"), now, &c),
                         TOKEN_MALFORMED);
        assert_int_equal(token_verify(&keys, slice_of("a.b.c.d"), now, &c),
                         TOKEN_MALFORMED);
        assert_int_equal(token_verify(&keys, slice_of("a b.c.d"), now, &c),
                         TOKEN_MALFORMED);
        assert_int_not_equal(token_verify(&keys, slice_of("a.b.c"), now, &c),
                             TOKEN_OK);
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        big[10] = '.';
        big[20] = '.';
        assert_int_equal(token_verify(&keys, slice_of(big), now, &c),
                         TOKEN_MALFORMED);
}

/* Claims that become Kafka headers must be ids, nothing else. */
static void test_sub_must_be_an_id(void **state) {
        (void)state;
        time_t now = time(NULL);
        token_claims_t in = {0}, c;
        char *t;
        strcpy(in.sub, "admin\r\nx-injected: 1");
        strcpy(in.tid, TENANT);
        t = token_sign(&keys, &in, now, 900);
        assert_non_null(t);
        assert_int_equal(token_verify(&keys, slice_of(t), now, &c),
                         TOKEN_MISSING_CLAIM);
        free(t);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_expired_and_not_yet),
                cmocka_unit_test(test_tampered),
                cmocka_unit_test(test_wrong_key_issuer_audience_kid),
                cmocka_unit_test(test_alg_none_refused),
                cmocka_unit_test(test_other_hmac_refused),
                cmocka_unit_test(test_huge_exp_no_overflow),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_sub_must_be_an_id),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
