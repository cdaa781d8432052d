/*
 * teststore.h - the fixture of store-backed unit tests: the real store
 * (OMNIFY_MONGO_URI, as the binaries read it) under a database prefix of
 * the test's own, dropped at the end, and librdkafka's in-process mock
 * cluster with the group's commands topic, plus a reader of that topic.
 *
 * Tests that use it carry the ctest label "store"; when the store does not
 * answer, teststore_open says so and the test exits with 77, which ctest
 * counts as skipped (the test command starts the store first).
 */
#ifndef OMNIFY_TESTSTORE_H
#define OMNIFY_TESTSTORE_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "config.h"
#include "store.h"

#define TESTSTORE_SKIP 77

typedef struct teststore {
        config_t cfg; /* mongo_db_prefix and kafka_brokers are the test's */
        store_t *store;
        rd_kafka_t *mock_owner;
        rd_kafka_mock_cluster_t *mock;
        bus_t *bus;
        const char *group;
        char topic[256]; /* <prefix><group>.commands */
        rd_kafka_t *reader;
} teststore_t;

/* A command read back from the topic. */
typedef struct testcmd {
        char id[64];
        char type[128];
        char tenant[128], user[128], roles[128];
        char key[256];
        int64_t created_at_ms;
        char body[4096]; /* msgpack bytes */
        size_t body_len;
        int64_t read_at_ms; /* wall clock when it was read */
        int64_t broker_ms;  /* the record's broker timestamp */
} testcmd_t;

/* Set up for group (its topic has `partitions` partitions). false when
 * the store does not answer within a few seconds. */
bool teststore_open(teststore_t *fx, const char *group, int partitions,
                    const char *program);

/* Drop the test's database of the group, stop everything. */
void teststore_close(teststore_t *fx);

/* The next command on the topic, waiting up to timeout_ms. */
bool teststore_next(teststore_t *fx, int timeout_ms, testcmd_t *out);

/* Every command until none came for quiet_ms; returns how many (at most
 * max into out). */
size_t teststore_drain(teststore_t *fx, int quiet_ms, testcmd_t *out,
                       size_t max);

/* Claim every due record of coll (in the group's database) whose status
 * is `status`, as a worker would that then dies: their leases (lease_ms)
 * are left to run out. Returns how many; *at the claim's time. */
int teststore_dead_claim(teststore_t *fx, const char *coll,
                         const char *time_field, const char *status,
                         int64_t lease_ms, int64_t *at);

/* Run fn in n threads at once and wait for them. */
void teststore_parallel(int n, void *(*fn)(void *), void *const *args);

#endif
