/*
 * fuzz_util.h - what the libFuzzer targets in tests/fuzz/ share.
 *
 * A check macro that aborts (libFuzzer reports an abort as a crash and saves
 * the input), a UTF-8 validator independent of the code under test, and the
 * two schema sets the targets run against: the real schemas/ files read from
 * the source tree (OMNIFY_SOURCE_DIR) and a small synthetic set that has
 * what the real files lack so far: {param} routes, literal and parameter
 * segments competing, every field type, format and limit.
 *
 * Everything here is for the fuzz targets only; none of it is thread-safe
 * and failures to set up abort.
 */
#ifndef OMNIFY_FUZZ_UTIL_H
#define OMNIFY_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "schema.h"

/* An invariant of the code under test failed: report it and crash. */
#define FUZZ_CHECK(cond)                                                       \
        do {                                                                   \
                if (!(cond)) {                                                 \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
                                __LINE__, #cond);                              \
                        abort();                                               \
                }                                                              \
        } while (0)

/* True when s[0..len) is well-formed UTF-8 (no surrogates, no overlongs). */
bool fuzz_utf8_valid(const char *s, size_t len);

/* The schemas/<group>.json files of the source tree (not topics.json), in
 * name order. Aborts if they do not load. The caller destroys the set. */
schema_set_t *fuzz_schemas_real(void);

/* The synthetic set described above. Aborts if it does not load. */
schema_set_t *fuzz_schemas_synthetic(void);

#endif
