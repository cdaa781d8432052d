/*
 * state.c - OAuth states and PKCE verifiers (see state.h).
 */
#include "state.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "msgid.h"
#include "vault.h"

#define STATE_NONCE 16
#define STATE_MAC 16

void ig_pkce_challenge(const char *verifier, char out[IG_PKCE_MAX]) {
        unsigned char d[SHA256_DIGEST_LENGTH];
        char *s;
        SHA256((const unsigned char *)verifier, strlen(verifier), d);
        s = ig_b64url(d, sizeof(d));
        snprintf(out, IG_PKCE_MAX, "%s", s);
        free(s);
}

/* What the MAC covers: every field the state binds, NUL-separated. */
static size_t state__msg(char *buf, size_t size, const char *nonce,
                         const char *provider, const char *tenant,
                         const char *user, const char *shop, int64_t exp) {
        int n = snprintf(buf, size, "%s%c%s%c%s%c%s%c%s%c%lld", nonce, 0,
                         provider, 0, tenant, 0, user, 0, shop ? shop : "", 0,
                         (long long)exp);
        return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

static bool state__mac(ig_state_t *st, const char *kid, const char *msg,
                       size_t len, char out[64]) {
        unsigned char mac[32];
        char *s;
        if (!ig_vault_mac(st->vault, kid, "oauth-state", msg, len, mac))
                return false;
        s = ig_b64url(mac, STATE_MAC);
        snprintf(out, 64, "%s", s);
        free(s);
        return true;
}

static ig_err_t state__store_err(store_err_t e, const char *errstr) {
        log_warn("oauth states: %s", errstr);
        return store_err_transient(e) ? IG_STORE_DOWN : IG_STORE;
}

ig_err_t ig_state_new(ig_state_t *st, const char *tenant, const char *user,
                      ig_provider_t p, const char *shop, bool pkce,
                      char state[IG_STATE_MAX], char challenge[IG_PKCE_MAX],
                      int64_t *expires_at_ms) {
        char nonce[32], mac[64], msg[1024], verifier[IG_PKCE_MAX], errstr[256];
        int64_t now = (int64_t)clock_wall_ms();
        int64_t exp = now + (int64_t)st->set->state_ttl_s * 1000;
        const char *prov = ig_provider_name(p);
        bson_t doc = BSON_INITIALIZER;
        size_t len;
        store_err_t e;

        if (!st->vault)
                return IG_NOT_CONFIGURED;
        ig_random_b64url(STATE_NONCE, nonce, sizeof(nonce));
        len = state__msg(msg, sizeof(msg), nonce, prov, tenant, user, shop,
                         exp);
        state__mac(st, NULL, msg, len, mac);
        snprintf(state, IG_STATE_MAX, "%s.%s", nonce, mac);
        challenge[0] = '\0';
        BSON_APPEND_UTF8(&doc, "_id", nonce);
        BSON_APPEND_UTF8(&doc, "provider", prov);
        BSON_APPEND_UTF8(&doc, "tenant", tenant);
        BSON_APPEND_UTF8(&doc, "user", user);
        BSON_APPEND_UTF8(&doc, "shop", shop ? shop : "");
        BSON_APPEND_UTF8(&doc, "kid", ig_vault_kid(st->vault));
        BSON_APPEND_INT64(&doc, "exp", exp);
        BSON_APPEND_BOOL(&doc, "used", false);
        BSON_APPEND_DATE_TIME(&doc, "created_at", now);
        BSON_APPEND_DATE_TIME(&doc, "expires_at", exp);
        if (pkce) {
                char aad[64];
                ig_random_b64url(32, verifier, sizeof(verifier));
                ig_pkce_challenge(verifier, challenge);
                snprintf(aad, sizeof(aad), "oauth-state|%s", nonce);
                ig_vault_seal(st->vault, aad, verifier, strlen(verifier), &doc,
                              "verifier");
                OPENSSL_cleanse(verifier, sizeof(verifier));
        }
        e = store_insert(st->store, IG_DB, IG_COLL_STATES, &doc, errstr,
                         sizeof(errstr));
        bson_destroy(&doc);
        if (e)
                return state__store_err(e, errstr);
        *expires_at_ms = exp;
        return IG_OK;
}

void ig_state_clear(ig_oauth_state_t *out) {
        OPENSSL_cleanse(out->verifier, sizeof(out->verifier));
}

static void state__copy(char *dst, size_t size, const bson_t *doc,
                        const char *key) {
        const char *v = ig_bson_str(doc, key);
        snprintf(dst, size, "%s", v ? v : "");
}

ig_err_t ig_state_take(ig_state_t *st, ig_provider_t p, const char *state,
                       ig_oauth_state_t *out) {
        const char *dot = state ? strchr(state, '.') : NULL;
        const char *prov = ig_provider_name(p);
        char nonce[40], mac[64], msg[1024], errstr[256];
        int64_t now = (int64_t)clock_wall_ms(), exp;
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, gt,
               doc, taken;
        store_err_t e;
        ig_err_t err = IG_BAD_INPUT;
        size_t len;

        memset(out, 0, sizeof(*out));
        if (!st->vault)
                return IG_NOT_CONFIGURED;
        if (!dot || dot == state || (size_t)(dot - state) >= sizeof(nonce) ||
            strlen(dot + 1) >= 40)
                return IG_BAD_INPUT;
        memcpy(nonce, state, (size_t)(dot - state));
        nonce[dot - state] = '\0';
        BSON_APPEND_UTF8(&filter, "_id", nonce);
        e = store_find_one(st->store, IG_DB, IG_COLL_STATES, &filter, NULL,
                           &doc, errstr, sizeof(errstr));
        if (e == STORE_NOT_FOUND) {
                bson_destroy(&filter);
                return IG_BAD_INPUT;
        }
        if (e) {
                bson_destroy(&filter);
                return state__store_err(e, errstr);
        }
        exp = ig_bson_int(&doc, "exp", 0);
        len = state__msg(
                msg, sizeof(msg), nonce, prov,
                ig_bson_str(&doc, "tenant") ? ig_bson_str(&doc, "tenant") : "",
                ig_bson_str(&doc, "user") ? ig_bson_str(&doc, "user") : "",
                ig_bson_str(&doc, "shop"), exp);
        /* The MAC first (with this provider: a state made for another
         * provider does not match), then the expiry, then the one use. */
        if (!state__mac(st, ig_bson_str(&doc, "kid"), msg, len, mac) ||
            !ig_equal(mac, strlen(mac), dot + 1, strlen(dot + 1)) || exp <= now)
                goto done;
        BSON_APPEND_BOOL(&filter, "used", false);
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "expires_at", &gt);
        BSON_APPEND_DATE_TIME(&gt, "$gt", now);
        bson_append_document_end(&filter, &gt);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_BOOL(&set, "used", true);
        BSON_APPEND_DATE_TIME(&set, "used_at", now);
        bson_append_document_end(&update, &set);
        e = store_find_and_modify(st->store, IG_DB, IG_COLL_STATES, &filter,
                                  NULL, &update, false, false, &taken, errstr,
                                  sizeof(errstr));
        if (e == STORE_NOT_FOUND)
                goto done; /* used meanwhile */
        if (e) {
                err = state__store_err(e, errstr);
                goto done;
        }
        bson_destroy(&taken);
        state__copy(out->tenant, sizeof(out->tenant), &doc, "tenant");
        state__copy(out->user, sizeof(out->user), &doc, "user");
        state__copy(out->shop, sizeof(out->shop), &doc, "shop");
        err = IG_OK;
        {
                char aad[64], *plain = NULL;
                size_t plen = 0;
                ig_err_t ve;
                snprintf(aad, sizeof(aad), "oauth-state|%s", nonce);
                ve = ig_vault_open(st->vault, aad, &doc, "verifier", &plain,
                                   &plen);
                if (ve == IG_OK) {
                        snprintf(out->verifier, sizeof(out->verifier), "%s",
                                 plain);
                        ig_vault_free(plain, plen);
                } else if (ve != IG_GONE) {
                        err = IG_CRYPTO;
                }
        }
done:
        bson_destroy(&doc);
        bson_destroy(&filter);
        bson_destroy(&update);
        return err;
}
