/*
 * stream.c - the hub of Server-Sent Events streams (see stream.h).
 *
 * The hub is a list of subscribers under one lock (a few hundred at most:
 * the max_streams setting); each subscriber has its own lock over its queue
 * and state. A publish checks each subscriber of the topic against its
 * filter (immutable after open, so read without the subscriber's lock),
 * renders the event's frame once for all of them, and appends it under each
 * subscriber's lock. Connections to wake are collected and woken after every
 * lock is released, so the wake function may take libmicrohttpd's locks.
 *
 * A queue is a msgpack_sbuffer used as a byte buffer with a read offset,
 * compacted as it is read. Seen event ids are kept as 64-bit hashes in an
 * open-addressing set: two ids of one stream colliding is a 2^-64 chance.
 */
#include "stream.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hash.h"
#include "codec.h"
#include "msgid.h"

/* A live event held while the history is pending. */
typedef struct stream_held {
        uint64_t id_hash;
        size_t off, len; /* its frame in held */
        bool until;
} stream_held_t;

struct stream_sub {
        stream_sub_t *next, *prev; /* the hub's list; hub lock */
        void *owner;
        /* The filter: set at open, read-only after. */
        size_t topic;
        char *tenant;
        size_t n_match;
        char **match_fields;
        msgpack_object *match_values;
        msgpack_zone zone; /* copies of the match values' bytes */
        size_t n_types, n_until;
        char **types, **until;
        /* The rest is guarded by lock. */
        pthread_mutex_t lock;
        msgpack_sbuffer queue;
        size_t read_off;
        msgpack_sbuffer held;
        stream_held_t *held_events;
        size_t n_held, cap_held;
        uint64_t *seen; /* open addressing; 0 is empty */
        size_t n_seen, cap_seen;
        bool history_pending;
        bool held_overflow; /* held events were dropped: end after history */
        bool closing;       /* ends once the queue is read */
        bool sleeping;
        uint64_t last_write_ms;
};

struct stream_hub {
        stream_hub_opts_t opts;
        pthread_mutex_t lock; /* guards head and count */
        stream_sub_t *head;
        size_t count;
};

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static uint64_t stream__hash(slice_t s) {
        uint64_t h = edge_hash(s);
        return h ? h : 1; /* 0 marks an empty slot */
}

/* Has sub seen the id of this hash? Adds it when add is set. Lock held. */
static bool stream__seen_hash(stream_sub_t *sub, uint64_t h, bool add) {
        size_t i;
        if (sub->cap_seen) {
                for (i = h & (sub->cap_seen - 1); sub->seen[i];
                     i = (i + 1) & (sub->cap_seen - 1))
                        if (sub->seen[i] == h)
                                return true;
        }
        if (!add)
                return false;
        if ((sub->n_seen + 1) * 2 > sub->cap_seen) {
                size_t cap = sub->cap_seen ? sub->cap_seen * 2 : 64;
                uint64_t *old = sub->seen,
                         *grown = xcalloc(cap, sizeof(*grown));
                for (size_t j = 0; j < sub->cap_seen; j++) {
                        if (!old[j])
                                continue;
                        for (i = old[j] & (cap - 1); grown[i];
                             i = (i + 1) & (cap - 1))
                                ;
                        grown[i] = old[j];
                }
                free(old);
                sub->seen = grown;
                sub->cap_seen = cap;
        }
        for (i = h & (sub->cap_seen - 1); sub->seen[i];
             i = (i + 1) & (sub->cap_seen - 1))
                ;
        sub->seen[i] = h;
        sub->n_seen++;
        return false;
}

/* The same by id; an empty id is never seen. */
static bool stream__seen(stream_sub_t *sub, slice_t id, bool add) {
        return id.len && stream__seen_hash(sub, stream__hash(id), add);
}

