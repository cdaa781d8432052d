/*
 * metrics.c - what the edge pays per request to find its metric series.
 *
 *   bench-metrics [-n SERIES] [-t THREADS] [-s SECONDS]
 *
 * Fills the registry with SERIES other series (a monolith's families: per
 * type, per route and status, per partition), then measures in the same run:
 *
 *   baseline  metrics_add + metrics_observe_us on pointers kept by the caller
 *             (what "callers keep the pointer" costs);
 *   lookup    what the edge does when a request ends: format the labels,
 *             metrics_counter and metrics_histogram by name, then add and
 *             observe (one of 40 routes x 4 statuses per call).
 *
 * THREADS threads run each loop at once (the edge's HTTP threads). Prints
 * ns per request for both and their ratio, e.g.
 *   metrics series=2000 threads=2 baseline_ns=9.8 lookup_ns=410.2 ratio=41.9
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"

#define BM_ROUTES 40
#define BM_STATUSES 4

static const unsigned bm_status[BM_STATUSES] = {200, 202, 404, 503};

typedef struct bm_arg {
        int lookup;
        double seconds;
        uint64_t ops;
        metrics_counter_t *c;
        metrics_histogram_t *h;
} bm_arg_t;

static double bm__now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bm__lookup_once(uint64_t i) {
        char labels[256];
        unsigned route = (unsigned)(i % BM_ROUTES);
        unsigned status = bm_status[(i / BM_ROUTES) % BM_STATUSES];
        snprintf(labels, sizeof(labels),
                 "route=\"bench.route.%u\",status=\"%u\"", route, status);
        metrics_add(
                metrics_counter("bench_http_requests_total", "bench", labels),
                1);
        snprintf(labels, sizeof(labels), "route=\"bench.route.%u\"", route);
        metrics_observe_us(metrics_histogram("bench_http_request_seconds",
                                             "bench", labels),
                           (i & 1023) + 1);
}

static void *bm__run(void *p) {
        bm_arg_t *a = p;
        double end = bm__now() + a->seconds;
        uint64_t n = 0;
        while (bm__now() < end) {
                /* 256 per clock read, so reading the clock costs little. */
                for (int k = 0; k < 256; k++, n++) {
                        if (a->lookup) {
                                bm__lookup_once(n);
                        } else {
                                metrics_add(a->c, 1);
                                metrics_observe_us(a->h, (n & 1023) + 1);
                        }
                }
        }
        a->ops = n;
        return NULL;
}

/* ns per operation with threads threads, each for seconds. */
static double bm__measure(int lookup, int threads, double seconds) {
        pthread_t tid[64];
        bm_arg_t args[64];
        metrics_counter_t *c =
                metrics_counter("bench_kept_total", "bench", "route=\"kept\"");
        metrics_histogram_t *h =
                metrics_histogram("bench_kept_seconds", "bench", "");
        uint64_t ops = 0;
        double t0 = bm__now(), cpu;

        for (int i = 0; i < threads; i++) {
                args[i] = (bm_arg_t){lookup, seconds, 0, c, h};
                pthread_create(&tid[i], NULL, bm__run, &args[i]);
        }
        for (int i = 0; i < threads; i++) {
                pthread_join(tid[i], NULL);
                ops += args[i].ops;
        }
        /* Wall time spent by all threads together, per operation. */
        cpu = (bm__now() - t0) * threads;
        return ops ? cpu * 1e9 / (double)ops : 0;
}

int main(int argc, char **argv) {
        int series = 2000, threads = 2, opt;
        double seconds = 2.0, base, lookup;
        char labels[128];

        while ((opt = getopt(argc, argv, "n:t:s:")) != -1) {
                switch (opt) {
                case 'n':
                        series = atoi(optarg);
                        break;
                case 't':
                        threads = atoi(optarg);
                        break;
                case 's':
                        seconds = atof(optarg);
                        break;
                default:
                        fprintf(stderr, "usage: bench-metrics [-n SERIES] "
                                        "[-t THREADS] [-s SECONDS]\n");
                        return 2;
                }
        }
        if (series < 0 || threads < 1 || threads > 64 || seconds <= 0) {
                fprintf(stderr, "bench-metrics: bad arguments\n");
                return 2;
        }
        /* Other families first, as in a running monolith. */
        for (int i = 0; i < series; i++) {
                snprintf(labels, sizeof(labels),
                         "group=\"g%d\",type=\"g%d.type.%d\"", i % 7, i % 7, i);
                metrics_counter("bench_other_total", "bench", labels);
        }
        for (uint64_t i = 0; i < BM_ROUTES * BM_STATUSES; i++)
                bm__lookup_once(i); /* create the looked-up series */

        base = bm__measure(0, threads, seconds);
        lookup = bm__measure(1, threads, seconds);
        printf("metrics series=%d threads=%d baseline_ns=%.1f lookup_ns=%.1f "
               "ratio=%.1f\n",
               series + BM_ROUTES * (BM_STATUSES + 1), threads, base, lookup,
               base > 0 ? lookup / base : 0);
        return 0;
}
