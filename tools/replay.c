/*
 * replay.c - the replay tool (see replay.h and shared/replay.h).
 *
 *   omnify replay GROUP [--from earliest|<RFC 3339>|<topic:part:offset,...>]
 *                       [--projection NAME[,NAME]] [--tenant ID]
 *                       [--rate N] [--grace S] [--memory-mb N] [--no-wait]
 *   omnify replay verify GROUP [--projection NAME[,NAME]] [--tenant ID]
 *   omnify replay status GROUP
 *   omnify replay abort GROUP REPLAY_ID
 *   omnify replay gc GROUP
 *
 * A replay shows its progress on stderr (events done / total, events/s,
 * ETA; one line a second when stderr is not a terminal), swaps the new
 * versions in when it has caught up, then waits out the grace (--grace,
 * default 60 s) and drops the versions it replaced;
 * Ctrl-C during that wait leaves the dropping to the group's own janitor.
 * Ctrl-C while building checkpoints and stops: the same command resumes.
 *
 * verify builds twice, the second time to the offsets where the first
 * stopped, without swapping, and prints one JSON line per collection with
 * the two digests and the active version's; it exits 0 when the two builds
 * are equal (the active version may hold events that came later), 1 when
 * they differ. Both builds are dropped afterwards.
 *
 * Exit status: 0 done, 1 failed, 2 bad usage, 3 another replay is building,
 * 4 stopped (resumable).
 */
#include "replay_tool.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "replay.h"
#include "backoff.h"
#include "config.h"
#include "log.h"
#include "registry.h"
#include "service.h"

typedef struct tool {
        config_t cfg;
        const group_def_t *group;
        store_t *store;
        const char *only[REPLAY_MAX_PROJECTIONS + 1];
        char only_buf[512];
        const char *from, *tenant;
        long long rate, grace_s, memory_mb;
        bool no_wait, tty;
} tool_t;

static void usage(FILE *out) {
        fprintf(out,
                "Usage: omnify replay GROUP [--from earliest|RFC3339|"
                "TOPIC:PART:OFFSET,...]\n"
                "                     [--projection NAME[,NAME]] [--tenant "
                "ID] [--rate N]\n"
                "                     [--grace S] [--memory-mb N] "
                "[--no-wait]\n"
                "       omnify replay verify GROUP [--projection NAME] "
                "[--tenant ID]\n"
                "       omnify replay status GROUP\n"
                "       omnify replay abort GROUP REPLAY_ID\n"
                "       omnify replay gc GROUP\n");
}

/* ---------------------------------------------------------------------------
 * Progress
 * ------------------------------------------------------------------------ */

static void tool__number(char *buf, size_t size, long long v) {
        char raw[32];
        int n = snprintf(raw, sizeof(raw), "%lld", v < 0 ? -v : v), o = 0;
        if (v < 0 && (size_t)o + 1 < size)
                buf[o++] = '-';
        for (int i = 0; i < n && (size_t)o + 1 < size; i++) {
                if (i && (n - i) % 3 == 0 && (size_t)o + 2 < size)
                        buf[o++] = ',';
                buf[o++] = raw[i];
        }
        buf[o] = '\0';
}

static void tool__progress(const replay_progress_t *p, void *arg) {
        tool_t *t = arg;
        char done[32], total[32], rate[32], eta[32];
        tool__number(done, sizeof(done), p->done);
        tool__number(total, sizeof(total), p->total);
        tool__number(rate, sizeof(rate), (long long)p->rate);
        if (p->eta_s >= 0)
                snprintf(eta, sizeof(eta), "%.0f s", p->eta_s);
        else
                snprintf(eta, sizeof(eta), "-");
        fprintf(stderr,
                "%s%s %s: %s / %s events (%.1f%%), %s events/s, ETA %s%s%s",
                t->tty ? "\r\033[K" : "", p->replay_id, p->phase, done, total,
                p->total ? 100.0 * (double)p->done / (double)p->total : 100.0,
                rate, eta, p->bad ? ", skipped " : "", p->bad ? "some" : "");
        if (!t->tty)
                fputc('\n', stderr);
        fflush(stderr);
}

/* ---------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------ */

