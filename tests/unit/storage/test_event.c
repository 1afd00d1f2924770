/* test_event.c: the stored event encoding: determinism, round trips, and the
 * decoder's refusal of hostile bytes (truncations, lying length headers,
 * random bytes, deep nesting) without crashing or over-allocating. */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "storage/event.h"
#include "tests/test.h"

static json_t *sample_data(void)
{
    json_error_t je;
    json_t *d = json_loads("{\"zeta\":1,\"alpha\":\"x\",\"neg\":-5,\"big\":9007199254740993,"
                           "\"min\":-9223372036854775808,\"pi\":3.25,\"t\":true,\"f\":false,"
                           "\"n\":null,\"arr\":[1,[2,{\"b\":1,\"a\":2}],\"s\",-200,70000,-70000],"
                           "\"long\":\""
                           "0123456789012345678901234567890123456789"
                           "\","
                           "\"obj\":{\"y\":{\"x\":[]},\"e\":{}},\"ü\":\"ünïcödé\"}",
                           JSON_PRESERVE_ORDER, &je);
    return d;
}

static void make_event(osse_event_t *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->seq = 123456789012ull;
    ev->stream = "request/01HXYZ";
    ev->version = 7;
    ev->type = OSSE_EV_RequestSubmitted;
    ev->at = 1764554400123; /* 2025-12-01T02:00:00.123Z */
    ev->actor_kind = "portal";
    ev->actor_id = "biz-portal";
    ev->data = sample_data();
}

static int encode(const osse_event_t *ev, osse_buf_t *b)
{
    osse_buf_init(b, 0);
    return osse_event_encode(ev, b);
}

static void test_round_trip(void)
{
    osse_event_t ev, back;
    osse_buf_t b, b2;
    osse_err_t err;
    make_event(&ev);
    CHECK(ev.data != NULL);
    CHECK_EQ_INT(encode(&ev, &b), 0);
    CHECK_EQ_INT(osse_event_decode(b.ptr, b.len, &back, &err), 0);
    CHECK_EQ_INT(back.seq, ev.seq);
    CHECK_EQ_STR(back.stream, ev.stream);
    CHECK_EQ_INT(back.version, 7);
    CHECK_EQ_INT(back.type, ev.type);
    CHECK_EQ_INT(back.at, ev.at);
    CHECK_EQ_STR(back.actor_kind, "portal");
    CHECK_EQ_STR(back.actor_id, "biz-portal");
    CHECK(json_equal(back.data, ev.data));

    /* Key order is preserved, so re-encoding gives the very same bytes. */
    CHECK_EQ_INT(encode(&back, &b2), 0);
    CHECK_EQ_INT(b2.len, b.len);
    CHECK(b.len == b2.len && memcmp(b.ptr, b2.ptr, b.len) == 0);
    char *s1 = json_dumps(ev.data, JSON_PRESERVE_ORDER | JSON_COMPACT);
    char *s2 = json_dumps(back.data, JSON_PRESERVE_ORDER | JSON_COMPACT);
    CHECK_EQ_STR(s1, s2);
    free(s1);
    free(s2);

    /* Values keep their JSON types. */
    CHECK(json_is_integer(json_object_get(back.data, "big")));
    CHECK_EQ_INT(json_integer_value(json_object_get(back.data, "big")), 9007199254740993LL);
    CHECK_EQ_INT(json_integer_value(json_object_get(back.data, "min")), INT64_MIN);
    CHECK(json_is_real(json_object_get(back.data, "pi")));
    CHECK(json_real_value(json_object_get(back.data, "pi")) == 3.25);

    osse_event_clear(&back);
    CHECK(back.stream == NULL && back.data == NULL);
    osse_event_clear(NULL);
    osse_buf_close(&b);
    osse_buf_close(&b2);
    json_decref(ev.data);
}

/* The first bytes are fixed by the format: a 7-entry map whose first key is
 * "seq"; `data` keys come out in insertion order, not sorted. */
static void test_layout(void)
{
    osse_event_t ev;
    osse_buf_t b;
    memset(&ev, 0, sizeof ev);
    ev.seq = 1;
    ev.stream = "agency/a";
    ev.version = 1;
    ev.type = OSSE_EV_AgencyUpdated;
    ev.at = 0;
    ev.actor_kind = "system";
    ev.actor_id = NULL; /* written as "" */
    ev.data = json_object();
    json_object_set_new(ev.data, "b", json_integer(1));
    json_object_set_new(ev.data, "a", json_integer(2));
    CHECK_EQ_INT(encode(&ev, &b), 0);
    static const uint8_t head[] = {0x87, 0xa3, 's', 'e', 'q', 0x01};
    CHECK(b.len > sizeof head && memcmp(b.ptr, head, sizeof head) == 0);
    static const uint8_t tail[] = {0xa4, 'd', 'a',  't',  'a', 0x82,
                                   0xa1, 'b', 0x01, 0xa1, 'a', 0x02};
    CHECK(b.len > sizeof tail && memcmp(b.ptr + b.len - sizeof tail, tail, sizeof tail) == 0);

    osse_event_t back;
    CHECK_EQ_INT(osse_event_decode(b.ptr, b.len, &back, NULL), 0);
    CHECK_EQ_STR(back.actor_id, "");
    osse_event_clear(&back);

    /* Encoding is a pure function of the event. */
    osse_buf_t b2;
    CHECK_EQ_INT(encode(&ev, &b2), 0);
    CHECK(b.len == b2.len && memcmp(b.ptr, b2.ptr, b.len) == 0);
    osse_buf_close(&b);
    osse_buf_close(&b2);

    /* NULL data is stored as {}. */
    json_decref(ev.data);
    ev.data = NULL;
    CHECK_EQ_INT(encode(&ev, &b), 0);
    CHECK_EQ_INT(osse_event_decode(b.ptr, b.len, &back, NULL), 0);
    CHECK(json_is_object(back.data) && json_object_size(back.data) == 0);
    osse_event_clear(&back);
    osse_buf_close(&b);
}

