/*
 * timer.c - durable timers (shared/timer.c) against the real store and
 * the real broker: how late they fire, and how fast due timers are claimed
 * and fired, each beside a baseline measured in the same run.
 *
 *   bench-timer [-n N,N,...] [-i IDLE_SAMPLES] [-P POLL_MS]
 *
 * Configuration as every binary (OMNIFY_MONGO_URI, OMNIFY_KAFKA_BROKERS);
 * the bench makes its own topic (<prefix>bench.commands under a topic
 * prefix of its own, deleted at the end) and its own database prefix
 * (dropped at the end).
 *
 * Rows (latency = when the command was read back from the broker minus
 * the timer's due time, which the command carries as created-at):
 *   store find      baseline: one indexed find_one by _id (p50, p99)
 *   raw produce     baseline: N messages produced and acknowledged (msgs/s)
 *   idle, local     timers set by the firing process (it wakes at once),
 *                   20..200 ms ahead, one at a time
 *   idle, elsewhere timers set by another process 1.5 s ahead (> poll):
 *                   the firing process learns of them by its poll
 *   idle, short     set by another process 0.2 s ahead (< poll): bounded by
 *                   the poll interval, the price of not polling harder
 *   claims alone    N due records claimed in batches (lease.h), no firing
 *   N due, k procs  N timers due at one instant, fired by k processes:
 *                   latency p50/p99/max, and fired/s (N / time to the last)
 */
#define _GNU_SOURCE
#include <librdkafka/rdkafka.h>
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmdsend.h"
#include "config.h"
#include "envelope.h"
#include "lease.h"
#include "log.h"
#include "msgid.h"
#include "store.h"
#include "timer.h"

#define GROUP "bench"
#define PARTITIONS 4
#define MAX_N 100000

static config_t cfg;
static store_t *store;
static bus_t *bus;
static rd_kafka_t *reader;
static char topic[256];
static const char BODY[] = "\x81\xa1x\x01";
static double raw_rate = 1; /* acknowledged produces per second, measured */

static void die(const char *what, const char *why) {
        fprintf(stderr, "bench-timer: %s: %s\n", what, why);
        exit(1);
}

static int cmp_i64(const void *a, const void *b) {
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return x < y ? -1 : x > y;
}

static int64_t pct(int64_t *v, size_t n, double p) {
        size_t i;
        if (!n)
                return -1;
        qsort(v, n, sizeof(*v), cmp_i64);
        i = (size_t)(p * (double)(n - 1) + 0.5);
        return v[i < n ? i : n - 1];
}

/* ---------------------------------------------------------------------------
 * The topic and its reader
 * ------------------------------------------------------------------------ */

static void admin_topic(bool create) {
        rd_kafka_t *rk = bus_handle(bus);
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_event_t *ev;
        char err[256];

        if (create) {
                rd_kafka_NewTopic_t *t = rd_kafka_NewTopic_new(
                        topic, PARTITIONS, 1, err, sizeof(err));
                rd_kafka_CreateTopics(rk, &t, 1, NULL, q);
                rd_kafka_NewTopic_destroy(t);
        } else {
                rd_kafka_DeleteTopic_t *t = rd_kafka_DeleteTopic_new(topic);
                rd_kafka_DeleteTopics(rk, &t, 1, NULL, q);
                rd_kafka_DeleteTopic_destroy(t);
        }
        ev = rd_kafka_queue_poll(q, 30000);
        if (!ev)
                die("topic", "no answer from the broker in 30 s");
        rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(q);
}

static void reader_start(void) {
        char err[256];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_topic_partition_list_t *parts;

        rd_kafka_conf_set(conf, "bootstrap.servers", cfg.kafka_brokers, err,
                          sizeof(err));
        rd_kafka_conf_set(conf, "group.id", "bench-timer-reader", err,
                          sizeof(err));
        rd_kafka_conf_set(conf, "fetch.wait.max.ms", "5", err, sizeof(err));
        reader = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        if (!reader)
                die("reader", err);
        rd_kafka_poll_set_consumer(reader);
        parts = rd_kafka_topic_partition_list_new(PARTITIONS);
        for (int p = 0; p < PARTITIONS; p++)
                rd_kafka_topic_partition_list_add(parts, topic, p)->offset =
                        RD_KAFKA_OFFSET_END;
        rd_kafka_assign(reader, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        /* Let the reader fix its positions before anything is produced. */
        for (int i = 0; i < 20; i++) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(reader, 50);
                if (m)
                        rd_kafka_message_destroy(m);
        }
}

