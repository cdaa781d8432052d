/*
 * guard.c - rate limits, revoked sessions, document versions (see guard.h).
 *
 * Both tables are small chained hash tables under one mutex each; entries
 * expire (a bucket that refilled completely, a session whose tokens can no
 * longer be valid) and are swept when a table grows past its size.
 */
#include "guard.h"

#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
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

typedef struct revoked_entry {
        struct revoked_entry *next;
        msgid_t sid;
        uint64_t until_ms;
} revoked_entry_t;

struct guard {
        int ip_per_min, account_per_min;
        pthread_mutex_t rate_lock; /* guards rate and n_rate */
        rate_entry_t *rate[GUARD_BUCKETS];
        size_t n_rate;
        pthread_mutex_t revoked_lock; /* guards revoked and n_revoked */
        revoked_entry_t *revoked[GUARD_BUCKETS];
        size_t n_revoked;
        pthread_mutex_t version_lock; /* guards terms and privacy */
        int64_t terms, privacy;
};

guard_t *guard_new(int ip_per_min, int account_per_min) {
        guard_t *g = xcalloc(1, sizeof(*g));
        g->ip_per_min = ip_per_min;
        g->account_per_min = account_per_min;
        g->terms = g->privacy = -1;
        pthread_mutex_init(&g->rate_lock, NULL);
        pthread_mutex_init(&g->revoked_lock, NULL);
        pthread_mutex_init(&g->version_lock, NULL);
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
                for (revoked_entry_t *e = g->revoked[b], *n; e; e = n) {
                        n = e->next;
                        free(e);
                }
        }
        pthread_mutex_destroy(&g->rate_lock);
        pthread_mutex_destroy(&g->revoked_lock);
        pthread_mutex_destroy(&g->version_lock);
        free(g);
}

/* ---------------------------------------------------------------------------
 * Rate limits
 * ------------------------------------------------------------------------ */

static uint64_t guard__hash(const char *s) {
        uint64_t h = 0xcbf29ce484222325ull;
        for (; *s; s++) {
                h ^= (unsigned char)*s;
                h *= 0x100000001b3ull;
        }
        return h;
}

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
        uint64_t h = guard__hash(key);
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

int guard_rate(guard_t *g, const char *bucket, const char *ip,
               slice_t account) {
        char key[400];
        uint64_t now = clock_mono_ms();
        int wait, wait_account = 0;
        size_t n;

        pthread_mutex_lock(&g->rate_lock);
        snprintf(key, sizeof(key), "%s|ip|%s", bucket, ip ? ip : "");
        wait = guard__take(g, key, g->ip_per_min, now);
        if (!wait && account.len) {
                n = (size_t)snprintf(key, sizeof(key), "%s|acct|", bucket);
                for (size_t i = 0; i < account.len && n + 1 < sizeof(key);
                     i++) {
                        char c = account.ptr[i];
                        key[n++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
                }
                key[n] = '\0';
                wait_account = guard__take(g, key, g->account_per_min, now);
        }
        pthread_mutex_unlock(&g->rate_lock);
        return wait ? wait : wait_account;
}

/* ---------------------------------------------------------------------------
 * Revoked sessions
 * ------------------------------------------------------------------------ */

void guard_revoke(guard_t *g, slice_t sid, uint64_t until_ms) {
        msgid_t id;
        size_t b;
        revoked_entry_t *e;
        uint64_t now = clock_wall_ms();
        if (!msgid_parse(sid.ptr, sid.len, &id) || until_ms <= now)
                return;
        b = msgid_hash(&id) % GUARD_BUCKETS;
        pthread_mutex_lock(&g->revoked_lock);
        for (e = g->revoked[b]; e; e = e->next)
                if (memcmp(e->sid.b, id.b, 16) == 0)
                        break;
        if (!e) {
                if (g->n_revoked >= GUARD_SWEEP_AT) {
                        for (size_t i = 0; i < GUARD_BUCKETS; i++) {
                                revoked_entry_t **pp = &g->revoked[i];
                                while (*pp) {
                                        if ((*pp)->until_ms <= now) {
                                                revoked_entry_t *dead = *pp;
                                                *pp = dead->next;
                                                free(dead);
                                                g->n_revoked--;
                                        } else {
                                                pp = &(*pp)->next;
                                        }
                                }
                        }
                }
                e = xcalloc(1, sizeof(*e));
                e->sid = id;
                e->next = g->revoked[b];
                g->revoked[b] = e;
                g->n_revoked++;
        }
        if (until_ms > e->until_ms)
                e->until_ms = until_ms;
        pthread_mutex_unlock(&g->revoked_lock);
}

bool guard_is_revoked(guard_t *g, slice_t sid) {
        msgid_t id;
        bool revoked = false;
        if (!msgid_parse(sid.ptr, sid.len, &id))
                return false;
        pthread_mutex_lock(&g->revoked_lock);
        for (revoked_entry_t *e = g->revoked[msgid_hash(&id) % GUARD_BUCKETS];
             e; e = e->next) {
                if (memcmp(e->sid.b, id.b, 16) == 0) {
                        revoked = e->until_ms > clock_wall_ms();
                        break;
                }
        }
        pthread_mutex_unlock(&g->revoked_lock);
        return revoked;
}

/* ---------------------------------------------------------------------------
 * Document versions
 * ------------------------------------------------------------------------ */

void guard_set_version(guard_t *g, slice_t type, int64_t version) {
        pthread_mutex_lock(&g->version_lock);
        if (slice_eq(type, "terms") && version > g->terms)
                g->terms = version;
        else if (slice_eq(type, "privacy") && version > g->privacy)
                g->privacy = version;
        pthread_mutex_unlock(&g->version_lock);
}

int64_t guard_version(guard_t *g, const char *type) {
        int64_t v = -1;
        pthread_mutex_lock(&g->version_lock);
        if (strcmp(type, "terms") == 0)
                v = g->terms;
        else if (strcmp(type, "privacy") == 0)
                v = g->privacy;
        pthread_mutex_unlock(&g->version_lock);
        return v;
}