static void test_to_json(void)
{
    osse_event_t ev;
    make_event(&ev);
    json_t *j = osse_event_to_json(&ev);
    CHECK(j != NULL);
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "seq")), 123456789012LL);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "stream")), "request/01HXYZ");
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "version")), 7);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "type")), "RequestSubmitted");
    CHECK_EQ_STR(json_string_value(json_object_get(j, "at")), "2025-12-01T02:00:00.123Z");
    json_t *actor = json_object_get(j, "actor");
    CHECK_EQ_STR(json_string_value(json_object_get(actor, "kind")), "portal");
    CHECK_EQ_STR(json_string_value(json_object_get(actor, "id")), "biz-portal");
    CHECK(json_equal(json_object_get(j, "data"), ev.data));
    /* A copy, not a share: changing the JSON leaves the event alone. */
    CHECK(json_object_get(j, "data") != ev.data);
    json_decref(j);
    json_decref(ev.data);
}

static void test_encode_limits(void)
{
    osse_event_t ev;
    osse_buf_t b;
    make_event(&ev);
    /* A capped buffer: ETOOBIG, and the buffer is left as it was. */
    osse_buf_init(&b, 16);
    osse_buf_append(&b, "xy", 2);
    CHECK_EQ_INT(osse_event_encode(&ev, &b), OSSE_ETOOBIG);
    CHECK_EQ_INT(b.len, 2);
    osse_buf_close(&b);
    json_decref(ev.data);

    /* Data nested deeper than the decoder accepts is refused at encode time,
     * so that nothing stored is undecodable. The event map is depth 1 and
     * data depth 2: 62 more levels fit, 63 do not. */
    for (int extra = 62; extra <= 63; extra++) {
        json_t *inner = json_array();
        for (int i = 1; i < extra; i++) {
            json_t *outer = json_array();
            json_array_append_new(outer, inner);
            inner = outer;
        }
        make_event(&ev);
        json_decref(ev.data);
        ev.data = json_object();
        json_object_set_new(ev.data, "deep", inner);
        osse_buf_init(&b, 0);
        int rc = osse_event_encode(&ev, &b);
        CHECK_EQ_INT(rc, extra == 62 ? 0 : OSSE_ETOOBIG);
        if (rc == 0) {
            osse_event_t back;
            CHECK_EQ_INT(osse_event_decode(b.ptr, b.len, &back, NULL), 0);
            CHECK(json_equal(back.data, ev.data));
            osse_event_clear(&back);
        }
        osse_buf_close(&b);
        json_decref(ev.data);
    }
}

static void expect_corrupt(const void *p, size_t n, const char *what)
{
    osse_event_t back;
    osse_err_t err;
    memset(&back, 0xab, sizeof back);
    int rc = osse_event_decode(p, n, &back, &err);
    if (rc != OSSE_ECORRUPT)
        fprintf(stderr, "  decode(%s) returned %d\n", what, rc);
    CHECK_EQ_INT(rc, OSSE_ECORRUPT);
    CHECK(back.stream == NULL && back.data == NULL && back.type == 0);
    if (rc == 0)
        osse_event_clear(&back);
}

static void test_truncations(void)
{
    osse_event_t ev;
    osse_buf_t b;
    make_event(&ev);
    CHECK_EQ_INT(encode(&ev, &b), 0);
    /* Every proper prefix is corrupt, and so is the event with a byte extra.
     * Each prefix is copied into its own heap block so ASan sees any overread. */
    for (size_t n = 0; n < b.len; n++) {
        char *p = malloc(n ? n : 1);
        memcpy(p, b.ptr, n);
        expect_corrupt(p, n, "prefix");
        free(p);
    }
    char *p = malloc(b.len + 1);
    memcpy(p, b.ptr, b.len);
    p[b.len] = 0;
    expect_corrupt(p, b.len + 1, "trailing byte");
    free(p);
    expect_corrupt(NULL, 0, "empty");
    osse_buf_close(&b);
    json_decref(ev.data);
}

/* Builds a valid event whose data map has been spliced with raw bytes. */
static size_t splice_data(uint8_t *out, const uint8_t *data, size_t n)
{
    static const uint8_t head[] = {
        0x87, 0xa3, 's',  'e', 'q',  0x01, 0xa6, 's',  't',  'r', 'e', 'a', 'm',  0xa8, 'a',  'g',
        'e',  'n',  'c',  'y', '/',  'a',  0xa7, 'v',  'e',  'r', 's', 'i', 'o',  'n',  0x01, 0xa4,
        't',  'y',  'p',  'e', 0xad, 'A',  'g',  'e',  'n',  'c', 'y', 'U', 'p',  'd',  'a',  't',
        'e',  'd',  0xa2, 'a', 't',  0x00, 0xa5, 'a',  'c',  't', 'o', 'r', 0x82, 0xa4, 'k',  'i',
        'n',  'd',  0xa1, 'k', 0xa2, 'i',  'd',  0xa0, 0xa4, 'd', 'a', 't', 'a'};
    memcpy(out, head, sizeof head);
    memcpy(out + sizeof head, data, n);
    return sizeof head + n;
}

