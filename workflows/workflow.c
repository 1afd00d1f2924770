/* workflow.c: validate and compile a definition tree; check submitted forms.
 *
 * Compiling walks the whole tree once and never stops at the first problem:
 * every problem becomes {"path","message"} in the caller's details array, so
 * one publish attempt shows the author everything to fix. The osse_wf_t is
 * filled while walking and thrown away if any problem was found; a returned
 * osse_wf_t therefore always satisfies every rule below (step `after` indices
 * in range, no cycles, public_fields naming non-pii fields, ...), and the
 * engine may rely on that without checking again.
 *
 * Publishing (osse_wf_check) runs the same walk and then the rules that only
 * a new definition must meet: number templates and references, looked up
 * through the caller's osse_wf_refs_t. It also collects warnings. A replay
 * (osse_wf_compile) skips those, so that a definition the log already holds
 * always compiles again.
 *
 * Expressions are kept as text here (non-empty, at most 4096 bytes); their
 * syntax and types are checked by the expression module's compiler. A YAML
 * author writing `when: true` or `amount: 500` gets a boolean or number from
 * the parser; such scalars are accepted and kept as their expression text. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/problems.h"
#include "common/time.h"
#include "workflows/workflow.h"
#include "workflows/expr.h"
#include "workflows/wf_internal.h"

#define EXPR_MAX OSSE_EXPR_MAX_TEXT
#define NAME_MAX_LEN 64
/* Text for people (the service manual, SPEC §12): bytes of a title or a
 * label, of a description, of a legal basis (docs/design.md "The service
 * manual"). */
#define TITLE_MAX_LEN 1000
#define DESCRIPTION_MAX_LEN 20000
#define LEGAL_BASIS_MAX_LEN 4000
#define CONTENT_TYPES_MAX 64

static const char *const field_type_names[] = {
#define X(n, s) s,
    OSSE_WF_FIELD_TYPES(X)
#undef X
};
static const char *const step_kind_names[] = {
#define X(n, s) s,
    OSSE_WF_STEP_KINDS(X)
#undef X
};
#define NFIELD_TYPES (sizeof field_type_names / sizeof field_type_names[0])
#define NSTEP_KINDS (sizeof step_kind_names / sizeof step_kind_names[0])

const char *osse_wf_field_type_name(osse_field_type_t t)
{
    return (size_t)t < NFIELD_TYPES ? field_type_names[t] : "?";
}

const char *osse_wf_step_kind_name(osse_step_kind_t k)
{
    return (size_t)k < NSTEP_KINDS ? step_kind_names[k] : "?";
}

/* ---- problems and paths ------------------------------------------------ */

typedef struct ctx_s {
    json_t *details;
    json_t *warnings; /* NULL: nobody asked (a replay's compile) */
    size_t problems;
    bool nomem;
    bool publish; /* osse_wf_check: the size bounds apply */
    /* Name -> index (a JSON integer) of every step and form field, so that
     * each `after` entry, public field and expression path is one hash
     * look-up: walking the list for each made publishing quadratic (a
     * 10,000-step chain took 1.9 s). */
    json_t *step_index, *field_index;
    /* after_mark[j] == i + 1 while step i's `after` holds step j: duplicate
     * entries are found in constant time. */
    size_t *after_mark;
    size_t pattern_cost; /* of the form's patterns so far */
    size_t rules_text;   /* bytes of the rules so far */
    /* A definition's problems past OSSE_WF_MAX_PROBLEMS are counted, not
     * listed (a form's are never many); so are its warnings past
     * OSSE_WF_MAX_WARNINGS, and once those are reached the rules left are
     * not checked for more: formatting 58,880 warnings for a 1 MiB body of
     * rules took 90 ms, and nobody reads them. */
    bool capped;
    size_t nwarnings;
    struct osse_wf_checked_s *checked; /* publishing: where the references go */
} ctx_t;

static void problem(ctx_t *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void warning(ctx_t *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void problem(ctx_t *c, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    c->problems++;
    if (!c->capped || c->problems <= OSSE_WF_MAX_PROBLEMS)
        osse_problems_addv(c->details, path, fmt, ap);
    va_end(ap);
}

static void warning(ctx_t *c, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (c->nwarnings++ < OSSE_WF_MAX_WARNINGS)
        osse_problems_addv(c->warnings, path, fmt, ap);
    va_end(ap);
}

/* An item at the root path that is neither a problem nor a warning itself:
 * what the cut lists leave out. */
static void note(ctx_t *c, json_t *to, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void note(ctx_t *c, json_t *to, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    osse_problems_addv(to, "", fmt, ap);
    va_end(ap);
}

void osse__wf_path_key(char *out, size_t cap, const char *base, const char *key)
{
    size_t n = strlen(key);
    const char *ell = "";
    if (n > 100) {
        n = 100;
        while (n > 0 && ((unsigned char)key[n] & 0xC0) == 0x80)
            n--;
        ell = "...";
    }
    /* As snprintf(out, cap, "%s%s%.*s%s", base, *base ? "." : "", n, key, ell)
     * would, cut to cap - 1 bytes, but by hand: a form's check makes the path
     * of every field, and snprintf was most of the check's cost. */
    if (cap == 0)
        return;
    size_t at = 0;
    const char *parts[4] = {base, *base ? "." : "", key, ell};
    size_t lens[4] = {strlen(base), *base ? 1 : 0, n, strlen(ell)};
    for (int i = 0; i < 4; i++) {
        size_t k = lens[i] < cap - 1 - at ? lens[i] : cap - 1 - at;
        memcpy(out + at, parts[i], k);
        at += k;
    }
    out[at] = '\0';
}

void osse__wf_path_index(char *out, size_t cap, const char *base, size_t i)
{
    /* Paths are bounded by path_key; a cut here only shortens a message. */
    if (snprintf(out, cap, "%s[%zu]", base, i) >= (int)cap)
        out[cap - 1] = '\0';
}

/* Short local names for the path builders that the parser's positions share. */
#define path_key osse__wf_path_key
#define path_index osse__wf_path_index
#define PATH_CAP OSSE__WF_PATH_CAP

/* Quotes user text in a message, cut to a sane length. */
#define Q(s) (int)(strlen(s) > 80 ? 80 : strlen(s)), (s)

/* ---- small value checks ------------------------------------------------- */

static bool match_name(const char *s, bool allow_dash)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              (allow_dash && ch == '-')))
            return false;
    }
    return true;
}

static bool match_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || (i > 0 && ch == '-');
        if (!ok)
            return false;
    }
    return true;
}

static bool in_list(const char *key, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(key, *list) == 0)
            return true;
    return false;
}

/* The value of key, or NULL when absent or null: in YAML `key:` with nothing
 * after it is null, and an author means "not given". */
static json_t *present(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* A JSON string with no NUL inside, so that C code may treat it as text. */
static const char *text_of(const json_t *v)
{
    if (!json_is_string(v))
        return NULL;
    const char *s = json_string_value(v);
    return strlen(s) == json_string_length(v) ? s : NULL;
}

static char *dup_text(ctx_t *c, const char *s)
{
    return osse_strdup(s);
}

/* Formats a number for messages: integers without a fraction. */
static void fmt_num(char *out, size_t cap, double v)
{
    if (v == floor(v) && fabs(v) < 1e15)
        snprintf(out, cap, "%" PRId64, (int64_t)v);
    else
        snprintf(out, cap, "%g", v);
}

/* An expression: a non-empty string of at most EXPR_MAX bytes, or a boolean
 * or number written bare in YAML, kept as its text. Returns a new string or
 * NULL (with a problem recorded unless it was out of memory). */
static char *expr_text(ctx_t *c, const char *path, const json_t *v)
{
    char buf[64];
    const char *s = NULL;
    if (json_is_true(v))
        s = "true";
    else if (json_is_false(v))
        s = "false";
    else if (json_is_integer(v)) {
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        s = buf;
    } else if (json_is_real(v)) {
        /* The shortest form that reads back the same: 0.1, not 0.1000...01. */
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, json_real_value(v));
            if (strtod(buf, NULL) == json_real_value(v))
                break;
        }
        s = buf;
    } else if (json_is_string(v)) {
        s = text_of(v);
        if (!s) {
            problem(c, path, "must not contain NUL characters");
            return NULL;
        }
        if (json_string_length(v) > EXPR_MAX) {
            problem(c, path, "expression longer than %d bytes", EXPR_MAX);
            return NULL;
        }
        /* Checking a rule costs about 12 ns a byte, and the replay's compile
         * the same again: the whole definition's rules are bounded too. */
        c->rules_text += json_string_length(v);
        if (c->publish && c->rules_text > OSSE_WF_MAX_RULES_TEXT &&
            c->rules_text - json_string_length(v) <= OSSE_WF_MAX_RULES_TEXT)
            problem(c, path,
                    "the definition's rules come to more than %d bytes here: the rules of a "
                    "definition total at most that",
                    OSSE_WF_MAX_RULES_TEXT);
        const char *q = s;
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
            q++;
        if (!*q) {
            problem(c, path, "must be a non-empty expression");
            return NULL;
        }
    } else {
        problem(c, path, "must be an expression (a string)");
        return NULL;
    }
    return dup_text(c, s);
}

