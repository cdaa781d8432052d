/*
 * httpc.c - the outbound HTTP client and its thread (see httpc.h).
 *
 * One thread owns the libcurl multi handle and every call in it. Callers
 * hand calls over through the incoming list (under the lock) and wake the
 * thread with curl_multi_wakeup. Each turn of the loop the thread:
 *   1. takes the incoming calls into its waiting list (in order);
 *   2. ends calls whose cancel flag is up;
 *   3. starts the waiting calls whose time has come and whose host has a
 *      free slot and a token (per-host concurrency and token bucket);
 *   4. lets curl move the transfers, and for each finished try decides:
 *      another try later (back to the waiting list with a not-before
 *      time), or the end (the caller's callback);
 *   5. sleeps in curl_multi_poll until a socket, a wake-up, or the next
 *      thing it knows is due (a retry, a token, a host's pause ending).
 * Hosts live in a list under the lock, since callers adjust their limits.
 */
#include <assert.h>
#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "httpc.h"
#include "httpc_internal.h"
#include "log.h"
#include "metrics.h"
#include "msgid.h"

#define HTTPC_DEFAULT_CONCURRENCY 8
#define HTTPC_DEFAULT_WAITING 10000
#define HTTPC_DEFAULT_MAX_BYTES ((size_t)1 << 20)
#define HTTPC_DEFAULT_CONNECTIONS 64
#define HTTPC_MAX_WAIT_MS 200 /* cancel flags are looked at this often */
#define HTTPC_LABELLED_HOSTS 256

/* The client whose thread this is (completion callbacks run there). */
static _Thread_local httpc_t *httpc__self;

static pthread_once_t httpc__curl_once = PTHREAD_ONCE_INIT;
static CURLcode httpc__curl_status = CURLE_OK;

