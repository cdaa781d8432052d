/*
 * events.c - bench-events: events of other groups, as they would publish
 * them (envelope headers, msgpack bodies), for analytics' tests and
 * benchmarks; and the raw librdkafka consumer the replay is measured
 * against.
 *
 *   bench-events produce
 *       JSON lines on stdin, one event each: {"topic": "integrations.events",
 *       "type": "...", "tenant": "...", "key": "...", "id": "...",
 *       "created_at": ms, "version": 1, "user": "...", "roles": "...",
 *       "body": {...}} (topic unprefixed; key default tenant; id default a
 *       new UUIDv7; created_at default now; user and roles for commands a
 *       group sends itself, such as a timer's).
 *       Prints produced=N once every event is acknowledged; with -v first a
 *       line "at ID PARTITION OFFSET" per event, as the broker placed it.
 *   bench-events generate -n N [-t TENANTS] [-a ACCOUNTS] [-c CAMPAIGNS]
 *                         [-d DAYS] [-s SEED]
 *       N integrations.ad_metrics.recorded events over TENANTS x ACCOUNTS x
 *       CAMPAIGNS x DAYS facts, each fact published N / facts times with a
 *       newer observed_ms (late conversions, re-syncs), keyed
 *       tenant|provider|account like integrations; deterministic (same
 *       arguments, same ids and bodies). Prints generated=N facts=F.
 *   bench-events tenant -T TENANT [-d DAYS] [-c CAMPAIGNS]
 *       One tenant's data across 11 providers: ad metrics of CAMPAIGNS
 *       campaigns over 5 ad platforms, Shopify and Stripe orders, TripleWhale
 *       summaries, HubSpot, Klaviyo and GoHighLevel contacts and deals, for
 *       the last DAYS days (the dashboard benchmark).
 *   bench-events delete -p PARTITION -o OFFSET
 *       Delete the records of <prefix>integrations.events before OFFSET on
 *       PARTITION, as retention would (what a replay can no longer read).
 *   bench-events consume [-n N]
 *       Read <prefix>integrations.events from the earliest offset to the
 *       high watermark with a plain consumer (no decoding): the raw rate.
 *       Prints raw_events=N raw_s=S raw_rate=R.
 *
 * Kafka and the topic prefix come from OMNIFY_KAFKA_BROKERS and
 * OMNIFY_TOPIC_PREFIX.
 */
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caltime.h"
#include "codec.h"
#include "config.h"
#include "envelope.h"
#include "msgid.h"

static const config_t *cfg;
static long delivered, failed;
static bool verbose;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *o) {
        (void)rk;
        (void)o;
        if (m->err) {
                failed++;
                return;
        }
        delivered++;
        if (verbose) {
                rd_kafka_headers_t *h = NULL;
                const void *v = NULL;
                size_t n = 0;
                if (!rd_kafka_message_headers(m, &h) && h)
                        rd_kafka_header_get_last(h, "id", &v, &n);
                printf("at %.*s %d %" PRId64 "\n", (int)n,
                       v ? (const char *)v : "", (int)m->partition, m->offset);
        }
}

static rd_kafka_t *producer(void) {
        char err[512];
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        rd_kafka_t *rk;
        if (rd_kafka_conf_set(c, "bootstrap.servers", cfg->kafka_brokers, err,
                              sizeof(err)) ||
            rd_kafka_conf_set(c, "enable.idempotence", "true", err,
                              sizeof(err)) ||
            rd_kafka_conf_set(c, "linger.ms", "20", err, sizeof(err)) ||
            rd_kafka_conf_set(c, "batch.num.messages", "10000", err,
                              sizeof(err)) ||
            rd_kafka_conf_set(c, "queue.buffering.max.messages", "500000", err,
                              sizeof(err))) {
                fprintf(stderr, "bench-events: %s\n", err);
                exit(2);
        }
        rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
        if (!rk) {
                fprintf(stderr, "bench-events: %s\n", err);
                exit(1);
        }
        return rk;
}

