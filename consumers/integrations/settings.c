/*
 * settings.c - the integrations group's own settings: where the API and the
 * front end are, the keys that encrypt credentials, sync intervals and
 * windows, and per provider its hosts, app credentials and versions.
 *
 * Every provider URL defaults to the provider's real host; compose/local/run
 * and the tests point them at the local stand-ins (tests/providers). An
 * OAuth provider whose client id is empty is "not configured": connecting
 * it answers 404, as does a webhook whose secret is unset.
 */
#include <stddef.h>

#include "ig.h"

#define SOFF(f) offsetof(ig_settings_t, f)
#define POFF(prov, f) offsetof(ig_settings_t, p[prov].f)

static const config_row_t ig_rows[] = {
        /* ----- the group ----- */
        {"OMNIFY_INTEGRATIONS_PUBLIC_URL", CONFIG_STRING, SOFF(public_url), 0,
         8, 512, "http://localhost:8000", NULL, 0,
         "Public base URL of the API: OAuth redirect URIs "
         "(<url>/api/integrations/<provider>/callback) and the webhook URL "
         "HubSpot signs."},
        {"OMNIFY_INTEGRATIONS_FRONTEND_URL", CONFIG_STRING, SOFF(frontend_url),
         0, 8, 512, "http://localhost:3000/settings/integrations", NULL, 0,
         "Where the OAuth callback sends the browser, with provider, status "
         "(connected or error), connections and reason in its query."},
        {"OMNIFY_INTEGRATIONS_TOKEN_KEYS", CONFIG_STRING, SOFF(token_keys), 0,
         0, 4096, "", NULL, 1,
         "Keys that encrypt credentials (AES-256-GCM): kid:base64 of 32 "
         "bytes, comma-separated; the first encrypts, all decrypt (rotation: "
         "put the new key first, run `omnify integrations rekey`, then drop "
         "the old). Empty: connecting is refused (404)."},
        {"OMNIFY_INTEGRATIONS_STATE_TTL_S", CONFIG_INT, SOFF(state_ttl_s), 0,
         60, 3600, "600", NULL, 0,
         "Lifetime of an OAuth state (the time a user has to consent)."},
        {"OMNIFY_INTEGRATIONS_SYNC_INTERVAL_S", CONFIG_INT,
         SOFF(sync_interval_s), 0, 60, 604800, "3600", NULL, 0,
         "How often each connection syncs on its own (durable schedule)."},
        {"OMNIFY_INTEGRATIONS_LOOKBACK_DAYS", CONFIG_INT, SOFF(lookback_days),
         0, 0, 60, "4", NULL, 0,
         "Days before the last synced day that an incremental sync reads "
         "again (late conversions settle over days)."},
        {"OMNIFY_INTEGRATIONS_INITIAL_DAYS", CONFIG_INT, SOFF(initial_days), 0,
         1, 1095, "30", NULL, 0, "Days a connection's first sync reads."},
        {"OMNIFY_INTEGRATIONS_BACKFILL_DAYS", CONFIG_INT, SOFF(backfill_days),
         0, 1, 1095, "90", NULL, 0,
         "Days a backfill reads when the request names none."},
        {"OMNIFY_INTEGRATIONS_REFRESH_MARGIN_S", CONFIG_INT,
         SOFF(refresh_margin_s), 0, 10, 86400, "300", NULL, 0,
         "Refresh an access token this long before it expires."},
        {"OMNIFY_INTEGRATIONS_WEBHOOK_TOLERANCE_S", CONFIG_INT,
         SOFF(webhook_tolerance_s), 0, 10, 3600, "300", NULL, 0,
         "Webhooks whose signed timestamp is further from now are refused."},
        {"OMNIFY_INTEGRATIONS_SYNC_STALE_S", CONFIG_INT, SOFF(sync_stale_s), 0,
         60, 86400, "1800", NULL, 0,
         "A running sync with no progress for this long no longer blocks a "
         "new one."},
        {"OMNIFY_INTEGRATIONS_HOST_CONCURRENCY", CONFIG_INT,
         SOFF(host_concurrency), 0, 1, 64, "8", NULL, 0,
         "Provider calls in flight per host from one process."},
        {"OMNIFY_INTEGRATIONS_PACE_PCT", CONFIG_INT, SOFF(pace_pct), 0, 1, 100,
         "100", NULL, 0,
         "Pace provider calls at this percentage of the rates each provider "
         "documents (our margin is built in at 100)."},

        /* ----- Shopify ----- */
        {"OMNIFY_INTEGRATIONS_SHOPIFY_URL", CONFIG_STRING,
         POFF(IG_SHOPIFY, api_url), 0, 8, 512, "https://{shop}.myshopify.com",
         NULL, 0, "A shop's base URL; {shop} is the shop's subdomain."},
        {"OMNIFY_INTEGRATIONS_SHOPIFY_CLIENT_ID", CONFIG_STRING,
         POFF(IG_SHOPIFY, client_id), 0, 0, 256, "", NULL, 0,
         "Shopify app: client id (API key)."},
        {"OMNIFY_INTEGRATIONS_SHOPIFY_CLIENT_SECRET", CONFIG_STRING,
         POFF(IG_SHOPIFY, client_secret), 0, 0, 256, "", NULL, 1,
         "Shopify app: client secret (also signs its webhooks)."},
        {"OMNIFY_INTEGRATIONS_SHOPIFY_API_VERSION", CONFIG_STRING,
         POFF(IG_SHOPIFY, api_version), 0, 7, 16, "2025-10", NULL, 0,
         "Shopify Admin API version."},
        {"OMNIFY_INTEGRATIONS_SHOPIFY_SCOPES", CONFIG_STRING,
         POFF(IG_SHOPIFY, scopes), 0, 1, 512, "read_orders,read_customers",
         NULL, 0, "Shopify scopes asked for."},

        /* ----- Stripe ----- */
        {"OMNIFY_INTEGRATIONS_STRIPE_API_URL", CONFIG_STRING,
         POFF(IG_STRIPE, api_url), 0, 8, 512, "https://api.stripe.com", NULL, 0,
         "Stripe API base URL."},
        {"OMNIFY_INTEGRATIONS_STRIPE_WEBHOOK_SECRET", CONFIG_STRING,
         POFF(IG_STRIPE, webhook_secret), 0, 0, 256, "", NULL, 1,
         "Stripe webhook endpoint signing secret (whsec_...)."},

        /* ----- HubSpot ----- */
        {"OMNIFY_INTEGRATIONS_HUBSPOT_AUTH_URL", CONFIG_STRING,
         POFF(IG_HUBSPOT, auth_url), 0, 8, 512, "https://app.hubspot.com", NULL,
         0, "HubSpot authorize host."},
        {"OMNIFY_INTEGRATIONS_HUBSPOT_API_URL", CONFIG_STRING,
         POFF(IG_HUBSPOT, api_url), 0, 8, 512, "https://api.hubapi.com", NULL,
         0, "HubSpot API host (tokens and CRM)."},
        {"OMNIFY_INTEGRATIONS_HUBSPOT_CLIENT_ID", CONFIG_STRING,
         POFF(IG_HUBSPOT, client_id), 0, 0, 256, "", NULL, 0,
         "HubSpot app: client id."},
        {"OMNIFY_INTEGRATIONS_HUBSPOT_CLIENT_SECRET", CONFIG_STRING,
         POFF(IG_HUBSPOT, client_secret), 0, 0, 256, "", NULL, 1,
         "HubSpot app: client secret (also signs its webhooks, v3)."},
        {"OMNIFY_INTEGRATIONS_HUBSPOT_SCOPES", CONFIG_STRING,
         POFF(IG_HUBSPOT, scopes), 0, 1, 512,
         "oauth crm.objects.contacts.read crm.objects.deals.read", NULL, 0,
         "HubSpot scopes asked for."},

        /* ----- Klaviyo ----- */
        {"OMNIFY_INTEGRATIONS_KLAVIYO_AUTH_URL", CONFIG_STRING,
         POFF(IG_KLAVIYO, auth_url), 0, 8, 512, "https://www.klaviyo.com", NULL,
         0, "Klaviyo authorize host."},
        {"OMNIFY_INTEGRATIONS_KLAVIYO_API_URL", CONFIG_STRING,
         POFF(IG_KLAVIYO, api_url), 0, 8, 512, "https://a.klaviyo.com", NULL, 0,
         "Klaviyo API host (tokens and API)."},
        {"OMNIFY_INTEGRATIONS_KLAVIYO_CLIENT_ID", CONFIG_STRING,
         POFF(IG_KLAVIYO, client_id), 0, 0, 256, "", NULL, 0,
         "Klaviyo app: client id (OAuth; private keys need none)."},
        {"OMNIFY_INTEGRATIONS_KLAVIYO_CLIENT_SECRET", CONFIG_STRING,
         POFF(IG_KLAVIYO, client_secret), 0, 0, 256, "", NULL, 1,
         "Klaviyo app: client secret."},
        {"OMNIFY_INTEGRATIONS_KLAVIYO_REVISION", CONFIG_STRING,
         POFF(IG_KLAVIYO, api_version), 0, 10, 16, "2025-10-15", NULL, 0,
         "Klaviyo API revision header."},
        {"OMNIFY_INTEGRATIONS_KLAVIYO_SCOPES", CONFIG_STRING,
         POFF(IG_KLAVIYO, scopes), 0, 1, 512,
         "accounts:read profiles:read events:read metrics:read", NULL, 0,
         "Klaviyo scopes asked for."},
        {"OMNIFY_INTEGRATIONS_KLAVIYO_WEBHOOK_SECRET", CONFIG_STRING,
         POFF(IG_KLAVIYO, webhook_secret), 0, 0, 256, "", NULL, 1,
         "Klaviyo webhook signing secret."},

        /* ----- Google Ads ----- */
        {"OMNIFY_INTEGRATIONS_GOOGLE_ADS_AUTH_URL", CONFIG_STRING,
         POFF(IG_GOOGLE_ADS, auth_url), 0, 8, 512,
         "https://accounts.google.com", NULL, 0,
         "Google OAuth authorize host."},
        {"OMNIFY_INTEGRATIONS_GOOGLE_ADS_TOKEN_URL", CONFIG_STRING,
         POFF(IG_GOOGLE_ADS, token_url), 0, 8, 512,
         "https://oauth2.googleapis.com", NULL, 0,
         "Google OAuth token host (token, revoke)."},
        {"OMNIFY_INTEGRATIONS_GOOGLE_ADS_API_URL", CONFIG_STRING,
         POFF(IG_GOOGLE_ADS, api_url), 0, 8, 512,
         "https://googleads.googleapis.com", NULL, 0, "Google Ads API host."},
        {"OMNIFY_INTEGRATIONS_GOOGLE_ADS_CLIENT_ID", CONFIG_STRING,
         POFF(IG_GOOGLE_ADS, client_id), 0, 0, 256, "", NULL, 0,
         "Google OAuth client id."},
        {"OMNIFY_INTEGRATIONS_GOOGLE_ADS_CLIENT_SECRET", CONFIG_STRING,
         POFF(IG_GOOGLE_ADS, client_secret), 0, 0, 256, "", NULL, 1,
         "Google OAuth client secret."},
        {"OMNIFY_INTEGRATIONS_GOOGLE_ADS_DEVELOPER_TOKEN", CONFIG_STRING,
         POFF(IG_GOOGLE_ADS, developer_token), 0, 0, 256, "", NULL, 1,
         "Google Ads API developer token."},
        {"OMNIFY_INTEGRATIONS_GOOGLE_ADS_API_VERSION", CONFIG_STRING,
         POFF(IG_GOOGLE_ADS, api_version), 0, 2, 8, "v18", NULL, 0,
         "Google Ads API version (also YouTube's)."},

        /* ----- YouTube (video campaigns through the Google Ads API) ----- */
        {"OMNIFY_INTEGRATIONS_YOUTUBE_AUTH_URL", CONFIG_STRING,
         POFF(IG_YOUTUBE, auth_url), 0, 8, 512, "https://accounts.google.com",
         NULL, 0, "YouTube: Google OAuth authorize host."},
        {"OMNIFY_INTEGRATIONS_YOUTUBE_TOKEN_URL", CONFIG_STRING,
         POFF(IG_YOUTUBE, token_url), 0, 8, 512,
         "https://oauth2.googleapis.com", NULL, 0,
         "YouTube: Google OAuth token host."},
        {"OMNIFY_INTEGRATIONS_YOUTUBE_API_URL", CONFIG_STRING,
         POFF(IG_YOUTUBE, api_url), 0, 8, 512,
         "https://googleads.googleapis.com", NULL, 0,
         "YouTube: Google Ads API host."},
        {"OMNIFY_INTEGRATIONS_YOUTUBE_CLIENT_ID", CONFIG_STRING,
         POFF(IG_YOUTUBE, client_id), 0, 0, 256, "", NULL, 0,
         "YouTube: Google OAuth client id."},
        {"OMNIFY_INTEGRATIONS_YOUTUBE_CLIENT_SECRET", CONFIG_STRING,
         POFF(IG_YOUTUBE, client_secret), 0, 0, 256, "", NULL, 1,
         "YouTube: Google OAuth client secret."},
        {"OMNIFY_INTEGRATIONS_YOUTUBE_DEVELOPER_TOKEN", CONFIG_STRING,
         POFF(IG_YOUTUBE, developer_token), 0, 0, 256, "", NULL, 1,
         "YouTube: Google Ads API developer token."},

        /* ----- Meta Ads ----- */
        {"OMNIFY_INTEGRATIONS_META_AUTH_URL", CONFIG_STRING,
         POFF(IG_META_ADS, auth_url), 0, 8, 512, "https://www.facebook.com",
         NULL, 0, "Meta login dialog host."},
        {"OMNIFY_INTEGRATIONS_META_API_URL", CONFIG_STRING,
         POFF(IG_META_ADS, api_url), 0, 8, 512, "https://graph.facebook.com",
         NULL, 0, "Meta Graph API host."},
        {"OMNIFY_INTEGRATIONS_META_APP_ID", CONFIG_STRING,
         POFF(IG_META_ADS, client_id), 0, 0, 256, "", NULL, 0, "Meta app id."},
        {"OMNIFY_INTEGRATIONS_META_APP_SECRET", CONFIG_STRING,
         POFF(IG_META_ADS, client_secret), 0, 0, 256, "", NULL, 1,
         "Meta app secret (also signs its webhooks)."},
        {"OMNIFY_INTEGRATIONS_META_API_VERSION", CONFIG_STRING,
         POFF(IG_META_ADS, api_version), 0, 4, 8, "v21.0", NULL, 0,
         "Meta Graph API version."},
        {"OMNIFY_INTEGRATIONS_META_SCOPES", CONFIG_STRING,
         POFF(IG_META_ADS, scopes), 0, 1, 512, "ads_read,read_insights", NULL,
         0, "Meta permissions asked for."},

        /* ----- LinkedIn Ads ----- */
        {"OMNIFY_INTEGRATIONS_LINKEDIN_AUTH_URL", CONFIG_STRING,
         POFF(IG_LINKEDIN_ADS, auth_url), 0, 8, 512, "https://www.linkedin.com",
         NULL, 0, "LinkedIn OAuth host (authorize, tokens)."},
        {"OMNIFY_INTEGRATIONS_LINKEDIN_API_URL", CONFIG_STRING,
         POFF(IG_LINKEDIN_ADS, api_url), 0, 8, 512, "https://api.linkedin.com",
         NULL, 0, "LinkedIn Marketing API host."},
        {"OMNIFY_INTEGRATIONS_LINKEDIN_CLIENT_ID", CONFIG_STRING,
         POFF(IG_LINKEDIN_ADS, client_id), 0, 0, 256, "", NULL, 0,
         "LinkedIn app: client id."},
        {"OMNIFY_INTEGRATIONS_LINKEDIN_CLIENT_SECRET", CONFIG_STRING,
         POFF(IG_LINKEDIN_ADS, client_secret), 0, 0, 256, "", NULL, 1,
         "LinkedIn app: client secret."},
        {"OMNIFY_INTEGRATIONS_LINKEDIN_VERSION", CONFIG_STRING,
         POFF(IG_LINKEDIN_ADS, api_version), 0, 0, 9, "", NULL, 0,
         "Linkedin-Version header (YYYYMM); empty: the month before this one "
         "(versions are sunset after a year)."},
        {"OMNIFY_INTEGRATIONS_LINKEDIN_SCOPES", CONFIG_STRING,
         POFF(IG_LINKEDIN_ADS, scopes), 0, 1, 512, "r_ads r_ads_reporting",
         NULL, 0, "LinkedIn scopes asked for."},

        /* ----- TikTok Ads ----- */
        {"OMNIFY_INTEGRATIONS_TIKTOK_AUTH_URL", CONFIG_STRING,
         POFF(IG_TIKTOK_ADS, auth_url), 0, 8, 512,
         "https://business-api.tiktok.com", NULL, 0,
         "TikTok for Business authorize host."},
        {"OMNIFY_INTEGRATIONS_TIKTOK_API_URL", CONFIG_STRING,
         POFF(IG_TIKTOK_ADS, api_url), 0, 8, 512,
         "https://business-api.tiktok.com", NULL, 0,
         "TikTok API for Business host."},
        {"OMNIFY_INTEGRATIONS_TIKTOK_APP_ID", CONFIG_STRING,
         POFF(IG_TIKTOK_ADS, client_id), 0, 0, 256, "", NULL, 0,
         "TikTok app id."},
        {"OMNIFY_INTEGRATIONS_TIKTOK_SECRET", CONFIG_STRING,
         POFF(IG_TIKTOK_ADS, client_secret), 0, 0, 256, "", NULL, 1,
         "TikTok app secret."},

        /* ----- TripleWhale ----- */
        {"OMNIFY_INTEGRATIONS_TRIPLEWHALE_API_URL", CONFIG_STRING,
         POFF(IG_TRIPLEWHALE, api_url), 0, 8, 512,
         "https://api.triplewhale.com", NULL, 0, "TripleWhale API host."},

        /* ----- GoHighLevel ----- */
        {"OMNIFY_INTEGRATIONS_GOHIGHLEVEL_AUTH_URL", CONFIG_STRING,
         POFF(IG_GOHIGHLEVEL, auth_url), 0, 8, 512,
         "https://marketplace.gohighlevel.com", NULL, 0,
         "GoHighLevel location chooser host."},
        {"OMNIFY_INTEGRATIONS_GOHIGHLEVEL_API_URL", CONFIG_STRING,
         POFF(IG_GOHIGHLEVEL, api_url), 0, 8, 512,
         "https://services.leadconnectorhq.com", NULL, 0,
         "GoHighLevel API host (tokens and API)."},
        {"OMNIFY_INTEGRATIONS_GOHIGHLEVEL_CLIENT_ID", CONFIG_STRING,
         POFF(IG_GOHIGHLEVEL, client_id), 0, 0, 256, "", NULL, 0,
         "GoHighLevel app: client id."},
        {"OMNIFY_INTEGRATIONS_GOHIGHLEVEL_CLIENT_SECRET", CONFIG_STRING,
         POFF(IG_GOHIGHLEVEL, client_secret), 0, 0, 256, "", NULL, 1,
         "GoHighLevel app: client secret."},
        {"OMNIFY_INTEGRATIONS_GOHIGHLEVEL_SCOPES", CONFIG_STRING,
         POFF(IG_GOHIGHLEVEL, scopes), 0, 1, 512,
         "contacts.readonly opportunities.readonly locations.readonly", NULL, 0,
         "GoHighLevel scopes asked for."},
        {"OMNIFY_INTEGRATIONS_GOHIGHLEVEL_WEBHOOK_KEY", CONFIG_STRING,
         POFF(IG_GOHIGHLEVEL, webhook_key), 0, 0, 1024, "", NULL, 0,
         "GoHighLevel's Ed25519 public key that signs its webhooks "
         "(X-GHL-Signature), as base64: the PEM's body on one line, or the "
         "raw 32 bytes; empty: its webhooks are refused."},
};

const config_table_t ig_settings = {
        "integrations",
        ig_rows,
        sizeof(ig_rows) / sizeof(ig_rows[0]),
        sizeof(ig_settings_t),
};
