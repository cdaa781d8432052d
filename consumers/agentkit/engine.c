/*
 * engine.c - steps: attempts, results, retries, timeouts and events.
 *
 * A step's state in the run (steps.<id>): {status, attempt, tries,
 * attempts: [{n, status, input, output, error, code, key, started_at,
 * ended_at}], output, error, started_at, ended_at, retry_at, next}.
 * status: pending (the cursor is on it, not started), running (its effect
 * is out: a command, an outbound call, a child run, branches), waiting (a
 * timer, an event, a person), retry (an attempt failed; the next is due at
 * retry_at), completed, failed (for good), cancelled. `attempt` numbers
 * every attempt of the run's life (a loop that comes back to a step goes on
 * counting), so the ids derived from (run, step, attempt) are never reused;
 * `tries` counts those of the current pass for the retry policy.
 *
 * Starting an attempt records it and queues its effect in the same
 * transition: the write comes first, the effect after (run.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentkit_internal.h"

#define AK_EVENT_VALUE_MAX 16384

/* ---------------------------------------------------------------------------
 * Events and effects
 * ------------------------------------------------------------------------ */

json_t *ak_event_data(const json_t *run, const json_t *ev) {
        json_t *d = json_deep_copy(json_object_get(ev, "data"));
        const char *type = ak_str(ev, "type");
        if (!d)
                d = json_object();
        if (type && strcmp(type, "agentkit.step.completed") == 0) {
                json_t *S = json_object_get(json_object_get(run, "steps"),
                                            ak_str(d, "step_id"));
                json_t *rec = ak_attempt(S, (int)ak_int(d, "attempt", 0));
                if (json_object_get(rec, "output"))
                        json_object_set_new(
                                d, "output",
                                ak_event_value(json_object_get(rec, "output")));
        }
        return d;
}

json_t *ak_event_value(const json_t *v) {
        char *text = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        size_t n = text ? strlen(text) : 0;
        free(text);
        if (!v || !json_is_object(v))
                return json_object();
        if (n > AK_EVENT_VALUE_MAX)
                return json_pack("{s:b, s:I}", "truncated", 1, "bytes",
                                 (json_int_t)n);
        return json_deep_copy(v);
}

/* An event the runtime would refuse (a bug) would fail the whole
 * transition's message after the run was written: checked here first, and
 * dropped with a log line rather than recorded. */
static bool ak__event_ok(ak_tx_t *tx, const char *type, const json_t *data) {
        const schema_event_t *decl =
                schema_find_event(tx->st->schemas, slice_of(type));
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_zone zone;
        msgpack_object obj;
        schema_report_t report;
        size_t off = 0;
        bool ok = false;
        if (!decl)
                return false;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        ak_pack_json(&pk, data);
        msgpack_zone_init(&zone, 1024);
        if (msgpack_unpack(sb.data, sb.size, &off, &zone, &obj) ==
            MSGPACK_UNPACK_SUCCESS)
                ok = schema_event_validate(decl, &obj, &report);
        if (!ok)
                log_error("run %s: event %s dropped: %s %s",
                          ak_str(tx->run, "run_id"), type,
                          report.n ? report.v[0].field : "",
                          report.n ? report.v[0].reason : "");
        msgpack_zone_destroy(&zone);
        msgpack_sbuffer_destroy(&sb);
        return ok;
}

void ak_emit(ak_tx_t *tx, const char *type, json_t *data) {
        json_t *events = json_object_get(tx->run, "events");
        json_t *last = json_array_get(tx->fx, json_array_size(tx->fx) - 1);
        char seed[160], id[MSGID_TEXT_SIZE];
        size_t index;
        const char *k;
        json_t *v;
        void *tmp;
        /* Absent, not null: declarations type every field they name. */
        json_object_foreach_safe(data, tmp, k, v) {
                if (json_is_null(v))
                        json_object_del(data, k);
        }
        if (!json_is_array(events)) {
                events = json_array();
                json_object_set_new(tx->run, "events", events);
        }
        index = json_array_size(events);
        json_object_set_new(data, "run_id",
                            json_string(ak_str(tx->run, "run_id")));
        json_object_set_new(data, "workflow_id",
                            json_string(ak_str(tx->run, "workflow_id")));
        json_object_set_new(data, "kind", json_string(ak_str(tx->run, "kind")));
        if (!ak__event_ok(tx, type, data)) {
                json_decref(data);
                return;
        }
        snprintf(seed, sizeof(seed), "%s|event|%zu", ak_str(tx->run, "run_id"),
                 index);
        ak_derive_id(tx->now, seed, id);
        json_array_append_new(events, json_pack("{s:s, s:s, s:o, s:I}", "id",
                                                id, "type", type, "data", data,
                                                "at", (json_int_t)tx->now));
        /* One effect publishes a range of consecutive events. */
        if (last &&
            strcmp(ak_str(last, "k") ? ak_str(last, "k") : "", "emit") == 0 &&
            (size_t)ak_int(last, "to", -1) == index)
                json_object_set_new(last, "to",
                                    json_integer((json_int_t)index + 1));
        else
                ak_fx(tx, json_pack("{s:s, s:I, s:I}", "k", "emit", "from",
                                    (json_int_t)index, "to",
                                    (json_int_t)index + 1));
}

