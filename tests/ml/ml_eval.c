/*
 * ml_eval.c - ml-eval: the ml group's numerical core as a command-line
 * tool, for the reference checks under tests/ml/ (and for a person who
 * wants to see what a model does with some data).
 *
 *   ml-eval forecast  < {"period": 12, "horizon": 18, "model": "auto",
 *                        "series": [{"id": "N1402", "y": [...]}, ...]}
 *   ml-eval anomaly   < {"period": 7, "check": 1, "series": [...]}
 *   ml-eval logreg    < {"C": 1.0, "x": [[...], ...], "y": [0, 1, ...],
 *                        "x_valid": [[...]], "y_valid": [...]}
 *   ml-eval response  < {"channels": [{"id": "a", "spend": [...],
 *                        "revenue": [...]}, ...], "budget": ...}
 *
 * Reads one JSON document on stdin and writes one JSON object per line on
 * stdout: per series for forecast and anomaly, one for logreg and
 * response. A null inside a series is a missing value. Each answer carries
 * the time its fit took (fit_ms, CPU time of this process) so that the
 * checks can compare speed. Exit status 0, or 2 on unreadable input.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ets.h"

static double cpu_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A JSON array of numbers (null = NaN) as a new array; NULL on bad input. */
static double *numbers(const json_t *arr, size_t *n) {
        if (!json_is_array(arr))
                return NULL;
        *n = json_array_size(arr);
        double *v = malloc((*n ? *n : 1) * sizeof(double));
        if (v == NULL)
                return NULL;
        for (size_t i = 0; i < *n; i++) {
                const json_t *e = json_array_get(arr, i);
                if (json_is_null(e))
                        v[i] = NAN;
                else if (json_is_number(e))
                        v[i] = json_number_value(e);
                else {
                        free(v);
                        return NULL;
                }
        }
        return v;
}

/* A number for JSON: non-finite values become null. */
static json_t *num(double v) {
        return isfinite(v) ? json_real(v) : json_null();
}

static void emit(json_t *obj) {
        char *s = json_dumps(obj, JSON_COMPACT);
        if (s) {
                puts(s);
                free(s);
        }
        json_decref(obj);
}

/* ------------------------------------------------------------------------
 * forecast
 * --------------------------------------------------------------------- */

/* "auto" or a model such as "MAdM", "ANN", "AAA". */
static int parse_model(const char *s, ets_options_t *opt) {
        if (s == NULL || strcmp(s, "auto") == 0) {
                opt->select = true;
                return 0;
        }
        opt->select = false;
        size_t len = strlen(s);
        if (len < 3 || len > 4)
                return -1;
        opt->spec.error = s[0] == 'M' ? ETS_E_MUL : ETS_E_ADD;
        if (s[1] == 'N')
                opt->spec.trend = ETS_T_NONE;
        else if (len == 4 && s[2] == 'd')
                opt->spec.trend = ETS_T_DAMPED;
        else
                opt->spec.trend = ETS_T_ADD;
        char se = s[len - 1];
        opt->spec.season = se == 'N'   ? ETS_S_NONE
                           : se == 'A' ? ETS_S_ADD
                                       : ETS_S_MUL;
        return 0;
}

