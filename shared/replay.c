/*
 * replay.c - the replay driver's record and progress, which replay this is
 * (a new one or one to resume), and the reading loop with its checkpoints
 * (see replay.h and replay_internal.h). The set-up and the phases are in
 * replay_run.c, the workers folding in replay_fold.c, the consumer in
 * replay_kafka.c.
 *
 * Record <db>.replays:
 *   {_id: replay id, status: building | tailing | done | verified |
 *    failed | aborted, phase, projections: [names], tenant, from, verify,
 *    versions: {name: version}, parts: [{topic, partition, start, end}],
 *    done, total, events, bad, rate, eta_s, started_ms, heartbeat_ms,
 *    finished_ms, error}
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "backoff.h"
#include "log.h"
#include "replay_internal.h"

static const char *replay_errors[] = {
#define X(name, msg) msg,
        REPLAY_ERRORS(X)
#undef X
};

const char *replay_strerror(replay_err_t err) {
        if ((unsigned)err >= sizeof(replay_errors) / sizeof(replay_errors[0]))
                return "unknown replay error";
        return replay_errors[err];
}

/* A replay whose record was heard from this recently is running. */
#define REPLAY_ALIVE_MS 10000
#define REPLAY_POLL_MAX 2000
#define REPLAY_REPORT_MS 1000

size_t replay_defs(const replay_set_t *set,
                   const projection_def_t *defs[REPLAY_MAX_PROJECTIONS]) {
        size_t n = 0;
        for (size_t i = 0; i < set->n && n < REPLAY_MAX_PROJECTIONS; i++)
                defs[n++] = set->folds[i].def;
        return n;
}

void replay_result_deinit(replay_result_t *res) {
        if (!res)
                return;
        free(res->end);
        res->end = NULL;
        res->n_end = 0;
}

/* ---------------------------------------------------------------------------
 * The record
 * ------------------------------------------------------------------------ */

static store_err_t replay__record(replay_t *r, const bson_t *set, char *errstr,
                                  size_t errlen) {
        bson_t filter, update;
        store_err_t err;
        bson_init(&filter);
        BSON_APPEND_UTF8(&filter, "_id", r->id);
        bson_init(&update);
        BSON_APPEND_DOCUMENT(&update, "$set", set);
        err = store_update(r->o->store, r->o->group, REPLAY_COLL, &filter,
                           &update, STORE_UPSERT, NULL, errstr, errlen);
        bson_destroy(&filter);
        bson_destroy(&update);
        return err;
}

static void replay__progress(replay_t *r, int64_t *done, int64_t *total) {
        *done = *total = 0;
        for (size_t i = 0; i < r->n_parts; i++) {
                const rpart_t *p = &r->parts[i];
                int64_t span = p->end > p->start ? p->end - p->start : 0;
                int64_t got = p->pos - p->start;
                *total += span;
                *done += got < 0 ? 0 : got > span ? span : got;
        }
}

/* Progress to the callback and the record (also the heartbeat). */
void replay__report(replay_t *r, bool force) {
        uint64_t now = clock_mono_ms();
        replay_progress_t p;
        bson_t set;
        double secs;
        if (!force && now - r->last_report_ms < REPLAY_REPORT_MS)
                return;
        secs = (double)(now - r->last_report_ms) / 1000.0;
        r->rate = secs > 0 ? (double)(r->events - r->last_report_events) / secs
                           : 0;
        r->last_report_ms = now;
        r->last_report_events = r->events;
        memset(&p, 0, sizeof(p));
        p.replay_id = r->id;
        p.phase = r->phase;
        replay__progress(r, &p.done, &p.total);
        p.events = r->events;
        if (r->workers) {
                int64_t folded;
                replay__folds_counts(r, &folded, &p.bad);
        }
        p.rate = r->rate;
        p.eta_s = r->rate > 0 ? (double)(p.total - p.done) / r->rate : -1;
        if (r->o->progress)
                r->o->progress(&p, r->o->progress_arg);
        bson_init(&set);
        BSON_APPEND_UTF8(&set, "phase", r->phase);
        BSON_APPEND_INT64(&set, "done", p.done);
        BSON_APPEND_INT64(&set, "total", p.total);
        BSON_APPEND_INT64(&set, "events", p.events);
        BSON_APPEND_INT64(&set, "bad", p.bad);
        BSON_APPEND_DOUBLE(&set, "rate", p.rate);
        BSON_APPEND_DOUBLE(&set, "eta_s", p.eta_s);
        BSON_APPEND_INT64(&set, "heartbeat_ms", (int64_t)clock_wall_ms());
        /* The recorder thread writes it: a slow store does not slow the
         * reading. */
        pthread_mutex_lock(&r->rec_lock);
        if (r->rec_pending)
                bson_destroy(r->rec_pending);
        r->rec_pending = bson_copy(&set);
        pthread_cond_signal(&r->rec_cond);
        pthread_mutex_unlock(&r->rec_lock);
        bson_destroy(&set);
}

