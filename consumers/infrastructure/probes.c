/*
 * probes.c - the optional dependencies' health endpoints (Kong, Temporal,
 * Airbyte, Metabase: OMNIFY_KONG_URL and the others), asked at each sample
 * in parallel through the process's HTTP client (shared/httpc.h), one try
 * each with a short timeout, so a sample waits at most one probe's time.
 * Each configured one becomes a document of the dependencies collection
 * beside kafka and store ({configured, ok, latency_ms, status, checked_at,
 * error, error_at}); one not configured is absent (its document removed).
 * A 2xx is up; any other status, a timeout or no connection is down, with
 * why.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "infra.h"

#define INFRA_PROBE_TIMEOUT_MS 2000
#define INFRA_PROBE_CONNECT_MS 1000
#define INFRA_N_PROBES 4

typedef struct infra_latch {
        pthread_mutex_t mu;
        pthread_cond_t cv;
        int left;
} infra_latch_t;

typedef struct infra_probe {
        infra_latch_t *latch;
        const char *name, *url;
        bool ok;
        long status;
        int64_t ms;
        char err[200];
} infra_probe_t;

static void infra__probe_done(void *arg, httpc_response_t *resp) {
        infra_probe_t *p = arg;
        p->ms = resp->duration_ms;
        p->status = resp->status;
        if (resp->err != HTTPC_OK)
                snprintf(p->err, sizeof(p->err), "%s",
                         httpc_strerror(resp->err));
        else if (resp->status < 200 || resp->status > 299)
                snprintf(p->err, sizeof(p->err), "answered HTTP %ld",
                         resp->status);
        else
                p->ok = true;
        httpc_response_deinit(resp);
        pthread_mutex_lock(&p->latch->mu);
        if (--p->latch->left == 0)
                pthread_cond_signal(&p->latch->cv);
        pthread_mutex_unlock(&p->latch->mu);
}

/* Start every configured probe; wait for their ends. */
static void infra__probe_all(httpc_t *http, infra_probe_t *p, size_t n) {
        infra_latch_t latch = {PTHREAD_MUTEX_INITIALIZER,
                               PTHREAD_COND_INITIALIZER, 0};
        for (size_t i = 0; i < n; i++) {
                httpc_request_t req = {0};
                httpc_err_t err;
                if (!p[i].url[0])
                        continue;
                p[i].latch = &latch;
                if (!http) {
                        snprintf(p[i].err, sizeof(p[i].err),
                                 "no HTTP client in this process");
                        continue;
                }
                req.method = "GET";
                req.url = p[i].url;
                req.timeout_ms = INFRA_PROBE_TIMEOUT_MS;
                req.connect_timeout_ms = INFRA_PROBE_CONNECT_MS;
                req.max_response_bytes = 64 * 1024;
                req.retry.attempts = 1;
                req.retry.budget_ms = INFRA_PROBE_TIMEOUT_MS;
                pthread_mutex_lock(&latch.mu);
                latch.left++;
                pthread_mutex_unlock(&latch.mu);
                err = httpc_submit(http, &req, infra__probe_done, &p[i]);
                if (err != HTTPC_OK) {
                        snprintf(p[i].err, sizeof(p[i].err), "%s",
                                 httpc_strerror(err));
                        pthread_mutex_lock(&latch.mu);
                        latch.left--;
                        pthread_mutex_unlock(&latch.mu);
                }
        }
        pthread_mutex_lock(&latch.mu);
        while (latch.left > 0)
                pthread_cond_wait(&latch.cv, &latch.mu);
        pthread_mutex_unlock(&latch.mu);
        pthread_cond_destroy(&latch.cv);
        pthread_mutex_destroy(&latch.mu);
}

void infra_dep_put(store_bulk_t *b, const char *name, bool ok, int64_t ms,
                   long status, const char *err, uint64_t now) {
        bson_t filter = BSON_INITIALIZER, up = BSON_INITIALIZER, set;
        BSON_APPEND_UTF8(&filter, "_id", name);
        BSON_APPEND_DOCUMENT_BEGIN(&up, "$set", &set);
        BSON_APPEND_BOOL(&set, "configured", true);
        BSON_APPEND_BOOL(&set, "ok", ok);
        BSON_APPEND_INT64(&set, "latency_ms", ms);
        if (status >= 0)
                BSON_APPEND_INT64(&set, "status", (int64_t)status);
        BSON_APPEND_INT64(&set, "checked_at", (int64_t)now);
        if (!ok) {
                BSON_APPEND_UTF8(&set, "error", err);
                BSON_APPEND_INT64(&set, "error_at", (int64_t)now);
        }
        bson_append_document_end(&up, &set);
        store_bulk_update(b, &filter, &up, STORE_UPSERT);
        bson_destroy(&filter);
        bson_destroy(&up);
}

void infra_probe_deps(rt_ctx_t *ctx, infra_state_t *st, store_bulk_t *b,
                      uint64_t now) {
        infra_probe_t p[INFRA_N_PROBES] = {
                {.name = "kong", .url = st->set->kong_url},
                {.name = "temporal", .url = st->set->temporal_url},
                {.name = "airbyte", .url = st->set->airbyte_url},
                {.name = "metabase", .url = st->set->metabase_url},
        };
        infra__probe_all(rt_http(ctx), p, INFRA_N_PROBES);
        for (size_t i = 0; i < INFRA_N_PROBES; i++) {
                if (p[i].url[0]) {
                        infra_dep_put(b, p[i].name, p[i].ok, p[i].ms,
                                      p[i].status, p[i].err, now);
                } else {
                        bson_t filter = BSON_INITIALIZER;
                        BSON_APPEND_UTF8(&filter, "_id", p[i].name);
                        store_bulk_delete(b, &filter, 0);
                        bson_destroy(&filter);
                }
        }
}
