/* expr.c: lexer, Pratt parser, static checker and evaluator of the rule
 * language (SPEC §2 "Expressions"; semantics summarised in expr.h).
 *
 * Invariant: an osse_expr_t is immutable after osse_expr_parse returns. All
 * of its nodes and decoded string literals live in one arena owned by it, so
 * freeing is one walk over a block list and evaluation may run on several
 * threads at once.
 *
 * Why this way: the input is untrusted definition text, so every loop is
 * bounded by the text, every recursion by OSSE_EXPR_MAX_NESTING (parser) or
 * OSSE_EXPR_MAX_HEIGHT (checker and evaluator walk the AST), and the
 * evaluator caps what it builds (string and list results). Values are
 * jansson values all the way through: that is what the engine records in
 * events, so what the rule saw and what the log says cannot drift apart.
 * Numbers are parsed with strtod_l in the "C" locale, never the process's. */
#define _GNU_SOURCE /* strtod_l, newlocale, memmem */
#include "workflows/expr.h"
#include "common/alloc.h"

#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Results the evaluator may build: a rule has no loops, but `s + s + s...`
 * over a large input could still grow without this. */
#define EXPR_MAX_STRING (1u << 20)
#define EXPR_MAX_LIST 65536u

/* ---------------------------------------------------------------- arena */

typedef struct block_s {
    struct block_s *next;
    size_t used, cap;
    char data[]; /* 8-aligned: the header is three 8-byte words */
} block_t;

typedef enum {
    N_NULL,
    N_BOOL,
    N_INT,
    N_REAL,
    N_STR,
    N_PATH,
    N_LIST,
    N_CALL,
    N_NEG,
    N_NOT,
    N_BIN,
    N_AND,
    N_OR,
    N_COND,
    N_COALESCE /* a ?? b */
} nkind_t;

typedef struct node_s node_t;
struct node_s {
    uint8_t kind;      /* nkind_t */
    uint8_t op;        /* N_BIN: operator token; N_CALL: function index or FN_UNKNOWN */
    uint8_t paren;     /* written inside parentheses: `??` may not mix with && || without */
    uint16_t height;   /* 1 for leaves */
    uint32_t off;      /* byte offset of the node's token, for columns */
    uint32_t nkids;    /* N_LIST, N_CALL */
    node_t *a, *b, *c; /* operands; N_LIST/N_CALL: first element in a */
    node_t *next;      /* next element of a list or argument list */
    union {
        int64_t i;
        double d;
        bool b;
        struct {
            const char *p; /* N_STR: decoded bytes; N_PATH, N_CALL: NUL-terminated name */
            size_t n;
        } s;
    } v;
};

struct osse_expr_s {
    block_t *blocks;
    node_t *root;
    char *text; /* NUL-terminated copy */
    size_t len;
};

static void *arena_alloc(osse_expr_t *e, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    block_t *b = e->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 4000 ? n : 4000;
        b = osse_malloc(sizeof *b + cap);
        b->next = e->blocks;
        b->used = 0;
        b->cap = cap;
        e->blocks = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

void osse_expr_free(osse_expr_t *e)
{
    if (!e)
        return;
    block_t *b = e->blocks;
    while (b) {
        block_t *next = b->next;
        free(b);
        b = next;
    }
    free(e->text);
    free(e);
}

const char *osse_expr_text(const osse_expr_t *e)
{
    return e->text;
}

const char *osse_expr_type_name(osse_expr_type_t t)
{
    switch (t) {
#define X(n, s)                                                                                    \
    case OSSE_EXPR_##n: return s;
        OSSE_EXPR_TYPES(X)
#undef X
    }
    return "?";
}

osse_expr_type_t osse_expr_type_of_field(const char *spec_type)
{
    static const struct {
        const char *name;
        osse_expr_type_t type;
    } map[] = {
        {"string", OSSE_EXPR_STRING},     {"integer", OSSE_EXPR_INTEGER},
        {"number", OSSE_EXPR_NUMBER},     {"boolean", OSSE_EXPR_BOOLEAN},
        {"date", OSSE_EXPR_STRING},       {"enum", OSSE_EXPR_STRING},
        {"citizen_id", OSSE_EXPR_STRING}, {"file", OSSE_EXPR_STRING},
    };
    if (!spec_type)
        return OSSE_EXPR_ANY;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].name, spec_type) == 0)
            return map[i].type;
    return OSSE_EXPR_ANY;
}

/* ------------------------------------------------------ text helpers */

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}
static bool is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool is_name(int c)
{
    return is_alpha(c) || is_digit(c);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. Rejects
 * overlong forms, surrogates and code points past U+10FFFF, as jansson does. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c < 0xE0) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c < 0xF0) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c < 0xF5) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return len;
}

static size_t utf8_put(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* 1-based column in code points: what an editor shows for a one-line rule. */
static int column_of(const char *s, size_t off)
{
    int col = 1;
    for (size_t i = 0; i < off; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            col++;
    return col;
}

/* ------------------------------------------------------------- lexer */

typedef enum {
    T_EOF,
    T_INT,
    T_REAL,
    T_STR,
    T_NAME,
    T_TRUE,
    T_FALSE,
    T_NULL,
    T_IN,
    T_LPAREN,
    T_RPAREN,
    T_LBRACK,
    T_RBRACK,
    T_COMMA,
    T_QUEST,
    T_NULLISH, /* ?? */
    T_COLON,
    T_OR,
    T_AND,
    T_EQ,
    T_NE,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_PLUS,
    T_MINUS,
    T_STAR,
    T_SLASH,
    T_PERCENT,
    T_NOT
} tkind_t;

static const char *op_text(int op)
{
    switch (op) {
    case T_OR: return "||";
    case T_AND: return "&&";
    case T_EQ: return "==";
    case T_NE: return "!=";
    case T_LT: return "<";
    case T_LE: return "<=";
    case T_GT: return ">";
    case T_GE: return ">=";
    case T_PLUS: return "+";
    case T_MINUS: return "-";
    case T_STAR: return "*";
    case T_SLASH: return "/";
    case T_PERCENT: return "%";
    case T_IN: return "in";
    case T_NOT: return "!";
    case T_NULLISH: return "??";
    default: return "?";
    }
}

typedef struct {
    tkind_t kind;
    size_t off, end;
    int64_t i;
    double d;
    const char *sp; /* T_STR: decoded bytes in the arena; T_NAME: slice of the text */
    size_t sn;
} tok_t;

typedef struct {
    osse_expr_t *e;
    const char *s;
    size_t len, pos;
    tok_t tok;
    int depth;
    int code; /* 0 until the first error */
    size_t err_off;
    char msg[256];
    locale_t cloc;
} parser_t;

__attribute__((format(printf, 3, 4))) static void fail(parser_t *p, size_t off, const char *fmt,
                                                       ...)
{
    if (p->code)
        return; /* keep the first error: later ones are usually its echoes */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->msg, sizeof p->msg, fmt, ap);
    va_end(ap);
    p->code = OSSE_EPARSE;
    p->err_off = off;
}

static void fail_nomem(parser_t *p)
{
    if (p->code)
        return;
    snprintf(p->msg, sizeof p->msg, "out of memory");
    p->code = OSSE_ENOMEM;
    p->err_off = 0;
}

static void lex_number(parser_t *p, tok_t *t)
{
    const char *s = p->s;
    size_t n = p->len, i = t->off;
    bool real = false;
    while (i < n && is_digit(s[i]))
        i++;
    if (i + 1 < n && s[i] == '.' && is_digit(s[i + 1])) {
        real = true;
        i++;
        while (i < n && is_digit(s[i]))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < n && (s[j] == '+' || s[j] == '-'))
            j++;
        if (j >= n || !is_digit(s[j])) {
            fail(p, i, "malformed exponent in number");
            return;
        }
        real = true;
        i = j;
        while (i < n && is_digit(s[i]))
            i++;
    }
    if (i < n && is_alpha(s[i])) {
        fail(p, i, "unexpected letter after number");
        return;
    }
    t->end = i;
    if (!real) {
        int64_t v = 0;
        for (size_t k = t->off; k < i; k++) {
            if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, s[k] - '0', &v)) {
                fail(p, t->off, "integer literal too large");
                return;
            }
        }
        t->kind = T_INT;
        t->i = v;
        return;
    }
    /* strtod needs a NUL-terminated copy; the literal is within the text cap. */
    char buf[OSSE_EXPR_MAX_TEXT + 1];
    size_t len = i - t->off;
    memcpy(buf, s + t->off, len);
    buf[len] = '\0';
    if (!p->cloc) {
        p->cloc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
        if (!p->cloc) {
            fail_nomem(p);
            return;
        }
    }
    double d = strtod_l(buf, NULL, p->cloc);
    if (!isfinite(d)) {
        fail(p, t->off, "number literal out of range");
        return;
    }
    t->kind = T_REAL;
    t->d = d;
}

static int hex4(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        int c = (unsigned char)s[k], h;
        if (c >= '0' && c <= '9')
            h = c - '0';
        else if (c >= 'a' && c <= 'f')
            h = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            h = c - 'A' + 10;
        else
            return -1;
        v = v << 4 | (uint32_t)h;
    }
    *out = v;
    return 0;
}