/* The recorder: writes the latest progress (the heartbeat too) as it comes,
 * off the reading thread. */
static void *replay__recorder(void *arg) {
        replay_t *r = arg;
        char err[256];
        pthread_mutex_lock(&r->rec_lock);
        for (;;) {
                bson_t *set;
                while (!r->rec_pending && !r->rec_stop)
                        pthread_cond_wait(&r->rec_cond, &r->rec_lock);
                if (!r->rec_pending)
                        break;
                set = r->rec_pending;
                r->rec_pending = NULL;
                pthread_mutex_unlock(&r->rec_lock);
                if (replay__record(r, set, err, sizeof(err)) != STORE_OK)
                        log_warn("replay %s: progress not recorded: %s", r->id,
                                 err);
                bson_destroy(set);
                pthread_mutex_lock(&r->rec_lock);
        }
        pthread_mutex_unlock(&r->rec_lock);
        return NULL;
}

void replay__recorder_start(replay_t *r) {
        pthread_mutex_init(&r->rec_lock, NULL);
        pthread_cond_init(&r->rec_cond, NULL);
        r->rec_started =
                pthread_create(&r->rec_thread, NULL, replay__recorder, r) == 0;
}

/* Write what is pending, then stop. */
void replay__recorder_stop(replay_t *r) {
        if (!r->rec_started)
                return;
        pthread_mutex_lock(&r->rec_lock);
        r->rec_stop = true;
        pthread_cond_signal(&r->rec_cond);
        pthread_mutex_unlock(&r->rec_lock);
        pthread_join(r->rec_thread, NULL);
        r->rec_started = false;
        if (r->rec_pending)
                bson_destroy(r->rec_pending);
        r->rec_pending = NULL;
        pthread_cond_destroy(&r->rec_cond);
        pthread_mutex_destroy(&r->rec_lock);
}

void replay__status(replay_t *r, const char *status, const char *error) {
        bson_t set;
        char err[256];
        bson_init(&set);
        BSON_APPEND_UTF8(&set, "status", status);
        if (error)
                BSON_APPEND_UTF8(&set, "error", error);
        if (strcmp(status, "building") && strcmp(status, "tailing"))
                BSON_APPEND_INT64(&set, "finished_ms",
                                  (int64_t)clock_wall_ms());
        if (replay__record(r, &set, err, sizeof(err)) != STORE_OK)
                log_warn("replay %s: status not recorded: %s", r->id, err);
        bson_destroy(&set);
}

