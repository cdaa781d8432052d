/*
 * runtime.h - the service runtime: a consumer group is a table.
 *
 * A group is a static const group_def_t: its name, ops port, a table of
 * command handlers (message type -> function), the event subscriptions it
 * follows (other groups' event types -> functions, under a consumer group
 * of their own), its indexes, and init/shutdown hooks. The runtime owns
 * everything else: poll loops, envelope decoding, schema validation,
 * dispatch, concurrency with order kept per key, retries, the dead-letter
 * queue, the operation log (one record per state-changing command, which
 * also makes redelivery harmless), replies, events, offset commits and
 * shutdown. The same group_def_t runs as a thread of the monolith or as its
 * own process, unchanged.
 *
 * Handling a poll of commands (up to RT_BATCH_MAX messages):
 *   decode headers -> unpack body -> schema check -> one operation-log
 *   lookup for the whole poll ($in; read-only commands skip it) -> handlers
 *   (on worker threads keyed by message key, or inline) -> one bulk write of
 *   the operation records -> events and replies -> offsets stored once the
 *   broker acknowledged every output of a message and of every message
 *   before it on its partition.
 * Undecodable, unknown, wrong-version and invalid messages go to
 * <group>.dlq and, when they carry a reply-to, get an error reply so no
 * client waits for nothing.
 *
 * Events of other groups (subscriptions) go the same way without replies
 * and without the operation log: a handler of events must be idempotent by
 * itself (upserts keyed by the fact, not increments), and the events it
 * emits get ids derived from the event it handled, so a redelivery emits
 * the same ids again.
 *
 * Threads: runtime_run runs the command loop on the calling thread and one
 * thread per subscription; each loop may have worker threads (concurrency).
 * A handler runs on exactly one of these threads at a time; two handlers of
 * one group may run at once (on different keys), so group state they share
 * needs a lock, and store calls are the usual way to share.
 */
#ifndef OMNIFY_RUNTIME_H
#define OMNIFY_RUNTIME_H

#include <msgpack.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "bus.h"
#include "config.h"
#include "envelope.h"
#include "httpc.h"
#include "mail.h"
#include "outbox.h"
#include "schema.h"
#include "store.h"
#include "timer.h"

typedef struct runtime runtime_t;
typedef struct rt_ctx rt_ctx_t;
struct replay_set; /* replay.h */

typedef enum handler_result {
        HANDLER_OK,        /* done; the reply set with rt_reply* stands */
        HANDLER_TRANSIENT, /* try again later (store or provider down) */
        HANDLER_PERMANENT, /* will never succeed: reply stands, message to DLQ
                            */
} handler_result_t;

/* A handler: body is the validated msgpack map of the message. May block on
 * the store or outbound HTTP (on its own worker when the loop has
 * concurrency > 1). */
typedef handler_result_t (*handler_fn)(rt_ctx_t *ctx,
                                       const msgpack_object *body);

/*
 * A batch handler: every message of one poll that this entry handles, in
 * the order they were read (at most RT_BATCH_MAX), for bulk writes. One
 * ctx per message (rt_reply, rt_emit and rt_fail act on that message).
 * HANDLER_OK: every message done except those marked with rt_fail;
 * HANDLER_TRANSIENT: the whole batch is tried again; HANDLER_PERMANENT:
 * every message of it goes to the DLQ. Runs on the loop's own thread, after
 * the work queued before it finished, so order per key holds.
 */
typedef handler_result_t (*batch_fn)(rt_ctx_t *const *ctxs,
                                     const msgpack_object *const *bodies,
                                     size_t n);

#define RT_BATCH_MAX 500

typedef struct group_handler {
        /* Commands: the exact type. Subscriptions: an exact event type or a
         * prefix ending in ".*" ("integrations.ad_metrics.*"). */
        const char *type;
        handler_fn fn;  /* one message at a time ... */
        batch_fn batch; /* ... or every message of a poll (one of the two) */
} group_handler_t;

/*
 * Events of other groups that a group follows, under its own consumer group
 * (<prefix><group>.<name>), so it can be replayed alone. Event types the
 * table does not list are skipped (their offsets stored).
 */
