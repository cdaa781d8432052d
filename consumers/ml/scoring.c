/*
 * scoring.c - training the lead and churn models (logreg.h: L2 logistic
 * regression through LIBLINEAR, a stratified 25% validation split, AUC and
 * reliability bins), on demand (POST /api/ml/models/{kind}/train) or on a
 * schedule (PUT .../schedule: durable schedules, shared/timer.h), and the
 * scores they give.
 *
 * A training run makes a new version ("lead/v3"): its report (validation
 * AUC, Brier score, log loss, calibration error and bins, the weights) is
 * kept in `models` with every earlier one, and every entity of the tenant
 * is scored with it (`scores`, each naming the version and the three
 * features that moved it most). Scores of a version that is no longer
 * current are removed. A model too small to train (fewer than
 * LOGREG_MIN_PER_CLASS training examples of either outcome) or to
 * validate (a validation part without both outcomes) answers 422 naming
 * the counts, and nothing changes.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "logreg.h"
#include "msgid.h"
#include "scoring.h"

#define SCORE_COLL "scores"

static const char *label_of(const char *kind) {
        return strcmp(kind, "lead") == 0
                       ? "the contact converts: a won deal, or the CRM "
                         "lifecycle stage customer"
                       : "the customer places no order in the next "
                         "churn_days days";
}

/* ---------------------------------------------------------------------------
 * The report
 * ------------------------------------------------------------------------ */

static void append_report(bson_t *doc, const char *kind, const ml_dataset_t *d,
                          const logreg_model_t *m, const logreg_report_t *r,
                          size_t positives, int churn_days) {
        bson_t v, arr, e;
        char key[24];
        BSON_APPEND_UTF8(doc, "label", label_of(kind));
        if (strcmp(kind, "churn") == 0)
                BSON_APPEND_INT32(doc, "churn_days", churn_days);
        BSON_APPEND_INT64(doc, "rows", (int64_t)d->nt);
        BSON_APPEND_INT64(doc, "positives", (int64_t)positives);
        BSON_APPEND_INT64(doc, "n_train", (int64_t)logreg_n_train(m));
        BSON_APPEND_INT64(doc, "n_valid", (int64_t)r->n);
        BSON_APPEND_DOCUMENT_BEGIN(doc, "validation", &v);
        BSON_APPEND_DOUBLE(&v, "auc", r->auc);
        BSON_APPEND_DOUBLE(&v, "brier", r->brier);
        BSON_APPEND_DOUBLE(&v, "log_loss", r->log_loss);
        BSON_APPEND_DOUBLE(&v, "ece", r->ece);
        BSON_APPEND_INT64(&v, "positives", (int64_t)r->n_positive);
        BSON_APPEND_ARRAY_BEGIN(&v, "calibration", &arr);
        for (int b = 0; b < r->n_bins; b++) {
                const logreg_bin_t *bin = &r->bins[b];
                snprintf(key, sizeof(key), "%d", b);
                BSON_APPEND_DOCUMENT_BEGIN(&arr, key, &e);
                BSON_APPEND_DOUBLE(&e, "lo", bin->lo);
                BSON_APPEND_DOUBLE(&e, "hi", bin->hi);
                BSON_APPEND_INT64(&e, "count", (int64_t)bin->count);
                if (bin->count) {
                        BSON_APPEND_DOUBLE(&e, "mean_predicted",
                                           bin->mean_predicted);
                        BSON_APPEND_DOUBLE(&e, "observed_rate",
                                           bin->observed_rate);
                }
                bson_append_document_end(&arr, &e);
        }
        bson_append_array_end(&v, &arr);
        bson_append_document_end(doc, &v);
        BSON_APPEND_ARRAY_BEGIN(doc, "features", &arr);
        for (size_t j = 0; j < d->p; j++) {
                snprintf(key, sizeof(key), "%zu", j);
                BSON_APPEND_DOCUMENT_BEGIN(&arr, key, &e);
                BSON_APPEND_UTF8(&e, "name", d->names[j]);
                BSON_APPEND_DOUBLE(&e, "weight", logreg_weights(m)[j]);
                BSON_APPEND_DOUBLE(&e, "mean", logreg_means(m)[j]);
                BSON_APPEND_DOUBLE(&e, "sd", logreg_sds(m)[j]);
                bson_append_document_end(&arr, &e);
        }
        bson_append_array_end(doc, &arr);
        BSON_APPEND_DOUBLE(doc, "intercept", logreg_intercept(m));
        if (d->now_ms >= 0) {
                char t[ML_TIME_TEXT];
                ml_time_format(d->now_ms, t);
                BSON_APPEND_UTF8(doc, "data_through", t);
        }
}

