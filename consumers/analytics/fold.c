/*
 * fold.c - the analytics projections and their folds: how each event of
 * integrations and auth becomes last-writer-wins registers (see
 * analytics_internal.h for the documents). The live handler (live.c) and
 * `omnify replay analytics` (shared/replay.c) run these same functions, so
 * a replayed version holds exactly what the live one would.
 *
 * Every event is checked here, whatever the publisher's declaration says:
 * a malformed one is refused with the field and the reason (the live
 * handler dead-letters it, a replay counts and skips it).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "analytics_internal.h"

/* ---------------------------------------------------------------------------
 * The projections
 * ------------------------------------------------------------------------ */

#define TYPE_AD "integrations.ad_metrics.recorded"
#define TYPE_ORDER "integrations.order.recorded"
#define TYPE_CONTACT "integrations.contact.recorded"
#define TYPE_DEAL "integrations.deal.recorded"
#define TYPE_SUMMARY "integrations.summary.recorded"
#define TYPE_SYNC "integrations.sync.completed"

static const char *const ads_colls[] = {"ad_days", "ad_accounts", NULL};
static const char *const ads_types[] = {TYPE_AD, NULL};
static const store_index_t ads_indexes[] = {
        {"ad_days", "ad_days_tenant_day", "tenant,day", false, -1},
        {NULL},
};
static const char *const orders_colls[] = {"order_days", "order_accounts",
                                           NULL};
static const char *const orders_types[] = {TYPE_ORDER, NULL};
static const store_index_t orders_indexes[] = {
        {"order_days", "order_days_tenant_day", "tenant,day", false, -1},
        {NULL},
};
static const char *const crm_colls[] = {"contact_days", "deal_days",
                                        "crm_accounts", NULL};
static const char *const crm_types[] = {TYPE_CONTACT, TYPE_DEAL, NULL};
static const store_index_t crm_indexes[] = {
        {"contact_days", "contact_days_tenant_day", "tenant,day", false, -1},
        {"deal_days", "deal_days_tenant_day", "tenant,day", false, -1},
        {NULL},
};
static const char *const tw_colls[] = {"tw_days", "tw_accounts", NULL};
static const char *const tw_types[] = {TYPE_SUMMARY, NULL};
static const store_index_t tw_indexes[] = {
        {"tw_days", "tw_days_tenant_day", "tenant,day", false, -1},
        {NULL},
};
static const char *const conn_colls[] = {"connections", NULL};
static const char *const conn_types[] = {"integrations.connection.*", TYPE_SYNC,
                                         NULL};
static const char *const orgs_colls[] = {"orgs", NULL};
static const char *const orgs_types[] = {"auth.org.*", "auth.user.registered",
                                         NULL};

static const projection_def_t def_ads = {"ads",       1,        ads_colls,
                                         ads_indexes, "tenant", ads_types};
static const projection_def_t def_orders = {
        "orders", 1, orders_colls, orders_indexes, "tenant", orders_types};
static const projection_def_t def_crm = {"crm",       1,        crm_colls,
                                         crm_indexes, "tenant", crm_types};
static const projection_def_t def_tw = {"summaries", 1,        tw_colls,
                                        tw_indexes,  "tenant", tw_types};
static const projection_def_t def_conn = {"connections", 1,        conn_colls,
                                          NULL,          "tenant", conn_types};
static const projection_def_t def_orgs = {"orgs", 1,        orgs_colls,
                                          NULL,   "tenant", orgs_types};

const projection_def_t *const analytics_projection_defs[PROJ_COUNT] = {
        &def_ads, &def_orders, &def_crm, &def_tw, &def_conn, &def_orgs,
};

/* ---------------------------------------------------------------------------
 * Checking events
 * ------------------------------------------------------------------------ */

typedef struct ev {
        const msgpack_object *body;
        char *why;
        size_t whylen;
        bool bad;
} ev_t;

