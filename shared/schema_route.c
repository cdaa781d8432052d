/*
 * schema_route.c - matching a request's method and path to a route (see
 * schema_route_match in schema.h).
 *
 * Route matching runs once per HTTP request and allocates nothing: the path
 * is split into slices on the stack and compared with each route's segments.
 */
#include "schema_internal.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Route matching (per request: no allocation)
 * ------------------------------------------------------------------------ */

/* Split "/a/b/c" into slices; false on an empty segment or too many. */
static bool path_split(slice_t path, slice_t *segs, size_t *n) {
        size_t start = 1;

        *n = 0;
        if (path.len < 2 || !path.ptr || path.ptr[0] != '/')
                return false;
        for (size_t i = 1; i <= path.len; i++) {
                if (i < path.len && path.ptr[i] != '/')
                        continue;
                if (i == start || *n == SCHEMA_MAX_SEGMENTS)
                        return false;
                segs[(*n)++] = (slice_t){path.ptr + start, i - start};
                start = i + 1;
        }
        return true;
}

/*
 * Does route match the segments? *score has bit (n-1-i) set for each literal
 * segment i, so comparing scores prefers a literal at the first position
 * where two matching routes differ.
 */
static bool route_matches(const schema_route_t *route, const slice_t *segs,
                          size_t n, uint32_t *score) {
        uint32_t s = 0;

        if (route->n_segments != n)
                return false;
        for (size_t i = 0; i < n; i++) {
                const char *seg = route->segments[i];
                if (schema__segment_is_param(seg))
                        continue;
                if (!slice_eq(segs[i], seg))
                        return false;
                s |= 1u << (n - 1 - i);
        }
        *score = s;
        return true;
}

schema_match_t schema_route_match(const schema_set_t *set, slice_t method,
                                  slice_t path, const schema_msg_t **msg,
                                  schema_params_t *params, char *allow,
                                  size_t allow_size) {
        slice_t segs[SCHEMA_MAX_SEGMENTS];
        size_t n;
        const schema_msg_t *best = NULL;
        uint32_t best_score = 0;
        unsigned allowed = 0;
        bool found = false;

        if (allow && allow_size)
                allow[0] = '\0';
        if (msg)
                *msg = NULL;
        if (params)
                params->n = 0;
        if (!set || !path_split(path, segs, &n))
                return SCHEMA_MATCH_NOT_FOUND;

        /* The path first: the best-scoring template among all routes. */
        for (size_t i = 0; i < set->n_msgs; i++) {
                const schema_msg_t *m = &set->msgs[i];
                uint32_t score;
                if (!m->route.method ||
                    !route_matches(&m->route, segs, n, &score))
                        continue;
                if (!found || score > best_score) {
                        best_score = score;
                        found = true;
                }
        }
        /* Then the method, among the routes of that template (two routes
         * of one shape have one spelling: the score names the template). */
        for (size_t i = 0; found && i < set->n_msgs; i++) {
                const schema_msg_t *m = &set->msgs[i];
                uint32_t score;
                if (!m->route.method ||
                    !route_matches(&m->route, segs, n, &score) ||
                    score != best_score)
                        continue;
                if (slice_eq(method, m->route.method))
                        best = m;
                else
                        allowed |= 1u << schema__method_index(
                                           m->route.method,
                                           strlen(m->route.method));
        }

        if (best) {
                if (msg)
                        *msg = best;
                if (params) {
                        for (size_t i = 0; i < n; i++) {
                                const char *seg = best->route.segments[i];
                                if (!schema__segment_is_param(seg))
                                        continue;
                                assert(params->n < SCHEMA_MAX_PARAMS);
                                params->names[params->n] =
                                        schema__param_field(best, seg)->name;
                                params->values[params->n] = segs[i];
                                params->n++;
                        }
                }
                return SCHEMA_MATCH_FOUND;
        }
        if (!allowed)
                return SCHEMA_MATCH_NOT_FOUND;
        if (allow && allow_size) {
                size_t used = 0;
                for (size_t i = 0; i < SCHEMA__ARRAY_LEN(schema__methods);
                     i++) {
                        int w;
                        if (!(allowed & (1u << i)))
                                continue;
                        w = snprintf(allow + used, allow_size - used, "%s%s",
                                     used ? ", " : "", schema__methods[i]);
                        if (w < 0 || (size_t)w >= allow_size - used)
                                break;
                        used += (size_t)w;
                }
                allow[used] = '\0';
        }
        return SCHEMA_MATCH_METHOD_NOT_ALLOWED;
}
