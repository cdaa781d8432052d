/*
 * outbox_internal.h - what the files of the outbox share (outbox.c: the
 * records and their writing; outbox_send.c: the sender thread).
 */
#ifndef OMNIFY_OUTBOX_INTERNAL_H
#define OMNIFY_OUTBOX_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "outbox.h"
#include "ticker.h"

#define OUTBOX_NAME_MAX 64

/* A row of the kinds table with the outbox's series for it. */
typedef struct outbox_kind_state {
        const outbox_kind_t *kind;
        metrics_counter_t *sent, *failed, *retries, *queued;
} outbox_kind_state_t;

typedef struct outbox_job outbox_job_t;

struct outbox {
        const config_t *cfg;
        store_t *store;
        bus_t *bus;
        httpc_t *http;
        char group[OUTBOX_NAME_MAX];
        char db[OUTBOX_NAME_MAX];
        char coll[OUTBOX_NAME_MAX];
        char index_prefix[OUTBOX_NAME_MAX];
        char ns[3 * OUTBOX_NAME_MAX]; /* of derived message ids */
        char topic[256];
        outbox_kind_state_t *kinds;
        size_t n_kinds;
        bool hold;
        int poll_ms, batch, inflight_max;
        int64_t lease_ms, keep_ms;
        size_t max_body;
        atomic_bool stopping; /* the cancel flag of calls in flight */
        pthread_mutex_t lock; /* guards ticker, done and inflight */
        pthread_cond_t idle;  /* a job came back */
        ticker_t *ticker;
        outbox_job_t *done;   /* jobs back from httpc or the producer */
        int inflight;         /* jobs handed out, not yet collected */
        int inflight_retries; /* of which tries after a failed one */
        /* The sender's own. */
        bool indexed;
        bool store_down_logged;
};

/* The row of kind name, or NULL. */
outbox_kind_state_t *outbox__kind(outbox_t *ob, const char *name);

/* The sender's round (a ticker_fn). */
int64_t outbox__round(void *arg, const atomic_bool *stop);

/* After the sender stopped: wait for every job handed out and record it. */
void outbox__drain(outbox_t *ob);

/* Make the indexes; true when done (or not worth trying again). */
bool outbox__indexes_done(outbox_t *ob);

#endif
