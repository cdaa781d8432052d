/*
 * cache.c - what a process keeps between a run's transitions: the state it
 * wrote last (so the next transition of that run need not read it back),
 * and where replies to its commands go (request id -> run, step, attempt).
 *
 * Both are hints. A run's messages go to one partition, so one process
 * handles them in turn and its last write is the run's state; when another
 * process wrote since (partitions moved), the compare-and-set of the next
 * write fails on the seq, the entry is dropped and the run read from the
 * store. A correlation not found here is read from the store, where the
 * transition that sent the command wrote it with the run's record.
 *
 * Direct-mapped tables (a slot per hash, the newest entry wins), each slot
 * under one of 64 locks; run states count against a byte budget (those
 * larger than 512 KiB are not kept).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentkit_internal.h"

#define AK_CACHE_LOCKS 64
#define AK_CACHE_RUN_SLOTS 4096
#define AK_CACHE_CORR_SLOTS 65536
#define AK_CACHE_RUN_MAX (512 * 1024)
/* A parsed state takes about this many times its text's bytes. */
#define AK_CACHE_PARSED 6

typedef struct ak_run_entry {
        char id[MSGID_TEXT_SIZE];
        int64_t seq;
        json_t *state; /* owned */
        size_t len;    /* what it counts against the budget */
} ak_run_entry_t;

typedef struct ak_corr_entry {
        char id[MSGID_TEXT_SIZE];
        char run[MSGID_TEXT_SIZE];
        char step[AK_ID_MAX * 2 + 1];
        int a;
} ak_corr_entry_t;

struct ak_cache {
        pthread_mutex_t locks[AK_CACHE_LOCKS];
        ak_run_entry_t *runs;
        ak_corr_entry_t *corr;
        atomic_size_t bytes;
        size_t max_bytes;
};

static uint32_t ak__hash(const char *s) {
        uint32_t h = 2166136261u;
        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 16777619u;
        return h;
}

ak_cache_t *ak_cache_new(size_t max_bytes) {
        ak_cache_t *c = xcalloc(1, sizeof(*c));
        for (int i = 0; i < AK_CACHE_LOCKS; i++)
                pthread_mutex_init(&c->locks[i], NULL);
        c->runs = xcalloc(AK_CACHE_RUN_SLOTS, sizeof(*c->runs));
        c->corr = xcalloc(AK_CACHE_CORR_SLOTS, sizeof(*c->corr));
        c->max_bytes = max_bytes;
        atomic_init(&c->bytes, 0);
        return c;
}

void ak_cache_destroy(ak_cache_t *c) {
        if (!c)
                return;
        for (size_t i = 0; i < AK_CACHE_RUN_SLOTS; i++)
                json_decref(c->runs[i].state);
        for (int i = 0; i < AK_CACHE_LOCKS; i++)
                pthread_mutex_destroy(&c->locks[i]);
        free(c->runs);
        free(c->corr);
        free(c);
}

void ak_cache_put_run(ak_cache_t *c, const char *run_id, int64_t seq,
                      json_t *state, size_t text_len) {
        uint32_t h = ak__hash(run_id);
        ak_run_entry_t *e = &c->runs[h % AK_CACHE_RUN_SLOTS];
        pthread_mutex_t *lock = &c->locks[h % AK_CACHE_LOCKS];
        size_t cost = text_len * AK_CACHE_PARSED;
        bool keep = text_len <= AK_CACHE_RUN_MAX &&
                    atomic_load(&c->bytes) + cost <= c->max_bytes;
        pthread_mutex_lock(lock);
        atomic_fetch_sub(&c->bytes, e->len);
        json_decref(e->state);
        e->state = keep ? json_incref(state) : NULL;
        e->len = keep ? cost : 0;
        e->seq = seq;
        snprintf(e->id, sizeof(e->id), "%s", keep ? run_id : "");
        atomic_fetch_add(&c->bytes, e->len);
        pthread_mutex_unlock(lock);
}

bool ak_cache_take_run(ak_cache_t *c, const char *run_id, json_t **state,
                       int64_t *seq, size_t *text_len) {
        uint32_t h = ak__hash(run_id);
        ak_run_entry_t *e = &c->runs[h % AK_CACHE_RUN_SLOTS];
        pthread_mutex_t *lock = &c->locks[h % AK_CACHE_LOCKS];
        bool hit = false;
        pthread_mutex_lock(lock);
        if (e->state && strcmp(e->id, run_id) == 0) {
                *state = e->state; /* handed over: the transition owns it */
                *seq = e->seq;
                *text_len = e->len / AK_CACHE_PARSED;
                e->state = NULL;
                atomic_fetch_sub(&c->bytes, e->len);
                e->len = 0;
                e->id[0] = '\0';
                hit = true;
        }
        pthread_mutex_unlock(lock);
        return hit;
}

void ak_cache_drop_run(ak_cache_t *c, const char *run_id) {
        uint32_t h = ak__hash(run_id);
        ak_run_entry_t *e = &c->runs[h % AK_CACHE_RUN_SLOTS];
        pthread_mutex_t *lock = &c->locks[h % AK_CACHE_LOCKS];
        pthread_mutex_lock(lock);
        if (strcmp(e->id, run_id) == 0) {
                atomic_fetch_sub(&c->bytes, e->len);
                json_decref(e->state);
                e->state = NULL;
                e->len = 0;
                e->id[0] = '\0';
        }
        pthread_mutex_unlock(lock);
}

void ak_cache_put_corr(ak_cache_t *c, const char *req_id, const char *run_id,
                       const char *step_id, int a) {
        uint32_t h = ak__hash(req_id);
        ak_corr_entry_t *e = &c->corr[h % AK_CACHE_CORR_SLOTS];
        pthread_mutex_t *lock = &c->locks[h % AK_CACHE_LOCKS];
        pthread_mutex_lock(lock);
        snprintf(e->id, sizeof(e->id), "%s", req_id);
        snprintf(e->run, sizeof(e->run), "%s", run_id);
        snprintf(e->step, sizeof(e->step), "%s", step_id);
        e->a = a;
        pthread_mutex_unlock(lock);
}

bool ak_cache_get_corr(ak_cache_t *c, const char *req_id, char *run_id,
                       char *step_id, size_t step_size, int *a) {
        uint32_t h = ak__hash(req_id);
        ak_corr_entry_t *e = &c->corr[h % AK_CACHE_CORR_SLOTS];
        pthread_mutex_t *lock = &c->locks[h % AK_CACHE_LOCKS];
        bool hit = false;
        pthread_mutex_lock(lock);
        if (strcmp(e->id, req_id) == 0) {
                snprintf(run_id, MSGID_TEXT_SIZE, "%s", e->run);
                snprintf(step_id, step_size, "%s", e->step);
                *a = e->a;
                hit = true;
        }
        pthread_mutex_unlock(lock);
        return hit;
}
