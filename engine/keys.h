/* keys.h: the names the engine gives to streams and side records, spelled
 * once.
 *
 * Streams are "<kind>/<id>". The kinds ("request", "delivery", "workflow",
 * "calendar", "agency", "principal", "subscription") are SPEC §5's and are
 * spelled in storage/event_types.h (OSSE_STREAM_KINDS), because the decoder
 * checks each event's stream against its type there; the engine names a
 * stream by that enum through the two helpers below and never writes a
 * kind's text itself.
 *
 * Side records are the log's 'K' keys the engine writes (docs/design.md,
 * "Log layout"); their prefixes are here. Storage's own keys are not: the
 * events ('E' be64(seq), storage/log.h), the Merkle tree's hashes ("m",
 * storage/merkle.h) and the signed heads ("h", "c", storage/checkpoint.h)
 * are written and read only by storage, which may not include engine. */
#ifndef OSSE_ENGINE_KEYS_H
#define OSSE_ENGINE_KEYS_H

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "storage/event_types.h"

/* idt/ be64(at ms) <key hash>: a remembered answer (JSON
 * {"b","s","at","r"}), in the order of its time: a start reads those of the
 * last 24 hours only, and each is deleted once it has expired (commit.c).
 * idem/<key hash>: the same, as written before the ninth session; the
 * first start moves the live ones to idt/ and deletes them all. */
#define OSSE_KEY_IDEM_AT "idt/"
#define OSSE_KEY_IDEM "idem/"
/* dlv/<delivery id>: a webhook delivery not yet delivered or given up. */
#define OSSE_KEY_DLV "dlv/"
/* secret/agency/<id>, secret/subscription/<id>: webhook secrets, never in
 * the log. */
#define OSSE_KEY_AGENCY_SECRET "secret/agency/"
#define OSSE_KEY_SUB_SECRET "secret/subscription/"
/* secret/agency-old/<id>: "<until ms>:<secret>", the agency's secret before
 * its last rotation, which still signs webhooks until then. */
#define OSSE_KEY_AGENCY_OLD_SECRET "secret/agency-old/"
/* payanswer/<payment principal id>\n<transaction>: the request status the
 * first successful POST .../payments of that transaction answered, so that
 * a retried callback answers as it did (SPEC §4) also after the request
 * moved on and across restarts. Written with the payment's events. */
#define OSSE_KEY_PAY_ANSWER "payanswer/"
/* file/<file id>: an uploaded file's metadata (JSON {"sha256","size",
 * "content_type","name","uploader","at","taken_by","field"}), written once
 * its bytes are durable under <data>/files/ and again, with taken_by, in
 * the batch of the submission that takes it (engine/files.c). */
#define OSSE_KEY_UPLOAD "file/"
/* fop/<file id>: a file a start keeps in memory: not taken yet, or taken
 * by a request not ended (engine/files.c). Put with each file record,
 * deleted with the batch that ends its request and with the sweep that
 * forgets it. Empty value. A file taken by an ended request is read from
 * disk when a call names it. */
#define OSSE_KEY_FILE_LIVE "fop/"
/* files/2: every file a start must keep has its fop/ entry (written by the
 * first start of an osse that keeps them, after one pass over file/). */
#define OSSE_KEY_FILES_INDEXED "files/2"
/* req/<request id>: an ended request's projection (engine/record.c),
 * written with every batch that changes it; an open one's is under opn/
 * (below). */
#define OSSE_KEY_REQUEST "req/"
/* cat/ be64(seq): an event of a catalog stream (workflow, calendar,
 * agency, principal, subscription), which the start replays before it
 * reads the requests' records (engine/record.c). */
#define OSSE_KEY_CATALOG "cat/"
/* views/6: be64(seq) then the counters snapshot (engine/record.c, docs/design.md "The counters
 * snapshot"), once every request has its record and its index entries (engine/index.c) and every
 * catalog event its cat/ key, renewed with every batch since: the start reads them instead of
 * replaying the log when seq is the log's last (so a log that an osse without records wrote on
 * meanwhile is replayed and migrated again), and checks the snapshot against what it read. First
 * written by the first start of a data folder (after a replay of the whole log: the migration) in
 * its last batch.
 */
#define OSSE_KEY_VIEWS "views/6"
/* views/5: the marker of an osse whose index held a nam/ entry for every
 * tracking code (those of 11 characters too): removed by the migration. */
#define OSSE_KEY_VIEWS_5 "views/5"
/* views/4: the marker of an osse whose open requests' records were under
 * req/ (and opn/ an index of their ids): removed by the migration. */
