/*
 * metrics.c - the process-wide metrics registry (see metrics.h).
 *
 * Series live in a singly linked list that only grows, kept in rendering
 * order, and in a hash table by name and labels for lookups: the edge looks
 * its series up by label at the end of every request, and a monolith holds
 * hundreds of series (routes x statuses, groups x types, partitions), so a
 * walk of the list would cost microseconds under the lock. Updates are
 * relaxed atomics and never lock.
 */
#include "metrics.h"

#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

static const double bucket_s[] = {0.0005, 0.001, 0.002, 0.005, 0.01,
                                  0.025,  0.05,  0.1,   0.25,  0.5,
                                  1.0,    2.5,   5.0,   10.0};
#define N_BUCKETS (sizeof(bucket_s) / sizeof(bucket_s[0]))

enum series_kind { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

typedef struct series {
        struct series *next;  /* rendering order */
        struct series *hnext; /* same hash bucket */
        enum series_kind kind;
        char *name, *help, *labels;
} series_t;

struct metrics_counter {
        series_t s;
        _Atomic int64_t value;
};

struct metrics_histogram {
        series_t s;
        _Atomic uint64_t buckets[N_BUCKETS];
        _Atomic uint64_t count;
        _Atomic uint64_t sum_us;
};

#define N_HASH 1024 /* a power of two */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static series_t *registry_head, *registry_tail;
static series_t *registry_hash[N_HASH];

/* FNV-1a over name, a separator and labels. */
static size_t series_hash(const char *name, const char *labels) {
        uint32_t h = 2166136261u;
        for (const char *p = name; *p; p++)
                h = (h ^ (uint8_t)*p) * 16777619u;
        h = (h ^ 0xffu) * 16777619u;
        for (const char *p = labels; *p; p++)
                h = (h ^ (uint8_t)*p) * 16777619u;
        return h & (N_HASH - 1);
}

static series_t *find(const char *name, const char *labels) {
        for (series_t *s = registry_hash[series_hash(name, labels)]; s;
             s = s->hnext)
                if (strcmp(s->labels, labels) == 0 &&
                    strcmp(s->name, name) == 0)
                        return s;
        return NULL;
}

static void append(series_t *s, enum series_kind kind, const char *name,
                   const char *help, const char *labels) {
        size_t h;
        s->kind = kind;
        s->name = xstrdup(name);
        s->help = xstrdup(help);
        s->labels = xstrdup(labels ? labels : "");
        s->next = NULL;
        h = series_hash(s->name, s->labels);
        s->hnext = registry_hash[h];
        registry_hash[h] = s;
        /* Keep families together when rendering: insert after the last
         * series of the same name if there is one. */
        for (series_t *p = registry_head; p; p = p->next) {
                if (strcmp(p->name, name) == 0 &&
                    (!p->next || strcmp(p->next->name, name) != 0)) {
                        s->next = p->next;
                        p->next = s;
                        if (registry_tail == p)
                                registry_tail = s;
                        return;
                }
        }
        if (registry_tail)
                registry_tail->next = s;
        else
                registry_head = s;
        registry_tail = s;
}

static metrics_counter_t *get_counter(enum series_kind kind, const char *name,
                                      const char *help, const char *labels) {
        metrics_counter_t *c;
        pthread_mutex_lock(&registry_lock);
        c = (metrics_counter_t *)find(name, labels ? labels : "");
        /* One name, one kind: reusing a name for another kind is our bug. */
        assert(!c || c->s.kind == kind);
        if (!c) {
                c = xcalloc(1, sizeof(*c));
                append(&c->s, kind, name, help, labels);
        }
        pthread_mutex_unlock(&registry_lock);
        return c;
}

metrics_counter_t *metrics_counter(const char *name, const char *help,
                                   const char *labels) {
        return get_counter(KIND_COUNTER, name, help, labels);
}

metrics_counter_t *metrics_gauge(const char *name, const char *help,
                                 const char *labels) {
        return get_counter(KIND_GAUGE, name, help, labels);
}

void metrics_add(metrics_counter_t *c, int64_t n) {
        atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

void metrics_set(metrics_counter_t *c, int64_t v) {
        atomic_store_explicit(&c->value, v, memory_order_relaxed);
}

int64_t metrics_value(const metrics_counter_t *c) {
        return atomic_load_explicit(&c->value, memory_order_relaxed);
}

metrics_histogram_t *metrics_histogram(const char *name, const char *help,
                                       const char *labels) {
        metrics_histogram_t *h;
        pthread_mutex_lock(&registry_lock);
        h = (metrics_histogram_t *)find(name, labels ? labels : "");
        assert(!h || h->s.kind == KIND_HISTOGRAM);
        if (!h) {
                h = xcalloc(1, sizeof(*h));
                append(&h->s, KIND_HISTOGRAM, name, help, labels);
        }
        pthread_mutex_unlock(&registry_lock);
        return h;
}

void metrics_observe_us(metrics_histogram_t *h, uint64_t us) {
        double s = (double)us / 1e6;
        for (size_t i = 0; i < N_BUCKETS; i++) {
                if (s <= bucket_s[i]) {
                        atomic_fetch_add_explicit(&h->buckets[i], 1,
                                                  memory_order_relaxed);
                        break;
                }
        }
        atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
}

typedef struct buf {
        char *p;
        size_t len, cap;
} buf_t;

static void bprintf(buf_t *b, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void bprintf(buf_t *b, const char *fmt, ...) {
        va_list ap;
        int n;
        for (;;) {
                va_start(ap, fmt);
                n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
                va_end(ap);
                if (n >= 0 && (size_t)n < b->cap - b->len) {
                        b->len += (size_t)n;
                        return;
                }
                b->cap = b->cap * 2 + (size_t)(n > 0 ? n : 0);
                b->p = xrealloc(b->p, b->cap);
        }
}

char *metrics_render(size_t *len) {
        buf_t b = {xmalloc(4096), 0, 4096};
        const char *last = "";
        b.p[0] = '\0';
        pthread_mutex_lock(&registry_lock);
        for (series_t *s = registry_head; s; s = s->next) {
                const char *type = s->kind == KIND_COUNTER ? "counter"
                                   : s->kind == KIND_GAUGE ? "gauge"
                                                           : "histogram";
                if (strcmp(last, s->name) != 0) {
                        bprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", s->name,
                                s->help, s->name, type);
                        last = s->name;
                }
                if (s->kind != KIND_HISTOGRAM) {
                        metrics_counter_t *c = (metrics_counter_t *)s;
                        bprintf(&b, "%s%s%s%s %lld\n", s->name,
                                *s->labels ? "{" : "", s->labels,
                                *s->labels ? "}" : "",
                                (long long)metrics_value(c));
                        continue;
                }
                metrics_histogram_t *h = (metrics_histogram_t *)s;
                uint64_t cum = 0;
                const char *sep = *s->labels ? "," : "";
                for (size_t i = 0; i < N_BUCKETS; i++) {
                        cum += atomic_load_explicit(&h->buckets[i],
                                                    memory_order_relaxed);
                        bprintf(&b, "%s_bucket{%s%sle=\"%g\"} %llu\n", s->name,
                                s->labels, sep, bucket_s[i],
                                (unsigned long long)cum);
                }
                uint64_t count =
                        atomic_load_explicit(&h->count, memory_order_relaxed);
                bprintf(&b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", s->name,
                        s->labels, sep, (unsigned long long)count);
                bprintf(&b, "%s_sum%s%s%s %.6f\n", s->name,
                        *s->labels ? "{" : "", s->labels, *s->labels ? "}" : "",
                        (double)atomic_load_explicit(&h->sum_us,
                                                     memory_order_relaxed) /
                                1e6);
                bprintf(&b, "%s_count%s%s%s %llu\n", s->name,
                        *s->labels ? "{" : "", s->labels, *s->labels ? "}" : "",
                        (unsigned long long)count);
        }
        pthread_mutex_unlock(&registry_lock);
        if (len)
                *len = b.len;
        return b.p;
}
