/*
 * kadmin_groups.c - consumer groups through the admin client (see
 * kadmin.h): the list, and each group's state, members, assignments and
 * committed offsets.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "kadmin_internal.h"
#include "log.h"

kadmin_err_t kadmin_list_groups(kadmin_t *ka, const char *prefix, char ***ids,
                                size_t *n, char *errstr, size_t errlen) {
        rd_kafka_AdminOptions_t *o =
                kadmin__options(ka, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS);
        rd_kafka_event_t *ev;
        const rd_kafka_ConsumerGroupListing_t **l;
        size_t cnt = 0;
        *ids = NULL;
        *n = 0;
        rd_kafka_ListConsumerGroups(ka->rk, o, ka->qu);
        rd_kafka_AdminOptions_destroy(o);
        ev = kadmin__wait(ka, RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT, errstr,
                          errlen);
        if (!ev)
                return KADMIN_DOWN;
        if (rd_kafka_event_error(ev)) {
                kadmin_err_t ret = kadmin__fail(rd_kafka_event_error(ev),
                                                "list groups", errstr, errlen);
                rd_kafka_event_destroy(ev);
                return ret;
        }
        l = rd_kafka_ListConsumerGroups_result_valid(
                rd_kafka_event_ListConsumerGroups_result(ev), &cnt);
        *ids = xcalloc(cnt + 1, sizeof(char *));
        for (size_t i = 0; i < cnt; i++) {
                const char *id = rd_kafka_ConsumerGroupListing_group_id(l[i]);
                if (strncmp(id, prefix, strlen(prefix)) == 0)
                        (*ids)[(*n)++] = xstrdup(id);
        }
        rd_kafka_event_destroy(ev);
        return KADMIN_OK;
}

static void kadmin__tps_from(const rd_kafka_topic_partition_list_t *l,
                             kadmin_tp_t **out, size_t *n, bool offsets) {
        *n = 0;
        *out = xcalloc(l && l->cnt ? (size_t)l->cnt : 1, sizeof(**out));
        for (int i = 0; l && i < l->cnt; i++) {
                const rd_kafka_topic_partition_t *e = &l->elems[i];
                kadmin_tp_t *tp;
                if (offsets && (e->err || e->offset < 0))
                        continue; /* no commit on this partition */
                tp = &(*out)[(*n)++];
                tp->topic = xstrdup(e->topic);
                tp->partition = e->partition;
                tp->offset = offsets ? e->offset : KADMIN_UNKNOWN;
        }
}

static const char *kadmin__state(rd_kafka_consumer_group_state_t s) {
        switch (s) {
        case RD_KAFKA_CONSUMER_GROUP_STATE_PREPARING_REBALANCE:
                return "PreparingRebalance";
        case RD_KAFKA_CONSUMER_GROUP_STATE_COMPLETING_REBALANCE:
                return "CompletingRebalance";
        case RD_KAFKA_CONSUMER_GROUP_STATE_STABLE:
                return "Stable";
        case RD_KAFKA_CONSUMER_GROUP_STATE_DEAD:
                return "Dead";
        case RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY:
                return "Empty";
        default:
                return "Unknown";
        }
}

static kadmin_group_t *kadmin__find(kadmin_group_t *out, size_t n,
                                    const char *id) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(out[i].id, id) == 0)
                        return &out[i];
        return NULL;
}

