/*
 * ticker.h - a worker thread that runs rounds: as soon as it is kicked,
 * when the time its last round asked for comes, and at least every poll
 * interval.
 *
 * The outbox sender and the timer firing thread are tickers: each round
 * claims what is due in the store and says when the next thing it knows of
 * falls due; a local enqueue or timer_set kicks it so that it does not wait
 * for the next poll to learn of work this process just wrote.
 *
 * Thread-safety: ticker_kick may be called from any thread.
 */
#ifndef OMNIFY_TICKER_H
#define OMNIFY_TICKER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ticker ticker_t;

/* One round. Returns the wall-clock ms of the next thing it knows is due
 * (INT64_MAX: nothing known: the poll interval decides). stop is up when
 * the ticker is being stopped: end the round soon. */
typedef int64_t (*ticker_fn)(void *arg, const atomic_bool *stop);

/* Start the thread; it logs under group (a static string). NULL and
 * errstr on failure. */
ticker_t *ticker_start(const char *group, int poll_ms, ticker_fn fn, void *arg,
                       char *errstr, size_t errlen);

/* Run a round no later than at_ms (wall clock; 0: now). */
void ticker_kick(ticker_t *t, int64_t at_ms);

/* The flag rounds see (for work that must end early: in-flight calls). */
const atomic_bool *ticker_stopping(const ticker_t *t);

/* Raise the stop flag, wake the thread, wait for the round under way to
 * end, free. NULL ok. */
void ticker_stop(ticker_t *t);

#endif