static void httpc__curl_init(void) {
        httpc__curl_status = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---------------------------------------------------------------------------
 * Hosts (lock held)
 * ------------------------------------------------------------------------ */

httpc_host_t *httpc__host(httpc_t *client, const char *key) {
        static const char *const classes[] = {"2xx", "3xx", "4xx", "5xx",
                                              "error"};
        httpc_host_t *h;
        char labels[HTTPC_HOST_MAX + 32], label[HTTPC_HOST_MAX];

        for (h = client->hosts; h; h = h->next)
                if (strcmp(h->key, key) == 0)
                        return h;
        h = xcalloc(1, sizeof(*h));
        snprintf(h->key, sizeof(h->key), "%s", key);
        h->rate_per_s = -1;
        h->tokens = -1; /* full at first use */
        /* Series per host, for the hosts a process calls (configured base
         * URLs); past HTTPC_LABELLED_HOSTS (URLs from users, say) they
         * share "other", so the series stay bounded. */
        snprintf(label, sizeof(label), "%s",
                 client->n_hosts++ < HTTPC_LABELLED_HOSTS ? key : "other");
        for (char *c = label; *c; c++)
                if (!isalnum((unsigned char)*c) && !strchr(".-:[]", *c))
                        *c = '_';
        for (size_t i = 0; i < 5; i++) {
                snprintf(labels, sizeof(labels), "host=\"%s\",class=\"%s\"",
                         label, classes[i]);
                h->by_class[i] = metrics_counter(
                        "omnify_httpc_requests_total",
                        "Outbound HTTP tries by host and answer class.",
                        labels);
        }
        snprintf(labels, sizeof(labels), "host=\"%s\"", label);
        h->retries = metrics_counter("omnify_httpc_retries_total",
                                     "Outbound HTTP tries made again.", labels);
        h->rate_limited = metrics_counter(
                "omnify_httpc_rate_limited_total",
                "Outbound HTTP answers that asked us to slow down.", labels);
        h->seconds = metrics_histogram("omnify_httpc_request_seconds",
                                       "Outbound HTTP try duration.", labels);
        h->next = client->hosts;
        client->hosts = h;
        return h;
}

static int host_concurrency(const httpc_t *client, const httpc_host_t *h) {
        return h->max_concurrency > 0 ? h->max_concurrency
                                      : client->max_concurrency;
}

static double host_rate(const httpc_t *client, const httpc_host_t *h) {
        return h->rate_per_s >= 0 ? h->rate_per_s : client->rate_per_s;
}

static double host_burst(const httpc_t *client, const httpc_host_t *h) {
        int b = h->burst > 0 ? h->burst : client->burst;
        double r = host_rate(client, h);
        if (b > 0)
                return b;
        return r > 1 ? r : 1;
}

static void host_refill(const httpc_t *client, httpc_host_t *h, uint64_t now) {
        double rate = host_rate(client, h), burst = host_burst(client, h);
        if (rate <= 0)
                return;
        if (h->tokens < 0) {
                h->tokens = burst;
        } else if (now > h->refilled_ms) {
                h->tokens += rate * (double)(now - h->refilled_ms) / 1000.0;
                if (h->tokens > burst)
                        h->tokens = burst;
        }
        h->refilled_ms = now;
}

/* ms until the host may start a call (0: now; -1: waits for a slot). */
static int64_t host_ready_in(const httpc_t *client, httpc_host_t *h,
                             uint64_t now) {
        double rate = host_rate(client, h);
        if (h->paused_until_ms > now)
                return (int64_t)(h->paused_until_ms - now);
        if (h->inflight >= host_concurrency(client, h))
                return -1;
        if (rate <= 0)
                return 0;
        host_refill(client, h, now);
        if (h->tokens >= 1)
                return 0;
        return (int64_t)((1 - h->tokens) * 1000.0 / rate) + 1;
}

void httpc_host_limits(httpc_t *client, const char *host, int max_concurrency,
                       double rate_per_s, int burst) {
        char key[HTTPC_HOST_MAX];
        httpc_host_t *h;

        snprintf(key, sizeof(key), "%s", host);
        for (char *c = key; *c; c++)
                *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
        pthread_mutex_lock(&client->lock);
        h = httpc__host(client, key);
        h->max_concurrency = max_concurrency > 0 ? max_concurrency : 0;
        h->rate_per_s = rate_per_s > 0 ? rate_per_s : -1;
        h->burst = burst > 0 ? burst : 0;
        h->tokens = -1;
        pthread_mutex_unlock(&client->lock);
        httpc_wake(client);
}

void httpc_host_budget(httpc_t *client, const char *host, int64_t remaining,
                       int64_t reset_at_ms) {
        char key[HTTPC_HOST_MAX];
        uint64_t now = clock_mono_ms();
        int64_t until = reset_at_ms - (int64_t)clock_wall_ms();
        httpc_host_t *h;

        snprintf(key, sizeof(key), "%s", host);
        for (char *c = key; *c; c++)
                *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
        pthread_mutex_lock(&client->lock);
        h = httpc__host(client, key);
        if (remaining <= 0 && until > 0) {
                if (now + (uint64_t)until > h->paused_until_ms)
                        h->paused_until_ms = now + (uint64_t)until;
        } else if (remaining > 0 && host_rate(client, h) > 0) {
                host_refill(client, h, now);
                if (h->tokens > (double)remaining)
                        h->tokens = (double)remaining;
        }
        pthread_mutex_unlock(&client->lock);
}

/* ---------------------------------------------------------------------------
 * The thread
 * ------------------------------------------------------------------------ */

static bool call_cancelled(const httpc_call_t *c) {
        return c->req.cancel && atomic_load(c->req.cancel);
}

/* End every call whose cancel flag is up. */
static void loop_cancel(httpc_t *client) {
        httpc_call_t *c, *next;

        for (c = client->waiting.next; c != &client->waiting; c = next) {
                next = c->next;
                if (call_cancelled(c))
                        httpc__call_fail(client, c, HTTPC_CANCELLED);
        }
        for (c = client->running.next; c != &client->running; c = next) {
                next = c->next;
                if (!call_cancelled(c))
                        continue;
                curl_multi_remove_handle(client->multi, c->easy);
                pthread_mutex_lock(&client->lock);
                c->host->inflight--;
                pthread_mutex_unlock(&client->lock);
                metrics_add(client->inflight_gauge, -1);
                httpc__call_fail(client, c, HTTPC_CANCELLED);
        }
}

/* Start what may start; returns ms until something waiting may start
 * (INT64_MAX: nothing known). */
static int64_t loop_start(httpc_t *client) {
        uint64_t now = clock_mono_ms();
        int64_t wait = INT64_MAX;
        httpc_call_t *c, *next;

        for (c = client->waiting.next; c != &client->waiting; c = next) {
                int64_t in;
                next = c->next;
                if (c->not_before_ms > now) {
                        in = (int64_t)(c->not_before_ms - now);
                        wait = in < wait ? in : wait;
                        continue;
                }
                if (c->resp.attempts == 0 && c->req.retry.budget_ms > 0 &&
                    now > c->begin_ms + (uint64_t)c->req.retry.budget_ms) {
                        httpc__call_fail(client, c, HTTPC_NOT_STARTED);
                        continue;
                }
                pthread_mutex_lock(&client->lock);
                in = host_ready_in(client, c->host, now);
                if (in == 0) {
                        if (host_rate(client, c->host) > 0)
                                c->host->tokens -= 1;
                        c->host->inflight++;
                }
                pthread_mutex_unlock(&client->lock);
                if (in > 0)
                        wait = in < wait ? in : wait;
                if (in != 0)
                        continue; /* -1: a slot frees on a transfer's end */
                httpc__list_remove(c);
                metrics_add(client->inflight_gauge, 1);
                if (httpc__call_start(client, c)) {
                        httpc__list_push(&client->running, c);
                        continue;
                }
                pthread_mutex_lock(&client->lock);
                c->host->inflight--;
                pthread_mutex_unlock(&client->lock);
                metrics_add(client->inflight_gauge, -1);
                httpc__list_push(&client->waiting, c);
                httpc__call_fail(client, c, HTTPC_ERROR);
        }
        return wait;
}

/* Move the calls handed over into the waiting list, in order. */
static void loop_take(httpc_t *client) {
        pthread_mutex_lock(&client->lock);
        while (!httpc__list_empty(&client->incoming)) {
                httpc_call_t *c = client->incoming.next;
                httpc__list_remove(c);
                httpc__list_push(&client->waiting, c);
        }
        pthread_mutex_unlock(&client->lock);
}

static void loop_stop(httpc_t *client) {
        while (!httpc__list_empty(&client->running)) {
                httpc_call_t *c = client->running.next;
                curl_multi_remove_handle(client->multi, c->easy);
                pthread_mutex_lock(&client->lock);
                c->host->inflight--;
                pthread_mutex_unlock(&client->lock);
                metrics_add(client->inflight_gauge, -1);
                httpc__call_fail(client, c, HTTPC_STOPPED);
        }
        while (!httpc__list_empty(&client->waiting))
                httpc__call_fail(client, client->waiting.next, HTTPC_STOPPED);
}

static void *httpc__main(void *arg) {
        httpc_t *client = arg;

        httpc__self = client;
        log_set_group("httpc");
        for (;;) {
                int running, left;
                long curl_ms = -1;
                int64_t wait;
                CURLMsg *msg;

                loop_take(client);
                if (atomic_load(&client->stopping))
                        break;
                loop_cancel(client);
                wait = loop_start(client);
                curl_multi_perform(client->multi, &running);
                while ((msg = curl_multi_info_read(client->multi, &left))) {
                        httpc_call_t *c = NULL;
                        if (msg->msg != CURLMSG_DONE)
                                continue;
                        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
                                          (char **)&c);
                        httpc__call_tried(client, c, msg->data.result);
                        wait = 0; /* a slot freed, or a retry is queued */
                }
                curl_multi_timeout(client->multi, &curl_ms);
                if (curl_ms >= 0 && curl_ms < wait)
                        wait = curl_ms;
                if (wait > HTTPC_MAX_WAIT_MS)
                        wait = HTTPC_MAX_WAIT_MS;
                if (wait > 0)
                        curl_multi_poll(client->multi, NULL, 0, (int)wait,
                                        NULL);
        }
        loop_take(client); /* calls submitted while stopping */
        loop_stop(client);
        log_context_clear();
        return NULL;
}