static void ev_fail(ev_t *e, const char *field, const char *reason) {
        if (!e->bad)
                snprintf(e->why, e->whylen, "%s: %s", field, reason);
        e->bad = true;
}

/* A string of 1..max bytes (0..max when optional), no control bytes. */
static slice_t ev_str(ev_t *e, const char *key, size_t max, bool required) {
        const msgpack_object *o = codec_map_get(e->body, key);
        slice_t s;
        if (!o || o->type == MSGPACK_OBJECT_NIL) {
                if (required)
                        ev_fail(e, key, "is required");
                return SLICE_NULL;
        }
        if (o->type != MSGPACK_OBJECT_STR) {
                ev_fail(e, key, "must be a string");
                return SLICE_NULL;
        }
        s = (slice_t){o->via.str.ptr, o->via.str.size};
        if ((required && !s.len) || s.len > max) {
                ev_fail(e, key,
                        required && !s.len ? "must not be empty"
                                           : "is too long");
                return SLICE_NULL;
        }
        for (size_t i = 0; i < s.len; i++)
                if ((unsigned char)s.ptr[i] < 0x20) {
                        ev_fail(e, key, "holds control characters");
                        return SLICE_NULL;
                }
        return s;
}

/* A non-negative integer (an integral double is accepted). */
static int64_t ev_int(ev_t *e, const char *key, bool required) {
        const msgpack_object *o = codec_map_get(e->body, key);
        if (!o || o->type == MSGPACK_OBJECT_NIL) {
                if (required)
                        ev_fail(e, key, "is required");
                return -1;
        }
        if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            o->via.u64 <= (uint64_t)INT64_MAX / 4)
                return (int64_t)o->via.u64;
        if (o->type == MSGPACK_OBJECT_FLOAT64 && o->via.f64 >= 0 &&
            o->via.f64 < 1e15 && floor(o->via.f64) == o->via.f64)
                return (int64_t)o->via.f64;
        ev_fail(e, key, "must be a non-negative integer");
        return -1;
}

static double ev_num(ev_t *e, const char *key) {
        const msgpack_object *o = codec_map_get(e->body, key);
        double v;
        if (!o) {
                ev_fail(e, key, "is required");
                return 0;
        }
        if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                v = (double)o->via.u64;
        else if (o->type == MSGPACK_OBJECT_FLOAT64 ||
                 o->type == MSGPACK_OBJECT_FLOAT32)
                v = o->via.f64;
        else
                v = -1;
        if (!isfinite(v) || v < 0 || v > 1e15) {
                ev_fail(e, key, "must be a non-negative number");
                return 0;
        }
        return v;
}

static int ev_bool(ev_t *e, const char *key, bool required) {
        const msgpack_object *o = codec_map_get(e->body, key);
        if (!o || o->type == MSGPACK_OBJECT_NIL) {
                if (required)
                        ev_fail(e, key, "is required");
                return -1;
        }
        if (o->type != MSGPACK_OBJECT_BOOLEAN) {
                ev_fail(e, key, "must be a boolean");
                return -1;
        }
        return o->via.boolean ? 1 : 0;
}

static int64_t ev_day(ev_t *e, const char *key) {
        slice_t s = ev_str(e, key, 10, true);
        int64_t days = 0;
        if (s.len && !caltime_parse_date(s.ptr, s.len, &days))
                ev_fail(e, key, "must be a date YYYY-MM-DD");
        return days;
}

static int64_t ev_time(ev_t *e, const char *key, bool required) {
        slice_t s = ev_str(e, key, 64, required);
        int64_t ms = 0;
        if (s.len && !caltime_parse_rfc3339(s.ptr, s.len, &ms))
                ev_fail(e, key, "must be an RFC 3339 time");
        return ms;
}

