/*
 * facts.c - the "checklist" projection: other groups' events become facts
 * of a workspace and the workspaces an organisation created (see onb.h).
 *
 * The projection is versioned (shared/projection.h): the live subscription
 * folds each batch into the version the pointer document names now, and
 * `omnify replay onboarding` rebuilds a new version from the event log with
 * the same fold (shared/replay.h), then swaps it in with one compare-and-
 * set. Every write is a register of shared/lww.h: a fact's time is a $min
 * register ("<ms, 16 digits>"), its workspace and name constant fields, so
 * redeliveries, any order, the live group and a replay writing the same
 * version all end in the same documents.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "codec.h"
#include "log.h"
#include "lww.h"
#include "onb.h"

static const char *const onb_colls[] = {"facts", "workspaces", NULL};
static const char *const onb_types[] = {"auth.user.registered",
                                        "auth.org.created",
                                        "auth.legal.accepted",
                                        "auth.org.invitation_created",
                                        "integrations.connection.connected",
                                        "integrations.sync.completed",
                                        "analytics.dashboard.viewed",
                                        "analytics.report.scheduled",
                                        NULL};

const projection_def_t onb_checklist_def = {
        ONB_PROJECTION, 1, onb_colls, NULL, "workspace", onb_types};

const projection_def_t *const onb_projection_defs[1] = {&onb_checklist_def};

/* ---------------------------------------------------------------------------
 * The fold (the live handler's and the replay's)
 * ------------------------------------------------------------------------ */

typedef struct onb_fold {
        store_t *store;
        const char *db;
        bool fresh; /* the target version started empty: insert */
        lww_t *facts, *workspaces;
        char facts_coll[PROJECTION_COLL_MAX], ws_coll[PROJECTION_COLL_MAX];
} onb_fold_t;

static void *onb__open(const replay_target_t *t) {
        onb_fold_t *f = xcalloc(1, sizeof(*f));
        f->store = t->store;
        f->db = t->db;
        f->fresh = t->fresh;
        f->facts = lww_new();
        f->workspaces = lww_new();
        projection_coll("facts", t->version, f->facts_coll,
                        sizeof(f->facts_coll));
        projection_coll("workspaces", t->version, f->ws_coll,
                        sizeof(f->ws_coll));
        return f;
}

static size_t onb__held(const void *st) {
        const onb_fold_t *f = st;
        return lww_bytes(f->facts) + lww_bytes(f->workspaces);
}

static store_err_t onb__flush_one(onb_fold_t *f, lww_t *b, const char *coll,
                                  char *errstr, size_t errlen) {
        return f->fresh
                       ? lww_flush_new(b, f->store, f->db, coll, 0, errstr,
                                       errlen)
                       : lww_flush(b, f->store, f->db, coll, 0, errstr, errlen);
}

static store_err_t onb__flush(void *st, char *errstr, size_t errlen) {
        onb_fold_t *f = st;
        store_err_t err =
                onb__flush_one(f, f->facts, f->facts_coll, errstr, errlen);
        if (err == STORE_OK)
                err = onb__flush_one(f, f->workspaces, f->ws_coll, errstr,
                                     errlen);
        return err;
}

static void onb__close(void *st) {
        onb_fold_t *f = st;
        if (!f)
                return;
        lww_destroy(f->facts);
        lww_destroy(f->workspaces);
        free(f);
}

/* Fact (with provider: "<fact>:<provider>") of workspace at the event's
 * time: the earliest time wins. */
static int onb__fact(onb_fold_t *f, const env_t *env, slice_t workspace,
                     const char *fact, slice_t provider, char *why,
                     size_t whylen) {
        char id[512], key[128], at[24];
        slice_t sid;
        if (!workspace.len || workspace.len >= PROJECTION_TENANT_MAX) {
                snprintf(why, whylen,
                         "an event without a tenant or "
                         "organisation");
                return -1;
        }
        if (provider.len > 64) {
                snprintf(why, whylen, "provider is too long");
                return -1;
        }
        if (provider.len)
                snprintf(key, sizeof(key), "%s:%.*s", fact, (int)provider.len,
                         provider.ptr);
        else
                snprintf(key, sizeof(key), "%s", fact);
        snprintf(id, sizeof(id), "%.*s|%s", (int)workspace.len, workspace.ptr,
                 key);
        snprintf(at, sizeof(at), "%016" PRId64,
                 env->created_at_ms > 0 ? env->created_at_ms : 0);
        sid = slice_of(id);
        if (!lww_holds(f->facts, sid)) {
                lww_set(f->facts, sid, "workspace", workspace);
                lww_set(f->facts, sid, "fact", slice_of(key));
        }
        lww_min(f->facts, sid, "at", slice_of(at));
        return 0;
}

