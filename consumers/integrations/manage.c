/*
 * manage.c - what a tenant sees and does with its connections: the
 * providers on offer, the list of connections (status, last and next sync,
 * last error), one connection, and disconnecting one (revoked at the
 * provider where it allows it, credentials deleted, schedule stopped,
 * running syncs cancelled). Every read and write is filtered by the
 * caller's tenant: another tenant's connection is "not found".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "conns.h"
#include "log.h"
#include "msgid.h"
#include "sync.h"

#define IG_LIST_MAX 500

/* ---------------------------------------------------------------------------
 * GET /api/integrations/providers
 * ------------------------------------------------------------------------ */

handler_result_t ig_handle_providers(rt_ctx_t *ctx,
                                     const msgpack_object *body) {
        ig_state_t *st = rt_state(ctx);
        msgpack_packer *pk;
        (void)body;
        if (!rt_require_role(ctx, SCHEMA_ROLE_VIEWER))
                return HANDLER_OK;
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 1);
        codec_pack_str(pk, "providers");
        msgpack_pack_array(pk, IG_N_PROVIDERS);
        for (int i = 0; i < IG_N_PROVIDERS; i++) {
                const ig_connector_t *c = ig_connector((ig_provider_t)i);
                const ig_provider_settings_t *ps = &st->set->p[i];
                bool configured = st->vault &&
                                  (c->auth == IG_AUTH_KEY ||
                                   (ps->client_id[0] && ps->client_secret[0]) ||
                                   c->auth == IG_AUTH_BOTH);
                msgpack_pack_map(pk, 6);
                ig_kv_str(pk, "name", ig_provider_name((ig_provider_t)i));
                ig_kv_str(pk, "auth",
                          c->auth == IG_AUTH_OAUTH ? "oauth"
                          : c->auth == IG_AUTH_KEY ? "api_key"
                                                   : "oauth_or_key");
                ig_kv_bool(pk, "pkce", c->pkce);
                ig_kv_bool(pk, "webhooks", c->hook_verify != NULL);
                codec_pack_str(pk, "streams");
                msgpack_pack_array(pk, (uint32_t)c->n_streams);
                for (size_t s = 0; s < c->n_streams; s++)
                        codec_pack_str(pk, c->streams[s].name);
                ig_kv_bool(pk, "configured", configured);
        }
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * GET /api/integrations/connections[/{id}]
 * ------------------------------------------------------------------------ */

handler_result_t ig_handle_list(rt_ctx_t *ctx, const msgpack_object *body) {
        ig_state_t *st = rt_state(ctx);
        bson_t filter = BSON_INITIALIZER;
        char tenant[128], provider[32], status[24];
        handler_result_t r;

        if (!ig_caller_tenant(ctx, SCHEMA_ROLE_VIEWER, tenant))
                return HANDLER_OK;
        ig_map_copy(body, "provider", provider, sizeof(provider));
        ig_map_copy(body, "status", status, sizeof(status));
        BSON_APPEND_UTF8(&filter, "tenant", tenant);
        if (provider[0])
                BSON_APPEND_UTF8(&filter, "provider", provider);
        if (status[0])
                BSON_APPEND_UTF8(&filter, "status", status);
        r = ig_reply_list(ctx, "connections", IG_COLL_CONNS, &filter,
                          "connected_at", IG_LIST_MAX, ig_conn_pack, st);
        bson_destroy(&filter);
        return r;
}

handler_result_t ig_handle_get(rt_ctx_t *ctx, const msgpack_object *body) {
        ig_state_t *st = rt_state(ctx);
        char tenant[128], id[IG_ID_TEXT];
        ig_conn_t c;
        ig_err_t err;
        if (!ig_caller_tenant(ctx, SCHEMA_ROLE_VIEWER, tenant))
                return HANDLER_OK;
        ig_map_copy(body, "connection_id", id, sizeof(id));
        if ((err = ig_conn_load(st, id, tenant, false, &c)))
                return ig_conn_missing(ctx, err);
        ig_conn_pack(rt_reply(ctx, 200), &c.doc, st);
        ig_conn_clear(&c);
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * DELETE /api/integrations/connections/{id}
 * ------------------------------------------------------------------------ */

/* Whether another live connection shares c's grant (one consent for
 * several accounts): revoking would cut it off too. */
static bool grant_shared(ig_state_t *st, const ig_conn_t *c) {
        const char *grant = ig_bson_str(&c->doc, "grant_id");
        bson_t filter = BSON_INITIALIZER, ne;
        int64_t n = 0;
        char errstr[256];
        if (!grant)
                return false;
        BSON_APPEND_UTF8(&filter, "grant_id", grant);
        BSON_APPEND_UTF8(&filter, "status", "connected");
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &ne);
        BSON_APPEND_UTF8(&ne, "$ne", c->id);
        bson_append_document_end(&filter, &ne);
        if (store_count(st->store, IG_DB, IG_COLL_CONNS, &filter, &n, errstr,
                        sizeof(errstr)))
                n = 1; /* unknown: do not cut others off */
        bson_destroy(&filter);
        return n > 0;
}

