/*
 * httpc_policy.c - the outbound client's rules, apart from its thread:
 * errors and their translation from libcurl, header lists, what an answer
 * means (verdicts), Retry-After, and which part of a URL may be shown
 * (see httpc.h). Nothing here does I/O.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "httpc.h"
#include "httpc_internal.h"

static const char *httpc_errors[] = {
#define X(name, msg) msg,
        HTTPC_ERRORS(X)
#undef X
};

const char *httpc_strerror(httpc_err_t err) {
        if ((unsigned)err >= sizeof(httpc_errors) / sizeof(httpc_errors[0]))
                return "unknown HTTP client error";
        return httpc_errors[err];
}

httpc_err_t httpc__translate(CURLcode rc) {
        switch (rc) {
        case CURLE_OK:
                return HTTPC_OK;
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
        case CURLE_BAD_FUNCTION_ARGUMENT:
                return HTTPC_BAD_REQUEST;
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_COULDNT_RESOLVE_HOST:
                return HTTPC_RESOLVE;
        case CURLE_COULDNT_CONNECT:
                return HTTPC_CONNECT;
        case CURLE_OPERATION_TIMEDOUT:
                return HTTPC_TIMEOUT;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
        case CURLE_SSL_CRL_BADFILE:
        case CURLE_SSL_ENGINE_NOTFOUND:
        case CURLE_SSL_ENGINE_SETFAILED:
        case CURLE_SSL_ENGINE_INITFAILED:
        case CURLE_SSL_SHUTDOWN_FAILED:
                return HTTPC_TLS;
        case CURLE_SEND_ERROR:
                return HTTPC_SEND;
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_WEIRD_SERVER_REPLY:
        case CURLE_BAD_CONTENT_ENCODING:
                return HTTPC_RECV;
        case CURLE_FILESIZE_EXCEEDED:
                return HTTPC_TOO_LARGE;
        case CURLE_TOO_MANY_REDIRECTS:
                return HTTPC_REDIRECTS;
        case CURLE_OUT_OF_MEMORY:
                return HTTPC_NO_MEMORY;
        case CURLE_ABORTED_BY_CALLBACK:
                return HTTPC_CANCELLED;
        default:
                return HTTPC_ERROR;
        }
}

/* ---------------------------------------------------------------------------
 * Header lists
 * ------------------------------------------------------------------------ */

