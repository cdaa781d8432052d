/*
 * projection_data.c - what is done to the documents of a projection version
 * as a whole: copies (a replay from a point in the log starts from the
 * active version) and digests (see projection.h).
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "projection.h"

/* Documents per bulk of a copy. */
#define COPY_BULK 500

static void data__tenant_filter(const projection_def_t *def, slice_t tenant,
                                bson_t *filter) {
        bson_init(filter);
        if (tenant.len)
                bson_append_utf8(filter, def->tenant_field, -1, tenant.ptr,
                                 (int)tenant.len);
}

/* ---------------------------------------------------------------------------
 * Copies
 * ------------------------------------------------------------------------ */

typedef struct copy_state {
        store_t *store;
        const char *db;
        const char *coll;
        store_bulk_t *bulk;
        store_err_t err;
        char *errstr;
        size_t errlen;
} copy_state_t;

static bool data__flush_copy(copy_state_t *c) {
        if (!c->bulk)
                return true;
        c->err = store_bulk_run(c->bulk, NULL, c->errstr, c->errlen);
        store_bulk_destroy(c->bulk);
        c->bulk = NULL;
        return c->err == STORE_OK;
}

static bool data__copy_one(const bson_t *doc, void *arg) {
        copy_state_t *c = arg;
        if (!c->bulk)
                c->bulk = store_bulk_new(c->store, c->db, c->coll, false);
        store_bulk_insert(c->bulk, doc);
        if (store_bulk_count(c->bulk) >= COPY_BULK)
                return data__flush_copy(c);
        return true;
}

store_err_t projection_copy(store_t *store, const char *db,
                            const projection_def_t *def, int64_t from,
                            int64_t to, slice_t tenant, char *errstr,
                            size_t errlen) {
        char src[PROJECTION_COLL_MAX], dst[PROJECTION_COLL_MAX];
        for (const char *const *c = def->collections; c && *c; c++) {
                copy_state_t cs = {store,    db,     dst,   NULL,
                                   STORE_OK, errstr, errlen};
                bson_t filter;
                store_err_t err;
                projection_coll(*c, from, src, sizeof(src));
                projection_coll(*c, to, dst, sizeof(dst));
                data__tenant_filter(def, tenant, &filter);
                err = store_find(store, db, src, &filter, NULL, data__copy_one,
                                 &cs, errstr, errlen);
                bson_destroy(&filter);
                if (err == STORE_OK && cs.err == STORE_OK)
                        data__flush_copy(&cs);
                store_bulk_destroy(cs.bulk);
                if (err != STORE_OK)
                        return err;
                if (cs.err != STORE_OK)
                        return cs.err;
        }
        return STORE_OK;
}

/* ---------------------------------------------------------------------------
 * Canonical hashes
 * ------------------------------------------------------------------------ */

static void data__hash_value(EVP_MD_CTX *md, const bson_iter_t *it);

