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
        char *body;       /* msgpack bytes, owned; free() */
        size_t body_len;
        char tenant[64];  /* "" when the command had no tenant */
        char group[32];
} oplog_entry_t;

/* Create the TTL index. Idempotent. */
store_err_t oplog_init(store_t *store, char *errstr, size_t errlen);

/* The record of message id, or STORE_NOT_FOUND. On STORE_OK the caller frees
 * entry->body. */
store_err_t oplog_find(store_t *store, slice_t id, oplog_entry_t *entry,
                       char *errstr, size_t errlen);

/* Write the record. A record that already exists counts as written. */
store_err_t oplog_record(store_t *store, slice_t id, const char *group,
                         slice_t type, slice_t tenant, int status, slice_t body,
                         int retention_s, char *errstr, size_t errlen);

#endif
