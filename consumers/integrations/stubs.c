#include "connector.h"
static ig_err_t nofetch(ig_page_t *pg) {
        pg->done = true;
        return IG_OK;
}
static char *noauth(ig_job_t *j, const char *a, const char *b, const char *c,
                    const char *d) {
        (void)j;
        (void)a;
        (void)b;
        (void)c;
        (void)d;
        return NULL;
}
static const ig_stream_t s1[] = {{"x", nofetch}};
#define STUB(n, p)                                         \
        const ig_connector_t n = {.id = p,                 \
                                  .auth = IG_AUTH_OAUTH,   \
                                  .authorize_url = noauth, \
                                  .streams = s1,           \
                                  .n_streams = 1};
STUB(ig_shopify, IG_SHOPIFY)
STUB(ig_hubspot, IG_HUBSPOT)
STUB(ig_klaviyo, IG_KLAVIYO) STUB(ig_google_ads, IG_GOOGLE_ADS)
        STUB(ig_youtube, IG_YOUTUBE) STUB(ig_meta_ads, IG_META_ADS)
                STUB(ig_linkedin_ads, IG_LINKEDIN_ADS)
                        STUB(ig_tiktok_ads, IG_TIKTOK_ADS)
                                STUB(ig_triplewhale, IG_TRIPLEWHALE)
                                        STUB(ig_gohighlevel, IG_GOHIGHLEVEL)
