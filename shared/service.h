/*
 * service.h - process start-up shared by every binary: signals, the embedded
 * schemas, and the whole life of a standalone group process.
 */
#ifndef OMNIFY_SERVICE_H
#define OMNIFY_SERVICE_H

#include <stdatomic.h>

#include "runtime.h"
#include "schema.h"

/* Set by SIGTERM or SIGINT; every loop watches it. */
extern atomic_bool service_stop;

/* Route SIGTERM and SIGINT to service_stop and ignore SIGPIPE. */
void service_install_signals(void);

/* Load the schemas compiled into the binary. NULL and errstr on failure. */
schema_set_t *service_load_schemas(char *errstr, size_t errlen);

/*
 * The whole life of a group's own process: settings (exit 2 when invalid),
 * bus, store, runtime, ops server on the group's port, the loop until a
 * signal, then an orderly stop. Returns the exit status.
 */
int service_main(const group_def_t *def, int argc, char **argv);

#endif