static void duration_of(ctx_t *c, const char *path, const json_t *v, osse_duration_t *d,
                        bool wall_only)
{
    const char *s = text_of(v);
    if (!s || osse_duration_parse(s, d) != 0) {
        problem(c, path, "must be a duration such as \"PT48H\", \"P3D\" or \"15 working days\"");
        return;
    }
    if (wall_only && d->kind != OSSE_DUR_WALL) {
        problem(c, path, "must be a wall-clock duration such as \"PT10S\"");
        d->kind = OSSE_DUR_NONE;
    }
}

/* overdue_notice (SPEC §2): a wall-clock period of at least an hour, so that
 * a task overdue for years leaves a bounded number of notices
 * (docs/design.md, "Pay and delays told"). */
static void at_least_an_hour(ctx_t *c, const char *key, const json_t *v, osse_duration_t *d)
{
    duration_of(c, key, v, d, true);
    if (d->kind == OSSE_DUR_WALL && osse_duration_add_wall(d, 0) < 3600000) {
        problem(c, key, "must be at least an hour (PT1H)");
        d->kind = OSSE_DUR_NONE;
    }
}

static void overdue_notice_of(ctx_t *c, const json_t *v, osse_duration_t *d)
{
    at_least_an_hour(c, "overdue_notice", v, d);
}

/* retention (SPEC §2, §8): how long after a request ends its personal data
 * is erased. Wall-clock time in UTC, calendar years and months as
 * osse_duration_add_wall counts them (P1M from 31 January ends on the last
 * day of February), never working time: the law counts days, not office
 * hours. At least an hour, like overdue_notice. */
static void retention_of(ctx_t *c, const json_t *v, osse_duration_t *d)
{
    at_least_an_hour(c, "retention", v, d);
}

/* ---- form fields -------------------------------------------------------- */

/* What a POSIX ERE costs glibc's regcomp, roughly: every atom counts 1, and a
 * bounded repetition {m,n} ({m} or {m,}: m, or m + 1 for {m,}) multiplies
 * what it repeats, since regcomp copies it that many times; nested ones
 * multiply. Alternatives add up. The count saturates, so that no input
 * overflows it. Only an estimate for a bound: a pattern regcomp refuses is
 * reported by regcomp. */
#define PATTERN_COST_CAP ((size_t)OSSE_WF_MAX_PATTERNS_COST * 1000)

static size_t pattern_cost(const char *re)
{
    enum { DEPTH = 32 };
    const size_t cap = PATTERN_COST_CAP;
    size_t sum[DEPTH + 1] = {0}; /* cost of each open group so far */
    size_t last = 0;             /* cost of the atom a quantifier would repeat */
    int d = 0;
    for (const char *q = re; *q; q++) {
        switch (*q) {
        case '(':
            if (d == DEPTH)
                return cap; /* deeper than anything sensible: too much */
            sum[++d] = 0;
            last = 0;
            continue;
        case ')':
            if (d == 0) {
                last = 1;
                break;
            }
            last = sum[d--];
            break;
        case '|':
        case '^':
        case '$': last = 0; continue;
        case '*':
        case '+':
        case '?': continue; /* loops, not copies */
        case '{': {
            char *end;
            unsigned long m = strtoul(q + 1, &end, 10), n = m;
            if (end == q + 1) {
                last = 1;
                break; /* not a bound: a literal brace */
            }
            if (*end == ',') {
                const char *p = end + 1;
                n = strtoul(p, &end, 10);
                if (end == p)
                    n = m + 1;
            }
            if (*end != '}') {
                last = 1;
                break;
            }
            q = end;
            unsigned long k = n > m ? n : m;
            size_t extra = k > 1 && last ? (last > cap / k ? cap : last * (k - 1)) : 0;
            sum[d] = sum[d] > cap - extra ? cap : sum[d] + extra;
            last = 0;
            continue;
        }
        case '[':
            /* A bracket expression is one atom: skip to its ']' ("[]a]" and
             * "[^]a]" hold a ']', "[[:alpha:]]" a class). */
            q++;
            if (*q == '^')
                q++;
            if (*q == ']')
                q++;
            while (*q && *q != ']') {
                if (*q == '[' && (q[1] == ':' || q[1] == '.' || q[1] == '=')) {
                    const char *close = strchr(q + 2, q[1]);
                    q = close && close[1] == ']' ? close + 1 : q + 1;
                }
                q++;
            }
            if (!*q)
                q--;
            last = 1;
            break;
        case '\\':
            if (q[1])
                q++;
            last = 1;
            break;
        default: last = 1; break;
        }
        sum[d] = sum[d] >= cap - last ? cap : sum[d] + last;
    }
    while (d > 0) {
        size_t inner = sum[d--];
        sum[d] = sum[d] >= cap - inner ? cap : sum[d] + inner;
    }
    return sum[0];
}

/* "type/subtype" in lower case, each of [a-z0-9.+-], at most 127 bytes. */
static bool media_type_ok(const char *s)
{
    if (!s || strlen(s) > 127)
        return false;
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || !slash[1])
        return false;
    for (const char *p = s; *p; p++)
        if (p != slash && !((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' ||
                            *p == '+' || *p == '-'))
            return false;
    return true;
}