static bool stream__scalar_eq(const msgpack_object *a,
                              const msgpack_object *b) {
        if (!a || !b || a->type != b->type)
                return false;
        switch (a->type) {
        case MSGPACK_OBJECT_NIL:
                return true;
        case MSGPACK_OBJECT_BOOLEAN:
                return a->via.boolean == b->via.boolean;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
                return a->via.u64 == b->via.u64;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
                return a->via.i64 == b->via.i64;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
                return a->via.f64 == b->via.f64;
        case MSGPACK_OBJECT_STR:
                return a->via.str.size == b->via.str.size &&
                       (a->via.str.size == 0 ||
                        memcmp(a->via.str.ptr, b->via.str.ptr,
                               a->via.str.size) == 0);
        default:
                return false; /* containers never match */
        }
}

static char **stream__strv(const char *const *v, size_t n) {
        char **out = n ? xcalloc(n, sizeof(char *)) : NULL;
        for (size_t i = 0; i < n; i++)
                out[i] = xstrdup(v[i]);
        return out;
}

static void stream__strv_free(char **v, size_t n) {
        for (size_t i = 0; v && i < n; i++)
                free(v[i]);
        free(v);
}

bool stream_type_matches(slice_t type, const char *const *patterns,
                         size_t n_patterns) {
        for (size_t i = 0; i < n_patterns; i++) {
                const char *p = patterns[i];
                size_t n = strlen(p);
                if (n >= 1 && p[n - 1] == '*') {
                        if (type.len >= n - 1 &&
                            memcmp(type.ptr, p, n - 1) == 0)
                                return true;
                } else if (slice_eq(type, p)) {
                        return true;
                }
        }
        return false;
}

static bool stream__no_newline(slice_t s) {
        for (size_t i = 0; i < s.len; i++)
                if (s.ptr[i] == '\n' || s.ptr[i] == '\r')
                        return false;
        return true;
}

bool stream_frame(msgpack_sbuffer *out, slice_t id, slice_t type,
                  slice_t data) {
        size_t start = 0;
        if (!stream__no_newline(id) || !stream__no_newline(type))
                return false;
        if (id.len) {
                msgpack_sbuffer_write(out, "id: ", 4);
                msgpack_sbuffer_write(out, id.ptr, id.len);
                msgpack_sbuffer_write(out, "\n", 1);
        }
        if (type.len) {
                msgpack_sbuffer_write(out, "event: ", 7);
                msgpack_sbuffer_write(out, type.ptr, type.len);
                msgpack_sbuffer_write(out, "\n", 1);
        }
        /* Each line of the data on a data: line of its own (a CR LF, a
         * lone CR or a lone LF ends a line in SSE). */
        for (size_t i = 0; i <= data.len; i++) {
                if (i < data.len && data.ptr[i] != '\n' && data.ptr[i] != '\r')
                        continue;
                msgpack_sbuffer_write(out, "data: ", 6);
                if (i > start)
                        msgpack_sbuffer_write(out, data.ptr + start, i - start);
                msgpack_sbuffer_write(out, "\n", 1);
                if (i + 1 < data.len && data.ptr[i] == '\r' &&
                    data.ptr[i + 1] == '\n')
                        i++;
                start = i + 1;
        }
        msgpack_sbuffer_write(out, "\n", 1);
        return true;
}

/* One frame of an event whose data is a msgpack object. */
static bool stream__frame_object(msgpack_sbuffer *out, slice_t id, slice_t type,
                                 const msgpack_object *data) {
        msgpack_sbuffer mp;
        msgpack_packer pk;
        char *json = NULL;
        size_t json_len = 0;
        bool ok;
        msgpack_sbuffer_init(&mp);
        msgpack_packer_init(&pk, &mp, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, data ? *data : (msgpack_object){0});
        ok = codec_msgpack_to_json((slice_t){mp.data, mp.size}, &json,
                                   &json_len) == CODEC_OK &&
             stream_frame(out, id, type, (slice_t){json, json_len});
        free(json);
        msgpack_sbuffer_destroy(&mp);
        return ok;
}

