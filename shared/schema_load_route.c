/*
 * schema_load_route.c - reading a message's "route" (see schema.h).
 *
 * Three steps, because a route refers to what is read after it: the route's
 * own keys (schema__load_route), then what it says about the message's
 * fields once they are read ({param} segments, raw_body, key, rate_key:
 * schema__load_bind_route), then what needs every file read (the facts a
 * route requires, the events a stream sends: schema__load_link_route).
 */
#include "schema_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

#define FAIL(p, ...) \
        schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p, __VA_ARGS__)

static const int route_success_codes[] = {200, 201, 202, 204, 302, 303};

/* Split and check a route path; fills route->segments. */
static schema_err_t route_path(schema__loader_t *ld, const char *path_str,
                               const char *p, schema_route_t *route) {
        size_t len = strlen(path_str);
        size_t start = 1, n_params = 0;

        if (strncmp(path_str, "/api/", 5) != 0 || len == 5)
                return FAIL(p, "must start with /api/ and name a resource");
        if (strcmp(path_str, "/api/operations") == 0 ||
            strncmp(path_str, "/api/operations/", 16) == 0)
                return FAIL(p, "/api/operations is reserved for the edge");
        route->segments = xcalloc(SCHEMA_MAX_SEGMENTS, sizeof(char *));
        for (size_t i = 1; i <= len; i++) {
                if (i < len && path_str[i] != '/')
                        continue;
                const char *seg = path_str + start;
                size_t slen = i - start;
                start = i + 1;
                if (slen == 0)
                        return FAIL(p, "must not have empty segments or end "
                                       "with '/'");
                if (route->n_segments == SCHEMA_MAX_SEGMENTS)
                        return FAIL(p, "has more than %d segments",
                                    SCHEMA_MAX_SEGMENTS);
                if (seg[0] == '{') {
                        if (slen < 3 || seg[slen - 1] != '}' ||
                            !schema__name_valid(seg + 1, slen - 2,
                                                SCHEMA_MAX_NAME, true))
                                return FAIL(p, "parameter segments are {name} "
                                               "with a field name");
                        if (++n_params > SCHEMA_MAX_PARAMS)
                                return FAIL(p, "has more than %d parameters",
                                            SCHEMA_MAX_PARAMS);
                        for (size_t k = 0; k < route->n_segments; k++)
                                if (strlen(route->segments[k]) == slen &&
                                    memcmp(route->segments[k], seg, slen) == 0)
                                        return FAIL(p,
                                                    "names parameter %.*s "
                                                    "twice",
                                                    (int)slen, seg);
                } else {
                        for (size_t k = 0; k < slen; k++) {
                                char c = seg[k];
                                if (!((c >= 'a' && c <= 'z') ||
                                      (c >= 'A' && c <= 'Z') ||
                                      schema__is_digit(c) || c == '-' ||
                                      c == '.' || c == '_' || c == '~'))
                                        return FAIL(p, "literal segments are "
                                                       "letters, digits and "
                                                       "-._~");
                        }
                }
                route->segments[route->n_segments++] = xstrndup(seg, slen);
        }
        return SCHEMA_OK;
}

static schema_err_t route_success(schema__loader_t *ld, json_t *def,
                                  const char *path, schema_route_t *route) {
        json_t *v = json_object_get(def, "success");
        char p[SCHEMA_PATH_SIZE];

        route->success = 200;
        if (!v)
                return SCHEMA_OK;
        schema__path_join(p, path, "success");
        for (size_t i = 0; i < SCHEMA__ARRAY_LEN(route_success_codes); i++)
                if (json_is_integer(v) &&
                    json_integer_value(v) == route_success_codes[i])
                        route->success = route_success_codes[i];
        if (route->success != json_integer_value(v))
                return FAIL(p, "must be one of 200, 201, 202, 204, 302, 303");
        return SCHEMA_OK;
}

