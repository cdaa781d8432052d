/*
 * runtime.c - a group's runtime: set-up, the loops' threads, operations
 * answers (see runtime.h; the loops are rt_loop.c, a message's handling
 * rt_job.c, the handler API rt_ctx.c, its outputs rt_out.c).
 */
#include "runtime.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "backoff.h"
#include "heartbeat.h"
#include "log.h"
#include "oplog.h"
#include "rt_internal.h"

/* ---------------------------------------------------------------------------
 * Set-up
 * ------------------------------------------------------------------------ */

/* Every command handler needs a schema, and every subscription a name and
 * topics: a table entry without one is a build mistake worth failing
 * loudly for. */
static bool rt__check_def(const group_def_t *def, const schema_set_t *schemas,
                          char *errstr, size_t errlen) {
        for (size_t i = 0; i < def->n_handlers; i++) {
                const group_handler_t *h = &def->handlers[i];
                if (!schema_find(schemas, slice_of(h->type))) {
                        snprintf(errstr, errlen,
                                 "group %s: handler '%s' has no schema",
                                 def->name, h->type);
                        return false;
                }
                if (!h->fn == !h->batch) {
                        snprintf(errstr, errlen,
                                 "group %s: handler '%s' needs exactly one of "
                                 "fn and batch",
                                 def->name, h->type);
                        return false;
                }
        }
        for (size_t s = 0; s < def->n_subscriptions; s++) {
                const group_subscription_t *sub = &def->subscriptions[s];
                if (!sub->name || !sub->topics || !sub->topics[0] ||
                    !sub->n_handlers) {
                        snprintf(errstr, errlen,
                                 "group %s: subscription %zu needs a name, "
                                 "topics and handlers",
                                 def->name, s);
                        return false;
                }
        }
        return true;
}

/* prefix + each name, for a loop; n receives the count. */
static char **rt__prefixed(const config_t *cfg, const char *const *names,
                           size_t *n) {
        char **out;
        size_t k = 0;
        while (names[k])
                k++;
        out = xcalloc(k ? k : 1, sizeof(char *));
        for (size_t i = 0; i < k; i++) {
                char topic[256];
                bus_topic(cfg, names[i], topic, sizeof(topic));
                out[i] = xstrdup(topic);
        }
        *n = k;
        return out;
}

static void rt__free_names(char **names, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
}

/* The topics the group needs exist (commands first: its partition count
 * places the replies of rt_request). */
static bool rt__check_topics(runtime_t *rt, char *errstr, size_t errlen) {
        const group_def_t *def = rt->def;
        const char **names;
        size_t n = 3;
        bus_err_t berr;
        for (size_t s = 0; s < def->n_subscriptions; s++)
                for (size_t t = 0; def->subscriptions[s].topics[t]; t++)
                        n++;
        names = xcalloc(n, sizeof(char *));
        names[0] = rt->commands_topic;
        names[1] = rt->events_topic;
        names[2] = rt->dlq_topic;
        n = 3;
        for (size_t s = 0; s < def->n_subscriptions; s++) {
                for (size_t t = 0; def->subscriptions[s].topics[t]; t++) {
                        char topic[256];
                        bus_topic(rt->cfg, def->subscriptions[s].topics[t],
                                  topic, sizeof(topic));
                        names[n++] = xstrdup(topic);
                }
        }
        berr = bus_check_topics(rt->bus, names, n, &rt->commands_partitions,
                                errstr, errlen);
        for (size_t i = 3; i < n; i++)
                free((char *)names[i]);
        free(names);
        if (berr != BUS_OK) {
                size_t len = strlen(errstr);
                if (berr == BUS_UNKNOWN_TOPIC)
                        snprintf(errstr + len, errlen - len,
                                 " (group %s; create them with: omnify topics "
                                 "apply)",
                                 def->name);
                return false;
        }
        return true;
}

static bool rt__make_loops(runtime_t *rt, char *errstr, size_t errlen) {
        const group_def_t *def = rt->def;
        char group_id[256];
        const char *topics[1] = {rt->commands_topic};

        /* The consumer group carries the topic prefix, so deployments that
         * share a cluster under different prefixes never share a group. */
        snprintf(group_id, sizeof(group_id), "%s%s", rt->cfg->topic_prefix,
                 def->name);
        rt->commands = rt__loop_new(rt, "commands", true, def->handlers,
                                    def->n_handlers, topics, 1, group_id,
                                    def->concurrency, errstr, errlen);
        if (!rt->commands)
                return false;
        rt->subs = xcalloc(def->n_subscriptions ? def->n_subscriptions : 1,
                           sizeof(rt_loop_t *));
        for (size_t s = 0; s < def->n_subscriptions; s++) {
                const group_subscription_t *sub = &def->subscriptions[s];
                size_t n;
                char **names = rt__prefixed(rt->cfg, sub->topics, &n);
                snprintf(group_id, sizeof(group_id), "%s%s.%s",
                         rt->cfg->topic_prefix, def->name, sub->name);
                rt->subs[s] = rt__loop_new(
                        rt, sub->name, false, sub->handlers, sub->n_handlers,
                        (const char *const *)names, n, group_id,
                        sub->concurrency, errstr, errlen);
                rt__free_names(names, n);
                if (!rt->subs[s])
                        return false;
                rt->n_subs++;
        }
        return true;
}

