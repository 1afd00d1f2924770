/* audit.c: the engine's side of the tamper-evident log (SPEC §6).
 *
 * Every event written goes into the Merkle tree (storage/merkle.c) on the
 * log's writer thread, just before the synced write that holds it
 * (storage/log.h osse_log_set_tree), so its leaf and the subtree hashes it
 * completes are written atomically with it. When a batch is durable,
 * commit.c tells this file's reactor the tree's (size, root) after it, and
 * that pair may be signed. A head is signed at most once a second while
 * events arrive (a timer signs the tail of a burst), once at start if the log grew since the last
 * stored head (a crash), and once at clean shutdown; each is stored as a side record in the next
 * batch.
 *
 * Invariant: the served checkpoint covers only durable events, so every
 * proof asked against it can be computed from stored hashes.
 *
 * Proofs read RocksDB, so they run on the libuv pool: osse_audit_* functions
 * below are the pool's half and touch no projection. */
#include "engine/internal.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "common/time.h"

#define HEAD_EVERY_MS 1000

static void hex32(const uint8_t h[32], char out[65])
{
    sodium_bin2hex(out, 65, h, 32);
}

/* Signs (size, root) now, makes it the served head and stores it in the
 * current batch. */
static void sign_head(osse_engine_t *e, uint64_t size, const uint8_t root[32])
{
    osse_head_t h;
    if (osse_signer_sign_head(e->signer, size, root, osse_time_real_ms(), &h))
        osse__panic(__FILE__, __LINE__, "out of memory");
    osse__batch_need(e);
    if (osse_head_store(e->batch, &h))
        osse__panic(__FILE__, __LINE__, "out of memory");
    e->head = h;
    e->has_head = true;
    e->head_signed_ms = osse_time_real_ms();
}

/* Signs the durable tree if the latest head is of a smaller one. */
static void sign_tail(osse_engine_t *e)
{
    if (e->tail_size > 0 && (!e->has_head || e->tail_size > e->head.size))
        sign_head(e, e->tail_size, e->tail_root);
}

static void on_head_timer(uv_timer_t *t)
{
    sign_tail(t->data);
}

/* The tree of that size and root is durable (commit.c, a reactor). */
static void durable(osse_engine_t *e, uint64_t size, const uint8_t root[32])
{
    if (!e->audit_started || size <= e->tail_size)
        return;
    e->tail_size = size;
    memcpy(e->tail_root, root, 32);
    int64_t now = osse_time_real_ms();
    int64_t wait = e->head_signed_ms + HEAD_EVERY_MS - now;
    if (wait <= 0) {
        uv_timer_stop(&e->head_timer);
        sign_head(e, size, root);
    } else if (!uv_is_active((uv_handle_t *)&e->head_timer)) {
        uv_timer_start(&e->head_timer, on_head_timer, (uint64_t)wait, 0);
    }
}

static const osse_reactor_t reactor = {.durable = durable};

int osse__audit_open(osse_engine_t *e, const char *origin, osse_err_t *err)
{
    int rc = osse_merkle_open(e->log, &e->merkle, err);
    if (rc == OSSE_ENOTFOUND)
        return osse_err_set(err, rc,
                            "the log has events without Merkle tree hashes (written by an osse "
                            "without the audit tree); it cannot be served");
    if (rc)
        return rc;
    if ((rc = osse_signer_open(e->data_dir, origin, &e->signer, err)))
        return rc;
    osse_head_t h;
    rc = osse_head_load_latest(e->log, &h, err);
    if (rc == 0) {
        e->head = h;
        e->has_head = true;
    } else if (rc != OSSE_ENOTFOUND) {
        return rc;
    }
    e->tail_size = osse_merkle_size(e->merkle);
    osse_merkle_root_now(e->merkle, e->tail_root);
    osse_log_set_tree(e->log, e->merkle);
    uv_timer_init(e->loop, &e->head_timer);
    e->head_timer.data = e;
    uv_unref((uv_handle_t *)&e->head_timer);
    e->audit_started = true;
    osse__react(e, &reactor);
    return 0;
}

