/* engine.h: osse's engine: commands in, events out, projections kept.
 *
 * The life of a request: a portal submits a form (RequestSubmitted); every
 * step without unmet `after` opens (StepOpened) or is skipped; agencies
 * decide their tasks (TaskDecided); a step whose `after` steps are all
 * approved, done or skipped opens next (fan-in); a rejection ends the request
 * and cancels every unfinished step; `return` parks a task until the
 * applicant's InfoProvided; a withdrawal ends it. When every step is
 * finished the request is completed.
 *
 * Key invariant: every change is an event, and the in-memory projections
 * (requests, inboxes, catalog) are changed only by applying events, with the
 * same function at run time and when the log is replayed at start. So the
 * views always equal a rebuild from the log, after any crash.
 *
 * Why this way: a command runs entirely on the loop thread against the
 * in-memory state: it validates, emits its events (which are applied at once
 * and appended to the current batch), and builds its answer. The events of
 * every command handled in one loop iteration go to the log as one batch
 * (group commit); an answer is released only when the log reports the seq of
 * the last event emitted before it was made as durable (osse_engine_hold).
 *
 * Threading: all functions run on the loop thread unless said otherwise. */
#ifndef OSSE_ENGINE_ENGINE_H
#define OSSE_ENGINE_ENGINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "common/buf.h"
#include "common/err.h"
#include "storage/checkpoint.h"
#include "storage/event.h"
#include "storage/export.h"
#include "storage/log.h"

/* A read of the indexes on disk (below, osse_scan_run). */
typedef struct osse_scan_s osse_scan_t;
typedef struct osse_engine_s osse_engine_t;
/* A read of requests that are not in memory from disk (below, osse_readback_want). */
typedef struct osse_readback_s osse_readback_t;

/* What names a request in a call (api/server.c's route table says which
 * segment or field): its id, its tracking code, its licence's number, or a
 * payment it recorded (the payment principal's id, "\n", the transaction),
 * or an uploaded file it took (the file's id: its record, file/<id>, names
 * the request; the file is read back with it). */
typedef enum {
    OSSE_NAME_ID = 'i',
    OSSE_NAME_CODE = 'c',
    OSSE_NAME_LICENCE = 'l',
    OSSE_NAME_PAYMENT = 'p',
    OSSE_NAME_FILE = 'f',
} osse_name_kind_t;

#define OSSE_ROLES(X)                                                                              \
    X(PLATFORM, "platform")                                                                        \
    X(PORTAL, "portal")                                                                            \
    X(AGENCY, "agency")                                                                            \
    X(AUDITOR, "auditor")                                                                          \
    X(PAYMENT, "payment")

typedef enum {
#define X(n, s) OSSE_ROLE_##n,
    OSSE_ROLES(X)
#undef X
        OSSE_ROLE__COUNT
} osse_role_t;

const char *osse_role_name(osse_role_t r);
int osse_role_parse(const char *s, osse_role_t *out);

typedef struct osse_principal_s {
    char *id;
    osse_role_t role;
    char *agency; /* for OSSE_ROLE_AGENCY */
    char *name;
    char token_hash[65];
    bool revoked;
    int64_t created_at;
} osse_principal_t;

/* A failed command: the HTTP status is chosen by api/ from rc:
 * OSSE_EINVAL -> 422, OSSE_ENOTFOUND -> 404, OSSE_ECONFLICT -> 409,
 * OSSE_EFORBIDDEN -> 403, OSSE_EPARSE -> 400, OSSE_ENOSPC -> 503 (with
 * Retry-After). */
typedef struct osse_fail_s {
    int rc;
    const char *code; /* "invalid_form", ... */
    char message[300];
    json_t *details; /* array or NULL; owned */
} osse_fail_t;

void osse_fail_clear(osse_fail_t *f);

