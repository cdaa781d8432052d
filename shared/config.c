/*
 * config.c - the settings table and its validation (see config.h).
 *
 * Add a setting by adding a row to `settings` and a field to config_t; the
 * row says everything else: variable, type, range, default, doc, scope.
 */
#include "config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

typedef config_row_t setting_t;

#define SETTING_STRING CONFIG_STRING
#define SETTING_INT CONFIG_INT
#define SETTING_ENUM CONFIG_ENUM

#define OFF(f) offsetof(config_t, f)
#define C_ALL CONFIG_SCOPE_COMMON
#define C_EDGE CONFIG_SCOPE_EDGE
#define C_GRP CONFIG_SCOPE_GROUP
#define C_AUTH CONFIG_SCOPE_AUTH
#define C_TOOL CONFIG_SCOPE_TOOL

static const setting_t settings[] = {
        {"OMNIFY_LOG_LEVEL", SETTING_ENUM, OFF(log_level), C_ALL, 0, 0, "info",
         "debug|info|warn|error", 0,
         "Lowest level of log lines written to stderr."},
        {"OMNIFY_KAFKA_BROKERS", SETTING_STRING, OFF(kafka_brokers), C_ALL, 1,
         1024, "127.0.0.1:9092", NULL, 0,
         "Kafka bootstrap servers, host:port[,host:port]."},
        {"OMNIFY_TOPIC_PREFIX", SETTING_STRING, OFF(topic_prefix), C_ALL, 0, 64,
         "omnify.", NULL, 0, "Prefix of every topic name."},
        {"OMNIFY_MONGO_URI", SETTING_STRING, OFF(mongo_uri), C_ALL, 10, 2048,
         "mongodb://127.0.0.1:27017", NULL, 1, "MongoDB connection string."},
        {"OMNIFY_MONGO_DB_PREFIX", SETTING_STRING, OFF(mongo_db_prefix), C_ALL,
         1, 32, "omnify_", NULL, 0,
         "Database of a group = prefix + group name."},
        {"OMNIFY_INSTANCE_ID", SETTING_STRING, OFF(instance_id), C_ALL, 0, 200,
         "", NULL, 0,
         "Stable instance id; enables Kafka static membership. Empty: "
         "host-pid."},
        {"OMNIFY_KAFKA_LINGER_MS", SETTING_INT, OFF(kafka_linger_ms), C_ALL, 0,
         1000, "0", NULL, 0,
         "Producer linger: how long to wait to batch messages (0: send at "
         "once; "
         "batches still form while a request is in flight)."},
        {"OMNIFY_KAFKA_MESSAGE_TIMEOUT_MS", SETTING_INT,
         OFF(kafka_message_timeout_ms), C_ALL, 1000, 300000, "10000", NULL, 0,
         "How long the producer keeps trying to deliver a message."},
        {"OMNIFY_SHUTDOWN_TIMEOUT_MS", SETTING_INT, OFF(shutdown_timeout_ms),
         C_ALL, 100, 120000, "10000", NULL, 0,
         "Bound on finishing in-flight work and flushing at shutdown."},
        {"OMNIFY_OPERATION_RETENTION_S", SETTING_INT,
         OFF(operation_retention_s), C_ALL, 60, 31536000, "86400", NULL, 0,
         "How long results of handled commands are kept for /api/operations "
         "and redelivery."},
        {"OMNIFY_HTTP_BIND", SETTING_STRING, OFF(http_bind), C_EDGE, 1, 64,
         "0.0.0.0", NULL, 0, "Address the edge listens on."},
        {"OMNIFY_HTTP_PORT", SETTING_INT, OFF(http_port), C_EDGE, 1, 65535,
         "8000", NULL, 0, "Port the edge listens on."},
        {"OMNIFY_HTTP_THREADS", SETTING_INT, OFF(http_threads), C_EDGE, 1, 64,
         "2", NULL, 0, "HTTP event-loop threads of the edge."},
        {"OMNIFY_REPLY_TIMEOUT_MS", SETTING_INT, OFF(reply_timeout_ms), C_EDGE,
         100, 300000, "10000", NULL, 0,
         "How long a synchronous request waits for its reply before 504."},
        {"OMNIFY_MAX_BODY_BYTES", SETTING_INT, OFF(max_body_bytes), C_EDGE,
         1024, 67108864, "1048576", NULL, 0,
         "Largest request body accepted (413 beyond)."},
        {"OMNIFY_MAX_INFLIGHT", SETTING_INT, OFF(max_inflight), C_EDGE, 1,
         1000000, "10000", NULL, 0,
         "Requests the edge holds at once (503 beyond)."},
        {"OMNIFY_MAX_CONNECTIONS", SETTING_INT, OFF(max_connections), C_EDGE,
         16, 1000000, "4096", NULL, 0,
         "Open client connections the edge accepts at once; more wait in the "
         "backlog."},
        {"OMNIFY_MAX_BUFFERED_BYTES", SETTING_INT, OFF(max_buffered_bytes),
         C_EDGE, 1048576, 2147483647, "268435456", NULL, 0,
         "Request body bytes the edge buffers at once over all connections "
         "(503 beyond)."},
        {"OMNIFY_EDGE_REPLY_PARTITION", SETTING_INT, OFF(edge_reply_partition),
         C_EDGE, 0, 4095, "0", NULL, 0,
         "Partition of edge.replies this edge replica owns; unique per "
         "replica."},
        {"OMNIFY_MAX_STREAMS", SETTING_INT, OFF(max_streams), C_EDGE, 0, 100000,
         "1000", NULL, 0,
         "Server-Sent Events streams the edge serves at once (503 beyond)."},
        {"OMNIFY_STREAM_BUFFER_BYTES", SETTING_INT, OFF(stream_buffer_bytes),
         C_EDGE, 4096, 67108864, "262144", NULL, 0,
         "Bytes the edge queues for one stream whose client reads too "
         "slowly; beyond, the stream ends with an error event and the client "
         "resumes with Last-Event-ID."},
        {"OMNIFY_JWT_SECRET", SETTING_STRING, OFF(jwt_secret), C_EDGE | C_AUTH,
         32, 4096, NULL, NULL, 1,
         "HS256 signing key of access tokens (>= 32 bytes). Required."},
        {"OMNIFY_JWT_ISSUER", SETTING_STRING, OFF(jwt_issuer), C_EDGE | C_AUTH,
         1, 200, "omnify", NULL, 0, "iss of access tokens."},
        {"OMNIFY_JWT_AUDIENCE", SETTING_STRING, OFF(jwt_audience),
         C_EDGE | C_AUTH, 1, 200, "omnify-api", NULL, 0,
         "aud of access tokens."},
        {"OMNIFY_JWT_KID", SETTING_STRING, OFF(jwt_kid), C_EDGE | C_AUTH, 1, 64,
         "k1", NULL, 0, "kid of the current signing key."},
        {"OMNIFY_OPS_BIND", SETTING_STRING, OFF(ops_bind), C_GRP, 1, 64,
         "0.0.0.0", NULL, 0, "Address a group's ops server listens on."},
        {"OMNIFY_OPS_PORT", SETTING_INT, OFF(ops_port), C_GRP, 0, 65535, "0",
         NULL, 0,
         "Ops port of a group process; 0: the group's own (auth 8001 ... "
         "infrastructure 8007)."},
        {"OMNIFY_HTTPC_HOST_CONCURRENCY", SETTING_INT,
         OFF(httpc_host_concurrency), C_GRP, 1, 1000, "8", NULL, 0,
         "Outbound calls in flight at once per host (per process)."},
        {"OMNIFY_HTTPC_HOST_RATE_PER_S", SETTING_INT,
         OFF(httpc_host_rate_per_s), C_GRP, 0, 100000, "0", NULL, 0,
         "Outbound calls started per second per host (token bucket); 0: no "
         "limit."},
        {"OMNIFY_HTTPC_HOST_BURST", SETTING_INT, OFF(httpc_host_burst), C_GRP,
         0, 100000, "0", NULL, 0,
         "Bucket size per host; 0: the rate, at least 1."},
        {"OMNIFY_HTTPC_MAX_WAITING", SETTING_INT, OFF(httpc_max_waiting), C_GRP,
         1, 1000000, "10000", NULL, 0,
         "Outbound calls queued or between tries; beyond this, refused."},
        {"OMNIFY_HTTPC_MAX_RESPONSE_BYTES", SETTING_INT,
         OFF(httpc_max_response_bytes), C_GRP, 1024, 67108864, "1048576", NULL,
         0, "Largest outbound answer accepted (larger is an error)."},
        {"OMNIFY_HTTPC_MAX_CONNECTIONS", SETTING_INT,
         OFF(httpc_max_connections), C_GRP, 1, 10000, "64", NULL, 0,
         "Kept-alive outbound connections per process."},
        {"OMNIFY_OUTBOX_POLL_MS", SETTING_INT, OFF(outbox_poll_ms), C_GRP, 50,
         60000, "500", NULL, 0,
         "How soon an outbox sender sees records other processes queued."},
        {"OMNIFY_OUTBOX_INFLIGHT", SETTING_INT, OFF(outbox_inflight), C_GRP, 1,
         1000, "16", NULL, 0, "Outbox calls in flight per outbox and process."},
        {"OMNIFY_OUTBOX_BATCH", SETTING_INT, OFF(outbox_batch), C_GRP, 1, 1000,
         "50", NULL, 0, "Outbox records claimed per round."},
        {"OMNIFY_OUTBOX_LEASE_MS", SETTING_INT, OFF(outbox_lease_ms), C_GRP,
         10000, 3600000, "60000", NULL, 0,
         "How long an outbox claim holds (a try must end within it)."},
        {"OMNIFY_OUTBOX_KEEP_S", SETTING_INT, OFF(outbox_keep_s), C_GRP, 60,
         31536000, "604800", NULL, 0,
         "How long sent and failed outbox records are kept."},
        {"OMNIFY_TIMER_POLL_MS", SETTING_INT, OFF(timer_poll_ms), C_GRP, 50,
         60000, "1000", NULL, 0,
         "How soon timers set by other processes are seen (one find per "
         "poll)."},
        {"OMNIFY_TIMER_HORIZON_MS", SETTING_INT, OFF(timer_horizon_ms), C_GRP,
         -1, 60000, "250", NULL, 0,
         "Claim timers this far ahead and fire them on time; -1: none."},
        {"OMNIFY_TIMER_BATCH", SETTING_INT, OFF(timer_batch), C_GRP, 1, 5000,
         "256", NULL, 0, "Timer firings per claim."},
        {"OMNIFY_TIMER_KEEP_S", SETTING_INT, OFF(timer_keep_s), C_GRP, 60,
         31536000, "604800", NULL, 0,
         "How long fired and cancelled timers are kept."},
        {"OMNIFY_JWT_TTL_S", SETTING_INT, OFF(jwt_ttl_s), C_EDGE | C_AUTH, 60,
         86400, "900", NULL, 0, "Lifetime of access tokens in seconds."},
        {"OMNIFY_CORS_ORIGINS", SETTING_STRING, OFF(cors_origins), C_EDGE, 0,
         4096, "", NULL, 0,
         "Origins allowed to call the API from browsers, comma-separated; "
         "empty: none."},
        {"OMNIFY_RATE_IP_PER_MIN", SETTING_INT, OFF(rate_ip_per_min), C_EDGE, 1,
         1000000, "30", NULL, 0,
         "Requests per minute per client address on rate-limited routes "
         "(login, signup, reset, MFA)."},
        {"OMNIFY_RATE_ACCOUNT_PER_MIN", SETTING_INT, OFF(rate_account_per_min),
         C_EDGE, 1, 1000000, "10", NULL, 0,
         "Requests per minute per account (email) on rate-limited routes."},
};

