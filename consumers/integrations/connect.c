/*
 * connect.c - connecting a provider: the authorize URL (OAuth), API keys
 * checked with one real call, and the OAuth callback.
 *
 * The callback is a browser redirect without a bearer token: the state
 * (state.h) authenticates it and says for which tenant and user it runs.
 * Whatever happens, the browser is sent on to the front end with the
 * outcome in the query (provider, status connected or error, reason), never
 * a secret. The connections made are announced by a command sent as their
 * tenant (integrations.sync.tick, reason connect): it publishes
 * integrations.connection.connected, arms the schedule and starts the first
 * sync, so that every event carries its tenant.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "codec.h"
#include "conns.h"
#include "log.h"
#include "msgid.h"
#include "state.h"
#include "sync.h"

/* "acme", "acme.myshopify.com" -> "acme.myshopify.com"; false when it is
 * not a shop name (so it can never steer the URL elsewhere). */
bool ig_shop_domain(const char *in, char *out, size_t size) {
        size_t n = in ? strlen(in) : 0;
        const char *suffix = ".myshopify.com";
        size_t sl = strlen(suffix);
        if (n > sl && strcmp(in + n - sl, suffix) == 0)
                n -= sl;
        if (n == 0 || n > 60 || !isalnum((unsigned char)in[0]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!islower((unsigned char)in[i]) &&
                    !isdigit((unsigned char)in[i]) && in[i] != '-')
                        return false;
        snprintf(out, size, "%.*s%s", (int)n, in, suffix);
        return true;
}

static void redirect_uri(const ig_state_t *st, ig_provider_t p, char *out,
                         size_t size) {
        const char *base = st->set->public_url;
        size_t n = strlen(base);
        while (n && base[n - 1] == '/')
                n--;
        snprintf(out, size, "%.*s/api/integrations/%s/callback", (int)n, base,
                 ig_provider_name(p));
}

static int provider_of(const msgpack_object *body) {
        return ig_provider_find(codec_map_str(body, "provider"));
}

static void job_for(ig_state_t *st, ig_provider_t p, ig_job_t *job,
                    ig_creds_t *creds) {
        memset(job, 0, sizeof(*job));
        job->st = st;
        job->c = ig_connector(p);
        job->ps = &st->set->p[p];
        job->creds = creds;
}

/* ---------------------------------------------------------------------------
 * POST /api/integrations/{provider}/connect
 * ------------------------------------------------------------------------ */

handler_result_t ig_handle_connect(rt_ctx_t *ctx, const msgpack_object *body) {
        ig_state_t *st = rt_state(ctx);
        char tenant[128], user[128], shop_in[256],
                shop[256] = "", state[IG_STATE_MAX], challenge[IG_PKCE_MAX],
                uri[600], t[32];
        int p = provider_of(body);
        const ig_connector_t *c;
        rt_caller_t who;
        int64_t expires;
        ig_creds_t none = {0};
        msgpack_packer *pk;
        ig_job_t job;
        ig_err_t err;
        char *url;

        if (!rt_require_role(ctx, SCHEMA_ROLE_ADMIN))
                return HANDLER_OK;
        if (p < 0) {
                rt_reply_problem(ctx, 404, "Not found", "no such provider");
                return HANDLER_OK;
        }
        c = ig_connector((ig_provider_t)p);
        if (c->auth == IG_AUTH_KEY) {
                char why[160];
                snprintf(why, sizeof(why),
                         "%s takes an API key: POST "
                         "/api/integrations/%s/keys",
                         ig_provider_name((ig_provider_t)p),
                         ig_provider_name((ig_provider_t)p));
                rt_reply_problem(ctx, 422, "Use an API key", why);
                return HANDLER_OK;
        }
        if (!st->set->p[p].client_id[0] || !st->set->p[p].client_secret[0])
                return ig_reply_error(ctx, IG_NOT_CONFIGURED,
                                      "this provider's app (client id and "
                                      "secret) is not configured here");
        if (!st->vault)
                return ig_reply_error(ctx, IG_NOT_CONFIGURED,
                                      "credential encryption keys are not "
                                      "configured here");
        rt_caller(ctx, &who);
        ig_copy_slice(tenant, sizeof(tenant), who.tenant);
        ig_copy_slice(user, sizeof(user), who.user);
        ig_map_copy(body, "shop", shop_in, sizeof(shop_in));
        if (p == IG_SHOPIFY && !ig_shop_domain(shop_in, shop, sizeof(shop))) {
                rt_reply_problem(ctx, 422, "Which shop?",
                                 "shop must name the shop: acme or "
                                 "acme.myshopify.com");
                return HANDLER_OK;
        }
        err = ig_state_new(st, tenant, user, (ig_provider_t)p,
                           shop[0] ? shop : NULL, c->pkce, state, challenge,
                           &expires);
        if (err)
                return ig_reply_error(ctx, err, NULL);
        redirect_uri(st, (ig_provider_t)p, uri, sizeof(uri));
        job_for(st, (ig_provider_t)p, &job, &none);
        url = c->authorize_url(&job, uri, state,
                               challenge[0] ? challenge : NULL,
                               shop[0] ? shop : NULL);
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 2);
        ig_kv_str(pk, "authorize_url", url);
        ig_time_format(expires, t);
        ig_kv_str(pk, "expires_at", t);
        free(url);
        log_info("connect %s: state made for tenant %s",
                 ig_provider_name((ig_provider_t)p), tenant);
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * Connections made: announce them as their tenant
 * ------------------------------------------------------------------------ */

static ig_err_t announce(rt_ctx_t *ctx, ig_state_t *st, const char *conn_id,
                         const char *tenant, const char *user, bool as_tenant) {
        const env_t *env = rt_env(ctx);
        msgpack_sbuffer sb;
        msgpack_packer pk;
        char seed[256];
        ig_err_t err = IG_OK;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        ig_kv_str(&pk, "connection_id", conn_id);
        ig_kv_str(&pk, "reason", "connect");
        if (as_tenant) {
                snprintf(seed, sizeof(seed), "connect|%.*s|%s",
                         (int)env->id.len, env->id.ptr ? env->id.ptr : "",
                         conn_id);
                err = ig_send_as(st, "integrations.sync.tick", conn_id, &sb,
                                 tenant, user, "admin", env->created_at_ms,
                                 seed);
        } else {
                rt_send(ctx, "integrations.sync.tick", slice_of(conn_id), &sb);
        }
        msgpack_sbuffer_destroy(&sb);
        return err;
}

/* ---------------------------------------------------------------------------
 * POST /api/integrations/{provider}/keys
 * ------------------------------------------------------------------------ */

handler_result_t ig_handle_keys(rt_ctx_t *ctx, const msgpack_object *body) {
        ig_state_t *st = rt_state(ctx);
        char tenant[128], user[128], shop_in[256],
                shop[256] = "", *key, id[IG_ID_TEXT], grant_id[IG_ID_TEXT],
                errstr[256];
        int p = provider_of(body);
        const ig_connector_t *c;
        ig_grant_t grant = {0};
        ig_creds_t none = {0};
        rt_caller_t who;
        bool created;
        ig_job_t job;
        ig_err_t err;
        bson_t filter = BSON_INITIALIZER, doc;
        slice_t k;

        if (!rt_require_role(ctx, SCHEMA_ROLE_ADMIN))
                return HANDLER_OK;
        if (p < 0) {
                rt_reply_problem(ctx, 404, "Not found", "no such provider");
                return HANDLER_OK;
        }
        c = ig_connector((ig_provider_t)p);
        if (c->auth == IG_AUTH_OAUTH || !c->check_key) {
                char why[160];
                snprintf(why, sizeof(why),
                         "%s connects with OAuth: POST "
                         "/api/integrations/%s/connect",
                         ig_provider_name((ig_provider_t)p),
                         ig_provider_name((ig_provider_t)p));
                rt_reply_problem(ctx, 422, "Use OAuth", why);
                return HANDLER_OK;
        }
        if (!st->vault)
                return ig_reply_error(ctx, IG_NOT_CONFIGURED,
                                      "credential encryption keys are not "
                                      "configured here");
        rt_caller(ctx, &who);
        ig_copy_slice(tenant, sizeof(tenant), who.tenant);
        ig_copy_slice(user, sizeof(user), who.user);
        ig_map_copy(body, "shop", shop_in, sizeof(shop_in));
        if (p == IG_TRIPLEWHALE &&
            !ig_shop_domain(shop_in, shop, sizeof(shop))) {
                rt_reply_problem(ctx, 422, "Which shop?",
                                 "shop must name the Shopify shop the key "
                                 "reads: acme.myshopify.com");
                return HANDLER_OK;
        }
        k = codec_map_str(body, "api_key");
        key = xstrndup(k.ptr ? k.ptr : "", k.len);
        job_for(st, (ig_provider_t)p, &job, &none);
        err = c->check_key(&job, key, shop[0] ? shop : NULL, &grant);
        if (!err && grant.n_accounts == 0) {
                ig_job_error(&job, "the key reaches no account");
                err = IG_REFUSED;
        }
        if (err) {
                ig_creds_set(&key, NULL);
                ig_grant_clear(&grant);
                log_info("keys %s: refused (%s)",
                         ig_provider_name((ig_provider_t)p), job.error);
                if (err == IG_AUTH || err == IG_REFUSED) {
                        rt_reply_problem(ctx, 422, "Key refused", job.error);
                        return HANDLER_OK;
                }
                return ig_reply_error(ctx, err, job.error);
        }
        ig_creds_set(&grant.creds.api_key, key);
        ig_creds_set(&key, NULL);
        ig_uuid(grant_id);
        err = ig_conn_put(st, tenant, user, (ig_provider_t)p,
                          &grant.accounts[0], &grant.creds, "api_key",
                          shop[0] ? shop : NULL, grant_id, id, &created);
        ig_grant_clear(&grant);
        if (err)
                return ig_reply_error(ctx, err, NULL);
        announce(ctx, st, id, tenant, user, false);
        BSON_APPEND_UTF8(&filter, "_id", id);
        if (store_find_one(st->store, IG_DB, IG_COLL_CONNS, &filter, NULL, &doc,
                           errstr, sizeof(errstr)) != STORE_OK) {
                bson_destroy(&filter);
                return HANDLER_TRANSIENT;
        }
        bson_destroy(&filter);
        ig_conn_pack(rt_reply(ctx, 201), &doc, st);
        bson_destroy(&doc);
        log_info("keys %s: connection %s %s for tenant %s",
                 ig_provider_name((ig_provider_t)p), id,
                 created ? "made" : "renewed", tenant);
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * GET /api/integrations/{provider}/callback
 * ------------------------------------------------------------------------ */

static handler_result_t send_browser(rt_ctx_t *ctx, ig_state_t *st,
                                     const char *provider, const char *status,
                                     const char *reason, size_t connections) {
        ig_buf_t b = {0};
        msgpack_packer *pk;
        char n[24];
        ig_buf_printf(&b, "%s", st->set->frontend_url);
        ig_buf_param(&b, "provider", provider);
        ig_buf_param(&b, "status", status);
        if (reason)
                ig_buf_param(&b, "reason", reason);
        if (connections) {
                snprintf(n, sizeof(n), "%zu", connections);
                ig_buf_param(&b, "connections", n);
        }
        pk = rt_reply(ctx, 302);
        msgpack_pack_map(pk, 1);
        ig_kv_str(pk, "location", b.p);
        ig_buf_free(&b);
        return HANDLER_OK;
}

handler_result_t ig_handle_callback(rt_ctx_t *ctx, const msgpack_object *body) {
        ig_state_t *st = rt_state(ctx);
        int p = provider_of(body);
        const char *prov = p >= 0 ? ig_provider_name((ig_provider_t)p) : "?";
        char state[IG_STATE_MAX + 8], uri[600], grant_id[IG_ID_TEXT];
        ig_callback_t cb = {body};
        ig_oauth_state_t os;
        ig_grant_t grant = {0};
        ig_creds_t none = {0};
        size_t made = 0;
        ig_job_t job;
        ig_err_t err;

        if (p < 0)
                return send_browser(ctx, st, prov, "error", "unknown_provider",
                                    0);
        if (!ig_cb_get(&cb, "state", state, sizeof(state)) || !state[0])
                return send_browser(ctx, st, prov, "error", "missing_state", 0);
        err = ig_state_take(st, (ig_provider_t)p, state, &os);
        if (err == IG_STORE_DOWN)
                return HANDLER_TRANSIENT;
        if (err) {
                log_warn("callback %s: state refused (%s)", prov,
                         ig_strerror(err));
                return send_browser(ctx, st, prov, "error",
                                    err == IG_BAD_INPUT ? "invalid_state"
                                                        : "not_configured",
                                    0);
        }
        redirect_uri(st, (ig_provider_t)p, uri, sizeof(uri));
        job_for(st, (ig_provider_t)p, &job, &none);
        err = job.c->exchange(&job, &cb, uri, os.verifier,
                              os.shop[0] ? os.shop : NULL, &grant);
        ig_state_clear(&os);
        if (!err && grant.n_accounts == 0) {
                ig_job_error(&job, "the grant reaches no account");
                err = IG_REFUSED;
        }
        if (err) {
                char why[64];
                log_warn("callback %s for tenant %s: %s", prov, os.tenant,
                         job.error);
                ig_grant_clear(&grant);
                snprintf(why, sizeof(why), "%s",
                         err == IG_AUTH        ? "denied_or_invalid_code"
                         : err == IG_REFUSED   ? "refused"
                         : err == IG_BAD_INPUT ? "bad_callback"
                                               : "provider_unavailable");
                if (strstr(job.error, "did not consent"))
                        snprintf(why, sizeof(why), "access_denied");
                return send_browser(ctx, st, prov, "error", why, 0);
        }
        ig_uuid(grant_id);
        for (size_t i = 0; i < grant.n_accounts; i++) {
                char id[IG_ID_TEXT];
                bool created;
                err = ig_conn_put(st, os.tenant, os.user, (ig_provider_t)p,
                                  &grant.accounts[i], &grant.creds, "oauth",
                                  os.shop[0] ? os.shop : NULL, grant_id, id,
                                  &created);
                if (err) {
                        log_warn("callback %s: connection not stored: %s", prov,
                                 ig_strerror(err));
                        continue;
                }
                made++;
                if (announce(ctx, st, id, os.tenant, os.user, true) != IG_OK)
                        log_error("callback %s: connection %s stored but not "
                                  "announced (no first sync until its next "
                                  "connect)",
                                  prov, id);
                log_info("callback %s: connection %s (%s) %s for tenant %s",
                         prov, id, grant.accounts[i].id,
                         created ? "made" : "renewed", os.tenant);
        }
        ig_grant_clear(&grant);
        if (!made)
                return send_browser(ctx, st, prov, "error", "not_stored", 0);
        return send_browser(ctx, st, prov, "connected", NULL, made);
}
