/*
 * test_config.c - unit tests of the settings table (shared/config.c).
 *
 * config_load() takes its environment through a function, so every test
 * builds a fake environment and never touches the real one. Output of
 * --help and --version is captured with open_memstream(). The checks cover
 * defaults, precedence (flag over variable over default), every kind of bad
 * value, scopes, and that secrets never come back in error messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

/* ------------------------------------------------------------------------ */
/* A fake environment                                                        */
/* ------------------------------------------------------------------------ */

#define FAKE_ENV_MAX 32

static struct {
        const char *name;
        const char *value;
} fake_env[FAKE_ENV_MAX];
static size_t fake_env_n;

/* The last errstr filled by load(). */
static char err[512];

#define SECRET_OK "0123456789abcdef0123456789abcdef" /* exactly 32 bytes */

static const char *fake_getenv(const char *name) {
        for (size_t i = 0; i < fake_env_n; i++)
                if (strcmp(fake_env[i].name, name) == 0)
                        return fake_env[i].value;
        return NULL;
}

static void env_set(const char *name, const char *value) {
        for (size_t i = 0; i < fake_env_n; i++) {
                if (strcmp(fake_env[i].name, name) == 0) {
                        fake_env[i].value = value;
                        return;
                }
        }
        assert_true(fake_env_n < FAKE_ENV_MAX);
        fake_env[fake_env_n].name = name;
        fake_env[fake_env_n].value = value;
        fake_env_n++;
}

static void env_unset(const char *name) {
        for (size_t i = 0; i < fake_env_n; i++) {
                if (strcmp(fake_env[i].name, name) == 0) {
                        fake_env[i] = fake_env[--fake_env_n];
                        return;
                }
        }
}

static int setup(void **state) {
        (void)state;
        fake_env_n = 0;
        err[0] = '\0';
        return 0;
}

/* Load with the fake environment and a NULL-terminated argv (argv[0] is the
 * program). Output goes to `out` (NULL: stdout). */
static config_result_t load_out(config_t *cfg, unsigned scope, char **argv,
                                int *argi, FILE *out) {
        int argc = 0;
        while (argv[argc])
                argc++;
        memset(err, 0, sizeof(err));
        return config_load(cfg, scope, "omnify-test", argc, argv, argi,
                           fake_getenv, out, err, sizeof(err));
}

static config_result_t load(config_t *cfg, unsigned scope, char **argv) {
        return load_out(cfg, scope, argv, NULL, NULL);
}

#define NO_ARGS ((char *[]){"omnify-test", NULL})

/* Load with var=value added to the environment and expect `want`; the
 * variable is removed again afterwards. */
static void expect_env(unsigned scope, const char *var, const char *value,
                       config_result_t want) {
        config_t cfg;
        config_result_t got;
        env_set(var, value);
        got = load(&cfg, scope, NO_ARGS);
        if (got != want)
                fail_msg("%s='%s': got %d (%s), want %d", var, value, got, err,
                         want);
        if (want == CONFIG_INVALID)
                assert_non_null(strstr(err, var));
        config_deinit(&cfg);
        env_unset(var);
}

/* ------------------------------------------------------------------------ */
/* Defaults and precedence                                                   */
/* ------------------------------------------------------------------------ */

static void test_defaults_edge(void **state) {
        config_t cfg;
        (void)state;
        env_set("OMNIFY_JWT_SECRET", SECRET_OK);
        assert_int_equal(load(&cfg, CONFIG_SCOPE_EDGE, NO_ARGS), CONFIG_OK);
        assert_int_equal(cfg.log_level, LOG_LEVEL_INFO);
        assert_string_equal(cfg.kafka_brokers, "127.0.0.1:9092");
        assert_string_equal(cfg.topic_prefix, "omnify.");
        assert_string_equal(cfg.mongo_uri, "mongodb://127.0.0.1:27017");
        assert_string_equal(cfg.mongo_db_prefix, "omnify_");
        assert_string_equal(cfg.instance_id, "");
        assert_int_equal(cfg.kafka_linger_ms, 0);
        assert_int_equal(cfg.kafka_message_timeout_ms, 10000);
        assert_int_equal(cfg.shutdown_timeout_ms, 10000);
        assert_int_equal(cfg.operation_retention_s, 86400);
        assert_string_equal(cfg.http_bind, "0.0.0.0");
        assert_int_equal(cfg.http_port, 8000);
        assert_int_equal(cfg.http_threads, 2);
        assert_int_equal(cfg.reply_timeout_ms, 10000);
        assert_int_equal(cfg.max_body_bytes, 1048576);
        assert_int_equal(cfg.max_inflight, 10000);
        assert_int_equal(cfg.max_connections, 4096);
        assert_int_equal(cfg.max_buffered_bytes, 268435456);
        assert_int_equal(cfg.edge_reply_partition, 0);
        assert_string_equal(cfg.jwt_secret, SECRET_OK);
        assert_string_equal(cfg.jwt_issuer, "omnify");
        assert_string_equal(cfg.jwt_audience, "omnify-api");
        assert_string_equal(cfg.jwt_kid, "k1");
        /* Rows of other scopes still get their defaults. */
        assert_string_equal(cfg.ops_bind, "0.0.0.0");
        assert_int_equal(cfg.ops_port, 0);
        assert_int_equal(cfg.jwt_ttl_s, 900);
        config_deinit(&cfg);
}

