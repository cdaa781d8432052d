/*
 * recovery.c - email verification, password reset and password change.
 *
 * Both links mailed from here carry a single-use secret made by
 * auth_token_create (kind "verify" or "reset"; only its hash is stored) and
 * are spent with auth_token_consume. The mails go through the outbox
 * (mailer.c), so a mail outage never fails the request that wanted one.
 *
 * Forgot-password answers the same 200 whether or not the email belongs to
 * an account, so the route cannot tell which emails exist. A reset signs out
 * every session of the account; a change (knowing the current password)
 * every session but the caller's.
 *
 * Redelivery and retries: a handler that stored its change and then failed
 * on a transient error runs again with the same message id after its token
 * is spent. The user record remembers the message that verified the email
 * (email_verified_by) or set the password (password_reset_by,
 * password_changed_by), so the second run recognises its own work and
 * finishes the rest (revoking sessions, the event, the answer) instead of
 * answering "link used".
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "auth_internal.h"
#include "codec.h"
#include "log.h"
#include "msgid.h"

#define RECOVERY_LINK_MAX 640
#define RECOVERY_TEXT_MAX 2048

static const char recovery__bad_verify[] =
        "this verification link is invalid, was used already or has expired";
static const char recovery__bad_reset[] =
        "this password reset link is invalid, was used already or has expired";

/* ---------------------------------------------------------------------------
 * Mails
 * ------------------------------------------------------------------------ */

/* "<public_url><path>?token=<secret>"; the secret is base64url already. */
static void recovery__link(const auth_settings_t *set, const char *path,
                           const char *secret, char out[RECOVERY_LINK_MAX]) {
        size_t len = strlen(set->public_url);
        while (len && set->public_url[len - 1] == '/')
                len--;
        snprintf(out, RECOVERY_LINK_MAX, "%.*s%s?token=%s", (int)len,
                 set->public_url, path, secret);
}

/* A lifetime in words: "24 hours", "1 hour", "30 minutes". */
static void recovery__lifetime(int ttl_s, char out[32]) {
        if (ttl_s >= 7200 && ttl_s % 3600 == 0)
                snprintf(out, 32, "%d hours", ttl_s / 3600);
        else if (ttl_s == 3600)
                snprintf(out, 32, "1 hour");
        else
                snprintf(out, 32, "%d minutes", (ttl_s + 59) / 60);
}

/*
 * Create a token of kind for user and queue the mail that carries its link.
 * fmt takes the link and the lifetime (two %s). Secrets are wiped from the
 * stack afterwards.
 */
static store_err_t recovery__mail_token(auth_state_t *st, slice_t cmd_id,
                                        const char *kind, const char *user_id,
                                        const char *email, int ttl_s,
                                        const char *path, const char *subject,
                                        const char *fmt, char *errstr,
                                        size_t errlen) {
        char secret[AUTH_SECRET_TEXT], link[RECOVERY_LINK_MAX],
                text[RECOVERY_TEXT_MAX], lifetime[32],
                mail_id[AUTH_MAIL_ID_MAX];
        bson_t extra = BSON_INITIALIZER;
        store_err_t err;

        BSON_APPEND_UTF8(&extra, "email", email);
        err = auth_token_create(st, kind, user_id, ttl_s, &extra, secret,
                                errstr, errlen);
        bson_destroy(&extra);
        if (err)
                return err;
        recovery__link(st->set, path, secret, link);
        recovery__lifetime(ttl_s, lifetime);
        snprintf(text, sizeof(text), fmt, link, lifetime);
        auth_mail_id(cmd_id, kind, mail_id);
        /* Redelivered after its mail was queued: the token made just now is
         * never sent and expires unused; the queued mail's token stands. */
        err = auth_mail_enqueue(st, mail_id, email, subject, text, errstr,
                                errlen);
        OPENSSL_cleanse(secret, sizeof(secret));
        OPENSSL_cleanse(link, sizeof(link));
        OPENSSL_cleanse(text, sizeof(text));
        return err;
}

