/*
 * store.c - the store's access patterns, timed and checked, against one
 * MongoDB-protocol server (today's local store, FerretDB, MongoDB).
 *
 *   bench-store -u URI -n NAME [-q] [-b BUDGET_S] [-p PATTERN,...]
 *
 * Each pattern runs at the scale the domains will reach (thousands to
 * hundreds of thousands of documents; -q: a fifth or so), in a database of
 * its own that is dropped afterwards, and prints one "row" line (see
 * store_bench.h) with its rate, p50/p99 latency and whether its checks held:
 *
 *   insert_one    single inserts, one at a time
 *   insert_many   batches of 1,000 (unordered)
 *   upsert_bulk   bulkWrite of 2,000 updateOne+upsert over 1,000 ids
 *   projection    daily-fact upserts keyed by tenant+provider+account+
 *                 campaign+day (unique compound index), bulks of 1,000,
 *                 each key twice (fact, then correction)
 *   projection_id the same facts keyed by one composed _id instead
 *   in_lookup     find {_id: {$in: 200 ids}}, a tenth of them missing
 *   find_idx      tenant + day range, sorted, limited, on an index
 *                 {tenant, day}: at N/10 and N documents, then without the
 *                 index at N (does the store use it? time against size)
 *   claims        8 claimers findOneAndUpdate on status + due time sorted
 *                 by due time, with a lease (timers, outboxes); expired
 *                 leases claimed again; no document claimed twice
 *   cas           compare-and-set (read version, update where version
 *                 matches) from 8 threads on 20 documents; no lost update
 *   aggregate     $match tenant + days, $group by campaign with $sum,
 *                 $sort, $limit; checked against the same sums made here
 *   unique        a unique index refuses duplicates (code 11000)
 *   ttl           documents past a TTL index's date: gone, and when
 *   features      what MongoDB 7 has, probed one by one (store_features.c)
 *
 * Every timed loop stops at the time budget (-b, default 45 s, 20 s with
 * -q); the row then says how much it did. tests/bench/store runs this for
 * every candidate and prints the table.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store_bench.h"

/* ---------------------------------------------------------------- helpers */

double sb_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t sb__wall_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sb_lat_add(sb_lat_t *lat, double ms) {
        if (lat->n == lat->cap) {
                lat->cap = lat->cap ? lat->cap * 2 : 1024;
                lat->ms = realloc(lat->ms, lat->cap * sizeof(double));
                if (!lat->ms) {
                        abort();
                }
        }
        lat->ms[lat->n++] = ms;
}

static int sb__cmp_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

double sb_lat_q(sb_lat_t *lat, double q) {
        if (lat->n == 0) {
                return 0;
        }
        qsort(lat->ms, lat->n, sizeof(double), sb__cmp_double);
        size_t i = (size_t)(q * (double)(lat->n - 1) + 0.5);
        return lat->ms[i < lat->n ? i : lat->n - 1];
}

void sb_lat_free(sb_lat_t *lat) {
        free(lat->ms);
        lat->ms = NULL;
        lat->n = lat->cap = 0;
}

/* Notes are free text at the end of the line: no newlines in them. */
static void sb__print_note(const char *note) {
        for (const char *p = note ? note : ""; *p; p++) {
                putchar(*p == '\n' || *p == '\r' ? ' ' : *p);
        }
        putchar('\n');
}

void sb_row(const sb_run_t *run, const char *pattern, long n, const char *unit,
            double rate, sb_lat_t *lat, bool ok, const char *note) {
        double p50 = lat ? sb_lat_q(lat, 0.5) : 0;
        double p99 = lat ? sb_lat_q(lat, 0.99) : 0;
        printf("row cand=%s pattern=%s n=%ld unit=%s rate=%.1f p50_ms=%.3f "
               "p99_ms=%.3f ok=%d note=",
               run->cand, pattern, n, unit, rate, p50, p99, ok ? 1 : 0);
        sb__print_note(note);
        fflush(stdout);
}

void sb_feature(const sb_run_t *run, const char *name, bool ok,
                const char *note) {
        printf("feature cand=%s name=%s ok=%d note=", run->cand, name,
               ok ? 1 : 0);
        sb__print_note(note);
        fflush(stdout);
}

bool sb_command(mongoc_client_t *client, const sb_run_t *run, const bson_t *cmd,
                bson_t *reply, bson_error_t *err) {
        return mongoc_client_command_with_opts(client, run->db, cmd, NULL, NULL,
                                               reply, err);
}

int64_t sb_count(mongoc_collection_t *coll, const bson_t *filter) {
        bson_error_t err;
        bson_t empty = BSON_INITIALIZER;
        int64_t n = mongoc_collection_count_documents(
                coll, filter ? filter : &empty, NULL, NULL, NULL, &err);
        if (n < 0) {
                fprintf(stderr, "bench-store: count: %s\n", err.message);
        }
        return n;
}

static bool sb__over(const sb_run_t *run, double t0) {
        return sb_now() - t0 > run->budget_s;
}

