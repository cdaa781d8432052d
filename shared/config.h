/*
 * config.h - the settings table.
 *
 * Every setting of every binary is one row of one table (config.c): name,
 * environment variable, type, range, default, doc line, and which binaries
 * read it. It is validated once at start-up; `--help` is generated from it.
 * Environment variables are read here and nowhere else. A flag
 * `--<name>=VALUE` (or `--<name> VALUE`) overrides the variable, where <name>
 * is the variable without OMNIFY_, lowercased, '_' turned to '-'.
 */
#ifndef OMNIFY_CONFIG_H
#define OMNIFY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Which binaries read a row of the shared table. A binary validates the
 * rows its scope intersects, so an edge does not demand an auth-only
 * secret's siblings. */
enum {
        CONFIG_SCOPE_COMMON = 1u << 0, /* every binary */
        CONFIG_SCOPE_EDGE = 1u << 1,   /* the HTTP edge */
        CONFIG_SCOPE_GROUP = 1u << 2,  /* any consumer group */
        CONFIG_SCOPE_AUTH = 1u << 3,   /* binaries that sign tokens (auth) */
        CONFIG_SCOPE_TOOL = 1u << 4,   /* omnify tool subcommands */
};

/* ---------------------------------------------------------------------------
 * Tables of settings
 *
 * The shared table (config.c) fills config_t. A group declares its own
 * settings as tables of rows filling a struct of its own, and lists them in
 * its group_def_t (settings); a reusable part (the mail sender) declares a
 * table that the groups using it list too. Every table a binary runs is
 * validated at start-up with the shared one (exit 2 naming the variable),
 * printed by --help and `omnify settings`, and its values are read through
 * config_values() (runtime_settings() / rt_settings() in handlers):
 *
 *   typedef struct ml_settings { int horizon_max; } ml_settings_t;
 *   static const config_row_t ml_rows[] = {
 *           {"OMNIFY_ML_HORIZON_MAX", CONFIG_INT,
 *            offsetof(ml_settings_t, horizon_max), 0, 1, 365, "90", NULL, 0,
 *            "Longest forecast horizon in days."},
 *   };
 *   const config_table_t ml_settings = {"ml", ml_rows, 1,
 *                                       sizeof(ml_settings_t)};
 * ------------------------------------------------------------------------ */

typedef enum config_type {
        CONFIG_STRING, /* char *, NUL-terminated, no control characters */
        CONFIG_INT,    /* int */
        CONFIG_ENUM,   /* int: the index of the value in choices */
} config_type_t;

typedef struct config_row {
        const char *var; /* OMNIFY_... */
        config_type_t type;
        size_t offset;       /* into the table's struct */
        unsigned scope;      /* shared table: CONFIG_SCOPE_*; others: 0 */
        long min, max;       /* ints: range; strings: length range */
        const char *def;     /* NULL: required */
        const char *choices; /* enums: "a|b|c" */
        int secret;          /* never echoed back */
        const char *doc;
} config_row_t;

typedef struct config_table {
        const char *owner; /* who reads it: "integrations", "mail" */
        const config_row_t *rows;
        size_t n_rows;
        size_t size; /* of the struct the rows fill */
} config_table_t;

#define CONFIG_MAX_TABLES 32