static void compile_field(ctx_t *c, osse_wf_field_t *f, const char *name, const json_t *spec)
{
    char path[PATH_CAP], kp[PATH_CAP];
    path_key(path, sizeof path, "form", name);
    f->name = dup_text(c, name);
    if (!match_name(name, false))
        problem(c, path, "field name must match [a-z_][a-z0-9_]{0,63}");
    if (!json_is_object(spec)) {
        problem(c, path, "must be a mapping such as {type: string}");
        return;
    }

    bool type_ok = false;
    const json_t *tv = present(spec, "type");
    path_key(kp, sizeof kp, path, "type");
    if (!tv) {
        problem(c, kp, "is required");
    } else {
        const char *ts = text_of(tv);
        for (size_t i = 0; ts && i < NFIELD_TYPES; i++)
            if (strcmp(ts, field_type_names[i]) == 0)
                f->type = (osse_field_type_t)i, type_ok = true;
        if (!type_ok)
            problem(c, kp,
                    "must be one of string, integer, number, boolean, date, enum, "
                    "citizen_id, file");
    }

    static const char *const common[] = {"type", "required", "pii", "label", NULL};
    static const char *const str_keys[] = {"max_length", "pattern", NULL};
    static const char *const num_keys[] = {"min", "max", NULL};
    static const char *const enum_keys[] = {"values", NULL};
    static const char *const file_keys[] = {"max_size", "content_types", NULL};
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)spec, key, v)
    {
        path_key(kp, sizeof kp, path, key);
        bool is_str = in_list(key, str_keys), is_num = in_list(key, num_keys),
             is_enum = in_list(key, enum_keys), is_file = in_list(key, file_keys);
        if (!in_list(key, common) && !is_str && !is_num && !is_enum && !is_file) {
            problem(c, kp, "unknown key");
            continue;
        }
        if (type_ok &&
            ((is_str && f->type != OSSE_FIELD_STRING) ||
             (is_num && f->type != OSSE_FIELD_INTEGER && f->type != OSSE_FIELD_NUMBER) ||
             (is_enum && f->type != OSSE_FIELD_ENUM) || (is_file && f->type != OSSE_FIELD_FILE))) {
            problem(c, kp, "not allowed for type %s", field_type_names[f->type]);
            continue;
        }
        if (json_is_null(v) || strcmp(key, "type") == 0)
            continue;
        if (strcmp(key, "label") == 0) {
            if (!text_of(v) || strlen(text_of(v)) > TITLE_MAX_LEN)
                problem(c, kp, "must be a string of at most %d bytes", TITLE_MAX_LEN);
        } else if (strcmp(key, "max_size") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1)
                problem(c, kp, "must be an integer >= 1 (bytes)");
            else
                f->max_size = json_integer_value(v);
        } else if (strcmp(key, "content_types") == 0) {
            size_t n = json_array_size(v);
            if (!json_is_array(v) || n == 0 || n > CONTENT_TYPES_MAX) {
                problem(c, kp, "must be a list of 1 to %d media types such as application/pdf",
                        CONTENT_TYPES_MAX);
                continue;
            }
            for (size_t i = 0; i < n; i++) {
                char ip[PATH_CAP];
                path_index(ip, sizeof ip, kp, i);
                if (!media_type_ok(text_of(json_array_get(v, i))))
                    problem(c, ip, "must be a media type such as application/pdf or image/jpeg");
            }
            f->content_types = osse_calloc(n, sizeof *f->content_types);
            for (size_t i = 0; i < n; i++)
                if (media_type_ok(text_of(json_array_get(v, i))))
                    f->content_types[f->ncontent_types++] =
                        osse_strdup(text_of(json_array_get(v, i)));
        } else if (strcmp(key, "required") == 0 || strcmp(key, "pii") == 0) {
            if (!json_is_boolean(v))
                problem(c, kp, "must be true or false");
            else if (key[0] == 'r')
                f->required = json_is_true(v);
            else
                f->pii = json_is_true(v);
        } else if (strcmp(key, "max_length") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0)
                problem(c, kp, "must be an integer >= 0");
            else
                f->has_max_length = true, f->max_length = json_integer_value(v);
        } else if (strcmp(key, "pattern") == 0) {
            const char *re = text_of(v);
            if (!re) {
                problem(c, kp, "must be a string (a POSIX extended regular expression)");
                continue;
            }
            if (c->publish) {
                /* Before regcomp, whose time the cost bounds. */
                if (strlen(re) > OSSE_WF_MAX_PATTERN) {
                    problem(c, kp, "is %zu bytes long: a pattern has at most %d", strlen(re),
                            OSSE_WF_MAX_PATTERN);
                    continue;
                }
                size_t cost = pattern_cost(re);
                if (cost > OSSE_WF_MAX_PATTERN_COST) {
                    problem(c, kp,
                            "repeats too much: its repetition counts multiplied out come to "
                            "%zu%s, at most %d",
                            cost, cost >= PATTERN_COST_CAP ? " or more" : "",
                            OSSE_WF_MAX_PATTERN_COST);
                    continue;
                }
                /* Said once, where the total is passed; no pattern after
                 * that reaches regcomp. */
                c->pattern_cost += cost;
                if (c->pattern_cost > OSSE_WF_MAX_PATTERNS_COST) {
                    if (c->pattern_cost - cost <= OSSE_WF_MAX_PATTERNS_COST)
                        problem(c, kp,
                                "the form's patterns together repeat too much: their "
                                "repetition counts multiplied out come to more than %d here",
                                OSSE_WF_MAX_PATTERNS_COST);
                    continue;
                }
            }
            int rc = regcomp(&f->pattern, re, REG_EXTENDED | REG_NOSUB);
            if (rc != 0) {
                char ebuf[200];
                regerror(rc, &f->pattern, ebuf, sizeof ebuf);
                problem(c, kp, "invalid regular expression: %s", ebuf);
            } else {
                f->has_pattern = true;
            }
        } else if (strcmp(key, "min") == 0 || strcmp(key, "max") == 0) {
            if (!json_is_number(v)) {
                problem(c, kp, "must be a number");
            } else if (key[1] == 'i') {
                f->has_min = true, f->min = json_number_value(v);
            } else {
                f->has_max = true, f->max = json_number_value(v);
            }
        } else if (strcmp(key, "values") == 0) {
            size_t n = json_array_size(v);
            if (!json_is_array(v) || n == 0) {
                problem(c, kp, "must be a non-empty list of strings");
                continue;
            }
            if (c->publish && n > OSSE_WF_MAX_VALUES)
                problem(c, kp, "has %zu values: an enum has at most %d", n, OSSE_WF_MAX_VALUES);
            f->values = osse_calloc(n, sizeof *f->values);
            json_t *seen = json_object();
            if (!f->values || !seen) {
                json_decref(seen);
                c->nomem = true;
                continue;
            }
            for (size_t i = 0; i < n; i++) {
                char ip[PATH_CAP];
                path_index(ip, sizeof ip, kp, i);
                const char *s = text_of(json_array_get(v, i));
                if (!s || !*s) {
                    problem(c, ip, "must be a non-empty string");
                    continue;
                }
                /* A set, not a walk over the values so far: a long list
                 * must not cost its square. */
                if (json_object_get(seen, s)) {
                    problem(c, ip, "duplicate value \"%.*s\"", Q(s));
                    continue;
                }
                if (json_object_set_new(seen, s, json_true()))
                    c->nomem = true;
                char *d = dup_text(c, s);
                if (d)
                    f->values[f->nvalues++] = d;
            }
            json_decref(seen);
        }
    }
    if (f->has_min && f->has_max && f->min > f->max) {
        path_key(kp, sizeof kp, path, "min");
        problem(c, kp, "must not be greater than max");
    }
    if (type_ok && f->type == OSSE_FIELD_ENUM && !present(spec, "values")) {
        path_key(kp, sizeof kp, path, "values");
        problem(c, kp, "is required for type enum");
    }
}

