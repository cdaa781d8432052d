/*
 * rt_internal.h - what the runtime's files share (runtime.c, rt_loop.c,
 * rt_job.c, rt_ctx.c, rt_out.c, harness.c); nothing here is for groups.
 *
 * A message goes through the runtime as a job:
 *
 *   rt_loop.c  polls a batch, makes a job per message (rt__job_new), does
 *              one operation-log lookup for the batch, runs the jobs
 *              (inline, on workers keyed by message key, or as batches),
 *              and flushes finished jobs;
 *   rt_job.c   decodes and checks a message, runs its handler with
 *              retries;
 *   rt_ctx.c   the handler API (rt_ctx_t): what a handler reads, its
 *              reply and the outputs it asks for;
 *   rt_out.c   writes the operation records of a flush in one bulk, then
 *              sends events, commands, replies and dead letters, each
 *              tracked so a message's offset is stored only once all its
 *              outputs are acknowledged.
 *
 * Threads: a loop's thread owns its consumer, its partitions' trackers and
 * every job until it hands one to a worker; a worker owns the job it runs
 * until it puts it on the loop's finished list (under loop->lock).
 */
#ifndef OMNIFY_RT_INTERNAL_H
#define OMNIFY_RT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "metrics.h"
#include "msgid.h"
#include "oplog.h"
#include "runtime.h"

/* Transient failures: tries before the message is dead-lettered. */
#define RT_MAX_ATTEMPTS 5
#define RT_BACKOFF ((backoff_policy_t){100, 2000})
/* Jobs a loop hands to each worker at most; more wait in its pending
 * (a build may set it lower, to run the tests with full workers). */
#ifndef RT_INFLIGHT_PER_WORKER
#define RT_INFLIGHT_PER_WORKER 256
#endif
/* A loop runs the jobs it holds for at most this long before it polls
 * again, so rebalances and a stop are served between jobs rather than
 * after a whole batch of slow ones. */
#define RT_SLICE_MS 500
/* A synchronous read-only command younger than this is not recorded in the
 * operation log (rt_job.c): its caller still waits for the reply. */
#define RT_READ_ONLY_FRESH_MS 500

typedef struct rt_loop rt_loop_t;

typedef struct rt_type_metrics {
        metrics_counter_t *ok, *failed;
        metrics_histogram_t *latency;
} rt_type_metrics_t;

/*
 * A handled message waiting for its outputs (reply, events, dead letter) to
 * be acknowledged by the broker. Its offset is stored only when it and every
 * earlier message of its partition are fully delivered; a failed delivery
 * rewinds the partition to it, so it is read again and its outputs sent
 * again from the operation log.
 */
typedef struct rt_tracker {
        bus_delivery_t base;
        struct rt_tracker *next; /* partition FIFO, loop thread only */
        int64_t offset;
        atomic_int outstanding; /* deliveries not reported yet, +1 while the
                                   job holds it */
        atomic_bool failed;
        bool done;    /* finished; false: abandoned (stopped, revoked) */
        bool discard; /* after a rewind or revoke: never store, only free */
} rt_tracker_t;

typedef struct rt_fifo {
        rt_tracker_t *head, *tail;
} rt_fifo_t;

/* An event or command to send once the handler succeeded. */
typedef struct rt_output {
        char id[MSGID_TEXT_SIZE];
        char *type;
        char *topic;    /* full topic name; NULL: the group's events */
        char *reply_to; /* requests only */
        char *key;
        size_t key_len;
        char *body;
        size_t body_len;
        /* rt_*_with: on whose behalf (NULL: the handled message's). */
        char *tenant, *user, *roles;
} rt_output_t;

typedef struct rt_job rt_job_t;

struct rt_ctx {
        runtime_t *rt;
        rt_job_t *job;
        const env_t *env;
        int status;
        msgpack_sbuffer reply;
        msgpack_packer pk;
        char *content_type; /* rt_reply_bytes; NULL: msgpack */
        rt_output_t *outs;
        size_t n_outs;
        char *fail_why;  /* rt_fail */
        bool bad_output; /* rt_emit refused an event */
};

