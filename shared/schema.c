/*
 * schema.c - loading, checking and using the message schemas (see schema.h).
 *
 * Loading is strict on purpose: the files are written by hand, so every key
 * is checked against the keys its definition may have, every limit against
 * its field type, and every route against the others, and the first problem
 * is reported as "<file>: <json path>: <problem>" so the build points at the
 * line to fix. A loaded set is immutable.
 *
 * Route matching runs once per HTTP request and allocates nothing: the path
 * is split into slices on the stack and compared with each route's segments.
 * Validation runs on every body at the edge and again in the consumers; its
 * reasons are fixed sentences that never quote the value, because values may
 * be passwords or tokens.
 */
#include "schema.h"

#include <assert.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

#define SCHEMA_MAX_SEGMENTS 16 /* segments in a route path */
#define SCHEMA_MAX_FIELDS 64   /* fields per message: one bit each */
#define SCHEMA_MAX_NAME 64     /* group, field and parameter names */
#define SCHEMA_MAX_TYPE 128    /* message type names */
#define SCHEMA_MAX_NEST 32     /* nesting inside object and array values */
#define SCHEMA_EXACT_INT 9007199254740992.0 /* 2^53 */
#define SCHEMA_PATH_SIZE 256

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct schema_set {
        schema_msg_t *msgs;
        size_t n_msgs;
        char **groups;
        size_t n_groups;
        char **files; /* copies of the source names, for schema_msg_t.file */
        size_t n_files;
};

static const char *const schema_methods[] = {"GET", "POST", "PUT", "PATCH",
                                             "DELETE"};

static const char *const schema_type_names[] = {
        [SCHEMA_STRING] = "string", [SCHEMA_INTEGER] = "integer",
        [SCHEMA_NUMBER] = "number", [SCHEMA_BOOLEAN] = "boolean",
        [SCHEMA_OBJECT] = "object", [SCHEMA_ARRAY] = "array",
};

static const char *const schema_format_names[] = {
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
        if ((size_t)err >= ARRAY_LEN(schema_err_msgs))
                return "unknown schema error";
        return schema_err_msgs[err];
}

/* ------------------------------------------------------------------------
 * Small checks shared by loading and validation
 * ------------------------------------------------------------------------ */

/* True when s[0..len) is well-formed UTF-8: no overlong forms, no surrogates,
 * nothing above U+10FFFF. */
static bool utf8_valid(const char *s, size_t len) {
        const unsigned char *p = (const unsigned char *)s;
        size_t i = 0;

        while (i < len) {
                unsigned char c = p[i];
                size_t need;
                unsigned lo = 0x80, hi = 0xBF;

                if (c < 0x80) {
                        i++;
                        continue;
                }
                if (c >= 0xC2 && c <= 0xDF) {
                        need = 1;
                } else if (c >= 0xE0 && c <= 0xEF) {
                        need = 2;
                        if (c == 0xE0)
                                lo = 0xA0;
                        else if (c == 0xED)
                                hi = 0x9F;
                } else if (c >= 0xF0 && c <= 0xF4) {
                        need = 3;
                        if (c == 0xF0)
                                lo = 0x90;
                        else if (c == 0xF4)
                                hi = 0x8F;
                } else {
                        return false;
                }
                if (len - i - 1 < need)
                        return false;
                if (p[i + 1] < lo || p[i + 1] > hi)
                        return false;
                for (size_t k = 2; k <= need; k++)
                        if ((p[i + k] & 0xC0) != 0x80)
                                return false;
                i += need + 1;
        }
        return true;
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

static bool is_hex(char c) {
        return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A name: a letter or '_' then letters, digits or '_', at most max bytes. */
static bool name_valid(const char *s, size_t len, size_t max, bool upper) {
        if (len == 0 || len > max)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                bool ok = (c >= 'a' && c <= 'z') || c == '_' ||
                          (upper && c >= 'A' && c <= 'Z') ||
                          (i > 0 && is_digit(c));
                if (!ok)
                        return false;
        }
        return true;
}

/*
 * Pragmatic email check: exactly one '@', a non-empty local part, a domain
 * with a dot that neither starts nor ends it nor doubles, and no spaces or
 * control characters anywhere. Deliverability is the mailer's business.
 */
static bool email_valid(const char *s, size_t len) {
        size_t at = len;

        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c <= 0x20 || c == 0x7F)
                        return false;
                if (c == '@') {
                        if (at != len)
                                return false;
                        at = i;
                }
        }
        if (at == len || at == 0 || at + 1 == len)
                return false;

        const char *dom = s + at + 1;
        size_t dlen = len - at - 1;
        bool dot = false;
        if (dom[0] == '.' || dom[dlen - 1] == '.')
                return false;
        for (size_t i = 0; i < dlen; i++) {
                if (dom[i] == '.') {
                        if (dom[i + 1] == '.')
                                return false;
                        dot = true;
                }
        }
        return dot;
}

