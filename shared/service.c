/*
 * service.c - start-up and shutdown of group processes (see service.h).
 */
#include "service.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "log.h"
#include "ops.h"
#include "schemas_embedded.h"
#include "store.h"

atomic_bool service_stop;

static void service__on_signal(int sig) {
        (void)sig;
        atomic_store(&service_stop, true);
}

void service_install_signals(void) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = service__on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
}

schema_set_t *service_load_schemas(char *errstr, size_t errlen) {
        schema_set_t *set = NULL;
        if (schema_set_load(&set, schemas_embedded, schemas_embedded_count,
                            errstr, errlen) != SCHEMA_OK)
                return NULL;
        return set;
}

int service_main(const group_def_t *def, int argc, char **argv) {
        config_t cfg;
        char errstr[512] = "", program[64];
        schema_set_t *schemas = NULL;
        bus_t *bus = NULL;
        store_t *store = NULL;
        runtime_t *rt = NULL;
        ops_server_t *ops = NULL;
        int status = 1, port;

        /* First: a SIGTERM during start-up (a scaler that changed its mind)
         * stops the process cleanly, never by the default action. */
        service_install_signals();
        snprintf(program, sizeof(program), "omnify-%s", def->name);
        config_load_tables_or_exit(&cfg, CONFIG_SCOPE_GROUP | def->config_scope,
                                   def->settings, program, argc, argv, NULL);
        log_init((log_level_t)cfg.log_level, program);
        log_set_group(def->name);

        schemas = service_load_schemas(errstr, sizeof(errstr));
        if (!schemas)
                goto out;
        bus = bus_new(&cfg, program, errstr, sizeof(errstr));
        if (!bus)
                goto out;
        store = store_new(&cfg, program, errstr, sizeof(errstr));
        if (!store)
                goto out;
        rt = runtime_new(def, &cfg, schemas, bus, store, RUNTIME_STANDALONE,
                         errstr, sizeof(errstr));
        if (!rt)
                goto out;
        port = cfg.ops_port ? cfg.ops_port : def->ops_port;
        ops = ops_server_new(cfg.ops_bind, port, rt, errstr, sizeof(errstr));
        if (!ops)
                goto out;
        log_info("%s %s started (pid %ld, ops %s:%d)", program, OMNIFY_VERSION,
                 (long)getpid(), cfg.ops_bind, port);
        status = runtime_run(rt, &service_stop) == 0 ? 0 : 1;

out:
        if (status && errstr[0])
                log_error("%s", errstr);
        ops_server_destroy(ops);
        runtime_destroy(rt);
        store_destroy(store);
        bus_destroy(bus);
        schema_set_destroy(schemas);
        log_info("%s stopped", program);
        config_deinit(&cfg);
        return status;
}
