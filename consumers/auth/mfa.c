/*
 * mfa.c - the second factor: TOTP enrolment, confirmation, the login's
 * challenge and its verification, recovery codes, disabling, status.
 *
 * The user's document holds the state (auth_internal.h):
 *   mfa: {enabled, secret, pending_secret, pending_at,
 *         recovery_codes: [sha256 hex], last_step, failures, enabled_at}
 * Enrolment writes a pending secret; a code from it confirms the enrolment,
 * which moves it to `secret` and issues ten recovery codes, shown once and
 * stored only as hashes. A login whose password was right answers 401 with
 * a single-use challenge (a `tokens` record of kind "mfa_challenge"); the
 * challenge and a code, or a recovery code, then start the session.
 *
 * A TOTP code is good once: `last_step` remembers the latest step used, and
 * the update that records a step only matches while the stored one is
 * lower, so two uses of one code race in the store and one loses. Recovery
 * codes are removed by an update that only matches while the hash is there.
 * Wrong second factors count as failed logins (failed_logins, locked_until,
 * the same rule as the password in auth.c; see mfa__failed).
 *
 * The secrets are stored as base32 text: TOTP needs the key itself, so
 * unlike passwords it cannot be hashed. Codes, secrets and recovery codes
 * are never logged.
 */
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth_internal.h"
#include "codec.h"
#include "log.h"
#include "msgid.h"
#include "totp.h"

#define MFA_WINDOW 1 /* steps accepted either side of now */
#define MFA_RECOVERY_COUNT 10
#define MFA_RECOVERY_CHARS 12
#define MFA_RECOVERY_TEXT 15 /* xxxx-xxxx-xxxx and a NUL */
#define MFA_URI_MAX 1024
#define MFA_CHALLENGE_KIND "mfa_challenge"

/* No 0/o, 1/l/i: codes people copy from paper. 31 characters, drawn with
 * rejection sampling so each is equally likely (59 bits per code). */
static const char mfa_alphabet[] = "23456789abcdefghjkmnpqrstuvwxyz";
#define MFA_ALPHABET_LEN (sizeof(mfa_alphabet) - 1)

/* ---------------------------------------------------------------------------
 * The caller and the state
 * ------------------------------------------------------------------------ */

/* What the user document says of MFA. Strings point into the document. */
typedef struct mfa_view {
        bool enabled;
        const char *secret;  /* base32, or NULL */
        const char *pending; /* base32, or NULL */
        int64_t last_step;   /* TOTP_NO_STEP when none */
        size_t codes_left;
} mfa_view_t;

static void mfa__view(const bson_t *user, mfa_view_t *v) {
        bson_iter_t it, codes;
        memset(v, 0, sizeof(*v));
        v->enabled = auth_bson_bool(user, "mfa.enabled");
        v->secret = auth_bson_str(user, "mfa.secret");
        v->pending = auth_bson_str(user, "mfa.pending_secret");
        v->last_step = auth_bson_int(user, "mfa.last_step", TOTP_NO_STEP);
        if (bson_iter_init(&it, user) &&
            bson_iter_find_descendant(&it, "mfa.recovery_codes", &it) &&
            BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &codes))
                while (bson_iter_next(&codes))
                        if (BSON_ITER_HOLDS_UTF8(&codes))
                                v->codes_left++;
}

/* The authenticated caller: ids from the envelope, re-checked here. */
typedef struct mfa_caller {
        char user_id[AUTH_ID_TEXT];
        char org_id[AUTH_ID_TEXT];
        bson_t user;
} mfa_caller_t;

/*
 * Load the caller named by the envelope: the edge checked the token, but a
 * consumer trusts no one, so the user must still exist and still be a
 * member of the token's tenant. True with c->user to bson_destroy();
 * false with the reply set (and *res the handler's result).
 */
