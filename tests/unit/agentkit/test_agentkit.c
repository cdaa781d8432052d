/*
 * test_agentkit.c - agentkit's pieces without the network: the expression
 * language and templates, definitions checked with every problem named,
 * tool names and declarations from the real schemas, the model's answers,
 * times; and, through the handler harness against the real store (label
 * "store"; skipped without one), runs that move: steps recorded, commands
 * sent under the attempt's derived id with the starting user's tenant and
 * roles, the same start answered once, timers, signals, approvals, cancel,
 * and an agent whose model asks for a tool it may not use.
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

#include "agentkit_internal.h"
#include "harness.h"
#include "schemas_embedded.h"

static schema_set_t *schemas;

static json_t *eval(const char *expr, const char *ctx_json) {
        char err[200];
        json_t *ctx = ctx_json ? json_loads(ctx_json, 0, NULL) : NULL;
        json_t *v = ak_expr_eval(expr, ctx, err, sizeof(err));
        json_decref(ctx);
        if (!v)
                fail_msg("%s: %s", expr, err);
        return v;
}

static void expect(const char *expr, const char *ctx, const char *want) {
        json_t *v = eval(expr, ctx);
        char *got = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (strcmp(got, want) != 0)
                fail_msg("%s gave %s, expected %s", expr, got, want);
        free(got);
        json_decref(v);
}

static void expect_error(const char *expr, const char *part) {
        char err[200] = "";
        json_t *v = ak_expr_eval(expr, NULL, err, sizeof(err));
        if (v)
                fail_msg("%s should not parse", expr);
        if (!strstr(err, part))
                fail_msg("%s: error '%s' lacks '%s'", expr, err, part);
        assert_false(ak_expr_check(expr, err, sizeof(err)));
}

static const char ctx[] =
        "{\"input\": {\"n\": 3, \"name\": \"Ann\", \"tags\": [\"a\", \"b\"]},"
        " \"steps\": {\"fetch-data\": {\"output\": {\"rows\": 12}},"
        "  \"s\": {\"output\": {\"items\": [{\"v\": 1}, {\"v\": 2}]}}}}";

static void test_expressions(void **state) {
        (void)state;
        expect("1 + 2 * 3", NULL, "7");
        expect("(1 + 2) * 3", NULL, "9");
        expect("7 / 2", NULL, "3.5");
        expect("7 % 4 - -1", NULL, "4");
        expect("1 / 0", NULL, "null");
        expect("input.n > 2 && input.name == 'Ann'", ctx, "true");
        expect("input.n >= 4 || !(input.n < 3)", ctx, "true");
        expect("1 == 1.0", NULL, "true");
        expect("'a' < 'b'", NULL, "true");
        expect("input.name + ' has ' + input.n", ctx, "\"Ann has 3\"");
        expect("steps['fetch-data'].output.rows", ctx, "12");
        expect("steps.s.output.items[1].v", ctx, "2");
        expect("steps.s.output.items[-1].v", ctx, "2");
        expect("steps.s.output.items[5].v", ctx, "null");
        expect("steps.nope.output.x", ctx, "null");
        expect("exists(steps.nope.output)", ctx, "false");
        expect("exists(input.n)", ctx, "true");
        expect("len(input.tags) + len(input.name)", ctx, "5");
        expect("contains(input.tags, 'b') && contains(input.name, 'nn')", ctx,
               "true");
        expect("startswith(input.name, 'A')", ctx, "true");
        expect("lower(input.name) + upper('x')", ctx, "\"annX\"");
        expect("str(input.n) + num('4')", ctx, "\"34\"");
        expect("default(steps.nope.output, 9)", ctx, "9");
        expect("false && steps.s.output.items[0].v == 1", ctx, "false");
        expect("null == steps.nope", ctx, "true");
        expect("input.tags", ctx, "[\"a\",\"b\"]");
        expect_error("1 +", "too early");
        expect_error("foo.bar", "unknown name");
        expect_error("len(1, 2)", "takes 1 argument");
        expect_error("nosuch(1)", "unknown function");
        expect_error("(1", "')' expected");
        expect_error("'open", "not closed");
        expect_error("1 2", "unexpected");
        assert_false(ak_truthy(json_false()));
}

static void test_templates(void **state) {
        json_t *c = json_loads(ctx, 0, NULL), *t, *v;
        char err[200];
        (void)state;
        t = json_loads(
                "{\"whole\": \"${input.tags}\", \"text\": \"hi ${input.name}"
                " (${input.n})\", \"list\": [\"${input.n * 2}\", 1],"
                " \"plain\": \"no template\"}",
                0, NULL);
        v = ak_template(t, c, err, sizeof(err));
        assert_non_null(v);
        {
                json_t *want = json_loads(
                        "{\"whole\": [\"a\", \"b\"], \"text\": \"hi Ann (3)\","
                        " \"list\": [6, 1], \"plain\": \"no template\"}",
                        0, NULL);
                assert_true(json_equal(v, want));
                json_decref(want);
        }
        json_decref(v);
        json_decref(t);
        t = json_string("${input.n +}");
        assert_null(ak_template(t, c, err, sizeof(err)));
        assert_false(ak_template_check(t, err, sizeof(err)));
        json_decref(t);
        t = json_string("broken ${ open");
        assert_false(ak_template_check(t, err, sizeof(err)));
        json_decref(t);
        json_decref(c);
}

/* The report of a definition (NULL when it checks). */
static schema_report_t check(const char *doc) {
        schema_report_t rep;
        json_t *j = json_loads(doc, 0, NULL);
        ak_def_t *def;
        assert_non_null(j);
        def = ak_def_build_workflow(j, schemas, &rep);
        ak_def_release(def);
        return rep;
}

