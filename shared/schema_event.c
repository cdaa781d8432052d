/*
 * schema_event.c - events and facts: reading their declarations, and the
 * helpers the edge uses to keep facts from events (see schema.h).
 *
 * An event type is "<group>.<entity>.<past-tense verb>", unique across every
 * file. A fact names an event of its own group and the fields it reads from
 * it; those fields must be declared in the event with the type the fact
 * needs, so the edge never meets an event it cannot read by surprise.
 */
#include "schema_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "codec.h"

#define FAIL(p, ...) \
        schema__load_fail(ld, SCHEMA_BAD_DEFINITION, p, __VA_ARGS__)

#define SCHEMA_DAY_S 86400

/* ------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------ */

void schema__event_deinit(schema_event_t *event) {
        free(event->type);
        free(event->group);
        free(event->summary);
        free(event->key);
        schema__fields_free(event->fields, event->n_fields);
}

schema_err_t schema__load_event(schema__loader_t *ld, json_t *def,
                                const char *path, schema_event_t *event) {
        static const char *const keys[] = {"type", "version", "summary",
                                           "key",  "fields",  "additional",
                                           NULL};
        const schema_set_t *set = ld->set;
        char p[SCHEMA_PATH_SIZE];
        size_t glen = strlen(ld->group);
        schema_err_t err;
        json_t *v;

        event->file = ld->file;
        event->group = xstrdup(ld->group);
        if (!json_is_object(def))
                return FAIL(path, "must be an object");
        if ((err = schema__load_check_keys(ld, def, path, keys)) ||
            (err = schema__load_string(ld, def, path, "type", true, false,
                                       &event->type)))
                return err;
        schema__path_join(p, path, "type");
        if (strncmp(event->type, ld->group, glen) != 0 ||
            event->type[glen] != '.')
                return FAIL(p, "must start with \"%s.\"", ld->group);
        if (strlen(event->type) > SCHEMA_MAX_TYPE ||
            !schema__event_name_valid(event->type + glen + 1))
                return FAIL(p,
                            "must be \"<group>.<entity>.<past-tense "
                            "verb>\" in lowercase letters, digits and "
                            "'_' (e.g. %s.user.registered)",
                            ld->group);
        for (size_t i = 0; i + 1 < set->n_events; i++)
                if (strcmp(set->events[i].type, event->type) == 0)
                        return schema__load_fail(ld, SCHEMA_DUPLICATE, p,
                                                 "%s is already declared in "
                                                 "%s",
                                                 event->type,
                                                 set->events[i].file);
        if (schema_find(set, slice_of(event->type)))
                return FAIL(p, "%s is the type of a message", event->type);

        v = json_object_get(def, "version");
        schema__path_join(p, path, "version");
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > 1000000)
                return FAIL(p, "must be an integer >= 1");
        event->version = (int)json_integer_value(v);

        schema__path_join(p, path, "fields");
        if ((err = schema__load_string(ld, def, path, "summary", true, false,
                                       &event->summary)) ||
            (err = schema__load_bool(ld, def, path, "additional",
                                     &event->additional)) ||
            (err = schema__load_fields(ld, json_object_get(def, "fields"), p,
                                       SCHEMA__TOP, 1, &event->fields,
                                       &event->n_fields)) ||
            (err = schema__load_string(ld, def, path, "key", true, true,
                                       &event->key)))
                return err;
        if (strcmp(event->key, "tenant") == 0) {
                free(event->key);
                event->key = NULL;
        } else {
                const schema_field_t *f = schema_field_find(
                        event->fields, event->n_fields, slice_of(event->key));
                schema__path_join(p, path, "key");
                if (!f || !f->required ||
                    (f->type != SCHEMA_STRING && f->type != SCHEMA_INTEGER))
                        return FAIL(p, "must be \"tenant\" or a required "
                                       "string or integer field");
        }
        return SCHEMA_OK;
}

/* ------------------------------------------------------------------------
 * Facts
 * ------------------------------------------------------------------------ */

void schema__fact_deinit(schema_fact_t *fact) {
        free(fact->name);
        free(fact->group);
        free(fact->event);
        free(fact->claim);
        free(fact->detail);
        free(fact->key);
        free(fact->until);
        for (size_t i = 0; i < fact->n_where; i++) {
                free(fact->where[i].field);
                free(fact->where[i].str);
        }
        free(fact->where);
        free(fact->value);
        free(fact->query_type);
        free(fact->query_field);
}

static schema_err_t fact_where(schema__loader_t *ld, json_t *def,
                               const char *path, schema_fact_t *fact) {
        json_t *v = json_object_get(def, "where"), *value;
        char p[SCHEMA_PATH_SIZE];
        const char *key;

        if (!v)
                return SCHEMA_OK;
        schema__path_join(p, path, "where");
        if (!json_is_object(v) || json_object_size(v) > SCHEMA_MAX_LIST)
                return FAIL(p, "must be an object of field: string, integer "
                               "or boolean");
        fact->where = xcalloc(json_object_size(v) + 1, sizeof(schema_where_t));
        json_object_foreach(v, key, value) {
                schema_where_t *w = &fact->where[fact->n_where++];
                w->field = xstrdup(key);
                if (json_is_string(value)) {
                        w->type = SCHEMA_STRING;
                        w->str = xstrdup(json_string_value(value));
                } else if (json_is_integer(value)) {
                        w->type = SCHEMA_INTEGER;
                        w->integer = json_integer_value(value);
                } else if (json_is_boolean(value)) {
                        w->type = SCHEMA_BOOLEAN;
                        w->boolean = json_is_true(value);
                } else {
                        return FAIL(p, "must be an object of field: string, "
                                       "integer or boolean");
                }
        }
        return SCHEMA_OK;
}

