/* test_bounds.c: the bounds of a definition (workflow.h) and the checks that
 * were super-linear (issue 10: a 10,000-step chain took 1.9 s to publish).
 *
 * Each bound is a problem of osse_wf_check at its path naming its limit,
 * reported with the definition's other problems, and never a problem of
 * osse_wf_compile (a log may hold a definition published before the bound).
 * The shapes that were quadratic print what they take (bench/ measures; a
 * timed assertion flakes on a loaded machine); only the ones that would take
 * minutes (a regular-expression bomb reaching regcomp, a quadratic compile)
 * are held to a budget, 30 s, that no machine misses by noise. */
#define MINUTES_NOT_SECONDS 30000
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/test.h"
#include "common/alloc.h"
#include "workflows/expr.h"
#include "workflows/workflow.h"

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* A growing text buffer for building large definitions. */
typedef struct {
    char *p;
    size_t n, cap;
} text_t;

static void put(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(text_t *t, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(t->p ? t->p + t->n : NULL, t->p ? t->cap - t->n : 0, fmt, ap);
        va_end(ap);
        if (t->p && (size_t)k < t->cap - t->n) {
            t->n += (size_t)k;
            return;
        }
        t->cap = (t->cap + (size_t)k + 1) * 2;
        t->p = realloc(t->p, t->cap);
        if (!t->p)
            abort();
    }
}

static json_t *tree_of(const text_t *t)
{
    json_t *tree = NULL;
    osse_err_t err = {0};
    if (osse_wf_parse_text(t->p, t->n, &tree, &err))
        fprintf(stderr, "parse failed: %s\n", err.msg);
    return tree;
}

static bool has(const json_t *items, const char *path, const char *part)
{
    size_t i;
    json_t *d;
    json_array_foreach(items, i, d)
    {
        const char *p = json_string_value(json_object_get(d, "path"));
        const char *m = json_string_value(json_object_get(d, "message"));
        if (p && m && strcmp(p, path) == 0 && (!part || strstr(m, part)))
            return true;
    }
    return false;
}

#define EXPECT(items, path, part)                                                                  \
    do {                                                                                           \
        if (!has(items, path, part)) {                                                             \
            char *s__ = json_dumps(items, JSON_INDENT(1));                                         \
            fprintf(stderr, "expected %s: %s in %.2000s\n", path, part, s__);                      \
            free(s__);                                                                             \
            CHECK(!"not reported");                                                                \
        }                                                                                          \
    } while (0)

/* osse_wf_check's verdict; problems and warnings are filled. */
static int check(json_t *tree, json_t *problems, json_t *warnings)
{
    osse_wf_t *wf = NULL;
    int rc = osse_wf_check(tree, NULL, &wf, problems, warnings);
    osse_wf_free(wf);
    return rc;
}

static int compile(json_t *tree)
{
    osse_wf_t *wf = NULL;
    json_t *d = json_array();
    int rc = osse_wf_compile(tree, &wf, d);
    osse_wf_free(wf);
    json_decref(d);
    return rc;
}

static void test_steps_and_after(void)
{
    /* 300 steps, each after the one before; the last after 65 of them. */
    text_t t = {0};
    put(&t, "id: big\nsteps:\n  s0: {kind: task, agency: a}\n");
    for (int i = 1; i < 300; i++)
        put(&t, "  s%d: {kind: task, agency: a, after: [s%d]}\n", i, i - 1);
    put(&t, "  fan: {kind: task, agency: a, after: [");
    for (int i = 0; i < 65; i++)
        put(&t, "%ss%d", i ? ", " : "", i);
    put(&t, "]}\n  bad: {kind: nope}\n");
    json_t *tree = tree_of(&t), *p = json_array(), *w = json_array();
    CHECK_EQ_INT(check(tree, p, w), OSSE_EINVAL);
    EXPECT(p, "steps", "has 302 steps: a definition has at most 256");
    EXPECT(p, "steps.fan.after", "has 65 entries: a step comes after at most 64");
    EXPECT(p, "steps.bad.kind", "must be one of"); /* the others are still reported */
    /* A replay compiles what the log holds, bounds or not (but for the step
     * with a bad kind, which no osse ever published). */
    json_object_del(json_object_get(tree, "steps"), "bad");
    CHECK_EQ_INT(compile(tree), 0);
    json_decref(p);
    json_decref(w);
    json_decref(tree);
    free(t.p);
}