static bool named(const schema_report_t *rep, const char *field) {
        for (size_t i = 0; i < rep->n; i++)
                if (strcmp(rep->v[i].field, field) == 0)
                        return true;
        return false;
}

static void test_definitions(void **state) {
        schema_report_t rep;
        (void)state;
        rep = check("{\"steps\": [{\"id\": \"a\", \"kind\": \"noop\"},"
                    " {\"id\": \"p\", \"kind\": \"parallel\", \"join\": \"n\","
                    "  \"n\": 1, \"branches\": [[{\"id\": \"b\", \"kind\":"
                    "  \"sleep\", \"duration_ms\": 5}], [{\"id\": \"c\","
                    "  \"kind\": \"command\", \"command\": \"ml.status\"}]]},"
                    " {\"id\": \"d\", \"kind\": \"branch\", \"cases\":"
                    "  [{\"when\": \"steps.a.output.x > 1\", \"next\": \"a\"}],"
                    "  \"default\": \"end\"}]}");
        assert_int_equal(rep.n, 0);
        rep = check("{\"steps\": [{\"id\": \"a\", \"kind\": \"noop\"},"
                    " {\"id\": \"a\", \"kind\": \"noop\"},"
                    " {\"id\": \"p\", \"kind\": \"parallel\", \"branches\":"
                    "  [[{\"id\": \"q\", \"kind\": \"command\", \"command\":"
                    "  \"agentkit.runs.start\"}, {\"id\": \"r\", \"kind\":"
                    "  \"noop\", \"next\": \"a\"}]]},"
                    " {\"id\": \"w\", \"kind\": \"wait_event\", \"event\":"
                    "  \"nobody.thing.happened\"},"
                    " {\"id\": \"n\", \"kind\": \"parallel\", \"join\": \"n\","
                    "  \"n\": 3, \"branches\": [[{\"id\": \"z\", \"kind\":"
                    "  \"noop\"}]]},"
                    " {\"id\": \"l\", \"kind\": \"llm\", \"messages\": [],"
                    "  \"tools\": [\"auth.signup\"]},"
                    " {\"id\": \"u\", \"kind\": \"sleep_until\", \"until\":"
                    "  \"tomorrow\"}]}");
        assert_true(named(&rep, "steps[1].id"));
        assert_true(named(&rep, "steps[2].branches[0][0].command"));
        assert_true(named(&rep, "steps[2].branches[0][1].next"));
        assert_true(named(&rep, "steps[3].event"));
        assert_true(named(&rep, "steps[4].n"));
        assert_true(named(&rep, "steps[5].messages"));
        assert_true(named(&rep, "steps[5].tools"));
        assert_true(named(&rep, "steps[6].until"));
        assert_int_equal(rep.n, 8);
}

