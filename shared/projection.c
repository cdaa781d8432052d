/*
 * projection.c - versioned projections: the pointer document, its
 * compare-and-set changes and the snapshots read from it (see projection.h;
 * builds, swaps, retirement and the janitor are projection_build.c, copies
 * and digests projection_data.c).
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

static const char *projection_errors[] = {
#define X(name, msg) msg,
        PROJECTION_ERRORS(X)
#undef X
};

const char *projection_strerror(projection_err_t err) {
        if ((unsigned)err >=
            sizeof(projection_errors) / sizeof(projection_errors[0]))
                return "unknown projection error";
        return projection_errors[err];
}

#define POINTER_ID "pointer"
/* Compare-and-set tries before a change gives up (others keep winning). */
#define POINTER_TRIES 20

bool projection_wants(const projection_def_t *def, slice_t type) {
        for (const char *const *t = def->types; t && *t; t++) {
                size_t n = strlen(*t);
                if (n >= 2 && (*t)[n - 1] == '*' && (*t)[n - 2] == '.') {
                        if (type.len >= n - 1 &&
                            memcmp(type.ptr, *t, n - 1) == 0)
                                return true;
                } else if (slice_eq(type, *t)) {
                        return true;
                }
        }
        return false;
}

void projection_coll(const char *base, int64_t version, char *buf,
                     size_t size) {
        snprintf(buf, size, "%s_v%" PRId64, base, version);
}

/* ---------------------------------------------------------------------------
 * The pointer document in memory
 * ------------------------------------------------------------------------ */

void projection_snapshot_free(projection_snapshot_t *s) {
        if (!s)
                return;
        for (size_t i = 0; i < s->n_p; i++)
                free(s->p[i].tenants);
        free(s->p);
        free(s->building);
        free(s->retired);
        free(s);
}

static void pointer__str(const bson_iter_t *it, char *buf, size_t size) {
        uint32_t len = 0;
        const char *s =
                BSON_ITER_HOLDS_UTF8(it) ? bson_iter_utf8(it, &len) : "";
        snprintf(buf, size, "%.*s", (int)len, s);
}

/* Calls fn for every sub-document of the array at it. */
static void pointer__each(bson_iter_t *it,
                          void (*fn)(bson_iter_t *fields, void *arg),
                          void *arg) {
        bson_iter_t arr, fields;
        if (!BSON_ITER_HOLDS_ARRAY(it) || !bson_iter_recurse(it, &arr))
                return;
        while (bson_iter_next(&arr))
                if (BSON_ITER_HOLDS_DOCUMENT(&arr) &&
                    bson_iter_recurse(&arr, &fields))
                        fn(&fields, arg);
}

static void pointer__tenant(bson_iter_t *f, void *arg) {
        pentry_t *e = arg;
        ptenant_t *t;
        e->tenants = xrealloc(e->tenants, (e->n_tenants + 1) * sizeof(*t));
        t = &e->tenants[e->n_tenants++];
        memset(t, 0, sizeof(*t));
        while (bson_iter_next(f)) {
                const char *k = bson_iter_key(f);
                if (!strcmp(k, "tenant"))
                        pointer__str(f, t->tenant, sizeof(t->tenant));
                else if (!strcmp(k, "version"))
                        t->version = bson_iter_as_int64(f);
                else if (!strcmp(k, "code"))
                        t->code = (int)bson_iter_as_int64(f);
        }
}

static void pointer__building(bson_iter_t *f, void *arg) {
        projection_snapshot_t *s = arg;
        pbuild_t *b;
        s->building = xrealloc(s->building,
                               (s->n_building + 1) * sizeof(*s->building));
        b = &s->building[s->n_building++];
        memset(b, 0, sizeof(*b));
        while (bson_iter_next(f)) {
                const char *k = bson_iter_key(f);
                if (!strcmp(k, "name"))
                        pointer__str(f, b->name, sizeof(b->name));
                else if (!strcmp(k, "version"))
                        b->version = bson_iter_as_int64(f);
                else if (!strcmp(k, "code"))
                        b->code = (int)bson_iter_as_int64(f);
                else if (!strcmp(k, "replay_id"))
                        pointer__str(f, b->replay_id, sizeof(b->replay_id));
                else if (!strcmp(k, "tenant"))
                        pointer__str(f, b->tenant, sizeof(b->tenant));
                else if (!strcmp(k, "scratch"))
                        b->scratch = bson_iter_as_bool(f);
        }
}

