/*
 * test_codec_request.c - unit tests of codec_request_to_msgpack: a request
 * (body, path, query, headers) as the command a group receives, typed as
 * declared, defaults filled, and every parameter that does not convert
 * reported by its name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec.h"
#include "schema.h"

/* clang-format off */
static const char schema_json[] =
        "{\"group\":\"t\",\"messages\":["
        "{\"type\":\"t.list\",\"version\":1,\"summary\":\"s\","
        "\"route\":{\"method\":\"GET\",\"path\":\"/api/t/{org}/items/{n}\","
        "\"auth\":true,\"mode\":\"sync\"},\"fields\":{"
        "\"org\":{\"type\":\"string\"},"
        "\"n\":{\"type\":\"integer\"},"
        "\"limit\":{\"type\":\"integer\",\"in\":\"query\",\"default\":20},"
        "\"ratio\":{\"type\":\"number\",\"in\":\"query\"},"
        "\"deep\":{\"type\":\"boolean\",\"in\":\"query\"},"
        "\"q\":{\"type\":\"string\",\"in\":\"query\"},"
        "\"tags\":{\"type\":\"array\",\"in\":\"query\",\"items\":"
        "{\"type\":\"string\"}},"
        "\"ids\":{\"type\":\"array\",\"in\":\"query\",\"items\":"
        "{\"type\":\"integer\"}},"
        "\"accept\":{\"type\":\"string\",\"in\":\"header\",\"name\":"
        "\"Accept\",\"default\":\"application/json\"},"
        "\"sig\":{\"type\":\"integer\",\"in\":\"header\",\"name\":"
        "\"X-Sig\"}}},"
        "{\"type\":\"t.make\",\"version\":1,\"summary\":\"s\","
        "\"route\":{\"method\":\"POST\",\"path\":\"/api/t/make\","
        "\"auth\":false,\"mode\":\"sync\"},\"fields\":{"
        "\"count\":{\"type\":\"integer\"},"
        "\"mode\":{\"type\":\"string\",\"default\":\"fast\"},"
        "\"steps\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
        "\"fields\":{\"retry\":{\"type\":\"object\",\"fields\":{"
        "\"max\":{\"type\":\"integer\",\"default\":3},"
        "\"n\":{\"type\":\"integer\"}}}}}},"
        "\"page\":{\"type\":\"integer\",\"in\":\"query\"}}},"
        "{\"type\":\"t.hook\",\"version\":1,\"summary\":\"s\","
        "\"route\":{\"method\":\"POST\",\"path\":\"/api/t/hook\","
        "\"auth\":false,\"mode\":\"sync\",\"raw_body\":\"payload\"},"
        "\"fields\":{\"payload\":{\"type\":\"binary\"},"
        "\"sig\":{\"type\":\"string\",\"in\":\"header\",\"name\":"
        "\"X-Shopify-Hmac-Sha256\",\"required\":true}}}"
        "]}";
/* clang-format on */

static schema_set_t *set;
static msgpack_sbuffer sb;
static msgpack_unpacked up;
static schema_report_t report;
static char err[256];

static int setup(void **state) {
        schema_source_t src = {"t.json", schema_json, sizeof(schema_json) - 1};
        (void)state;
        if (schema_set_load(&set, &src, 1, err, sizeof(err)) != SCHEMA_OK) {
                fprintf(stderr, "%s\n", err);
                return -1;
        }
        msgpack_sbuffer_init(&sb);
        msgpack_unpacked_init(&up);
        return 0;
}

static int teardown(void **state) {
        (void)state;
        msgpack_unpacked_destroy(&up);
        msgpack_sbuffer_destroy(&sb);
        schema_set_destroy(set);
        return 0;
}

/* Headers for the tests: "Name: value" pairs, matched without case. */
static const char *const *headers;

static slice_t header(void *ctx, const char *name) {
        (void)ctx;
        for (size_t i = 0; headers && headers[i]; i += 2)
                if (strcasecmp(headers[i], name) == 0)
                        return slice_of(headers[i + 1]);
        return SLICE_NULL;
}

static codec_err_t build(const char *type, const char *body, const char *path,
                         const codec_kv_t *query, size_t n_query,
                         const char *const *hdrs) {
        const schema_msg_t *msg = schema_find(set, slice_of(type));
        schema_params_t params;
        codec_request_t rq = {.body = slice_of(body),
                              .query = query,
                              .n_query = n_query,
                              .header = header};

        assert_non_null(msg);
        headers = hdrs;
        if (path) {
                const schema_msg_t *m = NULL;
                assert_int_equal(schema_route_match(
                                         set, slice_of(msg->route.method),
                                         slice_of(path), &m, &params, NULL, 0),
                                 SCHEMA_MATCH_FOUND);
                assert_ptr_equal(m, msg);
                rq.path = &params;
        }
        sb.size = 0;
        return codec_request_to_msgpack(msg, &rq, &sb, &report, err,
                                        sizeof(err));
}

