/*
 * envelope.c - Kafka record headers <-> env_t (see envelope.h).
 */
#include "envelope.h"

#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "msgid.h"

static const char *env_errors[] = {
#define X(name, msg) msg,
        ENV_ERRORS(X)
#undef X
};

const char *env_strerror(env_err_t err) {
        if ((unsigned)err >= sizeof(env_errors) / sizeof(env_errors[0]))
                return "unknown envelope error";
        return env_errors[err];
}

/* Longest header value we accept: ids, roles and keys are short. */
#define ENV_MAX_HEADER 1024

static int parse_decimal(slice_t s, int64_t min, int64_t max, int64_t *out) {
        int64_t v = 0;
        if (s.len == 0 || s.len > 19)
                return -1;
        for (size_t i = 0; i < s.len; i++) {
                if (s.ptr[i] < '0' || s.ptr[i] > '9')
                        return -1;
                if (v > (INT64_MAX - 9) / 10) /* 19 digits may overflow */
                        return -1;
                v = v * 10 + (s.ptr[i] - '0');
        }
        if (v < min || v > max)
                return -1;
        *out = v;
        return 0;
}

/* "type/subtype" and optional parameters, visible ASCII only: the edge
 * sends it as the Content-Type of an answer, so no CR, LF or NUL. */
static bool valid_media_type(slice_t s) {
        size_t slash = 0, i;
        if (s.len == 0 || s.len > 255)
                return false;
        for (i = 0; i < s.len; i++) {
                char c = s.ptr[i];
                if (c < 0x20 || c > 0x7e)
                        return false;
                if (c == '/' && !slash)
                        slash = i;
        }
        for (i = 0; i < s.len && s.ptr[i] != ';'; i++)
                if (s.ptr[i] == ' ' && i < slash)
                        return false;
        return slash > 0 && slash + 1 < s.len && s.ptr[slash + 1] != ';' &&
               s.ptr[slash + 1] != ' ';
}

static env_err_t bad(char *errstr, size_t errlen, env_err_t err,
                     const char *header) {
        if (errstr && errlen)
                snprintf(errstr, errlen, "%s: header '%s'", env_strerror(err),
                         header);
        return err;
}

env_err_t env_decode_headers(const rd_kafka_headers_t *hdrs, slice_t key,
                             slice_t value, env_t *env, char *errstr,
                             size_t errlen) {
        struct {
                const char *name;
                slice_t *slot;
        } text[] = {
                {"id", &env->id},
                {"type", &env->type},
                {"correlation-id", &env->correlation_id},
                {"reply-to", &env->reply_to},
                {"tenant", &env->tenant},
                {"user", &env->user},
                {"roles", &env->roles},
                {"session", &env->session},
                {"terms-version", &env->terms_version},
                {"client-ip", &env->client_ip},
                {"user-agent", &env->user_agent},
                {"traceparent", &env->traceparent},
                {"idempotency-key", &env->idempotency_key},
                {"error", &env->error},
                {"content-type", &env->content_type},
        };
        slice_t version = SLICE_NULL, created = SLICE_NULL, status = SLICE_NULL;
        int64_t v;
        msgid_t id;

        memset(env, 0, sizeof(*env));
        env->key = key;
        env->value = value;

        for (size_t idx = 0; hdrs; idx++) {
                const char *name;
                const void *val;
                size_t size;
                slice_t *slot = NULL;
                if (rd_kafka_header_get_all(hdrs, idx, &name, &val, &size) !=
                    RD_KAFKA_RESP_ERR_NO_ERROR)
                        break;
                for (size_t t = 0; t < sizeof(text) / sizeof(text[0]); t++)
                        if (strcmp(name, text[t].name) == 0)
                                slot = text[t].slot;
                if (!slot && strcmp(name, "schema-version") == 0)
                        slot = &version;
                if (!slot && strcmp(name, "created-at") == 0)
                        slot = &created;
                if (!slot && strcmp(name, "status") == 0)
                        slot = &status;
                if (!slot)
                        continue; /* headers we don't know travel untouched */
                if (size > ENV_MAX_HEADER || (size > 0 && !val))
                        return bad(errstr, errlen, ENV_BAD_HEADER, name);
                /* Last one wins would let a forged duplicate override:
                 * a duplicate of a known header is malformed. */
                if (slot->ptr)
                        return bad(errstr, errlen, ENV_BAD_HEADER, name);
                slot->ptr = val ? val : "";
                slot->len = size;
        }

        if (!env->id.ptr)
                return bad(errstr, errlen, ENV_MISSING_HEADER, "id");
        if (!msgid_parse(env->id.ptr, env->id.len, &id))
                return bad(errstr, errlen, ENV_BAD_HEADER, "id");
        if (!env->type.ptr || env->type.len == 0)
                return bad(errstr, errlen, ENV_MISSING_HEADER, "type");
        for (size_t i = 0; i < env->type.len; i++) {
                char c = env->type.ptr[i];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_'))
                        return bad(errstr, errlen, ENV_BAD_HEADER, "type");
        }
        if (!version.ptr)
                return bad(errstr, errlen, ENV_MISSING_HEADER,
                           "schema-version");
        if (parse_decimal(version, 1, 1000000, &v))
                return bad(errstr, errlen, ENV_BAD_HEADER, "schema-version");
        env->schema_version = (int)v;
        if (!created.ptr)
                return bad(errstr, errlen, ENV_MISSING_HEADER, "created-at");
        if (parse_decimal(created, 0, INT64_MAX / 2, &env->created_at_ms))
                return bad(errstr, errlen, ENV_BAD_HEADER, "created-at");
        if (status.ptr) {
                if (parse_decimal(status, 100, 599, &v))
                        return bad(errstr, errlen, ENV_BAD_HEADER, "status");
                env->status = (int)v;
        }
        if (env->correlation_id.ptr &&
            !msgid_parse(env->correlation_id.ptr, env->correlation_id.len, &id))
                return bad(errstr, errlen, ENV_BAD_HEADER, "correlation-id");
        if (env->reply_to.ptr) {
                char topic[256];
                int32_t part;
                if (env_parse_reply_to(env->reply_to, topic, sizeof(topic),
                                       &part))
                        return bad(errstr, errlen, ENV_BAD_HEADER, "reply-to");
        }

        if (env->content_type.ptr && !valid_media_type(env->content_type))
                return bad(errstr, errlen, ENV_BAD_HEADER, "content-type");

        if (!value.ptr || value.len == 0)
                return bad(errstr, errlen, ENV_BAD_VALUE, "(value)");
        return ENV_OK;
}

