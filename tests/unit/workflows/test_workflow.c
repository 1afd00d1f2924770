/* test_workflow.c: definitions (parse, validate, compile), durations, forms. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/time.h"
#include "tests/test.h"
#include "workflows/workflow.h"

/* ---- helpers ------------------------------------------------------------ */

static json_t *parse(const char *text)
{
    json_t *t = NULL;
    osse_err_t err = {0};
    int rc = osse_wf_parse_text(text, strlen(text), &t, &err);
    if (rc != 0)
        fprintf(stderr, "parse failed: %s\n", err.msg);
    return t;
}

static int parse_err(const char *text, osse_err_t *err)
{
    json_t *t = NULL;
    int rc = osse_wf_parse_text(text, strlen(text), &t, err);
    json_decref(t);
    return rc;
}

/* Compiles YAML text; returns the compile result and fills details. */
static int compile(const char *text, json_t *details)
{
    json_t *t = parse(text);
    if (!t)
        return -999;
    osse_wf_t *wf = NULL;
    int rc = osse_wf_compile(t, &wf, details);
    if (rc == 0)
        CHECK(wf != NULL);
    osse_wf_free(wf);
    json_decref(t);
    return rc;
}

static bool has(const json_t *details, const char *path, const char *msg_part)
{
    size_t i;
    json_t *d;
    json_array_foreach(details, i, d)
    {
        const char *p = json_string_value(json_object_get(d, "path"));
        const char *m = json_string_value(json_object_get(d, "message"));
        if (p && m && strcmp(p, path) == 0 && (!msg_part || strstr(m, msg_part)))
            return true;
    }
    return false;
}

static void dump(const json_t *details)
{
    char *s = json_dumps(details, JSON_INDENT(1));
    fprintf(stderr, "details: %s\n", s);
    free(s);
}

/* Expects text to fail compiling with a problem at path whose message
 * contains msg_part. */
#define EXPECT_PROBLEM(text, path, msg_part)                                                       \
    do {                                                                                           \
        json_t *d__ = json_array();                                                                \
        CHECK_EQ_INT(compile(text, d__), OSSE_EINVAL);                                             \
        if (!has(d__, path, msg_part)) {                                                           \
            fprintf(stderr, "expected %s: %s\n", path, msg_part);                                  \
            dump(d__);                                                                             \
            CHECK(!"problem not reported");                                                        \
        }                                                                                          \
        json_decref(d__);                                                                          \
    } while (0)

#define HEAD "id: t\nsteps:\n"
#define OK_STEP "  a: {kind: task, agency: x}\n"

static const char *src_dir(void)
{
    const char *s = getenv("OSSE_SRC");
    return s ? s : ".";
}

static char *slurp(const char *rel, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", src_dir(), rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = '\0';
    fclose(f);
    *len = got;
    return buf;
}

/* ---- parsing ------------------------------------------------------------ */

static const char *yaml_def = "id: demo\n"
                              "title: \"Demo\"\n"
                              "form:\n"
                              "  n: {type: integer, min: -3, max: 0x10}\n"
                              "  r: {type: number, min: 1.5e2}\n"
                              "  flag: {type: boolean, required: true}\n"
                              "  q: {type: string, pattern: '123'}\n"
                              "steps:\n"
                              "  a:\n"
                              "    kind: task\n"
                              "    agency: x\n"
                              "    after: []\n"
                              "    when: ~\n";

static const char *json_def =
    "{\"id\": \"demo\", \"title\": \"Demo\",\n"
    " \"form\": {\"n\": {\"type\": \"integer\", \"min\": -3, \"max\": 16},\n"
    "          \"r\": {\"type\": \"number\", \"min\": 150.0},\n"
    "          \"flag\": {\"type\": \"boolean\", \"required\": true},\n"
    "          \"q\": {\"type\": \"string\", \"pattern\": \"123\"}},\n"
    " \"steps\": {\"a\": {\"kind\": \"task\", \"agency\": \"x\", \"after\": [], \"when\": "
    "null}}}\n";

static void test_parse_yaml_equals_json(void)
{
    json_t *y = parse(yaml_def), *j = parse(json_def);
    CHECK(y && j);
    CHECK(json_equal(y, j));
    /* Compact JSON, tabs and CRLF line ends are JSON too. */
    json_t *c = parse("{\"id\":\"demo\",\"n\":[1,2.5,\"x\",true,null],\"o\":{}}");
    json_t *c2 = parse("{\r\n\t\"id\": \"demo\",\r\n\t\"n\": [1, 2.5, \"x\", true, null],"
                       "\r\n\t\"o\": {}\r\n}\r\n");
    CHECK(c && c2 && json_equal(c, c2));
    CHECK(c && json_is_real(json_array_get(json_object_get(c, "n"), 1)));
    json_decref(c);
    json_decref(c2);
    /* Key order is kept. */
    const char *k;
    json_t *v;
    const char *want[] = {"n", "r", "flag", "q"};
    int i = 0;
    json_object_foreach(json_object_get(y, "form"), k, v)
    {
        if (i < 4)
            CHECK_EQ_STR(k, want[i]);
        i++;
    }
    /* Quoted scalars stay strings; plain ones follow the core schema. */
    CHECK(json_is_string(
        json_object_get(json_object_get(json_object_get(y, "form"), "q"), "pattern")));
    json_decref(y);
    json_decref(j);
}

static void test_parse_scalars(void)
{
    json_t *t = parse("a: 12\nb: -7\nc: 0o17\nd: 1.25\ne: .5\nf: true\ng: False\nh: null\n"
                      "i: ~\nj:\nk: \"12\"\nl: '1.5'\nm: yes\nn: 1e3\no: +3\np: 12abc\n"
                      "q: |\n  x\nr: !!str 1.0\n");
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK(json_integer_value(json_object_get(t, "a")) == 12);
    CHECK(json_integer_value(json_object_get(t, "b")) == -7);
    CHECK(json_integer_value(json_object_get(t, "c")) == 15);
    CHECK(json_is_real(json_object_get(t, "d")) &&
          json_real_value(json_object_get(t, "d")) == 1.25);
    CHECK(json_real_value(json_object_get(t, "e")) == 0.5);
    CHECK(json_is_true(json_object_get(t, "f")));
    CHECK(json_is_false(json_object_get(t, "g")));
    CHECK(json_is_null(json_object_get(t, "h")));
    CHECK(json_is_null(json_object_get(t, "i")));
    CHECK(json_is_null(json_object_get(t, "j")));
    CHECK_EQ_STR(json_string_value(json_object_get(t, "k")), "12");
    CHECK_EQ_STR(json_string_value(json_object_get(t, "l")), "1.5");
    CHECK_EQ_STR(json_string_value(json_object_get(t, "m")), "yes"); /* YAML 1.2, not 1.1 */
    CHECK(json_is_real(json_object_get(t, "n")));
    CHECK(json_integer_value(json_object_get(t, "o")) == 3);
    CHECK_EQ_STR(json_string_value(json_object_get(t, "p")), "12abc");
    CHECK_EQ_STR(json_string_value(json_object_get(t, "q")), "x\n");
    CHECK_EQ_STR(json_string_value(json_object_get(t, "r")), "1.0");
    json_decref(t);
}

