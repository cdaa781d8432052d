/*
 * vault.c - AES-256-GCM of credentials with OpenSSL's EVP interface (see
 * vault.h). OpenSSL is already what the house links for TLS and HMAC; its
 * GCM is constant-time where the CPU allows (AES-NI) and checks the tag
 * before anything is returned.
 */
#include "vault.h"

#include <assert.h>
#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "msgid.h"

#define VAULT_KEY_LEN 32
#define VAULT_IV_LEN 12
#define VAULT_TAG_LEN 16
#define VAULT_MAX_KEYS 8
#define VAULT_MAX_PLAIN (64 * 1024)

typedef struct vault_key {
        char kid[IG_VAULT_KID_MAX + 1];
        unsigned char key[VAULT_KEY_LEN];
} vault_key_t;

struct ig_vault {
        vault_key_t keys[VAULT_MAX_KEYS];
        size_t n;
};

static bool vault__kid_ok(const char *s, size_t n) {
        if (n == 0 || n > IG_VAULT_KID_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && s[i] != '-' &&
                    s[i] != '_' && s[i] != '.')
                        return false;
        return true;
}

ig_vault_t *ig_vault_new(const char *keys, char *errstr, size_t errlen) {
        ig_vault_t *v;
        const char *p = keys;

        if (errstr && errlen)
                errstr[0] = '\0';
        if (!keys || !*keys)
                return NULL;
        v = xcalloc(1, sizeof(*v));
        while (*p) {
                const char *end = strchr(p, ','), *colon;
                size_t len = end ? (size_t)(end - p) : strlen(p), raw_len = 0;
                unsigned char *raw;
                vault_key_t *k;

                colon = memchr(p, ':', len);
                if (v->n == VAULT_MAX_KEYS) {
                        snprintf(errstr, errlen, "more than %d keys",
                                 VAULT_MAX_KEYS);
                        goto fail;
                }
                if (!colon || !vault__kid_ok(p, (size_t)(colon - p))) {
                        snprintf(errstr, errlen,
                                 "key %zu: expected kid:base64 (a kid of "
                                 "letters, digits, '-', '_', '.')",
                                 v->n + 1);
                        goto fail;
                }
                raw = ig_unb64(colon + 1, len - (size_t)(colon - p) - 1,
                               &raw_len);
                if (!raw || raw_len != VAULT_KEY_LEN) {
                        if (raw) {
                                OPENSSL_cleanse(raw, raw_len);
                                free(raw);
                        }
                        snprintf(errstr, errlen,
                                 "key %zu: the base64 must decode to 32 bytes",
                                 v->n + 1);
                        goto fail;
                }
                k = &v->keys[v->n];
                memcpy(k->kid, p, (size_t)(colon - p));
                k->kid[colon - p] = '\0';
                for (size_t i = 0; i < v->n; i++)
                        if (strcmp(v->keys[i].kid, k->kid) == 0) {
                                OPENSSL_cleanse(raw, raw_len);
                                free(raw);
                                snprintf(errstr, errlen,
                                         "key id '%s' is given twice", k->kid);
                                goto fail;
                        }
                memcpy(k->key, raw, VAULT_KEY_LEN);
                OPENSSL_cleanse(raw, raw_len);
                free(raw);
                v->n++;
                p = end ? end + 1 : p + len;
        }
        if (v->n == 0) {
                snprintf(errstr, errlen, "no key");
                goto fail;
        }
        return v;
fail:
        ig_vault_destroy(v);
        return NULL;
}

void ig_vault_destroy(ig_vault_t *v) {
        if (!v)
                return;
        OPENSSL_cleanse(v, sizeof(*v));
        free(v);
}

const char *ig_vault_kid(const ig_vault_t *v) {
        return v->keys[0].kid;
}

static const vault_key_t *vault__find(const ig_vault_t *v, const char *kid) {
        for (size_t i = 0; kid && i < v->n; i++)
                if (strcmp(v->keys[i].kid, kid) == 0)
                        return &v->keys[i];
        return NULL;
}

bool ig_vault_has(const ig_vault_t *v, const char *kid) {
        return vault__find(v, kid) != NULL;
}