/* ---------------------------------------------------------------------------
 * Queues (subscriber lock held)
 * ------------------------------------------------------------------------ */

static const char stream__overflow[] =
        "event: error\ndata: {\"error\":\"too_slow\",\"detail\":\"the client "
        "read too slowly; reconnect with Last-Event-ID\"}\n\n";

/* The client reads too slowly: a last error event, then the end. */
static void stream__end_slow(stream_sub_t *sub) {
        msgpack_sbuffer_write(&sub->queue, stream__overflow,
                              sizeof(stream__overflow) - 1);
        sub->closing = true;
}

/* Append a frame; a queue past the limit ends with the error event. */
static void stream__append(stream_hub_t *hub, stream_sub_t *sub,
                           const char *frame, size_t len) {
        size_t waiting = sub->queue.size - sub->read_off;
        if (sub->closing)
                return;
        if (waiting + len > hub->opts.max_queue_bytes)
                stream__end_slow(sub);
        else
                msgpack_sbuffer_write(&sub->queue, frame, len);
        sub->last_write_ms = clock_mono_ms();
}

/* Hold a live frame until the history is in. Lock held. */
static void stream__hold(stream_hub_t *hub, stream_sub_t *sub, uint64_t hash,
                         const char *frame, size_t len, bool until) {
        if (sub->held_overflow)
                return;
        if (sub->held.size + len > hub->opts.max_queue_bytes) {
                /* More comes live than fits while the history is asked:
                 * the stream ends after the history with the error. */
                sub->held_overflow = true;
                return;
        }
        if (sub->n_held == sub->cap_held) {
                sub->cap_held = sub->cap_held ? sub->cap_held * 2 : 16;
                sub->held_events =
                        xrealloc(sub->held_events,
                                 sub->cap_held * sizeof(*sub->held_events));
        }
        sub->held_events[sub->n_held++] =
                (stream_held_t){hash, sub->held.size, len, until};
        msgpack_sbuffer_write(&sub->held, frame, len);
}

/* ---------------------------------------------------------------------------
 * Hub and subscribers
 * ------------------------------------------------------------------------ */

stream_hub_t *stream_hub_new(const stream_hub_opts_t *opts) {
        stream_hub_t *hub = xcalloc(1, sizeof(*hub));
        hub->opts = *opts;
        pthread_mutex_init(&hub->lock, NULL);
        return hub;
}

static void stream__free(stream_sub_t *sub) {
        free(sub->tenant);
        stream__strv_free(sub->match_fields, sub->n_match);
        free(sub->match_values);
        msgpack_zone_destroy(&sub->zone);
        stream__strv_free(sub->types, sub->n_types);
        stream__strv_free(sub->until, sub->n_until);
        msgpack_sbuffer_destroy(&sub->queue);
        msgpack_sbuffer_destroy(&sub->held);
        free(sub->held_events);
        free(sub->seen);
        pthread_mutex_destroy(&sub->lock);
        free(sub);
}

void stream_hub_destroy(stream_hub_t *hub) {
        if (!hub)
                return;
        while (hub->head) {
                stream_sub_t *sub = hub->head;
                hub->head = sub->next;
                stream__free(sub);
        }
        pthread_mutex_destroy(&hub->lock);
        free(hub);
}

size_t stream_hub_count(stream_hub_t *hub) {
        size_t n;
        pthread_mutex_lock(&hub->lock);
        n = hub->count;
        pthread_mutex_unlock(&hub->lock);
        return n;
}

