/*
 * api_runs.c - the runs API: start (workflows and agents), status, list,
 * history, the SSE stream's past events, cancel, pause, resume, signal,
 * approve and re-run from a step.
 *
 * Every read checks the run's tenant against the caller's: another
 * tenant's run answers 404, as an unknown one does. Commands that change a
 * run are transitions (run.c), keyed by the run id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentkit_internal.h"

#define AK_LIST_MAX 200

static void ak__not_found(rt_ctx_t *ctx) {
        rt_reply_problem(ctx, 404, "Not Found", "no such run");
}

/* The run id a start makes: the client's, or one derived from the
 * command's id (the same on a redelivery). */
static void ak__new_run_id(rt_ctx_t *ctx, const json_t *b, char *out) {
        const env_t *env = rt_env(ctx);
        char seed[128];
        if (ak_str(b, "run_id")) {
                snprintf(out, MSGID_TEXT_SIZE, "%s", ak_str(b, "run_id"));
                return;
        }
        snprintf(seed, sizeof(seed), "run|%.*s", (int)env->id.len, env->id.ptr);
        ak_derive_id(env->created_at_ms, seed, out);
}

static rt_out_opts_t ak__caller_opts(rt_ctx_t *ctx) {
        rt_caller_t c;
        rt_out_opts_t o = {0};
        rt_caller(ctx, &c);
        o.tenant = c.tenant;
        o.user = c.user;
        o.roles = c.roles;
        return o;
}

static json_t *ak__started_reply(const json_t *run, bool created) {
        json_t *r = json_pack(
                "{s:s, s:s, s:s, s:I, s:b}", "run_id", ak_str(run, "run_id"),
                "status", ak_str(run, "status"), "workflow_id",
                ak_str(run, "workflow_id"), "version",
                (json_int_t)ak_int(run, "version", 0), "created", created);
        const char *thread = ak_str(json_object_get(run, "agent"), "thread_id");
        if (thread)
                json_object_set_new(r, "thread_id", json_string(thread));
        return r;
}

/* A start found the run there: the client's run id again (the first run's
 * answer), or another tenant's id (refused). */
static void ak__exists(ak_tx_t *tx) {
        if (!ak_run_visible(tx->ctx, tx->run)) {
                rt_reply_problem(tx->ctx, 409, "Conflict",
                                 "this run id is in use");
                return;
        }
        tx->reply_status = 200;
        tx->reply = ak__started_reply(tx->run, false);
}

typedef struct ak_start_arg {
        const json_t *body;
        ak_def_kind_t kind;
} ak_start_arg_t;

/* The messages an agent run starts with: its instructions, the thread's
 * earlier messages, the user's. 0, or 1 when the answer is a 404 (no such
 * thread for this agent), or -1 when the store failed. */
static int ak__agent_state(ak_tx_t *tx, json_t *run, const json_t *b,
                           const char *run_id) {
        const char *thread = ak_str(b, "thread_id");
        json_t *msgs = json_array(), *old = NULL;
        char tid[MSGID_TEXT_SIZE], seed[80];
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system",
                                              "content",
                                              tx->def->agent.instructions));
        if (thread) {
                bson_t f = BSON_INITIALIZER, doc;
                char errstr[256], *text;
                json_t *j;
                store_err_t err;
                BSON_APPEND_UTF8(&f, "_id", thread);
                err = store_find_one(tx->st->store, runtime_db(tx->st->rt),
                                     AK_THREADS, &f, NULL, &doc, errstr,
                                     sizeof(errstr));
                bson_destroy(&f);
                if (err && err != STORE_NOT_FOUND) {
                        json_decref(msgs);
                        return -1;
                }
                if (!err) {
                        text = bson_as_relaxed_extended_json(&doc, NULL);
                        j = text ? json_loads(text, 0, NULL) : NULL;
                        bson_free(text);
                        bson_destroy(&doc);
                        if (strcmp(ak_str(j, "tenant") ? ak_str(j, "tenant")
                                                       : "",
                                   ak_str(run, "tenant")) == 0 &&
                            strcmp(ak_str(j, "agent_id") ? ak_str(j, "agent_id")
                                                         : "",
                                   tx->def->def_id) == 0)
                                old = ak_str(j, "messages")
                                              ? json_loads(
                                                        ak_str(j, "messages"),
                                                        0, NULL)
                                              : NULL;
                        else
                                err = STORE_NOT_FOUND;
                        json_decref(j);
                }
                if (err == STORE_NOT_FOUND) {
                        rt_reply_problem(tx->ctx, 404, "Not Found",
                                         "no such thread for this agent");
                        json_decref(msgs);
                        return 1;
                }
                snprintf(tid, sizeof(tid), "%s", thread);
        } else {
                snprintf(seed, sizeof(seed), "thread|%s", run_id);
                ak_derive_id(tx->now, seed, tid);
        }
        if (old)
                json_array_extend(msgs, old);
        json_decref(old);
        json_object_set_new(run, "agent",
                            json_pack("{s:s, s:s, s:o, s:I, s:i, s:i}",
                                      "agent_id", tx->def->def_id, "thread_id",
                                      tid, "messages", msgs, "first",
                                      (json_int_t)json_array_size(msgs),
                                      "iteration", 0, "tokens", 0));
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "user",
                                              "content", ak_str(b, "message")));
        return 0;
}

