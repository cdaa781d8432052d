/*
 * reports_run.c - runs of saved reports (reports.c holds the definitions
 * and their schedules): a run now (analytics.reports.run) or by its
 * schedule (analytics.reports.fire, which mails the rows as CSV to the
 * recipients through the outbox), and a run's rows as JSON or CSV. A run's
 * id is the id of the command that made it, so a redelivered command finds
 * its run (see analytics_internal.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "analytics_internal.h"
#include "log.h"

/* ---------------------------------------------------------------------------
 * Runs
 * ------------------------------------------------------------------------ */

/* Run report_id now; its run's id is the command's. */
static handler_result_t report__run(rt_ctx_t *ctx, slice_t id) {
        const analytics_settings_t *set = analytics_state(ctx)->set;
        aview_t v;
        handler_result_t res;
        msgpack_zone zone;
        msgpack_object def;
        query_t q;
        query_result_t *r = NULL;
        const char *cols[QUERY_MAX_COLUMNS];
        size_t n_cols, n_rows;
        char run_id[MSGID_TEXT_SIZE], err[256], rid[128], f[CALTIME_DATE_SIZE],
                t[CALTIME_DATE_SIZE], key[24];
        msgpack_sbuffer rows;
        msgpack_packer pk;
        bson_t doc, arr;
        bool truncated;
        store_err_t serr;
        const env_t *env = rt_env(ctx);
        if (!analytics_view(ctx, SCHEMA_ROLE_MEMBER, &v, &res))
                return res;
        msgpack_zone_init(&zone, 4096);
        if (!reports_load(ctx, &v, id, &def, &zone, &res) ||
            !reports_query(ctx, &def,
                           caltime_day_of_ms((int64_t)clock_wall_ms()), &q,
                           &zone)) {
                msgpack_zone_destroy(&zone);
                return res;
        }
        serr = query_run(&v, &q, &r, err, sizeof(err));
        if (serr != STORE_OK) {
                msgpack_zone_destroy(&zone);
                return analytics_store_failed(ctx, serr, err);
        }
        n_rows = query_rows(r);
        truncated = n_rows > (size_t)set->report_max_rows;
        msgpack_sbuffer_init(&rows);
        msgpack_packer_init(&pk, &rows, msgpack_sbuffer_write);
        query_pack_rows(r, &q, &pk);
        if (truncated) {
                /* Keep the first report_max_rows rows. */
                msgpack_zone z;
                msgpack_object all;
                size_t off = 0;
                msgpack_sbuffer cut;
                msgpack_packer cp;
                msgpack_zone_init(&z, 65536);
                msgpack_unpack(rows.data, rows.size, &off, &z, &all);
                msgpack_sbuffer_init(&cut);
                msgpack_packer_init(&cp, &cut, msgpack_sbuffer_write);
                msgpack_pack_array(&cp, (size_t)set->report_max_rows);
                for (int i = 0; i < set->report_max_rows; i++)
                        msgpack_pack_object(&cp, all.via.array.ptr[i]);
                msgpack_zone_destroy(&z);
                msgpack_sbuffer_destroy(&rows);
                rows = cut;
                n_rows = (size_t)set->report_max_rows;
        }
        n_cols = query_columns(&q, cols, QUERY_MAX_COLUMNS);
        snprintf(run_id, sizeof(run_id), "%.*s", (int)env->id.len, env->id.ptr);
        snprintf(rid, sizeof(rid), "%.*s", (int)id.len, id.ptr);
        caltime_format_date(q.from, f);
        caltime_format_date(q.to, t);
        bson_init(&doc);
        BSON_APPEND_UTF8(&doc, "_id", run_id);
        BSON_APPEND_UTF8(&doc, "tenant", v.tenant);
        BSON_APPEND_UTF8(&doc, "report_id", rid);
        BSON_APPEND_UTF8(&doc, "from", f);
        BSON_APPEND_UTF8(&doc, "to", t);
        BSON_APPEND_ARRAY_BEGIN(&doc, "columns", &arr);
        for (size_t i = 0; i < n_cols; i++) {
                snprintf(key, sizeof(key), "%zu", i);
                BSON_APPEND_UTF8(&arr, key, cols[i]);
        }
        bson_append_array_end(&doc, &arr);
        BSON_APPEND_INT64(&doc, "n_rows", (int64_t)n_rows);
        BSON_APPEND_BOOL(&doc, "truncated", truncated);
        bson_append_binary(&doc, "rows", -1, BSON_SUBTYPE_BINARY,
                           (const uint8_t *)rows.data, (uint32_t)rows.size);
        BSON_APPEND_INT64(&doc, "created_ms", (int64_t)clock_wall_ms());
        bson_append_utf8(&doc, "by", -1, env->user.ptr, (int)env->user.len);
        serr = store_insert(rt_store(ctx), rt_db(ctx), REPORT_RUNS_COLL, &doc,
                            err, sizeof(err));
        bson_destroy(&doc);
        msgpack_sbuffer_destroy(&rows);
        query_result_free(r);
        msgpack_zone_destroy(&zone);
        if (serr != STORE_OK && serr != STORE_DUPLICATE)
                return analytics_store_failed(ctx, serr, err);
        {
                msgpack_sbuffer sb;
                msgpack_packer ep;
                msgpack_packer *rp;
                char where[300];
                msgpack_sbuffer_init(&sb);
                msgpack_packer_init(&ep, &sb, msgpack_sbuffer_write);
                msgpack_pack_map(&ep, 3);
                mp_pack_kv_str(&ep, "report_id", rid);
                mp_pack_kv_str(&ep, "run_id", run_id);
                mp_pack_kv_int(&ep, "rows", (int64_t)n_rows);
                rt_emit(ctx, "analytics.report.completed", env->tenant, &sb);
                msgpack_sbuffer_destroy(&sb);
                snprintf(where, sizeof(where),
                         "/api/analytics/reports/%s/runs/%s", rid, run_id);
                rp = rt_reply(ctx, 201);
                msgpack_pack_map(rp, 7);
                mp_pack_kv_str(rp, "report_id", rid);
                mp_pack_kv_str(rp, "run_id", run_id);
                mp_pack_kv_str(rp, "from", f);
                mp_pack_kv_str(rp, "to", t);
                mp_pack_kv_int(rp, "rows", (int64_t)n_rows);
                codec_pack_str(rp, "truncated");
                if (truncated)
                        msgpack_pack_true(rp);
                else
                        msgpack_pack_false(rp);
                mp_pack_kv_str(rp, "result", where);
        }
        return HANDLER_OK;
}