static schema_err_t fact_query(schema__loader_t *ld, json_t *def,
                               const char *path, schema_fact_t *fact) {
        static const char *const keys[] = {"type", "field", NULL};
        json_t *v = json_object_get(def, "query");
        char p[SCHEMA_PATH_SIZE];
        schema_err_t err;

        schema__path_join(p, path, "query");
        if (!json_is_object(v))
                return FAIL(p, "must be {\"type\": <command>, \"field\": "
                               "<reply field>}");
        if ((err = schema__load_check_keys(ld, v, p, keys)) ||
            (err = schema__load_string(ld, v, p, "type", true, false,
                                       &fact->query_type)) ||
            (err = schema__load_string(ld, v, p, "field", true, true,
                                       &fact->query_field)))
                return err;
        return SCHEMA_OK;
}

schema_err_t schema__load_fact(schema__loader_t *ld, json_t *def,
                               const char *path, schema_fact_t *fact) {
        static const char *const keys[] = {"name",  "kind",  "event",  "key",
                                           "until", "claim", "detail", "where",
                                           "value", "query", NULL};
        static const char *const deny_only[] = {"key", "until", NULL};
        static const char *const version_only[] = {"where", "value", "query",
                                                   NULL};
        const schema_set_t *set = ld->set;
        const char *kind;
        char p[SCHEMA_PATH_SIZE];
        schema_err_t err;

        fact->file = ld->file;
        fact->group = xstrdup(ld->group);
        if (!json_is_object(def))
                return FAIL(path, "must be an object");
        if ((err = schema__load_check_keys(ld, def, path, keys)) ||
            (err = schema__load_string(ld, def, path, "name", true, true,
                                       &fact->name)))
                return err;
        schema__path_join(p, path, "name");
        for (size_t i = 0; i + 1 < set->n_facts; i++)
                if (strcmp(set->facts[i].name, fact->name) == 0)
                        return schema__load_fail(ld, SCHEMA_DUPLICATE, p,
                                                 "%s is already declared in "
                                                 "%s",
                                                 fact->name,
                                                 set->facts[i].file);
        kind = json_string_value(json_object_get(def, "kind"));
        schema__path_join(p, path, "kind");
        if (kind && strcmp(kind, "deny") == 0)
                fact->kind = SCHEMA_FACT_DENY;
        else if (kind && strcmp(kind, "version") == 0)
                fact->kind = SCHEMA_FACT_VERSION;
        else
                return FAIL(p, "must be \"deny\" or \"version\"");
        for (size_t i = 0; i < 3; i++) {
                const char *k = fact->kind == SCHEMA_FACT_DENY
                                        ? version_only[i]
                                        : (i < 2 ? deny_only[i] : NULL);
                if (k && json_object_get(def, k)) {
                        schema__path_join(p, path, k);
                        return FAIL(p, "applies only to a %s fact",
                                    fact->kind == SCHEMA_FACT_DENY ? "version"
                                                                   : "deny");
                }
        }
        if ((err = schema__load_string(ld, def, path, "event", true, false,
                                       &fact->event)) ||
            (err = schema__load_string(ld, def, path, "claim", true, true,
                                       &fact->claim)) ||
            (err = schema__load_string(ld, def, path, "detail", true, false,
                                       &fact->detail)))
                return err;
        if (fact->kind == SCHEMA_FACT_DENY) {
                if ((err = schema__load_string(ld, def, path, "key", true, true,
                                               &fact->key)))
                        return err;
                return schema__load_string(ld, def, path, "until", false, true,
                                           &fact->until);
        }
        if ((err = fact_where(ld, def, path, fact)) ||
            (err = schema__load_string(ld, def, path, "value", true, true,
                                       &fact->value)))
                return err;
        return fact_query(ld, def, path, fact);
}

/* The event field a fact reads must be declared with this type. */
static schema_err_t fact_field(schema__loader_t *ld, const char *path,
                               const char *key, const schema_fact_t *fact,
                               const char *name, schema_type_t type) {
        const schema_field_t *f = schema_field_find(
                fact->decl->fields, fact->decl->n_fields, slice_of(name));
        char p[SCHEMA_PATH_SIZE];

        schema__path_join(p, path, key);
        if (!f || f->type != type)
                return FAIL(p, "%s must be a declared %s field of %s", name,
                            schema__type_names[type], fact->event);
        return SCHEMA_OK;
}

