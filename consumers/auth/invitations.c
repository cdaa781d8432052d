/*
 * invitations.c - invitations to an organisation (organisations, memberships
 * and the role rules: rbac.c, whose helpers auth_internal.h declares).
 *
 * An invitation is a single-use secret (tokens, kind "invite") that goes to
 * its address by mail and never appears in an answer; only the account with
 * that email can accept it, and a refused attempt leaves it usable. Admins
 * invite, and only owners invite owners. Accepting makes a membership, or
 * makes a removed one live again, with the id of the command that made it
 * (joined_command): a retry finds its own work done and only re-emits the
 * events the failed attempt lost.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "auth_internal.h"
#include "codec.h"
#include "log.h"

/* ---------------------------------------------------------------------------
 * Invitations
 * ------------------------------------------------------------------------ */

/* An invitation token whose secret was never mailed (its run died between
 * the token and the mail) is retired before the redelivered command makes
 * the one that goes out: nobody has its secret, and it would be listed. */
static store_err_t invite__retire_unsent(auth_state_t *st, const char *inv_id,
                                         int64_t now, char *errstr,
                                         size_t errlen) {
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
        store_err_t err;
        BSON_APPEND_UTF8(&filter, "kind", "invite");
        BSON_APPEND_UTF8(&filter, "invitation_id", inv_id);
        BSON_APPEND_NULL(&filter, "used_at");
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_DATE_TIME(&set, "used_at", now);
        BSON_APPEND_UTF8(&set, "retired", "never mailed");
        bson_append_document_end(&update, &set);
        err = store_update_one(st->store, "auth", "tokens", &filter, &update,
                               false, errstr, errlen);
        bson_destroy(&filter);
        bson_destroy(&update);
        return err == STORE_NOT_FOUND ? STORE_OK : err;
}

