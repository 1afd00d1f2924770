/* test_map.c: the hash map against a plain array model: puts, replaces,
 * deletes (tombstones), growth, and iteration that visits each live key
 * once. Probes compare a stored hash before the key: keys that share a slot
 * or a prefix must still be told apart. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/map.h"
#include "tests/test.h"

#define N 5000

static char keys[N][24];
static int live[N];
static int vals[N];

static void test_model(void)
{
    osse_map_t m;
    osse_map_init(&m);
    CHECK(osse_map_get(&m, "absent") == NULL);
    CHECK(osse_map_del(&m, "absent") == NULL);
    for (int i = 0; i < N; i++)
        snprintf(keys[i], sizeof keys[i], i % 2 ? "r-%d" : "r-%d-x", i);
    uint64_t x = 88172645463325252ULL;
    int bad = 0;
    for (int round = 0; round < 60000; round++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int i = (int)(x % N);
        switch ((x >> 32) % 3) {
        case 0:
        case 1:
            vals[i] = round;
            osse_map_put(&m, keys[i], &vals[i]);
            live[i] = 1;
            break;
        default:
            if (osse_map_del(&m, keys[i]) != (live[i] ? &vals[i] : NULL))
                bad++;
            live[i] = 0;
        }
    }
    size_t n = 0;
    for (int i = 0; i < N; i++) {
        if (osse_map_get(&m, keys[i]) != (live[i] ? &vals[i] : NULL))
            bad++;
        n += (size_t)live[i];
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(m.len, n);
    size_t it = 0, seen = 0;
    const char *k;
    void *v;
    while (osse_map_next(&m, &it, &k, &v)) {
        seen++;
        CHECK(osse_map_get(&m, k) == v);
    }
    CHECK_EQ_INT(seen, n);
    osse_map_close(&m);
    osse_map_close(NULL);
}

int main(void)
{
    RUN(test_model);
    return TEST_EXIT();
}
