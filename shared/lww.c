/*
 * lww.c - last-writer-wins write buffers (see lww.h).
 *
 * Two open-addressing tables: documents by _id, and registers by (document,
 * path). Each document keeps its registers in a list, in the order they
 * were first written, for the flush. Values live in buffers of their own
 * that are reused when a newer value fits.
 */
#include "lww.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"

typedef enum lww_op { LWW_SET, LWW_MAX, LWW_MIN } lww_op_t;

typedef struct lww_reg {
        struct lww_doc *doc;
        uint64_t hash; /* of (doc, path) */
        char *path;
        char *value;
        size_t len, cap;
        lww_op_t op;
        struct lww_reg *next; /* in the document's list */
} lww_reg_t;

typedef struct lww_doc {
        char *id;
        size_t id_len;
        uint64_t hash;
        lww_reg_t *head, *tail;
        size_t n_regs;
} lww_doc_t;

struct lww {
        lww_doc_t **docs; /* open addressing, power of two */
        size_t docs_cap, n_docs;
        lww_reg_t **regs;
        size_t regs_cap, n_regs;
        size_t bytes;
        /* lww_flush_new: ids written before (open addressing). */
        char **written;
        size_t written_cap, n_written;
};

static uint64_t lww__hash(const char *p, size_t n, uint64_t h) {
        for (size_t i = 0; i < n; i++)
                h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
        return h;
}

#define LWW_SEED 14695981039346656037ULL

lww_t *lww_new(void) {
        lww_t *b = xcalloc(1, sizeof(*b));
        b->docs_cap = 256;
        b->docs = xcalloc(b->docs_cap, sizeof(*b->docs));
        b->regs_cap = 1024;
        b->regs = xcalloc(b->regs_cap, sizeof(*b->regs));
        return b;
}

static void lww__free_all(lww_t *b) {
        for (size_t i = 0; i < b->regs_cap; i++) {
                lww_reg_t *r = b->regs[i];
                if (!r)
                        continue;
                free(r->path);
                free(r->value);
                free(r);
                b->regs[i] = NULL;
        }
        for (size_t i = 0; i < b->docs_cap; i++) {
                lww_doc_t *d = b->docs[i];
                if (!d)
                        continue;
                free(d->id);
                free(d);
                b->docs[i] = NULL;
        }
        b->n_docs = b->n_regs = 0;
        b->bytes = 0;
}

void lww_clear(lww_t *b) {
        lww__free_all(b);
}

void lww_destroy(lww_t *b) {
        if (!b)
                return;
        lww__free_all(b);
        for (size_t i = 0; i < b->written_cap; i++)
                free(b->written[i]);
        free(b->written);
        free(b->docs);
        free(b->regs);
        free(b);
}

size_t lww_docs(const lww_t *b) {
        return b->n_docs;
}

size_t lww_bytes(const lww_t *b) {
        return b->bytes;
}

static uint64_t lww__doc_hash(const char *id, size_t n) {
        return lww__hash(id, n, LWW_SEED);
}

static uint64_t lww__reg_hash(const lww_doc_t *d, const char *path) {
        uint64_t h = lww__hash((const char *)&d, sizeof(d), LWW_SEED);
        return lww__hash(path, strlen(path), h);
}

static void lww__grow_docs(lww_t *b) {
        size_t cap = b->docs_cap * 2;
        lww_doc_t **docs = xcalloc(cap, sizeof(*docs));
        for (size_t i = 0; i < b->docs_cap; i++) {
                lww_doc_t *d = b->docs[i];
                size_t k;
                if (!d)
                        continue;
                k = d->hash & (cap - 1);
                while (docs[k])
                        k = (k + 1) & (cap - 1);
                docs[k] = d;
        }
        free(b->docs);
        b->docs = docs;
        b->docs_cap = cap;
}

static void lww__grow_regs(lww_t *b) {
        size_t cap = b->regs_cap * 2;
        lww_reg_t **regs = xcalloc(cap, sizeof(*regs));
        for (size_t i = 0; i < b->regs_cap; i++) {
                lww_reg_t *r = b->regs[i];
                size_t k;
                if (!r)
                        continue;
                k = r->hash & (cap - 1);
                while (regs[k])
                        k = (k + 1) & (cap - 1);
                regs[k] = r;
        }
        free(b->regs);
        b->regs = regs;
        b->regs_cap = cap;
}

