/*
 * dataset.c - the examples of the lead and churn models, built from the
 * feature store (features.c). See scoring.h for what each model means.
 *
 * Time: the tenant's own data says what "now" is (the latest update,
 * deal or order seen), so a backfill or a test's fixed dates give the
 * same answer as live data.
 *
 * Lead: every contact is an example. Outcome: the contact converted (a
 * won deal, or the CRM's lifecycle stage "customer"). Features: email
 * opens, clicks and click rate, page views, age, days since the last
 * engagement, open deals and their amount, a free-mail address domain.
 * Lifecycle stage and won deals are the outcome and are never features.
 * The same features score every contact; the ranked list shows those not
 * converted yet (open leads).
 *
 * Churn: a customer (an order with a customer id) churned when they placed
 * no order in the last churn_days days. Training examples are the
 * customers whose first order is older than that cutoff, described by
 * their orders before it (order count, net revenue, average order, days
 * since their last order, tenure, refund share, order rate); scores use
 * the same features as of now, i.e. the probability of no order in the
 * next churn_days days.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "log.h"
#include "scoring.h"

#define DAY_MS 86400000.0

const char *const ml_lead_features[ML_LEAD_P] = {
        "log_emails_opened", "log_emails_clicked",     "click_rate",
        "log_page_views",    "log_days_since_created", "log_days_since_engaged",
        "open_deals",        "log_open_deal_amount",   "free_mail_domain",
};

const char *const ml_churn_features[ML_CHURN_P] = {
        "log_orders",          "log_net_revenue",
        "log_avg_order_value", "log_days_since_last_order",
        "log_tenure_days",     "refund_share",
        "orders_per_30_days",
};

void ml_dataset_free(ml_dataset_t *d) {
        if (!d)
                return;
        for (size_t i = 0; i < d->ns; i++)
                free(d->keys[i]);
        free(d->keys);
        free(d->xs);
        free(d->converted);
        free(d->xt);
        free(d->yt);
        memset(d, 0, sizeof(*d));
}

/* An empty dataset of p features, and the filter of the tenant's
 * documents (initialised here). */
static void dataset_begin(ml_dataset_t *d, size_t p, const char *const *names,
                          const char *tenant, bson_t *filter) {
        memset(d, 0, sizeof(*d));
        d->p = p;
        d->names = names;
        bson_init(filter);
        BSON_APPEND_UTF8(filter, "tenant", tenant);
}

/* Room for one more scoring row (moves xs: no pointer into it may be
 * held across the call). */
static void grow_scored(ml_dataset_t *d) {
        if (d->ns == d->cap_s) {
                d->cap_s = d->cap_s ? 2 * d->cap_s : 256;
                d->keys = xrealloc(d->keys, d->cap_s * sizeof(*d->keys));
                d->xs = xrealloc(d->xs, d->cap_s * d->p * sizeof(double));
                d->converted = xrealloc(d->converted, d->cap_s * sizeof(bool));
        }
}

/* Room for one more training row (moves xt). */
static void grow_train(ml_dataset_t *d) {
        if (d->nt == d->cap_t) {
                d->cap_t = d->cap_t ? 2 * d->cap_t : 256;
                d->xt = xrealloc(d->xt, d->cap_t * d->p * sizeof(double));
                d->yt = xrealloc(d->yt, d->cap_t * sizeof(int));
        }
}

static double days_between(int64_t later, int64_t earlier) {
        if (earlier < 0 || later < earlier)
                return 0;
        return (double)(later - earlier) / DAY_MS;
}

/* ---------------------------------------------------------------------------
 * Lead
 * ------------------------------------------------------------------------ */

/* Deals folded per contact key. */
typedef struct deal_sum {
        char *key;
        bool won;
        int open;
        double open_amount;
} deal_sum_t;

typedef struct lead_load {
        ml_dataset_t *d;
        deal_sum_t *deals;
        size_t n_deals, cap_deals;
        int64_t now;
        bool failed;
} lead_load_t;

static int cmp_deal(const void *a, const void *b) {
        return strcmp(((const deal_sum_t *)a)->key,
                      ((const deal_sum_t *)b)->key);
}

static bool each_deal(const bson_t *doc, void *arg) {
        lead_load_t *l = arg;
        char key[600];
        int64_t won = ml_bson_int(doc, "won", -1);
        int64_t created = ml_bson_int(doc, "created_ms", -1);
        int64_t closed = ml_bson_int(doc, "closed_ms", -1);
        ml_bson_str(doc, "contact_key", key, sizeof(key));
        if (created > l->now)
                l->now = created;
        if (closed > l->now)
                l->now = closed;
        if (!key[0])
                return true;
        if (l->n_deals == l->cap_deals) {
                l->cap_deals = l->cap_deals ? 2 * l->cap_deals : 256;
                l->deals = xrealloc(l->deals, l->cap_deals * sizeof(*l->deals));
        }
        deal_sum_t *s = &l->deals[l->n_deals++];
        s->key = xstrdup(key);
        s->won = won == 1;
        s->open = won == -1;
        s->open_amount = won == -1 ? ml_bson_num(doc, "amount", 0) : 0;
        return true;
}

