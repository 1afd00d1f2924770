/* event_types.h: the event types of SPEC §5, spelled once, with the kind of
 * stream each belongs to and what the engine does with it.
 *
 * SPEC §5's list "is complete: a type not in it is a damaged log". So the
 * table is the contract: it names every type SPEC lists, also those this
 * build does not emit yet (PaymentReceived, LicenceExpired, ...), and
 * nothing else. The decoder (event.c) turns the stored type into the enum
 * once and refuses a type that is not here, or one stored in a stream of
 * another kind, as OSSE_ECORRUPT; the encoder refuses the same. Everything
 * above storage then switches on the enum and tests flags instead of
 * comparing strings.
 *
 * Why in storage and not in engine: the decoder must know the types to
 * refuse a damaged event wherever events are read (the replay at start,
 * `osse replay`, `osse verify`, GET /v1/log), and storage may not include
 * engine (api -> engine -> {workflows, storage, net} -> common). The flags
 * are the engine's reading of SPEC, kept here so that a new type is one
 * line. */
#ifndef OSSE_STORAGE_EVENT_TYPES_H
#define OSSE_STORAGE_EVENT_TYPES_H

#include <stdbool.h>
#include <stddef.h>

/* Stream kinds (SPEC §5): a stream is "<kind>/<id>". */
#define OSSE_STREAM_KINDS(X)                                                                       \
    X(REQUEST, "request")                                                                          \
    X(DELIVERY, "delivery")                                                                        \
    X(WORKFLOW, "workflow")                                                                        \
    X(CALENDAR, "calendar")                                                                        \
    X(AGENCY, "agency")                                                                            \
    X(PRINCIPAL, "principal")                                                                      \
    X(SUBSCRIPTION, "subscription")

typedef enum {
#define X(n, s) OSSE_SK_##n,
    OSSE_STREAM_KINDS(X)
#undef X
        OSSE_SK__COUNT
} osse_stream_kind_t;

/* What an event type means to the engine. */
enum {
    /* The agency that holds the event's task is told by webhook (SPEC §7:
     * its task opens, is escalated, gets information back, nears, breaches
     * or stays past its SLA). */
    OSSE_EVF_AGENCY = 1u << 0,
    /* A subscription (PUT /v1/subscriptions) may list it: every request
     * event (SPEC §7), never a Notification* (a delivery about a delivery
     * would never end). */
    OSSE_EVF_SUBSCRIBABLE = 1u << 1,
    /* It moves an SLA: its data sets the deadlines (due_at, warn_at) of its
     * step, which applying it schedules. */
    OSSE_EVF_SLA = 1u << 2,
    /* Its data names the step of its request that it is about (`step`);
     * one that names no step of the request is a damaged event. */
    OSSE_EVF_STEP = 1u << 3,
};