static bool ak__start_apply(ak_tx_t *tx, void *arg) {
        ak_start_arg_t *sa = arg;
        const json_t *b = sa->body;
        rt_out_opts_t caller = ak__caller_opts(tx->ctx);
        const char *id = ak_str(b, sa->kind == AK_DEF_AGENT ? "agent_id"
                                                            : "workflow_id");
        char run_id[MSGID_TEXT_SIZE];
        json_t *run;
        store_err_t err;
        if (tx->run) {
                ak__exists(tx);
                return true;
        }
        err = ak_def_get(tx->st, sa->kind, caller.tenant, id,
                         (int)ak_int(b, "version", 0), &tx->def);
        if (err == STORE_NOT_FOUND) {
                rt_reply_problem(tx->ctx, 404, "Not Found",
                                 sa->kind == AK_DEF_AGENT
                                         ? "no such agent"
                                         : "no such workflow or version");
                return true;
        }
        if (err)
                return !store_err_transient(err);
        ak__new_run_id(tx->ctx, b, run_id);
        run = ak_run_new_state(
                run_id, sa->kind == AK_DEF_AGENT ? "agent" : "workflow",
                tx->def,
                sa->kind == AK_DEF_AGENT ? NULL : json_object_get(b, "input"),
                &caller, tx->now);
        tx->run = run;
        if (sa->kind == AK_DEF_AGENT) {
                int st = ak__agent_state(tx, run, b, run_id);
                if (st) {
                        json_decref(run);
                        tx->run = NULL;
                        return st > 0;
                }
        }
        ak_emit(tx, "agentkit.run.started",
                json_pack("{s:I}", "version", (json_int_t)tx->def->version));
        tx->changed = true;
        tx->reply_status = 201;
        tx->reply = ak__started_reply(run, true);
        return true;
}

static handler_result_t ak__start(rt_ctx_t *ctx, const msgpack_object *body,
                                  ak_def_kind_t kind) {
        json_t *b = ak_json_of_msgpack(body);
        ak_start_arg_t sa = {b, kind};
        char run_id[MSGID_TEXT_SIZE];
        handler_result_t r;
        if (!rt_require_role(ctx, SCHEMA_ROLE_MEMBER)) {
                json_decref(b);
                return HANDLER_OK;
        }
        ak__new_run_id(ctx, b, run_id);
        r = ak_tx_run(ctx, run_id, ak__start_apply, &sa);
        json_decref(b);
        return r;
}

handler_result_t ak_runs_start(rt_ctx_t *ctx, const msgpack_object *body) {
        return ak__start(ctx, body, AK_DEF_WORKFLOW);
}

handler_result_t ak_agents_run(rt_ctx_t *ctx, const msgpack_object *body) {
        return ak__start(ctx, body, AK_DEF_AGENT);
}

/* ---------------------------------------------------------------------------
 * Reads
 * ------------------------------------------------------------------------ */

static void ak__time(json_t *o, const char *key, int64_t ms) {
        char t[40];
        if (ms > 0)
                json_object_set_new(
                        o, key, json_string(ak_time_text(ms, t, sizeof(t))));
}

