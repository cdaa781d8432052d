/*
 * test_metrics.c - unit tests of the metrics registry (shared/metrics.c).
 *
 * The registry is process-wide and only grows, so every test uses metric
 * names of its own and looks only at its own lines of the rendered text.
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

#include "metrics.h"

/* How many times `needle` occurs in `hay`. */
static size_t count(const char *hay, const char *needle) {
        size_t n = 0, len = strlen(needle);
        for (const char *p = strstr(hay, needle); p;
             p = strstr(p + len, needle))
                n++;
        return n;
}

/* Render and check the returned length. */
static char *render(void) {
        size_t len = 0;
        char *text = metrics_render(&len);
        assert_non_null(text);
        assert_int_equal(strlen(text), len);
        return text;
}

/* Expect exactly one line equal to `line` (without its newline). */
static void assert_line(const char *text, const char *line) {
        char buf[512];
        snprintf(buf, sizeof(buf), "\n%s\n", line);
        /* The first line is always a HELP line, never a sample. */
        if (count(text, buf) != 1)
                fail_msg("line not found once: %s\n---\n%s", line, text);
}

/* ------------------------------------------------------------------------ */
/* Counters and gauges                                                       */
/* ------------------------------------------------------------------------ */

static void test_counter_render(void **state) {
        metrics_counter_t *a, *b, *none;
        char *text;
        (void)state;
        a = metrics_counter("tc_requests_total", "Requests handled.",
                            "route=\"/a\",status=\"200\"");
        b = metrics_counter("tc_requests_total", "Requests handled.",
                            "route=\"/b\",status=\"500\"");
        none = metrics_counter("tc_plain_total", "No labels.", "");
        assert_non_null(a);
        assert_non_null(b);
        assert_true(a != b);
        metrics_add(a, 3);
        metrics_add(b, 2);
        metrics_add(b, 5);
        metrics_add(none, 1);
        assert_int_equal(metrics_value(a), 3);
        assert_int_equal(metrics_value(b), 7);

        text = render();
        assert_int_equal(
                count(text, "# HELP tc_requests_total Requests handled.\n"), 1);
        assert_int_equal(count(text, "# TYPE tc_requests_total counter\n"), 1);
        assert_line(text, "tc_requests_total{route=\"/a\",status=\"200\"} 3");
        assert_line(text, "tc_requests_total{route=\"/b\",status=\"500\"} 7");
        assert_int_equal(count(text, "# TYPE tc_plain_total counter\n"), 1);
        assert_line(text, "tc_plain_total 1");
        /* HELP comes before TYPE, and TYPE right before the first sample. */
        assert_true(strstr(text, "# HELP tc_requests_total") <
                    strstr(text, "# TYPE tc_requests_total"));
        assert_non_null(strstr(text, "# TYPE tc_requests_total counter\n"
                                     "tc_requests_total{"));
        free(text);
}

static void test_family_grouped_when_created_interleaved(void **state) {
        metrics_counter_t *x1, *y, *x2;
        char *text;
        const char *p1, *p2, *py;
        (void)state;
        /* x, then another family, then x again: x's series stay together
         * under one HELP/TYPE. */
        x1 = metrics_counter("tf_x_total", "X.", "k=\"1\"");
        y = metrics_counter("tf_y_total", "Y.", "");
        x2 = metrics_counter("tf_x_total", "X.", "k=\"2\"");
        metrics_add(x1, 1);
        metrics_add(y, 1);
        metrics_add(x2, 1);
        text = render();
        assert_int_equal(count(text, "# HELP tf_x_total"), 1);
        assert_int_equal(count(text, "# TYPE tf_x_total"), 1);
        p1 = strstr(text, "tf_x_total{k=\"1\"} 1\n");
        p2 = strstr(text, "tf_x_total{k=\"2\"} 1\n");
        py = strstr(text, "# HELP tf_y_total");
        assert_non_null(p1);
        assert_non_null(p2);
        assert_non_null(py);
        /* Adjacent: the second series follows the first directly. */
        assert_ptr_equal(p2, p1 + strlen("tf_x_total{k=\"1\"} 1\n"));
        assert_true(py < p1 || py > p2);
        free(text);
}

static void test_gauge(void **state) {
        metrics_counter_t *g;
        char *text;
        (void)state;
        g = metrics_gauge("tg_inflight", "Requests in flight.", NULL);
        metrics_set(g, 42);
        assert_int_equal(metrics_value(g), 42);
        metrics_add(g, -50);
        assert_int_equal(metrics_value(g), -8);
        text = render();
        assert_int_equal(
                count(text, "# HELP tg_inflight Requests in flight.\n"), 1);
        assert_int_equal(count(text, "# TYPE tg_inflight gauge\n"), 1);
        assert_line(text, "tg_inflight -8");
        free(text);
        metrics_set(g, 0);
        text = render();
        assert_line(text, "tg_inflight 0");
        free(text);
}

