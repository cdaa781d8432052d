/*
 * insights.c - the brain modules: rules that watch the projections when a
 * tenant's day closes and raise insights, each saying which numbers
 * triggered it; the insights list; monthly budgets.
 *
 * Modules (over the week ending on the closed day, against the week
 * before; spend under insight_min_spend in either week is too little to
 * judge):
 *   roas_change        a channel's platform ROAS moved insight_change_pct
 *                      or more (down: warning, up: info)
 *   cpa_change         a channel's CPA moved as much (up: warning)
 *   spend_no_conversions  a channel spent and converted nothing (warning)
 *   pacing             month-to-date spend projected over the month
 *                      against a budget, outside pacing_tolerance_pct
 *   top_campaign, bottom_campaign  the best and worst campaigns by ROAS
 * Money stays per currency: channels and budgets are judged in theirs.
 *
 * insights {_id: "ins_<hash of tenant, module, currency, provider,
 * campaign, day>", tenant, module, severity, title, metric, provider,
 * campaign_id, currency, numbers: {...}, period: {from, to}, raised_by,
 * created_ms}. The id is the same for the same finding, so an insight is
 * raised once; the event that raised it (raised_by) raises it again when
 * delivered again, with the same message id.
 * budgets {_id: "<tenant>|<currency>|<provider or all>", tenant, currency,
 * provider, monthly_minor, updated_ms}.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "analytics_internal.h"
#include "log.h"

#define INSIGHTS_COLL "insights"
#define BUDGETS_COLL "budgets"
#define INSIGHT_NUMBERS 6

typedef struct insight {
        const char *module, *severity, *metric;
        char title[256];
        char provider[40], campaign[136], currency[8];
        const char *names[INSIGHT_NUMBERS];
        double values[INSIGHT_NUMBERS];
        size_t n;
        int64_t from, to;
} insight_t;

static void insight__num(insight_t *in, const char *name, double v) {
        if (in->n < INSIGHT_NUMBERS) {
                in->names[in->n] = name;
                in->values[in->n++] = v;
        }
}

static void insight__id(const char *tenant, const insight_t *in, char out[24]) {
        char seed[512], key[17], to[CALTIME_DATE_SIZE];
        caltime_format_date(in->to, to);
        snprintf(seed, sizeof(seed), "%s|%s|%s|%s|%s|%s", tenant, in->module,
                 in->currency, in->provider, in->campaign, to);
        rec_key(slice_of(seed), key);
        snprintf(out, 24, "ins_%s", key);
}

static void insight__pack(msgpack_packer *pk, const char *id,
                          const insight_t *in) {
        char f[CALTIME_DATE_SIZE], t[CALTIME_DATE_SIZE];
        size_t n = 8 + (in->provider[0] ? 1 : 0) + (in->campaign[0] ? 1 : 0);
        caltime_format_date(in->from, f);
        caltime_format_date(in->to, t);
        msgpack_pack_map(pk, n);
        mp_pack_kv_str(pk, "insight_id", id);
        mp_pack_kv_str(pk, "module", in->module);
        mp_pack_kv_str(pk, "severity", in->severity);
        mp_pack_kv_str(pk, "title", in->title);
        mp_pack_kv_str(pk, "metric", in->metric);
        if (in->provider[0])
                mp_pack_kv_str(pk, "provider", in->provider);
        if (in->campaign[0])
                mp_pack_kv_str(pk, "campaign_id", in->campaign);
        mp_pack_kv_str(pk, "currency", in->currency);
        codec_pack_str(pk, "numbers");
        msgpack_pack_map(pk, in->n);
        for (size_t i = 0; i < in->n; i++) {
                codec_pack_str(pk, in->names[i]);
                msgpack_pack_double(pk, in->values[i]);
        }
        codec_pack_str(pk, "period");
        msgpack_pack_map(pk, 2);
        mp_pack_kv_str(pk, "from", f);
        mp_pack_kv_str(pk, "to", t);
}

/* Keep the insight; publish it when it is new, or when this event raised
 * it before (a redelivery). */
