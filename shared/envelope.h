/*
 * envelope.h - the message envelope: Kafka record headers plus a msgpack value.
 *
 * Metadata travels in record headers with plain-text values so any Kafka tool
 * can read them; the value is a msgpack map. env_t only points into memory it
 * does not own (a consumed rd_kafka_message_t, or the caller's buffers).
 *
 * Header          Value
 * id              message id, UUIDv7 text (required)
 * type            message type, e.g. "auth.signup" (required)
 * schema-version  decimal integer >= 1 (required)
 * created-at      decimal Unix milliseconds (required)
 * correlation-id  id of the request this belongs to
 * reply-to        "<topic>:<partition>" where the reply goes
 * tenant, user    set by the edge from a checked token, never by clients
 * roles           the user's role in the tenant (from the token)
 * session         the session id of the token (sid)
 * terms-version   the version of the terms the user had accepted (tv)
 * client-ip       the client's address as the edge saw it
 * user-agent      the client's User-Agent, at most 256 bytes
 * traceparent     W3C trace context
 * idempotency-key the client's Idempotency-Key
 * status          replies: HTTP-like status 100..599
 * content-type    replies: the media type of a value that is not msgpack
 *                 (the bytes are the answer as they are, e.g. text/csv)
 * error           dead letters: why the message failed
 */
#ifndef OMNIFY_ENVELOPE_H
#define OMNIFY_ENVELOPE_H

#include <librdkafka/rdkafka.h>
#include <msgpack.h>
#include <stdint.h>

#include "slice.h"

#define ENV_ERRORS(X)                                         \
        X(ENV_OK, "ok")                                       \
        X(ENV_MISSING_HEADER, "a required header is missing") \
        X(ENV_BAD_HEADER, "a header value is malformed")      \
        X(ENV_BAD_VALUE, "the value is not a msgpack map")

typedef enum env_err {
#define X(name, msg) name,
        ENV_ERRORS(X)
#undef X
} env_err_t;

const char *env_strerror(env_err_t err);

typedef struct env {
        slice_t id;
        slice_t type;
        int schema_version;
        int64_t created_at_ms;
        slice_t correlation_id;
        slice_t reply_to;
        slice_t tenant;
        slice_t user;
        slice_t roles;
        slice_t session;
        slice_t terms_version;
        slice_t client_ip;
        slice_t user_agent;
        slice_t traceparent;
        slice_t idempotency_key;
        int status;           /* 0 when absent */
        slice_t content_type; /* a media type "type/subtype[; params]" of
                               * visible ASCII; empty: a msgpack value */
        slice_t error;
        slice_t key;   /* the record key */
        slice_t value; /* msgpack bytes, or the bytes of content_type */
} env_t;

/*
 * Decode a consumed record into env (pointing into msg, which must outlive
 * it). Checks presence and shape of every header it knows and that a value is
 * there (any bytes when content-type is set, the answer as it is);
 * env_unpack() checks a msgpack value itself. On error, errstr names the
 * header.
 */
env_err_t env_decode(const rd_kafka_message_t *msg, env_t *env, char *errstr,
                     size_t errlen);

/* Same checks on headers already extracted (used by env_decode and tests). */
env_err_t env_decode_headers(const rd_kafka_headers_t *hdrs, slice_t key,
                             slice_t value, env_t *env, char *errstr,
                             size_t errlen);

/* Unpack env->value into obj (allocated in zone): exactly one msgpack map, no
 * trailing bytes, or ENV_BAD_VALUE. */
env_err_t env_unpack(const env_t *env, msgpack_zone *zone, msgpack_object *obj);

/*
 * Build record headers for env: every non-empty field becomes a header.
 * Returns a new header list the caller owns (or hands to rd_kafka_producev
 * with RD_KAFKA_V_HEADERS, which takes ownership on success).
 */
rd_kafka_headers_t *env_headers(const env_t *env);

/* Parse a reply-to value "<topic>:<partition>". Returns 0 or -1. */
int env_parse_reply_to(slice_t reply_to, char *topic, size_t topic_size,
                       int32_t *partition);

#endif