/* createIndexes with one index; keys is a document like {"a": 1}. */
bool sb_index(mongoc_client_t *client, const sb_run_t *run, const char *coll,
              const char *name, const bson_t *keys, bool unique,
              int64_t expire_s, char *why, size_t whylen) {
        bson_t cmd = BSON_INITIALIZER, arr, idx, reply;
        bson_error_t err;
        BSON_APPEND_UTF8(&cmd, "createIndexes", coll);
        BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &arr);
        BSON_APPEND_DOCUMENT_BEGIN(&arr, "0", &idx);
        BSON_APPEND_DOCUMENT(&idx, "key", keys);
        BSON_APPEND_UTF8(&idx, "name", name);
        if (unique) {
                BSON_APPEND_BOOL(&idx, "unique", true);
        }
        if (expire_s >= 0) {
                BSON_APPEND_INT64(&idx, "expireAfterSeconds", expire_s);
        }
        bson_append_document_end(&arr, &idx);
        bson_append_array_end(&cmd, &arr);
        bool ok = sb_command(client, run, &cmd, &reply, &err);
        if (!ok) {
                snprintf(why, whylen, "createIndexes %.150s: %.150s", name,
                         err.message);
        }
        bson_destroy(&reply);
        bson_destroy(&cmd);
        return ok;
}

static bool sb__drop_index(mongoc_collection_t *coll, const char *name) {
        bson_error_t err;
        return mongoc_collection_drop_index_with_opts(coll, name, NULL, &err);
}

/* insert_many of docs[0..n) in batches of 1,000, unordered. */
static bool sb__insert_all(mongoc_collection_t *coll, bson_t **docs, size_t n,
                           sb_lat_t *lat, char *why, size_t whylen) {
        bson_t *opts = BCON_NEW("ordered", BCON_BOOL(false));
        bool ok = true;
        for (size_t i = 0; i < n && ok; i += 1000) {
                size_t k = n - i < 1000 ? n - i : 1000;
                bson_error_t err;
                double t = sb_now();
                ok = mongoc_collection_insert_many(
                        coll, (const bson_t **)(docs + i), k, opts, NULL, &err);
                if (lat) {
                        sb_lat_add(lat, (sb_now() - t) * 1e3);
                }
                if (!ok) {
                        snprintf(why, whylen, "insert_many: %.150s",
                                 err.message);
                }
        }
        bson_destroy(opts);
        return ok;
}

static void sb__free_docs(bson_t **docs, size_t n) {
        for (size_t i = 0; i < n; i++) {
                bson_destroy(docs[i]);
        }
        free(docs);
}

static bson_t **sb__docs(size_t n) {
        bson_t **docs = calloc(n ? n : 1, sizeof(*docs));
        if (!docs) {
                abort();
        }
        return docs;
}

/* A payload of about 200 bytes, as a typical event or record carries. */
static const char sb_payload[] =
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do "
        "eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim "
        "ad minim veniam, quis nostrud exercitation ullamco laboris nisi.";

/* ---------------------------------------------------------------- writes */

static void sb_insert_one(sb_run_t *run, mongoc_client_t *client) {
        long n = run->quick ? 1000 : 5000, done = 0;
        mongoc_collection_t *coll =
                mongoc_client_get_collection(client, run->db, "single");
        sb_lat_t lat = {0};
        char why[256] = "";
        double t0 = sb_now();
        for (; done < n && !sb__over(run, t0); done++) {
                char id[32];
                bson_error_t err;
                snprintf(id, sizeof(id), "u%07ld", done);
                bson_t *doc = BCON_NEW("_id", BCON_UTF8(id), "tenant",
                                       BCON_UTF8("t001"), "created_at",
                                       BCON_DATE_TIME(sb__wall_ms()), "body",
                                       BCON_UTF8(sb_payload));
                double t = sb_now();
                bool ok = mongoc_collection_insert_one(coll, doc, NULL, NULL,
                                                       &err);
                sb_lat_add(&lat, (sb_now() - t) * 1e3);
                bson_destroy(doc);
                if (!ok) {
                        snprintf(why, sizeof(why), "insert: %.150s",
                                 err.message);
                        break;
                }
        }
        double secs = sb_now() - t0;
        int64_t count = sb_count(coll, NULL);
        bool ok = !why[0] && count == done;
        if (!why[0]) {
                snprintf(why, sizeof(why), "%ld inserted%s, %lld counted", done,
                         done < n ? " (budget)" : "", (long long)count);
        }
        sb_row(run, "insert_one", done, "docs/s", done / secs, &lat, ok, why);
        sb_lat_free(&lat);
        mongoc_collection_destroy(coll);
}

static void sb_insert_many(sb_run_t *run, mongoc_client_t *client) {
        size_t n = run->quick ? 20000 : 100000;
        mongoc_collection_t *coll =
                mongoc_client_get_collection(client, run->db, "many");
        bson_t **docs = sb__docs(n);
        for (size_t i = 0; i < n; i++) {
                char id[32];
                snprintf(id, sizeof(id), "id%07zu", i);
                docs[i] = BCON_NEW("_id", BCON_UTF8(id), "tenant",
                                   BCON_INT32((int32_t)(i % 50)), "n",
                                   BCON_INT64((int64_t)i), "body",
                                   BCON_UTF8(sb_payload));
        }
        sb_lat_t lat = {0};
        char why[256] = "";
        double t0 = sb_now();
        bool ok = sb__insert_all(coll, docs, n, &lat, why, sizeof(why));
        double secs = sb_now() - t0;
        int64_t count = sb_count(coll, NULL);
        ok = ok && count == (int64_t)n;
        if (!why[0]) {
                snprintf(why, sizeof(why),
                         "batches of 1000; %lld counted of %zu",
                         (long long)count, n);
        }
        sb_row(run, "insert_many", (long)n, "docs/s", (double)n / secs, &lat,
               ok, why);
        sb__free_docs(docs, n);
        sb_lat_free(&lat);
        mongoc_collection_destroy(coll);
        /* in_lookup reads this collection. */
}