/* Read up to n commands (or until quiet_ms passes with none); each one's
 * latency (read time minus created-at) into lat. Returns how many, and the
 * wall time of the last into *last_ms. */
static size_t read_fired(size_t n, int quiet_ms, int64_t *lat,
                         int64_t *last_ms) {
        size_t got = 0;
        uint64_t idle_since = clock_mono_ms();
        char errstr[128];

        while (got < n && clock_mono_ms() - idle_since < (uint64_t)quiet_ms) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(reader, 10);
                env_t env;
                if (!m)
                        continue;
                if (!m->err &&
                    env_decode(m, &env, errstr, sizeof(errstr)) == ENV_OK) {
                        int64_t now = (int64_t)clock_wall_ms();
                        lat[got++] = now - env.created_at_ms;
                        *last_ms = now;
                        idle_since = clock_mono_ms();
                }
                rd_kafka_message_destroy(m);
        }
        return got;
}

/* ---------------------------------------------------------------------------
 * Timers
 * ------------------------------------------------------------------------ */

/* The collection of this scenario: each starts empty, so that the rows
 * do not measure what earlier rows left (a store without secondary
 * indexes scans it all at each claim). */
static char coll[64] = "timers";

static void scenario(const char *name) {
        snprintf(coll, sizeof(coll), "timers_%.40s", name);
}

static timer_service_t *service(int poll_ms, bool start) {
        char errstr[256];
        timer_opts_t o = {.cfg = &cfg,
                          .store = store,
                          .bus = bus,
                          .group = GROUP,
                          .collection = coll,
                          .poll_ms = poll_ms};
        timer_service_t *ts = timer_service_new(&o, errstr, sizeof(errstr));
        if (!ts)
                die("timer service", errstr);
        if (timer_service_indexes(ts, errstr, sizeof(errstr)))
                die("indexes", errstr);
        if (start && timer_service_start(ts, errstr, sizeof(errstr)))
                die("timer service", errstr);
        return ts;
}

static void set_timer(timer_service_t *ts, const char *id, int64_t at) {
        char errstr[256];
        timer_spec_t s = {.id = id,
                          .fire_at_ms = at,
                          .type = "bench.tick",
                          .key = slice_of(id),
                          .body = {BODY, sizeof(BODY) - 1},
                          .caller = {slice_of("tenant"), slice_of("user"),
                                     slice_of("member"), SLICE_NULL}};
        timer_err_t err;
        /* As a handler: a stalled store is tried again (the runtime would
         * redeliver the command). */
        for (int i = 0; (err = timer_set(ts, &s, errstr, sizeof(errstr))) ==
                                TIMER_STORE_DOWN &&
                        i < 10;
             i++)
                usleep(200 * 1000);
        if (err)
                die("timer_set", errstr);
}

static void row(const char *name, const char *n, int64_t p50, int64_t p99,
                int64_t max, const char *rate) {
        printf("| %-28s | %7s | %6lld | %6lld | %6lld | %22s |\n", name, n,
               (long long)p50, (long long)p99, (long long)max, rate);
        fflush(stdout);
}

static void bench_store_find(void) {
        int64_t lat[500];
        bson_t filter = BSON_INITIALIZER, out;
        char errstr[256];
        timer_service_t *ts = service(1000, false);

        set_timer(ts, "find-me", (int64_t)clock_wall_ms() + 3600000);
        BSON_APPEND_UTF8(&filter, "_id", "find-me");
        for (int i = 0; i < 500; i++) {
                struct timespec a, b;
                clock_gettime(CLOCK_MONOTONIC, &a);
                if (store_find_one(store, GROUP, coll, &filter, NULL, &out,
                                   errstr, sizeof(errstr)) == STORE_OK)
                        bson_destroy(&out);
                clock_gettime(CLOCK_MONOTONIC, &b);
                lat[i] = (b.tv_sec - a.tv_sec) * 1000000 +
                         (b.tv_nsec - a.tv_nsec) / 1000;
        }
        bson_destroy(&filter);
        timer_cancel(ts, "find-me", errstr, sizeof(errstr));
        timer_service_destroy(ts);
        printf("| %-28s | %7s | %6.2f | %6.2f | %6.2f | %22s |\n",
               "store find_one (baseline, ms)", "500", pct(lat, 500, 0.5) / 1e3,
               pct(lat, 500, 0.99) / 1e3, pct(lat, 500, 1.0) / 1e3, "");
}

