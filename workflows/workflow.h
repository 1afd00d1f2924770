/* workflow.h: workflow definitions: parse, validate, compile; form checks.
 *
 * A definition is one tree, written in YAML or JSON (SPEC §2). Parsing turns
 * the text into a jansson tree; compiling validates the tree and, when it
 * has no problem, builds an osse_wf_t. Validation reports every problem it
 * finds, each with the path of the offending key ("steps.fire.after[1]"),
 * never only the first. One function, osse_wf_check, makes every check of
 * publishing, for `POST /v1/workflows` and `osse validate` alike; references
 * to agencies, calendars and other workflows go through a lookup the caller
 * gives (the engine's catalog, or a _setup.yaml). osse_wf_compile is the
 * subset a replay needs: a definition already in the log compiles even if a
 * later osse made publishing stricter.
 *
 * Key order is kept: steps and form fields appear in definition order. */
#ifndef OSSE_WORKFLOWS_WORKFLOW_H
#define OSSE_WORKFLOWS_WORKFLOW_H

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

#define OSSE_WF_FIELD_TYPES(X)                                                                     \
    X(STRING, "string")                                                                            \
    X(INTEGER, "integer")                                                                          \
    X(NUMBER, "number")                                                                            \
    X(BOOLEAN, "boolean")                                                                          \
    X(DATE, "date")                                                                                \
    X(ENUM, "enum")                                                                                \
    X(CITIZEN_ID, "citizen_id")                                                                    \
    X(FILE, "file")

typedef enum {
#define X(n, s) OSSE_FIELD_##n,
    OSSE_WF_FIELD_TYPES(X)
#undef X
} osse_field_type_t;

#define OSSE_WF_STEP_KINDS(X)                                                                      \
    X(TASK, "task")                                                                                \
    X(LINKAGE, "linkage")                                                                          \
    X(PAYMENT, "payment")                                                                          \
    X(ISSUE, "issue")

typedef enum {
#define X(n, s) OSSE_STEP_KIND_##n,
    OSSE_WF_STEP_KINDS(X)
#undef X
} osse_step_kind_t;

const char *osse_wf_field_type_name(osse_field_type_t t);
const char *osse_wf_step_kind_name(osse_step_kind_t k);

typedef struct osse_wf_field_s {
    char *name;
    osse_field_type_t type;
    bool required, pii;
    bool has_max_length;
    int64_t max_length;
    bool has_pattern;
    regex_t pattern; /* POSIX ERE, compiled with REG_EXTENDED|REG_NOSUB */
    bool has_min, has_max;
    double min, max;
    char **values; /* enum values */
    size_t nvalues;
    int64_t max_size;     /* file: bytes, 0 = no limit of its own */
    char **content_types; /* file: lower-case media types; none = any */
    size_t ncontent_types;
} osse_wf_field_t;

/* A duration (SPEC §2): ISO 8601 wall-clock time, or working time. */
typedef enum {
    OSSE_DUR_NONE,
    OSSE_DUR_WALL,
    OSSE_DUR_WORKING_DAYS,
    OSSE_DUR_WORKING_HOURS
} osse_dur_kind_t;
typedef struct osse_duration_s {
    osse_dur_kind_t kind;
    int64_t years, months, days; /* OSSE_DUR_WALL: calendar parts... */
    int64_t ms;                  /* ...and the fixed part (weeks folded into days) */
    int64_t count;               /* OSSE_DUR_WORKING_*: N */
} osse_duration_t;

/* Parses "PT48H", "P3D", "P1Y2M", "P1W", "PT1H30M", "PT10S", "1 working day",
 * "15 working days", "4 working hours". Returns 0 or OSSE_EPARSE. */
int osse_duration_parse(const char *s, osse_duration_t *out);
/* True for "N working days" and "N working hours" (calendar time). */
bool osse_duration_working(const osse_duration_t *d);
/* Adds a wall-clock duration to an instant (UTC civil arithmetic; a month
 * end is clamped: Jan 31 + P1M = Feb 28/29). */
int64_t osse_duration_add_wall(const osse_duration_t *d, int64_t ms);

typedef enum {
    OSSE_BREACH_NOTIFY,
    OSSE_BREACH_APPROVE,
    OSSE_BREACH_REJECT,
    OSSE_BREACH_ESCALATE,
    OSSE_BREACH_EXPIRE
} osse_breach_t;

