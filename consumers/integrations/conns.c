/*
 * conns.c - connections and their credentials (see conns.h), and the
 * credentials' JSON form (connector.h).
 */
#include "conns.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "backoff.h"
#include "codec.h"
#include "log.h"
#include "msgid.h"
#include "vault.h"

#define CONN_LEASE_MS 30000
#define CONN_WAIT_MS 35000 /* a refresh by someone else: wait this long */
#define CONN_GRACE_MS (10 * 60 * 1000)

/* ---------------------------------------------------------------------------
 * Credentials as JSON (sealed by the vault)
 * ------------------------------------------------------------------------ */

void ig_creds_set(char **slot, const char *s) {
        if (*slot) {
                OPENSSL_cleanse(*slot, strlen(*slot));
                free(*slot);
        }
        *slot = s ? xstrdup(s) : NULL;
}

void ig_creds_clear(ig_creds_t *c) {
        ig_creds_set(&c->access_token, NULL);
        ig_creds_set(&c->refresh_token, NULL);
        ig_creds_set(&c->api_key, NULL);
        ig_creds_set(&c->prev_refresh, NULL);
        memset(c, 0, sizeof(*c));
}

char *ig_creds_dump(const ig_creds_t *c, size_t *len) {
        json_t *o = json_object();
        char *text, *out;
        if (c->access_token)
                json_object_set_new(o, "access_token",
                                    json_string(c->access_token));
        if (c->refresh_token)
                json_object_set_new(o, "refresh_token",
                                    json_string(c->refresh_token));
        if (c->api_key)
                json_object_set_new(o, "api_key", json_string(c->api_key));
        if (c->prev_refresh)
                json_object_set_new(o, "prev_refresh",
                                    json_string(c->prev_refresh));
        json_object_set_new(o, "expires_at", json_integer(c->expires_at_ms));
        json_object_set_new(o, "refresh_expires_at",
                            json_integer(c->refresh_expires_at_ms));
        json_object_set_new(o, "rotated_at", json_integer(c->rotated_at_ms));
        text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        /* jansson's copy is ours to wipe: move it to a buffer we free
         * with ig_vault_free. */
        out = xstrdup(text ? text : "{}");
        if (text) {
                OPENSSL_cleanse(text, strlen(text));
                free(text);
        }
        *len = strlen(out);
        return out;
}

bool ig_creds_load(ig_creds_t *c, const char *json, size_t len) {
        json_error_t je;
        json_t *o = json_loadb(json, len, 0, &je);
        if (!json_is_object(o)) {
                json_decref(o);
                return false;
        }
        memset(c, 0, sizeof(*c));
        ig_creds_set(&c->access_token, ig_json_str(o, "access_token"));
        ig_creds_set(&c->refresh_token, ig_json_str(o, "refresh_token"));
        ig_creds_set(&c->api_key, ig_json_str(o, "api_key"));
        ig_creds_set(&c->prev_refresh, ig_json_str(o, "prev_refresh"));
        c->expires_at_ms = ig_json_int(o, "expires_at", 0);
        c->refresh_expires_at_ms = ig_json_int(o, "refresh_expires_at", 0);
        c->rotated_at_ms = ig_json_int(o, "rotated_at", 0);
        /* The parsed tree holds the secrets too: wipe its strings. */
        {
                const char *k;
                json_t *v;
                json_object_foreach(o, k, v) {
                        if (json_is_string(v))
                                OPENSSL_cleanse((char *)json_string_value(v),
                                                json_string_length(v));
                }
        }
        json_decref(o);
        return true;
}

/* ---------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------ */

void ig_conn_aad(const char *id, const char *tenant, const char *provider,
                 char *out, size_t size) {
        snprintf(out, size, "integrations|%s|%s|%s", id, tenant, provider);
}

static void conn__copy(char *dst, size_t size, const char *s) {
        snprintf(dst, size, "%s", s ? s : "");
}

