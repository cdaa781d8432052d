/*
 * util.c - what every file of the group needs and no library gives as is:
 * civil days and RFC 3339 times, decimal money to minor units without
 * floating point, tolerant JSON and bson accessors for what providers and
 * the store send, encodings, a growing string, and the replies for errors.
 *
 * Everything that reads outside data checks it and says false or a default;
 * nothing here asserts on input.
 */
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "codec.h"
#include "ig.h"
#include "log.h"
#include "msgid.h"

static const char *const ig_names[IG_N_PROVIDERS] = {
        [IG_TRIPLEWHALE] = "triplewhale", [IG_HUBSPOT] = "hubspot",
        [IG_KLAVIYO] = "klaviyo",         [IG_GOOGLE_ADS] = "google_ads",
        [IG_META_ADS] = "meta_ads",       [IG_LINKEDIN_ADS] = "linkedin_ads",
        [IG_TIKTOK_ADS] = "tiktok_ads",   [IG_YOUTUBE] = "youtube",
        [IG_SHOPIFY] = "shopify",         [IG_STRIPE] = "stripe",
        [IG_GOHIGHLEVEL] = "gohighlevel",
};

const char *ig_provider_name(ig_provider_t p) {
        return (unsigned)p < IG_N_PROVIDERS ? ig_names[p] : "?";
}

int ig_provider_find(slice_t name) {
        for (int i = 0; i < IG_N_PROVIDERS; i++)
                if (slice_eq(name, ig_names[i]))
                        return i;
        return -1;
}

static const char *ig_errors[] = {
#define X(name, msg) msg,
        IG_ERRORS(X)
#undef X
};

const char *ig_strerror(ig_err_t err) {
        if ((unsigned)err >= sizeof(ig_errors) / sizeof(ig_errors[0]))
                return "unknown integrations error";
        return ig_errors[err];
}

/* ---------------------------------------------------------------------------
 * Days (proleptic Gregorian, H. Hinnant's civil algorithms)
 * ------------------------------------------------------------------------ */

ig_day_t ig_day_from_civil(int y, int m, int d) {
        int era;
        unsigned yoe, doy, doe;
        y -= m <= 2;
        era = (y >= 0 ? y : y - 399) / 400;
        yoe = (unsigned)(y - era * 400);
        doy = (unsigned)((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1);
        doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return (ig_day_t)(era * 146097 + (int)doe - 719468);
}

void ig_day_to_civil(ig_day_t day, int *y, int *m, int *d) {
        int z = day + 719468;
        int era = (z >= 0 ? z : z - 146096) / 146097;
        unsigned doe = (unsigned)(z - era * 146097);
        unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        unsigned mp = (5 * doy + 2) / 153;
        *d = (int)(doy - (153 * mp + 2) / 5 + 1);
        *m = (int)(mp < 10 ? mp + 3 : mp - 9);
        *y = (int)yoe + era * 400 + (*m <= 2);
}

void ig_day_format(ig_day_t day, char out[11]) {
        int y, m, d;
        ig_day_to_civil(day, &y, &m, &d);
        snprintf(out, 11, "%04u-%02u-%02u", (unsigned)y % 10000u,
                 (unsigned)m % 100u, (unsigned)d % 100u);
}

static bool ig_digits(const char *s, size_t n, int *out) {
        int v = 0;
        for (size_t i = 0; i < n; i++) {
                if (!isdigit((unsigned char)s[i]))
                        return false;
                v = v * 10 + (s[i] - '0');
        }
        *out = v;
        return true;
}

bool ig_day_parse(const char *s, size_t len, ig_day_t *out) {
        int y, m, d, ry, rm, rd;
        if (!s || len < 10 || s[4] != '-' || s[7] != '-' ||
            !ig_digits(s, 4, &y) || !ig_digits(s + 5, 2, &m) ||
            !ig_digits(s + 8, 2, &d) || m < 1 || m > 12 || d < 1 || d > 31)
                return false;
        *out = ig_day_from_civil(y, m, d);
        ig_day_to_civil(*out, &ry, &rm, &rd);
        return ry == y && rm == m && rd == d;
}

ig_day_t ig_day_of_ms(int64_t ms) {
        int64_t days = ms / 86400000;
        if (ms < 0 && ms % 86400000)
                days--;
        return (ig_day_t)days;
}

ig_day_t ig_day_today(void) {
        return ig_day_of_ms((int64_t)clock_wall_ms());
}

int64_t ig_day_start_ms(ig_day_t day) {
        return (int64_t)day * 86400000;
}

void ig_time_format(int64_t ms, char out[32]) {
        ig_day_t day = ig_day_of_ms(ms);
        int64_t in = ms - ig_day_start_ms(day);
        int y, m, d;
        ig_day_to_civil(day, &y, &m, &d);
        snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y % 10000, m,
                 d, (int)(in / 3600000), (int)(in / 60000 % 60),
                 (int)(in / 1000 % 60), (int)(in % 1000));
}