void ak_fx(ak_tx_t *tx, json_t *effect) {
        json_array_append_new(tx->fx, effect);
}

static void ak__timer(ak_tx_t *tx, const char *reason, const char *step_id,
                      int a, int64_t at) {
        ak_fx(tx,
              json_pack("{s:s, s:s, s:s, s:i, s:I}", "k", "timer", "reason",
                        reason, "step", step_id, "a", a, "at", (json_int_t)at));
}

static void ak__untimer(ak_tx_t *tx, const char *reason, const char *step_id,
                        int a) {
        ak_fx(tx, json_pack("{s:s, s:s, s:s, s:i}", "k", "untimer", "reason",
                            reason, "step", step_id, "a", a));
}

json_t *ak_step_state(ak_tx_t *tx, const char *step_id) {
        return json_object_get(json_object_get(tx->run, "steps"), step_id);
}

const json_t *ak_step_output(const json_t *S) {
        const json_t *atts = json_object_get(S, "attempts");
        for (size_t i = json_array_size(atts); i > 0; i--) {
                const json_t *x = json_array_get(atts, i - 1);
                const char *st = ak_str(x, "status");
                if (st && strcmp(st, "completed") == 0)
                        return json_object_get(x, "output");
        }
        /* Runs journaled before outputs lived only in their attempts. */
        return json_object_get(S, "output");
}

json_t *ak_attempt(json_t *S, int a) {
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(S, "attempts"), i, x) {
                if (ak_int(x, "n", 0) == a)
                        return x;
        }
        return NULL;
}

bool ak_step_spec(ak_tx_t *tx, const char *step_id, ak_step_t *out) {
        const ak_step_t *s = tx->def && tx->def->kind == AK_DEF_WORKFLOW
                                     ? ak_def_step(tx->def, step_id)
                                     : NULL;
        char err[64];
        if (s) {
                *out = *s;
                return true;
        }
        /* Agents' steps carry their declaration in the state. */
        return ak_step_parse(
                json_object_get(ak_step_state(tx, step_id), "spec"), out, err,
                sizeof(err));
}

static void ak__step_event(ak_tx_t *tx, const char *type, const ak_step_t *step,
                           int a, json_t *extra) {
        json_t *d = json_pack("{s:s, s:i, s:s}", "step_id", step->id, "attempt",
                              a, "step_kind", ak_kind_name(step->kind));
        if (extra) {
                json_object_update(d, extra);
                json_decref(extra);
        }
        ak_emit(tx, type, d);
}

/* ---------------------------------------------------------------------------
 * Starting an attempt
 * ------------------------------------------------------------------------ */

static int64_t ak__until_of(const json_t *v) {
        if (json_is_integer(v))
                return (int64_t)json_integer_value(v);
        if (json_is_string(v))
                return ak_time_parse(json_string_value(v));
        return -1;
}

/* An http step's URL may go where the settings allow. */
static bool ak__url_allowed(const ak_settings_t *set, const char *url) {
        const char *p = set->http_allow;
        if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
                return false;
        if (!p || !*p)
                return true;
        while (*p) {
                const char *end = strchr(p, ',');
                size_t n = end ? (size_t)(end - p) : strlen(p);
                if (n && strncmp(url, p, n) == 0)
                        return true;
                p += n + (end ? 1 : 0);
        }
        return false;
}

