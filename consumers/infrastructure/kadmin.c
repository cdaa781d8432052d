/*
 * kadmin.c - the infrastructure group's Kafka admin client (see kadmin.h).
 *
 * Requests per call, on one broker (more brokers: per leader or
 * coordinator): kadmin_cluster one Metadata, one ListOffsets per
 * watermark kind and one DescribeConfigs when asked; kadmin_list_groups one
 * ListGroups; kadmin_groups one DescribeGroups (plus FindCoordinator) and
 * one OffsetFetch per group (librdkafka's ListConsumerGroupOffsets takes
 * one group per call; the calls go out together); kadmin_timestamps one
 * Fetch or two. Consumer groups are in kadmin_groups.c.
 */
#include "kadmin.h"

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "msgid.h"

#include "kadmin_internal.h"

const char *kadmin_strerror(kadmin_err_t err) {
        static const char *const msgs[] = {
#define X(name, msg) msg,
                KADMIN_ERRORS(X)
#undef X
        };
        return (unsigned)err < sizeof(msgs) / sizeof(msgs[0]) ? msgs[err]
                                                              : "unknown";
}

/* librdkafka's error kinds, ours. */
static kadmin_err_t kadmin__translate(rd_kafka_resp_err_t err) {
        switch (err) {
        case RD_KAFKA_RESP_ERR_NO_ERROR:
                return KADMIN_OK;
        case RD_KAFKA_RESP_ERR__TIMED_OUT:
        case RD_KAFKA_RESP_ERR__TRANSPORT:
        case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
        case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
        case RD_KAFKA_RESP_ERR__WAIT_COORD:
        case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
                return KADMIN_DOWN;
        case RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND:
        case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
                return KADMIN_NOT_FOUND;
        case RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID:
        case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
        case RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION:
        case RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP:
        case RD_KAFKA_RESP_ERR_GROUP_SUBSCRIBED_TO_TOPIC:
                return KADMIN_REFUSED;
        default:
                return KADMIN_ERROR;
        }
}

kadmin_err_t kadmin__fail(rd_kafka_resp_err_t err, const char *what,
                          char *errstr, size_t errlen) {
        snprintf(errstr, errlen, "%s: %s", what, rd_kafka_err2str(err));
        return kadmin__translate(err);
}

/* ---------------------------------------------------------------------------
 * The client
 * ------------------------------------------------------------------------ */

/* Statistics: the requests sent to every broker so far. */
static int kadmin__stats(rd_kafka_t *rk, char *json, size_t len, void *arg) {
        kadmin_t *ka = arg;
        json_error_t jerr;
        json_t *doc = json_loadb(json, len, 0, &jerr), *brokers, *b;
        const char *name;
        uint64_t tx = 0;
        (void)rk;
        brokers = doc ? json_object_get(doc, "brokers") : NULL;
        json_object_foreach(brokers, name, b) {
                /* Bootstrap and logical brokers count too: a Metadata
                 * request may go to any of them. */
                tx += (uint64_t)json_integer_value(json_object_get(b, "tx"));
        }
        json_decref(doc);
        atomic_store(&ka->requests, tx);
        atomic_fetch_add(&ka->stats_seen, 1);
        return 0;
}

static void kadmin__log(const rd_kafka_t *rk, int level, const char *fac,
                        const char *buf) {
        (void)rk;
        if (level <= 4)
                log_warn("kafka admin %s: %s", fac, buf);
}

static rd_kafka_conf_t *kadmin__conf(const char *brokers, const char *client,
                                     char *errstr, size_t errlen) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char err[256];
        const char *kv[][2] = {
                {"bootstrap.servers", brokers},
                {"client.id", client},
                {"socket.timeout.ms", "5000"},
                {"reconnect.backoff.max.ms", "2000"},
                {"topic.metadata.refresh.interval.ms", "-1"},
                {"log.connection.close", "false"},
        };
        for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
                if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], err,
                                      sizeof(err)) != RD_KAFKA_CONF_OK) {
                        snprintf(errstr, errlen, "%s: %s", kv[i][0], err);
                        rd_kafka_conf_destroy(conf);
                        return NULL;
                }
        }
        rd_kafka_conf_set_log_cb(conf, kadmin__log);
        return conf;
}

