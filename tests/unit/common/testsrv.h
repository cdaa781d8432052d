/*
 * testsrv.h - a loopback HTTP server for unit tests (libmicrohttpd), in
 * the test's own process: it stands in for a provider. Each request is
 * recorded (method, path, a few headers, body, arrival time, how many were
 * in the handler at once, the connection it came on) and answered by the
 * test's function, which may delay the answer, send any status, headers
 * and body, with or without a length.
 *
 * Thread-safety: MHD's threads call the test's function (one thread per
 * connection); the accessors take the server's lock.
 */
#ifndef OMNIFY_TESTSRV_H
#define OMNIFY_TESTSRV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct testsrv_req {
        char method[16];
        char path[256];  /* with its query */
        char idem[256];  /* Idempotency-Key, "" when absent */
        char auth[256];  /* Authorization, "" when absent */
        char ctype[128]; /* Content-Type */
        char body[4096]; /* the first bytes of the body, NUL-terminated */
        size_t body_len;
        uint64_t at_ms; /* monotonic, when the whole request was in */
        int concurrent; /* requests in the handler, this one included */
        int connection; /* which connection (1, 2, ...) */
} testsrv_req_t;

typedef struct testsrv_answer {
        int status;             /* 0: 200 */
        const char *body;       /* may be NULL */
        size_t body_len;        /* 0 with body: strlen */
        size_t fill;            /* > 0: a body of this many 'x' instead */
        bool chunked;           /* no Content-Length */
        const char *headers[8]; /* name, value, name, value, ..., NULL */
        int delay_ms;           /* before answering */
} testsrv_answer_t;

typedef void (*testsrv_fn)(void *arg, const testsrv_req_t *req,
                           testsrv_answer_t *ans);

typedef struct testsrv testsrv_t;

/* Listen on 127.0.0.1 (an ephemeral port). NULL on failure. */
testsrv_t *testsrv_start(testsrv_fn fn, void *arg);

/* The same over TLS with this key and certificate (PEM); the URL scheme
 * is https. NULL on failure (or when libmicrohttpd has no TLS). */
testsrv_t *testsrv_start_tls(testsrv_fn fn, void *arg, const char *key_pem,
                             const char *cert_pem);

/* Stop (delays in progress are cut short) and free. NULL ok. */
void testsrv_stop(testsrv_t *srv);

int testsrv_port(const testsrv_t *srv);

/* "http(s)://127.0.0.1:<port><path>" into buf. */
void testsrv_url(const testsrv_t *srv, const char *path, char *buf,
                 size_t size);

/* Forget what was recorded. */
void testsrv_reset(testsrv_t *srv);

size_t testsrv_count(testsrv_t *srv);

/* A copy of request i (0: the first). */
testsrv_req_t testsrv_get(testsrv_t *srv, size_t i);

/* The most requests that were in the handler at once; connections made. */
int testsrv_max_concurrent(testsrv_t *srv);
int testsrv_connections(testsrv_t *srv);

#endif