static bool mfa__caller(rt_ctx_t *ctx, mfa_caller_t *c, handler_result_t *res) {
        auth_state_t *st = rt_state(ctx);
        const env_t *env = rt_env(ctx);
        char errstr[256];
        schema_role_t role;
        store_err_t err;

        *res = HANDLER_OK;
        if (env->user.len != MSGID_TEXT_LEN ||
            env->tenant.len != MSGID_TEXT_LEN ||
            memchr(env->user.ptr, '\0', env->user.len) ||
            memchr(env->tenant.ptr, '\0', env->tenant.len)) {
                rt_reply_problem(ctx, 401, "Unauthorized",
                                 "no authenticated user");
                return false;
        }
        snprintf(c->user_id, sizeof(c->user_id), "%.*s", (int)env->user.len,
                 env->user.ptr);
        snprintf(c->org_id, sizeof(c->org_id), "%.*s", (int)env->tenant.len,
                 env->tenant.ptr);
        role = auth_member_role(st, c->org_id, c->user_id, &err);
        if (err) {
                *res = auth_store_failed(ctx, err, "membership lookup failed");
                return false;
        }
        if (role == SCHEMA_ROLE_NONE) {
                rt_reply_problem(ctx, 403, "Forbidden",
                                 "not a member of this organisation");
                return false;
        }
        err = auth_find_user(st, slice_of(c->user_id), &c->user, errstr,
                             sizeof(errstr));
        if (err == STORE_NOT_FOUND) {
                rt_reply_problem(ctx, 401, "Unauthorized",
                                 "the account no longer exists");
                return false;
        }
        if (err) {
                *res = auth_store_failed(ctx, err, errstr);
                return false;
        }
        return true;
}

/* ---------------------------------------------------------------------------
 * Codes
 * ------------------------------------------------------------------------ */

/* Check a TOTP code against a base32 secret: TOTP_OK and the step it
 * matched, or TOTP_BAD_CODE (also for a secret that does not decode). */
static totp_err_t mfa__check_totp(const char *secret_b32, slice_t code,
                                  int64_t last_step, int64_t *step) {
        uint8_t key[TOTP_KEY_MAX];
        size_t key_len = 0;
        totp_err_t err;

        if (!secret_b32 ||
            totp_base32_decode(slice_of(secret_b32), key, sizeof(key),
                               &key_len) != TOTP_OK ||
            key_len == 0) {
                log_error("stored MFA secret is unusable");
                return TOTP_BAD_CODE;
        }
        err = totp_verify(key, key_len, code, (int64_t)time(NULL), MFA_WINDOW,
                          last_step, step);
        OPENSSL_cleanse(key, sizeof(key));
        if (err != TOTP_OK && err != TOTP_BAD_CODE)
                log_error("TOTP check failed: %s", totp_strerror(err));
        return err == TOTP_OK ? TOTP_OK : TOTP_BAD_CODE;
}

/* A new recovery code "xxxx-xxxx-xxxx". False when there is no randomness. */
static bool mfa__recovery_new(char out[MFA_RECOVERY_TEXT]) {
        uint8_t rnd[32];
        size_t n = 0, o = 0;
        char chars[MFA_RECOVERY_CHARS];

        while (n < MFA_RECOVERY_CHARS) {
                if (RAND_bytes(rnd, sizeof(rnd)) != 1)
                        return false;
                for (size_t i = 0; i < sizeof(rnd) && n < MFA_RECOVERY_CHARS;
                     i++) {
                        /* 248 = 8 * 31: above it, % would favour some. */
                        if (rnd[i] >= 8 * MFA_ALPHABET_LEN)
                                continue;
                        chars[n++] = mfa_alphabet[rnd[i] % MFA_ALPHABET_LEN];
                }
        }
        for (size_t i = 0; i < MFA_RECOVERY_CHARS; i++) {
                if (i == 4 || i == 8)
                        out[o++] = '-';
                out[o++] = chars[i];
        }
        out[o] = '\0';
        OPENSSL_cleanse(rnd, sizeof(rnd));
        OPENSSL_cleanse(chars, sizeof(chars));
        return true;
}

/*
 * The canonical form of a recovery code as typed: case folded, dashes and
 * spaces dropped, then "xxxx-xxxx-xxxx". False when it cannot be one of
 * ours (wrong length or a character outside the alphabet).
 */
