/*
 * schema_openapi_op.c - one routed message as an OpenAPI 3.1 operation.
 *
 * What a client may send: path, query and header parameters with their
 * constraints, the body (JSON with nested schemas, or raw bytes), and the
 * headers the edge itself reads (Idempotency-Key, Prefer, Last-Event-ID).
 * What it may get back: the success status with the reply's schema and
 * content types, 202 with the operation's id (async routes, or any route
 * with Prefer: respond-async), every status the group declares, and every
 * status the edge answers for this route, derived from the route as
 * SCHEMA-EXT.md lists them, each error with the problem+json shape.
 */
#include "schema_internal.h"

#include <stdio.h>
#include <string.h>

static json_t *op_param(const char *name, const char *in, bool required,
                        json_t *schema, const char *doc) {
        json_t *p = json_pack("{s:s, s:s, s:b, s:o}", "name", name, "in", in,
                              "required", required, "schema", schema);
        if (doc)
                json_object_set_new(p, "description", json_string(doc));
        return p;
}

/* The field's schema without what only a body holds: description and
 * writeOnly go on the parameter. */
static json_t *op_param_schema(const schema_field_t *f) {
        json_t *s = schema__json_schema(f);

        json_object_del(s, "description");
        json_object_del(s, "writeOnly");
        return s;
}

static void op_parameters(const schema_msg_t *msg, json_t *op) {
        const schema_route_t *route = &msg->route;
        json_t *params = json_array();

        /* Path parameters, in path order. */
        for (size_t i = 0; i < route->n_segments; i++) {
                const schema_field_t *f;
                if (!schema__segment_is_param(route->segments[i]))
                        continue;
                f = schema__param_field(msg, route->segments[i]);
                json_array_append_new(params,
                                      op_param(f->name, "path", true,
                                               op_param_schema(f), f->doc));
        }
        for (size_t i = 0; i < msg->n_fields; i++) {
                const schema_field_t *f = &msg->fields[i];
                json_t *p;
                if (f->in == SCHEMA_IN_QUERY) {
                        p = op_param(f->name, "query", f->required,
                                     op_param_schema(f), f->doc);
                        if (f->type == SCHEMA_ARRAY)
                                json_object_set_new(
                                        p, "description",
                                        json_sprintf("%s%sRepeat the "
                                                     "parameter or separate "
                                                     "values with commas.",
                                                     f->doc ? f->doc : "",
                                                     f->doc ? " " : ""));
                        json_array_append_new(params, p);
                } else if (f->in == SCHEMA_IN_HEADER) {
                        json_array_append_new(
                                params,
                                op_param(f->header, "header", f->required,
                                         op_param_schema(f), f->doc));
                }
        }
        if (route->stream) {
                json_array_append_new(
                        params,
                        op_param("Last-Event-ID", "header", false,
                                 json_pack("{s:s, s:s}", "type", "string",
                                           "pattern", "^[!-~]{1,128}$"),
                                 "Resume after this event id (the id: line "
                                 "of the last event received)."));
        } else {
                json_array_append_new(
                        params,
                        op_param("Idempotency-Key", "header", false,
                                 json_pack("{s:s, s:s}", "type", "string",
                                           "pattern", "^[!-~]{1,255}$"),
                                 "The same key and request from the same "
                                 "tenant answer the first result and cause "
                                 "one side effect; the key with another "
                                 "request answers 422."));
                json_array_append_new(
                        params,
                        op_param("Prefer", "header", false,
                                 json_pack("{s:s, s:[s,s]}", "type", "string",
                                           "examples", "respond-async",
                                           "wait=5"),
                                 "respond-async: answer 202 with the "
                                 "operation id once the command is queued; "
                                 "wait=N: wait at most N seconds for the "
                                 "reply. Other preferences are ignored."));
        }
        if (json_array_size(params))
                json_object_set_new(op, "parameters", params);
        else
                json_decref(params);
}

