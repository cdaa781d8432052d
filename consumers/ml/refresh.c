/*
 * refresh.c - how ml gets a tenant's numbers: requests to analytics,
 * their replies, and what triggers them.
 *
 * ml asks analytics.metrics (rt_request) and records each request under
 * its correlation id in `requests` ({kind, forecast_id}); the reply comes
 * back on ml's own commands topic to on_reply, which finds the record
 * and hands the rows to their purpose:
 *   recent    the overview of the last recent_days days, by day and
 *             provider: anomalies on the new days, pacing, response curves;
 *   forecast  one forecast's series (forecast.c).
 *
 * Triggers. analytics.day.closed (an event: no user) sets a timer that
 * fires ml.refresh at once, as ML_SERVICE_USER with the viewer role of the
 * event's tenant, since rt_request carries the caller of the message being
 * handled and analytics answers only a signed-in caller. Each tenant that
 * used ml also has a schedule (every refresh_interval_s, phased by tenant)
 * firing ml.refresh; a scheduled refresh is skipped when a day closed more
 * recently than that. The timer id "closed|<tenant>|<day>" makes a
 * redelivered event arm nothing new.
 *
 * Replies are idempotent by construction: their effects are keyed by the
 * reply's message id (versions, anomalies), so a redelivered reply
 * recomputes the same answers and makes no new version.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ml_internal.h"
#include "msgid.h"

/* How long a request record is kept (its reply is long due by then). */
#define ML_REQUEST_KEEP_MS (2 * 86400 * 1000LL)

int32_t ml_default_to(void) {
        return ml_today() - 1;
}

/* ---------------------------------------------------------------------------
 * Asking analytics
 * ------------------------------------------------------------------------ */

static void pack_list(msgpack_packer *pk, const char *key, const char *one) {
        codec_pack_str(pk, key);
        msgpack_pack_array(pk, 1);
        codec_pack_str(pk, one);
}

handler_result_t ml_ask(rt_ctx_t *ctx, const char *tenant, const ml_ask_t *a) {
        ml_state_t *st = rt_state(ctx);
        msgpack_sbuffer sb;
        msgpack_packer pk;
        char id[MSGID_TEXT_SIZE], from[ML_DAY_TEXT], to[ML_DAY_TEXT];
        char err[256];
        size_t n = 4;
        bson_t doc = BSON_INITIALIZER;
        store_err_t serr;
        int64_t now = (int64_t)clock_wall_ms();

        ml_day_format(a->from, from);
        ml_day_format(a->to, to);
        n += (a->provider != NULL) + (a->campaign_id != NULL) +
             (a->currency != NULL);
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, n);
        codec_pack_str(&pk, "metric");
        msgpack_pack_array(&pk, a->n_metrics);
        for (size_t i = 0; i < a->n_metrics; i++)
                codec_pack_str(&pk, a->metrics[i]);
        codec_pack_str(&pk, "group_by");
        msgpack_pack_array(&pk, a->by_provider ? 2 : 1);
        codec_pack_str(&pk, "day");
        if (a->by_provider)
                codec_pack_str(&pk, "provider");
        ml_kv_str(&pk, "from", from);
        ml_kv_str(&pk, "to", to);
        if (a->provider)
                pack_list(&pk, "provider", a->provider);
        if (a->campaign_id)
                pack_list(&pk, "campaign_id", a->campaign_id);
        if (a->currency)
                pack_list(&pk, "currency", a->currency);
        rt_request(ctx, "analytics.metrics", slice_of(tenant), &sb, id);
        msgpack_sbuffer_destroy(&sb);
        if (!id[0]) {
                log_error("ml: analytics.metrics could not be requested");
                return HANDLER_PERMANENT;
        }
        BSON_APPEND_UTF8(&doc, "_id", id);
        BSON_APPEND_UTF8(&doc, "tenant", tenant);
        BSON_APPEND_UTF8(&doc, "kind", a->kind);
        if (a->forecast_id)
                BSON_APPEND_UTF8(&doc, "forecast_id", a->forecast_id);
        BSON_APPEND_INT32(&doc, "to", a->to);
        BSON_APPEND_DATE_TIME(&doc, "created_at", now);
        BSON_APPEND_DATE_TIME(&doc, "expires_at", now + ML_REQUEST_KEEP_MS);
        serr = store_insert(st->store, ML_DB, "requests", &doc, err,
                            sizeof(err));
        bson_destroy(&doc);
        if (serr != STORE_OK && serr != STORE_DUPLICATE)
                return ml_store_failed(ctx, serr, "requests", err);
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * Schedules and timers
 * ------------------------------------------------------------------------ */

