/*
 * replay_run.c - a replay's set-up (the projections selected, new versions
 * reserved and copied) and its phases: building to the end offsets,
 * catching up, the swap, the tail; replay_run and replay_abort (see
 * replay.h; the record, the reading loop and the checkpoints are in
 * replay.c, whose helpers replay_internal.h declares).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "replay_internal.h"

/* Catch-up rounds before the swap: the log keeps growing under us. */
#define REPLAY_CATCHUP_ROUNDS 5

/* ---------------------------------------------------------------------------
 * Set-up
 * ------------------------------------------------------------------------ */

static replay_err_t replay__select(replay_t *r, char *errstr, size_t errlen) {
        const replay_set_t *set = r->o->set;
        if (!r->o->only) {
                for (size_t i = 0; i < set->n && i < REPLAY_MAX_PROJECTIONS;
                     i++)
                        r->sel[r->n_sel++] = &set->folds[i];
                return REPLAY_OK;
        }
        for (const char *const *name = r->o->only; *name; name++) {
                const replay_fold_t *f = NULL;
                bool have = false;
                for (size_t i = 0; i < set->n; i++)
                        if (strcmp(set->folds[i].def->name, *name) == 0)
                                f = &set->folds[i];
                if (!f) {
                        size_t off = (size_t)snprintf(
                                errstr, errlen,
                                "unknown projection '%s'; known:", *name);
                        for (size_t i = 0; i < set->n && off < errlen; i++)
                                off += (size_t)snprintf(
                                        errstr + off, errlen - off, " %s",
                                        set->folds[i].def->name);
                        return REPLAY_BAD_OPTION;
                }
                for (size_t k = 0; k < r->n_sel; k++)
                        have = have || r->sel[k] == f;
                if (!have && r->n_sel < REPLAY_MAX_PROJECTIONS)
                        r->sel[r->n_sel++] = f;
        }
        return r->n_sel ? REPLAY_OK : REPLAY_BAD_OPTION;
}

/* New versions, and the copy a start later than the earliest needs. */
static replay_err_t replay__reserve(replay_t *r,
                                    const projection_snapshot_t *snap,
                                    char *errstr, size_t errlen) {
        bool copy = r->o->from && *r->o->from &&
                    strcmp(r->o->from, "earliest") != 0;
        for (size_t k = 0; k < r->n_sel; k++) {
                projection_err_t perr = projection_reserve(
                        r->o->store, r->o->group, r->sel[k]->def, r->id,
                        r->tenant, r->o->verify, &r->version[k], errstr,
                        errlen);
                if (perr == PROJECTION_BUSY)
                        return REPLAY_BUSY;
                if (perr != PROJECTION_OK)
                        return REPLAY_STORE;
        }
        if (!copy)
                return REPLAY_OK;
        r->phase = "copying";
        replay__report(r, true);
        for (size_t k = 0; k < r->n_sel; k++) {
                int64_t from = projection_version(snap, r->sel[k]->def->name,
                                                  r->tenant);
                if (from > 0 &&
                    projection_copy(r->o->store, r->o->group, r->sel[k]->def,
                                    from, r->version[k], r->tenant, errstr,
                                    errlen) != STORE_OK)
                        return REPLAY_STORE;
        }
        return REPLAY_OK;
}

static void replay__result(replay_t *r) {
        replay_result_t *res = r->res;
        uint64_t elapsed = clock_mono_ms() - r->t0_ms;
        snprintf(res->replay_id, sizeof(res->replay_id), "%s", r->id);
        res->events = r->events;
        if (r->workers)
                replay__folds_counts(r, &res->folded, &res->bad);
        res->elapsed_ms = (int64_t)elapsed;
        res->rate = elapsed ? (double)r->events * 1000.0 / (double)elapsed : 0;
        res->n_versions = r->n_sel;
        for (size_t k = 0; k < r->n_sel; k++) {
                snprintf(res->names[k], sizeof(res->names[k]), "%s",
                         r->sel[k]->def->name);
                res->versions[k] = r->version[k];
        }
        free(res->end);
        res->end = xcalloc(r->n_parts ? r->n_parts : 1, sizeof(*res->end));
        res->n_end = r->n_parts;
        for (size_t i = 0; i < r->n_parts; i++) {
                snprintf(res->end[i].topic, sizeof(res->end[i].topic), "%s",
                         r->parts[i].name);
                res->end[i].partition = r->parts[i].partition;
                res->end[i].offset = r->parts[i].pos;
        }
}

/* ---------------------------------------------------------------------------
 * The phases
 * ------------------------------------------------------------------------ */