static void test_defaults_group(void **state) {
        config_t cfg;
        int argi = -1;
        (void)state;
        assert_int_equal(
                load_out(&cfg, CONFIG_SCOPE_GROUP, NO_ARGS, &argi, NULL),
                CONFIG_OK);
        assert_int_equal(argi, 1);
        assert_null(cfg.jwt_secret);
        assert_string_equal(cfg.ops_bind, "0.0.0.0");
        assert_int_equal(cfg.ops_port, 0);
        assert_int_equal(cfg.http_port, 8000);
        config_deinit(&cfg);
}

static void test_env_overrides(void **state) {
        config_t cfg;
        (void)state;
        env_set("OMNIFY_JWT_SECRET", SECRET_OK);
        env_set("OMNIFY_LOG_LEVEL", "debug");
        env_set("OMNIFY_KAFKA_BROKERS", "k1:9092,k2:9092");
        env_set("OMNIFY_TOPIC_PREFIX", "");
        env_set("OMNIFY_HTTP_PORT", "8080");
        env_set("OMNIFY_MAX_BODY_BYTES", "1024");
        env_set("OMNIFY_EDGE_REPLY_PARTITION", "4095");
        env_set("OMNIFY_INSTANCE_ID", "edge-0");
        assert_int_equal(load(&cfg, CONFIG_SCOPE_EDGE, NO_ARGS), CONFIG_OK);
        assert_int_equal(cfg.log_level, LOG_LEVEL_DEBUG);
        assert_string_equal(cfg.kafka_brokers, "k1:9092,k2:9092");
        assert_string_equal(cfg.topic_prefix, "");
        assert_int_equal(cfg.http_port, 8080);
        assert_int_equal(cfg.max_body_bytes, 1024);
        assert_int_equal(cfg.edge_reply_partition, 4095);
        assert_string_equal(cfg.instance_id, "edge-0");
        config_deinit(&cfg);
}

static void test_enum_values_map_to_log_levels(void **state) {
        static const struct {
                const char *name;
                int level;
        } levels[] = {{"debug", LOG_LEVEL_DEBUG},
                      {"info", LOG_LEVEL_INFO},
                      {"warn", LOG_LEVEL_WARN},
                      {"error", LOG_LEVEL_ERROR}};
        (void)state;
        for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
                config_t cfg;
                env_set("OMNIFY_LOG_LEVEL", levels[i].name);
                assert_int_equal(load(&cfg, CONFIG_SCOPE_GROUP, NO_ARGS),
                                 CONFIG_OK);
                assert_int_equal(cfg.log_level, levels[i].level);
                config_deinit(&cfg);
        }
}

static void test_flag_overrides_env(void **state) {
        config_t cfg;
        int argi = -1;
        (void)state;
        env_set("OMNIFY_JWT_SECRET", SECRET_OK);
        env_set("OMNIFY_HTTP_PORT", "8080");
        env_set("OMNIFY_HTTP_BIND", "127.0.0.1");

        assert_int_equal(
                load_out(&cfg, CONFIG_SCOPE_EDGE,
                         (char *[]){"omnify-test", "--http-port=9000", NULL},
                         &argi, NULL),
                CONFIG_OK);
        assert_int_equal(cfg.http_port, 9000);
        assert_string_equal(cfg.http_bind, "127.0.0.1");
        assert_int_equal(argi, 2);
        config_deinit(&cfg);

        assert_int_equal(
                load_out(&cfg, CONFIG_SCOPE_EDGE,
                         (char *[]){"omnify-test", "--http-port", "9000",
                                    "--http-bind", "::1", NULL},
                         &argi, NULL),
                CONFIG_OK);
        assert_int_equal(cfg.http_port, 9000);
        assert_string_equal(cfg.http_bind, "::1");
        assert_int_equal(argi, 5);
        config_deinit(&cfg);
}

static void test_flag_given_twice_last_wins(void **state) {
        config_t cfg;
        (void)state;
        /* Under ASan this also checks the first string is freed. */
        assert_int_equal(
                load(&cfg, CONFIG_SCOPE_GROUP,
                     (char *[]){"omnify-test", "--ops-bind=a", "--ops-bind=b",
                                "--ops-port=1", "--ops-port", "2", NULL}),
                CONFIG_OK);
        assert_string_equal(cfg.ops_bind, "b");
        assert_int_equal(cfg.ops_port, 2);
        config_deinit(&cfg);
}

static void test_flag_value_may_contain_equals(void **state) {
        config_t cfg;
        (void)state;
        assert_int_equal(
                load(&cfg, CONFIG_SCOPE_GROUP,
                     (char *[]){"omnify-test",
                                "--mongo-uri=mongodb://h/?w=1&x=2", NULL}),
                CONFIG_OK);
        assert_string_equal(cfg.mongo_uri, "mongodb://h/?w=1&x=2");
        config_deinit(&cfg);
}

/* ------------------------------------------------------------------------ */
/* Bad values                                                                */
/* ------------------------------------------------------------------------ */

