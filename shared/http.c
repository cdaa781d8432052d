/*
 * http.c - response helpers over libmicrohttpd (see http.h).
 */
#include "http.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Content-Type, the security headers every answer carries, then extra;
 * queue and release. */
static enum MHD_Result http__queue(struct MHD_Connection *conn,
                                   struct MHD_Response *resp, unsigned status,
                                   const char *content_type,
                                   const char *const *extra) {
        enum MHD_Result ret;
        bool own_csp = false;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                content_type);
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        MHD_add_response_header(resp, "X-Frame-Options", "DENY");
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        /* A page served by the edge brings a policy of its own. */
        for (const char *const *e = extra; e && e[0] && e[1]; e += 2)
                if (strcasecmp(e[0], "Content-Security-Policy") == 0)
                        own_csp = true;
        if (!own_csp)
                MHD_add_response_header(
                        resp, "Content-Security-Policy",
                        "default-src 'none'; frame-ancestors 'none'");
        for (; extra && extra[0] && extra[1]; extra += 2)
                MHD_add_response_header(resp, extra[0], extra[1]);
        ret = MHD_queue_response(conn, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

enum MHD_Result http_send(struct MHD_Connection *conn, unsigned status,
                          const char *content_type, const char *body,
                          size_t len, const char *const *extra) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(
                len, (void *)body, MHD_RESPMEM_MUST_COPY);
        if (!resp)
                return MHD_NO;
        return http__queue(conn, resp, status, content_type, extra);
}

enum MHD_Result http_send_stream(struct MHD_Connection *conn,
                                 const char *content_type,
                                 MHD_ContentReaderCallback reader, void *cls,
                                 const char *const *extra) {
        struct MHD_Response *resp = MHD_create_response_from_callback(
                MHD_SIZE_UNKNOWN, 4096, reader, cls, NULL);
        if (!resp)
                return MHD_NO;
        /* Proxies must pass each event on at once. */
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
        return http__queue(conn, resp, 200, content_type, extra);
}

const char *http_title(unsigned status) {
        switch (status) {
        case 400:
                return "Bad Request";
        case 401:
                return "Unauthorized";
        case 403:
                return "Forbidden";
        case 404:
                return "Not Found";
        case 405:
                return "Method Not Allowed";
        case 409:
                return "Conflict";
        case 413:
                return "Content Too Large";
        case 415:
                return "Unsupported Media Type";
        case 422:
                return "Unprocessable Content";
        case 429:
                return "Too Many Requests";
        case 500:
                return "Internal Server Error";
        case 503:
                return "Service Unavailable";
        case 504:
                return "Gateway Timeout";
        default:
                return "Error";
        }
}

enum MHD_Result http_send_problem(struct MHD_Connection *conn, unsigned status,
                                  const char *title, const char *detail,
                                  const schema_report_t *report,
                                  const char *const *extra) {
        json_t *doc = json_pack("{s:s, s:s, s:i}", "type", "about:blank",
                                "title", title ? title : http_title(status),
                                "status", (int)status);
        char *text;
        enum MHD_Result ret;

        if (!doc)
                return MHD_NO;
        if (detail)
                json_object_set_new(doc, "detail", json_string(detail));
        if (report && report->n) {
                json_t *errors = json_array();
                for (size_t i = 0; i < report->n; i++)
                        json_array_append_new(
                                errors, json_pack("{s:s, s:s}", "field",
                                                  report->v[i].field, "reason",
                                                  report->v[i].reason));
                json_object_set_new(doc, "errors", errors);
        }
        text = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        if (!text)
                return MHD_NO;
        ret = http_send(conn, status, "application/problem+json", text,
                        strlen(text), extra);
        free(text);
        return ret;
}