static replay_err_t replay__build(replay_t *r, bool tail_only, char *errstr,
                                  size_t errlen) {
        int64_t *targets = xcalloc(r->n_parts, sizeof(*targets));
        replay_err_t err = REPLAY_OK;
        if (!tail_only) {
                r->phase = "building";
                for (size_t i = 0; i < r->n_parts; i++)
                        targets[i] = r->parts[i].end;
                err = replay__consume_to(r, targets, errstr, errlen);
                log_debug(
                        "replay %s: built to the end offsets at +%llu ms",
                        r->id,
                        (unsigned long long)(clock_mono_ms() - r->rate_t0_ms));
                if (err != REPLAY_OK || r->o->verify)
                        goto out;
                r->phase = "catching up";
                for (int round = 0; round < REPLAY_CATCHUP_ROUNDS; round++) {
                        err = replay__kafka_watermarks(r, NULL, targets, errstr,
                                                       errlen);
                        if (err != REPLAY_OK)
                                goto out;
                        for (size_t i = 0; i < r->n_parts; i++)
                                r->parts[i].target = targets[i];
                        if (replay__reached(r))
                                break;
                        err = replay__consume_to(r, targets, errstr, errlen);
                        if (err != REPLAY_OK)
                                goto out;
                }
                err = replay__checkpoint(r, errstr, errlen);
                if (err != REPLAY_OK)
                        goto out;
                log_debug(
                        "replay %s: caught up and written at +%llu ms", r->id,
                        (unsigned long long)(clock_mono_ms() - r->rate_t0_ms));
                r->phase = "swapping";
                replay__report(r, true);
                if (projection_swap(r->o->store, r->o->group, r->id,
                                    r->o->grace_ms, errstr,
                                    errlen) != PROJECTION_OK) {
                        err = REPLAY_STORE;
                        goto out;
                }
                log_info("replay %s: swapped; the new versions are active",
                         r->id);
                replay__status(r, "tailing", NULL);
                log_debug(
                        "replay %s: swapped at +%llu ms", r->id,
                        (unsigned long long)(clock_mono_ms() - r->rate_t0_ms));
        }
        /* The events read before the live group saw the swap are below the
         * high watermarks of now. */
        r->phase = "tailing";
        err = replay__kafka_watermarks(r, NULL, targets, errstr, errlen);
        if (err == REPLAY_OK)
                err = replay__consume_to(r, targets, errstr, errlen);
out:
        if (err == REPLAY_OK)
                err = replay__checkpoint(r, errstr, errlen);
        free(targets);
        return err;
}

