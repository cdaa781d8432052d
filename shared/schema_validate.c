/*
 * schema_validate.c - checking a msgpack body against a message's fields
 * (see schema_validate in schema.h).
 *
 * Validation runs on every body at the edge and again in the consumers; its
 * reasons are fixed sentences that never quote the value, because values may
 * be passwords or tokens.
 */
#include "schema_internal.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

        if (!schema__utf8_valid(s, len)) {
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
                if (!schema__email_valid(s, len))
                        report_field(report, field, "must be an email address");
                break;
        case SCHEMA_FORMAT_UUID:
                if (!schema__uuid_valid(s, len))
                        report_field(report, field, "must be a UUID");
                break;
        case SCHEMA_FORMAT_DATE_TIME:
                if (!schema__date_time_valid(s, len))
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
                if (!schema__utf8_valid(key->via.str.ptr, key->via.str.size)) {
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
