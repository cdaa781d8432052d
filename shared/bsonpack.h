/*
 * bsonpack.h - a store document as a msgpack value, for replies.
 *
 * Strings, integers, doubles (a non-finite one as nil: JSON has none),
 * booleans, nested documents and arrays; dates as Unix ms or as RFC 3339
 * text; any other BSON type as nil. At the top level only, the keys listed
 * in skip are left out, and empty strings too when asked (the documents of
 * some groups store "" for an absent optional field).
 *
 * Thread-safety: pure functions.
 */
#ifndef OMNIFY_BSONPACK_H
#define OMNIFY_BSONPACK_H

#include <bson/bson.h>
#include <msgpack.h>
#include <stdbool.h>

typedef struct bsonpack_opts {
        const char *const *skip; /* NULL-terminated; NULL: none */
        bool skip_empty;         /* top-level "" strings left out */
        bool dates_as_text;      /* "2026-12-06T17:30:00Z", else ms */
} bsonpack_opts_t;

/* doc as one msgpack map (opts may be NULL: nothing skipped, dates as ms). */
void bsonpack_doc(msgpack_packer *pk, const bson_t *doc,
                  const bsonpack_opts_t *opts);

#endif