store_err_t auth_send_verification(auth_state_t *st, slice_t cmd_id,
                                   const bson_t *user, char *errstr,
                                   size_t errlen) {
        const char *user_id = auth_bson_str(user, "_id");
        const char *email = auth_bson_str(user, "email");

        if (!user_id || !email) {
                snprintf(errstr, errlen, "the user record has no id or email");
                return STORE_BAD_REPLY;
        }
        return recovery__mail_token(
                st, cmd_id, "verify", user_id, email, st->set->verify_ttl_s,
                "/verify-email", "Confirm your email address",
                "Welcome to Omnify.\n\n"
                "Please confirm your email address by opening this link:\n\n"
                "%s\n\n"
                "The link works once and expires in %s. If you did not sign "
                "up for Omnify, you can ignore this mail.\n",
                errstr, errlen);
}

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* Answer {key: value}. */
static void recovery__reply_bool(rt_ctx_t *ctx, const char *key, bool value) {
        msgpack_packer *pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 1);
        codec_pack_str(pk, key);
        if (value)
                msgpack_pack_true(pk);
        else
                msgpack_pack_false(pk);
}

/* A link that cannot be used (unknown, used, expired, or for an account or
 * address that is gone): 410, the same for all so nothing leaks. */
static handler_result_t recovery__gone(rt_ctx_t *ctx, const char *detail) {
        rt_reply_problem(ctx, 410, "Gone", detail);
        return HANDLER_OK;
}

/* Well-formed, but a rule the schema cannot state refuses it (the password
 * policy, a new password equal to the old one). */
static handler_result_t recovery__unprocessable(rt_ctx_t *ctx,
                                                const char *detail) {
        rt_reply_problem(ctx, 422, "Unprocessable Content", detail);
        return HANDLER_OK;
}

/* The user whose field `marker` holds this command's message id: the work
 * an earlier run of the same command stored. STORE_NOT_FOUND if none. */
static store_err_t recovery__own_work(rt_ctx_t *ctx, const char *marker,
                                      bson_t *user, char *errstr,
                                      size_t errlen) {
        auth_state_t *st = rt_state(ctx);
        const env_t *env = rt_env(ctx);
        bson_t filter = BSON_INITIALIZER;
        store_err_t err;

        bson_append_utf8(&filter, marker, -1, env->id.ptr, (int)env->id.len);
        err = store_find_one(st->store, "auth", "users", &filter, NULL, user,
                             errstr, errlen);
        bson_destroy(&filter);
        return err;
}

/* Emit `type` {user_id, tenant_id} keyed by the user's tenant. */
static void recovery__emit(rt_ctx_t *ctx, const char *type,
                           const bson_t *user) {
        const char *user_id = auth_bson_str(user, "_id");
        const char *tenant_id = auth_bson_str(user, "tenant_id");
        if (!tenant_id)
                tenant_id = "";
        auth_emit(ctx, type, tenant_id, 2, "user_id", user_id ? user_id : "",
                  "tenant_id", tenant_id);
}

/*
 * Store a new password hash for user: filter is {_id} (plus what must still
 * hold), marker names the field that remembers this command. Resets the
 * login failure count and any lock.
 */
static store_err_t recovery__store_password(rt_ctx_t *ctx, bson_t *filter,
                                            const char *hash,
                                            const char *marker, char *errstr,
                                            size_t errlen) {
        auth_state_t *st = rt_state(ctx);
        const env_t *env = rt_env(ctx);
        bson_t update = BSON_INITIALIZER, set, unset;
        store_err_t err;

        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_UTF8(&set, "password_hash", hash);
        BSON_APPEND_DATE_TIME(&set, "password_changed_at",
                              (int64_t)clock_wall_ms());
        BSON_APPEND_INT64(&set, "failed_logins", 0);
        bson_append_utf8(&set, marker, -1, env->id.ptr, (int)env->id.len);
        bson_append_document_end(&update, &set);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$unset", &unset);
        BSON_APPEND_UTF8(&unset, "locked_until", "");
        bson_append_document_end(&update, &unset);
        err = store_update_one(st->store, "auth", "users", filter, &update,
                               false, errstr, errlen);
        bson_destroy(&update);
        return err;
}

