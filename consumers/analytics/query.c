/*
 * query.c - the one query model behind the metrics routes, the dashboard,
 * the reports and the insights: metrics x dimensions x filters over a
 * period (see analytics_internal.h). This file runs a query and holds its
 * groups, and the keyed sums of the dashboard; the metrics and their
 * definitions are in query_metrics.c, reading a query from a command in
 * query_read.c.
 *
 * Every fact read adds to the sums (measures_t) of its group: its currency
 * and its values of the dimensions asked for. Metrics are then computed
 * from a group's sums, so ratios are ratios of sums (the ROAS of a week is
 * its conversion value over its spend, never an average of daily ROAS).
 * Money never crosses currencies: the currency is always part of the
 * group, and a row says which it is in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "analytics_internal.h"

/* ---------------------------------------------------------------------------
 * Groups
 * ------------------------------------------------------------------------ */

typedef struct group {
        char *key; /* currency \x1f dim values */
        char currency[4];
        char *dim[2];   /* day, week, month, provider... */
        char *extra[2]; /* account / campaign: provider */
        char *name[2];  /* campaign: its name (latest day's) */
        int64_t name_day[2];
        measures_t m;
} group_t;

struct query_result {
        group_t *g;
        size_t n, cap;
        size_t *slots; /* open addressing: index + 1 */
        size_t n_slots;
        const query_t *q;
};

static uint64_t qr__hash(const char *s) {
        uint64_t h = 14695981039346656037ULL;
        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        return h;
}

static void qr__rehash(query_result_t *r) {
        size_t n = r->n_slots ? r->n_slots * 2 : 256;
        free(r->slots);
        r->slots = xcalloc(n, sizeof(*r->slots));
        r->n_slots = n;
        for (size_t i = 0; i < r->n; i++) {
                size_t k = qr__hash(r->g[i].key) & (n - 1);
                while (r->slots[k])
                        k = (k + 1) & (n - 1);
                r->slots[k] = i + 1;
        }
}

/* The values of dimension d for a fact: the label, and for accounts and
 * campaigns the provider too. */
typedef struct dimval {
        char label[160];
        const char *provider;
        const char *name;
} dimval_t;

static void qr__dim(dim_t d, int64_t day, const char *provider,
                    const char *account, const char *campaign,
                    const char *campaign_name, dimval_t *out) {
        char date[CALTIME_DATE_SIZE];
        out->provider = NULL;
        out->name = NULL;
        switch (d) {
        case DIM_DAY:
                caltime_format_date(day, out->label);
                break;
        case DIM_WEEK:
                caltime_format_date(caltime_week_start(day), out->label);
                break;
        case DIM_MONTH:
                caltime_format_date(day, date);
                snprintf(out->label, sizeof(out->label), "%.7s", date);
                break;
        case DIM_PROVIDER:
                snprintf(out->label, sizeof(out->label), "%s", provider);
                break;
        case DIM_ACCOUNT:
                snprintf(out->label, sizeof(out->label), "%s", account);
                out->provider = provider;
                break;
        case DIM_CAMPAIGN:
                snprintf(out->label, sizeof(out->label), "%s",
                         campaign ? campaign : "");
                out->provider = provider;
                out->name = campaign_name;
                break;
        default:
                out->label[0] = '\0';
        }
}

static group_t *qr__group(query_result_t *r, const char *currency, int64_t day,
                          const char *provider, const char *account,
                          const char *campaign, const char *campaign_name) {
        const query_t *q = r->q;
        dimval_t dv[2];
        char key[512];
        size_t off, k;
        group_t *g;
        off = (size_t)snprintf(key, sizeof(key), "%s", currency);
        for (size_t i = 0; i < q->n_dims; i++) {
                qr__dim(q->dims[i], day, provider, account, campaign,
                        campaign_name, &dv[i]);
                off += (size_t)snprintf(
                        key + off, sizeof(key) - off, "\x1f%s\x1e%s",
                        dv[i].provider ? dv[i].provider : "", dv[i].label);
                if (off >= sizeof(key))
                        off = sizeof(key) - 1;
        }
        if ((r->n + 1) * 2 > r->n_slots)
                qr__rehash(r);
        k = qr__hash(key) & (r->n_slots - 1);
        while (r->slots[k]) {
                g = &r->g[r->slots[k] - 1];
                if (strcmp(g->key, key) == 0)
                        goto found;
                k = (k + 1) & (r->n_slots - 1);
        }
        if (r->n == r->cap) {
                r->cap = r->cap ? r->cap * 2 : 64;
                r->g = xrealloc(r->g, r->cap * sizeof(*r->g));
        }
        g = &r->g[r->n++];
        memset(g, 0, sizeof(*g));
        g->key = xstrdup(key);
        snprintf(g->currency, sizeof(g->currency), "%s", currency);
        for (size_t i = 0; i < q->n_dims; i++) {
                g->dim[i] = xstrdup(dv[i].label);
                g->extra[i] = dv[i].provider ? xstrdup(dv[i].provider) : NULL;
                g->name_day[i] = INT64_MIN;
        }
        r->slots[k] = r->n;
found:
        /* A campaign is named as it was on its latest day. */
        for (size_t i = 0; i < q->n_dims; i++) {
                if (!dv[i].name || day < g->name_day[i] ||
                    (day == g->name_day[i] && g->name[i] &&
                     strcmp(dv[i].name, g->name[i]) <= 0))
                        continue;
                free(g->name[i]);
                g->name[i] = xstrdup(dv[i].name);
                g->name_day[i] = day;
        }
        return g;
}

