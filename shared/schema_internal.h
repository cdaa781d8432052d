/*
 * schema_internal.h - what the files of the schema module share (not part of
 * the contract: callers use schema.h).
 *
 * The module is split by job: schema.c (the set, its lookups and names),
 * schema_format.c (text formats), schema_load.c (reading and checking the
 * files), schema_route.c (matching requests to routes), schema_validate.c
 * (checking bodies) and schema_openapi.c (the OpenAPI document).
 */
#ifndef OMNIFY_SCHEMA_INTERNAL_H
#define OMNIFY_SCHEMA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "schema.h"

#define SCHEMA_MAX_SEGMENTS 16 /* segments in a route path */
#define SCHEMA_MAX_FIELDS 64   /* fields per message: one bit each */
#define SCHEMA_MAX_NAME 64     /* group, field and parameter names */
#define SCHEMA_MAX_TYPE 128    /* message type names */
#define SCHEMA_MAX_NEST 32     /* nesting inside object and array values */
#define SCHEMA_EXACT_INT 9007199254740992.0 /* 2^53 */
#define SCHEMA_PATH_SIZE 256

#define SCHEMA__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct schema_set {
        schema_msg_t *msgs;
        size_t n_msgs;
        char **groups;
        size_t n_groups;
        char **files; /* copies of the source names, for schema_msg_t.file */
        size_t n_files;
};

/* Names, indexed by their enums. */
extern const char *const schema__methods[5]; /* GET POST PUT PATCH DELETE */
extern const char *const schema__type_names[SCHEMA_ARRAY + 1];
extern const char *const schema__format_names[SCHEMA_FORMAT_DATE_TIME + 1];

/* Text formats (schema_format.c). */
bool schema__utf8_valid(const char *s, size_t len);
bool schema__is_digit(char c);
/* A letter or '_' then letters, digits or '_', at most max bytes. */
bool schema__name_valid(const char *s, size_t len, size_t max, bool upper);
bool schema__email_valid(const char *s, size_t len);
bool schema__uuid_valid(const char *s, size_t len);
bool schema__date_time_valid(const char *s, size_t len);

/* Routes (schema.c). */
int schema__method_index(const char *s, size_t len); /* -1: not a method */
bool schema__segment_is_param(const char *seg);
/* The field a "{name}" segment refers to, or NULL. */
const schema_field_t *schema__param_field(const schema_msg_t *msg,
                                          const char *seg);

#endif