typedef struct osse_engine_opts_s {
    const char *data_dir;
    /* The log's origin (its key's name, SPEC §10 --origin): NULL keeps the
     * stored key's; one given must match it (else OSSE_ECONFLICT at open). */
    const char *origin;
    /* The key store's folder and the master key's file (SPEC §8): NULL =
     * <data>/keys and <data>/master.key. */
    const char *key_store, *master_key;
    bool test_clock;
    /* Benchmarks only (bench/audit.sh): no Merkle tree and no signed heads,
     * to measure what the tree costs on the append path. A folder served so
     * cannot later be served with the tree. */
    bool bench_without_tree;
    int64_t test_clock_start;   /* ms; 0 = the real time at start */
    int64_t hook_retry_base_ms; /* first webhook retry delay; 0 = 1000 (SPEC §7) */
    int64_t hook_retry_span_ms; /* give up once retries span this; 0 = one day (tests only) */
    /* Maintenance with the server stopped (osse token): the log is replayed
     * and may be appended to, but no delivery, deadline or lookup starts, no
     * first principal is made, and a folder without a log is refused
     * (OSSE_ENOTFOUND) rather than created. */
    bool offline;
    /* --allow-private-urls (SPEC §7): subscription URLs may be http: and
     * reach loopback, private and link-local addresses (tests, closed
     * networks). */
    bool allow_private_urls;
    /* The free-space reserve of the data folder's filesystem, in bytes:
     * below it state-changing commands are refused (OSSE_ENOSPC) and the
     * engine's own writes wait. 0 = max(64 MiB, 2 % of the filesystem), at
     * most a quarter of it (storage/log.h). */
    uint64_t min_free_bytes;
    /* Request keys made durable ahead of the submissions that take them
     * (engine/pii.c): 0 = 1024; negative: none, every submission's key goes
     * with its batch (tests only: --key-reserve N, hidden). */
    int key_reserve;
    /* The licence expiries and retention erasures read from their index on
     * disk at a time (engine/expiry.c): 0 = 4096 (tests only: --due-window
     * N, hidden). */
    size_t due_window;
    /* The ended requests kept in memory, least recently used first
     * (--request-cache N, engine/cache.c): past these, ended requests whose
     * records are durable leave memory and are read back from disk when a
     * call names one. 0: OSSE_REQUEST_CACHE; OSSE_REQUEST_CACHE_NONE keeps
     * none (the tests run so: every use of an ended request reads it back). */
    size_t request_cache;
    /* --rebuild-views: this start replays the whole log and writes every
     * request's record again, instead of reading the records (after a
     * release that changed how a view is built; engine/record.c). */
    bool rebuild_views;
    /* --check-views: this start reads every request's record (not only the
     * open ones) and checks the counters they give against the snapshot the
     * views marker holds, refusing to start on a difference. */
    bool check_views;
    /* How the log's tables are compressed: LZ4 (the default, 0) or none
     * (tests only: --log-compression none, hidden; test_markers searches
     * the data folder's bytes for personal values). */
    osse_log_compression_t log_compression;
    /* The partitions this node mints new request ids in (engine/partition.h):
     * partition_first .. partition_first + partition_count - 1; a count of
     * 0 is all OSSE_PARTITIONS (the default; osse serve --partitions A-B,
     * hidden, for a future node of a cluster). Ids already minted, in any
     * partition, are served as before. */
    unsigned partition_first, partition_count;
    /* Tests only (--fault-write N, --fault-fsync N): the log's nth synced
     * write since open fails (osse_log_fault). */
    osse_log_fault_t fault;
    uint64_t fault_at;
    /* Called once, on the loop thread, when a write of the log fails (disk
     * error, failed fsync), with its status; NULL: nobody is told but the
     * holds. It must stop whatever could still answer (api/main.c closes the
     * HTTP server), then make the loop return so that the owner stops the
     * engine. It is called from within the log's completion: it must not
     * call osse_engine_stop itself. */
    void (*on_fail)(void *ud, int status);
    void *on_fail_ud;
} osse_engine_opts_t;

/* Opens the log in opts->data_dir, replays it into the projections, and on a
 * fresh folder creates the first platform principal and writes its token to
 * <data>/admin.token (0600). Before the loop runs. Returns 0, OSSE_EBUSY
 * (another process has the folder open; err says so in words), or another
 * code with err filled. */
int osse_engine_open(const osse_engine_opts_t *opts, uv_loop_t *loop, osse_engine_t **out,
                     osse_err_t *err);
/* osse token: a new platform principal ("admin"), its PrincipalCreated
 * durable in the log, its token written to <data>/admin.token (0600,
 * replacing the file) and the path to path. Runs the loop until durable, so
 * call it outside loop callbacks (an offline engine). Returns 0 or OSSE_EIO
 * (the token file cannot be written; nothing was logged). */
int osse_engine_mint_platform(osse_engine_t *e, char id[40], char *path, size_t pathlen,
                              osse_err_t *err);
/* Flushes and stops the log; run the loop afterwards for close callbacks. */
void osse_engine_stop(osse_engine_t *e);
void osse_engine_close(osse_engine_t *e);

/* An engine for replays only (osse replay): projections built from events
 * handed in one by one, in seq order; no log, no clock, no timers. */
int osse_engine_open_replay(osse_engine_t **out);
/* Applies one stored event. Returns 0, or OSSE_ECORRUPT (bytes that do not
 * decode, a seq out of order, an event that contradicts the state). */
int osse_engine_replay_event(osse_engine_t *e, uint64_t seq, const void *bytes, size_t len,
                             osse_err_t *err);
/* What osse replay --data found of the stored request records (record.c)
 * against the requests it rebuilt from the log alone: byte for byte equal,
 * missing (a data folder written before records), or different (a bug or a
 * damaged store), with the first id of each of the latter two. */
