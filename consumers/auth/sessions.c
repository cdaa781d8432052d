/*
 * sessions.c - sessions and their tokens (see auth_internal.h).
 *
 * A session is one sign-in on one device. It holds the hash of its current
 * refresh token; every refresh rotates it and remembers the old hashes, so a
 * refresh token presented twice (stolen and used by two parties) is noticed
 * and the whole session is revoked. Access tokens are short-lived JWTs with
 * the session's id (sid); revoking a session emits auth.session.revoked, and
 * every edge refuses tokens of revoked sessions from then on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "auth_internal.h"
#include "codec.h"
#include "log.h"
#include "msgid.h"

/* How many rotated-out refresh hashes a session remembers for reuse
 * detection. */
#define AUTH_USED_HASHES 32

void auth_tokens_free(auth_tokens_t *t) {
        if (!t)
                return;
        free(t->access);
        t->access = NULL;
}

void auth_pack_tokens(msgpack_packer *pk, const auth_tokens_t *t) {
        bool refresh = t->refresh[0] != '\0';
        msgpack_pack_map(pk, refresh ? 5 : 4);
        codec_pack_str(pk, "access_token");
        codec_pack_str(pk, t->access);
        if (refresh) {
                codec_pack_str(pk, "refresh_token");
                codec_pack_str(pk, t->refresh);
        }
        codec_pack_str(pk, "token_type");
        codec_pack_str(pk, "Bearer");
        codec_pack_str(pk, "expires_in");
        msgpack_pack_int(pk, t->expires_in);
        codec_pack_str(pk, "session_id");
        codec_pack_str(pk, t->session_id);
}

typedef struct auth_max_version {
        int64_t version;
} auth_max_version_t;

static bool auth__take_version(const bson_t *doc, void *arg) {
        auth_max_version_t *m = arg;
        int64_t v = auth_bson_int(doc, "version", 0);
        if (v > m->version)
                m->version = v;
        return true;
}

int64_t auth_terms_accepted(auth_state_t *st, const char *user_id) {
        bson_t filter = BSON_INITIALIZER;
        auth_max_version_t m = {0};
        char errstr[256];
        BSON_APPEND_UTF8(&filter, "user_id", user_id);
        BSON_APPEND_UTF8(&filter, "type", "terms");
        if (store_find(st->store, "auth", "legal_acceptances", &filter, NULL,
                       auth__take_version, &m, errstr, sizeof(errstr)))
                log_warn("terms acceptances: %s", errstr);
        bson_destroy(&filter);
        return m.version;
}

/* Sign an access token for (user, org, role, sid). */
static handler_result_t auth__access(rt_ctx_t *ctx, const char *user_id,
                                     const char *org_id, const char *sid,
                                     auth_tokens_t *out) {
        auth_state_t *st = rt_state(ctx);
        token_claims_t claims;
        store_err_t err;
        schema_role_t role;

        out->access = NULL;
        role = auth_member_role(st, org_id, user_id, &err);
        if (err)
                return auth_store_failed(ctx, err, "membership lookup failed");
        if (role == SCHEMA_ROLE_NONE) {
                rt_reply_problem(ctx, 404, "Not Found", "no such organisation");
                return HANDLER_OK; /* answered; out->access stays NULL */
        }
        memset(&claims, 0, sizeof(claims));
        snprintf(claims.sub, sizeof(claims.sub), "%s", user_id);
        snprintf(claims.tid, sizeof(claims.tid), "%s", org_id);
        snprintf(claims.roles, sizeof(claims.roles), "%s",
                 schema_role_name(role));
        snprintf(claims.sid, sizeof(claims.sid), "%s", sid);
        claims.tv = auth_terms_accepted(st, user_id);
        out->access =
                token_sign(&st->keys, &claims, time(NULL), st->cfg->jwt_ttl_s);
        out->expires_in = st->cfg->jwt_ttl_s;
        snprintf(out->session_id, sizeof(out->session_id), "%s", sid);
        if (!out->access) {
                rt_reply_problem(ctx, 500, "Internal error",
                                 "the token could not be signed");
                return HANDLER_PERMANENT;
        }
        return HANDLER_OK;
}

