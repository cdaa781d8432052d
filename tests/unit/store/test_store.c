/*
 * test_store.c - the store wrapper and the operation log against the real
 * store (compose/local/infra): every call's result and its translated
 * errors, bulk writes with duplicates, find-and-modify claims (one winner),
 * aggregation, and the operation log's batch lookup and records.
 *
 * Each run uses a database prefix of its own; ctest label `store`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "msgid.h"
#include "oplog.h"
#include "store.h"

#define DB "storetest"

typedef struct {
        config_t cfg;
        store_t *store;
} fixture_t;

static const char *env_of(const char *name) {
        return getenv(name);
}

static int setup(void **state) {
        static fixture_t fx;
        char err[512], prefix[32];
        char *argv[] = {"test_store", NULL};
        msgid_t id;
        memset(&fx, 0, sizeof(fx));
        *state = &fx;
        assert_int_equal(config_load(&fx.cfg, CONFIG_SCOPE_GROUP, "test_store",
                                     1, argv, NULL, env_of, NULL, err,
                                     sizeof(err)),
                         CONFIG_OK);
        msgid_new(&id);
        snprintf(prefix, sizeof(prefix), "st%02x%02x%02x_", id.b[13], id.b[14],
                 id.b[15]);
        free(fx.cfg.mongo_db_prefix);
        fx.cfg.mongo_db_prefix = strdup(prefix);
        fx.store = store_new(&fx.cfg, "test_store", err, sizeof(err));
        assert_non_null(fx.store);
        if (store_ping(fx.store) != STORE_OK)
                fail_msg("the store is unreachable (compose/local/infra up)");
        return 0;
}

static int teardown(void **state) {
        fixture_t *fx = *state;
        store_destroy(fx->store);
        config_deinit(&fx->cfg);
        return 0;
}

static void doc_id_n(bson_t *doc, const char *id, int n) {
        bson_init(doc);
        BSON_APPEND_UTF8(doc, "_id", id);
        BSON_APPEND_INT32(doc, "n", n);
}

static void filter_id(bson_t *f, const char *id) {
        bson_init(f);
        BSON_APPEND_UTF8(f, "_id", id);
}

static int32_t n_of(const bson_t *doc) {
        bson_iter_t it;
        assert_true(bson_iter_init_find(&it, doc, "n"));
        return bson_iter_int32(&it);
}

static void test_insert_find_update_delete(void **state) {
        fixture_t *fx = *state;
        bson_t doc, f, out, upd;
        char err[256];
        int64_t n = -1;
        doc_id_n(&doc, "a", 1);
        assert_int_equal(
                store_insert(fx->store, DB, "c1", &doc, err, sizeof(err)),
                STORE_OK);
        /* Unique _id: a duplicate is named as such. */
        assert_int_equal(
                store_insert(fx->store, DB, "c1", &doc, err, sizeof(err)),
                STORE_DUPLICATE);
        bson_destroy(&doc);
        filter_id(&f, "a");
        assert_int_equal(store_find_one(fx->store, DB, "c1", &f, NULL, &out,
                                        err, sizeof(err)),
                         STORE_OK);
        assert_int_equal(n_of(&out), 1);
        bson_destroy(&out);
        bson_init(&upd);
        BCON_APPEND(&upd, "$set", "{", "n", BCON_INT32(2), "}");
        assert_int_equal(store_update(fx->store, DB, "c1", &f, &upd, 0, &n, err,
                                      sizeof(err)),
                         STORE_OK);
        assert_int_equal(n, 1);
        bson_destroy(&f);
        filter_id(&f, "missing");
        assert_int_equal(store_update(fx->store, DB, "c1", &f, &upd, 0, &n, err,
                                      sizeof(err)),
                         STORE_NOT_FOUND);
        assert_int_equal(store_update(fx->store, DB, "c1", &f, &upd,
                                      STORE_UPSERT, &n, err, sizeof(err)),
                         STORE_OK);
        assert_int_equal(n, 1);
        bson_destroy(&upd);
        bson_destroy(&f);
        bson_init(&f);
        assert_int_equal(
                store_count(fx->store, DB, "c1", &f, &n, err, sizeof(err)),
                STORE_OK);
        assert_int_equal(n, 2);
        assert_int_equal(store_delete(fx->store, DB, "c1", &f, STORE_MANY, &n,
                                      err, sizeof(err)),
                         STORE_OK);
        assert_int_equal(n, 2);
        bson_destroy(&f);
        assert_int_equal(store_drop(fx->store, DB, "c1", err, sizeof(err)),
                         STORE_OK);
        /* Dropping what is not there is fine. */
        assert_int_equal(store_drop(fx->store, DB, "c1", err, sizeof(err)),
                         STORE_OK);
}