static void qr__on_ad(const ad_entry_t *e, void *arg) {
        query_result_t *r = arg;
        measures_add_ad(&qr__group(r, e->currency, e->day, e->provider,
                                   e->account, e->campaign_id, e->campaign_name)
                                 ->m,
                        e);
}

static void qr__on_order(const order_entry_t *e, void *arg) {
        query_result_t *r = arg;
        measures_add_order(&qr__group(r, e->currency, e->day, e->provider,
                                      e->account, NULL, NULL)
                                    ->m,
                           e);
}

static void qr__on_tw(const tw_entry_t *e, void *arg) {
        query_result_t *r = arg;
        measures_add_tw(&qr__group(r, e->currency, e->day, e->provider,
                                   e->account, NULL, NULL)
                                 ->m,
                        e);
}

static void qr__on_crm(const crm_entry_t *e, void *arg) {
        query_result_t *r = arg;
        measures_add_crm(&qr__group(r, e->currency, e->day, e->provider,
                                    e->account, NULL, NULL)
                                  ->m,
                         e);
}

static int qr__cmp_str(const char *a, const char *b) {
        return strcmp(a ? a : "", b ? b : "");
}

static int qr__cmp(const void *pa, const void *pb) {
        const group_t *a = pa, *b = pb;
        int c = strcmp(a->currency, b->currency);
        for (size_t i = 0; !c && i < 2; i++) {
                c = qr__cmp_str(a->extra[i], b->extra[i]);
                if (!c)
                        c = qr__cmp_str(a->dim[i], b->dim[i]);
        }
        return c;
}

store_err_t query_run(const aview_t *v, const query_t *q, query_result_t **out,
                      char *errstr, size_t errlen) {
        query_result_t *r = xcalloc(1, sizeof(*r));
        unsigned sources = 0;
        store_err_t err = STORE_OK;
        r->q = q;
        for (size_t i = 0; i < q->n_metrics; i++)
                sources |= q->metrics[i]->sources;
        if (sources & SRC_ADS)
                err = read_ads(v, &q->filter, q->from, q->to, qr__on_ad, r,
                               errstr, errlen);
        if (err == STORE_OK && (sources & SRC_ORDERS))
                err = read_orders(v, &q->filter, q->from, q->to, qr__on_order,
                                  r, errstr, errlen);
        if (err == STORE_OK && (sources & SRC_TW))
                err = read_summaries(v, &q->filter, q->from, q->to, qr__on_tw,
                                     r, errstr, errlen);
        if (err == STORE_OK && (sources & SRC_CRM))
                err = read_crm(v, &q->filter, q->from, q->to, qr__on_crm, r,
                               errstr, errlen);
        if (err != STORE_OK) {
                query_result_free(r);
                *out = NULL;
                return err;
        }
        if (r->n > 1) /* r->g is NULL when nothing matched */
                qsort(r->g, r->n, sizeof(*r->g), qr__cmp);
        free(r->slots); /* indices are stale once sorted */
        r->slots = NULL;
        r->n_slots = 0;
        *out = r;
        return STORE_OK;
}

size_t query_rows(const query_result_t *r) {
        return r ? r->n : 0;
}

const measures_t *query_row(const query_result_t *r, size_t i,
                            const char **currency, const char **dim0,
                            const char **extra0, const char **name0) {
        const group_t *g = &r->g[i];
        if (currency)
                *currency = g->currency;
        if (dim0)
                *dim0 = g->dim[0] ? g->dim[0] : "";
        if (extra0)
                *extra0 = g->extra[0] ? g->extra[0] : "";
        if (name0)
                *name0 = g->name[0] ? g->name[0] : "";
        return &g->m;
}

void query_result_free(query_result_t *r) {
        if (!r)
                return;
        for (size_t i = 0; i < r->n; i++) {
                free(r->g[i].key);
                for (int d = 0; d < 2; d++) {
                        free(r->g[i].dim[d]);
                        free(r->g[i].extra[d]);
                        free(r->g[i].name[d]);
                }
        }
        free(r->g);
        free(r->slots);
        free(r);
}

/* The columns of a dimension in a row. */
static size_t qr__dim_cols(dim_t d) {
        return d == DIM_CAMPAIGN ? 3 : d == DIM_ACCOUNT ? 2 : 1;
}