static bool mfa__recovery_normalize(slice_t in, char out[MFA_RECOVERY_TEXT]) {
        char chars[MFA_RECOVERY_CHARS];
        size_t n = 0, o = 0;

        for (size_t i = 0; i < in.len; i++) {
                char c = in.ptr[i];
                if (c == '-' || c == ' ')
                        continue;
                if (c >= 'A' && c <= 'Z')
                        c = (char)(c - 'A' + 'a');
                if (n == MFA_RECOVERY_CHARS || c == '\0' ||
                    !memchr(mfa_alphabet, c, MFA_ALPHABET_LEN))
                        return false;
                chars[n++] = c;
        }
        if (n != MFA_RECOVERY_CHARS)
                return false;
        for (size_t i = 0; i < MFA_RECOVERY_CHARS; i++) {
                if (i == 4 || i == 8)
                        out[o++] = '-';
                out[o++] = chars[i];
        }
        out[o] = '\0';
        return true;
}

/* The hash under which a typed recovery code would be stored, or false. */
static bool mfa__recovery_hash(slice_t typed, char hash[AUTH_HASH_HEX]) {
        char canon[MFA_RECOVERY_TEXT];
        bool ok = mfa__recovery_normalize(typed, canon);
        if (ok)
                auth_sha256_hex(slice_of(canon), hash);
        OPENSSL_cleanse(canon, sizeof(canon));
        return ok;
}

/* ---------------------------------------------------------------------------
 * Store updates
 * ------------------------------------------------------------------------ */

/* {"_id": user_id, "mfa.enabled": true, <step or code condition>}: the
 * filter under which a second factor is consumed. With a step, only while
 * the stored last_step is lower (or absent); with a recovery code hash, only
 * while that hash is still listed. */
static bson_t *mfa__consume_filter(const char *user_id, int64_t step,
                                   const char *code_hash) {
        if (code_hash)
                return BCON_NEW("_id", BCON_UTF8(user_id), "mfa.enabled",
                                BCON_BOOL(true), "mfa.recovery_codes",
                                BCON_UTF8(code_hash));
        return BCON_NEW("_id", BCON_UTF8(user_id), "mfa.enabled",
                        BCON_BOOL(true), "$or", "[", "{", "mfa.last_step", "{",
                        "$lt", BCON_INT64(step), "}", "}", "{", "mfa.last_step",
                        "{", "$exists", BCON_BOOL(false), "}", "}", "]");
}

/*
 * Consume a second factor of an enabled user and, on the same update, clear
 * the failure count: a TOTP step (recorded as last_step) or a recovery code
 * (removed). STORE_NOT_FOUND when it was used meanwhile (a replay) or MFA
 * was turned off.
 */
static store_err_t mfa__consume(auth_state_t *st, const char *user_id,
                                int64_t step, const char *code_hash,
                                char *errstr, size_t errlen) {
        bson_t *filter = mfa__consume_filter(user_id, step, code_hash);
        bson_t *update;
        store_err_t err;

        if (code_hash)
                update = BCON_NEW("$pull", "{", "mfa.recovery_codes",
                                  BCON_UTF8(code_hash), "}", "$set", "{",
                                  "failed_logins", BCON_INT32(0),
                                  "mfa.failures", BCON_INT32(0), "}");
        else
                update =
                        BCON_NEW("$set", "{", "mfa.last_step", BCON_INT64(step),
                                 "failed_logins", BCON_INT32(0), "mfa.failures",
                                 BCON_INT32(0), "}");
        err = store_update_one(st->store, "auth", "users", filter, update,
                               false, errstr, errlen);
        bson_destroy(update);
        bson_destroy(filter);
        return err;
}

/*
 * Count a wrong second factor as a failed login, and lock the account as
 * login does when the count reaches the limit. The increment is one atomic
 * update; the lock follows from the count read back.
 *
 * A second counter, mfa.failures, is cleared only by a right second factor:
 * login clears failed_logins once the password is right, before the second
 * factor is asked for, so failed_logins alone would never reach the limit
 * for someone who knows the password and guesses codes, one login each.
 */
