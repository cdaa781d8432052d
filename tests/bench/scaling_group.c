/*
 * scaling_group.c - the consumer side of the scaling benchmark.
 *
 * A group named "benchio" run by the real runtime (decode, dispatch,
 * operation log, commit): its one handler waits on an outbound HTTP call,
 * the way an integration waits on a provider. The benchmark starts 1, 2, 4
 * and 8 of these processes against an 8-partition commands topic and
 * measures throughput and rebalance time (tests/bench/scaling).
 *
 *   bench-scaling setup PARTITIONS       create <prefix>benchio.{commands,
 *                                        events,dlq}
 *   bench-scaling produce N PARTITIONS   put N commands, spread evenly
 *   bench-scaling consume URL [WORKERS]  run the group; each command GETs
 *                                        URL; WORKERS > 1 runs that many
 *                                        commands at once (order per key)
 *
 * Settings as for every group (OMNIFY_* variables), e.g. OMNIFY_OPS_PORT.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "codec.h"
#include "log.h"
#include "msgid.h"
#include "ops.h"
#include "runtime.h"
#include "schemas_embedded.h"
#include "service.h"

static const char benchio_schema[] =
        "{\"group\":\"benchio\",\"messages\":[{\"type\":\"benchio.call\","
        "\"version\":1,"
        "\"summary\":\"One outbound HTTP call (benchmark only)\","
        "\"fields\":{\"n\":{\"type\":\"integer\",\"required\":true,"
        "\"doc\":\"sequence number\"}}},"
        "{\"type\":\"benchio.put\",\"version\":1,"
        "\"summary\":\"One document written (benchmark only)\"}]}";

static const char *call_url;

static size_t sink(char *ptr, size_t size, size_t n, void *arg) {
        (void)ptr;
        (void)arg;
        return size * n;
}

/* One easy handle per thread: handlers of one group may run on several
 * workers at once (it keeps its connection alive). */
static __thread CURL *benchio_curl;

static CURL *benchio_handle(void) {
        if (!benchio_curl) {
                benchio_curl = curl_easy_init();
                if (!benchio_curl)
                        return NULL;
                curl_easy_setopt(benchio_curl, CURLOPT_URL, call_url);
                curl_easy_setopt(benchio_curl, CURLOPT_TIMEOUT_MS, 5000L);
                curl_easy_setopt(benchio_curl, CURLOPT_NOSIGNAL, 1L);
                curl_easy_setopt(benchio_curl, CURLOPT_WRITEFUNCTION, sink);
        }
        return benchio_curl;
}

static handler_result_t benchio_call(rt_ctx_t *ctx,
                                     const msgpack_object *body) {
        CURL *curl = benchio_handle();
        long code = 0;
        msgpack_packer *pk;
        (void)body;
        if (!curl || curl_easy_perform(curl) != CURLE_OK)
                return HANDLER_TRANSIENT;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
        if (code < 200 || code >= 300)
                return HANDLER_TRANSIENT;
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 1);
        codec_pack_str(pk, "status");
        msgpack_pack_long(pk, code);
        return HANDLER_OK;
}

/* A state-changing command: one document per command, written in bulk
 * for the whole poll (the runtime adds the operation records, also in
 * bulk). */
static handler_result_t benchio_put(rt_ctx_t *const *ctxs,
                                    const msgpack_object *const *bodies,
                                    size_t n) {
        store_bulk_t *b = store_bulk_new(rt_store(ctxs[0]), rt_db(ctxs[0]),
                                         "things", false);
        char errstr[256];
        store_err_t err;
        int64_t now = (int64_t)clock_wall_ms();
        (void)bodies;
        for (size_t i = 0; i < n; i++) {
                const env_t *env = rt_env(ctxs[i]);
                bson_t doc = BSON_INITIALIZER;
                bson_append_utf8(&doc, "_id", 3, env->id.ptr, (int)env->id.len);
                BSON_APPEND_UTF8(&doc, "tenant", "t1");
                BSON_APPEND_INT64(&doc, "at", now);
                store_bulk_insert(b, &doc);
                bson_destroy(&doc);
                msgpack_pack_map(rt_reply(ctxs[i], 201), 0);
        }
        err = store_bulk_run(b, NULL, errstr, sizeof(errstr));
        store_bulk_destroy(b);
        return err == STORE_OK            ? HANDLER_OK
               : store_err_transient(err) ? HANDLER_TRANSIENT
                                          : HANDLER_PERMANENT;
}

static const group_handler_t benchio_handlers[] = {
        {"benchio.call", benchio_call},
        {"benchio.put", NULL, benchio_put},
};

static group_def_t group_benchio = {
        .name = "benchio",
        .ops_port = 8099,
        .handlers = benchio_handlers,
        .n_handlers = 2,
};

