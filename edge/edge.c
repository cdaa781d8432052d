/*
 * edge.c - the edge's life: start-up, threads and shutdown (see edge.h).
 *
 * The edge's jobs live in their own files:
 *   server.c    HTTP entry and routing (libmicrohttpd's callbacks)
 *   access.c    the bearer token, roles and required facts
 *   dispatch.c  the command on Kafka, delivery reports
 *   replies.c   the reply thread and the deadlines (504)
 *   lookup.c    the lookup thread: /api/operations/{id}
 *   builtin.c   /health, /ready, /metrics, /openapi.json, /ops
 *   follower.c  the facts follower thread (facts.c: the table)
 *   streams.c   Server-Sent Events routes and their topic readers
 *               (stream.c: the hub of subscribers)
 *   respond.c   answers, and the answer of a completed request
 * Whoever takes a request's pending entry completes it (pending.h).
 */
#include "edge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "edge_internal.h"
#include "log.h"
#include "ops.h"
#include "schemas_embedded.h"
#include "service.h"

/* An idle stream gets a comment this often (SCHEMA-EXT.md: 15 s). */
#define EDGE_HEARTBEAT_MS 15000

/* Allowed CORS origins from the comma-separated setting. */
static void edge__parse_cors(edge_t *edge, const char *list) {
        for (const char *p = list; *p;) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t)(comma - p) : strlen(p);
                while (len && p[0] == ' ') {
                        p++;
                        len--;
                }
                while (len && p[len - 1] == ' ')
                        len--;
                if (len) {
                        edge->cors = xrealloc(edge->cors, (edge->n_cors +
                                                           1) * sizeof(char *));
                        edge->cors[edge->n_cors++] = xstrndup(p, len);
                }
                p = comma ? comma + 1 : p + strlen(p);
        }
}

edge_t *edge_new(const config_t *cfg, const schema_set_t *schemas, char *errstr,
                 size_t errlen) {
        edge_t *edge = xcalloc(1, sizeof(*edge));

        edge->cfg = cfg;
        edge->schemas = schemas;
        atomic_init(&edge->stopping, false);
        atomic_init(&edge->started, false);
        atomic_init(&edge->failed, false);
        atomic_init(&edge->ready_holds, 0);
        atomic_init(&edge->n_ops, 0);
        atomic_init(&edge->handled, 0);
        atomic_init(&edge->inflight, 0);
        atomic_init(&edge->buffered, 0);
        pthread_mutex_init(&edge->jobs_lock, NULL);
        pthread_cond_init(&edge->jobs_cond, NULL);
        pthread_mutex_init(&edge->start_lock, NULL);
        pthread_cond_init(&edge->start_cond, NULL);
        edge->keys.secret = cfg->jwt_secret;
        edge->keys.issuer = cfg->jwt_issuer;
        edge->keys.audience = cfg->jwt_audience;
        edge->keys.kid = cfg->jwt_kid;
        edge->pending = pending_new((size_t)cfg->max_inflight);
        edge->m_inflight =
                metrics_gauge("omnify_http_inflight",
                              "Requests waiting on Kafka or the store.", "");
        edge->m_produce_errors = metrics_counter(
                "omnify_produce_errors_total",
                "Commands refused because Kafka was unreachable or full.", "");
        edge->m_rate_limited =
                metrics_counter("omnify_rate_limited_total",
                                "Requests refused by a rate limit.", "");
        edge->guard =
                guard_new(cfg->rate_ip_per_min, cfg->rate_account_per_min);
        edge__parse_cors(edge, cfg->cors_origins);
        snprintf(edge->reply_to, sizeof(edge->reply_to), "(not yet)");
        pthread_mutex_init(&edge->query_lock, NULL);
        edge->facts = facts_new(schemas, errstr, errlen);
        if (!edge->facts) {
                edge_destroy(edge);
                return NULL;
        }
        edge->query_ids =
                xcalloc(facts_query_count(edge->facts) + 1, sizeof(msgid_t));
        {
                stream_hub_opts_t opts = {
                        .max_streams = (size_t)cfg->max_streams,
                        .max_queue_bytes = (size_t)cfg->stream_buffer_bytes,
                        .heartbeat_ms = EDGE_HEARTBEAT_MS,
                        .wake = edge__stream_wake,
                        .sleep = edge__stream_sleep,
                        .gone = edge__stream_gone,
                };
                edge->hub = stream_hub_new(&opts);
        }
        return edge;
}

