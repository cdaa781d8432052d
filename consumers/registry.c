/*
 * registry.c - the list of consumer groups (see registry.h).
 */
#include "registry.h"

#include <string.h>

const group_def_t *const registry_groups[] = {
        &group_auth,           &group_integrations, &group_agentkit,
        &group_analytics,      &group_onboarding,   &group_ml,
        &group_infrastructure,
};

const size_t registry_count =
        sizeof(registry_groups) / sizeof(registry_groups[0]);

const group_def_t *registry_find(const char *name, size_t len) {
        for (size_t i = 0; i < registry_count; i++) {
                const char *g = registry_groups[i]->name;
                if (strlen(g) == len && memcmp(g, name, len) == 0)
                        return registry_groups[i];
        }
        return NULL;
}

void registry_tables(const bool *use, const config_table_t **out, size_t max) {
        size_t n = 0;
        for (size_t i = 0; i < registry_count; i++) {
                const config_table_t *const *t = registry_groups[i]->settings;
                if (use && !use[i])
                        continue;
                for (; t && *t && n + 1 < max; t++)
                        out[n++] = *t;
        }
        out[n] = NULL;
}
