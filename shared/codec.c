/*
 * codec.c - JSON <-> msgpack (see codec.h).
 *
 * JSON to msgpack: a cheap scan first bounds the bracket nesting of the raw
 * text, because jansson's parser recurses and a megabyte of "[[[[" would
 * otherwise exhaust the stack before any of our checks ran. jansson then
 * parses (rejecting duplicate keys and trailing garbage) and the tree is
 * packed, path parameters appended as string fields.
 *
 * msgpack to JSON: the bytes are first walked by a small scanner that checks
 * they hold exactly one complete object, nested no deeper than
 * CODEC_MAX_DEPTH, whose array and map counts are possible for the bytes
 * left, so msgpack-c's unpacker is never asked to allocate for a count a
 * five-byte header merely claims. The unpacked object is written straight
 * into a growing buffer: jansson would only add a copy and lose control of
 * escaping, invalid UTF-8 and non-finite floats.
 */
#include "codec.h"

#include <assert.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "codec_internal.h"

static const char *const codec_err_msgs[] = {
#define X(name, msg) [name] = msg,
        CODEC_ERRORS(X)
#undef X
};

const char *codec_strerror(codec_err_t err) {
        if ((size_t)err >= sizeof(codec_err_msgs) / sizeof(codec_err_msgs[0]))
                return "unknown codec error";
        return codec_err_msgs[err];
}

codec_err_t codec__fail(codec_err_t err, char *errstr, size_t errlen,
                        const char *fmt, ...) {
        va_list ap;

        if (!errstr || errlen == 0)
                return err;
        va_start(ap, fmt);
        vsnprintf(errstr, errlen, fmt, ap);
        va_end(ap);
        return err;
}

/* ------------------------------------------------------------------------
 * JSON to msgpack
 * ------------------------------------------------------------------------ */

/*
 * How much of jansson's message to keep. It ends in "near '<token>'", which
 * may be a piece of a password typed without quotes; bodies may be logged,
 * so the token is cut and the line and column say where the problem is.
 */
static int json_error_len(const json_error_t *jerr) {
        const char *near = strstr(jerr->text, " near '");

        return (int)(near ? (size_t)(near - jerr->text) : strlen(jerr->text));
}

/* True when the brackets outside strings nest at most max deep. */
static bool json_depth_ok(const char *p, size_t len, int max) {
        bool in_str = false;
        int depth = 0;

        for (size_t i = 0; i < len; i++) {
                char c = p[i];
                if (in_str) {
                        if (c == '\\')
                                i++;
                        else if (c == '"')
                                in_str = false;
                        continue;
                }
                if (c == '"') {
                        in_str = true;
                } else if (c == '[' || c == '{') {
                        if (++depth > max)
                                return false;
                } else if ((c == ']' || c == '}') && depth > 0) {
                        depth--;
                }
        }
        return true;
}

static bool json_blank(const char *p, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
                        return false;
        return true;
}

/* Pack one jansson value. Nonzero from a msgpack_pack_* call means the
 * sbuffer could not grow. */
static codec_err_t pack_json(msgpack_packer *pk, json_t *v, int depth);

codec_err_t codec_pack_json(msgpack_packer *pk, const struct json_t *value) {
        /* jansson's iterators take non-const values; nothing is changed. */
        return pack_json(pk, (json_t *)value, 0);
}

static codec_err_t pack_json(msgpack_packer *pk, json_t *v, int depth) {
        int rc = 0;

        switch (json_typeof(v)) {
        case JSON_OBJECT: {
                const char *key;
                size_t key_len;
                json_t *item;
                codec_err_t err;

                if (depth >= CODEC_MAX_DEPTH)
                        return CODEC_TOO_DEEP;
                if (msgpack_pack_map(pk, json_object_size(v)))
                        return CODEC_NO_MEMORY;
                json_object_keylen_foreach(v, key, key_len, item) {
                        if (msgpack_pack_str(pk, key_len) ||
                            msgpack_pack_str_body(pk, key, key_len))
                                return CODEC_NO_MEMORY;
                        if ((err = pack_json(pk, item, depth + 1)) != CODEC_OK)
                                return err;
                }
                return CODEC_OK;
        }
        case JSON_ARRAY: {
                size_t i;
                json_t *item;
                codec_err_t err;

                if (depth >= CODEC_MAX_DEPTH)
                        return CODEC_TOO_DEEP;
                if (msgpack_pack_array(pk, json_array_size(v)))
                        return CODEC_NO_MEMORY;
                json_array_foreach(v, i, item) {
                        if ((err = pack_json(pk, item, depth + 1)) != CODEC_OK)
                                return err;
                }
                return CODEC_OK;
        }
        case JSON_STRING:
                rc = msgpack_pack_str(pk, json_string_length(v)) ||
                     msgpack_pack_str_body(pk, json_string_value(v),
                                           json_string_length(v));
                break;
        case JSON_INTEGER:
                rc = msgpack_pack_int64(pk, json_integer_value(v));
                break;
        case JSON_REAL:
                rc = msgpack_pack_double(pk, json_real_value(v));
                break;
        case JSON_TRUE:
                rc = msgpack_pack_true(pk);
                break;
        case JSON_FALSE:
                rc = msgpack_pack_false(pk);
                break;
        case JSON_NULL:
                rc = msgpack_pack_nil(pk);
                break;
        }
        return rc ? CODEC_NO_MEMORY : CODEC_OK;
}