static int field_index(const osse_wf_t *wf, const char *name)
{
    for (size_t i = 0; i < wf->nfields; i++)
        if (wf->fields[i].name && strcmp(wf->fields[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* ---- steps -------------------------------------------------------------- */

static const char *const step_common_keys[] = {"kind",    "after",     "when",  "sla",
                                               "warn_at", "on_breach", "title", NULL};
static const char *const *const step_kind_keys[] = {
    [OSSE_STEP_KIND_TASK] = (const char *const[]){"agency", "auto_approve", NULL},
    [OSSE_STEP_KIND_LINKAGE] =
        (const char *const[]){"agency", "input", "require", "timeout", "retries", NULL},
    /* payment and issue may name the agency that collects or issues. */
    [OSSE_STEP_KIND_PAYMENT] = (const char *const[]){"agency", "amount", NULL},
    [OSSE_STEP_KIND_ISSUE] =
        (const char *const[]){"agency", "number", "valid_for", "public_fields", NULL},
};

static bool key_of_any_kind(const char *key)
{
    for (size_t k = 0; k < NSTEP_KINDS; k++)
        if (in_list(key, step_kind_keys[k]))
            return true;
    return false;
}

static void compile_on_breach(ctx_t *c, osse_wf_step_t *s, const char *kp, const json_t *v,
                              bool kind_ok)
{
    static const struct {
        const char *name;
        osse_breach_t b;
    } simple[] = {{"notify", OSSE_BREACH_NOTIFY},
                  {"approve", OSSE_BREACH_APPROVE},
                  {"reject", OSSE_BREACH_REJECT},
                  {"expire", OSSE_BREACH_EXPIRE}};
    const char *str = text_of(v);
    if (str) {
        for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++) {
            if (strcmp(str, simple[i].name) == 0) {
                s->on_breach = simple[i].b;
                if (s->on_breach == OSSE_BREACH_APPROVE && kind_ok &&
                    s->kind != OSSE_STEP_KIND_TASK)
                    problem(c, kp, "approve applies only to task steps");
                /* SPEC §2: a payment's is notify or expire. Only publishing
                 * says so, so that an older definition still replays. */
                else if (s->on_breach == OSSE_BREACH_REJECT && c->publish && kind_ok &&
                         s->kind == OSSE_STEP_KIND_PAYMENT)
                    problem(c, kp, "a payment step's on_breach is notify or expire");
                return;
            }
        }
    } else if (json_is_object(v) && json_object_size(v) == 1 && json_object_get(v, "escalate")) {
        char ep[PATH_CAP];
        path_key(ep, sizeof ep, kp, "escalate");
        const char *agency = text_of(json_object_get(v, "escalate"));
        if (!agency || !*agency) {
            problem(c, ep, "must be an agency id");
            return;
        }
        if (kind_ok && s->kind != OSSE_STEP_KIND_TASK) {
            problem(c, kp, "escalate applies only to task steps");
            return;
        }
        s->on_breach = OSSE_BREACH_ESCALATE;
        s->escalate_to = dup_text(c, agency);
        return;
    }
    problem(c, kp, "must be notify, approve, reject, expire or {escalate: <agency>}");
}

static void compile_step(ctx_t *c, osse_wf_t *wf, size_t self, const char *name, const json_t *spec)
{
    osse_wf_step_t *s = &wf->steps[self];
    char path[PATH_CAP], kp[PATH_CAP];
    path_key(path, sizeof path, "steps", name);
    s->name = dup_text(c, name);
    s->warn_at = 0.8;
    s->on_breach = OSSE_BREACH_NOTIFY;
    if (!match_name(name, true))
        problem(c, path, "step name must match [a-z_][a-z0-9_-]{0,63}");
    if (!json_is_object(spec)) {
        problem(c, path, "must be a mapping with a kind");
        return;
    }

    bool kind_ok = false;
    const json_t *kv = present(spec, "kind");
    path_key(kp, sizeof kp, path, "kind");
    if (!kv) {
        problem(c, kp, "is required");
    } else {
        const char *ks = text_of(kv);
        for (size_t i = 0; ks && i < NSTEP_KINDS; i++)
            if (strcmp(ks, step_kind_names[i]) == 0)
                s->kind = (osse_step_kind_t)i, kind_ok = true;
        if (!kind_ok)
            problem(c, kp, "must be one of task, linkage, payment, issue");
    }
    if (kind_ok && (s->kind == OSSE_STEP_KIND_TASK || s->kind == OSSE_STEP_KIND_LINKAGE) &&
        !present(spec, "agency")) {
        path_key(kp, sizeof kp, path, "agency");
        problem(c, kp, "is required for a %s step", step_kind_names[s->kind]);
    }
    if (kind_ok && s->kind == OSSE_STEP_KIND_PAYMENT && !present(spec, "amount")) {
        path_key(kp, sizeof kp, path, "amount");
        problem(c, kp, "is required for a payment step");
    }

    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)spec, key, v)
    {
        path_key(kp, sizeof kp, path, key);
        bool common = in_list(key, step_common_keys);
        if (!common && !key_of_any_kind(key)) {
            problem(c, kp, "unknown key");
            continue;
        }
        if (!common && kind_ok && !in_list(key, step_kind_keys[s->kind])) {
            problem(c, kp, "not allowed for kind %s", step_kind_names[s->kind]);
            continue;
        }
        if (json_is_null(v) || strcmp(key, "kind") == 0) {
            continue;
        } else if (strcmp(key, "title") == 0) {
            if (!text_of(v) || strlen(text_of(v)) > TITLE_MAX_LEN)
                problem(c, kp, "must be a string of at most %d bytes", TITLE_MAX_LEN);
        } else if (strcmp(key, "agency") == 0) {
            const char *a = text_of(v);
            if (!a || !*a || strlen(a) > NAME_MAX_LEN)
                problem(c, kp, "must be an agency id");
            else
                s->agency = dup_text(c, a);
        } else if (strcmp(key, "after") == 0) {
            size_t n = json_array_size(v);
            if (!json_is_array(v)) {
                problem(c, kp, "must be a list of step names");
                continue;
            }
            if (c->publish && n > OSSE_WF_MAX_AFTER)
                problem(c, kp, "has %zu entries: a step comes after at most %d steps", n,
                        OSSE_WF_MAX_AFTER);
            s->after = osse_calloc(n ? n : 1, sizeof *s->after);
            for (size_t i = 0; i < n; i++) {
                char ip[PATH_CAP];
                path_index(ip, sizeof ip, kp, i);
                const char *dep = text_of(json_array_get(v, i));
                if (!dep) {
                    problem(c, ip, "must be a step name");
                    continue;
                }
                if (strcmp(dep, name) == 0) {
                    problem(c, ip, "a step cannot come after itself");
                    continue;
                }
                /* Steps are compiled in object order, so a later step has
                 * its index before it is compiled. */
                json_t *at = json_object_get(c->step_index, dep);
                if (!at) {
                    problem(c, ip, "unknown step \"%.*s\"", Q(dep));
                    continue;
                }
                size_t idx = (size_t)json_integer_value(at);
                if (c->after_mark[idx] == self + 1) {
                    problem(c, ip, "duplicate step \"%.*s\"", Q(dep));
                    continue;
                }
                c->after_mark[idx] = self + 1;
                s->after[s->nafter++] = idx;
            }
        } else if (strcmp(key, "when") == 0) {
            s->when = expr_text(c, kp, v);
        } else if (strcmp(key, "auto_approve") == 0) {
            s->auto_approve = expr_text(c, kp, v);
        } else if (strcmp(key, "require") == 0) {
            s->require = expr_text(c, kp, v);
        } else if (strcmp(key, "amount") == 0) {
            s->amount = expr_text(c, kp, v);
        } else if (strcmp(key, "sla") == 0) {
            /* A fee's deadline is wall-clock (SPEC §2), and linkage and
             * issue steps take none (a linkage has its timeout); only
             * publishing says so, so that an older definition still
             * replays. */
            if (c->publish && kind_ok &&
                (s->kind == OSSE_STEP_KIND_LINKAGE || s->kind == OSSE_STEP_KIND_ISSUE)) {
                problem(c, kp, "linkage and issue steps take no sla");
                continue;
            }
            duration_of(c, kp, v, &s->sla,
                        c->publish && kind_ok && s->kind == OSSE_STEP_KIND_PAYMENT);
        } else if (strcmp(key, "timeout") == 0) {
            duration_of(c, kp, v, &s->timeout, true);
        } else if (strcmp(key, "valid_for") == 0) {
            duration_of(c, kp, v, &s->valid_for, false);
        } else if (strcmp(key, "warn_at") == 0) {
            double w = json_number_value(v);
            if (!json_is_number(v) || !(w > 0 && w < 1))
                problem(c, kp, "must be a number between 0 and 1 (exclusive)");
            else
                s->warn_at = w;
        } else if (strcmp(key, "on_breach") == 0) {
            compile_on_breach(c, s, kp, v, kind_ok);
        } else if (strcmp(key, "retries") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 100)
                problem(c, kp, "must be an integer from 0 to 100");
            else
                s->retries = json_integer_value(v);
        } else if (strcmp(key, "input") == 0) {
            if (!json_is_object(v)) {
                problem(c, kp, "must be a mapping of names to expressions");
                continue;
            }
            if (c->publish && json_object_size(v) > OSSE_WF_MAX_INPUTS)
                problem(c, kp, "has %zu entries: a lookup sends at most %d", json_object_size(v),
                        OSSE_WF_MAX_INPUTS);
            const char *ik;
            const json_t *iv;
            bool ok = true;
            json_object_foreach((json_t *)v, ik, iv)
            {
                char ip[PATH_CAP];
                path_key(ip, sizeof ip, kp, ik);
                char *t = expr_text(c, ip, iv);
                ok &= t != NULL;
                free(t);
            }
            if (ok)
                s->input = json_incref((json_t *)v);
        } else if (strcmp(key, "number") == 0) {
            const char *t = text_of(v);
            if (!t || !*t || strlen(t) > 256)
                problem(c, kp, "must be a number template such as \"RST-{yyyy}-{seq:6}\"");
            else
                s->number = dup_text(c, t);
        } else if (strcmp(key, "public_fields") == 0) {
            size_t n = json_array_size(v);
            if (!json_is_array(v)) {
                problem(c, kp, "must be a list of form field names");
                continue;
            }
            s->public_fields = osse_calloc(n ? n : 1, sizeof *s->public_fields);
            for (size_t i = 0; i < n; i++) {
                char ip[PATH_CAP];
                path_index(ip, sizeof ip, kp, i);
                const char *fn = text_of(json_array_get(v, i));
                json_t *fat = fn ? json_object_get(c->field_index, fn) : NULL;
                int fi = fat ? (int)json_integer_value(fat) : -1;
                if (!fn) {
                    problem(c, ip, "must be a form field name");
                    continue;
                }
                if (fi < 0) {
                    problem(c, ip, "unknown form field \"%.*s\"", Q(fn));
                    continue;
                }
                if (wf->fields[fi].pii) {
                    problem(c, ip, "field \"%.*s\" is personal data (pii) and cannot be public",
                            Q(fn));
                    continue;
                }
                bool dup = false;
                for (size_t j = 0; j < s->npublic_fields; j++)
                    dup |= strcmp(s->public_fields[j], fn) == 0;
                if (dup) {
                    problem(c, ip, "duplicate field \"%.*s\"", Q(fn));
                    continue;
                }
                char *d = dup_text(c, fn);
                if (d)
                    s->public_fields[s->npublic_fields++] = d;
            }
        }
    }
    /* Without an SLA there is no deadline to warn about or breach. */
    if (!present(spec, "sla")) {
        if (present(spec, "warn_at")) {
            path_key(kp, sizeof kp, path, "warn_at");
            problem(c, kp, "has no effect without sla");
        }
        if (present(spec, "on_breach")) {
            path_key(kp, sizeof kp, path, "on_breach");
            problem(c, kp, "has no effect without sla");
        }
    }
}