/* ---------------------------------------------------------------------------
 * Warm-up: what needs the network, after the edge listens
 * ------------------------------------------------------------------------ */

/* The topics the edge writes to and reads from exist, and this replica's
 * reply partition is one of edge.replies'. */
static int edge__check_topics(edge_t *edge, char *errstr, size_t errlen) {
        const config_t *cfg = edge->cfg;
        size_t n_groups = schema_group_count(edge->schemas), n_topics = 0;
        const char **topics = xcalloc(n_groups + 1, sizeof(char *));
        int partitions = 0, ret = -1;
        bus_err_t berr;

        bus_topic(cfg, "edge.replies", edge->replies_topic,
                  sizeof(edge->replies_topic));
        topics[n_topics++] = edge->replies_topic;
        /* Each group's command topic, named once for every request. */
        edge->commands = xcalloc(n_groups + 1, sizeof(*edge->commands));
        for (size_t g = 0; g < n_groups; g++) {
                char name[128];
                edge->commands[g].group = schema_group_at(edge->schemas, g);
                snprintf(name, sizeof(name), "%s.commands",
                         edge->commands[g].group);
                bus_topic(cfg, name, edge->commands[g].topic,
                          sizeof(edge->commands[g].topic));
                topics[n_topics++] = edge->commands[g].topic;
        }
        edge->n_commands = n_groups;
        berr = bus_check_topics(edge->bus, topics, n_topics, &partitions,
                                errstr, errlen);
        if (berr != BUS_OK) {
                size_t n = strlen(errstr);
                if (berr == BUS_UNKNOWN_TOPIC)
                        snprintf(errstr + n, errlen - n,
                                 " (create them with: omnify topics apply)");
                goto out;
        }
        if (cfg->edge_reply_partition >= partitions) {
                snprintf(errstr, errlen,
                         "OMNIFY_EDGE_REPLY_PARTITION: %d but %s has %d "
                         "partitions",
                         cfg->edge_reply_partition, edge->replies_topic,
                         partitions);
                goto out;
        }
        ret = 0;
out:
        free(topics);
        return ret;
}

const char *edge__commands_topic(const edge_t *edge, const char *group) {
        for (size_t g = 0; g < edge->n_commands; g++)
                if (strcmp(edge->commands[g].group, group) == 0)
                        return edge->commands[g].topic;
        return NULL;
}

/* Connect the producer and the store, check the topics, start the reply,
 * lookup and follower threads. 0, or -1 and errstr. */
static int edge__connect(edge_t *edge, char *errstr, size_t errlen) {
        const config_t *cfg = edge->cfg;
        char client_id[64];

        edge->openapi = schema_openapi(edge->schemas, OMNIFY_VERSION);
        if (!edge->openapi) {
                snprintf(errstr, errlen,
                         "cannot generate the OpenAPI document");
                return -1;
        }
        edge->openapi_len = strlen(edge->openapi);
        edge->asyncapi = schema_asyncapi(edge->schemas, OMNIFY_VERSION,
                                         cfg->topic_prefix);
        if (!edge->asyncapi) {
                snprintf(errstr, errlen,
                         "cannot generate the AsyncAPI document");
                return -1;
        }
        edge->asyncapi_len = strlen(edge->asyncapi);
        snprintf(client_id, sizeof(client_id), "omnify-edge-%d",
                 cfg->edge_reply_partition);
        edge->bus = bus_new(cfg, client_id, errstr, errlen);
        if (!edge->bus)
                return -1;
        edge->store = store_new(cfg, "omnify-edge", errstr, errlen);
        if (!edge->store || atomic_load(&edge->stopping) ||
            edge__check_topics(edge, errstr, errlen))
                return -1;
        snprintf(edge->reply_to, sizeof(edge->reply_to), "%s:%d",
                 edge->replies_topic, cfg->edge_reply_partition);
        edge->listener =
                bus_listener_new(cfg, edge->replies_topic,
                                 cfg->edge_reply_partition, errstr, errlen);
        if (!edge->listener || atomic_load(&edge->stopping) ||
            edge__follower_open(edge, errstr, errlen) ||
            edge__streams_open(edge, errstr, errlen))
                return -1;
        if (pthread_create(&edge->reply_thread, NULL, edge__reply_loop, edge))
                goto no_thread;
        edge->reply_started = true;
        if (pthread_create(&edge->lookup_thread, NULL, edge__lookup_loop, edge))
                goto no_thread;
        edge->lookup_started = true;
        if (pthread_create(&edge->events_thread, NULL, edge__events_loop, edge))
                goto no_thread;
        edge->events_started = true;
        return 0;
no_thread:
        snprintf(errstr, errlen, "cannot start the edge threads");
        return -1;
}

