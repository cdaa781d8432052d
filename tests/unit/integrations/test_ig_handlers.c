/*
 * test_ig_handlers.c - the integrations group's handlers through the
 * handler harness, against the real store (no broker, no provider: every
 * provider URL points at a closed port): connect (state stored, PKCE,
 * roles), keys, the callback's refusals and single-use states, tenants
 * kept apart, sync requests (202, 409 while one runs, the first page sent),
 * a page without credentials failing its sync, and disconnecting. (Webhooks
 * take raw bodies, which the harness's JSON cannot carry: their
 * verification is in test_ig_units, the rest in the integration tests.)
 *
 * Needs the store of compose/local/infra (OMNIFY_MONGO_URI); exits 77
 * (skipped) without it.
 */
#define _GNU_SOURCE /* strchrnul */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ig.h"
#include "log.h"
#include "msgid.h"
#include "registry.h"
#include "store.h"

#define CLOSED "http://127.0.0.1:9"

static const char *test_env(const char *name) {
        static const struct {
                const char *name, *value;
        } vars[] = {
                {"OMNIFY_INTEGRATIONS_TOKEN_KEYS",
                 "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="},
                {"OMNIFY_INTEGRATIONS_PUBLIC_URL", "http://api.test"},
                {"OMNIFY_INTEGRATIONS_FRONTEND_URL", "http://front.test/i"},
                {"OMNIFY_INTEGRATIONS_GOOGLE_ADS_AUTH_URL",
                 "http://accounts.test"},
                {"OMNIFY_INTEGRATIONS_GOOGLE_ADS_TOKEN_URL", CLOSED},
                {"OMNIFY_INTEGRATIONS_GOOGLE_ADS_API_URL", CLOSED},
                {"OMNIFY_INTEGRATIONS_GOOGLE_ADS_CLIENT_ID", "gid"},
                {"OMNIFY_INTEGRATIONS_GOOGLE_ADS_CLIENT_SECRET", "gsecret"},
                {"OMNIFY_INTEGRATIONS_STRIPE_API_URL", CLOSED},
                {"OMNIFY_INTEGRATIONS_SHOPIFY_CLIENT_SECRET", "shpss_secret"},
        };
        for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
                if (strcmp(vars[i].name, name) == 0)
                        return vars[i].value;
        return getenv(name);
}

typedef struct fixture {
        config_t cfg;
        harness_t *h;
        store_t *store;
        const char *db;
} fixture_t;

static fixture_t fx;

static const harness_caller_t admin1 = {"11111111-1111-4111-8111-111111111111",
                                        "u1", "admin"};
static const harness_caller_t viewer1 = {"11111111-1111-4111-8111-111111111111",
                                         "u2", "viewer"};
static const harness_caller_t member1 = {"11111111-1111-4111-8111-111111111111",
                                         "u3", "member"};
static const harness_caller_t admin2 = {"22222222-2222-4222-8222-222222222222",
                                        "u9", "admin"};

static const char *reply_json(void) {
        const harness_msg_t *r = harness_reply(fx.h);
        assert_non_null(r);
        return r->json;
}

/* A value of the reply's JSON, found by its key's text (enough here). */
static void reply_field(const char *key, char *out, size_t size) {
        const char *j = reply_json(), *p;
        char pat[64];
        size_t n = 0;
        snprintf(pat, sizeof(pat), "\"%s\":\"", key);
        p = strstr(j, pat);
        assert_non_null(p);
        p += strlen(pat);
        while (p[n] && p[n] != '"' && n + 1 < size)
                n++;
        memcpy(out, p, n);
        out[n] = '\0';
}

static void url_unescape(char *s) {
        char *o = s;
        for (; *s; s++) {
                if (*s == '%' && s[1] && s[2]) {
                        unsigned v;
                        sscanf(s + 1, "%2x", &v);
                        *o++ = (char)v;
                        s += 2;
                } else {
                        *o++ = *s;
                }
        }
        *o = '\0';
}