static double bench_raw_produce(size_t n) {
        cmdsend_batch_t *b = cmdsend_batch_new(n);
        uint64_t t0 = clock_mono_ms();
        size_t ok = 0;
        double rate;
        int64_t *lat = calloc(n, sizeof(*lat)), last = 0;

        for (size_t i = 0; i < n; i++) {
                cmdsend_msg_t m = {.type = "bench.raw",
                                   .version = 1,
                                   .key = slice_of("k"),
                                   .body = {BODY, sizeof(BODY) - 1},
                                   .created_at_ms = (int64_t)clock_wall_ms()};
                cmdsend_derive_id(m.created_at_ms, "raw", "raw", (int64_t)i,
                                  m.id);
                cmdsend_batch_produce(b, i, bus, topic, &m);
        }
        cmdsend_batch_wait(b);
        for (size_t i = 0; i < n; i++)
                ok += cmdsend_batch_result(b, i) == BUS_OK;
        rate = (double)ok * 1000.0 / (double)(clock_mono_ms() - t0 + 1);
        cmdsend_batch_destroy(b);
        read_fired(n, 2000, lat, &last); /* drain them */
        free(lat);
        return rate;
}

/* Timers set one at a time `ahead` ms ahead (ahead_max > ahead: drawn in
 * between) by setter, fired by firer. */
static void bench_idle(const char *name, timer_service_t *setter, int samples,
                       int64_t ahead, int64_t ahead_max) {
        int64_t *lat = calloc((size_t)samples, sizeof(*lat)), last = 0;
        size_t got = 0;
        char id[64], n[16];

        for (int i = 0; i < samples; i++) {
                uint32_t r;
                int64_t in = ahead;
                msgid_random(&r, sizeof(r));
                if (ahead_max > ahead)
                        in += (int64_t)(r % (uint32_t)(ahead_max - ahead));
                snprintf(id, sizeof(id), "%s-%d-%u", name, i, r);
                for (char *c = id; *c; c++)
                        if (*c == ' ' || *c == ',')
                                *c = '-';
                set_timer(setter, id, (int64_t)clock_wall_ms() + in);
                got += read_fired(1, (int)in + 3000, lat + got, &last);
        }
        snprintf(n, sizeof(n), "%zu", got);
        row(name, n, pct(lat, got, 0.5), pct(lat, got, 0.99),
            pct(lat, got, 1.0), "");
        free(lat);
}

