"""test_workflow_schema.py: GET /v1/schema/workflow.json (SPEC §13) agrees
with osse's own checks of definitions (SPEC §2).

- Every example definition (examples/workflows/*.yaml) validates against
  the served schema. The YAML is read by osse itself, not by another YAML
  library: the server starts with --workflows examples/workflows and
  --test-clock=TIME, and GET /v1/workflows/{id} answers each definition's
  tree as JSON, the very tree that osse checked. _setup.yaml beside them
  holds the calendars and agencies they name, not a definition (checked:
  it has neither id nor steps), so it is not held to the schema.
- `osse validate examples/workflows` accepts them too.
- Broken definitions, each one change to a valid one (an unknown key at the
  top, in a step and in a field; a wrong type; a missing required key; bad
  SLA durations; a bad id; a step key of another kind; warn_at out of range
  or without sla; an enum without values; a working-time SLA without a
  calendar; bad licence number templates), are refused by the schema AND
  by `osse validate` (with the _setup.yaml of the examples beside them, so
  that it makes every check the server makes), each naming the key.
- Valid variations that the schema could get wrong (keys given as null,
  no titles and no form, bare YAML booleans and numbers as rules,
  "1 working hour") are accepted
  by both.
- Three rules of SPEC §2 that osse's parser did not hold when the schema
  was written (a linkage or issue step with an sla, a payment step whose
  on_breach is reject) are among the broken ones: both refuse them now.

Python standard library only (the validator runs in /usr/bin/python3).
"""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import OSSE_BIN, Server, main  # noqa: E402

