/*
 * sync.c - the sync engine (see sync.h): sync records, schedules,
 * requests, ticks and reads; pages are in sync_page.c.
 */
#include "sync_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "cmdsend.h"
#include "codec.h"
#include "log.h"
#include "msgid.h"

/* ---------------------------------------------------------------------------
 * Sync records
 * ------------------------------------------------------------------------ */

bool sync__is_backfill(const char *kind) {
        return strcmp(kind, "backfill") == 0;
}

/* A running sync of the connection in the same class (incremental or
 * backfill) that still moves, other than except; its id into id. */
static ig_err_t sync__running(ig_state_t *st, const char *connection_id,
                              bool backfill, const char *except,
                              char id[IG_ID_TEXT]) {
        bson_t filter = BSON_INITIALIZER, gt, doc;
        int64_t now = (int64_t)clock_wall_ms();
        char errstr[256];
        store_err_t e;
        id[0] = '\0';
        BSON_APPEND_UTF8(&filter, "connection_id", connection_id);
        BSON_APPEND_UTF8(&filter, "status", "running");
        BSON_APPEND_BOOL(&filter, "backfill", backfill);
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "alive_until", &gt);
        BSON_APPEND_DATE_TIME(&gt, "$gt", now);
        bson_append_document_end(&filter, &gt);
        e = store_find_one(st->store, IG_DB, IG_COLL_SYNCS, &filter, NULL, &doc,
                           errstr, sizeof(errstr));
        bson_destroy(&filter);
        if (e == STORE_NOT_FOUND)
                return IG_OK;
        if (e) {
                log_warn("syncs: %s", errstr);
                return store_err_transient(e) ? IG_STORE_DOWN : IG_STORE;
        }
        if (!except ||
            strcmp(ig_bson_str(&doc, "_id") ? ig_bson_str(&doc, "_id") : "",
                   except) != 0)
                snprintf(id, IG_ID_TEXT, "%s",
                         ig_bson_str(&doc, "_id") ? ig_bson_str(&doc, "_id")
                                                  : "");
        bson_destroy(&doc);
        return IG_OK;
}

ig_err_t sync__update(ig_state_t *st, const char *sync_id, const bson_t *set,
                      const char *only_status) {
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER;
        char errstr[256];
        store_err_t e;
        BSON_APPEND_UTF8(&filter, "_id", sync_id);
        if (only_status)
                BSON_APPEND_UTF8(&filter, "status", only_status);
        BSON_APPEND_DOCUMENT(&update, "$set", set);
        e = store_update(st->store, IG_DB, IG_COLL_SYNCS, &filter, &update, 0,
                         NULL, errstr, sizeof(errstr));
        bson_destroy(&filter);
        bson_destroy(&update);
        if (e && e != STORE_NOT_FOUND) {
                log_warn("syncs: %s", errstr);
                return store_err_transient(e) ? IG_STORE_DOWN : IG_STORE;
        }
        return IG_OK;
}

void sync__event_head(msgpack_packer *pk, uint32_t n, const char *sync_id,
                      const ig_conn_t *c, const char *kind) {
        msgpack_pack_map(pk, n);
        ig_kv_str(pk, "sync_id", sync_id);
        ig_kv_str(pk, "connection_id", c->id);
        ig_kv_str(pk, "provider", ig_provider_name(c->provider));
        ig_kv_str(pk, "account_id", c->account_id);
        ig_kv_str(pk, "kind", kind);
}

/* Create the sync (idempotent by id), publish sync.started, send its first
 * page. The caller checked that none runs. */
