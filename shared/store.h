/*
 * store.h - MongoDB through a mongoc client pool.
 *
 * A database per group (cfg->mongo_db_prefix + group) so a group can move to
 * its own database; the runtime's operation log lives in prefix + "ops".
 * Calls block the calling thread (never call them on an HTTP loop thread);
 * they are bounded by short server-selection and socket timeouts so an
 * unreachable store gives STORE_UNAVAILABLE within seconds, not a hang.
 * A watcher thread pings the server every second for store_is_up().
 *
 * Thread-safety: every function may be called from any thread.
 * Errors from mongoc (bson_error_t) are translated to store_err_t here.
 */
#ifndef OMNIFY_STORE_H
#define OMNIFY_STORE_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"

#define STORE_ERRORS(X)                                               \
        X(STORE_OK, "ok")                                             \
        X(STORE_NOT_FOUND, "no such document")                        \
        X(STORE_DUPLICATE, "a document with this key exists")         \
        X(STORE_UNAVAILABLE, "the store is unreachable")              \
        X(STORE_BAD_REPLY, "the store answered something unexpected") \
        X(STORE_ERROR, "store error")

typedef enum store_err {
#define X(name, msg) name,
        STORE_ERRORS(X)
#undef X
} store_err_t;

const char *store_strerror(store_err_t err);

/* Transient errors are worth retrying later; the others are final. */
static inline bool store_err_transient(store_err_t err) {
        return err == STORE_UNAVAILABLE;
}

typedef struct store store_t;

/* Connect lazily (no network here) and start the watcher. NULL + errstr on a
 * bad URI. */
store_t *store_new(const config_t *cfg, const char *app_name, char *errstr,
                   size_t errlen);

/* Stop the watcher and free the pool. NULL ok. */
void store_destroy(store_t *store);

/* The last ping's verdict (refreshed every second). */
bool store_is_up(const store_t *store);

/* Ping now, waiting at most a couple of seconds. */
store_err_t store_ping(store_t *store);

/* Insert doc into db/coll. STORE_DUPLICATE when a unique index says so. */
store_err_t store_insert(store_t *store, const char *db, const char *coll,
                         const bson_t *doc, char *errstr, size_t errlen);

/*
 * Find one document matching filter. On STORE_OK, *out is initialised with a
 * copy the caller must bson_destroy(); on any other result *out is untouched.
 * projection may be NULL.
 */
store_err_t store_find_one(store_t *store, const char *db, const char *coll,
                           const bson_t *filter, const bson_t *projection,
                           bson_t *out, char *errstr, size_t errlen);

/* Called for each document found; return false to stop early. The document
 * is only valid during the call. */
typedef bool (*store_each_fn)(const bson_t *doc, void *arg);

/*
 * Every document matching filter, in the order and number opts says (e.g.
 * {"sort": {"created_at": -1}, "limit": 100}; may be NULL), handed to fn.
 */
store_err_t store_find(store_t *store, const char *db, const char *coll,
                       const bson_t *filter, const bson_t *opts,
                       store_each_fn fn, void *arg, char *errstr,
                       size_t errlen);

/* Update the first document matching filter with update (operators), creating
 * it when upsert is true. STORE_NOT_FOUND when nothing matched and no upsert.
 */
store_err_t store_update_one(store_t *store, const char *db, const char *coll,
                             const bson_t *filter, const bson_t *update,
                             bool upsert, char *errstr, size_t errlen);

/* Flags of store_update and store_delete. */
enum {
        STORE_UPSERT = 1u << 0, /* create the document when none matches */
        STORE_MANY = 1u << 1,   /* every match, not only the first */
};

/* Update (operators or a pipeline) the first, or with STORE_MANY every,
 * document matching filter. *matched (may be NULL) receives how many
 * matched, or 1 for an upsert that created one. STORE_NOT_FOUND when
 * nothing matched and nothing was created. */
store_err_t store_update(store_t *store, const char *db, const char *coll,
                         const bson_t *filter, const bson_t *update,
                         unsigned flags, int64_t *matched, char *errstr,
                         size_t errlen);

/* Delete the first, or with STORE_MANY every, document matching filter.
 * *deleted (may be NULL) receives the count; none deleted is STORE_OK. */
store_err_t store_delete(store_t *store, const char *db, const char *coll,
                         const bson_t *filter, unsigned flags, int64_t *deleted,
                         char *errstr, size_t errlen);