/* The first record: what is replayed, from where, into which versions. */
store_err_t replay__record_new(replay_t *r, char *errstr, size_t errlen) {
        bson_t set, arr, item, versions;
        char key[24];
        store_err_t err;
        bson_init(&set);
        BSON_APPEND_UTF8(&set, "status", "building");
        BSON_APPEND_UTF8(&set, "phase", r->phase);
        BSON_APPEND_UTF8(&set, "group", r->o->group);
        BSON_APPEND_BOOL(&set, "verify", r->o->verify);
        bson_append_utf8(&set, "tenant", -1, r->tenant.ptr ? r->tenant.ptr : "",
                         (int)r->tenant.len);
        BSON_APPEND_UTF8(&set, "from", r->o->from ? r->o->from : "earliest");
        BSON_APPEND_ARRAY_BEGIN(&set, "projections", &arr);
        for (size_t i = 0; i < r->n_sel; i++) {
                snprintf(key, sizeof(key), "%zu", i);
                BSON_APPEND_UTF8(&arr, key, r->sel[i]->def->name);
        }
        bson_append_array_end(&set, &arr);
        BSON_APPEND_DOCUMENT_BEGIN(&set, "versions", &versions);
        for (size_t i = 0; i < r->n_sel; i++)
                BSON_APPEND_INT64(&versions, r->sel[i]->def->name,
                                  r->version[i]);
        bson_append_document_end(&set, &versions);
        BSON_APPEND_ARRAY_BEGIN(&set, "parts", &arr);
        for (size_t i = 0; i < r->n_parts; i++) {
                snprintf(key, sizeof(key), "%zu", i);
                BSON_APPEND_DOCUMENT_BEGIN(&arr, key, &item);
                BSON_APPEND_UTF8(&item, "topic", r->parts[i].name);
                BSON_APPEND_INT32(&item, "partition", r->parts[i].partition);
                BSON_APPEND_INT64(&item, "start", r->parts[i].start);
                BSON_APPEND_INT64(&item, "end", r->parts[i].end);
                bson_append_document_end(&arr, &item);
        }
        bson_append_array_end(&set, &arr);
        BSON_APPEND_INT64(&set, "started_ms", (int64_t)clock_wall_ms());
        BSON_APPEND_INT64(&set, "heartbeat_ms", (int64_t)clock_wall_ms());
        err = replay__record(r, &set, errstr, errlen);
        bson_destroy(&set);
        return err;
}

/* A resumed replay takes its versions and build ranges from its record. */
replay_err_t replay__record_load(replay_t *r, const bson_t *doc, char *errstr,
                                 size_t errlen) {
        bson_iter_t it, sub, item;
        if (bson_iter_init_find(&it, doc, "versions") &&
            BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &sub)) {
                while (bson_iter_next(&sub))
                        for (size_t i = 0; i < r->n_sel; i++)
                                if (strcmp(bson_iter_key(&sub),
                                           r->sel[i]->def->name) == 0)
                                        r->version[i] =
                                                bson_iter_as_int64(&sub);
        }
        for (size_t i = 0; i < r->n_sel; i++)
                if (r->version[i] <= 0) {
                        snprintf(errstr, errlen,
                                 "replay %s: its record names no version of "
                                 "%s",
                                 r->id, r->sel[i]->def->name);
                        return REPLAY_BAD_OPTION;
                }
        if (!bson_iter_init_find(&it, doc, "parts") ||
            !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &sub))
                return REPLAY_OK;
        while (bson_iter_next(&sub)) {
                char topic[256] = "";
                int32_t part = -1;
                int64_t start = 0, end = 0;
                if (!BSON_ITER_HOLDS_DOCUMENT(&sub) ||
                    !bson_iter_recurse(&sub, &item))
                        continue;
                while (bson_iter_next(&item)) {
                        const char *k = bson_iter_key(&item);
                        if (!strcmp(k, "topic") && BSON_ITER_HOLDS_UTF8(&item))
                                snprintf(topic, sizeof(topic), "%s",
                                         bson_iter_utf8(&item, NULL));
                        else if (!strcmp(k, "partition"))
                                part = (int32_t)bson_iter_as_int64(&item);
                        else if (!strcmp(k, "start"))
                                start = bson_iter_as_int64(&item);
                        else if (!strcmp(k, "end"))
                                end = bson_iter_as_int64(&item);
                }
                for (size_t i = 0; i < r->n_parts; i++)
                        if (r->parts[i].partition == part &&
                            strcmp(r->parts[i].name, topic) == 0) {
                                r->parts[i].start = start;
                                r->parts[i].end = end;
                        }
        }
        return REPLAY_OK;
}

/* ---------------------------------------------------------------------------
 * Which replay this is: a new one, or one to resume
 * ------------------------------------------------------------------------ */

typedef struct candidate {
        replay_t *r;
        const char *want_status; /* "building" or "tailing" */
        bson_t *found;           /* the record, when one matches */
        char other[128];         /* a running or different replay */
        bool alive;
} candidate_t;

const char *replay__doc_str(const bson_t *doc, const char *key) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
                return bson_iter_utf8(&it, NULL);
        return "";
}

