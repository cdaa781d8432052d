/*
 * reports.c - saved report definitions (metrics, dimensions, a period,
 * filters, an optional schedule), runs of them (asynchronous: 202 and an
 * operation, whose result names the run), and the rows of a run as JSON or
 * CSV. A report is the metrics query model (query.c) over a period
 * computed when it runs. This file holds the schedules and the set-up of
 * their mail, a definition as a query, and the definitions' handlers;
 * runs, their mail and their results are in reports_run.c.
 *
 *   reports      {_id: report id, tenant, name, metrics, group_by, period:
 *                 {preset, from, to}, filters: {provider, account_id,
 *                 campaign_id, currency}, schedule: {every, hour_utc,
 *                 recipients}, created_by, created_ms}
 *   report_runs  {_id: run id (the id of the command that ran it), tenant,
 *                 report_id, from, to, columns, n_rows, truncated, rows
 *                 (msgpack array of the rows, binary), created_ms, by}
 *
 * Periods (days in UTC, the day a run happens excluded): last_7_days,
 * last_30_days, month_to_date (from the first of the month of yesterday),
 * previous_month, custom (from and to as given).
 *
 * Schedules: a report with a schedule gets a durable schedule
 * (the runtime's timer service, shared/timer.h: collection timers, id
 * "report|<report id>") that sends analytics.reports.fire every day, week or 30
 * days ("monthly" is a fixed 30-day period: the timers know fixed periods only)
 * from the next hour_utc, with its creator's tenant and roles; a fire runs the
 * report and mails its rows as CSV to the recipients through the outbox
 * (shared/outbox.h and mail.h, collection report_outbox; mail ids "<fire
 * command id>.<n>", so a redelivered fire queues nothing twice). Deleting
 * the report cancels its schedule. analytics.report.scheduled announces a
 * schedule (onboarding).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics_internal.h"
#include "log.h"

#define REPORT_OUTBOX "report_outbox"
#define DAY_MS 86400000LL

/* Unpack sb into zone, strings included: msgpack_unpack's strings point
 * into the buffer it reads, so the buffer is copied into the zone first and
 * the object outlives sb. */
static bool report__unpack(msgpack_zone *zone, const msgpack_sbuffer *sb,
                           msgpack_object *out) {
        char *copy = msgpack_zone_malloc(zone, sb->size ? sb->size : 1);
        size_t off = 0;
        if (!copy)
                return false;
        memcpy(copy, sb->data, sb->size);
        return msgpack_unpack(copy, sb->size, &off, zone, out) ==
               MSGPACK_UNPACK_SUCCESS;
}

/* ---------------------------------------------------------------------------
 * Schedules and mail
 * ------------------------------------------------------------------------ */

handler_result_t reports_start(analytics_state_t *st, runtime_t *rt,
                               char *errstr, size_t errlen) {
        const mail_settings_t *ms = runtime_settings(rt, &mail_settings);
        mail_opts_t mo = {ms->base_url, ms->api_key, ms->from, "analytics"};
        outbox_opts_t oo = {0};
        bool bus = runtime_bus(rt) != NULL; /* none in the harness */
        /* The runtime's timer service (group_def_t.timers): schedules are
         * set here and fire as analytics.reports.fire commands. */
        st->timers = runtime_timers(rt);
        if (!st->timers) {
                snprintf(errstr, errlen, "no timer service");
                return HANDLER_PERMANENT;
        }
        if (!(st->mail = mail_new(&mo, errstr, errlen)))
                return HANDLER_PERMANENT;
        st->mail_kinds[0] = mail_kind(st->mail);
        oo.collection = REPORT_OUTBOX;
        oo.index_prefix = "report_mail";
        oo.kinds = st->mail_kinds;
        oo.n_kinds = 1;
        oo.hold = !mail_enabled(st->mail) || !bus;
        /* The runtime stops it before the shutdown hook frees the mail
         * kind's state (reports_stop). */
        if (!(st->outbox = runtime_outbox_new(rt, &oo, errstr, errlen)))
                return HANDLER_PERMANENT;
        if (bus && !mail_enabled(st->mail))
                log_warn("report mails are held in the outbox: "
                         "OMNIFY_MAIL_API_KEY is empty");
        return HANDLER_OK;
}

void reports_stop(analytics_state_t *st) {
        if (!st)
                return;
        /* The outbox and the timers are the runtime's. */
        st->outbox = NULL;
        st->timers = NULL;
        mail_destroy(st->mail);
        st->mail = NULL;
}