/* A new refresh secret for sid: "<sid>.<secret>" and the secret's hash. */
static void auth__new_refresh(const char *sid, auth_tokens_t *out,
                              char hash[AUTH_HASH_HEX]) {
        char secret[AUTH_SECRET_TEXT];
        auth_random_secret(secret);
        auth_sha256_hex(slice_of(secret), hash);
        snprintf(out->refresh, sizeof(out->refresh), "%s.%s", sid, secret);
}

static void auth__bson_slice(bson_t *doc, const char *key, slice_t v,
                             size_t max) {
        bson_append_utf8(doc, key, -1, v.ptr ? v.ptr : "",
                         (int)(v.len > max ? max : v.len));
}

handler_result_t auth_session_start(rt_ctx_t *ctx, const bson_t *user,
                                    const char *org_id, auth_tokens_t *out) {
        auth_state_t *st = rt_state(ctx);
        const env_t *env = rt_env(ctx);
        const char *user_id = auth_bson_str(user, "_id");
        char sid[AUTH_ID_TEXT], hash[AUTH_HASH_HEX], errstr[256];
        bson_t doc = BSON_INITIALIZER, used;
        int64_t now = (int64_t)clock_wall_ms();
        msgid_t id;
        store_err_t err;
        handler_result_t res;

        memset(out, 0, sizeof(*out));
        if (!user_id) {
                rt_reply_problem(ctx, 500, "Internal error",
                                 "user without an id");
                return HANDLER_PERMANENT;
        }
        msgid_new(&id);
        msgid_format(&id, sid);
        res = auth__access(ctx, user_id, org_id, sid, out);
        if (res != HANDLER_OK || !out->access)
                return res;
        auth__new_refresh(sid, out, hash);
        BSON_APPEND_UTF8(&doc, "_id", sid);
        BSON_APPEND_UTF8(&doc, "user_id", user_id);
        BSON_APPEND_UTF8(&doc, "org_id", org_id);
        BSON_APPEND_DATE_TIME(&doc, "created_at", now);
        BSON_APPEND_DATE_TIME(&doc, "last_used_at", now);
        BSON_APPEND_DATE_TIME(&doc, "expires_at",
                              now + (int64_t)st->set->refresh_ttl_s * 1000);
        auth__bson_slice(&doc, "ip", env->client_ip, 64);
        auth__bson_slice(&doc, "user_agent", env->user_agent, 256);
        BSON_APPEND_UTF8(&doc, "refresh_hash", hash);
        BSON_APPEND_ARRAY_BEGIN(&doc, "used_hashes", &used);
        bson_append_array_end(&doc, &used);
        bson_append_utf8(&doc, "created_by", -1, env->id.ptr, (int)env->id.len);
        err = store_insert(st->store, "auth", "sessions", &doc, errstr,
                           sizeof(errstr));
        bson_destroy(&doc);
        if (err) {
                auth_tokens_free(out);
                return auth_store_failed(ctx, err, errstr);
        }
        auth_emit(ctx, "auth.session.started", org_id, 3, "user_id", user_id,
                  "tenant_id", org_id, "session_id", sid);
        return HANDLER_OK;
}

/* The live session sid of user_id (any user when NULL). */
static store_err_t auth__session(auth_state_t *st, slice_t sid,
                                 const char *user_id, bson_t *out, char *errstr,
                                 size_t errlen) {
        bson_t filter = BSON_INITIALIZER, gt;
        store_err_t err;
        bson_append_utf8(&filter, "_id", 3, sid.ptr ? sid.ptr : "",
                         (int)sid.len);
        if (user_id)
                BSON_APPEND_UTF8(&filter, "user_id", user_id);
        BSON_APPEND_NULL(&filter, "revoked_at");
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "expires_at", &gt);
        BSON_APPEND_DATE_TIME(&gt, "$gt", (int64_t)clock_wall_ms());
        bson_append_document_end(&filter, &gt);
        err = store_find_one(st->store, "auth", "sessions", &filter, NULL, out,
                             errstr, errlen);
        bson_destroy(&filter);
        return err;
}

