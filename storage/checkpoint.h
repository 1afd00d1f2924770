/* checkpoint.h: the log's signing key and its signed tree heads (issue 4).
 *
 * A head says "the log named <origin> had <size> events and tree root
 * <root>", signed with Ed25519 in the C2SP signed-note form, so that the
 * text rendering is a C2SP tlog-checkpoint that existing transparency-log
 * tools and witnesses read:
 *
 *   <origin>\n<size>\n<base64 root>\n          (the body, which is signed)
 *   \n
 *   — <origin> <base64(key_id || 64-byte signature)>\n
 *
 * key_id = the first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key);
 * verifier key = "<name>+<8 hex key_id>+<base64(0x01 || public key)>".
 * The key's name is the checkpoint's origin: chosen when the key is made
 * (`osse serve --origin`, by default "<host name>/log") and fixed from then
 * on, since every head and licence already signed names it. An origin is
 * 1..255 bytes of valid UTF-8 without '+', Unicode spaces or control
 * characters (C2SP signed-note key names), checked wherever one is read.
 *
 * Key invariant: the secret key lives only in sodium_malloc memory and in
 * <data dir>/log.key (mode 0600, created by tmp + fsync + rename, never
 * rewritten), in the Go sumdb/note private key form
 * "PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>". It is never logged.
 *
 * Stored heads are side records: "h" be64(size) -> head, and "c" -> the
 * latest head, so that an export can include every head inside its range and
 * a restart can serve the latest at once.
 */
#ifndef OSSE_STORAGE_CHECKPOINT_H
#define OSSE_STORAGE_CHECKPOINT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "storage/log.h"

#define OSSE_ORIGIN_MAX 255
/* The origin of a new key when none is given and the host name does not
 * make a valid one. */
#define OSSE_DEFAULT_ORIGIN "osse.local/log"
#define OSSE_KEY_FILE "log.key"

typedef struct osse_signer_s osse_signer_t;

/* Who can check a signature: a key name, an Ed25519 public key, its id. */
typedef struct osse_verifier_s {
    char name[OSSE_ORIGIN_MAX + 1]; /* "" when built from a bare public key */
    uint8_t pk[32];
    uint8_t key_id[4];
} osse_verifier_t;

/* A signed tree head. The signature covers the note body (origin, size,
 * root); at_ms is when it was signed, informational only. */
typedef struct osse_head_s {
    char origin[OSSE_ORIGIN_MAX + 1];
    uint64_t size;
    uint8_t root[32];
    int64_t at_ms;
    uint8_t key_id[4];
    uint8_t sig[64];
} osse_head_t;

/* --- Origins. --- */

/* Whether name[0..len) is a valid origin (and C2SP key name): 1..255 bytes of
 * well-formed UTF-8 (no overlong form, surrogate or lone continuation byte)
 * with no '+', no code point with the White_Space property and no control
 * character (U+0000..U+001F, U+007F..U+009F). Returns 0 or OSSE_EINVAL with
 * the offending byte's offset and why in err. Any thread. */
int osse_origin_check(const char *name, size_t len, osse_err_t *err);

/* --- The signer (owns the secret key). --- */

/* Loads <dir>/log.key, or generates and writes it if missing. name is the
 * origin asked for: NULL takes the stored key's name, or for a new key
 * "<host name>/log" (OSSE_DEFAULT_ORIGIN if that is not a valid origin); a
 * name given must be valid (osse_origin_check) and, if the key exists, equal
 * its stored name. Returns 0, OSSE_EINVAL (bad name), OSSE_ECONFLICT (the key
 * has another name), OSSE_EFORBIDDEN (the key file is readable by group or
 * others), OSSE_ECORRUPT (unreadable key file), OSSE_EIO, OSSE_ENOMEM. Before
 * the loop runs (it does file I/O). */
int osse_signer_open(const char *dir, const char *name, osse_signer_t **out, osse_err_t *err);

/* A signer from a known 32-byte Ed25519 seed (tests, known vectors). */
int osse_signer_from_seed(const char *name, const uint8_t seed[32], osse_signer_t **out,
                          osse_err_t *err);

/* Wipes and frees. NULL-safe. */
void osse_signer_close(osse_signer_t *s);

/* The signer's public side (name, public key, key id). Borrowed. */
const osse_verifier_t *osse_signer_verifier(const osse_signer_t *s);

/* Signs the head (origin = the signer's name). Returns 0 or OSSE_ENOMEM. Any
 * thread (about 50 µs: sign at most every second, not per event). */
int osse_signer_sign_head(const osse_signer_t *s, uint64_t size, const uint8_t root[32],
                          int64_t at_ms, osse_head_t *out);

/* Signs a 32-byte SHA-256 digest as it is (the export's closing signature,
 * docs/audit.md §3.5). Every note body this key signs is longer than 32
 * bytes, so neither signature can pass for the other. Any thread. */
