/*
 * replies.c - the reply thread: this replica's partition of edge.replies,
 * and the deadlines of the requests waiting on it.
 *
 * One thread polls the one partition this edge owns (bus_listener_new), so
 * replicas never see each other's replies. A reply is matched to its
 * request by correlation id through the pending table; whoever takes the
 * entry completes the request, so a reply that comes after its deadline
 * finds nothing and is dropped. Between polls (every 20 ms at most) the
 * thread sweeps the requests whose deadline passed: 504 for a sync one,
 * 503 for an async one whose delivery never came.
 */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "edge_internal.h"
#include "envelope.h"
#include "log.h"

static void edge__on_reply(edge_t *edge, const rd_kafka_message_t *msg) {
        env_t env;
        char err[160];
        msgid_t corr;
        pending_entry_t *e;
        req_t *req;

        if (env_decode(msg, &env, err, sizeof(err)) != ENV_OK) {
                log_warn("malformed reply at offset %lld: %s",
                         (long long)msg->offset, err);
                return;
        }
        if (!msgid_parse(env.correlation_id.ptr, env.correlation_id.len,
                         &corr)) {
                log_warn("reply without a correlation id");
                return;
        }
        if (edge__on_fact_reply(edge, &corr, &env))
                return;
        e = pending_take(edge->pending, &corr);
        if (!e)
                return; /* timed out already, or another edge's */
        req = e->owner;
        req->reply_status = env.status ? env.status : 500;
        req->reply_mp = xmalloc(env.value.len ? env.value.len : 1);
        memcpy(req->reply_mp, env.value.ptr, env.value.len);
        req->reply_mp_len = env.value.len;
        if (env.content_type.len)
                req->reply_ctype =
                        xstrndup(env.content_type.ptr, env.content_type.len);
        edge__complete(req, OUT_REPLY);
}

void *edge__reply_loop(void *arg) {
        edge_t *edge = arg;
        pending_entry_t *expired[EDGE_SWEEP_BATCH];
        log_set_group("edge");
        while (!atomic_load(&edge->stopping)) {
                rd_kafka_message_t *msg = bus_consumer_poll(edge->listener, 20);
                size_t n;
                if (msg) {
                        edge__on_reply(edge, msg);
                        rd_kafka_message_destroy(msg);
                }
                n = pending_take_expired(edge->pending, clock_mono_ms(),
                                         expired, EDGE_SWEEP_BATCH);
                for (size_t i = 0; i < n; i++) {
                        req_t *req = expired[i]->owner;
                        edge__complete(req, req->async ? OUT_UNAVAILABLE
                                                       : OUT_TIMEOUT);
                }
        }
        return NULL;
}
