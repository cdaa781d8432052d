/*
 * agent.c - agent runs: a model that calls tools, as a durable workflow
 * whose steps are made as it goes.
 *
 * A turn is one model call (step "llm-<n>", kind llm: the conversation so
 * far and the agent's tools, declared with JSON schemas generated from
 * schemas/) and then one step per tool call it asks for ("tool-<n>-<k>",
 * kind command: the tool is a command of another group, sent with the run's
 * tenant and the starting user's roles, never more). Tool calls of one turn
 * run side by side; once all have ended their results (the reply, or the
 * error) go back to the model as tool messages and the next turn starts.
 * The run ends when the model asks for no tool (its text is the answer), or
 * fails when it reaches its limits (max_iterations model calls, the token
 * budget). A tool the agent may not use, or arguments that are not a JSON
 * object, answer the model with an error (a step of kind noop records it);
 * a tool in approval_tools waits for a person (POST .../approve), and a
 * refusal is answered to the model too. Each step is recorded like a
 * workflow's: a model call whose answer is recorded is never made again.
 *
 * State (run.agent): {agent_id, thread_id, messages: the conversation
 * (system, the thread's earlier messages, the user's, then the turns),
 * first: index of this run's first message, iteration, tokens, turn: {llm,
 * tools: [step ids]}}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentkit_internal.h"

/* ---------------------------------------------------------------------------
 * Tools
 * ------------------------------------------------------------------------ */

void ak_tool_name(const char *type, char *out, size_t size) {
        size_t n = 0;
        for (const char *p = type; *p && n + 2 < size; p++) {
                if (*p == '.') {
                        out[n++] = '_';
                        out[n++] = '_';
                } else {
                        out[n++] = *p;
                }
        }
        out[n] = '\0';
}

bool ak_tool_type(const char *name, char *out, size_t size) {
        size_t n = 0;
        for (const char *p = name; *p; p++) {
                if (n + 1 >= size)
                        return false;
                if (p[0] == '_' && p[1] == '_') {
                        out[n++] = '.';
                        p++;
                } else {
                        out[n++] = *p;
                }
        }
        out[n] = '\0';
        return n > 0;
}

json_t *ak_tool_decls(const schema_set_t *schemas, const json_t *types,
                      char *err, size_t errlen) {
        json_t *out = json_array(), *t;
        size_t i;
        json_array_foreach(types, i, t) {
                const char *type = json_string_value(t);
                const schema_msg_t *m =
                        type ? schema_find(schemas, slice_of(type)) : NULL;
                char name[160], *js;
                json_t *params;
                if (!m || strncmp(type, "agentkit.", 9) == 0 ||
                    m->route.secret_reply ||
                    (!m->read_only && strncmp(type, "auth.", 5) == 0)) {
                        snprintf(err, errlen,
                                 "tools[%zu]: %s is not a command agents may "
                                 "call (another group's, declared in "
                                 "schemas/, not auth's or agentkit's)",
                                 i, type ? type : "?");
                        json_decref(out);
                        return NULL;
                }
                ak_tool_name(type, name, sizeof(name));
                js = schema_msg_json_schema(m);
                params = js ? json_loads(js, 0, NULL) : json_object();
                free(js);
                json_array_append_new(
                        out,
                        json_pack("{s:s, s:{s:s, s:s, s:o}}", "type",
                                  "function", "function", "name", name,
                                  "description", m->summary ? m->summary : type,
                                  "parameters",
                                  params ? params : json_object()));
        }
        return out;
}

/* ---------------------------------------------------------------------------
 * The model's answers
 * ------------------------------------------------------------------------ */