static void test_connect_makes_a_state_with_pkce(void **state) {
        char url[1024], st[128], *p;
        int64_t n = 0;
        bson_t filter = BSON_INITIALIZER, doc;
        char errstr[256];
        (void)state;
        assert_int_equal(harness_command(fx.h, "integrations.connect",
                                         "{\"provider\": \"google_ads\"}",
                                         &admin1),
                         200);
        reply_field("authorize_url", url, sizeof(url));
        assert_non_null(strstr(url, "http://accounts.test/o/oauth2/v2/auth?"));
        assert_non_null(strstr(url, "client_id=gid"));
        assert_non_null(strstr(url, "code_challenge_method=S256"));
        assert_non_null(strstr(url, "access_type=offline"));
        assert_non_null(strstr(url, "redirect_uri=http%3A%2F%2Fapi.test%2Fapi%"
                                    "2Fintegrations%2Fgoogle_ads%2Fcallback"));
        p = strstr(url, "state=");
        assert_non_null(p);
        snprintf(st, sizeof(st), "%s", p + 6);
        *strchrnul(st, '&') = '\0';
        url_unescape(st);
        /* Stored: bound to the tenant, the verifier sealed. */
        BSON_APPEND_UTF8(&filter, "tenant", admin1.tenant);
        assert_int_equal(store_count(fx.store, fx.db, "oauth_states", &filter,
                                     &n, errstr, sizeof(errstr)),
                         STORE_OK);
        assert_true(n >= 1);
        assert_int_equal(store_find_one(fx.store, fx.db, "oauth_states",
                                        &filter, NULL, &doc, errstr,
                                        sizeof(errstr)),
                         STORE_OK);
        assert_true(bson_has_field(&doc, "verifier.ct"));
        assert_false(bson_has_field(&doc, "code_verifier"));
        bson_destroy(&doc);
        bson_destroy(&filter);
        /* The callback: the state is taken (once) before the code is used;
         * the token endpoint is unreachable here. */
        {
                char q[512];
                snprintf(q, sizeof(q),
                         "{\"provider\": \"google_ads\", \"code\": \"c\", "
                         "\"state\": \"%s\"}",
                         st);
                assert_int_equal(
                        harness_command(fx.h, "integrations.callback", q, NULL),
                        302);
                assert_non_null(strstr(reply_json(), "reason=provider_"
                                                     "unavailable"));
                assert_int_equal(
                        harness_command(fx.h, "integrations.callback", q, NULL),
                        302);
                assert_non_null(strstr(reply_json(), "reason=invalid_state"));
                assert_non_null(strstr(reply_json(), "http://front.test/i?"));
        }
}

static void test_connect_roles_and_kinds(void **state) {
        (void)state;
        assert_int_equal(harness_command(fx.h, "integrations.connect",
                                         "{\"provider\": \"google_ads\"}",
                                         &viewer1),
                         403);
        assert_int_equal(harness_command(fx.h, "integrations.connect",
                                         "{\"provider\": \"google_ads\"}",
                                         NULL),
                         401);
        /* The schema names the providers of each route: a key provider
         * on the OAuth route and the other way round are refused by
         * validation. */
        assert_int_equal(harness_command(fx.h, "integrations.connect",
                                         "{\"provider\": \"stripe\"}", &admin1),
                         400);
        /* No app configured for HubSpot here. */
        assert_int_equal(harness_command(fx.h, "integrations.connect",
                                         "{\"provider\": \"hubspot\"}",
                                         &admin1),
                         404);
        assert_int_equal(harness_command(fx.h, "integrations.connect",
                                         "{\"provider\": \"shopify\", "
                                         "\"shop\": \"x.evil.com\"}",
                                         &admin1),
                         404);
        assert_int_equal(harness_command(fx.h, "integrations.keys",
                                         "{\"provider\": \"hubspot\", "
                                         "\"api_key\": \"whatever-key\"}",
                                         &admin1),
                         400);
        /* Stripe's API is unreachable: the key cannot be checked. */
        assert_int_equal(harness_command(fx.h, "integrations.keys",
                                         "{\"provider\": \"stripe\", "
                                         "\"api_key\": \"sk_test_0123456789\"}",
                                         &admin1),
                         502);
        assert_int_equal(harness_command(fx.h, "integrations.keys",
                                         "{\"provider\": \"stripe\", "
                                         "\"api_key\": \"nope-nope-nope\"}",
                                         &admin1),
                         422);
}

