/*
 * ml.c - the ml group: forecasts, anomaly detection and scoring.
 *
 * So far it answers only its status probe; its domain handlers join this
 * table as they are built, and the runtime does everything else.
 */
#include "registry.h"

static const group_handler_t ml_handlers[] = {
        {"ml.status", runtime_handle_status},
};

const group_def_t group_ml = {
        .name = "ml",
        .ops_port = 8006,
        .handlers = ml_handlers,
        .n_handlers = sizeof(ml_handlers) / sizeof(ml_handlers[0]),
};
