/*
 * run.c - a run's document and its transitions (see agentkit_internal.h).
 *
 * Collection runs: {_id: run id, tenant, kind, workflow_id, version,
 * status, seq, created_at, updated_at, ended_at, parent_run_id, thread_id,
 * state: the run's state as JSON text}. seq counts transitions; a write
 * replaces the document only while seq is still the one read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agentkit_internal.h"
#include "metrics.h"

#define AK_TX_TRIES 50

ak_state_t *ak_state(rt_ctx_t *ctx) {
        return rt_state(ctx);
}

static uint64_t ak__now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static pthread_mutex_t *ak__lock_of(ak_state_t *st, const char *run_id) {
        uint32_t h = 2166136261u;
        for (const char *p = run_id; *p; p++)
                h = (h ^ (unsigned char)*p) * 16777619u;
        return &st->locks[h % AK_LOCKS];
}

rt_out_opts_t ak_run_caller(const json_t *run) {
        rt_out_opts_t o = {0};
        o.tenant = slice_of(ak_str(run, "tenant"));
        o.user = slice_of(ak_str(run, "user"));
        o.roles = slice_of(ak_str(run, "roles"));
        return o;
}

bool ak_run_visible(rt_ctx_t *ctx, const json_t *run) {
        rt_caller_t c;
        const char *t = ak_str(run, "tenant");
        rt_caller(ctx, &c);
        return t && c.tenant.len && slice_eq(c.tenant, t);
}

/* ---------------------------------------------------------------------------
 * Loading and saving
 * ------------------------------------------------------------------------ */

store_err_t ak_run_load(ak_state_t *st, const char *run_id, json_t **state,
                        int64_t *seq) {
        bson_t filter = BSON_INITIALIZER, doc;
        char errstr[256];
        bson_iter_t it;
        store_err_t err;
        json_error_t jerr;
        *state = NULL;
        *seq = 0;
        BSON_APPEND_UTF8(&filter, "_id", run_id);
        err = store_find_one(st->store, runtime_db(st->rt), AK_RUNS, &filter,
                             NULL, &doc, errstr, sizeof(errstr));
        bson_destroy(&filter);
        if (err)
                return err;
        if (bson_iter_init_find(&it, &doc, "seq") && BSON_ITER_HOLDS_INT(&it))
                *seq = bson_iter_as_int64(&it);
        if (bson_iter_init_find(&it, &doc, "state") &&
            BSON_ITER_HOLDS_UTF8(&it)) {
                uint32_t len;
                const char *text = bson_iter_utf8(&it, &len);
                *state = json_loadb(text, len, 0, &jerr);
        }
        bson_destroy(&doc);
        if (!*state || *seq <= 0) {
                json_decref(*state);
                *state = NULL;
                log_error("run %s: its document is unreadable", run_id);
                return STORE_BAD_REPLY;
        }
        return STORE_OK;
}

/* Drop what history can spare (the inputs and outputs of earlier attempts,
 * the oldest events' data) so the state fits. */
static void ak__shrink(json_t *run) {
        const char *id;
        json_t *s, *ev;
        size_t i;
        json_object_foreach(json_object_get(run, "steps"), id, s) {
                json_t *atts = json_object_get(s, "attempts"), *a;
                size_t n = json_array_size(atts);
                json_array_foreach(atts, i, a) {
                        if (i + 1 < n) {
                                json_object_del(a, "input");
                                json_object_del(a, "output");
                        }
                }
        }
        ev = json_object_get(run, "events");
        for (i = 0; i + 20 < json_array_size(ev); i++)
                json_object_set_new(json_array_get(ev, i), "data",
                                    json_object());
}

static void ak__append_time(bson_t *b, const char *key, const json_t *run,
                            const char *field) {
        int64_t v = ak_int(run, field, 0);
        if (v)
                bson_append_int64(b, key, -1, v);
}

#define AK_CORR_KEEP_MS (7LL * 86400 * 1000)

/* The correlations of the command steps this transition dispatches, in the
 * same bulk as the run's record: a reply always finds its step. */
static void ak__corr_writes(store_bulk_t *b, const ak_tx_t *tx) {
        size_t i;
        const json_t *e;
        json_array_foreach(tx->fx, i, e) {
                const char *key = ak_str(e, "corr");
                bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, set;
                char id[MSGID_TEXT_SIZE + 8];
                if (!key)
                        continue;
                snprintf(id, sizeof(id), "%s%s", AK_CORR_PREFIX, key);
                BSON_APPEND_UTF8(&f, "_id", id);
                BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
                BSON_APPEND_UTF8(&set, "run_id", ak_str(tx->run, "run_id"));
                BSON_APPEND_UTF8(&set, "step_id", ak_str(e, "step"));
                BSON_APPEND_INT32(&set, "attempt", (int)ak_int(e, "a", 0));
                BSON_APPEND_DATE_TIME(&set, "expires_at",
                                      tx->now + AK_CORR_KEEP_MS);
                bson_append_document_end(&u, &set);
                store_bulk_update(b, &f, &u, STORE_UPSERT);
                bson_destroy(&f);
                bson_destroy(&u);
        }
}

