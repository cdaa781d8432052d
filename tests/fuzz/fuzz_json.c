/*
 * fuzz_json.c - libFuzzer target: JSON body -> msgpack -> JSON -> msgpack.
 *
 * Input: a JSON body, optionally preceded by path parameters. When the first
 * byte is below 0x09 (no JSON text starts so), it is the parameter count n
 * (0..8) and n values follow, each a length byte then that many bytes; the
 * rest is the body. The parameters get the distinct names of param_names[],
 * so some collide with body fields.
 *
 * Checked on every input: an error leaves the output buffer as given and
 * says why without quoting the body ("near '...'" is cut). On success the
 * msgpack renders back to JSON, and, when the parameter values are text
 * JSON can carry (valid UTF-8 without NUL), that JSON converts back to the
 * very same msgpack bytes.
 */
#include <msgpack.h>
#include <stdint.h>
#include <string.h>

#include "codec.h"
#include "fuzz_util.h"

static const char *const param_names[SCHEMA_MAX_PARAMS] = {
        "id", "name", "email", "part", "x", "y", "a", "b"};

/* A byte ahead of what the codec appends: it must survive every call. */
#define PREFIX_BYTE '\xc0'

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *p = (const char *)data;
        schema_params_t params = {0};
        bool params_text = true;
        msgpack_sbuffer sb, sb2;
        char errstr[256];
        char *json = NULL;
        size_t json_len = 0;
        codec_err_t err;

        if (size > 0 && data[0] < 0x09) {
                size_t off = 1;
                params.n = data[0];
                for (size_t i = 0; i < params.n; i++) {
                        size_t len = off < size ? data[off++] : 0;
                        if (len > size - off)
                                len = size - off;
                        params.names[i] = param_names[i];
                        params.values[i] = (slice_t){p + off, len};
                        if (!fuzz_utf8_valid(p + off, len) ||
                            memchr(p + off, '\0', len))
                                params_text = false;
                        off += len;
                }
                p += off;
                size -= off;
        }

        msgpack_sbuffer_init(&sb);
        msgpack_sbuffer_write(&sb, &(char){PREFIX_BYTE}, 1);
        memset(errstr, 'X', sizeof(errstr));
        err = codec_json_to_msgpack((slice_t){p, size}, &params, &sb, errstr,
                                    sizeof(errstr));
        FUZZ_CHECK(sb.size >= 1 && sb.data[0] == PREFIX_BYTE);
        if (err != CODEC_OK) {
                FUZZ_CHECK(err != CODEC_BAD_MSGPACK);
                FUZZ_CHECK(sb.size == 1);
                FUZZ_CHECK(memchr(errstr, '\0', sizeof(errstr)) != NULL);
                FUZZ_CHECK(errstr[0] != '\0');
                FUZZ_CHECK(strstr(errstr, "near '") == NULL);
                goto out;
        }
        FUZZ_CHECK(sb.size > 1);

        /* What we produced, we must be able to render. */
        err = codec_msgpack_to_json((slice_t){sb.data + 1, sb.size - 1}, &json,
                                    &json_len);
        FUZZ_CHECK(err == CODEC_OK);
        FUZZ_CHECK(json != NULL && json_len >= 2 && json[0] == '{');
        FUZZ_CHECK(strlen(json) == json_len);

        /* And what we rendered reads back as the same bytes. */
        msgpack_sbuffer_init(&sb2);
        err = codec_json_to_msgpack((slice_t){json, json_len}, NULL, &sb2,
                                    errstr, sizeof(errstr));
        if (params_text) {
                if (err != CODEC_OK)
                        fprintf(stderr, "re-parse failed: %s\n", errstr);
                FUZZ_CHECK(err == CODEC_OK);
                FUZZ_CHECK(sb2.size == sb.size - 1);
                FUZZ_CHECK(memcmp(sb2.data, sb.data + 1, sb2.size) == 0);
        }
        msgpack_sbuffer_destroy(&sb2);
out:
        free(json);
        msgpack_sbuffer_destroy(&sb);
        return 0;
}
