/*
 * lww.h - a buffer of last-writer-wins writes to a collection, flushed as
 * bulk upserts that are atomic, commutative and idempotent.
 *
 * A projection built from events must end in the same state whatever order
 * and however often the events arrive (redeliveries, replays, two writers
 * during a swap). Here each fact is a register whose value is a text that
 * sorts by the version of the fact first ("<observed ms, 16 digits>|<event
 * id>|values..."), written with $max: the store keeps the greatest, so the
 * newest version wins, an older or repeated one changes nothing, and no
 * read-modify-write is needed (no race between writers, one round trip).
 * A document holds many registers (one per campaign of an account's day,
 * say) under "<map>.<key>" paths, which keeps the number of documents, and
 * so the store's work, low. $min registers (first day seen) and $set fields
 * (a document's constant identity: tenant, day...) complete it.
 *
 * The buffer folds writes in memory first: per document and path only the
 * greatest (least) value is kept, so many events of one fact cost one
 * write. lww_flush sends one upsert per document (filter {_id}: the store's
 * primary index), in bulks.
 *
 * Field paths: map names and keys are ours ([A-Za-z0-9_]), never input
 * (hash input into keys). Not thread-safe: one buffer per thread.
 */
#ifndef OMNIFY_LWW_H
#define OMNIFY_LWW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "slice.h"
#include "store.h"

typedef struct lww lww_t;

lww_t *lww_new(void);

/* NULL ok. */
void lww_destroy(lww_t *b);

/* The document's constant field (the same on every write of it). */
void lww_set(lww_t *b, slice_t id, const char *path, slice_t value);

/* path := value when value is greater (lww_max) or less (lww_min) than
 * what the store holds, compared as strings by bytes. */
void lww_max(lww_t *b, slice_t id, const char *path, slice_t value);
void lww_min(lww_t *b, slice_t id, const char *path, slice_t value);

/* Whether the buffer holds a document of this id (a fold skips writing
 * its constant fields again). */
bool lww_holds(const lww_t *b, slice_t id);

/* Documents held, and about how many bytes they take. */
size_t lww_docs(const lww_t *b);
size_t lww_bytes(const lww_t *b);

/* Upsert every document held into db.coll, in bulks of at most
 * docs_per_bulk (0: 200), then empty the buffer. On an error the buffer
 * keeps everything for a later try (writing again what the store took
 * changes nothing). */
store_err_t lww_flush(lww_t *b, store_t *store, const char *db,
                      const char *coll, size_t docs_per_bulk, char *errstr,
                      size_t errlen);

/*
 * The same for a collection known to hold none of these documents yet (a
 * replay's fresh version): documents this buffer never wrote before go as
 * whole inserts, which cost the store far less than upserts; the others as
 * upserts. Should an insert meet an existing document after all, that bulk
 * is sent again as upserts, so the result is the same either way.
 */
store_err_t lww_flush_new(lww_t *b, store_t *store, const char *db,
                          const char *coll, size_t docs_per_bulk, char *errstr,
                          size_t errlen);

/* Drop everything held. */
void lww_clear(lww_t *b);

/* Call fn for every register held (tests and in-memory folds). */
typedef void (*lww_each_fn)(slice_t id, const char *path, slice_t value,
                            void *arg);
void lww_each(const lww_t *b, lww_each_fn fn, void *arg);

#endif
