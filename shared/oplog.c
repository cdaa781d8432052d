/*
 * oplog.c - the operation log in MongoDB (see oplog.h).
 */
#include "oplog.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "msgid.h"

#define OPLOG_DB "ops"
#define OPLOG_COLL "operations"

#define OPLOG_IDEM_COLL "idempotency"

store_err_t oplog_init(store_t *store, char *errstr, size_t errlen) {
        /* expireAfterSeconds 0: each record carries its own expiry time. */
        static const store_index_t indexes[] = {
                {OPLOG_COLL, "expires_at_ttl", "expires_at", false, 0},
                {OPLOG_IDEM_COLL, "expires_at_ttl", "expires_at", false, 0},
                {NULL},
        };
        return store_ensure_indexes(store, OPLOG_DB, indexes, errstr, errlen);
}

static void oplog__copy_str(const bson_t *doc, const char *key, char *out,
                            size_t size) {
        bson_iter_t it;
        out[0] = '\0';
        if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
                snprintf(out, size, "%s", bson_iter_utf8(&it, NULL));
}

void oplog_request_hash(slice_t type, slice_t body, char out[OPLOG_HASH_SIZE]) {
        static const char hex[] = "0123456789abcdef";
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int md_len = 0;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        const unsigned char zero = 0;
        if (!ctx)
                abort(); /* a few bytes: out of memory */
        EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
        EVP_DigestUpdate(ctx, type.ptr, type.len);
        EVP_DigestUpdate(ctx, &zero, 1);
        EVP_DigestUpdate(ctx, body.ptr, body.len);
        EVP_DigestFinal_ex(ctx, md, &md_len);
        EVP_MD_CTX_free(ctx);
        for (unsigned int i = 0; i < md_len && i < 32; i++) {
                out[2 * i] = hex[md[i] >> 4];
                out[2 * i + 1] = hex[md[i] & 15];
        }
        out[64] = '\0';
}

store_err_t oplog_idem_find(store_t *store, const char *idem_id,
                            char hash[OPLOG_HASH_SIZE], char *message_id,
                            size_t id_size, char *errstr, size_t errlen) {
        bson_t filter = BSON_INITIALIZER, doc;
        store_err_t err;
        BSON_APPEND_UTF8(&filter, "_id", idem_id);
        err = store_find_one(store, OPLOG_DB, OPLOG_IDEM_COLL, &filter, NULL,
                             &doc, errstr, errlen);
        bson_destroy(&filter);
        if (err)
                return err;
        oplog__copy_str(&doc, "hash", hash, OPLOG_HASH_SIZE);
        oplog__copy_str(&doc, "message_id", message_id, id_size);
        bson_destroy(&doc);
        if (!hash[0] || !message_id[0]) {
                snprintf(errstr, errlen,
                         "idempotency record without hash or message id");
                return STORE_BAD_REPLY;
        }
        return STORE_OK;
}

store_err_t oplog_idem_record(store_t *store, const char *idem_id,
                              const char *hash, slice_t message_id,
                              int retention_s, char *errstr, size_t errlen) {
        bson_t doc = BSON_INITIALIZER;
        store_err_t err;
        int64_t now = (int64_t)clock_wall_ms();
        BSON_APPEND_UTF8(&doc, "_id", idem_id);
        BSON_APPEND_UTF8(&doc, "hash", hash);
        bson_append_utf8(&doc, "message_id", 10, message_id.ptr,
                         (int)message_id.len);
        BSON_APPEND_DATE_TIME(&doc, "expires_at",
                              now + (int64_t)retention_s * 1000);
        err = store_insert(store, OPLOG_DB, OPLOG_IDEM_COLL, &doc, errstr,
                           errlen);
        bson_destroy(&doc);
        return err == STORE_DUPLICATE ? STORE_OK : err;
}

/* Fill entry from a stored record; STORE_BAD_REPLY (entry empty) when it
 * lacks a valid status or body. */
static store_err_t oplog__entry_from(const bson_t *doc, oplog_entry_t *entry) {
        bson_iter_t it;
        store_err_t err = STORE_BAD_REPLY;
        memset(entry, 0, sizeof(*entry));
        if (bson_iter_init_find(&it, doc, "status") &&
            BSON_ITER_HOLDS_INT32(&it))
                entry->status = bson_iter_int32(&it);
        if (entry->status >= 100 && entry->status <= 599 &&
            bson_iter_init_find(&it, doc, "body") &&
            BSON_ITER_HOLDS_BINARY(&it)) {
                const uint8_t *data;
                uint32_t len;
                bson_iter_binary(&it, NULL, &len, &data);
                entry->body = xmalloc(len ? len : 1);
                memcpy(entry->body, data, len);
                entry->body_len = len;
                err = STORE_OK;
        }
        if (err == STORE_OK && bson_iter_init_find(&it, doc, "events") &&
            BSON_ITER_HOLDS_ARRAY(&it)) {
                const uint8_t *data;
                uint32_t len;
                bson_iter_array(&it, &len, &data);
                entry->events = bson_new_from_data(data, len);
        }
        oplog__copy_str(doc, "tenant", entry->tenant, sizeof(entry->tenant));
        oplog__copy_str(doc, "group", entry->group, sizeof(entry->group));
        oplog__copy_str(doc, "user", entry->user, sizeof(entry->user));
        oplog__copy_str(doc, "content_type", entry->content_type,
                        sizeof(entry->content_type));
        return err;
}