static void test_fields_values_patterns(void)
{
    text_t t = {0};
    put(&t, "id: f\nform:\n");
    for (int i = 0; i < 257; i++)
        put(&t, "  f%d: {type: integer}\n", i);
    put(&t, "  e: {type: enum, values: [");
    for (int i = 0; i < 1001; i++)
        put(&t, "%sv%d", i ? ", " : "", i);
    put(&t, "]}\n");
    put(&t, "  bomb: {type: string, pattern: '((a{1,255}){1,255}){1,255}'}\n");
    put(&t, "  long: {type: string, pattern: '");
    for (int i = 0; i < 257; i++)
        put(&t, "a");
    put(&t, "'}\n");
    /* Each under the per-pattern bound, together over the form's. */
    for (int i = 0; i < 5; i++)
        put(&t, "  p%d: {type: string, pattern: '^[0-9]{250}$'}\n", i);
    put(&t, "  fine: {type: string, pattern: '^[0-9]{13}$'}\n");
    put(&t, "steps:\n  a: {kind: task, agency: x}\n");
    json_t *tree = tree_of(&t), *p = json_array();
    double t0 = now_ms();
    CHECK_EQ_INT(check(tree, p, NULL), OSSE_EINVAL);
    double ms = now_ms() - t0;
    EXPECT(p, "form", "has 266 fields: a form has at most 256");
    EXPECT(p, "form.e.values", "has 1001 values: an enum has at most 1000");
    EXPECT(p, "form.bomb.pattern", "repeats too much");
    EXPECT(p, "form.bomb.pattern", "at most 256");
    EXPECT(p, "form.long.pattern", "is 257 bytes long: a pattern has at most 256");
    EXPECT(p, "form.p4.pattern", "together repeat too much");
    CHECK(!has(p, "form.p3.pattern", NULL));
    CHECK(!has(p, "form.fine.pattern", NULL));
    /* The bomb never reached regcomp, which takes minutes on it. */
    CHECK(ms < MINUTES_NOT_SECONDS);
    fprintf(stderr, "  regex bounds checked in %.1f ms\n", ms);
    json_decref(p);
    json_decref(tree);
    free(t.p);
}

static void test_inputs_and_rules(void)
{
    text_t t = {0};
    put(&t, "id: r\nform:\n  n: {type: integer, required: true}\nsteps:\n");
    put(&t, "  look:\n    kind: linkage\n    agency: reg\n    input:\n");
    for (int i = 0; i < 65; i++)
        put(&t, "      k%d: form.n\n", i);
    /* 20 rules of 3,995 bytes: the 17th passes 64 KiB. */
    for (int i = 0; i < 20; i++) {
        put(&t, "  s%d:\n    kind: task\n    agency: a\n    when: \"form.n == 0", i);
        for (int k = 0; k < 166; k++)
            put(&t, " || form.n == %010d", k);
        put(&t, "\"\n");
    }
    json_t *tree = tree_of(&t), *p = json_array();
    CHECK_EQ_INT(check(tree, p, NULL), OSSE_EINVAL);
    EXPECT(p, "steps.look.input", "has 65 entries: a lookup sends at most 64");
    EXPECT(p, "steps.s16.when", "more than 65536 bytes here");
    CHECK(!has(p, "steps.s15.when", NULL));
    CHECK(!has(p, "steps.s17.when", NULL)); /* said once, where the total is passed */
    json_decref(p);
    json_decref(tree);
    free(t.p);
}

static void test_too_many_values(void)
{
    /* 4,000 steps of four values each: past the 10,000 values, only the
     * size and the step count are reported. */
    text_t t = {0};
    put(&t, "id: v\nform:\n");
    for (int i = 0; i < 300; i++)
        put(&t, "  f%d: {type: boolean}\n", i);
    put(&t, "steps:\n");
    for (int i = 0; i < 4000; i++)
        put(&t, "  s%d: {kind: task, agency: a, junk: 1}\n", i);
    json_t *tree = tree_of(&t), *p = json_array();
    double t0 = now_ms();
    CHECK_EQ_INT(check(tree, p, NULL), OSSE_EINVAL);
    double ms = now_ms() - t0;
    EXPECT(p, "", "holds more than 10000 values");
    EXPECT(p, "steps", "at most 256");
    EXPECT(p, "form", "at most 256");
    CHECK_EQ_INT(json_array_size(p), 3);
    fprintf(stderr, "  16,900 values refused in %.2f ms\n", ms);
    json_decref(p);
    json_decref(tree);
    free(t.p);
}

