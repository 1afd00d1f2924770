/* test_event_types.c: the table of SPEC §5's event types (event_types.h):
 * exactly SPEC's list, every name round-trips, near misses are refused, and
 * the flags say what SPEC §7 says. */
#include <string.h>

#include "common/err.h"
#include "storage/event_types.h"
#include "tests/test.h"

/* SPEC §5, copied by hand: the table must hold these and no other. */
static const char *const spec[] = {
    "WorkflowPublished",   "CalendarUpdated",     "AgencyUpdated",      "PrincipalCreated",
    "PrincipalRevoked",    "RequestSubmitted",    "StepOpened",         "StepSkipped",
    "TaskAutoApproved",    "TaskDecided",         "InfoProvided",       "SlaWarned",
    "SlaBreached",         "SlaRescheduled",      "TaskEscalated",      "LinkageCompleted",
    "LinkageFailed",       "PaymentDue",          "PaymentReceived",    "LicenceIssued",
    "LicenceExpired",      "LicenceRevoked",      "SlaOverdueNotice",   "NotificationDelivered",
    "NotificationFailed",  "RequestCompleted",    "RequestRejected",    "RequestWithdrawn",
    "RequestExpired",      "PersonalDataErased",  "StepFailed",         "RuleFailed",
    "SubscriptionUpdated", "SubscriptionDeleted", "AgencySecretRotated"};

static osse_event_type_t parse(const char *s)
{
    osse_event_type_t t = OSSE_EV__COUNT;
    CHECK_EQ_INT(osse_event_type_parse(s, strlen(s), &t), 0);
    return t;
}

static void test_spec_list(void)
{
    CHECK_EQ_INT(OSSE_EV__COUNT, sizeof spec / sizeof *spec);
    for (size_t i = 0; i < sizeof spec / sizeof *spec; i++) {
        osse_event_type_t t = parse(spec[i]);
        CHECK_EQ_STR(osse_event_type_name(t), spec[i]);
    }
    for (unsigned t = 0; t < OSSE_EV__COUNT; t++) {
        const char *name = osse_event_type_name((osse_event_type_t)t);
        CHECK_EQ_INT(parse(name), t);
    }
    CHECK_EQ_STR(osse_event_type_name(OSSE_EV__COUNT), "?");
    CHECK_EQ_INT(osse_event_type_flags(OSSE_EV__COUNT), 0);
}

static void test_refused(void)
{
    static const char *const bad[] = {
        "StepOpned", "stepopened",  "STEPOPENED", "StepOpened ", " StepOpened",
        "StepOpene", "StepOpenedX", "",           "Event",       "StepDecided",
        "?"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        osse_event_type_t t = OSSE_EV_RequestSubmitted;
        CHECK_EQ_INT(osse_event_type_parse(bad[i], strlen(bad[i]), &t), OSSE_EINVAL);
        CHECK_EQ_INT(t, OSSE_EV_RequestSubmitted); /* untouched */
    }
    /* The length counts: a prefix of a longer string is not the name. */
    osse_event_type_t t;
    CHECK_EQ_INT(osse_event_type_parse("StepOpenedX", 10, &t), 0);
    CHECK_EQ_INT(t, OSSE_EV_StepOpened);
    CHECK_EQ_INT(osse_event_type_parse("StepOpened\0x", 12, &t), OSSE_EINVAL);
}