/* ---------------------------------------------------------------------------
 * Scores
 * ------------------------------------------------------------------------ */

/* The three features of row x that moved its log-odds most. */
static void append_factors(bson_t *doc, const logreg_model_t *m,
                           const ml_dataset_t *d, const double *x) {
        const double *w = logreg_weights(m), *mu = logreg_means(m);
        const double *sd = logreg_sds(m);
        double eff[ML_LEAD_P > ML_CHURN_P ? ML_LEAD_P : ML_CHURN_P];
        bool used[sizeof(eff) / sizeof(eff[0])] = {false};
        bson_t arr, e;
        char key[12];
        for (size_t j = 0; j < d->p; j++)
                eff[j] = w[j] * (x[j] - mu[j]) / sd[j];
        BSON_APPEND_ARRAY_BEGIN(doc, "factors", &arr);
        for (int k = 0; k < 3 && (size_t)k < d->p; k++) {
                size_t best = d->p;
                for (size_t j = 0; j < d->p; j++)
                        if (!used[j] &&
                            (best == d->p || fabs(eff[j]) > fabs(eff[best])))
                                best = j;
                used[best] = true;
                snprintf(key, sizeof(key), "%d", k);
                BSON_APPEND_DOCUMENT_BEGIN(&arr, key, &e);
                BSON_APPEND_UTF8(&e, "feature", d->names[best]);
                BSON_APPEND_DOUBLE(&e, "effect", eff[best]);
                bson_append_document_end(&arr, &e);
        }
        bson_append_array_end(doc, &arr);
}

/* "<tenant>|<provider>|<account>|<id>": the three parts after the tenant
 * (the id may itself hold '|'). false when malformed. */
static bool split_key(const char *key, char *provider, size_t plen,
                      char *account, size_t alen, const char **id) {
        const char *a = strchr(key, '|'), *b, *c;
        if (!a || !(b = strchr(a + 1, '|')) || !(c = strchr(b + 1, '|')))
                return false;
        snprintf(provider, plen, "%.*s", (int)(b - a - 1), a + 1);
        snprintf(account, alen, "%.*s", (int)(c - b - 1), b + 1);
        *id = c + 1;
        return true;
}

static store_err_t write_scores(ml_state_t *st, const char *tenant,
                                const char *kind, const ml_dataset_t *d,
                                const logreg_model_t *m, const char *version,
                                char *errstr, size_t errlen) {
        store_bulk_t *b = store_bulk_new(st->store, ML_DB, SCORE_COLL, false);
        bson_t filter = BSON_INITIALIZER, child;
        store_err_t err;
        for (size_t i = 0; i < d->ns; i++) {
                const double *x = &d->xs[i * d->p];
                char id[700], provider[ML_CHANNEL_MAX], account[160];
                const char *eid;
                bson_t doc = BSON_INITIALIZER, f = BSON_INITIALIZER;
                if (!split_key(d->keys[i], provider, sizeof(provider), account,
                               sizeof(account), &eid))
                        continue;
                snprintf(id, sizeof(id), "%s|%s|%s", tenant, kind,
                         d->keys[i] + strlen(tenant) + 1);
                BSON_APPEND_UTF8(&f, "_id", id);
                BSON_APPEND_UTF8(&doc, "_id", id);
                BSON_APPEND_UTF8(&doc, "tenant", tenant);
                BSON_APPEND_UTF8(&doc, "kind", kind);
                BSON_APPEND_UTF8(&doc, "id", eid);
                BSON_APPEND_UTF8(&doc, "provider", provider);
                BSON_APPEND_UTF8(&doc, "account_id", account);
                BSON_APPEND_DOUBLE(&doc, "score", logreg_predict(m, x));
                BSON_APPEND_BOOL(&doc, "converted", d->converted[i]);
                BSON_APPEND_UTF8(&doc, "model_version", version);
                append_factors(&doc, m, d, x);
                store_bulk_replace(b, &f, &doc, true);
                bson_destroy(&doc);
                bson_destroy(&f);
        }
        err = store_bulk_run(b, NULL, errstr, errlen);
        store_bulk_destroy(b);
        if (err != STORE_OK)
                goto done;
        /* Entities gone since the last version keep no stale score. */
        BSON_APPEND_UTF8(&filter, "tenant", tenant);
        BSON_APPEND_UTF8(&filter, "kind", kind);
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "model_version", &child);
        BSON_APPEND_UTF8(&child, "$ne", version);
        bson_append_document_end(&filter, &child);
        err = store_delete(st->store, ML_DB, SCORE_COLL, &filter, STORE_MANY,
                           NULL, errstr, errlen);
