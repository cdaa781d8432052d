/*
 * bus_consumer.c - Kafka consumers: group members, reply listeners and
 * tails (see bus.h; the producer is bus.c).
 *
 * Template: librdkafka's examples/consumer.c. Consumers store offsets only
 * after the caller says a message is done, and bus_consumer_poll commits
 * them every second while the member holds a live assignment and the group
 * is not rebalancing.
 */
#include "bus.h"
#include "bus_internal.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "metrics.h"
#include "msgid.h"

/* A commit carries the member's generation. One sent while the group is
 * rebalancing can reach the broker after the generation moved on (the
 * JoinGroup of this member or of the second round of a cooperative
 * rebalance); the broker refuses it (ILLEGAL_GENERATION) and librdkafka
 * then drops the whole assignment as lost, so what was handled since the
 * last commit is read again. 2.0 did, and 2.8.0 still does with the classic
 * protocol (its OffsetCommit handler: revoke_all_rejoin_maybe, assignment
 * lost); in the cooperative flow its join state also passes through
 * "steady" between the assign that follows a revoke and the rejoin of the
 * second round. KIP-848's protocol would only defer such a commit, but
 * 2.8.0 ships it as early access (see README). librdkafka does not tell the
 * application its join state, but it logs every change at debug level in the
 * cgrp context: consumers turn that on and follow it (bus__consumer_log_cb),
 * and commit in the background only while the state is "steady". A revoke is
 * followed by a second round: after one, wait until that round has started
 * (and ended) or, should it never come, BUS__REBALANCE_QUIET_MS. If the join
 * state is never logged (another librdkafka), the quiet time alone applies.
 * The revoke callback itself commits. */
#define BUS__REBALANCE_QUIET_MS 5000

enum { BUS__JOIN_UNKNOWN, BUS__JOIN_STEADY, BUS__JOIN_REBALANCING };

struct bus_consumer {
        rd_kafka_t *rk;
        int is_group;
        char group[128];
        metrics_counter_t *assigned, *revoked, *owned, *commit_failed;
        void (*on_revoke)(void *arg,
                          const rd_kafka_topic_partition_list_t *parts);
        void *on_revoke_arg;
        unsigned revokes;          /* revocations so far (poll thread) */
        bool ever_assigned;        /* consumer thread only */
        bool fatal;                /* consumer thread only */
        uint64_t next_commit_ms;   /* consumer thread only */
        uint64_t quiet_until_ms;   /* after a revoke: no background commit
                                      before, unless a new round ended */
        unsigned rounds_at_revoke; /* join_rounds when last revoked */
        atomic_int join_state;     /* BUS__JOIN_*, librdkafka's thread */
        atomic_uint join_rounds;   /* JoinGroups started, same */
        int n_owned;               /* partitions assigned now (poll thread) */
        uint64_t commit_sent_ms;   /* a background commit awaits its result
                                      since then (0: none) */
};

/* The gauge of a partition's consumer lag in this process. */
static metrics_counter_t *bus__lag_gauge(const bus_consumer_t *c,
                                         const char *topic,
                                         const char *partition) {
        char labels[512];
        snprintf(labels, sizeof(labels),
                 "group=\"%s\",topic=\"%s\",partition=\"%s\"", c->group, topic,
                 partition);
        return metrics_gauge("omnify_consumer_lag",
                             "Messages behind the partition's end, per "
                             "partition (0 where this process does not "
                             "consume it).",
                             labels);
}

/* Consumer lag per partition, from librdkafka's own statistics (every 5 s):
 * {"topics": {"<t>": {"partitions": {"<p>": {"desired": true,
 * "consumer_lag": N}}}}}. */
static int bus__stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
        bus_consumer_t *c = opaque;
        json_t *doc = json_loadb(json, len, 0, NULL), *topics, *t;
        const char *tname;
        (void)rk;
        topics = json_object_get(doc, "topics");
        json_object_foreach(topics, tname, t) {
                json_t *parts = json_object_get(t, "partitions"), *p;
                const char *pname;
                json_object_foreach(parts, pname, p) {
                        json_t *lag = json_object_get(p, "consumer_lag");
                        if (strcmp(pname, "-1") == 0)
                                continue;
                        /* Not (or no longer) assigned here: 0, its owner
                         * reports it (this also mends a report taken just
                         * before a revoke and served after it). */
                        if (!json_is_true(json_object_get(p, "desired")))
                                metrics_set(bus__lag_gauge(c, tname, pname), 0);
                        else if (json_is_integer(lag) &&
                                 json_integer_value(lag) >= 0)
                                metrics_set(bus__lag_gauge(c, tname, pname),
                                            json_integer_value(lag));
                }
        }
        json_decref(doc);
        return 0; /* librdkafka frees json */
}

