/*
 * rt_ctx.c - the handler API (rt_ctx_t, runtime.h): what a handler reads
 * (message, caller, settings, store), replies, failures and the outputs it
 * asks for (events, commands, requests), checked before they are kept.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "codec.h"
#include "log.h"
#include "rt_internal.h"

/* ---------------------------------------------------------------------------
 * Contexts
 * ------------------------------------------------------------------------ */

void rt__ctx_init(rt_ctx_t *ctx, runtime_t *rt, rt_job_t *job,
                  const env_t *env) {
        memset(ctx, 0, sizeof(*ctx));
        ctx->rt = rt;
        ctx->job = job;
        ctx->env = env;
        msgpack_sbuffer_init(&ctx->reply);
        msgpack_packer_init(&ctx->pk, &ctx->reply, msgpack_sbuffer_write);
}

void rt__ctx_drop_outputs(rt_ctx_t *ctx) {
        for (size_t i = 0; i < ctx->n_outs; i++) {
                rt_output_t *o = &ctx->outs[i];
                free(o->type);
                free(o->topic);
                free(o->reply_to);
                free(o->key);
                free(o->body);
                free(o->tenant);
                free(o->user);
                free(o->roles);
        }
        free(ctx->outs);
        ctx->outs = NULL;
        ctx->n_outs = 0;
        ctx->bad_output = false;
}

void rt__ctx_deinit(rt_ctx_t *ctx) {
        rt__ctx_drop_outputs(ctx);
        msgpack_sbuffer_destroy(&ctx->reply);
        free(ctx->content_type);
        ctx->content_type = NULL;
        free(ctx->fail_why);
        ctx->fail_why = NULL;
}

/* ---------------------------------------------------------------------------
 * The handler API
 * ------------------------------------------------------------------------ */

const env_t *rt_env(const rt_ctx_t *ctx) {
        return ctx->env;
}

runtime_t *rt_runtime(const rt_ctx_t *ctx) {
        return ctx->rt;
}

void *rt_state(const rt_ctx_t *ctx) {
        return ctx->rt->state;
}

store_t *rt_store(const rt_ctx_t *ctx) {
        return ctx->rt->store;
}

const char *rt_db(const rt_ctx_t *ctx) {
        return runtime_db(ctx->rt);
}

const void *rt_settings(const rt_ctx_t *ctx, const config_table_t *table) {
        return runtime_settings(ctx->rt, table);
}

bool rt_replaying(const rt_ctx_t *ctx) {
        return ctx->job && ctx->job->loop && ctx->job->loop->replaying;
}

void rt_caller(const rt_ctx_t *ctx, rt_caller_t *out) {
        const env_t *env = ctx->env;
        const char *p, *end;
        memset(out, 0, sizeof(*out));
        out->tenant = env->tenant;
        out->user = env->user;
        out->roles = env->roles;
        out->role = SCHEMA_ROLE_NONE;
        /* roles: comma-separated names; the strongest counts. */
        p = env->roles.ptr;
        end = p ? p + env->roles.len : NULL;
        while (p && p < end) {
                const char *comma = memchr(p, ',', (size_t)(end - p));
                size_t len = comma ? (size_t)(comma - p) : (size_t)(end - p);
                schema_role_t r = schema_role_parse(p, len);
                if (r > out->role)
                        out->role = r;
                p = comma ? comma + 1 : end;
        }
}

bool rt_require_role(rt_ctx_t *ctx, schema_role_t least) {
        rt_caller_t c;
        char detail[128];
        rt_caller(ctx, &c);
        if (!c.tenant.len || !c.user.len) {
                rt_reply_problem(ctx, 401, "Unauthorized",
                                 "this command needs a signed-in caller");
                return false;
        }
        if (c.role < least) {
                snprintf(detail, sizeof(detail), "this needs the %s role",
                         schema_role_name(least));
                rt_reply_problem(ctx, 403, "Forbidden", detail);
                return false;
        }
        return true;
}

msgpack_packer *rt_reply(rt_ctx_t *ctx, int status) {
        msgpack_sbuffer_clear(&ctx->reply);
        free(ctx->content_type);
        ctx->content_type = NULL;
        ctx->status = status;
        return &ctx->pk;
}

void rt_reply_bytes(rt_ctx_t *ctx, int status, const char *content_type,
                    const void *bytes, size_t len) {
        rt_reply(ctx, status);
        ctx->content_type = xstrdup(content_type);
        msgpack_sbuffer_write(&ctx->reply, bytes, len);
}