static bool op_in_body(const schema_field_t *f) {
        return f->in == SCHEMA_IN_BODY;
}

static void op_request_body(const schema_msg_t *msg, json_t *op) {
        const schema_route_t *route = &msg->route;
        bool required = false;
        size_t n_body = 0;
        json_t *schema;

        if (strcmp(route->method, "GET") == 0)
                return;
        if (route->raw_body) {
                const schema_field_t *f = schema_field_find(
                        msg->fields, msg->n_fields, slice_of(route->raw_body));
                json_t *s = json_pack("{s:s}", "type", "string");
                if (f->max_length >= 0)
                        json_object_set_new(s, "maxLength",
                                            json_integer(f->max_length));
                json_object_set_new(
                        op, "requestBody",
                        json_pack("{s:s, s:b, s:{s:{s:o}}}", "description",
                                  f->doc ? f->doc
                                         : "The raw body, passed on as it is "
                                           "(any content type).",
                                  "required", true, "content", "*/*", "schema",
                                  s));
                return;
        }
        for (size_t i = 0; i < msg->n_fields; i++) {
                if (msg->fields[i].in != SCHEMA_IN_BODY)
                        continue;
                n_body++;
                required |= msg->fields[i].required;
        }
        /* A DELETE without body fields takes none; other methods take an
         * object, possibly empty (an empty body reads as {}). */
        if (!n_body && strcmp(route->method, "DELETE") == 0)
                return;
        schema = schema__json_object(msg->fields, msg->n_fields,
                                     msg->additional, op_in_body);
        json_object_set_new(op, "requestBody",
                            json_pack("{s:b, s:{s:{s:o}}}", "required",
                                      required, "content", "application/json",
                                      "schema", schema));
}

/* ------------------------------------------------------------------------
 * Responses
 * ------------------------------------------------------------------------ */

/* The statuses of this route, success first, then ascending. */
static size_t op_statuses(const schema_msg_t *msg, int *out, size_t max) {
        const schema_route_t *r = &msg->route;
        bool stream = r->stream != NULL;
        bool body = strcmp(r->method, "GET") != 0;
        bool params = false;
        int edge[16];
        size_t n = 0, k = 0;

        for (size_t i = 0; i < r->n_segments; i++)
                params |= schema__segment_is_param(r->segments[i]);
        edge[k++] = 400;
        edge[k++] = 500; /* a group's handler failed: its bug, logged */
        edge[k++] = 502; /* the group's reply was malformed: a bug too */
        edge[k++] = 503;
        if (r->auth)
                edge[k++] = 401;
        if (r->role != SCHEMA_ROLE_NONE || r->n_requires)
                edge[k++] = 403;
        if (params)
                edge[k++] = 404;
        if (body && !r->raw_body)
                edge[k++] = 415;
        if (body)
                edge[k++] = 413;
        if (!stream) {
                edge[k++] = 202;
                edge[k++] = 422; /* Idempotency-Key reused */
        }
        if (r->rate_limit)
                edge[k++] = 429;
        if (r->mode == SCHEMA_MODE_SYNC && !stream)
                edge[k++] = 504;

        out[n++] = stream                         ? 200
                   : r->mode == SCHEMA_MODE_ASYNC ? 202
                                                  : r->success;
        for (size_t i = 0; i < k + r->n_statuses; i++) {
                int s = i < k ? edge[i] : r->statuses[i - k];
                bool dup = false;
                for (size_t j = 0; j < n; j++)
                        dup |= out[j] == s;
                if (!dup && n < max)
                        out[n++] = s;
        }
        /* Ascending after the success status. */
        for (size_t i = 2; i < n; i++)
                for (size_t j = i; j > 1 && out[j - 1] > out[j]; j--) {
                        int t = out[j];
                        out[j] = out[j - 1];
                        out[j - 1] = t;
                }
        return n;
}

