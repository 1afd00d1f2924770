/* test_json.c: the plain-body reader (api/json.h) against jansson itself.
 *
 * For every input, when osse_json_load_plain answers, json_loadb with
 * JSON_REJECT_DUPLICATES must answer the same: same types (an integer is no
 * real), same integers, bit-identical reals, same string bytes, same keys in
 * the same order. Inputs: edge cases written out (numbers at every form
 * jansson treats apart, words, white space, UTF-8 at its limits, what must
 * go to jansson), the fuzz corpus of request bodies, random plain documents
 * (which the reader must take: a reader that answered nothing would pass
 * the comparison), and random byte mutations of them. */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/json.h"
#include "tests/test.h"

static bool same(const json_t *a, const json_t *b)
{
    if (json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
    case JSON_INTEGER: return json_integer_value(a) == json_integer_value(b);
    case JSON_REAL: {
        double x = json_real_value(a), y = json_real_value(b);
        return memcmp(&x, &y, sizeof x) == 0;
    }
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!same(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return false;
        void *ia = json_object_iter((json_t *)a), *ib = json_object_iter((json_t *)b);
        while (ia && ib) {
            if (strcmp(json_object_iter_key(ia), json_object_iter_key(ib)) != 0 ||
                !same(json_object_iter_value(ia), json_object_iter_value(ib)))
                return false;
            ia = json_object_iter_next((json_t *)a, ia);
            ib = json_object_iter_next((json_t *)b, ib);
        }
        return !ia && !ib;
    }
    default: return true;
    }
}

static int taken, mismatches;

/* Returns whether the reader answered. */
static bool check(const char *p, size_t n)
{
    json_t *fast = osse_json_load_plain(p, n);
    if (!fast)
        return false;
    taken++;
    json_error_t err;
    json_t *ref = json_loadb(p, n, JSON_REJECT_DUPLICATES, &err);
    if (!ref || !same(fast, ref)) {
        if (mismatches++ < 5)
            fprintf(stderr, "differs from jansson (%s): %.*s\n", ref ? "values" : err.text,
                    (int)(n > 200 ? 200 : n), p);
    }
    json_decref(fast);
    json_decref(ref);
    return true;
}

static bool check_str(const char *s)
{
    return check(s, strlen(s));
}

static void test_cases(void)
{
    mismatches = 0;
    /* Taken: plain bodies. */
    static const char *const plain[] = {
        "{}",
        " \t\r\n{ } \n",
        "{\"a\":1}",
        "{\"a\":-0}",
        "{\"a\":0}",
        "{\"a\":-1}",
        "{\"a\":999999999999999999}",
        "{\"a\":-999999999999999999}",
        "{\"a\":0.5}",
        "{\"a\":-0.0}",
        "{\"a\":1e5}",
        "{\"a\":1E+5}",
        "{\"a\":1e-5}",
        "{\"a\":2.5e-400}",
        "{\"a\":1.7976931348623157e308}",
        "{\"a\":0.1000000000000000055511151231257827}",
        "{\"a\":true,\"b\":false,\"c\":null}",
        "{\"a\":[],\"b\":[1,[2,[3]],{}],\"c\":{\"d\":{}}}",
        "{\"\":\"\"}",
        "{\"a\" : [ 1 , 2 ] , \"b\" : { } }",
        "{\"th\":\"\xe0\xb8\x81\xe0\xb8\x82\",\"e\":\"\xc2\x80\xdf\xbf\xef\xbf\xbf\xf0\x90\x80\x80"
        "\xf4\x8f\xbf\xbf\"}",
        "{\"workflow\":\"bench-permit\",\"form\":{\"applicant_id\":\"1101700230708\",\"seats\":7,"
        "\"area_sqm\":42.5}}",
    };
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (!check_str(plain[i]))
            fprintf(stderr, "not taken: %s\n", plain[i]), mismatches++;
    /* Left to jansson: escapes, errors, long integers, duplicates, what
     * jansson reads otherwise or refuses. */
    static const char *const left[] = {
        "",
        " ",
        "[]",
        "1",
        "\"a\"",
        "null",
        "{",
        "}",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{,}",
        "{\"a\":1 \"b\":2}",
        "{\"a\":1}x",
        "{\"a\":1}{}",
        "{\"a\":\"\\n\"}",
        "{\"a\\u0041\":1}",
        "{\"a\":\"\t\"}",
        "{\"a\":01}",
        "{\"a\":-}",
        "{\"a\":1.}",
        "{\"a\":.5}",
        "{\"a\":1e}",
        "{\"a\":1e+}",
        "{\"a\":+1}",
        "{\"a\":1e400}",
        "{\"a\":-1e400}",
        "{\"a\":1234567890123456789}",
        "{\"a\":9223372036854775808}",
        "{\"a\":1,\"a\":2}",
        "{\"a\":truex}",
        "{\"a\":tru}",
        "{\"a\":True}",
        "{\"a\":nul}",
        "{\"a\":true1}",
        "{\"a\":[1,]}",
        "{\"a\":[,1]}",
        "{\"a\":\"\xc0\x80\"}",
        "{\"a\":\"\xed\xa0\x80\"}",
        "{\"a\":\"\xf4\x90\x80\x80\"}",
        "{\"a\":\"\xe0\x80\x80\"}",
        "{\"a\":\"\xf0\x80\x80\x80\"}",
        "{\"a\":\"\xe0\xb8\"}",
        "{\"a\":\"\x80\"}",
        "{\"a\":\"\xff\"}",
        "{\"a\":\"x",
        "{\"a\":1\x0b}",
        "\x0c{}",
    };
    for (size_t i = 0; i < sizeof left / sizeof left[0]; i++)
        if (check_str(left[i]))
            fprintf(stderr, "taken: %s\n", left[i]), mismatches++;
    /* A NUL after the object is jansson's to refuse. */
    CHECK(!check("{\"a\":1}\0", 8));
    /* 32 levels are taken, 33 are not. */
    char nest[200] = "";
    for (int d = 31; d <= 33; d++) {
        size_t k = 0;
        nest[k++] = '{';
        memcpy(nest + k, "\"a\":", 4), k += 4;
        for (int i = 1; i < d; i++)
            nest[k++] = '[';
        for (int i = 1; i < d; i++)
            nest[k++] = ']';
        nest[k++] = '}';
        nest[k] = '\0';
        CHECK_EQ_INT(check_str(nest), d <= 32);
    }
    CHECK_EQ_INT(mismatches, 0);
}

