/*
 * rbac.c - organisations and memberships, and the helpers the rbac
 * handlers share with invitations.c (declared in auth_internal.h).
 *
 * An organisation is a tenant. A membership (_id "<org>|<user>") gives one
 * user one role in one org, weakest first: viewer, member, admin, owner. The
 * tenant of an access token (tid) is the org its session works in, and its
 * roles claim is the caller's role there. The edge refuses routes the token's
 * role is too weak for; every handler here checks again against the store,
 * because a role may have changed since the token was signed. Every read and
 * write is bounded by the caller's org (env->tenant) or the caller's own
 * memberships, so an id from another org answers 404, exactly like an id
 * that does not exist.
 *
 * Rules kept here:
 *   - an org always has an owner: its last owner can be neither demoted nor
 *     removed, and cannot leave;
 *   - only owners grant or take the owner role, remove owners, and invite
 *     owners (invitations.c); admins manage the other roles.
 *
 * A removed membership is not deleted: its role becomes "none" (which no
 * role check accepts) with removed_at and removed_by, an audit trail that
 * also lets a redelivered removal answer as the first time. Changes carry
 * the id of the command that made them (role_command, removed_command, and
 * invitations.c's joined_command) for the same reason: a retry finds its
 * own work done and only re-emits the events the failed attempt lost.
 *
 * The edge keys commands by tenant, so the commands of one org are handled
 * one at a time: an owner count read before a change cannot go stale before
 * the change is written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "auth_internal.h"
#include "codec.h"
#include "log.h"
#include "msgid.h"

/* The role of a removed membership; schema_role_parse gives NONE for it. */
#define RBAC_REMOVED "none"
/* Why the sessions of a removed member end. */
#define RBAC_REMOVED_REASON "removed from the organisation"

/* ---------------------------------------------------------------------------
 * Helpers (those not static: auth_internal.h)
 * ------------------------------------------------------------------------ */

bool auth_rbac_caller(rt_ctx_t *ctx, auth_rbac_caller_t *c) {
        const env_t *env = rt_env(ctx);
        if (!auth_id_parse(env->user, c->user) ||
            !auth_id_parse(env->tenant, c->org)) {
                rt_reply_problem(ctx, 401, "Unauthorized",
                                 "no authenticated user in an organisation");
                return false;
        }
        auth_id_parse(env->session, c->sid);
        return true;
}

store_err_t auth_rbac_membership(auth_state_t *st, const char *org,
                                 const char *user, bson_t *doc,
                                 schema_role_t *role, char *errstr,
                                 size_t errlen) {
        char id[AUTH_MEMBER_ID];
        bson_t filter = BSON_INITIALIZER;
        const char *name;
        store_err_t err;

        snprintf(id, sizeof(id), "%s|%s", org, user);
        BSON_APPEND_UTF8(&filter, "_id", id);
        BSON_APPEND_UTF8(&filter, "org_id", org);
        err = store_find_one(st->store, "auth", "memberships", &filter, NULL,
                             doc, errstr, errlen);
        bson_destroy(&filter);
        *role = SCHEMA_ROLE_NONE;
        if (err)
                return err;
        name = auth_bson_str(doc, "role");
        if (name)
                *role = schema_role_parse(name, strlen(name));
        return STORE_OK;
}

bool auth_rbac_role(rt_ctx_t *ctx, const char *org, const char *user,
                    schema_role_t *role, handler_result_t *res) {
        store_err_t err;
        *role = auth_member_role(rt_state(ctx), org, user, &err);
        if (err) {
                *res = auth_store_failed(ctx, err, "membership lookup failed");
                return false;
        }
        return true;
}

static bool rbac__count(const bson_t *doc, void *arg) {
        (void)doc;
        (*(size_t *)arg)++;
        return true;
}

/* How many owners org has, counting to 2: all the rules need to know is
 * whether there is more than one. */
