/*
 * streams.c - Server-Sent Events routes: the HTTP side and the readers.
 *
 * A route with "stream" (schema.h) is served here instead of being sent as
 * a command. Once the token and the route's requires are checked
 * (access.c), the route's fields (path and query, typed) give the filter:
 * the caller's tenant, the event fields to match, the types sent and the
 * types that end the stream (stream.h keeps the subscribers). With a
 * history command, the stream first sends it (with the route's fields and
 * "after": the client's Last-Event-ID) and waits for its reply like any
 * sync command; live events that arrive meanwhile are held by the hub and
 * follow the history, each id once. Then the answer is a 200
 * text/event-stream whose body libmicrohttpd pulls from the subscriber's
 * queue (edge__stream_read); when the queue is empty the connection is
 * suspended, and the reader that queues the next event resumes it. No HTTP
 * thread ever waits.
 *
 * One reader per events topic per edge (a thread with a bus_tail_new
 * consumer, started with the edge) publishes every event it reads into the
 * hub and sends heartbeats. The number of open streams is bounded
 * (OMNIFY_MAX_STREAMS, 503 beyond), and so is what one slow client may hold
 * (OMNIFY_STREAM_BUFFER_BYTES: the stream then ends with an error event).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "alloc.h"
#include "codec.h"
#include "edge_internal.h"
#include "envelope.h"
#include "log.h"

/* Readers publish heartbeats at most this often. */
#define EDGE_STREAM_TICK_MS 1000

/* ---------------------------------------------------------------------------
 * Readers
 * ------------------------------------------------------------------------ */

struct edge_stream_topic {
        edge_t *edge;
        size_t index;
        char name[200]; /* unprefixed, as the schema says */
        bus_consumer_t *consumer;
        pthread_t thread;
        bool started;
};

static void edge__stream_event(edge_stream_topic_t *t,
                               const rd_kafka_message_t *msg) {
        env_t env;
        char err[160];
        msgpack_zone zone;
        msgpack_object obj;
        stream_event_t ev;

        if (env_decode(msg, &env, err, sizeof(err)) != ENV_OK)
                return; /* the group that wrote it logs its own errors */
        msgpack_zone_init(&zone, 2048);
        if (env_unpack(&env, &zone, &obj) == ENV_OK) {
                ev.id = env.id;
                ev.type = env.type;
                ev.tenant = env.tenant;
                ev.body = &obj;
                ev.body_mp = env.value;
                stream_hub_publish(t->edge->hub, t->index, &ev);
        }
        msgpack_zone_destroy(&zone);
}

static void *edge__stream_loop(void *arg) {
        edge_stream_topic_t *t = arg;
        uint64_t next_tick = clock_mono_ms() + EDGE_STREAM_TICK_MS;
        log_set_group("edge");
        while (!atomic_load(&t->edge->stopping)) {
                rd_kafka_message_t *msg = bus_consumer_poll(t->consumer, 100);
                uint64_t now;
                if (msg) {
                        /* Nobody listens: nothing to decode. */
                        if (stream_hub_count(t->edge->hub))
                                edge__stream_event(t, msg);
                        rd_kafka_message_destroy(msg);
                }
                now = clock_mono_ms();
                if (now >= next_tick) {
                        stream_hub_tick(t->edge->hub, t->index, now);
                        next_tick = now + EDGE_STREAM_TICK_MS;
                }
        }
        return NULL;
}

/* The reader of topic, or NULL. */
static edge_stream_topic_t *edge__stream_topic(edge_t *edge,
                                               const char *topic) {
        for (size_t i = 0; i < edge->n_stream_topics; i++)
                if (strcmp(edge->stream_topics[i].name, topic) == 0)
                        return &edge->stream_topics[i];
        return NULL;
}