static void pack_refresh(msgpack_sbuffer *sb, const char *reason,
                         const char *day) {
        msgpack_packer pk;
        msgpack_sbuffer_init(sb);
        msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, day ? 2 : 1);
        ml_kv_str(&pk, "reason", reason);
        if (day)
                ml_kv_str(&pk, "day", day);
}

static cmd_caller_t service_caller(const char *tenant) {
        return (cmd_caller_t){slice_of(tenant), slice_of(ML_SERVICE_USER),
                              slice_of(ML_SERVICE_ROLES), SLICE_NULL};
}

void ml_schedule_tenant(rt_ctx_t *ctx, const char *tenant) {
        ml_state_t *st = rt_state(ctx);
        schedule_spec_t spec = {0};
        msgpack_sbuffer sb;
        char id[TIMER_ID_MAX], err[256];
        int64_t every = (int64_t)st->set->refresh_interval_s * 1000;
        uint64_t h = 1469598103934665603ULL; /* FNV-1a: a phase per tenant */
        timer_err_t e;
        for (const char *p = tenant; *p; p++)
                h = (h ^ (unsigned char)*p) * 1099511628211ULL;
        snprintf(id, sizeof(id), "refresh|%s", tenant);
        pack_refresh(&sb, "schedule", NULL);
        spec.id = id;
        spec.every_ms = every;
        spec.first_at_ms = 1 + (int64_t)(h % (uint64_t)every);
        spec.type = "ml.refresh";
        spec.key = slice_of(tenant);
        spec.body = (slice_t){sb.data, sb.size};
        spec.caller = service_caller(tenant);
        e = schedule_set(st->timers, &spec, err, sizeof(err));
        msgpack_sbuffer_destroy(&sb);
        if (e != TIMER_OK && e != TIMER_FIRING)
                log_warn("ml: tenant %s: refresh schedule: %s", tenant, err);
}

