/* yaml.c: YAML or JSON text -> one jansson tree (osse_wf_parse_text).
 *
 * libfyaml's event parser drives a small explicit stack of open containers;
 * each event becomes a jansson value attached to the container on top. The
 * stack never holds more than OSSE_WF_MAX_DEPTH frames, so hostile nesting
 * costs neither C stack nor memory beyond that bound.
 *
 * Why events rather than fy_document: events carry a position for every
 * node, so osse's own refusals (duplicate keys, aliases, non-string keys,
 * depth) report "line L, column C" like libfyaml's syntax errors do; the
 * stream is read once; and a second document in the stream is seen and
 * refused instead of silently ignored.
 *
 * Scalars follow the YAML 1.2 core schema: a plain scalar may be null, a
 * boolean, an integer (decimal, 0o octal, 0x hex) or a float; every quoted or
 * block scalar is a string. Since JSON is YAML, JSON text gives the same tree.
 * Infinities and NaN have no JSON form and are refused. Anchors (&a) are
 * ignored; aliases (*a) are refused outright, which also rules out
 * "billion laughs" expansion and aliases to nowhere. Of tags only !!str is
 * honoured (the scalar stays a string); others are ignored. */
#include <errno.h>
#include <inttypes.h>
#include <libfyaml.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workflows/workflow.h"
#include "workflows/wf_internal.h"
#include "common/alloc.h"
#include "common/utf8.h"

#define OSSE_WF_MAX_DEPTH 64

typedef struct frame_s {
    json_t *node;    /* object or array; owned by its parent, or by the parser when root */
    char *key;       /* mappings: the key waiting for its value, or NULL */
    size_t keylen;   /* length of key */
    char *path;      /* with positions only: this container's path */
    int kline, kcol; /* with positions only: where key is */
} frame_t;

typedef struct parse_s {
    frame_t stack[OSSE_WF_MAX_DEPTH];
    int depth;
    json_t *root;
    int docs;
    size_t nnodes; /* scalars (keys too), mappings and lists so far */
    osse_err_t *err;
    json_t *pos; /* path -> [line, column], or NULL when not asked */
} parse_t;

