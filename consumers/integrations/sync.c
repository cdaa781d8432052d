/*
 * sync.c - the sync engine (see sync.h): sync requests, schedule ticks,
 * pages, and the progress records of syncs.
 */
#include "sync.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "cmdsend.h"
#include "codec.h"
#include "log.h"
#include "msgid.h"

#define SYNC_MAX_ATTEMPTS 8
#define SYNC_KEEP_MS (30LL * 86400 * 1000)

/* ---------------------------------------------------------------------------
 * The page command
 * ------------------------------------------------------------------------ */

typedef struct page_cmd {
        char sync_id[IG_ID_TEXT];
        char connection_id[IG_ID_TEXT];
        int stream;
        int64_t page;
        char *cursor; /* JSON text */
        ig_day_t since, until;
        char kind[16];
        bool first_sync;
        int64_t records;
        json_t *counts; /* {stream: n} */
        int attempt;
} page_cmd_t;

static void page_cmd_clear(page_cmd_t *p) {
        free(p->cursor);
        json_decref(p->counts);
        memset(p, 0, sizeof(*p));
}

/* A map of {string: int} as a JSON object. */
static json_t *map_counts(const msgpack_object *v) {
        json_t *o = json_object();
        if (!v || v->type != MSGPACK_OBJECT_MAP)
                return o;
        for (uint32_t i = 0; i < v->via.map.size; i++) {
                const msgpack_object_kv *kv = &v->via.map.ptr[i];
                char k[64];
                if (kv->key.type != MSGPACK_OBJECT_STR)
                        continue;
                ig_copy_slice(
                        k, sizeof(k),
                        (slice_t){kv->key.via.str.ptr, kv->key.via.str.size});
                if (kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                        json_object_set_new(
                                o, k,
                                json_integer((json_int_t)kv->val.via.u64));
        }
        return o;
}

static bool page_cmd_read(const msgpack_object *body, page_cmd_t *p) {
        slice_t s;
        memset(p, 0, sizeof(*p));
        ig_copy_slice(p->sync_id, sizeof(p->sync_id),
                      codec_map_str(body, "sync_id"));
        ig_copy_slice(p->connection_id, sizeof(p->connection_id),
                      codec_map_str(body, "connection_id"));
        p->stream = (int)ig_map_int(body, "stream", 0);
        p->page = ig_map_int(body, "page", 0);
        s = codec_map_str(body, "cursor");
        p->cursor = xstrndup(s.ptr ? s.ptr : "{}", s.ptr ? s.len : 2);
        ig_copy_slice(p->kind, sizeof(p->kind), codec_map_str(body, "kind"));
        p->first_sync = ig_map_bool(body, "first_sync");
        p->records = ig_map_int(body, "records", 0);
        p->counts = map_counts(codec_map_get(body, "counts"));
        p->attempt = (int)ig_map_int(body, "attempt", 0);
        s = codec_map_str(body, "since");
        if (!ig_day_parse(s.ptr, s.len, &p->since))
                return false;
        s = codec_map_str(body, "until");
        return ig_day_parse(s.ptr, s.len, &p->until);
}

static void pack_counts(msgpack_packer *pk, const json_t *counts) {
        const char *k;
        json_t *v;
        msgpack_pack_map(pk, (uint32_t)json_object_size(counts));
        json_object_foreach((json_t *)counts, k, v)
                ig_kv_int(pk, k, json_integer_value(v));
}

static void page_cmd_pack(const page_cmd_t *p, msgpack_sbuffer *sb) {
        msgpack_packer pk;
        msgpack_sbuffer_init(sb);
        msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, p->attempt ? 12 : 11);
        ig_kv_str(&pk, "sync_id", p->sync_id);
        ig_kv_str(&pk, "connection_id", p->connection_id);
        ig_kv_int(&pk, "stream", p->stream);
        ig_kv_int(&pk, "page", p->page);
        ig_kv_str(&pk, "cursor", p->cursor);
        ig_kv_day(&pk, "since", p->since);
        ig_kv_day(&pk, "until", p->until);
        ig_kv_str(&pk, "kind", p->kind);
        codec_pack_str(&pk, "first_sync");
        if (p->first_sync)
                msgpack_pack_true(&pk);
        else
                msgpack_pack_false(&pk);
        ig_kv_int(&pk, "records", p->records);
        codec_pack_str(&pk, "counts");
        pack_counts(&pk, p->counts);
        if (p->attempt)
                ig_kv_int(&pk, "attempt", p->attempt);
}

