/*
 * replays.c - what operators see of replays over HTTP: a replay's progress
 * (GET /api/analytics/replays/{replay_id}) and the projection versions the
 * caller's tenant reads (GET /api/analytics/projections).
 *
 * A replay of one tenant is shown to that tenant's admins only; a replay of
 * every tenant to any admin, as figures of progress (no tenant's data is
 * in a replay's record). Another tenant's replay answers 404, like one
 * that does not exist.
 */
#include <stdio.h>
#include <string.h>

#include "analytics_internal.h"

handler_result_t replays_get(rt_ctx_t *ctx, const msgpack_object *body) {
        static const char *const skip[] = {"group", NULL};
        rt_caller_t c;
        slice_t id = mp_str(body, "replay_id");
        bson_t filter, doc;
        bson_iter_t it;
        char err[256];
        store_err_t serr;
        const char *tenant = "";
        if (!rt_require_role(ctx, SCHEMA_ROLE_ADMIN))
                return HANDLER_OK;
        rt_caller(ctx, &c);
        bson_init(&filter);
        bson_append_utf8(&filter, "_id", -1, id.ptr, (int)id.len);
        serr = store_find_one(rt_store(ctx), rt_db(ctx), REPLAY_COLL, &filter,
                              NULL, &doc, err, sizeof(err));
        bson_destroy(&filter);
        if (serr == STORE_NOT_FOUND) {
                rt_reply_problem(ctx, 404, "Not Found", "no such replay");
                return HANDLER_OK;
        }
        if (serr != STORE_OK)
                return analytics_store_failed(ctx, serr, err);
        if (bson_iter_init_find(&it, &doc, "tenant") &&
            BSON_ITER_HOLDS_UTF8(&it))
                tenant = bson_iter_utf8(&it, NULL);
        if (tenant[0] && !slice_eq(c.tenant, tenant)) {
                bson_destroy(&doc);
                rt_reply_problem(ctx, 404, "Not Found", "no such replay");
                return HANDLER_OK;
        }
        bson_to_msgpack(rt_reply(ctx, 200), &doc, skip);
        bson_destroy(&doc);
        return HANDLER_OK;
}

handler_result_t projections_get(rt_ctx_t *ctx, const msgpack_object *body) {
        aview_t v;
        handler_result_t res;
        projection_snapshot_t *snap = NULL;
        char err[256];
        msgpack_packer *pk;
        (void)body;
        if (!analytics_view(ctx, SCHEMA_ROLE_ADMIN, &v, &res))
                return res;
        if (projection_snapshot_load(rt_store(ctx), rt_db(ctx),
                                     analytics_projection_defs, PROJ_COUNT,
                                     &snap, err, sizeof(err)) != PROJECTION_OK)
                return analytics_store_failed(ctx,
                                              store_is_up(rt_store(ctx))
                                                      ? STORE_ERROR
                                                      : STORE_UNAVAILABLE,
                                              err);
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 1);
        codec_pack_str(pk, "projections");
        msgpack_pack_array(pk, PROJ_COUNT);
        for (int p = 0; p < PROJ_COUNT; p++) {
                const projection_def_t *def = analytics_projection_defs[p];
                int code = 0;
                int64_t active = projection_active(snap, def->name, &code);
                char builder[128];
                projection_builder(snap, def->name, builder, sizeof(builder));
                msgpack_pack_map(pk, 6);
                mp_pack_kv_str(pk, "name", def->name);
                mp_pack_kv_int(pk, "version", v.version[p]);
                codec_pack_str(pk, "own_version");
                if (v.version[p] != active)
                        msgpack_pack_true(pk);
                else
                        msgpack_pack_false(pk);
                mp_pack_kv_int(pk, "built_by_code", code);
                mp_pack_kv_int(pk, "code_version", def->code_version);
                mp_pack_kv_str(pk, "building", builder);
        }
        projection_snapshot_free(snap);
        return HANDLER_OK;
}
