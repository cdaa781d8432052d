/*
 * effects.c - carrying out what a transition decided, after it is written.
 *
 * Each effect names what it acts for (a step's attempt, a range of events)
 * and is built from the run's state, so it can be done again from a later
 * state: a crash between the write and the effects makes the redelivered
 * message do them again (run.c). Doing one twice is harmless: a command is
 * sent under an id derived from (run, step, attempt), which the receiver's
 * operation log answers once; an outbox record, a timer and a wait are
 * keyed by the same ids; events keep their ids. A dispatch whose attempt is
 * no longer in flight is skipped.
 *
 * Store writes (timers, outbox, waits, correlation records, child runs) are
 * made here, on the handler's thread; commands and events go out with the
 * handler's outputs, after its operation record (runtime.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentkit_internal.h"

static cmd_caller_t ak__cmd_caller(const json_t *run) {
        cmd_caller_t c = {0};
        c.tenant = slice_of(ak_str(run, "tenant"));
        c.user = slice_of(ak_str(run, "user"));
        c.roles = slice_of(ak_str(run, "roles"));
        return c;
}

static void ak__pack(msgpack_sbuffer *sb, const json_t *v) {
        msgpack_packer pk;
        msgpack_sbuffer_init(sb);
        msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
        ak_pack_json(&pk, v);
}

static bool ak__emit(ak_tx_t *tx, const json_t *e) {
        json_t *events = json_object_get(tx->run, "events");
        int64_t from = ak_int(e, "from", 0), to = ak_int(e, "to", 0);
        rt_out_opts_t o = ak_run_caller(tx->run);
        const char *run_id = ak_str(tx->run, "run_id");
        for (int64_t i = from; i < to; i++) {
                json_t *ev = json_array_get(events, (size_t)i);
                msgpack_sbuffer sb;
                if (!ev)
                        continue;
                json_t *data = ak_event_data(tx->run, ev);
                o.id = ak_str(ev, "id");
                ak__pack(&sb, data);
                json_decref(data);
                if (rt_emit_with(tx->ctx, ak_str(ev, "type"), slice_of(run_id),
                                 &sb, &o))
                        log_error("run %s: event %s not published", run_id,
                                  ak_str(ev, "type"));
                msgpack_sbuffer_destroy(&sb);
        }
        return true;
}

/* The timer of (step, attempt, reason). */
static void ak__timer_id(const json_t *run, const json_t *e, char *out,
                         size_t size) {
        snprintf(out, size, "%s|%s|%lld|%s", ak_str(run, "run_id"),
                 ak_str(e, "step"), (long long)ak_int(e, "a", 0),
                 ak_str(e, "reason"));
}

static bool ak__timer(ak_tx_t *tx, const json_t *e, bool set) {
        char id[TIMER_ID_MAX + 1], errstr[256];
        timer_err_t err;
        ak__timer_id(tx->run, e, id, sizeof(id));
        if (set) {
                json_t *body = json_pack("{s:s, s:s, s:s, s:I}", "run_id",
                                         ak_str(tx->run, "run_id"), "reason",
                                         ak_str(e, "reason"), "step_id",
                                         ak_str(e, "step"), "attempt",
                                         (json_int_t)ak_int(e, "a", 1));
                msgpack_sbuffer sb;
                timer_spec_t spec = {0};
                ak__pack(&sb, body);
                json_decref(body);
                spec.id = id;
                spec.fire_at_ms = ak_int(e, "at", 0);
                spec.type = "agentkit.run.wake";
                spec.key = slice_of(ak_str(tx->run, "run_id"));
                spec.body = (slice_t){sb.data, sb.size};
                spec.caller = ak__cmd_caller(tx->run);
                err = timer_set(tx->st->timers, &spec, errstr, sizeof(errstr));
                msgpack_sbuffer_destroy(&sb);
                if (err == TIMER_FIRED || err == TIMER_FIRING)
                        err = TIMER_OK; /* set before: it is firing */
        } else {
                err = timer_cancel(tx->st->timers, id, errstr, sizeof(errstr));
                if (err == TIMER_NOT_FOUND || err == TIMER_FIRING)
                        err = TIMER_OK; /* a late firing is ignored */
        }
        if (err)
                log_warn("run %s: timer %s: %s", ak_str(tx->run, "run_id"), id,
                         errstr);
        return err != TIMER_STORE_DOWN;
}