done:
        bson_destroy(&filter);
        return err;
}

/* ---------------------------------------------------------------------------
 * Training
 * ------------------------------------------------------------------------ */

/* Train kind for tenant and answer. */
static handler_result_t train(rt_ctx_t *ctx, const char *tenant,
                              const char *kind) {
        ml_state_t *st = rt_state(ctx);
        ml_dataset_t d;
        logreg_model_t *m = NULL;
        logreg_report_t rep;
        logreg_options_t opt = {0};
        char err[256], version[ML_VERSION_MAX];
        size_t positives = 0;
        int64_t n;
        bson_t extra = BSON_INITIALIZER;
        store_err_t serr;
        handler_result_t res = HANDLER_OK;
        bool lead = strcmp(kind, "lead") == 0;
        const char *what = lead ? "contacts" : "customers";
        const char *yes = lead ? "converted" : "churned";

        serr = lead ? ml_dataset_lead(st->store, tenant, &d, err, sizeof(err))
                    : ml_dataset_churn(st->store, tenant, st->set->churn_days,
                                       &d, err, sizeof(err));
        if (serr != STORE_OK) {
                res = ml_store_failed(ctx, serr, "feature store", err);
                goto done;
        }
        for (size_t i = 0; i < d.nt; i++)
                positives += d.yt[i] == 1;
        logreg_err_t le =
                d.nt ? logreg_train(d.xt, d.yt, d.nt, d.p, &opt, &m, &rep)
                     : LOGREG_TOO_FEW_ROWS;
        if (le == LOGREG_TOO_FEW_ROWS || le == LOGREG_ONE_CLASS) {
                ml_unprocessable(ctx,
                                 "too few examples to train a %s model: %zu "
                                 "%s, %zu of them %s and %zu not; each "
                                 "outcome needs %d training examples (about "
                                 "%d with the 25%% held out to validate)",
                                 kind, d.nt, what, positives, yes,
                                 d.nt - positives, LOGREG_MIN_PER_CLASS,
                                 LOGREG_MIN_PER_CLASS * 4 / 3 + 1);
                goto done;
        }
        if (le != LOGREG_OK) {
                log_error("ml: %s model of %s: %s", kind, tenant,
                          logreg_strerror(le));
                rt_reply_problem(ctx, 500, "Internal error",
                                 logreg_strerror(le));
                goto done;
        }
        if (!isfinite(rep.auc)) {
                ml_unprocessable(ctx,
                                 "too few examples to validate a %s model: "
                                 "the validation part (%zu %s) lacks one "
                                 "outcome; %zu of %zu are %s",
                                 kind, rep.n, what, positives, d.nt, yes);
                goto done;
        }
        serr = ml_version_next(st->store, tenant, kind, rt_env(ctx)->id, &n,
                               version, err, sizeof(err));
        if (serr != STORE_OK) {
                res = ml_store_failed(ctx, serr, "heads", err);
                goto done;
        }
        append_report(&extra, kind, &d, m, &rep, positives,
                      st->set->churn_days);
        serr = ml_version_record(st->store, tenant, kind, n, version, &extra,
                                 err, sizeof(err));
        if (serr == STORE_OK)
                serr = write_scores(st, tenant, kind, &d, m, version, err,
                                    sizeof(err));
        if (serr != STORE_OK) {
                res = ml_store_failed(ctx, serr, "models", err);
                goto done;
        }
        {
                msgpack_sbuffer sb;
                msgpack_packer pk;
                msgpack_sbuffer_init(&sb);
                msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                msgpack_pack_map(&pk, 3);
                ml_kv_str(&pk, "kind", kind);
                ml_kv_str(&pk, "model_version", version);
                ml_kv_num(&pk, "auc", rep.auc);
                int rc = rt_emit(ctx, "ml.model.trained", rt_env(ctx)->tenant,
                                 &sb);
                msgpack_sbuffer_destroy(&sb);
                if (rc != 0) {
                        res = HANDLER_PERMANENT;
                        goto done;
                }
        }
        {
                static const char *const hidden[] = {"intercept", NULL};
                bson_t shown = BSON_INITIALIZER;
                char t[ML_TIME_TEXT];
                ml_time_format((int64_t)clock_wall_ms(), t);
                BSON_APPEND_UTF8(&shown, "kind", kind);
                BSON_APPEND_UTF8(&shown, "model_version", version);
                BSON_APPEND_UTF8(&shown, "trained_at", t);
                BSON_APPEND_INT64(&shown, "scored", (int64_t)d.ns);
                bson_concat(&shown, &extra);
                ml_pack_bson(rt_reply(ctx, 200), &shown, hidden);
                bson_destroy(&shown);
        }
done:
        bson_destroy(&extra);
        logreg_destroy(m);
        ml_dataset_free(&d);
        return res;
}