static void test_tools_and_answers(void **state) {
        char name[64], type[64], err[200];
        json_t *types = json_loads("[\"ml.status\", \"auth.me\"]", 0, NULL);
        json_t *decls, *out;
        (void)state;
        ak_tool_name("analytics.metrics.catalog", name, sizeof(name));
        assert_string_equal(name, "analytics__metrics__catalog");
        assert_true(ak_tool_type(name, type, sizeof(type)));
        assert_string_equal(type, "analytics.metrics.catalog");
        decls = ak_tool_decls(schemas, types, err, sizeof(err));
        assert_non_null(decls);
        assert_int_equal(json_array_size(decls), 2);
        assert_string_equal(
                ak_str(json_object_get(json_array_get(decls, 0), "function"),
                       "name"),
                "ml__status");
        json_decref(decls);
        json_decref(types);
        types = json_loads("[\"auth.login\"]", 0, NULL);
        assert_null(ak_tool_decls(schemas, types, err, sizeof(err)));
        json_decref(types);
        out = ak_llm_output(
                "{\"model\": \"m\", \"choices\": [{\"finish_reason\":"
                " \"tool_calls\", \"message\": {\"role\": \"assistant\","
                " \"content\": null, \"tool_calls\": [{\"id\": \"c1\","
                " \"type\": \"function\", \"function\": {\"name\":"
                " \"ml__status\", \"arguments\": \"{}\"}}]}}],"
                " \"usage\": {\"total_tokens\": 12}}",
                err, sizeof(err));
        assert_non_null(out);
        assert_string_equal(ak_str(json_array_get(json_object_get(out, "tool_"
                                                                       "calls"),
                                                  0),
                                   "name"),
                            "ml__status");
        assert_int_equal(
                ak_int(json_object_get(out, "usage"), "total_tokens", 0), 12);
        json_decref(out);
        assert_null(ak_llm_output("not json", err, sizeof(err)));
        assert_null(ak_llm_output("{\"choices\": []}", err, sizeof(err)));
}

static void test_times(void **state) {
        char buf[40];
        (void)state;
        assert_int_equal(ak_time_parse("2026-01-02T03:04:05.678Z"),
                         1767323045678LL);
        assert_int_equal(ak_time_parse("2026-01-02T05:04:05+02:00"),
                         1767323045000LL);
        assert_int_equal(ak_time_parse("2026-01-02"), -1);
        assert_string_equal(ak_time_text(1767323045678LL, buf, sizeof(buf)),
                            "2026-01-02T03:04:05.678Z");
        assert_true(ak_name_valid("fetch-data_2"));
        assert_false(ak_name_valid("a b"));
        assert_false(ak_name_valid(""));
}

/* ---------------------------------------------------------------------------
 * Runs through the harness (the real store)
 * ------------------------------------------------------------------------ */

typedef struct fixture {
        config_t cfg;
        harness_t *h;
} fixture_t;

static const char *env_of(const char *name) {
        if (strcmp(name, "OMNIFY_LLM_API_KEY") == 0)
                return "sk-unit";
        return getenv(name);
}

static fixture_t fx;
static const harness_caller_t ann = {"t-ann", "u-ann", "member"};
static const harness_caller_t ann_viewer = {"t-ann", "u-viewer", "viewer"};
static const harness_caller_t bob = {"t-bob", "u-bob", "owner"};

