/*
 * json.c - agentkit's small helpers: JSON values to and from msgpack,
 * replies, times, derived ids, names.
 *
 * A run's state, definitions and outputs are JSON (jansson) in memory and
 * JSON text in the store; commands arrive and replies leave as msgpack.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agentkit_internal.h"

#define AK_JSON_DEPTH 32

static json_t *json__of(const msgpack_object *o, int depth) {
        json_t *v = NULL;
        if (depth > AK_JSON_DEPTH)
                return NULL;
        switch (o->type) {
        case MSGPACK_OBJECT_NIL:
                return json_null();
        case MSGPACK_OBJECT_BOOLEAN:
                return json_boolean(o->via.boolean);
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
                return json_integer(o->via.u64 > INT64_MAX
                                            ? INT64_MAX
                                            : (json_int_t)o->via.u64);
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
                return json_integer((json_int_t)o->via.i64);
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
                return json_real(o->via.f64);
        case MSGPACK_OBJECT_STR:
                return json_stringn(o->via.str.ptr, o->via.str.size);
        case MSGPACK_OBJECT_BIN:
                /* Raw bytes: kept when they are text, else dropped. */
                v = json_stringn(o->via.bin.ptr, o->via.bin.size);
                return v ? v : json_null();
        case MSGPACK_OBJECT_ARRAY:
                v = json_array();
                for (uint32_t i = 0; i < o->via.array.size; i++) {
                        json_t *x = json__of(&o->via.array.ptr[i], depth + 1);
                        if (!x) {
                                json_decref(v);
                                return NULL;
                        }
                        json_array_append_new(v, x);
                }
                return v;
        case MSGPACK_OBJECT_MAP:
                v = json_object();
                for (uint32_t i = 0; i < o->via.map.size; i++) {
                        const msgpack_object_kv *kv = &o->via.map.ptr[i];
                        char key[256];
                        json_t *x;
                        if (kv->key.type != MSGPACK_OBJECT_STR ||
                            kv->key.via.str.size >= sizeof(key))
                                continue;
                        memcpy(key, kv->key.via.str.ptr, kv->key.via.str.size);
                        key[kv->key.via.str.size] = '\0';
                        if (!(x = json__of(&kv->val, depth + 1))) {
                                json_decref(v);
                                return NULL;
                        }
                        json_object_set_new(v, key, x);
                }
                return v;
        default:
                return json_null();
        }
}

json_t *ak_json_of_msgpack(const msgpack_object *obj) {
        return obj ? json__of(obj, 0) : NULL;
}

json_t *ak_json_of_bytes(const void *bytes, size_t len) {
        msgpack_zone zone;
        msgpack_object obj;
        size_t off = 0;
        json_t *v = NULL;
        if (codec_msgpack_check((slice_t){bytes, len}) != CODEC_OK)
                return NULL;
        msgpack_zone_init(&zone, 2048);
        if (msgpack_unpack(bytes, len, &off, &zone, &obj) ==
            MSGPACK_UNPACK_SUCCESS)
                v = json__of(&obj, 0);
        msgpack_zone_destroy(&zone);
        return v;
}

void ak_pack_json(msgpack_packer *pk, const json_t *v) {
        if (!v || codec_pack_json(pk, v) != CODEC_OK)
                msgpack_pack_nil(pk);
}

void ak_reply_json(rt_ctx_t *ctx, int status, const json_t *body) {
        ak_pack_json(rt_reply(ctx, status), body);
}

void ak_reply_report(rt_ctx_t *ctx, int status, const char *title,
                     const char *detail, const schema_report_t *report) {
        json_t *p =
                json_pack("{s:s, s:s, s:i, s:s}", "type", "about:blank",
                          "title", title, "status", status, "detail", detail);
        if (report && report->n) {
                json_t *errs = json_array();
                for (size_t i = 0; i < report->n; i++)
                        json_array_append_new(
                                errs, json_pack("{s:s, s:s}", "field",
                                                report->v[i].field, "reason",
                                                report->v[i].reason));
                json_object_set_new(p, "errors", errs);
        }
        ak_reply_json(ctx, status, p);
        json_decref(p);
}

const char *ak_str(const json_t *obj, const char *key) {
        return json_string_value(json_object_get(obj, key));
}

int64_t ak_int(const json_t *obj, const char *key, int64_t dflt) {
        const json_t *v = json_object_get(obj, key);
        if (json_is_integer(v))
                return (int64_t)json_integer_value(v);
        if (json_is_real(v))
                return (int64_t)json_real_value(v);
        return dflt;
}

const char *ak_time_text(int64_t ms, char *buf, size_t size) {
        time_t s = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&s, &tm);
        snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, (int)(ms % 1000));
        return buf;
}

int64_t ak_time_parse(const char *text) {
        int y, mo, d, h, mi, n = 0;
        double sec;
        struct tm tm = {0};
        int64_t ms;
        const char *p;
        if (!text || sscanf(text, "%4d-%2d-%2dT%2d:%2d:%lf%n", &y, &mo, &d, &h,
                            &mi, &sec, &n) != 6)
                return -1;
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
        ms = (int64_t)timegm(&tm) * 1000 + (int64_t)(sec * 1000.0 + 0.5);
        p = text + n;
        if (*p == 'Z' || *p == 'z')
                return p[1] ? -1 : ms;
        if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
                int oh = (p[1] - '0') * 10 + (p[2] - '0');
                int om = (p[4] - '0') * 10 + (p[5] - '0');
                int64_t off = ((int64_t)oh * 60 + om) * 60000;
                return *p == '+' ? ms - off : ms + off;
        }
        return -1;
}

void ak_derive_id(int64_t at_ms, const char *seed, char out[MSGID_TEXT_SIZE]) {
        msgid_t id;
        msgid_derive((uint64_t)(at_ms > 0 ? at_ms : 0), seed, strlen(seed),
                     &id);
        msgid_format(&id, out);
}

bool ak_name_valid(const char *s) {
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > AK_ID_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
                        return false;
        return true;
}

handler_result_t ak_store_failed(rt_ctx_t *ctx, store_err_t err,
                                 const char *what) {
        if (store_err_transient(err))
                return HANDLER_TRANSIENT;
        log_error("%s: %s", what, store_strerror(err));
        rt_reply_problem(ctx, 500, "Internal Server Error",
                         "the store failed; try again");
        return HANDLER_OK;
}
