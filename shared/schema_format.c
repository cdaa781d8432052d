/*
 * schema_format.c - the text checks of the schema module: UTF-8, names, and
 * the string formats (email, uuid, date-time). They allocate nothing and
 * never read past the length given: values come straight from requests.
 */
#include "schema_internal.h"

#include <string.h>

#include "codec.h"

/* ------------------------------------------------------------------------
 * Small checks shared by loading and validation
 * ------------------------------------------------------------------------ */

/* True when s[0..len) is well-formed UTF-8: no overlong forms, no surrogates,
 * nothing above U+10FFFF. */
bool schema__utf8_valid(const char *s, size_t len) {
        const unsigned char *p = (const unsigned char *)s;
        size_t i = 0;
        bool valid = true;

        while (i < len && valid) {
                if (p[i] < 0x80)
                        i++; /* ASCII, most of it: no call */
                else
                        i += codec_utf8_next(p + i, len - i, &valid);
        }
        return valid;
}

bool schema__is_digit(char c) {
        return c >= '0' && c <= '9';
}

static bool is_hex(char c) {
        return schema__is_digit(c) || (c >= 'a' && c <= 'f') ||
               (c >= 'A' && c <= 'F');
}

/* A name: a letter or '_' then letters, digits or '_', at most max bytes. */
bool schema__name_valid(const char *s, size_t len, size_t max, bool upper) {
        if (len == 0 || len > max)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                bool ok = (c >= 'a' && c <= 'z') || c == '_' ||
                          (upper && c >= 'A' && c <= 'Z') ||
                          (i > 0 && schema__is_digit(c));
                if (!ok)
                        return false;
        }
        return true;
}

/*
 * Pragmatic email check: exactly one '@', a non-empty local part, a domain
 * with a dot that neither starts nor ends it nor doubles, and no spaces or
 * control characters anywhere. Deliverability is the mailer's business.
 */
bool schema__email_valid(const char *s, size_t len) {
        size_t at = len;

        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c <= 0x20 || c == 0x7F)
                        return false;
                if (c == '@') {
                        if (at != len)
                                return false;
                        at = i;
                }
        }
        if (at == len || at == 0 || at + 1 == len)
                return false;

        const char *dom = s + at + 1;
        size_t dlen = len - at - 1;
        bool dot = false;
        if (dom[0] == '.' || dom[dlen - 1] == '.')
                return false;
        for (size_t i = 0; i < dlen; i++) {
                if (dom[i] == '.') {
                        if (dom[i + 1] == '.')
                                return false;
                        dot = true;
                }
        }
        return dot;
}

/* Canonical 8-4-4-4-12 hex UUID, either case. */
bool schema__uuid_valid(const char *s, size_t len) {
        if (len != 36)
                return false;
        for (size_t i = 0; i < 36; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return false;
                } else if (!is_hex(s[i])) {
                        return false;
                }
        }
        return true;
}

/* Read n digits at s[*i] into *out. */
static bool digits(const char *s, size_t len, size_t *i, int n, int *out) {
        int v = 0;

        if (len - *i < (size_t)n)
                return false;
        for (int k = 0; k < n; k++) {
                char c = s[*i + (size_t)k];
                if (!schema__is_digit(c))
                        return false;
                v = v * 10 + (c - '0');
        }
        *i += (size_t)n;
        *out = v;
        return true;
}

static bool expect(const char *s, size_t len, size_t *i, const char *set) {
        if (*i >= len || s[*i] == '\0' || !strchr(set, s[*i]))
                return false;
        (*i)++;
        return true;
}

/* YYYY-MM-DD at s[*i], a real calendar date (leap years counted). */
static bool calendar_date(const char *s, size_t len, size_t *i) {
        static const int mdays[] = {31, 29, 31, 30, 31, 30,
                                    31, 31, 30, 31, 30, 31};
        int y, mo, d;

        if (!digits(s, len, i, 4, &y) || !expect(s, len, i, "-") ||
            !digits(s, len, i, 2, &mo) || !expect(s, len, i, "-") ||
            !digits(s, len, i, 2, &d))
                return false;
        if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1])
                return false;
        return !(mo == 2 && d == 29 &&
                 !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
}

bool schema__date_valid(const char *s, size_t len) {
        size_t i = 0;

        return calendar_date(s, len, &i) && i == len;
}