static store_err_t insight__raise(rt_ctx_t *ctx, const char *tenant,
                                  const insight_t *in, char *errstr,
                                  size_t errlen) {
        char id[24], f[CALTIME_DATE_SIZE], t[CALTIME_DATE_SIZE];
        bson_t doc, numbers, period;
        store_err_t err;
        bool publish = false;
        const env_t *env = rt_env(ctx);
        insight__id(tenant, in, id);
        caltime_format_date(in->from, f);
        caltime_format_date(in->to, t);
        bson_init(&doc);
        BSON_APPEND_UTF8(&doc, "_id", id);
        BSON_APPEND_UTF8(&doc, "tenant", tenant);
        BSON_APPEND_UTF8(&doc, "module", in->module);
        BSON_APPEND_UTF8(&doc, "severity", in->severity);
        BSON_APPEND_UTF8(&doc, "title", in->title);
        BSON_APPEND_UTF8(&doc, "metric", in->metric);
        BSON_APPEND_UTF8(&doc, "provider", in->provider);
        BSON_APPEND_UTF8(&doc, "campaign_id", in->campaign);
        BSON_APPEND_UTF8(&doc, "currency", in->currency);
        BSON_APPEND_DOCUMENT_BEGIN(&doc, "numbers", &numbers);
        for (size_t i = 0; i < in->n; i++)
                BSON_APPEND_DOUBLE(&numbers, in->names[i], in->values[i]);
        bson_append_document_end(&doc, &numbers);
        BSON_APPEND_DOCUMENT_BEGIN(&doc, "period", &period);
        BSON_APPEND_UTF8(&period, "from", f);
        BSON_APPEND_UTF8(&period, "to", t);
        bson_append_document_end(&doc, &period);
        bson_append_utf8(&doc, "raised_by", -1, env->id.ptr, (int)env->id.len);
        BSON_APPEND_INT64(&doc, "created_ms", (int64_t)clock_wall_ms());
        err = store_insert(rt_store(ctx), rt_db(ctx), INSIGHTS_COLL, &doc,
                           errstr, errlen);
        bson_destroy(&doc);
        if (err == STORE_OK) {
                publish = true;
        } else if (err == STORE_DUPLICATE) {
                bson_t filter, old;
                bson_iter_t it;
                bson_init(&filter);
                BSON_APPEND_UTF8(&filter, "_id", id);
                err = store_find_one(rt_store(ctx), rt_db(ctx), INSIGHTS_COLL,
                                     &filter, NULL, &old, errstr, errlen);
                bson_destroy(&filter);
                if (err != STORE_OK)
                        return err == STORE_NOT_FOUND ? STORE_OK : err;
                publish = bson_iter_init_find(&it, &old, "raised_by") &&
                          BSON_ITER_HOLDS_UTF8(&it) &&
                          slice_eq(env->id, bson_iter_utf8(&it, NULL));
                bson_destroy(&old);
        } else {
                return err;
        }
        if (publish) {
                msgpack_sbuffer sb;
                msgpack_packer pk;
                msgpack_sbuffer_init(&sb);
                msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                insight__pack(&pk, id, in);
                rt_emit(ctx, "analytics.insight.raised", env->tenant, &sb);
                msgpack_sbuffer_destroy(&sb);
        }
        return STORE_OK;
}

/* ---------------------------------------------------------------------------
 * The modules
 * ------------------------------------------------------------------------ */

typedef struct brain {
        rt_ctx_t *ctx;
        const aview_t *v;
        const analytics_settings_t *set;
        int64_t day;
        query_result_t *cur, *prev, *camp, *mtd;
        store_err_t err;
        char *errstr;
        size_t errlen;
} brain_t;

static const measures_t *brain__find(const query_result_t *r,
                                     const char *currency,
                                     const char *provider) {
        for (size_t i = 0; i < query_rows(r); i++) {
                const char *c, *p;
                const measures_t *m = query_row(r, i, &c, &p, NULL, NULL);
                if (strcmp(c, currency) == 0 && strcmp(p, provider) == 0)
                        return m;
        }
        return NULL;
}

static void brain__raise(brain_t *b, insight_t *in) {
        if (b->err == STORE_OK)
                b->err = insight__raise(b->ctx, b->v->tenant, in, b->errstr,
                                        b->errlen);
}