replay_err_t replay_run(const replay_opts_t *opts, replay_result_t *res,
                        char *errstr, size_t errlen) {
        replay_opts_t o = *opts;
        replay_t r;
        const projection_def_t *defs[REPLAY_MAX_PROJECTIONS];
        size_t n_defs;
        projection_snapshot_t *snap = NULL;
        bson_t *resume = NULL;
        bool tail_only = false;
        replay_err_t err;

        memset(res, 0, sizeof(*res));
        memset(&r, 0, sizeof(r));
        if (!o.memory_bytes)
                o.memory_bytes = 256u << 20;
        if (!o.checkpoint_ms)
                o.checkpoint_ms = 10000;
        r.o = &o;
        r.res = res;
        r.phase = "starting";
        r.t0_ms = r.last_report_ms = r.last_checkpoint_ms = r.rate_t0_ms =
                clock_mono_ms();
        r.tenant = slice_of(o.tenant && *o.tenant ? o.tenant : NULL);
        if (!o.cfg || !o.store || !o.group || !o.set || !o.set->n) {
                snprintf(errstr, errlen, "replay: incomplete options");
                err = REPLAY_BAD_OPTION;
                goto out;
        }
        if ((err = replay__select(&r, errstr, errlen)) != REPLAY_OK)
                goto out;
        n_defs = replay_defs(o.set, defs);
        if (projection_snapshot_load(o.store, o.group, defs, n_defs, &snap,
                                     errstr, errlen) != PROJECTION_OK) {
                err = REPLAY_STORE;
                goto out;
        }
        if (!o.verify) {
                err = replay__find_resumable(&r, snap, &resume, errstr, errlen);
                if (err != REPLAY_OK)
                        goto out;
        }
        if (resume) {
                snprintf(r.id, sizeof(r.id), "%s",
                         replay__doc_str(resume, "_id"));
                tail_only = strcmp(replay__doc_str(resume, "status"),
                                   "tailing") == 0;
                res->resumed = true;
                log_info("replay %s: resuming%s from its last checkpoint", r.id,
                         tail_only ? " its tail" : "");
        } else {
                msgid_t mid;
                msgid_new(&mid);
                msgid_format(&mid, r.id);
        }
        snprintf(r.group_id, sizeof(r.group_id), "%s%s.replay.%s",
                 o.cfg->topic_prefix, o.group, r.id);
        if ((err = replay__kafka_open(&r, errstr, errlen)) != REPLAY_OK ||
            (err = replay__kafka_partitions(&r, errstr, errlen)) != REPLAY_OK)
                goto out;
        if (resume) {
                if ((err = replay__record_load(&r, resume, errstr, errlen)) !=
                            REPLAY_OK ||
                    (err = replay__kafka_committed(&r, errstr, errlen)) !=
                            REPLAY_OK)
                        goto out;
        } else {
                if ((err = replay__kafka_starts(&r, o.from, errstr, errlen)) !=
                    REPLAY_OK)
                        goto out;
                for (size_t i = 0; i < o.n_until; i++)
                        for (size_t p = 0; p < r.n_parts; p++)
                                if (r.parts[p].partition ==
                                            o.until[i].partition &&
                                    !strcmp(r.parts[p].name, o.until[i].topic))
                                        r.parts[p].end = o.until[i].offset;
                if ((err = replay__reserve(&r, snap, errstr, errlen)) !=
                    REPLAY_OK)
                        goto out;
                if (replay__record_new(&r, errstr, errlen) != STORE_OK) {
                        err = REPLAY_STORE;
                        goto out;
                }
        }
        replay__folds_open(&r, o.threads ? o.threads : 2);
        replay__recorder_start(&r);
        if ((err = replay__kafka_assign(&r, errstr, errlen)) != REPLAY_OK)
                goto out;
        /* --rate counts from the first read, not from the set-up. */
        r.rate_t0_ms = clock_mono_ms();
        r.rate_events = 0;
        log_info("replay %s: set up in %llu ms", r.id,
                 (unsigned long long)(r.rate_t0_ms - r.t0_ms));
        err = replay__build(&r, tail_only, errstr, errlen);
        log_info("replay %s: %lld events read and folded in %llu ms, of "
                 "which %d checkpoints (writes and commits) took %llu ms",
                 r.id, (long long)r.events,
                 (unsigned long long)(clock_mono_ms() - r.rate_t0_ms),
                 r.flushes, (unsigned long long)r.flush_ms);
        if (err == REPLAY_OK)
                r.phase = o.verify ? "verified" : "done";
        replay__report(&r, true);
        replay__recorder_stop(&r);
        if (err == REPLAY_OK) {
                replay__status(&r, r.phase, NULL);
                replay__kafka_delete_group(&r);
        } else if (err != REPLAY_STOPPED) {
                replay__status(&r, "failed", errstr);
        }
out:
        replay__recorder_stop(&r);
        replay__result(&r);
        replay__folds_close(&r);
        replay__kafka_close(&r);
        free(r.parts);
        projection_snapshot_free(snap);
        if (resume)
                bson_destroy(resume);
        return err;
}

replay_err_t replay_abort(store_t *store, const char *group,
                          const replay_set_t *set, const char *replay_id,
                          char *errstr, size_t errlen) {
        const projection_def_t *defs[REPLAY_MAX_PROJECTIONS];
        size_t n = replay_defs(set, defs);
        bson_t filter, update, s;
        int64_t matched = 0;
        store_err_t serr;
        if (projection_abandon(store, group, defs, n, replay_id, errstr,
                               errlen) != PROJECTION_OK)
                return REPLAY_STORE;
        bson_init(&filter);
        BSON_APPEND_UTF8(&filter, "_id", replay_id);
        bson_init(&update);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &s);
        BSON_APPEND_UTF8(&s, "status", "aborted");
        BSON_APPEND_INT64(&s, "finished_ms", (int64_t)clock_wall_ms());
        bson_append_document_end(&update, &s);
        serr = store_update(store, group, REPLAY_COLL, &filter, &update, 0,
                            &matched, errstr, errlen);
        bson_destroy(&filter);
        bson_destroy(&update);
        if (serr == STORE_NOT_FOUND || (serr == STORE_OK && !matched)) {
                snprintf(errstr, errlen, "no replay %s in %s", replay_id,
                         group);
                return REPLAY_NOT_FOUND;
        }
        return serr == STORE_OK ? REPLAY_OK : REPLAY_STORE;
}
