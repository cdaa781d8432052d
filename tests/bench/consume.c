/*
 * consume.c - consumer-throughput and restart measurements, and the bench's
 * clean-up.
 *
 *   bench-consume fill -t TOPIC -T TYPE -n N
 *       produce N valid commands (UUIDv7 id, type, schema-version 1,
 *       created-at; no reply-to, so handling them produces nothing) with an
 *       empty msgpack map as value, keyed by id, then flush.
 *   bench-consume drain -t TOPIC -g GROUP -n N [-s MONGO_URI -B DB -W 1|2]
 *       the raw baseline: a group consumer with the runtime's settings reads
 *       N messages, storing each offset after the message as the runtime
 *       does. With -W 1 it also inserts one operation-log-like document per
 *       message into DB.operations; with -W 2 it first looks the id up, as
 *       the runtime's oplog_find + oplog_record do.
 *       With -W 3 it writes in bulk per poll: one document per message into
 *       DB.things and its operation-log-like record into DB.operations, two
 *       insert_many round trips per batch (what a batch handler and the
 *       runtime's grouped records do).
 *   bench-consume respond -t TOPIC -g GROUP -n N
 *       the raw responder: as drain, and one reply per message to the
 *       message's reply-to (topic:partition), as a group answering a read.
 *   bench-consume fill ... -R REPLY_TOPIC -P PARTITION
 *       the commands carry reply-to REPLY_TOPIC:PARTITION.
 *   bench-consume watch -u METRICS_URL -m SERIES_PREFIX -n N [-x SECS] --
 * CMD... exec CMD and poll METRICS_URL every 2 ms until the sum of the series
 *       starting with SERIES_PREFIX reaches N; then SIGTERM CMD and wait.
 *   bench-consume first -t TOPIC -T TYPE -R REPLY_TOPIC -P PARTITION -- CMD...
 *       produce one command whose reply-to is REPLY_TOPIC:PARTITION, exec CMD
 *       and time until the reply arrives: exec -> first message handled.
 *   bench-consume cleanup -p TOPIC_PREFIX [-s MONGO_URI -B DB_PREFIX]
 *       delete every topic whose name starts with TOPIC_PREFIX and drop
 *       every database whose name starts with DB_PREFIX.
 *
 * Every timed mode prints one key=value line. Times are from this process's
 * start (drain) or from the exec of CMD (watch, first), so group join and
 * start-up are included; steady_rps excludes them: messages after the first
 * divided by the time from the first to the last.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <mongoc/mongoc.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"
#include "msgid.h"

typedef struct bc_opts {
        const char *brokers, *topic, *type, *group, *mongo_uri, *db, *url,
                *series;
        const char *reply_topic, *prefix;
        long count;
        int store_ops, partition;
        int respond; /* respond mode: one reply per message */
        double max_s;
        char **cmd;
} bc_opts_t;

static uint64_t bc__now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void bc__fail(const char *what, const char *why) {
        fprintf(stderr, "bench-consume: %s: %s\n", what, why);
        exit(1);
}

static void bc__set(rd_kafka_conf_t *conf, const char *name,
                    const char *value) {
        char err[512];
        if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) !=
            RD_KAFKA_CONF_OK)
                bc__fail(name, err);
}

static double bc__cpu_s(const struct rusage *ru) {
        return (double)ru->ru_utime.tv_sec +
               (double)ru->ru_utime.tv_usec / 1e6 +
               (double)ru->ru_stime.tv_sec + (double)ru->ru_stime.tv_usec / 1e6;
}

/* VmRSS and VmHWM of pid in KiB (0 when unknown). */
static void bc__rss(pid_t pid, long *rss, long *hwm) {
        char path[64], line[256];
        FILE *f;
        *rss = *hwm = 0;
        snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
        f = fopen(path, "r");
        if (!f)
                return;
        while (fgets(line, sizeof(line), f)) {
                if (strncmp(line, "VmRSS:", 6) == 0)
                        *rss = strtol(line + 6, NULL, 10);
                else if (strncmp(line, "VmHWM:", 6) == 0)
                        *hwm = strtol(line + 6, NULL, 10);
        }
        fclose(f);
}

