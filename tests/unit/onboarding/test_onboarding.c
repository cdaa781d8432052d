/*
 * test_onboarding.c - the onboarding group's rules: the checklist's order,
 * progress, "next" and "who is blocking", deadlines and overdue steps (a
 * pure function, onb_checklist), then the handlers through the handler
 * harness against the real store: a checklist completed by other groups'
 * events in any order and again, skips, tenants apart, and the reminders
 * (one mail and one event per overdue step whatever fires twice, a rerun
 * of a firing that died before its operation record, the next deadline
 * armed, skipped and done steps left alone).
 *
 * The harness tests need the store of compose/local/infra
 * (OMNIFY_MONGO_URI) and use a database prefix of their own, dropped at
 * the end; without a store they are skipped (exit 77) after the pure ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "config.h"
#include "docjson.h"
#include "harness.h"
#include "log.h"
#include "msgid.h"
#include "onb.h"

#define DAY_S 10
/* Integrations' events as schemas/integrations.json declares them (the
 * harness checks what it delivers). */
#define CONN_ID "0b0c6c3e-8f4a-4d47-9a55-2f7d4e1c9a01"
#define CONNECTED                                                             \
        "{\"connection_id\": \"" CONN_ID "\", \"provider\": \"google_ads\", " \
        "\"account_id\": \"a1\", \"account_name\": \"Acme Ads\"}"
#define SYNCED                                                               \
        "{\"sync_id\": \"5f1e9d2a-3b7c-4e8f-a1d2-c3b4a5968778\", "           \
        "\"connection_id\": \"" CONN_ID "\", \"provider\": \"google_ads\", " \
        "\"account_id\": \"a1\", \"kind\": \"scheduled\", \"records\": 10, " \
        "\"streams\": {\"campaigns\": 10}, \"first_sync\": true}"
#define DAY_MS ((int64_t)DAY_S * 1000)

/* ---------------------------------------------------------------------------
 * The checklist as a pure function
 * ------------------------------------------------------------------------ */

static json_t *client_json(const char *providers_json) {
        json_t *c = json_pack(
                "{s:s, s:s, s:I, s:o, s:[{s:s, s:s}], s:{}}", "_id", "c1",
                "workspace", "w1", "created_at", (json_int_t)1000000,
                "providers", json_loads(providers_json, 0, NULL), "contacts",
                "name", "Bo", "email", "bo@acme.example", "skipped");
        return c;
}

static const char *step_key(const json_t *client, size_t i) {
        return json_string_value(json_object_get(
                json_array_get(json_object_get(client, "steps"), i), "key"));
}

static const json_t *progress(const json_t *client) {
        return json_object_get(client, "progress");
}

static json_int_t pint(const json_t *client, const char *name) {
        return json_integer_value(json_object_get(progress(client), name));
}

static const char *pstr(const json_t *client, const char *name) {
        return json_string_value(json_object_get(progress(client), name));
}

static void test_steps_in_order_per_provider(void **state) {
        static const char *const want[] = {
                "workspace_created", "terms_accepted",
                "team_invited",      "connected:google_ads",
                "connected:shopify", "synced:google_ads",
                "synced:shopify",    "dashboard_viewed",
                "report_scheduled"};
        json_t *c = client_json("[\"google_ads\", \"shopify\"]");
        json_t *facts = json_object();
        (void)state;
        onb_checklist(c, facts, 1000000, DAY_S);
        assert_int_equal(json_array_size(json_object_get(c, "steps")), 9);
        for (size_t i = 0; i < 9; i++)
                assert_string_equal(step_key(c, i), want[i]);
        assert_int_equal(pint(c, "total"), 9);
        assert_int_equal(pint(c, "percent"), 0);
        assert_string_equal(pstr(c, "next"), "workspace_created");
        assert_string_equal(
                json_string_value(json_object_get(
                        json_object_get(progress(c), "blocking"), "party")),
                "agency");
        assert_false(json_is_true(json_object_get(progress(c), "complete")));
        assert_true(onb_step_known(c, "synced:shopify"));
        assert_false(onb_step_known(c, "synced:stripe"));
        assert_false(onb_step_known(c, "connected"));
        json_decref(facts);
        json_decref(c);

        /* No provider: no connection steps at all. */
        c = client_json("[]");
        facts = json_object();
        onb_checklist(c, facts, 1000000, DAY_S);
        assert_int_equal(pint(c, "total"), 5);
        assert_string_equal(step_key(c, 3), "dashboard_viewed");
        json_decref(facts);
        json_decref(c);
}

