/*
 * rt_loop.c - a consumer loop of the runtime: the group's commands, or one
 * subscription to other groups' events (see rt_internal.h).
 *
 * Each turn polls a batch, makes a job per message, looks the batch's
 * commands up in the operation log at once, runs the jobs (inline on this
 * thread, on workers chosen by message key so order per key holds, or as
 * batches for batch handlers), flushes every finished job (one bulk of
 * operation records, then the outputs) and stores the offsets that are now
 * safe: per partition, up to the first message whose outputs are not all
 * acknowledged. Jobs are run for at most RT_SLICE_MS per turn, and the
 * workers are given at most RT_INFLIGHT_PER_WORKER each; the rest stay
 * pending (at most RT_BATCH_MAX) for the next turn, whose poll serves
 * rebalances (a revoke takes the pending jobs of its partitions away) and
 * the stop flag in between, and takes only as many new messages as there
 * is room for. Fetching is never paused: librdkafka's assign-then-pause
 * race (its issue 2190) can leave a partition paused as it is assigned
 * without a fetch for good, which a first version of the time slices met.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "backoff.h"
#include "log.h"
#include "rt_internal.h"

/* ---------------------------------------------------------------------------
 * Handlers
 * ------------------------------------------------------------------------ */

/* A pattern "<group>.<family>.*" matches every type "<group>.<family>.<x>". */
static bool rt__type_matches(const char *pattern, slice_t type) {
        size_t n = strlen(pattern);
        if (n >= 2 && pattern[n - 1] == '*' && pattern[n - 2] == '.')
                return type.len >= n - 1 &&
                       memcmp(type.ptr, pattern, n - 1) == 0;
        return slice_eq(type, pattern);
}

const group_handler_t *rt__loop_handler(const rt_loop_t *loop, slice_t type,
                                        size_t *index) {
        for (size_t i = 0; i < loop->n_handlers; i++) {
                if (loop->commands
                            ? slice_eq(type, loop->handlers[i].type)
                            : rt__type_matches(loop->handlers[i].type, type)) {
                        *index = i;
                        return &loop->handlers[i];
                }
        }
        return NULL;
}

/* ---------------------------------------------------------------------------
 * Offsets: stored in order, once outputs are delivered
 * ------------------------------------------------------------------------ */

static rt_fifo_t *rt__fifo(rt_loop_t *loop, const char *topic,
                           int32_t partition) {
        rt_part_t *p;
        for (size_t i = 0; i < loop->n_parts; i++)
                if (loop->parts[i].partition == partition &&
                    strcmp(loop->parts[i].topic, topic) == 0)
                        return &loop->parts[i].fifo;
        loop->parts = xrealloc(loop->parts, (loop->n_parts + 1) * sizeof(*p));
        p = &loop->parts[loop->n_parts++];
        memset(p, 0, sizeof(*p));
        snprintf(p->topic, sizeof(p->topic), "%s", topic);
        p->partition = partition;
        return &p->fifo;
}

/* Whether a partition is in a list (NULL: every partition is). */
static bool rt__part_in(const rd_kafka_topic_partition_list_t *parts,
                        const char *topic, int32_t partition) {
        if (!parts)
                return true;
        for (int i = 0; i < parts->cnt; i++)
                if (parts->elems[i].partition == partition &&
                    strcmp(parts->elems[i].topic, topic) == 0)
                        return true;
        return false;
}

/* Store the offsets of every message whose outputs (and whose
 * predecessors' outputs) are delivered; rewind a partition to a message
 * whose outputs failed. Returns how many trackers of the given partitions
 * (NULL: all) still wait for their job or outputs (an abandoned message
 * waits for nothing: its offset is never stored). */
