/*
 * projection_build.c - a projection's versions change hands: a build is
 * reserved in the pointer, swapped in (or abandoned), and what it replaced is
 * retired and later dropped by the janitor (see projection.h; the pointer
 * document and its compare-and-set changes are projection.c).
 */
#include "projection.h"
#include "projection_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "msgid.h"

static projection_err_t pointer__store_err(store_err_t err) {
        return err == STORE_OK ? PROJECTION_OK : PROJECTION_STORE;
}

typedef struct reserve_arg {
        const projection_def_t *def;
        const char *replay_id;
        slice_t tenant;
        bool scratch;
        int64_t version;
} reserve_arg_t;

static bool pointer__reserve(projection_snapshot_t *s, void *arg,
                             projection_err_t *perr, char *errstr,
                             size_t errlen) {
        reserve_arg_t *a = arg;
        pbuild_t *b;
        if (!projection__entry(s, a->def->name)) {
                snprintf(errstr, errlen, "projection %s is not in the pointer",
                         a->def->name);
                *perr = PROJECTION_UNKNOWN;
                return false;
        }
        for (size_t i = 0; i < s->n_building; i++) {
                b = &s->building[i];
                if (strcmp(b->name, a->def->name) != 0)
                        continue;
                if (strcmp(b->replay_id, a->replay_id) == 0) {
                        a->version = b->version; /* resuming */
                        return false;
                }
                if (a->scratch || b->scratch)
                        continue;
                snprintf(errstr, errlen,
                         "replay %s is building projection %s (v%" PRId64
                         "); resume it, or abort it first",
                         b->replay_id, b->name, b->version);
                *perr = PROJECTION_BUSY;
                return false;
        }
        s->building = xrealloc(s->building,
                               (s->n_building + 1) * sizeof(*s->building));
        b = &s->building[s->n_building++];
        memset(b, 0, sizeof(*b));
        snprintf(b->name, sizeof(b->name), "%s", a->def->name);
        b->version = a->version = s->next_version++;
        b->code = a->def->code_version;
        snprintf(b->replay_id, sizeof(b->replay_id), "%s", a->replay_id);
        snprintf(b->tenant, sizeof(b->tenant), "%.*s", (int)a->tenant.len,
                 a->tenant.ptr ? a->tenant.ptr : "");
        b->scratch = a->scratch;
        return true;
}

projection_err_t projection_reserve(store_t *store, const char *db,
                                    const projection_def_t *def,
                                    const char *replay_id, slice_t tenant,
                                    bool scratch, int64_t *version,
                                    char *errstr, size_t errlen) {
        reserve_arg_t a = {def, replay_id, tenant, scratch, 0};
        projection_err_t err;
        if (tenant.len >= PROJECTION_TENANT_MAX) {
                snprintf(errstr, errlen, "tenant id too long");
                return PROJECTION_UNKNOWN;
        }
        err = projection__change(store, db, pointer__reserve, &a, errstr,
                                 errlen);
        if (err != PROJECTION_OK)
                return err;
        *version = a.version;
        return projection__indexes(store, db, def, a.version, errstr, errlen) ==
                               STORE_OK
                       ? PROJECTION_OK
                       : PROJECTION_STORE;
}

static void pointer__retire(projection_snapshot_t *s, const char *name,
                            int64_t version, const char *tenant,
                            int64_t drop_after_ms) {
        pretired_t *r;
        if (version <= 0)
                return;
        s->retired =
                xrealloc(s->retired, (s->n_retired + 1) * sizeof(*s->retired));
        r = &s->retired[s->n_retired++];
        memset(r, 0, sizeof(*r));
        snprintf(r->name, sizeof(r->name), "%s", name);
        r->version = version;
        snprintf(r->tenant, sizeof(r->tenant), "%s", tenant ? tenant : "");
        r->drop_after_ms = drop_after_ms;
}

typedef struct swap_arg {
        const char *replay_id;
        int64_t grace_ms;
} swap_arg_t;