/* Merge the deals of one contact (sorted) into one entry each. */
static void fold_deals(lead_load_t *l) {
        size_t w = 0;
        if (l->n_deals == 0)
                return; /* deals is NULL: qsort must not see it */
        qsort(l->deals, l->n_deals, sizeof(*l->deals), cmp_deal);
        for (size_t r = 0; r < l->n_deals; r++) {
                if (w && strcmp(l->deals[w - 1].key, l->deals[r].key) == 0) {
                        l->deals[w - 1].won |= l->deals[r].won;
                        l->deals[w - 1].open += l->deals[r].open;
                        l->deals[w - 1].open_amount += l->deals[r].open_amount;
                        free(l->deals[r].key);
                        continue;
                }
                l->deals[w++] = l->deals[r];
        }
        l->n_deals = w;
}

static bool free_mail(const char *domain) {
        static const char *const known[] = {
                "gmail.com",   "googlemail.com", "yahoo.com",  "hotmail.com",
                "outlook.com", "live.com",       "icloud.com", "me.com",
                "aol.com",     "gmx.com",        "gmx.de",     "web.de",
                "proton.me",   "protonmail.com", "mail.com",   "yandex.com",
        };
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
                if (strcasecmp(domain, known[i]) == 0)
                        return true;
        return false;
}

static bool each_contact(const bson_t *doc, void *arg) {
        lead_load_t *l = arg;
        ml_dataset_t *d = l->d;
        int64_t updated = ml_bson_int(doc, "updated_ms", -1);
        if (updated > l->now)
                l->now = updated;
        grow_scored(d);
        char key[600], stage[64], domain[256];
        ml_bson_str(doc, "_id", key, sizeof(key));
        ml_bson_str(doc, "stage", stage, sizeof(stage));
        ml_bson_str(doc, "email_domain", domain, sizeof(domain));
        double *x = &d->xs[d->ns * d->p];
        /* Raw values first; the times become ages once "now" is known. */
        x[0] = ml_bson_num(doc, "opened", 0);
        x[1] = ml_bson_num(doc, "clicked", 0);
        x[2] = (double)ml_bson_int(doc, "created_ms", -1);
        x[3] = ml_bson_num(doc, "views", 0);
        x[4] = (double)ml_bson_int(doc, "last_engaged_ms", -1);
        x[5] = 0;
        x[6] = 0;
        x[7] = 0;
        x[8] = free_mail(domain) ? 1 : 0;
        d->converted[d->ns] = strcasecmp(stage, "customer") == 0;
        d->keys[d->ns] = xstrdup(key);
        d->ns++;
        return true;
}

store_err_t ml_dataset_lead(store_t *store, const char *tenant, ml_dataset_t *d,
                            char *errstr, size_t errlen) {
        lead_load_t l = {.d = d, .now = -1};
        bson_t filter;
        store_err_t err;
        dataset_begin(d, ML_LEAD_P, ml_lead_features, tenant, &filter);
        err = store_find(store, ML_DB, "deals", &filter, NULL, each_deal, &l,
                         errstr, errlen);
        if (err == STORE_OK)
                err = store_find(store, ML_DB, "contacts", &filter, NULL,
                                 each_contact, &l, errstr, errlen);
        bson_destroy(&filter);
        if (err != STORE_OK)
                goto done;
        fold_deals(&l);
        d->now_ms = l.now;
        for (size_t i = 0; i < d->ns; i++) {
                double *x = &d->xs[i * d->p];
                int64_t created = (int64_t)x[2], engaged = (int64_t)x[4];
                deal_sum_t probe = {.key = d->keys[i]}, *s;
                double opened = x[0], clicked = x[1], views = x[3];
                s = l.n_deals ? bsearch(&probe, l.deals, l.n_deals,
                                        sizeof(*l.deals), cmp_deal)
                              : NULL;
                if (s && s->won)
                        d->converted[i] = true;
                x[0] = log1p(opened);
                x[1] = log1p(clicked);
                x[2] = clicked / (opened + 1);
                x[3] = log1p(views);
                x[4] = log1p(days_between(l.now, created));
                x[5] = log1p(
                        days_between(l.now, engaged >= 0 ? engaged : created));
                x[6] = s ? s->open : 0;
                x[7] = log1p(s ? fmax(s->open_amount, 0) : 0);
                /* Every contact is a training example of the same row. */
                grow_train(d);
                x = &d->xs[i * d->p];
                memcpy(&d->xt[d->nt * d->p], x, d->p * sizeof(double));
                d->yt[d->nt++] = d->converted[i] ? 1 : 0;
        }
done:
        for (size_t i = 0; i < l.n_deals; i++)
                free(l.deals[i].key);
        free(l.deals);
        return err;
}

