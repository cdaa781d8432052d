/*
 * oauth.c - shared OAuth 2.0 pieces (see oauth.h).
 */
#include "oauth.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "msgid.h"
#include "vault.h"

char *ig_oauth_url(const char *base, const char *path, size_t n,
                   const char *const *names, const char *const *values) {
        ig_buf_t b = {0};
        char *out;
        ig_buf_printf(&b, "%s%s", base, path);
        for (size_t i = 0; i < n; i++)
                if (values[i])
                        ig_buf_param(&b, names[i], values[i]);
        out = xstrdup(b.p);
        ig_buf_free(&b);
        return out;
}

ig_err_t ig_oauth_post(ig_job_t *job, const char *url, const char *route,
                       ig_client_auth_t how, size_t n, const char *const *names,
                       const char *const *values, json_t **out) {
        const char *nm[16], *vl[16];
        size_t k = 0;
        ig_req_t req = {0};
        ig_resp_t resp;
        char *form;
        ig_err_t err;

        *out = NULL;
        for (size_t i = 0; i < n && k < 14; i++, k++) {
                nm[k] = names[i];
                vl[k] = values[i];
        }
        if (how == IG_CLIENT_FORM) {
                nm[k] = "client_id";
                vl[k++] = job->ps->client_id;
                nm[k] = "client_secret";
                vl[k++] = job->ps->client_secret;
        } else {
                size_t len = strlen(job->ps->client_id) +
                             strlen(job->ps->client_secret) + 2;
                char *pair = xmalloc(len), *b64, *line;
                snprintf(pair, len, "%s:%s", job->ps->client_id,
                         job->ps->client_secret);
                b64 = ig_b64((const unsigned char *)pair, strlen(pair));
                line = xmalloc(strlen(b64) + 8);
                snprintf(line, strlen(b64) + 8, "Basic %s", b64);
                httpc_headers_add(&req.headers, "Authorization", line);
                ig_vault_free(pair, len);
                ig_vault_free(b64, strlen(b64));
                ig_vault_free(line, strlen(line));
        }
        form = ig_form(k, nm, vl);
        httpc_headers_add(&req.headers, "Content-Type",
                          "application/x-www-form-urlencoded");
        httpc_headers_add(&req.headers, "Accept", "application/json");
        req.method = "POST";
        req.url = url;
        req.route = route;
        req.body = slice_of(form);
        req.once = true;
        err = ig_http(job, &req, &resp);
        ig_vault_free(form, strlen(form));
        if (err == IG_OK && json_is_object(resp.json)) {
                *out = json_incref(resp.json);
        } else if (err == IG_OK) {
                ig_job_error(job, "token endpoint answered no JSON object");
                err = IG_PROVIDER;
        } else if (err == IG_REFUSED || err == IG_AUTH) {
                const char *code = ig_json_str(resp.json, "error");
                if (!code)
                        code = ig_json_str(resp.json, "status");
                ig_job_error(job, "token endpoint refused: %s (HTTP %ld)",
                             code ? code : "error", resp.status);
                err = IG_AUTH;
        }
        ig_resp_clear(&resp);
        return err;
}

void ig_oauth_creds(ig_creds_t *c, const json_t *tok, const char *expires_in,
                    const char *refresh_expires_in) {
        int64_t now = (int64_t)clock_wall_ms();
        int64_t ttl =
                ig_json_int(tok, expires_in ? expires_in : "expires_in", 0);
        int64_t rttl =
                ig_json_int(tok,
                            refresh_expires_in ? refresh_expires_in
                                               : "refresh_token_expires_in",
                            0);
        const char *rt = ig_json_str(tok, "refresh_token");
        ig_creds_set(&c->access_token, ig_json_str(tok, "access_token"));
        c->expires_at_ms = ttl > 0 ? now + ttl * 1000 : 0;
        if (rt && *rt) {
                if (c->refresh_token && strcmp(c->refresh_token, rt) != 0) {
                        ig_creds_set(&c->prev_refresh, c->refresh_token);
                        c->rotated_at_ms = now;
                }
                ig_creds_set(&c->refresh_token, rt);
                if (rttl > 0)
                        c->refresh_expires_at_ms = now + rttl * 1000;
        }
}

ig_err_t ig_oauth_refresh(ig_job_t *job, const char *url, const char *route,
                          ig_client_auth_t how) {
        const char *names[] = {"grant_type", "refresh_token"};
        const char *values[] = {"refresh_token", job->creds->refresh_token};
        json_t *tok = NULL;
        ig_err_t err;
        if (!job->creds->refresh_token) {
                ig_job_error(job, "no refresh token");
                return IG_AUTH;
        }
        err = ig_oauth_post(job, url, route, how, 2, names, values, &tok);
        if (err)
                return err;
        if (!ig_json_str(tok, "access_token")) {
                json_decref(tok);
                ig_job_error(job, "refresh answered no access token");
                return IG_PROVIDER;
        }
        ig_oauth_creds(job->creds, tok, NULL, NULL);
        json_decref(tok);
        job->creds_changed = true;
        return IG_OK;
}

ig_err_t ig_oauth_exchange(ig_job_t *job, const char *url, const char *route,
                           ig_client_auth_t how, const char *code,
                           const char *redirect_uri, const char *verifier,
                           ig_grant_t *out, json_t **tok) {
        const char *names[] = {"grant_type", "code", "redirect_uri",
                               "code_verifier"};
        const char *values[] = {"authorization_code", code, redirect_uri,
                                verifier && *verifier ? verifier : NULL};
        json_t *t = NULL;
        ig_err_t err =
                ig_oauth_post(job, url, route, how, 4, names, values, &t);
        if (tok)
                *tok = NULL;
        if (err)
                return err;
        if (!ig_json_str(t, "access_token")) {
                json_decref(t);
                ig_job_error(job, "the code exchange answered no access token");
                return IG_PROVIDER;
        }
        ig_oauth_creds(&out->creds, t, NULL, NULL);
        if (tok)
                *tok = t;
        else
                json_decref(t);
        return IG_OK;
}

const char *ig_oauth_code(ig_job_t *job, const ig_callback_t *cb,
                          const char *name, char *buf, size_t size) {
        char err[128];
        const char *code = ig_cb_get(cb, name ? name : "code", buf, size);
        if (ig_cb_get(cb, "error", err, sizeof(err))) {
                ig_job_error(job, "the user did not consent (%s)", err);
                return NULL;
        }
        if (!code || !*code) {
                ig_job_error(job, "the callback has no code");
                return NULL;
        }
        return code;
}
