/*
 * omnify.c - the `omnify` tool: the monolith and the operator's commands.
 *
 *   omnify monolith [--only g1,g2] [--except g1,g2] [--SETTING=VALUE ...]
 *   omnify topics plan|apply
 *   omnify settings [--markdown]
 *   omnify openapi
 *   omnify asyncapi [--topic-prefix=P]
 *   omnify probe URL
 *   omnify dlq list|show|replay|purge GROUP
 *   omnify replay [verify|status|abort|gc] GROUP ...
 *   omnify integrations rekey [--dry-run]
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dlq.h"
#include "edge.h"
#include "log.h"
#include "registry.h"
#include "replay_tool.h"
#include "service.h"
#include "integrations.h"
#include "topics.h"

static void usage(FILE *out) {
        fprintf(out,
                "Usage: omnify COMMAND [options]\n\n"
                "Commands:\n"
                "  monolith [--only g1,g2] [--except g1,g2]\n"
                "                      the edge and the chosen groups as "
                "threads of one process\n"
                "  topics plan|apply   compare schemas/topics.json with "
                "the cluster; create or grow\n"
                "  dlq list|show|replay|purge GROUP [--type T] [--since "
                "UNIX_MS] [--id ID]\n"
                "                      look at, replay or purge a group's "
                "dead letters\n"
                "  replay [verify|status|abort|gc] GROUP [--from ...] "
                "[--projection P]\n"
                "         [--tenant T] [--rate N]  rebuild a group's "
                "projections from the log\n"
                "  settings [--markdown]  the settings table\n"
                "  openapi             print the OpenAPI document\n"
                "  asyncapi            print the AsyncAPI document of "
                "the bus (topics under\n"
                "                      OMNIFY_TOPIC_PREFIX)\n"
                "  probe URL           exit 0 when URL answers 2xx within "
                "3 s (container health checks)\n"
                "  integrations rekey [--dry-run]\n"
                "                      re-encrypt connections' "
                "credentials under the first key\n"
                "                      of OMNIFY_INTEGRATIONS_TOKEN_KEYS\n\n"
                "Groups:");
        for (size_t i = 0; i < registry_count; i++)
                fprintf(out, " %s", registry_groups[i]->name);
        fprintf(out, "\nEvery command takes --help, and settings as OMNIFY_* "
                     "variables or flags.\n");
}

/* ---------------------------------------------------------------------------
 * monolith
 * ------------------------------------------------------------------------ */

/* Mark the groups named in a comma list. Returns -1 naming a bad one. */
static int parse_groups(const char *list, bool *mark, char *errstr,
                        size_t errlen) {
        const char *p = list;
        while (*p) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t)(comma - p) : strlen(p);
                const group_def_t *g = registry_find(p, len);
                bool found = false;
                for (size_t i = 0; g && i < registry_count; i++) {
                        if (registry_groups[i] == g) {
                                mark[i] = true;
                                found = true;
                        }
                }
                if (!found) {
                        snprintf(errstr, errlen, "unknown group '%.*s'",
                                 (int)len, p);
                        return -1;
                }
                p += len + (comma ? 1 : 0);
        }
        return 0;
}

typedef struct group_thread {
        runtime_t *rt;
        pthread_t thread;
        bool started;
} group_thread_t;

static atomic_bool groups_stop;

static void *group_thread_main(void *arg) {
        group_thread_t *gt = arg;
        runtime_run(gt->rt, &groups_stop);
        return NULL;
}

