/*
 * server.c - HTTP entry and routing: libmicrohttpd's callbacks.
 *
 * A request arrives on one of the loop threads (edge__handler). Its first
 * call routes it (built-in routes, /ops, /api/operations, then the schema
 * routes), checks its headers and token (access.c) and, for a request with a
 * body, answers a refusal before reading the body. Later calls collect the
 * body within the size limits, then dispatch it (dispatch.c) or queue an
 * operation lookup (lookup.c). A suspended request is resumed by the thread
 * that completes it and answered here (respond.c's edge__finish). When the
 * connection is done, edge__completed counts the request in the metrics and
 * frees it.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "alloc.h"
#include "edge_internal.h"
#include "log.h"

static uint64_t edge__now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

bool edge__ieq_prefix(const char *s, const char *prefix) {
        for (; *prefix; s++, prefix++)
                if (tolower((unsigned char)*s) != *prefix)
                        return false;
        return true;
}

/* "application/json" optionally followed by parameters. */
static bool edge__is_json(const char *ctype) {
        if (!ctype || !edge__ieq_prefix(ctype, "application/json"))
                return false;
        ctype += strlen("application/json");
        return *ctype == '\0' || *ctype == ';' || *ctype == ' ';
}

/* Suspend the request until another thread completes it. */
void edge__wait(req_t *req) {
        req->waiting = true;
        atomic_fetch_add(&req->edge->inflight, 1);
        metrics_add(req->edge->m_inflight, 1);
        MHD_suspend_connection(req->conn);
}

void edge__done_waiting(req_t *req) {
        if (!req->waiting)
                return;
        req->waiting = false;
        atomic_fetch_sub(&req->edge->inflight, 1);
        metrics_add(req->edge->m_inflight, -1);
}

/* The Origin of the request if it is one we allow (NULL otherwise). */
static const char *edge__cors_origin(req_t *req) {
        const char *origin = MHD_lookup_connection_value(
                req->conn, MHD_HEADER_KIND, "Origin");
        if (!origin)
                return NULL;
        for (size_t i = 0; i < req->edge->n_cors; i++)
                if (strcmp(req->edge->cors[i], origin) == 0 ||
                    strcmp(req->edge->cors[i], "*") == 0)
                        return origin;
        return NULL;
}

/* A CORS preflight: which methods and headers a browser may send. */
static enum MHD_Result edge__preflight(req_t *req, const char *url) {
        char allow[64] = "GET, POST, PUT, PATCH, DELETE";
        const schema_msg_t *msg;
        schema_params_t params;
        const char *hdrs[] = {
                "Access-Control-Allow-Methods",
                allow,
                "Access-Control-Allow-Headers",
                "Authorization, Content-Type, Idempotency-Key, Prefer, "
                "traceparent",
                "Access-Control-Max-Age",
                "600",
                NULL};
        req->label = "preflight";
        if (!req->cors_origin)
                return edge__problem(req, 403, "Forbidden",
                                     "this origin may not call the API", NULL,
                                     NULL);
        if (schema_route_match(req->edge->schemas, slice_of("OPTIONS"),
                               slice_of(url), &msg, &params, allow,
                               sizeof(allow)) == SCHEMA_MATCH_NOT_FOUND)
                return edge__problem(req, 404, "Not Found", "no such route",
                                     NULL, NULL);
        return edge__answer(req, 204, "text/plain", "", 0, hdrs);
}

/* First call for a request: route, headers, token. Returns MHD_YES to go on
 * reading the body, or the result of an answer queued already. */
