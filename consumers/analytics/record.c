/*
 * record.c - how facts are written into projection documents and read back
 * (see analytics_internal.h): register texts, their escaping, ids and keys.
 *
 * A register text is "<observed ms>|<event id>|field|field...": the first
 * 16 characters are the observed time zero-padded, so comparing two texts
 * compares the versions of the fact first (then the event ids, which break
 * ties the same way everywhere). Fields are escaped so that no value can
 * contain a separator: '%', '|', ';', ',' and control characters become
 * %XX. A field that is itself a list (an order's touchpoints: ';'
 * between items, ',' between an item's values) is escaped twice: its
 * values when the list is built, the whole list when it is stored, so
 * rec_split gives back the list with its separators and rec_unescape each
 * value.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "analytics_internal.h"

void rec_init(rec_buf_t *b) {
        b->cap = 256;
        b->p = xmalloc(b->cap);
        b->len = 0;
        b->p[0] = '\0';
}

void rec_free(rec_buf_t *b) {
        free(b->p);
        b->p = NULL;
        b->len = b->cap = 0;
}

void rec_reset(rec_buf_t *b) {
        b->len = 0;
        b->p[0] = '\0';
}

static void rec__room(rec_buf_t *b, size_t more) {
        if (b->len + more + 1 <= b->cap)
                return;
        while (b->len + more + 1 > b->cap)
                b->cap *= 2;
        b->p = xrealloc(b->p, b->cap);
}

static void rec__put(rec_buf_t *b, const char *s, size_t n) {
        rec__room(b, n);
        if (n) /* s may be NULL when n is 0 */
                memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
}

void rec_raw(rec_buf_t *b, const char *s) {
        rec__put(b, s, strlen(s));
}

static bool rec__special(unsigned char c) {
        return c < 0x20 || c == 0x7f || c == '%' || c == '|' || c == ';' ||
               c == ',';
}

void rec_escape(rec_buf_t *b, slice_t s) {
        static const char hex[] = "0123456789ABCDEF";
        rec__room(b, s.len * 3);
        for (size_t i = 0; i < s.len; i++) {
                unsigned char c = (unsigned char)s.ptr[i];
                if (rec__special(c)) {
                        b->p[b->len++] = '%';
                        b->p[b->len++] = hex[c >> 4];
                        b->p[b->len++] = hex[c & 15];
                } else {
                        b->p[b->len++] = (char)c;
                }
        }
        b->p[b->len] = '\0';
}

void rec_ver(rec_buf_t *b, int64_t observed_ms, slice_t event_id) {
        char ms[17];
        uint64_t v = observed_ms < 0 ? 0 : (uint64_t)observed_ms;
        /* Zero-padded to 16 digits, so texts compare as the times do. */
        for (int i = 15; i >= 0; i--) {
                ms[i] = (char)('0' + v % 10);
                v /= 10;
        }
        ms[16] = '|';
        rec_reset(b);
        rec__put(b, ms, 17);
        rec_escape(b, event_id);
}

void rec_str(rec_buf_t *b, slice_t s) {
        rec__put(b, "|", 1);
        rec_escape(b, s);
}

void rec_int(rec_buf_t *b, int64_t v) {
        char buf[32];
        size_t i = sizeof(buf);
        uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        /* Digits from the end: snprintf is a tenth of a replay's time. */
        do {
                buf[--i] = (char)('0' + u % 10);
                u /= 10;
        } while (u);
        if (v < 0)
                buf[--i] = '-';
        buf[--i] = '|';
        rec__put(b, buf + i, sizeof(buf) - i);
}

void rec_num(rec_buf_t *b, double v) {
        char buf[40];
        int n;
        if (!isfinite(v))
                v = 0;
        /* Whole numbers (most conversion counts) as integers: the same
         * value, read back by strtod alike. */
        if (v == floor(v) && fabs(v) < 1e15) {
                rec_int(b, (int64_t)v);
                return;
        }
        n = snprintf(buf, sizeof(buf), "|%.17g", v);
        rec__put(b, buf, (size_t)n);
}

slice_t rec_slice(const rec_buf_t *b) {
        return (slice_t){b->p, b->len};
}

static int rec__hexval(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

bool rec_split(slice_t text, rec_fields_t *out) {
        size_t o = 0;
        out->n = 0;
        if (text.len >= sizeof(out->buf))
                return false;
        out->f[out->n++] = out->buf;
        for (size_t i = 0; i < text.len; i++) {
                char c = text.ptr[i];
                if (c == '|') {
                        out->buf[o++] = '\0';
                        if (out->n >= sizeof(out->f) / sizeof(out->f[0]))
                                return false;
                        out->f[out->n++] = out->buf + o;
                } else if (c == '%' && i + 2 < text.len &&
                           rec__hexval(text.ptr[i + 1]) >= 0 &&
                           rec__hexval(text.ptr[i + 2]) >= 0) {
                        out->buf[o++] =
                                (char)(rec__hexval(text.ptr[i + 1]) * 16 +
                                       rec__hexval(text.ptr[i + 2]));
                        i += 2;
                } else {
                        out->buf[o++] = c;
                }
        }
        out->buf[o] = '\0';
        return true;
}

void rec_unescape(char *s) {
        char *o = s;
        for (const char *p = s; *p; p++) {
                if (p[0] == '%' && rec__hexval(p[1]) >= 0 &&
                    rec__hexval(p[2]) >= 0) {
                        *o++ = (char)(rec__hexval(p[1]) * 16 +
                                      rec__hexval(p[2]));
                        p += 2;
                } else {
                        *o++ = *p;
                }
        }
        *o = '\0';
}

int64_t rec_atoi(const char *s) {
        return s ? strtoll(s, NULL, 10) : 0;
}

double rec_atof(const char *s) {
        return s ? strtod(s, NULL) : 0;
}

void rec_key(slice_t id, char out[17]) {
        static const char hex[] = "0123456789abcdef";
        uint64_t h = 14695981039346656037ULL;
        for (size_t i = 0; i < id.len; i++)
                h = (h ^ (unsigned char)id.ptr[i]) * 1099511628211ULL;
        for (int i = 15; i >= 0; i--) {
                out[i] = hex[h & 15];
                h >>= 4;
        }
        out[16] = '\0';
}

void rec_id(char out[REC_ID_MAX], size_t n, const slice_t *parts) {
        static const char hex[] = "0123456789ABCDEF";
        size_t o = 0;
        /* Straight into out (no heap: two ids per folded event). */
        for (size_t i = 0; i < n; i++) {
                if (i && o + 1 < REC_ID_MAX)
                        out[o++] = '|';
                for (size_t k = 0; k < parts[i].len; k++) {
                        unsigned char c = (unsigned char)parts[i].ptr[k];
                        if (rec__special(c)) {
                                if (o + 4 > REC_ID_MAX)
                                        break;
                                out[o++] = '%';
                                out[o++] = hex[c >> 4];
                                out[o++] = hex[c & 15];
                        } else if (o + 1 < REC_ID_MAX) {
                                out[o++] = (char)c;
                        }
                }
        }
        out[o] = '\0';
}
