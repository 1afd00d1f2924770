/* reads.c: stored events read back, on the libuv pool (SPEC §4 a request's
 * events, SPEC §6 the log).
 *
 * Key invariant: an event is shown as the log stores it, decoded by the one
 * decoder (storage/event.c), and its leaf hash is computed by the one leaf
 * function of the Merkle tree (storage/merkle.c, docs/audit.md §1), so that
 * what GET /v1/log says is what a proof and an export verify.
 *
 * Why here and not in api/: the API only knows that a route wants events;
 * how they are read, decoded and hashed is the engine's, next to the tree it
 * appends to. Which events an answer may show (only durable ones) is
 * decided on the loop thread (osse_engine_log_page, osse_q_request_seqs);
 * osse_engine_read_events then reads RocksDB through the log and touches no
 * projection, so it runs on a pool thread while the loop goes on. */
#include "engine/internal.h"

#include <sodium.h>
#include <stdlib.h>

int osse_engine_read_events(osse_engine_t *e, const uint64_t *seqs, uint64_t after, size_t n,
                            bool with_leaf, json_t **out, osse_err_t *err)
{
    json_t *arr = json_array();
    int rc = arr ? 0 : osse_err_set(err, OSSE_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < n; i++) {
        uint64_t seq = seqs ? seqs[i] : after + 1 + i;
        void *bytes = NULL;
        size_t len = 0;
        osse_event_t ev;
        if ((rc = osse_log_get(e->log, seq, &bytes, &len, err)))
            break;
        if ((rc = osse_event_decode(bytes, len, &ev, err))) {
            free(bytes);
            break;
        }
        json_t *o = osse_event_to_json(&ev);
        if (o && with_leaf) {
            uint8_t h[OSSE_MERKLE_HASH];
            char hex[2 * OSSE_MERKLE_HASH + 1];
            osse_merkle_leaf_hash(bytes, len, h);
            sodium_bin2hex(hex, sizeof hex, h, sizeof h);
            json_object_set_new(o, "leaf_hash", json_string(hex));
        }
        osse_event_clear(&ev);
        free(bytes);
        if (!o || json_array_append_new(arr, o))
            rc = osse_err_set(err, OSSE_ENOMEM, "out of memory");
    }
    if (rc) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

uint64_t osse_engine_durable_size(osse_engine_t *e)
{
    return osse_log_durable_seq(e->log);
}

void osse_engine_log_page(osse_engine_t *e, uint64_t after, uint64_t limit, uint64_t *from,
                          size_t *n, uint64_t *next)
{
    uint64_t durable = osse_log_durable_seq(e->log);
    uint64_t a = after < durable ? after : durable;
    uint64_t end = limit < durable - a ? a + limit : durable;
    *from = a;
    *n = (size_t)(end - a);
    *next = end < durable ? end : 0;
}