/* Produce one event: headers of the envelope, msgpack body. */
static const char *who_user, *who_roles; /* produce: this event's */

static void send_event(rd_kafka_t *rk, const char *topic, const char *type,
                       const char *tenant, slice_t key, const char *id,
                       int64_t created_ms, int version, const char *body,
                       size_t len) {
        char full[256], ver[16];
        env_t env;
        rd_kafka_headers_t *h;
        rd_kafka_resp_err_t err;
        memset(&env, 0, sizeof(env));
        snprintf(full, sizeof(full), "%s%s", cfg->topic_prefix, topic);
        env.id = slice_of(id);
        env.type = slice_of(type);
        env.schema_version = version;
        env.created_at_ms = created_ms;
        env.tenant = slice_of(tenant);
        env.user = slice_of(who_user);
        env.roles = slice_of(who_roles);
        h = env_headers(&env);
        (void)ver;
        for (;;) {
                err = rd_kafka_producev(
                        rk, RD_KAFKA_V_TOPIC(full),
                        RD_KAFKA_V_KEY(key.ptr, key.len),
                        RD_KAFKA_V_VALUE((void *)body, len),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        break;
                rd_kafka_poll(rk, 50);
        }
        if (err) {
                fprintf(stderr, "bench-events: produce: %s\n",
                        rd_kafka_err2str(err));
                rd_kafka_headers_destroy(h);
                failed++;
        }
        rd_kafka_poll(rk, 0);
}

static int finish(rd_kafka_t *rk, long sent) {
        rd_kafka_flush(rk, 120000);
        rd_kafka_destroy(rk);
        if (failed || delivered != sent) {
                fprintf(stderr, "bench-events: %ld of %ld delivered\n",
                        delivered, sent);
                return 1;
        }
        return 0;
}

/* ---------------------------------------------------------------------------
 * produce: JSON lines
 * ------------------------------------------------------------------------ */

static int cmd_produce(void) {
        rd_kafka_t *rk = producer();
        char *line = NULL;
        size_t cap = 0;
        long sent = 0;
        while (getline(&line, &cap, stdin) > 0) {
                json_error_t jerr;
                json_t *j = json_loads(line, 0, &jerr), *body;
                msgpack_sbuffer sb;
                char err[256], idbuf[MSGID_TEXT_SIZE], *bj;
                const char *tenant, *key, *id;
                int64_t created;
                if (!j)
                        continue;
                body = json_object_get(j, "body");
                bj = json_dumps(body ? body : json_object(), JSON_COMPACT);
                msgpack_sbuffer_init(&sb);
                if (codec_json_to_msgpack(slice_of(bj), NULL, &sb, err,
                                          sizeof(err)) != CODEC_OK) {
                        fprintf(stderr, "bench-events: body: %s\n", err);
                        free(bj);
                        json_decref(j);
                        return 2;
                }
                tenant = json_string_value(json_object_get(j, "tenant"));
                key = json_string_value(json_object_get(j, "key"));
                id = json_string_value(json_object_get(j, "id"));
                if (!id) {
                        msgid_t mid;
                        msgid_new(&mid);
                        msgid_format(&mid, idbuf);
                        id = idbuf;
                }
                created = json_integer_value(json_object_get(j, "created_at"));
                who_user = json_string_value(json_object_get(j, "user"));
                who_roles = json_string_value(json_object_get(j, "roles"));
                send_event(rk,
                           json_string_value(json_object_get(j, "topic"))
                                   ?: "integrations.events",
                           json_string_value(json_object_get(j, "type")),
                           tenant ? tenant : "",
                           slice_of(key      ? key
                                    : tenant ? tenant
                                             : id),
                           id, created ? created : (int64_t)clock_wall_ms(),
                           json_integer_value(json_object_get(j, "version"))
                                   ?: 1,
                           sb.data, sb.size);
                sent++;
                who_user = who_roles = NULL;
                msgpack_sbuffer_destroy(&sb);
                free(bj);
                json_decref(j);
        }
        free(line);
        if (finish(rk, sent))
                return 1;
        printf("produced=%ld\n", sent);
        return 0;
}

/* ---------------------------------------------------------------------------
 * generate: many versions of many daily facts
 * ------------------------------------------------------------------------ */

static uint64_t mix(uint64_t x) {
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdULL;
        x ^= x >> 33;
        x *= 0xc4ceb9fe1a85ec53ULL;
        return x ^ (x >> 33);
}

static const char *const ad_providers[] = {
        "google_ads", "meta_ads", "linkedin_ads", "tiktok_ads", "youtube"};

static void pack_kv_str(msgpack_packer *pk, const char *k, const char *v) {
        codec_pack_str(pk, k);
        codec_pack_str(pk, v);
}

static void pack_kv_int(msgpack_packer *pk, const char *k, int64_t v) {
        codec_pack_str(pk, k);
        msgpack_pack_int64(pk, v);
}

/* One ad_metrics event of fact values h, version v. */
static void ad_event(rd_kafka_t *rk, msgpack_sbuffer *sb, const char *tenant,
                     const char *provider, const char *account,
                     const char *campaign, int64_t day, const char *currency,
                     uint64_t h, int v, int versions, int64_t observed) {
        msgpack_packer pk;
        char daytext[CALTIME_DATE_SIZE], key[256], id[MSGID_TEXT_SIZE],
                seed[300];
        /* A day's conversions grow towards their final value. */
        double share =
                versions > 1 ? 0.55 + 0.45 * (double)v / (versions - 1) : 1.0;
        int64_t spend = 1000 + (int64_t)(h % 200000);
        int64_t impressions = spend * (5 + (int64_t)(h >> 20) % 20);
        int64_t clicks = impressions / (20 + (int64_t)(h >> 28) % 60);
        double conv = (double)((int64_t)(clicks / 12) * 100) * share / 100.0;
        int64_t value =
                (int64_t)((double)spend *
                          (1.5 + (double)((h >> 36) % 300) / 100.0) * share);
        msgid_t mid;
        caltime_format_date(day, daytext);
        msgpack_sbuffer_clear(sb);
        msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 12);
        pack_kv_str(&pk, "provider", provider);
        pack_kv_str(&pk, "account_id", account);
        pack_kv_str(&pk, "campaign_id", campaign);
        pack_kv_str(&pk, "campaign_name", campaign);
        pack_kv_str(&pk, "day", daytext);
        pack_kv_str(&pk, "currency", currency);
        pack_kv_int(&pk, "spend_minor", spend);
        pack_kv_int(&pk, "impressions", impressions);
        pack_kv_int(&pk, "clicks", clicks);
        codec_pack_str(&pk, "conversions");
        msgpack_pack_double(&pk, conv);
        pack_kv_int(&pk, "conversion_value_minor", value);
        pack_kv_int(&pk, "observed_ms", observed);
        snprintf(key, sizeof(key), "%s|%s|%s", tenant, provider, account);
        snprintf(seed, sizeof(seed), "%s|%s|%s|%s|%d", key, campaign, daytext,
                 currency, v);
        msgid_derive((uint64_t)observed, seed, strlen(seed), &mid);
        msgid_format(&mid, id);
        send_event(rk, "integrations.events",
                   "integrations.ad_metrics.recorded", tenant, slice_of(key),
                   id, observed, 1, sb->data, sb->size);
}

