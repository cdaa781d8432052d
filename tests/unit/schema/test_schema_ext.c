/*
 * test_schema_ext.c - unit tests of the schema extensions of SCHEMA-EXT.md:
 * nested fields (loading, depth bound, validation with full error paths),
 * binary, date and uri, "in", "default", read_only and reply, the new route
 * keys (key, success, statuses, raw_body, produces, requires, stream),
 * events and facts (loading, naming rule, validation, the edge's helpers),
 * the topics check, and what the OpenAPI and AsyncAPI documents say of them.
 *
 * Bad declarations are checked for their exact message, which names the
 * file and the JSON path: it is what omnify-schemacheck prints.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "schema.h"

static char err[512];

static schema_err_t load(const char *text, schema_set_t **set) {
        schema_source_t src = {"t.json", text, strlen(text)};
        memset(err, 0, sizeof(err));
        return schema_set_load(set, &src, 1, err, sizeof(err));
}

/* A file of group t: its "messages" (and more) after the group. */
static void expect_bad_file(const char *body, const char *message) {
        char doc[4096];
        schema_set_t *set = (schema_set_t *)1;

        snprintf(doc, sizeof(doc), "{\"group\":\"t\",%s}", body);
        assert_int_not_equal(load(doc, &set), SCHEMA_OK);
        assert_null(set);
        assert_string_equal(err, message);
}

static schema_set_t *load_ok(const char *body) {
        char doc[8192];
        schema_set_t *set = NULL;

        snprintf(doc, sizeof(doc), "{\"group\":\"t\",%s}", body);
        if (load(doc, &set) != SCHEMA_OK)
                fail_msg("%s", err);
        return set;
}

#define HEAD "\"type\":\"t.a\",\"version\":1,\"summary\":\"s\""
#define RT(m, p, extra)                                                \
        "\"route\":{\"method\":\"" m "\",\"path\":\"" p "\",\"auth\":" \
        "true,\"mode\":\"sync\"" extra "}"
#define MSGS(...) "\"messages\":[" __VA_ARGS__ "]"

/* ------------------------------------------------------------------------ */
/* Nested fields                                                            */
/* ------------------------------------------------------------------------ */

static const char nested_msgs[] = MSGS(
        "{" HEAD ",\"fields\":{"
        "\"steps\":{\"type\":\"array\",\"required\":true,\"max_length\":5,"
        "\"items\":{\"type\":\"object\",\"fields\":{"
        "\"name\":{\"type\":\"string\",\"required\":true,\"min_length\":1},"
        "\"retry\":{\"type\":\"object\",\"fields\":{"
        "\"max\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":10}}}}}},"
        "\"filters\":{\"type\":\"object\",\"additional\":true,\"fields\":{"
        "\"provider\":{\"type\":\"string\",\"enum\":[\"meta\",\"google\"]}}},"
        "\"items\":{\"type\":\"array\",\"items\":{\"type\":\"string\","
        "\"format\":\"date\"}},"
        "\"any\":{\"type\":\"object\"},\"list\":{\"type\":\"array\"},"
        "\"blob\":{\"type\":\"binary\",\"max_length\":4},"
        "\"site\":{\"type\":\"string\",\"format\":\"uri\"}}}");

typedef struct vfx {
        schema_set_t *set;
        const schema_msg_t *msg;
        msgpack_sbuffer sb;
        msgpack_unpacked up;
        schema_report_t report;
} vfx_t;

static int vfx_setup(void **state) {
        vfx_t *fx = calloc(1, sizeof(*fx));
        fx->set = load_ok(nested_msgs);
        fx->msg = schema_find(fx->set, slice_of("t.a"));
        msgpack_sbuffer_init(&fx->sb);
        msgpack_unpacked_init(&fx->up);
        *state = fx;
        return 0;
}

static int vfx_teardown(void **state) {
        vfx_t *fx = *state;
        msgpack_unpacked_destroy(&fx->up);
        msgpack_sbuffer_destroy(&fx->sb);
        schema_set_destroy(fx->set);
        free(fx);
        return 0;
}

static const msgpack_object *vbody(vfx_t *fx, const char *json) {
        size_t off = 0;
        fx->sb.size = 0;
        assert_int_equal(
                codec_json_to_msgpack(slice_of(json), NULL, &fx->sb, NULL, 0),
                CODEC_OK);
        assert_int_equal(
                msgpack_unpack_next(&fx->up, fx->sb.data, fx->sb.size, &off),
                MSGPACK_UNPACK_SUCCESS);
        return &fx->up.data;
}

/* Exactly these violations (field: reason), in order. */
static void expect_report(vfx_t *fx, const char *json, size_t n,
                          const char *const *pairs) {
        bool ok = schema_validate(fx->msg, vbody(fx, json), &fx->report);
        if (fx->report.n != n)
                fail_msg("%s: %zu violations (first: %s %s)", json,
                         fx->report.n,
                         fx->report.n ? fx->report.v[0].field : "",
                         fx->report.n ? fx->report.v[0].reason : "");
        assert_int_equal(ok, n == 0);
        for (size_t i = 0; i < n; i++) {
                assert_string_equal(fx->report.v[i].field, pairs[2 * i]);
                assert_string_equal(fx->report.v[i].reason, pairs[2 * i + 1]);
        }
}

#define STEPS_OK "\"steps\":[{\"name\":\"a\"}]"

static void test_nested_valid(void **state) {
        vfx_t *fx = *state;
        expect_report(fx,
                      "{\"steps\":[{\"name\":\"a\",\"retry\":{\"max\":3}},"
                      "{\"name\":\"b\"}],\"filters\":{\"provider\":\"meta\","
                      "\"other\":[1]},\"items\":[\"2024-02-29\"],\"any\":"
                      "{\"x\":{\"y\":1}},\"list\":[1,\"a\"],\"site\":"
                      "\"https://ex.com/a?b=c#d\"}",
                      0, NULL);
}