static void lex_string(parser_t *p, tok_t *t)
{
    const char *s = p->s;
    size_t n = p->len, i = t->off + 1;
    char q = s[t->off];
    /* Find the end first, so the arena gets only what the literal needs. */
    size_t j = i;
    while (j < n && s[j] != q)
        j += s[j] == '\\' ? 2 : 1;
    if (j >= n) {
        fail(p, t->off, "unterminated string");
        return;
    }
    char *out = arena_alloc(p->e, j - i + 1);
    if (!out) {
        fail_nomem(p);
        return;
    }
    size_t o = 0;
    while (i < j) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\') {
            char x = s[i + 1]; /* i + 1 < j: the scan above stepped over it */
            switch (x) {
            case '\\':
                out[o++] = '\\';
                i += 2;
                continue;
            case '\'':
                out[o++] = '\'';
                i += 2;
                continue;
            case '"':
                out[o++] = '"';
                i += 2;
                continue;
            case '/':
                out[o++] = '/';
                i += 2;
                continue;
            case 'n':
                out[o++] = '\n';
                i += 2;
                continue;
            case 't':
                out[o++] = '\t';
                i += 2;
                continue;
            case 'r':
                out[o++] = '\r';
                i += 2;
                continue;
            case 'u': {
                uint32_t cp, lo;
                if (j - i < 6 || hex4(s + i + 2, &cp) < 0) {
                    fail(p, i, "\\u needs four hex digits");
                    return;
                }
                size_t used = 6;
                if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    fail(p, i, "lone low surrogate in \\u escape");
                    return;
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (j - i < 12 || s[i + 6] != '\\' || s[i + 7] != 'u' ||
                        hex4(s + i + 8, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF) {
                        fail(p, i, "high surrogate not followed by a low one");
                        return;
                    }
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    used = 12;
                }
                if (cp == 0) {
                    fail(p, i, "\\u0000 is not allowed");
                    return;
                }
                /* An escape is at least as long as its UTF-8 encoding, so
                 * out cannot overrun what the literal's raw bytes reserved. */
                o += utf8_put(out + o, cp);
                i += used;
                continue;
            }
            default: fail(p, i, "unknown escape in string"); return;
            }
        }
        if (c == 0) {
            fail(p, i, "NUL byte in string");
            return;
        }
        size_t k = utf8_seq((const unsigned char *)s + i, j - i);
        if (k == 0) {
            fail(p, i, "invalid UTF-8 in string");
            return;
        }
        memcpy(out + o, s + i, k);
        o += k;
        i += k;
    }
    out[o] = '\0';
    t->kind = T_STR;
    t->sp = out;
    t->sn = o;
    t->end = j + 1;
}

static void lex_name(parser_t *p, tok_t *t)
{
    const char *s = p->s;
    size_t n = p->len, i = t->off;
    while (i < n && is_name(s[i]))
        i++;
    while (i < n && s[i] == '.') {
        if (i + 1 >= n || !is_name(s[i + 1])) {
            fail(p, i, "expected a name after '.'");
            return;
        }
        i++;
        while (i < n && is_name(s[i]))
            i++;
    }
    t->kind = T_NAME;
    t->sp = s + t->off;
    t->sn = i - t->off;
    t->end = i;
    static const struct {
        const char *w;
        tkind_t k;
    } kw[] = {{"true", T_TRUE}, {"false", T_FALSE}, {"null", T_NULL}, {"in", T_IN}};
    for (size_t k = 0; k < sizeof kw / sizeof kw[0]; k++)
        if (t->sn == strlen(kw[k].w) && memcmp(t->sp, kw[k].w, t->sn) == 0)
            t->kind = kw[k].k;
}

/* Reads the next token into p->tok. After an error the token is T_EOF, so
 * every parsing loop ends. */
static void next(parser_t *p)
{
    const char *s = p->s;
    size_t n = p->len, i = p->pos;
    tok_t *t = &p->tok;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    memset(t, 0, sizeof *t);
    t->off = i;
    t->end = i;
    t->kind = T_EOF;
    if (p->code || i >= n) {
        p->pos = i;
        return;
    }
    unsigned char c = (unsigned char)s[i];
    char c1 = i + 1 < n ? s[i + 1] : '\0';
    if (is_digit(c)) {
        lex_number(p, t);
    } else if (is_alpha(c)) {
        lex_name(p, t);
    } else if (c == '"' || c == '\'') {
        lex_string(p, t);
    } else {
        static const struct {
            char a, b;
            tkind_t k;
        } ops[] = {
            {'?', '?', T_NULLISH}, {'|', '|', T_OR},   {'&', '&', T_AND},  {'=', '=', T_EQ},
            {'!', '=', T_NE},      {'<', '=', T_LE},   {'>', '=', T_GE},   {'(', 0, T_LPAREN},
            {')', 0, T_RPAREN},    {'[', 0, T_LBRACK}, {']', 0, T_RBRACK}, {',', 0, T_COMMA},
            {'?', 0, T_QUEST},     {':', 0, T_COLON},  {'<', 0, T_LT},     {'>', 0, T_GT},
            {'+', 0, T_PLUS},      {'-', 0, T_MINUS},  {'*', 0, T_STAR},   {'/', 0, T_SLASH},
            {'%', 0, T_PERCENT},   {'!', 0, T_NOT},
        };
        for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
            if (ops[k].a == (char)c && (ops[k].b == 0 || ops[k].b == c1)) {
                t->kind = ops[k].k;
                t->end = i + (ops[k].b ? 2 : 1);
                break;
            }
        }
        if (t->end == i) {
            if (c == '=')
                fail(p, i, "unexpected '=': use '==' to compare");
            else if (c == '&')
                fail(p, i, "unexpected '&': use '&&'");
            else if (c == '|')
                fail(p, i, "unexpected '|': use '||'");
            else if (c > 0x20 && c < 0x7F)
                fail(p, i, "unexpected character '%c'", c);
            else
                fail(p, i, "unexpected byte 0x%02x", c);
        }
    }
    if (p->code) {
        memset(t, 0, sizeof *t);
        t->kind = T_EOF;
        t->off = t->end = i;
        p->pos = n;
        return;
    }
    p->pos = t->end;
}

/* ------------------------------------------------------------ parser */

static const struct {
    const char *name;
    unsigned min, max;
} fns[] = {
    {"len", 1, 1},      {"lower", 1, 1},       {"upper", 1, 1},
    {"contains", 2, 2}, {"starts_with", 2, 2}, {"round", 1, 2},
};
enum { FN_LEN, FN_LOWER, FN_UPPER, FN_CONTAINS, FN_STARTS_WITH, FN_ROUND, FN_UNKNOWN = 0xFF };

static node_t *mk(parser_t *p, nkind_t kind, size_t off)
{
    node_t *n = arena_alloc(p->e, sizeof *n);
    if (!n) {
        fail_nomem(p);
        return NULL;
    }
    memset(n, 0, sizeof *n);
    n->kind = (uint8_t)kind;
    n->off = (uint32_t)off;
    n->height = 1;
    return n;
}

/* Sets n's height from its children; false (with an error) past the cap. */
static bool set_height(parser_t *p, node_t *n)
{
    unsigned h = 0;
    node_t *kids[3] = {n->a, n->b, n->c};
    if (n->kind == N_LIST || n->kind == N_CALL) {
        for (node_t *k = n->a; k; k = k->next)
            if (k->height > h)
                h = k->height;
    } else {
        for (int k = 0; k < 3; k++)
            if (kids[k] && kids[k]->height > h)
                h = kids[k]->height;
    }
    if (h + 1 > OSSE_EXPR_MAX_HEIGHT) {
        fail(p, n->off, "expression too deeply nested (more than %d levels)", OSSE_EXPR_MAX_HEIGHT);
        return false;
    }
    n->height = (uint16_t)(h + 1);
    return true;
}

static bool enter(parser_t *p)
{
    if (++p->depth > OSSE_EXPR_MAX_NESTING) {
        fail(p, p->tok.off, "nesting deeper than %d", OSSE_EXPR_MAX_NESTING);
        return false;
    }
    return true;
}

static void describe(const tok_t *t, const char *s, char *buf, size_t cap)
{
    switch (t->kind) {
    case T_EOF: snprintf(buf, cap, "end of expression"); return;
    case T_INT:
    case T_REAL: snprintf(buf, cap, "number"); return;
    case T_STR: snprintf(buf, cap, "string"); return;
    default: {
        size_t n = t->end - t->off;
        snprintf(buf, cap, "'%.*s'", (int)(n > 40 ? 40 : n), s + t->off);
        return;
    }
    }
}

static void fail_unexpected(parser_t *p, const char *wanted)
{
    char d[64];
    describe(&p->tok, p->s, d, sizeof d);
    if (wanted)
        fail(p, p->tok.off, "expected %s, found %s", wanted, d);
    else
        fail(p, p->tok.off, "unexpected %s", d);
}

static node_t *parse_expr(parser_t *p, int min_bp);

static bool next_is_lparen(const parser_t *p)
{
    size_t i = p->pos;
    while (i < p->len && (p->s[i] == ' ' || p->s[i] == '\t' || p->s[i] == '\n' || p->s[i] == '\r'))
        i++;
    return i < p->len && p->s[i] == '(';
}

