/*
 * test_schema.c - unit tests of schema loading, validation and the OpenAPI
 * document (shared/schema.c). Route matching is in test_route.c.
 *
 * The real schemas/ files are read from the source tree (OMNIFY_SOURCE_DIR)
 * and must load. Every kind of bad definition is checked for its exact
 * message, which names the file and the JSON path, because that message is
 * what fails the build. Validation is checked per violation kind, for all
 * violations at once, and for never echoing the value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "schema.h"

#ifndef OMNIFY_SOURCE_DIR
#error "OMNIFY_SOURCE_DIR must name the source tree"
#endif

static char err[512];

static const char *const group_names[] = {
        "auth",       "integrations", "agentkit",      "analytics",
        "onboarding", "ml",           "infrastructure"};
#define N_GROUPS (sizeof(group_names) / sizeof(group_names[0]))

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static char *read_source_file(const char *rel, size_t *len) {
        char path[1024];
        FILE *f;
        long size;
        char *text;

        snprintf(path, sizeof(path), "%s/%s", OMNIFY_SOURCE_DIR, rel);
        f = fopen(path, "rb");
        assert_non_null(f);
        assert_int_equal(fseek(f, 0, SEEK_END), 0);
        size = ftell(f);
        assert_true(size > 0);
        rewind(f);
        text = malloc((size_t)size + 1);
        assert_non_null(text);
        assert_int_equal(fread(text, 1, (size_t)size, f), (size_t)size);
        text[size] = '\0';
        fclose(f);
        *len = (size_t)size;
        return text;
}

/* Load the seven real files; *texts receives what must be freed. */
static schema_set_t *load_real(char **texts) {
        schema_source_t src[N_GROUPS];
        char names[N_GROUPS][64];
        schema_set_t *set = NULL;

        for (size_t i = 0; i < N_GROUPS; i++) {
                char rel[128];
                snprintf(names[i], sizeof(names[i]), "%s.json", group_names[i]);
                snprintf(rel, sizeof(rel), "schemas/%s.json", group_names[i]);
                texts[i] = read_source_file(rel, &src[i].len);
                src[i].name = names[i];
                src[i].text = texts[i];
        }
        assert_int_equal(schema_set_load(&set, src, N_GROUPS, err, sizeof(err)),
                         SCHEMA_OK);
        assert_string_equal(err, "");
        return set;
}

static void free_texts(char **texts) {
        for (size_t i = 0; i < N_GROUPS; i++)
                free(texts[i]);
}

static schema_err_t load_one(const char *name, const char *text,
                             schema_set_t **set) {
        schema_source_t src = {name, text, strlen(text)};
        memset(err, 0, sizeof(err));
        return schema_set_load(set, &src, 1, err, sizeof(err));
}

static schema_err_t load_two(const char *a, const char *b) {
        schema_source_t src[2] = {{"a.json", a, strlen(a)},
                                  {"b.json", b, strlen(b)}};
        schema_set_t *set = NULL;
        schema_err_t e;

        memset(err, 0, sizeof(err));
        e = schema_set_load(&set, src, 2, err, sizeof(err));
        if (e == SCHEMA_OK)
                assert_non_null(set);
        else
                assert_null(set);
        schema_set_destroy(set);
        return e;
}

/* One message in group t, file t.json: its definition text in msg. */
static void expect_bad(const char *msg, schema_err_t code, const char *text) {
        char doc[2048];
        schema_set_t *set = (schema_set_t *)1;

        snprintf(doc, sizeof(doc), "{\"group\": \"t\", \"messages\": [%s]}",
                 msg);
        assert_int_equal(load_one("t.json", doc, &set), code);
        assert_null(set);
        assert_string_equal(err, text);
}

/* ------------------------------------------------------------------------ */
/* Loading the real files                                                   */
/* ------------------------------------------------------------------------ */

static void test_strerror(void **state) {
        (void)state;
        assert_string_equal(schema_strerror(SCHEMA_OK), "ok");
        assert_string_equal(schema_strerror(SCHEMA_DUPLICATE),
                            "duplicate message type or route");
        assert_string_equal(schema_strerror((schema_err_t)99),
                            "unknown schema error");
}

static void test_real_files(void **state) {
        char *texts[N_GROUPS];
        schema_set_t *set = load_real(texts);
        const schema_msg_t *msg;
        (void)state;

        /* Each group's status plus auth's own routes, which grow. */
        assert_true(schema_set_count(set) >= N_GROUPS + 3);
        assert_int_equal(schema_group_count(set), N_GROUPS);
        for (size_t i = 0; i < N_GROUPS; i++) {
                char type[64], path[64];
                assert_string_equal(schema_group_at(set, i), group_names[i]);
                snprintf(type, sizeof(type), "%s.status", group_names[i]);
                snprintf(path, sizeof(path), "/api/%s/status", group_names[i]);
                msg = schema_find(set, slice_of(type));
                assert_non_null(msg);
                assert_string_equal(msg->group, group_names[i]);
                assert_int_equal(msg->version, 1);
                assert_string_equal(msg->route.method, "GET");
                assert_string_equal(msg->route.path, path);
                assert_false(msg->route.auth);
                assert_int_equal(msg->route.mode, SCHEMA_MODE_SYNC);
                assert_int_equal(msg->n_fields, 0);
        }
        assert_null(schema_group_at(set, N_GROUPS));
        assert_null(schema_set_at(set, schema_set_count(set)));

        msg = schema_find(set, slice_of("auth.signup"));
        assert_non_null(msg);
        assert_string_equal(msg->file, "auth.json");
        assert_string_equal(msg->route.method, "POST");
        assert_int_equal(msg->route.n_segments, 3);
        assert_string_equal(msg->route.segments[0], "api");
        assert_string_equal(msg->route.segments[2], "signup");
        assert_int_equal(msg->n_fields, 3);
        assert_string_equal(msg->fields[0].name, "email");
        assert_int_equal(msg->fields[0].format, SCHEMA_FORMAT_EMAIL);
        assert_int_equal(msg->fields[0].max_length, 254);
        assert_int_equal(msg->fields[0].min_length, -1);
        assert_true(msg->fields[0].required);
        assert_non_null(msg->fields[0].doc);
        assert_int_equal(msg->fields[1].min_length, 10);
        assert_int_equal(msg->fields[1].max_length, 128);
        assert_true(schema_field_is_secret(msg, "password"));
        assert_false(schema_field_is_secret(msg, "email"));
        assert_false(schema_field_is_secret(msg, "nope"));

        msg = schema_find(set, slice_of("auth.login"));
        assert_non_null(msg);
        assert_int_equal(msg->fields[1].min_length, 1);
        msg = schema_find(set, slice_of("auth.me"));
        assert_non_null(msg);
        assert_true(msg->route.auth);
        assert_null(schema_find(set, slice_of("auth.nope")));
        assert_null(schema_find(set, (slice_t){"auth.me", 4}));

        schema_set_destroy(set);
        free_texts(texts);
}

static void test_destroy_null(void **state) {
        (void)state;
        schema_set_destroy(NULL);
        assert_int_equal(schema_set_count(NULL), 0);
}

