/*
 * bus.c - Kafka: the producer, topic checks and what the consumers share
 * (see bus.h; the consumers are bus_consumer.c).
 *
 * Template: librdkafka's examples/producer.c. The producer is idempotent
 * with acks=all; a dedicated thread polls it for delivery reports so no
 * caller ever has to.
 */
#include "bus.h"
#include "bus_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "alloc.h"
#include "log.h"

static const char *bus_errors[] = {
#define X(name, msg) msg,
        BUS_ERRORS(X)
#undef X
};

const char *bus_strerror(bus_err_t err) {
        if ((unsigned)err >= sizeof(bus_errors) / sizeof(bus_errors[0]))
                return "unknown bus error";
        return bus_errors[err];
}

static bus_err_t bus__translate(rd_kafka_resp_err_t err) {
        switch (err) {
        case RD_KAFKA_RESP_ERR_NO_ERROR:
                return BUS_OK;
        case RD_KAFKA_RESP_ERR__QUEUE_FULL:
                return BUS_QUEUE_FULL;
        case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
        case RD_KAFKA_RESP_ERR__TIMED_OUT:
        case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
                return BUS_TIMED_OUT;
        case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
        case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
                return BUS_UNKNOWN_TOPIC;
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
                return BUS_TOO_LARGE;
        case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
        case RD_KAFKA_RESP_ERR__TRANSPORT:
                return BUS_DOWN;
        case RD_KAFKA_RESP_ERR__FATAL:
                return BUS_FATAL;
        default:
                return BUS_ERROR;
        }
}

/* librdkafka's own log lines, in our JSON lines. */
void bus__log_cb(const rd_kafka_t *rk, int level, const char *fac,
                 const char *buf) {
        (void)rk;
        if (level <= LOG_ERR)
                log_error("kafka %s: %s", fac, buf);
        else if (level <= LOG_NOTICE)
                log_warn("kafka %s: %s", fac, buf);
        else
                log_debug("kafka %s: %s", fac, buf);
}

int bus__set(rd_kafka_conf_t *conf, const char *name, const char *value,
             char *errstr, size_t errlen) {
        if (rd_kafka_conf_set(conf, name, value, errstr, errlen) !=
            RD_KAFKA_CONF_OK)
                return -1;
        return 0;
}

void bus__set_int(rd_kafka_conf_t *conf, const char *name, long v) {
        char buf[32];
        char err[256];
        snprintf(buf, sizeof(buf), "%ld", v);
        /* Our own constant names: failing here is a bug, not input. */
        if (bus__set(conf, name, buf, err, sizeof(err)))
                log_error("kafka config %s: %s", name, err);
}

/* ---------------------------------------------------------------------------
 * Producer
 * ------------------------------------------------------------------------ */

struct bus {
        rd_kafka_t *rk;
        const config_t *cfg;
        atomic_bool up;
        atomic_bool stopping;
        atomic_bool failed; /* fatal producer error: never sends again */
        pthread_t poller, watcher;
        int poller_started, watcher_started;
        pthread_mutex_t lock; /* guards the watcher's sleep */
        pthread_cond_t wake;
};

static void bus__dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg,
                       void *opaque) {
        bus_delivery_t *d = msg->_private;
        (void)rk;
        (void)opaque;
        if (d) {
                d->done(d, bus__translate(msg->err));
                return;
        }
        /* Nobody waits for this one: say it loudly. */
        if (msg->err)
                log_error("kafka: delivery to %s failed: %s",
                          rd_kafka_topic_name(msg->rkt),
                          rd_kafka_err2str(msg->err));
}

/* Any producer of the process: in a monolith the edge and the groups have
 * producers of their own, and one broken producer is a broken process. */
static atomic_bool bus__process_failed;

static void bus__error_cb(rd_kafka_t *rk, int err, const char *reason,
                          void *opaque) {
        bus_t *bus = opaque;
        if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
                atomic_store(&bus->up, false);
                log_warn("kafka: all brokers down");
                return;
        }
        if (err == RD_KAFKA_RESP_ERR__FATAL) {
                char fatal[256];
                rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
                log_error("kafka producer: fatal error, restart needed: %s",
                          fatal);
                atomic_store(&bus->failed, true);
                atomic_store(&bus__process_failed, true);
                return;
        }
        log_warn("kafka: %s: %s", rd_kafka_err2name(err), reason);
}

