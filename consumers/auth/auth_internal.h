/*
 * auth_internal.h - what the files of the auth group share.
 *
 * The auth group is split by concern: auth.c (the table, start-up, signup,
 * login, me), common.c (passwords, random tokens, store and bson helpers),
 * sessions.c (sessions, access and refresh tokens), mailer.c (the outbox and
 * the mail sender), recovery.c (email verification, password reset and
 * change), mfa.c and totp.c (second factor), rbac.c (organisations and
 * memberships), invitations.c (invitations to an organisation) and legal.c
 * (documents and acceptances).
 *
 * Data (database <prefix>auth):
 *   users        {_id, email, name, password_hash, tenant_id (personal org),
 *                 email_verified, created_at, created_by, failed_logins,
 *                 locked_until, mfa: {enabled, secret, pending_secret,
 *                 recovery_codes: [sha256 hex]}}
 *   orgs         {_id, name, created_at, created_by}
 *   memberships  {_id: "<org>|<user>", org_id, user_id, role, created_at}
 *   sessions     {_id: sid, user_id, org_id, created_at, last_used_at, ip,
 *                 user_agent, refresh_hash, used_hashes: [...], revoked_at,
 *                 revoked_reason}
 *   tokens       {_id: sha256 hex of the token, kind, user_id, email, org_id,
 *                 role, expires_at, used_at}    single-use secrets (TTL)
 *   legal_documents, legal_acceptances, mail_outbox: see legal.c, mailer.c
 *
 * Every function runs on the group's consumer thread unless it says so.
 */
#ifndef OMNIFY_AUTH_INTERNAL_H
#define OMNIFY_AUTH_INTERNAL_H

#include <bson/bson.h>
#include <msgpack.h>
#include <stdbool.h>

#include "mail.h"
#include "registry.h"
#include "runtime.h"
#include "slice.h"
#include "token.h"

#define AUTH_EMAIL_MAX 254
#define AUTH_SECRET_TEXT 44 /* 32 random bytes, base64url, NUL */
#define AUTH_HASH_HEX 65    /* sha256 hex, NUL */
#define AUTH_ID_TEXT 37     /* UUID text, NUL */

typedef runtime_mailbox_t auth_mailer_t; /* runtime.h */

/* The auth group's own settings (settings.c). */
typedef struct auth_settings {
        int refresh_ttl_s;
        int verify_ttl_s;
        int reset_ttl_s;
        int invite_ttl_s;
        int mfa_challenge_ttl_s;
        int login_max_failures;
        int login_lock_s;
        char *mfa_issuer;
        char *public_url;
        int argon2_t_cost;
        int argon2_m_cost_kib;
        int argon2_parallelism;
} auth_settings_t;

extern const config_table_t auth_settings;

typedef struct auth_state {
        const config_t *cfg;
        const auth_settings_t *set;      /* auth_settings' values */
        const mail_settings_t *mail_set; /* mail_settings' (shared/mail.h) */
        store_t *store;
        token_keys_t keys;
        char *dummy_hash;      /* argon2 work for unknown emails */
        auth_mailer_t *mailer; /* mailer.c */
} auth_state_t;

/* ---------------------------------------------------------------------------
 * common.c
 * ------------------------------------------------------------------------ */

/* A new argon2id encoded hash of pwd with the configured cost, or NULL. */
char *auth_password_hash(const auth_settings_t *set, slice_t pwd);

/* True when pwd matches the encoded hash (constant work for a given hash). */
bool auth_password_verify(const char *encoded, slice_t pwd);

/*
 * The password policy: 10..128 characters, not all one character class when
 * shorter than 16, not containing the email's local part, not a well-known
 * password. 0, or -1 with a reason (never quoting the password) in why.
 */
int auth_password_policy(slice_t pwd, const char *email, char *why,
                         size_t size);

/* A new random secret (32 bytes from OpenSSL, base64url) for emails, refresh
 * tokens, challenges and invitations. */
void auth_random_secret(char out[AUTH_SECRET_TEXT]);