static void brain__week(brain_t *b, insight_t *in, const char *module,
                        const char *metric, const char *currency,
                        const char *provider) {
        memset(in, 0, sizeof(*in));
        in->module = module;
        in->metric = metric;
        in->from = b->day - 6;
        in->to = b->day;
        snprintf(in->currency, sizeof(in->currency), "%s", currency);
        snprintf(in->provider, sizeof(in->provider), "%s", provider);
}

/* roas_change, cpa_change, spend_no_conversions per channel. */
static void brain__channels(brain_t *b) {
        const double min = b->set->insight_min_spend;
        const double pct = b->set->insight_change_pct;
        const metric_def_t *roas = query_metric("roas", 4),
                           *cpa = query_metric("cpa", 3);
        for (size_t i = 0; i < query_rows(b->cur); i++) {
                const char *c, *p;
                const measures_t *m = query_row(b->cur, i, &c, &p, NULL, NULL);
                const measures_t *o = brain__find(b->prev, c, p);
                insight_t in;
                double now, before;
                if ((double)m->spend < min)
                        continue;
                if (m->conversions == 0) {
                        brain__week(b, &in, "spend_no_conversions",
                                    "conversions", c, p);
                        in.severity = "warning";
                        snprintf(in.title, sizeof(in.title),
                                 "%s spent %.2f %s in 7 days with no "
                                 "conversions",
                                 p, (double)m->spend / 100.0, c);
                        insight__num(&in, "spend_minor", (double)m->spend);
                        insight__num(&in, "conversions", 0);
                        insight__num(&in, "clicks", (double)m->clicks);
                        brain__raise(b, &in);
                        continue;
                }
                if (!o || (double)o->spend < min)
                        continue;
                if (query_value(roas, m, &now) &&
                    query_value(roas, o, &before) && before > 0) {
                        double change = (now - before) / before * 100.0;
                        if (fabs(change) >= pct) {
                                brain__week(b, &in, "roas_change", "roas", c,
                                            p);
                                in.severity = change < 0 ? "warning" : "info";
                                snprintf(in.title, sizeof(in.title),
                                         "ROAS of %s %s %.0f%% week over "
                                         "week (%.2f to %.2f)",
                                         p, change < 0 ? "fell" : "rose",
                                         fabs(change), before, now);
                                insight__num(&in, "roas", now);
                                insight__num(&in, "previous_roas", before);
                                insight__num(&in, "change_pct", change);
                                insight__num(&in, "spend_minor",
                                             (double)m->spend);
                                insight__num(&in, "previous_spend_minor",
                                             (double)o->spend);
                                brain__raise(b, &in);
                        }
                }
                if (query_value(cpa, m, &now) && query_value(cpa, o, &before) &&
                    before > 0) {
                        double change = (now - before) / before * 100.0;
                        if (fabs(change) >= pct) {
                                brain__week(b, &in, "cpa_change", "cpa", c, p);
                                in.severity = change > 0 ? "warning" : "info";
                                snprintf(in.title, sizeof(in.title),
                                         "CPA of %s %s %.0f%% week over "
                                         "week",
                                         p, change > 0 ? "rose" : "fell",
                                         fabs(change));
                                insight__num(&in, "cpa_minor", now);
                                insight__num(&in, "previous_cpa_minor", before);
                                insight__num(&in, "change_pct", change);
                                insight__num(&in, "spend_minor",
                                             (double)m->spend);
                                brain__raise(b, &in);
                        }
                }
        }
}

typedef struct ranked {
        const char *currency, *provider, *campaign, *name;
        double roas;
        const measures_t *m;
} ranked_t;

static int ranked__cmp(const void *pa, const void *pb) {
        const ranked_t *a = pa, *b = pb;
        int c = strcmp(a->currency, b->currency);
        if (c)
                return c;
        if (a->roas != b->roas)
                return a->roas > b->roas ? -1 : 1;
        c = strcmp(a->provider, b->provider);
        return c ? c : strcmp(a->campaign, b->campaign);
}

static void brain__campaign(brain_t *b, const ranked_t *r, bool top, int rank) {
        insight_t in;
        brain__week(b, &in, top ? "top_campaign" : "bottom_campaign", "roas",
                    r->currency, r->provider);
        snprintf(in.campaign, sizeof(in.campaign), "%s", r->campaign);
        in.severity = top ? "info" : "warning";
        snprintf(in.title, sizeof(in.title), "%s campaign #%d by ROAS: %.120s",
                 top ? "Top" : "Bottom", rank,
                 r->name[0] ? r->name : r->campaign);
        insight__num(&in, "roas", r->roas);
        insight__num(&in, "spend_minor", (double)r->m->spend);
        insight__num(&in, "conversion_value_minor",
                     (double)r->m->conversion_value);
        insight__num(&in, "rank", rank);
        brain__raise(b, &in);
}

