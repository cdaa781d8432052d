/*
 * httpc.h - the outbound HTTP client: one per process, one libcurl multi
 * handle driven by its own thread.
 *
 * Every call to a provider (platform APIs, mail, LLM) goes through here, so
 * that retries, Retry-After, per-host limits, timeouts, size caps and what
 * reaches the logs are written once. Group threads of a monolith share the
 * one client; connections to a host are kept and reused across calls.
 *
 * A call is a request plus a retry policy. httpc_do blocks the calling
 * thread until the call is over (every try made, or a final answer);
 * httpc_submit returns at once and runs a callback on the client's thread.
 * Between tries the call waits off-thread: a retry never holds a slot.
 *
 * Defaults that protect us: TLS peers are verified, redirects are not
 * followed, only http and https are spoken, a response larger than the cap
 * is an error (never a truncated body), every try has a timeout.
 *
 * Per host (name and port): at most max_concurrency calls in flight, and a
 * token bucket of rate_per_s (0: no rate limit) with burst tokens. Other
 * calls to the host wait in order. A 429 (or an answer the caller's
 * classifier calls rate limited) empties the host's bucket and pauses the
 * host until its Retry-After; httpc_host_budget lowers a host's budget from
 * what a provider said (X-RateLimit-Remaining and its reset time).
 *
 * What is logged and measured never holds a secret: method, host, the
 * route (the caller's path template, or the path without its query),
 * status, duration and attempt. Never header values, query strings or
 * bodies.
 *
 * Thread-safety: every function may be called from any thread, except
 * httpc_do from a completion callback (it would wait for itself; asserts).
 * Errors from libcurl (CURLcode) are translated to httpc_err_t here.
 */
#ifndef OMNIFY_HTTPC_H
#define OMNIFY_HTTPC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backoff.h"
#include "slice.h"

#define HTTPC_ERRORS(X)                                                    \
        X(HTTPC_OK, "ok")                                                  \
        X(HTTPC_BAD_REQUEST, "the request is malformed")                   \
        X(HTTPC_RESOLVE, "cannot resolve the host")                        \
        X(HTTPC_CONNECT, "cannot connect to the server")                   \
        X(HTTPC_TIMEOUT, "the request timed out")                          \
        X(HTTPC_TLS, "TLS failed (handshake or certificate verification)") \
        X(HTTPC_SEND, "sending the request failed")                        \
        X(HTTPC_RECV, "receiving the answer failed")                       \
        X(HTTPC_TOO_LARGE, "the answer is larger than allowed")            \
        X(HTTPC_REDIRECTS, "too many redirects")                           \
        X(HTTPC_QUEUE_FULL, "too many calls are waiting")                  \
        X(HTTPC_NOT_STARTED, "the call could not start within its budget") \
        X(HTTPC_CANCELLED, "the call was cancelled")                       \
        X(HTTPC_STOPPED, "the HTTP client is stopping")                    \
        X(HTTPC_NO_MEMORY, "out of memory")                                \
        X(HTTPC_ERROR, "HTTP client error")

typedef enum httpc_err {
#define X(name, msg) name,
        HTTPC_ERRORS(X)
#undef X
} httpc_err_t;

const char *httpc_strerror(httpc_err_t err);

/* What an answer (or a failed try) means for the call. */
typedef enum httpc_verdict {
        HTTPC_VERDICT_DEFAULT,      /* classifiers only: "use the default" */
        HTTPC_VERDICT_OK,           /* a success to keep (2xx) */
        HTTPC_VERDICT_FAILED,       /* final: retrying will not change it */
        HTTPC_VERDICT_RETRY,        /* worth another try */
        HTTPC_VERDICT_RATE_LIMITED, /* another try, and the host slows down */
} httpc_verdict_t;

/* ---------------------------------------------------------------------------
 * Headers
 * ------------------------------------------------------------------------ */

