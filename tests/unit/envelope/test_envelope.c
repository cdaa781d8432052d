/*
 * test_envelope.c - unit tests of the message envelope (shared/envelope.c).
 *
 * Header lists are built with rd_kafka_headers_new()/rd_kafka_header_add(),
 * so no broker is needed. Each malformed-header test starts from a valid set
 * and changes exactly one header, so a rejection can only come from that
 * header. The value checks include a loop over random bytes that must never
 * crash (run it under ASan/UBSan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "msgid.h"

#define ID_OK "01890a5d-ac96-774b-bcce-b302099a8057"
#define CORR_OK "01890a5d-ac96-7fff-8000-000000000001"

/* {"a": 1}: a one-entry msgpack map. */
static const char map_ok[] = "\x81\xa1"
                             "a\x01";
#define MAP_OK ((slice_t){map_ok, sizeof(map_ok) - 1})

static char err[256];

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static const struct {
        const char *name;
        const char *value;
} base_headers[] = {
        {"id", ID_OK},
        {"type", "auth.signup"},
        {"schema-version", "1"},
        {"created-at", "1700000000000"},
};
#define N_BASE (sizeof(base_headers) / sizeof(base_headers[0]))

/*
 * The valid base headers with `name` replaced by (value, len) — or left out
 * when value is NULL — or appended when name is not a base header.
 */
static rd_kafka_headers_t *headers_with(const char *name, const char *value,
                                        size_t len) {
        rd_kafka_headers_t *h = rd_kafka_headers_new(8);
        int replaced = 0;
        for (size_t i = 0; i < N_BASE; i++) {
                if (name && strcmp(name, base_headers[i].name) == 0) {
                        replaced = 1;
                        if (value)
                                rd_kafka_header_add(h, name, -1, value,
                                                    (ssize_t)len);
                        continue;
                }
                rd_kafka_header_add(h, base_headers[i].name, -1,
                                    base_headers[i].value, -1);
        }
        if (name && !replaced && value)
                rd_kafka_header_add(h, name, -1, value, (ssize_t)len);
        return h;
}

/* The headers of the last decode_with(): env points into them, so they live
 * until the next call or the end of the test. */
static rd_kafka_headers_t *last_hdrs;

static int teardown(void **state) {
        (void)state;
        if (last_hdrs)
                rd_kafka_headers_destroy(last_hdrs);
        last_hdrs = NULL;
        return 0;
}

/* Decode the base headers with one header changed (see headers_with). */
static env_err_t decode_with(const char *name, const char *value, env_t *env) {
        teardown(NULL);
        last_hdrs = headers_with(name, value, value ? strlen(value) : 0);
        memset(err, 0, sizeof(err));
        return env_decode_headers(last_hdrs, SLICE_NULL, MAP_OK, env, err,
                                  sizeof(err));
}

/* Expect the header `name` with `value` to be rejected with `want`, and the
 * message to name the header. */
static void expect_bad(const char *name, const char *value, env_err_t want) {
        env_t env;
        char quoted[64];
        env_err_t got = decode_with(name, value, &env);
        if (got != want)
                fail_msg("header %s='%s': got %d (%s), want %d", name,
                         value ? value : "(absent)", got, err, want);
        snprintf(quoted, sizeof(quoted), "'%s'", name);
        assert_non_null(strstr(err, quoted));
}

static void expect_ok(const char *name, const char *value) {
        env_t env;
        env_err_t got = decode_with(name, value, &env);
        if (got != ENV_OK)
                fail_msg("header %s='%s': got %d (%s), want ENV_OK", name,
                         value, got, err);
}

static void assert_slice(slice_t s, const char *want) {
        if (!slice_eq(s, want))
                fail_msg("slice '%.*s' != '%s'", (int)s.len, s.ptr ? s.ptr : "",
                         want);
}

/* ------------------------------------------------------------------------ */
/* Round trip                                                                */
/* ------------------------------------------------------------------------ */

