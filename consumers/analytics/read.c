/*
 * read.c - a tenant's facts for a period, out of the versions a view names
 * (see analytics_internal.h).
 *
 * Reads go by _id only: the tenant's catalog of accounts (one document)
 * says which accounts exist and their first and last day, from which the
 * _id range of each account's documents of the period follows; one query
 * reads them all (read__days). A request touches exactly the documents of
 * its period, through the primary index on MongoDB.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "analytics_internal.h"
#include "log.h"

#define READ_MAX_ACCOUNTS 2048
#define READ_IDS_PER_QUERY 400

/* ---------------------------------------------------------------------------
 * Views
 * ------------------------------------------------------------------------ */

void aview_from(const projection_snapshot_t *snap, store_t *store,
                const char *db, slice_t tenant, aview_t *v) {
        memset(v, 0, sizeof(*v));
        v->store = store;
        v->db = db;
        snprintf(v->tenant, sizeof(v->tenant), "%.*s", (int)tenant.len,
                 tenant.ptr ? tenant.ptr : "");
        for (int p = 0; p < PROJ_COUNT; p++)
                v->version[p] = projection_version(
                        snap, analytics_projection_defs[p]->name, tenant);
}

store_err_t aview_load(store_t *store, const char *db, slice_t tenant,
                       aview_t *v, char *errstr, size_t errlen) {
        projection_snapshot_t *snap = NULL;
        projection_err_t perr;
        if (tenant.len >= sizeof(v->tenant)) {
                snprintf(errstr, errlen, "tenant id too long");
                return STORE_ERROR;
        }
        perr = projection_snapshot_load(store, db, analytics_projection_defs,
                                        PROJ_COUNT, &snap, errstr, errlen);
        if (perr != PROJECTION_OK)
                return store_is_up(store) ? STORE_ERROR : STORE_UNAVAILABLE;
        aview_from(snap, store, db, tenant, v);
        projection_snapshot_free(snap);
        return STORE_OK;
}

void aview_coll(const aview_t *v, int p, const char *base, char *out,
                size_t size) {
        projection_coll(base, v->version[p], out, size);
}

bool afilter_has(const char *const *list, size_t n, const char *s) {
        if (!n)
                return true;
        for (size_t i = 0; i < n; i++)
                if (strcmp(list[i], s) == 0)
                        return true;
        return false;
}

/* ---------------------------------------------------------------------------
 * Catalogs
 * ------------------------------------------------------------------------ */

typedef struct account {
        char provider[40];
        char account[136];
        int64_t first, last;
        char key[17];
} account_t;

typedef struct catalog {
        account_t *a;
        size_t n;
} catalog_t;

static account_t *catalog__find(catalog_t *c, const char *key) {
        for (size_t i = 0; i < c->n; i++)
                if (strcmp(c->a[i].key, key) == 0)
                        return &c->a[i];
        return NULL;
}

static void catalog__days(catalog_t *c, const bson_t *doc, const char *field,
                          bool first) {
        bson_iter_t it, sub;
        if (!bson_iter_init_find(&it, doc, field) ||
            !BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &sub))
                return;
        while (bson_iter_next(&sub)) {
                account_t *a = catalog__find(c, bson_iter_key(&sub));
                uint32_t len = 0;
                const char *s;
                int64_t day;
                if (!a || !BSON_ITER_HOLDS_UTF8(&sub))
                        continue;
                s = bson_iter_utf8(&sub, &len);
                if (!caltime_parse_date(s, len, &day))
                        continue;
                if (first)
                        a->first = day;
                else
                        a->last = day;
        }
}