static enum MHD_Result edge__begin(req_t *req, const char *url,
                                   const char *method) {
        edge_t *edge = req->edge;
        char allow[64];
        const char *clen, *ctype;
        schema_match_t m;
        bool is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
                req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

        if (ci && ci->client_addr) {
                const struct sockaddr *sa = ci->client_addr;
                if (sa->sa_family == AF_INET)
                        inet_ntop(AF_INET,
                                  &((const struct sockaddr_in *)sa)->sin_addr,
                                  req->client_ip, sizeof(req->client_ip));
                else if (sa->sa_family == AF_INET6)
                        inet_ntop(AF_INET6,
                                  &((const struct sockaddr_in6 *)sa)->sin6_addr,
                                  req->client_ip, sizeof(req->client_ip));
        }
        req->cors_origin = edge__cors_origin(req);
        if (strcmp(method, "OPTIONS") == 0)
                return edge__preflight(req, url);

        if (strncmp(url, "/api/", 5) != 0) {
                if (!is_get && edge__is_builtin(url)) {
                        static const char *const hdr[] = {"Allow", "GET", NULL};
                        req->label = "builtin";
                        return edge__problem(req, 405, "Method Not Allowed",
                                             NULL, NULL, hdr);
                }
                if (is_get && edge__builtin(req, url) == MHD_YES)
                        return MHD_YES;
                if (!req->answered && is_get &&
                    edge__asset(req, url) == MHD_YES)
                        return MHD_YES;
                if (req->answered)
                        return MHD_NO;
                if (is_get && atomic_load(&edge->n_ops) &&
                    strncmp(url, "/ops/", 5) == 0)
                        return edge__ops(req, url);
                req->label = "unknown";
                return edge__problem(req, 404, "Not Found", "no such route",
                                     NULL, NULL);
        }
        if (strncmp(url, "/api/operations/", 16) == 0) {
                const char *id = url + 16;
                msgid_t parsed;
                req->label = "operations";
                if (!is_get) {
                        static const char *const hdr[] = {"Allow", "GET", NULL};
                        return edge__problem(req, 405, "Method Not Allowed",
                                             NULL, NULL, hdr);
                }
                if (!msgid_parse(id, strlen(id), &parsed))
                        return edge__problem(req, 404, "Not Found",
                                             "no such operation", NULL, NULL);
                if (edge__authenticate(req, false))
                        return edge__unauthorized(req);
                if (!atomic_load(&edge->started))
                        return edge__starting(req);
                msgid_format(&parsed, req->id);
                return MHD_YES;
        }

        m = schema_route_match(edge->schemas, slice_of(method), slice_of(url),
                               &req->msg, &req->params, allow, sizeof(allow));
        if (m == SCHEMA_MATCH_NOT_FOUND) {
                req->label = "unknown";
                return edge__problem(req, 404, "Not Found", "no such route",
                                     NULL, NULL);
        }
        if (m == SCHEMA_MATCH_METHOD_NOT_ALLOWED) {
                const char *hdr[] = {"Allow", allow, NULL};
                req->label = "unknown";
                return edge__problem(req, 405, "Method Not Allowed", NULL, NULL,
                                     hdr);
        }
        req->label = req->msg->type;
        clen = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                           MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (clen && strtoull(clen, NULL, 10) >
                            (unsigned long long)edge->cfg->max_body_bytes)
                return edge__problem(req, 413, "Content Too Large",
                                     "the body exceeds the configured limit",
                                     NULL, NULL);
        ctype = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                            MHD_HTTP_HEADER_CONTENT_TYPE);
        /* A raw body is passed as it is, whatever its type. */
        if (!is_get && !req->msg->route.raw_body &&
            ((clen && strcmp(clen, "0") != 0) || ctype) &&
            !edge__is_json(ctype))
                return edge__problem(req, 415, "Unsupported Media Type",
                                     "send the body as application/json", NULL,
                                     NULL);
        if (edge__authenticate(req, req->msg->route.auth)) {
                if (req->msg->route.auth)
                        return edge__unauthorized(req);
        }
        return edge__permit(req);
}

