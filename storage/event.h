/* event.h: one event, and its stored encoding (msgpack).
 *
 * The stored bytes of an event are exactly what osse_event_encode writes; they
 * are the leaf of the audit Merkle tree (issue 4), so the encoding must be
 * deterministic: a fixed key order (seq, stream, version, type, at, actor,
 * data), and `data` written in the json_t's own key order.
 *
 * Decoding treats the bytes as untrusted: every declared length is checked
 * against the bytes present before anything is allocated (msgpack-c 4.0.0
 * allocates whatever a header claims; see STYLE.md). */
#ifndef OSSE_STORAGE_EVENT_H
#define OSSE_STORAGE_EVENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "storage/event_types.h"

/* Events as fields (docs/design.md "Events as fields"): for the types
 * below, the emitter fills a struct instead of building a JSON tree, the
 * encoder writes it as the object of its members' keys in their order (the
 * same bytes as that tree), and the decoder gives it back for bytes of
 * exactly that shape (any other stays a tree). event.c's table `shapes`
 * spells each type's keys and kinds once. */

/* StepOpened: {"step","kind","agency","due_at","warn_at"}. A time of 0 is
 * null; else RFC 3339 ms UTC. */
typedef struct osse_ev_opened_s {
    const char *step, *kind;
    const char *agency; /* NULL: null */
    int64_t due_at, warn_at;
} osse_ev_opened_t;

/* RequestSubmitted: {"id","workflow","workflow_version","tracking_code",
 * "portal","form"}; the form (its sealed values as they are stored) as the
 * msgpack bytes of a JSON object, as osse_mp_put_json writes it: no tree
 * is built for it on the way in, and the request keeps those bytes. */
typedef struct osse_ev_submitted_s {
    const char *id, *workflow;
    uint32_t workflow_version;
    const char *tracking_code, *portal;
    const uint8_t *form;
    size_t form_len;
} osse_ev_submitted_t;

typedef struct osse_event_s {
    uint64_t seq;           /* global position, from 1 */
    char *stream;           /* "request/<id>", "workflow/<id>", ... */
    uint32_t version;       /* position in its stream, from 1 */
    osse_event_type_t type; /* SPEC §5; stored as its name; its kind is the stream's */
    int64_t at;             /* ms since epoch, UTC */
    char *actor_kind;       /* portal|agency|platform|payment|system */
    char *actor_id;         /* may be "" */
    json_t *data;           /* a JSON object; owned */
    /* Or, with data NULL, its data as fields, at most one of these and of
     * its type: the emitter's (borrowed), or the decoder's (the same block
     * as `owned`, freed with the event). */
    const osse_ev_opened_t *opened;
    const osse_ev_submitted_t *submitted;
    void *owned;
} osse_event_t;

/* Appends the msgpack encoding of ev to out. Strings are borrowed. Returns 0,
 * OSSE_ENOMEM, OSSE_ETOOBIG, or OSSE_EINVAL for a type out of range or a
 * stream that is not of the type's kind. Any thread. */
int osse_event_encode(const osse_event_t *ev, osse_buf_t *out);

/* Decodes untrusted bytes into out (which then owns its strings and data;
 * release with osse_event_clear). Returns 0 or OSSE_ECORRUPT with detail in
 * err; on error out holds nothing. Nesting deeper than 64 is refused, and so
 * is a type that SPEC §5 does not list or a stream of another kind than its
 * type's (the message names the type). Any thread. */
int osse_event_decode(const void *bytes, size_t len, osse_event_t *out, osse_err_t *err);

/* Checks bytes exactly as osse_event_decode does, building nothing (no
 * strings, no JSON): the verifier's fast path. On success sets *seq; on
 * failure returns what osse_event_decode returns, with its message in err.
 * Any thread. */
int osse_event_check(const void *bytes, size_t len, uint64_t *seq, osse_err_t *err);

/* Frees what out owns and zeroes it. NULL-safe. */
void osse_event_clear(osse_event_t *ev);

/* Sets fields (borrowed; a struct of ev->type's: event.h above) as ev's
 * data, in the member of osse_event_t that its type's shape names. Returns
 * 0, or OSSE_EINVAL when the type has no fields. */
int osse_event_set_fields(osse_event_t *ev, const void *fields);
/* Whether ev carries its data as fields. */
bool osse_event_has_fields(const osse_event_t *ev);

/* ev's data as JSON (new reference): its tree, the object its fields
 * encode to, or {} when it has neither. */
json_t *osse_event_data(const osse_event_t *ev);
/* The `step` string of ev's data, or NULL. */
const char *osse_event_step(const osse_event_t *ev);

/* The API shape of an event: {"seq","stream","version","type","at","actor":
 * {"kind","id"},"data"} with `at` as RFC 3339 ms UTC. New reference. */
json_t *osse_event_to_json(const osse_event_t *ev);

/* --- The msgpack pieces events are made of, for other stored records
 * (engine/record.c's request records): the same shortest forms, and a
 * reader with the same checks (every length against the bytes left, no
 * nesting deeper than the events' limit, strings UTF-8 without NUL).
 * Writers return 0, OSSE_ENOMEM or OSSE_ETOOBIG; readers 0 or
 * OSSE_ECORRUPT (detail in rd->err, prefixed "event:"). --- */

int osse_mp_put_uint(osse_buf_t *out, uint64_t v);
int osse_mp_put_int(osse_buf_t *out, int64_t v);
int osse_mp_put_str(osse_buf_t *out, const char *s); /* NULL is written as nil */
int osse_mp_put_array(osse_buf_t *out, size_t n);
int osse_mp_put_json(osse_buf_t *out, const json_t *j); /* NULL is written as nil */

typedef struct osse_mp_rd_s {
    const uint8_t *p, *end;
    osse_err_t *err;
} osse_mp_rd_t;

int osse_mp_get_uint(osse_mp_rd_t *rd, uint64_t max, uint64_t *v);
int osse_mp_get_int(osse_mp_rd_t *rd, int64_t *v);
/* A string (malloc'd copy) or nil (*out NULL). */
int osse_mp_get_str(osse_mp_rd_t *rd, char **out);
/* An array header of exactly want elements (want SIZE_MAX: any; *n gets it). */
int osse_mp_get_array(osse_mp_rd_t *rd, size_t want, size_t *n);
/* A JSON value (new reference), or nil (*out NULL). */
int osse_mp_get_json(osse_mp_rd_t *rd, json_t **out);
/* Checks a JSON value or nil as osse_mp_get_json would, building nothing,
 * and gives its bytes (within rd's) for a later osse_mp_get_json or
 * osse_mp_put_raw. */
int osse_mp_skip_json(osse_mp_rd_t *rd, const uint8_t **start, size_t *len);
/* Bytes written as they are: a value osse_mp_skip_json gave. */
int osse_mp_put_raw(osse_buf_t *out, const void *bytes, size_t len);

#endif