static void
test_next_is_the_first_open_step_and_names_who_blocks(void **state) {
        json_t *c = client_json("[\"google_ads\", \"shopify\"]");
        json_t *facts = json_pack("{s:I, s:I, s:I}", "workspace_created",
                                  (json_int_t)1001, "connected:shopify",
                                  (json_int_t)1002, "report_scheduled",
                                  (json_int_t)1003);
        const json_t *blocking;
        (void)state;
        json_object_set_new(json_object_get(c, "skipped"), "team_invited",
                            json_pack("{s:s}", "reason", "solo"));
        onb_checklist(c, facts, 1000000, DAY_S);
        /* Done out of order: the first open step is next, not the one after
         * the last done. */
        assert_string_equal(pstr(c, "next"), "terms_accepted");
        blocking = json_object_get(progress(c), "blocking");
        assert_string_equal(
                json_string_value(json_object_get(blocking, "party")),
                "client");
        assert_string_equal(
                json_string_value(json_object_get(
                        json_object_get(blocking, "contact"), "email")),
                "bo@acme.example");
        assert_int_equal(pint(c, "done"), 3);
        assert_int_equal(pint(c, "skipped"), 1);
        /* Skipped steps count as settled: (3 + 1) / 9. */
        assert_int_equal(pint(c, "percent"), 4 * 100 / 9);
        {
                const json_t *s =
                        json_array_get(json_object_get(c, "steps"), 2);
                assert_string_equal(
                        json_string_value(json_object_get(s, "status")),
                        "skipped");
                s = json_array_get(json_object_get(c, "steps"), 4);
                assert_string_equal(
                        json_string_value(json_object_get(s, "status")),
                        "done");
                assert_int_equal(
                        json_integer_value(json_object_get(s, "done_at")),
                        1002);
        }
        json_decref(c);

        /* The client's steps done: the agency blocks with dashboards. */
        c = client_json("[\"google_ads\"]");
        json_object_set_new(facts, "terms_accepted", json_integer(1));
        json_object_set_new(facts, "team_invited", json_integer(1));
        json_object_set_new(facts, "connected:google_ads", json_integer(1));
        json_object_set_new(facts, "synced:google_ads", json_integer(1));
        onb_checklist(c, facts, 1000000, DAY_S);
        assert_string_equal(pstr(c, "next"), "dashboard_viewed");
        blocking = json_object_get(progress(c), "blocking");
        assert_string_equal(
                json_string_value(json_object_get(blocking, "party")),
                "agency");
        assert_null(json_object_get(blocking, "contact"));
        json_decref(c);

        /* Everything done: complete, nothing next, nobody blocking. */
        c = client_json("[\"google_ads\"]");
        json_object_set_new(facts, "dashboard_viewed", json_integer(1));
        onb_checklist(c, facts, 1000000, DAY_S);
        assert_int_equal(pint(c, "percent"), 100);
        assert_true(json_is_true(json_object_get(progress(c), "complete")));
        assert_true(json_is_null(json_object_get(progress(c), "next")));
        assert_true(json_is_null(json_object_get(progress(c), "blocking")));
        assert_int_equal(onb_next_due(json_object_get(c, "steps"), 0), 0);
        json_decref(c);
        json_decref(facts);
}

