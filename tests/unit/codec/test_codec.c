/*
 * test_codec.c - unit tests of JSON <-> msgpack (shared/codec.c).
 *
 * Most checks go JSON -> msgpack -> JSON and compare the text, which covers
 * both directions at once; the msgpack side is also inspected directly where
 * the types matter (ints stay ints, reals stay float64). Hostile inputs get
 * their own tests: malformed JSON with its line and column, bracket bombs,
 * truncated and trailing msgpack, counts that lie, invalid UTF-8, NaN, and
 * allocation failure of the output buffer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "codec.h"

static char err[256];

/* JSON text -> msgpack in sb (initialised here; caller destroys). */
static codec_err_t to_mp(const char *json, const schema_params_t *params,
                         msgpack_sbuffer *sb) {
        msgpack_sbuffer_init(sb);
        memset(err, 0, sizeof(err));
        return codec_json_to_msgpack(slice_of(json), params, sb, err,
                                     sizeof(err));
}

/* JSON text -> msgpack -> JSON text; returns a new string. */
static char *round_trip(const char *json) {
        msgpack_sbuffer sb;
        char *out = NULL;
        size_t len = 0;

        assert_int_equal(to_mp(json, NULL, &sb), CODEC_OK);
        assert_int_equal(
                codec_msgpack_to_json((slice_t){sb.data, sb.size}, &out, &len),
                CODEC_OK);
        assert_non_null(out);
        assert_int_equal(strlen(out), len);
        msgpack_sbuffer_destroy(&sb);
        return out;
}

static void assert_round_trip(const char *json, const char *expect) {
        char *out = round_trip(json);
        assert_string_equal(out, expect);
        free(out);
}

/* Render msgpack bytes; the expected text, or NULL to expect failure. */
static codec_err_t mp_to_json(const char *bytes, size_t len, char **out) {
        size_t out_len = 0;
        codec_err_t e =
                codec_msgpack_to_json((slice_t){bytes, len}, out, &out_len);
        if (e == CODEC_OK)
                assert_int_equal(strlen(*out), out_len);
        else
                assert_null(*out);
        return e;
}

static void assert_mp_json(const char *bytes, size_t len, const char *expect) {
        char *out = NULL;
        assert_int_equal(mp_to_json(bytes, len, &out), CODEC_OK);
        assert_string_equal(out, expect);
        free(out);
}

/* Render what a packer wrote into sb. */
static void assert_sb_json(msgpack_sbuffer *sb, const char *expect) {
        assert_mp_json(sb->data, sb->size, expect);
}

/* ------------------------------------------------------------------------ */
/* JSON to msgpack                                                          */
/* ------------------------------------------------------------------------ */

static void test_strerror(void **state) {
        (void)state;
        assert_string_equal(codec_strerror(CODEC_OK), "ok");
        assert_string_equal(codec_strerror(CODEC_TOO_DEEP),
                            "body nests too deeply");
        assert_string_equal(codec_strerror((codec_err_t)999),
                            "unknown codec error");
}

static void test_round_trip_types(void **state) {
        (void)state;
        assert_round_trip("{\"a\":1,\"b\":-2,\"c\":1.5,\"d\":\"x\",\"e\":true,"
                          "\"f\":false,\"g\":null,\"h\":[],\"i\":{}}",
                          "{\"a\":1,\"b\":-2,\"c\":1.5,\"d\":\"x\",\"e\":true,"
                          "\"f\":false,\"g\":null,\"h\":[],\"i\":{}}");
        /* Whitespace goes, key order stays. */
        assert_round_trip(" { \"z\" : 1 ,\n \"a\" : [ 1 , 2 ] } ",
                          "{\"z\":1,\"a\":[1,2]}");
}

static void test_round_trip_nested(void **state) {
        (void)state;
        assert_round_trip("{\"a\":[1,[2,{\"b\":{\"c\":[true,null]}}]]}",
                          "{\"a\":[1,[2,{\"b\":{\"c\":[true,null]}}]]}");
}