int edge__streams_open(edge_t *edge, char *errstr, size_t errlen) {
        size_t n = schema_set_count(edge->schemas);
        edge->stream_topics = xcalloc(n + 1, sizeof(*edge->stream_topics));
        for (size_t i = 0; i < n; i++) {
                const schema_stream_t *st =
                        schema_set_at(edge->schemas, i)->route.stream;
                edge_stream_topic_t *t;
                char topic[256];
                if (!st || edge__stream_topic(edge, st->topic))
                        continue;
                t = &edge->stream_topics[edge->n_stream_topics];
                t->edge = edge;
                t->index = edge->n_stream_topics;
                snprintf(t->name, sizeof(t->name), "%s", st->topic);
                bus_topic(edge->cfg, st->topic, topic, sizeof(topic));
                /* From now: a stream's past is its history command's. */
                t->consumer =
                        bus_tail_new(edge->cfg, topic, (int64_t)clock_wall_ms(),
                                     errstr, errlen);
                if (!t->consumer)
                        return -1;
                edge->n_stream_topics++;
        }
        for (size_t i = 0; i < edge->n_stream_topics; i++) {
                edge_stream_topic_t *t = &edge->stream_topics[i];
                if (pthread_create(&t->thread, NULL, edge__stream_loop, t)) {
                        snprintf(errstr, errlen,
                                 "cannot start the stream readers");
                        return -1;
                }
                t->started = true;
        }
        return 0;
}

void edge__streams_close(edge_t *edge) {
        for (size_t i = 0; i < edge->n_stream_topics; i++) {
                edge_stream_topic_t *t = &edge->stream_topics[i];
                if (t->started)
                        pthread_join(t->thread, NULL);
                t->started = false;
                bus_consumer_destroy(t->consumer);
                t->consumer = NULL;
        }
        free(edge->stream_topics);
        edge->stream_topics = NULL;
        edge->n_stream_topics = 0;
}

/* ---------------------------------------------------------------------------
 * The connection's side
 * ------------------------------------------------------------------------ */

void edge__stream_wake(void *owner) {
        MHD_resume_connection(((req_t *)owner)->conn);
}

void edge__stream_sleep(void *owner) {
        MHD_suspend_connection(((req_t *)owner)->conn);
}

/* libmicrohttpd does not watch a suspended connection: a client that left
 * shows as an end of file (or an error) on its socket, peeked at here. */
bool edge__stream_gone(void *owner) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
                ((req_t *)owner)->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        char c;
        ssize_t n;
        if (!ci)
                return false;
        n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                          errno != EINTR);
}

/* libmicrohttpd pulls the body: the queued frames, or sleep. */
static ssize_t edge__stream_read(void *cls, uint64_t pos, char *buf,
                                 size_t max) {
        req_t *req = cls;
        bool end;
        size_t n;
        (void)pos;
        n = stream_sub_read(req->edge->hub, req->sub, buf, max, &end);
        if (n)
                return (ssize_t)n;
        return end ? MHD_CONTENT_READER_END_OF_STREAM : 0;
}

static enum MHD_Result edge__stream_respond(req_t *req) {
        return edge__answer_stream(req, "text/event-stream", edge__stream_read);
}

/* The client's Last-Event-ID, when it is one we may echo as an id. */
static slice_t edge__last_event_id(req_t *req) {
        const char *v = NULL;
        size_t len = 0;
        if (MHD_lookup_connection_value_n(req->conn, MHD_HEADER_KIND,
                                          "Last-Event-ID", 13, &v,
                                          &len) != MHD_YES ||
            !v || len > 200)
                return SLICE_NULL;
        for (size_t i = 0; i < len; i++)
                if (v[i] < 0x21 || v[i] > 0x7e)
                        return SLICE_NULL;
        return (slice_t){v, len};
}

/* The history command's body: the route's fields and "after". */
static void edge__history_body(const msgpack_object *fields, slice_t after,
                               msgpack_sbuffer *out) {
        msgpack_packer pk;
        uint32_t n = 0;
        msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
        for (uint32_t i = 0; i < fields->via.map.size; i++)
                if (!(fields->via.map.ptr[i].key.type == MSGPACK_OBJECT_STR &&
                      fields->via.map.ptr[i].key.via.str.size == 5 &&
                      memcmp(fields->via.map.ptr[i].key.via.str.ptr, "after",
                             5) == 0))
                        n++;
        msgpack_pack_map(&pk, n + 1);
        for (uint32_t i = 0; i < fields->via.map.size; i++) {
                const msgpack_object_kv *kv = &fields->via.map.ptr[i];
                if (kv->key.type == MSGPACK_OBJECT_STR &&
                    kv->key.via.str.size == 5 &&
                    memcmp(kv->key.via.str.ptr, "after", 5) == 0)
                        continue;
                msgpack_pack_object(&pk, kv->key);
                msgpack_pack_object(&pk, kv->val);
        }
        codec_pack_str(&pk, "after");
        codec_pack_slice(&pk, after.ptr ? after : slice_of(""));
}