static rd_kafka_t *bc__producer(const bc_opts_t *o) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char err[512];
        rd_kafka_t *rk;
        bc__set(conf, "bootstrap.servers", o->brokers);
        bc__set(conf, "client.id", "bench-consume");
        bc__set(conf, "enable.idempotence", "true");
        bc__set(conf, "acks", "all");
        bc__set(conf, "linger.ms", "5");
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        if (!rk)
                bc__fail("producer", err);
        return rk;
}

/* One command as the edge would send it (env_headers), without reply-to
 * unless given. */
static void bc__produce_command(rd_kafka_t *rk, const char *topic,
                                const char *type, const char *reply_to) {
        static const char empty_map[1] = {(char)0x80};
        char id[MSGID_TEXT_SIZE];
        msgid_t mid;
        env_t env = {0};
        rd_kafka_resp_err_t err;
        msgid_new(&mid);
        msgid_format(&mid, id);
        env.id = slice_of(id);
        env.type = slice_of(type);
        env.schema_version = 1;
        env.created_at_ms = (int64_t)clock_wall_ms();
        env.correlation_id = env.id;
        env.reply_to = slice_of(reply_to);
        for (;;) {
                rd_kafka_headers_t *hdrs = env_headers(&env);
                err = rd_kafka_producev(
                        rk, RD_KAFKA_V_TOPIC(topic),
                        RD_KAFKA_V_KEY(id, MSGID_TEXT_LEN),
                        RD_KAFKA_V_VALUE((void *)empty_map, 1),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
                if (!err)
                        return;
                rd_kafka_headers_destroy(hdrs);
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        bc__fail("produce", rd_kafka_err2str(err));
                rd_kafka_poll(rk, 10);
        }
}

/* ---------------------------------------------------------------------------
 * fill
 * ------------------------------------------------------------------------ */

static int bc_fill(const bc_opts_t *o) {
        rd_kafka_t *rk = bc__producer(o);
        uint64_t t0 = bc__now();
        char reply_to[300] = "";
        if (o->reply_topic)
                snprintf(reply_to, sizeof(reply_to), "%s:%d", o->reply_topic,
                         o->partition);
        for (long i = 0; i < o->count; i++) {
                bc__produce_command(rk, o->topic, o->type,
                                    reply_to[0] ? reply_to : NULL);
                if ((i & 1023) == 0)
                        rd_kafka_poll(rk, 0);
        }
        if (rd_kafka_flush(rk, 60000))
                bc__fail("flush", "messages left undelivered after 60 s");
        fprintf(stderr, "fill: %ld message(s) to %s in %.0f ms\n", o->count,
                o->topic, (double)(bc__now() - t0) / 1e6);
        rd_kafka_destroy(rk);
        return 0;
}

/* ---------------------------------------------------------------------------
 * drain: raw librdkafka (optionally with store writes)
 * ------------------------------------------------------------------------ */

static void bc__rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t *parts,
                          void *opaque) {
        rd_kafka_error_t *e;
        (void)opaque;
        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                e = rd_kafka_incremental_assign(rk, parts);
        } else {
                rd_kafka_commit(rk, NULL, 0);
                e = rd_kafka_incremental_unassign(rk, parts);
        }
        if (e)
                rd_kafka_error_destroy(e);
}

/* The operation-log record the runtime writes (oplog_record), and the
 * lookup before it (oplog_find). */
static long bc_store_errors;

