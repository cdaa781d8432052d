/*
 * agentkit_store.c - the store's part of a step, as agentkit writes it:
 * the baseline of tests/bench/agentkit.
 *
 *   bench-agentkit-store [-n WRITES] [-s STATE_BYTES,...]
 *
 * One thread, one write at a time, each acknowledged by the store (the
 * default write concern), against the store of OMNIFY_MONGO_URI under a
 * database prefix of its own (dropped at the end). Rows:
 *   insert    a small document (the floor of any acknowledged write)
 *   find      one document by _id
 *   cas N     a run's record of N bytes replaced under its seq, with a
 *             correlation upsert in the same ordered bulk: exactly what a
 *             transition writes
 * Prints "name p50_ms p99_ms" lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "msgid.h"
#include "store.h"

static double now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static void report(const char *name, double *v, int n) {
        qsort(v, (size_t)n, sizeof(*v), cmp);
        printf("%s %.3f %.3f\n", name, v[n / 2], v[(int)(n * 0.99)]);
        fflush(stdout);
}

int main(int argc, char **argv) {
        config_t cfg;
        char err[512], prefix[40], sizes[200] = "2000,20000,100000";
        int n = 300, opt;
        store_t *store;
        double *lat;
        msgid_t id;

        while ((opt = getopt(argc, argv, "n:s:")) != -1) {
                if (opt == 'n')
                        n = atoi(optarg);
                else if (opt == 's')
                        snprintf(sizes, sizeof(sizes), "%s", optarg);
        }
        config_load_or_exit(&cfg, CONFIG_SCOPE_COMMON, "bench-agentkit-store",
                            1, argv, NULL);
        log_init(LOG_LEVEL_WARN, "bench-agentkit-store");
        msgid_new(&id);
        snprintf(prefix, sizeof(prefix), "bak%02x%02x%02x_", id.b[13], id.b[14],
                 id.b[15]);
        free(cfg.mongo_db_prefix);
        cfg.mongo_db_prefix = strdup(prefix);
        if (!(store = store_new(&cfg, "bench-agentkit-store", err,
                                sizeof(err)))) {
                fprintf(stderr, "store: %s\n", err);
                return 1;
        }
        lat = calloc((size_t)n, sizeof(*lat));
        for (int i = 0; i < n; i++) {
                bson_t d = BSON_INITIALIZER;
                char key[64];
                double t;
                snprintf(key, sizeof(key), "small-%d", i);
                BSON_APPEND_UTF8(&d, "_id", key);
                BSON_APPEND_INT32(&d, "v", i);
                t = now_ms();
                if (store_insert(store, "bench", "small", &d, err, sizeof(err)))
                        fprintf(stderr, "insert: %s\n", err);
                lat[i] = now_ms() - t;
                bson_destroy(&d);
        }
        report("insert", lat, n);
        for (int i = 0; i < n; i++) {
                bson_t f = BSON_INITIALIZER, out;
                char key[64];
                double t;
                snprintf(key, sizeof(key), "small-%d", i);
                BSON_APPEND_UTF8(&f, "_id", key);
                t = now_ms();
                if (store_find_one(store, "bench", "small", &f, NULL, &out, err,
                                   sizeof(err)) == STORE_OK)
                        bson_destroy(&out);
                lat[i] = now_ms() - t;
                bson_destroy(&f);
        }
        report("find", lat, n);
        for (char *tok = strtok(sizes, ","); tok; tok = strtok(NULL, ",")) {
                size_t bytes = (size_t)atol(tok);
                char *text = malloc(bytes + 1), name[64];
                int runs = 20;
                memset(text, 'x', bytes);
                text[bytes] = '\0';
                for (int r = 0; r < runs; r++) {
                        bson_t d = BSON_INITIALIZER;
                        char key[64];
                        snprintf(key, sizeof(key), "run-%zu-%d", bytes, r);
                        BSON_APPEND_UTF8(&d, "_id", key);
                        BSON_APPEND_INT64(&d, "seq", 0);
                        BSON_APPEND_UTF8(&d, "state", text);
                        store_insert(store, "bench", "runs", &d, err,
                                     sizeof(err));
                        bson_destroy(&d);
                }
                for (int i = 0; i < n; i++) {
                        bson_t d = BSON_INITIALIZER, f = BSON_INITIALIZER,
                               cf = BSON_INITIALIZER, cu = BSON_INITIALIZER,
                               set;
                        char key[64], corr[64];
                        store_bulk_t *b;
                        store_bulk_result_t res;
                        double t;
                        int r = i % runs;
                        snprintf(key, sizeof(key), "run-%zu-%d", bytes, r);
                        snprintf(corr, sizeof(corr), "corr|%zu-%d", bytes, i);
                        BSON_APPEND_UTF8(&f, "_id", key);
                        BSON_APPEND_INT64(&f, "seq", i / runs);
                        BSON_APPEND_UTF8(&d, "_id", key);
                        BSON_APPEND_INT64(&d, "seq", i / runs + 1);
                        BSON_APPEND_UTF8(&d, "state", text);
                        BSON_APPEND_UTF8(&cf, "_id", corr);
                        BSON_APPEND_DOCUMENT_BEGIN(&cu, "$set", &set);
                        BSON_APPEND_UTF8(&set, "run_id", key);
                        bson_append_document_end(&cu, &set);
                        t = now_ms();
                        b = store_bulk_new(store, "bench", "runs", true);
                        store_bulk_replace(b, &f, &d, false);
                        store_bulk_update(b, &cf, &cu, STORE_UPSERT);
                        if (store_bulk_run(b, &res, err, sizeof(err)) ||
                            res.matched != 1)
                                fprintf(stderr, "cas %s: %s (%lld)\n", key, err,
                                        (long long)res.matched);
                        store_bulk_destroy(b);
                        lat[i] = now_ms() - t;
                        bson_destroy(&d);
                        bson_destroy(&f);
                        bson_destroy(&cf);
                        bson_destroy(&cu);
                }
                snprintf(name, sizeof(name), "cas_%zu", bytes);
                report(name, lat, n);
                free(text);
        }
        store_drop(store, "bench", "small", err, sizeof(err));
        store_drop(store, "bench", "runs", err, sizeof(err));
        free(lat);
        store_destroy(store);
        config_deinit(&cfg);
        return 0;
}
