/*
 * analytics.c - the analytics group: projections of every channel's data
 * built from integrations' and auth's events, dashboards, metrics,
 * attribution, reports, insights, and replay (see analytics_internal.h for
 * how it is split and what it keeps).
 */
#include <stdio.h>
#include <stdlib.h>

#include "alloc.h"
#include "analytics_internal.h"
#include "log.h"
#include "mail.h"

static const group_handler_t analytics_handlers[] = {
        {"analytics.status", runtime_handle_status},
        {"analytics.dashboard.view", dashboard_view},
        {"analytics.dashboard", dashboard_handle},
        {"analytics.metrics", metrics_handle},
        {"analytics.metrics.catalog", metrics_catalog},
        {"analytics.attribution", attribution_handle},
        {"analytics.insights.list", insights_list},
        {"analytics.budgets.set", budgets_set},
        {"analytics.budgets.list", budgets_list},
        {"analytics.reports.create", reports_create},
        {"analytics.reports.list", reports_list},
        {"analytics.reports.get", reports_get},
        {"analytics.reports.delete", reports_delete},
        {"analytics.reports.run", reports_run},
        {"analytics.reports.fire", reports_fire},
        {"analytics.reports.result", reports_result},
        {"analytics.replays.get", replays_get},
        {"analytics.projections.get", projections_get},
};

/* The live projections: integrations' records, connections and syncs, and
 * auth's organisations and members, in batches. */
static const char *const live_topics[] = {"integrations.events", "auth.events",
                                          NULL};
static const group_handler_t live_handlers[] = {
        {"integrations.*", NULL, analytics_live_batch},
        {"auth.org.*", NULL, analytics_live_batch},
        {"auth.user.registered", NULL, analytics_live_batch},
};
static const group_subscription_t analytics_subscriptions[] = {
        {"projections", live_topics, live_handlers,
         sizeof(live_handlers) / sizeof(live_handlers[0]), 0},
};

static const store_index_t analytics_indexes[] = {
        {"insights", "insights_tenant_period", "tenant,-period.to", false, -1},
        {"budgets", "budgets_tenant", "tenant", false, -1},
        {"reports", "reports_tenant", "tenant,-created_ms", false, -1},
        {"report_runs", "report_runs_report", "report_id,-created_ms", false,
         -1},
        {NULL},
};

static handler_result_t analytics_init(runtime_t *rt, void **state,
                                       char *errstr, size_t errlen) {
        analytics_state_t *st;
        projection_snapshot_t *snap = NULL;
        size_t dropped = 0;
        if (projection_snapshot_load(runtime_store(rt), runtime_db(rt),
                                     analytics_projection_defs, PROJ_COUNT,
                                     &snap, errstr, errlen) != PROJECTION_OK)
                return HANDLER_TRANSIENT;
        /* Say it when a projection was built by older code. */
        projection_check(snap, analytics_projection_defs, PROJ_COUNT,
                         "omnify replay analytics");
        projection_snapshot_free(snap);
        st = xcalloc(1, sizeof(*st));
        st->cfg = runtime_config(rt);
        st->set = runtime_settings(rt, &analytics_settings);
        st->store = runtime_store(rt);
        if (reports_start(st, rt, errstr, errlen) != HANDLER_OK) {
                reports_stop(st);
                free(st);
                return HANDLER_TRANSIENT;
        }
        if (projection_gc(st->store, runtime_db(rt), analytics_projection_defs,
                          PROJ_COUNT, (int64_t)clock_wall_ms(), &dropped,
                          errstr, errlen) != PROJECTION_OK)
                log_warn("dropping retired projection versions: %s", errstr);
        *state = st;
        return HANDLER_OK;
}

static void analytics_shutdown(void *state) {
        reports_stop(state);
        free(state);
}

static const config_table_t *const analytics_tables[] = {&analytics_settings,
                                                         &mail_settings, NULL};

const group_def_t group_analytics = {
        .name = "analytics",
        .ops_port = 8004,
        .settings = analytics_tables,
        .timers = true, /* scheduled reports (reports.c) */
        .handlers = analytics_handlers,
        .n_handlers =
                sizeof(analytics_handlers) / sizeof(analytics_handlers[0]),
        .subscriptions = analytics_subscriptions,
        .n_subscriptions = sizeof(analytics_subscriptions) /
                           sizeof(analytics_subscriptions[0]),
        .indexes = analytics_indexes,
        .init = analytics_init,
        .shutdown = analytics_shutdown,
        .replay = &analytics_replay_set,
};