static bool kind_of(const msgpack_object *body, char kind[16]) {
        return ml_str(body, "kind", kind, 16) &&
               (strcmp(kind, "lead") == 0 || strcmp(kind, "churn") == 0);
}

handler_result_t ml_models_train(rt_ctx_t *ctx, const msgpack_object *body) {
        char tenant[ML_TENANT_MAX], kind[16];
        if (!rt_require_role(ctx, SCHEMA_ROLE_MEMBER) ||
            !ml_tenant(ctx, tenant))
                return HANDLER_OK;
        if (!kind_of(body, kind)) {
                rt_reply_problem(ctx, 400, "Bad Request",
                                 "kind must be lead or churn");
                return HANDLER_OK;
        }
        return train(ctx, tenant, kind);
}

handler_result_t ml_models_retrain(rt_ctx_t *ctx, const msgpack_object *body) {
        char tenant[ML_TENANT_MAX], kind[16];
        if (!ml_tenant(ctx, tenant) || !kind_of(body, kind)) {
                rt_reply_problem(ctx, 400, "Bad Request",
                                 "a tenant and kind lead or churn");
                return HANDLER_OK;
        }
        return train(ctx, tenant, kind);
}

handler_result_t ml_models_schedule(rt_ctx_t *ctx, const msgpack_object *body) {
        ml_state_t *st = rt_state(ctx);
        char tenant[ML_TENANT_MAX], kind[16], id[TIMER_ID_MAX], err[256];
        char head[ML_TENANT_MAX + 24];
        int64_t every = -1;
        timer_err_t e;
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
        store_err_t serr;
        msgpack_packer *pk;
        if (!rt_require_role(ctx, SCHEMA_ROLE_MEMBER) ||
            !ml_tenant(ctx, tenant))
                goto done;
        if (!kind_of(body, kind) || !ml_int(body, "every_days", &every) ||
            every < 0 || every > 90) {
                rt_reply_problem(ctx, 400, "Bad Request",
                                 "kind lead or churn, every_days 0 to 90");
                goto done;
        }
        snprintf(id, sizeof(id), "train|%s|%s", tenant, kind);
        if (every == 0) {
                e = schedule_cancel(st->timers, id, err, sizeof(err));
                if (e == TIMER_NOT_FOUND)
                        e = TIMER_OK;
        } else {
                msgpack_sbuffer sb;
                msgpack_packer bp;
                const env_t *env = rt_env(ctx);
                schedule_spec_t spec = {0};
                msgpack_sbuffer_init(&sb);
                msgpack_packer_init(&bp, &sb, msgpack_sbuffer_write);
                msgpack_pack_map(&bp, 1);
                ml_kv_str(&bp, "kind", kind);
                spec.id = id;
                spec.every_ms = every * 86400000;
                spec.type = "ml.models.retrain";
                spec.key = slice_of(tenant);
                spec.body = (slice_t){sb.data, sb.size};
                /* The setter's rights, and no correlation id, so the same
                 * schedule set again is recognised as unchanged. */
                spec.caller = (cmd_caller_t){env->tenant, env->user, env->roles,
                                             SLICE_NULL};
                e = schedule_set(st->timers, &spec, err, sizeof(err));
                msgpack_sbuffer_destroy(&sb);
        }
        if (e == TIMER_STORE_DOWN) {
                bson_destroy(&filter);
                bson_destroy(&update);
                return HANDLER_TRANSIENT;
        }
        if (e == TIMER_FIRING) {
                rt_reply_problem(ctx, 409, "Conflict",
                                 "the schedule is firing now; try again in a "
                                 "moment");
                goto done;
        }
        if (e != TIMER_OK) {
                log_error("ml: schedule %s: %s", id, err);
                rt_reply_problem(ctx, 500, "Internal error", err);
                goto done;
        }
        snprintf(head, sizeof(head), "%s|%s", tenant, kind);
        BSON_APPEND_UTF8(&filter, "_id", head);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_UTF8(&set, "tenant", tenant);
        BSON_APPEND_UTF8(&set, "kind", kind);
        BSON_APPEND_INT64(&set, "every_days", every);
        bson_append_document_end(&update, &set);
        serr = store_update(st->store, ML_DB, "heads", &filter, &update,
                            STORE_UPSERT, NULL, err, sizeof(err));
        if (serr != STORE_OK) {
                bson_destroy(&filter);
                bson_destroy(&update);
                return ml_store_failed(ctx, serr, "heads", err);
        }
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 2);
        ml_kv_str(pk, "kind", kind);
        ml_kv_int(pk, "every_days", every);
