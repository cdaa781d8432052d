/*
 * test_timer.c - durable timers and schedules (shared/timer.c) against the
 * real store and librdkafka's mock cluster: a timer fires once, on time,
 * as a command carrying its setter's tenant, user and roles and a derived
 * id; setting is idempotent; cancelled timers stay quiet; concurrent
 * claimers never take one record twice; a dead firer's lease runs out;
 * a schedule fires once per period across processes and catches up once.
 * Label "store": skipped (77) when the store does not answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lease.h"
#include "log.h"
#include "msgid.h"
#include "teststore.h"
#include "timer.h"

#define GROUP "unit"
#define NS "timer|" GROUP "|timers"

static teststore_t FX;
static const char BODY[] = "\x81\xa1x\x01"; /* {"x": 1} */

static cmd_caller_t caller(void) {
        return (cmd_caller_t){slice_of("tenant-1"), slice_of("user-1"),
                              slice_of("member"), SLICE_NULL};
}

static timer_service_t *service(int poll_ms, bool start) {
        char errstr[256];
        timer_opts_t o = {.cfg = &FX.cfg,
                          .store = FX.store,
                          .bus = FX.bus,
                          .group = GROUP,
                          .poll_ms = poll_ms};
        timer_service_t *ts = timer_service_new(&o, errstr, sizeof(errstr));
        assert_non_null(ts);
        assert_int_equal(timer_service_indexes(ts, errstr, sizeof(errstr)),
                         TIMER_OK);
        if (start)
                assert_int_equal(
                        timer_service_start(ts, errstr, sizeof(errstr)), 0);
        return ts;
}

static timer_spec_t spec(const char *id, int64_t at) {
        timer_spec_t s = {.id = id,
                          .fire_at_ms = at,
                          .type = "unit.tick",
                          .key = slice_of("key-1"),
                          .body = {BODY, sizeof(BODY) - 1},
                          .caller = caller()};
        return s;
}

/* The calls as a handler makes them: a transient store failure (the
 * shared store stalls under load) is tried again, as the runtime would
 * redeliver the command. */
#define TRANSIENT_TRIES 5

static timer_err_t t_set(timer_service_t *ts, const timer_spec_t *s,
                         char *errstr, size_t errlen) {
        timer_err_t err;
        for (int i = 0;
             (err = timer_set(ts, s, errstr, errlen)) == TIMER_STORE_DOWN &&
             i < TRANSIENT_TRIES;
             i++)
                usleep(300 * 1000);
        return err;
}

static timer_err_t t_cancel(timer_service_t *ts, const char *id, char *errstr,
                            size_t errlen) {
        timer_err_t err;
        for (int i = 0;
             (err = timer_cancel(ts, id, errstr, errlen)) == TIMER_STORE_DOWN &&
             i < TRANSIENT_TRIES;
             i++)
                usleep(300 * 1000);
        return err;
}

static timer_err_t s_set(timer_service_t *ts, const schedule_spec_t *s,
                         char *errstr, size_t errlen) {
        timer_err_t err;
        for (int i = 0;
             (err = schedule_set(ts, s, errstr, errlen)) == TIMER_STORE_DOWN &&
             i < TRANSIENT_TRIES;
             i++)
                usleep(300 * 1000);
        return err;
}

static timer_err_t s_cancel(timer_service_t *ts, const char *id, char *errstr,
                            size_t errlen) {
        timer_err_t err;
        for (int i = 0; (err = schedule_cancel(ts, id, errstr, errlen)) ==
                                TIMER_STORE_DOWN &&
                        i < TRANSIENT_TRIES;
             i++)
                usleep(300 * 1000);
        return err;
}

/* Stop a schedule that a running firer may be holding for its next
 * period: TIMER_FIRING says "after its firing", so try again then. */
static timer_err_t s_stop(timer_service_t *ts, const char *id) {
        char errstr[256];
        timer_err_t err;
        uint64_t end = clock_mono_ms() + 10000;
        while ((err = s_cancel(ts, id, errstr, sizeof(errstr))) ==
                       TIMER_FIRING &&
               clock_mono_ms() < end)
                usleep(100 * 1000);
        return err;
}

