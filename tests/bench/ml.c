/*
 * bench-ml - how many forecasts one ml process makes of two years of daily
 * data, and the memory it holds while fitting.
 *
 *   bench-ml [-n SERIES] [-d DAYS] [-h HORIZON] [-t THREADS] [-g GROUP_N]
 *
 * Every series is DAYS (730) of a synthetic daily metric shaped like ad
 * spend: a level that drifts and moves once, a weekly pattern, a yearly
 * wave and 8% noise (seeded: every run fits the same data). Rows of the
 * table, each measured in this run:
 *   fit one model    ETS(A,N,A) fitted and forecast: the baseline, the
 *                    least one forecast can cost
 *   forecast         what a forecast costs in ml (ml_fit_daily: every
 *                    admissible ETS model, AICc, the horizon's sign check),
 *                    and its points; one thread, then THREADS threads
 *   group path       through the group's handlers (the handler harness,
 *                    the real store): a forecast created, analytics'
 *                    answer (DAYS rows, as JSON the harness converts)
 *                    handed to on_reply, the fit, the version and the
 *                    event stored; GROUP_N of them (0: skipped), needs
 *                    the store of compose/local/infra
 * Each row gives forecasts per second (wall), CPU ms per forecast, and its
 * ratio to the baseline row; RSS (VmRSS at start, VmHWM during each
 * phase, reset between phases through /proc/self/clear_refs).
 *
 * Output: a markdown table on stdout (tests/bench/run appends it to its
 * report). Exit status 0, or 1 when something could not be measured.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "ets.h"
#include "harness.h"
#include "log.h"
#include "ml_internal.h"
#include "msgid.h"
#include "registry.h"
#include "rng.h"

typedef struct opts {
        int series, days, horizon, threads, group_n;
} opts_t;

static double wall_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* VmRSS or VmHWM of this process in KiB. */
static long status_kib(const char *field) {
        FILE *f = fopen("/proc/self/status", "r");
        char line[256];
        long v = -1;
        size_t n = strlen(field);
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, field, n) == 0 && line[n] == ':')
                        v = strtol(line + n + 1, NULL, 10);
        fclose(f);
        return v;
}

/* The peak RSS starts again from the current RSS. */
static void reset_peak(void) {
        FILE *f = fopen("/proc/self/clear_refs", "w");
        if (f) {
                fputs("5", f);
                fclose(f);
        }
}

/* One synthetic series of days values (minor units). */
static void make_series(double *y, int days, uint64_t seed) {
        static const double week[7] = {1.0, 1.04, 1.08, 1.06, 0.98, 0.82, 0.8};
        double level = 30000 + (double)(seed % 7) * 10000;
        for (int t = 0; t < days; t++) {
                level *= 1 + 0.0004 * rng_normal(&seed);
                double shift = t > days * 11 / 20 ? 1.25 : 1.0;
                double year = 1 + 0.15 * sin(2 * M_PI * t / 365.25);
                y[t] = fmax(0, level * shift * year * week[t % 7] *
                                       (1 + 0.08 * rng_normal(&seed)));
        }
}

/* ---------------------------------------------------------------------------
 * The numerics alone
 * ------------------------------------------------------------------------ */

typedef struct job {
        const opts_t *o;
        double *data; /* series x days */
        int first, step;
        bool one_model;
        int done, failed;
} job_t;

static void *fit_range(void *arg) {
        job_t *j = arg;
        const opts_t *o = j->o;
        ets_point_t *pts = malloc((size_t)o->horizon * sizeof(*pts));
        for (int s = j->first; s < o->series && pts; s += j->step) {
                const double *y = j->data + (size_t)s * (size_t)o->days;
                ets_model_t *m = NULL;
                if (j->one_model) {
                        ets_options_t opt = {
                                .period = 7,
                                .spec = {ETS_E_ADD, ETS_T_NONE, ETS_S_ADD}};
                        if (ets_fit(y, (size_t)o->days, &opt, &m) != ETS_OK)
                                m = NULL;
                } else {
                        int status;
                        char err[256];
                        m = ml_fit_daily(y, (size_t)o->days, o->horizon, 14,
                                         &status, err, sizeof(err));
                }
                if (m && ets_forecast(m, o->horizon, pts) == ETS_OK)
                        j->done++;
                else
                        j->failed++;
                ets_destroy(m);
        }
        free(pts);
        return NULL;
}

typedef struct row {
        const char *name;
        int n, threads;
        double wall, cpu;
        long hwm_kib;
} row_t;