/* Sums of the field over every document of coll (checks done here, not by
 * the store's own aggregation). */
static bool sb__sum(mongoc_collection_t *coll, const char *field, int64_t *sum,
                    int64_t *docs) {
        bson_t filter = BSON_INITIALIZER;
        mongoc_cursor_t *cur =
                mongoc_collection_find_with_opts(coll, &filter, NULL, NULL);
        const bson_t *doc;
        bson_error_t err;
        *sum = *docs = 0;
        while (mongoc_cursor_next(cur, &doc)) {
                bson_iter_t it;
                if (bson_iter_init_find(&it, doc, field)) {
                        *sum += bson_iter_as_int64(&it);
                }
                (*docs)++;
        }
        bool ok = !mongoc_cursor_error(cur, &err);
        mongoc_cursor_destroy(cur);
        return ok;
}

/* An unordered bulk write, as a batch handler would send one. */
static mongoc_bulk_operation_t *sb__bulk_new(mongoc_collection_t *coll) {
        bson_t *opts = BCON_NEW("ordered", BCON_BOOL(false));
        mongoc_bulk_operation_t *bulk =
                mongoc_collection_create_bulk_operation_with_opts(coll, opts);
        bson_destroy(opts);
        return bulk;
}

/* Executes and destroys bulk; one latency sample. */
static bool sb__bulk_run(mongoc_bulk_operation_t *bulk, bool built,
                         sb_lat_t *lat, bson_error_t *err) {
        double t = sb_now();
        bson_t reply;
        bool ok = built && mongoc_bulk_operation_execute(bulk, &reply, err);
        sb_lat_add(lat, (sb_now() - t) * 1e3);
        if (built) {
                bson_destroy(&reply);
        }
        mongoc_bulk_operation_destroy(bulk);
        return ok;
}

static void sb_upsert_bulk(sb_run_t *run, mongoc_client_t *client) {
        int rounds = run->quick ? 3 : 10, done = 0;
        mongoc_collection_t *coll =
                mongoc_client_get_collection(client, run->db, "upserts");
        sb_lat_t lat = {0};
        char why[256] = "";
        bson_t *uopts = BCON_NEW("upsert", BCON_BOOL(true));
        double t0 = sb_now();
        for (; done < rounds && !sb__over(run, t0); done++) {
                mongoc_bulk_operation_t *bulk = sb__bulk_new(coll);
                bson_error_t err;
                bool ok = true;
                for (int i = 0; i < 2000 && ok; i++) {
                        char id[32];
                        snprintf(id, sizeof(id), "k%04d", (i * 7) % 1000);
                        bson_t *sel = BCON_NEW("_id", BCON_UTF8(id));
                        bson_t *upd = BCON_NEW(
                                "$inc", "{", "n", BCON_INT64(1), "}", "$set",
                                "{", "last", BCON_INT32(i), "}", "$setOnInsert",
                                "{", "tenant", BCON_UTF8("t001"), "}");
                        ok = mongoc_bulk_operation_update_one_with_opts(
                                bulk, sel, upd, uopts, &err);
                        bson_destroy(sel);
                        bson_destroy(upd);
                }
                ok = sb__bulk_run(bulk, ok, &lat, &err);
                if (!ok) {
                        snprintf(why, sizeof(why), "bulk %d: %.150s", done,
                                 err.message);
                        break;
                }
        }
        double secs = sb_now() - t0;
        int64_t sum = 0, docs = 0;
        bool ok = !why[0] && sb__sum(coll, "n", &sum, &docs) &&
                  docs == (done ? 1000 : 0) && sum == 2000LL * done;
        if (!why[0]) {
                snprintf(why, sizeof(why),
                         "%d bulk(s) of 2000%s: %lld docs (want 1000), sum n "
                         "%lld (want %d)",
                         done, done < rounds ? " (budget)" : "",
                         (long long)docs, (long long)sum, 2000 * done);
        }
        sb_row(run, "upsert_bulk", 2000L * done, "upserts/s",
               2000.0 * done / secs, &lat, ok, why);
        bson_destroy(uopts);
        sb_lat_free(&lat);
        mongoc_collection_destroy(coll);
}

/* The projection's key space: tenants x providers x accounts x campaigns x
 * days; facts[] holds the key of each upsert. */
#define SB_TENANTS 10
#define SB_PROVIDERS 2
#define SB_ACCOUNTS 5
#define SB_CAMPAIGNS 20
#define SB_DAY0 20450 /* 2025-12-29, days since 1970 */

static const char *const sb_provider[SB_PROVIDERS] = {"google_ads", "meta"};