static int cmd_generate(long n, int tenants, int accounts, int campaigns,
                        int days, uint64_t seed) {
        rd_kafka_t *rk = producer();
        msgpack_sbuffer sb;
        long facts = (long)tenants * accounts * campaigns * days;
        int versions = (int)((n + facts - 1) / facts);
        int64_t day0 = caltime_days(2025, 1, 1);
        long sent = 0;
        msgpack_sbuffer_init(&sb);
        /* Key by key (tenant, account), in time order within each: the
         * order integrations publishes in. */
        for (int t = 0; t < tenants && sent < n; t++) {
                char tenant[64];
                snprintf(tenant, sizeof(tenant), "bench-tenant-%d", t);
                for (int a = 0; a < accounts && sent < n; a++) {
                        const char *provider = ad_providers[a % 5];
                        const char *currency = (a % 3) == 2 ? "EUR" : "USD";
                        char account[64];
                        snprintf(account, sizeof(account), "acct-%d", a);
                        for (int v = 0; v < versions && sent < n; v++)
                                for (int d = 0; d < days && sent < n; d++)
                                        for (int c = 0;
                                             c < campaigns && sent < n; c++) {
                                                char campaign[32];
                                                uint64_t h = mix(
                                                        seed ^
                                                        ((uint64_t)t << 48) ^
                                                        ((uint64_t)a << 36) ^
                                                        ((uint64_t)c << 20) ^
                                                        (uint64_t)d);
                                                snprintf(campaign,
                                                         sizeof(campaign),
                                                         "c%d", c);
                                                ad_event(
                                                        rk, &sb, tenant,
                                                        provider, account,
                                                        campaign, day0 + d,
                                                        currency, h, v,
                                                        versions,
                                                        1735700000000LL +
                                                                (int64_t)v *
                                                                        3600000LL +
                                                                d);
                                                sent++;
                                        }
                }
        }
        msgpack_sbuffer_destroy(&sb);
        if (finish(rk, sent))
                return 1;
        printf("generated=%ld facts=%ld versions=%d\n", sent, facts, versions);
        return 0;
}