typedef struct group_subscription {
        const char *name;          /* e.g. "projections" */
        const char *const *topics; /* unprefixed, NULL-terminated:
                                      {"integrations.events", NULL} */
        const group_handler_t *handlers;
        size_t n_handlers;
        int concurrency; /* worker threads, order kept per key; 0 or 1: the
                            loop's own thread */
} group_subscription_t;

typedef struct group_def {
        const char *name;
        int ops_port;
        unsigned config_scope; /* extra CONFIG_SCOPE_* rows the group reads */
        /* The group's own settings tables (and those of parts it uses, e.g.
         * the mail sender), NULL-terminated; may be NULL. Loaded and
         * validated at start-up with the shared ones. */
        const config_table_t *const *settings;
        const group_handler_t *handlers;
        size_t n_handlers;
        const group_subscription_t *subscriptions;
        size_t n_subscriptions;
        /* Replies to commands this group sent with rt_request arrive on its
         * own commands topic as "<type>.reply" with the status in
         * rt_env()->status; they go here (no schema, no operation log: the
         * handler matches rt_env()->correlation_id and must be idempotent).
         * May be NULL. */
        handler_fn on_reply;
        int concurrency; /* command workers; 0 or 1: the loop's own thread */
        /* The group sets durable timers and schedules: the runtime runs a
         * timer service on its database (runtime_timers, rt_timers) whose
         * firings come back as the group's own commands. */
        bool timers;
        /* Created in the group's database at start-up (up to the {NULL}
         * entry); may be NULL. */
        const store_index_t *indexes;
        /* Create private state (*state). Retried while it returns
         * HANDLER_TRANSIENT; HANDLER_PERMANENT stops the group. May be
         * NULL. */
        handler_result_t (*init)(runtime_t *rt, void **state, char *errstr,
                                 size_t errlen);
        /* Free the private state. May be NULL. */
        void (*shutdown)(void *state);
        /* The projections `omnify replay <group>` can rebuild (replay.h).
         * May be NULL. */
        const struct replay_set *replay;
} group_def_t;

typedef enum runtime_mode {
        RUNTIME_STANDALONE,
        RUNTIME_MONOLITH,
} runtime_mode_t;

/*
 * A runtime for def. bus and store are shared, not owned (the monolith gives
 * every group the same ones). Checks that the group's topics and its
 * subscriptions' topics exist. NULL and errstr on failure.
 */
runtime_t *runtime_new(const group_def_t *def, const config_t *cfg,
                       const schema_set_t *schemas, bus_t *bus, store_t *store,
                       runtime_mode_t mode, char *errstr, size_t errlen);

/* Run the loops (commands on the calling thread, subscriptions on threads
 * of their own) until *stop becomes true; then finish the messages in hand,
 * commit and leave the groups. Returns 0, or -1 when init failed for
 * good. */
int runtime_run(runtime_t *rt, const atomic_bool *stop);

/* Free. Call after runtime_run returned. NULL ok. */
void runtime_destroy(runtime_t *rt);

const group_def_t *runtime_def(const runtime_t *rt);
const config_t *runtime_config(const runtime_t *rt);
store_t *runtime_store(const runtime_t *rt);
bus_t *runtime_bus(const runtime_t *rt);
const schema_set_t *runtime_schemas(const runtime_t *rt);
/* The group's database name as store calls take it (the group's name; the
 * store adds the configured prefix). */
const char *runtime_db(const runtime_t *rt);
/* The values of one of the group's settings tables (its struct). */
const void *runtime_settings(const runtime_t *rt, const config_table_t *table);

/* The process's outbound HTTP client (httpc.h), shared by every group of
 * the process, made at the first call from the OMNIFY_HTTPC_* settings.
 * NULL only when it cannot start (logged). Any thread. */
httpc_t *runtime_http(runtime_t *rt);

/* The group's timer service (timer.h) when def->timers, else NULL. Made
 * with the runtime (so init may set timers); it fires once runtime_run
 * starts (never in the harness, which has no bus). */
