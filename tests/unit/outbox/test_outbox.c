/*
 * test_outbox.c - the durable outbox (shared/outbox.c, outbox_send.c) and
 * the mail kind (shared/mail.c) against the real store, a provider played
 * by a libmicrohttpd server in this process, and librdkafka's mock cluster
 * for reports: a record is sent once, with its stored headers and the
 * credentials its kind adds at send time (never stored); failures are
 * retried with backoff and Retry-After; refusals and exhausted attempts are
 * final; outcomes are reported as commands with derived ids; two senders
 * never send one record twice; a dead sender's lease runs out; stopping
 * cancels a call in flight without counting it.
 * Label "store": skipped (77) when the store does not answer.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lease.h"
#include "log.h"
#include "mail.h"
#include "msgid.h"
#include "outbox.h"
#include "teststore.h"
#include "testsrv.h"

#define GROUP "unit"
#define KEY "SECRET-KEY-0123"

static teststore_t FX;
static testsrv_t *SRV;
static httpc_t *HTTP;

/* ---------------------------------------------------------------------------
 * The provider and the kind
 * ------------------------------------------------------------------------ */

static struct {
        atomic_int fail_left;
        atomic_int fail_status;
        atomic_bool retry_after; /* "Retry-After: 1" on failures */
        atomic_int slow_ms;
        atomic_bool not_ready; /* the kind's prepare says "not yet" */
        atomic_int prepared;
} P;

static void provider(void *arg, const testsrv_req_t *req,
                     testsrv_answer_t *ans) {
        (void)arg;
        if (strcmp(req->path, "/bad") == 0) {
                ans->status = 400;
                ans->body = "{\"error\":\"bad address\"}";
                return;
        }
        if (strcmp(req->path, "/slow") == 0)
                ans->delay_ms = atomic_load(&P.slow_ms);
        if (atomic_fetch_sub(&P.fail_left, 1) > 0) {
                ans->status = atomic_load(&P.fail_status);
                if (atomic_load(&P.retry_after)) {
                        ans->headers[0] = "Retry-After";
                        ans->headers[1] = "1";
                }
                return;
        }
        ans->status = 202;
        ans->body = "{\"id\":\"m-1\"}";
}

static void reset(void) {
        atomic_store(&P.fail_left, 0);
        atomic_store(&P.fail_status, 503);
        atomic_store(&P.retry_after, false);
        atomic_store(&P.slow_ms, 0);
        atomic_store(&P.not_ready, false);
        atomic_store(&P.prepared, 0);
        testsrv_reset(SRV);
}

static bool prepare(void *arg, const bson_t *record, httpc_headers_t *h) {
        (void)arg;
        assert_non_null(lease_doc_str(record, "_id"));
        atomic_fetch_add(&P.prepared, 1);
        if (atomic_load(&P.not_ready))
                return false;
        return httpc_headers_add(h, "Authorization", "Bearer " KEY);
}

static const outbox_kind_t KINDS[] = {
        {.name = "unit.call", .prepare = prepare},
};

static outbox_t *outbox(const char *coll, bool start, bool hold) {
        char errstr[256];
        outbox_opts_t o = {.cfg = &FX.cfg,
                           .store = FX.store,
                           .bus = FX.bus,
                           .http = HTTP,
                           .group = GROUP,
                           .collection = coll,
                           .kinds = KINDS,
                           .n_kinds = 1,
                           .hold = hold,
                           .poll_ms = 100};
        outbox_t *ob = outbox_new(&o, errstr, sizeof(errstr));
        assert_non_null(ob);
        assert_int_equal(outbox_indexes(ob, errstr, sizeof(errstr)), OUTBOX_OK);
        if (start)
                assert_int_equal(outbox_start(ob, errstr, sizeof(errstr)), 0);
        return ob;
}

static outbox_request_t request(const char *id, const char *path,
                                httpc_headers_t *h, char *url, size_t size) {
        outbox_request_t r = {0};
        testsrv_url(SRV, path, url, size);
        r.id = id;
        r.kind = "unit.call";
        r.url = url;
        r.headers = h;
        r.body = slice_of("{\"hello\":\"provider\"}");
        r.policy.backoff = (backoff_policy_t){100, 200};
        r.drop_body = true;
        return r;
}

