/*
 * test_ig_units.c - the integrations group's pieces that need no network:
 * days, times and money; the vault (AES-256-GCM under key ids); the pacer's
 * token buckets; record bodies (valid against the declared events) and
 * their derived ids; and every connector's webhook verification (good
 * signature, tampered body, wrong secret, stale timestamp).
 */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "connector.h"
#include "ig.h"
#include "log.h"
#include "msgid.h"
#include "pacer.h"
#include "records.h"
#include "schema.h"
#include "service.h"
#include "vault.h"

/* ---------------------------------------------------------------------------
 * Days, times, money
 * ------------------------------------------------------------------------ */

static void test_days_and_times(void **state) {
        ig_day_t d;
        char out[32];
        int64_t ms;
        (void)state;
        assert_true(ig_day_parse("2024-02-29", 10, &d));
        ig_day_format(d + 1, out);
        assert_string_equal(out, "2024-03-01");
        assert_false(ig_day_parse("2025-02-29", 10, &d));
        assert_false(ig_day_parse("2025-13-01", 10, &d));
        assert_int_equal(ig_day_from_civil(1970, 1, 1), 0);
        assert_int_equal(ig_day_of_ms(-1), -1);
        assert_true(ig_time_parse("2025-01-02T03:04:05Z", &ms));
        ig_time_format(ms, out);
        assert_string_equal(out, "2025-01-02T03:04:05.000Z");
        assert_true(ig_time_parse("2025-01-02T05:04:05.25+02:00", &ms));
        ig_time_format(ms, out);
        assert_string_equal(out, "2025-01-02T03:04:05.250Z");
        assert_true(ig_time_parse("2025-01-02 03:04:05", &ms)); /* TikTok */
        assert_true(ig_time_parse("2025-01-02T03:04:05.123456+0000", &ms));
        ig_time_format(ms, out);
        assert_string_equal(out, "2025-01-02T03:04:05.123Z");
        assert_true(ig_time_parse("2025-01-02", &ms));
        assert_false(ig_time_parse("2025-01-02T03", &ms));
        assert_false(ig_time_parse("yesterday", &ms));
}

static void test_money(void **state) {
        int64_t m;
        (void)state;
        assert_true(ig_money_parse("12.34", "USD", &m));
        assert_int_equal(m, 1234);
        assert_true(ig_money_parse("12.3", "EUR", &m));
        assert_int_equal(m, 1230);
        assert_true(ig_money_parse("12", "GBP", &m));
        assert_int_equal(m, 1200);
        assert_true(ig_money_parse("0.005", "USD", &m)); /* half up */
        assert_int_equal(m, 1);
        assert_true(ig_money_parse("-5.50", "USD", &m));
        assert_int_equal(m, -550);
        assert_true(ig_money_parse("1200", "JPY", &m));
        assert_int_equal(m, 1200);
        assert_true(ig_money_parse("1.2345", "KWD", &m));
        assert_int_equal(m, 1235);
        assert_false(ig_money_parse("12,34", "USD", &m));
        assert_false(ig_money_parse("", "USD", &m));
        assert_false(ig_money_parse("abc", "USD", &m));
        assert_int_equal(ig_money_from_micros(12345678, "USD"), 1235);
        assert_int_equal(ig_money_from_micros(12345678, "JPY"), 12);
        assert_int_equal(ig_money_from_double(19.99, "USD"), 1999);
        assert_int_equal(ig_money_from_double(0.1 + 0.2, "USD"), 30);
}

