/*
 * agentkit_internal.h - what the agentkit group's files share.
 *
 * Agentkit runs durable workflows and AI agents. A run is one document in
 * the group's store (collection "runs"): a few fields for listing (tenant,
 * kind, workflow, status, times) and the run's whole state as one JSON text
 * ("state"): its input, every step's state and every attempt of it (input,
 * output, error, times, idempotency key), the events it published, and the
 * messages it has applied with the effects each one asked for. The state is
 * the run's journal: every transition is one compare-and-set write of it
 * (filter {_id, seq}), made before anything it decided is acted on.
 *
 * Everything that moves a run is a command on agentkit.commands keyed by the
 * run id (so a run's messages go to one partition, in order, and more
 * processes run more runs): a client's start, cancel, pause, resume, signal
 * or approval; a durable timer that fired (sleeps, retries, timeouts); the
 * outbox's report of an http or llm call; a matched event (wait_event); a
 * child run's end; and the replies of other groups to command steps (on the
 * run's partition, matched by correlation id).
 *
 * Handling one (ak_tx_run, run.c): load the run; when the message is among
 * those the run has applied, do that transition's effects again (a crash
 * came between its write and its outputs) and answer as it answered;
 * otherwise apply it (engine.c, agent.c), advance the run as far as it goes
 * without waiting, write the new state with the message and its effects
 * (compare-and-set; a conflict reloads and starts over), then carry the
 * effects out (effects.c): commands to other groups, outbox records, timers,
 * waits, events. Every effect has an id derived from the run, step and
 * attempt, so doing one twice is harmless: the receiver's operation log,
 * the outbox and the timers each keep one per id.
 *
 * Threads: handlers run on the runtime's workers (concurrency 32), two of one
 * run never at once in a process (a lock per run, striped); the store's
 * compare-and-set keeps processes apart.
 */
#ifndef OMNIFY_AGENTKIT_INTERNAL_H
#define OMNIFY_AGENTKIT_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "alloc.h"
#include "codec.h"
#include "httpc.h"
#include "log.h"
#include "msgid.h"
#include "outbox.h"
#include "registry.h"
#include "timer.h"

/* Collections of the agentkit database. */
#define AK_RUNS "runs"
#define AK_DEFS "defs"
#define AK_HEADS "heads"
/* Correlations of command steps (request id -> run, step, attempt) are
 * documents of the runs collection, written in one bulk with the run's
 * record: {_id: "corr|<request id>", run_id, step_id, attempt,
 * expires_at}. */
#define AK_CORR_PREFIX "corr|"
#define AK_WAITS "waits"
#define AK_THREADS "threads"

#define AK_ID_MAX 64      /* workflow, agent and step ids */
#define AK_APPLIED_KEEP 8 /* messages whose effects a run remembers */

/* ---------------------------------------------------------------------------
 * settings.c
 * ------------------------------------------------------------------------ */

typedef struct ak_settings {
        char *llm_base_url; /* OpenAI-compatible, ".../v1" */
        char *llm_api_key;  /* secret; never stored, added per try */
        char *llm_model;
        int llm_timeout_ms;
        int http_timeout_ms;
        char *http_allow;    /* comma-separated URL prefixes; "": any */
        int max_steps;       /* step starts per run */
        int max_state_bytes; /* a run's state */
        int max_output_bytes;
        int timer_poll_ms;
} ak_settings_t;

extern const config_table_t agentkit_settings;

/* ---------------------------------------------------------------------------
 * The group's state (agentkit.c)
 * ------------------------------------------------------------------------ */

#define AK_LOCKS 256

typedef struct ak_defs ak_defs_t;
typedef struct ak_cache ak_cache_t;

typedef struct ak_state {
        runtime_t *rt;
        const config_t *cfg;
        const ak_settings_t *set;
        store_t *store;
        const schema_set_t *schemas;
        outbox_t *outbox; /* the runtime's (runtime_outbox_new) */
        timer_service_t *timers;
        outbox_kind_t kinds[2];
        ak_defs_t *defs;
        ak_cache_t *cache;
        pthread_mutex_t locks[AK_LOCKS];
        /* Transitions (load, apply, write, effects) and their writes (the
         * store acknowledging the run's record). */
        metrics_histogram_t *tx_seconds, *write_seconds;
        metrics_counter_t *conflicts; /* compare-and-set lost: reloaded */
} ak_state_t;

