/*
 * respond.c - the edge's answers: JSON, problems, and the answer of a
 * request another thread completed.
 *
 * Every answer goes through edge__answer or edge__problem, which add the
 * CORS headers of an allowed origin and note the status for the metrics.
 * edge__finish turns a completed request's outcome (a group's reply, an
 * accepted async command, a timeout, an operation lookup...) into its HTTP
 * answer, on the loop thread that resumed it. Replies are msgpack from the
 * groups and go out as JSON; a reply with a content type of its own (CSV,
 * a file) goes out as it is, and a redirect as a Location header.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "codec.h"
#include "edge_internal.h"
#include "http.h"
#include "log.h"

void edge__complete(req_t *req, req_outcome_t outcome) {
        req->outcome = outcome;
        MHD_resume_connection(req->conn);
}

/* extra plus the CORS headers when the request came from an allowed
 * origin, into out (room for 16 pairs). */
static const char *const *
edge__headers(const req_t *req, const char *const *extra, const char **out) {
        size_t n = 0;
        for (; extra && extra[0] && extra[1] && n < 20; extra += 2) {
                out[n++] = extra[0];
                out[n++] = extra[1];
        }
        if (req->cors_origin) {
                out[n++] = "Access-Control-Allow-Origin";
                out[n++] = req->cors_origin;
                out[n++] = "Vary";
                out[n++] = "Origin";
                out[n++] = "Access-Control-Expose-Headers";
                out[n++] = "Location, Retry-After, X-Request-Id";
        }
        out[n] = NULL;
        return out;
}

enum MHD_Result edge__answer(req_t *req, unsigned status, const char *ctype,
                             const char *body, size_t len,
                             const char *const *extra) {
        const char *hdrs[32];
        req->status = status;
        req->answered = true;
        return http_send(req->conn, status, ctype, body, len,
                         edge__headers(req, extra, hdrs));
}

enum MHD_Result edge__problem(req_t *req, unsigned status, const char *title,
                              const char *detail, const schema_report_t *report,
                              const char *const *extra) {
        const char *hdrs[32];
        req->status = status;
        req->answered = true;
        return http_send_problem(req->conn, status, title, detail, report,
                                 edge__headers(req, extra, hdrs));
}

enum MHD_Result edge__answer_stream(req_t *req, const char *ctype,
                                    MHD_ContentReaderCallback reader) {
        const char *hdrs[32];
        req->status = 200;
        req->answered = true;
        return http_send_stream(req->conn, ctype, reader, req,
                                edge__headers(req, NULL, hdrs));
}

enum MHD_Result edge__unavailable(req_t *req, const char *detail) {
        static const char *const retry[] = {"Retry-After", "1", NULL};
        metrics_add(req->edge->m_produce_errors, 1);
        return edge__problem(req, 503, "Service Unavailable", detail, NULL,
                             retry);
}

enum MHD_Result edge__starting(req_t *req) {
        static const char *const retry[] = {"Retry-After", "1", NULL};
        return edge__problem(req, 503, "Service Unavailable",
                             "the edge is starting", NULL, retry);
}

static bool edge__is_redirect(int status) {
        return status == 301 || status == 302 || status == 303 ||
               status == 307 || status == 308;
}

/* A Location a client may be sent to: visible ASCII, not empty, bounded. */
static bool edge__valid_location(slice_t loc) {
        if (loc.len == 0 || loc.len > 2048)
                return false;
        for (size_t i = 0; i < loc.len; i++)
                if (loc.ptr[i] <= 0x20 || loc.ptr[i] >= 0x7f)
                        return false;
        return true;
}

static bool edge__is_msgpack(const char *ctype) {
        return !ctype || edge__ieq_prefix(ctype, "application/msgpack") ||
               edge__ieq_prefix(ctype, "application/x-msgpack");
}

static enum MHD_Result edge__bad_gateway(req_t *req) {
        log_error("reply to %s is malformed", req->id);
        return edge__problem(req, 502, "Bad Gateway",
                             "the service answered something malformed", NULL,
                             NULL);
}