static int store_setup(void **state) {
        char err[512], prefix[32];
        char *argv[] = {"test_agentkit", NULL};
        msgid_t id;
        (void)state;
        memset(&fx, 0, sizeof(fx));
        assert_int_equal(config_load_tables(&fx.cfg, CONFIG_SCOPE_GROUP,
                                            group_agentkit.settings,
                                            "test_agentkit", 1, argv, NULL,
                                            env_of, NULL, err, sizeof(err)),
                         CONFIG_OK);
        msgid_new(&id);
        snprintf(prefix, sizeof(prefix), "akt%02x%02x%02x_", id.b[13], id.b[14],
                 id.b[15]);
        free(fx.cfg.mongo_db_prefix);
        fx.cfg.mongo_db_prefix = strdup(prefix);
        fx.h = harness_new(&group_agentkit, &fx.cfg, NULL, err, sizeof(err));
        if (!fx.h) {
                fprintf(stderr, "no store (%s): skipped\n", err);
                exit(77);
        }
        return 0;
}

static int store_teardown(void **state) {
        (void)state;
        harness_destroy(fx.h);
        config_deinit(&fx.cfg);
        return 0;
}

/* The reply's body as JSON. */
static json_t *reply(void) {
        const harness_msg_t *r = harness_reply(fx.h);
        assert_non_null(r);
        return json_loads(r->json, 0, NULL);
}

/* The run's state as stored. */
static json_t *state_of(const char *run_id) {
        ak_state_t st = {0};
        json_t *s = NULL;
        int64_t seq;
        st.rt = harness_runtime(fx.h);
        st.store = runtime_store(st.rt);
        assert_int_equal(ak_run_load(&st, run_id, &s, &seq), STORE_OK);
        return s;
}

static const char *step_status(json_t *run, const char *step) {
        return ak_str(json_object_get(json_object_get(run, "steps"), step),
                      "status");
}

/* Start a run of wf with a client run id; returns it (static buffer). */
static const char *start(const char *wf, const char *input) {
        static char id[MSGID_TEXT_SIZE];
        char body[600];
        msgid_t m;
        msgid_new(&m);
        msgid_format(&m, id);
        snprintf(body, sizeof(body),
                 "{\"workflow_id\": \"%s\", \"run_id\": \"%s\", \"input\": %s}",
                 wf, id, input ? input : "{}");
        assert_int_equal(
                harness_command(fx.h, "agentkit.runs.start", body, &ann), 201);
        return id;
}

static void put(const char *wf, const char *steps) {
        char body[4000];
        snprintf(body, sizeof(body), "{\"workflow_id\": \"%s\", \"steps\": %s}",
                 wf, steps);
        assert_int_equal(
                harness_command(fx.h, "agentkit.workflows.put", body, &ann),
                200);
}

static void test_run_sends_commands_as_the_starting_user(void **state) {
        char run_id[MSGID_TEXT_SIZE], body[300];
        const harness_msg_t *cmd = NULL;
        json_t *run, *r;
        size_t n;
        (void)state;
        put("cmds", "[{\"id\": \"a\", \"kind\": \"noop\", \"input\": {\"x\":"
                    " \"${input.v + 1}\"}}, {\"id\": \"s\", \"kind\":"
                    " \"command\", \"command\": \"ml.status\"}]");
        snprintf(run_id, sizeof(run_id), "%s", start("cmds", "{\"v\": 1}"));
        n = harness_outputs(fx.h);
        for (size_t i = 0; i < n; i++)
                if (strcmp(harness_output(fx.h, i)->type, "ml.status") == 0)
                        cmd = harness_output(fx.h, i);
        assert_non_null(cmd);
        assert_string_equal(cmd->tenant, "t-ann");
        run = state_of(run_id);
        assert_string_equal(step_status(run, "a"), "completed");
        assert_string_equal(step_status(run, "s"), "running");
        /* The command's id is the attempt's key, derived, recorded first. */
        assert_string_equal(
                cmd->id,
                ak_str(json_array_get(
                               json_object_get(
                                       json_object_get(
                                               json_object_get(run, "steps"),
                                               "s"),
                                       "attempts"),
                               0),
                       "key"));
        assert_true(harness_count(fx.h, "agentkit.step.") >= 3);
        json_decref(run);
        /* Another tenant cannot see it; a viewer can, and cannot cancel. */
        snprintf(body, sizeof(body), "{\"run_id\": \"%s\"}", run_id);
        assert_int_equal(harness_command(fx.h, "agentkit.runs.get", body, &bob),
                         404);
        assert_int_equal(
                harness_command(fx.h, "agentkit.runs.get", body, &ann_viewer),
                200);
        r = reply();
        assert_string_equal(ak_str(r, "status"), "running");
        json_decref(r);
        assert_int_equal(harness_command(fx.h, "agentkit.runs.cancel", body,
                                         &ann_viewer),
                         403);
        assert_int_equal(
                harness_command(fx.h, "agentkit.runs.cancel", body, &ann), 200);
        assert_int_equal(
                harness_command(fx.h, "agentkit.runs.cancel", body, &ann), 409);
}