/* The group's state of a handler. */
ak_state_t *ak_state(rt_ctx_t *ctx);

/* ---------------------------------------------------------------------------
 * cache.c: a process's last writes of its runs, and its correlations
 * ------------------------------------------------------------------------ */

ak_cache_t *ak_cache_new(size_t max_bytes);
void ak_cache_destroy(ak_cache_t *c);
/* Keep a reference to the state just written (text_len: its size). */
void ak_cache_put_run(ak_cache_t *c, const char *run_id, int64_t seq,
                      json_t *state, size_t text_len);
/* The state (taken: the cache lets go of it) and seq this process wrote
 * last, if kept. */
bool ak_cache_take_run(ak_cache_t *c, const char *run_id, json_t **state,
                       int64_t *seq, size_t *text_len);
void ak_cache_drop_run(ak_cache_t *c, const char *run_id);
void ak_cache_put_corr(ak_cache_t *c, const char *req_id, const char *run_id,
                       const char *step_id, int a);
bool ak_cache_get_corr(ak_cache_t *c, const char *req_id, char *run_id,
                       char *step_id, size_t step_size, int *a);

/* ---------------------------------------------------------------------------
 * json.c: JSON values, msgpack and replies
 * ------------------------------------------------------------------------ */

/* A msgpack object as a new JSON value (NULL when it cannot be). */
json_t *ak_json_of_msgpack(const msgpack_object *obj);
/* A msgpack buffer (one object) as a new JSON value. */
json_t *ak_json_of_bytes(const void *bytes, size_t len);
/* Pack a JSON value into pk. */
void ak_pack_json(msgpack_packer *pk, const json_t *v);
/* Reply with a JSON object as the body. */
void ak_reply_json(rt_ctx_t *ctx, int status, const json_t *body);
/* A problem reply with field errors (422 for rules the schema cannot state). */
void ak_reply_report(rt_ctx_t *ctx, int status, const char *title,
                     const char *detail, const schema_report_t *report);
/* Field helpers that accept NULL and wrong types. */
const char *ak_str(const json_t *obj, const char *key);
int64_t ak_int(const json_t *obj, const char *key, int64_t dflt);
/* Unix ms as RFC 3339 text into buf (>= 32 bytes). */
const char *ak_time_text(int64_t ms, char *buf, size_t size);
/* RFC 3339 text to Unix ms; -1 when malformed. */
int64_t ak_time_parse(const char *text);
/* A derived id (UUID text) for what seed names, stamped at_ms. */
void ak_derive_id(int64_t at_ms, const char *seed, char out[MSGID_TEXT_SIZE]);
/* Names: letters, digits, '_' and '-', 1..AK_ID_MAX. */
bool ak_name_valid(const char *s);
/* The store failed: transient errors retry the message, others answer
 * 500. */
handler_result_t ak_store_failed(rt_ctx_t *ctx, store_err_t err,
                                 const char *what);

/* ---------------------------------------------------------------------------
 * expr.c: expressions and templates (see the file's head for the language)
 * ------------------------------------------------------------------------ */

/* The value of an expression in ctx (a new reference), or NULL and err. */
json_t *ak_expr_eval(const char *text, const json_t *ctx, char *err,
                     size_t errlen);
/* Syntax only. */
bool ak_expr_check(const char *text, char *err, size_t errlen);
/* A template's value in ctx (a new reference), or NULL and err. */
json_t *ak_template(const json_t *tmpl, const json_t *ctx, char *err,
                    size_t errlen);
bool ak_template_check(const json_t *tmpl, char *err, size_t errlen);
bool ak_truthy(const json_t *v);

