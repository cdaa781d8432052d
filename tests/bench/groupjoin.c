/*
 * groupjoin.c - join and rebalance times of a consumer group under the
 * classic protocol (cooperative-sticky, as shared/bus_consumer.c configures it)
 * and under KIP-848's consumer protocol (group.protocol=consumer, the
 * broker assigns), measured side by side in one run.
 *
 *   bench-groupjoin [-b BROKERS] [-p PARTITIONS] [-r ROUNDS] [-x PREFIX]
 *
 * Each round, for each protocol, on a topic of PARTITIONS partitions (8, as
 * auth.commands) and a new group:
 *   join    member A subscribes: until it owns every partition;
 *   second  member B subscribes: until A and B own half each;
 *   leave   B closes (consumer_close, a graceful leave): until A owns
 *           every partition again.
 * Every member is polled by a thread of its own, every 10 ms, as a
 * runtime's consumer loop is. Prints each round, then the medians and the
 * ratio consumer / classic (below 1: the consumer protocol is faster).
 * Kafka only (compose/local/infra up); the topic is deleted at the end.
 */
#define _GNU_SOURCE
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define GJ_ROUNDS_MAX 50
#define GJ_WAIT_MS 60000

enum { GJ_CLASSIC, GJ_CONSUMER, GJ_PROTOCOLS };
static const char *const gj_protocol_names[GJ_PROTOCOLS] = {"classic",
                                                            "consumer"};
enum { GJ_JOIN, GJ_SECOND, GJ_LEAVE, GJ_STEPS };
static const char *const gj_step_names[GJ_STEPS] = {"join", "second", "leave"};

typedef struct gj_member {
        rd_kafka_t *rk;
        pthread_t thread;
        atomic_int owned;  /* partitions assigned now */
        atomic_bool leave; /* the thread closes the consumer and ends */
        atomic_bool failed;
} gj_member_t;

static double gj_now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void gj_sleep_ms(int ms) {
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

/* Incremental (cooperative) in both protocols: add or remove what changes. */
static void gj_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                            rd_kafka_topic_partition_list_t *parts,
                            void *opaque) {
        gj_member_t *m = opaque;
        rd_kafka_error_t *e;
        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                e = rd_kafka_incremental_assign(rk, parts);
                if (!e)
                        atomic_fetch_add(&m->owned, parts->cnt);
        } else {
                e = rd_kafka_incremental_unassign(rk, parts);
                if (!e)
                        atomic_fetch_sub(&m->owned, parts->cnt);
        }
        if (e) {
                fprintf(stderr, "groupjoin: %s\n", rd_kafka_error_string(e));
                atomic_store(&m->failed, true);
                rd_kafka_error_destroy(e);
        }
}

static void *gj_poll_loop(void *arg) {
        gj_member_t *m = arg;
        while (!atomic_load(&m->leave)) {
                rd_kafka_message_t *msg = rd_kafka_consumer_poll(m->rk, 10);
                if (msg)
                        rd_kafka_message_destroy(msg);
        }
        rd_kafka_consumer_close(m->rk);
        rd_kafka_destroy(m->rk);
        return NULL;
}

static int gj_set(rd_kafka_conf_t *conf, const char *k, const char *v) {
        char err[256];
        if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) == RD_KAFKA_CONF_OK)
                return 0;
        fprintf(stderr, "groupjoin: %s=%s: %s\n", k, v, err);
        return -1;
}