static size_t rt__settle(rt_loop_t *loop,
                         const rd_kafka_topic_partition_list_t *parts) {
        size_t waiting = 0;
        for (size_t i = 0; i < loop->n_parts; i++) {
                rt_part_t *p = &loop->parts[i];
                rt_fifo_t *f = &p->fifo;
                while (f->head && atomic_load(&f->head->outstanding) == 0) {
                        rt_tracker_t *t = f->head;
                        if (!t->discard && t->done && atomic_load(&t->failed)) {
                                /* Read it again: the operation log resends. */
                                log_warn("outputs of %s[%d]@%lld not "
                                         "delivered; reading it again",
                                         p->topic, (int)p->partition,
                                         (long long)t->offset);
                                bus_consumer_seek(loop->consumer, p->topic,
                                                  p->partition, t->offset);
                                for (rt_tracker_t *u = t; u; u = u->next)
                                        u->discard = true;
                                loop->rewound = true;
                        } else if (!t->discard && t->done) {
                                bus_consumer_store(loop->consumer, p->topic,
                                                   p->partition, t->offset);
                        } else if (!t->discard) {
                                break; /* abandoned: nothing after it counts */
                        }
                        f->head = t->next;
                        if (!f->head)
                                f->tail = NULL;
                        free(t);
                }
                if (!rt__part_in(parts, p->topic, p->partition))
                        continue;
                for (rt_tracker_t *t = f->head; t; t = t->next)
                        if (atomic_load(&t->outstanding) > 0)
                                waiting++;
        }
        return waiting;
}

/* Wait up to ms for the outputs in flight on the given partitions (NULL:
 * all), storing what settles. */
static size_t rt__drain(rt_loop_t *loop, int ms,
                        const rd_kafka_topic_partition_list_t *parts) {
        uint64_t deadline = clock_mono_ms() + (uint64_t)ms;
        size_t waiting;
        while ((waiting = rt__settle(loop, parts)) > 0 &&
               clock_mono_ms() < deadline) {
                struct timespec ts = {0, 2 * 1000000L};
                nanosleep(&ts, NULL);
        }
        return waiting;
}

/* ---------------------------------------------------------------------------
 * Workers
 * ------------------------------------------------------------------------ */

/* Append job to a list given by its head and tail. */
static void rt__append(rt_job_t **head, rt_job_t **tail, rt_job_t *job) {
        job->next = NULL;
        if (*tail)
                (*tail)->next = job;
        else
                *head = job;
        *tail = job;
}

static void *rt__worker_main(void *arg) {
        rt_worker_t *w = arg;
        rt_loop_t *loop = w->loop;
        log_set_group(loop->rt->def->name);
        pthread_mutex_lock(&loop->lock);
        for (;;) {
                rt_job_t *job;
                while (!w->head && !loop->workers_stop)
                        pthread_cond_wait(&w->cond, &loop->lock);
                if (!w->head)
                        break;
                job = w->head;
                w->head = job->next;
                if (!w->head)
                        w->tail = NULL;
                if (loop->workers_stop) {
                        /* Not started: read again by whoever comes next. */
                        job->state = RT_JOB_ABANDON;
                } else {
                        w->running = job;
                        pthread_mutex_unlock(&loop->lock);
                        rt__job_exec(job, loop->stop);
                        pthread_mutex_lock(&loop->lock);
                        w->running = NULL;
                }
                rt__append(&loop->finished_head, &loop->finished_tail, job);
                pthread_cond_broadcast(&loop->done_cond);
                if (loop->wakeable)
                        bus_consumer_wake(loop->wakeable);
        }
        pthread_mutex_unlock(&loop->lock);
        return NULL;
}

/* FNV-1a of the message key (the partition when there is none): a key
 * always goes to the same worker, so its messages run in order. */
static rt_worker_t *rt__worker_for(rt_loop_t *loop, const rt_job_t *job) {
        uint32_t h = 2166136261u;
        const char *k = job->env.key.ptr;
        size_t n = job->env.key.len;
        if (!n)
                h ^= (uint32_t)job->partition;
        for (size_t i = 0; i < n; i++)
                h = (h ^ (unsigned char)k[i]) * 16777619u;
        return &loop->workers[h % (uint32_t)loop->n_workers];
}

/* Jobs handed to workers and not finished yet (under loop->lock). */
static bool rt__workers_busy(const rt_loop_t *loop) {
        for (int i = 0; i < loop->n_workers; i++)
                if (loop->workers[i].head || loop->workers[i].running)
                        return true;
        return false;
}

/* Take what the workers finished, appended to a local list. */
static void rt__take_finished(rt_loop_t *loop, rt_job_t **head,
                              rt_job_t **tail) {
        rt_job_t *list;
        if (!loop->n_workers)
                return;
        pthread_mutex_lock(&loop->lock);
        list = loop->finished_head;
        loop->finished_head = loop->finished_tail = NULL;
        pthread_mutex_unlock(&loop->lock);
        while (list) {
                rt_job_t *next = list->next;
                rt__append(head, tail, list);
                loop->at_workers--;
                list = next;
        }
}

