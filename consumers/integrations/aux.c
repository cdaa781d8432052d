/*
 * aux.c - a connector's notes between pages (see aux.h).
 */
#include "aux.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "msgid.h"

#define AUX_COLL "aux"

static void aux__id(char *out, size_t size, const char *conn, const char *kind,
                    const char *key) {
        snprintf(out, size, "%s|%s|%s", conn, kind, key);
}

ig_err_t ig_aux_put(ig_state_t *st, const char *conn, const char *kind,
                    const ig_aux_item_t *items, size_t n) {
        int64_t exp = (int64_t)clock_wall_ms() + IG_AUX_KEEP_MS;
        store_bulk_t *b;
        char errstr[256];
        store_err_t e;
        if (n == 0)
                return IG_OK;
        b = store_bulk_new(st->store, IG_DB, AUX_COLL, false);
        for (size_t k = 0; k < n; k++) {
                bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER,
                       set;
                char id[600];
                aux__id(id, sizeof(id), conn, kind, items[k].key);
                BSON_APPEND_UTF8(&filter, "_id", id);
                BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
                BSON_APPEND_INT64(&set, "i", items[k].i);
                if (items[k].s)
                        BSON_APPEND_UTF8(&set, "s", items[k].s);
                BSON_APPEND_DATE_TIME(&set, "expires_at", exp);
                bson_append_document_end(&update, &set);
                store_bulk_update(b, &filter, &update, STORE_UPSERT);
                bson_destroy(&filter);
                bson_destroy(&update);
        }
        e = store_bulk_run(b, NULL, errstr, sizeof(errstr));
        store_bulk_destroy(b);
        if (e) {
                log_warn("aux: %s", errstr);
                return store_err_transient(e) ? IG_STORE_DOWN : IG_STORE;
        }
        return IG_OK;
}

typedef struct aux_read {
        const char *const *keys;
        size_t n, prefix_len;
        bool *found;
        int64_t *ints;
        char **strs;
} aux_read_t;

static bool aux__each(const bson_t *doc, void *arg) {
        aux_read_t *r = arg;
        const char *id = ig_bson_str(doc, "_id");
        if (!id || strlen(id) < r->prefix_len)
                return true;
        for (size_t k = 0; k < r->n; k++) {
                if (strcmp(id + r->prefix_len, r->keys[k]) != 0)
                        continue;
                r->found[k] = true;
                if (r->ints)
                        r->ints[k] = ig_bson_int(doc, "i", 0);
                if (r->strs && ig_bson_str(doc, "s")) {
                        free(r->strs[k]);
                        r->strs[k] = xstrdup(ig_bson_str(doc, "s"));
                }
        }
        return true;
}

ig_err_t ig_aux_get(ig_state_t *st, const char *conn, const char *kind,
                    const char *const *keys, size_t n, bool *found,
                    int64_t *ints, char **strs) {
        bson_t filter = BSON_INITIALIZER, in, arr;
        aux_read_t r = {keys, n, 0, found, ints, strs};
        char prefix[300], errstr[256];
        store_err_t e;
        for (size_t k = 0; k < n; k++) {
                found[k] = false;
                if (strs)
                        strs[k] = NULL;
        }
        if (n == 0)
                return IG_OK;
        snprintf(prefix, sizeof(prefix), "%s|%s|", conn, kind);
        r.prefix_len = strlen(prefix);
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &in);
        BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
        for (size_t k = 0; k < n; k++) {
                char id[600], idx[16];
                const char *ks;
                aux__id(id, sizeof(id), conn, kind, keys[k]);
                bson_uint32_to_string((uint32_t)k, &ks, idx, sizeof(idx));
                BSON_APPEND_UTF8(&arr, ks, id);
        }
        bson_append_array_end(&in, &arr);
        bson_append_document_end(&filter, &in);
        e = store_find(st->store, IG_DB, AUX_COLL, &filter, NULL, aux__each, &r,
                       errstr, sizeof(errstr));
        bson_destroy(&filter);
        if (e) {
                log_warn("aux: %s", errstr);
                return store_err_transient(e) ? IG_STORE_DOWN : IG_STORE;
        }
        return IG_OK;
}