kadmin_t *kadmin_new(const config_t *cfg, const char *brokers,
                     bool count_requests, char *errstr, size_t errlen) {
        kadmin_t *ka = xcalloc(1, sizeof(*ka));
        rd_kafka_conf_t *conf;
        char err[256];
        (void)cfg;
        ka->brokers = xstrdup(brokers);
        conf = kadmin__conf(brokers, "omnify-infrastructure-admin", errstr,
                            errlen);
        if (!conf)
                goto fail;
        if (count_requests) {
                rd_kafka_conf_set_opaque(conf, ka);
                rd_kafka_conf_set_stats_cb(conf, kadmin__stats);
                rd_kafka_conf_set(conf, "statistics.interval.ms", "100", err,
                                  sizeof(err));
        }
        ka->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        if (!ka->rk) {
                snprintf(errstr, errlen, "kafka admin client: %s", err);
                goto fail;
        }
        ka->qu = rd_kafka_queue_new(ka->rk);
        return ka;
fail:
        kadmin_destroy(ka);
        return NULL;
}

void kadmin_destroy(kadmin_t *ka) {
        if (!ka)
                return;
        if (ka->fetcher) {
                rd_kafka_consumer_close(ka->fetcher);
                rd_kafka_destroy(ka->fetcher);
        }
        if (ka->qu)
                rd_kafka_queue_destroy(ka->qu);
        if (ka->rk)
                rd_kafka_destroy(ka->rk);
        free(ka->brokers);
        free(ka);
}

uint64_t kadmin_requests(kadmin_t *ka) {
        /* Two statistics rounds from now: the second one was begun after
         * this call, so it counts every request made before it. */
        uint64_t seen = atomic_load(&ka->stats_seen);
        uint64_t deadline = clock_mono_ms() + 3000;
        while (atomic_load(&ka->stats_seen) < seen + 2 &&
               clock_mono_ms() < deadline)
                rd_kafka_poll(ka->rk, 50);
        return atomic_load(&ka->requests);
}

/* The next admin result of type, or NULL after the timeout (errstr). */
rd_kafka_event_t *kadmin__wait(kadmin_t *ka, rd_kafka_event_type_t type,
                               char *errstr, size_t errlen) {
        uint64_t deadline = clock_mono_ms() + KADMIN_TIMEOUT_MS + 2000;
        while (clock_mono_ms() < deadline) {
                rd_kafka_event_t *ev = rd_kafka_queue_poll(ka->qu, 200);
                rd_kafka_poll(ka->rk, 0);
                if (!ev)
                        continue;
                if (rd_kafka_event_type(ev) == type)
                        return ev;
                rd_kafka_event_destroy(ev); /* a late answer of an earlier
                                               call that timed out */
        }
        snprintf(errstr, errlen, "no answer within %d ms",
                 KADMIN_TIMEOUT_MS + 2000);
        return NULL;
}

rd_kafka_AdminOptions_t *kadmin__options(kadmin_t *ka, rd_kafka_admin_op_t op) {
        char err[128];
        rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(ka->rk, op);
        rd_kafka_AdminOptions_set_request_timeout(o, KADMIN_TIMEOUT_MS, err,
                                                  sizeof(err));
        return o;
}

/* ---------------------------------------------------------------------------
 * Cluster
 * ------------------------------------------------------------------------ */

static bool kadmin__wanted(const char *topic, const char *prefix) {
        if (topic[0] == '_' && topic[1] == '_')
                return false; /* the broker's own */
        return strncmp(topic, prefix, strlen(prefix)) == 0;
}

