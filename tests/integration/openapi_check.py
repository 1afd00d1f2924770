"""openapi_check.py: checks real answers of osse against its own OpenAPI
document (api/openapi.json, as GET /v1/openapi.json serves it).

Run by test_openapi.py with Debian's /usr/bin/python3, which has
python3-jsonschema (the suite's own python3 may not):

    /usr/bin/python3 openapi_check.py OPENAPI.json WORKFLOW_SCHEMA.json CALLS.json

CALLS.json is a list of {"method","path","request","status","content_type","body"}
(body: the parsed JSON answer, or null; request: the JSON body sent, or
null). For each call: its path must match
one of the document's path templates (or the answer is a 404/405 error), its
method must be an operation there (or the answer is 405), its status must be
one of the operation's responses, the answer's media type one the response
lists, and a JSON answer must validate against that response's schema
(Draft 2020-12, with format checking). A call that succeeded (2xx) must
have sent only documented query parameters and, if it sent JSON, a body
that the operation's request schema accepts (unless its answer repeats an
earlier one on that path: a replay answers whatever the body). Prints one line per problem and
"checked N calls, M problems"; exits 1 on any problem, 0 otherwise. With
--covered, it also prints the operations that got a 2xx answer as JSON on
its last line."""

import json
import re
import sys

import jsonschema
from jsonschema import Draft202012Validator


def templates(doc):
    """[(regex, template)] of the document's paths, literal segments first,
    so that /v1/public/licences.csv wins over /v1/public/licences/{number}."""
    out = []
    for t in doc["paths"]:
        rx = "^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(t)) + "$"
        out.append((t.count("{"), re.compile(rx), t))
    out.sort(key=lambda x: x[0])
    return [(rx, t) for _, rx, t in out]


def check_request(c, tpl, op, problem, validator):
    """A call that succeeded sent only documented query parameters and, when
    it sent JSON, a body that the operation's request schema accepts."""
    query = c["path"].partition("?")[2]
    names = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
    for pair in filter(None, query.split("&")):
        name = pair.split("=")[0]
        if name not in names:
            problem(c, "query parameter %r is not documented (%s)" % (name, sorted(names)))
    sent = c.get("request")
    if sent is None:
        return
    content = op.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        if "*/*" not in content:
            problem(c, "a JSON body was sent, but the operation takes none")
        return
    ptr = "#/paths/%s/%s/requestBody/content/application~1json/schema" % (
        tpl.replace("~", "~0").replace("/", "~1"), c["method"].lower())
    for e in validator(ptr).iter_errors(sent):
        where = "/".join(str(p) for p in e.absolute_path)
        problem(c, "request body at /%s: %s" % (where, e.message[:300]))


def main(argv):
    covered_out = "--covered" in argv
    argv = [a for a in argv if a != "--covered"]
    doc = json.load(open(argv[1], encoding="utf-8"))
    wf_schema = json.load(open(argv[2], encoding="utf-8"))
    calls = json.load(open(argv[3], encoding="utf-8"))
    # The document's own references, and the workflow schema it names by
    # the route that serves it.
    resolver = jsonschema.RefResolver("", doc, store={"/v1/schema/workflow.json": wf_schema})
    fc = Draft202012Validator.FORMAT_CHECKER
    cache = {}
    problems = []

    def validator(pointer):
        if pointer not in cache:
            cache[pointer] = Draft202012Validator({"$ref": pointer}, resolver=resolver,
                                                  format_checker=fc)
        return cache[pointer]

    # Every schema of the document is itself a valid 2020-12 schema (the
    # OpenAPI 3.1 dialect adds keywords, which 2020-12 allows).
    for name, sch in doc["components"]["schemas"].items():
        for e in Draft202012Validator(Draft202012Validator.META_SCHEMA).iter_errors(sch):
            problems.append("components/schemas/%s is not a 2020-12 schema: %s" % (
                name, e.message[:200]))
    error_ptr = "#/components/schemas/Error"
    tpls = templates(doc)
    covered = set()
    answered = set()

    def problem(c, msg):
        problems.append("%s %s -> %s: %s" % (c["method"], c["path"], c["status"], msg))

    for c in calls:
        path = c["path"].split("?")[0]
        tpl = next((t for rx, t in tpls if rx.match(path)), None)
        body, status = c["body"], c["status"]
        if tpl is None or c["method"].lower() not in doc["paths"][tpl]:
            # Not a route: only the router's own answers are expected.
            want = (404, 405) if tpl is None else (405,)
            if status not in want:
                problem(c, "not described (no such operation in the document)")
            elif body is not None:
                for e in validator(error_ptr).iter_errors(body):
                    problem(c, "error body: %s" % e.message)
            continue
        opname = "%s %s" % (c["method"].upper(), tpl)
        op = doc["paths"][tpl][c["method"].lower()]
        resp = op["responses"].get(str(status))
        if resp is None:
            problem(c, "status %d is not among %s's responses %s" % (
                status, opname, sorted(op["responses"])))
            continue
        if "$ref" in resp:
            resp = doc["components"]["responses"][resp["$ref"].split("/")[-1]]
        content = resp.get("content", {})
        ctype = (c.get("content_type") or "").split(";")[0].strip().lower()
        if content and ctype not in content and "*/*" not in content:
            problem(c, "content type %r is not among %s" % (ctype, sorted(content)))
            continue
        if 200 <= status < 300:
            covered.add(opname)
            # An answer equal to an earlier one on the same path is a
            # replay (an Idempotency-Key, a payment's known transaction),
            # which answers whatever the body: its body made nothing.
            seen = (c["method"], path, json.dumps(body, sort_keys=True))
            if seen not in answered:
                check_request(c, tpl, op, problem, validator)
            answered.add(seen)
        if ctype != "application/json" or body is None:
            continue
        if ctype not in content:
            continue
        ptr = "#/paths/%s/%s/responses/%d/content/application~1json/schema" % (
            tpl.replace("~", "~0").replace("/", "~1"), c["method"].lower(), status)
        if "$ref" in op["responses"][str(status)]:
            ptr = op["responses"][str(status)]["$ref"] + "/content/application~1json/schema"
        for e in validator(ptr).iter_errors(body):
            where = "/".join(str(p) for p in e.absolute_path)
            problem(c, "answer at /%s: %s" % (where, e.message[:300]))
    for p in problems[:200]:
        print(p)
    print("checked %d calls, %d problems" % (len(calls), len(problems)))
    if covered_out:
        print(json.dumps(sorted(covered)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
