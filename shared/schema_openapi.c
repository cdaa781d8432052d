/*
 * schema_openapi.c - the OpenAPI 3.1 document generated from the schemas
 * (see schema_openapi in schema.h).
 *
 * The document is the whole truth of the HTTP API: every routed message is
 * an operation (schema_openapi_op.c), the edge's own routes are added here,
 * every error status has a response component with the problem+json shape,
 * and links say which answer feeds which request: a list's items feed the
 * operations on one item, a creation's id the operations on it, and a 202's
 * operation id GET /api/operations/{id}.
 */
#include "schema_internal.h"

#include <stdio.h>
#include <string.h>

/* Every status the API answers with a problem (or 202), as components. */
static const struct {
        int status;
        const char *name;
        const char *description;
} openapi_statuses[] = {
        {202, "Accepted",
         "Accepted (an async route, or Prefer: respond-async): the command is "
         "queued; its result will be at /api/operations/{id} (see "
         "Location)."},
        {301, "MovedPermanently", "Redirected to the Location header."},
        {302, "Found", "Redirected to the Location header."},
        {303, "SeeOther", "Redirected to the Location header."},
        {307, "TemporaryRedirect", "Redirected to the Location header."},
        {400, "BadRequest",
         "The body or a parameter is invalid; errors names each field."},
        {401, "Unauthorized",
         "Not authenticated: the bearer token, or the credentials or secret "
         "sent, are missing, wrong or no longer valid."},
        {403, "Forbidden",
         "Authenticated but not allowed: a role or a required acceptance is "
         "missing; detail says which."},
        {404, "NotFound", "No such resource (or one of another organisation)."},
        {405, "MethodNotAllowed",
         "The path exists but not with this method; see Allow."},
        {409, "Conflict",
         "The request conflicts with the current state (already done, "
         "already exists, or the last owner)."},
        {410, "Gone", "The link or token has expired or was used already."},
        {413, "ContentTooLarge", "The body is larger than allowed."},
        {415, "UnsupportedMediaType", "The body must be application/json."},
        {422, "UnprocessableContent",
         "Well-formed but refused: the Idempotency-Key was used for another "
         "request, or a rule (such as the password policy) is not met; detail "
         "says which."},
        {423, "Locked", "The resource is locked for now."},
        {429, "TooManyRequests",
         "Too many attempts; retry after Retry-After seconds."},
        {500, "InternalError",
         "The group failed to handle the command (a bug, logged); the "
         "command is in its dead-letter queue."},
        {502, "BadGateway", "The group answered something malformed."},
        {503, "Unavailable",
         "The bus is unreachable, the edge is full, or a fact the route "
         "needs is not known yet; retry after Retry-After seconds."},
        {504, "Timeout",
         "No reply in time; the command stays queued and its result will be "
         "at /api/operations/{id} (see Location)."},
};

static json_t *openapi_ref(const char *kind, const char *name) {
        char ref[128];

        snprintf(ref, sizeof(ref), "#/components/%s/%s", kind, name);
        return json_pack("{s:s}", "$ref", ref);
}

static json_t *openapi_content(const char *media, json_t *schema) {
        return json_pack("{s:{s:o}}", media, "schema", schema);
}

static json_t *openapi_header(const char *doc) {
        return json_pack("{s:s, s:{s:s}}", "description", doc, "schema", "type",
                         "string");
}

/* The 202 answer, inline so it can carry its link. */
static json_t *openapi_accepted(void) {
        return json_pack(
                "{s:s, s:{s:o}, s:o, s:{s:{s:s, s:s, s:{s:s}}}}", "description",
                openapi_statuses[0].description, "headers", "Location",
                openapi_header("/api/operations/{id} of the command."),
                "content",
                openapi_content("application/json",
                                openapi_ref("schemas", "Accepted")),
                "links", "operation", "operationId", "edge.operation",
                "description",
                "The result of the queued command, by its operation id.",
                "parameters", "id", "$response.body#/operation_id");
}