/* The attempt's input from the step's templates; NULL and err. */
static json_t *ak__build_input(ak_tx_t *tx, const ak_step_t *step, char *err,
                               size_t errlen) {
        json_t *ctx = ak_run_context(tx->run), *in = NULL, *x;
        const json_t *j = step->j;
        const ak_settings_t *set = tx->st->set;
        switch (step->kind) {
        case AK_HTTP: {
                json_t *url = ak_template(json_object_get(j, "url"), ctx, err,
                                          errlen);
                json_t *hdr = url ? ak_template(json_object_get(j, "headers"),
                                                ctx, err, errlen)
                                  : NULL;
                json_t *body = hdr && json_object_get(j, "body")
                                       ? ak_template(json_object_get(j, "body"),
                                                     ctx, err, errlen)
                                       : NULL;
                const char *method = ak_str(j, "method");
                if (!url || !hdr || (json_object_get(j, "body") && !body)) {
                        json_decref(url);
                        json_decref(hdr);
                        break;
                }
                if (!json_is_string(url) ||
                    !ak__url_allowed(set, json_string_value(url))) {
                        snprintf(err, errlen,
                                 "the URL is not one this "
                                 "server may call "
                                 "(OMNIFY_AGENTKIT_HTTP_ALLOW)");
                        json_decref(url);
                        json_decref(hdr);
                        json_decref(body);
                        break;
                }
                in = json_pack("{s:s, s:o, s:o}", "method",
                               method ? method
                               : body ? "POST"
                                      : "GET",
                               "url", url, "headers", hdr);
                if (body)
                        json_object_set_new(in, "body", body);
                break;
        }
        case AK_LLM: {
                json_t *msgs = json_array(), *m;
                size_t i;
                const char *model = ak_str(j, "model");
                json_array_foreach(json_object_get(j, "messages"), i, m) {
                        x = ak_template(json_object_get(m, "content"), ctx, err,
                                        errlen);
                        if (!x) {
                                json_decref(msgs);
                                msgs = NULL;
                                break;
                        }
                        json_array_append_new(msgs,
                                              json_pack("{s:s, s:o}", "role",
                                                        ak_str(m, "role"),
                                                        "content", x));
                }
                if (!msgs)
                        break;
                in = json_pack("{s:s, s:o}", "model",
                               model ? model : set->llm_model, "messages",
                               msgs);
                if (json_object_get(j, "tools")) {
                        json_t *decls = ak_tool_decls(
                                tx->st->schemas, json_object_get(j, "tools"),
                                err, errlen);
                        if (!decls) {
                                json_decref(in);
                                in = NULL;
                                break;
                        }
                        json_object_set_new(in, "tools", decls);
                }
                break;
        }
        case AK_WAIT_EVENT:
                x = ak_template(json_object_get(j, "filter"), ctx, err, errlen);
                if (x)
                        in = json_pack("{s:s, s:o}", "event",
                                       ak_str(j, "event"), "filter", x);
                break;
        case AK_APPROVAL:
                x = json_object_get(j, "prompt")
                            ? ak_template(json_object_get(j, "prompt"), ctx,
                                          err, errlen)
                            : json_string("");
                if (x)
                        in = json_pack("{s:o, s:s}", "prompt", x, "role",
                                       ak_str(j, "role") ? ak_str(j, "role")
                                                         : "member");
                break;
        case AK_SLEEP_UNTIL:
                x = ak_template(json_object_get(j, "until"), ctx, err, errlen);
                if (x) {
                        int64_t at = ak__until_of(x);
                        json_decref(x);
                        if (at < 0)
                                snprintf(err, errlen,
                                         "until is not a time (RFC 3339 or "
                                         "Unix ms)");
                        else
                                in = json_pack("{s:I}", "until",
                                               (json_int_t)at);
                }
                break;
        case AK_SLEEP:
                in = json_pack(
                        "{s:I}", "until",
                        (json_int_t)(tx->now + ak_int(j, "duration_ms", 0)));
                break;
        case AK_CHILD:
                x = ak_template(json_object_get(j, "input"), ctx, err, errlen);
                if (x) {
                        in = json_pack("{s:s, s:o}", "workflow_id",
                                       ak_str(j, "workflow_id"), "input", x);
                        if (ak_int(j, "version", 0))
                                json_object_set_new(
                                        in, "version",
                                        json_integer(ak_int(j, "version", 0)));
                }
                break;
        case AK_SIGNAL:
                in = json_pack("{s:s}", "signal", ak_str(j, "signal"));
                break;
        default:
                in = ak_template(json_object_get(j, "input"), ctx, err, errlen);
                break;
        }
        json_decref(ctx);
        return in;
}

