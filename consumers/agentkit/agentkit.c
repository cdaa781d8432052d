/*
 * agentkit.c - the agentkit group: agents and durable workflow runs.
 *
 * So far it answers only its status probe; its domain handlers join this
 * table as they are built, and the runtime does everything else.
 */
#include "registry.h"

static const group_handler_t agentkit_handlers[] = {
        {"agentkit.status", runtime_handle_status},
};

const group_def_t group_agentkit = {
        .name = "agentkit",
        .ops_port = 8003,
        .handlers = agentkit_handlers,
        .n_handlers = sizeof(agentkit_handlers) / sizeof(agentkit_handlers[0]),
};
