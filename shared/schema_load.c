/*
 * schema_load.c - reading and checking the schema files (see schema.h).
 *
 * Loading is strict on purpose: the files are written by hand, so every key
 * is checked against the keys its definition may have, every limit against
 * its field type, and every route against the others, and the first problem
 * is reported as "<file>: <json path>: <problem>" so the build points at the
 * line to fix. A loaded set is immutable.
 */
#include "schema_internal.h"

#include <assert.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

/* ------------------------------------------------------------------------
 * Loading
 * ------------------------------------------------------------------------ */

/* "base.key" into p (SCHEMA_PATH_SIZE bytes), ending in "..." if cut. */
static void path_join(char *p, const char *base, const char *key) {
        int n = snprintf(p, SCHEMA_PATH_SIZE, "%s.%s", base, key);

        if (n < 0 || n >= SCHEMA_PATH_SIZE)
                memcpy(p + SCHEMA_PATH_SIZE - 4, "...", 4);
}

typedef struct loader {
        schema_set_t *set;
        const char *file;  /* the source name, owned by set->files */
        const char *group; /* the file's group, owned by set->groups */
        char *errstr;
        size_t errlen;
} loader_t;

static schema_err_t load_fail(loader_t *ld, schema_err_t err, const char *path,
                              const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static schema_err_t load_fail(loader_t *ld, schema_err_t err, const char *path,
                              const char *fmt, ...) {
        va_list ap;
        int n;

        if (!ld->errstr || ld->errlen == 0)
                return err;
        n = snprintf(ld->errstr, ld->errlen, "%s: %s: ", ld->file, path);
        if (n < 0 || (size_t)n >= ld->errlen)
                return err;
        va_start(ap, fmt);
        vsnprintf(ld->errstr + n, ld->errlen - (size_t)n, fmt, ap);
        va_end(ap);
        return err;
}

/* Reject any key of obj not in allowed (NULL-terminated). */
static schema_err_t load_check_keys(loader_t *ld, json_t *obj, const char *path,
                                    const char *const *allowed) {
        const char *key;
        json_t *value;

        json_object_foreach(obj, key, value) {
                bool known = false;
                for (size_t i = 0; allowed[i]; i++)
                        if (strcmp(key, allowed[i]) == 0)
                                known = true;
                if (!known) {
                        char p[SCHEMA_PATH_SIZE];
                        path_join(p, path, key);
                        return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "unknown key");
                }
        }
        return SCHEMA_OK;
}

/* A non-negative integer limit (min_length, max_length). */
static schema_err_t load_length(loader_t *ld, json_t *def, const char *path,
                                const char *key, int64_t *out) {
        json_t *v = json_object_get(def, key);
        char p[SCHEMA_PATH_SIZE];

        *out = -1;
        if (!v)
                return SCHEMA_OK;
        path_join(p, path, key);
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                 "must be an integer >= 0");
        *out = json_integer_value(v);
        return SCHEMA_OK;
}

/* A numeric bound (minimum, maximum); integral for integer fields. */
static schema_err_t load_bound(loader_t *ld, json_t *def, const char *path,
                               const char *key, schema_type_t type, bool *has,
                               double *out) {
        json_t *v = json_object_get(def, key);
        char p[SCHEMA_PATH_SIZE];
        double d;

        *has = false;
        if (!v)
                return SCHEMA_OK;
        path_join(p, path, key);
        if (!json_is_number(v))
                return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                 "must be a number");
        d = json_number_value(v);
        if (type == SCHEMA_INTEGER &&
            (d != floor(d) || fabs(d) > SCHEMA_EXACT_INT))
                return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                 "must be an integer between -2^53 and 2^53");
        *has = true;
        *out = d;
        return SCHEMA_OK;
}

static schema_err_t load_bool(loader_t *ld, json_t *def, const char *path,
                              const char *key, bool *out) {
        json_t *v = json_object_get(def, key);
        char p[SCHEMA_PATH_SIZE];

        if (!v)
                return SCHEMA_OK;
        if (!json_is_boolean(v)) {
                path_join(p, path, key);
                return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                 "must be true or false");
        }
        *out = json_is_true(v);
        return SCHEMA_OK;
}

