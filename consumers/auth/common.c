/*
 * common.c - what every file of the auth group uses: passwords, secrets,
 * store and bson helpers (see auth_internal.h).
 */
#include <argon2.h>
#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "auth_internal.h"
#include "codec.h"
#include "log.h"
#include "msgid.h"

#define AUTH_SALT_LEN 16
#define AUTH_HASH_LEN 32

/* ---------------------------------------------------------------------------
 * Passwords
 * ------------------------------------------------------------------------ */

char *auth_password_hash(const auth_settings_t *set, slice_t pwd) {
        uint8_t salt[AUTH_SALT_LEN];
        size_t enc_len;
        char *enc;
        if (RAND_bytes(salt, sizeof(salt)) != 1)
                return NULL;
        enc_len = argon2_encodedlen((uint32_t)set->argon2_t_cost,
                                    (uint32_t)set->argon2_m_cost_kib,
                                    (uint32_t)set->argon2_parallelism,
                                    AUTH_SALT_LEN, AUTH_HASH_LEN, Argon2_id);
        enc = xmalloc(enc_len);
        if (argon2id_hash_encoded((uint32_t)set->argon2_t_cost,
                                  (uint32_t)set->argon2_m_cost_kib,
                                  (uint32_t)set->argon2_parallelism, pwd.ptr,
                                  pwd.len, salt, sizeof(salt), AUTH_HASH_LEN,
                                  enc, enc_len) != ARGON2_OK) {
                free(enc);
                return NULL;
        }
        return enc;
}

bool auth_password_verify(const char *encoded, slice_t pwd) {
        if (!encoded)
                return false;
        return argon2id_verify(encoded, pwd.ptr, pwd.len) == ARGON2_OK;
}

/* Passwords people pick first; a short list, checked case-insensitively. */
static const char *const auth__common_passwords[] = {
        "password",   "password1",  "password123", "123456789",
        "1234567890", "qwertyuiop", "iloveyou",    "letmein123",
        "welcome123", "admin12345", "passw0rd",    "qwerty123",
        "omnify1234", "abc1234567", "changeme123", "1q2w3e4r5t",
};

int auth_password_policy(slice_t pwd, const char *email, char *why,
                         size_t size) {
        int lower = 0, upper = 0, digit = 0, other = 0;
        /* Lengths count characters, as the schemas (JSON Schema) do: 128
         * characters are at most 512 bytes of UTF-8. */
        char local[AUTH_EMAIL_MAX + 1], low[4 * 128 + 1];
        const char *at = email ? strchr(email, '@') : NULL;
        size_t chars = 0;

        for (size_t i = 0; i < pwd.len; i++)
                chars += ((unsigned char)pwd.ptr[i] & 0xC0) != 0x80;
        if (chars < 10 || chars > 128 || pwd.len >= sizeof(low)) {
                snprintf(why, size,
                         "the password must be 10 to 128 characters long");
                return -1;
        }
        for (size_t i = 0; i < pwd.len; i++) {
                unsigned char c = (unsigned char)pwd.ptr[i];
                if (islower(c))
                        lower = 1;
                else if (isupper(c))
                        upper = 1;
                else if (isdigit(c))
                        digit = 1;
                else
                        other = 1;
                low[i] = (char)tolower(c);
        }
        low[pwd.len] = '\0';
        if (chars < 16 && lower + upper + digit + other < 2) {
                snprintf(why, size,
                         "a password under 16 characters needs two kinds of "
                         "characters "
                         "(lower case, upper case, digits, others)");
                return -1;
        }
        for (size_t i = 0; i < sizeof(auth__common_passwords) / sizeof(char *);
             i++) {
                if (strcmp(low, auth__common_passwords[i]) == 0) {
                        snprintf(why, size, "the password is too common");
                        return -1;
                }
        }
        if (at && at - email >= 3 && (size_t)(at - email) < sizeof(local)) {
                memcpy(local, email, (size_t)(at - email));
                local[at - email] = '\0';
                for (char *p = local; *p; p++)
                        *p = (char)tolower((unsigned char)*p);
                if (strstr(low, local)) {
                        snprintf(why, size,
                                 "the password must not contain the email's "
                                 "name");
                        return -1;
                }
        }
        return 0;
}

