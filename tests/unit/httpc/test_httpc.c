/*
 * test_httpc.c - the outbound HTTP client (shared/httpc.c) against a
 * libmicrohttpd server in this process, on loopback: retries and their
 * backoff, Retry-After (seconds and dates, capped), 429 pausing a host,
 * which requests are retried, size caps, timeouts, per-host concurrency,
 * rate and budget, cancellation and stopping, redirects, connection reuse,
 * TLS peers verified, and that no log line holds a header value, a query
 * or a body.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "httpc.h"
#include "log.h"
#include "msgid.h"
#include "testsrv.h"

/* ---------------------------------------------------------------------------
 * The provider: what it answers, by path
 * ------------------------------------------------------------------------ */

static struct {
        atomic_int fail_left;   /* /flaky and /limited fail this often */
        atomic_int fail_status; /* /flaky's failure (503) */
        char retry_after[64];   /* /flaky's Retry-After, "" for none */
        atomic_int slow_ms;     /* /slow's delay */
        atomic_size_t big;      /* /big's size */
        atomic_bool chunked;    /* /big without Content-Length */
} P;

static void provider(void *arg, const testsrv_req_t *req,
                     testsrv_answer_t *ans) {
        (void)arg;
        if (strcmp(req->path, "/ok") == 0 ||
            strncmp(req->path, "/things/", 8) == 0) {
                ans->body = "hello";
        } else if (strncmp(req->path, "/flaky", 6) == 0) {
                if (atomic_fetch_sub(&P.fail_left, 1) > 0) {
                        ans->status = atomic_load(&P.fail_status);
                        if (P.retry_after[0]) {
                                ans->headers[0] = "Retry-After";
                                ans->headers[1] = P.retry_after;
                        }
                        ans->body = "try later";
                } else {
                        ans->body = "done";
                }
        } else if (strncmp(req->path, "/status/", 8) == 0) {
                ans->status = atoi(req->path + 8);
                ans->body = "status";
        } else if (strcmp(req->path, "/big") == 0) {
                ans->fill = atomic_load(&P.big);
                ans->chunked = atomic_load(&P.chunked);
        } else if (strcmp(req->path, "/slow") == 0) {
                ans->delay_ms = atomic_load(&P.slow_ms);
                ans->body = "slow";
        } else if (strcmp(req->path, "/redirect") == 0) {
                ans->status = 302;
                ans->headers[0] = "Location";
                ans->headers[1] = "/ok";
        } else if (strcmp(req->path, "/limited") == 0) {
                ans->body = atomic_fetch_sub(&P.fail_left, 1) > 0
                                    ? "{\"error\":\"rate_limited\"}"
                                    : "{\"ok\":true}";
        } else {
                ans->status = 404;
        }
}

typedef struct fixture {
        testsrv_t *srv;
        httpc_t *client;
        char host[64];
} fixture_t;

static fixture_t FX;

static void reset_provider(void) {
        atomic_store(&P.fail_left, 0);
        atomic_store(&P.fail_status, 503);
        P.retry_after[0] = '\0';
        atomic_store(&P.slow_ms, 0);
        atomic_store(&P.big, 0);
        atomic_store(&P.chunked, false);
}

static int setup(void **state) {
        char errstr[256];
        reset_provider();
        FX.srv = testsrv_start(provider, NULL);
        assert_non_null(FX.srv);
        FX.client = httpc_new(NULL, errstr, sizeof(errstr));
        assert_non_null(FX.client);
        snprintf(FX.host, sizeof(FX.host), "127.0.0.1:%d",
                 testsrv_port(FX.srv));
        *state = &FX;
        return 0;
}

static int teardown(void **state) {
        (void)state;
        httpc_destroy(FX.client);
        testsrv_stop(FX.srv);
        return 0;
}

static void url(const char *path, char *buf, size_t size) {
        testsrv_url(FX.srv, path, buf, size);
}

/* A request with fast retries (the tests measure waits of their own). */
static httpc_request_t request(const char *u) {
        httpc_request_t req = {0};
        req.url = u;
        req.retry.backoff = (backoff_policy_t){20, 40};
        return req;
}

/* ---------------------------------------------------------------------------
 * Answers and retries
 * ------------------------------------------------------------------------ */