static ig_err_t sync__start(rt_ctx_t *ctx, ig_state_t *st, const ig_conn_t *c,
                            const char *sync_id, const char *kind,
                            ig_day_t since, ig_day_t until, bool first_sync,
                            ig_records_t *events) {
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, soi, set;
        int64_t now = (int64_t)clock_wall_ms();
        char errstr[256], d1[11], d2[11], key[512];
        msgpack_sbuffer sb;
        msgpack_packer pk;
        page_cmd_t p = {0};
        store_err_t e;

        ig_day_format(since, d1);
        ig_day_format(until, d2);
        BSON_APPEND_UTF8(&filter, "_id", sync_id);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &soi);
        BSON_APPEND_UTF8(&soi, "tenant", c->tenant);
        BSON_APPEND_UTF8(&soi, "connection_id", c->id);
        BSON_APPEND_UTF8(&soi, "provider", ig_provider_name(c->provider));
        BSON_APPEND_UTF8(&soi, "account_id", c->account_id);
        BSON_APPEND_UTF8(&soi, "kind", kind);
        BSON_APPEND_BOOL(&soi, "backfill", sync__is_backfill(kind));
        BSON_APPEND_UTF8(&soi, "status", "running");
        BSON_APPEND_UTF8(&soi, "since", d1);
        BSON_APPEND_UTF8(&soi, "until", d2);
        BSON_APPEND_INT64(&soi, "pages", 0);
        BSON_APPEND_INT64(&soi, "records", 0);
        BSON_APPEND_DATE_TIME(&soi, "started_at", now);
        BSON_APPEND_DATE_TIME(&soi, "updated_at", now);
        BSON_APPEND_DATE_TIME(&soi, "alive_until",
                              now + (int64_t)st->set->sync_stale_s * 1000);
        bson_append_document_end(&update, &soi);
        (void)set;
        e = store_update(st->store, IG_DB, IG_COLL_SYNCS, &filter, &update,
                         STORE_UPSERT, NULL, errstr, sizeof(errstr));
        bson_destroy(&filter);
        bson_destroy(&update);
        if (e) {
                log_warn("syncs: %s", errstr);
                return store_err_transient(e) ? IG_STORE_DOWN : IG_STORE;
        }
        if (!sync__is_backfill(kind)) {
                bson_t s = BSON_INITIALIZER;
                BSON_APPEND_UTF8(&s, "running_sync_id", sync_id);
                ig_conn_update(st, c->id, &s);
                bson_destroy(&s);
        }
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        sync__event_head(&pk, 7, sync_id, c, kind);
        ig_kv_str(&pk, "since", d1);
        ig_kv_str(&pk, "until", d2);
        ig_rec_event(events, "integrations.sync.started", c->tenant,
                     ig_provider_name(c->provider), c->account_id, sync_id, now,
                     &sb);
        msgpack_sbuffer_destroy(&sb);

        snprintf(p.sync_id, sizeof(p.sync_id), "%s", sync_id);
        snprintf(p.connection_id, sizeof(p.connection_id), "%s", c->id);
        p.cursor = xstrdup("{}");
        p.since = since;
        p.until = until;
        snprintf(p.kind, sizeof(p.kind), "%s", kind);
        p.first_sync = first_sync;
        p.counts = json_object();
        sync__cmd_pack(&p, &sb);
        snprintf(key, sizeof(key), "%s", sync_id);
        rt_send(ctx, "integrations.sync.page", slice_of(key), &sb);
        msgpack_sbuffer_destroy(&sb);
        sync__cmd_clear(&p);
        log_info("sync %s of connection %s (%s %s) started: %s %s..%s", sync_id,
                 c->id, ig_provider_name(c->provider), c->account_id, kind, d1,
                 d2);
        return IG_OK;
}

/* The window of an incremental sync of c. */
static void sync__window(ig_state_t *st, const ig_conn_t *c, ig_day_t *since,
                         ig_day_t *until, bool *first) {
        ig_day_t today = ig_day_today(), mark;
        const char *su = ig_bson_str(&c->doc, "synced_until");
        *until = today;
        *first = !ig_bson_str(&c->doc, "first_sync_id");
        if (su && ig_day_parse(su, strlen(su), &mark)) {
                *since = mark - st->set->lookback_days;
                if (*since > today)
                        *since = today;
        } else {
                *since = today - st->set->initial_days + 1;
        }
}

/* The id of a sync a command makes: derived from the command, so a
 * redelivery makes the same sync. */
static void sync__id_of(const rt_ctx_t *ctx, const char *what,
                        char out[IG_ID_TEXT]) {
        const env_t *env = rt_env(ctx);
        char seed[256];
        snprintf(seed, sizeof(seed), "sync|%s|%.*s", what, (int)env->id.len,
                 env->id.ptr ? env->id.ptr : "");
        ig_record_id(env->created_at_ms, seed, out);
}