static schema_err_t route_statuses(schema__loader_t *ld, json_t *def,
                                   const char *path, schema_route_t *route) {
        json_t *v = json_object_get(def, "statuses"), *item;
        char p[SCHEMA_PATH_SIZE];
        size_t i;

        if (!v)
                return SCHEMA_OK;
        schema__path_join(p, path, "statuses");
        if (!json_is_array(v) || json_array_size(v) > SCHEMA_MAX_STATUSES)
                return FAIL(p, "must be an array of at most %d statuses",
                            SCHEMA_MAX_STATUSES);
        json_array_foreach(v, i, item) {
                json_int_t s =
                        json_is_integer(item) ? json_integer_value(item) : 0;
                if (!(s == 301 || s == 302 || s == 303 || s == 307 ||
                      (s >= 400 && s <= 599)))
                        return FAIL(p, "each must be a redirect (301 302 303 "
                                       "307) or an error status (400-599)");
                if (s == route->success)
                        return FAIL(p, "lists the success status %d", (int)s);
                for (size_t k = 0; k < route->n_statuses; k++)
                        if (route->statuses[k] == s)
                                return FAIL(p, "lists %d twice", (int)s);
                route->statuses[route->n_statuses++] = (int)s;
        }
        return SCHEMA_OK;
}

static schema_err_t route_produces(schema__loader_t *ld, json_t *def,
                                   const char *path, schema_route_t *route) {
        char p[SCHEMA_PATH_SIZE];
        char **list = NULL;
        size_t n = 0, k = 1;
        schema_err_t err;

        if ((err = schema__load_strings(ld, def, path, "produces", &list, &n)))
                return err;
        schema__path_join(p, path, "produces");
        route->produces = xcalloc(n + 1, sizeof(char *));
        route->produces[0] = xstrdup("application/json");
        route->n_produces = 1;
        for (size_t i = 0; i < n; i++) {
                if (!schema__media_type_valid(list[i])) {
                        schema__strings_free(list, n);
                        return FAIL(p, "each must be a media type "
                                       "(type/subtype)");
                }
                if (strcmp(list[i], "application/json") != 0)
                        route->produces[k++] = xstrdup(list[i]);
        }
        route->n_produces = k;
        schema__strings_free(list, n);
        return SCHEMA_OK;
}

/* "match": {event field: route field}. */
static schema_err_t stream_match(schema__loader_t *ld, json_t *def,
                                 const char *path, schema_stream_t *s) {
        json_t *v = json_object_get(def, "match"), *value;
        char p[SCHEMA_PATH_SIZE];
        const char *key;

        schema__path_join(p, path, "match");
        if (!json_is_object(v) || json_object_size(v) > SCHEMA_MAX_LIST)
                return FAIL(p, "must be an object of event field: route "
                               "field (may be empty)");
        s->match_event = xcalloc(json_object_size(v) + 1, sizeof(char *));
        s->match_field = xcalloc(json_object_size(v) + 1, sizeof(char *));
        json_object_foreach(v, key, value) {
                const char *f = json_string_value(value);
                if (!schema__name_valid(key, strlen(key), SCHEMA_MAX_NAME,
                                        true) ||
                    !f ||
                    !schema__name_valid(f, strlen(f), SCHEMA_MAX_NAME, true))
                        return FAIL(p, "must be an object of event field: "
                                       "route field (may be empty)");
                s->match_event[s->n_match] = xstrdup(key);
                s->match_field[s->n_match++] = xstrdup(f);
        }
        return SCHEMA_OK;
}