void rt__problem(rt_ctx_t *ctx, int status, const char *title,
                 const char *detail, const schema_report_t *report) {
        msgpack_packer *pk = rt_reply(ctx, status);
        msgpack_pack_map(pk, 4 + (report ? 1 : 0));
        codec_pack_str(pk, "type");
        codec_pack_str(pk, "about:blank");
        codec_pack_str(pk, "title");
        codec_pack_str(pk, title);
        codec_pack_str(pk, "status");
        msgpack_pack_int(pk, status);
        codec_pack_str(pk, "detail");
        codec_pack_str(pk, detail ? detail : title);
        if (report) {
                codec_pack_str(pk, "errors");
                msgpack_pack_array(pk, report->n);
                for (size_t i = 0; i < report->n; i++) {
                        msgpack_pack_map(pk, 2);
                        codec_pack_str(pk, "field");
                        codec_pack_str(pk, report->v[i].field);
                        codec_pack_str(pk, "reason");
                        codec_pack_str(pk, report->v[i].reason);
                }
        }
}

void rt_reply_problem(rt_ctx_t *ctx, int status, const char *title,
                      const char *detail) {
        rt__problem(ctx, status, title, detail, NULL);
}

void rt_fail(rt_ctx_t *ctx, const char *why) {
        free(ctx->fail_why);
        ctx->fail_why = xstrdup(why ? why : "failed");
}

/* Commands of a read-only synchronous command are not recorded, so it must
 * not publish anything: a lost output could never be sent again. */
static bool rt__outputs_allowed(rt_ctx_t *ctx, const char *type) {
        rt_job_t *job = ctx->job;
        if (job && job->loop && job->loop->commands && !job->record &&
            job->h != NULL && job->sm != NULL) {
                log_error("%s: a read-only command may not publish %s",
                          job->sm->type, type);
                ctx->bad_output = true;
                return false;
        }
        return true;
}

/* A new output of ctx: its id is random for commands (the operation record
 * keeps it) and derived from the message for events of subscriptions (so a
 * redelivery sends the same ids again). */
static rt_output_t *rt__output_new(rt_ctx_t *ctx, const char *type, slice_t key,
                                   const msgpack_sbuffer *body,
                                   const rt_out_opts_t *opts) {
        rt_output_t *o;
        msgid_t mid;
        rt_job_t *job = ctx->job;
        ctx->outs = xrealloc(ctx->outs, (ctx->n_outs + 1) * sizeof(*o));
        o = &ctx->outs[ctx->n_outs++];
        memset(o, 0, sizeof(*o));
        if (opts && opts->id && msgid_parse(opts->id, strlen(opts->id), &mid)) {
                /* The caller's own (derived) id. */
        } else if (job && job->loop && !job->loop->commands) {
                char seed[512];
                int n = snprintf(seed, sizeof(seed), "%s|%.*s|%zu|%s",
                                 job->loop->group_id, (int)ctx->env->id.len,
                                 ctx->env->id.ptr ? ctx->env->id.ptr : "",
                                 ctx->n_outs, type);
                msgid_derive((uint64_t)ctx->env->created_at_ms, seed,
                             n < (int)sizeof(seed) ? (size_t)n
                                                   : sizeof(seed) - 1,
                             &mid);
        } else {
                msgid_new(&mid);
        }
        msgid_format(&mid, o->id);
        o->type = xstrdup(type);
        o->key = xstrndup(key.ptr ? key.ptr : "", key.len);
        o->key_len = key.len;
        o->body = xmalloc(body->size ? body->size : 1);
        memcpy(o->body, body->data, body->size);
        o->body_len = body->size;
        if (opts && opts->tenant.len)
                o->tenant = xstrndup(opts->tenant.ptr, opts->tenant.len);
        if (opts && opts->user.len)
                o->user = xstrndup(opts->user.ptr, opts->user.len);
        if (opts && opts->roles.len)
                o->roles = xstrndup(opts->roles.ptr, opts->roles.len);
        return o;
}

/* An event must be declared in schemas/ and its body must match. */
static bool rt__event_valid(rt_ctx_t *ctx, const char *type,
                            const msgpack_sbuffer *body) {
        const schema_event_t *decl =
                schema_find_event(ctx->rt->schemas, slice_of(type));
        schema_report_t report;
        msgpack_zone zone;
        msgpack_object obj;
        size_t off = 0;
        bool ok;
        if (!decl) {
                log_error("event %s is not declared in schemas/", type);
                ctx->bad_output = true;
                return false;
        }
        msgpack_zone_init(&zone, 1024);
        ok = msgpack_unpack(body->data, body->size, &off, &zone, &obj) ==
                     MSGPACK_UNPACK_SUCCESS &&
             off == body->size && schema_event_validate(decl, &obj, &report);
        msgpack_zone_destroy(&zone);
        if (!ok) {
                if (off == body->size && report.n)
                        log_error("event %s breaks its declaration: %s %s",
                                  type, report.v[0].field, report.v[0].reason);
                else
                        log_error("event %s: the body is not one msgpack map",
                                  type);
                ctx->bad_output = true;
        }
        return ok;
}