/* The tenant's accounts in catalog collection base of projection p. */
static store_err_t catalog_load(const aview_t *v, int p, const char *base,
                                catalog_t *c, char *errstr, size_t errlen) {
        char coll[PROJECTION_COLL_MAX];
        bson_t filter, doc;
        bson_iter_t it, sub;
        store_err_t err;
        memset(c, 0, sizeof(*c));
        aview_coll(v, p, base, coll, sizeof(coll));
        bson_init(&filter);
        BSON_APPEND_UTF8(&filter, "_id", v->tenant);
        err = store_find_one(v->store, v->db, coll, &filter, NULL, &doc, errstr,
                             errlen);
        bson_destroy(&filter);
        if (err == STORE_NOT_FOUND)
                return STORE_OK;
        if (err != STORE_OK)
                return err;
        if (bson_iter_init_find(&it, &doc, "a") &&
            BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &sub)) {
                while (bson_iter_next(&sub) && c->n < READ_MAX_ACCOUNTS) {
                        rec_fields_t fs;
                        account_t *a;
                        uint32_t len = 0;
                        const char *s;
                        if (!BSON_ITER_HOLDS_UTF8(&sub))
                                continue;
                        s = bson_iter_utf8(&sub, &len);
                        if (!rec_split((slice_t){s, len}, &fs) || fs.n != 2)
                                continue;
                        c->a = xrealloc(c->a, (c->n + 1) * sizeof(*c->a));
                        a = &c->a[c->n++];
                        memset(a, 0, sizeof(*a));
                        snprintf(a->provider, sizeof(a->provider), "%s",
                                 fs.f[0]);
                        snprintf(a->account, sizeof(a->account), "%s", fs.f[1]);
                        snprintf(a->key, sizeof(a->key), "%s",
                                 bson_iter_key(&sub));
                        a->first = 1;
                        a->last = 0; /* no days until both are read */
                }
        }
        catalog__days(c, &doc, "first", true);
        catalog__days(c, &doc, "last", false);
        bson_destroy(&doc);
        return STORE_OK;
}

static void catalog_free(catalog_t *c) {
        free(c->a);
        c->a = NULL;
        c->n = 0;
}

/* ---------------------------------------------------------------------------
 * Reading account-day documents by id
 * ------------------------------------------------------------------------ */

typedef bool (*doc_fn)(const bson_t *doc, void *arg);

/* Ids of a period past which one range query beats lists of ids on the
 * local store (a collection scan each way; lists cost it a pass per
 * batch and a lookup per id). */
#define READ_IDS_MAX_LISTED 1000

typedef struct idbatch {
        const aview_t *v;
        const char *coll;
        bson_t filter, in, arr;
        size_t n;
        doc_fn fn;
        void *arg;
        store_err_t err;
        char *errstr;
        size_t errlen;
} idbatch_t;

static void idbatch__open(idbatch_t *b) {
        bson_init(&b->filter);
        BSON_APPEND_DOCUMENT_BEGIN(&b->filter, "_id", &b->in);
        BSON_APPEND_ARRAY_BEGIN(&b->in, "$in", &b->arr);
        b->n = 0;
}

static void idbatch__run(idbatch_t *b) {
        bson_append_array_end(&b->in, &b->arr);
        bson_append_document_end(&b->filter, &b->in);
        if (b->n && b->err == STORE_OK)
                b->err = store_find(b->v->store, b->v->db, b->coll, &b->filter,
                                    NULL, b->fn, b->arg, b->errstr, b->errlen);
        bson_destroy(&b->filter);
}

static void idbatch_add(idbatch_t *b, const char *id) {
        char key[24];
        snprintf(key, sizeof(key), "%zu", b->n++);
        BSON_APPEND_UTF8(&b->arr, key, id);
        if (b->n >= READ_IDS_PER_QUERY) {
                idbatch__run(b);
                idbatch__open(b);
        }
}

/* The account-day ids of [lo, hi] of one account into b. */
static void read__ids(idbatch_t *b, const aview_t *v, const account_t *a,
                      int64_t lo, int64_t hi, int buckets) {
        for (int64_t d = lo; d <= hi; d++) {
                char day[CALTIME_DATE_SIZE], id[REC_ID_MAX],
                        bucket[12]; /* any int */
                caltime_format_date(d, day);
                for (int k = 0; k < (buckets ? buckets : 1); k++) {
                        slice_t parts[5] = {slice_of(v->tenant),
                                            slice_of(a->provider),
                                            slice_of(a->account), slice_of(day),
                                            SLICE_NULL};
                        snprintf(bucket, sizeof(bucket), "%d", k);
                        parts[4] = slice_of(bucket);
                        rec_id(id, buckets ? 5 : 4, parts);
                        idbatch_add(b, id);
                }
        }
}

/* The documents of every matching account for the days of [from, to]
 * within its first and last day: listed by id ($in, a few hundred at a
 * time) for short periods, else in one query of an $or of one _id range
 * per account ("<tenant>|<provider>|<account>|<from>" to "...|<to>",
 * "...|<to>|~" when ids end in a bucket). Ids are escaped so '|' only
 * separates: no other account's id falls in a range. Either way MongoDB
 * walks its primary index. */