static bool ak__command(ak_tx_t *tx, const ak_step_t *step, const json_t *rec,
                        int a) {
        const char *key = ak_str(rec, "key");
        const char *type = ak_str(step->j, "command");
        rt_out_opts_t o = ak_run_caller(tx->run);
        msgpack_sbuffer sb;
        char id_out[MSGID_TEXT_SIZE];
        if (!key || !type)
                return true;
        /* The correlation is in the store with the run's record; the reply
         * usually comes back to this process. */
        ak_cache_put_corr(tx->st->cache, key, ak_str(tx->run, "run_id"),
                          step->id, a);
        o.id = key;
        ak__pack(&sb, json_object_get(rec, "input"));
        rt_request_with(tx->ctx, type, slice_of(ak_str(tx->run, "run_id")), &sb,
                        &o, id_out);
        msgpack_sbuffer_destroy(&sb);
        return true;
}

static bool ak__outbound(ak_tx_t *tx, const ak_step_t *step, const json_t *rec,
                         int a) {
        const ak_settings_t *set = tx->st->set;
        const json_t *in = json_object_get(rec, "input"), *v;
        const char *name;
        httpc_headers_t headers = HTTPC_HEADERS_INIT;
        outbox_request_t req = {0};
        char id[OUTBOX_ID_MAX + 1], url[2200], errstr[256];
        char *body = NULL;
        outbox_err_t err;
        bool llm = step->kind == AK_LLM;

        snprintf(id, sizeof(id), "%s|%s|%d", ak_str(tx->run, "run_id"),
                 step->id, a);
        if (llm) {
                snprintf(url, sizeof(url), "%s/chat/completions",
                         set->llm_base_url);
                body = json_dumps(in, JSON_COMPACT);
                httpc_headers_add(&headers, "Content-Type", "application/json");
        } else {
                snprintf(url, sizeof(url), "%s", ak_str(in, "url"));
                json_object_foreach((json_t *)json_object_get(in, "headers"),
                                    name, v) {
                        if (json_is_string(v))
                                httpc_headers_add(&headers, name,
                                                  json_string_value(v));
                }
                if (json_object_get(in, "body")) {
                        body = json_dumps(json_object_get(in, "body"),
                                          JSON_COMPACT);
                        httpc_headers_add(&headers, "Content-Type",
                                          "application/json");
                }
        }
        req.id = id;
        req.kind = llm ? "llm" : "http";
        req.method = llm ? "POST" : ak_str(in, "method");
        req.url = url;
        req.route = llm ? "/chat/completions" : NULL;
        req.headers = &headers;
        req.body = slice_of(body);
        req.idempotency_key = ak_str(rec, "key");
        /* One try per attempt: the step's own policy retries, on durable
         * timers, each attempt under its own key. */
        req.policy.max_attempts = 1;
        req.policy.timeout_ms = (int)(step->timeout_ms ? step->timeout_ms
                                      : llm            ? set->llm_timeout_ms
                                                       : set->http_timeout_ms);
        if (req.policy.timeout_ms >
            (llm ? set->llm_timeout_ms : set->http_timeout_ms))
                req.policy.timeout_ms =
                        llm ? set->llm_timeout_ms : set->http_timeout_ms;
        req.policy.max_response_bytes = (size_t)set->max_output_bytes;
        req.report.type = "agentkit.run.outcome";
        req.report.key = slice_of(ak_str(tx->run, "run_id"));
        req.report.caller = ak__cmd_caller(tx->run);
        req.report.with_body = true;
        err = outbox_enqueue(tx->st->outbox, &req, errstr, sizeof(errstr));
        httpc_headers_deinit(&headers);
        free(body);
        if (err == OUTBOX_EXISTS)
                return true;
        if (err == OUTBOX_BAD_REQUEST) {
                /* Nothing to retry: the attempt fails when the next message
                 * for the run sees no outcome... so fail it now. */
                log_warn("run %s: step %s: %s", ak_str(tx->run, "run_id"),
                         step->id, errstr);
                return true;
        }
        if (err)
                log_warn("run %s: outbox: %s", ak_str(tx->run, "run_id"),
                         errstr);
        return err != OUTBOX_STORE_DOWN;
}

