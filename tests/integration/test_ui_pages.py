"""test_ui_pages.py: the public pages (SPEC §13, §4, §9, §12, §1) in Chromium,
on data made through the real API.

One server with `--test-clock=TIME` and `--workflows examples/workflows`
(Thai titles) for the class; each page is opened at desktop and phone size
through tests/browser/page.js, which fails on any console error, page
error, failed request or unexpected 4xx, and saves a screenshot of each
(build/screenshots/<name>-<size>.png).

What is checked:
- /ui/track?code=...: a request submitted by a portal and decided once by
  an agency: the page's timeline holds each entry of GET /v1/track's, in
  order; "who holds it now" names the agencies of the open steps (by their
  names) with each step's due time in UTC+07:00; the code in lower case
  finds it too; an unknown code says so; the submitted form's personal
  values (citizen id, name) appear nowhere in the page;
- /ui/services and /ui/services/<id>: every example service's Thai title
  is in the list; a manual shows the steps in the API's order with their
  titles, agencies and SLAs, max_working_days, the fee expression, and the
  personal fields marked; Thai text is drawn with a Thai font (the fonts
  the browser used, not just the CSS); an unknown id says so;
- /ui/registry and /ui/registry/<number>: a licence issued through a real
  journey (an agency approves, osse issues) is found by the search and
  checked in the browser against the log's key: "valid"; the same JWS with
  one character of its payload or of its signature changed, pasted in the
  check box, is "signature invalid", the genuine one "valid"; a revoked
  licence "revoked"; one whose validity ended on the test clock "expired";
  the form's personal values appear nowhere.
"""

import datetime as dt
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import FORM_FIELDS, Server, World, good_form, main  # noqa: E402
from ui_browser import SRC, thai_font_used  # noqa: E402
from ui_browser import open_page as browser_open  # noqa: E402

START = "2030-01-07T09:00:00+07:00"


def open_page(base, path, name, collect=None, **kw):
    """ui_browser.open_page, also collecting the page's width."""
    collect = dict(collect or {}, width="document.documentElement.scrollWidth")
    return browser_open(base, path, name, collect=collect, **kw)


def th_time(iso):
    """An API time as the pages show it: "2030-01-07 09:00 (UTC+07:00)"."""
    t = dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ") + dt.timedelta(hours=7)
    return t.strftime("%Y-%m-%d %H:%M") + " (UTC+07:00)"


