/* internal.h: the engine's projections and what its files share.
 *
 * The projections are plain in-memory structures owned by osse_engine_t and
 * changed only by osse__apply (apply.c). Commands (request.c, catalog.c,
 * notify.c's subscriptions) read them, decide, and emit events through
 * osse__emit (commit.c), which assigns seq and stream version, encodes the
 * event into the current batch, applies it and tells the reactors.
 *
 * The files call each other one way (tests/check_engine_graph.sh), and the
 * declarations below are in that order, bottom up:
 *
 *   util, pii, state, sla, rules, what everything uses; no mechanism but
 *                                 pii's reserve of keys (on the pool)
 *   licence
 *   apply                         the projections
 *   index                         a request's entries in the indexes on disk, and scans
 *   record                        a request's projection as stored bytes (views on disk)
 *   commit                        emit, group commit, held answers
 *   views, stats, digest          the reads
 *   erasure                       erasure of personal data (SPEC §8)
 *   expiry                        licence expiries and retention (timers.c fires them)
 *   request                       the life of a request
 *   registry                      the public registry; revocation
 *   catalog                       definitions, calendars, agencies, principals
 *   audit, notify, timers, linkage  reactors: they hear of events (and of
 *                                 durable batches, space come back) from
 *                                 commit.c instead of being called (files
 *                                 too: it hears which requests end)
 *   engine                        open, replay, start, stop, close */
#ifndef OSSE_ENGINE_INTERNAL_H
#define OSSE_ENGINE_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/alloc.h"
#include "common/hist.h"
#include "common/map.h"
#include "engine/engine.h"
#include "engine/keys.h"
#include "engine/partition.h"
#include "engine/trackcode.h"
#include "storage/event.h"
#include "storage/checkpoint.h"
#include "storage/keystore.h"
#include "storage/log.h"
#include "storage/merkle.h"
#include "workflows/calendar.h"
#include "workflows/workflow.h"

/* Request statuses and step states, spelled as in SPEC §4, once. */
#define OSSE_REQUEST_STATUSES(X)                                                                   \
    X(IN_PROGRESS, "in_progress")                                                                  \
    X(AWAITING_INFO, "awaiting_info")                                                              \
    X(AWAITING_PAYMENT, "awaiting_payment")                                                        \
    X(COMPLETED, "completed")                                                                      \
    X(REJECTED, "rejected")                                                                        \
    X(WITHDRAWN, "withdrawn")                                                                      \
    X(EXPIRED, "expired")

typedef enum {
#define X(n, s) OSSE_RS_##n,
    OSSE_REQUEST_STATUSES(X)
#undef X
        OSSE_RS__COUNT
} osse_rstatus_t;

#define OSSE_STEP_STATES(X)                                                                        \
    X(PENDING, "pending")                                                                          \
    X(OPEN, "open")                                                                                \
    X(WAITING_APPLICANT, "waiting_applicant")                                                      \
    X(APPROVED, "approved")                                                                        \
    X(REJECTED, "rejected")                                                                        \
    X(DONE, "done")                                                                                \
    X(SKIPPED, "skipped")                                                                          \
    X(FAILED, "failed")                                                                            \
    X(CANCELLED, "cancelled")

typedef enum {
#define X(n, s) OSSE_SS_##n,
    OSSE_STEP_STATES(X)
#undef X
        OSSE_SS__COUNT
} osse_sstate_t;

const char *osse__rstatus_name(osse_rstatus_t s);
const char *osse__sstate_name(osse_sstate_t s);
int osse__sstate_parse(const char *s, osse_sstate_t *out);
int osse__rstatus_parse(const char *s, osse_rstatus_t *out);
/* The transition tables (state.c): true when from -> to is allowed. */
bool osse__step_can(osse_sstate_t from, osse_sstate_t to);
bool osse__request_can(osse_rstatus_t from, osse_rstatus_t to);
bool osse__rstatus_final(osse_rstatus_t s);
/* A step that no longer blocks its successors. */
bool osse__sstate_done(osse_sstate_t s);
/* A step that will not change any more. */
bool osse__sstate_final(osse_sstate_t s);

typedef struct osse_wfent_s {
    char *id;
    osse_wf_t **versions; /* versions[v-1] */
    char **texts;         /* canonical JSON of each version, for change detection */
    size_t nversions;
    uint64_t licence_seq; /* licences issued under templates without a year, for {seq:N} */
    struct osse_lyear_s *licence_years; /* per year of issue, templates with a year */
    size_t nlicence_years;
} osse_wfent_t;

/* The counter of one (workflow, year of issue) (licence.c). */
typedef struct osse_lyear_s {
    int64_t year;
    uint64_t seq;
} osse_lyear_t;

typedef struct osse_agency_s {
    char *id;
    char *name, *webhook_url, *lookup_url;
    char *biller_id; /* 15 digits (SPEC §3), or NULL: fees it collects have no qr */
    char secret[65];
    /* The secret before the last POST .../secret, which still signs
     * webhooks until old_until (engine ms; SPEC §3's 24 hours), or "". */
    char old_secret[65];
    int64_t old_until;
    /* Inbox: the tasks given to this agency that may not have ended yet
     * (open or waiting for the applicant), as (request index, step): an
     * inbox reads only these from memory, dropping the ones that have ended
     * or moved to another agency as it meets them; the ended ones are read
     * from the index on disk (tsk/, engine/index.c). */
    struct osse_taskref_s *active;
    size_t nactive, cactive;
} osse_agency_t;

typedef struct osse_taskref_s {
    uint32_t req; /* its slot (osse__slot) */
    uint16_t step;
} osse_taskref_t;

typedef struct osse_calendar_ent_s {
    char *id;
    json_t *body; /* canonical JSON, as logged */
    osse_calendar_t cal;
} osse_calendar_ent_t;

/* How an agency's hold on a task ended (SPEC §10 statistics). */
typedef enum {
    OSSE_STINT_HELD,   /* not ended: the agency still has it */
    OSSE_STINT_PERSON, /* approved or rejected by a person */
    OSSE_STINT_AUTO,   /* approved by its auto_approve rule */
    OSSE_STINT_DEEMED_APPROVE,
    OSSE_STINT_DEEMED_REJECT,
    OSSE_STINT_ESCALATED, /* moved away to another agency on a breach */
    OSSE_STINT_RETURNED,  /* returned to the applicant; the next stint follows the answer */
    OSSE_STINT_CANCELLED  /* the request ended first */
} osse_stint_end_t;

/* A stretch of time during which one agency held an open task: from the
 * step's opening (the escalation to it, the applicant's answer to a return)
 * to its decision (the escalation away from it, a return). Statistics count
 * per stint, so that a breach stays with the agency that breached, also after
 * an escalation, and a task waiting for the applicant is neither open nor
 * overdue. */
typedef struct osse_stint_s {
    const char *agency;   /* borrowed from the step (definition or its owned copy) */
    int64_t start, end;   /* end 0 = still held */
    int64_t breached_at;  /* the breach of this agency's SLA in this stint, or 0 */
    int64_t overdue_from; /* 0 = not past due (a breach, or a resumption after one) */
    int64_t work_ms;      /* working time (wall-clock without a calendar) the agency has had
                           * the task open, this stint and the ones it resumes, when ended */
    osse_stint_end_t how;
    bool within_sla; /* decided by a person before the due time, never breached */
} osse_stint_t;

typedef struct osse_step_s {
    osse_sstate_t state;
    /* The request version of the last event that changed this step's state
     * or agency: a decision made with an older expected_version is stale. */
    uint32_t changed_at;
    osse_stint_t *stints; /* task steps: one per agency that held it, in order */
    uint32_t nstints;
    char *agency; /* current agency (after escalation), borrowed from the definition or owned */
    bool agency_owned;
    int64_t opened_at, due_at, decided_at; /* 0 = none */
    int64_t warn_at;                       /* 0 = none (or already warned) */
    const char *sla_state;                 /* "ok" | "warned" | "breached" (static strings) */
    bool escalated;                        /* a breach of the fresh SLA only notifies */
    /* While the applicant is asked (clock stopped): the SLA time left, in
     * the SLA's kind of time (working ms or wall ms). -1 = none. */
    int64_t remaining_ms, warn_remaining_ms;
    char *outcome, *reason;
    int64_t amount_satang; /* payment: due; -1 unknown */
    bool paid;
    char *reference, *qr;      /* payment: PaymentDue's (NULL: none) */
    char *payer, *transaction; /* payment: PaymentReceived's principal and transaction id */
    /* Overdue notices (definition's overdue_notice, task steps): when the
     * next SlaOverdueNotice falls due (0 = none scheduled), while the task
     * waits for the applicant the time that was left until it (-1 = none),
     * and the notices recorded since the breach. docs/design.md, "Pay and
     * delays told". */
    int64_t overdue_next, overdue_left;
    uint32_t notices;
} osse_step_t;