static schema_err_t load_enum(loader_t *ld, json_t *def, const char *path,
                              schema_field_t *field) {
        json_t *v = json_object_get(def, "enum");
        char p[SCHEMA_PATH_SIZE];
        size_t i;
        json_t *item;

        if (!v)
                return SCHEMA_OK;
        path_join(p, path, "enum");
        if (!json_is_array(v) || json_array_size(v) == 0)
                return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                 "must be a non-empty array of strings");
        field->enum_values = xcalloc(json_array_size(v), sizeof(char *));
        json_array_foreach(v, i, item) {
                if (!json_is_string(item) ||
                    strlen(json_string_value(item)) != json_string_length(item))
                        return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "must be a non-empty array of "
                                         "strings");
                for (size_t k = 0; k < field->n_enum; k++)
                        if (strcmp(field->enum_values[k],
                                   json_string_value(item)) == 0)
                                return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                                 "lists a value twice");
                field->enum_values[field->n_enum++] =
                        xstrdup(json_string_value(item));
        }
        return SCHEMA_OK;
}

static schema_err_t load_field(loader_t *ld, const char *name, json_t *def,
                               const char *path, schema_field_t *field) {
        static const char *const keys[] = {
                "type",       "required",   "secret",  "format",
                "min_length", "max_length", "minimum", "maximum",
                "enum",       "doc",        NULL};
        schema_err_t err;
        json_t *v;
        char p[SCHEMA_PATH_SIZE];
        size_t t;

        field->name = xstrdup(name);
        field->min_length = field->max_length = -1;
        if (!json_is_object(def))
                return load_fail(ld, SCHEMA_BAD_DEFINITION, path,
                                 "must be an object");
        if ((err = load_check_keys(ld, def, path, keys)) != SCHEMA_OK)
                return err;

        v = json_object_get(def, "type");
        path_join(p, path, "type");
        if (!v)
                return load_fail(ld, SCHEMA_BAD_DEFINITION, p, "is required");
        for (t = 0; t < SCHEMA__ARRAY_LEN(schema__type_names); t++)
                if (json_is_string(v) &&
                    strcmp(json_string_value(v), schema__type_names[t]) == 0)
                        break;
        if (t == SCHEMA__ARRAY_LEN(schema__type_names))
                return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                 "must be one of string, integer, number, "
                                 "boolean, object, array");
        field->type = (schema_type_t)t;

        if ((err = load_bool(ld, def, path, "required", &field->required)) ||
            (err = load_bool(ld, def, path, "secret", &field->secret)))
                return err;

        v = json_object_get(def, "doc");
        if (v) {
                if (!json_is_string(v)) {
                        path_join(p, path, "doc");
                        return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "must be a string");
                }
                field->doc = xstrdup(json_string_value(v));
        }

        v = json_object_get(def, "format");
        if (v) {
                size_t f;
                path_join(p, path, "format");
                if (field->type != SCHEMA_STRING)
                        return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "applies only to string fields");
                for (f = 1; f < SCHEMA__ARRAY_LEN(schema__format_names); f++)
                        if (json_is_string(v) &&
                            strcmp(json_string_value(v),
                                   schema__format_names[f]) == 0)
                                break;
                if (f == SCHEMA__ARRAY_LEN(schema__format_names))
                        return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "must be one of email, uuid, "
                                         "date-time");
                field->format = (schema_format_t)f;
        }

        if (json_object_get(def, "enum") && field->type != SCHEMA_STRING) {
                path_join(p, path, "enum");
                return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                 "applies only to string fields");
        }
        if ((err = load_enum(ld, def, path, field)) != SCHEMA_OK)
                return err;

        if (field->type != SCHEMA_STRING && field->type != SCHEMA_ARRAY) {
                const char *bad =
                        json_object_get(def, "min_length")   ? "min_length"
                        : json_object_get(def, "max_length") ? "max_length"
                                                             : NULL;
                if (bad) {
                        path_join(p, path, bad);
                        return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "applies only to string and array "
                                         "fields");
                }
        }
        if ((err = load_length(ld, def, path, "min_length",
                               &field->min_length)) ||
            (err = load_length(ld, def, path, "max_length",
                               &field->max_length)))
                return err;
        if (field->min_length >= 0 && field->max_length >= 0 &&
            field->min_length > field->max_length)
                return load_fail(ld, SCHEMA_BAD_DEFINITION, path,
                                 "min_length is greater than max_length");

        if (field->type != SCHEMA_INTEGER && field->type != SCHEMA_NUMBER) {
                const char *bad = json_object_get(def, "minimum")   ? "minimum"
                                  : json_object_get(def, "maximum") ? "maximum"
                                                                    : NULL;
                if (bad) {
                        path_join(p, path, bad);
                        return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "applies only to integer and number "
                                         "fields");
                }
        }
        if ((err = load_bound(ld, def, path, "minimum", field->type,
                              &field->has_minimum, &field->minimum)) ||
            (err = load_bound(ld, def, path, "maximum", field->type,
                              &field->has_maximum, &field->maximum)))
                return err;
        if (field->has_minimum && field->has_maximum &&
            field->minimum > field->maximum)
                return load_fail(ld, SCHEMA_BAD_DEFINITION, path,
                                 "minimum is greater than maximum");
        return SCHEMA_OK;
}

