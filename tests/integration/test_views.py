"""test_views.py: what the tracking view and the inbox tell, over real HTTP
(SPEC §4: the tracking view's `reason`s, the inbox's `version`, the
`expected_version` rule, tracking by code without regard to case).

Each test starts its own `osse serve --test-clock=TIME` on a fresh data
folder, the clock starting at Monday 2030-01-07 09:00 +07:00 (a working
morning on th-gov); it only moves forward inside a test.

What is checked:
- reasons: a request's `reason` says why it was rejected (an agency's words,
  as written), withdrawn (the applicant's words, or a sentence of ours when
  none was given) or expired (our sentence); a step's `reason` why it was
  decided, returned or failed; a reason that no longer applies (a return
  answered) is null; reasons the engine makes itself (deemed approval or
  rejection, automatic approval, a failed registry check, a failed lookup)
  are sentences an applicant can read that quote no form or registry value;
  tracking by code shows none of them; the views' digest of the live server
  equals `osse replay`'s;
- tracking by code matches the code in any case;
- the inbox entry carries `version`; two agencies deciding their parallel
  steps with the same expected_version both succeed; SLA warnings and
  breaches leave it fresh; a decision after its step was returned and
  answered, after the form changed, or after an escalation, with a version
  from before, is 409 and writes nothing;
- the inbox's history (class TestInboxHistory): approved, rejected,
  cancelled tasks (read from the index on disk), open and waiting ones
  (from memory), and state=all merging both, in both sorts, over pages of
  two, equal to what the tracking views tell; an escalated task only under
  the agency holding it; the same pages after a clean restart and after a
  kill -9; a task decided between two pages shown once, in its place, in
  its new state; a bad cursor, state or sort is 422.

Python standard library only.
"""

import http.server
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import OSSE_BIN, assert_error, good_form, main, states, step_of  # noqa: E402
from test_sla import ClockCase  # noqa: E402


class Registry:
    """A lookup server that answers every call with one JSON object."""

    def __init__(self, answer):
        body = json.dumps(answer).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d/lookup" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class ViewCase(ClockCase):
    """test_sla's case (a fresh server per test, its clock starting at START,
    a World on it), at a Monday of this file's own."""

    START = "2030-01-07T09:00"

    def advance(self, duration):
        r = self.plat.post("/v1/test/clock", {"advance": duration})
        self.assertEqual(r.status, 200, r)

    def public(self, code):
        r = self.w.anon.get("/v1/track/" + code)
        self.assertEqual(r.status, 200, "GET /v1/track/%s: %r" % (code, r))
        return r

    def assertNoReasons(self, code, *texts):
        """Tracking by code shows no reason at all, nor any of texts."""
        r = self.public(code)
        pub = r.json
        self.assertNotIn("reason", pub, "tracking by code shows the request's reason: %s" % pub)
        for s in pub["steps"]:
            self.assertNotIn("reason", s, "tracking by code shows a step's reason: %s" % s)
        body = r.body.decode()
        for t in texts:
            self.assertNotIn(t, body, "tracking by code shows %r" % t)

    def assertReadable(self, text, form, why):
        """A sentence of the engine's own: a non-empty string that quotes
        nothing of the form."""
        self.assertIsInstance(text, str, "%s: expected a sentence, got %r" % (why, text))
        self.assertGreater(len(text.split()), 3, "%s: expected a sentence, got %r" % (why, text))
        for k, v in form.items():
            if isinstance(v, str) and len(v) > 3:
                self.assertNotIn(v, text, "%s quotes form.%s: %r" % (why, k, text))

    def inbox_entry(self, agency, rid, step):
        r = self.w.ag[agency].get("/v1/agencies/%s/tasks" % agency)
        self.assertEqual(r.status, 200, r)
        got = [t for t in r.json["tasks"] if t["request_id"] == rid and t["step"] == step]
        self.assertEqual(len(got), 1, "inbox of %s: expected %s/%s once, got %s"
                         % (agency, rid, step, r.json))
        return got[0]