#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

static void errf(char *errstr, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void errf(char *errstr, size_t errlen, const char *fmt, ...) {
        va_list ap;
        if (!errstr || errlen == 0)
                return;
        va_start(ap, fmt);
        vsnprintf(errstr, errlen, fmt, ap);
        va_end(ap);
}

/* "OMNIFY_HTTP_PORT" -> "http-port" */
static void flag_name(const setting_t *s, char *buf, size_t size) {
        const char *v = s->var + strlen("OMNIFY_");
        size_t i = 0;
        for (; *v && i + 1 < size; v++)
                buf[i++] = *v == '_' ? '-' : (char)tolower((unsigned char)*v);
        buf[i] = '\0';
}

static int enum_index(const char *choices, const char *value) {
        size_t n = strlen(value);
        int idx = 0;
        const char *p = choices;
        while (*p) {
                const char *bar = strchr(p, '|');
                size_t len = bar ? (size_t)(bar - p) : strlen(p);
                if (len == n && strncmp(p, value, n) == 0)
                        return idx;
                idx++;
                if (!bar)
                        break;
                p = bar + 1;
        }
        return -1;
}

/* Parse and store one value; `source` says where it came from for errors. */
static int apply(void *values, const setting_t *s, const char *value,
                 const char *source, char *errstr, size_t errlen) {
        char *base = values;
        switch (s->type) {
        case SETTING_STRING: {
                size_t len = strlen(value);
                char **slot = (char **)(base + s->offset);
                if ((long)len < s->min || (long)len > s->max) {
                        errf(errstr, errlen,
                             "%s (%s): length must be between %ld and %ld, got "
                             "%zu",
                             s->var, source, s->min, s->max, len);
                        return -1;
                }
                for (size_t i = 0; i < len; i++) {
                        if ((unsigned char)value[i] < 0x20 ||
                            value[i] == 0x7f) {
                                errf(errstr, errlen,
                                     "%s (%s): control characters are not "
                                     "allowed",
                                     s->var, source);
                                return -1;
                        }
                }
                free(*slot);
                *slot = xstrdup(value);
                return 0;
        }
        case SETTING_INT: {
                char *end = NULL;
                long v;
                errno = 0;
                v = strtol(value, &end, 10);
                if (errno || end == value || *end != '\0') {
                        errf(errstr, errlen, "%s (%s): '%s' is not an integer",
                             s->var, source, s->secret ? "***" : value);
                        return -1;
                }
                if (v < s->min || v > s->max) {
                        errf(errstr, errlen,
                             "%s (%s): %ld is out of range [%ld, %ld]", s->var,
                             source, v, s->min, s->max);
                        return -1;
                }
                *(int *)(base + s->offset) = (int)v;
                return 0;
        }
        case SETTING_ENUM: {
                int idx = enum_index(s->choices, value);
                if (idx < 0) {
                        errf(errstr, errlen, "%s (%s): '%s' is not one of %s",
                             s->var, source, value, s->choices);
                        return -1;
                }
                *(int *)(base + s->offset) = idx;
                return 0;
        }
        }
        return -1;
}

static int check_topic_prefix(const config_t *cfg, char *errstr,
                              size_t errlen) {
        for (const char *p = cfg->topic_prefix; *p; p++) {
                if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' &&
                    *p != '-') {
                        errf(errstr, errlen,
                             "OMNIFY_TOPIC_PREFIX: only letters, digits, '.', "
                             "'_' and '-' are allowed");
                        return -1;
                }
        }
        return 0;
}

