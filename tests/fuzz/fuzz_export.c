/* fuzz_export.c: libFuzzer target for the export reader / verifier (and the
 * signed-note parser, which reads the same kind of outside input).
 *
 * Invariant: any input must end in a clean error or success, never a crash,
 * a leak, or an allocation out of proportion to its size. The closing
 * signature over the whole file is checked last, so mutated inputs still
 * reach the heads, the events and the trailer.
 *
 * Built with -fsanitize=fuzzer it is a libFuzzer target; linked with
 * fuzz_main.c it replays the in-tree corpus as an ordinary test (h2o's fuzz/
 * does the same).
 */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/checkpoint.h"
#include "storage/export.h"

static int count_cb(void *ud, uint64_t seq, const void *bytes, size_t len)
{
    (*(uint64_t *)ud)++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        if (sodium_init() < 0)
            abort();
        init = 1;
    }
    osse_export_info_t info;
    osse_err_t err;
    uint64_t n = 0;
    /* Without a key the header's own key is used, so mutated inputs still
     * reach the heads and events. */
    int rc = osse_export_verify_buf(data, size, NULL, count_cb, &n, &info, &err);
    if (rc == 0 && (n != info.count || info.offset != size))
        abort();
    if (rc != 0 && info.offset > size)
        abort(); /* a position past the input is a lie */
    if (size > 0) {
        FILE *f = fmemopen((void *)data, size, "rb");
        if (f) {
            int rc2 = osse_export_verify_file(f, NULL, NULL, NULL, &info, &err);
            fclose(f);
            if ((rc == 0) != (rc2 == 0))
                abort(); /* the two readers must agree */
        }
    }
    /* The same bytes as a verifier key and as a signed note. */
    osse_verifier_t v;
    size_t tl;
    if (osse_verifier_parse(&v, (const char *)data, size < 2048 ? size : 2048, &err) != 0) {
        uint8_t pk[32] = {0};
        osse_verifier_init(&v, "osse.local/log", pk);
    }
    osse_note_open(&v, (const char *)data, size, &tl, &err);
    osse_head_t h;
    osse_head_parse_note(&v, (const char *)data, size, &h, &err);
    return 0;
}