static schema_err_t route_stream(schema__loader_t *ld, json_t *def,
                                 const char *path, schema_route_t *route) {
        static const char *const keys[] = {
                "topic", "match", "types", "until", "history", "tenant", NULL};
        json_t *v = json_object_get(def, "stream");
        char p[SCHEMA_PATH_SIZE];
        schema_stream_t *s;
        schema_err_t err;

        if (!v)
                return SCHEMA_OK;
        schema__path_join(p, path, "stream");
        if (!json_is_object(v))
                return FAIL(p, "must be an object");
        s = route->stream = xcalloc(1, sizeof(*s));
        s->tenant = true;
        if ((err = schema__load_check_keys(ld, v, p, keys)) ||
            (err = schema__load_string(ld, v, p, "topic", true, false,
                                       &s->topic)) ||
            (err = stream_match(ld, v, p, s)) ||
            (err = schema__load_strings(ld, v, p, "types", &s->types,
                                        &s->n_types)) ||
            (err = schema__load_strings(ld, v, p, "until", &s->until,
                                        &s->n_until)) ||
            (err = schema__load_string(ld, v, p, "history", false, false,
                                       &s->history)) ||
            (err = schema__load_bool(ld, v, p, "tenant", &s->tenant)))
                return err;
        if (!s->n_types) {
                char q[SCHEMA_PATH_SIZE];
                schema__path_join(q, p, "types");
                return FAIL(q, "must list the event types sent");
        }
        if (strcmp(route->method, "GET") != 0 ||
            route->mode != SCHEMA_MODE_SYNC || !route->auth)
                return FAIL(p, "a stream is a GET route, \"auth\": true, "
                               "\"mode\": \"sync\"");
        if (!s->tenant && route->role < SCHEMA_ROLE_ADMIN)
                return FAIL(p, "\"tenant\": false (every tenant's events) "
                               "needs \"role\": \"admin\" or \"owner\"");
        return SCHEMA_OK;
}

schema_err_t schema__load_route(schema__loader_t *ld, json_t *def,
                                const char *path, schema_route_t *route) {
        static const char *const keys[] = {
                "method",       "path",     "auth",       "mode",
                "role",         "requires", "rate_limit", "rate_key",
                "secret_reply", "key",      "success",    "statuses",
                "raw_body",     "produces", "stream",     NULL};
        char p[SCHEMA_PATH_SIZE];
        schema_err_t err;
        json_t *v;

        if (!json_is_object(def))
                return FAIL(path, "must be an object");
        if (json_object_get(def, "terms")) {
                schema__path_join(p, path, "terms");
                return FAIL(p, "is replaced by \"requires\": [\"terms\"] (a "
                               "fact of the group that owns it)");
        }
        if ((err = schema__load_check_keys(ld, def, path, keys)) != SCHEMA_OK)
                return err;

        v = json_object_get(def, "method");
        schema__path_join(p, path, "method");
        if (!json_is_string(v) ||
            schema__method_index(json_string_value(v), json_string_length(v)) <
                    0)
                return FAIL(p, "must be one of GET, POST, PUT, PATCH, DELETE");
        route->method = xstrdup(json_string_value(v));

        v = json_object_get(def, "path");
        schema__path_join(p, path, "path");
        if (!json_is_string(v))
                return FAIL(p, "must be a string");
        route->path = xstrdup(json_string_value(v));
        if ((err = route_path(ld, route->path, p, route)) != SCHEMA_OK)
                return err;

        v = json_object_get(def, "auth");
        if (!json_is_boolean(v)) {
                schema__path_join(p, path, "auth");
                return FAIL(p, "must be true or false");
        }
        route->auth = json_is_true(v);

        v = json_object_get(def, "mode");
        schema__path_join(p, path, "mode");
        if (json_is_string(v) && strcmp(json_string_value(v), "sync") == 0)
                route->mode = SCHEMA_MODE_SYNC;
        else if (json_is_string(v) &&
                 strcmp(json_string_value(v), "async") == 0)
                route->mode = SCHEMA_MODE_ASYNC;
        else
                return FAIL(p, "must be \"sync\" or \"async\"");

        v = json_object_get(def, "role");
        if (v) {
                schema__path_join(p, path, "role");
                if (!json_is_string(v) ||
                    !(route->role = schema_role_parse(json_string_value(v),
                                                      json_string_length(v))))
                        return FAIL(p, "must be one of viewer, member, admin, "
                                       "owner");
                if (!route->auth)
                        return FAIL(p, "a role needs \"auth\": true");
        }
        v = json_object_get(def, "rate_limit");
        if (v) {
                const char *b = json_string_value(v);
                schema__path_join(p, path, "rate_limit");
                if (!b || !*b || strlen(b) > 32 ||
                    strspn(b, "abcdefghijklmnopqrstuvwxyz_") != strlen(b))
                        return FAIL(p, "must be a bucket name of a-z and _");
                route->rate_limit = xstrdup(b);
        }
        if ((err = schema__load_bool(ld, def, path, "secret_reply",
                                     &route->secret_reply)))
                return err;
        if (json_object_get(def, "rate_key") && !route->rate_limit) {
                schema__path_join(p, path, "rate_key");
                return FAIL(p, "must be a field name, with rate_limit");
        }
        if ((err = schema__load_string(ld, def, path, "rate_key", false, true,
                                       &route->rate_key)) ||
            (err = schema__load_string(ld, def, path, "key", false, true,
                                       &route->key)) ||
            (err = schema__load_string(ld, def, path, "raw_body", false, true,
                                       &route->raw_body)) ||
            (err = route_success(ld, def, path, route)) ||
            (err = route_statuses(ld, def, path, route)) ||
            (err = route_produces(ld, def, path, route)) ||
            (err = route_stream(ld, def, path, route)))
                return err;
        if (json_object_get(def, "requires") && !route->auth) {
                schema__path_join(p, path, "requires");
                return FAIL(p, "needs \"auth\": true (facts hold for a "
                               "token)");
        }
        if (route->raw_body && strcmp(route->method, "GET") == 0) {
                schema__path_join(p, path, "raw_body");
                return FAIL(p, "a GET route has no body");
        }
        return SCHEMA_OK;
}

