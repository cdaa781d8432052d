/*
 * onb.h - what the onboarding group's files share.
 *
 * Agencies onboard their clients (POST /api/onboarding/clients). Each
 * client has a checklist whose steps complete from other groups' events,
 * never from the client calling us:
 *
 *   workspace_created   auth.user.registered (tenant_id), auth.org.created
 *   terms_accepted      auth.legal.accepted of the terms
 *   team_invited        auth.org.invitation_created
 *   connected:<p>       integrations.connection.connected, per provider
 *   synced:<p>          integrations.sync.completed, per provider
 *   dashboard_viewed    analytics.dashboard.viewed
 *   report_scheduled    analytics.report.scheduled
 *
 * The subscription "checklist" keeps facts: {_id: "<workspace>|<fact>",
 * workspace, fact, at} upserted with $min of the event's time, so the same
 * events in any order, again or replayed from the start, give the same
 * facts (the projection is rebuilt by rewinding that consumer group). A
 * client's checklist is worked out when read: its workspace's facts, its
 * skips, and the deadlines from its creation time.
 *
 * Database "onboarding":
 *   clients    {_id, tenant, workspace, name, website, goals, budget,
 *               contacts, providers, created_by, created_at, skipped:
 *               {step: {reason, by, at}}}
 *   facts      as above
 *   workspaces {_id: org id, tenant: the organisation it was created
 *               from, at}: which workspaces an agency may name
 */
#ifndef OMNIFY_ONB_H
#define OMNIFY_ONB_H

#include <jansson.h>

#include "registry.h"

#define ONB_DB "onboarding"

typedef struct onb_settings {
        int day_s; /* seconds in a deadline "day" */
        int list_max;
} onb_settings_t;

extern const config_table_t onb_settings;

/* steps.c: the checklist of client (a clients document as JSON) from the
 * facts of its workspace ({fact: at}); adds "steps", "progress" (percent,
 * done, skipped, total, next, blocking, overdue) to it. now: wall ms. */
void onb_checklist(json_t *client, const json_t *facts, int64_t now, int day_s);

/* Whether step names a step of client's checklist. */
bool onb_step_known(const json_t *client, const char *step);

/* The facts of client's workspace that its steps need, as {fact: at}, or
 * NULL (*err). */
json_t *onb_facts(store_t *store, const json_t *client, store_err_t *err);

/* clients.c */
handler_result_t onb_client_create(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t onb_client_list(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t onb_client_get(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t onb_step_skip(rt_ctx_t *ctx, const msgpack_object *body);

/* facts.c: the subscription's handlers. */
#define ONB_N_FACT_HANDLERS 8
extern const group_handler_t onb_fact_handlers[ONB_N_FACT_HANDLERS];

#endif