/* The sync record as its reply. */
static void sync__pack(msgpack_packer *pk, const bson_t *doc, void *arg) {
        (void)arg;
        static const char *const opt[] = {"stream", "error"};
        int64_t fin = ig_bson_date(doc, "finished_at");
        int64_t wait = ig_bson_date(doc, "waiting_until");
        const char *status = ig_bson_str(doc, "status");
        uint32_t n = 11 + (fin ? 1 : 0) +
                     (wait && status && strcmp(status, "running") == 0 ? 1 : 0);
        char t[32];
        bson_iter_t it, sub;
        for (size_t i = 0; i < 2; i++)
                n += ig_bson_str(doc, opt[i]) ? 1 : 0;
        msgpack_pack_map(pk, n);
        ig_kv_str(pk, "id", ig_bson_str(doc, "_id"));
        ig_kv_str(pk, "connection_id", ig_bson_str(doc, "connection_id"));
        ig_kv_str(pk, "provider", ig_bson_str(doc, "provider"));
        ig_kv_str(pk, "kind", ig_bson_str(doc, "kind"));
        ig_kv_str(pk, "status", status);
        ig_kv_str(pk, "since", ig_bson_str(doc, "since"));
        ig_kv_str(pk, "until", ig_bson_str(doc, "until"));
        ig_kv_int(pk, "pages", ig_bson_int(doc, "pages", 0));
        ig_kv_int(pk, "records", ig_bson_int(doc, "records", 0));
        codec_pack_str(pk, "streams");
        if (bson_iter_init_find(&it, doc, "streams") &&
            BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &sub)) {
                uint32_t k = 0;
                bson_iter_t cnt = sub;
                while (bson_iter_next(&cnt))
                        k++;
                msgpack_pack_map(pk, k);
                while (bson_iter_next(&sub))
                        ig_kv_int(pk, bson_iter_key(&sub),
                                  bson_iter_as_int64(&sub));
        } else {
                msgpack_pack_map(pk, 0);
        }
        ig_time_format(ig_bson_date(doc, "started_at"), t);
        ig_kv_str(pk, "started_at", t);
        if (fin) {
                ig_time_format(fin, t);
                ig_kv_str(pk, "finished_at", t);
        }
        if (wait && status && strcmp(status, "running") == 0) {
                ig_time_format(wait, t);
                ig_kv_str(pk, "waiting_until", t);
        }
        for (size_t i = 0; i < 2; i++)
                if (ig_bson_str(doc, opt[i]))
                        ig_kv_str(pk, opt[i], ig_bson_str(doc, opt[i]));
}

ig_err_t sync__find(ig_state_t *st, const char *id, const char *tenant,
                    bson_t *out) {
        bson_t filter = BSON_INITIALIZER;
        char errstr[256];
        store_err_t e;
        BSON_APPEND_UTF8(&filter, "_id", id);
        if (tenant)
                BSON_APPEND_UTF8(&filter, "tenant", tenant);
        e = store_find_one(st->store, IG_DB, IG_COLL_SYNCS, &filter, NULL, out,
                           errstr, sizeof(errstr));
        bson_destroy(&filter);
        if (e == STORE_NOT_FOUND)
                return IG_GONE;
        if (e) {
                log_warn("syncs: %s", errstr);
                return store_err_transient(e) ? IG_STORE_DOWN : IG_STORE;
        }
        return IG_OK;
}

/* ---------------------------------------------------------------------------
 * Schedules
 * ------------------------------------------------------------------------ */

ig_err_t ig_sync_schedule(ig_state_t *st, const ig_conn_t *c,
                          const env_t *env) {
        char id[64], errstr[256], key[IG_ID_TEXT];
        msgpack_sbuffer sb;
        msgpack_packer pk;
        schedule_spec_t spec = {0};
        timer_err_t e;

        snprintf(id, sizeof(id), "sync:%s", c->id);
        snprintf(key, sizeof(key), "%s", c->id);
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        ig_kv_str(&pk, "connection_id", c->id);
        ig_kv_str(&pk, "reason", "schedule");
        spec.id = id;
        spec.every_ms = (int64_t)st->set->sync_interval_s * 1000;
        spec.type = "integrations.sync.tick";
        spec.key = slice_of(key);
        spec.body = (slice_t){sb.data, sb.size};
        spec.caller = (cmd_caller_t){slice_of(c->tenant), env->user, env->roles,
                                     SLICE_NULL};
        e = schedule_set(st->timers, &spec, errstr, sizeof(errstr));
        msgpack_sbuffer_destroy(&sb);
        if (e) {
                log_warn("connection %s: schedule: %s", c->id, errstr);
                return e == TIMER_STORE_DOWN ? IG_STORE_DOWN : IG_STORE;
        }
        return IG_OK;
}

void ig_sync_unschedule(ig_state_t *st, const char *connection_id) {
        char id[64], errstr[256];
        timer_err_t e;
        snprintf(id, sizeof(id), "sync:%s", connection_id);
        e = schedule_cancel(st->timers, id, errstr, sizeof(errstr));
        if (e && e != TIMER_NOT_FOUND)
                log_warn("connection %s: schedule: %s", connection_id, errstr);
}