class PublicPages(unittest.TestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = Server(workflows_dir=os.path.join(SRC, "examples", "workflows"),
                            extra_args=["--test-clock=" + START]).start()
        cls.w = World(cls.server)
        cls.base = "http://127.0.0.1:%d" % cls.server.port

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        cls.server.cleanup()
        assert rc == 0, "osse exited with %s" % rc

    def assert_fits_phone(self, out):
        """The page at phone size does not scroll sideways."""
        page = out["pages"].get("phone")
        if page:
            self.assertLessEqual(page["values"]["width"], 390, out["shots"])

    def assert_no_pii(self, out, form):
        for size, page in out["pages"].items():
            for key in ("applicant_id", "applicant_name"):
                self.assertNotIn(form[key], page["html"], (size, key))
                self.assertNotIn(form[key], page["text"], (size, key))

    # -- tracking ----------------------------------------------------------

    def test_track_shows_the_timeline_and_who_holds_it(self):
        w = self.w
        wid = w.workflow()
        form = good_form()
        req = w.submit(wid, form)
        w.decide(req["id"], "intake", "approve")
        track = w.anon.get("/v1/track/" + req["tracking_code"]).json
        open_steps = [s for s in track["steps"] if s["state"] == "open"]
        self.assertEqual(sorted(s["name"] for s in open_steps), ["review_b", "review_c"])
        collect = {
            "timeline": "[...document.querySelectorAll('#timeline li')].map(li => "
                        "({type: li.dataset.type, text: li.querySelector('.text').textContent,"
                        " at: li.querySelector('time').getAttribute('datetime'),"
                        " shown: li.querySelector('time').textContent}))",
            "holders": "[...document.querySelectorAll('#holders li')].map(li => "
                       "({agency: li.dataset.agency, step: li.dataset.step, "
                       "text: li.textContent, due: (li.querySelector('.due time') || {})"
                       ".textContent}))",
            "status": "document.getElementById('status').dataset.status",
        }
        for code, name in ((req["tracking_code"], "track"),
                           (req["tracking_code"].lower(), "track-lower")):
            out = open_page(self.base, "/ui/track?code=" + code, name,
                            steps=[{"wait": "#timeline li"}], collect=collect,
                            sizes=("desktop", "phone") if name == "track" else ("desktop",))
            for size, page in out["pages"].items():
                v = page["values"]
                self.assertEqual(v["status"], "in_progress", size)
                self.assertEqual([(t["type"], t["text"], t["at"]) for t in v["timeline"]],
                                 [(t["type"], t["text"], t["at"]) for t in track["timeline"]],
                                 size)
                self.assertEqual([t["shown"] for t in v["timeline"]],
                                 [th_time(t["at"]) for t in track["timeline"]])
                held = {h["step"]: h for h in v["holders"]}
                self.assertEqual(sorted(held), ["review_b", "review_c"], v["holders"])
                for s in open_steps:
                    h = held[s["name"]]
                    self.assertEqual(h["agency"], s["agency"])
                    self.assertIn("Agency " + s["agency"], h["text"])  # its name, from the manual
                    self.assertEqual(h["due"], th_time(s["due_at"]))
            self.assert_no_pii(out, form)
            self.assert_fits_phone(out)

    def test_track_unknown_code(self):
        out = open_page(self.base, "/ui/track?code=NOSUCHCODE", "track-unknown",
                        steps=[{"wait": "#problem .problem"}], allow=[r"/v1/track/"],
                        sizes=("desktop",))
        self.assertIn("No request has this tracking code", out["pages"]["desktop"]["text"])

    # -- the service manual ---------------------------------------------------

    def test_services_list_in_thai(self):
        api = self.w.anon.get("/v1/public/services").json["services"]
        ex = [s for s in api if s["id"] in ("restaurant-license", "building-permit")]
        self.assertEqual(len(ex), 2, api)
        out = open_page(self.base, "/ui/services", "services",
                        steps=[{"wait": ".service"}],
                        collect={"ids": "[...document.querySelectorAll('.service')]"
                                        ".map(e => e.dataset.id)"},
                        fonts={"title": ".service[data-id='restaurant-license'] h2 a"})
        for size, page in out["pages"].items():
            self.assertEqual(page["values"]["ids"], [s["id"] for s in api], size)
            for s in ex:
                self.assertIn(s["title"], page["text"], size)
                for a in s["agencies"]:
                    self.assertIn(a, page["text"], size)
            self.assertTrue(thai_font_used(page["fonts"]["title"]), (size, page["fonts"]))
        self.assert_fits_phone(out)

    def test_service_manual_steps_in_order(self):
        m = self.w.anon.get("/v1/public/services/restaurant-license").json
        out = open_page(self.base, "/ui/services/restaurant-license", "service-manual",
                        steps=[{"wait": "#steps li"}],
                        collect={
                            "steps": "[...document.querySelectorAll('#steps > li')].map(li => "
                                     "({name: li.dataset.step, text: li.textContent}))",
                            "pii": "[...document.querySelectorAll('#fields tr')]"
                                   ".filter(tr => tr.querySelector('[data-pii]'))"
                                   ".map(tr => tr.dataset.field)",
                            "days": "document.getElementById('max-time').dataset.workingDays",
                        },
                        fonts={"title": "#title", "step": "#steps .step-title"})
        for size, page in out["pages"].items():
            v = page["values"]
            self.assertEqual([s["name"] for s in v["steps"]], [s["name"] for s in m["steps"]])
            for got, s in zip(v["steps"], m["steps"]):
                self.assertIn(s["title"], got["text"])
                if s["agency"]:
                    self.assertIn(s["agency"], got["text"])
                if s["sla"] and not s["sla"].startswith("P"):
                    self.assertIn(s["sla"], got["text"])
            self.assertEqual(sorted(v["pii"]),
                             sorted(f["name"] for f in m["fields"] if f["pii"]))
            self.assertEqual(v["days"], str(m["max_working_days"]))
            self.assertIn(m["title"], page["text"])
            self.assertIn(m["legal_basis"], page["text"])
            self.assertIn(m["fee"]["expression"], page["text"])
            self.assertIn("30 days", page["text"])  # max_other P30D
            for f in m["fields"]:
                self.assertIn(f["label"], page["text"])
            self.assertTrue(thai_font_used(page["fonts"]["title"]), (size, page["fonts"]))
            self.assertTrue(thai_font_used(page["fonts"]["step"]), (size, page["fonts"]))
        self.assert_fits_phone(out)

    def test_service_unknown(self):
        out = open_page(self.base, "/ui/services/no-such-service", "service-unknown",
                        steps=[{"wait": "#problem .problem"}],
                        allow=[r"/v1/public/services/no-such-service"], sizes=("desktop",))
        self.assertIn("no-such-service", out["pages"]["desktop"]["text"])

    # -- the registry ----------------------------------------------------------

    def issue(self, valid_for="P1Y"):
        """A licence through a real journey: the portal submits, agency A
        approves its review, osse issues. Returns (form, licence entry)."""
        w = self.w
        wid = "ui-lic-" + w.sfx + "-" + valid_for.lower()
        d = {"id": wid, "title": "ใบอนุญาตทดสอบ (UI test licence)", "calendar": "th-gov",
             "form": json.loads(json.dumps(FORM_FIELDS)),
             "steps": {"review": {"kind": "task", "agency": w.A, "title": "ตรวจ (Review)"},
                       "licence": {"kind": "issue", "after": ["review"], "agency": w.A,
                                   "number": "UI%s-{bbbb}-{seq:4}" % valid_for[-1], "valid_for": valid_for,
                                   "public_fields": ["business_name", "district"]}}}
        if w.anon.get("/v1/public/services/" + wid).status == 404:
            w.publish(d)
        form = good_form()
        req = w.submit(wid, form)
        w.decide(req["id"], "review", "approve")
        lic = w.view(req["id"])["licence"]
        self.assertIsNotNone(lic)
        return form, w.anon.get("/v1/public/licences/" + lic["number"]).json

    VERDICT = {"verdict": "document.getElementById('verdict').textContent",
               "data": "document.getElementById('verdict').dataset.verdict"}

    def licence_page(self, number, name, sizes=("desktop",)):
        return open_page(self.base, "/ui/registry/" + number, name,
                         steps=[{"wait": "#verdict[data-verdict]"}], collect=self.VERDICT,
                         sizes=sizes)

    def test_registry_search_and_a_valid_licence(self):
        form, entry = self.issue()
        out = open_page(self.base, "/ui/registry?q=" + entry["number"], "registry",
                        steps=[{"wait": "#licences tbody tr"}],
                        collect={"numbers": "[...document.querySelectorAll('#licences tbody tr')]"
                                            ".map(tr => tr.dataset.number)"})
        for size, page in out["pages"].items():
            self.assertEqual(page["values"]["numbers"], [entry["number"]], size)
            self.assertIn(entry["fields"]["business_name"], page["text"])
        self.assert_no_pii(out, form)
        self.assert_fits_phone(out)
        out = self.licence_page(entry["number"], "registry-licence", ("desktop", "phone"))
        for size, page in out["pages"].items():
            self.assertEqual(page["values"]["verdict"], "valid", size)
            self.assertEqual(page["values"]["data"], "valid", size)
            self.assertIn(entry["fields"]["business_name"], page["text"])
        self.assert_no_pii(out, form)
        self.assert_fits_phone(out)

    def test_a_tampered_jws_is_signature_invalid(self):
        _, entry = self.issue()
        jws = entry["jws"]
        head, payload, sig = jws.split(".")

        def changed(s, i):
            return s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]
        cases = [("genuine", jws, "valid"),
                 ("payload", ".".join([head, changed(payload, len(payload) // 2), sig]),
                  "signature invalid"),
                 ("signature", ".".join([head, payload, changed(sig, 10)]),
                  "signature invalid"),
                 ("garbage", "not-a-jws", "signature invalid")]
        for what, text, want in cases:
            out = open_page(self.base, "/ui/registry", "registry-check-" + what,
                            steps=[{"fill": ["#jws", text]}, {"click": "#check"},
                                   {"wait": "#check-verdict[data-verdict]"}],
                            collect={"verdict": "document.getElementById('check-verdict')"
                                                ".textContent"},
                            sizes=("desktop",))
            self.assertEqual(out["pages"]["desktop"]["values"]["verdict"], want, what)

    def test_revoked_and_expired(self):
        _, entry = self.issue()
        r = self.w.plat.post("/v1/licences/%s/revoke" % entry["number"],
                             {"reason": "ปิดกิจการ (closed down)"})
        self.assertEqual(r.status, 200, r)
        out = self.licence_page(entry["number"], "registry-revoked")
        self.assertEqual(out["pages"]["desktop"]["values"]["verdict"], "revoked")
        self.assertIn("ปิดกิจการ (closed down)", out["pages"]["desktop"]["text"])
        _, short = self.issue(valid_for="P1D")
        self.assertEqual(self.licence_page(short["number"], "registry-short")
                         ["pages"]["desktop"]["values"]["verdict"], "valid")
        r = self.w.plat.post("/v1/test/clock", {"advance": "P2D"})
        self.assertEqual(r.status, 200, r)
        for _ in range(100):
            if self.w.anon.get("/v1/public/licences/" + short["number"]).json["status"] == \
                    "expired":
                break
            time.sleep(0.05)
        out = self.licence_page(short["number"], "registry-expired")
        self.assertEqual(out["pages"]["desktop"]["values"]["verdict"], "expired")

    def test_unknown_licence(self):
        out = open_page(self.base, "/ui/registry/NO-SUCH-1", "registry-unknown",
                        steps=[{"wait": "#problem .problem"}],
                        allow=[r"/v1/public/licences/NO-SUCH-1"], sizes=("desktop",))
        self.assertIn("NO-SUCH-1", out["pages"]["desktop"]["text"])


if __name__ == "__main__":
    main()
