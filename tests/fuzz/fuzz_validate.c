/*
 * fuzz_validate.c - libFuzzer target: schema validation of msgpack bodies.
 *
 * The input is a record value, unpacked as consumers unpack it
 * (env_unpack: one msgpack map, container counts checked first), then
 * validated against every routed message and every event of the real
 * schemas and every message of the synthetic set in fuzz_util.c, which has
 * all field types, formats and limits and nested objects and arrays to the
 * depth bound (reports name full paths: steps[2].retry.max).
 *
 * Checked: the verdict agrees with the report; the report stays within its
 * bounds, every string in it is terminated, and field names are whole UTF-8
 * (a long name is cut at a character boundary); the verdict is the same
 * without a report.
 */
#include <msgpack.h>
#include <stdint.h>
#include <string.h>

#include "envelope.h"
#include "fuzz_util.h"
#include "schema.h"

static schema_set_t *real_set, *synthetic_set;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        (void)argc;
        (void)argv;
        real_set = fuzz_schemas_real();
        synthetic_set = fuzz_schemas_synthetic();
        return 0;
}

static void check_report(const schema_report_t *report, bool ok) {
        FUZZ_CHECK(report->n <= SCHEMA_MAX_VIOLATIONS);
        FUZZ_CHECK(ok == (report->n == 0));
        FUZZ_CHECK(!report->truncated || report->n == SCHEMA_MAX_VIOLATIONS);
        for (size_t i = 0; i < report->n; i++) {
                const schema_violation_t *v = &report->v[i];
                size_t flen = strnlen(v->field, sizeof(v->field));
                size_t rlen = strnlen(v->reason, sizeof(v->reason));
                FUZZ_CHECK(flen < sizeof(v->field));
                FUZZ_CHECK(rlen > 0 && rlen < sizeof(v->reason));
                FUZZ_CHECK(fuzz_utf8_valid(v->field, flen));
        }
}

static void validate_events(const schema_set_t *set,
                            const msgpack_object *body) {
        for (size_t i = 0; i < schema_event_count(set); i++) {
                const schema_event_t *ev = schema_event_at(set, i);
                schema_report_t report;
                bool ok;

                memset(&report, 0xA5, sizeof(report));
                ok = schema_event_validate(ev, body, &report);
                check_report(&report, ok);
                FUZZ_CHECK(schema_event_validate(ev, body, NULL) == ok);
        }
}

static void validate_all(const schema_set_t *set, const msgpack_object *body,
                         bool routed_only) {
        for (size_t i = 0; i < schema_set_count(set); i++) {
                const schema_msg_t *msg = schema_set_at(set, i);
                schema_report_t report;
                bool ok;

                if (routed_only && !msg->route.method)
                        continue;
                memset(&report, 0xA5, sizeof(report));
                ok = schema_validate(msg, body, &report);
                check_report(&report, ok);
                FUZZ_CHECK(schema_validate(msg, body, NULL) == ok);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        env_t env = {.value = {(const char *)data, size}};
        msgpack_zone zone;
        msgpack_object obj;

        msgpack_zone_init(&zone, 1024);
        if (env_unpack(&env, &zone, &obj) == ENV_OK) {
                validate_all(real_set, &obj, true);
                validate_events(real_set, &obj);
                validate_all(synthetic_set, &obj, false);
        }
        msgpack_zone_destroy(&zone);
        return 0;
}