timer_service_t *runtime_timers(const runtime_t *rt);

/*
 * An outbox of the group (outbox.h). opts names its collection (and index
 * prefix), its kinds (which must outlive it) and whether it holds; the
 * runtime fills the rest: config, store, bus, runtime_http, group,
 * database, and the OMNIFY_OUTBOX_* settings where opts leaves them 0.
 * Started now (in the harness: made but not started); the runtime stops it
 * at shutdown before the group's shutdown hook, so the state its kinds use
 * is still there. Call from init. NULL and errstr on failure.
 */
outbox_t *runtime_outbox_new(runtime_t *rt, const outbox_opts_t *opts,
                             char *errstr, size_t errlen);

/*
 * A group's mail outbox (mail.h): the sender made from the shared
 * OMNIFY_MAIL_* settings (mail_settings must be one of the group's settings
 * tables) and an outbox of the group's own through runtime_outbox_new
 * (collection "mail_outbox", indexes "<index_prefix>_due" and
 * "<index_prefix>_expiry"), holding the mails while OMNIFY_MAIL_API_KEY is
 * empty (said in the log). Call from init; free with runtime_mailbox_free
 * from the shutdown hook (the runtime stopped the outbox by then). NULL and
 * errstr on failure.
 */
typedef struct runtime_mailbox {
        mail_t *mail;
        outbox_t *outbox;
        outbox_kind_t kinds[1];
} runtime_mailbox_t;
runtime_mailbox_t *runtime_mailbox_new(runtime_t *rt, const char *index_prefix,
                                       char *errstr, size_t errlen);
void runtime_mailbox_free(runtime_mailbox_t *m);

/*
 * Answer an operations probe: what is "health", "ready" or "metrics".
 * Fills status, a new body (caller frees) and its content type.
 */
void runtime_ops_answer(runtime_t *rt, const char *what, int *status,
                        char **body, size_t *len, const char **content_type);

/* ---------------------------------------------------------------------------
 * What handlers may use (on the handler's own thread, during the call)
 * ------------------------------------------------------------------------ */

/* The message's envelope (tenant, user, roles, ids...). */
const env_t *rt_env(const rt_ctx_t *ctx);
runtime_t *rt_runtime(const rt_ctx_t *ctx);
/* The group's private state from init. */
void *rt_state(const rt_ctx_t *ctx);
/* The store, and the group's own database in it (see runtime_db): a group
 * reaches only its own database. */
store_t *rt_store(const rt_ctx_t *ctx);
const char *rt_db(const rt_ctx_t *ctx);
/* The values of one of the group's settings tables (runtime_settings). */
const void *rt_settings(const rt_ctx_t *ctx, const config_table_t *table);
/* runtime_http, runtime_timers of the handler's group. */
httpc_t *rt_http(const rt_ctx_t *ctx);
timer_service_t *rt_timers(const rt_ctx_t *ctx);

/* Who sent the command, as the edge checked it (headers only the edge
 * sets). Empty slices when absent (Kafka-only commands, events). */
typedef struct rt_caller {
        slice_t tenant, user, roles;
        schema_role_t role; /* the strongest role named in roles */
} rt_caller_t;

void rt_caller(const rt_ctx_t *ctx, rt_caller_t *out);

/* True when the caller has a tenant and holds at least `least`; otherwise
 * the reply becomes a 403 problem (401 without a tenant) and false is
 * returned: the handler returns HANDLER_OK at once. */
bool rt_require_role(rt_ctx_t *ctx, schema_role_t least);

/* The message is being replayed (analytics' replay): side effects beyond
 * the group's own projections (mails, insights, commands) must not happen.
 */
bool rt_replaying(const rt_ctx_t *ctx);

/* Start the reply with an HTTP-like status; pack exactly one map into the
 * returned packer. Replaces any earlier reply. */
msgpack_packer *rt_reply(rt_ctx_t *ctx, int status);

/* Packs one document of a list reply as one item. */
typedef void (*rt_pack_doc_fn)(msgpack_packer *pk, const bson_t *doc,
                               void *arg);

