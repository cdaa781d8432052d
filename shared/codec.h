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
        X(CODEC_BAD_PARAM, "a parameter or field is invalid")               \
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

/* ------------------------------------------------------------------------
 * Requests to commands (codec_request.c)
 * ------------------------------------------------------------------------ */

/* One query parameter as the client sent it, percent-decoded; repeated
 * names come as several entries, in order. */
typedef struct codec_kv {
        slice_t name;
        slice_t value;
} codec_kv_t;

/* The value of an HTTP header (name matched case-insensitively), or
 * SLICE_NULL when the request has none. */
typedef slice_t (*codec_header_fn)(void *ctx, const char *name);

/* What the edge read of a request, for codec_request_to_msgpack. */
typedef struct codec_request {
        slice_t body;                /* JSON, or the raw body (raw_body) */
        const schema_params_t *path; /* from schema_route_match, or NULL */
        const codec_kv_t *query;     /* the query parameters, or NULL */
        size_t n_query;
        codec_header_fn header; /* NULL: no header is read */
        void *header_ctx;
} codec_request_t;

/*
 * Build the command msg takes from a request, as one msgpack map appended
 * to out (initialised by the caller), ready for schema_validate:
 * - the body: for a route with raw_body, its bytes as a bin field of that
 *   name, whatever they are; otherwise a JSON object (empty: {}), whose keys
 *   must not name a field declared in the path, query or a header;
 * - path, query and header fields: the text converted to the declared type
 *   (integer, number, boolean "true"/"false", string; a query array from a
 *   repeated parameter, or from one comma-separated value);
 * - integral JSON reals given for integer fields, packed as integers (JSON
 *   Schema counts 2.0 as an integer);
 * - the "default" of every absent field, at every level of the body.
 * A value that does not convert, an undeclared query parameter, a scalar
 * parameter given twice, or a body key that belongs elsewhere is reported
 * in report naming the parameter (the header's name for headers), and
 * CODEC_BAD_PARAM is returned: answer 400 with the report. Unreadable JSON
 * gives CODEC_BAD_JSON, CODEC_TOO_DEEP or CODEC_NOT_OBJECT with errstr.
 * On any error out is left as given. Runs on the edge's HTTP threads; it
 * allocates per call and keeps nothing.
 */
codec_err_t codec_request_to_msgpack(const schema_msg_t *msg,
                                     const codec_request_t *request,
                                     msgpack_sbuffer *out,
                                     schema_report_t *report, char *errstr,
                                     size_t errlen);

/* Pack one jansson value (a json_t) as msgpack: objects as maps, integers
 * as ints, reals as float64, nesting bounded by CODEC_MAX_DEPTH
 * (CODEC_TOO_DEEP). Used by the schema loader for defaults. */
struct json_t;
codec_err_t codec_pack_json(msgpack_packer *pk, const struct json_t *value);

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

/*
 * Length of the UTF-8 sequence at p (len > 0 bytes left): *valid says
 * whether it is well formed (no overlong form, no surrogate, nothing above
 * U+10FFFF). An ill-formed one covers its maximal valid prefix, so each
 * gets exactly one U+FFFD when replaced (the Unicode "maximal subpart"
 * practice).
 */
size_t codec_utf8_next(const unsigned char *p, size_t len, bool *valid);

/* Pack a NUL-terminated string / a slice as a msgpack str (a NULL string
 * packs nil). Packing errors are the sbuffer's and are not reported. */
void codec_pack_str(msgpack_packer *pk, const char *s);
void codec_pack_slice(msgpack_packer *pk, slice_t s);

#endif
