/*
 * lease.c - claims of due records under a lease (see lease.h).
 */
#include "lease.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

/* The caller's filter plus the conditions of a claim: the lease is free
 * and (when due_only) the record is due. */
static void lease__filter(const lease_query_t *q, int64_t now, bool due_only,
                          bson_t *out) {
        bson_t cond;
        bson_iter_t it;

        bson_init(out);
        if (q->filter && bson_iter_init(&it, q->filter))
                while (bson_iter_next(&it)) {
                        const char *key = bson_iter_key(&it);
                        /* Ours to get right: a key twice is undefined. */
                        assert(strcmp(key, "_id") != 0 &&
                               strcmp(key, "lease_until") != 0 &&
                               strcmp(key, "lease_owner") != 0 &&
                               strcmp(key, q->time_field) != 0);
                        bson_append_iter(out, key, -1, &it);
                }
        BSON_APPEND_DOCUMENT_BEGIN(out, "lease_until", &cond);
        BSON_APPEND_DATE_TIME(&cond, "$lte", now);
        bson_append_document_end(out, &cond);
        if (due_only) {
                BSON_APPEND_DOCUMENT_BEGIN(out, q->time_field, &cond);
                BSON_APPEND_DATE_TIME(&cond, "$lte", now + q->horizon_ms);
                bson_append_document_end(out, &cond);
        }
}

typedef struct lease_scan {
        const char *time_field;
        int64_t now;
        int limit;
        bson_t ids; /* array of due ids */
        int n;
        int64_t next;
} lease_scan_t;

static bool lease__scan(const bson_t *doc, void *arg) {
        lease_scan_t *s = arg;
        bson_iter_t it;
        int64_t at;
        char key[16];

        if (!bson_iter_init_find(&it, doc, s->time_field) ||
            !BSON_ITER_HOLDS_DATE_TIME(&it))
                return true; /* not ours to fix: never due */
        at = bson_iter_date_time(&it);
        if (at > s->now) {
                s->next = at;
                return false;
        }
        if (s->n >= s->limit)
                return false;
        if (!bson_iter_init_find(&it, doc, "_id"))
                return true;
        snprintf(key, sizeof(key), "%d", s->n++);
        bson_append_iter(&s->ids, key, -1, &it);
        return true;
}

typedef struct lease_won {
        lease_each_fn fn;
        void *arg;
        int n;
        bool stopped;
} lease_won_t;

static bool lease__won(const bson_t *doc, void *arg) {
        lease_won_t *w = arg;
        w->n++;
        if (w->fn && !w->fn(doc, w->arg)) {
                w->stopped = true;
                return false;
        }
        return true;
}

store_err_t lease_claim(store_t *store, const lease_query_t *q, int64_t now_ms,
                        char owner[LEASE_OWNER_SIZE], lease_each_fn fn,
                        void *arg, int *claimed, int64_t *next_ms, char *errstr,
                        size_t errlen) {
        lease_scan_t scan = {.time_field = q->time_field,
                             .now = now_ms + q->horizon_ms,
                             .limit = q->limit,
                             .next = INT64_MAX};
        lease_won_t won = {.fn = fn, .arg = arg};
        bson_t filter, opts, sort, proj, update, set, in;
        msgid_t token;
        int64_t matched = 0;
        store_err_t err;

        assert(q->limit >= 1 && q->lease_ms > 0 && q->horizon_ms >= 0 &&
               q->time_field);
        if (claimed)
                *claimed = 0;
        if (next_ms)
                *next_ms = INT64_MAX;
        msgid_new(&token);
        msgid_format(&token, owner);

        /* 1. The due ids, earliest first, and the first one not yet due. */
        bson_init(&scan.ids);
        lease__filter(q, now_ms, false, &filter);
        bson_init(&opts);
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
        BSON_APPEND_INT32(&sort, q->time_field, 1);
        bson_append_document_end(&opts, &sort);
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
        BSON_APPEND_INT32(&proj, "_id", 1);
        BSON_APPEND_INT32(&proj, q->time_field, 1);
        bson_append_document_end(&opts, &proj);
        BSON_APPEND_INT64(&opts, "limit", q->limit + 1);
        err = store_find(store, q->db, q->coll, &filter, &opts, lease__scan,
                         &scan, errstr, errlen);
        bson_destroy(&filter);
        bson_destroy(&opts);
        if (next_ms)
                *next_ms = scan.next;
        if (err || scan.n == 0)
                goto done;

        /* 2. Take the leases of those still due and free. */
        lease__filter(q, now_ms, true, &filter);
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &in);
        BSON_APPEND_ARRAY(&in, "$in", &scan.ids);
        bson_append_document_end(&filter, &in);
        bson_init(&update);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_DATE_TIME(&set, "lease_until",
                              now_ms + q->horizon_ms + q->lease_ms);
        BSON_APPEND_UTF8(&set, "lease_owner", owner);
        bson_append_document_end(&update, &set);
        err = store_update(store, q->db, q->coll, &filter, &update, STORE_MANY,
                           &matched, errstr, errlen);
        bson_destroy(&filter);
        bson_destroy(&update);
        if (err == STORE_NOT_FOUND)
                err = STORE_OK; /* others were faster: nothing won */
        if (err || matched == 0)
                goto done;

        /* 3. Read back those this claim won, as they are now. */
        bson_init(&filter);
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &in);
        BSON_APPEND_ARRAY(&in, "$in", &scan.ids);
        bson_append_document_end(&filter, &in);
        BSON_APPEND_UTF8(&filter, "lease_owner", owner);
        bson_init(&opts);
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
        BSON_APPEND_INT32(&sort, q->time_field, 1);
        bson_append_document_end(&opts, &sort);
        err = store_find(store, q->db, q->coll, &filter, &opts, lease__won,
                         &won, errstr, errlen);
        bson_destroy(&filter);
        bson_destroy(&opts);
        if (claimed)
                *claimed = won.n;