static void test_minimal_and_kafka_only(void **state) {
        schema_set_t *set = NULL;
        const schema_msg_t *msg;
        (void)state;

        assert_int_equal(load_one("t.json",
                                  "{\"group\":\"t\",\"messages\":[{\"type\":"
                                  "\"t.x.done\",\"version\":3,\"summary\":"
                                  "\"s\",\"additional\":true}]}",
                                  &set),
                         SCHEMA_OK);
        msg = schema_set_at(set, 0);
        assert_string_equal(msg->type, "t.x.done");
        assert_int_equal(msg->version, 3);
        assert_null(msg->route.method);
        assert_true(msg->additional);
        schema_set_destroy(set);

        assert_int_equal(
                load_one("t.json", "{\"group\":\"t\",\"messages\":[]}", &set),
                SCHEMA_OK);
        assert_int_equal(schema_set_count(set), 0);
        schema_set_destroy(set);
}

static void test_path_param_becomes_required(void **state) {
        schema_set_t *set = NULL;
        const schema_msg_t *msg;
        (void)state;

        assert_int_equal(
                load_one("t.json",
                         "{\"group\":\"t\",\"messages\":[{\"type\":\"t.get\","
                         "\"version\":1,\"summary\":\"s\",\"route\":{"
                         "\"method\":\"GET\",\"path\":\"/api/t/{id}\","
                         "\"auth\":true,\"mode\":\"async\"},\"fields\":{"
                         "\"id\":{\"type\":\"string\",\"format\":\"uuid\"},"
                         "\"q\":{\"type\":\"string\",\"in\":\"query\"}}}]}",
                         &set),
                SCHEMA_OK);
        msg = schema_set_at(set, 0);
        assert_true(msg->fields[0].in_path);
        assert_true(msg->fields[0].required);
        assert_false(msg->fields[1].in_path);
        assert_false(msg->fields[1].required);
        assert_int_equal(msg->route.mode, SCHEMA_MODE_ASYNC);
        assert_string_equal(msg->route.segments[2], "{id}");
        schema_set_destroy(set);
}

/* ------------------------------------------------------------------------ */
/* Bad definitions: exact messages                                          */
/* ------------------------------------------------------------------------ */

#define OK_HEAD "\"type\":\"t.a\",\"version\":1,\"summary\":\"s\""
#define ROUTE(m, p)                                     \
        "\"route\":{\"method\":\"" m "\",\"path\":\"" p \
        "\",\"auth\":false,\"mode\":\"sync\"}"

static void test_bad_json(void **state) {
        schema_set_t *set = NULL;
        (void)state;

        assert_int_equal(
                load_one("x.json", "{\"group\": \"t\",\n \"messages\"", &set),
                SCHEMA_BAD_JSON);
        assert_string_equal(err, "x.json: line 2, column 11: ':' expected "
                                 "near end of file");
        assert_int_equal(
                load_one("x.json", "{\"group\":\"t\",\"group\":\"u\"}", &set),
                SCHEMA_BAD_JSON);
        assert_string_equal(err, "x.json: line 1, column 20: duplicate object "
                                 "key near '\"group\"'");
        assert_int_equal(
                load_one("x.json", "{\"group\":\"t\",\"messages\":[]} x", &set),
                SCHEMA_BAD_JSON);
        assert_string_equal(err, "x.json: line 1, column 29: end of file "
                                 "expected near 'x'");
        assert_null(set);
}

static void test_bad_top_level(void **state) {
        schema_set_t *set = NULL;
        (void)state;

        assert_int_equal(load_one("x.json", "[]", &set), SCHEMA_BAD_DEFINITION);
        assert_string_equal(err, "x.json: (root): must be an object");
        assert_int_equal(load_one("x.json",
                                  "{\"group\":\"t\",\"messages\":[],"
                                  "\"extra\":1}",
                                  &set),
                         SCHEMA_BAD_DEFINITION);
        assert_string_equal(err, "x.json: (root).extra: unknown key");
        assert_int_equal(load_one("x.json",
                                  "{\"group\":\"T-1\","
                                  "\"messages\":[]}",
                                  &set),
                         SCHEMA_BAD_DEFINITION);
        assert_string_equal(err, "x.json: group: must be a name in lowercase "
                                 "letters, digits and '_'");
        assert_int_equal(load_one("x.json", "{\"group\":\"t\"}", &set),
                         SCHEMA_BAD_DEFINITION);
        assert_string_equal(err, "x.json: messages: must be an array");
        assert_int_equal(load_one("x.json",
                                  "{\"group\":\"t\","
                                  "\"messages\":[1]}",
                                  &set),
                         SCHEMA_BAD_DEFINITION);
        assert_string_equal(err, "x.json: messages[0]: must be an object");
        assert_null(set);
}

static void test_bad_message(void **state) {
        (void)state;
        expect_bad("{" OK_HEAD ",\"sumary\":\"x\"}", SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].sumary: unknown key");
        expect_bad("{\"type\":\"u.a\",\"version\":1,\"summary\":\"s\"}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].type: must start with \"t.\"");
        expect_bad("{\"type\":\"ta\",\"version\":1,\"summary\":\"s\"}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].type: must start with \"t.\"");
        expect_bad("{\"type\":\"t.\",\"version\":1,\"summary\":\"s\"}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].type: must be \"<group>.<name>\" in "
                   "lowercase letters, digits and '_'");
        expect_bad("{\"type\":\"t.A\",\"version\":1,\"summary\":\"s\"}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].type: must be \"<group>.<name>\" in "
                   "lowercase letters, digits and '_'");
        expect_bad("{\"version\":1,\"summary\":\"s\"}", SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].type: must be a string");
        expect_bad("{\"type\":\"t.a\",\"version\":0,\"summary\":\"s\"}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].version: must be an integer >= 1");
        expect_bad("{\"type\":\"t.a\",\"version\":1.0,\"summary\":\"s\"}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].version: must be an integer >= 1");
        expect_bad("{\"type\":\"t.a\",\"version\":1}", SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].summary: must be a non-empty string");
        expect_bad("{" OK_HEAD ",\"additional\":\"no\"}", SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].additional: must be true or false");
        expect_bad("{" OK_HEAD ",\"fields\":[]}", SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].fields: must be an object");
}