handler_result_t ig_handle_disconnect(rt_ctx_t *ctx,
                                      const msgpack_object *body) {
        ig_state_t *st = rt_state(ctx);
        char tenant[128], id[IG_ID_TEXT], errstr[256];
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, unset;
        int64_t now = (int64_t)clock_wall_ms();
        bool revoked = false, was_live;
        ig_records_t events;
        msgpack_packer *rp;
        ig_conn_t c;
        ig_err_t err;
        store_err_t e;

        if (!ig_caller_tenant(ctx, SCHEMA_ROLE_ADMIN, tenant))
                return HANDLER_OK;
        ig_map_copy(body, "connection_id", id, sizeof(id));
        err = ig_conn_load(st, id, tenant, true, &c);
        if (err == IG_GONE)
                return ig_conn_missing(ctx, err);
        if (err == IG_STORE_DOWN || err == IG_STORE) {
                ig_conn_clear(&c);
                return ig_reply_error(ctx, err, NULL);
        }
        /* Credentials that cannot be read are deleted all the same. */
        was_live = strcmp(c.status, "disconnected") != 0;
        if (was_live && c.has_creds && c.c->revoke && !grant_shared(st, &c)) {
                ig_job_t job;
                ig_conn_job(st, &c, &job);
                err = c.c->revoke(&job);
                revoked = err == IG_OK;
                if (err)
                        log_warn("disconnect %s: revocation at %s failed: %s",
                                 c.id, ig_provider_name(c.provider), job.error);
        }
        BSON_APPEND_UTF8(&filter, "_id", c.id);
        BSON_APPEND_UTF8(&filter, "tenant", tenant);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_UTF8(&set, "status", "disconnected");
        BSON_APPEND_DATE_TIME(&set, "disconnected_at", now);
        BSON_APPEND_DATE_TIME(&set, "updated_at", now);
        bson_append_document_end(&update, &set);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$unset", &unset);
        BSON_APPEND_UTF8(&unset, "creds", "");
        BSON_APPEND_UTF8(&unset, "token_expires_at", "");
        BSON_APPEND_UTF8(&unset, "running_sync_id", "");
        bson_append_document_end(&update, &unset);
        e = store_update(st->store, IG_DB, IG_COLL_CONNS, &filter, &update, 0,
                         NULL, errstr, sizeof(errstr));
        bson_destroy(&filter);
        bson_destroy(&update);
        if (e && e != STORE_NOT_FOUND) {
                ig_conn_clear(&c);
                return ig_store_failed(ctx, e, errstr);
        }
        ig_sync_unschedule(st, c.id);
        ig_sync_cancel_all(st, c.id);
        if (was_live) {
                ig_records_init(&events, now);
                ig_conn_event(&events, &c,
                              "integrations.connection.disconnected", NULL,
                              NULL, ig_bson_date(&c.doc, "connected_at"));
                ig_records_emit(ctx, &events);
                ig_records_clear(&events);
                log_info("connection %s (%s %s) disconnected%s", c.id,
                         ig_provider_name(c.provider), c.account_id,
                         revoked ? ", revoked at the provider" : "");
        }
        rp = rt_reply(ctx, 200);
        msgpack_pack_map(rp, 3);
        ig_kv_str(rp, "id", c.id);
        ig_kv_str(rp, "status", "disconnected");
        ig_kv_bool(rp, "revoked", revoked);
        ig_conn_clear(&c);
        return HANDLER_OK;
}