static void test_get_answers(void **state) {
        char u[128];
        httpc_response_t r;
        httpc_request_t req;
        (void)state;
        url("/ok", u, sizeof(u));
        req = request(u);
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_OK);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.verdict, HTTPC_VERDICT_OK);
        assert_int_equal(r.attempts, 1);
        assert_string_equal(r.body, "hello");
        assert_int_equal(r.body_len, 5);
        assert_int_equal(r.retry_after_ms, -1);
        assert_true(httpc_response_header(&r, "content-length").len > 0);
        httpc_response_deinit(&r);
}

static void test_503_retried_with_the_same_idempotency_key(void **state) {
        char u[128];
        httpc_response_t r;
        httpc_request_t req;
        (void)state;
        testsrv_reset(FX.srv);
        atomic_store(&P.fail_left, 2);
        url("/flaky", u, sizeof(u));
        req = request(u);
        req.method = "POST";
        req.body = slice_of("{\"a\":1}");
        req.idempotency_key = "op-123";
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_OK);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.attempts, 3);
        assert_string_equal(r.body, "done");
        assert_int_equal(testsrv_count(FX.srv), 3);
        for (size_t i = 0; i < 3; i++) {
                testsrv_req_t got = testsrv_get(FX.srv, i);
                assert_string_equal(got.idem, "op-123");
                assert_string_equal(got.body, "{\"a\":1}");
                assert_string_equal(got.method, "POST");
        }
        httpc_response_deinit(&r);
}

static void test_retries_end_with_the_last_answer(void **state) {
        char u[128];
        httpc_response_t r;
        httpc_request_t req;
        (void)state;
        testsrv_reset(FX.srv);
        atomic_store(&P.fail_left, 100);
        url("/flaky", u, sizeof(u));
        req = request(u);
        req.retry.attempts = 4;
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_OK);
        assert_int_equal(r.status, 503);
        assert_int_equal(r.verdict, HTTPC_VERDICT_RETRY);
        assert_int_equal(r.attempts, 4);
        assert_int_equal(testsrv_count(FX.srv), 4);
        httpc_response_deinit(&r);
        atomic_store(&P.fail_left, 0);
}

static void test_4xx_is_final(void **state) {
        char u[128];
        httpc_response_t r;
        httpc_request_t req;
        (void)state;
        testsrv_reset(FX.srv);
        url("/status/400", u, sizeof(u));
        req = request(u);
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_OK);
        assert_int_equal(r.status, 400);
        assert_int_equal(r.verdict, HTTPC_VERDICT_FAILED);
        assert_int_equal(r.attempts, 1);
        httpc_response_deinit(&r);
        /* 408 and 425 are worth another try. */
        url("/status/425", u, sizeof(u));
        req = request(u);
        req.retry.attempts = 2;
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_OK);
        assert_int_equal(r.attempts, 2);
        httpc_response_deinit(&r);
}

static void test_a_post_without_key_is_not_repeated_after_a_500(void **state) {
        char u[128];
        httpc_response_t r;
        httpc_request_t req;
        (void)state;
        url("/status/500", u, sizeof(u));
        req = request(u);
        req.method = "POST";
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_OK);
        assert_int_equal(r.attempts, 1);
        assert_int_equal(r.verdict, HTTPC_VERDICT_FAILED);
        httpc_response_deinit(&r);
        req.idempotency_key = "k";
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_OK);
        assert_int_equal(r.attempts, 3);
        assert_int_equal(r.verdict, HTTPC_VERDICT_RETRY);
        httpc_response_deinit(&r);
        /* A 503 is refused before any work: retried even so. */
        url("/status/503", u, sizeof(u));
        req = request(u);
        req.method = "POST";
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_OK);
        assert_int_equal(r.attempts, 3);
        httpc_response_deinit(&r);
}

static void test_connection_refused_is_retried(void **state) {
        httpc_response_t r;
        httpc_request_t req = request("http://127.0.0.1:9/nothing");
        (void)state;
        req.retry.attempts = 2;
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_CONNECT);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.attempts, 2);
        assert_int_equal(r.verdict, HTTPC_VERDICT_RETRY);
        httpc_response_deinit(&r);
}

/* ---------------------------------------------------------------------------
 * Retry-After and rate limits
 * ------------------------------------------------------------------------ */

