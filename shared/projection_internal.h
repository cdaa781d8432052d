/*
 * projection_internal.h - what the files of the projections share (not part
 * of the contract: callers use projection.h). projection.c holds the
 * pointer document, its compare-and-set changes and the snapshots;
 * projection_build.c reserves, swaps, abandons and retires versions.
 */
#ifndef OMNIFY_PROJECTION_INTERNAL_H
#define OMNIFY_PROJECTION_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "projection.h"

/* The pointer document in memory. */

typedef struct ptenant {
        char tenant[PROJECTION_TENANT_MAX];
        int64_t version;
        int code;
} ptenant_t;

typedef struct pentry {
        char name[PROJECTION_NAME_MAX];
        int64_t active;
        int code;
        int64_t since_ms;
        ptenant_t *tenants;
        size_t n_tenants;
} pentry_t;

typedef struct pbuild {
        char name[PROJECTION_NAME_MAX];
        int64_t version;
        int code;
        char replay_id[64];
        char tenant[PROJECTION_TENANT_MAX];
        bool scratch; /* a verifying build: never swapped */
} pbuild_t;

typedef struct pretired {
        char name[PROJECTION_NAME_MAX];
        int64_t version;
        char tenant[PROJECTION_TENANT_MAX];
        int64_t drop_after_ms;
} pretired_t;

struct projection_snapshot {
        int64_t rev;
        int64_t next_version;
        pentry_t *p;
        size_t n_p;
        pbuild_t *building;
        size_t n_building;
        pretired_t *retired;
        size_t n_retired;
};

/* The entry of projection name in s, or NULL. */
pentry_t *projection__entry(const projection_snapshot_t *s, const char *name);

/* Read the pointer; *s is NULL when there is none. */
projection_err_t projection__read(store_t *store, const char *db,
                                  projection_snapshot_t **s, char *errstr,
                                  size_t errlen);

/* Make the indexes def declares on the collections of its version. */
store_err_t projection__indexes(store_t *store, const char *db,
                                const projection_def_t *def, int64_t version,
                                char *errstr, size_t errlen);

/* A change of the pointer: fn edits a fresh read of it (returning false
 * when there is nothing to do, or an error in *perr), which is then written
 * with a compare-and-set, again from a fresh read if another writer won. */
typedef bool (*pointer_edit_fn)(projection_snapshot_t *s, void *arg,
                                projection_err_t *perr, char *errstr,
                                size_t errlen);

projection_err_t projection__change(store_t *store, const char *db,
                                    pointer_edit_fn fn, void *arg, char *errstr,
                                    size_t errlen);

#endif