bool ig_time_parse(const char *s, int64_t *ms) {
        ig_day_t day;
        int h = 0, mi = 0, sec = 0, frac = 0, scale = 1000;
        int64_t off = 0;
        size_t len;
        const char *p;

        if (!s)
                return false;
        len = strlen(s);
        if (!ig_day_parse(s, len, &day))
                return false;
        p = s + 10;
        if (*p == 'T' || *p == 't' || *p == ' ') {
                if (strlen(p) < 6 || !ig_digits(p + 1, 2, &h) || p[3] != ':' ||
                    !ig_digits(p + 4, 2, &mi) || h > 23 || mi > 59)
                        return false;
                p += 6;
                if (*p == ':') {
                        if (!ig_digits(p + 1, 2, &sec) || sec > 60)
                                return false;
                        p += 3;
                }
                if (*p == '.') {
                        p++;
                        if (!isdigit((unsigned char)*p))
                                return false;
                        for (; isdigit((unsigned char)*p); p++) {
                                if (scale > 1) {
                                        scale /= 10;
                                        frac += (*p - '0') * scale;
                                }
                        }
                }
                if (*p == 'Z' || *p == 'z') {
                        p++;
                } else if (*p == '+' || *p == '-') {
                        int oh, om;
                        int sign = *p == '-' ? -1 : 1;
                        if (!ig_digits(p + 1, 2, &oh))
                                return false;
                        p += 3;
                        if (*p == ':')
                                p++;
                        if (!ig_digits(p, 2, &om))
                                return false;
                        p += 2;
                        off = sign * ((int64_t)oh * 3600000 + om * 60000);
                }
        }
        if (*p != '\0')
                return false;
        *ms = ig_day_start_ms(day) + (int64_t)h * 3600000 +
              (int64_t)mi * 60000 + (int64_t)sec * 1000 + frac - off;
        return true;
}

/* ---------------------------------------------------------------------------
 * Money
 * ------------------------------------------------------------------------ */

int ig_currency_exponent(const char *c) {
        static const char *const zero[] = {
                "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
                "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF", NULL};
        static const char *const three[] = {"BHD", "IQD", "JOD", "KWD",
                                            "LYD", "OMR", "TND", NULL};
        if (!c)
                return 2;
        for (size_t i = 0; zero[i]; i++)
                if (strcasecmp(c, zero[i]) == 0)
                        return 0;
        for (size_t i = 0; three[i]; i++)
                if (strcasecmp(c, three[i]) == 0)
                        return 3;
        return 2;
}