typedef struct sb_key {
        int tenant, provider, account, campaign, day;
} sb_key_t;

static sb_key_t sb__key(long k, int days) {
        sb_key_t key;
        key.day = (int)(k % days);
        k /= days;
        key.campaign = (int)(k % SB_CAMPAIGNS);
        k /= SB_CAMPAIGNS;
        key.account = (int)(k % SB_ACCOUNTS);
        k /= SB_ACCOUNTS;
        key.provider = (int)(k % SB_PROVIDERS);
        key.tenant = (int)(k / SB_PROVIDERS);
        return key;
}

static void sb__key_filter(bson_t *b, sb_key_t key) {
        char t[16], a[16], c[16];
        snprintf(t, sizeof(t), "t%03d", key.tenant);
        snprintf(a, sizeof(a), "acc%d", key.account);
        snprintf(c, sizeof(c), "c%02d", key.campaign);
        BSON_APPEND_UTF8(b, "tenant", t);
        BSON_APPEND_UTF8(b, "provider", sb_provider[key.provider]);
        BSON_APPEND_UTF8(b, "account", a);
        BSON_APPEND_UTF8(b, "campaign", c);
        BSON_APPEND_INT32(b, "day", SB_DAY0 + key.day);
}

static int sb__proj_days(const sb_run_t *run) {
        return run->quick ? 5 : 25;
}

/* by_id: the same facts keyed by one composed _id
 * ("t003|meta|acc2|c17|20455") instead of the 5 fields under a unique
 * compound index; the fields are kept with $setOnInsert. */
static void sb__projection(sb_run_t *run, mongoc_client_t *client, bool by_id) {
        int days = sb__proj_days(run);
        long keys = (long)SB_TENANTS * SB_PROVIDERS * SB_ACCOUNTS *
                    SB_CAMPAIGNS * days;
        long n = 2 * keys, done = 0;
        mongoc_collection_t *coll =
                mongoc_client_get_collection(client, run->db, "daily");
        sb_lat_t lat = {0};
        char why[1024] = "";
        bson_t *ukeys = BCON_NEW(
                "tenant", BCON_INT32(1), "provider", BCON_INT32(1), "account",
                BCON_INT32(1), "campaign", BCON_INT32(1), "day", BCON_INT32(1));
        bool ok = by_id || sb_index(client, run, "daily", "fact_key", ukeys,
                                    true, -1, why, sizeof(why));
        bson_destroy(ukeys);
        bson_t *uopts = BCON_NEW("upsert", BCON_BOOL(true));
        int64_t want_clicks = 0;
        double t0 = sb_now();
        while (ok && done < n && !sb__over(run, t0)) {
                mongoc_bulk_operation_t *bulk = sb__bulk_new(coll);
                bson_error_t err;
                long end = done + 1000 < n ? done + 1000 : n;
                for (long j = done; j < end && ok; j++) {
                        /* First pass in key order, then corrections in a
                         * scattered order (7919 is prime, keys is not a
                         * multiple of it). */
                        long k = j < keys ? j : ((j - keys) * 7919) % keys;
                        bson_t sel = BSON_INITIALIZER,
                               fields = BSON_INITIALIZER;
                        sb_key_t key = sb__key(k, days);
                        sb__key_filter(by_id ? &fields : &sel, key);
                        if (by_id) {
                                char id[64];
                                snprintf(id, sizeof(id),
                                         "t%03d|%s|acc%d|c%02d|%d", key.tenant,
                                         sb_provider[key.provider], key.account,
                                         key.campaign, SB_DAY0 + key.day);
                                BSON_APPEND_UTF8(&sel, "_id", id);
                        }
                        int32_t clicks = 1 + (int32_t)(j % 7);
                        want_clicks += clicks;
                        bson_t *upd = BCON_NEW(
                                "$inc", "{", "clicks", BCON_INT32(clicks),
                                "impressions", BCON_INT32(clicks * 40),
                                "spend_micros",
                                BCON_INT64((int64_t)(j % 13) * 250000), "}",
                                "$set", "{", "updated_at",
                                BCON_DATE_TIME(sb__wall_ms()), "}");
                        if (by_id) {
                                BSON_APPEND_DOCUMENT(upd, "$setOnInsert",
                                                     &fields);
                        }
                        bson_destroy(&fields);
                        ok = mongoc_bulk_operation_update_one_with_opts(
                                bulk, &sel, upd, uopts, &err);
                        bson_destroy(&sel);
                        bson_destroy(upd);
                }
                ok = sb__bulk_run(bulk, ok, &lat, &err);
                if (!ok) {
                        snprintf(why, sizeof(why), "bulk at %ld: %.150s", done,
                                 err.message);
                        break;
                }
                done = end;
        }
        double secs = sb_now() - t0;
        int64_t clicks = 0, docs = 0;
        long want_docs = done < keys ? done : keys;
        ok = ok && sb__sum(coll, "clicks", &clicks, &docs) &&
             docs == want_docs && clicks == want_clicks;
        if (!why[0]) {
                snprintf(why, sizeof(why),
                         "%ld upserts over %ld keys in bulks of 1000%s: %lld "
                         "docs (want %ld), clicks %lld (want %lld)",
                         done, keys, done < n ? " (budget)" : "",
                         (long long)docs, want_docs, (long long)clicks,
                         (long long)want_clicks);
        }
        sb_row(run, by_id ? "projection_id" : "projection", done, "upserts/s",
               (double)done / secs, &lat, ok, why);
        bson_destroy(uopts);
        sb_lat_free(&lat);
        mongoc_collection_destroy(coll);
        /* aggregate reads this collection. */
}