typedef struct osse_tl_s {
    int64_t at;
    const char *type; /* static */
    char *text;
} osse_tl_t;

typedef struct osse_request_s {
    char *id;
    char tracking_code[16];
    uint32_t index; /* its slot (osse__slot) */
    osse_wfent_t *wfe;
    int wf_version;
    const osse_wf_t *wf;
    osse_rstatus_t status;
    uint32_t version;
    int64_t submitted_at;
    char *portal; /* the submitting principal's id */
    /* The form as stored: read it with osse__form(r). A request read from
     * its record, or whose record has been written (record.c), keeps the
     * form's msgpack bytes (form_mp, form NULL) until it is first asked for:
     * most are not, and the bytes are a fraction of a JSON tree's memory
     * and of the start's time (issue 13). */
    json_t *form;
    uint8_t *form_mp;
    uint32_t form_mp_len;
    osse_step_t *steps; /* wf->nsteps */
    osse_tl_t *timeline;
    size_t ntimeline, ctimeline;
    uint64_t *seqs; /* every event of the request and delivery streams */
    size_t nseqs, cseqs;
    json_t *licence;           /* LicenceIssued's data without `step`, or NULL */
    uint64_t licence_seq;      /* LicenceIssued's seq: the registry's order (0 = none) */
    int64_t licence_year;      /* the year its number counted in (osse__licence_year) */
    uint32_t licence_step;     /* the issue step */
    uint32_t delivery_version; /* the version of its delivery stream (0 = none) */
    int64_t licence_expired_at, licence_revoked_at; /* 0 = not (yet) */
    char *licence_reason;                           /* the revocation's, public */
    json_t *data; /* linkage answers by step name ({"identity":{...}}), or NULL */
    char *reason; /* why it was rejected, withdrawn or expired, as the applicant reads it */
    uint32_t form_changed_at; /* the request version of the last change of the form */
    int64_t ended_at;         /* the `at` of its final event (0 = not ended) */
    int64_t erased_at;        /* PersonalDataErased's `at` (0 = not erased; erasure.c) */
    uint32_t recheck_sealed;  /* osse replay --recheck: its rules not checkable (digest.c) */
    bool dirty;               /* changed in the batch being filled: its record is due (record.c) */
    bool rec_open;            /* its record as last written or read is under opn/ (keys.h) */
    uint8_t rec_hash[32];     /* SHA-256 of its record as last written or read (record.c) */
    /* Its place among the requests that have not ended (e->open.first),
     * in the order of submission; once ended, among the ended requests in
     * memory (e->lru.first), least recently used first (util.c). */
    struct osse_request_s *open_prev, *open_next;
    /* What keeps it in memory once ended (cache.c): the jobs and entries
     * that hold it (a due entry in the expiries' heap, a linkage call, a
     * webhook delivery of its events), and the commit that writes its
     * record last (commits_sent + 1 when it changed). */
    uint32_t pins;
    uint64_t commit;
    /* Its entries in the indexes on disk as last written (index.c): [u8
     * key length][key][u64 hash of the value]..., sorted by key. */
    uint8_t *ix;
    uint32_t ix_len;
    /* Read from its record and not changed since: its stored entries are
     * those the producers give now, worked out (osse__ix_loaded) only before
     * its first change (commit.c), so that a start computes none. */
    bool ix_unknown;
} osse_request_t;

/* A list of requests through their open_prev/open_next, in the order they
 * joined it: the open ones (submission order) or the ended ones in memory
 * (least recently used first). A request is on one of them at most. */
typedef struct {
    osse_request_t *first, *last;
    size_t n;
} osse__rlist_t;

/* The due/ entries the expiries' heap reads from disk at a time, by
 * default (--due-window): 16 bytes of heap each. */
#define OSSE__DUE_WINDOW 4096

/* Entries being given by index.c's producers. */
#define OSSE__IX_KEY_MAX 256
typedef struct osse__ix_s {
    osse_buf_t buf; /* [u16 klen][key][u32 vlen][value]... */
    osse_buf_t val; /* a producer's value being built */
    size_t n;
    bool oom;
} osse__ix_t;

/* A row a scan kept: a side record's key (without the 'K') and value. */
typedef struct osse__row_s {
    uint8_t *key, *val;
    size_t klen, vlen;
} osse__row_t;

/* A read of one range of an index (index.c), prepared by a query on the
 * loop, run on the pool (osse_scan_run), finished on the loop. */
struct osse_scan_s {
    osse_log_t *log;
    uint8_t start[OSSE__IX_KEY_MAX + 1], stop[OSSE__IX_KEY_MAX + 1];
    size_t slen, stoplen;
    bool has_stop;
    size_t want; /* rows to keep before the scan stops (0: all) */
    size_t look; /* rows looked at (kept or not) before the scan stops (0: no bound) */
    size_t looked;
    /* The query's test of a row (pool thread: it reads nothing but its
     * arguments and s->q); NULL keeps every row. */
    bool (*keep)(const osse_scan_t *s, const void *key, size_t klen, const void *val, size_t vlen);
    /* The answer from the rows kept (loop thread). */
    int (*finish)(osse_engine_t *e, osse_scan_t *s, json_t **out, osse_fail_t *f);
    void (*drop)(osse_scan_t *s); /* frees q; NULL: free(q) is not done */
    void *q;                      /* the query's own */
    /* Pool thread, after the range was read (NULL: nothing): the due
     * index reads the requests of its rows here (expiry.c). */
    void (*after)(osse_scan_t *s);
    osse__row_t *rows;
    size_t nrows, crows;
    int rc;
    osse_err_t err;
};

/* What a heap entry of timers.c is: in this order at the same instant. */
typedef enum { OSSE_TIMER_WARN, OSSE_TIMER_BREACH, OSSE_TIMER_NOTICE } osse_timer_kind_t;

/* GET /metrics' counts by agency and workflow, kept by apply.c as stints
 * begin and end and SLAs are breached (so that a scrape reads no request):
 * the tasks an agency holds now, and the breaches ever. */
typedef struct osse_task_row_s {
    char *agency, *workflow;
    int64_t open, breaches;
    /* The earliest of its stints' starts (each at least its request's
     * submission), for the statistics: a range whose last instant is at or
     * after it has this row, zeros or not (stats.c). began: first_at is set. */
    int64_t first_at;
    bool began;
} osse_task_row_t;

/* A pending deadline: a warning or a breach of one step's SLA, or its next
 * overdue notice. The heap holds one entry per deadline set; an entry whose
 * step has since moved on (decided, rescheduled, warned) is dropped when it
 * reaches the top. */
typedef struct osse_timer_s {
    int64_t at;
    uint32_t req;
    uint16_t step;
    uint8_t kind; /* osse_timer_kind_t */
} osse_timer_t;

typedef struct osse_hold_s {
    uint64_t commit; /* released once this many batches are durable */
    osse_hold_cb cb;
    void *ud;
} osse_hold_t;

typedef struct osse_idem_s {
    char body_hash[65];
    int status;
    char *body;
    int64_t at;
} osse_idem_t;
/* A remembered answer in the order of time (e->idem_order): dropped from
 * memory and deleted from disk once expired, if e->idem still holds that
 * answer (at). */
typedef struct osse_idem_when_s {
    int64_t at;
    char key_hash[65];
} osse_idem_when_t;

/* A mechanism that reacts to what happens in the engine (audit, notify,
 * timers, linkage). It adds itself with osse__react when it starts, after
 * the replay (a replay emits nothing); commit.c calls each, in the order
 * they were added. Any hook may be NULL. */
typedef struct osse_reactor_s {
    /* An event was just emitted and applied. It may emit events itself. */
    void (*applied)(osse_engine_t *e, const osse_event_t *ev);
    /* A batch is durable: the Merkle tree of that size and root. */
    void (*durable)(osse_engine_t *e, uint64_t size, const uint8_t root[32]);
    /* The disk came back above its free-space reserve: what waited goes on. */
    void (*resumed)(osse_engine_t *e);
} osse_reactor_t;

#define OSSE_MAX_REACTORS 8

/* The reserve of request keys (pii.c, SPEC §8): request ids whose keys are
 * already durable in the key store, made ahead of demand on the libuv pool
 * (one append, so one fdatasync, per refill). A submission takes the next
 * one, so that its batch carries no key and the log's writer does no
 * fsync of the key store for it; with none at hand (a burst faster than
 * the refills, the first submissions after start, a failed refill) it
 * makes its key in its batch as before. The unwrapped keys are in
 * sodium_malloc'd memory, wiped when taken and at close. Loop thread. */