static const char *scope_names(unsigned scope) {
        if (!scope)
                return NULL; /* a table's row: its owner reads it */
        if (scope & C_ALL)
                return "all";
        if ((scope & (C_EDGE | C_AUTH)) == (C_EDGE | C_AUTH))
                return "edge, auth";
        if (scope & C_EDGE)
                return "edge";
        if (scope & C_GRP)
                return "groups";
        if (scope & C_AUTH)
                return "auth";
        return "tools";
}

static void print_row(FILE *out, const setting_t *s, const char *reader,
                      bool markdown) {
        char flag[64], range[64];
        flag_name(s, flag, sizeof(flag));
        if (s->type == SETTING_INT)
                snprintf(range, sizeof(range), "%ld..%ld", s->min, s->max);
        else if (s->type == SETTING_ENUM && markdown) {
                /* A bare '|' would end the table cell. */
                size_t j = 0;
                for (const char *c = s->choices; *c && j + 3 < sizeof(range);
                     c++) {
                        if (*c == '|')
                                range[j++] = '\\';
                        range[j++] = *c;
                }
                range[j] = '\0';
        } else if (s->type == SETTING_ENUM)
                snprintf(range, sizeof(range), "%s", s->choices);
        else
                snprintf(range, sizeof(range), "length %ld..%ld", s->min,
                         s->max);
        if (markdown)
                fprintf(out, "| `%s` | `--%s` | %s | %s | %s | %s | %s |\n",
                        s->var, flag,
                        s->type == SETTING_INT    ? "int"
                        : s->type == SETTING_ENUM ? "enum"
                                                  : "string",
                        range,
                        s->def ? (*s->def ? s->def : "(empty)")
                               : "**required**",
                        reader, s->doc);
        else
                fprintf(out, "  --%-26s %s\n      %s [%s; default %s]\n", flag,
                        s->var, s->doc, range,
                        s->def ? (*s->def ? s->def : "empty") : "required");
}