/* name, stream kind, flags. In SPEC §5's order. */
#define OSSE_EVENTS(X)                                                                             \
    X(WorkflowPublished, WORKFLOW, 0)                                                              \
    X(CalendarUpdated, CALENDAR, 0)                                                                \
    X(AgencyUpdated, AGENCY, 0)                                                                    \
    X(PrincipalCreated, PRINCIPAL, 0)                                                              \
    X(PrincipalRevoked, PRINCIPAL, 0)                                                              \
    X(RequestSubmitted, REQUEST, OSSE_EVF_SUBSCRIBABLE)                                            \
    X(StepOpened, REQUEST, OSSE_EVF_SUBSCRIBABLE | OSSE_EVF_AGENCY | OSSE_EVF_SLA | OSSE_EVF_STEP) \
    X(StepSkipped, REQUEST, OSSE_EVF_SUBSCRIBABLE | OSSE_EVF_STEP)                                 \
    X(TaskAutoApproved, REQUEST, OSSE_EVF_SUBSCRIBABLE | OSSE_EVF_STEP)                            \
    X(TaskDecided, REQUEST, OSSE_EVF_SUBSCRIBABLE | OSSE_EVF_STEP)                                 \
    X(InfoProvided, REQUEST,                                                                       \
      OSSE_EVF_SUBSCRIBABLE | OSSE_EVF_AGENCY | OSSE_EVF_SLA | OSSE_EVF_STEP)                      \
    X(SlaWarned, REQUEST, OSSE_EVF_SUBSCRIBABLE | OSSE_EVF_AGENCY | OSSE_EVF_STEP)                 \
    X(SlaBreached, REQUEST, OSSE_EVF_SUBSCRIBABLE | OSSE_EVF_AGENCY | OSSE_EVF_STEP)               \
    X(SlaRescheduled, REQUEST, OSSE_EVF_SUBSCRIBABLE | OSSE_EVF_SLA | OSSE_EVF_STEP)               \
    X(TaskEscalated, REQUEST,                                                                      \
      OSSE_EVF_SUBSCRIBABLE | OSSE_EVF_AGENCY | OSSE_EVF_SLA | OSSE_EVF_STEP)                      \
    X(LinkageCompleted, REQUEST, OSSE_EVF_SUBSCRIBABLE | OSSE_EVF_STEP)                            \
    X(LinkageFailed, REQUEST, OSSE_EVF_SUBSCRIBABLE | OSSE_EVF_STEP)                               \
    X(PaymentDue, REQUEST, OSSE_EVF_SUBSCRIBABLE | OSSE_EVF_STEP)                                  \
    X(PaymentReceived, REQUEST, OSSE_EVF_SUBSCRIBABLE | OSSE_EVF_STEP)                             \
    X(LicenceIssued, REQUEST, OSSE_EVF_SUBSCRIBABLE | OSSE_EVF_STEP)                               \
    X(LicenceExpired, REQUEST, OSSE_EVF_SUBSCRIBABLE)                                              \
    X(LicenceRevoked, REQUEST, OSSE_EVF_SUBSCRIBABLE)                                              \
    X(SlaOverdueNotice, REQUEST, OSSE_EVF_SUBSCRIBABLE | OSSE_EVF_AGENCY | OSSE_EVF_STEP)          \
    X(NotificationDelivered, DELIVERY, 0)                                                          \
    X(NotificationFailed, DELIVERY, 0)                                                             \
    X(RequestCompleted, REQUEST, OSSE_EVF_SUBSCRIBABLE)                                            \
    X(RequestRejected, REQUEST, OSSE_EVF_SUBSCRIBABLE)                                             \
    X(RequestWithdrawn, REQUEST, OSSE_EVF_SUBSCRIBABLE)                                            \
    X(RequestExpired, REQUEST, OSSE_EVF_SUBSCRIBABLE)                                              \
    X(PersonalDataErased, REQUEST, OSSE_EVF_SUBSCRIBABLE)                                          \
    X(StepFailed, REQUEST, OSSE_EVF_SUBSCRIBABLE | OSSE_EVF_STEP)                                  \
    X(RuleFailed, REQUEST, OSSE_EVF_SUBSCRIBABLE | OSSE_EVF_STEP)                                  \
    X(SubscriptionUpdated, SUBSCRIPTION, 0)                                                        \
    X(SubscriptionDeleted, SUBSCRIPTION, 0)                                                        \
    X(AgencySecretRotated, AGENCY, 0)

typedef enum {
#define X(name, kind, flags) OSSE_EV_##name,
    OSSE_EVENTS(X)
#undef X
        OSSE_EV__COUNT
} osse_event_type_t;

/* The type's name as SPEC §5 spells it; "?" for a value out of range. */
const char *osse_event_type_name(osse_event_type_t t);
/* The type named by the len bytes at s (not NUL-terminated): 0, or
 * OSSE_EINVAL when no type has exactly this name (*out untouched). */
int osse_event_type_parse(const char *s, size_t len, osse_event_type_t *out);
/* The kind of stream the type belongs to. t must be in range. */
osse_stream_kind_t osse_event_type_kind(osse_event_type_t t);
/* The type's OSSE_EVF_* flags; 0 out of range. */
unsigned osse_event_type_flags(osse_event_type_t t);

static inline bool osse_event_type_has(osse_event_type_t t, unsigned flag)
{
    return (osse_event_type_flags(t) & flag) != 0;
}

/* "request", "delivery", ...; "?" out of range. */
const char *osse_stream_kind_name(osse_stream_kind_t k);
/* The kind of a stream "<kind>/<id>" (id not empty): 0, or OSSE_EINVAL. */
int osse_stream_kind_parse(const char *stream, osse_stream_kind_t *out);

#endif