/* A child run: made here (its first message starts it). */
static bool ak__child(ak_tx_t *tx, const ak_step_t *step, const json_t *rec,
                      int a) {
        const json_t *in = json_object_get(rec, "input");
        const char *child_id = ak_str(rec, "child_run_id");
        rt_out_opts_t caller = ak_run_caller(tx->run);
        ak_def_t *def = NULL;
        store_err_t err;
        json_t *body;
        msgpack_sbuffer sb;
        char wake_id[MSGID_TEXT_SIZE], seed[200];

        err = ak_def_get(tx->st, AK_DEF_WORKFLOW, caller.tenant,
                         ak_str(in, "workflow_id"),
                         (int)ak_int(in, "version", 0), &def);
        if (err == STORE_OK) {
                json_t *state = ak_run_new_state(child_id, "workflow", def,
                                                 json_object_get(in, "input"),
                                                 &caller, tx->now);
                char *text;
                bson_t doc = BSON_INITIALIZER;
                char errstr[256];
                json_object_set_new(state, "parent",
                                    json_pack("{s:s, s:s, s:i}", "run_id",
                                              ak_str(tx->run, "run_id"),
                                              "step_id", step->id, "attempt",
                                              a));
                text = json_dumps(state, JSON_COMPACT);
                BSON_APPEND_UTF8(&doc, "_id", child_id);
                BSON_APPEND_UTF8(&doc, "tenant", ak_str(state, "tenant"));
                BSON_APPEND_UTF8(&doc, "kind", "workflow");
                BSON_APPEND_UTF8(&doc, "workflow_id", def->def_id);
                BSON_APPEND_INT64(&doc, "version", def->version);
                BSON_APPEND_UTF8(&doc, "status", "running");
                BSON_APPEND_INT64(&doc, "seq", 1);
                BSON_APPEND_INT64(&doc, "created_at", tx->now);
                BSON_APPEND_INT64(&doc, "updated_at", tx->now);
                BSON_APPEND_UTF8(&doc, "parent_run_id",
                                 ak_str(tx->run, "run_id"));
                BSON_APPEND_UTF8(&doc, "state", text);
                free(text);
                json_decref(state);
                ak_def_release(def);
                err = store_insert(tx->st->store, runtime_db(tx->st->rt),
                                   AK_RUNS, &doc, errstr, sizeof(errstr));
                bson_destroy(&doc);
                if (err == STORE_DUPLICATE)
                        err = STORE_OK;
                if (err)
                        return !store_err_transient(err);
        } else if (err == STORE_NOT_FOUND || err == STORE_BAD_REPLY) {
                /* No such workflow: the child ends at once, as failed. */
                body = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "run_id",
                                 ak_str(tx->run, "run_id"), "step_id", step->id,
                                 "attempt", a, "child_run_id", child_id,
                                 "status", "failed", "error",
                                 "no such workflow");
                snprintf(seed, sizeof(seed), "%s|child-missing", child_id);
                ak_derive_id(tx->now, seed, wake_id);
                caller.id = wake_id;
                ak__pack(&sb, body);
                json_decref(body);
                rt_send_with(tx->ctx, "agentkit.run.child_ended",
                             slice_of(ak_str(tx->run, "run_id")), &sb, &caller);
                msgpack_sbuffer_destroy(&sb);
                return true;
        } else {
                return !store_err_transient(err);
        }
        body = json_pack("{s:s, s:s}", "run_id", child_id, "reason", "start");
        snprintf(seed, sizeof(seed), "%s|start", child_id);
        ak_derive_id(tx->now, seed, wake_id);
        caller.id = wake_id;
        ak__pack(&sb, body);
        json_decref(body);
        rt_send_with(tx->ctx, "agentkit.run.wake", slice_of(child_id), &sb,
                     &caller);
        msgpack_sbuffer_destroy(&sb);
        return true;
}

