/*
 * schema_field.c - reading field declarations (see schema.h).
 *
 * A field declaration may nest (an object's "fields", an array's "items") up
 * to SCHEMA_MAX_DEPTH levels; every limit is checked against the field's
 * type, "in" and "name" against the place of the declaration, and a
 * "default" is packed as msgpack and checked against the declaration itself
 * with the validator, so a default that the field would refuse fails the
 * build rather than every request that relies on it.
 */
#include "schema_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "codec.h"

/* Headers the edge consumes itself: no field may claim them. */
static const char *const field_reserved_headers[] = {
        "Authorization", "Content-Length", "Transfer-Encoding",
        "Host",          "Cookie",         NULL};

/* A non-negative integer limit (min_length, max_length). */
static schema_err_t field_length(schema__loader_t *ld, json_t *def,
                                 const char *path, const char *key,
                                 int64_t *out) {
        json_t *v = json_object_get(def, key);
        char p[SCHEMA_PATH_SIZE];

        *out = -1;
        if (!v)
                return SCHEMA_OK;
        schema__path_join(p, path, key);
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "must be an integer >= 0");
        *out = json_integer_value(v);
        return SCHEMA_OK;
}

/* A numeric bound (minimum, maximum); integral for integer fields. */
static schema_err_t field_bound(schema__loader_t *ld, json_t *def,
                                const char *path, const char *key,
                                schema_type_t type, bool *has, double *out) {
        json_t *v = json_object_get(def, key);
        char p[SCHEMA_PATH_SIZE];
        double d;

        *has = false;
        if (!v)
                return SCHEMA_OK;
        schema__path_join(p, path, key);
        if (!json_is_number(v))
                return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "must be a number");
        d = json_number_value(v);
        if (type == SCHEMA_INTEGER &&
            (d != floor(d) || fabs(d) > SCHEMA_EXACT_INT))
                return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "must be an integer between -2^53 "
                                         "and 2^53");
        *has = true;
        *out = d;
        return SCHEMA_OK;
}

static schema_err_t field_enum(schema__loader_t *ld, json_t *def,
                               const char *path, schema_field_t *field) {
        json_t *v = json_object_get(def, "enum");
        char p[SCHEMA_PATH_SIZE];
        size_t i;
        json_t *item;

        if (!v)
                return SCHEMA_OK;
        schema__path_join(p, path, "enum");
        if (field->type != SCHEMA_STRING)
                return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "applies only to string fields");
        if (!json_is_array(v) || json_array_size(v) == 0)
                return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "must be a non-empty array of "
                                         "strings");
        field->enum_values = xcalloc(json_array_size(v), sizeof(char *));
        json_array_foreach(v, i, item) {
                if (!json_is_string(item) ||
                    strlen(json_string_value(item)) != json_string_length(item))
                        return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                                 "must be a non-empty array "
                                                 "of strings");
                for (size_t k = 0; k < field->n_enum; k++)
                        if (strcmp(field->enum_values[k],
                                   json_string_value(item)) == 0)
                                return schema__load_fail(
                                        ld, SCHEMA_BAD_DEFINITION, p,
                                        "lists a value twice");
                field->enum_values[field->n_enum++] =
                        xstrdup(json_string_value(item));
        }
        return SCHEMA_OK;
}

/* The key of def present first among keys (NULL-terminated), or NULL. */
static const char *field_first_of(json_t *def, const char *const *keys) {
        for (size_t i = 0; keys[i]; i++)
                if (json_object_get(def, keys[i]))
                        return keys[i];
        return NULL;
}

/* Refuse def's keys among bad (NULL-terminated) with "applies only to". */
static schema_err_t field_only_for(schema__loader_t *ld, json_t *def,
                                   const char *path, const char *const *bad,
                                   const char *what) {
        const char *key = field_first_of(def, bad);
        char p[SCHEMA_PATH_SIZE];

        if (!key)
                return SCHEMA_OK;
        schema__path_join(p, path, key);
        return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                 "applies only to %s", what);
}

/* The index of v's string among names[first..n), or n. */
static size_t field_name_index(json_t *v, const char *const *names, size_t n,
                               size_t first) {
        size_t i;

        for (i = first; i < n; i++)
                if (json_is_string(v) &&
                    strcmp(json_string_value(v), names[i]) == 0)
                        break;
        return i;
}