static slice_t ev_currency(ev_t *e) {
        slice_t c = ev_str(e, "currency", 3, true);
        if (c.len &&
            (c.len != 3 || c.ptr[0] < 'A' || c.ptr[0] > 'Z' || c.ptr[1] < 'A' ||
             c.ptr[1] > 'Z' || c.ptr[2] < 'A' || c.ptr[2] > 'Z'))
                ev_fail(e, "currency", "must be an ISO 4217 code (USD)");
        return c;
}

/* A provider name: [a-z0-9_], 1..32. */
static slice_t ev_provider(ev_t *e) {
        slice_t p = ev_str(e, "provider", 32, true);
        for (size_t i = 0; i < p.len; i++) {
                char c = p.ptr[i];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '_')) {
                        ev_fail(e, "provider", "must be a provider name");
                        break;
                }
        }
        return p;
}

/* ---------------------------------------------------------------------------
 * Fold states
 * ------------------------------------------------------------------------ */

#define FOLD_BUFS 3

typedef struct afold {
        store_t *store;
        bool fresh; /* the target version started empty: insert */
        const char *db;
        char tenant[PROJECTION_TENANT_MAX];
        lww_t *buf[FOLD_BUFS];
        char coll[FOLD_BUFS][PROJECTION_COLL_MAX];
        size_t n_buf;
        rec_buf_t rec, tmp;
        /* The last account written to the catalog and the days it was
         * written with: most events repeat them. */
        char cat_id[REC_ID_MAX];
        char cat_first[CALTIME_DATE_SIZE], cat_last[CALTIME_DATE_SIZE];
} afold_t;

static void *fold_open(const replay_target_t *t) {
        afold_t *f = xcalloc(1, sizeof(*f));
        const char *const *c = t->def->collections;
        f->store = t->store;
        f->db = t->db;
        f->fresh = t->fresh;
        for (; c && *c && f->n_buf < FOLD_BUFS; c++, f->n_buf++) {
                f->buf[f->n_buf] = lww_new();
                projection_coll(*c, t->version, f->coll[f->n_buf],
                                sizeof(f->coll[f->n_buf]));
        }
        rec_init(&f->rec);
        rec_init(&f->tmp);
        return f;
}

static size_t fold_held(const void *st) {
        const afold_t *f = st;
        size_t n = 0;
        for (size_t i = 0; i < f->n_buf; i++)
                n += lww_bytes(f->buf[i]);
        return n;
}

static store_err_t fold_flush(void *st, char *errstr, size_t errlen) {
        afold_t *f = st;
        for (size_t i = 0; i < f->n_buf; i++) {
                store_err_t err =
                        f->fresh ? lww_flush_new(f->buf[i], f->store, f->db,
                                                 f->coll[i], 0, errstr, errlen)
                                 : lww_flush(f->buf[i], f->store, f->db,
                                             f->coll[i], 0, errstr, errlen);
                if (err != STORE_OK)
                        return err;
        }
        return STORE_OK;
}

static void fold_close(void *st) {
        afold_t *f = st;
        if (!f)
                return;
        for (size_t i = 0; i < f->n_buf; i++)
                lww_destroy(f->buf[i]);
        rec_free(&f->rec);
        rec_free(&f->tmp);
        free(f);
}

/* The identity fields every document of a tenant's day carries (once per
 * document held). */
static void fold_identity(lww_t *b, slice_t id, slice_t tenant,
                          slice_t provider, slice_t account, slice_t day) {
        if (lww_holds(b, id))
                return;
        lww_set(b, id, "tenant", tenant);
        lww_set(b, id, "provider", provider);
        lww_set(b, id, "account_id", account);
        lww_set(b, id, "day", day);
}