static void test_retry_after_seconds_is_waited_out(void **state) {
        char u[128];
        httpc_response_t r;
        httpc_request_t req;
        testsrv_req_t a, b;
        (void)state;
        testsrv_reset(FX.srv);
        atomic_store(&P.fail_left, 1);
        atomic_store(&P.fail_status, 429);
        snprintf(P.retry_after, sizeof(P.retry_after), "1");
        url("/flaky", u, sizeof(u));
        req = request(u);
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_OK);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.attempts, 2);
        a = testsrv_get(FX.srv, 0);
        b = testsrv_get(FX.srv, 1);
        assert_true(b.at_ms - a.at_ms >= 990);
        assert_true(b.at_ms - a.at_ms < 3000);
        httpc_response_deinit(&r);
        reset_provider();
}

static void test_retry_after_date_is_waited_out(void **state) {
        char u[128];
        httpc_response_t r;
        httpc_request_t req;
        testsrv_req_t a, b;
        time_t at = time(NULL) + 2;
        struct tm tm;
        (void)state;
        testsrv_reset(FX.srv);
        atomic_store(&P.fail_left, 1);
        gmtime_r(&at, &tm);
        strftime(P.retry_after, sizeof(P.retry_after),
                 "%a, %d %b %Y %H:%M:%S GMT", &tm);
        url("/flaky", u, sizeof(u));
        req = request(u);
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_OK);
        assert_int_equal(r.status, 200);
        a = testsrv_get(FX.srv, 0);
        b = testsrv_get(FX.srv, 1);
        /* The date has a second's resolution: at least one second. */
        assert_true(b.at_ms - a.at_ms >= 1000);
        assert_true(b.at_ms - a.at_ms < 3500);
        httpc_response_deinit(&r);
        reset_provider();
}

static void test_a_retry_after_beyond_the_cap_ends_the_call(void **state) {
        char u[128], errstr[128];
        httpc_response_t r;
        httpc_request_t req;
        uint64_t t0 = clock_mono_ms();
        /* A client of its own: the host stays paused for 120 s after. */
        httpc_t *client = httpc_new(NULL, errstr, sizeof(errstr));
        (void)state;
        atomic_store(&P.fail_left, 1);
        atomic_store(&P.fail_status, 429);
        snprintf(P.retry_after, sizeof(P.retry_after), "120");
        url("/flaky", u, sizeof(u));
        req = request(u);
        req.retry.retry_after_cap_ms = 1000;
        assert_int_equal(httpc_do(client, &req, &r), HTTPC_OK);
        assert_int_equal(r.status, 429);
        assert_int_equal(r.verdict, HTTPC_VERDICT_RATE_LIMITED);
        assert_int_equal(r.attempts, 1);
        assert_int_equal(r.retry_after_ms, 120000);
        assert_true(clock_mono_ms() - t0 < 5000); /* not 120 s */
        httpc_response_deinit(&r);
        reset_provider();
        httpc_destroy(client);
}

static void test_parse_retry_after(void **state) {
        int64_t now = 1700000000000LL; /* 2023-11-14T22:13:20Z */
        (void)state;
        assert_int_equal(httpc_parse_retry_after(slice_of("0"), now), 0);
        assert_int_equal(httpc_parse_retry_after(slice_of("7"), now), 7000);
        assert_int_equal(
                httpc_parse_retry_after(
                        slice_of("Tue, 14 Nov 2023 22:13:30 GMT"), now),
                10000);
        assert_int_equal(
                httpc_parse_retry_after(
                        slice_of("Tue, 14 Nov 2023 22:00:00 GMT"), now),
                0);
        assert_int_equal(httpc_parse_retry_after(slice_of("soon"), now), -1);
        assert_int_equal(httpc_parse_retry_after(slice_of("-5"), now), -1);
        assert_int_equal(httpc_parse_retry_after(SLICE_NULL, now), -1);
        assert_true(httpc_parse_retry_after(slice_of("99999999999999999999999"),
                                            now) > 1000000000000LL);
}

typedef struct counter {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        int done, want;
        httpc_err_t errs[64];
        long statuses[64];
} counter_t;

static void counter_init(counter_t *c, int want) {
        memset(c, 0, sizeof(*c));
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->cond, NULL);
        c->want = want;
}

