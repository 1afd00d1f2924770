/* manual.c: the public service manual (SPEC §12), computed from definitions.
 *
 * GET /v1/public/services lists the latest version of every workflow and
 * GET /v1/public/services/{id} answers one workflow's manual: its texts, the
 * form's fields, the steps in an order that respects `after`, the fee and
 * the longest path through the steps' SLAs. Everything is computed on each
 * read from the latest compiled definition, its tree, the agencies' names
 * and the calendar's hours, so that the manual can never disagree with what
 * the engine does: there is nothing stored to keep in step.
 *
 * Invariant: reads only. The file sits at the views layer and calls nothing
 * in engine/ but util.c; it never emits.
 *
 * The longest path is a longest-path walk over the step graph (a DAG, which
 * compiling guarantees) in topological order: each step carries the best
 * path that ends at it, compared first by working minutes and then, on a
 * tie, by wall-clock time (docs/design.md "The service manual"). */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

#include "workflows/expr.h"

#define DAY_MS 86400000LL

/* Minutes of one working day on the workflow's calendar; 8 hours when the
 * workflow has none (then it has no working-time SLA either: compiling
 * refuses one without a calendar). */
static int64_t day_minutes(const osse_engine_t *e, const osse_wf_t *wf)
{
    const osse_calendar_ent_t *c = wf->calendar ? osse_map_get(&e->calendars, wf->calendar) : NULL;
    int64_t m = c ? osse_calendar_day_minutes(&c->cal) : 0;
    return m > 0 ? m : 480;
}

/* The agency's name, its id when it has none. NULL for NULL. */
static const char *agency_name(const osse_engine_t *e, const char *id)
{
    if (!id)
        return NULL;
    const osse_agency_t *a = osse_map_get(&e->agencies, id);
    return a && a->name && *a->name ? a->name : id;
}

/* A step's SLA as working minutes and as wall-clock milliseconds (a month
 * counted as 30 days and a year as 365: only ties are decided by it). */
static void sla_parts(const osse_wf_step_t *s, int64_t day_min, int64_t *work_min, int64_t *wall_ms)
{
    *work_min = 0;
    *wall_ms = 0;
    switch (s->sla.kind) {
    case OSSE_DUR_WORKING_DAYS: *work_min = s->sla.count * day_min; break;
    case OSSE_DUR_WORKING_HOURS: *work_min = s->sla.count * 60; break;
    case OSSE_DUR_WALL:
        *wall_ms = ((s->sla.years * 365 + s->sla.months * 30 + s->sla.days) * DAY_MS) + s->sla.ms;
        break;
    case OSSE_DUR_NONE: break;
    }
}

/* The steps in an order that respects `after`, ties in definition order:
 * Kahn's walk that always takes the first ready step. order has nsteps
 * entries. n is at most 256, so the quadratic scan is cheap. */
static void step_order(const osse_wf_t *wf, size_t *order)
{
    size_t n = wf->nsteps;
    bool *done = osse_calloc(n ? n : 1, sizeof *done);
    for (size_t k = 0; k < n; k++) {
        for (size_t i = 0; i < n; i++) {
            if (done[i])
                continue;
            bool ready = true;
            for (size_t j = 0; j < wf->steps[i].nafter && ready; j++)
                ready = done[wf->steps[i].after[j]];
            if (ready) {
                done[i] = true;
                order[k] = i;
                break;
            }
        }
    }
    free(done);
}

/* max_working_days as a JSON number: an integer when whole, else rounded
 * to two decimals. */
static json_t *working_days_json(int64_t minutes, int64_t day_min)
{
    if (minutes % day_min == 0)
        return json_integer(minutes / day_min);
    int64_t hundredths = (minutes * 100 + day_min / 2) / day_min;
    return json_real((double)hundredths / 100.0);
}

/* The longest path: *work its working minutes, and a new array of the
 * wall-clock SLA texts along it, in path order. */