static store_err_t read__days(const aview_t *v, int p, const char *catalog,
                              const char *base, const afilter_t *f,
                              int64_t from, int64_t to, int buckets, doc_fn fn,
                              void *arg, char *errstr, size_t errlen) {
        catalog_t c;
        char coll[PROJECTION_COLL_MAX], key[24];
        bson_t filter, or, range, bounds;
        size_t n = 0;
        int64_t ids = 0;
        store_err_t err = catalog_load(v, p, catalog, &c, errstr, errlen);
        if (err != STORE_OK)
                return err;
        aview_coll(v, p, base, coll, sizeof(coll));
        for (size_t i = 0; i < c.n; i++) {
                int64_t lo = from > c.a[i].first ? from : c.a[i].first;
                int64_t hi = to < c.a[i].last ? to : c.a[i].last;
                if (lo <= hi)
                        ids += (hi - lo + 1) * (buckets ? buckets : 1);
        }
        if (ids <= READ_IDS_MAX_LISTED) {
                idbatch_t b;
                memset(&b, 0, sizeof(b));
                b.v = v;
                b.coll = coll;
                b.fn = fn;
                b.arg = arg;
                b.errstr = errstr;
                b.errlen = errlen;
                idbatch__open(&b);
                for (size_t i = 0; i < c.n; i++) {
                        const account_t *a = &c.a[i];
                        int64_t lo = from > a->first ? from : a->first;
                        int64_t hi = to < a->last ? to : a->last;
                        if (lo <= hi &&
                            afilter_has(f->provider, f->n_provider,
                                        a->provider) &&
                            afilter_has(f->account, f->n_account, a->account))
                                read__ids(&b, v, a, lo, hi, buckets);
                }
                idbatch__run(&b);
                catalog_free(&c);
                return b.err;
        }
        bson_init(&filter);
        BSON_APPEND_ARRAY_BEGIN(&filter, "$or", & or);
        for (size_t i = 0; i < c.n; i++) {
                const account_t *a = &c.a[i];
                int64_t lo = from > a->first ? from : a->first;
                int64_t hi = to < a->last ? to : a->last;
                char day[CALTIME_DATE_SIZE], id[REC_ID_MAX];
                slice_t parts[5] = {slice_of(v->tenant), slice_of(a->provider),
                                    slice_of(a->account), SLICE_NULL,
                                    slice_of("~")};
                if (lo > hi ||
                    !afilter_has(f->provider, f->n_provider, a->provider) ||
                    !afilter_has(f->account, f->n_account, a->account))
                        continue;
                snprintf(key, sizeof(key), "%zu", n++);
                BSON_APPEND_DOCUMENT_BEGIN(& or, key, &range);
                BSON_APPEND_DOCUMENT_BEGIN(&range, "_id", &bounds);
                caltime_format_date(lo, day);
                parts[3] = slice_of(day);
                rec_id(id, 4, parts);
                BSON_APPEND_UTF8(&bounds, "$gte", id);
                caltime_format_date(hi, day);
                rec_id(id, buckets ? 5 : 4, parts);
                BSON_APPEND_UTF8(&bounds, "$lte", id);
                bson_append_document_end(&range, &bounds);
                bson_append_document_end(& or, &range);
        }
        bson_append_array_end(&filter, & or);
        if (n)
                err = store_find(v->store, v->db, coll, &filter, NULL, fn, arg,
                                 errstr, errlen);
        bson_destroy(&filter);
        catalog_free(&c);
        return err;
}

static const char *read__str(const bson_t *doc, const char *key) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
                return bson_iter_utf8(&it, NULL);
        return "";
}

/* The day, provider and account of an account-day document; false when
 * it has no valid day. */
static bool read__identity(const bson_t *doc, int64_t *day,
                           const char **provider, const char **account) {
        const char *d = read__str(doc, "day");
        *provider = read__str(doc, "provider");
        *account = read__str(doc, "account_id");
        return caltime_parse_date(d, strlen(d), day);
}

/* Each register of the map field of doc. */
typedef void (*reg_fn)(slice_t text, void *arg);

static void read__registers(const bson_t *doc, const char *field, reg_fn fn,
                            void *arg) {
        bson_iter_t it, sub;
        if (!bson_iter_init_find(&it, doc, field))
                return;
        if (BSON_ITER_HOLDS_UTF8(&it)) {
                uint32_t len = 0;
                const char *s = bson_iter_utf8(&it, &len);
                fn((slice_t){s, len}, arg);
                return;
        }
        if (!BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &sub))
                return;
        while (bson_iter_next(&sub)) {
                uint32_t len = 0;
                const char *s;
                if (!BSON_ITER_HOLDS_UTF8(&sub))
                        continue;
                s = bson_iter_utf8(&sub, &len);
                fn((slice_t){s, len}, arg);
        }
}

/* ---------------------------------------------------------------------------
 * ads
 * ------------------------------------------------------------------------ */