/* The built command as JSON, for comparing. */
static char *as_json(void) {
        char *json = NULL;
        assert_int_equal(
                codec_msgpack_to_json((slice_t){sb.data, sb.size}, &json, NULL),
                CODEC_OK);
        return json;
}

static void expect_json(const char *want) {
        char *json = as_json();
        assert_string_equal(json, want);
        free(json);
}

static void expect_valid(const char *type) {
        size_t off = 0;
        assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, &off),
                         MSGPACK_UNPACK_SUCCESS);
        if (!schema_validate(schema_find(set, slice_of(type)), &up.data,
                             &report))
                fail_msg("%s: %s", report.v[0].field, report.v[0].reason);
}

#define KV(n, v)                         \
        {                                \
                {n, sizeof(n) - 1}, {    \
                        v, sizeof(v) - 1 \
                }                        \
        }

static void test_typed_parameters(void **state) {
        static const codec_kv_t q[] = {
                KV("ratio", "-1.5e2"), KV("deep", "true"), KV("q", "a b"),
                KV("tags", "x,y,z"),   KV("ids", "1"),     KV("ids", "2")};
        static const char *const h[] = {"x-sig", "42", NULL};
        (void)state;

        assert_int_equal(build("t.list", "", "/api/t/acme/items/7", q, 6, h),
                         CODEC_OK);
        /* Path and query typed; repeated parameters one item each, one
         * value split on commas; absent ones defaulted, headers included. */
        expect_json(
                "{\"org\":\"acme\",\"n\":7,\"sig\":42,\"ratio\":-150.0,"
                "\"deep\":true,\"q\":\"a b\",\"tags\":[\"x\",\"y\",\"z\"],"
                "\"ids\":[1,2],\"limit\":20,\"accept\":\"application/json\"}");
        expect_valid("t.list");
}

static void test_bad_parameters_are_named(void **state) {
        static const codec_kv_t q[] = {KV("limit", "ten"), KV("ratio", "nan"),
                                       KV("deep", "yes"),  KV("ids", "1,x"),
                                       KV("q", "a"),       KV("q", "b"),
                                       KV("nope", "1")};
        static const char *const h[] = {"X-Sig", "4.5", NULL};
        (void)state;

        assert_int_equal(build("t.list", NULL, "/api/t/acme/items/x", q, 7, h),
                         CODEC_BAD_PARAM);
        assert_int_equal(sb.size, 0);
        assert_int_equal(report.n, 8);
        /* Path and headers first, then the query string. */
        assert_string_equal(report.v[0].field, "n");
        assert_string_equal(report.v[0].reason, "must be an integer");
        assert_string_equal(report.v[1].field, "X-Sig");
        assert_string_equal(report.v[1].reason, "must be an integer");
        assert_string_equal(report.v[2].field, "nope");
        assert_string_equal(report.v[2].reason,
                            "is not a query parameter of t.list");
        assert_string_equal(report.v[3].field, "limit");
        assert_string_equal(report.v[4].field, "ratio");
        assert_string_equal(report.v[4].reason, "must be a number");
        assert_string_equal(report.v[5].field, "deep");
        assert_string_equal(report.v[5].reason, "must be true or false");
        assert_string_equal(report.v[6].field, "q");
        assert_string_equal(report.v[6].reason, "is given more than once");
        assert_string_equal(report.v[7].field, "ids");
        /* Never the value. */
        for (size_t i = 0; i < report.n; i++)
                assert_null(strstr(report.v[i].reason, "ten"));
}

static void test_integer_edges(void **state) {
        static const codec_kv_t big[] = {KV("limit", "9223372036854775808")};
        static const codec_kv_t neg[] = {KV("limit", "-9223372036854775808")};
        static const codec_kv_t plus[] = {KV("limit", "+1")};
        static const codec_kv_t sp[] = {KV("limit", " 1")};
        (void)state;

        assert_int_equal(
                build("t.list", NULL, "/api/t/a/items/1", big, 1, NULL),
                CODEC_BAD_PARAM);
        assert_int_equal(
                build("t.list", NULL, "/api/t/a/items/1", neg, 1, NULL),
                CODEC_OK);
        assert_int_equal(
                build("t.list", NULL, "/api/t/a/items/1", plus, 1, NULL),
                CODEC_BAD_PARAM);
        assert_int_equal(build("t.list", NULL, "/api/t/a/items/1", sp, 1, NULL),
                         CODEC_BAD_PARAM);
        assert_int_equal(
                build("t.list", NULL, "/api/t/a/items/-12", NULL, 0, NULL),
                CODEC_OK);
}