void ig_vault_seal(const ig_vault_t *v, const char *aad, const void *plain,
                   size_t len, bson_t *doc, const char *field) {
        const vault_key_t *k = &v->keys[0];
        unsigned char iv[VAULT_IV_LEN];
        unsigned char *ct = xmalloc(len + VAULT_TAG_LEN);
        EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
        int out = 0, fin = 0;
        bson_t sub;

        /* Our own inputs: a failure here is a broken OpenSSL, not data. */
        assert(c && len <= VAULT_MAX_PLAIN);
        msgid_random(iv, sizeof(iv));
        if (EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, VAULT_IV_LEN,
                                NULL) != 1 ||
            EVP_EncryptInit_ex(c, NULL, NULL, k->key, iv) != 1 ||
            EVP_EncryptUpdate(c, NULL, &out, (const unsigned char *)aad,
                              (int)strlen(aad)) != 1 ||
            EVP_EncryptUpdate(c, ct, &out, plain, (int)len) != 1 ||
            EVP_EncryptFinal_ex(c, ct + out, &fin) != 1 ||
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, VAULT_TAG_LEN,
                                ct + out + fin) != 1)
                abort();
        EVP_CIPHER_CTX_free(c);
        BSON_APPEND_DOCUMENT_BEGIN(doc, field, &sub);
        BSON_APPEND_UTF8(&sub, "kid", k->kid);
        BSON_APPEND_BINARY(&sub, "iv", BSON_SUBTYPE_BINARY, iv, sizeof(iv));
        BSON_APPEND_BINARY(&sub, "ct", BSON_SUBTYPE_BINARY, ct,
                           (uint32_t)(out + fin + VAULT_TAG_LEN));
        bson_append_document_end(doc, &sub);
        free(ct);
}

static bool vault__sub(const bson_t *doc, const char *field, bson_t *sub) {
        bson_iter_t it;
        const uint8_t *data;
        uint32_t len;
        if (!doc || !bson_iter_init_find(&it, doc, field) ||
            !BSON_ITER_HOLDS_DOCUMENT(&it))
                return false;
        bson_iter_document(&it, &len, &data);
        return bson_init_static(sub, data, len);
}

static bool vault__bin(const bson_t *sub, const char *key, const uint8_t **data,
                       uint32_t *len) {
        bson_iter_t it;
        bson_subtype_t st;
        if (!bson_iter_init_find(&it, sub, key) || !BSON_ITER_HOLDS_BINARY(&it))
                return false;
        bson_iter_binary(&it, &st, len, data);
        return true;
}

const char *ig_vault_kid_of(const bson_t *doc, const char *field) {
        bson_t sub;
        if (!vault__sub(doc, field, &sub))
                return NULL;
        return ig_bson_str(&sub, "kid");
}

ig_err_t ig_vault_open(const ig_vault_t *v, const char *aad, const bson_t *doc,
                       const char *field, char **plain, size_t *len) {
        const vault_key_t *k;
        const uint8_t *iv, *ct;
        uint32_t iv_len, ct_len;
        EVP_CIPHER_CTX *c;
        unsigned char *out;
        int n = 0, fin = 0;
        bson_t sub;
        bool ok;

        if (!vault__sub(doc, field, &sub))
                return IG_GONE;
        k = vault__find(v, ig_bson_str(&sub, "kid"));
        if (!k || !vault__bin(&sub, "iv", &iv, &iv_len) ||
            !vault__bin(&sub, "ct", &ct, &ct_len) || iv_len != VAULT_IV_LEN ||
            ct_len < VAULT_TAG_LEN || ct_len > VAULT_MAX_PLAIN + VAULT_TAG_LEN)
                return IG_CRYPTO;
        if (!(c = EVP_CIPHER_CTX_new()))
                return IG_CRYPTO;
        out = xmalloc(ct_len - VAULT_TAG_LEN + 1);
        ok = EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, VAULT_IV_LEN,
                                 NULL) == 1 &&
             EVP_DecryptInit_ex(c, NULL, NULL, k->key, iv) == 1 &&
             EVP_DecryptUpdate(c, NULL, &n, (const unsigned char *)aad,
                               (int)strlen(aad)) == 1 &&
             EVP_DecryptUpdate(c, out, &n, ct, (int)(ct_len - VAULT_TAG_LEN)) ==
                     1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, VAULT_TAG_LEN,
                                 (void *)(ct + ct_len - VAULT_TAG_LEN)) == 1 &&
             EVP_DecryptFinal_ex(c, out + n, &fin) == 1;
        EVP_CIPHER_CTX_free(c);
        if (!ok) {
                OPENSSL_cleanse(out, ct_len - VAULT_TAG_LEN + 1);
                free(out);
                return IG_CRYPTO;
        }
        out[n + fin] = '\0';
        *plain = (char *)out;
        *len = (size_t)(n + fin);
        return IG_OK;
}

bool ig_vault_mac(const ig_vault_t *v, const char *kid, const char *purpose,
                  const void *data, size_t len, unsigned char out[32]) {
        const vault_key_t *k = kid ? vault__find(v, kid) : &v->keys[0];
        unsigned char derived[32];
        unsigned int n = 0;
        if (!k)
                return false;
        HMAC(EVP_sha256(), k->key, VAULT_KEY_LEN,
             (const unsigned char *)purpose, strlen(purpose), derived, &n);
        HMAC(EVP_sha256(), derived, sizeof(derived), data, len, out, &n);
        OPENSSL_cleanse(derived, sizeof(derived));
        return true;
}

void ig_vault_free(char *plain, size_t len) {
        if (!plain)
                return;
        OPENSSL_cleanse(plain, len);
        free(plain);
}
