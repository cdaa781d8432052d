/*
 * replay_kafka.c - the replay driver's consumer: its own consumer group,
 * every partition of the topics assigned at chosen offsets, watermarks,
 * offsets for a time, commits (see replay_internal.h). librdkafka's errors
 * are translated here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bus.h"
#include "caltime.h"
#include "log.h"
#include "replay_internal.h"

#define RK_TIMEOUT_MS 10000

static void rk__log_cb(const rd_kafka_t *rk, int level, const char *fac,
                       const char *buf) {
        (void)rk;
        if (level <= 3)
                log_error("kafka %s: %s", fac, buf);
        else if (level <= 5)
                log_warn("kafka %s: %s", fac, buf);
        else
                log_debug("kafka %s: %s", fac, buf);
}

static bool rk__set(rd_kafka_conf_t *conf, const char *name, const char *value,
                    char *errstr, size_t errlen) {
        return rd_kafka_conf_set(conf, name, value, errstr, errlen) ==
               RD_KAFKA_CONF_OK;
}

rd_kafka_topic_partition_list_t *replay__kafka_list(const replay_t *r,
                                                    bool with_pos) {
        rd_kafka_topic_partition_list_t *l =
                rd_kafka_topic_partition_list_new((int)r->n_parts);
        for (size_t i = 0; i < r->n_parts; i++) {
                rd_kafka_topic_partition_t *e =
                        rd_kafka_topic_partition_list_add(
                                l, r->parts[i].topic, r->parts[i].partition);
                if (with_pos)
                        e->offset = r->parts[i].pos;
        }
        return l;
}

replay_err_t replay__kafka_open(replay_t *r, char *errstr, size_t errlen) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char client[300];
        snprintf(client, sizeof(client), "%s-replay", r->o->group);
        if (!rk__set(conf, "bootstrap.servers", r->o->cfg->kafka_brokers,
                     errstr, errlen) ||
            !rk__set(conf, "group.id", r->group_id, errstr, errlen) ||
            !rk__set(conf, "client.id", client, errstr, errlen) ||
            !rk__set(conf, "enable.auto.commit", "false", errstr, errlen) ||
            !rk__set(conf, "enable.auto.offset.store", "false", errstr,
                     errlen) ||
            !rk__set(conf, "auto.offset.reset", "earliest", errstr, errlen) ||
            /* Throughput: keep a good backlog fetched ahead. */
            !rk__set(conf, "queued.min.messages", "200000", errstr, errlen) ||
            !rk__set(conf, "fetch.wait.max.ms", "50", errstr, errlen)) {
                rd_kafka_conf_destroy(conf);
                return REPLAY_BAD_OPTION;
        }
        rd_kafka_conf_set_log_cb(conf, rk__log_cb);
        r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errlen);
        if (!r->rk) {
                rd_kafka_conf_destroy(conf);
                return REPLAY_KAFKA;
        }
        r->q = rd_kafka_queue_get_consumer(r->rk);
        return REPLAY_OK;
}

void replay__kafka_close(replay_t *r) {
        if (r->q)
                rd_kafka_queue_destroy(r->q);
        r->q = NULL;
        if (r->rk) {
                rd_kafka_consumer_close(r->rk);
                rd_kafka_destroy(r->rk);
        }
        r->rk = NULL;
}

replay_err_t replay__kafka_partitions(replay_t *r, char *errstr,
                                      size_t errlen) {
        for (const char *const *t = r->o->set->topics; t && *t; t++) {
                char topic[256];
                const struct rd_kafka_metadata *md = NULL;
                rd_kafka_topic_t *rkt;
                rd_kafka_resp_err_t err;
                bus_topic(r->o->cfg, *t, topic, sizeof(topic));
                rkt = rd_kafka_topic_new(r->rk, topic, NULL);
                err = rd_kafka_metadata(r->rk, 0, rkt, &md, RK_TIMEOUT_MS);
                rd_kafka_topic_destroy(rkt);
                if (err || !md || md->topic_cnt != 1 || md->topics[0].err) {
                        snprintf(errstr, errlen, "topic %s: %s", topic,
                                 err ? rd_kafka_err2str(err)
                                 : md && md->topic_cnt == 1
                                         ? rd_kafka_err2str(md->topics[0].err)
                                         : "no metadata");
                        if (md)
                                rd_kafka_metadata_destroy(md);
                        return REPLAY_KAFKA;
                }
                for (int p = 0; p < md->topics[0].partition_cnt; p++) {
                        rpart_t *rp;
                        r->parts = xrealloc(r->parts,
                                            (r->n_parts + 1) * sizeof(*rp));
                        rp = &r->parts[r->n_parts++];
                        memset(rp, 0, sizeof(*rp));
                        snprintf(rp->topic, sizeof(rp->topic), "%s", topic);
                        snprintf(rp->name, sizeof(rp->name), "%s", *t);
                        rp->partition = md->topics[0].partitions[p].id;
                }
                rd_kafka_metadata_destroy(md);
        }
        if (!r->n_parts) {
                snprintf(errstr, errlen,
                         "the group's projections read no "
                         "topic");
                return REPLAY_BAD_OPTION;
        }
        return REPLAY_OK;
}

