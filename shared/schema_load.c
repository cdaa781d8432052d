/*
 * schema_load.c - reading and checking the schema files (see schema.h).
 *
 * Loading is strict on purpose: the files are written by hand, so every key
 * is checked against the keys its definition may have, every limit against
 * its field type, and every route against the others, and the first problem
 * is reported as "<file>: <json path>: <problem>" so the build points at the
 * line to fix. A loaded set is immutable.
 *
 * Two passes: the first reads every file (messages, events, facts) into the
 * set; the second, once the arrays no longer move, links what refers to
 * other declarations, possibly of other files (the facts a route requires,
 * the events a stream or a fact reads), with the same paths in its errors.
 */
#include "schema_internal.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

#define FAIL(p, ...) \
        schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p, __VA_ARGS__)

/* ------------------------------------------------------------------------
 * Helpers of every loading file
 * ------------------------------------------------------------------------ */

void schema__path_join(char *p, const char *base, const char *key) {
        int n = snprintf(p, SCHEMA_PATH_SIZE, "%s.%s", base, key);

        if (n < 0 || n >= SCHEMA_PATH_SIZE)
                memcpy(p + SCHEMA_PATH_SIZE - 4, "...", 4);
}

void schema__path_index(char *p, const char *base, size_t i) {
        int n = snprintf(p, SCHEMA_PATH_SIZE, "%s[%zu]", base, i);

        if (n < 0 || n >= SCHEMA_PATH_SIZE)
                memcpy(p + SCHEMA_PATH_SIZE - 4, "...", 4);
}

schema_err_t schema__load_fail(schema__loader_t *ld, schema_err_t err,
                               const char *path, const char *fmt, ...) {
        va_list ap;
        int n;

        if (!ld->errstr || ld->errlen == 0)
                return err;
        n = snprintf(ld->errstr, ld->errlen, "%s: %s: ", ld->file, path);
        if (n < 0 || (size_t)n >= ld->errlen)
                return err;
        va_start(ap, fmt);
        vsnprintf(ld->errstr + n, ld->errlen - (size_t)n, fmt, ap);
        va_end(ap);
        return err;
}

schema_err_t schema__load_check_keys(schema__loader_t *ld, json_t *obj,
                                     const char *path,
                                     const char *const *allowed) {
        const char *key;
        json_t *value;

        json_object_foreach(obj, key, value) {
                bool known = false;
                for (size_t i = 0; allowed[i]; i++)
                        if (strcmp(key, allowed[i]) == 0)
                                known = true;
                if (!known) {
                        char p[SCHEMA_PATH_SIZE];
                        schema__path_join(p, path, key);
                        return FAIL(p, "unknown key");
                }
        }
        return SCHEMA_OK;
}

schema_err_t schema__load_bool(schema__loader_t *ld, json_t *def,
                               const char *path, const char *key, bool *out) {
        json_t *v = json_object_get(def, key);
        char p[SCHEMA_PATH_SIZE];

        if (!v)
                return SCHEMA_OK;
        if (!json_is_boolean(v)) {
                schema__path_join(p, path, key);
                return FAIL(p, "must be true or false");
        }
        *out = json_is_true(v);
        return SCHEMA_OK;
}

schema_err_t schema__load_string(schema__loader_t *ld, json_t *def,
                                 const char *path, const char *key,
                                 bool required, bool as_name, char **out) {
        json_t *v = json_object_get(def, key);
        char p[SCHEMA_PATH_SIZE];
        const char *s;

        if (!v && !required)
                return SCHEMA_OK;
        schema__path_join(p, path, key);
        s = json_string_value(v);
        if (as_name && (!s || !schema__name_valid(s, json_string_length(v),
                                                  SCHEMA_MAX_NAME, true)))
                return FAIL(p, "must be a field name");
        if (!s || !*s || strlen(s) != json_string_length(v))
                return FAIL(p, "must be a non-empty string");
        *out = xstrdup(s);
        return SCHEMA_OK;
}