/* Parses "elem, elem, ... close" after the opening token; links the
 * elements under n->a. */
static bool parse_items(parser_t *p, node_t *n, tkind_t close, const char *wanted)
{
    node_t **tail = &n->a;
    if (p->tok.kind == close) {
        next(p);
        return true;
    }
    for (;;) {
        node_t *el = parse_expr(p, 0);
        if (!el)
            return false;
        *tail = el;
        tail = &el->next;
        n->nkids++;
        if (p->tok.kind == T_COMMA) {
            next(p);
            continue;
        }
        if (p->tok.kind != close) {
            fail_unexpected(p, wanted);
            return false;
        }
        next(p);
        return set_height(p, n);
    }
}

static node_t *parse_name(parser_t *p)
{
    tok_t t = p->tok;
    const char *dot = memchr(t.sp, '.', t.sn);
    bool call = next_is_lparen(p);
    if (!dot && call) {
        node_t *n = mk(p, N_CALL, t.off);
        char *name = n ? arena_alloc(p->e, t.sn + 1) : NULL;
        if (!name) {
            fail_nomem(p);
            return NULL;
        }
        memcpy(name, t.sp, t.sn);
        name[t.sn] = '\0';
        n->v.s.p = name;
        n->v.s.n = t.sn;
        n->op = FN_UNKNOWN;
        for (size_t k = 0; k < sizeof fns / sizeof fns[0]; k++)
            if (strcmp(fns[k].name, name) == 0)
                n->op = (uint8_t)k;
        next(p); /* the name */
        next(p); /* '(' */
        if (!enter(p))
            return NULL;
        bool ok = parse_items(p, n, T_RPAREN, "',' or ')'");
        p->depth--;
        return ok ? n : NULL;
    }
    size_t seg0 = dot ? (size_t)(dot - t.sp) : t.sn;
    bool root_ok = (seg0 == 4 && memcmp(t.sp, "form", 4) == 0) ||
                   (seg0 == 4 && memcmp(t.sp, "data", 4) == 0) ||
                   (seg0 == 7 && memcmp(t.sp, "request", 7) == 0);
    int shown = t.sn > 60 ? 60 : (int)t.sn;
    if (call) {
        fail(p, t.off, "'%.*s' is not a function", shown, t.sp);
        return NULL;
    }
    if (!dot) {
        if (root_ok)
            fail(p, t.off, "incomplete path '%.*s': expected %.*s.<name>", shown, t.sp, shown,
                 t.sp);
        else
            fail(p, t.off, "unknown name '%.*s' (paths start with form., data. or request.)", shown,
                 t.sp);
        return NULL;
    }
    if (!root_ok) {
        fail(p, t.off, "path '%.*s' must start with form, data or request", shown, t.sp);
        return NULL;
    }
    node_t *n = mk(p, N_PATH, t.off);
    char *path = n ? arena_alloc(p->e, t.sn + 1) : NULL;
    if (!path) {
        fail_nomem(p);
        return NULL;
    }
    memcpy(path, t.sp, t.sn);
    path[t.sn] = '\0';
    n->v.s.p = path;
    n->v.s.n = t.sn;
    next(p);
    return n;
}

static node_t *parse_primary(parser_t *p)
{
    tok_t t = p->tok;
    node_t *n = NULL;
    switch (t.kind) {
    case T_INT:
        if ((n = mk(p, N_INT, t.off)))
            n->v.i = t.i;
        break;
    case T_REAL:
        if ((n = mk(p, N_REAL, t.off)))
            n->v.d = t.d;
        break;
    case T_STR:
        if ((n = mk(p, N_STR, t.off))) {
            n->v.s.p = t.sp;
            n->v.s.n = t.sn;
        }
        break;
    case T_TRUE:
    case T_FALSE:
        if ((n = mk(p, N_BOOL, t.off)))
            n->v.b = t.kind == T_TRUE;
        break;
    case T_NULL: n = mk(p, N_NULL, t.off); break;
    case T_NAME: return parse_name(p);
    case T_LPAREN: {
        next(p);
        node_t *inner = parse_expr(p, 0);
        if (!inner)
            return NULL;
        if (p->tok.kind != T_RPAREN) {
            fail_unexpected(p, "')'");
            return NULL;
        }
        next(p);
        inner->paren = 1;
        return inner;
    }
    case T_LBRACK: {
        n = mk(p, N_LIST, t.off);
        if (!n)
            return NULL;
        next(p);
        if (!enter(p))
            return NULL;
        bool ok = parse_items(p, n, T_RBRACK, "',' or ']'");
        p->depth--;
        return ok ? n : NULL;
    }
    default: fail_unexpected(p, "a value"); return NULL;
    }
    if (n)
        next(p);
    return n;
}

static node_t *parse_unary(parser_t *p)
{
    if (p->tok.kind != T_NOT && p->tok.kind != T_MINUS)
        return parse_primary(p);
    tok_t t = p->tok;
    if (!enter(p))
        return NULL;
    next(p);
    node_t *operand = parse_unary(p);
    p->depth--;
    if (!operand)
        return NULL;
    node_t *n = mk(p, t.kind == T_NOT ? N_NOT : N_NEG, t.off);
    if (!n)
        return NULL;
    n->a = operand;
    return set_height(p, n) ? n : NULL;
}

/* Binding powers, lowest first; 0 means "not an infix operator". `??` sits
 * between `?:` and `||`, as in C# and JavaScript. */
static int lbp(tkind_t k)
{
    switch (k) {
    case T_QUEST: return 1;
    case T_NULLISH: return 2;
    case T_OR: return 3;
    case T_AND: return 4;
    case T_EQ:
    case T_NE: return 5;
    case T_LT:
    case T_LE:
    case T_GT:
    case T_GE: return 6;
    case T_IN: return 7;
    case T_PLUS:
    case T_MINUS: return 8;
    case T_STAR:
    case T_SLASH:
    case T_PERCENT: return 9;
    default: return 0;
    }
}

/* An operand of `??` that is an unparenthesized && or ||: JavaScript refuses
 * `a || b ?? c` because readers disagree on what it means; so does osse. */
static bool mixes_logic(const node_t *n)
{
    return n && !n->paren && (n->kind == N_AND || n->kind == N_OR);
}

static node_t *parse_expr(parser_t *p, int min_bp)
{
    if (!enter(p))
        return NULL;
    node_t *lhs = parse_unary(p);
    while (lhs) {
        tok_t t = p->tok;
        int bp = lbp(t.kind);
        if (bp == 0 || bp <= min_bp)
            break;
        next(p);
        node_t *n;
        if (t.kind == T_QUEST) {
            /* Right-associative: a ? b : c ? d : e is a ? b : (c ? d : e). */
            node_t *mid = parse_expr(p, 0);
            if (!mid) {
                lhs = NULL;
                break;
            }
            if (p->tok.kind != T_COLON) {
                fail_unexpected(p, "':'");
                lhs = NULL;
                break;
            }
            next(p);
            node_t *rhs = parse_expr(p, 0);
            n = rhs ? mk(p, N_COND, t.off) : NULL;
            if (n) {
                n->a = lhs;
                n->b = mid;
                n->c = rhs;
            }
        } else if (t.kind == T_NULLISH) {
            /* Right-associative: a ?? b ?? c is a ?? (b ?? c). */
            node_t *rhs = parse_expr(p, bp - 1);
            if (rhs && (mixes_logic(lhs) || mixes_logic(rhs))) {
                fail(p, t.off, "'?\?' cannot be mixed with '%s' without parentheses",
                     op_text(mixes_logic(lhs) ? lhs->op : rhs->op));
                rhs = NULL;
            }
            n = rhs ? mk(p, N_COALESCE, t.off) : NULL;
            if (n) {
                n->a = lhs;
                n->b = rhs;
            }
        } else {
            node_t *rhs = parse_expr(p, bp);
            nkind_t kind = t.kind == T_AND ? N_AND : t.kind == T_OR ? N_OR : N_BIN;
            n = rhs ? mk(p, kind, t.off) : NULL;
            if (n) {
                n->op = (uint8_t)t.kind;
                n->a = lhs;
                n->b = rhs;
            }
        }
        lhs = n && set_height(p, n) ? n : NULL;
    }
    p->depth--;
    return lhs;
}

int osse_expr_parse(const char *text, size_t len, osse_expr_t **out, int *col, osse_err_t *err)
{
    parser_t p;
    memset(&p, 0, sizeof p);
    int rc;
    *out = NULL;
    if (col)
        *col = 0;
    if (len > OSSE_EXPR_MAX_TEXT) {
        if (col)
            *col = 1;
        return osse_err_set(err, OSSE_EPARSE, "expression longer than %d bytes",
                            OSSE_EXPR_MAX_TEXT);
    }
    osse_expr_t *e = osse_calloc(1, sizeof *e);
    e->text = osse_malloc(len + 1);
    if (len)
        memcpy(e->text, text, len);
    e->text[len] = '\0';
    e->len = len;
    p.e = e;
    p.s = e->text;
    p.len = len;
    next(&p);
    if (p.tok.kind == T_EOF && !p.code) {
        fail(&p, 0, "empty expression");
    } else {
        e->root = parse_expr(&p, 0);
        if (e->root && p.tok.kind != T_EOF)
            fail_unexpected(&p, "an operator or the end");
    }
    if (p.code) {
        if (col)
            *col = p.code == OSSE_EPARSE ? column_of(p.s, p.err_off) : 0;
        rc = osse_err_set(err, p.code, "%s", p.msg);
        goto out;
    }
    *out = e;
    e = NULL;
    rc = 0;
out:
    if (p.cloc)
        freelocale(p.cloc);
    osse_expr_free(e);
    return rc;
}