static void sb_projection(sb_run_t *run, mongoc_client_t *client) {
        sb__projection(run, client, false);
}

static void sb_projection_id(sb_run_t *run, mongoc_client_t *client) {
        sb__projection(run, client, true);
}

/* ---------------------------------------------------------------- reads */

static void sb_in_lookup(sb_run_t *run, mongoc_client_t *client) {
        long total = run->quick ? 20000 : 100000;
        int batches = run->quick ? 100 : 300, done = 0, bad = 0;
        mongoc_collection_t *coll =
                mongoc_client_get_collection(client, run->db, "many");
        int64_t have = sb_count(coll, NULL);
        sb_lat_t lat = {0};
        char why[256] = "";
        unsigned seed = 42;
        double t0 = sb_now();
        for (; done < batches && !sb__over(run, t0); done++) {
                bson_t filter = BSON_INITIALIZER, in, arr;
                /* 180 distinct present ids (7919 is prime, so the steps
                 * never meet within a batch) and 20 missing ones. */
                long base = (long)(rand_r(&seed) % total);
                BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &in);
                BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
                for (int i = 0; i < 200; i++) {
                        char id[32], key[16];
                        if (i % 10 == 9) {
                                snprintf(id, sizeof(id), "missing%07d", i);
                        } else {
                                snprintf(id, sizeof(id), "id%07ld",
                                         (base + 7919L * i) % total);
                        }
                        snprintf(key, sizeof(key), "%d", i);
                        BSON_APPEND_UTF8(&arr, key, id);
                }
                bson_append_array_end(&in, &arr);
                bson_append_document_end(&filter, &in);
                double t = sb_now();
                mongoc_cursor_t *cur = mongoc_collection_find_with_opts(
                        coll, &filter, NULL, NULL);
                const bson_t *doc;
                int got = 0;
                bson_error_t err;
                while (mongoc_cursor_next(cur, &doc)) {
                        got++;
                }
                bool failed = mongoc_cursor_error(cur, &err);
                sb_lat_add(&lat, (sb_now() - t) * 1e3);
                mongoc_cursor_destroy(cur);
                bson_destroy(&filter);
                if (failed) {
                        snprintf(why, sizeof(why), "find $in: %.150s",
                                 err.message);
                        break;
                }
                bad += got != 180;
        }
        double secs = sb_now() - t0;
        bool ok = !why[0] && bad == 0 && have == total;
        if (!why[0]) {
                snprintf(why, sizeof(why),
                         "%d batches of 200 ids (10%% missing) over %lld "
                         "docs%s; %d batch(es) with a wrong count",
                         done, (long long)have,
                         done < batches ? " (budget)" : "", bad);
        }
        sb_row(run, "in_lookup", 200L * done, "ids/s", 200.0 * done / secs,
               &lat, ok, why);
        sb_lat_free(&lat);
        mongoc_collection_destroy(coll);
}

/* events: 1,000 documents per tenant (100 days x 10). */
static bool sb__fill_events(mongoc_collection_t *coll, int from, int to,
                            char *why, size_t whylen) {
        size_t n = (size_t)(to - from) * 1000, i = 0;
        bson_t **docs = sb__docs(n);
        for (int t = from; t < to; t++) {
                char tenant[16];
                snprintf(tenant, sizeof(tenant), "t%04d", t);
                for (int d = 0; d < 100; d++) {
                        for (int s = 0; s < 10; s++) {
                                docs[i++] =
                                        BCON_NEW("tenant", BCON_UTF8(tenant),
                                                 "day", BCON_INT32(SB_DAY0 + d),
                                                 "seq", BCON_INT32(s), "body",
                                                 BCON_UTF8(sb_payload));
                        }
                }
        }
        bool ok = sb__insert_all(coll, docs, n, NULL, why, whylen);
        sb__free_docs(docs, n);
        return ok;
}

