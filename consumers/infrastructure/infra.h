/*
 * infra.h - what the infrastructure group's files share.
 *
 * The group reports on the system itself, for admins (schemas/
 * infrastructure.json): the cluster, the consumer groups of this system
 * with their lag and a Burrow-style status, dead letters, dependencies,
 * the topology of processes (from heartbeats, shared/heartbeat.h) and
 * offset resets of stopped groups.
 *
 * The broker is asked only by the sampler (sample.c), at most once per
 * OMNIFY_INFRA_SAMPLE_S, on the subscription thread that follows the
 * heartbeats: a heartbeat of an infrastructure process is its clock, so
 * one sampler runs per cluster whatever the number of infrastructure
 * processes (the heartbeats topic has one partition, read by one
 * consumer). It writes what it saw into the group's database and publishes
 * infrastructure.snapshot.sampled for the console's stream; the routes
 * (views.c) answer from the database only, so any number of consoles cost
 * the broker nothing.
 *
 * Database "infrastructure":
 *   cluster      {_id: "current", sampled_at, ok, error, brokers, controller,
 *                 topics (count), partitions, messages_per_s, duration_ms}
 *   topics       {_id: topic, name, partitions, replication, retention_ms,
 *                 retention_bytes, cleanup, messages, messages_per_s,
 *                 parts: [{partition, leader, replicas, isr, low, high}]}
 *                 (written only when changed)
 *   groups       {_id: consumer group id, group, subscription, state,
 *                 members, partitions, lag, lag_s, status, ...}
 *   history      {_id: "<group id>|<minute>", group_id, minute, points:
 *                 [[t_ms, lag, consumed_per_s]], expires_at} (TTL: an hour)
 *   processes    {_id: "<instance>|<group>", heartbeat fields, seen_ms,
 *                 expires_at} (TTL)
 *   dependencies {_id: name, configured, ok, latency_ms, error, error_at,
 *                 checked_at}
 */
#ifndef OMNIFY_INFRA_H
#define OMNIFY_INFRA_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kadmin.h"
#include "metrics.h"
#include "registry.h"

#define INFRA_DB "infrastructure"
#define INFRA_HISTORY_S 3600 /* lag history kept */
#define INFRA_WINDOW_MAX 100

typedef struct infra_settings {
        char *kafka_brokers; /* "": the system's own */
        int sample_s;
        int window;
        int configs_s;
        int stale_s;
        char *tenants; /* comma-separated; "": admins of any tenant */
        char *kong_url, *temporal_url, *airbyte_url, *metabase_url;
        int probe_timeout_ms;
        int count_requests; /* 1: kadmin counts broker requests (bench) */
} infra_settings_t;

extern const config_table_t infra_settings;

/* ---------------------------------------------------------------------------
 * Burrow-style evaluation (status.c): pure, unit-tested
 * ------------------------------------------------------------------------ */

typedef enum infra_status {
        INFRA_OK,
        INFRA_WARN,
        INFRA_STALL,
        INFRA_STOP,
        INFRA_ERR,
} infra_status_t;

const char *infra_status_name(infra_status_t s);

/* One sample of a partition: its committed offset and lag. */
typedef struct infra_point {
        int64_t committed;
        int64_t lag;
} infra_point_t;

/*
 * The status of one partition from its window (oldest first, n points,
 * the last one now) and whether the group has members:
 *   STOP   no member consumes, and messages wait (lag > 0 now);
 *   ERR    the committed offset went backwards in the window (a rewind);
 *   OK     some sample of the window had no lag;
 *   STALL  the window is full (n >= full), members are there, lag never
 *          0, and the committed offset never moved;
 *   WARN   the window is full, offsets move, but the lag grew at every
 *          step;
 *   OK     otherwise.
 * why (may be NULL) receives a short reason.
 */
infra_status_t infra_partition_status(const infra_point_t *w, size_t n,
                                      size_t full, bool has_members,
                                      const char **why);

/* The group's status: the worst of its partitions' (OK < WARN < STALL <
 * STOP < ERR). */
infra_status_t infra_worse(infra_status_t a, infra_status_t b);

/* ---------------------------------------------------------------------------
 * State, sampler, views
 * ------------------------------------------------------------------------ */

typedef struct infra_sampler infra_sampler_t;

typedef struct infra_state {
        const config_t *cfg;
        const infra_settings_t *set;
        store_t *store;
        kadmin_t *admin;
        pthread_mutex_t admin_lock; /* admin: the sampler and resets */
        infra_sampler_t *sampler;
        uint64_t last_sample_ms; /* sampler thread only */
        /* Per sample, for /metrics (tests/bench/infra reads them). */
        metrics_counter_t *m_samples;  /* samples taken */
        metrics_counter_t *m_last_us;  /* duration of the last one */
        metrics_counter_t *m_requests; /* broker requests so far (only
                                          with count_requests, else 0) */
        metrics_histogram_t *m_seconds;
} infra_state_t;

/* sample.c: the sampler's memory between samples (windows, previous
 * offsets, cached timestamps). */
