/*
 * query.c - the one query model behind the metrics routes, the dashboard,
 * the reports and the insights: metrics x dimensions x filters over a
 * period (see analytics_internal.h).
 *
 * Every fact read adds to the sums (measures_t) of its group: its currency
 * and its values of the dimensions asked for. Metrics are then computed
 * from a group's sums, so ratios are ratios of sums (the ROAS of a week is
 * its conversion value over its spend, never an average of daily ROAS).
 * Money never crosses currencies: the currency is always part of the
 * group, and a row says which it is in.
 *
 * Definitions (money in minor units of the row's currency):
 *   revenue          net sales: order totals minus refunds (by order day)
 *   roas             platform ROAS: conversion value / spend (per channel)
 *   blended_roas     revenue / ad spend (store revenue, all channels)
 *   mer              revenue / ad spend: marketing efficiency ratio as most
 *                    tools define it (equal to blended_roas)
 *   tw_mer           ad spend / revenue: MER as TripleWhale defines it
 *   cpa              spend / platform conversions
 *   cac              spend / new customers (store)
 *   ctr, cvr         clicks / impressions, conversions / clicks
 *   cpc, cpm         spend / clicks, spend x 1000 / impressions
 *   aov              revenue / orders
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "analytics_internal.h"

/* ---------------------------------------------------------------------------
 * The metrics
 * ------------------------------------------------------------------------ */

enum {
        M_SPEND,
        M_IMPRESSIONS,
        M_CLICKS,
        M_CONVERSIONS,
        M_CONVERSION_VALUE,
        M_VIDEO_VIEWS,
        M_ROAS,
        M_CPA,
        M_CTR,
        M_CPC,
        M_CPM,
        M_CVR,
        M_REVENUE,
        M_GROSS_REVENUE,
        M_REFUNDS,
        M_ORDERS,
        M_NEW_CUSTOMERS,
        M_NEW_CUSTOMER_REVENUE,
        M_AOV,
        M_MER,
        M_BLENDED_ROAS,
        M_TW_MER,
        M_CAC,
        M_TW_SPEND,
        M_TW_REVENUE,
        M_TW_ORDERS,
        M_TW_NEW_CUSTOMERS,
        M_CONTACTS,
        M_DEALS,
        M_DEALS_WON,
        M_WON_AMOUNT,
        M_COUNT
};

#define TIME_DIMS ((1u << DIM_DAY) | (1u << DIM_WEEK) | (1u << DIM_MONTH))
#define ALL_DIMS ((1u << DIM_COUNT) - 1)
#define SOURCE_DIMS (TIME_DIMS | (1u << DIM_PROVIDER) | (1u << DIM_ACCOUNT))

const metric_def_t query_metrics[M_COUNT] = {
        {"spend", SRC_ADS, ALL_DIMS, true, false, "ad spend"},
        {"impressions", SRC_ADS, ALL_DIMS, false, false, "ad impressions"},
        {"clicks", SRC_ADS, ALL_DIMS, false, false, "ad clicks"},
        {"conversions", SRC_ADS, ALL_DIMS, false, false,
         "conversions the ad platforms report"},
        {"conversion_value", SRC_ADS, ALL_DIMS, true, false,
         "conversion value the ad platforms report"},
        {"video_views", SRC_ADS, ALL_DIMS, false, false, "video views"},
        {"roas", SRC_ADS, ALL_DIMS, false, true,
         "platform ROAS: conversion_value / spend"},
        {"cpa", SRC_ADS, ALL_DIMS, true, true, "spend / conversions"},
        {"ctr", SRC_ADS, ALL_DIMS, false, true, "clicks / impressions"},
        {"cpc", SRC_ADS, ALL_DIMS, true, true, "spend / clicks"},
        {"cpm", SRC_ADS, ALL_DIMS, true, true, "spend x 1000 / impressions"},
        {"cvr", SRC_ADS, ALL_DIMS, false, true, "conversions / clicks"},
        {"revenue", SRC_ORDERS, SOURCE_DIMS, true, false,
         "net sales: order totals minus refunds, by order day"},
        {"gross_revenue", SRC_ORDERS, SOURCE_DIMS, true, false,
         "order totals (tax and shipping included)"},
        {"refunds", SRC_ORDERS, SOURCE_DIMS, true, false,
         "refunded amounts, by order day"},
        {"orders", SRC_ORDERS, SOURCE_DIMS, false, false, "orders placed"},
        {"new_customers", SRC_ORDERS, SOURCE_DIMS, false, false,
         "orders that were a customer's first"},
        {"new_customer_revenue", SRC_ORDERS, SOURCE_DIMS, true, false,
         "revenue of new customers' orders"},
        {"aov", SRC_ORDERS, SOURCE_DIMS, true, true, "revenue / orders"},
        {"mer", SRC_ADS | SRC_ORDERS, TIME_DIMS, false, true,
         "marketing efficiency ratio: revenue / ad spend"},
        {"blended_roas", SRC_ADS | SRC_ORDERS, TIME_DIMS, false, true,
         "revenue / ad spend over all channels (equal to mer)"},
        {"tw_mer", SRC_ADS | SRC_ORDERS, TIME_DIMS, false, true,
         "MER as TripleWhale defines it: ad spend / revenue"},
        {"cac", SRC_ADS | SRC_ORDERS, TIME_DIMS, true, true,
         "ad spend / new customers"},
        {"tw_spend", SRC_TW, TIME_DIMS | (1u << DIM_ACCOUNT), true, false,
         "TripleWhale's blended ad spend"},
        {"tw_revenue", SRC_TW, TIME_DIMS | (1u << DIM_ACCOUNT), true, false,
         "TripleWhale's sales"},
        {"tw_orders", SRC_TW, TIME_DIMS | (1u << DIM_ACCOUNT), false, false,
         "TripleWhale's orders"},
        {"tw_new_customers", SRC_TW, TIME_DIMS | (1u << DIM_ACCOUNT), false,
         false, "TripleWhale's new customers"},
        {"contacts", SRC_CRM, SOURCE_DIMS, false, false,
         "CRM contacts created"},
        {"deals", SRC_CRM, SOURCE_DIMS, false, false, "CRM deals created"},
        {"deals_won", SRC_CRM, SOURCE_DIMS, false, false,
         "deals created in the period and won"},
        {"won_amount", SRC_CRM, SOURCE_DIMS, true, false,
         "amount of those deals"},
};