/* Watermarks of every partition of c: low when low, else high. */
static kadmin_err_t kadmin__watermarks(kadmin_t *ka, kadmin_cluster_t *c,
                                       bool low, char *errstr, size_t errlen) {
        rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new(64);
        rd_kafka_resp_err_t err;
        size_t k = 0;
        for (size_t t = 0; t < c->n_topics; t++)
                for (int p = 0; p < c->topics[t].n_parts; p++)
                        rd_kafka_topic_partition_list_add(
                                l, c->topics[t].name, c->topics[t].parts[p].id)
                                ->offset = low ? RD_KAFKA_OFFSET_BEGINNING
                                               : RD_KAFKA_OFFSET_END;
        if (l->cnt == 0) {
                rd_kafka_topic_partition_list_destroy(l);
                return KADMIN_OK;
        }
        err = rd_kafka_offsets_for_times(ka->rk, l, KADMIN_TIMEOUT_MS);
        if (err && err != RD_KAFKA_RESP_ERR__PARTIAL) {
                rd_kafka_topic_partition_list_destroy(l);
                return kadmin__fail(err, "watermarks", errstr, errlen);
        }
        /* The list keeps the order it was built in. */
        for (size_t t = 0; t < c->n_topics; t++) {
                for (int p = 0; p < c->topics[t].n_parts; p++, k++) {
                        const rd_kafka_topic_partition_t *e = &l->elems[k];
                        int64_t v = e->err || e->offset < 0 ? KADMIN_UNKNOWN
                                                            : e->offset;
                        if (low)
                                c->topics[t].parts[p].low = v;
                        else
                                c->topics[t].parts[p].high = v;
                }
        }
        rd_kafka_topic_partition_list_destroy(l);
        return KADMIN_OK;
}

static int64_t kadmin__int(const char *s) {
        return s ? strtoll(s, NULL, 10) : KADMIN_UNKNOWN;
}

static kadmin_err_t kadmin__configs(kadmin_t *ka, kadmin_cluster_t *c,
                                    char *errstr, size_t errlen) {
        rd_kafka_ConfigResource_t **res;
        rd_kafka_AdminOptions_t *o;
        rd_kafka_event_t *ev;
        const rd_kafka_ConfigResource_t **out;
        size_t n_out = 0;
        kadmin_err_t ret = KADMIN_OK;
        if (!c->n_topics)
                return KADMIN_OK;
        res = xcalloc(c->n_topics, sizeof(*res));
        for (size_t i = 0; i < c->n_topics; i++)
                res[i] = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC,
                                                     c->topics[i].name);
        o = kadmin__options(ka, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
        rd_kafka_DescribeConfigs(ka->rk, res, c->n_topics, o, ka->qu);
        rd_kafka_AdminOptions_destroy(o);
        rd_kafka_ConfigResource_destroy_array(res, c->n_topics);
        free(res);
        ev = kadmin__wait(ka, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT, errstr,
                          errlen);
        if (!ev)
                return KADMIN_DOWN;
        if (rd_kafka_event_error(ev)) {
                ret = kadmin__fail(rd_kafka_event_error(ev), "topic configs",
                                   errstr, errlen);
                rd_kafka_event_destroy(ev);
                return ret;
        }
        out = rd_kafka_DescribeConfigs_result_resources(
                rd_kafka_event_DescribeConfigs_result(ev), &n_out);
        for (size_t i = 0; i < n_out; i++) {
                const char *name = rd_kafka_ConfigResource_name(out[i]);
                const rd_kafka_ConfigEntry_t **e;
                size_t n_e = 0;
                kadmin_topic_t *t = NULL;
                for (size_t k = 0; k < c->n_topics && !t; k++)
                        if (strcmp(c->topics[k].name, name) == 0)
                                t = &c->topics[k];
                if (!t)
                        continue;
                if (rd_kafka_ConfigResource_error(out[i])) {
                        snprintf(t->error, sizeof(t->error), "configs: %s",
                                 rd_kafka_ConfigResource_error_string(out[i]));
                        continue;
                }
                e = rd_kafka_ConfigResource_configs(out[i], &n_e);
                for (size_t k = 0; k < n_e; k++) {
                        const char *key = rd_kafka_ConfigEntry_name(e[k]);
                        const char *val = rd_kafka_ConfigEntry_value(e[k]);
                        if (strcmp(key, "retention.ms") == 0)
                                t->retention_ms = kadmin__int(val);
                        else if (strcmp(key, "retention.bytes") == 0)
                                t->retention_bytes = kadmin__int(val);
                        else if (strcmp(key, "cleanup.policy") == 0 && val)
                                snprintf(t->cleanup, sizeof(t->cleanup), "%s",
                                         val);
                }
        }
        rd_kafka_event_destroy(ev);
        return KADMIN_OK;
}