/* A copy of a scalar whose bytes live in zone. */
static msgpack_object stream__copy_scalar(msgpack_zone *zone,
                                          const msgpack_object *v) {
        msgpack_object c = *v;
        if (v->type == MSGPACK_OBJECT_STR && v->via.str.size) {
                char *p = msgpack_zone_malloc(zone, v->via.str.size);
                if (!p)
                        abort(); /* a few bytes: as xmalloc would */
                memcpy(p, v->via.str.ptr, v->via.str.size);
                c.via.str.ptr = p;
        } else if (v->type != MSGPACK_OBJECT_STR &&
                   v->type != MSGPACK_OBJECT_BOOLEAN &&
                   v->type != MSGPACK_OBJECT_POSITIVE_INTEGER &&
                   v->type != MSGPACK_OBJECT_NEGATIVE_INTEGER &&
                   v->type != MSGPACK_OBJECT_FLOAT32 &&
                   v->type != MSGPACK_OBJECT_FLOAT64) {
                c.type = MSGPACK_OBJECT_NIL; /* containers match nothing */
                c.via.array.size = 0;
        }
        return c;
}

stream_sub_t *stream_sub_open(stream_hub_t *hub, const stream_filter_t *filter,
                              bool history_pending, void *owner) {
        stream_sub_t *sub = xcalloc(1, sizeof(*sub));
        sub->owner = owner;
        sub->topic = filter->topic;
        sub->tenant = filter->tenant ? xstrdup(filter->tenant) : NULL;
        msgpack_zone_init(&sub->zone, 256);
        sub->n_match = filter->n_match;
        sub->match_fields = stream__strv(filter->match_fields, filter->n_match);
        sub->match_values = filter->n_match ? xcalloc(filter->n_match,
                                                      sizeof(msgpack_object))
                                            : NULL;
        for (size_t i = 0; i < filter->n_match; i++)
                sub->match_values[i] = stream__copy_scalar(
                        &sub->zone, &filter->match_values[i]);
        sub->n_types = filter->n_types;
        sub->types = stream__strv(filter->types, filter->n_types);
        sub->n_until = filter->n_until;
        sub->until = stream__strv(filter->until, filter->n_until);
        pthread_mutex_init(&sub->lock, NULL);
        msgpack_sbuffer_init(&sub->queue);
        msgpack_sbuffer_init(&sub->held);
        sub->history_pending = history_pending;
        sub->last_write_ms = clock_mono_ms();
        stream__seen(sub, filter->last_event_id, true);

        pthread_mutex_lock(&hub->lock);
        if (hub->count >= hub->opts.max_streams) {
                pthread_mutex_unlock(&hub->lock);
                stream__free(sub);
                return NULL;
        }
        sub->next = hub->head;
        if (hub->head)
                hub->head->prev = sub;
        hub->head = sub;
        hub->count++;
        pthread_mutex_unlock(&hub->lock);
        return sub;
}

void stream_sub_close(stream_hub_t *hub, stream_sub_t *sub) {
        if (!sub)
                return;
        pthread_mutex_lock(&hub->lock);
        if (sub->prev)
                sub->prev->next = sub->next;
        else
                hub->head = sub->next;
        if (sub->next)
                sub->next->prev = sub->prev;
        hub->count--;
        pthread_mutex_unlock(&hub->lock);
        stream__free(sub);
}

/* Does the event pass sub's filter? (The filter is immutable.) */
static bool stream__wants(const stream_sub_t *sub, const stream_event_t *ev) {
        if (sub->tenant && !slice_eq(ev->tenant, sub->tenant))
                return false;
        if (sub->n_types &&
            !stream_type_matches(ev->type, (const char *const *)sub->types,
                                 sub->n_types))
                return false;
        for (size_t i = 0; i < sub->n_match; i++)
                if (!stream__scalar_eq(
                            codec_map_get(ev->body, sub->match_fields[i]),
                            &sub->match_values[i]))
                        return false;
        return true;
}

/* Wake the owners collected while locked; then free the list. */
static void stream__wake_all(stream_hub_t *hub, void **owners, size_t n) {
        for (size_t i = 0; i < n; i++)
                hub->opts.wake(owners[i]);
        free(owners);
}

