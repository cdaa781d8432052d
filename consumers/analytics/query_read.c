/*
 * query_read.c - reading a query of the query model (query.c) from a
 * command's body: the metrics, the dimensions, the filters and the period,
 * each checked (a 400 problem naming the field for a bad value, a 422 one
 * for a rule across fields; see analytics_internal.h).
 */
#include <stdio.h>
#include <string.h>

#include "analytics_internal.h"

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
                for (size_t i = 0; i < query_n_metrics && off < sizeof(why);
                     i++)
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