static int kadmin__topic_cmp(const void *a, const void *b) {
        return strcmp(((const kadmin_topic_t *)a)->name,
                      ((const kadmin_topic_t *)b)->name);
}

kadmin_err_t kadmin_cluster(kadmin_t *ka, const kadmin_cluster_opts_t *opts,
                            kadmin_cluster_t *out, char *errstr,
                            size_t errlen) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err;
        kadmin_err_t ret;
        const char *prefix = opts->prefix ? opts->prefix : "";

        memset(out, 0, sizeof(*out));
        out->controller = -1;
        err = rd_kafka_metadata(ka->rk, 1, NULL, &md, KADMIN_TIMEOUT_MS);
        if (err)
                return kadmin__fail(err, "metadata", errstr, errlen);
        out->brokers =
                xcalloc((size_t)md->broker_cnt + 1, sizeof(*out->brokers));
        for (int i = 0; i < md->broker_cnt; i++) {
                kadmin_broker_t *b = &out->brokers[out->n_brokers++];
                b->id = md->brokers[i].id;
                snprintf(b->host, sizeof(b->host), "%s", md->brokers[i].host);
                b->port = md->brokers[i].port;
        }
        out->controller = rd_kafka_controllerid(ka->rk, 0);
        out->topics = xcalloc((size_t)md->topic_cnt + 1, sizeof(*out->topics));
        for (int i = 0; i < md->topic_cnt; i++) {
                const rd_kafka_metadata_topic_t *mt = &md->topics[i];
                kadmin_topic_t *t;
                if (!kadmin__wanted(mt->topic, prefix))
                        continue;
                t = &out->topics[out->n_topics++];
                t->name = xstrdup(mt->topic);
                t->retention_ms = KADMIN_UNKNOWN;
                t->retention_bytes = KADMIN_UNKNOWN;
                if (mt->err)
                        snprintf(t->error, sizeof(t->error), "%s",
                                 rd_kafka_err2str(mt->err));
                t->parts = xcalloc((size_t)mt->partition_cnt + 1,
                                   sizeof(*t->parts));
                t->n_parts = mt->partition_cnt;
                for (int p = 0; p < mt->partition_cnt; p++) {
                        const rd_kafka_metadata_partition_t *mp =
                                &mt->partitions[p];
                        t->parts[p].id = mp->id;
                        t->parts[p].leader = mp->leader;
                        t->parts[p].replicas = mp->replica_cnt;
                        t->parts[p].isr = mp->isr_cnt;
                        t->parts[p].low = t->parts[p].high = KADMIN_UNKNOWN;
                        if (mp->replica_cnt > t->replication)
                                t->replication = mp->replica_cnt;
                }
        }
        rd_kafka_metadata_destroy(md);
        qsort(out->topics, out->n_topics, sizeof(*out->topics),
              kadmin__topic_cmp);
        if ((ret = kadmin__watermarks(ka, out, false, errstr, errlen)))
                return ret;
        if (opts->low &&
            (ret = kadmin__watermarks(ka, out, true, errstr, errlen)))
                return ret;
        if (opts->configs && (ret = kadmin__configs(ka, out, errstr, errlen)))
                return ret;
        return KADMIN_OK;
}