typedef struct osse_records_check_s {
    uint64_t equal, missing, differ;
    uint64_t extra; /* stored records (req/, opn/) of no rebuilt request, or at the wrong key */
    char first_missing[64], first_differ[64];
    /* The same of the entries in the indexes on disk (engine/index.c), and
     * the stored entries that no request gives (extra). */
    uint64_t ix_equal, ix_missing, ix_different, ix_extra;
    char ix_first[96];
    /* The counters snapshot of the views marker against the rebuilt
     * counters: "equal", "different" (each field logged) or "missing". */
    const char *snapshot;
} osse_records_check_t;
/* Returns 0, or OSSE_EIO / OSSE_ENOMEM with detail in err. */
struct osse_log_s;
int osse_engine_records_check(osse_engine_t *e, struct osse_log_s *log, osse_records_check_t *out,
                              osse_err_t *err);

/* osse_engine_replay_event in its two halves. _decode: any thread, touches
 * no engine (ev is then the caller's: osse_event_clear). _decoded: the
 * engine's thread, ev borrowed. Same errors and messages. */
int osse_engine_replay_decode(uint64_t seq, const void *bytes, size_t len, osse_event_t *ev,
                              osse_err_t *err);
int osse_engine_replay_decoded(osse_engine_t *e, uint64_t seq, const osse_event_t *ev,
                               osse_err_t *err);

/* A replay in two threads (engine/replay.c): a second thread reads the
 * events (an export, verified as osse_export_verify_file does, filling
 * info; or the log from seq 1) and decodes them, while this one applies
 * them. The first event must be seq 1. Returns, and writes into err, what
 * feeding osse_engine_replay_event one event at a time returns: the first
 * problem in log order, whichever thread met it (on a problem of applying,
 * info's offset, bad_seq and bad_head are 0, as that reader leaves them).
 * OSSE_ENOMEM if the thread cannot start. */
int osse_engine_replay_export(osse_engine_t *e, FILE *f, const osse_verifier_t *key,
                              osse_export_info_t *info, osse_err_t *err);
int osse_engine_replay_log(osse_engine_t *e, osse_log_t *log, osse_err_t *err);
/* The digest of every view (SPEC §6): SHA-256, as hex, over a canonical
 * rendering of the catalog (subscriptions included) and of every request's
 * tracking view; never keys, secrets or checkpoints. *size is the seq of the last event applied. */
int osse_engine_digest(osse_engine_t *e, char hex[65], uint64_t *size);
/* --recheck: re-evaluates every rule recorded in a request's events against
 * its recorded inputs, the rule being the one of the definition version the
 * request ran under; reports each difference to out (one line each) and
 * returns the number of differences. */
/* The rules osse_engine_recheck_event could not rerun because the inputs
 * they recorded are personal and sealed: counted, never differences. */
size_t osse_engine_recheck_sealed(const osse_engine_t *e);
/* The rules of requests whose personal data was erased: skipped, neither
 * differences nor not checkable (SPEC §6). */
size_t osse_engine_recheck_skipped(const osse_engine_t *e);
size_t osse_engine_recheck_event(osse_engine_t *e, uint64_t seq, const void *bytes, size_t len,
                                 FILE *out);

osse_log_t *osse_engine_log(osse_engine_t *e);

/* Audit (SPEC §6). The latest signed head, which covers only durable events:
 * 0 or OSSE_ENOTFOUND (none yet). Loop thread. */
int osse_engine_checkpoint(osse_engine_t *e, osse_head_t *out);
/* The key that signs heads (name, public key, key id); NULL in a replay. */
const osse_verifier_t *osse_engine_verifier(osse_engine_t *e);
/* {"key_id","public_key","verifier_key"}; NULL on allocation failure. */
json_t *osse_audit_public_key(const osse_verifier_t *v);
/* Proofs as SPEC §6 JSON, from stored hashes: 1 <= seq <= size and
 * 1 <= from <= to, sizes <= the durable seq (the caller checks). They read
 * RocksDB: call them on the pool, never the loop thread. Return 0 or the
 * merkle read's error. */
int osse_audit_inclusion(osse_log_t *log, uint64_t seq, uint64_t size, json_t **out,
                         osse_err_t *err);
int osse_audit_consistency(osse_log_t *log, uint64_t from, uint64_t to, json_t **out,
                           osse_err_t *err);
int64_t osse_engine_now(const osse_engine_t *e);

/* Authentication: the principal whose token this is, or NULL (unknown or
 * revoked). */
const osse_principal_t *osse_engine_auth(osse_engine_t *e, const char *token, size_t len);

/* Whether a state-changing command may run now: 0, or OSSE_ENOSPC with f
 * filled (code "insufficient_storage") while the data folder's filesystem
 * is below its free-space reserve. Call it before the command, which then
 * emits nothing: events already emitted are applied and cannot be refused.
 * Reads a flag kept by the log's writer thread; never blocks. */
int osse_engine_writable(osse_engine_t *e, osse_fail_t *f);