/* The record of id, or NULL (free with bson_destroy + free). */
static bson_t *record(const char *id) {
        bson_t filter = BSON_INITIALIZER;
        bson_t *out = aligned_alloc(128, sizeof(*out)); /* bson_t wants it */
        char errstr[256];
        BSON_APPEND_UTF8(&filter, "_id", id);
        if (store_find_one(FX.store, GROUP, "timers", &filter, NULL, out,
                           errstr, sizeof(errstr)) != STORE_OK) {
                free(out);
                out = NULL;
        }
        bson_destroy(&filter);
        return out;
}

static void record_free(bson_t *doc) {
        if (doc)
                bson_destroy(doc);
        free(doc);
}

static const char *status_of(const char *id, char *buf, size_t size) {
        bson_t *doc = record(id);
        snprintf(buf, size, "%s",
                 doc && lease_doc_str(doc, "status")
                         ? lease_doc_str(doc, "status")
                         : "(none)");
        record_free(doc);
        return buf;
}

static int64_t gen_of(const char *id) {
        bson_t *doc = record(id);
        int64_t gen = doc ? lease_doc_int(doc, "gen", -1) : -1;
        record_free(doc);
        return gen;
}

/* Drop what earlier tests left on the topic. */
static void quiet_topic(void) {
        testcmd_t c;
        while (teststore_next(&FX, 200, &c))
                ;
}

/* ---------------------------------------------------------------------------
 * Timers
 * ------------------------------------------------------------------------ */

static void test_a_timer_fires_once_with_its_setters_rights(void **state) {
        /* Polling once a minute: it fires in time only because setting it
         * here woke the firing thread. */
        timer_service_t *ts = service(60000, true);
        int64_t at;
        timer_spec_t s;
        testcmd_t c;
        char want[MSGID_TEXT_SIZE], errstr[256], st[32];
        (void)state;
        quiet_topic();
        usleep(200 * 1000); /* the thread sleeps: it learns of this by us */
        at = (int64_t)clock_wall_ms() + 300;
        s = spec("t-fire", at);
        assert_int_equal(t_set(ts, &s, errstr, sizeof(errstr)), TIMER_OK);
        assert_true(teststore_next(&FX, 10000, &c));
        assert_string_equal(c.type, "unit.tick");
        assert_string_equal(c.tenant, "tenant-1");
        assert_string_equal(c.user, "user-1");
        assert_string_equal(c.roles, "member");
        assert_string_equal(c.key, "key-1");
        assert_int_equal(c.body_len, sizeof(BODY) - 1);
        assert_memory_equal(c.body, BODY, sizeof(BODY) - 1);
        assert_int_equal(c.created_at_ms, at);
        cmdsend_derive_id(at, NS, "t-fire#1", 0, want);
        assert_string_equal(c.id, want);
        /* Not before its time (how soon after is bench-timer's). */
        assert_true(c.broker_ms >= at);
        assert_true(c.read_at_ms - at < 10000);
        assert_false(teststore_next(&FX, 1500, &c));
        assert_string_equal(status_of("t-fire", st, sizeof(st)), "fired");
        /* Set again once fired: refused, nothing changes. */
        assert_int_equal(t_set(ts, &s, errstr, sizeof(errstr)), TIMER_FIRED);
        assert_false(teststore_next(&FX, 500, &c));
        timer_service_destroy(ts);
}

