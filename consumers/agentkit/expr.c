/*
 * expr.c - the small expression language of workflow definitions, and
 * templates.
 *
 * Expressions are read where a definition decides (a branch's cases) or
 * builds a value (templates: a string "${expr}" is replaced by the value of
 * expr, of any JSON type; "text ${expr} text" by the text of each value).
 * They see one JSON context: {input, steps: {<id>: {output, status,
 * error, attempt}}, run: {id, workflow_id, version, started_at}}.
 *
 *   expr    := or
 *   or      := and ("||" and)*
 *   and     := not ("&&" not)*
 *   not     := "!" not | cmp
 *   cmp     := sum (("==" | "!=" | "<" | "<=" | ">" | ">=") sum)?
 *   sum     := prod (("+" | "-") prod)*
 *   prod    := unary (("*" | "/" | "%") unary)*
 *   unary   := "-" unary | postfix
 *   postfix := primary ("." name | "[" expr "]")*
 *   primary := number | string ('...' or "...") | true | false | null
 *            | name | name "(" [expr ("," expr)*] ")" | "(" expr ")"
 *
 * Names at the top are input, steps and run; a field whose name is not a
 * plain name (a step id with '-') is reached with brackets:
 * steps['fetch-data'].output. A path that leads nowhere
 * (a missing field, an index out of range) is null, so `exists(...)` tells
 * the two apart. Functions: len(x), exists(path), contains(haystack,
 * needle) (strings and arrays), startswith(s, prefix), lower(s), upper(s),
 * str(x), num(x), default(x, fallback) (fallback when x is null).
 * `==` compares JSON values (1 == 1.0); `<` and friends compare numbers or
 * strings; `+` adds numbers or joins strings; && and || give booleans and
 * evaluate their right side only when needed. Truthiness: null, false, 0,
 * "" and empty arrays and objects are false.
 *
 * Everything is bounded: 1,000 bytes of expression, nesting 32 deep,
 * strings built 64 KiB at most. Evaluation has no side effect and depends
 * only on the context, so a run replayed after a crash decides the same.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentkit_internal.h"

#define EXPR_MAX_LEN 1000
#define EXPR_MAX_DEPTH 32
#define EXPR_MAX_TEXT 65536

typedef struct expr {
        const char *s;   /* the text */
        size_t n, i;     /* length, position */
        const json_t *c; /* context; NULL: syntax check only */
        int depth;
        char *err;
        size_t errlen;
        bool failed;
} expr_t;

static json_t *expr__or(expr_t *e, bool eval);

static void expr__fail(expr_t *e, const char *fmt, ...) {
        va_list ap;
        if (e->failed)
                return;
        e->failed = true;
        va_start(ap, fmt);
        vsnprintf(e->err, e->errlen, fmt, ap);
        va_end(ap);
}

static void expr__space(expr_t *e) {
        while (e->i < e->n && isspace((unsigned char)e->s[e->i]))
                e->i++;
}

/* The next token is the literal lit (operators, keywords); consumed. */
static bool expr__eat(expr_t *e, const char *lit) {
        size_t l = strlen(lit);
        expr__space(e);
        if (e->i + l > e->n || memcmp(e->s + e->i, lit, l) != 0)
                return false;
        /* "<" must not eat the first half of "<=", "!" not of "!=". */
        if (l == 1 && e->i + 1 < e->n && e->s[e->i + 1] == '=' &&
            strchr("<>!=", lit[0]))
                return false;
        e->i += l;
        return true;
}

bool ak_truthy(const json_t *v) {
        if (!v || json_is_null(v) || json_is_false(v))
                return false;
        if (json_is_number(v))
                return json_number_value(v) != 0;
        if (json_is_string(v))
                return json_string_length(v) > 0;
        if (json_is_array(v))
                return json_array_size(v) > 0;
        if (json_is_object(v))
                return json_object_size(v) > 0;
        return true;
}