handler_result_t reports_run(rt_ctx_t *ctx, const msgpack_object *body) {
        return report__run(ctx, mp_str(body, "report_id"));
}

/* Mail the rows of the run this command made to the report's recipients. */
static handler_result_t report__mail(rt_ctx_t *ctx, slice_t id) {
        analytics_state_t *st = analytics_state(ctx);
        const env_t *env = rt_env(ctx);
        bson_t filter, run, rep;
        bson_iter_t it, arr;
        const char *cols[QUERY_MAX_COLUMNS], *name = "", *from = "", *to = "";
        size_t n_cols = 0, len = 0, n = 0;
        const uint8_t *rows = NULL;
        uint32_t rows_len = 0;
        char err[256], *csv, *text;
        store_err_t serr;
        handler_result_t res = HANDLER_OK;
        bson_init(&filter);
        bson_append_utf8(&filter, "_id", -1, env->id.ptr, (int)env->id.len);
        serr = store_find_one(rt_store(ctx), rt_db(ctx), REPORT_RUNS_COLL,
                              &filter, NULL, &run, err, sizeof(err));
        bson_destroy(&filter);
        if (serr != STORE_OK)
                return serr == STORE_NOT_FOUND
                               ? HANDLER_OK
                               : analytics_store_failed(ctx, serr, err);
        bson_init(&filter);
        bson_append_utf8(&filter, "_id", -1, id.ptr, (int)id.len);
        serr = store_find_one(rt_store(ctx), rt_db(ctx), REPORTS_COLL, &filter,
                              NULL, &rep, err, sizeof(err));
        bson_destroy(&filter);
        if (serr != STORE_OK) {
                bson_destroy(&run);
                return serr == STORE_NOT_FOUND
                               ? HANDLER_OK
                               : analytics_store_failed(ctx, serr, err);
        }
        if (bson_iter_init_find(&it, &run, "columns") &&
            BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &arr))
                while (bson_iter_next(&arr) && n_cols < QUERY_MAX_COLUMNS)
                        if (BSON_ITER_HOLDS_UTF8(&arr))
                                cols[n_cols++] = bson_iter_utf8(&arr, NULL);
        if (bson_iter_init_find(&it, &run, "rows") &&
            BSON_ITER_HOLDS_BINARY(&it))
                bson_iter_binary(&it, NULL, &rows_len, &rows);
        if (bson_iter_init_find(&it, &run, "from") && BSON_ITER_HOLDS_UTF8(&it))
                from = bson_iter_utf8(&it, NULL);
        if (bson_iter_init_find(&it, &run, "to") && BSON_ITER_HOLDS_UTF8(&it))
                to = bson_iter_utf8(&it, NULL);
        if (bson_iter_init_find(&it, &rep, "name") && BSON_ITER_HOLDS_UTF8(&it))
                name = bson_iter_utf8(&it, NULL);
        csv = csv_of_rows(cols, n_cols, (slice_t){(const char *)rows, rows_len},
                          &len);
        text = xmalloc(len + 512);
        snprintf(text, len + 512,
                 "Your Omnify report \"%s\" for %s to %s.\n\n%s", name, from,
                 to, csv ? csv : "");
        if (bson_iter_init_find(&it, &rep, "schedule") &&
            BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &arr) &&
            bson_iter_find(&arr, "recipients") && BSON_ITER_HOLDS_ARRAY(&arr)) {
                bson_iter_t to_it;
                char subject[300];
                snprintf(subject, sizeof(subject),
                         "Omnify report: %.200s (%s to %s)", name, from, to);
                bson_iter_recurse(&arr, &to_it);
                while (bson_iter_next(&to_it) && res == HANDLER_OK) {
                        char mid[128];
                        mail_message_t msg;
                        outbox_err_t oerr;
                        if (!BSON_ITER_HOLDS_UTF8(&to_it))
                                continue;
                        snprintf(mid, sizeof(mid), "%.*s.%zu", (int)env->id.len,
                                 env->id.ptr, n++);
                        msg.to = bson_iter_utf8(&to_it, NULL);
                        msg.subject = subject;
                        msg.text = text;
                        oerr = mail_enqueue(st->mail, st->outbox, mid, &msg,
                                            NULL, err, sizeof(err));
                        if (oerr == OUTBOX_STORE_DOWN)
                                res = HANDLER_TRANSIENT;
                        else if (oerr != OUTBOX_OK && oerr != OUTBOX_EXISTS)
                                log_error("report mail %s: %s", mid, err);
                }
        }
        free(text);
        free(csv);
        bson_destroy(&rep);
        bson_destroy(&run);
        return res;
}