/*
 * Atomically find the first document matching filter in sort order (sort
 * may be NULL), apply update and return it in *out (after the update when
 * return_new, else before). The claim of durable timers and outboxes.
 * STORE_NOT_FOUND when none matches (and upsert is false); *out is then
 * untouched. On STORE_OK the caller bson_destroy()s *out.
 */
store_err_t store_find_and_modify(store_t *store, const char *db,
                                  const char *coll, const bson_t *filter,
                                  const bson_t *sort, const bson_t *update,
                                  bool return_new, bool upsert, bson_t *out,
                                  char *errstr, size_t errlen);

/* How many documents match filter. */
store_err_t store_count(store_t *store, const char *db, const char *coll,
                        const bson_t *filter, int64_t *count, char *errstr,
                        size_t errlen);

/* Run an aggregation pipeline (a bson array of stages), handing each
 * result document to fn as store_find does. */
store_err_t store_aggregate(store_t *store, const char *db, const char *coll,
                            const bson_t *pipeline, store_each_fn fn, void *arg,
                            char *errstr, size_t errlen);

/* Drop a collection; a missing one is STORE_OK. */
store_err_t store_drop(store_t *store, const char *db, const char *coll,
                       char *errstr, size_t errlen);

/* ---------------------------------------------------------------------------
 * Bulk writes: many inserts, upserts, updates and deletes in one round trip
 * per server batch (projections, operation records, replays).
 *
 *   store_bulk_t *b = store_bulk_new(store, "analytics", "daily", false);
 *   store_bulk_update(b, &filter, &update, STORE_UPSERT);   ... many times
 *   err = store_bulk_run(b, &result, errstr, sizeof(errstr));
 *   store_bulk_destroy(b);
 *
 * Unordered bulks (ordered false) go on past a failed write; duplicates of a
 * unique key are then counted in result.duplicates, not reported as an
 * error, so "insert unless present" is one call. A bulk belongs to one
 * thread; the documents are copied.
 * ------------------------------------------------------------------------ */

typedef struct store_bulk store_bulk_t;

typedef struct store_bulk_result {
        int64_t inserted, matched, modified, upserted, deleted;
        int64_t duplicates; /* unordered only: writes refused as duplicates */
} store_bulk_result_t;

store_bulk_t *store_bulk_new(store_t *store, const char *db, const char *coll,
                             bool ordered);
void store_bulk_insert(store_bulk_t *b, const bson_t *doc);
void store_bulk_update(store_bulk_t *b, const bson_t *filter,
                       const bson_t *update, unsigned flags);
void store_bulk_replace(store_bulk_t *b, const bson_t *filter,
                        const bson_t *doc, bool upsert);
void store_bulk_delete(store_bulk_t *b, const bson_t *filter, unsigned flags);
/* How many writes are queued. */
size_t store_bulk_count(const store_bulk_t *b);
/* Send every queued write. Once run, a bulk only takes store_bulk_destroy.
 * An empty bulk is STORE_OK. result may be NULL. */
store_err_t store_bulk_run(store_bulk_t *b, store_bulk_result_t *result,
                           char *errstr, size_t errlen);
/* NULL ok. */
void store_bulk_destroy(store_bulk_t *b);

/*
 * Create an index if missing: keys like {"email": 1}; unique; a TTL index
 * when expire_after_s >= 0 (0: each document's date is its expiry), none
 * when -1. Idempotent.
 */
store_err_t store_ensure_index(store_t *store, const char *db, const char *coll,
                               const char *name, const bson_t *keys,
                               bool unique, int64_t expire_after_s,
                               char *errstr, size_t errlen);

/* One index, as a line of a table: keys lists the fields, comma-separated,
 * each ascending or, after a '-', descending ("user_id,-accepted_at"). */
typedef struct store_index {
        const char *coll;
        const char *name;
        const char *keys;
        bool unique;
        int64_t expire_after_s; /* as for store_ensure_index */
} store_index_t;

/* store_ensure_index for each index of db, in order, up to the entry whose
 * coll is NULL; stops at the first error. The tables are ours: a malformed
 * keys string is a bug and asserts. */
store_err_t store_ensure_indexes(store_t *store, const char *db,
                                 const store_index_t *indexes, char *errstr,
                                 size_t errlen);

#endif