/* RFC 3339 date-time: 2024-02-29T13:45:00.123Z or with a +hh:mm offset. */
bool schema__date_time_valid(const char *s, size_t len) {
        size_t i = 0;
        int h, mi, sec, oh, om;

        if (!calendar_date(s, len, &i) || !expect(s, len, &i, "Tt") ||
            !digits(s, len, &i, 2, &h) || !expect(s, len, &i, ":") ||
            !digits(s, len, &i, 2, &mi) || !expect(s, len, &i, ":") ||
            !digits(s, len, &i, 2, &sec))
                return false;
        if (h > 23 || mi > 59 || sec > 60)
                return false;
        if (i < len && s[i] == '.') {
                size_t start = ++i;
                while (i < len && schema__is_digit(s[i]))
                        i++;
                if (i == start)
                        return false;
        }
        if (i < len && (s[i] == 'Z' || s[i] == 'z'))
                return i + 1 == len;
        if (!expect(s, len, &i, "+-") || !digits(s, len, &i, 2, &oh) ||
            !expect(s, len, &i, ":") || !digits(s, len, &i, 2, &om))
                return false;
        return i == len && oh <= 23 && om <= 59;
}

static bool is_alpha(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool prefix_nocase(const char *s, size_t len, const char *prefix) {
        size_t n = strlen(prefix);

        if (len < n)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (c >= 'A' && c <= 'Z')
                        c = (char)(c - 'A' + 'a');
                if (c != prefix[i])
                        return false;
        }
        return true;
}

/*
 * An absolute http or https URL (RFC 3986): the scheme, "//", a non-empty
 * host, then only URI characters (unreserved, reserved and whole %XX
 * escapes). Whether the host resolves is not ours to say.
 */
bool schema__uri_valid(const char *s, size_t len) {
        static const char extra[] = "-._~:/?#[]@!$&'()*+,;=";
        size_t i = prefix_nocase(s, len, "https://")  ? 8
                   : prefix_nocase(s, len, "http://") ? 7
                                                      : 0;
        size_t host;

        if (i == 0)
                return false;
        host = i;
        while (i < len && s[i] != '/' && s[i] != '?' && s[i] != '#')
                i++;
        /* The authority: no userinfo-only or port-only host. */
        if (i == host || s[host] == ':' || s[host] == '@' || s[i - 1] == '@')
                return false;
        for (i = host; i < len; i++) {
                char c = s[i];
                if (c == '%') {
                        if (len - i < 3 || !is_hex(s[i + 1]) ||
                            !is_hex(s[i + 2]))
                                return false;
                        i += 2;
                } else if (!is_alpha(c) && !schema__is_digit(c) &&
                           (c == '\0' || !strchr(extra, c))) {
                        return false;
                }
        }
        return true;
}

/* RFC 9110 field names are tokens; we keep to letters, digits and '-'. */
bool schema__header_name_valid(const char *s, size_t len) {
        if (len == 0 || len > 64 || s[0] == '-')
                return false;
        for (size_t i = 0; i < len; i++)
                if (!is_alpha(s[i]) && !schema__is_digit(s[i]) && s[i] != '-')
                        return false;
        return true;
}

/* "type/subtype", each of letters, digits and !#$&-^_.+ (RFC 6838). */
bool schema__media_type_valid(const char *s) {
        static const char extra[] = "!#$&-^_.+";
        const char *slash = strchr(s, '/');
        size_t n = strlen(s);

        if (!slash || slash == s || slash == s + n - 1 || n > 127)
                return false;
        for (size_t i = 0; i < n; i++)
                if (s + i != slash && !is_alpha(s[i]) &&
                    !schema__is_digit(s[i]) && !strchr(extra, s[i]))
                        return false;
        return true;
}

/* Past participles not ending in "ed" that event names may end with. */
static const char *const irregular_verbs[] = {
        "begun", "bought",  "brought",   "built",      "caught", "chosen",
        "cut",   "done",    "drawn",     "found",      "frozen", "given",
        "held",  "hidden",  "kept",      "left",       "lost",   "made",
        "met",   "paid",    "put",       "quit",       "read",   "rebuilt",
        "reset", "run",     "sent",      "set",        "shut",   "sold",
        "spent", "split",   "taken",     "thrown",     "told",   "undone",
        "won",   "written", "withdrawn", "overridden", NULL};

/*
 * After "<group>.": at least an entity and a verb, dot-separated names of
 * lowercase letters, digits and '_', the last a past participle (ends in
 * "ed", or one of the irregular ones above): "user.registered",
 * "run.step.completed", "invoice.paid".
 */
bool schema__event_name_valid(const char *s) {
        size_t len = strlen(s), start = 0, parts = 0;
        const char *verb = s;

        for (size_t i = 0; i <= len; i++) {
                if (i < len && s[i] != '.')
                        continue;
                if (!schema__name_valid(s + start, i - start, SCHEMA_MAX_TYPE,
                                        false))
                        return false;
                verb = s + start;
                parts++;
                start = i + 1;
        }
        if (parts < 2)
                return false;
        len = strlen(verb);
        if (len > 2 && strcmp(verb + len - 2, "ed") == 0)
                return true;
        for (size_t i = 0; irregular_verbs[i]; i++)
                if (strcmp(verb, irregular_verbs[i]) == 0)
                        return true;
        return false;
}