static void test_round_trip_every_field(void **state) {
        env_t in, out;
        rd_kafka_headers_t *h;
        (void)state;
        memset(&in, 0, sizeof(in));
        in.id = slice_of(ID_OK);
        in.type = slice_of("auth.signup_v2");
        in.schema_version = 42;
        in.created_at_ms = 1712345678901;
        in.correlation_id = slice_of(CORR_OK);
        in.reply_to = slice_of("omnify.edge.replies:7");
        in.tenant = slice_of("tenant-1");
        in.user = slice_of("user-9");
        in.roles = slice_of("admin,member");
        in.traceparent = slice_of(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        in.idempotency_key = slice_of("idem-123");
        in.status = 201;
        in.error = slice_of("handler failed: timeout");
        in.content_type = slice_of("text/csv; charset=utf-8");
        in.key = slice_of("partition-key");
        in.value = MAP_OK;

        h = env_headers(&in);
        assert_non_null(h);
        assert_int_equal(
                env_decode_headers(h, in.key, in.value, &out, err, sizeof(err)),
                ENV_OK);
        assert_slice(out.id, ID_OK);
        assert_slice(out.type, "auth.signup_v2");
        assert_int_equal(out.schema_version, 42);
        assert_int_equal(out.created_at_ms, 1712345678901);
        assert_slice(out.correlation_id, CORR_OK);
        assert_slice(out.reply_to, "omnify.edge.replies:7");
        assert_slice(out.tenant, "tenant-1");
        assert_slice(out.user, "user-9");
        assert_slice(out.roles, "admin,member");
        assert_slice(out.traceparent,
                     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_slice(out.idempotency_key, "idem-123");
        assert_int_equal(out.status, 201);
        assert_slice(out.error, "handler failed: timeout");
        assert_slice(out.content_type, "text/csv; charset=utf-8");
        assert_ptr_equal(out.key.ptr, in.key.ptr);
        assert_int_equal(out.key.len, in.key.len);
        assert_ptr_equal(out.value.ptr, in.value.ptr);
        assert_int_equal(out.value.len, in.value.len);
        rd_kafka_headers_destroy(h);
}

static void test_round_trip_minimal(void **state) {
        env_t in, out;
        rd_kafka_headers_t *h;
        const char *name;
        const void *val;
        size_t size;
        (void)state;
        memset(&in, 0, sizeof(in));
        in.id = slice_of(ID_OK);
        in.type = slice_of("ping");
        in.created_at_ms = 0;
        /* schema_version 0 is written as 1; empty fields are left out. */
        h = env_headers(&in);
        assert_int_equal(rd_kafka_header_cnt(h), 4);
        assert_int_equal(rd_kafka_header_get_last(h, "status", &val, &size),
                         RD_KAFKA_RESP_ERR__NOENT);
        assert_int_equal(rd_kafka_header_get_last(h, "tenant", &val, &size),
                         RD_KAFKA_RESP_ERR__NOENT);
        assert_int_equal(rd_kafka_header_get_all(h, 2, &name, &val, &size),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        assert_string_equal(name, "schema-version");
        assert_int_equal(size, 1);
        assert_memory_equal(val, "1", 1);
        assert_int_equal(env_decode_headers(h, SLICE_NULL, MAP_OK, &out, err,
                                            sizeof(err)),
                         ENV_OK);
        assert_int_equal(out.schema_version, 1);
        assert_int_equal(out.created_at_ms, 0);
        assert_int_equal(out.status, 0);
        assert_null(out.tenant.ptr);
        assert_null(out.correlation_id.ptr);
        assert_null(out.reply_to.ptr);
        assert_null(out.key.ptr);
        rd_kafka_headers_destroy(h);
}

static void test_decode_uppercase_id(void **state) {
        (void)state;
        /* msgid_parse accepts either case of hex. */
        expect_ok("id", "01890A5D-AC96-774B-BCCE-B302099A8057");
}

/* ------------------------------------------------------------------------ */
/* Required headers                                                          */
/* ------------------------------------------------------------------------ */

static void test_missing_required_headers(void **state) {
        (void)state;
        for (size_t i = 0; i < N_BASE; i++)
                expect_bad(base_headers[i].name, NULL, ENV_MISSING_HEADER);
}

static void test_no_headers_at_all(void **state) {
        env_t env;
        rd_kafka_headers_t *h = rd_kafka_headers_new(0);
        (void)state;
        assert_int_equal(env_decode_headers(NULL, SLICE_NULL, MAP_OK, &env, err,
                                            sizeof(err)),
                         ENV_MISSING_HEADER);
        assert_non_null(strstr(err, "'id'"));
        assert_int_equal(env_decode_headers(h, SLICE_NULL, MAP_OK, &env, err,
                                            sizeof(err)),
                         ENV_MISSING_HEADER);
        assert_non_null(strstr(err, "'id'"));
        /* No errstr is fine too. */
        assert_int_equal(
                env_decode_headers(h, SLICE_NULL, MAP_OK, &env, NULL, 0),
                ENV_MISSING_HEADER);
        rd_kafka_headers_destroy(h);
}

/* ------------------------------------------------------------------------ */
/* Malformed header values                                                   */
/* ------------------------------------------------------------------------ */

static void test_bad_id(void **state) {
        static const char *bad[] = {
                "not-a-uuid",
                "01890a5d-ac96-774b-bcce-b302099a805",   /* 35 chars */
                "01890a5d-ac96-774b-bcce-b302099a80577", /* 37 chars */
                "01890a5dac96774bbccebb302099a8057000",  /* no dashes */
                "01890a5d-ac96-774b-bcce-b302099a805g",  /* not hex */
                "01890a5d+ac96-774b-bcce-b302099a8057",
                " 1890a5d-ac96-774b-bcce-b302099a8057",
                "",
        };
        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                expect_bad("id", bad[i], ENV_BAD_HEADER);
}

static void test_bad_type(void **state) {
        static const char *bad[] = {"Auth.signup",       "auth signup",
                                    "auth-signup",       "auth/signup",
                                    "auth.signup\n",     "AUTH.SIGNUP",
                                    "auth.sign\xc3\xbcp"};
        env_t env;
        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                expect_bad("type", bad[i], ENV_BAD_HEADER);
        /* An empty type is as good as none. */
        assert_int_not_equal(decode_with("type", "", &env), ENV_OK);
        assert_non_null(strstr(err, "'type'"));
        expect_ok("type", "a");
        expect_ok("type", "integrations.webhook_received.v2");
}

static void test_bad_schema_version(void **state) {
        static const char *bad[] = {
                "0",
                "-1",
                "+1",
                " 1",
                "1 ",
                "1.0",
                "abc",
                "1000001",
                "0x10",
                "",
                "1e3",
                "99999999999999999999", /* 20 digits */
                "9223372036854775807",  /* INT64_MAX */
                "4294967297",           /* wraps to 1 in 32 bits */
        };
        env_t env;
        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                expect_bad("schema-version", bad[i], ENV_BAD_HEADER);
        assert_int_equal(decode_with("schema-version", "1000000", &env),
                         ENV_OK);
        assert_int_equal(env.schema_version, 1000000);
        assert_int_equal(decode_with("schema-version", "007", &env), ENV_OK);
        assert_int_equal(env.schema_version, 7);
}

static void test_bad_created_at(void **state) {
        static const char *bad[] = {
                "-1",
                "-1700000000000",
                "yesterday",
                "",
                "1.5",
                "1700000000000Z",
                "1e12",
                "4611686018427387904",  /* INT64_MAX / 2 + 1 */
                "99999999999999999999", /* 20 digits */
        };
        env_t env;
        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                expect_bad("created-at", bad[i], ENV_BAD_HEADER);
        assert_int_equal(decode_with("created-at", "4611686018427387903", &env),
                         ENV_OK);
        assert_int_equal(env.created_at_ms, INT64_MAX / 2);
        assert_int_equal(decode_with("created-at", "0", &env), ENV_OK);
        assert_int_equal(env.created_at_ms, 0);
}

/* Regression: 19 decimal digits can exceed INT64_MAX; the parser must reject
 * them without signed overflow (UBSan aborts on it). */
static void test_created_at_19_digits_no_overflow(void **state) {
        (void)state;
        expect_bad("created-at", "9999999999999999999", ENV_BAD_HEADER);
        expect_bad("created-at", "9223372036854775808", ENV_BAD_HEADER);
        expect_bad("status", "9999999999999999999", ENV_BAD_HEADER);
        expect_bad("schema-version", "9999999999999999999", ENV_BAD_HEADER);
}

static void test_bad_status(void **state) {
        static const char *bad[] = {"99",   "600",  "abc", "",    "0",
                                    "-200", "2000", "20O", "200 "};
        env_t env;
        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                expect_bad("status", bad[i], ENV_BAD_HEADER);
        assert_int_equal(decode_with("status", "100", &env), ENV_OK);
        assert_int_equal(env.status, 100);
        assert_int_equal(decode_with("status", "599", &env), ENV_OK);
        assert_int_equal(env.status, 599);
}

/* The edge answers with this header as Content-Type: nothing that could
 * split or end the header line, and the shape of a media type. */
static void test_content_type(void **state) {
        static const char *bad[] = {
                "",           "csv",       "text/",
                "/csv",       "text /csv", "text/csv\r\nSet-Cookie: a=b",
                "text/csv\n", "text/\x7f", "text/;charset=utf-8"};
        static const char *good[] = {"text/csv", "application/json",
                                     "text/csv; charset=utf-8",
                                     "application/vnd.ms-excel"};
        env_t env;
        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                expect_bad("content-type", bad[i], ENV_BAD_HEADER);
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                assert_int_equal(decode_with("content-type", good[i], &env),
                                 ENV_OK);
                assert_slice(env.content_type, good[i]);
        }
        assert_int_equal(decode_with(NULL, NULL, &env), ENV_OK);
        assert_int_equal(env.content_type.len, 0);
}

static void test_bad_correlation_id(void **state) {
        env_t env;
        (void)state;
        expect_bad("correlation-id", "req-123", ENV_BAD_HEADER);
        expect_bad("correlation-id", "01890a5d-ac96-774b-bcce-b302099a80zz",
                   ENV_BAD_HEADER);
        expect_bad("correlation-id", "", ENV_BAD_HEADER);
        assert_int_equal(decode_with("correlation-id", CORR_OK, &env), ENV_OK);
        assert_slice(env.correlation_id, CORR_OK);
}

static void test_bad_reply_to(void **state) {
        static const char *bad[] = {
                "omnify.edge.replies",    /* no colon */
                "omnify.edge.replies:",   /* no partition */
                "omnify.edge.replies:x",  /* not a number */
                "omnify.edge.replies:-1", /* negative */
                "omnify.edge.replies:100001",
                "omnify.edge.replies: 1",
                ":0",            /* empty topic */
                "omnify edge:0", /* space */
                "omnify/edge:0",
                "a:b:0", /* colon inside the topic */
                "",
        };
        env_t env;
        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                expect_bad("reply-to", bad[i], ENV_BAD_HEADER);
        assert_int_equal(decode_with("reply-to", "omnify.edge.replies:0", &env),
                         ENV_OK);
        assert_slice(env.reply_to, "omnify.edge.replies:0");
}

static void test_duplicate_known_header(void **state) {
        static const char *names[] = {"id",         "type",   "schema-version",
                                      "created-at", "tenant", "status"};
        static const char *values[] = {ID_OK,           "auth.signup", "1",
                                       "1700000000000", "t1",          "200"};
        (void)state;
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                rd_kafka_headers_t *h = headers_with(NULL, NULL, 0);
                env_t env;
                char quoted[64];
                /* Added twice for the non-base ones, once more for the base. */
                if (strcmp(names[i], "tenant") == 0 ||
                    strcmp(names[i], "status") == 0)
                        rd_kafka_header_add(h, names[i], -1, values[i], -1);
                rd_kafka_header_add(h, names[i], -1, values[i], -1);
                assert_int_equal(env_decode_headers(h, SLICE_NULL, MAP_OK, &env,
                                                    err, sizeof(err)),
                                 ENV_BAD_HEADER);
                snprintf(quoted, sizeof(quoted), "'%s'", names[i]);
                assert_non_null(strstr(err, quoted));
                rd_kafka_headers_destroy(h);
        }
}

static void test_duplicate_empty_header(void **state) {
        rd_kafka_headers_t *h = headers_with(NULL, NULL, 0);
        env_t env;
        (void)state;
        /* A NULL-valued header followed by a forged one is a duplicate. */
        rd_kafka_header_add(h, "tenant", -1, NULL, 0);
        rd_kafka_header_add(h, "tenant", -1, "forged", -1);
        assert_int_equal(env_decode_headers(h, SLICE_NULL, MAP_OK, &env, err,
                                            sizeof(err)),
                         ENV_BAD_HEADER);
        assert_non_null(strstr(err, "'tenant'"));
        rd_kafka_headers_destroy(h);
}

static void test_null_valued_optional_header(void **state) {
        rd_kafka_headers_t *h = headers_with(NULL, NULL, 0);
        env_t env;
        (void)state;
        rd_kafka_header_add(h, "roles", -1, NULL, 0);
        assert_int_equal(env_decode_headers(h, SLICE_NULL, MAP_OK, &env, err,
                                            sizeof(err)),
                         ENV_OK);
        assert_int_equal(env.roles.len, 0);
        rd_kafka_headers_destroy(h);
}

static void test_oversized_header(void **state) {
        char big[1026];
        rd_kafka_headers_t *h;
        env_t env;
        (void)state;
        memset(big, 'r', sizeof(big));

        h = headers_with("roles", big, 1025);
        assert_int_equal(env_decode_headers(h, SLICE_NULL, MAP_OK, &env, err,
                                            sizeof(err)),
                         ENV_BAD_HEADER);
        assert_non_null(strstr(err, "'roles'"));
        rd_kafka_headers_destroy(h);

        /* 1024 is the limit itself. */
        h = headers_with("roles", big, 1024);
        assert_int_equal(env_decode_headers(h, SLICE_NULL, MAP_OK, &env, err,
                                            sizeof(err)),
                         ENV_OK);
        assert_int_equal(env.roles.len, 1024);
        rd_kafka_headers_destroy(h);

        /* Required headers too. */
        h = headers_with("type", big, 1025);
        assert_int_equal(env_decode_headers(h, SLICE_NULL, MAP_OK, &env, err,
                                            sizeof(err)),
                         ENV_BAD_HEADER);
        assert_non_null(strstr(err, "'type'"));
        rd_kafka_headers_destroy(h);
}

static void test_unknown_headers_ignored(void **state) {
        static char huge[8192];
        rd_kafka_headers_t *h = headers_with(NULL, NULL, 0);
        env_t env;
        (void)state;
        memset(huge, 'x', sizeof(huge));
        rd_kafka_header_add(h, "x-custom", -1, "anything", -1);
        rd_kafka_header_add(h, "x-custom", -1, "twice", -1);
        rd_kafka_header_add(h, "x-huge", -1, huge, sizeof(huge));
        rd_kafka_header_add(h, "ID", -1, "not checked: names are exact", -1);
        rd_kafka_header_add(h, "x-null", -1, NULL, 0);
        assert_int_equal(env_decode_headers(h, SLICE_NULL, MAP_OK, &env, err,
                                            sizeof(err)),
                         ENV_OK);
        assert_slice(env.id, ID_OK);
        rd_kafka_headers_destroy(h);
}

static void test_empty_value(void **state) {
        rd_kafka_headers_t *h = headers_with(NULL, NULL, 0);
        env_t env;
        (void)state;
        assert_int_equal(env_decode_headers(h, SLICE_NULL, SLICE_NULL, &env,
                                            err, sizeof(err)),
                         ENV_BAD_VALUE);
        assert_int_equal(env_decode_headers(h, SLICE_NULL, (slice_t){map_ok, 0},
                                            &env, err, sizeof(err)),
                         ENV_BAD_VALUE);
        rd_kafka_headers_destroy(h);
}

static void test_strerror(void **state) {
        (void)state;
        assert_string_equal(env_strerror(ENV_OK), "ok");
        assert_string_equal(env_strerror(ENV_BAD_VALUE),
                            "the value is not a msgpack map");
        assert_non_null(env_strerror((env_err_t)1000));
        assert_non_null(env_strerror((env_err_t)-1));
}

/* ------------------------------------------------------------------------ */
/* env_unpack                                                                */
/* ------------------------------------------------------------------------ */

static env_err_t unpack_bytes(const void *bytes, size_t len,
                              msgpack_object_type *type) {
        env_t env;
        msgpack_zone zone;
        msgpack_object obj;
        env_err_t e;
        memset(&env, 0, sizeof(env));
        env.value = (slice_t){bytes, len};
        assert_true(msgpack_zone_init(&zone, 1024));
        e = env_unpack(&env, &zone, &obj);
        if (e == ENV_OK && type)
                *type = obj.type;
        msgpack_zone_destroy(&zone);
        return e;
}

static void test_unpack_valid_map(void **state) {
        msgpack_sbuffer sbuf;
        msgpack_packer pk;
        env_t env;
        msgpack_zone zone;
        msgpack_object obj;
        (void)state;

        msgpack_sbuffer_init(&sbuf);
        msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "email", 5);
        msgpack_pack_str_with_body(&pk, "a@b.c", 5);
        msgpack_pack_str_with_body(&pk, "n", 1);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_int(&pk, 1);
        msgpack_pack_nil(&pk);

        memset(&env, 0, sizeof(env));
        env.value = (slice_t){sbuf.data, sbuf.size};
        assert_true(msgpack_zone_init(&zone, 1024));
        assert_int_equal(env_unpack(&env, &zone, &obj), ENV_OK);
        assert_int_equal(obj.type, MSGPACK_OBJECT_MAP);
        assert_int_equal(obj.via.map.size, 2);
        assert_int_equal(obj.via.map.ptr[0].key.type, MSGPACK_OBJECT_STR);
        assert_int_equal(obj.via.map.ptr[0].key.via.str.size, 5);
        assert_memory_equal(obj.via.map.ptr[0].key.via.str.ptr, "email", 5);
        msgpack_zone_destroy(&zone);
        msgpack_sbuffer_destroy(&sbuf);

        /* The empty map is a map. */
        assert_int_equal(unpack_bytes("\x80", 1, NULL), ENV_OK);
        assert_int_equal(unpack_bytes(map_ok, sizeof(map_ok) - 1, NULL),
                         ENV_OK);
}

