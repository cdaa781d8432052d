/*
 * httpc_internal.h - what the files of the outbound HTTP client share
 * (httpc.c: the client and its thread; httpc_policy.c: its rules).
 */
#ifndef OMNIFY_HTTPC_INTERNAL_H
#define OMNIFY_HTTPC_INTERNAL_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

#include "httpc.h"

/* A CURLcode as one of ours. */
httpc_err_t httpc__translate(CURLcode rc);

/* s is a non-empty RFC 9110 token of at most max bytes. */
bool httpc__token(const char *s, size_t max);

/* A try of this request may be repeated without a second effect: the
 * method is not POST or PATCH, or an idempotency key goes with it. */
bool httpc__safe(const char *method, const char *idempotency_key);

#endif
