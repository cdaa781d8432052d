/*
 * http.c - provider calls (ig_http, see connector.h): paced, made through
 * the process's shared HTTP client, parsed, and read by the connector.
 *
 * The shared client retries what is worth retrying (no connection, 5xx on
 * reads, timeouts) with backoff; rate limits are ours to handle per account
 * (pacer.h), so the classifier given to the client never calls an answer
 * "rate limited" (which would pause the whole host): a 429 comes back here,
 * the connector's classify reads how long to wait, the key is blocked that
 * long, and the call is tried again when the wait is short, or handed back
 * as IG_RATE_LIMITED so the sync comes back later.
 *
 * Logs and job->error name the provider, the route template, the status
 * and a short reason; never a URL's query, a header or a body.
 */
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "backoff.h"
#include "connector.h"
#include "log.h"
#include "msgid.h"
#include "pacer.h"
#include "vault.h"

#define IG_HTTP_MAX_BYTES (16u * 1024 * 1024)
/* Waits for the pacer or a short Retry-After happen inline, on the
 * handler's worker; longer ones end the page (it comes back by timer). */
#define IG_INLINE_WAIT_MS 15000
#define IG_RATE_RETRIES 3
/* Added to a provider's Retry-After: our call must arrive after it. */
#define IG_RETRY_MARGIN_MS 250

void ig_resp_clear(ig_resp_t *r) {
        if (!r)
                return;
        json_decref(r->json);
        r->json = NULL;
        if (r->raw.body)
                OPENSSL_cleanse(r->raw.body, r->raw.body_len);
        httpc_response_deinit(&r->raw);
        memset(&r->raw, 0, sizeof(r->raw));
        r->status = 0;
}

void ig_job_error(ig_job_t *job, const char *fmt, ...) {
        va_list ap;
        int n = snprintf(job->error, sizeof(job->error), "%s: ",
                         job->c ? ig_provider_name(job->c->id) : "provider");
        if (n < 0 || (size_t)n >= sizeof(job->error))
                return;
        va_start(ap, fmt);
        vsnprintf(job->error + n, sizeof(job->error) - (size_t)n, fmt, ap);
        va_end(ap);
}

void ig_req_bearer(ig_req_t *req, const char *token) {
        char *line;
        size_t n;
        if (!token)
                token = "";
        n = strlen(token) + 8;
        line = xmalloc(n);
        snprintf(line, n, "Bearer %s", token);
        httpc_headers_add(&req->headers, "Authorization", line);
        OPENSSL_cleanse(line, n);
        free(line);
}

char *ig_form(size_t n, const char *const *names, const char *const *values) {
        ig_buf_t b = {0};
        char *out;
        for (size_t i = 0; i < n; i++) {
                char *v;
                if (!values[i])
                        continue;
                v = ig_urlencode(values[i]);
                ig_buf_printf(&b, "%s%s=%s", b.len ? "&" : "", names[i], v);
                OPENSSL_cleanse(v, strlen(v));
                free(v);
        }
        out = xstrdup(b.p ? b.p : "");
        ig_buf_free(&b);
        return out;
}

/* For the shared client: retry transport failures and 5xx (our POSTs to
 * providers are reads, or single-use calls marked once); hand every answer
 * with a status back to us otherwise. */
static httpc_verdict_t ig__verdict(void *arg, const httpc_response_t *resp) {
        bool once = arg != NULL;
        if (resp->err != HTTPC_OK)
                return HTTPC_VERDICT_DEFAULT;
        if (resp->status >= 200 && resp->status < 300)
                return HTTPC_VERDICT_OK;
        if (!once && (resp->status >= 500 || resp->status == 408))
                return HTTPC_VERDICT_RETRY;
        return HTTPC_VERDICT_FAILED;
}

ig_err_t ig_classify_default(ig_job_t *job, const ig_req_t *req,
                             ig_resp_t *resp) {
        long s = resp->status;
        (void)req;
        if (s >= 200 && s < 300)
                return IG_OK;
        if (s == 401) {
                ig_job_error(job, "credentials refused (HTTP 401)");
                return IG_AUTH;
        }
        if (s == 429) {
                int64_t ra = resp->raw.retry_after_ms;
                job->wait_ms = ra >= 0 ? ra : 60000;
                ig_job_error(job, "rate limited (HTTP 429)");
                return IG_RATE_LIMITED;
        }
        if (s == 0) {
                ig_job_error(job, "unreachable (%s)",
                             httpc_strerror(resp->raw.err));
                return resp->raw.err == HTTPC_TOO_LARGE ? IG_PROVIDER
                                                        : IG_TRANSIENT;
        }
        if (s == 408 || s == 425 || s >= 500) {
                ig_job_error(job, "failing (HTTP %ld)", s);
                return IG_TRANSIENT;
        }
        ig_job_error(job, "refused the request (HTTP %ld)", s);
        return IG_REFUSED;
}

