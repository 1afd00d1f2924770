"""test_openapi.py: GET /v1/openapi.json and GET /v1/schema/workflow.json
(SPEC §13) from the real server, and real answers checked against the
document.

- Both documents are public (no token), application/json, the bytes of
  api/openapi.json and api/workflow.schema.json in the tree (embedded at
  build time), and parse: OpenAPI 3.1, JSON Schema 2020-12.
- A tour makes one successful call of every operation the document has,
  on a server with --test-clock=TIME (a fixed instant): publish, calendars,
  agencies, principals, a file, a request returned, answered, approved and
  paid, its licence in the registry and revoked, a second request withdrawn
  and erased, subscriptions, the log and its proofs, statistics, the clock.
- Then several other test files of the suite run here with their calls
  recorded (osse_harness.CALL_LOG): every answer the suite's clients got
  there, errors included, must be described.
- Every recorded answer is checked by openapi_check.py under Debian's
  /usr/bin/python3 (python3-jsonschema, tests/deps.sh): its path and method
  are an operation of the document (or it is the router's 404/405), its
  status is among the operation's responses, and its JSON validates against
  the response's schema (Draft 2020-12, formats checked). Every operation
  must have had a 2xx answer validated.

What the other files' own assertions say is theirs (ctest runs them
separately): here only their answers count.

Python standard library only (the checker runs in /usr/bin/python3).
"""

import importlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import osse_harness  # noqa: E402
from osse_harness import FORM_FIELDS, Server, World, good_form, main, step_of, uniq  # noqa: E402