static int tool__options(tool_t *t, int argc, char **argv, int i) {
        for (; i < argc; i++) {
                const char *a = argv[i];
                const char *v = i + 1 < argc ? argv[i + 1] : NULL;
                char *end = NULL;
                if (strcmp(a, "--no-wait") == 0) {
                        t->no_wait = true;
                        continue;
                }
                if (!v) {
                        fprintf(stderr, "omnify replay: %s needs a value\n", a);
                        return 2;
                }
                i++;
                if (strcmp(a, "--from") == 0) {
                        t->from = v;
                } else if (strcmp(a, "--tenant") == 0) {
                        t->tenant = v;
                } else if (strcmp(a, "--projection") == 0) {
                        size_t n = 0;
                        char *save = NULL;
                        snprintf(t->only_buf, sizeof(t->only_buf), "%s", v);
                        for (char *p = strtok_r(t->only_buf, ",", &save);
                             p && n < REPLAY_MAX_PROJECTIONS;
                             p = strtok_r(NULL, ",", &save))
                                t->only[n++] = p;
                        t->only[n] = NULL;
                } else if (strcmp(a, "--rate") == 0 ||
                           strcmp(a, "--grace") == 0 ||
                           strcmp(a, "--memory-mb") == 0) {
                        long long n = strtoll(v, &end, 10);
                        /* "--rate 5000/s" reads as 5000. */
                        if (!end || end == v || n < 0 ||
                            (*end && strcmp(end, "/s") != 0)) {
                                fprintf(stderr,
                                        "omnify replay: %s needs a "
                                        "non-negative number\n",
                                        a);
                                return 2;
                        }
                        if (a[2] == 'r')
                                t->rate = n;
                        else if (a[2] == 'g')
                                t->grace_s = n;
                        else
                                t->memory_mb = n;
                } else {
                        fprintf(stderr, "omnify replay: unknown option '%s'\n",
                                a);
                        return 2;
                }
        }
        return 0;
}

static void tool__opts(tool_t *t, replay_opts_t *o) {
        memset(o, 0, sizeof(*o));
        o->cfg = &t->cfg;
        o->store = t->store;
        o->group = t->group->name;
        o->set = t->group->replay;
        o->only = t->only[0] ? t->only : NULL;
        o->from = t->from;
        o->tenant = t->tenant;
        o->rate = t->rate;
        o->grace_ms = t->grace_s * 1000;
        o->memory_bytes = (size_t)t->memory_mb << 20;
        o->stop = &service_stop;
        o->progress = tool__progress;
        o->progress_arg = t;
}

static int tool__exit(replay_err_t err) {
        switch (err) {
        case REPLAY_OK:
                return 0;
        case REPLAY_BAD_OPTION:
                return 2;
        case REPLAY_BUSY:
                return 3;
        case REPLAY_STOPPED:
                return 4;
        default:
                return 1;
        }
}

/* ---------------------------------------------------------------------------
 * Verbs
 * ------------------------------------------------------------------------ */

static void tool__summary(const replay_result_t *res) {
        char events[32];
        tool__number(events, sizeof(events), res->events);
        printf("replay %s%s: %s events in %.1f s (%.0f events/s), %lld "
               "skipped as malformed\n",
               res->replay_id, res->resumed ? " (resumed)" : "", events,
               (double)res->elapsed_ms / 1000.0, res->rate,
               (long long)res->bad);
        for (size_t i = 0; i < res->n_versions; i++)
                printf("  %s: version v%lld\n", res->names[i],
                       (long long)res->versions[i]);
}

static int tool__replay(tool_t *t) {
        replay_opts_t o;
        replay_result_t res;
        char err[512];
        replay_err_t rerr;
        const projection_def_t *defs[REPLAY_MAX_PROJECTIONS];
        size_t n = replay_defs(t->group->replay, defs), dropped = 0;
        tool__opts(t, &o);
        rerr = replay_run(&o, &res, err, sizeof(err));
        if (t->tty)
                fputc('\n', stderr);
        if (rerr != REPLAY_OK) {
                fprintf(stderr, "omnify replay: %s\n", err);
                if (res.replay_id[0])
                        fprintf(stderr, "(replay %s)\n", res.replay_id);
                replay_result_deinit(&res);
                return tool__exit(rerr);
        }
        tool__summary(&res);
        printf("swapped: the new versions are active\n");
        replay_result_deinit(&res);
        fflush(stdout);
        if (t->no_wait || t->grace_s == 0) {
                if (t->grace_s == 0)
                        projection_gc(t->store, t->group->name, defs, n,
                                      (int64_t)clock_wall_ms() + 1, &dropped,
                                      err, sizeof(err));
                return 0;
        }
        fprintf(stderr,
                "dropping the replaced versions in %lld s (Ctrl-C leaves it "
                "to the %s group)\n",
                t->grace_s, t->group->name);
        if (backoff_sleep(&service_stop, t->grace_s * 1000 + 100))
                return 0;
        if (projection_gc(t->store, t->group->name, defs, n,
                          (int64_t)clock_wall_ms(), &dropped, err,
                          sizeof(err)) != PROJECTION_OK) {
                fprintf(stderr, "omnify replay: dropping: %s\n", err);
                return 1;
        }
        printf("dropped %zu replaced version(s)\n", dropped);
        return 0;
}