/*
 * The effects done before the run is written, not after: an agent's
 * thread. A client that sees the run completed may at once ask the next
 * question in the thread, which another worker may start before this one
 * got to its effects; written first, the thread already holds the answer.
 * The effect stays in the list: done again after the write (or on a
 * redelivery), it finds its run in the thread and does nothing.
 */
static bool ak__before_write(ak_tx_t *tx) {
        size_t i;
        const json_t *e;
        json_array_foreach(tx->fx, i, e) {
                const char *k = ak_str(e, "k");
                if (k && strcmp(k, "thread") == 0 && !ak_agent_thread_fx(tx, e))
                        return false;
        }
        return true;
}

/* Insert (seq 0) or replace the run while its seq is the one read, with
 * the correlations of the commands it sends, in one bulk (one round trip).
 * STORE_NOT_FOUND: someone changed it meanwhile; STORE_DUPLICATE: someone
 * made it meanwhile. On success the text written is kept in the cache. */
static store_err_t ak__run_save(ak_tx_t *tx) {
        ak_state_t *st = tx->st;
        json_t *run = tx->run;
        char *text = json_dumps(run, JSON_COMPACT);
        bson_t doc = BSON_INITIALIZER, filter = BSON_INITIALIZER;
        char errstr[256];
        store_bulk_t *b;
        store_bulk_result_t r = {0};
        store_err_t err;
        const char *v;

        if (text && strlen(text) > (size_t)st->set->max_state_bytes) {
                free(text);
                ak__shrink(run);
                text = json_dumps(run, JSON_COMPACT);
        }
        if (!text || strlen(text) > (size_t)st->set->max_state_bytes) {
                log_error("run %s: its state passed %d bytes",
                          ak_str(run, "run_id"), st->set->max_state_bytes);
                free(text);
                return STORE_ERROR;
        }
        BSON_APPEND_UTF8(&doc, "_id", ak_str(run, "run_id"));
        BSON_APPEND_UTF8(&doc, "tenant", ak_str(run, "tenant"));
        BSON_APPEND_UTF8(&doc, "kind", ak_str(run, "kind"));
        BSON_APPEND_UTF8(&doc, "workflow_id", ak_str(run, "workflow_id"));
        BSON_APPEND_INT64(&doc, "version", ak_int(run, "version", 0));
        BSON_APPEND_UTF8(&doc, "status", ak_str(run, "status"));
        BSON_APPEND_INT64(&doc, "seq", tx->seq + 1);
        ak__append_time(&doc, "created_at", run, "created_at");
        ak__append_time(&doc, "updated_at", run, "updated_at");
        ak__append_time(&doc, "ended_at", run, "ended_at");
        if ((v = ak_str(json_object_get(run, "parent"), "run_id")))
                BSON_APPEND_UTF8(&doc, "parent_run_id", v);
        if ((v = ak_str(json_object_get(run, "agent"), "thread_id")))
                BSON_APPEND_UTF8(&doc, "thread_id", v);
        BSON_APPEND_UTF8(&doc, "state", text);
        b = store_bulk_new(st->store, runtime_db(st->rt), AK_RUNS, true);
        if (tx->seq == 0) {
                store_bulk_insert(b, &doc);
        } else {
                BSON_APPEND_UTF8(&filter, "_id", ak_str(run, "run_id"));
                BSON_APPEND_INT64(&filter, "seq", tx->seq);
                store_bulk_replace(b, &filter, &doc, false);
        }
        ak__corr_writes(b, tx);
        err = store_bulk_run(b, &r, errstr, sizeof(errstr));
        store_bulk_destroy(b);
        if (!err && tx->seq > 0 && r.matched == 0)
                err = STORE_NOT_FOUND;
        if (err && err != STORE_NOT_FOUND && err != STORE_DUPLICATE)
                log_warn("run %s: writing its state: %s", ak_str(run, "run_id"),
                         errstr);
        if (err)
                ak_cache_drop_run(st->cache, ak_str(run, "run_id"));
        else
                ak_cache_put_run(st->cache, ak_str(run, "run_id"), tx->seq + 1,
                                 run, strlen(text));
        free(text);
        bson_destroy(&doc);
        bson_destroy(&filter);
        return err;
}

/* ---------------------------------------------------------------------------
 * Applied messages
 * ------------------------------------------------------------------------ */

static const json_t *ak__applied(const json_t *run, const char *msg_id) {
        size_t i;
        const json_t *e;
        json_array_foreach(json_object_get(run, "applied"), i, e) {
                const char *m = ak_str(e, "m");
                if (m && strcmp(m, msg_id) == 0)
                        return e;
        }
        return NULL;
}

static void ak__applied_push(ak_tx_t *tx) {
        json_t *list = json_object_get(tx->run, "applied");
        json_t *e = json_pack("{s:s, s:O}", "m", tx->msg_id, "fx", tx->fx);
        if (!json_is_array(list)) {
                list = json_array();
                json_object_set_new(tx->run, "applied", list);
        }
        if (tx->reply_status) {
                json_object_set_new(e, "rs", json_integer(tx->reply_status));
                json_object_set(e, "rb", tx->reply ? tx->reply : json_null());
        }
        json_array_append_new(list, e);
        while (json_array_size(list) > AK_APPLIED_KEEP)
                json_array_remove(list, 0);
}

