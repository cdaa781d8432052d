/*
 * arena.c - bump allocator over a chain of chunks (see arena.h).
 */
#include "arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

typedef struct chunk {
        struct chunk *next;
        size_t size, used;
        alignas(max_align_t) unsigned char data[];
} chunk_t;

struct arena {
        chunk_t *head;
        size_t used;
};

static chunk_t *chunk_new(size_t size) {
        chunk_t *c;
        if (size > SIZE_MAX - sizeof(chunk_t))
                return NULL;
        c = try_malloc(sizeof(chunk_t) + size);
        if (!c)
                return NULL;
        c->next = NULL;
        c->size = size;
        c->used = 0;
        return c;
}

arena_t *arena_new(size_t first) {
        arena_t *a = xmalloc(sizeof(*a));
        if (!first)
                first = 1024;
        /* The first chunk is sized by us, not by input: abort on OOM. */
        a->head = xmalloc(sizeof(chunk_t) + first);
        a->head->next = NULL;
        a->head->size = first;
        a->head->used = 0;
        a->used = 0;
        return a;
}

void arena_destroy(arena_t *a) {
        if (!a)
                return;
        for (chunk_t *c = a->head, *next; c; c = next) {
                next = c->next;
                free(c);
        }
        free(a);
}

void *arena_alloc(arena_t *a, size_t size) {
        const size_t align = alignof(max_align_t);
        chunk_t *c = a->head;
        size_t need;
        if (size > SIZE_MAX - align)
                return NULL;
        need = (size + align - 1) & ~(align - 1);
        if (c->size - c->used < need) {
                size_t grow = c->size * 2 > need ? c->size * 2 : need;
                chunk_t *n = chunk_new(grow);
                if (!n)
                        return NULL;
                n->next = c;
                a->head = n;
                c = n;
        }
        void *p = c->data + c->used;
        c->used += need;
        a->used += need;
        return p;
}

char *arena_strndup(arena_t *a, const char *s, size_t len) {
        char *p = len == SIZE_MAX ? NULL : arena_alloc(a, len + 1);
        if (!p)
                return NULL;
        memcpy(p, s, len);
        p[len] = '\0';
        return p;
}

size_t arena_used(const arena_t *a) {
        return a->used;
}