/* Holding answers until durable: cb(ud, 0) runs once every event emitted so
 * far is fsynced (at once if nothing is pending). When a write fails first,
 * cb(ud, status) runs instead (OSSE_EIO): what was held may stand on events
 * that are not durable and must never be sent or acted on; the callback
 * only frees it. After a failure every hold runs so, at once. */
typedef void (*osse_hold_cb)(void *ud, int status);
void osse_engine_hold(osse_engine_t *e, osse_hold_cb cb, void *ud);
/* 0, or the status of the log write that failed (no answer may go out any
 * more: see opts.on_fail). */
int osse_engine_failed(const osse_engine_t *e);

/* Idempotency (SPEC §4), in one place: a state-changing call with an
 * Idempotency-Key begins with osse_engine_idem_begin and ends with
 * osse_engine_idem_remember on its answer. A key names (principal, method,
 * path, key): the engine hashes them (and the raw body) itself, so the
 * remembered answers (side records idem/<hash>) keep their names across
 * versions. Answers are remembered for 24 hours on the engine's clock (the
 * test clock too), only when 2xx (an error changed nothing, so a retry runs
 * again), in the batch of the call's events. */
#define OSSE_IDEM_KEY_MAX 200 /* bytes of an Idempotency-Key */

typedef enum {
    OSSE_IDEM_NEW,      /* not known: run the call; st is armed for remember */
    OSSE_IDEM_REPLAY,   /* known with this body: answer *status, *answer again */
    OSSE_IDEM_MISMATCH, /* known with another body: 422 idempotency_mismatch */
} osse_idem_outcome_t;

typedef struct osse_idem_state_s {
    bool armed; /* remember records the answer */
    char key_hash[65], body_hash[65];
} osse_idem_state_t;

/* principal: the caller's id; method, path (not percent-decoded), key and
 * body as the request has them. Returns an osse_idem_outcome_t (>= 0), with
 * *status and *answer (a new string, free() it) for OSSE_IDEM_REPLAY; or
 * OSSE_EINVAL with f filled (invalid_request) for a key longer than
 * OSSE_IDEM_KEY_MAX bytes. st is zeroed first, so remember on it is a no-op
 * unless the outcome is OSSE_IDEM_NEW. */
int osse_engine_idem_begin(osse_engine_t *e, const char *principal, const char *method,
                           osse_slice_t path, osse_slice_t key, osse_slice_t body,
                           osse_idem_state_t *st, int *status, char **answer, osse_fail_t *f);
/* The same with the body's hash made beforehand by osse_engine_idem_body_hash
 * (any thread: the pool, for an upload's 20 MiB). */
void osse_engine_idem_body_hash(osse_slice_t body, char out[65]);
int osse_engine_idem_begin_hashed(osse_engine_t *e, const char *principal, const char *method,
                                  osse_slice_t path, osse_slice_t key, const char body_hash[65],
                                  osse_idem_state_t *st, int *status, char **answer,
                                  osse_fail_t *f);
/* For a call whose command runs later than its arrival (a publish, after
 * its turn on the pool): looks the armed key up again, so that a call with
 * the same key that came meanwhile and was answered first is replayed, not
 * run twice. Returns OSSE_IDEM_NEW (st stays armed), OSSE_IDEM_REPLAY with
 * *status and *answer (malloc'd), or OSSE_IDEM_MISMATCH; the last two
 * disarm st. */
int osse_engine_idem_recheck(osse_engine_t *e, osse_idem_state_t *st, int *status, char **answer);
/* Records the call's answer when st is armed and status is 2xx (else does
 * nothing), durably with the current batch: hold the answer after it. */
void osse_engine_idem_remember(osse_engine_t *e, const osse_idem_state_t *st, int status,
                               const char *body);

/* --- Commands. Each validates fully before emitting anything: on failure it
 * returns non-zero with f filled and nothing changed. On success *out is a
 * new reference to the JSON answer. --- */

/* Publishing a definition (SPEC §2): every check of osse_wf_check against
 * the catalog, in one round. Content equal to a version already published
 * writes nothing and answers *status 200 with {"id","version"} (the latest
 * version); otherwise WorkflowPublished, 201 and the new version. Which
 * versions count is the mode's: through the API only the latest (publishing
 * an older content again is a deliberate revert); at start (--workflows)
 * every one, so that a restart never reverts a version published through
 * the API; then *out also has "same_as", the version with that content. The
 * answer has "warnings" [{"path","message"}] only when there are some. */
typedef enum { OSSE_PUBLISH_API, OSSE_PUBLISH_LOAD } osse_publish_mode_t;
/* Publishing is in two halves so that the long one runs on the libuv pool
 * (docs/design.md, "Bounds of a definition"): osse_cmd_publish_prepare makes
 * every check that needs only the tree, compiles it and writes its canonical
 * JSON; osse_cmd_publish_workflow looks the references up in the catalog,
 * compares with the versions and emits. */
