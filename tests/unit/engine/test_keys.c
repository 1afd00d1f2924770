/* test_keys.c: osse__stream writes "<kind>/<id>" by hand; it must give what
 * snprintf(out, n, "%s/%s", ...) gave, bytes and return value, for every
 * kind, short and long ids, and every buffer size from 0 past the whole. */
#include <stdio.h>
#include <string.h>

#include "engine/keys.h"
#include "tests/test.h"

static void test_stream(void)
{
    const char *ids[] = {"", "r-1", "r-AbCdEfGhIj", "bench-permit-with-a-long-name-0123456789"};
    int bad = 0, n = 0;
    for (int k = 0; k <= OSSE_SK__COUNT; k++) /* and one past: "?" */
        for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
            for (size_t cap = 0; cap <= 64; cap++) {
                char a[80], b[80];
                memset(a, 'x', sizeof a);
                memset(b, 'x', sizeof b);
                int ra = osse__stream(a, cap, (osse_stream_kind_t)k, ids[i]);
                int rb = snprintf(b, cap, "%s/%s", osse_stream_kind_name((osse_stream_kind_t)k),
                                  ids[i]);
                n++;
                if ((ra != rb || memcmp(a, b, sizeof a) != 0) && bad++ < 3)
                    fprintf(stderr, "kind %d id %s cap %zu\n", k, ids[i], cap);
            }
    CHECK_EQ_INT(bad, 0);
    CHECK(n > 500);
    char s[96];
    osse__stream(s, sizeof s, OSSE_SK_REQUEST, "r-1");
    CHECK_EQ_STR(s, "request/r-1");
}

int main(void)
{
    RUN(test_stream);
    return TEST_EXIT();
}
