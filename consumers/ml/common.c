/*
 * common.c - what the ml group's handlers share: its metrics, civil days,
 * derived ids, reading and packing msgpack and bson, problem answers and
 * model versions (contracts in ml_internal.h).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bsonpack.h"
#include "log.h"
#include "ml_internal.h"
#include "msgid.h"

/* ---------------------------------------------------------------------------
 * Metrics
 * ------------------------------------------------------------------------ */

const ml_metric_def_t ml_metrics[ML_M_COUNT] = {
        [ML_M_SPEND] = {"spend", ML_MONEY, true},
        [ML_M_IMPRESSIONS] = {"impressions", ML_COUNT, true},
        [ML_M_CLICKS] = {"clicks", ML_COUNT, true},
        [ML_M_CONVERSIONS] = {"conversions", ML_COUNT, true},
        [ML_M_CONVERSION_VALUE] = {"conversion_value", ML_MONEY, true},
        [ML_M_ROAS] = {"roas", ML_RATIO, true},
        [ML_M_REVENUE] = {"revenue", ML_MONEY, false},
        [ML_M_ORDERS] = {"orders", ML_COUNT, false},
        [ML_M_NEW_CUSTOMERS] = {"new_customers", ML_COUNT, false},
};

int ml_metric_find(slice_t name) {
        for (int i = 0; i < ML_M_COUNT; i++)
                if (name.len == strlen(ml_metrics[i].name) &&
                    memcmp(name.ptr, ml_metrics[i].name, name.len) == 0)
                        return i;
        return -1;
}

/* ---------------------------------------------------------------------------
 * Days: Howard Hinnant's days_from_civil and civil_from_days
 * ------------------------------------------------------------------------ */

int32_t ml_day_of_civil(int y, int m, int d) {
        y -= m <= 2;
        int era = (y >= 0 ? y : y - 399) / 400;
        int yoe = y - era * 400;
        int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return (int32_t)(era * 146097 + doe - 719468);
}

void ml_day_civil(int32_t day, int *y, int *m, int *d) {
        int z = day + 719468;
        int era = (z >= 0 ? z : z - 146096) / 146097;
        int doe = z - era * 146097;
        int yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        int mp = (5 * doy + 2) / 153;
        *d = doy - (153 * mp + 2) / 5 + 1;
        *m = mp < 10 ? mp + 3 : mp - 9;
        *y = yoe + era * 400 + (*m <= 2);
}

static bool digits(const char *p, size_t n, int *out) {
        int v = 0;
        for (size_t i = 0; i < n; i++) {
                if (p[i] < '0' || p[i] > '9')
                        return false;
                v = v * 10 + (p[i] - '0');
        }
        *out = v;
        return true;
}

static int month_days(int y, int m) {
        static const int days[] = {31, 28, 31, 30, 31, 30,
                                   31, 31, 30, 31, 30, 31};
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        return m == 2 && leap ? 29 : days[m - 1];
}

bool ml_day_parse(slice_t t, int32_t *day) {
        int y, m, d;
        if (t.len != 10 || t.ptr[4] != '-' || t.ptr[7] != '-' ||
            !digits(t.ptr, 4, &y) || !digits(t.ptr + 5, 2, &m) ||
            !digits(t.ptr + 8, 2, &d) || m < 1 || m > 12 || d < 1 ||
            d > month_days(y, m))
                return false;
        *day = ml_day_of_civil(y, m, d);
        return true;
}

void ml_day_format(int32_t day, char out[ML_DAY_TEXT]) {
        int y, m, d;
        ml_day_civil(day, &y, &m, &d);
        snprintf(out, ML_DAY_TEXT, "%04u-%02u-%02u", (unsigned)y % 10000u,
                 (unsigned)m % 100u, (unsigned)d % 100u);
}

int32_t ml_day_of_ms(int64_t ms) {
        int64_t day = ms / 86400000;
        if (ms < 0 && ms % 86400000)
                day--;
        return (int32_t)day;
}

int32_t ml_today(void) {
        return ml_day_of_ms((int64_t)clock_wall_ms());
}