/* Each table of tables once, in order: calls fn(table, arg). */
static void each_table(const config_table_t *const *tables,
                       void (*fn)(const config_table_t *t, void *arg),
                       void *arg) {
        for (size_t i = 0; tables && tables[i]; i++) {
                bool seen = false;
                for (size_t j = 0; j < i; j++)
                        seen = seen || tables[j] == tables[i];
                if (!seen)
                        fn(tables[i], arg);
        }
}

typedef struct print_ctx {
        FILE *out;
        bool markdown;
} print_ctx_t;

static void print_table_rows(const config_table_t *t, void *arg) {
        print_ctx_t *p = arg;
        for (size_t i = 0; i < t->n_rows; i++)
                print_row(p->out, &t->rows[i], t->owner, p->markdown);
}

void config_print_table(FILE *out, unsigned scope,
                        const config_table_t *const *tables, bool markdown) {
        print_ctx_t p = {out, markdown};
        if (markdown)
                fprintf(out, "| variable | flag | type | range | default | "
                             "read by | meaning |\n"
                             "| --- | --- | --- | --- | --- | --- | --- |\n");
        for (size_t i = 0; i < N_SETTINGS; i++)
                if (settings[i].scope & scope)
                        print_row(out, &settings[i],
                                  scope_names(settings[i].scope), markdown);
        each_table(tables, print_table_rows, &p);
}

