/*
 * runtime.h - the service runtime: a consumer group is a table.
 *
 * A group is a static const group_def_t: its name, ops port, a table of
 * handlers (message type -> function) and init/shutdown hooks. The runtime
 * owns everything else: the poll loop, envelope decoding, schema validation,
 * dispatch, retries, the dead-letter queue, the operation log (one record per
 * handled command, which also makes redelivery harmless), replies, events,
 * offset commits and shutdown. The same group_def_t runs as a thread of the
 * monolith or as its own process, unchanged.
 *
 * Handling one command:
 *   decode headers -> unpack body -> schema check -> operation log lookup
 *   (already handled: resend the stored reply) -> handler -> events ->
 *   operation record -> reply -> offset stored.
 * Undecodable, unknown, wrong-version and invalid messages go to
 * <group>.dlq and, when they carry a reply-to, get an error reply so no client
 * waits for nothing.
 */
#ifndef OMNIFY_RUNTIME_H
#define OMNIFY_RUNTIME_H

#include <msgpack.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "bus.h"
#include "config.h"
#include "envelope.h"
#include "schema.h"
#include "store.h"

typedef struct runtime runtime_t;
typedef struct rt_ctx rt_ctx_t;

typedef enum handler_result {
        HANDLER_OK,        /* done; the reply set with rt_reply* stands */
        HANDLER_TRANSIENT, /* try again later (store or provider down) */
        HANDLER_PERMANENT, /* will never succeed: reply stands, message to DLQ
                            */
} handler_result_t;

/* A handler: body is the validated msgpack map of the command. Runs on the
 * group's consumer thread; may block on the store or outbound HTTP. */
typedef handler_result_t (*handler_fn)(rt_ctx_t *ctx,
                                       const msgpack_object *body);

typedef struct group_handler {
        const char *type;
        handler_fn fn;
} group_handler_t;

typedef struct group_def {
        const char *name;
        int ops_port;
        unsigned config_scope; /* extra CONFIG_SCOPE_* rows the group reads */
        const group_handler_t *handlers;
        size_t n_handlers;
        /* Create indexes and private state (*state). Retried while it
         * returns HANDLER_TRANSIENT; HANDLER_PERMANENT stops the group. May
         * be NULL. */
        handler_result_t (*init)(runtime_t *rt, void **state, char *errstr,
                                 size_t errlen);
        /* Free the private state. May be NULL. */
        void (*shutdown)(void *state);
} group_def_t;

typedef enum runtime_mode {
        RUNTIME_STANDALONE,
        RUNTIME_MONOLITH,
} runtime_mode_t;

/*
 * A runtime for def. bus and store are shared, not owned (the monolith gives
 * every group the same ones). Checks that the group's topics exist. NULL and
 * errstr on failure.
 */
runtime_t *runtime_new(const group_def_t *def, const config_t *cfg,
                       const schema_set_t *schemas, bus_t *bus, store_t *store,
                       runtime_mode_t mode, char *errstr, size_t errlen);

/* Run the consumer loop on the calling thread until *stop becomes true; then
 * finish the message in hand, commit and leave the group. Returns 0, or -1
 * when init failed for good. */
int runtime_run(runtime_t *rt, const atomic_bool *stop);

/* Free. Call after runtime_run returned. NULL ok. */
void runtime_destroy(runtime_t *rt);

const group_def_t *runtime_def(const runtime_t *rt);
const config_t *runtime_config(const runtime_t *rt);
store_t *runtime_store(const runtime_t *rt);

/*
 * Answer an operations probe: what is "health", "ready" or "metrics".
 * Fills status, a new body (caller frees) and its content type.
 */
void runtime_ops_answer(runtime_t *rt, const char *what, int *status,
                        char **body, size_t *len, const char **content_type);

/* ---------------------------------------------------------------------------
 * What handlers may use
 * ------------------------------------------------------------------------ */

/* The command's envelope (tenant, user, roles, ids...). */
const env_t *rt_env(const rt_ctx_t *ctx);
runtime_t *rt_runtime(const rt_ctx_t *ctx);
/* The group's private state from init. */
void *rt_state(const rt_ctx_t *ctx);

/* Start the reply with an HTTP-like status; pack exactly one map into the
 * returned packer. Replaces any earlier reply. */
msgpack_packer *rt_reply(rt_ctx_t *ctx, int status);

/* An RFC 9457 problem as the reply: {type, title, status, detail}. */
void rt_reply_problem(rt_ctx_t *ctx, int status, const char *title,
                      const char *detail);

/* Publish an event to <group>.events after the handler succeeds. body is one
 * msgpack map (copied). Events of a failed handler are dropped. */
void rt_emit(rt_ctx_t *ctx, const char *type, slice_t key,
             const msgpack_sbuffer *body);

/* The generic "<group>.status" handler: group, instance, pid, host, mode,
 * uptime. Every group lists it in its table. */
handler_result_t runtime_handle_status(rt_ctx_t *ctx,
                                       const msgpack_object *body);

#endif
