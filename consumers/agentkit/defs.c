/*
 * defs.c - definitions of workflows and agents: checked, versioned per
 * tenant, cached.
 *
 * The schema checks the shape of a definition at the edge and again here
 * (its top-level steps field by field); this file checks what the schema
 * cannot state, every problem named by its path: unique step ids, what
 * each kind needs, where next, branch cases and defaults lead, expressions
 * and templates, the commands a step may send (another group's, declared
 * in schemas/), the events it may wait for, parallel branches (whose steps
 * are checked here as steps at any depth), and agents' tools.
 *
 * Collections: heads {_id: "<kind>|<tenant>|<id>", kind, tenant, def_id,
 * latest, name, created_at, updated_at} and defs {_id: "<kind>|<tenant>|
 * <id>|<version>", kind, tenant, def_id, version, hash, doc (JSON text),
 * created_at, created_by}. A version never changes once written, so the
 * cache (by key, least recently used out) never goes stale; a run keeps the
 * key of the version it started with.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentkit_internal.h"

static const char *const ak_kinds[AK_KIND_COUNT] = {
        "noop",       "command",  "http",   "llm",    "sleep",    "sleep_until",
        "wait_event", "approval", "signal", "branch", "parallel", "child",
};

const char *ak_kind_name(ak_kind_t kind) {
        return kind < AK_KIND_COUNT ? ak_kinds[kind] : "?";
}

/* ---------------------------------------------------------------------------
 * Checking one step
 * ------------------------------------------------------------------------ */

/* The fields a step may have: JSON type and the kinds they apply to (a
 * bit per kind; ALL: every kind). */
#define K(k) (1u << (k))
#define ALL 0xffffu
static const struct {
        const char *name;
        json_type type;
        unsigned kinds;
} ak_fields[] = {
        {"id", JSON_STRING, ALL},
        {"kind", JSON_STRING, ALL},
        {"name", JSON_STRING, ALL},
        {"input", JSON_OBJECT, K(AK_NOOP) | K(AK_COMMAND) | K(AK_CHILD)},
        {"command", JSON_STRING, K(AK_COMMAND)},
        {"method", JSON_STRING, K(AK_HTTP)},
        {"url", JSON_STRING, K(AK_HTTP)},
        {"headers", JSON_OBJECT, K(AK_HTTP)},
        {"body", JSON_OBJECT, K(AK_HTTP)},
        {"model", JSON_STRING, K(AK_LLM)},
        {"messages", JSON_ARRAY, K(AK_LLM)},
        {"tools", JSON_ARRAY, K(AK_LLM)},
        {"duration_ms", JSON_INTEGER, K(AK_SLEEP)},
        {"until", JSON_STRING, K(AK_SLEEP_UNTIL)},
        {"event", JSON_STRING, K(AK_WAIT_EVENT)},
        {"filter", JSON_OBJECT, K(AK_WAIT_EVENT)},
        {"signal", JSON_STRING, K(AK_SIGNAL)},
        {"role", JSON_STRING, K(AK_APPROVAL)},
        {"prompt", JSON_STRING, K(AK_APPROVAL)},
        {"on_timeout", JSON_STRING,
         K(AK_WAIT_EVENT) | K(AK_APPROVAL) | K(AK_SIGNAL)},
        {"timeout_ms", JSON_INTEGER,
         K(AK_COMMAND) | K(AK_HTTP) | K(AK_LLM) | K(AK_CHILD) |
                 K(AK_WAIT_EVENT) | K(AK_APPROVAL) | K(AK_SIGNAL)},
        {"retry", JSON_OBJECT, ALL & ~K(AK_BRANCH)},
        {"cases", JSON_ARRAY, K(AK_BRANCH)},
        {"default", JSON_STRING, K(AK_BRANCH)},
        {"next", JSON_STRING, ALL & ~K(AK_BRANCH)},
        {"join", JSON_STRING, K(AK_PARALLEL)},
        {"n", JSON_INTEGER, K(AK_PARALLEL)},
        {"branches", JSON_ARRAY, K(AK_PARALLEL)},
        {"workflow_id", JSON_STRING, K(AK_CHILD)},
        {"version", JSON_INTEGER, K(AK_CHILD)},
        /* Agents' own steps carry these. */
        {"tool_call_id", JSON_STRING, K(AK_COMMAND) | K(AK_APPROVAL)},
        {"approval", JSON_TRUE, K(AK_COMMAND)},
};