static void test_parse_errors(void)
{
    osse_err_t err = {0};
    /* An unclosed flow list: libfyaml's own syntax error, with a position. */
    CHECK_EQ_INT(parse_err("id: x\nsteps: [a, b\nother: 1\n", &err), OSSE_EPARSE);
    CHECK(strncmp(err.msg, "line ", 5) == 0 && strstr(err.msg, "column"));
    fprintf(stderr, "  (syntax error: %s)\n", err.msg);

    CHECK_EQ_INT(parse_err("id: x\n  bad: indent\n", &err), OSSE_EPARSE);
    CHECK(strncmp(err.msg, "line 1, column 5: ", 18) == 0);

    CHECK_EQ_INT(parse_err("a: 1\nb: 2\na: 3\n", &err), OSSE_EPARSE);
    CHECK_EQ_STR(err.msg, "line 3, column 1: duplicate key \"a\"");

    CHECK_EQ_INT(parse_err("a: &x 1\nb: *x\n", &err), OSSE_EPARSE);
    CHECK(strncmp(err.msg, "line 2, column ", 15) == 0 && strstr(err.msg, "aliases"));

    CHECK_EQ_INT(parse_err("- 1\n- 2\n", &err), OSSE_EPARSE);
    CHECK(strstr(err.msg, "must be a mapping") != NULL);
    CHECK_EQ_INT(parse_err("just text\n", &err), OSSE_EPARSE);
    CHECK(strstr(err.msg, "must be a mapping") != NULL);
    CHECK_EQ_INT(parse_err("", &err), OSSE_EPARSE);
    CHECK_EQ_INT(parse_err("# only a comment\n", &err), OSSE_EPARSE);

    CHECK_EQ_INT(parse_err("a: 1\n---\nb: 2\n", &err), OSSE_EPARSE);
    CHECK(strstr(err.msg, "only one document") != NULL);

    CHECK_EQ_INT(parse_err("1: a\n", &err), OSSE_EPARSE);
    CHECK(strstr(err.msg, "not a string") != NULL);
    CHECK_EQ_INT(parse_err("? [a]\n: b\n", &err), OSSE_EPARSE);
    CHECK(strstr(err.msg, "keys must be strings") != NULL);
    CHECK_EQ_INT(parse_err("a: .inf\n", &err), OSSE_EPARSE);
    CHECK_EQ_INT(parse_err("a: 99999999999999999999\n", &err), OSSE_EPARSE);
    CHECK(strstr(err.msg, "out of range") != NULL);
    CHECK_EQ_INT(parse_err("a: \"x\\0y\"\n", &err), OSSE_EPARSE);

    /* Quoted keys that look like numbers are strings, and fine. */
    json_t *t = parse("\"1\": a\n");
    CHECK(t && json_object_get(t, "1"));
    json_decref(t);

    /* Depth: 64 levels are fine, 65 are not. */
    char deep[1024];
    size_t n = 0;
    for (int i = 0; i < 63; i++)
        n += (size_t)snprintf(deep + n, sizeof deep - n, "{a: ");
    n += (size_t)snprintf(deep + n, sizeof deep - n, "{}");
    for (int i = 0; i < 63; i++)
        deep[n++] = '}';
    deep[n] = '\0';
    t = parse(deep);
    CHECK(t != NULL);
    json_decref(t);
    n = 0;
    for (int i = 0; i < 64; i++)
        n += (size_t)snprintf(deep + n, sizeof deep - n, "{a: ");
    n += (size_t)snprintf(deep + n, sizeof deep - n, "[]");
    for (int i = 0; i < 64; i++)
        deep[n++] = '}';
    deep[n] = '\0';
    CHECK_EQ_INT(parse_err(deep, &err), OSSE_EPARSE);
    CHECK(strstr(err.msg, "nesting deeper than 64") != NULL);

    /* Thousands of levels must not hurt either. */
    size_t big = 20000;
    char *huge = malloc(big * 2 + 1);
    memset(huge, '[', big);
    memset(huge + big, ']', big);
    huge[2 * big] = '\0';
    CHECK_EQ_INT(parse_err(huge, &err), OSSE_EPARSE);
    free(huge);
}

/* ---- compiling ---------------------------------------------------------- */

static void test_compile_ok(void)
{
    json_t *t = parse(yaml_def);
    osse_wf_t *wf = NULL;
    json_t *details = json_array();
    CHECK_EQ_INT(osse_wf_compile(t, &wf, details), 0);
    CHECK_EQ_INT(json_array_size(details), 0);
    if (json_array_size(details))
        dump(details);
    if (wf) {
        CHECK_EQ_STR(wf->id, "demo");
        CHECK_EQ_STR(wf->title, "Demo");
        CHECK(wf->calendar == NULL);
        CHECK_EQ_INT(wf->nfields, 4);
        CHECK_EQ_INT(wf->fields[0].type, OSSE_FIELD_INTEGER);
        CHECK(wf->fields[0].has_min && wf->fields[0].min == -3 && wf->fields[0].max == 16);
        CHECK(wf->fields[2].required);
        CHECK_EQ_INT(wf->nsteps, 1);
        CHECK(wf->steps[0].when == NULL); /* null means absent */
        CHECK(wf->steps[0].warn_at == 0.8);
        CHECK_EQ_INT(wf->steps[0].on_breach, OSSE_BREACH_NOTIFY);
        CHECK(wf->definition == t);
        CHECK_EQ_INT(osse_wf_step_index(wf, "a"), 0);
        CHECK_EQ_INT(osse_wf_step_index(wf, "zz"), -1);
    }
    osse_wf_free(wf);
    osse_wf_free(NULL);
    json_decref(t);
    json_decref(details);
    CHECK_EQ_STR(osse_wf_field_type_name(OSSE_FIELD_CITIZEN_ID), "citizen_id");
    CHECK_EQ_STR(osse_wf_step_kind_name(OSSE_STEP_KIND_LINKAGE), "linkage");
}

static void test_compile_full_step(void)
{
    const char *text = "id: t\ncalendar: th-gov\n"
                       "form:\n  a: {type: string}\n  p: {type: string, pii: true}\n"
                       "steps:\n"
                       "  id_check:\n    kind: linkage\n    agency: dopa\n"
                       "    input: {citizen_id: form.a}\n    require: data.id_check.alive == true\n"
                       "    timeout: PT10S\n    retries: 5\n"
                       "  t1:\n    kind: task\n    agency: dbd\n    after: [id_check]\n"
                       "    sla: 2 working days\n    warn_at: 0.5\n"
                       "    on_breach: {escalate: boss}\n    auto_approve: true\n"
                       "  pay:\n    kind: payment\n    after: [t1]\n    amount: 500\n"
                       "  out:\n    kind: issue\n    after: [pay, t1]\n    number: X-{seq:4}\n"
                       "    valid_for: P1Y\n    public_fields: [a]\n";
    json_t *t = parse(text);
    osse_wf_t *wf = NULL;
    json_t *details = json_array();
    CHECK_EQ_INT(osse_wf_compile(t, &wf, details), 0);
    if (json_array_size(details))
        dump(details);
    if (wf) {
        CHECK_EQ_STR(wf->calendar, "th-gov");
        osse_wf_step_t *l = &wf->steps[0], *k = &wf->steps[1], *p = &wf->steps[2],
                       *o = &wf->steps[3];
        CHECK_EQ_INT(l->kind, OSSE_STEP_KIND_LINKAGE);
        CHECK_EQ_INT(l->timeout.kind, OSSE_DUR_WALL);
        CHECK_EQ_INT(l->timeout.ms, 10000);
        CHECK_EQ_INT(l->retries, 5);
        CHECK_EQ_STR(json_string_value(json_object_get(l->input, "citizen_id")), "form.a");
        CHECK_EQ_STR(l->require, "data.id_check.alive == true");
        CHECK_EQ_STR(k->agency, "dbd");
        CHECK_EQ_INT(k->nafter, 1);
        CHECK_EQ_INT(k->after[0], 0);
        CHECK_EQ_INT(k->sla.kind, OSSE_DUR_WORKING_DAYS);
        CHECK_EQ_INT(k->sla.count, 2);
        CHECK(k->warn_at == 0.5);
        CHECK_EQ_INT(k->on_breach, OSSE_BREACH_ESCALATE);
        CHECK_EQ_STR(k->escalate_to, "boss");
        CHECK_EQ_STR(k->auto_approve, "true");
        CHECK_EQ_STR(p->amount, "500");
        CHECK(p->agency == NULL);
        CHECK_EQ_INT(o->nafter, 2);
        CHECK_EQ_INT(o->after[0], 2);
        CHECK_EQ_INT(o->after[1], 1);
        CHECK_EQ_STR(o->number, "X-{seq:4}");
        CHECK_EQ_INT(o->valid_for.years, 1);
        CHECK_EQ_INT(o->npublic_fields, 1);
        CHECK_EQ_STR(o->public_fields[0], "a");
    }
    osse_wf_free(wf);
    json_decref(t);
    json_decref(details);
}

