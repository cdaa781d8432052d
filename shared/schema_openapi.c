/*
 * schema_openapi.c - the OpenAPI 3.1 document generated from the schemas
 * (see schema_openapi in schema.h).
 */
#include "schema_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * OpenAPI
 * ------------------------------------------------------------------------ */

static json_t *openapi_field_schema(const schema_field_t *field) {
        json_t *s = json_object();

        json_object_set_new(s, "type",
                            json_string(schema__type_names[field->type]));
        if (field->format != SCHEMA_FORMAT_NONE)
                json_object_set_new(
                        s, "format",
                        json_string(schema__format_names[field->format]));
        if (field->type == SCHEMA_STRING) {
                if (field->min_length >= 0)
                        json_object_set_new(s, "minLength",
                                            json_integer(field->min_length));
                if (field->max_length >= 0)
                        json_object_set_new(s, "maxLength",
                                            json_integer(field->max_length));
        } else if (field->type == SCHEMA_ARRAY) {
                if (field->min_length >= 0)
                        json_object_set_new(s, "minItems",
                                            json_integer(field->min_length));
                if (field->max_length >= 0)
                        json_object_set_new(s, "maxItems",
                                            json_integer(field->max_length));
        }
        if (field->has_minimum)
                json_object_set_new(
                        s, "minimum",
                        field->type == SCHEMA_INTEGER
                                ? json_integer((json_int_t)field->minimum)
                                : json_real(field->minimum));
        if (field->has_maximum)
                json_object_set_new(
                        s, "maximum",
                        field->type == SCHEMA_INTEGER
                                ? json_integer((json_int_t)field->maximum)
                                : json_real(field->maximum));
        if (field->n_enum) {
                json_t *e = json_array();
                for (size_t i = 0; i < field->n_enum; i++)
                        json_array_append_new(
                                e, json_string(field->enum_values[i]));
                json_object_set_new(s, "enum", e);
        }
        if (field->secret)
                json_object_set_new(s, "writeOnly", json_true());
        if (field->doc)
                json_object_set_new(s, "description", json_string(field->doc));
        return s;
}

static json_t *openapi_ref(const char *kind, const char *name) {
        char ref[128];

        snprintf(ref, sizeof(ref), "#/components/%s/%s", kind, name);
        return json_pack("{s:s}", "$ref", ref);
}

static json_t *openapi_content(const char *media, json_t *schema) {
        return json_pack("{s:{s:o}}", media, "schema", schema);
}

/* The error responses every API operation may give, as components. */
static const struct {
        const char *status;
        const char *name;
        const char *description;
} openapi_errors[] = {
        {"400", "BadRequest",
         "The body or a parameter is invalid; errors names each field."},
        {"401", "Unauthorized", "A bearer token is missing or invalid."},
        {"404", "NotFound", "No such route or resource."},
        {"405", "MethodNotAllowed",
         "The path exists but not with this method; see Allow."},
        {"413", "PayloadTooLarge", "The body is larger than allowed."},
        {"415", "UnsupportedMediaType", "The body must be application/json."},
        {"503", "Unavailable",
         "The service is overloaded or not ready; retry later."},
        {"504", "Timeout",
         "No reply in time; the result will be at /api/operations/{id}."},
};

static json_t *openapi_problem_schema(void) {
        return json_pack(
                "{s:s, s:s, s:{s:{s:s, s:s}, s:{s:s}, s:{s:s}, s:{s:s}, "
                "s:{s:s}, s:{s:s, s:{s:s, s:{s:{s:s}, s:{s:s}}, s:[s,s]}}}}",
                "type", "object", "description",
                "RFC 9457 problem details, with one entry in errors per "
                "invalid field.",
                "properties", "type", "type", "string", "format",
                "uri-reference", "title", "type", "string", "status", "type",
                "integer", "detail", "type", "string", "instance", "type",
                "string", "errors", "type", "array", "items", "type", "object",
                "properties", "field", "type", "string", "reason", "type",
                "string", "required", "field", "reason");
}

