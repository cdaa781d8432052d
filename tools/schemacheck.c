/*
 * schemacheck.c - omnify-schemacheck FILE...: check schema files together.
 *
 * The build runs this over every schemas/<name>.json but topics.json before it
 * embeds them, so a typo in a schema fails the build with the file and the
 * JSON path to fix instead of failing a service at start-up. The files are
 * loaded together, exactly as the binaries load the embedded copies, so
 * duplicate types and routes across files are caught too. Each file is named
 * by its basename, as in the embedded sources.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "schema.h"

/* Read a whole file into a new buffer (NUL-terminated). 0 or -1. */
static int read_file(const char *path, char **text, size_t *len) {
        FILE *f;
        char *buf = NULL;
        size_t used = 0, cap = 0;
        int rc = -1;

        f = fopen(path, "rb");
        if (!f)
                return -1;
        for (;;) {
                size_t n;
                if (cap - used < 4096 + 1) {
                        char *p;
                        cap = cap ? cap * 2 : 16384;
                        p = try_realloc(buf, cap);
                        if (!p) {
                                errno = ENOMEM;
                                goto out;
                        }
                        buf = p;
                }
                n = fread(buf + used, 1, cap - used - 1, f);
                used += n;
                if (n == 0) {
                        if (ferror(f))
                                goto out;
                        break;
                }
        }
        buf[used] = '\0';
        *text = buf;
        *len = used;
        buf = NULL;
        rc = 0;
out:
        free(buf);
        fclose(f);
        return rc;
}

static const char *base_name(const char *path) {
        const char *slash = strrchr(path, '/');

        return slash ? slash + 1 : path;
}

int main(int argc, char **argv) {
        schema_source_t *sources;
        schema_set_t *set = NULL;
        size_t n = 0, routes = 0;
        char errstr[512];
        int status = 1;

        if (argc < 2) {
                fprintf(stderr, "usage: omnify-schemacheck FILE...\n");
                return 2;
        }
        sources = xcalloc((size_t)argc - 1, sizeof(*sources));
        for (int i = 1; i < argc; i++) {
                char *text;
                size_t len;
                if (read_file(argv[i], &text, &len) != 0) {
                        fprintf(stderr, "omnify-schemacheck: %s: %s\n", argv[i],
                                strerror(errno));
                        goto out;
                }
                sources[n].name = base_name(argv[i]);
                sources[n].text = text;
                sources[n].len = len;
                n++;
        }

        if (schema_set_load(&set, sources, n, errstr, sizeof(errstr)) !=
            SCHEMA_OK) {
                fprintf(stderr, "%s\n", errstr);
                goto out;
        }
        for (size_t i = 0; i < schema_set_count(set); i++)
                if (schema_set_at(set, i)->route.method)
                        routes++;
        printf("schemas ok: %zu messages, %zu routes\n", schema_set_count(set),
               routes);
        status = 0;

out:
        schema_set_destroy(set);
        for (size_t i = 0; i < n; i++)
                free((char *)sources[i].text);
        free(sources);
        return status;
}