static void test_same_name_and_labels_same_pointer(void **state) {
        metrics_counter_t *a, *b, *c, *n1, *n2;
        metrics_histogram_t *h1, *h2, *h3;
        char *text;
        (void)state;
        a = metrics_counter("ts_total", "First help.", "x=\"1\"");
        b = metrics_counter("ts_total", "Second help is ignored.", "x=\"1\"");
        c = metrics_counter("ts_total", "First help.", "x=\"2\"");
        assert_ptr_equal(a, b);
        assert_true(a != c);
        /* NULL labels and "" are the same series. */
        n1 = metrics_counter("ts_nolabel_total", "None.", NULL);
        n2 = metrics_counter("ts_nolabel_total", "None.", "");
        assert_ptr_equal(n1, n2);
        h1 = metrics_histogram("ts_seconds", "H.", "r=\"a\"");
        h2 = metrics_histogram("ts_seconds", "H.", "r=\"a\"");
        h3 = metrics_histogram("ts_seconds", "H.", "r=\"b\"");
        assert_ptr_equal(h1, h2);
        assert_true(h1 != h3);
        metrics_add(a, 1);
        metrics_add(b, 1);
        assert_int_equal(metrics_value(a), 2);
        text = render();
        assert_int_equal(count(text, "# HELP ts_total First help.\n"), 1);
        assert_int_equal(count(text, "Second help"), 0);
        assert_line(text, "ts_total{x=\"1\"} 2");
        free(text);
}

/* More series than hash buckets: each found again as itself, none mixed up,
 * and a name/labels split is part of the identity. */
static void test_many_series_found_again(void **state) {
        enum { N = 5000 };
        static metrics_counter_t *kept[N];
        char labels[64];
        char *text;
        (void)state;
        for (int i = 0; i < N; i++) {
                snprintf(labels, sizeof(labels), "i=\"%d\"", i);
                kept[i] = metrics_counter("tm_total", "Many.", labels);
                metrics_add(kept[i], i);
        }
        for (int i = N - 1; i >= 0; i--) {
                snprintf(labels, sizeof(labels), "i=\"%d\"", i);
                assert_ptr_equal(metrics_counter("tm_total", "Many.", labels),
                                 kept[i]);
                assert_int_equal(metrics_value(kept[i]), i);
        }
        assert_true(metrics_counter("tm_ab", "S.", "x=\"1\"") !=
                    metrics_counter("tm_a", "S.", "bx=\"1\""));
        text = render();
        assert_line(text, "tm_total{i=\"4999\"} 4999");
        assert_int_equal(count(text, "# TYPE tm_total counter\n"), 1);
        free(text);
}

/* ------------------------------------------------------------------------ */
/* Histograms                                                                */
/* ------------------------------------------------------------------------ */

static const char *le[] = {"0.0005", "0.001", "0.002", "0.005", "0.01",
                           "0.025",  "0.05",  "0.1",   "0.25",  "0.5",
                           "1",      "2.5",   "5",     "10"};
#define N_LE (sizeof(le) / sizeof(le[0]))

static void test_histogram_buckets(void **state) {
        /* 100 us, exactly 500 us (on the first bound), 3 ms, 1 s, 20 s. */
        static const uint64_t obs[] = {100, 500, 3000, 1000000, 20000000};
        static const unsigned want[N_LE] = {2, 2, 2, 3, 3, 3, 3,
                                            3, 3, 3, 4, 4, 4, 4};
        metrics_histogram_t *h;
        char *text, line[256];
        (void)state;
        h = metrics_histogram("th_latency_seconds", "Latency.", "route=\"/x\"");
        for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
                metrics_observe_us(h, obs[i]);
        text = render();
        assert_int_equal(count(text, "# HELP th_latency_seconds Latency.\n"),
                         1);
        assert_int_equal(count(text, "# TYPE th_latency_seconds histogram\n"),
                         1);
        for (size_t i = 0; i < N_LE; i++) {
                snprintf(line, sizeof(line),
                         "th_latency_seconds_bucket{route=\"/x\",le=\"%s\"} %u",
                         le[i], want[i]);
                assert_line(text, line);
        }
        /* +Inf is the count, including what fell beyond the last bound. */
        assert_line(text,
                    "th_latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 5");
        assert_line(text, "th_latency_seconds_count{route=\"/x\"} 5");
        assert_line(text, "th_latency_seconds_sum{route=\"/x\"} 21.003600");
        assert_int_equal(count(text, "th_latency_seconds_bucket{"), N_LE + 1);
        free(text);
}