static store_err_t rbac__owners(auth_state_t *st, const char *org, size_t *n,
                                char *errstr, size_t errlen) {
        bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
        store_err_t err;
        *n = 0;
        BSON_APPEND_UTF8(&filter, "org_id", org);
        BSON_APPEND_UTF8(&filter, "role", "owner");
        BSON_APPEND_INT64(&opts, "limit", 2);
        err = store_find(st->store, "auth", "memberships", &filter, &opts,
                         rbac__count, n, errstr, errlen);
        bson_destroy(&opts);
        bson_destroy(&filter);
        return err;
}

/* Append {"role": {"$in": [the four roles]}}: live memberships only. */
static void rbac__live_roles(bson_t *filter) {
        bson_t in, arr;
        BSON_APPEND_DOCUMENT_BEGIN(filter, "role", &in);
        BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
        for (int r = SCHEMA_ROLE_VIEWER, i = 0; r <= SCHEMA_ROLE_OWNER;
             r++, i++) {
                char key[16];
                const char *k;
                bson_uint32_to_string((uint32_t)i, &k, key, sizeof(key));
                BSON_APPEND_UTF8(&arr, k, schema_role_name((schema_role_t)r));
        }
        bson_append_array_end(&in, &arr);
        bson_append_document_end(filter, &in);
}

/* ---------------------------------------------------------------------------
 * Lists of memberships joined with the users or orgs they name
 * ------------------------------------------------------------------------ */

typedef struct rbac_entry {
        char id[AUTH_ID_TEXT]; /* the org (my orgs) or the user (members) */
        char role[16];
        int64_t since;
        char *name;  /* the org's or the user's name, once looked up */
        char *email; /* the user's (members) */
} rbac_entry_t;

typedef struct rbac_entries {
        rbac_entry_t *v;
        size_t n, cap;
        const char *id_key; /* which membership field names the entry */
} rbac_entries_t;

static void rbac__entries_free(rbac_entries_t *l) {
        for (size_t i = 0; i < l->n; i++) {
                free(l->v[i].name);
                free(l->v[i].email);
        }
        free(l->v);
        l->v = NULL;
        l->n = l->cap = 0;
}

static bool rbac__collect(const bson_t *doc, void *arg) {
        rbac_entries_t *l = arg;
        const char *id = auth_bson_str(doc, l->id_key);
        const char *role = auth_bson_str(doc, "role");
        rbac_entry_t *e;
        if (!id || !role || strlen(id) >= AUTH_ID_TEXT ||
            strlen(role) >= sizeof(e->role))
                return true;
        if (l->n == l->cap) {
                l->cap = l->cap ? 2 * l->cap : 16;
                l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
        }
        e = &l->v[l->n++];
        memset(e, 0, sizeof(*e));
        snprintf(e->id, sizeof(e->id), "%s", id);
        snprintf(e->role, sizeof(e->role), "%s", role);
        e->since = auth_bson_date(doc, "created_at");
        return l->n < AUTH_LIST_MAX;
}

static bool rbac__fill(const bson_t *doc, void *arg) {
        rbac_entries_t *l = arg;
        const char *id = auth_bson_str(doc, "_id");
        const char *name = auth_bson_str(doc, "name");
        const char *email = auth_bson_str(doc, "email");
        for (size_t i = 0; id && i < l->n; i++) {
                if (strcmp(l->v[i].id, id) != 0 || l->v[i].name)
                        continue;
                l->v[i].name = xstrdup(name ? name : "");
                l->v[i].email = email ? xstrdup(email) : NULL;
                break;
        }
        return true;
}

/* Live memberships matching (key = value), oldest first, then the names
 * (and emails) from coll of the documents they point to, in one query. */