done:
        bson_destroy(&filter);
        bson_destroy(&update);
        return HANDLER_OK;
}

/* ---------------------------------------------------------------------------
 * Reading scores
 * ------------------------------------------------------------------------ */

/* Fields the answers never show. */
static const char *const score_hidden[] = {"_id", "tenant", "kind", NULL};

/* The current version of a tenant's model kind into out ("" when none). */
static store_err_t current_version(ml_state_t *st, const char *tenant,
                                   const char *kind, char *out, size_t len,
                                   char *err, size_t errlen) {
        char head[ML_TENANT_MAX + 24];
        bson_t filter = BSON_INITIALIZER, found;
        store_err_t serr;
        out[0] = '\0';
        snprintf(head, sizeof(head), "%s|%s", tenant, kind);
        BSON_APPEND_UTF8(&filter, "_id", head);
        serr = store_find_one(st->store, ML_DB, "heads", &filter, NULL, &found,
                              err, errlen);
        bson_destroy(&filter);
        if (serr == STORE_OK) {
                ml_bson_str(&found, "current", out, len);
                bson_destroy(&found);
        }
        return serr == STORE_NOT_FOUND ? STORE_OK : serr;
}

handler_result_t ml_scores_list(rt_ctx_t *ctx, const msgpack_object *body) {
        ml_state_t *st = rt_state(ctx);
        char tenant[ML_TENANT_MAX], kind[16], err[256];
        char version[ML_VERSION_MAX];
        int64_t limit = 100, offset = 0, total = 0;
        bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
        ml_list_t l;
        store_err_t serr;
        msgpack_packer *pk;
        handler_result_t res = HANDLER_OK;
        ml_list_init(&l, NULL, score_hidden);
        if (!rt_require_role(ctx, SCHEMA_ROLE_VIEWER) ||
            !ml_tenant(ctx, tenant))
                goto done;
        if (!kind_of(body, kind)) {
                rt_reply_problem(ctx, 400, "Bad Request",
                                 "kind must be lead or churn");
                goto done;
        }
        ml_int(body, "limit", &limit);
        ml_int(body, "offset", &offset);
        if (limit < 1 || limit > 1000)
                limit = 100;
        if (offset < 0)
                offset = 0;
        serr = current_version(st, tenant, kind, version, sizeof(version), err,
                               sizeof(err));
        if (serr != STORE_OK) {
                res = ml_store_failed(ctx, serr, "heads", err);
                goto done;
        }
        if (!version[0]) {
                char detail[128];
                snprintf(detail, sizeof(detail),
                         "no %s model yet: train one with POST "
                         "/api/ml/models/%s/train",
                         kind, kind);
                rt_reply_problem(ctx, 404, "Not Found", detail);
                goto done;
        }
        BSON_APPEND_UTF8(&filter, "tenant", tenant);
        BSON_APPEND_UTF8(&filter, "kind", kind);
        if (strcmp(kind, "lead") == 0)
                BSON_APPEND_BOOL(&filter, "converted", false);
        serr = store_count(st->store, ML_DB, SCORE_COLL, &filter, &total, err,
                           sizeof(err));
        if (serr == STORE_OK) {
                bson_destroy(&opts);
                ml_find_opts(&opts, "score", -1, offset, limit);
                l.rank = offset + 1;
                serr = ml_list_find(&l, st->store, SCORE_COLL, &filter, &opts,
                                    err, sizeof(err));
        }
        if (serr != STORE_OK) {
                res = ml_store_failed(ctx, serr, "scores", err);
                goto done;
        }
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 4);
        ml_kv_str(pk, "kind", kind);
        ml_kv_str(pk, "model_version", version);
        ml_kv_int(pk, "total", total);
        ml_list_pack(pk, "scores", &l);