typedef struct osse_publish_prep_s osse_publish_prep_t;
/* Takes tree (a parsed definition: the caller's reference moves into *out,
 * and nobody may change the tree afterwards). Returns 0 and *out, or
 * OSSE_ENOMEM (tree released). Reads no engine state: any thread. */
int osse_cmd_publish_prepare(json_t *tree, osse_publish_prep_t **out);
void osse_publish_prep_free(osse_publish_prep_t *prep); /* NULL-safe */
/* The loop half, once per prep (the caller still frees it): fails with
 * invalid_definition and every problem of the text and of the references
 * in one list, as osse_wf_check. Loop thread. */
int osse_cmd_publish_workflow(osse_engine_t *e, const osse_principal_t *p,
                              osse_publish_prep_t *prep, osse_publish_mode_t mode, json_t **out,
                              int *status, osse_fail_t *f);
/* The body checks of PUT /v1/calendars/{id} and PUT /v1/agencies/{id}
 * alone, with the same failures, changing nothing: `osse validate` checks a
 * _setup.yaml with them. Any thread. */
int osse_check_calendar(const char *id, const json_t *body, osse_fail_t *f);
int osse_check_agency(const char *id, const json_t *body, osse_fail_t *f);
int osse_cmd_put_calendar(osse_engine_t *e, const osse_principal_t *p, const char *id, json_t *body,
                          json_t **out, int *status, osse_fail_t *f);
int osse_cmd_put_agency(osse_engine_t *e, const osse_principal_t *p, const char *id, json_t *body,
                        json_t **out, int *status, osse_fail_t *f);
/* POST /v1/agencies/{id}/secret: a new webhook secret, answered as GET
 * answers the agency, with previous_secret_valid_until; the one it replaces
 * still signs webhooks (a second v1= of Osse-Signature) for 24 hours of the
 * engine's clock. Records AgencySecretRotated (never a secret: both are side
 * records in its batch). OSSE_ENOTFOUND for an unknown agency. Loop thread. */
int osse_cmd_rotate_agency_secret(osse_engine_t *e, const osse_principal_t *p, const char *id,
                                  json_t **out, osse_fail_t *f);
int osse_cmd_create_principal(osse_engine_t *e, const osse_principal_t *p, json_t *body,
                              json_t **out, osse_fail_t *f);
int osse_cmd_revoke_principal(osse_engine_t *e, const osse_principal_t *p, const char *id,
                              json_t **out, osse_fail_t *f);
/* POST /v1/requests. The body's form is taken as the event's: its values
 * may be replaced in place (files resolved, personal values sealed), even
 * when the submission fails; the caller only frees the body after. */
int osse_cmd_submit(osse_engine_t *e, const osse_principal_t *p, json_t *body, json_t **out,
                    osse_fail_t *f);
int osse_cmd_decide(osse_engine_t *e, const osse_principal_t *p, const char *request_id,
                    const char *step, json_t *body, json_t **out, osse_fail_t *f);
int osse_cmd_info(osse_engine_t *e, const osse_principal_t *p, const char *request_id, json_t *body,
                  json_t **out, osse_fail_t *f);
int osse_cmd_withdraw(osse_engine_t *e, const osse_principal_t *p, const char *request_id,
                      json_t *body, json_t **out, osse_fail_t *f);
/* DELETE /v1/requests/{id}/personal-data (platform; SPEC §8, engine/erasure.c):
 * body {"reason"} (a non-empty string of at most 1000 bytes, stored plain).
 * Refusals change nothing: OSSE_EFORBIDDEN, OSSE_ENOTFOUND, OSSE_EINVAL,
 * OSSE_ECONFLICT "not_ended" while the request has not ended and
 * "already_erased" once erased. Else 0: PersonalDataErased is emitted, and
 * done(ud, status, answer) follows once the event is durable and the key
 * store no longer holds the request's key: status 0 and the answer
 * {"id","status","fields","reason","version"} (taken), or the log's or the
 * key store's failure (answer NULL; the next start finishes the removal).
 * done may run before this returns (a log that has failed already). */
typedef void (*osse_erase_cb)(void *ud, int status, json_t *answer);
int osse_cmd_erase(osse_engine_t *e, const osse_principal_t *p, const char *request_id,
                   json_t *body, osse_erase_cb done, void *ud, osse_fail_t *f);
/* POST /v1/requests/{id}/payments (payment): PaymentReceived, the step done
 * and the request advanced; checks in SPEC §4's order (engine/payment.c).
 * *out = {"id","status","fee"}. */
int osse_cmd_pay(osse_engine_t *e, const osse_principal_t *p, const char *request_id, json_t *body,
                 json_t **out, osse_fail_t *f);
/* PUT /v1/subscriptions/{id} (portal, platform): *status 201 when created. */
int osse_cmd_put_subscription(osse_engine_t *e, const osse_principal_t *p, const char *id,
                              json_t *body, json_t **out, int *status, osse_fail_t *f);