/* ---------------------------------------------------------------------------
 * tenant: two years of one tenant across 11 providers
 * ------------------------------------------------------------------------ */

static void simple_event(rd_kafka_t *rk, msgpack_sbuffer *sb,
                         const char *tenant, const char *type,
                         const char *provider, const char *account,
                         const char *what, int64_t observed) {
        char key[256], id[MSGID_TEXT_SIZE], seed[300];
        msgid_t mid;
        snprintf(key, sizeof(key), "%s|%s|%s", tenant, provider, account);
        snprintf(seed, sizeof(seed), "%s|%s", key, what);
        msgid_derive((uint64_t)observed, seed, strlen(seed), &mid);
        msgid_format(&mid, id);
        send_event(rk, "integrations.events", type, tenant, slice_of(key), id,
                   observed, 1, sb->data, sb->size);
}

static int cmd_tenant(const char *tenant, int days, int campaigns) {
        rd_kafka_t *rk = producer();
        msgpack_sbuffer sb;
        int64_t today = caltime_day_of_ms((int64_t)clock_wall_ms());
        int64_t first = today - days;
        long sent = 0;
        msgpack_sbuffer_init(&sb);
        /* 5 ad platforms x 2 accounts, campaigns spread over them. */
        for (int a = 0; a < 10; a++) {
                char account[32];
                snprintf(account, sizeof(account), "ads-%d", a);
                for (int64_t d = first; d < today; d++)
                        for (int c = a; c < campaigns; c += 10) {
                                char campaign[32];
                                snprintf(campaign, sizeof(campaign), "camp-%d",
                                         c);
                                ad_event(rk, &sb, tenant, ad_providers[a % 5],
                                         account, campaign, d,
                                         a == 9 ? "EUR" : "USD",
                                         mix((uint64_t)(c * 100000 + d)), 0, 1,
                                         (d + 1) * CALTIME_MS_PER_DAY);
                                sent++;
                        }
        }
        /* Orders: a Shopify shop and a Stripe account, 3 to 9 a day. */
        for (int s = 0; s < 2; s++) {
                const char *provider = s ? "stripe" : "shopify";
                for (int64_t d = first; d < today; d++) {
                        int n = 3 + (int)(mix((uint64_t)d * 7 + s) % 7);
                        for (int o = 0; o < n; o++) {
                                msgpack_packer pk;
                                char daytext[CALTIME_DATE_SIZE], placed[40],
                                        oid[64];
                                uint64_t h = mix((uint64_t)d * 131 + o * 7 + s);
                                caltime_format_date(d, daytext);
                                snprintf(placed, sizeof(placed),
                                         "%sT%02d:00:00Z", daytext, o % 24);
                                snprintf(oid, sizeof(oid), "%s-%" PRId64 "-%d",
                                         provider, d, o);
                                msgpack_sbuffer_clear(&sb);
                                msgpack_packer_init(&pk, &sb,
                                                    msgpack_sbuffer_write);
                                msgpack_pack_map(&pk, 15);
                                pack_kv_str(&pk, "provider", provider);
                                pack_kv_str(&pk, "account_id", "shop");
                                pack_kv_str(&pk, "order_id", oid);
                                pack_kv_str(&pk, "placed_at", placed);
                                pack_kv_str(&pk, "day", daytext);
                                pack_kv_str(&pk, "currency", "USD");
                                pack_kv_int(&pk, "total_minor",
                                            2000 + (int64_t)(h % 30000));
                                pack_kv_int(&pk, "subtotal_minor",
                                            1800 + (int64_t)(h % 27000));
                                pack_kv_int(&pk, "refunded_minor",
                                            h % 12 == 0 ? 1000 : 0);
                                pack_kv_str(&pk, "customer_id", oid);
                                codec_pack_str(&pk, "new_customer");
                                if (h % 100 < 62)
                                        msgpack_pack_true(&pk);
                                else
                                        msgpack_pack_false(&pk);
                                pack_kv_str(&pk, "status", "paid");
                                codec_pack_str(&pk, "line_items");
                                msgpack_pack_array(&pk, 0);
                                codec_pack_str(&pk, "touchpoints");
                                msgpack_pack_array(&pk, 1);
                                msgpack_pack_map(&pk, 6);
                                pack_kv_str(&pk, "at", placed);
                                pack_kv_str(&pk, "source", "google");
                                pack_kv_str(&pk, "medium", "cpc");
                                pack_kv_str(&pk, "campaign", "camp-0");
                                pack_kv_str(&pk, "provider", "google_ads");
                                pack_kv_str(&pk, "campaign_id", "camp-0");
                                pack_kv_int(&pk, "observed_ms",
                                            (d + 1) * CALTIME_MS_PER_DAY);
                                simple_event(rk, &sb, tenant,
                                             "integrations.order.recorded",
                                             provider, "shop", oid,
                                             (d + 1) * CALTIME_MS_PER_DAY);
                                sent++;
                        }
                }
        }
        /* TripleWhale, and contacts of three CRMs. */
        for (int64_t d = first; d < today; d++) {
                msgpack_packer pk;
                char daytext[CALTIME_DATE_SIZE], created[40], cid[64];
                static const char *const crms[] = {"hubspot", "klaviyo",
                                                   "gohighlevel"};
                caltime_format_date(d, daytext);
                msgpack_sbuffer_clear(&sb);
                msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                msgpack_pack_map(&pk, 9);
                pack_kv_str(&pk, "provider", "triplewhale");
                pack_kv_str(&pk, "account_id", "tw");
                pack_kv_str(&pk, "day", daytext);
                pack_kv_str(&pk, "currency", "USD");
                pack_kv_int(&pk, "spend_minor", 500000);
                pack_kv_int(&pk, "revenue_minor", 900000);
                pack_kv_int(&pk, "orders", 12);
                pack_kv_int(&pk, "new_customers", 7);
                pack_kv_int(&pk, "observed_ms", (d + 1) * CALTIME_MS_PER_DAY);
                simple_event(rk, &sb, tenant, "integrations.summary.recorded",
                             "triplewhale", "tw", daytext,
                             (d + 1) * CALTIME_MS_PER_DAY);
                sent++;
                for (int k = 0; k < 3; k++) {
                        snprintf(created, sizeof(created), "%sT10:00:00Z",
                                 daytext);
                        snprintf(cid, sizeof(cid), "%s-%" PRId64, crms[k], d);
                        msgpack_sbuffer_clear(&sb);
                        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                        msgpack_pack_map(&pk, 8);
                        pack_kv_str(&pk, "provider", crms[k]);
                        pack_kv_str(&pk, "account_id", "crm");
                        pack_kv_str(&pk, "contact_id", cid);
                        pack_kv_str(&pk, "created_at", created);
                        pack_kv_str(&pk, "updated_at", created);
                        pack_kv_str(&pk, "lifecycle_stage", "lead");
                        pack_kv_str(&pk, "email_domain", "example.com");
                        pack_kv_int(&pk, "observed_ms",
                                    (d + 1) * CALTIME_MS_PER_DAY);
                        simple_event(rk, &sb, tenant,
                                     "integrations.contact.recorded", crms[k],
                                     "crm", cid, (d + 1) * CALTIME_MS_PER_DAY);
                        sent++;
                }
        }
        msgpack_sbuffer_destroy(&sb);
        if (finish(rk, sent))
                return 1;
        printf("generated=%ld\n", sent);
        return 0;
}