static void report__timer_id(const char *report_id, char out[128]) {
        snprintf(out, 128, "report|%.100s", report_id);
}

/* The schedule of a report: every day, week or 30 days from the next
 * hour_utc. */
static bool report__schedule(rt_ctx_t *ctx, const char *report_id,
                             const msgpack_object *schedule, char *errstr,
                             size_t errlen) {
        analytics_state_t *st = analytics_state(ctx);
        slice_t every = mp_str(schedule, "every");
        int64_t hour = 6, now = (int64_t)clock_wall_ms(), first;
        char id[128];
        msgpack_sbuffer body;
        msgpack_packer pk;
        schedule_spec_t spec;
        timer_err_t err;
        mp_int(schedule, "hour_utc", &hour);
        memset(&spec, 0, sizeof(spec));
        spec.every_ms = slice_eq(every, "daily")    ? DAY_MS
                        : slice_eq(every, "weekly") ? 7 * DAY_MS
                                                    : 30 * DAY_MS;
        first = caltime_day_of_ms(now) * DAY_MS + hour * 3600000LL;
        if (first <= now)
                first += DAY_MS;
        report__timer_id(report_id, id);
        msgpack_sbuffer_init(&body);
        msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        mp_pack_kv_str(&pk, "report_id", report_id);
        spec.id = id;
        spec.first_at_ms = first;
        spec.type = "analytics.reports.fire";
        spec.version = 1;
        spec.key = rt_env(ctx)->tenant;
        spec.body = (slice_t){body.data, body.size};
        spec.caller = cmdsend_caller(rt_env(ctx));
        err = schedule_set(st->timers, &spec, errstr, errlen);
        msgpack_sbuffer_destroy(&body);
        return err == TIMER_OK;
}

/* ---------------------------------------------------------------------------
 * A definition as a query
 * ------------------------------------------------------------------------ */

/* The period of a preset, relative to today (UTC). */
static bool report__period(slice_t preset, int64_t today, int64_t *from,
                           int64_t *to) {
        int64_t yesterday = today - 1;
        if (slice_eq(preset, "last_7_days")) {
                *from = today - 7;
                *to = yesterday;
        } else if (slice_eq(preset, "last_30_days") || !preset.len) {
                *from = today - 30;
                *to = yesterday;
        } else if (slice_eq(preset, "month_to_date")) {
                *from = caltime_month_start(yesterday);
                *to = yesterday;
        } else if (slice_eq(preset, "previous_month")) {
                *to = caltime_month_start(today) - 1;
                *from = caltime_month_start(*to);
        } else {
                return false;
        }
        return true;
}

static void report__pack_array(msgpack_packer *pk, const msgpack_object *a) {
        if (!a || a->type != MSGPACK_OBJECT_ARRAY) {
                msgpack_pack_array(pk, 0);
                return;
        }
        msgpack_pack_object(pk, *a);
}

/*
 * The metrics query of a definition (a msgpack map: the command's body, or
 * a stored definition), for a run on `today`: built as the metrics route's
 * body so query_parse checks it the same way. false after a 400 or 422
 * reply.
 */
bool reports_query(rt_ctx_t *ctx, const msgpack_object *def, int64_t today,
                   query_t *q, msgpack_zone *zone) {
        static const char *const filters[] = {"provider", "account_id",
                                              "campaign_id", "currency"};
        const msgpack_object *period = codec_map_get(def, "period");
        const msgpack_object *f = codec_map_get(def, "filters");
        slice_t preset = period ? mp_str(period, "preset") : SLICE_NULL;
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_object body;
        char fday[CALTIME_DATE_SIZE], tday[CALTIME_DATE_SIZE];
        int64_t from, to;
        bool ok;
        if (slice_eq(preset, "custom")) {
                slice_t a = mp_str(period, "from"), b = mp_str(period, "to");
                if (!a.len || !b.len ||
                    !caltime_parse_date(a.ptr, a.len, &from) ||
                    !caltime_parse_date(b.ptr, b.len, &to)) {
                        analytics_refused_field(
                                ctx, "period",
                                "a custom period needs from and "
                                "to (YYYY-MM-DD)");
                        return false;
                }
        } else if (!report__period(preset, today, &from, &to)) {
                analytics_bad_field(ctx, "period.preset", "is unknown");
                return false;
        }
        caltime_format_date(from, fday);
        caltime_format_date(to, tday);
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 8);
        codec_pack_str(&pk, "metric");
        report__pack_array(&pk, codec_map_get(def, "metrics"));
        codec_pack_str(&pk, "group_by");
        report__pack_array(&pk, codec_map_get(def, "group_by"));
        for (size_t i = 0; i < 4; i++) {
                codec_pack_str(&pk, filters[i]);
                report__pack_array(&pk,
                                   f ? codec_map_get(f, filters[i]) : NULL);
        }
        mp_pack_kv_str(&pk, "from", fday);
        mp_pack_kv_str(&pk, "to", tday);
        ok = report__unpack(zone, &sb, &body) && query_parse(ctx, &body, q);
        msgpack_sbuffer_destroy(&sb);
        return ok;
}