/* Tenant t gets version v of e; what it read before is retired. */
static void pointer__swap_tenant(projection_snapshot_t *s, pentry_t *e,
                                 const pbuild_t *b, int64_t drop_after) {
        for (size_t t = 0; t < e->n_tenants; t++) {
                if (strcmp(e->tenants[t].tenant, b->tenant) != 0)
                        continue;
                pointer__retire(s, e->name, e->tenants[t].version, NULL,
                                drop_after);
                e->tenants[t].version = b->version;
                e->tenants[t].code = b->code;
                return;
        }
        pointer__retire(s, e->name, e->active, b->tenant, drop_after);
        e->tenants =
                xrealloc(e->tenants, (e->n_tenants + 1) * sizeof(*e->tenants));
        memset(&e->tenants[e->n_tenants], 0, sizeof(*e->tenants));
        snprintf(e->tenants[e->n_tenants].tenant,
                 sizeof(e->tenants[e->n_tenants].tenant), "%s", b->tenant);
        e->tenants[e->n_tenants].version = b->version;
        e->tenants[e->n_tenants].code = b->code;
        e->n_tenants++;
}

static bool pointer__swap(projection_snapshot_t *s, void *arg,
                          projection_err_t *perr, char *errstr, size_t errlen) {
        swap_arg_t *a = arg;
        int64_t now = (int64_t)clock_wall_ms();
        int64_t drop_after = now + a->grace_ms;
        size_t kept = 0, swapped = 0;
        for (size_t i = 0; i < s->n_building; i++) {
                pbuild_t *b = &s->building[i];
                pentry_t *e;
                if (strcmp(b->replay_id, a->replay_id) != 0 || b->scratch) {
                        s->building[kept++] = *b;
                        continue;
                }
                e = projection__entry(s, b->name);
                if (!e) {
                        s->building[kept++] = *b;
                        continue;
                }
                swapped++;
                if (b->tenant[0]) {
                        pointer__swap_tenant(s, e, b, drop_after);
                        continue;
                }
                /* A full build replaces the shared version and every
                 * tenant's own. */
                pointer__retire(s, e->name, e->active, NULL, drop_after);
                for (size_t t = 0; t < e->n_tenants; t++)
                        pointer__retire(s, e->name, e->tenants[t].version, NULL,
                                        drop_after);
                free(e->tenants);
                e->tenants = NULL;
                e->n_tenants = 0;
                e->active = b->version;
                e->code = b->code;
                e->since_ms = now;
        }
        s->n_building = kept;
        if (!swapped) {
                snprintf(errstr, errlen, "replay %s builds no projection",
                         a->replay_id);
                *perr = PROJECTION_UNKNOWN;
                return false;
        }
        return true;
}

projection_err_t projection_swap(store_t *store, const char *db,
                                 const char *replay_id, int64_t grace_ms,
                                 char *errstr, size_t errlen) {
        swap_arg_t a = {replay_id, grace_ms};
        return projection__change(store, db, pointer__swap, &a, errstr, errlen);
}

typedef struct abandon_arg {
        const char *replay_id;
        pbuild_t *gone;
        size_t n_gone;
} abandon_arg_t;

static bool pointer__abandon(projection_snapshot_t *s, void *arg,
                             projection_err_t *perr, char *errstr,
                             size_t errlen) {
        abandon_arg_t *a = arg;
        size_t kept = 0;
        (void)perr;
        (void)errstr;
        (void)errlen;
        free(a->gone);
        a->gone = NULL;
        a->n_gone = 0;
        for (size_t i = 0; i < s->n_building; i++) {
                if (strcmp(s->building[i].replay_id, a->replay_id) == 0) {
                        a->gone = xrealloc(a->gone,
                                           (a->n_gone + 1) * sizeof(*a->gone));
                        a->gone[a->n_gone++] = s->building[i];
                } else {
                        s->building[kept++] = s->building[i];
                }
        }
        s->n_building = kept;
        return a->n_gone > 0;
}

static const projection_def_t *pointer__def(const projection_def_t *const *defs,
                                            size_t n, const char *name) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(defs[i]->name, name) == 0)
                        return defs[i];
        return NULL;
}