static int fail_at(parse_t *p, const struct fy_mark *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_at(parse_t *p, const struct fy_mark *m, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* libfyaml's marks count from 0; people count from 1. */
    int line = m && m->line >= 0 ? m->line + 1 : 1;
    int col = m && m->column >= 0 ? m->column + 1 : 1;
    return osse_err_set(p->err, OSSE_EPARSE, "line %d, column %d: %s", line, col, msg);
}

static bool is_digits(const char *s, size_t n, int base)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = base == 8 ? (c >= '0' && c <= '7')
                  : base == 16
                      ? ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
                      : (c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static bool is_one_of(const char *s, size_t n, const char *const *words)
{
    for (; *words; words++)
        if (strlen(*words) == n && memcmp(s, *words, n) == 0)
            return true;
    return false;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool is_core_float(const char *s, size_t n)
{
    size_t i = 0, mant = 0;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++, mant++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++, mant++;
    }
    if (mant == 0)
        return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            i++;
        size_t e = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++, e++;
        if (e == 0)
            return false;
    }
    return i == n;
}

/* Resolves a plain scalar by the core schema. Returns a new value or NULL
 * with the error set. */
static json_t *plain_scalar(parse_t *p, const struct fy_mark *m, const char *s, size_t n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    static const char *const infs[] = {".inf",  ".Inf",  ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
                                       "-.Inf", "-.INF", ".nan", ".NaN",  ".NAN",  NULL};
    if (is_one_of(s, n, nulls))
        return json_null();
    if (is_one_of(s, n, trues))
        return json_true();
    if (is_one_of(s, n, falses))
        return json_false();
    if (is_one_of(s, n, infs)) {
        fail_at(p, m, "infinity and NaN have no JSON form");
        return NULL;
    }
    char buf[128];
    int base = 0;
    const char *digits = s;
    size_t ndigits = n;
    if (n > 2 && s[0] == '0' && s[1] == 'o')
        base = 8, digits = s + 2, ndigits = n - 2;
    else if (n > 2 && s[0] == '0' && s[1] == 'x')
        base = 16, digits = s + 2, ndigits = n - 2;
    else {
        size_t off = (n > 0 && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
        if (is_digits(s + off, n - off, 10))
            base = 10, digits = s + off, ndigits = n - off;
    }
    if (base && is_digits(digits, ndigits, base)) {
        if (n >= sizeof buf) {
            fail_at(p, m, "integer out of range");
            return NULL;
        }
        memcpy(buf, s, n);
        buf[n] = '\0';
        errno = 0;
        char *end;
        json_t *v;
        if (base == 10) {
            long long x = strtoll(buf, &end, 10);
            v = errno ? NULL : json_integer(x);
        } else {
            unsigned long long x = strtoull(buf + 2, &end, base);
            v = (errno || x > INT64_MAX) ? NULL : json_integer((json_int_t)x);
        }
        if (!v)
            fail_at(p, m, "integer out of range");
        return v;
    }
    if (is_core_float(s, n)) {
        if (n >= sizeof buf) {
            fail_at(p, m, "number too long");
            return NULL;
        }
        memcpy(buf, s, n);
        buf[n] = '\0';
        double d = strtod(buf, NULL);
        json_t *v = isfinite(d) ? json_real(d) : NULL;
        if (!v)
            fail_at(p, m, "number out of range");
        return v;
    }
    json_t *v = json_stringn(s, n);
    if (!v)
        fail_at(p, m, "invalid UTF-8");
    return v;
}

/* With positions: records where the value about to join the container on
 * top of the stack is (a scalar's own mark, a container's key), and gives
 * its path to *path_out (malloc'd) when asked. */
static int note_position(parse_t *p, const struct fy_mark *m, bool container, char **path_out)
{
    char path[OSSE__WF_PATH_CAP];
    int line = m && m->line >= 0 ? m->line + 1 : 1, col = m && m->column >= 0 ? m->column + 1 : 1;
    if (p->depth == 0) {
        path[0] = '\0';
    } else {
        const frame_t *f = &p->stack[p->depth - 1];
        if (json_is_array(f->node)) {
            osse__wf_path_index(path, sizeof path, f->path, json_array_size(f->node));
        } else {
            osse__wf_path_key(path, sizeof path, f->path, f->key);
            if (container)
                line = f->kline, col = f->kcol;
        }
    }
    if (path_out && !(*path_out = osse_strdup(path)))
        return osse_err_set(p->err, OSSE_ENOMEM, "out of memory");
    /* The first place wins: a cut long key may repeat a path. */
    if (p->depth > 0 && !json_object_get(p->pos, path) &&
        json_object_set_new(p->pos, path, json_pack("[i,i]", line, col)))
        return osse_err_set(p->err, OSSE_ENOMEM, "out of memory");
    return 0;
}

/* Attaches a new value v (reference stolen) to the container on top of the
 * stack, or makes it the root. */
static int attach(parse_t *p, const struct fy_mark *m, json_t *v)
{
    if (p->depth == 0) {
        if (p->root) {
            json_decref(v);
            return fail_at(p, m, "unexpected second root value");
        }
        p->root = v;
        return 0;
    }
    frame_t *f = &p->stack[p->depth - 1];
    if (json_is_array(f->node)) {
        if (json_array_append_new(f->node, v))
            return osse_err_set(p->err, OSSE_ENOMEM, "out of memory");
        return 0;
    }
    /* The key was checked for duplicates when it was read. */
    int rc = json_object_setn_new(f->node, f->key, f->keylen, v);
    free(f->key);
    f->key = NULL;
    if (rc)
        return osse_err_set(p->err, OSSE_ENOMEM, "out of memory");
    return 0;
}

/* True when the top of the stack is a mapping waiting for a key. */
static bool wants_key(const parse_t *p)
{
    if (p->depth == 0)
        return false;
    const frame_t *f = &p->stack[p->depth - 1];
    return json_is_object(f->node) && f->key == NULL;
}

/* Bounds the text's work: libfyaml takes about 0.3 to 1 µs a node, so 1 MiB
 * of "1," took 165 ms and of "k1: 1" lines 130 ms. */
static int count_node(parse_t *p, const struct fy_mark *m)
{
    if (++p->nnodes <= OSSE_WF_MAX_TEXT_NODES)
        return 0;
    return fail_at(p, m, "more than %d keys and values: too large for a definition",
                   OSSE_WF_MAX_TEXT_NODES);
}

static int on_scalar(parse_t *p, struct fy_event *e, const struct fy_mark *m)
{
    int rc = count_node(p, m);
    if (rc)
        return rc;
    size_t n = 0;
    const char *s = fy_token_get_text(e->scalar.value, &n);
    if (!s)
        return osse_err_set(p->err, OSSE_ENOMEM, "out of memory");
    bool plain = fy_token_scalar_style(e->scalar.value) == FYSS_PLAIN;
    /* `!!str 1.0` asks for a string: honour it as quoting would. */
    if (e->scalar.tag) {
        size_t tn = 0;
        const char *tag = fy_token_get_text(e->scalar.tag, &tn);
        if (tag && tn == strlen("tag:yaml.org,2002:str") &&
            memcmp(tag, "tag:yaml.org,2002:str", tn) == 0)
            plain = false;
    }
    if (memchr(s, '\0', n))
        return fail_at(p, m, "NUL characters are not allowed");
    if (wants_key(p)) {
        frame_t *f = &p->stack[p->depth - 1];
        if (plain) {
            /* A plain key that the core schema reads as null, a boolean or a
             * number is not a string: refuse it rather than guess. */
            json_t *k = plain_scalar(p, m, s, n);
            if (!k)
                return OSSE_EPARSE;
            bool str = json_is_string(k);
            json_decref(k);
            if (!str)
                return fail_at(p, m, "mapping key \"%.*s\" is not a string (quote it)",
                               (int)(n > 64 ? 64 : n), s);
        }
        /* Keys must be valid UTF-8 to be JSON keys. */
        json_t *ks = json_stringn(s, n);
        if (!ks)
            return fail_at(p, m, "invalid UTF-8 in key");
        json_decref(ks);
        char *key = osse_malloc(n + 1);
        if (!key)
            return osse_err_set(p->err, OSSE_ENOMEM, "out of memory");
        memcpy(key, s, n);
        key[n] = '\0';
        if (json_object_getn(f->node, key, n)) {
            rc = fail_at(p, m, "duplicate key \"%.*s\"", (int)(n > 64 ? 64 : n), s);
            free(key);
            return rc;
        }
        f->key = key;
        f->keylen = n;
        f->kline = m && m->line >= 0 ? m->line + 1 : 1;
        f->kcol = m && m->column >= 0 ? m->column + 1 : 1;
        return 0;
    }
    json_t *v = plain ? plain_scalar(p, m, s, n) : json_stringn(s, n);
    if (!v)
        return plain ? OSSE_EPARSE : fail_at(p, m, "invalid UTF-8");
    rc = p->pos ? note_position(p, m, false, NULL) : 0;
    if (rc) {
        json_decref(v);
        return rc;
    }
    return attach(p, m, v);
}

static int on_start(parse_t *p, bool mapping, const struct fy_mark *m)
{
    if (wants_key(p))
        return fail_at(p, m, "mapping keys must be strings, not %s",
                       mapping ? "mappings" : "lists");
    if (p->depth == 0 && !mapping)
        return fail_at(p, m, "a definition must be a mapping, not a list");
    if (p->depth >= OSSE_WF_MAX_DEPTH)
        return fail_at(p, m, "nesting deeper than %d levels", OSSE_WF_MAX_DEPTH);
    int rc = count_node(p, m);
    if (rc)
        return rc;
    json_t *v = mapping ? json_object() : json_array();
    if (!v)
        return osse_err_set(p->err, OSSE_ENOMEM, "out of memory");
    char *path = NULL;
    rc = p->pos ? note_position(p, m, true, &path) : 0;
    if (rc) {
        json_decref(v);
        return rc;
    }
    /* Attach first so that the tree owns v whatever happens next; a jansson
     * container stays valid while its parent holds it. */
    rc = attach(p, m, v);
    if (rc) {
        free(path);
        return rc;
    }
    p->stack[p->depth++] = (frame_t){.node = v, .path = path};
    return 0;
}

/* Takes the first error libfyaml collected, with its position. */
static int syntax_error(parse_t *p, struct fy_diag *diag)
{
    void *it = NULL;
    struct fy_diag_error *de;
    while ((de = fy_diag_errors_iterate(diag, &it)) != NULL) {
        if (de->type < FYET_ERROR)
            continue;
        /* Collected errors already count lines and columns from 1. */
        return osse_err_set(p->err, OSSE_EPARSE, "line %d, column %d: %s",
                            de->line > 0 ? de->line : 1, de->column > 0 ? de->column : 1,
                            de->msg ? de->msg : "syntax error");
    }
    return osse_err_set(p->err, OSSE_EPARSE, "syntax error");
}

static void diag_silent(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
    /* Errors are collected and reported through osse_err_t; nothing is printed. */
}

static int parse(const char *text, size_t len, json_t **out, json_t *pos, osse_err_t *err)
{
    int rc = 0;
    parse_t p = {.err = err, .pos = pos};
    struct fy_diag *diag = NULL;
    struct fy_parser *fyp = NULL;
    struct fy_event *e = NULL;
    *out = NULL;
    /* libfyaml 0.7.12 loops forever on some bytes that are not UTF-8 (a
     * directive line "%\xff", found by fuzz_definition): it never sees them. */
    if (!osse_utf8_valid(text, len))
        return osse_err_set(err, OSSE_EPARSE, "line 1, column 1: the text is not UTF-8");

    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = diag_silent;
    dcfg.colorize = false;
    diag = fy_diag_create(&dcfg);
    if (!diag) {
        rc = osse_err_set(err, OSSE_ENOMEM, "out of memory");
        goto out;
    }
    fy_diag_set_collect_errors(diag, true);
    struct fy_parse_cfg pcfg = {.flags = FYPCF_QUIET | FYPCF_JSON_NONE, .diag = diag};
    fyp = fy_parser_create(&pcfg);
    if (!fyp || fy_parser_set_string(fyp, text, len) != 0) {
        rc = osse_err_set(err, OSSE_ENOMEM, "out of memory");
        goto out;
    }
    for (;;) {
        e = fy_parser_parse(fyp);
        if (!e) {
            if (fy_parser_get_stream_error(fyp) || fy_diag_got_error(diag)) {
                rc = syntax_error(&p, diag);
                goto out;
            }
            break;
        }
        const struct fy_mark *m = fy_event_start_mark(e);
        switch (e->type) {
        case FYET_DOCUMENT_START:
            if (++p.docs > 1) {
                rc = fail_at(&p, m, "only one document is allowed");
                goto out;
            }
            break;
        case FYET_ALIAS: rc = fail_at(&p, m, "aliases (*name) are not supported"); goto out;
        case FYET_SCALAR:
            if (p.depth == 0) {
                rc = fail_at(&p, m, "a definition must be a mapping, not a scalar");
                goto out;
            }
            rc = on_scalar(&p, e, m);
            break;
        case FYET_MAPPING_START:
        case FYET_SEQUENCE_START: rc = on_start(&p, e->type == FYET_MAPPING_START, m); break;
        case FYET_MAPPING_END:
        case FYET_SEQUENCE_END:
            if (p.depth > 0)
                free(p.stack[--p.depth].path);
            break;
        default: break;
        }
        fy_parser_event_free(fyp, e);
        e = NULL;
        if (rc)
            goto out;
    }
    if (!p.root) {
        rc = osse_err_set(err, OSSE_EPARSE, "line 1, column 1: the document is empty");
        goto out;
    }
    *out = p.root;
    p.root = NULL;
out:
    if (e)
        fy_parser_event_free(fyp, e);
    for (int i = 0; i < p.depth; i++) {
        free(p.stack[i].key);
        free(p.stack[i].path);
    }
    json_decref(p.root);
    if (fyp)
        fy_parser_destroy(fyp);
    if (diag)
        fy_diag_destroy(diag);
    return rc;
}

int osse_wf_parse_text(const char *text, size_t len, json_t **out, osse_err_t *err)
{
    return parse(text, len, out, NULL, err);
}

int osse_wf_parse_text_pos(const char *text, size_t len, json_t **out, json_t **positions,
                           osse_err_t *err)
{
    json_t *pos = json_object();
    *positions = NULL;
    if (!pos) {
        *out = NULL;
        return osse_err_set(err, OSSE_ENOMEM, "out of memory");
    }
    int rc = parse(text, len, out, pos, err);
    if (rc)
        json_decref(pos);
    else
        *positions = pos;
    return rc;
}

void osse_wf_position(const json_t *positions, const char *path, int *line, int *column)
{
    char buf[OSSE__WF_PATH_CAP];
    snprintf(buf, sizeof buf, "%s", path ? path : "");
    *line = *column = 1;
    for (;;) {
        const json_t *at = json_object_get(positions, buf);
        if (at) {
            *line = (int)json_integer_value(json_array_get(at, 0));
            *column = (int)json_integer_value(json_array_get(at, 1));
            return;
        }
        /* Not in the text (a missing key): the nearest enclosing node. */
        char *dot = strrchr(buf, '.'), *br = strrchr(buf, '[');
        char *cut = dot > br ? dot : br;
        if (!cut)
            return;
        *cut = '\0';
    }
}