static void bc__store(mongoc_collection_t *coll, const rd_kafka_message_t *m,
                      int ops) {
        bson_t doc = BSON_INITIALIZER, filter = BSON_INITIALIZER,
               opts = BSON_INITIALIZER;
        bson_error_t e;
        const void *id = "";
        size_t id_len = 0;
        rd_kafka_headers_t *hdrs = NULL;
        int64_t now = (int64_t)clock_wall_ms();
        static const uint8_t body[] = {0x80};

        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR)
                rd_kafka_header_get_last(hdrs, "id", &id, &id_len);
        if (ops >= 2) {
                const bson_t *found;
                mongoc_cursor_t *cur;
                bson_append_utf8(&filter, "_id", 3, id, (int)id_len);
                BSON_APPEND_INT64(&opts, "limit", 1);
                cur = mongoc_collection_find_with_opts(coll, &filter, &opts,
                                                       NULL);
                while (mongoc_cursor_next(cur, &found))
                        ;
                mongoc_cursor_destroy(cur);
        }
        bson_append_utf8(&doc, "_id", 3, id, (int)id_len);
        BSON_APPEND_UTF8(&doc, "group", "bench");
        BSON_APPEND_UTF8(&doc, "type", "bench.raw");
        BSON_APPEND_UTF8(&doc, "tenant", "");
        BSON_APPEND_INT32(&doc, "status", 200);
        BSON_APPEND_BINARY(&doc, "body", BSON_SUBTYPE_BINARY, body,
                           sizeof(body));
        BSON_APPEND_DATE_TIME(&doc, "created_at", now);
        BSON_APPEND_DATE_TIME(&doc, "expires_at", now + 86400000);
        if (!mongoc_collection_insert_one(coll, &doc, NULL, NULL, &e) &&
            !bc_store_errors++)
                fprintf(stderr, "drain: insert: %s\n", e.message);
        bson_destroy(&doc);
        bson_destroy(&filter);
        bson_destroy(&opts);
}

/* -W 3: per batch, one insert_many of the handler's documents and one of
 * the operation records. */
static void bc__store_bulk(mongoc_collection_t *ops,
                           mongoc_collection_t *things, rd_kafka_message_t **ms,
                           size_t n) {
        const bson_t **ptrs = bson_malloc0(n * sizeof(bson_t *));
        bson_t opts = BSON_INITIALIZER;
        bson_error_t e;
        int64_t now = (int64_t)clock_wall_ms();
        static const uint8_t body[] = {0x80};
        BSON_APPEND_BOOL(&opts, "ordered", false);
        for (int pass = 0; pass < 2; pass++) {
                for (size_t i = 0; i < n; i++) {
                        bson_t *doc = bson_new();
                        const void *id = "";
                        size_t id_len = 0;
                        rd_kafka_headers_t *hdrs = NULL;
                        if (rd_kafka_message_headers(ms[i], &hdrs) ==
                            RD_KAFKA_RESP_ERR_NO_ERROR)
                                rd_kafka_header_get_last(hdrs, "id", &id,
                                                         &id_len);
                        bson_append_utf8(doc, "_id", 3, id, (int)id_len);
                        if (pass == 0) {
                                BSON_APPEND_UTF8(doc, "tenant", "t1");
                                BSON_APPEND_INT64(doc, "at", now);
                        } else {
                                BSON_APPEND_UTF8(doc, "group", "bench");
                                BSON_APPEND_UTF8(doc, "type", "bench.raw");
                                BSON_APPEND_INT32(doc, "status", 200);
                                BSON_APPEND_BINARY(doc, "body",
                                                   BSON_SUBTYPE_BINARY, body,
                                                   sizeof(body));
                                BSON_APPEND_DATE_TIME(doc, "created_at", now);
                                BSON_APPEND_DATE_TIME(doc, "expires_at",
                                                      now + 86400000);
                        }
                        ptrs[i] = doc;
                }
                if (!mongoc_collection_insert_many(pass ? ops : things, ptrs, n,
                                                   &opts, NULL, &e) &&
                    !bc_store_errors++)
                        fprintf(stderr, "drain: insert_many: %s\n", e.message);
                for (size_t i = 0; i < n; i++)
                        bson_destroy((bson_t *)ptrs[i]);
        }
        bson_destroy(&opts);
        bson_free(ptrs);
}

