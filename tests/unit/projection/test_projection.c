/*
 * test_projection.c - the generic pieces replays stand on, against the real
 * store: last-writer-wins buffers (any order, any repetition, same
 * documents), the pointer document (first versions, reservations, busy and
 * scratch builds, full and per-tenant swaps, the grace before dropping),
 * digests that do not depend on the order fields were written in; and,
 * without the store, calendar days and RFC 3339 times.
 *
 * Needs the store of compose/local/infra (OMNIFY_MONGO_URI) for the first
 * part; exits 77 (skipped) when it is unreachable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caltime.h"
#include "config.h"
#include "log.h"
#include "lww.h"
#include "msgid.h"
#include "projection.h"

static config_t cfg;
static store_t *store;
static char db[64];

static const char *env_of(const char *name) {
        return getenv(name);
}

static const char *const colls[] = {"facts", "cat", NULL};
static const char *const types[] = {"x.fact.*", NULL};
static const projection_def_t def = {"facts", 2, colls, NULL, "tenant", types};
static const projection_def_t *const defs[] = {&def};

/* ---------------------------------------------------------------------------
 * Last writer wins
 * ------------------------------------------------------------------------ */

static void put(lww_t *b, const char *id, const char *tenant,
                const char *value) {
        lww_set(b, slice_of(id), "tenant", slice_of(tenant));
        lww_max(b, slice_of(id), "c.k1", slice_of(value));
        lww_min(b, slice_of(id), "first", slice_of(value));
}

static void digest_of(const char *coll_base, int64_t version,
                      projection_digest_t *out) {
        char err[256];
        size_t n = 0;
        projection_digest_t d[4];
        (void)coll_base;
        assert_int_equal(projection_digest(store, db, &def, version, SLICE_NULL,
                                           d, &n, err, sizeof(err)),
                         STORE_OK);
        assert_int_equal(n, 2);
        *out = d[0];
}

static void test_lww_any_order(void **state) {
        char err[256], coll[PROJECTION_COLL_MAX];
        const char *vals[] = {"0000000000000002|b|two",
                              "0000000000000001|a|one",
                              "0000000000000003|c|three"};
        projection_digest_t d1, d2;
        (void)state;
        /* Version 101: one flush per value, newest in the middle; version
         * 102: all in one buffer, oldest last, twice. */
        projection_coll("facts", 101, coll, sizeof(coll));
        for (int i = 0; i < 3; i++) {
                lww_t *b = lww_new();
                put(b, "doc1", "t1", vals[i]);
                assert_int_equal(
                        lww_flush(b, store, db, coll, 0, err, sizeof(err)),
                        STORE_OK);
                assert_int_equal(lww_docs(b), 0);
                lww_destroy(b);
        }
        projection_coll("facts", 102, coll, sizeof(coll));
        for (int round = 0; round < 2; round++) {
                lww_t *b = lww_new();
                put(b, "doc1", "t1", vals[2]);
                put(b, "doc1", "t1", vals[0]);
                put(b, "doc1", "t1", vals[1]);
                assert_int_equal(lww_docs(b), 1);
                assert_int_equal(
                        lww_flush(b, store, db, coll, 0, err, sizeof(err)),
                        STORE_OK);
                lww_destroy(b);
        }
        digest_of("facts", 101, &d1);
        digest_of("facts", 102, &d2);
        assert_int_equal(d1.documents, 1);
        assert_string_equal(d1.hex, d2.hex);
        {
                bson_t filter, doc;
                bson_iter_t it;
                bson_init(&filter);
                BSON_APPEND_UTF8(&filter, "_id", "doc1");
                assert_int_equal(store_find_one(store, db, coll, &filter, NULL,
                                                &doc, err, sizeof(err)),
                                 STORE_OK);
                assert_true(bson_iter_init_find(&it, &doc, "first"));
                assert_string_equal(bson_iter_utf8(&it, NULL), vals[1]);
                assert_true(bson_iter_init(&it, &doc) &&
                            bson_iter_find_descendant(&it, "c.k1", &it));
                assert_string_equal(bson_iter_utf8(&it, NULL), vals[2]);
                bson_destroy(&doc);
                bson_destroy(&filter);
        }
}

