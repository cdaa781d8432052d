/*
 * pingpong.c - the raw Kafka round trip the edge's synchronous path is
 * measured against: producer -> topic -> group consumer -> reply topic ->
 * the first process, with librdkafka alone (no envelope, no store, no HTTP).
 *
 *   bench-pingpong setup -b BROKERS -p PREFIX
 *       create PREFIX bench.ping (8 partitions, as <group>.commands) and
 *       PREFIX bench.pong (16, as edge.replies) when missing.
 *   bench-pingpong pong -b BROKERS -p PREFIX [-g GROUP] [-L LINGER_MS] [-F
 * FETCH_WAIT_MS] a group consumer of bench.ping that echoes each ping to the
 * bench.pong partition the ping names; runs until SIGTERM or SIGINT.
 *   bench-pingpong ping -b BROKERS -p PREFIX -r RATE [-d SECS] [-w SECS] [-P
 * PARTITION]
 *                       [-L LINGER_MS] [-F FETCH_WAIT_MS]
 *       sends pings at a fixed rate (open loop) and reads the pongs on one
 *       partition of bench.pong; latency runs from each ping's scheduled send
 *       time to its pong's arrival, so a stall is not hidden.
 *
 * Both sides use the same client settings as shared/bus.c: an idempotent
 * producer with acks=all and linger.ms from -L (the edge's
 * OMNIFY_KAFKA_LINGER_MS, default 1); a cooperative-sticky group consumer
 * storing offsets after each message with background commits; a reply
 * listener assigned to one partition at its end; fetch.wait.max.ms from -F
 * (100 in bus.c). ping prints one key=value line like bench-openloop.
 */
#define _GNU_SOURCE
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define PP_PING_PARTITIONS 8
#define PP_PONG_PARTITIONS 16

typedef struct pp_opts {
        const char *brokers;
        const char *prefix;
        const char *group;
        double rate, duration_s, warmup_s, drain_s;
        int partition;
        int linger_ms;
        int fetch_wait_ms;
        char ping_topic[256], pong_topic[256];
} pp_opts_t;

/* The wire format of a ping and its pong: 16 bytes, little-endian. */
typedef struct pp_wire {
        uint32_t run;      /* pongs of an earlier run are ignored */
        int32_t partition; /* the bench.pong partition to answer on */
        uint64_t seq;
} pp_wire_t;

static atomic_bool pp_stop;

static void pp__on_signal(int sig) {
        (void)sig;
        atomic_store(&pp_stop, true);
}

static uint64_t pp__now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void pp__fail(const char *what, const char *why) {
        fprintf(stderr, "bench-pingpong: %s: %s\n", what, why);
        exit(1);
}

static void pp__set(rd_kafka_conf_t *conf, const char *name,
                    const char *value) {
        char err[512];
        if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) !=
            RD_KAFKA_CONF_OK)
                pp__fail(name, err);
}

static void pp__set_int(rd_kafka_conf_t *conf, const char *name, long v) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%ld", v);
        pp__set(conf, name, buf);
}

/* What shared/bus.c sets on every client. */
static rd_kafka_conf_t *pp__base(const pp_opts_t *o, const char *client_id) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        pp__set(conf, "bootstrap.servers", o->brokers);
        pp__set(conf, "client.id", client_id);
        pp__set_int(conf, "reconnect.backoff.ms", 50);
        pp__set_int(conf, "reconnect.backoff.max.ms", 1000);
        return conf;
}

/* bus_new's producer. */
static rd_kafka_t *pp__producer(const pp_opts_t *o, const char *client_id) {
        rd_kafka_conf_t *conf = pp__base(o, client_id);
        char err[512];
        rd_kafka_t *rk;
        pp__set(conf, "enable.idempotence", "true");
        pp__set(conf, "acks", "all");
        pp__set_int(conf, "linger.ms", o->linger_ms);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        if (!rk)
                pp__fail("producer", err);
        return rk;
}

