/*
 * settings.c - the analytics group's own settings (see
 * analytics_internal.h): closing days, the brain modules' thresholds,
 * query bounds, the janitor of retired projection versions. Report mails
 * go through the mail sender's own settings (shared/mail.h: mail_settings,
 * OMNIFY_MAIL_*), listed in the group's tables.
 */
#include <stddef.h>

#include "analytics_internal.h"

#define AOFF(f) offsetof(analytics_settings_t, f)

static const config_row_t analytics_rows[] = {
        {"OMNIFY_ANALYTICS_CLOSE_LAG_H", CONFIG_INT, AOFF(close_lag_h), 0, 0,
         72, "12", NULL, 0,
         "Hours after a UTC day ends before a completed sync covers it (12: "
         "the day has ended in every time zone)."},
        {"OMNIFY_ANALYTICS_CLOSE_MAX_DAYS", CONFIG_INT, AOFF(close_max_days), 0,
         1, 366, "7", NULL, 0,
         "Most days announced as closed at once (a first sync after a "
         "backfill announces the latest ones)."},
        {"OMNIFY_ANALYTICS_INSIGHT_CHANGE_PCT", CONFIG_INT,
         AOFF(insight_change_pct), 0, 1, 1000, "20", NULL, 0,
         "Week-over-week move of ROAS or CPA that raises an insight, in "
         "percent."},
        {"OMNIFY_ANALYTICS_INSIGHT_MIN_SPEND", CONFIG_INT,
         AOFF(insight_min_spend), 0, 0, 2000000000, "10000", NULL, 0,
         "Weekly spend (minor units) below which a channel or campaign is "
         "not judged."},
        {"OMNIFY_ANALYTICS_PACING_TOLERANCE_PCT", CONFIG_INT,
         AOFF(pacing_tolerance_pct), 0, 0, 100, "10", NULL, 0,
         "Projected monthly spend within this many percent of a budget "
         "raises nothing."},
        {"OMNIFY_ANALYTICS_TOP_CAMPAIGNS", CONFIG_INT, AOFF(top_campaigns), 0,
         0, 20, "3", NULL, 0,
         "Top and bottom campaigns by ROAS reported when a day closes."},
        {"OMNIFY_ANALYTICS_MAX_RANGE_DAYS", CONFIG_INT, AOFF(max_range_days), 0,
         1, 3660, "1100", NULL, 0,
         "Longest period a dashboard, metrics query or report may span."},
        {"OMNIFY_ANALYTICS_REPORT_MAX_ROWS", CONFIG_INT, AOFF(report_max_rows),
         0, 1, 1000000, "10000", NULL, 0,
         "Rows a report run keeps (more are cut, and the run says so)."},
        {"OMNIFY_ANALYTICS_GC_INTERVAL_S", CONFIG_INT, AOFF(gc_interval_s), 0,
         1, 86400, "60", NULL, 0,
         "How often retired projection versions past their grace are "
         "dropped."},
};

const config_table_t analytics_settings = {
        "analytics",
        analytics_rows,
        sizeof(analytics_rows) / sizeof(analytics_rows[0]),
        sizeof(analytics_settings_t),
};