static void test_compile_top_level(void)
{
    json_t *d = json_array();
    json_t *arr = json_array();
    osse_wf_t *wf = NULL;
    CHECK_EQ_INT(osse_wf_compile(arr, &wf, d), OSSE_EINVAL);
    CHECK(has(d, "", "mapping"));
    json_decref(arr);
    json_decref(d);

    EXPECT_PROBLEM("id: t\nsteps:\n" OK_STEP "colour: red\n", "colour", "unknown key");
    EXPECT_PROBLEM("steps:\n" OK_STEP, "id", "is required");
    EXPECT_PROBLEM("id: t\n", "steps", "is required");
    EXPECT_PROBLEM("id: t\nsteps: {}\n", "steps", "non-empty");
    EXPECT_PROBLEM("id: t\nsteps: [a]\n", "steps", "non-empty mapping");
    EXPECT_PROBLEM("id: Bad\nsteps:\n" OK_STEP, "id", "must match");
    EXPECT_PROBLEM("id: -bad\nsteps:\n" OK_STEP, "id", "must match");
    EXPECT_PROBLEM("id: 12\nsteps:\n" OK_STEP, "id", "must match");
    EXPECT_PROBLEM("id: "
                   "a2345678901234567890123456789012345678901234567890123456789012345\n"
                   "steps:\n" OK_STEP,
                   "id", "must match");
    EXPECT_PROBLEM("id: t\ntitle: [x]\nsteps:\n" OK_STEP, "title", "must be a string");
    EXPECT_PROBLEM("id: t\ncalendar: 3\nsteps:\n" OK_STEP, "calendar", "calendar id");
    EXPECT_PROBLEM("id: t\nform: [a]\nsteps:\n" OK_STEP, "form", "mapping");
    /* 64 characters are fine. */
    json_t *ok = json_array();
    CHECK_EQ_INT(compile("id: a234567890123456789012345678901234567890123456789012345678901234\n"
                         "steps:\n" OK_STEP,
                         ok),
                 0);
    json_decref(ok);
}

static void test_compile_fields(void)
{
#define F(spec) "id: t\nform:\n  " spec "\nsteps:\n" OK_STEP
    EXPECT_PROBLEM(F("Bad: {type: string}"), "form.Bad", "field name");
    EXPECT_PROBLEM(F("a-b: {type: string}"), "form.a-b", "field name");
    EXPECT_PROBLEM(F("a: string"), "form.a", "mapping");
    EXPECT_PROBLEM(F("a: {required: true}"), "form.a.type", "is required");
    EXPECT_PROBLEM(F("a: {type: text}"), "form.a.type", "must be one of");
    EXPECT_PROBLEM(F("a: {type: string, colour: red}"), "form.a.colour", "unknown key");
    EXPECT_PROBLEM(F("a: {type: string, required: yes}"), "form.a.required", "true or false");
    EXPECT_PROBLEM(F("a: {type: string, pii: 1}"), "form.a.pii", "true or false");
    EXPECT_PROBLEM(F("a: {type: integer, max_length: 3}"), "form.a.max_length",
                   "not allowed for type integer");
    EXPECT_PROBLEM(F("a: {type: string, min: 3}"), "form.a.min", "not allowed for type string");
    EXPECT_PROBLEM(F("a: {type: date, values: [x]}"), "form.a.values", "not allowed for type date");
    EXPECT_PROBLEM(F("a: {type: boolean, pattern: x}"), "form.a.pattern", "not allowed");
    EXPECT_PROBLEM(F("a: {type: string, max_length: -1}"), "form.a.max_length", ">= 0");
    EXPECT_PROBLEM(F("a: {type: string, max_length: 1.5}"), "form.a.max_length", ">= 0");
    EXPECT_PROBLEM(F("a: {type: string, pattern: \"a(\"}"), "form.a.pattern",
                   "invalid regular expression");
    EXPECT_PROBLEM(F("a: {type: string, pattern: 5}"), "form.a.pattern", "must be a string");
    EXPECT_PROBLEM(F("a: {type: integer, min: x}"), "form.a.min", "must be a number");
    EXPECT_PROBLEM(F("a: {type: number, max: [1]}"), "form.a.max", "must be a number");
    EXPECT_PROBLEM(F("a: {type: integer, min: 5, max: 1}"), "form.a.min",
                   "must not be greater than max");
    EXPECT_PROBLEM(F("a: {type: enum, values: []}"), "form.a.values", "non-empty list");
    EXPECT_PROBLEM(F("a: {type: enum, values: x}"), "form.a.values", "non-empty list");
    EXPECT_PROBLEM(F("a: {type: enum}"), "form.a.values", "is required");
    EXPECT_PROBLEM(F("a: {type: enum, values: [x, 1]}"), "form.a.values[1]",
                   "must be a non-empty string");
    EXPECT_PROBLEM(F("a: {type: enum, values: [x, y, x]}"), "form.a.values[2]",
                   "duplicate value \"x\"");
    json_t *d = json_array();
    CHECK_EQ_INT(compile(F("a: {type: integer, min: 1, max: 1}"), d), 0);
    CHECK_EQ_INT(compile(F("a: {type: string, max_length: 0}"), d), 0);
    CHECK_EQ_INT(json_array_size(d), 0);
    json_decref(d);
#undef F
}

