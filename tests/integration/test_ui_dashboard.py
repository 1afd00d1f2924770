"""test_ui_dashboard.py: the SLA dashboard /ui/dashboard (SPEC §13, §10, §1)
in headless Chromium against a real server with data over eight weeks.

One server with `--test-clock=TIME` for the class, the clock starting on
Monday 2030-01-07 09:00 +07:00 and moved by POST /v1/test/clock (th-gov:
Monday to Friday 08:30-16:30 +07:00). Agency A (a Thai name) holds the
tasks of wf1 ("1 working day"), B those of wf2 (Thai title, "2 working
days"):

  week 1 (from Mon 2030-01-07): 4 wf1 and 2 wf2 requests; A decides two
         wf1 on Monday (within the SLA);
  week 2 (from Mon 2030-01-14): A decides a third wf1 (late: breached),
         3 more wf1 are submitted, B decides one wf2 (late);
  week 3 (from Mon 2030-01-21): one more wf1 at 09:00; at 10:00 A decides
         it (within the SLA) and two older ones (late);
  week 8 (from Mon 2030-02-25): A rejects one more (late); weeks 4 to 7
         hold open tasks only.

What is checked, through the page (tests/browser/page.js: no console error;
screenshots at desktop and phone size):
- with a platform token (and an auditor's) from the fragment: the table
  holds one row per agency and workflow of GET /v1/stats, each cell the
  API's number (open, overdue, decided by a person, within SLA, share,
  median decision time in working hours, ...), the Thai names drawn in a
  Thai font; on a phone the tables fold (one block per row) and nothing
  scrolls sideways;
- the chart: one bar of decisions, one of decisions within the SLA and one
  point of open tasks per bucket of GET /v1/stats?bucket=week (eight
  weeks; the last 12, 6 on a phone), each bar's and point's value the sum of that bucket's rows, the
  bars' heights in proportion; the same for one agency chosen in the
  scope box;
- a server with no request: "no task yet" and an empty week, no error;
- nothing without a token (the sign-in box only); an agency's or a portal's
  token shows the server's 403 and no number.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import Server, TH_GOV, World, main  # noqa: E402
from ui_browser import open_page, thai_font_used  # noqa: E402

START = "2030-01-07T09:00:00+07:00"
THAI_A = "กรมพัฒนาธุรกิจการค้า (DBD, test)"
THAI_WF2 = "การจดทะเบียนพาณิชย์"
ROW_KEYS = ["open", "overdue", "decided_by_person", "decided_within_sla", "share_within_sla",
            "median_decision_working_hours", "auto_approved", "deemed_approved",
            "escalated_away", "breaches"]
SERIES = ["decided_by_person", "decided_within_sla", "open", "overdue", "breaches"]
CELLS = ("Object.fromEntries([...document.querySelectorAll('#rows tbody tr')].map(tr => ["
         "tr.dataset.agency + ' ' + tr.dataset.workflow, Object.fromEntries([...tr."
         "querySelectorAll('td[data-key]')].map(td => [td.dataset.key, td.textContent]))]))")
MARKS = ("[...document.querySelectorAll('#chart svg [data-series]')].map(e => [e.tagName, "
         "e.dataset.series, e.dataset.week, Number(e.dataset.value), "
         "Number(e.getAttribute('height'))])")
SIGNED_OUT = {"signin": "!document.getElementById('signin-card').hidden",
              "board": "!document.getElementById('board').hidden",
              "rows": "document.querySelectorAll('#rows tbody tr').length",
              "marks": "document.querySelectorAll('#chart svg *').length"}


def cell(row, k):
    """The text the page shows for a row's key (dashboard.js)."""
    v = row[k]
    if v is None:
        return "—"
    if k == "share_within_sla":
        return "%d%%" % round(v * 100)
    if k == "median_decision_working_hours":
        return "%.1f" % v
    return str(v)