static int setup(const config_t *cfg, int partitions) {
        char errstr[512], topics[3][256];
        const char *names[3] = {"benchio.commands", "benchio.events",
                                "benchio.dlq"};
        rd_kafka_NewTopic_t *nt[3];
        bus_t *bus = bus_new(cfg, "bench-setup", errstr, sizeof(errstr));
        rd_kafka_queue_t *q;
        rd_kafka_event_t *ev;
        int status = 1;
        if (!bus) {
                fprintf(stderr, "%s\n", errstr);
                return 1;
        }
        for (int i = 0; i < 3; i++) {
                bus_topic(cfg, names[i], topics[i], sizeof(topics[i]));
                nt[i] = rd_kafka_NewTopic_new(topics[i],
                                              i == 0 ? partitions : 1, -1,
                                              errstr, sizeof(errstr));
        }
        q = rd_kafka_queue_new(bus_handle(bus));
        rd_kafka_CreateTopics(bus_handle(bus), nt, 3, NULL, q);
        ev = rd_kafka_queue_poll(q, 30000);
        if (ev && !rd_kafka_event_error(ev))
                status = 0;
        if (ev)
                rd_kafka_event_destroy(ev);
        rd_kafka_NewTopic_destroy_array(nt, 3);
        rd_kafka_queue_destroy(q);
        bus_destroy(bus);
        return status;
}

static int produce(const config_t *cfg, long n, int partitions) {
        char errstr[512], topic[256];
        bus_t *bus = bus_new(cfg, "bench-produce", errstr, sizeof(errstr));
        if (!bus) {
                fprintf(stderr, "%s\n", errstr);
                return 1;
        }
        bus_topic(cfg, "benchio.commands", topic, sizeof(topic));
        for (long i = 0; i < n; i++) {
                char id[MSGID_TEXT_SIZE], key[32];
                msgid_t mid;
                env_t env = {0};
                msgpack_sbuffer sb;
                msgpack_packer pk;
                msgid_new(&mid);
                msgid_format(&mid, id);
                env.id = slice_of(id);
                env.type = slice_of("benchio.call");
                env.schema_version = 1;
                env.created_at_ms = (int64_t)clock_wall_ms();
                msgpack_sbuffer_init(&sb);
                msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                msgpack_pack_map(&pk, 1);
                codec_pack_str(&pk, "n");
                msgpack_pack_long(&pk, i);
                snprintf(key, sizeof(key), "%ld", i);
                while (bus_produce(bus, topic, (int32_t)(i % partitions),
                                   slice_of(key), env_headers(&env),
                                   (slice_t){sb.data, sb.size},
                                   NULL) == BUS_QUEUE_FULL)
                        bus_flush(bus, 100);
                msgpack_sbuffer_destroy(&sb);
        }
        bus_destroy(bus); /* flushes */
        return 0;
}

static int consume(const config_t *cfg) {
        char errstr[512];
        schema_source_t sources[16];
        size_t n = 0;
        schema_set_t *schemas = NULL;
        bus_t *bus = NULL;
        store_t *store = NULL;
        runtime_t *rt = NULL;
        ops_server_t *ops = NULL;
        int status = 1;

        for (size_t i = 0; i < schemas_embedded_count && n < 15; i++)
                sources[n++] = schemas_embedded[i];
        sources[n++] = (schema_source_t){"benchio.json", benchio_schema,
                                         sizeof(benchio_schema) - 1};
        if (schema_set_load(&schemas, sources, n, errstr, sizeof(errstr)) !=
            SCHEMA_OK)
                goto out;
        bus = bus_new(cfg, "bench-consume", errstr, sizeof(errstr));
        if (!bus)
                goto out;
        store = store_new(cfg, "bench-consume", errstr, sizeof(errstr));
        if (!store)
                goto out;
        rt = runtime_new(&group_benchio, cfg, schemas, bus, store,
                         RUNTIME_STANDALONE, errstr, sizeof(errstr));
        if (!rt)
                goto out;
        ops = ops_server_new(cfg->ops_bind,
                             cfg->ops_port ? cfg->ops_port : 8099, rt, errstr,
                             sizeof(errstr));
        if (!ops)
                goto out;
        status = runtime_run(rt, &service_stop);
        errstr[0] = '\0';
out:
        if (status && errstr[0])
                fprintf(stderr, "bench-scaling: %s\n", errstr);
        ops_server_destroy(ops);
        runtime_destroy(rt);
        store_destroy(store);
        bus_destroy(bus);
        schema_set_destroy(schemas);
        return status;
}

int main(int argc, char **argv) {
        config_t cfg;
        int argi = 1, status = 2;
        config_load_or_exit(&cfg, CONFIG_SCOPE_GROUP, "bench-scaling", argc,
                            argv, &argi);
        log_init((log_level_t)cfg.log_level, "bench-scaling");
        service_install_signals();
        if (argi + 1 < argc && strcmp(argv[argi], "setup") == 0)
                status = setup(&cfg, atoi(argv[argi + 1]));
        else if (argi + 2 < argc && strcmp(argv[argi], "produce") == 0)
                status = produce(&cfg, atol(argv[argi + 1]),
                                 atoi(argv[argi + 2]));
        else if (argi + 1 < argc && strcmp(argv[argi], "consume") == 0) {
                call_url = argv[argi + 1];
                if (argi + 2 < argc)
                        group_benchio.concurrency = atoi(argv[argi + 2]);
                curl_global_init(CURL_GLOBAL_DEFAULT);
                status = consume(&cfg);
        } else
                fprintf(stderr, "Usage: bench-scaling setup P | produce N P | "
                                "consume URL [WORKERS]\n");
        config_deinit(&cfg);
        return status;
}
