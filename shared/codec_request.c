/*
 * codec_request.c - an HTTP request as the command a group receives (see
 * codec_request_to_msgpack in codec.h).
 *
 * The body is parsed into a jansson tree; the declarations then walk it to
 * fill defaults and to give integer fields integers; the path, query and
 * header values are converted from text to the declared types and added to
 * the same tree, so one packing writes the whole map (plus the raw body as
 * a bin field, which JSON cannot hold). Every conversion problem is
 * reported by parameter name, all of them at once, and never quotes the
 * value.
 */
#include "codec.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_internal.h"

#define REQ_EXACT_INT 9007199254740992.0 /* 2^53 */

/* ------------------------------------------------------------------------
 * Text to typed values
 * ------------------------------------------------------------------------ */

/* A strict decimal integer: optional '-', digits, fitting int64. */
static bool text_int(slice_t t, json_int_t *out) {
        size_t i = t.len && t.ptr[0] == '-' ? 1 : 0;
        char buf[24];
        long long v;

        if (t.len == i || t.len >= sizeof(buf))
                return false;
        for (size_t k = i; k < t.len; k++)
                if (t.ptr[k] < '0' || t.ptr[k] > '9')
                        return false;
        memcpy(buf, t.ptr, t.len);
        buf[t.len] = '\0';
        errno = 0;
        v = strtoll(buf, NULL, 10);
        if (errno)
                return false;
        *out = (json_int_t)v;
        return true;
}

/* A JSON-like number: digits, sign, point and exponent only; finite. */
static bool text_number(slice_t t, double *out) {
        char buf[64], *end;

        if (t.len == 0 || t.len >= sizeof(buf))
                return false;
        memcpy(buf, t.ptr, t.len);
        buf[t.len] = '\0';
        if (strspn(buf, "0123456789+-.eE") != t.len)
                return false;
        *out = strtod(buf, &end);
        return *end == '\0' && isfinite(*out);
}

/* The text as a value of type (a scalar); NULL and *reason when it does
 * not convert. */
static json_t *text_value(schema_type_t type, slice_t t, const char **reason) {
        json_int_t i;
        double d;
        json_t *v;

        switch (type) {
        case SCHEMA_INTEGER:
                if (text_int(t, &i))
                        return json_integer(i);
                *reason = "must be an integer";
                return NULL;
        case SCHEMA_NUMBER:
                if (text_number(t, &d))
                        return json_real(d);
                *reason = "must be a number";
                return NULL;
        case SCHEMA_BOOLEAN:
                if (slice_eq(t, "true"))
                        return json_true();
                if (slice_eq(t, "false"))
                        return json_false();
                *reason = "must be true or false";
                return NULL;
        default:
                /* jansson insists on UTF-8, as validation does. */
                v = json_stringn(t.ptr ? t.ptr : "", t.len);
                if (!v)
                        *reason = "must be valid UTF-8 text";
                return v;
        }
}

/* ------------------------------------------------------------------------
 * Parameters
 * ------------------------------------------------------------------------ */

typedef struct req_ctx {
        const schema_msg_t *msg;
        const codec_request_t *rq;
        json_t *root;
        schema_report_t *report;
} req_ctx_t;

static void req_report(req_ctx_t *c, const char *name, size_t len,
                       const char *reason) {
        schema_report_add(c->report, name, len, reason);
}

static void req_report_field(req_ctx_t *c, const schema_field_t *f,
                             const char *reason) {
        const char *name = f->header ? f->header : f->name;

        req_report(c, name, strlen(name), reason);
}

/* Set root[f->name] = v (takes v); a NULL v reports *reason (read here,
 * after the call that made v set it). */
static void req_set(req_ctx_t *c, const schema_field_t *f, json_t *v,
                    const char *const *reason) {
        if (!v) {
                req_report_field(c, f, *reason ? *reason : "is not valid");
                return;
        }
        if (json_object_set_new_nocheck(c->root, f->name, v) != 0)
                req_report_field(c, f, "could not be read");
}

/* A query array: each repeated value one item, or one value split on
 * commas. */