/* respond: the reply a group would send to the message's reply-to. */
static void bc__reply(rd_kafka_t *prod, const rd_kafka_message_t *m) {
        static const char body[] = "\x81\xa2ok\xc3";
        rd_kafka_headers_t *hdrs = NULL;
        const void *rt = NULL, *id = NULL;
        size_t rt_len = 0, id_len = 0;
        char topic[256], reply_id[MSGID_TEXT_SIZE];
        const char *colon;
        msgid_t mid;
        env_t r = {0};
        if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
            rd_kafka_header_get_last(hdrs, "reply-to", &rt, &rt_len) ||
            rd_kafka_header_get_last(hdrs, "id", &id, &id_len) ||
            rt_len >= sizeof(topic))
                return;
        memcpy(topic, rt, rt_len);
        topic[rt_len] = '\0';
        colon = strrchr(topic, ':');
        if (!colon)
                return;
        topic[colon - topic] = '\0';
        msgid_new(&mid);
        msgid_format(&mid, reply_id);
        r.id = slice_of(reply_id);
        r.type = slice_of("ml.status.reply");
        r.schema_version = 1;
        r.created_at_ms = (int64_t)clock_wall_ms();
        r.correlation_id = (slice_t){id, id_len};
        r.status = 200;
        for (;;) {
                rd_kafka_headers_t *h = env_headers(&r);
                rd_kafka_resp_err_t err = rd_kafka_producev(
                        prod, RD_KAFKA_V_TOPIC(topic),
                        RD_KAFKA_V_PARTITION(atoi(colon + 1)),
                        RD_KAFKA_V_KEY(id, id_len),
                        RD_KAFKA_V_VALUE((void *)body, sizeof(body) - 1),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
                if (!err)
                        return;
                rd_kafka_headers_destroy(h);
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        bc__fail("reply", rd_kafka_err2str(err));
                rd_kafka_poll(prod, 10);
        }
}

static mongoc_collection_t *bc__collection(const bc_opts_t *o,
                                           mongoc_client_t **client) {
        bson_t cmd = BSON_INITIALIZER, indexes, index, keys, reply;
        mongoc_database_t *d;
        bson_error_t e;
        mongoc_init();
        *client = mongoc_client_new(o->mongo_uri);
        if (!*client)
                bc__fail("store", "bad URI");
        /* The TTL index oplog_init creates, so inserts maintain the same. */
        d = mongoc_client_get_database(*client, o->db);
        BSON_APPEND_UTF8(&cmd, "createIndexes", "operations");
        BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &indexes);
        BSON_APPEND_DOCUMENT_BEGIN(&indexes, "0", &index);
        BSON_APPEND_DOCUMENT_BEGIN(&index, "key", &keys);
        BSON_APPEND_INT32(&keys, "expires_at", 1);
        bson_append_document_end(&index, &keys);
        BSON_APPEND_UTF8(&index, "name", "expires_at_ttl");
        BSON_APPEND_INT64(&index, "expireAfterSeconds", 0);
        bson_append_document_end(&indexes, &index);
        bson_append_array_end(&cmd, &indexes);
        if (!mongoc_database_write_command_with_opts(d, &cmd, NULL, &reply, &e))
                fprintf(stderr, "drain: index: %s\n", e.message);
        bson_destroy(&reply);
        bson_destroy(&cmd);
        mongoc_database_destroy(d);
        return mongoc_client_get_collection(*client, o->db, "operations");
}