static void *bus__poller(void *arg) {
        bus_t *bus = arg;
        while (!atomic_load(&bus->stopping))
                rd_kafka_poll(bus->rk, 100);
        return NULL;
}

/* Probe the cluster every half second with a broker-only metadata request. */
static void *bus__watcher(void *arg) {
        bus_t *bus = arg;
        int misses = 0; /* failed probes in a row */
        while (!atomic_load(&bus->stopping)) {
                const struct rd_kafka_metadata *md = NULL;
                rd_kafka_resp_err_t err =
                        rd_kafka_metadata(bus->rk, 0, NULL, &md, 800);
                bool was = atomic_load(&bus->up);
                bool ok = err == RD_KAFKA_RESP_ERR_NO_ERROR && md &&
                          md->broker_cnt > 0;
                /* One slow probe on a loaded machine is no outage: down
                 * after two in a row (all brokers down still says so at
                 * once, from librdkafka's error callback). */
                bool now = ok || (was && misses < 1);
                misses = ok ? 0 : misses + 1;
                if (md)
                        rd_kafka_metadata_destroy(md);
                atomic_store(&bus->up, now);
                if (was != now)
                        log_info("kafka: brokers %s",
                                 now ? "reachable" : "unreachable");

                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 500 * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000L;
                }
                pthread_mutex_lock(&bus->lock);
                if (!atomic_load(&bus->stopping))
                        pthread_cond_timedwait(&bus->wake, &bus->lock, &ts);
                pthread_mutex_unlock(&bus->lock);
        }
        return NULL;
}

rd_kafka_conf_t *bus__base_conf(const config_t *cfg, const char *client_id,
                                char *errstr, size_t errlen) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        if (bus__set(conf, "bootstrap.servers", cfg->kafka_brokers, errstr,
                     errlen) ||
            bus__set(conf, "client.id", client_id, errstr, errlen)) {
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        bus__set_int(conf, "reconnect.backoff.ms", 50);
        bus__set_int(conf, "reconnect.backoff.max.ms", 1000);
        bus__set_int(conf, "socket.connection.setup.timeout.ms", 5000);
        rd_kafka_conf_set_log_cb(conf, bus__log_cb);
        return conf;
}

/* Which librdkafka the process runs (it is linked statically: the build's,
 * not the system's). */
static void bus__log_version(void) {
        log_info("kafka: librdkafka %s", rd_kafka_version_str());
}

bus_t *bus_new(const config_t *cfg, const char *client_id, char *errstr,
               size_t errlen) {
        static pthread_once_t version_logged = PTHREAD_ONCE_INIT;
        bus_t *bus = xcalloc(1, sizeof(*bus));
        rd_kafka_conf_t *conf;

        pthread_once(&version_logged, bus__log_version);

        bus->cfg = cfg;
        atomic_init(&bus->up, false);
        atomic_init(&bus->stopping, false);
        atomic_init(&bus->failed, false);
        pthread_mutex_init(&bus->lock, NULL);
        pthread_cond_init(&bus->wake, NULL);

        conf = bus__base_conf(cfg, client_id, errstr, errlen);
        if (!conf)
                goto fail;
        if (bus__set(conf, "enable.idempotence", "true", errstr, errlen) ||
            bus__set(conf, "acks", "all", errstr, errlen)) {
                rd_kafka_conf_destroy(conf);
                goto fail;
        }
        bus__set_int(conf, "linger.ms", cfg->kafka_linger_ms);
        bus__set_int(conf, "message.timeout.ms", cfg->kafka_message_timeout_ms);
        rd_kafka_conf_set_opaque(conf, bus);
        rd_kafka_conf_set_dr_msg_cb(conf, bus__dr_cb);
        rd_kafka_conf_set_error_cb(conf, bus__error_cb);

        bus->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errlen);
        if (!bus->rk) {
                rd_kafka_conf_destroy(conf);
                goto fail;
        }
        if (pthread_create(&bus->poller, NULL, bus__poller, bus)) {
                snprintf(errstr, errlen, "cannot start the delivery thread");
                goto fail;
        }
        bus->poller_started = 1;
        /* A first probe before returning, so callers start with a true flag
         * when Kafka is there. */
        {
                const struct rd_kafka_metadata *md = NULL;
                if (rd_kafka_metadata(bus->rk, 0, NULL, &md, 3000) ==
                    RD_KAFKA_RESP_ERR_NO_ERROR)
                        atomic_store(&bus->up, true);
                if (md)
                        rd_kafka_metadata_destroy(md);
        }
        if (pthread_create(&bus->watcher, NULL, bus__watcher, bus)) {
                snprintf(errstr, errlen, "cannot start the watcher thread");
                goto fail;
        }
        bus->watcher_started = 1;
        return bus;