/* ----------------------------------------------------------- checker */

typedef struct {
    const osse_expr_t *e;
    const osse_expr_env_t *env;
    json_t *problems, *warnings;
    int count;
    bool nomem;
    /* Paths known not to be null where the checker is: the right side of
     * `x != null && ...`, of `x == null || ...`, a branch of `x != null ? :`. */
    const char *guarded[32];
    size_t nguarded;
    /* The last column computed and its offset: items come mostly in text
     * order, and counting from the start for each of a long rule's warnings
     * cost the square of its length. */
    size_t col_off;
    int col;
} checker_t;

static int item_column(checker_t *c, size_t off)
{
    if (off < c->col_off) {
        c->col_off = 0;
        c->col = 1;
    }
    const char *s = c->e->text;
    for (size_t i = c->col_off; i < off; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            c->col++;
    c->col_off = off;
    return c->col;
}

static void add_item(checker_t *c, json_t *to, size_t off, const char *msg)
{
    json_t *o = json_pack("{s:i,s:s}", "column", item_column(c, off), "message", msg);
    if (!o || json_array_append_new(to, o) < 0)
        c->nomem = true;
}

__attribute__((format(printf, 3, 4))) static void problem(checker_t *c, size_t off, const char *fmt,
                                                          ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->count++;
    if (c->problems)
        add_item(c, c->problems, off, msg);
}

static bool numeric(osse_expr_type_t t)
{
    return t == OSSE_EXPR_INTEGER || t == OSSE_EXPR_NUMBER;
}

static const char *tn(osse_expr_type_t t)
{
    return osse_expr_type_name(t);
}

/* The field named name[0..len), through the index when the env has one. */
static const osse_expr_field_t *find_field(const osse_expr_env_t *env, const char *name, size_t len)
{
    if (env->field_index) {
        json_t *at = json_object_getn(env->field_index, name, len);
        json_int_t i = at ? json_integer_value(at) : -1;
        return i >= 0 && (size_t)i < env->nfields ? &env->fields[i] : NULL;
    }
    for (size_t i = 0; i < env->nfields; i++)
        if (strlen(env->fields[i].name) == len && memcmp(env->fields[i].name, name, len) == 0)
            return &env->fields[i];
    return NULL;
}

static bool has_step(const osse_expr_env_t *env, const char *name, size_t len)
{
    if (env->step_index)
        return json_object_getn(env->step_index, name, len) != NULL;
    for (size_t i = 0; i < env->nsteps; i++)
        if (strlen(env->steps[i]) == len && memcmp(env->steps[i], name, len) == 0)
            return true;
    return false;
}

static osse_expr_type_t check_path(checker_t *c, const node_t *n)
{
    const osse_expr_env_t *env = c->env;
    const char *path = n->v.s.p;
    if (!env)
        return OSSE_EXPR_ANY;
    const char *seg = strchr(path, '.') + 1; /* the parser made sure there is one */
    const char *end = strchr(seg, '.');
    size_t slen = end ? (size_t)(end - seg) : strlen(seg);
    if (strncmp(path, "form.", 5) == 0) {
        const osse_expr_field_t *f = end ? NULL : find_field(env, seg, slen);
        if (f)
            return f->type;
        problem(c, n->off, "unknown field %s", path);
        return OSSE_EXPR_ANY;
    }
    if (strncmp(path, "data.", 5) == 0) {
        if (has_step(env, seg, slen))
            return OSSE_EXPR_ANY;
        problem(c, n->off, "unknown step %.*s in %s", (int)slen, seg, path);
        return OSSE_EXPR_ANY;
    }
    if (strcmp(path, "request.submitted_at") == 0)
        return OSSE_EXPR_STRING;
    problem(c, n->off, "unknown field %s", path);
    return OSSE_EXPR_ANY;
}

/* The form field a path names, or NULL (data and request paths, unknown
 * fields, a path into a field's inside). */
static const osse_expr_field_t *field_of(const checker_t *c, const node_t *n)
{
    if (n->kind != N_PATH || !c->env || strncmp(n->v.s.p, "form.", 5) != 0)
        return NULL;
    return find_field(c->env, n->v.s.p + 5, strlen(n->v.s.p + 5));
}

/* Whether n may be null at run time, as far as the definition tells: an
 * optional form field may be missing; `?:` may pick a null branch; `a ?? b`
 * is null only when both are. data.<step> answers have no declared shape, so
 * nothing is claimed about them; every operator fails rather than give null. */
static size_t guard(checker_t *c, const node_t *n, bool truth);

static bool nullable(checker_t *c, const node_t *n)
{
    switch ((nkind_t)n->kind) {
    case N_NULL: return true;
    case N_PATH: {
        const osse_expr_field_t *f = field_of(c, n);
        for (size_t i = 0; f && i < c->nguarded; i++)
            if (strcmp(c->guarded[i], n->v.s.p) == 0)
                return false;
        return f && f->optional;
    }
    case N_COND: {
        size_t g = guard(c, n->a, true);
        bool yes = nullable(c, n->b);
        c->nguarded -= g;
        g = guard(c, n->a, false);
        yes |= nullable(c, n->c);
        c->nguarded -= g;
        return yes;
    }
    case N_COALESCE: return nullable(c, n->a) && nullable(c, n->b);
    default: return false;
    }
}

/* Adds to c->guarded the paths that are not null when n evaluates to truth:
 * `p != null` and `p == null` (either way round), through && (truth) or ||
 * (falsehood) and !. Returns how many it added, so the caller can drop them. */
static size_t guard(checker_t *c, const node_t *n, bool truth)
{
    if (n->kind == N_NOT)
        return guard(c, n->a, !truth);
    if ((n->kind == N_AND && truth) || (n->kind == N_OR && !truth))
        return guard(c, n->a, truth) + guard(c, n->b, truth);
    if (n->kind != N_BIN || (n->op != T_EQ && n->op != T_NE) || (n->op == T_NE) != truth ||
        c->nguarded == sizeof c->guarded / sizeof c->guarded[0])
        return 0;
    const node_t *path = n->a->kind == N_PATH && n->b->kind == N_NULL   ? n->a
                         : n->b->kind == N_PATH && n->a->kind == N_NULL ? n->b
                                                                        : NULL;
    if (!path)
        return 0;
    c->guarded[c->nguarded++] = path->v.s.p;
    return 1;
}

/* Warns when operand n, which what needs to be a value, may be null: at run
 * time that is an error (SPEC §2: published with a warning). A bare `null`
 * literal is left to the type rules, which refuse it outright. */
static void need_value(checker_t *c, const node_t *n, const char *what)
{
    if (n->kind == N_NULL || !nullable(c, n) || !c->warnings)
        return;
    char msg[400];
    const osse_expr_field_t *f = field_of(c, n);
    if (f) {
        const char *dflt = f->type == OSSE_EXPR_STRING    ? "\"\""
                           : f->type == OSSE_EXPR_BOOLEAN ? "false"
                                                          : "0";
        snprintf(msg, sizeof msg,
                 "%s may be null (the field is optional) and %s needs a value: give a default, "
                 "as in (%s ?? %s)",
                 n->v.s.p, what, n->v.s.p, dflt);
    } else {
        snprintf(msg, sizeof msg,
                 "this value may be null and %s needs a value: give a default with ??", what);
    }
    add_item(c, c->warnings, n->off, msg);
}

/* The static rule of `needle in hay`, shared with contains(hay, needle). */
static void check_member(checker_t *c, size_t off, const char *what, osse_expr_type_t needle,
                         osse_expr_type_t hay)
{
    if (hay != OSSE_EXPR_ANY && hay != OSSE_EXPR_LIST && hay != OSSE_EXPR_STRING &&
        hay != OSSE_EXPR_OBJECT)
        problem(c, off, "%s needs a list, string or object to search, not %s", what, tn(hay));
    else if ((hay == OSSE_EXPR_STRING || hay == OSSE_EXPR_OBJECT) && needle != OSSE_EXPR_ANY &&
             needle != OSSE_EXPR_STRING)
        problem(c, off, "%s on a %s needs a string to look for, not %s", what, tn(hay), tn(needle));
}

static osse_expr_type_t check_node(checker_t *c, const node_t *n);
static osse_expr_type_t check_logic(checker_t *c, const node_t *n);

static osse_expr_type_t check_call(checker_t *c, const node_t *n)
{
    osse_expr_type_t at[2] = {OSSE_EXPR_ANY, OSSE_EXPR_ANY};
    unsigned k = 0;
    for (const node_t *a = n->a; a; a = a->next, k++) {
        osse_expr_type_t t = check_node(c, a);
        if (k < 2)
            at[k] = t;
    }
    if (n->op == FN_UNKNOWN) {
        problem(c, n->off, "unknown function %s", n->v.s.p);
        return OSSE_EXPR_ANY;
    }
    unsigned lo = fns[n->op].min, hi = fns[n->op].max;
    if (n->nkids < lo || n->nkids > hi) {
        if (lo == hi)
            problem(c, n->off, "%s takes %u argument%s, not %u", fns[n->op].name, lo,
                    lo == 1 ? "" : "s", n->nkids);
        else
            problem(c, n->off, "%s takes %u or %u arguments, not %u", fns[n->op].name, lo, hi,
                    n->nkids);
        return OSSE_EXPR_ANY;
    }
    /* Every function fails on a null argument, but for the needle of
     * contains in a list, which == compares. */
    unsigned k2 = 0;
    for (const node_t *a = n->a; a; a = a->next, k2++)
        if (!(n->op == FN_CONTAINS && k2 == 1 && at[0] != OSSE_EXPR_STRING &&
              at[0] != OSSE_EXPR_OBJECT))
            need_value(c, a, fns[n->op].name);
    switch (n->op) {
    case FN_LEN:
        if (at[0] != OSSE_EXPR_ANY && at[0] != OSSE_EXPR_STRING && at[0] != OSSE_EXPR_LIST &&
            at[0] != OSSE_EXPR_OBJECT)
            problem(c, n->off, "len needs a string or a list, not %s", tn(at[0]));
        return OSSE_EXPR_INTEGER;
    case FN_LOWER:
    case FN_UPPER:
        if (at[0] != OSSE_EXPR_ANY && at[0] != OSSE_EXPR_STRING)
            problem(c, n->off, "%s needs a string, not %s", fns[n->op].name, tn(at[0]));
        return OSSE_EXPR_STRING;
    case FN_CONTAINS: check_member(c, n->off, "contains", at[1], at[0]); return OSSE_EXPR_BOOLEAN;
    case FN_STARTS_WITH:
        for (int i = 0; i < 2; i++)
            if (at[i] != OSSE_EXPR_ANY && at[i] != OSSE_EXPR_STRING)
                problem(c, n->off, "starts_with needs strings, not %s", tn(at[i]));
        return OSSE_EXPR_BOOLEAN;
    case FN_ROUND:
        if (at[0] != OSSE_EXPR_ANY && !numeric(at[0]))
            problem(c, n->off, "round needs a number, not %s", tn(at[0]));
        if (n->nkids == 2 && at[1] != OSSE_EXPR_ANY && !numeric(at[1]))
            problem(c, n->off, "round's digits must be an integer, not %s", tn(at[1]));
        else if (n->nkids == 2 && n->a->next->kind == N_REAL)
            problem(c, n->off, "round's digits must be an integer");
        if (n->nkids == 1 || at[0] == OSSE_EXPR_INTEGER)
            return OSSE_EXPR_INTEGER;
        return OSSE_EXPR_NUMBER;
    }
    return OSSE_EXPR_ANY;
}

static osse_expr_type_t check_bin(checker_t *c, const node_t *n, osse_expr_type_t l,
                                  osse_expr_type_t r)
{
    const char *op = op_text(n->op);
    char what[16];
    snprintf(what, sizeof what, "'%s'", op);
    switch (n->op) {
    case T_EQ:
    case T_NE: return OSSE_EXPR_BOOLEAN; /* == and != never fail: null is a value to compare */
    case T_IN:
        /* A list is searched with ==, so only a string or an object needs
         * a needle that is not null. */
        need_value(c, n->b, what);
        if (r == OSSE_EXPR_STRING || r == OSSE_EXPR_OBJECT)
            need_value(c, n->a, what);
        check_member(c, n->off, "'in'", l, r);
        return OSSE_EXPR_BOOLEAN;
    case T_LT:
    case T_LE:
    case T_GT:
    case T_GE: {
        need_value(c, n->a, what);
        need_value(c, n->b, what);
        osse_expr_type_t ts[2] = {l, r};
        for (int i = 0; i < 2; i++) {
            if (ts[i] != OSSE_EXPR_ANY && !numeric(ts[i]) && ts[i] != OSSE_EXPR_STRING) {
                problem(c, n->off, "'%s' compares numbers or strings, not %s", op, tn(ts[i]));
                return OSSE_EXPR_BOOLEAN;
            }
        }
        if (l != OSSE_EXPR_ANY && r != OSSE_EXPR_ANY && numeric(l) != numeric(r))
            problem(c, n->off, "'%s' cannot compare %s and %s", op, tn(l), tn(r));
        return OSSE_EXPR_BOOLEAN;
    }
    case T_PLUS: {
        need_value(c, n->a, what);
        need_value(c, n->b, what);
        osse_expr_type_t ts[2] = {l, r};
        for (int i = 0; i < 2; i++) {
            if (ts[i] != OSSE_EXPR_ANY && !numeric(ts[i]) && ts[i] != OSSE_EXPR_STRING &&
                ts[i] != OSSE_EXPR_LIST) {
                problem(c, n->off, "'+' cannot add %s", tn(ts[i]));
                return OSSE_EXPR_ANY;
            }
        }
        if (l == OSSE_EXPR_ANY || r == OSSE_EXPR_ANY) {
            osse_expr_type_t k = l == OSSE_EXPR_ANY ? r : l;
            return k == OSSE_EXPR_INTEGER ? OSSE_EXPR_NUMBER : k;
        }
        if (numeric(l) && numeric(r))
            return l == OSSE_EXPR_INTEGER && r == OSSE_EXPR_INTEGER ? OSSE_EXPR_INTEGER
                                                                    : OSSE_EXPR_NUMBER;
        if (l == r)
            return l;
        problem(c, n->off, "'+' cannot add %s and %s", tn(l), tn(r));
        return OSSE_EXPR_ANY;
    }
    default: { /* - * / % */
        need_value(c, n->a, what);
        need_value(c, n->b, what);
        osse_expr_type_t ts[2] = {l, r};
        for (int i = 0; i < 2; i++) {
            if (ts[i] != OSSE_EXPR_ANY && !numeric(ts[i])) {
                problem(c, n->off, "'%s' needs numbers, not %s", op, tn(ts[i]));
                return OSSE_EXPR_NUMBER;
            }
        }
        if (n->op != T_SLASH && l == OSSE_EXPR_INTEGER && r == OSSE_EXPR_INTEGER)
            return OSSE_EXPR_INTEGER;
        return OSSE_EXPR_NUMBER;
    }
    }
}

/* `a && b && c && d` parses as ((a && b) && c) && d. Checked level by level,
 * each level walked its whole left side again for the guards it gives the
 * right side: the square of the chain's length (a 4 KiB rule of 250 `&&`
 * took 0.2 ms). The chain is checked once instead, left to right: the right
 * side of each level runs only when everything left of it is true (&&) or
 * false (||), so the guards pile up as the walk goes; the problems and
 * warnings come in the order, and with the guards, of the level by level
 * check. */
static osse_expr_type_t check_logic(checker_t *c, const node_t *n)
{
    bool truth = n->kind == N_AND;
    const char *what = truth ? "'&&'" : "'||'";
    size_t m = 0;
    const node_t *x = n;
    for (; x->kind == n->kind; x = x->a)
        m++;
    const node_t **spine =
        osse_malloc(m * sizeof *spine); /* spine[0] = n, spine[m - 1] innermost */
    x = n;
    for (size_t k = 0; k < m; k++, x = x->a)
        spine[k] = x;
    /* x is now the leftmost operand. */
    osse_expr_type_t left = check_node(c, x);
    size_t g = 0;
    for (size_t k = m; k-- > 0;) {
        const node_t *s = spine[k];
        g += guard(c, k == m - 1 ? x : spine[k + 1]->b, truth);
        osse_expr_type_t right = check_node(c, s->b);
        need_value(c, s->b, what);
        if (k == m - 1) {
            /* The leftmost operand is checked without its own guards, as
             * its level did; an inner && or || is never null. */
            c->nguarded -= g;
            need_value(c, x, what);
            g = guard(c, x, truth);
        }
        osse_expr_type_t ts[2] = {k == m - 1 ? left : OSSE_EXPR_BOOLEAN, right};
        for (int i = 0; i < 2; i++)
            if (ts[i] != OSSE_EXPR_ANY && ts[i] != OSSE_EXPR_BOOLEAN)
                problem(c, s->off, "'%s' needs booleans, not %s", op_text(s->op), tn(ts[i]));
    }
    c->nguarded -= g;
    free(spine);
    return OSSE_EXPR_BOOLEAN;
}

static osse_expr_type_t check_node(checker_t *c, const node_t *n)
{
    switch ((nkind_t)n->kind) {
    case N_NULL: return OSSE_EXPR_NULL;
    case N_BOOL: return OSSE_EXPR_BOOLEAN;
    case N_INT: return OSSE_EXPR_INTEGER;
    case N_REAL: return OSSE_EXPR_NUMBER;
    case N_STR: return OSSE_EXPR_STRING;
    case N_PATH: return check_path(c, n);
    case N_LIST:
        for (const node_t *k = n->a; k; k = k->next)
            check_node(c, k);
        return OSSE_EXPR_LIST;
    case N_CALL: return check_call(c, n);
    case N_NEG: {
        osse_expr_type_t t = check_node(c, n->a);
        need_value(c, n->a, "'-'");
        if (t != OSSE_EXPR_ANY && !numeric(t))
            problem(c, n->off, "'-' needs a number, not %s", tn(t));
        return t == OSSE_EXPR_INTEGER ? OSSE_EXPR_INTEGER : OSSE_EXPR_NUMBER;
    }
    case N_NOT: {
        osse_expr_type_t t = check_node(c, n->a);
        need_value(c, n->a, "'!'");
        if (t != OSSE_EXPR_ANY && t != OSSE_EXPR_BOOLEAN)
            problem(c, n->off, "'!' needs a boolean, not %s", tn(t));
        return OSSE_EXPR_BOOLEAN;
    }
    case N_AND:
    case N_OR: return check_logic(c, n);
    case N_COND: {
        osse_expr_type_t t = check_node(c, n->a);
        need_value(c, n->a, "the condition of '?:'");
        if (t != OSSE_EXPR_ANY && t != OSSE_EXPR_BOOLEAN)
            problem(c, n->off, "the condition of '?:' must be a boolean, not %s", tn(t));
        size_t g = guard(c, n->a, true);
        osse_expr_type_t x = check_node(c, n->b);
        c->nguarded -= g;
        g = guard(c, n->a, false);
        osse_expr_type_t y = check_node(c, n->c);
        c->nguarded -= g;
        if (x == y)
            return x;
        if (numeric(x) && numeric(y))
            return OSSE_EXPR_NUMBER;
        return OSSE_EXPR_ANY;
    }
    case N_COALESCE: {
        /* The default takes the value's place, so it should be of its type;
         * a mismatch is usually `x ?? 0 > 5` read as `x ?? (0 > 5)`. */
        osse_expr_type_t x = check_node(c, n->a), y = check_node(c, n->b);
        if (x == OSSE_EXPR_NULL || x == y)
            return y;
        if (y == OSSE_EXPR_NULL)
            return x;
        if (numeric(x) && numeric(y))
            return OSSE_EXPR_NUMBER;
        if (x != OSSE_EXPR_ANY && y != OSSE_EXPR_ANY)
            problem(c, n->off, "'?\?' gives %s or %s: the default should have the value's type",
                    tn(x), tn(y));
        return OSSE_EXPR_ANY;
    }
    case N_BIN: {
        osse_expr_type_t l = check_node(c, n->a), r = check_node(c, n->b);
        return check_bin(c, n, l, r);
    }
    }
    return OSSE_EXPR_ANY;
}

int osse_expr_check(const osse_expr_t *e, const osse_expr_env_t *env, osse_expr_type_t expect,
                    json_t *problems, json_t *warnings)
{
    checker_t c = {.e = e, .env = env, .problems = problems, .warnings = warnings, .col = 1};
    osse_expr_type_t t = check_node(&c, e->root);
    bool fits = expect == OSSE_EXPR_ANY || t == OSSE_EXPR_ANY || t == expect ||
                (expect == OSSE_EXPR_NUMBER && t == OSSE_EXPR_INTEGER);
    if (!fits)
        problem(&c, 0, "the expression gives %s where %s is expected", tn(t), tn(expect));
    else if (expect != OSSE_EXPR_ANY)
        need_value(&c, e->root,
                   expect == OSSE_EXPR_BOOLEAN ? "the rule's result (a boolean)"
                                               : "the rule's result (a number)");
    if (c.nomem)
        return OSSE_ENOMEM;
    return c.count ? OSSE_EINVAL : 0;
}

int osse_expr_compile(const char *text, size_t len, const osse_expr_env_t *env,
                      osse_expr_type_t expect, osse_expr_t **out, json_t *problems,
                      json_t *warnings)
{
    osse_expr_t *e = NULL;
    osse_err_t err = {0};
    int col = 0;
    if (out)
        *out = NULL;
    int rc = osse_expr_parse(text, len, &e, &col, &err);
    if (rc == OSSE_EPARSE) {
        json_t *o = json_pack("{s:i,s:s}", "column", col, "message", err.msg);
        if (!o || json_array_append_new(problems, o) < 0)
            return OSSE_ENOMEM;
        return OSSE_EINVAL;
    }
    if (rc < 0)
        return rc;
    rc = osse_expr_check(e, env, expect, problems, warnings);
    if (rc == 0 && out) {
        *out = e;
        e = NULL;
    }
    osse_expr_free(e);
    return rc;
}

static int collect_paths(const node_t *n, json_t *paths)
{
    if (n->kind == N_PATH) {
        size_t i;
        json_t *v;
        json_array_foreach(paths, i, v)
        {
            if (json_is_string(v) && strcmp(json_string_value(v), n->v.s.p) == 0)
                return 0;
        }
        return json_array_append_new(paths, json_string(n->v.s.p)) < 0 ? OSSE_ENOMEM : 0;
    }
    if (n->kind == N_LIST || n->kind == N_CALL) {
        for (const node_t *k = n->a; k; k = k->next)
            if (collect_paths(k, paths) < 0)
                return OSSE_ENOMEM;
        return 0;
    }
    const node_t *kids[3] = {n->a, n->b, n->c};
    for (int k = 0; k < 3; k++)
        if (kids[k] && collect_paths(kids[k], paths) < 0)
            return OSSE_ENOMEM;
    return 0;
}

int osse_expr_paths(const osse_expr_t *e, json_t *paths)
{
    return collect_paths(e->root, paths);
}

/* --------------------------------------------------------- evaluator */

typedef struct {
    const osse_expr_t *e;
    const json_t *root;
    json_t *inputs;
    osse_err_t *err;
} evctx_t;

__attribute__((format(printf, 3, 4))) static int rterr(evctx_t *c, const node_t *n, const char *fmt,
                                                       ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return osse_err_set(c->err, OSSE_EINVAL, "column %d: %s", column_of(c->e->text, n->off), msg);
}

static int nomem(evctx_t *c)
{
    return osse_err_set(c->err, OSSE_ENOMEM, "out of memory");
}

static const char *vtn(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "list";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

static bool is_num(const json_t *v)
{
    return json_is_integer(v) || json_is_real(v);
}

/* Compares an int64 with a double without losing the int's low bits. */
static int cmp_int_real(int64_t i, double d)
{
    double di = (double)i;
    if (di < d)
        return -1;
    if (di > d)
        return 1;
    /* d is integral and within one rounding of i; 2^63 is out of range. */
    if (d >= 9223372036854775808.0)
        return -1;
    int64_t t = (int64_t)d;
    return i < t ? -1 : i > t;
}

static int cmp_num(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return x < y ? -1 : x > y;
    }
    if (json_is_integer(a))
        return cmp_int_real(json_integer_value(a), json_real_value(b));
    if (json_is_integer(b))
        return -cmp_int_real(json_integer_value(b), json_real_value(a));
    double x = json_real_value(a), y = json_real_value(b);
    return x < y ? -1 : x > y;
}

static int cmp_str(const json_t *a, const json_t *b)
{
    size_t la = json_string_length(a), lb = json_string_length(b);
    int r = memcmp(json_string_value(a), json_string_value(b), la < lb ? la : lb);
    if (r)
        return r < 0 ? -1 : 1;
    return la < lb ? -1 : la > lb;
}

static bool values_equal(const json_t *a, const json_t *b)
{
    if (is_num(a) && is_num(b))
        return cmp_num(a, b) == 0;
    if (json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
    case JSON_STRING: return cmp_str(a, b) == 0;
    case JSON_ARRAY: {
        size_t n = json_array_size(a);
        if (n != json_array_size(b))
            return false;
        for (size_t i = 0; i < n; i++)
            if (!values_equal(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    }
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return false;
        const char *k;
        size_t klen;
        json_t *v;
        json_object_keylen_foreach((json_t *)a, k, klen, v)
        {
            const json_t *w = json_object_getn(b, k, klen);
            if (!w || !values_equal(v, w))
                return false;
        }
        return true;
    }
    default: return true; /* true, false, null: same type is same value */
    }
}

/* Walks a dotted path from root; NULL when any step is missing. */
static const json_t *resolve(const json_t *root, const char *path)
{
    const json_t *cur = root;
    const char *p = path;
    while (cur) {
        const char *d = strchr(p, '.');
        size_t n = d ? (size_t)(d - p) : strlen(p);
        if (json_is_object(cur)) {
            cur = json_object_getn(cur, p, n);
        } else if (json_is_array(cur) && n > 0 && n <= 9) {
            size_t idx = 0;
            for (size_t k = 0; k < n && cur; k++) {
                if (!is_digit(p[k]))
                    cur = NULL;
                else
                    idx = idx * 10 + (size_t)(p[k] - '0');
            }
            if (cur)
                cur = json_array_get(cur, idx);
        } else {
            cur = NULL;
        }
        if (!d)
            break;
        p = d + 1;
    }
    return cur;
}

/* `needle in hay`; what names the operator in messages. */
static int member(evctx_t *c, const node_t *n, const char *what, const json_t *needle,
                  const json_t *hay, bool *found)
{
    if (json_is_array(hay)) {
        *found = false;
        for (size_t i = 0; i < json_array_size(hay) && !*found; i++)
            *found = values_equal(needle, json_array_get(hay, i));
        return 0;
    }
    if (!json_is_string(hay) && !json_is_object(hay))
        return rterr(c, n, "%s needs a list, string or object to search, not %s", what, vtn(hay));
    if (!json_is_string(needle))
        return rterr(c, n, "%s on a %s needs a string to look for, not %s", what, vtn(hay),
                     vtn(needle));
    if (json_is_object(hay)) {
        *found = json_object_getn(hay, json_string_value(needle), json_string_length(needle));
        return 0;
    }
    size_t nl = json_string_length(needle);
    *found = nl == 0 || memmem(json_string_value(hay), json_string_length(hay),
                               json_string_value(needle), nl) != NULL;
    return 0;
}

static int make_real(evctx_t *c, const node_t *n, double d, json_t **out)
{
    if (!isfinite(d))
        return rterr(c, n, "number out of range");
    *out = json_real(d);
    return *out ? 0 : nomem(c);
}

static int make_int(evctx_t *c, int64_t i, json_t **out)
{
    *out = json_integer(i);
    return *out ? 0 : nomem(c);
}

static int arith(evctx_t *c, const node_t *n, int op, const json_t *a, const json_t *b,
                 json_t **out)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        int64_t x = json_integer_value(a), y = json_integer_value(b), r;
        switch (op) {
        case T_PLUS:
            if (__builtin_add_overflow(x, y, &r))
                return rterr(c, n, "integer overflow");
            return make_int(c, r, out);
        case T_MINUS:
            if (__builtin_sub_overflow(x, y, &r))
                return rterr(c, n, "integer overflow");
            return make_int(c, r, out);
        case T_STAR:
            if (__builtin_mul_overflow(x, y, &r))
                return rterr(c, n, "integer overflow");
            return make_int(c, r, out);
        case T_SLASH:
            if (y == 0)
                return rterr(c, n, "division by zero");
            if (y == -1) {
                if (x == INT64_MIN)
                    return rterr(c, n, "integer overflow");
                return make_int(c, -x, out);
            }
            if (x % y == 0)
                return make_int(c, x / y, out);
            return make_real(c, n, (double)x / (double)y, out);
        case T_PERCENT:
            if (y == 0)
                return rterr(c, n, "division by zero");
            /* INT64_MIN % -1 is undefined in C; the answer is 0. */
            return make_int(c, y == -1 ? 0 : x % y, out);
        }
        OSSE_UNREACHABLE();
    }
    double x = json_number_value(a), y = json_number_value(b);
    switch (op) {
    case T_PLUS: return make_real(c, n, x + y, out);
    case T_MINUS: return make_real(c, n, x - y, out);
    case T_STAR: return make_real(c, n, x * y, out);
    case T_SLASH:
        if (y == 0)
            return rterr(c, n, "division by zero");
        return make_real(c, n, x / y, out);
    case T_PERCENT:
        if (y == 0)
            return rterr(c, n, "division by zero");
        return make_real(c, n, fmod(x, y), out);
    }
    OSSE_UNREACHABLE();
}

