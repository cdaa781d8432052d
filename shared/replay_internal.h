/*
 * replay_internal.h - what the replay driver's files share: replay.c (the
 * record, which replay this is, the reading loop and checkpoints),
 * replay_run.c (the set-up and the phases), replay_fold.c (the folding) and
 * replay_kafka.c (the consumer). Everything here belongs to the one thread
 * running replay_run.
 */
#ifndef OMNIFY_REPLAY_INTERNAL_H
#define OMNIFY_REPLAY_INTERNAL_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>

#include "replay.h"

typedef struct rpart {
        char topic[256]; /* prefixed */
        char name[256];  /* unprefixed */
        int32_t partition;
        int64_t start, end; /* the build: [start, end) */
        int64_t pos;        /* the next offset to read */
        int64_t target;     /* the goal of the phase under way */
        rd_kafka_topic_t *rkt;
} rpart_t;

typedef struct rworker rworker_t;

typedef struct replay {
        const replay_opts_t *o;
        replay_result_t *res;
        char id[MSGID_TEXT_SIZE];
        char group_id[320];
        slice_t tenant;
        rd_kafka_t *rk;
        rd_kafka_queue_t *q;
        rpart_t *parts;
        size_t n_parts;
        /* The selected folds, their versions, and the workers folding
         * (replay_fold.c). */
        size_t n_sel;
        const replay_fold_t *sel[REPLAY_MAX_PROJECTIONS];
        int64_t version[REPLAY_MAX_PROJECTIONS];
        replay_target_t target[REPLAY_MAX_PROJECTIONS];
        rworker_t **workers;
        int n_workers;
        atomic_int bad_logged;
        const char *phase;
        uint64_t t0_ms, last_report_ms, last_checkpoint_ms;
        int64_t events, last_report_events;
        int64_t rate_events; /* counted against --rate since rate_t0 */
        uint64_t rate_t0_ms;
        double rate;
        uint64_t flush_ms; /* time spent writing (checkpoints) */
        int flushes;
        /* The recorder thread (progress to the record): rec_lock guards
         * rec_pending and rec_stop. */
        pthread_t rec_thread;
        bool rec_started, rec_stop;
        pthread_mutex_t rec_lock;
        pthread_cond_t rec_cond;
        bson_t *rec_pending;
} replay_t;

/* replay.c: the record */
/* Progress to the callback and the record (also the heartbeat); at most
 * once a second unless forced. */
void replay__report(replay_t *r, bool force);
/* The recorder thread, which writes the progress off the reading thread;
 * stopping writes what is pending first. */
void replay__recorder_start(replay_t *r);
void replay__recorder_stop(replay_t *r);
/* The record's status (and error); finished_ms unless building or
 * tailing. Failures are logged. */
void replay__status(replay_t *r, const char *status, const char *error);
/* The first record: what is replayed, from where, into which versions. */
store_err_t replay__record_new(replay_t *r, char *errstr, size_t errlen);
/* A resumed replay takes its versions and build ranges from its record. */
replay_err_t replay__record_load(replay_t *r, const bson_t *doc, char *errstr,
                                 size_t errlen);

/* replay.c: which replay this is */
/* A string field of a record ("" when absent). */
const char *replay__doc_str(const bson_t *doc, const char *key);
/* A replay to resume (its record in *found, caller destroys) or why none
 * may start (REPLAY_BUSY). */
replay_err_t replay__find_resumable(replay_t *r,
                                    const projection_snapshot_t *snap,
                                    bson_t **found, char *errstr,
                                    size_t errlen);

/* replay.c: the reading loop */
/* Write what the folds hold, then commit the offsets read. */
replay_err_t replay__checkpoint(replay_t *r, char *errstr, size_t errlen);
/* Every part is at its target. */
bool replay__reached(const replay_t *r);
/* Fold until every partition reached its target (REPLAY_STOPPED after a
 * checkpoint when asked to stop). */
replay_err_t replay__consume_to(replay_t *r, const int64_t *targets,
                                char *errstr, size_t errlen);

/* replay_fold.c */
/* Targets, and `workers` threads each with fold states of its own. */
void replay__folds_open(replay_t *r, int workers);
/* Stop the workers (what they hold is dropped) and close the states. */
void replay__folds_close(replay_t *r);
/* Hand msg (taken over) to the worker of its partition; may wait while
 * that worker is far behind. */
void replay__fold_dispatch(replay_t *r, rd_kafka_message_t *msg,
                           const rpart_t *part);
/* Wake the workers that have messages waiting. */
void replay__folds_kick(replay_t *r);
/* Until every worker has folded what it was given. */
void replay__folds_wait(replay_t *r);
/* Bytes folded and not written, over the workers (approximate). */
size_t replay__folds_held(replay_t *r);
void replay__folds_counts(replay_t *r, int64_t *folded, int64_t *bad);
/* Wait, then write what every worker holds (store outages waited out). */
replay_err_t replay__folds_flush(replay_t *r, char *errstr, size_t errlen);

/* replay_kafka.c */
replay_err_t replay__kafka_open(replay_t *r, char *errstr, size_t errlen);
void replay__kafka_close(replay_t *r);
/* Every partition of the set's topics into r->parts. */
replay_err_t replay__kafka_partitions(replay_t *r, char *errstr, size_t errlen);
/* Low and high watermarks per part (either may be NULL). */
replay_err_t replay__kafka_watermarks(replay_t *r, int64_t *lo, int64_t *hi,
                                      char *errstr, size_t errlen);
/* start, end and pos of every part for a fresh build from `from`. */
replay_err_t replay__kafka_starts(replay_t *r, const char *from, char *errstr,
                                  size_t errlen);
/* pos of every part from the replay group's committed offsets (start
 * where none). */
replay_err_t replay__kafka_committed(replay_t *r, char *errstr, size_t errlen);
/* Every part in a new list, at pos when with_pos (caller destroys). */
rd_kafka_topic_partition_list_t *replay__kafka_list(const replay_t *r,
                                                    bool with_pos);
replay_err_t replay__kafka_assign(replay_t *r, char *errstr, size_t errlen);
/* Commit pos of every part (synchronously). */
replay_err_t replay__kafka_commit(replay_t *r, char *errstr, size_t errlen);
/* Best effort: the replay's consumer group is no longer needed. */
void replay__kafka_delete_group(replay_t *r);
size_t replay__kafka_poll(replay_t *r, rd_kafka_message_t **msgs, size_t max,
                          int timeout_ms);
rpart_t *replay__part(replay_t *r, const rd_kafka_message_t *msg);

#endif