/* Fill c from c->doc. false when the record is not one of ours. */
static bool conn__fields(ig_conn_t *c) {
        int p = ig_provider_find(slice_of(ig_bson_str(&c->doc, "provider")));
        bson_iter_t it;
        if (p < 0 || !ig_bson_str(&c->doc, "_id"))
                return false;
        c->provider = (ig_provider_t)p;
        c->c = ig_connector(c->provider);
        conn__copy(c->id, sizeof(c->id), ig_bson_str(&c->doc, "_id"));
        conn__copy(c->tenant, sizeof(c->tenant),
                   ig_bson_str(&c->doc, "tenant"));
        conn__copy(c->account_id, sizeof(c->account_id),
                   ig_bson_str(&c->doc, "account_id"));
        conn__copy(c->account_name, sizeof(c->account_name),
                   ig_bson_str(&c->doc, "account_name"));
        conn__copy(c->shop, sizeof(c->shop), ig_bson_str(&c->doc, "shop"));
        conn__copy(c->currency, sizeof(c->currency),
                   ig_bson_str(&c->doc, "currency"));
        conn__copy(c->status, sizeof(c->status),
                   ig_bson_str(&c->doc, "status"));
        json_decref(c->extra);
        c->extra = NULL;
        if (bson_iter_init_find(&it, &c->doc, "extra") &&
            BSON_ITER_HOLDS_UTF8(&it)) {
                json_error_t je;
                c->extra = json_loads(bson_iter_utf8(&it, NULL), 0, &je);
        }
        return true;
}

static ig_err_t conn__decrypt(ig_state_t *st, ig_conn_t *c) {
        char aad[512], *plain = NULL;
        size_t len = 0;
        ig_err_t err;
        ig_creds_clear(&c->creds);
        c->has_creds = false;
        if (!st->vault)
                return IG_NOT_CONFIGURED;
        ig_conn_aad(c->id, c->tenant, ig_provider_name(c->provider), aad,
                    sizeof(aad));
        err = ig_vault_open(st->vault, aad, &c->doc, "creds", &plain, &len);
        if (err == IG_GONE)
                return IG_OK; /* none (disconnected): has_creds stays false */
        if (err)
                return err;
        if (!ig_creds_load(&c->creds, plain, len)) {
                ig_vault_free(plain, len);
                return IG_CRYPTO;
        }
        ig_vault_free(plain, len);
        c->has_creds = true;
        return IG_OK;
}

static ig_err_t conn__store_err(store_err_t e) {
        return e == STORE_NOT_FOUND     ? IG_GONE
               : store_err_transient(e) ? IG_STORE_DOWN
                                        : IG_STORE;
}

ig_err_t ig_conn_load(ig_state_t *st, const char *id, const char *tenant,
                      bool with_creds, ig_conn_t *out) {
        bson_t filter = BSON_INITIALIZER;
        char errstr[256];
        store_err_t e;

        memset(out, 0, sizeof(*out));
        bson_init(&out->doc);
        BSON_APPEND_UTF8(&filter, "_id", id);
        if (tenant)
                BSON_APPEND_UTF8(&filter, "tenant", tenant);
        bson_destroy(&out->doc);
        e = store_find_one(st->store, IG_DB, IG_COLL_CONNS, &filter, NULL,
                           &out->doc, errstr, sizeof(errstr));
        bson_destroy(&filter);
        if (e) {
                bson_init(&out->doc);
                if (e != STORE_NOT_FOUND)
                        log_warn("connections: %s", errstr);
                return conn__store_err(e);
        }
        if (!conn__fields(out))
                return IG_GONE;
        if (with_creds)
                return conn__decrypt(st, out);
        return IG_OK;
}

handler_result_t ig_conn_missing(rt_ctx_t *ctx, ig_err_t err) {
        if (err == IG_GONE) {
                rt_reply_problem(ctx, 404, "Not found", "no such connection");
                return HANDLER_OK;
        }
        return ig_reply_error(ctx, err, NULL);
}

void ig_conn_clear(ig_conn_t *c) {
        bson_destroy(&c->doc);
        json_decref(c->extra);
        ig_creds_clear(&c->creds);
        memset(c, 0, sizeof(*c));
}

void ig_conn_job(ig_state_t *st, ig_conn_t *c, ig_job_t *job) {
        memset(job, 0, sizeof(*job));
        job->st = st;
        job->c = c->c;
        job->ps = &st->set->p[c->provider];
        job->connection_id = c->id;
        job->tenant = c->tenant;
        job->account_id = c->account_id;
        job->account_name = c->account_name;
        job->shop = c->shop[0] ? c->shop : NULL;
        job->currency = c->currency[0] ? c->currency : NULL;
        job->extra = c->extra;
        job->creds = &c->creds;
}