static bool run_fits(const opts_t *o, double *data, bool one_model, int threads,
                     row_t *r) {
        pthread_t tid[64];
        job_t jobs[64];
        double w0, c0;
        int done = 0, failed = 0;
        reset_peak();
        w0 = wall_s();
        c0 = cpu_s();
        for (int i = 0; i < threads; i++) {
                jobs[i] = (job_t){o, data, i, threads, one_model, 0, 0};
                if (pthread_create(&tid[i], NULL, fit_range, &jobs[i]) != 0)
                        return false;
        }
        for (int i = 0; i < threads; i++) {
                pthread_join(tid[i], NULL);
                done += jobs[i].done;
                failed += jobs[i].failed;
        }
        r->wall = wall_s() - w0;
        r->cpu = cpu_s() - c0;
        r->n = done;
        r->threads = threads;
        r->hwm_kib = status_kib("VmHWM");
        if (failed)
                fprintf(stderr, "bench-ml: %d fits failed\n", failed);
        return failed == 0;
}

/* ---------------------------------------------------------------------------
 * Through the group's handlers
 * ------------------------------------------------------------------------ */

/* analytics' answer of one series as JSON (the harness packs it). */
static char *answer_json(const double *y, int days, int32_t to) {
        size_t cap = (size_t)days * 64 + 256, len = 0;
        char *p = malloc(cap), d[ML_DAY_TEXT];
        if (!p)
                return NULL;
        ml_day_format(to - days + 1, d);
        len += (size_t)snprintf(p + len, cap - len,
                                "{\"metrics\":[\"spend\"],\"group_by\":"
                                "[\"day\"],\"from\":\"%s\",",
                                d);
        ml_day_format(to, d);
        len += (size_t)snprintf(p + len, cap - len, "\"to\":\"%s\",\"rows\":[",
                                d);
        for (int t = 0; t < days; t++) {
                ml_day_format(to - days + 1 + t, d);
                len += (size_t)snprintf(p + len, cap - len,
                                        "%s{\"currency\":\"EUR\",\"day\":"
                                        "\"%s\",\"spend\":%lld}",
                                        t ? "," : "", d, (long long)y[t]);
        }
        snprintf(p + len, cap - len, "]}");
        return p;
}

static bool run_group(const opts_t *o, const double *data, row_t *r) {
        config_t cfg = {0};
        const config_table_t *tables[] = {&ml_settings, NULL};
        char *argv[] = {"bench-ml", NULL}, err[512], prefix[32];
        harness_t *h = NULL;
        harness_caller_t who = {"bench-ml", "bench", "owner"};
        char **answers = calloc((size_t)o->group_n, sizeof(char *));
        msgid_t id;
        bool ok = false;
        double w0, c0;
        int done = 0;
        if (!answers || config_load_tables(&cfg, CONFIG_SCOPE_GROUP, tables,
                                           "bench-ml", 1, argv, NULL, NULL,
                                           NULL, err, sizeof(err)) != CONFIG_OK)
                goto out;
        msgid_new(&id);
        snprintf(prefix, sizeof(prefix), "bml%02x%02x%02x_", id.b[13], id.b[14],
                 id.b[15]);
        free(cfg.mongo_db_prefix);
        cfg.mongo_db_prefix = strdup(prefix);
        if (!(h = harness_new(&group_ml, &cfg, NULL, err, sizeof(err)))) {
                fprintf(stderr, "bench-ml: group path skipped: %s\n", err);
                goto out;
        }
        for (int i = 0; i < o->group_n; i++)
                answers[i] = answer_json(data + (size_t)(i % o->series) *
                                                         (size_t)o->days,
                                         o->days, ml_default_to());
        reset_peak();
        w0 = wall_s();
        c0 = cpu_s();
        for (int i = 0; i < o->group_n; i++) {
                char body[96], req[MSGID_TEXT_SIZE];
                const harness_msg_t *out;
                snprintf(body, sizeof(body),
                         "{\"metric\":\"spend\",\"horizon\":%d}",
                         1 + i % o->horizon);
                if (harness_command(h, "ml.forecasts.create", body, &who) !=
                            202 ||
                    !(out = harness_output(h, 0)))
                        continue;
                snprintf(req, sizeof(req), "%s", out->id);
                harness_reply_to(h, req, "analytics.metrics", 200, answers[i],
                                 who.tenant);
                done += harness_count(h, "ml.forecast.completed") == 1;
        }
        r->wall = wall_s() - w0;
        r->cpu = cpu_s() - c0;
        r->n = done;
        r->threads = 1;
        r->hwm_kib = status_kib("VmHWM");
        ok = done == o->group_n;
        {
                static const char *const colls[] = {"forecasts", "requests",
                                                    "models",    "heads",
                                                    "timers",    NULL};
                for (size_t i = 0; colls[i]; i++)
                        store_drop(runtime_store(harness_runtime(h)), ML_DB,
                                   colls[i], err, sizeof(err));
        }
out:
        for (int i = 0; answers && i < o->group_n; i++)
                free(answers[i]);
        free(answers);
        harness_destroy(h);
        config_deinit(&cfg);
        return ok;
}

