/*
 * schema_jsonschema.c - field declarations as JSON Schema (2020-12, the
 * dialect of OpenAPI 3.1 and of AsyncAPI 3.0 payloads).
 *
 * Every rule the validator applies is stated: lengths (characters for
 * strings, as JSON Schema counts them), bounds, enums, formats, nested
 * objects and arrays, whether undeclared fields are refused, and that
 * strings hold no NUL character (a pattern, which also carries the length
 * so generators need not filter for it). Our uri format is narrower than
 * JSON Schema's (absolute http or https only): a pattern says so.
 */
#include "schema_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* How deep a free-form value's description goes (then anything). */
#define SCHEMA__ANY_DEPTH 3

/* The NUL rule, with the length in the quantifier. */
static json_t *string_pattern(const schema_field_t *field) {
        char p[96];

        if (field->min_length < 0 && field->max_length < 0)
                return json_string("^[^\\u0000]*$");
        if (field->max_length < 0)
                snprintf(p, sizeof(p), "^[^\\u0000]{%lld,}$",
                         (long long)field->min_length);
        else
                snprintf(p, sizeof(p), "^[^\\u0000]{%lld,%lld}$",
                         (long long)(field->min_length < 0 ? 0
                                                           : field->min_length),
                         (long long)field->max_length);
        return json_string(p);
}

static void set_length(json_t *s, const schema_field_t *field,
                       const char *min_key, const char *max_key) {
        if (field->min_length >= 0)
                json_object_set_new(s, min_key,
                                    json_integer(field->min_length));
        if (field->max_length >= 0)
                json_object_set_new(s, max_key,
                                    json_integer(field->max_length));
}

static json_t *bound(const schema_field_t *field, double v) {
        return field->type == SCHEMA_INTEGER ? json_integer((json_int_t)v)
                                             : json_real(v);
}

static void string_schema(json_t *s, const schema_field_t *field) {
        set_length(s, field, "minLength", "maxLength");
        if (field->n_enum) {
                json_t *e = json_array();
                for (size_t i = 0; i < field->n_enum; i++)
                        json_array_append_new(
                                e, json_string(field->enum_values[i]));
                json_object_set_new(s, "enum", e);
                return;
        }
        if (field->format != SCHEMA_FORMAT_NONE)
                json_object_set_new(
                        s, "format",
                        json_string(schema__format_names[field->format]));
        if (field->format == SCHEMA_FORMAT_URI)
                json_object_set_new(s, "pattern",
                                    json_string("^[Hh][Tt][Tt][Pp][Ss]?://"
                                                "[^\\u0000-\\u0020]+$"));
        else if (field->format == SCHEMA_FORMAT_NONE)
                json_object_set_new(s, "pattern", string_pattern(field));
}

static json_t *any_value(int depth);

/* A free-form object: keys without NUL, values any_value. */
static json_t *any_object(int depth) {
        return json_pack("{s:s, s:{s:s}, s:o}", "type", "object",
                         "propertyNames", "pattern", "^[^\\u0000]*$",
                         "additionalProperties", any_value(depth));
}

/*
 * A value of a free-form object or array (a workflow's input, a step's
 * body): any JSON the edge accepts. Numbers of any size (an integer beyond
 * 64 bits is kept as a double) and strings without NUL, so generators
 * produce only what is accepted; described depth levels deep, anything below.
 */
static json_t *any_value(int depth) {
        json_t *of;
        /* Below the levels described: anything (a reply's deep output must
         * still match). */
        if (depth < 0)
                return json_object();
        of = json_array();
        json_array_append_new(of, json_pack("{s:s, s:s}", "type", "string",
                                            "pattern", "^[^\\u0000]*$"));
        json_array_append_new(of, json_pack("{s:s}", "type", "number"));
        json_array_append_new(of, json_pack("{s:s}", "type", "boolean"));
        json_array_append_new(of, json_pack("{s:s}", "type", "null"));
        json_array_append_new(of, json_pack("{s:s, s:o}", "type", "array",
                                            "items", any_value(depth - 1)));
        json_array_append_new(of, any_object(depth - 1));
        return json_pack("{s:o}", "anyOf", of);
}

json_t *schema__json_schema(const schema_field_t *field) {
        json_t *s = json_object();

        switch (field->type) {
        case SCHEMA_STRING:
                json_object_set_new(s, "type", json_string("string"));
                string_schema(s, field);
                break;
        case SCHEMA_INTEGER:
        case SCHEMA_NUMBER:
                json_object_set_new(
                        s, "type",
                        json_string(schema__type_names[field->type]));
                if (field->has_minimum)
                        json_object_set_new(s, "minimum",
                                            bound(field, field->minimum));
                if (field->has_maximum)
                        json_object_set_new(s, "maximum",
                                            bound(field, field->maximum));
                break;
        case SCHEMA_BOOLEAN:
                json_object_set_new(s, "type", json_string("boolean"));
                break;
        case SCHEMA_OBJECT:
                json_decref(s);
                s = field->object
                            ? schema__json_object(field->object->fields,
                                                  field->object->n_fields,
                                                  field->object->additional,
                                                  NULL)
                            : any_object(SCHEMA__ANY_DEPTH);
                break;
        case SCHEMA_ARRAY:
                json_object_set_new(s, "type", json_string("array"));
                json_object_set_new(s, "items",
                                    field->items
                                            ? schema__json_schema(field->items)
                                            : any_value(SCHEMA__ANY_DEPTH));
                set_length(s, field, "minItems", "maxItems");
                break;
        case SCHEMA_BINARY:
                /* Raw bytes; in JSON (replies) they are base64 text. */
                json_object_set_new(s, "type", json_string("string"));
                json_object_set_new(s, "contentEncoding",
                                    json_string("base64"));
                break;
        }
        if (field->secret)
                json_object_set_new(s, "writeOnly", json_true());
        if (field->doc)
                json_object_set_new(s, "description", json_string(field->doc));
        if (field->default_json)
                json_object_set_new(
                        s, "default",
                        json_loads(field->default_json, JSON_DECODE_ANY, NULL));
        return s;
}

json_t *schema__json_object(const schema_field_t *fields, size_t n,
                            bool additional,
                            bool (*keep)(const schema_field_t *)) {
        json_t *props = json_object(), *required = json_array();
        json_t *s;

        for (size_t i = 0; i < n; i++) {
                const schema_field_t *f = &fields[i];
                if (keep && !keep(f))
                        continue;
                json_object_set_new(props, f->name, schema__json_schema(f));
                if (f->required)
                        json_array_append_new(required, json_string(f->name));
        }
        s = json_pack("{s:s, s:o, s:o}", "type", "object", "properties", props,
                      "additionalProperties",
                      additional ? any_value(SCHEMA__ANY_DEPTH) : json_false());
        if (json_array_size(required))
                json_object_set_new(s, "required", required);
        else
                json_decref(required);
        return s;
}

static bool schema__not_header(const schema_field_t *field) {
        return field->in != SCHEMA_IN_HEADER;
}

char *schema_msg_json_schema(const schema_msg_t *msg) {
        json_t *s = schema__json_object(msg->fields, msg->n_fields,
                                        msg->additional, schema__not_header);
        char *text = json_dumps(s, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(s);
        return text;
}