/* ---------------------------------------------------------------------------
 * Email verification
 * ------------------------------------------------------------------------ */

handler_result_t auth_verify_email(rt_ctx_t *ctx, const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        const env_t *env = rt_env(ctx);
        slice_t token = codec_map_str(body, "token");
        bson_t tok, user, filter, update, set;
        const char *user_id, *email, *user_email;
        char errstr[256];
        store_err_t err;
        handler_result_t res = HANDLER_OK;

        err = auth_token_consume(st, rt_env(ctx)->id, "verify", token, &tok,
                                 errstr, sizeof(errstr));
        if (err == STORE_NOT_FOUND) {
                err = recovery__own_work(ctx, "email_verified_by", &user,
                                         errstr, sizeof(errstr));
                if (err == STORE_NOT_FOUND)
                        return recovery__gone(ctx, recovery__bad_verify);
                if (err)
                        return auth_store_failed(ctx, err, errstr);
                bson_destroy(&user);
                recovery__reply_bool(ctx, "email_verified", true);
                return HANDLER_OK;
        }
        if (err)
                return auth_store_failed(ctx, err, errstr);
        user_id = auth_bson_str(&tok, "user_id");
        email = auth_bson_str(&tok, "email");
        if (!user_id || !email) {
                bson_destroy(&tok);
                return recovery__gone(ctx, recovery__bad_verify);
        }
        err = auth_find_user(st, slice_of(user_id), &user, errstr,
                             sizeof(errstr));
        if (err == STORE_NOT_FOUND) {
                bson_destroy(&tok);
                return recovery__gone(ctx, "the account of this link no "
                                           "longer exists");
        }
        if (err) {
                bson_destroy(&tok);
                return auth_store_failed(ctx, err, errstr);
        }
        user_email = auth_bson_str(&user, "email");
        if (!user_email || strcmp(user_email, email) != 0) {
                res = recovery__gone(ctx, "this link is for an email address "
                                          "the account no longer uses");
                goto done;
        }
        if (auth_bson_bool(&user, "email_verified")) {
                recovery__reply_bool(ctx, "email_verified", true);
                goto done;
        }

        bson_init(&filter);
        BSON_APPEND_UTF8(&filter, "_id", user_id);
        BSON_APPEND_UTF8(&filter, "email", email);
        bson_init(&update);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_BOOL(&set, "email_verified", true);
        BSON_APPEND_DATE_TIME(&set, "email_verified_at",
                              (int64_t)clock_wall_ms());
        bson_append_utf8(&set, "email_verified_by", -1, env->id.ptr,
                         (int)env->id.len);
        bson_append_document_end(&update, &set);
        err = store_update_one(st->store, "auth", "users", &filter, &update,
                               false, errstr, sizeof(errstr));
        bson_destroy(&filter);
        bson_destroy(&update);
        if (err == STORE_NOT_FOUND) {
                /* The email changed between the read and the write. */
                res = recovery__gone(ctx, "this link is for an email address "
                                          "the account no longer uses");
                goto done;
        }
        if (err) {
                res = auth_store_failed(ctx, err, errstr);
                goto done;
        }
        recovery__emit(ctx, "auth.user.verified", &user);
        recovery__reply_bool(ctx, "email_verified", true);
        log_info("email verified: user %s", user_id);
done:
        bson_destroy(&user);
        bson_destroy(&tok);
        return res;
}