static void test_timers_signals_and_approvals(void **state) {
        char run_id[MSGID_TEXT_SIZE], body[400];
        json_t *run;
        (void)state;
        put("people", "[{\"id\": \"nap\", \"kind\": \"sleep\", \"duration_ms\":"
                      " 60000}, {\"id\": \"sig\", \"kind\": \"signal\","
                      " \"signal\": \"go\"}, {\"id\": \"ok\", \"kind\":"
                      " \"approval\", \"role\": \"admin\"}]");
        snprintf(run_id, sizeof(run_id), "%s", start("people", NULL));
        snprintf(body, sizeof(body),
                 "{\"run_id\": \"%s\", \"name\": \"go\", \"payload\": {\"p\":"
                 " 1}}",
                 run_id);
        assert_int_equal(
                harness_command(fx.h, "agentkit.runs.signal", body, &ann), 200);
        /* A wake for another attempt changes nothing; the right one ends the
         * sleep, and the signal sent before is found waiting. */
        snprintf(body, sizeof(body),
                 "{\"run_id\": \"%s\", \"reason\": \"sleep\", \"step_id\":"
                 " \"nap\", \"attempt\": 2}",
                 run_id);
        assert_int_equal(harness_command(fx.h, "agentkit.run.wake", body, &ann),
                         200);
        run = state_of(run_id);
        assert_string_equal(step_status(run, "nap"), "waiting");
        json_decref(run);
        snprintf(body, sizeof(body),
                 "{\"run_id\": \"%s\", \"reason\": \"sleep\", \"step_id\":"
                 " \"nap\", \"attempt\": 1}",
                 run_id);
        assert_int_equal(harness_command(fx.h, "agentkit.run.wake", body, &ann),
                         200);
        run = state_of(run_id);
        assert_string_equal(step_status(run, "sig"), "completed");
        assert_string_equal(step_status(run, "ok"), "waiting");
        json_decref(run);
        snprintf(body, sizeof(body),
                 "{\"run_id\": \"%s\", \"step_id\": \"ok\", \"approved\":"
                 " true}",
                 run_id);
        assert_int_equal(
                harness_command(fx.h, "agentkit.runs.approve", body, &ann),
                403);
        assert_int_equal(
                harness_command(fx.h, "agentkit.runs.approve", body, &bob),
                404); /* another tenant: no such run */
        {
                harness_caller_t boss = {"t-ann", "u-boss", "admin"};
                assert_int_equal(harness_command(fx.h, "agentkit.runs.approve",
                                                 body, &boss),
                                 200);
        }
        run = state_of(run_id);
        assert_string_equal(ak_str(run, "status"), "completed");
        json_decref(run);
}

