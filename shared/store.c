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
        return store_update(store, db, coll, filter, update,
                            upsert ? STORE_UPSERT : 0, NULL, errstr, errlen);
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

/* ---------------------------------------------------------------------------
 * Updates, deletes, claims, counts, pipelines
 * ------------------------------------------------------------------------ */

static int64_t store__reply_int(const bson_t *reply, const char *key) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, reply, key) &&
            (BSON_ITER_HOLDS_INT32(&it) || BSON_ITER_HOLDS_INT64(&it) ||
             BSON_ITER_HOLDS_DOUBLE(&it)))
                return bson_iter_as_int64(&it);
        return 0;
}

store_err_t store_update(store_t *store, const char *db, const char *coll,
                         const bson_t *filter, const bson_t *update,
                         unsigned flags, int64_t *matched, char *errstr,
                         size_t errlen) {
        mongoc_client_t *client;
        mongoc_collection_t *c = store__coll(store, db, coll, &client);
        bson_t opts = BSON_INITIALIZER, reply;
        bson_error_t e;
        store_err_t err = STORE_OK;
        bool ok;
        int64_t n = 0;

        BSON_APPEND_BOOL(&opts, "upsert", (flags & STORE_UPSERT) != 0);
        ok = flags & STORE_MANY
                     ? mongoc_collection_update_many(c, filter, update, &opts,
                                                     &reply, &e)
                     : mongoc_collection_update_one(c, filter, update, &opts,
                                                    &reply, &e);
        if (!ok) {
                err = store__translate(&e, errstr, errlen);
        } else {
                n = store__reply_int(&reply, "matchedCount") +
                    store__reply_int(&reply, "upsertedCount");
                if (n == 0)
                        err = STORE_NOT_FOUND;
        }
        if (matched)
                *matched = n;
        bson_destroy(&reply);
        bson_destroy(&opts);
        store__done(store, client, c);
        return err;
}

store_err_t store_delete(store_t *store, const char *db, const char *coll,
                         const bson_t *filter, unsigned flags, int64_t *deleted,
                         char *errstr, size_t errlen) {
        mongoc_client_t *client;
        mongoc_collection_t *c = store__coll(store, db, coll, &client);
        bson_t reply;
        bson_error_t e;
        store_err_t err = STORE_OK;
        bool ok = flags & STORE_MANY
                          ? mongoc_collection_delete_many(c, filter, NULL,
                                                          &reply, &e)
                          : mongoc_collection_delete_one(c, filter, NULL,
                                                         &reply, &e);
        if (!ok)
                err = store__translate(&e, errstr, errlen);
        if (deleted)
                *deleted = ok ? store__reply_int(&reply, "deletedCount") : 0;
        bson_destroy(&reply);
        store__done(store, client, c);
        return err;
}

store_err_t store_find_and_modify(store_t *store, const char *db,
                                  const char *coll, const bson_t *filter,
                                  const bson_t *sort, const bson_t *update,
                                  bool return_new, bool upsert, bson_t *out,
                                  char *errstr, size_t errlen) {
        mongoc_client_t *client;
        mongoc_collection_t *c = store__coll(store, db, coll, &client);
        mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new();
        bson_t reply;
        bson_iter_t it;
        bson_error_t e;
        store_err_t err = STORE_NOT_FOUND;
        mongoc_find_and_modify_opts_set_update(opts, update);
        if (sort)
                mongoc_find_and_modify_opts_set_sort(opts, sort);
        mongoc_find_and_modify_opts_set_flags(
                opts, (return_new ? MONGOC_FIND_AND_MODIFY_RETURN_NEW : 0) |
                              (upsert ? MONGOC_FIND_AND_MODIFY_UPSERT : 0));
        if (!mongoc_collection_find_and_modify_with_opts(c, filter, opts,
                                                         &reply, &e)) {
                err = store__translate(&e, errstr, errlen);
        } else if (bson_iter_init_find(&it, &reply, "value") &&
                   BSON_ITER_HOLDS_DOCUMENT(&it)) {
                const uint8_t *data;
                uint32_t len;
                bson_t doc;
                bson_iter_document(&it, &len, &data);
                if (bson_init_static(&doc, data, len)) {
                        bson_copy_to(&doc, out);
                        err = STORE_OK;
                } else {
                        err = STORE_BAD_REPLY;
                }
        }
        bson_destroy(&reply);
        mongoc_find_and_modify_opts_destroy(opts);
        store__done(store, client, c);
        return err;
}

