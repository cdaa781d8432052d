/*
 * replay.h - rebuild a group's projections from the event log into new
 * versions, and swap them in.
 *
 * The driver reads the events topics a group's projections follow with a
 * consumer of its own (consumer group <prefix><group>.replay.<id>, every
 * partition assigned from chosen start offsets), hands every event to the
 * group's folds (the same code its live handler runs), and writes into new
 * versions of the projections (projection.h) while the live group keeps
 * serving and writing the active ones:
 *
 *   reserve  a new version of each projection, in the pointer document
 *   copy     (only when starting later than the earliest offsets) the
 *            active version (or the tenant's documents) into the new one
 *   build    fold every event up to the high watermarks seen at the start
 *   catch up fold on to the high watermarks of now (a few rounds)
 *   swap     one compare-and-set of the pointer document: readers and the
 *            live group use the new versions from their next request or
 *            batch; the old ones are retired (dropped after a grace)
 *   tail     fold on to the high watermarks read after the swap: the
 *            events the live group wrote into the old version just before
 *            it saw the new one are in the new one too
 *
 * Folds must be commutative and idempotent (lww.h), so re-reading events
 * (a resumed replay, the tail, the live group writing the same version)
 * changes nothing. The driver folds in memory and flushes when the folds
 * hold more than memory_bytes or checkpoint_ms has passed; only then are
 * its offsets committed, so a replay killed at any point resumes from its
 * last checkpoint (run it again with the same options) and never swaps a
 * version it has not built to the end. Progress (phase, events done of the
 * total, rate, ETA) goes to a callback once a second and to the replay's
 * record in <db>.replays.
 *
 * Side effects: the driver runs folds only, never the group's handlers, so
 * nothing is published and no mail is sent while replaying.
 *
 * Thread: replay_run blocks the calling thread (a tool's main).
 */
#ifndef OMNIFY_REPLAY_H
#define OMNIFY_REPLAY_H

#include <msgpack.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "envelope.h"
#include "msgid.h"
#include "projection.h"
#include "store.h"

#define REPLAY_ERRORS(X)                                          \
        X(REPLAY_OK, "ok")                                        \
        X(REPLAY_BAD_OPTION, "bad option")                        \
        X(REPLAY_BUSY, "another replay builds these projections") \
        X(REPLAY_KAFKA, "Kafka failed")                           \
        X(REPLAY_STORE, "the store failed")                       \
        X(REPLAY_STOPPED, "stopped; run it again to resume")      \
        X(REPLAY_NOT_FOUND, "no such replay")

typedef enum replay_err {
#define X(name, msg) name,
        REPLAY_ERRORS(X)
#undef X
} replay_err_t;

const char *replay_strerror(replay_err_t err);

#define REPLAY_COLL "replays"
#define REPLAY_MAX_PROJECTIONS 16

/* Where the folds of one replay write. */
typedef struct replay_target {
        store_t *store;
        const char *db;
        const projection_def_t *def;
        int64_t version;
        slice_t tenant; /* only this tenant's events come (empty: all) */
        /* The version was empty when this build started (not resumed, not
         * copied): the fold may insert what it writes first. */
        bool fresh;
} replay_target_t;

/* A group's fold of one projection. */
typedef struct replay_fold {
        const projection_def_t *def;
        /* State that writes into target (copied as needed). */
        void *(*open)(const replay_target_t *target);
        /* Fold one event of a type def wants: 0, or -1 when the event is
         * malformed (skipped and counted; why says what is wrong). */
        int (*fold)(void *st, const env_t *env, const msgpack_object *body,
                    char *why, size_t whylen);
        size_t (*held)(const void *st); /* bytes folded and not written */
        /* Write what is held; a failure keeps it for another try. */
        store_err_t (*flush)(void *st, char *errstr, size_t errlen);
        void (*close)(void *st); /* NULL ok */
} replay_fold_t;

/* What a group can replay (group_def_t.replay). */
typedef struct replay_set {
        const replay_fold_t *folds;
        size_t n;
        const char *const *topics; /* unprefixed, NULL-terminated */
} replay_set_t;

/* The projection definitions of set, into defs (REPLAY_MAX_PROJECTIONS). */
size_t replay_defs(const replay_set_t *set,
                   const projection_def_t *defs[REPLAY_MAX_PROJECTIONS]);

typedef struct replay_progress {
        const char *replay_id;
        const char *phase;   /* copying, building, catching up, swapping,
                                tailing, done, verified */
        int64_t done, total; /* events of the build: read / to read */
        int64_t events;      /* read in every phase */
        int64_t bad;         /* malformed, skipped */
        double rate;         /* events/s over the last second */
        double eta_s;        /* < 0: unknown */
} replay_progress_t;

typedef struct replay_offset {
        char topic[256]; /* unprefixed */
        int32_t partition;
        int64_t offset;
} replay_offset_t;

typedef struct replay_opts {
        const config_t *cfg;
        store_t *store;
        const char *group; /* its database and consumer-group names */
        const replay_set_t *set;
        const char *const *only; /* projection names, NULL-terminated; NULL:
                                    all */
        /* NULL or "earliest"; an RFC 3339 time; or start offsets
         * "topic:partition:offset,..." (unprefixed topics; partitions not
         * named start at their end). Anything but earliest starts from a
         * copy of the active version. */
        const char *from;
        const char *tenant;    /* NULL or "": every tenant */
        int64_t rate;          /* events/s at most; 0: unbounded */
        int64_t grace_ms;      /* retired versions are dropped after */
        size_t memory_bytes;   /* 0: 256 MiB */
        int threads;           /* folding threads; 0: 2 */
        int64_t checkpoint_ms; /* 0: 10 s */
        /* Build, never swap (the versions stay reserved: digest them, then
         * projection_abandon). until (n_until), when given, are the offsets
         * to build to instead of the high watermarks. */
        bool verify;
        const replay_offset_t *until;
        size_t n_until;
        const atomic_bool *stop; /* may be NULL */
        void (*progress)(const replay_progress_t *p, void *arg);
        void *progress_arg;
} replay_opts_t;

typedef struct replay_result {
        char replay_id[MSGID_TEXT_SIZE];
        bool resumed;
        int64_t events, folded, bad;
        int64_t elapsed_ms;
        double rate; /* events read per second, over the run */
        size_t n_versions;
        char names[REPLAY_MAX_PROJECTIONS][PROJECTION_NAME_MAX];
        int64_t versions[REPLAY_MAX_PROJECTIONS];
        replay_offset_t *end; /* where the build stopped */
        size_t n_end;
} replay_result_t;

/*
 * Run a replay (see the top of this file). A replay of the same options
 * that was killed is resumed from its last checkpoint; one still running
 * (its record heard from within 10 s) gives REPLAY_BUSY. On REPLAY_STOPPED
 * the work so far is checkpointed. res is filled in every case; free it
 * with replay_result_deinit.
 */
replay_err_t replay_run(const replay_opts_t *o, replay_result_t *res,
                        char *errstr, size_t errlen);

void replay_result_deinit(replay_result_t *res);

/* Forget a replay: drop the versions it reserved and mark its record
 * aborted. */
replay_err_t replay_abort(store_t *store, const char *group,
                          const replay_set_t *set, const char *replay_id,
                          char *errstr, size_t errlen);

#endif
