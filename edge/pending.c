/*
 * pending.c - the table of requests waiting on Kafka (see pending.h).
 *
 * Chained buckets, a power-of-two count fixed at creation; the in-flight
 * bound keeps chains short. The sweep walks every bucket, so it walks only
 * when something may be due: the table keeps a lower bound of the earliest
 * deadline (entries taken out leave it low; a walk sets it right), and a
 * sweep before that time returns at once. Without it the sweeper walked the
 * 16,384 buckets of the default table 50 times a second.
 */
#include "pending.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

struct pending {
        pthread_mutex_t lock; /* guards buckets and count */
        pending_entry_t **buckets;
        size_t mask;
        size_t count;
        uint64_t due_ms; /* no entry's deadline is earlier than this */
};

pending_t *pending_new(size_t expected) {
        pending_t *p = xcalloc(1, sizeof(*p));
        size_t n = 64;
        while (n < expected && n < ((size_t)1 << 20))
                n <<= 1;
        p->buckets = xcalloc(n, sizeof(*p->buckets));
        p->mask = n - 1;
        p->due_ms = UINT64_MAX;
        pthread_mutex_init(&p->lock, NULL);
        return p;
}

void pending_destroy(pending_t *p) {
        if (!p)
                return;
        pthread_mutex_destroy(&p->lock);
        free(p->buckets);
        free(p);
}

void pending_add(pending_t *p, pending_entry_t *e) {
        size_t b = msgid_hash(&e->id) & p->mask;
        pthread_mutex_lock(&p->lock);
        e->next = p->buckets[b];
        p->buckets[b] = e;
        p->count++;
        if (e->deadline_ms < p->due_ms)
                p->due_ms = e->deadline_ms;
        pthread_mutex_unlock(&p->lock);
}

/* Unlink the entry of id from its chain, under the lock. */
static pending_entry_t **pending__find(pending_t *p, const msgid_t *id) {
        pending_entry_t **pp = &p->buckets[msgid_hash(id) & p->mask];
        for (; *pp; pp = &(*pp)->next)
                if (memcmp((*pp)->id.b, id->b, sizeof(id->b)) == 0)
                        return pp;
        return NULL;
}

static pending_entry_t *pending__unlink(pending_t *p, pending_entry_t **pp) {
        pending_entry_t *e = *pp;
        *pp = e->next;
        e->next = NULL;
        p->count--;
        return e;
}

pending_entry_t *pending_take(pending_t *p, const msgid_t *id) {
        pending_entry_t **pp, *e = NULL;
        pthread_mutex_lock(&p->lock);
        pp = pending__find(p, id);
        if (pp)
                e = pending__unlink(p, pp);
        pthread_mutex_unlock(&p->lock);
        return e;
}

pending_entry_t *pending_take_delivered(pending_t *p, const msgid_t *id,
                                        bool delivered) {
        pending_entry_t **pp, *e = NULL;
        pthread_mutex_lock(&p->lock);
        pp = pending__find(p, id);
        if (pp && (!delivered || (*pp)->async))
                e = pending__unlink(p, pp);
        pthread_mutex_unlock(&p->lock);
        return e;
}

static size_t pending__sweep(pending_t *p, uint64_t now, bool all,
                             pending_entry_t **out, size_t max) {
        size_t n = 0, b;
        uint64_t due = UINT64_MAX;
        pthread_mutex_lock(&p->lock);
        if (!all && now < p->due_ms) {
                pthread_mutex_unlock(&p->lock);
                return 0;
        }
        for (b = 0; b <= p->mask && n < max && p->count; b++) {
                pending_entry_t **pp = &p->buckets[b];
                while (*pp) {
                        if (n < max && (all || (*pp)->deadline_ms <= now)) {
                                out[n++] = pending__unlink(p, pp);
                                continue;
                        }
                        if ((*pp)->deadline_ms < due)
                                due = (*pp)->deadline_ms;
                        pp = &(*pp)->next;
                }
        }
        /* A walk cut short by max saw only part of the table: the next
         * sweep walks again at once. */
        p->due_ms = b <= p->mask && p->count ? 0 : due;
        pthread_mutex_unlock(&p->lock);
        return n;
}

size_t pending_take_expired(pending_t *p, uint64_t now, pending_entry_t **out,
                            size_t max) {
        return pending__sweep(p, now, false, out, max);
}

size_t pending_take_all(pending_t *p, pending_entry_t **out, size_t max) {
        return pending__sweep(p, 0, true, out, max);
}

size_t pending_count(pending_t *p) {
        size_t n;
        pthread_mutex_lock(&p->lock);
        n = p->count;
        pthread_mutex_unlock(&p->lock);
        return n;
}