/* ---------------------------------------------------------------------------
 * setup: the two topics
 * ------------------------------------------------------------------------ */

static int pp_setup(const pp_opts_t *o) {
        rd_kafka_t *rk = pp__producer(o, "bench-pingpong-setup");
        rd_kafka_NewTopic_t *topics[2];
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_event_t *ev;
        const rd_kafka_CreateTopics_result_t *res;
        const rd_kafka_topic_result_t **tr;
        size_t n;
        char err[512];
        int status = 0;

        topics[0] = rd_kafka_NewTopic_new(o->ping_topic, PP_PING_PARTITIONS, 1,
                                          err, sizeof(err));
        topics[1] = rd_kafka_NewTopic_new(o->pong_topic, PP_PONG_PARTITIONS, 1,
                                          err, sizeof(err));
        if (!topics[0] || !topics[1])
                pp__fail("topic", err);
        rd_kafka_CreateTopics(rk, topics, 2, NULL, q);
        ev = rd_kafka_queue_poll(q, 30000);
        if (!ev)
                pp__fail("create topics", "no answer in 30 s");
        res = rd_kafka_event_CreateTopics_result(ev);
        if (!res)
                pp__fail("create topics", rd_kafka_event_error_string(ev));
        tr = rd_kafka_CreateTopics_result_topics(res, &n);
        for (size_t i = 0; i < n; i++) {
                rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
                if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                        fprintf(stderr, "bench-pingpong: %s: %s\n",
                                rd_kafka_topic_result_name(tr[i]),
                                rd_kafka_err2str(e));
                        status = 1;
                }
        }
        rd_kafka_event_destroy(ev);
        rd_kafka_NewTopic_destroy_array(topics, 2);
        rd_kafka_queue_destroy(q);
        rd_kafka_destroy(rk);
        return status;
}

/* ---------------------------------------------------------------------------
 * pong: the consumer group side
 * ------------------------------------------------------------------------ */

static void pp__rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t *parts,
                          void *opaque) {
        rd_kafka_error_t *e;
        (void)opaque;
        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                e = rd_kafka_incremental_assign(rk, parts);
                fprintf(stderr, "pong: assigned %d partition(s)\n", parts->cnt);
        } else {
                rd_kafka_commit(rk, NULL, 0);
                e = rd_kafka_incremental_unassign(rk, parts);
        }
        if (e) {
                fprintf(stderr, "pong: rebalance: %s\n",
                        rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
        }
}

static int pp_pong(const pp_opts_t *o) {
        rd_kafka_t *prod = pp__producer(o, "bench-pong");
        rd_kafka_conf_t *conf = pp__base(o, "bench-pong-consumer");
        rd_kafka_topic_partition_list_t *subs;
        rd_kafka_t *cons;
        char err[512];
        unsigned long long n = 0;

        /* bus_consumer_new's settings. */
        pp__set(conf, "group.id", o->group);
        pp__set(conf, "partition.assignment.strategy", "cooperative-sticky");
        pp__set(conf, "enable.auto.commit", "true");
        pp__set(conf, "enable.auto.offset.store", "false");
        pp__set(conf, "auto.offset.reset", "earliest");
        pp__set_int(conf, "auto.commit.interval.ms", 500);
        pp__set_int(conf, "session.timeout.ms", 10000);
        pp__set_int(conf, "heartbeat.interval.ms", 1000);
        pp__set_int(conf, "fetch.wait.max.ms", o->fetch_wait_ms);
        rd_kafka_conf_set_rebalance_cb(conf, pp__rebalance);
        cons = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        if (!cons)
                pp__fail("consumer", err);
        rd_kafka_poll_set_consumer(cons);
        subs = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(subs, o->ping_topic,
                                          RD_KAFKA_PARTITION_UA);
        if (rd_kafka_subscribe(cons, subs))
                pp__fail("subscribe", o->ping_topic);
        rd_kafka_topic_partition_list_destroy(subs);

        while (!atomic_load(&pp_stop)) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 100);
                rd_kafka_topic_partition_list_t *done;
                pp_wire_t w;
                rd_kafka_resp_err_t e;
                rd_kafka_poll(prod, 0); /* delivery reports */
                if (!m)
                        continue;
                if (m->err || m->len != sizeof(w)) {
                        rd_kafka_message_destroy(m);
                        continue;
                }
                memcpy(&w, m->payload, sizeof(w));
                e = rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(o->pong_topic),
                                      RD_KAFKA_V_PARTITION(w.partition),
                                      RD_KAFKA_V_KEY(m->key, m->key_len),
                                      RD_KAFKA_V_VALUE(m->payload, m->len),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                      RD_KAFKA_V_END);
                if (e)
                        fprintf(stderr, "pong: produce: %s\n",
                                rd_kafka_err2str(e));
                /* As bus_consumer_done: the offset after this one. */
                done = rd_kafka_topic_partition_list_new(1);
                rd_kafka_topic_partition_list_add(
                        done, rd_kafka_topic_name(m->rkt), m->partition)
                        ->offset = m->offset + 1;
                rd_kafka_offsets_store(cons, done);
                rd_kafka_topic_partition_list_destroy(done);
                rd_kafka_message_destroy(m);
                n++;
        }
        rd_kafka_consumer_close(cons);
        rd_kafka_destroy(cons);
        rd_kafka_flush(prod, 5000);
        rd_kafka_destroy(prod);
        fprintf(stderr, "pong: answered %llu ping(s)\n", n);
        return 0;
}