static store_err_t mfa__failed(rt_ctx_t *ctx, const char *user_id, char *errstr,
                               size_t errlen) {
        auth_state_t *st = rt_state(ctx);
        bson_t *filter = BCON_NEW("_id", BCON_UTF8(user_id));
        bson_t *update = BCON_NEW("$inc", "{", "failed_logins", BCON_INT32(1),
                                  "mfa.failures", BCON_INT32(1), "}");
        bson_t user;
        int64_t failures, mfa_failures;
        store_err_t err;

        err = store_update_one(st->store, "auth", "users", filter, update,
                               false, errstr, errlen);
        bson_destroy(update);
        if (!err)
                err = store_find_one(st->store, "auth", "users", filter, NULL,
                                     &user, errstr, errlen);
        if (err) {
                bson_destroy(filter);
                return err == STORE_NOT_FOUND ? STORE_OK : err;
        }
        failures = auth_bson_int(&user, "failed_logins", 0);
        mfa_failures = auth_bson_int(&user, "mfa.failures", 0);
        if (mfa_failures > failures)
                failures = mfa_failures;
        bson_destroy(&user);
        if (failures >= st->set->login_max_failures) {
                update = BCON_NEW(
                        "$set", "{", "failed_logins", BCON_INT32(0),
                        "mfa.failures", BCON_INT32(0), "locked_until",
                        BCON_DATE_TIME((int64_t)clock_wall_ms() +
                                       (int64_t)st->set->login_lock_s * 1000),
                        "}");
                err = store_update_one(st->store, "auth", "users", filter,
                                       update, false, errstr, errlen);
                bson_destroy(update);
                if (!err) {
                        log_warn("account %s locked after %lld failed "
                                 "second factors",
                                 user_id, (long long)failures);
                        auth_emit(ctx, "auth.user.locked", user_id, 1,
                                  "user_id", user_id);
                }
        }
        bson_destroy(filter);
        return err == STORE_NOT_FOUND ? STORE_OK : err;
}

/* ---------------------------------------------------------------------------
 * Replies
 * ------------------------------------------------------------------------ */

/* True (and the 429 set) when the account is locked now. */
static bool mfa__locked(rt_ctx_t *ctx, const bson_t *user) {
        int64_t until = auth_bson_date(user, "locked_until");
        if (until <= (int64_t)clock_wall_ms())
                return false;
        auth_reply_locked(ctx, until);
        return true;
}

static void mfa__pack_bool(msgpack_packer *pk, const char *key, bool v) {
        codec_pack_str(pk, key);
        if (v)
                msgpack_pack_true(pk);
        else
                msgpack_pack_false(pk);
}

/* ---------------------------------------------------------------------------
 * Login's challenge
 * ------------------------------------------------------------------------ */

