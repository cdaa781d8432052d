/*
 * schemacheck.c - omnify-schemacheck [--topics TOPICS] FILE...: check schema
 * files together.
 *
 * The build runs this over every schemas/<name>.json but topics.json before it
 * embeds them, so a typo in a schema fails the build with the file and the
 * JSON path to fix instead of failing a service at start-up. The files are
 * loaded together, exactly as the binaries load the embedded copies, so
 * duplicate types and routes, and references across files (facts, streams,
 * events), are caught too. With --topics, every group's topics and every
 * stream's topic must be declared in that file (schemas/topics.json). Each
 * file is named by its basename, as in the embedded sources.
 */
#include <errno.h>
#include <jansson.h>
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

/* The topic names of topics.json ({"topics": [{"name": ...}]}); 0 or -1
 * with errstr. */
static int load_topics(const char *path, json_t **root, const char ***names,
                       size_t *n, char *errstr, size_t errlen) {
        json_error_t jerr;
        json_t *list, *t;
        size_t i;

        *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (!*root) {
                snprintf(errstr, errlen, "%s: line %d: %s", base_name(path),
                         jerr.line, jerr.text);
                return -1;
        }
        list = json_object_get(*root, "topics");
        if (!json_is_array(list)) {
                snprintf(errstr, errlen, "%s: topics: must be an array",
                         base_name(path));
                return -1;
        }
        *names = xcalloc(json_array_size(list) + 1, sizeof(char *));
        json_array_foreach(list, i, t) {
                const char *name =
                        json_string_value(json_object_get(t, "name"));
                if (!name) {
                        snprintf(errstr, errlen,
                                 "%s: topics[%zu].name: must be a string",
                                 base_name(path), i);
                        return -1;
                }
                (*names)[(*n)++] = name;
        }
        return 0;
}

int main(int argc, char **argv) {
        schema_source_t *sources;
        schema_set_t *set = NULL;
        size_t n = 0, routes = 0, n_topics = 0;
        const char **topics = NULL;
        const char *topics_path = NULL;
        json_t *topics_root = NULL;
        char errstr[512];
        int status = 1, first = 1;

        if (argc > 2 && strcmp(argv[1], "--topics") == 0) {
                topics_path = argv[2];
                first = 3;
        }
        if (argc <= first) {
                fprintf(stderr, "usage: omnify-schemacheck [--topics TOPICS] "
                                "FILE...\n");
                return 2;
        }
        sources = xcalloc((size_t)argc, sizeof(*sources));
        for (int i = first; i < argc; i++) {
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
        if (topics_path &&
            (load_topics(topics_path, &topics_root, &topics, &n_topics, errstr,
                         sizeof(errstr)) != 0 ||
             schema_set_check_topics(set, topics, n_topics, errstr,
                                     sizeof(errstr)) != SCHEMA_OK)) {
                fprintf(stderr, "%s\n", errstr);
                goto out;
        }
        for (size_t i = 0; i < schema_set_count(set); i++)
                if (schema_set_at(set, i)->route.method)
                        routes++;
        printf("schemas ok: %zu messages, %zu routes, %zu events, %zu "
               "facts\n",
               schema_set_count(set), routes, schema_event_count(set),
               schema_fact_count(set));
        status = 0;

out:
        free(topics);
        json_decref(topics_root);
        schema_set_destroy(set);
        for (size_t i = 0; i < n; i++)
                free((char *)sources[i].text);
        free(sources);
        return status;
}