static void test_unpack_not_a_map(void **state) {
        (void)state;
        assert_int_equal(unpack_bytes("\x92\x01\x02", 3, NULL), ENV_BAD_VALUE);
        assert_int_equal(unpack_bytes("\x90", 1, NULL), ENV_BAD_VALUE);
        assert_int_equal(unpack_bytes("\x01", 1, NULL), ENV_BAD_VALUE);
        assert_int_equal(unpack_bytes("\xc0", 1, NULL), ENV_BAD_VALUE);
        assert_int_equal(unpack_bytes("\xa3"
                                      "abc",
                                      4, NULL),
                         ENV_BAD_VALUE);
        assert_int_equal(unpack_bytes("{\"a\":1}", 7, NULL), ENV_BAD_VALUE);
}

static void test_unpack_trailing_bytes(void **state) {
        (void)state;
        assert_int_equal(unpack_bytes("\x81\xa1"
                                      "a\x01\x00",
                                      5, NULL),
                         ENV_BAD_VALUE);
        /* Two maps back to back. */
        assert_int_equal(unpack_bytes("\x80\x80", 2, NULL), ENV_BAD_VALUE);
}

static void test_unpack_truncated(void **state) {
        (void)state;
        /* A map of two entries holding one. */
        assert_int_equal(unpack_bytes("\x82\xa1"
                                      "a\x01",
                                      4, NULL),
                         ENV_BAD_VALUE);
        assert_int_equal(unpack_bytes("\x81\xa1", 2, NULL), ENV_BAD_VALUE);
        assert_int_equal(unpack_bytes("\x81\xa5"
                                      "ab",
                                      4, NULL),
                         ENV_BAD_VALUE);
        assert_int_equal(unpack_bytes("\xde\x00", 2, NULL), ENV_BAD_VALUE);
        /* The "never used" byte. */
        assert_int_equal(unpack_bytes("\x81\xc1\x01", 3, NULL), ENV_BAD_VALUE);
}

