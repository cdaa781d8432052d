/*
 * defs_store.c - definitions in the store (versions per tenant) and their
 * cache (see defs.c for the collections).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentkit_internal.h"

/* ---------------------------------------------------------------------------
 * The cache: a small table of versions by key, least recently used out
 * ------------------------------------------------------------------------ */

typedef struct ak_defs_entry {
        ak_def_t *def;
        uint64_t used;
} ak_defs_entry_t;

struct ak_defs {
        pthread_mutex_t lock;
        ak_defs_entry_t *v;
        size_t n, cap;
        uint64_t tick;
};

ak_defs_t *ak_defs_new(size_t capacity) {
        ak_defs_t *d = xcalloc(1, sizeof(*d));
        pthread_mutex_init(&d->lock, NULL);
        d->cap = capacity ? capacity : 256;
        d->v = xcalloc(d->cap, sizeof(*d->v));
        return d;
}

void ak_defs_destroy(ak_defs_t *d) {
        if (!d)
                return;
        for (size_t i = 0; i < d->n; i++)
                ak_def_release(d->v[i].def);
        free(d->v);
        pthread_mutex_destroy(&d->lock);
        free(d);
}

static ak_def_t *ak__cache_get(ak_defs_t *d, const char *key) {
        ak_def_t *def = NULL;
        pthread_mutex_lock(&d->lock);
        for (size_t i = 0; i < d->n; i++)
                if (strcmp(d->v[i].def->key, key) == 0) {
                        def = d->v[i].def;
                        d->v[i].used = ++d->tick;
                        atomic_fetch_add(&def->refs, 1);
                        break;
                }
        pthread_mutex_unlock(&d->lock);
        return def;
}

static void ak__cache_put(ak_defs_t *d, ak_def_t *def) {
        size_t slot;
        pthread_mutex_lock(&d->lock);
        for (size_t i = 0; i < d->n; i++)
                if (strcmp(d->v[i].def->key, def->key) == 0) {
                        pthread_mutex_unlock(&d->lock);
                        return;
                }
        if (d->n < d->cap) {
                slot = d->n++;
        } else {
                slot = 0;
                for (size_t i = 1; i < d->n; i++)
                        if (d->v[i].used < d->v[slot].used)
                                slot = i;
                ak_def_release(d->v[slot].def);
        }
        atomic_fetch_add(&def->refs, 1);
        d->v[slot].def = def;
        d->v[slot].used = ++d->tick;
        pthread_mutex_unlock(&d->lock);
}

/* ---------------------------------------------------------------------------
 * Keys
 * ------------------------------------------------------------------------ */

static const char *ak__kind_word(ak_def_kind_t kind) {
        return kind == AK_DEF_AGENT ? "agent" : "workflow";
}

static void ak__head_key(ak_def_kind_t kind, slice_t tenant, const char *id,
                         char *out, size_t size) {
        snprintf(out, size, "%s|%.*s|%s", ak__kind_word(kind), (int)tenant.len,
                 tenant.ptr ? tenant.ptr : "", id);
}

static void ak__version_key(const char *head, int version, char *out,
                            size_t size) {
        snprintf(out, size, "%s|%d", head, version);
}

/* ---------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------ */

store_err_t ak_def_get_key(ak_state_t *st, const char *key, ak_def_t **out) {
        bson_t filter = BSON_INITIALIZER, doc;
        char errstr[256];
        store_err_t err;
        bson_iter_t it;
        const char *text = NULL, *kind = NULL, *def_id = NULL;
        int version = 0;
        int64_t created = 0;
        json_t *j;
        schema_report_t report;
        ak_def_t *def;

        if ((*out = ak__cache_get(st->defs, key)))
                return STORE_OK;
        BSON_APPEND_UTF8(&filter, "_id", key);
        err = store_find_one(st->store, runtime_db(st->rt), AK_DEFS, &filter,
                             NULL, &doc, errstr, sizeof(errstr));
        bson_destroy(&filter);
        if (err)
                return err;
        if (bson_iter_init(&it, &doc))
                while (bson_iter_next(&it)) {
                        const char *k = bson_iter_key(&it);
                        if (strcmp(k, "doc") == 0 && BSON_ITER_HOLDS_UTF8(&it))
                                text = bson_iter_utf8(&it, NULL);
                        else if (strcmp(k, "kind") == 0 &&
                                 BSON_ITER_HOLDS_UTF8(&it))
                                kind = bson_iter_utf8(&it, NULL);
                        else if (strcmp(k, "def_id") == 0 &&
                                 BSON_ITER_HOLDS_UTF8(&it))
                                def_id = bson_iter_utf8(&it, NULL);
                        else if (strcmp(k, "version") == 0 &&
                                 BSON_ITER_HOLDS_INT(&it))
                                version = (int)bson_iter_as_int64(&it);
                        else if (strcmp(k, "created_at") == 0 &&
                                 BSON_ITER_HOLDS_INT(&it))
                                created = bson_iter_as_int64(&it);
                }
        j = text ? json_loads(text, 0, NULL) : NULL;
        if (!j || !kind || !def_id) {
                json_decref(j);
                bson_destroy(&doc);
                log_error("definition %s is unreadable", key);
                return STORE_BAD_REPLY;
        }
        def = strcmp(kind, "agent") == 0
                      ? ak_def_build_agent(j, st->schemas, &report)
                      : ak_def_build_workflow(j, st->schemas, &report);
        if (!def) {
                /* Valid when stored; the schemas changed since (a command
                 * it sends is gone). */
                log_error("definition %s no longer checks: %s %s", key,
                          report.n ? report.v[0].field : "",
                          report.n ? report.v[0].reason : "");
                bson_destroy(&doc);
                return STORE_BAD_REPLY;
        }
        def->key = xstrdup(key);
        def->def_id = xstrdup(def_id);
        def->version = version;
        def->created_at = created;
        bson_destroy(&doc);
        ak__cache_put(st->defs, def);
        *out = def;
        return STORE_OK;
}

