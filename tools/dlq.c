/*
 * dlq.c - the dead-letter queue tool (see dlq.h).
 *
 *   omnify dlq list    GROUP [--type T] [--since MS]   one line per message
 *   omnify dlq show    GROUP --id ID                   headers and body as JSON
 *   omnify dlq replay  GROUP [--type T] [--since MS] [--id ID]
 *   omnify dlq purge   GROUP                           delete every dead letter
 *
 * The queue is read from its low to its high watermark at the moment the
 * command starts, with no consumer group, so looking changes nothing.
 * Replay puts each message back on <group>.commands with its original key,
 * value and headers (the original id included, so a command that did finish
 * after all is answered from the operation log, not redone), minus the
 * dead-letter headers. Purge deletes records up to the high watermark: Kafka
 * cannot delete single records, so replay first what must be kept.
 */
#include "dlq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "codec.h"
#include "config.h"
#include "log.h"
#include "registry.h"

typedef struct dlq_filter {
        const char *type;
        const char *id;
        long long since_ms;
} dlq_filter_t;

/* A header's value as a NUL-terminated copy in buf ("" when absent). */
static const char *dlq__header(const rd_kafka_message_t *m, const char *name,
                               char *buf, size_t size) {
        rd_kafka_headers_t *h = NULL;
        const void *v;
        size_t n;
        buf[0] = '\0';
        if (rd_kafka_message_headers(m, &h) || !h ||
            rd_kafka_header_get_last(h, name, &v, &n) || !v)
                return buf;
        if (n >= size)
                n = size - 1;
        memcpy(buf, v, n);
        buf[n] = '\0';
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)buf[i] < 0x20)
                        buf[i] =
                                '?'; /* never let a header drive the terminal */
        return buf;
}

static int dlq__match(const rd_kafka_message_t *m, const dlq_filter_t *f) {
        char buf[256];
        if (f->type &&
            strcmp(dlq__header(m, "type", buf, sizeof(buf)), f->type) != 0)
                return 0;
        if (f->id && strcmp(dlq__header(m, "id", buf, sizeof(buf)), f->id) != 0)
                return 0;
        if (f->since_ms) {
                rd_kafka_timestamp_type_t tt;
                if (rd_kafka_message_timestamp(m, &tt) < f->since_ms)
                        return 0;
        }
        return 1;
}

static void dlq__list_one(const rd_kafka_message_t *m) {
        char id[64], type[128], err[256], attempts[16], topic[256];
        printf("%d@%lld  %s  %-28s attempts=%s from=%s  %s\n",
               (int)m->partition, (long long)m->offset,
               dlq__header(m, "id", id, sizeof(id)),
               dlq__header(m, "type", type, sizeof(type)),
               dlq__header(m, "attempts", attempts, sizeof(attempts)),
               dlq__header(m, "original-topic", topic, sizeof(topic)),
               dlq__header(m, "error", err, sizeof(err)));
}

static void dlq__show_one(const rd_kafka_message_t *m) {
        rd_kafka_headers_t *h = NULL;
        char *json = NULL;
        size_t json_len;
        printf("partition %d offset %lld\n", (int)m->partition,
               (long long)m->offset);
        if (!rd_kafka_message_headers(m, &h) && h) {
                const char *name;
                const void *v;
                size_t n;
                for (size_t i = 0;
                     !rd_kafka_header_get_all(h, i, &name, &v, &n); i++) {
                        printf("  %s: ", name);
                        for (size_t k = 0; k < n; k++) {
                                unsigned char c = ((const unsigned char *)v)[k];
                                putchar(c >= 0x20 && c < 0x7f ? c : '?');
                        }
                        putchar('\n');
                }
        }
        if (codec_msgpack_to_json((slice_t){m->payload, m->len}, &json,
                                  &json_len) == CODEC_OK) {
                printf("  body: %s\n", json);
                free(json);
        } else {
                printf("  body: (%zu bytes, not msgpack)\n", m->len);
        }
}

