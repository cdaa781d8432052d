/*
 * schema.h - message and route schemas, the single source of truth.
 *
 * schemas/<group>.json files declare every message type a group accepts and,
 * for those reachable over HTTP, its route: method, path (with {param}
 * segments), whether a bearer token is required, sync or async, and the fields
 * with types and limits. The edge routes and validates from it, consumers
 * validate again at the Kafka boundary, and /openapi.json is generated from
 * it. The files are embedded into the binaries at build time and checked both
 * by the build (omnify-schemacheck) and at start-up.
 *
 * File format (JSON):
 * {
 *   "group": "auth",
 *   "messages": [
 *     {
 *       "type": "auth.signup",            // "<group>.<name>", unique
 *       "version": 1,                     // schema version, >= 1
 *       "summary": "Create an account",
 *       "route": {                        // optional: absent = Kafka only
 *         "method": "POST",               // GET POST PUT PATCH DELETE
 *         "path": "/api/auth/signup",     // segments: literal or {name}
 *         "auth": false,                  // bearer token required?
 *         "mode": "sync",                 // "sync" or "async"
 *         "role": "admin",                // optional: least role (viewer,
 *                                         //   member, admin, owner); needs
 * auth "terms": true,                  // optional: current terms accepted
 *         "rate_limit": "login",          // optional: rate-limit bucket
 *         "rate_key": "email",            // optional: field for per-account
 *         "secret_reply": true            // optional: answer not kept
 *       },
 *       "fields": {
 *         "email": {"type": "string", "required": true, "format": "email",
 *                   "max_length": 254},
 *         "password": {"type": "string", "required": true, "min_length": 8,
 *                      "max_length": 128, "secret": true},
 *         "count": {"type": "integer", "minimum": 1, "maximum": 100},
 *         "kind": {"type": "string", "enum": ["a", "b"]}
 *       }
 *     }
 *   ]
 * }
 * Field types: string, integer, number, boolean, object, array.
 * Limits: min_length/max_length (string: bytes; array: items), minimum/maximum
 * (integer, number), enum (string), format (email, uuid, date-time) and
 * "secret": true (never logged, writeOnly in OpenAPI). A {param} in the path
 * must be declared as a string field; it is filled from the path.
 * "additional": false rejects fields not declared (default false: rejected).
 *
 * A loaded schema_set_t is immutable and may be shared by all threads.
 */
#ifndef OMNIFY_SCHEMA_H
#define OMNIFY_SCHEMA_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "slice.h"

#define SCHEMA_ERRORS(X)                                         \
        X(SCHEMA_OK, "ok")                                       \
        X(SCHEMA_BAD_JSON, "schema file is not valid JSON")      \
        X(SCHEMA_BAD_DEFINITION, "schema definition is invalid") \
        X(SCHEMA_DUPLICATE, "duplicate message type or route")

typedef enum schema_err {
#define X(name, msg) name,
        SCHEMA_ERRORS(X)
#undef X
} schema_err_t;

const char *schema_strerror(schema_err_t err);

typedef enum schema_type {
        SCHEMA_STRING,
        SCHEMA_INTEGER,
        SCHEMA_NUMBER,
        SCHEMA_BOOLEAN,
        SCHEMA_OBJECT,
        SCHEMA_ARRAY,
} schema_type_t;

typedef enum schema_format {
        SCHEMA_FORMAT_NONE,
        SCHEMA_FORMAT_EMAIL,
        SCHEMA_FORMAT_UUID,
        SCHEMA_FORMAT_DATE_TIME,
} schema_format_t;

typedef struct schema_field {
        char *name;
        schema_type_t type;
        schema_format_t format;
        bool required;
        bool secret;
        bool in_path;
        int64_t min_length, max_length; /* -1: no limit */
        bool has_minimum, has_maximum;
        double minimum, maximum;
        char **enum_values;
        size_t n_enum;
        char *doc;
} schema_field_t;

typedef enum schema_mode {
        SCHEMA_MODE_SYNC,
        SCHEMA_MODE_ASYNC,
} schema_mode_t;

/* Roles in an organisation, weakest first; a route may require one. */
typedef enum schema_role {
        SCHEMA_ROLE_NONE = 0,
        SCHEMA_ROLE_VIEWER,
        SCHEMA_ROLE_MEMBER,
        SCHEMA_ROLE_ADMIN,
        SCHEMA_ROLE_OWNER,
} schema_role_t;

/* "viewer" -> SCHEMA_ROLE_VIEWER; SCHEMA_ROLE_NONE when unknown. */
schema_role_t schema_role_parse(const char *name, size_t len);
const char *schema_role_name(schema_role_t role);

