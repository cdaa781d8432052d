/*
 * test_bus.c - unit tests of the group consumer (shared/bus.c) against
 * librdkafka's in-process mock cluster: offsets stored by the caller are
 * committed by the poll loop itself, and a consumer fenced by its group
 * (or a producer broken for good) says so instead of going on silently.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "msgid.h"

#define TOPIC "unit.commands"
#define RB_TOPIC "unit.rebalance"
#define LAG_TOPIC "unit.lag"
#define JOIN_TOPIC "unit.join"
#define PARTITIONS 2
#define API_HEARTBEAT 12  /* Kafka protocol ApiKey of Heartbeat */
#define API_SYNC_GROUP 14 /* and of SyncGroup */

typedef struct {
        rd_kafka_t *producer; /* owns the mock cluster */
        rd_kafka_mock_cluster_t *mock;
        config_t cfg;
} fixture_t;

static const char *no_env(const char *name) {
        (void)name;
        return NULL;
}

static int setup(void **state) {
        static fixture_t fx;
        char err[256];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char *argv[] = {"test_bus", NULL};

        memset(&fx, 0, sizeof(fx));
        assert_int_equal(rd_kafka_conf_set(conf, "test.mock.num.brokers", "1",
                                           err, sizeof(err)),
                         RD_KAFKA_CONF_OK);
        fx.producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        assert_non_null(fx.producer);
        fx.mock = rd_kafka_handle_mock_cluster(fx.producer);
        assert_non_null(fx.mock);
        /* The mock broker waits 3 s before the first rebalance of a group,
         * as a real one configured so would: no test here is about that
         * delay, and each group pays it. */
        rd_kafka_mock_group_initial_rebalance_delay_ms(fx.mock, 0);
        assert_int_equal(
                rd_kafka_mock_topic_create(fx.mock, TOPIC, PARTITIONS, 1),
                RD_KAFKA_RESP_ERR_NO_ERROR);
        assert_int_equal(config_load(&fx.cfg,
                                     CONFIG_SCOPE_COMMON | CONFIG_SCOPE_GROUP,
                                     "test_bus", 1, argv, NULL, no_env, NULL,
                                     err, sizeof(err)),
                         CONFIG_OK);
        free(fx.cfg.kafka_brokers);
        fx.cfg.kafka_brokers =
                strdup(rd_kafka_mock_cluster_bootstraps(fx.mock));
        *state = &fx;
        return 0;
}

static int teardown(void **state) {
        fixture_t *fx = *state;
        config_deinit(&fx->cfg);
        rd_kafka_destroy(fx->producer);
        return 0;
}