static void test_urls_and_addresses(void **state) {
        char buf[64], dom[64];
        (void)state;
        assert_string_equal(ig_url_param("https://s.example/p?utm_source=goo"
                                         "gle&gclid=Cj0%2BX+y#f",
                                         "gclid", buf, sizeof(buf)),
                            "Cj0+X y");
        assert_null(ig_url_param("/p?xgclid=1", "gclid", buf, sizeof(buf)));
        assert_null(ig_url_param("/p", "gclid", buf, sizeof(buf)));
        ig_email_domain("Ava.Smith@Example.ORG", dom, sizeof(dom));
        assert_string_equal(dom, "example.org");
        ig_email_domain("nobody", dom, sizeof(dom));
        assert_string_equal(dom, "");
        assert_true(ig_shop_domain("acme", dom, sizeof(dom)));
        assert_string_equal(dom, "acme.myshopify.com");
        assert_true(ig_shop_domain("acme.myshopify.com", dom, sizeof(dom)));
        assert_false(ig_shop_domain("evil.com/x", dom, sizeof(dom)));
        assert_false(ig_shop_domain("", dom, sizeof(dom)));
        assert_false(ig_shop_domain("Acme", dom, sizeof(dom)));
}

/* ---------------------------------------------------------------------------
 * Vault
 * ------------------------------------------------------------------------ */

#define K1 "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
#define K2 "k2:ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="

static void test_vault_round_trip_and_binding(void **state) {
        char err[256], *plain = NULL;
        size_t len = 0;
        ig_vault_t *v = ig_vault_new(K1, err, sizeof(err));
        bson_t doc = BSON_INITIALIZER;
        const uint8_t *data;
        uint32_t n;
        bson_iter_t it, sub;
        (void)state;
        assert_non_null(v);
        ig_vault_seal(v, "conn-1|t1", "{\"access_token\":\"s3cret\"}", 25, &doc,
                      "creds");
        /* Nothing of the plaintext in the record. */
        assert_null(memmem(bson_get_data(&doc), doc.len, "s3cret", 6));
        assert_string_equal(ig_vault_kid_of(&doc, "creds"), "k1");
        assert_int_equal(
                ig_vault_open(v, "conn-1|t1", &doc, "creds", &plain, &len),
                IG_OK);
        assert_int_equal(len, 25);
        assert_string_equal(plain, "{\"access_token\":\"s3cret\"}");
        ig_vault_free(plain, len);
        /* Moved to another record: refused. */
        assert_int_equal(
                ig_vault_open(v, "conn-2|t1", &doc, "creds", &plain, &len),
                IG_CRYPTO);
        assert_int_equal(
                ig_vault_open(v, "conn-1|t1", &doc, "other", &plain, &len),
                IG_GONE);
        /* A flipped ciphertext byte: refused. */
        assert_true(bson_iter_init_find(&it, &doc, "creds") &&
                    bson_iter_recurse(&it, &sub) && bson_iter_find(&sub, "ct"));
        bson_iter_binary(&sub, NULL, &n, &data);
        ((uint8_t *)data)[0] ^= 1;
        assert_int_equal(
                ig_vault_open(v, "conn-1|t1", &doc, "creds", &plain, &len),
                IG_CRYPTO);
        bson_destroy(&doc);
        ig_vault_destroy(v);
}

static void test_vault_rotation(void **state) {
        char err[256], *plain = NULL;
        size_t len;
        ig_vault_t *old = ig_vault_new(K1, err, sizeof(err));
        ig_vault_t *both = ig_vault_new(K2 "," K1, err, sizeof(err));
        ig_vault_t *only2 = ig_vault_new(K2, err, sizeof(err));
        bson_t doc = BSON_INITIALIZER, doc2 = BSON_INITIALIZER;
        (void)state;
        assert_non_null(old);
        assert_non_null(both);
        ig_vault_seal(old, "a", "x", 1, &doc, "c");
        /* The new key encrypts; the old one still opens what it made. */
        assert_string_equal(ig_vault_kid(both), "k2");
        assert_int_equal(ig_vault_open(both, "a", &doc, "c", &plain, &len),
                         IG_OK);
        ig_vault_free(plain, len);
        ig_vault_seal(both, "a", "x", 1, &doc2, "c");
        assert_string_equal(ig_vault_kid_of(&doc2, "c"), "k2");
        /* With the old key dropped, only re-encrypted records open. */
        assert_int_equal(ig_vault_open(only2, "a", &doc, "c", &plain, &len),
                         IG_CRYPTO);
        assert_int_equal(ig_vault_open(only2, "a", &doc2, "c", &plain, &len),
                         IG_OK);
        ig_vault_free(plain, len);
        bson_destroy(&doc);
        bson_destroy(&doc2);
        ig_vault_destroy(old);
        ig_vault_destroy(both);
        ig_vault_destroy(only2);
}