schema_err_t schema__load_strings(schema__loader_t *ld, json_t *def,
                                  const char *path, const char *key,
                                  char ***out, size_t *n) {
        json_t *v = json_object_get(def, key), *item;
        char p[SCHEMA_PATH_SIZE];
        size_t i;

        if (!v)
                return SCHEMA_OK;
        schema__path_join(p, path, key);
        if (!json_is_array(v) || json_array_size(v) > SCHEMA_MAX_LIST)
                return FAIL(p, "must be an array of at most %d strings",
                            SCHEMA_MAX_LIST);
        *out = xcalloc(json_array_size(v) + 1, sizeof(char *));
        json_array_foreach(v, i, item) {
                const char *s = json_string_value(item);
                if (!s || !*s || strlen(s) != json_string_length(item))
                        return FAIL(p, "must be an array of non-empty "
                                       "strings");
                for (size_t k = 0; k < *n; k++)
                        if (strcmp((*out)[k], s) == 0)
                                return FAIL(p, "lists %s twice", s);
                (*out)[(*n)++] = xstrdup(s);
        }
        return SCHEMA_OK;
}

/* ------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------ */

/* Same number of segments, literals equal, parameters where parameters are. */
static bool route_same_shape(const schema_route_t *a, const schema_route_t *b) {
        if (a->n_segments != b->n_segments)
                return false;
        for (size_t i = 0; i < a->n_segments; i++) {
                bool pa = schema__segment_is_param(a->segments[i]);
                bool pb = schema__segment_is_param(b->segments[i]);
                if (pa != pb ||
                    (!pa && strcmp(a->segments[i], b->segments[i]) != 0))
                        return false;
        }
        return true;
}

/* Check the newest message against all earlier ones. */
static schema_err_t load_check_unique(schema__loader_t *ld, const char *path) {
        schema_set_t *set = ld->set;
        const schema_msg_t *msg = &set->msgs[set->n_msgs - 1];
        char p[SCHEMA_PATH_SIZE];

        if (schema_find_event(set, slice_of(msg->type))) {
                schema__path_join(p, path, "type");
                return FAIL(p, "%s is the type of an event", msg->type);
        }
        for (size_t i = 0; i + 1 < set->n_msgs; i++) {
                const schema_msg_t *old = &set->msgs[i];
                if (strcmp(old->type, msg->type) == 0) {
                        schema__path_join(p, path, "type");
                        return schema__load_fail(ld, SCHEMA_DUPLICATE, p,
                                                 "%s is already declared in "
                                                 "%s",
                                                 msg->type, old->file);
                }
                if (!msg->route.method || !old->route.method ||
                    !route_same_shape(&old->route, &msg->route))
                        continue;
                schema__path_join(p, path, "route");
                if (strcmp(old->route.method, msg->route.method) == 0)
                        return schema__load_fail(
                                ld, SCHEMA_DUPLICATE, p,
                                "%s %s is already routed to %s in %s",
                                msg->route.method, msg->route.path, old->type,
                                old->file);
                /* OpenAPI forbids one path shape under two spellings. */
                if (strcmp(old->route.path, msg->route.path) != 0)
                        return FAIL(p,
                                    "path must name its parameters as %s does "
                                    "(%s in %s)",
                                    old->route.path, old->type, old->file);
        }
        return SCHEMA_OK;
}