static int ak__kind_parse(const char *s) {
        for (int k = 0; s && k < AK_KIND_COUNT; k++)
                if (strcmp(ak_kinds[k], s) == 0)
                        return k;
        return -1;
}

bool ak_step_parse(const json_t *j, ak_step_t *out, char *err, size_t errlen) {
        const json_t *r = json_object_get(j, "retry");
        int kind = ak__kind_parse(ak_str(j, "kind"));
        bool remote;
        memset(out, 0, sizeof(*out));
        out->j = j;
        out->id = ak_str(j, "id");
        if (!out->id || kind < 0) {
                snprintf(err, errlen, "a step needs an id and a known kind");
                return false;
        }
        out->kind = (ak_kind_t)kind;
        remote = kind == AK_COMMAND || kind == AK_HTTP || kind == AK_LLM;
        out->max_attempts = (int)ak_int(r, "max_attempts", remote ? 3 : 1);
        out->backoff_ms = ak_int(r, "backoff_ms", 1000);
        out->max_backoff_ms = ak_int(r, "max_backoff_ms", 60000);
        out->multiplier =
                json_is_number(json_object_get(r, "multiplier"))
                        ? json_number_value(json_object_get(r, "multiplier"))
                        : 2.0;
        out->final_errors = json_object_get(r, "final_errors");
        out->fail_on_exhausted = ak_str(r, "on_exhausted") &&
                                 strcmp(ak_str(r, "on_exhausted"), "fail") == 0;
        out->timeout_ms = ak_int(j, "timeout_ms", 0);
        out->next = ak_str(j, "next");
        if (kind == AK_BRANCH)
                out->next = NULL;
        return true;
}

/* What a checker walks with. */
typedef struct ak_check {
        const schema_set_t *schemas;
        schema_report_t *report;
        json_t *ids; /* id -> true, every step seen */
        size_t n_steps;
} ak_check_t;