/* ---- random documents ---- */

static uint64_t rng = 0x243f6a8885a308d3ULL;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (unsigned)(rng >> 33) % n;
}

typedef struct gen_s {
    char p[8192];
    size_t n;
} gen_t;

static void put(gen_t *g, const char *s)
{
    size_t k = strlen(s);
    if (g->n + k < sizeof g->p)
        memcpy(g->p + g->n, s, k), g->n += k;
}

static void gen_string(gen_t *g, unsigned salt)
{
    static const char *const parts[] = {
        "a", "bc", "Somchai", " ", "-", "\xe0\xb8\x81", "\xc3\xa9", "\xf0\x9f\x98\x80",
        "1", "k",  "Z",       "/", "'"};
    put(g, "\"");
    for (unsigned i = rnd(6); i > 0; i--)
        put(g, parts[rnd(sizeof parts / sizeof parts[0])]);
    char n[16];
    snprintf(n, sizeof n, "%u", salt); /* keys of one object differ */
    put(g, n);
    put(g, "\"");
}

static void gen_number(gen_t *g)
{
    static const char *const forms[] = {"%d",        "-%d",  "%d.%d",     "-%d.%d",  "%de%d",
                                        "%d.%dE-%d", "0.%d", "-0.%de+%d", "%d%d%d%d"};
    char n[96];
    int a = (int)rnd(100000), b = (int)rnd(300), c = (int)rnd(300);
    const char *f = forms[rnd(sizeof forms / sizeof forms[0])];
    snprintf(n, sizeof n, f, a, b, c, (int)rnd(100000));
    put(g, n);
}

static void gen_value(gen_t *g, int depth)
{
    unsigned k = rnd(depth > 4 ? 6 : 8);
    switch (k) {
    case 0: put(g, "true"); break;
    case 1: put(g, "false"); break;
    case 2: put(g, "null"); break;
    case 3:
    case 4: gen_number(g); break;
    case 5: gen_string(g, rnd(1000)); break;
    case 6: {
        put(g, rnd(2) ? "[" : "[ ");
        for (unsigned i = rnd(4); i > 0; i--) {
            gen_value(g, depth + 1);
            if (i > 1)
                put(g, rnd(3) ? "," : " ,\n");
        }
        put(g, "]");
        break;
    }
    default: {
        put(g, "{");
        unsigned n = rnd(5);
        for (unsigned i = 0; i < n; i++) {
            gen_string(g, i);
            put(g, rnd(3) ? ":" : " : ");
            gen_value(g, depth + 1);
            if (i + 1 < n)
                put(g, rnd(4) ? "," : ",\r\n\t");
        }
        put(g, "}");
    }
    }
}

static void gen_doc(gen_t *g)
{
    g->n = 0;
    put(g, rnd(4) ? "{" : "\n{ ");
    unsigned n = 1 + rnd(8);
    for (unsigned i = 0; i < n; i++) {
        gen_string(g, i);
        put(g, ":");
        gen_value(g, 1);
        if (i + 1 < n)
            put(g, ",");
    }
    put(g, rnd(4) ? "}" : "} \n");
}

static void test_random(void)
{
    mismatches = taken = 0;
    int docs = 0, not_taken = 0;
    static const char bytes[] = "{}[]:,\"\\ \t\n0123456789.eE+-tfnaulsr\x00\x01\x7f\x80\xbf\xc3\xe0"
                                "\xed\xf0\xf4\xff";
    for (int i = 0; i < 20000; i++) {
        gen_t g;
        gen_doc(&g);
        docs++;
        if (!check(g.p, g.n) && not_taken++ < 3)
            fprintf(stderr, "not taken: %.*s\n", (int)g.n, g.p);
        for (int m = 0; m < 8; m++) {
            gen_t h = g;
            size_t at = rnd((unsigned)h.n);
            switch (rnd(3)) {
            case 0: h.p[at] = bytes[rnd(sizeof bytes - 1)]; break;
            case 1:
                memmove(h.p + at, h.p + at + 1, h.n - at - 1);
                h.n--;
                break;
            default:
                if (h.n + 1 < sizeof h.p) {
                    memmove(h.p + at + 1, h.p + at, h.n - at);
                    h.p[at] = bytes[rnd(sizeof bytes - 1)];
                    h.n++;
                }
            }
            check(h.p, h.n);
        }
    }
    /* Numbers with more than 18 digits are jansson's; nothing else is. */
    CHECK(not_taken < docs / 20);
    CHECK(taken > docs);
    CHECK_EQ_INT(mismatches, 0);
}

static void test_corpus(void)
{
    mismatches = 0;
    const char *src = getenv("OSSE_SRC");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/json", src ? src : ".");
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    if (!d)
        return;
    int files = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        static char buf[1 << 16];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        check(buf, n);
        files++;
    }
    closedir(d);
    CHECK(files > 5);
    CHECK_EQ_INT(mismatches, 0);
}

int main(void)
{
    RUN(test_cases);
    RUN(test_random);
    RUN(test_corpus);
    return TEST_EXIT();
}
