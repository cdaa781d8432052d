/*
 * common.c - helpers every analytics handler uses: the state, problems,
 * the caller's view, msgpack and bson conversions (see
 * analytics_internal.h).
 */
#include <stdio.h>
#include <string.h>

#include "analytics_internal.h"
#include "bsonpack.h"
#include "log.h"

analytics_state_t *analytics_state(rt_ctx_t *ctx) {
        return rt_state(ctx);
}

handler_result_t analytics_store_failed(rt_ctx_t *ctx, store_err_t err,
                                        const char *errstr) {
        if (store_err_transient(err))
                return HANDLER_TRANSIENT;
        log_error("store: %s", errstr ? errstr : store_strerror(err));
        rt_reply_problem(ctx, 500, "Internal error",
                         "the analytics store failed");
        return HANDLER_OK;
}

static void analytics__field_problem(rt_ctx_t *ctx, int status,
                                     const char *title, const char *field,
                                     const char *why) {
        msgpack_packer *pk = rt_reply(ctx, status);
        msgpack_pack_map(pk, 5);
        mp_pack_kv_str(pk, "type", "about:blank");
        mp_pack_kv_str(pk, "title", title);
        codec_pack_str(pk, "status");
        msgpack_pack_int(pk, status);
        codec_pack_str(pk, "detail");
        {
                char detail[1200];
                snprintf(detail, sizeof(detail), "%s %s", field, why);
                codec_pack_str(pk, detail);
        }
        codec_pack_str(pk, "errors");
        msgpack_pack_array(pk, 1);
        msgpack_pack_map(pk, 2);
        mp_pack_kv_str(pk, "field", field);
        mp_pack_kv_str(pk, "reason", why);
}

void analytics_bad_field(rt_ctx_t *ctx, const char *field, const char *why) {
        analytics__field_problem(ctx, 400, "Bad Request", field, why);
}

void analytics_refused_field(rt_ctx_t *ctx, const char *field,
                             const char *why) {
        analytics__field_problem(ctx, 422, "Unprocessable Content", field, why);
}

bool analytics_view(rt_ctx_t *ctx, schema_role_t least, aview_t *v,
                    handler_result_t *res) {
        rt_caller_t c;
        char err[256];
        store_err_t serr;
        *res = HANDLER_OK;
        if (!rt_require_role(ctx, least))
                return false;
        rt_caller(ctx, &c);
        serr = aview_load(rt_store(ctx), rt_db(ctx), c.tenant, v, err,
                          sizeof(err));
        if (serr != STORE_OK) {
                *res = analytics_store_failed(ctx, serr, err);
                return false;
        }
        return true;
}

slice_t mp_str(const msgpack_object *map, const char *key) {
        return codec_map_str(map, key);
}

bool mp_int(const msgpack_object *map, const char *key, int64_t *out) {
        const msgpack_object *o = codec_map_get(map, key);
        if (!o)
                return false;
        if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            o->via.u64 <= (uint64_t)INT64_MAX) {
                *out = (int64_t)o->via.u64;
                return true;
        }
        if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
                *out = o->via.i64;
                return true;
        }
        return false;
}

bool mp_num(const msgpack_object *map, const char *key, double *out) {
        const msgpack_object *o = codec_map_get(map, key);
        if (!o)
                return false;
        switch (o->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
                *out = (double)o->via.u64;
                return true;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
                *out = (double)o->via.i64;
                return true;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
                *out = o->via.f64;
                return true;
        default:
                return false;
        }
}

bool mp_bool(const msgpack_object *map, const char *key, bool *out) {
        const msgpack_object *o = codec_map_get(map, key);
        if (!o || o->type != MSGPACK_OBJECT_BOOLEAN)
                return false;
        *out = o->via.boolean;
        return true;
}

void mp_pack_slice(msgpack_packer *pk, slice_t s) {
        codec_pack_slice(pk, s);
}

void mp_pack_kv_str(msgpack_packer *pk, const char *k, const char *v) {
        codec_pack_str(pk, k);
        codec_pack_str(pk, v);
}

void mp_pack_kv_int(msgpack_packer *pk, const char *k, int64_t v) {
        codec_pack_str(pk, k);
        msgpack_pack_int64(pk, v);
}

void bson_to_msgpack(msgpack_packer *pk, const bson_t *doc,
                     const char *const *skip) {
        bsonpack_doc(pk, doc, &(bsonpack_opts_t){.skip = skip});
}

/* ---------------------------------------------------------------------------
 * Lists of documents as answers
 * ------------------------------------------------------------------------ */

void alist_init(alist_t *l, const char *id_name, const char *const *skip) {
        memset(l, 0, sizeof(*l));
        msgpack_sbuffer_init(&l->sb);
        msgpack_packer_init(&l->pk, &l->sb, msgpack_sbuffer_write);
        l->id_name = id_name;
        l->skip = skip;
}

bool alist_add(const bson_t *doc, void *arg) {
        alist_t *l = arg;
        bson_t copy;
        bson_iter_t it;
        bson_init(&copy);
        if (l->id_name && bson_iter_init_find(&it, doc, "_id") &&
            BSON_ITER_HOLDS_UTF8(&it))
                BSON_APPEND_UTF8(&copy, l->id_name, bson_iter_utf8(&it, NULL));
        bson_concat(&copy, doc);
        bson_to_msgpack(&l->pk, &copy, l->skip);
        bson_destroy(&copy);
        l->n++;
        return true;
}

void alist_pack(msgpack_packer *pk, const alist_t *l) {
        msgpack_pack_array(pk, l->n);
        msgpack_sbuffer_write(pk->data, l->sb.data, l->sb.size);
}

void alist_deinit(alist_t *l) {
        msgpack_sbuffer_destroy(&l->sb);
}
