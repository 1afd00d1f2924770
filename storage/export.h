/* export.h: the export file an auditor receives, its writer, and the
 * offline verifier / reader (issue 4; the format is in docs/audit.md).
 *
 *   header   "OSSE-LOG" u32 version=2, u16 origin length + origin, public key,
 *            u64 first seq, u64 event count, u8 n + n frontier hashes (the
 *            perfect subtrees of the tree of size first-1), u32 head count
 *   heads    (u64 size, i64 at_ms, root, Ed25519 signature) each, sizes
 *            strictly increasing, all below the last event's seq
 *   events   (u32 length, leaf hash, stored bytes) each, seq first, first+1...
 *   trailer  "OSSE-END", u64 total file length, the final head (a head
 *            record whose size is the last event's seq), and the closing
 *            signature: Ed25519 over SHA-256 of every byte before it
 * All integers big-endian.
 *
 * Key invariant of the reader: it never trusts a length. Every field has a
 * fixed maximum, and memory grows only as bytes actually arrive, so hostile
 * input costs at most about twice its own size in memory (beyond the stream
 * reader's fixed buffers: four chunks of at most 1 MiB and 16,384 leaf
 * hashes) and never crashes.
 *
 * Why heads before events: a verifier then checks each head's root the moment
 * the leaf count reaches its size, in one pass over a stream with O(log n)
 * state. Each event carries its leaf hash so that a changed event is named
 * exactly: the recorded leaf hashes are authenticated by the signed roots,
 * and an event whose bytes do not hash to its recorded leaf is the bad one.
 * The closing signature binds the rest (the heads' times, the frontier, the
 * lengths), so that no byte of a file can change and still verify.
 */
#ifndef OSSE_STORAGE_EXPORT_H
#define OSSE_STORAGE_EXPORT_H

#include <stdint.h>
#include <stdio.h>

#include "common/err.h"
#include "storage/checkpoint.h"
#include "storage/log.h"

/* 2: the closing signature and the final head in the trailer (version 1
 * left the heads' times and the header unsigned; it is refused). */
#define OSSE_EXPORT_VERSION 2
#define OSSE_EXPORT_EVENT_MAX (16u * 1024 * 1024) /* bytes of one event */
#define OSSE_EXPORT_HEADS_MAX 10000000u           /* heads before the final one */

/* Writes events from..to (seqs, inclusive; 0, 0 = the whole log) of log to
 * out, with every stored head whose size is in [max(1, from-1), to] and
 * origin is the signer's, plus a head for `to` signed now with signer if none
 * is stored. Sizes must be durable (an offline log, or <= the durable seq).
 * Returns 0, OSSE_EINVAL (range outside 1..last seq, or empty log),
 * OSSE_ENOTFOUND (tree hashes missing), OSSE_EIO (read or write failure),
 * OSSE_ENOMEM. Any thread but the loop's. */
int osse_export_write(osse_log_t *log, const osse_signer_t *signer, uint64_t from, uint64_t to,
                      FILE *out, osse_err_t *err);

/* What a read found. On failure, offset is the byte offset where the problem
 * was seen, and bad_seq / bad_head name the first bad event or head (0 when
 * the problem is not about one). */
typedef struct osse_export_info_s {
    char origin[OSSE_ORIGIN_MAX + 1];
    uint8_t public_key[32];
    uint64_t first_seq;
    uint64_t count;     /* events declared */
    uint64_t heads;     /* heads declared, the final one included */
    uint64_t verified;  /* events read and checked so far */
    uint64_t last_size; /* size of the last head checked against the events */
    uint8_t last_root[32];
    uint64_t offset; /* bytes consumed (on failure: where it failed) */
    uint64_t bad_seq;
    uint64_t bad_head;
} osse_export_info_t;

/* Called for each event once its bytes matched its leaf hash and decoded with
 * the expected seq (its head's root is checked later: a replay must still
 * check the function's result). A non-zero return stops the read and is
 * returned. */
typedef int (*osse_export_event_cb)(void *ud, uint64_t seq, const void *bytes, size_t len);

/* Reads and verifies an export: its structure, each event (leaf hash,
 * decoding, seq = previous + 1), each head's signature with key, each head's
 * root against the tree of the events up to its size (hence consistency
 * between successive heads), the trailer's length, the closing signature
 * over every byte before it, and nothing after it. Counts that cannot fit
 * in the input (when its size is known: a buffer, a regular file) are
 * refused before anything is read for them.
 * key may be NULL: the header's own public key is then used (self-consistency
 * only: the caller must say so to the user). A key with a name must match
 * the origin. cb may be NULL. info is filled as far as the read got.
 * Returns 0, OSSE_ECORRUPT (detail in err, position in info), OSSE_EIO,
 * OSSE_ENOMEM, or cb's value. Any thread. */
int osse_export_verify_buf(const void *buf, size_t len, const osse_verifier_t *key,
                           osse_export_event_cb cb, void *ud, osse_export_info_t *info,
                           osse_err_t *err);
int osse_export_verify_file(FILE *f, const osse_verifier_t *key, osse_export_event_cb cb, void *ud,
                            osse_export_info_t *info, osse_err_t *err);

/* For tests only: when non-zero, the stream reader's chunk size (else 64 KiB
 * growing to 1 MiB), so that a small export crosses many chunks. */
extern size_t osse__export_chunk;
/* For tests only: leaf hashes the stream reader took from its hasher thread
 * (counted by the reading thread). */
extern uint64_t osse__export_ahead;
/* For tests only, on intact exports: the reading thread waits for each leaf
 * hash from the hasher (so that a test sees them used, whatever the
 * scheduling). */
extern int osse__export_wait;

#endif
