/*
 * schema_validate.c - checking a msgpack body against declared fields (see
 * schema_validate in schema.h).
 *
 * Validation runs on every body at the edge and again in the consumers, and
 * on every event the runtime emits. Its reasons are fixed sentences that
 * never quote the value, because values may be passwords or tokens. Each
 * violation names the full path of the value ("steps[2].retry.max"), built
 * in one buffer as the walk goes down and cut back as it comes up; the walk
 * follows the declarations, which nest at most SCHEMA_MAX_DEPTH deep, and
 * values declared as any map or any array are bounded separately.
 *
 * Lengths of strings count characters (Unicode code points), as JSON Schema
 * does, so the OpenAPI document says exactly what is checked; binary lengths
 * count bytes.
 */
#include "schema_internal.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Reports
 * ------------------------------------------------------------------------ */

void schema_report_add(schema_report_t *report, const char *field,
                       size_t field_len, const char *reason) {
        schema_violation_t *v;

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
        snprintf(v->reason, sizeof(v->reason), "%s", reason);
}

static void report_at(schema_report_t *report, const char *path, size_t len,
                      const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static void report_at(schema_report_t *report, const char *path, size_t len,
                      const char *fmt, ...) {
        char reason[sizeof(report->v[0].reason)];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        schema_report_add(report, path, len, reason);
}

/* Append ".name" (or "name" at the start) or "[i]" to path; the new length.
 * A path too long for the buffer keeps its start; reports cut it anyway. */
static size_t path_push(char *path, size_t len, const char *name,
                        size_t name_len, long index) {
        int n;

        if (len >= SCHEMA_PATH_SIZE - 1)
                return len;
        if (index >= 0)
                n = snprintf(path + len, SCHEMA_PATH_SIZE - len, "[%ld]",
                             index);
        else
                n = snprintf(path + len, SCHEMA_PATH_SIZE - len, "%s%.*s",
                             len ? "." : "", (int)name_len, name);
        if (n < 0 || (size_t)n >= SCHEMA_PATH_SIZE - len)
                return SCHEMA_PATH_SIZE - 1;
        return len + (size_t)n;
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
        case SCHEMA_BINARY:
                return "must be binary data";
        }
        return "has the wrong type";
}

/* ------------------------------------------------------------------------
 * Values declared as any map or any array
 * ------------------------------------------------------------------------ */

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
                return schema__utf8_valid(obj->via.str.ptr, obj->via.str.size)
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

static void check_any(const msgpack_object *obj, const char *path,
                      size_t path_len, schema_report_t *report) {
        switch (nested_check(obj, 1)) {
        case NEST_OK:
                break;
        case NEST_BAD_UTF8:
                report_at(report, path, path_len,
                          "contains text that is not valid UTF-8");
                break;
        case NEST_TOO_DEEP:
                report_at(report, path, path_len, "nests too deeply");
                break;
        }
}

/* ------------------------------------------------------------------------
 * Scalars
 * ------------------------------------------------------------------------ */

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

/* Characters (code points) of valid UTF-8: the bytes that start one. */
static size_t utf8_count(const char *s, size_t len) {
        size_t n = 0;

        for (size_t i = 0; i < len; i++)
                n += ((unsigned char)s[i] & 0xC0) != 0x80;
        return n;
}

static void check_enum(const schema_field_t *field, const char *s, size_t len,
                       const char *path, size_t path_len,
                       schema_report_t *report) {
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
        if (!found)
                report_at(report, path, path_len, "must be one of: %s", list);
}

static void check_string(const schema_field_t *field, const msgpack_object *obj,
                         const char *path, size_t path_len,
                         schema_report_t *report) {
        const char *s = obj->via.str.ptr;
        size_t len = obj->via.str.size, chars;
        static const struct {
                schema_format_t format;
                bool (*valid)(const char *, size_t);
                const char *reason;
        } formats[] = {
                {SCHEMA_FORMAT_EMAIL, schema__email_valid,
                 "must be an email address"},
                {SCHEMA_FORMAT_UUID, schema__uuid_valid, "must be a UUID"},
                {SCHEMA_FORMAT_DATE_TIME, schema__date_time_valid,
                 "must be an RFC 3339 date-time"},
                {SCHEMA_FORMAT_DATE, schema__date_valid,
                 "must be a date (YYYY-MM-DD)"},
                {SCHEMA_FORMAT_URI, schema__uri_valid,
                 "must be an absolute http or https URL"},
        };

        if (!schema__utf8_valid(s, len)) {
                report_at(report, path, path_len, "must be valid UTF-8 text");
                return;
        }
        if (len && memchr(s, '\0', len)) {
                report_at(report, path, path_len,
                          "must not contain NUL characters");
                return;
        }
        chars = utf8_count(s, len);
        if (field->min_length >= 0 && chars < (uint64_t)field->min_length) {
                report_at(report, path, path_len,
                          "must be at least %lld characters long",
                          (long long)field->min_length);
                return;
        }
        if (field->max_length >= 0 && chars > (uint64_t)field->max_length) {
                report_at(report, path, path_len,
                          "must be at most %lld characters long",
                          (long long)field->max_length);
                return;
        }
        if (field->n_enum) {
                check_enum(field, s, len, path, path_len, report);
                return;
        }
        for (size_t i = 0; i < SCHEMA__ARRAY_LEN(formats); i++)
                if (field->format == formats[i].format &&
                    !formats[i].valid(s, len))
                        report_at(report, path, path_len, "%s",
                                  formats[i].reason);
}

