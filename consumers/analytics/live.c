/*
 * live.c - the live projections: the subscription to integrations' and
 * auth's events (one batch handler for every poll).
 *
 * Each batch reads the pointer document once (shared/projection.h), so
 * every event of it is folded into the version its tenant uses now (the
 * active one, or the tenant's own after a per-tenant replay), with the same
 * folds `omnify replay` runs (fold.c). What a batch folded is written in
 * one bulk per collection; the folds are last-writer-wins registers, so a
 * batch tried again, a redelivery, or a replay writing the same version
 * changes nothing. Then, outside replays, the side effects: connection and
 * sync events may close days (closing.c, which also runs the insights).
 * Retired projection versions are dropped here once their grace has
 * passed (every gc_interval_s).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "analytics_internal.h"
#include "log.h"

typedef struct live_fold {
        int p;
        int64_t version;
        void *st;
        replay_target_t target;
} live_fold_t;

typedef struct live_batch {
        live_fold_t *f;
        size_t n;
} live_batch_t;

static void *live__state(live_batch_t *b, analytics_state_t *as, const char *db,
                         int p, int64_t version) {
        live_fold_t *lf;
        for (size_t i = 0; i < b->n; i++)
                if (b->f[i].p == p && b->f[i].version == version)
                        return b->f[i].st;
        b->f = xrealloc(b->f, (b->n + 1) * sizeof(*b->f));
        lf = &b->f[b->n++];
        memset(lf, 0, sizeof(*lf));
        lf->p = p;
        lf->version = version;
        lf->target.store = as->store;
        lf->target.db = db;
        lf->target.def = analytics_projection_defs[p];
        lf->target.version = version;
        lf->st = analytics_fold(p)->open(&lf->target);
        return lf->st;
}

static void live__close(live_batch_t *b) {
        for (size_t i = 0; i < b->n; i++)
                analytics_fold(b->f[i].p)->close(b->f[i].st);
        free(b->f);
}

static bool live__closes_days(slice_t type) {
        return slice_eq(type, "integrations.sync.completed") ||
               (type.len > 24 &&
                memcmp(type.ptr, "integrations.connection.", 24) == 0);
}

/* Drop retired versions whose grace has passed, at most every
 * gc_interval_s. */
static void live__gc(analytics_state_t *as, const char *db) {
        uint64_t now = clock_mono_ms();
        char err[256];
        size_t dropped = 0;
        if (as->last_gc_ms &&
            now - as->last_gc_ms < (uint64_t)as->set->gc_interval_s * 1000)
                return;
        as->last_gc_ms = now;
        if (projection_gc(as->store, db, analytics_projection_defs, PROJ_COUNT,
                          (int64_t)clock_wall_ms(), &dropped, err,
                          sizeof(err)) != PROJECTION_OK)
                log_warn("dropping retired projection versions: %s", err);
}

handler_result_t analytics_live_batch(rt_ctx_t *const *ctxs,
                                      const msgpack_object *const *bodies,
                                      size_t n) {
        analytics_state_t *as = analytics_state(ctxs[0]);
        const char *db = rt_db(ctxs[0]);
        projection_snapshot_t *snap = NULL;
        live_batch_t b = {NULL, 0};
        bool *closing = xcalloc(n, sizeof(*closing));
        handler_result_t res = HANDLER_OK;
        char err[256];

        if (projection_snapshot_load(as->store, db, analytics_projection_defs,
                                     PROJ_COUNT, &snap, err,
                                     sizeof(err)) != PROJECTION_OK) {
                log_warn("projection pointer: %s", err);
                free(closing);
                return HANDLER_TRANSIENT;
        }
        for (size_t i = 0; i < n; i++) {
                const env_t *env = rt_env(ctxs[i]);
                bool ok = true;
                for (int p = 0; p < PROJ_COUNT && ok; p++) {
                        const replay_fold_t *f = analytics_fold(p);
                        int64_t version;
                        char why[256] = "";
                        if (!projection_wants(f->def, env->type))
                                continue;
                        version = projection_version(snap, f->def->name,
                                                     env->tenant);
                        if (f->fold(live__state(&b, as, db, p, version), env,
                                    bodies[i], why, sizeof(why)) < 0) {
                                log_warn("%.*s refused: %s", (int)env->type.len,
                                         env->type.ptr, why);
                                rt_fail(ctxs[i], why);
                                ok = false;
                        }
                }
                closing[i] = ok && live__closes_days(env->type);
        }
        for (size_t i = 0; i < b.n; i++) {
                store_err_t serr = analytics_fold(b.f[i].p)->flush(
                        b.f[i].st, err, sizeof(err));
                if (serr != STORE_OK) {
                        log_warn("writing projection %s v%lld: %s",
                                 analytics_projection_defs[b.f[i].p]->name,
                                 (long long)b.f[i].version, err);
                        res = HANDLER_TRANSIENT;
                        goto out;
                }
        }
        /* Side effects, never while replaying: each connection or sync
         * event in turn, with its own context, so a redelivered one
         * publishes again what it published the first time. */
        for (size_t i = 0; i < n && !rt_replaying(ctxs[0]); i++) {
                aview_t v;
                if (!closing[i])
                        continue;
                aview_from(snap, as->store, db, rt_env(ctxs[i])->tenant, &v);
                if (closing_check(ctxs[i], &v) == HANDLER_TRANSIENT) {
                        res = HANDLER_TRANSIENT;
                        goto out;
                }
        }
        live__gc(as, db);
out:
        live__close(&b);
        projection_snapshot_free(snap);
        free(closing);
        return res;
}