int rt_emit(rt_ctx_t *ctx, const char *type, slice_t key,
            const msgpack_sbuffer *body) {
        return rt_emit_with(ctx, type, key, body, NULL);
}

int rt_emit_with(rt_ctx_t *ctx, const char *type, slice_t key,
                 const msgpack_sbuffer *body, const rt_out_opts_t *opts) {
        const char *dot = strchr(type, '.');
        const char *group = ctx->rt->def->name;
        size_t glen = strlen(group);
        /* A group publishes only its own events: "<group>.<...>". */
        if (!dot || (size_t)(dot - type) != glen ||
            memcmp(type, group, glen) != 0) {
                log_error("event %s: not an event of group %s", type, group);
                ctx->bad_output = true;
                return -1;
        }
        if (!rt__outputs_allowed(ctx, type) ||
            !rt__event_valid(ctx, type, body))
                return -1;
        rt__output_new(ctx, type, key, body, opts);
        return 0;
}

int rt_emit_id(rt_ctx_t *ctx, const char *type, slice_t key,
               const msgpack_sbuffer *body, const char *id) {
        msgid_t parsed;
        if (!id || !msgid_parse(id, strlen(id), &parsed)) {
                log_error("event %s: its id is not a UUID", type);
                ctx->bad_output = true;
                return -1;
        }
        if (rt_emit(ctx, type, key, body) != 0)
                return -1;
        msgid_format(&parsed, ctx->outs[ctx->n_outs - 1].id);
        return 0;
}

/* "<group>.<name>" -> "<prefix><group>.commands" */
static char *rt__commands_topic_of(runtime_t *rt, const char *type) {
        const char *dot = strchr(type, '.');
        char topic[256];
        snprintf(topic, sizeof(topic), "%s%.*s.commands", rt->cfg->topic_prefix,
                 (int)(dot ? (size_t)(dot - type) : strlen(type)), type);
        return xstrdup(topic);
}

void rt_send(rt_ctx_t *ctx, const char *type, slice_t key,
             const msgpack_sbuffer *body) {
        rt_send_with(ctx, type, key, body, NULL);
}

void rt_send_with(rt_ctx_t *ctx, const char *type, slice_t key,
                  const msgpack_sbuffer *body, const rt_out_opts_t *opts) {
        rt_output_t *o;
        if (!rt__outputs_allowed(ctx, type))
                return;
        o = rt__output_new(ctx, type, key, body, opts);
        o->topic = rt__commands_topic_of(ctx->rt, type);
}

void rt_request(rt_ctx_t *ctx, const char *type, slice_t key,
                const msgpack_sbuffer *body, char *id_out) {
        rt_request_with(ctx, type, key, body, NULL, id_out);
}

void rt_request_with(rt_ctx_t *ctx, const char *type, slice_t key,
                     const msgpack_sbuffer *body, const rt_out_opts_t *opts,
                     char *id_out) {
        char reply_to[300];
        rt_output_t *o;
        id_out[0] = '\0';
        if (!rt__outputs_allowed(ctx, type))
                return;
        o = rt__output_new(ctx, type, key, body, opts);
        o->topic = rt__commands_topic_of(ctx->rt, type);
        snprintf(reply_to, sizeof(reply_to), "%s:%d", ctx->rt->commands_topic,
                 (int)rt__key_partition(
                         ctx->rt, ctx->env->key.len ? ctx->env->key : key));
        o->reply_to = xstrdup(reply_to);
        memcpy(id_out, o->id, MSGID_TEXT_SIZE);
}

handler_result_t runtime_handle_status(rt_ctx_t *ctx,
                                       const msgpack_object *body) {
        runtime_t *rt = ctx->rt;
        msgpack_packer *pk = rt_reply(ctx, 200);
        (void)body;
        msgpack_pack_map(pk, 7);
        codec_pack_str(pk, "group");
        codec_pack_str(pk, rt->def->name);
        codec_pack_str(pk, "instance_id");
        codec_pack_str(pk, rt->instance);
        codec_pack_str(pk, "pid");
        msgpack_pack_int64(pk, (int64_t)getpid());
        codec_pack_str(pk, "host");
        codec_pack_str(pk, rt->host);
        codec_pack_str(pk, "mode");
        codec_pack_str(pk, rt->mode == RUNTIME_MONOLITH ? "monolith"
                                                        : "standalone");
        codec_pack_str(pk, "uptime_s");
        msgpack_pack_double(pk, (double)(clock_mono_ms() - rt->started_ms) /
                                        1000.0);
        codec_pack_str(pk, "version");
        codec_pack_str(pk, OMNIFY_VERSION);
        return HANDLER_OK;
}