static void test_vault_refuses_bad_settings(void **state) {
        char err[256];
        (void)state;
        assert_null(ig_vault_new("", err, sizeof(err)));
        assert_string_equal(err, "");
        assert_null(ig_vault_new("k1", err, sizeof(err)));
        assert_non_null(strstr(err, "kid:base64"));
        assert_null(ig_vault_new("k1:c2hvcnQ=", err, sizeof(err)));
        assert_non_null(strstr(err, "32 bytes"));
        assert_null(ig_vault_new(K1 "," K1, err, sizeof(err)));
        assert_non_null(strstr(err, "twice"));
        assert_null(ig_vault_new("bad kid:" K1 + 3, err, sizeof(err)));
}

/* ---------------------------------------------------------------------------
 * Pacer
 * ------------------------------------------------------------------------ */

static void test_pacer_buckets(void **state) {
        ig_pacer_t *p = ig_pacer_new(100);
        int64_t w;
        (void)state;
        /* A burst of 3 goes at once; the fourth waits about 1/rate. */
        for (int i = 0; i < 3; i++)
                assert_int_equal(ig_pacer_take(p, "k", 2, 3, 1, 60000), 0);
        w = ig_pacer_take(p, "k", 2, 3, 1, 60000);
        assert_in_range(w, 400, 600);
        /* Another key is another bucket. */
        assert_int_equal(ig_pacer_take(p, "other", 2, 3, 1, 60000), 0);
        /* A wait beyond the bound is said, not reserved. */
        ig_pacer_block(p, "b", (int64_t)clock_wall_ms() + 30000);
        w = ig_pacer_take(p, "b", 10, 10, 1, 1000);
        assert_in_range(w, 29000, 30100);
        assert_in_range(ig_pacer_take(p, "b", 10, 10, 1, 1000), 29000, 30100);
        /* Costs: 700 of a 2,000 bucket, twice at once, then a wait. */
        assert_int_equal(ig_pacer_take(p, "shop", 100, 2000, 700, 60000), 0);
        assert_int_equal(ig_pacer_take(p, "shop", 100, 2000, 700, 60000), 0);
        w = ig_pacer_take(p, "shop", 100, 2000, 700, 60000);
        assert_in_range(w, 900, 1100); /* (700 - 600) / 100 per s */
        /* The provider says its bucket is smaller: later calls pace by it. */
        ig_pacer_level(p, "small", 50, 1000, 1000);
        assert_int_equal(ig_pacer_take(p, "small", 100, 2000, 700, 60000), 0);
        w = ig_pacer_take(p, "small", 100, 2000, 700, 60000);
        assert_in_range(w, 7500, 8500); /* (700 - 300) / 50 per s */
        ig_pacer_destroy(p);
}

/* ---------------------------------------------------------------------------
 * Records
 * ------------------------------------------------------------------------ */

static schema_set_t *schemas;

static void check_valid(const ig_records_t *r) {
        for (size_t i = 0; i < r->n; i++) {
                const schema_event_t *decl =
                        schema_find_event(schemas, slice_of(r->v[i].type));
                schema_report_t report;
                msgpack_zone zone;
                msgpack_object obj;
                size_t off = 0;
                assert_non_null(decl);
                msgpack_zone_init(&zone, 1024);
                assert_int_equal(msgpack_unpack(r->v[i].body.data,
                                                r->v[i].body.size, &off, &zone,
                                                &obj),
                                 MSGPACK_UNPACK_SUCCESS);
                assert_int_equal(off, r->v[i].body.size);
                if (!schema_event_validate(decl, &obj, &report))
                        fail_msg("%s: %s %s", r->v[i].type, report.v[0].field,
                                 report.v[0].reason);
                msgpack_zone_destroy(&zone);
        }
}