static void test_compile_steps(void)
{
#define S(body)                                                                                    \
    "id: t\nform:\n  f: {type: string}\n  p: {type: string, pii: true}\nsteps:\n" OK_STEP body
    EXPECT_PROBLEM(S("  B: {kind: task, agency: x}\n"), "steps.B", "step name");
    EXPECT_PROBLEM(S("  b: task\n"), "steps.b", "mapping");
    EXPECT_PROBLEM(S("  b: {agency: x}\n"), "steps.b.kind", "is required");
    EXPECT_PROBLEM(S("  b: {kind: review, agency: x}\n"), "steps.b.kind", "must be one of");
    EXPECT_PROBLEM(S("  b: {kind: task}\n"), "steps.b.agency", "is required for a task");
    EXPECT_PROBLEM(S("  b: {kind: linkage}\n"), "steps.b.agency", "is required for a linkage");
    EXPECT_PROBLEM(S("  b: {kind: task, agency: 5}\n"), "steps.b.agency", "agency id");
    EXPECT_PROBLEM(S("  b: {kind: payment}\n"), "steps.b.amount", "is required");
    EXPECT_PROBLEM(S("  b: {kind: task, agency: x, colour: 1}\n"), "steps.b.colour", "unknown key");
    EXPECT_PROBLEM(S("  b: {kind: task, agency: x, amount: 5}\n"), "steps.b.amount",
                   "not allowed for kind task");
    EXPECT_PROBLEM(S("  b: {kind: payment, amount: 5, input: {}}\n"), "steps.b.input",
                   "not allowed for kind payment");
    EXPECT_PROBLEM(S("  b: {kind: issue, require: x}\n"), "steps.b.require",
                   "not allowed for kind issue");
    EXPECT_PROBLEM(S("  b: {kind: linkage, agency: x, auto_approve: x}\n"), "steps.b.auto_approve",
                   "not allowed for kind linkage");
    /* after */
    EXPECT_PROBLEM(S("  b: {kind: task, agency: x, after: a}\n"), "steps.b.after", "list");
    EXPECT_PROBLEM(S("  b: {kind: task, agency: x, after: [a, nope]}\n"), "steps.b.after[1]",
                   "unknown step \"nope\"");
    EXPECT_PROBLEM(S("  b: {kind: task, agency: x, after: [a, a]}\n"), "steps.b.after[1]",
                   "duplicate step \"a\"");
    EXPECT_PROBLEM(S("  b: {kind: task, agency: x, after: [b]}\n"), "steps.b.after[0]",
                   "after itself");
    EXPECT_PROBLEM(S("  b: {kind: task, agency: x, after: [3]}\n"), "steps.b.after[0]",
                   "step name");
    /* expressions */
    EXPECT_PROBLEM(S("  b: {kind: task, agency: x, when: \"\"}\n"), "steps.b.when", "non-empty");
    EXPECT_PROBLEM(S("  b: {kind: task, agency: x, when: \"  \"}\n"), "steps.b.when", "non-empty");
    EXPECT_PROBLEM(S("  b: {kind: task, agency: x, when: [1]}\n"), "steps.b.when", "expression");
    EXPECT_PROBLEM(S("  b: {kind: task, agency: x, auto_approve: {a: 1}}\n"),
                   "steps.b.auto_approve", "expression");
    EXPECT_PROBLEM(S("  b: {kind: linkage, agency: x, require: \"\"}\n"), "steps.b.require",
                   "non-empty");
    EXPECT_PROBLEM(S("  b: {kind: payment, amount: \"\"}\n"), "steps.b.amount", "non-empty");
    EXPECT_PROBLEM(S("  b: {kind: linkage, agency: x, input: {id: [1]}}\n"), "steps.b.input.id",
                   "expression");
    EXPECT_PROBLEM(S("  b: {kind: linkage, agency: x, input: [form.f]}\n"), "steps.b.input",
                   "mapping");
    {
        size_t n = 5000;
        char *long_expr = malloc(n + 200);
        int off = sprintf(long_expr, S("  b: {kind: task, agency: x, when: \""));
        memset(long_expr + off, '1', n);
        strcpy(long_expr + off + n, "\"}\n");
        EXPECT_PROBLEM(long_expr, "steps.b.when", "longer than 4096");
        free(long_expr);
    }
    /* durations, warn_at, on_breach */
    EXPECT_PROBLEM(S("  b: {kind: task, agency: x, sla: 3 days}\n"), "steps.b.sla", "duration");
    EXPECT_PROBLEM(S("  b: {kind: task, agency: x, sla: 5}\n"), "steps.b.sla", "duration");
    EXPECT_PROBLEM(S("  b: {kind: linkage, agency: x, timeout: 10s}\n"), "steps.b.timeout",
                   "duration");
    EXPECT_PROBLEM(S("  b: {kind: linkage, agency: x, timeout: 1 working day}\n"),
                   "steps.b.timeout", "wall-clock");
    EXPECT_PROBLEM(S("  b: {kind: issue, valid_for: P1X}\n"), "steps.b.valid_for", "duration");
    EXPECT_PROBLEM(S("  b: {kind: task, agency: x, sla: P1D, warn_at: 1}\n"), "steps.b.warn_at",
                   "between 0 and 1");
    EXPECT_PROBLEM(S("  b: {kind: task, agency: x, sla: P1D, warn_at: 0}\n"), "steps.b.warn_at",
                   "between 0 and 1");
    EXPECT_PROBLEM(S("  b: {kind: task, agency: x, sla: P1D, warn_at: half}\n"), "steps.b.warn_at",
                   "between 0 and 1");
    EXPECT_PROBLEM(S("  b: {kind: task, agency: x, warn_at: 0.5}\n"), "steps.b.warn_at",
                   "without sla");
    EXPECT_PROBLEM(S("  b: {kind: task, agency: x, on_breach: reject}\n"), "steps.b.on_breach",
                   "without sla");
    EXPECT_PROBLEM(S("  b: {kind: task, agency: x, sla: P1D, on_breach: explode}\n"),
                   "steps.b.on_breach", "must be notify");
    EXPECT_PROBLEM(S("  b: {kind: task, agency: x, sla: P1D, on_breach: {escalate: 5}}\n"),
                   "steps.b.on_breach.escalate", "agency id");
    EXPECT_PROBLEM(S("  b: {kind: task, agency: x, sla: P1D, on_breach: {escalate: y, z: 1}}\n"),
                   "steps.b.on_breach", "must be notify");
    EXPECT_PROBLEM(S("  b: {kind: payment, amount: 1, sla: P1D, on_breach: {escalate: y}}\n"),
                   "steps.b.on_breach", "only to task");
    EXPECT_PROBLEM(S("  b: {kind: payment, amount: 1, sla: P1D, on_breach: approve}\n"),
                   "steps.b.on_breach", "only to task");
    /* linkage retries */
    EXPECT_PROBLEM(S("  b: {kind: linkage, agency: x, retries: 101}\n"), "steps.b.retries",
                   "0 to 100");
    EXPECT_PROBLEM(S("  b: {kind: linkage, agency: x, retries: -1}\n"), "steps.b.retries",
                   "0 to 100");
    EXPECT_PROBLEM(S("  b: {kind: linkage, agency: x, retries: 2.5}\n"), "steps.b.retries",
                   "0 to 100");
    /* issue */
    EXPECT_PROBLEM(S("  b: {kind: issue, number: 5}\n"), "steps.b.number", "template");
    EXPECT_PROBLEM(S("  b: {kind: issue, public_fields: f}\n"), "steps.b.public_fields", "list");
    EXPECT_PROBLEM(S("  b: {kind: issue, public_fields: [f, nope]}\n"), "steps.b.public_fields[1]",
                   "unknown form field \"nope\"");
    EXPECT_PROBLEM(S("  b: {kind: issue, public_fields: [f, f]}\n"), "steps.b.public_fields[1]",
                   "duplicate");
    EXPECT_PROBLEM(S("  b: {kind: issue, public_fields: [p]}\n"), "steps.b.public_fields[0]",
                   "pii");
    json_t *d = json_array();
    CHECK_EQ_INT(compile(S("  b: {kind: linkage, agency: x, retries: 0, timeout: PT1M}\n"
                           "  c: {kind: linkage, agency: x, retries: 100}\n"
                           "  e: {kind: task, agency: x, sla: P1D, on_breach: expire}\n"),
                         d),
                 0);
    CHECK_EQ_INT(json_array_size(d), 0);
    json_decref(d);
#undef S
}

static void test_compile_cycles(void)
{
    json_t *d = json_array();
    CHECK_EQ_INT(compile("id: t\nsteps:\n"
                         "  a: {kind: task, agency: x, after: [c]}\n"
                         "  b: {kind: task, agency: x, after: [a]}\n"
                         "  c: {kind: task, agency: x, after: [b]}\n"
                         "  d: {kind: task, agency: x, after: [a]}\n",
                         d),
                 OSSE_EINVAL);
    CHECK_EQ_INT(json_array_size(d), 1);
    CHECK(has(d, "steps.a.after", "cycle: a -> c -> b -> a"));
    if (!has(d, "steps.a.after", "cycle"))
        dump(d);
    json_decref(d);

    /* Two separate cycles are both reported. */
    d = json_array();
    CHECK_EQ_INT(compile("id: t\nsteps:\n"
                         "  a: {kind: task, agency: x, after: [b]}\n"
                         "  b: {kind: task, agency: x, after: [a]}\n"
                         "  c: {kind: task, agency: x, after: [d]}\n"
                         "  d: {kind: task, agency: x, after: [c]}\n",
                         d),
                 OSSE_EINVAL);
    CHECK_EQ_INT(json_array_size(d), 2);
    CHECK(has(d, "steps.a.after", "cycle: a -> b -> a"));
    CHECK(has(d, "steps.c.after", "cycle: c -> d -> c"));
    json_decref(d);

    /* A diamond is not a cycle; nor is a long chain. */
    d = json_array();
    CHECK_EQ_INT(compile("id: t\nsteps:\n"
                         "  a: {kind: task, agency: x}\n"
                         "  b: {kind: task, agency: x, after: [a]}\n"
                         "  c: {kind: task, agency: x, after: [a]}\n"
                         "  d: {kind: task, agency: x, after: [b, c]}\n",
                         d),
                 0);
    json_decref(d);
}

static void test_compile_many_problems(void)
{
    json_t *d = json_array();
    CHECK_EQ_INT(compile("id: Bad Id\nextra: 1\n"
                         "form:\n  seats: {type: integer, min: 10, max: 1}\n"
                         "  kind: {type: enum}\n"
                         "steps:\n"
                         "  fire:\n    kind: task\n    agency: fire-dept\n"
                         "    after: [health, fire]\n    sla: soon\n"
                         "  health: {kind: payment}\n",
                         d),
                 OSSE_EINVAL);
    CHECK(has(d, "id", "must match"));
    CHECK(has(d, "extra", "unknown key"));
    CHECK(has(d, "form.seats.min", "greater than max"));
    CHECK(has(d, "form.kind.values", "is required"));
    CHECK(has(d, "steps.fire.after[1]", "after itself"));
    CHECK(has(d, "steps.fire.sla", "duration"));
    CHECK(has(d, "steps.health.amount", "is required"));
    CHECK_EQ_INT(json_array_size(d), 7);
    json_decref(d);
}