/* DELETE /v1/subscriptions/{id} (its owner, platform): SubscriptionDeleted;
 * its secret goes, and every delivery still pending for it is given up
 * (NotificationFailed, "the subscription was deleted") in the same batch.
 * Checks as osse_q_subscription. *out = {"id","deleted":true}. */
/* The address half of SPEC §7's rule for a subscription URL, which needs
 * its host resolved (off the loop thread). Returns 1 when there is nothing
 * to resolve (the server allows private URLs, or url is not a well-formed
 * https URL: osse_cmd_put_subscription says so), and cb is not called; 0 when
 * cb(ud, rc, f) will be called later on the loop thread: rc 0 when every
 * address is public, else the failure (f borrowed for the call; a 422 naming
 * the address, or unavailable when the server stops). Loop thread. */
typedef void (*osse_sub_url_cb)(void *ud, int rc, osse_fail_t *f);
int osse_sub_url_resolve(osse_engine_t *e, const char *url, osse_sub_url_cb cb, void *ud);
int osse_cmd_delete_subscription(osse_engine_t *e, const osse_principal_t *p, const char *id,
                                 json_t **out, osse_fail_t *f);
/* POST /v1/test/clock. When the expiries due by the new time are not all
 * in memory, *scan is set instead of *out: the move is made once it has
 * read them (osse_scan_run, osse_scan_finish gives the answer). */
int osse_cmd_test_clock(osse_engine_t *e, const osse_principal_t *p, json_t *body, json_t **out,
                        osse_scan_t **scan, osse_fail_t *f);

/* --- Queries (views). --- */

/* An answer as p reads it (SPEC §8): in a tracking view (an object with
 * "id" and "form"), the sealed personal values opened when p may read them
 * in plain (the submitting portal, the platform, an agency with a task in
 * the request), "[withheld]" for anyone else (auditors); in an upload's
 * answer (an object with "id", "sha256" and a sealed "name"), the name
 * opened (only its uploader gets it). Engines answer with
 * values as stored; the front door calls this after remembering an answer
 * and before sending it. Returns a new malloc'd body (*outlen set), or NULL
 * when body holds nothing sealed (send it as it is). Loop thread. */
char *osse_engine_render_answer(osse_engine_t *e, const osse_principal_t *p, const char *body,
                                size_t len, size_t *outlen);

int osse_q_request(osse_engine_t *e, const osse_principal_t *p, const char *id, bool public_view,
                   json_t **out, osse_fail_t *f);
int osse_q_track(osse_engine_t *e, const char *code, json_t **out, osse_fail_t *f);
/* The public service manual (SPEC §12, engine/manual.c), for anyone:
 * {"services":[{"id","version","title","agencies","max_working_days","fee"}]}
 * in id order, and one workflow's manual (OSSE_ENOTFOUND for an unknown id),
 * both from each workflow's latest version. Loop thread. */
int osse_q_services(osse_engine_t *e, json_t **out, osse_fail_t *f);
int osse_q_service(osse_engine_t *e, const char *id, json_t **out, osse_fail_t *f);
/* Reads from the indexes on disk (engine/index.c): a query checks its
 * parameters on the loop and gives a scan (or fails as the others do);
 * osse_scan_run reads it on the libuv pool (it touches no engine state);
 * osse_scan_finish, back on the loop, gives the answer or the failure and
 * frees the scan; osse_scan_free frees one never finished. The answer
 * shows what the batches made durable. */
void osse_scan_run(osse_scan_t *s);
int osse_scan_finish(osse_engine_t *e, osse_scan_t *s, json_t **out, osse_fail_t *f);
void osse_scan_free(osse_scan_t *s);
/* The step before a call that names requests (engine/cache.c): for each
 * name, osse_readback_want adds a read of the request it names to *f (made at
 * the first) unless that request is in memory, or no request ever left
 * memory. With *f still NULL the call goes on at once; else osse_readback_run
 * reads on the libuv pool (it touches no engine state) and osse_readback_end,
 * back on the loop, brings what it read into memory and frees f; the call
 * then goes on as if every request had been in memory. A name that names
 * nothing on disk either is not an error: the call answers it as before.
 * osse_readback_end fails (500) only for a record that does not decode.
 * osse_readback_free frees one never ended. Loop thread, but run. */
#define OSSE_REQUEST_CACHE 10000
#define OSSE_REQUEST_CACHE_NONE SIZE_MAX
void osse_readback_want(osse_engine_t *e, osse_readback_t **f, osse_name_kind_t kind,
                        const char *name);
void osse_readback_run(osse_readback_t *f);
int osse_readback_end(osse_engine_t *e, osse_readback_t *f, osse_fail_t *fail);
void osse_readback_free(osse_readback_t *f);
/* osse_readback_want for what uploaded file id needs (GET /v1/files/{id}):
 * the request that took it, or, for a file not in memory (one an ended
 * request took: engine/files.c), its record and that request. */