store_err_t store_count(store_t *store, const char *db, const char *coll,
                        const bson_t *filter, int64_t *count, char *errstr,
                        size_t errlen) {
        mongoc_client_t *client;
        mongoc_collection_t *c = store__coll(store, db, coll, &client);
        bson_error_t e;
        int64_t n = mongoc_collection_count_documents(c, filter, NULL, NULL,
                                                      NULL, &e);
        store__done(store, client, c);
        if (n < 0)
                return store__translate(&e, errstr, errlen);
        *count = n;
        return STORE_OK;
}

store_err_t store_aggregate(store_t *store, const char *db, const char *coll,
                            const bson_t *pipeline, store_each_fn fn, void *arg,
                            char *errstr, size_t errlen) {
        mongoc_client_t *client;
        mongoc_collection_t *c = store__coll(store, db, coll, &client);
        mongoc_cursor_t *cur = mongoc_collection_aggregate(
                c, MONGOC_QUERY_NONE, pipeline, NULL, NULL);
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

store_err_t store_drop(store_t *store, const char *db, const char *coll,
                       char *errstr, size_t errlen) {
        mongoc_client_t *client;
        mongoc_collection_t *c = store__coll(store, db, coll, &client);
        bson_error_t e;
        store_err_t err = STORE_OK;
        /* "ns not found" (26): nothing to drop. */
        if (!mongoc_collection_drop(c, &e) && e.code != 26 &&
            !strstr(e.message, "ns not found"))
                err = store__translate(&e, errstr, errlen);
        store__done(store, client, c);
        return err;
}

/* ---------------------------------------------------------------------------
 * Bulk writes
 * ------------------------------------------------------------------------ */

struct store_bulk {
        store_t *store;
        mongoc_client_t *client;
        mongoc_collection_t *coll;
        mongoc_bulk_operation_t *op;
        bool ordered;
        size_t n;
        bool ran;
};

store_bulk_t *store_bulk_new(store_t *store, const char *db, const char *coll,
                             bool ordered) {
        store_bulk_t *b = xcalloc(1, sizeof(*b));
        bson_t opts = BSON_INITIALIZER;
        b->store = store;
        b->ordered = ordered;
        b->coll = store__coll(store, db, coll, &b->client);
        BSON_APPEND_BOOL(&opts, "ordered", ordered);
        b->op = mongoc_collection_create_bulk_operation_with_opts(b->coll,
                                                                  &opts);
        bson_destroy(&opts);
        return b;
}

/* The bulk's own calls fail only for arguments we built: a bug. */
static void store__bulk_check(bool ok, const bson_error_t *e) {
        if (!ok)
                log_error("store bulk: %s", e->message);
        assert(ok);
}

void store_bulk_insert(store_bulk_t *b, const bson_t *doc) {
        bson_error_t e;
        assert(!b->ran);
        store__bulk_check(
                mongoc_bulk_operation_insert_with_opts(b->op, doc, NULL, &e),
                &e);
        b->n++;
}

void store_bulk_update(store_bulk_t *b, const bson_t *filter,
                       const bson_t *update, unsigned flags) {
        bson_t opts = BSON_INITIALIZER;
        bson_error_t e;
        bool ok;
        assert(!b->ran);
        BSON_APPEND_BOOL(&opts, "upsert", (flags & STORE_UPSERT) != 0);
        ok = flags & STORE_MANY ? mongoc_bulk_operation_update_many_with_opts(
                                          b->op, filter, update, &opts, &e)
                                : mongoc_bulk_operation_update_one_with_opts(
                                          b->op, filter, update, &opts, &e);
        bson_destroy(&opts);
        store__bulk_check(ok, &e);
        b->n++;
}

void store_bulk_replace(store_bulk_t *b, const bson_t *filter,
                        const bson_t *doc, bool upsert) {
        bson_t opts = BSON_INITIALIZER;
        bson_error_t e;
        bool ok;
        assert(!b->ran);
        BSON_APPEND_BOOL(&opts, "upsert", upsert);
        ok = mongoc_bulk_operation_replace_one_with_opts(b->op, filter, doc,
                                                         &opts, &e);
        bson_destroy(&opts);
        store__bulk_check(ok, &e);
        b->n++;
}

void store_bulk_delete(store_bulk_t *b, const bson_t *filter, unsigned flags) {
        bson_error_t e;
        bool ok;
        assert(!b->ran);
        ok = flags & STORE_MANY ? mongoc_bulk_operation_remove_many_with_opts(
                                          b->op, filter, NULL, &e)
                                : mongoc_bulk_operation_remove_one_with_opts(
                                          b->op, filter, NULL, &e);
        store__bulk_check(ok, &e);
        b->n++;
}

size_t store_bulk_count(const store_bulk_t *b) {
        return b->n;
}

/* Unordered bulks: count duplicate-key write errors instead of failing;
 * any other write error fails the call. */
static store_err_t store__bulk_write_errors(const bson_t *reply,
                                            int64_t *duplicates, char *errstr,
                                            size_t errlen) {
        bson_iter_t it, arr, doc;
        store_err_t err = STORE_OK;
        if (!bson_iter_init_find(&it, reply, "writeErrors") ||
            !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &arr))
                return STORE_OK;
        while (bson_iter_next(&arr)) {
                int64_t code = 0;
                const char *msg = "";
                if (!BSON_ITER_HOLDS_DOCUMENT(&arr) ||
                    !bson_iter_recurse(&arr, &doc))
                        continue;
                while (bson_iter_next(&doc)) {
                        if (strcmp(bson_iter_key(&doc), "code") == 0)
                                code = bson_iter_as_int64(&doc);
                        else if (strcmp(bson_iter_key(&doc), "errmsg") == 0 &&
                                 BSON_ITER_HOLDS_UTF8(&doc))
                                msg = bson_iter_utf8(&doc, NULL);
                }
                if (code == 11000 || code == 11001 || strstr(msg, "E11000")) {
                        (*duplicates)++;
                } else if (err == STORE_OK) {
                        err = STORE_ERROR;
                        if (errstr && errlen)
                                snprintf(errstr, errlen, "%s: %s",
                                         store_strerror(err), msg);
                }
        }
        return err;
}

