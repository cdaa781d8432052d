/*
 * log.h - JSON-lines logging.
 *
 * One JSON object per line on stderr: time, level, group, message id,
 * correlation id, message. The level is checked before anything is
 * formatted. The group and the ids come from a thread-local context that the
 * runtime sets around each handled message, so handlers need not pass them.
 *
 * Secrets are never logged: callers pass ids and counts, never bodies,
 * passwords, tokens or hashes.
 */
#ifndef OMNIFY_LOG_H
#define OMNIFY_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef enum log_level {
        LOG_LEVEL_DEBUG = 0,
        LOG_LEVEL_INFO = 1,
        LOG_LEVEL_WARN = 2,
        LOG_LEVEL_ERROR = 3,
} log_level_t;

extern log_level_t log__level;

/* Set the process-wide level and the process name used when no group is set. */
void log_init(log_level_t level, const char *process);

/* Thread-local context: group name (static string), message and correlation
 * ids and the W3C trace id (copied, may be NULL). traceparent is a whole
 * W3C header value; only its trace id is kept, and only if well formed.
 * log_context_clear() resets ids, keeps the group. */
void log_set_group(const char *group);
void log_set_ids(const char *msg_id, const char *corr_id);
void log_set_trace(const char *traceparent, size_t len);
void log_context_clear(void);

void log__write(log_level_t level, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

#define LOG_AT(lvl, ...)                                \
        do {                                            \
                if ((lvl) >= log__level)                \
                        log__write((lvl), __VA_ARGS__); \
        } while (0)

#define log_debug(...) LOG_AT(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) LOG_AT(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) LOG_AT(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) LOG_AT(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