static void usage(FILE *out, const char *program, unsigned scope,
                  const config_table_t *const *tables) {
        fprintf(out,
                "Usage: %s [--help] [--version] [--SETTING=VALUE ...]\n\n"
                "Settings come from OMNIFY_* environment variables; a flag "
                "overrides its variable.\n\n",
                program);
        config_print_table(out, scope, tables, false);
}

/* Every row a load reads: the shared rows in scope, then the tables'. */
typedef struct load_row {
        const setting_t *s;
        void *values;
} load_row_t;

static void add_table(const config_table_t *t, void *arg) {
        config_t *cfg = arg;
        assert(cfg->n_tables < CONFIG_MAX_TABLES);
        cfg->tables[cfg->n_tables] = t;
        cfg->values[cfg->n_tables++] = xcalloc(1, t->size ? t->size : 1);
}

static size_t load_rows(config_t *cfg, unsigned scope, load_row_t **out) {
        size_t n = 0, k = 0;
        load_row_t *rows;
        for (size_t i = 0; i < N_SETTINGS; i++)
                n += (settings[i].scope & scope) != 0;
        for (size_t t = 0; t < cfg->n_tables; t++)
                n += cfg->tables[t]->n_rows;
        rows = xcalloc(n ? n : 1, sizeof(*rows));
        for (size_t i = 0; i < N_SETTINGS; i++)
                if (settings[i].scope & scope)
                        rows[k++] = (load_row_t){&settings[i], cfg};
        for (size_t t = 0; t < cfg->n_tables; t++)
                for (size_t i = 0; i < cfg->tables[t]->n_rows; i++)
                        rows[k++] = (load_row_t){&cfg->tables[t]->rows[i],
                                                 cfg->values[t]};
        *out = rows;
        return k;
}

static config_result_t load(config_t *cfg, unsigned scope,
                            const config_table_t *const *tables,
                            const char *program, int argc, char **argv,
                            int *argi, config_getenv_fn getenv_fn, FILE *out,
                            char *errstr, size_t errlen, load_row_t **rowsp) {
        load_row_t *rows;
        size_t n;
        int i;
        memset(cfg, 0, sizeof(*cfg));
        if (!getenv_fn)
                getenv_fn = (config_getenv_fn)getenv;
        scope |= CONFIG_SCOPE_COMMON;
        each_table(tables, add_table, cfg);

        /* Defaults for every shared row, so fields of other scopes are sane
         * too; then the tables'. A bad default is a bad table row: our bug. */
        for (size_t k = 0; k < N_SETTINGS; k++) {
                const setting_t *s = &settings[k];
                if (s->def && apply(cfg, s, s->def, "default", errstr, errlen))
                        return CONFIG_INVALID;
        }
        *rowsp = rows = NULL;
        n = load_rows(cfg, scope, &rows);
        *rowsp = rows;
        for (size_t k = 0; k < n; k++) {
                const setting_t *s = rows[k].s;
                const char *v;
                if (s->def && rows[k].values != cfg &&
                    apply(rows[k].values, s, s->def, "default", errstr, errlen))
                        return CONFIG_INVALID;
                v = getenv_fn(s->var);
                if (v &&
                    apply(rows[k].values, s, v, "environment", errstr, errlen))
                        return CONFIG_INVALID;
        }
        for (i = 1; i < argc; i++) {
                const char *arg = argv[i];
                const char *eq, *value;
                size_t name_len;
                const load_row_t *found = NULL;
                char flag[64];

                if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
                        usage(out ? out : stdout, program, scope, tables);
                        return CONFIG_HELP;
                }
                if (strcmp(arg, "--version") == 0) {
                        fprintf(out ? out : stdout, "%s %s\n", program,
                                OMNIFY_VERSION);
                        return CONFIG_VERSION;
                }
                if (strncmp(arg, "--", 2) != 0)
                        break;
                eq = strchr(arg, '=');
                name_len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
                for (size_t k = 0; k < n && !found; k++) {
                        flag_name(rows[k].s, flag, sizeof(flag));
                        if (strlen(flag) == name_len &&
                            strncmp(flag, arg + 2, name_len) == 0)
                                found = &rows[k];
                }
                if (!found) {
                        errf(errstr, errlen,
                             "unknown option '%.*s' (see --help)",
                             (int)(name_len + 2), arg);
                        return CONFIG_INVALID;
                }
                if (eq) {
                        value = eq + 1;
                } else if (i + 1 < argc) {
                        value = argv[++i];
                } else {
                        errf(errstr, errlen, "%s: option --%.*s needs a value",
                             found->s->var, (int)name_len, arg + 2);
                        return CONFIG_INVALID;
                }
                if (apply(found->values, found->s, value, "flag", errstr,
                          errlen))
                        return CONFIG_INVALID;
        }
        if (argi)
                *argi = i;

        for (size_t k = 0; k < n; k++) {
                const setting_t *s = rows[k].s;
                if (s->def || s->type != SETTING_STRING)
                        continue;
                if (!*(char **)((char *)rows[k].values + s->offset)) {
                        errf(errstr, errlen, "%s: required but not set (%s)",
                             s->var, s->doc);
                        return CONFIG_INVALID;
                }
        }
        if (check_topic_prefix(cfg, errstr, errlen))
                return CONFIG_INVALID;
        return CONFIG_OK;
}

