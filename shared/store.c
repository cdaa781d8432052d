/*
 * store.c - mongoc client pool, translated errors, a ping watcher (see
 * store.h).
 */
#include "store.h"

#include <assert.h>
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "log.h"

static const char *store_errors[] = {
#define X(name, msg) msg,
        STORE_ERRORS(X)
#undef X
};

const char *store_strerror(store_err_t err) {
        if ((unsigned)err >= sizeof(store_errors) / sizeof(store_errors[0]))
                return "unknown store error";
        return store_errors[err];
}

struct store {
        mongoc_client_pool_t *pool;
        mongoc_uri_t *uri;
        char *prefix;
        atomic_bool up;
        atomic_bool stopping;
        pthread_t watcher;
        int watcher_started;
        pthread_mutex_t lock;
        pthread_cond_t wake;
};

static pthread_once_t mongoc_once = PTHREAD_ONCE_INIT;

/* mongoc's own log lines, as our JSON lines; its chatter below warnings
 * (connection monitoring while the store is away) is dropped. */
static void store__log(mongoc_log_level_t level, const char *domain,
                       const char *message, void *arg) {
        (void)arg;
        if (level <= MONGOC_LOG_LEVEL_CRITICAL)
                log_error("mongoc %s: %s", domain, message);
        else if (level <= MONGOC_LOG_LEVEL_WARNING)
                log_warn("mongoc %s: %s", domain, message);
}

static void store__init_driver(void) {
        mongoc_log_set_handler(store__log, NULL);
        mongoc_init();
}

static store_err_t store__translate(const bson_error_t *e, char *errstr,
                                    size_t errlen) {
        store_err_t err;
        if (e->code == 11000 || e->code == 11001 ||
            strstr(e->message, "E11000"))
                err = STORE_DUPLICATE;
        else if (e->domain == MONGOC_ERROR_SERVER_SELECTION ||
                 e->domain == MONGOC_ERROR_STREAM ||
                 (e->domain == MONGOC_ERROR_CLIENT &&
                  e->code == MONGOC_ERROR_CLIENT_AUTHENTICATE))
                err = STORE_UNAVAILABLE;
        else
                err = STORE_ERROR;
        if (errstr && errlen)
                snprintf(errstr, errlen, "%s: %s", store_strerror(err),
                         e->message);
        return err;
}

/* "omnify_" + "auth" -> "omnify_auth" */
static void store__db_name(const store_t *store, const char *db, char *buf,
                           size_t size) {
        snprintf(buf, size, "%s%s", store->prefix, db);
}

store_err_t store_ping(store_t *store) {
        mongoc_client_t *client = mongoc_client_pool_pop(store->pool);
        bson_t cmd = BSON_INITIALIZER;
        bson_t reply;
        bson_error_t e;
        bool ok;
        BSON_APPEND_INT32(&cmd, "ping", 1);
        ok = mongoc_client_command_simple(client, "admin", &cmd, NULL, &reply,
                                          &e);
        bson_destroy(&reply);
        bson_destroy(&cmd);
        mongoc_client_pool_push(store->pool, client);
        return ok ? STORE_OK : store__translate(&e, NULL, 0);
}

static void *store__watcher(void *arg) {
        store_t *store = arg;
        while (!atomic_load(&store->stopping)) {
                bool was = atomic_load(&store->up);
                bool now = store_ping(store) == STORE_OK;
                atomic_store(&store->up, now);
                if (was != now)
                        log_info("store: %s",
                                 now ? "reachable" : "unreachable");
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1;
                pthread_mutex_lock(&store->lock);
                if (!atomic_load(&store->stopping))
                        pthread_cond_timedwait(&store->wake, &store->lock, &ts);
                pthread_mutex_unlock(&store->lock);
        }
        return NULL;
}