static json_t *forecast_one(const json_t *series, const ets_options_t *opt,
                            int h) {
        json_t *out = json_object();
        json_object_set(out, "id", json_object_get(series, "id"));
        size_t n = 0;
        double *y = numbers(json_object_get(series, "y"), &n);
        if (y == NULL) {
                json_object_set_new(out, "error", json_string("bad series"));
                return out;
        }
        double t0 = cpu_ms();
        ets_model_t *model = NULL;
        ets_err_t err = ets_fit(y, n, opt, &model);
        ets_point_t *fc = calloc((size_t)(h > 0 ? h : 1), sizeof(*fc));
        if (err == ETS_OK)
                err = fc ? ets_forecast(model, h, fc) : ETS_NO_MEMORY;
        double t1 = cpu_ms();
        json_object_set_new(out, "fit_ms", json_real(t1 - t0));
        if (err != ETS_OK) {
                json_object_set_new(out, "error",
                                    json_string(ets_strerror(err)));
                goto done;
        }
        ets_stats_t st = ets_stats(model);
        ets_params_t p = ets_params(model);
        json_object_set_new(out, "model", json_string(ets_name(model)));
        json_object_set_new(out, "n_models", json_integer(st.n_models));
        json_object_set_new(out, "aicc", num(st.aicc));
        json_object_set_new(out, "aic", num(st.aic));
        json_object_set_new(out, "loglik", num(st.loglik));
        json_object_set_new(out, "sigma2", num(st.sigma2));
        json_object_set_new(out, "rmse", num(st.rmse));
        json_object_set_new(out, "mape", num(st.mape));
        json_object_set_new(out, "smape", num(st.smape));
        json_object_set_new(out, "mase", num(st.mase));
        json_t *par = json_object();
        json_object_set_new(par, "alpha", num(p.alpha));
        json_object_set_new(par, "beta", num(p.beta));
        json_object_set_new(par, "gamma", num(p.gamma));
        json_object_set_new(par, "phi", num(p.phi));
        json_object_set_new(par, "l0", num(p.l0));
        json_object_set_new(par, "b0", num(p.b0));
        if (ets_model_spec(model).season != ETS_S_NONE) {
                json_t *s0 = json_array();
                for (size_t i = 0; i < ets_period(model); i++)
                        json_array_append_new(s0, num(p.season[i]));
                json_object_set_new(par, "s0", s0);
        }
        json_object_set_new(out, "params", par);
        const char *keys[] = {"mean", "lo80", "hi80", "lo95", "hi95"};
        for (int k = 0; k < 5; k++) {
                json_t *a = json_array();
                for (int i = 0; i < h; i++) {
                        const double *pt = &fc[i].mean;
                        json_array_append_new(a, num(pt[k]));
                }
                json_object_set_new(out, keys[k], a);
        }
done:
        free(fc);
        ets_destroy(model);
        free(y);
        return out;
}

static int cmd_forecast(const json_t *doc) {
        ets_options_t opt = ETS_OPTIONS_DEFAULT;
        json_t *v = json_object_get(doc, "period");
        opt.period = json_is_integer(v) ? (size_t)json_integer_value(v) : 1;
        v = json_object_get(doc, "horizon");
        int h = json_is_integer(v) ? (int)json_integer_value(v) : 1;
        v = json_object_get(doc, "model");
        if (parse_model(json_is_string(v) ? json_string_value(v) : NULL,
                        &opt) != 0) {
                fprintf(stderr, "ml-eval: bad model\n");
                return 2;
        }
        json_t *series = json_object_get(doc, "series");
        size_t i;
        json_t *s;
        json_array_foreach(series, i, s) {
                emit(forecast_one(s, &opt, h));
        }
        return 0;
}

/* ------------------------------------------------------------------------
 * main
 * --------------------------------------------------------------------- */

int main(int argc, char **argv) {
        if (argc != 2) {
                fprintf(stderr, "usage: ml-eval forecast|anomaly|logreg|"
                                "response < input.json\n");
                return 2;
        }
        json_error_t jerr;
        json_t *doc = json_loadf(stdin, 0, &jerr);
        if (doc == NULL) {
                fprintf(stderr, "ml-eval: bad JSON: %s (line %d)\n", jerr.text,
                        jerr.line);
                return 2;
        }
        int rc;
        if (strcmp(argv[1], "forecast") == 0)
                rc = cmd_forecast(doc);
        else {
                fprintf(stderr, "ml-eval: unknown command %s\n", argv[1]);
                rc = 2;
        }
        json_decref(doc);
        return rc;
}
