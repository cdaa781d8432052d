/*
 * legal.c - legal documents (terms, privacy) and their acceptance.
 *
 * Data (database <prefix>auth):
 *   legal_documents   {_id: "<type>|<version>", type, version, title, body,
 *                      published_at, published_command}
 *   legal_acceptances {_id: "<user>|<type>|<version>", user_id, type,
 *                      version, accepted_at, ip, user_agent, org_id,
 *                      command}
 *
 * Documents are versioned per type; the current one is the highest version.
 * Operators publish over Kafka (auth.legal.publish: there is no route), and
 * every edge hears auth.legal.published {type, version} on auth.events and
 * asks auth.legal.versions when it starts, so it knows which terms version
 * a token must carry (claim tv) for routes that need the current terms.
 * Accepting the current terms answers new tokens for the same session whose
 * tv is that version (auth_session_reissue reads it back through
 * auth_terms_accepted, which sessions.c keeps: it reads user_id, type and
 * version of legal_acceptances).
 *
 * An acceptance is an audit record: who, which version, when, from which
 * address and user agent. It is written once; accepting again changes
 * nothing. Documents are never changed: a correction is a new version.
 * Writes carry the id of the command that made them, so a retry finds its
 * own work and only re-sends what the failed attempt lost.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth_internal.h"
#include "codec.h"
#include "log.h"
#include "msgid.h"

/* "terms" or "privacy", and room to spare. */
#define LEGAL_TYPE_SIZE 16
/* "<user>|<type>|<version>" */
#define LEGAL_ID_SIZE (AUTH_ID_TEXT + LEGAL_TYPE_SIZE + 24)

static const char *const legal__types[] = {"terms", "privacy"};

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* The document type of a body field: its canonical name, or NULL. */
static const char *legal__type(const msgpack_object *body) {
        slice_t s = codec_map_str(body, "type");
        for (size_t i = 0; i < sizeof(legal__types) / sizeof(*legal__types);
             i++)
                if (slice_eq(s, legal__types[i]))
                        return legal__types[i];
        return NULL;
}

/* An integer field the schema checked (>= 1); 0 when absent. */
static int64_t legal__int(const msgpack_object *body, const char *key) {
        const msgpack_object *v = codec_map_get(body, key);
        if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            v->via.u64 <= INT64_MAX)
                return (int64_t)v->via.u64;
        return 0;
}

typedef struct legal_latest {
        bson_t *doc; /* where to copy the document, or NULL */
        bool found;
        int64_t version;
} legal_latest_t;

static bool legal__take(const bson_t *doc, void *arg) {
        legal_latest_t *l = arg;
        l->found = true;
        l->version = auth_bson_int(doc, "version", 0);
        if (l->doc)
                bson_copy_to(doc, l->doc);
        return false;
}

/*
 * The current (highest) version of type: *version (0 when none) and, when
 * doc is not NULL and there is one, a copy of it in *doc (caller destroys;
 * left untouched when there is none).
 */
static store_err_t legal__current(auth_state_t *st, const char *type,
                                  bson_t *doc, int64_t *version, char *errstr,
                                  size_t errlen) {
        bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort;
        legal_latest_t l = {doc, false, 0};
        store_err_t err;

        BSON_APPEND_UTF8(&filter, "type", type);
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
        BSON_APPEND_INT32(&sort, "version", -1);
        bson_append_document_end(&opts, &sort);
        BSON_APPEND_INT64(&opts, "limit", 1);
        err = store_find(st->store, "auth", "legal_documents", &filter, &opts,
                         legal__take, &l, errstr, errlen);
        bson_destroy(&opts);
        bson_destroy(&filter);
        if (err && l.found && doc)
                bson_destroy(doc);
        *version = err ? 0 : l.version;
        if (!err && !l.found && doc)
                return STORE_NOT_FOUND;
        return err;
}

/* ---------------------------------------------------------------------------
 * Documents
 * ------------------------------------------------------------------------ */

