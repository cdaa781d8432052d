/*
 * harness.c - a group's handlers against the real store, without the broker
 * (see harness.h). It drives the runtime's own job path (rt_internal.h):
 * the runtime has no bus, so its outputs come to harness__capture.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "codec.h"
#include "log.h"
#include "rt_internal.h"
#include "service.h"

#define HARNESS_REPLY_TO "harness.replies:0"

struct harness {
        schema_set_t *own_schemas; /* loaded here, or NULL */
        const schema_set_t *schemas;
        store_t *store;
        runtime_t *rt;
        harness_msg_t reply;
        bool has_reply;
        int64_t command_age_ms; /* harness_set_command_age */
        harness_msg_t *outs;
        size_t n_outs;
};

static void harness__msg_free(harness_msg_t *m) {
        free(m->topic);
        free(m->id);
        free(m->type);
        free(m->tenant);
        free(m->content_type);
        free(m->json);
        memset(m, 0, sizeof(*m));
}

static void harness__clear(harness_t *h) {
        harness__msg_free(&h->reply);
        h->has_reply = false;
        for (size_t i = 0; i < h->n_outs; i++)
                harness__msg_free(&h->outs[i]);
        free(h->outs);
        h->outs = NULL;
        h->n_outs = 0;
}

static char *harness__dup(slice_t s) {
        return s.len ? xstrndup(s.ptr, s.len) : NULL;
}

/* Where the runtime would have produced. */
static void harness__capture(void *arg, const char *topic, const env_t *env,
                             slice_t value) {
        harness_t *h = arg;
        harness_msg_t m = {0};
        m.topic = xstrdup(topic);
        m.id = harness__dup(env->id);
        m.type = harness__dup(env->type);
        m.tenant = harness__dup(env->tenant);
        m.status = env->status;
        m.content_type = harness__dup(env->content_type);
        if (m.content_type ||
            codec_msgpack_to_json(value, &m.json, &m.len) != CODEC_OK) {
                m.json = xmalloc(value.len + 1);
                memcpy(m.json, value.ptr, value.len);
                m.json[value.len] = '\0';
                m.len = value.len;
        }
        if (strcmp(topic, "harness.replies") == 0) {
                harness__msg_free(&h->reply);
                h->reply = m;
                h->has_reply = true;
                return;
        }
        h->outs = xrealloc(h->outs, (h->n_outs + 1) * sizeof(*h->outs));
        h->outs[h->n_outs++] = m;
}

harness_t *harness_new(const group_def_t *def, const config_t *cfg,
                       const schema_set_t *schemas, char *errstr,
                       size_t errlen) {
        harness_t *h = xcalloc(1, sizeof(*h));
        char name[64];
        snprintf(name, sizeof(name), "harness-%s", def->name);
        if (!schemas)
                schemas = h->own_schemas = service_load_schemas(errstr, errlen);
        if (!schemas)
                goto fail;
        h->schemas = schemas;
        h->store = store_new(cfg, name, errstr, errlen);
        if (!h->store)
                goto fail;
        if (store_ping(h->store) != STORE_OK) {
                snprintf(errstr, errlen, "the store is unreachable");
                goto fail;
        }
        h->rt = runtime_new(def, cfg, h->schemas, NULL, h->store,
                            RUNTIME_STANDALONE, errstr, errlen);
        if (!h->rt)
                goto fail;
        h->rt->capture = harness__capture;
        h->rt->capture_arg = h;
        /* Indexes and init, as runtime_run does before its loops. */
        {
                char err[512] = "";
                if (oplog_init(h->store, err, sizeof(err)) != STORE_OK ||
                    (def->indexes &&
                     store_ensure_indexes(h->store, def->name, def->indexes,
                                          err, sizeof(err)) != STORE_OK)) {
                        snprintf(errstr, errlen, "indexes: %s", err);
                        goto fail;
                }
                if (def->init && def->init(h->rt, &h->rt->state, err,
                                           sizeof(err)) != HANDLER_OK) {
                        snprintf(errstr, errlen, "init: %s", err);
                        goto fail;
                }
        }
        atomic_store(&h->rt->initialised, true);
        return h;

fail:
        harness_destroy(h);
        return NULL;
}

void harness_destroy(harness_t *h) {
        if (!h)
                return;
        harness__clear(h);
        runtime_destroy(h->rt);
        store_destroy(h->store);
        schema_set_destroy(h->own_schemas);
        free(h);
}

runtime_t *harness_runtime(harness_t *h) {
        return h->rt;
}

