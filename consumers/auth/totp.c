/*
 * totp.c - HOTP/TOTP (RFC 4226, RFC 6238), base32 (RFC 4648) and otpauth
 * URIs for the second factor. See totp.h.
 *
 * SHA-1 only: it is what every authenticator app implements, and HOTP's
 * security rests on HMAC, not on SHA-1's collision resistance (RFC 4226
 * appendix A.4.1). Six digits, 30-second steps, as the apps default to.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "totp.h"

static const char *const totp_messages[] = {
#define X(name, msg) msg,
        TOTP_ERRORS(X)
#undef X
};

const char *totp_strerror(totp_err_t err) {
        if ((size_t)err >= sizeof(totp_messages) / sizeof(totp_messages[0]))
                return "unknown error";
        return totp_messages[err];
}

/* ---------------------------------------------------------------------------
 * HOTP and TOTP
 * ------------------------------------------------------------------------ */

static const uint32_t totp_pow10[] = {
        1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000};

totp_err_t totp_hotp(const uint8_t *key, size_t key_len, uint64_t counter,
                     int digits, uint32_t *code) {
        uint8_t msg[8], md[EVP_MAX_MD_SIZE];
        unsigned int md_len = 0;
        unsigned off;
        uint32_t bin;

        if (!key || key_len == 0 || key_len > TOTP_KEY_MAX ||
            digits < TOTP_DIGITS_MIN || digits > TOTP_DIGITS_MAX || !code)
                return TOTP_BAD_ARGUMENT;
        for (int i = 7; i >= 0; i--) {
                msg[i] = (uint8_t)(counter & 0xff);
                counter >>= 8;
        }
        if (!HMAC(EVP_sha1(), key, (int)key_len, msg, sizeof(msg), md,
                  &md_len) ||
            md_len != 20)
                return TOTP_CRYPTO;
        /* Dynamic truncation: the low nibble of the last byte picks four
         * bytes, read big-endian without their top bit. */
        off = md[19] & 0x0f;
        bin = ((uint32_t)(md[off] & 0x7f) << 24) |
              ((uint32_t)md[off + 1] << 16) | ((uint32_t)md[off + 2] << 8) |
              (uint32_t)md[off + 3];
        *code = bin % totp_pow10[digits];
        OPENSSL_cleanse(md, sizeof(md));
        return TOTP_OK;
}

uint64_t totp_step(int64_t unix_time, int period) {
        if (unix_time < 0 || period <= 0)
                return 0;
        return (uint64_t)unix_time / (uint64_t)period;
}

totp_err_t totp_at(const uint8_t *key, size_t key_len, int64_t unix_time,
                   int period, int digits, uint32_t *code) {
        if (period <= 0)
                return TOTP_BAD_ARGUMENT;
        return totp_hotp(key, key_len, totp_step(unix_time, period), digits,
                         code);
}

void totp_format(uint32_t code, int digits, char *out) {
        for (int i = digits - 1; i >= 0; i--) {
                out[i] = (char)('0' + code % 10);
                code /= 10;
        }
        out[digits] = '\0';
}

totp_err_t totp_verify(const uint8_t *key, size_t key_len, slice_t code,
                       int64_t unix_time, int window, int64_t last_step,
                       int64_t *step) {
        uint64_t now = totp_step(unix_time, TOTP_PERIOD), first, s;
        char want[TOTP_DIGITS + 1];
        int64_t matched = TOTP_NO_STEP;
        bool found = false;

        if (window < 0 || window > 10)
                return TOTP_BAD_ARGUMENT;
        /* The shape of the code is public; its value is what we protect. */
        if (!code.ptr || code.len != TOTP_DIGITS)
                return TOTP_BAD_CODE;
        for (size_t i = 0; i < code.len; i++)
                if (code.ptr[i] < '0' || code.ptr[i] > '9')
                        return TOTP_BAD_CODE;

        first = now >= (uint64_t)window ? now - (uint64_t)window : 0;
        for (s = first; s <= now + (uint64_t)window; s++) {
                uint32_t value;
                totp_err_t err =
                        totp_hotp(key, key_len, s, TOTP_DIGITS, &value);
                bool same, fresh;
                if (err)
                        return err;
                totp_format(value, TOTP_DIGITS, want);
                same = CRYPTO_memcmp(want, code.ptr, TOTP_DIGITS) == 0;
                fresh = (int64_t)s > last_step;
                /* Ascending order: the latest matching step wins, so the
                 * step remembered is never below one that was accepted. */
                if (same & fresh) {
                        matched = (int64_t)s;
                        found = true;
                }
        }
        OPENSSL_cleanse(want, sizeof(want));
        if (!found)
                return TOTP_BAD_CODE;
        if (step)
                *step = matched;
        return TOTP_OK;
}

/* ---------------------------------------------------------------------------
 * Base32 (RFC 4648 section 6)
 * ------------------------------------------------------------------------ */

static const char totp_b32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* The value of a base32 character, or -1. */
static int totp__b32_value(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a';
        if (c >= '2' && c <= '7')
                return c - '2' + 26;
        return -1;
}

size_t totp_base32_len(size_t n) {
        return (n * 8 + 4) / 5;
}