void query_pack_rows(const query_result_t *r, const query_t *q,
                     msgpack_packer *pk) {
        size_t cols = 1 + q->n_metrics;
        for (size_t i = 0; i < q->n_dims; i++)
                cols += qr__dim_cols(q->dims[i]);
        msgpack_pack_array(pk, r->n);
        for (size_t i = 0; i < r->n; i++) {
                const group_t *g = &r->g[i];
                msgpack_pack_map(pk, cols);
                codec_pack_str(pk, "currency");
                if (g->currency[0])
                        codec_pack_str(pk, g->currency);
                else
                        msgpack_pack_nil(pk);
                for (size_t d = 0; d < q->n_dims; d++) {
                        switch (q->dims[d]) {
                        case DIM_ACCOUNT:
                                mp_pack_kv_str(pk, "provider", g->extra[d]);
                                mp_pack_kv_str(pk, "account_id", g->dim[d]);
                                break;
                        case DIM_CAMPAIGN:
                                mp_pack_kv_str(pk, "provider", g->extra[d]);
                                mp_pack_kv_str(pk, "campaign_id", g->dim[d]);
                                mp_pack_kv_str(pk, "campaign_name",
                                               g->name[d] ? g->name[d] : "");
                                break;
                        default:
                                mp_pack_kv_str(pk, query_dim_names[q->dims[d]],
                                               g->dim[d]);
                        }
                }
                for (size_t m = 0; m < q->n_metrics; m++) {
                        codec_pack_str(pk, q->metrics[m]->name);
                        query_pack_value(pk, q->metrics[m], &g->m);
                }
        }
}

size_t query_columns(const query_t *q, const char **out, size_t max) {
        size_t n = 0;
#define COL(name)                      \
        do {                           \
                if (n < max)           \
                        out[n] = name; \
                n++;                   \
        } while (0)
        COL("currency");
        for (size_t d = 0; d < q->n_dims; d++) {
                if (q->dims[d] == DIM_ACCOUNT) {
                        COL("provider");
                        COL("account_id");
                } else if (q->dims[d] == DIM_CAMPAIGN) {
                        COL("provider");
                        COL("campaign_id");
                        COL("campaign_name");
                } else {
                        COL(query_dim_names[q->dims[d]]);
                }
        }
        for (size_t m = 0; m < q->n_metrics; m++)
                COL(q->metrics[m]->name);
#undef COL
        return n;
}

/* ---------------------------------------------------------------------------
 * Keyed sums (the dashboard's several groupings in one read)
 * ------------------------------------------------------------------------ */

typedef struct macc_item {
        char *key;
        measures_t m;
} macc_item_t;

struct macc {
        macc_item_t *items;
        size_t n, cap;
        size_t *slots;
        size_t n_slots;
};

macc_t *macc_new(void) {
        return xcalloc(1, sizeof(macc_t));
}

void macc_free(macc_t *a) {
        if (!a)
                return;
        for (size_t i = 0; i < a->n; i++)
                free(a->items[i].key);
        free(a->items);
        free(a->slots);
        free(a);
}

static void macc__rehash(macc_t *a) {
        size_t n = a->n_slots ? a->n_slots * 2 : 256;
        free(a->slots);
        a->slots = xcalloc(n, sizeof(*a->slots));
        a->n_slots = n;
        for (size_t i = 0; i < a->n; i++) {
                size_t k = qr__hash(a->items[i].key) & (n - 1);
                while (a->slots[k])
                        k = (k + 1) & (n - 1);
                a->slots[k] = i + 1;
        }
}

static macc_item_t *macc__lookup(const macc_t *a, const char *key,
                                 size_t *slot) {
        size_t k;
        if (!a->n_slots)
                return NULL;
        k = qr__hash(key) & (a->n_slots - 1);
        while (a->slots[k]) {
                macc_item_t *it = &a->items[a->slots[k] - 1];
                if (strcmp(it->key, key) == 0)
                        return it;
                k = (k + 1) & (a->n_slots - 1);
        }
        if (slot)
                *slot = k;
        return NULL;
}

measures_t *macc_get(macc_t *a, const char *key) {
        macc_item_t *it;
        size_t slot = 0;
        if ((a->n + 1) * 2 > a->n_slots)
                macc__rehash(a);
        if ((it = macc__lookup(a, key, &slot)) != NULL)
                return &it->m;
        if (a->n == a->cap) {
                a->cap = a->cap ? a->cap * 2 : 64;
                a->items = xrealloc(a->items, a->cap * sizeof(*a->items));
        }
        it = &a->items[a->n++];
        memset(it, 0, sizeof(*it));
        it->key = xstrdup(key);
        a->slots[slot] = a->n;
        return &it->m;
}

const measures_t *macc_find(const macc_t *a, const char *key) {
        macc_item_t *it = macc__lookup(a, key, NULL);
        return it ? &it->m : NULL;
}

static int macc__cmp(const void *a, const void *b) {
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

size_t macc_keys(const macc_t *a, const char *prefix, const char ***out) {
        size_t n = 0, len = strlen(prefix);
        const char **keys = xcalloc(a->n ? a->n : 1, sizeof(*keys));
        for (size_t i = 0; i < a->n; i++)
                if (strncmp(a->items[i].key, prefix, len) == 0)
                        keys[n++] = a->items[i].key;
        qsort(keys, n, sizeof(*keys), macc__cmp);
        *out = keys;
        return n;
}
