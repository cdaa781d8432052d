/*
 * fuzz_token.c - libFuzzer target: access token verification.
 *
 * Two kinds of input. Without a newline, the bytes are the token as a
 * client sends it after "Bearer ". With one, the input is
 * "<header JSON>\n<payload JSON>": both are base64url-encoded and signed
 * with HMAC-SHA256 under the target's own key, so the fuzzer reaches what
 * happens after the signature checks out (algorithm pinning, kid, issuer,
 * audience, times, ids, roles), which random bytes never would.
 *
 * Checked: a token is only accepted with claims in their documented shape:
 * sub and tid UUIDs, roles comma-separated lowercase names that fit, an
 * expiry not past (with 30 s of skew).
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_util.h"
#include "msgid.h"
#include "token.h"

#define FUZZ_NOW ((time_t)1700000000)

static const token_keys_t keys = {
        .secret = "fuzz-secret-0123456789abcdef0123456789abcdef",
        .issuer = "omnify",
        .audience = "omnify-api",
        .kid = "k1",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* base64url without padding; out has room for 4 * ((len + 2) / 3). */
static size_t b64url(const uint8_t *in, size_t len, char *out) {
        static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "abcdefghijklmnopqrstuvwxyz0123456789-_";
        size_t o = 0, i;

        for (i = 0; i + 3 <= len; i += 3) {
                uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
                             in[i + 2];
                out[o++] = tab[v >> 18];
                out[o++] = tab[(v >> 12) & 63];
                out[o++] = tab[(v >> 6) & 63];
                out[o++] = tab[v & 63];
        }
        if (len - i == 1) {
                uint32_t v = (uint32_t)in[i] << 16;
                out[o++] = tab[v >> 18];
                out[o++] = tab[(v >> 12) & 63];
        } else if (len - i == 2) {
                uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
                out[o++] = tab[v >> 18];
                out[o++] = tab[(v >> 12) & 63];
                out[o++] = tab[(v >> 6) & 63];
        }
        return o;
}

/* header.payload.signature for the two JSON texts; a new string. */
static char *sign(const uint8_t *hdr, size_t hdr_len, const uint8_t *payload,
                  size_t payload_len, size_t *len) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;
        size_t cap = 4 * ((hdr_len + 2) / 3) + 4 * ((payload_len + 2) / 3) +
                     4 * ((sizeof(mac) + 2) / 3) + 3;
        char *tok = malloc(cap);
        size_t n = 0;

        FUZZ_CHECK(tok != NULL);
        n += b64url(hdr, hdr_len, tok + n);
        tok[n++] = '.';
        n += b64url(payload, payload_len, tok + n);
        FUZZ_CHECK(HMAC(EVP_sha256(), keys.secret, (int)strlen(keys.secret),
                        (const unsigned char *)tok, n, mac, &mac_len) != NULL);
        tok[n++] = '.';
        n += b64url(mac, mac_len, tok + n);
        FUZZ_CHECK(n <= cap);
        *len = n;
        return tok;
}

static bool is_id(const char *s) {
        msgid_t id;

        return strlen(s) == MSGID_TEXT_LEN && msgid_parse(s, strlen(s), &id);
}

static void check_claims(const token_claims_t *claims) {
        size_t roles_len = strnlen(claims->roles, sizeof(claims->roles));

        FUZZ_CHECK(is_id(claims->sub));
        FUZZ_CHECK(is_id(claims->tid));
        FUZZ_CHECK(roles_len < sizeof(claims->roles));
        for (size_t i = 0; i < roles_len; i++) {
                char c = claims->roles[i];
                FUZZ_CHECK((c >= 'a' && c <= 'z') || c == '_' || c == ',');
        }
        FUZZ_CHECK(claims->exp > 0 && claims->exp >= FUZZ_NOW - 30);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const uint8_t *nl = memchr(data, '\n', size);
        token_claims_t claims;
        char *signed_tok = NULL;
        slice_t tok = {(const char *)data, size};
        token_err_t err;

        if (nl) {
                size_t hdr_len = (size_t)(nl - data);
                size_t tok_len;
                signed_tok = sign(data, hdr_len, nl + 1, size - hdr_len - 1,
                                  &tok_len);
                tok = (slice_t){signed_tok, tok_len};
        }
        memset(&claims, 0xA5, sizeof(claims));
        err = token_verify(&keys, tok, FUZZ_NOW, &claims);
        FUZZ_CHECK(err <= TOKEN_ERROR);
        if (err == TOKEN_OK)
                check_claims(&claims);
        free(signed_tok);
        return 0;
}