/* Note a sleeper to wake once unlocked. Sub lock held. */
static void stream__note_wake(stream_sub_t *sub, void ***owners, size_t *n,
                              size_t *cap) {
        if (!sub->sleeping)
                return;
        sub->sleeping = false;
        if (*n == *cap) {
                *cap = *cap ? *cap * 2 : 8;
                *owners = xrealloc(*owners, *cap * sizeof(void *));
        }
        (*owners)[(*n)++] = sub->owner;
}

size_t stream_hub_publish(stream_hub_t *hub, size_t topic,
                          const stream_event_t *ev) {
        msgpack_sbuffer frame;
        bool framed = false, frame_ok = true;
        void **owners = NULL;
        size_t n_owners = 0, cap_owners = 0, sent = 0;
        uint64_t hash = stream__hash(ev->id);

        msgpack_sbuffer_init(&frame);
        pthread_mutex_lock(&hub->lock);
        for (stream_sub_t *sub = hub->head; sub; sub = sub->next) {
                bool until;
                if (sub->topic != topic || !stream__wants(sub, ev))
                        continue;
                if (!framed) {
                        char *json = NULL;
                        size_t json_len = 0;
                        framed = true;
                        frame_ok =
                                codec_msgpack_to_json(ev->body_mp, &json,
                                                      &json_len) == CODEC_OK &&
                                stream_frame(&frame, ev->id, ev->type,
                                             (slice_t){json, json_len});
                        free(json);
                }
                if (!frame_ok)
                        break;
                until = stream_type_matches(ev->type,
                                            (const char *const *)sub->until,
                                            sub->n_until);
                pthread_mutex_lock(&sub->lock);
                if (!sub->closing && !stream__seen(sub, ev->id, false)) {
                        if (sub->history_pending) {
                                stream__hold(hub, sub, hash, frame.data,
                                             frame.size, until);
                        } else {
                                stream__seen(sub, ev->id, true);
                                stream__append(hub, sub, frame.data,
                                               frame.size);
                                if (until)
                                        sub->closing = true;
                                stream__note_wake(sub, &owners, &n_owners,
                                                  &cap_owners);
                        }
                        sent++;
                }
                pthread_mutex_unlock(&sub->lock);
        }
        pthread_mutex_unlock(&hub->lock);
        msgpack_sbuffer_destroy(&frame);
        stream__wake_all(hub, owners, n_owners);
        return sent;
}

/* Queue the held live events not seen in the history. Lock held. */
static void stream__release_held(stream_hub_t *hub, stream_sub_t *sub) {
        for (size_t i = 0; i < sub->n_held && !sub->closing; i++) {
                stream_held_t *h = &sub->held_events[i];
                if (stream__seen_hash(sub, h->id_hash, true))
                        continue;
                stream__append(hub, sub, sub->held.data + h->off, h->len);
                if (h->until)
                        sub->closing = true;
        }
        if (sub->held_overflow && !sub->closing)
                stream__end_slow(sub);
        sub->n_held = 0;
        sub->held_overflow = false;
        msgpack_sbuffer_clear(&sub->held);
}