/* A run's summary (and, full, its steps and what it waits for). */
static json_t *ak__summary(const json_t *run, bool full) {
        json_t *o =
                json_pack("{s:s, s:s, s:s, s:I, s:s}", "run_id",
                          ak_str(run, "run_id"), "kind", ak_str(run, "kind"),
                          "workflow_id", ak_str(run, "workflow_id"), "version",
                          (json_int_t)ak_int(run, "version", 0), "status",
                          ak_str(run, "status"));
        const char *keys[] = {"error", "rerun_of"};
        ak__time(o, "created_at", ak_int(run, "created_at", 0));
        ak__time(o, "updated_at", ak_int(run, "updated_at", 0));
        ak__time(o, "ended_at", ak_int(run, "ended_at", 0));
        for (size_t i = 0; i < 2; i++)
                if (ak_str(run, keys[i]))
                        json_object_set_new(o, keys[i],
                                            json_string(ak_str(run, keys[i])));
        if (ak_str(json_object_get(run, "parent"), "run_id"))
                json_object_set_new(
                        o, "parent_run_id",
                        json_string(ak_str(json_object_get(run, "parent"),
                                           "run_id")));
        if (ak_str(json_object_get(run, "agent"), "thread_id"))
                json_object_set_new(
                        o, "thread_id",
                        json_string(ak_str(json_object_get(run, "agent"),
                                           "thread_id")));
        if (json_is_object(json_object_get(run, "output")))
                json_object_set(o, "output", json_object_get(run, "output"));
        if (!full)
                return o;
        json_object_set(o, "input", json_object_get(run, "input"));
        if (json_object_get(run, "paused"))
                json_object_set(o, "paused", json_object_get(run, "paused"));
        {
                json_t *steps = json_array(), *waiting = json_array(), *S;
                const char *id;
                json_object_foreach(json_object_get(run, "steps"), id, S) {
                        json_t *s = json_pack(
                                "{s:s, s:s, s:I}", "step_id", id, "status",
                                ak_str(S, "status"), "attempt",
                                (json_int_t)ak_int(S, "attempt", 0));
                        const char *kind =
                                ak_str(json_object_get(S, "spec"), "kind");
                        if (ak_step_output(S))
                                json_object_set(s, "output",
                                                (json_t *)ak_step_output(S));
                        if (ak_str(S, "error"))
                                json_object_set_new(
                                        s, "error",
                                        json_string(ak_str(S, "error")));
                        if (json_object_get(S, "reused"))
                                json_object_set_new(s, "reused", json_true());
                        ak__time(s, "started_at", ak_int(S, "started_at", 0));
                        ak__time(s, "ended_at", ak_int(S, "ended_at", 0));
                        ak__time(s, "retry_at", ak_int(S, "retry_at", 0));
                        if (strcmp(ak_str(S, "status"), "waiting") == 0) {
                                json_t *rec = ak_attempt(
                                        S, (int)ak_int(S, "attempt", 0));
                                json_t *w = json_pack("{s:s}", "step_id", id);
                                if (json_object_get(rec, "input"))
                                        json_object_set(
                                                w, "input",
                                                json_object_get(rec, "input"));
                                if (kind)
                                        json_object_set_new(w, "kind",
                                                            json_string(kind));
                                json_array_append_new(waiting, w);
                        }
                        json_array_append_new(steps, s);
                }
                json_object_set_new(o, "steps", steps);
                json_object_set_new(o, "waiting", waiting);
        }
        return o;
}

/* Load a run the caller may see; replies 404 otherwise (run NULL). */
static handler_result_t ak__load_visible(rt_ctx_t *ctx, const char *run_id,
                                         json_t **run) {
        int64_t seq;
        store_err_t err = ak_run_load(ak_state(ctx), run_id, run, &seq);
        if (err == STORE_NOT_FOUND || (!err && !ak_run_visible(ctx, *run))) {
                json_decref(*run);
                *run = NULL;
                ak__not_found(ctx);
                return HANDLER_OK;
        }
        if (err)
                return ak_store_failed(ctx, err, "reading a run");
        return HANDLER_OK;
}

