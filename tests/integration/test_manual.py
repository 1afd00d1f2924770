"""test_manual.py: the public service manual (SPEC §12) over real HTTP.

GET /v1/public/services and GET /v1/public/services/{id} are answered to
anyone, without a token, from the latest version of each definition. Every
server here starts with --test-clock=2030-01-07T09:00:00+07:00 (a Monday); the
manual does not depend on the clock at all, but no server in the suite runs
on the machine's.

What is checked:
- the manual of SPEC §2's example (written here as YAML, with labels and
  titles): max_working_days 15 and max_other ["P30D"]; steps in `after`
  order with agencies' names, SLAs, `when` texts and on_breach; fields with
  labels, types, pii marks and values; the fee's expression and the fields
  it reads; description and legal basis;
- a longest path that mixes working hours and days, converted at the
  calendar's hours a day (8 on th-gov, 4 on a half-day calendar);
- a tie in working days broken by wall-clock time, and working days
  winning over wall-clock time; ties in step order broken by definition
  order;
- the services list; 404 for an unknown id; no token needed; a newer
  version changes the manual and the list;
- the definition keys the manual reads (label, title, description,
  legal_basis, max_size, content_types) are type-checked at publish and by
  `osse validate`, unknown keys stay errors, and a refused definition
  changes nothing;
- each shipped example of examples/workflows (loaded at start as the
  README's run command loads them) has a manual computed without error.

Python standard library only.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (OSSE_BIN, TH_GOV, Server, ServerTestCase, assert_error,  # noqa: E402
                          detail_paths, main, uniq)

SRC = os.environ.get("OSSE_SRC") or os.path.join(os.path.dirname(__file__), "..", "..")
CLOCK = "--test-clock=2030-01-07T09:00:00+07:00"

AGENCIES = {
    "dopa": "กรมการปกครอง",
    "dbd": "กรมพัฒนาธุรกิจการค้า",
    "bma-health": "สำนักอนามัย กรุงเทพมหานคร",
    "bma-director": "ผู้อำนวยการสำนักอนามัย",
    "fire-dept": "สำนักป้องกันและบรรเทาสาธารณภัย",
}

# SPEC §2's example, with the keys of the manual added.
SPEC_EXAMPLE = """\
id: %(id)s
title: Restaurant (food premises) licence
description: ขออนุญาตเปิดร้านอาหาร
legal_basis: พระราชบัญญัติการสาธารณสุข พ.ศ. 2535
calendar: th-gov
form:
  applicant_id:  {type: citizen_id, required: true, pii: true, label: เลขประจำตัวประชาชน}
  applicant_name: {type: string, required: true, pii: true, max_length: 200, label: ชื่อผู้ขอ}
  business_name: {type: string, required: true, label: ชื่อร้าน}
  area_sqm:      {type: number, required: true, min: 1}
  seats:         {type: integer, min: 0}
  district:      {type: enum, values: [bang-rak, pathum-wan, khlong-toei]}
  opening_date:  {type: date}
  plan:          {type: file, max_size: 1048576, content_types: [application/pdf]}
steps:
  identity:
    kind: linkage
    title: ตรวจสอบตัวตน
    agency: dopa
    input: {citizen_id: form.applicant_id}
    require: data.identity.alive == true
    timeout: PT10S
    retries: 5
  commerce:
    kind: task
    agency: dbd
    after: [identity]
    sla: 1 working day
    auto_approve: form.area_sqm <= 50 && data.identity.alive == true
  health:
    kind: task
    agency: bma-health
    after: [identity]
    sla: 15 working days
    on_breach: {escalate: bma-director}
  fire:
    kind: task
    agency: fire-dept
    after: [identity]
    when: form.area_sqm > 200
    sla: 10 working days
    on_breach: approve
  fee:
    kind: payment
    after: [commerce, health, fire]
    amount: 500 + 2 * (form.seats ?? 0)
    sla: P30D
    on_breach: expire
  licence:
    kind: issue
    after: [fee]
    number: %(number)s
    valid_for: P1Y
    public_fields: [business_name, district]
