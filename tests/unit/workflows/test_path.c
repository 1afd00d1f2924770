/* test_path.c: osse__wf_path_key builds its path by hand; it must give what
 * the snprintf it replaced gave (the reference below), cut to the buffer,
 * for roots and nested bases, short and long keys (cut at a UTF-8 boundary
 * with "..."), and every buffer size from 1 to past the whole path. */
#include <stdio.h>
#include <string.h>

#include "tests/test.h"
#include "workflows/wf_internal.h"

static void ref_path_key(char *out, size_t cap, const char *base, const char *key)
{
    size_t n = strlen(key);
    const char *ell = "";
    if (n > 100) {
        n = 100;
        while (n > 0 && ((unsigned char)key[n] & 0xC0) == 0x80)
            n--;
        ell = "...";
    }
    if (snprintf(out, cap, "%s%s%.*s%s", base, *base ? "." : "", (int)n, key, ell) >= (int)cap)
        out[cap - 1] = '\0';
}

static void test_same(void)
{
    char longkey[300], thai[300];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    /* "ก" is 3 bytes: the cut at 100 falls inside one. */
    thai[0] = '\0';
    for (int i = 0; i < 90; i++)
        strcat(thai, "\xe0\xb8\x81");
    const char *bases[] = {"", "form", "steps.review_a.when", "x"};
    const char *keys[] = {"", "a", "applicant_name", longkey, thai, longkey + 199, longkey + 200};
    int bad = 0, n = 0;
    for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++)
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            for (size_t cap = 1; cap <= 140; cap++) {
                char got[160], want[160];
                memset(got, 'x', sizeof got);
                memset(want, 'x', sizeof want);
                osse__wf_path_key(got, cap, bases[b], keys[k]);
                ref_path_key(want, cap, bases[b], keys[k]);
                n++;
                if (memcmp(got, want, sizeof got) != 0 && bad++ < 3)
                    fprintf(stderr, "base=%s key=%.20s cap=%zu: \"%s\" != \"%s\"\n", bases[b],
                            keys[k], cap, got, want);
            }
    CHECK_EQ_INT(bad, 0);
    CHECK(n > 3000);
    char p[OSSE__WF_PATH_CAP];
    osse__wf_path_key(p, sizeof p, "form", "seats");
    CHECK_EQ_STR(p, "form.seats");
    osse__wf_path_key(p, sizeof p, "", "seats");
    CHECK_EQ_STR(p, "seats");
}

int main(void)
{
    RUN(test_same);
    return TEST_EXIT();
}
