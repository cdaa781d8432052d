/*
 * replay_fold.c - the replay driver's folding, on worker threads (see
 * replay_internal.h).
 *
 * The reading thread polls and hands each message to the worker of its
 * partition (partition index modulo the workers), so the events of one key
 * (one partition) are folded in order by one thread. Each worker has fold
 * states of its own; a document gets writes from one worker only, except
 * those keyed by tenant (catalogs), whose writes commute ($set of
 * constants, $max, $min), so the workers' flushes may overlap in any
 * order. At a checkpoint the reader waits until every worker is idle, then
 * flushes every state and commits the offsets read.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "backoff.h"
#include "log.h"
#include "replay_internal.h"

/* Messages queued for one worker before the reader waits for it. */
#define WORKER_QUEUE_MAX 20000

struct rworker {
        replay_t *r;
        pthread_t thread;
        bool started;
        pthread_mutex_t lock; /* q, n, busy, stop */
        pthread_cond_t work, idle;
        rd_kafka_message_t **q;
        size_t n, cap;
        bool busy, stop;
        void *st[REPLAY_MAX_PROJECTIONS];
        msgpack_zone zone;
        atomic_llong folded, bad;
        atomic_size_t held;
};

static void fold__bad(rworker_t *w, const rd_kafka_message_t *msg,
                      const char *why) {
        replay_t *r = w->r;
        int logged;
        atomic_fetch_add(&w->bad, 1);
        logged = atomic_fetch_add(&r->bad_logged, 1);
        if (logged < 20)
                log_warn("replay %s: skipped %s[%d]@%" PRId64 ": %s%s", r->id,
                         rd_kafka_topic_name(msg->rkt), (int)msg->partition,
                         msg->offset, why,
                         logged == 19 ? " (no more of these logged)" : "");
}

static void fold__message(rworker_t *w, const rd_kafka_message_t *msg) {
        replay_t *r = w->r;
        env_t env;
        msgpack_object body;
        char why[256];
        bool unpacked = false;
        if (env_decode(msg, &env, why, sizeof(why)) != ENV_OK) {
                fold__bad(w, msg, why);
                return;
        }
        if (r->tenant.len &&
            (env.tenant.len != r->tenant.len ||
             memcmp(env.tenant.ptr, r->tenant.ptr, r->tenant.len) != 0))
                return;
        for (size_t k = 0; k < r->n_sel; k++) {
                if (!projection_wants(r->sel[k]->def, env.type))
                        continue;
                if (!unpacked) {
                        msgpack_zone_clear(&w->zone);
                        if (env_unpack(&env, &w->zone, &body) != ENV_OK) {
                                fold__bad(w, msg,
                                          "the value is not a msgpack map");
                                return;
                        }
                        unpacked = true;
                }
                why[0] = '\0';
                if (r->sel[k]->fold(w->st[k], &env, &body, why, sizeof(why)) <
                    0)
                        fold__bad(w, msg, why);
                else
                        atomic_fetch_add(&w->folded, 1);
        }
}

static void *fold__main(void *arg) {
        rworker_t *w = arg;
        rd_kafka_message_t **spare = NULL, **batch;
        size_t spare_cap = 0;
        pthread_mutex_lock(&w->lock);
        for (;;) {
                size_t n, cap;
                while (!w->n && !w->stop)
                        pthread_cond_wait(&w->work, &w->lock);
                if (!w->n)
                        break;
                /* Take the whole queue; the reader fills the spare one. */
                batch = w->q;
                n = w->n;
                cap = w->cap;
                w->q = spare;
                w->cap = spare_cap;
                w->n = 0;
                w->busy = true;
                pthread_mutex_unlock(&w->lock);
                for (size_t i = 0; i < n; i++) {
                        fold__message(w, batch[i]);
                        rd_kafka_message_destroy(batch[i]);
                }
                {
                        size_t held = 0;
                        for (size_t k = 0; k < w->r->n_sel; k++)
                                held += w->r->sel[k]->held(w->st[k]);
                        atomic_store(&w->held, held);
                }
                pthread_mutex_lock(&w->lock);
                spare = batch;
                spare_cap = cap;
                w->busy = false;
                pthread_cond_broadcast(&w->idle);
        }
        pthread_mutex_unlock(&w->lock);
        free(spare);
        return NULL;
}