/* ---------------------------------------------------------------------------
 * Main
 * ------------------------------------------------------------------------ */

static void print_row(const row_t *r, const row_t *base) {
        double rate = r->n / r->wall, cpu_ms = 1e3 * r->cpu / r->n;
        double base_ms = 1e3 * base->cpu / base->n;
        printf("| %s | %d | %d | %.1f | %.1f | %.2f | %ld |\n", r->name, r->n,
               r->threads, rate, cpu_ms, cpu_ms / base_ms, r->hwm_kib / 1024);
}

int main(int argc, char **argv) {
        opts_t o = {.series = 40,
                    .days = 730,
                    .horizon = 30,
                    .threads = (int)sysconf(_SC_NPROCESSORS_ONLN),
                    .group_n = 20};
        int c;
        long rss0;
        row_t base = {"fit one model (baseline): ETS(A,N,A)", 0, 0, 0, 0, 0};
        row_t one = {"forecast (auto ETS), 1 thread", 0, 0, 0, 0, 0};
        row_t many = {"forecast (auto ETS), all threads", 0, 0, 0, 0, 0};
        row_t grp = {"group path (harness + store), 1 thread", 0, 0, 0, 0, 0};
        bool ok = true;
        while ((c = getopt(argc, argv, "n:d:h:t:g:")) != -1) {
                switch (c) {
                case 'n':
                        o.series = atoi(optarg);
                        break;
                case 'd':
                        o.days = atoi(optarg);
                        break;
                case 'h':
                        o.horizon = atoi(optarg);
                        break;
                case 't':
                        o.threads = atoi(optarg);
                        break;
                case 'g':
                        o.group_n = atoi(optarg);
                        break;
                default:
                        fprintf(stderr, "usage: bench-ml [-n SERIES] [-d DAYS] "
                                        "[-h HORIZON] [-t THREADS] "
                                        "[-g GROUP_N]\n");
                        return 2;
                }
        }
        if (o.series < 1 || o.days < 28 || o.horizon < 1 ||
            o.horizon > o.days || o.threads < 1 || o.threads > 64 ||
            o.group_n < 0) {
                fprintf(stderr, "bench-ml: options out of range\n");
                return 2;
        }
        log_init(LOG_LEVEL_WARN, "bench-ml");
        double *data =
                malloc((size_t)o.series * (size_t)o.days * sizeof(double));
        if (!data)
                return 1;
        for (int s = 0; s < o.series; s++)
                make_series(data + (size_t)s * (size_t)o.days, o.days,
                            (uint64_t)s * 7919 + 1);
        rss0 = status_kib("VmRSS");
        ok &= run_fits(&o, data, true, 1, &base);
        ok &= run_fits(&o, data, false, 1, &one);
        ok &= run_fits(&o, data, false, o.threads, &many);
        if (o.group_n)
                ok &= run_group(&o, data, &grp);
        {
                double load = -1;
                FILE *f = fopen("/proc/loadavg", "r");
                if (f) {
                        if (fscanf(f, "%lf", &load) != 1)
                                load = -1;
                        fclose(f);
                }
                printf("### ml: forecasts of %d days of daily data, horizon "
                       "%d (%d series, load %.1f on %ld cores)\n\n",
                       o.days, o.horizon, o.series, load,
                       sysconf(_SC_NPROCESSORS_ONLN));
        }
        printf("| measure | forecasts | threads | forecasts/s | CPU ms per "
               "forecast | CPU ratio to baseline | peak RSS MiB |\n");
        printf("| --- | --- | --- | --- | --- | --- | --- |\n");
        print_row(&base, &base);
        print_row(&one, &base);
        print_row(&many, &base);
        if (o.group_n && grp.n)
                print_row(&grp, &base);
        printf("\nRSS at start %ld MiB (series in memory: %.1f MiB). "
               "Peak RSS is VmHWM during the phase.\n",
               rss0 / 1024,
               (double)o.series * o.days * sizeof(double) / 1048576.0);
        free(data);
        return ok ? 0 : 1;
}
