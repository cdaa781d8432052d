/*
 * inbound.c - what comes back to a run: a timer that fired, the outcome of
 * an outbound call, a matched event, a child run's end, and replies of
 * other groups to command steps.
 *
 * Each one names the attempt it is for; one for an attempt no longer in
 * flight (a late reply after a timeout, a redelivered outcome) changes
 * nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentkit_internal.h"

typedef struct ak_result {
        const char *step_id;
        int a;
        json_t *body; /* the message as JSON */
        int status;   /* replies */
} ak_result_t;

/* Internal commands answer 200 {} (a transition may answer otherwise). */
static void ak__ok(rt_ctx_t *ctx) {
        msgpack_pack_map(rt_reply(ctx, 200), 0);
}

static const char *ak__text(const msgpack_object *body, const char *key,
                            char *buf, size_t size) {
        slice_t s = codec_map_str(body, key);
        snprintf(buf, size, "%.*s", (int)s.len, s.ptr ? s.ptr : "");
        return buf;
}

/* ---------------------------------------------------------------------------
 * Timers
 * ------------------------------------------------------------------------ */

static bool ak__wake_apply(ak_tx_t *tx, void *arg) {
        ak_result_t *r = arg;
        if (!tx->run)
                return true;
        tx->changed =
                ak_run_wake(tx, ak_str(r->body, "reason"), r->step_id, r->a);
        return true;
}

handler_result_t ak_run_wake_cmd(rt_ctx_t *ctx, const msgpack_object *body) {
        char id[MSGID_TEXT_SIZE];
        ak_result_t r = {0};
        handler_result_t res;
        ak__ok(ctx);
        r.body = ak_json_of_msgpack(body);
        r.step_id = ak_str(r.body, "step_id");
        r.a = (int)ak_int(r.body, "attempt", 0);
        res = ak_tx_run(ctx, ak__text(body, "run_id", id, sizeof(id)),
                        ak__wake_apply, &r);
        json_decref(r.body);
        return res;
}

/* ---------------------------------------------------------------------------
 * Outbound calls (http and llm steps)
 * ------------------------------------------------------------------------ */

/* An http step's output: the status and the body (JSON when it is). */
static json_t *ak__http_output(const json_t *report) {
        const char *text = ak_str(report, "body");
        json_t *body = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
        if (!body)
                body = text ? json_string(text) : json_null();
        if (!body)
                body = json_null();
        return json_pack("{s:I, s:o}", "status",
                         (json_int_t)ak_int(report, "status", 0), "body", body);
}

static bool ak__outcome_apply(ak_tx_t *tx, void *arg) {
        ak_result_t *r = arg;
        const json_t *b = r->body;
        int status = (int)ak_int(b, "status", 0);
        ak_step_t step;
        char err[200];
        if (!tx->run || !ak_step_spec(tx, r->step_id, &step))
                return true;
        if (strcmp(ak_str(b, "outcome"), "sent") == 0) {
                json_t *out = step.kind == AK_LLM
                                      ? ak_llm_output(ak_str(b, "body"), err,
                                                      sizeof(err))
                                      : ak__http_output(b);
                if (!out) {
                        tx->changed = ak_step_fail(tx, r->step_id, r->a, err,
                                                   status, false);
                        return true;
                }
                tx->changed = ak_step_done(tx, r->step_id, r->a, out);
                return true;
        }
        if (status)
                snprintf(err, sizeof(err), "HTTP %d%s%s", status,
                         ak_str(b, "error") ? ": " : "",
                         ak_str(b, "error") ? ak_str(b, "error") : "");
        else
                snprintf(err, sizeof(err), "%s",
                         ak_str(b, "error") ? ak_str(b, "error")
                                            : "the call failed");
        tx->changed = ak_step_fail(tx, r->step_id, r->a, err, status, false);
        return true;
}