static kadmin_err_t kadmin__describe(kadmin_t *ka, const char *const *ids,
                                     size_t n, kadmin_group_t *out,
                                     char *errstr, size_t errlen) {
        rd_kafka_AdminOptions_t *o =
                kadmin__options(ka, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
        rd_kafka_event_t *ev;
        const rd_kafka_ConsumerGroupDescription_t **d;
        size_t cnt = 0;
        rd_kafka_DescribeConsumerGroups(ka->rk, (const char **)ids, n, o,
                                        ka->qu);
        rd_kafka_AdminOptions_destroy(o);
        ev = kadmin__wait(ka, RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT,
                          errstr, errlen);
        if (!ev)
                return KADMIN_DOWN;
        if (rd_kafka_event_error(ev)) {
                kadmin_err_t ret =
                        kadmin__fail(rd_kafka_event_error(ev),
                                     "describe groups", errstr, errlen);
                rd_kafka_event_destroy(ev);
                return ret;
        }
        d = rd_kafka_DescribeConsumerGroups_result_groups(
                rd_kafka_event_DescribeConsumerGroups_result(ev), &cnt);
        for (size_t i = 0; i < cnt; i++) {
                kadmin_group_t *g = kadmin__find(
                        out, n,
                        rd_kafka_ConsumerGroupDescription_group_id(d[i]));
                const rd_kafka_error_t *e;
                rd_kafka_consumer_group_state_t st;
                if (!g)
                        continue;
                e = rd_kafka_ConsumerGroupDescription_error(d[i]);
                if (e) {
                        snprintf(g->error, sizeof(g->error), "%s",
                                 rd_kafka_error_string(e));
                        continue;
                }
                st = rd_kafka_ConsumerGroupDescription_state(d[i]);
                snprintf(g->state, sizeof(g->state), "%s", kadmin__state(st));
                g->found = st != RD_KAFKA_CONSUMER_GROUP_STATE_DEAD;
                snprintf(g->assignor, sizeof(g->assignor), "%s",
                         rd_kafka_ConsumerGroupDescription_partition_assignor(
                                 d[i])
                                 ?: "");
                g->n_members =
                        rd_kafka_ConsumerGroupDescription_member_count(d[i]);
                g->members = xcalloc(g->n_members + 1, sizeof(*g->members));
                for (size_t m = 0; m < g->n_members; m++) {
                        const rd_kafka_MemberDescription_t *md =
                                rd_kafka_ConsumerGroupDescription_member(d[i],
                                                                         m);
                        kadmin_member_t *km = &g->members[m];
                        const char *iid =
                                rd_kafka_MemberDescription_group_instance_id(
                                        md);
                        km->client_id = xstrdup(
                                rd_kafka_MemberDescription_client_id(md) ?: "");
                        km->consumer_id = xstrdup(
                                rd_kafka_MemberDescription_consumer_id(md)
                                        ?: "");
                        km->instance_id = xstrdup(iid ? iid : "");
                        km->host = xstrdup(rd_kafka_MemberDescription_host(md)
                                                   ?: "");
                        kadmin__tps_from(
                                rd_kafka_MemberAssignment_partitions(
                                        rd_kafka_MemberDescription_assignment(
                                                md)),
                                &km->assigned, &km->n_assigned, false);
                }
        }
        rd_kafka_event_destroy(ev);
        return KADMIN_OK;
}

static kadmin_err_t kadmin__committed(kadmin_t *ka, const char *const *ids,
                                      size_t n, kadmin_group_t *out,
                                      char *errstr, size_t errlen) {
        kadmin_err_t ret = KADMIN_OK;
        /* One group per call (librdkafka); all calls go out at once. */
        for (size_t i = 0; i < n; i++) {
                rd_kafka_ListConsumerGroupOffsets_t *req =
                        rd_kafka_ListConsumerGroupOffsets_new(ids[i], NULL);
                rd_kafka_AdminOptions_t *o = kadmin__options(
                        ka, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
                rd_kafka_ListConsumerGroupOffsets(ka->rk, &req, 1, o, ka->qu);
                rd_kafka_AdminOptions_destroy(o);
                rd_kafka_ListConsumerGroupOffsets_destroy(req);
        }
        for (size_t i = 0; i < n; i++) {
                rd_kafka_event_t *ev = kadmin__wait(
                        ka, RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT,
                        errstr, errlen);
                const rd_kafka_group_result_t **gr;
                size_t cnt = 0;
                if (!ev)
                        return KADMIN_DOWN;
                if (rd_kafka_event_error(ev)) {
                        ret = kadmin__fail(rd_kafka_event_error(ev),
                                           "committed offsets", errstr, errlen);
                        rd_kafka_event_destroy(ev);
                        continue;
                }
                gr = rd_kafka_ListConsumerGroupOffsets_result_groups(
                        rd_kafka_event_ListConsumerGroupOffsets_result(ev),
                        &cnt);
                for (size_t k = 0; k < cnt; k++) {
                        kadmin_group_t *g = kadmin__find(
                                out, n, rd_kafka_group_result_name(gr[k]));
                        const rd_kafka_error_t *e =
                                rd_kafka_group_result_error(gr[k]);
                        if (!g)
                                continue;
                        if (e) {
                                snprintf(g->error, sizeof(g->error), "%s",
                                         rd_kafka_error_string(e));
                                continue;
                        }
                        kadmin__tps_from(
                                rd_kafka_group_result_partitions(gr[k]),
                                &g->committed, &g->n_committed, true);
                        if (g->n_committed)
                                g->found = true;
                }
                rd_kafka_event_destroy(ev);
        }
        return ret;
}

kadmin_err_t kadmin_groups(kadmin_t *ka, const char *const *ids, size_t n,
                           kadmin_group_t *out, char *errstr, size_t errlen) {
        kadmin_err_t ret;
        if (!n)
                return KADMIN_OK;
        for (size_t i = 0; i < n; i++) {
                out[i].id = xstrdup(ids[i]);
                snprintf(out[i].state, sizeof(out[i].state), "Unknown");
        }
        if ((ret = kadmin__describe(ka, ids, n, out, errstr, errlen)))
                return ret;
        return kadmin__committed(ka, ids, n, out, errstr, errlen);
}

void kadmin_tps_free(kadmin_tp_t *tps, size_t n) {
        for (size_t i = 0; tps && i < n; i++)
                free(tps[i].topic);
        free(tps);
}

void kadmin_group_free(kadmin_group_t *g) {
        if (!g)
                return;
        for (size_t m = 0; m < g->n_members; m++) {
                kadmin_member_t *km = &g->members[m];
                free(km->client_id);
                free(km->consumer_id);
                free(km->instance_id);
                free(km->host);
                kadmin_tps_free(km->assigned, km->n_assigned);
        }
        free(g->members);
        kadmin_tps_free(g->committed, g->n_committed);
        free(g->id);
        memset(g, 0, sizeof(*g));
}
