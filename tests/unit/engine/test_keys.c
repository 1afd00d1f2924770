/* test_keys.c: osse__stream writes "<kind>/<id>" by hand; it must give what
 * snprintf(out, n, "%s/%s", ...) gave, bytes and return value, for every
 * kind, short and long ids, and every buffer size from 0 past the whole.
 * osse__jname shares one JSON string per name: the same json_t for the same
 * text, a reference per call, none for NULL or bytes that are not UTF-8. */
#include <stdio.h>
#include <string.h>

#include "engine/internal.h"
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
                int rb =
                    snprintf(b, cap, "%s/%s", osse_stream_kind_name((osse_stream_kind_t)k), ids[i]);
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

static void test_jname(void)
{
    static osse_engine_t e; /* only its map of names is used */
    osse_map_init(&e.names);
    json_t *a = osse__jname(&e, "review_a"), *b = osse__jname(&e, "review_a"),
           *c = osse__jname(&e, "review_b");
    CHECK(a && a == b && c && c != a);
    CHECK_EQ_STR(json_string_value(a), "review_a");
    CHECK_EQ_STR(json_string_value(c), "review_b");
    CHECK_EQ_INT(a->refcount, 3); /* the map's and two callers' */
    CHECK(osse__jname(&e, NULL) == NULL);
    CHECK(osse__jname(&e, "\xff") == NULL);
    CHECK_EQ_INT(e.names.len, 2);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    size_t it = 0;
    void *v;
    while (osse_map_next(&e.names, &it, NULL, &v)) {
        CHECK_EQ_INT(((json_t *)v)->refcount, 1);
        json_decref(v);
    }
    osse_map_close(&e.names);
}

int main(void)
{
    RUN(test_stream);
    RUN(test_jname);
    return TEST_EXIT();
}