void osse_readback_want_file(osse_engine_t *e, osse_readback_t **f, const char *id);
/* The same for each string of a submitted form that could be a file's id
 * not in memory (POST /v1/requests, .../info): so that one an ended request
 * took answers 422 file_taken. */
void osse_readback_want_form_files(osse_engine_t *e, osse_readback_t **f, const json_t *form);
/* params: the decoded query string as a JSON object of strings. */
int osse_q_requests(osse_engine_t *e, const osse_principal_t *p, json_t *params, osse_scan_t **out,
                    osse_fail_t *f);
int osse_q_inbox(osse_engine_t *e, const osse_principal_t *p, const char *agency, json_t *params,
                 osse_scan_t **out, osse_fail_t *f);
int osse_q_workflow(osse_engine_t *e, const osse_principal_t *p, const char *id, int version,
                    json_t **out, osse_fail_t *f);
/* A calendar as stored (canonical form) with its version. */
int osse_q_calendar(osse_engine_t *e, const char *id, json_t **out, osse_fail_t *f);
int osse_q_agency(osse_engine_t *e, const osse_principal_t *p, const char *id, json_t **out,
                  osse_fail_t *f);
/* The catalog lists (platform, auditor; a portal sees its own
 * subscriptions): {"<things>":[each as its own GET answers it, never a
 * secret or a token hash],"next_cursor"}, in id order; params are the query
 * (limit 1..500, default 500; cursor = the next_cursor of the page before). */
int osse_q_workflows(osse_engine_t *e, const osse_principal_t *p, const json_t *params,
                     json_t **out, osse_fail_t *f);
int osse_q_calendars(osse_engine_t *e, const osse_principal_t *p, const json_t *params,
                     json_t **out, osse_fail_t *f);
int osse_q_agencies(osse_engine_t *e, const osse_principal_t *p, const json_t *params, json_t **out,
                    osse_fail_t *f);
int osse_q_principals(osse_engine_t *e, const osse_principal_t *p, const json_t *params,
                      json_t **out, osse_fail_t *f);
int osse_q_subscriptions(osse_engine_t *e, const osse_principal_t *p, const json_t *params,
                         json_t **out, osse_fail_t *f);
/* GET /v1/subscriptions/{id} (its owner, platform): without the secret.
 * 404 unknown or deleted, 403 another principal's. */
int osse_q_subscription(osse_engine_t *e, const osse_principal_t *p, const char *id, json_t **out,
                        osse_fail_t *f);
/* GET /v1/stats (SPEC §10): params from, to (RFC 3339 or YYYY-MM-DD, UTC
 * midnight; [from, to)) and bucket (week | day, buckets starting Monday
 * 00:00 UTC / 00:00 UTC). OSSE_EINVAL (422) for a bad or unknown parameter
 * or more than 1000 buckets. A scan (above): the stints that ended are read
 * from the index on disk, those still held from memory when it finishes. */
int osse_q_stats(osse_engine_t *e, json_t *params, osse_scan_t **out, osse_fail_t *f);
/* --- The public registry (SPEC §9) and revocation (§4): registry.c. --- */
/* GET /v1/public/licences: params q (at most 100 characters), workflow,
 * status (valid|expired|revoked), limit (1..500, default 100), cursor; 422
 * for anything else. Newest first; a page scans a bounded number of
 * licences and may come back short with a next_cursor. A scan of the
 * registry's index (osse_scan_run, osse_scan_finish above). */
int osse_q_licences(osse_engine_t *e, const json_t *params, osse_scan_t **out, osse_fail_t *f);
/* One licence as listed, with document and jws; 404 unknown. */
int osse_q_licence(osse_engine_t *e, const char *number, json_t **out, osse_fail_t *f);
/* POST /v1/licences/{number}/revoke {"reason"}: platform or the issuing
 * step's agency (403 otherwise); 404 unknown, 409 already revoked; records
 * LicenceRevoked; *out = the registry entry after it. */
int osse_cmd_revoke_licence(osse_engine_t *e, const osse_principal_t *p, const char *number,
                            json_t *body, json_t **out, osse_fail_t *f);
/* The CSV export (same filters as osse_q_licences but limit and cursor):
 * open checks the parameters (422); next appends the next slice of rows (the
 * header first) and returns 1 while more follow, 0 after the last, 2 when
 * the next page of the registry must be read first (osse_csv_read on the
 * libuv pool, then next again), -1 on an entry that does not read (the
 * export is cut off); close is NULL-safe. Pages are read from the index on
 * disk, so the export holds one page in memory. The iterator borrows e:
 * close it before the engine. Loop thread, but osse_csv_read (pool: it reads
 * nothing of the engine; not while next runs). */
typedef struct osse_csv_s osse_csv_t;
int osse_q_licences_csv(osse_engine_t *e, const json_t *params, osse_csv_t **out, osse_fail_t *f);
int osse_csv_next(osse_csv_t *c, osse_buf_t *out);
void osse_csv_read(osse_csv_t *c);
void osse_csv_close(osse_csv_t *c);

