/*
 * fuzz_msgpack.c - libFuzzer target: arbitrary bytes -> JSON.
 *
 * codec_msgpack_to_json renders the reply values the edge reads from Kafka
 * and the dead letters "omnify dlq show" prints, so its input is whatever
 * anyone who can write those topics sends. Checked: it either refuses or
 * returns one NUL-terminated JSON text of the length it says, which jansson
 * accepts (allowing the \u0000 that NUL bytes become and integers beyond int64,
 * read as reals); and rendering is a fixed point: when that JSON is an object
 * the codec reads back, rendering it again gives the same text; and the text
 * grows at most linearly with the input.
 */
#include <jansson.h>
#include <msgpack.h>
#include <stdint.h>
#include <string.h>

#include "codec.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *json = NULL, *json2 = NULL;
        size_t json_len = 0, json2_len = 0;
        msgpack_sbuffer sb;
        json_error_t jerr;
        json_t *root;
        bool exact;
        codec_err_t err;

        err = codec_msgpack_to_json((slice_t){(const char *)data, size}, &json,
                                    &json_len);
        if (err != CODEC_OK) {
                FUZZ_CHECK(json == NULL && json_len == 0);
                FUZZ_CHECK(err == CODEC_BAD_MSGPACK || err == CODEC_TOO_DEEP ||
                           err == CODEC_NO_MEMORY);
                return 0;
        }
        FUZZ_CHECK(json != NULL && json_len > 0);
        FUZZ_CHECK(strlen(json) == json_len);
        FUZZ_CHECK(fuzz_utf8_valid(json, json_len));
        /* Linear in the input: a byte becomes at most a "\u00XX" escape,
         * escaped once more inside a non-string key. Anything beyond is an
         * amplification a small hostile value can use. */
        FUZZ_CHECK(json_len <= 64 + 32 * size);

        root = json_loadb(json, json_len,
                          JSON_DECODE_ANY | JSON_ALLOW_NUL |
                                  JSON_DECODE_INT_AS_REAL,
                          &jerr);
        /* jansson cannot hold a NUL in a key; the text is valid JSON. */
        if (!root && json_error_code(&jerr) != json_error_null_byte_in_key) {
                fprintf(stderr, "jansson rejects our JSON: %s\n", jerr.text);
                FUZZ_CHECK(root != NULL);
        }
        json_decref(root);
        /* A uint64 above INT64_MAX is written as the integer it is; read
         * back, such a body holds its numbers as doubles (codec.c), so the
         * text comes back other than it went. Only the exact round trip is
         * not asked of it. */
        root = json_loadb(json, json_len, JSON_DECODE_ANY | JSON_ALLOW_NUL,
                          &jerr);
        exact = root || json_error_code(&jerr) != json_error_numeric_overflow;
        json_decref(root);

        msgpack_sbuffer_init(&sb);
        if (codec_json_to_msgpack((slice_t){json, json_len}, NULL, &sb, NULL,
                                  0) == CODEC_OK) {
                err = codec_msgpack_to_json((slice_t){sb.data, sb.size}, &json2,
                                            &json2_len);
                FUZZ_CHECK(err == CODEC_OK);
                FUZZ_CHECK(!exact || json2_len == json_len);
                FUZZ_CHECK(!exact || memcmp(json2, json, json_len) == 0);
        }
        msgpack_sbuffer_destroy(&sb);
        free(json2);
        free(json);
        return 0;
}
