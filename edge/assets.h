/*
 * assets.h - static files embedded in the edge binary (HTML, CSS, JS of
 * browser pages such as the operations console), served on GET.
 *
 * cmake/embed_assets.cmake turns each folder listed in the build's
 * OMNIFY_ASSET_DIRS into table rows: <folder>/<file> is served at
 * /<folder>/<file>, and <folder>/index.html also at /<folder>. The edge
 * names no page: what it serves is what the build embedded.
 *
 * Every asset carries the API's security headers, with a
 * Content-Security-Policy that lets a page load only the edge's own
 * scripts, styles and images and talk only to the edge (connect-src
 * 'self'): no inline script, no other origin, no framing.
 */
#ifndef OMNIFY_EDGE_ASSETS_H
#define OMNIFY_EDGE_ASSETS_H

#include <stddef.h>

typedef struct edge_asset {
        const char *path; /* "/console", "/console/console.js" */
        const char *content_type;
        const char *bytes;
        size_t len;
} edge_asset_t;

extern const edge_asset_t edge_assets[];
extern const size_t edge_assets_count;

/* The asset served at path (NUL-terminated URL path), or NULL. */
const edge_asset_t *edge_asset_find(const char *path);

/* The Content-Security-Policy of assets. */
#define EDGE_ASSET_CSP                                                \
        "default-src 'none'; script-src 'self'; style-src 'self'; "   \
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; " \
        "form-action 'none'; frame-ancestors 'none'"

#endif
