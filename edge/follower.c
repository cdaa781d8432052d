/*
 * follower.c - the facts follower: what the edge learns from events.
 *
 * One thread reads the events topic of every group that declares facts
 * (facts.h), from one token lifetime back (a revocation older than that
 * concerns no valid token), and hands each event to the facts table. Until
 * every version fact is known it also asks each fact's query command (with
 * a doubling pause, up to 30 s, while the answer does not come); the reply
 * comes back on this edge's reply partition, where the reply thread hands
 * it here (edge__on_fact_reply). The edge names no group: the topics, the
 * commands and the fields all come from the schemas.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "backoff.h"
#include "edge_internal.h"
#include "envelope.h"
#include "log.h"

/* Revocations older than a token's lifetime (plus clock skew) concern no
 * token still valid: the follower starts that far back. */
#define EDGE_FOLLOW_MARGIN_S 120

static void edge__on_event(edge_t *edge, const rd_kafka_message_t *msg) {
        env_t env;
        char err[160];
        msgpack_zone zone;
        msgpack_object obj;

        if (env_decode(msg, &env, err, sizeof(err)) != ENV_OK)
                return; /* not ours to judge: the group that wrote it logs */
        msgpack_zone_init(&zone, 1024);
        if (env_unpack(&env, &zone, &obj) == ENV_OK &&
            facts_apply_event(edge->facts, env.type, &obj,
                              (int64_t)(clock_wall_ms() / 1000)))
                log_debug("fact updated by %.*s", (int)env.type.len,
                          env.type.ptr);
        msgpack_zone_destroy(&zone);
}

bool edge__on_fact_reply(edge_t *edge, const msgid_t *corr, const env_t *env) {
        size_t i, n = facts_query_count(edge->facts);
        msgpack_zone zone;
        msgpack_object obj;

        pthread_mutex_lock(&edge->query_lock);
        for (i = 0; i < n; i++)
                if (memcmp(corr->b, edge->query_ids[i].b, 16) == 0)
                        break;
        pthread_mutex_unlock(&edge->query_lock);
        if (i == n)
                return false;
        if (env->status != 200) {
                log_warn("%s answered %d; asking again later",
                         facts_query_at(edge->facts, i)->query_type,
                         env->status);
                return true;
        }
        msgpack_zone_init(&zone, 1024);
        if (env_unpack(env, &zone, &obj) == ENV_OK) {
                facts_apply_query(edge->facts, i, &obj);
                if (facts_query_done(edge->facts, i))
                        log_info("facts of %s known",
                                 facts_query_at(edge->facts, i)->query_type);
        }
        msgpack_zone_destroy(&zone);
        return true;
}

/* Ask query i; its reply comes back on our reply partition. */
static void edge__ask(edge_t *edge, size_t i) {
        const schema_fact_t *fact = facts_query_at(edge->facts, i);
        const schema_msg_t *cmd =
                schema_find(edge->schemas, slice_of(fact->query_type));
        char id[MSGID_TEXT_SIZE], topic[256], name[160];
        static const char empty_map = (char)0x80;
        env_t env = {0};
        msgid_t qid;

        msgid_new(&qid);
        msgid_format(&qid, id);
        pthread_mutex_lock(&edge->query_lock);
        edge->query_ids[i] = qid;
        pthread_mutex_unlock(&edge->query_lock);
        env.id = slice_of(id);
        env.type = slice_of(fact->query_type);
        env.schema_version = cmd ? cmd->version : 1;
        env.created_at_ms = (int64_t)clock_wall_ms();
        env.correlation_id = env.id;
        env.reply_to = slice_of(edge->reply_to);
        snprintf(name, sizeof(name), "%s.commands", fact->group);
        bus_topic(edge->cfg, name, topic, sizeof(topic));
        if (bus_produce(edge->bus, topic, RD_KAFKA_PARTITION_UA, env.id,
                        env_headers(&env), (slice_t){&empty_map, 1},
                        NULL) != BUS_OK)
                log_warn("cannot ask %s yet", fact->query_type);
}

int edge__follower_open(edge_t *edge, char *errstr, size_t errlen) {
        size_t n = facts_group_count(edge->facts);
        int64_t since =
                (int64_t)clock_wall_ms() -
                ((int64_t)edge->cfg->jwt_ttl_s + EDGE_FOLLOW_MARGIN_S) * 1000;
        edge->followed = n ? xcalloc(n, sizeof(bus_consumer_t *)) : NULL;
        for (size_t g = 0; g < n; g++) {
                char name[160], topic[256];
                snprintf(name, sizeof(name), "%s.events",
                         facts_group_at(edge->facts, g));
                bus_topic(edge->cfg, name, topic, sizeof(topic));
                edge->followed[g] =
                        bus_tail_new(edge->cfg, topic, since, errstr, errlen);
                if (!edge->followed[g])
                        return -1;
                edge->n_followed++;
        }
        return 0;
}

void edge__follower_close(edge_t *edge) {
        for (size_t g = 0; g < edge->n_followed; g++)
                bus_consumer_destroy(edge->followed[g]);
        free(edge->followed);
        edge->followed = NULL;
        edge->n_followed = 0;
}

void *edge__events_loop(void *arg) {
        edge_t *edge = arg;
        size_t n_queries = facts_query_count(edge->facts);
        uint64_t next_ask = 0;
        int attempt = 0;
        int slice_ms = edge->n_followed ? 100 / (int)edge->n_followed : 100;

        log_set_group("edge");
        while (!atomic_load(&edge->stopping)) {
                bool asked = false;
                for (size_t g = 0; g < edge->n_followed; g++) {
                        rd_kafka_message_t *msg = bus_consumer_poll(
                                edge->followed[g], slice_ms ? slice_ms : 1);
                        if (msg) {
                                edge__on_event(edge, msg);
                                rd_kafka_message_destroy(msg);
                        }
                }
                if (!edge->n_followed) {
                        struct timespec ts = {0, 100 * 1000000L};
                        nanosleep(&ts, NULL);
                }
                if (clock_mono_ms() < next_ask || !bus_is_up(edge->bus))
                        continue;
                for (size_t i = 0; i < n_queries; i++) {
                        if (facts_query_done(edge->facts, i))
                                continue;
                        edge__ask(edge, i);
                        asked = true;
                }
                if (asked)
                        next_ask = clock_mono_ms() +
                                   (uint64_t)backoff_delay_ms(
                                           (backoff_policy_t){1000, 30000},
                                           attempt < 30 ? attempt++ : attempt);
        }
        return NULL;
}