static void test_nested_error_paths(void **state) {
        vfx_t *fx = *state;
        static const char *const one[] = {"steps[2].retry.max",
                                          "must be at most 10"};
        static const char *const two[] = {"filters.provider",
                                          "must be one of: meta, google"};
        static const char *const three[] = {"items[0]",
                                            "must be a date (YYYY-MM-DD)",
                                            "items[1]", "must be a string"};
        static const char *const four[] = {"steps[0].nope",
                                           "is not a field of this object",
                                           "steps[0].name", "is required"};
        static const char *const five[] = {"steps", "is required"};
        static const char *const six[] = {"steps[0]", "must be an object"};

        expect_report(fx,
                      "{\"steps\":[{\"name\":\"a\"},{\"name\":\"b\"},"
                      "{\"name\":\"c\",\"retry\":{\"max\":11}}]}",
                      1, one);
        expect_report(fx, "{" STEPS_OK ",\"filters\":{\"provider\":\"x\"}}", 1,
                      two);
        expect_report(fx, "{" STEPS_OK ",\"items\":[\"2023-02-29\",5]}", 2,
                      three);
        /* The missing field is reported after the unknown one. */
        expect_report(fx, "{\"steps\":[{\"nope\":1}]}", 2, four);
        expect_report(fx, "{}", 1, five);
        expect_report(fx, "{\"steps\":[1]}", 1, six);
}

static void test_nested_limits_and_types(void **state) {
        vfx_t *fx = *state;
        static const char *const many[] = {"steps",
                                           "must have at most 5 items"};
        static const char *const uri[] = {
                "site", "must be an absolute http or https URL"};
        static const char *const blob[] = {"blob", "must be binary data"};

        expect_report(fx, "{\"steps\":[{},{},{},{},{},{}]}", 1, many);
        for (const char *const *u =
                     (const char *const[]){"ftp://ex.com", "https://",
                                           "https:///x", "http://a b",
                                           "example.com", "https://@x",
                                           "https://ex.com/%zz", NULL};
             *u; u++) {
                char json[128];
                snprintf(json, sizeof(json), "{" STEPS_OK ",\"site\":\"%s\"}",
                         *u);
                expect_report(fx, json, 1, uri);
        }
        expect_report(fx, "{" STEPS_OK ",\"blob\":\"AAAA\"}", 1, blob);
}

/* A bin value only comes as msgpack. */
static void test_binary(void **state) {
        vfx_t *fx = *state;
        msgpack_packer pk;
        size_t off = 0;

        for (int len = 4; len <= 5; len++) {
                fx->sb.size = 0;
                msgpack_packer_init(&pk, &fx->sb, msgpack_sbuffer_write);
                msgpack_pack_map(&pk, 2);
                codec_pack_str(&pk, "steps");
                msgpack_pack_array(&pk, 0);
                codec_pack_str(&pk, "blob");
                msgpack_pack_bin(&pk, (size_t)len);
                msgpack_pack_bin_body(&pk, "\0\1\2\3\4", (size_t)len);
                off = 0;
                assert_int_equal(msgpack_unpack_next(&fx->up, fx->sb.data,
                                                     fx->sb.size, &off),
                                 MSGPACK_UNPACK_SUCCESS);
                assert_int_equal(
                        schema_validate(fx->msg, &fx->up.data, &fx->report),
                        len == 4);
        }
        assert_string_equal(fx->report.v[0].reason,
                            "must be at most 4 bytes long");
}

static void test_depth_bound(void **state) {
        char doc[4096], *p = doc;
        schema_set_t *set = NULL;
        (void)state;

        /* Eight levels load; a ninth is refused, named by its path. */
        for (int depth = 8; depth <= 9; depth++) {
                p = doc;
                p += sprintf(p, "{\"group\":\"t\",\"messages\":[{" HEAD
                                ",\"fields\":{\"f\":");
                for (int i = 1; i < depth; i++)
                        p += sprintf(p, "{\"type\":\"object\",\"fields\":{"
                                        "\"f\":");
                p += sprintf(p, "{\"type\":\"string\"}");
                for (int i = 1; i < depth; i++)
                        p += sprintf(p, "}}");
                sprintf(p, "}}]}");
                if (depth == 8) {
                        assert_int_equal(load(doc, &set), SCHEMA_OK);
                        schema_set_destroy(set);
                } else {
                        assert_int_equal(load(doc, &set),
                                         SCHEMA_BAD_DEFINITION);
                        assert_string_equal(
                                err, "t.json: messages[0].fields.f.fields.f."
                                     "fields.f.fields.f.fields.f.fields.f."
                                     "fields.f.fields.f: nests deeper than 8 "
                                     "levels");
                }
        }
}