/* ---------------------------------------------------------------------------
 * defs.c: definitions of workflows and agents, versioned, cached
 * ------------------------------------------------------------------------ */

typedef enum ak_kind {
        AK_NOOP,
        AK_COMMAND,
        AK_HTTP,
        AK_LLM,
        AK_SLEEP,
        AK_SLEEP_UNTIL,
        AK_WAIT_EVENT,
        AK_APPROVAL,
        AK_SIGNAL,
        AK_BRANCH,
        AK_PARALLEL,
        AK_CHILD,
        AK_KIND_COUNT
} ak_kind_t;

const char *ak_kind_name(ak_kind_t kind);

typedef struct ak_seq ak_seq_t;

/* One step as declared (json points into the definition, which owns it). */
typedef struct ak_step {
        const char *id;
        ak_kind_t kind;
        const json_t *j;
        int max_attempts;
        int64_t backoff_ms, max_backoff_ms;
        double multiplier;
        const json_t *final_errors; /* array of strings, or NULL */
        bool fail_on_exhausted;
        int64_t timeout_ms; /* 0: none */
        const char *next;   /* NULL: the following step */
        ak_seq_t *branches; /* parallel */
        size_t n_branches;
        size_t join_need;
        ak_seq_t *seq; /* the list it is in */
        size_t index;
} ak_step_t;

struct ak_seq {
        char *name; /* "root", or "<parallel id>#<branch>" */
        ak_step_t *steps;
        size_t n;
        ak_step_t *parent; /* the parallel step; NULL for root */
};

typedef enum ak_def_kind { AK_DEF_WORKFLOW, AK_DEF_AGENT } ak_def_kind_t;

typedef struct ak_agent {
        const char *name, *instructions, *model;
        const json_t *tools, *approval_tools; /* arrays of command types */
        int max_iterations;
        int64_t token_budget;
        json_t *tool_decls; /* the OpenAI "tools" array */
} ak_agent_t;

typedef struct ak_def {
        ak_def_kind_t kind;
        char *key; /* "<kind>|<tenant>|<id>|<version>" */
        char *def_id;
        int version;
        json_t *doc;
        int64_t created_at;
        ak_seq_t root; /* workflows */
        ak_step_t **all;
        size_t n_all;
        ak_agent_t agent; /* agents */
        atomic_int refs;
} ak_def_t;

/* Check and build a workflow definition (doc is taken). NULL with the
 * problems in report (paths like "steps[2].branches[0][1].kind"). */
ak_def_t *ak_def_build_workflow(json_t *doc, const schema_set_t *schemas,
                                schema_report_t *report);
/* The same for an agent. */
ak_def_t *ak_def_build_agent(json_t *doc, const schema_set_t *schemas,
                             schema_report_t *report);
/* Parse one step declaration (agents' steps are made at run time). */
bool ak_step_parse(const json_t *j, ak_step_t *out, char *err, size_t errlen);
const ak_step_t *ak_def_step(const ak_def_t *def, const char *id);
void ak_def_release(ak_def_t *def);

ak_defs_t *ak_defs_new(size_t capacity);
void ak_defs_destroy(ak_defs_t *defs);

/* A definition: version 0 is the latest. STORE_NOT_FOUND when none. */
store_err_t ak_def_get(ak_state_t *st, ak_def_kind_t kind, slice_t tenant,
                       const char *id, int version, ak_def_t **out);
/* By its key (runs keep the key of their version). */
store_err_t ak_def_get_key(ak_state_t *st, const char *key, ak_def_t **out);
/* Store a built definition as the next version of id, unless it equals the
 * latest one (*created false, *version the latest). def's doc is stored. */
store_err_t ak_def_put(ak_state_t *st, ak_def_kind_t kind, slice_t tenant,
                       const char *id, const json_t *doc, slice_t user,
                       int *version, bool *created, int64_t *created_at);
/* The tenant's definitions of a kind: their heads, newest first. */
store_err_t ak_def_list(ak_state_t *st, ak_def_kind_t kind, slice_t tenant,
                        int limit, json_t *out);

