"""test_validate.py: `osse validate` (SPEC §2), the real binary on temp folders.

What a CI job relies on: one `file:line:column: path: message` line per
problem, the line and column of the offending key or value, exit 0 when
every file is fine (warnings allowed), 1 when one has a problem, 2 on usage
errors; references checked against the `_setup.yaml` beside the files (and
that file checked as PUT /v1/calendars and PUT /v1/agencies check bodies);
`--json` for tools; and, above all, exactly the server's checks: the same
problems as `POST /v1/workflows` answers for the same text, references
included, in one round.
"""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

from osse_harness import OSSE_BIN, Server, main

SRC = os.environ.get("OSSE_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))

SETUP = """\
# the catalog the definitions below may name
calendars:
  th-gov:
    utc_offset: "+07:00"
    workdays: [mon, tue, wed, thu, fri]
    hours: ["08:30", "16:30"]
    holidays: ["2026-12-07"]
agencies:
  dbd: {name: Department of Business Development}
  fire-dept: {name: Fire department}
"""

# Line numbers matter: the tests below name them.
BROKEN = """\
id: broken
title: Broken on purpose
form:
  seats: {type: integer}
  area: {type: number, required: true}
steps:
  review:
    kind: task
    agency: nobody
    sla: 2 working days
  fee:
    kind: payment
    after: [review]
    amount: 500 + 2 * form.seats
  licence:
    kind: issue
    after: [fee]
    number: FT-{seq:x}-{foo}
"""

BROKEN_LINES = [
    "broken.yaml:9:13: steps.review.agency: unknown agency nobody",
    "broken.yaml:10:10: steps.review.sla: working time needs the workflow's calendar",
    "broken.yaml:18:13: steps.licence.number: {seq:x}: N of {seq:N} must be a digit from 1 to 9",
    "broken.yaml:18:13: steps.licence.number: {foo} is not a placeholder: use {yyyy}, {bbbb} "
    "or {seq:N}",
    # the file column of the spot in the rule (13 + 11 - 1), the rule's own column in the message
    "broken.yaml:14:23: warning: steps.fee.amount: column 11: form.seats may be null (the field "
    "is optional) and '*' needs a value: give a default, as in (form.seats ?? 0)",
]

# Many problems of the compile itself, and an unknown calendar and escalation.
MANY = """\
id: Many_Problems
calendar: nowhere
form:
  name: {type: strin}
  n: {type: integer, min: 5, max: 1}
steps:
  a:
    kind: task
    agency: dbd
    after: [zz]
    when: form.nope > 1
    on_breach: {escalate: ghost}
    sla: P1D
  b:
    kind: linkage
    agency: fire-dept
    sla: P1D
"""

GOOD = """\
id: good-one
calendar: th-gov
form:
  area: {type: number, required: true}
steps:
  review: {kind: task, agency: dbd, sla: 2 working days, auto_approve: form.area < 50}
"""

GOOD_JSON = json.dumps({
    "id": "good-json", "calendar": "th-gov",
    "form": {"seats": {"type": "integer"}},
    "steps": {"check": {"kind": "task", "agency": "fire-dept",
                        "when": "(form.seats ?? 0) > 10"}}}, indent=1)


def run(args, stdin=None, cwd=None):
    return subprocess.run([os.path.abspath(OSSE_BIN), "validate"] + list(args), input=stdin, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


class ValidateTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="osse-validate-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, text, sub=None):
        d = os.path.join(self.dir, sub) if sub else self.dir
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
        return os.path.join(d, name)

    def lines(self, p):
        return p.stdout.splitlines()

    def test_lines_and_exit_code(self):
        self.write("_setup.yaml", SETUP)
        self.write("broken.yaml", BROKEN)
        self.write("good.yaml", GOOD)
        self.write("notes.txt", "not a definition")
        self.write("_draft.yaml", "id: [")  # set aside, as serve --workflows does
        p = run(["."], cwd=self.dir)
        self.assertEqual(p.returncode, 1, p)
        self.assertEqual(self.lines(p), ["./" + l for l in BROKEN_LINES], p.stdout)
        self.assertIn("3 file(s) checked, 1 with problems, 1 warning(s)", p.stderr)
        # The same file on its own, by its path: the setup beside it counts.
        p = run([os.path.join(self.dir, "broken.yaml")])
        self.assertEqual(p.returncode, 1, p)
        self.assertEqual(self.lines(p), [os.path.join(self.dir, l) for l in BROKEN_LINES])
        p = run(["good.yaml"], cwd=self.dir)
        self.assertEqual((p.returncode, p.stdout), (0, ""), p)

    def test_same_problems_as_the_server(self):
        """Every problem validate finds, the server finds for the same text, and
        the other way round, references included and in the same round."""
        self.write("_setup.yaml", SETUP)
        files = {"broken.yaml": BROKEN, "many.yaml": MANY, "good.yaml": GOOD,
                 "good.json": GOOD_JSON}
        for name, text in files.items():
            self.write(name, text)
        p = run(["--json", self.dir])
        self.assertEqual(p.returncode, 1, p)
        doc = json.loads(p.stdout)
        by_name = {os.path.basename(f["file"]): f for f in doc["files"]}
        # The server loads the same _setup.yaml from a folder without definitions.
        wfdir = tempfile.mkdtemp(prefix="osse-validate-setup-")
        shutil.copy(os.path.join(self.dir, "_setup.yaml"), wfdir)
        srv = Server(workflows_dir=wfdir).start()
        try:
            plat = srv.client(srv.admin_token())
            for name, text in files.items():
                ctype = "application/json" if name.endswith(".json") else "application/yaml"
                r = plat.post("/v1/workflows", raw=text, content_type=ctype)
                got = by_name[name]
                mine = sorted((d["path"], d["message"]) for d in got["problems"])
                if got["ok"]:
                    self.assertEqual(r.status, 201, (name, r))
                    theirs_w = sorted((w["path"], w["message"])
                                      for w in r.json.get("warnings", []))
                    self.assertEqual(sorted((w["path"], w["message"]) for w in got["warnings"]),
                                     theirs_w, name)
                    continue
                self.assertEqual(r.status, 422, (name, r))
                theirs = sorted((d["path"], d["message"]) for d in r.json["error"]["details"])
                self.assertEqual(mine, theirs, name)
            self.assertGreaterEqual(len(by_name["many.yaml"]["problems"]), 7)
            paths = {d["path"] for d in by_name["many.yaml"]["problems"]}
            self.assertTrue({"calendar", "steps.a.on_breach.escalate", "id",
                             "form.name.type"} <= paths, paths)
        finally:
            srv.stop()
            srv.cleanup()
            shutil.rmtree(wfdir, ignore_errors=True)

    def test_setup_is_checked_like_put(self):
        bad_setup = ("calendars:\n"
                     "  th-gov:\n"
                     "    utc_offset: \"+07:00\"\n"
                     "    workdays: [mon, funday]\n"
                     "    hours: [\"08:30\", \"16:30\"]\n"
                     "agencies:\n"
                     "  dbd: {name: DBD, colour: red}\n"
                     "  fire-dept: {webhook_url: \"ftp://x\"}\n"
                     "places: {}\n")
        self.write("_setup.yaml", bad_setup)
        self.write("good.yaml", GOOD)
        p = run(["--json", self.dir])
        self.assertEqual(p.returncode, 1, p)
        doc = json.loads(p.stdout)
        setup = [f for f in doc["files"] if f["kind"] == "setup"][0]
        self.assertFalse(setup["ok"])
        good = [f for f in doc["files"] if f["kind"] == "workflow"][0]
        self.assertTrue(good["ok"], good)
        self.assertTrue(good["references_checked"])
        mine = sorted((d["path"], d["message"]) for d in setup["problems"])
        # The server's PUT answers, with the entry's path in front.
        srv = Server().start()
        try:
            plat = srv.client(srv.admin_token())
            want = [("places", "unknown key (a setup has calendars and agencies)")]
            bodies = [("calendars", "th-gov", {"utc_offset": "+07:00",
                                               "workdays": ["mon", "funday"],
                                               "hours": ["08:30", "16:30"]}),
                      ("agencies", "dbd", {"name": "DBD", "colour": "red"}),
                      ("agencies", "fire-dept", {"webhook_url": "ftp://x"})]
            for section, ident, body in bodies:
                r = plat.put("/v1/%s/%s" % (section, ident), body)
                self.assertEqual(r.status, 422, r)
                for d in r.json["error"]["details"]:
                    want.append(("%s.%s.%s" % (section, ident, d["path"]), d["message"]))
            self.assertEqual(mine, sorted(want))
        finally:
            srv.stop()
            srv.cleanup()
        p = run([self.dir])
        lines = self.lines(p)
        setup_path = os.path.join(self.dir, "_setup.yaml")
        self.assertIn("%s:4:21: calendars.th-gov.workdays[1]: %s" % (
            setup_path, [m for pth, m in mine if pth == "calendars.th-gov.workdays[1]"][0]),
            lines)
        self.assertIn("%s:7:28: agencies.dbd.colour: unknown field" % setup_path, lines)
        self.assertIn("%s:9:1: places: unknown key (a setup has calendars and agencies)"
                      % setup_path, lines)

    def test_without_setup_references_are_not_checked(self):
        self.write("a.yaml", BROKEN.replace("agency: nobody", "agency: anyone"))
        p = run([self.dir])
        self.assertEqual(p.returncode, 1, p)
        self.assertIn("no _setup.yaml beside", p.stderr)
        self.assertNotIn("unknown agency", p.stdout)
        self.assertIn("steps.review.sla: working time needs the workflow's calendar", p.stdout)
        # A definition that is fine but for references it cannot see passes.
        self.write("b.yaml", GOOD.replace("agency: dbd", "agency: somebody"), sub="only")
        p = run([os.path.join(self.dir, "only")])
        self.assertEqual((p.returncode, p.stdout), (0, ""), p)
        self.assertIn("note: no _setup.yaml", p.stderr)
        doc = json.loads(run(["--json", os.path.join(self.dir, "only")]).stdout)
        self.assertEqual(doc["files"][0]["references_checked"], False)

    def test_warnings_alone_exit_0(self):
        self.write("_setup.yaml", SETUP)
        self.write("w.yaml", GOOD.replace("auto_approve: form.area < 50",
                                          "auto_approve: form.seats < 50")
                   .replace("  area: {type: number, required: true}",
                            "  seats: {type: integer}"))
        p = run([self.dir])
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(self.lines(p), [
            os.path.join(self.dir, "w.yaml") + ":6:72: warning: steps.review.auto_approve: "
            "column 1: form.seats may be null (the field is optional) and '<' needs a value: "
            "give a default, as in (form.seats ?? 0)"])

    def test_stdin_and_setup_option(self):
        setup = self.write("_setup.yaml", SETUP)
        p = run(["-"], stdin=BROKEN)
        self.assertEqual(p.returncode, 1, p)
        self.assertIn("<stdin>:10:10: steps.review.sla: working time needs the workflow's "
                      "calendar", self.lines(p))
        self.assertNotIn("unknown agency", p.stdout)
        self.assertIn("note: no _setup.yaml", p.stderr)
        p = run(["--setup", setup, "-"], stdin=BROKEN)
        self.assertEqual(p.returncode, 1, p)
        self.assertEqual(self.lines(p), [l.replace("broken.yaml", "<stdin>")
                                         for l in BROKEN_LINES])
        p = run(["-"], stdin=GOOD_JSON)
        self.assertEqual((p.returncode, p.stdout), (0, ""), p)

    def test_rule_problems_point_into_the_rule(self):
        """A problem inside a one-line rule is placed at its spot in the file
        (quoted, plain, or the one line of a block scalar)."""
        self.write("_setup.yaml", SETUP)
        self.write("r.yaml", 'id: r\ntitle: R\nform:\n  a: {type: integer}\nsteps:\n'
                   '  s1:\n    kind: task\n    agency: dbd\n'
                   '    when: "1 + form.a > 3 && form.zz"\n'
                   '    auto_approve: form.a > 3 || form.yy\n'
                   '  s2:\n    kind: task\n    agency: dbd\n    when: >-\n'
                   '      form.a == 1 || form.xx\n')
        p = run(["r.yaml"], cwd=self.dir)
        self.assertEqual(p.returncode, 1, p)
        self.assertEqual(self.lines(p)[:3], [
            "r.yaml:9:30: steps.s1.when: column 19: unknown field form.zz",
            "r.yaml:10:33: steps.s1.auto_approve: column 15: unknown field form.yy",
            "r.yaml:15:22: steps.s2.when: column 16: unknown field form.xx"], p.stdout)
        # JSON (flow style, where the parser marks the first character inside
        # the quotes), on one long line.
        text = json.dumps({"id": "j", "title": "J", "form": {"a": {"type": "integer"}},
                           "steps": {"s%d" % i: {"kind": "task", "agency": "dbd",
                                                 "when": " " * 200 + "form.zz > 1"}
                                     for i in range(3)}})
        self.write("j.json", text)
        p = run(["j.json"], cwd=self.dir)
        at = [i + 1 for i in range(len(text)) if text.startswith("form.zz", i)]
        self.assertEqual(self.lines(p), ["j.json:1:%d: steps.s%d.when: column 201: unknown field "
                                         "form.zz" % (c, i) for i, c in enumerate(at)], p.stdout)

    def test_syntax_errors_have_a_place(self):
        self.write("bad.yaml", "id: t\nsteps:\n  a: {kind: task\n")
        self.write("dup.yaml", "id: t\nid: u\n")
        p = run([self.dir])
        self.assertEqual(p.returncode, 1, p)
        lines = self.lines(p)
        self.assertEqual(len(lines), 2, lines)
        self.assertTrue(lines[0].startswith(os.path.join(self.dir, "bad.yaml") + ":4:1: "),
                        lines)
        self.assertEqual(lines[1], os.path.join(self.dir, "dup.yaml") +
                         ":2:1: duplicate key \"id\"")

    def test_json_document(self):
        self.write("_setup.yaml", SETUP)
        self.write("broken.yaml", BROKEN)
        self.write("good.json", GOOD_JSON)
        p = run(["--json", self.dir])
        self.assertEqual(p.returncode, 1, p)
        doc = json.loads(p.stdout)
        self.assertEqual(doc["ok"], False)
        self.assertEqual([(os.path.basename(f["file"]), f["kind"], f["ok"], f["id"])
                          for f in doc["files"]],
                         [("_setup.yaml", "setup", True, None),
                          ("broken.yaml", "workflow", False, "broken"),
                          ("good.json", "workflow", True, "good-json")])
        broken = doc["files"][1]
        self.assertEqual(set(broken), {"file", "kind", "id", "ok", "references_checked",
                                       "problems", "warnings"})
        self.assertEqual(broken["problems"][0], {
            "path": "steps.review.agency", "message": "unknown agency nobody",
            "line": 9, "column": 13})
        self.assertEqual([(w["path"], w["line"], w["column"]) for w in broken["warnings"]],
                         [("steps.fee.amount", 14, 23)])
        p = run(["--json", os.path.join(self.dir, "good.json")])
        self.assertEqual(p.returncode, 0, p)
        self.assertEqual(json.loads(p.stdout)["ok"], True)

    def test_usage_errors(self):
        self.assertEqual(run([]).returncode, 2)
        self.assertEqual(run(["--bogus", self.dir]).returncode, 2)
        p = run([os.path.join(self.dir, "missing.yaml")])
        self.assertEqual(p.returncode, 2, p)
        self.assertIn("missing.yaml", p.stderr)
        self.assertEqual(run([self.dir]).returncode, 2)  # nothing to check
        self.assertEqual(run(["--setup", os.path.join(self.dir, "nope.yaml"), "-"],
                             stdin=GOOD).returncode, 2)

    def test_shipped_examples(self):
        p = run([os.path.join(SRC, "examples", "workflows")])
        self.assertEqual((p.returncode, p.stdout), (0, ""), p)
        self.assertIn("0 with problems, 0 warning(s)", p.stderr)


if __name__ == "__main__":
    main()