class TestReasons(ViewCase):

    def test_rejection_by_an_agency_gives_its_words(self):
        w = self.w
        wid = w.workflow()
        form = good_form()
        sub = w.submit(wid, form=form)
        rid, code = sub["id"], sub["tracking_code"]
        v = w.view(rid)
        self.assertIn("reason", v, "the tracking view has no request reason: %s" % v)
        self.assertIsNone(v["reason"], "a request in progress has no reason: %s" % v)
        w.decide(rid, "intake", "approve", agency=w.A)
        why = "the kitchen plan has no grease trap"
        v = w.decide(rid, "review_b", "reject", agency=w.B, reason=why)
        self.assertEqual(v["status"], "rejected")
        self.assertEqual(v["reason"], why, "the request's reason is the agency's: %s" % v)
        self.assertEqual(step_of(v, "review_b")["reason"], why)
        self.assertIsNone(step_of(v, "review_c")["reason"],
                          "a cancelled step has no reason: %s" % step_of(v, "review_c"))
        self.assertIsNone(step_of(v, "intake")["reason"])
        self.assertEqual(w.view(rid, client=w.portal)["reason"], why)
        self.assertNoReasons(code, why)

    def test_rejection_without_words_still_says_why(self):
        w = self.w
        wid = w.workflow()
        rid = w.submit(wid)["id"]
        v = w.decide(rid, "intake", "reject", agency=w.A)
        self.assertIsNone(step_of(v, "intake")["reason"], "no reason was given for the step")
        self.assertReadable(v["reason"], {}, "the reason of a rejection without words")
        rid = w.submit(wid)["id"]
        v = w.decide(rid, "intake", "reject", agency=w.A, reason="")
        self.assertIsNone(step_of(v, "intake")["reason"], "an empty reason is no reason")
        self.assertReadable(v["reason"], {}, "the reason of a rejection with empty words")

    def test_withdrawal_gives_the_applicants_words(self):
        w = self.w
        wid = w.workflow()
        sub = w.submit(wid)
        rid, code = sub["id"], sub["tracking_code"]
        r = w.portal.post("/v1/requests/%s/withdraw" % rid, {"reason": "we moved the shop"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "withdrawn")
        self.assertEqual(r.json["reason"], "we moved the shop", r.json)
        self.assertIsNone(step_of(r.json, "intake")["reason"], r.json)
        self.assertNoReasons(code, "we moved the shop")
        rid2 = w.submit(wid)["id"]
        r = w.portal.post("/v1/requests/%s/withdraw" % rid2, {})
        self.assertEqual(r.status, 200, r)
        self.assertReadable(r.json["reason"], {}, "a withdrawal without words")

    def test_return_reason_then_cleared_when_answered(self):
        w = self.w
        wid = w.workflow()
        sub = w.submit(wid)
        rid, code = sub["id"], sub["tracking_code"]
        why = "please attach the floor plan"
        v = w.decide(rid, "intake", "return", agency=w.A, reason=why)
        self.assertEqual(step_of(v, "intake")["reason"], why, v)
        self.assertIsNone(v["reason"], "a request waiting for information has no reason")
        self.assertNoReasons(code, why)
        r = w.portal.post("/v1/requests/%s/info" % rid,
                          {"step": "intake", "form": {"area_sqm": 40}, "message": "attached"})
        self.assertEqual(r.status, 200, r)
        intake = step_of(r.json, "intake")
        self.assertEqual(intake["state"], "open")
        self.assertIsNone(intake["reason"], "the return's reason no longer applies: %s" % intake)
        self.assertIsNone(intake["outcome"], "the return's outcome no longer applies: %s" % intake)

    def test_deemed_approval_and_rejection_say_so(self):
        w = self.w
        form = good_form()
        wid_ok = self.publish({"t": {"kind": "task", "agency": w.A, "sla": "1 working day",
                                     "on_breach": "approve"}})
        wid_no = self.publish({"t": {"kind": "task", "agency": w.A, "sla": "1 working day",
                                     "on_breach": "reject"}})
        ok = w.submit(wid_ok, form=form)
        no = w.submit(wid_no, form=form)
        self.advance("P3D")
        v = w.view(ok["id"])
        self.assertEqual(v["status"], "completed", v)
        t = step_of(v, "t")
        self.assertEqual(t["state"], "approved")
        self.assertReadable(t["reason"], form, "a deemed approval")
        self.assertIn("did not decide within its SLA", t["reason"])
        self.assertIsNone(v["reason"])
        v = w.view(no["id"])
        self.assertEqual(v["status"], "rejected", v)
        self.assertReadable(v["reason"], form, "a deemed rejection")
        self.assertIn("did not decide within its SLA", v["reason"])
        self.assertEqual(step_of(v, "t")["reason"], v["reason"])
        self.assertNoReasons(no["tracking_code"], v["reason"])

    def test_expiry_says_why(self):
        w = self.w
        form = good_form()
        wid = self.publish({"t": {"kind": "task", "agency": w.A, "sla": "1 working day",
                                  "on_breach": "expire"}})
        sub = w.submit(wid, form=form)
        self.advance("P3D")
        v = w.view(sub["id"])
        self.assertEqual(v["status"], "expired", v)
        self.assertReadable(v["reason"], form, "an expiry")
        self.assertIn("did not decide within its SLA", v["reason"])
        self.assertEqual(step_of(v, "t")["reason"], v["reason"],
                         "the step whose deadline passed says the same")
        self.assertNoReasons(sub["tracking_code"], v["reason"])

    def test_automatic_approval_says_so(self):
        w = self.w
        form = good_form(area_sqm=30)
        wid = self.publish({"t": {"kind": "task", "agency": w.A,
                                  "auto_approve": "form.area_sqm <= 50"}})
        v = w.view(w.submit(wid, form=form)["id"])
        self.assertEqual(step_of(v, "t")["state"], "approved", v)
        self.assertReadable(step_of(v, "t")["reason"], form, "an automatic approval")
        self.assertNotIn("rule", step_of(v, "t")["reason"].split(),
                         "an applicant does not know our rules")

    def linkage_workflow(self, agency):
        return self.publish({
            "identity": {"kind": "linkage", "agency": agency,
                         "input": {"citizen_id": "form.applicant_id"},
                         "require": "data.identity.alive == true", "timeout": "PT5S"},
            "t": {"kind": "task", "agency": self.w.A, "after": ["identity"]}})

    def test_failed_registry_check_says_so_without_the_answer(self):
        w = self.w
        reg = Registry({"alive": False, "name": "Registrar Secret Name", "status": "deceased"})
        try:
            r = self.plat.put("/v1/agencies/reg-" + w.sfx, {"name": "Registry",
                                                            "lookup_url": reg.url})
            self.assertIn(r.status, (200, 201), r)
            wid = self.linkage_workflow("reg-" + w.sfx)
            form = good_form()
            sub = w.submit(wid, form=form)
            v = None
            for _ in range(500):
                v = w.view(sub["id"])
                if v["status"] != "in_progress":
                    break
                time.sleep(0.02)
        finally:
            reg.close()
        self.assertEqual(v["status"], "rejected", v)
        self.assertEqual(v["reason"], "the registry check did not pass", v)
        self.assertEqual(step_of(v, "identity")["reason"], v["reason"])
        for secret in ("Registrar Secret Name", "deceased"):
            self.assertNotIn(secret, json.dumps(v), "the view quotes the registry's answer")
        self.assertNoReasons(sub["tracking_code"], v["reason"])

    def test_failed_lookup_says_so(self):
        w = self.w
        r = self.plat.put("/v1/agencies/bare-" + w.sfx, {"name": "No lookup"})
        self.assertIn(r.status, (200, 201), r)
        wid = self.linkage_workflow("bare-" + w.sfx)
        form = good_form()
        v = w.view(w.submit(wid, form=form)["id"])
        self.assertEqual(v["status"], "rejected", v)
        ident = step_of(v, "identity")
        self.assertEqual(ident["state"], "failed", v)
        self.assertReadable(ident["reason"], form, "a failed lookup")
        self.assertNotIn("lookup_url", ident["reason"], "a technical error is not for applicants")
        self.assertEqual(v["reason"], ident["reason"])

    def test_digest_of_reasons_equals_replay(self):
        """Every kind of reason above in one log: `osse replay` of the data
        folder gives the live digest."""
        w = self.w
        wid = w.workflow()
        a = w.submit(wid)["id"]
        w.decide(a, "intake", "reject", agency=w.A, reason="incomplete")
        b = w.submit(wid)["id"]
        w.decide(b, "intake", "return", agency=w.A, reason="which district?")
        w.portal.post("/v1/requests/%s/info" % b, {"step": "intake", "form": {"seats": 3}})
        w.portal.post("/v1/requests/%s/withdraw" % b, {"reason": "no longer needed"})
        wid2 = self.publish({"t": {"kind": "task", "agency": w.A, "sla": "1 working day",
                                   "on_breach": {"escalate": w.B}},
                             "u": {"kind": "task", "agency": w.C, "sla": "1 working day",
                                   "on_breach": "expire"}})
        c = w.submit(wid2)["id"]
        self.advance("P3D")
        self.assertEqual(w.view(c)["status"], "expired")
        live = self.plat.get("/v1/admin/digest").json
        p = subprocess.run([OSSE_BIN, "replay", "--data", self.server.data_dir],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        self.assertEqual(p.stdout.decode().strip().splitlines()[-1], live["digest"],
                         "osse replay's digest differs from the live one")


class TestTrackingCode(ViewCase):

    def test_code_matches_in_any_case(self):
        w = self.w
        sub = w.submit(w.workflow())
        code = sub["tracking_code"]
        want = self.public(code).json
        for c in (code.lower(), code[:5].lower() + code[5:], code.swapcase()):
            r = w.anon.get("/v1/track/" + c)
            self.assertEqual(r.status, 200, "GET /v1/track/%s (%s): %r" % (c, code, r))
            self.assertEqual(r.json, want)
        assert_error(self, w.anon.get("/v1/track/" + code.lower() + "x"), 404, "not_found")
        assert_error(self, w.anon.get("/v1/track/" + "q" * 200), 404, "not_found")


class TestExpectedVersion(ViewCase):

    def test_inbox_entries_carry_the_version(self):
        w = self.w
        rid = w.submit(w.workflow())["id"]
        t = self.inbox_entry(w.A, rid, "intake")
        self.assertEqual(set(t), {"request_id", "step", "workflow", "state", "opened_at",
                                  "due_at", "sla", "version"}, t)
        self.assertEqual(t["version"], w.view(rid)["version"])
        w.decide(rid, "intake", "approve", agency=w.A, expected_version=t["version"])

    def test_parallel_agencies_do_not_conflict(self):
        w = self.w
        rid = w.submit(w.workflow())["id"]
        w.decide(rid, "intake", "approve", agency=w.A)
        tb = self.inbox_entry(w.B, rid, "review_b")
        tc = self.inbox_entry(w.C, rid, "review_c")
        self.assertEqual(tb["version"], tc["version"])
        v = w.decide(rid, "review_b", "approve", agency=w.B, expected_version=tb["version"])
        self.assertGreater(v["version"], tc["version"])
        # C read its inbox before B decided: B's decision is not C's business.
        v = w.decide(rid, "review_c", "approve", agency=w.C, expected_version=tc["version"])
        self.assertEqual(states(v), {"intake": "approved", "review_b": "approved",
                                     "review_c": "approved", "final": "open"})

    def test_parallel_agencies_after_a_restart(self):
        """What changed each step is rebuilt from the log at start."""
        w = self.w
        rid = w.submit(w.workflow())["id"]
        w.decide(rid, "intake", "approve", agency=w.A)
        old = self.inbox_entry(w.C, rid, "review_c")["version"]
        w.decide(rid, "review_b", "return", agency=w.B, reason="seats?")
        self.restart("kill")
        w.decide(rid, "review_c", "approve", agency=w.C, expected_version=old)
        r = w.portal.post("/v1/requests/%s/info" % rid, {"step": "review_b", "message": "40"})
        self.assertEqual(r.status, 200, r)
        r = w.ag[w.B].post("/v1/tasks/%s/review_b/decision" % rid,
                           {"outcome": "approve", "expected_version": old})
        assert_error(self, r, 409, "conflict")

    def test_sla_events_leave_it_fresh(self):
        w = self.w
        wid = self.publish({"t": {"kind": "task", "agency": w.A, "sla": "1 working day"}})
        rid = w.submit(wid)["id"]
        t = self.inbox_entry(w.A, rid, "t")
        self.advance("P3D")
        v = w.view(rid)
        self.assertEqual(step_of(v, "t")["sla"], "breached", v)
        self.assertGreater(v["version"], t["version"], "the warning and the breach are events")
        v = w.decide(rid, "t", "approve", agency=w.A, expected_version=t["version"])
        self.assertEqual(v["status"], "completed")

    def test_stale_after_return_and_answer(self):
        w = self.w
        rid = w.submit(w.workflow())["id"]
        v = w.decide(rid, "intake", "return", agency=w.A, reason="which district?")
        old = v["version"]
        r = w.portal.post("/v1/requests/%s/info" % rid,
                          {"step": "intake", "form": {"district": "pathum-wan"}})
        self.assertEqual(r.status, 200, r)
        size = w.log_size()
        r = w.ag[w.A].post("/v1/tasks/%s/intake/decision" % rid,
                           {"outcome": "approve", "expected_version": old})
        assert_error(self, r, 409, "conflict")
        self.assertEqual(w.log_size(), size, "a stale decision wrote something")
        w.decide(rid, "intake", "approve", agency=w.A, expected_version=r_version(w, rid))

    def test_stale_after_the_form_changed_for_another_step(self):
        w = self.w
        rid = w.submit(w.workflow())["id"]
        w.decide(rid, "intake", "approve", agency=w.A)
        w.decide(rid, "review_c", "return", agency=w.C, reason="seats?")
        tb = self.inbox_entry(w.B, rid, "review_b")
        r = w.portal.post("/v1/requests/%s/info" % rid,
                          {"step": "review_c", "form": {"seats": 40}})
        self.assertEqual(r.status, 200, r)
        r = w.ag[w.B].post("/v1/tasks/%s/review_b/decision" % rid,
                           {"outcome": "approve", "expected_version": tb["version"]})
        assert_error(self, r, 409, "conflict")
        w.decide(rid, "review_b", "approve", agency=w.B,
                 expected_version=self.inbox_entry(w.B, rid, "review_b")["version"])

    def test_stale_after_escalation(self):
        w = self.w
        wid = self.publish({"t": {"kind": "task", "agency": w.A, "sla": "1 working day",
                                  "on_breach": {"escalate": w.B}}})
        rid = w.submit(wid)["id"]
        old = self.inbox_entry(w.A, rid, "t")["version"]
        self.advance("P2D")
        self.assertEqual(step_of(w.view(rid), "t")["agency"], w.B)
        r = w.ag[w.B].post("/v1/tasks/%s/t/decision" % rid,
                           {"outcome": "approve", "expected_version": old})
        assert_error(self, r, 409, "conflict")
        new = self.inbox_entry(w.B, rid, "t")["version"]
        self.assertGreater(new, old)
        w.decide(rid, "t", "approve", agency=w.B, expected_version=new)

    def test_versions_not_reached_are_stale(self):
        w = self.w
        sub = w.submit(w.workflow())
        for v in (sub["version"] + 1, 0, -3):
            r = w.ag[w.A].post("/v1/tasks/%s/intake/decision" % sub["id"],
                               {"outcome": "approve", "expected_version": v})
            assert_error(self, r, 409, "conflict")
        w.decide(sub["id"], "intake", "approve", agency=w.A, expected_version=sub["version"])


class TestInboxHistory(ViewCase):
    """The inbox's ended tasks (read from the index on disk) and its live
    ones (open work, from memory): every state, both sorts, pages of two
    across many entries, state=all merging the two in order, an escalated
    task only under the agency holding it, and the same pages after a clean
    restart and after a kill -9."""

    SORTS = ("due", "opened")
    STATES = ("approved", "rejected", "cancelled", "open", "waiting_applicant", "all")

    def expected(self, agency, rids, state, sort):
        """The inbox as the tracking views tell it: every task step that has
        opened, under the agency holding it now."""
        out = []
        for n, rid in enumerate(rids):
            v = self.w.view(rid)
            for i, s in enumerate(v["steps"]):
                if s["kind"] != "task" or s["agency"] != agency or not s["opened_at"]:
                    continue
                if state != "all" and s["state"] != state:
                    continue
                e = {"request_id": rid, "step": s["name"], "workflow": v["workflow"],
                     "state": s["state"], "opened_at": s["opened_at"], "due_at": s["due_at"],
                     "sla": s["sla"], "version": v["version"]}
                due = s["due_at"] or "~"  # none: after every time
                key = (due, s["opened_at"]) if sort == "due" else (s["opened_at"],)
                out.append((key + (n, i), e))
        out.sort(key=lambda x: x[0])
        return [e for _, e in out]

    def pages(self, agency, state, sort, limit=2):
        """Every page of the inbox, following next_cursor."""
        out, cursor = [], None
        for _ in range(200):
            path = "/v1/agencies/%s/tasks?state=%s&sort=%s&limit=%d" % (agency, state, sort,
                                                                         limit)
            if cursor:
                path += "&cursor=" + cursor
            r = self.w.ag[agency].get(path)
            self.assertEqual(r.status, 200, r)
            out.append(r.json["tasks"])
            cursor = r.json["next_cursor"]
            if not cursor:
                return out
        self.fail("the inbox's pages do not end")

    def check(self, agency, rids, state, sort):
        got = self.pages(agency, state, sort)
        want = self.expected(agency, rids, state, sort)
        flat = [t for p in got for t in p]
        self.assertEqual(flat, want, "inbox of %s, state=%s sort=%s" % (agency, state, sort))
        # Full pages, the last one short or full, and no empty page at the end
        # (next_cursor only when one more exists).
        for p in got[:-1]:
            self.assertEqual(len(p), 2, got)
        self.assertTrue(got[-1] or not want, got)
        return got

    def build(self):
        """Requests at a few instants (ties broken by submission), decided,
        rejected, withdrawn, returned, left open; a task escalated from A to
        B and decided there, another escalated and left open."""
        w = self.w
        wid = w.workflow()
        esc = self.publish({"t": {"kind": "task", "agency": w.A, "sla": "1 working day",
                                  "on_breach": {"escalate": w.B}}})
        plain = self.publish({"t": {"kind": "task", "agency": w.A}})  # no due time
        rids = []
        for k in range(14):
            if k % 3 == 0:
                self.advance("PT1H")
            rids.append(w.submit(plain if k % 4 == 1 else wid)["id"])
        e1, e2 = w.submit(esc)["id"], w.submit(esc)["id"]
        rids += [e1, e2]
        for k in (0, 2, 3, 5, 8, 9):
            w.decide(rids[k], "intake" if k % 4 != 1 else "t", "approve", agency=w.A)
        w.decide(rids[4], "intake", "reject", agency=w.A, reason="no")
        w.decide(rids[6], "intake", "reject", agency=w.A, reason="no")
        w.decide(rids[1], "t", "reject", agency=w.A, reason="no")
        for k in (7, 10, 12):
            r = w.portal.post("/v1/requests/%s/withdraw" % rids[k], {})
            self.assertEqual(r.status, 200, r)
        w.decide(rids[11], "intake", "return", agency=w.A, reason="which district?")
        # Two working days on: the escalations, and breaches of some others.
        self.advance("P3D")
        for rid in (e1, e2):
            self.assertEqual(step_of(w.view(rid), "t")["agency"], w.B)
        w.decide(e1, "t", "approve", agency=w.B)
        # rids[0] and rids[2] reach their final step (A's again); one is decided.
        for k in (0, 2):
            w.decide(rids[k], "review_b", "approve", agency=w.B)
            w.decide(rids[k], "review_c", "approve", agency=w.C)
        w.decide(rids[0], "final", "approve", agency=w.A)
        return rids, e1, e2

    def all_pages(self, rids):
        return {(ag, st, so): self.check(ag, rids, st, so)
                for ag in (self.w.A, self.w.B) for st in self.STATES for so in self.SORTS}

    def test_history_pages_and_restarts(self):
        w = self.w
        rids, e1, e2 = self.build()
        before = self.all_pages(rids)
        # Every kind of entry is there, over more than one page.
        flat = lambda ag, st: [t for p in before[(ag, st, "due")] for t in p]  # noqa: E731
        for st in ("approved", "rejected", "cancelled", "all"):
            self.assertGreater(len(before[(w.A, st, "due")]), 1, st)
        self.assertTrue(flat(w.A, "waiting_applicant"))
        states_a = {t["state"] for t in flat(w.A, "all")}
        self.assertTrue({"approved", "rejected", "cancelled", "open",
                         "waiting_applicant"} <= states_a, states_a)
        # The escalated tasks only under B, which holds them.
        self.assertFalse([t for t in flat(w.A, "all") if t["request_id"] in (e1, e2)])
        self.assertEqual({(t["request_id"], t["state"]) for t in flat(w.B, "all")
                          if t["request_id"] in (e1, e2)}, {(e1, "approved"), (e2, "open")})
        for how in ("stop", "kill"):
            self.restart(how)
            self.assertEqual(self.all_pages(rids), before, "after a %s" % how)

    def test_a_task_ending_between_pages_moves_to_disk(self):
        """A task decided while the agency pages through state=all is shown
        once, in its place, with its new state."""
        w = self.w
        wid = w.workflow()
        rids = [w.submit(wid)["id"] for _ in range(6)]
        w.decide(rids[0], "intake", "approve", agency=w.A)
        r = w.ag[w.A].get("/v1/agencies/%s/tasks?state=all&sort=opened&limit=2" % w.A)
        self.assertEqual(r.status, 200, r)
        first = r.json["tasks"]
        self.assertEqual([t["request_id"] for t in first], rids[:2], first)
        w.decide(rids[3], "intake", "approve", agency=w.A)
        rest, cursor = [], r.json["next_cursor"]
        while cursor:
            r = w.ag[w.A].get("/v1/agencies/%s/tasks?state=all&sort=opened&limit=2&cursor=%s"
                              % (w.A, cursor))
            self.assertEqual(r.status, 200, r)
            rest += r.json["tasks"]
            cursor = r.json["next_cursor"]
        # One entry per request (final waits for review_b and review_c).
        self.assertEqual([(t["request_id"], t["state"]) for t in rest],
                         [(rids[2], "open"), (rids[3], "approved"), (rids[4], "open"),
                          (rids[5], "open")], rest)
        self.assertEqual(rest, self.expected(w.A, rids, "all", "opened")[2:])

    def test_bad_cursor_and_unknown_state(self):
        w = self.w
        base = "/v1/agencies/%s/tasks?" % w.A
        for q in ("state=approved&cursor=x", "state=all&cursor=1.2", "state=done-ish",
                  "sort=late", "state=all&sort=opened&cursor=1.2.x.4"):
            assert_error(self, w.ag[w.A].get(base + q), 422, "invalid_request")
        assert_error(self, w.ag[w.B].get(base + "state=approved"), 403, "forbidden")
        assert_error(self, w.plat.get("/v1/agencies/no-such-agency/tasks?state=all"), 404,
                     "not_found")


def r_version(w, rid):
    return w.view(rid)["version"]


if __name__ == "__main__":
    main()