static cmd_caller_t caller_of(const rt_ctx_t *ctx) {
        const env_t *env = rt_env(ctx);
        return (cmd_caller_t){env->tenant, env->user, env->roles,
                              env->correlation_id};
}

/* ---------------------------------------------------------------------------
 * Sending as a tenant
 * ------------------------------------------------------------------------ */

typedef struct send_wait {
        bus_delivery_t base;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool done;
        bus_err_t err;
} send_wait_t;

static void send__done(bus_delivery_t *d, bus_err_t err) {
        send_wait_t *w = (send_wait_t *)d;
        pthread_mutex_lock(&w->lock);
        w->done = true;
        w->err = err;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
}

ig_err_t ig_send_as(ig_state_t *st, const char *type, const char *key,
                    const msgpack_sbuffer *body, const char *tenant,
                    const char *user, const char *roles, int64_t at_ms,
                    const char *seed) {
        bus_t *bus = runtime_bus(st->rt);
        send_wait_t w = {.base = {send__done}};
        cmdsend_msg_t m = {0};
        char topic[256];
        bus_err_t err;

        if (!bus) {
                log_warn("%s: no broker here (harness): not sent", type);
                return IG_NOT_CONFIGURED;
        }
        cmdsend_derive_id(at_ms, "integrations", seed, 0, m.id);
        m.type = type;
        m.version = 1;
        m.key = slice_of(key);
        m.body = (slice_t){body->data, body->size};
        m.caller = (cmd_caller_t){slice_of(tenant), slice_of(user),
                                  slice_of(roles), SLICE_NULL};
        m.created_at_ms = at_ms;
        bus_topic(st->cfg, "integrations.commands", topic, sizeof(topic));
        pthread_mutex_init(&w.lock, NULL);
        pthread_cond_init(&w.cond, NULL);
        err = cmdsend_produce(bus, topic, &m, &w.base);
        if (err == BUS_OK) {
                pthread_mutex_lock(&w.lock);
                while (!w.done)
                        pthread_cond_wait(&w.cond, &w.lock);
                err = w.err;
                pthread_mutex_unlock(&w.lock);
        }
        pthread_cond_destroy(&w.cond);
        pthread_mutex_destroy(&w.lock);
        if (err != BUS_OK) {
                log_warn("%s: not produced (%s)", type, bus_strerror(err));
                return IG_TRANSIENT;
        }
        return IG_OK;
}

/* ---------------------------------------------------------------------------
 * Sync records
 * ------------------------------------------------------------------------ */