/* ---------------------------------------------------------------------------
 * Secrets
 * ------------------------------------------------------------------------ */

void auth_random_secret(char out[AUTH_SECRET_TEXT]) {
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqr"
                                  "stuvwxyz0123456789-_";
        unsigned char raw[33]; /* 32 used; a multiple of 3 for the loop */
        size_t j = 0;
        if (RAND_bytes(raw, 32) != 1)
                abort(); /* no randomness: nothing safe to hand out */
        raw[32] = 0;
        for (size_t i = 0; i < 33; i += 3) {
                uint32_t v = (uint32_t)raw[i] << 16 |
                             (uint32_t)raw[i + 1] << 8 | raw[i + 2];
                out[j++] = b64[v >> 18];
                out[j++] = b64[(v >> 12) & 63];
                out[j++] = b64[(v >> 6) & 63];
                out[j++] = b64[v & 63];
        }
        out[43] = '\0'; /* 256 bits in 43 characters */
}

void auth_sha256_hex(slice_t s, char out[AUTH_HASH_HEX]) {
        static const char hex[] = "0123456789abcdef";
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        EVP_Digest(s.ptr, s.len, md, &n, EVP_sha256(), NULL);
        for (unsigned int i = 0; i < n && i < 32; i++) {
                out[2 * i] = hex[md[i] >> 4];
                out[2 * i + 1] = hex[md[i] & 15];
        }
        out[64] = '\0';
}

bool auth_equal(const char *a, const char *b) {
        size_t n = strlen(a);
        return n == strlen(b) && CRYPTO_memcmp(a, b, n) == 0;
}

void auth_email_normalize(slice_t in, char out[AUTH_EMAIL_MAX + 1]) {
        size_t n = in.len > AUTH_EMAIL_MAX ? AUTH_EMAIL_MAX : in.len;
        for (size_t i = 0; i < n; i++)
                out[i] = (char)tolower((unsigned char)in.ptr[i]);
        out[n] = '\0';
}

/* ---------------------------------------------------------------------------
 * bson and replies
 * ------------------------------------------------------------------------ */

const char *auth_bson_str(const bson_t *doc, const char *key) {
        bson_iter_t it;
        if (bson_iter_init(&it, doc) &&
            bson_iter_find_descendant(&it, key, &it) &&
            BSON_ITER_HOLDS_UTF8(&it))
                return bson_iter_utf8(&it, NULL);
        return NULL;
}

int64_t auth_bson_int(const bson_t *doc, const char *key, int64_t def) {
        bson_iter_t it;
        if (bson_iter_init(&it, doc) &&
            bson_iter_find_descendant(&it, key, &it) &&
            BSON_ITER_HOLDS_NUMBER(&it))
                return bson_iter_as_int64(&it);
        return def;
}

int64_t auth_bson_date(const bson_t *doc, const char *key) {
        bson_iter_t it;
        if (bson_iter_init(&it, doc) &&
            bson_iter_find_descendant(&it, key, &it) &&
            BSON_ITER_HOLDS_DATE_TIME(&it))
                return bson_iter_date_time(&it);
        return 0;
}

bool auth_bson_bool(const bson_t *doc, const char *key) {
        bson_iter_t it;
        return bson_iter_init(&it, doc) &&
               bson_iter_find_descendant(&it, key, &it) &&
               BSON_ITER_HOLDS_BOOL(&it) && bson_iter_bool(&it);
}

void auth_iso_time(int64_t ms, char buf[32]) {
        time_t s = (time_t)(ms / 1000);
        struct tm tm;
        size_t n;
        gmtime_r(&s, &tm);
        n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + n, 32 - n, ".%03uZ", (unsigned)(ms % 1000) % 1000u);
}

bool auth_id_parse(slice_t s, char out[AUTH_ID_TEXT]) {
        msgid_t id;
        out[0] = '\0';
        if (s.len != MSGID_TEXT_LEN || !msgid_parse(s.ptr, s.len, &id))
                return false;
        msgid_format(&id, out);
        return true;
}