/* The tenant's catalog of accounts: which exist, first and last day. */
static void fold_catalog(afold_t *f, lww_t *b, slice_t tenant, slice_t provider,
                         slice_t account, slice_t day) {
        slice_t parts[3] = {tenant, provider, account};
        char acct[REC_ID_MAX], key[17], path[32];
        rec_id(acct, 3, parts);
        if (lww_holds(b, tenant) && strcmp(acct, f->cat_id) == 0 &&
            day.len == 10 && memcmp(day.ptr, f->cat_first, 10) >= 0 &&
            memcmp(day.ptr, f->cat_last, 10) <= 0)
                return; /* nothing new for the catalog */
        if (strcmp(f->cat_id, acct) != 0) {
                snprintf(f->cat_id, sizeof(f->cat_id), "%s", acct);
                f->cat_first[0] = f->cat_last[0] = '\0';
        }
        if (day.len == 10) {
                if (!f->cat_first[0] || memcmp(day.ptr, f->cat_first, 10) < 0)
                        memcpy(f->cat_first, day.ptr, 10);
                if (!f->cat_last[0] || memcmp(day.ptr, f->cat_last, 10) > 0)
                        memcpy(f->cat_last, day.ptr, 10);
        }
        rec_id(acct, 2, parts + 1);
        rec_key(slice_of(acct), key);
        lww_set(b, tenant, "tenant", tenant);
        snprintf(path, sizeof(path), "a.%s", key);
        lww_set(b, tenant, path, slice_of(acct));
        if (day.len) {
                snprintf(path, sizeof(path), "first.%s", key);
                lww_min(b, tenant, path, day);
                snprintf(path, sizeof(path), "last.%s", key);
                lww_max(b, tenant, path, day);
        }
}

static slice_t fold_tenant(const env_t *env, ev_t *e) {
        if (!env->tenant.len || env->tenant.len >= PROJECTION_TENANT_MAX) {
                ev_fail(e, "(tenant header)",
                        env->tenant.len ? "too long" : "is missing");
                return SLICE_NULL;
        }
        return env->tenant;
}

/* ---------------------------------------------------------------------------
 * ads
 * ------------------------------------------------------------------------ */

static int fold_ads(void *st, const env_t *env, const msgpack_object *body,
                    char *why, size_t whylen) {
        afold_t *f = st;
        ev_t e = {body, why, whylen, false};
        slice_t tenant = fold_tenant(env, &e);
        slice_t provider = ev_provider(&e);
        slice_t account = ev_str(&e, "account_id", 128, true);
        slice_t campaign = ev_str(&e, "campaign_id", 128, true);
        slice_t name = ev_str(&e, "campaign_name", 512, false);
        int64_t day = ev_day(&e, "day");
        slice_t currency = ev_currency(&e);
        int64_t spend = ev_int(&e, "spend_minor", true);
        int64_t impressions = ev_int(&e, "impressions", true);
        int64_t clicks = ev_int(&e, "clicks", true);
        double conversions = ev_num(&e, "conversions");
        int64_t value = ev_int(&e, "conversion_value_minor", true);
        int64_t views = ev_int(&e, "video_views", false);
        int64_t observed = ev_int(&e, "observed_ms", true);
        char id[REC_ID_MAX], key[17], path[24], daytext[CALTIME_DATE_SIZE];
        if (e.bad)
                return -1;
        caltime_format_date(day, daytext);
        {
                slice_t parts[4] = {tenant, provider, account,
                                    slice_of(daytext)};
                rec_id(id, 4, parts);
        }
        rec_key(campaign, key);
        rec_ver(&f->rec, observed, env->id);
        rec_str(&f->rec, currency);
        rec_int(&f->rec, spend);
        rec_int(&f->rec, impressions);
        rec_int(&f->rec, clicks);
        rec_num(&f->rec, conversions);
        rec_int(&f->rec, value);
        if (views >= 0)
                rec_int(&f->rec, views);
        else
                rec_str(&f->rec, slice_of("-"));
        rec_str(&f->rec, campaign);
        rec_str(&f->rec, name);
        fold_identity(f->buf[0], slice_of(id), tenant, provider, account,
                      slice_of(daytext));
        path[0] = 'c';
        path[1] = '.';
        memcpy(path + 2, key, 17);
        lww_max(f->buf[0], slice_of(id), path, rec_slice(&f->rec));
        fold_catalog(f, f->buf[1], tenant, provider, account,
                     slice_of(daytext));
        return 0;
}

