/*
 * reset.c - POST /api/infrastructure/groups/{group_id}/reset: move a
 * stopped consumer group's committed offsets to the earliest, the latest,
 * or the first message at or after a time, on every partition it consumes
 * (or those of one topic). Refused (409) while the group has members: the
 * broker would refuse it too, and a running consumer would overwrite it.
 * This is the one route that asks the broker directly, once per call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "codec.h"
#include "docjson.h"
#include "infra.h"
#include "log.h"
#include "msgid.h"

/* The partitions to reset: those with a commit and every partition of the
 * topics the group consumes by declaration (commands or subscription),
 * limited to topic when given. */
static kadmin_tp_t *infra__reset_parts(infra_state_t *st,
                                       const kadmin_group_t *g,
                                       const char *topic, size_t *n) {
        kadmin_cluster_t c;
        kadmin_cluster_opts_t opts = {.prefix = st->cfg->topic_prefix};
        infra_expected_t ex[64];
        size_t n_ex = infra_expected_groups(st->cfg, ex, 64), cap = 16;
        kadmin_tp_t *out = xcalloc(cap, sizeof(*out));
        char errstr[256], name[256];
        *n = 0;
#define ADD(t, p)                                                       \
        do {                                                            \
                bool dup = false;                                       \
                if (topic && strcmp(topic, (t)) != 0)                   \
                        break;                                          \
                for (size_t k = 0; k < *n && !dup; k++)                 \
                        dup = out[k].partition == (p) &&                \
                              strcmp(out[k].topic, (t)) == 0;           \
                if (dup)                                                \
                        break;                                          \
                if (*n == cap)                                          \
                        out = xrealloc(out, (cap *= 2) * sizeof(*out)); \
                out[*n].topic = xstrdup(t);                             \
                out[*n].partition = (p);                                \
                out[(*n)++].offset = KADMIN_UNKNOWN;                    \
        } while (0)
        for (size_t i = 0; i < g->n_committed; i++)
                ADD(g->committed[i].topic, g->committed[i].partition);
        if (kadmin_cluster(st->admin, &opts, &c, errstr, sizeof(errstr)) ==
            KADMIN_OK) {
                for (size_t e = 0; e < n_ex; e++) {
                        const group_def_t *def;
                        if (strcmp(ex[e].id, g->id) != 0)
                                continue;
                        def = registry_find(ex[e].group, strlen(ex[e].group));
                        for (size_t t = 0; t < c.n_topics; t++) {
                                bool wanted = false;
                                if (!ex[e].subscription) {
                                        snprintf(name, sizeof(name),
                                                 "%s%s.commands",
                                                 st->cfg->topic_prefix,
                                                 def->name);
                                        wanted = strcmp(name,
                                                        c.topics[t].name) == 0;
                                }
                                for (size_t s = 0; ex[e].subscription &&
                                                   s < def->n_subscriptions;
                                     s++) {
                                        const group_subscription_t *sub =
                                                &def->subscriptions[s];
                                        if (strcmp(sub->name,
                                                   ex[e].subscription))
                                                continue;
                                        for (size_t k = 0; sub->topics[k];
                                             k++) {
                                                snprintf(name, sizeof(name),
                                                         "%s%s",
                                                         st->cfg->topic_prefix,
                                                         sub->topics[k]);
                                                if (!strcmp(name,
                                                            c.topics[t].name))
                                                        wanted = true;
                                        }
                                }
                                for (int p = 0;
                                     wanted && p < c.topics[t].n_parts; p++)
                                        ADD(c.topics[t].name,
                                            c.topics[t].parts[p].id);
                        }
                }
        }
#undef ADD
        kadmin_cluster_free(&c);
        return out;
}