handler_result_t auth_invite_create(rt_ctx_t *ctx, const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        const auth_settings_t *set = st->set;
        slice_t role_in = codec_map_str(body, "role");
        schema_role_t want = schema_role_parse(role_in.ptr, role_in.len);
        schema_role_t mine, theirs = SCHEMA_ROLE_NONE;
        auth_rbac_caller_t c;
        char email[AUTH_EMAIL_MAX + 1], inv_id[AUTH_ID_TEXT],
                secret[AUTH_SECRET_TEXT], errstr[256], subject[256],
                mail_id[AUTH_MAIL_ID_MAX];
        char *text;
        const char *org_name;
        size_t url_len, text_size;
        bson_t filter, org, user, extra;
        handler_result_t res = HANDLER_OK;
        int64_t now = (int64_t)clock_wall_ms();
        msgpack_packer *pk;
        store_err_t err;

        if (!auth_rbac_caller(ctx, &c))
                return HANDLER_OK;
        if (want == SCHEMA_ROLE_NONE)
                return auth_refuse(ctx, 400, "unknown role");
        if (!auth_rbac_role(ctx, c.org, c.user, &mine, &res))
                return res;
        if (mine < SCHEMA_ROLE_ADMIN)
                return auth_refuse(ctx, 403, "inviting needs the admin role");
        if (want == SCHEMA_ROLE_OWNER && mine != SCHEMA_ROLE_OWNER)
                return auth_refuse(ctx, 403, "only an owner may invite owners");
        auth_email_normalize(codec_map_str(body, "email"), email);

        /* Someone who is a member already needs a role change, not an
         * invitation. */
        err = auth_find_user_by_email(st, email, &user, errstr, sizeof(errstr));
        if (err == STORE_OK) {
                const char *uid = auth_bson_str(&user, "_id");
                store_err_t rerr = STORE_OK;
                if (uid)
                        theirs = auth_member_role(st, c.org, uid, &rerr);
                bson_destroy(&user);
                if (rerr)
                        return auth_store_failed(ctx, rerr,
                                                 "membership lookup failed");
        } else if (err != STORE_NOT_FOUND) {
                return auth_store_failed(ctx, err, errstr);
        }
        if (theirs != SCHEMA_ROLE_NONE)
                return auth_refuse(ctx, 409, "this person is a member already");

        bson_init(&filter);
        BSON_APPEND_UTF8(&filter, "_id", c.org);
        err = store_find_one(st->store, "auth", "orgs", &filter, NULL, &org,
                             errstr, sizeof(errstr));
        bson_destroy(&filter);
        if (err == STORE_NOT_FOUND)
                return auth_refuse(ctx, 404, "no such organisation");
        if (err)
                return auth_store_failed(ctx, err, errstr);

        /* The invitation is named by the command that made it: a
         * redelivered command answers the same id as its first run did
         * (and its mail, queued under the same command, is not sent
         * twice). */
        if (!auth_id_parse(rt_env(ctx)->id, inv_id)) {
                bson_destroy(&org);
                return auth_refuse(ctx, 400, "the command id is not a UUID");
        }
        auth_mail_id(rt_env(ctx)->id, "invite", mail_id);
        err = auth_mail_queued(st, mail_id, errstr, sizeof(errstr));
        if (err == STORE_OK) {
                /* Redelivered after an earlier run queued the mail. */
                bson_destroy(&org);
                goto answer;
        }
        if (err == STORE_NOT_FOUND)
                err = invite__retire_unsent(st, inv_id, now, errstr,
                                            sizeof(errstr));
        if (err) {
                bson_destroy(&org);
                return auth_store_failed(ctx, err, errstr);
        }
        bson_init(&extra);
        BSON_APPEND_UTF8(&extra, "invitation_id", inv_id);
        BSON_APPEND_UTF8(&extra, "org_id", c.org);
        BSON_APPEND_UTF8(&extra, "role", schema_role_name(want));
        BSON_APPEND_UTF8(&extra, "email", email);
        BSON_APPEND_UTF8(&extra, "invited_by", c.user);
        err = auth_token_create(st, "invite", c.user, set->invite_ttl_s, &extra,
                                secret, errstr, sizeof(errstr));
        bson_destroy(&extra);
        if (err) {
                bson_destroy(&org);
                return auth_store_failed(ctx, err, errstr);
        }

        /* The link is the only place the secret goes. */
        org_name = auth_bson_str(&org, "name");
        snprintf(subject, sizeof(subject),
                 "You are invited to join %.120s on Omnify",
                 org_name ? org_name : "an organisation");
        url_len = strlen(set->public_url);
        while (url_len && set->public_url[url_len - 1] == '/')
                url_len--;
        text_size = url_len + 512 + (org_name ? strlen(org_name) : 0);
        text = xmalloc(text_size);
        snprintf(text, text_size,
                 "You are invited to join %s on Omnify as %s.\n\n"
                 "Accept the invitation, signed in with this email "
                 "address:\n%.*s/invitations/accept?token=%s\n\n"
                 "The link works once and expires in %d hours. If you did "
                 "not expect it, ignore this mail.\n",
                 org_name ? org_name : "an organisation",
                 schema_role_name(want), (int)url_len, set->public_url, secret,
                 (set->invite_ttl_s + 3599) / 3600);
        bson_destroy(&org);
        err = auth_mail_enqueue(st, mail_id, email, subject, text, errstr,
                                sizeof(errstr));
        explicit_bzero(text, text_size);
        explicit_bzero(secret, sizeof(secret));
        free(text);
        if (err)
                return auth_store_failed(ctx, err, errstr);

answer:
        pk = rt_reply(ctx, 201);
        msgpack_pack_map(pk, 5);
        auth_pack_kv(pk, "id", inv_id);
        auth_pack_kv(pk, "org_id", c.org);
        auth_pack_kv(pk, "email", email);
        auth_pack_kv(pk, "role", schema_role_name(want));
        auth_pack_time(pk, "expires_at",
                       now + (int64_t)set->invite_ttl_s * 1000);
        auth_emit(ctx, "auth.org.invitation_created", c.org, 4, "org_id", c.org,
                  "invitation_id", inv_id, "role", schema_role_name(want),
                  "invited_by", c.user);
        log_info("org %s: invitation %s created", c.org, inv_id);
        return HANDLER_OK;
}

static void invite__pack_invite(msgpack_packer *pk, const bson_t *doc,
                                void *arg) {
        (void)arg;
        msgpack_pack_map(pk, 6);
        auth_pack_kv(pk, "id", auth_bson_str(doc, "invitation_id"));
        auth_pack_kv(pk, "email", auth_bson_str(doc, "email"));
        auth_pack_kv(pk, "role", auth_bson_str(doc, "role"));
        auth_pack_kv(pk, "invited_by", auth_bson_str(doc, "invited_by"));
        auth_pack_time(pk, "created_at", auth_bson_date(doc, "created_at"));
        auth_pack_time(pk, "expires_at", auth_bson_date(doc, "expires_at"));
}