static void test_round_trip_unicode(void **state) {
        (void)state;
        /* Escapes are decoded; non-ASCII comes back as raw UTF-8. */
        assert_round_trip("{\"s\":\"caf\\u00e9 \\u2603 \\ud83d\\ude00\"}",
                          "{\"s\":\"caf\xc3\xa9 \xe2\x98\x83 "
                          "\xf0\x9f\x98\x80\"}");
        assert_round_trip("{\"\xc3\xa9t\xc3\xa9\":\"\xe6\x97\xa5\"}",
                          "{\"\xc3\xa9t\xc3\xa9\":\"\xe6\x97\xa5\"}");
        /* Control characters and quotes are escaped on the way out. */
        assert_round_trip("{\"s\":\"a\\\"b\\\\c\\n\\t\\u0001/\"}",
                          "{\"s\":\"a\\\"b\\\\c\\u000a\\u0009\\u0001/\"}");
}

static void test_round_trip_numbers(void **state) {
        (void)state;
        assert_round_trip("{\"max\":9223372036854775807,"
                          "\"min\":-9223372036854775808,\"zero\":0}",
                          "{\"max\":9223372036854775807,"
                          "\"min\":-9223372036854775808,\"zero\":0}");
        /* Reals stay reals: 2.0 does not come back as the integer 2; and
         * they print in the fewest digits that read back exactly. */
        assert_round_trip("{\"a\":2.0,\"b\":0.1,\"c\":-1e300,\"d\":1e-7,"
                          "\"e\":-0.0}",
                          "{\"a\":2.0,\"b\":0.1,\"c\":-1e+300,"
                          "\"d\":1e-07,\"e\":-0.0}");
}

static void test_integers_beyond_64_bits(void **state) {
        msgpack_sbuffer sb;
        (void)state;
        /* Valid JSON, so accepted: the too-big integers become doubles, the
         * others stay integers (a double holds them exactly up to 2^53). */
        assert_round_trip("{\"a\":{\"b\":[-20306040316800098304,7]},"
                          "\"n\":-3,\"big\":18446744073709551616,"
                          "\"exact\":9007199254740992}",
                          "{\"a\":{\"b\":[-2.03060403168001e+19,7]},"
                          "\"n\":-3,\"big\":1.8446744073709552e+19,"
                          "\"exact\":9007199254740992}");
        /* A real beyond a double is still refused (test_bad_json). */
        assert_int_equal(to_mp("{\"x\":1e400, \"y\":1e30}", NULL, &sb),
                         CODEC_BAD_JSON);
        msgpack_sbuffer_destroy(&sb);
}

static void test_msgpack_types(void **state) {
        msgpack_sbuffer sb;
        msgpack_unpacked up;
        size_t off = 0;
        (void)state;

        assert_int_equal(to_mp("{\"p\":5,\"n\":-5,\"f\":5.0,\"s\":\"x\","
                               "\"b\":true,\"z\":null}",
                               NULL, &sb),
                         CODEC_OK);
        msgpack_unpacked_init(&up);
        assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, &off),
                         MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(off, sb.size);
        assert_int_equal(up.data.type, MSGPACK_OBJECT_MAP);
        assert_int_equal(codec_map_get(&up.data, "p")->type,
                         MSGPACK_OBJECT_POSITIVE_INTEGER);
        assert_int_equal(codec_map_get(&up.data, "p")->via.u64, 5);
        assert_int_equal(codec_map_get(&up.data, "n")->type,
                         MSGPACK_OBJECT_NEGATIVE_INTEGER);
        assert_int_equal(codec_map_get(&up.data, "n")->via.i64, -5);
        assert_int_equal(codec_map_get(&up.data, "f")->type,
                         MSGPACK_OBJECT_FLOAT64);
        assert_int_equal(codec_map_get(&up.data, "s")->type,
                         MSGPACK_OBJECT_STR);
        assert_int_equal(codec_map_get(&up.data, "b")->type,
                         MSGPACK_OBJECT_BOOLEAN);
        assert_int_equal(codec_map_get(&up.data, "z")->type,
                         MSGPACK_OBJECT_NIL);
        msgpack_unpacked_destroy(&up);
        msgpack_sbuffer_destroy(&sb);
}

static void test_empty_body(void **state) {
        (void)state;
        assert_round_trip("", "{}");
        assert_round_trip(" \r\n\t ", "{}");
        assert_round_trip("{}", "{}");
}