static void counted(void *arg, httpc_response_t *resp) {
        counter_t *c = arg;
        pthread_mutex_lock(&c->lock);
        c->errs[c->done] = resp->err;
        c->statuses[c->done] = resp->status;
        c->done++;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        httpc_response_deinit(resp);
}

static void counter_wait(counter_t *c) {
        pthread_mutex_lock(&c->lock);
        while (c->done < c->want)
                pthread_cond_wait(&c->cond, &c->lock);
        pthread_mutex_unlock(&c->lock);
        pthread_cond_destroy(&c->cond);
        pthread_mutex_destroy(&c->lock);
}

static void test_a_429_pauses_the_host_for_every_call(void **state) {
        char u1[128], u2[128];
        httpc_request_t a, b;
        counter_t c;
        testsrv_req_t first, later;
        (void)state;
        testsrv_reset(FX.srv);
        httpc_host_limits(FX.client, FX.host, 1, 0, 0);
        atomic_store(&P.fail_left, 1);
        atomic_store(&P.fail_status, 429);
        snprintf(P.retry_after, sizeof(P.retry_after), "1");
        url("/flaky", u1, sizeof(u1));
        url("/ok", u2, sizeof(u2));
        a = request(u1);
        b = request(u2);
        counter_init(&c, 2);
        assert_int_equal(httpc_submit(FX.client, &a, counted, &c), HTTPC_OK);
        assert_int_equal(httpc_submit(FX.client, &b, counted, &c), HTTPC_OK);
        counter_wait(&c);
        assert_int_equal(testsrv_count(FX.srv), 3);
        first = testsrv_get(FX.srv, 0);
        assert_string_equal(first.path, "/flaky");
        /* Both later calls (the /ok one too) waited out the pause. */
        later = testsrv_get(FX.srv, 1);
        assert_true(later.at_ms - first.at_ms >= 990);
        later = testsrv_get(FX.srv, 2);
        assert_true(later.at_ms - first.at_ms >= 990);
        httpc_host_limits(FX.client, FX.host, 0, 0, 0);
        reset_provider();
}

static httpc_verdict_t body_says_rate_limited(void *arg,
                                              const httpc_response_t *resp) {
        int *calls = arg;
        (*calls)++;
        if (resp->body && strstr(resp->body, "rate_limited"))
                return HTTPC_VERDICT_RATE_LIMITED;
        return HTTPC_VERDICT_DEFAULT;
}

static void test_a_classifier_reads_a_200_as_rate_limited(void **state) {
        char u[128];
        httpc_response_t r;
        httpc_request_t req;
        int calls = 0;
        (void)state;
        atomic_store(&P.fail_left, 2);
        url("/limited", u, sizeof(u));
        req = request(u);
        req.retry.classify = body_says_rate_limited;
        req.retry.classify_arg = &calls;
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_OK);
        assert_int_equal(r.attempts, 3);
        assert_string_equal(r.body, "{\"ok\":true}");
        assert_int_equal(r.verdict, HTTPC_VERDICT_OK);
        assert_int_equal(calls, 3);
        httpc_response_deinit(&r);
        reset_provider();
}

/* ---------------------------------------------------------------------------
 * Limits per host
 * ------------------------------------------------------------------------ */

static void test_per_host_concurrency(void **state) {
        char u[128];
        httpc_request_t req;
        counter_t c;
        uint64_t t0;
        (void)state;
        testsrv_reset(FX.srv);
        httpc_host_limits(FX.client, FX.host, 2, 0, 0);
        atomic_store(&P.slow_ms, 150);
        url("/slow", u, sizeof(u));
        req = request(u);
        counter_init(&c, 6);
        t0 = clock_mono_ms();
        for (int i = 0; i < 6; i++)
                assert_int_equal(httpc_submit(FX.client, &req, counted, &c),
                                 HTTPC_OK);
        counter_wait(&c);
        assert_int_equal(testsrv_max_concurrent(FX.srv), 2);
        assert_true(clock_mono_ms() - t0 >= 3 * 150);
        for (int i = 0; i < 6; i++)
                assert_int_equal(c.statuses[i], 200);
        httpc_host_limits(FX.client, FX.host, 0, 0, 0);
        reset_provider();
}