static void test_examples_compile(void)
{
    const char *files[] = {"examples/workflows/restaurant-license.yaml",
                           "examples/workflows/building-permit.yaml",
                           "examples/workflows/food-premises-licence.yaml",
                           "examples/workflows/organic-certification.yaml",
                           "examples/workflows/commercial-registration.yaml"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        size_t len = 0;
        char *text = slurp(files[i], &len);
        CHECK(text != NULL);
        if (!text) {
            fprintf(stderr, "cannot read %s/%s (set OSSE_SRC)\n", src_dir(), files[i]);
            continue;
        }
        json_t *t = NULL;
        osse_err_t err = {0};
        CHECK_EQ_INT(osse_wf_parse_text(text, len, &t, &err), 0);
        if (!t) {
            fprintf(stderr, "%s: %s\n", files[i], err.msg);
            free(text);
            continue;
        }
        json_t *d = json_array();
        osse_wf_t *wf = NULL;
        CHECK_EQ_INT(osse_wf_compile(t, &wf, d), 0);
        if (json_array_size(d))
            dump(d);
        if (wf) {
            CHECK_EQ_STR(wf->calendar, "th-gov");
            if (i == 0) {
                CHECK_EQ_STR(wf->id, "restaurant-license");
                CHECK_EQ_INT(wf->nsteps, 5);
                const osse_wf_step_t *fee = &wf->steps[osse_wf_step_index(wf, "fee")];
                CHECK_EQ_INT(fee->nafter, 3);
                CHECK_EQ_INT(fee->kind, OSSE_STEP_KIND_PAYMENT);
                CHECK_EQ_INT(wf->steps[osse_wf_step_index(wf, "health")].on_breach,
                             OSSE_BREACH_ESCALATE);
            } else if (i == 1) {
                CHECK_EQ_STR(wf->id, "building-permit");
                const osse_wf_step_t *fee = &wf->steps[osse_wf_step_index(wf, "fee")];
                CHECK_EQ_INT(fee->nafter, 3);
                CHECK_EQ_INT(wf->steps[osse_wf_step_index(wf, "structural")].nafter, 1);
            }
        }
        osse_wf_free(wf);
        json_decref(d);
        json_decref(t);
        free(text);
    }
}

/* ---- durations ---------------------------------------------------------- */

static void test_durations(void)
{
    osse_duration_t d;
    CHECK_EQ_INT(osse_duration_parse("PT48H", &d), 0);
    CHECK(d.kind == OSSE_DUR_WALL && d.ms == 48 * 3600000LL && d.days == 0);
    CHECK_EQ_INT(osse_duration_parse("P3D", &d), 0);
    CHECK(d.kind == OSSE_DUR_WALL && d.days == 3 && d.ms == 0);
    CHECK_EQ_INT(osse_duration_parse("P1Y2M", &d), 0);
    CHECK(d.years == 1 && d.months == 2 && d.days == 0);
    CHECK_EQ_INT(osse_duration_parse("P1W", &d), 0);
    CHECK(d.days == 7);
    CHECK_EQ_INT(osse_duration_parse("P1W2D", &d), 0);
    CHECK(d.days == 9);
    CHECK_EQ_INT(osse_duration_parse("PT1H30M", &d), 0);
    CHECK(d.ms == 90 * 60000LL);
    CHECK_EQ_INT(osse_duration_parse("PT10S", &d), 0);
    CHECK(d.ms == 10000);
    CHECK_EQ_INT(osse_duration_parse("P1MT1M", &d), 0);
    CHECK(d.months == 1 && d.ms == 60000);
    CHECK_EQ_INT(osse_duration_parse("P1DT2H3M4S", &d), 0);
    CHECK(d.days == 1 && d.ms == 2 * 3600000LL + 3 * 60000 + 4000);
    CHECK_EQ_INT(osse_duration_parse("1 working day", &d), 0);
    CHECK(d.kind == OSSE_DUR_WORKING_DAYS && d.count == 1);
    CHECK_EQ_INT(osse_duration_parse("15 working days", &d), 0);
    CHECK(d.kind == OSSE_DUR_WORKING_DAYS && d.count == 15);
    CHECK_EQ_INT(osse_duration_parse("4 working hours", &d), 0);
    CHECK(d.kind == OSSE_DUR_WORKING_HOURS && d.count == 4);
    CHECK_EQ_INT(osse_duration_parse("1 working hour", &d), 0);
    CHECK(d.kind == OSSE_DUR_WORKING_HOURS && d.count == 1);

    const char *bad[] = {"",
                         "P",
                         "PT",
                         "P1DT",
                         "P1.5D",
                         "PT0.5H",
                         "p1d",
                         "P-1D",
                         "+P1D",
                         "P1D ",
                         " P1D",
                         "P1H",
                         "PT1D",
                         "P1D1Y",
                         "PT1S1M",
                         "P1M1M",
                         "P0D",
                         "PT0S",
                         "P1DX",
                         "1D",
                         "0 working days",
                         "-1 working days",
                         "1.5 working days",
                         "1 working",
                         "1  working days",
                         "one working day",
                         "1 working days ",
                         "1 Working Days",
                         "1 business day",
                         "15 days",
                         "99999999999 working days",
                         "P99999999999D",
                         "1 working minutes"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        d.kind = OSSE_DUR_WALL;
        if (osse_duration_parse(bad[i], &d) != OSSE_EPARSE)
            fprintf(stderr, "accepted bad duration \"%s\"\n", bad[i]);
        CHECK_EQ_INT(osse_duration_parse(bad[i], &d), OSSE_EPARSE);
        CHECK_EQ_INT(d.kind, OSSE_DUR_NONE);
    }
}

static int64_t at(const char *rfc3339)
{
    int64_t ms = 0;
    CHECK_EQ_INT(osse_time_parse(rfc3339, &ms), 0);
    return ms;
}

static void check_add(const char *dur, const char *from, const char *want)
{
    osse_duration_t d;
    char buf[OSSE_TIME_LEN];
    CHECK_EQ_INT(osse_duration_parse(dur, &d), 0);
    CHECK_EQ_STR(osse_time_fmt(osse_duration_add_wall(&d, at(from)), buf), want);
}

static void test_duration_add(void)
{
    check_add("PT48H", "2026-12-01T02:00:00Z", "2026-12-03T02:00:00.000Z");
    check_add("P3D", "2026-12-30T10:00:00Z", "2027-01-02T10:00:00.000Z");
    check_add("P1M", "2026-01-31T10:00:00Z", "2026-02-28T10:00:00.000Z");
    check_add("P1M", "2028-01-31T10:00:00Z", "2028-02-29T10:00:00.000Z");
    check_add("P1Y", "2028-02-29T00:00:00Z", "2029-02-28T00:00:00.000Z");
    check_add("P1Y2M", "2026-11-15T00:00:00Z", "2028-01-15T00:00:00.000Z");
    check_add("P11M", "2026-03-31T23:59:59.500Z", "2027-02-28T23:59:59.500Z");
    check_add("P1MT1H", "2026-01-31T23:30:00Z", "2026-03-01T00:30:00.000Z");
    check_add("P1W", "1969-12-31T12:00:00Z", "1970-01-07T12:00:00.000Z");
    check_add("P1M", "1969-12-31T12:00:00Z", "1970-01-31T12:00:00.000Z");
    osse_duration_t w;
    CHECK_EQ_INT(osse_duration_parse("2 working days", &w), 0);
    CHECK_EQ_INT(osse_duration_add_wall(&w, 1234), 1234); /* not wall time: unchanged */
}

/* ---- forms -------------------------------------------------------------- */