static void test_nested_bad_declarations(void **state) {
        (void)state;
        expect_bad_file(MSGS("{" HEAD ",\"fields\":{\"o\":{\"type\":\"string\","
                             "\"fields\":{}}}}"),
                        "t.json: messages[0].fields.o.fields: applies only to "
                        "object fields");
        expect_bad_file(MSGS("{" HEAD ",\"fields\":{\"o\":{\"type\":\"object\","
                             "\"items\":{\"type\":\"string\"}}}}"),
                        "t.json: messages[0].fields.o.items: applies only to "
                        "array fields");
        expect_bad_file(MSGS("{" HEAD ",\"fields\":{\"o\":{\"type\":\"object\","
                             "\"additional\":true}}}"),
                        "t.json: messages[0].fields.o.additional: applies only "
                        "with \"fields\" (an object without them takes any "
                        "map)");
        expect_bad_file(MSGS("{" HEAD ",\"fields\":{\"a\":{\"type\":\"array\","
                             "\"items\":{\"type\":\"string\",\"required\":"
                             "true}}}}"),
                        "t.json: messages[0].fields.a.items.required: applies "
                        "only to named fields");
        expect_bad_file(MSGS("{" HEAD ",\"fields\":{\"a\":{\"type\":\"array\","
                             "\"items\":{\"type\":\"object\",\"fields\":{\"x\":"
                             "{\"type\":\"strng\"}}}}}}"),
                        "t.json: messages[0].fields.a.items.fields.x.type: "
                        "must be one of string, integer, number, boolean, "
                        "object, array, binary");
        expect_bad_file(MSGS("{" HEAD ",\"fields\":{\"b\":{\"type\":\"binary\","
                             "\"format\":\"uri\"}}}"),
                        "t.json: messages[0].fields.b.format: applies only to "
                        "string fields");
        expect_bad_file(MSGS("{" HEAD ",\"fields\":{\"o\":{\"type\":\"object\","
                             "\"fields\":{\"x\":{\"type\":\"string\",\"in\":"
                             "\"query\"}}}}}"),
                        "t.json: messages[0].fields.o.fields.x.in: applies "
                        "only to the top-level fields of a routed message");
}

/* ------------------------------------------------------------------------ */
/* in, default                                                              */
/* ------------------------------------------------------------------------ */

static void test_in_and_default_loaded(void **state) {
        schema_set_t *set = load_ok(MSGS("{" HEAD ",\"read_only\":true," RT(
                "GET", "/api/t/{id}",
                "") ",\"fields\":{\"id\":{\"type\":\"integer\"},"
                    "\"limit\":{\"type\":\"integer\",\"in\":\"query\","
                    "\"minimum\":1,\"maximum\":100,\"default\":20},"
                    "\"tags\":{\"type\":\"array\",\"in\":\"query\",\"items\":"
                    "{\"type\":\"string\"}},"
                    "\"sig\":{\"type\":\"string\",\"in\":\"header\",\"name\":"
                    "\"X-Sig\",\"required\":true}},"
                    "\"reply\":{\"fields\":{\"n\":{\"type\":\"integer\","
                    "\"required\":true}}}}"));
        const schema_msg_t *m = schema_find(set, slice_of("t.a"));
        (void)state;

        assert_true(m->read_only);
        assert_int_equal(m->fields[0].in, SCHEMA_IN_PATH);
        assert_true(m->fields[0].in_path && m->fields[0].required);
        assert_int_equal(m->fields[0].type, SCHEMA_INTEGER);
        assert_int_equal(m->fields[1].in, SCHEMA_IN_QUERY);
        assert_string_equal(m->fields[1].default_json, "20");
        assert_int_equal(m->fields[1].default_mp_len, 1);
        assert_int_equal((unsigned char)m->fields[1].default_mp[0], 20);
        assert_int_equal(m->fields[2].items->type, SCHEMA_STRING);
        assert_int_equal(m->fields[3].in, SCHEMA_IN_HEADER);
        assert_string_equal(m->fields[3].header, "X-Sig");
        assert_non_null(m->reply);
        assert_int_equal(m->reply->n_fields, 1);
        assert_int_equal(m->route.success, 200);
        assert_int_equal(m->route.n_produces, 1);
        assert_string_equal(m->route.produces[0], "application/json");
        schema_set_destroy(set);
}

static void test_in_and_default_refused(void **state) {
        (void)state;
        expect_bad_file(
                MSGS("{" HEAD
                     "," RT("GET", "/api/t",
                            "") ",\"fields\":{\"q\":{\"type\":\"string\"}}}"),
                "t.json: messages[0].fields.q: a GET route takes no "
                "body: declare \"in\": \"query\"");
        expect_bad_file(MSGS("{" HEAD ",\"fields\":{\"q\":{\"type\":\"string\","
                             "\"in\":\"query\"}}}"),
                        "t.json: messages[0].fields.q.in: applies only to the "
                        "top-level fields of a routed message");
        expect_bad_file(
                MSGS("{" HEAD "," RT(
                        "POST", "/api/t",
                        "") ",\"fields\":{\"q\":{\"type\":\"string\",\"in\":"
                            "\"cookie\"}}}"),
                "t.json: messages[0].fields.q.in: must be one of body, "
                "path, query, header");
        expect_bad_file(
                MSGS("{" HEAD "," RT(
                        "POST", "/api/t",
                        "") ",\"fields\":{\"q\":{\"type\":\"string\",\"in\":"
                            "\"header\"}}}"),
                "t.json: messages[0].fields.q.name: must be an HTTP "
                "header name (letters, digits and '-')");
        expect_bad_file(
                MSGS("{" HEAD "," RT(
                        "POST", "/api/t",
                        "") ",\"fields\":{\"q\":{\"type\":\"string\",\"in\":"
                            "\"header\",\"name\":\"authorization\"}}}"),
                "t.json: messages[0].fields.q.name: authorization is "
                "the edge's own header");
        expect_bad_file(
                MSGS("{" HEAD "," RT(
                        "POST", "/api/t",
                        "") ",\"fields\":{\"q\":{\"type\":\"string\",\"name\":"
                            "\"X-Q\"}}}"),
                "t.json: messages[0].fields.q.name: applies only with "
                "\"in\": \"header\"");
        expect_bad_file(
                MSGS("{" HEAD "," RT(
                        "POST", "/api/t",
                        "") ",\"fields\":{\"q\":{\"type\":\"object\",\"in\":"
                            "\"query\"}}}"),
                "t.json: messages[0].fields.q.in: a query value must "
                "be a string, integer, number or boolean (or an array "
                "of them)");
        expect_bad_file(
                MSGS("{" HEAD "," RT(
                        "POST", "/api/t",
                        "") ",\"fields\":{\"q\":{\"type\":\"string\",\"in\":"
                            "\"path\"}}}"),
                "t.json: messages[0].fields.q: is \"in\": \"path\" but "
                "the path has no {q}");
        expect_bad_file(
                MSGS("{" HEAD "," RT(
                        "POST", "/api/t/{q}",
                        "") ",\"fields\":{\"q\":{\"type\":\"string\",\"in\":"
                            "\"query\"}}}"),
                "t.json: messages[0].route.path: parameter {q} is "
                "declared \"in\": \"query\"");
        expect_bad_file(MSGS("{" HEAD
                             ",\"fields\":{\"n\":{\"type\":\"integer\","
                             "\"maximum\":5,\"default\":6}}}"),
                        "t.json: messages[0].fields.n.default: does not fit "
                        "the field: n must be at most 5");
        expect_bad_file(MSGS("{" HEAD ",\"fields\":{\"n\":{\"type\":\"string\","
                             "\"default\":1}}}"),
                        "t.json: messages[0].fields.n.default: does not fit "
                        "the field: n must be a string");
        expect_bad_file(MSGS("{" HEAD ",\"fields\":{\"n\":{\"type\":\"string\","
                             "\"required\":true,\"default\":\"x\"}}}"),
                        "t.json: messages[0].fields.n.default: a required "
                        "field has no default");
        expect_bad_file(MSGS("{" HEAD ",\"reply\":{}}"),
                        "t.json: messages[0].reply: must be {\"fields\": "
                        "{...}}");
}