handler_result_t auth_mfa_challenge(rt_ctx_t *ctx, const bson_t *user,
                                    const char *org_id) {
        auth_state_t *st = rt_state(ctx);
        const char *user_id = auth_bson_str(user, "_id");
        char secret[AUTH_SECRET_TEXT], errstr[256];
        bson_t extra = BSON_INITIALIZER;
        msgpack_packer *pk;
        store_err_t err;

        if (!user_id || !org_id) {
                bson_destroy(&extra);
                rt_reply_problem(ctx, 500, "Internal error",
                                 "user without an id");
                return HANDLER_PERMANENT;
        }
        BSON_APPEND_UTF8(&extra, "org_id", org_id);
        err = auth_token_create(st, MFA_CHALLENGE_KIND, user_id,
                                st->set->mfa_challenge_ttl_s, &extra, secret,
                                errstr, sizeof(errstr));
        bson_destroy(&extra);
        if (err) {
                OPENSSL_cleanse(secret, sizeof(secret));
                return auth_store_failed(ctx, err, errstr);
        }
        pk = rt_reply(ctx, 401);
        msgpack_pack_map(pk, 7);
        codec_pack_str(pk, "type");
        codec_pack_str(pk, "about:blank");
        codec_pack_str(pk, "title");
        codec_pack_str(pk, "MFA required");
        codec_pack_str(pk, "status");
        msgpack_pack_int(pk, 401);
        codec_pack_str(pk, "detail");
        codec_pack_str(pk, "the password was right; send the challenge with a "
                           "code from the authenticator app (or a recovery "
                           "code) to POST /api/mfa/verify");
        mfa__pack_bool(pk, "mfa_required", true);
        codec_pack_str(pk, "challenge");
        codec_pack_str(pk, secret);
        codec_pack_str(pk, "expires_in");
        msgpack_pack_int(pk, st->set->mfa_challenge_ttl_s);
        OPENSSL_cleanse(secret, sizeof(secret));
        log_info("MFA challenge issued for user %s", user_id);
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * Handlers
 * ------------------------------------------------------------------------ */

handler_result_t auth_mfa_enroll(rt_ctx_t *ctx, const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        uint8_t key[TOTP_SECRET_LEN];
        char secret[TOTP_SECRET_B32], uri[MFA_URI_MAX], errstr[256];
        const char *email;
        mfa_caller_t c;
        mfa_view_t v;
        bson_t *filter = NULL, *update = NULL;
        msgpack_packer *pk;
        store_err_t err;
        handler_result_t res = HANDLER_OK;
        (void)body;

        if (!mfa__caller(ctx, &c, &res))
                return res;
        mfa__view(&c.user, &v);
        if (v.enabled) {
                rt_reply_problem(ctx, 409, "Conflict",
                                 "MFA is already enabled; disable it before "
                                 "enrolling another device");
                goto out;
        }
        email = auth_bson_str(&c.user, "email");
        if (RAND_bytes(key, sizeof(key)) != 1 ||
            totp_base32_encode(key, sizeof(key), secret, sizeof(secret)) ||
            totp_uri(slice_of(st->set->mfa_issuer),
                     slice_of(email ? email : c.user_id), secret, uri,
                     sizeof(uri))) {
                rt_reply_problem(ctx, 500, "Internal error",
                                 "the secret could not be made");
                res = HANDLER_PERMANENT;
                goto out;
        }
        /* Only while MFA is still off: an enabled secret is never replaced
         * by a pending one. A new enrolment replaces an unconfirmed one. */
        filter = BCON_NEW("_id", BCON_UTF8(c.user_id), "mfa.enabled", "{",
                          "$ne", BCON_BOOL(true), "}");
        update = BCON_NEW("$set", "{", "mfa.pending_secret", BCON_UTF8(secret),
                          "mfa.pending_at",
                          BCON_DATE_TIME((int64_t)clock_wall_ms()), "}");
        err = store_update_one(st->store, "auth", "users", filter, update,
                               false, errstr, sizeof(errstr));
        if (err == STORE_NOT_FOUND) {
                rt_reply_problem(ctx, 409, "Conflict",
                                 "MFA is already enabled");
                goto out;
        }
        if (err) {
                res = auth_store_failed(ctx, err, errstr);
                goto out;
        }
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 2);
        codec_pack_str(pk, "secret");
        codec_pack_str(pk, secret);
        codec_pack_str(pk, "otpauth_uri");
        codec_pack_str(pk, uri);
        log_info("MFA enrolment started for user %s", c.user_id);
out:
        OPENSSL_cleanse(key, sizeof(key));
        OPENSSL_cleanse(secret, sizeof(secret));
        OPENSSL_cleanse(uri, sizeof(uri));
        if (update)
                bson_destroy(update);
        if (filter)
                bson_destroy(filter);
        bson_destroy(&c.user);
        return res;
}