const size_t query_n_metrics = M_COUNT;

const char *const query_dim_names[DIM_COUNT] = {
        "day", "week", "month", "provider", "account", "campaign",
};

const metric_def_t *query_metric(const char *name, size_t len) {
        for (size_t i = 0; i < M_COUNT; i++)
                if (strlen(query_metrics[i].name) == len &&
                    memcmp(query_metrics[i].name, name, len) == 0)
                        return &query_metrics[i];
        return NULL;
}

static bool ratio(double num, double den, double *out) {
        if (den == 0)
                return false;
        *out = num / den;
        return true;
}

bool query_value(const metric_def_t *md, const measures_t *m, double *out) {
        switch ((int)(md - query_metrics)) {
        case M_SPEND:
                *out = (double)m->spend;
                return true;
        case M_IMPRESSIONS:
                *out = (double)m->impressions;
                return true;
        case M_CLICKS:
                *out = (double)m->clicks;
                return true;
        case M_CONVERSIONS:
                *out = m->conversions;
                return true;
        case M_CONVERSION_VALUE:
                *out = (double)m->conversion_value;
                return true;
        case M_VIDEO_VIEWS:
                *out = (double)m->video_views;
                return true;
        case M_ROAS:
                return ratio((double)m->conversion_value, (double)m->spend,
                             out);
        case M_CPA:
                return ratio((double)m->spend, m->conversions, out);
        case M_CTR:
                return ratio((double)m->clicks, (double)m->impressions, out);
        case M_CPC:
                return ratio((double)m->spend, (double)m->clicks, out);
        case M_CPM:
                return ratio((double)m->spend * 1000.0, (double)m->impressions,
                             out);
        case M_CVR:
                return ratio(m->conversions, (double)m->clicks, out);
        case M_REVENUE:
                *out = (double)m->net;
                return true;
        case M_GROSS_REVENUE:
                *out = (double)m->gross;
                return true;
        case M_REFUNDS:
                *out = (double)m->refunded;
                return true;
        case M_ORDERS:
                *out = (double)m->orders;
                return true;
        case M_NEW_CUSTOMERS:
                *out = (double)m->new_customers;
                return true;
        case M_NEW_CUSTOMER_REVENUE:
                *out = (double)m->new_customer_net;
                return true;
        case M_AOV:
                return ratio((double)m->net, (double)m->orders, out);
        case M_MER:
        case M_BLENDED_ROAS:
                return ratio((double)m->net, (double)m->spend, out);
        case M_TW_MER:
                return ratio((double)m->spend, (double)m->net, out);
        case M_CAC:
                return ratio((double)m->spend, (double)m->new_customers, out);
        case M_TW_SPEND:
                *out = (double)m->tw_spend;
                return true;
        case M_TW_REVENUE:
                *out = (double)m->tw_revenue;
                return true;
        case M_TW_ORDERS:
                *out = (double)m->tw_orders;
                return true;
        case M_TW_NEW_CUSTOMERS:
                *out = (double)m->tw_new_customers;
                return true;
        case M_CONTACTS:
                *out = (double)m->contacts;
                return true;
        case M_DEALS:
                *out = (double)m->deals;
                return true;
        case M_DEALS_WON:
                *out = (double)m->deals_won;
                return true;
        case M_WON_AMOUNT:
                *out = (double)m->won_amount;
                return true;
        default:
                return false;
        }
}

