/*
 * fuzz_validate.c - libFuzzer target: schema validation of msgpack bodies.
 *
 * The input is one msgpack object, unpacked the way consumers unpack a
 * record value (msgpack_unpack into a zone), then validated against every
 * routed message of the real schemas and every message of the synthetic
 * set in fuzz_util.c, which has all field types, formats and limits.
 *
 * Before unpacking, a scan refuses array and map counts larger than the
 * bytes left: msgpack-c allocates count * sizeof(msgpack_object) on reading
 * a container's header, so a five-byte input could ask for ~100 GB and
 * stop this target on the first run; fuzz_envelope covers that path.
 *
 * Checked: the verdict agrees with the report; the report stays within its
 * bounds, every string in it is terminated, and field names are whole UTF-8
 * (a long name is cut at a character boundary); the verdict is the same
 * without a report.
 */
#include <msgpack.h>
#include <stdint.h>
#include <string.h>

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

static uint64_t be(const uint8_t *p, size_t n) {
        uint64_t v = 0;

        for (size_t i = 0; i < n; i++)
                v = v << 8 | p[i];
        return v;
}

/*
 * Walk one object at data[*off] and move past it. False when a container
 * claims more elements than bytes are left (each takes at least one), when
 * it nests deeper than msgpack-c would unpack anyway, or when it is cut
 * short; msgpack-c judges the rest.
 */
static bool counts_plausible(const uint8_t *data, size_t size, size_t *off,
                             int depth) {
        uint64_t count = 0, skip = 0;
        size_t hdr = 0;
        bool container = false, map = false;
        uint8_t c;

        if (*off >= size || depth > 64)
                return false;
        c = data[(*off)++];
        if (c <= 0x7f || c >= 0xe0 || (c >= 0xc0 && c <= 0xc3))
                return true;
        if (c <= 0x8f) {
                container = map = true;
                count = c & 0x0f;
        } else if (c <= 0x9f) {
                container = true;
                count = c & 0x0f;
        } else if (c <= 0xbf) {
                skip = c & 0x1f;
        } else {
                /* clang-format off */
                switch (c) {
                case 0xc4: case 0xd9: hdr = 1; break;
                case 0xc5: case 0xda: hdr = 2; break;
                case 0xc6: case 0xdb: hdr = 4; break;
                case 0xc7: hdr = 1; skip = 1; break;
                case 0xc8: hdr = 2; skip = 1; break;
                case 0xc9: hdr = 4; skip = 1; break;
                case 0xca: case 0xce: case 0xd2: skip = 4; break;
                case 0xcb: case 0xcf: case 0xd3: skip = 8; break;
                case 0xcc: case 0xd0: skip = 1; break;
                case 0xcd: case 0xd1: skip = 2; break;
                case 0xd4: skip = 2; break;
                case 0xd5: skip = 3; break;
                case 0xd6: skip = 5; break;
                case 0xd7: skip = 9; break;
                case 0xd8: skip = 17; break;
                case 0xdc: container = true; hdr = 2; break;
                case 0xdd: container = true; hdr = 4; break;
                case 0xde: container = map = true; hdr = 2; break;
                default: container = map = true; hdr = 4; break; /* 0xdf */
                }
                /* clang-format on */
                if (size - *off < hdr)
                        return false;
                if (container)
                        count = be(data + *off, hdr);
                else
                        skip += be(data + *off, hdr);
                *off += hdr;
        }
        if (!container) {
                if (size - *off < skip)
                        return false;
                *off += skip;
                return true;
        }
        if (map)
                count *= 2;
        if (count > size - *off)
                return false;
        for (uint64_t i = 0; i < count; i++)
                if (!counts_plausible(data, size, off, depth + 1))
                        return false;
        return true;
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
        msgpack_zone zone;
        msgpack_object obj;
        size_t off = 0;

        if (!counts_plausible(data, size, &off, 0))
                return 0;
        msgpack_zone_init(&zone, 1024);
        off = 0;
        if (msgpack_unpack((const char *)data, size, &off, &zone, &obj) ==
            MSGPACK_UNPACK_SUCCESS) {
                validate_all(real_set, &obj, true);
                validate_all(synthetic_set, &obj, false);
        }
        msgpack_zone_destroy(&zone);
        return 0;
}