static void test_setting_again_is_idempotent_and_replaces(void **state) {
        timer_service_t *ts = service(1000, false);
        int64_t at = (int64_t)clock_wall_ms() + 3600 * 1000;
        timer_spec_t s = spec("t-idem", at);
        char errstr[256], st[32];
        (void)state;
        assert_int_equal(t_set(ts, &s, errstr, sizeof(errstr)), TIMER_OK);
        assert_int_equal(t_set(ts, &s, errstr, sizeof(errstr)), TIMER_OK);
        assert_int_equal(gen_of("t-idem"), 1);
        s.fire_at_ms = at + 1000;
        assert_int_equal(t_set(ts, &s, errstr, sizeof(errstr)), TIMER_OK);
        assert_int_equal(gen_of("t-idem"), 2);
        s.body = (slice_t){"\x80", 1};
        assert_int_equal(t_set(ts, &s, errstr, sizeof(errstr)), TIMER_OK);
        assert_int_equal(gen_of("t-idem"), 3);
        assert_int_equal(t_cancel(ts, "t-idem", errstr, sizeof(errstr)),
                         TIMER_OK);
        assert_string_equal(status_of("t-idem", st, sizeof(st)), "cancelled");
        assert_int_equal(t_cancel(ts, "t-idem", errstr, sizeof(errstr)),
                         TIMER_NOT_FOUND);
        /* A cancelled timer set again is armed again, even unchanged. */
        assert_int_equal(t_set(ts, &s, errstr, sizeof(errstr)), TIMER_OK);
        assert_string_equal(status_of("t-idem", st, sizeof(st)), "armed");
        assert_int_equal(t_cancel(ts, "t-idem", errstr, sizeof(errstr)),
                         TIMER_OK);
        assert_int_equal(s_cancel(ts, "t-idem", errstr, sizeof(errstr)),
                         TIMER_NOT_FOUND);
        timer_service_destroy(ts);
}

static void test_a_cancelled_timer_never_fires(void **state) {
        timer_service_t *ts = service(200, true);
        timer_spec_t s = spec("t-cancel", (int64_t)clock_wall_ms() + 1000);
        char errstr[256];
        testcmd_t c;
        (void)state;
        quiet_topic();
        assert_int_equal(t_set(ts, &s, errstr, sizeof(errstr)), TIMER_OK);
        assert_int_equal(t_cancel(ts, "t-cancel", errstr, sizeof(errstr)),
                         TIMER_OK);
        assert_false(teststore_next(&FX, 1500, &c));
        timer_service_destroy(ts);
}

static void test_a_replaced_timer_fires_as_a_new_message(void **state) {
        timer_service_t *ts = service(200, true);
        int64_t at = (int64_t)clock_wall_ms() + 3000;
        timer_spec_t s = spec("t-replace", at);
        char errstr[256], want[MSGID_TEXT_SIZE];
        testcmd_t c;
        (void)state;
        quiet_topic();
        assert_int_equal(t_set(ts, &s, errstr, sizeof(errstr)), TIMER_OK);
        s.fire_at_ms = at - 2500;
        assert_int_equal(t_set(ts, &s, errstr, sizeof(errstr)), TIMER_OK);
        assert_true(teststore_next(&FX, 10000, &c));
        assert_int_equal(c.created_at_ms, at - 2500);
        cmdsend_derive_id(at - 2500, NS, "t-replace#2", 0, want);
        assert_string_equal(c.id, want);
        assert_false(teststore_next(&FX, 3000, &c)); /* not at the old time */
        timer_service_destroy(ts);
}