void query_pack_value(msgpack_packer *pk, const metric_def_t *md,
                      const measures_t *m) {
        double v;
        if (!query_value(md, m, &v))
                msgpack_pack_nil(pk);
        else if (md->ratio || (int)(md - query_metrics) == M_CONVERSIONS)
                msgpack_pack_double(pk, v);
        else
                msgpack_pack_int64(pk, (int64_t)llround(v));
}

void measures_add_ad(measures_t *m, const ad_entry_t *e) {
        m->spend += e->spend;
        m->impressions += e->impressions;
        m->clicks += e->clicks;
        m->conversions += e->conversions;
        m->conversion_value += e->conversion_value;
        m->video_views += e->video_views;
}

void measures_add_order(measures_t *m, const order_entry_t *e) {
        int64_t net = e->total - e->refunded;
        m->orders++;
        m->gross += e->total;
        m->refunded += e->refunded;
        m->net += net;
        if (e->new_customer) {
                m->new_customers++;
                m->new_customer_net += net;
        }
}

void measures_add_tw(measures_t *m, const tw_entry_t *e) {
        m->tw_spend += e->spend;
        m->tw_revenue += e->revenue;
        m->tw_orders += e->orders;
        m->tw_new_customers += e->new_customers;
}

void measures_add_crm(measures_t *m, const crm_entry_t *e) {
        if (!e->deal) {
                m->contacts++;
                return;
        }
        m->deals++;
        if (e->won == 1) {
                m->deals_won++;
                m->won_amount += e->amount;
        }
}

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
 * Reading a query from a command
 * ------------------------------------------------------------------------ */

static void query__unknown(rt_ctx_t *ctx, const char *field, size_t index,
                           slice_t value, bool metric) {
        char where[48], why[1024];
        size_t off;
        snprintf(where, sizeof(where), "%s[%zu]", field, index);
        off = (size_t)snprintf(
                why, sizeof(why),
                "unknown %s '%.*s'; known:", metric ? "metric" : "dimension",
                (int)(value.len > 64 ? 64 : value.len), value.ptr);
        if (metric)
                for (size_t i = 0; i < M_COUNT && off < sizeof(why); i++)
                        off += (size_t)snprintf(why + off, sizeof(why) - off,
                                                " %s", query_metrics[i].name);
        else
                for (size_t i = 0; i < DIM_COUNT && off < sizeof(why); i++)
                        off += (size_t)snprintf(why + off, sizeof(why) - off,
                                                " %s", query_dim_names[i]);
        analytics_bad_field(ctx, where, why);
}

/* Strings of an array field (at most max) into out; false after a 400. */
static bool query__strings(rt_ctx_t *ctx, const msgpack_object *body,
                           const char *key, const char **out, size_t max,
                           size_t *n, char *store, size_t *used,
                           size_t store_size) {
        const msgpack_object *a = codec_map_get(body, key);
        const msgpack_object *items;
        uint32_t count;
        *n = 0;
        if (!a || a->type == MSGPACK_OBJECT_NIL)
                return true;
        if (a->type == MSGPACK_OBJECT_STR) {
                /* One value given as a plain string. */
                items = a;
                count = 1;
        } else if (a->type == MSGPACK_OBJECT_ARRAY) {
                items = a->via.array.ptr;
                count = a->via.array.size;
        } else {
                analytics_bad_field(ctx, key, "must be an array of strings");
                return false;
        }
        if (count > max) {
                analytics_bad_field(ctx, key, "has too many values");
                return false;
        }
        for (uint32_t i = 0; i < count; i++) {
                const msgpack_object *s = &items[i];
                char where[48];
                if (s->type != MSGPACK_OBJECT_STR || !s->via.str.size ||
                    s->via.str.size > 128 ||
                    *used + s->via.str.size + 1 > store_size) {
                        snprintf(where, sizeof(where), "%s[%u]", key, i);
                        analytics_bad_field(ctx, where,
                                            "must be a string of 1 to 128 "
                                            "bytes");
                        return false;
                }
                memcpy(store + *used, s->via.str.ptr, s->via.str.size);
                store[*used + s->via.str.size] = '\0';
                out[(*n)++] = store + *used;
                *used += s->via.str.size + 1;
        }
        return true;
}

