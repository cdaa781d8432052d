/*
 * schema.c - the loaded set of schemas: names, lookups and destruction (see
 * schema.h). Loading is in schema_load.c, route matching in schema_route.c,
 * validation in schema_validate.c, the OpenAPI document in schema_openapi.c.
 */
#include "schema_internal.h"

#include <stdlib.h>
#include <string.h>

const char *const schema__methods[5] = {"GET", "POST", "PUT", "PATCH",
                                        "DELETE"};

const char *const schema__type_names[SCHEMA_BINARY + 1] = {
        [SCHEMA_STRING] = "string", [SCHEMA_INTEGER] = "integer",
        [SCHEMA_NUMBER] = "number", [SCHEMA_BOOLEAN] = "boolean",
        [SCHEMA_OBJECT] = "object", [SCHEMA_ARRAY] = "array",
        [SCHEMA_BINARY] = "binary",
};

const char *const schema__format_names[SCHEMA_FORMAT_URI + 1] = {
        [SCHEMA_FORMAT_NONE] = NULL,   [SCHEMA_FORMAT_EMAIL] = "email",
        [SCHEMA_FORMAT_UUID] = "uuid", [SCHEMA_FORMAT_DATE_TIME] = "date-time",
        [SCHEMA_FORMAT_DATE] = "date", [SCHEMA_FORMAT_URI] = "uri",
};

const char *const schema__in_names[SCHEMA_IN_HEADER + 1] = {
        [SCHEMA_IN_BODY] = "body",
        [SCHEMA_IN_PATH] = "path",
        [SCHEMA_IN_QUERY] = "query",
        [SCHEMA_IN_HEADER] = "header",
};

static const char *const schema_err_msgs[] = {
#define X(name, msg) [name] = msg,
        SCHEMA_ERRORS(X)
#undef X
};

const char *schema_strerror(schema_err_t err) {
        if ((size_t)err >= SCHEMA__ARRAY_LEN(schema_err_msgs))
                return "unknown schema error";
        return schema_err_msgs[err];
}

int schema__method_index(const char *s, size_t len) {
        for (size_t i = 0; i < SCHEMA__ARRAY_LEN(schema__methods); i++)
                if (strlen(schema__methods[i]) == len &&
                    memcmp(schema__methods[i], s, len) == 0)
                        return (int)i;
        return -1;
}

bool schema__segment_is_param(const char *seg) {
        return seg[0] == '{';
}

/* The field a "{name}" segment refers to, or NULL. */
const schema_field_t *schema__param_field(const schema_msg_t *msg,
                                          const char *seg) {
        return schema_field_find(msg->fields, msg->n_fields,
                                 (slice_t){seg + 1, strlen(seg) - 2});
}

/* ------------------------------------------------------------------------
 * Destruction
 * ------------------------------------------------------------------------ */

void schema__strings_free(char **list, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(list[i]);
        free(list);
}

static void field_deinit(schema_field_t *field) {
        free(field->name);
        free(field->header);
        schema__strings_free(field->enum_values, field->n_enum);
        free(field->doc);
        schema__object_free(field->object);
        if (field->items) {
                field_deinit(field->items);
                free(field->items);
        }
        free(field->default_json);
        free(field->default_mp);
}

void schema__fields_free(schema_field_t *fields, size_t n) {
        for (size_t i = 0; i < n; i++)
                field_deinit(&fields[i]);
        free(fields);
}

void schema__object_free(schema_object_t *object) {
        if (!object)
                return;
        schema__fields_free(object->fields, object->n_fields);
        free(object);
}

void schema__stream_free(schema_stream_t *stream) {
        if (!stream)
                return;
        free(stream->topic);
        schema__strings_free(stream->match_event, stream->n_match);
        schema__strings_free(stream->match_field, stream->n_match);
        schema__strings_free(stream->types, stream->n_types);
        schema__strings_free(stream->until, stream->n_until);
        free(stream->history);
        free(stream);
}

static void route_deinit(schema_route_t *route) {
        free(route->method);
        free(route->path);
        free(route->rate_limit);
        free(route->rate_key);
        free(route->key);
        free(route->raw_body);
        schema__strings_free(route->segments, route->n_segments);
        schema__strings_free(route->produces, route->n_produces);
        free(route->requires);
        schema__stream_free(route->stream);
}