/* ---------------------------------------------------------------------------
 * Fresh credentials under the lease
 * ------------------------------------------------------------------------ */

/* Take the refresh lease of c (owner); the record as it is then goes into
 * c. false when someone else holds it. */
static ig_err_t conn__lease(ig_state_t *st, ig_conn_t *c, const char *owner,
                            bool *got) {
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, lt,
               out;
        int64_t now = (int64_t)clock_wall_ms();
        char errstr[256];
        store_err_t e;

        *got = false;
        BSON_APPEND_UTF8(&filter, "_id", c->id);
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "lease_until", &lt);
        BSON_APPEND_DATE_TIME(&lt, "$lt", now);
        bson_append_document_end(&filter, &lt);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_DATE_TIME(&set, "lease_until", now + CONN_LEASE_MS);
        BSON_APPEND_UTF8(&set, "lease_owner", owner);
        bson_append_document_end(&update, &set);
        e = store_find_and_modify(st->store, IG_DB, IG_COLL_CONNS, &filter,
                                  NULL, &update, true, false, &out, errstr,
                                  sizeof(errstr));
        bson_destroy(&filter);
        bson_destroy(&update);
        if (e == STORE_NOT_FOUND)
                return IG_OK;
        if (e) {
                log_warn("connections: lease: %s", errstr);
                return conn__store_err(e);
        }
        bson_destroy(&c->doc);
        bson_steal(&c->doc, &out);
        *got = true;
        conn__fields(c);
        return IG_OK;
}

/* Store c's credentials (job->creds) and free the lease, only while owner
 * holds it. */
static ig_err_t conn__save(ig_state_t *st, ig_conn_t *c, const char *owner) {
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
        char aad[512], errstr[256], *plain;
        size_t len;
        int64_t matched = 0;
        store_err_t e;

        ig_conn_aad(c->id, c->tenant, ig_provider_name(c->provider), aad,
                    sizeof(aad));
        plain = ig_creds_dump(&c->creds, &len);
        BSON_APPEND_UTF8(&filter, "_id", c->id);
        BSON_APPEND_UTF8(&filter, "lease_owner", owner);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        ig_vault_seal(st->vault, aad, plain, len, &set, "creds");
        ig_vault_free(plain, len);
        BSON_APPEND_DATE_TIME(&set, "token_expires_at", c->creds.expires_at_ms);
        BSON_APPEND_DATE_TIME(&set, "lease_until", 0);
        BSON_APPEND_UTF8(&set, "lease_owner", "");
        BSON_APPEND_DATE_TIME(&set, "updated_at", (int64_t)clock_wall_ms());
        BSON_APPEND_DATE_TIME(&set, "refreshed_at", (int64_t)clock_wall_ms());
        bson_append_document_end(&update, &set);
        e = store_update(st->store, IG_DB, IG_COLL_CONNS, &filter, &update, 0,
                         &matched, errstr, sizeof(errstr));
        bson_destroy(&filter);
        bson_destroy(&update);
        if (e == STORE_NOT_FOUND || (!e && matched == 0)) {
                /* The lease ran out under us: someone else may have
                 * refreshed too; theirs stands. */
                log_error("connection %s: refresh lease lost before the new "
                          "credentials were stored",
                          c->id);
                return IG_TRANSIENT;
        }
        return e ? conn__store_err(e) : IG_OK;
}

static void conn__release(ig_state_t *st, const char *id, const char *owner) {
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
        char errstr[256];
        BSON_APPEND_UTF8(&filter, "_id", id);
        BSON_APPEND_UTF8(&filter, "lease_owner", owner);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_DATE_TIME(&set, "lease_until", 0);
        BSON_APPEND_UTF8(&set, "lease_owner", "");
        bson_append_document_end(&update, &set);
        if (store_update(st->store, IG_DB, IG_COLL_CONNS, &filter, &update, 0,
                         NULL, errstr, sizeof(errstr)) > STORE_NOT_FOUND)
                log_warn("connection %s: lease release: %s", id, errstr);
        bson_destroy(&filter);
        bson_destroy(&update);
}

static bool conn__needs(const ig_state_t *st, const ig_conn_t *c) {
        int64_t margin = c->c->refresh_margin_s ? c->c->refresh_margin_s
                                                : st->set->refresh_margin_s;
        return c->creds.expires_at_ms &&
               c->creds.expires_at_ms - (int64_t)clock_wall_ms() <
                       margin * 1000;
}

