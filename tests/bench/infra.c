/*
 * tests/bench/infra.c - bench-infra: what tests/bench/infra needs besides
 * the binaries under test.
 *
 *   bench-infra setup -b BROKERS -p PREFIX -t TOPICS -g GROUPS [-P PARTS]
 *                     [-m MESSAGES]
 *       creates TOPICS topics <PREFIX>bench.tNNNNN of PARTS partitions
 *       (1), writes MESSAGES messages (4) to each partition, and commits
 *       for each of GROUPS consumer groups <PREFIX>bench.gNNN an offset of
 *       MESSAGES / 2 on every partition of its share of the topics (topic i
 *       belongs to group i % GROUPS): every group has committed offsets and
 *       lag, and no members.
 *   bench-infra beat [-i MS]
 *       heartbeats of group "infrastructure" every MS (1000) on the
 *       cluster and prefix of OMNIFY_KAFKA_BROKERS and OMNIFY_TOPIC_PREFIX,
 *       until SIGTERM: the sampler's clock (it samples on an
 *       infrastructure process's beat, every 5 s otherwise), so a run
 *       takes one sample a second (OMNIFY_INFRA_SAMPLE_S=1).
 *   bench-infra cleanup -b BROKERS -p PREFIX
 *       deletes the topics and consumer groups whose name starts with
 *       PREFIX (a phase's, once measured: the broker's data outlives
 *       `compose/local/infra down`).
 */
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "config.h"
#include "heartbeat.h"
#include "log.h"

#define BI_BATCH 250 /* topics per CreateTopics request */

static volatile sig_atomic_t bi_stop;
static atomic_uint_fast64_t bi_handled; /* none: a clock only */

static void bi_on_signal(int sig) {
        (void)sig;
        bi_stop = 1;
}

static int bi_set(rd_kafka_conf_t *conf, const char *k, const char *v) {
        char err[256];
        if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) !=
            RD_KAFKA_CONF_OK) {
                fprintf(stderr, "bench-infra: %s: %s\n", k, err);
                return -1;
        }
        return 0;
}

static rd_kafka_t *bi_client(rd_kafka_type_t type, const char *brokers,
                             const char *group) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char err[256];
        rd_kafka_t *rk;
        if (bi_set(conf, "bootstrap.servers", brokers) ||
            (type == RD_KAFKA_PRODUCER && bi_set(conf, "linger.ms", "20")) ||
            (group && (bi_set(conf, "group.id", group) ||
                       bi_set(conf, "enable.auto.commit", "false")))) {
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        rk = rd_kafka_new(type, conf, err, sizeof(err));
        if (!rk)
                fprintf(stderr, "bench-infra: client: %s\n", err);
        return rk;
}

/* Create topics [from, to); those that exist already are fine. */
static int bi_create(rd_kafka_t *rk, const char *prefix, int from, int to,
                     int parts) {
        rd_kafka_NewTopic_t *nt[BI_BATCH];
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_AdminOptions_t *o =
                rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
        rd_kafka_event_t *ev;
        char name[256], err[256];
        int n = to - from, rc = 0;
        rd_kafka_AdminOptions_set_request_timeout(o, 60000, err, sizeof(err));
        for (int i = 0; i < n; i++) {
                snprintf(name, sizeof(name), "%sbench.t%05d", prefix, from + i);
                nt[i] = rd_kafka_NewTopic_new(name, parts, 1, err, sizeof(err));
        }
        rd_kafka_CreateTopics(rk, nt, (size_t)n, o, q);
        ev = rd_kafka_queue_poll(q, 90000);
        if (!ev || rd_kafka_event_error(ev)) {
                fprintf(stderr, "bench-infra: CreateTopics: %s\n",
                        ev ? rd_kafka_event_error_string(ev) : "timeout");
                rc = -1;
        } else {
                size_t cnt;
                const rd_kafka_topic_result_t **res =
                        rd_kafka_CreateTopics_result_topics(
                                rd_kafka_event_CreateTopics_result(ev), &cnt);
                for (size_t i = 0; i < cnt; i++) {
                        rd_kafka_resp_err_t e =
                                rd_kafka_topic_result_error(res[i]);
                        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                                fprintf(stderr, "bench-infra: %s: %s\n",
                                        rd_kafka_topic_result_name(res[i]),
                                        rd_kafka_err2str(e));
                                rc = -1;
                        }
                }
        }
        if (ev)
                rd_kafka_event_destroy(ev);
        for (int i = 0; i < n; i++)
                rd_kafka_NewTopic_destroy(nt[i]);
        rd_kafka_AdminOptions_destroy(o);
        rd_kafka_queue_destroy(q);
        return rc;
}