/* ---------------------------------------------------------------------------
 * ping: the fixed-rate sender and its reply listener
 * ------------------------------------------------------------------------ */

typedef struct pp_run {
        const pp_opts_t *o;
        rd_kafka_t *listener;
        uint32_t run;
        uint64_t t0, measure_from, measure_to, total;
        uint32_t *lat_us; /* per seq; 0 = no pong (yet) */
        _Atomic uint64_t received, in_window, dupes;
        atomic_bool listening;
} pp_run_t;

static uint64_t pp__sched(const pp_run_t *r, uint64_t seq) {
        return r->t0 + (uint64_t)((double)seq * 1e9 / r->o->rate);
}

static void *pp__listen(void *arg) {
        pp_run_t *r = arg;
        while (atomic_load(&r->listening)) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(r->listener, 20);
                uint64_t now = pp__now();
                pp_wire_t w;
                if (!m)
                        continue;
                if (!m->err && m->len == sizeof(w)) {
                        memcpy(&w, m->payload, sizeof(w));
                        if (w.run == r->run && w.seq < r->total) {
                                uint64_t lat =
                                        (now - pp__sched(r, w.seq)) / 1000u;
                                if (r->lat_us[w.seq]) {
                                        atomic_fetch_add(&r->dupes, 1);
                                } else {
                                        r->lat_us[w.seq] =
                                                lat ? (uint32_t)lat : 1;
                                        atomic_fetch_add(&r->received, 1);
                                        if (now >= r->measure_from &&
                                            now < r->measure_to)
                                                atomic_fetch_add(&r->in_window,
                                                                 1);
                                }
                        }
                }
                rd_kafka_message_destroy(m);
        }
        return NULL;
}

static rd_kafka_t *pp__listener(const pp_opts_t *o) {
        rd_kafka_conf_t *conf = pp__base(o, "bench-ping-replies");
        rd_kafka_topic_partition_list_t *parts;
        rd_kafka_t *rk;
        char err[512], group[300];
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e;

        /* bus_listener_new's settings. */
        snprintf(group, sizeof(group), "%s-listener-%d", o->pong_topic,
                 o->partition);
        pp__set(conf, "group.id", group);
        pp__set(conf, "enable.auto.commit", "false");
        pp__set(conf, "enable.partition.eof", "false");
        pp__set_int(conf, "fetch.wait.max.ms", o->fetch_wait_ms);
        pp__set_int(conf, "fetch.error.backoff.ms", 50);
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        if (!rk)
                pp__fail("listener", err);
        rd_kafka_poll_set_consumer(rk);
        e = rd_kafka_query_watermark_offsets(rk, o->pong_topic, o->partition,
                                             &lo, &hi, 10000);
        if (e)
                pp__fail("watermarks", rd_kafka_err2str(e));
        parts = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(parts, o->pong_topic, o->partition)
                ->offset = hi;
        if (rd_kafka_assign(rk, parts))
                pp__fail("assign", o->pong_topic);
        rd_kafka_topic_partition_list_destroy(parts);
        return rk;
}