/* Exactly representable integers of a double: +-2^53. */
#define CODEC_EXACT_INT 9007199254740992.0

/* A new integer for a real that is a whole number a double holds exactly,
 * or NULL. */
static json_t *whole(const json_t *v) {
        double d = json_is_real(v) ? json_real_value(v) : 0.5;
        return d == floor(d) && fabs(d) <= CODEC_EXACT_INT
                       ? json_integer((json_int_t)d)
                       : NULL;
}

/* After a parse that read every integer as a double: whole numbers a double
 * holds exactly are integers again (values are replaced in place, which
 * jansson allows while iterating). */
static void ints_back(json_t *v) {
        const char *key;
        json_t *item, *n;
        size_t i;

        if (json_is_object(v)) {
                json_object_foreach(v, key, item) {
                        if ((n = whole(item)))
                                json_object_set_new(v, key, n);
                        else
                                ints_back(item);
                }
        } else if (json_is_array(v)) {
                json_array_foreach(v, i, item) {
                        if ((n = whole(item)))
                                json_array_set_new(v, i, n);
                        else
                                ints_back(item);
                }
        }
}

codec_err_t codec__parse_object(slice_t json, json_t **root, char *errstr,
                                size_t errlen) {
        const size_t flags =
                JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL;
        json_error_t jerr;

        *root = NULL;
        if (errstr && errlen)
                errstr[0] = '\0';
        if (!json.ptr || json_blank(json.ptr, json.len)) {
                *root = json_object();
                if (!*root)
                        return codec__fail(CODEC_NO_MEMORY, errstr, errlen,
                                           "out of memory");
                return CODEC_OK;
        }
        if (!json_depth_ok(json.ptr, json.len, CODEC_MAX_DEPTH))
                return codec__fail(CODEC_TOO_DEEP, errstr, errlen,
                                   "body nests deeper than %d levels",
                                   CODEC_MAX_DEPTH);
        /* NUL is valid JSON text: strings that hold one are refused by
         * validation, naming the field, not here as unreadable JSON. */
        *root = json_loadb(json.ptr, json.len, flags, &jerr);
        /* An integer beyond 64 bits is valid JSON (a free-form value may
         * hold one): such a body is read again with every number a double,
         * and the whole ones a double holds exactly become integers again;
         * only the too-big ones stay doubles (and ints between 2^53 and
         * 2^63 in that body lose their last digits). */
        if (!*root && json_error_code(&jerr) == json_error_numeric_overflow) {
                *root = json_loadb(json.ptr, json.len,
                                   flags | JSON_DECODE_INT_AS_REAL, &jerr);
                if (*root)
                        ints_back(*root);
        }
        if (!*root) {
                if (json_error_code(&jerr) == json_error_out_of_memory)
                        return codec__fail(CODEC_NO_MEMORY, errstr, errlen,
                                           "out of memory");
                return codec__fail(CODEC_BAD_JSON, errstr, errlen,
                                   "line %d, column %d: %.*s", jerr.line,
                                   jerr.column, json_error_len(&jerr),
                                   jerr.text);
        }
        if (!json_is_object(*root)) {
                json_decref(*root);
                *root = NULL;
                return codec__fail(CODEC_NOT_OBJECT, errstr, errlen,
                                   "body must be a JSON object");
        }
        return CODEC_OK;
}