/* As a handler makes it: a transient store failure (the shared store
 * stalls under load) is tried again, as the runtime would redeliver. */
static outbox_err_t enqueue(outbox_t *ob, const outbox_request_t *r,
                            char *errstr, size_t errlen) {
        outbox_err_t err;
        for (int i = 0; (err = outbox_enqueue(ob, r, errstr, errlen)) ==
                                OUTBOX_STORE_DOWN &&
                        i < 5;
             i++)
                usleep(300 * 1000);
        return err;
}

/* The record of id in coll (caller frees), waiting until its status is
 * want (NULL: any) for up to ms. */
static bson_t *record_when(outbox_t *ob, const char *id, const char *want,
                           int ms) {
        uint64_t end = clock_mono_ms() + (uint64_t)ms;
        char errstr[256];
        bson_t *doc = aligned_alloc(128, sizeof(*doc)); /* bson_t wants it */
        for (;;) {
                if (outbox_find(ob, id, doc, errstr, sizeof(errstr)) ==
                    OUTBOX_OK) {
                        const char *st = lease_doc_str(doc, "status");
                        if (!want || (st && strcmp(st, want) == 0))
                                return doc;
                        bson_destroy(doc);
                }
                if (clock_mono_ms() > end)
                        break;
                usleep(20 * 1000);
        }
        free(doc);
        return NULL;
}

static void record_free(bson_t *doc) {
        if (doc)
                bson_destroy(doc);
        free(doc);
}

/* The request count reaches n within ms. */
static bool requests_reach(size_t n, int ms) {
        uint64_t end = clock_mono_ms() + (uint64_t)ms;
        while (testsrv_count(SRV) < n && clock_mono_ms() < end)
                usleep(10 * 1000);
        return testsrv_count(SRV) >= n;
}

/* ---------------------------------------------------------------------------
 * Sending
 * ------------------------------------------------------------------------ */

static void test_a_record_is_sent_once(void **state) {
        outbox_t *ob = outbox("o_send", true, false);
        httpc_headers_t h = HTTPC_HEADERS_INIT;
        char url[128], errstr[256], *json;
        outbox_request_t r;
        bson_t *doc;
        testsrv_req_t got;
        (void)state;
        reset();
        httpc_headers_add(&h, "Content-Type", "application/json");
        r = request("o-send.1", "/send", &h, url, sizeof(url));
        assert_int_equal(enqueue(ob, &r, errstr, sizeof(errstr)), OUTBOX_OK);
        doc = record_when(ob, "o-send.1", "sent", 10000);
        assert_non_null(doc);
        assert_int_equal(lease_doc_int(doc, "attempts", 0), 1);
        assert_int_equal(lease_doc_int(doc, "last_status", 0), 202);
        assert_true(lease_doc_date(doc, "sent_at") > 0);
        assert_true(lease_doc_date(doc, "expires_at") > 0);
        assert_false(bson_has_field(doc, "body")); /* dropped once sent */
        json = bson_as_relaxed_extended_json(doc, NULL);
        assert_null(strstr(json, "SECRET")); /* credentials never stored */
        bson_free(json);
        record_free(doc);
        assert_int_equal(testsrv_count(SRV), 1);
        got = testsrv_get(SRV, 0);
        assert_string_equal(got.method, "POST");
        assert_string_equal(got.path, "/send");
        assert_string_equal(got.idem, "o-send.1");
        assert_string_equal(got.auth, "Bearer " KEY);
        assert_string_equal(got.ctype, "application/json");
        assert_string_equal(got.body, "{\"hello\":\"provider\"}");
        /* The same id again (a redelivered command): kept, not resent. */
        assert_int_equal(enqueue(ob, &r, errstr, sizeof(errstr)),
                         OUTBOX_EXISTS);
        usleep(400 * 1000);
        assert_int_equal(testsrv_count(SRV), 1);
        outbox_destroy(ob);
        httpc_headers_deinit(&h);
}

