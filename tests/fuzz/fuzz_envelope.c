/*
 * fuzz_envelope.c - libFuzzer target: Kafka record headers and value.
 *
 * Input framing, plain text so seeds stay readable: header lines, an empty
 * line, then the record value (msgpack bytes). Each header line is
 * "name=value" split at the first '='; a line without '=' is a header with
 * a NULL value. Names and values may hold any byte but '\n'.
 *
 *     id=0190a0c2-6a3b-7cc1-8f00-0123456789ab
 *     type=auth.signup
 *     schema-version=1
 *     created-at=1717171717171
 *
 *     <msgpack map>
 *
 * Checked: env_decode_headers either refuses with a reason or fills env
 * with values in range that point into the record; a decoded env rebuilt
 * with env_headers decodes to the same values; env_unpack yields a map or
 * refuses, whether or not the headers decoded.
 */
#include <librdkafka/rdkafka.h>
#include <msgpack.h>
#include <stdint.h>
#include <string.h>

#include "envelope.h"
#include "fuzz_util.h"
#include "msgid.h"

#define MAX_HEADERS 64

/* Same bytes, absent and empty alike: env_headers skips empty values. */
static bool same(slice_t a, slice_t b) {
        return a.len == b.len &&
               (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void check_env(const env_t *env) {
        msgid_t id;

        FUZZ_CHECK(msgid_parse(env->id.ptr, env->id.len, &id));
        FUZZ_CHECK(env->type.len > 0);
        FUZZ_CHECK(env->schema_version >= 1 && env->schema_version <= 1000000);
        FUZZ_CHECK(env->created_at_ms >= 0);
        FUZZ_CHECK(env->status == 0 ||
                   (env->status >= 100 && env->status <= 599));
        FUZZ_CHECK(env->value.ptr && env->value.len > 0);
        if (env->reply_to.ptr) {
                char topic[256];
                int32_t part;
                FUZZ_CHECK(env_parse_reply_to(env->reply_to, topic,
                                              sizeof(topic), &part) == 0);
                FUZZ_CHECK(part >= 0 && strlen(topic) > 0);
        }
}

/* Rebuild the headers from env and decode them again: same envelope. */
static void check_round_trip(const env_t *env) {
        rd_kafka_headers_t *hdrs = env_headers(env);
        char errstr[256];
        env_t env2;
        env_err_t err;

        err = env_decode_headers(hdrs, env->key, env->value, &env2, errstr,
                                 sizeof(errstr));
        if (err != ENV_OK)
                fprintf(stderr, "rebuilt headers do not decode: %s\n", errstr);
        FUZZ_CHECK(err == ENV_OK);
        FUZZ_CHECK(same(env->id, env2.id));
        FUZZ_CHECK(same(env->type, env2.type));
        FUZZ_CHECK(env->schema_version == env2.schema_version);
        FUZZ_CHECK(env->created_at_ms == env2.created_at_ms);
        FUZZ_CHECK(same(env->correlation_id, env2.correlation_id));
        FUZZ_CHECK(same(env->reply_to, env2.reply_to));
        FUZZ_CHECK(same(env->tenant, env2.tenant));
        FUZZ_CHECK(same(env->user, env2.user));
        FUZZ_CHECK(same(env->roles, env2.roles));
        FUZZ_CHECK(same(env->traceparent, env2.traceparent));
        FUZZ_CHECK(same(env->idempotency_key, env2.idempotency_key));
        FUZZ_CHECK(env->status == env2.status);
        FUZZ_CHECK(same(env->error, env2.error));
        rd_kafka_headers_destroy(hdrs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *p = (const char *)data, *end = p + size;
        const char *sep = NULL;
        rd_kafka_headers_t *hdrs = rd_kafka_headers_new(8);
        slice_t key = {"k", 1}, value = SLICE_NULL;
        char errstr[256];
        size_t n = 0;
        env_t env;
        env_err_t err;

        for (size_t i = 0; i + 1 < size; i++) {
                if (p[i] == '\n' && p[i + 1] == '\n') {
                        sep = p + i;
                        break;
                }
        }
        if (sep) {
                value = (slice_t){sep + 2, (size_t)(end - sep - 2)};
                end = sep;
        }
        while (p < end && n < MAX_HEADERS) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                const char *line_end = nl ? nl : end;
                const char *eq = memchr(p, '=', (size_t)(line_end - p));
                if (eq)
                        rd_kafka_header_add(hdrs, p, eq - p, eq + 1,
                                            line_end - eq - 1);
                else
                        rd_kafka_header_add(hdrs, p, line_end - p, NULL, 0);
                n++;
                p = nl ? nl + 1 : end;
        }

        memset(errstr, 'X', sizeof(errstr));
        err = env_decode_headers(hdrs, key, value, &env, errstr,
                                 sizeof(errstr));
        if (err != ENV_OK) {
                FUZZ_CHECK(err == ENV_MISSING_HEADER || err == ENV_BAD_HEADER ||
                           err == ENV_BAD_VALUE);
                FUZZ_CHECK(memchr(errstr, '\0', sizeof(errstr)) != NULL);
                FUZZ_CHECK(errstr[0] != '\0');
        } else {
                check_env(&env);
                FUZZ_CHECK(same(env.key, key));
                FUZZ_CHECK(env.value.ptr == value.ptr &&
                           env.value.len == value.len);
                check_round_trip(&env);
        }

        /* The value is unpacked whatever the headers said, so inputs need
         * no valid headers to reach the unpacker. */
        {
                env_t venv = {.value = value};
                msgpack_zone zone;
                msgpack_object obj;
                msgpack_zone_init(&zone, 1024);
                if (env_unpack(&venv, &zone, &obj) == ENV_OK)
                        FUZZ_CHECK(obj.type == MSGPACK_OBJECT_MAP);
                msgpack_zone_destroy(&zone);
        }
        rd_kafka_headers_destroy(hdrs);
        return 0;
}