/* Makes a valid citizen id from 12 digits by computing the check digit. */
static void make_cid(const char *twelve, char out[14])
{
    int sum = 0;
    for (int i = 0; i < 12; i++)
        sum += (twelve[i] - '0') * (13 - i);
    memcpy(out, twelve, 12);
    out[12] = (char)('0' + (11 - sum % 11) % 10);
    out[13] = '\0';
}

static void test_citizen_id(void)
{
    char id[14];
    make_cid("110170023070", id);
    CHECK(osse_citizen_id_valid(id));
    /* Every other last digit is wrong. */
    for (char c = '0'; c <= '9'; c++) {
        char other[14];
        memcpy(other, id, 14);
        other[12] = c;
        CHECK_EQ_INT(osse_citizen_id_valid(other), c == id[12]);
    }
    /* Worked by hand: 1-1017-00230-70-? sum = 1*13+1*12+0*11+1*10+7*9+0*8+0*7+2*6+3*5+
     * 0*4+7*3+0*2 = 146; 146 mod 11 = 3; 11-3 = 8. */
    CHECK(osse_citizen_id_valid("1101700230708"));
    CHECK(!osse_citizen_id_valid("1101700230707"));
    /* (11 - 1) % 10 = 0: a sum = 1 mod 11 gives check digit 0;
     * (11 - 0) % 10 = 1: sum = 0 mod 11 gives 1. */
    make_cid("000000000000", id);
    CHECK_EQ_STR(id, "0000000000001");
    CHECK(osse_citizen_id_valid("0000000000001"));
    CHECK(!osse_citizen_id_valid("110170023070"));
    CHECK(!osse_citizen_id_valid("11017002307080"));
    CHECK(!osse_citizen_id_valid("110170023070a"));
    CHECK(!osse_citizen_id_valid("1-10170023070"));
    CHECK(!osse_citizen_id_valid(NULL));
}

static osse_wf_t *form_wf(void)
{
    json_t *t = parse("id: f\nform:\n"
                      "  name: {type: string, required: true, max_length: 5}\n"
                      "  code: {type: string, pattern: \"^[A-Z]{2}-[0-9]+$\"}\n"
                      "  n: {type: integer, min: 0, max: 10}\n"
                      "  x: {type: number, min: 0.5}\n"
                      "  ok: {type: boolean}\n"
                      "  day: {type: date}\n"
                      "  colour: {type: enum, values: [red, green]}\n"
                      "  cid: {type: citizen_id, required: true}\n"
                      "  doc: {type: file}\n"
                      "steps:\n" OK_STEP);
    osse_wf_t *wf = NULL;
    json_t *d = json_array();
    CHECK_EQ_INT(osse_wf_compile(t, &wf, d), 0);
    json_decref(d);
    json_decref(t);
    return wf;
}

/* Checks form (JSON text) and expects a problem at path with msg_part,
 * or no problem at all when path is NULL. */
static void expect_form(const osse_wf_t *wf, const char *form_json, bool partial, const char *path,
                        const char *msg_part)
{
    json_error_t jerr;
    json_t *form = json_loads(form_json, 0, &jerr);
    CHECK(form != NULL);
    json_t *d = json_array();
    int rc = osse_wf_check_form(wf, form, partial, d);
    if (!path) {
        CHECK_EQ_INT(rc, 0);
        if (rc)
            dump(d);
    } else {
        CHECK_EQ_INT(rc, OSSE_EINVAL);
        if (!has(d, path, msg_part)) {
            fprintf(stderr, "form %s: expected %s: %s\n", form_json, path, msg_part);
            dump(d);
            CHECK(!"form problem not reported");
        }
    }
    json_decref(d);
    json_decref(form);
}

static void test_forms(void)
{
    osse_wf_t *wf = form_wf();
    CHECK(wf != NULL);
    if (!wf)
        return;
    char cid[14], json[512];
    make_cid("310150012345", cid);
#define BASE "\"name\": \"Somchai\"" /* 7 chars: too long for max_length 5 */
    snprintf(json, sizeof json,
             "{\"name\": \"สมชาย\", \"cid\": \"%s\", \"code\": \"AB-12\", \"n\": 10,"
             " \"x\": 0.5, \"ok\": false, \"day\": \"2028-02-29\", \"colour\": \"red\","
             " \"doc\": \"f_123\"}",
             cid);
    /* Thai "สมชาย" is 5 code points (15 bytes): max_length counts code points. */
    expect_form(wf, json, false, NULL, NULL);
    snprintf(json, sizeof json, "{\"name\": \"สมชายa\", \"cid\": \"%s\"}", cid);
    expect_form(wf, json, false, "form.name", "at most 5 characters");
#define WITH(extra)                                                                                \
    (snprintf(json, sizeof json, "{\"name\": \"a\", \"cid\": \"%s\", %s}", cid, extra), json)
    expect_form(wf, WITH("\"n\": 3.0"), false, NULL, NULL);
    expect_form(wf, WITH("\"n\": null, \"doc\": null"), false, NULL, NULL);
    expect_form(wf, WITH("\"zzz\": 1"), false, "form.zzz", "unknown field");
    expect_form(wf, WITH("\"code\": \"ab-12\""), false, "form.code", "pattern");
    expect_form(wf, WITH("\"code\": 12"), false, "form.code", "must be a string");
    expect_form(wf, WITH("\"n\": 3.5"), false, "form.n", "must be an integer");
    expect_form(wf, WITH("\"n\": \"3\""), false, "form.n", "must be an integer");
    expect_form(wf, WITH("\"n\": 11"), false, "form.n", "must be at most 10");
    expect_form(wf, WITH("\"n\": -1"), false, "form.n", "must be at least 0");
    expect_form(wf, WITH("\"x\": 0.25"), false, "form.x", "must be at least 0.5");
    expect_form(wf, WITH("\"x\": true"), false, "form.x", "must be a number");
    expect_form(wf, WITH("\"x\": 7"), false, NULL, NULL);
    expect_form(wf, WITH("\"ok\": 1"), false, "form.ok", "true or false");
    expect_form(wf, WITH("\"day\": \"2027-02-29\""), false, "form.day", "YYYY-MM-DD");
    expect_form(wf, WITH("\"day\": \"2027-2-1\""), false, "form.day", "YYYY-MM-DD");
    expect_form(wf, WITH("\"day\": 20270201"), false, "form.day", "YYYY-MM-DD");
    expect_form(wf, WITH("\"colour\": \"blue\""), false, "form.colour", "one of: red, green");
    expect_form(wf, WITH("\"colour\": 1"), false, "form.colour", "one of");
    expect_form(wf, WITH("\"doc\": \"\""), false, "form.doc", "file id");
    expect_form(wf, WITH("\"doc\": 5"), false, "form.doc", "file id");
#undef WITH
    expect_form(wf, "{\"name\": \"a\"}", false, "form.cid", "is required");
    expect_form(wf, "{\"name\": \"a\", \"cid\": null}", false, "form.cid", "is required");
    expect_form(wf, "{\"name\": \"\", \"cid\": \"0000000000001\"}", false, "form.name",
                "is required");
    expect_form(wf, "{\"name\": \"a\", \"cid\": \"0000000000002\"}", false, "form.cid",
                "invalid check digit");
    expect_form(wf, "{\"name\": \"a\", \"cid\": \"000000000001\"}", false, "form.cid", "13 digits");
    expect_form(wf, "{\"name\": \"a\", \"cid\": 1101700230708}", false, "form.cid", "13 digits");
    /* White space alone is no value for a required string (issue point 11). */
    expect_form(wf, "{\"name\": \"   \", \"cid\": \"0000000000001\"}", false, "form.name",
                "is required (it holds only white space)");
    expect_form(wf, "{\"name\": \" \\t\\n\\u00a0\\u3000\\u200b\", \"cid\": \"0000000000001\"}",
                false, "form.name", "only white space");
    expect_form(wf, "{\"name\": \" a \", \"cid\": \"0000000000001\"}", false, NULL, NULL);
    expect_form(wf, "{\"name\": \"a\", \"code\": \"  \", \"cid\": \"0000000000001\"}", false,
                "form.code", "pattern"); /* optional: checked as any value */
    expect_form(wf, "{\"name\": \"  \"}", true, "form.name", "only white space");
    expect_form(wf, "{\"name\": \"\"}", true, "form.name", "is required");
    /* partial: required fields may be missing, but what is given is checked. */
    expect_form(wf, "{\"n\": 2}", true, NULL, NULL);
    expect_form(wf, "{\"n\": 20}", true, "form.n", "at most 10");
    /* Several problems are all reported. */
    {
        json_error_t jerr;
        json_t *form = json_loads("{\"n\": \"x\", \"ok\": 3, \"bogus\": 1}", 0, &jerr);
        json_t *d = json_array();
        CHECK_EQ_INT(osse_wf_check_form(wf, form, false, d), OSSE_EINVAL);
        CHECK_EQ_INT(json_array_size(d), 5); /* bogus, name, n, ok, cid */
        json_decref(d);
        json_decref(form);
    }
    {
        json_t *arr = json_array(), *d = json_array();
        CHECK_EQ_INT(osse_wf_check_form(wf, arr, false, d), OSSE_EINVAL);
        CHECK(has(d, "form", "object"));
        json_decref(arr);
        json_decref(d);
    }
#undef BASE
    osse_wf_free(wf);
}