static void test_unpack_empty(void **state) {
        env_t env;
        msgpack_zone zone;
        msgpack_object obj;
        (void)state;
        memset(&env, 0, sizeof(env));
        assert_true(msgpack_zone_init(&zone, 64));
        assert_int_equal(env_unpack(&env, &zone, &obj), ENV_BAD_VALUE);
        msgpack_zone_destroy(&zone);
}

/*
 * Regression: a container header declares its entry count, and msgpack-c's
 * msgpack_unpack() allocates count * sizeof(msgpack_object) (or _kv) before
 * it looks for the entries. Five bytes of input must not cost gigabytes: a
 * map32 of 0xffffffff entries asks for ~256 GiB (ASan aborts; with strict
 * overcommit it starves the process), and 4M entries take a 100+ MiB
 * allocation. env_unpack() must bound counts by the bytes that remain.
 */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static void test_unpack_container_claim_bounded_by_input(void **state) {
        static const char *claims[] = {"\xdd\x00\x40\x00\x00",
                                       "\xdf\x00\x40\x00\x00",
                                       "\x81\xa1k\xdd\x00\x40\x00\x00"};
        static const size_t lens[] = {5, 5, 8};
        (void)state;
        for (size_t i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
                env_t env;
                msgpack_zone zone;
                msgpack_object obj;
                struct mallinfo2 before, after;
                env_err_t e;
                memset(&env, 0, sizeof(env));
                env.value = (slice_t){claims[i], lens[i]};
                assert_true(msgpack_zone_init(&zone, 1024));
                before = mallinfo2();
                e = env_unpack(&env, &zone, &obj);
                after = mallinfo2(); /* while the zone still holds it */
                msgpack_zone_destroy(&zone);
                assert_int_equal(e, ENV_BAD_VALUE);
#ifndef UNDER_ASAN
                /* ASan's allocator bypasses glibc's counters. */
                size_t was = before.hblkhd + before.uordblks;
                size_t now = after.hblkhd + after.uordblks;
                if (now > was && now - was > (1u << 20))
                        fail_msg(
                                "%zu bytes of input made a %zu-byte allocation",
                                lens[i], now - was);
#else
                (void)before;
                (void)after;
#endif
        }
        /* Four billion entries: must fail without trying to allocate. */
        assert_int_equal(unpack_bytes("\xdf\xff\xff\xff\xff", 5, NULL),
                         ENV_BAD_VALUE);
        assert_int_equal(unpack_bytes("\xdd\xff\xff\xff\xff", 5, NULL),
                         ENV_BAD_VALUE);
}