/* The edge's heartbeat (heartbeat.h), as the group "edge", with the
 * instance the runtimes of the process use (a monolith's groups and edge
 * share it). */
static void edge__heartbeat_start(edge_t *edge) {
        char host[256], instance[320];
        heartbeat_info_t info = {0};
        if (gethostname(host, sizeof(host)) != 0)
                snprintf(host, sizeof(host), "unknown");
        host[sizeof(host) - 1] = '\0';
        if (edge->cfg->instance_id[0])
                snprintf(instance, sizeof(instance), "%s",
                         edge->cfg->instance_id);
        else
                snprintf(instance, sizeof(instance), "%s-%ld", host,
                         (long)getpid());
        info.group = "edge";
        info.instance = instance;
        info.host = host;
        info.mode = edge->standalone ? "standalone" : "monolith";
        edge->heartbeat =
                heartbeat_start(edge->cfg, edge->bus, &info, &edge->handled);
}

static void *edge__warmup(void *arg) {
        edge_t *edge = arg;
        char errstr[sizeof(edge->fatal)] = "";
        uint64_t t0 = clock_mono_ms();
        int ret;
        log_set_group("edge");
        ret = edge__connect(edge, errstr, sizeof(errstr));
        pthread_mutex_lock(&edge->start_lock);
        if (ret) {
                snprintf(edge->fatal, sizeof(edge->fatal), "%s",
                         errstr[0] ? errstr : "the edge could not start");
                atomic_store(&edge->failed, true);
        } else {
                atomic_store(&edge->started, true);
        }
        pthread_cond_broadcast(&edge->start_cond);
        pthread_mutex_unlock(&edge->start_lock);
        if (!ret) {
                log_info("edge connected in %llu ms, replies on %s",
                         (unsigned long long)(clock_mono_ms() - t0),
                         edge->reply_to);
                edge__heartbeat_start(edge);
        }
        return NULL;
}

/* ---------------------------------------------------------------------------
 * Public life
 * ------------------------------------------------------------------------ */

bus_t *edge_bus(edge_t *edge) {
        return atomic_load(&edge->started) ? edge->bus : NULL;
}

store_t *edge_store(edge_t *edge) {
        return atomic_load(&edge->started) ? edge->store : NULL;
}

void edge_add_ops(edge_t *edge, runtime_t *rt) {
        /* One caller (the monolith's main thread); readers see the slot
         * before the count that covers it. */
        size_t n = atomic_load(&edge->n_ops);
        if (n < EDGE_MAX_OPS) {
                edge->ops[n] = rt;
                atomic_store(&edge->n_ops, n + 1);
        }
}

void edge_hold_ready(edge_t *edge) {
        atomic_fetch_add(&edge->ready_holds, 1);
}

void edge_release_ready(edge_t *edge) {
        atomic_fetch_sub(&edge->ready_holds, 1);
}