/* A list of "Name: value" lines; values may be secrets: deinit wipes them.
 * Caller-owned; zero-initialise (HTTPC_HEADERS_INIT) before use. */
typedef struct httpc_headers {
        char **lines;
        size_t n, cap;
} httpc_headers_t;

#define HTTPC_HEADERS_INIT ((httpc_headers_t){NULL, 0, 0})

/* Append "name: value". false (nothing added) when name is not a token or
 * either holds CR, LF or NUL: a header is never injected. */
bool httpc_headers_add(httpc_headers_t *h, const char *name, const char *value);

/* Append a line as httpc_headers_add writes them ("Name: value", or
 * "Name;" for an empty value), e.g. one read back from a store. false
 * (nothing added) when it is not such a line. */
bool httpc_headers_add_line(httpc_headers_t *h, const char *line);

/* Wipe every line and free. NULL ok. */
void httpc_headers_deinit(httpc_headers_t *h);

/* ---------------------------------------------------------------------------
 * Requests and responses
 * ------------------------------------------------------------------------ */

typedef struct httpc_response httpc_response_t;

/* A caller's reading of an answer, asked before the default: e.g. a
 * provider that answers 200 with {"error": "rate_limited"}. Runs on the
 * client's thread; must not block. */
typedef httpc_verdict_t (*httpc_classify_fn)(void *arg,
                                             const httpc_response_t *resp);

typedef struct httpc_retry {
        int attempts;             /* tries in all, >= 1; 0: 3 */
        backoff_policy_t backoff; /* {0, 0}: 200 ms doubling to 5 s */
        /* A Retry-After up to this long is waited out; a longer one ends
         * the retries (the answer says when: retry_after_ms), so a durable
         * caller can come back then. 0: 60 s. */
        int64_t retry_after_cap_ms;
        /* No try starts later than this many ms after the call began (a
         * first try still waiting for its host then ends the call with
         * HTTPC_NOT_STARTED: nothing was sent). 0: no bound beyond attempts
         * and timeouts. */
        int64_t budget_ms;
        httpc_classify_fn classify; /* may be NULL */
        void *classify_arg;
} httpc_retry_t;

/*
 * The default verdicts: 2xx OK; 429 RATE_LIMITED; 408, 425 and 5xx RETRY;
 * other statuses FAILED; no connection, timeouts and broken transfers RETRY;
 * TLS failures, bad requests, oversized answers FAILED. A request that is
 * not idempotent (POST or PATCH without an idempotency key) is retried only
 * when it surely was not processed: no connection, 408, 425, 429, 503.
 */

typedef struct httpc_request {
        const char *method; /* "GET", "POST", ...; NULL: GET */
        const char *url;    /* http or https */
        /* How logs and metrics name the path, e.g. "/v3/mail/send" or
         * "/accounts/{id}/insights"; NULL: the URL's path without its query
         * (give a template when the path itself holds ids or secrets). */
        const char *route;
        const httpc_headers_t *headers; /* may be NULL; copied */
        slice_t body;                   /* copied; empty: no body */
        /* Sent as Idempotency-Key, the same on every try. NULL: none. */
        const char *idempotency_key;
        int timeout_ms;            /* per try; 0: 10 s */
        int connect_timeout_ms;    /* 0: 2 s */
        size_t max_response_bytes; /* 0: the client's default */
        int max_redirects;         /* 0: a 3xx is the answer */
        httpc_retry_t retry;
        /* Set to true (then httpc_wake) to end the call with
         * HTTPC_CANCELLED. May be NULL; must outlive the call. */
        const atomic_bool *cancel;
} httpc_request_t;

struct httpc_response {
        httpc_err_t err; /* of the last try: HTTPC_OK when it was answered */
        long status;     /* the last answer's status; 0 when none */
        httpc_verdict_t verdict; /* never DEFAULT */
        char *body;              /* owned; NUL-terminated; may be NULL */
        size_t body_len;
        char *headers; /* the last answer's header lines, owned */
        size_t headers_len;
        int attempts;           /* tries made */
        int64_t retry_after_ms; /* the last answer's Retry-After; -1: none */
        int64_t duration_ms;    /* from the call to its end, waits included */
};

