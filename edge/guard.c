/*
 * guard.c - rate limits (see guard.h).
 *
 * A small chained hash table under one mutex; a bucket that refilled
 * completely holds no information and is swept when the table grows past
 * its size.
 */
#include "guard.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "hash.h"
#include "msgid.h"

#define GUARD_BUCKETS 4096
#define GUARD_SWEEP_AT 20000

typedef struct rate_entry {
        struct rate_entry *next;
        uint64_t hash;
        char *key;
        double tokens;
        uint64_t last_ms;
        double per_min;
} rate_entry_t;

struct guard {
        int ip_per_min, account_per_min;
        pthread_mutex_t rate_lock; /* guards rate and n_rate */
        rate_entry_t *rate[GUARD_BUCKETS];
        size_t n_rate;
};

guard_t *guard_new(int ip_per_min, int account_per_min) {
        guard_t *g = xcalloc(1, sizeof(*g));
        g->ip_per_min = ip_per_min;
        g->account_per_min = account_per_min;
        pthread_mutex_init(&g->rate_lock, NULL);
        return g;
}

void guard_destroy(guard_t *g) {
        if (!g)
                return;
        for (size_t b = 0; b < GUARD_BUCKETS; b++) {
                for (rate_entry_t *e = g->rate[b], *n; e; e = n) {
                        n = e->next;
                        free(e->key);
                        free(e);
                }
        }
        pthread_mutex_destroy(&g->rate_lock);
        free(g);
}

/* ---------------------------------------------------------------------------
 * Rate limits
 * ------------------------------------------------------------------------ */

/* Drop buckets that have refilled: they hold no information. Lock held. */
static void guard__sweep_rate(guard_t *g, uint64_t now) {
        for (size_t b = 0; b < GUARD_BUCKETS; b++) {
                rate_entry_t **pp = &g->rate[b];
                while (*pp) {
                        rate_entry_t *e = *pp;
                        if ((double)(now - e->last_ms) / 60000.0 * e->per_min +
                                    e->tokens >=
                            e->per_min) {
                                *pp = e->next;
                                free(e->key);
                                free(e);
                                g->n_rate--;
                        } else {
                                pp = &e->next;
                        }
                }
        }
}

/* Take a token from key's bucket; 0 or seconds to wait. Lock held. */
static int guard__take(guard_t *g, const char *key, double per_min,
                       uint64_t now) {
        uint64_t h = edge_hash(slice_of(key));
        rate_entry_t *e;
        for (e = g->rate[h % GUARD_BUCKETS]; e; e = e->next)
                if (e->hash == h && strcmp(e->key, key) == 0)
                        break;
        if (!e) {
                if (g->n_rate >= GUARD_SWEEP_AT)
                        guard__sweep_rate(g, now);
                e = xcalloc(1, sizeof(*e));
                e->hash = h;
                e->key = xstrdup(key);
                e->tokens = per_min;
                e->last_ms = now;
                e->per_min = per_min;
                e->next = g->rate[h % GUARD_BUCKETS];
                g->rate[h % GUARD_BUCKETS] = e;
                g->n_rate++;
        }
        e->tokens += (double)(now - e->last_ms) / 60000.0 * per_min;
        if (e->tokens > per_min)
                e->tokens = per_min;
        e->last_ms = now;
        if (e->tokens >= 1.0) {
                e->tokens -= 1.0;
                return 0;
        }
        return (int)((1.0 - e->tokens) * 60.0 / per_min) + 1;
}

/* "<bucket>|<kind>|<value>" into key (cut to fit); the value lowered when
 * fold is set (accounts are emails). Its length. */
static size_t guard__key(char *key, size_t size, const char *bucket,
                         const char *kind, slice_t value, bool fold) {
        size_t n = 0;
        for (const char *p = bucket; *p && n + 1 < size; p++)
                key[n++] = *p;
        for (const char *p = kind; *p && n + 1 < size; p++)
                key[n++] = *p;
        for (size_t i = 0; i < value.len && n + 1 < size; i++) {
                char c = value.ptr[i];
                key[n++] = fold && c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
        }
        key[n] = '\0';
        return n;
}

int guard_rate(guard_t *g, const char *bucket, const char *ip,
               slice_t account) {
        char ip_key[400], account_key[400];
        uint64_t now = clock_mono_ms();
        int wait, wait_account = 0;

        /* Keys are built before the lock is taken. */
        guard__key(ip_key, sizeof(ip_key), bucket, "|ip|", slice_of(ip), false);
        if (account.len)
                guard__key(account_key, sizeof(account_key), bucket, "|acct|",
                           account, true);
        pthread_mutex_lock(&g->rate_lock);
        wait = guard__take(g, ip_key, g->ip_per_min, now);
        if (!wait && account.len)
                wait_account =
                        guard__take(g, account_key, g->account_per_min, now);
        pthread_mutex_unlock(&g->rate_lock);
        return wait ? wait : wait_account;
}