static void test_a_call_that_cannot_start_in_its_budget_ends(void **state) {
        char slow[128], ok[128];
        httpc_request_t a, b;
        counter_t c;
        uint64_t t0;
        (void)state;
        testsrv_reset(FX.srv);
        httpc_host_limits(FX.client, FX.host, 1, 0, 0);
        atomic_store(&P.slow_ms, 3000);
        url("/slow", slow, sizeof(slow));
        url("/ok", ok, sizeof(ok));
        a = request(slow);
        b = request(ok);
        b.retry.budget_ms = 150;
        counter_init(&c, 2);
        t0 = clock_mono_ms();
        assert_int_equal(httpc_submit(FX.client, &a, counted, &c), HTTPC_OK);
        assert_int_equal(httpc_submit(FX.client, &b, counted, &c), HTTPC_OK);
        pthread_mutex_lock(&c.lock);
        while (c.done < 1)
                pthread_cond_wait(&c.cond, &c.lock);
        pthread_mutex_unlock(&c.lock);
        /* The second ended first, unsent, once its budget was spent. */
        assert_int_equal(c.errs[0], HTTPC_NOT_STARTED);
        assert_true(clock_mono_ms() - t0 < 2500); /* before the first ended */
        counter_wait(&c);
        assert_int_equal(c.statuses[1], 200);
        assert_int_equal(testsrv_count(FX.srv), 1);
        httpc_host_limits(FX.client, FX.host, 0, 0, 0);
        reset_provider();
}

static void test_per_host_rate(void **state) {
        char u[128];
        httpc_request_t req;
        counter_t c;
        (void)state;
        testsrv_reset(FX.srv);
        httpc_host_limits(FX.client, FX.host, 8, 10.0, 1);
        url("/ok", u, sizeof(u));
        req = request(u);
        counter_init(&c, 6);
        for (int i = 0; i < 6; i++)
                assert_int_equal(httpc_submit(FX.client, &req, counted, &c),
                                 HTTPC_OK);
        counter_wait(&c);
        assert_int_equal(testsrv_count(FX.srv), 6);
        /* 10/s with a burst of one: a tenth of a second apart. */
        for (size_t i = 1; i < 6; i++) {
                testsrv_req_t a = testsrv_get(FX.srv, i - 1);
                testsrv_req_t b = testsrv_get(FX.srv, i);
                assert_true(b.at_ms - a.at_ms >= 85);
        }
        httpc_host_limits(FX.client, FX.host, 0, 0, 0);
}

static void test_a_provider_budget_pauses_the_host(void **state) {
        char u[128];
        httpc_response_t r;
        httpc_request_t req;
        uint64_t t0 = clock_mono_ms();
        (void)state;
        httpc_host_budget(FX.client, FX.host, 0,
                          (int64_t)clock_wall_ms() + 400);
        url("/ok", u, sizeof(u));
        req = request(u);
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_OK);
        assert_true(clock_mono_ms() - t0 >= 390);
        httpc_response_deinit(&r);
}

static void test_connections_are_reused(void **state) {
        char u[128];
        httpc_response_t r;
        httpc_request_t req;
        int before = testsrv_connections(FX.srv);
        (void)state;
        url("/ok", u, sizeof(u));
        req = request(u);
        for (int i = 0; i < 5; i++) {
                assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_OK);
                httpc_response_deinit(&r);
        }
        assert_true(testsrv_connections(FX.srv) - before <= 1);
}

/* ---------------------------------------------------------------------------
 * Caps, timeouts, cancellation, redirects, bad requests
 * ------------------------------------------------------------------------ */

static void test_an_oversized_answer_is_an_error(void **state) {
        char u[128];
        httpc_response_t r;
        httpc_request_t req;
        (void)state;
        url("/big", u, sizeof(u));
        for (int chunked = 0; chunked < 2; chunked++) {
                atomic_store(&P.big, 300000);
                atomic_store(&P.chunked, chunked);
                req = request(u);
                req.max_response_bytes = 100000;
                assert_int_equal(httpc_do(FX.client, &req, &r),
                                 HTTPC_TOO_LARGE);
                assert_int_equal(r.verdict, HTTPC_VERDICT_FAILED);
                assert_int_equal(r.attempts, 1);
                assert_null(r.body);
                httpc_response_deinit(&r);
                /* Just under the cap is fine, whole. */
                atomic_store(&P.big, 100000);
                assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_OK);
                assert_int_equal(r.body_len, 100000);
                httpc_response_deinit(&r);
        }
        reset_provider();
}