static void pointer__retired(bson_iter_t *f, void *arg) {
        projection_snapshot_t *s = arg;
        pretired_t *r;
        s->retired =
                xrealloc(s->retired, (s->n_retired + 1) * sizeof(*s->retired));
        r = &s->retired[s->n_retired++];
        memset(r, 0, sizeof(*r));
        while (bson_iter_next(f)) {
                const char *k = bson_iter_key(f);
                if (!strcmp(k, "name"))
                        pointer__str(f, r->name, sizeof(r->name));
                else if (!strcmp(k, "version"))
                        r->version = bson_iter_as_int64(f);
                else if (!strcmp(k, "tenant"))
                        pointer__str(f, r->tenant, sizeof(r->tenant));
                else if (!strcmp(k, "drop_after_ms"))
                        r->drop_after_ms = bson_iter_as_int64(f);
        }
}

static projection_snapshot_t *pointer__parse(const bson_t *doc) {
        projection_snapshot_t *s = xcalloc(1, sizeof(*s));
        bson_iter_t it, p, fields;
        if (!bson_iter_init(&it, doc))
                return s;
        while (bson_iter_next(&it)) {
                const char *k = bson_iter_key(&it);
                if (!strcmp(k, "rev")) {
                        s->rev = bson_iter_as_int64(&it);
                } else if (!strcmp(k, "next_version")) {
                        s->next_version = bson_iter_as_int64(&it);
                } else if (!strcmp(k, "building")) {
                        pointer__each(&it, pointer__building, s);
                } else if (!strcmp(k, "retired")) {
                        pointer__each(&it, pointer__retired, s);
                } else if (!strcmp(k, "p") && BSON_ITER_HOLDS_DOCUMENT(&it) &&
                           bson_iter_recurse(&it, &p)) {
                        while (bson_iter_next(&p)) {
                                pentry_t *e;
                                if (!BSON_ITER_HOLDS_DOCUMENT(&p) ||
                                    !bson_iter_recurse(&p, &fields))
                                        continue;
                                s->p = xrealloc(s->p,
                                                (s->n_p + 1) * sizeof(*s->p));
                                e = &s->p[s->n_p++];
                                memset(e, 0, sizeof(*e));
                                snprintf(e->name, sizeof(e->name), "%s",
                                         bson_iter_key(&p));
                                while (bson_iter_next(&fields)) {
                                        const char *f = bson_iter_key(&fields);
                                        if (!strcmp(f, "active"))
                                                e->active = bson_iter_as_int64(
                                                        &fields);
                                        else if (!strcmp(f, "code"))
                                                e->code =
                                                        (int)bson_iter_as_int64(
                                                                &fields);
                                        else if (!strcmp(f, "since_ms"))
                                                e->since_ms =
                                                        bson_iter_as_int64(
                                                                &fields);
                                        else if (!strcmp(f, "tenants"))
                                                pointer__each(&fields,
                                                              pointer__tenant,
                                                              e);
                                }
                        }
                }
        }
        return s;
}

/* The $set of every field but _id: the whole document, so a
 * compare-and-set on rev replaces it in one write. */
