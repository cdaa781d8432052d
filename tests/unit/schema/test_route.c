/*
 * test_route.c - unit tests of route matching (schema_route_match in
 * shared/schema_route.c).
 *
 * One small schema set declares routes chosen to collide: a literal and a
 * {param} at the same position, one path under several methods, two
 * parameters. Paths are passed as slices cut out of longer buffers, so
 * nothing relies on a terminating NUL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"

#define STR_FIELD(name) "\"" name "\":{\"type\":\"string\"}"
#define MSG(type, method, path, fields)                                      \
        "{\"type\":\"" type "\",\"version\":1,\"summary\":\"s\",\"route\":{" \
        "\"method\":\"" method "\",\"path\":\"" path "\",\"auth\":false,"    \
        "\"mode\":\"sync\"},\"fields\":{" fields "}}"

/* clang-format off */
static const char routes_json[] =
        "{\"group\":\"r\",\"messages\":["
        MSG("r.get", "GET", "/api/items/{id}", STR_FIELD("id")) ","
        MSG("r.del", "DELETE", "/api/items/{id}", STR_FIELD("id")) ","
        MSG("r.new", "GET", "/api/items/new", "") ","
        MSG("r.list", "GET", "/api/items", "") ","
        MSG("r.create", "POST", "/api/items", STR_FIELD("name")) ","
        MSG("r.part", "GET", "/api/items/{id}/parts/{part}",
            STR_FIELD("part") "," STR_FIELD("id")) ","
        MSG("r.lit_first", "PUT", "/api/a/lit/{y}", STR_FIELD("y")) ","
        MSG("r.param_first", "PUT", "/api/a/{x}/b", STR_FIELD("x")) ","
        "{\"type\":\"r.kafka_only\",\"version\":1,\"summary\":\"s\"}"
        "]}";
/* clang-format on */

static schema_set_t *set;

static int group_setup(void **state) {
        schema_source_t src = {"r.json", routes_json, sizeof(routes_json) - 1};
        char err[256];
        (void)state;

        if (schema_set_load(&set, &src, 1, err, sizeof(err)) != SCHEMA_OK) {
                fprintf(stderr, "%s\n", err);
                return -1;
        }
        return 0;
}

static int group_teardown(void **state) {
        (void)state;
        schema_set_destroy(set);
        return 0;
}

static const schema_msg_t *msg;
static schema_params_t params;
static char allow[64];

static schema_match_t match(const char *method, const char *path) {
        /* Copy into a buffer with junk after it: the slice bounds the path.
         * Static, so the parameter values stay readable after the call. */
        static char buf[20000];
        size_t len = strlen(path);

        assert_true(len + 8 <= sizeof(buf));
        memcpy(buf, path, len);
        memcpy(buf + len, "/junk?x", 8);
        memset(&params, 0xAB, sizeof(params));
        strcpy(allow, "unchanged");
        return schema_route_match(set, slice_of(method), (slice_t){buf, len},
                                  &msg, &params, allow, sizeof(allow));
}

static void expect_found(const char *method, const char *path,
                         const char *type) {
        assert_int_equal(match(method, path), SCHEMA_MATCH_FOUND);
        assert_non_null(msg);
        assert_string_equal(msg->type, type);
        assert_string_equal(allow, "");
}

static void expect_not_found(const char *method, const char *path) {
        assert_int_equal(match(method, path), SCHEMA_MATCH_NOT_FOUND);
        assert_null(msg);
        assert_int_equal(params.n, 0);
        assert_string_equal(allow, "");
}

static void test_found_literal(void **state) {
        (void)state;
        expect_found("GET", "/api/items", "r.list");
        assert_int_equal(params.n, 0);
        expect_found("POST", "/api/items", "r.create");
        assert_int_equal(params.n, 0);
}

static void test_found_params(void **state) {
        char path[] = "/api/items/42/parts/p-7";
        (void)state;

        assert_int_equal(schema_route_match(set, slice_of("GET"),
                                            slice_of(path), &msg, &params, NULL,
                                            0),
                         SCHEMA_MATCH_FOUND);
        assert_string_equal(msg->type, "r.part");
        assert_int_equal(params.n, 2);
        /* In path order, names from the schema, values in the path. */
        assert_string_equal(params.names[0], "id");
        assert_int_equal(params.values[0].len, 2);
        assert_ptr_equal(params.values[0].ptr, path + 11);
        assert_string_equal(params.names[1], "part");
        assert_int_equal(params.values[1].len, 3);
        assert_memory_equal(params.values[1].ptr, "p-7", 3);

        assert_int_equal(schema_route_match(set, slice_of("DELETE"),
                                            slice_of("/api/items/x%2Fy"), &msg,
                                            &params, NULL, 0),
                         SCHEMA_MATCH_FOUND);
        assert_string_equal(msg->type, "r.del");
        assert_int_equal(params.n, 1);
        assert_int_equal(params.values[0].len, 5);
}

static void test_literal_beats_param(void **state) {
        (void)state;
        expect_found("GET", "/api/items/new", "r.new");
        assert_int_equal(params.n, 0);
        expect_found("GET", "/api/items/news", "r.get");
        assert_int_equal(params.n, 1);
        /* The first differing position decides: "lit" beats {x}. */
        expect_found("PUT", "/api/a/lit/b", "r.lit_first");
        assert_string_equal(params.names[0], "y");
        expect_found("PUT", "/api/a/other/b", "r.param_first");
        assert_string_equal(params.names[0], "x");
        expect_found("PUT", "/api/a/lit/c", "r.lit_first");
}

