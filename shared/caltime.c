/*
 * caltime.c - calendar days and RFC 3339 times (see caltime.h). The
 * day-number conversions are Howard Hinnant's civil-date algorithms.
 */
#include "caltime.h"

#include <stdio.h>

int64_t caltime_days(int year, int month, int day) {
        int64_t y = year - (month <= 2);
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        int64_t yoe = y - era * 400;
        int64_t mp = (month + 9) % 12;
        int64_t doy = (153 * mp + 2) / 5 + day - 1;
        int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
}

void caltime_civil(int64_t days, int *year, int *month, int *day) {
        int64_t z = days + 719468;
        int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        int64_t doe = z - era * 146097;
        int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t y = yoe + era * 400;
        int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        int64_t mp = (5 * doy + 2) / 153;
        int64_t d = doy - (153 * mp + 2) / 5 + 1;
        int64_t m = mp < 10 ? mp + 3 : mp - 9;
        *year = (int)(y + (m <= 2));
        *month = (int)m;
        *day = (int)d;
}

static bool caltime__digits(const char *s, size_t len, size_t *i, int n,
                            int *out) {
        int v = 0;
        if (len - *i < (size_t)n)
                return false;
        for (int k = 0; k < n; k++) {
                char c = s[*i + (size_t)k];
                if (c < '0' || c > '9')
                        return false;
                v = v * 10 + (c - '0');
        }
        *i += (size_t)n;
        *out = v;
        return true;
}

static bool caltime__char(const char *s, size_t len, size_t *i, char a,
                          char b) {
        if (*i >= len || (s[*i] != a && s[*i] != b))
                return false;
        (*i)++;
        return true;
}

static bool caltime__date_at(const char *s, size_t len, size_t *i,
                             int64_t *days) {
        int y, m, d, yy, mm, dd;
        if (!caltime__digits(s, len, i, 4, &y) ||
            !caltime__char(s, len, i, '-', '-') ||
            !caltime__digits(s, len, i, 2, &m) ||
            !caltime__char(s, len, i, '-', '-') ||
            !caltime__digits(s, len, i, 2, &d) || m < 1 || m > 12 || d < 1 ||
            d > 31)
                return false;
        *days = caltime_days(y, m, d);
        /* 2025-02-30 round-trips to another date: not a real one. */
        caltime_civil(*days, &yy, &mm, &dd);
        return yy == y && mm == m && dd == d;
}

bool caltime_parse_date(const char *s, size_t len, int64_t *days) {
        size_t i = 0;
        return s && caltime__date_at(s, len, &i, days) && i == len;
}

void caltime_format_date(int64_t days, char out[CALTIME_DATE_SIZE]) {
        int y, m, d;
        caltime_civil(days, &y, &m, &d);
        if (y < 0 || y > 9999)
                y = m = d = 0;
        /* By hand: folds format a date for every event. */
        out[0] = (char)('0' + y / 1000);
        out[1] = (char)('0' + y / 100 % 10);
        out[2] = (char)('0' + y / 10 % 10);
        out[3] = (char)('0' + y % 10);
        out[4] = '-';
        out[5] = (char)('0' + m / 10);
        out[6] = (char)('0' + m % 10);
        out[7] = '-';
        out[8] = (char)('0' + d / 10);
        out[9] = (char)('0' + d % 10);
        out[10] = '\0';
}

bool caltime_parse_rfc3339(const char *s, size_t len, int64_t *ms) {
        size_t i = 0;
        int64_t days, frac = 0, scale = 100;
        int h, mi, sec, oh = 0, om = 0, sign = 0;
        if (!s || !caltime__date_at(s, len, &i, &days) ||
            !caltime__char(s, len, &i, 'T', 't') ||
            !caltime__digits(s, len, &i, 2, &h) ||
            !caltime__char(s, len, &i, ':', ':') ||
            !caltime__digits(s, len, &i, 2, &mi) ||
            !caltime__char(s, len, &i, ':', ':') ||
            !caltime__digits(s, len, &i, 2, &sec) || h > 23 || mi > 59 ||
            sec > 60)
                return false;
        if (i < len && s[i] == '.') {
                size_t start = ++i;
                while (i < len && s[i] >= '0' && s[i] <= '9') {
                        frac += (s[i] - '0') * scale;
                        scale /= 10;
                        i++;
                }
                if (i == start)
                        return false;
        }
        if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
                i++;
        } else {
                if (i >= len || (s[i] != '+' && s[i] != '-'))
                        return false;
                sign = s[i] == '-' ? -1 : 1;
                i++;
                if (!caltime__digits(s, len, &i, 2, &oh) ||
                    !caltime__char(s, len, &i, ':', ':') ||
                    !caltime__digits(s, len, &i, 2, &om) || oh > 23 || om > 59)
                        return false;
        }
        if (i != len)
                return false;
        *ms = days * CALTIME_MS_PER_DAY +
              ((int64_t)h * 3600 + mi * 60 + sec) * 1000 + frac -
              (int64_t)sign * ((int64_t)oh * 3600 + om * 60) * 1000;
        return true;
}

int64_t caltime_day_of_ms(int64_t ms) {
        return ms >= 0 ? ms / CALTIME_MS_PER_DAY
                       : -((-ms + CALTIME_MS_PER_DAY - 1) / CALTIME_MS_PER_DAY);
}

int caltime_weekday(int64_t days) {
        /* 1970-01-01 was a Thursday (3). */
        int64_t w = (days + 3) % 7;
        return (int)(w < 0 ? w + 7 : w);
}

int64_t caltime_week_start(int64_t days) {
        return days - caltime_weekday(days);
}

int64_t caltime_month_start(int64_t days) {
        int y, m, d;
        caltime_civil(days, &y, &m, &d);
        return caltime_days(y, m, 1);
}

int caltime_month_length(int64_t days) {
        int y, m, d;
        caltime_civil(days, &y, &m, &d);
        return (int)(caltime_days(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) -
                     caltime_days(y, m, 1));
}

int64_t caltime_year_back(int64_t days) {
        int y, m, d;
        caltime_civil(days, &y, &m, &d);
        if (m == 2 && d == 29)
                d = 28;
        return caltime_days(y - 1, m, d);
}