/* The stored definition of report_id of the caller's tenant, as msgpack in
 * zone; false after a reply (404, store failure in *res). */
bool reports_load(rt_ctx_t *ctx, const aview_t *v, slice_t id,
                  msgpack_object *def, msgpack_zone *zone,
                  handler_result_t *res) {
        bson_t filter, doc;
        char err[256];
        store_err_t serr;
        msgpack_sbuffer sb;
        msgpack_packer pk;
        *res = HANDLER_OK;
        bson_init(&filter);
        bson_append_utf8(&filter, "_id", -1, id.ptr, (int)id.len);
        BSON_APPEND_UTF8(&filter, "tenant", v->tenant);
        serr = store_find_one(v->store, v->db, REPORTS_COLL, &filter, NULL,
                              &doc, err, sizeof(err));
        bson_destroy(&filter);
        if (serr == STORE_NOT_FOUND) {
                rt_reply_problem(ctx, 404, "Not Found", "no such report");
                return false;
        }
        if (serr != STORE_OK) {
                *res = analytics_store_failed(ctx, serr, err);
                return false;
        }
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        bson_to_msgpack(&pk, &doc, NULL);
        bson_destroy(&doc);
        if (!report__unpack(zone, &sb, def)) {
                msgpack_sbuffer_destroy(&sb);
                rt_reply_problem(ctx, 500, "Internal error",
                                 "a stored report is unreadable");
                return false;
        }
        msgpack_sbuffer_destroy(&sb);
        return true;
}

/* ---------------------------------------------------------------------------
 * Definitions
 * ------------------------------------------------------------------------ */

/* A msgpack value into bson under key (strings, numbers, booleans, arrays
 * and maps of them). */
static void report__to_bson(bson_t *b, const char *key,
                            const msgpack_object *o) {
        char k[24];
        bson_t sub;
        switch (o->type) {
        case MSGPACK_OBJECT_STR:
                bson_append_utf8(b, key, -1, o->via.str.ptr,
                                 (int)o->via.str.size);
                break;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
                BSON_APPEND_INT64(b, key, (int64_t)o->via.u64);
                break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
                BSON_APPEND_INT64(b, key, o->via.i64);
                break;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
                BSON_APPEND_DOUBLE(b, key, o->via.f64);
                break;
        case MSGPACK_OBJECT_BOOLEAN:
                BSON_APPEND_BOOL(b, key, o->via.boolean);
                break;
        case MSGPACK_OBJECT_ARRAY:
                BSON_APPEND_ARRAY_BEGIN(b, key, &sub);
                for (uint32_t i = 0; i < o->via.array.size; i++) {
                        snprintf(k, sizeof(k), "%u", i);
                        report__to_bson(&sub, k, &o->via.array.ptr[i]);
                }
                bson_append_array_end(b, &sub);
                break;
        case MSGPACK_OBJECT_MAP:
                BSON_APPEND_DOCUMENT_BEGIN(b, key, &sub);
                for (uint32_t i = 0; i < o->via.map.size; i++) {
                        const msgpack_object_kv *kv = &o->via.map.ptr[i];
                        char name[128];
                        if (kv->key.type != MSGPACK_OBJECT_STR ||
                            kv->key.via.str.size >= sizeof(name))
                                continue;
                        snprintf(name, sizeof(name), "%.*s",
                                 (int)kv->key.via.str.size,
                                 kv->key.via.str.ptr);
                        report__to_bson(&sub, name, &kv->val);
                }
                bson_append_document_end(b, &sub);
                break;
        default:
                BSON_APPEND_NULL(b, key);
        }
}

static void report__emit_scheduled(rt_ctx_t *ctx, const char *id,
                                   slice_t every) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        mp_pack_kv_str(&pk, "report_id", id);
        codec_pack_str(&pk, "schedule");
        codec_pack_slice(&pk, every);
        rt_emit(ctx, "analytics.report.scheduled", rt_env(ctx)->tenant, &sb);
        msgpack_sbuffer_destroy(&sb);
}

