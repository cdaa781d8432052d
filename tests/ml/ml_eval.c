/*
 * ml_eval.c - ml-eval: the ml group's numerical core as a command-line
 * tool, for the reference checks under tests/ml/ (and for a person who
 * wants to see what a model does with some data).
 *
 *   ml-eval forecast  < {"period": 12, "horizon": 18, "model": "auto",
 *                        "series": [{"id": "N1402", "y": [...]}, ...]}
 *       model: "auto" (AICc selection) or one such as "ANN", "MAdM".
 *   ml-eval anomaly   < {"period": 7, "check": 1, "series": [...]}
 *       optional: window, threshold, multiplicative, shift_min,
 *       shift_max, shift_threshold, shift_sigma (anomaly.h).
 *   ml-eval logreg    < {"C": 1.0, "x": [[...], ...], "y": [0, 1, ...],
 *                        "x_valid": [[...]], "y_valid": [...]}
 *       without x_valid/y_valid: our own stratified split (logreg_train).
 *   ml-eval response  < {"adstock": true, "channels": [{"id": "a",
 *                        "spend": [...], "revenue": [...]}, ...],
 *                        "move": {"from": 0, "to": 1, "amount": 100,
 *                                 "days": 30, "spend": [...]}}
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

#include "anomaly.h"
#include "ets.h"
#include "logreg.h"
#include "response.h"

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
 * anomaly
 * --------------------------------------------------------------------- */

static size_t get_size(const json_t *doc, const char *key, size_t def) {
        json_t *v = json_object_get(doc, key);
        return json_is_integer(v) && json_integer_value(v) >= 0
                       ? (size_t)json_integer_value(v)
                       : def;
}

static double get_real(const json_t *doc, const char *key, double def) {
        json_t *v = json_object_get(doc, key);
        return json_is_number(v) ? json_number_value(v) : def;
}

static const char *direction_name(anomaly_direction_t d) {
        return d == ANOMALY_UP ? "up" : d == ANOMALY_DOWN ? "down" : "none";
}

static json_t *anomaly_one(const json_t *series, const anomaly_options_t *o) {
        json_t *out = json_object();
        json_object_set(out, "id", json_object_get(series, "id"));
        size_t n = 0;
        double *y = numbers(json_object_get(series, "y"), &n);
        anomaly_point_t *pts = calloc(o->check ? o->check : 1, sizeof(*pts));
        if (y == NULL || pts == NULL) {
                json_object_set_new(out, "error", json_string("bad series"));
                goto done;
        }
        anomaly_shift_t shift;
        double t0 = cpu_ms();
        anomaly_err_t err = anomaly_check(y, n, o, pts, &shift);
        json_object_set_new(out, "fit_ms", json_real(cpu_ms() - t0));
        if (err != ANOMALY_OK) {
                json_object_set_new(out, "error",
                                    json_string(anomaly_strerror(err)));
                goto done;
        }
        json_t *arr = json_array();
        for (size_t i = 0; i < o->check; i++) {
                const anomaly_point_t *p = &pts[i];
                json_t *e = json_object();
                json_object_set_new(e, "index",
                                    json_integer((json_int_t)p->index));
                json_object_set_new(e, "missing", json_boolean(p->missing));
                json_object_set_new(e, "value", num(p->value));
                json_object_set_new(e, "expected", num(p->expected));
                json_object_set_new(e, "lower", num(p->lower));
                json_object_set_new(e, "upper", num(p->upper));
                json_object_set_new(e, "score", num(p->score));
                json_object_set_new(e, "anomaly", json_boolean(p->anomaly));
                json_object_set_new(e, "direction",
                                    json_string(direction_name(p->direction)));
                json_array_append_new(arr, e);
        }
        json_object_set_new(out, "points", arr);
        json_t *sh = json_object();
        json_object_set_new(sh, "detected", json_boolean(shift.detected));
        json_object_set_new(sh, "index", json_integer((json_int_t)shift.index));
        json_object_set_new(sh, "before", num(shift.before));
        json_object_set_new(sh, "after", num(shift.after));
        json_object_set_new(sh, "score", num(shift.score));
        json_object_set_new(sh, "direction",
                            json_string(direction_name(shift.direction)));
        json_object_set_new(out, "shift", sh);
done:
        free(pts);
        free(y);
        return out;
}

static int cmd_anomaly(const json_t *doc) {
        anomaly_options_t o = ANOMALY_OPTIONS_DEFAULT;
        o.period = get_size(doc, "period", 7);
        o.check = get_size(doc, "check", 1);
        o.window = get_size(doc, "window", 0);
        o.threshold = get_real(doc, "threshold", 0);
        o.multiplicative = json_is_true(json_object_get(doc, "multiplicative"));
        o.shift_min = get_size(doc, "shift_min", 0);
        o.shift_max = get_size(doc, "shift_max", 0);
        o.shift_threshold = get_real(doc, "shift_threshold", 0);
        o.shift_sigma = get_real(doc, "shift_sigma", 0);
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(doc, "series"), i, s) {
                emit(anomaly_one(s, &o));
        }
        return 0;
}

