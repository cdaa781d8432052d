/*
 * infrastructure.c - the infrastructure group: cluster, topic and consumer-lag
 * status of the platform itself.
 *
 * So far it answers only its status probe; its domain handlers join this
 * table as they are built, and the runtime does everything else.
 */
#include "registry.h"

static const group_handler_t infrastructure_handlers[] = {
        {"infrastructure.status", runtime_handle_status},
};

const group_def_t group_infrastructure = {
        .name = "infrastructure",
        .ops_port = 8007,
        .handlers = infrastructure_handlers,
        .n_handlers = sizeof(infrastructure_handlers) /
                      sizeof(infrastructure_handlers[0]),
};
