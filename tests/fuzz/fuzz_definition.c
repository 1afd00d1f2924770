/* fuzz_definition.c: workflow definitions (workflows/yaml.c, workflow.c).
 *
 * `POST /v1/workflows` takes YAML or JSON text from any admin client, so
 * osse_wf_parse_text and osse_wf_compile must take any bytes without
 * crashing, looping or leaking (libfyaml's own leaks aside: lsan.supp).
 * Each input is one definition text. Properties asserted: compile fails
 * exactly when it reports problems, and a tree that parsed survives being
 * written out as JSON and read back (JSON is YAML: the API reads both). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "workflows/workflow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *tree = NULL, *back = NULL, *details = NULL, *form = NULL;
    osse_wf_t *wf = NULL;
    osse_err_t err;
    if (osse_wf_parse_text((const char *)data, size, &tree, &err) != 0) {
        if (tree) abort();
        goto out;
    }
    char *s = json_dumps(tree, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s) {
        if (osse_wf_parse_text(s, strlen(s), &back, &err) != 0) abort();
        if (!json_equal(tree, back)) abort();
        free(s);
    }
    if (!(details = json_array())) abort();
    int rc = osse_wf_compile(tree, &wf, details);
    if (rc == 0) {
        if (json_array_size(details) != 0 || !wf) abort();
        for (size_t i = 0; i < wf->nsteps; i++)
            if (osse_wf_step_index(wf, wf->steps[i].name) != (int)i) abort();
        /* An empty form: every required field is reported missing. */
        if (!(form = json_object())) abort();
        json_array_clear(details);
        (void)osse_wf_check_form(wf, form, false, details);
        (void)osse_wf_check_form(wf, form, true, details);
    } else if (rc == OSSE_EINVAL) {
        if (json_array_size(details) == 0 || wf) abort();
    }
out:
    osse_wf_free(wf);
    json_decref(form);
    json_decref(details);
    json_decref(back);
    json_decref(tree);
    return 0;
}
