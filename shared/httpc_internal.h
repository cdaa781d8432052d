/*
 * httpc_internal.h - what the files of the outbound HTTP client share
 * (httpc.c: the client, its hosts and its thread; httpc_call.c: a call's
 * life, its tries and its end; httpc_policy.c: the rules).
 */
#ifndef OMNIFY_HTTPC_INTERNAL_H
#define OMNIFY_HTTPC_INTERNAL_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "httpc.h"
#include "metrics.h"

#define HTTPC_SPARE_HANDLES 16
#define HTTPC_HOST_MAX 256
#define HTTPC_ROUTE_MAX 256

typedef struct httpc_host {
        struct httpc_host *next;
        char key[HTTPC_HOST_MAX];
        int max_concurrency; /* 0: the client's */
        double rate_per_s;   /* < 0: the client's */
        int burst;           /* 0: the client's */
        double tokens;
        uint64_t refilled_ms; /* monotonic */
        uint64_t paused_until_ms;
        int inflight;
        metrics_counter_t *by_class[5]; /* 2xx 3xx 4xx 5xx error */
        metrics_counter_t *retries, *rate_limited;
        metrics_histogram_t *seconds;
} httpc_host_t;

typedef struct httpc_call {
        struct httpc_call *prev, *next;
        httpc_host_t *host;
        httpc_request_t req; /* pointing into the copies below */
        char method[16];
        char *url;
        char *idempotency_key;
        char route[HTTPC_ROUTE_MAX];
        struct curl_slist *headers;
        char *body;
        size_t body_len;
        size_t max_bytes;
        httpc_done_fn done;
        void *arg;
        uint64_t begin_ms, try_ms, not_before_ms; /* monotonic */
        CURL *easy;
        /* The answer being read. */
        char *rbody;
        size_t rlen, rcap;
        char *rhead;
        size_t hlen, hcap;
        bool too_large, no_memory;
        httpc_response_t resp;
} httpc_call_t;

struct httpc {
        int max_concurrency;
        double rate_per_s;
        int burst;
        int max_waiting;
        size_t max_bytes;
        char *user_agent;
        char *ca_file;
        CURLM *multi;
        pthread_t thread;
        pthread_mutex_t lock;  /* guards incoming, hosts, n_calls */
        httpc_call_t incoming; /* sentinels of circular lists */
        httpc_call_t waiting;  /* thread only */
        httpc_call_t running;  /* thread only */
        int n_calls;           /* submitted and not ended */
        atomic_bool stopping;
        httpc_host_t *hosts;
        size_t n_hosts;
        CURL *spare[HTTPC_SPARE_HANDLES];
        int n_spare;
        metrics_counter_t *inflight_gauge, *waiting_gauge;
};

/* ---------------------------------------------------------------------------
 * Lists of calls: circular, with a sentinel
 * ------------------------------------------------------------------------ */

static inline void httpc__list_init(httpc_call_t *s) {
        s->prev = s->next = s;
}

static inline bool httpc__list_empty(const httpc_call_t *s) {
        return s->next == s;
}

static inline void httpc__list_remove(httpc_call_t *c) {
        c->prev->next = c->next;
        c->next->prev = c->prev;
        c->prev = c->next = c;
}

static inline void httpc__list_push(httpc_call_t *s, httpc_call_t *c) {
        c->prev = s->prev;
        c->next = s;
        s->prev->next = c;
        s->prev = c;
}

/* ---------------------------------------------------------------------------
 * httpc.c
 * ------------------------------------------------------------------------ */

/* The host of key, made on first use. Lock held. */
httpc_host_t *httpc__host(httpc_t *client, const char *key);

/* ---------------------------------------------------------------------------
 * httpc_call.c: the client's thread only, unless said
 * ------------------------------------------------------------------------ */

/* A call copied out of req (any thread; takes the lock for its host). */
httpc_err_t httpc__call_new(httpc_t *client, const httpc_request_t *req,
                            httpc_done_fn done, void *arg, httpc_call_t **out);

/* Free a call and what it holds (its easy handle kept as a spare). */
void httpc__call_free(httpc_t *client, httpc_call_t *c);

/* End a call that has no try running with err: its callback runs. */
void httpc__call_fail(httpc_t *client, httpc_call_t *c, httpc_err_t err);

/* Start the call's next try on the multi handle; false when curl refused. */
bool httpc__call_start(httpc_t *client, httpc_call_t *c);

/* A try ended with rc: read the answer, then queue a retry or end. */
void httpc__call_tried(httpc_t *client, httpc_call_t *c, CURLcode rc);

/* A CURLcode as one of ours. */
httpc_err_t httpc__translate(CURLcode rc);

/* s is a non-empty RFC 9110 token of at most max bytes. */
bool httpc__token(const char *s, size_t max);

/* A try of this request may be repeated without a second effect: the
 * method is not POST or PATCH, or an idempotency key goes with it. */
bool httpc__safe(const char *method, const char *idempotency_key);

#endif