fail:
        bus_destroy(bus);
        return NULL;
}

void bus_destroy(bus_t *bus) {
        if (!bus)
                return;
        if (bus->rk) {
                rd_kafka_resp_err_t err =
                        rd_kafka_flush(bus->rk, bus->cfg->shutdown_timeout_ms);
                if (err)
                        log_error("kafka: %d message(s) not delivered at "
                                  "shutdown",
                                  rd_kafka_outq_len(bus->rk));
        }
        pthread_mutex_lock(&bus->lock);
        atomic_store(&bus->stopping, true);
        pthread_cond_broadcast(&bus->wake);
        pthread_mutex_unlock(&bus->lock);
        if (bus->watcher_started)
                pthread_join(bus->watcher, NULL);
        if (bus->poller_started)
                pthread_join(bus->poller, NULL);
        if (bus->rk)
                rd_kafka_destroy(bus->rk);
        pthread_cond_destroy(&bus->wake);
        pthread_mutex_destroy(&bus->lock);
        free(bus);
}

bool bus_is_up(const bus_t *bus) {
        return atomic_load(&((bus_t *)bus)->up);
}

bool bus_failed(const bus_t *bus) {
        return atomic_load(&((bus_t *)bus)->failed) ||
               atomic_load(&bus__process_failed);
}

rd_kafka_t *bus_handle(bus_t *bus) {
        return bus->rk;
}

bus_err_t bus_produce(bus_t *bus, const char *topic, int32_t partition,
                      slice_t key, rd_kafka_headers_t *hdrs, slice_t value,
                      bus_delivery_t *d) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
                bus->rk, RD_KAFKA_V_TOPIC(topic),
                RD_KAFKA_V_PARTITION(partition),
                RD_KAFKA_V_KEY(key.ptr, key.len),
                RD_KAFKA_V_VALUE((void *)value.ptr, value.len),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
        if (err) {
                /* Not queued: the headers are still ours. */
                rd_kafka_headers_destroy(hdrs);
                return bus__translate(err);
        }
        return BUS_OK;
}

bus_err_t bus_flush(bus_t *bus, int timeout_ms) {
        return bus__translate(rd_kafka_flush(bus->rk, timeout_ms));
}

void bus_topic(const config_t *cfg, const char *name, char *buf, size_t size) {
        snprintf(buf, size, "%s%s", cfg->topic_prefix, name);
}

bus_err_t bus_check_topics(bus_t *bus, const char *const *names, size_t n,
                           int *partitions_out, char *errstr, size_t errlen) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err =
                rd_kafka_metadata(bus->rk, 1, NULL, &md, 5000);
        size_t off = 0;
        bus_err_t ret = BUS_OK;

        if (err) {
                snprintf(errstr, errlen, "cannot read cluster metadata: %s",
                         rd_kafka_err2str(err));
                return bus__translate(err) == BUS_OK ? BUS_ERROR
                                                     : bus__translate(err);
        }
        errstr[0] = '\0';
        for (size_t i = 0; i < n; i++) {
                int found = 0;
                for (int t = 0; t < md->topic_cnt; t++) {
                        if (strcmp(md->topics[t].topic, names[i]) == 0 &&
                            md->topics[t].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                                found = 1;
                                if (i == 0 && partitions_out)
                                        *partitions_out =
                                                md->topics[t].partition_cnt;
                        }
                }
                if (!found) {
                        ret = BUS_UNKNOWN_TOPIC;
                        if (off < errlen)
                                off += (size_t)snprintf(
                                        errstr + off, errlen - off, "%s%s",
                                        off ? ", " : "missing topics: ",
                                        names[i]);
                }
        }
        rd_kafka_metadata_destroy(md);
        return ret;
}