/* Free body and headers. NULL ok. */
void httpc_response_deinit(httpc_response_t *resp);

/* The value of the first response header called name (any case), without
 * surrounding spaces; SLICE_NULL when absent. Points into resp. */
slice_t httpc_response_header(const httpc_response_t *resp, const char *name);

/* ---------------------------------------------------------------------------
 * The client
 * ------------------------------------------------------------------------ */

typedef struct httpc_opts {
        int max_host_concurrency;  /* per host; 0: 8 */
        double host_rate_per_s;    /* per host; 0: no rate limit */
        int host_burst;            /* 0: max(1, rate) */
        int max_waiting;           /* calls queued or between tries; 0: 10000 */
        size_t max_response_bytes; /* 0: 1 MiB */
        int max_connections;       /* kept-alive connections; 0: 64 */
        const char *user_agent;    /* NULL: "omnify/<version>" */
        const char *ca_file; /* NULL: the system's CA bundle (tests only) */
} httpc_opts_t;

typedef struct httpc httpc_t;

/* A client with its thread started. NULL and errstr on failure. opts may be
 * NULL (every default). */
httpc_t *httpc_new(const httpc_opts_t *opts, char *errstr, size_t errlen);

/* Stop the thread: calls still waiting or running end with HTTPC_STOPPED
 * (their callbacks run first). Then free. NULL ok. */
void httpc_destroy(httpc_t *client);

/*
 * Make the call and wait for its end. *resp is always filled (deinit it);
 * returns resp->err. An answer with any status is HTTPC_OK: look at
 * resp->status and resp->verdict.
 */
httpc_err_t httpc_do(httpc_t *client, const httpc_request_t *req,
                     httpc_response_t *resp);

/* Called once when a call ends, on the client's thread; takes ownership of
 * resp (deinit it, or move its fields). Must not block. */
typedef void (*httpc_done_fn)(void *arg, httpc_response_t *resp);

/*
 * Start the call; done(arg, resp) runs when it ends. The request is copied:
 * the caller's memory may go at once (except req->cancel). When this
 * returns an error, done is not called.
 */
httpc_err_t httpc_submit(httpc_t *client, const httpc_request_t *req,
                         httpc_done_fn done, void *arg);

/* Make the client's thread look at cancel flags now. */
void httpc_wake(httpc_t *client);

/* Limits of one host ("api.example.com" or "api.example.com:8443"; any
 * case): concurrency, rate and burst as in httpc_opts_t (0: the defaults).
 */
void httpc_host_limits(httpc_t *client, const char *host, int max_concurrency,
                       double rate_per_s, int burst);

/* What a provider said about its budget: at most `remaining` more calls
 * until reset_at_ms (wall clock). 0 remaining pauses the host until then.
 * Never raises a budget. */
void httpc_host_budget(httpc_t *client, const char *host, int64_t remaining,
                       int64_t reset_at_ms);

/* ---------------------------------------------------------------------------
 * Pieces of the policy, for callers with durable retries (the outbox)
 * ------------------------------------------------------------------------ */

/* The verdict on resp for req (classifier first, then the defaults). */
httpc_verdict_t httpc_classify(const httpc_request_t *req,
                               const httpc_response_t *resp);

/* A Retry-After value (delta seconds or an HTTP date) in ms from now_ms
 * (wall clock); -1 when malformed. A date in the past is 0. */
int64_t httpc_parse_retry_after(slice_t value, int64_t now_ms);

/* The host key of url ("host" or "host:port", lowercase) and the route
 * that logs may show (the path, no query, no fragment, no user info).
 * false when url is not an http(s) URL with a host. */
bool httpc_url_parts(const char *url, char *host, size_t host_size, char *path,
                     size_t path_size);

#endif