/* The first case of a branch that holds, or its default. */
static const char *ak__branch(ak_tx_t *tx, const ak_step_t *step, char *err,
                              size_t errlen, bool *failed) {
        json_t *ctx = ak_run_context(tx->run), *c;
        const char *next = ak_str(step->j, "default");
        size_t i;
        *failed = false;
        json_array_foreach(json_object_get(step->j, "cases"), i, c) {
                json_t *v = ak_expr_eval(ak_str(c, "when"), ctx, err, errlen);
                bool hold = ak_truthy(v);
                if (!v) {
                        *failed = true;
                        break;
                }
                json_decref(v);
                if (hold) {
                        next = ak_str(c, "next");
                        break;
                }
        }
        json_decref(ctx);
        return next;
}

static json_t *ak__state_of(ak_tx_t *tx, const char *step_id) {
        json_t *steps = json_object_get(tx->run, "steps"), *S;
        if (!json_is_object(steps)) {
                steps = json_object();
                json_object_set_new(tx->run, "steps", steps);
        }
        S = json_object_get(steps, step_id);
        if (!S) {
                S = json_pack("{s:s, s:i, s:i, s:[]}", "status", "pending",
                              "attempt", 0, "tries", 0, "attempts");
                json_object_set_new(steps, step_id, S);
        }
        return S;
}

