/*
 * schema.h - message, route, event and fact schemas: the single source of
 * truth of the API and of the bus.
 *
 * schemas/<group>.json files declare every message type a group accepts and,
 * for those reachable over HTTP, its route; every event type it publishes;
 * and the facts the (generic) edge keeps from its events. The edge routes,
 * builds and validates requests from them, consumers validate again at the
 * Kafka boundary, the runtime validates every emitted event, and
 * /openapi.json and /asyncapi.json are generated from them. The files are
 * embedded into the binaries at build time and checked both by the build
 * (omnify-schemacheck) and at start-up.
 *
 * File format (JSON; /work/shared's SCHEMA-EXT.md is the agreed contract):
 * {
 *   "group": "auth",
 *   "messages": [
 *     {
 *       "type": "auth.signup",            // "<group>.<name>", unique
 *       "version": 1,                     // schema version, >= 1
 *       "summary": "Create an account",
 *       "read_only": false,               // changes nothing (gets, lists)
 *       "route": {                        // optional: absent = Kafka only
 *         "method": "POST",               // GET POST PUT PATCH DELETE
 *         "path": "/api/auth/signup",     // segments: literal or {name}
 *         "auth": false,                  // bearer token required?
 *         "mode": "sync",                 // "sync" or "async"
 *         "role": "admin",                // least role; needs auth
 *         "requires": ["terms"],          // version facts that must hold
 *         "rate_limit": "login",          // rate-limit bucket
 *         "rate_key": "email",            // field for per-account limits
 *         "secret_reply": true,           // answer never kept
 *         "key": "run_id",                // Kafka key field (default tenant)
 *         "success": 201,                 // 200 201 202 204 302 303
 *         "statuses": [409, 422],         // other statuses the group answers
 *         "raw_body": "payload",          // body bytes as this binary field
 *         "produces": ["application/json", "text/csv"],
 *         "stream": {...}                 // Server-Sent Events, see below
 *       },
 *       "fields": {
 *         "email": {"type": "string", "required": true, "format": "email",
 *                   "max_length": 254},
 *         "limit": {"type": "integer", "in": "query", "default": 20},
 *         "sig": {"type": "string", "in": "header", "name": "X-Sig"},
 *         "steps": {"type": "array", "max_length": 50, "items":
 *                   {"type": "object", "fields": {...}}}
 *       },
 *       "reply": {"fields": {...}}        // the success body (documentation)
 *     }
 *   ],
 *   "events": [
 *     {"type": "auth.user.registered", "version": 1, "summary": "...",
 *      "key": "tenant", "fields": {...}}
 *   ],
 *   "facts": [
 *     {"name": "revoked_session", "kind": "deny", "event": "...", "key":
 *      "session_id", "until": "until", "claim": "sid", "detail": "..."},
 *     {"name": "terms", "kind": "version", "event": "...", "where":
 *      {"type": "terms"}, "value": "version", "query": {"type": "...",
 *      "field": "terms"}, "claim": "tv", "detail": "... {value} ..."}
 *   ]
 * }
 *
 * Field types: string, integer, number, boolean, object, array, binary.
 * Limits: min_length/max_length (string and binary: bytes; array: items),
 * minimum/maximum (integer, number), enum (string), format (string: email,
 * uuid, date-time, date, uri), "secret": true (never logged, writeOnly in
 * OpenAPI), "default" (filled in by the edge when absent), "doc". An object
 * with "fields" (and "additional") is checked field by field; an array with
 * "items" item by item; declarations nest at most SCHEMA_MAX_DEPTH deep.
 * "in" (top-level fields of routed messages only): "body" (default),
 * "path" (also implied by a {param} in the path), "query", or "header" with
 * "name". "additional": true accepts undeclared fields (default: rejected).
 *
 * A loaded schema_set_t is immutable and may be shared by all threads; every
 * pointer into it lives as long as the set.
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

/* How deep field declarations nest: a top-level field is at depth 1, each
 * "fields" of an object or "items" of an array one deeper. */
#define SCHEMA_MAX_DEPTH 8

