/*
 * codec_internal.h - what the files of the codec share (not part of the
 * contract: callers use codec.h). codec.c converts JSON and msgpack;
 * codec_request.c builds a command from an HTTP request.
 */
#ifndef OMNIFY_CODEC_INTERNAL_H
#define OMNIFY_CODEC_INTERNAL_H

#include <jansson.h>

#include "codec.h"

/* Fill errstr (if any) with the formatted reason; returns err. */
codec_err_t codec__fail(codec_err_t err, char *errstr, size_t errlen,
                        const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Parse a request body into a new JSON object (*root; caller decrefs): an
 * empty or blank body is {}, nesting is bounded before parsing, duplicate
 * keys are refused, NUL inside strings is kept (validation refuses it by
 * field). CODEC_BAD_JSON, CODEC_TOO_DEEP, CODEC_NOT_OBJECT with errstr. */
codec_err_t codec__parse_object(slice_t json, json_t **root, char *errstr,
                                size_t errlen);

#endif
