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
#include <curl/curl.h>
#include <openssl/crypto.h>
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
#define HTTPC_DEFAULT_TIMEOUT_MS 10000
#define HTTPC_DEFAULT_CONNECT_MS 2000
#define HTTPC_DEFAULT_ATTEMPTS 3
#define HTTPC_DEFAULT_BACKOFF ((backoff_policy_t){200, 5000})
#define HTTPC_DEFAULT_RETRY_AFTER_CAP_MS 60000
#define HTTPC_MAX_HEADER_BYTES (64 * 1024)
#define HTTPC_MAX_WAIT_MS 200 /* cancel flags are looked at this often */
#define HTTPC_SPARE_HANDLES 16
#define HTTPC_HOST_MAX 256
#define HTTPC_ROUTE_MAX 256

/* ---------------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------------ */

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
        CURL *spare[HTTPC_SPARE_HANDLES];
        int n_spare;
        metrics_counter_t *inflight_gauge, *waiting_gauge;
};

/* The client whose thread this is (completion callbacks run there). */
static _Thread_local httpc_t *httpc__self;

static pthread_once_t httpc__curl_once = PTHREAD_ONCE_INIT;
static CURLcode httpc__curl_status = CURLE_OK;

static void httpc__curl_init(void) {
        httpc__curl_status = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---------------------------------------------------------------------------
 * Lists
 * ------------------------------------------------------------------------ */

static void list_init(httpc_call_t *s) {
        s->prev = s->next = s;
}

static bool list_empty(const httpc_call_t *s) {
        return s->next == s;
}

static void list_remove(httpc_call_t *c) {
        c->prev->next = c->next;
        c->next->prev = c->prev;
        c->prev = c->next = c;
}

static void list_push(httpc_call_t *s, httpc_call_t *c) {
        c->prev = s->prev;
        c->next = s;
        s->prev->next = c;
        s->prev = c;
}

/* ---------------------------------------------------------------------------
 * Hosts (lock held)
 * ------------------------------------------------------------------------ */

static httpc_host_t *host_get(httpc_t *client, const char *key) {
        static const char *const classes[] = {"2xx", "3xx", "4xx", "5xx",
                                              "error"};
        httpc_host_t *h;
        char labels[HTTPC_HOST_MAX + 32];

        for (h = client->hosts; h; h = h->next)
                if (strcmp(h->key, key) == 0)
                        return h;
        h = xcalloc(1, sizeof(*h));
        snprintf(h->key, sizeof(h->key), "%s", key);
        h->rate_per_s = -1;
        h->tokens = -1; /* full at first use */
        for (size_t i = 0; i < 5; i++) {
                snprintf(labels, sizeof(labels), "host=\"%s\",class=\"%s\"",
                         key, classes[i]);
                h->by_class[i] = metrics_counter(
                        "omnify_httpc_requests_total",
                        "Outbound HTTP tries by host and answer class.",
                        labels);
        }
        snprintf(labels, sizeof(labels), "host=\"%s\"", key);
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
        h = host_get(client, key);
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
        h = host_get(client, key);
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
 * Calls: copy in, end
 * ------------------------------------------------------------------------ */

static void call_free(httpc_t *client, httpc_call_t *c) {
        if (c->easy) {
                if (client->n_spare < HTTPC_SPARE_HANDLES) {
                        curl_easy_reset(c->easy);
                        client->spare[client->n_spare++] = c->easy;
                } else {
                        curl_easy_cleanup(c->easy);
                }
        }
        /* The header list holds credentials: wipe it before it is freed. */
        for (struct curl_slist *h = c->headers; h; h = h->next)
                OPENSSL_cleanse(h->data, strlen(h->data));
        curl_slist_free_all(c->headers);
        free(c->url);
        free(c->idempotency_key);
        free(c->body);
        free(c->rbody);
        free(c->rhead);
        httpc_response_deinit(&c->resp);
        free(c);
}

/* What logs may show of a call: "POST api.example.com/v3/mail/send". */
#define CALL_FMT "%s %s%s"
#define CALL_ARGS(c) (c)->method, (c)->host->key, (c)->route

/* The call is over: hand the response to its caller and free the call.
 * Thread only; the lock is not held. */
static void call_end(httpc_t *client, httpc_call_t *c) {
        httpc_response_t resp = c->resp;

        memset(&c->resp, 0, sizeof(c->resp));
        resp.duration_ms = (int64_t)(clock_mono_ms() - c->begin_ms);
        if (resp.verdict == HTTPC_VERDICT_DEFAULT)
                resp.verdict = HTTPC_VERDICT_FAILED;
        if (resp.err == HTTPC_OK)
                LOG_AT(resp.verdict == HTTPC_VERDICT_OK ? LOG_LEVEL_DEBUG
                                                        : LOG_LEVEL_INFO,
                       "http " CALL_FMT ": HTTP %ld after %d attempt(s) in "
                       "%lld ms",
                       CALL_ARGS(c), resp.status, resp.attempts,
                       (long long)resp.duration_ms);
        else
                log_info("http " CALL_FMT ": %s after %d attempt(s) in "
                         "%lld ms",
                         CALL_ARGS(c), httpc_strerror(resp.err), resp.attempts,
                         (long long)resp.duration_ms);
        pthread_mutex_lock(&client->lock);
        client->n_calls--;
        pthread_mutex_unlock(&client->lock);
        metrics_add(client->waiting_gauge, -1);
        c->done(c->arg, &resp);
        call_free(client, c);
}

/* End a call that has no try running (waiting, or refused at start). */
static void call_fail(httpc_t *client, httpc_call_t *c, httpc_err_t err) {
        list_remove(c);
        httpc_response_deinit(&c->resp);
        c->resp.err = err;
        c->resp.status = 0;
        c->resp.retry_after_ms = -1;
        c->resp.verdict = err == HTTPC_NOT_STARTED ? HTTPC_VERDICT_RETRY
                                                   : HTTPC_VERDICT_FAILED;
        call_end(client, c);
}

static httpc_err_t call_new(httpc_t *client, const httpc_request_t *req,
                            httpc_done_fn done, void *arg, httpc_call_t **out) {
        const char *method = req->method ? req->method : "GET";
        char host[HTTPC_HOST_MAX], path[HTTPC_ROUTE_MAX];
        httpc_call_t *c;
        struct curl_slist *l;
        char line[600];

        if (!req->url || !httpc__token(method, sizeof(c->method) - 1) ||
            !httpc_url_parts(req->url, host, sizeof(host), path, sizeof(path)))
                return HTTPC_BAD_REQUEST;
        if (req->idempotency_key && (strlen(req->idempotency_key) > 255 ||
                                     strpbrk(req->idempotency_key, "\r\n")))
                return HTTPC_BAD_REQUEST;
        if (req->route && (strlen(req->route) >= HTTPC_ROUTE_MAX ||
                           strpbrk(req->route, "?#\r\n")))
                return HTTPC_BAD_REQUEST;
        c = xcalloc(1, sizeof(*c));
        list_init(c);
        snprintf(c->method, sizeof(c->method), "%s", method);
        snprintf(c->route, sizeof(c->route), "%s",
                 req->route ? req->route : path);
        c->url = xstrdup(req->url);
        if (req->idempotency_key)
                c->idempotency_key = xstrdup(req->idempotency_key);
        if (req->body.len) {
                if (!(c->body = try_malloc(req->body.len))) {
                        call_free(client, c);
                        return HTTPC_NO_MEMORY;
                }
                memcpy(c->body, req->body.ptr, req->body.len);
                c->body_len = req->body.len;
        }
        /* Header lines; a caller's Expect is replaced: no 100-continue
         * round trip. */
        for (size_t i = 0; req->headers && i < req->headers->n; i++) {
                if (!(l = curl_slist_append(c->headers,
                                            req->headers->lines[i])))
                        goto nomem;
                c->headers = l;
        }
        if (c->idempotency_key) {
                snprintf(line, sizeof(line), "Idempotency-Key: %s",
                         c->idempotency_key);
                if (!(l = curl_slist_append(c->headers, line)))
                        goto nomem;
                c->headers = l;
        }
        if (!(l = curl_slist_append(c->headers, "Expect:")))
                goto nomem;
        c->headers = l;

        c->req = *req;
        c->req.method = c->method;
        c->req.url = c->url;
        c->req.route = c->route;
        c->req.headers = NULL;
        c->req.body = (slice_t){c->body, c->body_len};
        c->req.idempotency_key = c->idempotency_key;
        if (c->req.timeout_ms <= 0)
                c->req.timeout_ms = HTTPC_DEFAULT_TIMEOUT_MS;
        if (c->req.connect_timeout_ms <= 0)
                c->req.connect_timeout_ms = HTTPC_DEFAULT_CONNECT_MS;
        if (c->req.retry.attempts <= 0)
                c->req.retry.attempts = HTTPC_DEFAULT_ATTEMPTS;
        if (c->req.retry.backoff.base_ms <= 0 &&
            c->req.retry.backoff.cap_ms <= 0)
                c->req.retry.backoff = HTTPC_DEFAULT_BACKOFF;
        if (c->req.retry.retry_after_cap_ms <= 0)
                c->req.retry.retry_after_cap_ms =
                        HTTPC_DEFAULT_RETRY_AFTER_CAP_MS;
        c->max_bytes = req->max_response_bytes ? req->max_response_bytes
                                               : client->max_bytes;
        c->done = done;
        c->arg = arg;
        c->begin_ms = clock_mono_ms();
        c->resp.retry_after_ms = -1;

        pthread_mutex_lock(&client->lock);
        c->host = host_get(client, host);
        pthread_mutex_unlock(&client->lock);
        *out = c;
        return HTTPC_OK;
nomem:
        call_free(client, c);
        return HTTPC_NO_MEMORY;
}

/* ---------------------------------------------------------------------------
 * A try
 * ------------------------------------------------------------------------ */

static size_t call_write(char *ptr, size_t size, size_t n, void *ud) {
        httpc_call_t *c = ud;
        size_t len = size * n;

        if (c->rlen + len > c->max_bytes) {
                c->too_large = true;
                return 0;
        }
        if (c->rlen + len + 1 > c->rcap) {
                size_t cap = c->rcap ? c->rcap : 4096;
                char *p;
                while (cap < c->rlen + len + 1)
                        cap *= 2;
                if (cap > c->max_bytes + 1)
                        cap = c->max_bytes + 1;
                if (!(p = try_realloc(c->rbody, cap))) {
                        c->no_memory = true;
                        return 0;
                }
                c->rbody = p;
                c->rcap = cap;
        }
        memcpy(c->rbody + c->rlen, ptr, len);
        c->rlen += len;
        c->rbody[c->rlen] = '\0';
        return len;
}

static size_t call_header(char *ptr, size_t size, size_t n, void *ud) {
        httpc_call_t *c = ud;
        size_t len = size * n;

        if (len >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
                c->hlen = 0; /* a new answer (after a redirect or a 1xx) */
                return len;
        }
        if (c->hlen + len > HTTPC_MAX_HEADER_BYTES) {
                c->too_large = true;
                return 0;
        }
        if (c->hlen + len + 1 > c->hcap) {
                size_t cap = c->hcap ? c->hcap * 2 : 1024;
                while (cap < c->hlen + len + 1)
                        cap *= 2;
                c->rhead = xrealloc(c->rhead, cap);
                c->hcap = cap;
        }
        memcpy(c->rhead + c->hlen, ptr, len);
        c->hlen += len;
        c->rhead[c->hlen] = '\0';
        return len;
}

/* Start the call's next try. false when curl refused it. */
static bool call_start(httpc_t *client, httpc_call_t *c) {
        CURL *e = c->easy;
        const char *m = c->method;

        if (!e)
                e = client->n_spare ? client->spare[--client->n_spare]
                                    : curl_easy_init();
        if (!e)
                return false;
        c->easy = e;
        c->rlen = c->hlen = 0;
        c->too_large = c->no_memory = false;
        curl_easy_setopt(e, CURLOPT_URL, c->url);
        curl_easy_setopt(e, CURLOPT_PRIVATE, c);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
        if (client->ca_file)
                curl_easy_setopt(e, CURLOPT_CAINFO, client->ca_file);
        curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(e, CURLOPT_USERAGENT, client->user_agent);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->req.timeout_ms);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                         (long)c->req.connect_timeout_ms);
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
                         (curl_off_t)c->max_bytes);
        curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, call_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, call_header);
        curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
        if (c->req.max_redirects > 0) {
                curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
                curl_easy_setopt(e, CURLOPT_MAXREDIRS,
                                 (long)c->req.max_redirects);
                curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        } else {
                curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
        }
        if (strcmp(m, "HEAD") == 0) {
                curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
        } else if (c->body_len || strcmp(m, "POST") == 0) {
                curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                                 (curl_off_t)c->body_len);
                curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body ? c->body : "");
                if (strcmp(m, "POST") != 0)
                        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
        } else if (strcmp(m, "GET") != 0) {
                curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
        }
        if (curl_multi_add_handle(client->multi, e) != CURLM_OK)
                return false;
        c->resp.attempts++;
        c->try_ms = clock_mono_ms();
        return true;
}