static bool is_backfill(const char *kind) {
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

static ig_err_t sync__update(ig_state_t *st, const char *sync_id,
                             const bson_t *set, const char *only_status) {
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

static void pack_sync_event_head(msgpack_packer *pk, uint32_t n,
                                 const char *sync_id, const ig_conn_t *c,
                                 const char *kind) {
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
        BSON_APPEND_BOOL(&soi, "backfill", is_backfill(kind));
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
        if (!is_backfill(kind)) {
                bson_t s = BSON_INITIALIZER;
                BSON_APPEND_UTF8(&s, "running_sync_id", sync_id);
                ig_conn_update(st, c->id, &s);
                bson_destroy(&s);
        }
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        pack_sync_event_head(&pk, 7, sync_id, c, kind);
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
        page_cmd_pack(&p, &sb);
        snprintf(key, sizeof(key), "%s", sync_id);
        rt_send(ctx, "integrations.sync.page", slice_of(key), &sb);
        msgpack_sbuffer_destroy(&sb);
        page_cmd_clear(&p);
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
static void sync__pack(void *arg, msgpack_packer *pk, const bson_t *doc) {
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

static ig_err_t sync__find(ig_state_t *st, const char *id, const char *tenant,
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
        if ((err = sync__running(st, c.id, is_backfill(kind), sync_id,
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
        if (is_backfill(kind)) {
                int64_t days = ig_map_int(body, "days", st->set->backfill_days);
                until = ig_day_today();
                since = until - (ig_day_t)days + 1;
        } else {
                sync__window(st, &c, &since, &until, &first);
        }
        ig_records_init(&events, (int64_t)clock_wall_ms());
        err = sync__start(ctx, st, &c, sync_id, kind, since, until,
                          first && !is_backfill(kind), &events);
        if (!err)
                err = sync__find(st, sync_id, NULL, &doc);
        if (err) {
                ig_records_clear(&events);
                ig_conn_clear(&c);
                return ig_reply_error(ctx, err, NULL);
        }
        ig_records_emit(ctx, &events);
        ig_records_clear(&events);
        sync__pack(NULL, rt_reply(ctx, 202), &doc);
        bson_destroy(&doc);
        ig_conn_clear(&c);
        return HANDLER_OK;
}

/* A tick for a connection just connected: publish connected, arm its
 * schedule, start its first sync. */
static handler_result_t sync__connected(rt_ctx_t *ctx, ig_state_t *st,
                                        ig_conn_t *c, ig_records_t *events) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        char identity[128];
        int64_t at = ig_bson_date(&c->doc, "connected_at");
        ig_err_t err;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 4);
        ig_kv_str(&pk, "connection_id", c->id);
        ig_kv_str(&pk, "provider", ig_provider_name(c->provider));
        ig_kv_str(&pk, "account_id", c->account_id);
        ig_kv_str(&pk, "account_name", c->account_name);
        snprintf(identity, sizeof(identity), "%s|%lld", c->id, (long long)at);
        ig_rec_event(events, "integrations.connection.connected", c->tenant,
                     ig_provider_name(c->provider), c->account_id, identity, at,
                     &sb);
        msgpack_sbuffer_destroy(&sb);
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
 * Pages
 * ------------------------------------------------------------------------ */

/* End the sync: failed with why, or completed. */
static void sync__end(rt_ctx_t *ctx, ig_state_t *st, const ig_conn_t *c,
                      const page_cmd_t *p, int64_t started_at, const char *why,
                      ig_records_t *events) {
        int64_t now = (int64_t)clock_wall_ms();
        bson_t set = BSON_INITIALIZER, cset = BSON_INITIALIZER, streams;
        msgpack_sbuffer sb;
        msgpack_packer pk;
        char identity[128], d1[11], d2[11];
        bool first = false;
        const char *k;
        json_t *v;

        ig_day_format(p->since, d1);
        ig_day_format(p->until, d2);
        BSON_APPEND_UTF8(&set, "status", why ? "failed" : "completed");
        if (why)
                BSON_APPEND_UTF8(&set, "error", why);
        BSON_APPEND_INT64(&set, "records", p->records);
        BSON_APPEND_DOCUMENT_BEGIN(&set, "streams", &streams);
        json_object_foreach(p->counts, k, v)
                BSON_APPEND_INT64(&streams, k, json_integer_value(v));
        bson_append_document_end(&set, &streams);
        BSON_APPEND_DATE_TIME(&set, "finished_at", now);
        BSON_APPEND_DATE_TIME(&set, "updated_at", now);
        BSON_APPEND_DATE_TIME(&set, "expires_at", now + SYNC_KEEP_MS);
        sync__update(st, p->sync_id, &set, NULL);
        bson_destroy(&set);

        BSON_APPEND_DATE_TIME(&cset, "last_sync_at", now);
        BSON_APPEND_UTF8(&cset, "last_sync_status",
                         why ? "failed" : "completed");
        BSON_APPEND_UTF8(&cset, "last_sync_id", p->sync_id);
        if (why)
                BSON_APPEND_UTF8(&cset, "last_error", why);
        else if (!is_backfill(p->kind))
                BSON_APPEND_UTF8(&cset, "synced_until", d2);
        ig_conn_update(st, c->id, &cset);
        bson_destroy(&cset);
        if (!is_backfill(p->kind)) {
                /* running_sync_id goes only if it is still ours. */
                bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, un;
                char errstr[256];
                BSON_APPEND_UTF8(&f, "_id", c->id);
                BSON_APPEND_UTF8(&f, "running_sync_id", p->sync_id);
                BSON_APPEND_DOCUMENT_BEGIN(&u, "$unset", &un);
                BSON_APPEND_UTF8(&un, "running_sync_id", "");
                bson_append_document_end(&u, &un);
                store_update(st->store, IG_DB, IG_COLL_CONNS, &f, &u, 0, NULL,
                             errstr, sizeof(errstr));
                bson_destroy(&f);
                bson_destroy(&u);
        }
        if (!why) {
                /* The first completed sync claims the mark; a redelivery of
                 * this page finds it its own and says first again. */
                bson_t f = BSON_INITIALIZER, u = BSON_INITIALIZER, s, ex, doc;
                char errstr[256];
                BSON_APPEND_UTF8(&f, "_id", c->id);
                BSON_APPEND_DOCUMENT_BEGIN(&f, "first_sync_id", &ex);
                BSON_APPEND_BOOL(&ex, "$exists", false);
                bson_append_document_end(&f, &ex);
                BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &s);
                BSON_APPEND_UTF8(&s, "first_sync_id", p->sync_id);
                bson_append_document_end(&u, &s);
                store_update(st->store, IG_DB, IG_COLL_CONNS, &f, &u, 0, NULL,
                             errstr, sizeof(errstr));
                bson_destroy(&f);
                bson_destroy(&u);
                f = (bson_t)BSON_INITIALIZER;
                BSON_APPEND_UTF8(&f, "_id", c->id);
                if (store_find_one(st->store, IG_DB, IG_COLL_CONNS, &f, NULL,
                                   &doc, errstr, sizeof(errstr)) == STORE_OK) {
                        const char *fid = ig_bson_str(&doc, "first_sync_id");
                        first = fid && strcmp(fid, p->sync_id) == 0;
                        bson_destroy(&doc);
                }
                bson_destroy(&f);
        }

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        if (why) {
                pack_sync_event_head(&pk, 6, p->sync_id, c, p->kind);
                ig_kv_str(&pk, "error", why);
        } else {
                pack_sync_event_head(&pk, 10, p->sync_id, c, p->kind);
                ig_kv_int(&pk, "records", p->records);
                codec_pack_str(&pk, "streams");
                pack_counts(&pk, p->counts);
                codec_pack_str(&pk, "first_sync");
                if (first)
                        msgpack_pack_true(&pk);
                else
                        msgpack_pack_false(&pk);
                ig_kv_str(&pk, "since", d1);
                ig_kv_str(&pk, "until", d2);
        }
        snprintf(identity, sizeof(identity), "%s", p->sync_id);
        ig_rec_event(events,
                     why ? "integrations.sync.failed"
                         : "integrations.sync.completed",
                     c->tenant, ig_provider_name(c->provider), c->account_id,
                     identity, started_at, &sb);
        msgpack_sbuffer_destroy(&sb);
        if (why)
                log_warn("sync %s of connection %s failed: %s", p->sync_id,
                         c->id, why);
        else
                log_info("sync %s of connection %s completed: %lld records",
                         p->sync_id, c->id, (long long)p->records);
        (void)ctx;
}

/* Send this page again later (a rate limit, a failure that may pass). */
static ig_err_t sync__later(rt_ctx_t *ctx, ig_state_t *st, page_cmd_t *p,
                            int64_t wait_ms, bool retry) {
        char id[160], errstr[256];
        msgpack_sbuffer sb;
        timer_spec_t spec = {0};
        timer_err_t e;
        bson_t set = BSON_INITIALIZER;
        int64_t at = (int64_t)clock_wall_ms() + wait_ms;

        const env_t *env = rt_env(ctx);
        if (retry)
                p->attempt++;
        /* One timer per page command: its rerun (a crash before its
         * operation record) arms the same timer again, not a second. */
        snprintf(id, sizeof(id), "retry:%.*s", (int)env->id.len,
                 env->id.ptr ? env->id.ptr : "");
        page_cmd_pack(p, &sb);
        spec.id = id;
        spec.fire_at_ms = at;
        spec.type = "integrations.sync.page";
        spec.key = slice_of(p->sync_id);
        spec.body = (slice_t){sb.data, sb.size};
        spec.caller = caller_of(ctx);
        e = timer_set(st->timers, &spec, errstr, sizeof(errstr));
        msgpack_sbuffer_destroy(&sb);
        if (e && e != TIMER_FIRED) {
                log_warn("sync %s: timer: %s", p->sync_id, errstr);
                return e == TIMER_STORE_DOWN ? IG_STORE_DOWN : IG_STORE;
        }
        BSON_APPEND_DATE_TIME(&set, "waiting_until", at);
        BSON_APPEND_DATE_TIME(&set, "updated_at", (int64_t)clock_wall_ms());
        BSON_APPEND_DATE_TIME(&set, "alive_until",
                              at + (int64_t)st->set->sync_stale_s * 1000);
        sync__update(st, p->sync_id, &set, "running");
        bson_destroy(&set);
        log_info("sync %s page %lld: again in %lld ms (attempt %d)", p->sync_id,
                 (long long)p->page, (long long)wait_ms, p->attempt);
        return IG_OK;
}

/* Publish connection.invalidated (once) and fail the sync. */
void ig_sync_invalidate(ig_state_t *st, ig_conn_t *c, const char *reason,
                        ig_records_t *events) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        char identity[128];
        int64_t now = (int64_t)clock_wall_ms();
        if (!ig_conn_invalidate(st, c, reason))
                return;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 4);
        ig_kv_str(&pk, "connection_id", c->id);
        ig_kv_str(&pk, "provider", ig_provider_name(c->provider));
        ig_kv_str(&pk, "account_id", c->account_id);
        ig_kv_str(&pk, "reason", reason);
        snprintf(identity, sizeof(identity), "%s|%lld", c->id, (long long)now);
        ig_rec_event(events, "integrations.connection.invalidated", c->tenant,
                     ig_provider_name(c->provider), c->account_id, identity,
                     now, &sb);
        msgpack_sbuffer_destroy(&sb);
        log_warn("connection %s needs re-auth: %s", c->id, reason);
}

static void sync__refreshed(ig_conn_t *c, ig_records_t *events) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        char identity[128];
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 3);
        ig_kv_str(&pk, "connection_id", c->id);
        ig_kv_str(&pk, "provider", ig_provider_name(c->provider));
        ig_kv_str(&pk, "account_id", c->account_id);
        snprintf(identity, sizeof(identity), "%s|%lld", c->id,
                 (long long)c->creds.expires_at_ms);
        ig_rec_event(events, "integrations.connection.refreshed", c->tenant,
                     ig_provider_name(c->provider), c->account_id, identity,
                     (int64_t)clock_wall_ms(), &sb);
        msgpack_sbuffer_destroy(&sb);
}

/* Read the page: fresh credentials, the fetch, and when the provider
 * refuses the token, one forced refresh and a second fetch. */
static ig_err_t sync__fetch(ig_state_t *st, ig_conn_t *c, ig_job_t *job,
                            const ig_stream_t *stream, ig_page_t *pg,
                            const char *cursor, ig_records_t *events) {
        bool refreshed = false;
        ig_err_t err = IG_OK;

        for (int round = 0; round < 2; round++) {
                json_error_t je;
                err = ig_conn_fresh(st, c, job, round > 0, &refreshed);
                if (refreshed)
                        sync__refreshed(c, events);
                if (err)
                        return err;
                json_decref(pg->cursor);
                pg->cursor = json_loads(cursor, 0, &je);
                if (!json_is_object(pg->cursor)) {
                        json_decref(pg->cursor);
                        pg->cursor = json_object();
                }
                ig_records_clear(pg->out);
                pg->done = false;
                job->error[0] = '\0';
                err = stream->fetch(pg);
                if (err != IG_AUTH || !c->c->refresh)
                        return err;
                log_info("connection %s: %s; refreshing once", c->id,
                         job->error);
        }
        return err;
}

/*
 * Send the next page's command. Not as an output of this handler: outputs
 * are kept in the operation record, and a command answered from it (a
 * redelivery after a crash) sends them all again, so each next page would
 * be sent again too, and the rest of the sync published twice (same ids).
 * Produced here, under an id derived from (sync, page), it is one message
 * however often this page runs: a redelivered page sends it again under
 * the same id, which the operation log answers without going further. It
 * is acknowledged before this page's records are: if we die in between,
 * this page is handled again (its records are not recorded yet) and
 * publishes them. Without a broker (the harness) it is an output.
 */
static ig_err_t sync__next(rt_ctx_t *ctx, ig_state_t *st,
                           const page_cmd_t *next, const char *tenant,
                           int64_t started_at, const msgpack_sbuffer *sb) {
        char seed[128];
        if (!runtime_bus(st->rt)) {
                rt_send(ctx, "integrations.sync.page", slice_of(next->sync_id),
                        sb);
                return IG_OK;
        }
        snprintf(seed, sizeof(seed), "page|%s|%lld", next->sync_id,
                 (long long)next->page);
        return ig_send_as(st, "integrations.sync.page", next->sync_id, sb,
                          tenant, "", "", started_at, seed);
}

/* Progress of a page that went well: counts, what comes next. */
static void sync__progress(ig_state_t *st, const page_cmd_t *p,
                           const char *stream, bool ended) {
        bson_t set = BSON_INITIALIZER, streams;
        int64_t now = (int64_t)clock_wall_ms();
        const char *k;
        json_t *v;
        if (ended)
                return; /* sync__end wrote the final figures */
        BSON_APPEND_INT64(&set, "pages", p->page + 1);
        BSON_APPEND_INT64(&set, "records", p->records);
        BSON_APPEND_UTF8(&set, "stream", stream);
        BSON_APPEND_DOCUMENT_BEGIN(&set, "streams", &streams);
        json_object_foreach(p->counts, k, v)
                BSON_APPEND_INT64(&streams, k, json_integer_value(v));
        bson_append_document_end(&set, &streams);
        BSON_APPEND_DATE_TIME(&set, "updated_at", now);
        BSON_APPEND_DATE_TIME(&set, "waiting_until", 0);
        BSON_APPEND_DATE_TIME(&set, "alive_until",
                              now + (int64_t)st->set->sync_stale_s * 1000);
        sync__update(st, p->sync_id, &set, "running");
        bson_destroy(&set);
}

/* The delay before try attempt + 1 of a page that failed: 5 s doubling
 * to 5 minutes. */
static int64_t sync__backoff(int attempt) {
        int64_t d = 5000;
        for (int i = 0; i < attempt && d < 300000; i++)
                d *= 2;
        return d > 300000 ? 300000 : d;
}

handler_result_t ig_handle_sync_page(rt_ctx_t *ctx,
                                     const msgpack_object *body) {
        ig_state_t *st = rt_state(ctx);
        handler_result_t r = HANDLER_OK;
        ig_records_t recs, events, tail;
        const ig_stream_t *stream;
        int64_t started_at;
        char tenant[128], why[320];
        ig_page_t pg = {0};
        ig_job_t job;
        page_cmd_t p;
        ig_conn_t c;
        ig_err_t err;
        bson_t sdoc;

        if (!page_cmd_read(body, &p)) {
                log_error("sync page: malformed window");
                page_cmd_clear(&p);
                return HANDLER_PERMANENT;
        }
        if ((err = sync__find(st, p.sync_id, NULL, &sdoc))) {
                page_cmd_clear(&p);
                if (err == IG_GONE) {
                        log_warn("sync page: sync %s is unknown", p.sync_id);
                        return HANDLER_OK;
                }
                return err == IG_STORE_DOWN ? HANDLER_TRANSIENT
                                            : HANDLER_PERMANENT;
        }
        if (strcmp(ig_bson_str(&sdoc, "status") ? ig_bson_str(&sdoc, "status")
                                                : "",
                   "running") != 0) {
                log_info("sync %s is %s: page %lld dropped", p.sync_id,
                         ig_bson_str(&sdoc, "status"), (long long)p.page);
                bson_destroy(&sdoc);
                page_cmd_clear(&p);
                return HANDLER_OK;
        }
        started_at = ig_bson_date(&sdoc, "started_at");
        snprintf(tenant, sizeof(tenant), "%s",
                 ig_bson_str(&sdoc, "tenant") ? ig_bson_str(&sdoc, "tenant")
                                              : "");
        bson_destroy(&sdoc);

        ig_records_init(&events, (int64_t)clock_wall_ms());
        ig_records_init(&tail, (int64_t)clock_wall_ms());
        ig_records_init(&recs, (int64_t)clock_wall_ms());
        err = ig_conn_load(st, p.connection_id, tenant, true, &c);
        if (err == IG_STORE_DOWN) {
                r = HANDLER_TRANSIENT;
                goto out;
        }
        if (err == IG_GONE || (!err && strcmp(c.status, "connected") != 0)) {
                if (err) {
                        log_warn("sync %s: connection %s is gone", p.sync_id,
                                 p.connection_id);
                        goto out;
                }
                snprintf(why, sizeof(why), "the connection is %s", c.status);
                sync__end(ctx, st, &c, &p, started_at, why, &tail);
                goto emit;
        }
        if (err) {
                snprintf(why, sizeof(why), "credentials: %s", ig_strerror(err));
                sync__end(ctx, st, &c, &p, started_at, why, &tail);
                goto emit;
        }
        if (!c.has_creds) {
                sync__end(ctx, st, &c, &p, started_at,
                          "the connection has no credentials", &tail);
                goto emit;
        }
        if (p.stream < 0 || (size_t)p.stream >= c.c->n_streams) {
                sync__end(ctx, st, &c, &p, started_at, "no such stream", &tail);
                goto emit;
        }
        stream = &c.c->streams[p.stream];
        ig_conn_job(st, &c, &job);
        pg.job = &job;
        pg.since = p.since;
        pg.until = p.until;
        pg.kind = p.kind;
        pg.out = &recs;
        err = sync__fetch(st, &c, &job, stream, &pg, p.cursor, &events);
        switch (err) {
        case IG_OK: {
                page_cmd_t next = p;
                msgpack_sbuffer sb;
                char *cur;
                bool ended = false;
                json_object_set_new(
                        p.counts, stream->name,
                        json_integer(ig_json_int(p.counts, stream->name, 0) +
                                     (json_int_t)recs.n));
                p.records += (int64_t)recs.n;
                next = p;
                next.page = p.page + 1;
                next.attempt = 0;
                if (!pg.done) {
                        cur = json_dumps(pg.cursor, JSON_COMPACT);
                        next.cursor = cur;
                } else if ((size_t)p.stream + 1 < c.c->n_streams) {
                        next.stream = p.stream + 1;
                        next.cursor = cur = xstrdup("{}");
                } else {
                        cur = NULL;
                        ended = true;
                        sync__end(ctx, st, &c, &p, started_at, NULL, &tail);
                }
                if (cur) {
                        page_cmd_pack(&next, &sb);
                        err = sync__next(ctx, st, &next, tenant, started_at,
                                         &sb);
                        msgpack_sbuffer_destroy(&sb);
                        free(cur);
                        if (err) {
                                r = HANDLER_TRANSIENT;
                                goto out;
                        }
                }
                sync__progress(
                        st, &p,
                        c.c->streams[ended ? p.stream : next.stream].name,
                        ended);
                break;
        }
        case IG_AUTH:
                snprintf(why, sizeof(why), "needs re-auth: %s",
                         job.error[0] ? job.error : "credentials refused");
                ig_sync_invalidate(st, &c,
                                   job.error[0] ? job.error
                                                : "credentials refused",
                                   &events);
                sync__end(ctx, st, &c, &p, started_at, why, &tail);
                break;
        case IG_RATE_LIMITED:
                if ((err = sync__later(ctx, st, &p, job.wait_ms, false)))
                        r = err == IG_STORE_DOWN ? HANDLER_TRANSIENT
                                                 : HANDLER_PERMANENT;
                break;
        case IG_STORE_DOWN:
                r = HANDLER_TRANSIENT;
                break;
        case IG_TRANSIENT:
                if (p.attempt + 1 < SYNC_MAX_ATTEMPTS) {
                        if ((err = sync__later(ctx, st, &p,
                                               sync__backoff(p.attempt), true)))
                                r = err == IG_STORE_DOWN ? HANDLER_TRANSIENT
                                                         : HANDLER_PERMANENT;
                        break;
                }
                __attribute__((fallthrough)); /* tried enough */
        default:
                snprintf(why, sizeof(why), "%s",
                         job.error[0] ? job.error : ig_strerror(err));
                sync__end(ctx, st, &c, &p, started_at, why, &tail);
                break;
        }
emit:
        if (r == HANDLER_OK) {
                ig_records_emit(ctx, &events);
                ig_records_emit(ctx, &recs);
                ig_records_emit(ctx, &tail);
        }
out:
        json_decref(pg.cursor);
        ig_records_clear(&events);
        ig_records_clear(&recs);
        ig_records_clear(&tail);
        ig_conn_clear(&c);
        page_cmd_clear(&p);
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
        sync__pack(NULL, rt_reply(ctx, 200), &doc);
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