/* A consumer's librdkafka log: follows the group's join state (see
 * BUS__REBALANCE_QUIET_MS) from lines such as
 *   Group "auth" changed join state wait-join -> wait-metadata (state up)
 * Runs on librdkafka's threads. */
static void bus__consumer_log_cb(const rd_kafka_t *rk, int level,
                                 const char *fac, const char *buf) {
        if (level >= LOG_DEBUG && strcmp(fac, "CGRPJOINSTATE") == 0) {
                bus_consumer_t *c = rd_kafka_opaque(rk);
                const char *to = strstr(buf, " -> ");
                if (c && to) {
                        to += 4;
                        if (strncmp(to, "wait-join ", 10) == 0)
                                atomic_fetch_add(&c->join_rounds, 1);
                        atomic_store(&c->join_state,
                                     strncmp(to, "steady ", 7) == 0
                                             ? BUS__JOIN_STEADY
                                             : BUS__JOIN_REBALANCING);
                }
        }
        bus__log_cb(rk, level, fac, buf);
}

/* Cooperative-sticky: add and remove partitions incrementally; before giving
 * partitions away, commit what we finished on them so the next owner does
 * not redo it. */
static void bus__rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                              rd_kafka_topic_partition_list_t *parts,
                              void *opaque) {
        int cooperative =
                strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
        bus_consumer_t *c = opaque;
        metrics_add(err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS ? c->assigned
                                                                : c->revoked,
                    1);
        metrics_add(c->owned, err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS
                                      ? parts->cnt
                                      : -parts->cnt);
        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                c->ever_assigned = true;
                c->n_owned = cooperative ? c->n_owned + parts->cnt : parts->cnt;
                log_info("kafka: assigned %d partition(s)", parts->cnt);
                if (cooperative) {
                        rd_kafka_error_t *e =
                                rd_kafka_incremental_assign(rk, parts);
                        if (e) {
                                log_error("kafka: incremental assign: %s",
                                          rd_kafka_error_string(e));
                                rd_kafka_error_destroy(e);
                        }
                } else {
                        rd_kafka_assign(rk, parts);
                }
                return;
        }
        log_info("kafka: revoking %d partition(s)", parts->cnt);
        /* Their lag is the next owner's to report now. */
        for (int i = 0; i < parts->cnt; i++) {
                char pname[16];
                snprintf(pname, sizeof(pname), "%d",
                         (int)parts->elems[i].partition);
                metrics_set(bus__lag_gauge(c, parts->elems[i].topic, pname), 0);
        }
        c->revokes++;
        c->quiet_until_ms = clock_mono_ms() + BUS__REBALANCE_QUIET_MS;
        c->rounds_at_revoke = atomic_load(&c->join_rounds);
        c->n_owned = cooperative ? c->n_owned - parts->cnt : 0;
        if (c->on_revoke)
                c->on_revoke(c->on_revoke_arg, parts);
        /* Partitions lost (session timed out) are someone else's already:
         * a commit would fail and only delay the rejoin. */
        if (!c->fatal && !rd_kafka_assignment_lost(rk)) {
                rd_kafka_resp_err_t cerr = rd_kafka_commit(rk, NULL, 0);
                if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET) {
                        metrics_add(c->commit_failed, 1);
                        log_warn("kafka: commit on revoke: %s",
                                 rd_kafka_err2str(cerr));
                }
        }
        if (cooperative) {
                rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
                if (e) {
                        log_error("kafka: incremental unassign: %s",
                                  rd_kafka_error_string(e));
                        rd_kafka_error_destroy(e);
                }
        } else {
                rd_kafka_assign(rk, NULL);
        }
}