static void call_measure(httpc_call_t *c, uint64_t now) {
        long s = c->resp.status;
        int cls = c->resp.err != HTTPC_OK ? 4
                  : s >= 200 && s < 300   ? 0
                  : s >= 300 && s < 400   ? 1
                  : s >= 400 && s < 500   ? 2
                  : s >= 500 && s < 600   ? 3
                                          : 4;
        metrics_add(c->host->by_class[cls], 1);
        metrics_observe_us(c->host->seconds, (now - c->try_ms) * 1000);
}

/* A try ended with rc: read the answer, then try again later or end. */
static void call_tried(httpc_t *client, httpc_call_t *c, CURLcode rc) {
        httpc_host_t *h = c->host;
        httpc_response_t *r = &c->resp;
        uint64_t now = clock_mono_ms();
        httpc_verdict_t v;
        int64_t delay, pause = -1;

        curl_multi_remove_handle(client->multi, c->easy);
        list_remove(c);
        httpc_response_deinit(r);
        r->err = c->too_large   ? HTTPC_TOO_LARGE
                 : c->no_memory ? HTTPC_NO_MEMORY
                                : httpc__translate(rc);
        r->status = 0;
        if (rc == CURLE_OK)
                curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &r->status);
        if (r->err == HTTPC_OK) {
                r->body = c->rbody;
                r->body_len = c->rlen;
        } else {
                free(c->rbody); /* a part of an answer is no answer */
        }
        r->headers = c->rhead;
        r->headers_len = c->hlen;
        c->rbody = c->rhead = NULL;
        c->rcap = c->hcap = 0;
        r->retry_after_ms =
                httpc_parse_retry_after(httpc_response_header(r, "Retry-After"),
                                        (int64_t)clock_wall_ms());
        call_measure(c, now);
        v = httpc_classify(&c->req, r);
        r->verdict = v;
        if (v == HTTPC_VERDICT_RATE_LIMITED)
                metrics_add(h->rate_limited, 1);

        delay = backoff_delay_ms(c->req.retry.backoff, r->attempts - 1);
        if (r->retry_after_ms >= 0) {
                if (r->retry_after_ms > c->req.retry.retry_after_cap_ms)
                        delay = -1; /* longer than we wait: end, say when */
                else if (r->retry_after_ms > delay)
                        delay = r->retry_after_ms;
        }
        if (v == HTTPC_VERDICT_RATE_LIMITED)
                pause = r->retry_after_ms >= 0 ? r->retry_after_ms : delay;
        pthread_mutex_lock(&client->lock);
        h->inflight--;
        if (pause > 0) {
                h->tokens = 0;
                h->refilled_ms = now;
                if (now + (uint64_t)pause > h->paused_until_ms)
                        h->paused_until_ms = now + (uint64_t)pause;
        }
        pthread_mutex_unlock(&client->lock);
        metrics_add(client->inflight_gauge, -1);

        if ((v == HTTPC_VERDICT_RETRY || v == HTTPC_VERDICT_RATE_LIMITED) &&
            delay >= 0 && r->attempts < c->req.retry.attempts &&
            (c->req.retry.budget_ms <= 0 ||
             now + (uint64_t)delay <=
                     c->begin_ms + (uint64_t)c->req.retry.budget_ms) &&
            !atomic_load(&client->stopping)) {
                if (r->err == HTTPC_OK)
                        log_warn("http " CALL_FMT ": HTTP %ld in %lld ms "
                                 "(attempt %d of %d); again in %lld ms",
                                 CALL_ARGS(c), r->status,
                                 (long long)(now - c->try_ms), r->attempts,
                                 c->req.retry.attempts, (long long)delay);
                else
                        log_warn("http " CALL_FMT ": %s in %lld ms "
                                 "(attempt %d of %d); again in %lld ms",
                                 CALL_ARGS(c), httpc_strerror(r->err),
                                 (long long)(now - c->try_ms), r->attempts,
                                 c->req.retry.attempts, (long long)delay);
                metrics_add(h->retries, 1);
                httpc_response_deinit(r);
                c->not_before_ms = now + (uint64_t)delay;
                list_push(&client->waiting, c);
                return;
        }
        call_end(client, c);
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
                        call_fail(client, c, HTTPC_CANCELLED);
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
                call_fail(client, c, HTTPC_CANCELLED);
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
                        call_fail(client, c, HTTPC_NOT_STARTED);
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
                list_remove(c);
                metrics_add(client->inflight_gauge, 1);
                if (call_start(client, c)) {
                        list_push(&client->running, c);
                        continue;
                }
                pthread_mutex_lock(&client->lock);
                c->host->inflight--;
                pthread_mutex_unlock(&client->lock);
                metrics_add(client->inflight_gauge, -1);
                list_push(&client->waiting, c);
                call_fail(client, c, HTTPC_ERROR);
        }
        return wait;
}