typedef struct osse_wf_step_s {
    char *name;
    osse_step_kind_t kind;
    char *agency;  /* NULL for payment/issue when absent */
    size_t *after; /* indices into osse_wf_t.steps */
    size_t nafter;
    char *when, *auto_approve, *require, *amount; /* expression text or NULL */
    osse_duration_t sla;                          /* kind NONE when absent */
    double warn_at;                               /* default 0.8 */
    osse_breach_t on_breach;
    char *escalate_to;         /* agency, for OSSE_BREACH_ESCALATE */
    osse_duration_t timeout;   /* linkage */
    int64_t retries;           /* linkage, default 0 */
    json_t *input;             /* linkage: object of expression strings, or NULL */
    char *number;              /* issue: number template */
    osse_duration_t valid_for; /* issue */
    char **public_fields;      /* issue */
    size_t npublic_fields;
} osse_wf_step_t;

typedef struct osse_wf_s {
    char *id;
    char *title;
    char *calendar; /* NULL when absent */
    osse_wf_field_t *fields;
    size_t nfields;
    osse_wf_step_t *steps; /* in definition order */
    size_t nsteps;
    osse_duration_t overdue_notice; /* wall-clock; kind NONE when absent */
    osse_duration_t retention;      /* wall-clock (SPEC §8); kind NONE when absent */
    json_t *definition;             /* the validated tree, owned */
} osse_wf_t;

/* Bounds of a definition, checked by osse_wf_check (publishing and `osse
 * validate`) and not by osse_wf_compile, so that a definition the log already
 * holds replays whatever a later osse bounds. Each broken bound is one
 * problem at its path, reported with every other problem. Chosen so that
 * checking the largest definition these allow takes a few milliseconds
 * (docs/design.md "Bounds of a definition"); expression text, nesting and
 * height are bounded by the rule language (workflows/expr.h) everywhere. */
#define OSSE_WF_MAX_STEPS 256        /* steps of a definition */
#define OSSE_WF_MAX_FIELDS 256       /* fields of its form (a submitted form has at most 256) */
#define OSSE_WF_MAX_AFTER 64         /* entries of one step's `after` */
#define OSSE_WF_MAX_INPUTS 64        /* entries of one linkage step's `input` */
#define OSSE_WF_MAX_VALUES 1000      /* values of one enum field */
#define OSSE_WF_MAX_PATTERN 256      /* bytes of one field's `pattern` */
#define OSSE_WF_MAX_RULES_TEXT 65536 /* bytes of all its rules (each at most 4096) */
/* Values in the whole tree (every scalar, mapping and list, keys not
 * counted): past it nothing else is checked, but the counts of steps and
 * fields. The bounds above do not multiply out (256 steps, each after 64
 * others, are 17,000 values already): this one bounds the whole. 256 steps
 * and 256 fields as people write them are about 4,000. */
#define OSSE_WF_MAX_NODES 10000
/* The parser's own bound, on keys and values, looser, so that a text of too
 * many steps (a 10,000-step chain is 90,000) still gets the step bound
 * named: past it osse_wf_parse_text stops with a syntax error. */
#define OSSE_WF_MAX_TEXT_NODES 100000
/* A pattern's repetition counts multiplied out ("[0-9]{13}" is 13,
 * "(a{1,20}){1,20}" is 400): glibc's regcomp copies a bounded repetition that
 * many times, so "((a{1,255}){1,255}){1,255}", 27 bytes, runs for minutes. */
#define OSSE_WF_MAX_PATTERN_COST 256
#define OSSE_WF_MAX_PATTERNS_COST 1024 /* the same over every pattern of the form */

/* Of a definition's problems and warnings at most these many are listed: a
 * last item at the root path ("") says how many problems were left out, or
 * that warnings were. */
#define OSSE_WF_MAX_PROBLEMS 1000
#define OSSE_WF_MAX_WARNINGS 100

/* The template of an issue step without `number`. */
#define OSSE_WF_DEFAULT_NUMBER "LIC-{yyyy}-{seq:6}"

/* Parses YAML or JSON text (JSON is YAML) into a jansson tree. On a syntax
 * error returns OSSE_EPARSE with "line L, column C: what" in err. Duplicate
 * keys, anchors/aliases to nowhere, non-string keys and documents that are
 * not a mapping are errors. Scalars: YAML plain scalars become numbers,
 * booleans (true/false) and null as YAML 1.2 core schema says; quoted
 * scalars stay strings. Nesting deeper than 64 is refused. *out is a new
 * reference. Any thread. */
int osse_wf_parse_text(const char *text, size_t len, json_t **out, osse_err_t *err);

/* As osse_wf_parse_text, and also where each node is, for `osse validate`:
 * *positions (a new object, or NULL on error) maps every path of the tree,
 * spelled as problems spell them ("steps.fire.after[1]", "form.seats.type",
 * "id"), to [line, column] (from 1): a scalar's own place, and for a mapping
 * or a list its key's (the line an author looks for). Any thread. */