codec_err_t codec_json_to_msgpack(slice_t json, const schema_params_t *params,
                                  msgpack_sbuffer *out, char *errstr,
                                  size_t errlen) {
        size_t n_params = params ? params->n : 0;
        size_t start = out->size;
        msgpack_packer pk;
        json_t *root = NULL;
        codec_err_t err;

        assert(out);
        assert(n_params <= SCHEMA_MAX_PARAMS);
        if ((err = codec__parse_object(json, &root, errstr, errlen)))
                return err;
        for (size_t i = 0; i < n_params; i++) {
                if (json_object_get(root, params->names[i])) {
                        err = codec__fail(CODEC_CONFLICT, errstr, errlen,
                                          "field \"%s\" is given both in the "
                                          "path and the body",
                                          params->names[i]);
                        goto out;
                }
        }

        msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
        if (msgpack_pack_map(&pk, json_object_size(root) + n_params)) {
                err = CODEC_NO_MEMORY;
                goto undo;
        }
        {
                const char *key;
                size_t key_len;
                json_t *item;
                json_object_keylen_foreach(root, key, key_len, item) {
                        if (msgpack_pack_str(&pk, key_len) ||
                            msgpack_pack_str_body(&pk, key, key_len)) {
                                err = CODEC_NO_MEMORY;
                                goto undo;
                        }
                        if ((err = pack_json(&pk, item, 1)) != CODEC_OK)
                                goto undo;
                }
        }
        for (size_t i = 0; i < n_params; i++) {
                size_t name_len = strlen(params->names[i]);
                if (msgpack_pack_str(&pk, name_len) ||
                    msgpack_pack_str_body(&pk, params->names[i], name_len) ||
                    msgpack_pack_str(&pk, params->values[i].len) ||
                    msgpack_pack_str_body(&pk, params->values[i].ptr,
                                          params->values[i].len)) {
                        err = CODEC_NO_MEMORY;
                        goto undo;
                }
        }
        goto out;

undo:
        /* Leave out as the caller gave it. */
        out->size = start;
        if (err == CODEC_TOO_DEEP)
                codec__fail(err, errstr, errlen,
                            "body nests deeper than %d levels",
                            CODEC_MAX_DEPTH);
        else
                codec__fail(err, errstr, errlen, "out of memory");
out:
        json_decref(root);
        return err;
}

/* ------------------------------------------------------------------------
 * msgpack scanning: one complete, plausible object
 * ------------------------------------------------------------------------ */

typedef enum mp_scan_result {
        MP_OK,
        MP_BAD,
        MP_TOO_DEEP,
} mp_scan_result_t;

static uint64_t mp_be(const unsigned char *p, size_t n) {
        uint64_t v = 0;

        for (size_t i = 0; i < n; i++)
                v = (v << 8) | p[i];
        return v;
}

/*
 * Walk one object at p[*off] and move *off past it. depth is the number of
 * containers around it. Every element takes at least one byte, so a count
 * larger than the bytes left is a lie we refuse before anyone allocates.
 */
static mp_scan_result_t mp_scan(const unsigned char *p, size_t len, size_t *off,
                                int depth) {
        unsigned char c;
        uint64_t count = 0, skip = 0;
        int kind = 0; /* 0 scalar, 1 array, 2 map */
        size_t hdr = 0;

        if (*off >= len)
                return MP_BAD;
        c = p[(*off)++];

        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
                return MP_OK;
        } else if (c >= 0x80 && c <= 0x8f) {
                kind = 2;
                count = c & 0x0f;
        } else if (c >= 0x90 && c <= 0x9f) {
                kind = 1;
                count = c & 0x0f;
        } else if (c >= 0xa0 && c <= 0xbf) {
                skip = c & 0x1f;
        } else {
                /* clang-format off */
                switch (c) {
                case 0xc4: case 0xd9: hdr = 1; break;  /* bin8, str8 */
                case 0xc5: case 0xda: hdr = 2; break;  /* bin16, str16 */
                case 0xc6: case 0xdb: hdr = 4; break;  /* bin32, str32 */
                case 0xc7: hdr = 1; skip = 1; break;   /* ext8 */
                case 0xc8: hdr = 2; skip = 1; break;   /* ext16 */
                case 0xc9: hdr = 4; skip = 1; break;   /* ext32 */
                case 0xca: skip = 4; break;            /* float32 */
                case 0xcb: skip = 8; break;            /* float64 */
                case 0xcc: case 0xd0: skip = 1; break; /* (u)int8 */
                case 0xcd: case 0xd1: skip = 2; break; /* (u)int16 */
                case 0xce: case 0xd2: skip = 4; break; /* (u)int32 */
                case 0xcf: case 0xd3: skip = 8; break; /* (u)int64 */
                case 0xd4: skip = 2; break;            /* fixext1 */
                case 0xd5: skip = 3; break;            /* fixext2 */
                case 0xd6: skip = 5; break;            /* fixext4 */
                case 0xd7: skip = 9; break;            /* fixext8 */
                case 0xd8: skip = 17; break;           /* fixext16 */
                case 0xdc: kind = 1; hdr = 2; break;   /* array16 */
                case 0xdd: kind = 1; hdr = 4; break;   /* array32 */
                case 0xde: kind = 2; hdr = 2; break;   /* map16 */
                case 0xdf: kind = 2; hdr = 4; break;   /* map32 */
                default: return MP_BAD;                /* 0xc1 */
                }
                /* clang-format on */
                if (hdr) {
                        if (len - *off < hdr)
                                return MP_BAD;
                        if (kind)
                                count = mp_be(p + *off, hdr);
                        else
                                skip += mp_be(p + *off, hdr);
                        *off += hdr;
                }
        }

        if (!kind) {
                if (len - *off < skip)
                        return MP_BAD;
                *off += skip;
                return MP_OK;
        }
        if (depth + 1 > CODEC_MAX_DEPTH)
                return MP_TOO_DEEP;
        if (kind == 2)
                count *= 2;
        if (count > len - *off)
                return MP_BAD;
        for (uint64_t i = 0; i < count; i++) {
                mp_scan_result_t r = mp_scan(p, len, off, depth + 1);
                if (r != MP_OK)
                        return r;
        }
        return MP_OK;
}

