/*
 * cmdsend.h - commands a group sends to itself: a fired timer, an outbox
 * call's outcome.
 *
 * They go onto the group's own commands topic (<prefix><group>.commands)
 * like any client's command, so the group's handlers take them with every
 * guarantee of the runtime (schema check, operation log, retries, DLQ).
 * Their message ids are derived from what they stand for (a timer's firing,
 * an outbox record's outcome), so a command produced twice (a worker died
 * between the broker's ack and its store write) has one id, and the
 * operation log answers the second instead of running it. The headers carry
 * the tenant, user and roles recorded when the work was set up: the command
 * runs with its setter's rights, never more.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef OMNIFY_CMDSEND_H
#define OMNIFY_CMDSEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "envelope.h"
#include "msgid.h"
#include "slice.h"

#define CMDSEND_TYPE_MAX 128
#define CMDSEND_CALLER_MAX 256 /* tenant, user and roles, each */

/* On whose behalf a command runs: copied from the command that set the
 * work up (rt_env). Empty slices: none. */
typedef struct cmd_caller {
        slice_t tenant;
        slice_t user;
        slice_t roles;
        slice_t correlation_id; /* a UUID, or empty */
} cmd_caller_t;

/* The caller of a command being handled (rt_env(ctx)): its tenant, user
 * and roles, and as correlation id its own correlation id, or its id when
 * it has none, so the later command is traced to the request that set it
 * up. Points into env. */
cmd_caller_t cmdsend_caller(const env_t *env);

typedef struct cmdsend_msg {
        char id[MSGID_TEXT_SIZE]; /* cmdsend_derive_id */
        const char *type;         /* a message type of the group */
        int version;              /* its schema version, >= 1 */
        slice_t key;              /* the record key (order per key) */
        slice_t body;             /* exactly one msgpack map */
        cmd_caller_t caller;
        int64_t created_at_ms;
} cmdsend_msg_t;

/*
 * The id of the n-th action of `name` in namespace ns: a UUIDv7 whose time
 * is at_ms (the action's own due time, so ids sort by it) and whose other
 * bits are SHA-256 of (ns, name, n). The same inputs give the same id.
 */
void cmdsend_derive_id(int64_t at_ms, const char *ns, const char *name,
                       int64_t n, char out[MSGID_TEXT_SIZE]);

/* Check what a message would carry: type (lowercase letters, digits, '.'
 * and '_'), version, body (one msgpack map) and caller (lengths, a UUID
 * correlation id). false with a reason in errstr. */
bool cmdsend_check(const char *type, int version, slice_t body,
                   const cmd_caller_t *caller, char *errstr, size_t errlen);

/* Produce m onto topic; d (may be NULL) hears of the broker's ack as in
 * bus_produce. */
bus_err_t cmdsend_produce(bus_t *bus, const char *topic, const cmdsend_msg_t *m,
                          bus_delivery_t *d);

/* ---------------------------------------------------------------------------
 * A batch: produce n messages, wait until the broker answered for each.
 * ------------------------------------------------------------------------ */

typedef struct cmdsend_batch cmdsend_batch_t;

cmdsend_batch_t *cmdsend_batch_new(size_t n);

/* Produce message i (0 <= i < n, each once). */
void cmdsend_batch_produce(cmdsend_batch_t *b, size_t i, bus_t *bus,
                           const char *topic, const cmdsend_msg_t *m);

/* Wait until every produced message was acknowledged or refused (bounded
 * by the producer's message timeout). */
void cmdsend_batch_wait(cmdsend_batch_t *b);

/* How message i ended (after wait); BUS_ERROR for one never produced. */
bus_err_t cmdsend_batch_result(const cmdsend_batch_t *b, size_t i);

/* Waits for outstanding reports first. NULL ok. */
void cmdsend_batch_destroy(cmdsend_batch_t *b);

#endif