#define OSSE__KEY_RESERVE 1024 /* the default size (docs/design.md says why) */
#define OSSE__RID_SIZE 24      /* "r-", 20 hex digits (osse_request_id_mint), NUL */
#define OSSE__CODE_SIZE 16     /* as osse_request_t.tracking_code (engine/trackcode.h) */
typedef struct osse_key_reserve_s {
    size_t size; /* 0: no reserve (a replay engine, maintenance, --key-reserve 0) */
    size_t n;    /* at hand: ids[0..n), keys + OSSE_KEY_BYTES * [0..n) */
    char (*ids)[OSSE__RID_SIZE];
    uint8_t *keys; /* size keys, sodium_malloc'd */
    /* The refill of each entry (recs[0..n)): its pending record and how
     * many of its ids are at hand (pii.c). */
    struct osse_kpd_s **recs;
    struct osse_refill_s *refill;     /* the refill on the pool, or NULL: never two */
    bool on;                          /* started and not stopped */
    uint64_t retry_at, backoff;       /* uv_now ms: after a failed refill, none before retry_at */
    bool fail_next;                   /* tests: the next refill fails as an EIO would */
    uint64_t taken, misses, failures; /* metrics */
} osse_key_reserve_t;

/* A chunk of the engine's slots (osse__slot): 4,096 of them, 32 KB. */
#define OSSE__SLOT_BITS 12
#define OSSE__SLOT_CHUNK (1u << OSSE__SLOT_BITS)
typedef struct osse__slots_s {
    osse_request_t *at[OSSE__SLOT_CHUNK];
    uint32_t live; /* the slots holding a request */
} osse__slots_t;

struct osse_engine_s {
    uv_loop_t *loop;
    char *data_dir;
    osse_log_t *log;
    bool test_clock;
    bool allow_private_urls; /* opts' */
    int64_t clock;           /* test clock */
    int64_t last_at;         /* the latest `at` replayed at start */
    uint64_t applied;        /* the seq of the last event applied to the projections */

    osse_map_t workflows;         /* id -> osse_wfent_t */
    osse_map_t agencies;          /* id -> osse_agency_t */
    osse_map_t calendars;         /* id -> osse_calendar_ent_t */
    osse_map_t principals;        /* id -> osse_principal_t */
    osse_map_t tokens;            /* token hash hex -> osse_principal_t */
    osse_map_t requests;          /* id -> osse_request_t */
    osse_map_t codes;             /* tracking code -> osse_request_t */
    osse_map_t versions;          /* stream -> (uintptr_t) version, for non-request streams */
    osse_map_t idem;              /* key hash -> osse_idem_t, those of the last 24 hours */
    osse_idem_when_t *idem_order; /* [idem_head, nidem): e->idem's, oldest first */
    size_t idem_head, nidem, cidem;
    osse_map_t references;  /* PaymentDue reference -> osse_request_t (borrowed) */
    osse_map_t payments;    /* "<payment principal id>\n<transaction>" -> osse_request_t */
    osse_map_t pay_answers; /* the same key -> (uintptr_t) status + 1 of its first answer */
    /* Slots, in the order requests joined memory (submitted, read at start,
     * read back from disk); a request that left memory leaves its slot NULL
     * (osse__slot), and a chunk of slots whose requests have all left is
     * freed: the slots follow what is in memory, not every request joined
     * since the start (docs/design.md, "Slots"). A slot is never given
     * twice, so an index kept elsewhere (timers, task rows) never names
     * another request. */
    osse__slots_t **slots; /* chunk i >> OSSE__SLOT_BITS of slot i; NULL once freed */
    size_t nslots, cslots;
    size_t nreqs;       /* slots given since the start */
    size_t slots_freed; /* chunks */
    size_t nrequests;   /* requests there are, in memory or not */
    /* The ended requests in memory, least recently used first (through
     * open_prev/open_next), and how many of them may stay (--request-cache):
     * past that, the least recently used that nothing pins leave memory
     * once their records are durable (cache.c). */
    osse__rlist_t lru;
    size_t cache_max;
    size_t npinned;    /* ended requests in memory that something pins (off the list) */
    bool some_evicted; /* a request left memory: what is not here may be on disk */
    /* At start, from keys_load until the writer runs: the ids whose kdel/
     * (the first nunmark_erase) and pending records (storage/log.h) are
     * to be deleted. */
    char **unmark;
    size_t nunmark, cunmark, nunmark_erase;
    bool trim_wanted; /* requests were read back: trim at the end of the loop iteration */
    uint64_t evictions, read_back; /* counts, for /metrics */
    /* Reads of requests from disk in flight, oldest first (cache.c): a
     * request changed by a commit after the oldest began stays in memory
     * until that read ends, so that no read brings back an older record. */
    struct osse_readback_s *rb_first, *rb_last;
    /* The first request's submitted_at (the statistics' buckets without
     * from), set when the first request is applied or loaded (records are
     * loaded in the order of submission); any_request is false before. */
    int64_t first_submitted_at;
    bool any_request;
    size_t by_status[OSSE_RS__COUNT]; /* requests by status (GET /metrics) */
    /* The requests that have not ended, in the order of submission (a list
     * through each one's open_prev/open_next, kept by apply.c): what open
     * work needs is read from these, never from every request ever. */
    osse__rlist_t open;
    osse_map_t task_rows; /* "agency\nworkflow" -> osse_task_row_t (GET /metrics) */
    /* The request osse__request found last: one submission looks its
     * request up a dozen times (emit, apply, each reactor). Requests leave
     * the map only when the engine closes. */
    osse_request_t *last_request;
    /* text -> json_t string holding it, for osse__jname (one reference each) */
    osse_map_t names;

    /* The batch being filled during this loop iteration, and the requests
     * (indexes in reqs) its events changed, whose records go with it
     * (record.c). */
    osse_batch_t *batch;
    uint32_t *dirty;
    size_t ndirty, cdirty;
    bool views_on;  /* every request has its record: each batch renews the views marker */
    bool migrating; /* records_migrate: an open request's record also deletes its req/ key */
    osse__ix_t ix;  /* index.c's entries being given */
    /* The sum (mod 2^256, little-endian) of every request's rec_hash: the
     * requests' part of the views' digest, kept as records are written. */
    uint8_t rec_sum[32];
    /* applied + 1 when every request's rec_hash was made from its record
     * as it is now (a replay engine's records check): the sum needs no
     * second pass. */
    uint64_t rec_sum_whole;
    uv_check_t flush;
    osse_buf_t enc;
    osse_buf_t form_enc; /* a submission's form as msgpack (request.c) */
    bool replaying;
    /* The definition that osse_cmd_publish_workflow compiled on the pool,
     * for applying the WorkflowPublished it emits now: apply takes it when
     * the event's definition is this very tree (replay compiles from the
     * event). Empty outside that emit. */
    struct {
        const json_t *tree;
        osse_wf_t *wf;
        char *text; /* its canonical JSON */
    } handover;

    /* Deadlines: a min-heap by time, one uv_timer for the nearest. */
    osse_timer_t *timers;
    size_t ntimers, ctimers;
    uv_timer_t wake;
    bool timers_ready;

    /* Append latency: when each batch in flight was handed to the log
     * (batches complete in order, so a FIFO matches them). */
    struct {
        uint64_t t0;
    } * inflight;
    size_t ncommit, ccommit, hcommit;
    osse_hist_t append_latency;

    /* Answers waiting for durability, in commit order. A hold waits for the
     * batch that is being filled when it is taken (or the last one handed to
     * the log), not for a seq: a batch of side records only (a remembered
     * answer, the test clock's position) must be durable too. */
    osse_hold_t *holds;
    size_t nholds, hhead, chold;
    uint64_t commits_sent, commits_done;
    uv_idle_t kick;
    /* A write failed (the log's status): no hold is released as durable
     * again; on_fail was told once. docs/design.md, "A failed write". */
    int failed;
    void (*on_fail)(void *ud, int status);
    void *on_fail_ud;

    /* Audit (audit.c): the Merkle tree of the log (kept by the log's writer
     * thread once the log starts: storage/log.h osse_log_set_tree), the key
     * that signs its heads, the latest signed head (served) and the latest
     * durable tree not yet signed. */
    osse_merkle_t *merkle;
    osse_signer_t *signer;
    osse_head_t head;
    bool has_head, audit_started;
    int64_t head_signed_ms;
    uint64_t tail_size;
    uint8_t tail_root[32];
    uv_timer_t head_timer;

    /* Outbound webhooks (notify.c): NULL unless serving. */
    struct osse_notify_s *notify;
    osse_map_t subs; /* subscription id -> osse_sub_t */