"""


def example_yaml(wid):
    # Each workflow's licence numbers need fixed text of their own.
    return SPEC_EXAMPLE % {"id": wid, "number": "R%s-{yyyy}-{seq:6}" % wid.upper()}


class ManualTest(ServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=[CLOCK]).start()
        plat = cls.server.client(cls.server.admin_token())
        assert plat.put("/v1/calendars/th-gov", TH_GOV).status in (200, 201)
        half = dict(TH_GOV, hours=["08:00", "12:00"])
        assert plat.put("/v1/calendars/half-day", half).status in (200, 201)
        for aid, name in AGENCIES.items():
            assert plat.put("/v1/agencies/" + aid, {"name": name}).status in (200, 201)
        cls.plat = plat
        cls.anon = cls.server.client("")

    def publish_yaml(self, text):
        return self.plat.post("/v1/workflows", raw=text, content_type="application/yaml")

    def publish(self, d):
        r = self.plat.post("/v1/workflows", d)
        self.assertIn(r.status, (200, 201), r)
        return r.json

    def manual(self, wid):
        r = self.anon.get("/v1/public/services/" + wid)
        self.assertEqual(r.status, 200, r)
        return r.json

    def test_spec_example(self):
        wid = uniq("rst")
        r = self.publish_yaml(example_yaml(wid))
        self.assertEqual(r.status, 201, r)
        m = self.manual(wid)
        self.assertEqual((m["id"], m["version"], m["title"]),
                         (wid, 1, "Restaurant (food premises) licence"))
        self.assertEqual((m["description"], m["legal_basis"]),
                         ("ขออนุญาตเปิดร้านอาหาร", "พระราชบัญญัติการสาธารณสุข พ.ศ. 2535"))
        self.assertEqual(m["max_working_days"], 15)
        self.assertIsInstance(m["max_working_days"], int)
        self.assertEqual(m["max_other"], ["P30D"])
        self.assertEqual([s["name"] for s in m["steps"]],
                         ["identity", "commerce", "health", "fire", "fee", "licence"])
        by = {s["name"]: s for s in m["steps"]}
        self.assertEqual(by["identity"], {"name": "identity", "title": "ตรวจสอบตัวตน",
                                          "kind": "linkage", "agency": "กรมการปกครอง",
                                          "sla": None, "when": None, "on_breach": None})
        self.assertEqual(by["health"]["on_breach"], {"escalate": "ผู้อำนวยการสำนักอนามัย"})
        self.assertEqual((by["health"]["agency"], by["health"]["sla"], by["health"]["title"]),
                         ("สำนักอนามัย กรุงเทพมหานคร", "15 working days", None))
        self.assertEqual((by["fire"]["when"], by["fire"]["on_breach"]),
                         ("form.area_sqm > 200", "approve"))
        self.assertEqual(by["commerce"]["on_breach"], "notify")  # the default
        self.assertEqual((by["fee"]["kind"], by["fee"]["agency"], by["fee"]["sla"],
                          by["fee"]["on_breach"]), ("payment", None, "P30D", "expire"))
        self.assertEqual(m["fee"], {"expression": "500 + 2 * (form.seats ?? 0)",
                                    "fields": ["seats"]})
        f = {x["name"]: x for x in m["fields"]}
        self.assertEqual(list(f), ["applicant_id", "applicant_name", "business_name", "area_sqm",
                                   "seats", "district", "opening_date", "plan"])
        self.assertEqual(f["applicant_id"], {
            "name": "applicant_id", "label": "เลขประจำตัวประชาชน", "type": "citizen_id",
            "required": True, "pii": True, "values": None, "content_types": None,
            "max_size": None})
        self.assertEqual((f["business_name"]["label"], f["business_name"]["pii"]),
                         ("ชื่อร้าน", False))
        self.assertEqual((f["seats"]["label"], f["seats"]["required"]), (None, False))
        self.assertEqual(f["district"]["values"], ["bang-rak", "pathum-wan", "khlong-toei"])
        self.assertEqual((f["plan"]["type"], f["plan"]["content_types"], f["plan"]["max_size"]),
                         ("file", ["application/pdf"], 1048576))
        # The list entry of the same workflow.
        lst = {s["id"]: s for s in self.anon.get("/v1/public/services").json["services"]}
        self.assertEqual(lst[wid], {
            "id": wid, "version": 1, "title": "Restaurant (food premises) licence",
            "agencies": ["กรมการปกครอง", "กรมพัฒนาธุรกิจการค้า", "สำนักอนามัย กรุงเทพมหานคร",
                         "สำนักป้องกันและบรรเทาสาธารณภัย"],
            "max_working_days": 15,
            "fee": {"expression": "500 + 2 * (form.seats ?? 0)", "fields": ["seats"]}})

    def test_working_hours_and_days_mixed(self):
        # a (12 working hours) -> b (1 working day) is 2.5 days at 8 hours a
        # day and beats c (2 working days); d's wall-clock SLA is off the path.
        wid = uniq("mix")
        self.publish({"id": wid, "calendar": "th-gov", "steps": {
            "c": {"kind": "task", "agency": "dbd", "sla": "2 working days"},
            "a": {"kind": "task", "agency": "dbd", "sla": "12 working hours"},
            "b": {"kind": "task", "agency": "dbd", "after": ["a"], "sla": "1 working day"},
            "d": {"kind": "task", "agency": "dbd", "after": ["c"], "sla": "PT1H"}}})
        m = self.manual(wid)
        self.assertEqual((m["max_working_days"], m["max_other"]), (2.5, []), m)
        self.assertEqual([s["name"] for s in m["steps"]], ["c", "a", "b", "d"])
        self.assertIsNone(m["fee"])
        # On a calendar of 4 hours a day, 6 working hours are 1.5 days.
        wid = uniq("half")
        self.publish({"id": wid, "calendar": "half-day", "steps": {
            "a": {"kind": "task", "agency": "dbd", "sla": "6 working hours"},
            "b": {"kind": "task", "agency": "dbd", "after": ["a"], "sla": "1 working day"}}})
        self.assertEqual(self.manual(wid)["max_working_days"], 2.5)

    def test_tie_broken_by_wall_clock_time(self):
        # Two paths of 5 working days: the one with more wall-clock time (P3D
        # over PT48H) is the longest, though the other comes first. A path
        # with far more wall-clock time but fewer working days never is.
        wid = uniq("tie")
        self.publish({"id": wid, "calendar": "th-gov", "steps": {
            "x": {"kind": "task", "agency": "dbd", "sla": "5 working days"},
            "p": {"kind": "task", "agency": "dbd", "after": ["x"], "sla": "PT48H"},
            "y": {"kind": "task", "agency": "dbd", "sla": "5 working days"},
            "q": {"kind": "task", "agency": "dbd", "after": ["y"], "sla": "P3D"},
            "z": {"kind": "task", "agency": "dbd", "sla": "4 working days"},
            "w": {"kind": "task", "agency": "dbd", "after": ["z"], "sla": "P30D"},
            "end": {"kind": "task", "agency": "dbd", "after": ["p", "q", "w"],
                    "sla": "PT1H"}}})
        m = self.manual(wid)
        self.assertEqual((m["max_working_days"], m["max_other"]), (5, ["P3D", "PT1H"]), m)

    def test_step_order_respects_after_ties_in_definition_order(self):
        wid = uniq("ord")
        self.publish({"id": wid, "steps": {
            "late": {"kind": "task", "agency": "dbd", "after": ["early"]},
            "early": {"kind": "task", "agency": "dbd"},
            "other": {"kind": "task", "agency": "dbd"},
            "last": {"kind": "task", "agency": "dbd", "after": ["other", "late"]}}})
        m = self.manual(wid)
        self.assertEqual([s["name"] for s in m["steps"]], ["early", "late", "other", "last"])
        self.assertEqual((m["max_working_days"], m["max_other"]), (0, []))
        self.assertEqual((m["title"], m["description"], m["legal_basis"]), (None, None, None))

    def test_list_unknown_and_no_token(self):
        wid = uniq("lst")
        self.publish({"id": wid, "title": "ทะเบียนพาณิชย์", "calendar": "th-gov", "steps": {
            "r": {"kind": "task", "agency": "dbd", "sla": "1 working day"},
            "fee": {"kind": "payment", "agency": "dbd", "after": ["r"], "amount": 50}}})
        r = self.anon.get("/v1/public/services")
        self.assertEqual(r.status, 200, r)
        ids = [s["id"] for s in r.json["services"]]
        self.assertEqual(ids, sorted(ids))
        entry = [s for s in r.json["services"] if s["id"] == wid][0]
        self.assertEqual(entry, {"id": wid, "version": 1, "title": "ทะเบียนพาณิชย์",
                                 "agencies": ["กรมพัฒนาธุรกิจการค้า"], "max_working_days": 1,
                                 "fee": {"expression": "50", "fields": []}})
        # A token is not needed, and one of any role reads the same.
        self.assertEqual(self.plat.get("/v1/public/services/" + wid).json, self.manual(wid))
        assert_error(self, self.anon.get("/v1/public/services/no-such-service"), 404,
                     "not_found")

    def test_newer_version_changes_the_manual(self):
        wid = uniq("ver")
        d = {"id": wid, "title": "v1", "calendar": "th-gov", "steps": {
            "t": {"kind": "task", "agency": "dbd", "sla": "3 working days"}}}
        self.publish(d)
        self.assertEqual(self.manual(wid)["max_working_days"], 3)
        d["title"] = "v2"
        d["steps"]["t"]["sla"] = "7 working days"
        d["steps"]["t"]["title"] = "ตรวจ"
        self.publish(d)
        m = self.manual(wid)
        self.assertEqual((m["version"], m["title"], m["max_working_days"], m["steps"][0]["title"]),
                         (2, "v2", 7, "ตรวจ"))
        entry = [s for s in self.anon.get("/v1/public/services").json["services"]
                 if s["id"] == wid][0]
        self.assertEqual((entry["version"], entry["title"]), (2, "v2"))

    def test_manual_keys_are_checked(self):
        wid = uniq("bad")
        good = {"type": "string", "label": "ชื่อ"}
        cases = [
            ({"label": 5}, None, "form.x.label"),
            ({"label": "x" * 1001}, None, "form.x.label"),
            ({"lable": "typo"}, None, "form.x.lable"),
            ({"max_size": 10}, None, "form.x.max_size"),  # not a file field
            (None, {"title": ["a"]}, "steps.t.title"),
            (None, {"titel": "typo"}, "steps.t.titel"),
        ]
        for field_extra, step_extra, path in cases:
            x = dict(good, **(field_extra or {}))
            t = dict({"kind": "task", "agency": "dbd"}, **(step_extra or {}))
            r = self.plat.post("/v1/workflows", {"id": wid, "form": {"x": x},
                                                 "steps": {"t": t}})
            assert_error(self, r, 422, "invalid_definition")
            self.assertIn(path, detail_paths(r), r)
        for top, path in (({"description": 1}, "description"),
                          ({"legal_basis": "x" * 4001}, "legal_basis"),
                          ({"retention_days": 3}, "retention_days")):
            d = dict({"id": wid, "steps": {"t": {"kind": "task", "agency": "dbd"}}}, **top)
            r = self.plat.post("/v1/workflows", d)
            assert_error(self, r, 422, "invalid_definition")
            self.assertIn(path, detail_paths(r), r)
        for f, path in (({"type": "file", "max_size": 0}, "form.f.max_size"),
                        ({"type": "file", "content_types": []}, "form.f.content_types"),
                        ({"type": "file", "content_types": ["PDF"]}, "form.f.content_types[0]")):
            r = self.plat.post("/v1/workflows", {"id": wid, "form": {"f": f},
                                                 "steps": {"t": {"kind": "task",
                                                                 "agency": "dbd"}}})
            assert_error(self, r, 422, "invalid_definition")
            self.assertIn(path, detail_paths(r), r)
        # Nothing was published.
        assert_error(self, self.anon.get("/v1/public/services/" + wid), 404, "not_found")
        # `osse validate` makes the same checks.
        p = subprocess.run([OSSE_BIN, "validate", "-"], input=example_yaml("val"),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual((p.returncode, p.stdout), (0, ""), p)
        p = subprocess.run([OSSE_BIN, "validate", "-"],
                           input=example_yaml("val").replace("label: ชื่อร้าน", "label: [1]"),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 1, p)
        self.assertIn("form.business_name.label: must be a string", p.stdout)


class ExamplesManualTest(ServerTestCase):
    """The shipped examples, loaded at start as the README's run command
    loads them."""

    EXAMPLES = {
        # id: (max_working_days, max_other, steps in order)
        "building-permit": (25, ["P30D"], ["zoning", "structural", "fire", "electricity", "fee",
                                           "permit"]),
        "commercial-registration": (1, ["P7D"], ["identity", "registrar", "fee",
                                                 "certificate"]),
        "food-premises-licence": (15, ["P30D"], ["identity", "district", "health", "fire",
                                                 "fee", "licence"]),
        "organic-certification": (35, [], ["documents", "inspection", "residue_test",
                                           "decision", "certificate"]),
        "restaurant-license": (15, ["P30D"], ["commerce", "health", "fire", "fee", "licence"]),
    }

    @classmethod
    def setUpClass(cls):
        cls.server = Server(workflows_dir=os.path.join(SRC, "examples", "workflows"),
                            extra_args=[CLOCK]).start()

    def test_every_example_has_a_manual(self):
        anon = self.server.client("")
        r = anon.get("/v1/public/services")
        self.assertEqual(r.status, 200, r)
        self.assertEqual([s["id"] for s in r.json["services"]], sorted(self.EXAMPLES))
        for wid, (days, other, steps) in self.EXAMPLES.items():
            r = anon.get("/v1/public/services/" + wid)
            self.assertEqual(r.status, 200, r)
            m = r.json
            self.assertEqual((m["max_working_days"], m["max_other"]), (days, other), wid)
            self.assertEqual([s["name"] for s in m["steps"]], steps, wid)
            # Thai for people: every field has a label, every step a title.
            for x in m["fields"]:
                self.assertTrue(x["label"], (wid, x))
            for s in m["steps"]:
                self.assertTrue(s["title"], (wid, s))
                if s["kind"] in ("task", "linkage"):
                    self.assertTrue(s["agency"], (wid, s))
            self.assertTrue(m["title"] and m["description"] and m["legal_basis"], wid)
        food = anon.get("/v1/public/services/food-premises-licence").json
        self.assertEqual(food["steps"][0]["agency"],
                         "กรมการปกครอง (Department of Provincial Administration, DOPA)")
        self.assertEqual(food["fee"]["fields"], ["area_sqm"])
        self.assertIsNone(anon.get("/v1/public/services/organic-certification").json["fee"])

    def test_examples_validate(self):
        p = subprocess.run([OSSE_BIN, "validate", os.path.join(SRC, "examples", "workflows")],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual((p.returncode, p.stdout), (0, ""), p)


if __name__ == "__main__":
    main()
