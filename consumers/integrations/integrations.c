/*
 * integrations.c - the integrations group: OAuth connections and data sync
 * with ad, CRM and e-commerce platforms (see ig.h for the parts).
 *
 * The table below is the whole group as the runtime sees it: its
 * commands, settings, indexes, concurrency (a slow provider call holds one
 * worker, not the group; order is kept per key: a sync's pages share the
 * sync's key) and the start-up that makes the vault, the pacer, the
 * process's HTTP client and the durable timers.
 */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "connector.h"
#include "ig.h"
#include "log.h"
#include "pacer.h"
#include "registry.h"
#include "vault.h"

handler_result_t ig_handle_providers(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ig_handle_connect(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ig_handle_keys(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ig_handle_callback(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ig_handle_list(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ig_handle_get(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ig_handle_disconnect(rt_ctx_t *ctx,
                                      const msgpack_object *body);
handler_result_t ig_handle_webhook(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ig_handle_webhook_apply(rt_ctx_t *ctx,
                                         const msgpack_object *body);

#include "sync.h"

static const ig_connector_t *const ig_connectors[IG_N_PROVIDERS] = {
        [IG_TRIPLEWHALE] = &ig_triplewhale,
        [IG_HUBSPOT] = &ig_hubspot,
        [IG_KLAVIYO] = &ig_klaviyo,
        [IG_GOOGLE_ADS] = &ig_google_ads,
        [IG_META_ADS] = &ig_meta_ads,
        [IG_LINKEDIN_ADS] = &ig_linkedin_ads,
        [IG_TIKTOK_ADS] = &ig_tiktok_ads,
        [IG_YOUTUBE] = &ig_youtube,
        [IG_SHOPIFY] = &ig_shopify,
        [IG_STRIPE] = &ig_stripe,
        [IG_GOHIGHLEVEL] = &ig_gohighlevel,
};

const ig_connector_t *ig_connector(ig_provider_t p) {
        return (unsigned)p < IG_N_PROVIDERS ? ig_connectors[p] : NULL;
}

/* Internal commands (pages, ticks, webhook items) answer nobody: their
 * reply is an empty map, so that the operation record says done (no
 * reply-to: nothing is sent). */
static handler_result_t internal_done(rt_ctx_t *ctx, handler_result_t r) {
        if (r == HANDLER_OK)
                msgpack_pack_map(rt_reply(ctx, 200), 0);
        return r;
}

static handler_result_t internal_page(rt_ctx_t *ctx,
                                      const msgpack_object *body) {
        return internal_done(ctx, ig_handle_sync_page(ctx, body));
}

static handler_result_t internal_tick(rt_ctx_t *ctx,
                                      const msgpack_object *body) {
        return internal_done(ctx, ig_handle_sync_tick(ctx, body));
}

static handler_result_t internal_apply(rt_ctx_t *ctx,
                                       const msgpack_object *body) {
        return internal_done(ctx, ig_handle_webhook_apply(ctx, body));
}

static const group_handler_t integrations_handlers[] = {
        {"integrations.status", runtime_handle_status},
        {"integrations.providers", ig_handle_providers},
        {"integrations.connect", ig_handle_connect},
        {"integrations.keys", ig_handle_keys},
        {"integrations.callback", ig_handle_callback},
        {"integrations.connections.list", ig_handle_list},
        {"integrations.connections.get", ig_handle_get},
        {"integrations.connections.disconnect", ig_handle_disconnect},
        {"integrations.sync.request", ig_handle_sync_request},
        {"integrations.syncs.get", ig_handle_syncs_get},
        {"integrations.syncs.list", ig_handle_syncs_list},
        {"integrations.webhook", ig_handle_webhook},
        {"integrations.webhook.apply", internal_apply},
        {"integrations.sync.page", internal_page},
        {"integrations.sync.tick", internal_tick},
};

static const store_index_t integrations_indexes[] = {
        {"connections", "tenant_account", "tenant,provider,account_id", true,
         -1},
        {"connections", "provider_account", "provider,account_id", false, -1},
        {"connections", "tenant_connected", "tenant,-connected_at", false, -1},
        {"oauth_states", "expires_at_ttl", "expires_at", false, 0},
        {"syncs", "connection_started", "connection_id,-started_at", false, -1},
        {"syncs", "connection_running", "connection_id,status,backfill", false,
         -1},
        {"syncs", "expires_at_ttl", "expires_at", false, 0},
        {"webhook_seen", "expires_at_ttl", "expires_at", false, 0},
        {"aux", "expires_at_ttl", "expires_at", false, 0},
        {NULL},
};

static void integrations_shutdown(void *state) {
        ig_state_t *st = state;
        if (!st)
                return;
        timer_service_destroy(st->timers);
        httpc_destroy(st->http);
        ig_pacer_destroy(st->pacer);
        ig_vault_destroy(st->vault);
        free(st);
}

static handler_result_t integrations_init(runtime_t *rt, void **state,
                                          char *errstr, size_t errlen) {
        ig_state_t *st = xcalloc(1, sizeof(*st));
        httpc_opts_t ho = {0};
        timer_opts_t to = {0};

        st->rt = rt;
        st->cfg = runtime_config(rt);
        st->set = runtime_settings(rt, &ig_settings);
        st->store = runtime_store(rt);
        if (st->set->token_keys[0]) {
                if (!(st->vault = ig_vault_new(st->set->token_keys, errstr,
                                               errlen))) {
                        char why[256];
                        snprintf(why, sizeof(why),
                                 "OMNIFY_INTEGRATIONS_TOKEN_KEYS: %s", errstr);
                        snprintf(errstr, errlen, "%s", why);
                        free(st);
                        return HANDLER_PERMANENT;
                }
        } else {
                log_warn("OMNIFY_INTEGRATIONS_TOKEN_KEYS is empty: connecting "
                         "providers is refused (404) until keys are set");
        }
        st->pacer = ig_pacer_new(st->set->pace_pct);
        ho.max_host_concurrency = st->set->host_concurrency;
        ho.max_response_bytes = 16u * 1024 * 1024;
        if (!(st->http = httpc_new(&ho, errstr, errlen)))
                goto fail;
        to.cfg = st->cfg;
        to.store = st->store;
        to.bus = runtime_bus(rt); /* NULL in the harness: no firing */
        to.group = "integrations";
        if (!(st->timers = timer_service_new(&to, errstr, errlen)))
                goto fail;
        if (to.bus && timer_service_start(st->timers, errstr, errlen))
                goto fail;
        *state = st;
        return HANDLER_OK;
fail:
        integrations_shutdown(st);
        return HANDLER_PERMANENT;
}

static const config_table_t *const integrations_tables[] = {&ig_settings, NULL};

const group_def_t group_integrations = {
        .name = "integrations",
        .ops_port = 8002,
        .settings = integrations_tables,
        .handlers = integrations_handlers,
        .n_handlers = sizeof(integrations_handlers) /
                      sizeof(integrations_handlers[0]),
        .concurrency = 8,
        .indexes = integrations_indexes,
        .init = integrations_init,
        .shutdown = integrations_shutdown,
};
