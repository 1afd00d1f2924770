/* fuzz_event.c: stored-event decoding (storage/event.c) on hostile bytes.
 *
 * An event log or an export file may be damaged or forged; osse_event_decode
 * must refuse it without crashing, reading out of bounds or allocating what a
 * msgpack header merely claims. When the bytes do decode, the event must
 * survive the trip the server makes with it: to the API's JSON shape, and
 * encode -> decode -> encode giving the same bytes twice (the encoding is the
 * Merkle leaf, so it must be deterministic for any event decode accepts).
 * Input bytes themselves need not be canonical, so they are not compared.
 * osse_event_check (the verifier's path, which builds nothing) must give the
 * same verdict, seq and message as osse_event_decode. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    osse_event_t ev = {0}, ev2 = {0};
    osse_buf_t b1, b2;
    osse_err_t err;
    osse_buf_init(&b1, 0);
    osse_buf_init(&b2, 0);
    /* The verifier's check without building must give decode's verdict. */
    uint64_t cseq = 0;
    osse_err_t cerr;
    int crc = osse_event_check(data, size, &cseq, &cerr);
    int drc = osse_event_decode(data, size, &ev, &err);
    if (crc != drc || (drc == 0 && cseq != ev.seq) || (drc != 0 && strcmp(cerr.msg, err.msg) != 0))
        abort();
    if (drc != 0) {
        /* Refused: out must hold nothing (the contract), so clear is a no-op. */
        if (ev.stream || ev.type != 0 || ev.actor_kind || ev.actor_id || ev.data)
            abort();
        goto out;
    }
    json_t *j = osse_event_to_json(&ev);
    if (!j) {
        fprintf(stderr, "fuzz_event: osse_event_to_json gave NULL for an event that "
                        "osse_event_decode accepted (a string field not UTF-8?)\n");
        abort();
    }
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    free(s);
    if (osse_event_encode(&ev, &b1) != 0)
        goto out_json; /* e.g. too big: allowed */
    if (osse_event_decode(b1.ptr, b1.len, &ev2, &err) != 0)
        abort(); /* its own output */
    if (osse_event_encode(&ev2, &b2) != 0)
        abort();
    if (b1.len != b2.len || memcmp(b1.ptr, b2.ptr, b1.len) != 0)
        abort();
    json_t *j2 = osse_event_to_json(&ev2);
    if (!j2 || !json_equal(j, j2))
        abort();
    json_decref(j2);
out_json:
    json_decref(j);
out:
    osse_event_clear(&ev);
    osse_event_clear(&ev2);
    osse_buf_close(&b1);
    osse_buf_close(&b2);
    return 0;
}