bool ml_time_parse(slice_t t, int64_t *ms) {
        int32_t day;
        int hh, mi, ss;
        size_t i = 19;
        int64_t frac = 0, scale = 1000, off = 0;
        if (t.len < 20 ||
            (t.ptr[10] != 'T' && t.ptr[10] != 't' && t.ptr[10] != ' ') ||
            !ml_day_parse((slice_t){t.ptr, 10}, &day) || t.ptr[13] != ':' ||
            t.ptr[16] != ':' || !digits(t.ptr + 11, 2, &hh) ||
            !digits(t.ptr + 14, 2, &mi) || !digits(t.ptr + 17, 2, &ss) ||
            hh > 23 || mi > 59 || ss > 60)
                return false;
        if (t.ptr[i] == '.') {
                i++;
                size_t start = i;
                while (i < t.len && t.ptr[i] >= '0' && t.ptr[i] <= '9') {
                        if (scale > 1) {
                                scale /= 10;
                                frac += (t.ptr[i] - '0') * scale;
                        }
                        i++;
                }
                if (i == start)
                        return false;
        }
        if (i == t.len - 1 && (t.ptr[i] == 'Z' || t.ptr[i] == 'z')) {
                off = 0;
        } else if (i + 6 == t.len && (t.ptr[i] == '+' || t.ptr[i] == '-') &&
                   t.ptr[i + 3] == ':') {
                int oh, om;
                if (!digits(t.ptr + i + 1, 2, &oh) ||
                    !digits(t.ptr + i + 4, 2, &om))
                        return false;
                off = (int64_t)(oh * 60 + om) * 60000;
                if (t.ptr[i] == '-')
                        off = -off;
        } else {
                return false;
        }
        *ms = (int64_t)day * 86400000 +
              (int64_t)(hh * 3600 + mi * 60 + ss) * 1000 + frac - off;
        return true;
}

void ml_time_format(int64_t ms, char out[ML_TIME_TEXT]) {
        int32_t day = ml_day_of_ms(ms);
        int64_t s = (ms - (int64_t)day * 86400000) / 1000;
        int y, m, d;
        ml_day_civil(day, &y, &m, &d);
        snprintf(out, ML_TIME_TEXT, "%04u-%02u-%02uT%02u:%02u:%02uZ",
                 (unsigned)y % 10000u, (unsigned)m % 100u, (unsigned)d % 100u,
                 (unsigned)(s / 3600) % 100u, (unsigned)(s / 60 % 60),
                 (unsigned)(s % 60));
}

/* ---------------------------------------------------------------------------
 * Tenants and ids
 * ------------------------------------------------------------------------ */

bool ml_tenant(const rt_ctx_t *ctx, char out[ML_TENANT_MAX]) {
        slice_t t = rt_env(ctx)->tenant;
        if (!t.len || t.len >= ML_TENANT_MAX || memchr(t.ptr, '|', t.len))
                return false;
        memcpy(out, t.ptr, t.len);
        out[t.len] = '\0';
        return true;
}

void ml_derive_id(char out[MSGID_TEXT_SIZE], int64_t time_ms, int n_parts,
                  const char *const *parts) {
        char seed[1024];
        size_t off = 0;
        msgid_t id;
        for (int i = 0; i < n_parts; i++) {
                int w = snprintf(seed + off, sizeof(seed) - off, "%s%s",
                                 i ? "|" : "", parts[i] ? parts[i] : "");
                if (w < 0 || (size_t)w >= sizeof(seed) - off) {
                        off = sizeof(seed) - 1;
                        break;
                }
                off += (size_t)w;
        }
        msgid_derive((uint64_t)time_ms, seed, off, &id);
        msgid_format(&id, out);
}

/* ---------------------------------------------------------------------------
 * msgpack in and out
 * ------------------------------------------------------------------------ */

bool ml_str(const msgpack_object *map, const char *key, char *out, size_t len) {
        slice_t s = codec_map_str(map, key);
        if (!s.ptr || s.len >= len)
                return false;
        memcpy(out, s.ptr, s.len);
        out[s.len] = '\0';
        return true;
}

bool ml_num(const msgpack_object *map, const char *key, double *out) {
        const msgpack_object *o = codec_map_get(map, key);
        return o && ml_obj_num(o, out);
}

bool ml_obj_num(const msgpack_object *o, double *out) {
        switch (o->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
                *out = (double)o->via.u64;
                return true;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
                *out = (double)o->via.i64;
                return true;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
                *out = o->via.f64;
                return isfinite(*out);
        default:
                return false;
        }
}

bool ml_int(const msgpack_object *map, const char *key, int64_t *out) {
        const msgpack_object *o = codec_map_get(map, key);
        if (!o)
                return false;
        if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            o->via.u64 <= (uint64_t)INT64_MAX) {
                *out = (int64_t)o->via.u64;
                return true;
        }
        if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
                *out = o->via.i64;
                return true;
        }
        return false;
}

void ml_kv_str(msgpack_packer *pk, const char *key, const char *value) {
        codec_pack_str(pk, key);
        codec_pack_str(pk, value);
}

void ml_kv_int(msgpack_packer *pk, const char *key, int64_t value) {
        codec_pack_str(pk, key);
        msgpack_pack_int64(pk, value);
}

void ml_pack_num(msgpack_packer *pk, double value) {
        if (isfinite(value))
                msgpack_pack_double(pk, value);
        else
                msgpack_pack_nil(pk);
}

