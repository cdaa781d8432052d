/*
 * test_runtime.c - the runtime's handling of commands and events, through
 * the handler harness against the real store (no broker): replies, the
 * operation log answering a redelivery, read-only commands run again,
 * refused messages dead-lettered, retries, outputs checked, batch handlers,
 * subscriptions with derived event ids, callers and roles.
 *
 * Needs the store of compose/local/infra (OMNIFY_MONGO_URI); each run uses
 * a database prefix of its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "config.h"
#include "harness.h"
#include "log.h"
#include "msgid.h"
#include "runtime.h"

static const char test_schema[] =
        "{\"group\": \"rtt\", \"messages\": ["
        " {\"type\": \"rtt.put\", \"version\": 1, \"summary\": \"put\","
        "  \"fields\": {\"n\": {\"type\": \"integer\", \"required\": true,"
        "                      \"minimum\": 0, \"maximum\": 100}}},"
        " {\"type\": \"rtt.get\", \"version\": 1, \"summary\": \"get\","
        "  \"read_only\": true},"
        " {\"type\": \"rtt.flaky\", \"version\": 1, \"summary\": \"flaky\"},"
        " {\"type\": \"rtt.bad\", \"version\": 1, \"summary\": \"bad\"},"
        " {\"type\": \"rtt.admin\", \"version\": 1, \"summary\": \"admin\"},"
        " {\"type\": \"rtt.undeclared\", \"version\": 1, \"summary\": \"u\"}"
        "], \"events\": ["
        " {\"type\": \"rtt.thing.put\", \"version\": 1, \"summary\": \"put\","
        "  \"key\": \"tenant\","
        "  \"fields\": {\"n\": {\"type\": \"integer\", \"required\": true}}},"
        " {\"type\": \"rtt.seen.counted\", \"version\": 1, \"summary\": \"c\","
        "  \"key\": \"tenant\","
        "  \"fields\": {\"n\": {\"type\": \"integer\", \"required\": true,"
        "                      \"maximum\": 100}}}"
        "]}";

static int calls_put, calls_get, calls_flaky, batch_calls, batch_items;

static void pack_n(msgpack_sbuffer *sb, int64_t n) {
        msgpack_packer pk;
        msgpack_sbuffer_init(sb);
        msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        codec_pack_str(&pk, "n");
        msgpack_pack_int64(&pk, n);
}

static handler_result_t on_put(rt_ctx_t *ctx, const msgpack_object *body) {
        const msgpack_object *n = codec_map_get(body, "n");
        msgpack_sbuffer ev;
        msgpack_packer *pk;
        calls_put++;
        pack_n(&ev, (int64_t)n->via.u64);
        assert_int_equal(rt_emit(ctx, "rtt.thing.put", slice_of("k"), &ev), 0);
        rt_send(ctx, "other.do", slice_of("k"), &ev);
        msgpack_sbuffer_destroy(&ev);
        pk = rt_reply(ctx, 201);
        msgpack_pack_map(pk, 1);
        codec_pack_str(pk, "n");
        msgpack_pack_int64(pk, (int64_t)n->via.u64);
        return HANDLER_OK;
}

static handler_result_t on_get(rt_ctx_t *ctx, const msgpack_object *body) {
        (void)body;
        calls_get++;
        msgpack_pack_map(rt_reply(ctx, 200), 0);
        return HANDLER_OK;
}

/* Transient twice, then fine. */
static handler_result_t on_flaky(rt_ctx_t *ctx, const msgpack_object *body) {
        (void)body;
        if (++calls_flaky < 3)
                return HANDLER_TRANSIENT;
        rt_reply_bytes(ctx, 200, "text/csv", "a,b\n1,2\n", 8);
        return HANDLER_OK;
}

/* Publishes another group's event: a bug the runtime refuses. */
static handler_result_t on_bad(rt_ctx_t *ctx, const msgpack_object *body) {
        msgpack_sbuffer ev;
        (void)body;
        pack_n(&ev, 1);
        assert_int_equal(rt_emit(ctx, "auth.user.registered", SLICE_NULL, &ev),
                         -1);
        msgpack_sbuffer_destroy(&ev);
        msgpack_pack_map(rt_reply(ctx, 200), 0);
        return HANDLER_OK;
}