/* Wait for the pacer (each key the call counts against): false (and
 * IG_RATE_LIMITED's wait in the job) when the wait is longer than we hold a
 * worker for. */
static bool ig__pace(ig_job_t *job, const ig_req_t *req) {
        int64_t wait = 0, w2 = 0;
        if (req->pace_key[0])
                wait = ig_pacer_take(job->st->pacer, req->pace_key, req->rate,
                                     req->burst, req->cost, IG_INLINE_WAIT_MS);
        if (wait <= IG_INLINE_WAIT_MS && req->pace_key2[0])
                w2 = ig_pacer_take(job->st->pacer, req->pace_key2, req->rate2,
                                   req->burst2, 1, IG_INLINE_WAIT_MS);
        if (w2 > wait)
                wait = w2;
        if (wait > IG_INLINE_WAIT_MS) {
                job->wait_ms = wait;
                ig_job_error(job, "paced: next call allowed in %lld ms",
                             (long long)wait);
                return false;
        }
        if (wait > 0)
                backoff_sleep(NULL, wait);
        return true;
}

ig_err_t ig_http(ig_job_t *job, ig_req_t *req, ig_resp_t *resp) {
        httpc_request_t hr = {0};
        ig_err_t err = IG_TRANSIENT;

        memset(resp, 0, sizeof(*resp));
        hr.method = req->method ? req->method : "GET";
        hr.url = req->url;
        hr.route = req->route;
        hr.headers = &req->headers;
        hr.body = req->body;
        hr.timeout_ms = req->timeout_ms ? req->timeout_ms : 30000;
        hr.connect_timeout_ms = 5000;
        hr.max_response_bytes =
                req->max_bytes ? req->max_bytes : IG_HTTP_MAX_BYTES;
        hr.retry.attempts = req->once ? 2 : 3;
        hr.retry.backoff = (backoff_policy_t){250, 4000};
        hr.retry.retry_after_cap_ms = 1;
        hr.retry.classify = ig__verdict;
        hr.retry.classify_arg = req->once ? (void *)1 : NULL;

        for (int round = 0; round <= IG_RATE_RETRIES; round++) {
                if (!ig__pace(job, req)) {
                        err = IG_RATE_LIMITED;
                        break;
                }
                job->wait_ms = 0;
                httpc_do(job->st->http, &hr, &resp->raw);
                resp->status = resp->raw.err == HTTPC_OK ? resp->raw.status : 0;
                if (resp->raw.body && resp->raw.body_len) {
                        json_error_t je;
                        resp->json =
                                json_loadb(resp->raw.body, resp->raw.body_len,
                                           JSON_DECODE_ANY, &je);
                }
                err = job->c && job->c->classify
                              ? job->c->classify(job, req, resp)
                              : ig_classify_default(job, req, resp);
                if (err == IG_OK && resp->status >= 200 && resp->status < 300 &&
                    resp->raw.body_len && !resp->json &&
                    resp->raw.body[0] != '\0') {
                        /* A 2xx whose body is not the JSON it should be
                         * (cut short, HTML): worth one more read. */
                        ig_job_error(job, "answered malformed JSON (HTTP %ld)",
                                     resp->status);
                        err = IG_TRANSIENT;
                }
                log_debug("%s %s %s -> %ld (%s, %d tries)",
                          ig_provider_name(job->c ? job->c->id : 0), hr.method,
                          req->route ? req->route : "?", resp->status,
                          ig_strerror(err), resp->raw.attempts);
                if (err != IG_RATE_LIMITED)
                        break;
                /* Rate limited all the same: nobody calls under this key
                 * before the provider said; short waits are waited out. */
                if (req->pace_key[0])
                        ig_pacer_block(job->st->pacer, req->pace_key,
                                       (int64_t)clock_wall_ms() + job->wait_ms +
                                               IG_RETRY_MARGIN_MS);
                log_warn("%s %s: rate limited, waiting %lld ms",
                         ig_provider_name(job->c ? job->c->id : 0),
                         req->route ? req->route : "?",
                         (long long)job->wait_ms);
                if (req->once || job->wait_ms > IG_INLINE_WAIT_MS ||
                    round == IG_RATE_RETRIES)
                        break;
                if (!req->pace_key[0])
                        backoff_sleep(NULL, job->wait_ms + IG_RETRY_MARGIN_MS);
                ig_resp_clear(resp);
        }
        httpc_headers_deinit(&req->headers);
        return err;
}

ig_err_t ig_http_object(ig_job_t *job, ig_req_t *req, json_t **out) {
        ig_resp_t resp;
        ig_err_t err = ig_http(job, req, &resp);
        *out = NULL;
        if (!err && !json_is_object(resp.json)) {
                ig_job_error(job, "answered no JSON object (HTTP %ld)",
                             resp.status);
                err = IG_PROVIDER;
        }
        if (!err)
                *out = json_incref(resp.json);
        ig_resp_clear(&resp);
        return err;
}