/* top_campaign and bottom_campaign per currency. */
static void brain__campaigns(brain_t *b) {
        size_t n = query_rows(b->camp), k = 0;
        ranked_t *r = xcalloc(n ? n : 1, sizeof(*r));
        const metric_def_t *roas = query_metric("roas", 4);
        for (size_t i = 0; i < n; i++) {
                ranked_t *x = &r[k];
                x->m = query_row(b->camp, i, &x->currency, &x->campaign,
                                 &x->provider, &x->name);
                if ((double)x->m->spend >= b->set->insight_min_spend &&
                    query_value(roas, x->m, &x->roas))
                        k++;
        }
        qsort(r, k, sizeof(*r), ranked__cmp);
        for (size_t s = 0; s < k;) {
                size_t e = s, len;
                int top;
                while (e < k && strcmp(r[e].currency, r[s].currency) == 0)
                        e++;
                len = e - s;
                top = (int)(len < (size_t)b->set->top_campaigns * 2
                                    ? len / 2
                                    : (size_t)b->set->top_campaigns);
                for (int i = 0; i < top; i++) {
                        brain__campaign(b, &r[s + (size_t)i], true, i + 1);
                        brain__campaign(b, &r[e - 1 - (size_t)i], false, i + 1);
                }
                s = e;
        }
        free(r);
}

/* pacing: each budget against month-to-date spend in its currency (one
 * provider's or all). */
static bool brain__budget(const bson_t *doc, void *arg) {
        brain_t *b = arg;
        bson_iter_t it;
        char currency[8] = "", provider[40] = "";
        int64_t budget = 0, spend = 0;
        int64_t start = caltime_month_start(b->day);
        double elapsed = (double)(b->day - start + 1);
        double length = caltime_month_length(b->day), projected, pace;
        double tol = b->set->pacing_tolerance_pct / 100.0;
        insight_t in;
        if (bson_iter_init_find(&it, doc, "currency") &&
            BSON_ITER_HOLDS_UTF8(&it))
                snprintf(currency, sizeof(currency), "%s",
                         bson_iter_utf8(&it, NULL));
        if (bson_iter_init_find(&it, doc, "provider") &&
            BSON_ITER_HOLDS_UTF8(&it))
                snprintf(provider, sizeof(provider), "%s",
                         bson_iter_utf8(&it, NULL));
        if (bson_iter_init_find(&it, doc, "monthly_minor") &&
            BSON_ITER_HOLDS_INT64(&it))
                budget = bson_iter_int64(&it);
        else if (bson_iter_init_find(&it, doc, "monthly_minor") &&
                 BSON_ITER_HOLDS_INT32(&it))
                budget = bson_iter_int32(&it);
        if (budget <= 0 || !currency[0])
                return true;
        for (size_t i = 0; i < query_rows(b->mtd); i++) {
                const char *c, *p;
                const measures_t *m = query_row(b->mtd, i, &c, &p, NULL, NULL);
                if (strcmp(c, currency) == 0 &&
                    (strcmp(provider, "all") == 0 || strcmp(p, provider) == 0))
                        spend += m->spend;
        }
        projected = (double)spend * length / elapsed;
        pace = projected / (double)budget;
        if (pace <= 1 + tol && pace >= 1 - tol)
                return true;
        memset(&in, 0, sizeof(in));
        in.module = "pacing";
        in.metric = "spend";
        in.severity = pace > 1 ? "warning" : "info";
        in.from = start;
        in.to = b->day;
        snprintf(in.currency, sizeof(in.currency), "%s", currency);
        if (strcmp(provider, "all") != 0)
                snprintf(in.provider, sizeof(in.provider), "%s", provider);
        snprintf(in.title, sizeof(in.title),
                 "%s spend is on pace for %.0f%% of its monthly budget",
                 strcmp(provider, "all") ? provider : "Total", pace * 100.0);
        insight__num(&in, "budget_minor", (double)budget);
        insight__num(&in, "spend_mtd_minor", (double)spend);
        insight__num(&in, "projected_minor", round(projected));
        insight__num(&in, "pace_pct", pace * 100.0);
        insight__num(&in, "days_elapsed", elapsed);
        insight__num(&in, "days_in_month", length);
        brain__raise(b, &in);
        return b->err == STORE_OK;
}