/* ------------------------------------------------------------------------ */
/* Routes                                                                   */
/* ------------------------------------------------------------------------ */

static void test_route_keys_loaded(void **state) {
        schema_set_t *set = load_ok(MSGS("{" HEAD "," RT(
                "POST", "/api/t/{run_id}/hook",
                ",\"key\":\"run_id\",\"success\":202,"
                "\"statuses\":[409,422],\"raw_body\":\"payload\","
                "\"produces\":[\"text/csv\"]") ",\"fields\":{\"run_id\":{"
                                               "\"type\":\"string\"},"
                                               "\"payload\":{\"type\":"
                                               "\"binary\"},"
                                               "\"sig\":{\"type\":\"string\","
                                               "\"in\":\"header\",\"name\":"
                                               "\"X-Shopify-Hmac-Sha256\"}}}"));
        const schema_route_t *r = &schema_set_at(set, 0)->route;
        (void)state;

        assert_string_equal(r->key, "run_id");
        assert_int_equal(r->success, 202);
        assert_int_equal(r->n_statuses, 2);
        assert_int_equal(r->statuses[1], 422);
        assert_string_equal(r->raw_body, "payload");
        assert_true(schema_set_at(set, 0)->fields[1].required);
        assert_int_equal(r->n_produces, 2);
        assert_string_equal(r->produces[1], "text/csv");
        schema_set_destroy(set);
}

static void test_route_keys_refused(void **state) {
        (void)state;
        expect_bad_file(
                MSGS("{" HEAD "," RT("POST", "/api/t", ",\"terms\":true") "}"),
                "t.json: messages[0].route.terms: is replaced by "
                "\"requires\": [\"terms\"] (a fact of the group that "
                "owns it)");
        expect_bad_file(
                MSGS("{" HEAD "," RT("POST", "/api/t", ",\"success\":299") "}"),
                "t.json: messages[0].route.success: must be one of "
                "200, 201, 202, 204, 302, 303");
        expect_bad_file(MSGS("{" HEAD "," RT("POST", "/api/t",
                                             ",\"statuses\":[409,200]") "}"),
                        "t.json: messages[0].route.statuses: each must be a "
                        "redirect (301 302 303 307) or an error status "
                        "(400-599)");
        expect_bad_file(MSGS("{" HEAD "," RT("POST", "/api/t",
                                             ",\"statuses\":[409,409]") "}"),
                        "t.json: messages[0].route.statuses: lists 409 twice");
        expect_bad_file(MSGS("{" HEAD
                             "," RT("POST", "/api/t",
                                    ",\"key\":\"k\"") ",\"fields\":{\"k\":{"
                                                      "\"type\":\"string\"}}}"),
                        "t.json: messages[0].route.key: must name a required "
                        "string or integer field");
        expect_bad_file(
                MSGS("{" HEAD
                     "," RT("POST", "/api/t",
                            ",\"raw_body\":\"b\"") ",\"fields\":{\"b\":{"
                                                   "\"type\":\"binary\"},\"x\":"
                                                   "{\"type\":\"string\"}}}"),
                "t.json: messages[0].route.raw_body: the body is raw: "
                "x must come from the path, the query or a header");
        expect_bad_file(
                MSGS("{" HEAD
                     "," RT("POST", "/api/t",
                            "") ",\"fields\":{\"b\":{\"type\":\"binary\"}}}"),
                "t.json: messages[0].fields.b: a JSON body has no "
                "binary values: name it in route.raw_body");
        expect_bad_file(MSGS("{" HEAD "," RT("POST", "/api/t",
                                             ",\"produces\":[\"csv\"]") "}"),
                        "t.json: messages[0].route.produces: each must be a "
                        "media type (type/subtype)");
        expect_bad_file(MSGS("{" HEAD "," RT("POST", "/api/t",
                                             ",\"requires\":[\"nope\"]") "}"),
                        "t.json: messages[0].route.requires: each must name a "
                        "declared fact");
}

/* ------------------------------------------------------------------------ */
/* Events and facts                                                         */
/* ------------------------------------------------------------------------ */

