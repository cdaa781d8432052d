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
 * workspace, fact, at: "<ms, 16 digits>"}, at a $min register of the
 * event's time (shared/lww.h), so the same events in any order, again or
 * replayed, give the same facts. Facts and workspaces are the versioned
 * projection "checklist" (shared/projection.h, collections "<base>_v<N>"),
 * rebuilt by `omnify replay onboarding` with the live handler's fold
 * (facts.c) and swapped in by one compare-and-set of the pointer document;
 * every read resolves the version it reads first. A client's checklist is
 * worked out when read: its workspace's facts, its skips, and the
 * deadlines from its creation time.
 *
 * Database "onboarding":
 * Commands' state (not rebuilt by a replay):
 *   clients    {_id, tenant, workspace, name, website, goals, budget,
 *               contacts, providers, created_by, created_at, skipped:
 *               {step: {reason, by, at}}}
 *   projections  the pointer document of the versioned projection
 *   replays      `omnify replay onboarding`'s records
 *   facts_v<N>   as above (projection "checklist")
 *   workspaces_v<N>  {_id: org id, workspace: org id, tenant: the
 *               organisation it was created from}: which workspaces an
 *               agency may name (projection "checklist")
 *   reminders  {_id: "<client>|<step>", tenant, client_id, step, due_at,
 *               command_id: the firing that sent it, at}: one per step, ever
 *   timers     the durable reminder timers (shared/timer.h)
 *   mail_outbox  reminder mails (shared/outbox.h, shared/mail.h)
 *
 * Reminders (reminders.c): each client has one armed timer, at the earliest
 * deadline of its open steps. Its firing (onboarding.reminders.due) reminds
 * of every open step past its deadline that was never reminded of, and arms
 * the timer of the next deadline.
 */
#ifndef OMNIFY_ONB_H
#define OMNIFY_ONB_H

#include <jansson.h>

#include "mail.h"
#include "outbox.h"
#include "projection.h"
#include "replay.h"
#include "registry.h"

#define ONB_DB "onboarding"
#define ONB_PROJECTION "checklist"

typedef struct onb_settings {
        int day_s; /* seconds in a deadline "day" */
        int list_max;
        int gc_interval_s; /* janitor of retired projection versions */
} onb_settings_t;

extern const config_table_t onb_settings;

/* The group's state (init in onboarding.c). */
typedef struct onb_state {
        const onb_settings_t *set;
        runtime_mailbox_t *mailer; /* reminders.c's mails */
        uint64_t last_gc_ms;       /* facts.c's janitor (monotonic) */
} onb_state_t;

/* steps.c: the checklist of client (a clients document as JSON) from the
 * facts of its workspace ({fact: at}); adds "steps", "progress" (percent,
 * done, skipped, total, next, blocking, overdue) to it. now: wall ms. */
void onb_checklist(json_t *client, const json_t *facts, int64_t now, int day_s);

/* The earliest due_at of the open steps of a checklist's steps (as
 * onb_checklist made them) that is later than after, or 0 when none is. */
int64_t onb_next_due(const json_t *steps, int64_t after);

/* Whether step names a step of client's checklist. */
bool onb_step_known(const json_t *client, const char *step);

/* The facts of client's workspace that its steps need, as {fact: at}, or
 * NULL (*err). snap: the projection pointer read once for many clients
 * (NULL: read here). */
json_t *onb_facts(store_t *store, const projection_snapshot_t *snap,
                  const json_t *client, store_err_t *err);

/* clients.c */
/* A store failure: transient (retried), else a 500 problem. */
handler_result_t onb_store_failed(rt_ctx_t *ctx, store_err_t err);
/* Emit event type with body (taken over: decref'd); rt_emit's result. */
int onb_emit(rt_ctx_t *ctx, const char *type, const char *key, json_t *body);
/* The client id of the caller's organisation (rt_caller's tenant) as stored,
 * or NULL: after a 404 reply (*err STORE_OK), or on a store failure
 * (*err). */
json_t *onb_client_find(rt_ctx_t *ctx, slice_t id, store_err_t *err);
handler_result_t onb_client_create(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t onb_client_list(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t onb_client_get(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t onb_step_skip(rt_ctx_t *ctx, const msgpack_object *body);

/* reminders.c */
/* Arm the reminder timer of client_id at the earliest deadline of its open
 * steps later than after (nothing when none is). HANDLER_TRANSIENT when the
 * store is down. */
handler_result_t onb_remind_arm(rt_ctx_t *ctx, const char *client_id,
                                const json_t *steps, int64_t after);

/* onboarding.reminders.due: a reminder timer fired. */
handler_result_t onb_reminders_due(rt_ctx_t *ctx, const msgpack_object *body);

/* facts.c: the projection, its fold and the subscription's handlers. */
extern const projection_def_t onb_checklist_def;
extern const projection_def_t *const onb_projection_defs[1];
extern const replay_set_t onb_replay_set; /* group_def_t.replay */
extern const char *const onb_followed[];  /* the events topics it folds */
#define ONB_N_FACT_HANDLERS 8
extern const group_handler_t onb_fact_handlers[ONB_N_FACT_HANDLERS];
handler_result_t onb_facts_batch(rt_ctx_t *const *ctxs,
                                 const msgpack_object *const *bodies, size_t n);

/* The collection of the projection's base name ("facts", "workspaces")
 * that workspace reads now ("<base>_v<N>", from the pointer document, or
 * from snap when given), into coll; STORE_OK or why not. */
store_err_t onb_coll(store_t *store, const projection_snapshot_t *snap,
                     const char *base, slice_t workspace, char *coll,
                     size_t size);

/* The projection pointer, read once (*out; projection_snapshot_free), or
 * why not. */
store_err_t onb_pointer(store_t *store, projection_snapshot_t **out);

#endif