/* Reply with the publication and announce it to every edge. */
static void legal__published(rt_ctx_t *ctx, const char *type, int64_t version,
                             const char *title, int64_t at) {
        msgpack_packer *pk = rt_reply(ctx, 201);
        msgpack_sbuffer ev;
        msgpack_packer epk;

        msgpack_pack_map(pk, 4);
        auth_pack_kv(pk, "type", type);
        codec_pack_str(pk, "version");
        msgpack_pack_int64(pk, version);
        auth_pack_kv(pk, "title", title);
        auth_pack_time(pk, "published_at", at);

        msgpack_sbuffer_init(&ev);
        msgpack_packer_init(&epk, &ev, msgpack_sbuffer_write);
        msgpack_pack_map(&epk, 3);
        auth_pack_kv(&epk, "type", type);
        codec_pack_str(&epk, "version");
        msgpack_pack_int64(&epk, version);
        auth_pack_time(&epk, "published_at", at);
        rt_emit(ctx, "auth.legal.published", slice_of(type), &ev);
        msgpack_sbuffer_destroy(&ev);
}

handler_result_t auth_legal_publish(rt_ctx_t *ctx, const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        const char *type = legal__type(body);
        int64_t version = legal__int(body, "version"), current;
        slice_t title = codec_map_str(body, "title");
        slice_t text = codec_map_str(body, "body");
        char id[LEGAL_ID_SIZE], cmd[AUTH_ID_TEXT], errstr[256], detail[160];
        int64_t now = (int64_t)clock_wall_ms();
        bson_t filter = BSON_INITIALIZER, doc;
        store_err_t err;

        if (!type || version < 1)
                return auth_refuse(ctx, 400, "type and version are required");
        auth_command_id(ctx, cmd);
        snprintf(id, sizeof(id), "%s|%lld", type, (long long)version);

        /* This version exists: ours from an earlier attempt, or a clash. */
        BSON_APPEND_UTF8(&filter, "_id", id);
        err = store_find_one(st->store, "auth", "legal_documents", &filter,
                             NULL, &doc, errstr, sizeof(errstr));
        bson_destroy(&filter);
        if (err == STORE_OK) {
                bool ours = auth_same(auth_bson_str(&doc, "published_command"),
                                      cmd);
                if (ours)
                        legal__published(ctx, type, version,
                                         auth_bson_str(&doc, "title"),
                                         auth_bson_date(&doc, "published_at"));
                bson_destroy(&doc);
                if (ours)
                        return HANDLER_OK;
                snprintf(detail, sizeof(detail),
                         "version %lld of the %s is published already",
                         (long long)version, type);
                return auth_refuse(ctx, 409, detail);
        }
        if (err != STORE_NOT_FOUND)
                return auth_store_failed(ctx, err, errstr);

        err = legal__current(st, type, NULL, &current, errstr, sizeof(errstr));
        if (err)
                return auth_store_failed(ctx, err, errstr);
        if (version <= current) {
                snprintf(detail, sizeof(detail),
                         "the version must be greater than the current one "
                         "(%lld)",
                         (long long)current);
                return auth_refuse(ctx, 409, detail);
        }

        bson_init(&doc);
        BSON_APPEND_UTF8(&doc, "_id", id);
        BSON_APPEND_UTF8(&doc, "type", type);
        BSON_APPEND_INT64(&doc, "version", version);
        bson_append_utf8(&doc, "title", -1, title.ptr ? title.ptr : "",
                         (int)title.len);
        bson_append_utf8(&doc, "body", -1, text.ptr ? text.ptr : "",
                         (int)text.len);
        BSON_APPEND_DATE_TIME(&doc, "published_at", now);
        BSON_APPEND_UTF8(&doc, "published_command", cmd);
        err = store_insert(st->store, "auth", "legal_documents", &doc, errstr,
                           sizeof(errstr));
        if (err == STORE_OK)
                legal__published(ctx, type, version,
                                 auth_bson_str(&doc, "title"), now);
        bson_destroy(&doc);
        if (err == STORE_DUPLICATE) {
                snprintf(detail, sizeof(detail),
                         "version %lld of the %s is published already",
                         (long long)version, type);
                return auth_refuse(ctx, 409, detail);
        }
        if (err)
                return auth_store_failed(ctx, err, errstr);
        log_info("legal document published: %s version %lld", type,
                 (long long)version);
        return HANDLER_OK;
}