runtime_t *runtime_new(const group_def_t *def, const config_t *cfg,
                       const schema_set_t *schemas, bus_t *bus, store_t *store,
                       runtime_mode_t mode, char *errstr, size_t errlen) {
        runtime_t *rt = xcalloc(1, sizeof(*rt));
        char name[128], labels[256];

        rt->def = def;
        rt->cfg = cfg;
        rt->schemas = schemas;
        rt->bus = bus;
        rt->store = store;
        rt->mode = mode;
        rt->started_ms = clock_mono_ms();
        atomic_init(&rt->initialised, false);
        if (gethostname(rt->host, sizeof(rt->host)) != 0)
                snprintf(rt->host, sizeof(rt->host), "unknown");
        rt->host[sizeof(rt->host) - 1] = '\0';
        if (cfg->instance_id[0])
                snprintf(rt->instance, sizeof(rt->instance), "%s",
                         cfg->instance_id);
        else
                snprintf(rt->instance, sizeof(rt->instance), "%s-%ld", rt->host,
                         (long)getpid());
        if (!rt__check_def(def, schemas, errstr, errlen))
                goto fail;

        snprintf(name, sizeof(name), "%s.commands", def->name);
        bus_topic(cfg, name, rt->commands_topic, sizeof(rt->commands_topic));
        snprintf(name, sizeof(name), "%s.events", def->name);
        bus_topic(cfg, name, rt->events_topic, sizeof(rt->events_topic));
        snprintf(name, sizeof(name), "%s.dlq", def->name);
        bus_topic(cfg, name, rt->dlq_topic, sizeof(rt->dlq_topic));
        if (bus && !rt__check_topics(rt, errstr, errlen))
                goto fail;

        snprintf(labels, sizeof(labels), "group=\"%s\"", def->name);
        rt->dlq_total = metrics_counter(
                "omnify_dlq_total", "Messages sent to the dead-letter queue.",
                labels);
        rt->retries_total = metrics_counter(
                "omnify_retries_total",
                "Handler retries after transient errors.", labels);
        rt->duplicates_total = metrics_counter(
                "omnify_redeliveries_total",
                "Commands seen again and answered from the operation log.",
                labels);
        rt->rejoins_total = metrics_counter(
                "omnify_consumer_rejoins_total",
                "Consumers replaced after a fatal error (fenced by the "
                "group).",
                labels);
        if (!rt__make_loops(rt, errstr, errlen) ||
            !rt__parts_new(rt, errstr, errlen))
                goto fail;
        return rt;

fail:
        runtime_destroy(rt);
        return NULL;
}

void runtime_destroy(runtime_t *rt) {
        if (!rt)
                return;
        rt__loop_destroy(rt->commands);
        for (size_t s = 0; s < rt->n_subs; s++)
                rt__loop_destroy(rt->subs[s]);
        free(rt->subs);
        /* Outboxes and timers first: their kinds use the group's state. */
        rt__parts_destroy(rt);
        if (rt->def->shutdown && rt->state)
                rt->def->shutdown(rt->state);
        free(rt);
}

const group_def_t *runtime_def(const runtime_t *rt) {
        return rt->def;
}

const config_t *runtime_config(const runtime_t *rt) {
        return rt->cfg;
}

store_t *runtime_store(const runtime_t *rt) {
        return rt->store;
}

bus_t *runtime_bus(const runtime_t *rt) {
        return rt->bus;
}

const schema_set_t *runtime_schemas(const runtime_t *rt) {
        return rt->schemas;
}

const char *runtime_db(const runtime_t *rt) {
        return rt->def->name;
}

const void *runtime_settings(const runtime_t *rt, const config_table_t *table) {
        const void *v = config_values(rt->cfg, table);
        /* A group reads only tables it declared: the loader saw them. */
        assert(v);
        return v;
}

/* ---------------------------------------------------------------------------
 * Running
 * ------------------------------------------------------------------------ */

/* The operation log's and the group's indexes, then its init hook; each
 * retried while the store is away. False when stopped or init failed for
 * good (*failed). */