static json_t *longest_path(const osse_wf_t *wf, const size_t *order, int64_t day_min,
                            int64_t *work)
{
    size_t n = wf->nsteps;
    int64_t *bw = osse_calloc(n ? n : 1, sizeof *bw), *bt = osse_calloc(n ? n : 1, sizeof *bt);
    size_t *prev = osse_calloc(n ? n : 1, sizeof *prev);
    size_t best = n;
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        const osse_wf_step_t *s = &wf->steps[i];
        int64_t w = 0, t = 0;
        prev[i] = n;
        for (size_t j = 0; j < s->nafter; j++) {
            size_t p = s->after[j];
            if (prev[i] == n || bw[p] > w || (bw[p] == w && bt[p] > t))
                w = bw[p], t = bt[p], prev[i] = p;
        }
        int64_t sw, st;
        sla_parts(s, day_min, &sw, &st);
        bw[i] = w + sw;
        bt[i] = t + st;
        if (best == n || bw[i] > bw[best] || (bw[i] == bw[best] && bt[i] > bt[best]))
            best = i;
    }
    *work = best < n ? bw[best] : 0;
    /* Walk back from the end, then turn the list round. */
    json_t *other = json_array();
    for (size_t i = best; i < n; i = prev[i])
        if (wf->steps[i].sla.kind == OSSE_DUR_WALL) {
            json_t *sla = json_object_get(
                json_object_get(json_object_get(wf->definition, "steps"), wf->steps[i].name),
                "sla");
            json_array_insert_new(other, 0, json_string(json_string_value(sla)));
        }
    free(bw);
    free(bt);
    free(prev);
    return other;
}

/* {"expression","fields"} of the payment step, or null: the form fields its
 * amount reads, each once, in text order. */
static json_t *fee_json(const osse_wf_t *wf)
{
    const osse_wf_step_t *pay = NULL;
    for (size_t i = 0; i < wf->nsteps && !pay; i++)
        if (wf->steps[i].kind == OSSE_STEP_KIND_PAYMENT && wf->steps[i].amount)
            pay = &wf->steps[i];
    if (!pay)
        return json_null();
    json_t *fields = json_array(), *paths = json_array();
    osse_expr_t *x = NULL;
    osse_err_t err = {0};
    if (osse_expr_parse(pay->amount, strlen(pay->amount), &x, NULL, &err) == 0 &&
        osse_expr_paths(x, paths) == 0) {
        size_t i;
        json_t *p;
        json_array_foreach(paths, i, p)
        {
            const char *s = json_string_value(p);
            if (!s || strncmp(s, "form.", 5) != 0)
                continue;
            size_t len = strcspn(s + 5, ".[");
            json_t *name = json_stringn(s + 5, len);
            bool seen = false;
            size_t j;
            json_t *q;
            json_array_foreach(fields, j, q) seen = seen || json_equal(q, name);
            if (!seen && len > 0)
                json_array_append(fields, name);
            json_decref(name);
        }
    }
    osse_expr_free(x);
    json_decref(paths);
    return json_pack("{s:s,s:o}", "expression", pay->amount, "fields", fields);
}

/* Every agency a step names as its `agency` (an escalation's is in the
 * manual's on_breach, not here: it decides only when another was silent),
 * each once, in definition order, by name. */
static json_t *agencies_json(const osse_engine_t *e, const osse_wf_t *wf)
{
    json_t *ids = json_object(), *names = json_array();
    for (size_t i = 0; i < wf->nsteps; i++) {
        const char *a = wf->steps[i].agency;
        if (a && !json_object_get(ids, a)) {
            json_object_set_new(ids, a, json_true());
            json_array_append_new(names, json_string(agency_name(e, a)));
        }
    }
    json_decref(ids);
    return names;
}

static json_t *fields_json(const osse_wf_t *wf)
{
    json_t *out = json_array(), *form = json_object_get(wf->definition, "form");
    for (size_t i = 0; i < wf->nfields; i++) {
        const osse_wf_field_t *fd = &wf->fields[i];
        const json_t *spec = json_object_get(form, fd->name);
        json_t *values = json_null();
        if (fd->type == OSSE_FIELD_ENUM) {
            values = json_array();
            for (size_t k = 0; k < fd->nvalues; k++)
                json_array_append_new(values, json_string(fd->values[k]));
        }
        const json_t *ct = json_object_get(spec, "content_types"),
                     *ms = json_object_get(spec, "max_size");
        json_array_append_new(out,
                              json_pack("{s:s,s:s?,s:s,s:b,s:b,s:o,s:O,s:O}", "name", fd->name,
                                        "label", json_string_value(json_object_get(spec, "label")),
                                        "type", osse_wf_field_type_name(fd->type), "required",
                                        fd->required, "pii", fd->pii, "values", values,
                                        "content_types", json_is_array(ct) ? ct : json_null(),
                                        "max_size", json_is_integer(ms) ? ms : json_null()));
    }
    return out;
}