/* Strip the dead-letter headers from a copy of m's headers. */
static rd_kafka_headers_t *dlq__replay_headers(const rd_kafka_message_t *m) {
        static const char *const drop[] = {
                "error", "attempts", "original-topic", "original-partition",
                "original-offset"};
        rd_kafka_headers_t *orig = NULL, *h;
        if (rd_kafka_message_headers(m, &orig) || !orig)
                return rd_kafka_headers_new(1);
        h = rd_kafka_headers_copy(orig);
        for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++)
                rd_kafka_header_remove(h, drop[i]);
        return h;
}

int dlq_main(int argc, char **argv) {
        config_t cfg;
        char errstr[512], topic[256], commands[256], name[128];
        int argi = 1, status = 1;
        const char *verb, *group;
        dlq_filter_t filter = {0};
        bus_t *bus = NULL;
        rd_kafka_t *reader = NULL;
        rd_kafka_conf_t *conf;
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_partition_list_t *parts = NULL;
        int64_t *high = NULL;
        int n_parts = 0, done_parts = 0;
        long matched = 0, replayed = 0;

        config_load_or_exit(&cfg, CONFIG_SCOPE_TOOL, "omnify dlq", argc, argv,
                            &argi);
        log_init((log_level_t)cfg.log_level, "omnify-dlq");
        if (argc - argi < 2) {
                fprintf(stderr,
                        "Usage: omnify dlq list|show|replay|purge GROUP "
                        "[--type T] [--since UNIX_MS] [--id ID]\n");
                config_deinit(&cfg);
                return 2;
        }
        verb = argv[argi];
        group = argv[argi + 1];
        if (!registry_find(group, strlen(group))) {
                fprintf(stderr, "omnify dlq: unknown group '%s'\n", group);
                config_deinit(&cfg);
                return 2;
        }
        for (int i = argi + 2; i + 1 < argc; i += 2) {
                if (strcmp(argv[i], "--type") == 0)
                        filter.type = argv[i + 1];
                else if (strcmp(argv[i], "--id") == 0)
                        filter.id = argv[i + 1];
                else if (strcmp(argv[i], "--since") == 0)
                        filter.since_ms = strtoll(argv[i + 1], NULL, 10);
                else {
                        fprintf(stderr, "omnify dlq: unknown option '%s'\n",
                                argv[i]);
                        config_deinit(&cfg);
                        return 2;
                }
        }
        if (strcmp(verb, "show") == 0 && !filter.id) {
                fprintf(stderr, "omnify dlq show: --id ID is required\n");
                config_deinit(&cfg);
                return 2;
        }
        snprintf(name, sizeof(name), "%s.dlq", group);
        bus_topic(&cfg, name, topic, sizeof(topic));
        snprintf(name, sizeof(name), "%s.commands", group);
        bus_topic(&cfg, name, commands, sizeof(commands));

        bus = bus_new(&cfg, "omnify-dlq", errstr, sizeof(errstr));
        if (!bus)
                goto fail;
        {
                rd_kafka_topic_t *rkt =
                        rd_kafka_topic_new(bus_handle(bus), topic, NULL);
                rd_kafka_resp_err_t err =
                        rd_kafka_metadata(bus_handle(bus), 0, rkt, &md, 10000);
                rd_kafka_topic_destroy(rkt);
                if (err || md->topic_cnt != 1 || md->topics[0].err) {
                        snprintf(errstr, sizeof(errstr), "topic %s not found",
                                 topic);
                        goto fail;
                }
                n_parts = md->topics[0].partition_cnt;
        }

        if (strcmp(verb, "purge") == 0) {
                rd_kafka_topic_partition_list_t *del =
                        rd_kafka_topic_partition_list_new(n_parts);
                rd_kafka_DeleteRecords_t *dr;
                rd_kafka_queue_t *q = rd_kafka_queue_new(bus_handle(bus));
                rd_kafka_event_t *ev;
                for (int p = 0; p < n_parts; p++)
                        rd_kafka_topic_partition_list_add(del, topic, p)
                                ->offset = RD_KAFKA_OFFSET_END;
                dr = rd_kafka_DeleteRecords_new(del);
                rd_kafka_DeleteRecords(bus_handle(bus), &dr, 1, NULL, q);
                ev = rd_kafka_queue_poll(q, 30000);
                if (!ev || rd_kafka_event_error(ev)) {
                        snprintf(errstr, sizeof(errstr), "purge failed: %s",
                                 ev ? rd_kafka_event_error_string(ev)
                                    : "no answer");
                } else {
                        printf("purged %s\n", topic);
                        status = 0;
                }
                if (ev)
                        rd_kafka_event_destroy(ev);
                rd_kafka_DeleteRecords_destroy(dr);
                rd_kafka_topic_partition_list_destroy(del);
                rd_kafka_queue_destroy(q);
                if (status)
                        goto fail;
                goto out;
        }
        if (strcmp(verb, "list") && strcmp(verb, "show") &&
            strcmp(verb, "replay")) {
                fprintf(stderr, "omnify dlq: unknown verb '%s'\n", verb);
                status = 2;
                goto out;
        }

        conf = rd_kafka_conf_new();
        if (rd_kafka_conf_set(conf, "bootstrap.servers", cfg.kafka_brokers,
                              errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "group.id", "omnify-dlq-reader", errstr,
                              sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr,
                              sizeof(errstr))) {
                rd_kafka_conf_destroy(conf);
                goto fail;
        }
        reader = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
        if (!reader) {
                rd_kafka_conf_destroy(conf);
                goto fail;
        }
        parts = rd_kafka_topic_partition_list_new(n_parts);
        high = calloc((size_t)n_parts, sizeof(*high));
        for (int p = 0; p < n_parts; p++) {
                int64_t lo = 0, hi = 0;
                rd_kafka_query_watermark_offsets(reader, topic, p, &lo, &hi,
                                                 10000);
                high[p] = hi;
                if (hi > lo)
                        rd_kafka_topic_partition_list_add(parts, topic, p)
                                ->offset = lo;
                else
                        done_parts++;
        }
        rd_kafka_assign(reader, parts);
        while (done_parts < n_parts) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(reader, 5000);
                if (!m) {
                        snprintf(errstr, sizeof(errstr), "timed out reading %s",
                                 topic);
                        goto fail;
                }
                if (m->err) {
                        rd_kafka_message_destroy(m);
                        continue;
                }
                if (m->offset < high[m->partition] && dlq__match(m, &filter)) {
                        matched++;
                        if (strcmp(verb, "list") == 0)
                                dlq__list_one(m);
                        else if (strcmp(verb, "show") == 0)
                                dlq__show_one(m);
                        else if (bus_produce(bus, commands,
                                             RD_KAFKA_PARTITION_UA,
                                             (slice_t){m->key, m->key_len},
                                             dlq__replay_headers(m),
                                             (slice_t){m->payload, m->len},
                                             NULL) == BUS_OK)
                                replayed++;
                }
                if (m->offset + 1 >= high[m->partition])
                        done_parts++;
                rd_kafka_message_destroy(m);
        }
        if (strcmp(verb, "replay") == 0) {
                if (bus_flush(bus, 30000) != BUS_OK) {
                        snprintf(errstr, sizeof(errstr),
                                 "replayed messages not all delivered");
                        goto fail;
                }
                printf("replayed %ld of %ld matching message(s) to %s\n",
                       replayed, matched, commands);
        } else {
                printf("%ld message(s)\n", matched);
        }
        status = 0;
        goto out;
fail:
        fprintf(stderr, "omnify dlq: %s\n", errstr);
out:
        if (parts)
                rd_kafka_topic_partition_list_destroy(parts);
        free(high);
        if (reader) {
                rd_kafka_consumer_close(reader);
                rd_kafka_destroy(reader);
        }
        if (md)
                rd_kafka_metadata_destroy(md);
        bus_destroy(bus);
        config_deinit(&cfg);
        return status;
}