/* sha256 hex of s: secrets are stored only as this. */
void auth_sha256_hex(slice_t s, char out[AUTH_HASH_HEX]);

/* Constant-time comparison of two NUL-terminated strings of equal length. */
bool auth_equal(const char *a, const char *b);

/* Lowercased copy of an email the schema checked. */
void auth_email_normalize(slice_t in, char out[AUTH_EMAIL_MAX + 1]);

/* bson helpers: the string/int64/date/bool at key, or a default. */
const char *auth_bson_str(const bson_t *doc, const char *key);
int64_t auth_bson_int(const bson_t *doc, const char *key, int64_t def);
int64_t auth_bson_date(const bson_t *doc, const char *key);
bool auth_bson_bool(const bson_t *doc, const char *key);

/* ISO 8601 UTC with milliseconds. */
void auth_iso_time(int64_t ms, char buf[32]);

/* Pack {id, email, name, tenant_id, roles, email_verified, mfa_enabled,
 * created_at} of a user document; roles holds role (the caller's role in the
 * current org) or nothing when role is NULL. */
void auth_pack_user(msgpack_packer *pk, const bson_t *user, const char *role);

/* The lock-out answer: 429 with the seconds left (retry_after), which the
 * edge turns into Retry-After. */
void auth_reply_locked(rt_ctx_t *ctx, int64_t until_ms);

/* A store failure as the handler's result: transient errors retry, the
 * others answer 500 without details. */
handler_result_t auth_store_failed(rt_ctx_t *ctx, store_err_t err,
                                   const char *errstr);

/* A UUID from input in canonical lowercase form. False (and "") when s is
 * not one. */
bool auth_id_parse(slice_t s, char out[AUTH_ID_TEXT]);

/* The command's id as a NUL-terminated string. */
void auth_command_id(rt_ctx_t *ctx, char out[AUTH_ID_TEXT]);

/* True when a and b are both set and equal (not for secrets: auth_equal). */
bool auth_same(const char *a, const char *b);

/* Answer a problem with status (titled after it) and detail; HANDLER_OK. */
handler_result_t auth_refuse(rt_ctx_t *ctx, int status, const char *detail);

/* Pack key and value ("" for NULL); key and ms as ISO 8601 time. */
void auth_pack_kv(msgpack_packer *pk, const char *key, const char *value);
void auth_pack_time(msgpack_packer *pk, const char *key, int64_t ms);

/* Lists answer at most this many items (no pagination yet). */
#define AUTH_LIST_MAX 500

/* Packs one document of a list answer as one item. */
typedef rt_pack_doc_fn auth_pack_fn;

/* Answer 200 {key: [items]}: the documents of coll matching filter, in the
 * order opts says (no "limit" there: AUTH_LIST_MAX applies), each packed by
 * pack with arg. A store error answers as auth_store_failed. */
handler_result_t auth_reply_list(rt_ctx_t *ctx, const char *key,
                                 const char *coll, const bson_t *filter,
                                 const bson_t *opts, auth_pack_fn pack,
                                 void *arg);

/* Emit event `type` with a map of n string pairs (key, value, key, value...),
 * keyed by `key`. */
void auth_emit(rt_ctx_t *ctx, const char *type, const char *key, size_t n, ...);

/* The user document of id, or by email; STORE_NOT_FOUND when there is
 * none. Tenant checks are the caller's (auth_member_role). */
store_err_t auth_find_user(auth_state_t *st, slice_t id, bson_t *out,
                           char *errstr, size_t errlen);
store_err_t auth_find_user_by_email(auth_state_t *st, const char *email,
                                    bson_t *out, char *errstr, size_t errlen);

/* The caller's role in org, or SCHEMA_ROLE_NONE (not a member). */
schema_role_t auth_member_role(auth_state_t *st, const char *org_id,
                               const char *user_id, store_err_t *err);

/* Create an org with user as its owner (signup's personal org; rbac.c's
 * org creation). Idempotent for the same org id. */
store_err_t auth_org_insert(auth_state_t *st, const char *org_id,
                            const char *name, const char *owner_id,
                            char *errstr, size_t errlen);

