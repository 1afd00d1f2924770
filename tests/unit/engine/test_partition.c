/* test_partition.c: request ids' partitions (engine/partition.h): every
 * partition survives a mint and a read back, a minted id has the text form
 * of every id before partitions ("r-" and 20 lowercase hex digits), the bits
 * after the partition's are the random bytes given, ids minted before
 * partitions existed read as their first three digits shifted by two, and
 * --partitions' parser takes only a range within 0-1023. */
#include <regex.h>
#include <sodium.h>
#include <stdbool.h>
#include <string.h>

#include "engine/partition.h"
#include "tests/test.h"

static bool id_form(const char *id)
{
    regex_t re;
    CHECK_EQ_INT(regcomp(&re, "^r-[0-9a-f]{20}$", REG_EXTENDED | REG_NOSUB), 0);
    bool ok = regexec(&re, id, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

static void every_partition_round_trips(void)
{
    uint8_t raw[OSSE_RID_RANDOM];
    char id[OSSE_RID_LEN + 1];
    for (unsigned p = 0; p < OSSE_PARTITIONS; p++) {
        randombytes_buf(raw, sizeof raw);
        osse_request_id_mint(id, p, raw);
        CHECK(id_form(id));
        CHECK_EQ_INT(osse_request_partition(id), (int)p);
        /* All ones and all zeros in the random bits leave it as well. */
        memset(raw, 0xff, sizeof raw);
        osse_request_id_mint(id, p, raw);
        CHECK_EQ_INT(osse_request_partition(id), (int)p);
        memset(raw, 0, sizeof raw);
        osse_request_id_mint(id, p, raw);
        CHECK_EQ_INT(osse_request_partition(id), (int)p);
    }
}

static void random_bits_kept(void)
{
    /* The 70 bits after the partition's are the caller's, unchanged. */
    uint8_t raw[OSSE_RID_RANDOM] = {0xff, 0xff, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    char id[OSSE_RID_LEN + 1];
    osse_request_id_mint(id, 5, raw);
    CHECK_EQ_STR(id, "r-017f0123456789abcdef");
    osse_request_id_mint(id, 1023, raw);
    CHECK_EQ_STR(id, "r-ffff0123456789abcdef");
    osse_request_id_mint(id, 0, raw);
    CHECK_EQ_STR(id, "r-003f0123456789abcdef");

    /* Fresh random bytes make different ids in one partition. */
    char first[OSSE_RID_LEN + 1];
    int same = 0;
    randombytes_buf(raw, sizeof raw);
    osse_request_id_mint(first, 7, raw);
    for (int i = 0; i < 100; i++) {
        randombytes_buf(raw, sizeof raw);
        osse_request_id_mint(id, 7, raw);
        CHECK(id_form(id));
        CHECK_EQ_INT(osse_request_partition(id), 7);
        same += strcmp(id, first) == 0;
    }
    CHECK_EQ_INT(same, 0);
}

static void old_ids_have_partitions(void)
{
    /* Ids minted at random before partitions: the first 10 bits. */
    CHECK_EQ_INT(osse_request_partition("r-00000000000000000000"), 0);
    CHECK_EQ_INT(osse_request_partition("r-00400000000000000000"), 1);
    CHECK_EQ_INT(osse_request_partition("r-0143ffffffffffffffff"), 5);
    CHECK_EQ_INT(osse_request_partition("r-a3c9d0e1f2a3b4c5d6e7"), 0xa3c >> 2);
    CHECK_EQ_INT(osse_request_partition("r-ffffffffffffffffffff"), 1023);
    /* Not request ids. */
    CHECK_EQ_INT(osse_request_partition(""), -1);
    CHECK_EQ_INT(osse_request_partition("r-"), -1);
    CHECK_EQ_INT(osse_request_partition("r-0000000000000000000"), -1);   /* 19 digits */
    CHECK_EQ_INT(osse_request_partition("r-000000000000000000000"), -1); /* 21 */
    CHECK_EQ_INT(osse_request_partition("r-A0000000000000000000"), -1);  /* upper case */
    CHECK_EQ_INT(osse_request_partition("r-0000000000000000000g"), -1);
    CHECK_EQ_INT(osse_request_partition("p-00000000000000000000"), -1);
}

static void pick_in_range(void)
{
    unsigned seen[2] = {0, 0};
    for (uint32_t r = 0; r < 1000; r++) {
        unsigned p = osse_partition_pick(5, 6, r * 2654435761u);
        CHECK(p == 5 || p == 6);
        seen[p - 5]++;
    }
    CHECK(seen[0] > 0 && seen[1] > 0);
    CHECK_EQ_INT(osse_partition_pick(0, 1023, 1024 + 17), 17);
    CHECK_EQ_INT(osse_partition_pick(9, 9, 0xffffffffu), 9);
}

static void parse_ranges(void)
{
    unsigned a = 77, b = 77;
    CHECK_EQ_INT(osse_partitions_parse("5-6", &a, &b), 0);
    CHECK_EQ_INT(a, 5);
    CHECK_EQ_INT(b, 6);
    CHECK_EQ_INT(osse_partitions_parse("0-1023", &a, &b), 0);
    CHECK_EQ_INT(a, 0);
    CHECK_EQ_INT(b, 1023);
    CHECK_EQ_INT(osse_partitions_parse("9-9", &a, &b), 0);
    CHECK_EQ_INT(a, 9);
    CHECK_EQ_INT(b, 9);
    a = b = 77;
    const char *bad[] = {"",           "5",    "5-",    "-6",    "6-5",  "0-1024",
                         "1024-1025",  "5--6", "5-6-7", " 5-6",  "5-6 ", "a-b",
                         "+5-6",       "5-+6", "-1-3",  "0x1-2", "5-6x", "99999999999-1",
                         "00001-00002"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_EQ_INT(osse_partitions_parse(bad[i], &a, &b), -1);
        CHECK_EQ_INT(a, 77);
        CHECK_EQ_INT(b, 77);
    }
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    RUN(every_partition_round_trips);
    RUN(random_bits_kept);
    RUN(old_ids_have_partitions);
    RUN(pick_in_range);
    RUN(parse_ranges);
    return test__failures ? 1 : 0;
}