/* Two builds to the same offsets, their digests and the active one's. */
static int tool__verify(tool_t *t) {
        replay_opts_t o;
        replay_result_t a, b;
        char err[512];
        replay_err_t rerr;
        const projection_def_t *defs[REPLAY_MAX_PROJECTIONS];
        size_t n_defs = replay_defs(t->group->replay, defs);
        projection_snapshot_t *snap = NULL;
        bool same = true;
        int status = 1;
        memset(&b, 0, sizeof(b));
        tool__opts(t, &o);
        o.verify = true;
        if (t->from) {
                fprintf(stderr, "omnify replay verify: builds from the "
                                "earliest offsets; --from is not taken\n");
                return 2;
        }
        rerr = replay_run(&o, &a, err, sizeof(err));
        if (rerr != REPLAY_OK) {
                fprintf(stderr, "\nomnify replay verify: %s\n", err);
                replay_result_deinit(&a);
                return tool__exit(rerr);
        }
        o.until = a.end;
        o.n_until = a.n_end;
        rerr = replay_run(&o, &b, err, sizeof(err));
        if (t->tty)
                fputc('\n', stderr);
        if (rerr != REPLAY_OK) {
                fprintf(stderr, "omnify replay verify: %s\n", err);
                status = tool__exit(rerr);
                goto out;
        }
        tool__summary(&a);
        tool__summary(&b);
        if (projection_snapshot_load(t->store, t->group->name, defs, n_defs,
                                     &snap, err,
                                     sizeof(err)) != PROJECTION_OK) {
                fprintf(stderr, "omnify replay verify: %s\n", err);
                goto out;
        }
        for (size_t i = 0; i < a.n_versions; i++) {
                const projection_def_t *def = NULL;
                projection_digest_t da[8], db[8], dl[8];
                size_t na = 0, nb = 0, nl = 0;
                slice_t tenant = slice_of(t->tenant);
                int64_t live;
                for (size_t k = 0; k < n_defs; k++)
                        if (strcmp(defs[k]->name, a.names[i]) == 0)
                                def = defs[k];
                live = projection_version(snap, a.names[i], tenant);
                if (!def ||
                    projection_digest(t->store, t->group->name, def,
                                      a.versions[i], tenant, da, &na, err,
                                      sizeof(err)) != STORE_OK ||
                    projection_digest(t->store, t->group->name, def,
                                      b.versions[i], tenant, db, &nb, err,
                                      sizeof(err)) != STORE_OK ||
                    projection_digest(t->store, t->group->name, def, live,
                                      tenant, dl, &nl, err,
                                      sizeof(err)) != STORE_OK) {
                        fprintf(stderr, "omnify replay verify: digests: %s\n",
                                err);
                        goto out;
                }
                for (size_t c = 0; c < na && c < nb && c < nl; c++) {
                        bool eq = strcmp(da[c].hex, db[c].hex) == 0 &&
                                  da[c].documents == db[c].documents;
                        bool live_eq = strcmp(da[c].hex, dl[c].hex) == 0 &&
                                       da[c].documents == dl[c].documents;
                        same = same && eq;
                        printf("{\"projection\":\"%s\",\"collection\":\"%s\","
                               "\"documents\":%lld,\"first\":\"%s\","
                               "\"second\":\"%s\",\"active_version\":%lld,"
                               "\"active_documents\":%lld,\"active\":\"%s\","
                               "\"equal\":%s,\"active_equal\":%s}\n",
                               a.names[i], da[c].collection,
                               (long long)da[c].documents, da[c].hex, db[c].hex,
                               (long long)live, (long long)dl[c].documents,
                               dl[c].hex, eq ? "true" : "false",
                               live_eq ? "true" : "false");
                }
        }
        printf("%s\n", same ? "deterministic: both builds are equal"
                            : "NOT deterministic: the builds differ");
        status = same ? 0 : 1;
out:
        fflush(stdout);
        projection_snapshot_free(snap);
        if (a.replay_id[0])
                projection_abandon(t->store, t->group->name, defs, n_defs,
                                   a.replay_id, err, sizeof(err));
        if (b.replay_id[0])
                projection_abandon(t->store, t->group->name, defs, n_defs,
                                   b.replay_id, err, sizeof(err));
        replay_result_deinit(&a);
        replay_result_deinit(&b);
        return status;
}

static bool tool__print_record(const bson_t *doc, void *arg) {
        char *json = bson_as_relaxed_extended_json(doc, NULL);
        (void)arg;
        printf("%s\n", json);
        bson_free(json);
        return true;
}

