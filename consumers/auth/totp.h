/*
 * totp.h - one-time passwords for the second factor.
 *
 * HOTP (RFC 4226) and TOTP (RFC 6238) over HMAC-SHA1 through OpenSSL, the
 * base32 alphabet of RFC 4648 that authenticator apps use for secrets, and
 * the otpauth:// URI they scan from a QR code (Google Authenticator's "Key
 * Uri Format"). Nothing here touches the store, the bus or the log: every
 * function is pure apart from the HMAC, and may be called from any thread.
 *
 * Secrets and codes are the caller's bytes; this module keeps no copy.
 * Codes are compared in constant time, and totp_verify() does the same work
 * whichever step of its window matches.
 */
#ifndef OMNIFY_TOTP_H
#define OMNIFY_TOTP_H

#include <stddef.h>
#include <stdint.h>

#include "slice.h"

#define TOTP_ERRORS(X)                                      \
        X(TOTP_OK, "ok")                                    \
        X(TOTP_BAD_BASE32, "the text is not valid base32")  \
        X(TOTP_BAD_ARGUMENT, "an argument is out of range") \
        X(TOTP_NO_SPACE, "the output buffer is too small")  \
        X(TOTP_BAD_CODE, "the code does not match")         \
        X(TOTP_CRYPTO, "the HMAC could not be computed")

typedef enum totp_err {
#define X(name, msg) name,
        TOTP_ERRORS(X)
#undef X
} totp_err_t;

const char *totp_strerror(totp_err_t err);

#define TOTP_SECRET_LEN 20 /* bytes of a new secret: 160 bits (RFC 4226) */
#define TOTP_SECRET_B32 33 /* its base32 text, no padding, and a NUL */
#define TOTP_KEY_MAX 64    /* longest key accepted (one SHA-1 block) */
#define TOTP_PERIOD 30     /* seconds per step */
#define TOTP_DIGITS 6      /* digits of the codes we issue and accept */
#define TOTP_DIGITS_MIN 6
#define TOTP_DIGITS_MAX 8
#define TOTP_NO_STEP INT64_MIN /* last_step when none was used yet */

/*
 * The HOTP value of counter under key (RFC 4226 section 5.3): dynamic
 * truncation of HMAC-SHA1(key, counter as 8 big-endian bytes), modulo
 * 10^digits. digits is 6..8, key_len 1..TOTP_KEY_MAX.
 */
totp_err_t totp_hotp(const uint8_t *key, size_t key_len, uint64_t counter,
                     int digits, uint32_t *code);

/* The time step of Unix time t for period seconds: floor(t / period), the
 * T of RFC 6238 with T0 = 0. t < 0 gives step 0. */
uint64_t totp_step(int64_t unix_time, int period);

/* The TOTP value at Unix time t: totp_hotp() of totp_step(t, period). */
totp_err_t totp_at(const uint8_t *key, size_t key_len, int64_t unix_time,
                   int period, int digits, uint32_t *code);

/* code as exactly `digits` decimal digits with leading zeros, and a NUL:
 * out has room for digits + 1 bytes. */
void totp_format(uint32_t code, int digits, char *out);

/*
 * Check a TOTP code the user typed (code: its bytes, not NUL-terminated)
 * against the steps within `window` steps of unix_time's step, TOTP_PERIOD
 * and TOTP_DIGITS. A step <= last_step never matches (a code is good once:
 * pass TOTP_NO_STEP when none was used). On TOTP_OK, *step (if not NULL)
 * receives the matching step for the caller to remember. TOTP_BAD_CODE when
 * nothing matches or code is not TOTP_DIGITS digits; every candidate is
 * computed and compared in constant time whatever matches. window is 0..10.
 */
totp_err_t totp_verify(const uint8_t *key, size_t key_len, slice_t code,
                       int64_t unix_time, int window, int64_t last_step,
                       int64_t *step);

/* Length of the unpadded base32 text of n bytes: ceil(8n / 5). */
size_t totp_base32_len(size_t n);

/*
 * Encode n bytes as upper-case base32 (RFC 4648 alphabet) without '='
 * padding, as authenticator apps expect, and a NUL. TOTP_NO_SPACE when out
 * (size bytes) cannot hold totp_base32_len(n) + 1.
 */
totp_err_t totp_base32_encode(const uint8_t *in, size_t n, char *out,
                              size_t size);

/*
 * Decode base32 text (not NUL-terminated) into out (size bytes); *out_len
 * receives the byte count. Letters of either case; '=' padding is accepted
 * only at the end and only as much as RFC 4648 puts there. Refused as
 * TOTP_BAD_BASE32: any other character, a length no encoding produces
 * (1, 3 or 6 characters left in the last group), and non-zero bits after
 * the last byte (so every byte string has exactly one accepted text).
 * TOTP_NO_SPACE when out is too small.
 */
totp_err_t totp_base32_decode(slice_t in, uint8_t *out, size_t size,
                              size_t *out_len);

/*
 * Percent-encode in as one URI component (RFC 3986): the unreserved
 * characters A-Z a-z 0-9 - . _ ~ stay, every other byte becomes %XX with
 * upper-case hex. Writes a NUL; *out_len (if not NULL) receives the length.
 * TOTP_NO_SPACE when out (size bytes) is too small.
 */
totp_err_t totp_uri_escape(slice_t in, char *out, size_t size, size_t *out_len);

/*
 * The provisioning URI of a secret:
 *   otpauth://totp/<issuer>:<account>?secret=<secret_b32>&issuer=<issuer>
 *   &algorithm=SHA1&digits=6&period=30
 * with issuer and account percent-encoded (the ':' between them stays, as
 * the Key Uri Format writes it). TOTP_NO_SPACE when out is too small.
 */
totp_err_t totp_uri(slice_t issuer, slice_t account, const char *secret_b32,
                    char *out, size_t size);

#endif