static void test_bad_field(void **state) {
        (void)state;
        expect_bad("{" OK_HEAD ",\"fields\":{\"email\":{\"type\":\"strin\"}}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].fields.email.type: must be one of "
                   "string, integer, number, boolean, object, array, binary");
        expect_bad("{" OK_HEAD ",\"fields\":{\"email\":{}}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].fields.email.type: is required");
        expect_bad("{" OK_HEAD ",\"fields\":{\"email\":{\"type\":\"string\","
                   "\"maxlength\":3}}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].fields.email.maxlength: unknown key");
        expect_bad("{" OK_HEAD ",\"fields\":{\"name\":{\"type\":\"string\","
                   "\"min_length\":5,\"max_length\":4}}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].fields.name: min_length is greater "
                   "than max_length");
        expect_bad("{" OK_HEAD ",\"fields\":{\"n\":{\"type\":\"integer\","
                   "\"minimum\":5,\"maximum\":4}}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].fields.n: minimum is greater than "
                   "maximum");
        expect_bad("{" OK_HEAD ",\"fields\":{\"n\":{\"type\":\"string\","
                   "\"max_length\":-1}}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].fields.n.max_length: must be an "
                   "integer >= 0");
        expect_bad("{" OK_HEAD ",\"fields\":{\"n\":{\"type\":\"string\","
                   "\"max_length\":2.5}}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].fields.n.max_length: must be an "
                   "integer >= 0");
        expect_bad("{" OK_HEAD ",\"fields\":{\"n\":{\"type\":\"integer\","
                   "\"max_length\":2}}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].fields.n.max_length: applies only to "
                   "string, binary and array fields");
        expect_bad("{" OK_HEAD ",\"fields\":{\"n\":{\"type\":\"string\","
                   "\"minimum\":2}}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].fields.n.minimum: applies only to "
                   "integer and number fields");
        expect_bad("{" OK_HEAD ",\"fields\":{\"n\":{\"type\":\"integer\","
                   "\"minimum\":0.5}}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].fields.n.minimum: must be an integer "
                   "between -2^53 and 2^53");
        expect_bad("{" OK_HEAD ",\"fields\":{\"n\":{\"type\":\"number\","
                   "\"maximum\":\"9\"}}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].fields.n.maximum: must be a number");
        expect_bad("{" OK_HEAD ",\"fields\":{\"n\":{\"type\":\"integer\","
                   "\"enum\":[\"a\"]}}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].fields.n.enum: applies only to "
                   "string fields");
        expect_bad("{" OK_HEAD ",\"fields\":{\"n\":{\"type\":\"string\","
                   "\"enum\":[]}}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].fields.n.enum: must be a non-empty "
                   "array of strings");
        expect_bad("{" OK_HEAD ",\"fields\":{\"n\":{\"type\":\"string\","
                   "\"enum\":[\"a\",1]}}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].fields.n.enum: must be a non-empty "
                   "array of strings");
        expect_bad("{" OK_HEAD ",\"fields\":{\"n\":{\"type\":\"string\","
                   "\"enum\":[\"a\",\"a\"]}}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].fields.n.enum: lists a value twice");
        expect_bad("{" OK_HEAD ",\"fields\":{\"n\":{\"type\":\"string\","
                   "\"format\":\"ipv4\"}}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].fields.n.format: must be one of "
                   "email, uuid, date-time, date, uri");
        expect_bad("{" OK_HEAD ",\"fields\":{\"n\":{\"type\":\"array\","
                   "\"format\":\"uuid\"}}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].fields.n.format: applies only to "
                   "string fields");
        expect_bad("{" OK_HEAD ",\"fields\":{\"n\":{\"type\":\"string\","
                   "\"required\":\"yes\"}}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].fields.n.required: must be true or "
                   "false");
        expect_bad("{" OK_HEAD ",\"fields\":{\"n\":{\"type\":\"string\","
                   "\"doc\":1}}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].fields.n.doc: must be a non-empty "
                   "string");
        expect_bad("{" OK_HEAD ",\"fields\":{\"a-b\":{\"type\":\"string\"}}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].fields.a-b: field names are letters, "
                   "digits and '_', at most 64 bytes");
        expect_bad("{" OK_HEAD ",\"fields\":{\"n\":\"string\"}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].fields.n: must be an object");
}

static void test_bad_route(void **state) {
        (void)state;
        expect_bad("{" OK_HEAD "," ROUTE("get", "/api/t/a") "}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].route.method: must be one of GET, "
                   "POST, PUT, PATCH, DELETE");
        expect_bad("{" OK_HEAD "," ROUTE("HEAD", "/api/t/a") "}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].route.method: must be one of GET, "
                   "POST, PUT, PATCH, DELETE");
        expect_bad("{" OK_HEAD "," ROUTE("GET", "/t/a") "}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].route.path: must start with /api/ "
                   "and name a resource");
        expect_bad("{" OK_HEAD "," ROUTE("GET", "/api/") "}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].route.path: must start with /api/ "
                   "and name a resource");
        expect_bad("{" OK_HEAD "," ROUTE("GET", "/api/t/") "}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].route.path: must not have empty "
                   "segments or end with '/'");
        expect_bad("{" OK_HEAD "," ROUTE("GET", "/api//t") "}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].route.path: must not have empty "
                   "segments or end with '/'");
        expect_bad("{" OK_HEAD "," ROUTE("GET", "/api/t a") "}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].route.path: literal segments are "
                   "letters, digits and -._~");
        expect_bad("{" OK_HEAD "," ROUTE("GET", "/api/t/x{id}") "}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].route.path: literal segments are "
                   "letters, digits and -._~");
        expect_bad("{" OK_HEAD "," ROUTE("GET", "/api/t/{}") "}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].route.path: parameter segments are "
                   "{name} with a field name");
        expect_bad("{" OK_HEAD "," ROUTE("GET", "/api/operations/{id}") "}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].route.path: /api/operations is "
                   "reserved for the edge");
        expect_bad("{" OK_HEAD "," ROUTE("GET", "/api/t/{id}") "}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].route.path: parameter {id} is not a "
                   "declared field");
        expect_bad("{" OK_HEAD
                   "," ROUTE("GET",
                             "/api/t/{id}") ",\"fields\":{"
                                            "\"id\":{\"type\":\"object\"}}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].route.path: parameter {id} must be "
                   "declared as a string, integer, number or boolean field");
        expect_bad(
                "{" OK_HEAD "," ROUTE(
                        "GET",
                        "/api/t/{id}/{id}") ",\"fields\""
                                            ":{\"id\":{\"type\":\"string\"}}}",
                SCHEMA_BAD_DEFINITION,
                "t.json: messages[0].route.path: names parameter {id} "
                "twice");
        expect_bad("{" OK_HEAD ",\"route\":{\"method\":\"GET\",\"path\":"
                   "\"/api/t\",\"auth\":false}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].route.mode: must be \"sync\" or "
                   "\"async\"");
        expect_bad("{" OK_HEAD ",\"route\":{\"method\":\"GET\",\"path\":"
                   "\"/api/t\",\"mode\":\"sync\"}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].route.auth: must be true or false");
        expect_bad("{" OK_HEAD ",\"route\":{\"method\":\"GET\",\"path\":"
                   "\"/api/t\",\"auth\":false,\"mode\":\"sync\","
                   "\"authh\":true}}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].route.authh: unknown key");
        expect_bad("{" OK_HEAD ",\"route\":\"GET /api/t\"}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].route: must be an object");
        expect_bad("{" OK_HEAD "," ROUTE("GET", "/api/{a}/{b}/{c}/{d}/{e}/{f}/"
                                                "{g}/{h}/{i}") "}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].route.path: has more than 8 "
                   "parameters");
        expect_bad("{" OK_HEAD "," ROUTE("GET", "/api/1/2/3/4/5/6/7/8/9/10/11/"
                                                "12/13/14/15/16") "}",
                   SCHEMA_BAD_DEFINITION,
                   "t.json: messages[0].route.path: has more than 16 "
                   "segments");
}