static void test_a_held_timer_cannot_be_changed_and_fires(void **state) {
        timer_opts_t o = {.cfg = &FX.cfg,
                          .store = FX.store,
                          .bus = FX.bus,
                          .group = GROUP,
                          .horizon_ms = 60000};
        char errstr[256], want[MSGID_TEXT_SIZE];
        timer_service_t *ts = timer_service_new(&o, errstr, sizeof(errstr));
        int64_t at = (int64_t)clock_wall_ms() + 1500;
        timer_spec_t s = spec("t-held", at);
        schedule_spec_t sc = {.id = "s-held",
                              .every_ms = 3600000,
                              .first_at_ms = at,
                              .type = "unit.tick",
                              .body = {BODY, sizeof(BODY) - 1}};
        testcmd_t c;
        uint64_t end;
        bool held = false;
        (void)state;
        quiet_topic();
        assert_non_null(ts);
        assert_int_equal(t_set(ts, &s, errstr, sizeof(errstr)), TIMER_OK);
        assert_int_equal(s_set(ts, &sc, errstr, sizeof(errstr)), TIMER_OK);
        /* A firer with a minute's horizon claims both at once. */
        assert_int_equal(timer_service_start(ts, errstr, sizeof(errstr)), 0);
        for (end = clock_mono_ms() + 5000; !held && clock_mono_ms() < end;) {
                timer_err_t err =
                        t_cancel(ts, "t-held", errstr, sizeof(errstr));
                assert_true(err == TIMER_OK || err == TIMER_FIRING);
                if (err == TIMER_OK) {
                        /* Beat the firer to it: arm it again and retry. */
                        assert_int_equal(t_set(ts, &s, errstr, sizeof(errstr)),
                                         TIMER_OK);
                        usleep(20 * 1000);
                        continue;
                }
                held = true;
        }
        assert_true(held);
        /* Held: no change is taken (it would be ignored), an identical set
         * is fine, the schedule too. */
        s.fire_at_ms = at + 10000;
        assert_int_equal(t_set(ts, &s, errstr, sizeof(errstr)), TIMER_FIRING);
        s.fire_at_ms = at;
        assert_int_equal(t_set(ts, &s, errstr, sizeof(errstr)), TIMER_OK);
        assert_int_equal(s_cancel(ts, "s-held", errstr, sizeof(errstr)),
                         TIMER_FIRING);
        /* Both fire at their time, as they were. */
        assert_true(teststore_next(&FX, 10000, &c));
        assert_true(c.broker_ms >= at);
        assert_true(teststore_next(&FX, 10000, &c));
        assert_int_equal(c.created_at_ms, at);
        cmdsend_derive_id(at, NS, "t-held#1", 0, want);
        timer_service_destroy(ts);
        assert_int_equal(t_cancel(ts = service(1000, false), "t-held", errstr,
                                  sizeof(errstr)),
                         TIMER_NOT_FOUND);
        /* The schedule is free again, for its next period: stopped now. */
        assert_int_equal(s_cancel(ts, "s-held", errstr, sizeof(errstr)),
                         TIMER_OK);
        timer_service_destroy(ts);
}

static void test_bad_specs_are_refused(void **state) {
        timer_service_t *ts = service(1000, false);
        char errstr[256], long_id[300];
        timer_spec_t s = spec("t-bad", 1);
        schedule_spec_t sc = {.id = "s-bad",
                              .every_ms = 10,
                              .type = "unit.tick",
                              .body = {BODY, sizeof(BODY) - 1}};
        (void)state;
        memset(long_id, 'a', sizeof(long_id) - 1);
        long_id[sizeof(long_id) - 1] = '\0';
        s.id = long_id;
        assert_int_equal(t_set(ts, &s, errstr, sizeof(errstr)), TIMER_BAD_SPEC);
        s.id = "has space";
        assert_int_equal(t_set(ts, &s, errstr, sizeof(errstr)), TIMER_BAD_SPEC);
        s.id = "t-bad";
        s.type = "Unit.Tick";
        assert_int_equal(t_set(ts, &s, errstr, sizeof(errstr)), TIMER_BAD_SPEC);
        s.type = "unit.tick";
        s.body = slice_of("not msgpack map");
        assert_int_equal(t_set(ts, &s, errstr, sizeof(errstr)), TIMER_BAD_SPEC);
        s.body = (slice_t){BODY, sizeof(BODY) - 1};
        s.caller.correlation_id = slice_of("not-a-uuid");
        assert_int_equal(t_set(ts, &s, errstr, sizeof(errstr)), TIMER_BAD_SPEC);
        assert_int_equal(s_set(ts, &sc, errstr, sizeof(errstr)),
                         TIMER_BAD_SPEC);
        assert_null(record("t-bad"));
        timer_service_destroy(ts);
}

/* ---------------------------------------------------------------------------
 * Claims
 * ------------------------------------------------------------------------ */

#define CLAIM_RECORDS 400
#define CLAIMERS 4

typedef struct claimer {
        char (*ids)[64];
        int n;
} claimer_t;

static bool claim_note(const bson_t *doc, void *arg) {
        claimer_t *c = arg;
        snprintf(c->ids[c->n++], 64, "%s", lease_doc_str(doc, "_id"));
        return true;
}