handler_result_t auth_invite_list(rt_ctx_t *ctx, const msgpack_object *body) {
        bson_t filter, opts, gt, sort, proj;
        schema_role_t mine;
        auth_rbac_caller_t c;
        handler_result_t res = HANDLER_OK;
        (void)body;

        if (!auth_rbac_caller(ctx, &c))
                return HANDLER_OK;
        if (!auth_rbac_role(ctx, c.org, c.user, &mine, &res))
                return res;
        if (mine < SCHEMA_ROLE_ADMIN)
                return auth_refuse(ctx, 403, "invitations need the admin role");

        bson_init(&filter);
        bson_init(&opts);
        BSON_APPEND_UTF8(&filter, "kind", "invite");
        BSON_APPEND_UTF8(&filter, "org_id", c.org);
        BSON_APPEND_NULL(&filter, "used_at");
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "expires_at", &gt);
        BSON_APPEND_DATE_TIME(&gt, "$gt", (int64_t)clock_wall_ms());
        bson_append_document_end(&filter, &gt);
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
        BSON_APPEND_INT32(&sort, "created_at", -1);
        bson_append_document_end(&opts, &sort);
        /* Never the hash (_id) nor anything else that is not listed. */
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
        BSON_APPEND_INT32(&proj, "_id", 0);
        BSON_APPEND_INT32(&proj, "invitation_id", 1);
        BSON_APPEND_INT32(&proj, "email", 1);
        BSON_APPEND_INT32(&proj, "role", 1);
        BSON_APPEND_INT32(&proj, "invited_by", 1);
        BSON_APPEND_INT32(&proj, "created_at", 1);
        BSON_APPEND_INT32(&proj, "expires_at", 1);
        bson_append_document_end(&opts, &proj);

        res = auth_reply_list(ctx, "invitations", "tokens", &filter, &opts,
                              invite__pack_invite, NULL);
        bson_destroy(&opts);
        bson_destroy(&filter);
        return res;
}

/* The usable invitation of secret (unused, unexpired), or STORE_NOT_FOUND. */
static store_err_t invite__invitation(auth_state_t *st, slice_t secret,
                                      bson_t *out, char *errstr,
                                      size_t errlen) {
        char hash[AUTH_HASH_HEX];
        bson_t filter = BSON_INITIALIZER, gt;
        store_err_t err;

        auth_sha256_hex(secret, hash);
        BSON_APPEND_UTF8(&filter, "_id", hash);
        BSON_APPEND_UTF8(&filter, "kind", "invite");
        BSON_APPEND_NULL(&filter, "used_at");
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "expires_at", &gt);
        BSON_APPEND_DATE_TIME(&gt, "$gt", (int64_t)clock_wall_ms());
        bson_append_document_end(&filter, &gt);
        err = store_find_one(st->store, "auth", "tokens", &filter, NULL, out,
                             errstr, errlen);
        bson_destroy(&filter);
        return err;
}

