/*
 * webhooks.c - POST /api/integrations/webhooks/{provider}.
 *
 * The edge hands over the raw body (as signed) and the signature headers.
 * The connector verifies the signature over the raw bytes before anything
 * is parsed (constant-time compare, timestamp tolerance): a bad one is a
 * 401 and nothing else happens. Then each item of the delivery is
 * deduplicated by the provider's event id (webhook_seen: a retried
 * delivery is seen; a redelivery of this very command is not a duplicate,
 * so nothing is lost if we die half way), mapped to the connections of its
 * shop or account, and handed to each as a command of that connection's
 * tenant (integrations.webhook.apply): whole records are published from
 * there, items that only say "something changed" bring a sync forward, an
 * uninstall marks the connection needs_reauth.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "codec.h"
#include "conns.h"
#include "log.h"
#include "msgid.h"
#include "sync.h"

#define SEEN_KEEP_MS (14LL * 86400 * 1000)
#define HOOK_MAX_MATCHES 64

/* First sight of this event (or a redelivery of this same command). */
static ig_err_t hook__first(ig_state_t *st, const char *provider,
                            const char *event_id, slice_t msg_id, bool *first) {
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, soi, out;
        int64_t now = (int64_t)clock_wall_ms();
        char id[600], errstr[256];
        store_err_t e;
        snprintf(id, sizeof(id), "%s|%s", provider, event_id);
        BSON_APPEND_UTF8(&filter, "_id", id);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &soi);
        bson_append_utf8(&soi, "msg_id", 6, msg_id.ptr ? msg_id.ptr : "",
                         (int)msg_id.len);
        BSON_APPEND_DATE_TIME(&soi, "received_at", now);
        BSON_APPEND_DATE_TIME(&soi, "expires_at", now + SEEN_KEEP_MS);
        bson_append_document_end(&update, &soi);
        e = store_find_and_modify(st->store, IG_DB, "webhook_seen", &filter,
                                  NULL, &update, true, true, &out, errstr,
                                  sizeof(errstr));
        bson_destroy(&filter);
        bson_destroy(&update);
        if (e) {
                log_warn("webhook_seen: %s", errstr);
                return store_err_transient(e) ? IG_STORE_DOWN : IG_STORE;
        }
        *first = slice_eq(msg_id, ig_bson_str(&out, "msg_id")
                                          ? ig_bson_str(&out, "msg_id")
                                          : "");
        bson_destroy(&out);
        return IG_OK;
}

typedef struct hook_match {
        char id[IG_ID_TEXT];
        char tenant[128];
} hook_match_t;

typedef struct hook_matches {
        hook_match_t v[HOOK_MAX_MATCHES];
        size_t n;
} hook_matches_t;

static bool hook__match(const bson_t *doc, void *arg) {
        hook_matches_t *m = arg;
        if (m->n == HOOK_MAX_MATCHES)
                return false;
        snprintf(m->v[m->n].id, sizeof(m->v[m->n].id), "%s",
                 ig_bson_str(doc, "_id") ? ig_bson_str(doc, "_id") : "");
        snprintf(m->v[m->n].tenant, sizeof(m->v[m->n].tenant), "%s",
                 ig_bson_str(doc, "tenant") ? ig_bson_str(doc, "tenant") : "");
        m->n++;
        return true;
}

/* The live connections of (provider, account): one per tenant. */
static ig_err_t hook__connections(ig_state_t *st, const char *provider,
                                  const char *account, hook_matches_t *m) {
        bson_t filter = BSON_INITIALIZER;
        char errstr[256];
        store_err_t e;
        m->n = 0;
        BSON_APPEND_UTF8(&filter, "provider", provider);
        BSON_APPEND_UTF8(&filter, "account_id", account);
        BSON_APPEND_UTF8(&filter, "status", "connected");
        e = store_find(st->store, IG_DB, IG_COLL_CONNS, &filter, NULL,
                       hook__match, m, errstr, sizeof(errstr));
        bson_destroy(&filter);
        if (e) {
                log_warn("connections: %s", errstr);
                return store_err_transient(e) ? IG_STORE_DOWN : IG_STORE;
        }
        return IG_OK;
}

