/*
 * rt_list.c - a list reply straight from a find (see runtime.h).
 *
 * The items are packed one by one into a buffer of their own while the
 * find runs, since the array's header needs their number first; the reply
 * is then the map, the header and those bytes as they are (no second
 * pass, no copy per item).
 */
#include <msgpack.h>
#include <stdint.h>

#include "codec.h"
#include "runtime.h"

typedef struct rt_list {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        uint32_t n, max;
        rt_pack_doc_fn pack;
        void *arg;
} rt_list_t;

static bool rt__list_item(const bson_t *doc, void *arg) {
        rt_list_t *l = arg;
        l->pack(&l->pk, doc, l->arg);
        return ++l->n < l->max;
}

store_err_t rt_reply_list(rt_ctx_t *ctx, const char *key, const char *coll,
                          const bson_t *filter, const bson_t *opts,
                          uint32_t max, rt_pack_doc_fn pack, void *arg,
                          char *errstr, size_t errlen) {
        rt_list_t l = {.max = max ? max : 1, .pack = pack, .arg = arg};
        msgpack_packer *pk;
        store_err_t err;
        bson_t o;

        if (opts)
                bson_copy_to(opts, &o);
        else
                bson_init(&o);
        BSON_APPEND_INT64(&o, "limit", l.max);
        msgpack_sbuffer_init(&l.sb);
        msgpack_packer_init(&l.pk, &l.sb, msgpack_sbuffer_write);
        err = store_find(rt_store(ctx), rt_db(ctx), coll, filter, &o,
                         rt__list_item, &l, errstr, errlen);
        bson_destroy(&o);
        if (!err) {
                pk = rt_reply(ctx, 200);
                msgpack_pack_map(pk, 1);
                codec_pack_str(pk, key);
                msgpack_pack_array(pk, l.n);
                pk->callback(pk->data, l.sb.data, l.sb.size);
        }
        msgpack_sbuffer_destroy(&l.sb);
        return err;
}
