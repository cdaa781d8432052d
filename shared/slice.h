/*
 * slice.h - bytes as (ptr, len).
 *
 * Nothing that comes from outside is assumed to be NUL-terminated; it travels
 * as a slice. A slice never owns its bytes.
 */
#ifndef OMNIFY_SLICE_H
#define OMNIFY_SLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

typedef struct slice {
        const char *ptr;
        size_t len;
} slice_t;

#define SLICE_NULL ((slice_t){NULL, 0})

static inline slice_t slice_of(const char *s) {
        return (slice_t){s, s ? strlen(s) : 0};
}

static inline bool slice_eq(slice_t a, const char *s) {
        size_t n = strlen(s);
        return a.len == n && (n == 0 || memcmp(a.ptr, s, n) == 0);
}

static inline bool slice_empty(slice_t a) {
        return a.len == 0;
}

#endif
