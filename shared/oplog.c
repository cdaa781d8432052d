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

store_err_t oplog_find(store_t *store, slice_t id, oplog_entry_t *entry,
                       char *errstr, size_t errlen) {
        bson_t filter = BSON_INITIALIZER, doc;
        bson_iter_t it;
        store_err_t err;

        bson_append_utf8(&filter, "_id", 3, id.ptr, (int)id.len);
        err = store_find_one(store, OPLOG_DB, OPLOG_COLL, &filter, NULL, &doc,
                             errstr, errlen);
        bson_destroy(&filter);
        if (err)
                return err;
        memset(entry, 0, sizeof(*entry));
        err = STORE_BAD_REPLY;
        if (bson_iter_init_find(&it, &doc, "status") &&
            BSON_ITER_HOLDS_INT32(&it))
                entry->status = bson_iter_int32(&it);
        if (entry->status >= 100 && entry->status <= 599 &&
            bson_iter_init_find(&it, &doc, "body") &&
            BSON_ITER_HOLDS_BINARY(&it)) {
                const uint8_t *data;
                uint32_t len;
                bson_iter_binary(&it, NULL, &len, &data);
                entry->body = xmalloc(len ? len : 1);
                memcpy(entry->body, data, len);
                entry->body_len = len;
                err = STORE_OK;
        }
        if (err == STORE_OK && bson_iter_init_find(&it, &doc, "events") &&
            BSON_ITER_HOLDS_ARRAY(&it)) {
                const uint8_t *data;
                uint32_t len;
                bson_iter_array(&it, &len, &data);
                entry->events = bson_new_from_data(data, len);
        }
        oplog__copy_str(&doc, "tenant", entry->tenant, sizeof(entry->tenant));
        oplog__copy_str(&doc, "group", entry->group, sizeof(entry->group));
        oplog__copy_str(&doc, "user", entry->user, sizeof(entry->user));
        bson_destroy(&doc);
        if (err && errstr && errlen)
                snprintf(errstr, errlen,
                         "operation record without a valid status or body");
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

store_err_t oplog_record(store_t *store, slice_t id, const char *group,
                         slice_t type, slice_t tenant, slice_t user, int status,
                         slice_t body, const bson_t *events, int retention_s,
                         char *errstr, size_t errlen) {
        bson_t doc = BSON_INITIALIZER;
        store_err_t err;
        int64_t now = (int64_t)clock_wall_ms();

        bson_append_utf8(&doc, "_id", 3, id.ptr, (int)id.len);
        BSON_APPEND_UTF8(&doc, "group", group);
        bson_append_utf8(&doc, "type", 4, type.ptr, (int)type.len);
        bson_append_utf8(&doc, "tenant", 6, tenant.ptr ? tenant.ptr : "",
                         (int)tenant.len);
        bson_append_utf8(&doc, "user", 4, user.ptr ? user.ptr : "",
                         (int)user.len);
        BSON_APPEND_INT32(&doc, "status", status);
        BSON_APPEND_BINARY(&doc, "body", BSON_SUBTYPE_BINARY,
                           (const uint8_t *)body.ptr, (uint32_t)body.len);
        if (events && !bson_empty(events))
                BSON_APPEND_ARRAY(&doc, "events", events);
        BSON_APPEND_DATE_TIME(&doc, "created_at", now);
        BSON_APPEND_DATE_TIME(&doc, "expires_at",
                              now + (int64_t)retention_s * 1000);
        err = store_insert(store, OPLOG_DB, OPLOG_COLL, &doc, errstr, errlen);
        bson_destroy(&doc);
        return err == STORE_DUPLICATE ? STORE_OK : err;
}
