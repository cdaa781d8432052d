/*
 * api_defs.c - the definitions API: workflows (PUT a version, get, list),
 * agents (create a version, get with its tools as the model sees them,
 * list) and conversation threads.
 *
 * Writing a definition is idempotent: the same definition as the latest
 * version answers that version (created: false, with the route's one success
 * status), so a retried request makes no new version. Problems the schema
 * cannot state answer 422 naming each field by its path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentkit_internal.h"

static void ak__def_fields(json_t *o, const ak_def_t *def) {
        char t[40];
        const char *k;
        json_t *v;
        json_object_foreach(def->doc, k, v) {
                json_object_set(o, k, v);
        }
        json_object_set_new(o, "version", json_integer(def->version));
        json_object_set_new(
                o, "created_at",
                json_string(ak_time_text(def->created_at, t, sizeof(t))));
}

/* A definition from a command body, without the routing fields. */
static json_t *ak__doc_of(const msgpack_object *body, const char *id_field) {
        json_t *doc = ak_json_of_msgpack(body);
        json_object_del(doc, id_field);
        return doc;
}

static handler_result_t ak__put(rt_ctx_t *ctx, ak_def_kind_t kind,
                                const char *id, json_t *doc,
                                int success_status) {
        ak_state_t *st = ak_state(ctx);
        schema_report_t report;
        rt_caller_t c;
        ak_def_t *def;
        int version = 0;
        bool created = false;
        int64_t at;
        store_err_t err;
        json_t *o;
        rt_caller(ctx, &c);
        def = kind == AK_DEF_AGENT
                      ? ak_def_build_agent(json_incref(doc), st->schemas,
                                           &report)
                      : ak_def_build_workflow(json_incref(doc), st->schemas,
                                              &report);
        if (!def) {
                ak_reply_report(ctx, 422, "Unprocessable Content",
                                kind == AK_DEF_AGENT
                                        ? "the agent's definition has problems"
                                        : "the workflow's definition has "
                                          "problems",
                                &report);
                json_decref(doc);
                return HANDLER_OK;
        }
        ak_def_release(def);
        err = ak_def_put(st, kind, c.tenant, id, doc, c.user, &version,
                         &created, &at);
        if (err) {
                json_decref(doc);
                return ak_store_failed(ctx, err, "writing a definition");
        }
        o = json_pack("{s:s, s:i, s:b}",
                      kind == AK_DEF_AGENT ? "agent_id" : "workflow_id", id,
                      "version", version, "created", created);
        if (ak_str(doc, "name"))
                json_object_set_new(o, "name",
                                    json_string(ak_str(doc, "name")));
        /* One status either way (the document's success; "created" says
         * whether a version was made). */
        ak_reply_json(ctx, success_status, o);
        json_decref(o);
        json_decref(doc);
        return HANDLER_OK;
}

handler_result_t ak_workflows_put(rt_ctx_t *ctx, const msgpack_object *body) {
        char id[AK_ID_MAX + 1];
        slice_t s = codec_map_str(body, "workflow_id");
        if (!rt_require_role(ctx, SCHEMA_ROLE_MEMBER))
                return HANDLER_OK;
        snprintf(id, sizeof(id), "%.*s", (int)s.len, s.ptr ? s.ptr : "");
        if (!ak_name_valid(id)) {
                schema_report_t rep = {0};
                schema_report_add(&rep, "workflow_id", 11,
                                  "must be 1 to 64 letters, digits, '_' or "
                                  "'-'");
                ak_reply_report(ctx, 422, "Unprocessable Content",
                                "bad workflow id", &rep);
                return HANDLER_OK;
        }
        return ak__put(ctx, AK_DEF_WORKFLOW, id,
                       ak__doc_of(body, "workflow_id"), 200);
}

handler_result_t ak_agents_create(rt_ctx_t *ctx, const msgpack_object *body) {
        const env_t *env = rt_env(ctx);
        char id[AK_ID_MAX + 1], seed[80];
        slice_t s = codec_map_str(body, "agent_id");
        if (!rt_require_role(ctx, SCHEMA_ROLE_MEMBER))
                return HANDLER_OK;
        if (s.len) {
                snprintf(id, sizeof(id), "%.*s", (int)s.len, s.ptr);
        } else {
                char uuid[MSGID_TEXT_SIZE];
                snprintf(seed, sizeof(seed), "agent|%.*s", (int)env->id.len,
                         env->id.ptr);
                ak_derive_id(env->created_at_ms, seed, uuid);
                snprintf(id, sizeof(id), "%s", uuid);
        }
        if (!ak_name_valid(id)) {
                schema_report_t rep = {0};
                schema_report_add(&rep, "agent_id", 8,
                                  "must be 1 to 64 letters, digits, '_' or "
                                  "'-'");
                ak_reply_report(ctx, 422, "Unprocessable Content",
                                "bad agent id", &rep);
                return HANDLER_OK;
        }
        return ak__put(ctx, AK_DEF_AGENT, id, ak__doc_of(body, "agent_id"),
                       201);
}

