/*
 * bus_internal.h - what the files of the bus share (not part of the
 * contract: callers use bus.h). bus.c holds the producer and the topic
 * checks; bus_consumer.c the consumers, listeners and tails.
 */
#ifndef OMNIFY_BUS_INTERNAL_H
#define OMNIFY_BUS_INTERNAL_H

#include <stddef.h>

#include "bus.h"

/* librdkafka's own log lines, in our JSON lines (a log_cb). */
void bus__log_cb(const rd_kafka_t *rk, int level, const char *fac,
                 const char *buf);

/* Set a librdkafka property; -1 with errstr filled when it is refused. */
int bus__set(rd_kafka_conf_t *conf, const char *name, const char *value,
             char *errstr, size_t errlen);

/* Set a numeric property of ours (a refusal is a bug: logged). */
void bus__set_int(rd_kafka_conf_t *conf, const char *name, long v);

/* A new configuration with what every client of ours has: the brokers,
 * client_id, reconnect and connection timeouts, and bus__log_cb. NULL with
 * errstr filled when librdkafka refuses a value. */
rd_kafka_conf_t *bus__base_conf(const config_t *cfg, const char *client_id,
                                char *errstr, size_t errlen);

#endif