void ak_step_start(ak_tx_t *tx, const ak_step_t *step, json_t *input) {
        json_t *S = ak__state_of(tx, step->id), *rec, *extra = NULL;
        const char *run_id = ak_str(tx->run, "run_id");
        int64_t started = ak_int(tx->run, "n_started", 0) + 1;
        int a = (int)ak_int(S, "attempt", 0) + 1;
        char err[200] = "", seed[320], key[MSGID_TEXT_SIZE];

        json_object_set_new(tx->run, "n_started", json_integer(started));
        if (started > tx->st->set->max_steps) {
                char why[120];
                json_decref(input);
                snprintf(why, sizeof(why),
                         "the run started more than %d steps "
                         "(OMNIFY_AGENTKIT_MAX_STEPS)",
                         tx->st->set->max_steps);
                ak_run_end(tx, "failed", NULL, why, step->id);
                return;
        }
        json_object_set_new(S, "attempt", json_integer(a));
        json_object_set_new(S, "tries",
                            json_integer(ak_int(S, "tries", 0) + 1));
        json_object_set_new(S, "status", json_string("running"));
        json_object_del(S, "retry_at");
        json_object_del(S, "next");
        if (!json_object_get(S, "started_at"))
                json_object_set_new(S, "started_at", json_integer(tx->now));
        rec = json_pack("{s:i, s:s, s:I}", "n", a, "status", "running",
                        "started_at", (json_int_t)tx->now);
        json_array_append_new(json_object_get(S, "attempts"), rec);
        if (step->kind == AK_PARALLEL) {
                ak__step_event(tx, "agentkit.step.started", step, a, NULL);
                return; /* the flow opens its branches */
        }
        if (step->kind == AK_BRANCH) {
                bool failed;
                const char *next;
                ak__step_event(tx, "agentkit.step.started", step, a, NULL);
                next = ak__branch(tx, step, err, sizeof(err), &failed);
                if (failed) {
                        ak_step_fail(tx, step->id, a, err, 0, true);
                        return;
                }
                json_object_set_new(S, "next", json_string(next ? next : ""));
                ak_step_done(tx, step->id, a,
                             json_pack("{s:s?}", "next", next));
                return;
        }
        if (!input)
                input = ak__build_input(tx, step, err, sizeof(err));
        if (!input) {
                ak__step_event(tx, "agentkit.step.started", step, a, NULL);
                ak_step_fail(tx, step->id, a, err, 0, true);
                return;
        }
        json_object_set(rec, "input", input);
        snprintf(seed, sizeof(seed), "%s|%s|%d|%s", run_id, step->id, a,
                 step->kind == AK_CHILD ? "child" : "out");
        ak_derive_id(tx->now, seed, key);
        switch (step->kind) {
        case AK_NOOP:
                ak__step_event(tx, "agentkit.step.started", step, a, NULL);
                ak_step_done(tx, step->id, a, input);
                return;
        case AK_COMMAND:
        case AK_HTTP:
        case AK_LLM:
                json_object_set_new(rec, "key", json_string(key));
                extra = json_pack("{s:s}", "idempotency_key", key);
                ak__step_event(tx, "agentkit.step.started", step, a, extra);
                if (!json_object_get(step->j, "approval")) {
                        json_t *e =
                                json_pack("{s:s, s:s, s:i}", "k", "dispatch",
                                          "step", step->id, "a", a);
                        /* A command's correlation is written with the run's
                         * record (run.c). */
                        if (step->kind == AK_COMMAND)
                                json_object_set_new(e, "corr",
                                                    json_string(key));
                        ak_fx(tx, e);
                        if (step->timeout_ms && step->kind == AK_COMMAND)
                                ak__timer(tx, "timeout", step->id, a,
                                          tx->now + step->timeout_ms);
                } else {
                        /* An agent's gated tool: a person decides first. */
                        json_object_set_new(S, "status",
                                            json_string("waiting"));
                        ak__step_event(
                                tx, "agentkit.step.suspended", step, a,
                                json_pack("{s:s}", "reason", "approval"));
                }
                break;
        case AK_CHILD:
                json_object_set_new(rec, "child_run_id", json_string(key));
                ak__step_event(tx, "agentkit.step.started", step, a, NULL);
                ak_fx(tx, json_pack("{s:s, s:s, s:i}", "k", "dispatch", "step",
                                    step->id, "a", a));
                if (step->timeout_ms)
                        ak__timer(tx, "timeout", step->id, a,
                                  tx->now + step->timeout_ms);
                break;
        case AK_SLEEP:
        case AK_SLEEP_UNTIL: {
                int64_t until = ak_int(input, "until", tx->now);
                ak__step_event(tx, "agentkit.step.started", step, a, NULL);
                if (until <= tx->now) {
                        ak_step_done(tx, step->id, a,
                                     json_pack("{s:I}", "slept_until",
                                               (json_int_t)until));
                        break;
                }
                json_object_set_new(S, "status", json_string("waiting"));
                ak__timer(tx, "sleep", step->id, a, until);
                break;
        }
        case AK_WAIT_EVENT:
        case AK_APPROVAL:
        case AK_SIGNAL: {
                ak__step_event(tx, "agentkit.step.started", step, a, NULL);
                if (step->kind == AK_SIGNAL) {
                        /* A signal sent before the step was reached. */
                        json_t *sigs = json_object_get(tx->run, "signals"), *g;
                        size_t i;
                        json_array_foreach(sigs, i, g) {
                                if (strcmp(ak_str(g, "name"),
                                           ak_str(input, "signal")) == 0) {
                                        json_t *out = json_pack(
                                                "{s:s, s:O}", "name",
                                                ak_str(g, "name"), "payload",
                                                json_object_get(g, "payload"));
                                        json_array_remove(sigs, i);
                                        ak_step_done(tx, step->id, a, out);
                                        json_decref(input);
                                        return;
                                }
                        }
                }
                json_object_set_new(S, "status", json_string("waiting"));
                extra = json_pack("{s:s}", "reason", ak_kind_name(step->kind));
                if (ak_str(input, "prompt"))
                        json_object_set_new(
                                extra, "prompt",
                                json_string(ak_str(input, "prompt")));
                ak__step_event(tx, "agentkit.step.suspended", step, a, extra);
                if (step->kind == AK_WAIT_EVENT)
                        ak_fx(tx, json_pack("{s:s, s:s, s:i}", "k", "wait",
                                            "step", step->id, "a", a));
                if (step->timeout_ms)
                        ak__timer(tx, "timeout", step->id, a,
                                  tx->now + step->timeout_ms);
                break;
        }
        default:
                break;
        }
        json_decref(input);
}

/* ---------------------------------------------------------------------------
 * Results
 * ------------------------------------------------------------------------ */

/* The state of attempt a when it is the one in flight, else NULL. */
static json_t *ak__active(ak_tx_t *tx, const char *step_id, int a) {
        json_t *S = ak_step_state(tx, step_id);
        const char *st = ak_str(S, "status");
        if (!S || ak_int(S, "attempt", 0) != a || !st ||
            (strcmp(st, "running") && strcmp(st, "waiting")))
                return NULL;
        return S;
}