/* ---------------------------------------------------------------------------
 * orders
 * ------------------------------------------------------------------------ */

#define ORDER_TOUCH_KEPT 64

/* The touchpoints as a list: values escaped, ',' between them, ';'
 * between touchpoints. More than kept: the first and the latest. */
static bool fold_touchpoints(ev_t *e, const msgpack_object *arr,
                             rec_buf_t *out) {
        static const char *const keys[] = {
                "at",       "source",      "medium",  "campaign",
                "provider", "campaign_id", "click_id"};
        uint32_t n = arr->via.array.size;
        rec_reset(out);
        for (uint32_t i = 0; i < n; i++) {
                const msgpack_object *tp = &arr->via.array.ptr[i];
                ev_t te = {tp, e->why, e->whylen, false};
                int64_t at;
                if (n > ORDER_TOUCH_KEPT && i > 0 &&
                    i < n - (ORDER_TOUCH_KEPT - 1))
                        continue;
                if (tp->type != MSGPACK_OBJECT_MAP) {
                        ev_fail(e, "touchpoints", "items must be objects");
                        return false;
                }
                at = ev_time(&te, "at", true);
                (void)at;
                for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
                        slice_t v = ev_str(&te, keys[k], 512, k == 0);
                        if (k)
                                rec_raw(out, ",");
                        rec_escape(out, v);
                }
                if (te.bad) {
                        e->bad = true;
                        return false;
                }
                rec_raw(out, ";");
        }
        if (out->len)
                out->p[--out->len] = '\0'; /* the last ';' */
        return true;
}

static int fold_orders(void *st, const env_t *env, const msgpack_object *body,
                       char *why, size_t whylen) {
        afold_t *f = st;
        ev_t e = {body, why, whylen, false};
        slice_t tenant = fold_tenant(env, &e);
        slice_t provider = ev_provider(&e);
        slice_t account = ev_str(&e, "account_id", 128, true);
        slice_t order = ev_str(&e, "order_id", 128, true);
        int64_t placed = ev_time(&e, "placed_at", true);
        int64_t day = ev_day(&e, "day");
        slice_t currency = ev_currency(&e);
        int64_t total = ev_int(&e, "total_minor", true);
        int64_t subtotal = ev_int(&e, "subtotal_minor", true);
        int64_t refunded = ev_int(&e, "refunded_minor", true);
        slice_t customer = ev_str(&e, "customer_id", 128, false);
        int fresh = ev_bool(&e, "new_customer", true);
        slice_t status = ev_str(&e, "status", 64, false);
        int64_t observed = ev_int(&e, "observed_ms", true);
        const msgpack_object *items = codec_map_get(body, "line_items");
        const msgpack_object *touch = codec_map_get(body, "touchpoints");
        int64_t n_items = 0, units = 0;
        char id[REC_ID_MAX], key[17], path[24], daytext[CALTIME_DATE_SIZE],
                bucket[4];
        if (items && items->type == MSGPACK_OBJECT_ARRAY) {
                for (uint32_t i = 0; i < items->via.array.size; i++) {
                        ev_t ie = {&items->via.array.ptr[i], why, whylen,
                                   false};
                        int64_t q;
                        if (items->via.array.ptr[i].type !=
                            MSGPACK_OBJECT_MAP) {
                                ev_fail(&e, "line_items",
                                        "items must be objects");
                                break;
                        }
                        q = ev_int(&ie, "quantity", true);
                        if (ie.bad) {
                                e.bad = true;
                                break;
                        }
                        n_items++;
                        units += q;
                }
        } else if (items && items->type != MSGPACK_OBJECT_NIL) {
                ev_fail(&e, "line_items", "must be an array");
        }
        rec_reset(&f->tmp);
        if (touch && touch->type == MSGPACK_OBJECT_ARRAY)
                fold_touchpoints(&e, touch, &f->tmp);
        else if (touch && touch->type != MSGPACK_OBJECT_NIL)
                ev_fail(&e, "touchpoints", "must be an array");
        if (!e.bad && refunded > total)
                ev_fail(&e, "refunded_minor", "exceeds total_minor");
        if (e.bad)
                return -1;
        caltime_format_date(day, daytext);
        rec_key(order, key);
        snprintf(bucket, sizeof(bucket), "%d",
                 (int)(strtoull(key + 12, NULL, 16) % ORDER_BUCKETS));
        {
                slice_t parts[5] = {tenant, provider, account,
                                    slice_of(daytext), slice_of(bucket)};
                rec_id(id, 5, parts);
        }
        rec_ver(&f->rec, observed, env->id);
        rec_str(&f->rec, currency);
        rec_int(&f->rec, total);
        rec_int(&f->rec, subtotal);
        rec_int(&f->rec, refunded);
        rec_int(&f->rec, fresh);
        rec_str(&f->rec, customer);
        rec_str(&f->rec, status);
        rec_int(&f->rec, placed);
        rec_str(&f->rec, order);
        rec_int(&f->rec, n_items);
        rec_int(&f->rec, units);
        rec_str(&f->rec, rec_slice(&f->tmp));
        fold_identity(f->buf[0], slice_of(id), tenant, provider, account,
                      slice_of(daytext));
        snprintf(path, sizeof(path), "o.%s", key);
        lww_max(f->buf[0], slice_of(id), path, rec_slice(&f->rec));
        fold_catalog(f, f->buf[1], tenant, provider, account,
                     slice_of(daytext));
        return 0;
}