/* ---------------------------------------------------------------------------
 * delete: records before an offset, as retention would
 * ------------------------------------------------------------------------ */

static int cmd_delete(int partition, int64_t offset) {
        char err[512], topic[256];
        rd_kafka_t *rk = producer();
        rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new(1);
        rd_kafka_DeleteRecords_t *dr;
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_event_t *ev;
        int status = 1;
        snprintf(topic, sizeof(topic), "%sintegrations.events",
                 cfg->topic_prefix);
        rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
        dr = rd_kafka_DeleteRecords_new(l);
        rd_kafka_DeleteRecords(rk, &dr, 1, NULL, q);
        ev = rd_kafka_queue_poll(q, 30000);
        if (ev && !rd_kafka_event_error(ev)) {
                const rd_kafka_topic_partition_list_t *res =
                        rd_kafka_DeleteRecords_result_offsets(
                                rd_kafka_event_DeleteRecords_result(ev));
                if (res && res->cnt == 1 && !res->elems[0].err) {
                        printf("deleted=%d:%" PRId64 "\n", partition,
                               res->elems[0].offset);
                        status = 0;
                } else {
                        snprintf(err, sizeof(err), "%s",
                                 res && res->cnt
                                         ? rd_kafka_err2str(res->elems[0].err)
                                         : "no result");
                        fprintf(stderr, "bench-events: delete: %s\n", err);
                }
        } else {
                fprintf(stderr, "bench-events: delete: %s\n",
                        ev ? rd_kafka_event_error_string(ev) : "no answer");
        }
        if (ev)
                rd_kafka_event_destroy(ev);
        rd_kafka_DeleteRecords_destroy(dr);
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_queue_destroy(q);
        rd_kafka_destroy(rk);
        return status;
}