/* Prometheus text; *out malloc'd. */
int osse_q_metrics(osse_engine_t *e, char **out, size_t *len);

/* The seqs of a request's events (request and delivery streams), checking
 * read access as osse_q_request does. *seqs is malloc'd; only seqs already
 * durable are listed. */
int osse_q_request_seqs(osse_engine_t *e, const osse_principal_t *p, const char *id,
                        uint64_t **seqs, size_t *n, osse_fail_t *f);

/* Stored events as SPEC §4 and §6 show them: a new array of
 * {"seq","stream","version","type","at","actor":{"kind","id"},"data"}, each
 * with "leaf_hash" (hex of SHA-256(0x00 || its stored bytes), the tree's own
 * leaf hash, docs/audit.md §1) when with_leaf. The events are the n seqs of
 * seqs in that order, or, with seqs NULL, the n events after `after`; all
 * must be durable (the caller's list or range says so). Returns 0, or
 * OSSE_ENOTFOUND / OSSE_EIO (the log cannot be read), OSSE_ECORRUPT (an
 * event does not decode), OSSE_ENOMEM, with err filled; *out is then
 * untouched. It reads RocksDB: call it on a pool thread, never the loop
 * thread; it touches no projection. */
int osse_engine_read_events(osse_engine_t *e, const uint64_t *seqs, uint64_t after, size_t n,
                            bool with_leaf, json_t **out, osse_err_t *err);
/* The durable size of the log: what GET /v1/log pages and proofs may name.
 * An event is shown only once durable, so that no answer names one that a
 * crash could take back. Loop thread. */
uint64_t osse_engine_durable_size(osse_engine_t *e);
/* One page of GET /v1/log (SPEC §6): at most limit events after `after`,
 * none past the durable size: they are the *n events after *from (read
 * them with osse_engine_read_events), and *next is the `after` of the next
 * page, 0 on the last one. Loop thread. */
void osse_engine_log_page(osse_engine_t *e, uint64_t after, uint64_t limit, uint64_t *from,
                          size_t *n, uint64_t *next);

/* Files (SPEC §4, engine/files.c). An upload runs in three parts: begin
 * (loop: checks the Content-Type, 400 invalid_content_type; the optional
 * Osse-Filename, 422; an empty body, 422; picks the id), store (the pool:
 * makes the file's key, hashes the bytes, writes them sealed under it and
 * the key to the key store, durably; touches nothing but u and the key
 * store), end (loop: records the file in the current batch, *out =
 * {"id","sha256","size","content_type","name"} with the name as stored,
 * sealed, which osse_engine_render_answer opens; a failed store is 503
 * insufficient_storage or 500).
 * u borrows bytes, which must stay valid until store has returned; free u
 * with osse_file_upload_free, which touches no engine (it may run after the
 * engine closed). Hold the answer (osse_engine_hold) before sending it. */
typedef struct osse_file_up_s osse_file_up_t;
int osse_file_upload_begin(osse_engine_t *e, const osse_principal_t *p, osse_slice_t ctype,
                           osse_slice_t name, osse_slice_t bytes, osse_file_up_t **out,
                           osse_fail_t *f);
/* The bytes' sha256 (hex), when the caller has it already (the hash of the
 * body for an Idempotency-Key, made on the pool): store then does not hash
 * them again. Before store. */
void osse_file_upload_hashed(osse_file_up_t *u, const char sha256[65]);
void osse_file_upload_store(osse_file_up_t *u);
int osse_file_upload_end(osse_engine_t *e, osse_file_up_t *u, json_t **out, osse_fail_t *f);
/* Instead of end, for a stored upload that will not be recorded (another
 * call with its Idempotency-Key was answered meanwhile): its key and bytes
 * are removed on the pool. */
void osse_file_upload_discard(osse_engine_t *e, osse_file_up_t *u);
void osse_file_upload_free(osse_file_up_t *u); /* NULL-safe */

/* GET /v1/files/{id}: osse_q_file checks (loop: 404 unknown or expired, 403
 * not p's to read, 410 gone when its key was destroyed); load reads, opens
 * and checks the bytes against their sha256 (the pool); result hands them
 * over (malloc'd) or fails (500). */
typedef struct osse_file_get_s osse_file_get_t;
int osse_q_file(osse_engine_t *e, const osse_principal_t *p, const char *id, osse_file_get_t **out,
                osse_fail_t *f);
void osse_file_get_load(osse_file_get_t *g);
int osse_file_get_result(osse_file_get_t *g, char **bytes, size_t *len, osse_fail_t *f);
const char *osse_file_get_type(const osse_file_get_t *g);
const char *osse_file_get_sha256(const osse_file_get_t *g);
void osse_file_get_free(osse_file_get_t *g); /* NULL-safe */

#endif
