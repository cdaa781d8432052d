/*
 * projection.h - versioned projections: the collections a group builds from
 * events, in versions a replay can rebuild beside the live one and swap in
 * atomically.
 *
 * A projection is a named set of collections (base names) built by one
 * piece of code (its code_version). Each build of it is a version N whose
 * collections are "<base>_v<N>". One pointer document per group database
 * (<db>.projections, _id "pointer") says, for every projection, which
 * version is active, which tenants have a version of their own (a
 * per-tenant replay), which versions are being built (and by which replay)
 * and which are retired (to be dropped after a grace). Readers and writers
 * load the pointer once per request or batch (projection_snapshot_load) and
 * use the versions it names for all their reads and writes, so a request
 * never sees two versions of one projection. Every change of the pointer is
 * one compare-and-set of the whole document on its revision: a swap is one
 * atomic write.
 *
 * Pointer document:
 *   {_id: "pointer", rev, next_version,
 *    p: {<name>: {active, code, since_ms,
 *                 tenants: [{tenant, version, code}]}},
 *    building: [{name, version, code, replay_id, tenant, scratch}],
 *    retired: [{name, version, tenant, drop_after_ms}]}
 * A retired entry with a tenant deletes only that tenant's documents from
 * the version (a per-tenant swap moved the tenant out of a shared version);
 * without one the version's collections are dropped.
 *
 * Digests: projection_digest hashes every document of a version (each
 * canonicalised: keys sorted at every level, so the order in which writes
 * created fields does not matter) into an order-independent sum per
 * collection, for `omnify replay verify`.
 *
 * Blocking store calls: never on an HTTP loop thread. Thread-safety: every
 * function may be called from any thread; a snapshot is immutable.
 */
#ifndef OMNIFY_PROJECTION_H
#define OMNIFY_PROJECTION_H

#include <stdbool.h>
#include <stdint.h>

#include "slice.h"
#include "store.h"

#define PROJECTION_ERRORS(X)                                             \
        X(PROJECTION_OK, "ok")                                           \
        X(PROJECTION_STORE, "the store failed")                          \
        X(PROJECTION_BUSY, "another replay is building this projection") \
        X(PROJECTION_CONFLICT, "the pointer document changed meanwhile") \
        X(PROJECTION_UNKNOWN, "no such projection or version")           \
        X(PROJECTION_BAD_POINTER, "the pointer document is malformed")

typedef enum projection_err {
#define X(name, msg) name,
        PROJECTION_ERRORS(X)
#undef X
} projection_err_t;

const char *projection_strerror(projection_err_t err);

#define PROJECTION_POINTER_COLL "projections"
#define PROJECTION_NAME_MAX 48
#define PROJECTION_TENANT_MAX 128
#define PROJECTION_COLL_MAX 120 /* "<base>_v<N>" */

typedef struct projection_def {
        const char *name;               /* [a-z0-9_], at most NAME_MAX */
        int code_version;               /* >= 1; bump when what it writes
                                           changes */
        const char *const *collections; /* base names, NULL-terminated */
        /* Indexes of every version (coll = a base name), up to the entry
         * whose coll is NULL; may be NULL. */
        const store_index_t *indexes;
        const char *tenant_field; /* the field naming a document's tenant */
        /* The event types it folds: exact types or "prefix.*",
         * NULL-terminated. */
        const char *const *types;
} projection_def_t;

/* True when type is one of def->types. */
bool projection_wants(const projection_def_t *def, slice_t type);

/* "<base>_v<version>" into buf (PROJECTION_COLL_MAX bytes suffice). */
void projection_coll(const char *base, int64_t version, char *buf, size_t size);

/* ---------------------------------------------------------------------------
 * Snapshots of the pointer document
 * ------------------------------------------------------------------------ */

typedef struct projection_snapshot projection_snapshot_t;

/*
 * Read the pointer document of db; when it is missing, or lacks one of
 * defs[0..n), create it (or add the projection) with a first version of
 * each, whose indexes are made. *out: a snapshot to free.
 */
projection_err_t projection_snapshot_load(store_t *store, const char *db,
                                          const projection_def_t *const *defs,
                                          size_t n, projection_snapshot_t **out,
                                          char *errstr, size_t errlen);

/* NULL ok. */
void projection_snapshot_free(projection_snapshot_t *s);

/* The version of projection name that tenant reads and writes: its own
 * (after a per-tenant replay) or the active one. 0 when unknown. */