static int onb__fold(void *st, const env_t *env, const msgpack_object *body,
                     char *why, size_t whylen) {
        onb_fold_t *f = st;
        slice_t type = env->type, org;
        if (slice_eq(type, "auth.user.registered"))
                return onb__fact(f, env, codec_map_str(body, "tenant_id"),
                                 "workspace_created", SLICE_NULL, why, whylen);
        if (slice_eq(type, "auth.org.created")) {
                /* Its workspace exists, and the organisation it was created
                 * from may onboard clients into it. */
                org = codec_map_str(body, "org_id");
                if (onb__fact(f, env, org, "workspace_created", SLICE_NULL, why,
                              whylen) < 0)
                        return -1;
                if (env->tenant.len &&
                    env->tenant.len < PROJECTION_TENANT_MAX) {
                        lww_set(f->workspaces, org, "workspace", org);
                        lww_set(f->workspaces, org, "tenant", env->tenant);
                }
                return 0;
        }
        if (slice_eq(type, "auth.legal.accepted")) {
                if (!slice_eq(codec_map_str(body, "type"), "terms"))
                        return 0; /* another document */
                return onb__fact(f, env, env->tenant, "terms_accepted",
                                 SLICE_NULL, why, whylen);
        }
        if (slice_eq(type, "auth.org.invitation_created")) {
                org = codec_map_str(body, "org_id");
                return onb__fact(f, env, org.len ? org : env->tenant,
                                 "team_invited", SLICE_NULL, why, whylen);
        }
        if (slice_eq(type, "integrations.connection.connected"))
                return onb__fact(f, env, env->tenant, "connected",
                                 codec_map_str(body, "provider"), why, whylen);
        if (slice_eq(type, "integrations.sync.completed"))
                return onb__fact(f, env, env->tenant, "synced",
                                 codec_map_str(body, "provider"), why, whylen);
        if (slice_eq(type, "analytics.dashboard.viewed"))
                return onb__fact(f, env, env->tenant, "dashboard_viewed",
                                 SLICE_NULL, why, whylen);
        if (slice_eq(type, "analytics.report.scheduled"))
                return onb__fact(f, env, env->tenant, "report_scheduled",
                                 SLICE_NULL, why, whylen);
        return 0;
}

static const replay_fold_t onb_folds[1] = {
        {&onb_checklist_def, onb__open, onb__fold, onb__held, onb__flush,
         onb__close},
};

const char *const onb_followed[] = {"auth.events", "integrations.events",
                                    "analytics.events", NULL};

const replay_set_t onb_replay_set = {onb_folds, 1, onb_followed};

/* ---------------------------------------------------------------------------
 * The live subscription
 * ------------------------------------------------------------------------ */

#define ONB_LIVE_VERSIONS 8

/* Drop retired versions whose grace has passed, at most every
 * gc_interval_s. */
static void onb__gc(onb_state_t *st, store_t *store) {
        uint64_t now = clock_mono_ms();
        char err[256];
        if (st->last_gc_ms &&
            now - st->last_gc_ms < (uint64_t)st->set->gc_interval_s * 1000)
                return;
        st->last_gc_ms = now;
        if (projection_gc(store, ONB_DB, onb_projection_defs, 1,
                          (int64_t)clock_wall_ms(), NULL, err,
                          sizeof(err)) != PROJECTION_OK)
                log_warn("dropping retired projection versions: %s", err);
}