codec_err_t codec_msgpack_check(slice_t mp) {
        size_t off = 0;
        if (!mp.ptr || mp.len == 0)
                return CODEC_BAD_MSGPACK;
        switch (mp_scan((const unsigned char *)mp.ptr, mp.len, &off, 0)) {
        case MP_OK:
                return off == mp.len ? CODEC_OK : CODEC_BAD_MSGPACK;
        case MP_TOO_DEEP:
                return CODEC_TOO_DEEP;
        case MP_BAD:
                break;
        }
        return CODEC_BAD_MSGPACK;
}

/* ------------------------------------------------------------------------
 * msgpack to JSON
 * ------------------------------------------------------------------------ */

/* A growing output buffer; a failed allocation sticks. */
typedef struct jbuf {
        char *ptr;
        size_t len, cap;
        bool failed;
} jbuf_t;

static void jbuf_put(jbuf_t *b, const char *s, size_t n) {
        if (b->failed)
                return;
        if (b->cap - b->len < n + 1) {
                size_t cap = b->cap ? b->cap : 256;
                char *p;
                while (cap - b->len < n + 1) {
                        if (cap > SIZE_MAX / 2) {
                                b->failed = true;
                                return;
                        }
                        cap *= 2;
                }
                p = try_realloc(b->ptr, cap);
                if (!p) {
                        b->failed = true;
                        return;
                }
                b->ptr = p;
                b->cap = cap;
        }
        memcpy(b->ptr + b->len, s, n);
        b->len += n;
        b->ptr[b->len] = '\0';
}

static void jbuf_puts(jbuf_t *b, const char *s) {
        jbuf_put(b, s, strlen(s));
}

size_t codec_utf8_next(const unsigned char *p, size_t len, bool *valid) {
        unsigned char c = p[0];
        unsigned lo = 0x80, hi = 0xBF;
        size_t need, i;

        *valid = true;
        if (c < 0x80)
                return 1;
        if (c >= 0xC2 && c <= 0xDF) {
                need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
                need = 2;
                if (c == 0xE0)
                        lo = 0xA0;
                else if (c == 0xED)
                        hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
                need = 3;
                if (c == 0xF0)
                        lo = 0x90;
                else if (c == 0xF4)
                        hi = 0x8F;
        } else {
                *valid = false;
                return 1;
        }
        for (i = 1; i <= need && i < len; i++) {
                unsigned char b = p[i];
                if (i == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80)
                        break;
        }
        if (i <= need)
                *valid = false;
        return i;
}