typedef enum schema_type {
        SCHEMA_STRING,
        SCHEMA_INTEGER,
        SCHEMA_NUMBER,
        SCHEMA_BOOLEAN,
        SCHEMA_OBJECT,
        SCHEMA_ARRAY,
        SCHEMA_BINARY, /* msgpack bin: raw bytes (raw request bodies) */
} schema_type_t;

typedef enum schema_format {
        SCHEMA_FORMAT_NONE,
        SCHEMA_FORMAT_EMAIL,
        SCHEMA_FORMAT_UUID,
        SCHEMA_FORMAT_DATE_TIME, /* RFC 3339 */
        SCHEMA_FORMAT_DATE,      /* YYYY-MM-DD, a real calendar date */
        SCHEMA_FORMAT_URI,       /* an absolute http or https URL */
} schema_format_t;

/* Where the edge takes a field's value from. */
typedef enum schema_in {
        SCHEMA_IN_BODY,   /* the JSON body (or the raw body, see raw_body) */
        SCHEMA_IN_PATH,   /* a {name} segment of the route's path */
        SCHEMA_IN_QUERY,  /* the query string */
        SCHEMA_IN_HEADER, /* an HTTP header (schema_field_t.header) */
} schema_in_t;

typedef struct schema_field schema_field_t;

/* The fields of a body, of an event, of a reply or of a nested object. */
typedef struct schema_object {
        schema_field_t *fields;
        size_t n_fields;
        bool additional; /* undeclared fields accepted */
} schema_object_t;

struct schema_field {
        char *name; /* "" for the items of an array */
        schema_type_t type;
        schema_format_t format;
        schema_in_t in;
        char *header; /* SCHEMA_IN_HEADER: the header's name as declared
                       * (matched case-insensitively); NULL otherwise */
        bool required;
        bool secret;
        bool in_path; /* in == SCHEMA_IN_PATH (kept for older callers) */
        int64_t min_length, max_length; /* -1: no limit */
        bool has_minimum, has_maximum;
        double minimum, maximum;
        char **enum_values;
        size_t n_enum;
        char *doc;
        schema_object_t *object; /* object with "fields", or NULL: any map */
        schema_field_t *items;   /* array with "items", or NULL: any array */
        /* "default": the value as compact JSON text and packed as one
         * msgpack object (default_mp_len bytes); NULL when none. */
        char *default_json;
        char *default_mp;
        size_t default_mp_len;
};

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

typedef struct schema_fact schema_fact_t;
typedef struct schema_event schema_event_t;

/*
 * A Server-Sent Events route: the edge follows an events topic and sends the
 * caller's events (see SCHEMA-EXT.md for the whole behaviour).
 */
typedef struct schema_stream {
        char *topic;        /* unprefixed, e.g. "agentkit.events" */
        char **match_event; /* event body fields ... */
        char **match_field; /* ... each equal to this field of the route */
        size_t n_match;
        char **types; /* event types sent; "prefix.*" matches a prefix */
        size_t n_types;
        char **until; /* event types after which the stream ends */
        size_t n_until;
        char *history; /* read-only command giving the past, or NULL */
        bool tenant;   /* only the caller's tenant's events (default) */
} schema_stream_t;

#define SCHEMA_MAX_STATUSES 16

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
        char *rate_limit;   /* bucket name ("login"...), or NULL */
        char *rate_key;     /* body field keying the per-account limit */
        bool secret_reply;  /* the answer holds secrets (tokens, keys): given
                             * once, never kept for /api/operations */
        char *key;          /* field whose value keys the Kafka record, or NULL:
                             * the tenant */
        int success;        /* status of a successful answer (default 200) */
        int statuses[SCHEMA_MAX_STATUSES]; /* others the group may answer */
        size_t n_statuses;
        char *raw_body;  /* binary field given the raw body, or NULL */
        char **produces; /* media types of the reply: at least
                          * "application/json" (the default), first */
        size_t n_produces;
        const schema_fact_t **requires; /* version facts that must hold */
        size_t n_requires;
        schema_stream_t *stream; /* a Server-Sent Events route, or NULL */
        /* Deprecated: true when requires names a fact called "terms". Kept
         * only while the edge still reads it; it goes once the edge uses
         * requires. */
        bool terms;
} schema_route_t;

