/*
 * schema_internal.h - what the files of the schema module share (not part of
 * the contract: callers use schema.h).
 *
 * The module is split by job:
 *   schema.c           the set: names, lookups, destruction
 *   schema_format.c    text formats (UTF-8, email, uuid, dates, uri)
 *   schema_load.c      reading the files: sources, messages, cross-checks
 *   schema_field.c     reading field declarations (nested, in, default)
 *   schema_load_route.c reading routes (and streams)
 *   schema_event.c     reading events and facts; facts for the edge
 *   schema_route.c     matching requests to routes
 *   schema_validate.c  checking bodies
 *   schema_openapi.c   the OpenAPI document (schema_openapi_op.c: operations)
 *   schema_asyncapi.c  the AsyncAPI document
 */
#ifndef OMNIFY_SCHEMA_INTERNAL_H
#define OMNIFY_SCHEMA_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "schema.h"

#define SCHEMA_MAX_SEGMENTS 16 /* segments in a route path */
#define SCHEMA_MAX_FIELDS 64   /* fields per object: one bit each */
#define SCHEMA_MAX_NAME 64     /* group, field and parameter names */
#define SCHEMA_MAX_TYPE 128    /* message type names */
#define SCHEMA_MAX_NEST 32     /* nesting inside "any" object/array values */
#define SCHEMA_MAX_LIST 32     /* produces, requires, stream lists */
#define SCHEMA_EXACT_INT 9007199254740992.0 /* 2^53 */
#define SCHEMA_PATH_SIZE 256

#define SCHEMA__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct schema_set {
        schema_msg_t *msgs;
        size_t n_msgs;
        schema_event_t *events;
        size_t n_events;
        schema_fact_t *facts;
        size_t n_facts;
        char **groups;
        size_t n_groups;
        char **files; /* copies of the source names, for schema_msg_t.file */
        size_t n_files;
};

/* Names, indexed by their enums. */
extern const char *const schema__methods[5]; /* GET POST PUT PATCH DELETE */
extern const char *const schema__type_names[SCHEMA_BINARY + 1];
extern const char *const schema__format_names[SCHEMA_FORMAT_URI + 1];
extern const char *const schema__in_names[SCHEMA_IN_HEADER + 1];

/* ------------------------------------------------------------------------
 * Text formats (schema_format.c)
 * ------------------------------------------------------------------------ */

bool schema__utf8_valid(const char *s, size_t len);
bool schema__is_digit(char c);
/* A letter or '_' then letters, digits or '_', at most max bytes. */
bool schema__name_valid(const char *s, size_t len, size_t max, bool upper);
bool schema__email_valid(const char *s, size_t len);
bool schema__uuid_valid(const char *s, size_t len);
bool schema__date_time_valid(const char *s, size_t len);
bool schema__date_valid(const char *s, size_t len);
bool schema__uri_valid(const char *s, size_t len);
/* An HTTP header name (an RFC 9110 token of letters, digits and '-'). */
bool schema__header_name_valid(const char *s, size_t len);
/* A media type "type/subtype" of token characters. */
bool schema__media_type_valid(const char *s);
/* "<group>.<entity>[.<more>].<past-tense verb>" after the group's dot. */
bool schema__event_name_valid(const char *s);

/* ------------------------------------------------------------------------
 * The set (schema.c)
 * ------------------------------------------------------------------------ */

int schema__method_index(const char *s, size_t len); /* -1: not a method */
bool schema__segment_is_param(const char *seg);
/* The field a "{name}" segment refers to, or NULL. */
const schema_field_t *schema__param_field(const schema_msg_t *msg,
                                          const char *seg);
void schema__fields_free(schema_field_t *fields, size_t n);
void schema__object_free(schema_object_t *object);
void schema__strings_free(char **list, size_t n);

/* ------------------------------------------------------------------------
 * Loading (schema_load.c, schema_field.c, schema_load_route.c,
 * schema_event.c)
 * ------------------------------------------------------------------------ */

typedef struct schema__loader {
        schema_set_t *set;
        const char *file;  /* the source name, owned by set->files */
        const char *group; /* the file's group, owned by set->groups */
        char *errstr;
        size_t errlen;
} schema__loader_t;

