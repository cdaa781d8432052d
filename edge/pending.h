/*
 * pending.h - requests waiting for Kafka: a hash table keyed by message id.
 *
 * An entry is embedded in the request it belongs to. Exactly one of the
 * delivery thread (broker said yes or no), the reply thread (the reply came)
 * and the sweeper (the deadline passed) takes an entry out; whoever takes it
 * owns completing the request. Taking is atomic under the table's lock, so
 * a late reply or report finds nothing and does nothing.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef OMNIFY_PENDING_H
#define OMNIFY_PENDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msgid.h"

typedef struct pending_entry {
        struct pending_entry *next; /* bucket chain; owned by the table */
        msgid_t id;
        uint64_t deadline_ms; /* clock_mono_ms() */
        bool async;           /* completes on delivery, not on reply */
        void *owner;          /* the request */
} pending_entry_t;

typedef struct pending pending_t;

/* A table sized for about `expected` entries at once. */
pending_t *pending_new(size_t expected);
void pending_destroy(pending_t *p);

void pending_add(pending_t *p, pending_entry_t *e);

/* Remove and return the entry of id, or NULL. */
pending_entry_t *pending_take(pending_t *p, const msgid_t *id);

/* A delivery report: on failure take the entry; on success take it only if
 * it is async (a sync one waits on for its reply). */
pending_entry_t *pending_take_delivered(pending_t *p, const msgid_t *id,
                                        bool delivered);

/* Remove up to max entries whose deadline is <= now into out. */
size_t pending_take_expired(pending_t *p, uint64_t now, pending_entry_t **out,
                            size_t max);

/* Remove up to max entries, whatever their deadline (shutdown). */
size_t pending_take_all(pending_t *p, pending_entry_t **out, size_t max);

size_t pending_count(pending_t *p);

#endif