handler_result_t ml_on_day_closed(rt_ctx_t *ctx, const msgpack_object *body) {
        ml_state_t *st = rt_state(ctx);
        char tenant[ML_TENANT_MAX], day[ML_DAY_TEXT], id[TIMER_ID_MAX];
        char err[256];
        int32_t d;
        msgpack_sbuffer sb;
        timer_spec_t spec = {0};
        timer_err_t e;
        if (!ml_tenant(ctx, tenant) ||
            !ml_day_parse(codec_map_str(body, "day"), &d)) {
                log_warn("ml: analytics.day.closed without a tenant or day");
                return HANDLER_OK;
        }
        if (rt_replaying(ctx))
                return HANDLER_OK;
        ml_day_format(d, day);
        snprintf(id, sizeof(id), "closed|%s|%s", tenant, day);
        pack_refresh(&sb, "day_closed", day);
        spec.id = id;
        spec.fire_at_ms = (int64_t)clock_wall_ms();
        spec.type = "ml.refresh";
        spec.key = slice_of(tenant);
        spec.body = (slice_t){sb.data, sb.size};
        spec.caller = service_caller(tenant);
        e = timer_set(st->timers, &spec, err, sizeof(err));
        msgpack_sbuffer_destroy(&sb);
        switch (e) {
        case TIMER_OK:
        case TIMER_FIRED:
        case TIMER_FIRING:
                break;
        case TIMER_STORE_DOWN:
                return HANDLER_TRANSIENT;
        default:
                log_error("ml: tenant %s: day %s: %s", tenant, day, err);
                return HANDLER_PERMANENT;
        }
        ml_schedule_tenant(ctx, tenant);
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * ml.refresh
 * ------------------------------------------------------------------------ */

static const char *const overview_metrics[] = {
        "spend",       "impressions",      "clicks",
        "conversions", "conversion_value", "revenue",
        "orders",      "new_customers",
};

/* Whether a scheduled refresh should give way: a day closed (and was
 * refreshed) less than one interval ago. */
static bool recently_refreshed(ml_state_t *st, const char *tenant) {
        bson_t filter = BSON_INITIALIZER, found;
        char err[256];
        bool recent = false;
        BSON_APPEND_UTF8(&filter, "_id", tenant);
        if (store_find_one(st->store, ML_DB, "tenants", &filter, NULL, &found,
                           err, sizeof(err)) == STORE_OK) {
                char reason[32];
                int64_t at = ml_bson_int(&found, "refreshed_at", 0);
                ml_bson_str(&found, "reason", reason, sizeof(reason));
                recent = strcmp(reason, "day_closed") == 0 &&
                         (int64_t)clock_wall_ms() - at <
                                 (int64_t)st->set->refresh_interval_s * 1000 -
                                         60000;
                bson_destroy(&found);
        }
        bson_destroy(&filter);
        return recent;
}

handler_result_t ml_handle_refresh(rt_ctx_t *ctx, const msgpack_object *body) {
        ml_state_t *st = rt_state(ctx);
        char tenant[ML_TENANT_MAX], reason[32], err[256];
        int32_t to = ml_default_to();
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
        handler_result_t res;
        store_err_t serr;
        if (!ml_tenant(ctx, tenant)) {
                rt_reply_problem(ctx, 400, "Bad Request", "no tenant");
                return HANDLER_OK;
        }
        if (!ml_str(body, "reason", reason, sizeof(reason)))
                snprintf(reason, sizeof(reason), "schedule");
        if (codec_map_get(body, "day") &&
            !ml_day_parse(codec_map_str(body, "day"), &to)) {
                rt_reply_problem(ctx, 400, "Bad Request", "day is not a date");
                return HANDLER_OK;
        }
        if (strcmp(reason, "schedule") == 0 && recently_refreshed(st, tenant)) {
                msgpack_packer *pk = rt_reply(ctx, 200);
                msgpack_pack_map(pk, 1);
                ml_kv_str(pk, "skipped", "a closed day was refreshed recently");
                return HANDLER_OK;
        }
        ml_ask_t a = {.kind = "recent",
                      .metrics = overview_metrics,
                      .n_metrics = sizeof(overview_metrics) /
                                   sizeof(overview_metrics[0]),
                      .by_provider = true,
                      .from = to - st->set->recent_days + 1,
                      .to = to};
        if ((res = ml_ask(ctx, tenant, &a)) != HANDLER_OK)
                return res;
        if ((res = ml_forecasts_refresh(ctx, tenant, to)) != HANDLER_OK)
                return res;
        BSON_APPEND_UTF8(&filter, "_id", tenant);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_DATE_TIME(&set, "refreshed_at", (int64_t)clock_wall_ms());
        BSON_APPEND_UTF8(&set, "reason", reason);
        bson_append_document_end(&update, &set);
        serr = store_update(st->store, ML_DB, "tenants", &filter, &update,
                            STORE_UPSERT, NULL, err, sizeof(err));
        bson_destroy(&filter);
        bson_destroy(&update);
        if (serr != STORE_OK)
                return ml_store_failed(ctx, serr, "tenants", err);
        msgpack_packer *pk = rt_reply(ctx, 202);
        msgpack_pack_map(pk, 1);
        ml_kv_str(pk, "reason", reason);
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * Replies
 * ------------------------------------------------------------------------ */

/* The overview arrived: anomalies on the new days, pacing, curves; then
 * the tenant is checked through its last day. The tenant's record keeps
 * which reply moved it there and from where (checked_by, checked_prev), so
 * the same reply delivered again checks the same days again. */
static handler_result_t recent_answer(rt_ctx_t *ctx, const char *tenant,
                                      int status, const msgpack_object *body) {
        ml_state_t *st = rt_state(ctx);
        const env_t *env = rt_env(ctx);
        ml_frame_t f;
        char err[256], by[MSGID_TEXT_SIZE], me[MSGID_TEXT_SIZE] = "";
        bson_t filter = BSON_INITIALIZER, found, update = BSON_INITIALIZER, set;
        int32_t checked = INT32_MIN;
        handler_result_t res;
        store_err_t serr;
        if (env->id.len < sizeof(me)) {
                memcpy(me, env->id.ptr, env->id.len);
                me[env->id.len] = '\0';
        }
        if (status != 200) {
                log_warn("ml: tenant %s: analytics answered %d to the "
                         "overview",
                         tenant, status);
                return HANDLER_OK;
        }
        if (!ml_frame_read(body, true, &f, err, sizeof(err))) {
                log_warn("ml: tenant %s: %s", tenant, err);
                return HANDLER_OK;
        }
        BSON_APPEND_UTF8(&filter, "_id", tenant);
        serr = store_find_one(st->store, ML_DB, "tenants", &filter, NULL,
                              &found, err, sizeof(err));
        if (serr == STORE_OK) {
                ml_bson_str(&found, "checked_by", by, sizeof(by));
                checked = (int32_t)ml_bson_int(&found,
                                               me[0] && strcmp(by, me) == 0
                                                       ? "checked_prev"
                                                       : "checked_through",
                                               INT32_MIN);
                bson_destroy(&found);
        } else if (serr != STORE_NOT_FOUND) {
                res = ml_store_failed(ctx, serr, "tenants", err);
                goto done;
        }
        if ((res = ml_anomalies_check(ctx, tenant, &f, checked)) != HANDLER_OK)
                goto done;
        if ((res = ml_budget_update(ctx, tenant, &f)) != HANDLER_OK)
                goto done;
        if (checked < f.to) {
                BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
                BSON_APPEND_INT32(&set, "checked_through", f.to);
                BSON_APPEND_INT32(&set, "checked_prev", checked);
                BSON_APPEND_UTF8(&set, "checked_by", me);
                bson_append_document_end(&update, &set);
                serr = store_update(st->store, ML_DB, "tenants", &filter,
                                    &update, STORE_UPSERT, NULL, err,
                                    sizeof(err));
                if (serr != STORE_OK)
                        res = ml_store_failed(ctx, serr, "tenants", err);
        }
done:
        bson_destroy(&filter);
        bson_destroy(&update);
        ml_frame_free(&f);
        return res;
}

handler_result_t ml_on_reply(rt_ctx_t *ctx, const msgpack_object *body) {
        ml_state_t *st = rt_state(ctx);
        const env_t *env = rt_env(ctx);
        char id[MSGID_TEXT_SIZE], tenant[ML_TENANT_MAX], kind[16];
        char forecast_id[MSGID_TEXT_SIZE], err[256];
        bson_t filter = BSON_INITIALIZER, found;
        store_err_t serr;
        handler_result_t res = HANDLER_OK;
        if (env->correlation_id.len != MSGID_TEXT_LEN)
                return HANDLER_OK;
        memcpy(id, env->correlation_id.ptr, MSGID_TEXT_LEN);
        id[MSGID_TEXT_LEN] = '\0';
        BSON_APPEND_UTF8(&filter, "_id", id);
        serr = store_find_one(st->store, ML_DB, "requests", &filter, NULL,
                              &found, err, sizeof(err));
        bson_destroy(&filter);
        if (serr == STORE_NOT_FOUND) {
                log_info("ml: a reply to no request of ours (%s)", id);
                return HANDLER_OK;
        }
        if (serr != STORE_OK)
                return store_err_transient(serr) ? HANDLER_TRANSIENT
                                                 : HANDLER_PERMANENT;
        ml_bson_str(&found, "tenant", tenant, sizeof(tenant));
        ml_bson_str(&found, "kind", kind, sizeof(kind));
        ml_bson_str(&found, "forecast_id", forecast_id, sizeof(forecast_id));
        bson_destroy(&found);
        /* The reply speaks for the tenant we asked about, never another. */
        if (env->tenant.len && !slice_eq(env->tenant, tenant)) {
                log_warn("ml: reply %s names another tenant", id);
                return HANDLER_OK;
        }
        if (strcmp(kind, "recent") == 0)
                res = recent_answer(ctx, tenant, env->status, body);
        else if (strcmp(kind, "forecast") == 0)
                res = ml_forecast_answer(ctx, tenant, forecast_id, env->status,
                                         body);
        return res;
}
