/* partition.c: request ids' partitions (see partition.h).
 *
 * Invariant: osse_request_partition(osse_request_id_mint(p, ...)) == p for
 * every p, and a minted id has the text form of every id before it. */
#include "engine/partition.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int osse_request_partition(const char *id)
{
    int v = 0;
    if (strncmp(id, "r-", 2) != 0 || strlen(id) != OSSE_RID_LEN)
        return -1;
    for (int i = 2; i < OSSE_RID_LEN; i++) {
        int h = hexval(id[i]);
        if (h < 0)
            return -1;
        if (i < 5)
            v = v << 4 | h;
    }
    return v >> 2; /* 12 bits of three digits, the first 10 kept */
}

void osse_request_id_mint(char *out, unsigned partition, const uint8_t random[OSSE_RID_RANDOM])
{
    static const char digits[] = "0123456789abcdef";
    uint8_t raw[OSSE_RID_RANDOM];
    OSSE_PRE(partition < OSSE_PARTITIONS);
    memcpy(raw, random, sizeof raw);
    raw[0] = (uint8_t)(partition >> 2);
    raw[1] = (uint8_t)((partition & 3) << 6 | (raw[1] & 0x3f));
    memcpy(out, "r-", 2);
    for (int i = 0; i < OSSE_RID_RANDOM; i++) {
        out[2 + 2 * i] = digits[raw[i] >> 4];
        out[3 + 2 * i] = digits[raw[i] & 15];
    }
    out[OSSE_RID_LEN] = '\0';
}

unsigned osse_partition_pick(unsigned first, unsigned last, uint32_t r)
{
    OSSE_PRE(first <= last && last < OSSE_PARTITIONS);
    return first + r % (last - first + 1);
}

/* A decimal number of 1 to 4 digits below OSSE_PARTITIONS from s to *end. */
static bool number(const char *s, const char **end, unsigned *out)
{
    unsigned v = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9' && p - s < 4)
        v = v * 10 + (unsigned)(*p++ - '0');
    if (p == s || (*p >= '0' && *p <= '9') || v >= OSSE_PARTITIONS)
        return false;
    *end = p;
    *out = v;
    return true;
}

int osse_partitions_parse(const char *s, unsigned *first, unsigned *last)
{
    const char *p;
    unsigned a, b;
    if (!number(s, &p, &a) || *p != '-' || !number(p + 1, &p, &b) || *p || b < a)
        return -1;
    *first = a;
    *last = b;
    return 0;
}