/* The same fields written in another order digest the same. */
static void test_digest_is_canonical(void **state) {
        char err[256], c1[PROJECTION_COLL_MAX], c2[PROJECTION_COLL_MAX];
        bson_t a, b, sub;
        projection_digest_t d1, d2;
        (void)state;
        projection_coll("facts", 201, c1, sizeof(c1));
        projection_coll("facts", 202, c2, sizeof(c2));
        bson_init(&a);
        BSON_APPEND_UTF8(&a, "_id", "x");
        BSON_APPEND_INT64(&a, "n", 5);
        BSON_APPEND_DOCUMENT_BEGIN(&a, "c", &sub);
        BSON_APPEND_UTF8(&sub, "k1", "1");
        BSON_APPEND_UTF8(&sub, "k2", "2");
        bson_append_document_end(&a, &sub);
        bson_init(&b);
        BSON_APPEND_DOCUMENT_BEGIN(&b, "c", &sub);
        BSON_APPEND_UTF8(&sub, "k2", "2");
        BSON_APPEND_UTF8(&sub, "k1", "1");
        bson_append_document_end(&b, &sub);
        BSON_APPEND_INT32(&b, "n", 5);
        BSON_APPEND_UTF8(&b, "_id", "x");
        assert_int_equal(store_insert(store, db, c1, &a, err, sizeof(err)),
                         STORE_OK);
        assert_int_equal(store_insert(store, db, c2, &b, err, sizeof(err)),
                         STORE_OK);
        digest_of("facts", 201, &d1);
        digest_of("facts", 202, &d2);
        assert_string_equal(d1.hex, d2.hex);
        bson_destroy(&a);
        bson_destroy(&b);
}

/* ---------------------------------------------------------------------------
 * The pointer
 * ------------------------------------------------------------------------ */

static int64_t version_of(const char *tenant) {
        projection_snapshot_t *s = NULL;
        char err[256];
        int64_t v;
        assert_int_equal(projection_snapshot_load(store, db, defs, 1, &s, err,
                                                  sizeof(err)),
                         PROJECTION_OK);
        v = projection_version(s, "facts", slice_of(tenant));
        projection_snapshot_free(s);
        return v;
}

static void insert_doc(int64_t version, const char *id, const char *tenant) {
        char coll[PROJECTION_COLL_MAX], err[256];
        bson_t doc;
        projection_coll("facts", version, coll, sizeof(coll));
        bson_init(&doc);
        BSON_APPEND_UTF8(&doc, "_id", id);
        BSON_APPEND_UTF8(&doc, "tenant", tenant);
        assert_int_equal(store_insert(store, db, coll, &doc, err, sizeof(err)),
                         STORE_OK);
        bson_destroy(&doc);
}

static int64_t count_docs(int64_t version) {
        char coll[PROJECTION_COLL_MAX], err[256];
        bson_t all;
        int64_t n = -1;
        projection_coll("facts", version, coll, sizeof(coll));
        bson_init(&all);
        assert_int_equal(
                store_count(store, db, coll, &all, &n, err, sizeof(err)),
                STORE_OK);
        bson_destroy(&all);
        return n;
}

static void test_pointer_life(void **state) {
        char err[256];
        int64_t first, v1, v2, v3, scratch;
        size_t dropped = 0;
        (void)state;
        first = version_of("t1");
        assert_true(first > 0);
        /* Code newer than what built the active version: start-up says
         * so. */
        {
                static const projection_def_t newer = {
                        "facts", 3, colls, NULL, "tenant", types};
                const projection_def_t *const nd[] = {&newer};
                projection_snapshot_t *s = NULL;
                assert_int_equal(projection_snapshot_load(store, db, nd, 1, &s,
                                                          err, sizeof(err)),
                                 PROJECTION_OK);
                assert_int_equal(projection_check(s, nd, 1, "omnify replay x"),
                                 1);
                assert_int_equal(
                        projection_check(s, defs, 1, "omnify replay x"), 0);
                projection_snapshot_free(s);
        }
        assert_int_equal(version_of("t2"), first);
        insert_doc(first, "a", "t1");
        insert_doc(first, "b", "t2");

        /* A full build; another one is refused meanwhile; a scratch one
         * is not. */
        assert_int_equal(projection_reserve(store, db, &def, "r1", SLICE_NULL,
                                            false, &v1, err, sizeof(err)),
                         PROJECTION_OK);
        assert_int_equal(projection_reserve(store, db, &def, "r2", SLICE_NULL,
                                            false, &v2, err, sizeof(err)),
                         PROJECTION_BUSY);
        assert_non_null(strstr(err, "r1"));
        assert_int_equal(projection_reserve(store, db, &def, "rs", SLICE_NULL,
                                            true, &scratch, err, sizeof(err)),
                         PROJECTION_OK);
        /* Resuming gives the same version again. */
        assert_int_equal(projection_reserve(store, db, &def, "r1", SLICE_NULL,
                                            false, &v2, err, sizeof(err)),
                         PROJECTION_OK);
        assert_int_equal(v2, v1);
        insert_doc(v1, "a", "t1");
        insert_doc(v1, "b", "t2");
        assert_int_equal(version_of("t1"), first); /* not yet */
        assert_int_equal(
                projection_swap(store, db, "r1", 60000, err, sizeof(err)),
                PROJECTION_OK);
        assert_int_equal(version_of("t1"), v1);
        assert_int_equal(version_of("t2"), v1);
        /* The scratch build is never swapped in. */
        assert_int_equal(projection_swap(store, db, "rs", 0, err, sizeof(err)),
                         PROJECTION_UNKNOWN);
        assert_int_equal(
                projection_abandon(store, db, defs, 1, "rs", err, sizeof(err)),
                PROJECTION_OK);

        /* Within the grace the old version stays; after it, it goes. */
        assert_int_equal(projection_gc(store, db, defs, 1,
                                       (int64_t)clock_wall_ms(), &dropped, err,
                                       sizeof(err)),
                         PROJECTION_OK);
        assert_int_equal(dropped, 0);
        assert_int_equal(count_docs(first), 2);
        assert_int_equal(projection_gc(store, db, defs, 1,
                                       (int64_t)clock_wall_ms() + 61000,
                                       &dropped, err, sizeof(err)),
                         PROJECTION_OK);
        assert_int_equal(dropped, 1);
        assert_int_equal(count_docs(first), 0);

        /* One tenant's build: only t1 moves; its documents leave the shared
         * version after the grace, t2's stay. */
        assert_int_equal(projection_reserve(store, db, &def, "r3",
                                            slice_of("t1"), false, &v3, err,
                                            sizeof(err)),
                         PROJECTION_OK);
        insert_doc(v3, "a", "t1");
        assert_int_equal(projection_swap(store, db, "r3", 0, err, sizeof(err)),
                         PROJECTION_OK);
        assert_int_equal(version_of("t1"), v3);
        assert_int_equal(version_of("t2"), v1);
        assert_int_equal(projection_gc(store, db, defs, 1,
                                       (int64_t)clock_wall_ms() + 1, &dropped,
                                       err, sizeof(err)),
                         PROJECTION_OK);
        assert_int_equal(dropped, 1);
        assert_int_equal(count_docs(v1), 1);
        assert_int_equal(count_docs(v3), 1);
}