static int bc_drain(const bc_opts_t *o) {
        uint64_t t0 = bc__now(), t_first = 0, t_last = 0;
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_topic_partition_list_t *subs;
        mongoc_client_t *client = NULL;
        mongoc_collection_t *coll = NULL, *things = NULL;
        rd_kafka_t *rk, *prod = NULL;
        rd_kafka_message_t *batch[500];
        char err[512];
        long n = 0, rss = 0, hwm = 0;
        double self_cpu;

        if (o->store_ops) {
                coll = bc__collection(o, &client);
                things = mongoc_client_get_collection(client, o->db, "things");
        }
        if (o->respond) {
                /* The runtime's producer settings (bus_new, linger 0). */
                rd_kafka_conf_t *pc = rd_kafka_conf_new();
                bc__set(pc, "bootstrap.servers", o->brokers);
                bc__set(pc, "client.id", "bench-respond");
                bc__set(pc, "enable.idempotence", "true");
                bc__set(pc, "acks", "all");
                bc__set(pc, "linger.ms", "0");
                prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof(err));
                if (!prod)
                        bc__fail("producer", err);
        }
        /* bus_consumer_new's settings. */
        bc__set(conf, "bootstrap.servers", o->brokers);
        bc__set(conf, "client.id", "bench-drain");
        bc__set(conf, "group.id", o->group);
        bc__set(conf, "partition.assignment.strategy", "cooperative-sticky");
        bc__set(conf, "enable.auto.commit", "true");
        bc__set(conf, "enable.auto.offset.store", "false");
        bc__set(conf, "auto.offset.reset", "earliest");
        bc__set(conf, "auto.commit.interval.ms", "500");
        bc__set(conf, "session.timeout.ms", "10000");
        bc__set(conf, "heartbeat.interval.ms", "1000");
        bc__set(conf, "fetch.wait.max.ms", "100");
        rd_kafka_conf_set_rebalance_cb(conf, bc__rebalance);
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        if (!rk)
                bc__fail("consumer", err);
        rd_kafka_poll_set_consumer(rk);
        subs = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(subs, o->topic,
                                          RD_KAFKA_PARTITION_UA);
        if (rd_kafka_subscribe(rk, subs))
                bc__fail("subscribe", o->topic);
        rd_kafka_topic_partition_list_destroy(subs);

        while (n < o->count && (double)(bc__now() - t0) / 1e9 < o->max_s) {
                size_t k = 0;
                /* What is fetched, up to 500: the runtime's batch. */
                for (int wait = 100; k < 500; wait = 0) {
                        rd_kafka_message_t *m =
                                rd_kafka_consumer_poll(rk, wait);
                        if (!m)
                                break;
                        if (m->err) {
                                rd_kafka_message_destroy(m);
                                continue;
                        }
                        batch[k++] = m;
                }
                if (!k)
                        continue;
                if (coll && o->store_ops == 3)
                        bc__store_bulk(coll, things, batch, k);
                for (size_t i = 0; i < k; i++) {
                        rd_kafka_message_t *m = batch[i];
                        rd_kafka_topic_partition_list_t *done;
                        if (coll && o->store_ops < 3)
                                bc__store(coll, m, o->store_ops);
                        if (prod)
                                bc__reply(prod, m);
                        done = rd_kafka_topic_partition_list_new(1);
                        rd_kafka_topic_partition_list_add(
                                done, rd_kafka_topic_name(m->rkt), m->partition)
                                ->offset = m->offset + 1;
                        rd_kafka_offsets_store(rk, done);
                        rd_kafka_topic_partition_list_destroy(done);
                        rd_kafka_message_destroy(m);
                        if (!n)
                                t_first = bc__now();
                        n++;
                }
                if (prod)
                        rd_kafka_poll(prod, 0);
                t_last = bc__now();
        }
        if (prod) {
                rd_kafka_flush(prod, 10000);
                t_last = bc__now();
        }
        {
                struct rusage ru;
                getrusage(RUSAGE_SELF, &ru);
                self_cpu = bc__cpu_s(&ru);
                bc__rss(getpid(), &rss, &hwm);
        }
        printf("drain count=%ld start_to_first_ms=%.1f start_to_all_ms=%.1f "
               "steady_rps=%.0f "
               "store_ops=%d store_errors=%ld cpu_s=%.3f rss_kib=%ld "
               "hwm_kib=%ld\n",
               n, (double)(t_first - t0) / 1e6, (double)(t_last - t0) / 1e6,
               n > 1 && t_last > t_first
                       ? (double)(n - 1) * 1e9 / (double)(t_last - t_first)
                       : 0.0,
               o->store_ops, bc_store_errors, self_cpu, rss, hwm);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        if (prod)
                rd_kafka_destroy(prod);
        if (coll) {
                mongoc_collection_destroy(things);
                mongoc_collection_destroy(coll);
                mongoc_client_destroy(client);
                mongoc_cleanup();
        }
        return n == o->count ? 0 : 1;
}

/* ---------------------------------------------------------------------------
 * watch: a real group process, timed through its /metrics
 * ------------------------------------------------------------------------ */

