/*
 * runtime_parts.c - what the runtime runs for a group besides its loops:
 * the process's outbound HTTP client (one for every group of a process,
 * counted by reference), the group's timer service and its outboxes (see
 * runtime.h for the contract, httpc.h, timer.h and outbox.h for the parts).
 *
 * Order at shutdown: the outboxes and the timer service stop before the
 * group's shutdown hook frees what their kinds use, and the last runtime
 * of the process stops the HTTP client after them.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "alloc.h"
#include "log.h"
#include "rt_internal.h"

/* ---------------------------------------------------------------------------
 * The process's HTTP client
 * ------------------------------------------------------------------------ */

static pthread_mutex_t rt__http_lock = PTHREAD_MUTEX_INITIALIZER;
static httpc_t *rt__http;  /* under rt__http_lock */
static int rt__http_users; /* runtimes holding it, same */

httpc_t *runtime_http(runtime_t *rt) {
        httpc_t *client;
        pthread_mutex_lock(&rt__http_lock);
        if (!rt__http) {
                const config_t *cfg = rt->cfg;
                httpc_opts_t o = {
                        .max_host_concurrency = cfg->httpc_host_concurrency,
                        .host_rate_per_s = cfg->httpc_host_rate_per_s,
                        .host_burst = cfg->httpc_host_burst,
                        .max_waiting = cfg->httpc_max_waiting,
                        .max_response_bytes =
                                (size_t)cfg->httpc_max_response_bytes,
                        .max_connections = cfg->httpc_max_connections,
                };
                char errstr[256];
                rt__http = httpc_new(&o, errstr, sizeof(errstr));
                if (!rt__http)
                        log_error("outbound HTTP client: %s", errstr);
        }
        if (rt__http && !atomic_exchange(&rt->http_ref, true))
                rt__http_users++;
        client = rt__http;
        pthread_mutex_unlock(&rt__http_lock);
        return client;
}

static void rt__http_release(runtime_t *rt) {
        httpc_t *last = NULL;
        if (!atomic_exchange(&rt->http_ref, false))
                return;
        pthread_mutex_lock(&rt__http_lock);
        if (--rt__http_users == 0) {
                last = rt__http;
                rt__http = NULL;
        }
        pthread_mutex_unlock(&rt__http_lock);
        httpc_destroy(last);
}

httpc_t *rt_http(const rt_ctx_t *ctx) {
        return runtime_http(ctx->rt);
}

/* ---------------------------------------------------------------------------
 * Timers and outboxes
 * ------------------------------------------------------------------------ */

timer_service_t *runtime_timers(const runtime_t *rt) {
        return rt->timers;
}

timer_service_t *rt_timers(const rt_ctx_t *ctx) {
        return ctx->rt->timers;
}

bool rt__parts_new(runtime_t *rt, char *errstr, size_t errlen) {
        const config_t *cfg = rt->cfg;
        timer_opts_t o = {
                .cfg = cfg,
                .store = rt->store,
                .bus = rt->bus,
                .group = rt->def->name,
                .db = runtime_db(rt),
                .poll_ms = cfg->timer_poll_ms,
                .batch = cfg->timer_batch,
                .keep_s = cfg->timer_keep_s,
                .horizon_ms = cfg->timer_horizon_ms,
        };
        if (!rt->def->timers)
                return true;
        rt->timers = timer_service_new(&o, errstr, errlen);
        return rt->timers != NULL;
}

void rt__parts_start(runtime_t *rt) {
        char errstr[256];
        if (rt->timers && rt->bus &&
            timer_service_start(rt->timers, errstr, sizeof(errstr)))
                log_error("timers of %s: %s", rt->def->name, errstr);
}

outbox_t *runtime_outbox_new(runtime_t *rt, const outbox_opts_t *opts,
                             char *errstr, size_t errlen) {
        const config_t *cfg = rt->cfg;
        outbox_opts_t o = *opts;
        outbox_t *ob;
        o.cfg = cfg;
        o.store = rt->store;
        o.bus = rt->bus;
        o.http = rt->bus ? runtime_http(rt) : NULL;
        o.group = rt->def->name;
        o.db = runtime_db(rt);
        o.poll_ms = o.poll_ms ? o.poll_ms : cfg->outbox_poll_ms;
        o.batch = o.batch ? o.batch : cfg->outbox_batch;
        o.inflight = o.inflight ? o.inflight : cfg->outbox_inflight;
        o.lease_ms = o.lease_ms ? o.lease_ms : cfg->outbox_lease_ms;
        o.keep_s = o.keep_s ? o.keep_s : cfg->outbox_keep_s;
        if (rt->bus && !o.http) {
                snprintf(errstr, errlen, "no outbound HTTP client");
                return NULL;
        }
        ob = outbox_new(&o, errstr, errlen);
        if (!ob)
                return NULL;
        if (o.http && outbox_start(ob, errstr, errlen)) {
                outbox_destroy(ob);
                return NULL;
        }
        rt->outboxes = xrealloc(rt->outboxes,
                                (rt->n_outboxes + 1) * sizeof(*rt->outboxes));
        rt->outboxes[rt->n_outboxes++] = ob;
        return ob;
}

runtime_mailbox_t *runtime_mailbox_new(runtime_t *rt, const char *index_prefix,
                                       char *errstr, size_t errlen) {
        const mail_settings_t *ms = runtime_settings(rt, &mail_settings);
        runtime_mailbox_t *m = xcalloc(1, sizeof(*m));
        mail_opts_t mo = {ms->base_url, ms->api_key, ms->from, rt->def->name};
        outbox_opts_t oo = {0};

        if (!(m->mail = mail_new(&mo, errstr, errlen)))
                goto fail;
        m->kinds[0] = mail_kind(m->mail);
        oo.collection = "mail_outbox";
        oo.index_prefix = index_prefix;
        oo.kinds = m->kinds;
        oo.n_kinds = 1;
        oo.hold = !mail_enabled(m->mail);
        if (!(m->outbox = runtime_outbox_new(rt, &oo, errstr, errlen)))
                goto fail;
        if (oo.hold)
                log_warn("mail is disabled (OMNIFY_MAIL_API_KEY is empty): "
                         "%s's mails stay queued in the outbox",
                         rt->def->name);
        return m;
fail:
        runtime_mailbox_free(m);
        return NULL;
}

void runtime_mailbox_free(runtime_mailbox_t *m) {
        if (!m)
                return;
        mail_destroy(m->mail);
        free(m);
}

void rt__parts_destroy(runtime_t *rt) {
        for (size_t i = 0; i < rt->n_outboxes; i++)
                outbox_destroy(rt->outboxes[i]);
        free(rt->outboxes);
        rt->outboxes = NULL;
        rt->n_outboxes = 0;
        timer_service_destroy(rt->timers);
        rt->timers = NULL;
        rt__http_release(rt);
}
