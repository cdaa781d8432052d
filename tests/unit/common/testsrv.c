/*
 * testsrv.c - a loopback HTTP server for unit tests (see testsrv.h).
 */
#include "testsrv.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "msgid.h"

#define TESTSRV_MAX_REQS 4096

struct testsrv {
        struct MHD_Daemon *d;
        testsrv_fn fn;
        void *arg;
        int port;
        bool tls;
        atomic_bool stopping;
        pthread_mutex_t lock; /* guards everything below */
        testsrv_req_t *reqs;
        size_t n;
        int inside, max_inside, connections;
};

typedef struct testsrv_conn {
        testsrv_req_t req;
        bool started;
} testsrv_conn_t;

typedef struct testsrv_fill {
        size_t left;
} testsrv_fill_t;

static ssize_t testsrv__fill(void *cls, uint64_t pos, char *buf, size_t max) {
        testsrv_fill_t *f = cls;
        size_t n = f->left < max ? f->left : max;
        (void)pos;
        if (n == 0)
                return MHD_CONTENT_READER_END_OF_STREAM;
        memset(buf, 'x', n);
        f->left -= n;
        return (ssize_t)n;
}

static void testsrv__fill_free(void *cls) {
        free(cls);
}

static void testsrv__header(struct MHD_Connection *c, const char *name,
                            char *out, size_t size) {
        const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
        snprintf(out, size, "%s", v ? v : "");
}

static enum MHD_Result testsrv__handle(void *cls, struct MHD_Connection *c,
                                       const char *url, const char *method,
                                       const char *version, const char *upload,
                                       size_t *upload_len, void **con_cls) {
        testsrv_t *srv = cls;
        testsrv_conn_t *st = *con_cls;
        testsrv_answer_t ans = {0};
        struct MHD_Response *resp;
        const union MHD_ConnectionInfo *info;
        enum MHD_Result ret;
        const char *query;

        (void)version;
        if (!st) {
                st = calloc(1, sizeof(*st));
                *con_cls = st;
                snprintf(st->req.method, sizeof(st->req.method), "%s", method);
                query = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
                                                    "q");
                snprintf(st->req.path, sizeof(st->req.path), "%s%s%s", url,
                         query ? "?q=" : "", query ? query : "");
                testsrv__header(c, "Idempotency-Key", st->req.idem,
                                sizeof(st->req.idem));
                testsrv__header(c, "Authorization", st->req.auth,
                                sizeof(st->req.auth));
                testsrv__header(c, "Content-Type", st->req.ctype,
                                sizeof(st->req.ctype));
                info = MHD_get_connection_info(
                        c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
                st->req.connection = info && info->socket_context
                                             ? *(int *)info->socket_context
                                             : 0;
                return MHD_YES;
        }
        if (*upload_len) {
                size_t room = sizeof(st->req.body) - 1 - st->req.body_len;
                size_t n = *upload_len < room ? *upload_len : room;
                memcpy(st->req.body + st->req.body_len, upload, n);
                st->req.body_len += n;
                st->req.body[st->req.body_len] = '\0';
                *upload_len = 0;
                return MHD_YES;
        }
        st->req.at_ms = clock_mono_ms();
        pthread_mutex_lock(&srv->lock);
        st->req.concurrent = ++srv->inside;
        if (srv->inside > srv->max_inside)
                srv->max_inside = srv->inside;
        if (srv->n < TESTSRV_MAX_REQS)
                srv->reqs[srv->n++] = st->req;
        pthread_mutex_unlock(&srv->lock);

        srv->fn(srv->arg, &st->req, &ans);
        for (int waited = 0;
             waited < ans.delay_ms && !atomic_load(&srv->stopping);
             waited += 10) {
                struct timespec ts = {0, 10 * 1000000L};
                nanosleep(&ts, NULL);
        }
        if (ans.fill || ans.chunked) {
                testsrv_fill_t *f = malloc(sizeof(*f));
                f->left = ans.fill;
                resp = MHD_create_response_from_callback(
                        ans.chunked ? MHD_SIZE_UNKNOWN : ans.fill, 64 * 1024,
                        testsrv__fill, f, testsrv__fill_free);
        } else {
                size_t len = ans.body ? (ans.body_len ? ans.body_len
                                                      : strlen(ans.body))
                                      : 0;
                resp = MHD_create_response_from_buffer(
                        len, (void *)(ans.body ? ans.body : ""),
                        MHD_RESPMEM_MUST_COPY);
        }
        for (int i = 0; i < 8 && ans.headers[i] && ans.headers[i + 1]; i += 2)
                MHD_add_response_header(resp, ans.headers[i],
                                        ans.headers[i + 1]);
        ret = MHD_queue_response(c, ans.status ? (unsigned)ans.status : 200,
                                 resp);
        MHD_destroy_response(resp);
        pthread_mutex_lock(&srv->lock);
        srv->inside--;
        pthread_mutex_unlock(&srv->lock);
        return ret;
}