static void test_parser_bound(void)
{
    text_t t = {0};
    put(&t, "id: x\nsteps: [");
    for (int i = 0; i < OSSE_WF_MAX_TEXT_NODES; i++)
        put(&t, "1,");
    put(&t, "1]\n");
    json_t *tree = NULL;
    osse_err_t err = {0};
    double t0 = now_ms();
    CHECK_EQ_INT(osse_wf_parse_text(t.p, t.n, &tree, &err), OSSE_EPARSE);
    double ms = now_ms() - t0;
    CHECK(tree == NULL);
    CHECK(strstr(err.msg, "more than 100000 keys and values") != NULL);
    CHECK(strncmp(err.msg, "line 2, column ", 15) == 0);
    fprintf(stderr, "  parse stopped at 100,000 nodes in %.1f ms\n", ms);
    free(t.p);
}

static void test_lists_are_capped(void)
{
    /* 2,000 unknown keys: 1,000 listed and one line for the rest. */
    text_t t = {0};
    put(&t, "id: c\nsteps:\n  a:\n    kind: task\n    agency: x\n");
    for (int i = 0; i < 2000; i++)
        put(&t, "    junk%d: 1\n", i);
    json_t *tree = tree_of(&t), *p = json_array();
    CHECK_EQ_INT(check(tree, p, NULL), OSSE_EINVAL);
    CHECK_EQ_INT(json_array_size(p), OSSE_WF_MAX_PROBLEMS + 1);
    EXPECT(p, "", "1000 more problems are not listed (the first 1000 are)");
    json_decref(p);
    json_decref(tree);
    free(t.p);
    /* 16 rules that warn, 250 times each: 100 warnings and one line
     * (50,000 of them took 90 ms to format); still 0. */
    t = (text_t){0};
    put(&t, "id: w\nform:\n  n: {type: integer}\nsteps:\n");
    for (int i = 0; i < 16; i++) {
        put(&t, "  s%d: {kind: task, agency: a, when: 'form.n > 0", i);
        for (int k = 0; k < 249; k++)
            put(&t, " && form.n > %d", k);
        put(&t, "'}\n");
    }
    tree = tree_of(&t);
    p = json_array();
    json_t *w = json_array();
    double t0 = now_ms();
    CHECK_EQ_INT(check(tree, p, w), 0);
    double ms = now_ms() - t0;
    CHECK_EQ_INT(json_array_size(w), OSSE_WF_MAX_WARNINGS + 1);
    EXPECT(w, "steps.s0.when", "column 1: form.n may be null");
    CHECK(!has(w, "steps.s1.when", NULL));
    fprintf(stderr, "  16 rules of 250 warnings each checked in %.1f ms\n", ms);
    EXPECT(w, "", "only the first 100 warnings are listed");
    json_decref(p);
    json_decref(w);
    json_decref(tree);
    free(t.p);
}

static json_t *task(const char *after, const char *when)
{
    json_t *s = json_pack("{s:s,s:s}", "kind", "task", "agency", "a");
    if (after)
        json_object_set_new(s, "after", json_pack("[s]", after));
    if (when)
        json_object_set_new(s, "when", json_string(when));
    return s;
}