handler_result_t auth_mfa_confirm(rt_ctx_t *ctx, const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        slice_t code = codec_map_str(body, "code");
        char plain[MFA_RECOVERY_COUNT][MFA_RECOVERY_TEXT];
        char hash[AUTH_HASH_HEX], errstr[256], key[16];
        mfa_caller_t c;
        mfa_view_t v;
        int64_t step = 0;
        bson_t *filter = NULL, update = BSON_INITIALIZER, set, unset, codes;
        msgpack_packer *pk;
        store_err_t err;
        handler_result_t res = HANDLER_OK;

        memset(plain, 0, sizeof(plain));
        if (!mfa__caller(ctx, &c, &res)) {
                bson_destroy(&update);
                return res;
        }
        mfa__view(&c.user, &v);
        if (v.enabled) {
                rt_reply_problem(ctx, 409, "Conflict",
                                 "MFA is already enabled");
                goto out;
        }
        if (!v.pending) {
                rt_reply_problem(ctx, 409, "Conflict",
                                 "no enrolment to confirm: start one with "
                                 "POST /api/mfa/enroll");
                goto out;
        }
        if (mfa__check_totp(v.pending, code, v.last_step, &step) != TOTP_OK) {
                rt_reply_problem(ctx, 422, "Unprocessable Content",
                                 "the code is not valid: enter the current "
                                 "code of the app (and check its clock)");
                goto out;
        }
        for (size_t i = 0; i < MFA_RECOVERY_COUNT; i++) {
                if (!mfa__recovery_new(plain[i])) {
                        rt_reply_problem(ctx, 500, "Internal error",
                                         "recovery codes could not be made");
                        res = HANDLER_PERMANENT;
                        goto out;
                }
        }
        /* The pending secret becomes the secret, only if it is still the one
         * the code was checked against and MFA is still off. */
        filter = BCON_NEW("_id", BCON_UTF8(c.user_id), "mfa.pending_secret",
                          BCON_UTF8(v.pending), "mfa.enabled", "{", "$ne",
                          BCON_BOOL(true), "}");
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_BOOL(&set, "mfa.enabled", true);
        BSON_APPEND_UTF8(&set, "mfa.secret", v.pending);
        BSON_APPEND_INT64(&set, "mfa.last_step", step);
        BSON_APPEND_DATE_TIME(&set, "mfa.enabled_at", (int64_t)clock_wall_ms());
        BSON_APPEND_ARRAY_BEGIN(&set, "mfa.recovery_codes", &codes);
        for (size_t i = 0; i < MFA_RECOVERY_COUNT; i++) {
                snprintf(key, sizeof(key), "%zu", i);
                auth_sha256_hex(slice_of(plain[i]), hash);
                BSON_APPEND_UTF8(&codes, key, hash);
        }
        bson_append_array_end(&set, &codes);
        bson_append_document_end(&update, &set);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$unset", &unset);
        BSON_APPEND_UTF8(&unset, "mfa.pending_secret", "");
        BSON_APPEND_UTF8(&unset, "mfa.pending_at", "");
        bson_append_document_end(&update, &unset);
        err = store_update_one(st->store, "auth", "users", filter, &update,
                               false, errstr, sizeof(errstr));
        if (err == STORE_NOT_FOUND) {
                rt_reply_problem(ctx, 409, "Conflict",
                                 "the enrolment changed meanwhile: enrol "
                                 "again");
                goto out;
        }
        if (err) {
                res = auth_store_failed(ctx, err, errstr);
                goto out;
        }
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 2);
        mfa__pack_bool(pk, "enabled", true);
        codec_pack_str(pk, "recovery_codes");
        msgpack_pack_array(pk, MFA_RECOVERY_COUNT);
        for (size_t i = 0; i < MFA_RECOVERY_COUNT; i++)
                codec_pack_str(pk, plain[i]);
        auth_emit(ctx, "auth.mfa.enabled", c.org_id, 2, "user_id", c.user_id,
                  "tenant_id", c.org_id);
        log_info("MFA enabled for user %s", c.user_id);
out:
        OPENSSL_cleanse(plain, sizeof(plain));
        if (filter)
                bson_destroy(filter);
        bson_destroy(&update);
        bson_destroy(&c.user);
        return res;
}

