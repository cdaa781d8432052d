/*
 * agentkit.c - the agentkit group: durable workflows and AI agents.
 *
 * The group's table (every command, the subscription of wait_event steps,
 * replies), its indexes, and its parts: the definitions cache, the durable
 * timers (sleeps, retries, timeouts) and the outbox of outbound calls
 * (http and llm steps; the runtime's, on the process's HTTP client). See
 * agentkit_internal.h for how a run moves.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentkit_internal.h"

/* The LLM key is added to each try, never stored with the record. */
static bool ak__llm_prepare(void *arg, const bson_t *record,
                            httpc_headers_t *headers) {
        const ak_settings_t *set = arg;
        char auth[600];
        (void)record;
        if (!set->llm_api_key[0])
                return false;
        snprintf(auth, sizeof(auth), "Bearer %s", set->llm_api_key);
        return httpc_headers_add(headers, "Authorization", auth);
}

static void ak__stop(ak_state_t *st) {
        if (!st)
                return;
        /* The outbox is the runtime's (stopped before this hook). */
        timer_service_destroy(st->timers);
        ak_defs_destroy(st->defs);
        ak_cache_destroy(st->cache);
        for (int i = 0; i < AK_LOCKS; i++)
                pthread_mutex_destroy(&st->locks[i]);
        free(st);
}

static handler_result_t ak_init(runtime_t *rt, void **state, char *errstr,
                                size_t errlen) {
        ak_state_t *st = xcalloc(1, sizeof(*st));
        bus_t *bus = runtime_bus(rt);
        timer_opts_t to = {0};
        outbox_opts_t oo = {0};
        int slowest;

        for (int i = 0; i < AK_LOCKS; i++)
                pthread_mutex_init(&st->locks[i], NULL);
        st->rt = rt;
        st->cfg = runtime_config(rt);
        st->set = runtime_settings(rt, &agentkit_settings);
        st->store = runtime_store(rt);
        st->schemas = runtime_schemas(rt);
        st->defs = ak_defs_new(512);
        st->cache = ak_cache_new(64u * 1024 * 1024);
        st->tx_seconds = metrics_histogram(
                "omnify_agentkit_transition_seconds",
                "Run transitions: load, apply, write, effects.",
                "group=\"agentkit\"");
        st->write_seconds = metrics_histogram(
                "omnify_agentkit_write_seconds",
                "Writes of a run's record, acknowledged by the store.",
                "group=\"agentkit\"");
        st->conflicts = metrics_counter(
                "omnify_agentkit_conflicts_total",
                "Transitions that found their run changed meanwhile and "
                "started over.",
                "group=\"agentkit\"");
        st->kinds[0] = (outbox_kind_t){.name = "http"};
        st->kinds[1] = (outbox_kind_t){.name = "llm",
                                       .prepare = ak__llm_prepare,
                                       .arg = (void *)st->set};
        slowest = st->set->llm_timeout_ms > st->set->http_timeout_ms
                          ? st->set->llm_timeout_ms
                          : st->set->http_timeout_ms;
        /* The runtime's outbox: the process's HTTP client (runtime_http),
         * started now, stopped before ak_shutdown. */
        oo.collection = "outbox";
        oo.kinds = st->kinds;
        oo.n_kinds = 2;
        oo.inflight = 64;
        oo.poll_ms = 250;
        /* A claim outlasts one try and the write of its outcome; a process
         * killed mid-call leaves a claim that runs out this soon. */
        oo.lease_ms = slowest + 6000;
        if (!(st->outbox = runtime_outbox_new(rt, &oo, errstr, errlen)))
                goto fail;
        /* A timer service of the group's own rather than the runtime's
         * (group_def_t.timers): its lease is short, so timers held by a
         * process killed with -9 fire 5 s late at most, not the runtime's
         * message timeout + 30 s. */
        to.cfg = st->cfg;
        to.store = st->store;
        to.bus = bus;
        to.group = "agentkit";
        to.poll_ms = st->set->timer_poll_ms;
        /* A firer killed while it holds timers delays them by this much at
         * most; a firing that outlasts it is made twice under one message
         * id (harmless). */
        to.lease_ms = 5000;
        if (!(st->timers = timer_service_new(&to, errstr, errlen)))
                goto fail;
        if (bus && timer_service_start(st->timers, errstr, errlen))
                goto fail;
        if (!st->set->llm_api_key[0])
                log_warn("OMNIFY_LLM_API_KEY is empty: llm calls wait in the "
                         "outbox");
        *state = st;
        return HANDLER_OK;
fail:
        ak__stop(st);
        return HANDLER_PERMANENT;
}

static void ak_shutdown(void *state) {
        ak__stop(state);
}

static const group_handler_t agentkit_handlers[] = {
        {"agentkit.status", runtime_handle_status, NULL},
        /* api_defs.c */
        {"agentkit.workflows.put", ak_workflows_put, NULL},
        {"agentkit.workflows.get", ak_workflows_get, NULL},
        {"agentkit.workflows.list", ak_workflows_list, NULL},
        {"agentkit.agents.create", ak_agents_create, NULL},
        {"agentkit.agents.get", ak_agents_get, NULL},
        {"agentkit.agents.list", ak_agents_list, NULL},
        {"agentkit.threads.get", ak_threads_get, NULL},
        /* api_runs.c */
        {"agentkit.runs.start", ak_runs_start, NULL},
        {"agentkit.agents.run", ak_agents_run, NULL},
        {"agentkit.runs.get", ak_runs_get, NULL},
        {"agentkit.runs.list", ak_runs_list, NULL},
        {"agentkit.runs.history", ak_runs_history, NULL},
        {"agentkit.runs.past_events", ak_runs_past_events, NULL},
        {"agentkit.runs.cancel", ak_runs_cancel, NULL},
        {"agentkit.runs.pause", ak_runs_pause, NULL},
        {"agentkit.runs.resume", ak_runs_resume, NULL},
        {"agentkit.runs.signal", ak_runs_signal, NULL},
        {"agentkit.runs.approve", ak_runs_approve, NULL},
        {"agentkit.runs.rerun", ak_runs_rerun, NULL},
        /* inbound.c */
        {"agentkit.run.wake", ak_run_wake_cmd, NULL},
        {"agentkit.run.outcome", ak_run_outcome, NULL},
        {"agentkit.run.matched", ak_run_matched, NULL},
        {"agentkit.run.child_ended", ak_run_child_ended, NULL},
};

static const store_index_t agentkit_indexes[] = {
        {AK_RUNS, "runs_tenant", "tenant,-created_at", false, -1},
        {AK_RUNS, "runs_status", "tenant,status,-created_at", false, -1},
        {AK_HEADS, "heads_tenant", "kind,tenant,-updated_at", false, -1},
        {AK_RUNS, "corr_expiry", "expires_at", false, 0},
        {NULL},
};

static const config_table_t *const agentkit_tables[] = {&agentkit_settings,
                                                        NULL};

const group_def_t group_agentkit = {
        .name = "agentkit",
        .ops_port = 8003,
        .settings = agentkit_tables,
        .handlers = agentkit_handlers,
        .n_handlers = sizeof(agentkit_handlers) / sizeof(agentkit_handlers[0]),
        .subscriptions = ak_subscriptions,
        .n_subscriptions = 1,
        .on_reply = ak_on_reply,
        /* Transitions mostly wait for the store: more of them at once. */
        .concurrency = 32,
        .indexes = agentkit_indexes,
        .init = ak_init,
        .shutdown = ak_shutdown,
};
