/*
 * oplog.h - the operation log: one record per handled command.
 *
 * <prefix>ops.operations holds {_id: message id, group, type, tenant, status,
 * body (msgpack bytes), created_at, expires_at}, with a TTL index on
 * expires_at. The runtime writes a record when it finishes a command and
 * reads it first so a redelivered command is answered, not redone; the edge
 * reads it for GET /api/operations/{id}. Blocking calls: never on an HTTP loop
 * thread.
 */
#ifndef OMNIFY_OPLOG_H
#define OMNIFY_OPLOG_H

#include <stddef.h>
#include <stdint.h>

#include "slice.h"
#include "store.h"

typedef struct oplog_entry {
        int status;
        char *body; /* msgpack bytes, owned; free() */
        size_t body_len;
        char tenant[64]; /* "" when the command had no tenant */
        char user[64];   /* "" when it had no user */
        char group[32];
        char content_type[64]; /* "" : msgpack */
        bson_t *events;        /* the events it published, or NULL:
                                * [{id, type, key, body}] */
} oplog_entry_t;

/* Create the TTL index. Idempotent. */
store_err_t oplog_init(store_t *store, char *errstr, size_t errlen);

/* The record of message id, or STORE_NOT_FOUND. On STORE_OK the caller
 * frees entry->body and entry->events (oplog_entry_deinit). */
store_err_t oplog_find(store_t *store, slice_t id, oplog_entry_t *entry,
                       char *errstr, size_t errlen);

void oplog_entry_deinit(oplog_entry_t *entry);

/* Called by oplog_find_many for each record found; takes ownership of
 * entry (oplog_entry_deinit). id is valid during the call only. */
typedef void (*oplog_found_fn)(const char *id, oplog_entry_t *entry, void *arg);

/* The records of every id of ids that has one, in one round trip ($in);
 * ids without a record are simply not reported. */
store_err_t oplog_find_many(store_t *store, const slice_t *ids, size_t n,
                            oplog_found_fn fn, void *arg, char *errstr,
                            size_t errlen);

/* Write the record, with the events the command published (a bson array of
 * {id, type, key, body}; may be NULL) so a redelivery can publish them again
 * with the same ids. A record that already exists counts as written. */
store_err_t oplog_record(store_t *store, slice_t id, const char *group,
                         slice_t type, slice_t tenant, slice_t user, int status,
                         slice_t body, const bson_t *events, int retention_s,
                         char *errstr, size_t errlen);

/* One record of oplog_record_many; see oplog_record for the fields. */
typedef struct oplog_rec {
        slice_t id;
        const char *group;
        slice_t type, tenant, user;
        int status;
        slice_t body;
        const bson_t *events;     /* may be NULL */
        const char *content_type; /* NULL: msgpack */
} oplog_rec_t;

/* Write n records in one bulk; records that exist already count as
 * written. */
store_err_t oplog_record_many(store_t *store, const oplog_rec_t *recs, size_t n,
                              int retention_s, char *errstr, size_t errlen);

/* ---------------------------------------------------------------------------
 * Idempotency keys: <prefix>ops.idempotency holds {_id: "<group>|<tenant>|
 * <key>", hash: sha256 of type and body, message_id: the first command's id,
 * expires_at}. A later command with the same key and hash is answered with
 * the first one's result; with another hash it is refused (422).
 * ------------------------------------------------------------------------ */

#define OPLOG_HASH_SIZE 65 /* hex sha256 + NUL */

/* Hex sha256 of type, a zero byte, and body. */
void oplog_request_hash(slice_t type, slice_t body, char out[OPLOG_HASH_SIZE]);

/* The first command of idem_id: its hash and message id, or STORE_NOT_FOUND. */
store_err_t oplog_idem_find(store_t *store, const char *idem_id,
                            char hash[OPLOG_HASH_SIZE], char *message_id,
                            size_t id_size, char *errstr, size_t errlen);

/* Remember that idem_id was first used by message_id. An existing record
 * stays (the first use wins). */
store_err_t oplog_idem_record(store_t *store, const char *idem_id,
                              const char *hash, slice_t message_id,
                              int retention_s, char *errstr, size_t errlen);

#endif