bool read_ad_entry(slice_t text, rec_fields_t *fs, ad_entry_t *e) {
        if (!rec_split(text, fs) || fs->n < 11)
                return false;
        e->currency = fs->f[2];
        e->spend = rec_atoi(fs->f[3]);
        e->impressions = rec_atoi(fs->f[4]);
        e->clicks = rec_atoi(fs->f[5]);
        e->conversions = rec_atof(fs->f[6]);
        e->conversion_value = rec_atoi(fs->f[7]);
        e->video_views = strcmp(fs->f[8], "-") ? rec_atoi(fs->f[8]) : 0;
        e->campaign_id = fs->f[9];
        e->campaign_name = fs->f[10];
        return true;
}

typedef struct ads_walk {
        const afilter_t *f;
        ad_visit_fn fn;
        void *arg;
        ad_entry_t e;
} ads_walk_t;

static void ads__register(slice_t text, void *arg) {
        ads_walk_t *w = arg;
        rec_fields_t fs;
        if (!read_ad_entry(text, &fs, &w->e))
                return;
        if (!afilter_has(w->f->campaign, w->f->n_campaign, w->e.campaign_id) ||
            !afilter_has(w->f->currency, w->f->n_currency, w->e.currency))
                return;
        w->fn(&w->e, w->arg);
}

static bool ads__doc(const bson_t *doc, void *arg) {
        ads_walk_t *w = arg;
        memset(&w->e, 0, sizeof(w->e));
        if (read__identity(doc, &w->e.day, &w->e.provider, &w->e.account))
                read__registers(doc, "c", ads__register, w);
        return true;
}

store_err_t read_ads(const aview_t *v, const afilter_t *f, int64_t from,
                     int64_t to, ad_visit_fn fn, void *arg, char *errstr,
                     size_t errlen) {
        ads_walk_t w = {f, fn, arg, {0}};
        return read__days(v, PROJ_ADS, "ad_accounts", "ad_days", f, from, to, 0,
                          ads__doc, &w, errstr, errlen);
}

/* ---------------------------------------------------------------------------
 * orders
 * ------------------------------------------------------------------------ */

/* "at,source,medium,campaign,provider,campaign_id,click_id;..." */
static void read__touchpoints(char *list, order_entry_t *e) {
        char *save = NULL;
        e->n_touch = 0;
        for (char *tp = strtok_r(list, ";", &save);
             tp && e->n_touch < TOUCH_MAX; tp = strtok_r(NULL, ";", &save)) {
                char *v[7] = {0};
                size_t n = 0;
                touch_t *t = &e->touch[e->n_touch];
                v[n++] = tp;
                for (char *p = tp; *p && n < 7; p++)
                        if (*p == ',') {
                                *p = '\0';
                                v[n++] = p + 1;
                        }
                if (n < 7)
                        continue;
                for (size_t i = 0; i < 7; i++)
                        rec_unescape(v[i]);
                if (!caltime_parse_rfc3339(v[0], strlen(v[0]), &t->at_ms))
                        continue;
                t->source = v[1];
                t->medium = v[2];
                t->campaign = v[3];
                t->provider = v[4];
                t->campaign_id = v[5];
                t->click_id = v[6];
                e->n_touch++;
        }
}

bool read_order_entry(slice_t text, rec_fields_t *fs, order_entry_t *e) {
        if (!rec_split(text, fs) || fs->n < 14)
                return false;
        e->currency = fs->f[2];
        e->total = rec_atoi(fs->f[3]);
        e->subtotal = rec_atoi(fs->f[4]);
        e->refunded = rec_atoi(fs->f[5]);
        e->new_customer = rec_atoi(fs->f[6]) == 1;
        e->customer_id = fs->f[7];
        e->status = fs->f[8];
        e->placed_ms = rec_atoi(fs->f[9]);
        e->order_id = fs->f[10];
        e->items = rec_atoi(fs->f[11]);
        e->units = rec_atoi(fs->f[12]);
        read__touchpoints((char *)fs->f[13], e);
        return true;
}

typedef struct orders_walk {
        const afilter_t *f;
        order_visit_fn fn;
        void *arg;
        order_entry_t e;
        rec_fields_t fs;
} orders_walk_t;

static void orders__register(slice_t text, void *arg) {
        orders_walk_t *w = arg;
        if (!read_order_entry(text, &w->fs, &w->e))
                return;
        if (!afilter_has(w->f->currency, w->f->n_currency, w->e.currency))
                return;
        w->fn(&w->e, w->arg);
}