static schema_err_t load_type(schema__loader_t *ld, json_t *def,
                              const char *path, schema_msg_t *msg) {
        json_t *v = json_object_get(def, "type");
        size_t glen = strlen(ld->group);
        char p[SCHEMA_PATH_SIZE];
        const char *s;
        size_t len, start = 0;

        schema__path_join(p, path, "type");
        if (!json_is_string(v))
                return FAIL(p, "must be a string");
        msg->type = xstrdup(json_string_value(v));
        if (strncmp(msg->type, ld->group, glen) != 0 || msg->type[glen] != '.')
                return FAIL(p, "must start with \"%s.\"", ld->group);
        if (strlen(msg->type) > SCHEMA_MAX_TYPE)
                return FAIL(p, "must be at most %d bytes", SCHEMA_MAX_TYPE);
        /* After the group: dot-separated names. */
        s = msg->type + glen + 1;
        len = strlen(s);
        for (size_t i = 0; i <= len; i++) {
                if (i < len && s[i] != '.')
                        continue;
                if (!schema__name_valid(s + start, i - start, SCHEMA_MAX_TYPE,
                                        false))
                        return FAIL(p, "must be \"<group>.<name>\" in "
                                       "lowercase letters, digits and '_'");
                start = i + 1;
        }
        return SCHEMA_OK;
}

static schema_err_t load_reply(schema__loader_t *ld, json_t *def,
                               const char *path, schema_msg_t *msg) {
        static const char *const keys[] = {"fields", "additional", NULL};
        json_t *v = json_object_get(def, "reply");
        char p[SCHEMA_PATH_SIZE], q[SCHEMA_PATH_SIZE];
        schema_err_t err;

        if (!v)
                return SCHEMA_OK;
        schema__path_join(p, path, "reply");
        if (!json_is_object(v) || !json_object_get(v, "fields"))
                return FAIL(p, "must be {\"fields\": {...}}");
        msg->reply = xcalloc(1, sizeof(*msg->reply));
        schema__path_join(q, p, "fields");
        if ((err = schema__load_check_keys(ld, v, p, keys)) ||
            (err = schema__load_bool(ld, v, p, "additional",
                                     &msg->reply->additional)))
                return err;
        return schema__load_fields(ld, json_object_get(v, "fields"), q,
                                   SCHEMA__TOP, 1, &msg->reply->fields,
                                   &msg->reply->n_fields);
}

static schema_err_t load_msg(schema__loader_t *ld, json_t *def,
                             const char *path, schema_msg_t *msg) {
        static const char *const keys[] = {"type",      "version", "summary",
                                           "route",     "fields",  "additional",
                                           "read_only", "reply",   NULL};
        char p[SCHEMA_PATH_SIZE];
        schema_err_t err;
        json_t *v;

        msg->file = ld->file;
        msg->group = xstrdup(ld->group);
        if (!json_is_object(def))
                return FAIL(path, "must be an object");
        if ((err = schema__load_check_keys(ld, def, path, keys)) ||
            (err = load_type(ld, def, path, msg)))
                return err;

        v = json_object_get(def, "version");
        schema__path_join(p, path, "version");
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > 1000000)
                return FAIL(p, "must be an integer >= 1");
        msg->version = (int)json_integer_value(v);

        if ((err = schema__load_string(ld, def, path, "summary", true, false,
                                       &msg->summary)) ||
            (err = schema__load_bool(ld, def, path, "additional",
                                     &msg->additional)) ||
            (err = schema__load_bool(ld, def, path, "read_only",
                                     &msg->read_only)))
                return err;

        v = json_object_get(def, "route");
        if (v) {
                schema__path_join(p, path, "route");
                if ((err = schema__load_route(ld, v, p, &msg->route)))
                        return err;
        }
        schema__path_join(p, path, "fields");
        if ((err = schema__load_fields(ld, json_object_get(def, "fields"), p,
                                       msg->route.method ? SCHEMA__TOP_ROUTED
                                                         : SCHEMA__TOP,
                                       1, &msg->fields, &msg->n_fields)) ||
            (err = schema__load_bind_route(ld, path, msg)) ||
            (err = load_reply(ld, def, path, msg)))
                return err;
        return load_check_unique(ld, path);
}

/* ------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------ */

static void set_add_group(schema_set_t *set, const char *group) {
        for (size_t i = 0; i < set->n_groups; i++)
                if (strcmp(set->groups[i], group) == 0)
                        return;
        set->groups =
                xrealloc(set->groups, (set->n_groups + 1) * sizeof(char *));
        set->groups[set->n_groups++] = xstrdup(group);
}