store_err_t store_bulk_run(store_bulk_t *b, store_bulk_result_t *result,
                           char *errstr, size_t errlen) {
        store_bulk_result_t r = {0};
        bson_t reply;
        bson_error_t e;
        store_err_t err = STORE_OK;
        assert(!b->ran);
        b->ran = true;
        if (b->n == 0) {
                if (result)
                        *result = r;
                return STORE_OK;
        }
        if (!mongoc_bulk_operation_execute(b->op, &reply, &e)) {
                if (e.domain == MONGOC_ERROR_SERVER_SELECTION ||
                    e.domain == MONGOC_ERROR_STREAM)
                        err = store__translate(&e, errstr, errlen);
                else if (!b->ordered)
                        err = store__bulk_write_errors(&reply, &r.duplicates,
                                                       errstr, errlen);
                else
                        err = store__translate(&e, errstr, errlen);
                if (err == STORE_OK &&
                    bson_has_field(&reply, "writeConcernErrors"))
                        err = store__translate(&e, errstr, errlen);
        }
        r.inserted = store__reply_int(&reply, "nInserted");
        r.matched = store__reply_int(&reply, "nMatched");
        r.modified = store__reply_int(&reply, "nModified");
        r.upserted = store__reply_int(&reply, "nUpserted");
        r.deleted = store__reply_int(&reply, "nRemoved");
        if (result)
                *result = r;
        bson_destroy(&reply);
        return err;
}

void store_bulk_destroy(store_bulk_t *b) {
        if (!b)
                return;
        mongoc_bulk_operation_destroy(b->op);
        store__done(b->store, b->client, b->coll);
        free(b);
}