/* Deterministic so a failure can be replayed. */
static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
        rnd_state ^= rnd_state << 13;
        rnd_state ^= rnd_state >> 7;
        rnd_state ^= rnd_state << 17;
        return rnd_state;
}

static void test_unpack_random_garbage(void **state) {
        /* Biased toward container bytes so nesting gets exercised. */
        static const unsigned char starts[] = {0x80, 0x81, 0x8f, 0xde, 0xdf,
                                               0x90, 0xdc, 0xc4, 0xd9, 0xc7};
        unsigned char buf[96];
        size_t maps = 0;
        (void)state;
        for (int round = 0; round < 50000; round++) {
                size_t len = 1 + rnd() % sizeof(buf);
                msgpack_object_type type = MSGPACK_OBJECT_NIL;
                env_err_t e;
                for (size_t i = 0; i < len; i++)
                        buf[i] = (unsigned char)rnd();
                if (round % 2)
                        buf[0] = starts[rnd() % sizeof(starts)];
                /* Keep container sizes small in half of the rounds so the
                 * unpacker goes deep instead of failing at once. */
                if (round % 4 == 1 && len > 3 &&
                    (buf[0] == 0xde || buf[0] == 0xdf)) {
                        buf[1] = 0;
                        buf[2] = (unsigned char)(rnd() % 4);
                }
                e = unpack_bytes(buf, len, &type);
                assert_true(e == ENV_OK || e == ENV_BAD_VALUE);
                if (e == ENV_OK) {
                        assert_int_equal(type, MSGPACK_OBJECT_MAP);
                        maps++;
                }
        }
        /* Some of them were maps, so the accepting path ran too. */
        assert_true(maps > 0);
}