json_t *ak_llm_output(const char *body, char *err, size_t errlen) {
        json_error_t jerr;
        json_t *j = body ? json_loads(body, 0, &jerr) : NULL, *msg, *calls,
               *out, *c;
        size_t i;
        if (!j) {
                snprintf(err, errlen, "the model's answer is not JSON");
                return NULL;
        }
        msg = json_object_get(json_array_get(json_object_get(j, "choices"), 0),
                              "message");
        if (!json_is_object(msg)) {
                snprintf(err, errlen, "the model's answer has no message");
                json_decref(j);
                return NULL;
        }
        out = json_pack("{s:s?, s:O?, s:s?, s:s?}", "content",
                        ak_str(msg, "content"), "usage",
                        json_object_get(j, "usage"), "finish_reason",
                        ak_str(json_array_get(json_object_get(j, "choices"), 0),
                               "finish_reason"),
                        "model", ak_str(j, "model"));
        calls = json_array();
        json_array_foreach(json_object_get(msg, "tool_calls"), i, c) {
                json_t *f = json_object_get(c, "function");
                if (!ak_str(c, "id") || !ak_str(f, "name"))
                        continue;
                json_array_append_new(calls,
                                      json_pack("{s:s, s:s, s:s}", "id",
                                                ak_str(c, "id"), "name",
                                                ak_str(f, "name"), "arguments",
                                                ak_str(f, "arguments")
                                                        ? ak_str(f, "arguments")
                                                        : "{}"));
        }
        json_object_set_new(out, "tool_calls", calls);
        json_decref(j);
        return out;
}

/* ---------------------------------------------------------------------------
 * Turns
 * ------------------------------------------------------------------------ */

static bool ak__listed(const json_t *list, const char *type) {
        size_t i;
        const json_t *t;
        json_array_foreach(list, i, t) {
                if (json_is_string(t) &&
                    strcmp(json_string_value(t), type) == 0)
                        return true;
        }
        return false;
}

/* Start a step the agent made: its declaration is kept in its state. */
static void ak__start(ak_tx_t *tx, json_t *spec, json_t *input) {
        json_t *steps = json_object_get(tx->run, "steps"), *S;
        ak_step_t step;
        char err[64];
        const char *id = ak_str(spec, "id");
        S = json_object_get(steps, id);
        if (!S) {
                S = json_pack("{s:s, s:i, s:i, s:[]}", "status", "pending",
                              "attempt", 0, "tries", 0, "attempts");
                json_object_set_new(steps, id, S);
        }
        json_object_set_new(S, "spec", spec);
        if (!ak_step_parse(spec, &step, err, sizeof(err))) {
                json_decref(input);
                return;
        }
        ak_step_start(tx, &step, input);
}

static void ak__start_llm(ak_tx_t *tx, json_t *ag) {
        char id[32];
        int n = (int)ak_int(ag, "iteration", 0) + 1;
        json_t *in;
        snprintf(id, sizeof(id), "llm-%d", n);
        json_object_set_new(ag, "turn", json_pack("{s:s}", "llm", id));
        in = json_pack("{s:s, s:O}", "model",
                       tx->def->agent.model ? tx->def->agent.model
                                            : tx->st->set->llm_model,
                       "messages", json_object_get(ag, "messages"));
        if (json_array_size(tx->def->agent.tool_decls))
                json_object_set(in, "tools", tx->def->agent.tool_decls);
        ak__start(tx,
                  json_pack("{s:s, s:s, s:{s:i, s:s}}", "id", id, "kind", "llm",
                            "retry", "max_attempts", 3, "on_exhausted",
                            "pause"),
                  in);
}

/* Start the tool calls the model asked for. */
static void ak__start_tools(ak_tx_t *tx, json_t *ag, const json_t *calls) {
        json_t *ids = json_array(), *c;
        int n = (int)ak_int(ag, "iteration", 0);
        size_t k;
        json_object_set(json_object_get(ag, "turn"), "tools", ids);
        json_array_foreach(calls, k, c) {
                char id[64], type[160], name_err[200];
                const char *name = ak_str(c, "name");
                json_t *args = json_loads(ak_str(c, "arguments"), 0, NULL);
                snprintf(id, sizeof(id), "tool-%d-%zu", n, k + 1);
                json_array_append_new(ids, json_string(id));
                if (!ak_tool_type(name, type, sizeof(type)) ||
                    !ak__listed(tx->def->agent.tools, type) ||
                    !json_is_object(args)) {
                        if (!json_is_object(args))
                                snprintf(name_err, sizeof(name_err),
                                         "the arguments of %s are not a JSON "
                                         "object",
                                         name);
                        else
                                snprintf(name_err, sizeof(name_err),
                                         "the tool %s is not allowed for this "
                                         "agent",
                                         name);
                        json_decref(args);
                        ak__start(tx,
                                  json_pack("{s:s, s:s, s:s}", "id", id, "kind",
                                            "noop", "tool_call_id",
                                            ak_str(c, "id")),
                                  json_pack("{s:s}", "error", name_err));
                        continue;
                }
                {
                        json_t *spec = json_pack(
                                "{s:s, s:s, s:s, s:s, s:{s:i, s:s}}", "id", id,
                                "kind", "command", "command", type,
                                "tool_call_id", ak_str(c, "id"), "retry",
                                "max_attempts", 3, "on_exhausted", "fail");
                        if (ak__listed(tx->def->agent.approval_tools, type))
                                json_object_set_new(spec, "approval",
                                                    json_true());
                        ak__start(tx, spec, args);
                }
        }
        json_decref(ids);
}