static ig_job_t job_of(ig_provider_t p) {
        ig_job_t j;
        memset(&j, 0, sizeof(j));
        j.c = ig_connector(p);
        j.tenant = "t1";
        j.account_id = "acct-1";
        return j;
}

static void test_records_are_valid_and_ids_derived(void **state) {
        ig_job_t g = job_of(IG_GOOGLE_ADS), s = job_of(IG_SHOPIFY),
                 h = job_of(IG_HUBSPOT), t = job_of(IG_TRIPLEWHALE);
        ig_records_t a, b;
        ig_ad_row_t row = {"123", "Brand", 20000, "EUR", 1234,
                           10,    2,       1.5,   999,   -1};
        ig_order_t o;
        ig_contact_t c = {
                "c1", 1700000000000, 1700000500000, "lead", "x@y.com", 1, 2,
                0,    1700000400000};
        ig_deal_t d = {"d1",  "c1",          "closedwon",   50000,
                       "USD", 1700000000000, 1700900000000, 1};
        ig_deal_t open = {"d2", "", "qualifiedtobuy", 100, "USD", 1700000000000,
                          0,    -1};
        ig_summary_t sm = {20000, "USD", 100, 200, 3, 1};
        (void)state;
        memset(&o, 0, sizeof(o));
        o.order_id = "5001";
        o.placed_ms = 1700000000000;
        o.currency = "USD";
        o.total_minor = 1000;
        o.subtotal_minor = 900;
        o.customer_id = "";
        o.status = "paid";
        o.lines[0] = (ig_line_t){"SKU-1", "Shirt", 1, 900};
        o.n_lines = 1;
        ig_touch_from_utm(&o.touches[0], o.placed_ms, "youtube", "video",
                          "71420495548", "gclid", "Cj0X");
        o.n_touches = 1;
        assert_string_equal(o.touches[0].provider, "youtube");
        assert_string_equal(o.touches[0].campaign_id, "71420495548");

        ig_records_init(&a, 1);
        ig_records_init(&b, 2); /* another read, later */
        ig_rec_ad(&a, &g, &row);
        ig_rec_ad(&b, &g, &row);
        ig_rec_order(&a, &s, &o);
        ig_rec_contact(&a, &h, &c);
        ig_rec_deal(&a, &h, &d);
        ig_rec_deal(&a, &h, &open);
        ig_rec_summary(&a, &t, &sm);
        check_valid(&a);
        /* The same fact read again: the same id whatever observed_ms. */
        assert_string_equal(a.v[0].id, b.v[0].id);
        assert_string_equal(a.v[0].key, "t1|google_ads|acct-1");
        /* A late conversion: a new id. */
        row.conversions = 2;
        ig_rec_ad(&b, &g, &row);
        assert_string_not_equal(a.v[0].id, b.v[1].id);
        /* Video views make an optional field; valid too. */
        row.video_views = 77;
        ig_rec_ad(&b, &g, &row);
        check_valid(&b);
        ig_records_clear(&a);
        ig_records_clear(&b);
}

/* ---------------------------------------------------------------------------
 * Webhook signatures
 * ------------------------------------------------------------------------ */

static ig_settings_t set;
static ig_state_t st;

typedef struct hookfx {
        msgpack_sbuffer sb;
        msgpack_zone zone;
        msgpack_object obj;
} hookfx_t;

/* A command body of header fields name=value (NULL-terminated pairs). */
static void hook_fields(hookfx_t *fx, const char *const *kv) {
        msgpack_packer pk;
        size_t n = 0, off = 0;
        while (kv[2 * n])
                n++;
        msgpack_sbuffer_init(&fx->sb);
        msgpack_packer_init(&pk, &fx->sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, (uint32_t)n);
        for (size_t i = 0; i < n; i++) {
                codec_pack_str(&pk, kv[2 * i]);
                codec_pack_str(&pk, kv[2 * i + 1]);
        }
        msgpack_zone_init(&fx->zone, 1024);
        msgpack_unpack(fx->sb.data, fx->sb.size, &off, &fx->zone, &fx->obj);
}

