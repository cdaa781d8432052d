/*
 * pending.c - the table of requests waiting on Kafka (see pending.h).
 *
 * Chained buckets, a power-of-two count fixed at creation; the in-flight
 * bound keeps chains short. The sweep walks every bucket, which at the
 * sweeper's pace (every 20-50 ms) costs microseconds for thousands of
 * entries.
 */
#include "pending.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

struct pending {
        pthread_mutex_t lock; /* guards buckets and count */
        pending_entry_t **buckets;
        size_t mask;
        size_t count;
};

pending_t *pending_new(size_t expected) {
        pending_t *p = xcalloc(1, sizeof(*p));
        size_t n = 64;
        while (n < expected && n < ((size_t)1 << 20))
                n <<= 1;
        p->buckets = xcalloc(n, sizeof(*p->buckets));
        p->mask = n - 1;
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
        size_t n = 0;
        pthread_mutex_lock(&p->lock);
        for (size_t b = 0; b <= p->mask && n < max && p->count; b++) {
                pending_entry_t **pp = &p->buckets[b];
                while (*pp && n < max) {
                        if (all || (*pp)->deadline_ms <= now)
                                out[n++] = pending__unlink(p, pp);
                        else
                                pp = &(*pp)->next;
                }
        }
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
