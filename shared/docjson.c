/*
 * docjson.c - store documents and replies as jansson values (see
 * docjson.h).
 */
#include "docjson.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "codec.h"
#include "log.h"

json_t *docjson_from_bson(const bson_t *doc) {
        size_t len;
        char *text = bson_as_relaxed_extended_json(doc, &len);
        json_t *out = text ? json_loadb(text, len, 0, NULL) : NULL;
        bson_free(text);
        return out;
}

bson_t *docjson_to_bson(const json_t *json) {
        char *text = json_dumps(json, JSON_COMPACT);
        bson_error_t e;
        bson_t *out =
                text ? bson_new_from_json((const uint8_t *)text, -1, &e) : NULL;
        if (text && !out)
                log_error("a document could not be made BSON: %s", e.message);
        free(text);
        return out;
}

json_t *docjson_date(int64_t ms) {
        char text[32];
        snprintf(text, sizeof(text), "%" PRId64, ms);
        return json_pack("{s:{s:s}}", "$date", "$numberLong", text);
}

handler_result_t docjson_reply(rt_ctx_t *ctx, int status, json_t *json) {
        msgpack_packer *pk = rt_reply(ctx, status);
        if (codec_pack_json(pk, json) != CODEC_OK)
                rt_reply_problem(ctx, 500, "Internal error",
                                 "the answer could not be packed");
        json_decref(json);
        return HANDLER_OK;
}

handler_result_t docjson_reply_present(rt_ctx_t *ctx, int status,
                                       json_t *json) {
        const char *key;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(json, tmp, key, v) {
                if (json_is_null(v))
                        json_object_del(json, key);
        }
        return docjson_reply(ctx, status, json);
}

typedef struct docjson_collect {
        json_t *out;
        const char *const *drop;
} docjson_collect_t;

static bool docjson__collect(const bson_t *doc, void *arg) {
        docjson_collect_t *c = arg;
        json_t *j = docjson_from_bson(doc);
        if (j) {
                for (const char *const *d = c->drop; d && *d; d++)
                        json_object_del(j, *d);
                json_array_append_new(c->out, j);
        }
        return true;
}

json_t *docjson_find(store_t *store, const char *db, const char *coll,
                     const bson_t *filter, const bson_t *opts,
                     const char *const *drop, store_err_t *err) {
        docjson_collect_t c = {json_array(), drop};
        bson_t empty = BSON_INITIALIZER;
        char errstr[256];
        *err = store_find(store, db, coll, filter ? filter : &empty, opts,
                          docjson__collect, &c, errstr, sizeof(errstr));
        bson_destroy(&empty);
        if (*err != STORE_OK) {
                json_decref(c.out);
                return NULL;
        }
        return c.out;
}