handler_result_t auth_session_reissue(rt_ctx_t *ctx, const char *session_id,
                                      const char *org_id, auth_tokens_t *out) {
        auth_state_t *st = rt_state(ctx);
        const env_t *env = rt_env(ctx);
        char user_id[AUTH_ID_TEXT] = "", errstr[256];
        bson_t sess, filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
        store_err_t err;
        handler_result_t res;

        memset(out, 0, sizeof(*out));
        snprintf(user_id, sizeof(user_id), "%.*s", (int)env->user.len,
                 env->user.ptr ? env->user.ptr : "");
        err = auth__session(st, slice_of(session_id), user_id, &sess, errstr,
                            sizeof(errstr));
        if (err == STORE_NOT_FOUND) {
                rt_reply_problem(ctx, 401, "Unauthorized",
                                 "the session has ended");
                return HANDLER_PERMANENT;
        }
        if (err)
                return auth_store_failed(ctx, err, errstr);
        bson_destroy(&sess);
        res = auth__access(ctx, user_id, org_id, session_id, out);
        if (res != HANDLER_OK || !out->access)
                return res;
        BSON_APPEND_UTF8(&filter, "_id", session_id);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_UTF8(&set, "org_id", org_id);
        BSON_APPEND_DATE_TIME(&set, "last_used_at", (int64_t)clock_wall_ms());
        bson_append_document_end(&update, &set);
        err = store_update_one(st->store, "auth", "sessions", &filter, &update,
                               false, errstr, sizeof(errstr));
        bson_destroy(&update);
        bson_destroy(&filter);
        if (err && err != STORE_NOT_FOUND) {
                auth_tokens_free(out);
                return auth_store_failed(ctx, err, errstr);
        }
        return HANDLER_OK;
}

/* Mark one session revoked and tell every edge. */
static store_err_t auth__revoke_one(rt_ctx_t *ctx, const char *sid,
                                    const char *user_id, const char *reason) {
        auth_state_t *st = rt_state(ctx);
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
        char errstr[256];
        store_err_t err;
        int64_t now = (int64_t)clock_wall_ms();
        msgpack_sbuffer ev;
        msgpack_packer pk;

        BSON_APPEND_UTF8(&filter, "_id", sid);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_DATE_TIME(&set, "revoked_at", now);
        BSON_APPEND_UTF8(&set, "revoked_reason", reason);
        bson_append_document_end(&update, &set);
        err = store_update_one(st->store, "auth", "sessions", &filter, &update,
                               false, errstr, sizeof(errstr));
        bson_destroy(&update);
        bson_destroy(&filter);
        if (err == STORE_NOT_FOUND)
                return STORE_OK;
        if (err)
                return err;
        /* Access tokens of the session live at most jwt_ttl_s more; until
         * is an integer (Unix seconds), as the event's schema says. */
        msgpack_sbuffer_init(&ev);
        msgpack_packer_init(&pk, &ev, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 4);
        codec_pack_str(&pk, "session_id");
        codec_pack_str(&pk, sid);
        codec_pack_str(&pk, "user_id");
        codec_pack_str(&pk, user_id);
        codec_pack_str(&pk, "reason");
        codec_pack_str(&pk, reason);
        codec_pack_str(&pk, "until");
        msgpack_pack_int64(&pk, now / 1000 + st->cfg->jwt_ttl_s + 60);
        rt_emit(ctx, "auth.session.revoked", slice_of(user_id), &ev);
        msgpack_sbuffer_destroy(&ev);
        log_info("session %s revoked: %s", sid, reason);
        return STORE_OK;
}

typedef struct auth_sid_list {
        char (*ids)[AUTH_ID_TEXT];
        size_t n, cap;
        const char *keep;
} auth_sid_list_t;

static bool auth__collect_sid(const bson_t *doc, void *arg) {
        auth_sid_list_t *l = arg;
        const char *id = auth_bson_str(doc, "_id");
        if (!id || (l->keep && strcmp(id, l->keep) == 0))
                return true;
        if (l->n == l->cap) {
                l->cap = l->cap ? l->cap * 2 : 16;
                l->ids = xrealloc(l->ids, l->cap * sizeof(*l->ids));
        }
        snprintf(l->ids[l->n++], AUTH_ID_TEXT, "%s", id);
        return true;
}

