/*
 * builtin.c - the edge's own routes: /health (alive), /ready (Kafka and the
 * store reachable), /metrics (Prometheus text), /openapi.json (generated
 * from the schemas at start), and in the monolith /ops/<group>/<what>, each
 * group's own ops answers on the edge's port.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_internal.h"

enum MHD_Result edge__builtin(req_t *req, const char *url) {
        edge_t *edge = req->edge;
        if (strcmp(url, "/health") == 0) {
                static const char ok[] = "{\"status\":\"ok\"}",
                                  failed[] = "{\"status\":\"failed\","
                                             "\"reason\":\"the Kafka producer "
                                             "hit a fatal error\"}";
                req->label = "health";
                if (bus_failed(edge->bus))
                        return edge__answer(req, 503, "application/json",
                                            failed, sizeof(failed) - 1, NULL);
                return edge__answer(req, 200, "application/json", ok,
                                    sizeof(ok) - 1, NULL);
        }
        if (strcmp(url, "/ready") == 0) {
                char body[160];
                bool kafka = bus_is_up(edge->bus),
                     store = store_is_up(edge->store);
                req->label = "ready";
                snprintf(body, sizeof(body),
                         "{\"status\":\"%s\",\"kafka\":%s,\"store\":%s}",
                         kafka && store ? "ready" : "not ready",
                         kafka ? "true" : "false", store ? "true" : "false");
                return edge__answer(req, kafka && store ? 200 : 503,
                                    "application/json", body, strlen(body),
                                    NULL);
        }
        if (strcmp(url, "/metrics") == 0) {
                size_t len;
                char *text = metrics_render(&len);
                enum MHD_Result ret;
                req->label = "metrics";
                ret = edge__answer(req, 200, "text/plain; version=0.0.4", text,
                                   len, NULL);
                free(text);
                return ret;
        }
        if (strcmp(url, "/openapi.json") == 0) {
                req->label = "openapi";
                return edge__answer(req, 200, "application/json", edge->openapi,
                                    edge->openapi_len, NULL);
        }
        return MHD_NO; /* not a built-in */
}

bool edge__is_builtin(const char *url) {
        return strcmp(url, "/health") == 0 || strcmp(url, "/ready") == 0 ||
               strcmp(url, "/metrics") == 0 ||
               strcmp(url, "/openapi.json") == 0;
}

/* /ops/<group>/<what> in the monolith. */
enum MHD_Result edge__ops(req_t *req, const char *url) {
        const char *group = url + strlen("/ops/");
        const char *slash = strchr(group, '/');
        req->label = "ops";
        if (slash) {
                for (size_t i = 0; i < req->edge->n_ops; i++) {
                        runtime_t *rt = req->edge->ops[i];
                        const char *name = runtime_def(rt)->name;
                        if (strlen(name) == (size_t)(slash - group) &&
                            strncmp(name, group, (size_t)(slash - group)) ==
                                    0) {
                                int status;
                                char *body;
                                size_t len;
                                const char *ctype;
                                enum MHD_Result ret;
                                runtime_ops_answer(rt, slash + 1, &status,
                                                   &body, &len, &ctype);
                                ret = edge__answer(req, (unsigned)status, ctype,
                                                   body, len, NULL);
                                free(body);
                                return ret;
                        }
                }
        }
        return edge__problem(req, 404, "Not Found",
                             "no such group in this process", NULL, NULL);
}