/* ---------------------------------------------------------------------------
 * crm: contacts and deals, by the day they were created
 * ------------------------------------------------------------------------ */

static int fold_crm(void *st, const env_t *env, const msgpack_object *body,
                    char *why, size_t whylen) {
        afold_t *f = st;
        ev_t e = {body, why, whylen, false};
        bool deal = slice_eq(env->type, TYPE_DEAL);
        slice_t tenant = fold_tenant(env, &e);
        slice_t provider = ev_provider(&e);
        slice_t account = ev_str(&e, "account_id", 128, true);
        slice_t obj = ev_str(&e, deal ? "deal_id" : "contact_id", 128, true);
        int64_t created = ev_time(&e, "created_at", true);
        int64_t observed = ev_int(&e, "observed_ms", true);
        char id[REC_ID_MAX], key[17], path[24], daytext[CALTIME_DATE_SIZE];
        rec_ver(&f->rec, observed, env->id);
        rec_str(&f->rec, obj);
        if (deal) {
                slice_t contact = ev_str(&e, "contact_id", 128, false);
                slice_t stage = ev_str(&e, "stage", 64, false);
                int64_t amount = ev_int(&e, "amount_minor", true);
                slice_t currency = ev_currency(&e);
                slice_t closed = ev_str(&e, "closed_at", 64, false);
                int won = ev_bool(&e, "won", false);
                rec_str(&f->rec, contact);
                rec_str(&f->rec, stage);
                rec_int(&f->rec, amount);
                rec_str(&f->rec, currency);
                rec_str(&f->rec, closed);
                rec_int(&f->rec, won);
        } else {
                const msgpack_object *eng = codec_map_get(body, "engagement");
                slice_t stage = ev_str(&e, "lifecycle_stage", 64, false);
                slice_t domain = ev_str(&e, "email_domain", 253, false);
                ev_t ee = {eng, why, whylen, false};
                int64_t opened = 0, clicked = 0, views = 0;
                if (eng && eng->type == MSGPACK_OBJECT_MAP) {
                        opened = ev_int(&ee, "emails_opened", false);
                        clicked = ev_int(&ee, "emails_clicked", false);
                        views = ev_int(&ee, "page_views", false);
                        if (ee.bad)
                                e.bad = true;
                }
                rec_str(&f->rec, stage);
                rec_str(&f->rec, domain);
                rec_int(&f->rec, opened < 0 ? 0 : opened);
                rec_int(&f->rec, clicked < 0 ? 0 : clicked);
                rec_int(&f->rec, views < 0 ? 0 : views);
        }
        if (e.bad)
                return -1;
        caltime_format_date(caltime_day_of_ms(created), daytext);
        {
                slice_t parts[4] = {tenant, provider, account,
                                    slice_of(daytext)};
                rec_id(id, 4, parts);
        }
        rec_key(obj, key);
        fold_identity(f->buf[deal ? 1 : 0], slice_of(id), tenant, provider,
                      account, slice_of(daytext));
        snprintf(path, sizeof(path), "%s.%s", deal ? "d" : "c", key);
        lww_max(f->buf[deal ? 1 : 0], slice_of(id), path, rec_slice(&f->rec));
        fold_catalog(f, f->buf[2], tenant, provider, account,
                     slice_of(daytext));
        return 0;
}