handler_result_t ak_run_outcome(rt_ctx_t *ctx, const msgpack_object *body) {
        char oid[OUTBOX_ID_MAX + 1], run_id[MSGID_TEXT_SIZE],
                step_id[AK_ID_MAX * 2 + 1];
        ak_result_t r = {0};
        handler_result_t res;
        char *p1, *p2;
        ak__ok(ctx);
        ak__text(body, "outbox_id", oid, sizeof(oid));
        /* "<run>|<step>|<attempt>" */
        if (!(p1 = strchr(oid, '|')) || !(p2 = strrchr(oid, '|')) || p1 == p2 ||
            (size_t)(p1 - oid) >= sizeof(run_id) ||
            (size_t)(p2 - p1 - 1) >= sizeof(step_id)) {
                log_warn("an outcome for outbox record %s is not ours", oid);
                return HANDLER_OK;
        }
        snprintf(run_id, sizeof(run_id), "%.*s", (int)(p1 - oid), oid);
        snprintf(step_id, sizeof(step_id), "%.*s", (int)(p2 - p1 - 1), p1 + 1);
        r.step_id = step_id;
        r.a = atoi(p2 + 1);
        r.body = ak_json_of_msgpack(body);
        res = ak_tx_run(ctx, run_id, ak__outcome_apply, &r);
        json_decref(r.body);
        return res;
}

/* ---------------------------------------------------------------------------
 * Events (wait_event) and children
 * ------------------------------------------------------------------------ */

static bool ak__matched_apply(ak_tx_t *tx, void *arg) {
        ak_result_t *r = arg;
        const json_t *b = r->body;
        if (!tx->run)
                return true;
        tx->changed =
                ak_step_done(tx, r->step_id, r->a,
                             json_pack("{s:{s:s?, s:s?, s:O}}", "event", "id",
                                       ak_str(b, "event_id"), "type",
                                       ak_str(b, "event_type"), "data",
                                       json_object_get(b, "event")));
        if (!tx->changed) {
                /* The wait is over (a timeout, a cancel): its entry goes,
                 * should it still be there. */
                json_t *S = ak_step_state(tx, r->step_id);
                json_t *rec = ak_attempt(S, r->a);
                ak_wait_remove(tx->st, tx->run, r->step_id, r->a,
                               ak_str(json_object_get(rec, "input"), "event"));
        }
        return true;
}

handler_result_t ak_run_matched(rt_ctx_t *ctx, const msgpack_object *body) {
        char id[MSGID_TEXT_SIZE];
        ak_result_t r = {0};
        handler_result_t res;
        ak__ok(ctx);
        r.body = ak_json_of_msgpack(body);
        r.step_id = ak_str(r.body, "step_id");
        r.a = (int)ak_int(r.body, "attempt", 0);
        res = ak_tx_run(ctx, ak__text(body, "run_id", id, sizeof(id)),
                        ak__matched_apply, &r);
        json_decref(r.body);
        return res;
}

static bool ak__child_apply(ak_tx_t *tx, void *arg) {
        ak_result_t *r = arg;
        const json_t *b = r->body;
        const char *st = ak_str(b, "status");
        char err[300];
        if (!tx->run)
                return true;
        if (strcmp(st, "completed") == 0) {
                json_t *o = json_object_get(b, "output");
                json_t *out = json_pack("{s:s, s:o}", "run_id",
                                        ak_str(b, "child_run_id"), "output",
                                        o ? json_incref(o) : json_object());
                tx->changed = ak_step_done(tx, r->step_id, r->a, out);
                return true;
        }
        snprintf(err, sizeof(err), "the child run %s %s%s%s",
                 ak_str(b, "child_run_id"), st, ak_str(b, "error") ? ": " : "",
                 ak_str(b, "error") ? ak_str(b, "error") : "");
        tx->changed = ak_step_fail(tx, r->step_id, r->a, err, 0,
                                   strcmp(st, "cancelled") == 0);
        return true;
}

