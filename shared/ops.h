/*
 * ops.h - the operations server of a group process: /health, /ready and
 * /metrics on the group's ops port. In the monolith the edge serves the same
 * answers under /ops/<group>/ instead (runtime_ops_answer).
 */
#ifndef OMNIFY_OPS_H
#define OMNIFY_OPS_H

#include <stddef.h>

#include "runtime.h"

typedef struct ops_server ops_server_t;

/* Listen on bind:port (its own thread). NULL and errstr on failure. */
ops_server_t *ops_server_new(const char *bind, int port, runtime_t *rt,
                             char *errstr, size_t errlen);

/* Stop listening and free. NULL ok. */
void ops_server_destroy(ops_server_t *ops);

/* Parse an IPv4/IPv6 literal bind address into addr for MHD. 0 or -1. */
struct sockaddr_storage;
int ops_parse_bind(const char *bind, int port, struct sockaddr_storage *addr);

#endif
