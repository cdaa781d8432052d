/*
 * log.c - JSON-lines logging (see log.h).
 *
 * Each line is built in a stack buffer and written with one write(2), so lines
 * from different threads never interleave.
 */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

log_level_t log__level = LOG_LEVEL_INFO;
static const char *log_process = "omnify";

static __thread const char *tl_group;
static __thread char tl_msg_id[40];
static __thread char tl_corr_id[40];
static __thread char tl_trace_id[33];

static const char *level_names[] = {"debug", "info", "warn", "error"};

void log_init(log_level_t level, const char *process) {
        log__level = level;
        if (process)
                log_process = process;
}

void log_set_group(const char *group) {
        tl_group = group;
}

static void copy_id(char *dst, size_t size, const char *src) {
        if (!src) {
                dst[0] = '\0';
                return;
        }
        snprintf(dst, size, "%s", src);
}

void log_set_ids(const char *msg_id, const char *corr_id) {
        copy_id(tl_msg_id, sizeof(tl_msg_id), msg_id);
        copy_id(tl_corr_id, sizeof(tl_corr_id), corr_id);
}

void log_set_trace(const char *tp, size_t len) {
        /* 00-<32 hex trace id>-<16 hex span>-<2 hex flags> */
        tl_trace_id[0] = '\0';
        if (!tp || len != 55 || tp[2] != '-' || tp[35] != '-')
                return;
        for (size_t i = 3; i < 35; i++) {
                char c = tp[i];
                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
                        return;
        }
        memcpy(tl_trace_id, tp + 3, 32);
        tl_trace_id[32] = '\0';
}

void log_context_clear(void) {
        tl_msg_id[0] = '\0';
        tl_corr_id[0] = '\0';
        tl_trace_id[0] = '\0';
}

/* Append s to buf as the inside of a JSON string; returns new length. */
static size_t json_escape(char *buf, size_t len, size_t cap, const char *s) {
        static const char hex[] = "0123456789abcdef";
        for (; *s && len + 7 < cap; s++) {
                unsigned char c = (unsigned char)*s;
                if (c == '"' || c == '\\') {
                        buf[len++] = '\\';
                        buf[len++] = (char)c;
                } else if (c == '\n') {
                        buf[len++] = '\\';
                        buf[len++] = 'n';
                } else if (c < 0x20) {
                        memcpy(buf + len, "\\u00", 4);
                        buf[len + 4] = hex[c >> 4];
                        buf[len + 5] = hex[c & 15];
                        len += 6;
                } else {
                        buf[len++] = (char)c;
                }
        }
        return len;
}

void log__write(log_level_t level, const char *fmt, ...) {
        char msg[1024];
        char line[2048];
        struct timeval tv;
        struct tm tm;
        size_t len;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);

        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        len = (size_t)snprintf(
                line, sizeof(line),
                "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\","
                "\"level\":\"%s\",\"process\":\"%s\"",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000),
                level_names[level & 3], log_process);
        if (tl_group)
                len += (size_t)snprintf(line + len, sizeof(line) - len,
                                        ",\"group\":\"%s\"", tl_group);
        if (tl_msg_id[0])
                len += (size_t)snprintf(line + len, sizeof(line) - len,
                                        ",\"msg_id\":\"%s\"", tl_msg_id);
        if (tl_corr_id[0])
                len += (size_t)snprintf(line + len, sizeof(line) - len,
                                        ",\"correlation_id\":\"%s\"",
                                        tl_corr_id);
        if (tl_trace_id[0])
                len += (size_t)snprintf(line + len, sizeof(line) - len,
                                        ",\"trace_id\":\"%s\"", tl_trace_id);
        memcpy(line + len, ",\"msg\":\"", 8);
        len += 8;
        len = json_escape(line, len, sizeof(line) - 3, msg);
        memcpy(line + len, "\"}\n", 3);
        len += 3;
        if (write(STDERR_FILENO, line, len) < 0) {
                /* Nowhere left to report a failing stderr. */
        }
}
