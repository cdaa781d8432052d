/*
 * edge.h - the HTTP edge: JSON over HTTP in, msgpack over Kafka out.
 *
 * The edge routes from the schemas, checks bearer tokens and bodies, puts one
 * command on its group's topic, and answers from the reply, which comes back
 * on the one partition of edge.replies this replica owns. It holds no
 * business logic. HTTP threads never block: a request waiting on Kafka or on
 * the operation log is suspended and resumed by the thread that completes it.
 *
 * Life: edge_new -> (edge_add_ops) -> edge_start -> ... -> edge_stop ->
 * edge_destroy. edge_stop and edge_destroy belong to the thread that started
 * it.
 */
#ifndef OMNIFY_EDGE_H
#define OMNIFY_EDGE_H

#include <stddef.h>

#include "bus.h"
#include "config.h"
#include "runtime.h"
#include "schema.h"
#include "store.h"

typedef struct edge edge_t;

/*
 * Connect the producer, the store and the reply listener, and check the
 * topics. Does not listen yet. NULL and errstr on failure.
 */
edge_t *edge_new(const config_t *cfg, const schema_set_t *schemas, char *errstr,
                 size_t errlen);

/* The edge's producer and store, which a monolith shares with its groups. */
bus_t *edge_bus(edge_t *edge);
store_t *edge_store(edge_t *edge);

/* Monolith: serve rt's /health, /ready and /metrics under /ops/<group>/.
 * Call before edge_start. */
void edge_add_ops(edge_t *edge, runtime_t *rt);

/* Listen on the configured address and port. 0, or -1 and errstr. */
int edge_start(edge_t *edge, char *errstr, size_t errlen);

/*
 * Stop accepting connections, give requests in flight up to the shutdown
 * timeout to complete, answer the rest 503, stop the HTTP threads.
 */
void edge_stop(edge_t *edge);

/* Free everything (flushes the producer). NULL ok. */
void edge_destroy(edge_t *edge);

/* The standalone edge process: settings, edge, wait for a signal. */
int edge_main(int argc, char **argv);

#endif