handler_result_t infra_reset(rt_ctx_t *ctx, const msgpack_object *body) {
        infra_state_t *st = rt_state(ctx);
        slice_t id = codec_map_str(body, "group_id"),
                to = codec_map_str(body, "to"),
                topic_s = codec_map_str(body, "topic");
        const msgpack_object *at = codec_map_get(body, "at_ms");
        char gid[256], topic[256], errstr[256], detail[512];
        const char *ids[1] = {gid};
        kadmin_group_t g;
        kadmin_tp_t *tps = NULL;
        size_t n = 0;
        int64_t when;
        kadmin_err_t kerr;
        json_t *out, *parts;
        msgpack_sbuffer sb;
        msgpack_packer pk;

        if (!infra_allowed(ctx))
                return HANDLER_OK;
        /* to "time" without at_ms: now (the messages from now on). */
        when = slice_eq(to, "earliest") ? -2
               : slice_eq(to, "latest") ? -1
               : at                     ? at->via.i64
                                        : (int64_t)clock_wall_ms();
        snprintf(gid, sizeof(gid), "%.*s", (int)id.len, id.ptr);
        snprintf(topic, sizeof(topic), "%.*s", (int)topic_s.len, topic_s.ptr);
        if (strncmp(gid, st->cfg->topic_prefix,
                    strlen(st->cfg->topic_prefix))) {
                rt_reply_problem(ctx, 404, "Not Found",
                                 "not a consumer group of this system");
                return HANDLER_OK;
        }
        memset(&g, 0, sizeof(g));
        pthread_mutex_lock(&st->admin_lock);
        kerr = kadmin_groups(st->admin, ids, 1, &g, errstr, sizeof(errstr));
        if (kerr == KADMIN_OK && g.n_members) {
                snprintf(detail, sizeof(detail),
                         "the group has %zu member(s) (state %s): stop the "
                         "processes consuming as %s first",
                         g.n_members, g.state, gid);
                pthread_mutex_unlock(&st->admin_lock);
                kadmin_group_free(&g);
                rt_reply_problem(ctx, 409, "Conflict", detail);
                return HANDLER_OK;
        }
        if (kerr == KADMIN_OK) {
                tps = infra__reset_parts(st, &g, topic[0] ? topic : NULL, &n);
                if (!n) {
                        pthread_mutex_unlock(&st->admin_lock);
                        kadmin_group_free(&g);
                        kadmin_tps_free(tps, n);
                        rt_reply_problem(ctx, 404, "Not Found",
                                         "the group consumes no partition "
                                         "(of that topic)");
                        return HANDLER_OK;
                }
                kerr = kadmin_offsets_at(st->admin, tps, n, when, errstr,
                                         sizeof(errstr));
        }
        if (kerr == KADMIN_OK)
                kerr = kadmin_commit(st->admin, gid, tps, n, errstr,
                                     sizeof(errstr));
        pthread_mutex_unlock(&st->admin_lock);
        kadmin_group_free(&g);
        if (kerr != KADMIN_OK) {
                kadmin_tps_free(tps, n);
                if (kerr == KADMIN_REFUSED) {
                        snprintf(detail, sizeof(detail),
                                 "the broker refused: %s (a member joined?)",
                                 errstr);
                        rt_reply_problem(ctx, 409, "Conflict", detail);
                        return HANDLER_OK;
                }
                snprintf(detail, sizeof(detail),
                         "the cluster did not answer: %s; nothing was reset",
                         errstr);
                rt_reply_problem(ctx, 503, "Service Unavailable", detail);
                return HANDLER_OK;
        }
        parts = json_array();
        for (size_t i = 0; i < n; i++)
                json_array_append_new(parts,
                                      json_pack("{s:s, s:i, s:I}", "topic",
                                                tps[i].topic, "partition",
                                                (int)tps[i].partition, "offset",
                                                (json_int_t)tps[i].offset));
        kadmin_tps_free(tps, n);
        out = json_pack("{s:s, s:s#, s:o}", "group_id", gid, "to", to.ptr,
                        (int)to.len, "partitions", parts);
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        codec_pack_json(&pk, out);
        if (rt_emit(ctx, "infrastructure.offsets.reset", slice_of(gid), &sb)) {
                msgpack_sbuffer_destroy(&sb);
                json_decref(out);
                return HANDLER_PERMANENT;
        }
        msgpack_sbuffer_destroy(&sb);
        log_info("offsets of %s reset to %.*s on %zu partitions", gid,
                 (int)to.len, to.ptr, n);
        return docjson_reply_present(ctx, 200, out);
}