/* What an attempt leaves behind when it ends: timers, a wait. */
static void ak__cleanup(ak_tx_t *tx, const ak_step_t *step, json_t *S, int a) {
        /* The timer that fired is spent: no need to cancel it. */
        bool mine = tx->woken_step && strcmp(tx->woken_step, step->id) == 0;
        bool by_sleep = mine && strcmp(tx->woken, "sleep") == 0;
        bool by_timeout = mine && strcmp(tx->woken, "timeout") == 0;
        if ((step->kind == AK_SLEEP || step->kind == AK_SLEEP_UNTIL) &&
            !by_sleep)
                ak__untimer(tx, "sleep", step->id, a);
        if (step->timeout_ms && !by_timeout &&
            (step->kind == AK_COMMAND || step->kind == AK_CHILD ||
             step->kind == AK_WAIT_EVENT || step->kind == AK_APPROVAL ||
             step->kind == AK_SIGNAL))
                ak__untimer(tx, "timeout", step->id, a);
        if (step->kind == AK_WAIT_EVENT &&
            strcmp(ak_str(S, "status"), "waiting") == 0)
                ak_fx(tx, json_pack("{s:s, s:s, s:i}", "k", "unwait", "step",
                                    step->id, "a", a));
}

bool ak_step_done(ak_tx_t *tx, const char *step_id, int a, json_t *output) {
        json_t *S = ak__active(tx, step_id, a), *rec;
        ak_step_t step;
        if (!S || !ak_step_spec(tx, step_id, &step)) {
                json_decref(output);
                return false;
        }
        if (!output)
                output = json_object();
        ak__cleanup(tx, &step, S, a);
        rec = ak_attempt(S, a);
        json_object_set_new(rec, "status", json_string("completed"));
        json_object_set(rec, "output", output);
        json_object_set_new(rec, "ended_at", json_integer(tx->now));
        json_object_set_new(S, "status", json_string("completed"));
        json_object_del(S, "error");
        json_object_set_new(S, "ended_at", json_integer(tx->now));
        /* The output is the attempt's; the event gets it when it is sent
         * (ak_event_data), the journal keeps it once. */
        ak__step_event(tx, "agentkit.step.completed", &step, a, NULL);
        json_decref(output);
        if (tx->def && tx->def->kind == AK_DEF_AGENT)
                ak_agent_step_ended(tx, step_id);
        return true;
}

/* Is this error the end of the retries? */
static bool ak__final(const ak_step_t *step, int code, const char *error) {
        size_t i;
        const json_t *f;
        char num[16] = "", cls[16] = "";
        if (code) {
                snprintf(num, sizeof(num), "%d", code);
                snprintf(cls, sizeof(cls), "%dxx", code / 100);
        }
        if (step->final_errors) {
                json_array_foreach(step->final_errors, i, f) {
                        const char *s = json_string_value(f);
                        if (s && (strcmp(s, num) == 0 || strcmp(s, cls) == 0 ||
                                  (error && strcmp(s, error) == 0)))
                                return true;
                }
                return false;
        }
        return code >= 400 && code < 500 && code != 408 && code != 409 &&
               code != 425 && code != 429;
}

static int64_t ak__backoff(const ak_step_t *step, int64_t tries) {
        double d = (double)step->backoff_ms *
                   pow(step->multiplier, (double)(tries > 1 ? tries - 1 : 0));
        if (d > (double)step->max_backoff_ms)
                d = (double)step->max_backoff_ms;
        return (int64_t)d;
}