static void jbuf_string(jbuf_t *b, const char *s, size_t len) {
        static const char hex[] = "0123456789abcdef";
        const unsigned char *p = (const unsigned char *)s;
        size_t i = 0, run = 0;

        jbuf_put(b, "\"", 1);
        if (len == 0) {
                /* msgpack-c may give NULL for an empty string. */
                jbuf_put(b, "\"", 1);
                return;
        }
        while (i < len) {
                unsigned char c = p[i];
                bool valid;
                size_t n;

                if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
                        i++;
                        run++;
                        continue;
                }
                jbuf_put(b, s + i - run, run);
                run = 0;
                if (c < 0x80) {
                        char esc[6] = {'\\', 'u',         '0',
                                       '0',  hex[c >> 4], hex[c & 0xF]};
                        if (c == '"' || c == '\\') {
                                esc[1] = (char)c;
                                jbuf_put(b, esc, 2);
                        } else {
                                jbuf_put(b, esc, 6);
                        }
                        i++;
                        continue;
                }
                n = codec_utf8_next(p + i, len - i, &valid);
                if (valid)
                        jbuf_put(b, s + i, n);
                else
                        jbuf_put(b, "\xEF\xBF\xBD", 3);
                i += n;
        }
        jbuf_put(b, s + i - run, run);
        jbuf_put(b, "\"", 1);
}

static void jbuf_base64(jbuf_t *b, const unsigned char *p, size_t len) {
        static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "abcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t i;

        jbuf_put(b, "\"", 1);
        for (i = 0; i + 3 <= len; i += 3) {
                uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 |
                             p[i + 2];
                char q[4] = {tab[v >> 18], tab[(v >> 12) & 63],
                             tab[(v >> 6) & 63], tab[v & 63]};
                jbuf_put(b, q, 4);
        }
        if (len - i == 1) {
                uint32_t v = (uint32_t)p[i] << 16;
                char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], '=', '='};
                jbuf_put(b, q, 4);
        } else if (len - i == 2) {
                uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
                char q[4] = {tab[v >> 18], tab[(v >> 12) & 63],
                             tab[(v >> 6) & 63], '='};
                jbuf_put(b, q, 4);
        }
        jbuf_put(b, "\"", 1);
}

static void jbuf_double(jbuf_t *b, double d) {
        char tmp[40];
        int n;

        if (!isfinite(d)) {
                jbuf_puts(b, "null");
                return;
        }
        /* The shortest of 15..17 digits that reads back as the same
         * double: 3.029, not 3.0289999999999999. */
        for (int digits = 15;; digits++) {
                n = snprintf(tmp, sizeof(tmp), "%.*g", digits, d);
                if (digits == 17 || strtod(tmp, NULL) == d)
                        break;
        }
        assert(n > 0 && (size_t)n < sizeof(tmp) - 2);
        /* Keep it a real for whoever parses it next. */
        if (!strpbrk(tmp, ".eE")) {
                tmp[n++] = '.';
                tmp[n++] = '0';
                tmp[n] = '\0';
        }
        jbuf_put(b, tmp, (size_t)n);
}

static void render(jbuf_t *b, const msgpack_object *o);

/* A map key: strings as they are, anything else rendered then quoted. */
static void render_key(jbuf_t *b, const msgpack_object *key) {
        jbuf_t tmp = {0};

        if (key->type == MSGPACK_OBJECT_STR) {
                jbuf_string(b, key->via.str.ptr, key->via.str.size);
                return;
        }
        if (key->type == MSGPACK_OBJECT_BIN) {
                jbuf_base64(b, (const unsigned char *)key->via.bin.ptr,
                            key->via.bin.size);
                return;
        }
        if (key->type == MSGPACK_OBJECT_ARRAY ||
            key->type == MSGPACK_OBJECT_MAP) {
                /* Rendering a container key and escaping it as a string
                 * doubles its size at every level of nesting: a few dozen
                 * hostile bytes would become gigabytes. JSON has no such
                 * keys; name them for what they are. */
                jbuf_puts(b, key->type == MSGPACK_OBJECT_MAP ? "\"(map)\""
                                                             : "\"(array)\"");
                return;
        }
        render(&tmp, key);
        if (tmp.failed)
                b->failed = true;
        else
                jbuf_string(b, tmp.ptr, tmp.len);
        free(tmp.ptr);
}