static void test_failures_are_retried_with_backoff(void **state) {
        outbox_t *ob = outbox("o_retry", true, false);
        char url[128], errstr[256];
        outbox_request_t r;
        bson_t *doc;
        (void)state;
        reset();
        atomic_store(&P.fail_left, 2);
        r = request("o-retry.1", "/send", NULL, url, sizeof(url));
        assert_int_equal(enqueue(ob, &r, errstr, sizeof(errstr)), OUTBOX_OK);
        doc = record_when(ob, "o-retry.1", "sent", 10000);
        assert_non_null(doc);
        assert_int_equal(lease_doc_int(doc, "attempts", 0), 3);
        assert_false(bson_has_field(doc, "last_error"));
        record_free(doc);
        assert_int_equal(testsrv_count(SRV), 3);
        for (size_t i = 1; i < 3; i++) {
                testsrv_req_t a = testsrv_get(SRV, i - 1);
                testsrv_req_t b = testsrv_get(SRV, i);
                assert_string_equal(b.idem, "o-retry.1");
                assert_true(b.at_ms - a.at_ms >= 50); /* backoff [50, 100] */
        }
        outbox_destroy(ob);
}

/* Forty records already failing against a destination that never answers
 * (a listening socket nobody accepts from), then a new record to a live
 * one: retries hold at most three quarters of the slots, so the new record
 * is sent while they keep failing. Without that reserve it waits behind
 * every due retry, each holding a slot until it times out (10 rounds of
 * 1.5 s here; hundreds of mails to a dead mail API in the integration
 * run). */
static void test_retries_leave_room_for_new_records(void **state) {
        outbox_opts_t o = {.cfg = &FX.cfg,
                           .store = FX.store,
                           .bus = FX.bus,
                           .http = HTTP,
                           .group = GROUP,
                           .collection = "o_fair",
                           .kinds = KINDS,
                           .n_kinds = 1,
                           .inflight = 4,
                           .poll_ms = 100};
        struct sockaddr_in sa = {.sin_family = AF_INET};
        socklen_t len = sizeof(sa);
        char url[128], dead_url[128], errstr[256], id[32];
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
        outbox_request_t r;
        outbox_t *ob;
        bson_t *doc;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        (void)state;
        reset();
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(fd, 128), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
        snprintf(dead_url, sizeof(dead_url), "http://127.0.0.1:%d/send",
                 (int)ntohs(sa.sin_port));
        ob = outbox_new(&o, errstr, sizeof(errstr));
        assert_non_null(ob);
        assert_int_equal(outbox_indexes(ob, errstr, sizeof(errstr)), OUTBOX_OK);
        for (int i = 0; i < 40; i++) {
                r = request(NULL, "/send", NULL, url, sizeof(url));
                snprintf(id, sizeof(id), "o-fair.dead.%d", i);
                r.id = id;
                r.url = dead_url;
                r.policy.timeout_ms = 1500;
                assert_int_equal(enqueue(ob, &r, errstr, sizeof(errstr)),
                                 OUTBOX_OK);
        }
        /* As a backlog left by earlier failures: tried three times each. */
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_INT64(&set, "attempts", 3);
        bson_append_document_end(&update, &set);
        assert_int_equal(store_update(FX.store, GROUP, "o_fair", &filter,
                                      &update, STORE_MANY, NULL, errstr,
                                      sizeof(errstr)),
                         STORE_OK);
        bson_destroy(&filter);
        bson_destroy(&update);
        r = request("o-fair.live", "/send", NULL, url, sizeof(url));
        assert_int_equal(enqueue(ob, &r, errstr, sizeof(errstr)), OUTBOX_OK);
        assert_int_equal(outbox_start(ob, errstr, sizeof(errstr)), 0);
        doc = record_when(ob, "o-fair.live", "sent", 8000);
        assert_non_null(doc);
        record_free(doc);
        doc = record_when(ob, "o-fair.dead.0", NULL, 1000);
        assert_non_null(doc);
        assert_string_equal(lease_doc_str(doc, "status"), "queued");
        record_free(doc);
        outbox_destroy(ob);
        close(fd);
}

