/*
 * harness.h - a group's handlers against the real store, without the broker.
 *
 * Domain logic gets fast tests: a test makes a harness for a group_def_t,
 * sends it commands and events as the edge or another group would (JSON
 * bodies, a caller), and reads what the group would have sent: the reply,
 * events, commands to other groups, dead letters. Everything else is the
 * runtime's real path: schema checks, the operation log (so a repeated
 * message id is answered from it), retries, the group's indexes and init,
 * and the store. Nothing is produced to Kafka.
 *
 *   harness_t *h = harness_new(&group_analytics, &cfg, NULL, err, 256);
 *   harness_caller_t ann = {"t1", "u1", "admin"};
 *   int status = harness_command(h, "analytics.dashboard", "{...}", &ann);
 *   const harness_msg_t *reply = harness_reply(h);      // status, JSON body
 *   size_t n = harness_count(h, "analytics.insight.");  // outputs by type
 *
 * One thread at a time per harness. Use a database prefix of the test's
 * own (cfg->mongo_db_prefix) so runs never share data.
 */
#ifndef OMNIFY_HARNESS_H
#define OMNIFY_HARNESS_H

#include <stddef.h>

#include "config.h"
#include "runtime.h"

typedef struct harness harness_t;

/* Who sends a command (NULL fields: absent). roles: "admin" etc. */
typedef struct harness_caller {
        const char *tenant, *user, *roles;
} harness_caller_t;

/* One captured output. */
typedef struct harness_msg {
        char *topic; /* the full topic name it would have gone to */
        char *id;
        char *type;
        char *tenant;
        int status;         /* replies; 0 otherwise */
        char *content_type; /* replies of raw bytes; NULL: msgpack */
        char *json;         /* the body as JSON (raw bytes when
                               content_type) */
        size_t len;
} harness_msg_t;

/* A harness: the store from cfg, the schemas (NULL: the embedded ones;
 * else borrowed, they must outlive the harness), the group's indexes and
 * init. NULL and errstr on failure (store unreachable, init failed). */
harness_t *harness_new(const group_def_t *def, const config_t *cfg,
                       const schema_set_t *schemas, char *errstr,
                       size_t errlen);

/* Stop the group (its shutdown hook) and free. NULL ok. */
void harness_destroy(harness_t *h);

/* The group's runtime (for runtime_db, runtime_store...). */
runtime_t *harness_runtime(harness_t *h);

/*
 * Run one command of type with a JSON body (NULL: {}) from caller (may be
 * NULL), as the edge sends it: a new message id unless id is given (the same
 * id twice is a redelivery). Returns the reply status, or -1 when the body
 * is not JSON. The outputs of earlier calls are cleared first.
 */
int harness_command_id(harness_t *h, const char *id, const char *type,
                       const char *json, const harness_caller_t *caller);
int harness_command(harness_t *h, const char *type, const char *json,
                    const harness_caller_t *caller);

/* Commands made from now on were sent age_ms ago (0: just now), as a command
 * that waited in its topic while its group was down. */
void harness_set_command_age(harness_t *h, int64_t age_ms);

/* Hand an event of another group to the subscription that follows it
 * (tenant may be NULL). Returns 0, or -1 when no subscription follows the
 * type or the body is not JSON. Outputs are cleared first. */
int harness_event(harness_t *h, const char *type, const char *json,
                  const char *tenant);

/* The last call's reply, or NULL (events get none). */
const harness_msg_t *harness_reply(const harness_t *h);

/* The last call's outputs other than the reply, in order. */
size_t harness_outputs(const harness_t *h);
const harness_msg_t *harness_output(const harness_t *h, size_t i);

/* How many outputs have a type starting with prefix. */
size_t harness_count(const harness_t *h, const char *prefix);

#endif
