/*
 * test_bsonpack.c - unit tests of bsonpack_doc: a store document as the
 * msgpack a reply carries, rendered as JSON to compare.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bsonpack.h"
#include "codec.h"

/* doc packed with opts, as JSON text, compared with expect. */
static void expect_json(const bson_t *doc, const bsonpack_opts_t *opts,
                        const char *expect) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        char *out = NULL;
        size_t len = 0;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        bsonpack_doc(&pk, doc, opts);
        assert_int_equal(
                codec_msgpack_to_json((slice_t){sb.data, sb.size}, &out, &len),
                CODEC_OK);
        assert_string_equal(out, expect);
        free(out);
        msgpack_sbuffer_destroy(&sb);
}

static void test_types(void **state) {
        bson_t doc = BSON_INITIALIZER, sub, arr;
        bson_oid_t oid;
        (void)state;

        BSON_APPEND_UTF8(&doc, "s", "x\"y");
        BSON_APPEND_INT32(&doc, "i32", -7);
        BSON_APPEND_INT64(&doc, "i64", INT64_MAX);
        BSON_APPEND_DOUBLE(&doc, "d", 1.5);
        BSON_APPEND_DOUBLE(&doc, "nan", NAN);
        BSON_APPEND_BOOL(&doc, "t", true);
        BSON_APPEND_NULL(&doc, "n");
        bson_oid_init_from_string(&oid, "0123456789abcdef01234567");
        BSON_APPEND_OID(&doc, "oid", &oid);
        BSON_APPEND_DOCUMENT_BEGIN(&doc, "sub", &sub);
        BSON_APPEND_ARRAY_BEGIN(&sub, "a", &arr);
        BSON_APPEND_INT32(&arr, "0", 1);
        BSON_APPEND_UTF8(&arr, "1", "");
        bson_append_array_end(&sub, &arr);
        bson_append_document_end(&doc, &sub);
        /* A non-finite double and the types JSON has no word for: null. */
        expect_json(&doc, NULL,
                    "{\"s\":\"x\\\"y\",\"i32\":-7,\"i64\":9223372036854775807,"
                    "\"d\":1.5,\"nan\":null,\"t\":true,\"n\":null,"
                    "\"oid\":null,\"sub\":{\"a\":[1,\"\"]}}");
        bson_destroy(&doc);
}

static void test_dates(void **state) {
        bson_t doc = BSON_INITIALIZER;
        (void)state;
        BSON_APPEND_DATE_TIME(&doc, "at", 1796578200123); /* 2026-12-06 */
        BSON_APPEND_DATE_TIME(&doc, "before", -1);
        expect_json(&doc, NULL, "{\"at\":1796578200123,\"before\":-1}");
        expect_json(&doc, &(bsonpack_opts_t){.dates_as_text = true},
                    "{\"at\":\"2026-12-06T17:30:00Z\","
                    "\"before\":\"1969-12-31T23:59:59Z\"}");
        bson_destroy(&doc);
}

/* skip and skip_empty act on the top level only. */
static void test_skips(void **state) {
        static const char *const skip[] = {"secret", "_id", NULL};
        bson_t doc = BSON_INITIALIZER, sub;
        (void)state;
        BSON_APPEND_UTF8(&doc, "_id", "k1");
        BSON_APPEND_UTF8(&doc, "name", "a");
        BSON_APPEND_UTF8(&doc, "empty", "");
        BSON_APPEND_UTF8(&doc, "secret", "s");
        BSON_APPEND_DOCUMENT_BEGIN(&doc, "sub", &sub);
        BSON_APPEND_UTF8(&sub, "secret", "kept");
        BSON_APPEND_UTF8(&sub, "empty", "");
        bson_append_document_end(&doc, &sub);
        expect_json(&doc, &(bsonpack_opts_t){.skip = skip},
                    "{\"name\":\"a\",\"empty\":\"\","
                    "\"sub\":{\"secret\":\"kept\",\"empty\":\"\"}}");
        expect_json(&doc, &(bsonpack_opts_t){.skip = skip, .skip_empty = true},
                    "{\"name\":\"a\","
                    "\"sub\":{\"secret\":\"kept\",\"empty\":\"\"}}");
        bson_destroy(&doc);
        bson_init(&doc);
        expect_json(&doc, NULL, "{}");
        bson_destroy(&doc);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_types),
                cmocka_unit_test(test_dates),
                cmocka_unit_test(test_skips),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
