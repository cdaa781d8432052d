/*
 * onboarding.c - the onboarding group: the client onboarding wizard and its
 * state.
 *
 * So far it answers only its status probe; its domain handlers join this
 * table as they are built, and the runtime does everything else.
 */
#include "registry.h"

static const group_handler_t onboarding_handlers[] = {
        {"onboarding.status", runtime_handle_status},
};

const group_def_t group_onboarding = {
        .name = "onboarding",
        .ops_port = 8005,
        .handlers = onboarding_handlers,
        .n_handlers =
                sizeof(onboarding_handlers) / sizeof(onboarding_handlers[0]),
};