#define EVENTS                                                                \
        "\"events\":["                                                        \
        "{\"type\":\"t.session.revoked\",\"version\":1,\"summary\":\"s\","    \
        "\"key\":\"session_id\",\"fields\":{\"session_id\":{\"type\":"        \
        "\"string\",\"required\":true},\"until\":{\"type\":\"integer\"}}},"   \
        "{\"type\":\"t.doc.published\",\"version\":1,\"summary\":\"s\","      \
        "\"key\":\"tenant\",\"fields\":{\"type\":{\"type\":\"string\"},"      \
        "\"version\":{\"type\":\"integer\",\"required\":true}}},"             \
        "{\"type\":\"t.run.step.completed\",\"version\":1,\"summary\":\"s\"," \
        "\"key\":\"tenant\",\"fields\":{\"run_id\":{\"type\":\"string\"}}},"  \
        "{\"type\":\"t.run.failed\",\"version\":1,\"summary\":\"s\","         \
        "\"key\":\"tenant\",\"fields\":{\"run_id\":{\"type\":\"string\"}}}]"
#define FACTS                                                               \
        "\"facts\":["                                                       \
        "{\"name\":\"revoked\",\"kind\":\"deny\",\"event\":"                \
        "\"t.session.revoked\",\"key\":\"session_id\",\"until\":\"until\"," \
        "\"claim\":\"sid\",\"detail\":\"signed out\"},"                     \
        "{\"name\":\"terms\",\"kind\":\"version\",\"event\":"               \
        "\"t.doc.published\",\"where\":{\"type\":\"terms\"},\"value\":"     \
        "\"version\",\"query\":{\"type\":\"t.versions\",\"field\":"         \
        "\"terms\"},\"claim\":\"tv\",\"detail\":\"accept version {value} "  \
        "first\"}]"
#define VERSIONS                                                         \
        "{\"type\":\"t.versions\",\"version\":1,\"summary\":\"s\","      \
        "\"read_only\":true,\"reply\":{\"fields\":{\"terms\":{\"type\":" \
        "\"integer\",\"required\":true}}}}"

static void test_events_and_facts_loaded(void **state) {
        schema_set_t *set = load_ok(MSGS(
                VERSIONS ","
                         "{" HEAD
                         "," RT("POST", "/api/t",
                                ",\"requires\":[\"terms\"]") "}") "," EVENTS
                                                                  "," FACTS);
        const schema_event_t *ev;
        const schema_fact_t *deny, *version;
        const schema_msg_t *m = schema_find(set, slice_of("t.a"));
        (void)state;

        assert_int_equal(schema_event_count(set), 4);
        ev = schema_find_event(set, slice_of("t.session.revoked"));
        assert_non_null(ev);
        assert_string_equal(ev->key, "session_id");
        assert_null(schema_find_event(set, slice_of("t.doc.published"))->key);
        assert_null(schema_find_event(set, slice_of("t.a")));
        assert_int_equal(schema_fact_count(set), 2);
        deny = schema_find_fact(set, slice_of("revoked"));
        version = schema_find_fact(set, slice_of("terms"));
        assert_int_equal(deny->kind, SCHEMA_FACT_DENY);
        assert_ptr_equal(deny->decl, ev);
        assert_int_equal(version->kind, SCHEMA_FACT_VERSION);
        assert_string_equal(version->group, "t");
        assert_int_equal(m->route.n_requires, 1);
        assert_ptr_equal(m->route.requires[0], version);
        assert_true(m->route.terms); /* deprecated mirror */
        schema_set_destroy(set);
}

static void test_events_refused(void **state) {
        (void)state;
        expect_bad_file(MSGS() ",\"events\":[{\"type\":\"t.user.register\","
                               "\"version\":1,\"summary\":\"s\",\"key\":"
                               "\"tenant\"}]",
                        "t.json: events[0].type: must be \"<group>.<entity>."
                        "<past-tense verb>\" in lowercase letters, digits and "
                        "'_' (e.g. t.user.registered)");
        expect_bad_file(MSGS() ",\"events\":[{\"type\":\"t.registered\","
                               "\"version\":1,\"summary\":\"s\",\"key\":"
                               "\"tenant\"}]",
                        "t.json: events[0].type: must be \"<group>.<entity>."
                        "<past-tense verb>\" in lowercase letters, digits and "
                        "'_' (e.g. t.user.registered)");
        expect_bad_file(MSGS() ",\"events\":[{\"type\":\"u.user.added\","
                               "\"version\":1,\"summary\":\"s\",\"key\":"
                               "\"tenant\"}]",
                        "t.json: events[0].type: must start with \"t.\"");
        expect_bad_file(MSGS() ",\"events\":[{\"type\":\"t.user.added\","
                               "\"version\":1,\"summary\":\"s\",\"key\":\"id\","
                               "\"fields\":{\"id\":{\"type\":\"string\"}}}]",
                        "t.json: events[0].key: must be \"tenant\" or a "
                        "required string or integer field");
        expect_bad_file(MSGS() ",\"events\":[{\"type\":\"t.user.added\","
                               "\"version\":1,\"summary\":\"s\",\"key\":"
                               "\"tenant\"},{\"type\":\"t.user.added\","
                               "\"version\":1,\"summary\":\"s\",\"key\":"
                               "\"tenant\"}]",
                        "t.json: events[1].type: t.user.added is already "
                        "declared in t.json");
}