static void *claim_all(void *arg) {
        claimer_t *c = arg;
        bson_t filter = BSON_INITIALIZER;
        lease_query_t q = {.db = GROUP,
                           .coll = "timers",
                           .filter = &filter,
                           .time_field = "fire_at",
                           .limit = 25,
                           .lease_ms = 60000};
        char owner[LEASE_OWNER_SIZE], errstr[256];
        int idle = 0, got;

        BSON_APPEND_UTF8(&filter, "status", "armed");
        while (idle < 3) {
                store_err_t err = lease_claim(
                        FX.store, &q, (int64_t)clock_wall_ms(), owner,
                        claim_note, c, &got, NULL, errstr, sizeof(errstr));
                /* A stalled store may drop a claim midway; what the claim
                 * won is leased either way and counted when read back. */
                assert_true(err == STORE_OK || store_err_transient(err));
                idle = err == STORE_OK && !got ? idle + 1 : 0;
        }
        bson_destroy(&filter);
        return NULL;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(a, b);
}

static void test_concurrent_claimers_never_take_one_record_twice(void **state) {
        timer_service_t *ts = service(1000, false);
        static char all[CLAIMERS * CLAIM_RECORDS][64];
        claimer_t c[CLAIMERS];
        void *args[CLAIMERS];
        int64_t due = (int64_t)clock_wall_ms() - 1000;
        char errstr[256], id[64];
        int total = 0;
        (void)state;
        for (int i = 0; i < CLAIM_RECORDS; i++) {
                timer_spec_t s;
                snprintf(id, sizeof(id), "claim-%04d", i);
                s = spec(id, due + i % 7);
                assert_int_equal(t_set(ts, &s, errstr, sizeof(errstr)),
                                 TIMER_OK);
        }
        for (int i = 0; i < CLAIMERS; i++) {
                c[i].ids = calloc(CLAIM_RECORDS, 64);
                c[i].n = 0;
                args[i] = &c[i];
        }
        teststore_parallel(CLAIMERS, claim_all, args);
        for (int i = 0; i < CLAIMERS; i++) {
                memcpy(all[total], c[i].ids, (size_t)c[i].n * 64);
                total += c[i].n;
                free(c[i].ids);
        }
        assert_int_equal(total, CLAIM_RECORDS);
        qsort(all, (size_t)total, 64, cmp_str);
        for (int i = 0; i < total; i++) {
                snprintf(id, sizeof(id), "claim-%04d", i);
                assert_string_equal(all[i], id);
        }
        /* Leased for a minute: tidy up for the tests after. */
        for (int i = 0; i < CLAIM_RECORDS; i++) {
                snprintf(id, sizeof(id), "claim-%04d", i);
                t_cancel(ts, id, errstr, sizeof(errstr));
        }
        timer_service_destroy(ts);
}

#define FIRE_RECORDS 300

static void test_two_processes_fire_each_timer_once(void **state) {
        timer_service_t *setter = service(1000, false);
        timer_service_t *a, *b;
        static testcmd_t got[FIRE_RECORDS + 10];
        static char ids[FIRE_RECORDS + 10][64];
        int64_t due = (int64_t)clock_wall_ms() + 500;
        char errstr[256], id[64];
        size_t n;
        (void)state;
        quiet_topic();
        for (int i = 0; i < FIRE_RECORDS; i++) {
                timer_spec_t s;
                snprintf(id, sizeof(id), "both-%04d", i);
                s = spec(id, due);
                assert_int_equal(t_set(setter, &s, errstr, sizeof(errstr)),
                                 TIMER_OK);
        }
        a = service(100, true);
        b = service(100, true);
        n = teststore_drain(&FX, 1500, got, FIRE_RECORDS + 10);
        timer_service_destroy(a);
        timer_service_destroy(b);
        assert_int_equal(n, FIRE_RECORDS);
        for (size_t i = 0; i < n; i++)
                memcpy(ids[i], got[i].id, 64);
        qsort(ids, n, 64, cmp_str);
        for (size_t i = 1; i < n; i++)
                assert_string_not_equal(ids[i - 1], ids[i]);
        timer_service_destroy(setter);
}

