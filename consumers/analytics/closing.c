/*
 * closing.c - analytics.day.closed: a tenant's day is complete across its
 * connected providers.
 *
 * A connection's data covers day D once it completed a sync at least
 * close_lag_h hours after D ended in UTC (12 h by default: D has then
 * ended in every time zone an account can be in, down to UTC-12). Counted
 * are the connections whose latest event says connected (or refreshed);
 * invalidated and disconnected ones are not syncing and do not hold days
 * back. The tenant's days are closed through the least day every counted
 * connection covers; a connection that never completed a sync holds
 * everything back.
 *
 * What was announced is kept per tenant in day_closed {_id: tenant,
 * through, from, by: the event id that announced it, providers}. An event
 * that moves `through` forward announces each new day (at most
 * close_max_days of them: a first sync after a long backfill announces the
 * latest days only) and runs the insights of the last one; the same event
 * delivered again announces the same days again with the same message ids.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "analytics_internal.h"
#include "log.h"

#define CLOSING_COLL "day_closed"
#define CLOSING_MAX_CONN 256

typedef struct conn {
        char key[17];
        char provider[40];
        bool connected;
        int64_t synced_ms; /* 0: never */
} conn_t;

typedef struct conns {
        conn_t c[CLOSING_MAX_CONN];
        size_t n;
} conns_t;

static conn_t *conns__get(conns_t *cs, const char *key) {
        for (size_t i = 0; i < cs->n; i++)
                if (strcmp(cs->c[i].key, key) == 0)
                        return &cs->c[i];
        if (cs->n == CLOSING_MAX_CONN)
                return NULL;
        memset(&cs->c[cs->n], 0, sizeof(cs->c[0]));
        snprintf(cs->c[cs->n].key, sizeof(cs->c[0].key), "%s", key);
        return &cs->c[cs->n++];
}

/* c: "<ms>|<event id>|<status>|<provider>|<connection>";
 * s: "<ms>|<provider>|<connection>". */
static void conns__read(conns_t *cs, const bson_t *doc, const char *field,
                        bool sync) {
        bson_iter_t it, sub;
        if (!bson_iter_init_find(&it, doc, field) ||
            !BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &sub))
                return;
        while (bson_iter_next(&sub)) {
                rec_fields_t fs;
                uint32_t len = 0;
                const char *s;
                conn_t *c;
                if (!BSON_ITER_HOLDS_UTF8(&sub))
                        continue;
                s = bson_iter_utf8(&sub, &len);
                if (!rec_split((slice_t){s, len}, &fs) ||
                    fs.n < (sync ? 3u : 5u) ||
                    !(c = conns__get(cs, bson_iter_key(&sub))))
                        continue;
                if (sync) {
                        c->synced_ms = rec_atoi(fs.f[0]);
                } else {
                        c->connected = strcmp(fs.f[2], "connected") == 0;
                        snprintf(c->provider, sizeof(c->provider), "%s",
                                 fs.f[3]);
                }
        }
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The closed-through day and the providers counted; false when no day is
 * closed (no connection, or one never synced). */
static bool closing__through(const analytics_settings_t *set, const conns_t *cs,
                             int64_t *through, const char **providers,
                             size_t *n_providers) {
        bool any = false;
        *through = INT64_MAX;
        *n_providers = 0;
        for (size_t i = 0; i < cs->n; i++) {
                const conn_t *c = &cs->c[i];
                bool dup = false;
                int64_t covered;
                if (!c->connected || !c->provider[0])
                        continue;
                if (!c->synced_ms)
                        return false;
                covered =
                        caltime_day_of_ms(c->synced_ms -
                                          (int64_t)set->close_lag_h * 3600000) -
                        1;
                if (covered < *through)
                        *through = covered;
                any = true;
                for (size_t k = 0; k < *n_providers; k++)
                        dup = dup || strcmp(providers[k], c->provider) == 0;
                if (!dup)
                        providers[(*n_providers)++] = c->provider;
        }
        qsort(providers, *n_providers, sizeof(*providers), cmp_str);
        return any;
}