handler_result_t auth_refuse(rt_ctx_t *ctx, int status, const char *detail) {
        static const struct {
                int status;
                const char *title;
        } titles[] = {{401, "Unauthorized"},
                      {403, "Forbidden"},
                      {404, "Not Found"},
                      {409, "Conflict"},
                      {410, "Gone"}};
        const char *title = "Bad Request";
        for (size_t i = 0; i < sizeof(titles) / sizeof(titles[0]); i++)
                if (titles[i].status == status)
                        title = titles[i].title;
        rt_reply_problem(ctx, status, title, detail);
        return HANDLER_OK;
}

void auth_command_id(rt_ctx_t *ctx, char out[AUTH_ID_TEXT]) {
        const env_t *env = rt_env(ctx);
        snprintf(out, AUTH_ID_TEXT, "%.*s",
                 (int)(env->id.len < MSGID_TEXT_LEN ? env->id.len
                                                    : MSGID_TEXT_LEN),
                 env->id.ptr ? env->id.ptr : "");
}

bool auth_same(const char *a, const char *b) {
        return a && b && strcmp(a, b) == 0;
}

void auth_pack_kv(msgpack_packer *pk, const char *key, const char *value) {
        codec_pack_str(pk, key);
        codec_pack_str(pk, value ? value : "");
}

void auth_pack_time(msgpack_packer *pk, const char *key, int64_t ms) {
        char when[32];
        auth_iso_time(ms, when);
        codec_pack_str(pk, key);
        codec_pack_str(pk, when);
}

void auth_pack_user(msgpack_packer *pk, const bson_t *user, const char *role) {
        const char *fields[][2] = {{"id", "_id"},
                                   {"email", "email"},
                                   {"name", "name"},
                                   {"tenant_id", "tenant_id"}};
        char when[32];
        msgpack_pack_map(pk, 8);
        codec_pack_str(pk, "roles");
        msgpack_pack_array(pk, role ? 1 : 0);
        if (role)
                codec_pack_str(pk, role);
        for (size_t i = 0; i < 4; i++) {
                const char *v = auth_bson_str(user, fields[i][1]);
                codec_pack_str(pk, fields[i][0]);
                codec_pack_str(pk, v ? v : "");
        }
        codec_pack_str(pk, "email_verified");
        if (auth_bson_bool(user, "email_verified"))
                msgpack_pack_true(pk);
        else
                msgpack_pack_false(pk);
        codec_pack_str(pk, "mfa_enabled");
        if (auth_bson_bool(user, "mfa.enabled"))
                msgpack_pack_true(pk);
        else
                msgpack_pack_false(pk);
        auth_iso_time(auth_bson_date(user, "created_at"), when);
        codec_pack_str(pk, "created_at");
        codec_pack_str(pk, when);
}

void auth_reply_locked(rt_ctx_t *ctx, int64_t until_ms) {
        msgpack_packer *pk = rt_reply(ctx, 429);
        int64_t left = (until_ms - (int64_t)clock_wall_ms() + 999) / 1000;
        msgpack_pack_map(pk, 5);
        codec_pack_str(pk, "type");
        codec_pack_str(pk, "about:blank");
        codec_pack_str(pk, "title");
        codec_pack_str(pk, "Too Many Requests");
        codec_pack_str(pk, "status");
        msgpack_pack_int(pk, 429);
        codec_pack_str(pk, "detail");
        codec_pack_str(
                pk,
                "too many failed logins: the account is locked for a while");
        codec_pack_str(pk, "retry_after");
        msgpack_pack_int64(pk, left > 0 ? left : 1);
}

handler_result_t auth_store_failed(rt_ctx_t *ctx, store_err_t err,
                                   const char *errstr) {
        log_warn("store: %s", errstr);
        if (store_err_transient(err))
                return HANDLER_TRANSIENT;
        rt_reply_problem(ctx, 500, "Internal error",
                         "the request could not be stored");
        return HANDLER_PERMANENT;
}

