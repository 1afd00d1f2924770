/* fuzz_definition.c: workflow definitions (workflows/yaml.c, workflow.c).
 *
 * `POST /v1/workflows` takes YAML or JSON text from any admin client, so
 * osse_wf_parse_text and osse_wf_compile must take any bytes without
 * crashing, looping or leaking (libfyaml's own leaks aside: lsan.supp).
 * Each input is one definition text. Properties asserted: compile fails
 * exactly when it reports problems, and a tree that parsed survives being
 * written out as JSON and read back (JSON is YAML: the API reads both).
 * Publishing's osse_wf_check (with a lookup that knows nothing) agrees with
 * the compile when the compile finds problems, and `osse validate`'s parse
 * with positions gives the same tree and a place for every problem. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "workflows/workflow.h"

static bool unknown(void *ud, const char *id)
{
    (void)ud;
    (void)id;
    return false;
}

static const char *taken(void *ud, const char *wf_id, const char *fixed)
{
    (void)ud;
    (void)wf_id;
    return fixed[0] == 'X' ? "other" : NULL;
}

static const osse_wf_refs_t REFS = {unknown, unknown, taken, NULL};

/* Publishing's checks on the same tree: never fewer problems than the
 * replay's compile, and every problem has a place in the text. */
static void check_publish(json_t *tree, const json_t *pos, int compile_rc)
{
    json_t *problems = json_array(), *warnings = json_array();
    osse_wf_t *wf = NULL;
    if (!problems || !warnings)
        abort();
    int rc = osse_wf_check(tree, &REFS, &wf, problems, warnings);
    if (rc == 0 && (compile_rc != 0 || !wf || json_array_size(problems)))
        abort();
    if (rc == OSSE_EINVAL && (wf || json_array_size(problems) == 0))
        abort();
    size_t i;
    json_t *d;
    json_array_foreach(problems, i, d)
    {
        int line = 0, col = 0;
        osse_wf_position(pos, json_string_value(json_object_get(d, "path")), &line, &col);
        if (line < 1 || col < 1)
            abort();
    }
    osse_wf_free(wf);
    json_decref(problems);
    json_decref(warnings);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *tree = NULL, *back = NULL, *details = NULL, *form = NULL;
    osse_wf_t *wf = NULL;
    osse_err_t err;
    if (osse_wf_parse_text((const char *)data, size, &tree, &err) != 0) {
        if (tree)
            abort();
        goto out;
    }
    char *s = json_dumps(tree, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s) {
        if (osse_wf_parse_text(s, strlen(s), &back, &err) != 0)
            abort();
        if (!json_equal(tree, back))
            abort();
        free(s);
    }
    if (!(details = json_array()))
        abort();
    json_t *tree2 = NULL, *pos = NULL;
    if (osse_wf_parse_text_pos((const char *)data, size, &tree2, &pos, &err) != 0)
        abort();
    if (!json_equal(tree, tree2))
        abort();
    json_decref(tree2);
    int rc = osse_wf_compile(tree, &wf, details);
    if (rc != OSSE_ENOMEM)
        check_publish(tree, pos, rc);
    json_decref(pos);
    if (rc == 0) {
        if (json_array_size(details) != 0 || !wf)
            abort();
        for (size_t i = 0; i < wf->nsteps; i++)
            if (osse_wf_step_index(wf, wf->steps[i].name) != (int)i)
                abort();
        /* An empty form: every required field is reported missing. */
        if (!(form = json_object()))
            abort();
        json_array_clear(details);
        (void)osse_wf_check_form(wf, form, false, details);
        (void)osse_wf_check_form(wf, form, true, details);
    } else if (rc == OSSE_EINVAL) {
        if (json_array_size(details) == 0 || wf)
            abort();
    }
out:
    osse_wf_free(wf);
    json_decref(form);
    json_decref(details);
    json_decref(back);
    json_decref(tree);
    return 0;
}