typedef enum rt_job_state {
        RT_JOB_RUN,     /* checked: its handler runs next */
        RT_JOB_FINISH,  /* outputs ready (handled, refused or answered) */
        RT_JOB_SKIP,    /* nothing to do (an event nobody here follows) */
        RT_JOB_ABANDON, /* stopped mid-way: offset not stored */
} rt_job_state_t;

struct rt_job {
        rt_job_t *next; /* worker queue, finished list, batch lists */
        rt_loop_t *loop;
        rd_kafka_message_t *msg; /* owned; NULL in the harness */
        rt_tracker_t *tracker;   /* NULL in the harness */
        int32_t partition;
        env_t env;
        msgpack_zone zone;
        bool zone_used;
        msgpack_object body;
        const group_handler_t *h;
        const schema_msg_t *sm;
        rt_type_metrics_t *tm; /* NULL: no per-type metrics */
        rt_ctx_t ctx;
        rt_job_state_t state;
        bool record;   /* write an operation record when flushed */
        bool withhold; /* the answer holds secrets: not kept */
        bool answered; /* answered from the operation log (seen) */
        oplog_entry_t seen;
        char *dead_why; /* dead-letter with this reason */
        int attempts;
        char idem_id[400];
        char hash[OPLOG_HASH_SIZE];
        bool idem_recorded;
};

typedef struct rt_part {
        char topic[256];
        int32_t partition;
        rt_fifo_t fifo;
} rt_part_t;

typedef struct rt_worker {
        rt_loop_t *loop;
        pthread_t thread;
        bool started;
        rt_job_t *head, *tail; /* under loop->lock */
        pthread_cond_t cond;   /* work arrived, or stop */
        rt_job_t *running;     /* under loop->lock */
} rt_worker_t;

/* One consumer and the handlers it dispatches to: the commands of the group
 * or one subscription. */
struct rt_loop {
        runtime_t *rt;
        const char *name; /* "commands" or the subscription's name */
        bool commands;
        bool replaying;
        const group_handler_t *handlers;
        size_t n_handlers;
        rt_type_metrics_t *tm; /* one per handler */
        char group_id[256];
        char **topics;
        size_t n_topics;
        bus_consumer_t *consumer; /* loop thread only */
        bus_consumer_t *wakeable; /* the consumer workers wake (under lock;
                                     NULL while it is being replaced) */
        const atomic_bool *stop;
        pthread_t thread;
        bool thread_started;
        /* Parts and their offset FIFOs: loop thread only. */
        rt_part_t *parts;
        size_t n_parts;
        size_t inflight;    /* jobs made and not yet flushed: loop thread */
        rt_job_t **pending; /* polled, looked up, not run yet (the slice
                               ran out, or the workers are full): loop
                               thread, in poll order */
        size_t n_pending;
        size_t at_workers; /* handed to workers, not taken back yet */
        bool rewound;      /* a partition was rewound: drain before polling */
        /* Workers. */
        int n_workers;
        rt_worker_t *workers;
        pthread_mutex_t lock; /* worker queues, finished list, wake */
        pthread_cond_t done_cond;
        rt_job_t *finished_head, *finished_tail;
        bool workers_stop;
        uint64_t last_rejoin_ms;
        int quick_rejoins;
};

