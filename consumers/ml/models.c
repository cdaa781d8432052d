/*
 * models.c - GET /api/ml/models/{kind}: the versions ml keeps of a
 * tenant's models, newest first, the current one first of all.
 *
 * Families: lead and churn (trained on demand or on a schedule), response
 * (the budget curves, one model per currency, refitted at each refresh),
 * pacing (the month-end projections), forecast (every forecast's
 * versions), and anomaly (the detector: one version for every tenant,
 * described here with its parameters).
 */
#include <stdio.h>
#include <string.h>

#include "ml_internal.h"

#define VERSIONS_MAX 50

static const char *const version_hidden[] = {"_id", "tenant", "family", NULL};

/* The detector's description: the same for every tenant. */
static void pack_anomaly_model(msgpack_packer *pk) {
        msgpack_pack_map(pk, 9);
        ml_kv_str(pk, "model_version", ML_ANOMALY_MODEL);
        ml_kv_str(pk, "method",
                  "robust seasonal baseline: running-median trend and "
                  "per-weekday medians of the 8 weeks before the checked "
                  "days, a Theil-Sen slope, and a robust z-score against "
                  "the median absolute deviation of the baseline's own "
                  "errors; level shifts by least absolute deviations");
        ml_kv_int(pk, "period_days", 7);
        ml_kv_int(pk, "window_days", 56);
        ml_kv_num(pk, "threshold", 3.5);
        ml_kv_num(pk, "level_shift_threshold", 6);
        ml_kv_str(pk, "noise_floor",
                  "5% of the level, and sqrt(level) for counts (on logs: "
                  "0.05 and 1/sqrt(level))");
        ml_kv_str(pk, "scale",
                  "logs for series that are always positive, else values");
        ml_kv_str(pk, "skipped",
                  "series with activity on fewer than half the baseline's "
                  "days, and series with fewer than 3 weeks of history");
}

handler_result_t ml_models_get(rt_ctx_t *ctx, const msgpack_object *body) {
        ml_state_t *st = rt_state(ctx);
        char tenant[ML_TENANT_MAX], kind[16], err[256];
        bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
        ml_list_t l;
        store_err_t serr;
        msgpack_packer *pk;
        handler_result_t res = HANDLER_OK;
        ml_list_init(&l, NULL, version_hidden);
        if (!rt_require_role(ctx, SCHEMA_ROLE_VIEWER) ||
            !ml_tenant(ctx, tenant))
                goto done;
        if (!ml_str(body, "kind", kind, sizeof(kind))) {
                rt_reply_problem(ctx, 400, "Bad Request", "kind is missing");
                goto done;
        }
        if (strcmp(kind, "anomaly") == 0) {
                pk = rt_reply(ctx, 200);
                msgpack_pack_map(pk, 2);
                ml_kv_str(pk, "kind", kind);
                codec_pack_str(pk, "versions");
                msgpack_pack_array(pk, 1);
                pack_anomaly_model(pk);
                goto done;
        }
        BSON_APPEND_UTF8(&filter, "tenant", tenant);
        BSON_APPEND_UTF8(&filter, "family", kind);
        bson_destroy(&opts);
        ml_find_opts(&opts, "created_at", -1, 0, VERSIONS_MAX);
        serr = ml_list_find(&l, st->store, "models", &filter, &opts, err,
                            sizeof(err));
        if (serr != STORE_OK) {
                res = ml_store_failed(ctx, serr, "models", err);
                goto done;
        }
        if (!l.n) {
                char detail[160];
                bool trained =
                        strcmp(kind, "lead") == 0 || strcmp(kind, "churn") == 0;
                snprintf(detail, sizeof(detail), "no %s model yet%s", kind,
                         trained ? ": train one with POST "
                                   "/api/ml/models/{kind}/train"
                                 : ": it is made when analytics closes a day");
                rt_reply_problem(ctx, 404, "Not Found", detail);
                goto done;
        }
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 2);
        ml_kv_str(pk, "kind", kind);
        ml_list_pack(pk, "versions", &l);
done:
        ml_list_free(&l);
        bson_destroy(&filter);
        bson_destroy(&opts);
        return res;
}
