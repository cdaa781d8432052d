/*
 * alloc.h - the one allocation wrapper.
 *
 * Tiny internal allocations (structs, short strings) go through xmalloc and
 * friends, which abort on out-of-memory: there is no sensible recovery from
 * failing to allocate forty bytes. Sizes that come from input (request
 * bodies, Kafka messages) use try_malloc/try_realloc, which return NULL so the
 * caller can answer with an error. Tests can make the N-th try_* allocation
 * fail with alloc_fail_after().
 */
#ifndef OMNIFY_ALLOC_H
#define OMNIFY_ALLOC_H

#include <stddef.h>

/* Abort-on-OOM allocators for internal, bounded sizes. Never return NULL. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t len);

/* Fallible allocators for sizes that come from input. Return NULL on failure.
 */
void *try_malloc(size_t size);
void *try_realloc(void *ptr, size_t size);

/* Test hook: after n more successful try_* calls, every try_* fails until
 * alloc_fail_after(-1) resets it. Not thread-safe; tests only. */
void alloc_fail_after(long n);

#endif