json_t *schema__openapi_response(int status) {
        char description[64];

        if (status == 202)
                return openapi_accepted();
        for (size_t i = 0; i < SCHEMA__ARRAY_LEN(openapi_statuses); i++)
                if (openapi_statuses[i].status == status)
                        return openapi_ref("responses",
                                           openapi_statuses[i].name);
        snprintf(description, sizeof(description), "Refused with status %d.",
                 status);
        return json_pack("{s:s, s:o}", "description", description, "content",
                         openapi_content("application/problem+json",
                                         openapi_ref("schemas", "Problem")));
}

/* ------------------------------------------------------------------------
 * Components
 * ------------------------------------------------------------------------ */

static json_t *openapi_problem_schema(void) {
        return json_pack(
                "{s:s, s:s, s:[s,s,s], s:{s:{s:s}, s:{s:s}, s:{s:s}, "
                "s:{s:s}, s:{s:s}, s:{s:s, s:s}, s:{s:s, s:{s:s, s:[s,s], "
                "s:{s:{s:s}, s:{s:s}}}}}}",
                "type", "object", "description",
                "RFC 9457 problem details, with one entry in errors per "
                "invalid field (its full path, or the parameter or header "
                "name). Other members may extend it.",
                "required", "type", "title", "status", "properties", "type",
                "type", "string", "title", "type", "string", "status", "type",
                "integer", "detail", "type", "string", "instance", "type",
                "string", "retry_after", "type", "integer", "description",
                "Seconds to wait before trying again.", "errors", "type",
                "array", "items", "type", "object", "required", "field",
                "reason", "properties", "field", "type", "string", "reason",
                "type", "string");
}

static json_t *openapi_components(void) {
        json_t *responses = json_object();

        for (size_t i = 1; i < SCHEMA__ARRAY_LEN(openapi_statuses); i++) {
                int s = openapi_statuses[i].status;
                json_t *r = json_pack("{s:s}", "description",
                                      openapi_statuses[i].description);
                if (s >= 300 && s < 400) {
                        json_object_set_new(
                                r, "headers",
                                json_pack("{s:o}", "Location",
                                          openapi_header("Where to go.")));
                } else {
                        json_object_set_new(
                                r, "content",
                                openapi_content(
                                        "application/problem+json",
                                        openapi_ref("schemas", "Problem")));
                }
                if (s == 429 || s == 503)
                        json_object_set_new(
                                r, "headers",
                                json_pack("{s:o}", "Retry-After",
                                          openapi_header("Seconds to wait.")));
                else if (s == 405)
                        json_object_set_new(
                                r, "headers",
                                json_pack("{s:o}", "Allow",
                                          openapi_header("The methods of "
                                                         "this path.")));
                else if (s == 504)
                        json_object_set_new(
                                r, "headers",
                                json_pack("{s:o}", "Location",
                                          openapi_header("/api/operations/{id}"
                                                         " of the "
                                                         "command.")));
                json_object_set_new(responses, openapi_statuses[i].name, r);
        }
        return json_pack(
                "{s:{s:o, s:{s:s, s:[s,s], s:{s:{s:s, s:s}, s:{s:s, "
                "s:[s]}}}, s:{s:s, s:[s,s], s:{s:{s:s, s:s}, s:{s:s, "
                "s:[s,s]}, s:{s:s, s:{s:{s:s}, s:{}}}}}}, s:o, "
                "s:{s:{s:s, s:s, s:s}}}",
                "schemas", "Problem", openapi_problem_schema(), "Accepted",
                "type", "object", "required", "operation_id", "status",
                "properties", "operation_id", "type", "string", "format",
                "uuid", "status", "type", "string", "enum", "accepted",
                "Operation", "type", "object", "required", "operation_id",
                "status", "properties", "operation_id", "type", "string",
                "format", "uuid", "status", "type", "string", "enum", "pending",
                "completed", "result", "type", "object", "properties", "status",
                "type", "integer", "body", "responses", responses,
                "securitySchemes", "bearerAuth", "type", "http", "scheme",
                "bearer", "bearerFormat", "JWT");
}