store_err_t oplog_find(store_t *store, slice_t id, oplog_entry_t *entry,
                       char *errstr, size_t errlen) {
        bson_t filter = BSON_INITIALIZER, doc;
        store_err_t err;

        bson_append_utf8(&filter, "_id", 3, id.ptr, (int)id.len);
        err = store_find_one(store, OPLOG_DB, OPLOG_COLL, &filter, NULL, &doc,
                             errstr, errlen);
        bson_destroy(&filter);
        if (err)
                return err;
        err = oplog__entry_from(&doc, entry);
        bson_destroy(&doc);
        if (err && errstr && errlen)
                snprintf(errstr, errlen,
                         "operation record without a valid status or body");
        return err;
}

typedef struct oplog_many {
        oplog_found_fn fn;
        void *arg;
} oplog_many_t;

static bool oplog__each(const bson_t *doc, void *arg) {
        oplog_many_t *m = arg;
        oplog_entry_t entry;
        bson_iter_t it;
        if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_UTF8(&it))
                return true;
        /* A broken record is as good as none: the command runs again. */
        if (oplog__entry_from(doc, &entry) != STORE_OK)
                return true;
        m->fn(bson_iter_utf8(&it, NULL), &entry, m->arg);
        return true;
}

store_err_t oplog_find_many(store_t *store, const slice_t *ids, size_t n,
                            oplog_found_fn fn, void *arg, char *errstr,
                            size_t errlen) {
        bson_t filter = BSON_INITIALIZER, cond, in;
        oplog_many_t m = {fn, arg};
        store_err_t err;
        if (n == 0)
                return STORE_OK;
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &cond);
        BSON_APPEND_ARRAY_BEGIN(&cond, "$in", &in);
        for (size_t i = 0; i < n; i++) {
                char key[16];
                const char *k;
                bson_uint32_to_string((uint32_t)i, &k, key, sizeof(key));
                bson_append_utf8(&in, k, -1, ids[i].ptr, (int)ids[i].len);
        }
        bson_append_array_end(&cond, &in);
        bson_append_document_end(&filter, &cond);
        err = store_find(store, OPLOG_DB, OPLOG_COLL, &filter, NULL,
                         oplog__each, &m, errstr, errlen);
        bson_destroy(&filter);
        return err;
}

void oplog_entry_deinit(oplog_entry_t *entry) {
        if (!entry)
                return;
        free(entry->body);
        entry->body = NULL;
        if (entry->events)
                bson_destroy(entry->events);
        entry->events = NULL;
}

static void oplog__record_doc(const oplog_rec_t *r, int retention_s,
                              int64_t now, bson_t *doc) {
        bson_init(doc);
        bson_append_utf8(doc, "_id", 3, r->id.ptr, (int)r->id.len);
        BSON_APPEND_UTF8(doc, "group", r->group);
        bson_append_utf8(doc, "type", 4, r->type.ptr, (int)r->type.len);
        bson_append_utf8(doc, "tenant", 6, r->tenant.ptr ? r->tenant.ptr : "",
                         (int)r->tenant.len);
        bson_append_utf8(doc, "user", 4, r->user.ptr ? r->user.ptr : "",
                         (int)r->user.len);
        BSON_APPEND_INT32(doc, "status", r->status);
        BSON_APPEND_BINARY(doc, "body", BSON_SUBTYPE_BINARY,
                           (const uint8_t *)r->body.ptr, (uint32_t)r->body.len);
        if (r->events && !bson_empty(r->events))
                BSON_APPEND_ARRAY(doc, "events", r->events);
        if (r->content_type)
                BSON_APPEND_UTF8(doc, "content_type", r->content_type);
        BSON_APPEND_DATE_TIME(doc, "created_at", now);
        BSON_APPEND_DATE_TIME(doc, "expires_at",
                              now + (int64_t)retention_s * 1000);
}

store_err_t oplog_record_many(store_t *store, const oplog_rec_t *recs, size_t n,
                              int retention_s, char *errstr, size_t errlen) {
        store_bulk_t *b;
        store_err_t err;
        int64_t now = (int64_t)clock_wall_ms();
        if (n == 0)
                return STORE_OK;
        /* Unordered: a record that exists already (a redelivery raced its
         * first run) counts as written, and does not stop the others. */
        b = store_bulk_new(store, OPLOG_DB, OPLOG_COLL, false);
        for (size_t i = 0; i < n; i++) {
                bson_t doc;
                oplog__record_doc(&recs[i], retention_s, now, &doc);
                store_bulk_insert(b, &doc);
                bson_destroy(&doc);
        }
        err = store_bulk_run(b, NULL, errstr, errlen);
        store_bulk_destroy(b);
        return err;
}

store_err_t oplog_record(store_t *store, slice_t id, const char *group,
                         slice_t type, slice_t tenant, slice_t user, int status,
                         slice_t body, const bson_t *events, int retention_s,
                         char *errstr, size_t errlen) {
        const oplog_rec_t r = {.id = id,
                               .group = group,
                               .type = type,
                               .tenant = tenant,
                               .user = user,
                               .status = status,
                               .body = body,
                               .events = events};
        bson_t doc;
        store_err_t err;
        oplog__record_doc(&r, retention_s, (int64_t)clock_wall_ms(), &doc);
        err = store_insert(store, OPLOG_DB, OPLOG_COLL, &doc, errstr, errlen);
        bson_destroy(&doc);
        return err == STORE_DUPLICATE ? STORE_OK : err;
}