static void pointer__build(const projection_snapshot_t *s, bson_t *set) {
        bson_t p, e, arr, item, tenants;
        char key[24];
        BSON_APPEND_INT64(set, "rev", s->rev);
        BSON_APPEND_INT64(set, "next_version", s->next_version);
        BSON_APPEND_DOCUMENT_BEGIN(set, "p", &p);
        for (size_t i = 0; i < s->n_p; i++) {
                const pentry_t *pe = &s->p[i];
                BSON_APPEND_DOCUMENT_BEGIN(&p, pe->name, &e);
                BSON_APPEND_INT64(&e, "active", pe->active);
                BSON_APPEND_INT32(&e, "code", pe->code);
                BSON_APPEND_INT64(&e, "since_ms", pe->since_ms);
                BSON_APPEND_ARRAY_BEGIN(&e, "tenants", &tenants);
                for (size_t t = 0; t < pe->n_tenants; t++) {
                        snprintf(key, sizeof(key), "%zu", t);
                        BSON_APPEND_DOCUMENT_BEGIN(&tenants, key, &item);
                        BSON_APPEND_UTF8(&item, "tenant",
                                         pe->tenants[t].tenant);
                        BSON_APPEND_INT64(&item, "version",
                                          pe->tenants[t].version);
                        BSON_APPEND_INT32(&item, "code", pe->tenants[t].code);
                        bson_append_document_end(&tenants, &item);
                }
                bson_append_array_end(&e, &tenants);
                bson_append_document_end(&p, &e);
        }
        bson_append_document_end(set, &p);
        BSON_APPEND_ARRAY_BEGIN(set, "building", &arr);
        for (size_t i = 0; i < s->n_building; i++) {
                const pbuild_t *b = &s->building[i];
                snprintf(key, sizeof(key), "%zu", i);
                BSON_APPEND_DOCUMENT_BEGIN(&arr, key, &item);
                BSON_APPEND_UTF8(&item, "name", b->name);
                BSON_APPEND_INT64(&item, "version", b->version);
                BSON_APPEND_INT32(&item, "code", b->code);
                BSON_APPEND_UTF8(&item, "replay_id", b->replay_id);
                BSON_APPEND_UTF8(&item, "tenant", b->tenant);
                BSON_APPEND_BOOL(&item, "scratch", b->scratch);
                bson_append_document_end(&arr, &item);
        }
        bson_append_array_end(set, &arr);
        BSON_APPEND_ARRAY_BEGIN(set, "retired", &arr);
        for (size_t i = 0; i < s->n_retired; i++) {
                const pretired_t *r = &s->retired[i];
                snprintf(key, sizeof(key), "%zu", i);
                BSON_APPEND_DOCUMENT_BEGIN(&arr, key, &item);
                BSON_APPEND_UTF8(&item, "name", r->name);
                BSON_APPEND_INT64(&item, "version", r->version);
                BSON_APPEND_UTF8(&item, "tenant", r->tenant);
                BSON_APPEND_INT64(&item, "drop_after_ms", r->drop_after_ms);
                bson_append_document_end(&arr, &item);
        }
        bson_append_array_end(set, &arr);
}

pentry_t *projection__entry(const projection_snapshot_t *s, const char *name) {
        for (size_t i = 0; i < s->n_p; i++)
                if (strcmp(s->p[i].name, name) == 0)
                        return &s->p[i];
        return NULL;
}

/* Read the pointer; *s is NULL when there is none. */
projection_err_t projection__read(store_t *store, const char *db,
                                  projection_snapshot_t **s, char *errstr,
                                  size_t errlen) {
        bson_t filter, doc;
        store_err_t err;
        *s = NULL;
        bson_init(&filter);
        BSON_APPEND_UTF8(&filter, "_id", POINTER_ID);
        err = store_find_one(store, db, PROJECTION_POINTER_COLL, &filter, NULL,
                             &doc, errstr, errlen);
        bson_destroy(&filter);
        if (err == STORE_NOT_FOUND)
                return PROJECTION_OK;
        if (err != STORE_OK)
                return PROJECTION_STORE;
        *s = pointer__parse(&doc);
        bson_destroy(&doc);
        return PROJECTION_OK;
}

/* Write s over the document of revision s->rev, as revision s->rev + 1.
 * PROJECTION_CONFLICT when someone else changed it first. */
static projection_err_t pointer__write(store_t *store, const char *db,
                                       projection_snapshot_t *s, char *errstr,
                                       size_t errlen) {
        bson_t filter, update, set;
        int64_t matched = 0;
        store_err_t err;
        int64_t rev = s->rev;
        bson_init(&filter);
        BSON_APPEND_UTF8(&filter, "_id", POINTER_ID);
        BSON_APPEND_INT64(&filter, "rev", rev);
        s->rev = rev + 1;
        bson_init(&update);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        pointer__build(s, &set);
        bson_append_document_end(&update, &set);
        err = store_update(store, db, PROJECTION_POINTER_COLL, &filter, &update,
                           0, &matched, errstr, errlen);
        bson_destroy(&filter);
        bson_destroy(&update);
        if (err == STORE_NOT_FOUND || (err == STORE_OK && matched == 0)) {
                s->rev = rev;
                snprintf(errstr, errlen, "%s",
                         projection_strerror(PROJECTION_CONFLICT));
                return PROJECTION_CONFLICT;
        }
        if (err != STORE_OK) {
                s->rev = rev;
                return PROJECTION_STORE;
        }
        return PROJECTION_OK;
}