/* ------------------------------------------------------------------------
 * The route and the message's fields
 * ------------------------------------------------------------------------ */

static schema_field_t *route_field(schema_msg_t *msg, const char *name) {
        return (schema_field_t *)schema_field_find(msg->fields, msg->n_fields,
                                                   slice_of(name));
}

static bool route_has_param(const schema_route_t *route, const char *name) {
        for (size_t i = 0; i < route->n_segments; i++) {
                const char *seg = route->segments[i];
                if (schema__segment_is_param(seg) &&
                    strlen(seg) == strlen(name) + 2 &&
                    memcmp(seg + 1, name, strlen(name)) == 0)
                        return true;
        }
        return false;
}

static bool route_scalar(const schema_field_t *f) {
        return f->type == SCHEMA_STRING || f->type == SCHEMA_INTEGER ||
               f->type == SCHEMA_NUMBER || f->type == SCHEMA_BOOLEAN;
}

/* {param} segments bind fields; fields outside the body need a route. */
static schema_err_t route_bind_params(schema__loader_t *ld, const char *path,
                                      schema_msg_t *msg) {
        const schema_route_t *route = &msg->route;
        char p[SCHEMA_PATH_SIZE], q[SCHEMA_PATH_SIZE];

        schema__path_join(p, path, "route.path");
        for (size_t i = 0; i < route->n_segments; i++) {
                const char *seg = route->segments[i];
                schema_field_t *field;
                if (!schema__segment_is_param(seg))
                        continue;
                field = (schema_field_t *)schema__param_field(msg, seg);
                if (!field)
                        return FAIL(p, "parameter %s is not a declared field",
                                    seg);
                if (field->in != SCHEMA_IN_BODY && field->in != SCHEMA_IN_PATH)
                        return FAIL(p,
                                    "parameter %s is declared \"in\": "
                                    "\"%s\"",
                                    seg, schema__in_names[field->in]);
                if (!route_scalar(field))
                        return FAIL(p,
                                    "parameter %s must be declared as a "
                                    "string, integer, number or boolean "
                                    "field",
                                    seg);
                if (field->default_json)
                        return FAIL(p, "parameter %s has a default", seg);
                field->in = SCHEMA_IN_PATH;
                field->in_path = true;
                field->required = true;
        }
        schema__path_join(q, path, "fields");
        for (size_t i = 0; i < msg->n_fields; i++) {
                const schema_field_t *f = &msg->fields[i];
                schema__path_join(p, q, f->name);
                if (f->in == SCHEMA_IN_PATH && !route_has_param(route, f->name))
                        return FAIL(p,
                                    "is \"in\": \"path\" but the path has "
                                    "no {%s}",
                                    f->name);
                if (f->in == SCHEMA_IN_BODY && route->method &&
                    strcmp(route->method, "GET") == 0)
                        return FAIL(p, "a GET route takes no body: declare "
                                       "\"in\": \"query\"");
        }
        return SCHEMA_OK;
}

