/*
 * auth.c - the auth group: accounts, login, and who am I.
 *
 * Users live in <prefix>auth.users with a unique index on the normalised
 * email. Passwords are hashed with argon2id (parameters from settings) and a
 * random 16-byte salt. Login answers the same 401 for an unknown email and a
 * wrong password, and spends the same argon2 work on both, so neither the
 * answer nor its timing tells which emails exist.
 *
 * Every handler is idempotent by message id: a signup redelivered after its
 * user was written finds its own user (created_by = message id) and answers
 * as the first time.
 */
#include <argon2.h>
#include <ctype.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "codec.h"
#include "log.h"
#include "msgid.h"
#include "registry.h"
#include "token.h"

#define AUTH_SALT_LEN 16
#define AUTH_HASH_LEN 32
#define AUTH_EMAIL_MAX 254

typedef struct auth_state {
        const config_t *cfg;
        token_keys_t keys;
        char *dummy_hash; /* verified against when the email is unknown */
} auth_state_t;

/* ---------------------------------------------------------------------------
 * Passwords
 * ------------------------------------------------------------------------ */

/* A new argon2id encoded hash of (pwd, len), or NULL. */
static char *auth__hash(const config_t *cfg, const char *pwd, size_t len) {
        uint8_t salt[AUTH_SALT_LEN];
        size_t enc_len;
        char *enc;
        if (RAND_bytes(salt, sizeof(salt)) != 1)
                return NULL;
        enc_len = argon2_encodedlen((uint32_t)cfg->argon2_t_cost,
                                    (uint32_t)cfg->argon2_m_cost_kib,
                                    (uint32_t)cfg->argon2_parallelism,
                                    AUTH_SALT_LEN, AUTH_HASH_LEN, Argon2_id);
        enc = xmalloc(enc_len);
        if (argon2id_hash_encoded((uint32_t)cfg->argon2_t_cost,
                                  (uint32_t)cfg->argon2_m_cost_kib,
                                  (uint32_t)cfg->argon2_parallelism, pwd, len,
                                  salt, sizeof(salt), AUTH_HASH_LEN, enc,
                                  enc_len) != ARGON2_OK) {
                free(enc);
                return NULL;
        }
        return enc;
}

/* Lowercase copy of an email that the schema already checked. */
static void auth__email(slice_t in, char out[AUTH_EMAIL_MAX + 1]) {
        size_t n = in.len > AUTH_EMAIL_MAX ? AUTH_EMAIL_MAX : in.len;
        for (size_t i = 0; i < n; i++)
                out[i] = (char)tolower((unsigned char)in.ptr[i]);
        out[n] = '\0';
}

static const char *auth__bson_str(const bson_t *doc, const char *key) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
                return bson_iter_utf8(&it, NULL);
        return NULL;
}

static void auth__iso_time(int64_t ms, char buf[32]) {
        time_t s = (time_t)(ms / 1000);
        struct tm tm;
        size_t n;
        gmtime_r(&s, &tm);
        n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + n, 32 - n, ".%03uZ", (unsigned)(ms % 1000) % 1000u);
}

static int64_t auth__bson_date(const bson_t *doc, const char *key) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, key) &&
            BSON_ITER_HOLDS_DATE_TIME(&it))
                return bson_iter_date_time(&it);
        return 0;
}

/* {id, email, name, tenant_id, roles, created_at} of a user document. */
static void auth__pack_user(msgpack_packer *pk, const bson_t *user) {
        const char *fields[][2] = {{"id", "_id"},
                                   {"email", "email"},
                                   {"name", "name"},
                                   {"tenant_id", "tenant_id"}};
        char when[32];
        bson_iter_t it, arr;
        msgpack_pack_map(pk, 6);
        for (size_t i = 0; i < 4; i++) {
                const char *v = auth__bson_str(user, fields[i][1]);
                codec_pack_str(pk, fields[i][0]);
                codec_pack_str(pk, v ? v : "");
        }
        codec_pack_str(pk, "roles");
        if (bson_iter_init_find(&it, user, "roles") &&
            BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &arr)) {
                size_t n = 0;
                bson_iter_t count = arr;
                while (bson_iter_next(&count))
                        n++;
                msgpack_pack_array(pk, n);
                while (bson_iter_next(&arr))
                        codec_pack_str(pk, BSON_ITER_HOLDS_UTF8(&arr)
                                                   ? bson_iter_utf8(&arr, NULL)
                                                   : "");
        } else {
                msgpack_pack_array(pk, 0);
        }
        auth__iso_time(auth__bson_date(user, "created_at"), when);
        codec_pack_str(pk, "created_at");
        codec_pack_str(pk, when);
}