void osse_signer_sign_digest(const osse_signer_t *s, const uint8_t digest[32], uint8_t sig[64]);

/* Signs a JWS signing input (RFC 7515 5.1: "<base64url header>.<base64url
 * payload>", the licences of SPEC §2) with Ed25519 (RFC 8037). Neither a note
 * body (which holds '\n') nor an export digest (32 bytes) is one, so no
 * signature serves as another's: an input of 32 bytes or fewer, or holding a
 * byte outside the base64url alphabet and '.', is OSSE_EINVAL. Any thread. */
int osse_signer_sign_jws(const osse_signer_t *s, const char *input, size_t len, uint8_t sig[64]);

/* Signs an arbitrary note text (non-empty, ending in '\n'): appends text,
 * "\n" and the signature line to out. Returns 0, OSSE_EINVAL, OSSE_ENOMEM. */
int osse_signer_sign_note(const osse_signer_t *s, const char *text, size_t len, osse_buf_t *out);

/* --- Verifiers. --- */

/* Fills v from a name and public key (computes the key id). name may be "".
 * Returns 0 or OSSE_EINVAL (name too long). */
int osse_verifier_init(osse_verifier_t *v, const char *name, const uint8_t pk[32]);

/* Parses a key given by an auditor: a C2SP verifier key "name+hex+base64",
 * or a bare base64 Ed25519 public key (32 bytes, or 33 starting with 0x01).
 * Returns 0 or OSSE_EPARSE (detail in err). */
int osse_verifier_parse(osse_verifier_t *v, const char *key, size_t len, osse_err_t *err);

/* Appends "name+hex id+base64(0x01||pk)" to out. 0 or OSSE_ENOMEM. */
int osse_verifier_key(const osse_verifier_t *v, osse_buf_t *out);

/* Lowercase hex of a key id, NUL-terminated. */
void osse_key_id_hex(const uint8_t id[4], char out[9]);

/* Verifies a signed note: some signature line names v (if v->name is not
 * "") and v's key id, and its signature over the text checks. *text_len is
 * the length of the signed text (note[0..*text_len)). Other signature lines
 * are ignored. Returns 0, OSSE_EPARSE (malformed note), OSSE_ECORRUPT (no
 * valid signature by v). Notes over 64 KiB are refused. */
int osse_note_open(const osse_verifier_t *v, const char *note, size_t len, size_t *text_len,
                   osse_err_t *err);

/* --- Heads. --- */

/* Appends the note body "<origin>\n<size>\n<base64 root>\n". */
int osse_head_body(const osse_head_t *h, osse_buf_t *out);

/* Appends the whole signed note (the checkpoint, Accept: text/plain). */
int osse_head_note(const osse_head_t *h, osse_buf_t *out);

/* The SPEC §6 JSON: {"origin","size","root" (hex),"signature" (base64 of the
 * 64-byte signature),"key_id" (hex),"at" (RFC 3339 ms UTC)}. New reference,
 * NULL on allocation failure. */
json_t *osse_head_to_json(const osse_head_t *h);

/* Checks h's signature with v (origin must equal v->name unless that is "",
 * key ids must match). Returns 0 or OSSE_ECORRUPT with detail. */
int osse_head_verify(const osse_verifier_t *v, const osse_head_t *h, osse_err_t *err);

/* Opens a checkpoint note with v and parses its body into out (extension
 * lines after the root are allowed and ignored; at_ms is 0). Returns 0,
 * OSSE_EPARSE, OSSE_ECORRUPT. */
int osse_head_parse_note(const osse_verifier_t *v, const char *note, size_t len, osse_head_t *out,
                         osse_err_t *err);

/* --- Heads as side records. --- */

/* Adds "h" be64(size) and "c" (latest) records for h to b. Commit b after
 * the batch holding event h->size (or in it). 0 or OSSE_ENOMEM. Loop thread. */
int osse_head_store(osse_batch_t *b, const osse_head_t *h);

/* Encodes / decodes the stored value (also the export's head record minus
 * the origin): be64 size, be64 at_ms, root, key id, sig, origin bytes. */
int osse_head_encode(const osse_head_t *h, osse_buf_t *out);
int osse_head_decode(const void *p, size_t len, osse_head_t *out, osse_err_t *err);

/* The latest stored head. 0, OSSE_ENOTFOUND (none yet), OSSE_ECORRUPT,
 * OSSE_EIO. Any thread but the loop's (a RocksDB read; fine before it runs). */
int osse_head_load_latest(osse_log_t *log, osse_head_t *out, osse_err_t *err);

typedef int (*osse_head_cb)(void *ud, const osse_head_t *h);

/* Calls cb for each stored head with min_size <= size <= max_size, in size
 * order, until cb returns non-zero (returned). 0, OSSE_ECORRUPT, OSSE_EIO. */
int osse_head_scan(osse_log_t *log, uint64_t min_size, uint64_t max_size, osse_head_cb cb, void *ud,
                   osse_err_t *err);

#endif