static void test_body_defaults_and_integers(void **state) {
        static const codec_kv_t q[] = {KV("page", "2")};
        (void)state;

        assert_int_equal(build("t.make",
                               "{\"count\":5.0,\"steps\":[{\"retry\":{\"n\":"
                               "2.0}},{},{\"retry\":{\"max\":1}}]}",
                               NULL, q, 1, NULL),
                         CODEC_OK);
        /* 5.0 for an integer field is the integer 5; defaults at every
         * level where the object is there; query fields join the map. */
        expect_json("{\"count\":5,\"steps\":[{\"retry\":{\"n\":2,\"max\":3}},"
                    "{},{\"retry\":{\"max\":1}}],\"page\":2,\"mode\":"
                    "\"fast\"}");
        expect_valid("t.make");
        /* A fractional value stays what it is: validation refuses it. */
        assert_int_equal(
                build("t.make", "{\"count\":5.5}", NULL, NULL, 0, NULL),
                CODEC_OK);
        expect_json("{\"count\":5.5,\"mode\":\"fast\"}");
}

static void test_body_keys_that_belong_elsewhere(void **state) {
        (void)state;
        assert_int_equal(build("t.make", "{\"page\":1}", NULL, NULL, 0, NULL),
                         CODEC_BAD_PARAM);
        assert_int_equal(report.n, 1);
        assert_string_equal(report.v[0].field, "page");
        assert_string_equal(report.v[0].reason,
                            "belongs in the query string, not the body");
        assert_int_equal(build("t.list", "{\"org\":\"x\"}", "/api/t/a/items/1",
                               NULL, 0, NULL),
                         CODEC_BAD_PARAM);
        assert_string_equal(report.v[0].reason,
                            "belongs in the path, not the body");
}

static void test_unreadable_bodies(void **state) {
        (void)state;
        assert_int_equal(build("t.make", "{", NULL, NULL, 0, NULL),
                         CODEC_BAD_JSON);
        assert_string_equal(err, "line 1, column 1: string or '}' expected "
                                 "near end of file");
        assert_int_equal(build("t.make", "[1]", NULL, NULL, 0, NULL),
                         CODEC_NOT_OBJECT);
        assert_int_equal(sb.size, 0);
        /* NUL is valid JSON: kept, for validation to name the field. */
        assert_int_equal(build("t.make", "{\"mode\":\"a\\u0000b\"}", NULL, NULL,
                               0, NULL),
                         CODEC_OK);
        expect_json("{\"mode\":\"a\\u0000b\"}");
}

static void test_raw_body(void **state) {
        static const char *const h[] = {"X-Shopify-Hmac-Sha256", "c2ln", NULL};
        size_t off = 0;
        const msgpack_object *payload;
        (void)state;

        /* Not JSON at all: passed on as bytes. */
        assert_int_equal(build("t.hook", "a=1&b=\x01", NULL, NULL, 0, h),
                         CODEC_OK);
        assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, &off),
                         MSGPACK_UNPACK_SUCCESS);
        payload = codec_map_get(&up.data, "payload");
        assert_non_null(payload);
        assert_int_equal(payload->type, MSGPACK_OBJECT_BIN);
        assert_int_equal(payload->via.bin.size, 7);
        assert_memory_equal(payload->via.bin.ptr, "a=1&b=\x01", 7);
        assert_true(slice_eq(codec_map_str(&up.data, "sig"), "c2ln"));
        expect_valid("t.hook");
        /* Empty body, no signature: the schema says what is missing. */
        assert_int_equal(build("t.hook", "", NULL, NULL, 0, NULL), CODEC_OK);
        off = 0;
        assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, &off),
                         MSGPACK_UNPACK_SUCCESS);
        assert_false(schema_validate(schema_find(set, slice_of("t.hook")),
                                     &up.data, &report));
        assert_int_equal(report.n, 1);
        assert_string_equal(report.v[0].field, "X-Shopify-Hmac-Sha256");
        assert_string_equal(report.v[0].reason, "is required");
}

static void test_invalid_utf8_parameters(void **state) {
        static const codec_kv_t q[] = {KV("q", "\xff"), KV("\xfe", "1")};
        (void)state;

        assert_int_equal(build("t.list", NULL, "/api/t/a/items/1", q, 2, NULL),
                         CODEC_BAD_PARAM);
        assert_int_equal(report.n, 2);
        assert_string_equal(report.v[0].field, "");
        assert_string_equal(report.v[0].reason,
                            "a query parameter name is not valid UTF-8 text");
        assert_string_equal(report.v[1].field, "q");
        assert_string_equal(report.v[1].reason, "must be valid UTF-8 text");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_typed_parameters),
                cmocka_unit_test(test_bad_parameters_are_named),
                cmocka_unit_test(test_integer_edges),
                cmocka_unit_test(test_body_defaults_and_integers),
                cmocka_unit_test(test_body_keys_that_belong_elsewhere),
                cmocka_unit_test(test_unreadable_bodies),
                cmocka_unit_test(test_raw_body),
                cmocka_unit_test(test_invalid_utf8_parameters),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