/* Map a store failure to the handler's result, with a reply that says
 * nothing of the store's internals. */
static handler_result_t auth__store_failed(rt_ctx_t *ctx, store_err_t err,
                                           const char *errstr) {
        log_warn("store: %s", errstr);
        if (store_err_transient(err))
                return HANDLER_TRANSIENT;
        rt_reply_problem(ctx, 500, "Internal error",
                         "the request could not be stored");
        return HANDLER_PERMANENT;
}

/* ---------------------------------------------------------------------------
 * Handlers
 * ------------------------------------------------------------------------ */

static handler_result_t auth_signup(rt_ctx_t *ctx, const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        store_t *store = runtime_store(rt_runtime(ctx));
        const env_t *env = rt_env(ctx);
        slice_t email_in = codec_map_str(body, "email");
        slice_t password = codec_map_str(body, "password");
        slice_t name = codec_map_str(body, "name");
        char email[AUTH_EMAIL_MAX + 1], user_id[MSGID_TEXT_SIZE],
                tenant_id[MSGID_TEXT_SIZE], errstr[256];
        msgid_t id;
        char *hash;
        bson_t doc = BSON_INITIALIZER, roles;
        store_err_t err;
        handler_result_t res = HANDLER_OK;
        int64_t now = (int64_t)clock_wall_ms();

        auth__email(email_in, email);
        hash = auth__hash(st->cfg, password.ptr, password.len);
        if (!hash) {
                bson_destroy(&doc);
                rt_reply_problem(ctx, 500, "Internal error",
                                 "password hashing failed");
                return HANDLER_PERMANENT;
        }
        msgid_new(&id);
        msgid_format(&id, user_id);
        msgid_new(&id);
        msgid_format(&id, tenant_id);
        BSON_APPEND_UTF8(&doc, "_id", user_id);
        BSON_APPEND_UTF8(&doc, "email", email);
        bson_append_utf8(&doc, "name", 4, name.ptr, (int)name.len);
        BSON_APPEND_UTF8(&doc, "password_hash", hash);
        BSON_APPEND_UTF8(&doc, "tenant_id", tenant_id);
        BSON_APPEND_ARRAY_BEGIN(&doc, "roles", &roles);
        BSON_APPEND_UTF8(&roles, "0", "owner");
        bson_append_array_end(&doc, &roles);
        BSON_APPEND_DATE_TIME(&doc, "created_at", now);
        bson_append_utf8(&doc, "created_by", 10, env->id.ptr, (int)env->id.len);
        free(hash);

        err = store_insert(store, "auth", "users", &doc, errstr,
                           sizeof(errstr));
        bson_destroy(&doc);
        if (err == STORE_DUPLICATE) {
                /* Ours from an earlier delivery, or someone else's email? */
                bson_t filter = BSON_INITIALIZER, found;
                BSON_APPEND_UTF8(&filter, "email", email);
                bson_append_utf8(&filter, "created_by", 10, env->id.ptr,
                                 (int)env->id.len);
                err = store_find_one(store, "auth", "users", &filter, NULL,
                                     &found, errstr, sizeof(errstr));
                bson_destroy(&filter);
                if (err == STORE_OK) {
                        auth__pack_user(rt_reply(ctx, 201), &found);
                        bson_destroy(&found);
                        return HANDLER_OK;
                }
                if (err != STORE_NOT_FOUND)
                        return auth__store_failed(ctx, err, errstr);
                rt_reply_problem(ctx, 409, "Conflict",
                                 "an account with this email already exists");
                return HANDLER_OK;
        }
        if (err)
                return auth__store_failed(ctx, err, errstr);

        {
                bson_t user = BSON_INITIALIZER;
                BSON_APPEND_UTF8(&user, "_id", user_id);
                BSON_APPEND_UTF8(&user, "email", email);
                bson_append_utf8(&user, "name", 4, name.ptr, (int)name.len);
                BSON_APPEND_UTF8(&user, "tenant_id", tenant_id);
                BSON_APPEND_ARRAY_BEGIN(&user, "roles", &roles);
                BSON_APPEND_UTF8(&roles, "0", "owner");
                bson_append_array_end(&user, &roles);
                BSON_APPEND_DATE_TIME(&user, "created_at", now);
                auth__pack_user(rt_reply(ctx, 201), &user);
                bson_destroy(&user);
        }
        {
                msgpack_sbuffer ev;
                msgpack_packer pk;
                msgpack_sbuffer_init(&ev);
                msgpack_packer_init(&pk, &ev, msgpack_sbuffer_write);
                msgpack_pack_map(&pk, 3);
                codec_pack_str(&pk, "user_id");
                codec_pack_str(&pk, user_id);
                codec_pack_str(&pk, "tenant_id");
                codec_pack_str(&pk, tenant_id);
                codec_pack_str(&pk, "registered_at");
                msgpack_pack_int64(&pk, now);
                rt_emit(ctx, "auth.user.registered", slice_of(tenant_id), &ev);
                msgpack_sbuffer_destroy(&ev);
        }
        log_info("user registered: %s", user_id);
        return res;
}

