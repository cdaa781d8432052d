/*
 * clients.c - the routes: onboard a client, list the agency's clients with
 * their progress, one client's checklist, skip a step with a reason.
 * Every read and write is checked against the caller's organisation: a
 * client of another organisation is a 404.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "docjson.h"
#include "log.h"
#include "msgid.h"
#include "onb.h"

handler_result_t onb_store_failed(rt_ctx_t *ctx, store_err_t err) {
        if (store_err_transient(err))
                return HANDLER_TRANSIENT;
        rt_reply_problem(ctx, 500, "Internal error", store_strerror(err));
        return HANDLER_OK;
}

/* The message's body as JSON. */
static json_t *onb__body(rt_ctx_t *ctx) {
        char *text = NULL;
        size_t len = 0;
        json_t *out = NULL;
        if (codec_msgpack_to_json(rt_env(ctx)->value, &text, &len) == CODEC_OK)
                out = json_loadb(text, len, 0, NULL);
        free(text);
        return out;
}

int onb_emit(rt_ctx_t *ctx, const char *type, const char *key, json_t *body) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        int ret;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        codec_pack_json(&pk, body);
        ret = rt_emit(ctx, type, slice_of(key), &sb);
        msgpack_sbuffer_destroy(&sb);
        json_decref(body);
        return ret;
}

json_t *onb_client_find(rt_ctx_t *ctx, slice_t id, store_err_t *err) {
        rt_caller_t c;
        bson_t filter = BSON_INITIALIZER;
        json_t *found, *client = NULL;
        rt_caller(ctx, &c);
        *err = STORE_OK;
        bson_append_utf8(&filter, "_id", 3, id.ptr, (int)id.len);
        bson_append_utf8(&filter, "tenant", 6, c.tenant.ptr, (int)c.tenant.len);
        found = docjson_find(rt_store(ctx), ONB_DB, "clients", &filter, NULL,
                             NULL, err);
        bson_destroy(&filter);
        if (found && json_array_size(found))
                client = json_incref(json_array_get(found, 0));
        json_decref(found);
        if (found && !client)
                rt_reply_problem(ctx, 404, "Not Found", "no such client");
        return client;
}

/* client with its checklist, ready to answer (snap: as onb_facts). */
static json_t *onb__answer(rt_ctx_t *ctx, const projection_snapshot_t *snap,
                           json_t *client, store_err_t *err) {
        const onb_settings_t *set = rt_settings(ctx, &onb_settings);
        json_t *facts = onb_facts(rt_store(ctx), snap, client, err);
        if (!facts)
                return NULL;
        onb_checklist(client, facts, (int64_t)clock_wall_ms(), set->day_s);
        json_decref(facts);
        json_object_set(client, "id", json_object_get(client, "_id"));
        json_object_del(client, "_id");
        json_object_del(client, "tenant");
        return client;
}

/* A new reference to in's array name, or a new empty array. */
static json_t *onb__or_empty(json_t *in, const char *name) {
        json_t *v = json_object_get(in, name);
        return v ? json_incref(v) : json_array();
}

