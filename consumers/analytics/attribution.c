/*
 * attribution.c - multi-touch attribution over the touchpoints orders
 * carry (oldest first), per currency, by channel or by channel and
 * campaign.
 *
 * Models (weights of an order's n touchpoints, summing to 1):
 *   last_click      the last one
 *   first_click     the first one
 *   linear          1/n each
 *   time_decay      2^(-age/7 days), age = order time - touch time (a
 *                   touch after the order counts as age 0), normalised
 *   position_based  40 % first, 40 % last, 20 % shared by the ones between
 *                   (one touch: 100 %; two: 50/50)
 * An order's revenue (net: total - refunds, minor units) is split in whole
 * minor units: each touch gets the floor of its share, and what is left
 * goes one unit at a time to the largest remainders (ties: the earlier
 * touch), so credited revenue adds up exactly. Orders credit fractions
 * (they add up to the number of orders). An order without touchpoints is
 * credited to channel "(none)".
 *
 * A touch's channel is its ad provider when the click id or UTM named one,
 * else "<source>/<medium>" (as the UTM said), else "(direct)"; its
 * campaign the campaign id when known, else the UTM campaign. Ad channels
 * also get their spend in the period (same currency) and the attributed
 * ROAS (credited revenue / spend).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "analytics_internal.h"

#define HALF_LIFE_MS (7 * CALTIME_MS_PER_DAY)

typedef enum model {
        MODEL_LAST,
        MODEL_FIRST,
        MODEL_LINEAR,
        MODEL_DECAY,
        MODEL_POSITION,
} model_t;

static const char *const model_names[] = {
        "last_click", "first_click", "linear", "time_decay", "position_based",
};

/* Weights of an order's n touchpoints (n >= 1). */
static void attr__weights(model_t model, const order_entry_t *o, double *w) {
        size_t n = o->n_touch;
        double sum = 0;
        for (size_t i = 0; i < n; i++)
                w[i] = 0;
        switch (model) {
        case MODEL_LAST:
                w[n - 1] = 1;
                return;
        case MODEL_FIRST:
                w[0] = 1;
                return;
        case MODEL_LINEAR:
                for (size_t i = 0; i < n; i++)
                        w[i] = 1.0 / (double)n;
                return;
        case MODEL_DECAY:
                for (size_t i = 0; i < n; i++) {
                        int64_t age = o->placed_ms - o->touch[i].at_ms;
                        w[i] = pow(2.0, -(double)(age > 0 ? age : 0) /
                                                (double)HALF_LIFE_MS);
                        sum += w[i];
                }
                for (size_t i = 0; i < n; i++)
                        w[i] /= sum;
                return;
        case MODEL_POSITION:
                if (n == 1) {
                        w[0] = 1;
                } else if (n == 2) {
                        w[0] = w[1] = 0.5;
                } else {
                        w[0] = w[n - 1] = 0.4;
                        for (size_t i = 1; i < n - 1; i++)
                                w[i] = 0.2 / (double)(n - 2);
                }
                return;
        }
}

/* Whole minor units per touch: floors, then the rest by largest
 * remainder (ties: the earlier touch). */
static void attr__split(int64_t revenue, const double *w, size_t n,
                        int64_t *out) {
        double rem[TOUCH_MAX];
        int64_t given = 0;
        for (size_t i = 0; i < n; i++) {
                double share = (double)revenue * w[i];
                out[i] = (int64_t)floor(share);
                rem[i] = share - (double)out[i];
                given += out[i];
        }
        while (given < revenue) {
                size_t best = 0;
                for (size_t i = 1; i < n; i++)
                        if (rem[i] > rem[best] + 1e-12)
                                best = i;
                out[best]++;
                rem[best] = -1;
                given++;
        }
}

static void attr__channel(const touch_t *t, char *out, size_t size) {
        if (t->provider[0])
                snprintf(out, size, "%s", t->provider);
        else if (t->source[0])
                snprintf(out, size, "%s/%s", t->source,
                         t->medium[0] ? t->medium : "(none)");
        else
                snprintf(out, size, "(direct)");
}