/* Unordered bulks: upserts keyed by id, duplicates counted, not failed. */
static void test_bulk_writes(void **state) {
        fixture_t *fx = *state;
        store_bulk_t *b = store_bulk_new(fx->store, DB, "c2", false);
        store_bulk_result_t r;
        char err[256];
        bson_t doc, f, upd;
        int64_t n = 0;
        for (int i = 0; i < 2000; i++) {
                char id[16];
                snprintf(id, sizeof(id), "k%d", i % 1000);
                filter_id(&f, id);
                bson_init(&upd);
                BCON_APPEND(&upd, "$set", "{", "n", BCON_INT32(i), "}");
                store_bulk_update(b, &f, &upd, STORE_UPSERT);
                bson_destroy(&f);
                bson_destroy(&upd);
        }
        assert_int_equal(store_bulk_count(b), 2000);
        assert_int_equal(store_bulk_run(b, &r, err, sizeof(err)), STORE_OK);
        assert_int_equal(r.upserted, 1000);
        assert_int_equal(r.matched, 1000);
        store_bulk_destroy(b);
        bson_init(&f);
        assert_int_equal(
                store_count(fx->store, DB, "c2", &f, &n, err, sizeof(err)),
                STORE_OK);
        assert_int_equal(n, 1000);
        bson_destroy(&f);
        /* The last write per id won. */
        filter_id(&f, "k7");
        assert_int_equal(store_find_one(fx->store, DB, "c2", &f, NULL, &doc,
                                        err, sizeof(err)),
                         STORE_OK);
        assert_int_equal(n_of(&doc), 1007);
        bson_destroy(&doc);
        bson_destroy(&f);

        b = store_bulk_new(fx->store, DB, "c2", false);
        doc_id_n(&doc, "k1", 0); /* exists */
        store_bulk_insert(b, &doc);
        bson_destroy(&doc);
        doc_id_n(&doc, "new", 0);
        store_bulk_insert(b, &doc);
        bson_destroy(&doc);
        assert_int_equal(store_bulk_run(b, &r, err, sizeof(err)), STORE_OK);
        assert_int_equal(r.duplicates, 1);
        store_bulk_destroy(b);
        /* What is stored says it (the local store's nInserted also counts
         * the refused duplicate; MongoDB's does not). */
        bson_init(&f);
        assert_int_equal(store_count(fx->store, DB, "c2", &f, &n, err,
                                     sizeof(err)),
                         STORE_OK);
        assert_int_equal(n, 1001);
        bson_destroy(&f);
        /* An empty bulk is fine. */
        b = store_bulk_new(fx->store, DB, "c2", true);
        assert_int_equal(store_bulk_run(b, NULL, err, sizeof(err)), STORE_OK);
        store_bulk_destroy(b);
        store_drop(fx->store, DB, "c2", err, sizeof(err));
}

/* Claims: many threads take due jobs with find-and-modify; each job is
 * claimed exactly once. */
#define CLAIM_JOBS 200
#define CLAIM_THREADS 4
typedef struct {
        fixture_t *fx;
        int claimed;
        int seen[CLAIM_JOBS];
} claimer_t;

static void *claimer(void *arg) {
        claimer_t *c = arg;
        char err[256];
        for (;;) {
                bson_t f, sort, upd, out;
                bson_iter_t it;
                store_err_t e;
                bson_init(&f);
                BSON_APPEND_UTF8(&f, "status", "due");
                bson_init(&sort);
                BSON_APPEND_INT32(&sort, "n", 1);
                bson_init(&upd);
                BCON_APPEND(&upd, "$set", "{", "status", BCON_UTF8("taken"),
                            "}");
                e = store_find_and_modify(c->fx->store, DB, "jobs", &f, &sort,
                                          &upd, true, false, &out, err,
                                          sizeof(err));
                bson_destroy(&f);
                bson_destroy(&sort);
                bson_destroy(&upd);
                if (e == STORE_NOT_FOUND)
                        break;
                assert_int_equal(e, STORE_OK);
                assert_true(bson_iter_init_find(&it, &out, "status"));
                assert_string_equal(bson_iter_utf8(&it, NULL), "taken");
                c->seen[n_of(&out)]++;
                c->claimed++;
                bson_destroy(&out);
        }
        return NULL;
}