/* Flush a local list of finished jobs and settle offsets. */
static void rt__flush_list(rt_loop_t *loop, rt_job_t *head) {
        size_t n = 0;
        for (rt_job_t *j = head; j; j = j->next)
                n++;
        if (n) {
                rt__flush(loop->rt, head, loop->stop);
                loop->inflight -= n;
        }
        rt__settle(loop, NULL);
}

/* Wait until the workers hold nothing (before a batch handler runs, so
 * order per key holds across the two), flushing what they finish. */
static void rt__workers_barrier(rt_loop_t *loop) {
        rt_job_t *head = NULL, *tail = NULL;
        if (!loop->n_workers)
                return;
        pthread_mutex_lock(&loop->lock);
        while (rt__workers_busy(loop))
                pthread_cond_wait(&loop->done_cond, &loop->lock);
        pthread_mutex_unlock(&loop->lock);
        rt__take_finished(loop, &head, &tail);
        rt__flush_list(loop, head);
}

/* ---------------------------------------------------------------------------
 * A batch: lookup, then run
 * ------------------------------------------------------------------------ */

typedef struct rt_lookup {
        rt_job_t **jobs;
        size_t n;
} rt_lookup_t;

static void rt__found(const char *id, oplog_entry_t *entry, void *arg) {
        rt_lookup_t *l = arg;
        size_t len = strlen(id);
        for (size_t i = 0; i < l->n; i++) {
                rt_job_t *job = l->jobs[i];
                if (job && !job->answered && job->env.id.len == len &&
                    memcmp(job->env.id.ptr, id, len) == 0) {
                        rt__job_answered(job, entry);
                        return;
                }
        }
        oplog_entry_deinit(entry);
}

/* One operation-log lookup for every command of the batch that needs it:
 * those handled before are answered from their record. False when stopped
 * while the store was away (the jobs are then abandoned). */
static bool rt__lookup(rt_loop_t *loop, rt_job_t **jobs, size_t n) {
        slice_t *ids = xcalloc(n ? n : 1, sizeof(*ids));
        rt_job_t **which = xcalloc(n ? n : 1, sizeof(*which));
        rt_lookup_t l = {which, 0};
        bool ok = true;
        for (size_t i = 0; i < n; i++) {
                if (rt__job_needs_lookup(jobs[i])) {
                        ids[l.n] = jobs[i]->env.id;
                        which[l.n++] = jobs[i];
                }
        }
        for (int attempt = 0; l.n; attempt++) {
                char err[256];
                store_err_t serr =
                        oplog_find_many(loop->rt->store, ids, l.n, rt__found,
                                        &l, err, sizeof(err));
                if (serr == STORE_OK || !store_err_transient(serr)) {
                        if (serr)
                                log_warn("operation log lookup: %s", err);
                        break;
                }
                log_warn("operation log lookup: %s", err);
                if (backoff_wait(loop->stop, RT_BACKOFF, attempt)) {
                        for (size_t i = 0; i < l.n; i++)
                                if (!which[i]->answered)
                                        which[i]->state = RT_JOB_ABANDON;
                        ok = false;
                        break;
                }
        }
        free(ids);
        free(which);
        return ok;
}

static bool rt__in_parts(const rd_kafka_topic_partition_list_t *parts,
                         const rt_job_t *job) {
        return job->msg &&
               rt__part_in(parts, rd_kafka_topic_name(job->msg->rkt),
                           job->partition);
}

/* The workers hold all they may: new jobs wait in pending. */
static bool rt__saturated(const rt_loop_t *loop) {
        return loop->n_workers &&
               loop->at_workers >=
                       (size_t)loop->n_workers * RT_INFLIGHT_PER_WORKER;
}

/* Wait (at most ms) for a worker to finish a job. */
static void rt__wait_done(rt_loop_t *loop, int ms) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += ms * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&loop->lock);
        if (!loop->finished_head)
                pthread_cond_timedwait(&loop->done_cond, &loop->lock, &ts);
        pthread_mutex_unlock(&loop->lock);
}

/* Run the pending jobs, in order, until they are all run or the slice is
 * over (then the rest stays pending, at the front); what finishes here goes
 * to the local list. Without a deadline (0) all are run. */