/* ------------------------------------------------------------------------
 * logreg
 * --------------------------------------------------------------------- */

/* A matrix (array of equal rows) and its labels; NULL on bad input. */
static double *matrix(const json_t *rows, size_t *n, size_t *p) {
        if (!json_is_array(rows) || json_array_size(rows) == 0)
                return NULL;
        *n = json_array_size(rows);
        *p = json_array_size(json_array_get(rows, 0));
        double *x = malloc(*n * (*p ? *p : 1) * sizeof(double));
        for (size_t i = 0; x && i < *n; i++) {
                size_t k = 0;
                double *r = numbers(json_array_get(rows, i), &k);
                if (r == NULL || k != *p) {
                        free(r);
                        free(x);
                        return NULL;
                }
                memcpy(x + i * *p, r, *p * sizeof(double));
                free(r);
        }
        return x;
}

static int *labels(const json_t *arr, size_t n) {
        if (!json_is_array(arr) || json_array_size(arr) != n)
                return NULL;
        int *y = malloc((n ? n : 1) * sizeof(int));
        for (size_t i = 0; y && i < n; i++)
                y[i] = (int)json_integer_value(json_array_get(arr, i));
        return y;
}

static json_t *report_json(const logreg_report_t *r) {
        json_t *o = json_object();
        json_object_set_new(o, "n", json_integer((json_int_t)r->n));
        json_object_set_new(o, "auc", num(r->auc));
        json_object_set_new(o, "brier", num(r->brier));
        json_object_set_new(o, "log_loss", num(r->log_loss));
        json_object_set_new(o, "ece", num(r->ece));
        json_t *bins = json_array();
        for (int b = 0; b < r->n_bins; b++) {
                json_t *e = json_object();
                json_object_set_new(e, "lo", num(r->bins[b].lo));
                json_object_set_new(e, "hi", num(r->bins[b].hi));
                json_object_set_new(e, "count",
                                    json_integer((json_int_t)r->bins[b].count));
                json_object_set_new(e, "mean_predicted",
                                    num(r->bins[b].mean_predicted));
                json_object_set_new(e, "observed_rate",
                                    num(r->bins[b].observed_rate));
                json_array_append_new(bins, e);
        }
        json_object_set_new(o, "bins", bins);
        return o;
}

/* With x_valid/y_valid: fit on x/y, validate on them. Without: our own
 * split (logreg_train). */
static int cmd_logreg(const json_t *doc) {
        logreg_options_t o = {.C = get_real(doc, "C", 0),
                              .valid_fraction =
                                      get_real(doc, "valid_fraction", 0),
                              .seed = get_size(doc, "seed", 0)};
        size_t n = 0, p = 0, nv = 0, pv = 0;
        double *x = matrix(json_object_get(doc, "x"), &n, &p);
        int *y = x ? labels(json_object_get(doc, "y"), n) : NULL;
        const json_t *xvj = json_object_get(doc, "x_valid");
        double *xv = xvj ? matrix(xvj, &nv, &pv) : NULL;
        int *yv = xv ? labels(json_object_get(doc, "y_valid"), nv) : NULL;
        json_t *out = json_object();
        logreg_model_t *model = NULL;
        logreg_report_t rep;
        logreg_err_t err = LOGREG_BAD_VALUE;
        double t0 = cpu_ms();
        if (y && (xvj == NULL || (yv && pv == p))) {
                if (xvj) {
                        err = logreg_fit(x, y, n, p, &o, &model);
                        if (err == LOGREG_OK)
                                err = logreg_evaluate(model, xv, yv, nv, &rep);
                } else {
                        err = logreg_train(x, y, n, p, &o, &model, &rep);
                }
        }
        json_object_set_new(out, "fit_ms", json_real(cpu_ms() - t0));
        if (err != LOGREG_OK) {
                json_object_set_new(out, "error",
                                    json_string(logreg_strerror(err)));
        } else {
                json_object_set_new(out, "validation", report_json(&rep));
                json_object_set_new(
                        out, "n_train",
                        json_integer((json_int_t)logreg_n_train(model)));
                json_t *w = json_array(), *raw = json_array();
                double *coef = malloc(p * sizeof(double));
                double b = coef ? logreg_raw_coefficients(model, coef) : NAN;
                for (size_t j = 0; j < p; j++) {
                        json_array_append_new(w, num(logreg_weights(model)[j]));
                        json_array_append_new(raw, num(coef ? coef[j] : NAN));
                }
                free(coef);
                json_object_set_new(out, "weights", w);
                json_object_set_new(out, "intercept",
                                    num(logreg_intercept(model)));
                json_object_set_new(out, "raw_coefficients", raw);
                json_object_set_new(out, "raw_intercept", num(b));
                if (xv) {
                        json_t *pr = json_array();
                        for (size_t i = 0; i < nv; i++)
                                json_array_append_new(
                                        pr,
                                        num(logreg_predict(model, xv + i * p)));
                        json_object_set_new(out, "p_valid", pr);
                }
        }
        emit(out);
        logreg_destroy(model);
        free(x);
        free(y);
        free(xv);
        free(yv);
        return 0;
}

