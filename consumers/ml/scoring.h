/*
 * scoring.h - the lead and churn models' examples (dataset.c) and their
 * training and scores (scoring.c). What each model predicts, from which
 * features, is at the top of dataset.c.
 */
#ifndef OMNIFY_ML_SCORING_H
#define OMNIFY_ML_SCORING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ml_internal.h"

#define ML_LEAD_P 9
#define ML_CHURN_P 7

extern const char *const ml_lead_features[ML_LEAD_P];
extern const char *const ml_churn_features[ML_CHURN_P];

/* A model's examples: training rows (xt, yt) and the rows to score (xs,
 * one per entity, its feature-store key "<tenant>|<provider>|<account>|
 * <id>" in keys). */
typedef struct ml_dataset {
        size_t p;
        const char *const *names; /* p feature names */
        double *xt;
        int *yt;
        size_t nt, cap_t;
        double *xs;
        char **keys;
        bool *converted; /* lead: the outcome happened already */
        size_t ns, cap_s;
        int64_t now_ms; /* the data's own now (-1: no data) */
} ml_dataset_t;

store_err_t ml_dataset_lead(store_t *store, const char *tenant, ml_dataset_t *d,
                            char *errstr, size_t errlen);
store_err_t ml_dataset_churn(store_t *store, const char *tenant, int churn_days,
                             ml_dataset_t *d, char *errstr, size_t errlen);
void ml_dataset_free(ml_dataset_t *d);

#endif