bool ig_money_parse(const char *s, const char *currency, int64_t *minor) {
        int exp = ig_currency_exponent(currency);
        int64_t whole = 0, part = 0;
        int digits = 0, sign = 1;
        bool any = false, round_up = false;

        if (!s)
                return false;
        while (*s == ' ')
                s++;
        if (*s == '-' || *s == '+') {
                sign = *s == '-' ? -1 : 1;
                s++;
        }
        for (; isdigit((unsigned char)*s); s++, any = true) {
                if (whole > (INT64_MAX - 9) / 10000)
                        return false;
                whole = whole * 10 + (*s - '0');
        }
        if (*s == '.') {
                s++;
                for (; isdigit((unsigned char)*s); s++, any = true) {
                        if (digits < exp) {
                                part = part * 10 + (*s - '0');
                                digits++;
                        } else if (digits == exp) {
                                round_up = *s >= '5';
                                digits++;
                        }
                }
        }
        while (*s == ' ')
                s++;
        if (!any || *s != '\0')
                return false;
        for (int i = digits > exp ? exp : digits; i < exp; i++)
                part *= 10;
        for (int i = 0; i < exp; i++)
                whole *= 10;
        *minor = sign * (whole + part + (round_up ? 1 : 0));
        return true;
}

int64_t ig_money_from_double(double v, const char *currency) {
        double scale = pow(10.0, ig_currency_exponent(currency));
        double x = v * scale;
        if (!isfinite(x) || fabs(x) > 9e18)
                return 0;
        return (int64_t)(x < 0 ? x - 0.5 : x + 0.5);
}

int64_t ig_money_from_micros(int64_t micros, const char *currency) {
        int64_t div = 1;
        for (int i = ig_currency_exponent(currency); i < 6; i++)
                div *= 10;
        return (micros + (micros >= 0 ? div / 2 : -div / 2)) / div;
}

/* ---------------------------------------------------------------------------
 * JSON and bson
 * ------------------------------------------------------------------------ */

const char *ig_json_str(const json_t *obj, const char *key) {
        const json_t *v = json_object_get(obj, key);
        return json_is_string(v) ? json_string_value(v) : NULL;
}

int64_t ig_json_int(const json_t *obj, const char *key, int64_t def) {
        const json_t *v = json_object_get(obj, key);
        if (json_is_integer(v))
                return (int64_t)json_integer_value(v);
        if (json_is_real(v)) {
                double d = json_real_value(v);
                return isfinite(d) && fabs(d) < 9e18 ? (int64_t)llround(d)
                                                     : def;
        }
        if (json_is_string(v)) {
                const char *s = json_string_value(v);
                char *end;
                long long x;
                if (!*s)
                        return def;
                x = strtoll(s, &end, 10);
                if (*end == '.') /* "12.0" */
                        return (int64_t)llround(strtod(s, &end));
                return *end ? def : (int64_t)x;
        }
        return def;
}

double ig_json_num(const json_t *obj, const char *key, double def) {
        const json_t *v = json_object_get(obj, key);
        if (json_is_number(v))
                return json_number_value(v);
        if (json_is_string(v)) {
                const char *s = json_string_value(v);
                char *end;
                double d;
                if (!*s)
                        return def;
                d = strtod(s, &end);
                return *end || !isfinite(d) ? def : d;
        }
        return def;
}

json_t *ig_json_path(const json_t *obj, ...) {
        va_list ap;
        const char *key;
        const json_t *cur = obj;
        va_start(ap, obj);
        while (cur && (key = va_arg(ap, const char *)))
                cur = json_object_get(cur, key);
        va_end(ap);
        return (json_t *)cur;
}

const char *ig_bson_str(const bson_t *doc, const char *key) {
        bson_iter_t it;
        if (doc && bson_iter_init_find(&it, doc, key) &&
            BSON_ITER_HOLDS_UTF8(&it))
                return bson_iter_utf8(&it, NULL);
        return NULL;
}

int64_t ig_bson_int(const bson_t *doc, const char *key, int64_t def) {
        bson_iter_t it;
        if (doc && bson_iter_init_find(&it, doc, key) &&
            (BSON_ITER_HOLDS_INT32(&it) || BSON_ITER_HOLDS_INT64(&it) ||
             BSON_ITER_HOLDS_DOUBLE(&it)))
                return bson_iter_as_int64(&it);
        return def;
}

