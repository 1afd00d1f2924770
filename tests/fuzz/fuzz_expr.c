/* fuzz_expr.c: the rule language (workflows/expr.c) on hostile text.
 *
 * Expressions arrive inside definitions published over HTTP, so the parser,
 * the static checker and the evaluator must take any bytes without crashing,
 * looping or leaking. Each input is one expression text: parsed, checked
 * against a fixed environment for every expected type, evaluated against a
 * fixed request, and its paths listed. One property is asserted too: the
 * `osse replay --recheck` invariant of expr.h, that evaluating again on the
 * root rebuilt from inputs_read gives the same verdict and the same value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "workflows/expr.h"

static const osse_expr_field_t FIELDS[] = {
    {"area", OSSE_EXPR_NUMBER, false},    {"floors", OSSE_EXPR_INTEGER, false},
    {"name", OSSE_EXPR_STRING, false},    {"ok", OSSE_EXPR_BOOLEAN, true},
    {"district", OSSE_EXPR_STRING, true}, {"start", OSSE_EXPR_STRING, true},
    {"id", OSSE_EXPR_STRING, false},      {"plans", OSSE_EXPR_STRING, false},
    {"missing", OSSE_EXPR_INTEGER, true},
};
static const char *const STEPS[] = {"zoning", "fire", "registry"};
static const osse_expr_env_t ENV = {
    FIELDS, sizeof FIELDS / sizeof *FIELDS, STEPS, sizeof STEPS / sizeof *STEPS, NULL, NULL};

/* A request as the engine would hand it over; "missing" is absent on purpose. */
static const char ROOT_JSON[] =
    "{\"form\":{\"area\":120.5,\"floors\":3,\"name\":\"\xe0\xb8\x81\xe0\xb8\xa3 Somchai\","
    "\"ok\":true,\"district\":\"bang-rak\",\"start\":\"2026-01-31\",\"id\":\"1101700230705\","
    "\"plans\":\"sha256:00ff\"},"
    "\"data\":{\"zoning\":{\"approved\":true,\"note\":\"fine\",\"score\":9007199254740993},"
    "\"fire\":{\"items\":[1,2.5,\"x\",null,[1,2],{\"k\":\"v\"}],\"max\":9223372036854775807,"
    "\"min\":-9223372036854775807},"
    "\"registry\":{\"owner\":{\"name\":\"A\",\"ids\":[\"1\",\"2\"]},\"area\":1e308}},"
    "\"request\":{\"submitted_at\":\"2026-03-02T09:15:00.000Z\"}}";

static json_t *root;

static void check_all(const osse_expr_t *e)
{
    static const osse_expr_type_t expects[] = {OSSE_EXPR_ANY, OSSE_EXPR_BOOLEAN, OSSE_EXPR_NUMBER,
                                               OSSE_EXPR_STRING};
    for (size_t i = 0; i < sizeof expects / sizeof *expects; i++) {
        json_t *problems = json_array(), *warnings = json_array();
        if (!problems || !warnings)
            abort();
        int rc = osse_expr_check(e, &ENV, expects[i], problems, warnings);
        /* EINVAL exactly when problems were reported. */
        if (rc == 0 && json_array_size(problems) != 0)
            abort();
        if (rc == OSSE_EINVAL && json_array_size(problems) == 0)
            abort();
        json_decref(problems);
        json_decref(warnings);
    }
}

static void eval_and_recheck(const osse_expr_t *e)
{
    json_t *inputs = json_object(), *result = NULL, *result2 = NULL, *root2 = NULL;
    osse_err_t err;
    if (!inputs)
        abort();
    int rc = osse_expr_eval(e, root, &result, inputs, &err);
    if (rc == OSSE_ENOMEM)
        goto out;
    if (osse_expr_root_from_inputs(inputs, &root2) != 0)
        abort(); /* its own keys */
    int rc2 = osse_expr_eval(e, root2, &result2, NULL, &err);
    if (rc2 != rc)
        abort();
    if (rc == 0 && !json_equal(result, result2))
        abort();
    int b;
    (void)osse_expr_eval_bool(e, root, &b, NULL, &err);
out:
    json_decref(result);
    json_decref(result2);
    json_decref(root2);
    json_decref(inputs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!root) {
        json_error_t jerr;
        root = json_loads(ROOT_JSON, 0, &jerr);
        if (!root)
            abort();
    }
    osse_expr_t *e = NULL;
    osse_err_t err;
    int col = 0;
    int rc = osse_expr_parse((const char *)data, size, &e, &col, &err);
    if (rc != 0) {
        if (e)
            abort();
        if (rc == OSSE_EPARSE && col < 1)
            abort(); /* a column is 1-based */
        return 0;
    }
    const char *text = osse_expr_text(e);
    if (strlen(text) != size || memcmp(text, data, size) != 0)
        abort();
    check_all(e);
    eval_and_recheck(e);
    json_t *paths = json_array();
    if (!paths)
        abort();
    (void)osse_expr_paths(e, paths);
    json_decref(paths);
    osse_expr_free(e);

    /* The one-call form used by definition validation must agree with parse. */
    json_t *problems = json_array();
    osse_expr_t *e2 = NULL;
    (void)osse_expr_compile((const char *)data, size, &ENV, OSSE_EXPR_ANY, &e2, problems, NULL);
    osse_expr_free(e2);
    json_decref(problems);
    return 0;
}
