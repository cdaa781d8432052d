/*
 * sync_page.c - a page of a sync (integrations.sync.page, see sync.h):
 * fresh credentials, the connector's fetch, its records published, the
 * next page sent, or a wait (durable timer), or the sync's end.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "codec.h"
#include "log.h"
#include "msgid.h"
#include "sync_internal.h"

#define SYNC_MAX_ATTEMPTS 8

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
        else if (!sync__is_backfill(p->kind))
                BSON_APPEND_UTF8(&cset, "synced_until", d2);
        ig_conn_update(st, c->id, &cset);
        bson_destroy(&cset);
        if (!sync__is_backfill(p->kind)) {
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
                sync__event_head(&pk, 6, p->sync_id, c, p->kind);
                ig_kv_str(&pk, "error", why);
        } else {
                sync__event_head(&pk, 10, p->sync_id, c, p->kind);
                ig_kv_int(&pk, "records", p->records);
                codec_pack_str(&pk, "streams");
                sync__pack_counts(&pk, p->counts);
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
        sync__cmd_pack(p, &sb);
        spec.id = id;
        spec.fire_at_ms = at;
        spec.type = "integrations.sync.page";
        spec.key = slice_of(p->sync_id);
        spec.body = (slice_t){sb.data, sb.size};
        spec.caller = sync__caller(ctx);
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
        if (!ig_conn_invalidate(st, c, reason))
                return;
        ig_conn_event(events, c, "integrations.connection.invalidated",
                      "reason", reason, (int64_t)clock_wall_ms());
        log_warn("connection %s needs re-auth: %s", c->id, reason);
}

static void sync__refreshed(ig_conn_t *c, ig_records_t *events) {
        ig_conn_event(events, c, "integrations.connection.refreshed", NULL,
                      NULL, c->creds.expires_at_ms);
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
 * Produced here, under an id derived from (sync, page), once the broker
 * took it the sync's record says so (produced_page): a page handled again
 * (a crash before its operation record: its records are published again,
 * same ids) does not send a second copy, which would double the chain from
 * there on. In the instant between the broker's ack and that mark a second
 * copy can still be made; its handling then finds the mark of the first
 * and goes no further. Without a broker (the harness) it is an output.
 */
static ig_err_t sync__next(rt_ctx_t *ctx, ig_state_t *st,
                           const page_cmd_t *next, const char *tenant,
                           int64_t started_at, int64_t produced,
                           const msgpack_sbuffer *sb) {
        char seed[128];
        bson_t set = BSON_INITIALIZER;
        ig_err_t err;
        if (!runtime_bus(st->rt)) {
                rt_send(ctx, "integrations.sync.page", slice_of(next->sync_id),
                        sb);
                return IG_OK;
        }
        if (produced >= next->page)
                return IG_OK; /* this page ran before and sent it */
        snprintf(seed, sizeof(seed), "page|%s|%lld", next->sync_id,
                 (long long)next->page);
        if ((err = ig_send_as(st, "integrations.sync.page", next->sync_id, sb,
                              tenant, "", "", started_at, seed)))
                return err;
        BSON_APPEND_INT64(&set, "produced_page", next->page);
        err = sync__update(st, next->sync_id, &set, NULL);
        bson_destroy(&set);
        return err;
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
        int64_t started_at, produced;
        char tenant[128], why[320];
        ig_page_t pg = {0};
        ig_job_t job;
        page_cmd_t p;
        ig_conn_t c;
        ig_err_t err;
        bson_t sdoc;

        if (!sync__cmd_read(body, &p)) {
                log_error("sync page: malformed window");
                sync__cmd_clear(&p);
                return HANDLER_PERMANENT;
        }
        if ((err = sync__find(st, p.sync_id, NULL, &sdoc))) {
                sync__cmd_clear(&p);
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
                sync__cmd_clear(&p);
                return HANDLER_OK;
        }
        started_at = ig_bson_date(&sdoc, "started_at");
        produced = ig_bson_int(&sdoc, "produced_page", -1);
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
                        sync__cmd_pack(&next, &sb);
                        err = sync__next(ctx, st, &next, tenant, started_at,
                                         produced, &sb);
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
        sync__cmd_clear(&p);
        return r;
}
