/*
 * csv.c - rows as CSV (see analytics_internal.h): the metrics route and
 * report results answer the same rows they answer as JSON.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "analytics_internal.h"

typedef struct csv {
        char *p;
        size_t len, cap;
} csv_t;

static void csv__put(csv_t *c, const char *s, size_t n) {
        if (c->len + n + 1 > c->cap) {
                while (c->len + n + 1 > c->cap)
                        c->cap = c->cap ? c->cap * 2 : 4096;
                c->p = xrealloc(c->p, c->cap);
        }
        if (n) /* s may be NULL when n is 0 */
                memcpy(c->p + c->len, s, n);
        c->len += n;
        c->p[c->len] = '\0';
}

static void csv__text(csv_t *c, const char *s, size_t n) {
        bool quote = false;
        for (size_t i = 0; i < n; i++)
                quote = quote || s[i] == ',' || s[i] == '"' || s[i] == '\r' ||
                        s[i] == '\n';
        if (quote)
                csv__put(c, "\"", 1);
        if (n && (*s == '=' || *s == '+' || *s == '-' || *s == '@'))
                csv__put(c, "'", 1);
        for (size_t i = 0; i < n; i++) {
                if (s[i] == '"')
                        csv__put(c, "\"", 1);
                csv__put(c, s + i, 1);
        }
        if (quote)
                csv__put(c, "\"", 1);
}

static void csv__value(csv_t *c, const msgpack_object *v) {
        char buf[64];
        int n = 0;
        if (!v)
                return;
        switch (v->type) {
        case MSGPACK_OBJECT_STR:
                csv__text(c, v->via.str.ptr, v->via.str.size);
                return;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
                n = snprintf(buf, sizeof(buf), "%" PRIu64, v->via.u64);
                break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
                n = snprintf(buf, sizeof(buf), "%" PRId64, v->via.i64);
                break;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
                n = snprintf(buf, sizeof(buf), "%.10g", v->via.f64);
                break;
        case MSGPACK_OBJECT_BOOLEAN:
                n = snprintf(buf, sizeof(buf), "%s",
                             v->via.boolean ? "true" : "false");
                break;
        default:
                return;
        }
        csv__put(c, buf, (size_t)n);
}

char *csv_of_rows(const char *const *columns, size_t n_columns, slice_t rows,
                  size_t *len) {
        msgpack_zone zone;
        msgpack_object obj;
        size_t off = 0;
        csv_t c = {NULL, 0, 0};
        msgpack_zone_init(&zone, 4096);
        if (msgpack_unpack(rows.ptr, rows.len, &off, &zone, &obj) !=
                    MSGPACK_UNPACK_SUCCESS ||
            obj.type != MSGPACK_OBJECT_ARRAY) {
                msgpack_zone_destroy(&zone);
                return NULL;
        }
        for (size_t k = 0; k < n_columns; k++) {
                if (k)
                        csv__put(&c, ",", 1);
                csv__text(&c, columns[k], strlen(columns[k]));
        }
        csv__put(&c, "\r\n", 2);
        for (uint32_t i = 0; i < obj.via.array.size; i++) {
                const msgpack_object *row = &obj.via.array.ptr[i];
                for (size_t k = 0; k < n_columns; k++) {
                        if (k)
                                csv__put(&c, ",", 1);
                        csv__value(&c, codec_map_get(row, columns[k]));
                }
                csv__put(&c, "\r\n", 2);
        }
        msgpack_zone_destroy(&zone);
        *len = c.len;
        return c.p;
}

void csv_reply(rt_ctx_t *ctx, const char *const *columns, size_t n_columns,
               slice_t rows) {
        size_t len = 0;
        char *text = csv_of_rows(columns, n_columns, rows, &len);
        if (!text) {
                rt_reply_problem(ctx, 500, "Internal error",
                                 "the rows could not be read");
                return;
        }
        rt_reply_bytes(ctx, 200, "text/csv; charset=utf-8", text, len);
        free(text);
}

bool csv_wanted(const msgpack_object *body) {
        slice_t accept = mp_str(body, "accept");
        for (size_t i = 0; i + 8 <= accept.len; i++)
                if (strncasecmp(accept.ptr + i, "text/csv", 8) == 0)
                        return true;
        return false;
}