/* The latest version of a head, 0 when none. */
static store_err_t ak__latest(ak_state_t *st, const char *head, int *latest) {
        bson_t filter = BSON_INITIALIZER, doc;
        char errstr[256];
        bson_iter_t it;
        store_err_t err;
        *latest = 0;
        BSON_APPEND_UTF8(&filter, "_id", head);
        err = store_find_one(st->store, runtime_db(st->rt), AK_HEADS, &filter,
                             NULL, &doc, errstr, sizeof(errstr));
        bson_destroy(&filter);
        if (err == STORE_NOT_FOUND)
                return STORE_OK;
        if (err)
                return err;
        if (bson_iter_init_find(&it, &doc, "latest") &&
            BSON_ITER_HOLDS_INT(&it))
                *latest = (int)bson_iter_as_int64(&it);
        bson_destroy(&doc);
        return STORE_OK;
}

store_err_t ak_def_get(ak_state_t *st, ak_def_kind_t kind, slice_t tenant,
                       const char *id, int version, ak_def_t **out) {
        char head[320], key[340];
        store_err_t err;
        *out = NULL;
        ak__head_key(kind, tenant, id, head, sizeof(head));
        if (version <= 0) {
                if ((err = ak__latest(st, head, &version)))
                        return err;
                if (version <= 0)
                        return STORE_NOT_FOUND;
        }
        ak__version_key(head, version, key, sizeof(key));
        return ak_def_get_key(st, key, out);
}

/* ---------------------------------------------------------------------------
 * Writing a new version
 * ------------------------------------------------------------------------ */

/* The hash of a definition's text: equal definitions, equal hashes. */
static void ak__hash(const char *text, char out[MSGID_TEXT_SIZE]) {
        ak_derive_id(0, text, out);
}

/* The stored hash of a version (out empty when it does not exist). */
static store_err_t ak__version_hash(ak_state_t *st, const char *key,
                                    char out[MSGID_TEXT_SIZE]) {
        bson_t filter = BSON_INITIALIZER, doc;
        char errstr[256];
        bson_iter_t it;
        store_err_t err;
        out[0] = '\0';
        BSON_APPEND_UTF8(&filter, "_id", key);
        err = store_find_one(st->store, runtime_db(st->rt), AK_DEFS, &filter,
                             NULL, &doc, errstr, sizeof(errstr));
        bson_destroy(&filter);
        if (err == STORE_NOT_FOUND)
                return STORE_OK;
        if (err)
                return err;
        if (bson_iter_init_find(&it, &doc, "hash") && BSON_ITER_HOLDS_UTF8(&it))
                snprintf(out, MSGID_TEXT_SIZE, "%s", bson_iter_utf8(&it, NULL));
        bson_destroy(&doc);
        return STORE_OK;
}

static store_err_t ak__head_bump(ak_state_t *st, ak_def_kind_t kind,
                                 slice_t tenant, const char *id,
                                 const char *head, int version,
                                 const json_t *doc, int64_t now) {
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, max, set,
               ins;
        char errstr[256];
        const char *name = ak_str(doc, "name");
        store_err_t err;
        BSON_APPEND_UTF8(&filter, "_id", head);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$max", &max);
        BSON_APPEND_INT32(&max, "latest", version);
        BSON_APPEND_INT64(&max, "updated_at", now);
        bson_append_document_end(&update, &max);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        if (name)
                BSON_APPEND_UTF8(&set, "name", name);
        bson_append_document_end(&update, &set);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &ins);
        BSON_APPEND_UTF8(&ins, "kind", ak__kind_word(kind));
        bson_append_utf8(&ins, "tenant", 6, tenant.ptr ? tenant.ptr : "",
                         (int)tenant.len);
        BSON_APPEND_UTF8(&ins, "def_id", id);
        BSON_APPEND_INT64(&ins, "created_at", now);
        bson_append_document_end(&update, &ins);
        err = store_update(st->store, runtime_db(st->rt), AK_HEADS, &filter,
                           &update, STORE_UPSERT, NULL, errstr, sizeof(errstr));
        bson_destroy(&filter);
        bson_destroy(&update);
        return err;
}