static lww_doc_t *lww__doc(lww_t *b, slice_t id) {
        size_t k;
        lww_doc_t *d;
        uint64_t h = lww__doc_hash(id.ptr, id.len);
        if ((b->n_docs + 1) * 2 > b->docs_cap)
                lww__grow_docs(b);
        k = h & (b->docs_cap - 1);
        while ((d = b->docs[k]) != NULL) {
                if (d->hash == h && d->id_len == id.len &&
                    memcmp(d->id, id.ptr, id.len) == 0)
                        return d;
                k = (k + 1) & (b->docs_cap - 1);
        }
        d = xcalloc(1, sizeof(*d));
        d->hash = h;
        d->id = xstrndup(id.ptr, id.len);
        d->id_len = id.len;
        b->docs[k] = d;
        b->n_docs++;
        b->bytes += sizeof(*d) + id.len + 1;
        return d;
}

bool lww_holds(const lww_t *b, slice_t id) {
        uint64_t h = lww__doc_hash(id.ptr, id.len);
        size_t k = h & (b->docs_cap - 1);
        const lww_doc_t *d;
        while ((d = b->docs[k]) != NULL) {
                if (d->hash == h && d->id_len == id.len &&
                    memcmp(d->id, id.ptr, id.len) == 0)
                        return true;
                k = (k + 1) & (b->docs_cap - 1);
        }
        return false;
}

static void lww__store_value(lww_t *b, lww_reg_t *r, slice_t value) {
        if (value.len + 1 > r->cap) {
                b->bytes += value.len + 1 - r->cap;
                r->cap = value.len + 1;
                r->value = xrealloc(r->value, r->cap);
        }
        if (value.len) /* an empty slice may have no pointer */
                memcpy(r->value, value.ptr, value.len);
        r->value[value.len] = '\0';
        r->len = value.len;
}

static int lww__cmp(const lww_reg_t *r, slice_t value) {
        size_t n = r->len < value.len ? r->len : value.len;
        int c = n ? memcmp(value.ptr, r->value, n) : 0;
        if (c)
                return c;
        return value.len < r->len ? -1 : value.len > r->len ? 1 : 0;
}

static void lww__put(lww_t *b, slice_t id, const char *path, slice_t value,
                     lww_op_t op) {
        lww_doc_t *d = lww__doc(b, id);
        lww_reg_t *r;
        size_t k;
        uint64_t h = lww__reg_hash(d, path);
        if ((b->n_regs + 1) * 2 > b->regs_cap)
                lww__grow_regs(b);
        k = h & (b->regs_cap - 1);
        while ((r = b->regs[k]) != NULL) {
                if (r->hash == h && r->doc == d && strcmp(r->path, path) == 0) {
                        int c = lww__cmp(r, value);
                        if (op == LWW_SET || (op == LWW_MAX && c > 0) ||
                            (op == LWW_MIN && c < 0))
                                lww__store_value(b, r, value);
                        return;
                }
                k = (k + 1) & (b->regs_cap - 1);
        }
        r = xcalloc(1, sizeof(*r));
        r->doc = d;
        r->hash = h;
        r->path = xstrdup(path);
        r->op = op;
        lww__store_value(b, r, value);
        b->bytes += sizeof(*r) + strlen(path) + 1;
        b->regs[k] = r;
        b->n_regs++;
        if (d->tail)
                d->tail->next = r;
        else
                d->head = r;
        d->tail = r;
        d->n_regs++;
}

void lww_set(lww_t *b, slice_t id, const char *path, slice_t value) {
        lww__put(b, id, path, value, LWW_SET);
}

void lww_max(lww_t *b, slice_t id, const char *path, slice_t value) {
        lww__put(b, id, path, value, LWW_MAX);
}

void lww_min(lww_t *b, slice_t id, const char *path, slice_t value) {
        lww__put(b, id, path, value, LWW_MIN);
}

void lww_each(const lww_t *b, lww_each_fn fn, void *arg) {
        for (size_t i = 0; i < b->docs_cap; i++) {
                const lww_doc_t *d = b->docs[i];
                if (!d)
                        continue;
                for (const lww_reg_t *r = d->head; r; r = r->next)
                        fn((slice_t){d->id, d->id_len}, r->path,
                           (slice_t){r->value, r->len}, arg);
        }
}