static store_err_t rbac__entries(auth_state_t *st, const char *key,
                                 const char *value, const char *coll,
                                 rbac_entries_t *l, char *errstr,
                                 size_t errlen) {
        bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort, proj,
               id, in;
        store_err_t err;

        BSON_APPEND_UTF8(&filter, key, value);
        rbac__live_roles(&filter);
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
        BSON_APPEND_INT32(&sort, "created_at", 1);
        bson_append_document_end(&opts, &sort);
        BSON_APPEND_INT64(&opts, "limit", AUTH_LIST_MAX);
        err = store_find(st->store, "auth", "memberships", &filter, &opts,
                         rbac__collect, l, errstr, errlen);
        bson_destroy(&opts);
        bson_destroy(&filter);
        if (err || l->n == 0)
                return err;

        bson_init(&filter);
        bson_init(&opts);
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &id);
        BSON_APPEND_ARRAY_BEGIN(&id, "$in", &in);
        for (size_t i = 0; i < l->n; i++) {
                char buf[16];
                const char *k;
                bson_uint32_to_string((uint32_t)i, &k, buf, sizeof(buf));
                BSON_APPEND_UTF8(&in, k, l->v[i].id);
        }
        bson_append_array_end(&id, &in);
        bson_append_document_end(&filter, &id);
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
        BSON_APPEND_INT32(&proj, "name", 1);
        BSON_APPEND_INT32(&proj, "email", 1);
        bson_append_document_end(&opts, &proj);
        err = store_find(st->store, "auth", coll, &filter, &opts, rbac__fill, l,
                         errstr, errlen);
        bson_destroy(&opts);
        bson_destroy(&filter);
        return err;
}

/* ---------------------------------------------------------------------------
 * Organisations
 * ------------------------------------------------------------------------ */

handler_result_t auth_org_create(rt_ctx_t *ctx, const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        slice_t name_in = codec_map_str(body, "name");
        char org_id[AUTH_ID_TEXT], name[512], errstr[256];
        auth_rbac_caller_t c;
        msgpack_packer *pk;
        store_err_t err;

        if (!auth_rbac_caller(ctx, &c))
                return HANDLER_OK;
        /* The org is named after the command that creates it, so a
         * redelivered command finds its own org instead of making another
         * (auth_org_insert is idempotent for the same id). */
        if (!auth_id_parse(rt_env(ctx)->id, org_id)) {
                rt_reply_problem(ctx, 500, "Internal error",
                                 "the command has no usable id");
                return HANDLER_PERMANENT;
        }
        snprintf(name, sizeof(name), "%.*s",
                 (int)(name_in.len < sizeof(name) ? name_in.len
                                                  : sizeof(name) - 1),
                 name_in.ptr ? name_in.ptr : "");
        err = auth_org_insert(st, org_id, name, c.user, errstr, sizeof(errstr));
        if (err)
                return auth_store_failed(ctx, err, errstr);

        pk = rt_reply(ctx, 201);
        msgpack_pack_map(pk, 4);
        auth_pack_kv(pk, "id", org_id);
        auth_pack_kv(pk, "name", name);
        auth_pack_kv(pk, "role", "owner");
        auth_pack_time(pk, "created_at", (int64_t)clock_wall_ms());
        auth_emit(ctx, "auth.org.created", org_id, 2, "org_id", org_id,
                  "created_by", c.user);
        auth_emit(ctx, "auth.org.member_added", org_id, 3, "org_id", org_id,
                  "user_id", c.user, "role", "owner");
        log_info("org %s created", org_id);
        return HANDLER_OK;
}

handler_result_t auth_org_list(rt_ctx_t *ctx, const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        rbac_entries_t l = {NULL, 0, 0, "org_id"};
        auth_rbac_caller_t c;
        char errstr[256];
        msgpack_packer *pk;
        store_err_t err;
        (void)body;

        if (!auth_rbac_caller(ctx, &c))
                return HANDLER_OK;
        err = rbac__entries(st, "user_id", c.user, "orgs", &l, errstr,
                            sizeof(errstr));
        if (err) {
                rbac__entries_free(&l);
                return auth_store_failed(ctx, err, errstr);
        }
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 1);
        codec_pack_str(pk, "orgs");
        msgpack_pack_array(pk, l.n);
        for (size_t i = 0; i < l.n; i++) {
                msgpack_pack_map(pk, 5);
                auth_pack_kv(pk, "id", l.v[i].id);
                auth_pack_kv(pk, "name", l.v[i].name);
                auth_pack_kv(pk, "role", l.v[i].role);
                auth_pack_time(pk, "joined_at", l.v[i].since);
                codec_pack_str(pk, "current");
                if (strcmp(l.v[i].id, c.org) == 0)
                        msgpack_pack_true(pk);
                else
                        msgpack_pack_false(pk);
        }
        rbac__entries_free(&l);
        return HANDLER_OK;
}