static schema_err_t field_type(schema__loader_t *ld, json_t *def,
                               const char *path, schema_field_t *field) {
        json_t *v = json_object_get(def, "type");
        char p[SCHEMA_PATH_SIZE];
        size_t t;

        schema__path_join(p, path, "type");
        if (!v)
                return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "is required");
        t = field_name_index(v, schema__type_names,
                             SCHEMA__ARRAY_LEN(schema__type_names), 0);
        if (t == SCHEMA__ARRAY_LEN(schema__type_names))
                return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "must be one of string, integer, "
                                         "number, boolean, object, array, "
                                         "binary");
        field->type = (schema_type_t)t;
        return SCHEMA_OK;
}

static schema_err_t field_format(schema__loader_t *ld, json_t *def,
                                 const char *path, schema_field_t *field) {
        json_t *v = json_object_get(def, "format");
        char p[SCHEMA_PATH_SIZE];
        size_t f;

        if (!v)
                return SCHEMA_OK;
        schema__path_join(p, path, "format");
        if (field->type != SCHEMA_STRING)
                return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "applies only to string fields");
        f = field_name_index(v, schema__format_names,
                             SCHEMA__ARRAY_LEN(schema__format_names), 1);
        if (f == SCHEMA__ARRAY_LEN(schema__format_names))
                return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "must be one of email, uuid, "
                                         "date-time, date, uri");
        field->format = (schema_format_t)f;
        return SCHEMA_OK;
}

static schema_err_t field_limits(schema__loader_t *ld, json_t *def,
                                 const char *path, schema_field_t *field) {
        static const char *const lengths[] = {"min_length", "max_length", NULL};
        static const char *const bounds[] = {"minimum", "maximum", NULL};
        schema_type_t t = field->type;
        schema_err_t err;

        if (t != SCHEMA_STRING && t != SCHEMA_ARRAY && t != SCHEMA_BINARY &&
            (err = field_only_for(ld, def, path, lengths,
                                  "string, binary and array fields")))
                return err;
        if ((err = field_length(ld, def, path, "min_length",
                                &field->min_length)) ||
            (err = field_length(ld, def, path, "max_length",
                                &field->max_length)))
                return err;
        if (field->min_length >= 0 && field->max_length >= 0 &&
            field->min_length > field->max_length)
                return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, path,
                                         "min_length is greater than "
                                         "max_length");

        if (t != SCHEMA_INTEGER && t != SCHEMA_NUMBER &&
            (err = field_only_for(ld, def, path, bounds,
                                  "integer and number fields")))
                return err;
        if ((err = field_bound(ld, def, path, "minimum", t, &field->has_minimum,
                               &field->minimum)) ||
            (err = field_bound(ld, def, path, "maximum", t, &field->has_maximum,
                               &field->maximum)))
                return err;
        if (field->has_minimum && field->has_maximum &&
            field->minimum > field->maximum)
                return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, path,
                                         "minimum is greater than maximum");
        return SCHEMA_OK;
}

static schema_err_t field_load(schema__loader_t *ld, const char *name,
                               json_t *def, const char *path,
                               schema__field_place_t place, int depth,
                               schema_field_t *field);

/* An object's "fields"/"additional" or an array's "items". */
static schema_err_t field_nested(schema__loader_t *ld, json_t *def,
                                 const char *path, int depth,
                                 schema_field_t *field) {
        static const char *const object_keys[] = {"fields", "additional", NULL};
        static const char *const array_keys[] = {"items", NULL};
        char p[SCHEMA_PATH_SIZE];
        schema_err_t err;
        json_t *v;

        if (field->type != SCHEMA_OBJECT &&
            (err = field_only_for(ld, def, path, object_keys, "object fields")))
                return err;
        if (field->type != SCHEMA_ARRAY &&
            (err = field_only_for(ld, def, path, array_keys, "array fields")))
                return err;
        if (depth >= SCHEMA_MAX_DEPTH &&
            (v = json_object_get(def, field->type == SCHEMA_OBJECT ? "fields"
                                                                   : "items")))
                return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, path,
                                         "nests deeper than %d levels",
                                         SCHEMA_MAX_DEPTH);

        if (field->type == SCHEMA_OBJECT) {
                bool additional = false;
                if ((err = schema__load_bool(ld, def, path, "additional",
                                             &additional)))
                        return err;
                v = json_object_get(def, "fields");
                if (!v) {
                        if (json_object_get(def, "additional")) {
                                schema__path_join(p, path, "additional");
                                return schema__load_fail(
                                        ld, SCHEMA_BAD_DEFINITION, p,
                                        "applies only with \"fields\" (an "
                                        "object without them takes any "
                                        "map)");
                        }
                        return SCHEMA_OK;
                }
                field->object = xcalloc(1, sizeof(*field->object));
                field->object->additional = additional;
                schema__path_join(p, path, "fields");
                return schema__load_fields(ld, v, p, SCHEMA__NESTED, depth + 1,
                                           &field->object->fields,
                                           &field->object->n_fields);
        }
        if (field->type == SCHEMA_ARRAY &&
            (v = json_object_get(def, "items"))) {
                field->items = xcalloc(1, sizeof(*field->items));
                schema__path_join(p, path, "items");
                return field_load(ld, "", v, p, SCHEMA__NESTED, depth + 1,
                                  field->items);
        }
        return SCHEMA_OK;
}