/* Append a zeroed element, so destroy frees a half-loaded one. */
static void *set_append(void **array, size_t *n, size_t size) {
        char *grown = xrealloc(*array, (*n + 1) * size);

        memset(grown + *n * size, 0, size);
        *array = grown;
        return grown + (*n)++ * size;
}

/* The optional array root[key] (NULL when absent). */
static schema_err_t load_list(schema__loader_t *ld, json_t *root,
                              const char *key, bool required, json_t **out) {
        *out = json_object_get(root, key);
        if ((*out || required) && !json_is_array(*out))
                return FAIL(key, "must be an array");
        return SCHEMA_OK;
}

/* First pass over one file: everything it declares, into the set. */
static schema_err_t load_source(schema__loader_t *ld, json_t *root) {
        static const char *const keys[] = {"group", "messages", "events",
                                           "facts", NULL};
        schema_set_t *set = ld->set;
        schema_err_t err;
        json_t *v, *def;
        char p[SCHEMA_PATH_SIZE];
        size_t i;

        if (!json_is_object(root))
                return FAIL("(root)", "must be an object");
        if ((err = schema__load_check_keys(ld, root, "(root)", keys)))
                return err;
        v = json_object_get(root, "group");
        if (!json_is_string(v) ||
            !schema__name_valid(json_string_value(v), json_string_length(v),
                                SCHEMA_MAX_NAME, false))
                return FAIL("group", "must be a name in lowercase letters, "
                                     "digits and '_'");
        set_add_group(set, json_string_value(v));
        for (i = 0; i < set->n_groups; i++)
                if (strcmp(set->groups[i], json_string_value(v)) == 0)
                        ld->group = set->groups[i];

        if ((err = load_list(ld, root, "messages", true, &v)))
                return err;
        json_array_foreach(v, i, def) {
                schema__path_index(p, "messages", i);
                if ((err = load_msg(ld, def, p,
                                    set_append((void **)&set->msgs,
                                               &set->n_msgs,
                                               sizeof(schema_msg_t)))))
                        return err;
        }
        if ((err = load_list(ld, root, "events", false, &v)))
                return err;
        json_array_foreach(v, i, def) {
                schema__path_index(p, "events", i);
                if ((err = schema__load_event(
                             ld, def, p,
                             set_append((void **)&set->events, &set->n_events,
                                        sizeof(schema_event_t)))))
                        return err;
        }
        if ((err = load_list(ld, root, "facts", false, &v)))
                return err;
        json_array_foreach(v, i, def) {
                schema__path_index(p, "facts", i);
                if ((err = schema__load_fact(
                             ld, def, p,
                             set_append((void **)&set->facts, &set->n_facts,
                                        sizeof(schema_fact_t)))))
                        return err;
        }
        return SCHEMA_OK;
}

/* Second pass over one file; *msg and *fact index its first message and
 * fact in the set, and move past the file's own. */
static schema_err_t link_source(schema__loader_t *ld, json_t *root, size_t *msg,
                                size_t *fact) {
        json_t *list, *def;
        char p[SCHEMA_PATH_SIZE];
        schema_err_t err;
        size_t i;

        list = json_object_get(root, "messages");
        json_array_foreach(list, i, def) {
                schema__path_index(p, "messages", i);
                if ((err = schema__load_link_route(ld, def, p,
                                                   &ld->set->msgs[(*msg)++])))
                        return err;
        }
        list = json_object_get(root, "facts");
        json_array_foreach(list, i, def) {
                schema__path_index(p, "facts", i);
                if ((err = schema__load_link_fact(ld, p,
                                                  &ld->set->facts[(*fact)++])))
                        return err;
        }
        return SCHEMA_OK;
}