typedef struct schema_msg {
        char *type;
        char *group;
        int version;
        char *summary;
        bool read_only; /* changes nothing: not looked up nor recorded in
                         * the operation log when sent synchronously */
        schema_route_t route;
        schema_field_t *fields;
        size_t n_fields;
        bool additional;        /* undeclared fields accepted */
        schema_object_t *reply; /* "reply": the success body, or NULL */
        const char *file;       /* the source name it came from */
} schema_msg_t;

/* An event type a group publishes on <group>.events. */
struct schema_event {
        char *type; /* "<group>.<entity>.<past-tense verb>" */
        char *group;
        int version;
        char *summary;
        char *key; /* body field keying the record, or NULL: the tenant */
        schema_field_t *fields;
        size_t n_fields;
        bool additional;
        const char *file;
};

typedef enum schema_fact_kind {
        SCHEMA_FACT_DENY,    /* a deny list of claim values, from events */
        SCHEMA_FACT_VERSION, /* the highest version seen, from events */
} schema_fact_kind_t;

/* One "where" condition of a version fact: body[field] == the value. */
typedef struct schema_where {
        char *field;
        schema_type_t type; /* STRING, INTEGER or BOOLEAN */
        char *str;
        int64_t integer;
        bool boolean;
} schema_where_t;

/* A fact the edge keeps from a group's events (see SCHEMA-EXT.md). */
struct schema_fact {
        char *name;
        char *group; /* the declaring group: the edge follows <group>.events */
        schema_fact_kind_t kind;
        char *event;                /* the event type feeding it */
        const schema_event_t *decl; /* its declaration */
        char *claim;                /* the token claim compared ("sid") */
        char *detail;               /* problem detail; "{value}" replaced */
        char *key, *until;          /* deny: body fields */
        schema_where_t *where;      /* version: conditions on the body */
        size_t n_where;
        char *value;       /* version: body field of the version */
        char *query_type;  /* version: command asked at start */
        char *query_field; /* version: its reply field */
        const char *file;
};

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

/*
 * Check the set against the topics that exist (unprefixed names, e.g. from
 * schemas/topics.json): every group has its <group>.events topic when it
 * declares events or facts, and every stream's topic exists. Non-OK and
 * errstr ("<file>: <json path>: <what>") on the first problem.
 */
schema_err_t schema_set_check_topics(const schema_set_t *set,
                                     const char *const *topics, size_t n_topics,
                                     char *errstr, size_t errlen);

void schema_set_destroy(schema_set_t *set);

/* All messages, in file order. */
size_t schema_set_count(const schema_set_t *set);
const schema_msg_t *schema_set_at(const schema_set_t *set, size_t i);

/* The message of a type, or NULL. */
const schema_msg_t *schema_find(const schema_set_t *set, slice_t type);

/* All events, in file order; the event of a type, or NULL. */
size_t schema_event_count(const schema_set_t *set);
const schema_event_t *schema_event_at(const schema_set_t *set, size_t i);
const schema_event_t *schema_find_event(const schema_set_t *set, slice_t type);

/* All facts, in file order; the fact of a name, or NULL. */
size_t schema_fact_count(const schema_set_t *set);
const schema_fact_t *schema_fact_at(const schema_set_t *set, size_t i);
const schema_fact_t *schema_find_fact(const schema_set_t *set, slice_t name);

/* Distinct group names, in file order. */
size_t schema_group_count(const schema_set_t *set);
const char *schema_group_at(const schema_set_t *set, size_t i);

/* The top-level field of that name, or NULL. */
const schema_field_t *schema_field_find(const schema_field_t *fields,
                                        size_t n_fields, slice_t name);

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
 * routes. The path is resolved first, as OpenAPI says: a route whose
 * segments match wins over another with a {param} where it has a literal,
 * at the first position where they differ, whatever the methods. Then the
 * method: on FOUND, *msg and params are set; when the path's route has no
 * such method, METHOD_NOT_ALLOWED and allow (if not NULL) receives the
 * methods it has, comma-separated ("GET, POST"). Empty path segments (a
 * double slash) and a trailing slash do not match.
 */
