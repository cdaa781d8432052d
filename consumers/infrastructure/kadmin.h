/*
 * kadmin.h - the infrastructure group's own Kafka admin client: cluster
 * metadata, watermarks, topic configs, consumer groups and their committed
 * offsets, message timestamps, offset resets.
 *
 * It is a client of its own (not the bus's producer), so its requests
 * never queue behind the group's messages, and every call is bounded by a
 * timeout: a broker that does not answer gives an error within seconds,
 * never a hang. Calls block the calling thread (the sampler's handler).
 *
 * Errors from librdkafka are translated to KADMIN_* here, with the
 * broker's words in errstr.
 *
 * Thread-safety: one thread at a time per kadmin_t (the sampler); the
 * request counter may be read from any thread.
 */
#ifndef OMNIFY_INFRA_KADMIN_H
#define OMNIFY_INFRA_KADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define KADMIN_ERRORS(X)                                       \
        X(KADMIN_OK, "ok")                                     \
        X(KADMIN_DOWN, "the cluster did not answer in time")   \
        X(KADMIN_REFUSED, "the cluster refused the request")   \
        X(KADMIN_NOT_FOUND, "no such consumer group or topic") \
        X(KADMIN_ERROR, "Kafka admin error")

typedef enum kadmin_err {
#define X(name, msg) name,
        KADMIN_ERRORS(X)
#undef X
} kadmin_err_t;

const char *kadmin_strerror(kadmin_err_t err);

typedef struct kadmin kadmin_t;

#define KADMIN_UNKNOWN (-1001) /* an offset or value not known */

typedef struct kadmin_partition {
        int32_t id;
        int32_t leader; /* -1: none */
        int replicas, isr;
        int64_t low, high; /* watermarks; KADMIN_UNKNOWN when not asked */
} kadmin_partition_t;

typedef struct kadmin_topic {
        char *name;
        kadmin_partition_t *parts;
        int n_parts;
        int replication;
        int64_t retention_ms;    /* KADMIN_UNKNOWN: configs not read */
        int64_t retention_bytes; /* -1: unbounded */
        char cleanup[32];
        char error[128]; /* "" when fine */
} kadmin_topic_t;

typedef struct kadmin_broker {
        int32_t id;
        char host[256];
        int port;
} kadmin_broker_t;

typedef struct kadmin_cluster {
        kadmin_broker_t *brokers;
        size_t n_brokers;
        int32_t controller; /* -1: unknown */
        kadmin_topic_t *topics;
        size_t n_topics;
} kadmin_cluster_t;

/* What kadmin_cluster reads besides metadata and high watermarks. */
typedef struct kadmin_cluster_opts {
        const char *prefix; /* topics whose name starts with it ("" all but
                               internal ones) */
        bool configs;       /* retention and cleanup (DescribeConfigs) */
        bool low;           /* low watermarks */
} kadmin_cluster_opts_t;

typedef struct kadmin_tp {
        char *topic;
        int32_t partition;
        int64_t offset; /* committed; KADMIN_UNKNOWN: none */
} kadmin_tp_t;

typedef struct kadmin_member {
        char *client_id, *consumer_id, *instance_id, *host;
        kadmin_tp_t *assigned;
        size_t n_assigned;
} kadmin_member_t;

typedef struct kadmin_group {
        char *id;
        bool found; /* the cluster knows the group */
        char state[32];
        char assignor[64];
        kadmin_member_t *members;
        size_t n_members;
        kadmin_tp_t *committed; /* every partition with a committed offset */
        size_t n_committed;
        char error[160];
} kadmin_group_t;

/* A client for brokers (host:port list). NULL and errstr on bad settings.
 * count_requests: keep the broker request counter (librdkafka statistics
 * every 100 ms: a benchmark's figure, not for production). */
kadmin_t *kadmin_new(const config_t *cfg, const char *brokers,
                     bool count_requests, char *errstr, size_t errlen);
void kadmin_destroy(kadmin_t *ka); /* NULL ok */

/* Requests sent to brokers so far, as librdkafka's statistics last said
 * (count_requests only; waits for the next statistics so the figure covers
 * every request made before the call). */
uint64_t kadmin_requests(kadmin_t *ka);

/* Brokers, controller, topics (filtered), partitions with leaders and
 * watermarks, configs when asked. */
kadmin_err_t kadmin_cluster(kadmin_t *ka, const kadmin_cluster_opts_t *opts,
                            kadmin_cluster_t *out, char *errstr, size_t errlen);
void kadmin_cluster_free(kadmin_cluster_t *c);

/* Consumer group ids starting with prefix, into *ids (caller frees each
 * and the array). */
kadmin_err_t kadmin_list_groups(kadmin_t *ka, const char *prefix, char ***ids,
                                size_t *n, char *errstr, size_t errlen);

/* Describe groups ids[0..n) (state, members, assignment) and their
 * committed offsets, into out[0..n) (zeroed by the caller). A group the
 * cluster does not know has found false. */
kadmin_err_t kadmin_groups(kadmin_t *ka, const char *const *ids, size_t n,
                           kadmin_group_t *out, char *errstr, size_t errlen);
void kadmin_group_free(kadmin_group_t *g);

/* The timestamp (ms) of the message at each tps[i].offset, into ts[i]
 * (KADMIN_UNKNOWN when none could be read in time). One fetch per broker
 * for all of them. */
kadmin_err_t kadmin_timestamps(kadmin_t *ka, const kadmin_tp_t *tps, size_t n,
                               int64_t *ts, int timeout_ms, char *errstr,
                               size_t errlen);

/* The offsets for a reset: each of tps gets the earliest (-2), latest (-1)
 * or first offset at or after a time (>= 0 ms) into its offset. */
kadmin_err_t kadmin_offsets_at(kadmin_t *ka, kadmin_tp_t *tps, size_t n,
                               int64_t when, char *errstr, size_t errlen);

/* Commit tps' offsets for group (which must have no members: the broker
 * refuses otherwise, KADMIN_REFUSED). */
kadmin_err_t kadmin_commit(kadmin_t *ka, const char *group,
                           const kadmin_tp_t *tps, size_t n, char *errstr,
                           size_t errlen);

void kadmin_tps_free(kadmin_tp_t *tps, size_t n);

#endif