static int binop(evctx_t *c, const node_t *n, const json_t *a, const json_t *b, json_t **out)
{
    int op = n->op;
    switch (op) {
    case T_EQ:
    case T_NE: {
        bool eq = values_equal(a, b);
        *out = json_boolean(op == T_EQ ? eq : !eq);
        return 0;
    }
    case T_LT:
    case T_LE:
    case T_GT:
    case T_GE: {
        int r;
        if (is_num(a) && is_num(b))
            r = cmp_num(a, b);
        else if (json_is_string(a) && json_is_string(b))
            r = cmp_str(a, b);
        else
            return rterr(c, n, "'%s' cannot compare %s and %s", op_text(op), vtn(a), vtn(b));
        bool v = op == T_LT ? r < 0 : op == T_LE ? r <= 0 : op == T_GT ? r > 0 : r >= 0;
        *out = json_boolean(v);
        return 0;
    }
    case T_IN: {
        bool found;
        int rc = member(c, n, "'in'", a, b, &found);
        if (rc == 0)
            *out = json_boolean(found);
        return rc;
    }
    case T_PLUS:
        if (json_is_string(a) && json_is_string(b)) {
            size_t la = json_string_length(a), lb = json_string_length(b);
            if (la + lb > EXPR_MAX_STRING)
                return rterr(c, n, "string result longer than %u bytes", EXPR_MAX_STRING);
            char *buf = osse_malloc(la + lb + 1);
            if (!buf)
                return nomem(c);
            memcpy(buf, json_string_value(a), la);
            memcpy(buf + la, json_string_value(b), lb);
            /* Two valid UTF-8 strings make a valid one: no need to recheck. */
            *out = json_stringn_nocheck(buf, la + lb);
            free(buf);
            return *out ? 0 : nomem(c);
        }
        if (json_is_array(a) && json_is_array(b)) {
            if (json_array_size(a) + json_array_size(b) > EXPR_MAX_LIST)
                return rterr(c, n, "list result longer than %u elements", EXPR_MAX_LIST);
            json_t *r = json_array();
            if (!r || json_array_extend(r, (json_t *)a) < 0 ||
                json_array_extend(r, (json_t *)b) < 0) {
                json_decref(r);
                return nomem(c);
            }
            *out = r;
            return 0;
        }
        if (is_num(a) && is_num(b))
            return arith(c, n, op, a, b, out);
        return rterr(c, n, "'+' cannot add %s and %s", vtn(a), vtn(b));
    default:
        if (is_num(a) && is_num(b))
            return arith(c, n, op, a, b, out);
        return rterr(c, n, "'%s' needs numbers, not %s and %s", op_text(op), vtn(a), vtn(b));
    }
}