class DashboardPage(unittest.TestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=["--test-clock=" + START]).start()
        cls.base = "http://127.0.0.1:%d" % cls.server.port
        try:
            cls.scenario()
        except BaseException:
            cls.server.kill()
            cls.server.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        cls.server.cleanup()
        assert rc == 0, "osse exited with %s" % rc

    @classmethod
    def at(cls, local):
        r = cls.w.plat.post("/v1/test/clock", {"now": local + ":00+07:00"})
        assert r.status == 200, r

    @classmethod
    def scenario(cls):
        w = cls.w = World(cls.server)
        assert w.plat.put("/v1/calendars/th-gov", TH_GOV).status in (200, 201)
        assert w.plat.put("/v1/agencies/" + w.A, {"name": THAI_A}).status in (200, 201)
        A, B = w.A, w.B
        cls.wf1, cls.wf2 = "dash1-" + w.sfx, "dash2-" + w.sfx
        for wid, ag, sla, title in ((cls.wf1, A, "1 working day", "Food shop"),
                                    (cls.wf2, B, "2 working days", THAI_WF2)):
            w.publish({"id": wid, "title": title, "calendar": "th-gov",
                       "form": {"business_name": {"type": "string", "required": True}},
                       "steps": {"t": {"kind": "task", "agency": ag, "sla": sla}}})

        def submit(wid):
            return w.submit(wid, form={"business_name": "ร้านก๋วยเตี๋ยว"})["id"]

        r1 = [submit(cls.wf1) for _ in range(4)]
        r2 = [submit(cls.wf2) for _ in range(2)]
        cls.at("2030-01-07T11:00")
        w.decide(r1[0], "t", "approve", agency=A)
        w.decide(r1[1], "t", "reject", agency=A)
        cls.at("2030-01-14T10:00")
        w.decide(r1[2], "t", "approve", agency=A)
        r1 += [submit(cls.wf1) for _ in range(3)]
        w.decide(r2[0], "t", "approve", agency=B)
        cls.at("2030-01-21T09:00")
        r1.append(submit(cls.wf1))
        cls.at("2030-01-21T10:00")
        w.decide(r1[4], "t", "approve", agency=A)
        w.decide(r1[3], "t", "approve", agency=A)
        w.decide(r1[7], "t", "approve", agency=A)
        cls.at("2030-02-25T10:00")
        w.decide(r1[5], "t", "reject", agency=A)
        cls.stats = w.plat.get("/v1/stats").json
        cls.weekly = w.plat.get("/v1/stats?bucket=week").json
        cls.agency_token = w.principal("agency", agency=A)["token"]
        cls.portal_token = w.principal("portal")["token"]
        cls.auditor_token = w.principal("auditor")["token"]

    def dashboard(self, name, token, steps=(), sizes=("desktop", "phone"), **kw):
        frag = "#token=" + token if token else ""
        return open_page(self.base, "/ui/dashboard" + frag, name, steps=steps, sizes=sizes,
                         **kw)

    def expected_weeks(self, keep=lambda row: True, size="desktop"):
        out = []
        for b in self.weekly["buckets"][-(6 if size == "phone" else 12):]:
            out.append({k: sum(r[k] for r in b["rows"] if keep(r)) for k in SERIES})
            out[-1]["start"] = b["start"]
        return out

    def assertChart(self, marks, weeks, why):
        got = {}
        for tag, series, week, value, height in marks:
            got.setdefault(series, []).append((tag, week, value, height))
        self.assertEqual(set(got), {"decided_by_person", "decided_within_sla", "open"}, why)
        for series, tag in (("decided_by_person", "rect"), ("decided_within_sla", "rect"),
                            ("open", "circle")):
            self.assertEqual([(t, wk, v) for t, wk, v, _ in got[series]],
                             [(tag, w["start"], w[series]) for w in weeks], (why, series))
        # The bars' heights are in proportion to their values.
        bars = [(v, h) for _, _, v, h in got["decided_by_person"] + got["decided_within_sla"]]
        top = max(bars)
        for v, h in bars:
            self.assertAlmostEqual(h * top[0], v * top[1], delta=0.01 * top[1] * top[0] + 1e-6,
                                   msg="%s: a bar of %s is %s high" % (why, v, h))

    def test_the_data_spans_weeks(self):
        """The scenario is what the chart needs: three weeks, decisions in
        each, some late."""
        weeks = self.expected_weeks()
        self.assertEqual([w["start"][:10] for w in weeks],
                         ["2030-01-07", "2030-01-14", "2030-01-21", "2030-01-28", "2030-02-04",
                          "2030-02-11", "2030-02-18", "2030-02-25"])
        self.assertEqual([w["decided_by_person"] for w in weeks], [2, 2, 3, 0, 0, 0, 0, 1])
        self.assertEqual([w["decided_within_sla"] for w in weeks], [2, 0, 1, 0, 0, 0, 0, 0])
        self.assertEqual(len(self.expected_weeks(size="phone")), 6)

    def test_table_and_chart_match_the_api(self):
        w = self.w
        out = self.dashboard("dashboard", w.admin_token, steps=[
            {"waitFor": "document.body.dataset.loaded === 'true'"}],
            collect={"cells": CELLS, "marks": MARKS, "hash": "location.hash",
                     "width": "document.documentElement.scrollWidth"},
            fonts={"agency": 'tr[data-agency="%s"] td.agency' % w.A,
                   "workflow": 'tr[data-workflow="%s"] td.workflow' % self.wf2})
        want = {"%s %s" % (r["agency"], r["workflow"]): {k: cell(r, k) for k in ROW_KEYS}
                for r in self.stats["rows"]}
        self.assertEqual(len(want), 2, self.stats)
        for size, page in out["pages"].items():
            v = page["values"]
            self.assertEqual(v["cells"], want, size)
            self.assertChart(v["marks"], self.expected_weeks(size=size), size)
            self.assertEqual(v["hash"], "", size)
            if size == "phone":
                self.assertLessEqual(v["width"], 390, "the page scrolls sideways on a phone")
            self.assertIn(THAI_A, page["text"], size)
            self.assertIn(THAI_WF2, page["text"], size)
            self.assertTrue(thai_font_used(page["fonts"]["agency"]), (size, page["fonts"]))
            self.assertTrue(thai_font_used(page["fonts"]["workflow"]), (size, page["fonts"]))

    def test_one_agency_in_the_chart_and_an_auditor(self):
        w = self.w
        choose = ("(s => (s.value = %r, s.dispatchEvent(new Event('change')), true))"
                  "(document.getElementById('scope'))" % w.A)
        out = self.dashboard("dashboard-one-agency", self.auditor_token, sizes=("desktop",),
                             steps=[{"waitFor": "document.body.dataset.loaded === 'true'"},
                                    {"waitFor": choose}],
                             collect={"marks": MARKS, "cells": CELLS})
        page = out["pages"]["desktop"]
        weeks = self.expected_weeks(lambda r: r["agency"] == w.A)
        self.assertNotEqual(weeks, self.expected_weeks(), "B's decision is left out")
        self.assertChart(page["values"]["marks"], weeks, "agency A")
        self.assertEqual(len(page["values"]["cells"]), 2)

    def test_an_empty_server(self):
        """A server with no request yet: the page says so, draws one empty
        week, and has no console error."""
        srv = Server(extra_args=["--test-clock=" + START]).start()
        try:
            plat = srv.client(srv.admin_token())
            buckets = plat.get("/v1/stats?bucket=week").json["buckets"]
            out = open_page("http://127.0.0.1:%d" % srv.port, "/ui/dashboard#token=" +
                            srv.admin_token(), "dashboard-empty",
                            steps=[{"waitFor": "document.body.dataset.loaded === 'true'"}],
                            collect={"marks": MARKS,
                                     "norows": "!document.getElementById('norows').hidden"})
            for size, page in out["pages"].items():
                self.assertTrue(page["values"]["norows"], size)
                self.assertEqual([m[3] for m in page["values"]["marks"]], [0] * 3 * len(buckets),
                                 size)
        finally:
            rc = srv.stop()
            srv.cleanup()
        self.assertEqual(rc, 0)

    def test_nothing_without_platform_or_auditor(self):
        out = self.dashboard("dashboard-signed-out", None, steps=[
            {"waitText": ["#status", "Not signed in"]}], collect=SIGNED_OUT)
        for size, page in out["pages"].items():
            self.assertEqual(page["values"], {"signin": True, "board": False, "rows": 0,
                                              "marks": 0}, size)
        for token, name in ((self.agency_token, "dashboard-agency"),
                            (self.portal_token, "dashboard-portal"),
                            ("not-a-token", "dashboard-wrong-token")):
            code = "401" if token == "not-a-token" else "403"
            out = self.dashboard(name, token, sizes=("desktop",), allow=[r"/v1/stats"],
                                 steps=[{"waitText": ["#problem", code]}], collect=SIGNED_OUT)
            page = out["pages"]["desktop"]
            self.assertEqual(page["values"], {"signin": True, "board": False, "rows": 0,
                                              "marks": 0}, name)
            self.assertNotIn(THAI_A, page["text"], name)


if __name__ == "__main__":
    main()