static void bench_due(size_t n, int procs, int poll_ms) {
        timer_service_t *setter, *firers[4];
        int64_t *lat = calloc(n, sizeof(*lat)), last = 0, due;
        uint64_t t0;
        double set_rate;
        char id[64], name[64], count[16], rate[64];
        size_t got;
        uint32_t run;

        snprintf(name, sizeof(name), "due_%zu_%d", n, procs);
        scenario(name);
        setter = service(poll_ms, false);
        msgid_random(&run, sizeof(run));
        /* Set them far ahead, then bring the due time in: the set rate is
         * a figure of its own. */
        t0 = clock_mono_ms();
        for (size_t i = 0; i < n; i++) {
                snprintf(id, sizeof(id), "due-%08x-%zu", run, i);
                set_timer(setter, id, (int64_t)clock_wall_ms() + 3600000);
        }
        set_rate = (double)n * 1000.0 / (double)(clock_mono_ms() - t0 + 1);
        due = (int64_t)clock_wall_ms() + 1500;
        {
                /* One update: all of them due at one instant. */
                bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER,
                       set;
                char errstr[256], pattern[64];
                snprintf(pattern, sizeof(pattern), "^due-%08x-", run);
                BSON_APPEND_REGEX(&filter, "_id", pattern, "");
                BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
                BSON_APPEND_DATE_TIME(&set, "fire_at", due);
                bson_append_document_end(&update, &set);
                if (store_update(store, GROUP, coll, &filter, &update,
                                 STORE_MANY, NULL, errstr, sizeof(errstr)))
                        die("update", errstr);
                bson_destroy(&filter);
                bson_destroy(&update);
        }
        for (int p = 0; p < procs; p++)
                firers[p] = service(poll_ms, true);
        got = read_fired(n, (int)(1500 + 10000), lat, &last);
        for (int p = 0; p < procs; p++)
                timer_service_destroy(firers[p]);
        timer_service_destroy(setter);
        snprintf(name, sizeof(name), "%zu due, %d process%s", n, procs,
                 procs > 1 ? "es" : "");
        snprintf(count, sizeof(count), "%zu", got);
        snprintf(rate, sizeof(rate), "%.0f/s = %.3fx raw",
                 (double)got * 1000.0 / (double)(last - due + 1),
                 (double)got * 1000.0 / (double)(last - due + 1) / raw_rate);
        row(name, count, pct(lat, got, 0.5), pct(lat, got, 0.99),
            pct(lat, got, 1.0), rate);
        printf("| %-28s | %7zu | %6s | %6s | %6s | %16.0f set/s |\n",
               "  (timer_set, one by one)", n, "", "", "", set_rate);
        free(lat);
}

static bool bench_note(const bson_t *doc, void *arg) {
        (void)doc;
        (void)arg;
        return true;
}

/* Claims alone: n due records taken in batches of 256 by one claimer. */
static void bench_claims(size_t n) {
        timer_service_t *setter;
        char name[32];
        snprintf(name, sizeof(name), "claims_%zu", n);
        scenario(name);
        setter = service(1000, false);
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
        lease_query_t q = {.db = GROUP,
                           .coll = coll,
                           .filter = &filter,
                           .time_field = "fire_at",
                           .limit = 256,
                           .lease_ms = 600000};
        char id[64], owner[LEASE_OWNER_SIZE], errstr[256], count[16], rate[64],
                pattern[64];
        size_t total = 0;
        uint64_t t0;
        uint32_t run;
        int got;

        msgid_random(&run, sizeof(run));
        for (size_t i = 0; i < n; i++) {
                snprintf(id, sizeof(id), "claim-%08x-%zu", run, i);
                set_timer(setter, id, (int64_t)clock_wall_ms() - 1000);
        }
        BSON_APPEND_UTF8(&filter, "status", "armed");
        t0 = clock_mono_ms();
        do {
                if (lease_claim(store, &q, (int64_t)clock_wall_ms(), owner,
                                bench_note, NULL, &got, NULL, errstr,
                                sizeof(errstr)))
                        die("claim", errstr);
                total += (size_t)got;
        } while (got > 0);
        snprintf(count, sizeof(count), "%zu", total);
        snprintf(rate, sizeof(rate), "%.0f claims/s",
                 (double)total * 1000.0 / (double)(clock_mono_ms() - t0 + 1));
        row("claims alone (batch 256)", count, 0, 0, 0, rate);
        /* Out of the way of what follows. */
        bson_reinit(&filter);
        snprintf(pattern, sizeof(pattern), "^claim-%08x-", run);
        BSON_APPEND_REGEX(&filter, "_id", pattern, "");
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_UTF8(&set, "status", "cancelled");
        bson_append_document_end(&update, &set);
        store_update(store, GROUP, coll, &filter, &update, STORE_MANY, NULL,
                     errstr, sizeof(errstr));
        bson_destroy(&filter);
        bson_destroy(&update);
        timer_service_destroy(setter);
}

static void drop_db(void) {
        char db[256];
        bson_error_t e;
        mongoc_client_t *client = mongoc_client_new(cfg.mongo_uri);
        mongoc_database_t *d;
        if (!client)
                return;
        snprintf(db, sizeof(db), "%s%s", cfg.mongo_db_prefix, GROUP);
        d = mongoc_client_get_database(client, db);
        mongoc_database_drop(d, &e);
        mongoc_database_destroy(d);
        mongoc_client_destroy(client);
}

