/*
 * topics.c - declared topics vs the live cluster (see topics.h).
 *
 * plan prints what apply would do; apply creates missing topics with their
 * partitions, retention and cleanup policy, and grows partition counts.
 * Partitions are never shrunk: Kafka cannot, and a smaller count would send
 * existing keys to other partitions and break per-key order.
 */
#include "topics.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "config.h"
#include "log.h"
#include "schemas_embedded.h"

typedef struct topic_decl {
        char name[256]; /* with prefix */
        int partitions;
        long long retention_ms;
        char cleanup[16];
} topic_decl_t;

/* Parse and check topics.json. Returns the count or -1 with errstr. */
static int topics__load(const config_t *cfg, topic_decl_t **out, char *errstr,
                        size_t errlen) {
        json_error_t jerr;
        json_t *doc = json_loadb(topics_embedded.text, topics_embedded.len,
                                 JSON_REJECT_DUPLICATES, &jerr);
        json_t *list, *t;
        size_t i;
        topic_decl_t *decls;

        if (!doc) {
                snprintf(errstr, errlen, "topics.json:%d:%d: %s", jerr.line,
                         jerr.column, jerr.text);
                return -1;
        }
        list = json_object_get(doc, "topics");
        if (!json_is_array(list)) {
                snprintf(errstr, errlen,
                         "topics.json: topics: must be an array");
                json_decref(doc);
                return -1;
        }
        decls = calloc(json_array_size(list) + 1, sizeof(*decls));
        json_array_foreach(list, i, t) {
                const char *name =
                        json_string_value(json_object_get(t, "name"));
                const char *cleanup =
                        json_string_value(json_object_get(t, "cleanup_policy"));
                json_t *parts = json_object_get(t, "partitions");
                json_t *ret = json_object_get(t, "retention_ms");
                if (!name || !*name || strlen(name) > 200 ||
                    !json_is_integer(parts) || json_integer_value(parts) < 1 ||
                    json_integer_value(parts) > 1000 || !json_is_integer(ret) ||
                    (json_integer_value(ret) != -1 &&
                     json_integer_value(ret) < 60000) ||
                    !cleanup ||
                    (strcmp(cleanup, "delete") && strcmp(cleanup, "compact"))) {
                        snprintf(errstr, errlen,
                                 "topics.json: topics[%zu]: needs name, "
                                 "partitions 1..1000, "
                                 "retention_ms -1 or >= 60000, cleanup_policy "
                                 "delete|compact",
                                 i);
                        free(decls);
                        json_decref(doc);
                        return -1;
                }
                snprintf(decls[i].name, sizeof(decls[i].name), "%s%s",
                         cfg->topic_prefix, name);
                decls[i].partitions = (int)json_integer_value(parts);
                decls[i].retention_ms = json_integer_value(ret);
                snprintf(decls[i].cleanup, sizeof(decls[i].cleanup), "%s",
                         cleanup);
        }
        *out = decls;
        i = json_array_size(list);
        json_decref(doc);
        return (int)i;
}

/* Current partition count of name in md, or 0 when missing. */
static int topics__current(const struct rd_kafka_metadata *md,
                           const char *name) {
        for (int t = 0; t < md->topic_cnt; t++)
                if (strcmp(md->topics[t].topic, name) == 0 &&
                    md->topics[t].err == RD_KAFKA_RESP_ERR_NO_ERROR)
                        return md->topics[t].partition_cnt;
        return 0;
}

/* Wait for one admin result event and report per-topic errors. */
static int topics__wait(rd_kafka_queue_t *q, int create) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
        const rd_kafka_topic_result_t **res;
        size_t n = 0;
        int failed = 0;
        if (!ev) {
                fprintf(stderr, "omnify topics: no answer from the cluster\n");
                return -1;
        }
        if (rd_kafka_event_error(ev)) {
                fprintf(stderr, "omnify topics: %s\n",
                        rd_kafka_event_error_string(ev));
                rd_kafka_event_destroy(ev);
                return -1;
        }
        if (create)
                res = rd_kafka_CreateTopics_result_topics(
                        rd_kafka_event_CreateTopics_result(ev), &n);
        else
                res = rd_kafka_CreatePartitions_result_topics(
                        rd_kafka_event_CreatePartitions_result(ev), &n);
        for (size_t i = 0; i < n; i++) {
                rd_kafka_resp_err_t err = rd_kafka_topic_result_error(res[i]);
                if (err && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                        fprintf(stderr, "omnify topics: %s: %s\n",
                                rd_kafka_topic_result_name(res[i]),
                                rd_kafka_topic_result_error_string(res[i]));
                        failed = 1;
                }
        }
        rd_kafka_event_destroy(ev);
        return failed ? -1 : 0;
}