enum MHD_Result edge__handler(void *cls, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              const char *version, const char *upload,
                              size_t *upload_size, void **con_cls) {
        edge_t *edge = cls;
        req_t *req = *con_cls;
        (void)version;

        if (!req) {
                /* MHD takes an answer only on this first call or once the
                 * whole body is in. A request with a body is looked at now,
                 * so a refusal (401, 404, 413, 415...) needs no reading of
                 * the body; MHD then closes the connection. A request
                 * without one waits for the final call, so the connection
                 * stays open for the next request. */
                const char *clen, *te;
                arena_t *arena = arena_new(2048);
                req = arena_alloc(arena, sizeof(*req));
                memset(req, 0, sizeof(*req));
                req->arena = arena;
                req->edge = edge;
                req->conn = conn;
                req->t0_us = edge__now_us();
                *con_cls = req;
                clen = MHD_lookup_connection_value(
                        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                te = MHD_lookup_connection_value(
                        conn, MHD_HEADER_KIND,
                        MHD_HTTP_HEADER_TRANSFER_ENCODING);
                if (!te && (!clen || strcmp(clen, "0") == 0))
                        return MHD_YES;
                req->begun = true;
                return edge__begin(req, url, method);
        }
        if (!req->begun) {
                enum MHD_Result r;
                req->begun = true;
                r = edge__begin(req, url, method);
                if (r != MHD_YES || req->answered)
                        return r;
        }
        if (req->answered) {
                *upload_size = 0; /* discard the rest of a refused body */
                return MHD_YES;
        }
        if (*upload_size) {
                if (!req->msg || req->too_large || req->overloaded) {
                        *upload_size = 0; /* refused already: discard */
                        return MHD_YES;
                }
                if (req->body_len + *upload_size >
                    (size_t)edge->cfg->max_body_bytes) {
                        req->too_large = true;
                        *upload_size = 0;
                        return MHD_YES;
                }
                long long held = atomic_fetch_add(&edge->buffered,
                                                  (long long)*upload_size) +
                                 (long long)*upload_size;
                char *grown =
                        held > edge->cfg->max_buffered_bytes
                                ? NULL
                                : try_realloc(req->body,
                                              req->body_len + *upload_size);
                if (!grown) {
                        atomic_fetch_sub(&edge->buffered,
                                         (long long)*upload_size);
                        req->overloaded = true;
                        *upload_size = 0;
                        return MHD_YES;
                }
                req->body = grown;
                memcpy(req->body + req->body_len, upload, *upload_size);
                req->body_len += *upload_size;
                *upload_size = 0;
                return MHD_YES;
        }
        if (req->waiting)
                return edge__finish(req);
        if (!req->msg) {
                /* GET /api/operations/{id}: look it up off the loop thread. */
                edge__wait(req);
                edge__enqueue_lookup(edge, req);
                return MHD_YES;
        }
        if (req->msg->route.stream)
                return edge__stream_begin(req);
        return edge__dispatch(req);
}

void edge__completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                     enum MHD_RequestTerminationCode toe) {
        edge_t *edge = cls;
        req_t *req = *con_cls;
        char labels[256];
        (void)conn;
        (void)toe;
        if (!req)
                return;
        atomic_fetch_add(&edge->handled, 1);
        if (req->registered)
                pending_take(edge->pending,
                             &req->pending.id); /* if still there */
        if (req->sub)
                log_debug("stream closed (%s)", req->label);
        stream_sub_close(edge->hub, req->sub);
        edge__done_waiting(req);
        if (req->label) {
                snprintf(labels, sizeof(labels), "route=\"%s\",status=\"%u\"",
                         req->label, req->status);
                metrics_add(
                        metrics_counter("omnify_http_requests_total",
                                        "HTTP requests by route and status.",
                                        labels),
                        1);
                snprintf(labels, sizeof(labels), "route=\"%s\"", req->label);
                metrics_observe_us(
                        metrics_histogram("omnify_http_request_seconds",
                                          "HTTP request latency by route.",
                                          labels),
                        edge__now_us() - req->t0_us);
        }
        if (req->body)
                atomic_fetch_sub(&edge->buffered, (long long)req->body_len);
        free(req->body);
        free(req->reply_mp);
        free(req->reply_ctype);
        arena_destroy(req->arena);
        *con_cls = NULL;
}