static store_err_t brain__query(brain_t *b, query_result_t **out, dim_t dim,
                                int64_t from, int64_t to) {
        query_t q;
        memset(&q, 0, sizeof(q));
        q.metrics[q.n_metrics++] = query_metric("spend", 5);
        q.dims[q.n_dims++] = dim;
        q.from = from;
        q.to = to;
        return query_run(b->v, &q, out, b->errstr, b->errlen);
}

store_err_t insights_run(rt_ctx_t *ctx, const aview_t *v, int64_t day,
                         char *errstr, size_t errlen) {
        brain_t b;
        bson_t filter;
        memset(&b, 0, sizeof(b));
        b.ctx = ctx;
        b.v = v;
        b.set = analytics_state(ctx)->set;
        b.day = day;
        b.errstr = errstr;
        b.errlen = errlen;
        if ((b.err = brain__query(&b, &b.cur, DIM_PROVIDER, day - 6, day)) ||
            (b.err = brain__query(&b, &b.prev, DIM_PROVIDER, day - 13,
                                  day - 7)) ||
            (b.err = brain__query(&b, &b.camp, DIM_CAMPAIGN, day - 6, day)) ||
            (b.err = brain__query(&b, &b.mtd, DIM_PROVIDER,
                                  caltime_month_start(day), day)))
                goto out;
        brain__channels(&b);
        brain__campaigns(&b);
        if (b.err == STORE_OK) {
                store_err_t err;
                bson_init(&filter);
                BSON_APPEND_UTF8(&filter, "tenant", v->tenant);
                err = store_find(rt_store(ctx), rt_db(ctx), BUDGETS_COLL,
                                 &filter, NULL, brain__budget, &b, errstr,
                                 errlen);
                bson_destroy(&filter);
                if (b.err == STORE_OK)
                        b.err = err;
        }
out:
        query_result_free(b.cur);
        query_result_free(b.prev);
        query_result_free(b.camp);
        query_result_free(b.mtd);
        return b.err;
}

/* ---------------------------------------------------------------------------
 * Routes
 * ------------------------------------------------------------------------ */

/* {key: [the list]} */
static void list__reply(rt_ctx_t *ctx, const char *key, const alist_t *l) {
        msgpack_packer *pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 1);
        codec_pack_str(pk, key);
        alist_pack(pk, l);
}

handler_result_t insights_list(rt_ctx_t *ctx, const msgpack_object *body) {
        aview_t v;
        handler_result_t res;
        static const char *const skip[] = {"_id", "tenant", "raised_by", NULL};
        alist_t l;
        bson_t filter, opts, sort, range;
        slice_t module = mp_str(body, "module"),
                severity = mp_str(body, "severity");
        slice_t from = mp_str(body, "from"), to = mp_str(body, "to");
        int64_t limit = 100, day;
        char err[256];
        store_err_t serr;
        if (!analytics_view(ctx, SCHEMA_ROLE_VIEWER, &v, &res))
                return res;
        mp_int(body, "limit", &limit);
        if (limit < 1 || limit > 500) {
                analytics_bad_field(ctx, "limit", "must be 1 to 500");
                return HANDLER_OK;
        }
        if ((from.len && !caltime_parse_date(from.ptr, from.len, &day)) ||
            (to.len && !caltime_parse_date(to.ptr, to.len, &day))) {
                analytics_bad_field(ctx, from.len ? "from" : "to",
                                    "must be a date YYYY-MM-DD");
                return HANDLER_OK;
        }
        bson_init(&filter);
        BSON_APPEND_UTF8(&filter, "tenant", v.tenant);
        if (module.len)
                bson_append_utf8(&filter, "module", -1, module.ptr,
                                 (int)module.len);
        if (severity.len)
                bson_append_utf8(&filter, "severity", -1, severity.ptr,
                                 (int)severity.len);
        if (from.len || to.len) {
                BSON_APPEND_DOCUMENT_BEGIN(&filter, "period.to", &range);
                if (from.len)
                        bson_append_utf8(&range, "$gte", -1, from.ptr,
                                         (int)from.len);
                if (to.len)
                        bson_append_utf8(&range, "$lte", -1, to.ptr,
                                         (int)to.len);
                bson_append_document_end(&filter, &range);
        }
        bson_init(&opts);
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
        BSON_APPEND_INT32(&sort, "period.to", -1);
        BSON_APPEND_INT32(&sort, "_id", 1);
        bson_append_document_end(&opts, &sort);
        BSON_APPEND_INT64(&opts, "limit", limit);
        alist_init(&l, "insight_id", skip);
        serr = store_find(rt_store(ctx), rt_db(ctx), INSIGHTS_COLL, &filter,
                          &opts, alist_add, &l, err, sizeof(err));
        bson_destroy(&filter);
        bson_destroy(&opts);
        if (serr == STORE_OK)
                list__reply(ctx, "insights", &l);
        alist_deinit(&l);
        return serr == STORE_OK ? HANDLER_OK
                                : analytics_store_failed(ctx, serr, err);
}

