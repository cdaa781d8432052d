/*
 * flow.c - how a workflow run moves: lists of steps with a cursor each,
 * branches, loops, parallel branches and joins, the run's end, and the
 * client's commands (cancel, pause, resume, signal, approve).
 *
 * The definition's main list and each branch of a parallel step are lists
 * ("root", "<parallel id>#<n>"), each with its state in the run's seqs:
 * {pos: the cursor, status: running | completed | failed | cancelled, last:
 * the last step completed in it}. Advancing a list looks at the step under
 * its cursor: not started yet, it starts it; completed, it moves on (to its
 * next, the branch's choice, or the following step; "end" ends the list;
 * a jump backwards is a loop: the steps from the target on start afresh);
 * a retry that is due, it starts; failed for good, the list fails; a
 * running parallel step advances its branches and checks its join.
 * Advancing repeats until nothing moves: steps that need not wait (noop,
 * branch, a sleep already over) run within one transition.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentkit_internal.h"

#define AK_ADVANCE_TURNS 100000

json_t *ak_run_new_state(const char *run_id, const char *kind,
                         const ak_def_t *def, const json_t *input,
                         const rt_out_opts_t *caller, int64_t now) {
        json_t *run = json_pack(
                "{s:i, s:s, s:s, s:s#, s:s#, s:s#, s:s, s:i, s:s, s:s, s:o, "
                "s:I, s:I, s:{}, s:{}, s:[], s:[], s:[]}",
                "v", 1, "run_id", run_id, "kind", kind, "tenant",
                caller->tenant.ptr ? caller->tenant.ptr : "",
                (int)caller->tenant.len, "user",
                caller->user.ptr ? caller->user.ptr : "", (int)caller->user.len,
                "roles", caller->roles.ptr ? caller->roles.ptr : "",
                (int)caller->roles.len, "workflow_id", def->def_id, "version",
                def->version, "def_key", def->key, "status", "running", "input",
                input ? json_incref((json_t *)input) : json_object(),
                "created_at", (json_int_t)now, "updated_at", (json_int_t)now,
                "steps", "seqs", "events", "signals", "applied");
        return run;
}

json_t *ak_run_context(const json_t *run) {
        json_t *steps = json_object(), *S;
        const char *id;
        json_object_foreach(json_object_get(run, "steps"), id, S) {
                json_t *o = json_object();
                const char *keys[] = {"status", "error", "attempt"};
                for (size_t k = 0; k < 3; k++)
                        if (json_object_get(S, keys[k]))
                                json_object_set(o, keys[k],
                                                json_object_get(S, keys[k]));
                if (ak_step_output(S))
                        json_object_set(o, "output",
                                        (json_t *)ak_step_output(S));
                json_object_set_new(steps, id, o);
        }
        return json_pack("{s:O, s:o, s:{s:s?, s:s?, s:I, s:I}}", "input",
                         json_object_get(run, "input"), "steps", steps, "run",
                         "id", ak_str(run, "run_id"), "workflow_id",
                         ak_str(run, "workflow_id"), "version",
                         (json_int_t)ak_int(run, "version", 0), "started_at",
                         (json_int_t)ak_int(run, "created_at", 0));
}

static json_t *ak__seq_state(ak_tx_t *tx, const ak_seq_t *seq) {
        json_t *seqs = json_object_get(tx->run, "seqs"), *SS;
        if (!json_is_object(seqs)) {
                seqs = json_object();
                json_object_set_new(tx->run, "seqs", seqs);
        }
        SS = json_object_get(seqs, seq->name);
        if (!SS && seq->parent == NULL) {
                SS = json_pack("{s:i, s:s}", "pos", 0, "status", "running");
                json_object_set_new(seqs, seq->name, SS);
        }
        return SS;
}

/* Steps from index `from` on (and inside their branches) start afresh the
 * next time the cursor reaches them: a loop came back. */
static void ak__reset(ak_tx_t *tx, const ak_seq_t *seq, size_t from) {
        for (size_t i = from; i < seq->n; i++) {
                json_t *S = ak_step_state(tx, seq->steps[i].id);
                if (S) {
                        json_object_set_new(S, "status",
                                            json_string("pending"));
                        json_object_set_new(S, "tries", json_integer(0));
                        json_object_del(S, "next");
                }
                for (size_t b = 0; b < seq->steps[i].n_branches; b++)
                        ak__reset(tx, &seq->steps[i].branches[b], 0);
        }
}