static ig_err_t verify(ig_provider_t p, const char *body, const char *const *kv,
                       size_t *items) {
        hookfx_t fx;
        ig_hook_t h;
        ig_err_t err;
        memset(&h, 0, sizeof(h));
        hook_fields(&fx, kv);
        h.st = &st;
        h.ps = &set.p[p];
        h.fields = &fx.obj;
        h.body = slice_of(body);
        h.now_ms = (int64_t)clock_wall_ms();
        err = ig_connector(p)->hook_verify(&h);
        *items = h.n_items;
        ig_hook_clear(&h);
        msgpack_zone_destroy(&fx.zone);
        msgpack_sbuffer_destroy(&fx.sb);
        return err;
}

static void hmac_hex(const char *key, const char *msg, size_t len,
                     char out[65]) {
        unsigned char mac[32];
        unsigned int n = 0;
        HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)msg,
             len, mac, &n);
        ig_hex(mac, 32, out);
}

static char *hmac_b64(const char *key, const char *msg, size_t len) {
        unsigned char mac[32];
        unsigned int n = 0;
        HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)msg,
             len, mac, &n);
        return ig_b64(mac, 32);
}

static void test_shopify_and_meta_signatures(void **state) {
        const char *body =
                "{\"id\":5001,\"created_at\":\"2025-01-01T00:00:00Z\"}";
        char *sig = hmac_b64("shpss_secret", body, strlen(body));
        char hex[65], meta[80];
        size_t n;
        (void)state;
        assert_int_equal(
                verify(IG_SHOPIFY, body,
                       (const char *const[]){
                               "shopify_hmac", sig, "shopify_shop",
                               "acme.myshopify.com", "shopify_topic",
                               "orders/create", "shopify_event_id", "e1", NULL},
                       &n),
                IG_OK);
        assert_int_equal(n, 1);
        assert_int_equal(verify(IG_SHOPIFY, "{\"id\":5002}",
                                (const char *const[]){
                                        "shopify_hmac", sig, "shopify_shop",
                                        "acme.myshopify.com",
                                        "shopify_event_id", "e1", NULL},
                                &n),
                         IG_AUTH);
        assert_int_equal(
                verify(IG_SHOPIFY, body,
                       (const char *const[]){"shopify_shop", "a", NULL}, &n),
                IG_AUTH);
        free(sig);
        hmac_hex("meta-secret", body, strlen(body), hex);
        snprintf(meta, sizeof(meta), "sha256=%s", hex);
        assert_int_equal(
                verify(IG_META_ADS,
                       "{\"object\":\"ad_account\",\"entry\":[{\"id\":\"1\"}]}",
                       (const char *const[]){"meta_signature", meta, NULL}, &n),
                IG_AUTH);
        body = "{\"object\":\"ad_account\",\"entry\":[{\"id\":\"1\"}]}";
        hmac_hex("meta-secret", body, strlen(body), hex);
        snprintf(meta, sizeof(meta), "sha256=%s", hex);
        assert_int_equal(
                verify(IG_META_ADS,
                       "{\"object\":\"ad_account\",\"entry\":[{\"id\":\"1\"}]}",
                       (const char *const[]){"meta_signature", meta, NULL}, &n),
                IG_OK);
        assert_int_equal(n, 1);
}

static void test_stripe_signature_and_tolerance(void **state) {
        const char *body = "{\"id\":\"evt_1\",\"type\":\"charge.succeeded\","
                           "\"account\":\"acct_1\",\"data\":{\"object\":"
                           "{\"id\":\"ch_1\"}}}";
        char msg[512], hex[65], header[200];
        long t = (long)(clock_wall_ms() / 1000);
        size_t n;
        (void)state;
        snprintf(msg, sizeof(msg), "%ld.%s", t, body);
        hmac_hex("whsec_test", msg, strlen(msg), hex);
        snprintf(header, sizeof(header), "t=%ld,v1=%s,v0=ignored", t, hex);
        assert_int_equal(
                verify(IG_STRIPE, body,
                       (const char *const[]){"stripe_signature", header, NULL},
                       &n),
                IG_OK);
        assert_int_equal(n, 1);
        /* Signed ten minutes ago: beyond the 300 s tolerance. */
        snprintf(msg, sizeof(msg), "%ld.%s", t - 600, body);
        hmac_hex("whsec_test", msg, strlen(msg), hex);
        snprintf(header, sizeof(header), "t=%ld,v1=%s", t - 600, hex);
        assert_int_equal(
                verify(IG_STRIPE, body,
                       (const char *const[]){"stripe_signature", header, NULL},
                       &n),
                IG_AUTH);
        snprintf(header, sizeof(header), "t=%ld,v1=%s", t, hex);
        assert_int_equal(
                verify(IG_STRIPE, body,
                       (const char *const[]){"stripe_signature", header, NULL},
                       &n),
                IG_AUTH);
}