replay_err_t replay__kafka_watermarks(replay_t *r, int64_t *lo, int64_t *hi,
                                      char *errstr, size_t errlen) {
        /* The ends of every partition in one ListOffsets round per broker
         * (offsets for the time "latest"), rather than one query each. */
        if (!lo && hi) {
                rd_kafka_topic_partition_list_t *l =
                        replay__kafka_list(r, false);
                rd_kafka_resp_err_t err;
                bool ok = true;
                for (int i = 0; i < l->cnt; i++)
                        l->elems[i].offset = RD_KAFKA_OFFSET_END;
                err = rd_kafka_offsets_for_times(r->rk, l, RK_TIMEOUT_MS);
                for (int i = 0; !err && i < l->cnt; i++) {
                        if (l->elems[i].err || l->elems[i].offset < 0)
                                ok = false;
                        else
                                hi[i] = l->elems[i].offset;
                }
                rd_kafka_topic_partition_list_destroy(l);
                if (!err && ok)
                        return REPLAY_OK;
        }
        for (size_t i = 0; i < r->n_parts; i++) {
                int64_t l = 0, h = 0;
                rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
                        r->rk, r->parts[i].topic, r->parts[i].partition, &l, &h,
                        RK_TIMEOUT_MS);
                if (err) {
                        snprintf(errstr, errlen, "watermarks of %s[%d]: %s",
                                 r->parts[i].topic, (int)r->parts[i].partition,
                                 rd_kafka_err2str(err));
                        return REPLAY_KAFKA;
                }
                if (lo)
                        lo[i] = l;
                if (hi)
                        hi[i] = h;
        }
        return REPLAY_OK;
}

/* The first offsets at or after ms (the end where nothing is newer). */
static replay_err_t rk__offsets_for_time(replay_t *r, int64_t ms,
                                         const int64_t *hi, char *errstr,
                                         size_t errlen) {
        rd_kafka_topic_partition_list_t *l = replay__kafka_list(r, false);
        rd_kafka_resp_err_t err;
        for (int i = 0; i < l->cnt; i++)
                l->elems[i].offset = ms;
        err = rd_kafka_offsets_for_times(r->rk, l, RK_TIMEOUT_MS);
        if (err) {
                snprintf(errstr, errlen, "offsets for the time: %s",
                         rd_kafka_err2str(err));
                rd_kafka_topic_partition_list_destroy(l);
                return REPLAY_KAFKA;
        }
        for (size_t i = 0; i < r->n_parts; i++) {
                const rd_kafka_topic_partition_t *e = &l->elems[i];
                r->parts[i].start = e->err || e->offset < 0 ? hi[i] : e->offset;
        }
        rd_kafka_topic_partition_list_destroy(l);
        return REPLAY_OK;
}

/* "topic:partition:offset,..." (unprefixed topics); partitions not named
 * start at their end. */
static replay_err_t rk__offsets_given(replay_t *r, const char *spec,
                                      const int64_t *hi, char *errstr,
                                      size_t errlen) {
        const char *p = spec;
        for (size_t i = 0; i < r->n_parts; i++)
                r->parts[i].start = hi[i];
        while (*p) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t)(comma - p) : strlen(p);
                char item[300], *c1, *c2, *end = NULL;
                long long part, off;
                bool found = false;
                snprintf(item, sizeof(item), "%.*s", (int)len, p);
                c2 = strrchr(item, ':');
                if (c2)
                        *c2 = '\0';
                c1 = c2 ? strrchr(item, ':') : NULL;
                if (!c1 || !c2) {
                        snprintf(errstr, errlen,
                                 "--from: '%.*s' is not topic:partition:offset",
                                 (int)len, p);
                        return REPLAY_BAD_OPTION;
                }
                *c1 = '\0';
                part = strtoll(c1 + 1, &end, 10);
                if (!end || *end || part < 0) {
                        snprintf(errstr, errlen,
                                 "--from: bad partition in "
                                 "'%.*s'",
                                 (int)len, p);
                        return REPLAY_BAD_OPTION;
                }
                off = strtoll(c2 + 1, &end, 10);
                if (!end || *end || off < 0) {
                        snprintf(errstr, errlen, "--from: bad offset in '%.*s'",
                                 (int)len, p);
                        return REPLAY_BAD_OPTION;
                }
                for (size_t i = 0; i < r->n_parts; i++)
                        if (strcmp(r->parts[i].name, item) == 0 &&
                            r->parts[i].partition == (int32_t)part) {
                                r->parts[i].start = off < hi[i] ? off : hi[i];
                                found = true;
                        }
                if (!found) {
                        snprintf(errstr, errlen,
                                 "--from: %s has no partition %lld among the "
                                 "topics replayed",
                                 item, part);
                        return REPLAY_BAD_OPTION;
                }
                p += len + (comma ? 1 : 0);
        }
        return REPLAY_OK;
}

