/*
 * arena.h - per-request memory, freed in one go.
 *
 * The edge gives each request an arena; everything the request needs lives
 * there and is released with arena_destroy() when the request ends. Not
 * thread-safe: one arena belongs to one request at a time.
 */
#ifndef OMNIFY_ARENA_H
#define OMNIFY_ARENA_H

#include <stddef.h>

typedef struct arena arena_t;

/* A new arena whose first chunk holds `first` bytes. Aborts on OOM. */
arena_t *arena_new(size_t first);

/* Free every allocation of the arena and the arena. Accepts NULL. */
void arena_destroy(arena_t *a);

/* size bytes aligned for any type, or NULL when size comes from input and
 * the allocation fails (never aborts for large sizes). */
void *arena_alloc(arena_t *a, size_t size);

/* A NUL-terminated copy of (s, len) in the arena, or NULL. */
char *arena_strndup(arena_t *a, const char *s, size_t len);

/* Bytes handed out so far (for limits and metrics). */
size_t arena_used(const arena_t *a);

#endif