/* ---- publishing (osse_wf_check) ------------------------------------------ */

static bool known(void *ud, const char *id)
{
    (void)ud;
    return strcmp(id, "x") == 0 || strcmp(id, "th-gov") == 0;
}

static const char *taken(void *ud, const char *wf_id, const char *fixed)
{
    (void)ud;
    return strcmp(wf_id, "other") != 0 && strcmp(fixed, "TAKEN-") == 0 ? "other" : NULL;
}

static const osse_wf_refs_t REFS = {known, known, taken, NULL};

/* osse_wf_check on YAML text; fills problems and warnings. */
static int check(const char *text, const osse_wf_refs_t *refs, json_t *problems, json_t *warnings)
{
    json_t *t = parse(text);
    if (!t)
        return -999;
    osse_wf_t *wf = NULL;
    int rc = osse_wf_check(t, refs, &wf, problems, warnings);
    CHECK((rc == 0) == (wf != NULL));
    osse_wf_free(wf);
    json_decref(t);
    return rc;
}

#define ISSUE(number) HEAD OK_STEP "  lic: {kind: issue, after: [a], number: \"" number "\"}\n"

static void expect_check(const char *text, const char *path, const char *msg_part)
{
    json_t *d = json_array();
    CHECK_EQ_INT(check(text, &REFS, d, NULL), OSSE_EINVAL);
    if (!has(d, path, msg_part)) {
        fprintf(stderr, "expected %s: %s\n", path, msg_part);
        dump(d);
        CHECK(!"problem not reported");
    }
    json_decref(d);
}

static void test_check_number_templates(void)
{
    json_t *d = json_array();
    CHECK_EQ_INT(check(ISSUE("RST-{yyyy}-{seq:6}"), &REFS, d, NULL), 0);
    CHECK_EQ_INT(check(ISSUE("RST-{bbbb}-{seq:1}"), &REFS, d, NULL), 0);
    CHECK_EQ_INT(check(ISSUE("{seq:9}"), &REFS, d, NULL), 0);
    CHECK_EQ_INT(json_array_size(d), 0);
    if (json_array_size(d))
        dump(d);
    json_decref(d);
    expect_check(ISSUE("FT-{seq:x}-{foo}"), "steps.lic.number",
                 "{seq:x}: N of {seq:N} must be a digit from 1 to 9");
    expect_check(ISSUE("FT-{seq:x}-{foo}"), "steps.lic.number",
                 "{foo} is not a placeholder: use {yyyy}, {bbbb} or {seq:N}");
    expect_check(ISSUE("FT-{seq:0}"), "steps.lic.number", "from 1 to 9");
    expect_check(ISSUE("FT-{seq:10}"), "steps.lic.number", "from 1 to 9");
    expect_check(ISSUE("FT-{yyyy}"), "steps.lic.number", "exactly one {seq:N}, not 0");
    expect_check(ISSUE("FT-{seq:2}-{seq:3}"), "steps.lic.number", "exactly one {seq:N}, not 2");
    expect_check(ISSUE("{yyyy}-{bbbb}-{seq:3}"), "steps.lic.number", "at most one year");
    expect_check(ISSUE("rst-{seq:3}"), "steps.lic.number", "only A-Z, 0-9 and '-', not 'r'");
    expect_check(ISSUE("R/{seq:3}"), "steps.lic.number", "not '/'");
    expect_check(ISSUE("R-{seq:3"), "steps.lic.number", "'{' without its '}'");
    expect_check(ISSUE("R-{YYYY}-{seq:3}"), "steps.lic.number", "{YYYY} is not a placeholder");
    /* Another workflow's fixed text, the default template's included. */
    expect_check(ISSUE("TAKEN-{seq:4}"), "steps.lic.number", "workflow other already issues");
    json_t *t = parse(ISSUE("TAKEN-{seq:4}")), *p = json_array();
    json_object_set_new(t, "id", json_string("other")); /* its own numbers do not count */
    osse_wf_t *wf = NULL;
    CHECK_EQ_INT(osse_wf_check(t, &REFS, &wf, p, NULL), 0);
    osse_wf_free(wf);
    json_decref(t);
    json_decref(p);
    char fixed[64];
    osse_wf_number_fixed("RST-{yyyy}-{seq:6}", fixed, sizeof fixed);
    CHECK_EQ_STR(fixed, "RST--");
    osse_wf_number_fixed(NULL, fixed, sizeof fixed);
    CHECK_EQ_STR(fixed, "LIC--");

    /* A replay compiles what an older osse published, template and all. */
    d = json_array();
    CHECK_EQ_INT(compile(ISSUE("FT-{seq:x}-{foo}"), d), 0);
    json_decref(d);
}

static void test_check_references(void)
{
    /* Every problem in one round: references next to the others. */
    const char *text = "id: t\ncalendar: nope-cal\nform:\n  n: {type: strin}\nsteps:\n"
                       "  a: {kind: task, agency: ghost, sla: P1D,"
                       " on_breach: {escalate: phantom}}\n"
                       "  b: {kind: task, agency: x, after: [zz]}\n";
    json_t *d = json_array();
    CHECK_EQ_INT(check(text, &REFS, d, NULL), OSSE_EINVAL);
    CHECK(has(d, "form.n.type", "must be one of"));
    CHECK(has(d, "steps.b.after[0]", "unknown step"));
    CHECK(has(d, "calendar", "unknown calendar nope-cal"));
    CHECK(has(d, "steps.a.agency", "unknown agency ghost"));
    CHECK(has(d, "steps.a.on_breach.escalate", "unknown agency phantom"));
    CHECK_EQ_INT(json_array_size(d), 5);
    json_decref(d);
    /* Without a lookup, references are not checked at all. */
    d = json_array();
    CHECK_EQ_INT(
        check("id: t\ncalendar: nope\nsteps:\n  a: {kind: task, agency: ghost}\n", NULL, d, NULL),
        0);
    json_decref(d);
    /* A working-time SLA needs the calendar (a rule of the definition: the
     * replay's compile has it too). */
    d = json_array();
    CHECK_EQ_INT(compile(HEAD "  a: {kind: task, agency: x, sla: 2 working days}\n", d),
                 OSSE_EINVAL);
    CHECK(has(d, "steps.a.sla", "working time needs the workflow's calendar"));
    json_decref(d);
    d = json_array();
    CHECK_EQ_INT(check("id: t\ncalendar: th-gov\nsteps:\n"
                       "  a: {kind: task, agency: x, sla: 2 working days}\n",
                       &REFS, d, NULL),
                 0);
    json_decref(d);
}

/* The text half on another thread, as publishing runs it on the pool. */
static void *check_text_thread(void *arg)
{
    void **io = arg;
    CHECK_EQ_INT(osse_wf_check_text(io[0], (osse_wf_checked_t **)&io[1]), 0);
    return NULL;
}