static handler_result_t ak__get(rt_ctx_t *ctx, const msgpack_object *body,
                                ak_def_kind_t kind) {
        const char *field = kind == AK_DEF_AGENT ? "agent_id" : "workflow_id";
        slice_t s = codec_map_str(body, field);
        const msgpack_object *ver = codec_map_get(body, "version");
        char id[AK_ID_MAX + 1];
        rt_caller_t c;
        ak_def_t *def = NULL;
        store_err_t err;
        json_t *o;
        if (!rt_require_role(ctx, SCHEMA_ROLE_VIEWER))
                return HANDLER_OK;
        rt_caller(ctx, &c);
        snprintf(id, sizeof(id), "%.*s", (int)s.len, s.ptr ? s.ptr : "");
        err = ak_def_get(ak_state(ctx), kind, c.tenant, id,
                         ver && ver->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                                 ? (int)ver->via.u64
                                 : 0,
                         &def);
        if (err == STORE_NOT_FOUND) {
                rt_reply_problem(ctx, 404, "Not Found",
                                 kind == AK_DEF_AGENT
                                         ? "no such agent"
                                         : "no such workflow or version");
                return HANDLER_OK;
        }
        if (err)
                return ak_store_failed(ctx, err, "reading a definition");
        o = json_pack("{s:s, s:b}", field, id, "created", 0);
        ak__def_fields(o, def);
        if (kind == AK_DEF_AGENT)
                json_object_set(o, "tool_schemas", def->agent.tool_decls);
        ak_reply_json(ctx, 200, o);
        json_decref(o);
        ak_def_release(def);
        return HANDLER_OK;
}

handler_result_t ak_workflows_get(rt_ctx_t *ctx, const msgpack_object *body) {
        return ak__get(ctx, body, AK_DEF_WORKFLOW);
}

handler_result_t ak_agents_get(rt_ctx_t *ctx, const msgpack_object *body) {
        return ak__get(ctx, body, AK_DEF_AGENT);
}

static handler_result_t ak__list(rt_ctx_t *ctx, const msgpack_object *body,
                                 ak_def_kind_t kind) {
        const msgpack_object *lim = codec_map_get(body, "limit");
        json_t *list = json_array(), *o;
        rt_caller_t c;
        store_err_t err;
        if (!rt_require_role(ctx, SCHEMA_ROLE_VIEWER)) {
                json_decref(list);
                return HANDLER_OK;
        }
        rt_caller(ctx, &c);
        err = ak_def_list(ak_state(ctx), kind, c.tenant,
                          lim && lim->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                                  ? (int)lim->via.u64
                                  : 50,
                          list);
        if (err) {
                json_decref(list);
                return ak_store_failed(ctx, err, "listing definitions");
        }
        o = json_pack("{s:o}", kind == AK_DEF_AGENT ? "agents" : "workflows",
                      list);
        ak_reply_json(ctx, 200, o);
        json_decref(o);
        return HANDLER_OK;
}

handler_result_t ak_workflows_list(rt_ctx_t *ctx, const msgpack_object *body) {
        return ak__list(ctx, body, AK_DEF_WORKFLOW);
}

handler_result_t ak_agents_list(rt_ctx_t *ctx, const msgpack_object *body) {
        return ak__list(ctx, body, AK_DEF_AGENT);
}

handler_result_t ak_threads_get(rt_ctx_t *ctx, const msgpack_object *body) {
        slice_t s = codec_map_str(body, "thread_id");
        bson_t filter = BSON_INITIALIZER, doc;
        char errstr[256], *text;
        rt_caller_t c;
        store_err_t err;
        json_t *j, *o, *msgs, *runs;
        if (!rt_require_role(ctx, SCHEMA_ROLE_VIEWER))
                return HANDLER_OK;
        rt_caller(ctx, &c);
        bson_append_utf8(&filter, "_id", 3, s.ptr, (int)s.len);
        err = store_find_one(ak_state(ctx)->store, rt_db(ctx), AK_THREADS,
                             &filter, NULL, &doc, errstr, sizeof(errstr));
        bson_destroy(&filter);
        if (err && err != STORE_NOT_FOUND)
                return ak_store_failed(ctx, err, "reading a thread");
        j = NULL;
        if (!err) {
                text = bson_as_relaxed_extended_json(&doc, NULL);
                j = text ? json_loads(text, 0, NULL) : NULL;
                bson_free(text);
                bson_destroy(&doc);
        }
        if (!j || !ak_str(j, "tenant") ||
            !slice_eq(c.tenant, ak_str(j, "tenant"))) {
                json_decref(j);
                rt_reply_problem(ctx, 404, "Not Found", "no such thread");
                return HANDLER_OK;
        }
        msgs = ak_str(j, "messages")
                       ? json_loads(ak_str(j, "messages"), 0, NULL)
                       : NULL;
        runs = json_object_get(j, "runs");
        o = json_pack("{s:s#, s:s?, s:o, s:o}", "thread_id", s.ptr, (int)s.len,
                      "agent_id", ak_str(j, "agent_id"), "messages",
                      msgs ? msgs : json_array(), "runs",
                      runs ? json_incref(runs) : json_array());
        ak_reply_json(ctx, 200, o);
        json_decref(o);
        json_decref(j);
        return HANDLER_OK;
}
