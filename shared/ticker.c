/*
 * ticker.c - a thread of rounds (see ticker.h).
 */
#include "ticker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "alloc.h"
#include "log.h"
#include "msgid.h"

struct ticker {
        const char *group;
        int poll_ms;
        ticker_fn fn;
        void *arg;
        pthread_t thread;
        pthread_mutex_t lock; /* guards due_ms and the wait on wake */
        pthread_cond_t wake;
        int64_t due_ms; /* wall clock of the next round asked for */
        atomic_bool stopping;
};

static void *ticker__main(void *arg) {
        ticker_t *t = arg;

        log_set_group(t->group);
        while (!atomic_load(&t->stopping)) {
                int64_t next, now, wait;
                struct timespec ts;

                pthread_mutex_lock(&t->lock);
                t->due_ms = INT64_MAX; /* a kick from now on counts */
                pthread_mutex_unlock(&t->lock);
                next = t->fn(t->arg, &t->stopping);

                pthread_mutex_lock(&t->lock);
                if (next < t->due_ms)
                        t->due_ms = next;
                for (;;) {
                        now = (int64_t)clock_wall_ms();
                        wait = t->due_ms - now;
                        if (wait > t->poll_ms)
                                wait = t->poll_ms;
                        if (wait <= 0 || atomic_load(&t->stopping))
                                break;
                        clock_gettime(CLOCK_MONOTONIC, &ts);
                        ts.tv_sec += wait / 1000;
                        ts.tv_nsec += (wait % 1000) * 1000000L;
                        if (ts.tv_nsec >= 1000000000L) {
                                ts.tv_sec++;
                                ts.tv_nsec -= 1000000000L;
                        }
                        if (pthread_cond_timedwait(&t->wake, &t->lock, &ts))
                                break; /* timed out: the poll interval */
                }
                pthread_mutex_unlock(&t->lock);
        }
        log_context_clear();
        return NULL;
}

ticker_t *ticker_start(const char *group, int poll_ms, ticker_fn fn, void *arg,
                       char *errstr, size_t errlen) {
        ticker_t *t = xcalloc(1, sizeof(*t));
        pthread_condattr_t attr;

        t->group = group;
        t->poll_ms = poll_ms > 0 ? poll_ms : 1000;
        t->fn = fn;
        t->arg = arg;
        t->due_ms = 0;
        atomic_init(&t->stopping, false);
        pthread_mutex_init(&t->lock, NULL);
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&t->wake, &attr);
        pthread_condattr_destroy(&attr);
        if (pthread_create(&t->thread, NULL, ticker__main, t)) {
                snprintf(errstr, errlen, "%s: cannot start a thread", group);
                pthread_cond_destroy(&t->wake);
                pthread_mutex_destroy(&t->lock);
                free(t);
                return NULL;
        }
        return t;
}

void ticker_kick(ticker_t *t, int64_t at_ms) {
        if (!t)
                return;
        pthread_mutex_lock(&t->lock);
        if (at_ms < t->due_ms) {
                t->due_ms = at_ms;
                pthread_cond_signal(&t->wake);
        }
        pthread_mutex_unlock(&t->lock);
}

const atomic_bool *ticker_stopping(const ticker_t *t) {
        return &t->stopping;
}

void ticker_stop(ticker_t *t) {
        if (!t)
                return;
        pthread_mutex_lock(&t->lock);
        atomic_store(&t->stopping, true);
        pthread_cond_signal(&t->wake);
        pthread_mutex_unlock(&t->lock);
        pthread_join(t->thread, NULL);
        pthread_cond_destroy(&t->wake);
        pthread_mutex_destroy(&t->lock);
        free(t);
}
