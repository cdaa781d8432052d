/*
 * fuzz_util.c - helpers shared by the fuzz targets (see fuzz_util.h).
 */
#include "fuzz_util.h"

#include <dirent.h>
#include <string.h>

#ifndef OMNIFY_SOURCE_DIR
#error "OMNIFY_SOURCE_DIR must name the source tree"
#endif

#define FUZZ_MAX_SCHEMA_FILES 64

bool fuzz_utf8_valid(const char *s, size_t len) {
        const unsigned char *p = (const unsigned char *)s;
        size_t i = 0;

        while (i < len) {
                unsigned char c = p[i];
                unsigned lo = 0x80, hi = 0xBF;
                size_t need;

                if (c < 0x80) {
                        i++;
                        continue;
                }
                if (c >= 0xC2 && c <= 0xDF)
                        need = 1;
                else if (c >= 0xE0 && c <= 0xEF)
                        need = 2;
                else if (c >= 0xF0 && c <= 0xF4)
                        need = 3;
                else
                        return false;
                if (c == 0xE0)
                        lo = 0xA0;
                else if (c == 0xED)
                        hi = 0x9F;
                else if (c == 0xF0)
                        lo = 0x90;
                else if (c == 0xF4)
                        hi = 0x8F;
                if (len - i <= need)
                        return false;
                if (p[i + 1] < lo || p[i + 1] > hi)
                        return false;
                for (size_t k = 2; k <= need; k++)
                        if ((p[i + k] & 0xC0) != 0x80)
                                return false;
                i += need + 1;
        }
        return true;
}

/* ------------------------------------------------------------------------
 * Schema sets
 * ------------------------------------------------------------------------ */

static char *read_file(const char *path, size_t *len) {
        FILE *f = fopen(path, "rb");
        char *text = NULL;
        long size;

        if (!f)
                return NULL;
        if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 &&
            fseek(f, 0, SEEK_SET) == 0) {
                text = malloc((size_t)size + 1);
                if (text && fread(text, 1, (size_t)size, f) != (size_t)size) {
                        free(text);
                        text = NULL;
                }
                if (text) {
                        text[size] = '\0';
                        *len = (size_t)size;
                }
        }
        fclose(f);
        return text;
}

static int cmp_names(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static schema_set_t *load_or_die(const schema_source_t *src, size_t n) {
        schema_set_t *set = NULL;
        char err[512];

        if (schema_set_load(&set, src, n, err, sizeof(err)) != SCHEMA_OK) {
                fprintf(stderr, "fuzz: schemas do not load: %s\n", err);
                abort();
        }
        return set;
}

schema_set_t *fuzz_schemas_real(void) {
        const char *dir_path = OMNIFY_SOURCE_DIR "/schemas";
        char *names[FUZZ_MAX_SCHEMA_FILES];
        schema_source_t src[FUZZ_MAX_SCHEMA_FILES];
        size_t n = 0;
        schema_set_t *set;
        struct dirent *de;
        DIR *dir = opendir(dir_path);

        if (!dir) {
                fprintf(stderr, "fuzz: cannot open %s\n", dir_path);
                abort();
        }
        while ((de = readdir(dir)) != NULL) {
                size_t len = strlen(de->d_name);
                if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0 ||
                    strcmp(de->d_name, "topics.json") == 0)
                        continue;
                FUZZ_CHECK(n < FUZZ_MAX_SCHEMA_FILES);
                names[n] = strdup(de->d_name);
                FUZZ_CHECK(names[n] != NULL);
                n++;
        }
        closedir(dir);
        FUZZ_CHECK(n > 0);
        qsort(names, n, sizeof(names[0]), cmp_names);

        for (size_t i = 0; i < n; i++) {
                char path[1024];
                snprintf(path, sizeof(path), "%s/%s", dir_path, names[i]);
                src[i].name = names[i];
                src[i].text = read_file(path, &src[i].len);
                if (!src[i].text) {
                        fprintf(stderr, "fuzz: cannot read %s\n", path);
                        abort();
                }
        }
        set = load_or_die(src, n);
        /* The set keeps copies of what it needs: names and texts go. */
        for (size_t i = 0; i < n; i++) {
                free((char *)src[i].text);
                free(names[i]);
        }
        return set;
}

#define STR_FIELD(name) "\"" name "\":{\"type\":\"string\"}"
#define ROUTE(method, path)                                     \
        "\"route\":{\"method\":\"" method "\",\"path\":\"" path \
        "\",\"auth\":false,\"mode\":\"sync\"}"
#define MSG(type, route, fields)                                           \
        "{\"type\":\"fz." type "\",\"version\":1,\"summary\":\"s\"," route \
        ",\"fields\":{" fields "}}"

