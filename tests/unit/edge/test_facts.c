/*
 * test_facts.c - unit tests of the edge facts table (edge/facts.c).
 *
 * The facts come from a schema of a made-up group ("vault"), so nothing
 * here is auth's: a deny list of badges fed by vault.badge.revoked and
 * keyed on the sub claim, a deny list of sessions, and a version fact
 * (the vault's rules) fed by vault.rules.published where type is "rules",
 * asked at start with vault.rules.current.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facts.h"
#include "msgid.h"

static const char vault_json[] =
        "{\"group\": \"vault\",\n"
        " \"messages\": [\n"
        "  {\"type\": \"vault.rules.current\", \"version\": 1,\n"
        "   \"summary\": \"current rules\", \"read_only\": true,\n"
        "   \"reply\": {\"fields\": {\"rules\": {\"type\": \"integer\"}}}},\n"
        "  {\"type\": \"vault.open\", \"version\": 1, \"summary\": \"open\",\n"
        "   \"route\": {\"method\": \"POST\", \"path\": \"/api/vault/open\",\n"
        "             \"auth\": true, \"mode\": \"sync\",\n"
        "             \"requires\": [\"rules\"]}}\n"
        " ],\n"
        " \"events\": [\n"
        "  {\"type\": \"vault.badge.revoked\", \"version\": 1,\n"
        "   \"summary\": \"a badge was revoked\", \"key\": \"user\",\n"
        "   \"fields\": {\"user\": {\"type\": \"string\", \"required\": "
        "true},\n"
        "              \"until\": {\"type\": \"integer\"}}},\n"
        "  {\"type\": \"vault.session.closed\", \"version\": 1,\n"
        "   \"summary\": \"a session was closed\", \"key\": \"sid\",\n"
        "   \"fields\": {\"sid\": {\"type\": \"string\", \"required\": "
        "true}}},\n"
        "  {\"type\": \"vault.rules.published\", \"version\": 1,\n"
        "   \"summary\": \"rules were published\", \"key\": \"type\",\n"
        "   \"fields\": {\"type\": {\"type\": \"string\", \"required\": "
        "true},\n"
        "              \"version\": {\"type\": \"integer\", \"required\": "
        "true}}}\n"
        " ],\n"
        " \"facts\": [\n"
        "  {\"name\": \"badge\", \"kind\": \"deny\", \"event\": "
        "\"vault.badge.revoked\",\n"
        "   \"key\": \"user\", \"until\": \"until\", \"claim\": \"sub\",\n"
        "   \"detail\": \"your badge was revoked\"},\n"
        "  {\"name\": \"closed\", \"kind\": \"deny\", \"event\": "
        "\"vault.session.closed\",\n"
        "   \"key\": \"sid\", \"claim\": \"sid\", \"detail\": \"closed\"},\n"
        "  {\"name\": \"rules\", \"kind\": \"version\", \"event\": "
        "\"vault.rules.published\",\n"
        "   \"where\": {\"type\": \"rules\"}, \"value\": \"version\",\n"
        "   \"query\": {\"type\": \"vault.rules.current\", \"field\": "
        "\"rules\"},\n"
        "   \"claim\": \"tv\",\n"
        "   \"detail\": \"accept the rules (version {value}) first\"}\n"
        " ]}\n";

static schema_set_t *set;
static facts_t *facts;

static int setup(void **state) {
        schema_source_t src = {"vault.json", vault_json,
                               sizeof(vault_json) - 1};
        char err[512] = "";
        (void)state;
        if (schema_set_load(&set, &src, 1, err, sizeof(err)) != SCHEMA_OK)
                fail_msg("schema: %s", err);
        facts = facts_new(set, err, sizeof(err));
        if (!facts)
                fail_msg("facts: %s", err);
        return 0;
}

static int teardown(void **state) {
        (void)state;
        facts_destroy(facts);
        schema_set_destroy(set);
        return 0;
}

/* A map from alternating keys and values; a value starting with '#' is an
 * integer. */
typedef struct body {
        msgpack_sbuffer mp;
        msgpack_zone zone;
        msgpack_object obj;
} body_t;

static const msgpack_object *body_of(body_t *b, int n, ...) {
        msgpack_packer pk;
        va_list ap;
        size_t off = 0;
        msgpack_sbuffer_init(&b->mp);
        msgpack_packer_init(&pk, &b->mp, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, (uint32_t)n);
        va_start(ap, n);
        for (int i = 0; i < n; i++) {
                const char *k = va_arg(ap, const char *);
                const char *v = va_arg(ap, const char *);
                msgpack_pack_str_with_body(&pk, k, strlen(k));
                if (v[0] == '#')
                        msgpack_pack_int64(&pk, strtoll(v + 1, NULL, 10));
                else
                        msgpack_pack_str_with_body(&pk, v, strlen(v));
        }
        va_end(ap);
        msgpack_zone_init(&b->zone, 256);
        assert_int_equal(
                msgpack_unpack(b->mp.data, b->mp.size, &off, &b->zone, &b->obj),
                MSGPACK_UNPACK_SUCCESS);
        return &b->obj;
}

static void body_free(body_t *b) {
        msgpack_zone_destroy(&b->zone);
        msgpack_sbuffer_destroy(&b->mp);
}

static size_t apply(const char *type, int64_t now_s, int n, const char *k1,
                    const char *v1, const char *k2, const char *v2) {
        body_t b;
        size_t changed =
                facts_apply_event(facts, slice_of(type),
                                  n == 1 ? body_of(&b, 1, k1, v1)
                                         : body_of(&b, 2, k1, v1, k2, v2),
                                  now_s);
        body_free(&b);
        return changed;
}