/* GET url (http://127.0.0.1:PORT/path) into buf; -1 when not answering. */
static long bc__http_get(const char *url, char *buf, size_t size) {
        struct sockaddr_in sa = {0};
        char host[64], req[512];
        const char *p = url + 7, *slash;
        int port = 80, fd;
        size_t len = 0;
        if (strncmp(url, "http://", 7) != 0)
                bc__fail("url", url);
        slash = strchr(p, '/');
        if (!slash)
                bc__fail("url", url);
        snprintf(host, sizeof(host), "%.*s", (int)(slash - p), p);
        if (strchr(host, ':')) {
                port = atoi(strchr(host, ':') + 1);
                *strchr(host, ':') = '\0';
        }
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
                bc__fail("url host (IPv4 only)", host);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                close(fd);
                return -1;
        }
        snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                 slash, host);
        if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
                close(fd);
                return -1;
        }
        for (;;) {
                ssize_t n = recv(fd, buf + len, size - 1 - len, 0);
                if (n <= 0)
                        break;
                len += (size_t)n;
                if (len == size - 1)
                        break;
        }
        close(fd);
        buf[len] = '\0';
        return (long)len;
}

static long bc__series_sum(const char *text, const char *prefix) {
        size_t plen = strlen(prefix);
        long sum = 0;
        for (const char *line = text; line && *line;
             line = strchr(line, '\n')) {
                if (*line == '\n')
                        line++;
                if (strncmp(line, prefix, plen) == 0) {
                        const char *sp = strchr(line, ' ');
                        if (sp)
                                sum += strtol(sp + 1, NULL, 10);
                }
        }
        return sum;
}

static pid_t bc__spawn(char **cmd) {
        pid_t pid = fork();
        if (pid < 0)
                bc__fail("fork", strerror(errno));
        if (pid == 0) {
                execvp(cmd[0], cmd);
                fprintf(stderr, "bench-consume: exec %s: %s\n", cmd[0],
                        strerror(errno));
                _exit(127);
        }
        return pid;
}

/* SIGTERM, wait (15 s at most, then SIGKILL); the child's CPU seconds. */
static double bc__stop(pid_t pid) {
        struct rusage ru = {0};
        int status;
        kill(pid, SIGTERM);
        for (int i = 0; i < 1500; i++) {
                if (wait4(pid, &status, WNOHANG, &ru) == pid)
                        return bc__cpu_s(&ru);
                usleep(10000);
        }
        kill(pid, SIGKILL);
        wait4(pid, &status, 0, &ru);
        return bc__cpu_s(&ru);
}

static int bc_watch(const bc_opts_t *o) {
        static char buf[1 << 20];
        uint64_t t0, t_first = 0, t_all = 0, now;
        long first_count = 0, count = 0, rss = 0, hwm = 0;
        double cpu_s = 0;
        pid_t pid = 0;

        t0 = bc__now();
        if (o->cmd && o->cmd[0])
                pid = bc__spawn(o->cmd);
        for (;;) {
                struct timespec ts = {0, 2000000L};
                now = bc__now();
                if ((double)(now - t0) / 1e9 > o->max_s)
                        break;
                if (bc__http_get(o->url, buf, sizeof(buf)) > 0) {
                        count = bc__series_sum(buf, o->series);
                        if (count > 0 && !t_first) {
                                t_first = bc__now();
                                first_count = count;
                        }
                        if (count >= o->count) {
                                t_all = bc__now();
                                break;
                        }
                }
                nanosleep(&ts, NULL);
        }
        if (pid) {
                bc__rss(pid, &rss, &hwm);
                cpu_s = bc__stop(pid);
        }
        printf("watch count=%ld pid=%ld start_to_first_ms=%.1f "
               "start_to_all_ms=%.1f "
               "steady_rps=%.0f cpu_s=%.3f rss_kib=%ld hwm_kib=%ld\n",
               count, (long)pid, t_first ? (double)(t_first - t0) / 1e6 : -1.0,
               t_all ? (double)(t_all - t0) / 1e6 : -1.0,
               t_all > t_first && count > first_count
                       ? (double)(count - first_count) * 1e9 /
                                 (double)(t_all - t_first)
                       : 0.0,
               cpu_s, rss, hwm);
        return t_all ? 0 : 1;
}