static void render(jbuf_t *b, const msgpack_object *o) {
        char num[32];

        switch (o->type) {
        case MSGPACK_OBJECT_NIL:
        case MSGPACK_OBJECT_EXT:
                jbuf_puts(b, "null");
                break;
        case MSGPACK_OBJECT_BOOLEAN:
                jbuf_puts(b, o->via.boolean ? "true" : "false");
                break;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
                snprintf(num, sizeof(num), "%" PRIu64, o->via.u64);
                jbuf_puts(b, num);
                break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
                snprintf(num, sizeof(num), "%" PRId64, o->via.i64);
                jbuf_puts(b, num);
                break;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
                jbuf_double(b, o->via.f64);
                break;
        case MSGPACK_OBJECT_STR:
                jbuf_string(b, o->via.str.ptr, o->via.str.size);
                break;
        case MSGPACK_OBJECT_BIN:
                jbuf_base64(b, (const unsigned char *)o->via.bin.ptr,
                            o->via.bin.size);
                break;
        case MSGPACK_OBJECT_ARRAY:
                jbuf_put(b, "[", 1);
                for (uint32_t i = 0; i < o->via.array.size; i++) {
                        if (i)
                                jbuf_put(b, ",", 1);
                        render(b, &o->via.array.ptr[i]);
                }
                jbuf_put(b, "]", 1);
                break;
        case MSGPACK_OBJECT_MAP:
                jbuf_put(b, "{", 1);
                for (uint32_t i = 0; i < o->via.map.size; i++) {
                        if (i)
                                jbuf_put(b, ",", 1);
                        render_key(b, &o->via.map.ptr[i].key);
                        jbuf_put(b, ":", 1);
                        render(b, &o->via.map.ptr[i].val);
                }
                jbuf_put(b, "}", 1);
                break;
        default:
                jbuf_puts(b, "null");
                break;
        }
}

codec_err_t codec_msgpack_to_json(slice_t mp, char **out, size_t *out_len) {
        msgpack_unpacked up;
        msgpack_unpack_return rc;
        jbuf_t b = {0};
        size_t off = 0;
        codec_err_t err = CODEC_OK;

        assert(out);
        *out = NULL;
        if (out_len)
                *out_len = 0;
        if (!mp.ptr || mp.len == 0)
                return CODEC_BAD_MSGPACK;
        switch (mp_scan((const unsigned char *)mp.ptr, mp.len, &off, 0)) {
        case MP_OK:
                break;
        case MP_BAD:
                return CODEC_BAD_MSGPACK;
        case MP_TOO_DEEP:
                return CODEC_TOO_DEEP;
        }
        if (off != mp.len)
                return CODEC_BAD_MSGPACK;

        msgpack_unpacked_init(&up);
        off = 0;
        rc = msgpack_unpack_next(&up, mp.ptr, mp.len, &off);
        if (rc == MSGPACK_UNPACK_NOMEM_ERROR) {
                err = CODEC_NO_MEMORY;
                goto done;
        }
        if (rc != MSGPACK_UNPACK_SUCCESS || off != mp.len) {
                err = CODEC_BAD_MSGPACK;
                goto done;
        }
        render(&b, &up.data);
        if (b.failed) {
                free(b.ptr);
                err = CODEC_NO_MEMORY;
                goto done;
        }
        *out = b.ptr;
        if (out_len)
                *out_len = b.len;
done:
        msgpack_unpacked_destroy(&up);
        return err;
}

/* ------------------------------------------------------------------------
 * Helpers for handlers
 * ------------------------------------------------------------------------ */

const msgpack_object *codec_map_get(const msgpack_object *obj,
                                    const char *key) {
        size_t len;

        if (!obj || obj->type != MSGPACK_OBJECT_MAP || !key)
                return NULL;
        len = strlen(key);
        for (uint32_t i = 0; i < obj->via.map.size; i++) {
                const msgpack_object *k = &obj->via.map.ptr[i].key;
                if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == len &&
                    (len == 0 || memcmp(k->via.str.ptr, key, len) == 0))
                        return &obj->via.map.ptr[i].val;
        }
        return NULL;
}

slice_t codec_map_str(const msgpack_object *obj, const char *key) {
        const msgpack_object *v = codec_map_get(obj, key);

        if (!v || v->type != MSGPACK_OBJECT_STR)
                return SLICE_NULL;
        /* An empty string still has a non-NULL pointer, unlike absence. */
        return (slice_t){v->via.str.ptr ? v->via.str.ptr : "", v->via.str.size};
}

void codec_pack_str(msgpack_packer *pk, const char *s) {
        if (!s) {
                msgpack_pack_nil(pk);
                return;
        }
        codec_pack_slice(pk, slice_of(s));
}

void codec_pack_slice(msgpack_packer *pk, slice_t s) {
        msgpack_pack_str(pk, s.len);
        if (s.len)
                msgpack_pack_str_body(pk, s.ptr, s.len);
}