static void test_int_out_of_range(void **state) {
        (void)state;
        env_set("OMNIFY_JWT_SECRET", SECRET_OK);
        expect_env(CONFIG_SCOPE_EDGE, "OMNIFY_HTTP_PORT", "0", CONFIG_INVALID);
        expect_env(CONFIG_SCOPE_EDGE, "OMNIFY_HTTP_PORT", "65536",
                   CONFIG_INVALID);
        expect_env(CONFIG_SCOPE_EDGE, "OMNIFY_HTTP_PORT", "-1", CONFIG_INVALID);
        /* Beyond int and beyond long. */
        expect_env(CONFIG_SCOPE_EDGE, "OMNIFY_HTTP_PORT", "4294967297",
                   CONFIG_INVALID);
        expect_env(CONFIG_SCOPE_EDGE, "OMNIFY_HTTP_PORT",
                   "99999999999999999999999", CONFIG_INVALID);
        expect_env(CONFIG_SCOPE_EDGE, "OMNIFY_HTTP_PORT",
                   "-99999999999999999999999", CONFIG_INVALID);
        /* Both ends are inclusive. */
        expect_env(CONFIG_SCOPE_EDGE, "OMNIFY_HTTP_PORT", "1", CONFIG_OK);
        expect_env(CONFIG_SCOPE_EDGE, "OMNIFY_HTTP_PORT", "65535", CONFIG_OK);
        expect_env(CONFIG_SCOPE_EDGE, "OMNIFY_MAX_BODY_BYTES", "1023",
                   CONFIG_INVALID);
        expect_env(CONFIG_SCOPE_EDGE, "OMNIFY_MAX_BODY_BYTES", "67108865",
                   CONFIG_INVALID);
        expect_env(CONFIG_SCOPE_EDGE, "OMNIFY_MAX_BODY_BYTES", "67108864",
                   CONFIG_OK);
        /* The largest int is accepted, one more is not (no truncation). */
        expect_env(CONFIG_SCOPE_EDGE, "OMNIFY_MAX_BUFFERED_BYTES", "2147483647",
                   CONFIG_OK);
        expect_env(CONFIG_SCOPE_EDGE, "OMNIFY_MAX_BUFFERED_BYTES", "2147483648",
                   CONFIG_INVALID);
}

static void test_int_not_an_integer(void **state) {
        static const char *bad[] = {"abc", "80x", "80 ", "8.0", "0x50",
                                    "",    "-",   "1e3", "80\n"};
        (void)state;
        env_set("OMNIFY_JWT_SECRET", SECRET_OK);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                expect_env(CONFIG_SCOPE_EDGE, "OMNIFY_HTTP_PORT", bad[i],
                           CONFIG_INVALID);
}

static void test_int_bad_flag_names_variable(void **state) {
        config_t cfg;
        (void)state;
        env_set("OMNIFY_JWT_SECRET", SECRET_OK);
        assert_int_equal(
                load(&cfg, CONFIG_SCOPE_EDGE,
                     (char *[]){"omnify-test", "--http-threads=65", NULL}),
                CONFIG_INVALID);
        assert_non_null(strstr(err, "OMNIFY_HTTP_THREADS"));
        config_deinit(&cfg);
        assert_int_equal(
                load(&cfg, CONFIG_SCOPE_EDGE,
                     (char *[]){"omnify-test", "--http-threads=", NULL}),
                CONFIG_INVALID);
        assert_non_null(strstr(err, "OMNIFY_HTTP_THREADS"));
        config_deinit(&cfg);
}

static void test_enum_bad_value(void **state) {
        static const char *bad[] = {"verbose", "INFO",       "",     "inf",
                                    "infos",   "debug|info", "info "};
        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                expect_env(CONFIG_SCOPE_GROUP, "OMNIFY_LOG_LEVEL", bad[i],
                           CONFIG_INVALID);
}

static void test_string_length_bounds(void **state) {
        char s64[65], s65[66];
        (void)state;
        memset(s64, 'a', 64);
        s64[64] = '\0';
        memset(s65, 'a', 65);
        s65[65] = '\0';
        /* OMNIFY_HTTP_BIND: 1..64. */
        env_set("OMNIFY_JWT_SECRET", SECRET_OK);
        expect_env(CONFIG_SCOPE_EDGE, "OMNIFY_HTTP_BIND", "", CONFIG_INVALID);
        expect_env(CONFIG_SCOPE_EDGE, "OMNIFY_HTTP_BIND", s65, CONFIG_INVALID);
        expect_env(CONFIG_SCOPE_EDGE, "OMNIFY_HTTP_BIND", s64, CONFIG_OK);
        expect_env(CONFIG_SCOPE_EDGE, "OMNIFY_HTTP_BIND", "a", CONFIG_OK);
        /* OMNIFY_MONGO_URI: at least 10. */
        expect_env(CONFIG_SCOPE_GROUP, "OMNIFY_MONGO_URI", "mongodb:/",
                   CONFIG_INVALID);
        expect_env(CONFIG_SCOPE_GROUP, "OMNIFY_MONGO_URI", "mongodb://",
                   CONFIG_OK);
        /* OMNIFY_TOPIC_PREFIX: 0..64, so empty is fine. */
        expect_env(CONFIG_SCOPE_GROUP, "OMNIFY_TOPIC_PREFIX", "", CONFIG_OK);
        expect_env(CONFIG_SCOPE_GROUP, "OMNIFY_TOPIC_PREFIX", s65,
                   CONFIG_INVALID);
}

static void test_string_control_chars(void **state) {
        static const char *bad[] = {"k1:9092\n", "k1\t:9092", "k1:9092\r",
                                    "\x1b[31mk1", "k1\x01"};
        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                expect_env(CONFIG_SCOPE_GROUP, "OMNIFY_KAFKA_BROKERS", bad[i],
                           CONFIG_INVALID);
        /* Bytes above 0x7f are not control characters: UTF-8 passes. */
        expect_env(CONFIG_SCOPE_GROUP, "OMNIFY_INSTANCE_ID", "n\xc3\xa9ud",
                   CONFIG_OK);
}