void kadmin_cluster_free(kadmin_cluster_t *c) {
        if (!c)
                return;
        for (size_t i = 0; i < c->n_topics; i++) {
                free(c->topics[i].name);
                free(c->topics[i].parts);
        }
        free(c->topics);
        free(c->brokers);
        memset(c, 0, sizeof(*c));
}

/* ---------------------------------------------------------------------------
 * Timestamps, resets
 * ------------------------------------------------------------------------ */

static rd_kafka_t *kadmin__fetcher(kadmin_t *ka, char *errstr, size_t errlen) {
        rd_kafka_conf_t *conf;
        char err[256];
        if (ka->fetcher)
                return ka->fetcher;
        conf = kadmin__conf(ka->brokers, "omnify-infrastructure-lag", errstr,
                            errlen);
        if (!conf)
                return NULL;
        /* Partitions are assigned by hand and nothing is committed (the
         * group id only gives the consumer its queue; it never joins). One
         * message per partition is all it needs. */
        if (rd_kafka_conf_set(conf, "group.id", "omnify-infrastructure-lag",
                              err, sizeof(err)) ||
            rd_kafka_conf_set(conf, "enable.auto.commit", "false", err,
                              sizeof(err)) ||
            rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", err,
                              sizeof(err)) ||
            rd_kafka_conf_set(conf, "max.partition.fetch.bytes", "65536", err,
                              sizeof(err)) ||
            rd_kafka_conf_set(conf, "fetch.wait.max.ms", "10", err,
                              sizeof(err))) {
                snprintf(errstr, errlen, "lag reader: %s", err);
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        ka->fetcher = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        if (!ka->fetcher) {
                snprintf(errstr, errlen, "lag reader: %s", err);
                return NULL;
        }
        rd_kafka_poll_set_consumer(ka->fetcher);
        return ka->fetcher;
}