static void test_deadlines_and_overdue(void **state) {
        json_t *c = client_json("[\"stripe\"]"), *steps, *facts = json_object();
        int64_t created = 1000000;
        (void)state;
        /* Three days in: workspace (1), terms (2), team (3) are due; team's
         * deadline is now exactly, which is not yet late. */
        onb_checklist(c, facts, created + 3 * DAY_MS, DAY_S);
        steps = json_object_get(c, "steps");
        assert_int_equal(json_integer_value(json_object_get(
                                 json_array_get(steps, 0), "due_at")),
                         created + DAY_MS);
        assert_int_equal(json_integer_value(json_object_get(
                                 json_array_get(steps, 6), "due_at")),
                         created + 10 * DAY_MS);
        assert_true(json_is_true(
                json_object_get(json_array_get(steps, 1), "overdue")));
        assert_false(json_is_true(
                json_object_get(json_array_get(steps, 2), "overdue")));
        assert_int_equal(pint(c, "overdue"), 2);
        /* The next deadline after now is the team's; then the
         * connection's (day 5): equal deadlines count once. */
        assert_int_equal(onb_next_due(steps, created), created + DAY_MS);
        assert_int_equal(onb_next_due(steps, created + 3 * DAY_MS),
                         created + 5 * DAY_MS);
        json_decref(c);

        /* Done and skipped steps are never overdue nor next due. */
        c = client_json("[\"stripe\"]");
        json_object_set_new(facts, "workspace_created", json_integer(5));
        json_object_set_new(json_object_get(c, "skipped"), "terms_accepted",
                            json_pack("{s:s}", "reason", "signed on paper"));
        onb_checklist(c, facts, created + 3 * DAY_MS + 1, DAY_S);
        assert_int_equal(pint(c, "overdue"), 1); /* team only */
        assert_int_equal(onb_next_due(json_object_get(c, "steps"), created),
                         created + 3 * DAY_MS);
        json_decref(c);
        json_decref(facts);
}

/* ---------------------------------------------------------------------------
 * The handlers through the harness
 * ------------------------------------------------------------------------ */

typedef struct fixture {
        config_t cfg;
        harness_t *h;
        store_t *store;
        char prefix[32];
} fixture_t;

static fixture_t fx;

static const char *env_of(const char *name) {
        if (strcmp(name, "OMNIFY_ONBOARDING_DAY_S") == 0)
                return "10";
        if (strcmp(name, "OMNIFY_MAIL_API_KEY") == 0)
                return ""; /* the outbox holds: nothing is sent */
        if (strcmp(name, "OMNIFY_MONGO_DB_PREFIX") == 0)
                return fx.prefix;
        return getenv(name);
}

static void drop_databases(void) {
        static const char *const dbs[] = {"onboarding", "ops"};
        mongoc_client_t *client = mongoc_client_new(fx.cfg.mongo_uri);
        char db[128];
        bson_error_t e;
        for (size_t i = 0; client && i < 2; i++) {
                mongoc_database_t *d;
                snprintf(db, sizeof(db), "%s%s", fx.prefix, dbs[i]);
                d = mongoc_client_get_database(client, db);
                mongoc_database_drop(d, &e);
                mongoc_database_destroy(d);
        }
        mongoc_client_destroy(client);
}

static bool fixture_open(void) {
        char err[512], *argv[] = {"test_onboarding", NULL};
        msgid_t id;
        msgid_new(&id);
        snprintf(fx.prefix, sizeof(fx.prefix), "onbt%02x%02x%02x_", id.b[13],
                 id.b[14], id.b[15]);
        if (config_load_tables(&fx.cfg, CONFIG_SCOPE_GROUP,
                               group_onboarding.settings, "test_onboarding", 1,
                               argv, NULL, env_of, NULL, err,
                               sizeof(err)) != CONFIG_OK) {
                fprintf(stderr, "config: %s\n", err);
                return false;
        }
        fx.h = harness_new(&group_onboarding, &fx.cfg, NULL, err, sizeof(err));
        if (!fx.h) {
                fprintf(stderr, "harness: %s\n", err);
                config_deinit(&fx.cfg);
                return false;
        }
        fx.store = runtime_store(harness_runtime(fx.h));
        return true;
}