/* Subscribe with the route's filter; NULL when the edge has too many. */
static stream_sub_t *edge__subscribe(req_t *req, const msgpack_object *fields,
                                     slice_t last_id) {
        const schema_stream_t *st = req->msg->route.stream;
        edge_stream_topic_t *t = edge__stream_topic(req->edge, st->topic);
        stream_filter_t f = {0};
        const char **names = xcalloc(st->n_match + 1, sizeof(char *));
        msgpack_object *values =
                xcalloc(st->n_match + 1, sizeof(msgpack_object));
        stream_sub_t *sub;

        f.topic = t ? t->index : SIZE_MAX;
        f.tenant = st->tenant ? req->claims.tid : NULL;
        /* A match field the route leaves out (an optional query field)
         * does not narrow the stream; the tenant always does. */
        for (size_t i = 0; i < st->n_match; i++) {
                const msgpack_object *v =
                        codec_map_get(fields, st->match_field[i]);
                if (!v)
                        continue;
                names[f.n_match] = st->match_event[i];
                values[f.n_match++] = *v;
        }
        f.match_fields = names;
        f.match_values = values;
        f.n_types = st->n_types;
        f.types = (const char *const *)st->types;
        f.n_until = st->n_until;
        f.until = (const char *const *)st->until;
        f.last_event_id = last_id;
        sub = stream_sub_open(req->edge->hub, &f, st->history != NULL, req);
        free(names);
        free(values);
        return sub;
}

enum MHD_Result edge__stream_begin(req_t *req) {
        edge_t *edge = req->edge;
        const schema_stream_t *st = req->msg->route.stream;
        msgpack_sbuffer mp, hmp;
        msgpack_zone zone, hzone;
        msgpack_object obj, hobj;
        slice_t last_id;
        const schema_msg_t *history;
        enum MHD_Result ret;
        size_t off = 0;

        if (!atomic_load(&edge->started))
                return edge__starting(req);
        msgpack_sbuffer_init(&mp);
        msgpack_sbuffer_init(&hmp);
        msgpack_zone_init(&zone, 1024);
        msgpack_zone_init(&hzone, 1024);
        if (!edge__command(req, req->msg, &mp, &zone, &obj, &ret))
                goto out;
        last_id = edge__last_event_id(req);
        req->sub = edge__subscribe(req, &obj, last_id);
        if (!req->sub) {
                static const char *const retry[] = {"Retry-After", "5", NULL};
                ret = edge__problem(req, 503, "Service Unavailable",
                                    "this edge serves as many streams as it "
                                    "may",
                                    NULL, retry);
                goto out;
        }
        history = st->history
                          ? schema_find(edge->schemas, slice_of(st->history))
                          : NULL;
        if (!history) {
                ret = edge__stream_respond(req);
                goto out;
        }
        /* The past first: the history command, answered like a sync one;
         * edge__stream_history takes its reply. */
        edge__history_body(&obj, last_id, &hmp);
        if (msgpack_unpack(hmp.data, hmp.size, &off, &hzone, &hobj) !=
            MSGPACK_UNPACK_SUCCESS) {
                ret = edge__problem(req, 500, "Internal Server Error", NULL,
                                    NULL, NULL);
                goto out;
        }
        req->async = false;
        ret = edge__send(req, history, &hmp, &hobj, SLICE_NULL,
                         edge->cfg->reply_timeout_ms);
out:
        msgpack_zone_destroy(&hzone);
        msgpack_zone_destroy(&zone);
        msgpack_sbuffer_destroy(&hmp);
        msgpack_sbuffer_destroy(&mp);
        return ret;
}

enum MHD_Result edge__stream_history(req_t *req) {
        msgpack_zone zone;
        msgpack_object obj;
        size_t off = 0;
        bool ok;

        /* Its command is answered: a stream is not a request in flight. */
        edge__done_waiting(req);

        msgpack_zone_init(&zone, 4096);
        ok = msgpack_unpack(req->reply_mp, req->reply_mp_len, &off, &zone,
                            &obj) == MSGPACK_UNPACK_SUCCESS &&
             stream_sub_history(req->edge->hub, req->sub, &obj);
        msgpack_zone_destroy(&zone);
        if (!ok) {
                log_error("the history of %s answered something malformed",
                          req->msg->type);
                return edge__problem(req, 502, "Bad Gateway",
                                     "the service answered something malformed",
                                     NULL, NULL);
        }
        return edge__stream_respond(req);
}