void ml_kv_num(msgpack_packer *pk, const char *key, double value) {
        codec_pack_str(pk, key);
        ml_pack_num(pk, value);
}

void ml_pack_raw(msgpack_packer *pk, const void *data, size_t len) {
        if (len)
                pk->callback(pk->data, data, len);
}

void ml_pack_bson(msgpack_packer *pk, const bson_t *doc,
                  const char *const *skip) {
        bsonpack_doc(pk, doc,
                     &(bsonpack_opts_t){.skip = skip,
                                        .skip_empty = true,
                                        .dates_as_text = true});
}

double ml_bson_num(const bson_t *doc, const char *key, double def) {
        bson_iter_t it;
        if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_NUMBER(&it))
                return def;
        return bson_iter_as_double(&it);
}

int64_t ml_bson_int(const bson_t *doc, const char *key, int64_t def) {
        bson_iter_t it;
        if (!bson_iter_init_find(&it, doc, key))
                return def;
        if (BSON_ITER_HOLDS_DATE_TIME(&it))
                return bson_iter_date_time(&it);
        if (!BSON_ITER_HOLDS_NUMBER(&it))
                return def;
        return bson_iter_as_int64(&it);
}

void ml_bson_str(const bson_t *doc, const char *key, char *out, size_t len) {
        bson_iter_t it;
        uint32_t n = 0;
        const char *s;
        out[0] = '\0';
        if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_UTF8(&it))
                return;
        s = bson_iter_utf8(&it, &n);
        if (n >= len)
                n = (uint32_t)len - 1;
        memcpy(out, s, n);
        out[n] = '\0';
}

/* ---------------------------------------------------------------------------
 * Lists of documents in answers
 * ------------------------------------------------------------------------ */

void ml_list_init(ml_list_t *l, const char *id_key, const char *const *hidden) {
        memset(l, 0, sizeof(*l));
        msgpack_sbuffer_init(&l->sb);
        msgpack_packer_init(&l->pk, &l->sb, msgpack_sbuffer_write);
        l->id_key = id_key;
        l->hidden = hidden;
}

void ml_list_free(ml_list_t *l) {
        msgpack_sbuffer_destroy(&l->sb);
}

static bool list_each(const bson_t *doc, void *arg) {
        ml_list_t *l = arg;
        bson_t shown = BSON_INITIALIZER;
        if (l->rank)
                BSON_APPEND_INT64(&shown, "rank", l->rank++);
        if (l->id_key) {
                char id[700];
                ml_bson_str(doc, "_id", id, sizeof(id));
                BSON_APPEND_UTF8(&shown, l->id_key, id);
        }
        bson_concat(&shown, doc);
        ml_pack_bson(&l->pk, &shown, l->hidden);
        bson_destroy(&shown);
        l->n++;
        return true;
}

store_err_t ml_list_find(ml_list_t *l, store_t *store, const char *coll,
                         const bson_t *filter, const bson_t *opts, char *errstr,
                         size_t errlen) {
        return store_find(store, ML_DB, coll, filter, opts, list_each, l,
                          errstr, errlen);
}

void ml_list_pack(msgpack_packer *pk, const char *key, const ml_list_t *l) {
        codec_pack_str(pk, key);
        msgpack_pack_array(pk, (uint32_t)l->n);
        ml_pack_raw(pk, l->sb.data, l->sb.size);
}

void ml_find_opts(bson_t *opts, const char *sort, int dir, int64_t skip,
                  int64_t limit) {
        bson_t child;
        bson_init(opts);
        BSON_APPEND_DOCUMENT_BEGIN(opts, "sort", &child);
        BSON_APPEND_INT32(&child, sort, dir);
        BSON_APPEND_INT32(&child, "_id", 1);
        bson_append_document_end(opts, &child);
        if (skip)
                BSON_APPEND_INT64(opts, "skip", skip);
        BSON_APPEND_INT64(opts, "limit", limit);
}

/* ---------------------------------------------------------------------------
 * Problems
 * ------------------------------------------------------------------------ */

handler_result_t ml_store_failed(rt_ctx_t *ctx, store_err_t err,
                                 const char *what, const char *errstr) {
        if (store_err_transient(err))
                return HANDLER_TRANSIENT;
        log_error("ml: %s: %s", what,
                  errstr && errstr[0] ? errstr : store_strerror(err));
        rt_reply_problem(ctx, 500, "Internal error", "the store failed");
        return HANDLER_OK;
}

void ml_unprocessable(rt_ctx_t *ctx, const char *fmt, ...) {
        char detail[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof(detail), fmt, ap);
        va_end(ap);
        rt_reply_problem(ctx, 422, "Unprocessable Content", detail);
}

/* ---------------------------------------------------------------------------
 * Store
 * ------------------------------------------------------------------------ */