/*
 * The group's reply: its bytes as they are when it set a content type
 * (CSV, a file); a redirect (3xx with {"location"}) as a Location header;
 * otherwise its msgpack body rendered as JSON.
 */
static enum MHD_Result edge__send_reply(req_t *req, int status, const char *mp,
                                        size_t mp_len, const char *ctype) {
        const char *extra[] = {"X-Request-Id", req->id, NULL, NULL, NULL};
        char *json = NULL, retry[16];
        size_t json_len = 0, off = 0;
        msgpack_zone zone;
        msgpack_object obj;
        enum MHD_Result ret;

        if (status < 100 || status > 599)
                return edge__bad_gateway(req);
        if (!edge__is_msgpack(ctype))
                return edge__answer(req, (unsigned)status, ctype, mp, mp_len,
                                    extra);
        msgpack_zone_init(&zone, 1024);
        if (msgpack_unpack(mp, mp_len, &off, &zone, &obj) !=
                    MSGPACK_UNPACK_SUCCESS ||
            codec_msgpack_to_json((slice_t){mp, mp_len}, &json, &json_len) !=
                    CODEC_OK) {
                msgpack_zone_destroy(&zone);
                return edge__bad_gateway(req);
        }
        if (status == 429 || status == 503) {
                /* A group says how long to wait in its problem body. */
                const msgpack_object *ra = codec_map_get(&obj, "retry_after");
                long long secs = 1;
                if (ra && ra->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                    ra->via.u64 < 86400 * 7)
                        secs = (long long)ra->via.u64;
                snprintf(retry, sizeof(retry), "%lld", secs);
                extra[2] = "Retry-After";
                extra[3] = retry;
        }
        if (edge__is_redirect(status)) {
                slice_t loc = codec_map_str(&obj, "location");
                char *text;
                if (!edge__valid_location(loc)) {
                        free(json);
                        msgpack_zone_destroy(&zone);
                        return edge__bad_gateway(req);
                }
                text = arena_strndup(req->arena, loc.ptr, loc.len);
                extra[2] = "Location";
                extra[3] = text;
                ret = edge__answer(req, (unsigned)status, "text/plain", "", 0,
                                   extra);
        } else if (status == 204) {
                ret = edge__answer(req, 204, "application/json", "", 0, extra);
        } else {
                ret = edge__answer(req, (unsigned)status,
                                   status >= 400 ? "application/problem+json"
                                                 : "application/json",
                                   json, json_len, extra);
        }
        free(json);
        msgpack_zone_destroy(&zone);
        return ret;
}

/* A stored result with a content type of its own (a CSV export run
 * async): its text as a JSON string, or base64 when it is not UTF-8. */
static char *edge__operation_raw(const req_t *req, const char *state,
                                 int status, const char *bytes, size_t len) {
        json_t *doc, *result;
        json_t *text = json_stringn(bytes, len);
        char *out;
        result = json_pack("{s:i, s:s}", "status", status, "content_type",
                           req->reply_ctype);
        if (!result) {
                json_decref(text);
                return NULL;
        }
        if (text) {
                json_object_set_new(result, "body", text);
        } else {
                char *b64 = xmalloc(4 * ((len + 2) / 3) + 1);
                EVP_EncodeBlock((unsigned char *)b64,
                                (const unsigned char *)bytes, (int)len);
                json_object_set_new(result, "body_base64", json_string(b64));
                free(b64);
        }
        doc = json_pack("{s:s, s:s, s:o}", "operation_id", req->id, "status",
                        state, "result", result);
        out = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        json_decref(doc);
        return out;
}