store_err_t ak_def_put(ak_state_t *st, ak_def_kind_t kind, slice_t tenant,
                       const char *id, const json_t *doc, slice_t user,
                       int *version, bool *created, int64_t *created_at) {
        char head[320], key[340], hash[MSGID_TEXT_SIZE], have[MSGID_TEXT_SIZE];
        char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
        int64_t now = (int64_t)clock_wall_ms();
        store_err_t err;
        int latest;

        *created = false;
        *created_at = now;
        ak__hash(text, hash);
        ak__head_key(kind, tenant, id, head, sizeof(head));
        if ((err = ak__latest(st, head, &latest)))
                goto done;
        for (int tries = 0; tries < 20; tries++) {
                bson_t d = BSON_INITIALIZER;
                char errstr[256];
                if (latest > 0) {
                        ak__version_key(head, latest, key, sizeof(key));
                        if ((err = ak__version_hash(st, key, have)))
                                goto done;
                        if (strcmp(have, hash) == 0) {
                                /* The latest version is this definition
                                 * (a repeat, or our own earlier try). */
                                *version = latest;
                                err = ak__head_bump(st, kind, tenant, id, head,
                                                    latest, doc, now);
                                goto done;
                        }
                }
                ak__version_key(head, latest + 1, key, sizeof(key));
                BSON_APPEND_UTF8(&d, "_id", key);
                BSON_APPEND_UTF8(&d, "kind", ak__kind_word(kind));
                bson_append_utf8(&d, "tenant", 6, tenant.ptr ? tenant.ptr : "",
                                 (int)tenant.len);
                BSON_APPEND_UTF8(&d, "def_id", id);
                BSON_APPEND_INT32(&d, "version", latest + 1);
                BSON_APPEND_UTF8(&d, "hash", hash);
                BSON_APPEND_UTF8(&d, "doc", text);
                BSON_APPEND_INT64(&d, "created_at", now);
                bson_append_utf8(&d, "created_by", 10, user.ptr ? user.ptr : "",
                                 (int)user.len);
                err = store_insert(st->store, runtime_db(st->rt), AK_DEFS, &d,
                                   errstr, sizeof(errstr));
                bson_destroy(&d);
                if (err == STORE_DUPLICATE) {
                        latest++; /* someone made it first: compare again */
                        continue;
                }
                if (err)
                        goto done;
                *version = latest + 1;
                *created = true;
                err = ak__head_bump(st, kind, tenant, id, head, latest + 1, doc,
                                    now);
                goto done;
        }
        err = STORE_ERROR;
done:
        free(text);
        return err;
}

typedef struct ak_list_ctx {
        json_t *out;
        ak_def_kind_t kind;
} ak_list_ctx_t;

static bool ak__list_one(const bson_t *doc, void *arg) {
        ak_list_ctx_t *l = arg;
        bson_iter_t it;
        json_t *o = json_object();
        char t[40];
        if (bson_iter_init(&it, doc))
                while (bson_iter_next(&it)) {
                        const char *k = bson_iter_key(&it);
                        if (strcmp(k, "def_id") == 0 &&
                            BSON_ITER_HOLDS_UTF8(&it))
                                json_object_set_new(
                                        o,
                                        l->kind == AK_DEF_AGENT ? "agent_id"
                                                                : "workflow_id",
                                        json_string(bson_iter_utf8(&it, NULL)));
                        else if (strcmp(k, "name") == 0 &&
                                 BSON_ITER_HOLDS_UTF8(&it))
                                json_object_set_new(
                                        o, "name",
                                        json_string(bson_iter_utf8(&it, NULL)));
                        else if (strcmp(k, "latest") == 0 &&
                                 BSON_ITER_HOLDS_INT(&it))
                                json_object_set_new(
                                        o, "version",
                                        json_integer(bson_iter_as_int64(&it)));
                        else if ((strcmp(k, "created_at") == 0 ||
                                  strcmp(k, "updated_at") == 0) &&
                                 BSON_ITER_HOLDS_INT(&it))
                                json_object_set_new(
                                        o, k,
                                        json_string(ak_time_text(
                                                bson_iter_as_int64(&it), t,
                                                sizeof(t))));
                }
        json_array_append_new(l->out, o);
        return true;
}

store_err_t ak_def_list(ak_state_t *st, ak_def_kind_t kind, slice_t tenant,
                        int limit, json_t *out) {
        bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort;
        char errstr[256];
        ak_list_ctx_t l = {out, kind};
        store_err_t err;
        BSON_APPEND_UTF8(&filter, "kind", ak__kind_word(kind));
        bson_append_utf8(&filter, "tenant", 6, tenant.ptr ? tenant.ptr : "",
                         (int)tenant.len);
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
        BSON_APPEND_INT32(&sort, "updated_at", -1);
        bson_append_document_end(&opts, &sort);
        BSON_APPEND_INT64(&opts, "limit", limit);
        err = store_find(st->store, runtime_db(st->rt), AK_HEADS, &filter,
                         &opts, ak__list_one, &l, errstr, sizeof(errstr));
        bson_destroy(&filter);
        bson_destroy(&opts);
        return err;
}