static void test_not_found(void **state) {
        (void)state;
        expect_not_found("GET", "/api/nothing");
        expect_not_found("GET", "/api/items/1/parts");
        expect_not_found("GET", "/api/items/1/parts/2/3");
        expect_not_found("GET", "/api");
        expect_not_found("GET", "/api/ITEMS");
        expect_not_found("GET", "/");
        expect_not_found("GET", "");
        expect_not_found("GET", "api/items");
        /* A message without a route is not reachable. */
        expect_not_found("GET", "/api/r/kafka_only");
}

static void test_method_not_allowed(void **state) {
        (void)state;
        assert_int_equal(match("PATCH", "/api/items/7"),
                         SCHEMA_MATCH_METHOD_NOT_ALLOWED);
        assert_null(msg);
        assert_string_equal(allow, "GET, DELETE");
        assert_int_equal(match("DELETE", "/api/items"),
                         SCHEMA_MATCH_METHOD_NOT_ALLOWED);
        assert_string_equal(allow, "GET, POST");
        /* "new" is the literal route's path (r.new, GET only), not an
         * {id}: the path is resolved before the method, as OpenAPI says. */
        assert_int_equal(match("POST", "/api/items/new"),
                         SCHEMA_MATCH_METHOD_NOT_ALLOWED);
        assert_string_equal(allow, "GET");
}

static void test_method_exact(void **state) {
        (void)state;
        assert_int_equal(match("get", "/api/items"),
                         SCHEMA_MATCH_METHOD_NOT_ALLOWED);
        assert_string_equal(allow, "GET, POST");
        assert_int_equal(match("GET ", "/api/items"),
                         SCHEMA_MATCH_METHOD_NOT_ALLOWED);
        assert_int_equal(match("", "/api/items"),
                         SCHEMA_MATCH_METHOD_NOT_ALLOWED);
}

/* Regression: DELETE /api/sessions/revoke-others (a POST-only literal next
 * to DELETE /api/sessions/{id}) answered 400 (revoke-others is no UUID)
 * where 405 was due: the literal path wins whatever the method. */
static void test_literal_path_wins_over_method(void **state) {
        (void)state;
        assert_int_equal(match("DELETE", "/api/items/new"),
                         SCHEMA_MATCH_METHOD_NOT_ALLOWED);
        assert_null(msg);
        assert_int_equal(params.n, 0);
        assert_string_equal(allow, "GET");
        /* Another value of the parameter still reaches r.del. */
        expect_found("DELETE", "/api/items/old", "r.del");
        /* At the first differing position: "lit" beats {x} for any method,
         * so GET /api/a/lit/b is PUT-only r.lit_first's path. */
        assert_int_equal(match("GET", "/api/a/lit/b"),
                         SCHEMA_MATCH_METHOD_NOT_ALLOWED);
        assert_string_equal(allow, "PUT");
}

static void test_allow_buffer(void **state) {
        char small[6];
        (void)state;

        /* Too small for "GET, DELETE": cut at a whole method, terminated. */
        memset(small, 'x', sizeof(small));
        assert_int_equal(schema_route_match(set, slice_of("PATCH"),
                                            slice_of("/api/items/7"), NULL,
                                            NULL, small, sizeof(small)),
                         SCHEMA_MATCH_METHOD_NOT_ALLOWED);
        assert_string_equal(small, "GET");
        assert_int_equal(schema_route_match(set, slice_of("PATCH"),
                                            slice_of("/api/items/7"), NULL,
                                            NULL, NULL, 0),
                         SCHEMA_MATCH_METHOD_NOT_ALLOWED);
}

static void test_trailing_and_double_slash(void **state) {
        (void)state;
        expect_not_found("GET", "/api/items/");
        expect_not_found("GET", "/api/items/7/");
        expect_not_found("GET", "/api//items");
        expect_not_found("GET", "//api/items");
        expect_not_found("GET", "/api/items//parts/x");
        expect_not_found("GET", "/api/items/7/parts//");
}

static void test_long_paths(void **state) {
        char *path = malloc(17000);
        size_t len;
        (void)state;

        assert_non_null(path);
        /* One very long segment is a fine parameter value. */
        strcpy(path, "/api/items/");
        len = strlen(path);
        memset(path + len, 'a', 16000);
        path[len + 16000] = '\0';
        expect_found("GET", path, "r.get");
        assert_int_equal(params.values[0].len, 16000);

        /* Many segments match nothing, however long. */
        strcpy(path, "/api");
        for (int i = 0; i < 4000; i++)
                strcat(path, "/x");
        expect_not_found("GET", path);
        free(path);
}

static void test_null_set(void **state) {
        (void)state;
        assert_int_equal(schema_route_match(NULL, slice_of("GET"),
                                            slice_of("/api/items"), &msg,
                                            &params, allow, sizeof(allow)),
                         SCHEMA_MATCH_NOT_FOUND);
        assert_int_equal(schema_route_match(set, slice_of("GET"), SLICE_NULL,
                                            &msg, &params, allow,
                                            sizeof(allow)),
                         SCHEMA_MATCH_NOT_FOUND);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_found_literal),
                cmocka_unit_test(test_found_params),
                cmocka_unit_test(test_literal_beats_param),
                cmocka_unit_test(test_not_found),
                cmocka_unit_test(test_method_not_allowed),
                cmocka_unit_test(test_method_exact),
                cmocka_unit_test(test_literal_path_wins_over_method),
                cmocka_unit_test(test_allow_buffer),
                cmocka_unit_test(test_trailing_and_double_slash),
                cmocka_unit_test(test_long_paths),
                cmocka_unit_test(test_null_set),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