/* The record's projections, tenant and start equal ours. */
static bool replay__same_spec(const replay_t *r, const bson_t *doc) {
        bson_iter_t it, arr;
        size_t n = 0;
        const char *from = replay__doc_str(doc, "from");
        if (!slice_eq(r->tenant, replay__doc_str(doc, "tenant")) ||
            strcmp(from, r->o->from && *r->o->from ? r->o->from : "earliest") !=
                    0)
                return false;
        if (!bson_iter_init_find(&it, doc, "projections") ||
            !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &arr))
                return false;
        while (bson_iter_next(&arr)) {
                bool known = false;
                if (!BSON_ITER_HOLDS_UTF8(&arr))
                        return false;
                for (size_t i = 0; i < r->n_sel; i++)
                        if (!strcmp(bson_iter_utf8(&arr, NULL),
                                    r->sel[i]->def->name))
                                known = true;
                if (!known)
                        return false;
                n++;
        }
        return n == r->n_sel;
}

static bool replay__candidate(const bson_t *doc, void *arg) {
        candidate_t *c = arg;
        bson_iter_t it;
        int64_t heard = 0;
        const char *id = replay__doc_str(doc, "_id");
        if (strcmp(replay__doc_str(doc, "status"), c->want_status) != 0)
                return true;
        if (bson_iter_init_find(&it, doc, "heartbeat_ms"))
                heard = bson_iter_as_int64(&it);
        if ((int64_t)clock_wall_ms() - heard < REPLAY_ALIVE_MS) {
                snprintf(c->other, sizeof(c->other), "%s", id);
                c->alive = true;
                return false;
        }
        if (replay__same_spec(c->r, doc) && !c->found) {
                c->found = bson_copy(doc);
                return true;
        }
        if (!c->other[0])
                snprintf(c->other, sizeof(c->other), "%s", id);
        return true;
}

/* Finds a replay to resume (its record in *found) or says why none may
 * start. The pointer names which replay builds each projection; a replay
 * that swapped and died in its tail is found by its record. */
replay_err_t replay__find_resumable(replay_t *r,
                                    const projection_snapshot_t *snap,
                                    bson_t **found, char *errstr,
                                    size_t errlen) {
        candidate_t c;
        bson_t filter;
        char builder[128];
        *found = NULL;
        for (size_t i = 0; i < r->n_sel; i++) {
                projection_builder(snap, r->sel[i]->def->name, builder,
                                   sizeof(builder));
                if (!builder[0])
                        continue;
                memset(&c, 0, sizeof(c));
                c.r = r;
                c.want_status = "building";
                bson_init(&filter);
                BSON_APPEND_UTF8(&filter, "_id", builder);
                if (store_find(r->o->store, r->o->group, REPLAY_COLL, &filter,
                               NULL, replay__candidate, &c, errstr,
                               errlen) != STORE_OK) {
                        bson_destroy(&filter);
                        return REPLAY_STORE;
                }
                bson_destroy(&filter);
                if (c.found && !c.alive) {
                        *found = c.found;
                        return REPLAY_OK;
                }
                if (c.found)
                        bson_destroy(c.found);
                snprintf(errstr, errlen, "replay %s is %s projection %s; %s",
                         builder,
                         c.alive ? "building" : "was stopped while building",
                         r->sel[i]->def->name,
                         c.alive ? "wait for it"
                                 : "run it again with its own options to "
                                   "resume it, or abort it (omnify replay "
                                   "abort GROUP ID)");
                return REPLAY_BUSY;
        }
        memset(&c, 0, sizeof(c));
        c.r = r;
        c.want_status = "tailing";
        bson_init(&filter);
        if (store_find(r->o->store, r->o->group, REPLAY_COLL, &filter, NULL,
                       replay__candidate, &c, errstr, errlen) != STORE_OK) {
                bson_destroy(&filter);
                return REPLAY_STORE;
        }
        bson_destroy(&filter);
        if (c.alive) {
                if (c.found)
                        bson_destroy(c.found);
                snprintf(errstr, errlen, "replay %s is finishing its swap",
                         c.other);
                return REPLAY_BUSY;
        }
        *found = c.found;
        return REPLAY_OK;
}

/* ---------------------------------------------------------------------------
 * Folding
 * ------------------------------------------------------------------------ */

/* Write what the folds hold, then commit the offsets read: a resume
 * starts here. Store outages are waited out (unless stopped). */