static void test_empty_body_null_slice(void **state) {
        msgpack_sbuffer sb;
        char *out = NULL;
        (void)state;

        msgpack_sbuffer_init(&sb);
        assert_int_equal(codec_json_to_msgpack(SLICE_NULL, NULL, &sb, NULL, 0),
                         CODEC_OK);
        assert_int_equal(mp_to_json(sb.data, sb.size, &out), CODEC_OK);
        assert_string_equal(out, "{}");
        free(out);
        msgpack_sbuffer_destroy(&sb);
}

static void expect_bad_json(const char *json, const char *message) {
        msgpack_sbuffer sb;
        assert_int_equal(to_mp(json, NULL, &sb), CODEC_BAD_JSON);
        assert_string_equal(err, message);
        assert_int_equal(sb.size, 0);
        msgpack_sbuffer_destroy(&sb);
}

static void test_bad_json(void **state) {
        (void)state;
        expect_bad_json("{", "line 1, column 1: string or '}' expected "
                             "near end of file");
        expect_bad_json("{\"a\":1,}",
                        "line 1, column 8: string or '}' expected");
        expect_bad_json("{\"a\":1}\n x",
                        "line 2, column 2: end of file expected");
        expect_bad_json("{\n\"a\": 1,\n\"a\": 2}",
                        "line 3, column 3: duplicate object key");
        expect_bad_json("{\n\n  \"a\": tru}",
                        "line 3, column 10: invalid token");
        expect_bad_json("{\"a\":\"\xff\"}",
                        "line 1, column 6: unable to decode byte 0xff");
        expect_bad_json("{\"a\":1e400}",
                        "line 1, column 10: real number overflow");
        expect_bad_json("{'a':1}", "line 1, column 2: string or '}' expected");
}

/* jansson quotes the token it choked on; a password typed without quotes
 * must not come back in the message (it may be logged). */
static void test_bad_json_hides_token(void **state) {
        msgpack_sbuffer sb;
        (void)state;

        assert_int_equal(to_mp("{\"password\": hunter2secret}", NULL, &sb),
                         CODEC_BAD_JSON);
        assert_null(strstr(err, "hunter2"));
        assert_string_equal(err, "line 1, column 19: invalid token");
        msgpack_sbuffer_destroy(&sb);
}

static void test_not_object(void **state) {
        static const char *const bodies[] = {"[]",    "[1,2]", "1",   "-1.5",
                                             "\"s\"", "null",  "true"};
        msgpack_sbuffer sb;
        (void)state;

        for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
                assert_int_equal(to_mp(bodies[i], NULL, &sb), CODEC_NOT_OBJECT);
                assert_string_equal(err, "body must be a JSON object");
                assert_int_equal(sb.size, 0);
                msgpack_sbuffer_destroy(&sb);
        }
}

/* n containers, '{"a":' objects alternating with arrays, closed properly. */
static char *nested(int n) {
        char *s = malloc((size_t)n * 6 + 16);
        size_t len = 0;

        assert_non_null(s);
        for (int i = 0; i < n; i++) {
                if (i % 2 == 0) {
                        memcpy(s + len, "{\"a\":", 5);
                        len += 5;
                } else {
                        s[len++] = '[';
                }
        }
        s[len++] = '1';
        for (int i = n - 1; i >= 0; i--)
                s[len++] = i % 2 == 0 ? '}' : ']';
        s[len] = '\0';
        return s;
}

static void test_depth_limit(void **state) {
        msgpack_sbuffer sb;
        char *ok = nested(CODEC_MAX_DEPTH);
        char *deep = nested(CODEC_MAX_DEPTH + 1);
        char *out;
        (void)state;

        out = round_trip(ok);
        assert_string_equal(out, ok);
        free(out);

        assert_int_equal(to_mp(deep, NULL, &sb), CODEC_TOO_DEEP);
        assert_string_equal(err, "body nests deeper than 32 levels");
        assert_int_equal(sb.size, 0);
        msgpack_sbuffer_destroy(&sb);
        free(ok);
        free(deep);
}

/* A megabyte of '[' must be refused before jansson recurses into it. */
static void test_depth_bomb(void **state) {
        size_t n = 1024 * 1024;
        char *bomb = malloc(n);
        msgpack_sbuffer sb;
        (void)state;

        assert_non_null(bomb);
        memset(bomb, '[', n);
        msgpack_sbuffer_init(&sb);
        assert_int_equal(codec_json_to_msgpack((slice_t){bomb, n}, NULL, &sb,
                                               err, sizeof(err)),
                         CODEC_TOO_DEEP);
        /* Same with an object around it. */
        memcpy(bomb, "{\"a\":", 5);
        assert_int_equal(codec_json_to_msgpack((slice_t){bomb, n}, NULL, &sb,
                                               err, sizeof(err)),
                         CODEC_TOO_DEEP);
        msgpack_sbuffer_destroy(&sb);
        free(bomb);
}