static void closing__emit(rt_ctx_t *ctx, int64_t from, int64_t through,
                          const char *const *providers, size_t n) {
        for (int64_t d = from; d <= through; d++) {
                msgpack_sbuffer sb;
                msgpack_packer pk;
                char day[CALTIME_DATE_SIZE];
                caltime_format_date(d, day);
                msgpack_sbuffer_init(&sb);
                msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                msgpack_pack_map(&pk, 2);
                mp_pack_kv_str(&pk, "day", day);
                codec_pack_str(&pk, "providers");
                msgpack_pack_array(&pk, n);
                for (size_t i = 0; i < n; i++)
                        codec_pack_str(&pk, providers[i]);
                rt_emit(ctx, "analytics.day.closed", rt_env(ctx)->tenant, &sb);
                msgpack_sbuffer_destroy(&sb);
        }
}

static const char *closing__str(const bson_t *doc, const char *key) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
                return bson_iter_utf8(&it, NULL);
        return "";
}

/* The ledger's fields (without _id). */
static void closing__fields(rt_ctx_t *ctx, bson_t *doc, int64_t from,
                            int64_t through, const char *const *providers,
                            size_t n) {
        char f[CALTIME_DATE_SIZE], t[CALTIME_DATE_SIZE], key[24];
        bson_t arr;
        caltime_format_date(from, f);
        caltime_format_date(through, t);
        BSON_APPEND_UTF8(doc, "from", f);
        BSON_APPEND_UTF8(doc, "through", t);
        bson_append_utf8(doc, "by", -1, rt_env(ctx)->id.ptr,
                         (int)rt_env(ctx)->id.len);
        BSON_APPEND_ARRAY_BEGIN(doc, "providers", &arr);
        for (size_t i = 0; i < n; i++) {
                snprintf(key, sizeof(key), "%zu", i);
                BSON_APPEND_UTF8(&arr, key, providers[i]);
        }
        bson_append_array_end(doc, &arr);
        BSON_APPEND_INT64(doc, "at_ms", (int64_t)clock_wall_ms());
}

/* Record the new range (a compare-and-set on the old one); *won is false
 * when another writer moved it first. */
static store_err_t closing__record(rt_ctx_t *ctx, const char *tenant,
                                   const char *old, int64_t from,
                                   int64_t through,
                                   const char *const *providers, size_t n,
                                   bool *won, char *errstr, size_t errlen) {
        bson_t filter, doc, update;
        store_err_t err;
        int64_t matched = 0;
        *won = false;
        if (!old) {
                bson_init(&doc);
                BSON_APPEND_UTF8(&doc, "_id", tenant);
                BSON_APPEND_UTF8(&doc, "tenant", tenant);
                closing__fields(ctx, &doc, from, through, providers, n);
                err = store_insert(rt_store(ctx), rt_db(ctx), CLOSING_COLL,
                                   &doc, errstr, errlen);
                bson_destroy(&doc);
                if (err == STORE_DUPLICATE)
                        return STORE_OK;
                *won = err == STORE_OK;
                return err;
        }
        bson_init(&filter);
        BSON_APPEND_UTF8(&filter, "_id", tenant);
        BSON_APPEND_UTF8(&filter, "through", old);
        bson_init(&update);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &doc);
        closing__fields(ctx, &doc, from, through, providers, n);
        bson_append_document_end(&update, &doc);
        err = store_update(rt_store(ctx), rt_db(ctx), CLOSING_COLL, &filter,
                           &update, 0, &matched, errstr, errlen);
        bson_destroy(&filter);
        bson_destroy(&update);
        if (err == STORE_NOT_FOUND)
                return STORE_OK;
        *won = err == STORE_OK && matched > 0;
        return err;
}