store_t *store_new(const config_t *cfg, const char *app_name, char *errstr,
                   size_t errlen) {
        store_t *store = xcalloc(1, sizeof(*store));
        bson_error_t e;

        pthread_once(&mongoc_once, store__init_driver);
        pthread_mutex_init(&store->lock, NULL);
        pthread_cond_init(&store->wake, NULL);
        store->prefix = xstrdup(cfg->mongo_db_prefix);
        store->uri = mongoc_uri_new_with_error(cfg->mongo_uri, &e);
        if (!store->uri) {
                /* The message may quote the URI, which may hold a password. */
                snprintf(errstr, errlen,
                         "OMNIFY_MONGO_URI: not a valid MongoDB URI");
                goto fail;
        }
        /* Bounded waits: an unreachable store must answer quickly. */
        if (!mongoc_uri_has_option(store->uri,
                                   MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
                mongoc_uri_set_option_as_int32(
                        store->uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 2000);
        if (!mongoc_uri_has_option(store->uri, MONGOC_URI_CONNECTTIMEOUTMS))
                mongoc_uri_set_option_as_int32(
                        store->uri, MONGOC_URI_CONNECTTIMEOUTMS, 2000);
        if (!mongoc_uri_has_option(store->uri, MONGOC_URI_SOCKETTIMEOUTMS))
                mongoc_uri_set_option_as_int32(
                        store->uri, MONGOC_URI_SOCKETTIMEOUTMS, 10000);
        store->pool = mongoc_client_pool_new(store->uri);
        if (!store->pool) {
                snprintf(errstr, errlen,
                         "OMNIFY_MONGO_URI: cannot create a client pool");
                goto fail;
        }
        mongoc_client_pool_set_error_api(store->pool,
                                         MONGOC_ERROR_API_VERSION_2);
        mongoc_client_pool_set_appname(store->pool, app_name);
        atomic_init(&store->up, false);
        atomic_init(&store->stopping, false);
        if (pthread_create(&store->watcher, NULL, store__watcher, store)) {
                snprintf(errstr, errlen, "cannot start the store watcher");
                goto fail;
        }
        store->watcher_started = 1;
        return store;

fail:
        store_destroy(store);
        return NULL;
}

void store_destroy(store_t *store) {
        if (!store)
                return;
        pthread_mutex_lock(&store->lock);
        atomic_store(&store->stopping, true);
        pthread_cond_broadcast(&store->wake);
        pthread_mutex_unlock(&store->lock);
        if (store->watcher_started)
                pthread_join(store->watcher, NULL);
        if (store->pool)
                mongoc_client_pool_destroy(store->pool);
        if (store->uri)
                mongoc_uri_destroy(store->uri);
        pthread_cond_destroy(&store->wake);
        pthread_mutex_destroy(&store->lock);
        free(store->prefix);
        free(store);
}

bool store_is_up(const store_t *store) {
        return atomic_load(&((store_t *)store)->up);
}

/* Pop a client and open db.coll; store__done gives them back. */
static mongoc_collection_t *store__coll(store_t *store, const char *db,
                                        const char *coll,
                                        mongoc_client_t **client) {
        char name[128];
        store__db_name(store, db, name, sizeof(name));
        *client = mongoc_client_pool_pop(store->pool);
        return mongoc_client_get_collection(*client, name, coll);
}

static void store__done(store_t *store, mongoc_client_t *client,
                        mongoc_collection_t *c) {
        mongoc_collection_destroy(c);
        mongoc_client_pool_push(store->pool, client);
}

store_err_t store_insert(store_t *store, const char *db, const char *coll,
                         const bson_t *doc, char *errstr, size_t errlen) {
        mongoc_client_t *client;
        mongoc_collection_t *c = store__coll(store, db, coll, &client);
        bson_error_t e;
        store_err_t err = STORE_OK;
        if (!mongoc_collection_insert_one(c, doc, NULL, NULL, &e))
                err = store__translate(&e, errstr, errlen);
        store__done(store, client, c);
        return err;
}

store_err_t store_find_one(store_t *store, const char *db, const char *coll,
                           const bson_t *filter, const bson_t *projection,
                           bson_t *out, char *errstr, size_t errlen) {
        mongoc_client_t *client;
        mongoc_collection_t *c = store__coll(store, db, coll, &client);
        bson_t opts = BSON_INITIALIZER;
        const bson_t *doc;
        mongoc_cursor_t *cur;
        bson_error_t e;
        store_err_t err = STORE_NOT_FOUND;

        BSON_APPEND_INT64(&opts, "limit", 1);
        if (projection)
                BSON_APPEND_DOCUMENT(&opts, "projection", projection);
        cur = mongoc_collection_find_with_opts(c, filter, &opts, NULL);
        if (mongoc_cursor_next(cur, &doc)) {
                bson_copy_to(doc, out);
                err = STORE_OK;
        } else if (mongoc_cursor_error(cur, &e)) {
                err = store__translate(&e, errstr, errlen);
        }
        mongoc_cursor_destroy(cur);
        bson_destroy(&opts);
        store__done(store, client, c);
        return err;
}

store_err_t store_find(store_t *store, const char *db, const char *coll,
                       const bson_t *filter, const bson_t *opts,
                       store_each_fn fn, void *arg, char *errstr,
                       size_t errlen) {
        mongoc_client_t *client;
        mongoc_collection_t *c = store__coll(store, db, coll, &client);
        mongoc_cursor_t *cur =
                mongoc_collection_find_with_opts(c, filter, opts, NULL);
        const bson_t *doc;
        bson_error_t e;
        store_err_t err = STORE_OK;

        while (mongoc_cursor_next(cur, &doc))
                if (!fn(doc, arg))
                        break;
        if (mongoc_cursor_error(cur, &e))
                err = store__translate(&e, errstr, errlen);
        mongoc_cursor_destroy(cur);
        store__done(store, client, c);
        return err;
}

store_err_t store_update_one(store_t *store, const char *db, const char *coll,
                             const bson_t *filter, const bson_t *update,
                             bool upsert, char *errstr, size_t errlen) {
        mongoc_client_t *client;
        mongoc_collection_t *c = store__coll(store, db, coll, &client);
        bson_t opts = BSON_INITIALIZER;
        bson_t reply;
        bson_error_t e;
        store_err_t err = STORE_OK;

        BSON_APPEND_BOOL(&opts, "upsert", upsert);
        if (!mongoc_collection_update_one(c, filter, update, &opts, &reply,
                                          &e)) {
                err = store__translate(&e, errstr, errlen);
        } else if (!upsert) {
                bson_iter_t it;
                if (bson_iter_init_find(&it, &reply, "matchedCount") &&
                    bson_iter_as_int64(&it) == 0)
                        err = STORE_NOT_FOUND;
        }
        bson_destroy(&reply);
        bson_destroy(&opts);
        store__done(store, client, c);
        return err;
}

store_err_t store_update_many(store_t *store, const char *db, const char *coll,
                              const bson_t *filter, const bson_t *update,
                              int64_t *matched, char *errstr, size_t errlen) {
        mongoc_client_t *client;
        mongoc_collection_t *c = store__coll(store, db, coll, &client);
        bson_t reply;
        bson_error_t e;
        bson_iter_t it;
        store_err_t err = STORE_OK;

        if (matched)
                *matched = 0;
        if (!mongoc_collection_update_many(c, filter, update, NULL, &reply, &e))
                err = store__translate(&e, errstr, errlen);
        else if (matched && bson_iter_init_find(&it, &reply, "matchedCount"))
                *matched = bson_iter_as_int64(&it);
        bson_destroy(&reply);
        store__done(store, client, c);
        return err;
}

store_err_t store_ensure_index(store_t *store, const char *db, const char *coll,
                               const char *name, const bson_t *keys,
                               bool unique, int64_t expire_after_s,
                               char *errstr, size_t errlen) {
        char dbname[128];
        mongoc_client_t *client = mongoc_client_pool_pop(store->pool);
        mongoc_database_t *d;
        bson_t cmd = BSON_INITIALIZER, indexes, index, reply;
        bson_error_t e;
        store_err_t err = STORE_OK;

        store__db_name(store, db, dbname, sizeof(dbname));
        d = mongoc_client_get_database(client, dbname);
        BSON_APPEND_UTF8(&cmd, "createIndexes", coll);
        BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &indexes);
        BSON_APPEND_DOCUMENT_BEGIN(&indexes, "0", &index);
        BSON_APPEND_DOCUMENT(&index, "key", keys);
        BSON_APPEND_UTF8(&index, "name", name);
        if (unique)
                BSON_APPEND_BOOL(&index, "unique", true);
        if (expire_after_s >= 0)
                BSON_APPEND_INT64(&index, "expireAfterSeconds", expire_after_s);
        bson_append_document_end(&indexes, &index);
        bson_append_array_end(&cmd, &indexes);
        if (!mongoc_database_write_command_with_opts(d, &cmd, NULL, &reply, &e))
                err = store__translate(&e, errstr, errlen);
        bson_destroy(&reply);
        bson_destroy(&cmd);
        mongoc_database_destroy(d);
        mongoc_client_pool_push(store->pool, client);
        return err;
}

/* keys as a bson document of field: 1 or -1 (see store_index_t). */
static void store__index_keys(const char *spec, bson_t *keys) {
        char field[128];
        const char *p = spec;

        while (*p) {
                const char *end = strchr(p, ',');
                size_t len = end ? (size_t)(end - p) : strlen(p);
                int32_t order = 1;
                if (*p == '-') {
                        order = -1;
                        p++;
                        len--;
                }
                assert(len > 0 && len < sizeof(field));
                memcpy(field, p, len);
                field[len] = '\0';
                BSON_APPEND_INT32(keys, field, order);
                p += len;
                if (*p == ',')
                        p++;
        }
        assert(!bson_empty(keys));
}

store_err_t store_ensure_indexes(store_t *store, const char *db,
                                 const store_index_t *indexes, char *errstr,
                                 size_t errlen) {
        store_err_t err = STORE_OK;

        for (size_t i = 0; indexes[i].coll && err == STORE_OK; i++) {
                bson_t keys = BSON_INITIALIZER;
                store__index_keys(indexes[i].keys, &keys);
                err = store_ensure_index(
                        store, db, indexes[i].coll, indexes[i].name, &keys,
                        indexes[i].unique, indexes[i].expire_after_s, errstr,
                        errlen);
                bson_destroy(&keys);
        }
        return err;
}