static void test_kinds(void)
{
    CHECK_EQ_INT(osse_event_type_kind(OSSE_EV_WorkflowPublished), OSSE_SK_WORKFLOW);
    CHECK_EQ_INT(osse_event_type_kind(OSSE_EV_CalendarUpdated), OSSE_SK_CALENDAR);
    CHECK_EQ_INT(osse_event_type_kind(OSSE_EV_AgencyUpdated), OSSE_SK_AGENCY);
    CHECK_EQ_INT(osse_event_type_kind(OSSE_EV_AgencySecretRotated), OSSE_SK_AGENCY);
    CHECK_EQ_INT(osse_event_type_kind(OSSE_EV_PrincipalRevoked), OSSE_SK_PRINCIPAL);
    CHECK_EQ_INT(osse_event_type_kind(OSSE_EV_SubscriptionDeleted), OSSE_SK_SUBSCRIPTION);
    CHECK_EQ_INT(osse_event_type_kind(OSSE_EV_NotificationDelivered), OSSE_SK_DELIVERY);
    CHECK_EQ_INT(osse_event_type_kind(OSSE_EV_NotificationFailed), OSSE_SK_DELIVERY);
    CHECK_EQ_INT(osse_event_type_kind(OSSE_EV_SlaRescheduled), OSSE_SK_REQUEST);
    CHECK_EQ_INT(osse_event_type_kind(OSSE_EV_LicenceRevoked), OSSE_SK_REQUEST);
    CHECK_EQ_INT(osse_event_type_kind(OSSE_EV_PersonalDataErased), OSSE_SK_REQUEST);

    static const struct {
        const char *stream;
        int rc;
        osse_stream_kind_t kind;
    } cases[] = {{"request/r-1", 0, OSSE_SK_REQUEST},
                 {"delivery/r-1", 0, OSSE_SK_DELIVERY},
                 {"workflow/w", 0, OSSE_SK_WORKFLOW},
                 {"calendar/c", 0, OSSE_SK_CALENDAR},
                 {"agency/a", 0, OSSE_SK_AGENCY},
                 {"principal/p-1", 0, OSSE_SK_PRINCIPAL},
                 {"subscription/s", 0, OSSE_SK_SUBSCRIPTION},
                 {"request/", OSSE_EINVAL, 0},
                 {"request", OSSE_EINVAL, 0},
                 {"Request/r-1", OSSE_EINVAL, 0},
                 {"req/r-1", OSSE_EINVAL, 0},
                 {"", OSSE_EINVAL, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        osse_stream_kind_t k = OSSE_SK__COUNT;
        CHECK_EQ_INT(osse_stream_kind_parse(cases[i].stream, &k), cases[i].rc);
        if (cases[i].rc == 0)
            CHECK_EQ_INT(k, cases[i].kind);
    }
    CHECK_EQ_STR(osse_stream_kind_name(OSSE_SK_SUBSCRIPTION), "subscription");
}

static void test_flags(void)
{
    /* SPEC §7: an agency hears of its task opening, being escalated, getting
     * information back, nearing, breaching or staying past its SLA. */
    static const osse_event_type_t agency[] = {OSSE_EV_StepOpened,   OSSE_EV_TaskEscalated,
                                               OSSE_EV_InfoProvided, OSSE_EV_SlaWarned,
                                               OSSE_EV_SlaBreached,  OSSE_EV_SlaOverdueNotice};
    unsigned n = 0;
    for (unsigned t = 0; t < OSSE_EV__COUNT; t++)
        n += osse_event_type_has((osse_event_type_t)t, OSSE_EVF_AGENCY);
    CHECK_EQ_INT(n, sizeof agency / sizeof *agency);
    for (size_t i = 0; i < sizeof agency / sizeof *agency; i++)
        CHECK(osse_event_type_has(agency[i], OSSE_EVF_AGENCY));

    /* A subscription lists request events (SPEC §7: "subscribes a portal to
     * request events"), all of them and no other. */
    for (unsigned t = 0; t < OSSE_EV__COUNT; t++)
        CHECK_EQ_INT(osse_event_type_has((osse_event_type_t)t, OSSE_EVF_SUBSCRIBABLE),
                     osse_event_type_kind((osse_event_type_t)t) == OSSE_SK_REQUEST);
    CHECK(osse_event_type_has(OSSE_EV_LicenceRevoked, OSSE_EVF_SUBSCRIBABLE));
    CHECK(!osse_event_type_has(OSSE_EV_NotificationDelivered, OSSE_EVF_SUBSCRIBABLE));
    CHECK(!osse_event_type_has(OSSE_EV_NotificationFailed, OSSE_EVF_SUBSCRIBABLE));
    CHECK(!osse_event_type_has(OSSE_EV_SubscriptionUpdated, OSSE_EVF_SUBSCRIBABLE));
    CHECK(!osse_event_type_has(OSSE_EV_WorkflowPublished, OSSE_EVF_SUBSCRIBABLE));
    CHECK(osse_event_type_has(OSSE_EV_RequestCompleted, OSSE_EVF_SUBSCRIBABLE));
    CHECK(osse_event_type_has(OSSE_EV_PaymentReceived, OSSE_EVF_SUBSCRIBABLE));

    /* The events whose data set a step's deadlines. */
    static const osse_event_type_t sla[] = {OSSE_EV_StepOpened, OSSE_EV_InfoProvided,
                                            OSSE_EV_SlaRescheduled, OSSE_EV_TaskEscalated};
    n = 0;
    for (unsigned t = 0; t < OSSE_EV__COUNT; t++)
        n += osse_event_type_has((osse_event_type_t)t, OSSE_EVF_SLA);
    CHECK_EQ_INT(n, sizeof sla / sizeof *sla);
    for (size_t i = 0; i < sizeof sla / sizeof *sla; i++) {
        CHECK(osse_event_type_has(sla[i], OSSE_EVF_SLA));
        CHECK(osse_event_type_has(sla[i], OSSE_EVF_STEP)); /* deadlines are a step's */
    }

    /* A step is a request's; the end of a request may name one, or not. */
    for (unsigned t = 0; t < OSSE_EV__COUNT; t++)
        if (osse_event_type_has((osse_event_type_t)t, OSSE_EVF_STEP))
            CHECK_EQ_INT(osse_event_type_kind((osse_event_type_t)t), OSSE_SK_REQUEST);
    CHECK(osse_event_type_has(OSSE_EV_TaskDecided, OSSE_EVF_STEP));
    CHECK(osse_event_type_has(OSSE_EV_PaymentReceived, OSSE_EVF_STEP)); /* SPEC §4 */
    CHECK(!osse_event_type_has(OSSE_EV_RequestSubmitted, OSSE_EVF_STEP));
    CHECK(!osse_event_type_has(OSSE_EV_RequestRejected, OSSE_EVF_STEP));
    CHECK(!osse_event_type_has(OSSE_EV_RequestWithdrawn, OSSE_EVF_STEP));
}

int main(void)
{
    RUN(test_spec_list);
    RUN(test_refused);
    RUN(test_kinds);
    RUN(test_flags);
    return TEST_EXIT();
}