static bool ak__dispatch(ak_tx_t *tx, const json_t *e, bool wait) {
        const char *step_id = ak_str(e, "step");
        int a = (int)ak_int(e, "a", 0);
        json_t *S = ak_step_state(tx, step_id), *rec = ak_attempt(S, a);
        const char *st = ak_str(S, "status");
        ak_step_t step;
        if (!rec || ak_int(S, "attempt", 0) != a || !st ||
            (strcmp(st, "running") && strcmp(st, "waiting")) ||
            !ak_step_spec(tx, step_id, &step))
                return true; /* no longer in flight */
        if (wait)
                return ak_wait_add(
                               tx->st, tx->run, step_id, a,
                               ak_str(json_object_get(rec, "input"), "event"),
                               json_object_get(json_object_get(rec, "input"),
                                               "filter"),
                               ak_int(rec, "started_at", tx->now)) !=
                       STORE_UNAVAILABLE;
        switch (step.kind) {
        case AK_COMMAND:
                return ak__command(tx, &step, rec, a);
        case AK_HTTP:
        case AK_LLM:
                return ak__outbound(tx, &step, rec, a);
        case AK_CHILD:
                return ak__child(tx, &step, rec, a);
        default:
                return true;
        }
}

/* A message to a run of this group (a child, the parent), under an id
 * derived from what it stands for. */
static void ak__send(ak_tx_t *tx, const char *type, const char *to,
                     json_t *body, const char *why) {
        rt_out_opts_t o = ak_run_caller(tx->run);
        char id[MSGID_TEXT_SIZE], seed[200];
        msgpack_sbuffer sb;
        snprintf(seed, sizeof(seed), "%s|%s", ak_str(tx->run, "run_id"), why);
        ak_derive_id(tx->now, seed, id);
        o.id = id;
        ak__pack(&sb, body);
        json_decref(body);
        rt_send_with(tx->ctx, type, slice_of(to), &sb, &o);
        msgpack_sbuffer_destroy(&sb);
}

bool ak_fx_exec(ak_tx_t *tx, const json_t *fx) {
        size_t i;
        const json_t *e;
        json_array_foreach(fx, i, e) {
                const char *k = ak_str(e, "k");
                bool ok = true;
                if (!k)
                        continue;
                if (strcmp(k, "emit") == 0) {
                        ok = ak__emit(tx, e);
                } else if (strcmp(k, "dispatch") == 0) {
                        ok = ak__dispatch(tx, e, false);
                } else if (strcmp(k, "wait") == 0) {
                        ok = ak__dispatch(tx, e, true);
                } else if (strcmp(k, "unwait") == 0) {
                        json_t *S = ak_step_state(tx, ak_str(e, "step"));
                        json_t *rec = ak_attempt(S, (int)ak_int(e, "a", 0));
                        ok = ak_wait_remove(
                                     tx->st, tx->run, ak_str(e, "step"),
                                     (int)ak_int(e, "a", 0),
                                     ak_str(json_object_get(rec, "input"),
                                            "event")) != STORE_UNAVAILABLE;
                } else if (strcmp(k, "timer") == 0) {
                        ok = ak__timer(tx, e, true);
                } else if (strcmp(k, "untimer") == 0) {
                        ok = ak__timer(tx, e, false);
                } else if (strcmp(k, "cancel_child") == 0) {
                        json_t *S = ak_step_state(tx, ak_str(e, "step"));
                        json_t *rec = ak_attempt(S, (int)ak_int(e, "a", 0));
                        const char *child = ak_str(rec, "child_run_id");
                        char why[160];
                        snprintf(why, sizeof(why), "cancel|%s", child);
                        if (child)
                                ak__send(tx, "agentkit.run.wake", child,
                                         json_pack("{s:s, s:s}", "run_id",
                                                   child, "reason", "cancel"),
                                         why);
                } else if (strcmp(k, "notify_parent") == 0) {
                        const json_t *p = json_object_get(tx->run, "parent");
                        json_t *body = json_pack(
                                "{s:s, s:s, s:I, s:s, s:s}", "run_id",
                                ak_str(p, "run_id"), "step_id",
                                ak_str(p, "step_id"), "attempt",
                                (json_int_t)ak_int(p, "attempt", 1),
                                "child_run_id", ak_str(tx->run, "run_id"),
                                "status", ak_str(tx->run, "status"));
                        if (json_is_object(json_object_get(tx->run, "output")))
                                json_object_set(
                                        body, "output",
                                        json_object_get(tx->run, "output"));
                        if (ak_str(tx->run, "error"))
                                json_object_set_new(
                                        body, "error",
                                        json_string(ak_str(tx->run, "error")));
                        ak__send(tx, "agentkit.run.child_ended",
                                 ak_str(p, "run_id"), body, "ended");
                } else if (strcmp(k, "thread") == 0) {
                        ok = ak_agent_thread_fx(tx, e);
                }
                if (!ok)
                        return false;
        }
        return true;
}