static void test_a_dead_firers_lease_runs_out(void **state) {
        timer_service_t *ts = service(100, false);
        int64_t at = (int64_t)clock_wall_ms() - 10;
        timer_spec_t s = spec("t-crash", at);
        char errstr[256], want[MSGID_TEXT_SIZE];
        int64_t claimed_at;
        testcmd_t c;
        (void)state;
        quiet_topic();
        assert_int_equal(t_set(ts, &s, errstr, sizeof(errstr)), TIMER_OK);
        /* A firer claims it and dies before recording anything. */
        assert_int_equal(teststore_dead_claim(&FX, "timers", "fire_at", "armed",
                                              800, &claimed_at),
                         1);
        assert_int_equal(timer_service_start(ts, errstr, sizeof(errstr)), 0);
        assert_false(teststore_next(&FX, 500, &c));
        assert_true(teststore_next(&FX, 10000, &c));
        assert_true(c.broker_ms >= claimed_at + 800);
        /* The same message the dead firer would have sent. */
        cmdsend_derive_id(at, NS, "t-crash#1", 0, want);
        assert_string_equal(c.id, want);
        timer_service_destroy(ts);
}

/* ---------------------------------------------------------------------------
 * Schedules
 * ------------------------------------------------------------------------ */

static schedule_spec_t schedule(const char *id, int64_t every, int64_t first) {
        schedule_spec_t s = {.id = id,
                             .every_ms = every,
                             .first_at_ms = first,
                             .type = "unit.tick",
                             .key = slice_of("key-1"),
                             .body = {BODY, sizeof(BODY) - 1},
                             .caller = caller()};
        return s;
}

static void test_a_schedule_fires_once_per_period(void **state) {
        timer_service_t *a = service(200, true), *b = service(200, true);
        int64_t first = (int64_t)clock_wall_ms() + 300, k, last = -1;
        schedule_spec_t s = schedule("s-period", 1000, first);
        testcmd_t got[32];
        char errstr[256], want[MSGID_TEXT_SIZE];
        size_t n = 0;
        uint64_t end;
        bool late = false;
        (void)state;
        quiet_topic();
        assert_int_equal(s_set(a, &s, errstr, sizeof(errstr)), TIMER_OK);
        /* Set again by the other process (its start-up, say): no change. */
        assert_int_equal(s_set(b, &s, errstr, sizeof(errstr)), TIMER_OK);
        assert_int_equal(gen_of("s-period"), 1);
        /* Periods start at +0.3, 1.3, 2.3, 3.3 s: read until one of the
         * fourth period or later came. */
        end = clock_mono_ms() + 10000;
        while (clock_mono_ms() < end && n < 32 &&
               (n == 0 || got[n - 1].created_at_ms < first + 3000))
                if (teststore_next(&FX, 100, &got[n]))
                        n++;
        assert_int_equal(s_stop(a, "s-period"), TIMER_OK);
        n += teststore_drain(&FX, 500, got + n, 32 - n);
        assert_true(n >= 2);
        for (size_t i = 0; i < n; i++) {
                /* Each a period of its own, in order, by its derived id. */
                k = (got[i].created_at_ms - first) / 1000;
                assert_int_equal(got[i].created_at_ms, first + k * 1000);
                assert_true(k > last);
                cmdsend_derive_id(first + k * 1000, NS, "s-period#1", k, want);
                assert_string_equal(got[i].id, want);
                assert_true(got[i].broker_ms >= got[i].created_at_ms);
                /* A firing late by a period or more stands for the periods
                 * it passed (it catches up once): only then may one be
                 * missing. */
                if (got[i].broker_ms - got[i].created_at_ms >= 1000)
                        late = true;
                if (!late)
                        assert_int_equal(k, last + 1);
                last = k;
        }
        timer_service_destroy(a);
        timer_service_destroy(b);
}