/* ---------------------------------------------------------------------------
 * first: exec -> first message handled (its reply received)
 * ------------------------------------------------------------------------ */

static int bc_first(const bc_opts_t *o) {
        rd_kafka_t *prod = bc__producer(o), *lis;
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_topic_partition_list_t *parts;
        char err[512], reply_to[300];
        int64_t lo = 0, hi = 0;
        uint64_t t0, t_reply = 0;
        pid_t pid;

        bc__set(conf, "bootstrap.servers", o->brokers);
        bc__set(conf, "group.id", "bench-first-listener");
        bc__set(conf, "enable.auto.commit", "false");
        bc__set(conf, "fetch.wait.max.ms", "10");
        lis = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        if (!lis)
                bc__fail("listener", err);
        rd_kafka_poll_set_consumer(lis);
        if (rd_kafka_query_watermark_offsets(lis, o->reply_topic, o->partition,
                                             &lo, &hi, 10000))
                bc__fail("watermarks", o->reply_topic);
        parts = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(parts, o->reply_topic, o->partition)
                ->offset = hi;
        rd_kafka_assign(lis, parts);
        rd_kafka_topic_partition_list_destroy(parts);

        /* The command waits in the topic while the group is down. */
        snprintf(reply_to, sizeof(reply_to), "%s:%d", o->reply_topic,
                 o->partition);
        bc__produce_command(prod, o->topic, o->type, reply_to);
        if (rd_kafka_flush(prod, 10000))
                bc__fail("flush", "the command was not delivered");
        /* Let the listener reach its position before the clock starts. */
        for (int i = 0; i < 20; i++) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(lis, 10);
                if (m)
                        rd_kafka_message_destroy(m);
        }

        t0 = bc__now();
        pid = bc__spawn(o->cmd);
        while ((double)(bc__now() - t0) / 1e9 < o->max_s) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(lis, 5);
                if (!m)
                        continue;
                if (!m->err) {
                        t_reply = bc__now();
                        rd_kafka_message_destroy(m);
                        break;
                }
                rd_kafka_message_destroy(m);
        }
        printf("first exec_to_reply_ms=%.1f\n",
               t_reply ? (double)(t_reply - t0) / 1e6 : -1.0);
        fflush(stdout);
        bc__stop(pid);
        rd_kafka_destroy(lis);
        rd_kafka_destroy(prod);
        return t_reply ? 0 : 1;
}

/* ---------------------------------------------------------------------------
 * cleanup
 * ------------------------------------------------------------------------ */

static void bc__delete_topics(const bc_opts_t *o) {
        rd_kafka_t *rk = bc__producer(o);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_DeleteTopic_t **del;
        rd_kafka_queue_t *q;
        size_t n = 0, plen = strlen(o->prefix);

        if (plen == 0)
                bc__fail("cleanup", "an empty prefix would delete every topic");
        if (rd_kafka_metadata(rk, 1, NULL, &md, 10000))
                bc__fail("cleanup", "cannot read metadata");
        del = calloc((size_t)md->topic_cnt + 1, sizeof(*del));
        for (int i = 0; i < md->topic_cnt; i++)
                if (strncmp(md->topics[i].topic, o->prefix, plen) == 0)
                        del[n++] =
                                rd_kafka_DeleteTopic_new(md->topics[i].topic);
        if (n) {
                rd_kafka_event_t *ev;
                q = rd_kafka_queue_new(rk);
                rd_kafka_DeleteTopics(rk, del, n, NULL, q);
                ev = rd_kafka_queue_poll(q, 30000);
                if (ev)
                        rd_kafka_event_destroy(ev);
                rd_kafka_queue_destroy(q);
                rd_kafka_DeleteTopic_destroy_array(del, n);
        }
        fprintf(stderr, "cleanup: deleted %zu topic(s) starting with %s\n", n,
                o->prefix);
        free(del);
        rd_kafka_metadata_destroy(md);
        rd_kafka_destroy(rk);
}