/* Finds every cycle reachable through `after` edges with one depth-first
 * search; each back edge is one cycle, reported at one of its steps. The
 * search is iterative, so a long chain of steps cannot exhaust the stack. */
static void check_cycles(ctx_t *c, const osse_wf_t *wf)
{
    size_t n = wf->nsteps;
    unsigned char *color = osse_calloc(n, 1); /* 0 white, 1 on stack, 2 done */
    size_t *stack = osse_calloc(n, sizeof *stack), *next = osse_calloc(n, sizeof *next);
    for (size_t root = 0; root < n; root++) {
        if (color[root])
            continue;
        size_t sp = 0;
        stack[sp++] = root;
        color[root] = 1;
        next[root] = 0;
        while (sp > 0) {
            size_t u = stack[sp - 1];
            const osse_wf_step_t *su = &wf->steps[u];
            if (next[u] == su->nafter) {
                color[u] = 2;
                sp--;
                continue;
            }
            size_t v = su->after[next[u]++];
            if (color[v] == 0) {
                color[v] = 1;
                next[v] = 0;
                stack[sp++] = v;
            } else if (color[v] == 1) {
                /* The cycle is v -> ... -> u -> v along the stack. */
                char msg[400];
                size_t len = 0;
                size_t start = sp;
                while (start > 0 && stack[start - 1] != v)
                    start--;
                start = start > 0 ? start - 1 : 0;
                for (size_t i = start; i < sp && len < sizeof msg; i++)
                    len += (size_t)snprintf(msg + len, sizeof msg - len, "%s -> ",
                                            wf->steps[stack[i]].name);
                if (len < sizeof msg)
                    snprintf(msg + len, sizeof msg - len, "%s", wf->steps[v].name);
                char path[PATH_CAP], ap[PATH_CAP];
                path_key(path, sizeof path, "steps", wf->steps[v].name);
                path_key(ap, sizeof ap, path, "after");
                problem(c, ap, "cycle: %s (each step comes after the next)", msg);
            }
        }
    }
    free(color);
    free(stack);
    free(next);
}

/* ---- the definition ----------------------------------------------------- */

static void field_close(osse_wf_field_t *f)
{
    free(f->name);
    if (f->has_pattern)
        regfree(&f->pattern);
    for (size_t i = 0; i < f->nvalues; i++)
        free(f->values[i]);
    free(f->values);
    for (size_t i = 0; i < f->ncontent_types; i++)
        free(f->content_types[i]);
    free(f->content_types);
}

static void step_close(osse_wf_step_t *s)
{
    free(s->name);
    free(s->agency);
    free(s->after);
    free(s->when);
    free(s->auto_approve);
    free(s->require);
    free(s->amount);
    free(s->escalate_to);
    json_decref(s->input);
    free(s->number);
    for (size_t i = 0; i < s->npublic_fields; i++)
        free(s->public_fields[i]);
    free(s->public_fields);
}

void osse_wf_free(osse_wf_t *wf)
{
    if (!wf)
        return;
    free(wf->id);
    free(wf->title);
    free(wf->calendar);
    for (size_t i = 0; i < wf->nfields; i++)
        field_close(&wf->fields[i]);
    free(wf->fields);
    for (size_t i = 0; i < wf->nsteps; i++)
        step_close(&wf->steps[i]);
    free(wf->steps);
    json_decref(wf->definition);
    free(wf);
}