handler_result_t ak_run_child_ended(rt_ctx_t *ctx, const msgpack_object *body) {
        char id[MSGID_TEXT_SIZE];
        ak_result_t r = {0};
        handler_result_t res;
        ak__ok(ctx);
        r.body = ak_json_of_msgpack(body);
        r.step_id = ak_str(r.body, "step_id");
        r.a = (int)ak_int(r.body, "attempt", 0);
        res = ak_tx_run(ctx, ak__text(body, "run_id", id, sizeof(id)),
                        ak__child_apply, &r);
        json_decref(r.body);
        return res;
}

/* ---------------------------------------------------------------------------
 * Replies to command steps
 * ------------------------------------------------------------------------ */

static bool ak__reply_apply(ak_tx_t *tx, void *arg) {
        ak_result_t *r = arg;
        char err[400];
        if (!tx->run)
                return true;
        if (r->status < 400) {
                json_t *out =
                        json_is_object(r->body)
                                ? json_incref(r->body)
                                : json_pack("{s:O}", "value",
                                            r->body ? r->body : json_null());
                tx->changed = ak_step_done(tx, r->step_id, r->a, out);
                return true;
        }
        snprintf(err, sizeof(err), "%d %s%s%s", r->status,
                 ak_str(r->body, "title") ? ak_str(r->body, "title") : "error",
                 ak_str(r->body, "detail") ? ": " : "",
                 ak_str(r->body, "detail") ? ak_str(r->body, "detail") : "");
        tx->changed = ak_step_fail(tx, r->step_id, r->a, err, r->status, false);
        return true;
}

handler_result_t ak_on_reply(rt_ctx_t *ctx, const msgpack_object *body) {
        const env_t *env = rt_env(ctx);
        ak_state_t *st = ak_state(ctx);
        bson_t filter = BSON_INITIALIZER, doc;
        bson_iter_t it;
        char errstr[256], corr[MSGID_TEXT_SIZE],
                run_id[MSGID_TEXT_SIZE] = "", step_id[AK_ID_MAX * 2 + 1] = "";
        ak_result_t r = {0};
        handler_result_t res;
        store_err_t err;

        snprintf(corr, sizeof(corr), "%.*s", (int)env->correlation_id.len,
                 env->correlation_id.ptr ? env->correlation_id.ptr : "");
        if (!ak_cache_get_corr(st->cache, corr, run_id, step_id,
                               sizeof(step_id), &r.a)) {
                char key[MSGID_TEXT_SIZE + 8];
                snprintf(key, sizeof(key), "%s%s", AK_CORR_PREFIX, corr);
                BSON_APPEND_UTF8(&filter, "_id", key);
                err = store_find_one(st->store, rt_db(ctx), AK_RUNS, &filter,
                                     NULL, &doc, errstr, sizeof(errstr));
                bson_destroy(&filter);
                if (err == STORE_NOT_FOUND) {
                        log_warn("a reply to %s matches no step", corr);
                        return HANDLER_OK;
                }
                if (err)
                        return store_err_transient(err) ? HANDLER_TRANSIENT
                                                        : HANDLER_OK;
                if (bson_iter_init_find(&it, &doc, "run_id") &&
                    BSON_ITER_HOLDS_UTF8(&it))
                        snprintf(run_id, sizeof(run_id), "%s",
                                 bson_iter_utf8(&it, NULL));
                if (bson_iter_init_find(&it, &doc, "step_id") &&
                    BSON_ITER_HOLDS_UTF8(&it))
                        snprintf(step_id, sizeof(step_id), "%s",
                                 bson_iter_utf8(&it, NULL));
                if (bson_iter_init_find(&it, &doc, "attempt") &&
                    BSON_ITER_HOLDS_INT(&it))
                        r.a = (int)bson_iter_as_int64(&it);
                bson_destroy(&doc);
        } else {
                bson_destroy(&filter);
        }
        if (!run_id[0] || !step_id[0])
                return HANDLER_OK;
        r.step_id = step_id;
        r.status = env->status;
        r.body = env->content_type.len
                         ? json_pack("{s:s#}", "text", env->value.ptr,
                                     (int)env->value.len)
                         : ak_json_of_msgpack(body);
        res = ak_tx_run(ctx, run_id, ak__reply_apply, &r);
        json_decref(r.body);
        return res;
}