static const char *ak__run_id(const msgpack_object *body, char *buf) {
        slice_t s = codec_map_str(body, "run_id");
        snprintf(buf, MSGID_TEXT_SIZE, "%.*s", (int)s.len, s.ptr ? s.ptr : "");
        return buf;
}

handler_result_t ak_runs_get(rt_ctx_t *ctx, const msgpack_object *body) {
        char id[MSGID_TEXT_SIZE];
        json_t *run = NULL, *o;
        handler_result_t r;
        if (!rt_require_role(ctx, SCHEMA_ROLE_VIEWER))
                return HANDLER_OK;
        r = ak__load_visible(ctx, ak__run_id(body, id), &run);
        if (!run)
                return r;
        o = ak__summary(run, true);
        ak_reply_json(ctx, 200, o);
        json_decref(o);
        json_decref(run);
        return HANDLER_OK;
}

static bool ak__list_one(const bson_t *doc, void *arg) {
        json_t *out = arg, *run;
        bson_iter_t it;
        if (!bson_iter_init_find(&it, doc, "state") ||
            !BSON_ITER_HOLDS_UTF8(&it))
                return true;
        run = json_loads(bson_iter_utf8(&it, NULL), 0, NULL);
        if (run)
                json_array_append_new(out, ak__summary(run, false));
        json_decref(run);
        return true;
}

handler_result_t ak_runs_list(rt_ctx_t *ctx, const msgpack_object *body) {
        json_t *b = ak_json_of_msgpack(body), *runs = json_array(), *o;
        bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort, lt;
        rt_caller_t c;
        char errstr[256];
        store_err_t err;
        const char *keys[] = {"workflow_id", "status", "kind"};
        if (!rt_require_role(ctx, SCHEMA_ROLE_VIEWER)) {
                json_decref(b);
                json_decref(runs);
                return HANDLER_OK;
        }
        rt_caller(ctx, &c);
        bson_append_utf8(&filter, "tenant", 6, c.tenant.ptr, (int)c.tenant.len);
        for (size_t i = 0; i < 3; i++)
                if (ak_str(b, keys[i]))
                        BSON_APPEND_UTF8(&filter, keys[i], ak_str(b, keys[i]));
        if (ak_str(b, "before") && ak_time_parse(ak_str(b, "before")) > 0) {
                BSON_APPEND_DOCUMENT_BEGIN(&filter, "created_at", &lt);
                BSON_APPEND_INT64(&lt, "$lt",
                                  ak_time_parse(ak_str(b, "before")));
                bson_append_document_end(&filter, &lt);
        }
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
        BSON_APPEND_INT32(&sort, "created_at", -1);
        bson_append_document_end(&opts, &sort);
        BSON_APPEND_INT64(&opts, "limit", ak_int(b, "limit", 50));
        err = store_find(ak_state(ctx)->store, rt_db(ctx), AK_RUNS, &filter,
                         &opts, ak__list_one, runs, errstr, sizeof(errstr));
        bson_destroy(&filter);
        bson_destroy(&opts);
        json_decref(b);
        if (err) {
                json_decref(runs);
                return ak_store_failed(ctx, err, "listing runs");
        }
        o = json_pack("{s:o}", "runs", runs);
        ak_reply_json(ctx, 200, o);
        json_decref(o);
        return HANDLER_OK;
}