struct runtime {
        const group_def_t *def;
        const config_t *cfg;
        const schema_set_t *schemas;
        bus_t *bus; /* NULL in the harness: outputs are captured */
        store_t *store;
        runtime_mode_t mode;
        void *state;
        rt_loop_t *commands;
        rt_loop_t **subs;
        size_t n_subs;
        char commands_topic[256];
        char events_topic[256];
        char dlq_topic[256];
        int commands_partitions;
        char instance[256];
        char host[128];
        uint64_t started_ms;
        atomic_bool initialised;
        metrics_counter_t *dlq_total, *retries_total, *duplicates_total;
        metrics_counter_t *rejoins_total;
        /* Messages the loops finished (handled or failed), for the
         * heartbeat's rate. */
        atomic_uint_fast64_t handled;
        /* Parts (runtime_parts.c): the timer service, outboxes, whether
         * this runtime holds a reference on the process's HTTP client. */
        timer_service_t *timers;
        outbox_t **outboxes;
        size_t n_outboxes;
        atomic_bool http_ref;
        /* The harness: what would have been sent (harness.c). */
        void (*capture)(void *arg, const char *topic, const env_t *env,
                        slice_t value);
        void *capture_arg;
};

/* rt_job.c ---------------------------------------------------------------- */

/* A job for msg (taken over) or, in the harness, for env + its value (msg
 * NULL; env points into the caller's buffers). Decodes and checks it: the
 * state says what comes next. */
rt_job_t *rt__job_new(rt_loop_t *loop, rd_kafka_message_t *msg,
                      const env_t *env);
void rt__job_free(rt_job_t *job);
/* Whether its command must be looked up in the operation log first. */
bool rt__job_needs_lookup(const rt_job_t *job);
/* The job was handled before: answer from seen (taken over). */
void rt__job_answered(rt_job_t *job, oplog_entry_t *seen);
/* Run the job's handler with retries; leaves the state FINISH or ABANDON.
 * Any thread. */
void rt__job_exec(rt_job_t *job, const atomic_bool *stop);
/* Run jobs[0..n) (all of the same batch handler) as one batch. */
void rt__batch_exec(rt_job_t **jobs, size_t n, const atomic_bool *stop);

/* rt_ctx.c ---------------------------------------------------------------- */

/* Reset a context for job (or NULL). */
void rt__ctx_init(rt_ctx_t *ctx, runtime_t *rt, rt_job_t *job,
                  const env_t *env);
void rt__ctx_deinit(rt_ctx_t *ctx);
void rt__ctx_drop_outputs(rt_ctx_t *ctx);
/* The reply as a problem, with the field errors of report (may be NULL). */
void rt__problem(rt_ctx_t *ctx, int status, const char *title,
                 const char *detail, const schema_report_t *report);

/* rt_out.c ---------------------------------------------------------------- */

/* Record, send and release every job of the list (finished or abandoned),
 * then free them. Loop thread (or the harness). False when stopped while
 * the store was away (the jobs are then released as abandoned). */
bool rt__flush(runtime_t *rt, rt_job_t *list, const atomic_bool *stop);
/* The partition of key in the group's own commands topic. */
int32_t rt__key_partition(const runtime_t *rt, slice_t key);

/* runtime_parts.c --------------------------------------------------------- */

/* Make the timer service (def->timers). False and errstr on bad options. */
bool rt__parts_new(runtime_t *rt, char *errstr, size_t errlen);
/* Start the timer service's firing (needs a bus). */
void rt__parts_start(runtime_t *rt);
/* Stop and free the outboxes and the timer service, let go of the HTTP
 * client. */
void rt__parts_destroy(runtime_t *rt);

/* rt_loop.c --------------------------------------------------------------- */

rt_loop_t *rt__loop_new(runtime_t *rt, const char *name, bool commands,
                        const group_handler_t *handlers, size_t n_handlers,
                        const char *const *topics, size_t n_topics,
                        const char *group_id, int concurrency, char *errstr,
                        size_t errlen);
/* Run until *stop; then finish, commit and leave. */
void rt__loop_run(rt_loop_t *loop, const atomic_bool *stop);
void rt__loop_destroy(rt_loop_t *loop);
/* The handler of type in the loop's table (patterns for subscriptions). */
const group_handler_t *rt__loop_handler(const rt_loop_t *loop, slice_t type,
                                        size_t *index);

#endif