/* Where a field declaration sits, which decides the keys it may have. */
typedef enum schema__field_place {
        SCHEMA__TOP_ROUTED, /* a message's field, the message has a route */
        SCHEMA__TOP,        /* a Kafka-only message's, an event's, a reply's */
        SCHEMA__NESTED,     /* inside an object or an array */
} schema__field_place_t;

/* "base.key" into p (SCHEMA_PATH_SIZE bytes), ending in "..." if cut. */
void schema__path_join(char *p, const char *base, const char *key);
/* "base[i]" into p. */
void schema__path_index(char *p, const char *base, size_t i);

schema_err_t schema__load_fail(schema__loader_t *ld, schema_err_t err,
                               const char *path, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Reject any key of obj not in allowed (NULL-terminated). */
schema_err_t schema__load_check_keys(schema__loader_t *ld, json_t *obj,
                                     const char *path,
                                     const char *const *allowed);
/* An optional boolean def[key] into *out (left as is when absent). */
schema_err_t schema__load_bool(schema__loader_t *ld, json_t *def,
                               const char *path, const char *key, bool *out);
/* def[key] as a new string into *out: required or not, non-empty, and a
 * name (letters, digits, '_') when as_name. */
schema_err_t schema__load_string(schema__loader_t *ld, json_t *def,
                                 const char *path, const char *key,
                                 bool required, bool as_name, char **out);
/* def[key] as a list of distinct non-empty strings (at most
 * SCHEMA_MAX_LIST); absent leaves *out NULL and *n 0. */
schema_err_t schema__load_strings(schema__loader_t *ld, json_t *def,
                                  const char *path, const char *key,
                                  char ***out, size_t *n);

/* A "fields" object (def may be NULL: none) into *fields and *n. */
schema_err_t schema__load_fields(schema__loader_t *ld, json_t *def,
                                 const char *path, schema__field_place_t place,
                                 int depth, schema_field_t **fields, size_t *n);

/* The route of msg (def is its "route"); fields are loaded after. */
schema_err_t schema__load_route(schema__loader_t *ld, json_t *def,
                                const char *path, schema_route_t *route);
/* What the route says about msg's fields, once both are loaded. */
schema_err_t schema__load_bind_route(schema__loader_t *ld, const char *path,
                                     schema_msg_t *msg);
/* Cross-checks needing every file: requires, stream. */
schema_err_t schema__load_link_route(schema__loader_t *ld, json_t *def,
                                     const char *path, schema_msg_t *msg);

/* One event / one fact, appended to the set already (zeroed). */
schema_err_t schema__load_event(schema__loader_t *ld, json_t *def,
                                const char *path, schema_event_t *event);
schema_err_t schema__load_fact(schema__loader_t *ld, json_t *def,
                               const char *path, schema_fact_t *fact);
/* Cross-checks needing every file: the fact's event and query. */
schema_err_t schema__load_link_fact(schema__loader_t *ld, const char *path,
                                    schema_fact_t *fact);
void schema__event_deinit(schema_event_t *event);
void schema__fact_deinit(schema_fact_t *fact);
void schema__stream_free(schema_stream_t *stream);

/* ------------------------------------------------------------------------
 * Validation (schema_validate.c)
 * ------------------------------------------------------------------------ */

/* Check one value against one declaration; path names it in reports. */
void schema__check_value(const schema_field_t *field, const msgpack_object *obj,
                         char *path, size_t path_len, int depth,
                         schema_report_t *report);

/* ------------------------------------------------------------------------
 * Documents (schema_openapi*.c, schema_asyncapi.c)
 * ------------------------------------------------------------------------ */

/* The JSON Schema of one field declaration (nested ones included). */
json_t *schema__json_schema(const schema_field_t *field);
/* The JSON Schema of an object's fields ("type": "object"...); only the
 * fields that pass keep (NULL: all). */
json_t *schema__json_object(const schema_field_t *fields, size_t n,
                            bool additional,
                            bool (*keep)(const schema_field_t *));

/* One routed message as an OpenAPI operation (schema_openapi_op.c). */
json_t *schema__openapi_operation(const schema_msg_t *msg);
/* The response of an error (or 202) status: a $ref to its component, or
 * an inline problem response for a status without one. */
json_t *schema__openapi_response(int status);

#endif