static double pp__cpu_s(void) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int pp__cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
        return x < y ? -1 : x > y;
}

static int pp_ping(const pp_opts_t *o) {
        pp_run_t r = {0};
        rd_kafka_t *prod = pp__producer(o, "bench-ping");
        pthread_t th;
        uint64_t sent = 0, timeouts = 0, measured = 0, hard_end;
        uint32_t *lat;
        size_t n_lat = 0;
        struct timespec seed;

        clock_gettime(CLOCK_REALTIME, &seed);
        r.o = o;
        r.run = (uint32_t)(seed.tv_nsec ^ (seed.tv_sec << 20) ^ getpid());
        r.total = (uint64_t)((o->warmup_s + o->duration_s) * o->rate);
        r.lat_us = calloc(r.total ? r.total : 1, sizeof(*r.lat_us));
        lat = calloc(r.total ? r.total : 1, sizeof(*lat));
        if (!r.lat_us || !lat)
                pp__fail("memory", "out of memory");
        r.listener = pp__listener(o);
        atomic_init(&r.listening, true);
        /* The listener's first fetch and the producer's first connection are
         * not part of any round trip. */
        for (int i = 0; i < 50; i++)
                rd_kafka_poll(prod, 10);
        if (pthread_create(&th, NULL, pp__listen, &r))
                pp__fail("thread", "cannot start the listener");
        prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

        r.t0 = pp__now() + 100000000u;
        r.measure_from = r.t0 + (uint64_t)(o->warmup_s * 1e9);
        r.measure_to = r.measure_from + (uint64_t)(o->duration_s * 1e9);
        for (uint64_t seq = 0; seq < r.total && !atomic_load(&pp_stop); seq++) {
                uint64_t at = pp__sched(&r, seq);
                struct timespec ts = {(time_t)(at / 1000000000u),
                                      (long)(at % 1000000000u)};
                uint8_t key[16];
                pp_wire_t w = {r.run, o->partition, seq};
                rd_kafka_resp_err_t e;
                clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
                /* A random key per message spreads pings over the partitions
                 * as the edge's message ids do. */
                for (int i = 0; i < 16; i++)
                        key[i] = (uint8_t)rand();
                e = rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(o->ping_topic),
                                      RD_KAFKA_V_KEY(key, sizeof(key)),
                                      RD_KAFKA_V_VALUE(&w, sizeof(w)),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                      RD_KAFKA_V_END);
                if (e)
                        fprintf(stderr, "ping: produce: %s\n",
                                rd_kafka_err2str(e));
                else
                        sent++;
                rd_kafka_poll(prod, 0);
        }
        hard_end = r.measure_to + (uint64_t)(o->drain_s * 1e9);
        while (atomic_load(&r.received) < sent && pp__now() < hard_end)
                rd_kafka_poll(prod, 5);
        atomic_store(&r.listening, false);
        pthread_join(th, NULL);

        /* Pongs that never came count at their age now. */
        {
                uint64_t now = pp__now();
                for (uint64_t seq = 0; seq < r.total; seq++) {
                        uint64_t s = pp__sched(&r, seq);
                        if (s < r.measure_from)
                                continue;
                        measured++;
                        if (r.lat_us[seq]) {
                                lat[n_lat++] = r.lat_us[seq];
                        } else {
                                timeouts++;
                                lat[n_lat++] = (uint32_t)((now - s) / 1000u);
                        }
                }
        }
        qsort(lat, n_lat, sizeof(*lat), pp__cmp_u32);
