/*
 * heartbeat.h - every process says, every few seconds, that it is alive
 * and what it serves.
 *
 * runtime_run starts one heartbeat per group runtime (a monolith sends one
 * per group it runs, all with the same pid and instance). Each beat is a
 * message on <prefix>runtime.heartbeats (schemas/topics.json: short
 * retention), keyed by "<instance>|<group>", with the usual envelope
 * headers (id, type "runtime.heartbeat", schema-version 1, created-at) and
 * this msgpack body:
 *
 *   {group, instance, pid, host, mode ("monolith" | "standalone"), version,
 *    started_ms (wall clock), uptime_s, rss_bytes, handled (messages the
 *    group's loops finished since start), messages_per_s (over the last
 *    interval), interval_ms, consumer_groups: [group ids it consumes as],
 *    stopping (true on the last beat, sent when the runtime stops)}
 *
 * Whoever builds a topology (the infrastructure group) keeps the latest
 * beat per key and ages out those older than a few intervals. A beat that
 * cannot be sent (broker down, topic missing) is dropped; the next one
 * says the same, fresher.
 *
 * Thread-safety: heartbeat_start and heartbeat_stop are called by the
 * runtime's owner thread; the beats are sent from a thread of their own.
 */
#ifndef OMNIFY_HEARTBEAT_H
#define OMNIFY_HEARTBEAT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "config.h"

#define HEARTBEAT_TOPIC "runtime.heartbeats"
#define HEARTBEAT_TYPE "runtime.heartbeat"
#define HEARTBEAT_INTERVAL_MS 5000

typedef struct heartbeat heartbeat_t;

/* What a beat says of its sender; strings are copied. */
typedef struct heartbeat_info {
        const char *group;
        const char *instance;
        const char *host;
        const char *mode;
        const char *const *consumer_groups; /* NULL-terminated; may be NULL */
        int interval_ms;                    /* 0: HEARTBEAT_INTERVAL_MS */
} heartbeat_info_t;

/* Start beating on bus (not owned) at once and then every interval;
 * *handled is read at each beat (the count of finished messages). NULL
 * when the thread cannot start (logged). */
heartbeat_t *heartbeat_start(const config_t *cfg, bus_t *bus,
                             const heartbeat_info_t *info,
                             const atomic_uint_fast64_t *handled);

/* Send a last beat saying the sender stops, end the thread, free. NULL
 * ok. */
void heartbeat_stop(heartbeat_t *hb);

/* The resident set size of this process in bytes (0 when unknown). */
uint64_t heartbeat_rss_bytes(void);

#endif