    /* Uploaded files (files.c); NULL unless serving. */
    struct osse_files_s *files;

    /* Linkage lookups in flight (linkage.c); NULL unless serving. */
    struct osse_linkage_s *linkage;

    const osse_reactor_t *reactors[OSSE_MAX_REACTORS];
    size_t nreactors;

    /* The public registry (licence.c, registry.c): each licence number's
     * request, built by apply.c (the lists read the index on disk, lic/).
     * The expiries of valid licences: a min-heap of (valid_until, request
     * index), rebuilt at start (timers.c fires them). */
    osse_map_t licnums; /* number -> osse_request_t */

    /* Personal data (pii.c, SPEC §8): the key store (NULL in a replay
     * engine) and each request's key, id -> OSSE_KEY_BYTES in key_chunks:
     * sodium_malloc'd chunks of OSSE__KEYS_PER_CHUNK keys, the last one
     * filled to key_used (osse__pii_key_slot). */
    osse_keystore_t *keystore;
    osse_map_t keys;
    uint8_t **key_chunks;
    size_t nkey_chunks, key_used;
    uint8_t **key_free; /* slots of keys dropped, wiped (osse__pii_key_release) */
    size_t nkey_free, ckey_free;
    osse_key_reserve_t reserve; /* request keys durable ahead (pii.c) */
    /* Tracking codes (engine/trackcode.h): the permutation's key, derived
     * from the master key, and its domain's bits (OSSE_CODE_BITS; fewer
     * under --test-clock with OSSE_TEST_CODE_BITS). code_bits 0: no key
     * store, no submissions. */
    uint8_t code_key[OSSE_CODE_KEY_BYTES];
    unsigned code_bits;
    /* The partitions new request ids are minted in (engine/partition.h):
     * first..last, inclusive. */
    unsigned part_first, part_last;
    /* The key store's removals waiting for the batch of their erasures
     * (erasure.c), or NULL. */
    struct osse_erase_job_s *erasing;
    /* Wall-clock expiries of requests (expiry.c): licences' valid_until and
     * retention erasures, one min-heap. */
    struct osse_lexp_s {
        int64_t at;
        uint32_t req;
        uint8_t kind; /* OSSE_EXPIRY_LICENCE, OSSE_EXPIRY_RETENTION */
    } * lexp;
    size_t nlexp, clexp;
    /* The heap holds every stored due/ entry (keys.h) up to due_horizon's
     * key, or all of them (due_all); the others are read from the index on
     * disk when the clock nears them (expiry.c). Entries added beyond the
     * horizon wait in due_pend until their batch is durable before a read
     * of the index. */
    uint8_t due_horizon[OSSE__IX_KEY_MAX + 1];
    size_t due_horizon_len;
    bool due_all, due_reading;
    size_t due_reads; /* reads of the index under way (expiry.c) */
    /* Called when a read of the index is back (timers.c fires what waited
     * for it; a pointer, so that expiry.c does not call up into timers.c). */
    void (*due_back)(osse_engine_t *e);
    /* files.c's, set by osse__files_load: a taken file's record read back
     * from disk (cache.c, which files.c is above) joins memory, with its
     * key (NULL: none found). */
    void (*file_join)(osse_engine_t *e, const char *id, const void *rec, size_t len,
                      const uint8_t *key);
    size_t due_window; /* entries read at a time (OSSE__DUE_WINDOW) */
    struct osse_due_pend_s {
        int64_t at;
        uint32_t req;
        uint8_t kind;
        uint64_t commit; /* durable once commits_done reaches it */
    } * due_pend;
    size_t ndue_pend, cdue_pend;
};

/* A portal's or the platform's subscription to request events (SPEC §7). */
typedef struct osse_sub_s {
    char *id, *url;
    char *owner;               /* the principal that created it */
    osse_event_type_t *events; /* subscribable types, as listed */
    size_t nevents;
    char secret[48]; /* base64url of 32 random bytes; "" until the side record exists */
} osse_sub_t;

/* --- util.c: the bottom of engine/ --- */

osse_request_t *osse__request(osse_engine_t *e, const char *id);
/* --- cache.c: ended requests leave memory, and are read back --- */
/* After a commit is durable: the least recently used ended requests past
 * e->cache_max leave memory. */
void osse__cache_trim(osse_engine_t *e);
int osse__cache_metrics(const osse_engine_t *e, osse_buf_t *out);
/* A read of requests from disk: made on the loop (it holds back evictions
 * until it ends), names added (osse__readback_add: on the loop, or on the pool
 * by the job that owns it), run on the pool (osse_readback_run), joined on the
 * loop (osse__readback_join: the requests read that are not in memory join
 * it; it no longer holds evictions back). Freed by osse_readback_free. */
struct osse_readback_s *osse__readback_new(osse_engine_t *e);
void osse__readback_add(struct osse_readback_s *f, char kind, const char *name);
int osse__readback_join(osse_engine_t *e, struct osse_readback_s *f, osse_err_t *err);

/* Slot i, or NULL: out of range, or its request left memory. */
static inline osse_request_t *osse__slot(const osse_engine_t *e, size_t i)
{
    const osse__slots_t *c = i < e->nreqs ? e->slots[i >> OSSE__SLOT_BITS] : NULL;
    return c ? c->at[i & (OSSE__SLOT_CHUNK - 1)] : NULL;
}
/* r joins a list of requests (the open ones, e->open, or the ended ones in
 * memory, e->lru) at its end, or leaves it. */
void osse__rlist_add(osse__rlist_t *l, osse_request_t *r);
void osse__rlist_remove(osse__rlist_t *l, osse_request_t *r);
/* r's pins change by delta (1 or -1); an ended request leaves the list of
 * the ended ones while pinned, and joins it at the most recently used end
 * when its last pin goes. */
void osse__pins(osse_engine_t *e, osse_request_t *r, int delta);
/* Pins (or, delta -1, unpins) the request id in memory while something
 * holds it (cache.c); an id not in memory is ignored. */
void osse__pin(osse_engine_t *e, const char *id, int delta);
/* r's form as stored (borrowed), decoded from its record's bytes the first
 * time (checked when the record was read, so only memory can fail: a
 * panic). */
