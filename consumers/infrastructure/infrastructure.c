/*
 * infrastructure.c - the infrastructure group: its table, settings and
 * state (see infra.h for what it does and where).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "alloc.h"
#include "heartbeat.h"
#include "infra.h"

#define IOFF(f) offsetof(infra_settings_t, f)

static const config_row_t infra_rows[] = {
        {"OMNIFY_INFRA_KAFKA_BROKERS", CONFIG_STRING, IOFF(kafka_brokers), 0, 0,
         1024, "", NULL, 0,
         "Cluster the infrastructure group observes (host:port list); empty: "
         "OMNIFY_KAFKA_BROKERS."},
        {"OMNIFY_INFRA_SAMPLE_S", CONFIG_INT, IOFF(sample_s), 0, 1, 3600, "5",
         NULL, 0,
         "Seconds between samples of the cluster and consumer groups (the "
         "only broker requests the console causes)."},
        {"OMNIFY_INFRA_WINDOW", CONFIG_INT, IOFF(window), 0, 3,
         INFRA_WINDOW_MAX, "10", NULL, 0,
         "Samples in the sliding window of the consumer group status "
         "(OK/WARN/ERR/STALL/STOP)."},
        {"OMNIFY_INFRA_CONFIGS_S", CONFIG_INT, IOFF(configs_s), 0, 5, 86400,
         "60", NULL, 0,
         "Seconds between reads of topic configs and low watermarks."},
        {"OMNIFY_INFRA_STALE_S", CONFIG_INT, IOFF(stale_s), 0, 6, 3600, "20",
         NULL, 0, "A process whose last heartbeat is older is shown stale."},
        {"OMNIFY_INFRA_TENANTS", CONFIG_STRING, IOFF(tenants), 0, 0, 4096, "",
         NULL, 0,
         "Organisations whose admins may use the infrastructure routes, "
         "comma-separated; empty: the admins of any organisation."},
        {"OMNIFY_KONG_URL", CONFIG_STRING, IOFF(kong_url), 0, 0, 512, "", NULL,
         0,
         "Kong's status endpoint to probe (e.g. http://kong:8001/status); "
         "empty: not shown."},
        {"OMNIFY_TEMPORAL_URL", CONFIG_STRING, IOFF(temporal_url), 0, 0, 512,
         "", NULL, 0,
         "Temporal's HTTP health endpoint to probe; empty: not shown."},
        {"OMNIFY_AIRBYTE_URL", CONFIG_STRING, IOFF(airbyte_url), 0, 0, 512, "",
         NULL, 0,
         "Airbyte's health endpoint (e.g. http://airbyte:8000/api/v1/health); "
         "empty: not shown."},
        {"OMNIFY_METABASE_URL", CONFIG_STRING, IOFF(metabase_url), 0, 0, 512,
         "", NULL, 0,
         "Metabase's health endpoint (e.g. http://metabase:3000/api/health); "
         "empty: not shown."},
        {"OMNIFY_INFRA_PROBE_TIMEOUT_MS", CONFIG_INT, IOFF(probe_timeout_ms), 0,
         100, 30000, "2000", NULL, 0, "Time allowed to each dependency probe."},
        {"OMNIFY_INFRA_COUNT_REQUESTS", CONFIG_INT, IOFF(count_requests), 0, 0,
         1, "0", NULL, 0,
         "1: count the admin client's broker requests into /metrics "
         "(omnify_infra_kadmin_requests; librdkafka statistics every 100 ms "
         "and ~0.2 s more per sample: for benchmarks, not production)."},
};

const config_table_t infra_settings = {
        "infrastructure",
        infra_rows,
        sizeof(infra_rows) / sizeof(infra_rows[0]),
        sizeof(infra_settings_t),
};

static const config_table_t *const infra_tables[] = {&infra_settings, NULL};

static handler_result_t infra_init(runtime_t *rt, void **state, char *errstr,
                                   size_t errlen) {
        infra_state_t *st = xcalloc(1, sizeof(*st));
        const config_t *cfg = runtime_config(rt);
        st->cfg = cfg;
        st->set = runtime_settings(rt, &infra_settings);
        st->store = runtime_store(rt);
        st->admin =
                kadmin_new(cfg,
                           st->set->kafka_brokers[0] ? st->set->kafka_brokers
                                                     : cfg->kafka_brokers,
                           st->set->count_requests != 0, errstr, errlen);
        if (!st->admin) {
                free(st);
                return HANDLER_PERMANENT;
        }
        pthread_mutex_init(&st->admin_lock, NULL);
        st->sampler = infra_sampler_new();
        st->m_samples = metrics_counter(
                "omnify_infra_samples_total",
                "Samples of the cluster and consumer groups taken", "");
        st->m_last_us = metrics_gauge(
                "omnify_infra_sample_last_us",
                "Duration of the last sample (broker and store), microseconds",
                "");
        st->m_requests = metrics_gauge(
                "omnify_infra_kadmin_requests",
                "Requests the admin client sent to brokers since start "
                "(OMNIFY_INFRA_COUNT_REQUESTS=1, else 0)",
                "");
        st->m_seconds = metrics_histogram(
                "omnify_infra_sample_seconds",
                "Duration of a sample of the cluster and consumer groups", "");
        *state = st;
        return HANDLER_OK;
}

static void infra_shutdown(void *state) {
        infra_state_t *st = state;
        infra_sampler_destroy(st->sampler);
        kadmin_destroy(st->admin);
        pthread_mutex_destroy(&st->admin_lock);
        free(st);
}

static const group_handler_t infra_handlers[] = {
        {"infrastructure.status", runtime_handle_status},
        {"infrastructure.cluster", infra_cluster},
        {"infrastructure.groups", infra_groups},
        {"infrastructure.group", infra_group},
        {"infrastructure.group.reset", infra_reset},
        {"infrastructure.dead_letters", infra_dead_letters},
        {"infrastructure.dependencies", infra_dependencies},
        {"infrastructure.topology", infra_topology},
        {"infrastructure.snapshot.latest", infra_snapshot},
};

static const char *const infra_heartbeat_topics[] = {HEARTBEAT_TOPIC, NULL};

static const group_handler_t infra_heartbeat_handlers[] = {
        {HEARTBEAT_TYPE, infra_on_heartbeat},
};

static const group_subscription_t infra_subscriptions[] = {
        {"topology", infra_heartbeat_topics, infra_heartbeat_handlers, 1, 0},
};

static const store_index_t infra_indexes[] = {
        {"history", "history_expiry", "expires_at", false, 0},
        {"processes", "processes_expiry", "expires_at", false, 0},
        {NULL},
};

const group_def_t group_infrastructure = {
        .name = "infrastructure",
        .ops_port = 8007,
        .settings = infra_tables,
        .handlers = infra_handlers,
        .n_handlers = sizeof(infra_handlers) / sizeof(infra_handlers[0]),
        .subscriptions = infra_subscriptions,
        .n_subscriptions = 1,
        .indexes = infra_indexes,
        .init = infra_init,
        .shutdown = infra_shutdown,
};