schema_err_t schema__load_bind_route(schema__loader_t *ld, const char *path,
                                     schema_msg_t *msg) {
        schema_route_t *route = &msg->route;
        char p[SCHEMA_PATH_SIZE];
        schema_field_t *f;
        schema_err_t err;

        if (!route->method)
                return SCHEMA_OK;
        if ((err = route_bind_params(ld, path, msg)))
                return err;
        if (route->rate_key) {
                f = route_field(msg, route->rate_key);
                schema__path_join(p, path, "route.rate_key");
                if (!f || f->type != SCHEMA_STRING)
                        return FAIL(p, "must name a declared string field");
        }
        if (route->key) {
                f = route_field(msg, route->key);
                schema__path_join(p, path, "route.key");
                if (!f ||
                    (f->type != SCHEMA_STRING && f->type != SCHEMA_INTEGER) ||
                    !f->required)
                        return FAIL(p, "must name a required string or "
                                       "integer field");
        }
        if (route->raw_body) {
                f = route_field(msg, route->raw_body);
                schema__path_join(p, path, "route.raw_body");
                if (!f || f->type != SCHEMA_BINARY || f->in != SCHEMA_IN_BODY)
                        return FAIL(p, "must name a declared binary field "
                                       "\"in\": \"body\"");
                for (size_t i = 0; i < msg->n_fields; i++)
                        if (&msg->fields[i] != f &&
                            msg->fields[i].in == SCHEMA_IN_BODY)
                                return FAIL(p,
                                            "the body is raw: %s must come "
                                            "from the path, the query or "
                                            "a header",
                                            msg->fields[i].name);
                f->required = true;
        } else {
                for (size_t i = 0; i < msg->n_fields; i++)
                        if (msg->fields[i].type == SCHEMA_BINARY &&
                            msg->fields[i].in == SCHEMA_IN_BODY) {
                                char q[SCHEMA_PATH_SIZE];
                                schema__path_join(q, path, "fields");
                                schema__path_join(p, q, msg->fields[i].name);
                                return FAIL(p, "a JSON body has no binary "
                                               "values: name it in "
                                               "route.raw_body");
                        }
        }
        if (route->stream) {
                const schema_stream_t *s = route->stream;
                schema__path_join(p, path, "route.stream.match");
                for (size_t i = 0; i < s->n_match; i++) {
                        f = route_field(msg, s->match_field[i]);
                        if (!f || (f->in != SCHEMA_IN_PATH &&
                                   f->in != SCHEMA_IN_QUERY))
                                return FAIL(p,
                                            "%s must be a path or query "
                                            "field of the route",
                                            s->match_field[i]);
                }
        }
        return SCHEMA_OK;
}

/* ------------------------------------------------------------------------
 * Links to other declarations (every file read)
 * ------------------------------------------------------------------------ */