static int cmd_monolith(int argc, char **argv) {
        bool only[16] = {false}, except[16] = {false}, use_only = false;
        char errstr[512] = "";
        char **rest = calloc((size_t)argc + 1, sizeof(char *));
        int n_rest = 0;
        unsigned scope = CONFIG_SCOPE_EDGE | CONFIG_SCOPE_GROUP;
        config_t cfg;
        schema_set_t *schemas = NULL;
        edge_t *edge = NULL;
        group_thread_t threads[16];
        size_t n_threads = 0;
        int status = 1;

        memset(threads, 0, sizeof(threads));
        rest[n_rest++] = "omnify monolith";
        for (int i = 1; i < argc; i++) {
                const char *arg = argv[i];
                bool *mark = NULL;
                const char *list = NULL;
                if (strncmp(arg, "--only", 6) == 0 &&
                    (arg[6] == '=' || !arg[6])) {
                        mark = only;
                        use_only = true;
                } else if (strncmp(arg, "--except", 8) == 0 &&
                           (arg[8] == '=' || !arg[8])) {
                        mark = except;
                }
                if (!mark) {
                        rest[n_rest++] = argv[i];
                        continue;
                }
                list = strchr(arg, '=') ? strchr(arg, '=') + 1
                                        : (i + 1 < argc ? argv[++i] : "");
                if (parse_groups(list, mark, errstr, sizeof(errstr))) {
                        fprintf(stderr, "omnify monolith: %s\n", errstr);
                        free(rest);
                        return 2;
                }
        }
        {
                bool use[16] = {false};
                const config_table_t *tables[CONFIG_MAX_TABLES];
                for (size_t i = 0; i < registry_count; i++) {
                        use[i] = (!use_only || only[i]) && !except[i];
                        if (use[i])
                                scope |= registry_groups[i]->config_scope;
                }
                registry_tables(use, tables, CONFIG_MAX_TABLES);
                config_load_tables_or_exit(&cfg, scope, tables,
                                           "omnify monolith", n_rest, rest,
                                           NULL);
        }
        free(rest);
        log_init((log_level_t)cfg.log_level, "omnify-monolith");
        log_set_group("edge");
        service_install_signals();

        schemas = service_load_schemas(errstr, sizeof(errstr));
        if (!schemas)
                goto out;
        /* Listen first (/health answers at once, /ready waits for the
         * groups), then connect and set the groups up. */
        edge = edge_new(&cfg, schemas, errstr, sizeof(errstr));
        if (!edge)
                goto out;
        edge_hold_ready(edge);
        if (edge_start(edge, errstr, sizeof(errstr)) ||
            edge_wait_started(edge, errstr, sizeof(errstr)))
                goto out;
        for (size_t i = 0; i < registry_count; i++) {
                if ((use_only && !only[i]) || except[i])
                        continue;
                threads[n_threads].rt =
                        runtime_new(registry_groups[i], &cfg, schemas,
                                    edge_bus(edge), edge_store(edge),
                                    RUNTIME_MONOLITH, errstr, sizeof(errstr));
                if (!threads[n_threads].rt)
                        goto out;
                edge_add_ops(edge, threads[n_threads].rt);
                n_threads++;
        }
        for (size_t i = 0; i < n_threads; i++) {
                if (pthread_create(&threads[i].thread, NULL, group_thread_main,
                                   &threads[i])) {
                        snprintf(errstr, sizeof(errstr),
                                 "cannot start a group thread");
                        goto out;
                }
                threads[i].started = true;
        }
        edge_release_ready(edge);
        log_info("omnify monolith %s started (pid %ld, %zu groups)",
                 OMNIFY_VERSION, (long)getpid(), n_threads);
        while (!atomic_load(&service_stop)) {
                struct timespec ts = {0, 100 * 1000000L};
                nanosleep(&ts, NULL);
        }
        log_info("stopping: draining the edge, then the groups");
        /* The groups keep running while the edge drains, so the requests in
         * flight get their replies. */
        edge_stop(edge);
        status = 0;
out:
        if (status && errstr[0])
                log_error("%s", errstr);
        atomic_store(&groups_stop, true);
        for (size_t i = 0; i < n_threads; i++)
                if (threads[i].started)
                        pthread_join(threads[i].thread, NULL);
        for (size_t i = 0; i < n_threads; i++)
                runtime_destroy(threads[i].rt);
        edge_destroy(edge);
        schema_set_destroy(schemas);
        config_deinit(&cfg);
        return status;
}

/* ---------------------------------------------------------------------------
 * small commands
 * ------------------------------------------------------------------------ */

