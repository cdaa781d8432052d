/*
 * access.c - who may call a route: the bearer token, the role it holds and
 * the edge facts the route requires.
 *
 * Runs on the HTTP loop threads, before the body is read, so a refusal
 * costs no body. Tokens are HS256 JWTs checked with the pinned algorithm
 * (token.h); their claims become the command's caller headers.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "edge_internal.h"
#include "facts.h"
#include "log.h"

/* Check the bearer token when the route needs one (or when one is sent). */
int edge__authenticate(req_t *req, bool required) {
        const char *h = MHD_lookup_connection_value(
                req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        token_err_t err;
        if (!h)
                return required ? -1 : 0;
        if (!edge__ieq_prefix(h, "bearer "))
                return -1;
        h += 7;
        while (*h == ' ')
                h++;
        err = token_verify(&req->edge->keys, slice_of(h), time(NULL),
                           &req->claims);
        if (err != TOKEN_OK) {
                log_info("token refused: %s", token_strerror(err));
                return -1;
        }
        /* Deny facts: a claim a group's events put on a deny list. */
        req->denied =
                facts_denied(req->edge->facts, &req->claims, clock_wall_ms());
        if (req->denied) {
                log_info("token refused by the fact %s", req->denied->name);
                return -1;
        }
        req->authed = true;
        return 0;
}

enum MHD_Result edge__unauthorized(req_t *req) {
        static const char *const hdr[] = {"WWW-Authenticate",
                                          "Bearer realm=\"omnify\"", NULL};
        const char *detail = req->denied && req->denied->detail
                                     ? req->denied->detail
                                     : "a valid bearer token is required";
        return edge__problem(req, 401, "Unauthorized", detail, NULL, hdr);
}

/* The strongest role in a comma-separated roles claim. */
static schema_role_t edge__token_role(const char *roles) {
        schema_role_t best = SCHEMA_ROLE_NONE;
        const char *p = roles;
        while (p && *p) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t)(comma - p) : strlen(p);
                schema_role_t r = schema_role_parse(p, len);
                if (r > best)
                        best = r;
                p += len + (comma ? 1 : 0);
        }
        return best;
}

/* What the route asks beyond a valid token: a role, and the version facts
 * it requires (the fact's own words when one does not hold). */
enum MHD_Result edge__permit(req_t *req) {
        const schema_route_t *route = &req->msg->route;
        if (route->role != SCHEMA_ROLE_NONE &&
            edge__token_role(req->claims.roles) < route->role) {
                char detail[128];
                snprintf(detail, sizeof(detail),
                         "this needs the %s role in the organisation",
                         schema_role_name(route->role));
                return edge__problem(req, 403, "Forbidden", detail, NULL, NULL);
        }
        for (size_t i = 0; i < route->n_requires; i++) {
                const schema_fact_t *fact = route->requires[i];
                int64_t value;
                char detail[256];
                switch (facts_check(req->edge->facts, fact, &req->claims,
                                    &value)) {
                case FACTS_HOLD:
                        break;
                case FACTS_UNKNOWN: {
                        static const char *const retry[] = {"Retry-After", "2",
                                                            NULL};
                        snprintf(detail, sizeof(detail),
                                 "the edge does not know the current %s yet",
                                 fact->name);
                        return edge__problem(req, 503, "Service Unavailable",
                                             detail, NULL, retry);
                }
                case FACTS_BELOW:
                        return edge__problem(req, 403, "Forbidden",
                                             schema_fact_detail(fact, value,
                                                                detail,
                                                                sizeof(detail)),
                                             NULL, NULL);
                }
        }
        return MHD_YES;
}