handler_result_t ak_runs_history(rt_ctx_t *ctx, const msgpack_object *body) {
        char id[MSGID_TEXT_SIZE];
        json_t *run = NULL, *attempts = json_array(), *events = json_array(),
               *S, *o, *e;
        const char *sid;
        size_t i;
        handler_result_t r;
        if (!rt_require_role(ctx, SCHEMA_ROLE_VIEWER)) {
                json_decref(attempts);
                json_decref(events);
                return HANDLER_OK;
        }
        r = ak__load_visible(ctx, ak__run_id(body, id), &run);
        if (!run) {
                json_decref(attempts);
                json_decref(events);
                return r;
        }
        json_object_foreach(json_object_get(run, "steps"), sid, S) {
                json_t *a;
                json_array_foreach(json_object_get(S, "attempts"), i, a) {
                        json_t *x = json_deep_copy(a);
                        int64_t t0 = ak_int(a, "started_at", 0);
                        json_object_set_new(x, "step_id", json_string(sid));
                        json_object_set_new(x, "attempt",
                                            json_integer(ak_int(a, "n", 0)));
                        json_object_del(x, "n");
                        json_object_del(x, "started_at");
                        json_object_del(x, "ended_at");
                        ak__time(x, "started_at", t0);
                        ak__time(x, "ended_at", ak_int(a, "ended_at", 0));
                        json_object_set_new(x, "t", json_integer(t0));
                        if (json_object_get(S, "reused"))
                                json_object_set_new(x, "reused", json_true());
                        json_array_append_new(attempts, x);
                }
        }
        /* In the order they started. */
        for (size_t n = json_array_size(attempts), k = 1; k < n; k++)
                for (size_t m = k;
                     m > 0 &&
                     ak_int(json_array_get(attempts, m - 1), "t", 0) >
                             ak_int(json_array_get(attempts, m), "t", 0);
                     m--) {
                        json_t *x = json_incref(json_array_get(attempts, m));
                        json_array_set(attempts, m,
                                       json_array_get(attempts, m - 1));
                        json_array_set_new(attempts, m - 1, x);
                }
        json_array_foreach(attempts, i, e) {
                json_object_del(e, "t");
        }
        json_array_foreach(json_object_get(run, "events"), i, e) {
                json_t *x = json_pack("{s:s, s:s, s:o}", "id", ak_str(e, "id"),
                                      "type", ak_str(e, "type"), "data",
                                      ak_event_data(run, e));
                ak__time(x, "at", ak_int(e, "at", 0));
                json_array_append_new(events, x);
        }
        o = json_pack("{s:s, s:s, s:o, s:o}", "run_id", id, "status",
                      ak_str(run, "status"), "attempts", attempts, "events",
                      events);
        ak_reply_json(ctx, 200, o);
        json_decref(o);
        json_decref(run);
        return HANDLER_OK;
}