static void fixture_close(void) {
        harness_destroy(fx.h);
        drop_databases();
        config_deinit(&fx.cfg);
}

/* The last reply's body. */
static json_t *reply(void) {
        const harness_msg_t *r = harness_reply(fx.h);
        assert_non_null(r);
        return json_loads(r->json, 0, NULL);
}

static int64_t count(const char *coll, const char *field, const char *value) {
        bson_t filter = BSON_INITIALIZER;
        int64_t n = -1;
        char err[256];
        if (field)
                BSON_APPEND_UTF8(&filter, field, value);
        assert_int_equal(store_count(fx.store, ONB_DB, coll, &filter, &n, err,
                                     sizeof(err)),
                         STORE_OK);
        bson_destroy(&filter);
        return n;
}

/* The status of timer id, or "" when there is none. */
static const char *timer_status(const char *id, char *out, size_t len) {
        bson_t filter = BSON_INITIALIZER, doc;
        bson_iter_t it;
        char err[256];
        out[0] = '\0';
        BSON_APPEND_UTF8(&filter, "_id", id);
        if (store_find_one(fx.store, ONB_DB, "timers", &filter, NULL, &doc, err,
                           sizeof(err)) == STORE_OK) {
                if (bson_iter_init_find(&it, &doc, "status"))
                        snprintf(out, len, "%s", bson_iter_utf8(&it, NULL));
                bson_destroy(&doc);
        }
        bson_destroy(&filter);
        return out;
}

/* Each test has organisations of its own: facts are per workspace. */
static const harness_caller_t agency = {"agency-t1", "u1", "owner"};
static const harness_caller_t other = {"agency-t2", "u9", "owner"};
static const harness_caller_t skipper = {"agency-t3", "u1", "owner"};
static const harness_caller_t reminded = {"agency-t4", "u1", "owner"};
static const harness_caller_t quiet = {"agency-t5", "u1", "owner"};

/* Create a client; its id into id, its creation time returned. */
static int64_t create(const harness_caller_t *who, const char *extra,
                      char id[64]) {
        char body[1024];
        json_t *r;
        int64_t created;
        snprintf(body, sizeof(body),
                 "{\"name\": \"Acme\", \"providers\": [\"google_ads\"], "
                 "\"contacts\": [{\"name\": \"Bo\", \"email\": "
                 "\"bo@acme.example\"}]%s}",
                 extra);
        assert_int_equal(
                harness_command(fx.h, "onboarding.clients.create", body, who),
                201);
        assert_int_equal(harness_count(fx.h, "onboarding.client.created"), 1);
        r = reply();
        snprintf(id, 64, "%s", json_string_value(json_object_get(r, "id")));
        created = json_integer_value(json_object_get(r, "created_at"));
        json_decref(r);
        return created;
}

static json_t *get(const harness_caller_t *who, const char *id) {
        char body[128];
        snprintf(body, sizeof(body), "{\"client_id\": \"%s\"}", id);
        if (harness_command(fx.h, "onboarding.clients.get", body, who) != 200)
                return NULL;
        return reply();
}