int edge_start(edge_t *edge, char *errstr, size_t errlen) {
        const config_t *cfg = edge->cfg;
        struct sockaddr_storage addr;
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                         MHD_ALLOW_SUSPEND_RESUME;

        if (ops_parse_bind(cfg->http_bind, cfg->http_port, &addr)) {
                snprintf(errstr, errlen,
                         "OMNIFY_HTTP_BIND: '%s' is not an IP address",
                         cfg->http_bind);
                return -1;
        }
        if (addr.ss_family == AF_INET6)
                flags |= MHD_USE_IPv6;
        edge->daemon = MHD_start_daemon(
                flags, (uint16_t)cfg->http_port, NULL, NULL, edge__handler,
                edge, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads,
                MHD_OPTION_NOTIFY_COMPLETED, edge__completed, edge,
                MHD_OPTION_CONNECTION_TIMEOUT, 60u,
                MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
                MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
                MHD_OPTION_END);
        if (!edge->daemon) {
                snprintf(errstr, errlen, "cannot listen on %s:%d",
                         cfg->http_bind, cfg->http_port);
                return -1;
        }
        if (pthread_create(&edge->warmup_thread, NULL, edge__warmup, edge)) {
                snprintf(errstr, errlen, "cannot start the edge threads");
                return -1;
        }
        edge->warmup_started = true;
        log_info("edge listening on %s:%d", cfg->http_bind, cfg->http_port);
        return 0;
}

int edge_wait_started(edge_t *edge, char *errstr, size_t errlen) {
        pthread_mutex_lock(&edge->start_lock);
        while (!atomic_load(&edge->started) && !atomic_load(&edge->failed))
                pthread_cond_wait(&edge->start_cond, &edge->start_lock);
        pthread_mutex_unlock(&edge->start_lock);
        return edge_failed(edge, errstr, errlen) ? -1 : 0;
}

bool edge_failed(edge_t *edge, char *errstr, size_t errlen) {
        if (!atomic_load(&edge->failed))
                return false;
        pthread_mutex_lock(&edge->start_lock);
        snprintf(errstr, errlen, "%s", edge->fatal);
        pthread_mutex_unlock(&edge->start_lock);
        return true;
}

/* Join every thread the edge started; stopping is set. */
static void edge__join(edge_t *edge) {
        if (edge->warmup_started)
                pthread_join(edge->warmup_thread, NULL);
        edge->warmup_started = false;
        heartbeat_stop(edge->heartbeat); /* its last beat: stopping */
        edge->heartbeat = NULL;
        pthread_mutex_lock(&edge->jobs_lock);
        pthread_cond_broadcast(&edge->jobs_cond);
        pthread_mutex_unlock(&edge->jobs_lock);
        if (edge->lookup_started)
                pthread_join(edge->lookup_thread, NULL);
        if (edge->reply_started)
                pthread_join(edge->reply_thread, NULL);
        if (edge->events_started)
                pthread_join(edge->events_thread, NULL);
        edge->lookup_started = edge->reply_started = edge->events_started =
                false;
        edge__streams_close(edge);
}

void edge_stop(edge_t *edge) {
        pending_entry_t *left[EDGE_SWEEP_BATCH];
        uint64_t deadline;
        size_t n;

        if (!edge->daemon)
                return;
        MHD_quiesce_daemon(edge->daemon);
        /* Streams end after what they have queued. */
        stream_hub_close_all(edge->hub);
        deadline = clock_mono_ms() + (uint64_t)edge->cfg->shutdown_timeout_ms;
        while (atomic_load(&edge->inflight) > 0 && clock_mono_ms() < deadline) {
                struct timespec ts = {0, 20 * 1000000L};
                nanosleep(&ts, NULL);
        }
        while ((n = pending_take_all(edge->pending, left, EDGE_SWEEP_BATCH)) >
               0)
                for (size_t i = 0; i < n; i++)
                        edge__complete(left[i]->owner, OUT_SHUTDOWN);
        /* Let the lookup thread drain its queue, then stop the threads. */
        pthread_mutex_lock(&edge->jobs_lock);
        atomic_store(&edge->stopping, true);
        pthread_mutex_unlock(&edge->jobs_lock);
        edge__join(edge);
        /* Answers resumed above still need a moment to be written. */
        deadline = clock_mono_ms() + 1000;
        while (atomic_load(&edge->inflight) > 0 && clock_mono_ms() < deadline) {
                struct timespec ts = {0, 10 * 1000000L};
                nanosleep(&ts, NULL);
        }
        MHD_stop_daemon(edge->daemon);
        edge->daemon = NULL;
}