static void test_retry_after_is_honoured(void **state) {
        outbox_t *ob = outbox("o_after", true, false);
        char url[128], errstr[256];
        outbox_request_t r;
        bson_t *doc;
        testsrv_req_t a, b;
        (void)state;
        reset();
        atomic_store(&P.fail_left, 1);
        atomic_store(&P.fail_status, 429);
        atomic_store(&P.retry_after, true);
        r = request("o-after.1", "/send", NULL, url, sizeof(url));
        assert_int_equal(enqueue(ob, &r, errstr, sizeof(errstr)), OUTBOX_OK);
        doc = record_when(ob, "o-after.1", "sent", 10000);
        assert_non_null(doc);
        record_free(doc);
        a = testsrv_get(SRV, 0);
        b = testsrv_get(SRV, 1);
        assert_true(b.at_ms - a.at_ms >= 990);
        outbox_destroy(ob);
}

static void test_a_refusal_is_final(void **state) {
        outbox_t *ob = outbox("o_refused", true, false);
        char url[128], errstr[256];
        outbox_request_t r;
        bson_t *doc;
        (void)state;
        reset();
        r = request("o-refused.1", "/bad", NULL, url, sizeof(url));
        assert_int_equal(enqueue(ob, &r, errstr, sizeof(errstr)), OUTBOX_OK);
        doc = record_when(ob, "o-refused.1", "failed", 10000);
        assert_non_null(doc);
        assert_int_equal(lease_doc_int(doc, "attempts", 0), 1);
        assert_int_equal(lease_doc_int(doc, "last_status", 0), 400);
        assert_string_equal(lease_doc_str(doc, "last_error"), "HTTP 400");
        assert_true(lease_doc_date(doc, "failed_at") > 0);
        assert_false(bson_has_field(doc, "body"));
        record_free(doc);
        usleep(600 * 1000);
        assert_int_equal(testsrv_count(SRV), 1);
        outbox_destroy(ob);
}

static void test_attempts_are_bounded(void **state) {
        outbox_t *ob = outbox("o_bounded", true, false);
        char url[128], errstr[256];
        outbox_request_t r;
        bson_t *doc;
        (void)state;
        reset();
        atomic_store(&P.fail_left, 100);
        r = request("o-bounded.1", "/send", NULL, url, sizeof(url));
        r.policy.max_attempts = 2;
        assert_int_equal(enqueue(ob, &r, errstr, sizeof(errstr)), OUTBOX_OK);
        doc = record_when(ob, "o-bounded.1", "failed", 10000);
        assert_non_null(doc);
        assert_int_equal(lease_doc_int(doc, "attempts", 0), 2);
        assert_string_equal(lease_doc_str(doc, "last_error"), "HTTP 503");
        record_free(doc);
        assert_int_equal(testsrv_count(SRV), 2);
        outbox_destroy(ob);
}

static void test_a_record_past_its_give_up_time_fails(void **state) {
        outbox_t *ob = outbox("o_late", true, false);
        char url[128], errstr[256];
        outbox_request_t r;
        bson_t *doc;
        (void)state;
        reset();
        atomic_store(&P.fail_left, 100);
        r = request("o-late.1", "/send", NULL, url, sizeof(url));
        r.policy.give_up_at_ms = (int64_t)clock_wall_ms() + 250;
        assert_int_equal(enqueue(ob, &r, errstr, sizeof(errstr)), OUTBOX_OK);
        doc = record_when(ob, "o-late.1", "failed", 10000);
        assert_non_null(doc);
        assert_true(lease_doc_int(doc, "attempts", 0) >= 2);
        assert_true(lease_doc_date(doc, "failed_at") >=
                    lease_doc_date(doc, "give_up_at"));
        record_free(doc);
        outbox_destroy(ob);
}

/* ---------------------------------------------------------------------------
 * Reports
 * ------------------------------------------------------------------------ */

/* The value of key in the msgpack map body, as a string or an integer. */
static const msgpack_object *map_get(const msgpack_object *map,
                                     const char *key) {
        for (uint32_t i = 0; i < map->via.map.size; i++) {
                const msgpack_object *k = &map->via.map.ptr[i].key;
                if (k->type == MSGPACK_OBJECT_STR &&
                    k->via.str.size == strlen(key) &&
                    memcmp(k->via.str.ptr, key, k->via.str.size) == 0)
                        return &map->via.map.ptr[i].val;
        }
        return NULL;
}