static schema_err_t route_link_requires(schema__loader_t *ld, json_t *def,
                                        const char *path,
                                        schema_route_t *route) {
        json_t *v = json_object_get(def, "requires"), *item;
        char p[SCHEMA_PATH_SIZE];
        size_t i;

        if (!v)
                return SCHEMA_OK;
        schema__path_join(p, path, "requires");
        if (!json_is_array(v) || json_array_size(v) == 0 ||
            json_array_size(v) > SCHEMA_MAX_LIST)
                return FAIL(p, "must be a non-empty array of fact names");
        route->requires = xcalloc(json_array_size(v), sizeof(void *));
        json_array_foreach(v, i, item) {
                const schema_fact_t *fact =
                        json_is_string(item)
                                ? schema_find_fact(
                                          ld->set,
                                          slice_of(json_string_value(item)))
                                : NULL;
                if (!fact)
                        return FAIL(p, "each must name a declared fact");
                if (fact->kind != SCHEMA_FACT_VERSION)
                        return FAIL(p,
                                    "%s is a deny fact: those hold on every "
                                    "route with a token",
                                    fact->name);
                for (size_t k = 0; k < route->n_requires; k++)
                        if (route->requires[k] == fact)
                                return FAIL(p, "names %s twice", fact->name);
                route->requires[route->n_requires++] = fact;
                /* The edge reads this until it uses requires. */
                if (strcmp(fact->name, "terms") == 0)
                        route->terms = true;
        }
        return SCHEMA_OK;
}

/* Does an event type match a stream's pattern ("x.y" or "x.*")? */
static bool stream_type_matches(const char *pattern, const char *type) {
        size_t n = strlen(pattern);

        if (n >= 2 && strcmp(pattern + n - 2, ".*") == 0)
                return strncmp(pattern, type, n - 1) == 0;
        return strcmp(pattern, type) == 0;
}

static schema_err_t route_link_stream(schema__loader_t *ld, const char *path,
                                      schema_msg_t *msg) {
        const schema_stream_t *s = msg->route.stream;
        const schema_set_t *set = ld->set;
        char p[SCHEMA_PATH_SIZE], base[SCHEMA_PATH_SIZE];
        size_t glen;

        if (!s)
                return SCHEMA_OK;
        schema__path_join(base, path, "route.stream");
        schema__path_join(p, base, "topic");
        glen = strcspn(s->topic, ".");
        if (strcmp(s->topic + glen, ".events") != 0)
                return FAIL(p, "must be a <group>.events topic");
        schema__path_join(p, base, "types");
        for (size_t i = 0; i < s->n_types; i++) {
                size_t hits = 0;
                if (strncmp(s->types[i], s->topic, glen + 1) != 0)
                        return FAIL(p, "%s is not an event of %s", s->types[i],
                                    s->topic);
                for (size_t e = 0; e < set->n_events; e++) {
                        const schema_event_t *ev = &set->events[e];
                        if (!stream_type_matches(s->types[i], ev->type))
                                continue;
                        hits++;
                        for (size_t m = 0; m < s->n_match; m++)
                                if (!schema_field_find(
                                            ev->fields, ev->n_fields,
                                            slice_of(s->match_event[m])))
                                        return FAIL(p,
                                                    "event %s has no field %s "
                                                    "to match",
                                                    ev->type,
                                                    s->match_event[m]);
                }
                if (!hits)
                        return FAIL(p, "%s matches no declared event",
                                    s->types[i]);
        }
        schema__path_join(p, base, "until");
        for (size_t i = 0; i < s->n_until; i++) {
                bool sent = false;
                for (size_t k = 0; k < s->n_types; k++)
                        sent |= stream_type_matches(s->types[k], s->until[i]);
                if (!schema_find_event(set, slice_of(s->until[i])) || !sent)
                        return FAIL(p,
                                    "%s must be a declared event the "
                                    "stream sends",
                                    s->until[i]);
        }
        if (s->history) {
                const schema_msg_t *h = schema_find(set, slice_of(s->history));
                schema__path_join(p, base, "history");
                if (!h || strcmp(h->group, msg->group) != 0 || !h->read_only)
                        return FAIL(p,
                                    "must be a read-only command of group "
                                    "%s",
                                    msg->group);
        }
        return SCHEMA_OK;
}

schema_err_t schema__load_link_route(schema__loader_t *ld, json_t *def,
                                     const char *path, schema_msg_t *msg) {
        char p[SCHEMA_PATH_SIZE];
        schema_err_t err;

        if (!msg->route.method)
                return SCHEMA_OK;
        schema__path_join(p, path, "route");
        if ((err = route_link_requires(ld, json_object_get(def, "route"), p,
                                       &msg->route)))
                return err;
        return route_link_stream(ld, path, msg);
}