int osse_wf_parse_text_pos(const char *text, size_t len, json_t **out, json_t **positions,
                           osse_err_t *err);

/* Where path is in a parsed text: the value's line and column, or for a path
 * the text does not hold (a key that is missing) those of the nearest
 * enclosing value that it does; 1:1 for the root. */
void osse_wf_position(const json_t *positions, const char *path, int *line, int *column);

/* Validates tree and compiles it. On success returns 0 and *out (free with
 * osse_wf_free; it holds its own reference to tree). Otherwise returns
 * OSSE_EINVAL and appends every problem found to details (a JSON array the
 * caller made) as {"path":"steps.fire.when","message":"..."}. This is what a
 * replay runs on a stored definition; publishing runs osse_wf_check. Any
 * thread. */
int osse_wf_compile(json_t *tree, osse_wf_t **out, json_t *details);

/* What publishing may look up outside the definition. */
typedef struct osse_wf_refs_s {
    bool (*agency)(void *ud, const char *id);   /* true when the agency exists */
    bool (*calendar)(void *ud, const char *id); /* true when the calendar exists */
    /* Optional (NULL: not checked): the id of a workflow other than wf_id
     * whose licence numbers (any version) have this fixed text, or NULL. */
    const char *(*number_taken)(void *ud, const char *wf_id, const char *fixed);
    void *ud;
} osse_wf_refs_t;

/* Every check of publishing, in one round: osse_wf_compile's, the licence
 * number template rules of SPEC §2, and, when refs is not NULL, unknown
 * agencies (steps' `agency`, `on_breach.escalate`), an unknown calendar and
 * a licence number's fixed text already used by another workflow. Returns
 * as osse_wf_compile. If warnings is an array, what publishing accepts with
 * a warning (a rule that can meet null where it needs a value) is appended
 * to it as {"path","message"}, whatever the verdict. Any thread. */
int osse_wf_check(json_t *tree, const osse_wf_refs_t *refs, osse_wf_t **out, json_t *problems,
                  json_t *warnings);

/* osse_wf_check in two halves, so that the long one can run off the thread
 * that owns the catalog: osse_wf_check_text makes every check that needs only
 * the tree (osse_wf_compile's, the bounds, the number templates, the
 * warnings) and records the look-ups the definition needs (its calendar,
 * agencies, licence numbers' fixed texts); osse_wf_check_refs makes those
 * look-ups, in time linear in the definition's steps, and gives the verdict.
 * Together they answer exactly as osse_wf_check: the same problems in the
 * same order, one list, cut at OSSE_WF_MAX_PROBLEMS with the same note. */
typedef struct osse_wf_checked_s osse_wf_checked_t;

/* The text half. Returns 0 and *out (free with osse_wf_checked_free), or
 * OSSE_ENOMEM. tree is borrowed and must not change until *out is freed (the
 * compiled definition holds a reference to it). Any thread; reads nothing
 * shared. */
int osse_wf_check_text(json_t *tree, osse_wf_checked_t **out);
/* True when the text half found no problem (the look-ups may still). */
bool osse_wf_checked_valid(const osse_wf_checked_t *k);
/* The look-up half, once per k: as osse_wf_check from there, refs (NULL:
 * none looked up) called on the caller's thread. On success *out is the
 * compiled definition, taken from k. OSSE_ENOMEM when the text half ran out
 * of memory. */
int osse_wf_check_refs(osse_wf_checked_t *k, const osse_wf_refs_t *refs, osse_wf_t **out,
                       json_t *problems, json_t *warnings);
void osse_wf_checked_free(osse_wf_checked_t *k); /* NULL-safe */

/* The fixed text of a licence number template (its literal characters; the
 * default template for NULL), cut to cap - 1 bytes. Two workflows whose
 * fixed texts are equal could issue the same number. */
void osse_wf_number_fixed(const char *tpl, char *out, size_t cap);

void osse_wf_free(osse_wf_t *wf); /* NULL-safe */

/* Index of the step named name, or -1. */
int osse_wf_step_index(const osse_wf_t *wf, const char *name);

/* Checks a submitted form (a JSON object) against wf's fields. Unknown
 * fields, missing required ones, wrong types and failed constraints are each
 * appended to details as {"path":"form.<field>","message":"..."}. Returns 0
 * or OSSE_EINVAL. If partial is true, required fields may be missing (used
 * when an applicant supplies information after a `return`). */
int osse_wf_check_form(const osse_wf_t *wf, const json_t *form, bool partial, json_t *details);

/* True when s is 13 ASCII digits whose last is the Thai citizen id check
 * digit: (11 - (sum_{i=0..11} d_i * (13 - i)) mod 11) mod 10. */
bool osse_citizen_id_valid(const char *s);

#endif
