/*
 * store_bench.h - what the two halves of bench-store share: the run's
 * settings, the clock, latency samples and the result lines.
 *
 * bench-store prints one line per measurement on stdout, key=value pairs
 * with a free-text note last, read by tests/bench/store_report.py:
 *
 *   row cand=sqlite pattern=in_lookup n=20000 unit=ids/s rate=1234.5
 *       p50_ms=1.2 p99_ms=3.4 ok=1 note=...
 *   feature cand=sqlite name=transactions ok=0 note=...
 */
#ifndef OMNIFY_BENCH_STORE_H
#define OMNIFY_BENCH_STORE_H

#include <mongoc/mongoc.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sb_run {
        const char *cand; /* candidate's name in the table */
        const char *uri;  /* mongodb:// URI */
        char db[64];      /* this run's database (dropped at the end) */
        mongoc_client_pool_t *pool;
        bool quick;
        double budget_s; /* time budget of one timed pattern */
} sb_run_t;

/* Latency samples of one pattern, in milliseconds. */
typedef struct sb_lat {
        double *ms;
        size_t n, cap;
} sb_lat_t;

double sb_now(void);
void sb_lat_add(sb_lat_t *lat, double ms);
/* The q-quantile (0..1) of the samples; 0 when there are none. Sorts. */
double sb_lat_q(sb_lat_t *lat, double q);
void sb_lat_free(sb_lat_t *lat);

/* Prints a "row" line. note may be NULL. */
void sb_row(const sb_run_t *run, const char *pattern, long n, const char *unit,
            double rate, sb_lat_t *lat, bool ok, const char *note);

/* Prints a "feature" line: what MongoDB 7 does that the candidate does or
 * does not (note: the error or what was seen). */
void sb_feature(const sb_run_t *run, const char *name, bool ok,
                const char *note);

/* Runs a command on the run's database; true on ok: 1. reply is always
 * initialised (caller destroys it); err filled on failure. */
bool sb_command(mongoc_client_t *client, const sb_run_t *run, const bson_t *cmd,
                bson_t *reply, bson_error_t *err);

/* createIndexes with one index, keys like {"a": 1}; a TTL index when
 * expire_s >= 0. On failure why says what the store answered. */
bool sb_index(mongoc_client_t *client, const sb_run_t *run, const char *coll,
              const char *name, const bson_t *keys, bool unique,
              int64_t expire_s, char *why, size_t whylen);

/* Documents matching filter, -1 on error. */
int64_t sb_count(mongoc_collection_t *coll, const bson_t *filter);

/* The feature probes (store_features.c). */
void sb_features(sb_run_t *run);

#endif
