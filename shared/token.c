/*
 * token.c - HS256 access tokens with libjwt (see token.h).
 */
#include "token.h"

#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msgid.h"

#define TOKEN_SKEW_S 30

static const char *token_errors[] = {
#define X(name, msg) msg,
        TOKEN_ERRORS(X)
#undef X
};

const char *token_strerror(token_err_t err) {
        if ((unsigned)err >= sizeof(token_errors) / sizeof(token_errors[0]))
                return "unknown token error";
        return token_errors[err];
}

/* Ids in tokens become Kafka headers and log fields: only UUIDs. */
static int token__is_id(const char *s) {
        msgid_t id;
        return s && msgid_parse(s, strlen(s), &id);
}

char *token_sign(const token_keys_t *keys, const token_claims_t *claims,
                 time_t now, int ttl_s) {
        jwt_t *jwt = NULL;
        char *out = NULL, jti[MSGID_TEXT_SIZE];
        json_t *roles = NULL, *wrap = NULL;
        char *roles_json = NULL;
        msgid_t id;

        if (jwt_new(&jwt))
                return NULL;
        msgid_new(&id);
        msgid_format(&id, jti);
        roles = json_array();
        for (const char *p = claims->roles; *p;) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t)(comma - p) : strlen(p);
                if (len)
                        json_array_append_new(roles, json_stringn(p, len));
                p += len + (comma ? 1 : 0);
        }
        wrap = json_pack("{s:O}", "roles", roles);
        roles_json = wrap ? json_dumps(wrap, JSON_COMPACT) : NULL;
        if (!roles_json ||
            jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)keys->secret,
                        (int)strlen(keys->secret)) ||
            jwt_add_header(jwt, "kid", keys->kid) ||
            jwt_add_grant(jwt, "iss", keys->issuer) ||
            jwt_add_grant(jwt, "aud", keys->audience) ||
            jwt_add_grant(jwt, "sub", claims->sub) ||
            jwt_add_grant(jwt, "tid", claims->tid) ||
            jwt_add_grant(jwt, "jti", jti) ||
            jwt_add_grant_int(jwt, "iat", (long)now) ||
            jwt_add_grant_int(jwt, "nbf", (long)now) ||
            jwt_add_grant_int(jwt, "exp", (long)now + ttl_s) ||
            jwt_add_grants_json(jwt, roles_json) ||
            (claims->sid[0] && jwt_add_grant(jwt, "sid", claims->sid)) ||
            jwt_add_grant_int(jwt, "tv", (long)claims->tv))
                goto out;
        out = jwt_encode_str(jwt);
out:
        free(roles_json);
        json_decref(wrap);
        json_decref(roles);
        jwt_free(jwt);
        return out;
}

static token_err_t token__roles(jwt_t *jwt, token_claims_t *claims) {
        char *text = jwt_get_grants_json(jwt, "roles");
        json_t *arr;
        size_t i, off = 0;
        json_t *v;
        token_err_t err = TOKEN_OK;

        claims->roles[0] = '\0';
        if (!text)
                return TOKEN_OK; /* no roles: fine, nothing is granted */
        arr = json_loads(text, 0, NULL);
        free(text);
        if (!json_is_array(arr)) {
                json_decref(arr);
                return TOKEN_MALFORMED;
        }
        json_array_foreach(arr, i, v) {
                const char *r = json_string_value(v);
                size_t len;
                if (!r) {
                        err = TOKEN_MALFORMED;
                        break;
                }
                len = strlen(r);
                for (size_t k = 0; k < len; k++)
                        if (!((r[k] >= 'a' && r[k] <= 'z') || r[k] == '_'))
                                err = TOKEN_MALFORMED;
                if (err || off + len + 2 > sizeof(claims->roles)) {
                        err = TOKEN_MALFORMED;
                        break;
                }
                off += (size_t)snprintf(claims->roles + off,
                                        sizeof(claims->roles) - off, "%s%s",
                                        off ? "," : "", r);
        }
        json_decref(arr);
        return err;
}

token_err_t token_verify(const token_keys_t *keys, slice_t token, time_t now,
                         token_claims_t *claims) {
        char buf[TOKEN_MAX_LEN + 1];
        jwt_t *jwt = NULL;
        const char *s;
        long exp, nbf;
        token_err_t err = TOKEN_OK;
        int dots = 0;

        memset(claims, 0, sizeof(*claims));
        if (token.len == 0 || token.len > TOKEN_MAX_LEN)
                return TOKEN_MALFORMED;
        for (size_t i = 0; i < token.len; i++) {
                char c = token.ptr[i];
                if (c == '.')
                        dots++;
                else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '-' || c == '_'))
                        return TOKEN_MALFORMED;
        }
        if (dots != 2)
                return TOKEN_MALFORMED;
        memcpy(buf, token.ptr, token.len);
        buf[token.len] = '\0';

        /* Always with the key, then pin the algorithm. */
        if (jwt_decode(&jwt, buf, (const unsigned char *)keys->secret,
                       (int)strlen(keys->secret)) != 0 ||
            !jwt)
                return TOKEN_BAD_SIGNATURE;
        if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
                err = TOKEN_BAD_ALG;
                goto out;
        }
        s = jwt_get_header(jwt, "kid");
        if (!s || strcmp(s, keys->kid) != 0) {
                err = TOKEN_BAD_KID;
                goto out;
        }
        s = jwt_get_grant(jwt, "iss");
        if (!s || strcmp(s, keys->issuer) != 0) {
                err = TOKEN_BAD_ISSUER;
                goto out;
        }
        s = jwt_get_grant(jwt, "aud");
        if (!s || strcmp(s, keys->audience) != 0) {
                err = TOKEN_BAD_AUDIENCE;
                goto out;
        }
        errno = 0;
        exp = jwt_get_grant_int(jwt, "exp");
        if (errno == ENOENT || exp <= 0) {
                err = TOKEN_MISSING_CLAIM;
                goto out;
        }
        if ((long)now - TOKEN_SKEW_S > exp) { /* exp + skew could overflow */
                err = TOKEN_EXPIRED;
                goto out;
        }
        errno = 0;
        nbf = jwt_get_grant_int(jwt, "nbf");
        if (errno != ENOENT && (long)now + TOKEN_SKEW_S < nbf) {
                err = TOKEN_NOT_YET_VALID;
                goto out;
        }
        s = jwt_get_grant(jwt, "sub");
        if (!token__is_id(s)) {
                err = TOKEN_MISSING_CLAIM;
                goto out;
        }
        snprintf(claims->sub, sizeof(claims->sub), "%s", s);
        s = jwt_get_grant(jwt, "tid");
        if (!token__is_id(s)) {
                err = TOKEN_MISSING_CLAIM;
                goto out;
        }
        snprintf(claims->tid, sizeof(claims->tid), "%s", s);
        claims->exp = exp;
        s = jwt_get_grant(jwt, "sid");
        if (s) {
                if (!token__is_id(s)) {
                        err = TOKEN_MISSING_CLAIM;
                        goto out;
                }
                snprintf(claims->sid, sizeof(claims->sid), "%s", s);
        }
        errno = 0;
        claims->tv = jwt_get_grant_int(jwt, "tv");
        if (errno == ENOENT || claims->tv < 0)
                claims->tv = 0;
        err = token__roles(jwt, claims);
out:
        jwt_free(jwt);
        return err;
}