static void test_facts_refused(void **state) {
        (void)state;
        expect_bad_file(
                MSGS(VERSIONS) "," EVENTS
                               ",\"facts\":[{\"name\":\"f\",\"kind\":\"deny\","
                               "\"event\":\"t.session.revoked\",\"key\":"
                               "\"until\","
                               "\"claim\":\"sid\",\"detail\":\"d\"}]",
                "t.json: facts[0].key: until must be a declared string "
                "field of t.session.revoked");
        expect_bad_file(
                MSGS(VERSIONS) "," EVENTS
                               ",\"facts\":[{\"name\":\"f\",\"kind\":\"deny\","
                               "\"event\":\"t.nothing.happened\",\"key\":\"k\","
                               "\"claim\":\"sid\",\"detail\":\"d\"}]",
                "t.json: facts[0].event: must be an event declared by "
                "group t");
        expect_bad_file(
                MSGS(VERSIONS) "," EVENTS ",\"facts\":[{\"name\":\"f\","
                               "\"kind\":\"version\","
                               "\"event\":\"t.doc.published\",\"value\":"
                               "\"version\","
                               "\"query\":{\"type\":\"t.versions\",\"field\":"
                               "\"x\"},"
                               "\"claim\":\"tv\",\"detail\":\"{value}\"}]",
                "t.json: facts[0].query.field: must be an integer "
                "field of t.versions's reply");
        expect_bad_file(
                MSGS(VERSIONS) "," EVENTS ",\"facts\":[{\"name\":\"f\","
                               "\"kind\":\"version\","
                               "\"event\":\"t.doc.published\",\"value\":"
                               "\"version\","
                               "\"query\":{\"type\":\"t.versions\",\"field\":"
                               "\"terms\"},\"claim\":\"tv\",\"detail\":\"no "
                               "value\"}]",
                "t.json: facts[0].detail: must say the version needed "
                "with {value}");
        expect_bad_file(
                MSGS(VERSIONS) "," EVENTS
                               ",\"facts\":[{\"name\":\"f\",\"kind\":\"deny\","
                               "\"event\":\"t.session.revoked\",\"key\":"
                               "\"session_id\",\"value\":\"v\",\"claim\":"
                               "\"sid\","
                               "\"detail\":\"d\"}]",
                "t.json: facts[0].value: applies only to a version "
                "fact");
        expect_bad_file(
                MSGS("{" HEAD "," RT(
                        "POST", "/api/t",
                        ",\"requires\":[\"revoked\"]") "}") "," EVENTS
                                                            ",\"facts\":[{"
                                                            "\"name\":"
                                                            "\"revoked\","
                                                            "\"kind\":"
                                                            "\"deny\","
                                                            "\"event\":\"t."
                                                            "session.revoked\","
                                                            "\"key\":"
                                                            "\"session_id\","
                                                            "\"claim\":\"sid\","
                                                            "\"detail\":\"d\"}"
                                                            "]",
                "t.json: messages[0].route.requires: revoked is a deny "
                "fact: those hold on every route with a token");
}

static const msgpack_object *mp_of(msgpack_sbuffer *sb, msgpack_unpacked *up,
                                   const char *json) {
        size_t off = 0;
        sb->size = 0;
        assert_int_equal(
                codec_json_to_msgpack(slice_of(json), NULL, sb, NULL, 0),
                CODEC_OK);
        assert_int_equal(msgpack_unpack_next(up, sb->data, sb->size, &off),
                         MSGPACK_UNPACK_SUCCESS);
        return &up->data;
}

static void test_fact_helpers(void **state) {
        schema_set_t *set = load_ok(MSGS(VERSIONS) "," EVENTS "," FACTS);
        const schema_fact_t *deny = schema_find_fact(set, slice_of("revoked"));
        const schema_fact_t *ver = schema_find_fact(set, slice_of("terms"));
        msgpack_sbuffer sb;
        msgpack_unpacked up;
        schema_fact_update_t u;
        int64_t v = -1;
        char buf[64];
        (void)state;

        msgpack_sbuffer_init(&sb);
        msgpack_unpacked_init(&up);
        assert_true(schema_fact_read(
                deny, mp_of(&sb, &up, "{\"session_id\":\"s1\",\"until\":99}"),
                1000, &u));
        assert_true(slice_eq(u.key, "s1"));
        assert_int_equal(u.until_s, 99);
        /* No until: a day from now. */
        assert_true(schema_fact_read(
                deny, mp_of(&sb, &up, "{\"session_id\":\"s1\"}"), 1000, &u));
        assert_int_equal(u.until_s, 1000 + 86400);
        assert_false(schema_fact_read(
                deny, mp_of(&sb, &up, "{\"session_id\":\"\"}"), 1000, &u));
        assert_true(schema_fact_read(
                ver, mp_of(&sb, &up, "{\"type\":\"terms\",\"version\":7}"), 0,
                &u));
        assert_int_equal(u.version, 7);
        /* Another document's version says nothing of the terms. */
        assert_false(schema_fact_read(
                ver, mp_of(&sb, &up, "{\"type\":\"privacy\",\"version\":8}"), 0,
                &u));
        assert_false(schema_fact_read(
                ver, mp_of(&sb, &up, "{\"type\":\"terms\",\"version\":\"7\"}"),
                0, &u));
        assert_true(schema_fact_read_query(
                ver, mp_of(&sb, &up, "{\"terms\":3,\"privacy\":1}"), &v));
        assert_int_equal(v, 3);
        assert_false(schema_fact_read_query(deny, &up.data, &v));
        assert_string_equal(schema_fact_detail(ver, 12, buf, sizeof(buf)),
                            "accept version 12 first");
        assert_string_equal(schema_fact_detail(ver, 12, buf, 12),
                            "accept vers");
        assert_string_equal(schema_fact_detail(deny, 1, buf, sizeof(buf)),
                            "signed out");
        msgpack_unpacked_destroy(&up);
        msgpack_sbuffer_destroy(&sb);
        schema_set_destroy(set);
}

static void test_event_validate(void **state) {
        schema_set_t *set = load_ok(MSGS() "," EVENTS);
        const schema_event_t *ev =
                schema_find_event(set, slice_of("t.session.revoked"));
        msgpack_sbuffer sb;
        msgpack_unpacked up;
        schema_report_t report;
        (void)state;

        msgpack_sbuffer_init(&sb);
        msgpack_unpacked_init(&up);
        assert_true(schema_event_validate(
                ev, mp_of(&sb, &up, "{\"session_id\":\"s\",\"until\":1}"),
                &report));
        assert_false(schema_event_validate(
                ev, mp_of(&sb, &up, "{\"until\":\"1\",\"x\":1}"), &report));
        assert_int_equal(report.n, 3);
        assert_string_equal(report.v[0].field, "until");
        assert_string_equal(report.v[1].reason,
                            "is not a field of t.session.revoked");
        assert_string_equal(report.v[2].field, "session_id");
        msgpack_unpacked_destroy(&up);
        msgpack_sbuffer_destroy(&sb);
        schema_set_destroy(set);
}