int main(int argc, char **argv) {
        char *argv0[] = {"bench-timer", NULL}, errstr[512], buf[64];
        const char *ns = "100,1000,5000";
        int idle = 200, poll_ms = 1000, opt;
        size_t sizes[16], n_sizes = 0;
        double raw;

        log_level_t level = LOG_LEVEL_WARN;

        while ((opt = getopt(argc, argv, "n:i:P:v")) != -1) {
                if (opt == 'v')
                        level = LOG_LEVEL_DEBUG;
                else if (opt == 'n')
                        ns = optarg;
                else if (opt == 'i')
                        idle = atoi(optarg);
                else if (opt == 'P')
                        poll_ms = atoi(optarg);
                else
                        die("usage", "bench-timer [-n N,N] [-i SAMPLES] [-P "
                                     "POLL_MS] [-v]");
        }
        for (const char *p = ns; *p && n_sizes < 16;) {
                sizes[n_sizes] = strtoul(p, (char **)&p, 10);
                if (sizes[n_sizes] > 0 && sizes[n_sizes] <= MAX_N)
                        n_sizes++;
                if (*p == ',')
                        p++;
                else
                        break;
        }
        log_init(level, "bench-timer");
        if (config_load(&cfg, CONFIG_SCOPE_COMMON | CONFIG_SCOPE_GROUP,
                        "bench-timer", 1, argv0, NULL, NULL, NULL, errstr,
                        sizeof(errstr)) != CONFIG_OK)
                die("config", errstr);
        snprintf(buf, sizeof(buf), "benchtimer%d.", (int)getpid());
        free(cfg.topic_prefix);
        cfg.topic_prefix = strdup(buf);
        snprintf(buf, sizeof(buf), "benchtimer_%d_", (int)getpid());
        free(cfg.mongo_db_prefix);
        cfg.mongo_db_prefix = strdup(buf);
        bus_topic(&cfg, GROUP ".commands", topic, sizeof(topic));
        if (!(store = store_new(&cfg, "bench-timer", errstr, sizeof(errstr))))
                die("store", errstr);
        if (store_ping(store) != STORE_OK)
                die("store", "does not answer");
        while (!store_is_up(store))
                usleep(50 * 1000);
        if (!(bus = bus_new(&cfg, "bench-timer", errstr, sizeof(errstr))))
                die("bus", errstr);
        admin_topic(true);
        reader_start();

        printf("\nDurable timers: store %s, broker %s, poll %d ms\n\n",
               cfg.mongo_uri, cfg.kafka_brokers, poll_ms);
        printf("| %-28s | %7s | %6s | %6s | %6s | %22s |\n", "what", "samples",
               "p50 ms", "p99 ms", "max ms", "rate");
        printf("|%s|%s|%s|%s|%s|%s|\n", "------------------------------",
               "---------", "--------", "--------", "--------",
               "------------------------");
        scenario("find");
        bench_store_find();
        raw = raw_rate = bench_raw_produce(5000);
        snprintf(buf, sizeof(buf), "%.0f msgs/s", raw);
        row("raw produce (baseline)", "5000", 0, 0, 0, buf);
        {
                timer_service_t *firer;
                scenario("idle");
                firer = service(poll_ms, true);
                timer_service_t *elsewhere = service(poll_ms, false);
                usleep(300 * 1000);
                bench_idle("idle, set locally", firer, idle, 20, 200);
                bench_idle("idle, set elsewhere 1.5 s", elsewhere, idle / 4,
                           1500, 1500);
                bench_idle("idle, set elsewhere 0.2 s", elsewhere, idle / 4,
                           200, 200);
                timer_service_destroy(elsewhere);
                timer_service_destroy(firer);
        }
        for (size_t i = 0; i < n_sizes; i++) {
                bench_claims(sizes[i]);
                bench_due(sizes[i], 1, poll_ms);
                bench_due(sizes[i], 2, poll_ms);
        }
        printf("\nraw produce is the ceiling of fired/s: every firing is one "
               "acknowledged produce plus its share of three store round "
               "trips per claim (batch 256) and one per batch to mark.\n");

        rd_kafka_consumer_close(reader);
        rd_kafka_destroy(reader);
        admin_topic(false);
        bus_destroy(bus);
        drop_db();
        store_destroy(store);
        config_deinit(&cfg);
        return 0;
}