handler_result_t auth_session_revoke(rt_ctx_t *ctx, const char *user_id,
                                     const char *sid, const char *keep_sid,
                                     const char *reason) {
        auth_state_t *st = rt_state(ctx);
        auth_sid_list_t list = {NULL, 0, 0, keep_sid};
        bson_t filter = BSON_INITIALIZER;
        char errstr[256];
        store_err_t err;

        if (sid) {
                err = auth__revoke_one(ctx, sid, user_id, reason);
                return err ? auth_store_failed(ctx, err,
                                               "session revoke failed")
                           : HANDLER_OK;
        }
        BSON_APPEND_UTF8(&filter, "user_id", user_id);
        BSON_APPEND_NULL(&filter, "revoked_at");
        err = store_find(st->store, "auth", "sessions", &filter, NULL,
                         auth__collect_sid, &list, errstr, sizeof(errstr));
        bson_destroy(&filter);
        for (size_t i = 0; !err && i < list.n; i++)
                err = auth__revoke_one(ctx, list.ids[i], user_id, reason);
        free(list.ids);
        return err ? auth_store_failed(ctx, err, errstr) : HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * Handlers
 * ------------------------------------------------------------------------ */

static bool auth__hash_in(const bson_t *sess, const char *hash) {
        bson_iter_t it, arr;
        if (!bson_iter_init_find(&it, sess, "used_hashes") ||
            !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &arr))
                return false;
        while (bson_iter_next(&arr))
                if (BSON_ITER_HOLDS_UTF8(&arr) &&
                    auth_equal(bson_iter_utf8(&arr, NULL), hash))
                        return true;
        return false;
}

handler_result_t auth_refresh(rt_ctx_t *ctx, const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        slice_t token = codec_map_str(body, "refresh_token");
        const char *dot = token.ptr ? memchr(token.ptr, '.', token.len) : NULL;
        char sid[AUTH_ID_TEXT], hash[AUTH_HASH_HEX], new_hash[AUTH_HASH_HEX],
                errstr[256], user_id[AUTH_ID_TEXT], org_id[AUTH_ID_TEXT];
        const char *current;
        bson_t sess, filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set,
                     push, each;
        auth_tokens_t tokens;
        store_err_t err;
        handler_result_t res;
        int64_t now = (int64_t)clock_wall_ms();
        msgid_t parsed;

        if (!dot || (size_t)(dot - token.ptr) != MSGID_TEXT_LEN ||
            !msgid_parse(token.ptr, MSGID_TEXT_LEN, &parsed)) {
                rt_reply_problem(ctx, 401, "Unauthorized",
                                 "invalid refresh token");
                return HANDLER_OK;
        }
        memcpy(sid, token.ptr, MSGID_TEXT_LEN);
        sid[MSGID_TEXT_LEN] = '\0';
        auth_sha256_hex((slice_t){dot + 1, token.len - MSGID_TEXT_LEN - 1},
                        hash);
        err = auth__session(st, slice_of(sid), NULL, &sess, errstr,
                            sizeof(errstr));
        if (err == STORE_NOT_FOUND) {
                rt_reply_problem(ctx, 401, "Unauthorized",
                                 "invalid refresh token");
                return HANDLER_OK;
        }
        if (err)
                return auth_store_failed(ctx, err, errstr);
        current = auth_bson_str(&sess, "refresh_hash");
        snprintf(user_id, sizeof(user_id), "%s",
                 auth_bson_str(&sess, "user_id")
                         ? auth_bson_str(&sess, "user_id")
                         : "");
        snprintf(org_id, sizeof(org_id), "%s",
                 auth_bson_str(&sess, "org_id") ? auth_bson_str(&sess, "org_id")
                                                : "");
        if (!current || !auth_equal(current, hash)) {
                bool reused = auth__hash_in(&sess, hash);
                bson_destroy(&sess);
                if (reused) {
                        /* An old token came back: someone else holds the
                         * session. End it for everyone. */
                        log_warn("refresh token reuse on session %s", sid);
                        res = auth_session_revoke(ctx, user_id, sid, NULL,
                                                  "refresh token reuse");
                        if (res != HANDLER_OK)
                                return res;
                }
                rt_reply_problem(
                        ctx, 401, "Unauthorized",
                        reused ? "refresh token reuse: the session is revoked"
                               : "invalid refresh token");
                return HANDLER_OK;
        }
        bson_destroy(&sess);

        res = auth__access(ctx, user_id, org_id, sid, &tokens);
        if (res != HANDLER_OK || !tokens.access)
                return res;
        auth__new_refresh(sid, &tokens, new_hash);
        /* Rotate only if nobody rotated first: the filter is the check. */
        BSON_APPEND_UTF8(&filter, "_id", sid);
        BSON_APPEND_UTF8(&filter, "refresh_hash", hash);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_UTF8(&set, "refresh_hash", new_hash);
        BSON_APPEND_DATE_TIME(&set, "last_used_at", now);
        BSON_APPEND_DATE_TIME(&set, "expires_at",
                              now + (int64_t)st->set->refresh_ttl_s * 1000);
        bson_append_document_end(&update, &set);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$push", &push);
        BSON_APPEND_DOCUMENT_BEGIN(&push, "used_hashes", &each);
        {
                bson_t arr;
                BSON_APPEND_ARRAY_BEGIN(&each, "$each", &arr);
                BSON_APPEND_UTF8(&arr, "0", hash);
                bson_append_array_end(&each, &arr);
        }
        BSON_APPEND_INT32(&each, "$slice", -AUTH_USED_HASHES);
        bson_append_document_end(&push, &each);
        bson_append_document_end(&update, &push);
        err = store_update_one(st->store, "auth", "sessions", &filter, &update,
                               false, errstr, sizeof(errstr));
        bson_destroy(&update);
        bson_destroy(&filter);
        if (err == STORE_NOT_FOUND) {
                auth_tokens_free(&tokens);
                rt_reply_problem(ctx, 401, "Unauthorized",
                                 "invalid refresh token");
                return HANDLER_OK;
        }
        if (err) {
                auth_tokens_free(&tokens);
                return auth_store_failed(ctx, err, errstr);
        }
        auth_pack_tokens(rt_reply(ctx, 200), &tokens);
        auth_tokens_free(&tokens);
        return HANDLER_OK;
}