/* Refresh with the lease held: the connector renews job->creds; a rotated
 * refresh token refused because our store of it was lost gets one more
 * try with the one it replaced, within the grace. */
static ig_err_t conn__renew(ig_conn_t *c, ig_job_t *job) {
        ig_err_t err = c->c->refresh(job);
        if (err == IG_AUTH && c->creds.prev_refresh &&
            (int64_t)clock_wall_ms() - c->creds.rotated_at_ms < CONN_GRACE_MS) {
                char *cur = c->creds.refresh_token
                                    ? xstrdup(c->creds.refresh_token)
                                    : NULL;
                ig_creds_set(&c->creds.refresh_token, c->creds.prev_refresh);
                err = c->c->refresh(job);
                if (err) {
                        ig_creds_set(&c->creds.refresh_token, cur);
                }
                if (cur) {
                        OPENSSL_cleanse(cur, strlen(cur));
                        free(cur);
                }
        }
        return err;
}

ig_err_t ig_conn_fresh(ig_state_t *st, ig_conn_t *c, ig_job_t *job, bool force,
                       bool *refreshed) {
        int64_t deadline = (int64_t)clock_wall_ms() + CONN_WAIT_MS;
        char *failed = NULL, owner[IG_ID_TEXT];
        ig_err_t err = IG_OK;

        *refreshed = false;
        if (!c->c->refresh)
                return force ? IG_AUTH : IG_OK;
        if (!force && !conn__needs(st, c))
                return IG_OK;
        /* The token the provider refused: a different one is someone
         * else's refresh, good to use. */
        if (force && c->creds.access_token)
                failed = xstrdup(c->creds.access_token);
        ig_uuid(owner);
        for (int round = 0;; round++) {
                bool got = false;
                if ((err = conn__lease(st, c, owner, &got)))
                        break;
                if (!got) {
                        ig_conn_t fresh;
                        if ((int64_t)clock_wall_ms() > deadline) {
                                ig_job_error(job, "another refresh holds the "
                                                  "lock for too long");
                                err = IG_TRANSIENT;
                                break;
                        }
                        backoff_sleep(NULL, 100 + 50 * (round < 8 ? round : 8));
                        if ((err = ig_conn_load(st, c->id, NULL, true, &fresh)))
                                break;
                        ig_conn_clear(c);
                        *c = fresh;
                        job->creds = &c->creds;
                        job->extra = c->extra;
                        continue;
                }
                if ((err = conn__decrypt(st, c)))
                        break;
                job->creds = &c->creds;
                job->extra = c->extra;
                if (strcmp(c->status, "connected") != 0) {
                        conn__release(st, c->id, owner);
                        err = IG_GONE;
                        break;
                }
                if ((failed ? !c->creds.access_token ||
                                      strcmp(failed, c->creds.access_token) != 0
                            : !conn__needs(st, c))) {
                        /* Renewed meanwhile by someone else. */
                        conn__release(st, c->id, owner);
                        break;
                }
                err = conn__renew(c, job);
                if (err) {
                        conn__release(st, c->id, owner);
                        break;
                }
                err = conn__save(st, c, owner);
                if (!err)
                        *refreshed = true;
                break;
        }
        if (failed) {
                OPENSSL_cleanse(failed, strlen(failed));
                free(failed);
        }
        return err;
}

/* ---------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------ */