void edge_destroy(edge_t *edge) {
        if (!edge)
                return;
        if (edge->daemon)
                edge_stop(edge);
        atomic_store(&edge->stopping, true);
        edge__join(edge);
        bus_consumer_destroy(edge->listener);
        edge__follower_close(edge);
        facts_destroy(edge->facts);
        free(edge->query_ids);
        pthread_mutex_destroy(&edge->query_lock);
        bus_destroy(edge->bus);
        guard_destroy(edge->guard);
        for (size_t i = 0; i < edge->n_cors; i++)
                free(edge->cors[i]);
        free(edge->cors);
        store_destroy(edge->store);
        pending_destroy(edge->pending);
        stream_hub_destroy(edge->hub);
        free(edge->openapi);
        free(edge->asyncapi);
        free(edge->commands);
        pthread_cond_destroy(&edge->start_cond);
        pthread_mutex_destroy(&edge->start_lock);
        pthread_cond_destroy(&edge->jobs_cond);
        pthread_mutex_destroy(&edge->jobs_lock);
        free(edge);
}

/* The embedded schemas plus extra sources (a test fixture's). */
static schema_set_t *edge__schemas(const schema_source_t *extra, size_t n_extra,
                                   char *errstr, size_t errlen) {
        schema_source_t *all;
        schema_set_t *set = NULL;
        if (!n_extra)
                return service_load_schemas(errstr, errlen);
        all = xcalloc(schemas_embedded_count + n_extra, sizeof(*all));
        memcpy(all, schemas_embedded, schemas_embedded_count * sizeof(*all));
        memcpy(all + schemas_embedded_count, extra, n_extra * sizeof(*all));
        if (schema_set_load(&set, all, schemas_embedded_count + n_extra, errstr,
                            errlen) != SCHEMA_OK)
                set = NULL;
        free(all);
        return set;
}

int edge_run(const char *program, int argc, char **argv,
             const schema_source_t *extra, size_t n_extra) {
        config_t cfg;
        char errstr[512] = "";
        schema_set_t *schemas = NULL;
        edge_t *edge = NULL;
        int status = 1;

        config_load_or_exit(&cfg, CONFIG_SCOPE_EDGE, program, argc, argv, NULL);
        log_init((log_level_t)cfg.log_level, program);
        log_set_group("edge");
        service_install_signals();
        schemas = edge__schemas(extra, n_extra, errstr, sizeof(errstr));
        if (!schemas)
                goto out;
        edge = edge_new(&cfg, schemas, errstr, sizeof(errstr));
        if (edge)
                edge->standalone = true;
        if (!edge || edge_start(edge, errstr, sizeof(errstr)))
                goto out;
        log_info("%s %s started (pid %ld)", program, OMNIFY_VERSION,
                 (long)getpid());
        while (!atomic_load(&service_stop)) {
                struct timespec ts = {0, 50 * 1000000L};
                if (edge_failed(edge, errstr, sizeof(errstr)))
                        goto out;
                nanosleep(&ts, NULL);
        }
        log_info("stopping: draining requests in flight");
        edge_stop(edge);
        status = 0;
out:
        if (status && errstr[0])
                log_error("%s", errstr);
        /* An error naming a setting is a configuration error (exit 2), even
         * when only the cluster showed it (a reply partition past the end). */
        if (status && strncmp(errstr, "OMNIFY_", 7) == 0)
                status = 2;
        edge_destroy(edge);
        schema_set_destroy(schemas);
        config_deinit(&cfg);
        return status;
}

int edge_main(int argc, char **argv) {
        return edge_run("omnify-edge", argc, argv, NULL, 0);
}