/* Results of the background commits (served by the consumer's poll). */
static void bus__commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t *offsets,
                           void *opaque) {
        bus_consumer_t *c = opaque;
        (void)rk;
        (void)offsets;
        c->commit_sent_ms = 0;
        if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
                metrics_add(c->commit_failed, 1);
                log_warn("kafka: offset commit: %s", rd_kafka_err2str(err));
        }
}

/* Every BUS__COMMIT_MS, commit the stored offsets, but only while this
 * member holds a live assignment (never with a lost or an empty one, never
 * without a member id: the group has moved on without us) and only one
 * commit at a time: commits queued while the coordinator is away would all
 * be sent when it returns, with a member id the group may have replaced. */
#define BUS__COMMIT_MS 1000

/* Whether the group lets this member commit now (see
 * BUS__REBALANCE_QUIET_MS). */
static bool bus__group_settled(const bus_consumer_t *c, uint64_t now) {
        switch (atomic_load(&c->join_state)) {
        case BUS__JOIN_STEADY:
                return now >= c->quiet_until_ms ||
                       atomic_load(&c->join_rounds) != c->rounds_at_revoke;
        case BUS__JOIN_REBALANCING:
                return false;
        default:
                return now >= c->quiet_until_ms;
        }
}

static void bus__commit_due(bus_consumer_t *c) {
        uint64_t now = clock_mono_ms();
        char *member;
        /* A result never comes only if librdkafka lost it: after 30 s,
         * commit again rather than never. */
        if (!c->is_group || c->fatal || now < c->next_commit_ms ||
            !bus__group_settled(c, now) ||
            (c->commit_sent_ms && now - c->commit_sent_ms < 30000))
                return;
        c->next_commit_ms = now + BUS__COMMIT_MS;
        if (c->n_owned <= 0 || rd_kafka_assignment_lost(c->rk))
                return;
        member = rd_kafka_memberid(c->rk);
        if (member && member[0]) {
                rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, NULL, 1);
                if (!err)
                        c->commit_sent_ms = now;
                else if (err != RD_KAFKA_RESP_ERR__NO_OFFSET)
                        log_warn("kafka: offset commit: %s",
                                 rd_kafka_err2str(err));
        }
        if (member)
                rd_kafka_mem_free(c->rk, member);
}

bus_consumer_t *bus_consumer_new(const config_t *cfg, const char *group_id,
                                 const char *label, const char *topic,
                                 char *errstr, size_t errlen) {
        return bus_consumer_new_multi(cfg, group_id, label, &topic, 1, errstr,
                                      errlen);
}

