/*
 * registry.h - the one place every consumer group is registered.
 *
 * The monolith runs the groups listed here as threads; each group's own
 * binary runs its one entry. Same table, same code.
 */
#ifndef OMNIFY_REGISTRY_H
#define OMNIFY_REGISTRY_H

#include <stddef.h>

#include <stdbool.h>

#include "runtime.h"

extern const group_def_t group_auth;
extern const group_def_t group_integrations;
extern const group_def_t group_agentkit;
extern const group_def_t group_analytics;
extern const group_def_t group_onboarding;
extern const group_def_t group_ml;
extern const group_def_t group_infrastructure;

/* Every group, in ops-port order. */
extern const group_def_t *const registry_groups[];
extern const size_t registry_count;

/* The group of that name, or NULL. */
const group_def_t *registry_find(const char *name, size_t len);

/* The settings tables of the groups where use[i] is true (use NULL: every
 * group) into out, NULL-terminated (at most max - 1 tables). */
void registry_tables(const bool *use, const config_table_t **out, size_t max);

#endif