void osse__audit_started(osse_engine_t *e)
{
    if (!e->audit_started)
        return;
    /* Everything in the log at open is durable: a head for it if the last
     * stored one is older (the process died before signing its tail). */
    sign_tail(e);
}

void osse__audit_stop(osse_engine_t *e)
{
    if (!e->audit_started)
        return;
    /* A clean shutdown signs the tree of every event emitted, in the batch
     * after theirs: once they are durable, which tells this reactor their
     * tree (the writer thread keeps it), so before it stops listening. */
    osse_log_drain(e->log);
    e->audit_started = false;
    sign_tail(e);
    uv_timer_stop(&e->head_timer);
    uv_close((uv_handle_t *)&e->head_timer, NULL);
}

void osse__audit_close(osse_engine_t *e)
{
    osse_merkle_close(e->merkle);
    osse_signer_close(e->signer);
    e->merkle = NULL;
    e->signer = NULL;
}

/* --- what the API serves --- */

int osse_engine_checkpoint(osse_engine_t *e, osse_head_t *out)
{
    if (!e->has_head)
        return OSSE_ENOTFOUND;
    *out = e->head;
    return 0;
}

const osse_verifier_t *osse_engine_verifier(osse_engine_t *e)
{
    return e->signer ? osse_signer_verifier(e->signer) : NULL;
}

json_t *osse_audit_public_key(const osse_verifier_t *v)
{
    char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
    char id[9];
    osse_buf_t vk = {0};
    if (osse_verifier_key(v, &vk) || osse_buf_append(&vk, "", 1)) {
        osse_buf_close(&vk);
        return NULL;
    }
    sodium_bin2base64(b64, sizeof b64, v->pk, 32, sodium_base64_VARIANT_ORIGINAL);
    osse_key_id_hex(v->key_id, id);
    json_t *o = json_pack("{s:s,s:s,s:s}", "key_id", id, "public_key", b64, "verifier_key",
                          (const char *)vk.ptr);
    osse_buf_close(&vk);
    return o;
}

static json_t *hashes_json(const uint8_t (*h)[32], size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        char hex[65];
        hex32(h[i], hex);
        json_array_append_new(a, json_string(hex));
    }
    return a;
}

int osse_audit_inclusion(osse_log_t *log, uint64_t seq, uint64_t size, json_t **out,
                         osse_err_t *err)
{
    uint8_t(*h)[32] = osse_malloc(OSSE_MERKLE_MAX_PROOF * 32);
    uint8_t leaf[32];
    size_t n = 0;
    int rc = osse_merkle_leaf(log, seq - 1, leaf, err);
    if (!rc)
        rc = osse_merkle_inclusion(log, seq - 1, size, h, &n, err);
    if (!rc) {
        char hex[65];
        hex32(leaf, hex);
        *out = json_pack("{s:I,s:I,s:I,s:s,s:o}", "seq", (json_int_t)seq, "leaf_index",
                         (json_int_t)(seq - 1), "tree_size", (json_int_t)size, "leaf_hash", hex,
                         "hashes", hashes_json((const uint8_t(*)[32])h, n));
    }
    free(h);
    return rc;
}

int osse_audit_consistency(osse_log_t *log, uint64_t from, uint64_t to, json_t **out,
                           osse_err_t *err)
{
    uint8_t(*h)[32] = osse_malloc(OSSE_MERKLE_MAX_PROOF * 32);
    size_t n = 0;
    int rc = osse_merkle_consistency(log, from, to, h, &n, err);
    if (!rc)
        *out = json_pack("{s:I,s:I,s:o}", "from", (json_int_t)from, "to", (json_int_t)to, "hashes",
                         hashes_json((const uint8_t(*)[32])h, n));
    free(h);
    return rc;
}