/*
 * `omnify topics delete PREFIX`: delete every declared topic under the
 * configured prefix. PREFIX must repeat the configured prefix, so a slip of
 * the environment cannot delete another deployment's topics. For test runs
 * and teardown; their data is gone for good.
 */
static int topics__delete(const config_t *cfg, int argc, char **argv) {
        char errstr[512];
        topic_decl_t *decls = NULL;
        rd_kafka_DeleteTopic_t **del = NULL;
        rd_kafka_queue_t *q = NULL;
        rd_kafka_event_t *ev = NULL;
        bus_t *bus = NULL;
        int n, status = 1;

        if (argc != 2 || strcmp(argv[1], cfg->topic_prefix) != 0 ||
            strcmp(cfg->topic_prefix, "omnify.") == 0) {
                fprintf(stderr,
                        "omnify topics delete: give the configured prefix "
                        "(OMNIFY_TOPIC_PREFIX) to confirm; the default "
                        "prefix is never deleted\n");
                return 2;
        }
        n = topics__load(cfg, &decls, errstr, sizeof(errstr));
        if (n < 0)
                goto fail;
        bus = bus_new(cfg, "omnify-topics", errstr, sizeof(errstr));
        if (!bus)
                goto fail;
        del = calloc((size_t)n, sizeof(*del));
        for (int i = 0; i < n; i++)
                del[i] = rd_kafka_DeleteTopic_new(decls[i].name);
        q = rd_kafka_queue_new(bus_handle(bus));
        rd_kafka_DeleteTopics(bus_handle(bus), del, (size_t)n, NULL, q);
        ev = rd_kafka_queue_poll(q, 30000);
        if (!ev || rd_kafka_event_error(ev)) {
                snprintf(errstr, sizeof(errstr), "delete failed: %s",
                         ev ? rd_kafka_event_error_string(ev) : "no answer");
                goto fail;
        }
        printf("deleted %d topic(s) under %s\n", n, cfg->topic_prefix);
        status = 0;
        goto out;
fail:
        fprintf(stderr, "omnify topics: %s\n", errstr);
out:
        if (ev)
                rd_kafka_event_destroy(ev);
        if (q)
                rd_kafka_queue_destroy(q);
        if (del)
                rd_kafka_DeleteTopic_destroy_array(del, (size_t)n);
        free(del);
        bus_destroy(bus);
        free(decls);
        return status;
}