handler_result_t budgets_set(rt_ctx_t *ctx, const msgpack_object *body) {
        aview_t v;
        handler_result_t res;
        slice_t currency = mp_str(body, "currency");
        slice_t provider = mp_str(body, "provider");
        int64_t monthly = -1;
        char id[REC_ID_MAX], err[256];
        bson_t filter, update, set;
        store_err_t serr;
        msgpack_packer *pk;
        if (!analytics_view(ctx, SCHEMA_ROLE_ADMIN, &v, &res))
                return res;
        if (!mp_int(body, "monthly_minor", &monthly) || monthly < 0) {
                analytics_bad_field(ctx, "monthly_minor",
                                    "must be a non-negative integer");
                return HANDLER_OK;
        }
        if (!provider.len)
                provider = slice_of("all");
        {
                slice_t parts[3] = {slice_of(v.tenant), currency, provider};
                rec_id(id, 3, parts);
        }
        bson_init(&filter);
        BSON_APPEND_UTF8(&filter, "_id", id);
        bson_init(&update);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_UTF8(&set, "tenant", v.tenant);
        bson_append_utf8(&set, "currency", -1, currency.ptr, (int)currency.len);
        bson_append_utf8(&set, "provider", -1, provider.ptr, (int)provider.len);
        BSON_APPEND_INT64(&set, "monthly_minor", monthly);
        BSON_APPEND_INT64(&set, "updated_ms", (int64_t)clock_wall_ms());
        bson_append_document_end(&update, &set);
        serr = store_update(rt_store(ctx), rt_db(ctx), BUDGETS_COLL, &filter,
                            &update, STORE_UPSERT, NULL, err, sizeof(err));
        bson_destroy(&filter);
        bson_destroy(&update);
        if (serr != STORE_OK)
                return analytics_store_failed(ctx, serr, err);
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 3);
        codec_pack_str(pk, "currency");
        mp_pack_slice(pk, currency);
        codec_pack_str(pk, "provider");
        mp_pack_slice(pk, provider);
        mp_pack_kv_int(pk, "monthly_minor", monthly);
        return HANDLER_OK;
}

handler_result_t budgets_list(rt_ctx_t *ctx, const msgpack_object *body) {
        static const char *const skip[] = {"_id", "tenant", NULL};
        aview_t v;
        handler_result_t res;
        alist_t l;
        bson_t filter;
        char err[256];
        store_err_t serr;
        (void)body;
        if (!analytics_view(ctx, SCHEMA_ROLE_VIEWER, &v, &res))
                return res;
        bson_init(&filter);
        BSON_APPEND_UTF8(&filter, "tenant", v.tenant);
        alist_init(&l, NULL, skip);
        serr = store_find(rt_store(ctx), rt_db(ctx), BUDGETS_COLL, &filter,
                          NULL, alist_add, &l, err, sizeof(err));
        bson_destroy(&filter);
        if (serr == STORE_OK)
                list__reply(ctx, "budgets", &l);
        alist_deinit(&l);
        return serr == STORE_OK ? HANDLER_OK
                                : analytics_store_failed(ctx, serr, err);
}