static void rt__run_pending(rt_loop_t *loop, uint64_t deadline, rt_job_t **head,
                            rt_job_t **tail) {
        rt_job_t **jobs = loop->pending;
        size_t n = loop->n_pending, i = 0;
        while (i < n) {
                rt_job_t *job = jobs[i];
                if (i && job->state == RT_JOB_RUN &&
                    (atomic_load(loop->stop) ||
                     (deadline && clock_mono_ms() >= deadline)))
                        break;
                if (job->state != RT_JOB_RUN) {
                        rt__append(head, tail, job);
                        i++;
                } else if (job->h->batch) {
                        /* A run of consecutive jobs of this batch handler
                         * (jobs already finished in between ride along). */
                        rt_job_t **run = xcalloc(n - i, sizeof(*run));
                        size_t k = 0, j = i;
                        for (; j < n; j++) {
                                if (jobs[j]->state == RT_JOB_RUN &&
                                    jobs[j]->h != job->h)
                                        break;
                                if (jobs[j]->state == RT_JOB_RUN)
                                        run[k++] = jobs[j];
                        }
                        rt__workers_barrier(loop);
                        rt__batch_exec(run, k, loop->stop);
                        for (; i < j; i++)
                                rt__append(head, tail, jobs[i]);
                        free(run);
                } else if (!loop->n_workers) {
                        rt__job_exec(job, loop->stop);
                        rt__append(head, tail, job);
                        i++;
                } else if (rt__saturated(loop)) {
                        break; /* the rest waits for room at the workers */
                } else {
                        rt_worker_t *w = rt__worker_for(loop, job);
                        loop->at_workers++;
                        pthread_mutex_lock(&loop->lock);
                        rt__append(&w->head, &w->tail, job);
                        pthread_cond_signal(&w->cond);
                        pthread_mutex_unlock(&loop->lock);
                        i++;
                }
        }
        memmove(jobs, jobs + i, (n - i) * sizeof(*jobs));
        loop->n_pending = n - i;
}

/* Pending jobs (of the given partitions; NULL: all) are not run here: they
 * go to the local list abandoned, and whoever reads the partitions next
 * runs them. */
static void rt__abandon_pending(rt_loop_t *loop,
                                const rd_kafka_topic_partition_list_t *parts,
                                rt_job_t **head, rt_job_t **tail) {
        size_t keep = 0;
        for (size_t i = 0; i < loop->n_pending; i++) {
                rt_job_t *job = loop->pending[i];
                if (!parts || rt__in_parts(parts, job)) {
                        if (job->state == RT_JOB_RUN)
                                job->state = RT_JOB_ABANDON;
                        rt__append(head, tail, job);
                } else {
                        loop->pending[keep++] = job;
                }
        }
        loop->n_pending = keep;
}

/* ---------------------------------------------------------------------------
 * Rebalances and fencing
 * ------------------------------------------------------------------------ */

/* Before partitions go to another consumer: jobs of theirs not started are
 * dropped (the next owner reads them), running ones are let finish (bounded
 * by the shutdown timeout), what is finished is flushed and its offsets
 * stored, so the next owner does not redo it. */
static void rt__on_revoke(void *arg,
                          const rd_kafka_topic_partition_list_t *parts) {
        rt_loop_t *loop = arg;
        rt_job_t *head = NULL, *tail = NULL;
        uint64_t deadline =
                clock_mono_ms() + (uint64_t)loop->rt->cfg->shutdown_timeout_ms;
        rt__abandon_pending(loop, parts, &head, &tail);
        rt__flush_list(loop, head);
        head = tail = NULL;
        if (loop->n_workers) {
                pthread_mutex_lock(&loop->lock);
                for (int i = 0; i < loop->n_workers; i++) {
                        rt_worker_t *w = &loop->workers[i];
                        rt_job_t *keep_h = NULL, *keep_t = NULL;
                        for (rt_job_t *j = w->head, *next; j; j = next) {
                                next = j->next;
                                if (rt__in_parts(parts, j)) {
                                        j->state = RT_JOB_ABANDON;
                                        rt__append(&loop->finished_head,
                                                   &loop->finished_tail, j);
                                } else {
                                        rt__append(&keep_h, &keep_t, j);
                                }
                        }
                        w->head = keep_h;
                        w->tail = keep_t;
                }
                for (;;) {
                        bool running = false;
                        struct timespec ts;
                        for (int i = 0; i < loop->n_workers; i++)
                                if (loop->workers[i].running &&
                                    rt__in_parts(parts,
                                                 loop->workers[i].running))
                                        running = true;
                        if (!running || clock_mono_ms() >= deadline)
                                break;
                        clock_gettime(CLOCK_REALTIME, &ts);
                        ts.tv_nsec += 50 * 1000000L;
                        if (ts.tv_nsec >= 1000000000L) {
                                ts.tv_sec++;
                                ts.tv_nsec -= 1000000000L;
                        }
                        pthread_cond_timedwait(&loop->done_cond, &loop->lock,
                                               &ts);
                }
                pthread_mutex_unlock(&loop->lock);
                rt__take_finished(loop, &head, &tail);
                rt__flush_list(loop, head);
        }
        rt__drain(loop, 2000, parts);
        /* What is still waiting on those partitions is the next owner's. */
        for (size_t i = 0; i < loop->n_parts; i++) {
                rt_part_t *p = &loop->parts[i];
                for (int k = 0; k < parts->cnt; k++)
                        if (parts->elems[k].partition == p->partition &&
                            strcmp(parts->elems[k].topic, p->topic) == 0)
                                for (rt_tracker_t *t = p->fifo.head; t;
                                     t = t->next)
                                        t->discard = true;
        }
}