store_err_t projection__indexes(store_t *store, const char *db,
                                const projection_def_t *def, int64_t version,
                                char *errstr, size_t errlen) {
        size_t n = 0;
        store_index_t *idx;
        char(*colls)[PROJECTION_COLL_MAX];
        char(*names)[PROJECTION_COLL_MAX + 16];
        store_err_t err;
        while (def->indexes && def->indexes[n].coll)
                n++;
        if (!n)
                return STORE_OK;
        idx = xcalloc(n + 1, sizeof(*idx));
        colls = xcalloc(n, sizeof(*colls));
        names = xcalloc(n, sizeof(*names));
        for (size_t i = 0; i < n; i++) {
                idx[i] = def->indexes[i];
                projection_coll(def->indexes[i].coll, version, colls[i],
                                sizeof(colls[i]));
                snprintf(names[i], sizeof(names[i]), "%s_v%" PRId64,
                         def->indexes[i].name, version);
                idx[i].coll = colls[i];
                idx[i].name = names[i];
        }
        err = store_ensure_indexes(store, db, idx, errstr, errlen);
        free(idx);
        free(colls);
        free(names);
        return err;
}

projection_err_t projection__change(store_t *store, const char *db,
                                    pointer_edit_fn fn, void *arg, char *errstr,
                                    size_t errlen) {
        for (int attempt = 0; attempt < POINTER_TRIES; attempt++) {
                projection_snapshot_t *s = NULL;
                projection_err_t err =
                        projection__read(store, db, &s, errstr, errlen);
                if (err != PROJECTION_OK)
                        return err;
                if (!s) {
                        snprintf(errstr, errlen,
                                 "no pointer document in %s.%s yet", db,
                                 PROJECTION_POINTER_COLL);
                        return PROJECTION_UNKNOWN;
                }
                err = PROJECTION_OK;
                if (!fn(s, arg, &err, errstr, errlen)) {
                        projection_snapshot_free(s);
                        return err;
                }
                err = pointer__write(store, db, s, errstr, errlen);
                projection_snapshot_free(s);
                if (err != PROJECTION_CONFLICT)
                        return err;
        }
        return PROJECTION_CONFLICT;
}

/* ---------------------------------------------------------------------------
 * Snapshots
 * ------------------------------------------------------------------------ */

typedef struct add_arg {
        const projection_def_t *const *defs;
        size_t n;
        int64_t *added; /* version given to each def added, else 0 */
} add_arg_t;

static bool pointer__add_missing(projection_snapshot_t *s, void *arg,
                                 projection_err_t *perr, char *errstr,
                                 size_t errlen) {
        add_arg_t *a = arg;
        bool changed = false;
        (void)perr;
        (void)errstr;
        (void)errlen;
        for (size_t i = 0; i < a->n; i++) {
                pentry_t *e;
                a->added[i] = 0;
                if (projection__entry(s, a->defs[i]->name))
                        continue;
                s->p = xrealloc(s->p, (s->n_p + 1) * sizeof(*s->p));
                e = &s->p[s->n_p++];
                memset(e, 0, sizeof(*e));
                snprintf(e->name, sizeof(e->name), "%s", a->defs[i]->name);
                e->active = s->next_version++;
                e->code = a->defs[i]->code_version;
                e->since_ms = (int64_t)clock_wall_ms();
                a->added[i] = e->active;
                changed = true;
        }
        return changed;
}