static void test_checklist_from_events_in_any_order_and_again(void **state) {
        char id[64], ev[256];
        json_t *c;
        (void)state;
        create(&agency, "", id);
        /* The report before anything else, twice; terms of another
         * document; a connection of another workspace. */
        for (int i = 0; i < 2; i++)
                assert_int_equal(harness_event(fx.h,
                                               "analytics.report.scheduled",
                                               "{\"report_id\": \"r1\", "
                                               "\"schedule\": \"weekly\"}",
                                               agency.tenant),
                                 0);
        assert_int_equal(
                harness_event(fx.h, "auth.legal.accepted",
                              "{\"user_id\": \"u1\", \"type\": "
                              "\"privacy\", \"version\": \"1\", "
                              "\"accepted_at\": \"2026-12-06T12:00:00Z\"}",
                              agency.tenant),
                0);
        assert_int_equal(harness_event(fx.h,
                                       "integrations.connection.connected",
                                       CONNECTED, other.tenant),
                         0);
        c = get(&agency, id);
        assert_non_null(c);
        assert_int_equal(pint(c, "done"), 1);
        assert_string_equal(pstr(c, "next"), "workspace_created");
        json_decref(c);
        /* The organisation's creation, then the rest. */
        snprintf(ev, sizeof(ev), "{\"org_id\": \"%s\", \"created_by\": \"u1\"}",
                 agency.tenant);
        harness_event(fx.h, "auth.org.created", ev, agency.tenant);
        harness_event(fx.h, "auth.legal.accepted",
                      "{\"user_id\": \"u1\", \"type\": \"terms\", "
                      "\"version\": \"1\", \"accepted_at\": "
                      "\"2026-12-06T12:00:00Z\"}",
                      agency.tenant);
        harness_event(fx.h, "integrations.sync.completed", SYNCED,
                      agency.tenant);
        c = get(&agency, id);
        assert_int_equal(pint(c, "done"), 4);
        /* Synced before connected is still a fact; the connection is
         * next. */
        assert_string_equal(pstr(c, "next"), "team_invited");
        json_decref(c);
        /* Another organisation sees nothing of it. */
        assert_null(get(&other, id));
        assert_int_equal(harness_reply(fx.h)->status, 404);
}

/* The replay's fold (the live handler's too) into two versions: the same
 * events in order, and reversed with every one twice, give the same
 * documents (digests); the earliest time of a fact wins. */
typedef struct fold_ev {
        const char *type, *tenant, *body;
        int64_t at;
} fold_ev_t;

static void fold_into(int64_t version, const fold_ev_t *evs, size_t n,
                      bool backwards) {
        const replay_fold_t *f = &onb_replay_set.folds[0];
        replay_target_t t = {fx.store, ONB_DB,     f->def,
                             version,  SLICE_NULL, false};
        void *st = f->open(&t);
        char why[256], errstr[256];
        for (size_t k = 0; k < (backwards ? 2 * n : n); k++) {
                const fold_ev_t *e = &evs[backwards ? n - 1 - k / 2 : k];
                msgpack_sbuffer sb;
                msgpack_packer pk;
                msgpack_unpacked u;
                json_t *body = json_loads(e->body, 0, NULL);
                env_t env;
                memset(&env, 0, sizeof(env));
                env.id = slice_of("e");
                env.type = slice_of(e->type);
                env.tenant = slice_of(e->tenant);
                env.created_at_ms = e->at;
                msgpack_sbuffer_init(&sb);
                msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                assert_int_equal(codec_pack_json(&pk, body), CODEC_OK);
                msgpack_unpacked_init(&u);
                assert_int_equal(
                        msgpack_unpack_next(&u, sb.data, sb.size, NULL),
                        MSGPACK_UNPACK_SUCCESS);
                assert_int_equal(f->fold(st, &env, &u.data, why, sizeof(why)),
                                 0);
                msgpack_unpacked_destroy(&u);
                msgpack_sbuffer_destroy(&sb);
                json_decref(body);
        }
        assert_int_equal(f->flush(st, errstr, sizeof(errstr)), STORE_OK);
        f->close(st);
}