/* ------------------------------------------------------------------------ */
/* env_parse_reply_to                                                        */
/* ------------------------------------------------------------------------ */

static void test_parse_reply_to_ok(void **state) {
        char topic[256];
        int32_t part = -1;
        (void)state;
        assert_int_equal(env_parse_reply_to(slice_of("omnify.edge.replies:3"),
                                            topic, sizeof(topic), &part),
                         0);
        assert_string_equal(topic, "omnify.edge.replies");
        assert_int_equal(part, 3);
        assert_int_equal(env_parse_reply_to(slice_of("A-Z_a.z-09:0"), topic,
                                            sizeof(topic), &part),
                         0);
        assert_string_equal(topic, "A-Z_a.z-09");
        assert_int_equal(part, 0);
        assert_int_equal(env_parse_reply_to(slice_of("t:100000"), topic,
                                            sizeof(topic), &part),
                         0);
        assert_string_equal(topic, "t");
        assert_int_equal(part, 100000);
        /* The slice need not be NUL-terminated. */
        assert_int_equal(env_parse_reply_to((slice_t){"topic:12junk", 8}, topic,
                                            sizeof(topic), &part),
                         0);
        assert_string_equal(topic, "topic");
        assert_int_equal(part, 12);
}

static void test_parse_reply_to_bad(void **state) {
        char topic[256];
        int32_t part = -1;
        (void)state;
        assert_int_equal(
                env_parse_reply_to(SLICE_NULL, topic, sizeof(topic), &part),
                -1);
        assert_int_equal(env_parse_reply_to(slice_of("t:100001"), topic,
                                            sizeof(topic), &part),
                         -1);
        assert_int_equal(
                env_parse_reply_to(slice_of("t"), topic, sizeof(topic), &part),
                -1);
        assert_int_equal(
                env_parse_reply_to(slice_of(":1"), topic, sizeof(topic), &part),
                -1);
        assert_int_equal(
                env_parse_reply_to(slice_of("t:"), topic, sizeof(topic), &part),
                -1);
        assert_int_equal(env_parse_reply_to(slice_of("t:1:2"), topic,
                                            sizeof(topic), &part),
                         -1);
        assert_int_equal(env_parse_reply_to(slice_of("t\0u:1"), topic,
                                            sizeof(topic), &part),
                         -1);
        assert_int_equal(env_parse_reply_to((slice_t){"t\0u:1", 5}, topic,
                                            sizeof(topic), &part),
                         -1);
        assert_int_equal(part, -1);
}