static void produce_to(fixture_t *fx, const char *topic, int32_t partition,
                       int n) {
        for (int i = 0; i < n; i++) {
                char v[32];
                snprintf(v, sizeof(v), "m%d", i);
                assert_int_equal(
                        rd_kafka_producev(
                                fx->producer, RD_KAFKA_V_TOPIC(topic),
                                RD_KAFKA_V_PARTITION(partition),
                                RD_KAFKA_V_VALUE(v, strlen(v)),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_END),
                        RD_KAFKA_RESP_ERR_NO_ERROR);
        }
        assert_int_equal(rd_kafka_flush(fx->producer, 10000),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void produce(fixture_t *fx, int n) {
        produce_to(fx, TOPIC, 0, n);
}

/* The offset committed for `partition` of `topic` in `group`, read with a
 * handle of its own (it never joins). */
static int64_t committed_at(fixture_t *fx, const char *group, const char *topic,
                            int32_t partition) {
        char err[256];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_t *rk;
        rd_kafka_topic_partition_list_t *parts;
        int64_t off;
        rd_kafka_conf_set(conf, "bootstrap.servers", fx->cfg.kafka_brokers, err,
                          sizeof(err));
        rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err));
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        assert_non_null(rk);
        parts = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(parts, topic, partition);
        assert_int_equal(rd_kafka_committed(rk, parts, 10000),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        off = parts->elems[0].offset;
        rd_kafka_topic_partition_list_destroy(parts);
        rd_kafka_destroy(rk);
        return off;
}

static int64_t committed(fixture_t *fx, const char *group) {
        return committed_at(fx, group, TOPIC, 0);
}

/* Poll until `want` messages were read (each marked done) or `ms` passed. */
static int consume(bus_consumer_t *c, int want, int ms) {
        int got = 0;
        uint64_t end = clock_mono_ms() + (uint64_t)ms;
        while (got < want && clock_mono_ms() < end) {
                rd_kafka_message_t *m = bus_consumer_poll(c, 100);
                if (!m)
                        continue;
                bus_consumer_done(c, m);
                rd_kafka_message_destroy(m);
                got++;
        }
        return got;
}

/* Poll for `ms` without expecting anything. */
static void idle(bus_consumer_t *c, int ms) {
        uint64_t end = clock_mono_ms() + (uint64_t)ms;
        while (clock_mono_ms() < end) {
                rd_kafka_message_t *m = bus_consumer_poll(c, 50);
                if (m)
                        rd_kafka_message_destroy(m);
        }
}

static void test_poll_commits_what_is_done(void **state) {
        fixture_t *fx = *state;
        char err[256];
        bus_consumer_t *c;

        produce(fx, 5);
        c = bus_consumer_new(&fx->cfg, "unit-commit", "unit", TOPIC, err,
                             sizeof(err));
        assert_non_null(c);
        assert_int_equal(consume(c, 5, 20000), 5);
        /* No commit by librdkafka's timer any more: the poll loop sends the
         * stored offsets while the consumer still runs (once a second, when
         * the group is steady). */
        for (int i = 0; i < 30 && committed(fx, "unit-commit") != 5; i++)
                idle(c, 500);
        assert_int_equal(committed(fx, "unit-commit"), 5);
        assert_false(bus_consumer_failed(c));
        bus_consumer_destroy(c);
}

/* Read with whichever of a and b gets it, marking each done, until `want`
 * messages were read or `ms` passed. */
static int consume_two(bus_consumer_t *a, bus_consumer_t *b, int want, int ms) {
        int got = 0;
        uint64_t end = clock_mono_ms() + (uint64_t)ms;
        while (got < want && clock_mono_ms() < end) {
                bus_consumer_t *cs[2] = {a, b};
                for (int i = 0; i < 2; i++) {
                        rd_kafka_message_t *m = bus_consumer_poll(cs[i], 50);
                        if (!m)
                                continue;
                        bus_consumer_done(cs[i], m);
                        rd_kafka_message_destroy(m);
                        got++;
                }
        }
        return got;
}

/* Poll both (nothing marked done) until `ok` holds or `ms` passed. */
static bool idle_until(bus_consumer_t *a, bus_consumer_t *b, bool (*ok)(void),
                       int ms) {
        uint64_t end = clock_mono_ms() + (uint64_t)ms;
        while (!ok() && clock_mono_ms() < end) {
                idle(a, 100);
                if (b)
                        idle(b, 100);
        }
        return ok();
}

/* The partitions the consumers labelled `label` own now. */
static int64_t owned(const char *label) {
        char labels[160];
        snprintf(labels, sizeof(labels), "group=\"%s\"", label);
        return metrics_value(
                metrics_gauge("omnify_assigned_partitions", "", labels));
}

static bus_consumer_t *rb_a, *rb_b;

/* One partition each, and both members steady by librdkafka's own log (so
 * commits are gated on the join state, not on the fallback quiet time). */
static bool rb_settled(void) {
        return owned("unit-rb") == 1 && owned("unit-rb-b") == 1 &&
               bus_consumer_steady(rb_a) && bus_consumer_steady(rb_b);
}

/* Both partitions of RB_TOPIC committed up to `n` in group unit-rb. */
static bool rb_committed(fixture_t *fx, int64_t n) {
        return committed_at(fx, "unit-rb", RB_TOPIC, 0) == n &&
               committed_at(fx, "unit-rb", RB_TOPIC, 1) == n;
}

/* A second member joins: the group rebalances (cooperatively, in two
 * rounds), commits are held while it does and resume after it, and none of
 * them is refused. */
static void test_commits_resume_after_a_rebalance(void **state) {
        fixture_t *fx = *state;
        char err[256];
        bus_consumer_t *a, *b;
        metrics_counter_t *failed = metrics_counter(
                "omnify_commit_failures_total", "", "group=\"unit-rb\"");

        assert_int_equal(rd_kafka_mock_topic_create(fx->mock, RB_TOPIC, 2, 1),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        a = bus_consumer_new(&fx->cfg, "unit-rb", "unit-rb", RB_TOPIC, err,
                             sizeof(err));
        assert_non_null(a);
        produce_to(fx, RB_TOPIC, 0, 3);
        produce_to(fx, RB_TOPIC, 1, 3);
        assert_int_equal(consume(a, 6, 20000), 6);
        for (int i = 0; i < 30 && !rb_committed(fx, 3); i++)
                idle(a, 500);
        assert_true(rb_committed(fx, 3));

        /* Same group, its own label (metrics) so each member's share
         * shows. */
        b = bus_consumer_new(&fx->cfg, "unit-rb", "unit-rb-b", RB_TOPIC, err,
                             sizeof(err));
        assert_non_null(b);
        /* The rebalance, both rounds: one partition each, both steady. */
        rb_a = a;
        rb_b = b;
        assert_true(idle_until(a, b, rb_settled, 60000));
        produce_to(fx, RB_TOPIC, 0, 3);
        produce_to(fx, RB_TOPIC, 1, 3);
        assert_int_equal(consume_two(a, b, 6, 20000), 6);
        for (int i = 0; i < 30 && !rb_committed(fx, 6); i++)
                consume_two(a, b, 1, 500);
        assert_true(rb_committed(fx, 6));
        assert_int_equal(metrics_value(failed), 0);
        assert_int_equal(
                metrics_value(metrics_counter("omnify_commit_failures_total",
                                              "", "group=\"unit-rb-b\"")),
                0);
        bus_consumer_destroy(b);
        bus_consumer_destroy(a);
}

/* The lag a process reports for a partition of LAG_TOPIC, consumed under
 * `label`. */
static int64_t lag_of(const char *label, int partition) {
        char labels[200];
        snprintf(labels, sizeof(labels),
                 "group=\"%s\",topic=\"%s\",partition=\"%d\"", label, LAG_TOPIC,
                 partition);
        return metrics_value(metrics_gauge("omnify_consumer_lag", "", labels));
}

static bool a_lags_on_both(void) {
        return lag_of("lag-a", 0) == 5 && lag_of("lag-a", 1) == 5;
}

static bool b_lags_on_one(void) {
        return lag_of("lag-b", 0) + lag_of("lag-b", 1) == 5;
}

/* A partition's lag is reported by its owner only: the member that gave it
 * away reports 0 for it, so a sum over processes stays true. */
static void test_lag_follows_the_partition(void **state) {
        fixture_t *fx = *state;
        char err[256];
        bus_consumer_t *a, *b;

        assert_int_equal(rd_kafka_mock_topic_create(fx->mock, LAG_TOPIC, 2, 1),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        a = bus_consumer_new(&fx->cfg, "unit-lag", "lag-a", LAG_TOPIC, err,
                             sizeof(err));
        assert_non_null(a);
        produce_to(fx, LAG_TOPIC, 0, 1);
        produce_to(fx, LAG_TOPIC, 1, 1);
        assert_int_equal(consume(a, 2, 20000), 2);
        /* Five more on each partition, read but never done: 5 behind. */
        produce_to(fx, LAG_TOPIC, 0, 5);
        produce_to(fx, LAG_TOPIC, 1, 5);
        assert_true(idle_until(a, NULL, a_lags_on_both, 20000));

        b = bus_consumer_new(&fx->cfg, "unit-lag", "lag-b", LAG_TOPIC, err,
                             sizeof(err));
        assert_non_null(b);
        assert_true(idle_until(a, b, b_lags_on_one, 30000));
        for (int p = 0; p < 2; p++)
                assert_int_equal(lag_of("lag-a", p) + lag_of("lag-b", p), 5);
        bus_consumer_destroy(b);
        bus_consumer_destroy(a);
}

static bool join_a_owns_both(void) {
        return owned("join-a") == 2;
}

/* A member stopped in the middle of its join, at every moment of it (from
 * before its JoinGroup to after its first assignment), is destroyed
 * outright and leaves the group to the one that stays. librdkafka 2.0
 * aborted in rd_kafka_destroy when the member had its JoinGroup answered
 * but not yet its SyncGroup (sticky assignor without state: issue #4312,
 * fixed in 2.3), so bus.c kept such handles until exit. Here the broker
 * answers each round's SyncGroups 2 s late, so several of the stops fall in
 * that window. */
static void test_destroy_while_joining(void **state) {
        fixture_t *fx = *state;
        char err[256];
        static const int delays_ms[] = {0, 300, 800, 1400, 2200, 4000};
        metrics_counter_t *b_assigned =
                metrics_counter("omnify_rebalances_total", "",
                                "group=\"join-b\",kind=\"assign\"");
        int before_first_assignment = 0;
        bus_consumer_t *a;

        assert_int_equal(rd_kafka_mock_topic_create(fx->mock, JOIN_TOPIC, 2, 1),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        a = bus_consumer_new(&fx->cfg, "unit-join", "join-a", JOIN_TOPIC, err,
                             sizeof(err));
        assert_non_null(a);
        assert_true(idle_until(a, NULL, join_a_owns_both, 30000));
        for (size_t i = 0; i < sizeof(delays_ms) / sizeof(delays_ms[0]); i++) {
                int64_t assigned = metrics_value(b_assigned);
                uint64_t end = clock_mono_ms() + (uint64_t)delays_ms[i];
                bus_consumer_t *b;
                /* The SyncGroups of the round b starts (a's and b's). */
                rd_kafka_mock_broker_push_request_error_rtts(
                        fx->mock, 1, API_SYNC_GROUP, 2,
                        RD_KAFKA_RESP_ERR_NO_ERROR, 2000,
                        RD_KAFKA_RESP_ERR_NO_ERROR, 2000);
                b = bus_consumer_new(&fx->cfg, "unit-join", "join-b",
                                     JOIN_TOPIC, err, sizeof(err));
                assert_non_null(b);
                do {
                        rd_kafka_message_t *m = bus_consumer_poll(a, 10);
                        if (m)
                                rd_kafka_message_destroy(m);
                        m = bus_consumer_poll(b, 10);
                        if (m)
                                rd_kafka_message_destroy(m);
                } while (clock_mono_ms() < end);
                if (metrics_value(b_assigned) == assigned)
                        before_first_assignment++;
                bus_consumer_destroy(b);
        }
        /* The early stops did hit the window this is about. */
        assert_true(before_first_assignment >= 3);
        assert_true(idle_until(a, NULL, join_a_owns_both, 60000));
        assert_false(bus_consumer_failed(a));
        bus_consumer_destroy(a);
}

static void test_nothing_done_nothing_committed(void **state) {
        fixture_t *fx = *state;
        char err[256];
        bus_consumer_t *c = bus_consumer_new(&fx->cfg, "unit-nothing", "unit",
                                             TOPIC, err, sizeof(err));
        assert_non_null(c);
        /* Read, but never marked done: the offsets must not move. */
        for (int i = 0; i < 30; i++) {
                rd_kafka_message_t *m = bus_consumer_poll(c, 100);
                if (m)
                        rd_kafka_message_destroy(m);
        }
        idle(c, 1000);
        assert_true(committed(fx, "unit-nothing") < 0);
        bus_consumer_destroy(c);
}

static void test_fenced_member_reports_failure(void **state) {
        fixture_t *fx = *state;
        char err[256];
        bus_consumer_t *c;

        free(fx->cfg.instance_id);
        fx->cfg.instance_id = strdup("unit-static-0");
        c = bus_consumer_new(&fx->cfg, "unit-fenced", "unit", TOPIC, err,
                             sizeof(err));
        assert_non_null(c);
        produce(fx, 1);
        assert_true(consume(c, 1, 20000) >= 1);
        assert_false(bus_consumer_failed(c));
        /* The broker fences this static member (another process took its
         * group.instance.id): librdkafka's consumer is then unusable. */
        rd_kafka_mock_push_request_errors(fx->mock, API_HEARTBEAT, 1,
                                          RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID);
        for (int i = 0; i < 100 && !bus_consumer_failed(c); i++)
                idle(c, 100);
        assert_true(bus_consumer_failed(c));
        bus_consumer_destroy(c);
        free(fx->cfg.instance_id);
        fx->cfg.instance_id = strdup("");
}

static void test_fatal_producer_error_is_reported(void **state) {
        fixture_t *fx = *state;
        char err[256];
        bus_t *bus = bus_new(&fx->cfg, "unit-producer", err, sizeof(err));
        assert_non_null(bus);
        assert_false(bus_failed(bus));
        /* What librdkafka raises when the idempotent producer's sequence
         * can no longer be trusted: it never sends again. */
        assert_int_equal(rd_kafka_test_fatal_error(
                                 bus_handle(bus),
                                 RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                 "unit test"),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        for (int i = 0; i < 100 && !bus_failed(bus); i++) {
                struct timespec ts = {0, 50 * 1000000L};
                nanosleep(&ts, NULL);
        }
        assert_true(bus_failed(bus));
        bus_destroy(bus);
}

/* A consumer of two topics reads both, a batch poll takes what is fetched,
 * never more than it is given room for. */
#define MULTI_A "unit.multi.a"
#define MULTI_B "unit.multi.b"
static void test_multi_topic_batch_and_room(void **state) {
        fixture_t *fx = *state;
        char err[256];
        const char *topics[] = {MULTI_A, MULTI_B};
        rd_kafka_message_t *msgs[64];
        bus_consumer_t *c;
        int got = 0, from_b = 0;
        uint64_t end;

        assert_int_equal(rd_kafka_mock_topic_create(fx->mock, MULTI_A, 1, 1),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        assert_int_equal(rd_kafka_mock_topic_create(fx->mock, MULTI_B, 1, 1),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        produce_to(fx, MULTI_A, 0, 10);
        produce_to(fx, MULTI_B, 0, 10);
        c = bus_consumer_new_multi(&fx->cfg, "unit-multi", "multi", topics, 2,
                                   err, sizeof(err));
        assert_non_null(c);
        end = clock_mono_ms() + 20000;
        while (got < 20 && clock_mono_ms() < end) {
                size_t n = bus_consumer_poll_batch(c, msgs, 64, 100);
                for (size_t i = 0; i < n; i++) {
                        if (strcmp(rd_kafka_topic_name(msgs[i]->rkt),
                                   MULTI_B) == 0)
                                from_b++;
                        bus_consumer_done(c, msgs[i]);
                        rd_kafka_message_destroy(msgs[i]);
                }
                got += (int)n;
        }
        assert_int_equal(got, 20);
        assert_int_equal(from_b, 10);

        /* A poll takes at most what it is given room for (the runtime's
         * loop bounds what it holds so); the rest come with the next. */
        produce_to(fx, MULTI_A, 0, 5);
        got = 0;
        end = clock_mono_ms() + 20000;
        while (got < 5 && clock_mono_ms() < end) {
                size_t n = bus_consumer_poll_batch(c, msgs, 2, 100);
                assert_true(n <= 2);
                for (size_t i = 0; i < n; i++)
                        rd_kafka_message_destroy(msgs[i]);
                got += (int)n;
        }
        assert_int_equal(got, 5);
        bus_consumer_destroy(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_poll_commits_what_is_done),
                cmocka_unit_test(test_commits_resume_after_a_rebalance),
                cmocka_unit_test(test_lag_follows_the_partition),
                cmocka_unit_test(test_nothing_done_nothing_committed),
                cmocka_unit_test(test_fenced_member_reports_failure),
                cmocka_unit_test(test_fatal_producer_error_is_reported),
                cmocka_unit_test(test_multi_topic_batch_and_room),
                /* Last: the SyncGroup delays it leaves unused slow down
                 * later rounds. */
                cmocka_unit_test(test_destroy_while_joining),
        };
        /* Line by line: an abort inside librdkafka must not eat the last
         * log lines. */
        setvbuf(stdout, NULL, _IOLBF, 0);
        /* One test or a few: TEST_BUS_FILTER=test_destroy* */
        if (getenv("TEST_BUS_FILTER"))
                cmocka_set_test_filter(getenv("TEST_BUS_FILTER"));
        if (getenv("TEST_BUS_DEBUG"))
                log_init(LOG_LEVEL_DEBUG, "test_bus");
        return cmocka_run_group_tests(tests, setup, teardown);
}