static void test_fold_commutative_and_idempotent(void **state) {
        static const fold_ev_t evs[] = {
                {"auth.org.created", "agency1", "{\"org_id\": \"ws1\"}", 300},
                {"auth.user.registered", "ws2", "{\"tenant_id\": \"ws2\"}",
                 200},
                {"integrations.sync.completed", "ws1", SYNCED, 500},
                {"integrations.sync.completed", "ws1", SYNCED, 400},
                {"auth.legal.accepted", "ws1",
                 "{\"type\": \"privacy\", \"user_id\": \"u\"}", 100},
                {"analytics.dashboard.viewed", "ws1", "{\"first\": true}", 700},
                {"analytics.dashboard.viewed", "ws1", "{\"first\": true}", 600},
        };
        const size_t n = sizeof(evs) / sizeof(evs[0]);
        projection_digest_t a[2], b[2];
        size_t na = 0, nb = 0;
        char errstr[256];
        store_err_t err;
        (void)state;
        fold_into(900, evs, n, false);
        fold_into(901, evs, n, true);
        assert_int_equal(projection_digest(fx.store, ONB_DB, &onb_checklist_def,
                                           900, SLICE_NULL, a, &na, errstr,
                                           sizeof(errstr)),
                         STORE_OK);
        assert_int_equal(projection_digest(fx.store, ONB_DB, &onb_checklist_def,
                                           901, SLICE_NULL, b, &nb, errstr,
                                           sizeof(errstr)),
                         STORE_OK);
        assert_int_equal(na, 2);
        assert_int_equal(nb, 2);
        for (size_t i = 0; i < na; i++) {
                assert_string_equal(a[i].hex, b[i].hex);
                assert_int_equal(a[i].documents, b[i].documents);
        }
        /* facts: ws1 created, synced, dashboard; ws2 created (no terms:
         * another document); workspaces: ws1 from agency1. */
        assert_int_equal(a[0].documents, 4);
        assert_int_equal(a[1].documents, 1);
        /* The earliest time of each fact won, in either order. */
        for (int64_t v = 900; v <= 901; v++) {
                char coll[PROJECTION_COLL_MAX];
                bson_t filter = BSON_INITIALIZER;
                json_t *list;
                projection_coll("facts", v, coll, sizeof(coll));
                BSON_APPEND_UTF8(&filter, "workspace", "ws1");
                list = docjson_find(fx.store, ONB_DB, coll, &filter, NULL, NULL,
                                    &err);
                bson_destroy(&filter);
                assert_non_null(list);
                assert_int_equal(json_array_size(list), 3);
                for (size_t i = 0; i < 3; i++) {
                        json_t *d = json_array_get(list, i);
                        const char *fact =
                                json_string_value(json_object_get(d, "fact"));
                        const char *at =
                                json_string_value(json_object_get(d, "at"));
                        assert_non_null(at);
                        if (strcmp(fact, "synced:google_ads") == 0)
                                assert_string_equal(at, "0000000000000400");
                        else if (strcmp(fact, "dashboard_viewed") == 0)
                                assert_string_equal(at, "0000000000000600");
                        else
                                assert_string_equal(at, "0000000000000300");
                }
                json_decref(list);
                projection_drop_version(fx.store, ONB_DB, &onb_checklist_def, v,
                                        SLICE_NULL, errstr, sizeof(errstr));
        }
}

static void test_skip_rules(void **state) {
        char id[64], body[256];
        json_t *c;
        (void)state;
        create(&skipper, "", id);
        snprintf(body, sizeof(body),
                 "{\"client_id\": \"%s\", \"step\": \"connected:google_ads\", "
                 "\"reason\": \"they send CSVs\"}",
                 id);
        assert_int_equal(
                harness_command(fx.h, "onboarding.steps.skip", body, &skipper),
                200);
        assert_int_equal(harness_count(fx.h, "onboarding.step.skipped"), 1);
        c = reply();
        assert_int_equal(pint(c, "skipped"), 1);
        json_decref(c);
        snprintf(body, sizeof(body),
                 "{\"client_id\": \"%s\", \"step\": \"connected:stripe\", "
                 "\"reason\": \"x\"}",
                 id);
        assert_int_equal(
                harness_command(fx.h, "onboarding.steps.skip", body, &skipper),
                404);
        harness_event(fx.h, "analytics.dashboard.viewed",
                      "{\"user_id\": \"u1\", \"first\": true}", skipper.tenant);
        snprintf(body, sizeof(body),
                 "{\"client_id\": \"%s\", \"step\": \"dashboard_viewed\", "
                 "\"reason\": \"x\"}",
                 id);
        assert_int_equal(
                harness_command(fx.h, "onboarding.steps.skip", body, &skipper),
                409);
        /* A viewer may read but not skip. */
        {
                harness_caller_t viewer = {skipper.tenant, "u3", "viewer"};
                assert_int_equal(harness_command(fx.h, "onboarding.steps.skip",
                                                 body, &viewer),
                                 403);
        }
}