bool stream_sub_history(stream_hub_t *hub, stream_sub_t *sub,
                        const msgpack_object *reply) {
        const msgpack_object *events = codec_map_get(reply, "events");
        const msgpack_object *done = codec_map_get(reply, "done");
        void **owners = NULL;
        size_t n_owners = 0, cap_owners = 0;
        msgpack_sbuffer frame;

        if (!reply || reply->type != MSGPACK_OBJECT_MAP ||
            (events && events->type != MSGPACK_OBJECT_ARRAY) ||
            (done && done->type != MSGPACK_OBJECT_BOOLEAN))
                return false;
        msgpack_sbuffer_init(&frame);
        pthread_mutex_lock(&sub->lock);
        for (uint32_t i = 0; events && i < events->via.array.size; i++) {
                const msgpack_object *ev = &events->via.array.ptr[i];
                slice_t id = codec_map_str(ev, "id"),
                        type = codec_map_str(ev, "type");
                if (sub->closing)
                        break;
                if (stream__seen(sub, id, true))
                        continue; /* the client has it (Last-Event-ID) */
                msgpack_sbuffer_clear(&frame);
                if (!stream__frame_object(&frame, id, type,
                                          codec_map_get(ev, "data")))
                        continue;
                stream__append(hub, sub, frame.data, frame.size);
                if (stream_type_matches(type, (const char *const *)sub->until,
                                        sub->n_until))
                        sub->closing = true;
        }
        if (done && done->via.boolean)
                sub->closing = true;
        stream__release_held(hub, sub);
        sub->history_pending = false;
        stream__note_wake(sub, &owners, &n_owners, &cap_owners);
        pthread_mutex_unlock(&sub->lock);
        msgpack_sbuffer_destroy(&frame);
        stream__wake_all(hub, owners, n_owners);
        return true;
}

void stream_hub_tick(stream_hub_t *hub, size_t topic, uint64_t now_ms) {
        static const char beat[] = ": keep-alive\n\n";
        void **owners = NULL;
        size_t n_owners = 0, cap_owners = 0;
        pthread_mutex_lock(&hub->lock);
        for (stream_sub_t *sub = hub->head; sub; sub = sub->next) {
                if (sub->topic != topic)
                        continue;
                pthread_mutex_lock(&sub->lock);
                /* A sleeping connection is the hub's to wake, so asking
                 * whether its client left is safe now. */
                if (sub->sleeping && hub->opts.gone &&
                    hub->opts.gone(sub->owner)) {
                        sub->closing = true;
                        stream__note_wake(sub, &owners, &n_owners, &cap_owners);
                } else if (!sub->history_pending && !sub->closing &&
                           now_ms >= sub->last_write_ms +
                                             hub->opts.heartbeat_ms) {
                        stream__append(hub, sub, beat, sizeof(beat) - 1);
                        stream__note_wake(sub, &owners, &n_owners, &cap_owners);
                }
                pthread_mutex_unlock(&sub->lock);
        }
        pthread_mutex_unlock(&hub->lock);
        stream__wake_all(hub, owners, n_owners);
}

void stream_hub_close_all(stream_hub_t *hub) {
        void **owners = NULL;
        size_t n_owners = 0, cap_owners = 0;
        pthread_mutex_lock(&hub->lock);
        for (stream_sub_t *sub = hub->head; sub; sub = sub->next) {
                pthread_mutex_lock(&sub->lock);
                sub->closing = true;
                stream__note_wake(sub, &owners, &n_owners, &cap_owners);
                pthread_mutex_unlock(&sub->lock);
        }
        pthread_mutex_unlock(&hub->lock);
        stream__wake_all(hub, owners, n_owners);
}

size_t stream_sub_read(stream_hub_t *hub, stream_sub_t *sub, char *buf,
                       size_t max, bool *end) {
        size_t n;
        pthread_mutex_lock(&sub->lock);
        n = sub->queue.size - sub->read_off;
        if (n > max)
                n = max;
        *end = false;
        if (n) {
                memcpy(buf, sub->queue.data + sub->read_off, n);
                sub->read_off += n;
                if (sub->read_off == sub->queue.size) {
                        sub->read_off = 0;
                        msgpack_sbuffer_clear(&sub->queue);
                } else if (sub->read_off > sub->queue.size / 2) {
                        memmove(sub->queue.data,
                                sub->queue.data + sub->read_off,
                                sub->queue.size - sub->read_off);
                        sub->queue.size -= sub->read_off;
                        sub->read_off = 0;
                }
        } else if (sub->closing) {
                *end = true;
        } else {
                sub->sleeping = true;
                hub->opts.sleep(sub->owner);
        }
        pthread_mutex_unlock(&sub->lock);
        return n;
}