totp_err_t totp_base32_encode(const uint8_t *in, size_t n, char *out,
                              size_t size) {
        uint32_t buf = 0;
        int bits = 0;
        size_t o = 0;

        if (!out || size < totp_base32_len(n) + 1)
                return TOTP_NO_SPACE;
        for (size_t i = 0; i < n; i++) {
                buf = (buf << 8) | in[i];
                bits += 8;
                while (bits >= 5) {
                        out[o++] = totp_b32_alphabet[(buf >> (bits - 5)) & 31];
                        bits -= 5;
                }
        }
        if (bits > 0)
                out[o++] = totp_b32_alphabet[(buf << (5 - bits)) & 31];
        out[o] = '\0';
        return TOTP_OK;
}

totp_err_t totp_base32_decode(slice_t in, uint8_t *out, size_t size,
                              size_t *out_len) {
        size_t chars = in.len, pads = 0, o = 0, rest;
        uint32_t buf = 0;
        int bits = 0;

        if (in.len && !in.ptr)
                return TOTP_BAD_ARGUMENT;
        while (chars > 0 && in.ptr[chars - 1] == '=') {
                chars--;
                pads++;
        }
        /* Characters in the last group of eight: 1, 3 and 6 cannot come
         * from whole bytes. Padding, when given, must complete the group
         * exactly. */
        rest = chars % 8;
        if (rest == 1 || rest == 3 || rest == 6)
                return TOTP_BAD_BASE32;
        if (pads && (rest == 0 || rest + pads != 8))
                return TOTP_BAD_BASE32;
        if (chars * 5 / 8 > size)
                return TOTP_NO_SPACE;
        for (size_t i = 0; i < chars; i++) {
                int v = totp__b32_value(in.ptr[i]);
                if (v < 0)
                        return TOTP_BAD_BASE32;
                buf = ((buf << 5) | (uint32_t)v) & 0x1fff;
                bits += 5;
                if (bits >= 8) {
                        out[o++] = (uint8_t)(buf >> (bits - 8));
                        bits -= 8;
                }
        }
        /* The bits after the last byte must be zero: one text per key. */
        if (bits > 0 && (buf & ((1u << bits) - 1)) != 0)
                return TOTP_BAD_BASE32;
        if (out_len)
                *out_len = o;
        return TOTP_OK;
}

/* ---------------------------------------------------------------------------
 * otpauth URIs
 * ------------------------------------------------------------------------ */

static bool totp__unreserved(unsigned char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
               (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
               c == '~';
}

totp_err_t totp_uri_escape(slice_t in, char *out, size_t size,
                           size_t *out_len) {
        static const char hex[] = "0123456789ABCDEF";
        size_t o = 0;

        if (!out || size == 0)
                return TOTP_NO_SPACE;
        if (in.len && !in.ptr)
                return TOTP_BAD_ARGUMENT;
        for (size_t i = 0; i < in.len; i++) {
                unsigned char c = (unsigned char)in.ptr[i];
                if (totp__unreserved(c)) {
                        if (size - o < 2)
                                goto no_space;
                        out[o++] = (char)c;
                } else {
                        if (size - o < 4)
                                goto no_space;
                        out[o++] = '%';
                        out[o++] = hex[c >> 4];
                        out[o++] = hex[c & 15];
                }
        }
        out[o] = '\0';
        if (out_len)
                *out_len = o;
        return TOTP_OK;
no_space:
        out[0] = '\0';
        return TOTP_NO_SPACE;
}

/* Append s to out at *o; false when it does not fit (with its NUL). */
static bool totp__append(char *out, size_t size, size_t *o, const char *s) {
        size_t n = strlen(s);
        if (size - *o < n + 1)
                return false;
        memcpy(out + *o, s, n + 1);
        *o += n;
        return true;
}

static bool totp__append_escaped(char *out, size_t size, size_t *o, slice_t s) {
        size_t n;
        if (totp_uri_escape(s, out + *o, size - *o, &n) != TOTP_OK)
                return false;
        *o += n;
        return true;
}

totp_err_t totp_uri(slice_t issuer, slice_t account, const char *secret_b32,
                    char *out, size_t size) {
        char tail[64];
        size_t o = 0;

        if (!out || size == 0)
                return TOTP_NO_SPACE;
        if (!secret_b32 || (issuer.len && !issuer.ptr) ||
            (account.len && !account.ptr))
                return TOTP_BAD_ARGUMENT;
        snprintf(tail, sizeof(tail), "&algorithm=SHA1&digits=%d&period=%d",
                 TOTP_DIGITS, TOTP_PERIOD);
        out[0] = '\0';
        if (!totp__append(out, size, &o, "otpauth://totp/") ||
            !totp__append_escaped(out, size, &o, issuer) ||
            !totp__append(out, size, &o, ":") ||
            !totp__append_escaped(out, size, &o, account) ||
            !totp__append(out, size, &o, "?secret=") ||
            !totp__append(out, size, &o, secret_b32) ||
            !totp__append(out, size, &o, "&issuer=") ||
            !totp__append_escaped(out, size, &o, issuer) ||
            !totp__append(out, size, &o, tail)) {
                out[0] = '\0';
                return TOTP_NO_SPACE;
        }
        return TOTP_OK;
}