done:
        bson_destroy(&scan.ids);
        return err;
}

store_err_t lease_update(store_t *store, const char *db, const char *coll,
                         const char *id, const char *owner,
                         const bson_t *update, char *errstr, size_t errlen) {
        bson_t filter = BSON_INITIALIZER;
        store_err_t err;

        BSON_APPEND_UTF8(&filter, "_id", id);
        BSON_APPEND_UTF8(&filter, "lease_owner", owner);
        err = store_update_one(store, db, coll, &filter, update, false, errstr,
                               errlen);
        bson_destroy(&filter);
        return err;
}

store_err_t lease_update_many(store_t *store, const char *db, const char *coll,
                              const char *const *ids, size_t n,
                              const char *owner, const bson_t *update,
                              int64_t *held, char *errstr, size_t errlen) {
        bson_t filter = BSON_INITIALIZER, in, arr;
        store_err_t err;
        char key[24];

        if (held)
                *held = 0;
        if (n == 0)
                return STORE_OK;
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &in);
        BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
        for (size_t i = 0; i < n; i++) {
                snprintf(key, sizeof(key), "%zu", i);
                BSON_APPEND_UTF8(&arr, key, ids[i]);
        }
        bson_append_array_end(&in, &arr);
        bson_append_document_end(&filter, &in);
        BSON_APPEND_UTF8(&filter, "lease_owner", owner);
        err = store_update(store, db, coll, &filter, update, STORE_MANY, held,
                           errstr, errlen);
        bson_destroy(&filter);
        return err == STORE_NOT_FOUND ? STORE_OK : err; /* none held */
}

void lease_append_free(bson_t *set) {
        BSON_APPEND_DATE_TIME(set, "lease_until", 0);
        BSON_APPEND_UTF8(set, "lease_owner", "");
}

const char *lease_doc_str(const bson_t *doc, const char *key) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
                return bson_iter_utf8(&it, NULL);
        return NULL;
}

int64_t lease_doc_int(const bson_t *doc, const char *key, int64_t def) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, key) &&
            (BSON_ITER_HOLDS_INT32(&it) || BSON_ITER_HOLDS_INT64(&it) ||
             BSON_ITER_HOLDS_DOUBLE(&it)))
                return bson_iter_as_int64(&it);
        return def;
}

int64_t lease_doc_date(const bson_t *doc, const char *key) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, key) &&
            BSON_ITER_HOLDS_DATE_TIME(&it))
                return bson_iter_date_time(&it);
        return 0;
}

slice_t lease_doc_bin(const bson_t *doc, const char *key) {
        bson_iter_t it;
        bson_subtype_t sub;
        uint32_t len = 0;
        const uint8_t *data = NULL;
        if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_BINARY(&it)) {
                bson_iter_binary(&it, &sub, &len, &data);
                return (slice_t){(const char *)data, len};
        }
        return SLICE_NULL;
}

bool lease_name_ok(const char *s, size_t max) {
        if (!s || !*s || strlen(s) >= max)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
                      *s == '_' || *s == '.' || *s == '-'))
                        return false;
        return true;
}

bool lease_id_ok(const char *id, size_t max) {
        size_t n = id ? strlen(id) : 0;
        if (n == 0 || n > max)
                return false;
        for (size_t i = 0; i < n; i++)
                if (id[i] < 0x21 || id[i] > 0x7e)
                        return false;
        return true;
}