int64_t projection_version(const projection_snapshot_t *s, const char *name,
                           slice_t tenant);

/* The active (shared) version and the code version that built it; 0 when
 * unknown. */
int64_t projection_active(const projection_snapshot_t *s, const char *name,
                          int *code_version);

/* The snapshot's revision (bumped by every change of the pointer). */
int64_t projection_rev(const projection_snapshot_t *s);

/*
 * Log a warning for every projection of defs whose active version (or a
 * tenant's own) was built by an older code version than defs', naming the
 * command that rebuilds it (command: e.g. "omnify replay analytics"), and
 * for versions being built. Returns how many are behind.
 */
size_t projection_check(const projection_snapshot_t *s,
                        const projection_def_t *const *defs, size_t n,
                        const char *command);

/* The pointer document as JSON (for `omnify replay status`); caller frees
 * with bson_free. */
char *projection_describe(const projection_snapshot_t *s);

/* ---------------------------------------------------------------------------
 * Building, swapping, retiring (the replay driver's side)
 * ------------------------------------------------------------------------ */

/*
 * Reserve a new version of def for replay_id (tenant: empty for every
 * tenant) and make its indexes. PROJECTION_BUSY (naming the other replay in
 * errstr) when another replay builds def to swap it in. A version already
 * reserved by replay_id is returned again (resuming). A scratch reservation
 * (a verifying build, never swapped) neither waits for others nor holds
 * them back.
 */
projection_err_t projection_reserve(store_t *store, const char *db,
                                    const projection_def_t *def,
                                    const char *replay_id, slice_t tenant,
                                    bool scratch, int64_t *version,
                                    char *errstr, size_t errlen);

/*
 * Make every version replay_id built active, in one write: for a full
 * build, the active version (and every tenant's own) is retired; for a
 * tenant's, the tenant's previous version (its documents in the shared one,
 * or its own version). Retired versions may be dropped grace_ms later.
 */
projection_err_t projection_swap(store_t *store, const char *db,
                                 const char *replay_id, int64_t grace_ms,
                                 char *errstr, size_t errlen);

/* Forget the versions replay_id was building and drop their collections
 * (an aborted or verifying replay). */
projection_err_t projection_abandon(store_t *store, const char *db,
                                    const projection_def_t *const *defs,
                                    size_t n, const char *replay_id,
                                    char *errstr, size_t errlen);

/* Drop (or, for a tenant, empty of that tenant) every retired version whose
 * grace has passed at now_ms; *dropped (may be NULL) counts them. */
projection_err_t projection_gc(store_t *store, const char *db,
                               const projection_def_t *const *defs, size_t n,
                               int64_t now_ms, size_t *dropped, char *errstr,
                               size_t errlen);

/* Drop every collection of version (when tenant is empty) or delete the
 * tenant's documents from them. */
store_err_t projection_drop_version(store_t *store, const char *db,
                                    const projection_def_t *def,
                                    int64_t version, slice_t tenant,
                                    char *errstr, size_t errlen);

/* The replay that builds projection name, or "" (into id, size bytes). */
void projection_builder(const projection_snapshot_t *s, const char *name,
                        char *id, size_t size);

/* ---------------------------------------------------------------------------
 * Copies and digests
 * ------------------------------------------------------------------------ */

/* Copy the documents of version from (only tenant's when tenant is given)
 * into version to, in bulks. */
store_err_t projection_copy(store_t *store, const char *db,
                            const projection_def_t *def, int64_t from,
                            int64_t to, slice_t tenant, char *errstr,
                            size_t errlen);

#define PROJECTION_DIGEST_HEX 65

typedef struct projection_digest {
        char collection[PROJECTION_COLL_MAX]; /* the base name */
        int64_t documents;
        char hex[PROJECTION_DIGEST_HEX]; /* sum of the documents' sha256 */
} projection_digest_t;

/* One digest per collection of def (out has room for every base name),
 * over version's documents (only tenant's when given). *n receives the
 * count. */
store_err_t projection_digest(store_t *store, const char *db,
                              const projection_def_t *def, int64_t version,
                              slice_t tenant, projection_digest_t *out,
                              size_t *n, char *errstr, size_t errlen);

/* The sha256 of a document with its keys sorted at every level (hex). */
void projection_doc_hash(const bson_t *doc, unsigned char out[32]);

#endif