/* Runs queries until the count or the budget; false on a store error. */
static bool sb__find_range(sb_run_t *run, mongoc_collection_t *coll,
                           int tenants, int queries, const char *pattern,
                           const char *what) {
        sb_lat_t lat = {0};
        char why[1024] = "";
        int done = 0, bad = 0;
        bson_t *opts = BCON_NEW("sort", "{", "day", BCON_INT32(-1), "}",
                                "limit", BCON_INT64(50));
        double t0 = sb_now();
        for (; done < queries && !sb__over(run, t0); done++) {
                char tenant[16];
                snprintf(tenant, sizeof(tenant), "t%04d",
                         (done * 37) % tenants);
                bson_t *filter = BCON_NEW("tenant", BCON_UTF8(tenant), "day",
                                          "{", "$gte", BCON_INT32(SB_DAY0 + 20),
                                          "$lt", BCON_INT32(SB_DAY0 + 80), "}");
                double t = sb_now();
                mongoc_cursor_t *cur = mongoc_collection_find_with_opts(
                        coll, filter, opts, NULL);
                const bson_t *doc;
                int got = 0, last = 1 << 30;
                bool right = true;
                bson_error_t err;
                while (mongoc_cursor_next(cur, &doc)) {
                        bson_iter_t it;
                        int day = bson_iter_init_find(&it, doc, "day")
                                          ? bson_iter_int32(&it)
                                          : -1;
                        right = right && day <= last && day < SB_DAY0 + 80 &&
                                day >= SB_DAY0 + 75 &&
                                bson_iter_init_find(&it, doc, "tenant") &&
                                strcmp(bson_iter_utf8(&it, NULL), tenant) == 0;
                        last = day;
                        got++;
                }
                bool failed = mongoc_cursor_error(cur, &err);
                sb_lat_add(&lat, (sb_now() - t) * 1e3);
                mongoc_cursor_destroy(cur);
                bson_destroy(filter);
                if (failed) {
                        snprintf(why, sizeof(why), "find: %.150s", err.message);
                        break;
                }
                bad += !(right && got == 50);
        }
        double secs = sb_now() - t0;
        if (!why[0]) {
                snprintf(why, sizeof(why),
                         "%s; %d queries (tenant, 60-day range, sort day "
                         "desc, limit 50)%s; %d wrong",
                         what, done, done < queries ? " (budget)" : "", bad);
        }
        sb_row(run, pattern, done, "queries/s", done / secs, &lat,
               !why[0] || bad == 0 ? bad == 0 && done > 0 : false, why);
        bson_destroy(opts);
        sb_lat_free(&lat);
        return done > 0;
}

static void sb_find_idx(sb_run_t *run, mongoc_client_t *client) {
        int small = run->quick ? 5 : 10, large = run->quick ? 20 : 100;
        int queries = run->quick ? 100 : 300;
        mongoc_collection_t *coll =
                mongoc_client_get_collection(client, run->db, "events");
        char why[256] = "", what[128];
        bson_t *keys = BCON_NEW("tenant", BCON_INT32(1), "day", BCON_INT32(1));
        if (!sb__fill_events(coll, 0, small, why, sizeof(why)) ||
            !sb_index(client, run, "events", "tenant_day", keys, false, -1, why,
                      sizeof(why))) {
                sb_row(run, "find_idx_small", 0, "queries/s", 0, NULL, false,
                       why);
                goto out;
        }
        snprintf(what, sizeof(what), "index {tenant, day}, %d docs",
                 small * 1000);
        sb__find_range(run, coll, small, queries, "find_idx_small", what);
        if (!sb__fill_events(coll, small, large, why, sizeof(why))) {
                sb_row(run, "find_idx_large", 0, "queries/s", 0, NULL, false,
                       why);
                goto out;
        }
        snprintf(what, sizeof(what), "index {tenant, day}, %d docs",
                 large * 1000);
        sb__find_range(run, coll, large, queries, "find_idx_large", what);
        if (!sb__drop_index(coll, "tenant_day")) {
                sb_row(run, "find_noidx_large", 0, "queries/s", 0, NULL, false,
                       "dropIndexes failed");
                goto out;
        }
        snprintf(what, sizeof(what), "no index, %d docs", large * 1000);
        sb__find_range(run, coll, large, queries, "find_noidx_large", what);
out:
        bson_destroy(keys);
        mongoc_collection_destroy(coll);
}

/* aggregate: per campaign totals of one tenant over a week, by spend. */
/* The projection's documents, written with insert_many (not timed): every
 * key once, clicks and spend from the key. */
static bool sb__fill_facts(mongoc_collection_t *coll, int days, char *why,
                           size_t whylen) {
        size_t n = (size_t)SB_TENANTS * SB_PROVIDERS * SB_ACCOUNTS *
                   SB_CAMPAIGNS * (size_t)days;
        bson_t **docs = sb__docs(n);
        for (size_t k = 0; k < n; k++) {
                docs[k] = bson_new();
                sb__key_filter(docs[k], sb__key((long)k, days));
                BSON_APPEND_INT32(docs[k], "clicks", 1 + (int32_t)(k % 7));
                BSON_APPEND_INT64(docs[k], "spend_micros",
                                  (int64_t)(k % 13) * 250000);
        }
        bool ok = sb__insert_all(coll, docs, n, NULL, why, whylen);
        sb__free_docs(docs, n);
        return ok;
}