/* RFC 9110 token characters. */
static bool httpc__tchar(unsigned char c) {
        return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

bool httpc__token(const char *s, size_t max) {
        size_t n = 0;
        if (!s || !*s)
                return false;
        for (; s[n]; n++)
                if (n >= max || !httpc__tchar((unsigned char)s[n]))
                        return false;
        return true;
}

bool httpc_headers_add(httpc_headers_t *h, const char *name,
                       const char *value) {
        size_t len;
        char *line;

        if (!httpc__token(name, 128) || !value || strpbrk(value, "\r\n"))
                return false;
        if (h->n == h->cap) {
                h->cap = h->cap ? h->cap * 2 : 8;
                h->lines = xrealloc(h->lines, h->cap * sizeof(*h->lines));
        }
        len = strlen(name) + strlen(value) + 3;
        line = xmalloc(len);
        /* curl drops a header written "Name:" with nothing after it, and
         * sends "Name;" as an empty one. */
        if (*value)
                snprintf(line, len, "%s: %s", name, value);
        else
                snprintf(line, len, "%s;", name);
        h->lines[h->n++] = line;
        return true;
}

bool httpc_headers_add_line(httpc_headers_t *h, const char *line) {
        char name[129];
        const char *sep = line ? strpbrk(line, ":;") : NULL;
        size_t n = sep ? (size_t)(sep - line) : 0;

        if (!sep || n == 0 || n >= sizeof(name))
                return false;
        memcpy(name, line, n);
        name[n] = '\0';
        if (*sep == ';')
                return sep[1] == '\0' && httpc_headers_add(h, name, "");
        sep++;
        while (*sep == ' ')
                sep++;
        return httpc_headers_add(h, name, sep);
}

void httpc_headers_deinit(httpc_headers_t *h) {
        if (!h)
                return;
        for (size_t i = 0; i < h->n; i++) {
                OPENSSL_cleanse(h->lines[i], strlen(h->lines[i]));
                free(h->lines[i]);
        }
        free(h->lines);
        *h = HTTPC_HEADERS_INIT;
}

/* ---------------------------------------------------------------------------
 * Responses
 * ------------------------------------------------------------------------ */

void httpc_response_deinit(httpc_response_t *resp) {
        if (!resp)
                return;
        free(resp->body);
        free(resp->headers);
        resp->body = resp->headers = NULL;
        resp->body_len = resp->headers_len = 0;
}

slice_t httpc_response_header(const httpc_response_t *resp, const char *name) {
        size_t nlen = strlen(name);
        const char *p, *end;

        if (!resp || !resp->headers)
                return SLICE_NULL;
        p = resp->headers;
        end = p + resp->headers_len;
        while (p < end) {
                const char *eol = memchr(p, '\n', (size_t)(end - p));
                const char *next = eol ? eol + 1 : end;
                const char *v, *vend;
                if (!eol)
                        eol = end;
                if ((size_t)(eol - p) > nlen && p[nlen] == ':' &&
                    strncasecmp(p, name, nlen) == 0) {
                        v = p + nlen + 1;
                        vend = eol;
                        while (v < vend && (*v == ' ' || *v == '\t'))
                                v++;
                        while (vend > v &&
                               (vend[-1] == '\r' || vend[-1] == ' ' ||
                                vend[-1] == '\t'))
                                vend--;
                        return (slice_t){v, (size_t)(vend - v)};
                }
                p = next;
        }
        return SLICE_NULL;
}

int64_t httpc_parse_retry_after(slice_t value, int64_t now_ms) {
        char buf[64];
        time_t at;
        size_t i;

        if (!value.ptr || value.len == 0 || value.len >= sizeof(buf))
                return -1;
        for (i = 0; i < value.len && isdigit((unsigned char)value.ptr[i]); i++)
                ;
        if (i == value.len) {
                /* delay-seconds; absurd values saturate (callers cap). */
                int64_t s = 0;
                for (i = 0; i < value.len && s < INT64_MAX / 10000; i++)
                        s = s * 10 + (value.ptr[i] - '0');
                return s >= INT64_MAX / 10000 ? INT64_MAX / 10 : s * 1000;
        }
        memcpy(buf, value.ptr, value.len);
        buf[value.len] = '\0';
        at = curl_getdate(buf, NULL);
        if (at == (time_t)-1)
                return -1;
        return (int64_t)at * 1000 > now_ms ? (int64_t)at * 1000 - now_ms : 0;
}

/* ---------------------------------------------------------------------------
 * Verdicts
 * ------------------------------------------------------------------------ */

bool httpc__safe(const char *method, const char *idempotency_key) {
        if (idempotency_key && *idempotency_key)
                return true;
        return !method ||
               (strcmp(method, "POST") != 0 && strcmp(method, "PATCH") != 0);
}

httpc_verdict_t httpc_classify(const httpc_request_t *req,
                               const httpc_response_t *resp) {
        bool safe = httpc__safe(req->method, req->idempotency_key);
        long s = resp->status;

        if (req->retry.classify) {
                httpc_verdict_t v =
                        req->retry.classify(req->retry.classify_arg, resp);
                if (v != HTTPC_VERDICT_DEFAULT)
                        return v;
        }
        switch (resp->err) {
        case HTTPC_OK:
                break;
        case HTTPC_RESOLVE:
        case HTTPC_CONNECT:
        case HTTPC_NOT_STARTED:
                return HTTPC_VERDICT_RETRY; /* nothing was sent */
        case HTTPC_TIMEOUT:
        case HTTPC_SEND:
        case HTTPC_RECV:
                return safe ? HTTPC_VERDICT_RETRY : HTTPC_VERDICT_FAILED;
        default:
                return HTTPC_VERDICT_FAILED;
        }
        if (s >= 200 && s < 300)
                return HTTPC_VERDICT_OK;
        if (s == 429)
                return HTTPC_VERDICT_RATE_LIMITED;
        if (s == 408 || s == 425 || s == 503)
                return HTTPC_VERDICT_RETRY; /* refused before any work */
        if (s >= 500 && s < 600)
                return safe ? HTTPC_VERDICT_RETRY : HTTPC_VERDICT_FAILED;
        return HTTPC_VERDICT_FAILED;
}

/* ---------------------------------------------------------------------------
 * URLs
 * ------------------------------------------------------------------------ */

bool httpc_url_parts(const char *url, char *host, size_t host_size, char *path,
                     size_t path_size) {
        CURLU *u = curl_url();
        char *scheme = NULL, *h = NULL, *port = NULL, *p = NULL;
        bool ok = false;

        if (!u || !url)
                goto done;
        if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
                goto done;
        if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
            (strcasecmp(scheme, "http") != 0 &&
             strcasecmp(scheme, "https") != 0))
                goto done;
        if (curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK || !*h)
                goto done;
        if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
                port = NULL; /* none written: the scheme's */
        if (curl_url_get(u, CURLUPART_PATH, &p, 0) != CURLUE_OK)
                p = NULL;
        if (host && host_size) {
                int n = port ? snprintf(host, host_size, "%s:%s", h, port)
                             : snprintf(host, host_size, "%s", h);
                if (n < 0 || (size_t)n >= host_size)
                        goto done;
                for (char *c = host; *c; c++)
                        *c = (char)tolower((unsigned char)*c);
        }
        if (path && path_size)
                snprintf(path, path_size, "%s", p && *p ? p : "/");
        ok = true;
done:
        curl_free(scheme);
        curl_free(h);
        curl_free(port);
        curl_free(p);
        curl_url_cleanup(u);
        return ok;
}