store_err_t ml_replace(store_t *store, const char *coll, const bson_t *filter,
                       const bson_t *doc, char *errstr, size_t errlen) {
        store_bulk_t *b = store_bulk_new(store, ML_DB, coll, true);
        store_err_t err;
        store_bulk_replace(b, filter, doc, true);
        err = store_bulk_run(b, NULL, errstr, errlen);
        store_bulk_destroy(b);
        return err;
}

/* ---------------------------------------------------------------------------
 * Model versions
 * ------------------------------------------------------------------------ */

store_err_t ml_version_next(store_t *store, const char *tenant,
                            const char *kind, slice_t source, int64_t *n,
                            char version_out[ML_VERSION_MAX], char *errstr,
                            size_t errlen) {
        char id[ML_TENANT_MAX + ML_VERSION_MAX + 2], src[MSGID_TEXT_SIZE] = "";
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, child;
        bson_t found;
        store_err_t err;
        snprintf(id, sizeof(id), "%s|%s", tenant, kind);
        if (source.len && source.len < sizeof(src))
                memcpy(src, source.ptr, source.len), src[source.len] = '\0';
        /* The same source asks again: its version stands. */
        BSON_APPEND_UTF8(&filter, "_id", id);
        if (src[0]) {
                BSON_APPEND_UTF8(&filter, "source", src);
                err = store_find_one(store, ML_DB, "heads", &filter, NULL,
                                     &found, errstr, errlen);
                if (err == STORE_OK) {
                        *n = ml_bson_int(&found, "n", 1);
                        bson_destroy(&found);
                        goto named;
                }
                if (err != STORE_NOT_FOUND)
                        goto done;
                bson_reinit(&filter);
                BSON_APPEND_UTF8(&filter, "_id", id);
        }
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$inc", &child);
        BSON_APPEND_INT64(&child, "n", 1);
        bson_append_document_end(&update, &child);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &child);
        BSON_APPEND_UTF8(&child, "tenant", tenant);
        BSON_APPEND_UTF8(&child, "kind", kind);
        BSON_APPEND_UTF8(&child, "source", src);
        bson_append_document_end(&update, &child);
        err = store_find_and_modify(store, ML_DB, "heads", &filter, NULL,
                                    &update, true, true, &found, errstr,
                                    errlen);
        if (err != STORE_OK)
                goto done;
        *n = ml_bson_int(&found, "n", 1);
        bson_destroy(&found);
named:
        snprintf(version_out, ML_VERSION_MAX, "%s/v%lld", kind, (long long)*n);
        err = STORE_OK;
done:
        bson_destroy(&filter);
        bson_destroy(&update);
        return err;
}

store_err_t ml_version_record(store_t *store, const char *tenant,
                              const char *kind, int64_t n,
                              const char *model_version, const bson_t *extra,
                              char *errstr, size_t errlen) {
        char id[ML_TENANT_MAX + ML_VERSION_MAX + 24];
        bson_t filter = BSON_INITIALIZER, doc = BSON_INITIALIZER;
        bson_t hf = BSON_INITIALIZER, hu = BSON_INITIALIZER, child;
        store_err_t err;
        snprintf(id, sizeof(id), "%s|%s|%lld", tenant, kind, (long long)n);
        BSON_APPEND_UTF8(&filter, "_id", id);
        BSON_APPEND_UTF8(&doc, "_id", id);
        BSON_APPEND_UTF8(&doc, "tenant", tenant);
        BSON_APPEND_UTF8(&doc, "kind", kind);
        /* The family: "response" of "response/EUR", "lead" of "lead". */
        bson_append_utf8(&doc, "family", -1, kind, (int)strcspn(kind, "/"));
        BSON_APPEND_INT64(&doc, "version", n);
        BSON_APPEND_UTF8(&doc, "model_version", model_version);
        BSON_APPEND_DATE_TIME(&doc, "created_at", (int64_t)clock_wall_ms());
        if (extra)
                bson_concat(&doc, extra);
        err = ml_replace(store, "models", &filter, &doc, errstr, errlen);
        if (err != STORE_OK)
                goto done;
        snprintf(id, sizeof(id), "%s|%s", tenant, kind);
        BSON_APPEND_UTF8(&hf, "_id", id);
        BSON_APPEND_DOCUMENT_BEGIN(&hu, "$set", &child);
        BSON_APPEND_UTF8(&child, "current", model_version);
        bson_append_document_end(&hu, &child);
        err = store_update(store, ML_DB, "heads", &hf, &hu, STORE_UPSERT, NULL,
                           errstr, errlen);
done:
        bson_destroy(&filter);
        bson_destroy(&doc);
        bson_destroy(&hf);
        bson_destroy(&hu);
        return err;
}