typedef struct attr {
        model_t model;
        bool by_campaign;
        macc_t *acc; /* "r|<cur>|<channel>\x1f<campaign>", "o|<cur>" */
} attr_t;

static void attr__add(attr_t *a, const char *currency, const char *channel,
                      const char *campaign, double orders, int64_t revenue) {
        char key[512];
        measures_t *m;
        snprintf(key, sizeof(key), "r|%s|%s\x1f%s", currency, channel,
                 a->by_campaign ? campaign : "");
        m = macc_get(a->acc, key);
        m->conversions += orders;
        m->net += revenue;
}

static void attr__on_order(const order_entry_t *o, void *arg) {
        attr_t *a = arg;
        int64_t revenue = o->total - o->refunded;
        double w[TOUCH_MAX];
        int64_t split[TOUCH_MAX];
        char key[64];
        measures_t *t;
        snprintf(key, sizeof(key), "o|%s", o->currency);
        t = macc_get(a->acc, key);
        t->orders++;
        t->net += revenue;
        if (!o->n_touch) {
                attr__add(a, o->currency, "(none)", "", 1.0, revenue);
                return;
        }
        attr__weights(a->model, o, w);
        attr__split(revenue < 0 ? 0 : revenue, w, o->n_touch, split);
        for (size_t i = 0; i < o->n_touch; i++) {
                char channel[160];
                const touch_t *tp = &o->touch[i];
                if (w[i] == 0)
                        continue;
                attr__channel(tp, channel, sizeof(channel));
                attr__add(a, o->currency, channel,
                          tp->campaign_id[0] ? tp->campaign_id : tp->campaign,
                          w[i], split[i]);
        }
}

static void attr__on_ad(const ad_entry_t *e, void *arg) {
        attr_t *a = arg;
        char key[512];
        snprintf(key, sizeof(key), "a|%s|%s\x1f%s", e->currency, e->provider,
                 a->by_campaign ? e->campaign_id : "");
        macc_get(a->acc, key)->spend += e->spend;
}

typedef struct arow {
        const char *key; /* "<channel>\x1f<campaign>" */
        const measures_t *m;
} arow_t;

static int arow__cmp(const void *pa, const void *pb) {
        const arow_t *a = pa, *b = pb;
        if (a->m->net != b->m->net)
                return a->m->net > b->m->net ? -1 : 1;
        return strcmp(a->key, b->key);
}

static void attr__pack_currency(msgpack_packer *pk, const attr_t *a,
                                const char *currency) {
        char prefix[300], key[512];
        const char **keys;
        size_t n;
        arow_t *rows;
        const measures_t *tot;
        snprintf(key, sizeof(key), "o|%s", currency);
        tot = macc_find(a->acc, key);
        snprintf(prefix, sizeof(prefix), "r|%s|", currency);
        n = macc_keys(a->acc, prefix, &keys);
        rows = xcalloc(n ? n : 1, sizeof(*rows));
        for (size_t i = 0; i < n; i++) {
                rows[i].key = keys[i] + strlen(prefix);
                rows[i].m = macc_find(a->acc, keys[i]);
        }
        qsort(rows, n, sizeof(*rows), arow__cmp);
        msgpack_pack_map(pk, 4);
        mp_pack_kv_str(pk, "currency", currency);
        mp_pack_kv_int(pk, "orders", tot ? tot->orders : 0);
        mp_pack_kv_int(pk, "revenue_minor", tot ? tot->net : 0);
        codec_pack_str(pk, "rows");
        msgpack_pack_array(pk, n);
        for (size_t i = 0; i < n; i++) {
                const char *sep = strchr(rows[i].key, '\x1f');
                char channel[160];
                const measures_t *spend;
                snprintf(channel, sizeof(channel), "%.*s",
                         (int)(sep ? sep - rows[i].key : 0), rows[i].key);
                snprintf(key, sizeof(key), "a|%s|%s", currency, rows[i].key);
                spend = macc_find(a->acc, key);
                msgpack_pack_map(pk, 4 + (a->by_campaign ? 1 : 0) +
                                             (spend ? 2 : 0));
                mp_pack_kv_str(pk, "channel", channel);
                if (a->by_campaign)
                        mp_pack_kv_str(pk, "campaign", sep ? sep + 1 : "");
                codec_pack_str(pk, "orders");
                msgpack_pack_double(pk, rows[i].m->conversions);
                mp_pack_kv_int(pk, "revenue_minor", rows[i].m->net);
                codec_pack_str(pk, "share");
                if (tot && tot->net)
                        msgpack_pack_double(pk, (double)rows[i].m->net /
                                                        (double)tot->net);
                else
                        msgpack_pack_nil(pk);
                if (spend) {
                        mp_pack_kv_int(pk, "spend_minor", spend->spend);
                        codec_pack_str(pk, "roas");
                        if (spend->spend)
                                msgpack_pack_double(
                                        pk, (double)rows[i].m->net /
                                                    (double)spend->spend);
                        else
                                msgpack_pack_nil(pk);
                }
        }
        free(rows);
        free(keys);
}