static json_t *openapi_components(void) {
        json_t *responses = json_object();

        for (size_t i = 0; i < SCHEMA__ARRAY_LEN(openapi_errors); i++)
                json_object_set_new(
                        responses, openapi_errors[i].name,
                        json_pack("{s:s, s:o}", "description",
                                  openapi_errors[i].description, "content",
                                  openapi_content(
                                          "application/problem+json",
                                          openapi_ref("schemas", "Problem"))));
        return json_pack("{s:{s:o}, s:o, s:{s:{s:s, s:s, s:s}}}", "schemas",
                         "Problem", openapi_problem_schema(), "responses",
                         responses, "securitySchemes", "bearerAuth", "type",
                         "http", "scheme", "bearer", "bearerFormat", "JWT");
}

static json_t *openapi_path_param(const char *name, json_t *schema,
                                  const char *doc) {
        json_t *p = json_pack("{s:s, s:s, s:b, s:o}", "name", name, "in",
                              "path", "required", 1, "schema", schema);
        if (doc)
                json_object_set_new(p, "description", json_string(doc));
        return p;
}

static json_t *openapi_operation(const schema_msg_t *msg) {
        const schema_route_t *route = &msg->route;
        bool get = strcmp(route->method, "GET") == 0;
        json_t *op, *params, *props, *required, *responses;
        size_t n_body = 0;

        op = json_pack("{s:s, s:s, s:[s]}", "operationId", msg->type, "summary",
                       msg->summary, "tags", msg->group);

        /* Path parameters, in path order. */
        params = json_array();
        for (size_t i = 0; i < route->n_segments; i++) {
                const schema_field_t *f;
                if (!schema__segment_is_param(route->segments[i]))
                        continue;
                f = schema__param_field(msg, route->segments[i]);
                json_array_append_new(
                        params,
                        openapi_path_param(f->name, openapi_field_schema(f),
                                           f->doc));
        }
        if (json_array_size(params))
                json_object_set_new(op, "parameters", params);
        else
                json_decref(params);

        /* The body: every field not in the path. GET has none (the edge
         * does not read query strings). */
        props = json_object();
        required = json_array();
        for (size_t i = 0; i < msg->n_fields; i++) {
                const schema_field_t *f = &msg->fields[i];
                if (f->in_path)
                        continue;
                n_body++;
                json_object_set_new(props, f->name, openapi_field_schema(f));
                if (f->required)
                        json_array_append_new(required, json_string(f->name));
        }
        if (!get && (n_body || strcmp(route->method, "DELETE") != 0)) {
                json_t *schema = json_pack(
                        "{s:s, s:o, s:b}", "type", "object", "properties",
                        props, "additionalProperties", msg->additional);
                if (json_array_size(required))
                        json_object_set(schema, "required", required);
                json_object_set_new(
                        op, "requestBody",
                        json_pack("{s:b, s:o}", "required",
                                  json_array_size(required) > 0, "content",
                                  openapi_content("application/json", schema)));
        } else {
                json_decref(props);
        }
        json_decref(required);

        responses = json_object();
        if (route->mode == SCHEMA_MODE_SYNC)
                json_object_set_new(
                        responses, "200",
                        json_pack("{s:s, s:o}", "description", "The reply.",
                                  "content",
                                  openapi_content("application/json",
                                                  json_pack("{s:s}", "type",
                                                            "object"))));
        else
                json_object_set_new(
                        responses, "202",
                        json_pack("{s:s, s:o}", "description",
                                  "Accepted; the result will be at "
                                  "/api/operations/{id}.",
                                  "content",
                                  openapi_content("application/json",
                                                  json_pack("{s:s}", "type",
                                                            "object"))));
        for (size_t i = 0; i < SCHEMA__ARRAY_LEN(openapi_errors); i++)
                json_object_set_new(
                        responses, openapi_errors[i].status,
                        openapi_ref("responses", openapi_errors[i].name));
        json_object_set_new(op, "responses", responses);

        if (route->auth)
                json_object_set_new(op, "security",
                                    json_pack("[{s:[]}]", "bearerAuth"));
        return op;
}