static json_t *req_query_array(req_ctx_t *c, const schema_field_t *f,
                               size_t count, const char **reason) {
        const codec_request_t *rq = c->rq;
        json_t *arr = json_array();
        schema_type_t item = f->items->type;

        for (size_t i = 0; i < rq->n_query; i++) {
                slice_t v = rq->query[i].value;
                size_t start = 0;
                if (!slice_eq(rq->query[i].name, f->name))
                        continue;
                for (size_t k = 0; k <= v.len; k++) {
                        json_t *x;
                        if (count == 1 && k < v.len && v.ptr[k] != ',')
                                continue;
                        if (count > 1 && k < v.len)
                                continue;
                        x = text_value(item,
                                       (slice_t){v.ptr + start, k - start},
                                       reason);
                        if (!x) {
                                json_decref(arr);
                                return NULL;
                        }
                        json_array_append_new(arr, x);
                        start = k + 1;
                }
        }
        return arr;
}

static void req_query(req_ctx_t *c) {
        const codec_request_t *rq = c->rq;
        const schema_msg_t *msg = c->msg;

        /* Every parameter must be declared. */
        for (size_t i = 0; i < rq->n_query; i++) {
                const schema_field_t *f = schema_field_find(
                        msg->fields, msg->n_fields, rq->query[i].name);
                json_t *name = json_stringn(
                        rq->query[i].name.ptr ? rq->query[i].name.ptr : "",
                        rq->query[i].name.len);
                if (!name) {
                        req_report(c, "", 0,
                                   "a query parameter name is not valid "
                                   "UTF-8 text");
                        continue;
                }
                json_decref(name);
                if (!f || f->in != SCHEMA_IN_QUERY) {
                        char why[160];
                        snprintf(why, sizeof(why),
                                 "is not a query parameter of %s", msg->type);
                        req_report(c, rq->query[i].name.ptr,
                                   rq->query[i].name.len, why);
                }
        }
        for (size_t k = 0; k < msg->n_fields; k++) {
                const schema_field_t *f = &msg->fields[k];
                const char *reason = NULL;
                size_t count = 0, last = 0;
                if (f->in != SCHEMA_IN_QUERY)
                        continue;
                for (size_t i = 0; i < rq->n_query; i++)
                        if (slice_eq(rq->query[i].name, f->name)) {
                                count++;
                                last = i;
                        }
                if (!count)
                        continue;
                if (f->type == SCHEMA_ARRAY) {
                        req_set(c, f, req_query_array(c, f, count, &reason),
                                &reason);
                } else if (count > 1) {
                        req_report_field(c, f, "is given more than once");
                } else {
                        req_set(c, f,
                                text_value(f->type, rq->query[last].value,
                                           &reason),
                                &reason);
                }
        }
}

static void req_path_and_headers(req_ctx_t *c) {
        const codec_request_t *rq = c->rq;
        const schema_msg_t *msg = c->msg;
        const char *reason = NULL;

        for (size_t i = 0; rq->path && i < rq->path->n; i++) {
                const schema_field_t *f =
                        schema_field_find(msg->fields, msg->n_fields,
                                          slice_of(rq->path->names[i]));
                if (f)
                        req_set(c, f,
                                text_value(f->type, rq->path->values[i],
                                           &reason),
                                &reason);
        }
        for (size_t k = 0; rq->header && k < msg->n_fields; k++) {
                const schema_field_t *f = &msg->fields[k];
                slice_t v;
                if (f->in != SCHEMA_IN_HEADER)
                        continue;
                v = rq->header(rq->header_ctx, f->header);
                if (v.ptr)
                        req_set(c, f, text_value(f->type, v, &reason), &reason);
        }
}

/* ------------------------------------------------------------------------
 * Defaults and integers, at every level of the body
 * ------------------------------------------------------------------------ */

static void req_fill(json_t *obj, const schema_field_t *fields, size_t n);

static json_t *req_fill_value(json_t *v, const schema_field_t *f) {
        double d;

        if (f->type == SCHEMA_INTEGER && json_is_real(v)) {
                d = json_real_value(v);
                if (d == floor(d) && fabs(d) <= REQ_EXACT_INT)
                        return json_integer((json_int_t)d);
        } else if (f->type == SCHEMA_OBJECT && f->object && json_is_object(v)) {
                req_fill(v, f->object->fields, f->object->n_fields);
        } else if (f->type == SCHEMA_ARRAY && f->items && json_is_array(v)) {
                size_t i;
                json_t *item;
                json_array_foreach(v, i, item) {
                        json_t *x = req_fill_value(item, f->items);
                        if (x)
                                json_array_set_new(v, i, x);
                }
        }
        return NULL;
}