int osse_wf_step_index(const osse_wf_t *wf, const char *name)
{
    for (size_t i = 0; i < wf->nsteps; i++)
        if (strcmp(wf->steps[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* Compiles one expression against env; each problem is reported at the key's
 * path with its column. */
static void check_expr(ctx_t *c, const osse_expr_env_t *env, const char *path, const char *text,
                       osse_expr_type_t expect)
{
    if (!text)
        return;
    /* Past the listed warnings, a rule is checked for problems only. */
    bool want = c->warnings && c->nwarnings < OSSE_WF_MAX_WARNINGS;
    if (c->warnings && !want)
        c->nwarnings = OSSE_WF_MAX_WARNINGS + 1; /* said once, at the end */
    json_t *problems = json_array(), *warnings = want ? json_array() : NULL;
    if (!problems || (want && !warnings)) {
        c->nomem = true;
        goto out;
    }
    if (osse_expr_compile(text, strlen(text), env, expect, NULL, problems, warnings) == OSSE_ENOMEM)
        c->nomem = true;
    size_t i;
    json_t *pr;
    json_array_foreach(problems, i, pr)
    {
        problem(c, path, "column %lld: %s",
                (long long)json_integer_value(json_object_get(pr, "column")),
                json_string_value(json_object_get(pr, "message")));
    }
    json_array_foreach(warnings, i, pr)
    {
        warning(c, path, "column %lld: %s",
                (long long)json_integer_value(json_object_get(pr, "column")),
                json_string_value(json_object_get(pr, "message")));
    }
out:
    json_decref(problems);
    json_decref(warnings);
}

/* The rule language's static checks (unknown paths, unknown steps, types,
 * syntax) over every expression of the definition. */
static void check_exprs(ctx_t *c, const osse_wf_t *wf)
{
    osse_expr_field_t *fields = osse_calloc(wf->nfields + 1, sizeof *fields);
    const char **steps = osse_calloc(wf->nsteps + 1, sizeof *steps);
    for (size_t i = 0; i < wf->nfields; i++) {
        fields[i].name = wf->fields[i].name;
        fields[i].type = osse_expr_type_of_field(osse_wf_field_type_name(wf->fields[i].type));
        fields[i].optional = !wf->fields[i].required;
    }
    for (size_t i = 0; i < wf->nsteps; i++)
        steps[i] = wf->steps[i].name;
    osse_expr_env_t env = {fields, wf->nfields, steps, wf->nsteps, c->field_index, c->step_index};
    for (size_t i = 0; i < wf->nsteps && !c->nomem; i++) {
        const osse_wf_step_t *s = &wf->steps[i];
        char base[PATH_CAP], kp[PATH_CAP];
        if (!s->name)
            continue;
        path_key(base, sizeof base, "steps", s->name);
        path_key(kp, sizeof kp, base, "when");
        check_expr(c, &env, kp, s->when, OSSE_EXPR_BOOLEAN);
        path_key(kp, sizeof kp, base, "auto_approve");
        check_expr(c, &env, kp, s->auto_approve, OSSE_EXPR_BOOLEAN);
        path_key(kp, sizeof kp, base, "require");
        check_expr(c, &env, kp, s->require, OSSE_EXPR_BOOLEAN);
        path_key(kp, sizeof kp, base, "amount");
        check_expr(c, &env, kp, s->amount, OSSE_EXPR_NUMBER);
        const char *k;
        json_t *v;
        if (s->input) {
            char ip[PATH_CAP];
            path_key(ip, sizeof ip, base, "input");
            json_object_foreach(s->input, k, v)
            {
                path_key(kp, sizeof kp, ip, k);
                check_expr(c, &env, kp, json_string_value(v), OSSE_EXPR_ANY);
            }
        }
    }
    free(fields);
    free(steps);
}

/* ---- publish-time rules ------------------------------------------------- */

/* Walks a licence number template once: reports (when c is given) every rule
 * of SPEC §2 "Issue steps" that it breaks, and writes its fixed text (the
 * literal characters, placeholders left out) to fixed. */
static void scan_number(ctx_t *c, const char *path, const char *tpl, char *fixed, size_t cap)
{
    size_t nseq = 0, nyear = 0, o = 0;
    bool bad_char = false;
    for (const char *q = tpl; *q;) {
        if (*q == '{') {
            const char *end = strchr(q, '}');
            if (!end) {
                if (c)
                    problem(c, path, "'{' without its '}'");
                break;
            }
            int n = (int)(end - q + 1);
            if (n == 6 && (strncmp(q, "{yyyy}", 6) == 0 || strncmp(q, "{bbbb}", 6) == 0)) {
                nyear++;
            } else if (strncmp(q, "{seq:", 5) == 0) {
                nseq++;
                if (c && !(n == 7 && q[5] >= '1' && q[5] <= '9'))
                    problem(c, path, "%.*s: N of {seq:N} must be a digit from 1 to 9",
                            n > 40 ? 40 : n, q);
            } else if (c) {
                problem(c, path, "%.*s is not a placeholder: use {yyyy}, {bbbb} or {seq:N}",
                        n > 40 ? 40 : n, q);
            }
            q = end + 1;
            continue;
        }
        bool ok = (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '-';
        if (c && !ok && !bad_char) {
            bad_char = true;
            if ((unsigned char)*q >= 0x20 && (unsigned char)*q < 0x7F)
                problem(c, path, "literal text may hold only A-Z, 0-9 and '-', not '%c'", *q);
            else
                problem(c, path, "literal text may hold only A-Z, 0-9 and '-'");
        }
        if (o + 1 < cap)
            fixed[o++] = *q;
        q++;
    }
    if (cap)
        fixed[o] = '\0';
    if (c && nseq != 1)
        problem(c, path, "must hold exactly one {seq:N}, not %zu", nseq);
    if (c && nyear > 1)
        problem(c, path, "may hold at most one year ({yyyy} or {bbbb}), not %zu", nyear);
}

void osse_wf_number_fixed(const char *tpl, char *out, size_t cap)
{
    scan_number(NULL, NULL, tpl ? tpl : OSSE_WF_DEFAULT_NUMBER, out, cap);
}

bool osse_duration_working(const osse_duration_t *d)
{
    return d->kind == OSSE_DUR_WORKING_DAYS || d->kind == OSSE_DUR_WORKING_HOURS;
}

/* Rules that need the definition as a whole: a working-time SLA needs the
 * workflow's calendar. */
static void check_calendar_use(ctx_t *c, const osse_wf_t *wf)
{
    for (size_t i = 0; i < wf->nsteps && !wf->calendar; i++) {
        char base[PATH_CAP], kp[PATH_CAP];
        if (!wf->steps[i].name || !osse_duration_working(&wf->steps[i].sla))
            continue;
        path_key(base, sizeof base, "steps", wf->steps[i].name);
        path_key(kp, sizeof kp, base, "sla");
        problem(c, kp, "working time needs the workflow's calendar");
    }
}

/* SPEC §2: at most one payment and one issue step (a request has one fee
 * and at most one licence). Publishing only, so that an older definition
 * still replays. The second and later of a kind are named. */
static void check_kind_counts(ctx_t *c, const osse_wf_t *wf)
{
    size_t payments = 0, issues = 0;
    for (size_t i = 0; i < wf->nsteps; i++) {
        const osse_wf_step_t *s = &wf->steps[i];
        size_t *n = s->kind == OSSE_STEP_KIND_PAYMENT ? &payments
                    : s->kind == OSSE_STEP_KIND_ISSUE ? &issues
                                                      : NULL;
        if (!n || !s->name || (*n)++ == 0)
            continue;
        char base[PATH_CAP], kp[PATH_CAP];
        path_key(base, sizeof base, "steps", s->name);
        path_key(kp, sizeof kp, base, "kind");
        problem(c, kp, "a definition has at most one %s step",
                n == &payments ? "payment" : "issue");
    }
}

/* One look-up of the catalog that a definition needs, recorded by the text
 * half of the check (osse_wf_check_text) and made by osse_wf_check_refs:
 * `at` is how many problems were found before it, so that its problem, if
 * any, goes where the one-round check put it. */
typedef enum { REF_CALENDAR, REF_AGENCY, REF_NUMBER } ref_kind_t;

typedef struct wf_ref_s {
    ref_kind_t kind;
    size_t at;
    char *path;
    char *value; /* the id looked up, or a licence number's fixed text */
    bool dflt;   /* REF_NUMBER: the step has no template (the default's text) */
} wf_ref_t;

struct osse_wf_checked_s {
    osse_wf_t *wf;    /* compiled, when the text has no problem */
    char *id;         /* the definition's id, or NULL */
    json_t *problems; /* the first OSSE_WF_MAX_PROBLEMS found, no closing note */
    json_t *warnings; /* complete, with its closing note */
    size_t nproblems; /* found, listed or not */
    bool nomem;
    wf_ref_t *refs; /* in the order of the one-round check */
    size_t nrefs, crefs;
};

static void add_ref(ctx_t *c, ref_kind_t kind, const char *path, const char *value, bool dflt)
{
    osse_wf_checked_t *k = c->checked;
    if (k->nrefs == k->crefs) {
        size_t n = k->crefs ? 2 * k->crefs : 8;
        wf_ref_t *r = osse_reallocarray(k->refs, n, sizeof *r);
        if (!r) {
            c->nomem = true;
            return;
        }
        k->refs = r;
        k->crefs = n;
    }
    wf_ref_t *r = &k->refs[k->nrefs];
    *r = (wf_ref_t){kind, c->problems, osse_strdup(path), osse_strdup(value), dflt};
    if (!r->path || !r->value) {
        free(r->path);
        free(r->value);
        c->nomem = true;
        return;
    }
    k->nrefs++;
}

/* What only publishing checks: number templates (older logs may hold
 * templates that predate these rules, and must still replay) and the
 * references to agencies, calendars and other workflows' licence numbers,
 * which are only recorded here: looking them up reads the catalog, which
 * osse_wf_check_refs does on the caller's thread. */
static void check_publish(ctx_t *c, const osse_wf_t *wf)
{
    if (wf->calendar)
        add_ref(c, REF_CALENDAR, "calendar", wf->calendar, false);
    for (size_t i = 0; i < wf->nsteps && !c->nomem; i++) {
        const osse_wf_step_t *s = &wf->steps[i];
        char base[PATH_CAP], kp[PATH_CAP], fixed[300];
        if (!s->name)
            continue;
        path_key(base, sizeof base, "steps", s->name);
        if (s->agency) {
            path_key(kp, sizeof kp, base, "agency");
            add_ref(c, REF_AGENCY, kp, s->agency, false);
        }
        if (s->escalate_to) {
            char op[PATH_CAP];
            path_key(op, sizeof op, base, "on_breach");
            path_key(kp, sizeof kp, op, "escalate");
            add_ref(c, REF_AGENCY, kp, s->escalate_to, false);
        }
        if (s->kind != OSSE_STEP_KIND_ISSUE)
            continue;
        path_key(kp, sizeof kp, base, "number");
        if (s->number)
            scan_number(c, kp, s->number, fixed, sizeof fixed);
        else
            osse_wf_number_fixed(NULL, fixed, sizeof fixed);
        if (wf->id)
            add_ref(c, REF_NUMBER, kp, fixed, !s->number);
    }
}

/* The values in v (v itself, and every member and element below it, keys
 * not counted), counted up to just past limit. */
static size_t count_values(const json_t *v, size_t limit)
{
    size_t n = 1;
    const char *k;
    json_t *x;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, x)
        {
            if (n > limit)
                break;
            n += count_values(x, limit - n);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x)
        {
            if (n > limit)
                break;
            n += count_values(x, limit - n);
        }
    }
    return n;
}

/* Records name -> i in index; -1 when out of memory (c->nomem set). */
static int index_add(ctx_t *c, json_t *index, const char *name, size_t i)
{
    if (json_object_set_new(index, name, json_integer((json_int_t)i)) == 0)
        return 0;
    c->nomem = true;
    return -1;
}

/* Validates and compiles tree. For publishing (checked not NULL) it also
 * makes the checks of check_publish, leaves the closing note of the
 * problems to osse_wf_check_refs (the references may add some) and keeps
 * the definition's id there. */
static int build(json_t *tree, osse_wf_checked_t *checked, osse_wf_t **out, json_t *details,
                 json_t *warnings)
{
    bool publish = checked != NULL;
    ctx_t c = {.details = details,
               .warnings = publish ? warnings : NULL,
               .publish = publish,
               .checked = checked,
               .step_index = json_object(),
               .field_index = json_object(),
               .capped = true};
    osse_wf_t *wf = osse_calloc(1, sizeof *wf);
    *out = NULL;
    if (!wf || !c.step_index || !c.field_index) {
        c.nomem = true;
        goto out;
    }
    if (!json_is_object(tree)) {
        problem(&c, "", "a definition must be a mapping");
        goto out;
    }

    /* A tree past the bound is not walked key by key: its size alone is
     * the answer, with the counts of steps and fields that an author can
     * act on (87,000 steps of nonsense took 120 ms to report). */
    if (publish && count_values(tree, OSSE_WF_MAX_NODES) > OSSE_WF_MAX_NODES) {
        json_t *form = json_object_get(tree, "form"), *steps = json_object_get(tree, "steps");
        problem(&c, "",
                "holds more than %d values: a definition is smaller, so it was not "
                "checked further",
                OSSE_WF_MAX_NODES);
        if (json_object_size(steps) > OSSE_WF_MAX_STEPS)
            problem(&c, "steps", "has %zu steps: a definition has at most %d",
                    json_object_size(steps), OSSE_WF_MAX_STEPS);
        if (json_object_size(form) > OSSE_WF_MAX_FIELDS)
            problem(&c, "form", "has %zu fields: a form has at most %d", json_object_size(form),
                    OSSE_WF_MAX_FIELDS);
        goto out;
    }

    static const char *const top[] = {"id",        "title",       "calendar",    "form",
                                      "steps",     "description", "legal_basis", "overdue_notice",
                                      "retention", NULL};
    const char *key;
    json_t *v;
    json_object_foreach(tree, key, v)
    {
        char kp[PATH_CAP];
        path_key(kp, sizeof kp, "", key);
        if (!in_list(key, top))
            problem(&c, kp, "unknown key");
    }

    v = present(tree, "id");
    if (!v)
        problem(&c, "id", "is required");
    else if (!text_of(v) || !match_id(text_of(v)))
        problem(&c, "id", "must match [a-z0-9][a-z0-9-]{0,63}");
    else
        wf->id = dup_text(&c, text_of(v));

    if ((v = present(tree, "title")) != NULL) {
        if (!text_of(v) || strlen(text_of(v)) > 1000)
            problem(&c, "title", "must be a string of at most 1000 bytes");
        else
            wf->title = dup_text(&c, text_of(v));
    }
    if ((v = present(tree, "description")) != NULL &&
        (!text_of(v) || strlen(text_of(v)) > DESCRIPTION_MAX_LEN))
        problem(&c, "description", "must be a string of at most %d bytes", DESCRIPTION_MAX_LEN);
    if ((v = present(tree, "legal_basis")) != NULL &&
        (!text_of(v) || strlen(text_of(v)) > LEGAL_BASIS_MAX_LEN))
        problem(&c, "legal_basis", "must be a string of at most %d bytes", LEGAL_BASIS_MAX_LEN);
    if ((v = present(tree, "calendar")) != NULL) {
        if (!text_of(v) || !*text_of(v) || strlen(text_of(v)) > NAME_MAX_LEN)
            problem(&c, "calendar", "must be a calendar id");
        else
            wf->calendar = dup_text(&c, text_of(v));
    }

    if ((v = present(tree, "overdue_notice")) != NULL)
        overdue_notice_of(&c, v, &wf->overdue_notice);
    if ((v = present(tree, "retention")) != NULL)
        retention_of(&c, v, &wf->retention);

    json_t *form = present(tree, "form");
    if (form && !json_is_object(form)) {
        problem(&c, "form", "must be a mapping of field names to field specs");
    } else if (form && json_object_size(form) > 0) {
        wf->fields = osse_calloc(json_object_size(form), sizeof *wf->fields);
        if (c.publish && json_object_size(form) > OSSE_WF_MAX_FIELDS)
            problem(&c, "form", "has %zu fields: a form has at most %d", json_object_size(form),
                    OSSE_WF_MAX_FIELDS);
        json_object_foreach(form, key, v)
        {
            if (index_add(&c, c.field_index, key, wf->nfields))
                goto out;
            compile_field(&c, &wf->fields[wf->nfields++], key, v);
        }
    }

    json_t *steps = present(tree, "steps");
    if (!steps) {
        problem(&c, "steps", "is required");
    } else if (!json_is_object(steps) || json_object_size(steps) == 0) {
        problem(&c, "steps", "must be a non-empty mapping of step names to steps");
    } else {
        size_t n = json_object_size(steps), i = 0;
        wf->steps = osse_calloc(n, sizeof *wf->steps);
        c.after_mark = osse_calloc(n, sizeof *c.after_mark);
        if (c.publish && n > OSSE_WF_MAX_STEPS)
            problem(&c, "steps", "has %zu steps: a definition has at most %d", n,
                    OSSE_WF_MAX_STEPS);
        /* Every name first: `after` may name a step defined further down. */
        json_object_foreach(steps, key, v)
        {
            if (index_add(&c, c.step_index, key, i++))
                goto out;
        }
        json_object_foreach(steps, key, v) compile_step(&c, wf, wf->nsteps++, key, v);
        if (!c.nomem)
            check_cycles(&c, wf);
        if (!c.nomem)
            check_exprs(&c, wf);
        check_calendar_use(&c, wf);
        if (publish)
            check_kind_counts(&c, wf);
    }
    /* References are checked even when the definition has other problems,
     * so that one round shows the author everything. */
    if (publish && !c.nomem)
        check_publish(&c, wf);
    if (publish && !c.nomem && wf->id && !(checked->id = osse_strdup(wf->id)))
        c.nomem = true;
    if (!publish && c.problems > OSSE_WF_MAX_PROBLEMS)
        note(&c, c.details, "%zu more problems are not listed (the first %d are)",
             c.problems - OSSE_WF_MAX_PROBLEMS, OSSE_WF_MAX_PROBLEMS);
    if (c.warnings && c.nwarnings > OSSE_WF_MAX_WARNINGS)
        note(&c, c.warnings,
             "only the first %d warnings are listed: the rules after them were not checked "
             "for more",
             OSSE_WF_MAX_WARNINGS);
out:
    json_decref(c.step_index);
    json_decref(c.field_index);
    free(c.after_mark);
    if (publish)
        checked->nproblems = c.problems;
    if (c.nomem) {
        osse_wf_free(wf);
        return OSSE_ENOMEM;
    }
    if (c.problems > 0) {
        osse_wf_free(wf);
        return OSSE_EINVAL;
    }
    wf->definition = json_incref(tree);
    *out = wf;
    return 0;
}

int osse_wf_compile(json_t *tree, osse_wf_t **out, json_t *details)
{
    return build(tree, NULL, out, details, NULL);
}

int osse_wf_check_text(json_t *tree, osse_wf_checked_t **out)
{
    osse_wf_checked_t *k = osse_calloc(1, sizeof *k);
    *out = NULL;
    if (!k)
        return OSSE_ENOMEM;
    k->problems = json_array();
    k->warnings = json_array();
    if (!k->problems || !k->warnings)
        k->nomem = true;
    else if (build(tree, k, &k->wf, k->problems, k->warnings) == OSSE_ENOMEM)
        k->nomem = true;
    *out = k;
    return 0;
}

bool osse_wf_checked_valid(const osse_wf_checked_t *k)
{
    return k && k->wf != NULL;
}

/* Appends one more problem to list unless it holds the most already. */
static void listed_add(json_t *list, size_t *listed, json_t *item)
{
    if ((*listed)++ < OSSE_WF_MAX_PROBLEMS)
        json_array_append(list, item);
}

int osse_wf_check_refs(osse_wf_checked_t *k, const osse_wf_refs_t *refs, osse_wf_t **out,
                       json_t *problems, json_t *warnings)
{
    *out = NULL;
    if (!k || k->nomem)
        return OSSE_ENOMEM;
    if (json_is_array(warnings))
        json_array_extend(warnings, k->warnings);
    size_t total = k->nproblems, listed = 0, next = 0, have = json_array_size(k->problems);
    for (size_t i = 0; refs && i < k->nrefs; i++) {
        const wf_ref_t *r = &k->refs[i];
        const char *other = NULL;
        json_t *item = json_array();
        if (r->kind == REF_CALENDAR && !refs->calendar(refs->ud, r->value))
            osse_problems_add(item, r->path, "unknown calendar %.*s", Q(r->value));
        else if (r->kind == REF_AGENCY && !refs->agency(refs->ud, r->value))
            osse_problems_add(item, r->path, "unknown agency %.*s", Q(r->value));
        else if (r->kind == REF_NUMBER && refs->number_taken &&
                 (other = refs->number_taken(refs->ud, k->id, r->value)) != NULL)
            osse_problems_add(item, r->path,
                              "workflow %.*s already issues numbers with the fixed text "
                              "\"%.*s\"%s: a number must name one licence",
                              Q(other), Q(r->value),
                              r->dflt ? " (the default " OSSE_WF_DEFAULT_NUMBER ")" : "");
        if (json_array_size(item)) {
            /* The text's problems found before this look-up come first. */
            for (; next < r->at && next < have; next++)
                listed_add(problems, &listed, json_array_get(k->problems, next));
            listed_add(problems, &listed, json_array_get(item, 0));
            total++;
        }
        json_decref(item);
    }
    for (; next < have; next++)
        listed_add(problems, &listed, json_array_get(k->problems, next));
    if (total > OSSE_WF_MAX_PROBLEMS)
        osse_problems_add(problems, "", "%zu more problems are not listed (the first %d are)",
                          total - OSSE_WF_MAX_PROBLEMS, OSSE_WF_MAX_PROBLEMS);
    if (total > 0)
        return OSSE_EINVAL;
    *out = k->wf;
    k->wf = NULL;
    return 0;
}

void osse_wf_checked_free(osse_wf_checked_t *k)
{
    if (!k)
        return;
    osse_wf_free(k->wf);
    free(k->id);
    json_decref(k->problems);
    json_decref(k->warnings);
    for (size_t i = 0; i < k->nrefs; i++) {
        free(k->refs[i].path);
        free(k->refs[i].value);
    }
    free(k->refs);
    free(k);
}

int osse_wf_check(json_t *tree, const osse_wf_refs_t *refs, osse_wf_t **out, json_t *problems,
                  json_t *warnings)
{
    osse_wf_checked_t *k;
    *out = NULL;
    if (osse_wf_check_text(tree, &k))
        return OSSE_ENOMEM;
    int rc = osse_wf_check_refs(k, refs, out, problems, warnings);
    osse_wf_checked_free(k);
    return rc;
}

/* ---- forms -------------------------------------------------------------- */

bool osse_citizen_id_valid(const char *s)
{
    if (!s || strlen(s) != 13)
        return false;
    int sum = 0;
    for (int i = 0; i < 13; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    for (int i = 0; i < 12; i++)
        sum += (s[i] - '0') * (13 - i);
    return (11 - sum % 11) % 10 == s[12] - '0';
}

static size_t utf8_code_points(const char *s, size_t n)
{
    size_t cp = 0;
    for (size_t i = 0; i < n; i++)
        cp += ((unsigned char)s[i] & 0xC0) != 0x80;
    return cp;
}

/* True when s holds nothing but white space: ASCII blanks and the Unicode
 * spaces a pasted value brings along (no-break, ideographic, zero-width). */
static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char b = (unsigned char)s[i];
        if (b == ' ' || (b >= '\t' && b <= '\r')) {
            i++;
            continue;
        }
        /* Decode one UTF-8 sequence (jansson strings are valid UTF-8). */
        uint32_t cp;
        size_t k;
        if (b >= 0xF0)
            cp = b & 0x07, k = 4;
        else if (b >= 0xE0)
            cp = b & 0x0F, k = 3;
        else if (b >= 0xC0)
            cp = b & 0x1F, k = 2;
        else
            return false;
        if (i + k > n)
            return false;
        for (size_t j = 1; j < k; j++)
            cp = cp << 6 | ((unsigned char)s[i + j] & 0x3F);
        bool space = cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200B) ||
                     cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 ||
                     cp == 0xFEFF;
        if (!space)
            return false;
        i += k;
    }
    return true;
}

static void check_range(ctx_t *c, const char *path, const osse_wf_field_t *f, double x)
{
    char num[64];
    if (f->has_min && x < f->min) {
        fmt_num(num, sizeof num, f->min);
        problem(c, path, "must be at least %s", num);
    }
    if (f->has_max && x > f->max) {
        fmt_num(num, sizeof num, f->max);
        problem(c, path, "must be at most %s", num);
    }
}

static void check_value(ctx_t *c, const char *path, const osse_wf_field_t *f, const json_t *v)
{
    switch (f->type) {
    case OSSE_FIELD_STRING: {
        const char *s = text_of(v);
        if (!s) {
            problem(c, path,
                    json_is_string(v) ? "must not contain NUL characters" : "must be a string");
            return;
        }
        if (f->has_max_length &&
            utf8_code_points(s, json_string_length(v)) > (size_t)f->max_length) {
            problem(c, path, "must be at most %" PRId64 " characters", f->max_length);
            return;
        }
        if (f->has_pattern && regexec(&f->pattern, s, 0, NULL, 0) != 0)
            problem(c, path, "does not match the required pattern");
        return;
    }
    case OSSE_FIELD_INTEGER: {
        double x;
        if (json_is_integer(v)) {
            x = (double)json_integer_value(v);
        } else if (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v) &&
                   fabs(json_real_value(v)) < 9.2e18) {
            x = json_real_value(v);
        } else {
            problem(c, path, "must be an integer");
            return;
        }
        check_range(c, path, f, x);
        return;
    }
    case OSSE_FIELD_NUMBER:
        if (!json_is_number(v))
            problem(c, path, "must be a number");
        else
            check_range(c, path, f, json_number_value(v));
        return;
    case OSSE_FIELD_BOOLEAN:
        if (!json_is_boolean(v))
            problem(c, path, "must be true or false");
        return;
    case OSSE_FIELD_DATE: {
        const char *s = text_of(v);
        int64_t days;
        if (!s || osse_date_parse(s, &days) != 0)
            problem(c, path, "must be a date (YYYY-MM-DD)");
        return;
    }
    case OSSE_FIELD_ENUM: {
        const char *s = text_of(v);
        for (size_t i = 0; s && i < f->nvalues; i++)
            if (strcmp(s, f->values[i]) == 0)
                return;
        char list[300];
        size_t len = 0;
        list[0] = '\0';
        for (size_t i = 0; i < f->nvalues && len < sizeof list; i++)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "",
                                    f->values[i]);
        problem(c, path, "must be one of: %s", list);
        return;
    }
    case OSSE_FIELD_CITIZEN_ID: {
        const char *s = text_of(v);
        bool digits = s && strlen(s) == 13;
        for (size_t i = 0; digits && i < 13; i++)
            digits = s[i] >= '0' && s[i] <= '9';
        if (!digits)
            problem(c, path, "must be a citizen id of 13 digits");
        else if (!osse_citizen_id_valid(s))
            problem(c, path, "invalid check digit");
        return;
    }
    case OSSE_FIELD_FILE: {
        const char *s = text_of(v);
        if (!s || !*s || strlen(s) > 256)
            problem(c, path, "must be a file id");
        return;
    }
    }
}

