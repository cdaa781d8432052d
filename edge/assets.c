/*
 * assets.c - the embedded static files (see assets.h) and their answers.
 */
#include "assets.h"

#include <string.h>

#include "edge_internal.h"

const edge_asset_t *edge_asset_find(const char *path) {
        for (size_t i = 0; i < edge_assets_count; i++)
                if (strcmp(edge_assets[i].path, path) == 0)
                        return &edge_assets[i];
        return NULL;
}

enum MHD_Result edge__asset(req_t *req, const char *url) {
        static const char *const hdrs[] = {"Content-Security-Policy",
                                           EDGE_ASSET_CSP, NULL};
        const edge_asset_t *a = edge_asset_find(url);
        if (!a)
                return MHD_NO;
        req->label = "asset";
        return edge__answer(req, 200, a->content_type, a->bytes, a->len, hdrs);
}