static bool rt__start(runtime_t *rt, const atomic_bool *stop, bool *failed) {
        char errstr[512];
        const group_def_t *def = rt->def;
        *failed = false;
        for (int attempt = 0;; attempt++) {
                if (oplog_init(rt->store, errstr, sizeof(errstr)) == STORE_OK &&
                    (!def->indexes ||
                     store_ensure_indexes(rt->store, runtime_db(rt),
                                          def->indexes, errstr,
                                          sizeof(errstr)) == STORE_OK))
                        break;
                log_warn("indexes: %s; retrying", errstr);
                if (backoff_wait(stop, RT_BACKOFF, attempt))
                        return false;
        }
        if (def->init) {
                for (int attempt = 0;; attempt++) {
                        handler_result_t r = def->init(rt, &rt->state, errstr,
                                                       sizeof(errstr));
                        if (r == HANDLER_OK)
                                break;
                        if (r == HANDLER_PERMANENT) {
                                log_error("init failed: %s", errstr);
                                *failed = true;
                                return false;
                        }
                        log_warn("init: %s; retrying", errstr);
                        if (backoff_wait(stop, RT_BACKOFF, attempt))
                                return false;
                }
        }
        atomic_store(&rt->initialised, true);
        return true;
}

typedef struct rt_sub_thread {
        rt_loop_t *loop;
        const atomic_bool *stop;
} rt_sub_thread_t;

static void *rt__sub_main(void *arg) {
        rt_sub_thread_t *st = arg;
        rt__loop_run(st->loop, st->stop);
        return NULL;
}

/* The process's heartbeat for this group (heartbeat.h): who serves it,
 * as which consumer groups. */
static heartbeat_t *rt__heartbeat_start(runtime_t *rt) {
        const char *groups[17];
        size_t n = 0;
        heartbeat_info_t info = {
                .group = rt->def->name,
                .instance = rt->instance,
                .host = rt->host,
                .mode = rt->mode == RUNTIME_MONOLITH ? "monolith"
                                                     : "standalone",
                .consumer_groups = groups,
        };
        if (!rt->bus)
                return NULL;
        groups[n++] = rt->commands->group_id;
        for (size_t s = 0; s < rt->n_subs && n < 16; s++)
                groups[n++] = rt->subs[s]->group_id;
        groups[n] = NULL;
        return heartbeat_start(rt->cfg, rt->bus, &info, &rt->handled);
}

int runtime_run(runtime_t *rt, const atomic_bool *stop) {
        rt_sub_thread_t *subs;
        heartbeat_t *hb;
        bool failed;
        log_set_group(rt->def->name);
        if (!rt__start(rt, stop, &failed))
                return failed ? -1 : 0;
        log_info("consuming %s as %s (%s)%s", rt->commands_topic, rt->instance,
                 rt->mode == RUNTIME_MONOLITH ? "monolith" : "standalone",
                 rt->n_subs ? ", with subscriptions" : "");
        subs = xcalloc(rt->n_subs ? rt->n_subs : 1, sizeof(*subs));
        for (size_t s = 0; s < rt->n_subs; s++) {
                subs[s].loop = rt->subs[s];
                subs[s].stop = stop;
                if (pthread_create(&rt->subs[s]->thread, NULL, rt__sub_main,
                                   &subs[s]) == 0)
                        rt->subs[s]->thread_started = true;
                else
                        log_error("cannot start the thread of %s",
                                  rt->subs[s]->group_id);
        }
        rt__parts_start(rt);
        hb = rt__heartbeat_start(rt);
        rt__loop_run(rt->commands, stop);
        for (size_t s = 0; s < rt->n_subs; s++)
                if (rt->subs[s]->thread_started)
                        pthread_join(rt->subs[s]->thread, NULL);
        heartbeat_stop(hb);
        free(subs);
        return 0;
}

/* ---------------------------------------------------------------------------
 * Operations endpoints
 * ------------------------------------------------------------------------ */

void runtime_ops_answer(runtime_t *rt, const char *what, int *status,
                        char **body, size_t *len, const char **content_type) {
        char buf[256];
        *content_type = "application/json";
        if (strcmp(what, "health") == 0) {
                bool failed = bus_failed(rt->bus);
                *status = failed ? 503 : 200;
                snprintf(buf, sizeof(buf),
                         "{\"status\":\"%s\",\"group\":\"%s\"%s}",
                         failed ? "failed" : "ok", rt->def->name,
                         failed ? ",\"reason\":\"the Kafka producer hit a "
                                  "fatal error\""
                                : "");
        } else if (strcmp(what, "ready") == 0) {
                bool kafka = bus_is_up(rt->bus), store = store_is_up(rt->store);
                bool init = atomic_load(&rt->initialised);
                *status = kafka && store && init ? 200 : 503;
                snprintf(buf, sizeof(buf),
                         "{\"status\":\"%s\",\"group\":\"%s\",\"kafka\":%s,"
                         "\"store\":%s,\"initialised\":%s}",
                         *status == 200 ? "ready" : "not ready", rt->def->name,
                         kafka ? "true" : "false", store ? "true" : "false",
                         init ? "true" : "false");
        } else if (strcmp(what, "metrics") == 0) {
                *status = 200;
                *content_type = "text/plain; version=0.0.4";
                *body = metrics_render(len);
                return;
        } else {
                *status = 404;
                snprintf(buf, sizeof(buf), "{\"status\":\"not found\"}");
        }
        *body = xstrdup(buf);
        *len = strlen(buf);
}