handler_result_t reports_create(rt_ctx_t *ctx, const msgpack_object *body) {
        static const char *const keep[] = {"name",   "metrics", "group_by",
                                           "period", "filters", "schedule"};
        aview_t v;
        handler_result_t res;
        query_t q;
        msgpack_zone zone;
        bson_t doc;
        char id[MSGID_TEXT_SIZE], err[256];
        const env_t *env = rt_env(ctx);
        const msgpack_object *schedule = codec_map_get(body, "schedule");
        store_err_t serr;
        bool ok;
        if (!analytics_view(ctx, SCHEMA_ROLE_MEMBER, &v, &res))
                return res;
        msgpack_zone_init(&zone, 2048);
        ok = reports_query(ctx, body,
                           caltime_day_of_ms((int64_t)clock_wall_ms()), &q,
                           &zone);
        msgpack_zone_destroy(&zone);
        if (!ok)
                return HANDLER_OK;
        /* The report's id is the command's: a redelivery finds it. */
        snprintf(id, sizeof(id), "%.*s", (int)env->id.len, env->id.ptr);
        bson_init(&doc);
        BSON_APPEND_UTF8(&doc, "_id", id);
        BSON_APPEND_UTF8(&doc, "tenant", v.tenant);
        for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
                const msgpack_object *o = codec_map_get(body, keep[i]);
                if (o)
                        report__to_bson(&doc, keep[i], o);
        }
        bson_append_utf8(&doc, "created_by", -1, env->user.ptr,
                         (int)env->user.len);
        BSON_APPEND_INT64(&doc, "created_ms", (int64_t)clock_wall_ms());
        serr = store_insert(rt_store(ctx), rt_db(ctx), REPORTS_COLL, &doc, err,
                            sizeof(err));
        if (serr != STORE_OK && serr != STORE_DUPLICATE) {
                bson_destroy(&doc);
                return analytics_store_failed(ctx, serr, err);
        }
        if (schedule && schedule->type == MSGPACK_OBJECT_MAP) {
                if (!report__schedule(ctx, id, schedule, err, sizeof(err))) {
                        bson_destroy(&doc);
                        return analytics_store_failed(
                                ctx,
                                store_is_up(rt_store(ctx)) ? STORE_ERROR
                                                           : STORE_UNAVAILABLE,
                                err);
                }
                report__emit_scheduled(ctx, id, mp_str(schedule, "every"));
        }
        {
                static const char *const skip[] = {"tenant", "_id", NULL};
                msgpack_packer *pk = rt_reply(ctx, 201);
                msgpack_sbuffer sb;
                msgpack_packer inner;
                msgpack_zone z;
                msgpack_object o;
                size_t off = 0;
                /* {report_id, ...definition} */
                msgpack_sbuffer_init(&sb);
                msgpack_packer_init(&inner, &sb, msgpack_sbuffer_write);
                bson_to_msgpack(&inner, &doc, skip);
                msgpack_zone_init(&z, 1024);
                msgpack_unpack(sb.data, sb.size, &off, &z, &o);
                msgpack_pack_map(pk, o.via.map.size + 1);
                mp_pack_kv_str(pk, "report_id", id);
                for (uint32_t i = 0; i < o.via.map.size; i++) {
                        msgpack_pack_object(pk, o.via.map.ptr[i].key);
                        msgpack_pack_object(pk, o.via.map.ptr[i].val);
                }
                msgpack_zone_destroy(&z);
                msgpack_sbuffer_destroy(&sb);
        }
        bson_destroy(&doc);
        return HANDLER_OK;
}

handler_result_t reports_list(rt_ctx_t *ctx, const msgpack_object *body) {
        aview_t v;
        handler_result_t res;
        alist_t l;
        bson_t filter, opts, sort;
        char err[256];
        store_err_t serr;
        msgpack_packer *pk;
        (void)body;
        if (!analytics_view(ctx, SCHEMA_ROLE_VIEWER, &v, &res))
                return res;
        static const char *const skip[] = {"_id", "tenant", NULL};
        alist_init(&l, "report_id", skip);
        bson_init(&filter);
        BSON_APPEND_UTF8(&filter, "tenant", v.tenant);
        bson_init(&opts);
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
        BSON_APPEND_INT32(&sort, "created_ms", -1);
        bson_append_document_end(&opts, &sort);
        BSON_APPEND_INT64(&opts, "limit", 500);
        serr = store_find(rt_store(ctx), rt_db(ctx), REPORTS_COLL, &filter,
                          &opts, alist_add, &l, err, sizeof(err));
        bson_destroy(&filter);
        bson_destroy(&opts);
        if (serr == STORE_OK) {
                pk = rt_reply(ctx, 200);
                msgpack_pack_map(pk, 1);
                codec_pack_str(pk, "reports");
                alist_pack(pk, &l);
        }
        alist_deinit(&l);
        return serr == STORE_OK ? HANDLER_OK
                                : analytics_store_failed(ctx, serr, err);
}