schema_err_t schema__load_link_fact(schema__loader_t *ld, const char *path,
                                    schema_fact_t *fact) {
        const schema_msg_t *q;
        const schema_field_t *f;
        char p[SCHEMA_PATH_SIZE];
        schema_err_t err;

        fact->decl = schema_find_event(ld->set, slice_of(fact->event));
        schema__path_join(p, path, "event");
        if (!fact->decl || strcmp(fact->decl->group, fact->group) != 0)
                return FAIL(p, "must be an event declared by group %s",
                            fact->group);
        if (fact->kind == SCHEMA_FACT_DENY) {
                if ((err = fact_field(ld, path, "key", fact, fact->key,
                                      SCHEMA_STRING)))
                        return err;
                return fact->until ? fact_field(ld, path, "until", fact,
                                                fact->until, SCHEMA_INTEGER)
                                   : SCHEMA_OK;
        }
        for (size_t i = 0; i < fact->n_where; i++) {
                char w[SCHEMA_PATH_SIZE];
                schema__path_join(w, path, "where");
                if ((err = fact_field(ld, w, fact->where[i].field, fact,
                                      fact->where[i].field,
                                      fact->where[i].type)))
                        return err;
        }
        if ((err = fact_field(ld, path, "value", fact, fact->value,
                              SCHEMA_INTEGER)))
                return err;
        q = schema_find(ld->set, slice_of(fact->query_type));
        schema__path_join(p, path, "query.type");
        if (!q || strcmp(q->group, fact->group) != 0 || q->route.method ||
            !q->read_only)
                return FAIL(p,
                            "must be a read-only, Kafka-only command of "
                            "group %s",
                            fact->group);
        schema__path_join(p, path, "query.field");
        f = q->reply ? schema_field_find(q->reply->fields, q->reply->n_fields,
                                         slice_of(fact->query_field))
                     : NULL;
        if (!f || f->type != SCHEMA_INTEGER)
                return FAIL(p, "must be an integer field of %s's reply",
                            q->type);
        if (!strstr(fact->detail, "{value}")) {
                schema__path_join(p, path, "detail");
                return FAIL(p, "must say the version needed with {value}");
        }
        return SCHEMA_OK;
}

/* ------------------------------------------------------------------------
 * Facts for the edge
 * ------------------------------------------------------------------------ */

/* An integer value of a msgpack object, if it is one that fits. */
static bool fact_int(const msgpack_object *o, int64_t *out) {
        if (!o)
                return false;
        if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            o->via.u64 <= INT64_MAX) {
                *out = (int64_t)o->via.u64;
                return true;
        }
        if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
                *out = o->via.i64;
                return true;
        }
        return false;
}

static bool fact_where_holds(const schema_where_t *w,
                             const msgpack_object *body) {
        const msgpack_object *o = codec_map_get(body, w->field);
        int64_t i;

        switch (w->type) {
        case SCHEMA_STRING:
                return o && o->type == MSGPACK_OBJECT_STR &&
                       o->via.str.size == strlen(w->str) &&
                       memcmp(o->via.str.ptr, w->str, o->via.str.size) == 0;
        case SCHEMA_INTEGER:
                return fact_int(o, &i) && i == w->integer;
        case SCHEMA_BOOLEAN:
                return o && o->type == MSGPACK_OBJECT_BOOLEAN &&
                       o->via.boolean == w->boolean;
        default:
                return false;
        }
}

bool schema_fact_read(const schema_fact_t *fact, const msgpack_object *body,
                      int64_t now_s, schema_fact_update_t *out) {
        memset(out, 0, sizeof(*out));
        if (!fact || !body || body->type != MSGPACK_OBJECT_MAP)
                return false;
        if (fact->kind == SCHEMA_FACT_DENY) {
                out->key = codec_map_str(body, fact->key);
                if (out->key.len == 0)
                        return false;
                if (!fact->until ||
                    !fact_int(codec_map_get(body, fact->until), &out->until_s))
                        out->until_s = now_s + SCHEMA_DAY_S;
                return true;
        }
        for (size_t i = 0; i < fact->n_where; i++)
                if (!fact_where_holds(&fact->where[i], body))
                        return false;
        return fact_int(codec_map_get(body, fact->value), &out->version) &&
               out->version >= 0;
}

bool schema_fact_read_query(const schema_fact_t *fact,
                            const msgpack_object *reply, int64_t *version) {
        if (!fact || fact->kind != SCHEMA_FACT_VERSION)
                return false;
        return fact_int(codec_map_get(reply, fact->query_field), version) &&
               *version >= 0;
}

const char *schema_fact_detail(const schema_fact_t *fact, int64_t value,
                               char *buf, size_t size) {
        const char *d = fact ? fact->detail : "";
        const char *mark = strstr(d, "{value}");
        size_t used = 0;

        if (size == 0)
                return buf;
        if (!mark) {
                snprintf(buf, size, "%s", d);
                return buf;
        }
        /* At most one {value}: the rest is copied as written. */
        used = (size_t)snprintf(buf, size, "%.*s%" PRId64, (int)(mark - d), d,
                                value);
        if (used < size)
                snprintf(buf + used, size - used, "%s", mark + 7);
        return buf;
}