static void test_linear_shapes(void)
{
    /* The shapes that were quadratic, at sizes that took seconds (a
     * 10,000-step chain 0.9 s, 100,000 enum values 16 s; twice the steps
     * took four times as long). Trees are built directly, past the
     * parser's bound, and compiled as a replay does: without bounds, so
     * all of it runs. The budget is generous (a loaded machine, a sanitizer
     * build); these take 10 to 60 ms in a Release build. */
    enum { N = 20000 };
    static const char *const what[] = {"chain", "fan-in", "data paths", "enum values"};
    for (int k = 0; k < 4; k++) {
        json_t *steps = json_object(), *tree = json_pack("{s:s}", "id", "s");
        char name[32], prev[32], rule[64];
        if (k == 3) {
            json_t *values = json_array();
            for (int i = 0; i < 5 * N; i++) {
                snprintf(name, sizeof name, "v%d", i);
                json_array_append_new(values, json_string(name));
            }
            json_object_set_new(tree, "form",
                                json_pack("{s:{s:s,s:o}}", "e", "type", "enum", "values", values));
            json_object_set_new(steps, "a", task(NULL, NULL));
        } else {
            json_t *all = json_array();
            for (int i = 0; i < N; i++) {
                snprintf(name, sizeof name, "s%d", i);
                snprintf(prev, sizeof prev, "s%d", i - 1);
                snprintf(rule, sizeof rule, "data.s%d.x == 1", i - 1);
                json_object_set_new(steps, name,
                                    task(k == 0 && i ? prev : NULL, k == 2 && i ? rule : NULL));
                json_array_append_new(all, json_string(name));
            }
            json_t *last = task(NULL, NULL);
            json_object_set_new(last, "after", k == 1 ? all : json_array());
            if (k != 1)
                json_decref(all);
            json_object_set_new(steps, "last", last);
        }
        json_object_set_new(tree, "steps", steps);
        double t0 = now_ms();
        int rc = compile(tree);
        double ms = now_ms() - t0;
        fprintf(stderr, "  compile of %s, %d: %.1f ms\n", what[k], k == 3 ? 5 * N : N, ms);
        CHECK_EQ_INT(rc, 0);
        CHECK(ms < MINUTES_NOT_SECONDS);
        json_decref(tree);
    }
}

static void test_long_and_chains(void)
{
    /* `form.x != null && ... && form.x > 1`: the guard reaches across the
     * whole flattened chain, as it did level by level. */
    static const osse_expr_field_t fields[] = {{"x", OSSE_EXPR_INTEGER, true},
                                               {"y", OSSE_EXPR_INTEGER, true},
                                               {"b", OSSE_EXPR_BOOLEAN, false}};
    static const char *const steps[] = {"s"};
    const osse_expr_env_t env = {fields, 3, steps, 1, NULL, NULL};
    text_t t = {0};
    put(&t, "form.x != null");
    for (int i = 0; i < 200; i++)
        put(&t, " && form.b");
    put(&t, " && form.x > 1 && form.y > 2 && form.b || form.y > 3 || form.x + 1 > 2");
    json_t *p = json_array(), *w = json_array();
    double t0 = now_ms();
    CHECK_EQ_INT(osse_expr_compile(t.p, t.n, &env, OSSE_EXPR_BOOLEAN, NULL, p, w), 0);
    double ms = now_ms() - t0;
    /* form.y > 2 warns (no guard), form.x > 1 does not; in the || part,
     * form.y > 3 and form.x + 1 warn (the guard does not reach past ||).
     * Columns count from the rule's start. */
    CHECK_EQ_INT(json_array_size(w), 3);
    char want[80];
    snprintf(want, sizeof want, "{\"column\":%d,", (int)(strstr(t.p, "form.y > 2") - t.p) + 1);
    char *s = json_dumps(w, JSON_COMPACT);
    CHECK(strstr(s, want) != NULL);
    CHECK(strstr(s, "form.x may be null") != NULL);
    free(s);
    fprintf(stderr, "  a chain of 200 && compiled in %.1f ms\n", ms);
    json_decref(p);
    json_decref(w);
    free(t.p);
    /* Type problems of the chain still come, at their operator. */
    p = json_array();
    CHECK_EQ_INT(osse_expr_compile("form.b && 1 && form.b && 'x'", 28, &env, OSSE_EXPR_BOOLEAN,
                                   NULL, p, NULL),
                 OSSE_EINVAL);
    CHECK_EQ_INT(json_array_size(p), 2);
    s = json_dumps(p, JSON_COMPACT);
    CHECK(strstr(s, "{\"column\":8,\"message\":\"'&&' needs booleans, not integer\"}") != NULL);
    CHECK(strstr(s, "{\"column\":23,\"message\":\"'&&' needs booleans, not string\"}") != NULL);
    free(s);
    json_decref(p);
}

int main(void)
{
    osse_alloc_setup_json();
    RUN(test_steps_and_after);
    RUN(test_fields_values_patterns);
    RUN(test_inputs_and_rules);
    RUN(test_too_many_values);
    RUN(test_parser_bound);
    RUN(test_lists_are_capped);
    RUN(test_linear_shapes);
    RUN(test_long_and_chains);
    return TEST_EXIT();
}