/* "in" and "name": where the edge finds the value. */
static schema_err_t field_in(schema__loader_t *ld, json_t *def,
                             const char *path, schema__field_place_t place,
                             schema_field_t *field) {
        json_t *v = json_object_get(def, "in");
        json_t *name = json_object_get(def, "name");
        char p[SCHEMA_PATH_SIZE];
        size_t i;

        if (!v && !name)
                return SCHEMA_OK;
        schema__path_join(p, path, v ? "in" : "name");
        if (place != SCHEMA__TOP_ROUTED)
                return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "applies only to the top-level "
                                         "fields of a routed message");
        if (v) {
                i = field_name_index(v, schema__in_names,
                                     SCHEMA__ARRAY_LEN(schema__in_names), 0);
                if (i == SCHEMA__ARRAY_LEN(schema__in_names))
                        return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                                 "must be one of body, path, "
                                                 "query, header");
                field->in = (schema_in_t)i;
        }
        if (field->in == SCHEMA_IN_HEADER) {
                const char *h = json_string_value(name);
                schema__path_join(p, path, "name");
                if (!h || !schema__header_name_valid(h, strlen(h)))
                        return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                                 "must be an HTTP header name "
                                                 "(letters, digits and '-')");
                for (i = 0; field_reserved_headers[i]; i++)
                        if (strcasecmp(h, field_reserved_headers[i]) == 0)
                                return schema__load_fail(
                                        ld, SCHEMA_BAD_DEFINITION, p,
                                        "%s is the edge's own header", h);
                field->header = xstrdup(h);
        } else if (name) {
                schema__path_join(p, path, "name");
                return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "applies only with \"in\": "
                                         "\"header\"");
        }

        /* Text from a URL or a header converts to scalars (and, from a
         * query, to an array of them). */
        schema__path_join(p, path, "in");
        if (field->in == SCHEMA_IN_BODY)
                return SCHEMA_OK;
        if (field->type == SCHEMA_OBJECT || field->type == SCHEMA_BINARY ||
            (field->type == SCHEMA_ARRAY && field->in != SCHEMA_IN_QUERY))
                return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "a %s value must be a string, "
                                         "integer, number or boolean%s",
                                         schema__in_names[field->in],
                                         field->in == SCHEMA_IN_QUERY
                                                 ? " (or an array of them)"
                                                 : "");
        if (field->type == SCHEMA_ARRAY &&
            (!field->items || field->items->type == SCHEMA_OBJECT ||
             field->items->type == SCHEMA_ARRAY ||
             field->items->type == SCHEMA_BINARY))
                return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "a query array needs \"items\" of "
                                         "type string, integer, number or "
                                         "boolean");
        return SCHEMA_OK;
}