static void test_string_del_is_a_control_char(void **state) {
        (void)state;
        /* DEL (0x7f) is a control character like the C0 set. */
        expect_env(CONFIG_SCOPE_GROUP, "OMNIFY_INSTANCE_ID", "edge\x7f",
                   CONFIG_INVALID);
}

static void test_bad_topic_prefix(void **state) {
        static const char *bad[] = {"omnify/", "om nify.",       "omnify:",
                                    "omnify*", "omnify\xc3\xa9", "a,b"};
        config_t cfg;
        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                expect_env(CONFIG_SCOPE_GROUP, "OMNIFY_TOPIC_PREFIX", bad[i],
                           CONFIG_INVALID);
        expect_env(CONFIG_SCOPE_GROUP, "OMNIFY_TOPIC_PREFIX", "Omnify-prod_2.",
                   CONFIG_OK);

        /* A flag is checked the same way. */
        fake_env_n = 0;
        assert_int_equal(
                load(&cfg, CONFIG_SCOPE_GROUP,
                     (char *[]){"omnify-test", "--topic-prefix=a/b", NULL}),
                CONFIG_INVALID);
        assert_non_null(strstr(err, "OMNIFY_TOPIC_PREFIX"));
        config_deinit(&cfg);
}

/* ------------------------------------------------------------------------ */
/* Scopes and required settings                                              */
/* ------------------------------------------------------------------------ */

static void test_jwt_secret_required_in_edge(void **state) {
        config_t cfg;
        (void)state;
        assert_int_equal(load(&cfg, CONFIG_SCOPE_EDGE, NO_ARGS),
                         CONFIG_INVALID);
        assert_non_null(strstr(err, "OMNIFY_JWT_SECRET"));
        config_deinit(&cfg);
}

static void test_jwt_secret_required_in_auth(void **state) {
        config_t cfg;
        (void)state;
        assert_int_equal(
                load(&cfg, CONFIG_SCOPE_GROUP | CONFIG_SCOPE_AUTH, NO_ARGS),
                CONFIG_INVALID);
        assert_non_null(strstr(err, "OMNIFY_JWT_SECRET"));
        config_deinit(&cfg);
}

static void test_jwt_secret_from_flag_satisfies_required(void **state) {
        config_t cfg;
        (void)state;
        assert_int_equal(load(&cfg, CONFIG_SCOPE_EDGE,
                              (char *[]){"omnify-test", "--jwt-secret",
                                         SECRET_OK, NULL}),
                         CONFIG_OK);
        assert_string_equal(cfg.jwt_secret, SECRET_OK);
        config_deinit(&cfg);
}

static void test_jwt_secret_not_required_in_group(void **state) {
        config_t cfg;
        (void)state;
        assert_int_equal(load(&cfg, CONFIG_SCOPE_GROUP, NO_ARGS), CONFIG_OK);
        assert_null(cfg.jwt_secret);
        config_deinit(&cfg);
        /* Nor is a bad value of it looked at. */
        env_set("OMNIFY_JWT_SECRET", "short");
        assert_int_equal(load(&cfg, CONFIG_SCOPE_GROUP, NO_ARGS), CONFIG_OK);
        assert_null(cfg.jwt_secret);
        config_deinit(&cfg);
}

static void test_other_scope_env_ignored(void **state) {
        config_t cfg;
        (void)state;
        env_set("OMNIFY_JWT_SECRET", SECRET_OK);
        /* Group-only rows: invalid, but not the edge's. */
        env_set("OMNIFY_OPS_PORT", "-5");
        assert_int_equal(load(&cfg, CONFIG_SCOPE_EDGE, NO_ARGS), CONFIG_OK);
        assert_int_equal(cfg.ops_port, 0);
        config_deinit(&cfg);
        /* The same variables are read in their own scope. */
        assert_int_equal(load(&cfg, CONFIG_SCOPE_GROUP, NO_ARGS),
                         CONFIG_INVALID);
        config_deinit(&cfg);
        /* And valid values of them do not leak into the edge either. */
        env_set("OMNIFY_OPS_PORT", "9100");
        assert_int_equal(load(&cfg, CONFIG_SCOPE_EDGE, NO_ARGS), CONFIG_OK);
        assert_int_equal(cfg.ops_port, 0);
        config_deinit(&cfg);
        assert_int_equal(load(&cfg, CONFIG_SCOPE_GROUP, NO_ARGS), CONFIG_OK);
        assert_int_equal(cfg.ops_port, 9100);
        config_deinit(&cfg);
}

static void test_common_always_in_scope(void **state) {
        config_t cfg;
        (void)state;
        /* Scope 0 still means the common rows. */
        env_set("OMNIFY_KAFKA_LINGER_MS", "1001");
        assert_int_equal(load(&cfg, 0, NO_ARGS), CONFIG_INVALID);
        assert_non_null(strstr(err, "OMNIFY_KAFKA_LINGER_MS"));
        config_deinit(&cfg);
        assert_int_equal(load(&cfg, CONFIG_SCOPE_TOOL, NO_ARGS),
                         CONFIG_INVALID);
        config_deinit(&cfg);
}