static const double pow10_tab[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8, 1e9,
                                   1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18};

static int fn_round(evctx_t *c, const node_t *n, const json_t *x, const json_t *dv, json_t **out)
{
    int64_t d = 0;
    if (!is_num(x))
        return rterr(c, n, "round needs a number, not %s", vtn(x));
    if (dv) {
        if (json_is_integer(dv))
            d = json_integer_value(dv);
        else if (json_is_real(dv) && json_real_value(dv) == trunc(json_real_value(dv)) &&
                 fabs(json_real_value(dv)) < 100)
            d = (int64_t)json_real_value(dv);
        else
            return rterr(c, n, "round's digits must be an integer, not %s", vtn(dv));
        if (d < -18 || d > 15)
            return rterr(c, n, "round's digits must be between -18 and 15");
    }
    if (json_is_integer(x)) {
        int64_t i = json_integer_value(x);
        if (d >= 0)
            return make_int(c, i, out);
        int64_t p = 1;
        for (int64_t k = 0; k < -d; k++)
            p *= 10;
        int64_t q = i / p, r = i % p;
        /* Half away from zero: |r| < p <= 1e18, so 2|r| cannot overflow. */
        if (2 * (r < 0 ? -r : r) >= p)
            q += i < 0 ? -1 : 1;
        int64_t res;
        if (__builtin_mul_overflow(q, p, &res))
            return rterr(c, n, "integer overflow");
        return make_int(c, res, out);
    }
    double v = json_real_value(x);
    if (d == 0) {
        double r = round(v);
        if (!(r >= -9223372036854775808.0 && r < 9223372036854775808.0))
            return rterr(c, n, "round: the result does not fit an integer");
        return make_int(c, (int64_t)r, out);
    }
    if (d > 0) {
        double p = pow10_tab[d], y = v * p;
        /* Past 2^52 a double has no fraction left to round. */
        if (!isfinite(y) || fabs(v) >= 4503599627370496.0)
            return make_real(c, n, v, out);
        return make_real(c, n, round(y) / p, out);
    }
    double p = pow10_tab[-d];
    return make_real(c, n, round(v / p) * p, out);
}