/* ---------------------------------------------------------------------------
 * summaries (TripleWhale)
 * ------------------------------------------------------------------------ */

static int fold_summaries(void *st, const env_t *env,
                          const msgpack_object *body, char *why,
                          size_t whylen) {
        afold_t *f = st;
        ev_t e = {body, why, whylen, false};
        slice_t tenant = fold_tenant(env, &e);
        slice_t provider = ev_provider(&e);
        slice_t account = ev_str(&e, "account_id", 128, true);
        int64_t day = ev_day(&e, "day");
        slice_t currency = ev_currency(&e);
        int64_t spend = ev_int(&e, "spend_minor", true);
        int64_t revenue = ev_int(&e, "revenue_minor", true);
        int64_t orders = ev_int(&e, "orders", true);
        int64_t fresh = ev_int(&e, "new_customers", true);
        int64_t observed = ev_int(&e, "observed_ms", true);
        char id[REC_ID_MAX], daytext[CALTIME_DATE_SIZE];
        if (e.bad)
                return -1;
        caltime_format_date(day, daytext);
        {
                slice_t parts[4] = {tenant, provider, account,
                                    slice_of(daytext)};
                rec_id(id, 4, parts);
        }
        rec_ver(&f->rec, observed, env->id);
        rec_str(&f->rec, currency);
        rec_int(&f->rec, spend);
        rec_int(&f->rec, revenue);
        rec_int(&f->rec, orders);
        rec_int(&f->rec, fresh);
        fold_identity(f->buf[0], slice_of(id), tenant, provider, account,
                      slice_of(daytext));
        lww_max(f->buf[0], slice_of(id), "v", rec_slice(&f->rec));
        fold_catalog(f, f->buf[1], tenant, provider, account,
                     slice_of(daytext));
        return 0;
}

/* ---------------------------------------------------------------------------
 * connections: status by connection, last completed sync
 * ------------------------------------------------------------------------ */