/* The caller's user id and session from the envelope, or a 401 reply. */
static bool auth__caller(rt_ctx_t *ctx, char user[AUTH_ID_TEXT],
                         char sid[AUTH_ID_TEXT]) {
        const env_t *env = rt_env(ctx);
        if (env->user.len != MSGID_TEXT_LEN) {
                rt_reply_problem(ctx, 401, "Unauthorized",
                                 "no authenticated user");
                return false;
        }
        memcpy(user, env->user.ptr, MSGID_TEXT_LEN);
        user[MSGID_TEXT_LEN] = '\0';
        sid[0] = '\0';
        if (env->session.len == MSGID_TEXT_LEN) {
                memcpy(sid, env->session.ptr, MSGID_TEXT_LEN);
                sid[MSGID_TEXT_LEN] = '\0';
        }
        return true;
}

handler_result_t auth_logout(rt_ctx_t *ctx, const msgpack_object *body) {
        char user[AUTH_ID_TEXT], sid[AUTH_ID_TEXT];
        msgpack_packer *pk;
        handler_result_t res;
        (void)body;
        if (!auth__caller(ctx, user, sid))
                return HANDLER_OK;
        if (sid[0]) {
                res = auth_session_revoke(ctx, user, sid, NULL, "logout");
                if (res != HANDLER_OK)
                        return res;
        }
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 1);
        codec_pack_str(pk, "logged_out");
        msgpack_pack_true(pk);
        return HANDLER_OK;
}