handler_result_t auth_org_switch(rt_ctx_t *ctx, const msgpack_object *body) {
        auth_tokens_t tokens;
        auth_rbac_caller_t c;
        char org[AUTH_ID_TEXT];
        schema_role_t role;
        handler_result_t res = HANDLER_OK;

        if (!auth_rbac_caller(ctx, &c))
                return HANDLER_OK;
        /* Not a member and no such org answer alike: the answer never tells
         * that an org exists. */
        if (!auth_id_parse(codec_map_str(body, "org_id"), org))
                return auth_refuse(ctx, 404, "no such organisation");
        if (!auth_rbac_role(ctx, org, c.user, &role, &res))
                return res;
        if (role == SCHEMA_ROLE_NONE)
                return auth_refuse(ctx, 404, "no such organisation");
        if (!c.sid[0])
                return auth_refuse(ctx, 401,
                                   "the token belongs to no session; sign "
                                   "in again");
        res = auth_session_reissue(ctx, c.sid, org, &tokens);
        if (res != HANDLER_OK || !tokens.access)
                return res;
        auth_pack_tokens(rt_reply(ctx, 200), &tokens);
        auth_tokens_free(&tokens);
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * Members
 * ------------------------------------------------------------------------ */

handler_result_t auth_members_list(rt_ctx_t *ctx, const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        rbac_entries_t l = {NULL, 0, 0, "user_id"};
        auth_rbac_caller_t c;
        schema_role_t mine;
        handler_result_t res = HANDLER_OK;
        char errstr[256];
        msgpack_packer *pk;
        store_err_t err;
        (void)body;

        if (!auth_rbac_caller(ctx, &c))
                return HANDLER_OK;
        if (!auth_rbac_role(ctx, c.org, c.user, &mine, &res))
                return res;
        if (mine == SCHEMA_ROLE_NONE)
                return auth_refuse(ctx, 403,
                                   "you are not a member of this "
                                   "organisation");
        err = rbac__entries(st, "org_id", c.org, "users", &l, errstr,
                            sizeof(errstr));
        if (err) {
                rbac__entries_free(&l);
                return auth_store_failed(ctx, err, errstr);
        }
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 1);
        codec_pack_str(pk, "members");
        msgpack_pack_array(pk, l.n);
        for (size_t i = 0; i < l.n; i++) {
                msgpack_pack_map(pk, 5);
                auth_pack_kv(pk, "user_id", l.v[i].id);
                auth_pack_kv(pk, "email", l.v[i].email);
                auth_pack_kv(pk, "name", l.v[i].name);
                auth_pack_kv(pk, "role", l.v[i].role);
                auth_pack_time(pk, "joined_at", l.v[i].since);
        }
        rbac__entries_free(&l);
        return HANDLER_OK;
}

static void rbac__pack_role_change(rt_ctx_t *ctx, const char *org,
                                   const char *user, const char *role,
                                   const char *previous, const char *by) {
        msgpack_packer *pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 4);
        auth_pack_kv(pk, "org_id", org);
        auth_pack_kv(pk, "user_id", user);
        auth_pack_kv(pk, "role", role);
        auth_pack_kv(pk, "previous_role", previous);
        auth_emit(ctx, "auth.org.member_role_changed", org, 5, "org_id", org,
                  "user_id", user, "role", role, "previous_role", previous,
                  "changed_by", by);
}