typedef struct schema_route {
        char *method; /* NULL when the message has no route */
        char *path;
        char **segments; /* path split on '/' after the leading one,
                          * "{name}" kept as is: "/api/x/{id}" gives
                          * "api", "x", "{id}" */
        size_t n_segments;
        bool auth;
        schema_mode_t mode;
        schema_role_t role; /* least role the token must hold, or NONE */
        bool terms;         /* the current terms must have been accepted */
        char *rate_limit;   /* bucket name ("login"...), or NULL */
        char *rate_key;     /* body field keying the per-account limit */
        bool secret_reply;  /* the answer holds secrets (tokens, keys): given
                             * once, never kept for /api/operations */
} schema_route_t;

typedef struct schema_msg {
        char *type;
        char *group;
        int version;
        char *summary;
        schema_route_t route;
        schema_field_t *fields;
        size_t n_fields;
        bool additional;  /* undeclared fields accepted ("additional") */
        bool read_only;   /* changes nothing: a sync one is not recorded */
        const char *file; /* the source name it came from */
} schema_msg_t;

typedef struct schema_set schema_set_t;

/* One schema file: its name (for messages) and its text. */
typedef struct schema_source {
        const char *name;
        const char *text;
        size_t len;
} schema_source_t;

/*
 * Parse and check every source into a new set. On error returns non-OK and
 * fills errstr with "<file>: <json path>: <what is wrong>", e.g.
 * "auth.json: messages[2].fields.email.max_length: must be an integer >= 0".
 */
schema_err_t schema_set_load(schema_set_t **out, const schema_source_t *sources,
                             size_t n_sources, char *errstr, size_t errlen);

void schema_set_destroy(schema_set_t *set);

/* All messages, in file order. */
size_t schema_set_count(const schema_set_t *set);
const schema_msg_t *schema_set_at(const schema_set_t *set, size_t i);

/* The message of a type, or NULL. */
const schema_msg_t *schema_find(const schema_set_t *set, slice_t type);

/* Distinct group names, in file order. */
size_t schema_group_count(const schema_set_t *set);
const char *schema_group_at(const schema_set_t *set, size_t i);

typedef enum schema_match {
        SCHEMA_MATCH_FOUND,
        SCHEMA_MATCH_NOT_FOUND,          /* no route has this path: 404 */
        SCHEMA_MATCH_METHOD_NOT_ALLOWED, /* path known, method not: 405 */
} schema_match_t;

#define SCHEMA_MAX_PARAMS 8

typedef struct schema_params {
        size_t n;
        const char *names[SCHEMA_MAX_PARAMS]; /* point into the schema */
        slice_t values[SCHEMA_MAX_PARAMS];    /* point into the path */
} schema_params_t;

/*
 * Match method and path (no query string; not NUL-terminated) against the
 * routes. Literal segments win over {param} segments. On FOUND, *msg and
 * params are set; on METHOD_NOT_ALLOWED, allow (if not NULL) receives the
 * allowed methods comma-separated ("GET, POST"). Empty path segments (a
 * double slash) and a trailing slash do not match.
 */
schema_match_t schema_route_match(const schema_set_t *set, slice_t method,
                                  slice_t path, const schema_msg_t **msg,
                                  schema_params_t *params, char *allow,
                                  size_t allow_size);

/* One field error: which field and what is wrong with it. */
typedef struct schema_violation {
        char field[128];  /* dotted name, "" for the body itself */
        char reason[160]; /* human sentence, never echoes the value */
} schema_violation_t;

#define SCHEMA_MAX_VIOLATIONS 32

typedef struct schema_report {
        size_t n;
        bool truncated;
        schema_violation_t v[SCHEMA_MAX_VIOLATIONS];
} schema_report_t;

/*
 * Validate a msgpack object against msg's fields: body must be a map; every
 * required field present; every field of the declared type and within its
 * limits; undeclared fields rejected; strings must be valid UTF-8. Reports
 * every violation (up to SCHEMA_MAX_VIOLATIONS). Returns true when valid.
 */
bool schema_validate(const schema_msg_t *msg, const msgpack_object *body,
                     schema_report_t *report);

/* True when the field of that name is marked secret. */
bool schema_field_is_secret(const schema_msg_t *msg, const char *name);

/*
 * The OpenAPI 3.1 document for every routed message, as a new JSON string
 * (caller frees with free()). Includes the problem+json error schema and the
 * bearer security scheme.
 */
char *schema_openapi(const schema_set_t *set, const char *version);

#endif