/* ------------------------------------------------------------------------ */
/* Flags                                                                     */
/* ------------------------------------------------------------------------ */

static void test_unknown_flag(void **state) {
        config_t cfg;
        (void)state;
        assert_int_equal(load(&cfg, CONFIG_SCOPE_GROUP,
                              (char *[]){"omnify-test", "--no-such=1", NULL}),
                         CONFIG_INVALID);
        assert_non_null(strstr(err, "--no-such"));
        config_deinit(&cfg);
        assert_int_equal(load(&cfg, CONFIG_SCOPE_GROUP,
                              (char *[]){"omnify-test", "--no-such", NULL}),
                         CONFIG_INVALID);
        assert_non_null(strstr(err, "--no-such"));
        config_deinit(&cfg);
        /* A prefix of a real flag is not that flag. */
        assert_int_equal(load(&cfg, CONFIG_SCOPE_GROUP,
                              (char *[]){"omnify-test", "--ops-por=1", NULL}),
                         CONFIG_INVALID);
        config_deinit(&cfg);
        /* Nor is the variable name spelt as a flag. */
        assert_int_equal(
                load(&cfg, CONFIG_SCOPE_GROUP,
                     (char *[]){"omnify-test", "--OMNIFY_OPS_PORT=1", NULL}),
                CONFIG_INVALID);
        config_deinit(&cfg);
}

static void test_flag_of_other_scope_is_unknown(void **state) {
        config_t cfg;
        (void)state;
        env_set("OMNIFY_JWT_SECRET", SECRET_OK);
        assert_int_equal(
                load(&cfg, CONFIG_SCOPE_EDGE,
                     (char *[]){"omnify-test", "--refresh-ttl-s=3600", NULL}),
                CONFIG_INVALID);
        assert_non_null(strstr(err, "--refresh-ttl-s"));
        config_deinit(&cfg);
}

static void test_flag_without_value(void **state) {
        config_t cfg;
        (void)state;
        env_set("OMNIFY_JWT_SECRET", SECRET_OK);
        assert_int_equal(load(&cfg, CONFIG_SCOPE_EDGE,
                              (char *[]){"omnify-test", "--http-port", NULL}),
                         CONFIG_INVALID);
        assert_non_null(strstr(err, "OMNIFY_HTTP_PORT"));
        config_deinit(&cfg);
}

static char *capture(unsigned scope, char **argv, config_result_t want) {
        config_t cfg;
        char *text = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&text, &len);
        assert_non_null(out);
        assert_int_equal(load_out(&cfg, scope, argv, NULL, out), want);
        config_deinit(&cfg);
        assert_int_equal(fclose(out), 0);
        assert_non_null(text);
        assert_int_equal(strlen(text), len);
        return text;
}

static void test_help(void **state) {
        char *text;
        (void)state;
        text = capture(CONFIG_SCOPE_EDGE,
                       (char *[]){"omnify-test", "--help", NULL}, CONFIG_HELP);
        assert_non_null(strstr(text, "omnify-test"));
        assert_non_null(strstr(text, "--http-port"));
        assert_non_null(strstr(text, "OMNIFY_HTTP_PORT"));
        assert_non_null(strstr(text, "OMNIFY_JWT_SECRET"));
        assert_non_null(strstr(text, "OMNIFY_LOG_LEVEL"));
        /* Only the rows of the scope. */
        assert_null(strstr(text, "OMNIFY_REFRESH_TTL_S"));
        assert_null(strstr(text, "OMNIFY_OPS_PORT"));
        free(text);

        /* -h too, and help wins over a missing required secret and comes
         * before any later bad flag. */
        text = capture(CONFIG_SCOPE_EDGE,
                       (char *[]){"omnify-test", "-h", "--bogus", NULL},
                       CONFIG_HELP);
        assert_non_null(strstr(text, "--http-port"));
        free(text);
}

static void test_version(void **state) {
        char *text;
        (void)state;
        text = capture(CONFIG_SCOPE_GROUP,
                       (char *[]){"omnify-test", "--version", NULL},
                       CONFIG_VERSION);
        assert_string_equal(text, "omnify-test " OMNIFY_VERSION "\n");
        free(text);
}

static void test_positional_stops_parsing(void **state) {
        config_t cfg;
        int argi = -1;
        (void)state;
        assert_int_equal(
                load_out(&cfg, CONFIG_SCOPE_TOOL,
                         (char *[]){"omnify-test", "--kafka-linger-ms=5",
                                    "topics", "--bogus", "--help", NULL},
                         &argi, NULL),
                CONFIG_OK);
        assert_int_equal(argi, 2);
        assert_int_equal(cfg.kafka_linger_ms, 5);
        config_deinit(&cfg);

        /* A single-dash argument is positional too. */
        assert_int_equal(load_out(&cfg, CONFIG_SCOPE_TOOL,
                                  (char *[]){"omnify-test", "-x", NULL}, &argi,
                                  NULL),
                         CONFIG_OK);
        assert_int_equal(argi, 1);
        config_deinit(&cfg);

        /* The value of a "--name value" flag is not positional. */
        assert_int_equal(load_out(&cfg, CONFIG_SCOPE_TOOL,
                                  (char *[]){"omnify-test", "--kafka-linger-ms",
                                             "7", "run", NULL},
                                  &argi, NULL),
                         CONFIG_OK);
        assert_int_equal(argi, 3);
        assert_int_equal(cfg.kafka_linger_ms, 7);
        config_deinit(&cfg);
}

