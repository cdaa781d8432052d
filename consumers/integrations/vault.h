/*
 * vault.h - credentials encrypted at rest: AES-256-GCM under a key id.
 *
 * The keys come from OMNIFY_INTEGRATIONS_TOKEN_KEYS ("kid:base64,...", 32
 * bytes each); the first one encrypts, every one decrypts, so keys rotate:
 * add a new key first, re-encrypt (`omnify integrations rekey`), drop the
 * old. A sealed value is stored as {kid, iv (12 random bytes), ct
 * (ciphertext and its 16-byte tag)}, and its additional data binds it to
 * its record (the caller's aad, e.g. the connection id, tenant and
 * provider), so a ciphertext moved to another record does not open.
 *
 * Plaintexts given back are the caller's to wipe (ig_vault_free).
 * Thread-safety: a vault is immutable once made; any thread may use it.
 */
#ifndef OMNIFY_IG_VAULT_H
#define OMNIFY_IG_VAULT_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>

#include "ig.h"

#define IG_VAULT_KID_MAX 32

/* The keys of the setting's value. NULL and errstr when it is malformed
 * (never naming a key's bytes); NULL without errstr when it is empty. */
ig_vault_t *ig_vault_new(const char *keys, char *errstr, size_t errlen);
/* Wipe the keys and free. NULL ok. */
void ig_vault_destroy(ig_vault_t *v);

/* The id of the key that encrypts. */
const char *ig_vault_kid(const ig_vault_t *v);
/* Whether the key with this id is configured. */
bool ig_vault_has(const ig_vault_t *v, const char *kid);

/* Encrypt plain under the current key, bound to aad; append it to doc as
 * the sub-document `field`. */
void ig_vault_seal(const ig_vault_t *v, const char *aad, const void *plain,
                   size_t len, bson_t *doc, const char *field);

/* Decrypt the sub-document `field` of doc: IG_OK and a new NUL-terminated
 * plaintext (*plain, *len); IG_CRYPTO when its key is not configured, the
 * record is malformed or the tag does not match (tampered, moved, wrong
 * key); IG_GONE when doc has no such field. */
ig_err_t ig_vault_open(const ig_vault_t *v, const char *aad, const bson_t *doc,
                       const char *field, char **plain, size_t *len);

/* The key id a sealed field of doc was made with, or NULL. */
const char *ig_vault_kid_of(const bson_t *doc, const char *field);

/* HMAC-SHA256 of data under a key derived from the key kid (NULL: the
 * current one) for one purpose ("oauth-state"): the key itself never
 * signs. false when kid is not configured. */
bool ig_vault_mac(const ig_vault_t *v, const char *kid, const char *purpose,
                  const void *data, size_t len, unsigned char out[32]);

/* Wipe and free a plaintext. NULL ok. */
void ig_vault_free(char *plain, size_t len);

#endif
