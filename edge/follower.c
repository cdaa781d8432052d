/*
 * follower.c - the facts follower: what the edge learns from events.
 *
 * One thread reads auth.events from one token lifetime back (a revocation
 * older than that concerns no valid token) and keeps the guard's revoked
 * sessions and document versions up to date; until the current versions
 * are known it asks auth.legal.versions, whose reply comes back on the
 * reply partition (replies.c hands it here).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "edge_internal.h"
#include "envelope.h"
#include "log.h"

/* The answer to our auth.legal.versions query: {terms: N, privacy: M}. */
static void edge__on_versions(edge_t *edge, const env_t *env) {
        msgpack_zone zone;
        msgpack_object obj;
        static const char *const types[] = {"terms", "privacy"};
        if (env->status != 200) {
                log_warn("document versions unavailable (status %d); asking "
                         "again later",
                         env->status);
                return;
        }
        msgpack_zone_init(&zone, 1024);
        if (env_unpack(env, &zone, &obj) == ENV_OK) {
                for (size_t i = 0; i < 2; i++) {
                        const msgpack_object *v = codec_map_get(&obj, types[i]);
                        if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                                guard_set_version(edge->guard,
                                                  slice_of(types[i]),
                                                  (int64_t)v->via.u64);
                }
                atomic_store(&edge->versions_known, true);
                log_info("current terms version %lld",
                         (long long)guard_version(edge->guard, "terms"));
        }
        msgpack_zone_destroy(&zone);
}

/* An integer field given as a number or a decimal string. */
static int64_t edge__int_field(const msgpack_object *map, const char *key) {
        const msgpack_object *v = codec_map_get(map, key);
        if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                return (int64_t)v->via.u64;
        if (v && v->type == MSGPACK_OBJECT_STR && v->via.str.size < 20) {
                char buf[24];
                memcpy(buf, v->via.str.ptr, v->via.str.size);
                buf[v->via.str.size] = '\0';
                return strtoll(buf, NULL, 10);
        }
        return -1;
}

static void edge__on_event(edge_t *edge, const rd_kafka_message_t *msg) {
        env_t env;
        char err[160];
        msgpack_zone zone;
        msgpack_object obj;

        if (env_decode(msg, &env, err, sizeof(err)) != ENV_OK)
                return; /* not ours to judge: the group that wrote it logs */
        if (!slice_eq(env.type, "auth.session.revoked") &&
            !slice_eq(env.type, "auth.legal.published"))
                return;
        msgpack_zone_init(&zone, 1024);
        if (env_unpack(&env, &zone, &obj) == ENV_OK) {
                if (slice_eq(env.type, "auth.session.revoked")) {
                        int64_t until = edge__int_field(&obj, "until");
                        guard_revoke(edge->guard,
                                     codec_map_str(&obj, "session_id"),
                                     until > 0 ? (uint64_t)until * 1000u
                                               : clock_wall_ms() + 86400000u);
                } else {
                        guard_set_version(edge->guard,
                                          codec_map_str(&obj, "type"),
                                          edge__int_field(&obj, "version"));
                }
        }
        msgpack_zone_destroy(&zone);
}

/* Ask auth for the current document versions; the reply comes back on our
 * reply partition (edge__on_versions). */
static void edge__ask_versions(edge_t *edge) {
        char id[MSGID_TEXT_SIZE], topic[256];
        env_t env = {0};
        static const char empty_map = (char)0x80;
        msgid_new(&edge->versions_id);
        msgid_format(&edge->versions_id, id);
        env.id = slice_of(id);
        env.type = slice_of("auth.legal.versions");
        env.schema_version = 1;
        env.created_at_ms = (int64_t)clock_wall_ms();
        env.correlation_id = env.id;
        env.reply_to = slice_of(edge->reply_to);
        bus_topic(edge->cfg, "auth.commands", topic, sizeof(topic));
        if (bus_produce(edge->bus, topic, RD_KAFKA_PARTITION_UA, env.id,
                        env_headers(&env), (slice_t){&empty_map, 1},
                        NULL) != BUS_OK)
                log_warn("cannot ask for the document versions yet");
}

int edge__follower_open(edge_t *edge, char *errstr, size_t errlen) {
        /* Revocations of the last token lifetime still matter. */
        char events[256];
        bus_topic(edge->cfg, "auth.events", events, sizeof(events));
        edge->events = bus_tail_new(
                edge->cfg, events,
                (int64_t)clock_wall_ms() -
                        ((int64_t)edge->cfg->jwt_ttl_s + 120) * 1000,
                errstr, errlen);
        return edge->events ? 0 : -1;
}

void *edge__events_loop(void *arg) {
        edge_t *edge = arg;
        uint64_t next_ask = 0;
        int backoff_ms = 1000;
        log_set_group("edge");
        while (!atomic_load(&edge->stopping)) {
                rd_kafka_message_t *msg = bus_consumer_poll(edge->events, 100);
                if (msg) {
                        edge__on_event(edge, msg);
                        rd_kafka_message_destroy(msg);
                }
                if (!atomic_load(&edge->versions_known) &&
                    clock_mono_ms() >= next_ask && bus_is_up(edge->bus)) {
                        edge__ask_versions(edge);
                        next_ask = clock_mono_ms() + (uint64_t)backoff_ms;
                        if (backoff_ms < 30000)
                                backoff_ms *= 2;
                }
        }
        return NULL;
}

bool edge__on_fact_reply(edge_t *edge, const msgid_t *corr, const env_t *env) {
        if (memcmp(corr->b, edge->versions_id.b, 16) != 0)
                return false;
        edge__on_versions(edge, env);
        return true;
}