static void test_a_try_times_out(void **state) {
        char u[128];
        httpc_response_t r;
        httpc_request_t req;
        uint64_t t0 = clock_mono_ms();
        (void)state;
        atomic_store(&P.slow_ms, 3000);
        url("/slow", u, sizeof(u));
        req = request(u);
        req.timeout_ms = 200;
        req.retry.attempts = 2;
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_TIMEOUT);
        assert_int_equal(r.attempts, 2);
        assert_int_equal(r.verdict, HTTPC_VERDICT_RETRY);
        assert_true(clock_mono_ms() - t0 < 2900); /* cut short of 3 s */
        httpc_response_deinit(&r);
        /* A POST without a key may have been processed: not repeated. */
        req.method = "POST";
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_TIMEOUT);
        assert_int_equal(r.attempts, 1);
        httpc_response_deinit(&r);
        reset_provider();
}

static void test_a_call_is_cancelled(void **state) {
        char u[128];
        httpc_request_t req;
        atomic_bool cancel;
        counter_t c;
        uint64_t t0;
        (void)state;
        atomic_init(&cancel, false);
        atomic_store(&P.slow_ms, 5000);
        url("/slow", u, sizeof(u));
        req = request(u);
        req.cancel = &cancel;
        counter_init(&c, 1);
        assert_int_equal(httpc_submit(FX.client, &req, counted, &c), HTTPC_OK);
        usleep(100 * 1000);
        t0 = clock_mono_ms();
        atomic_store(&cancel, true);
        httpc_wake(FX.client);
        counter_wait(&c);
        assert_int_equal(c.errs[0], HTTPC_CANCELLED);
        assert_true(clock_mono_ms() - t0 < 2500); /* not the 5 s answer */
        reset_provider();
}

static void test_stopping_ends_calls_in_flight(void **state) {
        char u[128], errstr[128];
        httpc_request_t req;
        httpc_t *client = httpc_new(NULL, errstr, sizeof(errstr));
        counter_t c;
        uint64_t t0;
        (void)state;
        atomic_store(&P.slow_ms, 5000);
        url("/slow", u, sizeof(u));
        req = request(u);
        counter_init(&c, 2);
        assert_int_equal(httpc_submit(client, &req, counted, &c), HTTPC_OK);
        assert_int_equal(httpc_submit(client, &req, counted, &c), HTTPC_OK);
        usleep(100 * 1000);
        t0 = clock_mono_ms();
        httpc_destroy(client);
        assert_true(clock_mono_ms() - t0 < 2500); /* not the 5 s answer */
        counter_wait(&c);
        assert_int_equal(c.errs[0], HTTPC_STOPPED);
        assert_int_equal(c.errs[1], HTTPC_STOPPED);
        reset_provider();
}

static void test_redirects_are_not_followed_unless_asked(void **state) {
        char u[128];
        httpc_response_t r;
        httpc_request_t req;
        (void)state;
        url("/redirect", u, sizeof(u));
        req = request(u);
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_OK);
        assert_int_equal(r.status, 302);
        assert_int_equal(r.verdict, HTTPC_VERDICT_FAILED);
        httpc_response_deinit(&r);
        req.max_redirects = 2;
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_OK);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "hello");
        httpc_response_deinit(&r);
}

static void test_bad_requests_are_refused(void **state) {
        httpc_headers_t h = HTTPC_HEADERS_INIT;
        httpc_response_t r;
        httpc_request_t req = request("ftp://127.0.0.1/x");
        (void)state;
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_BAD_REQUEST);
        httpc_response_deinit(&r);
        req.url = "not a url";
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_BAD_REQUEST);
        httpc_response_deinit(&r);
        req.url = "http://127.0.0.1/x";
        req.method = "GE T";
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_BAD_REQUEST);
        httpc_response_deinit(&r);
        req.method = NULL;
        req.idempotency_key = "a\r\nX-Injected: 1";
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_BAD_REQUEST);
        httpc_response_deinit(&r);
        /* Header lists refuse what would inject a header. */
        assert_false(httpc_headers_add(&h, "X-A", "1\r\nX-B: 2"));
        assert_false(httpc_headers_add(&h, "X A", "1"));
        assert_false(httpc_headers_add(&h, "", "1"));
        assert_true(httpc_headers_add(&h, "X-Empty", ""));
        assert_true(httpc_headers_add_line(&h, "X-C: 3"));
        assert_false(httpc_headers_add_line(&h, "no colon"));
        assert_int_equal(h.n, 2);
        assert_string_equal(h.lines[0], "X-Empty;");
        httpc_headers_deinit(&h);
}