static void test_duplicates(void **state) {
        (void)state;
        /* The same type in two files. */
        assert_int_equal(
                load_two("{\"group\":\"t\",\"messages\":[{" OK_HEAD "}]}",
                         "{\"group\":\"t\",\"messages\":[{" OK_HEAD "}]}"),
                SCHEMA_DUPLICATE);
        assert_string_equal(err, "b.json: messages[0].type: t.a is already "
                                 "declared in a.json");
        /* The same type twice in one file. */
        assert_int_equal(load_two("{\"group\":\"t\",\"messages\":[{" OK_HEAD
                                  "},{" OK_HEAD "}]}",
                                  "{\"group\":\"u\",\"messages\":[]}"),
                         SCHEMA_DUPLICATE);
        assert_string_equal(err, "a.json: messages[1].type: t.a is already "
                                 "declared in a.json");
        /* The same method and path shape, parameters named differently. */
        assert_int_equal(
                load_two("{\"group\":\"t\",\"messages\":[{" OK_HEAD
                         "," ROUTE("GET",
                                   "/api/x/{id}") ",\"fields\":{\"id\":{"
                                                  "\"type\":\"string\"}}}]}",
                         "{\"group\":\"u\",\"messages\":[{\"type\":\"u.b\","
                         "\"version\":1,\"summary\":\"s\"," ROUTE(
                                 "GET",
                                 "/api/x/{key}") ",\"fields\":{\"key\":{"
                                                 "\"type\":\"string\"}}}]}"),
                SCHEMA_DUPLICATE);
        assert_string_equal(err, "b.json: messages[0].route: GET /api/x/{key} "
                                 "is already routed to t.a in a.json");
        /* Another method on the same shape must spell it the same way. */
        assert_int_equal(
                load_two("{\"group\":\"t\",\"messages\":[{" OK_HEAD
                         "," ROUTE("GET",
                                   "/api/x/{id}") ",\"fields\":{\"id\":{"
                                                  "\"type\":\"string\"}}}]}",
                         "{\"group\":\"u\",\"messages\":[{\"type\":\"u.b\","
                         "\"version\":1,\"summary\":\"s\"," ROUTE(
                                 "DELETE",
                                 "/api/x/{key}") ",\"fields\":{\"key\":"
                                                 "{\"type\":\"string\"}}}]}"),
                SCHEMA_BAD_DEFINITION);
        assert_string_equal(err, "b.json: messages[0].route: path must name "
                                 "its parameters as /api/x/{id} does (t.a in "
                                 "a.json)");
        /* Different methods, same path: fine. Literal vs param: fine. */
        assert_int_equal(
                load_two("{\"group\":\"t\",\"messages\":[{" OK_HEAD
                         "," ROUTE("GET",
                                   "/api/x/{id}") ",\"fields\":{\"id\":{"
                                                  "\"type\":\"string\"}}}]}",
                         "{\"group\":\"u\",\"messages\":[{\"type\":\"u.b\","
                         "\"version\":1,\"summary\":\"s\"," ROUTE(
                                 "DELETE",
                                 "/api/x/{id}") ",\"fields\":{\"id\":"
                                                "{\"type\":\"string\"}}},{"
                                                "\"type\":\"u.c\","
                                                "\"version\":1,\"summary\":"
                                                "\"s\"," ROUTE(
                                                        "GET",
                                                        "/api/x/new") "}]}"),
                SCHEMA_OK);
        /* Groups repeated across files are one group. */
        assert_int_equal(load_two("{\"group\":\"t\",\"messages\":[]}",
                                  "{\"group\":\"t\",\"messages\":[]}"),
                         SCHEMA_OK);
}

static void test_errstr_optional(void **state) {
        schema_set_t *set = NULL;
        schema_source_t src = {"t.json", "[", 1};
        char tiny[8];
        (void)state;

        assert_int_equal(schema_set_load(&set, &src, 1, NULL, 0),
                         SCHEMA_BAD_JSON);
        assert_int_equal(schema_set_load(&set, &src, 1, tiny, sizeof(tiny)),
                         SCHEMA_BAD_JSON);
        assert_string_equal(tiny, "t.json:");
        assert_null(set);
}

/* ------------------------------------------------------------------------ */
/* Validation                                                               */
/* ------------------------------------------------------------------------ */

static const char all_types[] =
        "{\"group\":\"t\",\"messages\":[{\"type\":\"t.all\",\"version\":1,"
        "\"summary\":\"every kind of field\",\"fields\":{"
        "\"s\":{\"type\":\"string\",\"min_length\":2,\"max_length\":5},"
        "\"e\":{\"type\":\"string\",\"enum\":[\"red\",\"green\"]},"
        "\"em\":{\"type\":\"string\",\"format\":\"email\"},"
        "\"id\":{\"type\":\"string\",\"format\":\"uuid\"},"
        "\"ts\":{\"type\":\"string\",\"format\":\"date-time\"},"
        "\"n\":{\"type\":\"integer\",\"minimum\":-3,\"maximum\":10},"
        "\"x\":{\"type\":\"number\",\"minimum\":-1.5,\"maximum\":2.5},"
        "\"b\":{\"type\":\"boolean\"},"
        "\"o\":{\"type\":\"object\"},"
        "\"a\":{\"type\":\"array\",\"min_length\":1,\"max_length\":2},"
        "\"pw\":{\"type\":\"string\",\"required\":true,\"secret\":true}}},"
        "{\"type\":\"t.open\",\"version\":1,\"summary\":\"s\","
        "\"additional\":true,\"fields\":{\"k\":{\"type\":\"string\"}}}]}";

typedef struct fixture {
        schema_set_t *set;
        const schema_msg_t *all;
        const schema_msg_t *open;
        msgpack_sbuffer sb;
        msgpack_unpacked up;
        schema_report_t report;
} fixture_t;

static int fixture_setup(void **state) {
        fixture_t *fx = calloc(1, sizeof(*fx));

        assert_non_null(fx);
        assert_int_equal(load_one("t.json", all_types, &fx->set), SCHEMA_OK);
        fx->all = schema_find(fx->set, slice_of("t.all"));
        fx->open = schema_find(fx->set, slice_of("t.open"));
        msgpack_sbuffer_init(&fx->sb);
        msgpack_unpacked_init(&fx->up);
        *state = fx;
        return 0;
}

static int fixture_teardown(void **state) {
        fixture_t *fx = *state;

        msgpack_unpacked_destroy(&fx->up);
        msgpack_sbuffer_destroy(&fx->sb);
        schema_set_destroy(fx->set);
        free(fx);
        return 0;
}

/* Unpack what is in fx->sb. */
static const msgpack_object *unpack(fixture_t *fx) {
        size_t off = 0;

        assert_int_equal(
                msgpack_unpack_next(&fx->up, fx->sb.data, fx->sb.size, &off),
                MSGPACK_UNPACK_SUCCESS);
        return &fx->up.data;
}