bus_consumer_t *bus_consumer_new_multi(const config_t *cfg,
                                       const char *group_id, const char *label,
                                       const char *const *topics,
                                       size_t n_topics, char *errstr,
                                       size_t errlen) {
        bus_consumer_t *c = xcalloc(1, sizeof(*c));
        rd_kafka_conf_t *conf;
        rd_kafka_topic_partition_list_t *subs;
        char client_id[256];
        rd_kafka_resp_err_t err;

        /* "<group id>-consumer/<instance>" (the runtime's instance: the
         * configured id, else host-pid), so that a member of a consumer
         * group can be matched with the process behind it (heartbeats). */
        if (cfg->instance_id[0]) {
                snprintf(client_id, sizeof(client_id), "%s-consumer/%s",
                         group_id, cfg->instance_id);
        } else {
                char host[128] = "unknown";
                gethostname(host, sizeof(host));
                host[sizeof(host) - 1] = '\0';
                snprintf(client_id, sizeof(client_id), "%s-consumer/%s-%ld",
                         group_id, host, (long)getpid());
        }
        conf = bus__base_conf(cfg, client_id, errstr, errlen);
        if (!conf)
                goto fail;
        if (bus__set(conf, "group.id", group_id, errstr, errlen) ||
            bus__set(conf, "partition.assignment.strategy",
                     "cooperative-sticky", errstr, errlen) ||
            /* Committed by bus_consumer_poll, not by librdkafka's timer:
             * librdkafka 2.0 also commits after a session timeout, with the
             * member id already reset, and a static member is then fenced
             * for good (a fatal error); not tried again with 2.8.0, whose
             * session-timeout path still resets the member id first. */
            bus__set(conf, "enable.auto.commit", "false", errstr, errlen) ||
            bus__set(conf, "enable.auto.offset.store", "false", errstr,
                     errlen) ||
            bus__set(conf, "auto.offset.reset", "earliest", errstr, errlen) ||
            /* For the join state, see BUS__REBALANCE_QUIET_MS. */
            bus__set(conf, "debug", "cgrp", errstr, errlen) ||
            (cfg->instance_id[0] &&
             bus__set(conf, "group.instance.id", cfg->instance_id, errstr,
                      errlen))) {
                rd_kafka_conf_destroy(conf);
                goto fail;
        }
        bus__set_int(conf, "session.timeout.ms", 10000);
        bus__set_int(conf, "heartbeat.interval.ms", 1000);
        bus__set_int(conf, "fetch.wait.max.ms", 100);
        bus__set_int(conf, "statistics.interval.ms", 5000);
        snprintf(c->group, sizeof(c->group), "%s", label);
        {
                char labels[200];
                snprintf(labels, sizeof(labels), "group=\"%s\",kind=\"assign\"",
                         c->group);
                c->assigned = metrics_counter(
                        "omnify_rebalances_total",
                        "Partition assignments and revocations.", labels);
                snprintf(labels, sizeof(labels), "group=\"%s\",kind=\"revoke\"",
                         c->group);
                c->revoked = metrics_counter(
                        "omnify_rebalances_total",
                        "Partition assignments and revocations.", labels);
                snprintf(labels, sizeof(labels), "group=\"%s\"", c->group);
                c->commit_failed = metrics_counter(
                        "omnify_commit_failures_total",
                        "Offset commits that failed (refused by the group "
                        "coordinator or never sent).",
                        labels);
                c->owned = metrics_gauge(
                        "omnify_assigned_partitions",
                        "Partitions this process consumes now.", labels);
        }
        rd_kafka_conf_set_opaque(conf, c);
        rd_kafka_conf_set_log_cb(conf, bus__consumer_log_cb);
        rd_kafka_conf_set_stats_cb(conf, bus__stats_cb);
        rd_kafka_conf_set_rebalance_cb(conf, bus__rebalance_cb);
        rd_kafka_conf_set_offset_commit_cb(conf, bus__commit_cb);

        c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errlen);
        if (!c->rk) {
                rd_kafka_conf_destroy(conf);
                goto fail;
        }
        c->is_group = 1;
        rd_kafka_poll_set_consumer(c->rk);
        subs = rd_kafka_topic_partition_list_new((int)n_topics);
        for (size_t i = 0; i < n_topics; i++)
                rd_kafka_topic_partition_list_add(subs, topics[i],
                                                  RD_KAFKA_PARTITION_UA);
        err = rd_kafka_subscribe(c->rk, subs);
        rd_kafka_topic_partition_list_destroy(subs);
        if (err) {
                snprintf(errstr, errlen, "subscribe %s%s: %s", topics[0],
                         n_topics > 1 ? " and others" : "",
                         rd_kafka_err2str(err));
                goto fail;
        }
        return c;

fail:
        bus_consumer_destroy(c);
        return NULL;
}