static const schema_fact_t *rules(void) {
        return schema_find_fact(set, slice_of("rules"));
}

/* ------------------------------------------------------------------------ */

static void test_groups_and_queries(void **state) {
        (void)state;
        assert_int_equal(facts_group_count(facts), 1);
        assert_string_equal(facts_group_at(facts, 0), "vault");
        assert_int_equal(facts_query_count(facts), 1);
        assert_string_equal(facts_query_at(facts, 0)->query_type,
                            "vault.rules.current");
        assert_false(facts_query_done(facts, 0));
}

static void test_deny_by_claim_until(void **state) {
        token_claims_t alice = {.sub = "alice", .sid = "s1"},
                       bob = {.sub = "bob", .sid = "s2"};
        int64_t now = 1700000000;
        const schema_fact_t *f;
        (void)state;
        assert_null(facts_denied(facts, &alice, (uint64_t)now * 1000));
        assert_int_equal(apply("vault.badge.revoked", now, 2, "user", "alice",
                               "until", "#1700000600"),
                         1);
        f = facts_denied(facts, &alice, (uint64_t)now * 1000);
        assert_non_null(f);
        assert_string_equal(f->name, "badge");
        assert_string_equal(f->detail, "your badge was revoked");
        assert_null(facts_denied(facts, &bob, (uint64_t)now * 1000));
        /* Past until, the claim is welcome again. */
        assert_null(facts_denied(facts, &alice, 1700000600ull * 1000));
        /* An event of another type changes nothing. */
        assert_int_equal(
                apply("vault.other.thing", now, 1, "user", "bob", NULL, NULL),
                0);
        assert_null(facts_denied(facts, &bob, (uint64_t)now * 1000));
}

/* Without until: a day. A repeat with an earlier until keeps the later. */
static void test_deny_default_until_and_repeats(void **state) {
        token_claims_t c = {.sub = "x", .sid = "s9"};
        int64_t now = 1700000000;
        (void)state;
        assert_int_equal(
                apply("vault.session.closed", now, 1, "sid", "s9", NULL, NULL),
                1);
        assert_non_null(
                facts_denied(facts, &c, (uint64_t)(now + 86399) * 1000));
        assert_null(facts_denied(facts, &c, (uint64_t)(now + 86400) * 1000));
        /* Already closed until later: an earlier until changes nothing. */
        assert_int_equal(apply("vault.session.closed", now - 100, 1, "sid",
                               "s9", NULL, NULL),
                         0);
        /* A claim the token does not carry is never denied. */
        c.sid[0] = '\0';
        assert_null(facts_denied(facts, &c, (uint64_t)now * 1000));
}

static void test_version_from_events_and_query(void **state) {
        token_claims_t c = {.sub = "a", .tv = 2};
        int64_t value;
        body_t b;
        (void)state;
        assert_int_equal(facts_version(facts, rules()), -1);
        assert_int_equal(facts_check(facts, rules(), &c, &value),
                         FACTS_UNKNOWN);
        /* "where": an event about another document says nothing. */
        assert_int_equal(apply("vault.rules.published", 0, 2, "type", "other",
                               "version", "#9"),
                         0);
        assert_int_equal(facts_version(facts, rules()), -1);
        /* The query's answer. */
        assert_int_equal(
                facts_apply_query(facts, 0, body_of(&b, 1, "rules", "#2")), 1);
        body_free(&b);
        assert_true(facts_query_done(facts, 0));
        assert_int_equal(facts_check(facts, rules(), &c, &value), FACTS_HOLD);
        assert_int_equal(value, 2);
        /* A newer publication raises it; an older one does not lower it. */
        assert_int_equal(apply("vault.rules.published", 0, 2, "type", "rules",
                               "version", "#3"),
                         1);
        assert_int_equal(apply("vault.rules.published", 0, 2, "type", "rules",
                               "version", "#1"),
                         0);
        assert_int_equal(facts_check(facts, rules(), &c, &value), FACTS_BELOW);
        assert_int_equal(value, 3);
        /* A late query answer with an older value does not lower it. */
        assert_int_equal(
                facts_apply_query(facts, 0, body_of(&b, 1, "rules", "#2")), 0);
        body_free(&b);
        assert_int_equal(facts_version(facts, rules()), 3);
        c.tv = 3;
        assert_int_equal(facts_check(facts, rules(), &c, NULL), FACTS_HOLD);
}

static void test_unknown_claim_refused(void **state) {
        static char bad[sizeof(vault_json) + 16];
        schema_source_t src = {"vault.json", bad, 0};
        schema_set_t *other = NULL;
        char err[512] = "";
        char *p;
        (void)state;
        /* The badge fact compares a claim tokens do not carry. */
        memcpy(bad, vault_json, sizeof(vault_json));
        p = strstr(bad, "\"claim\": \"sub\"");
        assert_non_null(p);
        memcpy(p, "\"claim\": \"xyz\"", 14);
        src.len = strlen(bad);
        if (schema_set_load(&other, &src, 1, err, sizeof(err)) != SCHEMA_OK) {
                /* The schema checker refuses it already: as good. */
                assert_non_null(strstr(err, "claim"));
                return;
        }
        assert_null(facts_new(other, err, sizeof(err)));
        assert_non_null(strstr(err, "badge"));
        assert_non_null(strstr(err, "xyz"));
        schema_set_destroy(other);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_groups_and_queries, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_deny_by_claim_until, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(
                        test_deny_default_until_and_repeats, setup, teardown),
                cmocka_unit_test_setup_teardown(
                        test_version_from_events_and_query, setup, teardown),
                cmocka_unit_test(test_unknown_claim_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