static void check_number(const schema_field_t *field, const msgpack_object *obj,
                         const char *path, size_t path_len,
                         schema_report_t *report) {
        msgpack_object_type t = obj->type;
        double d = t == MSGPACK_OBJECT_FLOAT32 || t == MSGPACK_OBJECT_FLOAT64
                           ? obj->via.f64
                   : t == MSGPACK_OBJECT_POSITIVE_INTEGER
                           ? (double)obj->via.u64
                           : (double)obj->via.i64;

        if (field->type == SCHEMA_INTEGER) {
                if (field->has_minimum && int_cmp(obj, field->minimum) < 0)
                        report_at(report, path, path_len,
                                  "must be at least %.0f", field->minimum);
                else if (field->has_maximum && int_cmp(obj, field->maximum) > 0)
                        report_at(report, path, path_len,
                                  "must be at most %.0f", field->maximum);
        } else if (!isfinite(d)) {
                report_at(report, path, path_len, "must be a finite number");
        } else if (field->has_minimum && d < field->minimum) {
                report_at(report, path, path_len, "must be at least %.15g",
                          field->minimum);
        } else if (field->has_maximum && d > field->maximum) {
                report_at(report, path, path_len, "must be at most %.15g",
                          field->maximum);
        }
}

/* ------------------------------------------------------------------------
 * Objects and arrays
 * ------------------------------------------------------------------------ */

/* Check a map against declared fields; path is the map's own path. owner
 * names the message or event for undeclared fields at the top. */
static void check_map(const schema_field_t *fields, size_t n_fields,
                      bool additional, const char *owner,
                      const msgpack_object *body, char *path, size_t path_len,
                      int depth, schema_report_t *report) {
        uint64_t seen = 0;

        assert(n_fields <= SCHEMA_MAX_FIELDS);
        for (uint32_t i = 0; i < body->via.map.size; i++) {
                const msgpack_object *key = &body->via.map.ptr[i].key;
                const msgpack_object *val = &body->via.map.ptr[i].val;
                const schema_field_t *field = NULL;
                size_t k, len;

                if (key->type != MSGPACK_OBJECT_STR) {
                        report_at(report, path, path_len,
                                  "field names must be strings");
                        continue;
                }
                if (!schema__utf8_valid(key->via.str.ptr, key->via.str.size)) {
                        report_at(report, path, path_len,
                                  "a field name is not valid UTF-8 text");
                        continue;
                }
                for (k = 0; k < n_fields; k++) {
                        const char *name = fields[k].name;
                        if (strlen(name) == key->via.str.size &&
                            memcmp(name, key->via.str.ptr, key->via.str.size) ==
                                    0) {
                                field = &fields[k];
                                break;
                        }
                }
                len = path_push(path, path_len, key->via.str.ptr,
                                key->via.str.size, -1);
                if (!field) {
                        if (!additional)
                                report_at(report, path, len,
                                          "is not a field of %s",
                                          owner ? owner : "this object");
                        else
                                check_any(val, path, len, report);
                } else if (seen & (UINT64_C(1) << k)) {
                        report_at(report, path, len, "is given more than once");
                } else {
                        seen |= UINT64_C(1) << k;
                        /* A header is named as the client sent it. */
                        if (field->header)
                                len = path_push(path, path_len, field->header,
                                                strlen(field->header), -1);
                        schema__check_value(field, val, path, len, depth,
                                            report);
                }
                path[path_len] = '\0';
        }

        for (size_t k = 0; k < n_fields; k++) {
                const schema_field_t *f = &fields[k];
                size_t len;
                if (!f->required || (seen & (UINT64_C(1) << k)))
                        continue;
                len = path_push(path, path_len, f->header ? f->header : f->name,
                                strlen(f->header ? f->header : f->name), -1);
                report_at(report, path, len, "is required");
                path[path_len] = '\0';
        }
}

