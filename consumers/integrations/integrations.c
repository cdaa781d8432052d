/*
 * integrations.c - the integrations group: OAuth connections and data sync with
 * ad, CRM and e-commerce platforms.
 *
 * So far it answers only its status probe; its domain handlers join this
 * table as they are built, and the runtime does everything else.
 */
#include "registry.h"

static const group_handler_t integrations_handlers[] = {
        {"integrations.status", runtime_handle_status},
};

const group_def_t group_integrations = {
        .name = "integrations",
        .ops_port = 8002,
        .handlers = integrations_handlers,
        .n_handlers = sizeof(integrations_handlers) /
                      sizeof(integrations_handlers[0]),
};