static schema_err_t load_fields(loader_t *ld, json_t *def, const char *path,
                                schema_msg_t *msg) {
        const char *name;
        json_t *value;
        char p[SCHEMA_PATH_SIZE];
        schema_err_t err;

        if (!def)
                return SCHEMA_OK;
        if (!json_is_object(def))
                return load_fail(ld, SCHEMA_BAD_DEFINITION, path,
                                 "must be an object");
        if (json_object_size(def) > SCHEMA_MAX_FIELDS)
                return load_fail(ld, SCHEMA_BAD_DEFINITION, path,
                                 "declares more than %d fields",
                                 SCHEMA_MAX_FIELDS);
        msg->fields = xcalloc(json_object_size(def), sizeof(schema_field_t));
        json_object_foreach(def, name, value) {
                path_join(p, path, name);
                if (!schema__name_valid(name, strlen(name), SCHEMA_MAX_NAME,
                                        true))
                        return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "field names are letters, digits "
                                         "and '_', at most %d bytes",
                                         SCHEMA_MAX_NAME);
                err = load_field(ld, name, value, p,
                                 &msg->fields[msg->n_fields++]);
                if (err != SCHEMA_OK)
                        return err;
        }
        return SCHEMA_OK;
}

/* Split and check a route path; fills route->segments. */
static schema_err_t load_path(loader_t *ld, const char *path_str, const char *p,
                              schema_route_t *route) {
        size_t len = strlen(path_str);
        size_t start = 1, n_params = 0;

        if (strncmp(path_str, "/api/", 5) != 0 || len == 5)
                return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                 "must start with /api/ and name a resource");
        if (strcmp(path_str, "/api/operations") == 0 ||
            strncmp(path_str, "/api/operations/", 16) == 0)
                return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                 "/api/operations is reserved for the edge");
        route->segments = xcalloc(SCHEMA_MAX_SEGMENTS, sizeof(char *));
        for (size_t i = 1; i <= len; i++) {
                if (i < len && path_str[i] != '/')
                        continue;
                const char *seg = path_str + start;
                size_t slen = i - start;
                start = i + 1;
                if (slen == 0)
                        return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "must not have empty segments or "
                                         "end with '/'");
                if (route->n_segments == SCHEMA_MAX_SEGMENTS)
                        return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "has more than %d segments",
                                         SCHEMA_MAX_SEGMENTS);
                if (seg[0] == '{') {
                        if (slen < 3 || seg[slen - 1] != '}' ||
                            !schema__name_valid(seg + 1, slen - 2,
                                                SCHEMA_MAX_NAME, true))
                                return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                                 "parameter segments are "
                                                 "{name} with a field name");
                        if (++n_params > SCHEMA_MAX_PARAMS)
                                return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                                 "has more than %d "
                                                 "parameters",
                                                 SCHEMA_MAX_PARAMS);
                        for (size_t k = 0; k < route->n_segments; k++)
                                if (strlen(route->segments[k]) == slen &&
                                    memcmp(route->segments[k], seg, slen) == 0)
                                        return load_fail(
                                                ld, SCHEMA_BAD_DEFINITION, p,
                                                "names parameter %.*s twice",
                                                (int)slen, seg);
                } else {
                        for (size_t k = 0; k < slen; k++) {
                                char c = seg[k];
                                if (!((c >= 'a' && c <= 'z') ||
                                      (c >= 'A' && c <= 'Z') ||
                                      schema__is_digit(c) || c == '-' ||
                                      c == '.' || c == '_' || c == '~'))
                                        return load_fail(
                                                ld, SCHEMA_BAD_DEFINITION, p,
                                                "literal segments are "
                                                "letters, digits and -._~");
                        }
                }
                route->segments[route->n_segments++] = xstrndup(seg, slen);
        }
        return SCHEMA_OK;
}