projection_err_t projection_snapshot_load(store_t *store, const char *db,
                                          const projection_def_t *const *defs,
                                          size_t n, projection_snapshot_t **out,
                                          char *errstr, size_t errlen) {
        projection_snapshot_t *s = NULL;
        projection_err_t err;
        *out = NULL;
        err = projection__read(store, db, &s, errstr, errlen);
        if (err != PROJECTION_OK)
                return err;
        if (!s) {
                /* The first start: an empty pointer, then the projections
                 * are added like any new one. A racing creator wins. */
                bson_t doc;
                store_err_t serr;
                bson_init(&doc);
                BSON_APPEND_UTF8(&doc, "_id", POINTER_ID);
                BSON_APPEND_INT64(&doc, "rev", 0);
                BSON_APPEND_INT64(&doc, "next_version", 1);
                serr = store_insert(store, db, PROJECTION_POINTER_COLL, &doc,
                                    errstr, errlen);
                bson_destroy(&doc);
                if (serr != STORE_OK && serr != STORE_DUPLICATE)
                        return PROJECTION_STORE;
                err = projection__read(store, db, &s, errstr, errlen);
                if (err != PROJECTION_OK)
                        return err;
                if (!s)
                        return PROJECTION_BAD_POINTER;
        }
        for (size_t i = 0; i < n; i++) {
                if (projection__entry(s, defs[i]->name))
                        continue;
                /* A projection this pointer does not know yet. */
                {
                        int64_t *added = xcalloc(n, sizeof(*added));
                        add_arg_t a = {defs, n, added};
                        projection_snapshot_free(s);
                        s = NULL;
                        err = projection__change(store, db,
                                                 pointer__add_missing, &a,
                                                 errstr, errlen);
                        for (size_t k = 0; err == PROJECTION_OK && k < n; k++)
                                if (added[k] &&
                                    projection__indexes(store, db, defs[k],
                                                        added[k], errstr,
                                                        errlen) != STORE_OK)
                                        err = PROJECTION_STORE;
                        free(added);
                        if (err != PROJECTION_OK)
                                return err;
                        err = projection__read(store, db, &s, errstr, errlen);
                        if (err != PROJECTION_OK)
                                return err;
                        if (!s)
                                return PROJECTION_BAD_POINTER;
                }
                break;
        }
        *out = s;
        return PROJECTION_OK;
}

int64_t projection_version(const projection_snapshot_t *s, const char *name,
                           slice_t tenant) {
        const pentry_t *e = s ? projection__entry(s, name) : NULL;
        if (!e)
                return 0;
        for (size_t i = 0; tenant.len && i < e->n_tenants; i++)
                if (slice_eq(tenant, e->tenants[i].tenant))
                        return e->tenants[i].version;
        return e->active;
}

int64_t projection_active(const projection_snapshot_t *s, const char *name,
                          int *code_version) {
        const pentry_t *e = s ? projection__entry(s, name) : NULL;
        if (code_version)
                *code_version = e ? e->code : 0;
        return e ? e->active : 0;
}

int64_t projection_rev(const projection_snapshot_t *s) {
        return s ? s->rev : 0;
}

void projection_builder(const projection_snapshot_t *s, const char *name,
                        char *id, size_t size) {
        snprintf(id, size, "%s", "");
        for (size_t i = 0; s && i < s->n_building; i++)
                if (!s->building[i].scratch &&
                    strcmp(s->building[i].name, name) == 0) {
                        snprintf(id, size, "%s", s->building[i].replay_id);
                        return;
                }
}

size_t projection_check(const projection_snapshot_t *s,
                        const projection_def_t *const *defs, size_t n,
                        const char *command) {
        size_t behind = 0;
        for (size_t i = 0; i < n; i++) {
                const pentry_t *e = projection__entry(s, defs[i]->name);
                if (!e)
                        continue;
                if (e->code < defs[i]->code_version) {
                        behind++;
                        log_warn("projection %s: the active version v%" PRId64
                                 " was built by code version %d, this build "
                                 "writes version %d; rebuild it with: %s "
                                 "--projection %s",
                                 e->name, e->active, e->code,
                                 defs[i]->code_version, command, e->name);
                }
                for (size_t t = 0; t < e->n_tenants; t++)
                        if (e->tenants[t].code < defs[i]->code_version) {
                                behind++;
                                log_warn("projection %s: tenant %s's version "
                                         "v%" PRId64 " was built by code "
                                         "version %d, this build writes %d; "
                                         "rebuild it with: %s --projection "
                                         "%s --tenant %s",
                                         e->name, e->tenants[t].tenant,
                                         e->tenants[t].version,
                                         e->tenants[t].code,
                                         defs[i]->code_version, command,
                                         e->name, e->tenants[t].tenant);
                        }
        }
        for (size_t i = 0; i < s->n_building; i++)
                log_info("projection %s: version v%" PRId64 " is being built "
                         "by replay %s%s%s",
                         s->building[i].name, s->building[i].version,
                         s->building[i].replay_id,
                         s->building[i].tenant[0] ? " for tenant " : "",
                         s->building[i].tenant);
        return behind;
}

char *projection_describe(const projection_snapshot_t *s) {
        bson_t doc;
        char *json;
        bson_init(&doc);
        pointer__build(s, &doc);
        json = bson_as_relaxed_extended_json(&doc, NULL);
        bson_destroy(&doc);
        return json;
}