static void ak__cancel_seq(ak_tx_t *tx, const ak_seq_t *seq) {
        json_t *SS = ak__seq_state(tx, seq);
        for (size_t i = 0; i < seq->n; i++) {
                const ak_step_t *step = &seq->steps[i];
                for (size_t b = 0; b < step->n_branches; b++)
                        ak__cancel_seq(tx, &step->branches[b]);
                ak_step_cancel(tx, step);
        }
        if (SS && strcmp(ak_str(SS, "status"), "running") == 0)
                json_object_set_new(SS, "status", json_string("cancelled"));
}

static bool ak__advance_seq(ak_tx_t *tx, const ak_seq_t *seq);

/* The output of a branch: that of the last step completed in it. */
static json_t *ak__branch_output(ak_tx_t *tx, const json_t *SS) {
        const char *last = ak_str(SS, "last");
        json_t *S = last ? ak_step_state(tx, last) : NULL;
        const json_t *out = S ? ak_step_output(S) : NULL;
        return json_incref(out ? (json_t *)out : json_null());
}

static bool ak__advance_parallel(ak_tx_t *tx, const ak_step_t *p, json_t *S) {
        bool moved = false;
        size_t done = 0, failed = 0;
        int a = (int)ak_int(S, "attempt", 0);
        const char *why = NULL;
        for (size_t b = 0; b < p->n_branches; b++) {
                json_t *SS = ak__seq_state(tx, &p->branches[b]);
                const char *st;
                if (!SS) {
                        /* A new attempt of the parallel step opens its
                         * branches. */
                        ak__reset(tx, &p->branches[b], 0);
                        json_object_set_new(json_object_get(tx->run, "seqs"),
                                            p->branches[b].name,
                                            json_pack("{s:i, s:s, s:i}", "pos",
                                                      0, "status", "running",
                                                      "a", a));
                        moved = true;
                        continue;
                }
                if (ak_int(SS, "a", 0) != a) {
                        ak__reset(tx, &p->branches[b], 0);
                        json_object_set_new(SS, "pos", json_integer(0));
                        json_object_set_new(SS, "status",
                                            json_string("running"));
                        json_object_set_new(SS, "a", json_integer(a));
                        json_object_del(SS, "last");
                        moved = true;
                        continue;
                }
                moved |= ak__advance_seq(tx, &p->branches[b]);
                st = ak_str(SS, "status");
                if (strcmp(st, "completed") == 0)
                        done++;
                else if (strcmp(st, "failed") == 0) {
                        failed++;
                        why = ak_str(SS, "error");
                }
        }
        if (done >= p->join_need) {
                json_t *outs = json_array();
                for (size_t b = 0; b < p->n_branches; b++) {
                        json_t *SS = ak__seq_state(tx, &p->branches[b]);
                        if (strcmp(ak_str(SS, "status"), "completed") == 0)
                                json_array_append_new(
                                        outs, ak__branch_output(tx, SS));
                        else
                                json_array_append_new(outs, json_null());
                        if (strcmp(ak_str(SS, "status"), "running") == 0)
                                ak__cancel_seq(tx, &p->branches[b]);
                }
                return ak_step_done(tx, p->id, a,
                                    json_pack("{s:o}", "branches", outs)) ||
                       moved;
        }
        if (p->n_branches - failed < p->join_need) {
                char err[300];
                for (size_t b = 0; b < p->n_branches; b++) {
                        json_t *SS = ak__seq_state(tx, &p->branches[b]);
                        if (strcmp(ak_str(SS, "status"), "running") == 0)
                                ak__cancel_seq(tx, &p->branches[b]);
                }
                snprintf(err, sizeof(err), "too many branches failed: %s",
                         why ? why : "");
                return ak_step_fail(tx, p->id, a, err, 0, true) || moved;
        }
        return moved;
}