/* ------------------------------------------------------------------------ */
/* Secrets                                                                   */
/* ------------------------------------------------------------------------ */

static void expect_secret_hidden(unsigned scope, char **argv,
                                 const char *secret, const char *var) {
        config_t cfg;
        assert_int_equal(load(&cfg, scope, argv), CONFIG_INVALID);
        assert_non_null(strstr(err, var));
        assert_null(strstr(err, secret));
        config_deinit(&cfg);
}

static void test_secret_never_in_errstr(void **state) {
        const char *shortsecret = "hunter2-is-my-password";
        char ctl[64];
        char long_secret[5000];
        (void)state;

        /* Too short, from the environment and from a flag. */
        env_set("OMNIFY_JWT_SECRET", shortsecret);
        expect_secret_hidden(CONFIG_SCOPE_EDGE, NO_ARGS, shortsecret,
                             "OMNIFY_JWT_SECRET");
        fake_env_n = 0;
        expect_secret_hidden(CONFIG_SCOPE_EDGE,
                             (char *[]){"omnify-test",
                                        "--jwt-secret=hunter2-is-my-password",
                                        NULL},
                             shortsecret, "OMNIFY_JWT_SECRET");
        expect_secret_hidden(CONFIG_SCOPE_AUTH,
                             (char *[]){"omnify-test", "--jwt-secret",
                                        "hunter2-is-my-password", NULL},
                             shortsecret, "OMNIFY_JWT_SECRET");

        /* Too long. */
        memset(long_secret, 's', sizeof(long_secret) - 1);
        long_secret[sizeof(long_secret) - 1] = '\0';
        env_set("OMNIFY_JWT_SECRET", long_secret);
        expect_secret_hidden(CONFIG_SCOPE_EDGE, NO_ARGS, "sssssssssssssssss",
                             "OMNIFY_JWT_SECRET");

        /* Long enough but with a control character. */
        snprintf(ctl, sizeof(ctl), "%s\x01",
                 "correct-horse-battery-staple-42!");
        env_set("OMNIFY_JWT_SECRET", ctl);
        expect_secret_hidden(CONFIG_SCOPE_EDGE, NO_ARGS, "correct-horse",
                             "OMNIFY_JWT_SECRET");

        /* The Mongo URI carries a password and is marked secret too. */
        fake_env_n = 0;
        env_set("OMNIFY_MONGO_URI", "mongodb://u:p4ssw0rd@h\n");
        expect_secret_hidden(CONFIG_SCOPE_GROUP, NO_ARGS, "p4ssw0rd",
                             "OMNIFY_MONGO_URI");
}

static void test_secret_not_echoed_for_unknown_flag(void **state) {
        config_t cfg;
        (void)state;
        /* --jwt-secret is not a group flag: the value must not be echoed. */
        assert_int_equal(load(&cfg, CONFIG_SCOPE_GROUP,
                              (char *[]){"omnify-test",
                                         "--jwt-secret=" SECRET_OK, NULL}),
                         CONFIG_INVALID);
        assert_non_null(strstr(err, "--jwt-secret"));
        assert_null(strstr(err, SECRET_OK));
        config_deinit(&cfg);
}

/* ------------------------------------------------------------------------ */
/* deinit and the table                                                      */
/* ------------------------------------------------------------------------ */

static void test_deinit_zeroed_and_null(void **state) {
        config_t cfg;
        (void)state;
        memset(&cfg, 0, sizeof(cfg));
        config_deinit(&cfg);
        config_deinit(NULL);
        /* Twice after a load is fine: deinit leaves NULLs behind. */
        assert_int_equal(load(&cfg, CONFIG_SCOPE_GROUP, NO_ARGS), CONFIG_OK);
        config_deinit(&cfg);
        assert_null(cfg.kafka_brokers);
        assert_null(cfg.topic_prefix);
        config_deinit(&cfg);
}

static void test_invalid_result_can_be_deinited(void **state) {
        config_t cfg;
        (void)state;
        /* Strings loaded before the failure are freed by deinit (ASan). */
        env_set("OMNIFY_KAFKA_BROKERS", "k:1");
        env_set("OMNIFY_HTTP_PORT", "x");
        assert_int_equal(load(&cfg, CONFIG_SCOPE_EDGE, NO_ARGS),
                         CONFIG_INVALID);
        config_deinit(&cfg);
}

static void test_null_errstr(void **state) {
        config_t cfg;
        (void)state;
        assert_int_equal(config_load(&cfg, CONFIG_SCOPE_EDGE, "omnify-test", 1,
                                     NO_ARGS, NULL, fake_getenv, NULL, NULL, 0),
                         CONFIG_INVALID);
        config_deinit(&cfg);
}