/* ---------------------------------------------------------------------------
 * Public API
 * ------------------------------------------------------------------------ */

httpc_t *httpc_new(const httpc_opts_t *opts, char *errstr, size_t errlen) {
        httpc_opts_t o = opts ? *opts : (httpc_opts_t){0};
        httpc_t *client;
        char ua[64];

        pthread_once(&httpc__curl_once, httpc__curl_init);
        if (httpc__curl_status != CURLE_OK) {
                snprintf(errstr, errlen, "libcurl: %s",
                         curl_easy_strerror(httpc__curl_status));
                return NULL;
        }
        if (o.host_rate_per_s < 0 || o.max_host_concurrency < 0 ||
            o.host_burst < 0 || o.max_waiting < 0 || o.max_connections < 0) {
                snprintf(errstr, errlen, "httpc: negative limits");
                return NULL;
        }
        client = xcalloc(1, sizeof(*client));
        client->max_concurrency = o.max_host_concurrency
                                          ? o.max_host_concurrency
                                          : HTTPC_DEFAULT_CONCURRENCY;
        client->rate_per_s = o.host_rate_per_s;
        client->burst = o.host_burst;
        client->max_waiting =
                o.max_waiting ? o.max_waiting : HTTPC_DEFAULT_WAITING;
        client->max_bytes = o.max_response_bytes ? o.max_response_bytes
                                                 : HTTPC_DEFAULT_MAX_BYTES;
        snprintf(ua, sizeof(ua), "omnify/%s", OMNIFY_VERSION);
        client->user_agent = xstrdup(o.user_agent ? o.user_agent : ua);
        if (o.ca_file)
                client->ca_file = xstrdup(o.ca_file);
        httpc__list_init(&client->incoming);
        httpc__list_init(&client->waiting);
        httpc__list_init(&client->running);
        atomic_init(&client->stopping, false);
        pthread_mutex_init(&client->lock, NULL);
        client->inflight_gauge = metrics_gauge(
                "omnify_httpc_inflight", "Outbound HTTP tries in flight.", "");
        client->waiting_gauge = metrics_gauge(
                "omnify_httpc_calls",
                "Outbound HTTP calls not ended (in flight, queued for a "
                "host, or between tries).",
                "");
        if (!(client->multi = curl_multi_init())) {
                snprintf(errstr, errlen, "libcurl: cannot create a handle");
                goto fail;
        }
        curl_multi_setopt(client->multi, CURLMOPT_MAXCONNECTS,
                          (long)(o.max_connections
                                         ? o.max_connections
                                         : HTTPC_DEFAULT_CONNECTIONS));
        if (pthread_create(&client->thread, NULL, httpc__main, client)) {
                snprintf(errstr, errlen, "httpc: cannot start its thread");
                goto fail;
        }
        return client;
fail:
        if (client->multi)
                curl_multi_cleanup(client->multi);
        pthread_mutex_destroy(&client->lock);
        free(client->user_agent);
        free(client->ca_file);
        free(client);
        return NULL;
}