int osse_wf_check_form(const osse_wf_t *wf, const json_t *form, bool partial, json_t *details)
{
    ctx_t c = {.details = details};
    char path[PATH_CAP];
    if (!json_is_object(form)) {
        problem(&c, "form", "must be an object");
        return OSSE_EINVAL;
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)form, key, v)
    {
        if (field_index(wf, key) < 0) {
            path_key(path, sizeof path, "form", key);
            problem(&c, path, "unknown field");
        }
    }
    for (size_t i = 0; i < wf->nfields; i++) {
        const osse_wf_field_t *f = &wf->fields[i];
        path_key(path, sizeof path, "form", f->name);
        v = json_object_get(form, f->name);
        /* An empty or blank string in a required text field is as good as
         * absent: portals send "" for an untouched input box, and "  " is no
         * business name. Given in a partial form, it would blank the field
         * out: refused too. */
        bool empty = f->type == OSSE_FIELD_STRING && f->required && json_is_string(v) &&
                     blank(json_string_value(v), json_string_length(v));
        if (empty) {
            problem(&c, path,
                    json_string_length(v) ? "is required (it holds only white space)"
                                          : "is required");
            continue;
        }
        if (!v || json_is_null(v)) {
            if (f->required && !partial)
                problem(&c, path, "is required");
            continue;
        }
        check_value(&c, path, f, v);
    }
    return c.problems ? OSSE_EINVAL : 0;
}