static bool ak__advance_seq(ak_tx_t *tx, const ak_seq_t *seq) {
        json_t *SS = ak__seq_state(tx, seq), *S;
        const ak_step_t *step;
        const char *st;
        size_t pos;
        if (!SS || strcmp(ak_str(SS, "status"), "running") != 0)
                return false;
        pos = (size_t)ak_int(SS, "pos", 0);
        if (pos >= seq->n) {
                json_object_set_new(SS, "status", json_string("completed"));
                return true;
        }
        step = &seq->steps[pos];
        S = ak_step_state(tx, step->id);
        st = S ? ak_str(S, "status") : "pending";
        if (strcmp(st, "pending") == 0) {
                ak_step_start(tx, step, NULL);
                return true;
        }
        if (strcmp(st, "completed") == 0) {
                const char *target = ak_str(S, "next");
                size_t next = pos + 1;
                if (!target || !*target)
                        target = step->next;
                if (target && strcmp(target, "end") == 0)
                        next = seq->n;
                else if (target)
                        for (size_t i = 0; i < seq->n; i++)
                                if (strcmp(seq->steps[i].id, target) == 0)
                                        next = i;
                json_object_set_new(SS, "last", json_string(step->id));
                if (next <= pos)
                        ak__reset(tx, seq, next); /* a loop */
                json_object_set_new(SS, "pos", json_integer((json_int_t)next));
                return true;
        }
        if (strcmp(st, "retry") == 0) {
                if (ak_int(S, "retry_at", 0) > tx->now)
                        return false;
                ak_step_start(tx, step, NULL);
                return true;
        }
        if (strcmp(st, "failed") == 0 || strcmp(st, "cancelled") == 0) {
                json_object_set_new(SS, "status", json_string(st));
                json_object_set_new(SS, "error",
                                    json_string(ak_str(S, "error")
                                                        ? ak_str(S, "error")
                                                        : st));
                json_object_set_new(SS, "failed_step", json_string(step->id));
                return true;
        }
        if (step->kind == AK_PARALLEL && strcmp(st, "running") == 0)
                return ak__advance_parallel(tx, step, S);
        return false;
}

void ak_run_end(ak_tx_t *tx, const char *status, json_t *output,
                const char *error, const char *step_id) {
        json_t *run = tx->run, *parent = json_object_get(run, "parent"), *d;
        if (strcmp(ak_str(run, "status"), "completed") == 0 ||
            strcmp(ak_str(run, "status"), "failed") == 0 ||
            strcmp(ak_str(run, "status"), "cancelled") == 0) {
                json_decref(output);
                return;
        }
        if (tx->def && tx->def->kind == AK_DEF_WORKFLOW)
                ak__cancel_seq(tx, &tx->def->root);
        else {
                /* Agents: every step still active. */
                const char *id;
                json_t *S;
                json_object_foreach(json_object_get(run, "steps"), id, S) {
                        ak_step_t step;
                        if (ak_step_spec(tx, id, &step))
                                ak_step_cancel(tx, &step);
                }
        }
        json_object_set_new(run, "status", json_string(status));
        json_object_set_new(run, "ended_at", json_integer(tx->now));
        json_object_del(run, "paused");
        d = json_object();
        if (output) {
                json_object_set(run, "output", output);
                json_object_set_new(d, "output", ak_event_value(output));
        }
        if (error) {
                json_object_set_new(run, "error", json_string(error));
                json_object_set_new(d, "error", json_string(error));
        }
        if (step_id && error)
                json_object_set_new(d, "step_id", json_string(step_id));
        ak_emit(tx,
                strcmp(status, "completed") == 0 ? "agentkit.run.completed"
                : strcmp(status, "failed") == 0  ? "agentkit.run.failed"
                                                 : "agentkit.run.cancelled",
                d);
        if (parent)
                ak_fx(tx, json_pack("{s:s}", "k", "notify_parent"));
        json_decref(output);
}

void ak_run_advance(ak_tx_t *tx) {
        json_t *SS;
        int turns = 0;
        if (!tx->run || strcmp(ak_str(tx->run, "status"), "running") != 0)
                return;
        if (tx->def && tx->def->kind == AK_DEF_AGENT) {
                ak_agent_advance(tx);
                return;
        }
        if (!tx->def)
                return;
        while (turns++ < AK_ADVANCE_TURNS &&
               strcmp(ak_str(tx->run, "status"), "running") == 0 &&
               ak__advance_seq(tx, &tx->def->root))
                ;
        if (strcmp(ak_str(tx->run, "status"), "running") != 0)
                return;
        SS = ak__seq_state(tx, &tx->def->root);
        if (strcmp(ak_str(SS, "status"), "completed") == 0) {
                const json_t *tmpl = json_object_get(tx->def->doc, "output");
                json_t *out = NULL;
                char err[200];
                if (tmpl) {
                        json_t *ctx = ak_run_context(tx->run);
                        out = ak_template(tmpl, ctx, err, sizeof(err));
                        json_decref(ctx);
                        if (!out) {
                                ak_run_end(tx, "failed", NULL, err, NULL);
                                return;
                        }
                } else {
                        out = ak__branch_output(tx, SS);
                        if (json_is_null(out)) {
                                json_decref(out);
                                out = json_object();
                        }
                }
                ak_run_end(tx, "completed", out, NULL, NULL);
        } else if (strcmp(ak_str(SS, "status"), "failed") == 0) {
                ak_run_end(tx, "failed", NULL, ak_str(SS, "error"),
                           ak_str(SS, "failed_step"));
        }
}