/* Brackets inside strings, escaped quotes included, are not nesting. */
static void test_depth_ignores_strings(void **state) {
        char json[400];
        char *out;
        (void)state;

        strcpy(json, "{\"a\":\"");
        for (int i = 0; i < 100; i++)
                strcat(json, "[{");
        strcat(json, "\\\"[[[[\\\\\",\"b\":[]}");
        out = round_trip(json);
        assert_non_null(strstr(out, "\"b\":[]}"));
        free(out);
}

static void test_path_params(void **state) {
        schema_params_t params = {.n = 2,
                                  .names = {"id", "part"},
                                  .values = {{"42xyz", 2}, {"p-1", 3}}};
        msgpack_sbuffer sb;
        (void)state;

        assert_int_equal(to_mp("{\"a\":1}", &params, &sb), CODEC_OK);
        assert_sb_json(&sb, "{\"a\":1,\"id\":\"42\",\"part\":\"p-1\"}");
        msgpack_sbuffer_destroy(&sb);

        assert_int_equal(to_mp("", &params, &sb), CODEC_OK);
        assert_sb_json(&sb, "{\"id\":\"42\",\"part\":\"p-1\"}");
        msgpack_sbuffer_destroy(&sb);
}

static void test_path_param_conflict(void **state) {
        schema_params_t params = {
                .n = 1, .names = {"id"}, .values = {{"42", 2}}};
        msgpack_sbuffer sb;
        (void)state;

        assert_int_equal(to_mp("{\"a\":1,\"id\":\"43\"}", &params, &sb),
                         CODEC_CONFLICT);
        assert_string_equal(err, "field \"id\" is given both in the path and "
                                 "the body");
        assert_int_equal(sb.size, 0);
        msgpack_sbuffer_destroy(&sb);
}

/* On error the caller's buffer is left as it was; on success appended to. */
static void test_appends_and_restores(void **state) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_unpacked up;
        size_t off = 0;
        (void)state;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_int(&pk, 7);
        assert_int_equal(codec_json_to_msgpack(slice_of("{\"a\":[1"), NULL, &sb,
                                               err, sizeof(err)),
                         CODEC_BAD_JSON);
        assert_int_equal(sb.size, 1);
        assert_int_equal(codec_json_to_msgpack(slice_of("{\"a\":2}"), NULL, &sb,
                                               err, sizeof(err)),
                         CODEC_OK);
        msgpack_unpacked_init(&up);
        assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, &off),
                         MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(up.data.via.u64, 7);
        assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, &off),
                         MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(up.data.type, MSGPACK_OBJECT_MAP);
        assert_int_equal(off, sb.size);
        msgpack_unpacked_destroy(&up);
        msgpack_sbuffer_destroy(&sb);
}

/* The JSON need not be NUL-terminated. */
static void test_json_slice(void **state) {
        const char buf[] = "{\"a\":1}GARBAGE";
        msgpack_sbuffer sb;
        (void)state;

        msgpack_sbuffer_init(&sb);
        assert_int_equal(codec_json_to_msgpack((slice_t){buf, 7}, NULL, &sb,
                                               err, sizeof(err)),
                         CODEC_OK);
        assert_sb_json(&sb, "{\"a\":1}");
        msgpack_sbuffer_destroy(&sb);
}

/* ------------------------------------------------------------------------ */
/* msgpack to JSON                                                          */
/* ------------------------------------------------------------------------ */

static void test_escaping(void **state) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        const char s[] = "q\"b\\s/\n\r\t\b\f\x01\x1f\x7f\0end";
        (void)state;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        codec_pack_slice(&pk, (slice_t){s, sizeof(s) - 1});
        assert_sb_json(&sb, "\"q\\\"b\\\\s/\\u000a\\u000d\\u0009\\u0008"
                            "\\u000c\\u0001\\u001f\x7f\\u0000end\"");
        msgpack_sbuffer_destroy(&sb);
}