/* Create a single-use secret of kind for user (expires in ttl_s) and write
 * its hash to the tokens collection; extra (may be NULL) is merged in. */
store_err_t auth_token_create(auth_state_t *st, const char *kind,
                              const char *user_id, int ttl_s,
                              const bson_t *extra,
                              char secret[AUTH_SECRET_TEXT], char *errstr,
                              size_t errlen);

/* Use a single-use secret: atomically mark it used by message `by` if it is
 * of kind, unused (or used by this same message: a redelivery) and not
 * expired, and copy its record into out. STORE_NOT_FOUND when it is not
 * usable (unknown, used by another, expired, other kind). */
store_err_t auth_token_consume(auth_state_t *st, slice_t by, const char *kind,
                               slice_t secret, bson_t *out, char *errstr,
                               size_t errlen);

/* ---------------------------------------------------------------------------
 * sessions.c
 * ------------------------------------------------------------------------ */

typedef struct auth_tokens {
        char *access;      /* signed JWT, free() */
        char refresh[128]; /* "<sid>.<secret>" */
        char session_id[AUTH_ID_TEXT];
        int expires_in;
} auth_tokens_t;

void auth_tokens_free(auth_tokens_t *t);

/*
 * Both return HANDLER_OK with out->access NULL when they answered the client
 * already (404 not a member, 401 session ended): callers check both.
 *
 * Start a session for user in org (its role looked up), bound to the
 * command's client ip and user agent, and issue its first access and
 * refresh tokens. Emits auth.session.started.
 */
handler_result_t auth_session_start(rt_ctx_t *ctx, const bson_t *user,
                                    const char *org_id, auth_tokens_t *out);

/* Issue a new access token for an existing session (e.g. after the terms
 * were accepted or the org switched). */
handler_result_t auth_session_reissue(rt_ctx_t *ctx, const char *session_id,
                                      const char *org_id, auth_tokens_t *out);

/* Revoke sessions: one (sid), or every one of user except keep_sid (may be
 * NULL). Emits auth.session.revoked for each, which every edge hears. */
handler_result_t auth_session_revoke(rt_ctx_t *ctx, const char *user_id,
                                     const char *sid, const char *keep_sid,
                                     const char *reason);

/* Pack {access_token, refresh_token, token_type, expires_in, session_id}. */
void auth_pack_tokens(msgpack_packer *pk, const auth_tokens_t *t);

/* The highest version of the terms user accepted (0: none). */
int64_t auth_terms_accepted(auth_state_t *st, const char *user_id);

