/* test_problems.c: the one problem list: each item {"path","message"} in
 * that order, the message formatted and cut to 511 bytes, a cut inside a
 * UTF-8 sequence listed as "invalid value" (never dropped), a NULL list a
 * no-op. */
#include <string.h>

#include "common/alloc.h"
#include "common/problems.h"
#include "tests/test.h"

static void shape(void)
{
    json_t *l = json_array();
    osse_problems_add(l, "steps[2].after", "unknown step %s (%d)", "x", 7);
    osse_problems_add(l, "", "plain");
    char *s = json_dumps(l, JSON_COMPACT);
    CHECK_EQ_STR(s, "[{\"path\":\"steps[2].after\",\"message\":\"unknown step x (7)\"},"
                    "{\"path\":\"\",\"message\":\"plain\"}]");
    free(s);
    json_decref(l);
    osse_problems_add(NULL, "a", "nothing to add to");
}

static void cut(void)
{
    char big[2000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    json_t *l = json_array();
    osse_problems_add(l, "p", "%s", big);
    const char *m = json_string_value(json_object_get(json_array_get(l, 0), "message"));
    CHECK_EQ_INT(strlen(m), OSSE_PROBLEM_MESSAGE_MAX - 1);
    /* "é" is two bytes: 510 'a's and then é cut after its first byte. */
    big[510] = '\xc3';
    big[511] = '\xa9';
    osse_problems_add(l, "p", "%s", big);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(l, 1), "message")),
                 "invalid value");
    osse_problems_add(l, "\xff", "bad path");
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(l, 2), "path")), "?");
    CHECK_EQ_INT(json_array_size(l), 3);
    json_decref(l);
}

int main(void)
{
    osse_alloc_setup_json();
    RUN(shape);
    RUN(cut);
    return TEST_EXIT();
}