void replay__folds_open(replay_t *r, int workers) {
        bool fresh = !r->res->resumed && !(r->o->from && *r->o->from &&
                                           strcmp(r->o->from, "earliest") != 0);
        for (size_t k = 0; k < r->n_sel; k++) {
                replay_target_t *t = &r->target[k];
                t->store = r->o->store;
                t->db = r->o->group;
                t->def = r->sel[k]->def;
                t->version = r->version[k];
                t->tenant = r->tenant;
                t->fresh = fresh;
        }
        r->n_workers = workers > 0 ? workers : 1;
        r->workers = xcalloc((size_t)r->n_workers, sizeof(*r->workers));
        for (int i = 0; i < r->n_workers; i++) {
                rworker_t *w = xcalloc(1, sizeof(*w));
                w->r = r;
                pthread_mutex_init(&w->lock, NULL);
                pthread_cond_init(&w->work, NULL);
                pthread_cond_init(&w->idle, NULL);
                msgpack_zone_init(&w->zone, 8192);
                atomic_init(&w->folded, 0);
                atomic_init(&w->bad, 0);
                atomic_init(&w->held, 0);
                for (size_t k = 0; k < r->n_sel; k++)
                        w->st[k] = r->sel[k]->open(&r->target[k]);
                w->started =
                        pthread_create(&w->thread, NULL, fold__main, w) == 0;
                if (!w->started)
                        log_error("replay %s: cannot start fold worker %d",
                                  r->id, i);
                r->workers[i] = w;
        }
}

void replay__folds_close(replay_t *r) {
        for (int i = 0; r->workers && i < r->n_workers; i++) {
                rworker_t *w = r->workers[i];
                pthread_mutex_lock(&w->lock);
                w->stop = true;
                pthread_cond_broadcast(&w->work);
                pthread_mutex_unlock(&w->lock);
                if (w->started)
                        pthread_join(w->thread, NULL);
                for (size_t j = 0; j < w->n; j++)
                        rd_kafka_message_destroy(w->q[j]);
                free(w->q);
                for (size_t k = 0; k < r->n_sel; k++)
                        if (w->st[k] && r->sel[k]->close)
                                r->sel[k]->close(w->st[k]);
                msgpack_zone_destroy(&w->zone);
                pthread_cond_destroy(&w->idle);
                pthread_cond_destroy(&w->work);
                pthread_mutex_destroy(&w->lock);
                free(w);
        }
        free(r->workers);
        r->workers = NULL;
        r->n_workers = 0;
}

void replay__fold_dispatch(replay_t *r, rd_kafka_message_t *msg,
                           const rpart_t *part) {
        rworker_t *w =
                r->workers[(size_t)(part - r->parts) % (size_t)r->n_workers];
        pthread_mutex_lock(&w->lock);
        while (w->n >= WORKER_QUEUE_MAX && w->started) {
                pthread_cond_signal(&w->work);
                pthread_cond_wait(&w->idle, &w->lock);
        }
        if (w->n == w->cap) {
                w->cap = w->cap ? w->cap * 2 : 1024;
                w->q = xrealloc(w->q, w->cap * sizeof(*w->q));
        }
        w->q[w->n++] = msg;
        pthread_mutex_unlock(&w->lock);
}

void replay__folds_kick(replay_t *r) {
        for (int i = 0; i < r->n_workers; i++) {
                rworker_t *w = r->workers[i];
                pthread_mutex_lock(&w->lock);
                if (w->n)
                        pthread_cond_signal(&w->work);
                pthread_mutex_unlock(&w->lock);
        }
}

void replay__folds_wait(replay_t *r) {
        replay__folds_kick(r);
        for (int i = 0; i < r->n_workers; i++) {
                rworker_t *w = r->workers[i];
                pthread_mutex_lock(&w->lock);
                while ((w->n || w->busy) && w->started)
                        pthread_cond_wait(&w->idle, &w->lock);
                pthread_mutex_unlock(&w->lock);
        }
}

size_t replay__folds_held(replay_t *r) {
        size_t n = 0;
        for (int i = 0; i < r->n_workers; i++)
                n += atomic_load(&r->workers[i]->held);
        return n;
}

void replay__folds_counts(replay_t *r, int64_t *folded, int64_t *bad) {
        *folded = *bad = 0;
        for (int i = 0; i < r->n_workers; i++) {
                *folded += atomic_load(&r->workers[i]->folded);
                *bad += atomic_load(&r->workers[i]->bad);
        }
}

replay_err_t replay__folds_flush(replay_t *r, char *errstr, size_t errlen) {
        replay__folds_wait(r);
        for (int i = 0; i < r->n_workers; i++) {
                rworker_t *w = r->workers[i];
                for (size_t k = 0; k < r->n_sel; k++) {
                        for (int attempt = 0;; attempt++) {
                                store_err_t serr = r->sel[k]->flush(
                                        w->st[k], errstr, errlen);
                                if (serr == STORE_OK)
                                        break;
                                if (!store_err_transient(serr) ||
                                    attempt >= 30) {
                                        log_error("replay %s: writing %s: %s",
                                                  r->id, r->sel[k]->def->name,
                                                  errstr);
                                        return REPLAY_STORE;
                                }
                                log_warn("replay %s: writing %s: %s; "
                                         "retrying",
                                         r->id, r->sel[k]->def->name, errstr);
                                if (backoff_wait(r->o->stop, BACKOFF_DEFAULT,
                                                 attempt))
                                        return REPLAY_STOPPED;
                        }
                }
                atomic_store(&w->held, 0);
        }
        return REPLAY_OK;
}