/* Move the calls handed over into the waiting list, in order. */
static void loop_take(httpc_t *client) {
        pthread_mutex_lock(&client->lock);
        while (!list_empty(&client->incoming)) {
                httpc_call_t *c = client->incoming.next;
                list_remove(c);
                list_push(&client->waiting, c);
        }
        pthread_mutex_unlock(&client->lock);
}

static void loop_stop(httpc_t *client) {
        while (!list_empty(&client->running)) {
                httpc_call_t *c = client->running.next;
                curl_multi_remove_handle(client->multi, c->easy);
                pthread_mutex_lock(&client->lock);
                c->host->inflight--;
                pthread_mutex_unlock(&client->lock);
                metrics_add(client->inflight_gauge, -1);
                call_fail(client, c, HTTPC_STOPPED);
        }
        while (!list_empty(&client->waiting))
                call_fail(client, client->waiting.next, HTTPC_STOPPED);
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
                        call_tried(client, c, msg->data.result);
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
        list_init(&client->incoming);
        list_init(&client->waiting);
        list_init(&client->running);
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
        if ((err = call_new(client, req, done, arg, &c)))
                return err;
        pthread_mutex_lock(&client->lock);
        if (client->n_calls >= client->max_waiting) {
                pthread_mutex_unlock(&client->lock);
                call_free(client, c);
                return HTTPC_QUEUE_FULL;
        }
        client->n_calls++;
        list_push(&client->incoming, c);
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
