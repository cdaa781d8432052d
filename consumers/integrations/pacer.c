/*
 * pacer.c - per-key token buckets for provider calls (see pacer.h).
 *
 * Each key keeps tat, the time (ms, as a double) at which its bucket would
 * be full again given the calls reserved so far, and blocked_until. A call
 * of cost c at rate r and burst b may start at max(tat, now) + c/r - b/r;
 * reserving it moves tat to max(tat, now) + c/r. Keys live in a small open
 * hash table under one lock; a key idle for an hour is reused.
 */
#include "pacer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "msgid.h"

#define PACER_SLOTS 4096 /* keys at once: far more than accounts synced */
#define PACER_KEY_MAX 160
#define PACER_IDLE_MS (3600 * 1000)

typedef struct pacer_slot {
        char key[PACER_KEY_MAX];
        double tat;            /* ms */
        int64_t blocked_until; /* ms */
        int64_t last_ms;       /* last use, for reuse */
        /* What the provider said its bucket is (ig_pacer_level): calls
         * then pace by it when it is stricter than the documented one. */
        double learned_rate, learned_burst;
} pacer_slot_t;

struct ig_pacer {
        pthread_mutex_t lock; /* everything below */
        double scale;
        pacer_slot_t *slots;
};

ig_pacer_t *ig_pacer_new(int pct) {
        ig_pacer_t *p = xcalloc(1, sizeof(*p));
        pthread_mutex_init(&p->lock, NULL);
        p->scale = (pct < 1 ? 1 : pct > 100 ? 100 : pct) / 100.0;
        p->slots = xcalloc(PACER_SLOTS, sizeof(*p->slots));
        return p;
}

void ig_pacer_destroy(ig_pacer_t *p) {
        if (!p)
                return;
        pthread_mutex_destroy(&p->lock);
        free(p->slots);
        free(p);
}

static uint64_t pacer__hash(const char *s) {
        uint64_t h = 1469598103934665603ull;
        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 1099511628211ull;
        return h;
}

/* The slot of key, made when missing (an idle or free one). Under lock. */
static pacer_slot_t *pacer__slot(ig_pacer_t *p, const char *key, int64_t now) {
        size_t start = (size_t)(pacer__hash(key) % PACER_SLOTS);
        pacer_slot_t *reuse = NULL;
        for (size_t i = 0; i < PACER_SLOTS; i++) {
                pacer_slot_t *s = &p->slots[(start + i) % PACER_SLOTS];
                if (s->key[0] == '\0') {
                        if (!reuse)
                                reuse = s;
                        break;
                }
                if (strncmp(s->key, key, PACER_KEY_MAX - 1) == 0)
                        return s;
                if (!reuse && now - s->last_ms > PACER_IDLE_MS &&
                    s->blocked_until < now)
                        reuse = s;
        }
        if (!reuse) /* full of busy keys: share the home slot (stricter) */
                reuse = &p->slots[start];
        memset(reuse, 0, sizeof(*reuse));
        strncpy(reuse->key, key, PACER_KEY_MAX - 1);
        reuse->tat = (double)now;
        return reuse;
}

int64_t ig_pacer_take(ig_pacer_t *p, const char *key, double rate, double burst,
                      double cost, int64_t max_wait_ms) {
        int64_t now = (int64_t)clock_wall_ms();
        double r, inc, start, allow, wait;
        pacer_slot_t *s;

        if (!key || rate <= 0)
                return 0;
        if (cost <= 0)
                cost = 1;
        pthread_mutex_lock(&p->lock);
        s = pacer__slot(p, key, now);
        s->last_ms = now;
        if (s->learned_rate > 0 && s->learned_rate < rate)
                rate = s->learned_rate;
        if (s->learned_burst > 0 && s->learned_burst < burst)
                burst = s->learned_burst;
        r = rate * p->scale / 1000.0; /* units per ms */
        if (burst < cost)
                burst = cost;
        inc = cost / r;
        start = s->tat > (double)now ? s->tat : (double)now;
        allow = start + inc - burst / r;
        if (allow < (double)s->blocked_until)
                allow = (double)s->blocked_until;
        wait = allow > (double)now ? allow - (double)now : 0;
        /* Reserved: the call goes at now + wait; the bucket is full again
         * inc after the later of that and the earlier reservations. */
        if ((int64_t)wait <= max_wait_ms) {
                double at = (double)now + wait;
                s->tat = (at > start ? at : start) + inc;
        }
        pthread_mutex_unlock(&p->lock);
        return wait > 0 ? (int64_t)wait + 1 : 0;
}

void ig_pacer_block(ig_pacer_t *p, const char *key, int64_t until_ms) {
        int64_t now = (int64_t)clock_wall_ms();
        pacer_slot_t *s;
        if (!key)
                return;
        pthread_mutex_lock(&p->lock);
        s = pacer__slot(p, key, now);
        s->last_ms = now;
        if (until_ms > s->blocked_until)
                s->blocked_until = until_ms;
        pthread_mutex_unlock(&p->lock);
}

void ig_pacer_level(ig_pacer_t *p, const char *key, double rate, double burst,
                    double available) {
        int64_t now = (int64_t)clock_wall_ms();
        double r, tat;
        pacer_slot_t *s;
        if (!key || rate <= 0)
                return;
        r = rate * p->scale / 1000.0;
        if (available < 0)
                available = 0;
        /* A bucket holding `available` is full again after
         * (burst - available) / r. */
        tat = (double)now + (burst - available) / r;
        pthread_mutex_lock(&p->lock);
        s = pacer__slot(p, key, now);
        s->last_ms = now;
        s->tat = tat;
        s->learned_rate = rate;
        s->learned_burst = burst;
        pthread_mutex_unlock(&p->lock);
}

void ig_pacer_budget(ig_pacer_t *p, const char *key, int64_t remaining,
                     int64_t reserve, int64_t reset_at_ms) {
        if (remaining <= reserve)
                ig_pacer_block(p, key, reset_at_ms);
}
