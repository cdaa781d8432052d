/*
 * facts.c - the "checklist" subscription: other groups' events become
 * facts of a workspace (see onb.h). Every write is an upsert keyed by the
 * fact with $min of the event's time, so redeliveries, any order and
 * replays from the start give the same facts.
 */
#include <stdio.h>
#include <string.h>

#include "codec.h"
#include "log.h"
#include "onb.h"

/* Record fact (with provider: "<fact>:<provider>") for workspace at the
 * event's time. */
static handler_result_t onb__fact(rt_ctx_t *ctx, slice_t workspace,
                                  const char *fact, slice_t provider) {
        const env_t *env = rt_env(ctx);
        char id[512], key[128], errstr[256];
        bson_t filter = BSON_INITIALIZER, up = BSON_INITIALIZER, min, ins;
        store_err_t err;
        if (!workspace.len) {
                rt_fail(ctx, "an event without a tenant or organisation");
                return HANDLER_PERMANENT;
        }
        if (provider.len)
                snprintf(key, sizeof(key), "%s:%.*s", fact, (int)provider.len,
                         provider.ptr);
        else
                snprintf(key, sizeof(key), "%s", fact);
        snprintf(id, sizeof(id), "%.*s|%s", (int)workspace.len, workspace.ptr,
                 key);
        BSON_APPEND_UTF8(&filter, "_id", id);
        BSON_APPEND_DOCUMENT_BEGIN(&up, "$min", &min);
        BSON_APPEND_INT64(&min, "at", env->created_at_ms);
        bson_append_document_end(&up, &min);
        BSON_APPEND_DOCUMENT_BEGIN(&up, "$setOnInsert", &ins);
        bson_append_utf8(&ins, "workspace", -1, workspace.ptr,
                         (int)workspace.len);
        BSON_APPEND_UTF8(&ins, "fact", key);
        bson_append_document_end(&up, &ins);
        err = store_update(rt_store(ctx), ONB_DB, "facts", &filter, &up,
                           STORE_UPSERT, NULL, errstr, sizeof(errstr));
        bson_destroy(&filter);
        bson_destroy(&up);
        if (err == STORE_OK)
                return HANDLER_OK;
        log_warn("fact %s: %s", id, errstr);
        return store_err_transient(err) ? HANDLER_TRANSIENT : HANDLER_PERMANENT;
}

static handler_result_t onb_registered(rt_ctx_t *ctx,
                                       const msgpack_object *body) {
        return onb__fact(ctx, codec_map_str(body, "tenant_id"),
                         "workspace_created", SLICE_NULL);
}

/* An organisation created: its workspace exists, and the organisation it
 * was created from may onboard clients into it. */
static handler_result_t onb_org_created(rt_ctx_t *ctx,
                                        const msgpack_object *body) {
        slice_t org = codec_map_str(body, "org_id"), from = rt_env(ctx)->tenant;
        handler_result_t r =
                onb__fact(ctx, org, "workspace_created", SLICE_NULL);
        char errstr[256];
        bson_t filter = BSON_INITIALIZER, up = BSON_INITIALIZER, set;
        store_err_t err;
        if (r != HANDLER_OK || !from.len)
                return r;
        bson_append_utf8(&filter, "_id", 3, org.ptr, (int)org.len);
        BSON_APPEND_DOCUMENT_BEGIN(&up, "$set", &set);
        bson_append_utf8(&set, "tenant", 6, from.ptr, (int)from.len);
        bson_append_document_end(&up, &set);
        err = store_update(rt_store(ctx), ONB_DB, "workspaces", &filter, &up,
                           STORE_UPSERT, NULL, errstr, sizeof(errstr));
        bson_destroy(&filter);
        bson_destroy(&up);
        if (err == STORE_OK)
                return HANDLER_OK;
        return store_err_transient(err) ? HANDLER_TRANSIENT : HANDLER_PERMANENT;
}

static handler_result_t onb_terms(rt_ctx_t *ctx, const msgpack_object *body) {
        if (!slice_eq(codec_map_str(body, "type"), "terms"))
                return HANDLER_OK; /* another document */
        return onb__fact(ctx, rt_env(ctx)->tenant, "terms_accepted",
                         SLICE_NULL);
}

static handler_result_t onb_invited(rt_ctx_t *ctx, const msgpack_object *body) {
        slice_t org = codec_map_str(body, "org_id");
        return onb__fact(ctx, org.len ? org : rt_env(ctx)->tenant,
                         "team_invited", SLICE_NULL);
}

static handler_result_t onb_connected(rt_ctx_t *ctx,
                                      const msgpack_object *body) {
        return onb__fact(ctx, rt_env(ctx)->tenant, "connected",
                         codec_map_str(body, "provider"));
}

static handler_result_t onb_synced(rt_ctx_t *ctx, const msgpack_object *body) {
        return onb__fact(ctx, rt_env(ctx)->tenant, "synced",
                         codec_map_str(body, "provider"));
}

static handler_result_t onb_dashboard(rt_ctx_t *ctx,
                                      const msgpack_object *body) {
        (void)body;
        return onb__fact(ctx, rt_env(ctx)->tenant, "dashboard_viewed",
                         SLICE_NULL);
}

static handler_result_t onb_report(rt_ctx_t *ctx, const msgpack_object *body) {
        (void)body;
        return onb__fact(ctx, rt_env(ctx)->tenant, "report_scheduled",
                         SLICE_NULL);
}

const group_handler_t onb_fact_handlers[ONB_N_FACT_HANDLERS] = {
        {"auth.user.registered", onb_registered},
        {"auth.org.created", onb_org_created},
        {"auth.legal.accepted", onb_terms},
        {"auth.org.invitation_created", onb_invited},
        {"integrations.connection.connected", onb_connected},
        {"integrations.sync.completed", onb_synced},
        {"analytics.dashboard.viewed", onb_dashboard},
        {"analytics.report.scheduled", onb_report},
};