/* The update of one document: {$set: {...}, $max: {...}, $min: {...}}. */
static void lww__update(const lww_doc_t *d, bson_t *update) {
        static const char *const ops[] = {"$set", "$max", "$min"};
        for (int op = LWW_SET; op <= LWW_MIN; op++) {
                bson_t sub;
                bool open = false;
                for (const lww_reg_t *r = d->head; r; r = r->next) {
                        if ((int)r->op != op)
                                continue;
                        if (!open) {
                                bson_append_document_begin(update, ops[op], -1,
                                                           &sub);
                                open = true;
                        }
                        bson_append_utf8(&sub, r->path, -1, r->value,
                                         (int)r->len);
                }
                if (open)
                        bson_append_document_end(update, &sub);
        }
}

store_err_t lww_flush(lww_t *b, store_t *store, const char *db,
                      const char *coll, size_t docs_per_bulk, char *errstr,
                      size_t errlen) {
        store_bulk_t *bulk = NULL;
        size_t i;
        store_err_t err = STORE_OK;
        if (!docs_per_bulk)
                docs_per_bulk = 200;
        /* On a failure everything stays held: sending again what the
         * store already took changes nothing ($max, $min, constants). */
        for (i = 0; i < b->docs_cap; i++) {
                const lww_doc_t *d = b->docs[i];
                bson_t filter, update;
                if (!d)
                        continue;
                if (!bulk)
                        bulk = store_bulk_new(store, db, coll, false);
                bson_init(&filter);
                bson_append_utf8(&filter, "_id", -1, d->id, (int)d->id_len);
                bson_init(&update);
                lww__update(d, &update);
                store_bulk_update(bulk, &filter, &update, STORE_UPSERT);
                bson_destroy(&filter);
                bson_destroy(&update);
                if (store_bulk_count(bulk) >= docs_per_bulk) {
                        err = store_bulk_run(bulk, NULL, errstr, errlen);
                        store_bulk_destroy(bulk);
                        bulk = NULL;
                        if (err != STORE_OK)
                                break;
                }
        }
        if (bulk) {
                if (err == STORE_OK)
                        err = store_bulk_run(bulk, NULL, errstr, errlen);
                store_bulk_destroy(bulk);
        }
        if (err == STORE_OK)
                lww__free_all(b);
        return err;
}

/* ---------------------------------------------------------------------------
 * Fresh collections: inserts
 * ------------------------------------------------------------------------ */

static bool lww__was_written(const lww_t *b, const lww_doc_t *d) {
        size_t k;
        if (!b->written_cap)
                return false;
        k = lww__doc_hash(d->id, d->id_len) & (b->written_cap - 1);
        while (b->written[k]) {
                if (strlen(b->written[k]) == d->id_len &&
                    memcmp(b->written[k], d->id, d->id_len) == 0)
                        return true;
                k = (k + 1) & (b->written_cap - 1);
        }
        return false;
}

static void lww__mark_written(lww_t *b, const lww_doc_t *d) {
        size_t k;
        if ((b->n_written + 1) * 2 > b->written_cap) {
                size_t cap = b->written_cap ? b->written_cap * 2 : 1024;
                char **w = xcalloc(cap, sizeof(*w));
                for (size_t i = 0; i < b->written_cap; i++) {
                        if (!b->written[i])
                                continue;
                        k = lww__doc_hash(b->written[i],
                                          strlen(b->written[i])) &
                            (cap - 1);
                        while (w[k])
                                k = (k + 1) & (cap - 1);
                        w[k] = b->written[i];
                }
                free(b->written);
                b->written = w;
                b->written_cap = cap;
        }
        k = lww__doc_hash(d->id, d->id_len) & (b->written_cap - 1);
        while (b->written[k])
                k = (k + 1) & (b->written_cap - 1);
        b->written[k] = xstrndup(d->id, d->id_len);
        b->n_written++;
}

/* The whole document: plain paths as fields, "map.key" paths grouped into
 * a sub-document per map (one level, as the buffer's users write). */
