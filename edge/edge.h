/*
 * edge.h - the HTTP edge: JSON over HTTP in, msgpack over Kafka out.
 *
 * The edge routes from the schemas, checks bearer tokens and bodies, puts one
 * command on its group's topic, and answers from the reply, which comes back
 * on the one partition of edge.replies this replica owns. It holds no
 * business logic. HTTP threads never block: a request waiting on Kafka or on
 * the operation log is suspended and resumed by the thread that completes it.
 *
 * Life: edge_new -> edge_start -> ... -> edge_stop -> edge_destroy.
 * edge_start listens at once and connects in the background (Kafka, the
 * store, the topics check): until then /health answers 200, /ready and the
 * API 503. edge_stop and edge_destroy belong to the thread that started it.
 */
#ifndef OMNIFY_EDGE_H
#define OMNIFY_EDGE_H

#include <stdbool.h>
#include <stddef.h>

#include "bus.h"
#include "config.h"
#include "runtime.h"
#include "schema.h"
#include "store.h"

typedef struct edge edge_t;

/*
 * A new edge from the settings and the schemas: no network yet. NULL and
 * errstr when the schemas ask what the edge cannot do.
 */
edge_t *edge_new(const config_t *cfg, const schema_set_t *schemas, char *errstr,
                 size_t errlen);

/*
 * Listen on the configured address and port, then connect in the
 * background: the producer, the store, the topics check, the reply
 * listener and the follower. 0, or -1 and errstr (cannot listen).
 */
int edge_start(edge_t *edge, char *errstr, size_t errlen);

/* Block until the background start is done: 0, or -1 and errstr when it
 * failed (Kafka unreachable, a topic missing, a setting the cluster
 * refutes). Not for HTTP threads. */
int edge_wait_started(edge_t *edge, char *errstr, size_t errlen);

/* The background start failed for good (errstr says why; an error naming a
 * setting starts with its variable): the process should exit. */
bool edge_failed(edge_t *edge, char *errstr, size_t errlen);

/* The edge's producer and store, which a monolith shares with its groups;
 * NULL until the edge has started (edge_wait_started). */
bus_t *edge_bus(edge_t *edge);
store_t *edge_store(edge_t *edge);

/* Monolith: serve rt's /health, /ready and /metrics under /ops/<group>/.
 * One thread adds them, before or after edge_start. */
void edge_add_ops(edge_t *edge, runtime_t *rt);

/* Monolith: /ready answers 503 from hold until release (the groups are
 * being set up). Holds count. */
void edge_hold_ready(edge_t *edge);
void edge_release_ready(edge_t *edge);

/*
 * Stop accepting connections, give requests in flight up to the shutdown
 * timeout to complete, answer the rest 503, stop the HTTP threads.
 */
void edge_stop(edge_t *edge);

/* Free everything (flushes the producer). NULL ok. */
void edge_destroy(edge_t *edge);

/* The standalone edge process: settings, edge, wait for a signal. */
int edge_main(int argc, char **argv);

/* The same for `program`, with extra schema sources beside the embedded
 * ones (a test fixture's routes). */
int edge_run(const char *program, int argc, char **argv,
             const schema_source_t *extra, size_t n_extra);

#endif
