/*
 * sync.h - the sync engine: provider-agnostic, a page at a time.
 *
 * A sync reads each stream of a connection's connector over a window of
 * days. Each page is one command (integrations.sync.page, keyed by the
 * sync id) that reads one page from the provider, publishes its records
 * (ids derived from the facts) and sends the command of the next page with
 * the new cursor (an id derived from sync and page). The runtime stores a
 * command's offset only once its outputs are acknowledged, and a command
 * redelivered after its operation record sends the same records again
 * under the same ids: a crash resumes at the last page and publishes
 * nothing twice under two ids. The connection's incremental mark
 * (synced_until) moves when the last page's handler ends.
 *
 * Windows (days, the account's time as providers report it): a first sync
 * reads the last initial_days; an incremental one (scheduled, manual)
 * reads from synced_until - lookback_days to today (late conversions); a
 * backfill reads N days as its own job (at most one incremental and one
 * backfill run at once per connection).
 *
 * Waits: a provider's rate limit beyond a few seconds, or a failure that
 * may pass, ends the page with a durable timer that sends it again later
 * (attempts bounded); credentials refused twice mark the connection
 * needs_reauth and fail the sync.
 */
#ifndef OMNIFY_IG_SYNC_H
#define OMNIFY_IG_SYNC_H

#include "conns.h"

#define IG_COLL_SYNCS "syncs"

handler_result_t ig_handle_sync_request(rt_ctx_t *ctx,
                                        const msgpack_object *body);
handler_result_t ig_handle_sync_tick(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ig_handle_sync_page(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ig_handle_syncs_get(rt_ctx_t *ctx, const msgpack_object *body);
handler_result_t ig_handle_syncs_list(rt_ctx_t *ctx,
                                      const msgpack_object *body);

/* Arm (or re-arm) the connection's schedule; cancel it. */
ig_err_t ig_sync_schedule(ig_state_t *st, const ig_conn_t *c, const env_t *env);
void ig_sync_unschedule(ig_state_t *st, const char *connection_id);

/* Mark a connected connection needs_reauth and publish
 * integrations.connection.invalidated (once: only the call that changed
 * it adds the event to events). */
void ig_sync_invalidate(ig_state_t *st, ig_conn_t *c, const char *reason,
                        ig_records_t *events);

/* Mark the connection's running syncs cancelled (disconnect). */
void ig_sync_cancel_all(ig_state_t *st, const char *connection_id);

/*
 * Produce a command of this group with another tenant than the message's
 * (the OAuth callback and webhooks run without one; what they cause runs
 * as the connection's tenant), and wait for the broker's ack. Its id
 * derives from seed, so a redelivered handler produces the same message,
 * which the operation log answers once.
 */
ig_err_t ig_send_as(ig_state_t *st, const char *type, const char *key,
                    const msgpack_sbuffer *body, const char *tenant,
                    const char *user, const char *roles, int64_t at_ms,
                    const char *seed);

#endif