static void expect_str_json(const char *bytes, size_t len, const char *expect) {
        msgpack_sbuffer sb;
        msgpack_packer pk;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        codec_pack_slice(&pk, (slice_t){bytes, len});
        assert_sb_json(&sb, expect);
        msgpack_sbuffer_destroy(&sb);
}

#define FFFD "\xef\xbf\xbd"

static void test_invalid_utf8(void **state) {
        (void)state;
        expect_str_json("a\xff"
                        "b",
                        3, "\"a" FFFD "b\"");
        expect_str_json("\xc3", 1, "\"" FFFD "\"");     /* truncated */
        expect_str_json("\xe2\x82", 2, "\"" FFFD "\""); /* one subpart */
        expect_str_json("\xe2\x82x", 3, "\"" FFFD "x\"");
        expect_str_json("\xc0\xaf", 2, "\"" FFFD FFFD "\""); /* overlong */
        expect_str_json("\xed\xa0\x80", 3,
                        "\"" FFFD FFFD FFFD "\""); /* surrogate */
        expect_str_json("\xf4\x90\x80\x80", 4,
                        "\"" FFFD FFFD FFFD FFFD "\""); /* > U+10FFFF */
        expect_str_json("\x80", 1, "\"" FFFD "\"");
        /* Valid sequences of every length pass through. */
        expect_str_json("\x7f\xc2\x80\xe0\xa0\x80\xf0\x90\x80\x80", 10,
                        "\"\x7f\xc2\x80\xe0\xa0\x80\xf0\x90\x80\x80\"");
}

static void test_floats(void **state) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        (void)state;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 6);
        msgpack_pack_double(&pk, NAN);
        msgpack_pack_double(&pk, INFINITY);
        msgpack_pack_double(&pk, -INFINITY);
        msgpack_pack_float(&pk, 0.5f);
        msgpack_pack_double(&pk, 1e21);
        msgpack_pack_double(&pk, 3.0);
        assert_sb_json(&sb, "[null,null,null,0.5,1e+21,3.0]");
        msgpack_sbuffer_destroy(&sb);
}

static void test_bin_base64(void **state) {
        static const struct {
                const char *in;
                const char *out;
        } cases[] = {
                {"", "\"\""},
                {"f", "\"Zg==\""},
                {"fo", "\"Zm8=\""},
                {"foo", "\"Zm9v\""},
                {"foob", "\"Zm9vYg==\""},
                {"fooba", "\"Zm9vYmE=\""},
                {"foobar", "\"Zm9vYmFy\""},
        };
        msgpack_sbuffer sb;
        msgpack_packer pk;
        (void)state;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                msgpack_sbuffer_init(&sb);
                msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                msgpack_pack_bin(&pk, strlen(cases[i].in));
                msgpack_pack_bin_body(&pk, cases[i].in, strlen(cases[i].in));
                assert_sb_json(&sb, cases[i].out);
                msgpack_sbuffer_destroy(&sb);
        }
        /* All byte values, including ones that map to '+' and '/'. */
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_bin(&pk, 3);
        msgpack_pack_bin_body(&pk, "\xfb\xff\xbf", 3);
        assert_sb_json(&sb, "\"+/+/\"");
        msgpack_sbuffer_destroy(&sb);
}

static void test_ext_and_keys(void **state) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        (void)state;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 6);
        msgpack_pack_int(&pk, 1);
        msgpack_pack_ext(&pk, 2, 5);
        msgpack_pack_ext_body(&pk, "ab", 2);
        msgpack_pack_nil(&pk);
        msgpack_pack_int(&pk, -3);
        msgpack_pack_true(&pk);
        msgpack_pack_uint64(&pk, UINT64_MAX);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_int(&pk, 1);
        codec_pack_str(&pk, "a\"");
        msgpack_pack_false(&pk);
        msgpack_pack_bin(&pk, 1);
        msgpack_pack_bin_body(&pk, "f", 1);
        msgpack_pack_int64(&pk, INT64_MIN);
        codec_pack_str(&pk, "k");
        codec_pack_str(&pk, NULL);
        assert_sb_json(&sb, "{\"1\":null,\"null\":-3,"
                            "\"true\":18446744073709551615,"
                            "\"(array)\":false,"
                            "\"Zg==\":-9223372036854775808,\"k\":null}");
        msgpack_sbuffer_destroy(&sb);
}

/* Regression (found by fuzz_msgpack): maps nested as keys used to double
 * the output at every level; 50 bytes became 33 MB. */