static bool ak__terminal(const char *st) {
        return st &&
               (strcmp(st, "completed") == 0 || strcmp(st, "failed") == 0 ||
                strcmp(st, "cancelled") == 0);
}

/* Every tool of the turn ended: their results join the conversation. */
static bool ak__close_turn(ak_tx_t *tx, json_t *ag) {
        json_t *tools = json_object_get(json_object_get(ag, "turn"), "tools"),
               *msgs = json_object_get(ag, "messages"), *t;
        size_t i;
        json_array_foreach(tools, i, t) {
                json_t *S = ak_step_state(tx, json_string_value(t));
                if (!ak__terminal(ak_str(S, "status")))
                        return false;
        }
        json_array_foreach(tools, i, t) {
                json_t *S = ak_step_state(tx, json_string_value(t));
                const json_t *spec = json_object_get(S, "spec");
                json_t *result;
                char *text;
                if (strcmp(ak_str(S, "status"), "completed") == 0)
                        result = json_incref((json_t *)ak_step_output(S));
                else
                        result = json_pack("{s:s}", "error",
                                           ak_str(S, "error")
                                                   ? ak_str(S, "error")
                                                   : "the tool failed");
                text = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY);
                json_array_append_new(
                        msgs,
                        json_pack("{s:s, s:s, s:s}", "role", "tool",
                                  "tool_call_id", ak_str(spec, "tool_call_id"),
                                  "content", text ? text : "null"));
                free(text);
                json_decref(result);
        }
        json_object_del(ag, "turn");
        return true;
}

static void ak__finish(ak_tx_t *tx, json_t *ag, const json_t *out) {
        json_t *o = json_pack("{s:s?, s:s?, s:I, s:I}", "answer",
                              ak_str(out, "content"), "thread_id",
                              ak_str(ag, "thread_id"), "iterations",
                              (json_int_t)ak_int(ag, "iteration", 0), "tokens",
                              (json_int_t)ak_int(ag, "tokens", 0));
        ak_fx(tx, json_pack("{s:s}", "k", "thread"));
        ak_run_end(tx, "completed", o, NULL, NULL);
}

