/* expr.h: the rule language of workflow definitions (SPEC §2 "Expressions").
 *
 * `when`, `auto_approve`, `require`, `amount` and linkage `input` values are
 * small expressions: literals, paths into the request (form.x, data.<step>.x,
 * request.submitted_at), arithmetic, comparison, logic, `in`, `c ? a : b`,
 * `a ?? b` and six pure functions. Text is compiled once (osse_expr_parse) into an AST that
 * owns all its memory in one arena; publishing checks it statically against
 * the definition (osse_expr_check); the engine evaluates it against the
 * request's values (osse_expr_eval) as often as it likes.
 *
 * Invariant: evaluation is a pure function of the AST and the values it reads.
 * There is no clock, no locale, no I/O and no loop, so `osse replay --recheck`
 * can run a recorded rule against its recorded inputs (see
 * osse_expr_root_from_inputs) and must get the recorded result.
 *
 * Why a hand-written Pratt parser over a fixed grammar: the language is tiny,
 * its input comes from definitions published over HTTP, and every bound (text
 * length, nesting, result sizes) must be checked by osse, never trusted.
 *
 * Value semantics (runtime):
 * - A path that is missing (or walks through a non-object) is null; numeric
 *   segments index arrays (data.x.items.0).
 * - Integers stay exact int64 through + - * % and unary -; overflow is an
 *   error. `/` gives an integer when the division is exact, else a real.
 *   Reals are IEEE doubles; a non-finite result is an error.
 * - == and != never fail: values of different types are unequal, except that
 *   an integer and a real compare numerically; lists and objects compare deeply.
 * - < <= > >= compare two numbers numerically or two strings bytewise; any
 *   other pair is an error.
 * - `+` adds numbers, concatenates two strings or two lists.
 * - `a in b`: b a list (a is an element, by ==), a string (a is a substring;
 *   a must be a string) or an object (a is a key).
 * - && || ! and the condition of ?: need booleans (null is not false); && and
 *   || short-circuit, and a path they do not evaluate is not read.
 * - `a ?? b` is a unless a is null, then b; b is evaluated (and read) only
 *   then. An error in a stays an error. Precedence as in C# and JavaScript:
 *   lower than ||, higher than ?:, right-associative (a ?? b ?? c is
 *   a ?? (b ?? c)); as in JavaScript, an unparenthesized && or || operand of
 *   ?? is a syntax error (`a || b ?? c` means different things to different
 *   readers). So `500 + 2 * (form.seats ?? 0)` needs its parentheses.
 * - Precedence, loosest first: ?:, ??, ||, &&, == !=, < <= > >=, in, + -,
 *   * / %, unary ! -.
 * - len(x): code points of a string, elements of a list, keys of an object.
 *   lower(s)/upper(s) map ASCII letters only (Thai is left as it is).
 *   contains(a, b) is `b in a`. starts_with(s, p) on two strings.
 *   round(x) rounds half away from zero to an integer; round(x, d) rounds to
 *   d decimal digits (-18 <= d <= 15) in binary floating point, as JavaScript
 *   does (round(1.005, 2) is 1). round of an integer with d >= 0 is itself.
 * Every runtime error is OSSE_EINVAL with "column N: what" in err->msg. */
#ifndef OSSE_WORKFLOWS_EXPR_H
#define OSSE_WORKFLOWS_EXPR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

#define OSSE_EXPR_MAX_TEXT 4096  /* bytes of expression text */
#define OSSE_EXPR_MAX_NESTING 64 /* parentheses, brackets, calls, unary operators */
#define OSSE_EXPR_MAX_HEIGHT 256 /* height of the AST (long a+b+c+... chains) */

/* Static types. ANY is "not known before running" (data.<step>.* paths, or a
 * mix); the checker reports only what is wrong whatever the values turn out
 * to be. A form field's type is its declared one even though an optional
 * field may be missing (null) at run time: that is a runtime error, if any,
 * and the checker warns about it (see osse_expr_check). */
#define OSSE_EXPR_TYPES(X)                                                                         \
    X(ANY, "any")                                                                                  \
    X(NULL, "null")                                                                                \
    X(BOOLEAN, "boolean")                                                                          \
    X(INTEGER, "integer")                                                                          \
    X(NUMBER, "number")                                                                            \
    X(STRING, "string")                                                                            \
    X(LIST, "list")                                                                                \
    X(OBJECT, "object")

typedef enum {
#define X(n, s) OSSE_EXPR_##n,
    OSSE_EXPR_TYPES(X)
#undef X
} osse_expr_type_t;

const char *osse_expr_type_name(osse_expr_type_t t);

/* Maps a form field type as SPEC §2 spells it ("string", "integer", "number",
 * "boolean", "date", "enum", "citizen_id", "file") to its expression type:
 * date, enum, citizen_id and file values are strings. Unknown names give ANY. */
osse_expr_type_t osse_expr_type_of_field(const char *spec_type);