/* "default": packed, then checked against the field itself. */
static schema_err_t field_default(schema__loader_t *ld, json_t *def,
                                  const char *path, schema_field_t *field) {
        json_t *v = json_object_get(def, "default");
        char p[SCHEMA_PATH_SIZE], where[SCHEMA_PATH_SIZE];
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_unpacked up;
        schema_report_t report;
        schema_err_t err = SCHEMA_OK;
        size_t off = 0;

        if (!v)
                return SCHEMA_OK;
        schema__path_join(p, path, "default");
        if (field->required)
                return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "a required field has no default");
        if (field->in == SCHEMA_IN_PATH || field->type == SCHEMA_BINARY)
                return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "applies neither to path nor to "
                                         "binary fields");
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        if (codec_pack_json(&pk, v) != CODEC_OK) {
                msgpack_sbuffer_destroy(&sb);
                return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                         "nests too deeply");
        }
        msgpack_unpacked_init(&up);
        if (msgpack_unpack_next(&up, sb.data, sb.size, &off) !=
            MSGPACK_UNPACK_SUCCESS) {
                err = schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p,
                                        "cannot be packed");
                goto out;
        }
        report.n = 0;
        report.truncated = false;
        snprintf(where, sizeof(where), "%s", field->name);
        schema__check_value(field, &up.data, where, strlen(where), 1, &report);
        if (report.n) {
                err = schema__load_fail(
                        ld, SCHEMA_BAD_DEFINITION, p,
                        "does not fit the field: %s%s%s", report.v[0].field,
                        report.v[0].field[0] ? " " : "", report.v[0].reason);
                goto out;
        }
        field->default_json = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!field->default_json)
                abort(); /* tiny internal allocation */
        field->default_mp = xmalloc(sb.size);
        memcpy(field->default_mp, sb.data, sb.size);
        field->default_mp_len = sb.size;
out:
        msgpack_unpacked_destroy(&up);
        msgpack_sbuffer_destroy(&sb);
        return err;
}

static schema_err_t field_load(schema__loader_t *ld, const char *name,
                               json_t *def, const char *path,
                               schema__field_place_t place, int depth,
                               schema_field_t *field) {
        static const char *const keys[] = {
                "type",       "required",   "secret",  "format", "min_length",
                "max_length", "minimum",    "maximum", "enum",   "doc",
                "fields",     "additional", "items",   "in",     "name",
                "default",    NULL};
        static const char *const scalar_only[] = {"required", "in", "name",
                                                  NULL};
        schema_err_t err;

        field->name = xstrdup(name);
        field->min_length = field->max_length = -1;
        if (!json_is_object(def))
                return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, path,
                                         "must be an object");
        if ((err = schema__load_check_keys(ld, def, path, keys)) != SCHEMA_OK)
                return err;
        /* The items of an array are there or not with the array. */
        if (!*name &&
            (err = field_only_for(ld, def, path, scalar_only, "named fields")))
                return err;
        if ((err = field_type(ld, def, path, field)) ||
            (err = schema__load_bool(ld, def, path, "required",
                                     &field->required)) ||
            (err = schema__load_bool(ld, def, path, "secret",
                                     &field->secret)) ||
            (err = schema__load_string(ld, def, path, "doc", false, false,
                                       &field->doc)) ||
            (err = field_format(ld, def, path, field)) ||
            (err = field_enum(ld, def, path, field)) ||
            (err = field_limits(ld, def, path, field)) ||
            (err = field_nested(ld, def, path, depth, field)) ||
            (err = field_in(ld, def, path, place, field)))
                return err;
        field->in_path = field->in == SCHEMA_IN_PATH;
        return field_default(ld, def, path, field);
}

schema_err_t schema__load_fields(schema__loader_t *ld, json_t *def,
                                 const char *path, schema__field_place_t place,
                                 int depth, schema_field_t **fields,
                                 size_t *n) {
        const char *name;
        json_t *value;
        char p[SCHEMA_PATH_SIZE];
        schema_err_t err;

        if (!def)
                return SCHEMA_OK;
        if (!json_is_object(def))
                return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, path,
                                         "must be an object");
        if (json_object_size(def) > SCHEMA_MAX_FIELDS)
                return schema__load_fail(ld, SCHEMA_BAD_DEFINITION, path,
                                         "declares more than %d fields",
                                         SCHEMA_MAX_FIELDS);
        *fields = xcalloc(json_object_size(def) ? json_object_size(def) : 1,
                          sizeof(schema_field_t));
        json_object_foreach(def, name, value) {
                schema__path_join(p, path, name);
                if (!schema__name_valid(name, strlen(name), SCHEMA_MAX_NAME,
                                        true))
                        return schema__load_fail(
                                ld, SCHEMA_BAD_DEFINITION, p,
                                "field names are letters, digits and '_', at "
                                "most %d bytes",
                                SCHEMA_MAX_NAME);
                err = field_load(ld, name, value, p, place, depth,
                                 &(*fields)[(*n)++]);
                if (err != SCHEMA_OK)
                        return err;
        }
        return SCHEMA_OK;
}