handler_result_t auth_mfa_verify(rt_ctx_t *ctx, const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        slice_t challenge = codec_map_str(body, "challenge");
        slice_t code = codec_map_str(body, "code");
        slice_t recovery = codec_map_str(body, "recovery_code");
        bool by_recovery = recovery.ptr != NULL;
        char user_id[AUTH_ID_TEXT], org_id[AUTH_ID_TEXT], hash[AUTH_HASH_HEX];
        char errstr[256], left[24];
        const char *s;
        bson_t rec, user;
        mfa_view_t v;
        int64_t step = 0;
        bool good = false;
        auth_tokens_t tokens;
        store_err_t err;
        handler_result_t res;

        if ((code.ptr != NULL) == by_recovery) {
                /* A rule across fields the schema cannot state. */
                rt_reply_problem(ctx, 422, "Unprocessable Content",
                                 "give either code or recovery_code");
                return HANDLER_OK;
        }
        /*
         * The challenge is used up by this attempt, right or wrong: one
         * password check buys one guess. (Should the store fail after this
         * point, the retry finds the challenge used and answers 401; the
         * user logs in again.)
         */
        err = auth_token_consume(st, rt_env(ctx)->id, MFA_CHALLENGE_KIND,
                                 challenge, &rec, errstr, sizeof(errstr));
        if (err == STORE_NOT_FOUND) {
                rt_reply_problem(ctx, 401, "Unauthorized",
                                 "the challenge is unknown, expired or "
                                 "already used: log in again");
                return HANDLER_OK;
        }
        if (err)
                return auth_store_failed(ctx, err, errstr);
        s = auth_bson_str(&rec, "user_id");
        snprintf(user_id, sizeof(user_id), "%s", s ? s : "");
        s = auth_bson_str(&rec, "org_id");
        snprintf(org_id, sizeof(org_id), "%s", s ? s : "");
        bson_destroy(&rec);
        if (strlen(user_id) != MSGID_TEXT_LEN ||
            strlen(org_id) != MSGID_TEXT_LEN) {
                rt_reply_problem(ctx, 401, "Unauthorized",
                                 "the challenge is not valid: log in again");
                return HANDLER_OK;
        }
        err = auth_find_user(st, slice_of(user_id), &user, errstr,
                             sizeof(errstr));
        if (err == STORE_NOT_FOUND) {
                rt_reply_problem(ctx, 401, "Unauthorized",
                                 "the challenge is not valid: log in again");
                return HANDLER_OK;
        }
        if (err)
                return auth_store_failed(ctx, err, errstr);
        mfa__view(&user, &v);
        if (!v.enabled) {
                /* Turned off since the login: that login asked for it. */
                bson_destroy(&user);
                rt_reply_problem(ctx, 401, "Unauthorized",
                                 "MFA is no longer enabled: log in again");
                return HANDLER_OK;
        }
        if (mfa__locked(ctx, &user)) {
                bson_destroy(&user);
                return HANDLER_OK;
        }

        if (by_recovery) {
                good = mfa__recovery_hash(recovery, hash);
                if (good)
                        err = mfa__consume(st, user_id, 0, hash, errstr,
                                           sizeof(errstr));
        } else {
                good = mfa__check_totp(v.secret, code, v.last_step, &step) ==
                       TOTP_OK;
                if (good)
                        err = mfa__consume(st, user_id, step, NULL, errstr,
                                           sizeof(errstr));
        }
        if (good && err && err != STORE_NOT_FOUND) {
                bson_destroy(&user);
                return auth_store_failed(ctx, err, errstr);
        }
        if (!good || err == STORE_NOT_FOUND) {
                bson_destroy(&user);
                /* The challenge is gone already, so a retry after a store
                 * outage could not count this failure either: answer now. */
                err = mfa__failed(ctx, user_id, errstr, sizeof(errstr));
                if (err)
                        log_warn("failed second factor not counted: %s",
                                 errstr);
                auth_emit(ctx, "auth.mfa.failed", org_id, 2, "user_id", user_id,
                          "method", by_recovery ? "recovery_code" : "totp");
                rt_reply_problem(ctx, 401, "Unauthorized",
                                 by_recovery
                                         ? "the recovery code is not valid "
                                           "or was used already; this "
                                           "challenge is used up: log in "
                                           "again for a new one"
                                         : "the code is not valid or was "
                                           "used already; this challenge is "
                                           "used up: log in again for a new "
                                           "one");
                return HANDLER_OK;
        }

        res = auth_session_start(ctx, &user, org_id, &tokens);
        bson_destroy(&user);
        if (res != HANDLER_OK || !tokens.access)
                return res;
        auth_pack_tokens(rt_reply(ctx, 200), &tokens);
        auth_tokens_free(&tokens);
        if (by_recovery) {
                snprintf(left, sizeof(left), "%zu",
                         v.codes_left ? v.codes_left - 1 : 0);
                auth_emit(ctx, "auth.mfa.recovery_code_used", org_id, 2,
                          "user_id", user_id, "codes_left", left);
                log_info("recovery code used by user %s (%s left)", user_id,
                         left);
        }
        return HANDLER_OK;
}