static void test_hostile(void)
{
    uint8_t buf[512];
    size_t n;
    osse_event_t back;

    /* The splice itself, with a good data map, decodes. */
    static const uint8_t ok[] = {0x81, 0xa1, 'k',  0x93, 0xc0, 0xc3, 0xcb, 0x40,
                                 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18};
    n = splice_data(buf, ok, sizeof ok);
    CHECK_EQ_INT(osse_event_decode(buf, n, &back, NULL), 0);
    osse_event_clear(&back);

    /* msgpack-c#1013: a map32 claiming 2^32-1 entries in five bytes. */
    static const uint8_t df[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    expect_corrupt(df, sizeof df, "DF FF FF FF FF");
    n = splice_data(buf, df, sizeof df);
    expect_corrupt(buf, n, "data map32 huge");
    static const uint8_t arr32[] = {0x81, 0xa1, 'k', 0xdd, 0xff, 0xff, 0xff, 0xff};
    n = splice_data(buf, arr32, sizeof arr32);
    expect_corrupt(buf, n, "array32 huge");
    static const uint8_t str32[] = {0x81, 0xa1, 'k', 0xdb, 0x7f, 0xff, 0xff, 0xff, 'a'};
    n = splice_data(buf, str32, sizeof str32);
    expect_corrupt(buf, n, "str32 huge");
    static const uint8_t bin[] = {0x81, 0xa1, 'k', 0xc4, 0x01, 0x00};
    n = splice_data(buf, bin, sizeof bin);
    expect_corrupt(buf, n, "bin");
    static const uint8_t f32[] = {0x81, 0xa1, 'k', 0xca, 0, 0, 0, 0};
    n = splice_data(buf, f32, sizeof f32);
    expect_corrupt(buf, n, "float32");
    static const uint8_t nan[] = {0x81, 0xa1, 'k', 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0};
    n = splice_data(buf, nan, sizeof nan);
    expect_corrupt(buf, n, "NaN");
    static const uint8_t u64[] = {0x81, 0xa1, 'k',  0xcf, 0xff, 0xff,
                                  0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    n = splice_data(buf, u64, sizeof u64);
    expect_corrupt(buf, n, "uint64 beyond int64");
    static const uint8_t dup[] = {0x82, 0xa1, 'k', 0x01, 0xa1, 'k', 0x02};
    n = splice_data(buf, dup, sizeof dup);
    expect_corrupt(buf, n, "duplicate key");
    static const uint8_t intkey[] = {0x81, 0x01, 0x01};
    n = splice_data(buf, intkey, sizeof intkey);
    expect_corrupt(buf, n, "integer key");
    static const uint8_t badutf[] = {0x81, 0xa1, 'k', 0xa2, 0xc3, 0x28};
    n = splice_data(buf, badutf, sizeof badutf);
    expect_corrupt(buf, n, "bad UTF-8");
    static const uint8_t notmap[] = {0x90};
    n = splice_data(buf, notmap, sizeof notmap);
    expect_corrupt(buf, n, "data not a map");
    static const uint8_t never[] = {0x81, 0xa1, 'k', 0xc1};
    n = splice_data(buf, never, sizeof never);
    expect_corrupt(buf, n, "0xc1");

    /* Wrong key names and types in the fixed part. */
    n = splice_data(buf, (const uint8_t *)"\x80", 1);
    buf[2] = 'S'; /* "Seq" */
    expect_corrupt(buf, n, "wrong key name");
    n = splice_data(buf, (const uint8_t *)"\x80", 1);
    buf[5] = 0xa1; /* seq as a string */
    expect_corrupt(buf, n, "seq as a string");
    n = splice_data(buf, (const uint8_t *)"\x80", 1);
    buf[5] = 0xff; /* seq negative */
    expect_corrupt(buf, n, "negative seq");
    n = splice_data(buf, (const uint8_t *)"\x80", 1);
    buf[0] = 0x86; /* six keys */
    expect_corrupt(buf, n, "six keys");
    n = splice_data(buf, (const uint8_t *)"\x80", 1);
    buf[14] = '\0'; /* NUL inside the stream name */
    expect_corrupt(buf, n, "NUL in stream");
    n = splice_data(buf, (const uint8_t *)"\x80", 1);
    CHECK_EQ_INT(osse_event_decode(buf, n, &back, NULL), 0);
    osse_event_clear(&back);

    /* Nesting: 63 levels below data are refused, 62 accepted. */
    for (int levels = 62; levels <= 300; levels += 238) {
        uint8_t deep[400];
        size_t k = 0;
        deep[k++] = 0x81;
        deep[k++] = 0xa1;
        deep[k++] = 'k';
        for (int i = 0; i < levels; i++)
            deep[k++] = 0x91;
        deep[k++] = 0xc0;
        n = splice_data(buf, deep, k);
        int rc = osse_event_decode(buf, n, &back, NULL);
        CHECK_EQ_INT(rc, levels == 62 ? 0 : OSSE_ECORRUPT);
        if (rc == 0)
            osse_event_clear(&back);
    }
    {
        uint8_t deep[80];
        size_t k = 0;
        deep[k++] = 0x81;
        deep[k++] = 0xa1;
        deep[k++] = 'k';
        for (int i = 0; i < 63; i++)
            deep[k++] = 0x91;
        deep[k++] = 0xc0;
        n = splice_data(buf, deep, k);
        expect_corrupt(buf, n, "63 levels");
    }
}

/* Encodes ev, then replaces its stored type name by name (msgpack fixstr):
 * the bytes a damaged or forged log would hold. */
static size_t forge_type(const osse_event_t *ev, const char *name, uint8_t *out, size_t cap)
{
    osse_buf_t b;
    CHECK_EQ_INT(encode(ev, &b), 0);
    const char *have = osse_event_type_name(ev->type);
    size_t hl = strlen(have), nl = strlen(name), n = 0;
    for (size_t i = 0; i + 1 + hl <= b.len; i++) {
        if (b.ptr[i] == (char)(0xa0 | hl) && memcmp(b.ptr + i + 1, have, hl) == 0) {
            CHECK(b.len - hl + nl <= cap && nl < 32);
            memcpy(out, b.ptr, i);
            out[i] = (uint8_t)(0xa0 | nl);
            memcpy(out + i + 1, name, nl);
            memcpy(out + i + 1 + nl, b.ptr + i + 1 + hl, b.len - i - 1 - hl);
            n = b.len - hl + nl;
            break;
        }
    }
    osse_buf_close(&b);
    CHECK(n > 0);
    return n;
}

/* SPEC §5: "a type not in it is a damaged log". The decoder refuses an
 * unknown type (a near miss too) and a type stored in a stream of another
 * kind, naming the type; the encoder never writes either. */
static void test_types(void)
{
    osse_event_t ev, back;
    osse_err_t err;
    uint8_t buf[4096];
    make_event(&ev);
    ev.stream = "request/r-1";
    ev.type = OSSE_EV_StepOpened;
    size_t n = forge_type(&ev, "StepOpened", buf, sizeof buf);
    CHECK_EQ_INT(osse_event_decode(buf, n, &back, &err), 0);
    CHECK_EQ_INT(back.type, OSSE_EV_StepOpened);
    osse_event_clear(&back);

    static const char *const bad[] = {"StepOpned", "stepopened", "StepOpened ", "Step",
                                      "",          "T",          "Event"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        n = forge_type(&ev, bad[i], buf, sizeof buf);
        memset(&err, 0, sizeof err);
        CHECK_EQ_INT(osse_event_decode(buf, n, &back, &err), OSSE_ECORRUPT);
        CHECK(strstr(err.msg, "unknown event type") != NULL);
        CHECK(strstr(err.msg, bad[i]) != NULL);
    }

    /* Known, but not of this stream's kind. */
    n = forge_type(&ev, "WorkflowPublished", buf, sizeof buf);
    CHECK_EQ_INT(osse_event_decode(buf, n, &back, &err), OSSE_ECORRUPT);
    CHECK(strstr(err.msg, "WorkflowPublished") != NULL);
    CHECK(strstr(err.msg, "request/r-1") != NULL);
    n = forge_type(&ev, "NotificationDelivered", buf, sizeof buf);
    CHECK_EQ_INT(osse_event_decode(buf, n, &back, &err), OSSE_ECORRUPT);

    /* The encoder refuses the same. */
    osse_buf_t b;
    ev.type = OSSE_EV_WorkflowPublished;
    CHECK_EQ_INT(encode(&ev, &b), OSSE_EINVAL);
    CHECK_EQ_INT(b.len, 0);
    osse_buf_close(&b);
    ev.type = OSSE_EV__COUNT;
    CHECK_EQ_INT(encode(&ev, &b), OSSE_EINVAL);
    osse_buf_close(&b);
    ev.type = OSSE_EV_StepOpened;
    static const char *const streams[] = {"request/", "request", "requests/r-1", "/r-1", "x/y"};
    for (size_t i = 0; i < sizeof streams / sizeof *streams; i++) {
        ev.stream = (char *)streams[i];
        CHECK_EQ_INT(encode(&ev, &b), OSSE_EINVAL);
        osse_buf_close(&b);
    }
    json_decref(ev.data);
}

static void test_random(void)
{
    osse_event_t ev;
    osse_buf_t b;
    make_event(&ev);
    CHECK_EQ_INT(encode(&ev, &b), 0);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int ok = 0;
    for (int round = 0; round < 20000; round++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t n = (size_t)(x % 96);
        uint8_t *p = malloc(n ? n : 1);
        if (round % 2 == 0) {
            /* Pure random bytes. */
            for (size_t i = 0; i < n; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                p[i] = (uint8_t)x;
            }
        } else {
            /* A valid event with a few bytes flipped: reaches deeper code. */
            free(p);
            n = b.len;
            p = malloc(n);
            memcpy(p, b.ptr, n);
            for (int f = 0; f < 3; f++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                p[x % n] = (uint8_t)(x >> 32);
            }
        }
        osse_event_t back;
        int rc = osse_event_decode(p, n, &back, NULL);
        CHECK(rc == 0 || rc == OSSE_ECORRUPT);
        if (rc == 0) {
            ok++;
            osse_event_clear(&back);
        }
        free(p);
    }
    fprintf(stderr, "  random: %d of 20000 decoded\n", ok);
    osse_buf_close(&b);
    json_decref(ev.data);
}

/* osse_event_check must accept exactly what osse_event_decode accepts (with
 * the same seq), and refuse with decode's own code and message. */
static void same_verdict(const uint8_t *p, size_t n, int *accepted)
{
    osse_event_t ev;
    osse_err_t e1 = {0}, e2 = {0};
    uint64_t seq = 0;
    int rd = osse_event_decode(p, n, &ev, &e1);
    int rc = osse_event_check(p, n, &seq, &e2);
    CHECK_EQ_INT(rc, rd);
    if (rd == 0) {
        CHECK(seq == ev.seq);
        osse_event_clear(&ev);
        (*accepted)++;
    } else {
        CHECK_EQ_STR(e2.msg, e1.msg);
    }
}

/* An event whose data is the msgpack bytes d (the rest as make_event's). */
static uint8_t *with_data(const uint8_t *d, size_t dn, size_t *n)
{
    osse_event_t ev;
    osse_buf_t b;
    make_event(&ev);
    json_decref(ev.data);
    ev.data = json_object();
    CHECK_EQ_INT(encode(&ev, &b), 0);
    json_decref(ev.data);
    CHECK(b.len > 0 && (uint8_t)b.ptr[b.len - 1] == 0x80); /* data {} last */
    uint8_t *p = osse_malloc(b.len - 1 + dn);
    memcpy(p, b.ptr, b.len - 1);
    memcpy(p + b.len - 1, d, dn);
    *n = b.len - 1 + dn;
    osse_buf_close(&b);
    return p;
}

static void test_check(void)
{
    int ok = 0;
    /* Hand-made data maps at the edges of each rule. */
    static const struct {
        const char *what;
        const char *hex;
    } cases[] = {
        {"two keys", "82a16101a16202"},
        {"duplicate key", "82a16101a16102"},
        {"duplicate key, nested", "81a17882a16101a16102"},
        {"same key in two maps", "82a17881a16101a17981a16101"},
        {"key not UTF-8", "81a1ff01"},
        {"key with NUL", "81a20061c0"},
        {"string not UTF-8", "81a161a2c0af"},
        {"surrogate", "81a161a3eda080"},
        {"NUL in a value", "81a161a100"},
        {"float64", "81a161cb3ff8000000000000"},
        {"NaN", "81a161cb7ff8000000000000"},
        {"infinity", "81a161cb7ff0000000000000"},
        {"float32", "81a161ca3fc00000"},
        {"bin", "81a161c40100"},
        {"ext", "81a161d40100"},
        {"0xc1", "81a161c1"},
        {"uint64 above int64", "81a161cfffffffffffffffff"},
        {"int64 min", "81a161d38000000000000000"},
        {"nil true false", "83a161c0a162c3a163c2"},
        {"map16", "81a161de0001a162c0"},
        {"map32 lying", "81a161dfffffffff"},
        {"array32 lying", "81a161ddffffffff"},
        {"str32", "81db00000001610a"},
        {"key not a string", "810101"},
        {"truncated", "82a16101"},
        {"trailing byte", "80c0"},
        {"not a map", "90"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint8_t d[64];
        size_t dn = strlen(cases[i].hex) / 2;
        for (size_t k = 0; k < dn; k++) {
            unsigned v;
            CHECK(sscanf(cases[i].hex + 2 * k, "%2x", &v) == 1);
            d[k] = (uint8_t)v;
        }
        size_t n;
        uint8_t *p = with_data(d, dn, &n);
        same_verdict(p, n, &ok);
        free(p);
    }
    /* Nesting: 63 arrays inside data is the deepest allowed (level 65 is
     * refused), and 40 keys in a map (more than the check's own table, so
     * decided by the building decoder), with and without a duplicate. */
    for (int depth = 60; depth <= 66; depth++) {
        uint8_t d[80];
        size_t dn = 0;
        d[dn++] = 0x81;
        d[dn++] = 0xa1;
        d[dn++] = 'a';
        for (int k = 0; k < depth; k++)
            d[dn++] = 0x91;
        d[dn++] = 0xc0;
        size_t n;
        uint8_t *p = with_data(d, dn, &n);
        same_verdict(p, n, &ok);
        free(p);
    }
    for (int dup = 0; dup < 2; dup++) {
        uint8_t d[200];
        size_t dn = 0;
        d[dn++] = 0xde;
        d[dn++] = 0;
        d[dn++] = 40;
        for (int k = 0; k < 40; k++) {
            d[dn++] = 0xa2;
            d[dn++] = (uint8_t)('a' + k / 26);
            d[dn++] = (uint8_t)('a' + (dup && k == 39 ? 0 : k % 26));
            d[dn++] = 0xc0;
        }
        size_t n;
        uint8_t *p = with_data(d, dn, &n);
        same_verdict(p, n, &ok);
        free(p);
    }
    /* A stream longer than the check's buffer, and one of another kind. */
    const char *streams[] = {"request/x", "workflow/x", "request/", "request", NULL};
    char longs[400];
    memset(longs, 'x', sizeof longs - 1);
    memcpy(longs, "request/", 8);
    longs[sizeof longs - 1] = '\0';
    for (int i = 0; i < 5; i++) {
        osse_event_t ev;
        osse_buf_t b;
        make_event(&ev);
        ev.stream = streams[i] ? (char *)streams[i] : longs;
        osse_buf_init(&b, 0);
        if (osse_event_encode(&ev, &b) == 0) {
            same_verdict((const uint8_t *)b.ptr, b.len, &ok);
            /* The same bytes with the stream's kind changed in place. */
            char *w = memmem(b.ptr, b.len, "request", 7);
            if (w) {
                memcpy(w, "workflo", 7);
                same_verdict((const uint8_t *)b.ptr, b.len, &ok);
            }
        }
        osse_buf_close(&b);
        json_decref(ev.data);
    }
    /* The sample event with one to three bytes changed, many times. */
    osse_event_t ev;
    osse_buf_t b;
    make_event(&ev);
    CHECK_EQ_INT(encode(&ev, &b), 0);
    uint64_t x = 0x243f6a8885a308d3ull;
    uint8_t *p = osse_malloc(b.len);
    for (int round = 0; round < 30000; round++) {
        memcpy(p, b.ptr, b.len);
        for (int f = 0; f < 1 + round % 3; f++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            p[x % b.len] = (uint8_t)(x >> 32);
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t n = round % 5 == 0 ? (size_t)(x % b.len) : b.len; /* cut short too */
        same_verdict(p, n, &ok);
    }
    free(p);
    osse_buf_close(&b);
    json_decref(ev.data);
    fprintf(stderr, "  check: %d accepted\n", ok);
    CHECK(ok > 1000); /* the mutations reached accepted events too */
}

/* Events held as fields (StepOpened, RequestSubmitted): the same bytes as
 * the tree each stands for (the Merkle leaf does not change), decoded back
 * as fields, and rendered as the same JSON; bytes of any other shape are
 * decoded as a tree and encode back to themselves. */
static void fields_event(osse_event_t *ev, osse_event_type_t type, json_t *data, const void *f)
{
    memset(ev, 0, sizeof *ev);
    ev->seq = 42;
    ev->stream = "request/01HXYZ";
    ev->version = 2;
    ev->type = type;
    ev->at = 1764554400123;
    ev->actor_kind = "portal";
    ev->actor_id = "biz-portal";
    ev->data = data;
    if (f)
        CHECK_EQ_INT(osse_event_set_fields(ev, f), 0);
    CHECK(osse_event_has_fields(ev) == (f != NULL));
    CHECK(!f || (type == OSSE_EV_RequestSubmitted ? (const void *)ev->submitted
                                                  : (const void *)ev->opened) == f);
}

static void opened_event(osse_event_t *ev, json_t *data, const osse_ev_opened_t *o)
{
    fields_event(ev, OSSE_EV_StepOpened, data, o);
}

/* Returns the decoded event (the caller clears it). */
static void same_bytes_as(osse_event_type_t type, const void *f, const char *tree,
                          osse_event_t *back)
{
    osse_event_t a, b;
    osse_buf_t ba, bb, again;
    osse_err_t err;
    json_error_t je;
    fields_event(&a, type, NULL, f);
    fields_event(&b, type, json_loads(tree, JSON_PRESERVE_ORDER, &je), NULL);
    CHECK(b.data != NULL);
    CHECK_EQ_INT(encode(&a, &ba), 0);
    CHECK_EQ_INT(encode(&b, &bb), 0);
    CHECK(ba.len == bb.len && memcmp(ba.ptr, bb.ptr, ba.len) == 0);
    CHECK_EQ_INT(osse_event_decode(ba.ptr, ba.len, back, &err), 0);
    CHECK((type == OSSE_EV_StepOpened ? (const void *)back->opened
                                      : (const void *)back->submitted) != NULL);
    CHECK(back->data == NULL && back->owned != NULL);
    CHECK_EQ_INT(encode(back, &again), 0);
    CHECK(again.len == ba.len && memcmp(again.ptr, ba.ptr, ba.len) == 0);
    json_t *ja = osse_event_to_json(back), *jb = osse_event_to_json(&b);
    CHECK(json_equal(ja, jb));
    json_t *da = osse_event_data(back);
    CHECK(json_equal(da, b.data));
    json_decref(da);
    json_decref(ja);
    json_decref(jb);
    json_decref(b.data);
    osse_buf_close(&ba);
    osse_buf_close(&bb);
    osse_buf_close(&again);
}

static void as_tree(osse_event_type_t type, const char *tree)
{
    osse_event_t a, back;
    osse_buf_t ba, again;
    osse_err_t err;
    json_error_t je;
    fields_event(&a, type, json_loads(tree, JSON_PRESERVE_ORDER | JSON_ALLOW_NUL, &je), NULL);
    CHECK(a.data != NULL);
    CHECK_EQ_INT(encode(&a, &ba), 0);
    CHECK_EQ_INT(osse_event_decode(ba.ptr, ba.len, &back, &err), 0);
    CHECK(back.opened == NULL && back.submitted == NULL && back.data != NULL);
    CHECK(json_equal(back.data, a.data));
    CHECK_EQ_INT(encode(&back, &again), 0);
    CHECK(again.len == ba.len && memcmp(again.ptr, ba.ptr, ba.len) == 0);
    osse_event_clear(&back);
    json_decref(a.data);
    osse_buf_close(&ba);
    osse_buf_close(&again);
}

static void same_opened(const osse_ev_opened_t *o, const char *tree)
{
    osse_event_t back;
    same_bytes_as(OSSE_EV_StepOpened, o, tree, &back);
    if (back.opened) {
        CHECK_EQ_STR(back.opened->step, o->step);
        CHECK_EQ_STR(back.opened->kind, o->kind);
        CHECK(o->agency ? back.opened->agency && strcmp(back.opened->agency, o->agency) == 0
                        : back.opened->agency == NULL);
        CHECK_EQ_INT(back.opened->due_at, o->due_at);
        CHECK_EQ_INT(back.opened->warn_at, o->warn_at);
        CHECK_EQ_STR(osse_event_step(&back), o->step);
    }
    osse_event_clear(&back);
}

static void test_opened_fields(void)
{
    osse_ev_opened_t o = {"review", "task", "dbd", 1764558000000, 1764556200500};
    same_opened(&o, "{\"step\":\"review\",\"kind\":\"task\",\"agency\":\"dbd\","
                    "\"due_at\":\"2025-12-01T03:00:00.000Z\","
                    "\"warn_at\":\"2025-12-01T02:30:00.500Z\"}");
    osse_ev_opened_t none = {"pay", "payment", NULL, 0, 0};
    same_opened(&none, "{\"step\":\"pay\",\"kind\":\"payment\",\"agency\":null,"
                       "\"due_at\":null,\"warn_at\":null}");
    /* Other shapes stay trees: another key order, a key more, a time not
     * in the form osse writes, the epoch itself (0 is null), a number. */
    osse_event_type_t t = OSSE_EV_StepOpened;
    as_tree(t, "{\"kind\":\"task\",\"step\":\"a\",\"agency\":null,\"due_at\":null,"
               "\"warn_at\":null}");
    as_tree(t, "{\"step\":\"a\",\"kind\":\"task\",\"agency\":null,\"due_at\":null,"
               "\"warn_at\":null,\"x\":1}");
    as_tree(t, "{\"step\":\"a\",\"kind\":\"task\",\"agency\":null,"
               "\"due_at\":\"2025-12-01T10:00:00+07:00\",\"warn_at\":null}");
    as_tree(t, "{\"step\":\"a\",\"kind\":\"task\",\"agency\":null,"
               "\"due_at\":\"1970-01-01T00:00:00.000Z\",\"warn_at\":null}");
    as_tree(t, "{\"step\":\"a\",\"kind\":\"task\",\"agency\":7,\"due_at\":null,"
               "\"warn_at\":null}");
    as_tree(t, "{\"step\":\"a\"}");
    /* Fields only for a StepOpened, and never beside a tree. */
    osse_event_t bad;
    osse_buf_t bb;
    opened_event(&bad, NULL, NULL);
    bad.type = OSSE_EV_TaskDecided; /* a type without fields */
    CHECK_EQ_INT(osse_event_set_fields(&bad, &o), OSSE_EINVAL);
    CHECK(!osse_event_has_fields(&bad));
    opened_event(&bad, NULL, &o);
    bad.type = OSSE_EV_StepSkipped;
    CHECK_EQ_INT(encode(&bad, &bb), OSSE_EINVAL);
    osse_buf_close(&bb);
    opened_event(&bad, json_object(), &o);
    CHECK_EQ_INT(encode(&bad, &bb), OSSE_EINVAL);
    json_decref(bad.data);
    osse_buf_close(&bb);
}

static void test_submitted_fields(void)
{
    json_t *form = json_pack("{s:s, s:f, s:i, s:{s:s, s:s}, s:[s], s:n}", "name", "Somchai", "area",
                             42.5, "seats", 12, "id_card", "sealed", "ciphertext", "k", "key",
                             "files", "f1", "none");
    osse_buf_t fb;
    osse_buf_init(&fb, 0);
    CHECK_EQ_INT(osse_mp_put_json(&fb, form), 0);
    osse_ev_submitted_t sub = {"01HXYZ",     "bench-permit",          3,     "ABCD-1234",
                               "biz-portal", (const uint8_t *)fb.ptr, fb.len};
    osse_event_t back;
    same_bytes_as(OSSE_EV_RequestSubmitted, &sub,
                  "{\"id\":\"01HXYZ\",\"workflow\":\"bench-permit\",\"workflow_version\":3,"
                  "\"tracking_code\":\"ABCD-1234\",\"portal\":\"biz-portal\","
                  "\"form\":{\"name\":\"Somchai\",\"area\":42.5,\"seats\":12,"
                  "\"id_card\":{\"sealed\":\"ciphertext\",\"k\":\"key\"},\"files\":[\"f1\"],"
                  "\"none\":null}}",
                  &back);
    if (back.submitted) {
        CHECK_EQ_STR(back.submitted->id, "01HXYZ");
        CHECK_EQ_STR(back.submitted->workflow, "bench-permit");
        CHECK_EQ_INT(back.submitted->workflow_version, 3);
        CHECK_EQ_STR(back.submitted->tracking_code, "ABCD-1234");
        CHECK_EQ_STR(back.submitted->portal, "biz-portal");
        CHECK(back.submitted->form_len == fb.len &&
              memcmp(back.submitted->form, fb.ptr, fb.len) == 0);
        CHECK(osse_event_step(&back) == NULL);
        json_t *d = osse_event_data(&back);
        CHECK(json_equal(json_object_get(d, "form"), form));
        json_decref(d);
    }
    osse_event_clear(&back);
    osse_event_type_t t = OSSE_EV_RequestSubmitted;
    /* A key out of order, a version that is not a count, a form that is not
     * an object, a string with a NUL, a key missing. */
    as_tree(t, "{\"workflow\":\"w\",\"id\":\"i\",\"workflow_version\":1,\"tracking_code\":\"c\","
               "\"portal\":\"p\",\"form\":{}}");
    as_tree(t, "{\"id\":\"i\",\"workflow\":\"w\",\"workflow_version\":-1,\"tracking_code\":\"c\","
               "\"portal\":\"p\",\"form\":{}}");
    as_tree(t, "{\"id\":\"i\",\"workflow\":\"w\",\"workflow_version\":1.0,"
               "\"tracking_code\":\"c\",\"portal\":\"p\",\"form\":{}}");
    as_tree(t, "{\"id\":\"i\",\"workflow\":\"w\",\"workflow_version\":4294967296,"
               "\"tracking_code\":\"c\",\"portal\":\"p\",\"form\":{}}");
    as_tree(t, "{\"id\":\"i\",\"workflow\":\"w\",\"workflow_version\":1,\"tracking_code\":\"c\","
               "\"portal\":\"p\",\"form\":[]}");
    as_tree(t, "{\"id\":\"i\\u0000\",\"workflow\":\"w\",\"workflow_version\":1,"
               "\"tracking_code\":\"c\",\"portal\":\"p\",\"form\":{}}");
    as_tree(t, "{\"id\":\"i\",\"workflow\":\"w\",\"workflow_version\":1,\"tracking_code\":\"c\","
               "\"portal\":null,\"form\":{}}");
    as_tree(t, "{\"id\":\"i\",\"workflow\":\"w\",\"workflow_version\":1,\"tracking_code\":\"c\","
               "\"form\":{}}");
    /* Fields of one type only, of the event's type, and complete. */
    osse_event_t bad;
    osse_buf_t bb;
    fields_event(&bad, OSSE_EV_RequestSubmitted, NULL, &sub);
    bad.type = OSSE_EV_StepOpened;
    CHECK_EQ_INT(encode(&bad, &bb), OSSE_EINVAL);
    osse_buf_close(&bb);
    osse_ev_opened_t o = {"review", "task", "dbd", 0, 0};
    fields_event(&bad, OSSE_EV_RequestSubmitted, NULL, &sub);
    bad.opened = &o;
    CHECK_EQ_INT(encode(&bad, &bb), OSSE_EINVAL);
    osse_buf_close(&bb);
    /* A form that is not one object's bytes: none, cut short, with a byte
     * more, an array, a map with a duplicate key. */
    static const uint8_t arr[] = {0x91, 0x01}, dup[] = {0x82, 0xa1, 'a', 0x01, 0xa1, 'a', 0x02};
    osse_buf_t more;
    osse_buf_init(&more, 0);
    CHECK_EQ_INT(osse_buf_append(&more, fb.ptr, fb.len), 0);
    CHECK_EQ_INT(osse_buf_append(&more, "\xc0", 1), 0);
    const struct {
        const uint8_t *p;
        size_t n;
    } forms[] = {{NULL, 0},
                 {(const uint8_t *)fb.ptr, fb.len - 1},
                 {(const uint8_t *)more.ptr, more.len},
                 {arr, sizeof arr},
                 {dup, sizeof dup}};
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
        osse_ev_submitted_t noform = sub;
        noform.form = forms[i].p;
        noform.form_len = forms[i].n;
        fields_event(&bad, OSSE_EV_RequestSubmitted, NULL, &noform);
        CHECK_EQ_INT(encode(&bad, &bb), OSSE_EINVAL);
        osse_buf_close(&bb);
    }
    osse_ev_submitted_t noportal = sub;
    noportal.portal = NULL;
    fields_event(&bad, OSSE_EV_RequestSubmitted, NULL, &noportal);
    CHECK_EQ_INT(encode(&bad, &bb), OSSE_EINVAL);
    osse_buf_close(&bb);
    /* A string the decoder would refuse is not written either. */
    osse_ev_submitted_t latin1 = sub;
    latin1.portal = "caf\xe9";
    fields_event(&bad, OSSE_EV_RequestSubmitted, NULL, &latin1);
    CHECK_EQ_INT(encode(&bad, &bb), OSSE_EINVAL);
    osse_buf_close(&bb);
    json_decref(form);
    osse_buf_close(&fb);
    osse_buf_close(&more);
}

int main(void)
{
    osse_alloc_setup_json();
    RUN(test_round_trip);
    RUN(test_layout);
    RUN(test_to_json);
    RUN(test_encode_limits);
    RUN(test_truncations);
    RUN(test_hostile);
    RUN(test_types);
    RUN(test_random);
    RUN(test_check);
    RUN(test_opened_fields);
    RUN(test_submitted_fields);
    return TEST_EXIT();
}
