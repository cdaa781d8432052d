/*
 * fuzz_route.c - libFuzzer target: route matching.
 *
 * Input: "<method> <path>", split at the first space (no space: an empty
 * method and the whole input as path). Matched against the real schemas
 * and against the synthetic set of fuzz_util.c, which has {param} routes,
 * a literal competing with a parameter and eight parameters in one path.
 *
 * Every answer is checked against a plain re-reading of the contract in
 * schema.h: split the path on '/', a route matches when it has as many
 * segments and its literals are equal; the path is resolved first: among
 * all matching routes, whatever their method, the one with a literal at the
 * first position where they differ names the path; then the method: a route
 * of that path with it is found, else METHOD_NOT_ALLOWED with that path's
 * methods listed whole, in the order GET, POST, PUT, PATCH, DELETE, as many
 * as fit the caller's buffer.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "schema.h"

#define MAX_SEGS 64

static schema_set_t *real_set, *synthetic_set;
static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void)argc;
        (void)argv;
        real_set = fuzz_schemas_real();
        synthetic_set = fuzz_schemas_synthetic();
        return 0;
}

/* The path's segments; -1 when it cannot match any route. */
static int split(slice_t path, slice_t *segs) {
        int n = 0;
        size_t start = 1;

        if (path.len < 2 || path.ptr[0] != '/')
                return -1;
        for (size_t i = 1; i <= path.len; i++) {
                if (i < path.len && path.ptr[i] != '/')
                        continue;
                if (i == start || n == MAX_SEGS)
                        return -1;
                segs[n++] = (slice_t){path.ptr + start, i - start};
                start = i + 1;
        }
        return n;
}

static bool is_param(const char *seg) {
        return seg[0] == '{';
}

/* Does msg's route match? *score: one bit per literal, first is highest. */
static bool matches(const schema_msg_t *msg, const slice_t *segs, int n,
                    uint64_t *score) {
        const schema_route_t *r = &msg->route;

        *score = 0;
        if (!r->method || (int)r->n_segments != n)
                return false;
        for (int i = 0; i < n; i++) {
                if (is_param(r->segments[i]))
                        continue;
                if (!slice_eq(segs[i], r->segments[i]))
                        return false;
                *score |= UINT64_C(1) << (n - 1 - i);
        }
        return true;
}

static void check_found(const schema_msg_t *msg, const schema_params_t *params,
                        slice_t path, const slice_t *segs, int n) {
        size_t k = 0;

        FUZZ_CHECK(msg != NULL && msg->route.method != NULL);
        FUZZ_CHECK((int)msg->route.n_segments == n);
        for (int i = 0; i < n; i++) {
                const char *seg = msg->route.segments[i];
                size_t len = strlen(seg);
                if (!is_param(seg))
                        continue;
                FUZZ_CHECK(k < params->n);
                /* "{name}" binds the field called name. */
                FUZZ_CHECK(strlen(params->names[k]) == len - 2 &&
                           memcmp(params->names[k], seg + 1, len - 2) == 0);
                FUZZ_CHECK(params->values[k].ptr == segs[i].ptr &&
                           params->values[k].len == segs[i].len);
                FUZZ_CHECK(params->values[k].ptr >= path.ptr &&
                           params->values[k].ptr + params->values[k].len <=
                                   path.ptr + path.len);
                k++;
        }
        FUZZ_CHECK(k == params->n && k <= SCHEMA_MAX_PARAMS);
}

static void check_allow(const char *allow, size_t allow_size,
                        unsigned allowed) {
        char full[64] = "";
        size_t len = strlen(allow);

        for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
                if (!(allowed & (1u << i)))
                        continue;
                if (full[0])
                        strcat(full, ", ");
                strcat(full, methods[i]);
        }
        FUZZ_CHECK(len < allow_size);
        FUZZ_CHECK(strncmp(allow, full, len) == 0);
        /* Whole methods only: cut before one, at ", " or at the end. */
        FUZZ_CHECK(len == 0 || full[len] == '\0' || full[len] == ',');
        /* As many as fit: the next one would not have. */
        if (full[len] != '\0') {
                const char *next_start = len ? full + len + 2 : full;
                const char *next = strchr(next_start, ',');
                size_t next_end = next ? (size_t)(next - full) : strlen(full);
                FUZZ_CHECK(next_end >= allow_size);
        }
}

static void check_set(const schema_set_t *set, slice_t method, slice_t path,
                      size_t allow_size) {
        slice_t segs[MAX_SEGS];
        int n = split(path, segs);
        const schema_msg_t *want = NULL, *msg = NULL;
        unsigned allowed = 0;
        schema_params_t params;
        char *allow = malloc(allow_size); /* exact size: ASan sees overruns */
        schema_match_t got;

        FUZZ_CHECK(allow != NULL);
        bool any = false;
        uint64_t best = 0;

        /* The path first: the best score among the routes of any method. */
        for (size_t i = 0; n >= 0 && i < schema_set_count(set); i++) {
                uint64_t score;
                if (matches(schema_set_at(set, i), segs, n, &score) &&
                    (!any || score > best)) {
                        best = score;
                        any = true;
                }
        }
        /* Then the method, among the routes of that score. */
        for (size_t i = 0; any && i < schema_set_count(set); i++) {
                const schema_msg_t *m = schema_set_at(set, i);
                uint64_t score;
                if (!matches(m, segs, n, &score) || score != best)
                        continue;
                if (!slice_eq(method, m->route.method)) {
                        for (size_t k = 0; k < 5; k++)
                                if (strcmp(m->route.method, methods[k]) == 0)
                                        allowed |= 1u << k;
                        continue;
                }
                /* Two routes of one method and shape are refused at load,
                 * so at most one route of the method has the best score. */
                FUZZ_CHECK(!want);
                want = m;
        }

        memset(&params, 0xA5, sizeof(params));
        got = schema_route_match(set, method, path, &msg, &params, allow,
                                 allow_size);
        if (want) {
                FUZZ_CHECK(got == SCHEMA_MATCH_FOUND);
                FUZZ_CHECK(msg == want);
                check_found(msg, &params, path, segs, n);
        } else if (allowed) {
                FUZZ_CHECK(got == SCHEMA_MATCH_METHOD_NOT_ALLOWED);
                FUZZ_CHECK(msg == NULL && params.n == 0);
                check_allow(allow, allow_size, allowed);
        } else {
                FUZZ_CHECK(got == SCHEMA_MATCH_NOT_FOUND);
                FUZZ_CHECK(msg == NULL && params.n == 0);
                FUZZ_CHECK(allow[0] == '\0');
        }
        /* The optional outputs are optional. */
        FUZZ_CHECK(schema_route_match(set, method, path, NULL, NULL, NULL, 0) ==
                   got);
        free(allow);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *p = (const char *)data;
        const char *sp = memchr(p, ' ', size);
        slice_t method = {p, 0}, path = {p, size};
        /* A roomy buffer and one sized from the input, down to 1 byte. */
        size_t small = 1 + size % 24;

        if (sp) {
                method = (slice_t){p, (size_t)(sp - p)};
                path = (slice_t){sp + 1, size - method.len - 1};
        }
        check_set(real_set, method, path, 64);
        check_set(real_set, method, path, small);
        check_set(synthetic_set, method, path, 64);
        check_set(synthetic_set, method, path, small);
        return 0;
}