/* ------------------------------------------------------------------------
 * response
 * --------------------------------------------------------------------- */

static json_t *error_json(const response_error_t *e) {
        json_t *o = json_object();
        json_object_set_new(o, "rmse", num(e->rmse));
        json_object_set_new(o, "mae", num(e->mae));
        json_object_set_new(o, "mape", num(e->mape));
        json_object_set_new(o, "r2", num(e->r2));
        return o;
}

/* Fits every channel; with "plan" (daily spend per channel for the days
 * left) projects; with "move" {"from", "to", "amount", "days"} a what-if. */
static int cmd_response(const json_t *doc) {
        bool ad = json_is_true(json_object_get(doc, "adstock"));
        const json_t *chans = json_object_get(doc, "channels");
        size_t nc = json_array_size(chans);
        response_model_t *models = calloc(nc ? nc : 1, sizeof(*models));
        double *cur = calloc(nc ? nc : 1, sizeof(double));
        json_t *out = json_object(), *arr = json_array();
        bool all_ok = models && cur;
        for (size_t c = 0; all_ok && c < nc; c++) {
                const json_t *ch = json_array_get(chans, c);
                size_t n1 = 0, n2 = 0;
                double *x = numbers(json_object_get(ch, "spend"), &n1);
                double *r = numbers(json_object_get(ch, "revenue"), &n2);
                json_t *e = json_object();
                json_object_set(e, "id", json_object_get(ch, "id"));
                response_err_t err = RESPONSE_BAD_VALUE;
                double t0 = cpu_ms();
                if (x && r && n1 == n2)
                        err = response_fit(x, r, n1, ad, &models[c]);
                json_object_set_new(e, "fit_ms", json_real(cpu_ms() - t0));
                if (err != RESPONSE_OK) {
                        json_object_set_new(
                                e, "error",
                                json_string(response_strerror(err)));
                        all_ok = false;
                } else {
                        const response_params_t *p = &models[c].p;
                        json_object_set_new(e, "base", num(p->base));
                        json_object_set_new(e, "beta", num(p->beta));
                        json_object_set_new(e, "half", num(p->half));
                        json_object_set_new(e, "shape", num(p->shape));
                        json_object_set_new(e, "lambda", num(p->lambda));
                        json_object_set_new(e, "sigma", num(models[c].sigma));
                        json_object_set_new(e, "fit",
                                            error_json(&models[c].fit));
                        json_object_set_new(e, "holdout",
                                            error_json(&models[c].holdout));
                        cur[c] = n1 ? x[n1 - 1] : 0;
                }
                json_array_append_new(arr, e);
                free(x);
                free(r);
        }
        json_object_set_new(out, "channels", arr);
        const json_t *mv = json_object_get(doc, "move");
        if (all_ok && mv) {
                const json_t *cs = json_object_get(mv, "spend");
                for (size_t c = 0; c < nc && json_is_array(cs); c++)
                        cur[c] = json_number_value(json_array_get(cs, c));
                double *delta = calloc(nc ? nc : 1, sizeof(double)), total = 0;
                bool oor = false;
                response_err_t err =
                        delta ? response_move(models, cur, nc,
                                              get_size(mv, "from", 0),
                                              get_size(mv, "to", 0),
                                              get_real(mv, "amount", 0),
                                              get_size(mv, "days", 30), delta,
                                              &total, &oor)
                              : RESPONSE_NO_MEMORY;
                json_t *m = json_object();
                if (err != RESPONSE_OK) {
                        json_object_set_new(
                                m, "error",
                                json_string(response_strerror(err)));
                } else {
                        json_t *d = json_array();
                        for (size_t c = 0; c < nc; c++)
                                json_array_append_new(d, num(delta[c]));
                        json_object_set_new(m, "delta", d);
                        json_object_set_new(m, "total", num(total));
                        json_object_set_new(m, "out_of_range",
                                            json_boolean(oor));
                }
                json_object_set_new(out, "move", m);
                free(delta);
        }
        emit(out);
        free(models);
        free(cur);
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
        else if (strcmp(argv[1], "anomaly") == 0)
                rc = cmd_anomaly(doc);
        else if (strcmp(argv[1], "logreg") == 0)
                rc = cmd_logreg(doc);
        else if (strcmp(argv[1], "response") == 0)
                rc = cmd_response(doc);
        else {
                fprintf(stderr, "ml-eval: unknown command %s\n", argv[1]);
                rc = 2;
        }
        json_decref(doc);
        return rc;
}
