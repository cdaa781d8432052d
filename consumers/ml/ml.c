/*
 * ml.c - the ml group: forecasts, anomaly detection, lead and churn
 * scoring, budget pacing and what-if (see ml_internal.h for the parts and
 * the data).
 */
#include <stdlib.h>

#include "alloc.h"
#include "ml_internal.h"

static const group_handler_t ml_handlers[] = {
        {"ml.status", runtime_handle_status},
        {"ml.forecasts.create", ml_forecasts_create},
        {"ml.forecasts.get", ml_forecasts_get},
        {"ml.forecasts.list", ml_forecasts_list},
        {"ml.forecasts.delete", ml_forecasts_delete},
        {"ml.anomalies.list", ml_anomalies_list},
        {"ml.models.train", ml_models_train},
        {"ml.models.retrain", ml_models_retrain},
        {"ml.models.schedule", ml_models_schedule},
        {"ml.models.get", ml_models_get},
        {"ml.scores.list", ml_scores_list},
        {"ml.scores.get", ml_scores_get},
        {"ml.pacing.get", ml_pacing_get},
        {"ml.budget.whatif", ml_whatif},
        {"ml.refresh", ml_handle_refresh},
};

/* analytics closes a tenant's days: refresh it. */
static const char *const analytics_topics[] = {"analytics.events", NULL};
static const group_handler_t analytics_handlers[] = {
        {"analytics.day.closed", ml_on_day_closed},
};

/* integrations' records: ml's feature store. */
static const char *const integrations_topics[] = {"integrations.events", NULL};
static const group_handler_t feature_handlers[] = {
        {"integrations.contact.recorded", NULL, ml_features_batch},
        {"integrations.deal.recorded", NULL, ml_features_batch},
        {"integrations.order.recorded", NULL, ml_features_batch},
};

static const group_subscription_t ml_subscriptions[] = {
        {"days", analytics_topics, analytics_handlers,
         sizeof(analytics_handlers) / sizeof(analytics_handlers[0]), 0},
        {"features", integrations_topics, feature_handlers,
         sizeof(feature_handlers) / sizeof(feature_handlers[0]), 0},
};

/* The local store ignores non-unique indexes; MongoDB uses them. */
static const store_index_t ml_indexes[] = {
        {"forecasts", "tenant_created", "tenant,-created_at", false, -1},
        {"requests", "expires_at_ttl", "expires_at", false, 0},
        {"anomalies", "tenant_day", "tenant,-day_n", false, -1},
        {"models", "tenant_family", "tenant,family,-created_at", false, -1},
        {"scores", "tenant_kind_score", "tenant,kind,-score", false, -1},
        {"scores", "tenant_kind_id", "tenant,kind,id", false, -1},
        {"contacts", "tenant", "tenant", false, -1},
        {"deals", "tenant", "tenant", false, -1},
        {"orders", "tenant", "tenant", false, -1},
        {NULL},
};

static void ml_shutdown(void *state) {
        ml_state_t *st = state;
        if (!st)
                return;
        timer_service_destroy(st->timers);
        free(st);
}

static handler_result_t ml_init(runtime_t *rt, void **state, char *errstr,
                                size_t errlen) {
        ml_state_t *st = xcalloc(1, sizeof(*st));
        timer_opts_t to = {0};
        st->cfg = runtime_config(rt);
        st->set = runtime_settings(rt, &ml_settings);
        st->store = runtime_store(rt);
        to.cfg = st->cfg;
        to.store = st->store;
        to.bus = runtime_bus(rt); /* NULL in the harness: no firing */
        to.group = "ml";
        if (!(st->timers = timer_service_new(&to, errstr, errlen)) ||
            (to.bus && timer_service_start(st->timers, errstr, errlen))) {
                ml_shutdown(st);
                return HANDLER_PERMANENT;
        }
        *state = st;
        return HANDLER_OK;
}

static const config_table_t *const ml_tables[] = {&ml_settings, NULL};

const group_def_t group_ml = {
        .name = "ml",
        .ops_port = 8006,
        .settings = ml_tables,
        .handlers = ml_handlers,
        .n_handlers = sizeof(ml_handlers) / sizeof(ml_handlers[0]),
        .subscriptions = ml_subscriptions,
        .n_subscriptions =
                sizeof(ml_subscriptions) / sizeof(ml_subscriptions[0]),
        .on_reply = ml_on_reply,
        .concurrency = 4,
        .indexes = ml_indexes,
        .init = ml_init,
        .shutdown = ml_shutdown,
};