static void ak__tx_init(ak_tx_t *tx, rt_ctx_t *ctx) {
        const env_t *env = rt_env(ctx);
        memset(tx, 0, sizeof(*tx));
        tx->st = ak_state(ctx);
        tx->ctx = ctx;
        snprintf(tx->msg_id, sizeof(tx->msg_id), "%.*s", (int)env->id.len,
                 env->id.ptr ? env->id.ptr : "");
        tx->fx = json_array();
        tx->now = (int64_t)clock_wall_ms();
}

static void ak__tx_deinit(ak_tx_t *tx) {
        json_decref(tx->run);
        json_decref(tx->fx);
        json_decref(tx->reply);
        ak_def_release(tx->def);
        memset(tx, 0, sizeof(*tx));
}

static void ak__tx_reply(ak_tx_t *tx) {
        if (tx->reply_status)
                ak_reply_json(tx->ctx, tx->reply_status, tx->reply);
}

/* The run's definition, for a loaded run. */
static store_err_t ak__tx_def(ak_tx_t *tx) {
        const char *key = ak_str(tx->run, "def_key");
        if (!key)
                return STORE_OK;
        return ak_def_get_key(tx->st, key, &tx->def);
}

handler_result_t ak_tx_run(rt_ctx_t *ctx, const char *run_id, ak_apply_fn fn,
                           void *arg) {
        ak_state_t *st = ak_state(ctx);
        pthread_mutex_t *lock = ak__lock_of(st, run_id);
        handler_result_t res = HANDLER_OK;
        uint64_t t_us = ak__now_us();
        bool cached = false;
        size_t cached_len = 0;
        ak_tx_t tx;

        pthread_mutex_lock(lock);
        for (int tries = 0;; tries++) {
                store_err_t err;
                const json_t *seen;
                ak__tx_init(&tx, ctx);
                /* This process's last write of the run, unless a conflict
                 * just showed it stale. */
                cached = tries == 0 &&
                         ak_cache_take_run(st->cache, run_id, &tx.run, &tx.seq,
                                           &cached_len);
                err = cached ? STORE_OK
                             : ak_run_load(st, run_id, &tx.run, &tx.seq);
                if (err == STORE_NOT_FOUND) {
                        tx.run = NULL;
                } else if (err || (err = ak__tx_def(&tx))) {
                        res = ak_store_failed(ctx, err, "loading a run");
                        break;
                }
                if (tx.run && (seen = ak__applied(tx.run, tx.msg_id))) {
                        /* Applied before: its outputs may never have left
                         * (a crash between the write and them). */
                        tx.replayed = true;
                        tx.reply_status = (int)ak_int(seen, "rs", 0);
                        tx.reply = json_incref(json_object_get(seen, "rb"));
                        if (!ak_fx_exec(&tx, json_object_get(seen, "fx"))) {
                                res = HANDLER_TRANSIENT;
                                break;
                        }
                        ak__tx_reply(&tx);
                        if (cached)
                                ak_cache_put_run(st->cache, run_id, tx.seq,
                                                 tx.run, cached_len);
                        break;
                }
                if (!fn(&tx, arg)) {
                        res = HANDLER_TRANSIENT;
                        break;
                }
                if (!tx.changed) {
                        ak__tx_reply(&tx);
                        if (cached && tx.run)
                                ak_cache_put_run(st->cache, run_id, tx.seq,
                                                 tx.run, cached_len);
                        break;
                }
                ak_run_advance(&tx);
                json_object_set_new(tx.run, "updated_at", json_integer(tx.now));
                ak__applied_push(&tx);
                if (!ak__before_write(&tx)) {
                        res = HANDLER_TRANSIENT;
                        break;
                }
                {
                        uint64_t w0 = ak__now_us();
                        err = ak__run_save(&tx);
                        metrics_observe_us(st->write_seconds,
                                           ak__now_us() - w0);
                }
                if ((err == STORE_NOT_FOUND || err == STORE_DUPLICATE) &&
                    tries < AK_TX_TRIES) {
                        metrics_add(st->conflicts, 1);
                        ak__tx_deinit(&tx);
                        continue; /* changed or made meanwhile: again */
                }
                if (err) {
                        res = store_err_transient(err) ? HANDLER_TRANSIENT
                                                       : HANDLER_PERMANENT;
                        if (res == HANDLER_PERMANENT)
                                rt_reply_problem(ctx, 500,
                                                 "Internal Server Error",
                                                 "the run could not be "
                                                 "recorded");
                        break;
                }
                tx.seq++;
                if (!ak_fx_exec(&tx, tx.fx)) {
                        res = HANDLER_TRANSIENT;
                        break;
                }
                ak__tx_reply(&tx);
                break;
        }
        ak__tx_deinit(&tx);
        pthread_mutex_unlock(lock);
        metrics_observe_us(st->tx_seconds, ak__now_us() - t_us);
        return res;
}