typedef struct config {
        /* common */
        int log_level;       /* log_level_t */
        char *kafka_brokers; /* bootstrap servers */
        char *topic_prefix;  /* e.g. "omnify." */
        char *mongo_uri;
        char *mongo_db_prefix; /* database = prefix + group */
        char *instance_id;     /* "" when not configured */
        int kafka_linger_ms;
        int kafka_message_timeout_ms;
        int shutdown_timeout_ms;
        int operation_retention_s;
        /* edge */
        char *http_bind;
        int http_port;
        int http_threads;
        int reply_timeout_ms;
        int max_body_bytes;
        int max_inflight;
        int max_connections;
        int max_buffered_bytes;
        int edge_reply_partition;
        int max_streams;         /* Server-Sent Events streams at once */
        int stream_buffer_bytes; /* queued for one slow stream client */
        /* edge and auth */
        char *jwt_secret;
        char *jwt_issuer;
        char *jwt_audience;
        char *jwt_kid;
        /* groups */
        char *ops_bind;
        int ops_port; /* 0: the group's own default port */
        /* groups: outbound calls, outboxes, durable timers (runtime parts) */
        int httpc_host_concurrency;
        int httpc_host_rate_per_s;
        int httpc_host_burst;
        int httpc_max_waiting;
        int httpc_max_response_bytes;
        int httpc_max_connections;
        int outbox_poll_ms;
        int outbox_inflight;
        int outbox_batch;
        int outbox_lease_ms;
        int outbox_keep_s;
        int timer_poll_ms;
        int timer_horizon_ms;
        int timer_batch;
        int timer_keep_s;
        /* edge protections */
        char *cors_origins; /* comma-separated; "" disables CORS */
        int rate_ip_per_min;
        int rate_account_per_min;
        /* edge and auth */
        int jwt_ttl_s;
        /* tables of groups and parts, and their values */
        const config_table_t *tables[CONFIG_MAX_TABLES];
        void *values[CONFIG_MAX_TABLES];
        size_t n_tables;
} config_t;

typedef enum config_result {
        CONFIG_OK = 0,
        CONFIG_HELP,    /* --help was given; usage printed */
        CONFIG_VERSION, /* --version was given; version printed */
        CONFIG_INVALID, /* errstr names the variable */
} config_result_t;

/* Looks up an environment variable; tests pass their own. */
typedef const char *(*config_getenv_fn)(const char *name);

/*
 * Fill cfg from the environment (through getenv_fn, or getenv when NULL) and
 * then from flags in argv[1..argc-1]. Only rows whose scope intersects `scope`
 * are read and validated; the others keep their defaults. Arguments that are
 * not flags stop parsing; *argi (if not NULL) receives the index of the first
 * one. Prints usage to `out` on --help and the version on --version.
 * On CONFIG_INVALID, errstr holds a message naming the variable.
 * Call config_deinit() whatever the result.
 */
config_result_t config_load(config_t *cfg, unsigned scope, const char *program,
                            int argc, char **argv, int *argi,
                            config_getenv_fn getenv_fn, FILE *out, char *errstr,
                            size_t errlen);

/*
 * config_load, plus the rows of every table of tables (a NULL-terminated
 * list; may be NULL; a table listed twice is loaded once). Their values are
 * then found with config_values.
 */
config_result_t config_load_tables(config_t *cfg, unsigned scope,
                                   const config_table_t *const *tables,
                                   const char *program, int argc, char **argv,
                                   int *argi, config_getenv_fn getenv_fn,
                                   FILE *out, char *errstr, size_t errlen);

/* The loaded values of table (its struct), or NULL when cfg did not load
 * it. Valid until config_deinit. */
const void *config_values(const config_t *cfg, const config_table_t *table);

/* Free the strings held by cfg. Accepts a zeroed or NULL cfg. */
void config_deinit(config_t *cfg);

/* Print the shared rows for `scope` and every row of tables (may be NULL)
 * (used by --help and the README). */
void config_print_table(FILE *out, unsigned scope,
                        const config_table_t *const *tables, bool markdown);

/*
 * The standard start-up of a binary: config_load with the real environment,
 * then exit(0) on --help/--version and exit(2) with the message on stderr when
 * invalid. Returns only when cfg is loaded.
 */
void config_load_or_exit(config_t *cfg, unsigned scope, const char *program,
                         int argc, char **argv, int *argi);

/* The same with tables (see config_load_tables). */
void config_load_tables_or_exit(config_t *cfg, unsigned scope,
                                const config_table_t *const *tables,
                                const char *program, int argc, char **argv,
                                int *argi);

#define OMNIFY_VERSION "0.1.0"

#endif