handler_result_t onb_facts_batch(rt_ctx_t *const *ctxs,
                                 const msgpack_object *const *bodies,
                                 size_t n) {
        store_t *store = rt_store(ctxs[0]);
        projection_snapshot_t *snap = NULL;
        replay_target_t t[ONB_LIVE_VERSIONS];
        void *fs[ONB_LIVE_VERSIONS];
        size_t nf = 0;
        handler_result_t res = HANDLER_OK;
        char err[256];

        if (projection_snapshot_load(store, ONB_DB, onb_projection_defs, 1,
                                     &snap, err,
                                     sizeof(err)) != PROJECTION_OK) {
                log_warn("projection pointer: %s", err);
                return HANDLER_TRANSIENT;
        }
        for (size_t i = 0; i < n; i++) {
                const env_t *env = rt_env(ctxs[i]);
                int64_t v =
                        projection_version(snap, ONB_PROJECTION, env->tenant);
                char why[256] = "";
                size_t k = 0;
                while (k < nf && t[k].version != v)
                        k++;
                if (k == nf) {
                        if (nf == ONB_LIVE_VERSIONS) {
                                /* More tenants with versions of their own
                                 * than a batch holds: write and go on. */
                                for (size_t j = 0; j < nf; j++)
                                        if (onb__flush(fs[j], err,
                                                       sizeof(err)) != STORE_OK)
                                                goto failed;
                                k = 0;
                                onb__close(fs[0]);
                        } else {
                                nf++;
                        }
                        memset(&t[k], 0, sizeof(t[k]));
                        t[k].store = store;
                        t[k].db = ONB_DB;
                        t[k].def = &onb_checklist_def;
                        t[k].version = v;
                        fs[k] = onb__open(&t[k]);
                }
                if (onb__fold(fs[k], env, bodies[i], why, sizeof(why)) < 0) {
                        log_warn("%.*s refused: %s", (int)env->type.len,
                                 env->type.ptr, why);
                        rt_fail(ctxs[i], why);
                }
        }
        for (size_t j = 0; j < nf; j++)
                if (onb__flush(fs[j], err, sizeof(err)) != STORE_OK)
                        goto failed;
        onb__gc(rt_state(ctxs[0]), store);
        goto out;
failed:
        log_warn("writing projection %s: %s", ONB_PROJECTION, err);
        res = HANDLER_TRANSIENT;
out:
        for (size_t j = 0; j < nf; j++)
                onb__close(fs[j]);
        projection_snapshot_free(snap);
        return res;
}

const group_handler_t onb_fact_handlers[ONB_N_FACT_HANDLERS] = {
        {"auth.user.registered", NULL, onb_facts_batch},
        {"auth.org.created", NULL, onb_facts_batch},
        {"auth.legal.accepted", NULL, onb_facts_batch},
        {"auth.org.invitation_created", NULL, onb_facts_batch},
        {"integrations.connection.connected", NULL, onb_facts_batch},
        {"integrations.sync.completed", NULL, onb_facts_batch},
        {"analytics.dashboard.viewed", NULL, onb_facts_batch},
        {"analytics.report.scheduled", NULL, onb_facts_batch},
};

/* ---------------------------------------------------------------------------
 * Reads
 * ------------------------------------------------------------------------ */

store_err_t onb_pointer(store_t *store, projection_snapshot_t **out) {
        char err[256];
        *out = NULL;
        if (projection_snapshot_load(store, ONB_DB, onb_projection_defs, 1, out,
                                     err, sizeof(err)) != PROJECTION_OK) {
                log_warn("projection pointer: %s", err);
                return store_is_up(store) ? STORE_ERROR : STORE_UNAVAILABLE;
        }
        return STORE_OK;
}

store_err_t onb_coll(store_t *store, const projection_snapshot_t *snap,
                     const char *base, slice_t workspace, char *coll,
                     size_t size) {
        projection_snapshot_t *own = NULL;
        store_err_t err;
        if (!snap) {
                if ((err = onb_pointer(store, &own)) != STORE_OK)
                        return err;
                snap = own;
        }
        projection_coll(base,
                        projection_version(snap, ONB_PROJECTION, workspace),
                        coll, size);
        projection_snapshot_free(own);
        return STORE_OK;
}
