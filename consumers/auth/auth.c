/*
 * auth.c - the auth group: its handler table, start-up, signup, login and
 * who am I. The other concerns live in the files auth_internal.h lists.
 *
 * Users live in <prefix>auth.users with a unique index on the normalised
 * email; signup also creates the user's personal organisation, of which the
 * user is the owner, and that organisation is the tenant of its tokens.
 * Passwords are hashed with argon2id. Login answers the same 401 for an
 * unknown email and a wrong password and spends the same argon2 work on
 * both, so neither the answer nor its timing tells which emails exist;
 * repeated failures lock the account for a while.
 *
 * Every handler is idempotent by message id: a signup redelivered after its
 * user was written finds its own user (created_by = message id) and answers
 * as the first time.
 */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "auth_internal.h"
#include "codec.h"
#include "log.h"
#include "msgid.h"

/* ---------------------------------------------------------------------------
 * Signup
 * ------------------------------------------------------------------------ */

static handler_result_t auth_signup(rt_ctx_t *ctx, const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        const env_t *env = rt_env(ctx);
        slice_t password = codec_map_str(body, "password");
        slice_t name = codec_map_str(body, "name");
        char email[AUTH_EMAIL_MAX + 1], user_id[AUTH_ID_TEXT],
                org_id[AUTH_ID_TEXT], errstr[256], why[160], org_name[160];
        msgid_t id;
        char *hash;
        bson_t doc = BSON_INITIALIZER, user;
        store_err_t err;
        int64_t now = (int64_t)clock_wall_ms();
        bool redelivered = false, skip_mail = false;

        auth_email_normalize(codec_map_str(body, "email"), email);
        if (auth_password_policy(password, email, why, sizeof(why))) {
                /* Valid by the schema, refused by a rule it cannot state. */
                rt_reply_problem(ctx, 422, "Unprocessable Content", why);
                return HANDLER_OK;
        }
        hash = auth_password_hash(st->set, password);
        if (!hash) {
                rt_reply_problem(ctx, 500, "Internal error",
                                 "password hashing failed");
                return HANDLER_PERMANENT;
        }
        msgid_new(&id);
        msgid_format(&id, user_id);
        msgid_new(&id);
        msgid_format(&id, org_id);
        BSON_APPEND_UTF8(&doc, "_id", user_id);
        BSON_APPEND_UTF8(&doc, "email", email);
        bson_append_utf8(&doc, "name", 4, name.ptr, (int)name.len);
        BSON_APPEND_UTF8(&doc, "password_hash", hash);
        BSON_APPEND_UTF8(&doc, "tenant_id", org_id);
        BSON_APPEND_BOOL(&doc, "email_verified", false);
        BSON_APPEND_INT32(&doc, "failed_logins", 0);
        BSON_APPEND_DATE_TIME(&doc, "created_at", now);
        bson_append_utf8(&doc, "created_by", 10, env->id.ptr, (int)env->id.len);
        free(hash);

        err = store_insert(st->store, "auth", "users", &doc, errstr,
                           sizeof(errstr));
        if (err == STORE_DUPLICATE) {
                /* Ours from an earlier delivery, or someone else's email? */
                bson_t filter = BSON_INITIALIZER;
                bson_destroy(&doc);
                BSON_APPEND_UTF8(&filter, "email", email);
                bson_append_utf8(&filter, "created_by", 10, env->id.ptr,
                                 (int)env->id.len);
                err = store_find_one(st->store, "auth", "users", &filter, NULL,
                                     &user, errstr, sizeof(errstr));
                bson_destroy(&filter);
                if (err == STORE_NOT_FOUND) {
                        rt_reply_problem(
                                ctx, 409, "Conflict",
                                "an account with this email already exists");
                        return HANDLER_OK;
                }
                if (err)
                        return auth_store_failed(ctx, err, errstr);
                /* Finish what the earlier delivery may not have. */
                redelivered = true;
                snprintf(user_id, sizeof(user_id), "%s",
                         auth_bson_str(&user, "_id"));
                snprintf(org_id, sizeof(org_id), "%s",
                         auth_bson_str(&user, "tenant_id"));
        } else if (err) {
                bson_destroy(&doc);
                return auth_store_failed(ctx, err, errstr);
        } else {
                bson_copy_to(&doc, &user);
                bson_destroy(&doc);
        }
        snprintf(org_name, sizeof(org_name), "%.*s's workspace",
                 (int)(name.len > 100 ? 100 : name.len), name.ptr);
        err = auth_org_insert(st, org_id, org_name, user_id, errstr,
                              sizeof(errstr));
        /* The verification mail goes into the outbox with the account: a
         * mail outage delays the mail, never the signup. A redelivered
         * signup looks for the mail its earlier run queued (by its outbox
         * id, not by the token: a run may have died between the two). */
        if (!err && redelivered) {
                char mail_id[AUTH_MAIL_ID_MAX];
                auth_mail_id(env->id, "verify", mail_id);
                err = auth_mail_queued(st, mail_id, errstr, sizeof(errstr));
                if (err == STORE_OK)
                        skip_mail = true;
                else if (err == STORE_NOT_FOUND)
                        err = STORE_OK;
        }
        if (!err && !skip_mail && !auth_bson_bool(&user, "email_verified"))
                err = auth_send_verification(st, env->id, &user, errstr,
                                             sizeof(errstr));
        if (err) {
                bson_destroy(&user);
                return auth_store_failed(ctx, err, errstr);
        }
        auth_pack_user(rt_reply(ctx, 201), &user, "owner");
        bson_destroy(&user);
        {
                char when[32];
                auth_iso_time(now, when);
                auth_emit(ctx, "auth.user.registered", org_id, 3, "user_id",
                          user_id, "tenant_id", org_id, "registered_at", when);
                auth_emit(ctx, "auth.org.member_added", org_id, 3, "org_id",
                          org_id, "user_id", user_id, "role", "owner");
        }
        log_info("user registered: %s", user_id);
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * Login
 * ------------------------------------------------------------------------ */

/* Count a failed login; lock the account when the count reaches the limit. */
static handler_result_t auth__login_failed(rt_ctx_t *ctx, const bson_t *user) {
        auth_state_t *st = rt_state(ctx);
        const char *user_id = auth_bson_str(user, "_id");
        int64_t failures = auth_bson_int(user, "failed_logins", 0) + 1;
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
        char errstr[256];
        store_err_t err;
        bool lock = failures >= st->set->login_max_failures;

        BSON_APPEND_UTF8(&filter, "_id", user_id ? user_id : "");
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_INT64(&set, "failed_logins", lock ? 0 : failures);
        if (lock)
                BSON_APPEND_DATE_TIME(&set, "locked_until",
                                      (int64_t)clock_wall_ms() +
                                              (int64_t)st->set->login_lock_s *
                                                      1000);
        bson_append_document_end(&update, &set);
        err = store_update_one(st->store, "auth", "users", &filter, &update,
                               false, errstr, sizeof(errstr));
        bson_destroy(&update);
        bson_destroy(&filter);
        if (err && err != STORE_NOT_FOUND)
                return auth_store_failed(ctx, err, errstr);
        if (lock) {
                log_warn("account %s locked after %lld failed logins", user_id,
                         (long long)failures);
                auth_emit(ctx, "auth.user.locked", user_id, 1, "user_id",
                          user_id);
        }
        return HANDLER_OK;
}

static handler_result_t auth_login(rt_ctx_t *ctx, const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        slice_t password = codec_map_str(body, "password");
        char email[AUTH_EMAIL_MAX + 1], errstr[256], org_id[AUTH_ID_TEXT];
        bson_t user;
        store_err_t err;
        const char *hash = NULL;
        bool verified;
        int64_t locked_until;
        auth_tokens_t tokens;
        handler_result_t res;

        auth_email_normalize(codec_map_str(body, "email"), email);
        err = auth_find_user_by_email(st, email, &user, errstr, sizeof(errstr));
        if (err != STORE_OK && err != STORE_NOT_FOUND)
                return auth_store_failed(ctx, err, errstr);
        if (err == STORE_OK) {
                hash = auth_bson_str(&user, "password_hash");
                locked_until = auth_bson_date(&user, "locked_until");
                if (locked_until > (int64_t)clock_wall_ms()) {
                        bson_destroy(&user);
                        auth_reply_locked(ctx, locked_until);
                        return HANDLER_OK;
                }
        }
        /* Same work whether or not the account exists. */
        verified =
                auth_password_verify(hash ? hash : st->dummy_hash, password) &&
                hash;
        if (!verified) {
                res = HANDLER_OK;
                if (err == STORE_OK) {
                        res = auth__login_failed(ctx, &user);
                        bson_destroy(&user);
                }
                if (res == HANDLER_OK)
                        rt_reply_problem(ctx, 401, "Unauthorized",
                                         "invalid email or password");
                return res;
        }
        if (auth_bson_int(&user, "failed_logins", 0) > 0) {
                bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER,
                       set;
                BSON_APPEND_UTF8(&filter, "_id", auth_bson_str(&user, "_id"));
                BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
                BSON_APPEND_INT32(&set, "failed_logins", 0);
                bson_append_document_end(&update, &set);
                err = store_update_one(st->store, "auth", "users", &filter,
                                       &update, false, errstr, sizeof(errstr));
                bson_destroy(&update);
                bson_destroy(&filter);
                if (err && err != STORE_NOT_FOUND) {
                        bson_destroy(&user);
                        return auth_store_failed(ctx, err, errstr);
                }
        }
        snprintf(org_id, sizeof(org_id), "%s",
                 auth_bson_str(&user, "tenant_id")
                         ? auth_bson_str(&user, "tenant_id")
                         : "");
        if (auth_bson_bool(&user, "mfa.enabled")) {
                /* The password was right; the second factor decides. */
                res = auth_mfa_challenge(ctx, &user, org_id);
                bson_destroy(&user);
                return res;
        }
        res = auth_session_start(ctx, &user, org_id, &tokens);
        bson_destroy(&user);
        if (res != HANDLER_OK || !tokens.access)
                return res;
        auth_pack_tokens(rt_reply(ctx, 200), &tokens);
        auth_tokens_free(&tokens);
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * Who am I
 * ------------------------------------------------------------------------ */

static handler_result_t auth_me(rt_ctx_t *ctx, const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        const env_t *env = rt_env(ctx);
        char errstr[256], user_id[AUTH_ID_TEXT], org_id[AUTH_ID_TEXT];
        bson_t user;
        store_err_t err;
        schema_role_t role;
        (void)body;

        if (env->user.len != MSGID_TEXT_LEN ||
            env->tenant.len != MSGID_TEXT_LEN) {
                rt_reply_problem(ctx, 401, "Unauthorized",
                                 "no authenticated user");
                return HANDLER_OK;
        }
        snprintf(user_id, sizeof(user_id), "%.*s", (int)env->user.len,
                 env->user.ptr);
        snprintf(org_id, sizeof(org_id), "%.*s", (int)env->tenant.len,
                 env->tenant.ptr);
        /* The tenant is checked on every read, not only at the edge. */
        role = auth_member_role(st, org_id, user_id, &err);
        if (err)
                return auth_store_failed(ctx, err, "membership lookup failed");
        if (role == SCHEMA_ROLE_NONE) {
                rt_reply_problem(ctx, 404, "Not Found", "no such user");
                return HANDLER_OK;
        }
        err = auth_find_user(st, env->user, &user, errstr, sizeof(errstr));
        if (err == STORE_NOT_FOUND) {
                rt_reply_problem(ctx, 404, "Not Found", "no such user");
                return HANDLER_OK;
        }
        if (err)
                return auth_store_failed(ctx, err, errstr);
        auth_pack_user(rt_reply(ctx, 200), &user, schema_role_name(role));
        bson_destroy(&user);
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * Start-up
 * ------------------------------------------------------------------------ */

static handler_result_t auth_init(runtime_t *rt, void **state, char *errstr,
                                  size_t errlen) {
        const config_t *cfg = runtime_config(rt);
        auth_state_t *st = xcalloc(1, sizeof(*st));
        uint8_t junk[24];
        store_err_t err;

        st->cfg = cfg;
        st->set = runtime_settings(rt, &auth_settings);
        st->mail_set = runtime_settings(rt, &mail_settings);
        st->store = runtime_store(rt);
        st->keys.secret = cfg->jwt_secret;
        st->keys.issuer = cfg->jwt_issuer;
        st->keys.audience = cfg->jwt_audience;
        st->keys.kid = cfg->jwt_kid;
        err = auth_common_indexes(st, errstr, errlen);
        if (!err)
                err = auth_sessions_indexes(st, errstr, errlen);
        if (!err)
                err = auth_rbac_indexes(st, errstr, errlen);
        if (!err)
                err = auth_legal_indexes(st, errstr, errlen);
        if (err) {
                free(st);
                return store_err_transient(err) ? HANDLER_TRANSIENT
                                                : HANDLER_PERMANENT;
        }
        if (RAND_bytes(junk, sizeof(junk)) != 1 ||
            !(st->dummy_hash = auth_password_hash(
                      st->set, (slice_t){(const char *)junk, sizeof(junk)}))) {
                snprintf(errstr, errlen, "cannot prepare the password hasher");
                free(st);
                return HANDLER_PERMANENT;
        }
        st->mailer = auth_mailer_start(st, rt, errstr, errlen);
        if (!st->mailer) {
                free(st->dummy_hash);
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
        auth_mailer_stop(st->mailer);
        free(st->dummy_hash);
        free(st);
}

static const group_handler_t auth_handlers[] = {
        {"auth.status", runtime_handle_status},
        {"auth.signup", auth_signup},
        {"auth.login", auth_login},
        {"auth.me", auth_me},
        /* sessions.c */
        {"auth.refresh", auth_refresh},
        {"auth.logout", auth_logout},
        {"auth.sessions.list", auth_sessions_list},
        {"auth.sessions.revoke", auth_sessions_revoke},
        {"auth.sessions.revoke_others", auth_sessions_revoke_others},
        /* recovery.c */
        {"auth.email.verify", auth_verify_email},
        {"auth.email.resend_verification", auth_resend_verification},
        {"auth.password.forgot", auth_password_forgot},
        {"auth.password.reset_with_token", auth_password_reset},
        {"auth.password.change", auth_password_change},
        /* mfa.c */
        {"auth.mfa.enroll", auth_mfa_enroll},
        {"auth.mfa.confirm", auth_mfa_confirm},
        {"auth.mfa.verify", auth_mfa_verify},
        {"auth.mfa.disable", auth_mfa_disable},
        {"auth.mfa.status", auth_mfa_status},
        /* rbac.c */
        {"auth.rbac.orgs.create", auth_org_create},
        {"auth.rbac.orgs.list", auth_org_list},
        {"auth.rbac.orgs.switch", auth_org_switch},
        {"auth.rbac.members.list", auth_members_list},
        {"auth.rbac.members.update", auth_member_update},
        {"auth.rbac.members.remove", auth_member_remove},
        /* invitations.c */
        {"auth.rbac.invitations.create", auth_invite_create},
        {"auth.rbac.invitations.list", auth_invite_list},
        {"auth.rbac.invitations.accept", auth_invite_accept},
        /* legal.c */
        {"auth.legal.publish", auth_legal_publish},
        {"auth.legal.versions", auth_legal_versions},
        {"auth.legal.current", auth_legal_current},
        {"auth.legal.accept", auth_legal_accept},
        {"auth.legal.acceptances", auth_legal_acceptances},
};

static const config_table_t *const auth_tables[] = {&auth_settings,
                                                    &mail_settings, NULL};

const group_def_t group_auth = {
        .name = "auth",
        .ops_port = 8001,
        .config_scope = CONFIG_SCOPE_AUTH,
        .settings = auth_tables,
        .handlers = auth_handlers,
        .n_handlers = sizeof(auth_handlers) / sizeof(auth_handlers[0]),
        .init = auth_init,
        .shutdown = auth_shutdown,
};