static handler_result_t auth_login(rt_ctx_t *ctx, const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        store_t *store = runtime_store(rt_runtime(ctx));
        slice_t password = codec_map_str(body, "password");
        char email[AUTH_EMAIL_MAX + 1], errstr[256];
        bson_t filter = BSON_INITIALIZER, user;
        store_err_t err;
        const char *hash = NULL;
        int verified;
        token_claims_t claims;
        char *token;
        msgpack_packer *pk;

        auth__email(codec_map_str(body, "email"), email);
        BSON_APPEND_UTF8(&filter, "email", email);
        err = store_find_one(store, "auth", "users", &filter, NULL, &user,
                             errstr, sizeof(errstr));
        bson_destroy(&filter);
        if (err != STORE_OK && err != STORE_NOT_FOUND)
                return auth__store_failed(ctx, err, errstr);
        if (err == STORE_OK)
                hash = auth__bson_str(&user, "password_hash");
        /* Same work whether or not the account exists. */
        verified = argon2id_verify(hash ? hash : st->dummy_hash, password.ptr,
                                   password.len) == ARGON2_OK &&
                   hash != NULL;
        if (!verified) {
                if (err == STORE_OK)
                        bson_destroy(&user);
                rt_reply_problem(ctx, 401, "Unauthorized",
                                 "invalid email or password");
                return HANDLER_OK;
        }

        memset(&claims, 0, sizeof(claims));
        snprintf(claims.sub, sizeof(claims.sub), "%s",
                 auth__bson_str(&user, "_id"));
        snprintf(claims.tid, sizeof(claims.tid), "%s",
                 auth__bson_str(&user, "tenant_id")
                         ? auth__bson_str(&user, "tenant_id")
                         : "");
        {
                bson_iter_t it, arr;
                size_t off = 0;
                if (bson_iter_init_find(&it, &user, "roles") &&
                    BSON_ITER_HOLDS_ARRAY(&it) &&
                    bson_iter_recurse(&it, &arr)) {
                        while (bson_iter_next(&arr) &&
                               BSON_ITER_HOLDS_UTF8(&arr) &&
                               off < sizeof(claims.roles))
                                off += (size_t)snprintf(
                                        claims.roles + off,
                                        sizeof(claims.roles) - off, "%s%s",
                                        off ? "," : "",
                                        bson_iter_utf8(&arr, NULL));
                }
        }
        bson_destroy(&user);
        token = token_sign(&st->keys, &claims, time(NULL), st->cfg->jwt_ttl_s);
        if (!token) {
                rt_reply_problem(ctx, 500, "Internal error",
                                 "the token could not be signed");
                return HANDLER_PERMANENT;
        }
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 3);
        codec_pack_str(pk, "access_token");
        codec_pack_str(pk, token);
        codec_pack_str(pk, "token_type");
        codec_pack_str(pk, "Bearer");
        codec_pack_str(pk, "expires_in");
        msgpack_pack_int(pk, st->cfg->jwt_ttl_s);
        free(token);
        {
                msgpack_sbuffer ev;
                msgpack_packer epk;
                msgpack_sbuffer_init(&ev);
                msgpack_packer_init(&epk, &ev, msgpack_sbuffer_write);
                msgpack_pack_map(&epk, 2);
                codec_pack_str(&epk, "user_id");
                codec_pack_str(&epk, claims.sub);
                codec_pack_str(&epk, "tenant_id");
                codec_pack_str(&epk, claims.tid);
                rt_emit(ctx, "auth.session.started", slice_of(claims.tid), &ev);
                msgpack_sbuffer_destroy(&ev);
        }
        return HANDLER_OK;
}

