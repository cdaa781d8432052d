/*
 * bus.h - Kafka: the producer, group consumers, and reply listeners.
 *
 * One bus_t per process wraps an idempotent producer (acks=all) and a thread
 * that serves its delivery reports, plus a watcher that keeps a cheap
 * "broker reachable" flag fresh so callers can refuse work at once when Kafka
 * is down instead of queueing it into a void.
 *
 * Thread-safety: bus_produce, bus_is_up and bus_topic may be called from any
 * thread. A bus_consumer_t belongs to the one thread that polls it.
 *
 * Errors from librdkafka are translated to bus_err_t here and never passed up.
 */
#ifndef OMNIFY_BUS_H
#define OMNIFY_BUS_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "slice.h"

#define BUS_ERRORS(X)                                                  \
        X(BUS_OK, "ok")                                                \
        X(BUS_DOWN, "Kafka is unreachable")                            \
        X(BUS_QUEUE_FULL, "the producer queue is full")                \
        X(BUS_TIMED_OUT, "the message could not be delivered in time") \
        X(BUS_UNKNOWN_TOPIC, "the topic does not exist")               \
        X(BUS_TOO_LARGE, "the message is too large")                   \
        X(BUS_FATAL, "the producer hit a fatal error")                 \
        X(BUS_ERROR, "Kafka error")

typedef enum bus_err {
#define X(name, msg) name,
        BUS_ERRORS(X)
#undef X
} bus_err_t;

const char *bus_strerror(bus_err_t err);

typedef struct bus bus_t;

/*
 * A delivery waiter: embed it in whatever waits for a message to be
 * acknowledged (acks=all) or refused, and pass it to bus_produce. done runs
 * on the bus's delivery thread exactly once per message it was given to,
 * and must not block.
 */
typedef struct bus_delivery bus_delivery_t;
struct bus_delivery {
        void (*done)(bus_delivery_t *d, bus_err_t err);
};

/*
 * A new producer for `client_id`. Starts the delivery and watcher threads.
 * The first call of the process logs librdkafka's version.
 * Fills errstr and returns NULL on failure.
 */
bus_t *bus_new(const config_t *cfg, const char *client_id, char *errstr,
               size_t errlen);

/* Flush (bounded by the shutdown timeout), stop threads, free. NULL ok. */
void bus_destroy(bus_t *bus);

/* False once the watcher saw every broker fail; true again when one answers. */
bool bus_is_up(const bus_t *bus);

/* This producer, or another of the process, hit a fatal error (librdkafka:
 * it can never send again). Health endpoints answer 503 so the supervisor
 * restarts the process; nothing accepted is lost, since a command counts as
 * accepted only after the broker's ack. */
bool bus_failed(const bus_t *bus);

/*
 * Queue a message. Takes ownership of hdrs in every case. partition may be
 * RD_KAFKA_PARTITION_UA (partitioned by key). d (may be NULL) hears how the
 * delivery ended; when this returns non-OK there is no report. Failed
 * deliveries without a waiter are logged.
 */
bus_err_t bus_produce(bus_t *bus, const char *topic, int32_t partition,
                      slice_t key, rd_kafka_headers_t *hdrs, slice_t value,
                      bus_delivery_t *d);

/* Block until every queued message is delivered or timeout_ms passes. Not
 * for event-loop threads. */
bus_err_t bus_flush(bus_t *bus, int timeout_ms);

/* prefix + name into buf. */
void bus_topic(const config_t *cfg, const char *name, char *buf, size_t size);

/*
 * Check that every topic in names (prefixed by the caller) exists. On a
 * missing topic returns BUS_UNKNOWN_TOPIC and lists the missing ones in
 * errstr; *partitions_out (if not NULL) receives the partition count of the
 * first topic.
 */
bus_err_t bus_check_topics(bus_t *bus, const char *const *names, size_t n,
                           int *partitions_out, char *errstr, size_t errlen);

/* The underlying handle, for the admin API (tools only). */
rd_kafka_t *bus_handle(bus_t *bus);

/* -------------------------------------------------------------------------
 * Consumers
 * ---------------------------------------------------------------------- */

typedef struct bus_consumer bus_consumer_t;

