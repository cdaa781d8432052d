/*
 * settings.c - the ml group's own settings (see ml_internal.h).
 */
#include <stddef.h>

#include "ml_internal.h"

#define MOFF(f) offsetof(ml_settings_t, f)

static const config_row_t ml_rows[] = {
        {"OMNIFY_ML_HISTORY_DAYS", CONFIG_INT, MOFF(history_days), 0, 60, 1100,
         "730", NULL, 0,
         "Days of history a forecast asks analytics for (at most analytics' "
         "OMNIFY_ANALYTICS_MAX_RANGE_DAYS)."},
        {"OMNIFY_ML_RECENT_DAYS", CONFIG_INT, MOFF(recent_days), 0, 42, 366,
         "120", NULL, 0,
         "Days of the overview a refresh reads: anomaly baselines, pacing "
         "and budget response curves."},
        {"OMNIFY_ML_REFRESH_INTERVAL_S", CONFIG_INT, MOFF(refresh_interval_s),
         0, 10, 604800, "86400", NULL, 0,
         "Each tenant's scheduled refresh of forecasts, anomalies and pacing "
         "(a day analytics closes refreshes at once)."},
        {"OMNIFY_ML_ANOMALY_DAYS", CONFIG_INT, MOFF(anomaly_days), 0, 1, 31,
         "7", NULL, 0,
         "Newest days a refresh checks for anomalies at most (days not "
         "checked since the last refresh)."},
        {"OMNIFY_ML_FORECASTS_MAX", CONFIG_INT, MOFF(forecasts_max), 0, 1, 1000,
         "50", NULL, 0, "Forecasts a tenant may keep."},
        {"OMNIFY_ML_FORECAST_MIN_DAYS", CONFIG_INT, MOFF(forecast_min_days), 0,
         7, 365, "14", NULL, 0,
         "Least days of history (with a value) a forecast needs; 422 below."},
        {"OMNIFY_ML_CHURN_DAYS", CONFIG_INT, MOFF(churn_days), 0, 14, 730, "90",
         NULL, 0,
         "A customer without an order for this many days has churned (the "
         "churn model's outcome)."},
        {"OMNIFY_ML_REQUEST_TIMEOUT_S", CONFIG_INT, MOFF(request_timeout_s), 0,
         10, 86400, "300", NULL, 0,
         "How long a pending forecast waits for analytics' numbers before "
         "it answers 502."},
};

const config_table_t ml_settings = {
        "ml",
        ml_rows,
        sizeof(ml_rows) / sizeof(ml_rows[0]),
        sizeof(ml_settings_t),
};