static const char *all_vars[] = {
        "OMNIFY_LOG_LEVEL",
        "OMNIFY_KAFKA_BROKERS",
        "OMNIFY_TOPIC_PREFIX",
        "OMNIFY_MONGO_URI",
        "OMNIFY_MONGO_DB_PREFIX",
        "OMNIFY_INSTANCE_ID",
        "OMNIFY_KAFKA_LINGER_MS",
        "OMNIFY_KAFKA_MESSAGE_TIMEOUT_MS",
        "OMNIFY_SHUTDOWN_TIMEOUT_MS",
        "OMNIFY_OPERATION_RETENTION_S",
        "OMNIFY_HTTP_BIND",
        "OMNIFY_HTTP_PORT",
        "OMNIFY_HTTP_THREADS",
        "OMNIFY_REPLY_TIMEOUT_MS",
        "OMNIFY_MAX_BODY_BYTES",
        "OMNIFY_MAX_INFLIGHT",
        "OMNIFY_MAX_CONNECTIONS",
        "OMNIFY_CORS_ORIGINS",
        "OMNIFY_RATE_IP_PER_MIN",
        "OMNIFY_RATE_ACCOUNT_PER_MIN",
        "OMNIFY_MAX_BUFFERED_BYTES",
        "OMNIFY_EDGE_REPLY_PARTITION",
        "OMNIFY_MAX_STREAMS",
        "OMNIFY_STREAM_BUFFER_BYTES",
        "OMNIFY_JWT_SECRET",
        "OMNIFY_JWT_ISSUER",
        "OMNIFY_JWT_AUDIENCE",
        "OMNIFY_JWT_KID",
        "OMNIFY_OPS_BIND",
        "OMNIFY_OPS_PORT",
        "OMNIFY_HTTPC_HOST_CONCURRENCY",
        "OMNIFY_HTTPC_HOST_RATE_PER_S",
        "OMNIFY_HTTPC_HOST_BURST",
        "OMNIFY_HTTPC_MAX_WAITING",
        "OMNIFY_HTTPC_MAX_RESPONSE_BYTES",
        "OMNIFY_HTTPC_MAX_CONNECTIONS",
        "OMNIFY_OUTBOX_POLL_MS",
        "OMNIFY_OUTBOX_INFLIGHT",
        "OMNIFY_OUTBOX_BATCH",
        "OMNIFY_OUTBOX_LEASE_MS",
        "OMNIFY_OUTBOX_KEEP_S",
        "OMNIFY_TIMER_POLL_MS",
        "OMNIFY_TIMER_HORIZON_MS",
        "OMNIFY_TIMER_BATCH",
        "OMNIFY_TIMER_KEEP_S",
        "OMNIFY_JWT_TTL_S",
};
#define N_VARS (sizeof(all_vars) / sizeof(all_vars[0]))

static size_t count_lines_starting(const char *text, const char *prefix) {
        size_t n = 0;
        for (const char *line = text; line && *line;) {
                if (strncmp(line, prefix, strlen(prefix)) == 0)
                        n++;
                line = strchr(line, '\n');
                if (line)
                        line++;
        }
        return n;
}

static void test_print_table_markdown_lists_every_variable(void **state) {
        char *text = NULL;
        size_t len = 0;
        unsigned all = CONFIG_SCOPE_COMMON | CONFIG_SCOPE_EDGE |
                       CONFIG_SCOPE_GROUP | CONFIG_SCOPE_AUTH |
                       CONFIG_SCOPE_TOOL;
        FILE *out = open_memstream(&text, &len);
        (void)state;
        assert_non_null(out);
        config_print_table(out, all, NULL, true);
        assert_int_equal(fclose(out), 0);

        assert_int_equal(strncmp(text, "| variable |", 12), 0);
        for (size_t i = 0; i < N_VARS; i++) {
                char row[80];
                snprintf(row, sizeof(row), "| `%s` |", all_vars[i]);
                assert_non_null(strstr(text, row));
        }
        /* One row per variable and no more: the list above is complete. */
        assert_int_equal(count_lines_starting(text, "| `OMNIFY_"), N_VARS);
        assert_int_equal(count_lines_starting(text, "|"), N_VARS + 2);
        /* The required secret is marked, and flags are shown. */
        assert_non_null(
                strstr(text, "| `OMNIFY_JWT_SECRET` | `--jwt-secret` |"));
        assert_non_null(strstr(text, "**required**"));
        free(text);

        /* A narrower scope lists fewer rows. */
        text = NULL;
        out = open_memstream(&text, &len);
        assert_non_null(out);
        config_print_table(out, CONFIG_SCOPE_COMMON, NULL, true);
        assert_int_equal(fclose(out), 0);
        assert_non_null(strstr(text, "OMNIFY_KAFKA_BROKERS"));
        assert_null(strstr(text, "OMNIFY_HTTP_PORT"));
        assert_null(strstr(text, "OMNIFY_JWT_SECRET"));
        free(text);
}

/* A group's own table: defaults, environment, flags, a required secret,
 * values found by table, printed with its owner. */
typedef struct tt_settings {
        int ttl;
        char *name;
        char *key;
        int mode;
} tt_settings_t;

static const config_row_t tt_rows[] = {
        {"OMNIFY_TT_TTL", CONFIG_INT, offsetof(tt_settings_t, ttl), 0, 1, 100,
         "10", NULL, 0, "A lifetime."},
        {"OMNIFY_TT_NAME", CONFIG_STRING, offsetof(tt_settings_t, name), 0, 1,
         20, "tt", NULL, 0, "A name."},
        {"OMNIFY_TT_KEY", CONFIG_STRING, offsetof(tt_settings_t, key), 0, 8, 64,
         NULL, NULL, 1, "A required secret."},
        {"OMNIFY_TT_MODE", CONFIG_ENUM, offsetof(tt_settings_t, mode), 0, 0, 0,
         "a", "a|b", 0, "A mode."},
};
static const config_table_t tt_table = {"tt", tt_rows, 4,
                                        sizeof(tt_settings_t)};