/* Canonical 8-4-4-4-12 hex UUID, either case. */
static bool uuid_valid(const char *s, size_t len) {
        if (len != 36)
                return false;
        for (size_t i = 0; i < 36; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return false;
                } else if (!is_hex(s[i])) {
                        return false;
                }
        }
        return true;
}

/* Read n digits at s[*i] into *out. */
static bool digits(const char *s, size_t len, size_t *i, int n, int *out) {
        int v = 0;

        if (len - *i < (size_t)n)
                return false;
        for (int k = 0; k < n; k++) {
                char c = s[*i + (size_t)k];
                if (!is_digit(c))
                        return false;
                v = v * 10 + (c - '0');
        }
        *i += (size_t)n;
        *out = v;
        return true;
}

static bool expect(const char *s, size_t len, size_t *i, const char *set) {
        if (*i >= len || !strchr(set, s[*i]))
                return false;
        (*i)++;
        return true;
}

/* RFC 3339 date-time: 2024-02-29T13:45:00.123Z or with a +hh:mm offset. */
static bool date_time_valid(const char *s, size_t len) {
        static const int mdays[] = {31, 29, 31, 30, 31, 30,
                                    31, 31, 30, 31, 30, 31};
        size_t i = 0;
        int y, mo, d, h, mi, sec, oh, om;

        if (!digits(s, len, &i, 4, &y) || !expect(s, len, &i, "-") ||
            !digits(s, len, &i, 2, &mo) || !expect(s, len, &i, "-") ||
            !digits(s, len, &i, 2, &d) || !expect(s, len, &i, "Tt") ||
            !digits(s, len, &i, 2, &h) || !expect(s, len, &i, ":") ||
            !digits(s, len, &i, 2, &mi) || !expect(s, len, &i, ":") ||
            !digits(s, len, &i, 2, &sec))
                return false;
        if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 ||
            mi > 59 || sec > 60)
                return false;
        if (mo == 2 && d == 29 &&
            !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
                return false;
        if (i < len && s[i] == '.') {
                size_t start = ++i;
                while (i < len && is_digit(s[i]))
                        i++;
                if (i == start)
                        return false;
        }
        if (i < len && (s[i] == 'Z' || s[i] == 'z'))
                return i + 1 == len;
        if (!expect(s, len, &i, "+-") || !digits(s, len, &i, 2, &oh) ||
            !expect(s, len, &i, ":") || !digits(s, len, &i, 2, &om))
                return false;
        return i == len && oh <= 23 && om <= 59;
}

static int method_index(const char *s, size_t len) {
        for (size_t i = 0; i < ARRAY_LEN(schema_methods); i++)
                if (strlen(schema_methods[i]) == len &&
                    memcmp(schema_methods[i], s, len) == 0)
                        return (int)i;
        return -1;
}

static bool segment_is_param(const char *seg) {
        return seg[0] == '{';
}

/* The field a "{name}" segment refers to, or NULL. */
static const schema_field_t *param_field(const schema_msg_t *msg,
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
        for (t = 0; t < ARRAY_LEN(schema_type_names); t++)
                if (json_is_string(v) &&
                    strcmp(json_string_value(v), schema_type_names[t]) == 0)
                        break;
        if (t == ARRAY_LEN(schema_type_names))
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
                for (f = 1; f < ARRAY_LEN(schema_format_names); f++)
                        if (json_is_string(v) &&
                            strcmp(json_string_value(v),
                                   schema_format_names[f]) == 0)
                                break;
                if (f == ARRAY_LEN(schema_format_names))
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
                if (!name_valid(name, strlen(name), SCHEMA_MAX_NAME, true))
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
                            !name_valid(seg + 1, slen - 2, SCHEMA_MAX_NAME,
                                        true))
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
                                      (c >= 'A' && c <= 'Z') || is_digit(c) ||
                                      c == '-' || c == '.' || c == '_' ||
                                      c == '~'))
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
            method_index(json_string_value(v), json_string_length(v)) < 0)
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