static void sb_aggregate(sb_run_t *run, mongoc_client_t *client) {
        int queries = run->quick ? 50 : 200, done = 0, bad = 0;
        int days = sb__proj_days(run), week = days < 7 ? days : 7;
        mongoc_collection_t *coll =
                mongoc_client_get_collection(client, run->db, "facts");
        sb_lat_t lat = {0};
        char why[1024] = "";
        bson_t *keys = BCON_NEW("tenant", BCON_INT32(1), "day", BCON_INT32(1));
        bool filled = sb__fill_facts(coll, days, why, sizeof(why)) &&
                      sb_index(client, run, "facts", "tenant_day", keys, false,
                               -1, why, sizeof(why));
        bson_destroy(keys);
        if (!filled) {
                sb_row(run, "aggregate", 0, "queries/s", 0, NULL, false, why);
                mongoc_collection_destroy(coll);
                return;
        }
        double t0 = sb_now(), agg_secs = 0;
        char first_wrong[200] = "";
        for (; done < queries && !sb__over(run, t0); done++) {
                char tenant[16];
                int t = done % SB_TENANTS;
                int d0 = SB_DAY0 + (done / SB_TENANTS) % (days - week + 1);
                snprintf(tenant, sizeof(tenant), "t%03d", t);
                bson_t *match = BCON_NEW("tenant", BCON_UTF8(tenant), "day",
                                         "{", "$gte", BCON_INT32(d0), "$lt",
                                         BCON_INT32(d0 + week), "}");
                bson_t *pipeline = BCON_NEW(
                        "pipeline", "[", "{", "$match", BCON_DOCUMENT(match),
                        "}", "{", "$group", "{", "_id", BCON_UTF8("$campaign"),
                        "clicks", "{", "$sum", BCON_UTF8("$clicks"), "}",
                        "spend", "{", "$sum", BCON_UTF8("$spend_micros"), "}",
                        "}", "}", "{", "$sort", "{", "spend", BCON_INT32(-1),
                        "_id", BCON_INT32(1), "}", "}", "{", "$limit",
                        BCON_INT32(SB_CAMPAIGNS), "}", "]");
                /* The same sums from the matched documents themselves. */
                int64_t want_clicks[SB_CAMPAIGNS] = {0};
                int64_t want_spend[SB_CAMPAIGNS] = {0};
                int want_groups = 0;
                mongoc_cursor_t *cur = mongoc_collection_find_with_opts(
                        coll, match, NULL, NULL);
                const bson_t *doc;
                bson_error_t err;
                while (mongoc_cursor_next(cur, &doc)) {
                        bson_iter_t it;
                        int c = -1;
                        if (bson_iter_init_find(&it, doc, "campaign")) {
                                c = atoi(bson_iter_utf8(&it, NULL) + 1);
                        }
                        if (c < 0 || c >= SB_CAMPAIGNS) {
                                continue;
                        }
                        want_groups += want_clicks[c] == 0;
                        if (bson_iter_init_find(&it, doc, "clicks")) {
                                want_clicks[c] += bson_iter_as_int64(&it);
                        }
                        if (bson_iter_init_find(&it, doc, "spend_micros")) {
                                want_spend[c] += bson_iter_as_int64(&it);
                        }
                }
                mongoc_cursor_destroy(cur);
                double t1 = sb_now();
                cur = mongoc_collection_aggregate(coll, MONGOC_QUERY_NONE,
                                                  pipeline, NULL, NULL);
                int got = 0;
                int64_t prev = INT64_MAX;
                bool right = true;
                while (mongoc_cursor_next(cur, &doc)) {
                        bson_iter_t it;
                        int c = -1;
                        int64_t cl = -1, sp = -1;
                        if (bson_iter_init_find(&it, doc, "_id") &&
                            BSON_ITER_HOLDS_UTF8(&it)) {
                                c = atoi(bson_iter_utf8(&it, NULL) + 1);
                        }
                        if (bson_iter_init_find(&it, doc, "clicks")) {
                                cl = bson_iter_as_int64(&it);
                        }
                        if (bson_iter_init_find(&it, doc, "spend")) {
                                sp = bson_iter_as_int64(&it);
                        }
                        bool this_right = c >= 0 && c < SB_CAMPAIGNS &&
                                          cl == want_clicks[c] &&
                                          sp == want_spend[c] && sp <= prev;
                        if (!this_right && right && !first_wrong[0]) {
                                snprintf(first_wrong, sizeof(first_wrong),
                                         "first wrong: campaign %d clicks "
                                         "%lld (want %lld) spend %lld (want "
                                         "%lld, previous %lld)",
                                         c, (long long)cl,
                                         (long long)(c >= 0 && c < SB_CAMPAIGNS
                                                             ? want_clicks[c]
                                                             : -1),
                                         (long long)sp,
                                         (long long)(c >= 0 && c < SB_CAMPAIGNS
                                                             ? want_spend[c]
                                                             : -1),
                                         (long long)prev);
                        }
                        right = right && this_right;
                        prev = sp;
                        got++;
                }
                bool failed = mongoc_cursor_error(cur, &err);
                sb_lat_add(&lat, (sb_now() - t1) * 1e3);
                agg_secs += sb_now() - t1;
                mongoc_cursor_destroy(cur);
                bson_destroy(pipeline);
                bson_destroy(match);
                if (failed) {
                        snprintf(why, sizeof(why), "aggregate: %.150s",
                                 err.message);
                        break;
                }
                if (right && got != want_groups && !first_wrong[0]) {
                        snprintf(first_wrong, sizeof(first_wrong),
                                 "first wrong: %d groups (want %d)", got,
                                 want_groups);
                }
                bad += !(right && got == want_groups && got > 0);
        }
        double secs = agg_secs > 0 ? agg_secs : 1;
        int64_t docs = sb_count(coll, NULL);
        if (!why[0]) {
                snprintf(why, sizeof(why),
                         "$match tenant+%d days, $group campaign $sum x2, "
                         "$sort, $limit over %lld docs; %d queries%s; %d "
                         "wrong (each against its own find's sums)%s%s",
                         week, (long long)docs, done,
                         done < queries ? " (budget)" : "", bad,
                         first_wrong[0] ? "; " : "", first_wrong);
        }
        sb_row(run, "aggregate", done, "queries/s", done / secs, &lat,
               !why[0] || bad == 0 ? bad == 0 && done > 0 : false, why);
        sb_lat_free(&lat);
        mongoc_collection_destroy(coll);
}