/* arg: the caller's session id. */
static void auth__pack_session(msgpack_packer *pk, const bson_t *doc,
                               void *arg) {
        const char *current = arg;
        const char *id = auth_bson_str(doc, "_id");
        const char *ip = auth_bson_str(doc, "ip");
        const char *ua = auth_bson_str(doc, "user_agent");
        char created[32], used[32];
        auth_iso_time(auth_bson_date(doc, "created_at"), created);
        auth_iso_time(auth_bson_date(doc, "last_used_at"), used);
        msgpack_pack_map(pk, 6);
        codec_pack_str(pk, "id");
        codec_pack_str(pk, id ? id : "");
        codec_pack_str(pk, "created_at");
        codec_pack_str(pk, created);
        codec_pack_str(pk, "last_used_at");
        codec_pack_str(pk, used);
        codec_pack_str(pk, "ip");
        codec_pack_str(pk, ip ? ip : "");
        codec_pack_str(pk, "device");
        codec_pack_str(pk, ua ? ua : "");
        codec_pack_str(pk, "current");
        if (id && current && strcmp(id, current) == 0)
                msgpack_pack_true(pk);
        else
                msgpack_pack_false(pk);
}

handler_result_t auth_sessions_list(rt_ctx_t *ctx, const msgpack_object *body) {
        char user[AUTH_ID_TEXT], sid[AUTH_ID_TEXT];
        bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort, gt;
        handler_result_t res;
        (void)body;

        if (!auth__caller(ctx, user, sid))
                return HANDLER_OK;
        BSON_APPEND_UTF8(&filter, "user_id", user);
        BSON_APPEND_NULL(&filter, "revoked_at");
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "expires_at", &gt);
        BSON_APPEND_DATE_TIME(&gt, "$gt", (int64_t)clock_wall_ms());
        bson_append_document_end(&filter, &gt);
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
        BSON_APPEND_INT32(&sort, "last_used_at", -1);
        bson_append_document_end(&opts, &sort);
        res = auth_reply_list(ctx, "sessions", "sessions", &filter, &opts,
                              auth__pack_session, sid);
        bson_destroy(&opts);
        bson_destroy(&filter);
        return res;
}

handler_result_t auth_sessions_revoke(rt_ctx_t *ctx,
                                      const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        char user[AUTH_ID_TEXT], sid[AUTH_ID_TEXT], target[AUTH_ID_TEXT],
                errstr[256];
        slice_t id = codec_map_str(body, "id");
        bson_t sess;
        store_err_t err;
        handler_result_t res;
        msgpack_packer *pk;

        if (!auth__caller(ctx, user, sid))
                return HANDLER_OK;
        /* Only the caller's own sessions: another user's id is "not found". */
        err = auth__session(st, id, user, &sess, errstr, sizeof(errstr));
        if (err == STORE_NOT_FOUND) {
                rt_reply_problem(ctx, 404, "Not Found", "no such session");
                return HANDLER_OK;
        }
        if (err)
                return auth_store_failed(ctx, err, errstr);
        bson_destroy(&sess);
        snprintf(target, sizeof(target), "%.*s", (int)id.len, id.ptr);
        res = auth_session_revoke(ctx, user, target, NULL,
                                  "revoked by the user");
        if (res != HANDLER_OK)
                return res;
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 1);
        codec_pack_str(pk, "revoked");
        msgpack_pack_true(pk);
        return HANDLER_OK;
}

handler_result_t auth_sessions_revoke_others(rt_ctx_t *ctx,
                                             const msgpack_object *body) {
        char user[AUTH_ID_TEXT], sid[AUTH_ID_TEXT];
        handler_result_t res;
        msgpack_packer *pk;
        (void)body;
        if (!auth__caller(ctx, user, sid))
                return HANDLER_OK;
        res = auth_session_revoke(ctx, user, NULL, sid[0] ? sid : NULL,
                                  "signed out elsewhere by the user");
        if (res != HANDLER_OK)
                return res;
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 1);
        codec_pack_str(pk, "revoked_others");
        msgpack_pack_true(pk);
        return HANDLER_OK;
}

static const store_index_t sessions_indexes[] = {
        {"sessions", "user_id", "user_id", false, -1},
        {"sessions", "expires_at_ttl", "expires_at", false, 0},
        {NULL},
};

store_err_t auth_sessions_indexes(auth_state_t *st, char *errstr,
                                  size_t errlen) {
        return store_ensure_indexes(st->store, "auth", sessions_indexes, errstr,
                                    errlen);
}