/* osse_wf_check_text then osse_wf_check_refs answer exactly as osse_wf_check. */
static void expect_halves(const char *text)
{
    json_t *t = parse(text), *one = json_array(), *two = json_array();
    json_t *w1 = json_array(), *w2 = json_array();
    osse_wf_t *wf1 = NULL, *wf2 = NULL;
    int rc1 = osse_wf_check(t, &REFS, &wf1, one, w1);
    void *io[2] = {t, NULL};
    pthread_t th;
    CHECK_EQ_INT(pthread_create(&th, NULL, check_text_thread, io), 0);
    CHECK_EQ_INT(pthread_join(th, NULL), 0);
    int rc2 = osse_wf_check_refs(io[1], &REFS, &wf2, two, w2);
    CHECK_EQ_INT(rc1, rc2);
    CHECK((wf1 != NULL) == (wf2 != NULL));
    CHECK(json_equal(one, two));
    CHECK(json_equal(w1, w2));
    if (!json_equal(one, two)) {
        dump(one);
        dump(two);
    }
    osse_wf_checked_free(io[1]);
    osse_wf_free(wf1);
    osse_wf_free(wf2);
    json_decref(one);
    json_decref(two);
    json_decref(w1);
    json_decref(w2);
    json_decref(t);
}

static void test_check_in_halves(void)
{
    /* A template's own problems, then its number taken, in step order,
     * between the references of the steps around it. */
    const char *text = "id: t\ncalendar: nope-cal\nform:\n  n: {type: strin}\nsteps:\n"
                       "  a: {kind: task, agency: ghost}\n"
                       "  lic: {kind: issue, after: [a], number: \"TAKEN-{seq:4}-{foo}\"}\n"
                       "  b: {kind: task, agency: phantom, after: [zz]}\n"
                       "  lic2: {kind: issue, after: [a], number: \"TAKEN-{seq:0}\"}\n";
    expect_halves(text);
    expect_halves(ISSUE("RST-{yyyy}-{seq:6}"));
    expect_halves(ISSUE("TAKEN-{seq:4}"));
    expect_halves("id: t\ncalendar: th-gov\nform:\n  seats: {type: integer}\nsteps:\n"
                  "  a: {kind: task, agency: x, sla: 2 working days, auto_approve: "
                  "form.seats < 5}\n");
    expect_halves("[1, 2]\n");

    /* Past the listed problems, a reference's problem is counted in the
     * closing note like any other. */
    char *big = malloc(64 * 1100 + 200);
    size_t n = (size_t)sprintf(big, "id: t\nform:\n");
    for (int i = 0; i < 1100; i++)
        n += (size_t)sprintf(big + n, "  f%d: {type: strin}\n", i);
    sprintf(big + n, "steps:\n  a: {kind: task, agency: ghost}\n");
    expect_halves(big);
    json_t *with = json_array(), *without = json_array();
    CHECK_EQ_INT(check(big, &REFS, with, NULL), OSSE_EINVAL);
    CHECK_EQ_INT(check(big, NULL, without, NULL), OSSE_EINVAL);
    CHECK_EQ_INT(json_array_size(with), OSSE_WF_MAX_PROBLEMS + 1);
    const char *mw = json_string_value(json_object_get(json_array_get(with, 1000), "message"));
    const char *mo = json_string_value(json_object_get(json_array_get(without, 1000), "message"));
    CHECK(mw && mo && strtol(mw, NULL, 10) == strtol(mo, NULL, 10) + 1);
    json_decref(with);
    json_decref(without);
    free(big);
}

static void test_check_warnings(void)
{
    const char *text = "id: t\nform:\n  seats: {type: integer}\n  area: {type: number, "
                       "required: true}\nsteps:\n"
                       "  a: {kind: task, agency: x, auto_approve: form.area < 50}\n"
                       "  fee: {kind: payment, after: [a], amount: 500 + 2 * form.seats}\n";
    json_t *d = json_array(), *w = json_array();
    CHECK_EQ_INT(check(text, &REFS, d, w), 0);
    CHECK_EQ_INT(json_array_size(w), 1);
    CHECK(has(w, "steps.fee.amount", "column 11: form.seats may be null"));
    json_decref(w);
    /* Warnings come with problems too, and never from a replay's compile. */
    w = json_array();
    CHECK_EQ_INT(check("id: t\nform:\n  vip: {type: boolean}\nsteps:\n"
                       "  a: {kind: task, agency: ghost, when: form.vip}\n",
                       &REFS, d, w),
                 OSSE_EINVAL);
    CHECK(has(w, "steps.a.when", "(form.vip ?? false)"));
    json_decref(w);
    w = json_array();
    CHECK_EQ_INT(check(HEAD "  a: {kind: task, agency: x}\n"
                            "  fee: {kind: payment, after: [a], amount: 500 + 2 * (form.s ?? 0)}\n",
                       &REFS, d, w),
                 OSSE_EINVAL); /* form.s does not exist */
    CHECK_EQ_INT(json_array_size(w), 0);
    json_decref(w);
    json_decref(d);
}

static void test_positions(void)
{
    const char *text = "# a comment\n"
                       "id: t\n"
                       "form:\n"
                       "  seats: {type: strin}\n"
                       "steps:\n"
                       "  a:\n"
                       "    kind: task\n"
                       "    after: [b, zz]\n"
                       "  b: {kind: task, agency: x}\n";
    json_t *t = NULL, *pos = NULL;
    osse_err_t err = {0};
    CHECK_EQ_INT(osse_wf_parse_text_pos(text, strlen(text), &t, &pos, &err), 0);
    int line = 0, col = 0;
    osse_wf_position(pos, "id", &line, &col);
    CHECK_EQ_INT(line, 2);
    CHECK_EQ_INT(col, 5);
    osse_wf_position(pos, "form.seats.type", &line, &col);
    CHECK_EQ_INT(line, 4);
    CHECK_EQ_INT(col, 17);
    osse_wf_position(pos, "steps.a", &line, &col); /* a mapping: its key */
    CHECK_EQ_INT(line, 6);
    CHECK_EQ_INT(col, 3);
    osse_wf_position(pos, "steps.a.after[1]", &line, &col);
    CHECK_EQ_INT(line, 8);
    CHECK_EQ_INT(col, 16);
    osse_wf_position(pos, "steps.a.agency", &line, &col); /* missing: its step */
    CHECK_EQ_INT(line, 6);
    CHECK_EQ_INT(col, 3);
    osse_wf_position(pos, "", &line, &col);
    CHECK_EQ_INT(line, 1);
    CHECK_EQ_INT(col, 1);
    /* The same tree as without positions. */
    json_t *t2 = parse(text);
    CHECK(json_equal(t, t2));
    json_decref(t2);
    json_decref(t);
    json_decref(pos);
    /* JSON text has positions too; a syntax error has none. */
    const char *js = "{\"id\": \"t\",\n \"steps\": {\"a\": {\"kind\": 5}}}";
    CHECK_EQ_INT(osse_wf_parse_text_pos(js, strlen(js), &t, &pos, &err), 0);
    osse_wf_position(pos, "steps.a.kind", &line, &col);
    CHECK_EQ_INT(line, 2);
    CHECK_EQ_INT(col, 26);
    json_decref(t);
    json_decref(pos);
    CHECK_EQ_INT(osse_wf_parse_text_pos("id: [", 5, &t, &pos, &err), OSSE_EPARSE);
    CHECK(t == NULL && pos == NULL);
}

int main(void)
{
    osse_alloc_setup_json();
    RUN(test_parse_yaml_equals_json);
    RUN(test_parse_scalars);
    RUN(test_parse_errors);
    RUN(test_compile_ok);
    RUN(test_compile_full_step);
    RUN(test_compile_top_level);
    RUN(test_compile_fields);
    RUN(test_compile_steps);
    RUN(test_compile_cycles);
    RUN(test_compile_many_problems);
    RUN(test_examples_compile);
    RUN(test_durations);
    RUN(test_duration_add);
    RUN(test_citizen_id);
    RUN(test_forms);
    RUN(test_check_number_templates);
    RUN(test_check_references);
    RUN(test_check_in_halves);
    RUN(test_check_warnings);
    RUN(test_positions);
    return TEST_EXIT();
}