schema_err_t schema_set_load(schema_set_t **out, const schema_source_t *sources,
                             size_t n_sources, char *errstr, size_t errlen) {
        schema__loader_t ld = {.errstr = errstr, .errlen = errlen};
        schema_err_t err = SCHEMA_OK;
        json_t **roots;
        schema_set_t *set;
        size_t n_roots = 0, msg = 0, fact = 0;

        assert(out);
        *out = NULL;
        if (errstr && errlen)
                errstr[0] = '\0';
        set = xcalloc(1, sizeof(*set));
        set->files = xcalloc(n_sources ? n_sources : 1, sizeof(char *));
        roots = xcalloc(n_sources ? n_sources : 1, sizeof(json_t *));
        ld.set = set;
        for (size_t i = 0; i < n_sources; i++) {
                json_error_t jerr;
                set->files[set->n_files++] = xstrdup(
                        sources[i].name ? sources[i].name : "(unnamed)");
                ld.file = set->files[i];
                ld.group = NULL;
                roots[i] = json_loadb(sources[i].text, sources[i].len,
                                      JSON_REJECT_DUPLICATES, &jerr);
                if (!roots[i]) {
                        char p[SCHEMA_PATH_SIZE];
                        snprintf(p, sizeof(p), "line %d, column %d", jerr.line,
                                 jerr.column);
                        err = schema__load_fail(&ld, SCHEMA_BAD_JSON, p, "%s",
                                                jerr.text);
                        goto out;
                }
                n_roots++;
                if ((err = load_source(&ld, roots[i])))
                        goto out;
        }
        for (size_t i = 0; i < n_sources; i++) {
                ld.file = set->files[i];
                if ((err = link_source(&ld, roots[i], &msg, &fact)))
                        goto out;
        }
        *out = set;
        set = NULL;
out:
        for (size_t i = 0; i < n_roots; i++)
                json_decref(roots[i]);
        free(roots);
        schema_set_destroy(set);
        return err;
}

/* ------------------------------------------------------------------------
 * Topics
 * ------------------------------------------------------------------------ */

static bool topic_known(const char *const *topics, size_t n, const char *name) {
        for (size_t i = 0; i < n; i++)
                if (topics[i] && strcmp(topics[i], name) == 0)
                        return true;
        return false;
}

schema_err_t schema_set_check_topics(const schema_set_t *set,
                                     const char *const *topics, size_t n_topics,
                                     char *errstr, size_t errlen) {
        schema__loader_t loader = {.errstr = errstr, .errlen = errlen};
        schema__loader_t *ld = &loader;
        char topic[SCHEMA_MAX_NAME + 16], p[SCHEMA_PATH_SIZE];
        size_t first = 0; /* index of the first message of msg's file */

        if (errstr && errlen)
                errstr[0] = '\0';
        if (!set)
                return SCHEMA_OK;
        for (size_t i = 0; i < set->n_msgs; i++) {
                const schema_msg_t *msg = &set->msgs[i];
                if (i && msg->file != set->msgs[i - 1].file)
                        first = i;
                ld->file = msg->file;
                snprintf(topic, sizeof(topic), "%s.commands", msg->group);
                if (!topic_known(topics, n_topics, topic))
                        return FAIL("group",
                                    "topic %s is not declared in "
                                    "topics.json",
                                    topic);
                if (!msg->route.stream ||
                    topic_known(topics, n_topics, msg->route.stream->topic))
                        continue;
                snprintf(p, sizeof(p), "messages[%zu].route.stream.topic",
                         i - first);
                return FAIL(p, "%s is not declared in topics.json",
                            msg->route.stream->topic);
        }
        for (size_t i = 0; i < set->n_events + set->n_facts; i++) {
                const char *group =
                        i < set->n_events ? set->events[i].group
                                          : set->facts[i - set->n_events].group;
                ld->file = i < set->n_events
                                   ? set->events[i].file
                                   : set->facts[i - set->n_events].file;
                snprintf(topic, sizeof(topic), "%s.events", group);
                if (!topic_known(topics, n_topics, topic))
                        return FAIL(i < set->n_events ? "events" : "facts",
                                    "topic %s is not declared in topics.json",
                                    topic);
        }
        return SCHEMA_OK;
}