static void lww__document(const lww_doc_t *d, bson_t *doc) {
        bson_append_utf8(doc, "_id", -1, d->id, (int)d->id_len);
        for (const lww_reg_t *r = d->head; r; r = r->next)
                if (!strchr(r->path, '.'))
                        bson_append_utf8(doc, r->path, -1, r->value,
                                         (int)r->len);
        for (const lww_reg_t *r = d->head; r; r = r->next) {
                const char *dot = strchr(r->path, '.');
                size_t plen = dot ? (size_t)(dot - r->path) : 0;
                bool first = true;
                bson_t sub;
                if (!dot)
                        continue;
                /* Only at the first register of its map. */
                for (const lww_reg_t *q = d->head; q != r && first; q = q->next)
                        first = !(strncmp(q->path, r->path, plen) == 0 &&
                                  q->path[plen] == '.');
                if (!first)
                        continue;
                bson_append_document_begin(doc, r->path, (int)plen, &sub);
                for (const lww_reg_t *q = r; q; q = q->next)
                        if (strncmp(q->path, r->path, plen) == 0 &&
                            q->path[plen] == '.')
                                bson_append_utf8(&sub, q->path + plen + 1, -1,
                                                 q->value, (int)q->len);
                bson_append_document_end(doc, &sub);
        }
}

/* Insert the documents of docs[0..n) (falling back to upserts if any
 * exists already). */
static store_err_t lww__insert(lww_doc_t **docs, size_t n, store_t *store,
                               const char *db, const char *coll, char *errstr,
                               size_t errlen) {
        store_bulk_t *bulk = store_bulk_new(store, db, coll, false);
        store_bulk_result_t res;
        store_err_t err;
        for (size_t i = 0; i < n; i++) {
                bson_t doc;
                bson_init(&doc);
                lww__document(docs[i], &doc);
                store_bulk_insert(bulk, &doc);
                bson_destroy(&doc);
        }
        err = store_bulk_run(bulk, &res, errstr, errlen);
        store_bulk_destroy(bulk);
        if (err != STORE_OK || res.duplicates == 0)
                return err;
        /* Not so fresh after all: the same documents as upserts. */
        bulk = store_bulk_new(store, db, coll, false);
        for (size_t i = 0; i < n; i++) {
                bson_t filter, update;
                bson_init(&filter);
                bson_append_utf8(&filter, "_id", -1, docs[i]->id,
                                 (int)docs[i]->id_len);
                bson_init(&update);
                lww__update(docs[i], &update);
                store_bulk_update(bulk, &filter, &update, STORE_UPSERT);
                bson_destroy(&filter);
                bson_destroy(&update);
        }
        err = store_bulk_run(bulk, NULL, errstr, errlen);
        store_bulk_destroy(bulk);
        return err;
}

store_err_t lww_flush_new(lww_t *b, store_t *store, const char *db,
                          const char *coll, size_t docs_per_bulk, char *errstr,
                          size_t errlen) {
        lww_doc_t **fresh;
        size_t n = 0;
        store_err_t err = STORE_OK;
        lww_t *again;
        if (!docs_per_bulk)
                docs_per_bulk = 200;
        fresh = xcalloc(docs_per_bulk, sizeof(*fresh));
        /* Documents written before go through an ordinary flush of a
         * buffer of their own. */
        again = lww_new();
        for (size_t i = 0; i < b->docs_cap && err == STORE_OK; i++) {
                lww_doc_t *d = b->docs[i];
                if (!d)
                        continue;
                if (lww__was_written(b, d)) {
                        for (const lww_reg_t *r = d->head; r; r = r->next)
                                lww__put(again, (slice_t){d->id, d->id_len},
                                         r->path, (slice_t){r->value, r->len},
                                         r->op);
                        continue;
                }
                fresh[n++] = d;
                if (n == docs_per_bulk) {
                        err = lww__insert(fresh, n, store, db, coll, errstr,
                                          errlen);
                        n = 0;
                }
        }
        if (err == STORE_OK && n)
                err = lww__insert(fresh, n, store, db, coll, errstr, errlen);
        if (err == STORE_OK)
                err = lww_flush(again, store, db, coll, docs_per_bulk, errstr,
                                errlen);
        lww_destroy(again);
        free(fresh);
        if (err != STORE_OK)
                return err;
        for (size_t i = 0; i < b->docs_cap; i++)
                if (b->docs[i] && !lww__was_written(b, b->docs[i]))
                        lww__mark_written(b, b->docs[i]);
        lww__free_all(b);
        return STORE_OK;
}