/* The consumer can never read again (fenced by the group): forget what is
 * in hand, since its offsets can no longer be committed by this member and
 * the group hands the partitions out again from the last commit, and join
 * with a new consumer. Nothing is lost: every command not committed is read
 * again and answered from the operation log. False if stopped meanwhile. */
static bool rt__rejoin(rt_loop_t *loop) {
        runtime_t *rt = loop->rt;
        char errstr[512];
        uint64_t now = clock_mono_ms();
        bus_consumer_t *fresh = NULL;
        /* Fenced again soon after the last time: most likely another
         * process runs with the same OMNIFY_INSTANCE_ID, and each join
         * fences the other. Back off (1 s doubling to 32 s) rather than
         * fight. */
        if (loop->last_rejoin_ms && now - loop->last_rejoin_ms < 60000)
                loop->quick_rejoins++;
        else
                loop->quick_rejoins = 0;
        log_error("the consumer of %s was fenced out of group %s; joining "
                  "again with a new one (unfinished messages are read "
                  "again)%s",
                  loop->topics[0], loop->group_id,
                  loop->quick_rejoins
                          ? "; fenced again within a minute: is another "
                            "process running with the same "
                            "OMNIFY_INSTANCE_ID?"
                          : "");
        metrics_add(rt->rejoins_total, 1);
        for (size_t i = 0; i < loop->n_parts; i++)
                for (rt_tracker_t *t = loop->parts[i].fifo.head; t; t = t->next)
                        t->discard = true;
        {
                rt_job_t *head = NULL, *tail = NULL;
                rt__abandon_pending(loop, NULL, &head, &tail);
                rt__flush_list(loop, head);
        }
        /* Closing may run the revoke callback, which takes the lock. */
        pthread_mutex_lock(&loop->lock);
        loop->wakeable = NULL;
        pthread_mutex_unlock(&loop->lock);
        bus_consumer_destroy(loop->consumer);
        loop->consumer = NULL;
        if (loop->quick_rejoins &&
            backoff_sleep(loop->stop,
                          1000LL << (loop->quick_rejoins < 6
                                             ? loop->quick_rejoins - 1
                                             : 5)))
                return false;
        for (int attempt = 0; !fresh; attempt++) {
                fresh = bus_consumer_new_multi(
                        rt->cfg, loop->group_id, rt->def->name,
                        (const char *const *)loop->topics, loop->n_topics,
                        errstr, sizeof(errstr));
                if (fresh)
                        break;
                log_warn("new consumer for %s: %s; retrying", loop->group_id,
                         errstr);
                if (backoff_wait(loop->stop, RT_BACKOFF, attempt))
                        return false;
        }
        bus_consumer_on_revoke(fresh, rt__on_revoke, loop);
        loop->consumer = fresh;
        pthread_mutex_lock(&loop->lock);
        loop->wakeable = fresh;
        pthread_mutex_unlock(&loop->lock);
        loop->last_rejoin_ms = clock_mono_ms();
        return true;
}

/* ---------------------------------------------------------------------------
 * Life
 * ------------------------------------------------------------------------ */