static void test_url_parts(void **state) {
        char host[64], path[64];
        (void)state;
        assert_true(httpc_url_parts("https://API.Example.com/v1/x?key=s#f",
                                    host, sizeof(host), path, sizeof(path)));
        assert_string_equal(host, "api.example.com");
        assert_string_equal(path, "/v1/x");
        assert_true(httpc_url_parts("http://u:pw@h:8080", host, sizeof(host),
                                    path, sizeof(path)));
        assert_string_equal(host, "h:8080");
        assert_string_equal(path, "/");
        assert_false(httpc_url_parts("file:///etc/passwd", host, sizeof(host),
                                     path, sizeof(path)));
}

/* A key and a self-signed certificate for 127.0.0.1 (its own CA), PEM. */
static void make_cert(char **key_pem, char **cert_pem) {
        EVP_PKEY *pk = EVP_EC_gen("P-256");
        X509 *x = X509_new();
        X509_NAME *name;
        X509V3_CTX ctx;
        X509_EXTENSION *ext;
        BIO *bio;
        char *data;
        long len;

        assert_non_null(pk);
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), -60);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_pubkey(x, pk);
        name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   (const unsigned char *)"127.0.0.1", -1, -1,
                                   0);
        X509_set_issuer_name(x, name);
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name,
                                  "IP:127.0.0.1");
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
        ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
                                  "critical,CA:TRUE");
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
        assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
        bio = BIO_new(BIO_s_mem());
        PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL);
        len = BIO_get_mem_data(bio, &data);
        *key_pem = strndup(data, (size_t)len);
        BIO_free(bio);
        bio = BIO_new(BIO_s_mem());
        PEM_write_bio_X509(bio, x);
        len = BIO_get_mem_data(bio, &data);
        *cert_pem = strndup(data, (size_t)len);
        BIO_free(bio);
        X509_free(x);
        EVP_PKEY_free(pk);
}

static void test_tls_peers_are_verified(void **state) {
        char *key, *cert, u[128], errstr[128];
        char ca[] = "/tmp/test_httpc_ca_XXXXXX";
        int fd = mkstemp(ca);
        httpc_opts_t o = {.ca_file = ca};
        httpc_response_t r;
        httpc_request_t req;
        testsrv_t *tls;
        httpc_t *trusting;
        (void)state;
        make_cert(&key, &cert);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, cert, strlen(cert)), (ssize_t)strlen(cert));
        close(fd);
        tls = testsrv_start_tls(provider, NULL, key, cert);
        if (!tls) {
                free(key);
                free(cert);
                unlink(ca);
                skip(); /* libmicrohttpd without TLS */
        }
        testsrv_url(tls, "/ok", u, sizeof(u));
        assert_int_equal(strncmp(u, "https://", 8), 0);
        /* An unknown issuer: refused, and not retried. */
        req = request(u);
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_TLS);
        assert_int_equal(r.verdict, HTTPC_VERDICT_FAILED);
        assert_int_equal(r.attempts, 1);
        httpc_response_deinit(&r);
        /* Trusted, the same server answers. */
        trusting = httpc_new(&o, errstr, sizeof(errstr));
        assert_non_null(trusting);
        assert_int_equal(httpc_do(trusting, &req, &r), HTTPC_OK);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "hello");
        httpc_response_deinit(&r);
        httpc_destroy(trusting);
        testsrv_stop(tls);
        unlink(ca);
        free(key);
        free(cert);
}

/* ---------------------------------------------------------------------------
 * What the logs show
 * ------------------------------------------------------------------------ */

static char *read_file(const char *path) {
        FILE *f = fopen(path, "r");
        char *buf = calloc(1, 1 << 20);
        size_t n;
        assert_non_null(f);
        n = fread(buf, 1, (1 << 20) - 1, f);
        buf[n] = '\0';
        fclose(f);
        return buf;
}