handler_result_t reports_fire(rt_ctx_t *ctx, const msgpack_object *body) {
        slice_t id = mp_str(body, "report_id");
        handler_result_t res = report__run(ctx, id);
        if (res != HANDLER_OK)
                return res;
        log_info("scheduled run of report %.*s", (int)id.len, id.ptr);
        /* A report deleted meanwhile answered 404: nothing to mail. */
        return report__mail(ctx, id);
}

handler_result_t reports_result(rt_ctx_t *ctx, const msgpack_object *body) {
        aview_t v;
        handler_result_t res;
        slice_t report = mp_str(body, "report_id"),
                run = mp_str(body, "run_id");
        bson_t filter, doc;
        bson_iter_t it, arr;
        const char *cols[QUERY_MAX_COLUMNS];
        size_t n_cols = 0;
        const uint8_t *rows = NULL;
        uint32_t rows_len = 0;
        char err[256];
        store_err_t serr;
        if (!analytics_view(ctx, SCHEMA_ROLE_VIEWER, &v, &res))
                return res;
        bson_init(&filter);
        bson_append_utf8(&filter, "_id", -1, run.ptr, (int)run.len);
        bson_append_utf8(&filter, "report_id", -1, report.ptr, (int)report.len);
        BSON_APPEND_UTF8(&filter, "tenant", v.tenant);
        serr = store_find_one(rt_store(ctx), rt_db(ctx), REPORT_RUNS_COLL,
                              &filter, NULL, &doc, err, sizeof(err));
        bson_destroy(&filter);
        if (serr == STORE_NOT_FOUND) {
                rt_reply_problem(ctx, 404, "Not Found", "no such run");
                return HANDLER_OK;
        }
        if (serr != STORE_OK)
                return analytics_store_failed(ctx, serr, err);
        if (bson_iter_init_find(&it, &doc, "columns") &&
            BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &arr))
                while (bson_iter_next(&arr) && n_cols < QUERY_MAX_COLUMNS)
                        if (BSON_ITER_HOLDS_UTF8(&arr))
                                cols[n_cols++] = bson_iter_utf8(&arr, NULL);
        if (bson_iter_init_find(&it, &doc, "rows") &&
            BSON_ITER_HOLDS_BINARY(&it))
                bson_iter_binary(&it, NULL, &rows_len, &rows);
        if (csv_wanted(body)) {
                csv_reply(ctx, cols, n_cols,
                          (slice_t){(const char *)rows, rows_len});
        } else {
                static const char *const skip[] = {"_id", "tenant", "rows",
                                                   NULL};
                msgpack_sbuffer sb;
                msgpack_packer tmp;
                msgpack_zone z;
                msgpack_object meta;
                size_t off = 0;
                msgpack_packer *pk = rt_reply(ctx, 200);
                msgpack_sbuffer_init(&sb);
                msgpack_packer_init(&tmp, &sb, msgpack_sbuffer_write);
                bson_to_msgpack(&tmp, &doc, skip);
                msgpack_zone_init(&z, 1024);
                msgpack_unpack(sb.data, sb.size, &off, &z, &meta);
                msgpack_pack_map(pk, meta.via.map.size + 2);
                for (uint32_t i = 0; i < meta.via.map.size; i++) {
                        msgpack_pack_object(pk, meta.via.map.ptr[i].key);
                        msgpack_pack_object(pk, meta.via.map.ptr[i].val);
                }
                codec_pack_str(pk, "run_id");
                codec_pack_slice(pk, run);
                codec_pack_str(pk, "rows");
                if (rows_len)
                        msgpack_sbuffer_write(pk->data, (const char *)rows,
                                              rows_len);
                else
                        msgpack_pack_array(pk, 0);
                msgpack_zone_destroy(&z);
                msgpack_sbuffer_destroy(&sb);
        }
        bson_destroy(&doc);
        return HANDLER_OK;
}
