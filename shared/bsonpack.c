/*
 * bsonpack.c - a store document as a msgpack value (see bsonpack.h).
 *
 * Two passes over each container: the first counts the entries kept, since
 * a msgpack header states its count before the entries.
 */
#include "bsonpack.h"

#include <math.h>
#include <string.h>
#include <time.h>

#include "codec.h"

static bool bsonpack__skipped(const bson_iter_t *it, const bsonpack_opts_t *o) {
        const char *key = bson_iter_key(it);
        uint32_t len = 1;
        for (const char *const *s = o->skip; s && *s; s++)
                if (strcmp(key, *s) == 0)
                        return true;
        if (o->skip_empty && BSON_ITER_HOLDS_UTF8(it))
                bson_iter_utf8(it, &len);
        return len == 0;
}

static void bsonpack__value(msgpack_packer *pk, bson_iter_t *it,
                            const bsonpack_opts_t *o);

/* The entries under it; o filters the top level only (top). */
static void bsonpack__children(msgpack_packer *pk, const bson_iter_t *it,
                               bool array, bool top, const bsonpack_opts_t *o) {
        bson_iter_t sub = *it;
        uint32_t n = 0;
        while (bson_iter_next(&sub))
                if (!top || !bsonpack__skipped(&sub, o))
                        n++;
        if (array)
                msgpack_pack_array(pk, n);
        else
                msgpack_pack_map(pk, n);
        sub = *it;
        while (bson_iter_next(&sub)) {
                if (top && bsonpack__skipped(&sub, o))
                        continue;
                if (!array)
                        codec_pack_str(pk, bson_iter_key(&sub));
                bsonpack__value(pk, &sub, o);
        }
}

static void bsonpack__date(msgpack_packer *pk, int64_t ms, bool as_text) {
        time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
        struct tm tm;
        char text[32];
        if (!as_text) {
                msgpack_pack_int64(pk, ms);
        } else if (gmtime_r(&secs, &tm) &&
                   strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm)) {
                codec_pack_str(pk, text);
        } else {
                msgpack_pack_nil(pk);
        }
}

static void bsonpack__value(msgpack_packer *pk, bson_iter_t *it,
                            const bsonpack_opts_t *o) {
        bson_iter_t sub;
        uint32_t len = 0;
        const char *s;
        double d;

        switch (bson_iter_type(it)) {
        case BSON_TYPE_UTF8:
                s = bson_iter_utf8(it, &len);
                codec_pack_slice(pk, (slice_t){s, len});
                break;
        case BSON_TYPE_INT32:
                msgpack_pack_int64(pk, bson_iter_int32(it));
                break;
        case BSON_TYPE_INT64:
                msgpack_pack_int64(pk, bson_iter_int64(it));
                break;
        case BSON_TYPE_DOUBLE:
                d = bson_iter_double(it);
                if (isfinite(d))
                        msgpack_pack_double(pk, d);
                else
                        msgpack_pack_nil(pk);
                break;
        case BSON_TYPE_BOOL:
                if (bson_iter_bool(it))
                        msgpack_pack_true(pk);
                else
                        msgpack_pack_false(pk);
                break;
        case BSON_TYPE_DATE_TIME:
                bsonpack__date(pk, bson_iter_date_time(it), o->dates_as_text);
                break;
        case BSON_TYPE_DOCUMENT:
        case BSON_TYPE_ARRAY:
                if (bson_iter_recurse(it, &sub))
                        bsonpack__children(
                                pk, &sub, bson_iter_type(it) == BSON_TYPE_ARRAY,
                                false, o);
                else
                        msgpack_pack_nil(pk);
                break;
        default:
                msgpack_pack_nil(pk);
        }
}

void bsonpack_doc(msgpack_packer *pk, const bson_t *doc,
                  const bsonpack_opts_t *opts) {
        static const bsonpack_opts_t none = {0};
        bson_iter_t it;
        if (!bson_iter_init(&it, doc)) {
                msgpack_pack_map(pk, 0);
                return;
        }
        bsonpack__children(pk, &it, false, true, opts ? opts : &none);
}