static void test_hubspot_and_klaviyo_signatures(void **state) {
        const char *body = "[{\"eventId\":1,\"portalId\":42,\"objectId\":7}]";
        char msg[512], ts[32], iso[32], hex[65], *sig;
        int64_t now = (int64_t)clock_wall_ms();
        size_t n;
        (void)state;
        snprintf(ts, sizeof(ts), "%lld", (long long)now);
        snprintf(msg, sizeof(msg),
                 "POSThttp://api.test/api/integrations/webhooks/hubspot%s%s",
                 body, ts);
        sig = hmac_b64("hubspot-secret", msg, strlen(msg));
        assert_int_equal(
                verify(IG_HUBSPOT, body,
                       (const char *const[]){"hubspot_signature", sig,
                                             "hubspot_timestamp", ts, NULL},
                       &n),
                IG_OK);
        assert_int_equal(n, 1);
        free(sig);
        snprintf(ts, sizeof(ts), "%lld", (long long)(now - 600000));
        snprintf(msg, sizeof(msg),
                 "POSThttp://api.test/api/integrations/webhooks/hubspot%s%s",
                 body, ts);
        sig = hmac_b64("hubspot-secret", msg, strlen(msg));
        assert_int_equal(
                verify(IG_HUBSPOT, body,
                       (const char *const[]){"hubspot_signature", sig,
                                             "hubspot_timestamp", ts, NULL},
                       &n),
                IG_AUTH);
        free(sig);

        body = "{\"data\":[{\"external_id\":\"e1\"}],\"meta\":"
               "{\"klaviyo_account_id\":\"ABC\"}}";
        ig_time_format(now, iso);
        snprintf(msg, sizeof(msg), "%s%s", body, iso);
        hmac_hex("klaviyo-secret", msg, strlen(msg), hex);
        assert_int_equal(
                verify(IG_KLAVIYO, body,
                       (const char *const[]){"klaviyo_signature", hex,
                                             "klaviyo_timestamp", iso, NULL},
                       &n),
                IG_OK);
        assert_int_equal(n, 1);
        hex[0] = hex[0] == 'a' ? 'b' : 'a';
        assert_int_equal(
                verify(IG_KLAVIYO, body,
                       (const char *const[]){"klaviyo_signature", hex,
                                             "klaviyo_timestamp", iso, NULL},
                       &n),
                IG_AUTH);
}