struct infra_sampler {
        uint64_t prev_ms;       /* wall clock of the previous sample */
        json_t *prev_ends;      /* topic -> sum of high watermarks */
        json_t *prev_committed; /* group id -> sum of committed offsets */
        json_t *written;        /* topic -> JSON text last written */
        json_t *windows;        /* group id -> {"t|p": [[c, lag]...]} */
        json_t *ts_cache;       /* "t|p|offset" -> timestamp ms */
        json_t *configs;        /* topic -> {retention_ms, ...} */
        json_t *lows;           /* "t|p" -> low watermark */
        uint64_t configs_ms;    /* when configs were last read */
};

infra_sampler_t *infra_sampler_new(void);
void infra_sampler_destroy(infra_sampler_t *s);

/* Sample the cluster once, write the database, emit the snapshot event
 * (ctx: the heartbeat being handled). HANDLER_TRANSIENT only when the
 * store is down; a broker that does not answer is written down as
 * unknown. */
handler_result_t infra_sample(rt_ctx_t *ctx, infra_state_t *st);

/* sample.c: null for KADMIN_UNKNOWN, else the integer v. */
json_t *infra_int_or_null(int64_t v);

/* probes.c: probe the configured ones of Kong, Temporal, Airbyte and
 * Metabase (in parallel, 2 s at most) and queue their documents of the
 * dependencies collection into b (removing those not configured). */
void infra_probe_deps(rt_ctx_t *ctx, infra_state_t *st, store_bulk_t *b,
                      uint64_t now);
/* Queue into b the dependencies document of name as checked at now:
 * status, the HTTP status (< 0: none, not written); err, why when !ok. */
void infra_dep_put(store_bulk_t *b, const char *name, bool ok, int64_t ms,
                   long status, const char *err, uint64_t now);

/* topology.c: a heartbeat (runtime.heartbeat): keep it; samples when it
 * is an infrastructure process's and the period has passed. */
handler_result_t infra_on_heartbeat(rt_ctx_t *ctx, const msgpack_object *body);

/* The processes known now (heartbeats younger than the TTL), as a JSON
 * array with "stale" set on those older than stale_s; NULL when the store
 * failed (*err). */
json_t *infra_processes(infra_state_t *st, store_err_t *err);

/* views.c: the routes. */
handler_result_t infra_cluster(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t infra_groups(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t infra_group(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t infra_dead_letters(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t infra_dependencies(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t infra_topology(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t infra_snapshot(rt_ctx_t *ctx, const msgpack_object *body);
/* reset.c */
handler_result_t infra_reset(rt_ctx_t *ctx, const msgpack_object *body);

/* common (views.c) ----------------------------------------------------------
 */

/* An admin of an allowed tenant; otherwise the reply is a problem and
 * false is returned. */
bool infra_allowed(rt_ctx_t *ctx);
/* Every document of coll matching filter (NULL: all), sorted by _id, as a
 * JSON array; NULL and *err when the store failed. */
json_t *infra_find(store_t *store, const char *coll, const bson_t *filter,
                   int64_t limit, store_err_t *err);
/* A store failure: transient (retried), else a 500 problem. */
handler_result_t infra_store_failed(rt_ctx_t *ctx, store_err_t err);

/* The consumer groups this system runs: "<prefix><group>" and
 * "<prefix><group>.<subscription>" of every registered group, with what
 * they consume. */
typedef struct infra_expected {
        char id[256];
        const char *group;
        const char *subscription; /* NULL: the commands */
} infra_expected_t;
size_t infra_expected_groups(const config_t *cfg, infra_expected_t *out,
                             size_t max);

/* ---------------------------------------------------------------------------
 * sample_groups.c: the consumer groups of a sample (sample.c takes it)
 * ------------------------------------------------------------------------ */

/* One partition a group consumes, while a sample is worked out. */
typedef struct infra_gp {
        const char *topic;
        int32_t partition;
        int64_t committed; /* KADMIN_UNKNOWN: no commit */
        int64_t end;       /* KADMIN_UNKNOWN: not known */
        int64_t low;       /* the low watermark, or KADMIN_UNKNOWN */
        int64_t lag;       /* KADMIN_UNKNOWN when either is */
        int64_t ts;        /* of the message at committed */
        const char *owner; /* member instance, or NULL */
} infra_gp_t;

typedef struct infra_gsample {
        const infra_expected_t *expected; /* NULL: found in the cluster */
        kadmin_group_t *kg;
        infra_gp_t *parts;
        size_t n_parts, cap;
} infra_gsample_t;

/* The topic of the cluster named name (prefixed), or NULL. */
const kadmin_topic_t *infra_topic(const kadmin_cluster_t *c, const char *name);

/* Partitions, committed offsets, ends and lags of g (g->kg set). */
void infra_group_parts(infra_gsample_t *g, const kadmin_cluster_t *c,
                       const config_t *cfg);

/* Timestamps of the messages at the committed offsets of lagging
 * partitions: from the cache, the rest read in one go. */
void infra_group_timestamps(infra_state_t *st, infra_sampler_t *s,
                            infra_gsample_t *gs, size_t n_gs);

/* The group's document: partitions with their windows and statuses,
 * totals, members. Appends to the group's window. */
json_t *infra_group_doc(infra_state_t *st, infra_sampler_t *s,
                        infra_gsample_t *g, uint64_t now_ms, double dt_s);

#endif