static json_t *on_breach_json(const osse_engine_t *e, const osse_wf_step_t *s)
{
    if (s->sla.kind == OSSE_DUR_NONE)
        return json_null();
    switch (s->on_breach) {
    case OSSE_BREACH_NOTIFY: return json_string("notify");
    case OSSE_BREACH_APPROVE: return json_string("approve");
    case OSSE_BREACH_REJECT: return json_string("reject");
    case OSSE_BREACH_EXPIRE: return json_string("expire");
    case OSSE_BREACH_ESCALATE:
        return json_pack("{s:s}", "escalate", agency_name(e, s->escalate_to));
    }
    return json_null();
}

static json_t *steps_json(const osse_engine_t *e, const osse_wf_t *wf, const size_t *order)
{
    json_t *out = json_array(), *steps = json_object_get(wf->definition, "steps");
    for (size_t k = 0; k < wf->nsteps; k++) {
        const osse_wf_step_t *s = &wf->steps[order[k]];
        const json_t *spec = json_object_get(steps, s->name);
        json_array_append_new(
            out, json_pack("{s:s,s:s?,s:s,s:s?,s:s?,s:s?,s:o}", "name", s->name, "title",
                           json_string_value(json_object_get(spec, "title")), "kind",
                           osse_wf_step_kind_name(s->kind), "agency", agency_name(e, s->agency),
                           "sla", json_string_value(json_object_get(spec, "sla")), "when", s->when,
                           "on_breach", on_breach_json(e, s)));
    }
    return out;
}

/* The manual of w's latest version, or with full false its entry in the
 * services list. New reference. */
static json_t *manual_json(const osse_engine_t *e, const osse_wfent_t *w, bool full)
{
    const osse_wf_t *wf = w->versions[w->nversions - 1];
    size_t *order = osse_calloc(wf->nsteps ? wf->nsteps : 1, sizeof *order);
    step_order(wf, order);
    int64_t day_min = day_minutes(e, wf), work = 0;
    json_t *other = longest_path(wf, order, day_min, &work);
    json_t *out = json_pack("{s:s,s:i,s:s?}", "id", w->id, "version", (json_int_t)w->nversions,
                            "title", wf->title);
    if (full) {
        static const char *const texts[] = {"description", "legal_basis"};
        for (size_t i = 0; i < 2; i++) {
            const char *t = json_string_value(json_object_get(wf->definition, texts[i]));
            json_object_set_new(out, texts[i], t ? json_string(t) : json_null());
        }
        json_object_set_new(out, "fields", fields_json(wf));
        json_object_set_new(out, "steps", steps_json(e, wf, order));
        json_object_set_new(out, "fee", fee_json(wf));
        json_object_set_new(out, "max_working_days", working_days_json(work, day_min));
        json_object_set_new(out, "max_other", other);
    } else {
        json_object_set_new(out, "agencies", agencies_json(e, wf));
        json_object_set_new(out, "max_working_days", working_days_json(work, day_min));
        json_object_set_new(out, "fee", fee_json(wf));
        json_decref(other);
    }
    free(order);
    return out;
}

int osse_q_services(osse_engine_t *e, json_t **out, osse_fail_t *f)
{
    (void)f;
    size_t n;
    const char **keys = osse__sorted_keys(&e->workflows, &n);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        const osse_wfent_t *w = osse_map_get(&e->workflows, keys[i]);
        if (w && w->nversions > 0)
            json_array_append_new(list, manual_json(e, w, false));
    }
    free(keys);
    *out = json_pack("{s:o}", "services", list);
    return 0;
}

int osse_q_service(osse_engine_t *e, const char *id, json_t **out, osse_fail_t *f)
{
    const osse_wfent_t *w = osse_map_get(&e->workflows, id);
    if (!w || w->nversions == 0)
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "no service %s", id);
    *out = manual_json(e, w, true);
    return 0;
}