/* A body from JSON text, through the codec. */
static const msgpack_object *body(fixture_t *fx, const char *json) {
        char e[128];

        fx->sb.size = 0;
        assert_int_equal(codec_json_to_msgpack(slice_of(json), NULL, &fx->sb, e,
                                               sizeof(e)),
                         CODEC_OK);
        return unpack(fx);
}

/* Validate json against msg: expect exactly one violation, and that neither
 * its field nor its reason quotes secret (the offending value). */
static void expect_one(fixture_t *fx, const schema_msg_t *msg, const char *json,
                       const char *field, const char *reason,
                       const char *secret) {
        assert_false(schema_validate(msg, body(fx, json), &fx->report));
        assert_int_equal(fx->report.n, 1);
        assert_false(fx->report.truncated);
        assert_string_equal(fx->report.v[0].field, field);
        assert_string_equal(fx->report.v[0].reason, reason);
        if (secret) {
                assert_null(strstr(fx->report.v[0].reason, secret));
                assert_null(strstr(fx->report.v[0].field, secret));
        }
}

static void expect_valid(fixture_t *fx, const schema_msg_t *msg,
                         const char *json) {
        bool ok = schema_validate(msg, body(fx, json), &fx->report);
        if (!ok)
                fail_msg("%s: %s: %s", json, fx->report.v[0].field,
                         fx->report.v[0].reason);
        assert_int_equal(fx->report.n, 0);
}

#define PW "\"pw\":\"Zq9secret\""

static void test_validate_ok(void **state) {
        fixture_t *fx = *state;

        expect_valid(fx, fx->all, "{" PW "}");
        expect_valid(
                fx, fx->all,
                "{\"s\":\"ab\",\"e\":\"green\",\"em\":\"a.b+c@ex.co.uk\","
                "\"id\":\"0190A1B2-c3d4-7e5f-8a9b-0c1d2e3f4a5b\","
                "\"ts\":\"2024-02-29T23:59:60.123456+05:30\",\"n\":-3,"
                "\"x\":2.5,\"b\":false,\"o\":{\"k\":[1]},\"a\":[1,\"2\"]," PW
                "}");
        expect_valid(fx, fx->all, "{\"n\":10,\"x\":-1,\"s\":\"abcde\"," PW "}");
        /* Without a report, only the answer. */
        assert_true(schema_validate(fx->all, body(fx, "{" PW "}"), NULL));
        assert_false(schema_validate(fx->all, body(fx, "{}"), NULL));
}

static void test_validate_missing_required(void **state) {
        fixture_t *fx = *state;

        expect_one(fx, fx->all, "{\"s\":\"abc\"}", "pw", "is required", NULL);
}

static void test_validate_wrong_types(void **state) {
        static const struct {
                const char *json;
                const char *field;
                const char *reason;
        } cases[] = {
                {"{\"s\":12345," PW "}", "s", "must be a string"},
                {"{\"s\":null," PW "}", "s", "must be a string"},
                {"{\"n\":\"12345\"," PW "}", "n", "must be an integer"},
                {"{\"n\":1.0," PW "}", "n", "must be an integer"},
                {"{\"n\":true," PW "}", "n", "must be an integer"},
                {"{\"x\":\"1.5\"," PW "}", "x", "must be a number"},
                {"{\"b\":\"true\"," PW "}", "b", "must be true or false"},
                {"{\"b\":1," PW "}", "b", "must be true or false"},
                {"{\"o\":[]," PW "}", "o", "must be an object"},
                {"{\"a\":{}," PW "}", "a", "must be an array"},
                {"{\"pw\":98765}", "pw", "must be a string"},
        };
        fixture_t *fx = *state;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                expect_one(fx, fx->all, cases[i].json, cases[i].field,
                           cases[i].reason, NULL);
}

static void test_validate_limits(void **state) {
        fixture_t *fx = *state;

        expect_one(fx, fx->all, "{\"s\":\"Q\"," PW "}", "s",
                   "must be at least 2 characters long", "Q\"");
        expect_one(fx, fx->all, "{\"s\":\"Qwerty\"," PW "}", "s",
                   "must be at most 5 characters long", "Qwerty");
        /* Characters, as JSON Schema counts them: five two-byte characters
         * (10 bytes) fit, six do not. */
        expect_valid(fx, fx->all,
                     "{\"s\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"," PW
                     "}");
        expect_one(fx, fx->all,
                   "{\"s\":"
                   "\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"," PW
                   "}",
                   "s", "must be at most 5 characters long", "\xc3\xa9");
        /* NUL is valid JSON but no declared string holds one. */
        expect_one(fx, fx->all, "{\"s\":\"a\\u0000b\"," PW "}", "s",
                   "must not contain NUL characters", NULL);
        expect_one(fx, fx->all, "{\"n\":-4," PW "}", "n", "must be at least -3",
                   "-4");
        expect_one(fx, fx->all, "{\"n\":11," PW "}", "n", "must be at most 10",
                   "11");
        expect_one(fx, fx->all, "{\"n\":9223372036854775807," PW "}", "n",
                   "must be at most 10", NULL);
        expect_one(fx, fx->all, "{\"n\":-9223372036854775808," PW "}", "n",
                   "must be at least -3", NULL);
        expect_one(fx, fx->all, "{\"x\":-1.75," PW "}", "x",
                   "must be at least -1.5", "1.75");
        expect_one(fx, fx->all, "{\"x\":3," PW "}", "x", "must be at most 2.5",
                   NULL);
        expect_one(fx, fx->all, "{\"a\":[]," PW "}", "a",
                   "must have at least 1 items", NULL);
        expect_one(fx, fx->all, "{\"a\":[1,2,3]," PW "}", "a",
                   "must have at most 2 items", NULL);
}

static void test_validate_enum(void **state) {
        fixture_t *fx = *state;

        expect_one(fx, fx->all, "{\"e\":\"Blu3\"," PW "}", "e",
                   "must be one of: red, green", "Blu3");
        expect_one(fx, fx->all, "{\"e\":\"Red\"," PW "}", "e",
                   "must be one of: red, green", NULL);
}

static void test_validate_email(void **state) {
        static const char *const bad[] = {
                "plainaddr",  "@ex.com",      "someone@",         "a@b@ex.com",
                "a b@ex.com", "ab@excom",     "ab@.ex.com",       "ab@ex.com.",
                "ab@ex..com", "ab@ex.com\\t", "ab\\u0001@ex.com",
        };
        static const char *const good[] = {
                "a@b.co", "first.last+tag@sub.ex.org", "x@\xc3\xa9x.fr"};
        fixture_t *fx = *state;
        char json[128];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(json, sizeof(json), "{\"em\":\"%s\"," PW "}", bad[i]);
                expect_one(fx, fx->all, json, "em", "must be an email address",
                           "@");
        }
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                snprintf(json, sizeof(json), "{\"em\":\"%s\"," PW "}", good[i]);
                expect_valid(fx, fx->all, json);
        }
}

