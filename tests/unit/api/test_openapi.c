/* test_openapi.c: api/openapi.json describes exactly the routes of the
 * server's route table (api/server.c, through osse_server_route), no more
 * and no fewer, with the roles the table gives each.
 *
 * A route ":id" is the document's "{id}". Every row of the table is held to
 * the same rules, /v1 or not (/healthz, /metrics, pages under /ui/): each
 * must be an operation of the document, with its path parameters declared,
 * `security: []` when public and the bearer scheme otherwise, and
 * `x-osse-roles` naming the table's roles; each operation of the document
 * must be a row. The embedded bytes are checked against the files in the
 * tree (OSSE_SRC), so a stale build cannot pass. */
#include "api/docs.h"
#include "api/server.h"
#include "tests/test.h"

#include <ctype.h>
#include <jansson.h>

static const char *const methods[] = {"get",  "put",     "post",  "delete", "patch",
                                      "head", "options", "trace", NULL};

/* "/v1/tasks/:rid/:step/decision" -> "/v1/tasks/{rid}/{step}/decision" */
static void to_template(const char *pattern, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = pattern; *p && o + 3 < cap; p++) {
        if (*p == ':' && (p == pattern || p[-1] == '/')) {
            out[o++] = '{';
            while (p[1] && p[1] != '/' && o + 2 < cap)
                out[o++] = *++p;
            out[o++] = '}';
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

static void lower(const char *s, char *out, size_t cap)
{
    size_t i = 0;
    for (; s[i] && i + 1 < cap; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[i] = '\0';
}

static json_t *load_doc(const unsigned char *p, size_t len)
{
    json_error_t e;
    json_t *doc = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &e);
    if (!doc)
        fprintf(stderr, "embedded document: line %d: %s\n", e.line, e.text);
    return doc;
}

/* Whether the operation declares the path parameter name (at the path's
 * level or its own). */
static bool has_path_param(json_t *item, json_t *op, const char *name)
{
    json_t *lists[2] = {json_object_get(item, "parameters"), json_object_get(op, "parameters")};
    for (int k = 0; k < 2; k++) {
        size_t i;
        json_t *p;
        json_array_foreach(lists[k], i, p)
        {
            if (json_is_true(json_object_get(p, "required")) &&
                strcmp(json_string_value(json_object_get(p, "in")) ?: "", "path") == 0 &&
                strcmp(json_string_value(json_object_get(p, "name")) ?: "", name) == 0)
                return true;
        }
    }
    return false;
}

static void check_row(json_t *paths, osse_route_info_t r)
{
    char tpl[256], m[16];
    to_template(r.pattern, tpl, sizeof tpl);
    lower(r.method, m, sizeof m);
    json_t *item = json_object_get(paths, tpl);
    json_t *op = json_object_get(item, m);
    if (!op) {
        fprintf(stderr, "route %s %s is not in api/openapi.json (as %s %s)\n", r.method, r.pattern,
                m, tpl);
        CHECK(op != NULL);
        return;
    }
    /* Path parameters. */
    for (const char *p = strchr(tpl, '{'); p; p = strchr(p + 1, '{')) {
        char name[64];
        size_t n = strcspn(p + 1, "}");
        snprintf(name, sizeof name, "%.*s", (int)n, p + 1);
        if (!has_path_param(item, op, name)) {
            fprintf(stderr, "%s %s: path parameter %s is not declared\n", m, tpl, name);
            CHECK(false);
        }
    }
    /* Security: none for a public route, the bearer token otherwise. */
    json_t *sec = json_object_get(op, "security");
    CHECK(json_is_array(sec));
    if (r.roles == 0) {
        if (json_array_size(sec) != 0)
            fprintf(stderr, "%s %s is public: its security must be []\n", m, tpl);
        CHECK_EQ_INT(json_array_size(sec), 0);
    } else {
        json_t *s0 = json_array_get(sec, 0);
        if (json_array_size(sec) != 1 || !json_object_get(s0, "bearer"))
            fprintf(stderr, "%s %s needs a token: its security must be [{bearer: []}]\n", m, tpl);
        CHECK(json_array_size(sec) == 1 && json_object_get(s0, "bearer") != NULL);
        json_t *resp = json_object_get(op, "responses");
        CHECK(json_object_get(resp, "401") != NULL);
        CHECK(json_object_get(resp, "403") != NULL);
    }
    /* The roles, as the table has them. */
    json_t *roles = json_object_get(op, "x-osse-roles");
    unsigned got = 0;
    size_t i;
    json_t *v;
    json_array_foreach(roles, i, v)
    {
        osse_role_t role;
        if (!json_is_string(v) || osse_role_parse(json_string_value(v), &role) != 0) {
            fprintf(stderr, "%s %s: x-osse-roles[%zu] is no role\n", m, tpl, i);
            CHECK(false);
            continue;
        }
        got |= 1u << role;
    }
    if (!json_is_array(roles) || got != r.roles)
        fprintf(stderr, "%s %s: x-osse-roles (bits %#x) differ from the route table's (%#x)\n", m,
                tpl, got, r.roles);
    CHECK(json_is_array(roles));
    CHECK_EQ_INT(got, r.roles);
    /* A success answer is described. */
    bool ok = false;
    const char *code;
    json_object_foreach(json_object_get(op, "responses"), code, v) ok |= code[0] == '2';
    CHECK(ok);
}

static void test_every_route_is_described(void)
{
    json_t *doc = load_doc(osse_doc_openapi, osse_doc_openapi_len);
    CHECK(doc != NULL);
    if (!doc)
        return;
    CHECK(strncmp(json_string_value(json_object_get(doc, "openapi")) ?: "", "3.1.", 4) == 0);
    json_t *paths = json_object_get(doc, "paths");
    CHECK(json_object_size(paths) > 0);
    size_t n = osse_server_route_count();
    CHECK(n > 40);
    for (size_t i = 0; i < n; i++)
        check_row(paths, osse_server_route(i));
    json_decref(doc);
}

static void test_every_operation_is_a_route(void)
{
    json_t *doc = load_doc(osse_doc_openapi, osse_doc_openapi_len);
    if (!doc)
        return;
    const char *tpl;
    json_t *item;
    size_t ops = 0;
    json_object_foreach(json_object_get(doc, "paths"), tpl, item)
    {
        for (size_t k = 0; methods[k]; k++) {
            if (!json_object_get(item, methods[k]))
                continue;
            ops++;
            bool found = false;
            for (size_t i = 0; i < osse_server_route_count() && !found; i++) {
                osse_route_info_t r = osse_server_route(i);
                char t[256], m[16];
                to_template(r.pattern, t, sizeof t);
                lower(r.method, m, sizeof m);
                found = strcmp(t, tpl) == 0 && strcmp(m, methods[k]) == 0;
            }
            if (!found)
                fprintf(stderr, "api/openapi.json has %s %s, which the route table lacks\n",
                        methods[k], tpl);
            CHECK(found);
        }
    }
    CHECK_EQ_INT(ops, osse_server_route_count());
    json_decref(doc);
}

/* The embedded bytes are the tree's files: the build embedded the current
 * ones. */
static void same_as_file(const char *rel, const unsigned char *p, size_t len)
{
    const char *src = getenv("OSSE_SRC");
    if (!src) {
        fprintf(stderr, "OSSE_SRC is not set: the embedded %s is not compared with its file\n",
                rel);
        CHECK(src != NULL);
        return;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", src, rel);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (!f)
        return;
    char *buf = malloc(len + 2);
    size_t got = fread(buf, 1, len + 1, f);
    fclose(f);
    CHECK_EQ_INT(got, len);
    CHECK(got == len && memcmp(buf, p, len) == 0);
    CHECK_EQ_INT(p[len], 0);
    free(buf);
}

static void test_embedded_are_the_files(void)
{
    same_as_file("api/openapi.json", osse_doc_openapi, osse_doc_openapi_len);
    same_as_file("api/workflow.schema.json", osse_doc_workflow_schema,
                 osse_doc_workflow_schema_len);
    json_t *s = load_doc(osse_doc_workflow_schema, osse_doc_workflow_schema_len);
    CHECK(s != NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(s, "$schema")),
                 "https://json-schema.org/draft/2020-12/schema");
    json_decref(s);
}

static void test_templates(void)
{
    char t[64];
    to_template("/v1/tasks/:rid/:step/decision", t, sizeof t);
    CHECK_EQ_STR(t, "/v1/tasks/{rid}/{step}/decision");
    to_template("/healthz", t, sizeof t);
    CHECK_EQ_STR(t, "/healthz");
    to_template("/v1/public/licences.csv", t, sizeof t);
    CHECK_EQ_STR(t, "/v1/public/licences.csv");
}

int main(void)
{
    RUN(test_templates);
    RUN(test_every_route_is_described);
    RUN(test_every_operation_is_a_route);
    RUN(test_embedded_are_the_files);
    return TEST_EXIT();
}