int64_t ig_bson_date(const bson_t *doc, const char *key) {
        bson_iter_t it;
        if (doc && bson_iter_init_find(&it, doc, key) &&
            BSON_ITER_HOLDS_DATE_TIME(&it))
                return bson_iter_date_time(&it);
        return 0;
}

bool ig_bson_bool(const bson_t *doc, const char *key) {
        bson_iter_t it;
        return doc && bson_iter_init_find(&it, doc, key) &&
               BSON_ITER_HOLDS_BOOL(&it) && bson_iter_bool(&it);
}

/* ---------------------------------------------------------------------------
 * Encodings
 * ------------------------------------------------------------------------ */

static char *ig_b64_any(const unsigned char *p, size_t n, bool url) {
        size_t cap = 4 * ((n + 2) / 3) + 1;
        char *out = xmalloc(cap);
        int len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
        if (url) {
                for (int i = 0; i < len; i++)
                        out[i] = out[i] == '+'   ? '-'
                                 : out[i] == '/' ? '_'
                                                 : out[i];
                while (len > 0 && out[len - 1] == '=')
                        len--;
        }
        out[len] = '\0';
        return out;
}

char *ig_b64url(const unsigned char *p, size_t n) {
        return ig_b64_any(p, n, true);
}

char *ig_b64(const unsigned char *p, size_t n) {
        return ig_b64_any(p, n, false);
}

unsigned char *ig_unb64(const char *s, size_t len, size_t *n) {
        size_t padded = (len + 3) / 4 * 4, pad = 0;
        char *in;
        unsigned char *out;
        int got;

        if (len == 0 || len > (1u << 20))
                return NULL;
        in = xmalloc(padded + 1);
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (c == '-')
                        c = '+';
                else if (c == '_')
                        c = '/';
                else if (!isalnum((unsigned char)c) && c != '+' && c != '/' &&
                         !(c == '=' && i >= len - 2)) {
                        free(in);
                        return NULL;
                }
                in[i] = c;
        }
        for (size_t i = len; i < padded; i++)
                in[i] = '=';
        in[padded] = '\0';
        for (size_t i = padded; i > 0 && in[i - 1] == '='; i--)
                pad++;
        out = xmalloc(padded / 4 * 3 + 1);
        got = EVP_DecodeBlock(out, (const unsigned char *)in, (int)padded);
        free(in);
        if (got < 0 || (size_t)got < pad) {
                free(out);
                return NULL;
        }
        *n = (size_t)got - pad;
        return out;
}

void ig_hex(const unsigned char *p, size_t n, char *out) {
        static const char hex[] = "0123456789abcdef";
        for (size_t i = 0; i < n; i++) {
                out[2 * i] = hex[p[i] >> 4];
                out[2 * i + 1] = hex[p[i] & 15];
        }
        out[2 * n] = '\0';
}

bool ig_equal(const void *a, size_t alen, const void *b, size_t blen) {
        return alen == blen && CRYPTO_memcmp(a, b, alen) == 0;
}

void ig_random_b64url(size_t n, char *out, size_t out_size) {
        unsigned char raw[64];
        char *s;
        if (n > sizeof(raw))
                n = sizeof(raw);
        msgid_random(raw, n);
        s = ig_b64url(raw, n);
        snprintf(out, out_size, "%s", s);
        OPENSSL_cleanse(raw, n);
        free(s);
}

void ig_uuid(char out[IG_ID_TEXT]) {
        msgid_t id;
        msgid_new(&id);
        msgid_format(&id, out);
}