static int bi_produce(rd_kafka_t *rk, const char *prefix, int topics, int parts,
                      int messages) {
        char name[256];
        for (int t = 0; t < topics; t++) {
                snprintf(name, sizeof(name), "%sbench.t%05d", prefix, t);
                for (int p = 0; p < parts; p++)
                        for (int m = 0; m < messages; m++) {
                                rd_kafka_resp_err_t e;
                                while ((e = rd_kafka_producev(
                                                rk, RD_KAFKA_V_TOPIC(name),
                                                RD_KAFKA_V_PARTITION(p),
                                                RD_KAFKA_V_VALUE("x", 1),
                                                RD_KAFKA_V_END)) ==
                                       RD_KAFKA_RESP_ERR__QUEUE_FULL)
                                        rd_kafka_poll(rk, 50);
                                if (e) {
                                        fprintf(stderr,
                                                "bench-infra: produce %s: %s\n",
                                                name, rd_kafka_err2str(e));
                                        return -1;
                                }
                        }
                rd_kafka_poll(rk, 0);
        }
        if (rd_kafka_flush(rk, 120000)) {
                fprintf(stderr, "bench-infra: flush timed out\n");
                return -1;
        }
        return 0;
}

/* Commit messages / 2 on every partition of group g's topics. */
static int bi_commit(const char *brokers, const char *prefix, int g, int groups,
                     int topics, int parts, int messages) {
        char group[256], name[256];
        rd_kafka_t *rk;
        rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new(topics / groups + 1);
        rd_kafka_resp_err_t e;
        snprintf(group, sizeof(group), "%sbench.g%03d", prefix, g);
        rk = bi_client(RD_KAFKA_CONSUMER, brokers, group);
        if (!rk) {
                rd_kafka_topic_partition_list_destroy(l);
                return -1;
        }
        for (int t = g; t < topics; t += groups) {
                snprintf(name, sizeof(name), "%sbench.t%05d", prefix, t);
                for (int p = 0; p < parts; p++)
                        rd_kafka_topic_partition_list_add(l, name, p)->offset =
                                messages / 2;
        }
        e = rd_kafka_commit(rk, l, 0);
        if (e)
                fprintf(stderr, "bench-infra: commit %s: %s\n", group,
                        rd_kafka_err2str(e));
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return e ? -1 : 0;
}

static int bi_setup(int argc, char **argv) {
        const char *brokers = "127.0.0.1:9092", *prefix = "";
        int topics = 20, groups = 5, parts = 1, messages = 4, opt;
        rd_kafka_t *rk;
        int rc = 0;
        while ((opt = getopt(argc, argv, "b:p:t:g:P:m:")) != -1) {
                if (opt == 'b')
                        brokers = optarg;
                else if (opt == 'p')
                        prefix = optarg;
                else if (opt == 't')
                        topics = atoi(optarg);
                else if (opt == 'g')
                        groups = atoi(optarg);
                else if (opt == 'P')
                        parts = atoi(optarg);
                else if (opt == 'm')
                        messages = atoi(optarg);
                else
                        return 2;
        }
        if (topics < 1 || groups < 1 || groups > topics || parts < 1 ||
            messages < 2) {
                fprintf(stderr, "bench-infra setup: need 1 <= GROUPS <= "
                                "TOPICS, PARTS >= 1, MESSAGES >= 2\n");
                return 2;
        }
        rk = bi_client(RD_KAFKA_PRODUCER, brokers, NULL);
        if (!rk)
                return 1;
        for (int from = 0; from < topics && !rc; from += BI_BATCH)
                rc = bi_create(rk, prefix, from,
                               from + BI_BATCH < topics ? from + BI_BATCH
                                                        : topics,
                               parts);
        if (!rc) {
                sleep(2); /* new partitions elect their leaders */
                rc = bi_produce(rk, prefix, topics, parts, messages);
        }
        rd_kafka_destroy(rk);
        for (int g = 0; g < groups && !rc; g++)
                rc = bi_commit(brokers, prefix, g, groups, topics, parts,
                               messages);
        if (!rc)
                printf("setup topics=%d partitions=%d groups=%d messages=%d\n",
                       topics, topics * parts, groups, messages);
        return rc ? 1 : 0;
}

/* The result event of an admin request on q, or NULL (logged). */
static rd_kafka_event_t *bi_wait(rd_kafka_queue_t *q, const char *what) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 90000);
        if (!ev || rd_kafka_event_error(ev)) {
                fprintf(stderr, "bench-infra: %s: %s\n", what,
                        ev ? rd_kafka_event_error_string(ev) : "timeout");
                if (ev)
                        rd_kafka_event_destroy(ev);
                return NULL;
        }
        return ev;
}