static int eval_node(evctx_t *c, const node_t *n, json_t **out);

static int call(evctx_t *c, const node_t *n, json_t **out)
{
    json_t *av[2] = {NULL, NULL};
    int rc = 0;
    unsigned k = 0;
    if (n->op == FN_UNKNOWN)
        return rterr(c, n, "unknown function %s", n->v.s.p);
    if (n->nkids < fns[n->op].min || n->nkids > fns[n->op].max)
        return rterr(c, n, "wrong number of arguments to %s", fns[n->op].name);
    for (const node_t *a = n->a; a; a = a->next, k++)
        if ((rc = eval_node(c, a, &av[k])) < 0)
            goto out;
    json_t *x = av[0], *y = av[1];
    switch (n->op) {
    case FN_LEN:
        if (json_is_string(x)) {
            /* Code points: count the bytes that start a UTF-8 sequence. */
            const char *s = json_string_value(x);
            size_t len = json_string_length(x), cps = 0;
            for (size_t i = 0; i < len; i++)
                cps += ((unsigned char)s[i] & 0xC0) != 0x80;
            rc = make_int(c, (int64_t)cps, out);
        } else if (json_is_array(x)) {
            rc = make_int(c, (int64_t)json_array_size(x), out);
        } else if (json_is_object(x)) {
            rc = make_int(c, (int64_t)json_object_size(x), out);
        } else {
            rc = rterr(c, n, "len needs a string or a list, not %s", vtn(x));
        }
        break;
    case FN_LOWER:
    case FN_UPPER: {
        if (!json_is_string(x)) {
            rc = rterr(c, n, "%s needs a string, not %s", fns[n->op].name, vtn(x));
            break;
        }
        size_t len = json_string_length(x);
        char *buf = osse_malloc(len + 1);
        if (!buf) {
            rc = nomem(c);
            break;
        }
        const char *s = json_string_value(x);
        for (size_t i = 0; i < len; i++) {
            char ch = s[i];
            if (n->op == FN_LOWER && ch >= 'A' && ch <= 'Z')
                ch = (char)(ch - 'A' + 'a');
            else if (n->op == FN_UPPER && ch >= 'a' && ch <= 'z')
                ch = (char)(ch - 'a' + 'A');
            buf[i] = ch;
        }
        /* Only ASCII bytes changed, so the UTF-8 stays valid. */
        *out = json_stringn_nocheck(buf, len);
        free(buf);
        rc = *out ? 0 : nomem(c);
        break;
    }
    case FN_CONTAINS: {
        bool found;
        rc = member(c, n, "contains", y, x, &found);
        if (rc == 0)
            *out = json_boolean(found);
        break;
    }
    case FN_STARTS_WITH:
        if (!json_is_string(x) || !json_is_string(y)) {
            rc = rterr(c, n, "starts_with needs strings, not %s and %s", vtn(x), vtn(y));
            break;
        }
        *out = json_boolean(
            json_string_length(y) <= json_string_length(x) &&
            memcmp(json_string_value(x), json_string_value(y), json_string_length(y)) == 0);
        break;
    case FN_ROUND: rc = fn_round(c, n, x, y, out); break;
    default: OSSE_UNREACHABLE();
    }
out:
    json_decref(av[0]);
    json_decref(av[1]);
    return rc;
}