static void bc__drop_databases(const bc_opts_t *o) {
        mongoc_client_t *client;
        bson_error_t e;
        char **names;
        size_t plen = strlen(o->db), n = 0;
        mongoc_init();
        client = mongoc_client_new(o->mongo_uri);
        if (!client || plen == 0)
                bc__fail("cleanup", "bad store URI or empty database prefix");
        names = mongoc_client_get_database_names_with_opts(client, NULL, &e);
        for (size_t i = 0; names && names[i]; i++) {
                if (strncmp(names[i], o->db, plen) == 0) {
                        mongoc_database_t *d =
                                mongoc_client_get_database(client, names[i]);
                        if (mongoc_database_drop(d, &e))
                                n++;
                        mongoc_database_destroy(d);
                }
        }
        bson_strfreev(names);
        fprintf(stderr, "cleanup: dropped %zu database(s) starting with %s\n",
                n, o->db);
        mongoc_client_destroy(client);
        mongoc_cleanup();
}

static void bc__usage(void) {
        fprintf(stderr, "usage: bench-consume fill|drain|watch|first|cleanup "
                        "[options] [-- CMD...]\n"
                        "  -b BROKERS -t TOPIC -T TYPE -n N -g GROUP -s "
                        "MONGO_URI -B DB -W STORE_OPS\n"
                        "  -u METRICS_URL -m SERIES_PREFIX -R REPLY_TOPIC -P "
                        "PARTITION -p TOPIC_PREFIX\n"
                        "  -x MAX_SECONDS\n");
        exit(2);
}

int main(int argc, char **argv) {
        bc_opts_t o = {0};
        const char *mode;
        int opt;

        if (argc < 2)
                bc__usage();
        mode = argv[1];
        o.brokers = "127.0.0.1:9092";
        o.type = "ml.status";
        o.max_s = 120;
        o.partition = 15;
        optind = 2;
        while ((opt = getopt(argc, argv, "+b:t:T:n:g:s:B:W:u:m:R:P:p:x:h")) !=
               -1) {
                switch (opt) {
                case 'b':
                        o.brokers = optarg;
                        break;
                case 't':
                        o.topic = optarg;
                        break;
                case 'T':
                        o.type = optarg;
                        break;
                case 'n':
                        o.count = atol(optarg);
                        break;
                case 'g':
                        o.group = optarg;
                        break;
                case 's':
                        o.mongo_uri = optarg;
                        break;
                case 'B':
                        o.db = optarg;
                        break;
                case 'W':
                        o.store_ops = atoi(optarg);
                        break;
                case 'u':
                        o.url = optarg;
                        break;
                case 'm':
                        o.series = optarg;
                        break;
                case 'R':
                        o.reply_topic = optarg;
                        break;
                case 'P':
                        o.partition = atoi(optarg);
                        break;
                case 'p':
                        o.prefix = optarg;
                        break;
                case 'x':
                        o.max_s = atof(optarg);
                        break;
                default:
                        bc__usage();
                }
        }
        if (optind < argc)
                o.cmd = argv + optind;
        signal(SIGPIPE, SIG_IGN);

        if (strcmp(mode, "fill") == 0 && o.topic && o.count > 0)
                return bc_fill(&o);
        if (strcmp(mode, "respond") == 0)
                o.respond = 1;
        if ((o.respond || strcmp(mode, "drain") == 0) && o.topic && o.group &&
            o.count > 0 && (!o.store_ops || (o.mongo_uri && o.db)))
                return bc_drain(&o);
        if (strcmp(mode, "watch") == 0 && o.url && o.series && o.count > 0)
                return bc_watch(&o);
        if (strcmp(mode, "first") == 0 && o.topic && o.reply_topic && o.cmd)
                return bc_first(&o);
        if (strcmp(mode, "cleanup") == 0 && (o.prefix || o.db)) {
                if (o.prefix)
                        bc__delete_topics(&o);
                if (o.db && o.mongo_uri)
                        bc__drop_databases(&o);
                return 0;
        }
        bc__usage();
        return 2;
}