/* ---------------------------------------------------------------------------
 * The client's commands
 * ------------------------------------------------------------------------ */

static bool ak__ended(const json_t *run) {
        const char *s = ak_str(run, "status");
        return strcmp(s, "completed") == 0 || strcmp(s, "failed") == 0 ||
               strcmp(s, "cancelled") == 0;
}

bool ak_run_cancel(ak_tx_t *tx, const char *why) {
        (void)why;
        if (ak__ended(tx->run))
                return false;
        ak_run_end(tx, "cancelled", NULL, NULL, NULL);
        return true;
}

bool ak_run_pause(ak_tx_t *tx) {
        if (strcmp(ak_str(tx->run, "status"), "running") != 0)
                return false;
        json_object_set_new(tx->run, "status", json_string("paused"));
        json_object_set_new(tx->run, "paused",
                            json_pack("{s:s, s:I}", "by", "user", "at",
                                      (json_int_t)tx->now));
        ak_emit(tx, "agentkit.run.paused",
                json_pack("{s:s}", "reason", "paused by a person"));
        return true;
}

bool ak_run_resume(ak_tx_t *tx) {
        json_t *paused = json_object_get(tx->run, "paused");
        const char *step_id = ak_str(paused, "step_id");
        if (strcmp(ak_str(tx->run, "status"), "paused") != 0)
                return false;
        if (step_id) {
                /* The step whose retries ran out gets a new pass. */
                json_t *S = ak_step_state(tx, step_id);
                if (S && strcmp(ak_str(S, "status"), "failed") == 0) {
                        json_object_set_new(S, "status",
                                            json_string("pending"));
                        json_object_set_new(S, "tries", json_integer(0));
                }
        }
        json_object_set_new(tx->run, "status", json_string("running"));
        json_object_del(tx->run, "paused");
        ak_emit(tx, "agentkit.run.resumed", json_object());
        return true;
}

bool ak_run_signal(ak_tx_t *tx, const char *name, json_t *payload,
                   bool *delivered) {
        *delivered = false;
        if (ak__ended(tx->run)) {
                json_decref(payload);
                return false;
        }
        for (size_t i = 0;
             tx->def && tx->def->kind == AK_DEF_WORKFLOW && i < tx->def->n_all;
             i++) {
                const ak_step_t *s = tx->def->all[i];
                json_t *S = ak_step_state(tx, s->id);
                if (s->kind != AK_SIGNAL || !S ||
                    strcmp(ak_str(S, "status"), "waiting") != 0 ||
                    strcmp(ak_str(s->j, "signal"), name) != 0)
                        continue;
                *delivered = ak_step_done(
                        tx, s->id, (int)ak_int(S, "attempt", 0),
                        json_pack("{s:s, s:o}", "name", name, "payload",
                                  payload ? payload : json_object()));
                return true;
        }
        json_array_append_new(json_object_get(tx->run, "signals"),
                              json_pack("{s:s, s:o, s:I}", "name", name,
                                        "payload",
                                        payload ? payload : json_object(), "at",
                                        (json_int_t)tx->now));
        return true;
}

int ak_run_approve(ak_tx_t *tx, const char *step_id, bool approved,
                   const char *comment, slice_t user, schema_role_t role) {
        json_t *S = ak_step_state(tx, step_id), *rec;
        ak_step_t step;
        const char *need;
        if (!S || strcmp(ak_str(S, "status"), "waiting") != 0 ||
            !ak_step_spec(tx, step_id, &step))
                return 404;
        if (tx->def && tx->def->kind == AK_DEF_AGENT)
                return ak_agent_approve(tx, step_id, approved, comment, user);
        if (step.kind != AK_APPROVAL)
                return 404;
        rec = ak_attempt(S, (int)ak_int(S, "attempt", 0));
        need = ak_str(json_object_get(rec, "input"), "role");
        if (need && role < schema_role_parse(need, strlen(need)))
                return 403;
        ak_step_done(tx, step_id, (int)ak_int(S, "attempt", 0),
                     json_pack("{s:b, s:s#, s:s?, s:I}", "approved", approved,
                               "by", user.ptr ? user.ptr : "", (int)user.len,
                               "comment", comment, "at", (json_int_t)tx->now));
        return 0;
}