static void test_logs_hold_no_secret(void **state) {
        char u[256], path[] = "/tmp/test_httpc_log_XXXXXX";
        httpc_headers_t h = HTTPC_HEADERS_INIT;
        httpc_response_t r;
        httpc_request_t req;
        int fd = mkstemp(path), saved = dup(2);
        char *text;
        (void)state;
        assert_true(fd >= 0);
        log_init(LOG_LEVEL_DEBUG, "test_httpc");
        fflush(stderr);
        dup2(fd, 2);

        /* A retried call: every line it makes (warnings, the end). */
        atomic_store(&P.fail_left, 1);
        snprintf(u, sizeof(u), "http://%s/flaky?q=SECRET-QUERY", FX.host);
        req = request(u);
        req.method = "POST";
        req.idempotency_key = "SECRET-IDEM";
        assert_true(
                httpc_headers_add(&h, "Authorization", "Bearer SECRET-TOKEN"));
        req.headers = &h;
        req.body = slice_of("SECRET-BODY");
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_OK);
        assert_int_equal(r.attempts, 2);
        httpc_response_deinit(&r);
        /* A path holding an id, named by its template. */
        snprintf(u, sizeof(u), "http://%s/things/SECRET-PATH", FX.host);
        req = request(u);
        req.route = "/things/{id}";
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_OK);
        httpc_response_deinit(&r);
        /* A failure. */
        req = request("http://127.0.0.1:9/x?token=SECRET-REFUSED");
        req.retry.attempts = 1;
        assert_int_equal(httpc_do(FX.client, &req, &r), HTTPC_CONNECT);
        httpc_response_deinit(&r);

        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        close(fd);
        log_init(LOG_LEVEL_INFO, "test_httpc");
        text = read_file(path);
        unlink(path);
        assert_null(strstr(text, "SECRET"));
        /* What they do show: method, host, route, status, attempt. */
        assert_non_null(strstr(text, "POST 127.0.0.1:"));
        assert_non_null(strstr(text, "/flaky: HTTP 503"));
        assert_non_null(strstr(text, "attempt 1 of 3"));
        assert_non_null(strstr(text, "/things/{id}: HTTP 200"));
        assert_non_null(strstr(text, "cannot connect"));
        httpc_headers_deinit(&h);
        free(text);
        reset_provider();
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_get_answers),
                cmocka_unit_test(
                        test_503_retried_with_the_same_idempotency_key),
                cmocka_unit_test(test_retries_end_with_the_last_answer),
                cmocka_unit_test(test_4xx_is_final),
                cmocka_unit_test(
                        test_a_post_without_key_is_not_repeated_after_a_500),
                cmocka_unit_test(test_connection_refused_is_retried),
                cmocka_unit_test(test_retry_after_seconds_is_waited_out),
                cmocka_unit_test(test_retry_after_date_is_waited_out),
                cmocka_unit_test(
                        test_a_retry_after_beyond_the_cap_ends_the_call),
                cmocka_unit_test(test_parse_retry_after),
                cmocka_unit_test(test_a_429_pauses_the_host_for_every_call),
                cmocka_unit_test(test_a_classifier_reads_a_200_as_rate_limited),
                cmocka_unit_test(test_per_host_concurrency),
                cmocka_unit_test(
                        test_a_call_that_cannot_start_in_its_budget_ends),
                cmocka_unit_test(test_per_host_rate),
                cmocka_unit_test(test_a_provider_budget_pauses_the_host),
                cmocka_unit_test(test_connections_are_reused),
                cmocka_unit_test(test_an_oversized_answer_is_an_error),
                cmocka_unit_test(test_a_try_times_out),
                cmocka_unit_test(test_a_call_is_cancelled),
                cmocka_unit_test(test_stopping_ends_calls_in_flight),
                cmocka_unit_test(test_redirects_are_not_followed_unless_asked),
                cmocka_unit_test(test_bad_requests_are_refused),
                cmocka_unit_test(test_url_parts),
                cmocka_unit_test(test_tls_peers_are_verified),
                cmocka_unit_test(test_logs_hold_no_secret),
        };
        log_init(LOG_LEVEL_WARN, "test_httpc");
        return cmocka_run_group_tests(tests, setup, teardown);
}