static void test_histogram_without_labels(void **state) {
        metrics_histogram_t *h;
        char *text;
        (void)state;
        h = metrics_histogram("tn_seconds", "No labels.", "");
        text = render();
        /* Empty histogram: zeros everywhere. */
        assert_line(text, "tn_seconds_bucket{le=\"0.0005\"} 0");
        assert_line(text, "tn_seconds_bucket{le=\"+Inf\"} 0");
        assert_line(text, "tn_seconds_sum 0.000000");
        assert_line(text, "tn_seconds_count 0");
        free(text);
        metrics_observe_us(h, 0);
        metrics_observe_us(h, 10000000); /* exactly 10 s: the last bound */
        text = render();
        assert_line(text, "tn_seconds_bucket{le=\"0.0005\"} 1");
        assert_line(text, "tn_seconds_bucket{le=\"5\"} 1");
        assert_line(text, "tn_seconds_bucket{le=\"10\"} 2");
        assert_line(text, "tn_seconds_bucket{le=\"+Inf\"} 2");
        assert_line(text, "tn_seconds_sum 10.000000");
        assert_line(text, "tn_seconds_count 2");
        free(text);
}

static void test_histogram_buckets_cumulative(void **state) {
        metrics_histogram_t *h;
        char *text, name[64];
        unsigned long long prev = 0, v, total = 0;
        (void)state;
        h = metrics_histogram("tcum_seconds", "Cumulative.", "");
        /* Spread over every bucket, bounds included. */
        for (uint64_t us = 1; us <= 30000000; us = us * 3 + 7) {
                metrics_observe_us(h, us);
                total++;
        }
        text = render();
        for (size_t i = 0; i < N_LE; i++) {
                const char *p;
                snprintf(name, sizeof(name),
                         "\ntcum_seconds_bucket{le=\"%s\"} ", le[i]);
                p = strstr(text, name);
                assert_non_null(p);
                v = strtoull(p + strlen(name), NULL, 10);
                assert_true(v >= prev);
                prev = v;
        }
        {
                const char *p = strstr(text, "\ntcum_seconds_count ");
                assert_non_null(p);
                assert_int_equal(
                        strtoull(p + strlen("\ntcum_seconds_count "), NULL, 10),
                        total);
                assert_true(prev < total); /* some went beyond 10 s */
        }
        free(text);
}

static void test_render_big_output_and_null_len(void **state) {
        char labels[64], *text;
        (void)state;
        /* Enough series to outgrow the first render buffer. */
        for (int i = 0; i < 300; i++) {
                snprintf(labels, sizeof(labels), "i=\"%d\"", i);
                metrics_add(
                        metrics_counter("tbig_total", "Many series.", labels),
                        i);
        }
        text = render();
        assert_int_equal(count(text, "# HELP tbig_total"), 1);
        assert_line(text, "tbig_total{i=\"0\"} 0");
        assert_line(text, "tbig_total{i=\"299\"} 299");
        assert_int_equal(count(text, "\ntbig_total{"), 300);
        free(text);
        text = metrics_render(NULL);
        assert_non_null(text);
        free(text);
}

/* ------------------------------------------------------------------------ */
/* Threads                                                                   */
/* ------------------------------------------------------------------------ */

enum { THREADS = 4, ITERATIONS = 100000 };

static void *worker(void *arg) {
        metrics_counter_t **seen = arg;
        /* Get-or-create races with the other threads: all must get one. */
        metrics_counter_t *c = metrics_counter("tt_total", "Concurrent.", "");
        metrics_histogram_t *h =
                metrics_histogram("tt_seconds", "Concurrent.", "");
        *seen = c;
        for (int i = 0; i < ITERATIONS; i++) {
                metrics_add(c, 1);
                if (i % 10 == 0)
                        metrics_observe_us(h, 1000);
        }
        return NULL;
}

static void test_concurrent_increments(void **state) {
        pthread_t th[THREADS];
        metrics_counter_t *seen[THREADS];
        char *text, line[128];
        (void)state;
        for (int t = 0; t < THREADS; t++)
                assert_int_equal(pthread_create(&th[t], NULL, worker, &seen[t]),
                                 0);
        /* Render while they run: it must not block them or crash. */
        for (int i = 0; i < 20; i++)
                free(render());
        for (int t = 0; t < THREADS; t++)
                assert_int_equal(pthread_join(th[t], NULL), 0);
        for (int t = 1; t < THREADS; t++)
                assert_ptr_equal(seen[t], seen[0]);
        assert_int_equal(metrics_value(seen[0]), THREADS * ITERATIONS);
        text = render();
        snprintf(line, sizeof(line), "tt_total %d", THREADS * ITERATIONS);
        assert_line(text, line);
        snprintf(line, sizeof(line), "tt_seconds_count %d",
                 THREADS * ITERATIONS / 10);
        assert_line(text, line);
        assert_int_equal(count(text, "# TYPE tt_total counter\n"), 1);
        free(text);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_counter_render),
                cmocka_unit_test(test_family_grouped_when_created_interleaved),
                cmocka_unit_test(test_gauge),
                cmocka_unit_test(test_same_name_and_labels_same_pointer),
                cmocka_unit_test(test_many_series_found_again),
                cmocka_unit_test(test_histogram_buckets),
                cmocka_unit_test(test_histogram_without_labels),
                cmocka_unit_test(test_histogram_buckets_cumulative),
                cmocka_unit_test(test_render_big_output_and_null_len),
                cmocka_unit_test(test_concurrent_increments),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