static void test_streams(void **state) {
        schema_set_t *set = load_ok(MSGS(
                "{\"type\":\"t.runs.history\",\"version\":1,\"summary\":\"s\","
                "\"read_only\":true},"
                "{" HEAD
                "," RT("GET", "/api/t/runs/{id}/events",
                       ",\"stream\":{\"topic\":\"t.events\",\"match\":"
                       "{\"run_id\":\"id\"},\"types\":[\"t.run.*\"],"
                       "\"until\":[\"t.run.failed\"],\"history\":"
                       "\"t.runs.history\"}") ",\"fields\":{\"id\":{\"type\":"
                                              "\"string\"}}}") "," EVENTS);
        const schema_stream_t *s =
                schema_find(set, slice_of("t.a"))->route.stream;
        static const char *const topics[] = {"t.commands", "t.events"};
        (void)state;

        assert_non_null(s);
        assert_string_equal(s->topic, "t.events");
        assert_int_equal(s->n_match, 1);
        assert_string_equal(s->match_event[0], "run_id");
        assert_string_equal(s->match_field[0], "id");
        assert_true(s->tenant);
        assert_string_equal(s->history, "t.runs.history");
        assert_int_equal(
                schema_set_check_topics(set, topics, 2, err, sizeof(err)),
                SCHEMA_OK);
        assert_int_equal(
                schema_set_check_topics(set, topics, 1, err, sizeof(err)),
                SCHEMA_BAD_DEFINITION);
        assert_string_equal(err, "t.json: messages[1].route.stream.topic: "
                                 "t.events is not declared in topics.json");
        schema_set_destroy(set);

        expect_bad_file(MSGS("{" HEAD
                             "," RT("GET", "/api/t/e",
                                    ",\"stream\":{\"topic\":"
                                    "\"t.events\",\"match\":{},"
                                    "\"types\":[\"t.job.*\"]}") "}") "," EVENTS,
                        "t.json: messages[0].route.stream.types: t.job.* "
                        "matches no declared event");
        expect_bad_file(MSGS("{" HEAD "," RT("GET", "/api/t/e",
                                             ",\"stream\":{\"topic\":"
                                             "\"t.events\",\"match\":{\"x\":"
                                             "\"q\"},\"types\":[\"t.run.*\"]"
                                             "}") ",\"fields\":{\"q\":{"
                                                  "\"type\":\"string\","
                                                  "\"in\":"
                                                  "\"query\"}}}") "," EVENTS,
                        "t.json: messages[0].route.stream.types: event "
                        "t.run.step.completed has no field x to match");
        expect_bad_file(MSGS("{" HEAD
                             "," RT("POST", "/api/t/e",
                                    ",\"stream\":{\"topic\":"
                                    "\"t.events\",\"match\":{},"
                                    "\"types\":[\"t.run.*\"]}") "}") "," EVENTS,
                        "t.json: messages[0].route.stream: a stream is a GET "
                        "route, \"auth\": true, \"mode\": \"sync\"");
        expect_bad_file(
                MSGS("{" HEAD "," RT("GET", "/api/t/e",
                                     ",\"stream\":{\"topic\":"
                                     "\"t.events\",\"match\":{},"
                                     "\"types\":[\"t.run.*\"],"
                                     "\"tenant\":false}") "}") "," EVENTS,
                "t.json: messages[0].route.stream: \"tenant\": false "
                "(every tenant's events) needs \"role\": \"admin\" or "
                "\"owner\"");
}

/* ------------------------------------------------------------------------ */
/* Documents                                                                */
/* ------------------------------------------------------------------------ */

static json_t *doc_of(char *text) {
        json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
        free(text);
        assert_non_null(doc);
        return doc;
}

static json_t *at(json_t *j, const char *const *keys) {
        for (; *keys && j; keys++)
                j = json_object_get(j, *keys);
        return j;
}

#define AT(j, ...) at((j), (const char *const[]){__VA_ARGS__, NULL})

