/* fuzz_json.c: what osse does with a JSON request body before any state
 * changes: api/server.c's nesting limit and json_loadb(JSON_REJECT_DUPLICATES),
 * then the validators the engine calls on it: osse_wf_check_form (the `form`
 * of POST /v1/requests and /info) and osse_calendar_from_json (the whole body
 * of PUT /v1/calendars/{id}).
 *
 * Each input is one body. The form is checked against a workflow compiled
 * once from a fixed definition with every field type and constraint. Either
 * body.form (when it is an object) or the body itself is the form, so bare
 * forms make useful seeds. Properties asserted: a check fails exactly when
 * it reports problems; a calendar that parses round-trips through its
 * canonical JSON unchanged, and obeys calendar.h's rule
 * between(s, add(s, n)) == n. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/server.h"
#include "workflows/calendar.h"
#include "workflows/workflow.h"

#define MAX_FORM_FIELDS 256 /* engine/commands.c's limit before the form check */

static const char DEFINITION[] =
    "id: fuzz-every-field\n"
    "title: Every field type\n"
    "form:\n"
    "  s:    {type: string, required: true, max_length: 20, pattern: \"^[a-z]+[0-9]*$\"}\n"
    "  pii:  {type: string, pii: true}\n"
    "  i:    {type: integer, required: true, min: -5, max: 1000000}\n"
    "  n:    {type: number, min: 0.5, max: 1e9}\n"
    "  b:    {type: boolean}\n"
    "  d:    {type: date, required: true}\n"
    "  e:    {type: enum, values: [a, b, \"\xe0\xb8\x81\"]}\n"
    "  cid:  {type: citizen_id}\n"
    "  f:    {type: file}\n"
    "steps:\n"
    "  check:\n"
    "    kind: task\n"
    "    agency: district-office\n"
    "    when: form.i > 3 && form.s != \"x\"\n";

static osse_wf_t *wf;

static void init_wf(void)
{
    json_t *tree = NULL, *details = json_array();
    osse_err_t err;
    if (osse_wf_parse_text(DEFINITION, sizeof DEFINITION - 1, &tree, &err) != 0)
        abort();
    if (osse_wf_compile(tree, &wf, details) != 0)
        abort();
    json_decref(tree);
    json_decref(details);
}

static void check_form(const json_t *form)
{
    if (json_object_size(form) > MAX_FORM_FIELDS)
        return;
    for (int partial = 0; partial < 2; partial++) {
        json_t *details = json_array();
        if (!details)
            abort();
        int rc = osse_wf_check_form(wf, form, partial, details);
        if (rc == 0 && json_array_size(details) != 0)
            abort();
        if (rc == OSSE_EINVAL && json_array_size(details) == 0)
            abort();
        json_decref(details);
    }
}

static void check_calendar(const json_t *body)
{
    osse_calendar_t c = {0}, c2 = {0};
    json_t *details = json_array(), *canon = NULL, *canon2 = NULL;
    if (!details)
        abort();
    int rc = osse_calendar_from_json(body, &c, details);
    if (rc == OSSE_EINVAL && json_array_size(details) == 0)
        abort();
    if (rc != 0)
        goto out;
    if (json_array_size(details) != 0)
        abort();
    if (!(canon = osse_calendar_to_json(&c)))
        abort();
    if (osse_calendar_from_json(canon, &c2, NULL) != 0)
        abort();
    if (!(canon2 = osse_calendar_to_json(&c2)) || !json_equal(canon, canon2))
        abort();
    /* A few starts and counts, derived from the calendar so they vary. */
    static const int64_t starts[] = {0, 1772442900000, -86400000LL * 3653, 1772442900123};
    static const int64_t counts[] = {0, 1, 60000, 3600000 * 9, 86400000LL * 400};
    for (size_t i = 0; i < sizeof starts / sizeof *starts; i++) {
        (void)osse_calendar_is_working(&c, starts[i]);
        for (size_t k = 0; k < sizeof counts / sizeof *counts; k++) {
            int64_t t = osse_calendar_add_ms(&c, starts[i], counts[k]);
            if (t == INT64_MAX)
                continue;
            if (t < starts[i])
                abort();
            if (osse_calendar_between_ms(&c, starts[i], t) != counts[k])
                abort();
        }
    }
out:
    json_decref(canon);
    json_decref(canon2);
    json_decref(details);
    osse_calendar_close(&c);
    osse_calendar_close(&c2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!wf)
        init_wf();
    if (osse_server_too_deep(data, size))
        return 0;
    json_error_t jerr;
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (!body)
        return 0;
    if (json_is_object(body)) {
        json_t *form = json_object_get(body, "form");
        check_form(json_is_object(form) ? form : body);
        check_calendar(body);
    }
    json_decref(body);
    return 0;
}