static void due(const harness_caller_t *who, const char *cmd_id,
                const char *client, int64_t at, int status) {
        char body[256];
        snprintf(body, sizeof(body),
                 "{\"client_id\": \"%s\", \"due_at\": %" PRId64 "}", client,
                 at);
        assert_int_equal(harness_command_id(fx.h, cmd_id,
                                            "onboarding.reminders.due", body,
                                            who),
                         status);
}

static json_int_t reply_int(const char *name) {
        json_t *r = reply();
        json_int_t v = json_integer_value(json_object_get(r, name));
        json_decref(r);
        return v;
}

static void test_reminders_once_per_overdue_step(void **state) {
        char id[64], tid[256], st[32], c1[MSGID_TEXT_SIZE], c2[MSGID_TEXT_SIZE];
        int64_t created;
        msgid_t m;
        (void)state;
        created = create(&reminded,
                         ", \"account_manager\": {\"name\": \"Al\", "
                         "\"email\": \"al@agency.example\"}",
                         id);
        /* The creation armed the first deadline's timer (day 1). */
        snprintf(tid, sizeof(tid), "%s.remind.%" PRId64, id, created + DAY_MS);
        assert_string_equal(timer_status(tid, st, sizeof(st)), "armed");

        /* The day-3 firing: workspace (agency), terms (client) and team
         * (agency) are due. */
        msgid_new(&m);
        msgid_format(&m, c1);
        due(&reminded, c1, id, created + 3 * DAY_MS, 200);
        assert_int_equal(reply_int("reminded"), 3);
        assert_int_equal(reply_int("next_due_at"), created + 5 * DAY_MS);
        assert_int_equal(harness_count(fx.h, "onboarding.reminder.sent"), 3);
        {
                const harness_msg_t *o = harness_output(fx.h, 1);
                json_t *b = json_loads(o->json, 0, NULL);
                assert_string_equal(o->tenant, reminded.tenant);
                assert_string_equal(
                        json_string_value(json_object_get(b, "step")),
                        "terms_accepted");
                assert_string_equal(
                        json_string_value(json_object_get(b, "recipient")),
                        "contact");
                assert_null(strstr(o->json, "@"));
                json_decref(b);
        }
        assert_int_equal(count("mail_outbox", NULL, NULL), 3);
        assert_int_equal(count("mail_outbox", "to", "bo@acme.example"), 1);
        assert_int_equal(count("mail_outbox", "to", "al@agency.example"), 2);
        assert_int_equal(count("reminders", "client_id", id), 3);
        snprintf(tid, sizeof(tid), "%s.remind.%" PRId64, id,
                 created + 5 * DAY_MS);
        assert_string_equal(timer_status(tid, st, sizeof(st)), "armed");

        /* The same firing again (a refire: same message id): answered by
         * the operation log. */
        due(&reminded, c1, id, created + 3 * DAY_MS, 200);
        assert_int_equal(reply_int("reminded"), 3);
        assert_int_equal(count("mail_outbox", NULL, NULL), 3);

        /* Another firing covering the same steps (a late day-1 timer):
         * nothing twice. */
        due(&reminded, NULL, id, created + DAY_MS, 200);
        assert_int_equal(reply_int("reminded"), 0);
        assert_int_equal(harness_count(fx.h, "onboarding.reminder.sent"), 0);
        assert_int_equal(count("mail_outbox", NULL, NULL), 3);

        /* The first firing died after its writes and before its operation
         * record: its rerun emits its events again (they never went out)
         * and finds its mails queued. */
        {
                bson_t filter = BSON_INITIALIZER;
                char err[256];
                BSON_APPEND_UTF8(&filter, "_id", c1);
                assert_int_equal(store_delete(fx.store, "ops", "operations",
                                              &filter, 0, NULL, err,
                                              sizeof(err)),
                                 STORE_OK);
                bson_destroy(&filter);
        }
        due(&reminded, c1, id, created + 3 * DAY_MS, 200);
        assert_int_equal(reply_int("reminded"), 3);
        assert_int_equal(harness_count(fx.h, "onboarding.reminder.sent"), 3);
        assert_int_equal(count("mail_outbox", NULL, NULL), 3);

        /* Day 7: the connection is done, the sync skipped; the dashboard
         * (agency) is reminded of, the report (day 10) is next. */
        harness_event(fx.h, "integrations.connection.connected", CONNECTED,
                      reminded.tenant);
        {
                char body[256];
                snprintf(body, sizeof(body),
                         "{\"client_id\": \"%s\", \"step\": "
                         "\"synced:google_ads\", \"reason\": \"manual\"}",
                         id);
                assert_int_equal(harness_command(fx.h, "onboarding.steps.skip",
                                                 body, &reminded),
                                 200);
        }
        msgid_new(&m);
        msgid_format(&m, c2);
        due(&reminded, c2, id, created + 7 * DAY_MS, 200);
        assert_int_equal(reply_int("reminded"), 1);
        assert_int_equal(reply_int("next_due_at"), created + 10 * DAY_MS);
        assert_int_equal(count("reminders", "client_id", id), 4);
        assert_int_equal(count("mail_outbox", "to", "al@agency.example"), 3);

        /* Another organisation's firing finds no such client. */
        due(&other, NULL, id, created + 10 * DAY_MS, 404);
        assert_int_equal(count("reminders", "client_id", id), 4);
}

