/*
 * lookup.c - GET /api/operations/{id}: the operation log, off the loop
 * threads.
 *
 * The loop thread suspends the request and queues it; one lookup thread
 * reads the operation log (a store round trip) and completes it: the stored
 * result, pending (an id young enough to be a command still queued), not
 * found, or the store unreachable. respond.c checks that the caller may see
 * the operation (same tenant and user) before answering.
 */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "edge_internal.h"
#include "log.h"
#include "oplog.h"

static void edge__lookup(edge_t *edge, req_t *req) {
        oplog_entry_t entry;
        char err[256];
        msgid_t id;
        store_err_t serr;

        msgid_parse(req->id, MSGID_TEXT_LEN, &id);
        serr = oplog_find(edge->store, slice_of(req->id), &entry, err,
                          sizeof(err));
        if (serr == STORE_OK) {
                req->reply_status = entry.status;
                req->reply_mp = entry.body;
                if (entry.events)
                        bson_destroy(entry.events);
                req->reply_mp_len = entry.body_len;
                if (entry.content_type[0])
                        req->reply_ctype = xstrdup(entry.content_type);
                snprintf(req->op_tenant, sizeof(req->op_tenant), "%s",
                         entry.tenant);
                snprintf(req->op_user, sizeof(req->op_user), "%s", entry.user);
                edge__complete(req, OUT_OPERATION);
                return;
        }
        if (serr != STORE_NOT_FOUND) {
                log_warn("operation lookup: %s", err);
                edge__complete(req, OUT_OP_STORE_DOWN);
                return;
        }
        /* Not recorded yet: pending if the id could be a live operation. */
        {
                uint64_t t = msgid_time_ms(&id), now = clock_wall_ms();
                uint64_t horizon =
                        (uint64_t)edge->cfg->operation_retention_s * 1000u;
                bool live = t <= now + 60000 && t + horizon >= now;
                edge__complete(req, live ? OUT_OP_PENDING : OUT_OP_NOT_FOUND);
        }
}

void *edge__lookup_loop(void *arg) {
        edge_t *edge = arg;
        log_set_group("edge");
        pthread_mutex_lock(&edge->jobs_lock);
        for (;;) {
                req_t *req;
                while (!edge->jobs_head && !atomic_load(&edge->stopping))
                        pthread_cond_wait(&edge->jobs_cond, &edge->jobs_lock);
                req = edge->jobs_head;
                if (!req)
                        break; /* stopping and nothing left */
                edge->jobs_head = req->next_job;
                if (!edge->jobs_head)
                        edge->jobs_tail = NULL;
                pthread_mutex_unlock(&edge->jobs_lock);
                edge__lookup(edge, req);
                pthread_mutex_lock(&edge->jobs_lock);
        }
        pthread_mutex_unlock(&edge->jobs_lock);
        return NULL;
}

void edge__enqueue_lookup(edge_t *edge, req_t *req) {
        pthread_mutex_lock(&edge->jobs_lock);
        req->next_job = NULL;
        if (edge->jobs_tail)
                edge->jobs_tail->next_job = req;
        else
                edge->jobs_head = req;
        edge->jobs_tail = req;
        pthread_cond_signal(&edge->jobs_cond);
        pthread_mutex_unlock(&edge->jobs_lock);
}