/* Delete the topics and consumer groups whose name starts with prefix. */
static int bi_cleanup(int argc, char **argv) {
        const char *brokers = "127.0.0.1:9092", *prefix = NULL;
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_DeleteTopic_t **dt = NULL;
        rd_kafka_DeleteGroup_t **dg = NULL;
        rd_kafka_queue_t *q;
        rd_kafka_event_t *ev;
        rd_kafka_t *rk;
        size_t nt = 0, ng = 0;
        int opt, rc = 0;
        while ((opt = getopt(argc, argv, "b:p:")) != -1) {
                if (opt == 'b')
                        brokers = optarg;
                else if (opt == 'p')
                        prefix = optarg;
                else
                        return 2;
        }
        if (!prefix || strlen(prefix) < 4) {
                fprintf(stderr, "bench-infra cleanup: -p PREFIX of 4 "
                                "characters at least\n");
                return 2;
        }
        if (!(rk = bi_client(RD_KAFKA_PRODUCER, brokers, NULL)))
                return 1;
        q = rd_kafka_queue_new(rk);
        if (rd_kafka_metadata(rk, 1, NULL, &md, 30000) ==
            RD_KAFKA_RESP_ERR_NO_ERROR) {
                dt = calloc((size_t)md->topic_cnt + 1, sizeof(*dt));
                for (int i = 0; i < md->topic_cnt; i++)
                        if (strncmp(md->topics[i].topic, prefix,
                                    strlen(prefix)) == 0)
                                dt[nt++] = rd_kafka_DeleteTopic_new(
                                        md->topics[i].topic);
                rd_kafka_metadata_destroy(md);
        }
        if (nt) {
                rd_kafka_DeleteTopics(rk, dt, nt, NULL, q);
                if ((ev = bi_wait(q, "DeleteTopics")))
                        rd_kafka_event_destroy(ev);
                else
                        rc = 1;
        }
        rd_kafka_ListConsumerGroups(rk, NULL, q);
        if ((ev = bi_wait(q, "ListConsumerGroups"))) {
                size_t n;
                const rd_kafka_ConsumerGroupListing_t **l =
                        rd_kafka_ListConsumerGroups_result_valid(
                                rd_kafka_event_ListConsumerGroups_result(ev),
                                &n);
                dg = calloc(n + 1, sizeof(*dg));
                for (size_t i = 0; i < n; i++) {
                        const char *id =
                                rd_kafka_ConsumerGroupListing_group_id(l[i]);
                        if (strncmp(id, prefix, strlen(prefix)) == 0)
                                dg[ng++] = rd_kafka_DeleteGroup_new(id);
                }
                rd_kafka_event_destroy(ev);
        }
        if (ng) {
                rd_kafka_DeleteGroups(rk, dg, ng, NULL, q);
                if ((ev = bi_wait(q, "DeleteGroups")))
                        rd_kafka_event_destroy(ev);
                else
                        rc = 1;
        }
        printf("cleanup topics=%zu groups=%zu\n", nt, ng);
        rd_kafka_DeleteTopic_destroy_array(dt, nt);
        rd_kafka_DeleteGroup_destroy_array(dg, ng);
        free(dt);
        free(dg);
        rd_kafka_queue_destroy(q);
        rd_kafka_destroy(rk);
        return rc;
}

static int bi_beat(int argc, char **argv) {
        config_t cfg;
        char err[512];
        int interval = 1000, opt;
        bus_t *bus;
        heartbeat_t *hb;
        heartbeat_info_t info = {
                .group = "infrastructure",
                .instance = "bench-infra-clock",
                .host = "localhost",
                .mode = "standalone",
        };
        while ((opt = getopt(argc, argv, "i:")) != -1) {
                if (opt == 'i')
                        interval = atoi(optarg);
                else
                        return 2;
        }
        info.interval_ms = interval;
        config_load_or_exit(&cfg, CONFIG_SCOPE_COMMON, "bench-infra", 1, argv,
                            NULL);
        log_init(LOG_LEVEL_WARN, "bench-infra");
        bus = bus_new(&cfg, "bench-infra-clock", err, sizeof(err));
        if (!bus) {
                fprintf(stderr, "bench-infra: bus: %s\n", err);
                return 1;
        }
        hb = heartbeat_start(&cfg, bus, &info, &bi_handled);
        signal(SIGTERM, bi_on_signal);
        signal(SIGINT, bi_on_signal);
        while (hb && !bi_stop)
                pause();
        heartbeat_stop(hb);
        bus_destroy(bus);
        config_deinit(&cfg);
        return hb ? 0 : 1;
}

int main(int argc, char **argv) {
        if (argc >= 2 && strcmp(argv[1], "setup") == 0)
                return bi_setup(argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "beat") == 0)
                return bi_beat(argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "cleanup") == 0)
                return bi_cleanup(argc - 1, argv + 1);
        fprintf(stderr, "usage: bench-infra setup -b BROKERS -p PREFIX -t "
                        "TOPICS -g GROUPS [-P PARTS] [-m MESSAGES]\n"
                        "       bench-infra beat [-i MS]\n"
                        "       bench-infra cleanup -b BROKERS -p PREFIX\n");
        return 2;
}