#define PCT(p) \
        (n_lat ? lat[(size_t)((p) * (double)(n_lat - 1) + 0.5)] / 1000.0 : 0.0)
        printf("pingpong target_rps=%.0f achieved_rps=%.1f sent=%llu ok=%llu "
               "non2xx=0 errors=%llu "
               "timeouts=%llu p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f "
               "max_ms=%.3f "
               "linger_ms=%d fetch_wait_max_ms=%d cpu_s=%.3f\n",
               o->rate, (double)atomic_load(&r.in_window) / o->duration_s,
               (unsigned long long)sent,
               (unsigned long long)(measured - timeouts),
               (unsigned long long)atomic_load(&r.dupes),
               (unsigned long long)timeouts, PCT(0.50), PCT(0.90), PCT(0.99),
               PCT(0.999), n_lat ? lat[n_lat - 1] / 1000.0 : 0.0, o->linger_ms,
               o->fetch_wait_ms, pp__cpu_s());
#undef PCT
        rd_kafka_consumer_close(r.listener);
        rd_kafka_destroy(r.listener);
        rd_kafka_flush(prod, 2000);
        rd_kafka_destroy(prod);
        free(r.lat_us);
        free(lat);
        return 0;
}

static void pp__usage(void) {
        fprintf(stderr, "usage: bench-pingpong setup|pong|ping -b BROKERS -p "
                        "PREFIX [-g GROUP]\n"
                        "         [-r RATE] [-d SECS] [-w SECS] [-D "
                        "DRAIN_SECS] [-P PARTITION]\n"
                        "         [-L LINGER_MS] [-F FETCH_WAIT_MAX_MS]\n");
        exit(2);
}

int main(int argc, char **argv) {
        pp_opts_t o = {0};
        struct sigaction sa;
        const char *mode;
        int opt;

        if (argc < 2)
                pp__usage();
        mode = argv[1];
        o.brokers = "127.0.0.1:9092";
        o.prefix = "bench.";
        o.group = "bench-pong";
        o.duration_s = 10;
        o.warmup_s = 1;
        o.drain_s = 5;
        o.partition = PP_PONG_PARTITIONS - 1;
        o.linger_ms = 1;
        o.fetch_wait_ms = 100;
        optind = 2;
        while ((opt = getopt(argc, argv, "b:p:g:r:d:w:D:P:L:F:h")) != -1) {
                switch (opt) {
                case 'b':
                        o.brokers = optarg;
                        break;
                case 'p':
                        o.prefix = optarg;
                        break;
                case 'g':
                        o.group = optarg;
                        break;
                case 'r':
                        o.rate = atof(optarg);
                        break;
                case 'd':
                        o.duration_s = atof(optarg);
                        break;
                case 'w':
                        o.warmup_s = atof(optarg);
                        break;
                case 'D':
                        o.drain_s = atof(optarg);
                        break;
                case 'P':
                        o.partition = atoi(optarg);
                        break;
                case 'L':
                        o.linger_ms = atoi(optarg);
                        break;
                case 'F':
                        o.fetch_wait_ms = atoi(optarg);
                        break;
                default:
                        pp__usage();
                }
        }
        if (o.partition < 0 || o.partition >= PP_PONG_PARTITIONS)
                pp__usage();
        snprintf(o.ping_topic, sizeof(o.ping_topic), "%sbench.ping", o.prefix);
        snprintf(o.pong_topic, sizeof(o.pong_topic), "%sbench.pong", o.prefix);

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = pp__on_signal;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);

        if (strcmp(mode, "setup") == 0)
                return pp_setup(&o);
        if (strcmp(mode, "pong") == 0)
                return pp_pong(&o);
        if (strcmp(mode, "ping") == 0) {
                if (o.rate <= 0 || o.duration_s <= 0)
                        pp__usage();
                return pp_ping(&o);
        }
        pp__usage();
        return 2;
}
