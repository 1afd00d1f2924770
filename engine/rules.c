/* rules.c: evaluating a definition's rules on a request (SPEC §2 `when`,
 * `auto_approve`, `amount`, `require`). The values a rule may read are
 * {"form","data","request"}; each evaluation gives the record an event
 * carries ({"rule","inputs","result"} or "error"), so that a replay or a
 * recheck never re-evaluates against anything but these inputs. */
#include "engine/internal.h"

#include <string.h>

#include "workflows/expr.h"

json_t *osse__rule_root(const osse_engine_t *e, const osse_request_t *r)
{
    /* Linkage answers are sealed whole, as data.<step>. */
    json_t *data = json_object();
    const char *k;
    json_t *v;
    char path[160];
    json_object_foreach(r->data, k, v)
    {
        snprintf(path, sizeof path, "data.%s", k);
        json_object_set_new(data, k, osse__pii_open(e, r->id, path, v));
    }
    return json_pack("{s:o,s:o,s:{s:o}}", "form", osse__pii_form(e, r, OSSE_READ_PLAIN), "data",
                     data, "request", "submitted_at", osse__time_json(r->submitted_at));
}

/* Evaluates a rule on root (borrowed) into *record. Returns the value (new
 * reference) or NULL on an error. */
static json_t *run_rule_on(const json_t *root, const char *text, json_t **record)
{
    osse_expr_t *x = NULL;
    osse_err_t err = {0};
    json_t *inputs = json_object(), *result = NULL;
    int col = 0;
    if (osse_expr_parse(text, strlen(text), &x, &col, &err) == 0)
        osse_expr_eval(x, root, &result, inputs, &err);
    *record = json_pack("{s:s,s:o}", "rule", text, "inputs", inputs);
    if (result)
        json_object_set(*record, "result", result);
    else
        json_object_set_new(*record, "error", json_string(err.msg));
    osse_expr_free(x);
    return result;
}

json_t *osse__run_rule(const osse_engine_t *e, const osse_request_t *r, const char *text,
                       json_t **record)
{
    json_t *root = osse__rule_root(e, r);
    json_t *v = run_rule_on(root, text, record);
    json_decref(root);
    osse__pii_seal_inputs(e, r, *record);
    return v;
}

/* A condition is true only when it evaluates to the boolean true; an error
 * counts as false (SPEC §2), and is recorded. */
bool osse__run_condition_on(const json_t *root, const char *text, json_t **record)
{
    json_t *v = run_rule_on(root, text, record);
    bool yes = json_is_true(v);
    if (v && !json_is_boolean(v)) {
        json_object_del(*record, "result");
        json_object_set_new(*record, "error", json_string("the result is not a boolean"));
    }
    json_decref(v);
    return yes;
}

bool osse__run_condition(const osse_engine_t *e, const osse_request_t *r, const char *text,
                         json_t **record)
{
    json_t *root = osse__rule_root(e, r);
    bool yes = osse__run_condition_on(root, text, record);
    json_decref(root);
    osse__pii_seal_inputs(e, r, *record);
    return yes;
}