void ak_agent_advance(ak_tx_t *tx) {
        json_t *ag = json_object_get(tx->run, "agent");
        for (int turns = 0; turns < 200; turns++) {
                json_t *turn, *S, *out;
                const char *st;
                if (strcmp(ak_str(tx->run, "status"), "running") != 0 || !ag)
                        return;
                turn = json_object_get(ag, "turn");
                if (!turn) {
                        char why[160];
                        if (ak_int(ag, "iteration", 0) >=
                            tx->def->agent.max_iterations) {
                                snprintf(why, sizeof(why),
                                         "the agent reached its limit of %d "
                                         "model calls",
                                         tx->def->agent.max_iterations);
                                ak_run_end(tx, "failed", NULL, why, NULL);
                                return;
                        }
                        if (ak_int(ag, "tokens", 0) >=
                            tx->def->agent.token_budget) {
                                snprintf(
                                        why, sizeof(why),
                                        "the agent used its token budget "
                                        "(%lld)",
                                        (long long)tx->def->agent.token_budget);
                                ak_run_end(tx, "failed", NULL, why, NULL);
                                return;
                        }
                        ak__start_llm(tx, ag);
                        continue;
                }
                S = ak_step_state(tx, ak_str(turn, "llm"));
                st = ak_str(S, "status");
                if (st && (strcmp(st, "pending") == 0 ||
                           (strcmp(st, "retry") == 0 &&
                            ak_int(S, "retry_at", 0) <= tx->now))) {
                        ak_step_t step;
                        if (ak_step_spec(tx, ak_str(turn, "llm"), &step))
                                ak_step_start(
                                        tx, &step,
                                        json_deep_copy(json_object_get(
                                                ak_attempt(S,
                                                           (int)ak_int(
                                                                   S, "attempt",
                                                                   1)),
                                                "input")));
                        continue;
                }
                if (!st || strcmp(st, "completed") != 0)
                        return; /* in flight, waiting, or failed (paused) */
                if (!json_object_get(turn, "tools")) {
                        const json_t *calls;
                        json_t *msg;
                        out = (json_t *)ak_step_output(S);
                        calls = json_object_get(out, "tool_calls");
                        json_object_set_new(
                                ag, "iteration",
                                json_integer(ak_int(ag, "iteration", 0) + 1));
                        json_object_set_new(
                                ag, "tokens",
                                json_integer(
                                        ak_int(ag, "tokens", 0) +
                                        ak_int(json_object_get(out, "usage"),
                                               "total_tokens", 0)));
                        msg = json_pack("{s:s, s:s?}", "role", "assistant",
                                        "content", ak_str(out, "content"));
                        if (json_array_size(calls)) {
                                json_t *tc = json_array(), *c;
                                size_t i;
                                json_array_foreach(calls, i, c) {
                                        json_array_append_new(
                                                tc,
                                                json_pack("{s:s, s:s, s:{s:s, "
                                                          "s:s}}",
                                                          "id", ak_str(c, "id"),
                                                          "type", "function",
                                                          "function", "name",
                                                          ak_str(c, "name"),
                                                          "arguments",
                                                          ak_str(c,
                                                                 "arguments")));
                                }
                                json_object_set_new(msg, "tool_calls", tc);
                        }
                        json_array_append_new(json_object_get(ag, "messages"),
                                              msg);
                        ak_emit(tx, "agentkit.agent.answered",
                                json_pack("{s:s, s:s?, s:O, s:I}", "step_id",
                                          ak_str(turn, "llm"), "content",
                                          ak_str(out, "content"), "tool_calls",
                                          calls ? calls : json_array(),
                                          "tokens",
                                          (json_int_t)ak_int(
                                                  json_object_get(out, "usage"),
                                                  "total_tokens", 0)));
                        if (!json_array_size(calls)) {
                                ak__finish(tx, ag, out);
                                return;
                        }
                        ak__start_tools(tx, ag, calls);
                        continue;
                }
                if (!ak__close_turn(tx, ag))
                        return;
        }
}

void ak_agent_step_ended(ak_tx_t *tx, const char *step_id) {
        /* The flow (ak_agent_advance) closes the turn once all its steps
         * ended; nothing to do at each one. */
        (void)tx;
        (void)step_id;
}

int ak_agent_approve(ak_tx_t *tx, const char *step_id, bool approved,
                     const char *comment, slice_t user) {
        json_t *S = ak_step_state(tx, step_id);
        int a = (int)ak_int(S, "attempt", 0);
        json_t *rec = ak_attempt(S, a);
        if (!json_object_get(json_object_get(S, "spec"), "approval"))
                return 404;
        json_object_set_new(rec, "approval",
                            json_pack("{s:b, s:s#, s:s?, s:I}", "approved",
                                      approved, "by", user.ptr ? user.ptr : "",
                                      (int)user.len, "comment", comment, "at",
                                      (json_int_t)tx->now));
        if (!approved) {
                ak_step_done(tx, step_id, a,
                             json_pack("{s:s, s:s?}", "error",
                                       "a person refused this tool call",
                                       "comment", comment));
                return 0;
        }
        json_object_set_new(S, "status", json_string("running"));
        ak_fx(tx, json_pack("{s:s, s:s, s:i, s:s}", "k", "dispatch", "step",
                            step_id, "a", a, "corr", ak_str(rec, "key")));
        return 0;
}

/* ---------------------------------------------------------------------------
 * Threads: {_id, tenant, agent_id, seq, messages (JSON text), runs: [...]}
 * ------------------------------------------------------------------------ */