/* The edge's own routes, which no schema file declares. */
static void openapi_builtin(json_t *paths) {
        json_t *text = json_pack("{s:s}", "type", "string");
        json_t *obj = json_pack("{s:s}", "type", "object");

        json_object_set_new(paths, "/health",
                            json_pack("{s:{s:s, s:s, s:[s], s:{s:{s:s, s:o}}}}",
                                      "get", "operationId", "edge.health",
                                      "summary", "Liveness: the process is up",
                                      "tags", "edge", "responses", "200",
                                      "description", "Alive.", "content",
                                      openapi_content("application/json",
                                                      json_deep_copy(obj))));
        json_object_set_new(
                paths, "/ready",
                json_pack("{s:{s:s, s:s, s:[s], s:{s:{s:s, s:o}, s:o}}}", "get",
                          "operationId", "edge.ready", "summary",
                          "Readiness: the edge can take requests", "tags",
                          "edge", "responses", "200", "description", "Ready.",
                          "content",
                          openapi_content("application/json",
                                          json_deep_copy(obj)),
                          "503", openapi_ref("responses", "Unavailable")));
        json_object_set_new(
                paths, "/metrics",
                json_pack("{s:{s:s, s:s, s:[s], s:{s:{s:s, s:o}}}}", "get",
                          "operationId", "edge.metrics", "summary",
                          "Prometheus metrics in the text exposition format",
                          "tags", "edge", "responses", "200", "description",
                          "Metrics.", "content",
                          openapi_content("text/plain", json_deep_copy(text))));
        json_object_set_new(paths, "/openapi.json",
                            json_pack("{s:{s:s, s:s, s:[s], s:{s:{s:s, s:o}}}}",
                                      "get", "operationId", "edge.openapi",
                                      "summary", "This OpenAPI document",
                                      "tags", "edge", "responses", "200",
                                      "description", "The document.", "content",
                                      openapi_content("application/json",
                                                      json_deep_copy(obj))));
        json_object_set_new(
                paths, "/api/operations/{id}",
                json_pack("{s:{s:s, s:s, s:[s], s:[o], s:[{}, {s:[]}], "
                          "s:{s:{s:s, s:o}, s:o, s:o, s:o}}}",
                          "get", "operationId", "edge.operation", "summary",
                          "The result of an async or timed-out request: the "
                          "stored reply, or {\"status\":\"pending\"}",
                          "tags", "edge", "parameters",
                          openapi_path_param(
                                  "id",
                                  json_pack("{s:s, s:s}", "type", "string",
                                            "format", "uuid"),
                                  "The operation id the request was given."),
                          "security", "bearerAuth", "responses", "200",
                          "description",
                          "The stored reply, or {\"status\":\"pending\"} "
                          "while there is none yet.",
                          "content",
                          openapi_content("application/json",
                                          json_deep_copy(obj)),
                          "401", openapi_ref("responses", "Unauthorized"),
                          "404", openapi_ref("responses", "NotFound"), "503",
                          openapi_ref("responses", "Unavailable")));
        json_decref(text);
        json_decref(obj);
}

char *schema_openapi(const schema_set_t *set, const char *version) {
        json_t *doc, *paths, *tags;
        char *out = NULL;

        if (!set)
                return NULL;
        paths = json_object();
        tags = json_array();
        for (size_t i = 0; i < set->n_groups; i++)
                json_array_append_new(
                        tags, json_pack("{s:s}", "name", set->groups[i]));
        json_array_append_new(
                tags, json_pack("{s:s, s:s}", "name", "edge", "description",
                                "Served by the HTTP edge itself"));

        for (size_t i = 0; i < set->n_msgs; i++) {
                const schema_msg_t *msg = &set->msgs[i];
                json_t *item;
                char method[8];
                size_t k;

                if (!msg->route.method)
                        continue;
                item = json_object_get(paths, msg->route.path);
                if (!item) {
                        item = json_object();
                        json_object_set_new(paths, msg->route.path, item);
                }
                for (k = 0; msg->route.method[k] && k + 1 < sizeof(method); k++)
                        method[k] = (char)(msg->route.method[k] - 'A' + 'a');
                method[k] = '\0';
                json_object_set_new(item, method, openapi_operation(msg));
        }
        openapi_builtin(paths);

        doc = json_pack("{s:s, s:{s:s, s:s}, s:o, s:o, s:o}", "openapi",
                        "3.1.0", "info", "title", "Omnify API", "version",
                        version ? version : "0.0.0", "tags", tags, "paths",
                        paths, "components", openapi_components());
        if (doc)
                out = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        return out;
}