handler_result_t ak_runs_past_events(rt_ctx_t *ctx,
                                     const msgpack_object *body) {
        char id[MSGID_TEXT_SIZE];
        slice_t after = codec_map_str(body, "after");
        json_t *run = NULL, *out = json_array(), *e, *o;
        const char *st;
        size_t i, from = 0;
        handler_result_t r = ak__load_visible(ctx, ak__run_id(body, id), &run);
        if (!run) {
                json_decref(out);
                return r;
        }
        if (after.len)
                json_array_foreach(json_object_get(run, "events"), i, e) {
                        if (slice_eq(after, ak_str(e, "id")))
                                from = i + 1;
                }
        json_array_foreach(json_object_get(run, "events"), i, e) {
                if (i >= from)
                        json_array_append_new(
                                out, json_pack("{s:s, s:s, s:o}", "id",
                                               ak_str(e, "id"), "type",
                                               ak_str(e, "type"), "data",
                                               ak_event_data(run, e)));
        }
        st = ak_str(run, "status");
        o = json_pack("{s:o, s:b}", "events", out, "done",
                      strcmp(st, "completed") == 0 ||
                              strcmp(st, "failed") == 0 ||
                              strcmp(st, "cancelled") == 0);
        ak_reply_json(ctx, 200, o);
        json_decref(o);
        json_decref(run);
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * Commands on a run
 * ------------------------------------------------------------------------ */

typedef struct ak_cmd_arg {
        const char *verb;
        json_t *body;
} ak_cmd_arg_t;

static void ak__conflict(ak_tx_t *tx, const char *verb) {
        char why[160];
        snprintf(why, sizeof(why), "a %s run cannot be %s",
                 ak_str(tx->run, "status"),
                 strcmp(verb, "cancel") == 0   ? "cancelled"
                 : strcmp(verb, "pause") == 0  ? "paused"
                 : strcmp(verb, "resume") == 0 ? "resumed"
                                               : "signalled");
        rt_reply_problem(tx->ctx, 409, "Conflict", why);
}

static bool ak__cmd_apply(ak_tx_t *tx, void *arg) {
        ak_cmd_arg_t *ca = arg;
        const char *v = ca->verb;
        bool ok = false, delivered = false;
        if (!tx->run || !ak_run_visible(tx->ctx, tx->run)) {
                ak__not_found(tx->ctx);
                return true;
        }
        if (strcmp(v, "cancel") == 0)
                ok = ak_run_cancel(tx, "cancelled by a person");
        else if (strcmp(v, "pause") == 0)
                ok = ak_run_pause(tx);
        else if (strcmp(v, "resume") == 0)
                ok = ak_run_resume(tx);
        else if (strcmp(v, "signal") == 0)
                ok = ak_run_signal(
                        tx, ak_str(ca->body, "name"),
                        json_incref(json_object_get(ca->body, "payload")),
                        &delivered);
        else if (strcmp(v, "approve") == 0) {
                rt_caller_t c;
                int st;
                rt_caller(tx->ctx, &c);
                st = ak_run_approve(
                        tx, ak_str(ca->body, "step_id"),
                        json_is_true(json_object_get(ca->body, "approved")),
                        ak_str(ca->body, "comment"), c.user, c.role);
                if (st == 404) {
                        rt_reply_problem(tx->ctx, 404, "Not Found",
                                         "no step of this run waits for an "
                                         "approval under this id");
                        return true;
                }
                if (st == 403) {
                        rt_reply_problem(tx->ctx, 403, "Forbidden",
                                         "this approval needs a stronger "
                                         "role");
                        return true;
                }
                ok = true;
        }
        if (!ok) {
                ak__conflict(tx, v);
                return true;
        }
        tx->changed = true;
        tx->reply_status = 200;
        tx->reply = json_pack("{s:s, s:s}", "run_id", ak_str(tx->run, "run_id"),
                              "status", ak_str(tx->run, "status"));
        if (strcmp(v, "signal") == 0)
                json_object_set_new(tx->reply, "delivered",
                                    json_boolean(delivered));
        if (strcmp(v, "approve") == 0)
                json_object_set_new(tx->reply, "step_id",
                                    json_string(ak_str(ca->body, "step_id")));
        return true;
}

static handler_result_t ak__cmd(rt_ctx_t *ctx, const msgpack_object *body,
                                const char *verb) {
        ak_cmd_arg_t ca = {verb, ak_json_of_msgpack(body)};
        char id[MSGID_TEXT_SIZE];
        handler_result_t r;
        if (!rt_require_role(ctx, SCHEMA_ROLE_MEMBER)) {
                json_decref(ca.body);
                return HANDLER_OK;
        }
        r = ak_tx_run(ctx, ak__run_id(body, id), ak__cmd_apply, &ca);
        json_decref(ca.body);
        return r;
}

handler_result_t ak_runs_cancel(rt_ctx_t *ctx, const msgpack_object *body) {
        return ak__cmd(ctx, body, "cancel");
}

handler_result_t ak_runs_pause(rt_ctx_t *ctx, const msgpack_object *body) {
        return ak__cmd(ctx, body, "pause");
}

handler_result_t ak_runs_resume(rt_ctx_t *ctx, const msgpack_object *body) {
        return ak__cmd(ctx, body, "resume");
}

handler_result_t ak_runs_signal(rt_ctx_t *ctx, const msgpack_object *body) {
        return ak__cmd(ctx, body, "signal");
}

handler_result_t ak_runs_approve(rt_ctx_t *ctx, const msgpack_object *body) {
        return ak__cmd(ctx, body, "approve");
}

/* ---------------------------------------------------------------------------
 * Re-run from a step
 * ------------------------------------------------------------------------ */

typedef struct ak_rerun_arg {
        json_t *old;
        const char *from;
} ak_rerun_arg_t;

/* Copy a step's state (and those inside its branches) as reused. */
static void ak__reuse(json_t *to, const json_t *from, const ak_step_t *step) {
        json_t *S = json_object_get(json_object_get(from, "steps"), step->id);
        if (S) {
                json_t *c = json_deep_copy(S);
                json_object_set_new(c, "reused", json_true());
                json_object_set_new(json_object_get(to, "steps"), step->id, c);
        }
        for (size_t b = 0; b < step->n_branches; b++) {
                const ak_seq_t *seq = &step->branches[b];
                json_t *SS = json_object_get(json_object_get(from, "seqs"),
                                             seq->name);
                if (SS)
                        json_object_set_new(json_object_get(to, "seqs"),
                                            seq->name, json_deep_copy(SS));
                for (size_t i = 0; i < seq->n; i++)
                        ak__reuse(to, from, &seq->steps[i]);
        }
}

static bool ak__rerun_apply(ak_tx_t *tx, void *arg) {
        ak_rerun_arg_t *ra = arg;
        const ak_seq_t *root;
        rt_out_opts_t caller = ak__caller_opts(tx->ctx);
        char run_id[MSGID_TEXT_SIZE];
        json_t *run;
        size_t pos = 0;
        store_err_t err;
        schema_report_t rep = {0};
        if (tx->run) {
                ak__exists(tx);
                return true;
        }
        err = ak_def_get_key(tx->st, ak_str(ra->old, "def_key"), &tx->def);
        if (err)
                return !store_err_transient(err);
        root = &tx->def->root;
        for (pos = 0; pos < root->n; pos++)
                if (strcmp(root->steps[pos].id, ra->from) == 0)
                        break;
        if (tx->def->kind != AK_DEF_WORKFLOW || pos == root->n) {
                schema_report_add(&rep, "from_step", 9,
                                  "must be a step of the workflow's main "
                                  "list");
                ak_reply_report(tx->ctx, 422, "Unprocessable Content",
                                "cannot re-run from this step", &rep);
                return true;
        }
        for (size_t i = 0; i < pos; i++) {
                json_t *S = json_object_get(json_object_get(ra->old, "steps"),
                                            root->steps[i].id);
                if (!S || strcmp(ak_str(S, "status"), "completed") != 0) {
                        char why[160];
                        snprintf(why, sizeof(why),
                                 "step %s had not completed in that run",
                                 root->steps[i].id);
                        schema_report_add(&rep, "from_step", 9, why);
                        ak_reply_report(tx->ctx, 422, "Unprocessable Content",
                                        "cannot re-run from this step", &rep);
                        return true;
                }
        }
        ak__new_run_id(tx->ctx, NULL, run_id);
        run = ak_run_new_state(run_id, "workflow", tx->def,
                               json_object_get(ra->old, "input"), &caller,
                               tx->now);
        json_object_set_new(run, "rerun_of",
                            json_string(ak_str(ra->old, "run_id")));
        for (size_t i = 0; i < pos; i++)
                ak__reuse(run, ra->old, &root->steps[i]);
        json_object_set_new(json_object_get(run, "seqs"), "root",
                            json_pack("{s:I, s:s, s:s?}", "pos",
                                      (json_int_t)pos, "status", "running",
                                      "last",
                                      pos ? root->steps[pos - 1].id : NULL));
        tx->run = run;
        ak_emit(tx, "agentkit.run.started",
                json_pack("{s:I, s:s}", "version", (json_int_t)tx->def->version,
                          "rerun_of", ak_str(ra->old, "run_id")));
        tx->changed = true;
        tx->reply_status = 201;
        tx->reply = json_pack("{s:s, s:s, s:s}", "run_id", run_id, "rerun_of",
                              ak_str(ra->old, "run_id"), "status", "running");
        return true;
}

handler_result_t ak_runs_rerun(rt_ctx_t *ctx, const msgpack_object *body) {
        char id[MSGID_TEXT_SIZE], run_id[MSGID_TEXT_SIZE];
        json_t *old = NULL;
        ak_rerun_arg_t ra;
        handler_result_t r;
        slice_t from = codec_map_str(body, "from_step");
        char from_buf[AK_ID_MAX + 1];
        if (!rt_require_role(ctx, SCHEMA_ROLE_MEMBER))
                return HANDLER_OK;
        r = ak__load_visible(ctx, ak__run_id(body, id), &old);
        if (!old)
                return r;
        snprintf(from_buf, sizeof(from_buf), "%.*s", (int)from.len, from.ptr);
        ra.old = old;
        ra.from = from_buf;
        ak__new_run_id(ctx, NULL, run_id);
        if (strcmp(ak_str(old, "kind"), "workflow") != 0) {
                rt_reply_problem(ctx, 422, "Unprocessable Content",
                                 "only workflow runs can be re-run from a "
                                 "step");
                r = HANDLER_OK;
        } else {
                r = ak_tx_run(ctx, run_id, ak__rerun_apply, &ra);
        }
        json_decref(old);
        return r;
}
