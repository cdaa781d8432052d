/*
 * metrics.h - counters and histograms, rendered as Prometheus text.
 *
 * A process has one registry (metrics_global()). Series are created once by
 * name and label set and then updated lock-free with atomics; callers keep
 * the pointer. Creation takes the registry lock and may be called from any
 * thread; rendering takes it too.
 */
#ifndef OMNIFY_METRICS_H
#define OMNIFY_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct metrics_counter metrics_counter_t;
typedef struct metrics_histogram metrics_histogram_t;

/*
 * Get or create a counter (or gauge, when gauge is non-zero) named `name`
 * with labels preformatted as `key="value",...` (or "" for none). `help`
 * describes the family; the first call for a name sets it.
 */
metrics_counter_t *metrics_counter(const char *name, const char *help,
                                   const char *labels);
metrics_counter_t *metrics_gauge(const char *name, const char *help,
                                 const char *labels);
void metrics_add(metrics_counter_t *c, int64_t n);
void metrics_set(metrics_counter_t *c, int64_t v);
int64_t metrics_value(const metrics_counter_t *c);

/* Latency histogram in seconds with fixed buckets from 0.5 ms to 10 s. */
metrics_histogram_t *metrics_histogram(const char *name, const char *help,
                                       const char *labels);
void metrics_observe_us(metrics_histogram_t *h, uint64_t microseconds);

/* Render every series as Prometheus text format 0.0.4 into a new string
 * (caller frees). */
char *metrics_render(size_t *len);

#endif