/* Publishes an event nobody declared. */
static handler_result_t on_undeclared(rt_ctx_t *ctx,
                                      const msgpack_object *body) {
        msgpack_sbuffer ev;
        (void)body;
        pack_n(&ev, 1);
        assert_int_equal(rt_emit(ctx, "rtt.thing.vanished", SLICE_NULL, &ev),
                         -1);
        msgpack_sbuffer_destroy(&ev);
        msgpack_pack_map(rt_reply(ctx, 200), 0);
        return HANDLER_OK;
}

static handler_result_t on_admin(rt_ctx_t *ctx, const msgpack_object *body) {
        rt_caller_t c;
        (void)body;
        if (!rt_require_role(ctx, SCHEMA_ROLE_ADMIN))
                return HANDLER_OK;
        rt_caller(ctx, &c);
        assert_int_equal(c.role, SCHEMA_ROLE_OWNER);
        msgpack_pack_map(rt_reply(ctx, 200), 0);
        return HANDLER_OK;
}

/* Events: a batch handler that fails item n == 13 and emits one event per
 * other item. */
static handler_result_t on_events(rt_ctx_t *const *ctxs,
                                  const msgpack_object *const *bodies,
                                  size_t n) {
        batch_calls++;
        for (size_t i = 0; i < n; i++) {
                const msgpack_object *v = codec_map_get(bodies[i], "n");
                msgpack_sbuffer ev;
                batch_items++;
                if (v && v->via.u64 == 13) {
                        rt_fail(ctxs[i], "unlucky");
                        continue;
                }
                pack_n(&ev, v ? (int64_t)v->via.u64 : -1);
                rt_emit(ctxs[i], "rtt.seen.counted", SLICE_NULL, &ev);
                msgpack_sbuffer_destroy(&ev);
        }
        return HANDLER_OK;
}

static const group_handler_t rtt_handlers[] = {
        {"rtt.put", on_put},     {"rtt.get", on_get},
        {"rtt.flaky", on_flaky}, {"rtt.bad", on_bad},
        {"rtt.admin", on_admin}, {"rtt.undeclared", on_undeclared},
};

static const group_handler_t rtt_follows[] = {
        {"other.thing.*", NULL, on_events},
};

static const char *const rtt_topics[] = {"other.events", NULL};

static const group_subscription_t rtt_subs[] = {
        {"follow", rtt_topics, rtt_follows, 1, 0},
};

static const group_def_t group_rtt = {
        .name = "rtt",
        .handlers = rtt_handlers,
        .n_handlers = sizeof(rtt_handlers) / sizeof(rtt_handlers[0]),
        .subscriptions = rtt_subs,
        .n_subscriptions = 1,
};

typedef struct {
        config_t cfg;
        schema_set_t *schemas;
        harness_t *h;
} fixture_t;

static const char *env_of(const char *name) {
        return getenv(name);
}

static int setup(void **state) {
        static fixture_t fx;
        char err[512], prefix[32];
        char *argv[] = {"test_runtime", NULL};
        schema_source_t src = {"rtt.json", test_schema,
                               sizeof(test_schema) - 1};
        msgid_t id;
        memset(&fx, 0, sizeof(fx));
        *state = &fx;
        assert_int_equal(config_load(&fx.cfg, CONFIG_SCOPE_GROUP,
                                     "test_runtime", 1, argv, NULL, env_of,
                                     NULL, err, sizeof(err)),
                         CONFIG_OK);
        msgid_new(&id);
        snprintf(prefix, sizeof(prefix), "rtt%02x%02x%02x_", id.b[13], id.b[14],
                 id.b[15]);
        free(fx.cfg.mongo_db_prefix);
        fx.cfg.mongo_db_prefix = strdup(prefix);
        if (schema_set_load(&fx.schemas, &src, 1, err, sizeof(err)) !=
            SCHEMA_OK)
                fail_msg("schema: %s", err);
        fx.h = harness_new(&group_rtt, &fx.cfg, fx.schemas, err, sizeof(err));
        if (!fx.h)
                fail_msg("harness: %s", err);
        *state = &fx;
        return 0;
}

static int teardown(void **state) {
        fixture_t *fx = *state;
        harness_destroy(fx->h);
        schema_set_destroy(fx->schemas);
        config_deinit(&fx->cfg);
        return 0;
}

static const harness_caller_t ann = {"t1", "u1", "owner"};
static const harness_caller_t bob = {"t1", "u2", "member"};