typedef struct osse_expr_field_s {
    const char *name; /* the form field, without "form." */
    osse_expr_type_t type;
    bool optional; /* not required: may be missing (null) at run time */
} osse_expr_field_t;

/* What a definition offers to its expressions. Borrowed by osse_expr_check
 * for the duration of the call only. request.submitted_at (a string) is
 * always there. */
typedef struct osse_expr_env_s {
    const osse_expr_field_t *fields;
    size_t nfields;
    const char *const *steps; /* step names usable as data.<step> */
    size_t nsteps;
    /* Optional (NULL: the lists are walked): objects mapping each field's
     * and each step's name to its index in fields and steps, so that a
     * path is one look-up however many fields and steps there are. */
    const json_t *field_index, *step_index;
} osse_expr_env_t;

typedef struct osse_expr_s osse_expr_t;

/* Compiles text[0..len) (at most OSSE_EXPR_MAX_TEXT bytes; embedded NULs and
 * invalid UTF-8 are syntax errors). On success returns 0 and *out (free with
 * osse_expr_free). On bad syntax returns OSSE_EPARSE, sets *col (may be NULL)
 * to the 1-based column (in code points) of the offending place and
 * err->msg to what is wrong; on allocation failure OSSE_ENOMEM. The first
 * segment of a path must be form, data or request. Never crashes on any
 * input. Any thread. */
int osse_expr_parse(const char *text, size_t len, osse_expr_t **out, int *col, osse_err_t *err);

void osse_expr_free(osse_expr_t *e); /* NULL-safe */

/* The text e was compiled from (NUL-terminated, owned by e). */
const char *osse_expr_text(const osse_expr_t *e);

/* Checks e statically against env: unknown fields ("unknown field
 * form.area"), unknown steps, unknown functions, wrong arity, and type errors
 * visible without running ("abc" * 2, !5, a string field + 1, && on a
 * number). If expect is not ANY, the result type must fit it (INTEGER fits a
 * NUMBER). Each problem is appended to problems (a JSON array the caller
 * made) as {"column":N,"message":"..."}; all are reported, not only the first.
 * Returns 0 when there is none, OSSE_EINVAL when some were appended, or
 * OSSE_ENOMEM.
 *
 * If warnings is an array, every place where a value that may be null (an
 * optional form field, a `?:` with such a branch, `a ?? b` when both may be)
 * is used where null is a runtime error gets {"column","message"} there:
 * operands of arithmetic, ordering, unary -, !, && and ||, the condition of
 * ?:, function arguments, `in`'s haystack (and its needle for a string or an
 * object), and the result itself when expect is not ANY. `==`, `!=`, the left
 * of `??` and a list's elements never warn. Warnings do not change the
 * return value. Any thread. */
int osse_expr_check(const osse_expr_t *e, const osse_expr_env_t *env, osse_expr_type_t expect,
                    json_t *problems, json_t *warnings);

/* Parse and check in one go, for definition validation: a syntax error is
 * appended to problems like a check problem. On success (0) *out is the
 * compiled expression; otherwise OSSE_EINVAL (or OSSE_ENOMEM) and *out is
 * NULL. out may be NULL when only the verdict is wanted. */
int osse_expr_compile(const char *text, size_t len, const osse_expr_env_t *env,
                      osse_expr_type_t expect, osse_expr_t **out, json_t *problems,
                      json_t *warnings);

/* Evaluates e against root = {"form":{...},"data":{...},"request":{...}}
 * (borrowed; missing members are fine). On success returns 0 and *result
 * (a new reference). On a runtime error returns OSSE_EINVAL with the column
 * and reason in err (the caller decides what an error means: a false `when`,
 * a failed `require`); OSSE_ENOMEM on allocation failure. If inputs_read is
 * an object, every path actually evaluated is set in it to a deep copy of
 * the value read (null when missing), keyed by the path text ("form.x"),
 * also when evaluation then fails. Any thread; e is only read. */
int osse_expr_eval(const osse_expr_t *e, const json_t *root, json_t **result, json_t *inputs_read,
                   osse_err_t *err);

/* As osse_expr_eval for conditions: a result that is not a boolean is
 * OSSE_EINVAL ("result is integer, not boolean"). */
int osse_expr_eval_bool(const osse_expr_t *e, const json_t *root, int *result, json_t *inputs_read,
                        osse_err_t *err);

/* Appends to paths (a JSON array) each distinct path e mentions, in text
 * order, whether or not an evaluation would read it. Used to find which
 * steps' data an expression depends on. Returns 0 or OSSE_ENOMEM. */
int osse_expr_paths(const osse_expr_t *e, json_t *paths);

/* Rebuilds an evaluation root from a recorded inputs_read object, so that a
 * recorded rule can be re-run on exactly the values it read (SPEC §6
 * --recheck). *root is a new reference. Returns 0, OSSE_EINVAL when a key is
 * not a path, or OSSE_ENOMEM. */
int osse_expr_root_from_inputs(const json_t *inputs, json_t **root);

#endif