SRC = os.path.abspath(os.environ.get("OSSE_SRC") or
                      os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.dirname(os.path.abspath(__file__))
CLOCK = "--test-clock=2030-01-07T09:00:00+07:00"
DEBIAN_PYTHON = "/usr/bin/python3"

# Test files whose calls are recorded and checked: together they reach
# every route with most of its answers (every role on every route, the
# errors of SPEC §11, payments, erasure, files, the registry, statistics).
RECORDED = ["test_route_roles", "test_errors", "test_whole_service", "test_payments",
            "test_erasure", "test_files", "test_registry", "test_stats", "test_requests",
            "test_subscription_events", "test_licences"]


def operations(doc):
    return {"%s %s" % (m.upper(), p) for p, item in doc["paths"].items() for m in item
            if m in ("get", "put", "post", "delete", "patch", "head", "options", "trace")}


def tour_workflow(wid, agency):
    """A task, a fee and a licence: every kind of answer a request has."""
    return {
        "id": wid, "title": "Tour " + wid, "calendar": "th-gov",
        "form": json.loads(json.dumps(FORM_FIELDS)),
        "steps": {
            "intake": {"kind": "task", "agency": agency, "sla": "2 working days"},
            "fee": {"kind": "payment", "agency": agency, "after": ["intake"],
                    "amount": "100 + (form.seats ?? 0)", "sla": "P30D", "on_breach": "expire"},
            "licence": {"kind": "issue", "after": ["fee"], "valid_for": "P1Y",
                        "number": "TOUR%s-{yyyy}-{seq:4}" % wid[-4:].upper(),
                        "public_fields": ["business_name", "district"]},
        },
    }


def ok(tc, r, *statuses):
    tc.assertIn(r.status, statuses or (200,), r)
    return r.json


class TestOpenAPI(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=[CLOCK]).start()
        cls.tmp = tempfile.mkdtemp(prefix="osse-openapi-")

    @classmethod
    def tearDownClass(cls):
        osse_harness.CALL_LOG = None
        try:
            rc = cls.server.stop()
            assert rc == 0, "osse exited %s on SIGTERM:\n%s" % (rc, cls.server.stderr_tail())
        finally:
            cls.server.cleanup()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def fetch(self, path, file):
        r = self.server.client("").get(path)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("content-type"), "application/json", r.headers)
        with open(os.path.join(SRC, "api", file), "rb") as f:
            self.assertEqual(r.body, f.read(), "%s is not the bytes of api/%s" % (path, file))
        self.assertIsInstance(r.json, dict)
        return r

    def test_a_documents_are_served(self):
        r = self.fetch("/v1/openapi.json", "openapi.json")
        self.assertTrue(r.json["openapi"].startswith("3.1."), r.json["openapi"])
        self.assertIn("/v1/openapi.json", r.json["paths"])
        s = self.fetch("/v1/schema/workflow.json", "workflow.schema.json")
        self.assertEqual(s.json["$schema"], "https://json-schema.org/draft/2020-12/schema")
        # Public: a token is not needed, and a wrong one does not matter.
        r = self.server.client("osse_not-a-token").get("/v1/openapi.json")
        self.assertEqual(r.status, 200, r)
        # The documents are the server's, not a route for writes.
        r = self.server.client(self.server.admin_token()).post("/v1/openapi.json", {})
        self.assertEqual(r.status, 405, r)

    def test_c_document_is_whole(self):
        """Every local $ref resolves, every operation has a unique
        operationId, a summary and responses, and every {param} of a path is
        declared: what an OpenAPI tool needs before it reads the shapes."""
        doc = self.fetch("/v1/openapi.json", "openapi.json").json

        def walk(v, at):
            if isinstance(v, dict):
                ref = v.get("$ref")
                if isinstance(ref, str) and ref.startswith("#/"):
                    node = doc
                    for part in ref[2:].split("/"):
                        part = part.replace("~1", "/").replace("~0", "~")
                        self.assertIn(part, node, "%s: $ref %s does not resolve" % (at, ref))
                        node = node[part]
                for k, x in v.items():
                    walk(x, at + "/" + k)
            elif isinstance(v, list):
                for i, x in enumerate(v):
                    walk(x, "%s/%d" % (at, i))

        walk(doc, "#")
        ids = set()
        for path, item in doc["paths"].items():
            for method, op in item.items():
                what = "%s %s" % (method, path)
                self.assertNotIn(op["operationId"], ids, what)
                ids.add(op["operationId"])
                self.assertTrue(op.get("summary"), what)
                self.assertTrue(op.get("responses"), what)
                declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
                self.assertEqual(declared, set(re.findall(r"\{([a-z_]+)\}", path)), what)

    def tour(self):
        """One successful call of every operation."""
        srv = self.server
        anon = srv.client("")
        ok(self, anon.get("/healthz"))
        ok(self, anon.get("/metrics"))
        ok(self, anon.get("/v1/openapi.json"))
        ok(self, anon.get("/v1/schema/workflow.json"))
        w = World(srv)
        plat, portal, A = w.plat, w.portal, w.A
        wid = uniq("tour")
        d = tour_workflow(wid, A)
        ok(self, plat.post("/v1/workflows", d), 201)
        ok(self, plat.post("/v1/workflows", d), 200)  # the same again: nothing written
        ok(self, plat.get("/v1/workflows"))
        ok(self, plat.get("/v1/workflows/" + wid))
        ok(self, portal.get("/v1/workflows/%s/versions/1" % wid))
        ok(self, plat.get("/v1/calendars"))
        ok(self, w.ag[A].get("/v1/calendars/th-gov"))
        ok(self, plat.get("/v1/agencies"))
        ok(self, w.ag[A].get("/v1/agencies/" + A))
        ok(self, plat.post("/v1/agencies/%s/secret" % A))
        ok(self, plat.get("/v1/principals"))
        victim = w.principal("portal")["id"]
        ok(self, plat.delete("/v1/principals/" + victim))
        f = ok(self, portal.call("POST", "/v1/files", raw=b"%PDF-1.4 tour\n",
                                 content_type="application/pdf",
                                 headers={"Osse-Filename": "plan.pdf"}), 201)
        r = portal.get("/v1/files/" + f["id"])
        self.assertEqual(r.status, 200, r)

        req = ok(self, portal.post("/v1/requests", {"workflow": wid, "form": good_form(seats=4)}),
                 201)
        rid = req["id"]
        ok(self, portal.get("/v1/requests?workflow=" + wid))
        ok(self, w.ag[A].get("/v1/requests/" + rid))
        ok(self, w.auditor.get("/v1/requests/%s/events" % rid))
        ok(self, w.ag[A].get("/v1/agencies/%s/tasks?state=open&sort=due" % A))
        ok(self, w.ag[A].post("/v1/tasks/%s/intake/decision" % rid,
                              {"outcome": "return", "reason": "the floor plan, please"}))
        ok(self, portal.post("/v1/requests/%s/info" % rid,
                             {"step": "intake", "form": {"seats": 5}, "message": "here"}))
        ok(self, w.ag[A].post("/v1/tasks/%s/intake/decision" % rid, {"outcome": "approve"}))
        fee = w.view(rid)["fee"]
        self.assertEqual(fee["amount"], "105.00", fee)
        paid = ok(self, w.payment.post("/v1/requests/%s/payments" % rid, {
            "step": "fee", "amount": fee["amount"], "reference": fee["reference"],
            "transaction": uniq("tx")}))
        self.assertEqual(paid["status"], "completed", paid)
        view = w.view(rid)
        number = view["licence"]["number"]
        ok(self, anon.get("/v1/track/" + req["tracking_code"].lower()))
        ok(self, anon.get("/v1/public/services"))
        me = ok(self, w.ag[A].get("/v1/principals/me"))
        self.assertEqual((me["role"], me["agency"]), ("agency", A), me)
        ok(self, portal.get("/v1/principals/me"))
        ok(self, anon.get("/v1/public/services/" + wid))
        ok(self, anon.get("/v1/public/licences?workflow=%s&limit=5" % wid))
        r = anon.get("/v1/public/licences.csv?workflow=" + wid)
        self.assertEqual(r.status, 200, r)
        ok(self, anon.get("/v1/public/licences/" + number))
        for page in ("/ui/track?code=" + req["tracking_code"], "/ui/common.js",
                     "/ui/services/" + wid, "/ui/registry/" + number):
            r = anon.get(page)
            self.assertEqual(r.status, 200, (page, r))
        ok(self, plat.post("/v1/licences/%s/revoke" % number, {"reason": "tour"}))

        other = ok(self, portal.post("/v1/requests", {"workflow": wid, "form": good_form()}), 201)
        ok(self, portal.post("/v1/requests/%s/withdraw" % other["id"], {"reason": "not needed"}))
        ok(self, plat.call("DELETE", "/v1/requests/%s/personal-data" % other["id"],
                           body={"reason": "the applicant asked"}))

        sub = uniq("s")
        ok(self, portal.put("/v1/subscriptions/" + sub,
                            {"url": "https://example.invalid/hook", "events": ["RequestCompleted"]}),
           201)
        ok(self, portal.get("/v1/subscriptions"))
        ok(self, portal.get("/v1/subscriptions/" + sub))
        ok(self, portal.delete("/v1/subscriptions/" + sub))

        log = ok(self, w.auditor.get("/v1/log?after=0&limit=5"))
        self.assertTrue(log["events"], log)
        cp = ok(self, anon.get("/v1/log/checkpoint"))
        r = anon.get("/v1/log/checkpoint", headers={"Accept": "text/plain"})
        self.assertEqual(r.status, 200, r)
        ok(self, anon.get("/v1/log/public-key"))
        ok(self, w.auditor.get("/v1/log/proof/inclusion?seq=1&size=%d" % cp["size"]))
        ok(self, anon.get("/v1/log/proof/consistency?from=1&to=%d" % cp["size"]))
        ok(self, w.auditor.get("/v1/stats?bucket=week"))
        ok(self, w.auditor.get("/v1/admin/digest"))
        ok(self, plat.post("/v1/test/clock", {"advance": "PT1H"}))

    def sweep(self, doc):
        """Every public GET without path parameters that the tour did not
        call (a page under /ui/ added later, say), called once."""
        done = {(c["method"], c["path"].split("?")[0]) for c in osse_harness.CALL_LOG}
        anon = self.server.client("")
        for path, item in sorted(doc["paths"].items()):
            if "get" in item and "{" not in path and item["get"].get("security") == [] and \
                    ("GET", path) not in done:
                anon.get(path)

    def record_others(self):
        """Runs the RECORDED test files here, their calls going to CALL_LOG;
        their outcomes are theirs (ctest runs them on their own)."""
        suite = unittest.TestSuite()
        for name in RECORDED:
            suite.addTests(unittest.defaultTestLoader.loadTestsFromModule(
                importlib.import_module(name)))
        out = io.StringIO()
        res = unittest.TextTestRunner(stream=out, verbosity=0).run(suite)
        return res.testsRun

    def test_b_real_answers_are_described(self):
        if not os.path.exists(DEBIAN_PYTHON):
            self.fail("%s is missing: tests/deps.sh installs python3-jsonschema" % DEBIAN_PYTHON)
        doc = self.fetch("/v1/openapi.json", "openapi.json").json
        schema = self.fetch("/v1/schema/workflow.json", "workflow.schema.json").json
        osse_harness.CALL_LOG = []
        try:
            self.tour()
            self.sweep(doc)
            toured = len(osse_harness.CALL_LOG)
            ran = self.record_others()
            calls = osse_harness.CALL_LOG
        finally:
            osse_harness.CALL_LOG = None
        self.assertGreater(ran, 50, "the recorded test files did not run")
        self.assertGreater(len(calls) - toured, 1000, "the recorded test files made few calls")
        paths = {}
        for name, value in (("openapi", doc), ("schema", schema), ("calls", calls)):
            paths[name] = os.path.join(self.tmp, name + ".json")
            with open(paths[name], "w", encoding="utf-8") as f:
                json.dump(value, f)
        p = subprocess.run([DEBIAN_PYTHON, os.path.join(HERE, "openapi_check.py"),
                            paths["openapi"], paths["schema"], paths["calls"], "--covered"],
                           capture_output=True, text=True, timeout=600)
        lines = p.stdout.strip().splitlines()
        self.assertTrue(lines, p.stderr)
        report = "\n".join(lines[:-1]) + "\n" + p.stderr
        self.assertEqual(p.returncode, 0, "answers the document does not describe:\n" + report)
        covered = set(json.loads(lines[-1]))
        self.assertEqual(sorted(operations(doc) - covered), [],
                         "operations without a validated 2xx answer")
        print(lines[-2])


if __name__ == "__main__":
    main()