handler_result_t auth_resend_verification(rt_ctx_t *ctx,
                                          const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        const env_t *env = rt_env(ctx);
        bson_t user;
        char errstr[256];
        store_err_t err;
        (void)body;

        if (!env->user.len) {
                rt_reply_problem(ctx, 401, "Unauthorized",
                                 "no authenticated user");
                return HANDLER_OK;
        }
        err = auth_find_user(st, env->user, &user, errstr, sizeof(errstr));
        if (err == STORE_NOT_FOUND) {
                rt_reply_problem(ctx, 404, "Not Found", "no such user");
                return HANDLER_OK;
        }
        if (err)
                return auth_store_failed(ctx, err, errstr);
        if (auth_bson_bool(&user, "email_verified")) {
                bson_destroy(&user);
                recovery__reply_bool(ctx, "sent", false);
                return HANDLER_OK;
        }
        err = auth_send_verification(st, env->id, &user, errstr,
                                     sizeof(errstr));
        bson_destroy(&user);
        if (err)
                return auth_store_failed(ctx, err, errstr);
        recovery__reply_bool(ctx, "sent", true);
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * Forgotten password
 * ------------------------------------------------------------------------ */

/* Queue the reset mail for user. */
static store_err_t recovery__send_reset(auth_state_t *st, slice_t cmd_id,
                                        const bson_t *user, const char *email,
                                        char *errstr, size_t errlen) {
        const char *user_id = auth_bson_str(user, "_id");
        store_err_t err;

        if (!user_id) {
                snprintf(errstr, errlen, "the user record has no id");
                return STORE_BAD_REPLY;
        }
        err = recovery__mail_token(
                st, cmd_id, "reset", user_id, email, st->set->reset_ttl_s,
                "/reset-password", "Reset your password",
                "Someone asked to reset the password of your Omnify "
                "account.\n\n"
                "To choose a new password, open this link:\n\n"
                "%s\n\n"
                "The link works once and expires in %s. If you did not ask "
                "for this, ignore this mail: your password stays as it is.\n",
                errstr, errlen);
        if (!err)
                log_info("password reset mail for user %s", user_id);
        return err;
}

handler_result_t auth_password_forgot(rt_ctx_t *ctx,
                                      const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        char email[AUTH_EMAIL_MAX + 1], errstr[256];
        bson_t user;
        store_err_t err;

        auth_email_normalize(codec_map_str(body, "email"), email);
        err = auth_find_user_by_email(st, email, &user, errstr, sizeof(errstr));
        if (err == STORE_OK) {
                err = recovery__send_reset(st, rt_env(ctx)->id, &user, email,
                                           errstr, sizeof(errstr));
                bson_destroy(&user);
        } else if (err == STORE_NOT_FOUND) {
                log_info("password reset asked for an unknown email");
                err = STORE_OK;
        }
        if (err)
                return auth_store_failed(ctx, err, errstr);
        /* The same answer either way: no telling which emails exist. */
        recovery__reply_bool(ctx, "accepted", true);
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * Password reset and change
 * ------------------------------------------------------------------------ */

/* After the new password is stored: revoke sessions, emit, answer. */
static handler_result_t
recovery__password_done(rt_ctx_t *ctx, const bson_t *user, const char *keep_sid,
                        const char *reason, const char *event,
                        const char *answer) {
        const char *user_id = auth_bson_str(user, "_id");
        handler_result_t res;

        res = auth_session_revoke(ctx, user_id, NULL, keep_sid, reason);
        if (res != HANDLER_OK)
                return res;
        recovery__emit(ctx, event, user);
        recovery__reply_bool(ctx, answer, true);
        log_info("%s: user %s", reason, user_id);
        return HANDLER_OK;
}

/*
 * Is the reset secret usable? A read of the tokens record (the contract's
 * layout) before anything is spent, so that a new password the policy
 * refuses does not burn the link; auth_token_consume still decides.
 * Fills *user_id (caller frees) when usable.
 */
static store_err_t recovery__peek_reset(auth_state_t *st, slice_t secret,
                                        char **user_id, char *errstr,
                                        size_t errlen) {
        char hash[AUTH_HASH_HEX];
        bson_t filter = BSON_INITIALIZER, tok;
        bson_iter_t it;
        store_err_t err;
        int64_t expires;
        const char *uid;

        *user_id = NULL;
        auth_sha256_hex(secret, hash);
        BSON_APPEND_UTF8(&filter, "_id", hash);
        BSON_APPEND_UTF8(&filter, "kind", "reset");
        err = store_find_one(st->store, "auth", "tokens", &filter, NULL, &tok,
                             errstr, errlen);
        bson_destroy(&filter);
        if (err)
                return err;
        expires = auth_bson_date(&tok, "expires_at");
        uid = auth_bson_str(&tok, "user_id");
        if (!uid ||
            (bson_iter_init_find(&it, &tok, "used_at") &&
             !BSON_ITER_HOLDS_NULL(&it)) ||
            (expires && expires <= (int64_t)clock_wall_ms()))
                err = STORE_NOT_FOUND;
        else
                *user_id = xstrdup(uid);
        bson_destroy(&tok);
        return err;
}

handler_result_t auth_password_reset(rt_ctx_t *ctx,
                                     const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        slice_t token = codec_map_str(body, "token");
        slice_t password = codec_map_str(body, "password");
        char errstr[256], why[160];
        char *user_id = NULL, *hash = NULL;
        const char *email, *spent_by;
        bson_t user, tok, filter;
        store_err_t err;
        handler_result_t res = HANDLER_OK;

        err = recovery__peek_reset(st, token, &user_id, errstr, sizeof(errstr));
        if (err == STORE_NOT_FOUND) {
                /* Spent: by an earlier run of this very command? */
                err = recovery__own_work(ctx, "password_reset_by", &user,
                                         errstr, sizeof(errstr));
                if (err == STORE_NOT_FOUND)
                        return recovery__gone(ctx, recovery__bad_reset);
                if (err)
                        return auth_store_failed(ctx, err, errstr);
                res = recovery__password_done(
                        ctx, &user, NULL, "password reset",
                        "auth.password.reset", "password_reset");
                bson_destroy(&user);
                return res;
        }
        if (err)
                return auth_store_failed(ctx, err, errstr);

        err = auth_find_user(st, slice_of(user_id), &user, errstr,
                             sizeof(errstr));
        if (err) {
                free(user_id);
                if (err == STORE_NOT_FOUND)
                        return recovery__gone(ctx, recovery__bad_reset);
                return auth_store_failed(ctx, err, errstr);
        }
        email = auth_bson_str(&user, "email");
        if (auth_password_policy(password, email ? email : "", why,
                                 sizeof(why)) != 0) {
                res = recovery__unprocessable(ctx, why);
                goto done;
        }
        if (!(hash = auth_password_hash(st->set, password))) {
                rt_reply_problem(ctx, 500, "Internal error",
                                 "password hashing failed");
                res = HANDLER_PERMANENT;
                goto done;
        }
        err = auth_token_consume(st, rt_env(ctx)->id, "reset", token, &tok,
                                 errstr, sizeof(errstr));
        if (err == STORE_NOT_FOUND) {
                /* Spent by a concurrent request since the peek. */
                res = recovery__gone(ctx, recovery__bad_reset);
                goto done;
        }
        if (err) {
                res = auth_store_failed(ctx, err, errstr);
                goto done;
        }
        spent_by = auth_bson_str(&tok, "user_id");
        if (!spent_by || strcmp(spent_by, user_id) != 0) {
                bson_destroy(&tok);
                res = recovery__gone(ctx, recovery__bad_reset);
                goto done;
        }
        bson_destroy(&tok);

        bson_init(&filter);
        BSON_APPEND_UTF8(&filter, "_id", user_id);
        err = recovery__store_password(ctx, &filter, hash, "password_reset_by",
                                       errstr, sizeof(errstr));
        bson_destroy(&filter);
        if (err == STORE_NOT_FOUND) {
                res = recovery__gone(ctx, recovery__bad_reset);
                goto done;
        }
        if (err) {
                res = auth_store_failed(ctx, err, errstr);
                goto done;
        }
        res = recovery__password_done(ctx, &user, NULL, "password reset",
                                      "auth.password.reset", "password_reset");
done:
        free(hash);
        free(user_id);
        bson_destroy(&user);
        return res;
}

handler_result_t auth_password_change(rt_ctx_t *ctx,
                                      const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        const env_t *env = rt_env(ctx);
        slice_t current = codec_map_str(body, "current_password");
        slice_t fresh = codec_map_str(body, "new_password");
        char errstr[256], why[160], keep[AUTH_ID_TEXT + 64];
        const char *keep_sid = NULL, *old_hash, *email, *by;
        char *hash = NULL;
        bson_t user, filter;
        store_err_t err;
        handler_result_t res = HANDLER_OK;

        if (!env->user.len) {
                rt_reply_problem(ctx, 401, "Unauthorized",
                                 "no authenticated user");
                return HANDLER_OK;
        }
        if (env->session.len && env->session.len < sizeof(keep)) {
                memcpy(keep, env->session.ptr, env->session.len);
                keep[env->session.len] = '\0';
                keep_sid = keep;
        }
        err = auth_find_user(st, env->user, &user, errstr, sizeof(errstr));
        if (err == STORE_NOT_FOUND) {
                rt_reply_problem(ctx, 404, "Not Found", "no such user");
                return HANDLER_OK;
        }
        if (err)
                return auth_store_failed(ctx, err, errstr);

        by = auth_bson_str(&user, "password_changed_by");
        if (by && slice_eq(env->id, by)) {
                /* An earlier run of this command stored the password. */
                res = recovery__password_done(
                        ctx, &user, keep_sid, "password changed",
                        "auth.password.changed", "password_changed");
                goto done;
        }
        old_hash = auth_bson_str(&user, "password_hash");
        if (!old_hash || !auth_password_verify(old_hash, current)) {
                rt_reply_problem(ctx, 401, "Unauthorized",
                                 "the current password is not correct");
                goto done;
        }
        if (current.len == fresh.len &&
            CRYPTO_memcmp(current.ptr, fresh.ptr, fresh.len) == 0) {
                res = recovery__unprocessable(ctx, "the new password must "
                                                   "differ from the current "
                                                   "one");
                goto done;
        }
        email = auth_bson_str(&user, "email");
        if (auth_password_policy(fresh, email ? email : "", why, sizeof(why)) !=
            0) {
                res = recovery__unprocessable(ctx, why);
                goto done;
        }
        if (!(hash = auth_password_hash(st->set, fresh))) {
                rt_reply_problem(ctx, 500, "Internal error",
                                 "password hashing failed");
                res = HANDLER_PERMANENT;
                goto done;
        }
        /* Only over the hash we verified against: two changes racing
         * cannot both win. */
        bson_init(&filter);
        bson_append_utf8(&filter, "_id", 3, env->user.ptr, (int)env->user.len);
        BSON_APPEND_UTF8(&filter, "password_hash", old_hash);
        err = recovery__store_password(ctx, &filter, hash,
                                       "password_changed_by", errstr,
                                       sizeof(errstr));
        bson_destroy(&filter);
        if (err == STORE_NOT_FOUND) {
                rt_reply_problem(ctx, 409, "Conflict",
                                 "the password was changed meanwhile; try "
                                 "again");
                goto done;
        }
        if (err) {
                res = auth_store_failed(ctx, err, errstr);
                goto done;
        }
        res = recovery__password_done(ctx, &user, keep_sid, "password changed",
                                      "auth.password.changed",
                                      "password_changed");
done:
        free(hash);
        bson_destroy(&user);
        return res;
}
