/*
 * builtin.c - the edge's own routes: /health (alive), /ready (Kafka and the
 * store reachable, and the edge connected), /metrics (Prometheus text),
 * /openapi.json and /asyncapi.json (generated from the schemas as the edge
 * connects: the HTTP API, and the topics, commands, replies and events),
 * and in the
 * monolith /ops/<group>/<what>, each group's own ops answers on the edge's
 * port.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_internal.h"

static enum MHD_Result edge__health(req_t *req) {
        static const char ok[] = "{\"status\":\"ok\"}",
                          failed[] = "{\"status\":\"failed\","
                                     "\"reason\":\"the Kafka producer "
                                     "hit a fatal error\"}";
        edge_t *edge = req->edge;
        /* Alive from the moment it listens; a producer that hit a fatal
         * error never sends again: the supervisor restarts the process. */
        if (atomic_load(&edge->started) && bus_failed(edge->bus))
                return edge__answer(req, 503, "application/json", failed,
                                    sizeof(failed) - 1, NULL);
        return edge__answer(req, 200, "application/json", ok, sizeof(ok) - 1,
                            NULL);
}

static enum MHD_Result edge__ready(req_t *req) {
        edge_t *edge = req->edge;
        char body[160];
        bool started = atomic_load(&edge->started);
        bool kafka = started && bus_is_up(edge->bus),
             store = started && store_is_up(edge->store);
        bool ready = kafka && store && atomic_load(&edge->ready_holds) == 0;
        snprintf(body, sizeof(body),
                 "{\"status\":\"%s\",\"kafka\":%s,\"store\":%s}",
                 ready     ? "ready"
                 : started ? "not ready"
                           : "starting",
                 kafka ? "true" : "false", store ? "true" : "false");
        return edge__answer(req, ready ? 200 : 503, "application/json", body,
                            strlen(body), NULL);
}

static enum MHD_Result edge__metrics(req_t *req) {
        size_t len;
        char *text = metrics_render(&len);
        enum MHD_Result ret = edge__answer(
                req, 200, "text/plain; version=0.0.4", text, len, NULL);
        free(text);
        return ret;
}

static enum MHD_Result edge__openapi(req_t *req) {
        edge_t *edge = req->edge;
        if (!atomic_load(&edge->started))
                return edge__starting(req);
        return edge__answer(req, 200, "application/json", edge->openapi,
                            edge->openapi_len, NULL);
}

static enum MHD_Result edge__asyncapi(req_t *req) {
        edge_t *edge = req->edge;
        if (!atomic_load(&edge->started))
                return edge__starting(req);
        return edge__answer(req, 200, "application/json", edge->asyncapi,
                            edge->asyncapi_len, NULL);
}

static const struct {
        const char *path;
        const char *label;
        enum MHD_Result (*answer)(req_t *req);
} edge__builtins[] = {
        {"/health", "health", edge__health},
        {"/ready", "ready", edge__ready},
        {"/metrics", "metrics", edge__metrics},
        {"/openapi.json", "openapi", edge__openapi},
        {"/asyncapi.json", "asyncapi", edge__asyncapi},
};

#define EDGE__N_BUILTINS (sizeof(edge__builtins) / sizeof(edge__builtins[0]))

enum MHD_Result edge__builtin(req_t *req, const char *url) {
        for (size_t i = 0; i < EDGE__N_BUILTINS; i++) {
                if (strcmp(url, edge__builtins[i].path) == 0) {
                        req->label = edge__builtins[i].label;
                        return edge__builtins[i].answer(req);
                }
        }
        return MHD_NO; /* not a built-in */
}

bool edge__is_builtin(const char *url) {
        for (size_t i = 0; i < EDGE__N_BUILTINS; i++)
                if (strcmp(url, edge__builtins[i].path) == 0)
                        return true;
        return false;
}

/* /ops/<group>/<what> in the monolith. */
enum MHD_Result edge__ops(req_t *req, const char *url) {
        const char *group = url + strlen("/ops/");
        const char *slash = strchr(group, '/');
        req->label = "ops";
        if (slash) {
                size_t n_ops = atomic_load(&req->edge->n_ops);
                for (size_t i = 0; i < n_ops; i++) {
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
