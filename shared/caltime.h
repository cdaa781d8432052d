/*
 * caltime.h - calendar days and RFC 3339 times as numbers.
 *
 * Days are counted from 1970-01-01 (day 0) in the proleptic Gregorian
 * calendar, so day arithmetic (ranges, weeks, months, a year back) is
 * integer arithmetic, independent of the machine's time zone. Pure
 * functions; thread-safe.
 */
#ifndef OMNIFY_CALTIME_H
#define OMNIFY_CALTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CALTIME_DATE_SIZE 11 /* "YYYY-MM-DD" + NUL */
#define CALTIME_MS_PER_DAY 86400000LL

/* The day number of a civil date (month 1..12, day 1..31; not checked). */
int64_t caltime_days(int year, int month, int day);

/* The civil date of a day number. */
void caltime_civil(int64_t days, int *year, int *month, int *day);

/* "YYYY-MM-DD" (exactly, a real calendar date) to a day number. */
bool caltime_parse_date(const char *s, size_t len, int64_t *days);

/* A day number as "YYYY-MM-DD". */
void caltime_format_date(int64_t days, char out[CALTIME_DATE_SIZE]);

/* RFC 3339 ("2025-01-02T03:04:05.678Z", "...+02:00") to Unix ms. */
bool caltime_parse_rfc3339(const char *s, size_t len, int64_t *ms);

/* The day a Unix ms time falls on (UTC). */
int64_t caltime_day_of_ms(int64_t ms);

/* 0 = Monday ... 6 = Sunday. */
int caltime_weekday(int64_t days);

/* The Monday on or before days. */
int64_t caltime_week_start(int64_t days);

/* The first day of the month of days. */
int64_t caltime_month_start(int64_t days);

/* Days in the month of days. */
int caltime_month_length(int64_t days);

/* The same date a year earlier (29 February becomes the 28th). */
int64_t caltime_year_back(int64_t days);

#endif