void ig_sync_cancel_all(ig_state_t *st, const char *connection_id) {
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
        int64_t now = (int64_t)clock_wall_ms();
        char errstr[256];
        BSON_APPEND_UTF8(&filter, "connection_id", connection_id);
        BSON_APPEND_UTF8(&filter, "status", "running");
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_UTF8(&set, "status", "cancelled");
        BSON_APPEND_UTF8(&set, "error", "the connection was disconnected");
        BSON_APPEND_DATE_TIME(&set, "finished_at", now);
        BSON_APPEND_DATE_TIME(&set, "updated_at", now);
        BSON_APPEND_DATE_TIME(&set, "expires_at", now + SYNC_KEEP_MS);
        bson_append_document_end(&update, &set);
        if (store_update(st->store, IG_DB, IG_COLL_SYNCS, &filter, &update,
                         STORE_MANY, NULL, errstr,
                         sizeof(errstr)) > STORE_NOT_FOUND)
                log_warn("syncs: %s", errstr);
        bson_destroy(&filter);
        bson_destroy(&update);
}

/* ---------------------------------------------------------------------------
 * Handlers: request, tick
 * ------------------------------------------------------------------------ */

handler_result_t ig_handle_sync_request(rt_ctx_t *ctx,
                                        const msgpack_object *body) {
        ig_state_t *st = rt_state(ctx);
        char tenant[128], conn_id[IG_ID_TEXT], kind[16], sync_id[IG_ID_TEXT],
                running[IG_ID_TEXT];
        ig_day_t since, until;
        bool first = false;
        ig_records_t events;
        ig_conn_t c;
        ig_err_t err;
        bson_t doc;

        if (!ig_caller_tenant(ctx, SCHEMA_ROLE_MEMBER, tenant))
                return HANDLER_OK;
        ig_map_copy(body, "connection_id", conn_id, sizeof(conn_id));
        ig_map_copy(body, "kind", kind, sizeof(kind));
        if (!kind[0])
                snprintf(kind, sizeof(kind), "manual");
        if ((err = ig_conn_load(st, conn_id, tenant, false, &c)))
                return ig_conn_missing(ctx, err);
        if (strcmp(c.status, "connected") != 0) {
                char why[128];
                snprintf(why, sizeof(why),
                         "the connection is %s: connect it again first",
                         c.status);
                rt_reply_problem(ctx, 409, "Not connected", why);
                ig_conn_clear(&c);
                return HANDLER_OK;
        }
        sync__id_of(ctx, kind, sync_id);
        if ((err = sync__running(st, c.id, sync__is_backfill(kind), sync_id,
                                 running))) {
                ig_conn_clear(&c);
                return ig_reply_error(ctx, err, NULL);
        }
        if (running[0]) {
                char why[160];
                snprintf(why, sizeof(why), "sync %s is running", running);
                rt_reply_problem(ctx, 409, "A sync is running", why);
                ig_conn_clear(&c);
                return HANDLER_OK;
        }
        if (sync__is_backfill(kind)) {
                int64_t days = ig_map_int(body, "days", st->set->backfill_days);
                until = ig_day_today();
                since = until - (ig_day_t)days + 1;
        } else {
                sync__window(st, &c, &since, &until, &first);
        }
        ig_records_init(&events, (int64_t)clock_wall_ms());
        err = sync__start(ctx, st, &c, sync_id, kind, since, until,
                          first && !sync__is_backfill(kind), &events);
        if (!err)
                err = sync__find(st, sync_id, NULL, &doc);
        if (err) {
                ig_records_clear(&events);
                ig_conn_clear(&c);
                return ig_reply_error(ctx, err, NULL);
        }
        ig_records_emit(ctx, &events);
        ig_records_clear(&events);
        sync__pack(rt_reply(ctx, 202), &doc, NULL);
        bson_destroy(&doc);
        ig_conn_clear(&c);
        return HANDLER_OK;
}

/* A tick for a connection just connected: publish connected, arm its
 * schedule, start its first sync. */
static handler_result_t sync__connected(rt_ctx_t *ctx, ig_state_t *st,
                                        ig_conn_t *c, ig_records_t *events) {
        ig_err_t err;
        ig_conn_event(events, c, "integrations.connection.connected",
                      "account_name", c->account_name,
                      ig_bson_date(&c->doc, "connected_at"));
        if ((err = ig_sync_schedule(st, c, rt_env(ctx))))
                return err == IG_STORE_DOWN ? HANDLER_TRANSIENT : HANDLER_OK;
        return HANDLER_OK;
}