static int tool__status(tool_t *t) {
        const projection_def_t *defs[REPLAY_MAX_PROJECTIONS];
        size_t n = replay_defs(t->group->replay, defs);
        projection_snapshot_t *snap = NULL;
        char err[512], *json;
        bson_t all, opts, sort;
        if (projection_snapshot_load(t->store, t->group->name, defs, n, &snap,
                                     err, sizeof(err)) != PROJECTION_OK) {
                fprintf(stderr, "omnify replay status: %s\n", err);
                return 1;
        }
        projection_check(snap, defs, n, "omnify replay");
        json = projection_describe(snap);
        printf("%s\n", json);
        bson_free(json);
        projection_snapshot_free(snap);
        bson_init(&all);
        bson_init(&opts);
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
        BSON_APPEND_INT32(&sort, "started_ms", -1);
        bson_append_document_end(&opts, &sort);
        BSON_APPEND_INT64(&opts, "limit", 20);
        store_find(t->store, t->group->name, REPLAY_COLL, &all, &opts,
                   tool__print_record, NULL, err, sizeof(err));
        bson_destroy(&all);
        bson_destroy(&opts);
        return 0;
}

int replay_main(int argc, char **argv) {
        tool_t *t = calloc(1, sizeof(*t));
        int argi = 1, status = 2, rest;
        const char *verb = "replay", *name;
        const config_table_t *tables[CONFIG_MAX_TABLES];
        bool use[32] = {false}, up = false;
        char err[512];
        if (!t)
                return 1;
        /* The group first, so its settings load with the shared ones. */
        for (int i = 1; i < argc; i++) {
                if (argv[i][0] == '-')
                        continue;
                if (!strcmp(argv[i], "verify") || !strcmp(argv[i], "status") ||
                    !strcmp(argv[i], "abort") || !strcmp(argv[i], "gc"))
                        continue;
                for (size_t g = 0; g < registry_count && g < 32; g++)
                        use[g] = strcmp(registry_groups[g]->name, argv[i]) == 0;
                break;
        }
        registry_tables(use, tables, CONFIG_MAX_TABLES);
        config_load_tables_or_exit(&t->cfg, CONFIG_SCOPE_TOOL, tables,
                                   "omnify replay", argc, argv, &argi);
        log_init((log_level_t)t->cfg.log_level, "omnify-replay");
        if (argi < argc &&
            (!strcmp(argv[argi], "verify") || !strcmp(argv[argi], "status") ||
             !strcmp(argv[argi], "abort") || !strcmp(argv[argi], "gc")))
                verb = argv[argi++];
        if (argi >= argc) {
                usage(stderr);
                goto out;
        }
        name = argv[argi++];
        t->group = registry_find(name, strlen(name));
        if (!t->group) {
                fprintf(stderr, "omnify replay: unknown group '%s'\n", name);
                goto out;
        }
        if (!t->group->replay) {
                fprintf(stderr,
                        "omnify replay: group %s has no projections to "
                        "replay\n",
                        name);
                goto out;
        }
        t->grace_s = 60;
        rest = argi;
        if (!strcmp(verb, "abort")) {
                if (rest >= argc) {
                        usage(stderr);
                        goto out;
                }
                argi = rest + 1;
        }
        if ((status = tool__options(t, argc, argv, argi)) != 0)
                goto out;
        t->tty = isatty(2);
        t->store = store_new(&t->cfg, "omnify-replay", err, sizeof(err));
        /* A busy store may miss a ping or two: half a minute of tries. */
        for (int attempt = 0; t->store && !up && attempt < 15; attempt++) {
                up = store_ping(t->store) == STORE_OK;
                if (!up)
                        backoff_sleep(NULL, 2000);
        }
        if (!up) {
                fprintf(stderr, "omnify replay: the store is unreachable%s%s\n",
                        t->store ? "" : ": ", t->store ? "" : err);
                status = 1;
                goto out;
        }
        service_install_signals();
        if (!strcmp(verb, "replay")) {
                status = tool__replay(t);
        } else if (!strcmp(verb, "verify")) {
                status = tool__verify(t);
        } else if (!strcmp(verb, "status")) {
                status = tool__status(t);
        } else if (!strcmp(verb, "abort")) {
                replay_err_t rerr =
                        replay_abort(t->store, name, t->group->replay,
                                     argv[rest], err, sizeof(err));
                if (rerr != REPLAY_OK)
                        fprintf(stderr, "omnify replay abort: %s\n", err);
                else
                        printf("aborted replay %s\n", argv[rest]);
                status = tool__exit(rerr);
        } else {
                const projection_def_t *defs[REPLAY_MAX_PROJECTIONS];
                size_t n = replay_defs(t->group->replay, defs), dropped = 0;
                status = projection_gc(t->store, name, defs, n,
                                       (int64_t)clock_wall_ms(), &dropped, err,
                                       sizeof(err)) == PROJECTION_OK
                                 ? 0
                                 : 1;
                if (status)
                        fprintf(stderr, "omnify replay gc: %s\n", err);
                else
                        printf("dropped %zu retired version(s)\n", dropped);
        }
out:
        store_destroy(t->store);
        config_deinit(&t->cfg);
        free(t);
        return status;
}