static void check_array(const schema_field_t *field, const msgpack_object *obj,
                        char *path, size_t path_len, int depth,
                        schema_report_t *report) {
        uint32_t n = obj->via.array.size;

        if (field->min_length >= 0 && n < field->min_length) {
                report_at(report, path, path_len,
                          "must have at least %lld items",
                          (long long)field->min_length);
                return;
        }
        if (field->max_length >= 0 && n > field->max_length) {
                report_at(report, path, path_len,
                          "must have at most %lld items",
                          (long long)field->max_length);
                return;
        }
        if (!field->items) {
                check_any(obj, path, path_len, report);
                return;
        }
        for (uint32_t i = 0; i < n && !report->truncated; i++) {
                size_t len = path_push(path, path_len, NULL, 0, (long)i);
                schema__check_value(field->items, &obj->via.array.ptr[i], path,
                                    len, depth + 1, report);
                path[path_len] = '\0';
        }
}

void schema__check_value(const schema_field_t *field, const msgpack_object *obj,
                         char *path, size_t path_len, int depth,
                         schema_report_t *report) {
        msgpack_object_type t = obj->type;
        bool is_int = t == MSGPACK_OBJECT_POSITIVE_INTEGER ||
                      t == MSGPACK_OBJECT_NEGATIVE_INTEGER;
        bool is_float =
                t == MSGPACK_OBJECT_FLOAT32 || t == MSGPACK_OBJECT_FLOAT64;

        /* Declarations nest at most SCHEMA_MAX_DEPTH deep (checked when
         * loading): the walk below follows them, never the value. */
        assert(depth <= SCHEMA_MAX_DEPTH);
        switch (field->type) {
        case SCHEMA_STRING:
                if (t != MSGPACK_OBJECT_STR)
                        break;
                check_string(field, obj, path, path_len, report);
                return;
        case SCHEMA_INTEGER:
                if (!is_int)
                        break;
                check_number(field, obj, path, path_len, report);
                return;
        case SCHEMA_NUMBER:
                if (!is_int && !is_float)
                        break;
                check_number(field, obj, path, path_len, report);
                return;
        case SCHEMA_BOOLEAN:
                if (t != MSGPACK_OBJECT_BOOLEAN)
                        break;
                return;
        case SCHEMA_OBJECT:
                if (t != MSGPACK_OBJECT_MAP)
                        break;
                if (!field->object)
                        check_any(obj, path, path_len, report);
                else
                        check_map(field->object->fields,
                                  field->object->n_fields,
                                  field->object->additional, NULL, obj, path,
                                  path_len, depth + 1, report);
                return;
        case SCHEMA_ARRAY:
                if (t != MSGPACK_OBJECT_ARRAY)
                        break;
                check_array(field, obj, path, path_len, depth, report);
                return;
        case SCHEMA_BINARY:
                if (t != MSGPACK_OBJECT_BIN)
                        break;
                if (field->min_length >= 0 &&
                    obj->via.bin.size < field->min_length)
                        report_at(report, path, path_len,
                                  "must be at least %lld bytes long",
                                  (long long)field->min_length);
                else if (field->max_length >= 0 &&
                         obj->via.bin.size > field->max_length)
                        report_at(report, path, path_len,
                                  "must be at most %lld bytes long",
                                  (long long)field->max_length);
                return;
        }
        report_at(report, path, path_len, "%s", type_reason(field->type));
}

/* ------------------------------------------------------------------------
 * Bodies
 * ------------------------------------------------------------------------ */

static bool validate_body(const schema_field_t *fields, size_t n_fields,
                          bool additional, const char *owner,
                          const msgpack_object *body, schema_report_t *report) {
        schema_report_t scratch;
        char path[SCHEMA_PATH_SIZE] = "";

        /* Without a caller's report, collect into a scratch one. */
        if (!report)
                report = &scratch;
        report->n = 0;
        report->truncated = false;
        if (!body || body->type != MSGPACK_OBJECT_MAP) {
                schema_report_add(report, "", 0,
                                  "the body must be a JSON object");
                return false;
        }
        check_map(fields, n_fields, additional, owner, body, path, 0, 1,
                  report);
        return report->n == 0;
}

bool schema_validate(const schema_msg_t *msg, const msgpack_object *body,
                     schema_report_t *report) {
        assert(msg);
        return validate_body(msg->fields, msg->n_fields, msg->additional,
                             msg->type, body, report);
}

bool schema_event_validate(const schema_event_t *event,
                           const msgpack_object *body,
                           schema_report_t *report) {
        assert(event);
        return validate_body(event->fields, event->n_fields, event->additional,
                             event->type, body, report);
}