static enum MHD_Result edge__send_operation(req_t *req, const char *state,
                                            int status, const char *mp,
                                            size_t mp_len) {
        char *json = NULL, *text;
        size_t json_len = 0;
        enum MHD_Result ret;
        size_t cap;
        if (mp && req->reply_ctype) {
                text = edge__operation_raw(req, state, status, mp, mp_len);
                if (!text)
                        return edge__problem(req, 500, "Internal Server Error",
                                             NULL, NULL, NULL);
                ret = edge__answer(req, 200, "application/json", text,
                                   strlen(text), NULL);
                free(text);
                return ret;
        }
        if (mp && codec_msgpack_to_json((slice_t){mp, mp_len}, &json,
                                        &json_len) != CODEC_OK)
                return edge__problem(req, 502, "Bad Gateway",
                                     "the stored result is malformed", NULL,
                                     NULL);
        cap = json_len + 256;
        text = xmalloc(cap);
        if (json)
                snprintf(text, cap,
                         "{\"operation_id\":\"%s\",\"status\":\"%s\","
                         "\"result\":{\"status\":%d,\"body\":%s}}",
                         req->id, state, status, json);
        else
                snprintf(text, cap,
                         "{\"operation_id\":\"%s\",\"status\":\"%s\"}", req->id,
                         state);
        ret = edge__answer(req, 200, "application/json", text, strlen(text),
                           NULL);
        free(text);
        free(json);
        return ret;
}

/* Build the answer of a request that was suspended and is now resumed. */
enum MHD_Result edge__finish(req_t *req) {
        char location[128];
        const char *loc[] = {"Location", location, "X-Request-Id", req->id,
                             NULL};
        char body[320];

        memcpy(location, "/api/operations/", 16);
        memcpy(location + 16, req->id, MSGID_TEXT_SIZE); /* with its NUL */
        switch (req->outcome) {
        case OUT_REPLY:
                if (req->sub && req->reply_status == 200 && !req->reply_ctype)
                        return edge__stream_history(req);
                return edge__send_reply(req, req->reply_status, req->reply_mp,
                                        req->reply_mp_len, req->reply_ctype);
        case OUT_ACCEPTED: {
                /* The hot path of async publishing: no formatting. */
                static const char head[] = "{\"operation_id\":\"",
                                  tail[] = "\",\"status\":\"accepted\"}";
                size_t n = 0, id_len = strlen(req->id);
                memcpy(body, head, sizeof(head) - 1);
                n += sizeof(head) - 1;
                memcpy(body + n, req->id, id_len);
                n += id_len;
                memcpy(body + n, tail, sizeof(tail) - 1);
                n += sizeof(tail) - 1;
                return edge__answer(req, 202, "application/json", body, n, loc);
        }
        case OUT_TIMEOUT: {
                char detail[160];
                snprintf(detail, sizeof(detail),
                         "no reply in time; the command stays queued as "
                         "operation %s",
                         req->id);
                return edge__problem(req, 504, "Gateway Timeout", detail, NULL,
                                     loc);
        }
        case OUT_UNAVAILABLE:
                return edge__unavailable(
                        req, "the message bus did not accept the command");
        case OUT_OPERATION:
                /* A tenant's operation is its user's: other tenants and
                 * other members of the same one see nothing. */
                if ((req->op_tenant[0] &&
                     (!req->authed ||
                      strcmp(req->op_tenant, req->claims.tid) != 0)) ||
                    (req->op_user[0] &&
                     (!req->authed ||
                      strcmp(req->op_user, req->claims.sub) != 0)))
                        return edge__problem(req, 404, "Not Found",
                                             "no such operation", NULL, NULL);
                return edge__send_operation(req, "completed", req->reply_status,
                                            req->reply_mp, req->reply_mp_len);
        case OUT_OP_PENDING:
                return edge__send_operation(req, "pending", 0, NULL, 0);
        case OUT_OP_NOT_FOUND:
                return edge__problem(req, 404, "Not Found", "no such operation",
                                     NULL, NULL);
        case OUT_OP_STORE_DOWN:
                return edge__unavailable(req,
                                         "the operation log is unreachable");
        case OUT_SHUTDOWN:
                return edge__unavailable(req, "the edge is shutting down");
        case OUT_NONE:
                break;
        }
        return edge__problem(req, 500, "Internal Server Error", NULL, NULL,
                             NULL);
}