handler_result_t attribution_handle(rt_ctx_t *ctx, const msgpack_object *body) {
        aview_t v;
        handler_result_t res;
        attr_t a;
        slice_t model = mp_str(body, "model"), by = mp_str(body, "group_by");
        int64_t from, to;
        afilter_t none;
        char err[256], cur[64][4];
        const char **keys;
        size_t n, n_cur = 0;
        store_err_t serr;
        msgpack_packer *pk;
        if (!analytics_view(ctx, SCHEMA_ROLE_VIEWER, &v, &res))
                return res;
        memset(&a, 0, sizeof(a));
        a.model = MODEL_LAST;
        if (model.len) {
                bool found = false;
                for (size_t i = 0; i < 5; i++)
                        if (slice_eq(model, model_names[i])) {
                                a.model = (model_t)i;
                                found = true;
                        }
                if (!found) {
                        analytics_bad_field(ctx, "model",
                                            "must be one of: last_click, "
                                            "first_click, linear, "
                                            "time_decay, position_based");
                        return HANDLER_OK;
                }
        }
        if (by.len && !slice_eq(by, "channel") && !slice_eq(by, "campaign")) {
                analytics_bad_field(ctx, "group_by",
                                    "must be one of: channel, campaign");
                return HANDLER_OK;
        }
        a.by_campaign = slice_eq(by, "campaign");
        if (!query_period(ctx, body, &from, &to))
                return HANDLER_OK;
        memset(&none, 0, sizeof(none));
        a.acc = macc_new();
        serr = read_orders(&v, &none, from, to, attr__on_order, &a, err,
                           sizeof(err));
        if (serr == STORE_OK)
                serr = read_ads(&v, &none, from, to, attr__on_ad, &a, err,
                                sizeof(err));
        if (serr != STORE_OK) {
                macc_free(a.acc);
                return analytics_store_failed(ctx, serr, err);
        }
        n = macc_keys(a.acc, "o|", &keys);
        for (size_t i = 0; i < n && n_cur < 64; i++)
                snprintf(cur[n_cur++], 4, "%s", keys[i] + 2);
        free(keys);
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 5);
        mp_pack_kv_str(pk, "model", model_names[a.model]);
        mp_pack_kv_str(pk, "group_by", a.by_campaign ? "campaign" : "channel");
        {
                char f[CALTIME_DATE_SIZE], t[CALTIME_DATE_SIZE];
                caltime_format_date(from, f);
                caltime_format_date(to, t);
                mp_pack_kv_str(pk, "from", f);
                mp_pack_kv_str(pk, "to", t);
        }
        codec_pack_str(pk, "currencies");
        msgpack_pack_array(pk, n_cur);
        for (size_t i = 0; i < n_cur; i++)
                attr__pack_currency(pk, &a, cur[i]);
        macc_free(a.acc);
        return HANDLER_OK;
}