static void test_nested_keys_stay_small(void **state) {
        unsigned char in[64];
        size_t n = 0;
        char *out = NULL;
        size_t len = 0;
        (void)state;
        for (int i = 0; i < 24; i++)
                in[n++] = 0x81;
        in[n++] = 0xa1;
        in[n++] = 'a';
        for (int i = 0; i < 24; i++)
                in[n++] = 0xc0;
        assert_int_equal(codec_msgpack_to_json((slice_t){(const char *)in, n},
                                               &out, &len),
                         CODEC_OK);
        assert_true(len < 64);
        free(out);
}

/* Regression (found by fuzz_json): an empty string may come back from
 * msgpack-c as a NULL pointer. */
static void test_empty_string_key_and_value(void **state) {
        char *out = NULL;
        size_t len = 0;
        (void)state;
        assert_int_equal(
                codec_msgpack_to_json((slice_t){"\x81\xa0\xa0", 3}, &out, &len),
                CODEC_OK);
        assert_string_equal(out, "{\"\":\"\"}");
        free(out);
}

static void test_trailing_bytes(void **state) {
        char *out = NULL;
        (void)state;

        assert_int_equal(mp_to_json("\x80\x01", 2, &out), CODEC_BAD_MSGPACK);
        assert_int_equal(mp_to_json("\x01\x01", 2, &out), CODEC_BAD_MSGPACK);
        assert_mp_json("\x80", 1, "{}");
}

/* Every strict prefix of a valid encoding is refused. */
static void test_truncated(void **state) {
        msgpack_sbuffer sb;
        char *out = NULL;
        (void)state;

        assert_int_equal(to_mp("{\"s\":\"hello\",\"n\":-70000,\"u\":"
                               "4000000000,\"f\":1.5,\"a\":[1,{\"b\":null}],"
                               "\"l\":\"0123456789012345678901234567890123"
                               "4567890123456789\"}",
                               NULL, &sb),
                         CODEC_OK);
        for (size_t len = 0; len < sb.size; len++)
                assert_int_equal(mp_to_json(sb.data, len, &out),
                                 CODEC_BAD_MSGPACK);
        assert_int_equal(mp_to_json(sb.data, sb.size, &out), CODEC_OK);
        free(out);
        msgpack_sbuffer_destroy(&sb);
}

static void test_bad_msgpack(void **state) {
        char *out = NULL;
        (void)state;

        assert_int_equal(mp_to_json("", 0, &out), CODEC_BAD_MSGPACK);
        assert_int_equal(codec_msgpack_to_json(SLICE_NULL, &out, NULL),
                         CODEC_BAD_MSGPACK);
        assert_int_equal(mp_to_json("\xc1", 1, &out), CODEC_BAD_MSGPACK);
        /* Counts that claim more elements than there are bytes. */
        assert_int_equal(mp_to_json("\xdd\xff\xff\xff\xff", 5, &out),
                         CODEC_BAD_MSGPACK);
        assert_int_equal(mp_to_json("\xdf\xff\xff\xff\xff\x01\x01", 7, &out),
                         CODEC_BAD_MSGPACK);
        assert_int_equal(mp_to_json("\xdb\xff\xff\xff\xff"
                                    "abc",
                                    8, &out),
                         CODEC_BAD_MSGPACK);
        assert_int_equal(mp_to_json("\x92\x01", 2, &out), CODEC_BAD_MSGPACK);
        assert_int_equal(mp_to_json("\x81\x01", 2, &out), CODEC_BAD_MSGPACK);
        assert_int_equal(mp_to_json("\xcb\x00\x00", 3, &out),
                         CODEC_BAD_MSGPACK);
}

static void test_msgpack_depth(void **state) {
        char bytes[CODEC_MAX_DEPTH + 2];
        char *out = NULL;
        (void)state;

        /* 32 nested one-element arrays around 1 render; 33 do not. */
        memset(bytes, 0x91, sizeof(bytes));
        bytes[CODEC_MAX_DEPTH] = 0x01;
        assert_int_equal(mp_to_json(bytes, CODEC_MAX_DEPTH + 1, &out),
                         CODEC_OK);
        assert_int_equal(strlen(out), 2 * CODEC_MAX_DEPTH + 1);
        free(out);
        bytes[CODEC_MAX_DEPTH] = (char)0x91;
        bytes[CODEC_MAX_DEPTH + 1] = 0x01;
        assert_int_equal(mp_to_json(bytes, CODEC_MAX_DEPTH + 2, &out),
                         CODEC_TOO_DEEP);
}