/* A JSON value as text (strings as they are, others as compact JSON). */
static char *expr__text(const json_t *v) {
        if (json_is_string(v))
                return xstrndup(json_string_value(v), json_string_length(v));
        if (!v || json_is_null(v))
                return xstrdup("");
        return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* ---------------------------------------------------------------------------
 * Primaries
 * ------------------------------------------------------------------------ */

static json_t *expr__string(expr_t *e) {
        char q = e->s[e->i++];
        size_t cap = 64, len = 0;
        char *buf = xmalloc(cap);
        json_t *v;
        while (e->i < e->n && e->s[e->i] != q) {
                char c = e->s[e->i++];
                if (c == '\\' && e->i < e->n) {
                        c = e->s[e->i++];
                        c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
                }
                if (len + 2 > cap)
                        buf = xrealloc(buf, cap *= 2);
                buf[len++] = c;
        }
        if (e->i >= e->n) {
                free(buf);
                expr__fail(e, "a string is not closed");
                return NULL;
        }
        e->i++;
        v = json_stringn(buf, len);
        free(buf);
        if (!v)
                expr__fail(e, "a string is not valid UTF-8");
        return v;
}

static json_t *expr__number(expr_t *e) {
        char buf[64];
        size_t start = e->i, len;
        bool real = false;
        char *end;
        while (e->i < e->n &&
               (isdigit((unsigned char)e->s[e->i]) || e->s[e->i] == '.' ||
                e->s[e->i] == 'e' || e->s[e->i] == 'E')) {
                if (!isdigit((unsigned char)e->s[e->i]))
                        real = true;
                e->i++;
        }
        len = e->i - start;
        if (len >= sizeof(buf)) {
                expr__fail(e, "a number is too long");
                return NULL;
        }
        memcpy(buf, e->s + start, len);
        buf[len] = '\0';
        if (!real) {
                long long v = strtoll(buf, &end, 10);
                if (*end == '\0')
                        return json_integer(v);
        }
        double d = strtod(buf, &end);
        if (*end != '\0' || !isfinite(d)) {
                expr__fail(e, "'%s' is not a number", buf);
                return NULL;
        }
        return json_real(d);
}

static size_t expr__name(expr_t *e, char *buf, size_t size) {
        size_t len = 0;
        expr__space(e);
        while (e->i < e->n &&
               (isalnum((unsigned char)e->s[e->i]) || e->s[e->i] == '_')) {
                if (len + 1 < size)
                        buf[len++] = e->s[e->i];
                e->i++;
        }
        buf[len] = '\0';
        return len;
}

static double expr__num_of(const json_t *v) {
        if (json_is_number(v))
                return json_number_value(v);
        if (json_is_string(v)) {
                char *end;
                double d = strtod(json_string_value(v), &end);
                return *end == '\0' && json_string_length(v) ? d : NAN;
        }
        if (json_is_boolean(v))
                return json_is_true(v) ? 1 : 0;
        return NAN;
}

static json_t *expr__number_value(double d) {
        if (!isfinite(d))
                return json_null();
        if (d == floor(d) && fabs(d) < 9.0e15)
                return json_integer((json_int_t)d);
        return json_real(d);
}

/* A function call; args already parsed (evaluated unless a syntax check). */
static json_t *expr__call(expr_t *e, const char *name, json_t **a, size_t n,
                          bool eval) {
        static const struct {
                const char *name;
                size_t arity;
        } fns[] = {{"len", 1},        {"exists", 1}, {"contains", 2},
                   {"startswith", 2}, {"lower", 1},  {"upper", 1},
                   {"str", 1},        {"num", 1},    {"default", 2}};
        size_t k;
        for (k = 0; k < sizeof(fns) / sizeof(fns[0]); k++)
                if (strcmp(fns[k].name, name) == 0)
                        break;
        if (k == sizeof(fns) / sizeof(fns[0])) {
                expr__fail(e, "unknown function %s()", name);
                return NULL;
        }
        if (n != fns[k].arity) {
                expr__fail(e, "%s() takes %zu argument%s", name, fns[k].arity,
                           fns[k].arity == 1 ? "" : "s");
                return NULL;
        }
        if (!eval)
                return json_null();
        if (strcmp(name, "len") == 0) {
                if (json_is_string(a[0]))
                        return json_integer(
                                (json_int_t)json_string_length(a[0]));
                if (json_is_array(a[0]))
                        return json_integer((json_int_t)json_array_size(a[0]));
                if (json_is_object(a[0]))
                        return json_integer((json_int_t)json_object_size(a[0]));
                return json_integer(0);
        }
        if (strcmp(name, "exists") == 0)
                return json_boolean(a[0] != NULL);
        if (strcmp(name, "contains") == 0) {
                if (json_is_string(a[0]) && json_is_string(a[1]))
                        return json_boolean(strstr(json_string_value(a[0]),
                                                   json_string_value(a[1])) !=
                                            NULL);
                if (json_is_array(a[0])) {
                        size_t i;
                        json_t *x;
                        json_array_foreach(a[0], i, x) {
                                if (json_equal(x, a[1]))
                                        return json_true();
                        }
                }
                return json_false();
        }
        if (strcmp(name, "startswith") == 0)
                return json_boolean(json_is_string(a[0]) &&
                                    json_is_string(a[1]) &&
                                    strncmp(json_string_value(a[0]),
                                            json_string_value(a[1]),
                                            json_string_length(a[1])) == 0);
        if (strcmp(name, "lower") == 0 || strcmp(name, "upper") == 0) {
                char *t = expr__text(a[0]);
                json_t *v;
                for (char *p = t; *p; p++)
                        *p = (char)(name[0] == 'l'
                                            ? tolower((unsigned char)*p)
                                            : toupper((unsigned char)*p));
                v = json_string(t);
                free(t);
                return v ? v : json_null();
        }
        if (strcmp(name, "str") == 0) {
                char *t = expr__text(a[0]);
                json_t *v = json_string(t);
                free(t);
                return v ? v : json_null();
        }
        if (strcmp(name, "num") == 0)
                return expr__number_value(expr__num_of(a[0]));
        /* default */
        return json_incref(a[0] && !json_is_null(a[0]) ? a[0] : a[1]);
}

/* Values are new references; NULL (while !e->failed) is a path that leads
 * nowhere, which every operator reads as null and exists() as false. */
static json_t *expr__primary(expr_t *e, bool eval) {
        char name[65];
        char c;
        expr__space(e);
        if (e->i >= e->n) {
                expr__fail(e, "the expression ends too early");
                return NULL;
        }
        c = e->s[e->i];
        if (c == '(') {
                json_t *v;
                e->i++;
                v = expr__or(e, eval);
                if (!expr__eat(e, ")"))
                        expr__fail(e, "')' expected at %zu", e->i);
                return v;
        }
        if (c == '\'' || c == '"')
                return expr__string(e);
        if (isdigit((unsigned char)c))
                return expr__number(e);
        if (!expr__name(e, name, sizeof(name))) {
                expr__fail(e, "unexpected '%c' at %zu", c, e->i);
                return NULL;
        }
        if (strcmp(name, "true") == 0)
                return json_true();
        if (strcmp(name, "false") == 0)
                return json_false();
        if (strcmp(name, "null") == 0)
                return json_null();
        if (expr__eat(e, "(")) {
                json_t *args[4] = {0}, *v;
                size_t n = 0;
                if (!expr__eat(e, ")")) {
                        do {
                                if (n == 4) {
                                        expr__fail(e, "too many arguments");
                                        break;
                                }
                                args[n++] = expr__or(e, eval);
                        } while (!e->failed && expr__eat(e, ","));
                        if (!e->failed && !expr__eat(e, ")"))
                                expr__fail(e, "')' expected at %zu", e->i);
                }
                v = e->failed ? NULL : expr__call(e, name, args, n, eval);
                for (size_t k = 0; k < n; k++)
                        json_decref(args[k]);
                return v;
        }
        if (strcmp(name, "input") && strcmp(name, "steps") &&
            strcmp(name, "run")) {
                expr__fail(e, "unknown name '%s' (input, steps or run)", name);
                return NULL;
        }
        if (!eval)
                return json_null();
        return json_incref(json_object_get(e->c, name));
}

static json_t *expr__postfix(expr_t *e, bool eval) {
        json_t *v = expr__primary(e, eval);
        while (!e->failed) {
                json_t *next = NULL;
                if (expr__eat(e, ".")) {
                        char name[129];
                        if (!expr__name(e, name, sizeof(name))) {
                                expr__fail(e,
                                           "a field name is expected "
                                           "after '.' at %zu",
                                           e->i);
                                break;
                        }
                        if (eval && json_is_object(v))
                                next = json_incref(json_object_get(v, name));
                        else if (!eval)
                                next = json_null();
                } else if (expr__eat(e, "[")) {
                        json_t *k = expr__or(e, eval);
                        if (!e->failed && !expr__eat(e, "]"))
                                expr__fail(e, "']' expected at %zu", e->i);
                        if (!e->failed && eval) {
                                if (json_is_array(v) && json_is_integer(k)) {
                                        json_int_t i = json_integer_value(k);
                                        if (i < 0)
                                                i += (json_int_t)
                                                        json_array_size(v);
                                        if (i >= 0)
                                                next = json_incref(
                                                        json_array_get(
                                                                v, (size_t)i));
                                } else if (json_is_object(v) &&
                                           json_is_string(k)) {
                                        next = json_incref(json_object_get(
                                                v, json_string_value(k)));
                                }
                        } else if (!eval) {
                                next = json_null();
                        }
                        json_decref(k);
                } else {
                        break;
                }
                json_decref(v);
                v = next;
        }
        return v;
}

static json_t *expr__unary(expr_t *e, bool eval) {
        if (++e->depth > EXPR_MAX_DEPTH) {
                expr__fail(e, "the expression nests too deeply");
                return NULL;
        }
        json_t *v;
        if (expr__eat(e, "-")) {
                json_t *x = expr__unary(e, eval);
                v = eval ? expr__number_value(-expr__num_of(x)) : json_null();
                json_decref(x);
        } else {
                v = expr__postfix(e, eval);
        }
        e->depth--;
        return v;
}

static json_t *expr__arith(char op, const json_t *a, const json_t *b) {
        if (op == '+' && (json_is_string(a) || json_is_string(b))) {
                char *x = expr__text(a), *y = expr__text(b);
                size_t lx = strlen(x), ly = strlen(y);
                json_t *v = NULL;
                if (lx + ly <= EXPR_MAX_TEXT) {
                        char *t = xmalloc(lx + ly + 1);
                        memcpy(t, x, lx);
                        memcpy(t + lx, y, ly + 1);
                        v = json_string(t);
                        free(t);
                }
                free(x);
                free(y);
                return v ? v : json_null();
        }
        double p = expr__num_of(a), q = expr__num_of(b);
        switch (op) {
        case '+':
                return expr__number_value(p + q);
        case '-':
                return expr__number_value(p - q);
        case '*':
                return expr__number_value(p * q);
        case '/':
                return q == 0 ? json_null() : expr__number_value(p / q);
        default:
                return q == 0 ? json_null() : expr__number_value(fmod(p, q));
        }
}

static json_t *expr__prod(expr_t *e, bool eval) {
        json_t *v = expr__unary(e, eval);
        for (;;) {
                char op = expr__eat(e, "*")   ? '*'
                          : expr__eat(e, "/") ? '/'
                          : expr__eat(e, "%") ? '%'
                                              : 0;
                json_t *r, *x;
                if (!op || e->failed)
                        break;
                r = expr__unary(e, eval);
                x = eval ? expr__arith(op, v, r) : json_null();
                json_decref(v);
                json_decref(r);
                v = x;
        }
        return v;
}

static json_t *expr__sum(expr_t *e, bool eval) {
        json_t *v = expr__prod(e, eval);
        for (;;) {
                char op = expr__eat(e, "+") ? '+' : expr__eat(e, "-") ? '-' : 0;
                json_t *r, *x;
                if (!op || e->failed)
                        break;
                r = expr__prod(e, eval);
                x = eval ? expr__arith(op, v, r) : json_null();
                json_decref(v);
                json_decref(r);
                v = x;
        }
        return v;
}

/* JSON equality with numbers compared by value (1 == 1.0). */
static bool expr__equal(const json_t *a, const json_t *b) {
        if (!a || !b)
                return (!a || json_is_null(a)) && (!b || json_is_null(b));
        if (json_is_number(a) && json_is_number(b))
                return json_number_value(a) == json_number_value(b);
        return json_equal(a, b);
}

static json_t *expr__cmp(expr_t *e, bool eval) {
        static const char *const ops[] = {"==", "!=", "<=", ">=", "<", ">"};
        json_t *v = expr__sum(e, eval), *r, *x;
        size_t k;
        for (k = 0; k < 6 && !e->failed; k++)
                if (expr__eat(e, ops[k]))
                        break;
        if (k >= 6 || e->failed)
                return v;
        r = expr__sum(e, eval);
        x = json_null();
        if (eval && k < 2) {
                json_decref(x);
                x = json_boolean(expr__equal(v, r) == (k == 0));
        } else if (eval) {
                int c = 0;
                bool ok = true;
                if (json_is_string(v) && json_is_string(r)) {
                        c = strcmp(json_string_value(v), json_string_value(r));
                } else {
                        double p = expr__num_of(v), q = expr__num_of(r);
                        ok = !isnan(p) && !isnan(q);
                        c = p < q ? -1 : p > q;
                }
                json_decref(x);
                x = json_boolean(ok && (k == 2   ? c <= 0
                                        : k == 3 ? c >= 0
                                        : k == 4 ? c < 0
                                                 : c > 0));
        }
        json_decref(v);
        json_decref(r);
        return x;
}

static json_t *expr__not(expr_t *e, bool eval) {
        if (expr__eat(e, "!")) {
                json_t *x = expr__not(e, eval);
                bool t = ak_truthy(x);
                json_decref(x);
                return eval ? json_boolean(!t) : json_null();
        }
        return expr__cmp(e, eval);
}

static json_t *expr__and(expr_t *e, bool eval) {
        json_t *v = expr__not(e, eval);
        while (!e->failed && expr__eat(e, "&&")) {
                bool left = ak_truthy(v);
                json_t *r = expr__not(e, eval && left);
                json_decref(v);
                v = eval ? json_boolean(left && ak_truthy(r)) : json_null();
                json_decref(r);
        }
        return v;
}

static json_t *expr__or(expr_t *e, bool eval) {
        json_t *v = expr__and(e, eval);
        while (!e->failed && expr__eat(e, "||")) {
                bool left = ak_truthy(v);
                json_t *r = expr__and(e, eval && !left);
                json_decref(v);
                v = eval ? json_boolean(left || ak_truthy(r)) : json_null();
                json_decref(r);
        }
        return v;
}

static json_t *expr__run(const char *text, size_t len, const json_t *ctx,
                         char *err, size_t errlen) {
        expr_t e = {text, len, 0, ctx, 0, err, errlen, false};
        json_t *v;
        if (len > EXPR_MAX_LEN) {
                snprintf(err, errlen, "an expression is longer than %d bytes",
                         EXPR_MAX_LEN);
                return NULL;
        }
        v = expr__or(&e, ctx != NULL);
        expr__space(&e);
        if (!e.failed && e.i < e.n)
                expr__fail(&e, "unexpected '%c' at %zu", e.s[e.i], e.i);
        if (e.failed) {
                json_decref(v);
                return NULL;
        }
        return v ? v : json_null();
}

json_t *ak_expr_eval(const char *text, const json_t *ctx, char *err,
                     size_t errlen) {
        json_t *empty = ctx ? NULL : json_object(), *v;
        v = expr__run(text, strlen(text), ctx ? ctx : empty, err, errlen);
        json_decref(empty);
        return v;
}

bool ak_expr_check(const char *text, char *err, size_t errlen) {
        json_t *v = expr__run(text, strlen(text), NULL, err, errlen);
        json_decref(v);
        return v != NULL;
}

/* ---------------------------------------------------------------------------
 * Templates
 * ------------------------------------------------------------------------ */

/* A string template: "${expr}" alone gives the value, otherwise text. */
static json_t *tmpl__string(const char *s, size_t len, const json_t *ctx,
                            char *err, size_t errlen) {
        const char *open = strstr(s, "${");
        char *out = NULL;
        size_t olen = 0;
        json_t *v;
        if (!open)
                return json_stringn(s, len);
        if (open == s && len >= 3 && s[len - 1] == '}' &&
            memchr(s + 2, '}', len - 3) == NULL)
                return expr__run(s + 2, len - 3, ctx, err, errlen);
        out = xmalloc(1);
        for (const char *p = s; p < s + len;) {
                const char *o = strstr(p, "${"), *c = NULL;
                size_t take = o ? (size_t)(o - p) : (size_t)(s + len - p);
                char *piece = NULL;
                size_t plen;
                if (o && !(c = memchr(o, '}', (size_t)(s + len - o)))) {
                        snprintf(err, errlen, "'${' is not closed");
                        free(out);
                        return NULL;
                }
                if (o) {
                        json_t *x = expr__run(o + 2, (size_t)(c - o - 2), ctx,
                                              err, errlen);
                        if (!x) {
                                free(out);
                                return NULL;
                        }
                        piece = expr__text(x);
                        json_decref(x);
                }
                plen = piece ? strlen(piece) : 0;
                if (olen + take + plen > EXPR_MAX_TEXT) {
                        snprintf(err, errlen,
                                 "a template gives more than %d "
                                 "bytes",
                                 EXPR_MAX_TEXT);
                        free(piece);
                        free(out);
                        return NULL;
                }
                out = xrealloc(out, olen + take + plen + 1);
                memcpy(out + olen, p, take);
                olen += take;
                if (piece)
                        memcpy(out + olen, piece, plen);
                olen += plen;
                free(piece);
                p = o ? c + 1 : s + len;
        }
        v = json_stringn(out, olen);
        free(out);
        if (!v)
                snprintf(err, errlen,
                         "a template gives text that is not "
                         "UTF-8");
        return v;
}

static json_t *tmpl__walk(const json_t *t, const json_t *ctx, int depth,
                          char *err, size_t errlen) {
        if (depth > EXPR_MAX_DEPTH) {
                snprintf(err, errlen, "a template nests too deeply");
                return NULL;
        }
        if (json_is_string(t))
                return tmpl__string(json_string_value(t), json_string_length(t),
                                    ctx, err, errlen);
        if (json_is_object(t)) {
                json_t *o = json_object(), *x;
                const char *k;
                json_t *v;
                json_object_foreach((json_t *)t, k, v) {
                        if (!(x = tmpl__walk(v, ctx, depth + 1, err, errlen))) {
                                json_decref(o);
                                return NULL;
                        }
                        json_object_set_new(o, k, x);
                }
                return o;
        }
        if (json_is_array(t)) {
                json_t *a = json_array(), *x, *v;
                size_t i;
                json_array_foreach(t, i, v) {
                        if (!(x = tmpl__walk(v, ctx, depth + 1, err, errlen))) {
                                json_decref(a);
                                return NULL;
                        }
                        json_array_append_new(a, x);
                }
                return a;
        }
        return json_deep_copy(t);
}

json_t *ak_template(const json_t *tmpl, const json_t *ctx, char *err,
                    size_t errlen) {
        json_t *empty, *v;
        if (!tmpl)
                return json_object();
        empty = ctx ? NULL : json_object();
        v = tmpl__walk(tmpl, ctx ? ctx : empty, 0, err, errlen);
        json_decref(empty);
        return v;
}

bool ak_template_check(const json_t *tmpl, char *err, size_t errlen) {
        json_t *v;
        if (!tmpl)
                return true;
        v = tmpl__walk(tmpl, NULL, 0, err, errlen);
        json_decref(v);
        return v != NULL;
}