static void test_validate_uuid(void **state) {
        static const char *const bad[] = {
                "",
                "0190a1b2c3d47e5f8a9b0c1d2e3f4a5b",
                "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5",
                "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5bb",
                "0190a1b2-c3d4-7e5f-8a9b_0c1d2e3f4a5b",
                "0190a1b2-c3d4-7e5f-8a9g-0c1d2e3f4a5b",
                "{190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        };
        fixture_t *fx = *state;
        char json[128];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(json, sizeof(json), "{\"id\":\"%s\"," PW "}", bad[i]);
                expect_one(fx, fx->all, json, "id", "must be a UUID", "0190");
        }
        expect_valid(fx, fx->all,
                     "{\"id\":\"00000000-0000-0000-0000-000000000000\"," PW
                     "}");
}

static void test_validate_date_time(void **state) {
        static const char *const bad[] = {
                "2024-01-01",
                "2024-01-01T00:00:00",
                "2024-01-01 00:00:00Z",
                "2024-1-01T00:00:00Z",
                "2024-13-01T00:00:00Z",
                "2024-00-01T00:00:00Z",
                "2024-04-31T00:00:00Z",
                "2023-02-29T00:00:00Z",
                "1900-02-29T00:00:00Z",
                "2024-01-01T24:00:00Z",
                "2024-01-01T00:60:00Z",
                "2024-01-01T00:00:61Z",
                "2024-01-01T00:00:00.Z",
                "2024-01-01T00:00:00+0100",
                "2024-01-01T00:00:00+24:00",
                "2024-01-01T00:00:00Zjunk",
                "2024-01-01T00:00:00ZZ",
        };
        static const char *const good[] = {
                "2024-01-01T00:00:00Z",
                "2000-02-29t12:30:45z",
                "1999-12-31T23:59:59.5-08:00",
                "2024-06-30T23:59:60+00:00",
        };
        fixture_t *fx = *state;
        char json[128];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(json, sizeof(json), "{\"ts\":\"%s\"," PW "}", bad[i]);
                expect_one(fx, fx->all, json, "ts",
                           "must be an RFC 3339 date-time", "20");
        }
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                snprintf(json, sizeof(json), "{\"ts\":\"%s\"," PW "}", good[i]);
                expect_valid(fx, fx->all, json);
        }
}

static void test_validate_undeclared(void **state) {
        fixture_t *fx = *state;

        expect_one(fx, fx->all, "{\"passwd\":\"x\"," PW "}", "passwd",
                   "is not a field of t.all", NULL);
        /* additional: true lets them through. */
        expect_valid(fx, fx->open, "{\"k\":\"v\",\"other\":[1,{\"x\":2}]}");
        expect_one(fx, fx->open, "{\"k\":1}", "k", "must be a string", NULL);
}

static void test_validate_not_map(void **state) {
        fixture_t *fx = *state;
        msgpack_packer pk;

        fx->sb.size = 0;
        msgpack_packer_init(&pk, &fx->sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 0);
        assert_false(schema_validate(fx->all, unpack(fx), &fx->report));
        assert_int_equal(fx->report.n, 1);
        assert_string_equal(fx->report.v[0].field, "");
        assert_string_equal(fx->report.v[0].reason,
                            "the body must be a JSON object");
        assert_false(schema_validate(fx->all, NULL, &fx->report));
        assert_int_equal(fx->report.n, 1);
}

/* Bodies from Kafka come as msgpack and may be anything. */
static void test_validate_raw_msgpack(void **state) {
        fixture_t *fx = *state;
        msgpack_packer pk;

        fx->sb.size = 0;
        msgpack_packer_init(&pk, &fx->sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 7);
        codec_pack_str(&pk, "pw");
        codec_pack_slice(&pk, (slice_t){"Zq\xff\xfe", 4}); /* bad UTF-8 */
        msgpack_pack_int(&pk, 5);                          /* non-string key */
        msgpack_pack_int(&pk, 5);
        codec_pack_slice(&pk, (slice_t){"\xc0\x80", 2}); /* bad UTF-8 key */
        msgpack_pack_int(&pk, 5);
        codec_pack_str(&pk, "o");
        msgpack_pack_map(&pk, 1);
        codec_pack_str(&pk, "k");
        codec_pack_slice(&pk, (slice_t){"\xed\xa0\x80", 3});
        codec_pack_str(&pk, "x");
        msgpack_pack_double(&pk, NAN);
        codec_pack_str(&pk, "s");
        codec_pack_str(&pk, "ab");
        codec_pack_str(&pk, "s");
        codec_pack_str(&pk, "abc");

        assert_false(schema_validate(fx->all, unpack(fx), &fx->report));
        assert_int_equal(fx->report.n, 6);
        assert_string_equal(fx->report.v[0].field, "pw");
        assert_string_equal(fx->report.v[0].reason, "must be valid UTF-8 text");
        assert_string_equal(fx->report.v[1].field, "");
        assert_string_equal(fx->report.v[1].reason,
                            "field names must be strings");
        assert_string_equal(fx->report.v[2].field, "");
        assert_string_equal(fx->report.v[2].reason,
                            "a field name is not valid UTF-8 text");
        assert_string_equal(fx->report.v[3].field, "o");
        assert_string_equal(fx->report.v[3].reason,
                            "contains text that is not valid UTF-8");
        assert_string_equal(fx->report.v[4].field, "x");
        assert_string_equal(fx->report.v[4].reason, "must be a finite number");
        assert_string_equal(fx->report.v[5].field, "s");
        assert_string_equal(fx->report.v[5].reason, "is given more than once");
}

/* Integers beyond int64 only come as msgpack. */
static void test_validate_uint64(void **state) {
        fixture_t *fx = *state;
        msgpack_packer pk;

        fx->sb.size = 0;
        msgpack_packer_init(&pk, &fx->sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 3);
        codec_pack_str(&pk, "pw");
        codec_pack_str(&pk, "Zq9secret");
        codec_pack_str(&pk, "n");
        msgpack_pack_uint64(&pk, UINT64_MAX);
        codec_pack_str(&pk, "x");
        msgpack_pack_uint64(&pk, UINT64_MAX);
        assert_false(schema_validate(fx->all, unpack(fx), &fx->report));
        assert_int_equal(fx->report.n, 2);
        assert_string_equal(fx->report.v[0].reason, "must be at most 10");
        assert_string_equal(fx->report.v[1].reason, "must be at most 2.5");
}

/*
 * msgpack-c's unpacker stops at 32 levels itself, so a deeper value can only
 * be built by hand; the check still guards objects made some other way.
 */