#define OSSE_KEY_VIEWS_4 "views/4"
/* views/3: the marker of an osse whose marker held no counters snapshot and
 * whose indexes had no opn/: removed by the migration. */
#define OSSE_KEY_VIEWS_3 "views/3"
/* views/2: the marker of an osse whose records had no registry entries
 * (lic/, before they were an index): removed by the migration. */
#define OSSE_KEY_VIEWS_2 "views/2"
/* views: the marker of an osse whose records had no index entries (before
 * engine/index.c): removed by the migration. */
#define OSSE_KEY_VIEWS_1 "views"
/* lst/ be64(~first seq): a request's entry in the request list, newest
 * first (engine/index.c). */
#define OSSE_KEY_LIST "lst/"
/* due/ be64(at, sign bit flipped) kind id: a valid licence's expiry (kind
 * OSSE_EXPIRY_LICENCE) or a retention erasure to come (OSSE_EXPIRY_RETENTION)
 * of request id, soonest first (engine/index.c, engine/expiry.c). Empty
 * value. */
#define OSSE_KEY_DUE "due/"
/* lic/ be64(~LicenceIssued's seq): a licence's entry in the public
 * registry, newest first (engine/index.c). */
#define OSSE_KEY_LICENCE "lic/"
/* sti/ be64(end) be64(first seq) be16(step) be32(place): an ended stint of
 * a task step (statistics), by its end time (engine/index.c). */
#define OSSE_KEY_STINT "sti/"
/* tsk/<agency>/{d|o} k1 k2 be64(first seq) be16(step): a task step in a
 * final state in the inbox of the agency holding it, in due ('d') and in
 * opened ('o') order (engine/index.c). */
#define OSSE_KEY_INBOX "tsk/"
/* nam/ kind name 0x00 id: what else names request id, for reading it back
 * from disk (engine/index.c, engine/cache.c): kind OSSE_NAME_CODE a
 * tracking code of the 10 characters made before (one of 11 names its
 * request by the seq it permutes: engine/trackcode.h), OSSE_NAME_LICENCE
 * its licence number, OSSE_NAME_PAYMENT a payment it recorded ("<payment
 * principal>
<transaction>"). Empty value. */
#define OSSE_KEY_NAME "nam/"
/* opn/ be64(first seq): the record of a request not in a final status,
 * in the order of submission (the open list, e->open), as req/ holds an
 * ended one's (engine/record.c): a start reads open work in one pass of
 * one range, however long the history. A request's record moves from
 * opn/ to req/ in the batch that ends it. */
#define OSSE_KEY_OPEN "opn/"
/* kdel/<id>: the key of request or file id is to be removed from the key
 * store: put with the PersonalDataErased that erases it, deleted once the
 * key store's rewrite is done (engine/erasure.c); a start finishes what a
 * crash left (engine.c keys_load). Empty value. */
#define OSSE_KEY_KEY_ERASE "kdel/"
/* testclock: the test clock's position, decimal ms (--test-clock only). */
#define OSSE_KEY_TESTCLOCK "testclock"

/* Receivers of webhook deliveries, as NotificationDelivered/Failed name
 * them and the hooks module caps them: agency:<id>, subscription:<id>. */
#define OSSE_RECEIVER_AGENCY "agency:"
#define OSSE_RECEIVER_SUB "subscription:"

/* The length of a key prefix above, without its NUL. */
#define OSSE_KEY_LEN(prefix) (sizeof prefix - 1)

/* Writes the stream "<kind>/<id>" into out (n bytes, cut short as
 * snprintf does); returns what snprintf returns. */
static inline int osse__stream(char *out, size_t n, osse_stream_kind_t kind, const char *id)
{
    /* By hand, not snprintf(out, n, "%s/%s", ...): every event's emit makes
     * its stream's name. The same bytes, cut alike. */
    const char *name = osse_stream_kind_name(kind);
    size_t nl = strlen(name), il = strlen(id), at = 0;
    const char *parts[3] = {name, "/", id};
    size_t lens[3] = {nl, 1, il};
    for (int i = 0; i < 3 && n; i++) {
        size_t k = lens[i] < n - 1 - at ? lens[i] : n - 1 - at;
        memcpy(out + at, parts[i], k);
        at += k;
    }
    if (n)
        out[at] = '\0';
    return (int)(nl + 1 + il);
}

/* The id in a stream of the given kind ("request/r-1" -> "r-1"), or NULL
 * when the stream is of another kind. */
static inline const char *osse__stream_id(const char *stream, osse_stream_kind_t kind)
{
    const char *name = osse_stream_kind_name(kind);
    size_t n = strlen(name);
    return strncmp(stream, name, n) == 0 && stream[n] == '/' ? stream + n + 1 : NULL;
}

#endif
