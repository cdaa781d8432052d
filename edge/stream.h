/*
 * stream.h - the hub of Server-Sent Events streams: subscribers, matching,
 * fan-out, de-duplication and SSE framing.
 *
 * One reader per events topic (streams.c) publishes every event it reads
 * into the hub; the hub sends it to each subscriber of that topic whose
 * filter it passes (the caller's tenant, the route's match values, the
 * declared types) as one SSE frame appended to the subscriber's queue, and
 * wakes the subscriber's connection when it sleeps. A connection takes
 * bytes from its queue (stream_sub_read) on its HTTP thread and goes to
 * sleep when the queue is empty. Nothing here touches the network or
 * libmicrohttpd: waking and sleeping are the caller's functions.
 *
 * A subscriber opened with history pending holds the live events it gets
 * until stream_sub_history gives it the past: the history's frames go
 * first, then the held live events, each event id at most once (ids of the
 * history and the client's Last-Event-ID are remembered and skipped).
 *
 * Memory is bounded: at most max_streams subscribers at once (open refuses
 * beyond), and a subscriber whose queue passes max_queue_bytes (a client
 * that reads too slowly) gets a last "error" event and is closed: it
 * reconnects with Last-Event-ID and the history fills the gap.
 *
 * Thread-safety: every function may be called from any thread, except that
 * stream_sub_read and stream_sub_close belong to the subscriber's
 * connection. The wake function is called without any lock held; the sleep
 * and gone functions are called with the subscriber's lock held (a wake
 * that follows always sees the sleep, and a sleeping connection cannot go
 * meanwhile), and must not call back into the hub.
 */
#ifndef OMNIFY_STREAM_H
#define OMNIFY_STREAM_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "slice.h"

typedef struct stream_hub stream_hub_t;
typedef struct stream_sub stream_sub_t;

/* Wake the connection of owner (it slept in stream_sub_read). */
typedef void (*stream_wake_fn)(void *owner);
/* Put the connection of owner to sleep until its wake. */
typedef void (*stream_sleep_fn)(void *owner);
/* Has the client of owner, sleeping, gone away? (May be NULL.) */
typedef bool (*stream_gone_fn)(void *owner);

typedef struct stream_hub_opts {
        size_t max_streams;     /* open subscribers at once */
        size_t max_queue_bytes; /* bytes waiting for one slow client */
        uint64_t heartbeat_ms;  /* an idle stream gets a comment this often */
        stream_wake_fn wake;
        stream_sleep_fn sleep;
        stream_gone_fn gone;
} stream_hub_opts_t;

stream_hub_t *stream_hub_new(const stream_hub_opts_t *opts);
/* Frees every subscriber still open. NULL ok. */
void stream_hub_destroy(stream_hub_t *hub);

/* How many subscribers are open. */
size_t stream_hub_count(stream_hub_t *hub);

/* Which events a subscriber gets; copied by stream_sub_open. */
typedef struct stream_filter {
        size_t topic;       /* the caller's index of the events topic */
        const char *tenant; /* the tenant header must equal it; NULL: any */
        size_t n_match;
        const char *const *match_fields;    /* event body fields ...       */
        const msgpack_object *match_values; /* ... equal to these scalars */
        size_t n_types;
        const char *const *types; /* sent types; "p.*" is a prefix; none: all */
        size_t n_until;
        const char *const *until; /* types after which the stream ends */
        slice_t last_event_id;    /* the client's Last-Event-ID, or empty */
} stream_filter_t;

/*
 * Open a subscriber for owner. With history_pending, live events are held
 * until stream_sub_history. NULL when max_streams are open already.
 */
stream_sub_t *stream_sub_open(stream_hub_t *hub, const stream_filter_t *filter,
                              bool history_pending, void *owner);

/* Detach and free (the connection is done). NULL ok. */
void stream_sub_close(stream_hub_t *hub, stream_sub_t *sub);

/*
 * The history command's reply {"events": [{"id", "type", "data"}],
 * "done": bool}: queue its events, then the live events held meanwhile
 * (skipping ids seen), and go live. "done" (or an until type among them)
 * ends the stream after these. False (nothing queued, still pending) when
 * the reply does not have that shape.
 */
bool stream_sub_history(stream_hub_t *hub, stream_sub_t *sub,
                        const msgpack_object *reply);

/* One event read from a topic. */
typedef struct stream_event {
        slice_t id;                 /* the message id */
        slice_t type;               /* the event type */
        slice_t tenant;             /* the tenant header; empty when none */
        const msgpack_object *body; /* the unpacked value (a map) */
        slice_t body_mp;            /* the same, as msgpack bytes */
} stream_event_t;

/* Send ev to every subscriber of topic it concerns; wakes sleepers.
 * Returns how many got it. */
size_t stream_hub_publish(stream_hub_t *hub, size_t topic,
                          const stream_event_t *ev);

/* Every second or so, per topic: a sleeping subscriber whose client is
 * gone ends (its slot comes back without waiting for two heartbeats to
 * fail), and a live one idle for heartbeat_ms gets a comment (now:
 * clock_mono_ms()). */
void stream_hub_tick(stream_hub_t *hub, size_t topic, uint64_t now_ms);

/* Shutdown: every subscriber ends after what it has queued. */
void stream_hub_close_all(stream_hub_t *hub);

/*
 * Take up to max queued bytes into buf: the count (> 0), or 0 with *end set
 * when the stream is over, or 0 with *end clear after calling the sleep
 * function (the queue was empty; a wake follows when there is more).
 */
size_t stream_sub_read(stream_hub_t *hub, stream_sub_t *sub, char *buf,
                       size_t max, bool *end);

/*
 * One SSE frame appended to out: "id: <id>\nevent: <type>\n" then the data
 * one "data: " line per line of it, then a blank line. An empty id or type
 * is left out. False (nothing appended) when id or type holds a CR or LF.
 */
bool stream_frame(msgpack_sbuffer *out, slice_t id, slice_t type, slice_t data);

/* Does type match one of the patterns ("a.b.*" matches "a.b.c")? */
bool stream_type_matches(slice_t type, const char *const *patterns,
                         size_t n_patterns);

#endif