/* clang-format off */
static const char synthetic_json[] =
        "{\"group\":\"fz\",\"messages\":["
        MSG("get", ROUTE("GET", "/api/fz/items/{id}"), STR_FIELD("id")) ","
        MSG("del", ROUTE("DELETE", "/api/fz/items/{id}"), STR_FIELD("id")) ","
        MSG("new", ROUTE("GET", "/api/fz/items/new"), "") ","
        MSG("list", ROUTE("GET", "/api/fz/items"), "") ","
        MSG("create", ROUTE("POST", "/api/fz/items"), STR_FIELD("name")) ","
        MSG("part", ROUTE("GET", "/api/fz/items/{id}/parts/{part}"),
            STR_FIELD("part") "," STR_FIELD("id")) ","
        MSG("lit_first", ROUTE("PUT", "/api/fz/a/lit/{y}"), STR_FIELD("y")) ","
        MSG("param_first", ROUTE("PUT", "/api/fz/a/{x}/b"), STR_FIELD("x")) ","
        MSG("eight", ROUTE("PATCH", "/api/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}"),
            STR_FIELD("a") "," STR_FIELD("b") "," STR_FIELD("c") ","
            STR_FIELD("d") "," STR_FIELD("e") "," STR_FIELD("f") ","
            STR_FIELD("g") "," STR_FIELD("h")) ","
        MSG("long", ROUTE("GET", "/api/fz/1/2/3/4/5/6/7/8/9/10/11/12/13/14"),
            "") ","
        MSG("kinds", ROUTE("POST", "/api/fz/kinds"),
            "\"s\":{\"type\":\"string\",\"required\":true,"
                   "\"min_length\":1,\"max_length\":16},"
            "\"e\":{\"type\":\"string\",\"enum\":[\"a\",\"bb\",\"\\u00e9\"]},"
            "\"em\":{\"type\":\"string\",\"format\":\"email\"},"
            "\"u\":{\"type\":\"string\",\"format\":\"uuid\"},"
            "\"dt\":{\"type\":\"string\",\"format\":\"date-time\"},"
            "\"p\":{\"type\":\"string\",\"secret\":true,\"max_length\":128},"
            "\"i\":{\"type\":\"integer\",\"minimum\":-5,\"maximum\":100},"
            "\"big\":{\"type\":\"integer\",\"minimum\":-9007199254740992,"
                     "\"maximum\":9007199254740992},"
            "\"n\":{\"type\":\"number\",\"minimum\":-1.5,\"maximum\":2.5},"
            "\"b\":{\"type\":\"boolean\",\"required\":true},"
            "\"o\":{\"type\":\"object\"},"
            "\"a\":{\"type\":\"array\",\"min_length\":1,\"max_length\":4}") ","
        /* The nested shapes: objects in arrays in objects, to the depth
         * bound, with every kind of leaf, formats date and uri, binary. */
        MSG("nested", ROUTE("POST", "/api/fz/nested/{id}"),
            "\"id\":{\"type\":\"integer\"},"
            "\"q\":{\"type\":\"array\",\"in\":\"query\",\"items\":"
                   "{\"type\":\"string\"}},"
            "\"steps\":{\"type\":\"array\",\"max_length\":8,\"items\":{"
              "\"type\":\"object\",\"fields\":{"
              "\"name\":{\"type\":\"string\",\"required\":true,"
                        "\"max_length\":8},"
              "\"at\":{\"type\":\"string\",\"format\":\"date\"},"
              "\"url\":{\"type\":\"string\",\"format\":\"uri\"},"
              "\"retry\":{\"type\":\"object\",\"additional\":true,"
                "\"fields\":{\"max\":{\"type\":\"integer\",\"minimum\":0,"
                                    "\"maximum\":9,\"default\":3},"
                "\"l\":{\"type\":\"array\",\"items\":{\"type\":\"array\","
                  "\"items\":{\"type\":\"object\",\"fields\":{\"d\":{"
                    "\"type\":\"object\",\"fields\":{\"e\":{"
                      "\"type\":\"number\"}}}}}}}}}}}},"
            "\"any\":{\"type\":\"object\"},"
            "\"list\":{\"type\":\"array\"}") ","
        MSG("raw", "\"route\":{\"method\":\"POST\",\"path\":"
                   "\"/api/fz/raw\",\"auth\":false,\"mode\":\"sync\","
                   "\"raw_body\":\"body\"}",
            "\"body\":{\"type\":\"binary\",\"max_length\":64}") ","
        "{\"type\":\"fz.open\",\"version\":2,\"summary\":\"s\","
        "\"additional\":true,\"fields\":{"
            "\"n\":{\"type\":\"number\"},\"o\":{\"type\":\"object\"}}}"
        "]}";
/* clang-format on */

schema_set_t *fuzz_schemas_synthetic(void) {
        schema_source_t src = {"fz.json", synthetic_json,
                               sizeof(synthetic_json) - 1};

        return load_or_die(&src, 1);
}