rt_loop_t *rt__loop_new(runtime_t *rt, const char *name, bool commands,
                        const group_handler_t *handlers, size_t n_handlers,
                        const char *const *topics, size_t n_topics,
                        const char *group_id, int concurrency, char *errstr,
                        size_t errlen) {
        rt_loop_t *loop = xcalloc(1, sizeof(*loop));
        char labels[384];
        const char *metric = commands ? "omnify_messages_handled_total"
                                      : "omnify_events_handled_total";
        const char *help = commands ? "Commands handled, by group, type and "
                                      "result."
                                    : "Events of other groups handled, by "
                                      "group, type and result.";
        loop->rt = rt;
        loop->name = name;
        loop->commands = commands;
        loop->handlers = handlers;
        loop->n_handlers = n_handlers;
        snprintf(loop->group_id, sizeof(loop->group_id), "%s", group_id);
        loop->topics = xcalloc(n_topics, sizeof(char *));
        loop->n_topics = n_topics;
        for (size_t i = 0; i < n_topics; i++)
                loop->topics[i] = xstrdup(topics[i]);
        pthread_mutex_init(&loop->lock, NULL);
        pthread_cond_init(&loop->done_cond, NULL);
        loop->tm = xcalloc(n_handlers ? n_handlers : 1, sizeof(*loop->tm));
        for (size_t i = 0; i < n_handlers; i++) {
                static const char *const results[] = {"ok", "failed"};
                metrics_counter_t **slots[] = {&loop->tm[i].ok,
                                               &loop->tm[i].failed};
                for (int r = 0; r < 2; r++) {
                        snprintf(labels, sizeof(labels),
                                 "group=\"%s\",type=\"%s\",result=\"%s\"",
                                 rt->def->name, handlers[i].type, results[r]);
                        *slots[r] = metrics_counter(metric, help, labels);
                }
                snprintf(labels, sizeof(labels), "group=\"%s\",type=\"%s\"",
                         rt->def->name, handlers[i].type);
                loop->tm[i].latency = metrics_histogram(
                        "omnify_handler_seconds", "Handler latency.", labels);
        }
        loop->n_workers = concurrency > 1 ? concurrency : 0;
        if (loop->n_workers) {
                loop->workers =
                        xcalloc((size_t)loop->n_workers, sizeof(rt_worker_t));
                for (int i = 0; i < loop->n_workers; i++) {
                        loop->workers[i].loop = loop;
                        pthread_cond_init(&loop->workers[i].cond, NULL);
                }
        }
        if (rt->bus) {
                loop->consumer = bus_consumer_new_multi(
                        rt->cfg, loop->group_id, rt->def->name, topics,
                        n_topics, errstr, errlen);
                if (!loop->consumer) {
                        rt__loop_destroy(loop);
                        return NULL;
                }
                bus_consumer_on_revoke(loop->consumer, rt__on_revoke, loop);
                loop->wakeable = loop->consumer;
        }
        return loop;
}

static void rt__workers_start(rt_loop_t *loop) {
        for (int i = 0; i < loop->n_workers; i++) {
                if (pthread_create(&loop->workers[i].thread, NULL,
                                   rt__worker_main, &loop->workers[i]) == 0)
                        loop->workers[i].started = true;
                else
                        log_error("cannot start worker %d of %s", i,
                                  loop->group_id);
        }
}

static void rt__workers_stop(rt_loop_t *loop) {
        pthread_mutex_lock(&loop->lock);
        loop->workers_stop = true;
        for (int i = 0; i < loop->n_workers; i++)
                pthread_cond_broadcast(&loop->workers[i].cond);
        pthread_mutex_unlock(&loop->lock);
        for (int i = 0; i < loop->n_workers; i++)
                if (loop->workers[i].started)
                        pthread_join(loop->workers[i].thread, NULL);
}

/* A message polled: a tracker in its partition's FIFO, and a job. */
static rt_job_t *rt__take(rt_loop_t *loop, rd_kafka_message_t *msg) {
        rt_tracker_t *t = xcalloc(1, sizeof(*t));
        rt_fifo_t *f =
                rt__fifo(loop, rd_kafka_topic_name(msg->rkt), msg->partition);
        rt_job_t *job;
        t->offset = msg->offset;
        atomic_init(&t->outstanding, 1); /* the job's, until flushed */
        atomic_init(&t->failed, false);
        if (f->tail)
                f->tail->next = t;
        else
                f->head = t;
        f->tail = t;
        job = rt__job_new(loop, msg, NULL);
        job->tracker = t;
        loop->inflight++;
        return job;
}