static bool orders__doc(const bson_t *doc, void *arg) {
        orders_walk_t *w = arg;
        memset(&w->e, 0, sizeof(w->e));
        if (read__identity(doc, &w->e.day, &w->e.provider, &w->e.account))
                read__registers(doc, "o", orders__register, w);
        return true;
}

store_err_t read_orders(const aview_t *v, const afilter_t *f, int64_t from,
                        int64_t to, order_visit_fn fn, void *arg, char *errstr,
                        size_t errlen) {
        orders_walk_t *w = xcalloc(1, sizeof(*w));
        store_err_t err;
        w->f = f;
        w->fn = fn;
        w->arg = arg;
        err = read__days(v, PROJ_ORDERS, "order_accounts", "order_days", f,
                         from, to, ORDER_BUCKETS, orders__doc, w, errstr,
                         errlen);
        free(w);
        return err;
}

/* ---------------------------------------------------------------------------
 * summaries and crm
 * ------------------------------------------------------------------------ */

typedef struct tw_walk {
        const afilter_t *f;
        tw_visit_fn fn;
        void *arg;
        tw_entry_t e;
} tw_walk_t;

static void tw__register(slice_t text, void *arg) {
        tw_walk_t *w = arg;
        rec_fields_t fs;
        if (!rec_split(text, &fs) || fs.n < 7)
                return;
        w->e.currency = fs.f[2];
        w->e.spend = rec_atoi(fs.f[3]);
        w->e.revenue = rec_atoi(fs.f[4]);
        w->e.orders = rec_atoi(fs.f[5]);
        w->e.new_customers = rec_atoi(fs.f[6]);
        if (afilter_has(w->f->currency, w->f->n_currency, w->e.currency))
                w->fn(&w->e, w->arg);
}

static bool tw__doc(const bson_t *doc, void *arg) {
        tw_walk_t *w = arg;
        memset(&w->e, 0, sizeof(w->e));
        if (read__identity(doc, &w->e.day, &w->e.provider, &w->e.account))
                read__registers(doc, "v", tw__register, w);
        return true;
}

store_err_t read_summaries(const aview_t *v, const afilter_t *f, int64_t from,
                           int64_t to, tw_visit_fn fn, void *arg, char *errstr,
                           size_t errlen) {
        tw_walk_t w = {f, fn, arg, {0}};
        return read__days(v, PROJ_SUMMARIES, "tw_accounts", "tw_days", f, from,
                          to, 0, tw__doc, &w, errstr, errlen);
}

typedef struct crm_walk {
        const afilter_t *f;
        crm_visit_fn fn;
        void *arg;
        crm_entry_t e;
} crm_walk_t;

static void crm__contact(slice_t text, void *arg) {
        crm_walk_t *w = arg;
        rec_fields_t fs;
        if (!rec_split(text, &fs) || fs.n < 8)
                return;
        w->e.deal = false;
        w->e.stage = fs.f[3];
        w->e.currency = "";
        w->e.amount = 0;
        w->e.won = -1;
        w->fn(&w->e, w->arg);
}

static void crm__deal(slice_t text, void *arg) {
        crm_walk_t *w = arg;
        rec_fields_t fs;
        if (!rec_split(text, &fs) || fs.n < 9)
                return;
        w->e.deal = true;
        w->e.stage = fs.f[4];
        w->e.amount = rec_atoi(fs.f[5]);
        w->e.currency = fs.f[6];
        w->e.won = (int)rec_atoi(fs.f[8]);
        if (afilter_has(w->f->currency, w->f->n_currency, w->e.currency))
                w->fn(&w->e, w->arg);
}

static bool crm__doc(const bson_t *doc, void *arg) {
        crm_walk_t *w = arg;
        memset(&w->e, 0, sizeof(w->e));
        if (!read__identity(doc, &w->e.day, &w->e.provider, &w->e.account))
                return true;
        read__registers(doc, "c", crm__contact, w);
        read__registers(doc, "d", crm__deal, w);
        return true;
}

store_err_t read_crm(const aview_t *v, const afilter_t *f, int64_t from,
                     int64_t to, crm_visit_fn fn, void *arg, char *errstr,
                     size_t errlen) {
        crm_walk_t w = {f, fn, arg, {0}};
        store_err_t err =
                read__days(v, PROJ_CRM, "crm_accounts", "contact_days", f, from,
                           to, 0, crm__doc, &w, errstr, errlen);
        if (err == STORE_OK)
                err = read__days(v, PROJ_CRM, "crm_accounts", "deal_days", f,
                                 from, to, 0, crm__doc, &w, errstr, errlen);
        return err;
}