static void test_gohighlevel_ed25519(void **state) {
        EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
        EVP_PKEY *key = NULL;
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        unsigned char pub[32], sig[64];
        size_t plen = 32, slen = 64, n;
        char body[256], *sig64, *pub64;
        (void)state;
        assert_int_equal(EVP_PKEY_keygen_init(kc), 1);
        assert_int_equal(EVP_PKEY_keygen(kc, &key), 1);
        assert_int_equal(EVP_PKEY_get_raw_public_key(key, pub, &plen), 1);
        pub64 = ig_b64(pub, 32);
        set.p[IG_GOHIGHLEVEL].webhook_key = pub64;
        snprintf(body, sizeof(body),
                 "{\"type\":\"ContactCreate\",\"locationId\":\"L1\","
                 "\"webhookId\":\"w1\",\"id\":\"c1\",\"timestamp\":\"%s\"}",
                 "2020-01-01T00:00:00.000Z");
        assert_int_equal(EVP_DigestSignInit(md, NULL, NULL, NULL, key), 1);
        assert_int_equal(EVP_DigestSign(md, sig, &slen,
                                        (const unsigned char *)body,
                                        strlen(body)),
                         1);
        sig64 = ig_b64(sig, 64);
        /* Signed well but stale. */
        assert_int_equal(
                verify(IG_GOHIGHLEVEL, body,
                       (const char *const[]){"ghl_signature", sig64, NULL}, &n),
                IG_AUTH);
        free(sig64);
        {
                char now[32];
                ig_time_format((int64_t)clock_wall_ms(), now);
                snprintf(body, sizeof(body),
                         "{\"type\":\"ContactCreate\",\"locationId\":\"L1\","
                         "\"webhookId\":\"w1\",\"id\":\"c1\",\"timestamp\":"
                         "\"%s\"}",
                         now);
        }
        EVP_MD_CTX_free(md);
        md = EVP_MD_CTX_new();
        EVP_DigestSignInit(md, NULL, NULL, NULL, key);
        EVP_DigestSign(md, sig, &slen, (const unsigned char *)body,
                       strlen(body));
        sig64 = ig_b64(sig, 64);
        assert_int_equal(
                verify(IG_GOHIGHLEVEL, body,
                       (const char *const[]){"ghl_signature", sig64, NULL}, &n),
                IG_OK);
        assert_int_equal(n, 1);
        body[3] = 'X';
        assert_int_equal(
                verify(IG_GOHIGHLEVEL, body,
                       (const char *const[]){"ghl_signature", sig64, NULL}, &n),
                IG_AUTH);
        free(sig64);
        set.p[IG_GOHIGHLEVEL].webhook_key = "";
        assert_int_equal(
                verify(IG_GOHIGHLEVEL, body,
                       (const char *const[]){"ghl_signature", "x", NULL}, &n),
                IG_NOT_CONFIGURED);
        free(pub64);
        EVP_MD_CTX_free(md);
        EVP_PKEY_free(key);
        EVP_PKEY_CTX_free(kc);
}

static int setup(void **state) {
        char err[512];
        static char empty[] = "";
        (void)state;
        if (!(schemas = service_load_schemas(err, sizeof(err))))
                fail_msg("schemas: %s", err);
        for (int i = 0; i < IG_N_PROVIDERS; i++) {
                char **f = (char **)&set.p[i];
                for (size_t k = 0; k < sizeof(set.p[i]) / sizeof(char *); k++)
                        f[k] = empty;
        }
        set.public_url = "http://api.test";
        set.webhook_tolerance_s = 300;
        set.p[IG_SHOPIFY].client_secret = "shpss_secret";
        set.p[IG_META_ADS].client_secret = "meta-secret";
        set.p[IG_STRIPE].webhook_secret = "whsec_test";
        set.p[IG_HUBSPOT].client_secret = "hubspot-secret";
        set.p[IG_KLAVIYO].webhook_secret = "klaviyo-secret";
        st.set = &set;
        return 0;
}

static int teardown(void **state) {
        (void)state;
        schema_set_destroy(schemas);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_days_and_times),
                cmocka_unit_test(test_money),
                cmocka_unit_test(test_urls_and_addresses),
                cmocka_unit_test(test_vault_round_trip_and_binding),
                cmocka_unit_test(test_vault_rotation),
                cmocka_unit_test(test_vault_refuses_bad_settings),
                cmocka_unit_test(test_pacer_buckets),
                cmocka_unit_test(test_records_are_valid_and_ids_derived),
                cmocka_unit_test(test_shopify_and_meta_signatures),
                cmocka_unit_test(test_stripe_signature_and_tolerance),
                cmocka_unit_test(test_hubspot_and_klaviyo_signatures),
                cmocka_unit_test(test_gohighlevel_ed25519),
        };
        log_init(getenv("TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR,
                 "test_ig_units");
        return cmocka_run_group_tests(tests, setup, teardown);
}