kadmin_err_t kadmin_timestamps(kadmin_t *ka, const kadmin_tp_t *tps, size_t n,
                               int64_t *ts, int timeout_ms, char *errstr,
                               size_t errlen) {
        rd_kafka_t *c;
        rd_kafka_topic_partition_list_t *l;
        uint64_t deadline;
        size_t got = 0;
        for (size_t i = 0; i < n; i++)
                ts[i] = KADMIN_UNKNOWN;
        if (!n)
                return KADMIN_OK;
        if (!(c = kadmin__fetcher(ka, errstr, errlen)))
                return KADMIN_ERROR;
        l = rd_kafka_topic_partition_list_new((int)n);
        for (size_t i = 0; i < n; i++)
                rd_kafka_topic_partition_list_add(l, tps[i].topic,
                                                  tps[i].partition)
                        ->offset = tps[i].offset;
        rd_kafka_assign(c, l);
        rd_kafka_topic_partition_list_destroy(l);
        deadline = clock_mono_ms() + (uint64_t)timeout_ms;
        while (got < n && clock_mono_ms() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 50);
                if (!m)
                        continue;
                if (!m->err) {
                        const char *topic = rd_kafka_topic_name(m->rkt);
                        for (size_t i = 0; i < n; i++) {
                                if (ts[i] == KADMIN_UNKNOWN &&
                                    tps[i].partition == m->partition &&
                                    strcmp(tps[i].topic, topic) == 0) {
                                        ts[i] = rd_kafka_message_timestamp(
                                                m, NULL);
                                        got++;
                                        break;
                                }
                        }
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_assign(c, NULL);
        return KADMIN_OK;
}

kadmin_err_t kadmin_offsets_at(kadmin_t *ka, kadmin_tp_t *tps, size_t n,
                               int64_t when, char *errstr, size_t errlen) {
        rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new((int)(n ? n : 1));
        rd_kafka_resp_err_t err;
        for (size_t i = 0; i < n; i++)
                rd_kafka_topic_partition_list_add(l, tps[i].topic,
                                                  tps[i].partition)
                        ->offset = when;
        err = rd_kafka_offsets_for_times(ka->rk, l, KADMIN_TIMEOUT_MS);
        if (err) {
                rd_kafka_topic_partition_list_destroy(l);
                return kadmin__fail(err, "offsets", errstr, errlen);
        }
        for (size_t i = 0; i < n; i++) {
                /* -1 after a time: no message that late; the end then. */
                tps[i].offset = l->elems[i].offset;
                if (l->elems[i].err) {
                        err = l->elems[i].err;
                        break;
                }
        }
        rd_kafka_topic_partition_list_destroy(l);
        if (err)
                return kadmin__fail(err, "offsets", errstr, errlen);
        if (when >= 0) {
                /* Partitions without a message that late: their end. */
                kadmin_tp_t *ends = xcalloc(n ? n : 1, sizeof(*ends));
                size_t k = 0;
                kadmin_err_t ret = KADMIN_OK;
                for (size_t i = 0; i < n; i++)
                        if (tps[i].offset < 0)
                                ends[k++] = tps[i];
                if (k)
                        ret = kadmin_offsets_at(ka, ends, k, -1, errstr,
                                                errlen);
                for (size_t i = 0, j = 0; ret == KADMIN_OK && i < n; i++)
                        if (tps[i].offset < 0)
                                tps[i].offset = ends[j++].offset;
                free(ends);
                return ret;
        }
        return KADMIN_OK;
}

kadmin_err_t kadmin_commit(kadmin_t *ka, const char *group,
                           const kadmin_tp_t *tps, size_t n, char *errstr,
                           size_t errlen) {
        rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new((int)(n ? n : 1));
        rd_kafka_AlterConsumerGroupOffsets_t *req;
        rd_kafka_AdminOptions_t *o;
        rd_kafka_event_t *ev;
        const rd_kafka_group_result_t **gr;
        size_t cnt = 0;
        kadmin_err_t ret = KADMIN_OK;
        for (size_t i = 0; i < n; i++)
                rd_kafka_topic_partition_list_add(l, tps[i].topic,
                                                  tps[i].partition)
                        ->offset = tps[i].offset;
        req = rd_kafka_AlterConsumerGroupOffsets_new(group, l);
        rd_kafka_topic_partition_list_destroy(l);
        o = kadmin__options(ka, RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS);
        rd_kafka_AlterConsumerGroupOffsets(ka->rk, &req, 1, o, ka->qu);
        rd_kafka_AdminOptions_destroy(o);
        rd_kafka_AlterConsumerGroupOffsets_destroy(req);
        ev = kadmin__wait(ka, RD_KAFKA_EVENT_ALTERCONSUMERGROUPOFFSETS_RESULT,
                          errstr, errlen);
        if (!ev)
                return KADMIN_DOWN;
        if (rd_kafka_event_error(ev)) {
                ret = kadmin__fail(rd_kafka_event_error(ev), "offset reset",
                                   errstr, errlen);
                rd_kafka_event_destroy(ev);
                return ret;
        }
        gr = rd_kafka_AlterConsumerGroupOffsets_result_groups(
                rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &cnt);
        for (size_t k = 0; k < cnt && ret == KADMIN_OK; k++) {
                const rd_kafka_error_t *e = rd_kafka_group_result_error(gr[k]);
                const rd_kafka_topic_partition_list_t *p =
                        rd_kafka_group_result_partitions(gr[k]);
                if (e) {
                        ret = kadmin__fail(rd_kafka_error_code(e),
                                           "offset reset", errstr, errlen);
                        break;
                }
                for (int i = 0; p && i < p->cnt; i++)
                        if (p->elems[i].err) {
                                ret = kadmin__fail(p->elems[i].err,
                                                   "offset reset", errstr,
                                                   errlen);
                                break;
                        }
        }
        rd_kafka_event_destroy(ev);
        return ret;
}
