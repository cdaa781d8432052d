/*
 * dashboard.c - bench-dashboard: latency of GET requests through the edge,
 * one after another on one keep-alive connection (closed loop: the answer
 * time of one request, as a person loading a dashboard sees it), with a
 * token it signs itself for a tenant.
 *
 *   bench-dashboard -u URL -T TENANT [-n 100] [-w 5] [-r viewer]
 *
 * Signs with OMNIFY_JWT_SECRET (and the issuer, audience and kid settings)
 * for TENANT (a UUID, as tenant ids are) and a new user id;
 * prints one line: n, p50_ms, p90_ms, p99_ms, max_ms, mean_ms, bytes (of one
 * answer), non200. The first -w requests warm up and are not counted.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "msgid.h"
#include "token.h"

static size_t sink(char *p, size_t size, size_t n, void *arg) {
        *(size_t *)arg += size * n;
        (void)p;
        return size * n;
}

static int cmp(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
        static config_t cfg;
        const char *url = NULL, *tenant = NULL, *role = "viewer";
        int n = 100, warm = 5, opt, argi = 1, bad = 0;
        double *ms;
        size_t bytes = 0;
        token_keys_t keys;
        token_claims_t claims;
        char *token, auth[4200];
        struct curl_slist *headers = NULL;
        CURL *curl;
        config_load_or_exit(&cfg, CONFIG_SCOPE_EDGE, "bench-dashboard", argc,
                            argv, &argi);
        optind = argi;
        while ((opt = getopt(argc, argv, "u:T:n:w:r:")) != -1) {
                switch (opt) {
                case 'u':
                        url = optarg;
                        break;
                case 'T':
                        tenant = optarg;
                        break;
                case 'n':
                        n = atoi(optarg);
                        break;
                case 'w':
                        warm = atoi(optarg);
                        break;
                case 'r':
                        role = optarg;
                        break;
                default:
                        return 2;
                }
        }
        if (!url || !tenant || n < 1) {
                fprintf(stderr, "usage: bench-dashboard -u URL -T TENANT "
                                "[-n N] [-w W] [-r ROLE]\n");
                return 2;
        }
        keys = (token_keys_t){cfg.jwt_secret, cfg.jwt_issuer, cfg.jwt_audience,
                              cfg.jwt_kid};
        memset(&claims, 0, sizeof(claims));
        {
                msgid_t user;
                msgid_new(&user);
                msgid_format(&user, claims.sub);
        }
        snprintf(claims.tid, sizeof(claims.tid), "%s", tenant);
        snprintf(claims.roles, sizeof(claims.roles), "%s", role);
        token = token_sign(&keys, &claims, time(NULL), 3600);
        if (!token) {
                fprintf(stderr, "bench-dashboard: cannot sign a token\n");
                return 1;
        }
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        free(token);
        headers = curl_slist_append(headers, auth);
        curl = curl_easy_init();
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, sink);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
        ms = calloc((size_t)n, sizeof(*ms));
        for (int i = 0; i < warm + n; i++) {
                uint64_t t0 = clock_mono_ms();
                struct timespec a, b;
                long status = 0;
                size_t got = 0;
                clock_gettime(CLOCK_MONOTONIC, &a);
                curl_easy_setopt(curl, CURLOPT_WRITEDATA, &got);
                if (curl_easy_perform(curl) != CURLE_OK)
                        status = -1;
                else
                        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE,
                                          &status);
                clock_gettime(CLOCK_MONOTONIC, &b);
                (void)t0;
                if (i < warm)
                        continue;
                if (status != 200)
                        bad++;
                bytes = got;
                ms[i - warm] = (double)(b.tv_sec - a.tv_sec) * 1e3 +
                               (double)(b.tv_nsec - a.tv_nsec) / 1e6;
        }
        qsort(ms, (size_t)n, sizeof(*ms), cmp);
        {
                double sum = 0;
                for (int i = 0; i < n; i++)
                        sum += ms[i];
                printf("dashboard n=%d p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f "
                       "max_ms=%.2f mean_ms=%.2f bytes=%zu non200=%d\n",
                       n, ms[n / 2], ms[(int)(n * 0.9)],
                       ms[(int)(n * 0.99) < n ? (int)(n * 0.99) : n - 1],
                       ms[n - 1], sum / n, bytes, bad);
        }
        free(ms);
        curl_slist_free_all(headers);
        curl_easy_cleanup(curl);
        config_deinit(&cfg);
        return bad ? 1 : 0;
}