int topics_main(int argc, char **argv) {
        config_t cfg;
        char errstr[512];
        int argi = 1, n, status = 1, apply;
        topic_decl_t *decls = NULL;
        bus_t *bus = NULL;
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_NewTopic_t **create = NULL;
        rd_kafka_NewPartitions_t **grow = NULL;
        size_t n_create = 0, n_grow = 0;
        rd_kafka_queue_t *q = NULL;

        config_load_or_exit(&cfg, CONFIG_SCOPE_TOOL, "omnify topics", argc,
                            argv, &argi);
        log_init((log_level_t)cfg.log_level, "omnify-topics");
        if (argi < argc && strcmp(argv[argi], "delete") == 0) {
                status = topics__delete(&cfg, argc - argi, argv + argi);
                config_deinit(&cfg);
                return status;
        }
        if (argi >= argc ||
            (strcmp(argv[argi], "plan") && strcmp(argv[argi], "apply"))) {
                fprintf(stderr, "Usage: omnify topics plan|apply "
                                "[--SETTING=VALUE ...]\n"
                                "       omnify topics delete PREFIX\n");
                config_deinit(&cfg);
                return 2;
        }
        apply = strcmp(argv[argi], "apply") == 0;
        n = topics__load(&cfg, &decls, errstr, sizeof(errstr));
        if (n < 0)
                goto fail;
        bus = bus_new(&cfg, "omnify-topics", errstr, sizeof(errstr));
        if (!bus)
                goto fail;
        if (rd_kafka_metadata(bus_handle(bus), 1, NULL, &md, 10000)) {
                snprintf(errstr, sizeof(errstr), "cannot read metadata from %s",
                         cfg.kafka_brokers);
                goto fail;
        }
        create = calloc((size_t)n + 1, sizeof(*create));
        grow = calloc((size_t)n + 1, sizeof(*grow));
        for (int i = 0; i < n; i++) {
                int have = topics__current(md, decls[i].name);
                if (have == 0) {
                        char ret[32];
                        printf("create  %-40s partitions=%d retention.ms=%lld "
                               "cleanup.policy=%s\n",
                               decls[i].name, decls[i].partitions,
                               decls[i].retention_ms, decls[i].cleanup);
                        create[n_create] = rd_kafka_NewTopic_new(
                                decls[i].name, decls[i].partitions, -1, errstr,
                                sizeof(errstr));
                        if (!create[n_create])
                                goto fail;
                        snprintf(ret, sizeof(ret), "%lld",
                                 decls[i].retention_ms);
                        rd_kafka_NewTopic_set_config(create[n_create],
                                                     "retention.ms", ret);
                        rd_kafka_NewTopic_set_config(create[n_create],
                                                     "cleanup.policy",
                                                     decls[i].cleanup);
                        n_create++;
                } else if (have < decls[i].partitions) {
                        printf("grow    %-40s partitions %d -> %d\n",
                               decls[i].name, have, decls[i].partitions);
                        grow[n_grow++] = rd_kafka_NewPartitions_new(
                                decls[i].name, (size_t)decls[i].partitions,
                                errstr, sizeof(errstr));
                } else if (have > decls[i].partitions) {
                        printf("keep    %-40s has %d partitions, file says %d: "
                               "partitions are "
                               "never shrunk (keys would move)\n",
                               decls[i].name, have, decls[i].partitions);
                } else {
                        printf("ok      %-40s partitions=%d\n", decls[i].name,
                               have);
                }
        }
        if (!apply || (n_create == 0 && n_grow == 0)) {
                printf("%zu to create, %zu to grow%s\n", n_create, n_grow,
                       apply ? "" : " (plan only)");
                status = 0;
                goto out;
        }
        q = rd_kafka_queue_new(bus_handle(bus));
        if (n_create) {
                rd_kafka_CreateTopics(bus_handle(bus), create, n_create, NULL,
                                      q);
                if (topics__wait(q, 1))
                        goto out;
        }
        if (n_grow) {
                rd_kafka_CreatePartitions(bus_handle(bus), grow, n_grow, NULL,
                                          q);
                if (topics__wait(q, 0))
                        goto out;
        }
        /* The controller answers before every broker lists the new topics:
         * wait until they show, so what starts next finds them. */
        for (int attempt = 0; attempt < 120; attempt++) {
                const char **names = calloc((size_t)n, sizeof(char *));
                bus_err_t berr;
                for (int i = 0; i < n; i++)
                        names[i] = decls[i].name;
                berr = bus_check_topics(bus, names, (size_t)n, NULL, errstr,
                                        sizeof(errstr));
                free(names);
                if (berr == BUS_OK)
                        break;
                if (attempt == 119) {
                        fprintf(stderr, "omnify topics: created, but %s\n",
                                errstr);
                        goto out;
                }
                struct timespec ts = {0, 250 * 1000000L};
                nanosleep(&ts, NULL);
        }
        printf("applied: %zu created, %zu grown\n", n_create, n_grow);
        status = 0;
        goto out;
fail:
        fprintf(stderr, "omnify topics: %s\n", errstr);
out:
        if (create)
                rd_kafka_NewTopic_destroy_array(create, n_create);
        if (grow)
                rd_kafka_NewPartitions_destroy_array(grow, n_grow);
        free(create);
        free(grow);
        if (q)
                rd_kafka_queue_destroy(q);
        if (md)
                rd_kafka_metadata_destroy(md);
        bus_destroy(bus);
        free(decls);
        config_deinit(&cfg);
        return status;
}