static schema_err_t load_route(loader_t *ld, json_t *def, const char *path,
                               schema_route_t *route) {
        static const char *const keys[] = {
                "method", "path",       "auth",     "mode",         "role",
                "terms",  "rate_limit", "rate_key", "secret_reply", NULL};
        char p[SCHEMA_PATH_SIZE];
        schema_err_t err;
        json_t *v;

        if (!json_is_object(def))
                return load_fail(ld, SCHEMA_BAD_DEFINITION, path,
                                 "must be an object");
        if ((err = load_check_keys(ld, def, path, keys)) != SCHEMA_OK)
                return err;

        v = json_object_get(def, "method");
        path_join(p, path, "method");
        if (!json_is_string(v) ||
            schema__method_index(json_string_value(v), json_string_length(v)) <
                    0)
                return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                 "must be one of GET, POST, PUT, PATCH, "
                                 "DELETE");
        route->method = xstrdup(json_string_value(v));

        v = json_object_get(def, "path");
        path_join(p, path, "path");
        if (!json_is_string(v))
                return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                 "must be a string");
        route->path = xstrdup(json_string_value(v));
        if ((err = load_path(ld, route->path, p, route)) != SCHEMA_OK)
                return err;

        v = json_object_get(def, "auth");
        if (!json_is_boolean(v)) {
                path_join(p, path, "auth");
                return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                 "must be true or false");
        }
        route->auth = json_is_true(v);

        v = json_object_get(def, "mode");
        path_join(p, path, "mode");
        if (json_is_string(v) && strcmp(json_string_value(v), "sync") == 0)
                route->mode = SCHEMA_MODE_SYNC;
        else if (json_is_string(v) &&
                 strcmp(json_string_value(v), "async") == 0)
                route->mode = SCHEMA_MODE_ASYNC;
        else
                return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                 "must be \"sync\" or \"async\"");

        v = json_object_get(def, "role");
        if (v) {
                path_join(p, path, "role");
                if (!json_is_string(v) ||
                    !(route->role = schema_role_parse(json_string_value(v),
                                                      json_string_length(v))))
                        return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "must be one of viewer, member, "
                                         "admin, owner");
                if (!route->auth)
                        return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "a role needs \"auth\": true");
        }
        v = json_object_get(def, "terms");
        if (v) {
                path_join(p, path, "terms");
                if (!json_is_boolean(v))
                        return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "must be true or false");
                route->terms = json_is_true(v);
                if (route->terms && !route->auth)
                        return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "terms needs \"auth\": true");
        }
        v = json_object_get(def, "rate_limit");
        if (v) {
                const char *b = json_string_value(v);
                path_join(p, path, "rate_limit");
                if (!b || !*b || strlen(b) > 32 ||
                    strspn(b, "abcdefghijklmnopqrstuvwxyz_") != strlen(b))
                        return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "must be a bucket name of a-z and _");
                route->rate_limit = xstrdup(b);
        }
        v = json_object_get(def, "secret_reply");
        if (v) {
                path_join(p, path, "secret_reply");
                if (!json_is_boolean(v))
                        return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "must be true or false");
                route->secret_reply = json_is_true(v);
        }
        v = json_object_get(def, "rate_key");
        if (v) {
                path_join(p, path, "rate_key");
                if (!json_is_string(v) || !route->rate_limit)
                        return load_fail(
                                ld, SCHEMA_BAD_DEFINITION, p,
                                "must be a field name, with rate_limit");
                route->rate_key = xstrdup(json_string_value(v));
        }
        return SCHEMA_OK;
}

/* Every {param} names a declared string field, which becomes in_path. */
static schema_err_t load_bind_params(loader_t *ld, const char *path,
                                     schema_msg_t *msg) {
        char p[SCHEMA_PATH_SIZE];

        path_join(p, path, "route.path");
        for (size_t i = 0; i < msg->route.n_segments; i++) {
                const char *seg = msg->route.segments[i];
                schema_field_t *field;
                if (!schema__segment_is_param(seg))
                        continue;
                field = (schema_field_t *)schema__param_field(msg, seg);
                if (!field)
                        return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "parameter %s is not a declared "
                                         "field",
                                         seg);
                if (field->type != SCHEMA_STRING)
                        return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "parameter %s must be declared as a "
                                         "string field",
                                         seg);
                field->in_path = true;
                field->required = true;
        }
        if (msg->route.rate_key) {
                bool found = false;
                for (size_t i = 0; i < msg->n_fields; i++)
                        if (strcmp(msg->fields[i].name, msg->route.rate_key) ==
                            0)
                                found = msg->fields[i].type == SCHEMA_STRING;
                if (!found) {
                        path_join(p, path, "route.rate_key");
                        return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "must name a declared string field");
                }
        }
        return SCHEMA_OK;
}