handler_result_t ig_handle_sync_tick(rt_ctx_t *ctx,
                                     const msgpack_object *body) {
        ig_state_t *st = rt_state(ctx);
        char conn_id[IG_ID_TEXT], reason[16], sync_id[IG_ID_TEXT],
                running[IG_ID_TEXT], tenant[128];
        ig_day_t since, until;
        bool first;
        ig_records_t events;
        handler_result_t r = HANDLER_OK;
        rt_caller_t who;
        ig_conn_t c;
        ig_err_t err;

        rt_caller(ctx, &who);
        ig_copy_slice(tenant, sizeof(tenant), who.tenant);
        ig_copy_slice(conn_id, sizeof(conn_id),
                      codec_map_str(body, "connection_id"));
        ig_copy_slice(reason, sizeof(reason), codec_map_str(body, "reason"));
        /* Internal commands carry the tenant they were set up with: the
         * connection must be that tenant's. */
        if ((err = ig_conn_load(st, conn_id, tenant, false, &c))) {
                if (err == IG_GONE) {
                        log_info("tick for connection %s: no such connection "
                                 "(of this tenant)",
                                 conn_id);
                        ig_sync_unschedule(st, conn_id);
                        return HANDLER_OK;
                }
                return err == IG_STORE_DOWN ? HANDLER_TRANSIENT : HANDLER_OK;
        }
        if (strcmp(c.status, "connected") != 0) {
                log_info("tick for connection %s: it is %s, no sync", conn_id,
                         c.status);
                if (strcmp(c.status, "disconnected") == 0)
                        ig_sync_unschedule(st, conn_id);
                ig_conn_clear(&c);
                return HANDLER_OK;
        }
        ig_records_init(&events, (int64_t)clock_wall_ms());
        if (strcmp(reason, "connect") == 0 &&
            (r = sync__connected(ctx, st, &c, &events)) != HANDLER_OK)
                goto done;
        sync__id_of(ctx, "scheduled", sync_id);
        if ((err = sync__running(st, c.id, false, sync_id, running))) {
                r = err == IG_STORE_DOWN ? HANDLER_TRANSIENT : HANDLER_OK;
                goto done;
        }
        if (running[0]) {
                log_info("tick for connection %s: sync %s still runs", conn_id,
                         running);
        } else {
                sync__window(st, &c, &since, &until, &first);
                err = sync__start(ctx, st, &c, sync_id, "scheduled", since,
                                  until, first, &events);
                if (err) {
                        r = err == IG_STORE_DOWN ? HANDLER_TRANSIENT
                                                 : HANDLER_OK;
                        goto done;
                }
        }
        ig_records_emit(ctx, &events);
done:
        ig_records_clear(&events);
        ig_conn_clear(&c);
        return r;
}

/* ---------------------------------------------------------------------------
 * Reading syncs
 * ------------------------------------------------------------------------ */

handler_result_t ig_handle_syncs_get(rt_ctx_t *ctx,
                                     const msgpack_object *body) {
        ig_state_t *st = rt_state(ctx);
        char tenant[128], id[IG_ID_TEXT];
        ig_err_t err;
        bson_t doc;

        if (!ig_caller_tenant(ctx, SCHEMA_ROLE_VIEWER, tenant))
                return HANDLER_OK;
        ig_map_copy(body, "sync_id", id, sizeof(id));
        if ((err = sync__find(st, id, tenant, &doc))) {
                if (err == IG_GONE) {
                        rt_reply_problem(ctx, 404, "Not found", "no such sync");
                        return HANDLER_OK;
                }
                return ig_reply_error(ctx, err, NULL);
        }
        sync__pack(rt_reply(ctx, 200), &doc, NULL);
        bson_destroy(&doc);
        return HANDLER_OK;
}

handler_result_t ig_handle_syncs_list(rt_ctx_t *ctx,
                                      const msgpack_object *body) {
        ig_state_t *st = rt_state(ctx);
        char tenant[128], id[IG_ID_TEXT];
        bson_t filter = BSON_INITIALIZER;
        int64_t limit = ig_map_int(body, "limit", 20);
        handler_result_t r;
        ig_conn_t c;
        ig_err_t err;

        if (!ig_caller_tenant(ctx, SCHEMA_ROLE_VIEWER, tenant))
                return HANDLER_OK;
        ig_map_copy(body, "connection_id", id, sizeof(id));
        if ((err = ig_conn_load(st, id, tenant, false, &c)))
                return ig_conn_missing(ctx, err);
        ig_conn_clear(&c);
        BSON_APPEND_UTF8(&filter, "connection_id", id);
        BSON_APPEND_UTF8(&filter, "tenant", tenant);
        r = ig_reply_list(ctx, "syncs", IG_COLL_SYNCS, &filter, "started_at",
                          limit < 1     ? 1
                          : limit > 100 ? 100
                                        : limit,
                          sync__pack, NULL);
        bson_destroy(&filter);
        return r;
}