config_result_t config_load_tables(config_t *cfg, unsigned scope,
                                   const config_table_t *const *tables,
                                   const char *program, int argc, char **argv,
                                   int *argi, config_getenv_fn getenv_fn,
                                   FILE *out, char *errstr, size_t errlen) {
        load_row_t *rows = NULL;
        config_result_t r = load(cfg, scope, tables, program, argc, argv, argi,
                                 getenv_fn, out, errstr, errlen, &rows);
        free(rows);
        return r;
}

config_result_t config_load(config_t *cfg, unsigned scope, const char *program,
                            int argc, char **argv, int *argi,
                            config_getenv_fn getenv_fn, FILE *out, char *errstr,
                            size_t errlen) {
        return config_load_tables(cfg, scope, NULL, program, argc, argv, argi,
                                  getenv_fn, out, errstr, errlen);
}

const void *config_values(const config_t *cfg, const config_table_t *table) {
        for (size_t i = 0; i < cfg->n_tables; i++)
                if (cfg->tables[i] == table)
                        return cfg->values[i];
        return NULL;
}

/* Free the strings of values filled by rows. */
static void free_strings(void *values, const setting_t *rows, size_t n) {
        for (size_t k = 0; k < n; k++) {
                if (rows[k].type == SETTING_STRING) {
                        char **slot =
                                (char **)((char *)values + rows[k].offset);
                        free(*slot);
                        *slot = NULL;
                }
        }
}

void config_deinit(config_t *cfg) {
        if (!cfg)
                return;
        free_strings(cfg, settings, N_SETTINGS);
        for (size_t t = 0; t < cfg->n_tables; t++) {
                if (cfg->values[t])
                        free_strings(cfg->values[t], cfg->tables[t]->rows,
                                     cfg->tables[t]->n_rows);
                free(cfg->values[t]);
                cfg->values[t] = NULL;
        }
        cfg->n_tables = 0;
}

void config_load_tables_or_exit(config_t *cfg, unsigned scope,
                                const config_table_t *const *tables,
                                const char *program, int argc, char **argv,
                                int *argi) {
        char err[512] = "";
        switch (config_load_tables(cfg, scope, tables, program, argc, argv,
                                   argi, NULL, stdout, err, sizeof(err))) {
        case CONFIG_OK:
                return;
        case CONFIG_HELP:
        case CONFIG_VERSION:
                config_deinit(cfg);
                exit(0);
        case CONFIG_INVALID:
                fprintf(stderr, "%s: invalid configuration: %s\n", program,
                        err);
                config_deinit(cfg);
                exit(2);
        }
}

void config_load_or_exit(config_t *cfg, unsigned scope, const char *program,
                         int argc, char **argv, int *argi) {
        config_load_tables_or_exit(cfg, scope, NULL, program, argc, argv, argi);
}