/* Same number of segments, literals equal, parameters where parameters are. */
static bool route_same_shape(const schema_route_t *a, const schema_route_t *b) {
        if (a->n_segments != b->n_segments)
                return false;
        for (size_t i = 0; i < a->n_segments; i++) {
                bool pa = schema__segment_is_param(a->segments[i]);
                bool pb = schema__segment_is_param(b->segments[i]);
                if (pa != pb ||
                    (!pa && strcmp(a->segments[i], b->segments[i]) != 0))
                        return false;
        }
        return true;
}

/* Check the newest message against all earlier ones. */
static schema_err_t load_check_unique(loader_t *ld, const char *path) {
        schema_set_t *set = ld->set;
        const schema_msg_t *msg = &set->msgs[set->n_msgs - 1];
        char p[SCHEMA_PATH_SIZE];

        for (size_t i = 0; i + 1 < set->n_msgs; i++) {
                const schema_msg_t *old = &set->msgs[i];
                if (strcmp(old->type, msg->type) == 0) {
                        path_join(p, path, "type");
                        return load_fail(ld, SCHEMA_DUPLICATE, p,
                                         "%s is already declared in %s",
                                         msg->type, old->file);
                }
                if (!msg->route.method || !old->route.method ||
                    !route_same_shape(&old->route, &msg->route))
                        continue;
                path_join(p, path, "route");
                if (strcmp(old->route.method, msg->route.method) == 0)
                        return load_fail(ld, SCHEMA_DUPLICATE, p,
                                         "%s %s is already routed to %s in %s",
                                         msg->route.method, msg->route.path,
                                         old->type, old->file);
                /* OpenAPI forbids one path shape under two spellings. */
                if (strcmp(old->route.path, msg->route.path) != 0)
                        return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "path must name its parameters as "
                                         "%s does (%s in %s)",
                                         old->route.path, old->type, old->file);
        }
        return SCHEMA_OK;
}

static schema_err_t load_msg(loader_t *ld, json_t *def, const char *path,
                             schema_msg_t *msg) {
        static const char *const keys[] = {"type",  "version", "summary",
                                           "route", "fields",  "additional",
                                           NULL};
        char p[SCHEMA_PATH_SIZE];
        schema_err_t err;
        json_t *v;
        size_t glen = strlen(ld->group);

        msg->file = ld->file;
        msg->group = xstrdup(ld->group);
        if (!json_is_object(def))
                return load_fail(ld, SCHEMA_BAD_DEFINITION, path,
                                 "must be an object");
        if ((err = load_check_keys(ld, def, path, keys)) != SCHEMA_OK)
                return err;

        v = json_object_get(def, "type");
        path_join(p, path, "type");
        if (!json_is_string(v))
                return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                 "must be a string");
        msg->type = xstrdup(json_string_value(v));
        if (strncmp(msg->type, ld->group, glen) != 0 || msg->type[glen] != '.')
                return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                 "must start with \"%s.\"", ld->group);
        {
                /* After the group: dot-separated names. */
                const char *s = msg->type + glen + 1;
                size_t len = strlen(s), start = 0;
                if (strlen(msg->type) > SCHEMA_MAX_TYPE)
                        return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "must be at most %d bytes",
                                         SCHEMA_MAX_TYPE);
                for (size_t i = 0; i <= len; i++) {
                        if (i < len && s[i] != '.')
                                continue;
                        if (!schema__name_valid(s + start, i - start,
                                                SCHEMA_MAX_TYPE, false))
                                return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                                 "must be \"<group>.<name>\" "
                                                 "in lowercase letters, "
                                                 "digits and '_'");
                        start = i + 1;
                }
        }

        v = json_object_get(def, "version");
        path_join(p, path, "version");
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > 1000000)
                return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                 "must be an integer >= 1");
        msg->version = (int)json_integer_value(v);

        v = json_object_get(def, "summary");
        path_join(p, path, "summary");
        if (!json_is_string(v) || json_string_length(v) == 0)
                return load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                 "must be a non-empty string");
        msg->summary = xstrdup(json_string_value(v));

        if ((err = load_bool(ld, def, path, "additional", &msg->additional)))
                return err;

        v = json_object_get(def, "route");
        if (v) {
                path_join(p, path, "route");
                if ((err = load_route(ld, v, p, &msg->route)) != SCHEMA_OK)
                        return err;
        }

        path_join(p, path, "fields");
        if ((err = load_fields(ld, json_object_get(def, "fields"), p, msg)))
                return err;
        if ((err = load_bind_params(ld, path, msg)) != SCHEMA_OK)
                return err;
        return load_check_unique(ld, path);
}