handler_result_t ig_handle_webhook(rt_ctx_t *ctx, const msgpack_object *body) {
        ig_state_t *st = rt_state(ctx);
        const env_t *env = rt_env(ctx);
        int p = ig_provider_find(codec_map_str(body, "provider"));
        const char *prov = p >= 0 ? ig_provider_name((ig_provider_t)p) : "?";
        const ig_connector_t *c =
                p >= 0 ? ig_connector((ig_provider_t)p) : NULL;
        const msgpack_object *raw = codec_map_get(body, "payload");
        int64_t received = 0, published = 0, dups = 0, unmatched = 0, syncs = 0;
        ig_hook_t h = {0};
        msgpack_packer *pk;
        ig_err_t err;

        if (!c || !c->hook_verify) {
                rt_reply_problem(ctx, 404, "Not found",
                                 "this provider sends no webhooks here");
                return HANDLER_OK;
        }
        h.st = st;
        h.ps = &st->set->p[p];
        h.fields = body;
        h.now_ms = (int64_t)clock_wall_ms();
        if (raw && raw->type == MSGPACK_OBJECT_BIN)
                h.body = (slice_t){raw->via.bin.ptr, raw->via.bin.size};
        else if (raw && raw->type == MSGPACK_OBJECT_STR)
                h.body = (slice_t){raw->via.str.ptr, raw->via.str.size};
        err = c->hook_verify(&h);
        if (err) {
                ig_hook_clear(&h);
                log_warn("webhook %s refused: %s", prov, h.error);
                if (err == IG_AUTH) {
                        rt_reply_problem(ctx, 401, "Signature refused",
                                         h.error[0] ? h.error
                                                    : "bad signature");
                        return HANDLER_OK;
                }
                if (err == IG_NOT_CONFIGURED) {
                        rt_reply_problem(ctx, 404, "Not available here",
                                         h.error);
                        return HANDLER_OK;
                }
                rt_reply_problem(ctx, 400, "Bad webhook",
                                 h.error[0] ? h.error : "unreadable body");
                return HANDLER_OK;
        }
        for (size_t i = 0; i < h.n_items; i++) {
                const ig_hook_item_t *it = &h.items[i];
                hook_matches_t m;
                bool first = false;
                received++;
                if ((err = hook__first(st, prov, it->event_id, env->id,
                                       &first)) ||
                    (err = hook__connections(st, prov, it->account_id, &m)))
                        goto transient;
                if (!first) {
                        dups++;
                        continue;
                }
                if (m.n == 0) {
                        unmatched++;
                        log_info("webhook %s: event %s for account %s: no "
                                 "connection here",
                                 prov, it->event_id, it->account_id);
                        continue;
                }
                for (size_t k = 0; k < m.n; k++) {
                        msgpack_sbuffer sb;
                        msgpack_packer bp;
                        char seed[800], *payload = NULL;
                        bool tick = it->action == IG_HOOK_SYNC;
                        msgpack_sbuffer_init(&sb);
                        msgpack_packer_init(&bp, &sb, msgpack_sbuffer_write);
                        if (tick) {
                                msgpack_pack_map(&bp, 2);
                                ig_kv_str(&bp, "connection_id", m.v[k].id);
                                ig_kv_str(&bp, "reason", "webhook");
                        } else {
                                if (it->payload)
                                        payload = json_dumps(it->payload,
                                                             JSON_COMPACT);
                                msgpack_pack_map(&bp, payload ? 5 : 4);
                                ig_kv_str(&bp, "connection_id", m.v[k].id);
                                ig_kv_str(&bp, "provider", prov);
                                ig_kv_str(&bp, "event_id", it->event_id);
                                ig_kv_str(&bp, "action",
                                          it->action == IG_HOOK_GONE
                                                  ? "gone"
                                                  : "record");
                                if (payload)
                                        ig_kv_str(&bp, "payload", payload);
                                free(payload);
                        }
                        snprintf(seed, sizeof(seed), "webhook|%s|%s|%s", prov,
                                 it->event_id, m.v[k].id);
                        err = ig_send_as(st,
                                         tick ? "integrations.sync.tick"
                                              : "integrations.webhook.apply",
                                         m.v[k].id, &sb, m.v[k].tenant, "",
                                         "admin", env->created_at_ms, seed);
                        msgpack_sbuffer_destroy(&sb);
                        if (err == IG_TRANSIENT)
                                goto transient;
                        if (tick)
                                syncs++;
                        else
                                published++;
                }
        }
        ig_hook_clear(&h);
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 5);
        ig_kv_int(pk, "received", received);
        ig_kv_int(pk, "published", published);
        ig_kv_int(pk, "duplicates", dups);
        ig_kv_int(pk, "unmatched", unmatched);
        ig_kv_int(pk, "syncs", syncs);
        return HANDLER_OK;
transient:
        /* Tried again as a redelivery of this command: what was done is
         * not a duplicate then (its msg_id is ours). */
        ig_hook_clear(&h);
        return HANDLER_TRANSIENT;
}

handler_result_t ig_handle_webhook_apply(rt_ctx_t *ctx,
                                         const msgpack_object *body) {
        ig_state_t *st = rt_state(ctx);
        char tenant[128], id[IG_ID_TEXT], action[16];
        ig_hook_item_t item = {0};
        ig_records_t recs;
        rt_caller_t who;
        json_error_t je;
        ig_conn_t c;
        ig_job_t job;
        ig_err_t err;
        slice_t pl;

        rt_caller(ctx, &who);
        ig_copy_slice(tenant, sizeof(tenant), who.tenant);
        ig_map_copy(body, "connection_id", id, sizeof(id));
        ig_map_copy(body, "action", action, sizeof(action));
        /* With credentials: a connector may read more of the provider to
         * complete the record (Stripe: when the customer was created). */
        if ((err = ig_conn_load(st, id, tenant, true, &c)) &&
            err != IG_CRYPTO && err != IG_NOT_CONFIGURED) {
                if (err == IG_STORE_DOWN)
                        return HANDLER_TRANSIENT;
                log_info("webhook for connection %s: not found", id);
                return HANDLER_OK;
        }
        if (strcmp(c.status, "connected") != 0) {
                ig_conn_clear(&c);
                return HANDLER_OK;
        }
        ig_records_init(&recs, (int64_t)clock_wall_ms());
        if (strcmp(action, "gone") == 0) {
                ig_sync_invalidate(st, &c,
                                   "the app was uninstalled at the "
                                   "provider",
                                   &recs);
        } else if (c.c->hook_record) {
                pl = codec_map_str(body, "payload");
                item.payload =
                        pl.ptr ? json_loadb(pl.ptr, pl.len, 0, &je) : NULL;
                if (item.payload) {
                        ig_conn_job(st, &c, &job);
                        c.c->hook_record(&job, &item, &recs);
                        json_decref(item.payload);
                }
        }
        ig_records_emit(ctx, &recs);
        ig_records_clear(&recs);
        ig_conn_clear(&c);
        return HANDLER_OK;
}
