/*
 * codec.h - JSON <-> msgpack.
 *
 * The edge turns request bodies into msgpack values for Kafka and reply
 * values back into JSON. JSON is parsed with jansson; msgpack is written with
 * msgpack-c's packer into an sbuffer. Both directions bound nesting depth so
 * hostile input cannot exhaust the stack.
 */
#ifndef OMNIFY_CODEC_H
#define OMNIFY_CODEC_H

#include <msgpack.h>
#include <stddef.h>

#include "schema.h"
#include "slice.h"

#define CODEC_MAX_DEPTH 32

#define CODEC_ERRORS(X)                                                     \
        X(CODEC_OK, "ok")                                                   \
        X(CODEC_BAD_JSON, "body is not valid JSON")                         \
        X(CODEC_NOT_OBJECT, "body must be a JSON object")                   \
        X(CODEC_TOO_DEEP, "body nests too deeply")                          \
        X(CODEC_CONFLICT, "a field is given both in the path and the body") \
        X(CODEC_BAD_MSGPACK, "value is not valid msgpack")                  \
        X(CODEC_NO_MEMORY, "out of memory")

typedef enum codec_err {
#define X(name, msg) name,
        CODEC_ERRORS(X)
#undef X
} codec_err_t;

const char *codec_strerror(codec_err_t err);

/*
 * Parse a JSON body (json may be empty: treated as {}) and append it to out as
 * one msgpack map, adding the path params as string fields. Integers become
 * msgpack ints, reals become float64, strings str, null nil. Fills errstr
 * with the reason (and for CODEC_BAD_JSON the line and column) on error.
 * out must be initialised by the caller (msgpack_sbuffer_init).
 */
codec_err_t codec_json_to_msgpack(slice_t json, const schema_params_t *params,
                                  msgpack_sbuffer *out, char *errstr,
                                  size_t errlen);

/*
 * Render msgpack bytes (exactly one object) as compact JSON into a new
 * NUL-terminated string (*out, caller frees with free(); *out_len its length).
 * Maps with non-string keys have them rendered as strings, bin as base64
 * strings, ext as null. Invalid or trailing bytes give CODEC_BAD_MSGPACK.
 */
codec_err_t codec_msgpack_to_json(slice_t mp, char **out, size_t *out_len);

/*
 * Check that mp is exactly one msgpack object, nested at most
 * CODEC_MAX_DEPTH deep, whose container counts fit in the bytes given: a
 * cheap walk that allocates nothing, to run before msgpack-c unpacks input
 * (which would otherwise allocate for whatever count a header claims).
 */
codec_err_t codec_msgpack_check(slice_t mp);

/* Helpers for handlers: look up a key in a msgpack map. NULL if absent or if
 * obj is not a map. */
const msgpack_object *codec_map_get(const msgpack_object *obj, const char *key);

/* The string value of key as a slice; SLICE_NULL if absent or not a string. */
slice_t codec_map_str(const msgpack_object *obj, const char *key);

/* Pack a NUL-terminated string / a slice as a msgpack str (a NULL string
 * packs nil). Packing errors are the sbuffer's and are not reported. */
void codec_pack_str(msgpack_packer *pk, const char *s);
void codec_pack_slice(msgpack_packer *pk, slice_t s);

#endif
