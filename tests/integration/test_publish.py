"""test_publish.py: publishing definitions (SPEC §2, §4 POST /v1/workflows).

- Versions do not churn: identical content (the same tree once parsed:
  comments, key order, YAML or JSON do not matter) answers 200 with the
  existing version and writes nothing; a restart with --workflows never
  republishes content that any earlier version has, and says that it kept
  the newer one.
- A rule that can meet null where it needs a value is published with a
  warning; `??` gives a default, and the shipped restaurant example no
  longer rejects an applicant who leaves `seats` empty; `osse replay
  --recheck` re-runs rules with `??`.
- Every problem in one round: unknown agencies and calendars next to the
  others; licence number templates; a fixed text already used by another
  workflow.
- A required string of white space only is refused at submission.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time

from osse_harness import (OSSE_BIN, Server, ServerTestCase, World, good_form, main, step_of,
                          uniq)

SRC = os.environ.get("OSSE_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))


def definition(wid, agency, **extra):
    d = {"id": wid, "title": "Publish " + wid, "calendar": "th-gov",
         "form": {"name": {"type": "string", "required": True},
                  "seats": {"type": "integer", "min": 0},
                  "area": {"type": "number", "required": True}},
         "steps": {"review": {"kind": "task", "agency": agency, "sla": "2 working days",
                              "auto_approve": "form.area < 50"}}}
    d.update(extra)
    return d


def as_yaml(wid, agency):
    """definition(wid, agency) written by hand in YAML: other key order,
    comments, flow and block styles."""
    return """# the same tree as definition(), another text
steps:
  review:              # keys in another order
    auto_approve: form.area < 50
    sla: 2 working days
    agency: %s
    kind: task
form:
  area: {required: true, type: number}
  seats: {min: 0, type: integer}
  name:
    required: true
    type: string