/* ---------------------------------------------------------------------------
 * run.c: the run document, transitions
 * ------------------------------------------------------------------------ */

typedef struct ak_tx {
        ak_state_t *st;
        rt_ctx_t *ctx;
        char msg_id[MSGID_TEXT_SIZE];
        json_t *run;   /* the state being changed; NULL: no such run */
        int64_t seq;   /* the version loaded; 0: a new run */
        ak_def_t *def; /* the run's definition */
        json_t *fx;    /* effects of this transition */
        int64_t now;
        int reply_status; /* 0: no reply of the transition's own */
        json_t *reply;
        bool changed;
        bool replayed;     /* the message had been applied before */
        const char *woken; /* the timer that fired ("sleep", ...), or NULL */
        const char *woken_step; /* ... and its step */
} ak_tx_t;

/* Apply a message to tx->run (NULL when the run does not exist); set
 * tx->changed when the state changed; may set a reply. Return false on a
 * transient failure (the message is tried again). */
typedef bool (*ak_apply_fn)(ak_tx_t *tx, void *arg);

/*
 * Handle one message for run_id: load, apply (unless applied before), advance,
 * write (compare-and-set, reloading on conflict), do the effects, reply.
 * A start makes the run: fn sees tx->run NULL, puts a new state there (and
 * tx->def) and sets changed; it is inserted (a run made meanwhile by another
 * message is loaded and fn asked again).
 */
handler_result_t ak_tx_run(rt_ctx_t *ctx, const char *run_id, ak_apply_fn fn,
                           void *arg);

/* Load a run's state (new reference) and the doc's seq. */
store_err_t ak_run_load(ak_state_t *st, const char *run_id, json_t **state,
                        int64_t *seq);
/* Do tx->fx (store writes now, outputs after the handler). */
bool ak_fx_exec(ak_tx_t *tx, const json_t *fx);

/* The run's caller as output options (the user who started it). */
rt_out_opts_t ak_run_caller(const json_t *run);
/* The run is the caller's tenant's (else a 404 is the answer). */
bool ak_run_visible(rt_ctx_t *ctx, const json_t *run);

/* ---------------------------------------------------------------------------
 * engine.c: the state machine of workflow runs
 * ------------------------------------------------------------------------ */

/* Record an event (published with the transition's outputs). data taken. */
void ak_emit(ak_tx_t *tx, const char *type, json_t *data);
/* Add an effect (taken). */
void ak_fx(ak_tx_t *tx, json_t *effect);
/* The state of a step (NULL when never started). */
json_t *ak_step_state(ak_tx_t *tx, const char *step_id);
/* The declaration of a step of the run (definition or agent-made). */
bool ak_step_spec(ak_tx_t *tx, const char *step_id, ak_step_t *out);

/* Start a step: a new attempt, recorded, its effect queued; input is the
 * attempt's input (taken; NULL: from its template). */
void ak_step_start(ak_tx_t *tx, const ak_step_t *step, json_t *input);
/* Undo what an active step set up (timers, waits, a child run) and mark it
 * cancelled. */
void ak_step_cancel(ak_tx_t *tx, const ak_step_t *step);
/* The step's attempt a (NULL when none). */
json_t *ak_attempt(json_t *S, int a);
/* The step's output: that of its last completed attempt (NULL: none). */
const json_t *ak_step_output(const json_t *S);
/* Keep a JSON value for events: itself, or {truncated, bytes} when big. */
json_t *ak_event_value(const json_t *v);
/* An event's data as published (new reference): the journal keeps a step's
 * output once, in its attempt, and events get it from there. */
json_t *ak_event_data(const json_t *run, const json_t *ev);
/* Results of attempt a of a step (ignored when that attempt is not the one
 * in flight). True when the run changed. */
bool ak_step_done(ak_tx_t *tx, const char *step_id, int a, json_t *output);
bool ak_step_fail(ak_tx_t *tx, const char *step_id, int a, const char *error,
                  int code, bool final);