char *ig_urlencode(const char *s) {
        static const char hex[] = "0123456789ABCDEF";
        size_t n = strlen(s);
        char *out = xmalloc(3 * n + 1), *o = out;
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                if (isalnum(c) || c == '-' || c == '.' || c == '_' ||
                    c == '~') {
                        *o++ = (char)c;
                } else {
                        *o++ = '%';
                        *o++ = hex[c >> 4];
                        *o++ = hex[c & 15];
                }
        }
        *o = '\0';
        return out;
}

void ig_buf_printf(ig_buf_t *b, const char *fmt, ...) {
        va_list ap;
        int n;
        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        if (b->len + (size_t)n + 1 > b->cap) {
                b->cap = (b->len + (size_t)n + 1) * 2;
                b->p = xrealloc(b->p, b->cap);
        }
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
}

void ig_buf_param(ig_buf_t *b, const char *name, const char *value) {
        char *v = ig_urlencode(value ? value : "");
        bool first = !b->p || !memchr(b->p, '?', b->len);
        ig_buf_printf(b, "%s%s=%s", first ? "?" : "&", name, v);
        OPENSSL_cleanse(v, strlen(v));
        free(v);
}

void ig_buf_free(ig_buf_t *b) {
        if (b->p) {
                OPENSSL_cleanse(b->p, b->cap);
                free(b->p);
        }
        b->p = NULL;
        b->len = b->cap = 0;
}

static int ig_hexval(char c) {
        return c >= '0' && c <= '9'   ? c - '0'
               : c >= 'a' && c <= 'f' ? c - 'a' + 10
               : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                      : -1;
}

const char *ig_url_param(const char *url, const char *name, char *buf,
                         size_t size) {
        const char *q = url ? strchr(url, '?') : NULL;
        size_t nlen = strlen(name);
        if (!q || size == 0)
                return NULL;
        for (const char *p = q + 1; *p;) {
                const char *end = strpbrk(p, "&#");
                size_t len = end ? (size_t)(end - p) : strlen(p);
                if (len > nlen && strncmp(p, name, nlen) == 0 &&
                    p[nlen] == '=') {
                        size_t o = 0;
                        for (size_t i = nlen + 1; i < len && o + 1 < size;
                             i++) {
                                int hi, lo;
                                if (p[i] == '+') {
                                        buf[o++] = ' ';
                                } else if (p[i] == '%' && i + 2 < len + 0 &&
                                           (hi = ig_hexval(p[i + 1])) >= 0 &&
                                           (lo = ig_hexval(p[i + 2])) >= 0) {
                                        buf[o++] = (char)(hi * 16 + lo);
                                        i += 2;
                                } else {
                                        buf[o++] = p[i];
                                }
                        }
                        buf[o] = '\0';
                        return buf;
                }
                if (!end || *end == '#')
                        break;
                p = end + 1;
        }
        return NULL;
}

void ig_email_domain(const char *email, char *out, size_t size) {
        const char *at = email ? strrchr(email, '@') : NULL;
        size_t i = 0;
        if (size == 0)
                return;
        if (at)
                for (at++; *at && i + 1 < size; at++)
                        out[i++] = (char)tolower((unsigned char)*at);
        out[i] = '\0';
}

/* ---------------------------------------------------------------------------
 * msgpack
 * ------------------------------------------------------------------------ */

void ig_kv_str(msgpack_packer *pk, const char *k, const char *v) {
        codec_pack_str(pk, k);
        codec_pack_str(pk, v ? v : "");
}

void ig_kv_int(msgpack_packer *pk, const char *k, int64_t v) {
        codec_pack_str(pk, k);
        msgpack_pack_int64(pk, v);
}

void ig_kv_bool(msgpack_packer *pk, const char *k, bool v) {
        codec_pack_str(pk, k);
        if (v)
                msgpack_pack_true(pk);
        else
                msgpack_pack_false(pk);
}

void ig_kv_time(msgpack_packer *pk, const char *k, int64_t ms) {
        char t[32];
        ig_time_format(ms, t);
        ig_kv_str(pk, k, t);
}