static const config_table_t *const tt_tables[] = {&tt_table, &tt_table, NULL};

static void test_tables(void **state) {
        config_t cfg;
        const tt_settings_t *tt;
        char why[256];
        char *argv[] = {"omnify-test", "--tt-ttl=42", NULL};
        char *text = NULL;
        size_t len = 0;
        FILE *out;
        (void)state;
        /* The required secret is missing: exit-2 material, named. */
        assert_int_equal(config_load_tables(&cfg, CONFIG_SCOPE_GROUP, tt_tables,
                                            "omnify-test", 1, argv, NULL,
                                            fake_getenv, NULL, why,
                                            sizeof(why)),
                         CONFIG_INVALID);
        assert_non_null(strstr(why, "OMNIFY_TT_KEY"));
        config_deinit(&cfg);
        env_set("OMNIFY_TT_KEY", "sekrit-123");
        env_set("OMNIFY_TT_MODE", "b");
        assert_int_equal(config_load_tables(&cfg, CONFIG_SCOPE_GROUP, tt_tables,
                                            "omnify-test", 2, argv, NULL,
                                            fake_getenv, NULL, why,
                                            sizeof(why)),
                         CONFIG_OK);
        assert_int_equal(cfg.n_tables, 1); /* listed twice, loaded once */
        tt = config_values(&cfg, &tt_table);
        assert_non_null(tt);
        assert_int_equal(tt->ttl, 42);
        assert_string_equal(tt->name, "tt");
        assert_string_equal(tt->key, "sekrit-123");
        assert_int_equal(tt->mode, 1);
        config_deinit(&cfg);
        /* Out of range, named; a secret's value never echoed. */
        env_set("OMNIFY_TT_TTL", "1000");
        assert_int_equal(config_load_tables(&cfg, CONFIG_SCOPE_GROUP, tt_tables,
                                            "omnify-test", 1, argv, NULL,
                                            fake_getenv, NULL, why,
                                            sizeof(why)),
                         CONFIG_INVALID);
        assert_non_null(strstr(why, "OMNIFY_TT_TTL"));
        config_deinit(&cfg);
        /* Not loaded: no values. */
        assert_int_equal(load(&cfg, CONFIG_SCOPE_GROUP, NO_ARGS), CONFIG_OK);
        assert_null(config_values(&cfg, &tt_table));
        config_deinit(&cfg);
        out = open_memstream(&text, &len);
        config_print_table(out, CONFIG_SCOPE_COMMON, tt_tables, true);
        fclose(out);
        assert_non_null(strstr(text, "| `OMNIFY_TT_KEY` | `--tt-key` |"));
        assert_int_equal(count_lines_starting(text, "| `OMNIFY_TT_"), 4);
        assert_non_null(strstr(text, "| tt | A lifetime. |"));
        free(text);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_defaults_edge, setup),
                cmocka_unit_test_setup(test_tables, setup),
                cmocka_unit_test_setup(test_defaults_group, setup),
                cmocka_unit_test_setup(test_env_overrides, setup),
                cmocka_unit_test_setup(test_enum_values_map_to_log_levels,
                                       setup),
                cmocka_unit_test_setup(test_flag_overrides_env, setup),
                cmocka_unit_test_setup(test_flag_given_twice_last_wins, setup),
                cmocka_unit_test_setup(test_flag_value_may_contain_equals,
                                       setup),
                cmocka_unit_test_setup(test_int_out_of_range, setup),
                cmocka_unit_test_setup(test_int_not_an_integer, setup),
                cmocka_unit_test_setup(test_int_bad_flag_names_variable, setup),
                cmocka_unit_test_setup(test_enum_bad_value, setup),
                cmocka_unit_test_setup(test_string_length_bounds, setup),
                cmocka_unit_test_setup(test_string_control_chars, setup),
                cmocka_unit_test_setup(test_string_del_is_a_control_char,
                                       setup),
                cmocka_unit_test_setup(test_bad_topic_prefix, setup),
                cmocka_unit_test_setup(test_jwt_secret_required_in_edge, setup),
                cmocka_unit_test_setup(test_jwt_secret_required_in_auth, setup),
                cmocka_unit_test_setup(
                        test_jwt_secret_from_flag_satisfies_required, setup),
                cmocka_unit_test_setup(test_jwt_secret_not_required_in_group,
                                       setup),
                cmocka_unit_test_setup(test_other_scope_env_ignored, setup),
                cmocka_unit_test_setup(test_common_always_in_scope, setup),
                cmocka_unit_test_setup(test_unknown_flag, setup),
                cmocka_unit_test_setup(test_flag_of_other_scope_is_unknown,
                                       setup),
                cmocka_unit_test_setup(test_flag_without_value, setup),
                cmocka_unit_test_setup(test_help, setup),
                cmocka_unit_test_setup(test_version, setup),
                cmocka_unit_test_setup(test_positional_stops_parsing, setup),
                cmocka_unit_test_setup(test_secret_never_in_errstr, setup),
                cmocka_unit_test_setup(test_secret_not_echoed_for_unknown_flag,
                                       setup),
                cmocka_unit_test_setup(test_deinit_zeroed_and_null, setup),
                cmocka_unit_test_setup(test_invalid_result_can_be_deinited,
                                       setup),
                cmocka_unit_test_setup(test_null_errstr, setup),
                cmocka_unit_test_setup(
                        test_print_table_markdown_lists_every_variable, setup),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
