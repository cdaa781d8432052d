/*
 * ops.c - /health, /ready, /metrics of a group process (see ops.h).
 */
#include "ops.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "alloc.h"
#include "http.h"

struct ops_server {
        struct MHD_Daemon *daemon;
        runtime_t *rt;
};

int ops_parse_bind(const char *bind, int port, struct sockaddr_storage *addr) {
        memset(addr, 0, sizeof(*addr));
        struct sockaddr_in *v4 = (struct sockaddr_in *)addr;
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)addr;
        if (inet_pton(AF_INET, bind, &v4->sin_addr) == 1) {
                v4->sin_family = AF_INET;
                v4->sin_port = htons((uint16_t)port);
                return 0;
        }
        if (inet_pton(AF_INET6, bind, &v6->sin6_addr) == 1) {
                v6->sin6_family = AF_INET6;
                v6->sin6_port = htons((uint16_t)port);
                return 0;
        }
        return -1;
}

static enum MHD_Result ops__handler(void *cls, struct MHD_Connection *conn,
                                    const char *url, const char *method,
                                    const char *version, const char *upload,
                                    size_t *upload_size, void **con_cls) {
        ops_server_t *ops = cls;
        const char *what = NULL;
        int status;
        char *body = NULL;
        size_t len = 0;
        const char *ctype;
        enum MHD_Result ret;
        (void)version;
        (void)upload;
        (void)con_cls;

        if (*upload_size) {
                *upload_size = 0; /* ops endpoints take no bodies */
                return MHD_YES;
        }
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
                static const char *const allow[] = {"Allow", "GET, HEAD", NULL};
                return http_send_problem(conn, 405, NULL, "only GET", NULL,
                                         allow);
        }
        if (strcmp(url, "/health") == 0)
                what = "health";
        else if (strcmp(url, "/ready") == 0)
                what = "ready";
        else if (strcmp(url, "/metrics") == 0)
                what = "metrics";
        if (!what)
                return http_send_problem(
                        conn, 404, NULL,
                        "ops endpoints: /health /ready /metrics", NULL, NULL);
        runtime_ops_answer(ops->rt, what, &status, &body, &len, &ctype);
        ret = http_send(conn, (unsigned)status, ctype, body, len, NULL);
        free(body);
        return ret;
}

ops_server_t *ops_server_new(const char *bind, int port, runtime_t *rt,
                             char *errstr, size_t errlen) {
        ops_server_t *ops = xcalloc(1, sizeof(*ops));
        struct sockaddr_storage addr;
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;

        ops->rt = rt;
        if (ops_parse_bind(bind, port, &addr)) {
                snprintf(errstr, errlen,
                         "OMNIFY_OPS_BIND: '%s' is not an IP address", bind);
                free(ops);
                return NULL;
        }
        if (addr.ss_family == AF_INET6)
                flags |= MHD_USE_IPv6;
        ops->daemon = MHD_start_daemon(
                flags, (uint16_t)port, NULL, NULL, ops__handler, ops,
                MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
        if (!ops->daemon) {
                snprintf(errstr, errlen, "cannot listen on %s:%d for ops", bind,
                         port);
                free(ops);
                return NULL;
        }
        return ops;
}

void ops_server_destroy(ops_server_t *ops) {
        if (!ops)
                return;
        MHD_stop_daemon(ops->daemon);
        free(ops);
}