static int eval_path(evctx_t *c, const node_t *n, json_t **out)
{
    const json_t *v = resolve(c->root, n->v.s.p);
    if (c->inputs && json_is_object(c->inputs)) {
        json_t *copy = v ? json_deep_copy(v) : json_null();
        if (!copy || json_object_set_new(c->inputs, n->v.s.p, copy) < 0)
            return nomem(c);
    }
    /* The result shares v with root: the evaluator never changes a value. */
    *out = v ? json_incref((json_t *)v) : json_null();
    return 0;
}

static int eval_bool(evctx_t *c, const node_t *n, const node_t *at, const char *what, bool *out)
{
    json_t *v = NULL;
    int rc = eval_node(c, n, &v);
    if (rc < 0)
        return rc;
    if (!json_is_boolean(v))
        rc = rterr(c, at, "%s needs a boolean, not %s", what, vtn(v));
    else
        *out = json_is_true(v);
    json_decref(v);
    return rc;
}

static int eval_node(evctx_t *c, const node_t *n, json_t **out)
{
    json_t *a = NULL, *b = NULL;
    int rc = 0;
    *out = NULL;
    switch ((nkind_t)n->kind) {
    case N_NULL: *out = json_null(); return 0;
    case N_BOOL: *out = json_boolean(n->v.b); return 0;
    case N_INT: return make_int(c, n->v.i, out);
    case N_REAL: return make_real(c, n, n->v.d, out);
    case N_STR:
        *out = json_stringn_nocheck(n->v.s.p, n->v.s.n); /* checked by the lexer */
        return *out ? 0 : nomem(c);
    case N_PATH: return eval_path(c, n, out);
    case N_LIST: {
        json_t *arr = json_array();
        if (!arr)
            return nomem(c);
        for (const node_t *k = n->a; k; k = k->next) {
            json_t *v;
            if ((rc = eval_node(c, k, &v)) < 0 ||
                (json_array_append_new(arr, v) < 0 && (rc = nomem(c)) < 0)) {
                json_decref(arr);
                return rc;
            }
        }
        *out = arr;
        return 0;
    }
    case N_CALL: return call(c, n, out);
    case N_NEG:
        if ((rc = eval_node(c, n->a, &a)) < 0)
            goto out;
        if (json_is_integer(a)) {
            if (json_integer_value(a) == INT64_MIN)
                rc = rterr(c, n, "integer overflow");
            else
                rc = make_int(c, -json_integer_value(a), out);
        } else if (json_is_real(a)) {
            rc = make_real(c, n, -json_real_value(a), out);
        } else {
            rc = rterr(c, n, "'-' needs a number, not %s", vtn(a));
        }
        goto out;
    case N_NOT: {
        bool v;
        if ((rc = eval_bool(c, n->a, n, "'!'", &v)) == 0)
            *out = json_boolean(!v);
        return rc;
    }
    case N_AND:
    case N_OR: {
        bool v;
        const char *what = n->kind == N_AND ? "'&&'" : "'||'";
        if ((rc = eval_bool(c, n->a, n, what, &v)) < 0)
            return rc;
        /* Short-circuit: the right side is neither run nor recorded as read. */
        if (v == (n->kind == N_OR)) {
            *out = json_boolean(v);
            return 0;
        }
        if ((rc = eval_bool(c, n->b, n, what, &v)) == 0)
            *out = json_boolean(v);
        return rc;
    }
    case N_COND: {
        bool v;
        if ((rc = eval_bool(c, n->a, n, "the condition of '?:'", &v)) < 0)
            return rc;
        return eval_node(c, v ? n->b : n->c, out);
    }
    case N_COALESCE:
        /* Short-circuit like &&: the default is run (and recorded as read)
         * only when the value is null. An error on the left is not null: it
         * stays an error. */
        if ((rc = eval_node(c, n->a, &a)) < 0 || !json_is_null(a)) {
            *out = rc < 0 ? NULL : a;
            return rc;
        }
        json_decref(a);
        return eval_node(c, n->b, out);
    case N_BIN:
        if ((rc = eval_node(c, n->a, &a)) < 0 || (rc = eval_node(c, n->b, &b)) < 0)
            goto out;
        rc = binop(c, n, a, b, out);
        goto out;
    }
    OSSE_UNREACHABLE();
out:
    json_decref(a);
    json_decref(b);
    return rc;
}

int osse_expr_eval(const osse_expr_t *e, const json_t *root, json_t **result, json_t *inputs_read,
                   osse_err_t *err)
{
    evctx_t c = {.e = e, .root = root, .inputs = inputs_read, .err = err};
    *result = NULL;
    json_t *v = NULL;
    int rc = eval_node(&c, e->root, &v);
    if (rc < 0) {
        json_decref(v);
        return rc;
    }
    *result = v;
    return 0;
}

int osse_expr_eval_bool(const osse_expr_t *e, const json_t *root, int *result, json_t *inputs_read,
                        osse_err_t *err)
{
    json_t *v = NULL;
    int rc = osse_expr_eval(e, root, &v, inputs_read, err);
    if (rc < 0)
        return rc;
    if (!json_is_boolean(v))
        rc = osse_err_set(err, OSSE_EINVAL, "result is %s, not boolean", vtn(v));
    else
        *result = json_is_true(v);
    json_decref(v);
    return rc;
}

/* ------------------------------------------------- recheck support */

static bool valid_path(const char *k, size_t len)
{
    if (!(len > 5 && (memcmp(k, "form.", 5) == 0 || memcmp(k, "data.", 5) == 0)) &&
        !(len > 8 && memcmp(k, "request.", 8) == 0))
        return false;
    bool seg_start = true;
    for (size_t i = 0; i < len; i++) {
        if (k[i] == '.') {
            if (seg_start)
                return false;
            seg_start = true;
        } else if (!is_name(k[i])) {
            return false;
        } else {
            seg_start = false;
        }
    }
    return !seg_start;
}

int osse_expr_root_from_inputs(const json_t *inputs, json_t **root)
{
    int rc = 0;
    json_t *r = json_object();
    *root = NULL;
    if (!r)
        return OSSE_ENOMEM;
    if (!json_is_object(inputs)) {
        rc = OSSE_EINVAL;
        goto out;
    }
    const char *k;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach((json_t *)inputs, k, klen, v)
    {
        if (!valid_path(k, klen)) {
            rc = OSSE_EINVAL;
            goto out;
        }
        /* A path under another recorded path is already inside that value;
         * writing it again could add a key the original did not have. */
        bool covered = false;
        for (size_t i = 0; i < klen && !covered; i++)
            covered = k[i] == '.' && json_object_getn(inputs, k, i) != NULL;
        if (covered)
            continue;
        json_t *cur = r;
        size_t s = 0;
        for (;;) {
            size_t e = s;
            while (e < klen && k[e] != '.')
                e++;
            if (e == klen) {
                json_t *copy = json_deep_copy(v);
                if (!copy || json_object_setn_new(cur, k + s, e - s, copy) < 0) {
                    rc = OSSE_ENOMEM;
                    goto out;
                }
                break;
            }
            json_t *child = json_object_getn(cur, k + s, e - s);
            if (!child) {
                child = json_object();
                if (!child || json_object_setn_new(cur, k + s, e - s, child) < 0) {
                    rc = OSSE_ENOMEM;
                    goto out;
                }
            }
            cur = child; /* always an object: only uncovered paths are written */
            s = e + 1;
        }
    }
    *root = r;
    r = NULL;
out:
    json_decref(r);
    return rc;
}