/* ---------------------------------------------------------------------------
 * Calendar days and times (no store)
 * ------------------------------------------------------------------------ */

static void test_caltime(void **state) {
        int64_t d, ms;
        char buf[CALTIME_DATE_SIZE];
        (void)state;
        assert_true(caltime_parse_date("1970-01-01", 10, &d));
        assert_int_equal(d, 0);
        assert_true(caltime_parse_date("2024-02-29", 10, &d));
        caltime_format_date(d, buf);
        assert_string_equal(buf, "2024-02-29");
        assert_false(caltime_parse_date("2025-02-29", 10, &d));
        assert_false(caltime_parse_date("2025-13-01", 10, &d));
        assert_false(caltime_parse_date("2025-1-01", 9, &d));
        assert_true(caltime_parse_date("2024-02-29", 10, &d));
        caltime_format_date(caltime_year_back(d), buf);
        assert_string_equal(buf, "2023-02-28");
        assert_true(caltime_parse_date("2025-12-06", 10, &d));
        assert_int_equal(caltime_weekday(d), 5); /* a Saturday */
        caltime_format_date(caltime_week_start(d), buf);
        assert_string_equal(buf, "2025-12-01");
        caltime_format_date(caltime_month_start(d), buf);
        assert_string_equal(buf, "2025-12-01");
        assert_int_equal(caltime_month_length(d), 31);
        assert_true(caltime_parse_rfc3339("1970-01-02T00:00:01.5Z", 22, &ms));
        assert_int_equal(ms, 86401500);
        assert_true(
                caltime_parse_rfc3339("1970-01-01T02:00:00+02:00", 25, &ms));
        assert_int_equal(ms, 0);
        assert_false(caltime_parse_rfc3339("1970-01-01 00:00:00Z", 20, &ms));
        assert_int_equal(caltime_day_of_ms(-1), -1);
}

/* ---------------------------------------------------------------------------
 * Set-up
 * ------------------------------------------------------------------------ */

static int setup(void **state) {
        char err[512], prefix[32];
        char *argv[] = {"test_projection", NULL};
        msgid_t id;
        (void)state;
        if (config_load(&cfg, CONFIG_SCOPE_GROUP, "test_projection", 1, argv,
                        NULL, env_of, NULL, err, sizeof(err)) != CONFIG_OK)
                fail_msg("config: %s", err);
        msgid_new(&id);
        snprintf(prefix, sizeof(prefix), "prt%02x%02x%02x_", id.b[13], id.b[14],
                 id.b[15]);
        free(cfg.mongo_db_prefix);
        cfg.mongo_db_prefix = strdup(prefix);
        snprintf(db, sizeof(db), "p");
        store = store_new(&cfg, "test_projection", err, sizeof(err));
        if (!store || store_ping(store) != STORE_OK) {
                fprintf(stderr, "test_projection: skipped: no store\n");
                exit(77);
        }
        return 0;
}

static int teardown(void **state) {
        (void)state;
        store_destroy(store);
        config_deinit(&cfg);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lww_any_order),
                cmocka_unit_test(test_digest_is_canonical),
                cmocka_unit_test(test_pointer_life),
                cmocka_unit_test(test_caltime),
        };
        log_init(getenv("TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR,
                 "test_projection");
        return cmocka_run_group_tests(tests, setup, teardown);
}