static int cmd_settings(int argc, char **argv) {
        bool markdown = argc > 1 && strcmp(argv[1], "--markdown") == 0;
        const config_table_t *tables[CONFIG_MAX_TABLES];
        registry_tables(NULL, tables, CONFIG_MAX_TABLES);
        config_print_table(stdout, ~0u, tables, markdown);
        return 0;
}

static int cmd_openapi(void) {
        char errstr[512];
        schema_set_t *schemas = service_load_schemas(errstr, sizeof(errstr));
        char *doc;
        if (!schemas) {
                fprintf(stderr, "omnify openapi: %s\n", errstr);
                return 1;
        }
        doc = schema_openapi(schemas, OMNIFY_VERSION);
        if (doc)
                printf("%s\n", doc);
        free(doc);
        schema_set_destroy(schemas);
        return doc ? 0 : 1;
}

/* The AsyncAPI 3.0 document: every topic (under the configured prefix),
 * command with its reply, and event. */
static int cmd_asyncapi(int argc, char **argv) {
        char errstr[512];
        schema_set_t *schemas;
        config_t cfg;
        char *doc;

        config_load_or_exit(&cfg, CONFIG_SCOPE_TOOL, "omnify asyncapi", argc,
                            argv, NULL);
        schemas = service_load_schemas(errstr, sizeof(errstr));
        if (!schemas) {
                fprintf(stderr, "omnify asyncapi: %s\n", errstr);
                config_deinit(&cfg);
                return 1;
        }
        doc = schema_asyncapi(schemas, OMNIFY_VERSION, cfg.topic_prefix);
        if (doc)
                printf("%s\n", doc);
        free(doc);
        schema_set_destroy(schemas);
        config_deinit(&cfg);
        return doc ? 0 : 1;
}

/* Discard a probed body. */
static size_t probe_sink(char *ptr, size_t size, size_t n, void *arg) {
        (void)ptr;
        (void)arg;
        return size * n;
}

/* A health check for images without curl: GET url, 2xx or exit 1. */
static int cmd_probe(int argc, char **argv) {
        CURL *curl;
        long code = 0;
        CURLcode rc;
        if (argc != 2 || strncmp(argv[1], "http://", 7) != 0) {
                fprintf(stderr, "Usage: omnify probe http://HOST:PORT/PATH\n");
                return 2;
        }
        curl = curl_easy_init();
        if (!curl)
                return 1;
        curl_easy_setopt(curl, CURLOPT_URL, argv[1]);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 3000L);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http");
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, probe_sink);
        rc = curl_easy_perform(curl);
        if (rc == CURLE_OK)
                curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_cleanup(curl);
        if (rc != CURLE_OK) {
                fprintf(stderr, "omnify probe: %s\n", curl_easy_strerror(rc));
                return 1;
        }
        return code >= 200 && code < 300 ? 0 : 1;
}

int main(int argc, char **argv) {
        if (argc < 2) {
                usage(stderr);
                return 2;
        }
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
                usage(stdout);
                return 0;
        }
        if (strcmp(argv[1], "--version") == 0) {
                printf("omnify %s\n", OMNIFY_VERSION);
                return 0;
        }
        if (strcmp(argv[1], "monolith") == 0)
                return cmd_monolith(argc - 1, argv + 1);
        if (strcmp(argv[1], "topics") == 0)
                return topics_main(argc - 1, argv + 1);
        if (strcmp(argv[1], "settings") == 0)
                return cmd_settings(argc - 1, argv + 1);
        if (strcmp(argv[1], "openapi") == 0)
                return cmd_openapi();
        if (strcmp(argv[1], "asyncapi") == 0)
                return cmd_asyncapi(argc - 1, argv + 1);
        if (strcmp(argv[1], "dlq") == 0)
                return dlq_main(argc - 1, argv + 1);
        if (strcmp(argv[1], "replay") == 0)
                return replay_main(argc - 1, argv + 1);
        if (strcmp(argv[1], "probe") == 0)
                return cmd_probe(argc - 1, argv + 1);
        if (strcmp(argv[1], "integrations") == 0)
                return integrations_main(argc - 1, argv + 1);
        fprintf(stderr, "omnify: unknown command '%s'\n\n", argv[1]);
        usage(stderr);
        return 2;
}