bool query_period(rt_ctx_t *ctx, const msgpack_object *body, int64_t *from,
                  int64_t *to) {
        const analytics_settings_t *set = analytics_state(ctx)->set;
        slice_t f = mp_str(body, "from"), t = mp_str(body, "to");
        int64_t today = caltime_day_of_ms((int64_t)clock_wall_ms());
        *to = today - 1;
        if (t.len && !caltime_parse_date(t.ptr, t.len, to)) {
                analytics_bad_field(ctx, "to", "must be a date YYYY-MM-DD");
                return false;
        }
        *from = *to - 29;
        if (f.len && !caltime_parse_date(f.ptr, f.len, from)) {
                analytics_bad_field(ctx, "from", "must be a date YYYY-MM-DD");
                return false;
        }
        if (*from > *to) {
                analytics_refused_field(ctx, "from", "must not be after to");
                return false;
        }
        if (*to - *from + 1 > set->max_range_days) {
                char why[96];
                snprintf(why, sizeof(why),
                         "the period may span at most %d days",
                         set->max_range_days);
                analytics_refused_field(ctx, "from", why);
                return false;
        }
        return true;
}

bool query_parse(rt_ctx_t *ctx, const msgpack_object *body, query_t *q) {
        static __thread char strings[8192];
        size_t used = 0, n;
        const char *names[QUERY_MAX_METRICS];
        unsigned sources = 0;
        afilter_t *f = &q->filter;
        memset(q, 0, sizeof(*q));
        if (!query__strings(ctx, body, "metric", names, QUERY_MAX_METRICS, &n,
                            strings, &used, sizeof(strings)))
                return false;
        if (!n) {
                analytics_bad_field(ctx, "metric", "name at least one metric");
                return false;
        }
        for (size_t i = 0; i < n; i++) {
                const metric_def_t *md =
                        query_metric(names[i], strlen(names[i]));
                if (!md) {
                        query__unknown(ctx, "metric", i, slice_of(names[i]),
                                       true);
                        return false;
                }
                q->metrics[q->n_metrics++] = md;
                sources |= md->sources;
        }
        if (!query__strings(ctx, body, "group_by", names, 2, &n, strings, &used,
                            sizeof(strings)))
                return false;
        for (size_t i = 0; i < n; i++) {
                int d = -1;
                for (int k = 0; k < DIM_COUNT; k++)
                        if (strcmp(names[i], query_dim_names[k]) == 0)
                                d = k;
                if (d < 0) {
                        query__unknown(ctx, "group_by", i, slice_of(names[i]),
                                       false);
                        return false;
                }
                for (size_t m = 0; m < q->n_metrics; m++)
                        if (!(q->metrics[m]->dims & (1u << d))) {
                                char where[48], why[160];
                                snprintf(where, sizeof(where), "group_by[%zu]",
                                         i);
                                snprintf(why, sizeof(why),
                                         "metric %s cannot be grouped by %s",
                                         q->metrics[m]->name, names[i]);
                                analytics_refused_field(ctx, where, why);
                                return false;
                        }
                q->dims[q->n_dims++] = (dim_t)d;
        }
        if (!query__strings(ctx, body, "provider", f->provider, FILTER_MAX,
                            &f->n_provider, strings, &used, sizeof(strings)) ||
            !query__strings(ctx, body, "account_id", f->account, FILTER_MAX,
                            &f->n_account, strings, &used, sizeof(strings)) ||
            !query__strings(ctx, body, "campaign_id", f->campaign, FILTER_MAX,
                            &f->n_campaign, strings, &used, sizeof(strings)) ||
            !query__strings(ctx, body, "currency", f->currency, FILTER_MAX,
                            &f->n_currency, strings, &used, sizeof(strings)))
                return false;
        if (f->n_campaign && sources != SRC_ADS) {
                analytics_refused_field(ctx, "campaign_id",
                                        "only ad metrics can be filtered by "
                                        "campaign");
                return false;
        }
        if ((f->n_provider || f->n_account) && (sources & SRC_ADS) &&
            (sources & ~(unsigned)SRC_ADS)) {
                analytics_refused_field(
                        ctx, f->n_provider ? "provider" : "account_id",
                        "metrics of ads and of other sources "
                        "(orders, blended) cannot be filtered "
                        "by provider or account together");
                return false;
        }
        return query_period(ctx, body, &q->from, &q->to);
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