static void test_claims_are_exclusive(void **state) {
        fixture_t *fx = *state;
        store_bulk_t *b = store_bulk_new(fx->store, DB, "jobs", true);
        static claimer_t cl[CLAIM_THREADS];
        pthread_t th[CLAIM_THREADS];
        char err[256];
        int total = 0;
        for (int i = 0; i < CLAIM_JOBS; i++) {
                bson_t doc;
                char id[16];
                snprintf(id, sizeof(id), "j%d", i);
                doc_id_n(&doc, id, i);
                BSON_APPEND_UTF8(&doc, "status", "due");
                store_bulk_insert(b, &doc);
                bson_destroy(&doc);
        }
        assert_int_equal(store_bulk_run(b, NULL, err, sizeof(err)), STORE_OK);
        store_bulk_destroy(b);
        for (int t = 0; t < CLAIM_THREADS; t++) {
                memset(&cl[t], 0, sizeof(cl[t]));
                cl[t].fx = fx;
                assert_int_equal(pthread_create(&th[t], NULL, claimer, &cl[t]),
                                 0);
        }
        for (int t = 0; t < CLAIM_THREADS; t++) {
                pthread_join(th[t], NULL);
                total += cl[t].claimed;
        }
        assert_int_equal(total, CLAIM_JOBS);
        for (int i = 0; i < CLAIM_JOBS; i++) {
                int n = 0;
                for (int t = 0; t < CLAIM_THREADS; t++)
                        n += cl[t].seen[i];
                assert_int_equal(n, 1);
        }
        store_drop(fx->store, DB, "jobs", err, sizeof(err));
}

typedef struct {
        int64_t sum;
        int groups;
} agg_t;

static bool agg_each(const bson_t *doc, void *arg) {
        agg_t *a = arg;
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, "total"))
                a->sum += bson_iter_as_int64(&it);
        a->groups++;
        return true;
}

static void test_aggregate(void **state) {
        fixture_t *fx = *state;
        store_bulk_t *b = store_bulk_new(fx->store, DB, "facts", true);
        bson_t *pipeline;
        agg_t a = {0, 0};
        char err[256];
        for (int i = 0; i < 30; i++) {
                bson_t doc = BSON_INITIALIZER;
                BSON_APPEND_UTF8(&doc, "tenant", i % 3 ? "t1" : "t2");
                BSON_APPEND_INT64(&doc, "spend", i);
                BSON_APPEND_UTF8(&doc, "day", i < 15 ? "d1" : "d2");
                store_bulk_insert(b, &doc);
                bson_destroy(&doc);
        }
        assert_int_equal(store_bulk_run(b, NULL, err, sizeof(err)), STORE_OK);
        store_bulk_destroy(b);
        pipeline = BCON_NEW("0", "{", "$match", "{", "tenant", BCON_UTF8("t1"),
                            "}", "}", "1", "{", "$group", "{", "_id",
                            BCON_UTF8("$day"), "total", "{", "$sum",
                            BCON_UTF8("$spend"), "}", "}", "}");
        assert_int_equal(store_aggregate(fx->store, DB, "facts", pipeline,
                                         agg_each, &a, err, sizeof(err)),
                         STORE_OK);
        bson_destroy(pipeline);
        /* t1 holds i with i % 3 != 0: 0..29 sums 435, minus multiples of
         * 3 (0+3+...+27 = 135). */
        assert_int_equal(a.sum, 300);
        assert_int_equal(a.groups, 2);
        store_drop(fx->store, DB, "facts", err, sizeof(err));
}

typedef struct {
        int found;
        int status;
} found_t;

static void on_found(const char *id, oplog_entry_t *e, void *arg) {
        found_t *f = arg;
        (void)id;
        f->found++;
        f->status = e->status;
        assert_string_equal(e->content_type, "text/csv");
        oplog_entry_deinit(e);
}

static void test_oplog_many(void **state) {
        fixture_t *fx = *state;
        char ids[3][MSGID_TEXT_SIZE], err[256];
        slice_t look[3];
        oplog_rec_t recs[2];
        found_t f = {0, 0};
        for (int i = 0; i < 3; i++) {
                msgid_t mid;
                msgid_new(&mid);
                msgid_format(&mid, ids[i]);
                look[i] = slice_of(ids[i]);
        }
        for (int i = 0; i < 2; i++)
                recs[i] = (oplog_rec_t){.id = slice_of(ids[i]),
                                        .group = "storetest",
                                        .type = slice_of("x.y"),
                                        .status = 200 + i,
                                        .body = slice_of("a,b\n"),
                                        .content_type = "text/csv"};
        assert_int_equal(oplog_init(fx->store, err, sizeof(err)), STORE_OK);
        assert_int_equal(
                oplog_record_many(fx->store, recs, 2, 60, err, sizeof(err)),
                STORE_OK);
        /* Written again (a redelivery racing its first run): still fine. */
        assert_int_equal(
                oplog_record_many(fx->store, recs, 2, 60, err, sizeof(err)),
                STORE_OK);
        assert_int_equal(oplog_find_many(fx->store, look, 3, on_found, &f, err,
                                         sizeof(err)),
                         STORE_OK);
        assert_int_equal(f.found, 2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_insert_find_update_delete),
                cmocka_unit_test(test_bulk_writes),
                cmocka_unit_test(test_claims_are_exclusive),
                cmocka_unit_test(test_aggregate),
                cmocka_unit_test(test_oplog_many),
        };
        log_init(LOG_LEVEL_ERROR, "test_store");
        return cmocka_run_group_tests(tests, setup, teardown);
}