schema_match_t schema_route_match(const schema_set_t *set, slice_t method,
                                  slice_t path, const schema_msg_t **msg,
                                  schema_params_t *params, char *allow,
                                  size_t allow_size);

/* One field error: which field and what is wrong with it. */
typedef struct schema_violation {
        char field[128];  /* the full path ("steps[2].retry.max", a header's
                           * or parameter's name), "" for the body itself */
        char reason[160]; /* human sentence, never echoes the value */
} schema_violation_t;

#define SCHEMA_MAX_VIOLATIONS 32

typedef struct schema_report {
        size_t n;
        bool truncated;
        schema_violation_t v[SCHEMA_MAX_VIOLATIONS];
} schema_report_t;

/* Add a violation (used by the codec for parameters that do not convert).
 * field is not NUL-terminated; it is cut at a character boundary. */
void schema_report_add(schema_report_t *report, const char *field,
                       size_t field_len, const char *reason);

/*
 * Validate a msgpack object against msg's fields: body must be a map; every
 * required field present; every field of the declared type and within its
 * limits, nested objects and arrays field by field and item by item;
 * undeclared fields rejected; strings must be valid UTF-8 without NUL.
 * Reports every violation (up to SCHEMA_MAX_VIOLATIONS), each naming the
 * full path of the field. Returns true when valid.
 */
bool schema_validate(const schema_msg_t *msg, const msgpack_object *body,
                     schema_report_t *report);

/* The same for an event body (the runtime checks every emitted event). */
bool schema_event_validate(const schema_event_t *event,
                           const msgpack_object *body, schema_report_t *report);

/* True when the field of that name is marked secret. */
bool schema_field_is_secret(const schema_msg_t *msg, const char *name);

/* ------------------------------------------------------------------------
 * Facts, for the edge
 * ------------------------------------------------------------------------ */

/* What one event of fact->event says for the fact. */
typedef struct schema_fact_update {
        slice_t key;     /* deny: the claim value to refuse (into body) */
        int64_t until_s; /* deny: refuse until then (Unix seconds) */
        int64_t version; /* version: the version the event announces */
} schema_fact_update_t;

/*
 * Read an event body of type fact->event. Deny: key from body[fact->key]
 * (a non-empty string), until from body[fact->until] (an integer; absent:
 * now_s + one day). Version: only when every "where" holds, the version
 * from body[fact->value] (an integer). False when the event does not apply
 * or lacks what the fact needs (nothing to change).
 */
bool schema_fact_read(const schema_fact_t *fact, const msgpack_object *body,
                      int64_t now_s, schema_fact_update_t *out);

/* The version in a reply to fact->query_type (reply[fact->query_field], an
 * integer >= 0). False when the reply has none. */
bool schema_fact_read_query(const schema_fact_t *fact,
                            const msgpack_object *reply, int64_t *version);

/* fact->detail with "{value}" replaced by value, into buf (always
 * terminated, cut if too long). Returns buf. */
const char *schema_fact_detail(const schema_fact_t *fact, int64_t value,
                               char *buf, size_t size);

/* ------------------------------------------------------------------------
 * Documents
 * ------------------------------------------------------------------------ */

/*
 * The OpenAPI 3.1 document for every routed message, as a new JSON string
 * (caller frees with free()): parameters, bodies and replies with every
 * constraint, every status each route can answer with its problem shape,
 * the security scheme per route and links between operations.
 */
char *schema_openapi(const schema_set_t *set, const char *version);

/*
 * The JSON Schema (2020-12) of the body a message carries on the bus: every
 * field but those taken from HTTP headers, with every constraint the
 * validator applies. A new JSON string (caller frees with free()). Agents
 * describe tools to a model with it.
 */
char *schema_msg_json_schema(const schema_msg_t *msg);

/*
 * The AsyncAPI 3.0 document of the bus, as a new JSON string (caller frees
 * with free()): every topic (channel), command with its reply, and event.
 * topic_prefix is the deployment's topic prefix ("omnify."), shown in the
 * channel addresses.
 */
char *schema_asyncapi(const schema_set_t *set, const char *version,
                      const char *topic_prefix);

#endif
