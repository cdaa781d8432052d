/*
 * kadmin_internal.h - what kadmin.c and kadmin_groups.c share: the client
 * and its request helpers. Not for other files.
 */
#ifndef OMNIFY_KADMIN_INTERNAL_H
#define OMNIFY_KADMIN_INTERNAL_H

#include <librdkafka/rdkafka.h>
#include <stdatomic.h>

#include "kadmin.h"

#define KADMIN_TIMEOUT_MS 5000

struct kadmin {
        rd_kafka_t *rk;       /* admin calls, metadata, offsets */
        rd_kafka_t *fetcher;  /* timestamps: assign-only consumer, lazy */
        rd_kafka_queue_t *qu; /* admin results */
        char *brokers;
        atomic_uint_fast64_t requests; /* statistics: sum of brokers' tx */
        atomic_uint_fast64_t stats_seen;
};

/* errstr "<what>: <librdkafka's message>"; the error as ours. */
kadmin_err_t kadmin__fail(rd_kafka_resp_err_t err, const char *what,
                          char *errstr, size_t errlen);
/* The next admin result of type, or NULL after the timeout (errstr). */
rd_kafka_event_t *kadmin__wait(kadmin_t *ka, rd_kafka_event_type_t type,
                               char *errstr, size_t errlen);
/* Options for one admin call, with our request timeout. */
rd_kafka_AdminOptions_t *kadmin__options(kadmin_t *ka, rd_kafka_admin_op_t op);

#endif