/* The providers a ledger announced with (pointers into ledger). */
static size_t closing__ledger_providers(const bson_t *ledger, const char **out,
                                        size_t max) {
        bson_iter_t it, arr;
        size_t n = 0;
        if (!bson_iter_init_find(&it, ledger, "providers") ||
            !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &arr))
                return 0;
        while (bson_iter_next(&arr) && n < max)
                if (BSON_ITER_HOLDS_UTF8(&arr))
                        out[n++] = bson_iter_utf8(&arr, NULL);
        return n;
}

handler_result_t closing_check(rt_ctx_t *ctx, const aview_t *v) {
        const analytics_settings_t *set = analytics_state(ctx)->set;
        conns_t *cs = xcalloc(1, sizeof(*cs));
        const char *providers[CLOSING_MAX_CONN];
        size_t n_providers = 0;
        char coll[PROJECTION_COLL_MAX], err[256];
        bson_t filter, doc, ledger;
        bool have_ledger = false, won = false;
        int64_t through, from, old = INT64_MIN;
        handler_result_t res = HANDLER_OK;
        store_err_t serr;

        aview_coll(v, PROJ_CONNECTIONS, "connections", coll, sizeof(coll));
        bson_init(&filter);
        BSON_APPEND_UTF8(&filter, "_id", v->tenant);
        serr = store_find_one(v->store, v->db, coll, &filter, NULL, &doc, err,
                              sizeof(err));
        if (serr == STORE_NOT_FOUND)
                goto out;
        if (serr != STORE_OK)
                goto failed;
        conns__read(cs, &doc, "c", false);
        conns__read(cs, &doc, "s", true);
        bson_destroy(&doc);
        if (!closing__through(set, cs, &through, providers, &n_providers))
                goto out;
        serr = store_find_one(v->store, v->db, CLOSING_COLL, &filter, NULL,
                              &ledger, err, sizeof(err));
        if (serr != STORE_OK && serr != STORE_NOT_FOUND)
                goto failed;
        have_ledger = serr == STORE_OK;
        if (have_ledger) {
                const char *by = closing__str(&ledger, "by");
                const char *t = closing__str(&ledger, "through");
                const char *f = closing__str(&ledger, "from");
                int64_t lf, lt;
                if (slice_eq(rt_env(ctx)->id, by) &&
                    caltime_parse_date(f, strlen(f), &lf) &&
                    caltime_parse_date(t, strlen(t), &lt)) {
                        /* Delivered again: the same announcements. */
                        n_providers = closing__ledger_providers(
                                &ledger, providers, CLOSING_MAX_CONN);
                        closing__emit(ctx, lf, lt, providers, n_providers);
                        if (insights_run(ctx, v, lt, err, sizeof(err)) !=
                            STORE_OK)
                                goto failed;
                        goto out;
                }
                if (!caltime_parse_date(t, strlen(t), &old))
                        old = INT64_MIN;
        }
        if (old != INT64_MIN && through <= old)
                goto out;
        from = old != INT64_MIN ? old + 1 : through;
        if (through - from + 1 > set->close_max_days)
                from = through - set->close_max_days + 1;
        serr = closing__record(
                ctx, v->tenant,
                have_ledger ? closing__str(&ledger, "through") : NULL, from,
                through, providers, n_providers, &won, err, sizeof(err));
        if (serr != STORE_OK)
                goto failed;
        if (won) {
                char f[CALTIME_DATE_SIZE], t[CALTIME_DATE_SIZE];
                caltime_format_date(from, f);
                caltime_format_date(through, t);
                log_info("tenant %s: days %s to %s closed", v->tenant, f, t);
                closing__emit(ctx, from, through, providers, n_providers);
                if (insights_run(ctx, v, through, err, sizeof(err)) != STORE_OK)
                        goto failed;
        }
        goto out;
failed:
        log_warn("closing days of %s: %s", v->tenant, err);
        res = store_is_up(v->store) ? HANDLER_OK : HANDLER_TRANSIENT;
out:
        if (have_ledger)
                bson_destroy(&ledger);
        bson_destroy(&filter);
        free(cs);
        return res;
}