void ig_kv_day(msgpack_packer *pk, const char *k, ig_day_t day) {
        char d[11];
        ig_day_format(day, d);
        ig_kv_str(pk, k, d);
}

void ig_copy_slice(char *dst, size_t size, slice_t s) {
        size_t n = s.len < size ? s.len : size - 1;
        if (n && s.ptr)
                memcpy(dst, s.ptr, n);
        dst[s.ptr ? n : 0] = '\0';
}

void ig_map_copy(const msgpack_object *map, const char *key, char *dst,
                 size_t size) {
        ig_copy_slice(dst, size, codec_map_str(map, key));
}

int64_t ig_map_int(const msgpack_object *map, const char *key, int64_t def) {
        const msgpack_object *v = codec_map_get(map, key);
        if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                return v->via.u64 > INT64_MAX ? def : (int64_t)v->via.u64;
        if (v && v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                return v->via.i64;
        return def;
}

bool ig_map_bool(const msgpack_object *map, const char *key) {
        const msgpack_object *v = codec_map_get(map, key);
        return v && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
}

/* ---------------------------------------------------------------------------
 * Replies
 * ------------------------------------------------------------------------ */

handler_result_t ig_store_failed(rt_ctx_t *ctx, store_err_t err,
                                 const char *errstr) {
        log_warn("store: %s", errstr);
        if (store_err_transient(err))
                return HANDLER_TRANSIENT;
        rt_reply_problem(ctx, 500, "Internal error",
                         "the request could not be stored");
        return HANDLER_PERMANENT;
}

bool ig_caller_tenant(rt_ctx_t *ctx, schema_role_t least, char tenant[128]) {
        rt_caller_t who;
        if (!rt_require_role(ctx, least))
                return false;
        rt_caller(ctx, &who);
        ig_copy_slice(tenant, 128, who.tenant);
        return true;
}

handler_result_t ig_reply_list(rt_ctx_t *ctx, const char *key, const char *coll,
                               const bson_t *filter, const char *sort_field,
                               int64_t limit, ig_pack_fn fn, void *arg) {
        bson_t opts = BSON_INITIALIZER, sort;
        char errstr[256];
        store_err_t e;

        BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
        BSON_APPEND_INT32(&sort, sort_field, -1);
        bson_append_document_end(&opts, &sort);
        e = rt_reply_list(ctx, key, coll, filter, &opts,
                          limit < 1 ? 1 : (uint32_t)limit, fn, arg, errstr,
                          sizeof(errstr));
        bson_destroy(&opts);
        return e ? ig_store_failed(ctx, e, errstr) : HANDLER_OK;
}

handler_result_t ig_reply_error(rt_ctx_t *ctx, ig_err_t err,
                                const char *detail) {
        const char *d = detail && *detail ? detail : ig_strerror(err);
        switch (err) {
        case IG_STORE_DOWN:
                return HANDLER_TRANSIENT;
        case IG_NOT_CONFIGURED:
                /* Not offered by this deployment: the provider's app,
                 * secret or the credential keys are unset. A 404 like
                 * an unknown provider; GET /api/integrations/providers
                 * says which are configured. */
                rt_reply_problem(ctx, 404, "Not available here", d);
                return HANDLER_OK;
        case IG_BAD_INPUT:
        case IG_REFUSED:
        case IG_AUTH:
                rt_reply_problem(ctx, 422, "Refused", d);
                return HANDLER_OK;
        case IG_GONE:
                rt_reply_problem(ctx, 404, "Not found", d);
                return HANDLER_OK;
        case IG_RATE_LIMITED:
        case IG_TRANSIENT:
        case IG_PROVIDER:
                rt_reply_problem(ctx, 502, "Provider error", d);
                return HANDLER_OK;
        default:
                rt_reply_problem(ctx, 500, "Internal error", d);
                return HANDLER_OK;
        }
}