static void test_command_replies_and_publishes(void **state) {
        fixture_t *fx = *state;
        const harness_msg_t *r, *ev, *cmd;
        calls_put = 0;
        assert_int_equal(harness_command(fx->h, "rtt.put", "{\"n\": 7}", &ann),
                         201);
        r = harness_reply(fx->h);
        assert_string_equal(r->json, "{\"n\":7}");
        assert_int_equal(harness_outputs(fx->h), 2);
        ev = harness_output(fx->h, 0);
        cmd = harness_output(fx->h, 1);
        assert_string_equal(ev->type, "rtt.thing.put");
        assert_non_null(strstr(ev->topic, "rtt.events"));
        assert_string_equal(ev->tenant, "t1");
        assert_string_equal(cmd->type, "other.do");
        assert_non_null(strstr(cmd->topic, "other.commands"));
        assert_int_equal(calls_put, 1);
}

/* The same message id twice: the second is answered from the operation
 * log, with the same event ids, and the handler does not run again. */
static void test_redelivery_answered_from_the_log(void **state) {
        fixture_t *fx = *state;
        char id[MSGID_TEXT_SIZE], first_ev[MSGID_TEXT_SIZE];
        msgid_t mid;
        msgid_new(&mid);
        msgid_format(&mid, id);
        calls_put = 0;
        assert_int_equal(
                harness_command_id(fx->h, id, "rtt.put", "{\"n\": 8}", &ann),
                201);
        snprintf(first_ev, sizeof(first_ev), "%s",
                 harness_output(fx->h, 0)->id);
        assert_int_equal(
                harness_command_id(fx->h, id, "rtt.put", "{\"n\": 8}", &ann),
                201);
        assert_int_equal(calls_put, 1);
        assert_string_equal(harness_reply(fx->h)->json, "{\"n\":8}");
        assert_int_equal(harness_outputs(fx->h), 2);
        assert_string_equal(harness_output(fx->h, 0)->id, first_ev);
}

/* A read-only command is not recorded: the same id runs it again. */
static void test_read_only_is_not_recorded(void **state) {
        fixture_t *fx = *state;
        char id[MSGID_TEXT_SIZE];
        msgid_t mid;
        msgid_new(&mid);
        msgid_format(&mid, id);
        calls_get = 0;
        assert_int_equal(harness_command_id(fx->h, id, "rtt.get", "{}", &ann),
                         200);
        assert_int_equal(harness_command_id(fx->h, id, "rtt.get", "{}", &ann),
                         200);
        assert_int_equal(calls_get, 2);
}

/* One that waited in its topic (its caller got 504 and an operation id) is
 * recorded: the operation log answers the caller's poll. */
static void test_late_read_only_is_recorded(void **state) {
        fixture_t *fx = *state;
        char id[MSGID_TEXT_SIZE];
        msgid_t mid;
        msgid_new(&mid);
        msgid_format(&mid, id);
        calls_get = 0;
        harness_set_command_age(fx->h, 5000);
        assert_int_equal(harness_command_id(fx->h, id, "rtt.get", "{}", &ann),
                         200);
        assert_int_equal(harness_command_id(fx->h, id, "rtt.get", "{}", &ann),
                         200);
        harness_set_command_age(fx->h, 0);
        assert_int_equal(calls_get, 1);
}

static void test_invalid_body_is_refused_and_dead_lettered(void **state) {
        fixture_t *fx = *state;
        calls_put = 0;
        assert_int_equal(
                harness_command(fx->h, "rtt.put", "{\"n\": 1000}", &ann), 400);
        assert_non_null(strstr(harness_reply(fx->h)->json, "\"field\":\"n\""));
        assert_int_equal(harness_outputs(fx->h), 1);
        assert_non_null(strstr(harness_output(fx->h, 0)->topic, "rtt.dlq"));
        assert_int_equal(calls_put, 0);
        assert_int_equal(harness_command(fx->h, "rtt.nope", "{}", &ann), 400);
}

static void test_transient_errors_are_retried(void **state) {
        fixture_t *fx = *state;
        const harness_msg_t *r;
        calls_flaky = 0;
        assert_int_equal(harness_command(fx->h, "rtt.flaky", "{}", &ann), 200);
        assert_int_equal(calls_flaky, 3);
        r = harness_reply(fx->h);
        assert_string_equal(r->content_type, "text/csv");
        assert_string_equal(r->json, "a,b\n1,2\n");
}