static void test_alloc_failure(void **state) {
        msgpack_sbuffer sb;
        char *out = NULL;
        long n;
        (void)state;

        /* Big enough that the output buffer grows several times. */
        msgpack_sbuffer_init(&sb);
        {
                msgpack_packer pk;
                char big[3000];
                memset(big, 'x', sizeof(big));
                msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                msgpack_pack_map(&pk, 1);
                codec_pack_str(&pk, "k");
                codec_pack_slice(&pk, (slice_t){big, sizeof(big)});
        }
        for (n = 0; n < 100; n++) {
                codec_err_t e;
                alloc_fail_after(n);
                e = codec_msgpack_to_json((slice_t){sb.data, sb.size}, &out,
                                          NULL);
                alloc_fail_after(-1);
                if (e == CODEC_OK)
                        break;
                assert_int_equal(e, CODEC_NO_MEMORY);
                assert_null(out);
        }
        assert_true(n > 1 && n < 100);
        assert_int_equal(strlen(out), 3000 + 8);
        free(out);
        msgpack_sbuffer_destroy(&sb);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static void test_map_helpers(void **state) {
        msgpack_sbuffer sb;
        msgpack_unpacked up;
        size_t off = 0;
        slice_t s;
        (void)state;

        assert_int_equal(to_mp("{\"a\":\"x\",\"n\":1,\"e\":\"\"}", NULL, &sb),
                         CODEC_OK);
        msgpack_unpacked_init(&up);
        assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, &off),
                         MSGPACK_UNPACK_SUCCESS);
        s = codec_map_str(&up.data, "a");
        assert_int_equal(s.len, 1);
        assert_memory_equal(s.ptr, "x", 1);
        s = codec_map_str(&up.data, "e");
        assert_non_null(s.ptr);
        assert_int_equal(s.len, 0);
        assert_null(codec_map_str(&up.data, "n").ptr);
        assert_null(codec_map_str(&up.data, "zz").ptr);
        assert_null(codec_map_get(&up.data, "zz"));
        assert_null(codec_map_get(&up.data, ""));
        assert_null(codec_map_get(NULL, "a"));
        assert_null(codec_map_get(codec_map_get(&up.data, "n"), "a"));
        assert_int_equal(codec_map_get(&up.data, "n")->via.u64, 1);
        msgpack_unpacked_destroy(&up);
        msgpack_sbuffer_destroy(&sb);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_strerror),
                cmocka_unit_test(test_round_trip_types),
                cmocka_unit_test(test_round_trip_nested),
                cmocka_unit_test(test_round_trip_unicode),
                cmocka_unit_test(test_round_trip_numbers),
                cmocka_unit_test(test_integers_beyond_64_bits),
                cmocka_unit_test(test_msgpack_types),
                cmocka_unit_test(test_empty_body),
                cmocka_unit_test(test_empty_body_null_slice),
                cmocka_unit_test(test_bad_json),
                cmocka_unit_test(test_bad_json_hides_token),
                cmocka_unit_test(test_not_object),
                cmocka_unit_test(test_depth_limit),
                cmocka_unit_test(test_depth_bomb),
                cmocka_unit_test(test_depth_ignores_strings),
                cmocka_unit_test(test_path_params),
                cmocka_unit_test(test_path_param_conflict),
                cmocka_unit_test(test_appends_and_restores),
                cmocka_unit_test(test_json_slice),
                cmocka_unit_test(test_escaping),
                cmocka_unit_test(test_invalid_utf8),
                cmocka_unit_test(test_floats),
                cmocka_unit_test(test_bin_base64),
                cmocka_unit_test(test_ext_and_keys),
                cmocka_unit_test(test_trailing_bytes),
                cmocka_unit_test(test_nested_keys_stay_small),
                cmocka_unit_test(test_empty_string_key_and_value),
                cmocka_unit_test(test_truncated),
                cmocka_unit_test(test_bad_msgpack),
                cmocka_unit_test(test_msgpack_depth),
                cmocka_unit_test(test_alloc_failure),
                cmocka_unit_test(test_map_helpers),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