/* claims, cas, unique and ttl: store_claims.c. */
void sb_claims(sb_run_t *run, mongoc_client_t *client);
void sb_cas(sb_run_t *run, mongoc_client_t *client);
void sb_unique(sb_run_t *run, mongoc_client_t *client);
void sb_ttl_start(sb_run_t *run, mongoc_client_t *client);
void sb_ttl_finish(sb_run_t *run);

/* ---------------------------------------------------------------- main */

typedef struct sb_pattern {
        const char *name;
        void (*fn)(sb_run_t *run, mongoc_client_t *client);
} sb_pattern_t;

static const sb_pattern_t sb_patterns[] = {
        {"insert_one", sb_insert_one}, {"insert_many", sb_insert_many},
        {"in_lookup", sb_in_lookup},   {"upsert_bulk", sb_upsert_bulk},
        {"projection", sb_projection}, {"projection_id", sb_projection_id},
        {"aggregate", sb_aggregate},   {"find_idx", sb_find_idx},
        {"claims", sb_claims},         {"cas", sb_cas},
        {"unique", sb_unique},         {NULL, NULL},
};

static bool sb__wanted(const char *list, const char *name) {
        if (!list) {
                return true;
        }
        size_t n = strlen(name);
        for (const char *p = list; (p = strstr(p, name)); p += n) {
                if ((p == list || p[-1] == ',') &&
                    (p[n] == ',' || p[n] == '\0')) {
                        return true;
                }
        }
        return false;
}

static void sb__usage(void) {
        fprintf(stderr, "usage: bench-store -u URI -n NAME [-q] [-b BUDGET_S] "
                        "[-p PATTERN,...]\n");
        exit(2);
}

int main(int argc, char **argv) {
        sb_run_t run = {0};
        const char *only = NULL;
        int opt;
        run.budget_s = 0;
        while ((opt = getopt(argc, argv, "u:n:qb:p:")) != -1) {
                switch (opt) {
                case 'u':
                        run.uri = optarg;
                        break;
                case 'n':
                        run.cand = optarg;
                        break;
                case 'q':
                        run.quick = true;
                        break;
                case 'b':
                        run.budget_s = atof(optarg);
                        break;
                case 'p':
                        only = optarg;
                        break;
                default:
                        sb__usage();
                }
        }
        if (!run.uri || !run.cand) {
                sb__usage();
        }
        if (run.budget_s <= 0) {
                run.budget_s = run.quick ? 20 : 45;
        }
        snprintf(run.db, sizeof(run.db), "benchstore_%ld_%d", (long)time(NULL),
                 (int)getpid());

        mongoc_init();
        bson_error_t err;
        mongoc_uri_t *uri = mongoc_uri_new_with_error(run.uri, &err);
        if (!uri) {
                fprintf(stderr, "bench-store: %s\n", err.message);
                return 2;
        }
        /* A store stuck on one request for longer than this is reported
         * as failing that pattern, not waited for. */
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS,
                                       (int32_t)(run.budget_s * 2000 + 10000));
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_MAXPOOLSIZE, 32);
        run.pool = mongoc_client_pool_new(uri);
        mongoc_client_pool_set_error_api(run.pool, MONGOC_ERROR_API_VERSION_2);
        mongoc_uri_destroy(uri);
        mongoc_client_t *client = mongoc_client_pool_pop(run.pool);

        bson_t *ping = BCON_NEW("ping", BCON_INT32(1));
        if (!mongoc_client_command_simple(client, "admin", ping, NULL, NULL,
                                          &err)) {
                fprintf(stderr, "bench-store: %s: ping: %s\n", run.uri,
                        err.message);
                return 1;
        }
        bson_destroy(ping);

        bool ttl = sb__wanted(only, "ttl");
        if (ttl) {
                sb_ttl_start(&run, client);
        }
        for (const sb_pattern_t *p = sb_patterns; p->name; p++) {
                if (sb__wanted(only, p->name)) {
                        fprintf(stderr, "bench-store %s: %s\n", run.cand,
                                p->name);
                        p->fn(&run, client);
                }
        }
        if (sb__wanted(only, "features")) {
                fprintf(stderr, "bench-store %s: features\n", run.cand);
                sb_features(&run);
        }
        if (ttl) {
                fprintf(stderr, "bench-store %s: ttl (waiting)\n", run.cand);
                sb_ttl_finish(&run);
        }

        mongoc_database_t *db = mongoc_client_get_database(client, run.db);
        mongoc_database_drop(db, &err);
        mongoc_database_destroy(db);
        mongoc_client_pool_push(run.pool, client);
        mongoc_client_pool_destroy(run.pool);
        mongoc_cleanup();
        return 0;
}