/* Every {param} names a declared string field, which becomes in_path. */
static schema_err_t load_bind_params(loader_t *ld, const char *path,
                                     schema_msg_t *msg) {
        char p[SCHEMA_PATH_SIZE];

        path_join(p, path, "route.path");
        for (size_t i = 0; i < msg->route.n_segments; i++) {
                const char *seg = msg->route.segments[i];
                schema_field_t *field;
                if (!segment_is_param(seg))
                        continue;
                field = (schema_field_t *)param_field(msg, seg);
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
                bool pa = segment_is_param(a->segments[i]);
                bool pb = segment_is_param(b->segments[i]);
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
                        if (!name_valid(s + start, i - start, SCHEMA_MAX_TYPE,
                                        false))
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
            !name_valid(json_string_value(v), json_string_length(v),
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

/* ------------------------------------------------------------------------
 * Route matching (per request: no allocation)
 * ------------------------------------------------------------------------ */

/* Split "/a/b/c" into slices; false on an empty segment or too many. */
static bool path_split(slice_t path, slice_t *segs, size_t *n) {
        size_t start = 1;

        *n = 0;
        if (path.len < 2 || !path.ptr || path.ptr[0] != '/')
                return false;
        for (size_t i = 1; i <= path.len; i++) {
                if (i < path.len && path.ptr[i] != '/')
                        continue;
                if (i == start || *n == SCHEMA_MAX_SEGMENTS)
                        return false;
                segs[(*n)++] = (slice_t){path.ptr + start, i - start};
                start = i + 1;
        }
        return true;
}

/*
 * Does route match the segments? *score has bit (n-1-i) set for each literal
 * segment i, so comparing scores prefers a literal at the first position
 * where two matching routes differ.
 */
static bool route_matches(const schema_route_t *route, const slice_t *segs,
                          size_t n, uint32_t *score) {
        uint32_t s = 0;

        if (route->n_segments != n)
                return false;
        for (size_t i = 0; i < n; i++) {
                const char *seg = route->segments[i];
                if (segment_is_param(seg))
                        continue;
                if (!slice_eq(segs[i], seg))
                        return false;
                s |= 1u << (n - 1 - i);
        }
        *score = s;
        return true;
}

schema_match_t schema_route_match(const schema_set_t *set, slice_t method,
                                  slice_t path, const schema_msg_t **msg,
                                  schema_params_t *params, char *allow,
                                  size_t allow_size) {
        slice_t segs[SCHEMA_MAX_SEGMENTS];
        size_t n;
        const schema_msg_t *best = NULL;
        uint32_t best_score = 0;
        unsigned allowed = 0;

        if (allow && allow_size)
                allow[0] = '\0';
        if (msg)
                *msg = NULL;
        if (params)
                params->n = 0;
        if (!set || !path_split(path, segs, &n))
                return SCHEMA_MATCH_NOT_FOUND;

        for (size_t i = 0; i < set->n_msgs; i++) {
                const schema_msg_t *m = &set->msgs[i];
                uint32_t score;
                if (!m->route.method ||
                    !route_matches(&m->route, segs, n, &score))
                        continue;
                if (!slice_eq(method, m->route.method)) {
                        allowed |= 1u << method_index(m->route.method,
                                                      strlen(m->route.method));
                        continue;
                }
                if (!best || score > best_score) {
                        best = m;
                        best_score = score;
                }
        }

        if (best) {
                if (msg)
                        *msg = best;
                if (params) {
                        for (size_t i = 0; i < n; i++) {
                                const char *seg = best->route.segments[i];
                                if (!segment_is_param(seg))
                                        continue;
                                assert(params->n < SCHEMA_MAX_PARAMS);
                                params->names[params->n] =
                                        param_field(best, seg)->name;
                                params->values[params->n] = segs[i];
                                params->n++;
                        }
                }
                return SCHEMA_MATCH_FOUND;
        }
        if (!allowed)
                return SCHEMA_MATCH_NOT_FOUND;
        if (allow && allow_size) {
                size_t used = 0;
                for (size_t i = 0; i < ARRAY_LEN(schema_methods); i++) {
                        int w;
                        if (!(allowed & (1u << i)))
                                continue;
                        w = snprintf(allow + used, allow_size - used, "%s%s",
                                     used ? ", " : "", schema_methods[i]);
                        if (w < 0 || (size_t)w >= allow_size - used)
                                break;
                        used += (size_t)w;
                }
                allow[used] = '\0';
        }
        return SCHEMA_MATCH_METHOD_NOT_ALLOWED;
}

/* ------------------------------------------------------------------------
 * Validation
 * ------------------------------------------------------------------------ */

static void report_add(schema_report_t *report, const char *field,
                       size_t field_len, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static void report_add(schema_report_t *report, const char *field,
                       size_t field_len, const char *fmt, ...) {
        schema_violation_t *v;
        va_list ap;

        if (report->n == SCHEMA_MAX_VIOLATIONS) {
                report->truncated = true;
                return;
        }
        v = &report->v[report->n++];
        /* Cut a long name at a character boundary, never mid-sequence. */
        if (field_len >= sizeof(v->field)) {
                field_len = sizeof(v->field) - 1;
                while (field_len > 0 &&
                       ((unsigned char)field[field_len] & 0xC0) == 0x80)
                        field_len--;
        }
        if (field_len)
                memcpy(v->field, field, field_len);
        v->field[field_len] = '\0';
        va_start(ap, fmt);
        vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
        va_end(ap);
}

static void report_field(schema_report_t *report, const schema_field_t *field,
                         const char *reason) {
        report_add(report, field->name, strlen(field->name), "%s", reason);
}

static const char *type_reason(schema_type_t type) {
        switch (type) {
        case SCHEMA_STRING:
                return "must be a string";
        case SCHEMA_INTEGER:
                return "must be an integer";
        case SCHEMA_NUMBER:
                return "must be a number";
        case SCHEMA_BOOLEAN:
                return "must be true or false";
        case SCHEMA_OBJECT:
                return "must be an object";
        case SCHEMA_ARRAY:
                return "must be an array";
        }
        return "has the wrong type";
}

typedef enum nest_result {
        NEST_OK,
        NEST_BAD_UTF8,
        NEST_TOO_DEEP,
} nest_result_t;

/* Strings (and keys) inside an object or array value: UTF-8, bounded depth. */
static nest_result_t nested_check(const msgpack_object *obj, int depth) {
        nest_result_t r;

        if (depth > SCHEMA_MAX_NEST)
                return NEST_TOO_DEEP;
        switch (obj->type) {
        case MSGPACK_OBJECT_STR:
                return utf8_valid(obj->via.str.ptr, obj->via.str.size)
                               ? NEST_OK
                               : NEST_BAD_UTF8;
        case MSGPACK_OBJECT_ARRAY:
                for (uint32_t i = 0; i < obj->via.array.size; i++)
                        if ((r = nested_check(&obj->via.array.ptr[i],
                                              depth + 1)) != NEST_OK)
                                return r;
                return NEST_OK;
        case MSGPACK_OBJECT_MAP:
                for (uint32_t i = 0; i < obj->via.map.size; i++) {
                        const msgpack_object_kv *kv = &obj->via.map.ptr[i];
                        if ((r = nested_check(&kv->key, depth + 1)) !=
                                    NEST_OK ||
                            (r = nested_check(&kv->val, depth + 1)) != NEST_OK)
                                return r;
                }
                return NEST_OK;
        default:
                return NEST_OK;
        }
}

static void check_nested(const schema_field_t *field, const msgpack_object *obj,
                         schema_report_t *report) {
        switch (nested_check(obj, 1)) {
        case NEST_OK:
                break;
        case NEST_BAD_UTF8:
                report_field(report, field,
                             "contains text that is not valid UTF-8");
                break;
        case NEST_TOO_DEEP:
                report_field(report, field, "nests too deeply");
                break;
        }
}

/* Compare an integer object with an exactly representable integral bound. */
static int int_cmp(const msgpack_object *obj, double bound) {
        int64_t b = (int64_t)bound;

        if (obj->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
                if (b < 0)
                        return 1;
                if (obj->via.u64 == (uint64_t)b)
                        return 0;
                return obj->via.u64 < (uint64_t)b ? -1 : 1;
        }
        if (obj->via.i64 == b)
                return 0;
        return obj->via.i64 < b ? -1 : 1;
}

static void check_string(const schema_field_t *field, const msgpack_object *obj,
                         schema_report_t *report) {
        const char *s = obj->via.str.ptr;
        size_t len = obj->via.str.size;

        if (!utf8_valid(s, len)) {
                report_field(report, field, "must be valid UTF-8 text");
                return;
        }
        if (field->min_length >= 0 && len < (uint64_t)field->min_length) {
                report_add(report, field->name, strlen(field->name),
                           "must be at least %lld bytes long",
                           (long long)field->min_length);
                return;
        }
        if (field->max_length >= 0 && len > (uint64_t)field->max_length) {
                report_add(report, field->name, strlen(field->name),
                           "must be at most %lld bytes long",
                           (long long)field->max_length);
                return;
        }
        if (field->n_enum) {
                char list[128];
                size_t used = 0;
                bool found = false;
                for (size_t i = 0; i < field->n_enum; i++) {
                        int w;
                        if (strlen(field->enum_values[i]) == len &&
                            memcmp(field->enum_values[i], s, len) == 0)
                                found = true;
                        if (used >= sizeof(list))
                                continue;
                        w = snprintf(list + used, sizeof(list) - used, "%s%s",
                                     i ? ", " : "", field->enum_values[i]);
                        used = w < 0 ? sizeof(list) : used + (size_t)w;
                }
                if (!found) {
                        report_add(report, field->name, strlen(field->name),
                                   "must be one of: %s", list);
                        return;
                }
        }
        switch (field->format) {
        case SCHEMA_FORMAT_NONE:
                break;
        case SCHEMA_FORMAT_EMAIL:
                if (!email_valid(s, len))
                        report_field(report, field, "must be an email address");
                break;
        case SCHEMA_FORMAT_UUID:
                if (!uuid_valid(s, len))
                        report_field(report, field, "must be a UUID");
                break;
        case SCHEMA_FORMAT_DATE_TIME:
                if (!date_time_valid(s, len))
                        report_field(report, field,
                                     "must be an RFC 3339 date-time");
                break;
        }
}

static void check_value(const schema_field_t *field, const msgpack_object *obj,
                        schema_report_t *report) {
        msgpack_object_type t = obj->type;
        bool is_int = t == MSGPACK_OBJECT_POSITIVE_INTEGER ||
                      t == MSGPACK_OBJECT_NEGATIVE_INTEGER;
        bool is_float =
                t == MSGPACK_OBJECT_FLOAT32 || t == MSGPACK_OBJECT_FLOAT64;
        const char *name = field->name;

        switch (field->type) {
        case SCHEMA_STRING:
                if (t != MSGPACK_OBJECT_STR)
                        break;
                check_string(field, obj, report);
                return;
        case SCHEMA_INTEGER:
                if (!is_int)
                        break;
                if (field->has_minimum && int_cmp(obj, field->minimum) < 0)
                        report_add(report, name, strlen(name),
                                   "must be at least %.0f", field->minimum);
                else if (field->has_maximum && int_cmp(obj, field->maximum) > 0)
                        report_add(report, name, strlen(name),
                                   "must be at most %.0f", field->maximum);
                return;
        case SCHEMA_NUMBER: {
                double d;
                if (!is_int && !is_float)
                        break;
                d = is_float ? obj->via.f64
                    : t == MSGPACK_OBJECT_POSITIVE_INTEGER
                            ? (double)obj->via.u64
                            : (double)obj->via.i64;
                if (!isfinite(d))
                        report_field(report, field, "must be a finite number");
                else if (field->has_minimum && d < field->minimum)
                        report_add(report, name, strlen(name),
                                   "must be at least %.15g", field->minimum);
                else if (field->has_maximum && d > field->maximum)
                        report_add(report, name, strlen(name),
                                   "must be at most %.15g", field->maximum);
                return;
        }
        case SCHEMA_BOOLEAN:
                if (t != MSGPACK_OBJECT_BOOLEAN)
                        break;
                return;
        case SCHEMA_OBJECT:
                if (t != MSGPACK_OBJECT_MAP)
                        break;
                check_nested(field, obj, report);
                return;
        case SCHEMA_ARRAY: {
                uint32_t n;
                if (t != MSGPACK_OBJECT_ARRAY)
                        break;
                n = obj->via.array.size;
                if (field->min_length >= 0 && n < field->min_length)
                        report_add(report, name, strlen(name),
                                   "must have at least %lld items",
                                   (long long)field->min_length);
                else if (field->max_length >= 0 && n > field->max_length)
                        report_add(report, name, strlen(name),
                                   "must have at most %lld items",
                                   (long long)field->max_length);
                else
                        check_nested(field, obj, report);
                return;
        }
        }
        report_field(report, field, type_reason(field->type));
}

bool schema_validate(const schema_msg_t *msg, const msgpack_object *body,
                     schema_report_t *report) {
        schema_report_t scratch;
        uint64_t seen = 0;

        assert(msg);
        /* Without a caller's report, collect into a scratch one. */
        if (!report)
                report = &scratch;
        report->n = 0;
        report->truncated = false;
        if (!body || body->type != MSGPACK_OBJECT_MAP) {
                report_add(report, "", 0, "the body must be a JSON object");
                return false;
        }

        for (uint32_t i = 0; i < body->via.map.size; i++) {
                const msgpack_object *key = &body->via.map.ptr[i].key;
                const msgpack_object *val = &body->via.map.ptr[i].val;
                const schema_field_t *field = NULL;
                size_t k;

                if (key->type != MSGPACK_OBJECT_STR) {
                        report_add(report, "", 0,
                                   "field names must be strings");
                        continue;
                }
                if (!utf8_valid(key->via.str.ptr, key->via.str.size)) {
                        report_add(report, "", 0,
                                   "a field name is not valid UTF-8 text");
                        continue;
                }
                for (k = 0; k < msg->n_fields; k++) {
                        const char *name = msg->fields[k].name;
                        if (strlen(name) == key->via.str.size &&
                            memcmp(name, key->via.str.ptr, key->via.str.size) ==
                                    0) {
                                field = &msg->fields[k];
                                break;
                        }
                }
                if (!field) {
                        if (!msg->additional)
                                report_add(report, key->via.str.ptr,
                                           key->via.str.size,
                                           "is not a field of %s", msg->type);
                        else if (nested_check(val, 1) != NEST_OK)
                                report_add(report, key->via.str.ptr,
                                           key->via.str.size,
                                           "must be valid UTF-8 text and "
                                           "not nest too deeply");
                        continue;
                }
                if (seen & (UINT64_C(1) << k)) {
                        report_field(report, field, "is given more than once");
                        continue;
                }
                seen |= UINT64_C(1) << k;
                check_value(field, val, report);
        }

        for (size_t k = 0; k < msg->n_fields; k++)
                if (msg->fields[k].required && !(seen & (UINT64_C(1) << k)))
                        report_field(report, &msg->fields[k], "is required");

        return report->n == 0;
}

/* ------------------------------------------------------------------------
 * OpenAPI
 * ------------------------------------------------------------------------ */

static json_t *openapi_field_schema(const schema_field_t *field) {
        json_t *s = json_object();

        json_object_set_new(s, "type",
                            json_string(schema_type_names[field->type]));
        if (field->format != SCHEMA_FORMAT_NONE)
                json_object_set_new(
                        s, "format",
                        json_string(schema_format_names[field->format]));
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

        for (size_t i = 0; i < ARRAY_LEN(openapi_errors); i++)
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
                if (!segment_is_param(route->segments[i]))
                        continue;
                f = param_field(msg, route->segments[i]);
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
        for (size_t i = 0; i < ARRAY_LEN(openapi_errors); i++)
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