bus_consumer_t *bus_listener_new(const config_t *cfg, const char *topic,
                                 int32_t partition, char *errstr,
                                 size_t errlen) {
        bus_consumer_t *c = xcalloc(1, sizeof(*c));
        rd_kafka_conf_t *conf;
        rd_kafka_topic_partition_list_t *parts;
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t err;
        char group[300];

        conf = bus__base_conf(cfg, "edge-replies", errstr, errlen);
        if (!conf)
                goto fail;
        /* librdkafka wants a group id even for manual assignment; this one
         * never joins a group nor commits. */
        snprintf(group, sizeof(group), "%s-listener-%d", topic, (int)partition);
        if (bus__set(conf, "group.id", group, errstr, errlen) ||
            bus__set(conf, "enable.auto.commit", "false", errstr, errlen) ||
            bus__set(conf, "enable.partition.eof", "false", errstr, errlen)) {
                rd_kafka_conf_destroy(conf);
                goto fail;
        }
        bus__set_int(conf, "fetch.wait.max.ms", 100);
        bus__set_int(conf, "fetch.error.backoff.ms", 50);
        c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errlen);
        if (!c->rk) {
                rd_kafka_conf_destroy(conf);
                goto fail;
        }
        rd_kafka_poll_set_consumer(c->rk);
        /* A topic created a moment ago may not have a leader yet. */
        for (int attempt = 0; attempt < 40; attempt++) {
                err = rd_kafka_query_watermark_offsets(c->rk, topic, partition,
                                                       &lo, &hi, 5000);
                if (err != RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION &&
                    err != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE &&
                    err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
                        break;
                struct timespec ts = {0, 250 * 1000000L};
                nanosleep(&ts, NULL);
        }
        if (err) {
                snprintf(errstr, errlen, "%s partition %d: %s", topic,
                         (int)partition, rd_kafka_err2str(err));
                goto fail;
        }
        parts = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(parts, topic, partition)->offset = hi;
        err = rd_kafka_assign(c->rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        if (err) {
                snprintf(errstr, errlen, "assign %s:%d: %s", topic,
                         (int)partition, rd_kafka_err2str(err));
                goto fail;
        }
        return c;

fail:
        bus_consumer_destroy(c);
        return NULL;
}

bus_consumer_t *bus_tail_new(const config_t *cfg, const char *topic,
                             int64_t since_ms, char *errstr, size_t errlen) {
        bus_consumer_t *c = xcalloc(1, sizeof(*c));
        rd_kafka_conf_t *conf;
        rd_kafka_topic_partition_list_t *parts = NULL;
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt;
        rd_kafka_resp_err_t err;
        char group[300];

        conf = bus__base_conf(cfg, "tail", errstr, errlen);
        if (!conf)
                goto fail;
        snprintf(group, sizeof(group), "%s-tail", topic);
        if (bus__set(conf, "group.id", group, errstr, errlen) ||
            bus__set(conf, "enable.auto.commit", "false", errstr, errlen) ||
            bus__set(conf, "enable.partition.eof", "false", errstr, errlen)) {
                rd_kafka_conf_destroy(conf);
                goto fail;
        }
        bus__set_int(conf, "fetch.wait.max.ms", 200);
        c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errlen);
        if (!c->rk) {
                rd_kafka_conf_destroy(conf);
                goto fail;
        }
        rd_kafka_poll_set_consumer(c->rk);
        rkt = rd_kafka_topic_new(c->rk, topic, NULL);
        err = rd_kafka_metadata(c->rk, 0, rkt, &md, 10000);
        rd_kafka_topic_destroy(rkt);
        if (err || md->topic_cnt != 1 || md->topics[0].err) {
                snprintf(errstr, errlen, "topic %s: %s", topic,
                         err ? rd_kafka_err2str(err) : "not found");
                goto fail;
        }
        parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
        for (int p = 0; p < md->topics[0].partition_cnt; p++)
                rd_kafka_topic_partition_list_add(parts, topic, p)->offset =
                        since_ms;
        /* Timestamps in, offsets out; partitions with nothing newer get the
         * end (-1 from the broker means "end"). */
        /* A topic created a moment ago may not have a leader yet. */
        for (int attempt = 0; attempt < 40; attempt++) {
                err = rd_kafka_offsets_for_times(c->rk, parts, 10000);
                if (err != RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION &&
                    err != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE &&
                    err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
                        break;
                for (int i = 0; i < parts->cnt; i++)
                        parts->elems[i].offset = since_ms;
                struct timespec ts = {0, 250 * 1000000L};
                nanosleep(&ts, NULL);
        }
        if (err) {
                snprintf(errstr, errlen, "offsets for %s: %s", topic,
                         rd_kafka_err2str(err));
                goto fail;
        }
        for (int i = 0; i < parts->cnt; i++)
                if (parts->elems[i].offset < 0)
                        parts->elems[i].offset = RD_KAFKA_OFFSET_END;
        err = rd_kafka_assign(c->rk, parts);
        if (err) {
                snprintf(errstr, errlen, "assign %s: %s", topic,
                         rd_kafka_err2str(err));
                goto fail;
        }
        rd_kafka_topic_partition_list_destroy(parts);
        rd_kafka_metadata_destroy(md);
        return c;

fail:
        if (parts)
                rd_kafka_topic_partition_list_destroy(parts);
        if (md)
                rd_kafka_metadata_destroy(md);
        bus_consumer_destroy(c);
        return NULL;
}

/* A message or NULL: errors are logged (and a fatal one remembered) here. */
static rd_kafka_message_t *bus__checked(bus_consumer_t *c,
                                        rd_kafka_message_t *msg) {
        if (!msg)
                return NULL;
        if (msg->err) {
                if (msg->err == RD_KAFKA_RESP_ERR__FATAL) {
                        char why[256];
                        rd_kafka_fatal_error(c->rk, why, sizeof(why));
                        log_error("kafka consumer: fatal: %s", why);
                        c->fatal = true;
                } else if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        log_warn("kafka consumer: %s",
                                 rd_kafka_message_errstr(msg));
                }
                rd_kafka_message_destroy(msg);
                return NULL;
        }
        return msg;
}