bool ak_step_fail(ak_tx_t *tx, const char *step_id, int a, const char *error,
                  int code, bool final) {
        json_t *S = ak__active(tx, step_id, a), *rec;
        ak_step_t step;
        int64_t tries;
        if (!S || !ak_step_spec(tx, step_id, &step))
                return false;
        ak__cleanup(tx, &step, S, a);
        rec = ak_attempt(S, a);
        json_object_set_new(rec, "status", json_string("failed"));
        json_object_set_new(rec, "error",
                            json_string(error ? error : "failed"));
        if (code)
                json_object_set_new(rec, "code", json_integer(code));
        json_object_set_new(rec, "ended_at", json_integer(tx->now));
        json_object_set_new(S, "error", json_string(error ? error : "failed"));
        tries = ak_int(S, "tries", 1);
        final = final || ak__final(&step, code, error);
        if (!final && tries < step.max_attempts) {
                int64_t at = tx->now + ak__backoff(&step, tries);
                json_object_set_new(S, "status", json_string("retry"));
                json_object_set_new(S, "retry_at", json_integer(at));
                ak__step_event(tx, "agentkit.step.failed", &step, a,
                               json_pack("{s:s, s:b}", "error",
                                         error ? error : "failed", "final", 0));
                if (at > tx->now)
                        ak__timer(tx, "retry", step.id, a + 1, at);
                return true;
        }
        json_object_set_new(S, "status", json_string("failed"));
        json_object_set_new(S, "ended_at", json_integer(tx->now));
        ak__step_event(tx, "agentkit.step.failed", &step, a,
                       json_pack("{s:s, s:b}", "error",
                                 error ? error : "failed", "final", 1));
        if (!step.fail_on_exhausted &&
            strcmp(ak_str(tx->run, "status"), "running") == 0) {
                json_object_set_new(tx->run, "status", json_string("paused"));
                json_object_set_new(tx->run, "paused",
                                    json_pack("{s:s, s:s, s:I}", "by",
                                              "retries", "step_id", step.id,
                                              "at", (json_int_t)tx->now));
                ak_emit(tx, "agentkit.run.paused",
                        json_pack("{s:s, s:s}", "reason",
                                  "the step's retries ran out", "step_id",
                                  step.id));
        }
        if (tx->def && tx->def->kind == AK_DEF_AGENT)
                ak_agent_step_ended(tx, step_id);
        return true;
}

void ak_step_cancel(ak_tx_t *tx, const ak_step_t *step) {
        json_t *S = ak_step_state(tx, step->id), *rec;
        const char *st = ak_str(S, "status");
        int a = (int)ak_int(S, "attempt", 0);
        if (!st)
                return;
        if (strcmp(st, "retry") == 0)
                ak__untimer(tx, "retry", step->id, a + 1);
        else if (strcmp(st, "running") && strcmp(st, "waiting"))
                return;
        else
                ak__cleanup(tx, step, S, a);
        if (step->kind == AK_CHILD && strcmp(st, "running") == 0)
                ak_fx(tx, json_pack("{s:s, s:s, s:i}", "k", "cancel_child",
                                    "step", step->id, "a", a));
        if ((rec = ak_attempt(S, a)) &&
            strcmp(ak_str(rec, "status"), "running") == 0) {
                json_object_set_new(rec, "status", json_string("cancelled"));
                json_object_set_new(rec, "ended_at", json_integer(tx->now));
        }
        json_object_set_new(S, "status", json_string("cancelled"));
        json_object_set_new(S, "ended_at", json_integer(tx->now));
}

bool ak_run_wake(ak_tx_t *tx, const char *reason, const char *step_id, int a) {
        json_t *S;
        ak_step_t step;
        tx->woken = reason;
        tx->woken_step = step_id;
        if (strcmp(reason, "start") == 0)
                return strcmp(ak_str(tx->run, "status"), "running") == 0;
        if (strcmp(reason, "cancel") == 0)
                return ak_run_cancel(tx, "its parent run was cancelled");
        if (!step_id || !ak_step_spec(tx, step_id, &step))
                return false;
        S = ak_step_state(tx, step_id);
        if (strcmp(reason, "retry") == 0)
                /* Due now: the flow starts it if the run is running. */
                return S && strcmp(ak_str(S, "status"), "retry") == 0 &&
                       ak_int(S, "attempt", 0) + 1 == a;
        if (!(S = ak__active(tx, step_id, a)))
                return false;
        if (strcmp(reason, "sleep") == 0)
                return ak_step_done(
                        tx, step_id, a,
                        json_pack("{s:I}", "slept_until",
                                  (json_int_t)ak_int(
                                          json_object_get(ak_attempt(S, a),
                                                          "input"),
                                          "until", tx->now)));
        /* A timeout. */
        if ((step.kind == AK_WAIT_EVENT || step.kind == AK_APPROVAL ||
             step.kind == AK_SIGNAL) &&
            ak_str(step.j, "on_timeout") &&
            strcmp(ak_str(step.j, "on_timeout"), "continue") == 0)
                return ak_step_done(tx, step_id, a,
                                    json_pack("{s:b}", "timed_out", 1));
        return ak_step_fail(tx, step_id, a, "timeout", 0, false);
}