bool ak_agent_thread_fx(ak_tx_t *tx, const json_t *effect) {
        const json_t *ag = json_object_get(tx->run, "agent");
        const char *thread = ak_str(ag, "thread_id");
        const char *run_id = ak_str(tx->run, "run_id");
        (void)effect;
        for (int tries = 0; tries < 20 && thread; tries++) {
                bson_t f = BSON_INITIALIZER, doc;
                char errstr[256];
                json_t *j = NULL, *msgs, *runs, *m;
                store_err_t err;
                int64_t seq = 0;
                size_t i, first = (size_t)ak_int(ag, "first", 0);
                char *text, *rtext;
                BSON_APPEND_UTF8(&f, "_id", thread);
                err = store_find_one(tx->st->store, runtime_db(tx->st->rt),
                                     AK_THREADS, &f, NULL, &doc, errstr,
                                     sizeof(errstr));
                bson_destroy(&f);
                if (err && err != STORE_NOT_FOUND)
                        return !store_err_transient(err);
                if (!err) {
                        char *t = bson_as_relaxed_extended_json(&doc, NULL);
                        j = t ? json_loads(t, 0, NULL) : NULL;
                        bson_free(t);
                        bson_destroy(&doc);
                        seq = ak_int(j, "seq", 0);
                }
                runs = json_incref(json_object_get(j, "runs"));
                if (!json_is_array(runs)) {
                        json_decref(runs);
                        runs = json_array();
                }
                json_array_foreach(runs, i, m) {
                        if (strcmp(json_string_value(m) ? json_string_value(m)
                                                        : "",
                                   run_id) == 0) {
                                json_decref(runs);
                                json_decref(j);
                                return true; /* done before */
                        }
                }
                msgs = ak_str(j, "messages")
                               ? json_loads(ak_str(j, "messages"), 0, NULL)
                               : NULL;
                if (!json_is_array(msgs)) {
                        json_decref(msgs);
                        msgs = json_array();
                }
                json_array_foreach(json_object_get(ag, "messages"), i, m) {
                        if (i >= first)
                                json_array_append(msgs, m);
                }
                json_array_append_new(runs, json_string(run_id));
                text = json_dumps(msgs, JSON_COMPACT);
                rtext = NULL;
                {
                        bson_t d = BSON_INITIALIZER, arr;
                        store_bulk_t *b;
                        store_bulk_result_t r = {0};
                        const json_t *x;
                        BSON_APPEND_UTF8(&d, "_id", thread);
                        BSON_APPEND_UTF8(&d, "tenant",
                                         ak_str(tx->run, "tenant"));
                        BSON_APPEND_UTF8(&d, "agent_id",
                                         ak_str(tx->run, "workflow_id"));
                        BSON_APPEND_INT64(&d, "seq", seq + 1);
                        BSON_APPEND_UTF8(&d, "messages", text);
                        BSON_APPEND_ARRAY_BEGIN(&d, "runs", &arr);
                        json_array_foreach(runs, i, x) {
                                char idx[16];
                                const char *key;
                                bson_uint32_to_string((uint32_t)i, &key, idx,
                                                      sizeof(idx));
                                BSON_APPEND_UTF8(&arr, key,
                                                 json_string_value(x));
                        }
                        bson_append_array_end(&d, &arr);
                        BSON_APPEND_INT64(&d, "updated_at", tx->now);
                        if (seq == 0) {
                                err = store_insert(
                                        tx->st->store, runtime_db(tx->st->rt),
                                        AK_THREADS, &d, errstr, sizeof(errstr));
                        } else {
                                bson_t flt = BSON_INITIALIZER;
                                BSON_APPEND_UTF8(&flt, "_id", thread);
                                BSON_APPEND_INT64(&flt, "seq", seq);
                                b = store_bulk_new(tx->st->store,
                                                   runtime_db(tx->st->rt),
                                                   AK_THREADS, true);
                                store_bulk_replace(b, &flt, &d, false);
                                err = store_bulk_run(b, &r, errstr,
                                                     sizeof(errstr));
                                store_bulk_destroy(b);
                                bson_destroy(&flt);
                                if (!err && r.matched == 0)
                                        err = STORE_DUPLICATE;
                        }
                        bson_destroy(&d);
                }
                free(text);
                free(rtext);
                json_decref(msgs);
                json_decref(runs);
                json_decref(j);
                if (err == STORE_DUPLICATE)
                        continue;
                if (err)
                        return !store_err_transient(err);
                return true;
        }
        return true;
}
