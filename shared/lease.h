/*
 * lease.h - claiming due records of a collection with a lease.
 *
 * Durable work (outbox sends, timer firings) sits in the store as records
 * with a due time, lease_until (a date) and lease_owner (a string). A
 * worker claims due records by setting both lease fields in one update
 * whose filter still requires the lease to be free, so of several workers
 * (threads or processes) racing for a record exactly one wins it; a worker
 * that dies leaves a lease that simply runs out, and the record is claimed
 * again. Whatever the worker later writes about a record goes through
 * lease_update, which applies only while its lease is still held.
 *
 * A claim is three round trips whatever the batch size: the due ids
 * (earliest first, through the (filter fields, time field) index the caller
 * creates), one update of them all, and a read of those this claim won.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef OMNIFY_LEASE_H
#define OMNIFY_LEASE_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

#include "msgid.h"
#include "slice.h"
#include "store.h"

#define LEASE_OWNER_SIZE MSGID_TEXT_SIZE

typedef struct lease_query {
        const char *db;   /* the group's database (the store prefixes it) */
        const char *coll; /* the collection of records */
        /* Which records may be claimed at all, e.g. {status: "armed"}; the
         * due time and the free lease are added here, so it names none of
         * _id, lease_until, lease_owner and time_field. May be NULL. */
        const bson_t *filter;
        const char *time_field; /* a date: due once it is <= now; the order */
        int limit;              /* records per claim, >= 1 */
        int64_t lease_ms;       /* how long a claim holds */
        /* Claim records due up to this many ms ahead too (0: only those
         * due now): a worker may take them early and act at their time. */
        int64_t horizon_ms;
} lease_query_t;

/* Called for each claimed record, as it is after the claim; the document
 * is valid only during the call. Return false to stop early (the records
 * not handed over stay leased until their lease runs out). */
typedef bool (*lease_each_fn)(const bson_t *doc, void *arg);

/*
 * Claim up to q->limit records due at now_ms (+ q->horizon_ms). owner
 * receives this claim's token (lease_update needs it). *next_ms (may be
 * NULL) receives the due time of the earliest free record not yet due
 * (beyond the horizon; INT64_MAX: none known), so
 * that the caller may sleep until then; *claimed (may be NULL) how many were
 * won. fn may be NULL (a claim that only counts: tests).
 */
store_err_t lease_claim(store_t *store, const lease_query_t *q, int64_t now_ms,
                        char owner[LEASE_OWNER_SIZE], lease_each_fn fn,
                        void *arg, int *claimed, int64_t *next_ms, char *errstr,
                        size_t errlen);

/* Apply update (operators) to record id if owner still holds its lease.
 * STORE_NOT_FOUND when the lease was lost (run out and taken, or the
 * record was replaced or removed). */
store_err_t lease_update(store_t *store, const char *db, const char *coll,
                         const char *id, const char *owner,
                         const bson_t *update, char *errstr, size_t errlen);

/* The same for n records in one round trip; *held (may be NULL) receives
 * how many were still held (and so updated). */
store_err_t lease_update_many(store_t *store, const char *db, const char *coll,
                              const char *const *ids, size_t n,
                              const char *owner, const bson_t *update,
                              int64_t *held, char *errstr, size_t errlen);

/* Append {lease_until: 0, lease_owner: ""} to a $set document: the record
 * is free again (a "release"). */
void lease_append_free(bson_t *set);

/* A name of a database, collection, group or kind: 1 to max - 1 bytes of
 * [a-z0-9._-]. */
bool lease_name_ok(const char *s, size_t max);

/* A record id: 1 to max printable ASCII bytes, no spaces. */
bool lease_id_ok(const char *id, size_t max);

/* ---------------------------------------------------------------------------
 * Reading a claimed record: the value at key, or a default when it is
 * missing or of another type (records come from the store: never assume).
 * ------------------------------------------------------------------------ */

/* A UTF-8 string (NULL when absent). */
const char *lease_doc_str(const bson_t *doc, const char *key);

/* An int32, int64 or double as int64. */
int64_t lease_doc_int(const bson_t *doc, const char *key, int64_t def);

/* A date as Unix ms (0 when absent). */
int64_t lease_doc_date(const bson_t *doc, const char *key);

/* Binary data as a slice into doc (empty when absent). */
slice_t lease_doc_bin(const bson_t *doc, const char *key);

#endif
