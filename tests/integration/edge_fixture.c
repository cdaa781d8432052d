/*
 * edge_fixture.c - omnify-edge-fixture: the edge with a fixture group's
 * routes beside the real ones, for the integration tests of the edge's
 * route features (tests/integration/test_edge_routes.py).
 *
 *   omnify-edge-fixture SCHEMA.json [--SETTING=VALUE ...]
 *
 * The routes of tests/integration/fixtures/edge_fixture.json (query and
 * header parameters, a raw body, a CSV reply, a redirect, streams) exist
 * in no group's product schema; the test plays the group on Kafka. Every
 * other behaviour is omnify-edge's: this is edge_run with one more schema.
 */
#include <stdio.h>
#include <stdlib.h>

#include "edge.h"

int main(int argc, char **argv) {
        schema_source_t extra;
        FILE *f;
        char *text;
        long len;
        int status;

        if (argc < 2) {
                fprintf(stderr, "usage: %s SCHEMA.json [--SETTING=VALUE ...]\n",
                        argv[0]);
                return 2;
        }
        f = fopen(argv[1], "rb");
        if (!f || fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 ||
            fseek(f, 0, SEEK_SET)) {
                fprintf(stderr, "%s: cannot read %s\n", argv[0], argv[1]);
                if (f)
                        fclose(f);
                return 2;
        }
        text = malloc((size_t)len + 1);
        if (!text || fread(text, 1, (size_t)len, f) != (size_t)len) {
                fprintf(stderr, "%s: cannot read %s\n", argv[0], argv[1]);
                fclose(f);
                free(text);
                return 2;
        }
        fclose(f);
        text[len] = '\0';
        extra = (schema_source_t){"edge_fixture.json", text, (size_t)len};
        /* argv[1] is ours: the settings parser sees the rest. */
        argv[1] = argv[0];
        status = edge_run("omnify-edge-fixture", argc - 1, argv + 1, &extra, 1);
        free(text);
        return status;
}