rd_kafka_message_t *bus_consumer_poll(bus_consumer_t *c, int timeout_ms) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(c->rk, timeout_ms);
        bus__commit_due(c);
        return bus__checked(c, msg);
}

/* Drop the messages of msgs[0..n) whose partition is no longer assigned
 * (revoked while the batch was gathered: the next owner reads them). */
static size_t bus__keep_assigned(bus_consumer_t *c, rd_kafka_message_t **msgs,
                                 size_t n) {
        rd_kafka_topic_partition_list_t *parts = NULL;
        size_t kept = 0;
        if (rd_kafka_assignment(c->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
                parts = NULL;
        for (size_t i = 0; i < n; i++) {
                if (parts && rd_kafka_topic_partition_list_find(
                                     parts, rd_kafka_topic_name(msgs[i]->rkt),
                                     msgs[i]->partition))
                        msgs[kept++] = msgs[i];
                else
                        rd_kafka_message_destroy(msgs[i]);
        }
        if (parts)
                rd_kafka_topic_partition_list_destroy(parts);
        return kept;
}

size_t bus_consumer_poll_batch(bus_consumer_t *c, rd_kafka_message_t **msgs,
                               size_t max, int timeout_ms) {
        size_t n = 0;
        unsigned revokes = c->revokes;
        /* Wait for the first; take what is already fetched after it. Each
         * poll also serves rebalances, so a batch never spans a revoke
         * without the revoke callback having run in between. */
        for (int wait = timeout_ms; n < max; wait = 0) {
                rd_kafka_message_t *msg = rd_kafka_consumer_poll(c->rk, wait);
                if (!msg)
                        break;
                msg = bus__checked(c, msg);
                if (msg)
                        msgs[n++] = msg;
        }
        if (c->revokes != revokes)
                n = bus__keep_assigned(c, msgs, n);
        bus__commit_due(c);
        return n;
}

void bus_consumer_wake(bus_consumer_t *c) {
        rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(c->rk);
        if (q) {
                rd_kafka_queue_yield(q);
                rd_kafka_queue_destroy(q);
        }
}

bool bus_consumer_failed(const bus_consumer_t *c) {
        return c->fatal;
}

bool bus_consumer_steady(const bus_consumer_t *c) {
        return atomic_load(&c->join_state) == BUS__JOIN_STEADY;
}

void bus_consumer_store(bus_consumer_t *c, const char *topic, int32_t partition,
                        int64_t offset) {
        rd_kafka_topic_partition_list_t *list;
        rd_kafka_resp_err_t err;
        if (!c->is_group)
                return;
        /* The committed offset is the next one to read. */
        list = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(list, topic, partition)->offset =
                offset + 1;
        err = rd_kafka_offsets_store(c->rk, list);
        /* After a revoke the partition is no longer ours: the next owner
         * will redo the message, and idempotency makes that harmless. */
        if (err && err != RD_KAFKA_RESP_ERR__STATE)
                log_warn("kafka: store offset: %s", rd_kafka_err2str(err));
        rd_kafka_topic_partition_list_destroy(list);
}

void bus_consumer_done(bus_consumer_t *c, const rd_kafka_message_t *msg) {
        bus_consumer_store(c, rd_kafka_topic_name(msg->rkt), msg->partition,
                           msg->offset);
}

void bus_consumer_seek(bus_consumer_t *c, const char *topic, int32_t partition,
                       int64_t offset) {
        rd_kafka_topic_partition_list_t *list =
                rd_kafka_topic_partition_list_new(1);
        rd_kafka_error_t *e;
        rd_kafka_topic_partition_list_add(list, topic, partition)->offset =
                offset;
        e = rd_kafka_seek_partitions(c->rk, list, 5000);
        if (e) {
                log_error("kafka: seek %s[%d] to %lld: %s", topic,
                          (int)partition, (long long)offset,
                          rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
        }
        rd_kafka_topic_partition_list_destroy(list);
}

void bus_consumer_on_revoke(
        bus_consumer_t *c,
        void (*fn)(void *arg, const rd_kafka_topic_partition_list_t *parts),
        void *arg) {
        c->on_revoke = fn;
        c->on_revoke_arg = arg;
}

/* A join or rebalance round is under way (as far as we can tell). */
static bool bus__joining(bus_consumer_t *c) {
        return !c->ever_assigned ||
               atomic_load(&c->join_state) == BUS__JOIN_REBALANCING;
}

/* How long a consumer leaving waits for the answer to its last commit. */
#define BUS__LEAVE_COMMIT_MS 5000

/*
 * Before leaving: commit what was finished while this member's generation
 * still holds, and wait for the answer (the commit-then-close of a graceful
 * shutdown). The commit that close makes from its revoke callback may go
 * out after a round started: it then waits on the coordinator connection
 * behind the member's JoinGroup, which the broker answers only once every
 * member rejoined, and comes back ILLEGAL_GENERATION; the next owner redoes
 * the work (fault suite, scale: the runs that read commands twice read
 * exactly all that the stopped member had finished since its last commit,
 * and its close's commit was refused each time). Skipped while a round is
 * known to be under way (it would be refused too) or nothing is owned.
 */
static void bus__commit_before_leave(bus_consumer_t *c) {
        rd_kafka_queue_t *q;
        rd_kafka_event_t *ev;
        rd_kafka_resp_err_t err;

        if (c->fatal || c->n_owned <= 0 || bus__joining(c) ||
            rd_kafka_assignment_lost(c->rk))
                return;
        q = rd_kafka_queue_new(c->rk);
        err = rd_kafka_commit_queue(c->rk, NULL, q, NULL, NULL);
        if (!err) {
                ev = rd_kafka_queue_poll(q, BUS__LEAVE_COMMIT_MS);
                err = ev ? rd_kafka_event_error(ev)
                         : RD_KAFKA_RESP_ERR__TIMED_OUT;
                rd_kafka_event_destroy(ev);
        }
        rd_kafka_queue_destroy(q);
        if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
                metrics_add(c->commit_failed, 1);
                log_warn("kafka: commit before leaving: %s",
                         rd_kafka_err2str(err));
        }
}

void bus_consumer_destroy(bus_consumer_t *c) {
        if (!c)
                return;
        /* Leaves the group, also before the first assignment (librdkafka
         * 2.0 aborted destroying a consumer between its JoinGroup and its
         * SyncGroup; 2.3 fixed it). */
        if (c->rk && c->is_group) {
                rd_kafka_resp_err_t err;
                /* A round under way (its first join, or a rebalance) is let
                 * finish first, for at most 5 s (a fenced consumer never
                 * finishes one): leaving in the middle of it starts another
                 * round in which commits carry an old generation and are
                 * refused (ILLEGAL_GENERATION, 2.8.0 too), and the next
                 * owners redo what was finished (fault suite, scale: 38 and
                 * 285 commands read twice without this wait, or with it for
                 * owners only). Messages read meanwhile are not handled;
                 * their offsets are never stored, so they come again. */
                for (int i = 0; i < 50 && !c->fatal && bus__joining(c); i++) {
                        rd_kafka_message_t *m =
                                rd_kafka_consumer_poll(c->rk, 100);
                        if (m)
                                rd_kafka_message_destroy(m);
                }
                bus__commit_before_leave(c);
                err = rd_kafka_consumer_close(c->rk);
                if (err)
                        log_warn("kafka: consumer close: %s",
                                 rd_kafka_err2str(err));
        }
        if (c->rk)
                rd_kafka_destroy(c->rk);
        free(c);
}