done:
        ml_list_free(&l);
        bson_destroy(&filter);
        bson_destroy(&opts);
        return res;
}

handler_result_t ml_scores_get(rt_ctx_t *ctx, const msgpack_object *body) {
        ml_state_t *st = rt_state(ctx);
        char tenant[ML_TENANT_MAX], kind[16], id[300], err[256];
        bson_t filter = BSON_INITIALIZER;
        ml_list_t l;
        store_err_t serr;
        msgpack_packer *pk;
        handler_result_t res = HANDLER_OK;
        ml_list_init(&l, NULL, score_hidden);
        if (!rt_require_role(ctx, SCHEMA_ROLE_VIEWER) ||
            !ml_tenant(ctx, tenant))
                goto done;
        if (!kind_of(body, kind) || !ml_str(body, "id", id, sizeof(id))) {
                rt_reply_problem(ctx, 400, "Bad Request",
                                 "kind lead or churn and an id");
                goto done;
        }
        BSON_APPEND_UTF8(&filter, "tenant", tenant);
        BSON_APPEND_UTF8(&filter, "kind", kind);
        BSON_APPEND_UTF8(&filter, "id", id);
        serr = ml_list_find(&l, st->store, SCORE_COLL, &filter, NULL, err,
                            sizeof(err));
        if (serr != STORE_OK) {
                res = ml_store_failed(ctx, serr, "scores", err);
                goto done;
        }
        if (!l.n) {
                rt_reply_problem(ctx, 404, "Not Found",
                                 "no score for this id: it was not known when "
                                 "the model was last trained");
                goto done;
        }
        pk = rt_reply(ctx, 200);
        msgpack_pack_map(pk, 2);
        ml_kv_str(pk, "kind", kind);
        ml_list_pack(pk, "scores", &l);
done:
        ml_list_free(&l);
        bson_destroy(&filter);
        return res;
}