static void msg_deinit(schema_msg_t *msg) {
        free(msg->type);
        free(msg->group);
        free(msg->summary);
        route_deinit(&msg->route);
        schema__fields_free(msg->fields, msg->n_fields);
        schema__object_free(msg->reply);
}

void schema_set_destroy(schema_set_t *set) {
        if (!set)
                return;
        for (size_t i = 0; i < set->n_msgs; i++)
                msg_deinit(&set->msgs[i]);
        free(set->msgs);
        for (size_t i = 0; i < set->n_events; i++)
                schema__event_deinit(&set->events[i]);
        free(set->events);
        for (size_t i = 0; i < set->n_facts; i++)
                schema__fact_deinit(&set->facts[i]);
        free(set->facts);
        schema__strings_free(set->groups, set->n_groups);
        schema__strings_free(set->files, set->n_files);
        free(set);
}

/* ------------------------------------------------------------------------
 * Lookup
 * ------------------------------------------------------------------------ */

size_t schema_set_count(const schema_set_t *set) {
        return set ? set->n_msgs : 0;
}

const schema_msg_t *schema_set_at(const schema_set_t *set, size_t i) {
        if (!set || i >= set->n_msgs)
                return NULL;
        return &set->msgs[i];
}

const schema_msg_t *schema_find(const schema_set_t *set, slice_t type) {
        if (!set || !type.ptr)
                return NULL;
        for (size_t i = 0; i < set->n_msgs; i++)
                if (slice_eq(type, set->msgs[i].type))
                        return &set->msgs[i];
        return NULL;
}

size_t schema_event_count(const schema_set_t *set) {
        return set ? set->n_events : 0;
}

const schema_event_t *schema_event_at(const schema_set_t *set, size_t i) {
        if (!set || i >= set->n_events)
                return NULL;
        return &set->events[i];
}

const schema_event_t *schema_find_event(const schema_set_t *set, slice_t type) {
        if (!set || !type.ptr)
                return NULL;
        for (size_t i = 0; i < set->n_events; i++)
                if (slice_eq(type, set->events[i].type))
                        return &set->events[i];
        return NULL;
}

size_t schema_fact_count(const schema_set_t *set) {
        return set ? set->n_facts : 0;
}

const schema_fact_t *schema_fact_at(const schema_set_t *set, size_t i) {
        if (!set || i >= set->n_facts)
                return NULL;
        return &set->facts[i];
}

const schema_fact_t *schema_find_fact(const schema_set_t *set, slice_t name) {
        if (!set || !name.ptr)
                return NULL;
        for (size_t i = 0; i < set->n_facts; i++)
                if (slice_eq(name, set->facts[i].name))
                        return &set->facts[i];
        return NULL;
}

const schema_field_t *schema_field_find(const schema_field_t *fields,
                                        size_t n_fields, slice_t name) {
        if (!name.ptr)
                return NULL;
        for (size_t i = 0; i < n_fields; i++)
                if (slice_eq(name, fields[i].name))
                        return &fields[i];
        return NULL;
}

size_t schema_group_count(const schema_set_t *set) {
        return set ? set->n_groups : 0;
}

const char *schema_group_at(const schema_set_t *set, size_t i) {
        if (!set || i >= set->n_groups)
                return NULL;
        return set->groups[i];
}

bool schema_field_is_secret(const schema_msg_t *msg, const char *name) {
        const schema_field_t *f;

        if (!msg || !name)
                return false;
        f = schema_field_find(msg->fields, msg->n_fields, slice_of(name));
        return f && f->secret;
}

schema_role_t schema_role_parse(const char *name, size_t len) {
        static const char *const names[] = {"", "viewer", "member", "admin",
                                            "owner"};
        for (size_t i = 1; i < sizeof(names) / sizeof(names[0]); i++)
                if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
                        return (schema_role_t)i;
        return SCHEMA_ROLE_NONE;
}

const char *schema_role_name(schema_role_t role) {
        static const char *const names[] = {"none", "viewer", "member", "admin",
                                            "owner"};
        return (unsigned)role < 5 ? names[role] : "none";
}