handler_result_t auth_legal_versions(rt_ctx_t *ctx,
                                     const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        int64_t v[sizeof(legal__types) / sizeof(*legal__types)];
        char errstr[256];
        msgpack_packer *pk;
        (void)body;

        for (size_t i = 0; i < sizeof(v) / sizeof(*v); i++) {
                store_err_t err = legal__current(st, legal__types[i], NULL,
                                                 &v[i], errstr, sizeof(errstr));
                if (err)
                        return auth_store_failed(ctx, err, errstr);
        }
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, sizeof(v) / sizeof(*v));
        for (size_t i = 0; i < sizeof(v) / sizeof(*v); i++) {
                codec_pack_str(pk, legal__types[i]);
                msgpack_pack_int64(pk, v[i]);
        }
        return HANDLER_OK;
}

handler_result_t auth_legal_current(rt_ctx_t *ctx, const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        const char *type = legal__type(body);
        char errstr[256];
        int64_t version;
        msgpack_packer *pk;
        store_err_t err;
        bson_t doc;

        if (!type)
                return auth_refuse(ctx, 404, "no such document type");
        err = legal__current(st, type, &doc, &version, errstr, sizeof(errstr));
        if (err == STORE_NOT_FOUND)
                return auth_refuse(ctx, 404,
                                   "no version of this document is "
                                   "published");
        if (err)
                return auth_store_failed(ctx, err, errstr);
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 5);
        auth_pack_kv(pk, "type", type);
        codec_pack_str(pk, "version");
        msgpack_pack_int64(pk, version);
        auth_pack_kv(pk, "title", auth_bson_str(&doc, "title"));
        auth_pack_kv(pk, "body", auth_bson_str(&doc, "body"));
        auth_pack_time(pk, "published_at",
                       auth_bson_date(&doc, "published_at"));
        bson_destroy(&doc);
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * Acceptances
 * ------------------------------------------------------------------------ */

static void legal__bson_slice(bson_t *doc, const char *key, slice_t v,
                              size_t max) {
        bson_append_utf8(doc, key, -1, v.ptr ? v.ptr : "",
                         (int)(v.len > max ? max : v.len));
}

handler_result_t auth_legal_accept(rt_ctx_t *ctx, const msgpack_object *body) {
        auth_state_t *st = rt_state(ctx);
        const env_t *env = rt_env(ctx);
        const char *type = legal__type(body);
        int64_t version = legal__int(body, "version"), current, at;
        char user[AUTH_ID_TEXT], org[AUTH_ID_TEXT], sid[AUTH_ID_TEXT],
                cmd[AUTH_ID_TEXT], id[LEGAL_ID_SIZE], errstr[256], detail[200],
                num[24], when[32];
        bson_t doc, filter;
        auth_tokens_t tokens;
        handler_result_t res;
        msgpack_packer *pk;
        store_err_t err;
        bool tell = true;

        auth_id_parse(env->user, user);
        auth_id_parse(env->tenant, org);
        auth_id_parse(env->session, sid);
        if (!user[0])
                return auth_refuse(ctx, 401, "no authenticated user");
        if (!type || version < 1)
                return auth_refuse(ctx, 400, "type and version are required");
        err = legal__current(st, type, NULL, &current, errstr, sizeof(errstr));
        if (err)
                return auth_store_failed(ctx, err, errstr);
        if (version != current) {
                if (current == 0)
                        snprintf(detail, sizeof(detail),
                                 "no version of the %s is published", type);
                else
                        snprintf(detail, sizeof(detail),
                                 "version %lld is not the current %s: accept "
                                 "version %lld",
                                 (long long)version, type, (long long)current);
                return auth_refuse(ctx, 409, detail);
        }

        auth_command_id(ctx, cmd);
        at = (int64_t)clock_wall_ms();
        snprintf(id, sizeof(id), "%s|%s|%lld", user, type, (long long)version);
        bson_init(&doc);
        BSON_APPEND_UTF8(&doc, "_id", id);
        BSON_APPEND_UTF8(&doc, "user_id", user);
        BSON_APPEND_UTF8(&doc, "type", type);
        BSON_APPEND_INT64(&doc, "version", version);
        BSON_APPEND_DATE_TIME(&doc, "accepted_at", at);
        legal__bson_slice(&doc, "ip", env->client_ip, 64);
        legal__bson_slice(&doc, "user_agent", env->user_agent, 256);
        BSON_APPEND_UTF8(&doc, "org_id", org);
        BSON_APPEND_UTF8(&doc, "command", cmd);
        err = store_insert(st->store, "auth", "legal_acceptances", &doc, errstr,
                           sizeof(errstr));
        bson_destroy(&doc);
        if (err == STORE_DUPLICATE) {
                /* Accepted before: the first record stands. Its event went
                 * out then, unless that was an attempt of this command. */
                bson_init(&filter);
                BSON_APPEND_UTF8(&filter, "_id", id);
                err = store_find_one(st->store, "auth", "legal_acceptances",
                                     &filter, NULL, &doc, errstr,
                                     sizeof(errstr));
                bson_destroy(&filter);
                if (err == STORE_OK) {
                        tell = auth_same(auth_bson_str(&doc, "command"), cmd);
                        at = auth_bson_date(&doc, "accepted_at");
                        bson_destroy(&doc);
                }
        }
        if (err)
                return auth_store_failed(ctx, err, errstr);
        if (tell) {
                snprintf(num, sizeof(num), "%lld", (long long)version);
                auth_iso_time(at, when);
                auth_emit(ctx, "auth.legal.accepted", org[0] ? org : user, 4,
                          "user_id", user, "type", type, "version", num,
                          "accepted_at", when);
        }

        /* New tokens carry the accepted terms (tv) at once. */
        if (strcmp(type, "terms") == 0 && sid[0] && org[0]) {
                res = auth_session_reissue(ctx, sid, org, &tokens);
                if (res != HANDLER_OK || !tokens.access)
                        return res;
                auth_pack_tokens(rt_reply(ctx, 200), &tokens);
                auth_tokens_free(&tokens);
                return HANDLER_OK;
        }
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 4);
        codec_pack_str(pk, "accepted");
        msgpack_pack_true(pk);
        auth_pack_kv(pk, "type", type);
        codec_pack_str(pk, "version");
        msgpack_pack_int64(pk, version);
        auth_pack_time(pk, "accepted_at", at);
        return HANDLER_OK;
}