json_t *osse__form(const osse_request_t *r);
json_t *osse__time_json(int64_t ms); /* RFC 3339 string, or null for 0 */
int osse__fail(osse_fail_t *f, int rc, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Appends {"path","message"} to f->details (creating it). */
void osse__detail(osse_fail_t *f, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void osse__random_id(char *out, size_t nbytes, const char *prefix); /* prefix + hex */
void osse__random_bytes(void *out, size_t n);
void osse__sha256_hex(const void *p, size_t n, char out[65]);
/* A bearer token: "osse_" + base64url of 32 random bytes, and its SHA-256
 * hex (what the log keeps). The caller wipes token after use. */
#define OSSE_TOKEN_LEN 80
void osse__new_token(char token[OSSE_TOKEN_LEN], char hash[65]);
/* A catalog id (1-64 of [a-z0-9_-], starting with a letter or digit), and
 * an http or https URL. */
bool osse__id_ok(const char *s);
bool osse__url_ok(const char *s);
/* The string member k of o, or NULL. */
const char *osse__jstr(const json_t *o, const char *k);
/* Every key of body must be in allowed (NULL-terminated): else 422 with a
 * detail per unknown key. */
int osse__check_keys(const json_t *body, const char *const *allowed, osse_fail_t *f);
/* body[key]: absent or null (NULL), or a string of at most max bytes. */
int osse__opt_string(const json_t *body, const char *key, size_t max, const char **out,
                     osse_fail_t *f);
/* Every query parameter of params must be in allowed (NULL-terminated):
 * else 422 with a detail per unknown one. */
int osse__check_params(const json_t *params, const char *const *allowed, osse_fail_t *f);
/* Side records read back at start: the part of key after its prefix of pl
 * bytes, and a value, as NUL-terminated strings in out (n bytes); false
 * when there is none or it does not fit (the record is then skipped). */
bool osse__record_id(const void *key, size_t klen, size_t pl, char *out, size_t n);
bool osse__record_text(const void *val, size_t vlen, char *out, size_t n);
/* The keys of m, sorted (borrowed from m); *n set; free() the array. */
const char **osse__sorted_keys(const osse_map_t *m, size_t *n);

/* --- pii.c: personal values sealed and opened (SPEC §8) --- */
#define OSSE_PII_WITHHELD "[withheld]"
#define OSSE_PII_ENCRYPTED "[encrypted]"
/* What every reader sees of a sealed value of an erased request (erasure.c). */
#define OSSE_PII_ERASED "[erased]"
/* How a reader sees personal values: as stored ({"enc":...}: events, the
 * digest), in plain (the submitting portal, the platform, an agency with a
 * task: "[encrypted]" when the key is not at hand), or withheld (auditors). */
typedef enum { OSSE_READ_STORED, OSSE_READ_PLAIN, OSSE_READ_WITHHELD } osse_read_t;
/* Whether v is a sealed value {"enc":"..."}; whether one is anywhere in v. */
bool osse__pii_sealed(const json_t *v);
bool osse__pii_any_sealed(const json_t *v);
/* rid's key (borrowed), or NULL. */
const uint8_t *osse__pii_key(const osse_engine_t *e, const char *rid);
/* Makes rid's key (kept in e->keys) and its wrapped form, which the caller
 * files with the batch of rid's first event (osse_batch_key). Returns 0,
 * OSSE_EINVAL (no key store, or an id that cannot name a key), OSSE_ENOMEM. */
int osse__pii_key_new(osse_engine_t *e, const char *rid, uint8_t wrapped[OSSE_WRAPPED_BYTES]);
/* v (borrowed) sealed under rid's key with path as its field: {"enc"}, a
 * new reference. rid must have a key (a programmer error otherwise). */
json_t *osse__pii_seal(const osse_engine_t *e, const char *rid, const char *path, const json_t *v);
/* A JSON string of s (a name from a definition or osse's own: a step, a
 * kind, an agency, a workflow, a status; never a value from a form or an
 * id made per request, so that the names stay few), shared:
 * each call gives a new reference to one json_t per text, so that an
 * event's names cost no allocation. Strings are never changed in place
 * (nothing calls json_string_set). NULL for s NULL or not UTF-8. Loop
 * thread. */
json_t *osse__jname(osse_engine_t *e, const char *s);
/* The plaintext of stored (a new reference): stored itself when it is not
 * sealed, "[encrypted]" without the key or when it does not open. */
json_t *osse__pii_open(const osse_engine_t *e, const char *rid, const char *path,
                       const json_t *stored);
/* The same, telling failure apart: 0 and *out (new reference), or
 * OSSE_EINVAL (not sealed), OSSE_ENOTFOUND (no key), OSSE_ECORRUPT (it does
 * not open under rid and path). */
int osse__pii_try_open(const osse_engine_t *e, const char *rid, const char *path,
                       const json_t *stored, json_t **out);
/* Seals wf's pii fields of form in place ("form.<name>"; a file field's
 * name as "form.<name>.name") and returns form (a new reference). */
json_t *osse__pii_seal_form(const osse_engine_t *e, const osse_wf_t *wf, const char *rid,
                            json_t *form);
/* r's form as `how` reads it (a new object). */
json_t *osse__pii_form(const osse_engine_t *e, const osse_request_t *r, osse_read_t how);
/* Seals, in a rule's record, every input read from a pii field of r's form
 * or from a linkage answer (data.*). */
void osse__pii_seal_inputs(const osse_engine_t *e, const osse_request_t *r, json_t *record);
/* A deep copy of v with every sealed value replaced by "[withheld]"
 * (deliveries leaving osse); by "[erased]" (an erased request's views). */
json_t *osse__pii_withhold(const json_t *v);
json_t *osse__pii_erased(const json_t *v);
/* Whether the definition marks field `name` personal. */
bool osse__pii_field(const osse_wf_t *wf, const char *name);
/* Free text people write (a decision's or withdrawal's reason, an info
 * message), sealed under path: NULL for NULL, the empty string plain (no
 * words), else {"enc"}. New reference. */
json_t *osse__pii_seal_text(const osse_engine_t *e, const char *rid, const char *path,
                            const char *text);
/* A reason as the projections keep it (char *): a plain string as it is, a
 * sealed one as OSSE_PII_TEXT_MARK followed by its base64; NULL for
 * anything else. malloc'd. osse__pii_text_json turns it back into what the
 * event held (a string, {"enc"}, or null). Plain reasons are the engine's
 * own words, which never start with the mark (a control byte). */
#define OSSE_PII_TEXT_MARK '\x01'
char *osse__pii_stored_text(const json_t *v);
json_t *osse__pii_text_json(const char *text);
/* Room for one key (OSSE_KEY_BYTES) in sodium_malloc memory, kept until
 * osse__pii_keys_free; NULL when out of memory. Keys share chunks: one
 * sodium_malloc per key costs four memory mappings, and the kernel's limit
 * (vm.max_map_count, 65530) then stops the server after some 12k to 20k
 * requests. */
uint8_t *osse__pii_key_slot(osse_engine_t *e);
/* Wipes id's key and drops it from e->keys (none, as in a replay engine:
 * nothing); its slot is used again (readers copy a key they keep past the
 * loop's turn). apply.c at a PersonalDataErased (nothing opens the
 * request's values from then on) and when a request leaves memory, files.c
 * for a swept or erased file. */
void osse__pii_key_drop(osse_engine_t *e, const char *id);
/* Wipes a slot of osse__pii_key_slot and keeps it for the next. */
void osse__pii_key_release(osse_engine_t *e, uint8_t *key);
/* id's key into e->keys (copied). Returns 0 or OSSE_ENOMEM. */
int osse__pii_key_set(osse_engine_t *e, const char *id, const uint8_t key[OSSE_KEY_BYTES]);
/* Wipes and frees every key of e->keys, and the map; and the reserve's,
 * which must have no refill on the pool any more (the loop has run out
 * since osse__pii_reserve_stop). */
void osse__pii_keys_free(osse_engine_t *e);
/* Starts the reserve of size keys (0: none) and fills it: blocks on the
 * disk (one append), so before the loop runs. Once, after keys_load, in a
 * serving engine (never a replay engine or maintenance). A failure is
 * logged and tried again later (submissions file their keys meanwhile). */
void osse__pii_reserve_start(osse_engine_t *e, size_t size);
/* Takes the next reserved id and key: the key goes into e->keys under the
 * id, the id is written to id (OSSE__RID_SIZE bytes), and true; the key is
 * durable already, so the caller files nothing with its batch. An id a
 * request in memory has already is skipped. false when none is at hand:
 * the caller makes its id and its key (osse__pii_key_new). Queues a refill at or below half the
 * size. The caller submits the request in the batch being filled. Loop thread. done (OSSE__RID_SIZE
 * bytes) gets the name of the pending record (storage/log.h) that this batch deletes, the id taken
 * being the last of its refill's; else "". */
bool osse__pii_key_reserved(osse_engine_t *e, char *id, char *done);
/* No more refills; one on the pool is cancelled, or discarded when it comes
 * back (its keys have no events: removed at the next start). */
void osse__pii_reserve_stop(osse_engine_t *e);
/* The reserve's lines of GET /metrics. Returns 0 or OSSE_ENOMEM. */
int osse__pii_metrics(const osse_engine_t *e, osse_buf_t *out);

/* --- sla.c --- */
/* Whether step s's SLA is counted in working time. */
bool osse__sla_working(const osse_wf_step_t *s);
/* The SLA arithmetic of step i: the deadline `amount` of SLA time after
 * `from` (amount in the SLA's kind of time: working ms or wall ms), and the
 * SLA time between two instants. */
int64_t osse__sla_add(osse_engine_t *e, const osse_request_t *r, size_t i, int64_t from,
                      int64_t amount);
int64_t osse__sla_between(osse_engine_t *e, const osse_request_t *r, size_t i, int64_t a,
                          int64_t b);
void osse__sla_times(osse_engine_t *e, const osse_request_t *r, size_t i, int64_t from,
                     int64_t total, int64_t *due, int64_t *warn);
/* Working time between two instants on the request's calendar, wall-clock
 * time when its workflow has none (decision times in statistics). */
int64_t osse__work_between(osse_engine_t *e, const osse_request_t *r, int64_t a, int64_t b);
/* The step's whole SLA in its kind of time (0 when none). */
int64_t osse__sla_total(osse_engine_t *e, const osse_request_t *r, size_t i, int64_t from);

/* --- rules.c --- */
/* The values a rule may read: {"form","data","request"}, personal values
 * opened. New reference. */
json_t *osse__rule_root(const osse_engine_t *e, const osse_request_t *r);
/* Evaluates a condition on root (borrowed); *record gets {"rule","inputs",
 * "result"} or {"rule","inputs","error"} (new reference). True only for the
 * boolean true; an error or a non-boolean counts as false and is recorded. */
bool osse__run_condition_on(const json_t *root, const char *text, json_t **record);
/* The same on r's values; osse__run_rule returns the value (new reference)
 * or NULL on an error. The record's inputs read from personal fields are
 * sealed (SPEC §8). */
bool osse__run_condition(const osse_engine_t *e, const osse_request_t *r, const char *text,
                         json_t **record);
json_t *osse__run_rule(const osse_engine_t *e, const osse_request_t *r, const char *text,
                       json_t **record);

/* --- licence.c: numbers, documents, signatures and status of licences (pure) --- */
/* The year of issue of a licence issued at `at` under wf: in the workflow
 * calendar's utc_offset, UTC without one (or when it is unknown). */
int64_t osse__licence_year(osse_engine_t *e, const osse_wf_t *wf, int64_t at);
/* The counter a licence issued under template tpl in year `year` takes:
 * the next of its (workflow, year) when tpl has a year, else of its
 * workflow. advance: count it (apply.c); else only read the next. */
uint64_t osse__licence_seq(osse_wfent_t *w, const char *tpl, int64_t year, bool advance);
/* Fills {yyyy}, {bbbb} and {seq:N} of tpl. */
void osse__licence_number(const char *tpl, int64_t year, uint64_t seq, char *out, size_t n);
/* LicenceIssued's `document` and `jws` for r's licence (SPEC §2): the JWS is
 * null when the engine has no signing key (a bench without the tree). New
 * references. */
void osse__licence_sign(osse_engine_t *e, const osse_request_t *r, const char *number, int64_t from,
                        int64_t until, json_t *fields, json_t **doc, json_t **jws);
/* "valid", "expired" or "revoked" (static). */
const char *osse__licence_status(const osse_request_t *r);
/* A registry entry (SPEC §9); full adds document and jws. New reference. */
json_t *osse__licence_entry(const osse_request_t *r, bool full);
/* --- apply.c --- */

/* Applies a decoded event to the projections. Returns 0, or OSSE_ECORRUPT
 * when the event contradicts the state (only possible for a damaged log). */
int osse__apply(osse_engine_t *e, const osse_event_t *ev, osse_err_t *err);
void osse__sub_free(osse_sub_t *s);
/* A request read from its record (record.c) joins the projections as the
 * replay of its events would have left it: a slot (in the order of
 * submission: the caller's), the maps by id, code, payment reference and
 * transaction, the inboxes, its delivery stream's version. Its licence, if
 * any, with osse__apply_loaded_licence, in the order of issue. Returns 0
 * (r belongs to e) or OSSE_ECORRUPT (it joined nothing: the caller's). */
int osse__apply_loaded(osse_engine_t *e, osse_request_t *r, osse_err_t *err);
/* GET /metrics' row of agency and workflow, made when missing. */
osse_task_row_t *osse__task_row(osse_engine_t *e, const char *agency, const char *workflow);
/* A request read back from disk (cache.c) joins memory: its slot, the maps
 * that name it and the list of ended requests; no count changes (it was
 * counted when it was first applied or read). */
void osse__apply_rejoin(osse_engine_t *e, osse_request_t *r);
/* An ended request, its record durable, leaves memory: the maps forget it
 * and its slot is emptied (cache.c decides when, and frees it). */
void osse__apply_evict(osse_engine_t *e, osse_request_t *r);
void osse__apply_loaded_licence(osse_engine_t *e, osse_request_t *r);
/* The key of e->payments for a payment principal's transaction id (cut
 * short to n bytes; a transaction id is at most OSSE_TRANSACTION_MAX). */
#define OSSE_TRANSACTION_MAX 128
#define OSSE_PAYMENT_KEY_MAX 256
void osse__payment_key(const char *principal, const char *transaction, char *out, size_t n);
/* The first answers of recorded payments (side records payanswer/<key>,
 * written by payment.c) are read on demand, by the read back of a payment
 * call's names (cache.c), on the pool: a start reads none, and
 * e->pay_answers holds those of requests in memory (apply.c drops them
 * with their request). */
#define OSSE__PAY_ANSWER_KEY_MAX (OSSE_KEY_LEN(OSSE_KEY_PAY_ANSWER) + OSSE_PAYMENT_KEY_MAX)
/* payanswer/<key> into out[OSSE__PAY_ANSWER_KEY_MAX] (util.c, below cache.c
 * and payment.c, which both make it): its length, or 0 for
 * a key longer than any payment key (osse__payment_key). */
size_t osse__pay_answer_key(const char *key, char out[OSSE__PAY_ANSWER_KEY_MAX]);

/* --- index.c: the indexes on disk (issue 13, docs/design.md "Views on disk") --- */

/* Writes into b the difference between r's entries now and those written
 * last (r->ix), and keeps the new ones in r->ix. Returns 0 or OSSE_ENOMEM. */
int osse__ix_write(osse_engine_t *e, osse_request_t *r, osse_batch_t *b);
/* r was read from its record and is about to change: its stored entries
 * are the ones the producers give now (r->ix_unknown is cleared). */
int osse__ix_loaded(osse_engine_t *e, osse_request_t *r);
void osse__ix_free(osse_engine_t *e);
/* The prefix of index i (0, 1, ...), NULL past the last. */
const char *osse__ix_prefix(size_t i);
/* The replay's proof (osse_engine_records_check): each request's entries
 * against the stored ones, and the stored ones no request gives. */
int osse__ix_check(osse_engine_t *e, osse_log_t *log, osse_records_check_t *out, osse_err_t *err);
/* A scan of [start, stop) (stop NULL: to the end) keeping up to want rows;
 * the caller sets keep, finish, drop and q. */
osse_scan_t *osse__scan_new(osse_engine_t *e, const void *start, size_t slen, const void *stop,
                            size_t stoplen, size_t want);

/* The wall-clock expiries (due/, keys.h): when r's valid licence expires,
 * when its retention erasure falls due; 0: none. */
enum { OSSE_EXPIRY_LICENCE = 'L', OSSE_EXPIRY_RETENTION = 'R' };
int64_t osse__due_licence(const osse_request_t *r);
int64_t osse__due_retention(const osse_request_t *r);
size_t osse__ix_due_key(int64_t at, uint8_t kind, const char *id, uint8_t *out);
/* Returns 0 or OSSE_ECORRUPT; id gets the request id (idn bytes). */
int osse__ix_due_decode(const void *key, size_t klen, int64_t *at, uint8_t *kind, char *id,
                        size_t idn);

/* The request list's entry (lst/ be64(~first seq)): newest first. */
size_t osse__ix_list_key(uint64_t seq0, uint8_t *out);
/* A name's entry (nam/ kind name 0x00 id, keys.h); with id NULL, the
 * prefix of every entry of that name. 0 when it would be longer than
 * OSSE__IX_KEY_MAX. */
size_t osse__ix_name_key(char kind, const char *name, const char *id, uint8_t *out);
typedef struct {
    char *id, *workflow, *tracking_code, *portal;
    int workflow_version;
    osse_rstatus_t status;
    uint32_t version;
    int64_t submitted_at;
    bool breached;
    char **agencies; /* those given a task */
    size_t nagencies;
} osse__list_entry_t;
/* Returns 0 or OSSE_ECORRUPT. Any thread. */
int osse__ix_list_decode(const void *val, size_t vlen, osse__list_entry_t *out);
void osse__ix_list_clear(osse__list_entry_t *l);
/* The stints index: an entry per ended stint (end != 0) of a task step,
 * keyed by its end time, then the request's first seq, the step and the
 * stint's place; the statistics' scan begins at a time (the other fields 0,
 * before every entry that ended then). */
#define OSSE__IX_STINT_KEY_LEN (OSSE_KEY_LEN(OSSE_KEY_STINT) + 8 + 8 + 2 + 4)
size_t osse__ix_stint_key(int64_t end, uint64_t seq0, uint16_t step, uint32_t place, uint8_t *out);
/* An entry's value decoded: what the statistics count of the stint
 * (t.agency is agency), its workflow and its request's submission. */
typedef struct {
    char *agency, *workflow;
    int64_t submitted_at;
    osse_stint_t t;
} osse__stint_entry_t;
/* 0, or OSSE_ECORRUPT (*out cleared). */
int osse__ix_stint_decode(const void *val, size_t vlen, osse__stint_entry_t *out);
void osse__ix_stint_clear(osse__stint_entry_t *t);

/* The registry's entry of a licence (lic/ be64(~LicenceIssued's seq)):
 * newest first. */
size_t osse__ix_licence_key(uint64_t licence_seq, uint8_t *out);
typedef struct {
    unsigned status; /* 0 valid, 1 expired, 2 revoked (osse__licence_status) */
    char *workflow;
    char **texts; /* what q searches: the number, then each public field as text */
    size_t ntexts;
    json_t *entry; /* osse__licence_entry(r, false); NULL unless asked for */
} osse__licence_row_t;
/* Returns 0 or OSSE_ECORRUPT. Any thread. */
int osse__ix_licence_decode(const void *val, size_t vlen, bool entry, osse__licence_row_t *out);
void osse__ix_licence_clear(osse__licence_row_t *l);

/* An inbox entry's place (tsk/<agency>/{d|o} k1 k2 seq0 step): sort=due
 * k1 is due_at (INT64_MAX when none) and k2 opened_at; sort=opened k1 is
 * opened_at and k2 0; then the request's first seq and the step. */
typedef struct {
    int64_t k1, k2;
    uint64_t seq0;
    uint16_t step;
} osse__task_key_t;
#define OSSE__IX_INBOX_TAIL 26 /* be64 k1, be64 k2, be64 seq0, be16 step */
/* The keys of step `step` of a request whose first seq is seq0. */
void osse__task_keys(const osse_step_t *s, uint64_t seq0, size_t step, osse__task_key_t *due,
                     osse__task_key_t *opened);
/* "tsk/<agency>/" and sort ('d' or 'o') into out; returns its length. */
size_t osse__ix_inbox_prefix(const char *agency, char sort, uint8_t *out);
size_t osse__ix_inbox_key(const char *agency, char sort, const osse__task_key_t *k, uint8_t *out);
/* k from a key whose prefix is plen bytes long; 0 or OSSE_ECORRUPT. */
int osse__ix_inbox_key_get(const void *key, size_t klen, size_t plen, osse__task_key_t *k);
typedef struct {
    char *request_id, *step, *workflow, *sla;
    osse_sstate_t state;
    int64_t opened_at, due_at;
    uint32_t version;
} osse__inbox_entry_t;
/* Returns 0 or OSSE_ECORRUPT. Any thread. */
int osse__ix_inbox_decode(const void *val, size_t vlen, osse__inbox_entry_t *out);
void osse__ix_inbox_clear(osse__inbox_entry_t *t);

/* --- record.c: a request's projection as stored bytes (issue 13) --- */

/* Appends r's record to out (nothing on error); *tail (if given) gets the
 * length of the part the digest hashes (all but which events are its).
 * Returns 0, OSSE_ENOMEM, OSSE_ETOOBIG, OSSE_EINVAL (a timeline type that
 * is no event type). */
int osse__record_encode(const osse_request_t *r, osse_buf_t *out, size_t *tail);
/* A new request from a record (in none of e's maps, index 0), its
 * workflow looked up in e; *tail as osse__record_encode's. Returns 0 or
 * OSSE_ECORRUPT (detail in err). */
int osse__record_decode(osse_engine_t *e, const void *bytes, size_t len, osse_request_t **out,
                        size_t *tail, osse_err_t *err);
/* Frees a request and what it owns. NULL-safe. */
void osse__request_free(osse_request_t *r);
/* Request id's record (val, vlen) decoded, its hash set (the sum is the
 * caller's) and its index entries left to be worked out (ix_unknown): 0 or
 * OSSE_ECORRUPT (a record that does not decode, or holds another id). id
 * NULL: a record under opn/, whose key names no id (the caller checks its
 * first seq). */
int osse__record_read(osse_engine_t *e, const char *id, size_t idlen, const void *val, size_t vlen,
                      osse_request_t **out, osse_err_t *err);
/* The record of an ended request id (req/<id>; an open one's is under
 * opn/, keys.h), *val malloc'd: 0, OSSE_ENOTFOUND or the read's error.
 * Any thread (a read back's on the pool). */
int osse__record_get_ended(osse_log_t *log, const char *id, void **val, size_t *vlen,
                           osse_err_t *err);
/* r changed in the batch being filled: its record goes with the batch. */
void osse__record_touch(osse_engine_t *e, osse_request_t *r);
/* Puts the record of every request touched since the last call into b,
 * and (views_on) the views marker: the log's last seq and the counters
 * snapshot (docs/design.md, "The counters snapshot"). Returns 0 or
 * OSSE_ENOMEM. */
int osse__records_put(osse_engine_t *e, osse_batch_t *b);
/* The sum of the hashes of every request's record (engine->rec_sum), with
 * the requests changed in the batch being filled counted as they are now;
 * in a replay engine (no log, no records written) computed from every
 * request. */
void osse__records_sum(osse_engine_t *e, uint8_t out[32]);
/* Whether the data folder has its records: the views marker (keys.h,
 * OSSE_KEY_VIEWS) names the log's last seq. */
bool osse__records_ready(osse_engine_t *e);
/* Reads every request's record into the projections (after the catalog
 * events). Returns 0, OSSE_ECORRUPT, OSSE_EIO (detail in err). Before the
 * loop runs. */
int osse__records_load(osse_engine_t *e, osse_err_t *err);
/* After osse__records_load: the views marker's counters snapshot against
 * what the records rebuilt, and the opn/ index against the open list. On a
 * difference an ERROR line per field, and OSSE_ECORRUPT (err names the
 * first); OSSE_EIO. */
int osse__records_verify(osse_engine_t *e, osse_err_t *err);
/* The start that reads only open work: the open requests' records (opn/),
 * then the counters from the views marker's snapshot; every ended request
 * stays on disk (e->some_evicted). */
int osse__records_load_open(osse_engine_t *e, osse_err_t *err);
/* The seqs of the catalog events (cat/ keys), in order; free() *out. */
int osse__catalog_seqs(osse_engine_t *e, uint64_t **out, size_t *n, osse_err_t *err);
/* Files the cat/ key of a catalog event with the current batch. */
void osse__catalog_event(osse_engine_t *e, uint64_t seq);
/* After a replay of the whole log of a folder without records: writes
 * every request's record and the catalog's cat/ keys, in batches, and the
 * OSSE_KEY_VIEWS marker last. After osse__commit_start. */
void osse__records_migrate(osse_engine_t *e, const uint64_t *catalog, size_t ncatalog);

/* --- commit.c --- */

/* Emits one event: assigns seq and version, encodes it into the current
 * batch, applies it and tells the reactors. data is taken (stolen
 * reference). Aborts when the event does not apply (a bug: an event
 * half-applied cannot be undone). */
void osse__emit(osse_engine_t *e, const char *stream, osse_event_type_t type,
                const osse_principal_t *actor, json_t *data);
/* The same for a StepOpened held as fields (storage/event.h; borrowed):
 * no JSON tree is built for it (docs/design.md "Events as fields"). A
 * reactor reads an event's data with osse_event_step and osse_event_data,
 * which serve both forms. */
void osse__emit_opened(osse_engine_t *e, const char *stream, const osse_principal_t *actor,
                       const osse_ev_opened_t *opened);
/* And a RequestSubmitted (its form borrowed too). */
void osse__emit_submitted(osse_engine_t *e, const char *stream, const osse_principal_t *actor,
                          const osse_ev_submitted_t *submitted);
void osse__react(osse_engine_t *e, const osse_reactor_t *r);
/* Makes sure a current batch exists (for side records). */
void osse__batch_need(osse_engine_t *e);
/* Records the test clock's position in the current batch (SPEC §10). */
void osse__test_clock_store(osse_engine_t *e);
/* Whether the data folder's filesystem is below its free-space reserve:
 * the engine's own writes (deadlines, lookup outcomes, delivery records)
 * wait while it is; the reactors' `resumed` runs when it is no longer. */
bool osse__storage_low(const osse_engine_t *e);
/* After the replay: loads remembered answers, starts the log's writer and
 * the handle that commits each loop iteration's batch. */
int osse__commit_start(osse_engine_t *e, const osse_engine_opts_t *opts, osse_err_t *err);
/* The remembered answers of the last 24 hours (osse_engine_now's: after
 * the test clock resumed) into memory, those of an older osse moved to
 * their place in time, the expired ones deleted (in the batch being
 * filled). Serving only. Returns 0 or OSSE_EIO. */
int osse__idem_start(osse_engine_t *e, osse_err_t *err);
/* Hands the current batch, if any, to the log. */
void osse__commit_flush(osse_engine_t *e);
/* Forgets the reactors and closes the handles (run the loop afterwards). */
void osse__commit_stop(osse_engine_t *e);
/* Disk space and event append latency, Prometheus text. */
int osse__commit_metrics(osse_engine_t *e, osse_buf_t *out);

/* --- files.c: uploaded files (below request: a submission takes them) --- */
/* After the replay, before the keys are loaded (serving only): the file
 * store and the records, so that a file's key is kept (engine.c). Returns
 * 0 or OSSE_EIO. */
int osse__files_load(osse_engine_t *e, osse_err_t *err);
/* Whether id is a file's in memory (docs/design.md "Files on disk": one
 * not taken yet, or taken by a request in memory). */
bool osse__files_known(const osse_engine_t *e, const char *id);
/* Whether file id's record is on disk (a point read: a start only). */
bool osse__files_on_disk(osse_engine_t *e, const char *id);
/* A start found the key of file id stale: when no record names it (an
 * upload a crash stopped before its record was durable), its bytes go too. */
void osse__files_orphan(osse_engine_t *e, const char *id);
/* Calls cb with each file's id in memory. */
void osse__files_each(const osse_engine_t *e, void (*cb)(void *ud, const char *id), void *ud);
/* Then: records from before files were sealed removed with their bytes,
 * bytes left without a record removed, the first sweep, the sweep's
 * timer. Returns 0 or OSSE_EIO. */
int osse__files_start(osse_engine_t *e, osse_err_t *err);
/* Wipes and drops file_id's key from e->keys (the caller removed it from
 * the key store, or will): the file then answers 410. */
void osse__files_forget_key(osse_engine_t *e, const char *file_id);
/* Whether file id is held by a pii field of an erased request (its key is
 * then stale at start: erasure.c). */
bool osse__files_erased(osse_engine_t *e, const char *id);
void osse__files_stop(osse_engine_t *e);
void osse__files_close(osse_engine_t *e); /* NULL-safe as to e->files */
/* Forgets the files no request took within 24 hours of their upload
 * (engine clock); their bytes go once that is durable. */
void osse__files_sweep(osse_engine_t *e);
/* Replaces each `file` field's id in form (already checked by
 * osse_wf_check_form) with {"id","sha256","size","content_type","name"}:
 * 422 invalid_form, or file_taken when one is held by a request other than
 * request_id (NULL at submission), with a detail per field. */
int osse__files_resolve(osse_engine_t *e, const osse_principal_t *p, const osse_wf_t *wf,
                        json_t *form, const char *request_id, osse_fail_t *f);
/* Marks the files of a resolved form as held by request_id, in the current
 * batch (call right after emitting the event that holds them). */
void osse__files_take(osse_engine_t *e, const osse_wf_t *wf, const json_t *form,
                      const char *request_id);

/* --- views.c: the reads --- */
/* One page of a catalog list (SPEC §4 lists): the values of m in key order
 * after params' `cursor` (the last key of the page before), at most `limit`
 * (1..500, default 500); other parameters are 422. entry renders one value
 * as its own GET answers it, or returns NULL to leave it out (not p's to
 * see). *out = {key: [...], "next_cursor": last key shown, or null on the
 * last page}. */
typedef json_t *(*osse__entry_fn)(osse_engine_t *e, const osse_principal_t *p, void *v);
int osse__id_page(osse_engine_t *e, const osse_principal_t *p, const osse_map_t *m,
                  const json_t *params, const char *key, osse__entry_fn entry, json_t **out,
                  osse_fail_t *f);

/* The request id as p may read it: 404 unknown, 403 not p's (SPEC §1). */
int osse__find_request(osse_engine_t *e, const osse_principal_t *p, const char *id,
                       osse_request_t **out, osse_fail_t *f);
/* Whether p may read r (SPEC §1). */
bool osse__can_read(const osse_principal_t *p, const osse_request_t *r);
/* r's tracking view; public_view: as tracking by code shows it (no form, no
 * reasons); else with personal values as stored: answers are rendered for
 * their reader at the door (osse_engine_render_answer), after they are
 * remembered, so that remembered answers and the digest hold only
 * ciphertext. */
json_t *osse__request_view(osse_engine_t *e, const osse_request_t *r, bool public_view);
/* The tracking view's fee: {"amount","paid","reference","qr"}, or null. */
json_t *osse__fee_json(const osse_request_t *r);
/* The views' part of GET /metrics. */
void osse__views_metrics(osse_engine_t *e, osse_buf_t *out);
/* Step i of r as an agency's inbox lists it (SPEC §4); webhooks add "agency". */
json_t *osse__task_entry(const osse_request_t *r, size_t i);

/* --- erasure.c: erasure of personal data (SPEC §8) --- */
/* Erases r (ended, not erased): records PersonalDataErased {fields, reason}
 * (actor NULL: the system's retention), which drops r's key at once
 * (apply.c), and once that is durable removes the wrapped keys of r and of
 * the files its pii fields hold from the key store on the pool. Then
 * done(ud, status, answer): status 0 and the answer {"id","status","fields",
 * "reason","version"} (taken), or the failure of the write or of the key
 * store (answer NULL), possibly before osse__erase returns (a log that has
 * failed already). done may be NULL. */
void osse__erase(osse_engine_t *e, osse_request_t *r, const osse_principal_t *actor,
                 const char *reason, osse_erase_cb done, void *ud);
/* At start (engine.c): whether the key store's key `id` belongs to an
 * erased request, so that an erasure the process stopped in the middle of
 * is finished by removing it. */
bool osse__erasure_stale_key(osse_engine_t *e, const char *id);
/* kdel/<id> (keys.h) put in the batch being filled, or deleted. */
void osse__erasure_intent(osse_engine_t *e, const char *id, bool put);

/* --- expiry.c: licence expiries and retention (a heap that timers.c drives) --- */
/* Schedules r's retention erasure (when its workflow has retention, it
 * ended and is not erased); r's licence expiry (when valid); rebuilds the
 * heap from the registry and the requests; the time of the next expiry or
 * erasure still due (INT64_MAX when none; stale entries dropped); does that
 * one (LicenceExpired, or osse__erase with reason "retention"), stamped at
 * osse's clock. */
void osse__retention_add(osse_engine_t *e, const osse_request_t *r);
void osse__licence_expiry_add(osse_engine_t *e, const osse_request_t *r);
/* At start (timers.c): from_disk (the start read the records) reads the
 * first window of the due/ index (before the loop runs), else every
 * request's entries go into the heap (a replay, a migration). */
int osse__licence_expiry_rebuild(osse_engine_t *e, bool from_disk);
int64_t osse__licence_expiry_next(osse_engine_t *e);
/* Fires the next one; false when the heap must first be read further from
 * disk: that read is on the pool, and timers.c fires again when it is
 * back (osse__timers_fire with the engine's now). */
bool osse__licence_expiry_fire(osse_engine_t *e);
/* A test clock move to `to` (ms): a scan of every stored entry due by then
 * that the heap does not hold, or NULL when it holds them all (the caller
 * sets its finish). osse__due_take puts its rows into the heap, before the
 * clock moves, and gives `to` back. */
osse_scan_t *osse__due_scan_upto(osse_engine_t *e, int64_t to);
int64_t osse__due_take(osse_engine_t *e, osse_scan_t *s);

/* --- request.c: the life of a request --- */
/* Opens, skips and completes until nothing more moves (after any change). */
void osse__advance(osse_engine_t *e, osse_request_t *r, const osse_principal_t *actor);

/* --- audit.c: signed heads of the Merkle tree (a reactor) --- */
/* origin: the log's name asked for (NULL: the key's, or a default for a new
 * key; osse_signer_open). After the replay. */
int osse__audit_open(osse_engine_t *e, const char *origin, osse_err_t *err);
void osse__audit_started(osse_engine_t *e); /* once the log runs */
void osse__audit_stop(osse_engine_t *e);    /* signs the final head */
void osse__audit_close(osse_engine_t *e);

typedef struct osse_notify_s osse_notify_t;

/* --- notify.c: webhooks and subscriptions (a reactor) --- */
/* open: after the log starts, serving
 * only (never in a replay): starts the hooks module and re-queues every
 * pending delivery. stop: closes the hooks (run the loop afterwards). free:
 * at engine close, also in replay engines. */
int osse__notify_open(osse_engine_t *e, const osse_engine_opts_t *opts, osse_err_t *err);
void osse__notify_stop(osse_engine_t *e);
void osse__notify_free(osse_engine_t *e);
void osse__notify_metrics(osse_engine_t *e, osse_buf_t *out);

/* --- timers.c: SLA deadlines and the test clock (a reactor) --- */
/* Fires, in due order, every deadline due at or before upto. With
 * stamp_due, each firing's events carry the deadline's own time. */
void osse__timers_fire(osse_engine_t *e, int64_t upto, bool stamp_due);
/* After the replay: builds the heap from the projections, and the
 * expiries' (from_disk: a start that read the records reads the first
 * window of their index). */
int osse__timers_start(osse_engine_t *e, bool from_disk);
void osse__timers_stop(osse_engine_t *e);

/* --- linkage.c: the lookup calls of linkage steps (a reactor, serving only) --- */
/* Opens the fetcher and calls again every linkage step left open by the log
 * (after the replay at start). Returns 0 or OSSE_EIO / OSSE_ENOMEM. */
int osse__linkage_start(osse_engine_t *e);
/* Cancels every call without recording anything and closes the handles; run
 * the loop afterwards. No-op when not started. */
void osse__linkage_stop(osse_engine_t *e);
void osse__linkage_free(osse_engine_t *e);

#endif
