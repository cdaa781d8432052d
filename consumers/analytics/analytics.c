/*
 * analytics.c - the analytics group: projections built from events: dashboards,
 * metrics, reports.
 *
 * So far it answers only its status probe; its domain handlers join this
 * table as they are built, and the runtime does everything else.
 */
#include "registry.h"

static const group_handler_t analytics_handlers[] = {
        {"analytics.status", runtime_handle_status},
};

const group_def_t group_analytics = {
        .name = "analytics",
        .ops_port = 8004,
        .handlers = analytics_handlers,
        .n_handlers =
                sizeof(analytics_handlers) / sizeof(analytics_handlers[0]),
};
