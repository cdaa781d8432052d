/*
 * query_metrics.c - the metrics of the query model (query.c): their
 * catalog (sources, the dimensions each can be grouped by, money or not),
 * their values computed from a group's sums, and how a fact adds to those
 * sums (see analytics_internal.h).
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
#include <string.h>

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