static void testsrv__done(void *cls, struct MHD_Connection *c, void **con_cls,
                          enum MHD_RequestTerminationCode code) {
        (void)cls;
        (void)c;
        (void)code;
        free(*con_cls);
        *con_cls = NULL;
}

static void testsrv__connection(void *cls, struct MHD_Connection *c,
                                void **socket_context,
                                enum MHD_ConnectionNotificationCode code) {
        testsrv_t *srv = cls;
        (void)c;
        if (code == MHD_CONNECTION_NOTIFY_STARTED) {
                int *id = malloc(sizeof(*id));
                pthread_mutex_lock(&srv->lock);
                *id = ++srv->connections;
                pthread_mutex_unlock(&srv->lock);
                *socket_context = id;
        } else {
                free(*socket_context);
                *socket_context = NULL;
        }
}

static testsrv_t *testsrv__start(testsrv_fn fn, void *arg, const char *key,
                                 const char *cert) {
        testsrv_t *srv = calloc(1, sizeof(*srv));
        struct sockaddr_in addr = {0};
        const union MHD_DaemonInfo *info;
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD |
                         MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;

        srv->fn = fn;
        srv->arg = arg;
        srv->tls = key != NULL;
        srv->reqs = calloc(TESTSRV_MAX_REQS, sizeof(*srv->reqs));
        atomic_init(&srv->stopping, false);
        pthread_mutex_init(&srv->lock, NULL);
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = 0;
        if (key && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
                testsrv_stop(srv);
                return NULL;
        }
        if (key)
                srv->d = MHD_start_daemon(
                        flags | MHD_USE_TLS, 0, NULL, NULL, testsrv__handle,
                        srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                        MHD_OPTION_NOTIFY_COMPLETED, testsrv__done, srv,
                        MHD_OPTION_NOTIFY_CONNECTION, testsrv__connection, srv,
                        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                        MHD_OPTION_HTTPS_MEM_KEY, key,
                        MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_END);
        else
                srv->d = MHD_start_daemon(
                        flags, 0, NULL, NULL, testsrv__handle, srv,
                        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                        MHD_OPTION_NOTIFY_COMPLETED, testsrv__done, srv,
                        MHD_OPTION_NOTIFY_CONNECTION, testsrv__connection, srv,
                        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                        MHD_OPTION_END);
        if (!srv->d) {
                testsrv_stop(srv);
                return NULL;
        }
        info = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
        srv->port = info ? info->port : 0;
        return srv;
}

testsrv_t *testsrv_start(testsrv_fn fn, void *arg) {
        return testsrv__start(fn, arg, NULL, NULL);
}

testsrv_t *testsrv_start_tls(testsrv_fn fn, void *arg, const char *key_pem,
                             const char *cert_pem) {
        return testsrv__start(fn, arg, key_pem, cert_pem);
}

void testsrv_stop(testsrv_t *srv) {
        if (!srv)
                return;
        atomic_store(&srv->stopping, true);
        if (srv->d)
                MHD_stop_daemon(srv->d);
        pthread_mutex_destroy(&srv->lock);
        free(srv->reqs);
        free(srv);
}

int testsrv_port(const testsrv_t *srv) {
        return srv->port;
}

void testsrv_url(const testsrv_t *srv, const char *path, char *buf,
                 size_t size) {
        snprintf(buf, size, "%s://127.0.0.1:%d%s", srv->tls ? "https" : "http",
                 srv->port, path);
}

void testsrv_reset(testsrv_t *srv) {
        pthread_mutex_lock(&srv->lock);
        srv->n = 0;
        srv->max_inside = 0;
        pthread_mutex_unlock(&srv->lock);
}

size_t testsrv_count(testsrv_t *srv) {
        size_t n;
        pthread_mutex_lock(&srv->lock);
        n = srv->n;
        pthread_mutex_unlock(&srv->lock);
        return n;
}

testsrv_req_t testsrv_get(testsrv_t *srv, size_t i) {
        testsrv_req_t r = {0};
        pthread_mutex_lock(&srv->lock);
        if (i < srv->n)
                r = srv->reqs[i];
        pthread_mutex_unlock(&srv->lock);
        return r;
}

int testsrv_max_concurrent(testsrv_t *srv) {
        int n;
        pthread_mutex_lock(&srv->lock);
        n = srv->max_inside;
        pthread_mutex_unlock(&srv->lock);
        return n;
}

int testsrv_connections(testsrv_t *srv) {
        int n;
        pthread_mutex_lock(&srv->lock);
        n = srv->connections;
        pthread_mutex_unlock(&srv->lock);
        return n;
}