/* Handlers. */
handler_result_t auth_refresh(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t auth_logout(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t auth_sessions_list(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t auth_sessions_revoke(rt_ctx_t *ctx,
                                      const msgpack_object *body);
handler_result_t auth_sessions_revoke_others(rt_ctx_t *ctx,
                                             const msgpack_object *body);

/* ---------------------------------------------------------------------------
 * mailer.c: auth's mail outbox (shared/outbox.h with shared/mail.h) and its
 * sender thread, so a mail outage never fails the request that wanted a
 * mail; sending retries with backoff.
 * ------------------------------------------------------------------------ */

/* The outbox id of the mail of `kind` that command `cmd_id` sends: one
 * command queues at most one mail of a kind, so a redelivered command finds
 * the mail its earlier run queued instead of queueing a second one. */
#define AUTH_MAIL_ID_MAX 96
void auth_mail_id(slice_t cmd_id, const char *kind, char out[AUTH_MAIL_ID_MAX]);

/* Queue a mail under mail_id (auth_mail_id); a mail already queued under
 * that id is kept as it is and counts as queued. */
store_err_t auth_mail_enqueue(auth_state_t *st, const char *mail_id,
                              const char *to, const char *subject,
                              const char *text, char *errstr, size_t errlen);

/* STORE_OK when the mail mail_id is in the outbox, STORE_NOT_FOUND if not. */
store_err_t auth_mail_queued(auth_state_t *st, const char *mail_id,
                             char *errstr, size_t errlen);

/* Auth's mail outbox (rt's, sending through the process's HTTP client,
 * with the mail settings); stop frees the mail kind's state once the
 * runtime stopped the outbox (NULL ok). */
auth_mailer_t *auth_mailer_start(auth_state_t *st, runtime_t *rt, char *errstr,
                                 size_t errlen);
void auth_mailer_stop(auth_mailer_t *m);

/* ---------------------------------------------------------------------------
 * rbac.c: what the organisation handlers (rbac.c, invitations.c) share
 * ------------------------------------------------------------------------ */

/* A membership's _id, "<org>|<user>". */
#define AUTH_MEMBER_ID (2 * AUTH_ID_TEXT + 2)

/* Who calls: user, current org and session, as the edge set them from a
 * checked token. */
typedef struct auth_rbac_caller {
        char user[AUTH_ID_TEXT];
        char org[AUTH_ID_TEXT];
        char sid[AUTH_ID_TEXT]; /* "" when the token has no session */
} auth_rbac_caller_t;

/* Fill c from the envelope, or answer 401 and return false. */
bool auth_rbac_caller(rt_ctx_t *ctx, auth_rbac_caller_t *c);

/*
 * The membership of user in org, removed ones included: STORE_OK with *doc
 * (caller destroys) and *role (NONE when removed), STORE_NOT_FOUND when the
 * user never was a member.
 */
store_err_t auth_rbac_membership(auth_state_t *st, const char *org,
                                 const char *user, bson_t *doc,
                                 schema_role_t *role, char *errstr,
                                 size_t errlen);

/* The caller's current role in org from the store; false when the store
 * failed (*res is the handler's result then). */
bool auth_rbac_role(rt_ctx_t *ctx, const char *org, const char *user,
                    schema_role_t *role, handler_result_t *res);

/* ---------------------------------------------------------------------------
 * Handler files
 * ------------------------------------------------------------------------ */

/* recovery.c */
handler_result_t auth_verify_email(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t auth_resend_verification(rt_ctx_t *ctx,
                                          const msgpack_object *body);
handler_result_t auth_password_forgot(rt_ctx_t *ctx,
                                      const msgpack_object *body);
handler_result_t auth_password_reset(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t auth_password_change(rt_ctx_t *ctx,
                                      const msgpack_object *body);
/* Send the verification mail for user on behalf of command cmd_id (used by
 * signup too); nothing new if that command queued it already. */
store_err_t auth_send_verification(auth_state_t *st, slice_t cmd_id,
                                   const bson_t *user, char *errstr,
                                   size_t errlen);

/* mfa.c */
handler_result_t auth_mfa_enroll(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t auth_mfa_confirm(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t auth_mfa_verify(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t auth_mfa_disable(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t auth_mfa_status(rt_ctx_t *ctx, const msgpack_object *body);
/* Login found MFA enabled: answer 401 {mfa_required, challenge, expires_in}. */
handler_result_t auth_mfa_challenge(rt_ctx_t *ctx, const bson_t *user,
                                    const char *org_id);

/* rbac.c */
handler_result_t auth_org_create(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t auth_org_list(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t auth_org_switch(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t auth_members_list(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t auth_member_update(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t auth_member_remove(rt_ctx_t *ctx, const msgpack_object *body);

/* invitations.c */
handler_result_t auth_invite_create(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t auth_invite_list(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t auth_invite_accept(rt_ctx_t *ctx, const msgpack_object *body);

/* legal.c */
handler_result_t auth_legal_current(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t auth_legal_publish(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t auth_legal_accept(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t auth_legal_acceptances(rt_ctx_t *ctx,
                                        const msgpack_object *body);
handler_result_t auth_legal_versions(rt_ctx_t *ctx, const msgpack_object *body);

/* Indexes of each file, created at start-up. */
store_err_t auth_common_indexes(auth_state_t *st, char *errstr, size_t errlen);
store_err_t auth_sessions_indexes(auth_state_t *st, char *errstr,
                                  size_t errlen);
store_err_t auth_rbac_indexes(auth_state_t *st, char *errstr, size_t errlen);
store_err_t auth_legal_indexes(auth_state_t *st, char *errstr, size_t errlen);

#endif