static void test_callback_refusals(void **state) {
        (void)state;
        assert_int_equal(harness_command(fx.h, "integrations.callback",
                                         "{\"provider\": \"hubspot\"}", NULL),
                         302);
        assert_non_null(strstr(reply_json(), "reason=missing_state"));
        assert_int_equal(harness_command(fx.h, "integrations.callback",
                                         "{\"provider\": \"hubspot\", "
                                         "\"state\": \"abc.def\"}",
                                         NULL),
                         302);
        assert_non_null(strstr(reply_json(), "reason=invalid_state"));
        assert_int_equal(harness_outputs(fx.h), 0);
}

/* A connection of tenant t, connected, without credentials. */
static void put_connection(const char *id, const char *tenant,
                           const char *provider) {
        bson_t doc = BSON_INITIALIZER;
        char errstr[256];
        int64_t now = (int64_t)clock_wall_ms();
        BSON_APPEND_UTF8(&doc, "_id", id);
        BSON_APPEND_UTF8(&doc, "tenant", tenant);
        BSON_APPEND_UTF8(&doc, "provider", provider);
        BSON_APPEND_UTF8(&doc, "account_id", "acct-1");
        BSON_APPEND_UTF8(&doc, "account_name", "Account one");
        BSON_APPEND_UTF8(&doc, "status", "connected");
        BSON_APPEND_UTF8(&doc, "auth", "api_key");
        BSON_APPEND_DATE_TIME(&doc, "connected_at", now);
        BSON_APPEND_DATE_TIME(&doc, "lease_until", 0);
        assert_int_equal(store_insert(fx.store, fx.db, "connections", &doc,
                                      errstr, sizeof(errstr)),
                         STORE_OK);
        bson_destroy(&doc);
}

static void
test_tenants_are_kept_apart_and_syncs_run_one_at_a_time(void **state) {
        const char *id = "0190a000-0000-7000-8000-000000000001";
        char path[256], sync_id[64];
        (void)state;
        put_connection(id, admin1.tenant, "stripe");
        assert_int_equal(harness_command(fx.h, "integrations.connections.list",
                                         "{}", &viewer1),
                         200);
        assert_non_null(strstr(reply_json(), id));
        assert_int_equal(harness_command(fx.h, "integrations.connections.list",
                                         "{}", &admin2),
                         200);
        assert_null(strstr(reply_json(), id));
        snprintf(path, sizeof(path), "{\"connection_id\": \"%s\"}", id);
        assert_int_equal(harness_command(fx.h, "integrations.connections.get",
                                         path, &admin2),
                         404);
        assert_int_equal(harness_command(fx.h, "integrations.sync.request",
                                         path, &admin2),
                         404);
        assert_int_equal(harness_command(fx.h,
                                         "integrations.connections.disconnect",
                                         path, &admin2),
                         404);
        assert_int_equal(harness_command(fx.h, "integrations.sync.request",
                                         path, &viewer1),
                         403);
        /* A member starts one; it is announced and its first page sent. */
        assert_int_equal(harness_command(fx.h, "integrations.sync.request",
                                         path, &member1),
                         202);
        reply_field("id", sync_id, sizeof(sync_id));
        assert_non_null(strstr(reply_json(), "\"status\":\"running\""));
        assert_int_equal(harness_count(fx.h, "integrations.sync.started"), 1);
        assert_int_equal(harness_count(fx.h, "integrations.sync.page"), 1);
        /* Another while it runs: refused. */
        assert_int_equal(harness_command(fx.h, "integrations.sync.request",
                                         path, &member1),
                         409);
        /* A backfill is its own job. */
        {
                char b[256];
                snprintf(b, sizeof(b),
                         "{\"connection_id\": \"%s\", \"kind\": \"backfill\", "
                         "\"days\": 5}",
                         id);
                assert_int_equal(harness_command(fx.h,
                                                 "integrations.sync.request", b,
                                                 &member1),
                                 202);
        }
        /* Its page: the connection has no credentials, the sync fails. */
        {
                char page[512];
                snprintf(
                        page, sizeof(page),
                        "{\"sync_id\": \"%s\", \"connection_id\": \"%s\", "
                        "\"stream\": 0, \"page\": 0, \"cursor\": \"{}\", "
                        "\"since\": \"2025-01-01\", \"until\": \"2025-01-03\", "
                        "\"kind\": \"manual\", \"first_sync\": false, "
                        "\"records\": 0, \"counts\": {}}",
                        sync_id, id);
                int status = harness_command(fx.h, "integrations.sync.page",
                                             page, &admin1);
                if (status != 200)
                        fail_msg("page: %d %s", status,
                                 harness_reply(fx.h) ? harness_reply(fx.h)->json
                                                     : "(no reply)");
                assert_int_equal(
                        harness_count(fx.h, "integrations.sync.failed"), 1);
                snprintf(page, sizeof(page), "{\"sync_id\": \"%s\"}", sync_id);
                assert_int_equal(harness_command(fx.h, "integrations.syncs.get",
                                                 page, &viewer1),
                                 200);
                assert_non_null(strstr(reply_json(), "\"status\":\"failed\""));
                assert_int_equal(harness_command(fx.h, "integrations.syncs.get",
                                                 page, &admin2),
                                 404);
        }
        assert_int_equal(harness_command(fx.h, "integrations.syncs.list", path,
                                         &viewer1),
                         200);
        assert_non_null(strstr(reply_json(), sync_id));
}