static void test_openapi_extensions(void **state) {
        schema_set_t *set = load_ok(MSGS(
                "{\"type\":\"t.list\",\"version\":1,\"summary\":\"l\","
                "\"read_only\":true," RT(
                        "GET", "/api/t/items",
                        ",\"rate_limit\":\"x\"") ",\"fields\":{\"limit\":{"
                                                 "\"type\":\"integer\",\"in\":"
                                                 "\"query\",\"default\":20}},"
                                                 "\"reply\":{\"fields\":{"
                                                 "\"items\":"
                                                 "{\"type\":\"array\","
                                                 "\"required\":true,\"items\":{"
                                                 "\"type\":"
                                                 "\"object\",\"fields\":{"
                                                 "\"id\":{\"type\":\"string\","
                                                 "\"required\":true}}}}}}},"
                                                 "{\"type\":\"t.del\","
                                                 "\"version\":1,\"summary\":"
                                                 "\"d\"," RT("DELETE",
                                                             "/api/t/items/"
                                                             "{id}",
                                                             ",\"success\":204,"
                                                             "\"statuses\":["
                                                             "409]") ",\"fields"
                                                                     "\":{"
                                                                     "\"id\":{"
                                                                     "\"type\":"
                                                                     "\"string"
                                                                     "\"},"
                                                                     "\"sig\":{"
                                                                     "\"type\":"
                                                                     "\"string"
                                                                     "\","
                                                                     "\"in\":"
                                                                     "\"header"
                                                                     "\","
                                                                     "\"name\":"
                                                                     "\"X-"
                                                                     "Sig\"}}},"
                                                                     "{\"type\""
                                                                     ":\"t."
                                                                     "put\","
                                                                     "\"version"
                                                                     "\":1,"
                                                                     "\"summary"
                                                                     "\":\"p\","
                                                                     "\"route\""
                                                                     ":{"
                                                                     "\"method"
                                                                     "\":"
                                                                     "\"PUT\","
                                                                     "\"path\":"
                                                                     "\"/api/t/"
                                                                     "x\","
                                                                     "\"auth\":"
                                                                     "false,"
                                                                     "\"mode\":"
                                                                     "\"async\""
                                                                     ",\"produc"
                                                                     "es\":["
                                                                     "\"text/"
                                                                     "csv\"]},"
                                                                     "\"fields"
                                                                     "\":{"
                                                                     "\"o\":{"
                                                                     "\"type\":"
                                                                     "\"object"
                                                                     "\","
                                                                     "\"fields"
                                                                     "\":{"
                                                                     "\"n\":{"
                                                                     "\"type\":"
                                                                     "\"string"
                                                                     "\",\"max_"
                                                                     "length\":"
                                                                     "3}}}}}"));
        json_t *doc = doc_of(schema_openapi(set, "1"));
        json_t *get = AT(doc, "paths", "/api/t/items", "get");
        json_t *del = AT(doc, "paths", "/api/t/items/{id}", "delete");
        json_t *put = AT(doc, "paths", "/api/t/x", "put");
        json_t *p, *s;
        (void)state;

        /* The query parameter with its default; the edge's headers. */
        p = json_array_get(json_object_get(get, "parameters"), 0);
        assert_string_equal(json_string_value(json_object_get(p, "in")),
                            "query");
        assert_int_equal(json_integer_value(AT(p, "schema", "default")), 20);
        /* Statuses: the success, the edge's for this route, the group's. */
        assert_non_null(AT(get, "responses", "429"));
        assert_null(AT(get, "responses", "415"));
        assert_null(AT(get, "responses", "404"));
        assert_non_null(AT(del, "responses", "204"));
        assert_null(AT(del, "responses", "200"));
        assert_non_null(AT(del, "responses", "404"));
        assert_non_null(AT(del, "responses", "409"));
        assert_non_null(AT(del, "responses", "401"));
        assert_null(AT(put, "responses", "401"));
        assert_null(AT(put, "responses", "504"));
        assert_non_null(AT(put, "responses", "202", "links", "operation"));
        /* The header parameter by its HTTP name. */
        p = json_object_get(del, "parameters");
        assert_string_equal(json_string_value(json_object_get(
                                    json_array_get(p, 1), "name")),
                            "X-Sig");
        /* The link from the list to the item. */
        s = AT(get, "responses", "200", "links", "t.del", "parameters", "id");
        assert_string_equal(json_string_value(s), "$response.body#/items/0/id");
        /* Security: bearer or none, always said. */
        assert_int_equal(json_array_size(json_object_get(put, "security")), 0);
        assert_int_equal(json_array_size(json_object_get(del, "security")), 1);
        /* Nested bodies, the NUL rule with the length. */
        s = AT(put, "requestBody", "content", "application/json", "schema",
               "properties", "o", "properties", "n", "pattern");
        assert_string_equal(json_string_value(s), "^[^\\u0000]{0,3}$");
        json_decref(doc);
        schema_set_destroy(set);
}

static void test_asyncapi(void **state) {
        schema_set_t *set = load_ok(MSGS(VERSIONS) "," EVENTS);
        json_t *doc = doc_of(schema_asyncapi(set, "9", "p."));
        (void)state;

        assert_string_equal(json_string_value(json_object_get(doc, "asyncapi")),
                            "3.0.0");
        assert_string_equal(
                json_string_value(AT(doc, "channels", "t.events", "address")),
                "p.t.events");
        assert_string_equal(json_string_value(AT(doc, "operations",
                                                 "t.versions", "action")),
                            "receive");
        assert_non_null(
                AT(doc, "operations", "t.versions", "reply", "channel"));
        assert_non_null(AT(doc, "components", "messages", "t.versions.reply",
                           "payload", "oneOf"));
        assert_string_equal(json_string_value(AT(doc, "operations",
                                                 "t.run.failed", "action")),
                            "send");
        assert_non_null(AT(doc, "channels", "t.events", "messages",
                           "t.session.revoked"));
        json_decref(doc);
        schema_set_destroy(set);
        assert_null(schema_asyncapi(NULL, "9", "p."));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_nested_valid, vfx_setup,
                                                vfx_teardown),
                cmocka_unit_test_setup_teardown(test_nested_error_paths,
                                                vfx_setup, vfx_teardown),
                cmocka_unit_test_setup_teardown(test_nested_limits_and_types,
                                                vfx_setup, vfx_teardown),
                cmocka_unit_test_setup_teardown(test_binary, vfx_setup,
                                                vfx_teardown),
                cmocka_unit_test(test_depth_bound),
                cmocka_unit_test(test_nested_bad_declarations),
                cmocka_unit_test(test_in_and_default_loaded),
                cmocka_unit_test(test_in_and_default_refused),
                cmocka_unit_test(test_route_keys_loaded),
                cmocka_unit_test(test_route_keys_refused),
                cmocka_unit_test(test_events_and_facts_loaded),
                cmocka_unit_test(test_events_refused),
                cmocka_unit_test(test_facts_refused),
                cmocka_unit_test(test_fact_helpers),
                cmocka_unit_test(test_event_validate),
                cmocka_unit_test(test_streams),
                cmocka_unit_test(test_openapi_extensions),
                cmocka_unit_test(test_asyncapi),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