replay_err_t replay__kafka_starts(replay_t *r, const char *from, char *errstr,
                                  size_t errlen) {
        int64_t *lo = xcalloc(r->n_parts, sizeof(*lo));
        int64_t *hi = xcalloc(r->n_parts, sizeof(*hi));
        int64_t ms;
        replay_err_t err = replay__kafka_watermarks(r, lo, hi, errstr, errlen);
        if (err != REPLAY_OK)
                goto out;
        if (!from || !*from || strcmp(from, "earliest") == 0) {
                for (size_t i = 0; i < r->n_parts; i++)
                        r->parts[i].start = lo[i];
        } else if (caltime_parse_rfc3339(from, strlen(from), &ms)) {
                err = rk__offsets_for_time(r, ms, hi, errstr, errlen);
        } else {
                err = rk__offsets_given(r, from, hi, errstr, errlen);
        }
        for (size_t i = 0; err == REPLAY_OK && i < r->n_parts; i++) {
                if (r->parts[i].start < lo[i])
                        r->parts[i].start = lo[i];
                r->parts[i].end = hi[i];
                r->parts[i].pos = r->parts[i].start;
        }
out:
        free(lo);
        free(hi);
        return err;
}

replay_err_t replay__kafka_committed(replay_t *r, char *errstr, size_t errlen) {
        rd_kafka_topic_partition_list_t *l = replay__kafka_list(r, false);
        rd_kafka_resp_err_t err;
        err = rd_kafka_committed(r->rk, l, RK_TIMEOUT_MS);
        if (err) {
                snprintf(errstr, errlen, "committed offsets: %s",
                         rd_kafka_err2str(err));
                rd_kafka_topic_partition_list_destroy(l);
                return REPLAY_KAFKA;
        }
        for (size_t i = 0; i < r->n_parts; i++) {
                const rd_kafka_topic_partition_t *e = &l->elems[i];
                r->parts[i].pos = !e->err && e->offset >= 0 ? e->offset
                                                            : r->parts[i].start;
        }
        rd_kafka_topic_partition_list_destroy(l);
        return REPLAY_OK;
}

replay_err_t replay__kafka_assign(replay_t *r, char *errstr, size_t errlen) {
        rd_kafka_topic_partition_list_t *l = replay__kafka_list(r, true);
        rd_kafka_resp_err_t err;
        err = rd_kafka_assign(r->rk, l);
        rd_kafka_topic_partition_list_destroy(l);
        if (err) {
                snprintf(errstr, errlen, "assign: %s", rd_kafka_err2str(err));
                return REPLAY_KAFKA;
        }
        return REPLAY_OK;
}

replay_err_t replay__kafka_commit(replay_t *r, char *errstr, size_t errlen) {
        rd_kafka_topic_partition_list_t *l = replay__kafka_list(r, true);
        rd_kafka_resp_err_t err;
        err = rd_kafka_commit(r->rk, l, 0);
        rd_kafka_topic_partition_list_destroy(l);
        if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
                snprintf(errstr, errlen, "commit: %s", rd_kafka_err2str(err));
                return REPLAY_KAFKA;
        }
        return REPLAY_OK;
}

void replay__kafka_delete_group(replay_t *r) {
        rd_kafka_DeleteGroup_t *g = rd_kafka_DeleteGroup_new(r->group_id);
        rd_kafka_queue_t *q = rd_kafka_queue_new(r->rk);
        rd_kafka_event_t *ev;
        rd_kafka_DeleteGroups(r->rk, &g, 1, NULL, q);
        ev = rd_kafka_queue_poll(q, RK_TIMEOUT_MS);
        if (ev)
                rd_kafka_event_destroy(ev);
        rd_kafka_DeleteGroup_destroy(g);
        rd_kafka_queue_destroy(q);
}

size_t replay__kafka_poll(replay_t *r, rd_kafka_message_t **msgs, size_t max,
                          int timeout_ms) {
        /* Wait for the first message only: a batch call with a timeout
         * waits for a full batch, which idles us whenever the fetcher is a
         * little behind. */
        rd_kafka_message_t *first = rd_kafka_consume_queue(r->q, timeout_ms);
        ssize_t n;
        if (!first)
                return 0;
        msgs[0] = first;
        if (max == 1)
                return 1;
        n = rd_kafka_consume_batch_queue(r->q, 0, msgs + 1, max - 1);
        return 1 + (n > 0 ? (size_t)n : 0);
}

rpart_t *replay__part(replay_t *r, const rd_kafka_message_t *msg) {
        for (size_t i = 0; i < r->n_parts; i++) {
                rpart_t *p = &r->parts[i];
                if (p->partition != msg->partition)
                        continue;
                if (p->rkt == msg->rkt)
                        return p;
                if (!p->rkt &&
                    strcmp(p->topic, rd_kafka_topic_name(msg->rkt)) == 0) {
                        p->rkt = msg->rkt;
                        return p;
                }
        }
        return NULL;
}