static void test_disconnect(void **state) {
        const char *id = "0190a000-0000-7000-8000-000000000002";
        char path[128];
        (void)state;
        put_connection(id, admin1.tenant, "triplewhale");
        snprintf(path, sizeof(path), "{\"connection_id\": \"%s\"}", id);
        assert_int_equal(harness_command(fx.h,
                                         "integrations.connections.disconnect",
                                         path, &member1),
                         403);
        assert_int_equal(harness_command(fx.h,
                                         "integrations.connections.disconnect",
                                         path, &admin1),
                         200);
        assert_non_null(strstr(reply_json(), "\"status\":\"disconnected\""));
        assert_int_equal(
                harness_count(fx.h, "integrations.connection.disconnected"), 1);
        assert_int_equal(harness_command(fx.h, "integrations.connections.get",
                                         path, &viewer1),
                         200);
        assert_non_null(strstr(reply_json(), "\"status\":\"disconnected\""));
        assert_int_equal(harness_command(fx.h, "integrations.sync.request",
                                         path, &member1),
                         409);
}

static int setup(void **state) {
        char err[512], prefix[32];
        char *argv[] = {"test_ig_handlers", NULL};
        const config_table_t *tables[] = {&ig_settings, NULL};
        msgid_t id;
        (void)state;
        memset(&fx, 0, sizeof(fx));
        if (config_load_tables(&fx.cfg, CONFIG_SCOPE_GROUP, tables,
                               "test_ig_handlers", 1, argv, NULL, test_env,
                               NULL, err, sizeof(err)) != CONFIG_OK)
                fail_msg("config: %s", err);
        msgid_new(&id);
        snprintf(prefix, sizeof(prefix), "igt%02x%02x%02x_", id.b[13], id.b[14],
                 id.b[15]);
        free(fx.cfg.mongo_db_prefix);
        fx.cfg.mongo_db_prefix = strdup(prefix);
        fx.store = store_new(&fx.cfg, "test_ig_handlers", err, sizeof(err));
        if (!fx.store || store_ping(fx.store) != STORE_OK) {
                fprintf(stderr, "test_ig_handlers: no store: skipped\n");
                exit(77);
        }
        fx.h = harness_new(&group_integrations, &fx.cfg, NULL, err,
                           sizeof(err));
        if (!fx.h)
                fail_msg("harness: %s", err);
        fx.db = runtime_db(harness_runtime(fx.h));
        return 0;
}

static int teardown(void **state) {
        char errstr[256];
        (void)state;
        harness_destroy(fx.h);
        for (const char *c = "connections\0oauth_states\0syncs\0timers\0"
                             "webhook_seen\0aux\0";
             *c; c += strlen(c) + 1)
                store_drop(fx.store, "integrations", c, errstr, sizeof(errstr));
        store_destroy(fx.store);
        config_deinit(&fx.cfg);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_connect_makes_a_state_with_pkce),
                cmocka_unit_test(test_connect_roles_and_kinds),
                cmocka_unit_test(test_callback_refusals),
                cmocka_unit_test(
                        test_tenants_are_kept_apart_and_syncs_run_one_at_a_time),
                cmocka_unit_test(test_disconnect),
        };
        log_init(getenv("TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR,
                 "test_ig_handlers");
        return cmocka_run_group_tests(tests, setup, teardown);
}