env_err_t env_unpack(const env_t *env, msgpack_zone *zone,
                     msgpack_object *obj) {
        size_t off = 0;
        msgpack_unpack_return ret;
        if (codec_msgpack_check(env->value) != CODEC_OK)
                return ENV_BAD_VALUE;
        ret = msgpack_unpack(env->value.ptr, env->value.len, &off, zone, obj);
        if (ret != MSGPACK_UNPACK_SUCCESS || off != env->value.len ||
            obj->type != MSGPACK_OBJECT_MAP)
                return ENV_BAD_VALUE;
        return ENV_OK;
}

env_err_t env_decode(const rd_kafka_message_t *msg, env_t *env, char *errstr,
                     size_t errlen) {
        rd_kafka_headers_t *hdrs = NULL;
        if (rd_kafka_message_headers(msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
                hdrs = NULL;
        return env_decode_headers(hdrs, (slice_t){msg->key, msg->key_len},
                                  (slice_t){msg->payload, msg->len}, env,
                                  errstr, errlen);
}

static void add(rd_kafka_headers_t *h, const char *name, slice_t v) {
        if (v.ptr && v.len)
                rd_kafka_header_add(h, name, -1, v.ptr, (ssize_t)v.len);
}

static void add_int(rd_kafka_headers_t *h, const char *name, int64_t v) {
        char buf[24];
        int n = snprintf(buf, sizeof(buf), "%lld", (long long)v);
        rd_kafka_header_add(h, name, -1, buf, n);
}

rd_kafka_headers_t *env_headers(const env_t *env) {
        rd_kafka_headers_t *h = rd_kafka_headers_new(12);
        add(h, "id", env->id);
        add(h, "type", env->type);
        add_int(h, "schema-version",
                env->schema_version > 0 ? env->schema_version : 1);
        add_int(h, "created-at", env->created_at_ms);
        add(h, "correlation-id", env->correlation_id);
        add(h, "reply-to", env->reply_to);
        add(h, "tenant", env->tenant);
        add(h, "user", env->user);
        add(h, "roles", env->roles);
        add(h, "session", env->session);
        add(h, "terms-version", env->terms_version);
        add(h, "client-ip", env->client_ip);
        add(h, "user-agent", env->user_agent);
        add(h, "traceparent", env->traceparent);
        add(h, "idempotency-key", env->idempotency_key);
        if (env->status)
                add_int(h, "status", env->status);
        add(h, "error", env->error);
        add(h, "content-type", env->content_type);
        return h;
}

int env_parse_reply_to(slice_t reply_to, char *topic, size_t topic_size,
                       int32_t *partition) {
        const char *colon = NULL;
        int64_t p;
        for (size_t i = reply_to.len; i > 0; i--) {
                if (reply_to.ptr[i - 1] == ':') {
                        colon = reply_to.ptr + i - 1;
                        break;
                }
        }
        if (!colon || colon == reply_to.ptr)
                return -1;
        size_t tlen = (size_t)(colon - reply_to.ptr);
        if (tlen >= topic_size || tlen > 249)
                return -1;
        for (size_t i = 0; i < tlen; i++) {
                char c = reply_to.ptr[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                      c == '-'))
                        return -1;
        }
        if (parse_decimal((slice_t){colon + 1, reply_to.len - tlen - 1}, 0,
                          100000, &p))
                return -1;
        memcpy(topic, reply_to.ptr, tlen);
        topic[tlen] = '\0';
        *partition = (int32_t)p;
        return 0;
}