static void set_add_group(schema_set_t *set, const char *group) {
        for (size_t i = 0; i < set->n_groups; i++)
                if (strcmp(set->groups[i], group) == 0)
                        return;
        set->groups =
                xrealloc(set->groups, (set->n_groups + 1) * sizeof(char *));
        set->groups[set->n_groups++] = xstrdup(group);
}

static schema_err_t load_source(loader_t *ld, const schema_source_t *src) {
        static const char *const keys[] = {"group", "messages", NULL};
        schema_set_t *set = ld->set;
        schema_err_t err = SCHEMA_OK;
        json_error_t jerr;
        json_t *root, *v, *def;
        size_t i;

        root = json_loadb(src->text, src->len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                char p[SCHEMA_PATH_SIZE];
                snprintf(p, sizeof(p), "line %d, column %d", jerr.line,
                         jerr.column);
                return load_fail(ld, SCHEMA_BAD_JSON, p, "%s", jerr.text);
        }
        if (!json_is_object(root)) {
                err = load_fail(ld, SCHEMA_BAD_DEFINITION, "(root)",
                                "must be an object");
                goto out;
        }
        if ((err = load_check_keys(ld, root, "(root)", keys)) != SCHEMA_OK)
                goto out;

        v = json_object_get(root, "group");
        if (!json_is_string(v) ||
            !schema__name_valid(json_string_value(v), json_string_length(v),
                                SCHEMA_MAX_NAME, false)) {
                err = load_fail(ld, SCHEMA_BAD_DEFINITION, "group",
                                "must be a name in lowercase letters, digits "
                                "and '_'");
                goto out;
        }
        set_add_group(set, json_string_value(v));
        for (i = 0; i < set->n_groups; i++)
                if (strcmp(set->groups[i], json_string_value(v)) == 0)
                        ld->group = set->groups[i];

        v = json_object_get(root, "messages");
        if (!json_is_array(v)) {
                err = load_fail(ld, SCHEMA_BAD_DEFINITION, "messages",
                                "must be an array");
                goto out;
        }
        json_array_foreach(v, i, def) {
                char p[SCHEMA_PATH_SIZE];
                snprintf(p, sizeof(p), "messages[%zu]", i);
                /* Append first, zeroed, so destroy frees a half-loaded one. */
                set->msgs = xrealloc(set->msgs,
                                     (set->n_msgs + 1) * sizeof(schema_msg_t));
                memset(&set->msgs[set->n_msgs], 0, sizeof(schema_msg_t));
                set->n_msgs++;
                err = load_msg(ld, def, p, &set->msgs[set->n_msgs - 1]);
                if (err != SCHEMA_OK)
                        goto out;
        }
out:
        json_decref(root);
        return err;
}

schema_err_t schema_set_load(schema_set_t **out, const schema_source_t *sources,
                             size_t n_sources, char *errstr, size_t errlen) {
        schema_set_t *set;
        schema_err_t err = SCHEMA_OK;
        loader_t ld = {.errstr = errstr, .errlen = errlen};

        assert(out);
        *out = NULL;
        if (errstr && errlen)
                errstr[0] = '\0';
        set = xcalloc(1, sizeof(*set));
        set->files = xcalloc(n_sources ? n_sources : 1, sizeof(char *));
        ld.set = set;
        for (size_t i = 0; i < n_sources; i++) {
                set->files[set->n_files++] = xstrdup(
                        sources[i].name ? sources[i].name : "(unnamed)");
                ld.file = set->files[i];
                ld.group = NULL;
                err = load_source(&ld, &sources[i]);
                if (err != SCHEMA_OK)
                        goto fail;
        }
        *out = set;
        return SCHEMA_OK;

fail:
        schema_set_destroy(set);
        return err;
}
