/* state.c: the request and step state machines, as tables.
 *
 * Every state change in apply.c goes through osse__step_can /
 * osse__request_can: the allowed transitions live here, once, not in
 * scattered ifs. A transition outside the table in a replayed log means the
 * log is damaged. */
#include "engine/internal.h"

#include <string.h>

static const char *rs_names[] = {
#define X(n, s) s,
    OSSE_REQUEST_STATUSES(X)
#undef X
};

static const char *ss_names[] = {
#define X(n, s) s,
    OSSE_STEP_STATES(X)
#undef X
};

const char *osse__rstatus_name(osse_rstatus_t s)
{
    return (unsigned)s < OSSE_RS__COUNT ? rs_names[s] : "?";
}

const char *osse__sstate_name(osse_sstate_t s)
{
    return (unsigned)s < OSSE_SS__COUNT ? ss_names[s] : "?";
}

int osse__sstate_parse(const char *s, osse_sstate_t *out)
{
    for (int i = 0; i < OSSE_SS__COUNT; i++)
        if (strcmp(s, ss_names[i]) == 0) {
            *out = (osse_sstate_t)i;
            return 0;
        }
    return OSSE_EINVAL;
}

int osse__rstatus_parse(const char *s, osse_rstatus_t *out)
{
    for (int i = 0; i < OSSE_RS__COUNT; i++)
        if (strcmp(s, rs_names[i]) == 0) {
            *out = (osse_rstatus_t)i;
            return 0;
        }
    return OSSE_EINVAL;
}

#define P OSSE_SS_PENDING
#define O OSSE_SS_OPEN
#define W OSSE_SS_WAITING_APPLICANT

/* step_table[from] is the set of states reachable in one event. */
static const unsigned step_table[OSSE_SS__COUNT] = {
    [OSSE_SS_PENDING] = 1u << OSSE_SS_OPEN | 1u << OSSE_SS_SKIPPED | 1u << OSSE_SS_CANCELLED,
    [OSSE_SS_OPEN] = 1u << OSSE_SS_APPROVED | 1u << OSSE_SS_REJECTED |
                     1u << OSSE_SS_WAITING_APPLICANT | 1u << OSSE_SS_DONE | 1u << OSSE_SS_FAILED |
                     1u << OSSE_SS_CANCELLED,
    [OSSE_SS_WAITING_APPLICANT] = 1u << OSSE_SS_OPEN | 1u << OSSE_SS_CANCELLED,
};

#undef P
#undef O
#undef W

#define RS(x) (1u << OSSE_RS_##x)
#define ENDS (RS(COMPLETED) | RS(REJECTED) | RS(WITHDRAWN) | RS(EXPIRED))

static const unsigned request_table[OSSE_RS__COUNT] = {
    [OSSE_RS_IN_PROGRESS] = RS(AWAITING_INFO) | RS(AWAITING_PAYMENT) | ENDS,
    [OSSE_RS_AWAITING_INFO] = RS(IN_PROGRESS) | RS(AWAITING_PAYMENT) | ENDS,
    [OSSE_RS_AWAITING_PAYMENT] = RS(IN_PROGRESS) | RS(AWAITING_INFO) | ENDS,
};

bool osse__step_can(osse_sstate_t from, osse_sstate_t to)
{
    return (unsigned)from < OSSE_SS__COUNT && (step_table[from] >> to & 1u);
}

bool osse__request_can(osse_rstatus_t from, osse_rstatus_t to)
{
    return from == to || ((unsigned)from < OSSE_RS__COUNT && (request_table[from] >> to & 1u));
}

bool osse__rstatus_final(osse_rstatus_t s)
{
    return (ENDS >> s) & 1u;
}

bool osse__sstate_done(osse_sstate_t s)
{
    return s == OSSE_SS_APPROVED || s == OSSE_SS_DONE || s == OSSE_SS_SKIPPED;
}

bool osse__sstate_final(osse_sstate_t s)
{
    return step_table[s] == 0;
}