SRC = os.path.abspath(os.environ.get("OSSE_SRC") or
                      os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(SRC, "examples", "workflows")
CLOCK = "--test-clock=2030-01-07T09:00:00+07:00"
DEBIAN_PYTHON = "/usr/bin/python3"


def drop(d, *path):
    for k in path[:-1]:
        d = d[k]
    del d[path[-1]]


def put(d, value, *path):
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value


# (name, the osse path its problem names, a change to food-premises-licence)
BROKEN = [
    ("unknown top-level key", "colour", lambda d: put(d, "red", "colour")),
    ("unknown step key", "steps.district.deadline", lambda d: put(d, "P1D", "steps", "district", "deadline")),
    ("unknown field key", "form.seats.maximum", lambda d: put(d, 9, "form", "seats", "maximum")),
    ("key of another kind", "steps.district.retries", lambda d: put(d, 3, "steps", "district", "retries")),
    ("title not a string", "title", lambda d: put(d, 5, "title")),
    ("min not a number", "form.seats.min", lambda d: put(d, "zero", "form", "seats", "min")),
    ("after not a list", "steps.fee.after", lambda d: put(d, "district", "steps", "fee", "after")),
    ("required not a boolean", "form.business_name.required", lambda d: put(d, "yes", "form", "business_name", "required")),
    ("no steps", "steps", lambda d: drop(d, "steps")),
    ("no id", "id", lambda d: drop(d, "id")),
    ("a task without agency", "steps.health.agency", lambda d: drop(d, "steps", "health", "agency")),
    ("a payment without amount", "steps.fee.amount", lambda d: drop(d, "steps", "fee", "amount")),
    ("a field without type", "form.seats.type", lambda d: drop(d, "form", "seats", "type")),
    ("an enum without values", "form.district.values", lambda d: drop(d, "form", "district", "values")),
    ("an unknown field type", "form.seats.type", lambda d: put(d, "int", "form", "seats", "type")),
    ("an unknown step kind", "steps.district.kind", lambda d: put(d, "review", "steps", "district", "kind")),
    ("sla in business days", "steps.health.sla", lambda d: put(d, "15 business days", "steps", "health", "sla")),
    ("sla with a fraction", "steps.health.sla", lambda d: put(d, "P1.5D", "steps", "health", "sla")),
    ("sla of nothing", "steps.health.sla", lambda d: put(d, "P0D", "steps", "health", "sla")),
    ("sla of 0 working days", "steps.health.sla", lambda d: put(d, "0 working days", "steps", "health", "sla")),
    ("sla with a dangling T", "steps.health.sla", lambda d: put(d, "P1DT", "steps", "health", "sla")),
    ("payment sla in working time", "steps.fee.sla", lambda d: put(d, "3 working days", "steps", "fee", "sla")),
    ("timeout in working time", "steps.identity.timeout", lambda d: put(d, "1 working hour", "steps", "identity", "timeout")),
    ("bad id", "id", lambda d: put(d, "Restaurant_License", "id")),
    ("warn_at of 1.5", "steps.health.warn_at", lambda d: put(d, 1.5, "steps", "health", "warn_at")),
    ("warn_at without sla", "steps.district.warn_at",
     lambda d: (drop(d, "steps", "district", "sla"), put(d, 0.5, "steps", "district", "warn_at"))),
    ("on_breach approve on a payment", "steps.fee.on_breach", lambda d: put(d, "approve", "steps", "fee", "on_breach")),
    ("escalate on a payment", "steps.fee.on_breach", lambda d: put(d, {"escalate": "dbd"}, "steps", "fee", "on_breach")),
    ("on_breach of another word", "steps.health.on_breach", lambda d: put(d, "ignore", "steps", "health", "on_breach")),
    ("working time without calendar", "steps.district.sla", lambda d: drop(d, "calendar")),
    ("number with two seq", "steps.licence.number", lambda d: put(d, "RST-{seq:3}-{seq:4}", "steps", "licence", "number")),
    ("number with seq:0", "steps.licence.number", lambda d: put(d, "RST-{yyyy}-{seq:0}", "steps", "licence", "number")),
    ("number in lower case", "steps.licence.number", lambda d: put(d, "rst-{seq:6}", "steps", "licence", "number")),
    ("a bad step name", "steps.District", lambda d: put(d, d["steps"].pop("district"), "steps", "District")),
    ("an empty rule", "steps.fire.when", lambda d: put(d, "  ", "steps", "fire", "when")),
    ("retries over 100", "steps.identity.retries", lambda d: put(d, 101, "steps", "identity", "retries")),
    ("a content type in upper case", "form.plan.content_types[0]",
     lambda d: put(d, {"type": "file", "content_types": ["Application/PDF"]}, "form", "plan")),
    # SPEC §2 rules the parser did not hold when the schema was written.
    ("a linkage step with an sla", "steps.identity.sla", lambda d: put(d, "P1D", "steps", "identity", "sla")),
    ("an issue step with an sla", "steps.licence.sla", lambda d: put(d, "P1D", "steps", "licence", "sla")),
    ("a payment that rejects on breach", "steps.fee.on_breach", lambda d: put(d, "reject", "steps", "fee", "on_breach")),
]

# Valid: accepted by both.
VALID = [
    ("null keys", lambda d: (put(d, None, "description"), put(d, None, "steps", "district", "title"),
                             put(d, None, "form", "seats", "label"), put(d, None, "form", "seats", "min"))),
    ("bare boolean and number rules", lambda d: (put(d, True, "steps", "fire", "when"),
                                                 put(d, 700, "steps", "fee", "amount"))),
    ("no titles, no form", lambda d: ([s.pop("title") for s in d["steps"].values()], drop(d, "title"),
                                      drop(d, "form"), put(d, [], "steps", "licence", "public_fields"),
                                      put(d, "1", "steps", "fee", "amount"),
                                      put(d, "true", "steps", "district", "auto_approve"),
                                      put(d, "true", "steps", "fire", "when"),
                                      put(d, {"citizen_id": "'x'"}, "steps", "identity", "input"))),
    ("working hours", lambda d: put(d, "1 working hour", "steps", "district", "sla")),
    ("a long ISO duration", lambda d: put(d, "P1Y2M3W4DT5H6M7S", "steps", "health", "sla")),
    ("Buddhist year first", lambda d: put(d, "RST-{bbbb}-{seq:6}", "steps", "licence", "number")),
    ("year after seq", lambda d: put(d, "RST{seq:6}-{yyyy}", "steps", "licence", "number")),
    ("a file field", lambda d: put(d, {"type": "file", "max_size": 1048576, "pii": True,
                                       "content_types": ["application/pdf", "image/jpeg"]},
                                   "form", "plan")),
]

def example_ids():
    """{file name: id} of the example definitions (every *.yaml but _setup.yaml)."""
    out = {}
    for name in sorted(os.listdir(EXAMPLES)):
        if not name.endswith(".yaml") or name == "_setup.yaml":
            continue
        with open(os.path.join(EXAMPLES, name), encoding="utf-8") as f:
            m = re.search(r"^id:\s*([a-z0-9-]+)\s*$", f.read(), re.M)
        assert m, "%s has no top-level id" % name
        out[name] = m.group(1)
    return out


class TestWorkflowSchema(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = Server(workflows_dir=EXAMPLES, extra_args=[CLOCK]).start()
        cls.tmp = tempfile.mkdtemp(prefix="osse-wfschema-")
        shutil.copy(os.path.join(EXAMPLES, "_setup.yaml"), cls.tmp)
        r = cls.server.client("").get("/v1/schema/workflow.json")
        assert r.status == 200, r
        cls.schema_path = os.path.join(cls.tmp, "schema.json")
        with open(cls.schema_path, "wb") as f:
            f.write(r.body)
        plat = cls.server.client(cls.server.admin_token())
        cls.defs = {}
        for name, wid in example_ids().items():
            r = plat.get("/v1/workflows/" + wid)
            assert r.status == 200, (name, r)
            cls.defs[name] = r.json["definition"]

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.server.stop()
            assert rc == 0, "osse exited %s on SIGTERM" % rc
        finally:
            cls.server.cleanup()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def schema_errors(self, instances):
        """For each instance, the schema's errors (empty: valid)."""
        if not os.path.exists(DEBIAN_PYTHON):
            self.fail("%s is missing: tests/deps.sh installs python3-jsonschema" % DEBIAN_PYTHON)
        path = os.path.join(self.tmp, "instances.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(instances, f)
        p = subprocess.run([DEBIAN_PYTHON, os.path.join(HERE, "schema_check.py"),
                            self.schema_path, path], capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def validate(self, name, definition):
        """`osse validate` of the definition as a JSON file beside the
        examples' _setup.yaml: (exit code, problem paths)."""
        path = os.path.join(self.tmp, name)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(definition, f, ensure_ascii=False, indent=1)
        p = subprocess.run([OSSE_BIN, "validate", "--json", path], capture_output=True,
                           text=True, timeout=60)
        os.unlink(path)
        self.assertIn(p.returncode, (0, 1), p.stderr)
        out = json.loads(p.stdout)
        probs = [pr["path"] for f in out["files"] for pr in f["problems"]]
        return p.returncode, probs

    def base(self):
        return copy.deepcopy(self.defs["food-premises-licence.yaml"])

    def test_a_setup_is_no_definition(self):
        with open(os.path.join(EXAMPLES, "_setup.yaml"), encoding="utf-8") as f:
            top = set(re.findall(r"^([a-z_]+):", f.read(), re.M))
        self.assertEqual(top, {"calendars", "agencies"})

    def test_b_examples_validate(self):
        self.assertGreaterEqual(len(self.defs), 5)
        names = sorted(self.defs)
        errs = self.schema_errors([self.defs[n] for n in names])
        for name, e in zip(names, errs):
            self.assertEqual(e, [], "%s does not validate against the schema" % name)
        p = subprocess.run([OSSE_BIN, "validate", EXAMPLES], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_c_broken_definitions_are_refused_by_both(self):
        cases = []
        for name, want, change in BROKEN:
            d = self.base()
            change(d)
            cases.append((name, want, d))
        errs = self.schema_errors([d for _, _, d in cases])
        for (name, want, d), e in zip(cases, errs):
            with self.subTest(name):
                self.assertNotEqual(e, [], "the schema accepts: " + name)
                rc, probs = self.validate("broken.json", d)
                self.assertEqual(rc, 1, "osse validate accepts: " + name)
                self.assertTrue(any(p == want or p.startswith(want + ".") for p in probs),
                                "%s: osse names %s, not %s" % (name, probs, want))

    def test_e_two_payments_or_two_licences(self):
        """SPEC §2's at most one payment and one issue step: no JSON Schema
        keyword counts values by kind, so only osse refuses them, naming the
        second step's kind."""
        for kind, step in (("payment", "fee"), ("issue", "licence")):
            with self.subTest(kind):
                d = self.base()
                d["steps"][step + "2"] = copy.deepcopy(d["steps"][step])
                self.assertEqual(self.schema_errors([d])[0], [], "the schema cannot count them")
                rc, probs = self.validate("two.json", d)
                self.assertEqual(rc, 1, "osse validate accepts two %s steps" % kind)
                self.assertIn("steps.%s2.kind" % step, probs)

    def test_d_valid_variations_are_accepted_by_both(self):
        cases = []
        for name, change in VALID:
            d = self.base()
            change(d)
            cases.append((name, d))
        # The base itself too: the variations start from a valid definition.
        cases.append(("food-premises-licence", self.base()))
        errs = self.schema_errors([d for _, d in cases])
        for (name, d), e in zip(cases, errs):
            with self.subTest(name):
                self.assertEqual(e, [], "the schema refuses: " + name)
                rc, probs = self.validate("valid.json", d)
                self.assertEqual(rc, 0, "osse validate refuses %s: %s" % (name, probs))


if __name__ == "__main__":
    main()