calendar: th-gov
title: Publish %s
id: %s
""" % (agency, wid, wid)


def log_size(plat):
    r = plat.get("/v1/admin/digest")
    assert r.status == 200, r
    return r.json["size"]


class PublishTest(ServerTestCase):

    def setUp(self):
        self.w = World(self.server)
        self.plat = self.w.plat

    def post_yaml(self, text):
        return self.plat.post("/v1/workflows", raw=text, content_type="application/yaml")

    def test_identical_content_writes_nothing(self):
        wid = uniq("same")
        r = self.plat.post("/v1/workflows", definition(wid, self.w.A))
        self.assertEqual((r.status, r.json), (201, {"id": wid, "version": 1}), r)
        size = log_size(self.plat)
        # The same JSON, the same tree in YAML with comments and another key
        # order: 200 with version 1, nothing written.
        for again in (lambda: self.plat.post("/v1/workflows", definition(wid, self.w.A)),
                      lambda: self.post_yaml(as_yaml(wid, self.w.A))):
            r = again()
            self.assertEqual((r.status, r.json), (200, {"id": wid, "version": 1}), r)
        time.sleep(0.1)
        self.assertEqual(log_size(self.plat), size, "an unchanged definition wrote events")
        r = self.plat.get("/v1/workflows/" + wid)
        self.assertEqual(r.json["version"], 1, r)
        # A change is a new version; publishing the older content again
        # through the API is a deliberate revert: one more version.
        changed = definition(wid, self.w.A, title="Changed")
        r = self.plat.post("/v1/workflows", changed)
        self.assertEqual((r.status, r.json["version"]), (201, 2), r)
        r = self.post_yaml(as_yaml(wid, self.w.A))
        self.assertEqual((r.status, r.json["version"]), (201, 3), r)
        r = self.plat.post("/v1/workflows", definition(wid, self.w.A))
        self.assertEqual((r.status, r.json), (200, {"id": wid, "version": 3}), r)

    def test_idempotent_unchanged_publish(self):
        wid = uniq("idem")
        body = definition(wid, self.w.A)
        r = self.plat.post("/v1/workflows", body, headers={"Idempotency-Key": wid})
        self.assertEqual(r.status, 201, r)
        r = self.plat.post("/v1/workflows", body, headers={"Idempotency-Key": wid + "-2"})
        self.assertEqual((r.status, r.json), (200, {"id": wid, "version": 1}), r)

    def test_warning_for_an_optional_field_in_a_rule(self):
        wid = uniq("warn")
        d = definition(wid, self.w.A)
        d["steps"]["fee"] = {"kind": "payment", "after": ["review"],
                             "amount": "500 + 2 * form.seats"}
        r = self.plat.post("/v1/workflows", d)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(set(r.json), {"id", "version", "warnings"}, r)
        self.assertEqual(r.json["warnings"], [{
            "path": "steps.fee.amount",
            "message": "column 11: form.seats may be null (the field is optional) and '*' "
                       "needs a value: give a default, as in (form.seats ?? 0)"}])
        # The default silences it; so does a guard.
        d["steps"]["fee"]["amount"] = "500 + 2 * (form.seats ?? 0)"
        d["steps"]["review"]["auto_approve"] = "form.seats != null && form.seats < 10"
        r = self.plat.post("/v1/workflows", d)
        self.assertEqual((r.status, set(r.json)), (201, {"id", "version"}), r)
        # The seats left empty: the fee is 500.00, not a failed step.
        rid = self.w.submit(wid, form={"name": "Noodles", "area": 80})["id"]
        self.w.decide(rid, "review", "approve")
        v = self.w.view(rid)
        self.assertEqual((v["status"], v["fee"]["amount"]), ("awaiting_payment", "500.00"), v)

    def test_every_problem_in_one_round(self):
        wid = uniq("round")
        d = definition(wid, "no-such-agency", calendar="no-such-calendar")
        d["form"]["name"]["type"] = "strin"
        d["steps"]["review"]["on_breach"] = {"escalate": "nobody-either"}
        d["steps"]["lic"] = {"kind": "issue", "after": ["review"], "number": "FT-{seq:x}-{foo}"}
        r = self.plat.post("/v1/workflows", d)
        self.assertEqual(r.status, 422, r)
        got = {(e["path"], e["message"]) for e in r.json["error"]["details"]}
        self.assertEqual(got, {
            ("form.name.type", "must be one of string, integer, number, boolean, date, enum, "
                               "citizen_id, file"),
            ("calendar", "unknown calendar no-such-calendar"),
            ("steps.review.agency", "unknown agency no-such-agency"),
            ("steps.review.on_breach.escalate", "unknown agency nobody-either"),
            ("steps.lic.number", "{seq:x}: N of {seq:N} must be a digit from 1 to 9"),
            ("steps.lic.number", "{foo} is not a placeholder: use {yyyy}, {bbbb} or {seq:N}"),
        }, r)
        self.assertEqual(r.json["error"]["message"], "the definition has 6 problem(s)")

    def test_working_time_needs_a_calendar(self):
        d = definition(uniq("nocal"), self.w.A)
        del d["calendar"]
        r = self.plat.post("/v1/workflows", d)
        self.assertEqual(r.status, 422, r)
        self.assertEqual(r.json["error"]["details"], [
            {"path": "steps.review.sla", "message": "working time needs the workflow's calendar"}])

    def test_licence_number_fixed_text_is_unique(self):
        tag = uniq("N").upper().replace("-", "")
        a, b = uniq("lic-a"), uniq("lic-b")
        for wid, status in ((a, 201), (b, 422)):
            d = definition(wid, self.w.A)
            d["steps"]["lic"] = {"kind": "issue", "after": ["review"],
                                 "number": tag + "-{yyyy}-{seq:5}"}
            r = self.plat.post("/v1/workflows", d)
            self.assertEqual(r.status, status, r)
        self.assertEqual(r.json["error"]["details"], [{
            "path": "steps.lic.number",
            "message": "workflow %s already issues numbers with the fixed text \"%s--\": a "
                       "number must name one licence" % (a, tag)}])
        # Its own workflow's next version may keep its template.
        d = definition(a, self.w.A, title="v2")
        d["steps"]["lic"] = {"kind": "issue", "after": ["review"], "number": tag + "-{seq:6}"}
        self.assertEqual(self.plat.post("/v1/workflows", d).status, 201)

    def test_blank_required_string_is_refused(self):
        wid = uniq("blank")
        self.plat.post("/v1/workflows", definition(wid, self.w.A))
        for blank in ("   ", "\t\n", "\u3000\u00a0"):
            r = self.w.portal.post("/v1/requests", {"workflow": wid,
                                                    "form": {"name": blank, "area": 10}})
            self.assertEqual(r.status, 422, r)
            self.assertEqual(r.json["error"]["code"], "invalid_form", r)
            self.assertEqual(r.json["error"]["details"], [
                {"path": "form.name", "message": "is required (it holds only white space)"}])
        r = self.w.portal.post("/v1/requests", {"workflow": wid,
                                                "form": {"name": " Noodles ", "area": 10}})
        self.assertEqual(r.status, 201, r)


class RestartTest(ServerTestCase):
    """--workflows at start never republishes an earlier version's content."""

    @classmethod
    def setUpClass(cls):
        cls.wfdir = tempfile.mkdtemp(prefix="osse-publish-wf-")
        with open(os.path.join(cls.wfdir, "_setup.yaml"), "w") as f:
            f.write("calendars:\n  th-gov: {utc_offset: \"+07:00\", workdays: [mon, tue, wed, "
                    "thu, fri], hours: [\"08:30\", \"16:30\"]}\n"
                    "agencies:\n  dbd: {name: DBD}\n")
        with open(os.path.join(cls.wfdir, "shop.yaml"), "w") as f:
            f.write(as_yaml("shop", "dbd"))
        cls.server = Server(workflows_dir=cls.wfdir).start()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.wfdir, ignore_errors=True)

    def restart(self):
        self.assertEqual(self.server.stop(), 0)
        self.server.start()
        return self.server.client(self.server.admin_token())

    def test_restart_keeps_the_api_version(self):
        plat = self.server.client(self.server.admin_token())
        self.assertEqual(plat.get("/v1/workflows/shop").json["version"], 1)
        r = plat.post("/v1/workflows", definition("shop", "dbd", title="Through the API"))
        self.assertEqual((r.status, r.json["version"]), (201, 2), r)
        size = log_size(plat)
        plat = self.restart()
        r = plat.get("/v1/workflows/shop")
        self.assertEqual((r.json["version"], r.json["title"]), (2, "Through the API"), r)
        self.assertEqual(log_size(plat), size, "the restart wrote events")
        self.assertRegex(self.server.stderr_tail(20),
                         r'msg="workflow kept: a later version came through the API" '
                         r'file=\S*shop.yaml workflow=shop version=2 file_is_version=1')
        # Unchanged again, and said so.
        plat = self.restart()
        self.assertEqual(log_size(plat), size)
        # The file's own new content is published.
        with open(os.path.join(self.wfdir, "shop.yaml"), "w") as f:
            f.write(as_yaml("shop", "dbd").replace("title: Publish shop", "title: New file"))
        plat = self.restart()
        r = plat.get("/v1/workflows/shop")
        self.assertEqual((r.json["version"], r.json["title"]), (3, "New file"), r)
        self.assertRegex(self.server.stderr_tail(20),
                         r'msg="workflow loaded" file=\S*shop.yaml workflow=shop version=3 '
                         r'changed=true')
        plat = self.restart()
        self.assertRegex(self.server.stderr_tail(20),
                         r'msg="workflow loaded" file=\S*shop.yaml workflow=shop version=3 '
                         r'changed=false')