handler_result_t auth_reply_list(rt_ctx_t *ctx, const char *key,
                                 const char *coll, const bson_t *filter,
                                 const bson_t *opts, auth_pack_fn pack,
                                 void *arg) {
        char errstr[256];
        store_err_t err =
                rt_reply_list(ctx, key, coll, filter, opts, AUTH_LIST_MAX, pack,
                              arg, errstr, sizeof(errstr));
        return err ? auth_store_failed(ctx, err, errstr) : HANDLER_OK;
}

void auth_emit(rt_ctx_t *ctx, const char *type, const char *key, size_t n,
               ...) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        va_list ap;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, n);
        va_start(ap, n);
        for (size_t i = 0; i < 2 * n; i++)
                codec_pack_str(&pk, va_arg(ap, const char *));
        va_end(ap);
        rt_emit(ctx, type, slice_of(key), &sb);
        msgpack_sbuffer_destroy(&sb);
}

/* ---------------------------------------------------------------------------
 * Lookups
 * ------------------------------------------------------------------------ */

store_err_t auth_find_user(auth_state_t *st, slice_t id, bson_t *out,
                           char *errstr, size_t errlen) {
        bson_t filter = BSON_INITIALIZER;
        store_err_t err;
        bson_append_utf8(&filter, "_id", 3, id.ptr ? id.ptr : "", (int)id.len);
        err = store_find_one(st->store, "auth", "users", &filter, NULL, out,
                             errstr, errlen);
        bson_destroy(&filter);
        return err;
}

store_err_t auth_find_user_by_email(auth_state_t *st, const char *email,
                                    bson_t *out, char *errstr, size_t errlen) {
        bson_t filter = BSON_INITIALIZER;
        store_err_t err;
        BSON_APPEND_UTF8(&filter, "email", email);
        err = store_find_one(st->store, "auth", "users", &filter, NULL, out,
                             errstr, errlen);
        bson_destroy(&filter);
        return err;
}

schema_role_t auth_member_role(auth_state_t *st, const char *org_id,
                               const char *user_id, store_err_t *err) {
        char id[2 * AUTH_ID_TEXT + 2], errstr[256];
        bson_t filter = BSON_INITIALIZER, doc;
        const char *role;
        schema_role_t r = SCHEMA_ROLE_NONE;

        snprintf(id, sizeof(id), "%s|%s", org_id, user_id);
        BSON_APPEND_UTF8(&filter, "_id", id);
        *err = store_find_one(st->store, "auth", "memberships", &filter, NULL,
                              &doc, errstr, sizeof(errstr));
        bson_destroy(&filter);
        if (*err == STORE_NOT_FOUND) {
                *err = STORE_OK;
                return SCHEMA_ROLE_NONE;
        }
        if (*err)
                return SCHEMA_ROLE_NONE;
        role = auth_bson_str(&doc, "role");
        if (role)
                r = schema_role_parse(role, strlen(role));
        bson_destroy(&doc);
        return r;
}

store_err_t auth_org_insert(auth_state_t *st, const char *org_id,
                            const char *name, const char *owner_id,
                            char *errstr, size_t errlen) {
        bson_t org = BSON_INITIALIZER, member = BSON_INITIALIZER;
        char id[2 * AUTH_ID_TEXT + 2];
        int64_t now = (int64_t)clock_wall_ms();
        store_err_t err;

        BSON_APPEND_UTF8(&org, "_id", org_id);
        BSON_APPEND_UTF8(&org, "name", name);
        BSON_APPEND_UTF8(&org, "created_by", owner_id);
        BSON_APPEND_DATE_TIME(&org, "created_at", now);
        err = store_insert(st->store, "auth", "orgs", &org, errstr, errlen);
        bson_destroy(&org);
        if (err && err != STORE_DUPLICATE)
                return err;
        snprintf(id, sizeof(id), "%s|%s", org_id, owner_id);
        BSON_APPEND_UTF8(&member, "_id", id);
        BSON_APPEND_UTF8(&member, "org_id", org_id);
        BSON_APPEND_UTF8(&member, "user_id", owner_id);
        BSON_APPEND_UTF8(&member, "role", "owner");
        BSON_APPEND_DATE_TIME(&member, "created_at", now);
        err = store_insert(st->store, "auth", "memberships", &member, errstr,
                           errlen);
        bson_destroy(&member);
        return err == STORE_DUPLICATE ? STORE_OK : err;
}

