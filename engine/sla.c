/* sla.c: SLA arithmetic: a step's deadline and warning from when it opens,
 * and the SLA time between two instants, in working time on the request's
 * calendar or in wall-clock time (SPEC §2 `sla`). Pure: reads the
 * definition and the calendars, changes nothing. */
#include "engine/internal.h"

#include "workflows/calendar.h"

bool osse__sla_working(const osse_wf_step_t *s)
{
    return osse_duration_working(&s->sla);
}

static const osse_calendar_t *calendar_of(osse_engine_t *e, const osse_request_t *r)
{
    osse_calendar_ent_t *c = r->wf->calendar ? osse_map_get(&e->calendars, r->wf->calendar) : NULL;
    return c ? &c->cal : NULL;
}

int64_t osse__sla_total(osse_engine_t *e, const osse_request_t *r, size_t i, int64_t from)
{
    const osse_wf_step_t *s = &r->wf->steps[i];
    const osse_calendar_t *cal = calendar_of(e, r);
    switch (s->sla.kind) {
    case OSSE_DUR_WALL: return osse_duration_add_wall(&s->sla, from) - from;
    case OSSE_DUR_WORKING_DAYS:
        return cal ? s->sla.count * osse_calendar_day_minutes(cal) * 60000 : 0;
    case OSSE_DUR_WORKING_HOURS: return cal ? s->sla.count * 3600000 : 0;
    default: return 0;
    }
}

int64_t osse__sla_add(osse_engine_t *e, const osse_request_t *r, size_t i, int64_t from,
                      int64_t amount)
{
    if (!osse__sla_working(&r->wf->steps[i]))
        return from + amount;
    const osse_calendar_t *cal = calendar_of(e, r);
    int64_t t = cal ? osse_calendar_add_ms(cal, from, amount) : INT64_MAX;
    return t == INT64_MAX ? 0 : t;
}

int64_t osse__sla_between(osse_engine_t *e, const osse_request_t *r, size_t i, int64_t a, int64_t b)
{
    if (!osse__sla_working(&r->wf->steps[i]))
        return b > a ? b - a : 0;
    const osse_calendar_t *cal = calendar_of(e, r);
    return cal ? osse_calendar_between_ms(cal, a, b) : 0;
}

int64_t osse__work_between(osse_engine_t *e, const osse_request_t *r, int64_t a, int64_t b)
{
    const osse_calendar_t *cal = calendar_of(e, r);
    if (cal)
        return osse_calendar_between_ms(cal, a, b);
    return b > a ? b - a : 0;
}

/* The deadline and the warning of an SLA of `total` starting at `from`. */
void osse__sla_times(osse_engine_t *e, const osse_request_t *r, size_t i, int64_t from,
                     int64_t total, int64_t *due, int64_t *warn)
{
    *due = *warn = 0;
    if (total <= 0)
        return;
    *due = osse__sla_add(e, r, i, from, total);
    int64_t w = (int64_t)((double)total * r->wf->steps[i].warn_at);
    *warn = w > 0 && w < total ? osse__sla_add(e, r, i, from, w) : 0;
}