class ExampleTest(ServerTestCase):
    """The shipped workflows/ folder: the restaurant fee without seats, and a
    recheck of rules that use ??."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server(workflows_dir=os.path.join(SRC, "examples", "workflows")).start()

    def test_restaurant_without_seats_and_recheck(self):
        plat = self.server.client(self.server.admin_token())
        r = plat.post("/v1/principals", {"role": "agency", "agency": "bma-health",
                                         "name": "health"})
        health = self.server.client(r.json["token"])
        portal = self.server.client(plat.post("/v1/principals", {"role": "portal",
                                                                 "name": "p"}).json["token"])
        form = good_form(area_sqm=40)
        del form["seats"]
        r = portal.post("/v1/requests", {"workflow": "restaurant-license", "form": form})
        self.assertEqual(r.status, 201, r)
        rid = r.json["id"]
        r = health.post("/v1/tasks/%s/health/decision" % rid, {"outcome": "approve"})
        self.assertEqual(r.status, 200, r)
        v = plat.get("/v1/requests/" + rid).json
        self.assertEqual((v["status"], step_of(v, "fee")["state"]),
                         ("awaiting_payment", "open"), v)
        self.assertEqual(v["fee"]["amount"], "500.00", v)
        evs = plat.get("/v1/requests/%s/events" % rid).json["events"]
        due = [e for e in evs if e["type"] == "PaymentDue"][0]["data"]
        self.assertEqual((due["rule"], due["inputs"], due["amount_satang"]),
                         ("500 + 2 * (form.seats ?? 0)", {"form.seats": None}, 50000), due)
        # A rule with ?? that decides: TaskAutoApproved records it.
        r = plat.put("/v1/agencies/nl-agency", {"name": "N"})
        d = {"id": "nullish", "form": {"seats": {"type": "integer"}},
             "steps": {"t": {"kind": "task", "agency": "nl-agency",
                             "auto_approve": "(form.seats ?? 0) < 10"}}}
        self.assertEqual(plat.post("/v1/workflows", d).status, 201)
        rid2 = portal.post("/v1/requests", {"workflow": "nullish", "form": {}}).json["id"]
        self.assertEqual(plat.get("/v1/requests/" + rid2).json["status"], "completed")
        time.sleep(0.2)
        out = subprocess.run([OSSE_BIN, "replay", "--data", self.server.data_dir, "--recheck"],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("recheck: 0 difference(s)", out.stdout.splitlines(), out.stdout)
        live = plat.get("/v1/admin/digest").json
        self.assertEqual(out.stdout.strip().splitlines()[-1], live["digest"], out.stdout)


if __name__ == "__main__":
    main()