ig_err_t ig_conn_put(ig_state_t *st, const char *tenant, const char *user,
                     ig_provider_t provider, const ig_account_t *acct,
                     const ig_creds_t *creds, const char *auth,
                     const char *shop, const char *grant_id,
                     char id[IG_ID_TEXT], bool *created) {
        const char *prov = ig_provider_name(provider);
        int64_t now = (int64_t)clock_wall_ms();
        char errstr[256], aad[512], *plain, *extra = NULL;
        size_t len;
        store_err_t e;

        for (int attempt = 0; attempt < 3; attempt++) {
                bson_t filter = BSON_INITIALIZER, found, update, set, unset;
                *created = false;
                BSON_APPEND_UTF8(&filter, "tenant", tenant);
                BSON_APPEND_UTF8(&filter, "provider", prov);
                BSON_APPEND_UTF8(&filter, "account_id", acct->id);
                e = store_find_one(st->store, IG_DB, IG_COLL_CONNS, &filter,
                                   NULL, &found, errstr, sizeof(errstr));
                if (e == STORE_OK) {
                        conn__copy(id, IG_ID_TEXT, ig_bson_str(&found, "_id"));
                        bson_destroy(&found);
                } else if (e == STORE_NOT_FOUND) {
                        ig_uuid(id);
                        *created = true;
                } else {
                        bson_destroy(&filter);
                        log_warn("connections: %s", errstr);
                        return conn__store_err(e);
                }
                ig_conn_aad(id, tenant, prov, aad, sizeof(aad));
                plain = ig_creds_dump(creds, &len);
                extra = acct->extra ? json_dumps(acct->extra,
                                                 JSON_COMPACT | JSON_SORT_KEYS)
                                    : NULL;
                bson_init(&update);
                BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
                BSON_APPEND_UTF8(&set, "account_name",
                                 acct->name ? acct->name : acct->id);
                BSON_APPEND_UTF8(&set, "status", "connected");
                BSON_APPEND_UTF8(&set, "auth", auth);
                if (acct->currency)
                        BSON_APPEND_UTF8(&set, "currency", acct->currency);
                if (shop)
                        BSON_APPEND_UTF8(&set, "shop", shop);
                if (grant_id)
                        BSON_APPEND_UTF8(&set, "grant_id", grant_id);
                if (extra)
                        BSON_APPEND_UTF8(&set, "extra", extra);
                ig_vault_seal(st->vault, aad, plain, len, &set, "creds");
                BSON_APPEND_DATE_TIME(&set, "token_expires_at",
                                      creds->expires_at_ms);
                BSON_APPEND_DATE_TIME(&set, "lease_until", 0);
                BSON_APPEND_UTF8(&set, "lease_owner", "");
                BSON_APPEND_UTF8(&set, "connected_by", user ? user : "");
                BSON_APPEND_DATE_TIME(&set, "connected_at", now);
                BSON_APPEND_DATE_TIME(&set, "updated_at", now);
                bson_append_document_end(&update, &set);
                BSON_APPEND_DOCUMENT_BEGIN(&update, "$unset", &unset);
                BSON_APPEND_UTF8(&unset, "last_error", "");
                bson_append_document_end(&update, &unset);
                ig_vault_free(plain, len);
                free(extra);
                if (*created) {
                        bson_t ins = BSON_INITIALIZER;
                        BSON_APPEND_UTF8(&ins, "_id", id);
                        BSON_APPEND_UTF8(&ins, "tenant", tenant);
                        BSON_APPEND_UTF8(&ins, "provider", prov);
                        BSON_APPEND_UTF8(&ins, "account_id", acct->id);
                        BSON_APPEND_DATE_TIME(&ins, "created_at", now);
                        e = store_insert(st->store, IG_DB, IG_COLL_CONNS, &ins,
                                         errstr, sizeof(errstr));
                        bson_destroy(&ins);
                        if (e == STORE_DUPLICATE) { /* raced: renew it */
                                bson_destroy(&filter);
                                bson_destroy(&update);
                                continue;
                        }
                        bson_destroy(&filter);
                        bson_init(&filter);
                        BSON_APPEND_UTF8(&filter, "_id", id);
                }
                if (!e)
                        e = store_update(st->store, IG_DB, IG_COLL_CONNS,
                                         &filter, &update, 0, NULL, errstr,
                                         sizeof(errstr));
                bson_destroy(&filter);
                bson_destroy(&update);
                if (e)
                        log_warn("connections: %s", errstr);
                return e ? conn__store_err(e) : IG_OK;
        }
        return IG_STORE;
}

bool ig_conn_invalidate(ig_state_t *st, const ig_conn_t *c,
                        const char *reason) {
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
        int64_t matched = 0;
        char errstr[256];
        BSON_APPEND_UTF8(&filter, "_id", c->id);
        BSON_APPEND_UTF8(&filter, "status", "connected");
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_UTF8(&set, "status", "needs_reauth");
        BSON_APPEND_UTF8(&set, "last_error", reason);
        BSON_APPEND_DATE_TIME(&set, "updated_at", (int64_t)clock_wall_ms());
        bson_append_document_end(&update, &set);
        if (store_update(st->store, IG_DB, IG_COLL_CONNS, &filter, &update, 0,
                         &matched, errstr, sizeof(errstr)) > STORE_NOT_FOUND)
                log_warn("connection %s: %s", c->id, errstr);
        bson_destroy(&filter);
        bson_destroy(&update);
        return matched > 0;
}