static void test_a_schedule_catches_up_once_after_downtime(void **state) {
        timer_service_t *ts = service(200, false);
        int64_t now = (int64_t)clock_wall_ms();
        int64_t anchor = now - 630000; /* period 11 starts in 30 s */
        schedule_spec_t s = schedule("s-late", 60000, now + 6000000);
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
        char errstr[256];
        testcmd_t got[4];
        bson_t *doc;
        size_t n;
        (void)state;
        quiet_topic();
        assert_int_equal(s_set(ts, &s, errstr, sizeof(errstr)), TIMER_OK);
        /* As if no process had run for ten periods. */
        BSON_APPEND_UTF8(&filter, "_id", "s-late");
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_INT64(&set, "anchor_ms", anchor);
        BSON_APPEND_INT64(&set, "period", 0);
        BSON_APPEND_DATE_TIME(&set, "fire_at", anchor);
        bson_append_document_end(&update, &set);
        assert_int_equal(store_update_one(FX.store, GROUP, "timers", &filter,
                                          &update, false, errstr,
                                          sizeof(errstr)),
                         STORE_OK);
        bson_destroy(&filter);
        bson_destroy(&update);
        assert_int_equal(timer_service_start(ts, errstr, sizeof(errstr)), 0);
        n = teststore_drain(&FX, 1000, got, 4);
        assert_int_equal(n, 1);
        assert_int_equal(got[0].created_at_ms, anchor + 10 * 60000);
        doc = record("s-late");
        assert_int_equal(lease_doc_int(doc, "period", -1), 11);
        assert_int_equal(lease_doc_date(doc, "fire_at"), anchor + 11 * 60000);
        assert_int_equal(lease_doc_int(doc, "fired", -1), 1);
        record_free(doc);
        assert_int_equal(s_stop(ts, "s-late"), TIMER_OK);
        timer_service_destroy(ts);
}

static void test_a_schedule_set_in_the_past_keeps_its_phase(void **state) {
        timer_service_t *ts = service(1000, false);
        int64_t now = (int64_t)clock_wall_ms();
        schedule_spec_t s = schedule("s-phase", 60000, now - 90000);
        char errstr[256];
        bson_t *doc;
        (void)state;
        assert_int_equal(s_set(ts, &s, errstr, sizeof(errstr)), TIMER_OK);
        doc = record("s-phase");
        assert_int_equal(lease_doc_date(doc, "fire_at"), now + 30000);
        assert_int_equal(lease_doc_int(doc, "period", -1), 2);
        record_free(doc);
        s.every_ms = 100000;
        assert_int_equal(s_set(ts, &s, errstr, sizeof(errstr)), TIMER_OK);
        assert_int_equal(gen_of("s-phase"), 2);
        doc = record("s-phase");
        assert_int_equal(lease_doc_date(doc, "fire_at"), now + 10000);
        record_free(doc);
        timer_service_destroy(ts);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(
                        test_a_timer_fires_once_with_its_setters_rights),
                cmocka_unit_test(test_setting_again_is_idempotent_and_replaces),
                cmocka_unit_test(test_a_cancelled_timer_never_fires),
                cmocka_unit_test(test_a_replaced_timer_fires_as_a_new_message),
                cmocka_unit_test(test_a_held_timer_cannot_be_changed_and_fires),
                cmocka_unit_test(test_bad_specs_are_refused),
                cmocka_unit_test(
                        test_concurrent_claimers_never_take_one_record_twice),
                cmocka_unit_test(test_two_processes_fire_each_timer_once),
                cmocka_unit_test(test_a_dead_firers_lease_runs_out),
                cmocka_unit_test(test_a_schedule_fires_once_per_period),
                cmocka_unit_test(
                        test_a_schedule_catches_up_once_after_downtime),
                cmocka_unit_test(
                        test_a_schedule_set_in_the_past_keeps_its_phase),
        };
        int rc;
        log_init(LOG_LEVEL_WARN, "test_timer");
        if (!teststore_open(&FX, GROUP, 2, "test_timer")) {
                teststore_close(&FX);
                return TESTSTORE_SKIP;
        }
        rc = cmocka_run_group_tests(tests, NULL, NULL);
        teststore_close(&FX);
        return rc;
}