handler_result_t reports_get(rt_ctx_t *ctx, const msgpack_object *body) {
        static const char *const run_skip[] = {"_id", "tenant", "rows",
                                               "columns", NULL};
        aview_t v;
        handler_result_t res;
        msgpack_zone zone;
        msgpack_object def;
        slice_t id = mp_str(body, "report_id");
        alist_t runs;
        bson_t filter, opts, sort, proj;
        char err[256];
        store_err_t serr;
        msgpack_packer *pk;
        if (!analytics_view(ctx, SCHEMA_ROLE_VIEWER, &v, &res))
                return res;
        msgpack_zone_init(&zone, 2048);
        if (!reports_load(ctx, &v, id, &def, &zone, &res)) {
                msgpack_zone_destroy(&zone);
                return res;
        }
        alist_init(&runs, "run_id", run_skip);
        bson_init(&filter);
        bson_append_utf8(&filter, "report_id", -1, id.ptr, (int)id.len);
        BSON_APPEND_UTF8(&filter, "tenant", v.tenant);
        bson_init(&opts);
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
        BSON_APPEND_INT32(&sort, "created_ms", -1);
        bson_append_document_end(&opts, &sort);
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
        BSON_APPEND_INT32(&proj, "rows", 0);
        bson_append_document_end(&opts, &proj);
        BSON_APPEND_INT64(&opts, "limit", 10);
        serr = store_find(rt_store(ctx), rt_db(ctx), REPORT_RUNS_COLL, &filter,
                          &opts, alist_add, &runs, err, sizeof(err));
        bson_destroy(&filter);
        bson_destroy(&opts);
        if (serr == STORE_OK) {
                pk = rt_reply(ctx, 200);
                msgpack_pack_map(pk, def.via.map.size + 1);
                for (uint32_t i = 0; i < def.via.map.size; i++) {
                        const msgpack_object_kv *kv = &def.via.map.ptr[i];
                        if (kv->key.type == MSGPACK_OBJECT_STR &&
                            kv->key.via.str.size == 3 &&
                            !memcmp(kv->key.via.str.ptr, "_id", 3))
                                codec_pack_str(pk, "report_id");
                        else
                                msgpack_pack_object(pk, kv->key);
                        msgpack_pack_object(pk, kv->val);
                }
                codec_pack_str(pk, "runs");
                alist_pack(pk, &runs);
        }
        alist_deinit(&runs);
        msgpack_zone_destroy(&zone);
        return serr == STORE_OK ? HANDLER_OK
                                : analytics_store_failed(ctx, serr, err);
}

handler_result_t reports_delete(rt_ctx_t *ctx, const msgpack_object *body) {
        aview_t v;
        handler_result_t res;
        slice_t id = mp_str(body, "report_id");
        bson_t filter;
        int64_t deleted = 0;
        char err[256];
        store_err_t serr;
        if (!analytics_view(ctx, SCHEMA_ROLE_MEMBER, &v, &res))
                return res;
        bson_init(&filter);
        bson_append_utf8(&filter, "_id", -1, id.ptr, (int)id.len);
        BSON_APPEND_UTF8(&filter, "tenant", v.tenant);
        serr = store_delete(rt_store(ctx), rt_db(ctx), REPORTS_COLL, &filter, 0,
                            &deleted, err, sizeof(err));
        bson_destroy(&filter);
        if (serr != STORE_OK)
                return analytics_store_failed(ctx, serr, err);
        if (!deleted) {
                rt_reply_problem(ctx, 404, "Not Found", "no such report");
                return HANDLER_OK;
        }
        {
                char tid[128], rid[100];
                snprintf(rid, sizeof(rid), "%.*s", (int)id.len, id.ptr);
                report__timer_id(rid, tid);
                if (schedule_cancel(analytics_state(ctx)->timers, tid, err,
                                    sizeof(err)) == TIMER_STORE_DOWN)
                        return HANDLER_TRANSIENT;
        }
        msgpack_pack_map(rt_reply(ctx, 204), 0);
        return HANDLER_OK;
}