static int data__key_cmp(const void *a, const void *b) {
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A document's fields in key order; an array's in index order. */
static void data__hash_doc(EVP_MD_CTX *md, const bson_iter_t *parent,
                           bool array) {
        bson_iter_t it;
        const char **keys = NULL;
        size_t n = 0, cap = 0;
        unsigned char open = array ? '[' : '{', close = array ? ']' : '}';
        EVP_DigestUpdate(md, &open, 1);
        if (!bson_iter_recurse(parent, &it))
                goto out;
        if (array) {
                while (bson_iter_next(&it))
                        data__hash_value(md, &it);
                goto out;
        }
        while (bson_iter_next(&it)) {
                if (n == cap) {
                        cap = cap ? cap * 2 : 16;
                        keys = xrealloc(keys, cap * sizeof(*keys));
                }
                keys[n++] = bson_iter_key(&it);
        }
        if (n > 1) /* keys is NULL for an empty document */
                qsort(keys, n, sizeof(*keys), data__key_cmp);
        for (size_t i = 0; i < n; i++) {
                bson_iter_t child;
                uint32_t len = (uint32_t)strlen(keys[i]);
                EVP_DigestUpdate(md, &len, sizeof(len));
                EVP_DigestUpdate(md, keys[i], len);
                if (bson_iter_recurse(parent, &child) &&
                    bson_iter_find(&child, keys[i]))
                        data__hash_value(md, &child);
        }
out:
        EVP_DigestUpdate(md, &close, 1);
        free(keys);
}

/* Integers of either width hash alike: the store may answer an int64 it
 * was given as an int32. */
static void data__hash_value(EVP_MD_CTX *md, const bson_iter_t *it) {
        unsigned char tag = (unsigned char)bson_iter_type(it);
        switch (bson_iter_type(it)) {
        case BSON_TYPE_INT32:
        case BSON_TYPE_INT64: {
                int64_t v = BSON_ITER_HOLDS_INT32(it) ? bson_iter_int32(it)
                                                      : bson_iter_int64(it);
                tag = 'i';
                EVP_DigestUpdate(md, &tag, 1);
                EVP_DigestUpdate(md, &v, sizeof(v));
                break;
        }
        case BSON_TYPE_DOUBLE: {
                double d = bson_iter_double(it);
                EVP_DigestUpdate(md, &tag, 1);
                EVP_DigestUpdate(md, &d, sizeof(d));
                break;
        }
        case BSON_TYPE_UTF8: {
                uint32_t len = 0;
                const char *s = bson_iter_utf8(it, &len);
                EVP_DigestUpdate(md, &tag, 1);
                EVP_DigestUpdate(md, &len, sizeof(len));
                EVP_DigestUpdate(md, s, len);
                break;
        }
        case BSON_TYPE_BOOL: {
                unsigned char b = bson_iter_bool(it) ? 1 : 0;
                EVP_DigestUpdate(md, &tag, 1);
                EVP_DigestUpdate(md, &b, 1);
                break;
        }
        case BSON_TYPE_DATE_TIME: {
                int64_t ms = bson_iter_date_time(it);
                EVP_DigestUpdate(md, &tag, 1);
                EVP_DigestUpdate(md, &ms, sizeof(ms));
                break;
        }
        case BSON_TYPE_DOCUMENT:
                data__hash_doc(md, it, false);
                break;
        case BSON_TYPE_ARRAY:
                data__hash_doc(md, it, true);
                break;
        default: {
                /* Other types hash by their raw value bytes. */
                const bson_value_t *v = bson_iter_value((bson_iter_t *)it);
                EVP_DigestUpdate(md, &tag, 1);
                if (v->value_type == BSON_TYPE_BINARY) {
                        EVP_DigestUpdate(md, v->value.v_binary.data,
                                         v->value.v_binary.data_len);
                } else if (v->value_type == BSON_TYPE_OID) {
                        EVP_DigestUpdate(md, v->value.v_oid.bytes, 12);
                }
                break;
        }
        }
}

void projection_doc_hash(const bson_t *doc, unsigned char out[32]) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        bson_iter_t root;
        bson_t wrapper;
        unsigned int len = 0;
        /* Hash the document as the value of a one-field wrapper, so the
         * same code walks the top level. */
        bson_init(&wrapper);
        BSON_APPEND_DOCUMENT(&wrapper, "d", doc);
        EVP_DigestInit_ex(md, EVP_sha256(), NULL);
        if (bson_iter_init_find(&root, &wrapper, "d"))
                data__hash_doc(md, &root, false);
        EVP_DigestFinal_ex(md, out, &len);
        EVP_MD_CTX_free(md);
        bson_destroy(&wrapper);
}

/* ---------------------------------------------------------------------------
 * Digests: the sum of the documents' hashes, as four 64-bit lanes, so the
 * order the store answers in does not matter
 * ------------------------------------------------------------------------ */

typedef struct digest_state {
        uint64_t lane[4];
        int64_t n;
} digest_state_t;

static bool data__digest_one(const bson_t *doc, void *arg) {
        digest_state_t *d = arg;
        unsigned char h[32];
        projection_doc_hash(doc, h);
        for (int l = 0; l < 4; l++) {
                uint64_t v = 0;
                for (int b = 0; b < 8; b++)
                        v = (v << 8) | h[l * 8 + b];
                d->lane[l] += v;
        }
        d->n++;
        return true;
}

store_err_t projection_digest(store_t *store, const char *db,
                              const projection_def_t *def, int64_t version,
                              slice_t tenant, projection_digest_t *out,
                              size_t *n, char *errstr, size_t errlen) {
        char coll[PROJECTION_COLL_MAX];
        *n = 0;
        for (const char *const *c = def->collections; c && *c; c++) {
                digest_state_t d;
                bson_t filter;
                store_err_t err;
                projection_digest_t *o = &out[*n];
                memset(&d, 0, sizeof(d));
                projection_coll(*c, version, coll, sizeof(coll));
                data__tenant_filter(def, tenant, &filter);
                err = store_find(store, db, coll, &filter, NULL,
                                 data__digest_one, &d, errstr, errlen);
                bson_destroy(&filter);
                if (err != STORE_OK)
                        return err;
                snprintf(o->collection, sizeof(o->collection), "%s", *c);
                o->documents = d.n;
                for (int l = 0; l < 4; l++)
                        snprintf(o->hex + l * 16, 17, "%016llx",
                                 (unsigned long long)d.lane[l]);
                (*n)++;
        }
        return STORE_OK;
}