handler_result_t onb_client_create(rt_ctx_t *ctx, const msgpack_object *body) {
        const env_t *env = rt_env(ctx);
        rt_caller_t c;
        json_t *in, *doc, *out;
        bson_t *bd;
        char id[MSGID_TEXT_SIZE], tenant[128], user[128], ws[128], errstr[256];
        slice_t wsid = codec_map_str(body, "workspace_id");
        store_err_t err;
        handler_result_t r;

        if (!rt_require_role(ctx, SCHEMA_ROLE_MEMBER))
                return HANDLER_OK;
        rt_caller(ctx, &c);
        snprintf(tenant, sizeof(tenant), "%.*s", (int)c.tenant.len,
                 c.tenant.ptr);
        snprintf(user, sizeof(user), "%.*s", (int)c.user.len, c.user.ptr);
        snprintf(ws, sizeof(ws), "%.*s",
                 (int)(wsid.len ? wsid.len : c.tenant.len),
                 wsid.len ? wsid.ptr : c.tenant.ptr);
        if (strcmp(ws, tenant) != 0) {
                /* Only a workspace created from the caller's organisation. */
                bson_t filter = BSON_INITIALIZER;
                json_t *found;
                char coll[PROJECTION_COLL_MAX];
                err = onb_coll(rt_store(ctx), NULL, "workspaces", slice_of(ws),
                               coll, sizeof(coll));
                if (err != STORE_OK)
                        return onb_store_failed(ctx, err);
                BSON_APPEND_UTF8(&filter, "_id", ws);
                BSON_APPEND_UTF8(&filter, "tenant", tenant);
                found = docjson_find(rt_store(ctx), ONB_DB, coll, &filter, NULL,
                                     NULL, &err);
                bson_destroy(&filter);
                if (!found)
                        return onb_store_failed(ctx, err);
                if (!json_array_size(found)) {
                        json_decref(found);
                        /* An unknown id in the body, as Stripe answers
                         * one: 404 (the request itself is valid). */
                        rt_reply_problem(ctx, 404, "Not Found",
                                         "workspace_id is not an organisation "
                                         "created from yours (yet)");
                        return HANDLER_OK;
                }
                json_decref(found);
        }
        if (!(in = onb__body(ctx))) {
                rt_reply_problem(ctx, 500, "Internal error",
                                 "the body could not be read");
                return HANDLER_OK;
        }
        snprintf(id, sizeof(id), "%.*s", (int)env->id.len, env->id.ptr);
        doc = json_pack(
                "{s:s, s:s, s:s, s:O, s:o, s:o, s:o, s:o, s:o, s:s, "
                "s:I, s:{}}",
                "_id", id, "tenant", tenant, "workspace", ws, "name",
                json_object_get(in, "name"), "website",
                json_incref(json_object_get(in, "website") ?: json_null()),
                "goals", onb__or_empty(in, "goals"), "monthly_budget_minor",
                json_incref(json_object_get(in, "monthly_budget_minor")
                                    ?: json_null()),
                "currency",
                json_incref(json_object_get(in, "currency") ?: json_null()),
                "contacts", onb__or_empty(in, "contacts"), "created_by", user,
                "created_at", (json_int_t)env->created_at_ms, "skipped");
        json_object_set_new(doc, "providers", onb__or_empty(in, "providers"));
        json_object_set(doc, "account_manager",
                        json_object_get(in, "account_manager") ?: json_null());
        json_decref(in);
        bd = docjson_to_bson(doc);
        err = bd ? store_insert(rt_store(ctx), ONB_DB, "clients", bd, errstr,
                                sizeof(errstr))
                 : STORE_ERROR;
        bson_destroy(bd);
        if (err != STORE_OK && err != STORE_DUPLICATE) {
                json_decref(doc);
                return onb_store_failed(ctx, err);
        }
        onb_emit(ctx, "onboarding.client.created", id,
                 json_pack("{s:s, s:O, s:s, s:O}", "client_id", id, "name",
                           json_object_get(doc, "name"), "workspace_id", ws,
                           "providers", json_object_get(doc, "providers")));
        if (!(out = onb__answer(ctx, NULL, doc, &err))) {
                json_decref(doc);
                return onb_store_failed(ctx, err);
        }
        /* The first deadline's reminder timer, with the client: a
         * redelivered create arms the same timer again (a no-op). */
        r = onb_remind_arm(ctx, id, json_object_get(out, "steps"),
                           (int64_t)clock_wall_ms());
        if (r != HANDLER_OK) {
                json_decref(out);
                return r;
        }
        return docjson_reply_present(ctx, 201, out);
}

handler_result_t onb_client_get(rt_ctx_t *ctx, const msgpack_object *body) {
        store_err_t err = STORE_OK;
        json_t *client, *out;
        if (!rt_require_role(ctx, SCHEMA_ROLE_VIEWER))
                return HANDLER_OK;
        client = onb_client_find(ctx, codec_map_str(body, "client_id"), &err);
        if (!client)
                return err ? onb_store_failed(ctx, err) : HANDLER_OK;
        if (!(out = onb__answer(ctx, NULL, client, &err))) {
                json_decref(client);
                return onb_store_failed(ctx, err);
        }
        return docjson_reply_present(ctx, 200, out);
}