static void test_validate_nesting(void **state) {
        fixture_t *fx = *state;
        msgpack_object chain[40], top;
        msgpack_object_kv kv[2];

        for (int i = 0; i < 40; i++) {
                chain[i].type = MSGPACK_OBJECT_ARRAY;
                chain[i].via.array.size = i < 39 ? 1 : 0;
                chain[i].via.array.ptr = i < 39 ? &chain[i + 1] : NULL;
        }
        kv[0].key.type = MSGPACK_OBJECT_STR;
        kv[0].key.via.str = (msgpack_object_str){2, "pw"};
        kv[0].val.type = MSGPACK_OBJECT_STR;
        kv[0].val.via.str = (msgpack_object_str){3, "Zq9"};
        kv[1].key.type = MSGPACK_OBJECT_STR;
        kv[1].key.via.str = (msgpack_object_str){1, "o"};
        kv[1].val.type = MSGPACK_OBJECT_MAP;
        kv[1].val.via.map = (msgpack_object_map){1, NULL};
        {
                msgpack_object_kv inner = {kv[1].key, chain[0]};
                kv[1].val.via.map.ptr = &inner;
                top.type = MSGPACK_OBJECT_MAP;
                top.via.map = (msgpack_object_map){2, kv};
                assert_false(schema_validate(fx->all, &top, &fx->report));
        }
        assert_int_equal(fx->report.n, 1);
        assert_string_equal(fx->report.v[0].field, "o");
        assert_string_equal(fx->report.v[0].reason, "nests too deeply");
}

/* Every problem at once, and no value anywhere in the report. */
static void test_validate_many(void **state) {
        fixture_t *fx = *state;
        const char *values[] = {"Xy1",         "Qwertyuiop", "Mauve",
                                "nobody.here", "Not-A-Uuid", "Yesterday"};

        assert_false(schema_validate(
                fx->all,
                body(fx, "{\"s\":\"Qwertyuiop\",\"e\":\"Mauve\",\"em\":"
                         "\"nobody.here\",\"id\":\"Not-A-Uuid\",\"ts\":"
                         "\"Yesterday\",\"n\":99,\"x\":\"Xy1\",\"b\":null,"
                         "\"extra\":1}"),
                &fx->report));
        assert_int_equal(fx->report.n, 10);
        assert_string_equal(fx->report.v[0].field, "s");
        assert_string_equal(fx->report.v[1].field, "e");
        assert_string_equal(fx->report.v[2].field, "em");
        assert_string_equal(fx->report.v[3].field, "id");
        assert_string_equal(fx->report.v[4].field, "ts");
        assert_string_equal(fx->report.v[5].field, "n");
        assert_string_equal(fx->report.v[6].field, "x");
        assert_string_equal(fx->report.v[7].field, "b");
        assert_string_equal(fx->report.v[8].field, "extra");
        assert_string_equal(fx->report.v[9].field, "pw");
        for (size_t i = 0; i < fx->report.n; i++)
                for (size_t k = 0; k < sizeof(values) / sizeof(values[0]); k++)
                        assert_null(strstr(fx->report.v[i].reason, values[k]));
}

static void test_validate_truncated(void **state) {
        fixture_t *fx = *state;
        char json[2048];
        size_t len = 0;

        len += (size_t)snprintf(json + len, sizeof(json) - len, "{" PW);
        for (int i = 0; i < 40; i++)
                len += (size_t)snprintf(json + len, sizeof(json) - len,
                                        ",\"f%d\":1", i);
        snprintf(json + len, sizeof(json) - len, "}");
        assert_false(schema_validate(fx->all, body(fx, json), &fx->report));
        assert_int_equal(fx->report.n, SCHEMA_MAX_VIOLATIONS);
        assert_true(fx->report.truncated);
        assert_string_equal(fx->report.v[31].field, "f31");
}

static void test_validate_long_field_name(void **state) {
        fixture_t *fx = *state;
        char json[600];
        size_t len;

        /* 200 bytes of 'é' (2 bytes each): cut on a character boundary. */
        strcpy(json, "{\"");
        len = strlen(json);
        for (int i = 0; i < 100; i++) {
                memcpy(json + len, "\xc3\xa9", 2);
                len += 2;
        }
        strcpy(json + len, "\":1," PW "}");
        assert_false(schema_validate(fx->all, body(fx, json), &fx->report));
        assert_int_equal(fx->report.n, 1);
        assert_int_equal(strlen(fx->report.v[0].field), 126);
        assert_string_equal(fx->report.v[0].reason, "is not a field of t.all");
}

/* ------------------------------------------------------------------------ */
/* OpenAPI                                                                  */
/* ------------------------------------------------------------------------ */

static json_t *operation(json_t *doc, const char *path, const char *method) {
        json_t *item = json_object_get(json_object_get(doc, "paths"), path);
        assert_non_null(item);
        assert_non_null(json_object_get(item, method));
        return json_object_get(item, method);
}

static void test_openapi_real(void **state) {
        char *texts[N_GROUPS];
        schema_set_t *set = load_real(texts);
        char *text = schema_openapi(set, "1.2.3");
        json_error_t jerr;
        json_t *doc, *op, *schema, *resp;
        (void)state;

        assert_non_null(text);
        doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        assert_non_null(doc);
        assert_string_equal(json_string_value(json_object_get(doc, "openapi")),
                            "3.1.0");
        assert_string_equal(json_string_value(json_object_get(
                                    json_object_get(doc, "info"), "title")),
                            "Omnify API");
        assert_string_equal(json_string_value(json_object_get(
                                    json_object_get(doc, "info"), "version")),
                            "1.2.3");

        /* Every routed message, under its path and method. */
        for (size_t i = 0; i < schema_set_count(set); i++) {
                const schema_msg_t *msg = schema_set_at(set, i);
                char method[8] = {0};
                if (!msg->route.method)
                        continue;
                for (size_t k = 0; msg->route.method[k]; k++)
                        method[k] = (char)(msg->route.method[k] + 32);
                op = operation(doc, msg->route.path, method);
                assert_string_equal(
                        json_string_value(json_object_get(op, "operationId")),
                        msg->type);
                assert_string_equal(
                        json_string_value(json_object_get(op, "summary")),
                        msg->summary);
                resp = json_object_get(op, "responses");
                {
                        /* The success status the route declares. */
                        char ok[8];
                        snprintf(ok, sizeof(ok), "%d",
                                 msg->route.mode == SCHEMA_MODE_ASYNC
                                         ? 202
                                         : msg->route.success);
                        assert_non_null(json_object_get(resp, ok));
                }
                assert_string_equal(
                        json_string_value(json_object_get(
                                json_object_get(resp, "400"), "$ref")),
                        "#/components/responses/BadRequest");
                /* A synchronous route may time out; an async one answers
                 * 202 once the broker has the command, a stream 200 and
                 * then events: neither lists 504. */
                if (msg->route.mode == SCHEMA_MODE_SYNC && !msg->route.stream)
                        assert_non_null(json_object_get(resp, "504"));
                /* Every operation says its security: bearer or none. */
                assert_int_equal(
                        json_array_size(json_object_get(op, "security")),
                        msg->route.auth ? 1 : 0);
                if (strcmp(method, "get") == 0)
                        assert_null(json_object_get(op, "requestBody"));
        }

        op = operation(doc, "/api/auth/signup", "post");
        schema = json_object_get(
                json_object_get(
                        json_object_get(json_object_get(op, "requestBody"),
                                        "content"),
                        "application/json"),
                "schema");
        assert_non_null(schema);
        assert_true(json_is_true(json_object_get(
                json_object_get(json_object_get(schema, "properties"),
                                "password"),
                "writeOnly")));
        assert_null(json_object_get(
                json_object_get(json_object_get(schema, "properties"), "email"),
                "writeOnly"));
        assert_string_equal(
                json_string_value(json_object_get(
                        json_object_get(json_object_get(schema, "properties"),
                                        "email"),
                        "format")),
                "email");
        assert_int_equal(json_array_size(json_object_get(schema, "required")),
                         3);
        assert_true(
                json_is_false(json_object_get(schema, "additionalProperties")));

        op = operation(doc, "/api/auth/me", "get");
        assert_non_null(json_object_get(
                json_array_get(json_object_get(op, "security"), 0),
                "bearerAuth"));

        /* The edge's own routes. */
        operation(doc, "/health", "get");
        operation(doc, "/ready", "get");
        op = operation(doc, "/metrics", "get");
        assert_non_null(json_object_get(
                json_object_get(
                        json_object_get(json_object_get(op, "responses"),
                                        "200"),
                        "content"),
                "text/plain"));
        operation(doc, "/openapi.json", "get");
        op = operation(doc, "/api/operations/{id}", "get");
        assert_string_equal(
                json_string_value(json_object_get(
                        json_array_get(json_object_get(op, "parameters"), 0),
                        "in")),
                "path");

        /* Components. */
        schema = json_object_get(
                json_object_get(json_object_get(doc, "components"), "schemas"),
                "Problem");
        assert_non_null(json_object_get(json_object_get(schema, "properties"),
                                        "errors"));
        assert_string_equal(
                json_string_value(json_object_get(
                        json_object_get(
                                json_object_get(
                                        json_object_get(doc, "components"),
                                        "securitySchemes"),
                                "bearerAuth"),
                        "scheme")),
                "bearer");

        json_decref(doc);
        free(text);
        schema_set_destroy(set);
        free_texts(texts);
}