/* A durable timer of the run fired. */
bool ak_run_wake(ak_tx_t *tx, const char *reason, const char *step_id, int a);
/* Move the run as far as it goes without waiting. */
void ak_run_advance(ak_tx_t *tx);
/* Client commands. */
bool ak_run_cancel(ak_tx_t *tx, const char *why);
bool ak_run_pause(ak_tx_t *tx);
bool ak_run_resume(ak_tx_t *tx);
bool ak_run_signal(ak_tx_t *tx, const char *name, json_t *payload,
                   bool *delivered);
/* 0 done; 404 no such waiting step; 403 role too weak. */
int ak_run_approve(ak_tx_t *tx, const char *step_id, bool approved,
                   const char *comment, slice_t user, schema_role_t role);
/* A new run's state (status running, nothing started). */
json_t *ak_run_new_state(const char *run_id, const char *kind,
                         const ak_def_t *def, const json_t *input,
                         const rt_out_opts_t *caller, int64_t now);
/* The expression context of a run. */
json_t *ak_run_context(const json_t *run);
/* End the run (status completed, failed or cancelled). */
void ak_run_end(ak_tx_t *tx, const char *status, json_t *output,
                const char *error, const char *step_id);

/* ---------------------------------------------------------------------------
 * agent.c: agent runs (each model call and each tool call a step)
 * ------------------------------------------------------------------------ */

void ak_agent_advance(ak_tx_t *tx);
/* An approval of a gated tool call: run it, or answer the model that a
 * person refused it. Same results as ak_run_approve. */
int ak_agent_approve(ak_tx_t *tx, const char *step_id, bool approved,
                     const char *comment, slice_t user);
/* A tool call of the agent ended (its step completed or failed for good):
 * true when that was the last of its turn. */
void ak_agent_step_ended(ak_tx_t *tx, const char *step_id);
/* The "thread" effect: the finished run's messages join its thread. */
bool ak_agent_thread_fx(ak_tx_t *tx, const json_t *effect);
/* The llm step's output from a chat completion answer (taken: body). */
json_t *ak_llm_output(const char *body, char *err, size_t errlen);
/* Tool names as the model sees them ("analytics.metrics" <->
 * "analytics__metrics"). */
void ak_tool_name(const char *type, char *out, size_t size);
bool ak_tool_type(const char *name, char *out, size_t size);
/* The OpenAI "tools" array for command types (a new reference); NULL and
 * err when one is not a command agents may call. */
json_t *ak_tool_decls(const schema_set_t *schemas, const json_t *types,
                      char *err, size_t errlen);

/* ---------------------------------------------------------------------------
 * Handlers (api_defs.c, api_runs.c, inbound.c, waits.c)
 * ------------------------------------------------------------------------ */

handler_result_t ak_workflows_put(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ak_workflows_get(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ak_workflows_list(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ak_agents_create(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ak_agents_get(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ak_agents_list(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ak_threads_get(rt_ctx_t *ctx, const msgpack_object *body);

handler_result_t ak_runs_start(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ak_agents_run(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ak_runs_get(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ak_runs_list(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ak_runs_history(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ak_runs_past_events(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ak_runs_cancel(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ak_runs_pause(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ak_runs_resume(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ak_runs_signal(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ak_runs_approve(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ak_runs_rerun(rt_ctx_t *ctx, const msgpack_object *body);

handler_result_t ak_run_wake_cmd(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ak_run_outcome(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ak_run_matched(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ak_run_child_ended(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ak_on_reply(rt_ctx_t *ctx, const msgpack_object *body);

/* wait_event: register and drop a waiting step; the subscription. */
store_err_t ak_wait_add(ak_state_t *st, const json_t *run, const char *step_id,
                        int a, const char *event, const json_t *filter,
                        int64_t since_ms);
store_err_t ak_wait_remove(ak_state_t *st, const json_t *run,
                           const char *step_id, int a, const char *event);
handler_result_t ak_waits_batch(rt_ctx_t *const *ctxs,
                                const msgpack_object *const *bodies, size_t n);
extern const group_subscription_t ak_subscriptions[];
extern const size_t ak_n_subscriptions;

#endif