static void test_agent_asks_for_a_tool_it_may_not_use(void **state) {
        char body[2000], run_id[MSGID_TEXT_SIZE];
        json_t *r, *run, *S;
        msgid_t m;
        (void)state;
        assert_int_equal(
                harness_command(fx.h, "agentkit.agents.create",
                                "{\"agent_id\": \"narrow\", \"name\": \"n\","
                                " \"instructions\": \"be useful\", \"tools\":"
                                " [\"ml.status\"]}",
                                &ann),
                201);
        msgid_new(&m);
        msgid_format(&m, run_id);
        snprintf(body, sizeof(body),
                 "{\"agent_id\": \"narrow\", \"message\": \"hi\", \"run_id\":"
                 " \"%s\"}",
                 run_id);
        assert_int_equal(
                harness_command(fx.h, "agentkit.agents.run", body, &ann), 201);
        r = reply();
        assert_non_null(ak_str(r, "thread_id"));
        json_decref(r);
        /* The model's answer (as the outbox reports it) asks for a tool the
         * agent does not have, and for one it has. */
        snprintf(body, sizeof(body),
                 "{\"outbox_id\": \"%s|llm-1|1\", \"kind\": \"llm\","
                 " \"outcome\": \"sent\", \"status\": 200, \"attempts\": 1,"
                 " \"body\": \"{\\\"choices\\\": [{\\\"message\\\":"
                 " {\\\"content\\\": null, \\\"tool_calls\\\": [{\\\"id\\\":"
                 " \\\"c1\\\", \\\"function\\\": {\\\"name\\\":"
                 " \\\"auth__login\\\", \\\"arguments\\\": \\\"{}\\\"}},"
                 " {\\\"id\\\": \\\"c2\\\", \\\"function\\\": {\\\"name\\\":"
                 " \\\"ml__status\\\", \\\"arguments\\\": \\\"{}\\\"}}]}}],"
                 " \\\"usage\\\": {\\\"total_tokens\\\": 10}}\"}",
                 run_id);
        assert_int_equal(
                harness_command(fx.h, "agentkit.run.outcome", body, &ann), 200);
        assert_int_equal(harness_count(fx.h, "ml.status"), 1);
        assert_int_equal(harness_count(fx.h, "auth."), 0);
        run = state_of(run_id);
        S = json_object_get(json_object_get(run, "steps"), "tool-1-1");
        assert_string_equal(ak_str(S, "status"), "completed");
        assert_non_null(
                strstr(ak_str(ak_step_output(S), "error"), "not allowed"));
        assert_string_equal(step_status(run, "tool-1-2"), "running");
        json_decref(run);
        /* The same outcome again (a redelivery) changes nothing. */
        assert_int_equal(
                harness_command(fx.h, "agentkit.run.outcome", body, &ann), 200);
        assert_int_equal(harness_count(fx.h, "ml.status"), 0);
}

int main(void) {
        const struct CMUnitTest pure[] = {
                cmocka_unit_test(test_expressions),
                cmocka_unit_test(test_templates),
                cmocka_unit_test(test_definitions),
                cmocka_unit_test(test_tools_and_answers),
                cmocka_unit_test(test_times),
        };
        const struct CMUnitTest store[] = {
                cmocka_unit_test(test_run_sends_commands_as_the_starting_user),
                cmocka_unit_test(test_timers_signals_and_approvals),
                cmocka_unit_test(test_agent_asks_for_a_tool_it_may_not_use),
        };
        char err[256];
        int failed;
        log_init(LOG_LEVEL_WARN, "test_agentkit");
        if (schema_set_load(&schemas, schemas_embedded, schemas_embedded_count,
                            err, sizeof(err)) != SCHEMA_OK) {
                fprintf(stderr, "schemas: %s\n", err);
                return 1;
        }
#ifdef AK_STORE_TESTS
        /* test_agentkit_runs: through the harness, against the store. */
        (void)pure;
        failed = cmocka_run_group_tests(store, store_setup, store_teardown);
#else
        (void)store;
        (void)store_setup;
        (void)store_teardown;
        failed = cmocka_run_group_tests(pure, NULL, NULL);
#endif
        schema_set_destroy(schemas);
        return failed ? 1 : 0;
}