replay_err_t replay__checkpoint(replay_t *r, char *errstr, size_t errlen) {
        uint64_t t0 = clock_mono_ms();
        replay_err_t err = replay__folds_flush(r, errstr, errlen);
        if (err != REPLAY_OK)
                return err;
        r->last_checkpoint_ms = clock_mono_ms();
        err = replay__kafka_commit(r, errstr, errlen);
        r->flush_ms += clock_mono_ms() - t0;
        r->flushes++;
        return err;
}

static bool replay__stopped(const replay_t *r) {
        return r->o->stop && atomic_load(r->o->stop);
}

/* Keep to --rate: sleep while ahead of it. */
static void replay__pace(replay_t *r) {
        double allowed;
        if (r->o->rate <= 0)
                return;
        allowed = (double)r->o->rate *
                  (double)(clock_mono_ms() - r->rate_t0_ms) / 1000.0;
        if ((double)r->rate_events > allowed)
                backoff_sleep(r->o->stop,
                              (int64_t)(((double)r->rate_events - allowed) *
                                        1000.0 / (double)r->o->rate));
}

bool replay__reached(const replay_t *r) {
        for (size_t i = 0; i < r->n_parts; i++)
                if (r->parts[i].pos < r->parts[i].target)
                        return false;
        return true;
}

/* When nothing came: the consumer's own positions move past gaps in the
 * log (deleted or compacted records), which no message reports. */
static void replay__positions(replay_t *r) {
        rd_kafka_topic_partition_list_t *l = replay__kafka_list(r, false);
        if (rd_kafka_position(r->rk, l) == RD_KAFKA_RESP_ERR_NO_ERROR)
                for (int i = 0; i < l->cnt && (size_t)i < r->n_parts; i++)
                        if (!l->elems[i].err &&
                            l->elems[i].offset > r->parts[i].pos)
                                r->parts[i].pos = l->elems[i].offset;
        rd_kafka_topic_partition_list_destroy(l);
}

/* Fold until every partition reached its target (targets given, or the
 * high watermarks when targets is NULL). */
replay_err_t replay__consume_to(replay_t *r, const int64_t *targets,
                                char *errstr, size_t errlen) {
        rd_kafka_message_t **msgs = xcalloc(REPLAY_POLL_MAX, sizeof(*msgs));
        replay_err_t err = REPLAY_OK;
        /* Under --rate, small polls (a twentieth of a second's worth), so
         * the pace is even and progress moves smoothly. */
        size_t max = REPLAY_POLL_MAX;
        if (r->o->rate > 0 && (size_t)(r->o->rate / 20) < max)
                max = r->o->rate >= 20 ? (size_t)(r->o->rate / 20) : 1;
        for (size_t i = 0; i < r->n_parts; i++)
                r->parts[i].target = targets[i];
        while (!replay__reached(r)) {
                size_t n;
                if (replay__stopped(r)) {
                        err = replay__checkpoint(r, errstr, errlen);
                        if (err == REPLAY_OK) {
                                snprintf(errstr, errlen, "%s",
                                         replay_strerror(REPLAY_STOPPED));
                                err = REPLAY_STOPPED;
                        }
                        break;
                }
                n = replay__kafka_poll(r, msgs, max, 100);
                if (n && !r->events)
                        log_debug("replay %s: first events at +%llu ms", r->id,
                                  (unsigned long long)(clock_mono_ms() -
                                                       r->rate_t0_ms));
                for (size_t i = 0; i < n; i++) {
                        rd_kafka_message_t *m = msgs[i];
                        rpart_t *p;
                        if (m->err) {
                                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                                        log_warn("replay %s: %s", r->id,
                                                 rd_kafka_message_errstr(m));
                        } else if ((p = replay__part(r, m)) != NULL) {
                                p->pos = m->offset + 1;
                                r->events++;
                                r->rate_events++;
                                replay__fold_dispatch(r, m, p);
                                continue;
                        }
                        rd_kafka_message_destroy(m);
                }
                replay__folds_kick(r);
                if (!n)
                        replay__positions(r);
                replay__pace(r);
                if (replay__folds_held(r) >= r->o->memory_bytes ||
                    clock_mono_ms() - r->last_checkpoint_ms >=
                            (uint64_t)r->o->checkpoint_ms) {
                        err = replay__checkpoint(r, errstr, errlen);
                        if (err != REPLAY_OK)
                                break;
                }
                replay__report(r, false);
        }
        free(msgs);
        return err;
}