static void test_reminders_without_an_address_still_say_so(void **state) {
        char id[64];
        int64_t created;
        const harness_msg_t *o;
        int64_t mails;
        (void)state;
        mails = count("mail_outbox", NULL, NULL);
        created = create(&quiet, "", id); /* no account manager */
        due(&quiet, NULL, id, created + 3 * DAY_MS, 200);
        assert_int_equal(reply_int("reminded"), 3);
        assert_int_equal(count("reminders", "client_id", id), 3);
        /* Only the client's step had an address. */
        assert_int_equal(count("mail_outbox", NULL, NULL), mails + 1);
        o = harness_output(fx.h, 0);
        assert_non_null(strstr(o->json, "\"recipient\":\"none\""));
}

static int store_setup(void **state) {
        (void)state;
        return 0;
}

int main(void) {
        const struct CMUnitTest pure[] = {
                cmocka_unit_test(test_steps_in_order_per_provider),
                cmocka_unit_test(
                        test_next_is_the_first_open_step_and_names_who_blocks),
                cmocka_unit_test(test_deadlines_and_overdue),
        };
        const struct CMUnitTest handlers[] = {
                cmocka_unit_test(
                        test_checklist_from_events_in_any_order_and_again),
                cmocka_unit_test(test_fold_commutative_and_idempotent),
                cmocka_unit_test(test_skip_rules),
                cmocka_unit_test(test_reminders_once_per_overdue_step),
                cmocka_unit_test(
                        test_reminders_without_an_address_still_say_so),
        };
        int failed;
        log_init(LOG_LEVEL_WARN, "test_onboarding");
        failed = cmocka_run_group_tests_name("checklist", pure, NULL, NULL);
        if (failed)
                return failed;
        if (!fixture_open()) {
                fprintf(stderr, "no store: the handler tests are skipped\n");
                return 77;
        }
        failed = cmocka_run_group_tests_name("handlers", handlers, store_setup,
                                             NULL);
        fixture_close();
        return failed;
}