void httpc_destroy(httpc_t *client) {
        httpc_host_t *h, *next;

        if (!client)
                return;
        atomic_store(&client->stopping, true);
        curl_multi_wakeup(client->multi);
        pthread_join(client->thread, NULL);
        for (int i = 0; i < client->n_spare; i++)
                curl_easy_cleanup(client->spare[i]);
        curl_multi_cleanup(client->multi);
        for (h = client->hosts; h; h = next) {
                next = h->next;
                free(h);
        }
        pthread_mutex_destroy(&client->lock);
        free(client->user_agent);
        free(client->ca_file);
        free(client);
}

void httpc_wake(httpc_t *client) {
        curl_multi_wakeup(client->multi);
}

httpc_err_t httpc_submit(httpc_t *client, const httpc_request_t *req,
                         httpc_done_fn done, void *arg) {
        httpc_call_t *c;
        httpc_err_t err;

        assert(client && req && done);
        if (atomic_load(&client->stopping))
                return HTTPC_STOPPED;
        if ((err = httpc__call_new(client, req, done, arg, &c)))
                return err;
        pthread_mutex_lock(&client->lock);
        if (client->n_calls >= client->max_waiting) {
                pthread_mutex_unlock(&client->lock);
                httpc__call_free(client, c);
                return HTTPC_QUEUE_FULL;
        }
        client->n_calls++;
        httpc__list_push(&client->incoming, c);
        pthread_mutex_unlock(&client->lock);
        metrics_add(client->waiting_gauge, 1);
        curl_multi_wakeup(client->multi);
        return HTTPC_OK;
}

typedef struct httpc_waiter {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool done;
        httpc_response_t *out;
} httpc_waiter_t;

static void httpc__waiter_done(void *arg, httpc_response_t *resp) {
        httpc_waiter_t *w = arg;
        pthread_mutex_lock(&w->lock);
        *w->out = *resp;
        w->done = true;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
}

httpc_err_t httpc_do(httpc_t *client, const httpc_request_t *req,
                     httpc_response_t *resp) {
        httpc_waiter_t w = {.done = false, .out = resp};
        httpc_err_t err;

        /* A callback waiting for a call of its own thread never wakes. */
        assert(httpc__self != client);
        memset(resp, 0, sizeof(*resp));
        resp->retry_after_ms = -1;
        pthread_mutex_init(&w.lock, NULL);
        pthread_cond_init(&w.cond, NULL);
        err = httpc_submit(client, req, httpc__waiter_done, &w);
        if (err) {
                resp->err = err;
                resp->verdict = HTTPC_VERDICT_FAILED;
        } else {
                pthread_mutex_lock(&w.lock);
                while (!w.done)
                        pthread_cond_wait(&w.cond, &w.lock);
                pthread_mutex_unlock(&w.lock);
        }
        pthread_cond_destroy(&w.cond);
        pthread_mutex_destroy(&w.lock);
        return resp->err;
}