/* ---------------------------------------------------------------------------
 * consume: the raw rate
 * ------------------------------------------------------------------------ */

static int cmd_consume(void) {
        char err[512], topic[256], group[128];
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        rd_kafka_t *rk;
        rd_kafka_queue_t *q;
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_partition_list_t *parts;
        int64_t *hi, total = 0, got = 0;
        int n_parts;
        uint64_t t0, t1;
        rd_kafka_message_t *msgs[2000];
        snprintf(topic, sizeof(topic), "%sintegrations.events",
                 cfg->topic_prefix);
        snprintf(group, sizeof(group), "bench-raw-%d", (int)getpid());
        if (rd_kafka_conf_set(c, "bootstrap.servers", cfg->kafka_brokers, err,
                              sizeof(err)) ||
            rd_kafka_conf_set(c, "group.id", group, err, sizeof(err)) ||
            rd_kafka_conf_set(c, "enable.auto.commit", "false", err,
                              sizeof(err)) ||
            rd_kafka_conf_set(c, "queued.min.messages", "200000", err,
                              sizeof(err)) ||
            rd_kafka_conf_set(c, "fetch.wait.max.ms", "50", err, sizeof(err))) {
                fprintf(stderr, "bench-events: %s\n", err);
                return 2;
        }
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err));
        if (!rk) {
                fprintf(stderr, "bench-events: %s\n", err);
                return 1;
        }
        {
                rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
                if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) || !md ||
                    md->topic_cnt != 1) {
                        fprintf(stderr, "bench-events: no topic %s\n", topic);
                        return 1;
                }
                rd_kafka_topic_destroy(rkt);
        }
        n_parts = md->topics[0].partition_cnt;
        hi = calloc((size_t)n_parts, sizeof(*hi));
        parts = rd_kafka_topic_partition_list_new(n_parts);
        for (int p = 0; p < n_parts; p++) {
                int64_t lo = 0;
                rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi[p],
                                                 10000);
                total += hi[p] - lo;
                rd_kafka_topic_partition_list_add(parts, topic, p)->offset = lo;
        }
        rd_kafka_assign(rk, parts);
        q = rd_kafka_queue_get_consumer(rk);
        t0 = clock_mono_ms();
        while (got < total) {
                ssize_t n = rd_kafka_consume_batch_queue(q, 1000, msgs, 2000);
                if (n <= 0 && clock_mono_ms() - t0 > 600000)
                        break;
                for (ssize_t i = 0; i < n; i++) {
                        if (!msgs[i]->err)
                                got++;
                        rd_kafka_message_destroy(msgs[i]);
                }
        }
        t1 = clock_mono_ms();
        printf("raw_events=%" PRId64 " raw_s=%.3f raw_rate=%.0f\n", got,
               (double)(t1 - t0) / 1000.0,
               (double)got * 1000.0 / (double)(t1 - t0 ? t1 - t0 : 1));
        rd_kafka_queue_destroy(q);
        rd_kafka_topic_partition_list_destroy(parts);
        rd_kafka_metadata_destroy(md);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        free(hi);
        return got == total ? 0 : 1;
}