/* A member of `group` subscribed to `topic`, polled by its own thread. */
static int gj_member_start(gj_member_t *m, int protocol, const char *brokers,
                           const char *group, const char *topic) {
        char err[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_topic_partition_list_t *subs;
        int bad = gj_set(conf, "bootstrap.servers", brokers) ||
                  gj_set(conf, "group.id", group) ||
                  gj_set(conf, "enable.auto.commit", "false") ||
                  gj_set(conf, "fetch.wait.max.ms", "100");
        if (protocol == GJ_CLASSIC)
                /* shared/bus_consumer.c's settings. */
                bad = bad ||
                      gj_set(conf, "partition.assignment.strategy",
                             "cooperative-sticky") ||
                      gj_set(conf, "session.timeout.ms", "10000") ||
                      gj_set(conf, "heartbeat.interval.ms", "1000");
        else
                /* Session and heartbeat are the broker's settings here;
                 * the broker assigns (uniform: Kafka's default), always
                 * incrementally. */
                bad = bad || gj_set(conf, "group.protocol", "consumer") ||
                      gj_set(conf, "group.remote.assignor", "uniform");
        if (bad) {
                rd_kafka_conf_destroy(conf);
                return -1;
        }
        memset(m, 0, sizeof(*m));
        rd_kafka_conf_set_opaque(conf, m);
        rd_kafka_conf_set_rebalance_cb(conf, gj_rebalance_cb);
        m->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        if (!m->rk) {
                fprintf(stderr, "groupjoin: %s\n", err);
                rd_kafka_conf_destroy(conf);
                return -1;
        }
        rd_kafka_poll_set_consumer(m->rk);
        subs = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(subs, topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_subscribe(m->rk, subs);
        rd_kafka_topic_partition_list_destroy(subs);
        if (pthread_create(&m->thread, NULL, gj_poll_loop, m)) {
                rd_kafka_destroy(m->rk);
                return -1;
        }
        return 0;
}

static void gj_member_leave(gj_member_t *m) {
        atomic_store(&m->leave, true);
        pthread_join(m->thread, NULL);
}

/* Milliseconds from t0 until a owns want_a and (b NULL or) b owns want_b;
 * -1 after GJ_WAIT_MS. */
static double gj_until(double t0, gj_member_t *a, int want_a, gj_member_t *b,
                       int want_b) {
        while (gj_now_ms() - t0 < GJ_WAIT_MS) {
                if (atomic_load(&a->owned) == want_a &&
                    (!b || atomic_load(&b->owned) == want_b))
                        return gj_now_ms() - t0;
                if (atomic_load(&a->failed) || (b && atomic_load(&b->failed)))
                        return -1;
                gj_sleep_ms(1);
        }
        return -1;
}

/* One round of one protocol: the three times into ms[]; 0 or -1. */
static int gj_round(int protocol, const char *brokers, const char *topic,
                    int partitions, const char *group, double ms[GJ_STEPS]) {
        gj_member_t a, b;
        double t0;
        int rc = 0;

        t0 = gj_now_ms();
        if (gj_member_start(&a, protocol, brokers, group, topic))
                return -1;
        ms[GJ_JOIN] = gj_until(t0, &a, partitions, NULL, 0);
        t0 = gj_now_ms();
        if (gj_member_start(&b, protocol, brokers, group, topic)) {
                gj_member_leave(&a);
                return -1;
        }
        ms[GJ_SECOND] = gj_until(t0, &a, partitions / 2, &b,
                                 partitions - partitions / 2);
        t0 = gj_now_ms();
        gj_member_leave(&b);
        ms[GJ_LEAVE] = gj_until(t0, &a, partitions, NULL, 0);
        gj_member_leave(&a);
        for (int s = 0; s < GJ_STEPS; s++)
                if (ms[s] < 0)
                        rc = -1;
        return rc;
}

static int gj_admin(const char *brokers, const char *topic, int partitions,
                    bool create) {
        char err[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_t *rk;
        rd_kafka_queue_t *q;
        rd_kafka_event_t *ev;
        int rc = -1;
        if (gj_set(conf, "bootstrap.servers", brokers)) {
                rd_kafka_conf_destroy(conf);
                return -1;
        }
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        if (!rk) {
                fprintf(stderr, "groupjoin: %s\n", err);
                rd_kafka_conf_destroy(conf);
                return -1;
        }
        q = rd_kafka_queue_new(rk);
        if (create) {
                rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(
                        topic, partitions, 1, err, sizeof(err));
                rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
                rd_kafka_NewTopic_destroy(nt);
        } else {
                rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);
                rd_kafka_DeleteTopics(rk, &dt, 1, NULL, q);
                rd_kafka_DeleteTopic_destroy(dt);
        }
        ev = rd_kafka_queue_poll(q, 30000);
        if (ev && !rd_kafka_event_error(ev))
                rc = 0;
        else
                fprintf(stderr, "groupjoin: %s %s: %s\n",
                        create ? "create" : "delete", topic,
                        ev ? rd_kafka_event_error_string(ev) : "timed out");
        if (ev)
                rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(q);
        rd_kafka_destroy(rk);
        return rc;
}

static int gj_cmp(const void *x, const void *y) {
        double a = *(const double *)x, b = *(const double *)y;
        return (a > b) - (a < b);
}

static double gj_median(double *v, int n) {
        qsort(v, (size_t)n, sizeof(*v), gj_cmp);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv) {
        const char *brokers = "127.0.0.1:9092", *prefix = NULL;
        int partitions = 8, rounds = 5, opt, ok[GJ_PROTOCOLS] = {0, 0};
        static double ms[GJ_PROTOCOLS][GJ_STEPS][GJ_ROUNDS_MAX];
        char topic[200], auto_prefix[64];
        double med[GJ_PROTOCOLS][GJ_STEPS];

        while ((opt = getopt(argc, argv, "b:p:r:x:")) != -1) {
                switch (opt) {
                case 'b':
                        brokers = optarg;
                        break;
                case 'p':
                        partitions = atoi(optarg);
                        break;
                case 'r':
                        rounds = atoi(optarg);
                        break;
                case 'x':
                        prefix = optarg;
                        break;
                default:
                        fprintf(stderr,
                                "usage: %s [-b BROKERS] [-p PARTITIONS] "
                                "[-r ROUNDS] [-x PREFIX]\n",
                                argv[0]);
                        return 2;
                }
        }
        if (partitions < 2 || rounds < 1 || rounds > GJ_ROUNDS_MAX) {
                fprintf(stderr, "groupjoin: 2+ partitions, 1..%d rounds\n",
                        GJ_ROUNDS_MAX);
                return 2;
        }
        if (!prefix) {
                snprintf(auto_prefix, sizeof(auto_prefix), "benchgj%ld.",
                         (long)getpid());
                prefix = auto_prefix;
        }
        snprintf(topic, sizeof(topic), "%sgroupjoin", prefix);
        if (gj_admin(brokers, topic, partitions, true))
                return 1;
        gj_sleep_ms(2000); /* leaders elected, metadata spread */
        printf("librdkafka %s, %d partitions, %d rounds, topic %s\n",
               rd_kafka_version_str(), partitions, rounds, topic);
        printf("| round | protocol | join ms | second ms | leave ms |\n"
               "| --- | --- | --- | --- | --- |\n");
        fflush(stdout);
        /* Alternate the protocols within each round: both meet the same
         * machine load. */
        for (int r = 0; r < rounds; r++) {
                for (int p = 0; p < GJ_PROTOCOLS; p++) {
                        char group[256];
                        double t[GJ_STEPS] = {-1, -1, -1};
                        snprintf(group, sizeof(group), "%sgj-%s-%d", prefix,
                                 gj_protocol_names[p], r);
                        if (gj_round(p, brokers, topic, partitions, group, t)) {
                                printf("| %d | %s | failed (%.0f, %.0f, %.0f) "
                                       "| | |\n",
                                       r + 1, gj_protocol_names[p], t[0], t[1],
                                       t[2]);
                                continue;
                        }
                        for (int s = 0; s < GJ_STEPS; s++)
                                ms[p][s][ok[p]] = t[s];
                        ok[p]++;
                        printf("| %d | %s | %.0f | %.0f | %.0f |\n", r + 1,
                               gj_protocol_names[p], t[0], t[1], t[2]);
                        fflush(stdout);
                }
        }
        gj_admin(brokers, topic, partitions, false);
        if (!ok[GJ_CLASSIC] || !ok[GJ_CONSUMER]) {
                printf("\nno ratio: a protocol never completed a round\n");
                return 1;
        }
        printf("\n| step | classic ms (median of %d) | consumer ms (median of "
               "%d) | consumer / classic |\n| --- | --- | --- | --- |\n",
               ok[GJ_CLASSIC], ok[GJ_CONSUMER]);
        for (int s = 0; s < GJ_STEPS; s++) {
                for (int p = 0; p < GJ_PROTOCOLS; p++)
                        med[p][s] = gj_median(ms[p][s], ok[p]);
                printf("| %s | %.0f | %.0f | %.2f |\n", gj_step_names[s],
                       med[GJ_CLASSIC][s], med[GJ_CONSUMER][s],
                       med[GJ_CONSUMER][s] / med[GJ_CLASSIC][s]);
        }
        return ok[GJ_CLASSIC] == rounds && ok[GJ_CONSUMER] == rounds ? 0 : 1;
}