static void assert_str(const msgpack_object *map, const char *key,
                       const char *want) {
        const msgpack_object *v = map_get(map, key);
        assert_non_null(v);
        assert_int_equal(v->type, MSGPACK_OBJECT_STR);
        assert_int_equal(v->via.str.size, strlen(want));
        assert_memory_equal(v->via.str.ptr, want, strlen(want));
}

static void test_outcomes_are_reported_as_commands(void **state) {
        outbox_t *ob = outbox("o_report", true, false);
        char url[128], errstr[256], want[MSGID_TEXT_SIZE];
        outbox_request_t r;
        bson_t *doc;
        testcmd_t c;
        msgpack_unpacked up;
        const msgpack_object *v;
        (void)state;
        reset();
        while (teststore_next(&FX, 100, &c))
                ;
        r = request("o-report.1", "/send", NULL, url, sizeof(url));
        r.report = (outbox_report_t){.type = "unit.call_done",
                                     .key = slice_of("entity-7"),
                                     .caller = {slice_of("tenant-1"),
                                                slice_of("user-1"),
                                                slice_of("admin"), SLICE_NULL},
                                     .with_body = true};
        assert_int_equal(enqueue(ob, &r, errstr, sizeof(errstr)), OUTBOX_OK);
        assert_true(teststore_next(&FX, 10000, &c));
        assert_string_equal(c.type, "unit.call_done");
        assert_string_equal(c.tenant, "tenant-1");
        assert_string_equal(c.user, "user-1");
        assert_string_equal(c.roles, "admin");
        assert_string_equal(c.key, "entity-7");
        doc = record_when(ob, "o-report.1", "sent", 10000);
        assert_non_null(doc);
        cmdsend_derive_id(lease_doc_date(doc, "created_at"),
                          "outbox|" GROUP "|o_report", "o-report.1", 0, want);
        assert_string_equal(c.id, want);
        assert_true(lease_doc_date(doc, "reported_at") > 0);
        assert_false(bson_has_field(doc, "outcome"));
        assert_false(bson_has_field(doc, "response"));
        record_free(doc);
        msgpack_unpacked_init(&up);
        assert_int_equal(msgpack_unpack_next(&up, c.body, c.body_len, NULL),
                         MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(up.data.type, MSGPACK_OBJECT_MAP);
        assert_str(&up.data, "outbox_id", "o-report.1");
        assert_str(&up.data, "kind", "unit.call");
        assert_str(&up.data, "outcome", "sent");
        assert_str(&up.data, "body", "{\"id\":\"m-1\"}");
        v = map_get(&up.data, "status");
        assert_non_null(v);
        assert_int_equal(v->via.u64, 202);
        v = map_get(&up.data, "attempts");
        assert_int_equal(v->via.u64, 1);
        assert_null(map_get(&up.data, "error"));
        msgpack_unpacked_destroy(&up);

        /* A refusal is reported too, with its error. */
        r = request("o-report.2", "/bad", NULL, url, sizeof(url));
        r.report = (outbox_report_t){.type = "unit.call_done"};
        assert_int_equal(enqueue(ob, &r, errstr, sizeof(errstr)), OUTBOX_OK);
        assert_true(teststore_next(&FX, 10000, &c));
        msgpack_unpacked_init(&up);
        assert_int_equal(msgpack_unpack_next(&up, c.body, c.body_len, NULL),
                         MSGPACK_UNPACK_SUCCESS);
        assert_str(&up.data, "outcome", "failed");
        assert_str(&up.data, "error", "HTTP 400");
        assert_null(map_get(&up.data, "body")); /* not asked for */
        msgpack_unpacked_destroy(&up);
        doc = record_when(ob, "o-report.2", "failed", 10000);
        assert_non_null(doc);
        record_free(doc);
        outbox_destroy(ob);
}

/* ---------------------------------------------------------------------------
 * Several senders, crashes, stopping
 * ------------------------------------------------------------------------ */

#define BOTH 100

static int cmp_str(const void *a, const void *b) {
        return strcmp(a, b);
}

static void test_two_senders_send_each_record_once(void **state) {
        outbox_t *setter = outbox("o_both", false, false);
        outbox_t *a, *b;
        char url[128], errstr[256], id[64];
        static char keys[BOTH + 10][64];
        size_t n;
        (void)state;
        reset();
        for (int i = 0; i < BOTH; i++) {
                outbox_request_t r;
                snprintf(id, sizeof(id), "o-both.%03d", i);
                r = request(id, "/send", NULL, url, sizeof(url));
                assert_int_equal(enqueue(setter, &r, errstr, sizeof(errstr)),
                                 OUTBOX_OK);
        }
        a = outbox("o_both", true, false);
        b = outbox("o_both", true, false);
        assert_true(requests_reach(BOTH, 10000));
        usleep(500 * 1000);
        outbox_destroy(a);
        outbox_destroy(b);
        n = testsrv_count(SRV);
        assert_int_equal(n, BOTH);
        for (size_t i = 0; i < n; i++)
                memcpy(keys[i], testsrv_get(SRV, i).idem, 64);
        qsort(keys, n, 64, cmp_str);
        for (size_t i = 0; i < n; i++) {
                snprintf(id, sizeof(id), "o-both.%03zu", i);
                assert_string_equal(keys[i], id);
        }
        outbox_destroy(setter);
}

static void test_a_dead_senders_lease_runs_out(void **state) {
        outbox_t *ob = outbox("o_crash", false, false);
        char url[128], errstr[256];
        outbox_request_t r;
        int64_t claimed_at;
        bson_t *doc;
        (void)state;
        reset();
        r = request("o-crash.1", "/send", NULL, url, sizeof(url));
        assert_int_equal(enqueue(ob, &r, errstr, sizeof(errstr)), OUTBOX_OK);
        /* A sender claims it and dies before recording anything. */
        assert_int_equal(teststore_dead_claim(&FX, "o_crash", "next_attempt_at",
                                              "queued", 800, &claimed_at),
                         1);
        assert_int_equal(outbox_start(ob, errstr, sizeof(errstr)), 0);
        assert_false(requests_reach(1, 500));
        assert_true(requests_reach(1, 10000));
        assert_true(testsrv_get(SRV, 0).at_ms > 0);
        doc = record_when(ob, "o-crash.1", "sent", 10000);
        assert_non_null(doc);
        assert_true(lease_doc_date(doc, "sent_at") >= claimed_at + 800);
        record_free(doc);
        outbox_destroy(ob);
}

static void test_stopping_cancels_a_call_in_flight(void **state) {
        outbox_t *ob = outbox("o_stop", true, false);
        char url[128], errstr[256];
        outbox_request_t r;
        uint64_t t0;
        bson_t *doc;
        (void)state;
        reset();
        atomic_store(&P.slow_ms, 10000);
        r = request("o-stop.1", "/slow", NULL, url, sizeof(url));
        assert_int_equal(enqueue(ob, &r, errstr, sizeof(errstr)), OUTBOX_OK);
        assert_true(requests_reach(1, 10000));
        t0 = clock_mono_ms();
        outbox_destroy(ob);
        assert_true(clock_mono_ms() - t0 < 5000); /* not the 10 s answer */
        /* Due again at once for the next sender, no attempt counted. */
        ob = outbox("o_stop", false, false);
        doc = record_when(ob, "o-stop.1", "queued", 1000);
        assert_non_null(doc);
        assert_int_equal(lease_doc_int(doc, "attempts", -1), 0);
        assert_true(lease_doc_date(doc, "lease_until") <=
                    (int64_t)clock_wall_ms());
        assert_true(lease_doc_date(doc, "next_attempt_at") <=
                    (int64_t)clock_wall_ms());
        record_free(doc);
        atomic_store(&P.slow_ms, 0);
        outbox_destroy(ob);
}

static void test_a_kind_not_ready_and_a_held_outbox_wait(void **state) {
        outbox_t *ob = outbox("o_wait", true, false);
        char url[128], errstr[256];
        outbox_request_t r;
        bson_t *doc;
        (void)state;
        reset();
        atomic_store(&P.not_ready, true);
        r = request("o-wait.1", "/send", NULL, url, sizeof(url));
        assert_int_equal(enqueue(ob, &r, errstr, sizeof(errstr)), OUTBOX_OK);
        usleep(500 * 1000);
        assert_int_equal(testsrv_count(SRV), 0);
        assert_true(atomic_load(&P.prepared) >= 1);
        doc = record_when(ob, "o-wait.1", "queued", 100);
        assert_non_null(doc);
        assert_int_equal(lease_doc_int(doc, "attempts", -1), 0);
        assert_true(lease_doc_date(doc, "next_attempt_at") >
                    (int64_t)clock_wall_ms() + 50000);
        record_free(doc);
        outbox_destroy(ob);

        /* Held: nothing is even prepared. */
        reset();
        ob = outbox("o_held", true, true);
        r = request("o-held.1", "/send", NULL, url, sizeof(url));
        assert_int_equal(enqueue(ob, &r, errstr, sizeof(errstr)), OUTBOX_OK);
        usleep(500 * 1000);
        assert_int_equal(testsrv_count(SRV), 0);
        assert_int_equal(atomic_load(&P.prepared), 0);
        outbox_destroy(ob);
}

static void test_bad_requests_are_refused(void **state) {
        outbox_t *ob = outbox("o_bad", false, false);
        char url[128], errstr[256], errstr2[256];
        outbox_request_t r =
                request("o-bad.1", "/send", NULL, url, sizeof(url));
        outbox_opts_t o = {.cfg = &FX.cfg,
                           .store = FX.store,
                           .group = GROUP,
                           .collection = "o_bad",
                           .kinds = KINDS,
                           .n_kinds = 1};
        outbox_t *no_bus = outbox_new(&o, errstr2, sizeof(errstr2));
        bson_t extra = BSON_INITIALIZER;
        bson_t out;
        (void)state;
        r.kind = "unknown";
        assert_int_equal(enqueue(ob, &r, errstr, sizeof(errstr)),
                         OUTBOX_BAD_REQUEST);
        r.kind = "unit.call";
        r.id = "with space";
        assert_int_equal(enqueue(ob, &r, errstr, sizeof(errstr)),
                         OUTBOX_BAD_REQUEST);
        r.id = "o-bad.1";
        r.url = "ftp://example.com/x";
        assert_int_equal(enqueue(ob, &r, errstr, sizeof(errstr)),
                         OUTBOX_BAD_REQUEST);
        r.url = url;
        r.policy.timeout_ms = 120000; /* longer than the lease */
        assert_int_equal(enqueue(ob, &r, errstr, sizeof(errstr)),
                         OUTBOX_BAD_REQUEST);
        r.policy.timeout_ms = 0;
        BSON_APPEND_UTF8(&extra, "status", "sent");
        r.extra = &extra;
        assert_int_equal(enqueue(ob, &r, errstr, sizeof(errstr)),
                         OUTBOX_BAD_REQUEST);
        r.extra = NULL;
        r.report.type = "Not A Type";
        assert_int_equal(enqueue(ob, &r, errstr, sizeof(errstr)),
                         OUTBOX_BAD_REQUEST);
        r.report.type = "unit.done";
        assert_non_null(no_bus);
        assert_int_equal(enqueue(no_bus, &r, errstr, sizeof(errstr)),
                         OUTBOX_BAD_REQUEST);
        assert_int_equal(
                outbox_find(ob, "o-bad.1", &out, errstr, sizeof(errstr)),
                OUTBOX_NOT_FOUND);
        bson_destroy(&extra);
        outbox_destroy(no_bus);
        outbox_destroy(ob);
}

/* ---------------------------------------------------------------------------
 * Mail
 * ------------------------------------------------------------------------ */

static void test_mail_goes_out_in_the_sendgrid_shape(void **state) {
        char base[128], errstr[256];
        outbox_err_t err = OUTBOX_OK;
        mail_opts_t mo = {
                .api_key = KEY, .from = "no-reply@example.com", .group = GROUP};
        mail_t *mail;
        outbox_kind_t kinds[1];
        outbox_opts_t o = {.cfg = &FX.cfg,
                           .store = FX.store,
                           .http = HTTP,
                           .group = GROUP,
                           .collection = "o_mail",
                           .poll_ms = 100};
        mail_message_t msg = {"ada@example.com", "Welcome",
                              "Your link: https://x/verify?token=SECRET-LINK"};
        outbox_t *ob;
        testsrv_req_t got;
        json_t *body;
        json_error_t jerr;
        bson_t *doc;
        char *json;
        (void)state;
        reset();
        testsrv_url(SRV, "/", base, sizeof(base));
        mo.base_url = base; /* a trailing '/' is fine */
        mail = mail_new(&mo, errstr, sizeof(errstr));
        assert_non_null(mail);
        assert_true(mail_enabled(mail));
        kinds[0] = mail_kind(mail);
        o.kinds = kinds;
        o.n_kinds = 1;
        ob = outbox_new(&o, errstr, sizeof(errstr));
        assert_non_null(ob);
        assert_int_equal(outbox_start(ob, errstr, sizeof(errstr)), 0);
        /* A store failure is tried again, as the runtime would redeliver
         * (the shared store stalls under load). */
        for (int i = 0; i < 5; i++) {
                err = mail_enqueue(mail, ob, "cmd-1.verify", &msg, NULL, errstr,
                                   sizeof(errstr));
                if (err != OUTBOX_STORE_DOWN && err != OUTBOX_STORE_ERROR)
                        break;
                print_message("mail_enqueue: %s; again\n", errstr);
                usleep(300 * 1000);
        }
        assert_int_equal(err, OUTBOX_OK);
        doc = record_when(ob, "cmd-1.verify", "sent", 10000);
        assert_non_null(doc);
        assert_string_equal(lease_doc_str(doc, "to"), "ada@example.com");
        json = bson_as_relaxed_extended_json(doc, NULL);
        assert_null(strstr(json, "SECRET")); /* no key, no link kept */
        bson_free(json);
        record_free(doc);
        got = testsrv_get(SRV, 0);
        assert_string_equal(got.path, "/v3/mail/send");
        assert_string_equal(got.auth, "Bearer " KEY);
        assert_string_equal(got.ctype, "application/json");
        body = json_loads(got.body, 0, &jerr);
        assert_non_null(body);
        assert_string_equal(
                json_string_value(json_object_get(
                        json_array_get(
                                json_object_get(
                                        json_array_get(
                                                json_object_get(
                                                        body,
                                                        "personalizations"),
                                                0),
                                        "to"),
                                0),
                        "email")),
                "ada@example.com");
        assert_string_equal(json_string_value(json_object_get(
                                    json_object_get(body, "from"), "email")),
                            "no-reply@example.com");
        assert_string_equal(json_string_value(json_object_get(body, "subject")),
                            "Welcome");
        assert_string_equal(
                json_string_value(json_object_get(
                        json_array_get(json_object_get(body, "content"), 0),
                        "type")),
                "text/plain");
        json_decref(body);
        outbox_destroy(ob);
        mail_destroy(mail);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_a_record_is_sent_once),
                cmocka_unit_test(test_retries_leave_room_for_new_records),
                cmocka_unit_test(test_failures_are_retried_with_backoff),
                cmocka_unit_test(test_retry_after_is_honoured),
                cmocka_unit_test(test_a_refusal_is_final),
                cmocka_unit_test(test_attempts_are_bounded),
                cmocka_unit_test(test_a_record_past_its_give_up_time_fails),
                cmocka_unit_test(test_outcomes_are_reported_as_commands),
                cmocka_unit_test(test_two_senders_send_each_record_once),
                cmocka_unit_test(test_a_dead_senders_lease_runs_out),
                cmocka_unit_test(test_stopping_cancels_a_call_in_flight),
                cmocka_unit_test(test_a_kind_not_ready_and_a_held_outbox_wait),
                cmocka_unit_test(test_bad_requests_are_refused),
                cmocka_unit_test(test_mail_goes_out_in_the_sendgrid_shape),
        };
        char errstr[256];
        int rc;
        log_init(LOG_LEVEL_ERROR, "test_outbox");
        if (!teststore_open(&FX, GROUP, 1, "test_outbox")) {
                teststore_close(&FX);
                return TESTSTORE_SKIP;
        }
        SRV = testsrv_start(provider, NULL);
        HTTP = httpc_new(NULL, errstr, sizeof(errstr));
        if (!SRV || !HTTP)
                return 1;
        rc = cmocka_run_group_tests(tests, NULL, NULL);
        httpc_destroy(HTTP);
        testsrv_stop(SRV);
        teststore_close(&FX);
        return rc;
}