handler_result_t auth_mfa_disable(rt_ctx_t *ctx, const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        slice_t password = codec_map_str(body, "password");
        slice_t code = codec_map_str(body, "code");
        slice_t recovery = codec_map_str(body, "recovery_code");
        bool by_recovery = recovery.ptr != NULL;
        char hash[AUTH_HASH_HEX], errstr[256];
        mfa_caller_t c;
        mfa_view_t v;
        int64_t step = 0;
        bool good;
        bson_t *filter = NULL, *update = NULL;
        store_err_t err;
        handler_result_t res = HANDLER_OK;

        if ((code.ptr != NULL) == by_recovery) {
                /* A rule across fields the schema cannot state. */
                rt_reply_problem(ctx, 422, "Unprocessable Content",
                                 "give either code or recovery_code");
                return HANDLER_OK;
        }
        if (!mfa__caller(ctx, &c, &res))
                return res;
        mfa__view(&c.user, &v);
        if (!v.enabled) {
                rt_reply_problem(ctx, 409, "Conflict", "MFA is not enabled");
                goto out;
        }
        if (mfa__locked(ctx, &c.user))
                goto out;
        /* Re-authentication: the password and a second factor, both. A
         * stolen access token alone must not turn MFA off. */
        good = auth_password_verify(auth_bson_str(&c.user, "password_hash"),
                                    password);
        if (good && by_recovery)
                good = mfa__recovery_hash(recovery, hash);
        else if (good)
                good = mfa__check_totp(v.secret, code, v.last_step, &step) ==
                       TOTP_OK;
        if (good) {
                /* Consume the factor and drop MFA in one update, so a code
                 * used meanwhile (or a second disable) finds nothing. */
                filter = mfa__consume_filter(c.user_id, step,
                                             by_recovery ? hash : NULL);
                update = BCON_NEW("$unset", "{", "mfa", BCON_UTF8(""), "}",
                                  "$set", "{", "failed_logins", BCON_INT32(0),
                                  "}");
                err = store_update_one(st->store, "auth", "users", filter,
                                       update, false, errstr, sizeof(errstr));
                if (err && err != STORE_NOT_FOUND) {
                        res = auth_store_failed(ctx, err, errstr);
                        goto out;
                }
                good = err == STORE_OK;
        }
        if (!good) {
                err = mfa__failed(ctx, c.user_id, errstr, sizeof(errstr));
                if (err) {
                        res = auth_store_failed(ctx, err, errstr);
                        goto out;
                }
                rt_reply_problem(ctx, 401, "Unauthorized",
                                 "the password or the code is not valid");
                goto out;
        }
        {
                msgpack_packer *pk = rt_reply(ctx, 200);
                msgpack_pack_map(pk, 1);
                mfa__pack_bool(pk, "enabled", false);
        }
        auth_emit(ctx, "auth.mfa.disabled", c.org_id, 2, "user_id", c.user_id,
                  "tenant_id", c.org_id);
        log_info("MFA disabled for user %s", c.user_id);
out:
        if (update)
                bson_destroy(update);
        if (filter)
                bson_destroy(filter);
        bson_destroy(&c.user);
        return res;
}

handler_result_t auth_mfa_status(rt_ctx_t *ctx, const msgpack_object *body) {
        mfa_caller_t c;
        mfa_view_t v;
        msgpack_packer *pk;
        handler_result_t res;
        (void)body;

        if (!mfa__caller(ctx, &c, &res))
                return res;
        mfa__view(&c.user, &v);
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 2);
        mfa__pack_bool(pk, "enabled", v.enabled);
        codec_pack_str(pk, "recovery_codes_left");
        msgpack_pack_uint64(pk, v.enabled ? v.codes_left : 0);
        bson_destroy(&c.user);
        return HANDLER_OK;
}