static void test_openapi_params_and_async(void **state) {
        schema_set_t *set = NULL;
        char *text;
        json_t *doc, *op, *param;
        (void)state;

        assert_int_equal(
                load_one("t.json",
                         "{\"group\":\"t\",\"messages\":[{\"type\":\"t.put\","
                         "\"version\":1,\"summary\":\"s\",\"route\":{"
                         "\"method\":\"PUT\",\"path\":\"/api/t/{id}\","
                         "\"auth\":true,\"mode\":\"async\"},\"fields\":{"
                         "\"id\":{\"type\":\"string\",\"format\":\"uuid\","
                         "\"doc\":\"Which one.\"},\"n\":{\"type\":\"integer\","
                         "\"minimum\":1,\"maximum\":5},\"tags\":{\"type\":"
                         "\"array\",\"max_length\":3}}},{\"type\":\"t.get\","
                         "\"version\":1,\"summary\":\"g\",\"route\":{"
                         "\"method\":\"GET\",\"path\":\"/api/t/{id}\","
                         "\"auth\":false,\"mode\":\"sync\"},\"fields\":{"
                         "\"id\":{\"type\":\"string\"},\"q\":{\"type\":"
                         "\"string\",\"in\":\"query\"}}}]}",
                         &set),
                SCHEMA_OK);
        text = schema_openapi(set, "0.1.0");
        assert_non_null(text);
        doc = json_loads(text, 0, NULL);
        assert_non_null(doc);

        op = operation(doc, "/api/t/{id}", "put");
        assert_non_null(
                json_object_get(json_object_get(op, "responses"), "202"));
        assert_null(json_object_get(json_object_get(op, "responses"), "200"));
        param = json_array_get(json_object_get(op, "parameters"), 0);
        assert_string_equal(json_string_value(json_object_get(param, "name")),
                            "id");
        assert_true(json_is_true(json_object_get(param, "required")));
        assert_string_equal(
                json_string_value(json_object_get(param, "description")),
                "Which one.");
        {
                json_t *props = json_object_get(
                        json_object_get(
                                json_object_get(
                                        json_object_get(
                                                json_object_get(op,
                                                                "requestBody"),
                                                "content"),
                                        "application/json"),
                                "schema"),
                        "properties");
                assert_null(json_object_get(props, "id"));
                assert_int_equal(
                        json_integer_value(json_object_get(
                                json_object_get(props, "n"), "maximum")),
                        5);
                assert_int_equal(
                        json_integer_value(json_object_get(
                                json_object_get(props, "tags"), "maxItems")),
                        3);
        }
        /* GET: no body; the path parameter, the query parameter, then the
         * edge's own headers. */
        op = operation(doc, "/api/t/{id}", "get");
        assert_null(json_object_get(op, "requestBody"));
        param = json_object_get(op, "parameters");
        assert_int_equal(json_array_size(param), 4);
        assert_string_equal(json_string_value(json_object_get(
                                    json_array_get(param, 1), "in")),
                            "query");
        assert_string_equal(json_string_value(json_object_get(
                                    json_array_get(param, 2), "name")),
                            "Idempotency-Key");

        json_decref(doc);
        free(text);
        schema_set_destroy(set);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_strerror),
                cmocka_unit_test(test_real_files),
                cmocka_unit_test(test_destroy_null),
                cmocka_unit_test(test_minimal_and_kafka_only),
                cmocka_unit_test(test_path_param_becomes_required),
                cmocka_unit_test(test_bad_json),
                cmocka_unit_test(test_bad_top_level),
                cmocka_unit_test(test_bad_message),
                cmocka_unit_test(test_bad_field),
                cmocka_unit_test(test_bad_route),
                cmocka_unit_test(test_duplicates),
                cmocka_unit_test(test_errstr_optional),
                cmocka_unit_test_setup_teardown(test_validate_ok, fixture_setup,
                                                fixture_teardown),
                cmocka_unit_test_setup_teardown(test_validate_missing_required,
                                                fixture_setup,
                                                fixture_teardown),
                cmocka_unit_test_setup_teardown(test_validate_wrong_types,
                                                fixture_setup,
                                                fixture_teardown),
                cmocka_unit_test_setup_teardown(
                        test_validate_limits, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(
                        test_validate_enum, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(
                        test_validate_email, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(
                        test_validate_uuid, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_validate_date_time,
                                                fixture_setup,
                                                fixture_teardown),
                cmocka_unit_test_setup_teardown(test_validate_undeclared,
                                                fixture_setup,
                                                fixture_teardown),
                cmocka_unit_test_setup_teardown(
                        test_validate_not_map, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_validate_raw_msgpack,
                                                fixture_setup,
                                                fixture_teardown),
                cmocka_unit_test_setup_teardown(
                        test_validate_uint64, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(
                        test_validate_nesting, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(
                        test_validate_many, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_validate_truncated,
                                                fixture_setup,
                                                fixture_teardown),
                cmocka_unit_test_setup_teardown(test_validate_long_field_name,
                                                fixture_setup,
                                                fixture_teardown),
                cmocka_unit_test(test_openapi_real),
                cmocka_unit_test(test_openapi_params_and_async),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