/* Run one message through loop's job path, as one poll of one message. */
static void harness__run(harness_t *h, rt_loop_t *loop, const env_t *env) {
        static const atomic_bool never = false;
        rt_job_t *job = rt__job_new(loop, NULL, env);
        loop->stop = &never;
        if (rt__job_needs_lookup(job)) {
                oplog_entry_t seen;
                char err[256];
                if (oplog_find(h->store, job->env.id, &seen, err,
                               sizeof(err)) == STORE_OK)
                        rt__job_answered(job, &seen);
        }
        if (job->state == RT_JOB_RUN) {
                if (job->h->batch) {
                        rt_job_t *one[1] = {job};
                        rt__batch_exec(one, 1, &never);
                } else {
                        rt__job_exec(job, &never);
                }
        }
        job->next = NULL;
        rt__flush(h->rt, job, &never);
}

/* JSON (NULL: {}) to msgpack into mp; false when it is not a JSON object. */
static bool harness__pack(const char *json, msgpack_sbuffer *mp) {
        char err[256];
        msgpack_sbuffer_init(mp);
        if (codec_json_to_msgpack(slice_of(json ? json : "{}"), NULL, mp, err,
                                  sizeof(err)) != CODEC_OK) {
                log_error("harness: %s", err);
                msgpack_sbuffer_destroy(mp);
                return false;
        }
        return true;
}

int harness_command_id(harness_t *h, const char *id, const char *type,
                       const char *json, const harness_caller_t *caller) {
        const schema_msg_t *sm = schema_find(h->schemas, slice_of(type));
        msgpack_sbuffer mp;
        char idbuf[MSGID_TEXT_SIZE];
        env_t env = {0};
        harness__clear(h);
        if (!harness__pack(json, &mp))
                return -1;
        if (!id) {
                msgid_t mid;
                msgid_new(&mid);
                msgid_format(&mid, idbuf);
                id = idbuf;
        }
        env.id = slice_of(id);
        env.type = slice_of(type);
        env.schema_version = sm ? sm->version : 1;
        env.created_at_ms = (int64_t)clock_wall_ms() - h->command_age_ms;
        env.correlation_id = env.id;
        env.reply_to = slice_of(HARNESS_REPLY_TO);
        if (caller) {
                env.tenant = slice_of(caller->tenant);
                env.user = slice_of(caller->user);
                env.roles = slice_of(caller->roles);
        }
        env.key = env.tenant.len ? env.tenant : env.id;
        env.value = (slice_t){mp.data, mp.size};
        harness__run(h, h->rt->commands, &env);
        msgpack_sbuffer_destroy(&mp);
        return h->has_reply ? h->reply.status : 0;
}

void harness_set_command_age(harness_t *h, int64_t age_ms) {
        h->command_age_ms = age_ms;
}

int harness_command(harness_t *h, const char *type, const char *json,
                    const harness_caller_t *caller) {
        return harness_command_id(h, NULL, type, json, caller);
}

int harness_event(harness_t *h, const char *type, const char *json,
                  const char *tenant) {
        msgpack_sbuffer mp;
        char id[MSGID_TEXT_SIZE];
        msgid_t mid;
        env_t env = {0};
        rt_loop_t *loop = NULL;
        size_t hi;
        harness__clear(h);
        for (size_t s = 0; s < h->rt->n_subs && !loop; s++)
                if (rt__loop_handler(h->rt->subs[s], slice_of(type), &hi))
                        loop = h->rt->subs[s];
        if (!loop || !harness__pack(json, &mp))
                return -1;
        msgid_new(&mid);
        msgid_format(&mid, id);
        env.id = slice_of(id);
        env.type = slice_of(type);
        env.schema_version = 1;
        env.created_at_ms = (int64_t)clock_wall_ms();
        env.tenant = slice_of(tenant);
        env.key = env.tenant.len ? env.tenant : env.id;
        env.value = (slice_t){mp.data, mp.size};
        harness__run(h, loop, &env);
        msgpack_sbuffer_destroy(&mp);
        return 0;
}

const harness_msg_t *harness_reply(const harness_t *h) {
        return h->has_reply ? &h->reply : NULL;
}

size_t harness_outputs(const harness_t *h) {
        return h->n_outs;
}

const harness_msg_t *harness_output(const harness_t *h, size_t i) {
        return i < h->n_outs ? &h->outs[i] : NULL;
}

size_t harness_count(const harness_t *h, const char *prefix) {
        size_t n = 0, len = strlen(prefix);
        for (size_t i = 0; i < h->n_outs; i++)
                if (h->outs[i].type &&
                    strncmp(h->outs[i].type, prefix, len) == 0)
                        n++;
        return n;
}