handler_result_t auth_member_update(rt_ctx_t *ctx, const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        slice_t role_in = codec_map_str(body, "role");
        schema_role_t want = schema_role_parse(role_in.ptr, role_in.len);
        schema_role_t mine, theirs;
        auth_rbac_caller_t c;
        char target[AUTH_ID_TEXT], cmd[AUTH_ID_TEXT], mid[AUTH_MEMBER_ID],
                previous[16], errstr[256];
        bson_t doc, filter, update, set;
        handler_result_t res = HANDLER_OK;
        store_err_t err;
        size_t owners;

        if (!auth_rbac_caller(ctx, &c))
                return HANDLER_OK;
        if (want == SCHEMA_ROLE_NONE)
                return auth_refuse(ctx, 400, "unknown role");
        if (!auth_rbac_role(ctx, c.org, c.user, &mine, &res))
                return res;
        if (mine < SCHEMA_ROLE_ADMIN)
                return auth_refuse(ctx, 403,
                                   "changing roles needs the admin role");
        if (!auth_id_parse(codec_map_str(body, "user_id"), target))
                return auth_refuse(ctx, 404, "no such member");
        err = auth_rbac_membership(st, c.org, target, &doc, &theirs, errstr,
                                   sizeof(errstr));
        if (err == STORE_NOT_FOUND)
                return auth_refuse(ctx, 404, "no such member");
        if (err)
                return auth_store_failed(ctx, err, errstr);
        auth_command_id(ctx, cmd);
        snprintf(previous, sizeof(previous), "%s",
                 auth_bson_str(&doc, "previous_role")
                         ? auth_bson_str(&doc, "previous_role")
                         : "");
        if (theirs == want &&
            auth_same(auth_bson_str(&doc, "role_command"), cmd)) {
                /* A retry of ours: the change is made; answer and tell. */
                bson_destroy(&doc);
                rbac__pack_role_change(ctx, c.org, target,
                                       schema_role_name(want), previous,
                                       c.user);
                return HANDLER_OK;
        }
        bson_destroy(&doc);
        if (theirs == SCHEMA_ROLE_NONE)
                return auth_refuse(ctx, 404, "no such member");
        if ((theirs == SCHEMA_ROLE_OWNER || want == SCHEMA_ROLE_OWNER) &&
            mine != SCHEMA_ROLE_OWNER)
                return auth_refuse(ctx, 403,
                                   "only an owner may grant or take the "
                                   "owner role");
        if (theirs == want) {
                msgpack_packer *pk = rt_reply(ctx, 200);
                msgpack_pack_map(pk, 4);
                auth_pack_kv(pk, "org_id", c.org);
                auth_pack_kv(pk, "user_id", target);
                auth_pack_kv(pk, "role", schema_role_name(want));
                auth_pack_kv(pk, "previous_role", schema_role_name(theirs));
                return HANDLER_OK;
        }
        if (theirs == SCHEMA_ROLE_OWNER) {
                err = rbac__owners(st, c.org, &owners, errstr, sizeof(errstr));
                if (err)
                        return auth_store_failed(ctx, err, errstr);
                if (owners < 2)
                        return auth_refuse(ctx, 409,
                                           "the last owner cannot be "
                                           "demoted: make another member "
                                           "owner first");
        }

        /* Compare and set: the role must still be the one the rules were
         * checked against. */
        snprintf(mid, sizeof(mid), "%s|%s", c.org, target);
        bson_init(&filter);
        bson_init(&update);
        BSON_APPEND_UTF8(&filter, "_id", mid);
        BSON_APPEND_UTF8(&filter, "role", schema_role_name(theirs));
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_UTF8(&set, "role", schema_role_name(want));
        BSON_APPEND_UTF8(&set, "previous_role", schema_role_name(theirs));
        BSON_APPEND_UTF8(&set, "role_changed_by", c.user);
        BSON_APPEND_UTF8(&set, "role_command", cmd);
        BSON_APPEND_DATE_TIME(&set, "role_changed_at",
                              (int64_t)clock_wall_ms());
        bson_append_document_end(&update, &set);
        err = store_update_one(st->store, "auth", "memberships", &filter,
                               &update, false, errstr, sizeof(errstr));
        bson_destroy(&update);
        bson_destroy(&filter);
        if (err == STORE_NOT_FOUND)
                return auth_refuse(ctx, 409,
                                   "the member's role changed meanwhile; "
                                   "try again");
        if (err)
                return auth_store_failed(ctx, err, errstr);
        rbac__pack_role_change(ctx, c.org, target, schema_role_name(want),
                               schema_role_name(theirs), c.user);
        log_info("org %s: member %s is now %s", c.org, target,
                 schema_role_name(want));
        return HANDLER_OK;
}