/* Reply 200 {key: [items]}: the documents of coll (in the group's database)
 * that filter finds, in the order opts says (opts holds no "limit"), at most
 * max, each packed by pack with arg. A store error is returned with nothing
 * replied (errstr says why), for the group to answer in its own way. */
store_err_t rt_reply_list(rt_ctx_t *ctx, const char *key, const char *coll,
                          const bson_t *filter, const bson_t *opts,
                          uint32_t max, rt_pack_doc_fn pack, void *arg,
                          char *errstr, size_t errlen);

/* A reply of raw bytes with a content type (text/csv, ...): the edge
 * answers them as they are. Copies bytes. */
void rt_reply_bytes(rt_ctx_t *ctx, int status, const char *content_type,
                    const void *bytes, size_t len);

/* An RFC 9457 problem as the reply: {type, title, status, detail}. */
void rt_reply_problem(rt_ctx_t *ctx, int status, const char *title,
                      const char *detail);

/* Batch handlers: this message failed for good (reason for the DLQ); the
 * others of the batch are done. */
void rt_fail(rt_ctx_t *ctx, const char *why);

/*
 * Publish an event to <group>.events after the handler succeeds. body is one
 * msgpack map (copied). Events of a failed handler are dropped. Returns 0,
 * or -1 when the event breaks its declaration in schemas/ (a bug: logged;
 * the handler should give up with HANDLER_PERMANENT).
 */
int rt_emit(rt_ctx_t *ctx, const char *type, slice_t key,
            const msgpack_sbuffer *body);

/* rt_emit with an id the caller chose (canonical UUID text, e.g. from
 * msgid_derive over the fact it states): publishing the same fact again
 * (a re-sync, a redelivered handler) publishes the same id, which
 * followers drop. Returns as rt_emit; -1 too when id is not a UUID. */
int rt_emit_id(rt_ctx_t *ctx, const char *type, slice_t key,
               const msgpack_sbuffer *body, const char *id);

/* Send a command to a group (its type names it: "<group>.<name>") after
 * the handler succeeds, with this message's tenant, user and roles, and no
 * reply. Recorded like events, so a redelivery sends it again with the
 * same id. */
void rt_send(rt_ctx_t *ctx, const char *type, slice_t key,
             const msgpack_sbuffer *body);

/* Like rt_send, with a reply: it comes back to this group's on_reply with
 * correlation id = the id written to id_out (MSGID_TEXT_SIZE bytes), on the
 * partition of key in this group's own commands topic, so it arrives in
 * order with the key's other messages. */
void rt_request(rt_ctx_t *ctx, const char *type, slice_t key,
                const msgpack_sbuffer *body, char *id_out);

/*
 * The same three with options of one output: a message id of the caller's
 * making (derived, e.g. with msgid_derive, from what the output stands for,
 * so that a handler run again after a crash sends the same message again and
 * the receiver's operation log answers the second), and, for commands, on
 * whose behalf it goes (a durable workflow acts for the user who started it,
 * whatever message it is handling now: a reply, a timer). Both are kept in
 * the operation record and used again when it is replayed. Empty fields:
 * as rt_emit, rt_send and rt_request.
 */
typedef struct rt_out_opts {
        const char *id;              /* MSGID text, or NULL: a new id */
        slice_t tenant, user, roles; /* empty: the handled message's */
} rt_out_opts_t;

int rt_emit_with(rt_ctx_t *ctx, const char *type, slice_t key,
                 const msgpack_sbuffer *body, const rt_out_opts_t *opts);
void rt_send_with(rt_ctx_t *ctx, const char *type, slice_t key,
                  const msgpack_sbuffer *body, const rt_out_opts_t *opts);
void rt_request_with(rt_ctx_t *ctx, const char *type, slice_t key,
                     const msgpack_sbuffer *body, const rt_out_opts_t *opts,
                     char *id_out);

/* The generic "<group>.status" handler: group, instance, pid, host, mode,
 * uptime. Every group lists it in its table. */
handler_result_t runtime_handle_status(rt_ctx_t *ctx,
                                       const msgpack_object *body);

#endif