/*
 * A group consumer of `topic` in consumer group `group_id`: cooperative-sticky
 * assignment, static membership when cfg->instance_id is set, offsets stored
 * by the caller after success (bus_consumer_done) and committed in the
 * background, and synchronously when partitions are revoked and at close.
 * `label` names the group in metrics (lag, rebalances, assigned partitions).
 */
bus_consumer_t *bus_consumer_new(const config_t *cfg, const char *group_id,
                                 const char *label, const char *topic,
                                 char *errstr, size_t errlen);

/* The same for several topics at once (an event subscription follows the
 * events topics of several groups under one consumer group). */
bus_consumer_t *bus_consumer_new_multi(const config_t *cfg,
                                       const char *group_id, const char *label,
                                       const char *const *topics,
                                       size_t n_topics, char *errstr,
                                       size_t errlen);

/*
 * A listener on exactly one partition of `topic`, starting at its current
 * end: replies sent before it started are not its business. No group, no
 * commits. Returns once the position is fixed, so no reply sent after this
 * returns is missed.
 */
bus_consumer_t *bus_listener_new(const config_t *cfg, const char *topic,
                                 int32_t partition, char *errstr,
                                 size_t errlen);

/*
 * A reader of every partition of `topic` from the first message at or after
 * since_ms (wall clock), or from the end for partitions with nothing newer.
 * No group, no commits: each reader sees the whole stream (edge replicas
 * use it to follow auth.events).
 */
bus_consumer_t *bus_tail_new(const config_t *cfg, const char *topic,
                             int64_t since_ms, char *errstr, size_t errlen);

/*
 * The next message or NULL after timeout_ms; also commits the stored offsets
 * every half second. Consumer errors are logged and swallowed (librdkafka
 * recovers on its own) except a fatal one (see bus_consumer_failed); the
 * caller destroys a returned message with rd_kafka_message_destroy.
 */
rd_kafka_message_t *bus_consumer_poll(bus_consumer_t *c, int timeout_ms);

/*
 * Up to max messages into msgs: waits up to timeout_ms for the first, then
 * takes only what is already fetched. Returns how many; the caller destroys
 * each. Messages of partitions revoked while the batch was gathered are
 * dropped (their next owner reads them). Commits like bus_consumer_poll.
 */
size_t bus_consumer_poll_batch(bus_consumer_t *c, rd_kafka_message_t **msgs,
                               size_t max, int timeout_ms);

/* Make a poll waiting on c return now (or the next one, at once). Any
 * thread, while c exists. */
void bus_consumer_wake(bus_consumer_t *c);

/* The consumer hit a fatal error (a static member fenced by the broker) and
 * will never read again: destroy it and create a new one. */
bool bus_consumer_failed(const bus_consumer_t *c);

/* The group is steady as librdkafka's cgrp log tells it (joined, assigned,
 * no rebalance running): when background commits are safe. False while a
 * rebalance runs, for consumers without a group, and when the log never
 * said (then commits fall back to a quiet time after each revoke). */
bool bus_consumer_steady(const bus_consumer_t *c);

/* The message's effects are durable: its offset may be committed. */
void bus_consumer_done(bus_consumer_t *c, const rd_kafka_message_t *msg);

/* Same, by topic, partition and the offset of the finished message. */
void bus_consumer_store(bus_consumer_t *c, const char *topic, int32_t partition,
                        int64_t offset);

/* Go back to offset on partition of topic (a message whose outputs were
 * not delivered is read again). Consumer thread only. */
void bus_consumer_seek(bus_consumer_t *c, const char *topic, int32_t partition,
                       int64_t offset);

/* Called from the consumer's poll, just before parts are revoked, so the
 * owner can finish and store what it holds of them. */
void bus_consumer_on_revoke(
        bus_consumer_t *c,
        void (*fn)(void *arg, const rd_kafka_topic_partition_list_t *parts),
        void *arg);

/* Commit what is done, leave the group, free. NULL ok. A join or rebalance
 * round under way is let finish first (at most 5 s), so that leaving does
 * not get commits refused; then the consumer is destroyed, also one that
 * never got an assignment. */
void bus_consumer_destroy(bus_consumer_t *c);

#endif