int main(int argc, char **argv) {
        static config_t c;
        int argi = 1, opt;
        long n = 1000;
        int tenants = 4, accounts = 10, campaigns = 50, days = 100;
        int partition = 0;
        int64_t offset = 0;
        uint64_t seed = 1;
        const char *tenant = NULL, *verb;
        config_load_or_exit(&c, CONFIG_SCOPE_TOOL, "bench-events", argc, argv,
                            &argi);
        cfg = &c;
        if (argi >= argc) {
                fprintf(stderr, "usage: bench-events produce|generate|tenant|"
                                "consume [options]\n");
                return 2;
        }
        verb = argv[argi];
        optind = argi + 1;
        while ((opt = getopt(argc, argv, "n:t:a:c:d:s:T:p:o:v")) != -1) {
                switch (opt) {
                case 'n':
                        n = atol(optarg);
                        break;
                case 't':
                        tenants = atoi(optarg);
                        break;
                case 'a':
                        accounts = atoi(optarg);
                        break;
                case 'c':
                        campaigns = atoi(optarg);
                        break;
                case 'd':
                        days = atoi(optarg);
                        break;
                case 's':
                        seed = strtoull(optarg, NULL, 10);
                        break;
                case 'T':
                        tenant = optarg;
                        break;
                case 'p':
                        partition = atoi(optarg);
                        break;
                case 'o':
                        offset = strtoll(optarg, NULL, 10);
                        break;
                case 'v':
                        verbose = true;
                        break;
                default:
                        return 2;
                }
        }
        if (!strcmp(verb, "produce"))
                return cmd_produce();
        if (!strcmp(verb, "generate"))
                return cmd_generate(n, tenants, accounts, campaigns, days,
                                    seed);
        if (!strcmp(verb, "tenant") && tenant)
                return cmd_tenant(tenant, days, campaigns);
        if (!strcmp(verb, "consume"))
                return cmd_consume();
        if (!strcmp(verb, "delete"))
                return cmd_delete(partition, offset);
        fprintf(stderr, "bench-events: unknown verb or missing -T\n");
        return 2;
}