static void test_a_foreign_event_fails_the_command(void **state) {
        fixture_t *fx = *state;
        assert_int_equal(harness_command(fx->h, "rtt.bad", "{}", &ann), 500);
        /* Nothing published; the message is dead-lettered. */
        assert_int_equal(harness_outputs(fx->h), 1);
        assert_non_null(strstr(harness_output(fx->h, 0)->topic, "rtt.dlq"));
}

static void test_undeclared_and_invalid_events_fail(void **state) {
        fixture_t *fx = *state;
        assert_int_equal(harness_command(fx->h, "rtt.undeclared", "{}", &ann),
                         500);
        assert_int_equal(harness_count(fx->h, "rtt.thing."), 0);
        /* An event body beyond its declared maximum: the item fails. */
        assert_int_equal(harness_event(fx->h, "other.thing.happened",
                                       "{\"n\": 200}", "t1"),
                         0);
        assert_int_equal(harness_count(fx->h, "rtt.seen."), 0);
        assert_non_null(strstr(harness_output(fx->h, 0)->topic, "rtt.dlq"));
}

static void test_roles_are_checked(void **state) {
        fixture_t *fx = *state;
        assert_int_equal(harness_command(fx->h, "rtt.admin", "{}", &ann), 200);
        assert_int_equal(harness_command(fx->h, "rtt.admin", "{}", &bob), 403);
        assert_int_equal(harness_command(fx->h, "rtt.admin", "{}", NULL), 401);
}

static void test_batch_subscription(void **state) {
        fixture_t *fx = *state;
        batch_calls = batch_items = 0;
        assert_int_equal(harness_event(fx->h, "other.thing.happened",
                                       "{\"n\": 5}", "t1"),
                         0);
        assert_int_equal(batch_calls, 1);
        assert_int_equal(harness_count(fx->h, "rtt.seen."), 1);
        assert_null(harness_reply(fx->h));
        /* An item the handler fails goes to the DLQ alone. */
        assert_int_equal(harness_event(fx->h, "other.thing.happened",
                                       "{\"n\": 13}", "t1"),
                         0);
        assert_int_equal(harness_count(fx->h, "rtt.seen."), 0);
        assert_int_equal(harness_outputs(fx->h), 1);
        assert_non_null(strstr(harness_output(fx->h, 0)->topic, "rtt.dlq"));
        /* Types nobody follows are not handed to any subscription. */
        assert_int_equal(
                harness_event(fx->h, "other.else.happened", "{}", "t1"), -1);
}

/* Derived ids: the same seed gives the same id, another seed another. */
static void test_derived_ids(void **state) {
        msgid_t a, b, c;
        char ta[MSGID_TEXT_SIZE], tc[MSGID_TEXT_SIZE];
        (void)state;
        msgid_derive(1700000000000ull, "seed-1", 6, &a);
        msgid_derive(1700000000000ull, "seed-1", 6, &b);
        msgid_derive(1700000000000ull, "seed-2", 6, &c);
        assert_memory_equal(a.b, b.b, 16);
        assert_memory_not_equal(a.b, c.b, 16);
        assert_int_equal(msgid_time_ms(&a), 1700000000000ull);
        msgid_format(&a, ta);
        msgid_format(&c, tc);
        assert_int_equal(ta[14], '8'); /* version 8 */
        assert_true(msgid_parse(ta, strlen(ta), &b));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_command_replies_and_publishes),
                cmocka_unit_test(test_redelivery_answered_from_the_log),
                cmocka_unit_test(test_read_only_is_not_recorded),
                cmocka_unit_test(test_late_read_only_is_recorded),
                cmocka_unit_test(
                        test_invalid_body_is_refused_and_dead_lettered),
                cmocka_unit_test(test_transient_errors_are_retried),
                cmocka_unit_test(test_a_foreign_event_fails_the_command),
                cmocka_unit_test(test_roles_are_checked),
                cmocka_unit_test(test_undeclared_and_invalid_events_fail),
                cmocka_unit_test(test_batch_subscription),
                cmocka_unit_test(test_derived_ids),
        };
        log_init(getenv("TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR,
                 "test_runtime");
        return cmocka_run_group_tests(tests, setup, teardown);
}