static int fold_connections(void *st, const env_t *env,
                            const msgpack_object *body, char *why,
                            size_t whylen) {
        afold_t *f = st;
        ev_t e = {body, why, whylen, false};
        slice_t tenant = fold_tenant(env, &e);
        slice_t conn = ev_str(&e, "connection_id", 128, true);
        slice_t provider = ev_provider(&e);
        const char *status = NULL;
        char key[17], path[24], ms[24];
        if (slice_eq(env->type, "integrations.connection.connected") ||
            slice_eq(env->type, "integrations.connection.refreshed"))
                status = "connected";
        else if (slice_eq(env->type, "integrations.connection.invalidated"))
                status = "invalidated";
        else if (slice_eq(env->type, "integrations.connection.disconnected"))
                status = "disconnected";
        else if (!slice_eq(env->type, TYPE_SYNC))
                return 0; /* another connection event: nothing to keep */
        if (e.bad)
                return -1;
        rec_key(conn, key);
        snprintf(ms, sizeof(ms), "%016lld",
                 (long long)(env->created_at_ms > 0 ? env->created_at_ms : 0));
        lww_set(f->buf[0], tenant, "tenant", tenant);
        rec_reset(&f->rec);
        rec_raw(&f->rec, ms);
        if (status) {
                rec_str(&f->rec, env->id);
                rec_str(&f->rec, slice_of(status));
                rec_str(&f->rec, provider);
                rec_str(&f->rec, conn);
                snprintf(path, sizeof(path), "c.%s", key);
        } else {
                rec_str(&f->rec, provider);
                rec_str(&f->rec, conn);
                snprintf(path, sizeof(path), "s.%s", key);
        }
        lww_max(f->buf[0], tenant, path, rec_slice(&f->rec));
        return 0;
}

/* ---------------------------------------------------------------------------
 * orgs: members and their roles
 * ------------------------------------------------------------------------ */

static int fold_orgs(void *st, const env_t *env, const msgpack_object *body,
                     char *why, size_t whylen) {
        afold_t *f = st;
        ev_t e = {body, why, whylen, false};
        slice_t org = codec_map_str(body, "org_id");
        slice_t user, role;
        char key[17], path[24];
        if (!org.len)
                org = codec_map_str(body, "tenant_id");
        if (!org.len)
                org = env->tenant;
        if (!org.len || org.len >= PROJECTION_TENANT_MAX) {
                ev_fail(&e, "org_id", "is missing");
                return -1;
        }
        if (slice_eq(env->type, "auth.org.created")) {
                user = ev_str(&e, "created_by", 128, true);
                role = slice_of("owner");
        } else if (slice_eq(env->type, "auth.user.registered")) {
                user = ev_str(&e, "user_id", 128, true);
                role = slice_of("owner");
        } else if (slice_eq(env->type, "auth.org.member_removed")) {
                user = ev_str(&e, "user_id", 128, true);
                role = slice_of("removed");
        } else if (slice_eq(env->type, "auth.org.member_added") ||
                   slice_eq(env->type, "auth.org.member_role_changed")) {
                user = ev_str(&e, "user_id", 128, true);
                role = ev_str(&e, "role", 32, true);
        } else {
                return 0;
        }
        if (e.bad)
                return -1;
        rec_key(user, key);
        rec_ver(&f->rec, env->created_at_ms, env->id);
        rec_str(&f->rec, user);
        rec_str(&f->rec, role);
        lww_set(f->buf[0], org, "tenant", org);
        snprintf(path, sizeof(path), "m.%s", key);
        lww_max(f->buf[0], org, path, rec_slice(&f->rec));
        return 0;
}

/* ---------------------------------------------------------------------------
 * The folds, as shared/replay.h wants them
 * ------------------------------------------------------------------------ */

static const replay_fold_t analytics_folds[PROJ_COUNT] = {
        {&def_ads, fold_open, fold_ads, fold_held, fold_flush, fold_close},
        {&def_orders, fold_open, fold_orders, fold_held, fold_flush,
         fold_close},
        {&def_crm, fold_open, fold_crm, fold_held, fold_flush, fold_close},
        {&def_tw, fold_open, fold_summaries, fold_held, fold_flush, fold_close},
        {&def_conn, fold_open, fold_connections, fold_held, fold_flush,
         fold_close},
        {&def_orgs, fold_open, fold_orgs, fold_held, fold_flush, fold_close},
};

static const char *const analytics_topics[] = {"integrations.events",
                                               "auth.events", NULL};

const replay_set_t analytics_replay_set = {analytics_folds, PROJ_COUNT,
                                           analytics_topics};

const replay_fold_t *analytics_fold(int p) {
        return p >= 0 && p < PROJ_COUNT ? &analytics_folds[p] : NULL;
}
