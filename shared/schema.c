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

const char *const schema__type_names[SCHEMA_ARRAY + 1] = {
        [SCHEMA_STRING] = "string", [SCHEMA_INTEGER] = "integer",
        [SCHEMA_NUMBER] = "number", [SCHEMA_BOOLEAN] = "boolean",
        [SCHEMA_OBJECT] = "object", [SCHEMA_ARRAY] = "array",
};

const char *const schema__format_names[SCHEMA_FORMAT_DATE_TIME + 1] = {
        [SCHEMA_FORMAT_NONE] = NULL,
        [SCHEMA_FORMAT_EMAIL] = "email",
        [SCHEMA_FORMAT_UUID] = "uuid",
        [SCHEMA_FORMAT_DATE_TIME] = "date-time",
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
        size_t len = strlen(seg) - 2;

        for (size_t i = 0; i < msg->n_fields; i++)
                if (strlen(msg->fields[i].name) == len &&
                    memcmp(msg->fields[i].name, seg + 1, len) == 0)
                        return &msg->fields[i];
        return NULL;
}

/* ------------------------------------------------------------------------
 * Destruction
 * ------------------------------------------------------------------------ */

static void field_deinit(schema_field_t *field) {
        free(field->name);
        for (size_t i = 0; i < field->n_enum; i++)
                free(field->enum_values[i]);
        free(field->enum_values);
        free(field->doc);
}

static void msg_deinit(schema_msg_t *msg) {
        free(msg->type);
        free(msg->group);
        free(msg->summary);
        free(msg->route.method);
        free(msg->route.path);
        free(msg->route.rate_limit);
        free(msg->route.rate_key);
        for (size_t i = 0; i < msg->route.n_segments; i++)
                free(msg->route.segments[i]);
        free(msg->route.segments);
        for (size_t i = 0; i < msg->n_fields; i++)
                field_deinit(&msg->fields[i]);
        free(msg->fields);
}

void schema_set_destroy(schema_set_t *set) {
        if (!set)
                return;
        for (size_t i = 0; i < set->n_msgs; i++)
                msg_deinit(&set->msgs[i]);
        free(set->msgs);
        for (size_t i = 0; i < set->n_groups; i++)
                free(set->groups[i]);
        free(set->groups);
        for (size_t i = 0; i < set->n_files; i++)
                free(set->files[i]);
        free(set->files);
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

size_t schema_group_count(const schema_set_t *set) {
        return set ? set->n_groups : 0;
}

const char *schema_group_at(const schema_set_t *set, size_t i) {
        if (!set || i >= set->n_groups)
                return NULL;
        return set->groups[i];
}

bool schema_field_is_secret(const schema_msg_t *msg, const char *name) {
        if (!msg || !name)
                return false;
        for (size_t i = 0; i < msg->n_fields; i++)
                if (strcmp(msg->fields[i].name, name) == 0)
                        return msg->fields[i].secret;
        return false;
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
