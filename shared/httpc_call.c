/*
 * httpc_call.c - a call of the outbound HTTP client: copied in from the
 * caller's request, its tries on the multi handle (the answer read under
 * the size caps), and after each try the decision: another try later, or
 * the end and the caller's callback (see httpc.h; the thread that drives
 * it is in httpc.c).
 */
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "httpc.h"
#include "httpc_internal.h"
#include "log.h"
#include "metrics.h"
#include "msgid.h"

#define HTTPC_DEFAULT_TIMEOUT_MS 10000
#define HTTPC_DEFAULT_CONNECT_MS 2000
#define HTTPC_DEFAULT_ATTEMPTS 3
#define HTTPC_DEFAULT_BACKOFF ((backoff_policy_t){200, 5000})
#define HTTPC_DEFAULT_RETRY_AFTER_CAP_MS 60000
#define HTTPC_MAX_HEADER_BYTES (64 * 1024)

/* ---------------------------------------------------------------------------
 * Calls: copy in, end
 * ------------------------------------------------------------------------ */

void httpc__call_free(httpc_t *client, httpc_call_t *c) {
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
        httpc__call_free(client, c);
}

/* End a call that has no try running (waiting, or refused at start). */
void httpc__call_fail(httpc_t *client, httpc_call_t *c, httpc_err_t err) {
        httpc__list_remove(c);
        httpc_response_deinit(&c->resp);
        c->resp.err = err;
        c->resp.status = 0;
        c->resp.retry_after_ms = -1;
        c->resp.verdict = err == HTTPC_NOT_STARTED ? HTTPC_VERDICT_RETRY
                                                   : HTTPC_VERDICT_FAILED;
        call_end(client, c);
}

httpc_err_t httpc__call_new(httpc_t *client, const httpc_request_t *req,
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
        httpc__list_init(c);
        snprintf(c->method, sizeof(c->method), "%s", method);
        snprintf(c->route, sizeof(c->route), "%s",
                 req->route ? req->route : path);
        c->url = xstrdup(req->url);
        if (req->idempotency_key)
                c->idempotency_key = xstrdup(req->idempotency_key);
        if (req->body.len) {
                if (!(c->body = try_malloc(req->body.len))) {
                        httpc__call_free(client, c);
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
        c->host = httpc__host(client, host);
        pthread_mutex_unlock(&client->lock);
        *out = c;
        return HTTPC_OK;
nomem:
        httpc__call_free(client, c);
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
bool httpc__call_start(httpc_t *client, httpc_call_t *c) {
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
void httpc__call_tried(httpc_t *client, httpc_call_t *c, CURLcode rc) {
        httpc_host_t *h = c->host;
        httpc_response_t *r = &c->resp;
        uint64_t now = clock_mono_ms();
        httpc_verdict_t v;
        int64_t delay, pause = -1;

        curl_multi_remove_handle(client->multi, c->easy);
        httpc__list_remove(c);
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
                httpc__list_push(&client->waiting, c);
                return;
        }
        call_end(client, c);
}