handler_result_t onb_client_list(rt_ctx_t *ctx, const msgpack_object *body) {
        const onb_settings_t *set = rt_settings(ctx, &onb_settings);
        const msgpack_object *lim = codec_map_get(body, "limit");
        rt_caller_t c;
        bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort;
        store_err_t err;
        json_t *list, *items = json_array(), *cl;
        projection_snapshot_t *snap = NULL;
        size_t i;
        int64_t limit = lim ? lim->via.i64 : set->list_max;
        if (!rt_require_role(ctx, SCHEMA_ROLE_VIEWER)) {
                json_decref(items);
                return HANDLER_OK;
        }
        rt_caller(ctx, &c);
        bson_append_utf8(&filter, "tenant", 6, c.tenant.ptr, (int)c.tenant.len);
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
        BSON_APPEND_INT32(&sort, "created_at", -1);
        bson_append_document_end(&opts, &sort);
        BSON_APPEND_INT64(&opts, "limit", limit);
        list = docjson_find(rt_store(ctx), ONB_DB, "clients", &filter, &opts,
                            NULL, &err);
        bson_destroy(&filter);
        bson_destroy(&opts);
        /* The pointer once for the whole page, not once per client. */
        if (!list || (err = onb_pointer(rt_store(ctx), &snap)) != STORE_OK) {
                json_decref(list);
                json_decref(items);
                return onb_store_failed(ctx, err);
        }
        json_array_foreach(list, i, cl) {
                json_t *one = onb__answer(ctx, snap, json_incref(cl), &err);
                if (!one) {
                        json_decref(cl);
                        json_decref(list);
                        json_decref(items);
                        projection_snapshot_free(snap);
                        return onb_store_failed(ctx, err);
                }
                json_array_append_new(
                        items,
                        json_pack(
                                "{s:O, s:O, s:O, s:O, s:O}", "id",
                                json_object_get(one, "id"), "name",
                                json_object_get(one, "name"), "workspace",
                                json_object_get(one, "workspace"), "created_at",
                                json_object_get(one, "created_at"), "progress",
                                json_object_get(one, "progress")));
                json_decref(one);
        }
        json_decref(list);
        projection_snapshot_free(snap);
        return docjson_reply(ctx, 200, json_pack("{s:o}", "clients", items));
}

handler_result_t onb_step_skip(rt_ctx_t *ctx, const msgpack_object *body) {
        slice_t step = codec_map_str(body, "step"),
                reason = codec_map_str(body, "reason");
        store_err_t err = STORE_OK;
        json_t *client, *out, *facts;
        rt_caller_t c;
        char key[128], field[160], id[MSGID_TEXT_SIZE], errstr[256];
        bson_t filter = BSON_INITIALIZER, up = BSON_INITIALIZER, set, s;
        if (!rt_require_role(ctx, SCHEMA_ROLE_MEMBER))
                return HANDLER_OK;
        client = onb_client_find(ctx, codec_map_str(body, "client_id"), &err);
        if (!client)
                return err ? onb_store_failed(ctx, err) : HANDLER_OK;
        snprintf(key, sizeof(key), "%.*s", (int)step.len, step.ptr);
        if (!onb_step_known(client, key)) {
                json_decref(client);
                rt_reply_problem(ctx, 404, "Not Found",
                                 "no such step in this client's checklist");
                return HANDLER_OK;
        }
        if (!(facts = onb_facts(rt_store(ctx), NULL, client, &err))) {
                json_decref(client);
                return onb_store_failed(ctx, err);
        }
        if (json_object_get(facts, key)) {
                json_decref(facts);
                json_decref(client);
                rt_reply_problem(ctx, 409, "Conflict",
                                 "this step is done already");
                return HANDLER_OK;
        }
        json_decref(facts);
        rt_caller(ctx, &c);
        snprintf(id, sizeof(id), "%s",
                 json_string_value(json_object_get(client, "_id")));
        snprintf(field, sizeof(field), "skipped.%s", key);
        BSON_APPEND_UTF8(&filter, "_id", id);
        BSON_APPEND_DOCUMENT_BEGIN(&up, "$set", &set);
        BSON_APPEND_DOCUMENT_BEGIN(&set, field, &s);
        bson_append_utf8(&s, "reason", 6, reason.ptr, (int)reason.len);
        bson_append_utf8(&s, "by", 2, c.user.ptr, (int)c.user.len);
        BSON_APPEND_INT64(&s, "at", rt_env(ctx)->created_at_ms);
        bson_append_document_end(&set, &s);
        bson_append_document_end(&up, &set);
        err = store_update(rt_store(ctx), ONB_DB, "clients", &filter, &up, 0,
                           NULL, errstr, sizeof(errstr));
        bson_destroy(&filter);
        bson_destroy(&up);
        json_decref(client);
        if (err != STORE_OK)
                return onb_store_failed(ctx, err);
        onb_emit(ctx, "onboarding.step.skipped", id,
                 json_pack("{s:s, s:s, s:s#}", "client_id", id, "step", key,
                           "reason", reason.ptr, (int)reason.len));
        client = onb_client_find(ctx, codec_map_str(body, "client_id"), &err);
        if (!client || !(out = onb__answer(ctx, NULL, client, &err))) {
                json_decref(client);
                return onb_store_failed(ctx, err);
        }
        return docjson_reply_present(ctx, 200, out);
}
