/*
 * metrics.c - the metrics routes: any metric of the query model by any
 * dimension it allows, filtered (analytics.metrics, also the read-only
 * command ml and agentkit call), as JSON or CSV; and the catalog of
 * metrics and dimensions.
 */
#include <stdlib.h>
#include <string.h>

#include "analytics_internal.h"

handler_result_t metrics_handle(rt_ctx_t *ctx, const msgpack_object *body) {
        aview_t v;
        handler_result_t res;
        query_t q;
        query_result_t *r = NULL;
        char err[256];
        store_err_t serr;
        msgpack_packer *pk;
        if (!analytics_view(ctx, SCHEMA_ROLE_VIEWER, &v, &res))
                return res;
        if (!query_parse(ctx, body, &q))
                return HANDLER_OK;
        serr = query_run(&v, &q, &r, err, sizeof(err));
        if (serr != STORE_OK)
                return analytics_store_failed(ctx, serr, err);
        if (csv_wanted(body)) {
                const char *cols[QUERY_MAX_COLUMNS];
                size_t n = query_columns(&q, cols, QUERY_MAX_COLUMNS);
                msgpack_sbuffer sb;
                msgpack_packer rows;
                msgpack_sbuffer_init(&sb);
                msgpack_packer_init(&rows, &sb, msgpack_sbuffer_write);
                query_pack_rows(r, &q, &rows);
                csv_reply(ctx, cols, n, (slice_t){sb.data, sb.size});
                msgpack_sbuffer_destroy(&sb);
                query_result_free(r);
                return HANDLER_OK;
        }
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 5);
        codec_pack_str(pk, "metrics");
        msgpack_pack_array(pk, q.n_metrics);
        for (size_t i = 0; i < q.n_metrics; i++)
                codec_pack_str(pk, q.metrics[i]->name);
        codec_pack_str(pk, "group_by");
        msgpack_pack_array(pk, q.n_dims);
        for (size_t i = 0; i < q.n_dims; i++)
                codec_pack_str(pk, query_dim_names[q.dims[i]]);
        {
                char f[CALTIME_DATE_SIZE], t[CALTIME_DATE_SIZE];
                caltime_format_date(q.from, f);
                caltime_format_date(q.to, t);
                mp_pack_kv_str(pk, "from", f);
                mp_pack_kv_str(pk, "to", t);
        }
        codec_pack_str(pk, "rows");
        query_pack_rows(r, &q, pk);
        query_result_free(r);
        return HANDLER_OK;
}

handler_result_t metrics_catalog(rt_ctx_t *ctx, const msgpack_object *body) {
        msgpack_packer *pk;
        (void)body;
        if (!rt_require_role(ctx, SCHEMA_ROLE_VIEWER))
                return HANDLER_OK;
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 2);
        codec_pack_str(pk, "metrics");
        msgpack_pack_array(pk, query_n_metrics);
        for (size_t i = 0; i < query_n_metrics; i++) {
                const metric_def_t *md = &query_metrics[i];
                size_t n_dims = 0;
                for (int d = 0; d < DIM_COUNT; d++)
                        n_dims += (md->dims >> d) & 1u;
                msgpack_pack_map(pk, 4);
                mp_pack_kv_str(pk, "name", md->name);
                mp_pack_kv_str(pk, "unit",
                               md->money   ? "minor units of the currency"
                               : md->ratio ? "ratio"
                                           : "count");
                mp_pack_kv_str(pk, "doc", md->doc);
                codec_pack_str(pk, "group_by");
                msgpack_pack_array(pk, n_dims);
                for (int d = 0; d < DIM_COUNT; d++)
                        if ((md->dims >> d) & 1u)
                                codec_pack_str(pk, query_dim_names[d]);
        }
        codec_pack_str(pk, "dimensions");
        msgpack_pack_array(pk, DIM_COUNT);
        for (int d = 0; d < DIM_COUNT; d++)
                codec_pack_str(pk, query_dim_names[d]);
        return HANDLER_OK;
}