projection_err_t projection_abandon(store_t *store, const char *db,
                                    const projection_def_t *const *defs,
                                    size_t n, const char *replay_id,
                                    char *errstr, size_t errlen) {
        abandon_arg_t a = {replay_id, NULL, 0};
        projection_err_t err = projection__change(store, db, pointer__abandon,
                                                  &a, errstr, errlen);
        for (size_t i = 0; err == PROJECTION_OK && i < a.n_gone; i++) {
                const projection_def_t *def =
                        pointer__def(defs, n, a.gone[i].name);
                if (def)
                        err = pointer__store_err(projection_drop_version(
                                store, db, def, a.gone[i].version, SLICE_NULL,
                                errstr, errlen));
        }
        free(a.gone);
        return err;
}

typedef struct gc_arg {
        int64_t now_ms;
        pretired_t *done;
        size_t n_done;
} gc_arg_t;

static bool pointer__forget(projection_snapshot_t *s, void *arg,
                            projection_err_t *perr, char *errstr,
                            size_t errlen) {
        gc_arg_t *a = arg;
        size_t kept = 0;
        (void)perr;
        (void)errstr;
        (void)errlen;
        for (size_t i = 0; i < s->n_retired; i++) {
                bool done = false;
                for (size_t k = 0; k < a->n_done && !done; k++)
                        done = a->done[k].version == s->retired[i].version &&
                               strcmp(a->done[k].name, s->retired[i].name) ==
                                       0 &&
                               strcmp(a->done[k].tenant,
                                      s->retired[i].tenant) == 0;
                if (!done)
                        s->retired[kept++] = s->retired[i];
        }
        if (kept == s->n_retired)
                return false;
        s->n_retired = kept;
        return true;
}

projection_err_t projection_gc(store_t *store, const char *db,
                               const projection_def_t *const *defs, size_t n,
                               int64_t now_ms, size_t *dropped, char *errstr,
                               size_t errlen) {
        projection_snapshot_t *s = NULL;
        gc_arg_t a = {now_ms, NULL, 0};
        projection_err_t err = projection__read(store, db, &s, errstr, errlen);
        if (dropped)
                *dropped = 0;
        if (err != PROJECTION_OK || !s)
                return err;
        for (size_t i = 0; i < s->n_retired; i++) {
                const pretired_t *r = &s->retired[i];
                const projection_def_t *def = pointer__def(defs, n, r->name);
                if (r->drop_after_ms > now_ms || !def)
                        continue;
                if (projection_drop_version(store, db, def, r->version,
                                            slice_of(r->tenant), errstr,
                                            errlen) != STORE_OK) {
                        err = PROJECTION_STORE;
                        break;
                }
                log_info("projection %s: dropped retired version v%" PRId64
                         "%s%s",
                         r->name, r->version, r->tenant[0] ? " of tenant " : "",
                         r->tenant);
                a.done = xrealloc(a.done, (a.n_done + 1) * sizeof(*a.done));
                a.done[a.n_done++] = *r;
        }
        projection_snapshot_free(s);
        if (a.n_done) {
                projection_err_t werr = projection__change(
                        store, db, pointer__forget, &a, errstr, errlen);
                if (err == PROJECTION_OK)
                        err = werr;
        }
        if (dropped)
                *dropped = a.n_done;
        free(a.done);
        return err;
}

store_err_t projection_drop_version(store_t *store, const char *db,
                                    const projection_def_t *def,
                                    int64_t version, slice_t tenant,
                                    char *errstr, size_t errlen) {
        char coll[PROJECTION_COLL_MAX];
        for (const char *const *c = def->collections; c && *c; c++) {
                store_err_t err;
                projection_coll(*c, version, coll, sizeof(coll));
                if (tenant.len) {
                        bson_t filter;
                        bson_init(&filter);
                        bson_append_utf8(&filter, def->tenant_field, -1,
                                         tenant.ptr, (int)tenant.len);
                        err = store_delete(store, db, coll, &filter, STORE_MANY,
                                           NULL, errstr, errlen);
                        bson_destroy(&filter);
                } else {
                        err = store_drop(store, db, coll, errstr, errlen);
                }
                if (err != STORE_OK)
                        return err;
        }
        return STORE_OK;
}