/* ------------------------------------------------------------------------
 * The edge's own routes
 * ------------------------------------------------------------------------ */

static json_t *openapi_builtin(const char *id, const char *summary,
                               const char *media, const char *ok,
                               bool can_fail) {
        json_t *op = json_pack(
                "{s:s, s:s, s:[s], s:[], s:{s:{s:s, s:o}}}", "operationId", id,
                "summary", summary, "tags", "edge", "security", "responses",
                "200", "description", ok, "content",
                openapi_content(media,
                                json_pack("{s:s}", "type",
                                          strcmp(media, "application/json")
                                                  ? "string"
                                                  : "object")));
        if (can_fail)
                json_object_set_new(json_object_get(op, "responses"), "503",
                                    openapi_ref("responses", "Unavailable"));
        return json_pack("{s:o}", "get", op);
}

static void openapi_builtins(json_t *paths) {
        json_object_set_new(
                paths, "/health",
                openapi_builtin("edge.health",
                                "Liveness: the process is up (503 once a "
                                "producer hit a fatal error)",
                                "application/json", "Alive.", true));
        json_object_set_new(
                paths, "/ready",
                openapi_builtin("edge.ready",
                                "Readiness: the edge can take requests",
                                "application/json", "Ready.", true));
        json_object_set_new(
                paths, "/metrics",
                openapi_builtin("edge.metrics",
                                "Prometheus metrics in the text exposition "
                                "format",
                                "text/plain", "Metrics.", false));
        json_object_set_new(
                paths, "/openapi.json",
                openapi_builtin("edge.openapi", "This OpenAPI document",
                                "application/json", "The document.", false));
        json_object_set_new(paths, "/asyncapi.json",
                            openapi_builtin("edge.asyncapi",
                                            "The AsyncAPI 3.0 document of the "
                                            "bus: topics, commands, replies "
                                            "and events",
                                            "application/json", "The document.",
                                            false));
        json_object_set_new(
                paths, "/api/operations/{id}",
                json_pack("{s:{s:s, s:s, s:[s], s:[{s:s, s:s, s:b, s:{s:s, "
                          "s:s}, s:s}], s:[{}, {s:[]}], s:{s:{s:s, s:o}, "
                          "s:o, s:o, s:o}}}",
                          "get", "operationId", "edge.operation", "summary",
                          "The result of an async or timed-out request: the "
                          "stored reply, or pending",
                          "tags", "edge", "parameters", "name", "id", "in",
                          "path", "required", 1, "schema", "type", "string",
                          "format", "uuid", "description",
                          "The operation id the request was given.", "security",
                          "bearerAuth", "responses", "200", "description",
                          "The stored reply (its status and body), or "
                          "pending while there is none yet.",
                          "content",
                          openapi_content("application/json",
                                          openapi_ref("schemas", "Operation")),
                          "401", openapi_ref("responses", "Unauthorized"),
                          "404", openapi_ref("responses", "NotFound"), "503",
                          openapi_ref("responses", "Unavailable")));
}

/* ------------------------------------------------------------------------
 * Links
 * ------------------------------------------------------------------------ */

/* "/a/b/{p}" -> parent "/a/b" (len) and p, when the last segment is a
 * parameter. */
static bool openapi_item_path(const schema_msg_t *msg, size_t *parent_len,
                              const char **param) {
        const schema_route_t *r = &msg->route;
        const char *last;

        if (!r->method || r->n_segments < 2)
                return false;
        last = r->segments[r->n_segments - 1];
        if (!schema__segment_is_param(last))
                return false;
        *param = last;
        *parent_len = strlen(r->path) - strlen(last) - 1;
        return true;
}

/* Where in A's reply B's {param} is: "/F/0/p" (a list of items with p) or
 * "/p" (what A created). "" when A's reply does not say. */