void rt__loop_run(rt_loop_t *loop, const atomic_bool *stop) {
        rd_kafka_message_t **msgs = xcalloc(RT_BATCH_MAX, sizeof(*msgs));
        loop->stop = stop;
        loop->pending = xcalloc(RT_BATCH_MAX, sizeof(*loop->pending));
        log_set_group(loop->rt->def->name);
        rt__workers_start(loop);
        while (!atomic_load(stop)) {
                rt_job_t *head = NULL, *tail = NULL;
                size_t n = 0, room = RT_BATCH_MAX - loop->n_pending;
                if (bus_consumer_failed(loop->consumer) && !rt__rejoin(loop))
                        break;
                if (loop->rewound) {
                        /* A partition went back: let what is in hand finish
                         * first, so no message runs twice at once. */
                        while (loop->n_pending && !atomic_load(stop)) {
                                rt__run_pending(loop, 0, &head, &tail);
                                if (loop->n_pending)
                                        rt__wait_done(loop, 5);
                                rt__take_finished(loop, &head, &tail);
                        }
                        rt__workers_barrier(loop);
                        loop->rewound = false;
                }
                if (room)
                        /* Pending jobs the workers can take: no wait. A
                         * finished job wakes the poll. */
                        n = bus_consumer_poll_batch(
                                loop->consumer, msgs, room,
                                loop->n_pending && !rt__saturated(loop) ? 0
                                : loop->inflight                        ? 5
                                                                        : 20);
                else
                        /* Full: polling waits for room (a worker's job
                         * done, or the next slice of inline jobs). */
                        rt__wait_done(loop, 5);
                for (size_t i = 0; i < n; i++)
                        loop->pending[loop->n_pending + i] =
                                rt__take(loop, msgs[i]);
                if (n)
                        rt__lookup(loop, loop->pending + loop->n_pending, n);
                loop->n_pending += n;
                if (loop->n_pending)
                        rt__run_pending(loop, clock_mono_ms() + RT_SLICE_MS,
                                        &head, &tail);
                rt__take_finished(loop, &head, &tail);
                rt__flush_list(loop, head);
                log_context_clear();
        }
        log_info("stopping %s: finishing, committing and leaving the group",
                 loop->group_id);
        rt__workers_stop(loop);
        {
                rt_job_t *head = NULL, *tail = NULL;
                rt__abandon_pending(loop, NULL, &head, &tail);
                rt__take_finished(loop, &head, &tail);
                rt__flush_list(loop, head);
        }
        if (rt__drain(loop, loop->rt->cfg->shutdown_timeout_ms, NULL) > 0 &&
            loop->rt->bus &&
            bus_flush(loop->rt->bus, loop->rt->cfg->shutdown_timeout_ms) ==
                    BUS_OK)
                /* Every delivery report has run: what settles now is all
                 * there is, and nothing will touch the trackers after. */
                rt__settle(loop, NULL);
        else if (rt__settle(loop, NULL) > 0) {
                /* Deliveries still running will touch their trackers: leave
                 * them allocated rather than free memory in use. */
                log_warn("outputs still in flight at shutdown; their messages "
                         "will be read again");
                for (size_t i = 0; i < loop->n_parts; i++)
                        loop->parts[i].fifo.head = loop->parts[i].fifo.tail =
                                NULL;
        }
        /* Close here, on the loop's own thread, so the final commit and the
         * revoke happen where the offsets were stored (the workers are
         * gone: nobody else touches the consumer). */
        loop->wakeable = NULL;
        bus_consumer_destroy(loop->consumer);
        loop->consumer = NULL;
        free(msgs);
        free(loop->pending);
        loop->pending = NULL;
}

void rt__loop_destroy(rt_loop_t *loop) {
        if (!loop)
                return;
        bus_consumer_destroy(loop->consumer);
        for (size_t i = 0; i < loop->n_parts; i++)
                for (rt_tracker_t *t = loop->parts[i].fifo.head, *n; t; t = n) {
                        n = t->next;
                        free(t);
                }
        free(loop->parts);
        for (int i = 0; i < loop->n_workers; i++)
                pthread_cond_destroy(&loop->workers[i].cond);
        free(loop->workers);
        for (size_t i = 0; i < loop->n_topics; i++)
                free(loop->topics[i]);
        free(loop->topics);
        free(loop->tm);
        pthread_cond_destroy(&loop->done_cond);
        pthread_mutex_destroy(&loop->lock);
        free(loop);
}