static void test_parse_reply_to_topic_too_long(void **state) {
        char reply[300];
        char topic[300];
        int32_t part = -1;
        (void)state;
        /* Kafka topics are at most 249 characters. */
        memset(reply, 'a', 249);
        memcpy(reply + 249, ":1", 3);
        assert_int_equal(env_parse_reply_to(slice_of(reply), topic,
                                            sizeof(topic), &part),
                         0);
        assert_int_equal(strlen(topic), 249);
        memset(reply, 'a', 250);
        memcpy(reply + 250, ":1", 3);
        assert_int_equal(env_parse_reply_to(slice_of(reply), topic,
                                            sizeof(topic), &part),
                         -1);
}

static void test_parse_reply_to_buffer_too_small(void **state) {
        char topic[8];
        int32_t part = -1;
        (void)state;
        memset(topic, '#', sizeof(topic));
        /* "edge.rep" needs 9 bytes with its NUL. */
        assert_int_equal(env_parse_reply_to(slice_of("edge.rep:1"), topic,
                                            sizeof(topic), &part),
                         -1);
        assert_int_equal(env_parse_reply_to(slice_of("edge.re:1"), topic,
                                            sizeof(topic), &part),
                         0);
        assert_string_equal(topic, "edge.re");
        assert_int_equal(env_parse_reply_to(slice_of("e:1"), topic, 0, &part),
                         -1);
        assert_int_equal(env_parse_reply_to(slice_of("e:1"), topic, 1, &part),
                         -1);
        assert_int_equal(env_parse_reply_to(slice_of("e:1"), topic, 2, &part),
                         0);
        assert_string_equal(topic, "e");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_round_trip_every_field,
                                          teardown),
                cmocka_unit_test_teardown(test_round_trip_minimal, teardown),
                cmocka_unit_test_teardown(test_decode_uppercase_id, teardown),
                cmocka_unit_test_teardown(test_content_type, teardown),
                cmocka_unit_test_teardown(test_missing_required_headers,
                                          teardown),
                cmocka_unit_test_teardown(test_no_headers_at_all, teardown),
                cmocka_unit_test_teardown(test_bad_id, teardown),
                cmocka_unit_test_teardown(test_bad_type, teardown),
                cmocka_unit_test_teardown(test_bad_schema_version, teardown),
                cmocka_unit_test_teardown(test_bad_created_at, teardown),
                cmocka_unit_test_teardown(test_created_at_19_digits_no_overflow,
                                          teardown),
                cmocka_unit_test_teardown(test_bad_status, teardown),
                cmocka_unit_test_teardown(test_bad_correlation_id, teardown),
                cmocka_unit_test_teardown(test_bad_reply_to, teardown),
                cmocka_unit_test_teardown(test_duplicate_known_header,
                                          teardown),
                cmocka_unit_test_teardown(test_duplicate_empty_header,
                                          teardown),
                cmocka_unit_test_teardown(test_null_valued_optional_header,
                                          teardown),
                cmocka_unit_test_teardown(test_oversized_header, teardown),
                cmocka_unit_test_teardown(test_unknown_headers_ignored,
                                          teardown),
                cmocka_unit_test_teardown(test_empty_value, teardown),
                cmocka_unit_test_teardown(test_strerror, teardown),
                cmocka_unit_test_teardown(test_unpack_valid_map, teardown),
                cmocka_unit_test_teardown(test_unpack_not_a_map, teardown),
                cmocka_unit_test_teardown(test_unpack_trailing_bytes, teardown),
                cmocka_unit_test_teardown(test_unpack_truncated, teardown),
                cmocka_unit_test_teardown(test_unpack_empty, teardown),
                cmocka_unit_test_teardown(test_parse_reply_to_ok, teardown),
                cmocka_unit_test_teardown(test_parse_reply_to_bad, teardown),
                cmocka_unit_test_teardown(test_parse_reply_to_topic_too_long,
                                          teardown),
                cmocka_unit_test_teardown(test_parse_reply_to_buffer_too_small,
                                          teardown),
                /* Last: under ASan these abort until env_unpack bounds
                 * container counts (see the regression test). */
                cmocka_unit_test_teardown(
                        test_unpack_container_claim_bounded_by_input, teardown),
                cmocka_unit_test_teardown(test_unpack_random_garbage, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