static void openapi_link_pointer(const schema_msg_t *a, const char *param,
                                 char *out, size_t size) {
        slice_t p = {param + 1, strlen(param) - 2};
        const schema_object_t *reply = a->reply;

        out[0] = '\0';
        if (!reply)
                return;
        for (size_t i = 0; i < reply->n_fields; i++) {
                const schema_field_t *f = &reply->fields[i];
                if (slice_eq(p, f->name) && strcmp(a->route.method, "GET")) {
                        snprintf(out, size, "/%s", f->name);
                        return;
                }
                if (f->type == SCHEMA_ARRAY && f->items && f->items->object &&
                    schema_field_find(f->items->object->fields,
                                      f->items->object->n_fields, p)) {
                        snprintf(out, size, "/%s/0/%.*s", f->name, (int)p.len,
                                 p.ptr);
                        return;
                }
        }
}

/* Link b from a's success answer, every parameter of b given. */
static void openapi_link(json_t *paths, const schema_msg_t *a,
                         const schema_msg_t *b, const char *pointer) {
        char method[8], key[8], value[160], name[SCHEMA_MAX_NAME + 1];
        json_t *resp, *links, *params;
        size_t k;

        for (k = 0; a->route.method[k] && k + 1 < sizeof(method); k++)
                method[k] = (char)(a->route.method[k] - 'A' + 'a');
        method[k] = '\0';
        snprintf(key, sizeof(key), "%d", a->route.success);
        resp = json_object_get(
                json_object_get(
                        json_object_get(json_object_get(paths, a->route.path),
                                        method),
                        "responses"),
                key);
        if (!resp || json_object_get(resp, "$ref"))
                return;
        params = json_object();
        for (size_t i = 0; i < b->route.n_segments; i++) {
                const char *seg = b->route.segments[i];
                if (!schema__segment_is_param(seg))
                        continue;
                snprintf(name, sizeof(name), "%.*s", (int)strlen(seg) - 2,
                         seg + 1);
                if (i + 1 == b->route.n_segments)
                        snprintf(value, sizeof(value), "$response.body#%s",
                                 pointer);
                else
                        snprintf(value, sizeof(value), "$request.path.%s",
                                 name);
                json_object_set_new(params, name, json_string(value));
        }
        links = json_object_get(resp, "links");
        if (!links) {
                links = json_object();
                json_object_set_new(resp, "links", links);
        }
        json_object_set_new(links, b->type,
                            json_pack("{s:s, s:o}", "operationId", b->type,
                                      "parameters", params));
}

static void openapi_links(const schema_set_t *set, json_t *paths) {
        for (size_t i = 0; i < set->n_msgs; i++) {
                const schema_msg_t *b = &set->msgs[i];
                const char *param;
                size_t parent;

                if (!openapi_item_path(b, &parent, &param))
                        continue;
                for (size_t j = 0; j < set->n_msgs; j++) {
                        const schema_msg_t *a = &set->msgs[j];
                        char pointer[160];
                        if (!a->route.method || a->route.stream ||
                            strlen(a->route.path) != parent ||
                            strncmp(a->route.path, b->route.path, parent) != 0)
                                continue;
                        openapi_link_pointer(a, param, pointer,
                                             sizeof(pointer));
                        if (pointer[0])
                                openapi_link(paths, a, b, pointer);
                }
        }
}

/* ------------------------------------------------------------------------
 * The document
 * ------------------------------------------------------------------------ */

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
                json_object_set_new(item, method,
                                    schema__openapi_operation(msg));
        }
        openapi_links(set, paths);
        openapi_builtins(paths);

        doc = json_pack("{s:s, s:{s:s, s:s, s:s}, s:o, s:o, s:o}", "openapi",
                        "3.1.0", "info", "title", "Omnify API", "version",
                        version ? version : "0.0.0", "description",
                        "Generated from schemas/: every route, parameter, "
                        "body, reply and status the edge and the groups "
                        "answer.",
                        "tags", tags, "paths", paths, "components",
                        openapi_components());
        if (doc)
                out = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        return out;
}