/* Fill obj's absent fields with their defaults and fix its integers. */
static void req_fill(json_t *obj, const schema_field_t *fields, size_t n) {
        for (size_t k = 0; k < n; k++) {
                const schema_field_t *f = &fields[k];
                json_t *v = json_object_get(obj, f->name);
                if (!v) {
                        if (f->default_json)
                                json_object_set_new_nocheck(
                                        obj, f->name,
                                        json_loads(f->default_json,
                                                   JSON_DECODE_ANY, NULL));
                        continue;
                }
                if ((v = req_fill_value(v, f)))
                        json_object_set_new_nocheck(obj, f->name, v);
        }
}

/* ------------------------------------------------------------------------
 * The command
 * ------------------------------------------------------------------------ */

/* Body keys that name a field of the path, the query or a header. */
static void req_check_body_keys(req_ctx_t *c) {
        const char *key;
        json_t *v;

        json_object_foreach(c->root, key, v) {
                const schema_field_t *f = schema_field_find(
                        c->msg->fields, c->msg->n_fields, slice_of(key));
                char why[96];
                if (!f || f->in == SCHEMA_IN_BODY)
                        continue;
                snprintf(why, sizeof(why), "belongs in the %s, not the body",
                         f->in == SCHEMA_IN_PATH    ? "path"
                         : f->in == SCHEMA_IN_QUERY ? "query string"
                                                    : "headers");
                req_report(c, key, strlen(key), why);
        }
}

static codec_err_t req_pack(req_ctx_t *c, msgpack_sbuffer *out) {
        const schema_route_t *route = &c->msg->route;
        slice_t raw = c->rq->body;
        msgpack_packer pk;
        const char *key;
        size_t key_len;
        json_t *v;
        codec_err_t err;

        msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
        if (msgpack_pack_map(&pk, json_object_size(c->root) +
                                          (route->raw_body ? 1 : 0)))
                return CODEC_NO_MEMORY;
        json_object_keylen_foreach(c->root, key, key_len, v) {
                if (msgpack_pack_str(&pk, key_len) ||
                    msgpack_pack_str_body(&pk, key, key_len))
                        return CODEC_NO_MEMORY;
                if ((err = codec_pack_json(&pk, v)) != CODEC_OK)
                        return err;
        }
        if (route->raw_body) {
                size_t n = strlen(route->raw_body);
                if (msgpack_pack_str(&pk, n) ||
                    msgpack_pack_str_body(&pk, route->raw_body, n) ||
                    msgpack_pack_bin(&pk, raw.len) ||
                    (raw.len && msgpack_pack_bin_body(&pk, raw.ptr, raw.len)))
                        return CODEC_NO_MEMORY;
        }
        return CODEC_OK;
}

codec_err_t codec_request_to_msgpack(const schema_msg_t *msg,
                                     const codec_request_t *request,
                                     msgpack_sbuffer *out,
                                     schema_report_t *report, char *errstr,
                                     size_t errlen) {
        req_ctx_t c = {.msg = msg, .rq = request, .report = report};
        size_t start = out->size;
        codec_err_t err;

        report->n = 0;
        report->truncated = false;
        if (errstr && errlen)
                errstr[0] = '\0';
        if (msg->route.raw_body) {
                c.root = json_object();
                if (!c.root)
                        return codec__fail(CODEC_NO_MEMORY, errstr, errlen,
                                           "out of memory");
        } else if ((err = codec__parse_object(request->body, &c.root, errstr,
                                              errlen))) {
                return err;
        }
        req_check_body_keys(&c);
        if (report->n) {
                err = CODEC_BAD_PARAM;
                goto out;
        }
        req_path_and_headers(&c);
        req_query(&c);
        if (report->n) {
                err = CODEC_BAD_PARAM;
                goto out;
        }
        req_fill(c.root, msg->fields, msg->n_fields);
        if ((err = req_pack(&c, out)) != CODEC_OK) {
                out->size = start;
                codec__fail(err, errstr, errlen, "%s", codec_strerror(err));
        }
out:
        if (err == CODEC_BAD_PARAM)
                codec__fail(err, errstr, errlen, "%s", codec_strerror(err));
        json_decref(c.root);
        return err;
}