handler_result_t auth_invite_accept(rt_ctx_t *ctx, const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        slice_t secret = codec_map_str(body, "token");
        auth_rbac_caller_t c;
        char org[AUTH_ID_TEXT], cmd[AUTH_ID_TEXT], mid[AUTH_MEMBER_ID],
                role[16], inv_id[AUTH_ID_TEXT], by[AUTH_ID_TEXT], errstr[256];
        const char *inv_email, *inv_role, *my_email;
        /* What a removal or an earlier role change left on the document. */
        static const char *const stale[] = {
                "removed_at",     "removed_by",   "removed_command",
                "previous_role",  "role_command", "role_changed_by",
                "role_changed_at"};
        bson_t inv, user, member, filter, update, set, unset, used;
        schema_role_t theirs;
        msgpack_packer *pk;
        store_err_t err;
        bool mine;

        if (!auth_rbac_caller(ctx, &c))
                return HANDLER_OK;
        /* Look before using it up: a refused attempt must leave the
         * invitation usable by the person it is for. */
        err = invite__invitation(st, secret, &inv, errstr, sizeof(errstr));
        if (err == STORE_NOT_FOUND)
                return auth_refuse(ctx, 410,
                                   "no such invitation, or it was used or "
                                   "has expired");
        if (err)
                return auth_store_failed(ctx, err, errstr);
        inv_email = auth_bson_str(&inv, "email");
        inv_role = auth_bson_str(&inv, "role");
        if (!auth_id_parse(slice_of(auth_bson_str(&inv, "org_id")), org) ||
            !inv_email || !inv_role ||
            !schema_role_parse(inv_role, strlen(inv_role))) {
                bson_destroy(&inv);
                return auth_refuse(ctx, 410, "no such invitation");
        }
        snprintf(role, sizeof(role), "%s", inv_role);
        snprintf(inv_id, sizeof(inv_id), "%s",
                 auth_bson_str(&inv, "invitation_id")
                         ? auth_bson_str(&inv, "invitation_id")
                         : "");
        snprintf(by, sizeof(by), "%s",
                 auth_bson_str(&inv, "invited_by")
                         ? auth_bson_str(&inv, "invited_by")
                         : "");

        err = auth_find_user(st, slice_of(c.user), &user, errstr,
                             sizeof(errstr));
        if (err) {
                bson_destroy(&inv);
                if (err == STORE_NOT_FOUND)
                        return auth_refuse(ctx, 401, "no such account");
                return auth_store_failed(ctx, err, errstr);
        }
        my_email = auth_bson_str(&user, "email");
        mine = my_email && strcmp(my_email, inv_email) == 0;
        bson_destroy(&user);
        bson_destroy(&inv);
        if (!mine)
                return auth_refuse(ctx, 403,
                                   "this invitation is for another email "
                                   "address");

        auth_command_id(ctx, cmd);
        err = auth_rbac_membership(st, org, c.user, &member, &theirs, errstr,
                                   sizeof(errstr));
        if (err && err != STORE_NOT_FOUND)
                return auth_store_failed(ctx, err, errstr);
        if (err == STORE_OK) {
                bool ours = auth_same(auth_bson_str(&member, "joined_command"),
                                      cmd);
                bson_destroy(&member);
                if (theirs != SCHEMA_ROLE_NONE && !ours)
                        return auth_refuse(ctx, 409,
                                           "you are a member of this "
                                           "organisation already");
        }

        /* A new membership, or a removed one made live again. */
        snprintf(mid, sizeof(mid), "%s|%s", org, c.user);
        bson_init(&filter);
        bson_init(&update);
        BSON_APPEND_UTF8(&filter, "_id", mid);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_UTF8(&set, "org_id", org);
        BSON_APPEND_UTF8(&set, "user_id", c.user);
        BSON_APPEND_UTF8(&set, "role", role);
        BSON_APPEND_DATE_TIME(&set, "created_at", (int64_t)clock_wall_ms());
        BSON_APPEND_UTF8(&set, "invited_by", by);
        BSON_APPEND_UTF8(&set, "invitation_id", inv_id);
        BSON_APPEND_UTF8(&set, "joined_command", cmd);
        bson_append_document_end(&update, &set);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$unset", &unset);
        for (size_t i = 0; i < sizeof(stale) / sizeof(*stale); i++)
                BSON_APPEND_UTF8(&unset, stale[i], "");
        bson_append_document_end(&update, &unset);
        err = store_update_one(st->store, "auth", "memberships", &filter,
                               &update, true, errstr, sizeof(errstr));
        bson_destroy(&update);
        bson_destroy(&filter);
        if (err)
                return auth_store_failed(ctx, err, errstr);

        /* Used up last: if this fails, the retry finds the membership ours
         * and tries again. Someone else using it first can only be the
         * same person (the email matched), whom the membership serves. */
        err = auth_token_consume(st, rt_env(ctx)->id, "invite", secret, &used,
                                 errstr, sizeof(errstr));
        if (err == STORE_OK)
                bson_destroy(&used);
        else if (err != STORE_NOT_FOUND)
                return auth_store_failed(ctx, err, errstr);

        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 2);
        auth_pack_kv(pk, "org_id", org);
        auth_pack_kv(pk, "role", role);
        auth_emit(ctx, "auth.org.member_added", org, 4, "org_id", org,
                  "user_id", c.user, "role", role, "invitation_id", inv_id);
        log_info("org %s: invitation %s accepted", org, inv_id);
        return HANDLER_OK;
}