void ig_conn_event(ig_records_t *out, const ig_conn_t *c, const char *type,
                   const char *extra_name, const char *extra_value,
                   int64_t at) {
        const char *prov = ig_provider_name(c->provider);
        msgpack_sbuffer sb;
        msgpack_packer pk;
        char identity[128];
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, extra_name ? 4 : 3);
        ig_kv_str(&pk, "connection_id", c->id);
        ig_kv_str(&pk, "provider", prov);
        ig_kv_str(&pk, "account_id", c->account_id);
        if (extra_name)
                ig_kv_str(&pk, extra_name, extra_value);
        snprintf(identity, sizeof(identity), "%s|%lld", c->id, (long long)at);
        ig_rec_event(out, type, c->tenant, prov, c->account_id, identity, at,
                     &sb);
        msgpack_sbuffer_destroy(&sb);
}

ig_err_t ig_conn_update(ig_state_t *st, const char *id, const bson_t *set) {
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER;
        char errstr[256];
        store_err_t e;
        BSON_APPEND_UTF8(&filter, "_id", id);
        BSON_APPEND_DOCUMENT(&update, "$set", set);
        e = store_update(st->store, IG_DB, IG_COLL_CONNS, &filter, &update, 0,
                         NULL, errstr, sizeof(errstr));
        bson_destroy(&filter);
        bson_destroy(&update);
        if (e && e != STORE_NOT_FOUND)
                log_warn("connection %s: %s", id, errstr);
        return e ? conn__store_err(e) : IG_OK;
}

/* ---------------------------------------------------------------------------
 * The reply shape
 * ------------------------------------------------------------------------ */

/* When the connection's schedule fires next (its timer record), or 0. */
static int64_t conn__next_sync(ig_state_t *st, const char *id) {
        bson_t filter = BSON_INITIALIZER, doc;
        char sid[128], errstr[256];
        int64_t at = 0;
        snprintf(sid, sizeof(sid), "sync:%s", id);
        BSON_APPEND_UTF8(&filter, "_id", sid);
        BSON_APPEND_UTF8(&filter, "status", "armed");
        if (store_find_one(st->store, IG_DB, "timers", &filter, NULL, &doc,
                           errstr, sizeof(errstr)) == STORE_OK) {
                at = ig_bson_date(&doc, "fire_at");
                bson_destroy(&doc);
        }
        bson_destroy(&filter);
        return at;
}

void ig_conn_pack(msgpack_packer *pk, const bson_t *doc, void *st) {
        const char *opt_str[] = {"currency",     "last_sync_status",
                                 "last_sync_id", "running_sync_id",
                                 "synced_until", "last_error"};
        const char *id = ig_bson_str(doc, "_id");
        const char *status = ig_bson_str(doc, "status");
        int64_t last = ig_bson_date(doc, "last_sync_at");
        int64_t next = status && strcmp(status, "connected") == 0 && id
                               ? conn__next_sync(st, id)
                               : 0;
        uint32_t n = 7 + (last ? 1 : 0) + (next ? 1 : 0);
        for (size_t i = 0; i < sizeof(opt_str) / sizeof(opt_str[0]); i++)
                n += ig_bson_str(doc, opt_str[i]) ? 1 : 0;
        msgpack_pack_map(pk, n);
        ig_kv_str(pk, "id", id);
        ig_kv_str(pk, "provider", ig_bson_str(doc, "provider"));
        ig_kv_str(pk, "account_id", ig_bson_str(doc, "account_id"));
        ig_kv_str(pk, "account_name", ig_bson_str(doc, "account_name"));
        ig_kv_str(pk, "status", status);
        ig_kv_str(pk, "auth", ig_bson_str(doc, "auth"));
        ig_kv_time(pk, "connected_at", ig_bson_date(doc, "connected_at"));
        if (last)
                ig_kv_time(pk, "last_sync_at", last);
        if (next)
                ig_kv_time(pk, "next_sync_at", next);
        for (size_t i = 0; i < sizeof(opt_str) / sizeof(opt_str[0]); i++)
                if (ig_bson_str(doc, opt_str[i]))
                        ig_kv_str(pk, opt_str[i], ig_bson_str(doc, opt_str[i]));
}
