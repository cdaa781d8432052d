/*
 * alloc.c - the one allocation wrapper (see alloc.h).
 */
#include "alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long fail_after = -1;

static void oom(size_t size) {
        fprintf(stderr,
                "{\"level\":\"error\",\"msg\":\"out of memory allocating %zu "
                "bytes\"}\n",
                size);
        abort();
}

void *xmalloc(size_t size) {
        void *p = malloc(size ? size : 1);
        if (!p)
                oom(size);
        return p;
}

void *xcalloc(size_t n, size_t size) {
        void *p = calloc(n ? n : 1, size ? size : 1);
        if (!p)
                oom(n * size);
        return p;
}

void *xrealloc(void *ptr, size_t size) {
        void *p = realloc(ptr, size ? size : 1);
        if (!p)
                oom(size);
        return p;
}

char *xstrdup(const char *s) {
        return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t len) {
        char *p = xmalloc(len + 1);
        memcpy(p, s, len);
        p[len] = '\0';
        return p;
}

static int should_fail(void) {
        if (fail_after < 0)
                return 0;
        if (fail_after == 0)
                return 1;
        fail_after--;
        return 0;
}

void *try_malloc(size_t size) {
        if (should_fail())
                return NULL;
        return malloc(size ? size : 1);
}

void *try_realloc(void *ptr, size_t size) {
        if (should_fail())
                return NULL;
        return realloc(ptr, size ? size : 1);
}

void alloc_fail_after(long n) {
        fail_after = n;
}