typedef struct rbac_sids {
        char (*v)[AUTH_ID_TEXT];
        size_t n, cap;
} rbac_sids_t;

static bool rbac__collect_sid(const bson_t *doc, void *arg) {
        rbac_sids_t *l = arg;
        const char *id = auth_bson_str(doc, "_id");
        if (!id || strlen(id) >= AUTH_ID_TEXT)
                return true;
        if (l->n == l->cap) {
                l->cap = l->cap ? 2 * l->cap : 8;
                l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
        }
        snprintf(l->v[l->n++], AUTH_ID_TEXT, "%s", id);
        return true;
}

/*
 * End the sessions of user that work in org. Sessions an earlier attempt of
 * a removal already ended are ended again, so the events that attempt lost
 * go out (an edge hearing a revocation twice only extends it).
 */
static handler_result_t rbac__end_sessions(rt_ctx_t *ctx, const char *org,
                                           const char *user) {
        auth_state_t *st = rt_state(ctx);
        rbac_sids_t l = {NULL, 0, 0};
        bson_t filter = BSON_INITIALIZER, gt, alts, alt;
        handler_result_t res = HANDLER_OK;
        char errstr[256];
        store_err_t err;

        BSON_APPEND_UTF8(&filter, "user_id", user);
        BSON_APPEND_UTF8(&filter, "org_id", org);
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "expires_at", &gt);
        BSON_APPEND_DATE_TIME(&gt, "$gt", (int64_t)clock_wall_ms());
        bson_append_document_end(&filter, &gt);
        BSON_APPEND_ARRAY_BEGIN(&filter, "$or", &alts);
        BSON_APPEND_DOCUMENT_BEGIN(&alts, "0", &alt);
        BSON_APPEND_NULL(&alt, "revoked_at");
        bson_append_document_end(&alts, &alt);
        BSON_APPEND_DOCUMENT_BEGIN(&alts, "1", &alt);
        BSON_APPEND_UTF8(&alt, "revoked_reason", RBAC_REMOVED_REASON);
        bson_append_document_end(&alts, &alt);
        bson_append_array_end(&filter, &alts);
        err = store_find(st->store, "auth", "sessions", &filter, NULL,
                         rbac__collect_sid, &l, errstr, sizeof(errstr));
        bson_destroy(&filter);
        if (err) {
                free(l.v);
                return auth_store_failed(ctx, err, errstr);
        }
        for (size_t i = 0; res == HANDLER_OK && i < l.n; i++)
                res = auth_session_revoke(ctx, user, l.v[i], NULL,
                                          RBAC_REMOVED_REASON);
        free(l.v);
        return res;
}