/* ---------------------------------------------------------------------------
 * Single-use secrets
 * ------------------------------------------------------------------------ */

store_err_t auth_token_create(auth_state_t *st, const char *kind,
                              const char *user_id, int ttl_s,
                              const bson_t *extra,
                              char secret[AUTH_SECRET_TEXT], char *errstr,
                              size_t errlen) {
        char hash[AUTH_HASH_HEX];
        bson_t doc = BSON_INITIALIZER;
        int64_t now = (int64_t)clock_wall_ms();
        store_err_t err;
        auth_random_secret(secret);
        auth_sha256_hex(slice_of(secret), hash);
        BSON_APPEND_UTF8(&doc, "_id", hash);
        BSON_APPEND_UTF8(&doc, "kind", kind);
        BSON_APPEND_UTF8(&doc, "user_id", user_id ? user_id : "");
        BSON_APPEND_DATE_TIME(&doc, "created_at", now);
        BSON_APPEND_DATE_TIME(&doc, "expires_at", now + (int64_t)ttl_s * 1000);
        if (extra)
                bson_concat(&doc, extra);
        err = store_insert(st->store, "auth", "tokens", &doc, errstr, errlen);
        bson_destroy(&doc);
        return err;
}

store_err_t auth_token_consume(auth_state_t *st, slice_t by, const char *kind,
                               slice_t secret, bson_t *out, char *errstr,
                               size_t errlen) {
        char hash[AUTH_HASH_HEX];
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, gt,
               or, unused, mine;
        store_err_t err;
        int64_t now = (int64_t)clock_wall_ms();

        if (secret.len == 0 || secret.len > 128)
                return STORE_NOT_FOUND;
        auth_sha256_hex(secret, hash);
        /* Mark it used only if it is usable: the update is the atomic test,
         * so two uses cannot both succeed; the same command, delivered
         * again after a crash, may use it again. */
        BSON_APPEND_UTF8(&filter, "_id", hash);
        BSON_APPEND_UTF8(&filter, "kind", kind);
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "expires_at", &gt);
        BSON_APPEND_DATE_TIME(&gt, "$gt", now);
        bson_append_document_end(&filter, &gt);
        BSON_APPEND_ARRAY_BEGIN(&filter, "$or", & or);
        BSON_APPEND_DOCUMENT_BEGIN(& or, "0", &unused);
        BSON_APPEND_NULL(&unused, "used_at");
        bson_append_document_end(& or, &unused);
        BSON_APPEND_DOCUMENT_BEGIN(& or, "1", &mine);
        bson_append_utf8(&mine, "used_by", 7, by.ptr ? by.ptr : "",
                         (int)by.len);
        bson_append_document_end(& or, &mine);
        bson_append_array_end(&filter, & or);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_DATE_TIME(&set, "used_at", now);
        bson_append_utf8(&set, "used_by", 7, by.ptr ? by.ptr : "", (int)by.len);
        bson_append_document_end(&update, &set);
        err = store_update_one(st->store, "auth", "tokens", &filter, &update,
                               false, errstr, errlen);
        bson_destroy(&update);
        bson_destroy(&filter);
        if (err)
                return err;
        bson_init(&filter);
        BSON_APPEND_UTF8(&filter, "_id", hash);
        err = store_find_one(st->store, "auth", "tokens", &filter, NULL, out,
                             errstr, errlen);
        bson_destroy(&filter);
        return err;
}

static const store_index_t common_indexes[] = {
        {"users", "email_unique", "email", true, -1},
        {"tokens", "expires_at_ttl", "expires_at", false, 0},
        {NULL},
};

store_err_t auth_common_indexes(auth_state_t *st, char *errstr, size_t errlen) {
        return store_ensure_indexes(st->store, "auth", common_indexes, errstr,
                                    errlen);
}