/* ---------------------------------------------------------------------------
 * Churn
 * ------------------------------------------------------------------------ */

typedef struct order_row {
        char *customer; /* customer_key */
        int64_t placed;
        double net, total, refunded;
} order_row_t;

typedef struct churn_load {
        order_row_t *rows;
        size_t n, cap;
        int64_t now;
} churn_load_t;

static bool each_order(const bson_t *doc, void *arg) {
        churn_load_t *c = arg;
        char key[600];
        ml_bson_str(doc, "customer_key", key, sizeof(key));
        int64_t placed = ml_bson_int(doc, "placed_ms", -1);
        if (placed > c->now)
                c->now = placed;
        if (!key[0] || placed < 0)
                return true;
        if (c->n == c->cap) {
                c->cap = c->cap ? 2 * c->cap : 1024;
                c->rows = xrealloc(c->rows, c->cap * sizeof(*c->rows));
        }
        order_row_t *r = &c->rows[c->n++];
        r->customer = xstrdup(key);
        r->placed = placed;
        r->total = ml_bson_num(doc, "total", 0);
        r->refunded = ml_bson_num(doc, "refunded", 0);
        r->net = r->total - r->refunded;
        return true;
}

static int cmp_order(const void *a, const void *b) {
        const order_row_t *x = a, *y = b;
        int c = strcmp(x->customer, y->customer);
        if (c)
                return c;
        return x->placed < y->placed ? -1 : x->placed > y->placed;
}

/* The features of a customer's orders r[0..n-1] (sorted by time) placed
 * before `at`; false when there is none. */
static bool churn_features(const order_row_t *r, size_t n, int64_t at,
                           double *x) {
        size_t k = 0;
        double net = 0, total = 0, refunded = 0;
        while (k < n && r[k].placed < at) {
                net += r[k].net;
                total += r[k].total;
                refunded += r[k].refunded;
                k++;
        }
        if (k == 0)
                return false;
        double tenure = days_between(at, r[0].placed);
        x[0] = log1p((double)k);
        x[1] = log1p(fmax(net, 0));
        x[2] = log1p(fmax(net, 0) / (double)k);
        x[3] = log1p(days_between(at, r[k - 1].placed));
        x[4] = log1p(tenure);
        x[5] = total > 0 ? fmin(fmax(refunded / total, 0), 1) : 0;
        x[6] = (double)k / fmax(tenure, 30) * 30;
        return true;
}

store_err_t ml_dataset_churn(store_t *store, const char *tenant, int churn_days,
                             ml_dataset_t *d, char *errstr, size_t errlen) {
        churn_load_t c = {.now = -1};
        bson_t filter;
        store_err_t err;
        dataset_begin(d, ML_CHURN_P, ml_churn_features, tenant, &filter);
        err = store_find(store, ML_DB, "orders", &filter, NULL, each_order, &c,
                         errstr, errlen);
        bson_destroy(&filter);
        if (err != STORE_OK)
                goto done;
        if (c.n)
                qsort(c.rows, c.n, sizeof(*c.rows), cmp_order);
        d->now_ms = c.now;
        int64_t cutoff = c.now - (int64_t)churn_days * 86400000;
        for (size_t i = 0; i < c.n;) {
                size_t j = i;
                while (j < c.n &&
                       strcmp(c.rows[j].customer, c.rows[i].customer) == 0)
                        j++;
                grow_scored(d);
                grow_train(d);
                /* Scored as of now (the day after the latest order). */
                churn_features(&c.rows[i], j - i, c.now + 1,
                               &d->xs[d->ns * d->p]);
                d->keys[d->ns] = xstrdup(c.rows[i].customer);
                d->converted[d->ns] = false;
                d->ns++;
                /* A training example when it was a customer by the cutoff:
                 * churned when no order came after it. */
                if (churn_features(&c.rows[i], j - i, cutoff,
                                   &d->xt[d->nt * d->p])) {
                        d->yt[d->nt] = c.rows[j - 1].placed < cutoff ? 1 : 0;
                        d->nt++;
                }
                i = j;
        }
done:
        for (size_t i = 0; i < c.n; i++)
                free(c.rows[i].customer);
        free(c.rows);
        return err;
}