handler_result_t auth_member_remove(rt_ctx_t *ctx, const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        schema_role_t mine, theirs;
        auth_rbac_caller_t c;
        char target[AUTH_ID_TEXT], cmd[AUTH_ID_TEXT], mid[AUTH_MEMBER_ID],
                errstr[256];
        bson_t doc, filter, update, set;
        handler_result_t res = HANDLER_OK;
        msgpack_packer *pk;
        store_err_t err;
        size_t owners;
        bool self, retry;

        if (!auth_rbac_caller(ctx, &c))
                return HANDLER_OK;
        if (!auth_rbac_role(ctx, c.org, c.user, &mine, &res))
                return res;
        if (!auth_id_parse(codec_map_str(body, "user_id"), target))
                return auth_refuse(ctx, 404, "no such member");
        self = strcmp(target, c.user) == 0;
        /* Before looking at the target: an outsider learns nothing of who
         * is a member. */
        if (mine == SCHEMA_ROLE_NONE && !self)
                return auth_refuse(ctx, 403,
                                   "you are not a member of this "
                                   "organisation");
        err = auth_rbac_membership(st, c.org, target, &doc, &theirs, errstr,
                                   sizeof(errstr));
        if (err == STORE_NOT_FOUND)
                return auth_refuse(ctx, 404, "no such member");
        if (err)
                return auth_store_failed(ctx, err, errstr);
        auth_command_id(ctx, cmd);
        retry = theirs == SCHEMA_ROLE_NONE &&
                auth_same(auth_bson_str(&doc, "removed_command"), cmd);
        bson_destroy(&doc);

        if (!retry) {
                if (theirs == SCHEMA_ROLE_NONE)
                        return auth_refuse(ctx, 404, "no such member");
                if (!self && mine < SCHEMA_ROLE_ADMIN)
                        return auth_refuse(ctx, 403,
                                           "removing others needs the admin "
                                           "role");
                if (!self && theirs == SCHEMA_ROLE_OWNER &&
                    mine != SCHEMA_ROLE_OWNER)
                        return auth_refuse(ctx, 403,
                                           "only an owner may remove an "
                                           "owner");
                if (theirs == SCHEMA_ROLE_OWNER) {
                        err = rbac__owners(st, c.org, &owners, errstr,
                                           sizeof(errstr));
                        if (err)
                                return auth_store_failed(ctx, err, errstr);
                        if (owners < 2)
                                return auth_refuse(
                                        ctx, 409,
                                        self ? "the last owner cannot leave: "
                                               "make another member owner "
                                               "first"
                                             : "the last owner cannot be "
                                               "removed");
                }
                snprintf(mid, sizeof(mid), "%s|%s", c.org, target);
                bson_init(&filter);
                bson_init(&update);
                BSON_APPEND_UTF8(&filter, "_id", mid);
                BSON_APPEND_UTF8(&filter, "role", schema_role_name(theirs));
                BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
                BSON_APPEND_UTF8(&set, "role", RBAC_REMOVED);
                BSON_APPEND_UTF8(&set, "previous_role",
                                 schema_role_name(theirs));
                BSON_APPEND_UTF8(&set, "removed_by", c.user);
                BSON_APPEND_UTF8(&set, "removed_command", cmd);
                BSON_APPEND_DATE_TIME(&set, "removed_at",
                                      (int64_t)clock_wall_ms());
                bson_append_document_end(&update, &set);
                err = store_update_one(st->store, "auth", "memberships",
                                       &filter, &update, false, errstr,
                                       sizeof(errstr));
                bson_destroy(&update);
                bson_destroy(&filter);
                if (err == STORE_NOT_FOUND)
                        return auth_refuse(ctx, 409,
                                           "the member's role changed "
                                           "meanwhile; try again");
                if (err)
                        return auth_store_failed(ctx, err, errstr);
        }
        /* After the membership is gone, so a failure here is retried and a
         * retry finds the removal made and ends what is left. */
        res = rbac__end_sessions(ctx, c.org, target);
        if (res != HANDLER_OK)
                return res;

        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 3);
        auth_pack_kv(pk, "org_id", c.org);
        auth_pack_kv(pk, "user_id", target);
        codec_pack_str(pk, "removed");
        msgpack_pack_true(pk);
        auth_emit(ctx, "auth.org.member_removed", c.org, 3, "org_id", c.org,
                  "user_id", target, "removed_by", c.user);
        log_info("org %s: member %s removed", c.org, target);
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * Indexes
 * ------------------------------------------------------------------------ */

static const store_index_t rbac_indexes[] = {
        /* My orgs. */
        {"memberships", "user_created", "user_id,created_at", false, -1},
        /* An org's members and its owner count. */
        {"memberships", "org_role", "org_id,role", false, -1},
        /* An org's pending invitations. */
        {"tokens", "org_kind", "org_id,kind", false, -1},
        /* A user's sessions in one org, ended when they leave it. */
        {"sessions", "user_org", "user_id,org_id", false, -1},
        {NULL},
};

store_err_t auth_rbac_indexes(auth_state_t *st, char *errstr, size_t errlen) {
        return store_ensure_indexes(st->store, "auth", rbac_indexes, errstr,
                                    errlen);
}