/* The success answer: its content per media type, or none. */
static json_t *op_success(const schema_msg_t *msg, int status) {
        const schema_route_t *r = &msg->route;
        json_t *resp, *content, *schema;

        if (r->stream) {
                char d[256], types[512] = "";
                size_t used = 0;
                for (size_t i = 0; i < r->stream->n_types && used < 400; i++)
                        used += (size_t)snprintf(
                                types + used, sizeof(types) - used, "%s%s",
                                i ? ", " : "", r->stream->types[i]);
                snprintf(d, sizeof(d),
                         "A Server-Sent Events stream of %s events: each with "
                         "id, event (the type) and data (its JSON body); a "
                         "comment line every 15 s keeps it open.",
                         r->stream->topic);
                /* The schema of one event, as SSE tooling reads it
                 * (schemathesis checks each event against it). */
                return json_pack(
                        "{s:s, s:{s:{s:{s:s, s:{s:{s:s}, s:{s:s, s:s+}, "
                        "s:{s:s, s:s}, s:{s:s}}, s:[s]}}}}",
                        "description", d, "content", "text/event-stream",
                        "schema", "type", "object", "properties", "id", "type",
                        "string", "event", "type", "string", "description",
                        "The event's type: ", types, "data", "type", "string",
                        "contentMediaType", "application/json", "retry", "type",
                        "integer", "required", "data");
        }
        if (status == 204)
                return json_pack("{s:s}", "description", "Done; no content.");
        if (status == 302 || status == 303)
                return json_pack("{s:s, s:{s:{s:b, s:{s:s, s:s}}}}",
                                 "description",
                                 "Redirected to the Location header.",
                                 "headers", "Location", "required", 1, "schema",
                                 "type", "string", "format", "uri-reference");
        schema = msg->reply ? schema__json_object(msg->reply->fields,
                                                  msg->reply->n_fields,
                                                  msg->reply->additional, NULL)
                            : json_pack("{s:s}", "type", "object");
        /* A synchronous route whose success is 202 also answers 202 with
         * the operation when the client asks Prefer: respond-async. */
        if (status == 202)
                schema = json_pack("{s:[o, {s:s}]}", "anyOf", schema, "$ref",
                                   "#/components/schemas/Accepted");
        content = json_object();
        json_object_set_new(content, "application/json",
                            json_pack("{s:o}", "schema", schema));
        for (size_t i = 1; i < r->n_produces; i++)
                json_object_set_new(
                        content, r->produces[i],
                        json_pack("{s:{s:s}}", "schema", "type", "string"));
        resp = json_pack("{s:s, s:o}", "description",
                         status == 202 ? "Accepted: the reply, or with Prefer: "
                                         "respond-async the operation (its "
                                         "result at /api/operations/{id})."
                         : msg->read_only ? "The result."
                                          : "Done.",
                         "content", content);
        return resp;
}

json_t *schema__openapi_operation(const schema_msg_t *msg) {
        const schema_route_t *route = &msg->route;
        int statuses[40];
        size_t n;
        json_t *op, *responses;

        op = json_pack("{s:s, s:s, s:[s]}", "operationId", msg->type, "summary",
                       msg->summary, "tags", msg->group);
        if (msg->read_only)
                json_object_set_new(op, "description",
                                    json_string("Changes nothing."));
        op_parameters(msg, op);
        op_request_body(msg, op);

        responses = json_object();
        n = op_statuses(msg, statuses, 40);
        for (size_t i = 0; i < n; i++) {
                char key[8];
                json_t *resp;
                snprintf(key, sizeof(key), "%d", statuses[i]);
                if (i == 0 && route->mode == SCHEMA_MODE_SYNC)
                        resp = op_success(msg, statuses[i]);
                else
                        resp = schema__openapi_response(statuses[i]);
                json_object_set_new(responses, key, resp);
        }
        json_object_set_new(op, "responses", responses);
        json_object_set_new(op, "security",
                            route->auth ? json_pack("[{s:[]}]", "bearerAuth")
                                        : json_array());
        return op;
}