static void ak__problem(ak_check_t *c, const char *path, const char *field,
                        const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static void ak__problem(ak_check_t *c, const char *path, const char *field,
                        const char *fmt, ...) {
        char where[256], why[160];
        va_list ap;
        snprintf(where, sizeof(where), "%s%s%s", path, field ? "." : "",
                 field ? field : "");
        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        schema_report_add(c->report, where, strlen(where), why);
}

static void ak__check_template(ak_check_t *c, const char *path,
                               const char *field, const json_t *t) {
        char err[160];
        if (t && !ak_template_check(t, err, sizeof(err)))
                ak__problem(c, path, field, "%s", err);
}

/* A command a workflow or agent may send: declared, of another group. */
static const char *ak__command_problem(const schema_set_t *schemas,
                                       const char *type) {
        const schema_msg_t *m = schema_find(schemas, slice_of(type));
        if (!m)
                return "no group declares this command";
        if (strncmp(type, "agentkit.", 9) == 0)
                return "a workflow may not send agentkit's own commands "
                       "(use a child step)";
        if (m->route.secret_reply)
                return "commands whose answer holds secrets cannot be "
                       "sent by workflows";
        return NULL;
}

static void ak__check_seq(ak_check_t *c, const json_t *steps, const char *path,
                          int depth);

/* next / case targets: a step of the same list, or "end". */
static void ak__check_target(ak_check_t *c, const json_t *seq, const char *path,
                             const char *field, const char *target) {
        size_t i;
        const json_t *s;
        if (!target || strcmp(target, "end") == 0)
                return;
        json_array_foreach(seq, i, s) {
                const char *id = ak_str(s, "id");
                if (id && strcmp(id, target) == 0)
                        return;
        }
        ak__problem(c, path, field,
                    "must name a step of the same list, or \"end\"");
}

static void ak__check_step(ak_check_t *c, const json_t *seq, const json_t *j,
                           const char *path, int depth) {
        const char *id = ak_str(j, "id"), *kname = ak_str(j, "kind");
        int kind = ak__kind_parse(kname);
        const char *key;
        const json_t *v;
        char err[160];
        size_t before;

        if (!json_is_object(j)) {
                ak__problem(c, path, NULL, "must be an object");
                return;
        }
        c->n_steps++;
        if (!ak_name_valid(id))
                ak__problem(c, path, "id",
                            "must be 1 to 64 letters, digits, '_' or '-'");
        else if (json_object_get(c->ids, id))
                ak__problem(c, path, "id", "must be unique in the workflow");
        else if (strcmp(id, "end") == 0)
                ak__problem(c, path, "id", "\"end\" is reserved");
        else
                json_object_set_new(c->ids, id, json_true());
        if (kind < 0) {
                ak__problem(c, path, "kind", "must be one of the step kinds");
                return;
        }
        before = c->report->n;
        json_object_foreach((json_t *)j, key, v) {
                size_t f;
                for (f = 0; f < sizeof(ak_fields) / sizeof(ak_fields[0]); f++)
                        if (strcmp(ak_fields[f].name, key) == 0)
                                break;
                if (f == sizeof(ak_fields) / sizeof(ak_fields[0]))
                        ak__problem(c, path, key, "is not a step field");
                else if (!(ak_fields[f].kinds & K(kind)))
                        ak__problem(c, path, key, "does not apply to a %s step",
                                    kname);
                else if (json_typeof(v) != ak_fields[f].type &&
                         !(ak_fields[f].type == JSON_TRUE &&
                           json_is_boolean(v)))
                        ak__problem(c, path, key, "has the wrong type");
        }
        if (c->report->n > before)
                return; /* the rest would only repeat it */
        ak__check_template(c, path, "input", json_object_get(j, "input"));
        ak__check_target(c, seq, path, "next", ak_str(j, "next"));
        switch (kind) {
        case AK_COMMAND: {
                const char *cmd = ak_str(j, "command"), *why;
                if (!cmd)
                        ak__problem(c, path, "command", "is required");
                else if ((why = ak__command_problem(c->schemas, cmd)))
                        ak__problem(c, path, "command", "%s", why);
                break;
        }
        case AK_HTTP: {
                const char *url = ak_str(j, "url");
                if (!url)
                        ak__problem(c, path, "url", "is required");
                else if (!strstr(url, "${") && strncmp(url, "http://", 7) &&
                         strncmp(url, "https://", 8))
                        ak__problem(c, path, "url",
                                    "must be an http or https URL");
                ak__check_template(c, path, "url", json_object_get(j, "url"));
                ak__check_template(c, path, "headers",
                                   json_object_get(j, "headers"));
                ak__check_template(c, path, "body", json_object_get(j, "body"));
                json_object_foreach(json_object_get(j, "headers"), key, v) {
                        if (!json_is_string(v))
                                ak__problem(c, path, "headers",
                                            "values must be strings");
                }
                break;
        }
        case AK_LLM: {
                const json_t *msgs = json_object_get(j, "messages"), *tools;
                size_t i;
                json_t *decls;
                if (!json_array_size(msgs))
                        ak__problem(c, path, "messages", "is required");
                json_array_foreach(msgs, i, v) {
                        char p[200];
                        snprintf(p, sizeof(p), "%.160s.messages[%zu]", path, i);
                        if (!json_is_object(v) || !ak_str(v, "role") ||
                            !ak_str(v, "content"))
                                ak__problem(c, p, NULL,
                                            "needs a role and a content");
                        else
                                ak__check_template(
                                        c, p, "content",
                                        json_object_get(v, "content"));
                }
                tools = json_object_get(j, "tools");
                if (tools && !(decls = ak_tool_decls(c->schemas, tools, err,
                                                     sizeof(err))))
                        ak__problem(c, path, "tools", "%s", err);
                else if (tools)
                        json_decref(decls);
                break;
        }
        case AK_SLEEP:
                if (!json_object_get(j, "duration_ms"))
                        ak__problem(c, path, "duration_ms", "is required");
                break;
        case AK_SLEEP_UNTIL: {
                const char *u = ak_str(j, "until");
                if (!u)
                        ak__problem(c, path, "until", "is required");
                else if (strstr(u, "${"))
                        ak__check_template(c, path, "until",
                                           json_object_get(j, "until"));
                else if (ak_time_parse(u) < 0)
                        ak__problem(c, path, "until",
                                    "must be an RFC 3339 time or a "
                                    "template");
                break;
        }
        case AK_WAIT_EVENT: {
                const char *ev = ak_str(j, "event");
                if (!ev)
                        ak__problem(c, path, "event", "is required");
                else if (!schema_find_event(c->schemas, slice_of(ev)))
                        ak__problem(c, path, "event",
                                    "no group declares this event");
                ak__check_template(c, path, "filter",
                                   json_object_get(j, "filter"));
                break;
        }
        case AK_SIGNAL:
                if (!ak_name_valid(ak_str(j, "signal")))
                        ak__problem(c, path, "signal",
                                    "is required: a name of letters, "
                                    "digits, '_' and '-'");
                break;
        case AK_APPROVAL:
                ak__check_template(c, path, "prompt",
                                   json_object_get(j, "prompt"));
                break;
        case AK_BRANCH: {
                const json_t *cases = json_object_get(j, "cases");
                size_t i;
                if (!json_array_size(cases) && !ak_str(j, "default"))
                        ak__problem(c, path, "cases",
                                    "a branch needs cases or a default");
                json_array_foreach(cases, i, v) {
                        char p[200];
                        const char *when = ak_str(v, "when");
                        snprintf(p, sizeof(p), "%.160s.cases[%zu]", path, i);
                        if (!when || !ak_str(v, "next")) {
                                ak__problem(c, p, NULL, "needs when and next");
                                continue;
                        }
                        if (!ak_expr_check(when, err, sizeof(err)))
                                ak__problem(c, p, "when", "%s", err);
                        ak__check_target(c, seq, p, "next", ak_str(v, "next"));
                }
                ak__check_target(c, seq, path, "default", ak_str(j, "default"));
                break;
        }
        case AK_PARALLEL: {
                const json_t *br = json_object_get(j, "branches");
                const char *join = ak_str(j, "join");
                size_t i;
                if (!json_array_size(br)) {
                        ak__problem(c, path, "branches", "is required");
                        break;
                }
                if (depth >= 4) {
                        ak__problem(c, path, "branches",
                                    "parallel steps nest 4 deep at most");
                        break;
                }
                if (join && strcmp(join, "n") == 0 &&
                    (ak_int(j, "n", 0) < 1 ||
                     (size_t)ak_int(j, "n", 0) > json_array_size(br)))
                        ak__problem(c, path, "n",
                                    "join n needs n between 1 and the "
                                    "number of branches");
                json_array_foreach(br, i, v) {
                        char p[200];
                        snprintf(p, sizeof(p), "%.160s.branches[%zu]", path, i);
                        if (!json_array_size(v))
                                ak__problem(c, p, NULL,
                                            "must be a non-empty list of "
                                            "steps");
                        else
                                ak__check_seq(c, v, p, depth + 1);
                }
                break;
        }
        case AK_CHILD:
                if (!ak_name_valid(ak_str(j, "workflow_id")))
                        ak__problem(c, path, "workflow_id", "is required");
                break;
        default:
                break;
        }
}

static void ak__check_seq(ak_check_t *c, const json_t *steps, const char *path,
                          int depth) {
        size_t i;
        const json_t *s;
        json_array_foreach(steps, i, s) {
                char p[200];
                if (c->report->truncated)
                        return;
                snprintf(p, sizeof(p), "%.160s[%zu]", path, i);
                ak__check_step(c, steps, s, p, depth);
        }
}

/* ---------------------------------------------------------------------------
 * Building
 * ------------------------------------------------------------------------ */

static void ak__seq_free(ak_seq_t *s) {
        for (size_t i = 0; i < s->n; i++) {
                for (size_t b = 0; b < s->steps[i].n_branches; b++)
                        ak__seq_free(&s->steps[i].branches[b]);
                free(s->steps[i].branches);
        }
        free(s->steps);
        free(s->name);
}

static void ak__seq_build(ak_def_t *def, ak_seq_t *seq, const json_t *steps,
                          const char *name, ak_step_t *parent) {
        size_t i;
        const json_t *j;
        char err[64];
        seq->name = xstrdup(name);
        seq->parent = parent;
        seq->n = json_array_size(steps);
        seq->steps = xcalloc(seq->n ? seq->n : 1, sizeof(ak_step_t));
        json_array_foreach(steps, i, j) {
                ak_step_t *st = &seq->steps[i];
                (void)ak_step_parse(j, st, err, sizeof(err));
                st->seq = seq;
                st->index = i;
                def->all = xrealloc(def->all,
                                    (def->n_all + 1) * sizeof(*def->all));
                def->all[def->n_all++] = st;
                if (st->kind == AK_PARALLEL) {
                        const json_t *br = json_object_get(j, "branches");
                        const char *join = ak_str(j, "join");
                        size_t b;
                        const json_t *bs;
                        st->n_branches = json_array_size(br);
                        st->branches =
                                xcalloc(st->n_branches, sizeof(ak_seq_t));
                        json_array_foreach(br, b, bs) {
                                char bname[AK_ID_MAX + 16];
                                snprintf(bname, sizeof(bname), "%s#%zu", st->id,
                                         b);
                                ak__seq_build(def, &st->branches[b], bs, bname,
                                              st);
                        }
                        st->join_need = !join || strcmp(join, "all") == 0
                                                ? st->n_branches
                                        : strcmp(join, "any") == 0
                                                ? 1
                                                : (size_t)ak_int(j, "n", 1);
                }
        }
}

ak_def_t *ak_def_build_workflow(json_t *doc, const schema_set_t *schemas,
                                schema_report_t *report) {
        ak_check_t c = {schemas, report, json_object(), 0};
        const json_t *steps = json_object_get(doc, "steps");
        ak_def_t *def;
        memset(report, 0, sizeof(*report));
        if (!json_array_size(steps))
                ak__problem(&c, "steps", NULL, "is required");
        else
                ak__check_seq(&c, steps, "steps", 0);
        if (c.n_steps > 500)
                ak__problem(&c, "steps", NULL,
                            "a workflow has 500 steps at most");
        ak__check_template(&c, "output", NULL, json_object_get(doc, "output"));
        json_decref(c.ids);
        if (report->n) {
                json_decref(doc);
                return NULL;
        }
        def = xcalloc(1, sizeof(*def));
        def->kind = AK_DEF_WORKFLOW;
        def->doc = doc;
        atomic_init(&def->refs, 1);
        ak__seq_build(def, &def->root, steps, "root", NULL);
        return def;
}

ak_def_t *ak_def_build_agent(json_t *doc, const schema_set_t *schemas,
                             schema_report_t *report) {
        ak_check_t c = {schemas, report, NULL, 0};
        const json_t *tools = json_object_get(doc, "tools");
        const json_t *gated = json_object_get(doc, "approval_tools"), *v;
        char err[160];
        json_t *decls = NULL;
        ak_def_t *def;
        size_t i;
        memset(report, 0, sizeof(*report));
        if (!ak_str(doc, "name") || !ak_str(doc, "instructions"))
                ak__problem(&c, "instructions", NULL,
                            "an agent needs a name and instructions");
        if (tools && !(decls = ak_tool_decls(schemas, tools, err, sizeof(err))))
                ak__problem(&c, "tools", NULL, "%s", err);
        json_array_foreach(gated, i, v) {
                bool listed = false;
                size_t k;
                const json_t *t;
                json_array_foreach(tools, k, t) {
                        if (json_equal(t, v))
                                listed = true;
                }
                if (!listed) {
                        char p[64];
                        snprintf(p, sizeof(p), "approval_tools[%zu]", i);
                        ak__problem(&c, p, NULL, "must be one of tools");
                }
        }
        if (report->n) {
                json_decref(decls);
                json_decref(doc);
                return NULL;
        }
        def = xcalloc(1, sizeof(*def));
        def->kind = AK_DEF_AGENT;
        def->doc = doc;
        atomic_init(&def->refs, 1);
        def->agent.name = ak_str(doc, "name");
        def->agent.instructions = ak_str(doc, "instructions");
        def->agent.model = ak_str(doc, "model");
        def->agent.tools = tools;
        def->agent.approval_tools = gated;
        def->agent.max_iterations = (int)ak_int(doc, "max_iterations", 8);
        def->agent.token_budget = ak_int(doc, "token_budget", 50000);
        def->agent.tool_decls = decls ? decls : json_array();
        return def;
}

const ak_step_t *ak_def_step(const ak_def_t *def, const char *id) {
        for (size_t i = 0; def && id && i < def->n_all; i++)
                if (strcmp(def->all[i]->id, id) == 0)
                        return def->all[i];
        return NULL;
}

void ak_def_release(ak_def_t *def) {
        if (!def || atomic_fetch_sub(&def->refs, 1) != 1)
                return;
        ak__seq_free(&def->root);
        free(def->all);
        json_decref(def->agent.tool_decls);
        json_decref(def->doc);
        free(def->key);
        free(def->def_id);
        free(def);
}