static void legal__pack_acceptance(msgpack_packer *pk, const bson_t *doc,
                                   void *arg) {
        (void)arg;
        msgpack_pack_map(pk, 5);
        auth_pack_kv(pk, "type", auth_bson_str(doc, "type"));
        codec_pack_str(pk, "version");
        msgpack_pack_int64(pk, auth_bson_int(doc, "version", 0));
        auth_pack_time(pk, "accepted_at", auth_bson_date(doc, "accepted_at"));
        auth_pack_kv(pk, "ip", auth_bson_str(doc, "ip"));
        auth_pack_kv(pk, "user_agent", auth_bson_str(doc, "user_agent"));
}

handler_result_t auth_legal_acceptances(rt_ctx_t *ctx,
                                        const msgpack_object *body) {
        char user[AUTH_ID_TEXT];
        bson_t filter, opts, sort;
        handler_result_t res;
        (void)body;

        auth_id_parse(rt_env(ctx)->user, user);
        if (!user[0])
                return auth_refuse(ctx, 401, "no authenticated user");
        bson_init(&filter);
        bson_init(&opts);
        BSON_APPEND_UTF8(&filter, "user_id", user);
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
        BSON_APPEND_INT32(&sort, "accepted_at", -1);
        bson_append_document_end(&opts, &sort);
        res = auth_reply_list(ctx, "acceptances", "legal_acceptances", &filter,
                              &opts, legal__pack_acceptance, NULL);
        bson_destroy(&opts);
        bson_destroy(&filter);
        return res;
}

/* ---------------------------------------------------------------------------
 * Indexes
 * ------------------------------------------------------------------------ */

static const store_index_t legal_indexes[] = {
        /* The current version of a type. */
        {"legal_documents", "type_version", "type,-version", false, -1},
        /* A user's acceptances (the audit trail, and the terms check). */
        {"legal_acceptances", "user_accepted", "user_id,-accepted_at", false,
         -1},
        {NULL},
};

store_err_t auth_legal_indexes(auth_state_t *st, char *errstr, size_t errlen) {
        return store_ensure_indexes(st->store, "auth", legal_indexes, errstr,
                                    errlen);
}