static handler_result_t auth_me(rt_ctx_t *ctx, const msgpack_object *body) {
        store_t *store = runtime_store(rt_runtime(ctx));
        const env_t *env = rt_env(ctx);
        bson_t filter = BSON_INITIALIZER, user;
        store_err_t err;
        char errstr[256];
        (void)body;

        if (!env->user.len || !env->tenant.len) {
                rt_reply_problem(ctx, 401, "Unauthorized",
                                 "no authenticated user");
                return HANDLER_OK;
        }
        /* The tenant is checked on every read, not only at the edge. */
        bson_append_utf8(&filter, "_id", 3, env->user.ptr, (int)env->user.len);
        bson_append_utf8(&filter, "tenant_id", 9, env->tenant.ptr,
                         (int)env->tenant.len);
        err = store_find_one(store, "auth", "users", &filter, NULL, &user,
                             errstr, sizeof(errstr));
        bson_destroy(&filter);
        if (err == STORE_NOT_FOUND) {
                rt_reply_problem(ctx, 404, "Not Found", "no such user");
                return HANDLER_OK;
        }
        if (err)
                return auth__store_failed(ctx, err, errstr);
        auth__pack_user(rt_reply(ctx, 200), &user);
        bson_destroy(&user);
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * Start-up
 * ------------------------------------------------------------------------ */

static handler_result_t auth_init(runtime_t *rt, void **state, char *errstr,
                                  size_t errlen) {
        const config_t *cfg = runtime_config(rt);
        store_t *store = runtime_store(rt);
        auth_state_t *st;
        bson_t keys = BSON_INITIALIZER;
        store_err_t err;
        uint8_t junk[24];

        BSON_APPEND_INT32(&keys, "email", 1);
        err = store_ensure_index(store, "auth", "users", "email_unique", &keys,
                                 true, -1, errstr, errlen);
        bson_destroy(&keys);
        if (err)
                return store_err_transient(err) ? HANDLER_TRANSIENT
                                                : HANDLER_PERMANENT;

        st = xcalloc(1, sizeof(*st));
        st->cfg = cfg;
        st->keys.secret = cfg->jwt_secret;
        st->keys.issuer = cfg->jwt_issuer;
        st->keys.audience = cfg->jwt_audience;
        st->keys.kid = cfg->jwt_kid;
        if (RAND_bytes(junk, sizeof(junk)) != 1 ||
            !(st->dummy_hash =
                      auth__hash(cfg, (const char *)junk, sizeof(junk)))) {
                snprintf(errstr, errlen, "cannot prepare the password hasher");
                free(st);
                return HANDLER_PERMANENT;
        }
        *state = st;
        return HANDLER_OK;
}

static void auth_shutdown(void *state) {
        auth_state_t *st = state;
        if (!st)
                return;
        free(st->dummy_hash);
        free(st);
}

static const group_handler_t auth_handlers[] = {
        {"auth.status", runtime_handle_status},
        {"auth.signup", auth_signup},
        {"auth.login", auth_login},
        {"auth.me", auth_me},
};

const group_def_t group_auth = {
        .name = "auth",
        .ops_port = 8001,
        .config_scope = CONFIG_SCOPE_AUTH,
        .handlers = auth_handlers,
        .n_handlers = sizeof(auth_handlers) / sizeof(auth_handlers[0]),
        .init = auth_init,
        .shutdown = auth_shutdown,
};
