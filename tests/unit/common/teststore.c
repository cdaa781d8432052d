/*
 * teststore.c - the fixture of store-backed unit tests (see teststore.h).
 */
#include "teststore.h"

#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "envelope.h"
#include "lease.h"
#include "log.h"
#include "msgid.h"

static void copy_slice(slice_t s, char *out, size_t size) {
        size_t n = s.len < size - 1 ? s.len : size - 1;
        if (n)
                memcpy(out, s.ptr, n);
        out[n] = '\0';
}

bool teststore_open(teststore_t *fx, const char *group, int partitions,
                    const char *program) {
        char errstr[512], prefix[64], name[128];
        char *argv[] = {(char *)program, NULL};
        rd_kafka_conf_t *conf;
        rd_kafka_topic_partition_list_t *parts;
        uint32_t r;

        memset(fx, 0, sizeof(fx[0]));
        fx->group = group;
        if (config_load(&fx->cfg, CONFIG_SCOPE_COMMON | CONFIG_SCOPE_GROUP,
                        program, 1, argv, NULL, NULL, NULL, errstr,
                        sizeof(errstr)) != CONFIG_OK) {
                fprintf(stderr, "config: %s\n", errstr);
                return false;
        }
        msgid_random(&r, sizeof(r));
        snprintf(prefix, sizeof(prefix), "unit_%d_%06x_", (int)getpid(),
                 r & 0xffffff);
        free(fx->cfg.mongo_db_prefix);
        fx->cfg.mongo_db_prefix = strdup(prefix);
        fx->cfg.kafka_message_timeout_ms = 5000;
        fx->store = store_new(&fx->cfg, program, errstr, sizeof(errstr));
        if (!fx->store || store_ping(fx->store) != STORE_OK) {
                fprintf(stderr,
                        "%s: the store (%s) does not answer: "
                        "skipped\n",
                        program, fx->cfg.mongo_uri);
                return false;
        }
        /* The producer's "store up" flag comes from its watcher. */
        for (int i = 0; i < 50 && !store_is_up(fx->store); i++)
                usleep(100 * 1000);

        conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", errstr,
                          sizeof(errstr));
        fx->mock_owner =
                rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        fx->mock = rd_kafka_handle_mock_cluster(fx->mock_owner);
        snprintf(name, sizeof(name), "%s.commands", group);
        bus_topic(&fx->cfg, name, fx->topic, sizeof(fx->topic));
        rd_kafka_mock_topic_create(fx->mock, fx->topic, partitions, 1);
        free(fx->cfg.kafka_brokers);
        fx->cfg.kafka_brokers =
                strdup(rd_kafka_mock_cluster_bootstraps(fx->mock));
        fx->bus = bus_new(&fx->cfg, program, errstr, sizeof(errstr));
        if (!fx->bus) {
                fprintf(stderr, "bus: %s\n", errstr);
                return false;
        }

        conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "bootstrap.servers", fx->cfg.kafka_brokers,
                          errstr, sizeof(errstr));
        rd_kafka_conf_set(conf, "group.id", "teststore-reader", errstr,
                          sizeof(errstr));
        rd_kafka_conf_set(conf, "fetch.wait.max.ms", "10", errstr,
                          sizeof(errstr));
        fx->reader =
                rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
        rd_kafka_poll_set_consumer(fx->reader);
        parts = rd_kafka_topic_partition_list_new(partitions);
        for (int p = 0; p < partitions; p++)
                rd_kafka_topic_partition_list_add(parts, fx->topic, p)->offset =
                        RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_assign(fx->reader, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        return true;
}

void teststore_close(teststore_t *fx) {
        char db[256];
        bson_error_t e;

        if (fx->reader) {
                rd_kafka_consumer_close(fx->reader);
                rd_kafka_destroy(fx->reader);
        }
        bus_destroy(fx->bus);
        if (fx->mock_owner)
                rd_kafka_destroy(fx->mock_owner);
        if (fx->store) {
                mongoc_client_t *client = mongoc_client_new(fx->cfg.mongo_uri);
                if (client) {
                        mongoc_database_t *d;
                        snprintf(db, sizeof(db), "%s%s",
                                 fx->cfg.mongo_db_prefix, fx->group);
                        d = mongoc_client_get_database(client, db);
                        mongoc_database_drop(d, &e);
                        mongoc_database_destroy(d);
                        mongoc_client_destroy(client);
                }
        }
        store_destroy(fx->store);
        config_deinit(&fx->cfg);
}

bool teststore_next(teststore_t *fx, int timeout_ms, testcmd_t *out) {
        uint64_t end = clock_mono_ms() + (uint64_t)timeout_ms;
        char errstr[128];

        while (clock_mono_ms() < end) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(fx->reader, 20);
                rd_kafka_timestamp_type_t tstype;
                env_t env;
                if (!m)
                        continue;
                if (m->err) {
                        rd_kafka_message_destroy(m);
                        continue;
                }
                memset(out, 0, sizeof(*out));
                out->read_at_ms = (int64_t)clock_wall_ms();
                out->broker_ms = rd_kafka_message_timestamp(m, &tstype);
                if (env_decode(m, &env, errstr, sizeof(errstr)) == ENV_OK) {
                        copy_slice(env.id, out->id, sizeof(out->id));
                        copy_slice(env.type, out->type, sizeof(out->type));
                        copy_slice(env.tenant, out->tenant,
                                   sizeof(out->tenant));
                        copy_slice(env.user, out->user, sizeof(out->user));
                        copy_slice(env.roles, out->roles, sizeof(out->roles));
                        copy_slice(env.key, out->key, sizeof(out->key));
                        out->created_at_ms = env.created_at_ms;
                        out->body_len = env.value.len < sizeof(out->body)
                                                ? env.value.len
                                                : sizeof(out->body);
                        memcpy(out->body, env.value.ptr, out->body_len);
                } else {
                        snprintf(out->type, sizeof(out->type),
                                 "undecodable: %.100s", errstr);
                }
                rd_kafka_message_destroy(m);
                return true;
        }
        return false;
}

size_t teststore_drain(teststore_t *fx, int quiet_ms, testcmd_t *out,
                       size_t max) {
        size_t n = 0;
        testcmd_t one;
        while (teststore_next(fx, quiet_ms, n < max ? &out[n] : &one))
                n++;
        return n;
}

int teststore_dead_claim(teststore_t *fx, const char *coll,
                         const char *time_field, const char *status,
                         int64_t lease_ms, int64_t *at) {
        bson_t filter = BSON_INITIALIZER;
        lease_query_t q = {.db = fx->group,
                           .coll = coll,
                           .filter = &filter,
                           .time_field = time_field,
                           .limit = 1000,
                           .lease_ms = lease_ms};
        char owner[LEASE_OWNER_SIZE], errstr[256];
        int got = 0;

        BSON_APPEND_UTF8(&filter, "status", status);
        *at = (int64_t)clock_wall_ms();
        if (lease_claim(fx->store, &q, *at, owner, NULL, NULL, &got, NULL,
                        errstr, sizeof(errstr)) != STORE_OK)
                got = -1;
        bson_destroy(&filter);
        return got;
}

void teststore_parallel(int n, void *(*fn)(void *), void *const *args) {
        pthread_t t[64];
        for (int i = 0; i < n && i < 64; i++)
                pthread_create(&t[i], NULL, fn, args[i]);
        for (int i = 0; i < n && i < 64; i++)
                pthread_join(t[i], NULL);
}
