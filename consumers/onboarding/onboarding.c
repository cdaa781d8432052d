/*
 * onboarding.c - the onboarding group: its table and settings (see onb.h
 * for what it does).
 */
#include <stddef.h>
#include <stdlib.h>

#include "alloc.h"
#include "onb.h"

#define OOFF(f) offsetof(onb_settings_t, f)

static const config_row_t onb_rows[] = {
        {"OMNIFY_ONBOARDING_DAY_S", CONFIG_INT, OOFF(day_s), 0, 1, 864000,
         "86400", NULL, 0,
         "Seconds in a day of the checklist's deadlines (tests shorten it)."},
        {"OMNIFY_ONBOARDING_LIST_MAX", CONFIG_INT, OOFF(list_max), 0, 1, 1000,
         "100", NULL, 0, "Clients per list answer at most."},
        {"OMNIFY_ONBOARDING_GC_INTERVAL_S", CONFIG_INT, OOFF(gc_interval_s), 0,
         1, 86400, "300", NULL, 0,
         "Seconds between drops of retired versions of the checklist "
         "projection (after `omnify replay onboarding`)."},
};

const config_table_t onb_settings = {
        "onboarding",
        onb_rows,
        sizeof(onb_rows) / sizeof(onb_rows[0]),
        sizeof(onb_settings_t),
};

static const config_table_t *const onb_tables[] = {&onb_settings,
                                                   &mail_settings, NULL};

static handler_result_t onb_init(runtime_t *rt, void **state, char *errstr,
                                 size_t errlen) {
        onb_state_t *st;
        projection_snapshot_t *snap = NULL;
        if (projection_snapshot_load(runtime_store(rt), ONB_DB,
                                     onb_projection_defs, 1, &snap, errstr,
                                     errlen) != PROJECTION_OK)
                return HANDLER_TRANSIENT;
        /* Say it when the projection was built by older code. */
        projection_check(snap, onb_projection_defs, 1,
                         "omnify replay onboarding");
        projection_snapshot_free(snap);
        st = xcalloc(1, sizeof(*st));
        st->set = runtime_settings(rt, &onb_settings);
        if (!(st->mailer = runtime_mailbox_new(rt, "reminder_mail", errstr,
                                               errlen))) {
                free(st);
                return HANDLER_PERMANENT;
        }
        *state = st;
        return HANDLER_OK;
}

static void onb_shutdown(void *state) {
        onb_state_t *st = state;
        if (!st)
                return;
        runtime_mailbox_free(st->mailer);
        free(st);
}

static const group_handler_t onboarding_handlers[] = {
        {"onboarding.status", runtime_handle_status},
        {"onboarding.clients.create", onb_client_create},
        {"onboarding.clients.list", onb_client_list},
        {"onboarding.clients.get", onb_client_get},
        {"onboarding.steps.skip", onb_step_skip},
        {"onboarding.reminders.due", onb_reminders_due},
};

static const group_subscription_t onb_subscriptions[] = {
        {"checklist", onb_followed, onb_fact_handlers, ONB_N_FACT_HANDLERS, 0},
};

const group_def_t group_onboarding = {
        .name = "onboarding",
        .ops_port = 8005,
        .settings = onb_tables,
        .handlers = onboarding_handlers,
        .n_handlers =
                sizeof(onboarding_handlers) / sizeof(onboarding_handlers[0]),
        .subscriptions = onb_subscriptions,
        .n_subscriptions = 1,
        .timers = true,
        .init = onb_init,
        .shutdown = onb_shutdown,
        .replay = &onb_replay_set,
};
