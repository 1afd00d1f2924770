"""test_sla.py: deadlines in working time over real HTTP, with --test-clock=TIME
(SPEC §2 sla/warn_at/on_breach, §3 calendars, §5 Sla* events, §10).

Each test starts its own `osse serve --test-clock=2026-12-01T09:00:00+07:00`
on a fresh data directory, so that the clock starts on Tuesday 2026-12-01
09:00 +07:00 whatever today's date is; the clock only
moves forward inside a test. Every expected instant below is computed by hand
on the calendar th-gov of osse_harness.TH_GOV: Monday to Friday 08:30-16:30
+07:00 (08:30 = 01:30Z, 16:30 = 09:30Z), holidays Mon 2026-12-07, Thu
2026-12-10 and 2026-12-31; one working day = 480 working minutes; warn_at
defaults to 0.8 of the SLA in the same kind of time (0.8 x 480 = 384 minutes
= 6h24).

What is checked:
- due_at and warn_at at opening for working days, working hours and
  wall-clock SLAs, opened inside hours, in the afternoon, before a weekend
  with a holiday Monday, and outside hours (counting from the next opening;
  a deadline using the last minute of a day falls due at 16:30), plus a
  custom warn_at;
- the warning and the breach (notify), each fired exactly once, in due
  order, stamped with its due time, and not before it;
- each on_breach action: approve (deemed, by the system, the flow goes on),
  reject, escalate (fresh SLA, a second breach only notifies), expire;
- stop-the-clock on `return` and resumption with the time that was left
  (inside hours, over a weekend, after the warning already fired);
- a holiday declared after opening moves the due time (SlaRescheduled),
  moves warnings, leaves other calendars, wall-clock SLAs and closed steps
  alone; a holiday removed moves it back; changed hours keep the minutes
  already used; a returned step counts its remaining time on the new
  calendar; 200 requests rescheduled with a SIGKILL right after the
  calendar's answer are each rescheduled exactly once;
- restarts (SIGKILL and SIGTERM) with deadlines pending: each fires once,
  including an escalated task's fresh SLA and a stopped clock;
- /v1/test/clock itself (forward only, errors, roles, absent without the flag);
- /v1/stats and /metrics on a small scenario.

Python standard library only.
"""

import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (FORM_FIELDS, OSSE_BIN, TH_GOV, Server, World, good_form,  # noqa: E402
                          log_events, main, step_of, uniq)

LOCAL = dt.timezone(dt.timedelta(hours=7))


def Z(local):
    """'2026-12-01T09:00' in +07:00 -> '2026-12-01T02:00:00.000Z'."""
    t = dt.datetime.fromisoformat(local).replace(tzinfo=LOCAL)
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def of_type(events, typ, step=None):
    return [e for e in events if e["type"] == typ
            and (step is None or (e.get("data") or {}).get("step") == step)]


def types(events):
    return [e["type"] for e in events]


class ClockCase(unittest.TestCase):
    """A fresh `osse serve --test-clock=TIME` per test, the clock put at Tuesday
    2026-12-01 09:00 +07:00 before anything else, and a World on it."""

    START = "2026-12-01T09:00"

    def setUp(self):
        self.server = self.start_server()
        try:
            self.plat = self.server.client(self.server.admin_token())
            self.clock_to(self.START)
            self.w = World(self.server)
        except BaseException:
            # tearDown does not run after a failed setUp: leave no server behind.
            self.server.kill()
            self.server.cleanup()
            raise

    def start_server(self, data_dir=None):
        # The clock starts at a fixed instant of this file's own, never at
        # today's date (a suite that passes today must pass in three years).
        return Server(data_dir=data_dir,
                      extra_args=["--test-clock=%s:00+07:00" % self.START]).start()

    def tearDown(self):
        srv = self.server
        problem = None
        if srv.alive():
            rc = srv.stop()
            if rc != 0:
                problem = "osse exited with %s on SIGTERM; stderr tail:\n%s" % (
                    rc, srv.stderr_tail(60))
        elif srv.proc is not None:
            problem = "osse died during the test; stderr tail:\n%s" % srv.stderr_tail(60)
        if problem:
            srv.own_dir = False
        srv.cleanup()
        if problem:
            raise AssertionError(problem)

    # -- helpers -----------------------------------------------------------

    def clock_to(self, local):
        """POST /v1/test/clock {"now": local+07:00}; expects 200 {"now": Z}."""
        r = self.plat.post("/v1/test/clock", {"now": local + ":00+07:00"})
        self.assertEqual(r.status, 200, "POST /v1/test/clock now=%s: expected 200, got %r"
                         % (local, r))
        self.assertEqual(r.json.get("now"), Z(local),
                         "POST /v1/test/clock now=%s: expected now %s, got %r"
                         % (local, Z(local), r))
        return r.json

    def restart(self, how):
        """Stops the server (SIGTERM, checking exit 0, or SIGKILL) and starts
        a new one with --test-clock=TIME on the same data directory."""
        data = self.server.data_dir
        self.server.own_dir = False
        if how == "kill":
            self.server.kill()
        else:
            rc = self.server.stop()
            self.assertEqual(rc, 0, "osse exit code on SIGTERM: expected 0, got %s\n%s"
                             % (rc, self.server.stderr_tail()))
        old = self.server
        self.server = self.start_server(data_dir=data)
        self.server.own_dir = True
        self.server.log_path = old.log_path
        self.plat = self.server.client(self.server.admin_token())
        # Re-bind the World's clients to the new port (tokens survive).
        for c in [self.w.plat, self.w.portal, self.w.portal2, self.w.auditor,
                  self.w.payment, self.w.anon] + list(self.w.ag.values()):
            c.close()
            c.port = self.server.port
        self.w.server = self.server

    def publish(self, steps, calendar="th-gov", wid=None):
        wid = wid or uniq("wf")
        d = {"id": wid, "title": "SLA test " + wid,
             "form": json.loads(json.dumps(FORM_FIELDS)), "steps": steps}
        if calendar:
            d["calendar"] = calendar
        r = self.plat.post("/v1/workflows", d)
        self.assertEqual(r.status, 201, "publishing %s: expected 201, got %r" % (wid, r))
        return wid

    def submit(self, wid, **form):
        return self.w.submit(wid, good_form(**form))["id"]

    def events(self, rid):
        r = self.plat.get("/v1/requests/%s/events" % rid)
        self.assertEqual(r.status, 200, r)
        return r.json["events"]

    def view(self, rid):
        return self.w.view(rid)

    def step(self, rid, name):
        return step_of(self.view(rid), name)

    def assertCount(self, rid, typ, step, n, why=""):
        evs = self.events(rid)
        got = of_type(evs, typ, step)
        self.assertEqual(len(got), n, "%s: expected %d %s event(s) for step %s, got %d; "
                         "stream: %s" % (why or rid, n, typ, step, len(got),
                                         [(e["type"], e["at"], (e.get("data") or {}).get("step"))
                                          for e in evs]))
        return got

    def assertFired(self, rid, typ, step, at, why=""):
        """Exactly one typ event for step, stamped at (UTC string)."""
        got = self.assertCount(rid, typ, step, 1, why)[0]
        self.assertEqual(got["at"], at, "%s: %s of step %s: expected at %s (its due time), "
                         "got %s: %s" % (why or rid, typ, step, at, got["at"], got))
        return got

    def assertSla(self, rid, name, sla, state="open", due_at=None, agency=None):
        s = self.step(rid, name)
        self.assertEqual(s.get("state"), state, "step %s: expected state %s, got %s"
                         % (name, state, s))
        self.assertEqual(s.get("sla"), sla, "step %s: expected sla %r, got %s" % (name, sla, s))
        if due_at is not None:
            self.assertEqual(s.get("due_at"), due_at, "step %s: expected due_at %s, got %s"
                             % (name, due_at, s))
        if agency is not None:
            self.assertEqual(s.get("agency"), agency, "step %s: expected agency %s, got %s"
                             % (name, agency, s))
        return s


# --------------------------------------------------------------------------

class TestDueTimes(ClockCase):

    # Opened at -> {step: (due_at, warn_at)}; computed by hand on th-gov.
    #  d1 = 1 working day, h4 = 4 working hours, d2 = 2 working days,
    #  half = 1 working day with warn_at 0.5, wall = PT48H (0.8 -> 38h24).
    CASES = {
        # Tue 09:00: d1 7.5h Tue + 0.5h Wed -> Wed 09:00; warn 6h24 -> Tue 15:24.
        # h4 -> Tue 13:00, warn 3h12 -> 12:12. d2: 7.5 + 8 + 0.5 -> Thu 09:00,
        # warn 12h48: 7.5h Tue + 5h18 Wed -> Wed 13:48. half: 4h -> Tue 13:00.
        "2026-12-01T09:00": {"d1": ("2026-12-02T09:00", "2026-12-01T15:24"),
                             "h4": ("2026-12-01T13:00", "2026-12-01T12:12"),
                             "d2": ("2026-12-03T09:00", "2026-12-02T13:48"),
                             "half": ("2026-12-02T09:00", "2026-12-01T13:00")},
        # Tue 14:00: 2.5h left today. d1 -> Wed 14:00; warn 6h24 -> Wed 12:24.
        # h4 -> Wed 10:00; warn 3h12 -> Wed 09:12. d2 -> Thu 14:00, warn
        # 12h48 -> 2.5 + 8 + 2h18 -> Thu 10:48. half warns after 0.5 x 8h =
        # 4h -> 2.5 + 1.5 -> Wed 10:00.
        "2026-12-01T14:00": {"d1": ("2026-12-02T14:00", "2026-12-02T12:24"),
                             "h4": ("2026-12-02T10:00", "2026-12-02T09:12"),
                             "d2": ("2026-12-03T14:00", "2026-12-03T10:48"),
                             "half": ("2026-12-02T14:00", "2026-12-02T10:00")},
        # Fri 12-04 09:00: 7.5h Fri, Mon 12-07 is a holiday. d1 -> Tue 12-08
        # 09:00; warn Fri 15:24. h4 -> Fri 13:00. d2: 7.5 + 8 (Tue) + 0.5 ->
        # Wed 12-09 09:00; warn 12h48: 7.5 + 5h18 -> Tue 13:48.
        "2026-12-04T09:00": {"d1": ("2026-12-08T09:00", "2026-12-04T15:24"),
                             "h4": ("2026-12-04T13:00", "2026-12-04T12:12"),
                             "d2": ("2026-12-09T09:00", "2026-12-08T13:48"),
                             "half": ("2026-12-08T09:00", "2026-12-04T13:00")},
        # Sat 12-05 10:00, outside hours: counting starts Tue 12-08 08:30
        # (Monday is a holiday). d1 uses the whole of Tuesday -> due at its
        # closing, Tue 16:30 (not Wed 08:30); warn 08:30 + 6h24 = 14:54.
        # h4 -> 12:30, warn 11:42. d2 -> Wed 12-09 16:30, warn 8h + 4h48 ->
        # Wed 13:18. half warn 4h -> Tue 12:30.
        "2026-12-05T10:00": {"d1": ("2026-12-08T16:30", "2026-12-08T14:54"),
                             "h4": ("2026-12-08T12:30", "2026-12-08T11:42"),
                             "d2": ("2026-12-09T16:30", "2026-12-09T13:18"),
                             "half": ("2026-12-08T16:30", "2026-12-08T12:30")},
    }

    def test_due_and_warn_at_opening(self):
        """StepOpened carries due_at and warn_at computed in working time
        (or wall-clock time) from the opening, and the view shows due_at
        with sla "ok"."""
        A = self.w.A
        wid = self.publish({
            "d1": {"kind": "task", "agency": A, "sla": "1 working day"},
            "h4": {"kind": "task", "agency": A, "sla": "4 working hours"},
            "d2": {"kind": "task", "agency": A, "sla": "2 working days"},
            "half": {"kind": "task", "agency": A, "sla": "1 working day", "warn_at": 0.5},
            "wall": {"kind": "task", "agency": A, "sla": "PT48H"},
            "none": {"kind": "task", "agency": A},
        })
        for opened in sorted(self.CASES):
            self.clock_to(opened)
            rid = self.submit(wid)
            evs = self.events(rid)
            opened_evs = {e["data"]["step"]: e for e in of_type(evs, "StepOpened")}
            self.assertEqual(set(opened_evs), {"d1", "h4", "d2", "half", "wall", "none"},
                             "opened at %s: expected every step opened, got %s"
                             % (opened, types(evs)))
            exp = dict(self.CASES[opened])
            o = dt.datetime.fromisoformat(opened)
            exp["wall"] = ((o + dt.timedelta(hours=48)).isoformat()[:16],
                           (o + dt.timedelta(hours=38, minutes=24)).isoformat()[:16])
            for name, (due, warn) in exp.items():
                d = opened_evs[name]["data"]
                self.assertEqual(d.get("due_at"), Z(due),
                                 "opened at %s +07:00, step %s: expected StepOpened due_at %s "
                                 "(%s +07:00), got %s" % (opened, name, Z(due), due, d))
                self.assertEqual(d.get("warn_at"), Z(warn),
                                 "opened at %s +07:00, step %s: expected StepOpened warn_at %s "
                                 "(%s +07:00), got %s" % (opened, name, Z(warn), warn, d))
                self.assertEqual(opened_evs[name]["at"], Z(opened),
                                 "StepOpened %s: expected at = the clock %s" % (name, Z(opened)))
                self.assertSla(rid, name, "ok", due_at=Z(due))
            d = opened_evs["none"]["data"]
            self.assertIsNone(d.get("due_at"), "a step without sla: expected due_at null, got %s"
                              % d)
            self.assertIsNone(d.get("warn_at"), "a step without sla: expected warn_at null, got %s"
                              % d)


class TestWarnAndNotify(ClockCase):

    def test_warning_then_breach_notify(self):
        """1 working day opened Tue 09:00: SlaWarned at Tue 15:24 (not
        before), SlaBreached at Wed 09:00 with action notify; the task stays
        open and in the inbox as "breached"; nothing fires twice."""
        A = self.w.A
        wid = self.publish({"t": {"kind": "task", "agency": A, "sla": "1 working day"},
                            "u": {"kind": "task", "agency": A, "after": ["t"]}})
        rid = self.submit(wid)
        due, warn = Z("2026-12-02T09:00"), Z("2026-12-01T15:24")

        self.clock_to("2026-12-01T15:23")
        self.assertCount(rid, "SlaWarned", "t", 0, "clock Tue 15:23, warn_at 15:24")
        self.assertSla(rid, "t", "ok", due_at=due)

        self.clock_to("2026-12-01T15:24")  # exactly warn_at: it falls due
        w = self.assertFired(rid, "SlaWarned", "t", warn, "clock Tue 15:24 = warn_at")
        self.assertEqual(w["data"].get("due_at"), due,
                         "SlaWarned data: expected due_at %s, got %s" % (due, w["data"]))
        self.assertEqual((w.get("actor") or {}).get("kind"), "system",
                         "SlaWarned: expected actor kind system, got %s" % w.get("actor"))
        self.assertSla(rid, "t", "warned", due_at=due)

        self.clock_to("2026-12-02T08:59")
        self.assertCount(rid, "SlaBreached", "t", 0, "clock Wed 08:59, due 09:00")
        self.clock_to("2026-12-02T10:00")
        b = self.assertFired(rid, "SlaBreached", "t", due, "clock Wed 10:00")
        self.assertEqual(b["data"].get("due_at"), due, "SlaBreached data: expected due_at %s, "
                         "got %s" % (due, b["data"]))
        self.assertEqual(b["data"].get("action"), "notify",
                         "SlaBreached data: expected action notify (the default), got %s"
                         % b["data"])
        self.assertCount(rid, "SlaWarned", "t", 1, "after the breach")
        self.assertSla(rid, "t", "breached", state="open", due_at=due, agency=A)
        self.assertEqual(self.view(rid)["status"], "in_progress")
        inbox = [t for t in self.w.inbox(A) if t["request_id"] == rid]
        self.assertEqual([(t["step"], t.get("sla")) for t in inbox], [("t", "breached")],
                         "inbox of %s: expected task t with sla breached, got %s" % (A, inbox))
        r = self.plat.get("/v1/requests?breached=true")
        self.assertEqual(r.status, 200, r)
        self.assertIn(rid, [x["id"] for x in r.json["requests"]],
                      "GET /v1/requests?breached=true: expected %s listed" % rid)

        self.clock_to("2026-12-20T10:00")
        self.assertCount(rid, "SlaBreached", "t", 1, "weeks later")
        self.assertCount(rid, "SlaWarned", "t", 1, "weeks later")
        # A notify breach does not stop the agency deciding.
        self.w.decide(rid, "t", "approve", agency=A)
        self.assertSla(rid, "t", "breached", state="approved")
        self.assertEqual(self.step(rid, "u")["state"], "open")

    def test_one_advance_fires_all_in_due_order(self):
        """One POST {"advance"} over many deadlines of several requests
        fires each once, in due order (by seq), each stamped with its own
        due time, and all before the answer."""
        A = self.w.A
        wid = self.publish({
            "d1": {"kind": "task", "agency": A, "sla": "1 working day"},
            "h4": {"kind": "task", "agency": A, "sla": "4 working hours"},
            "wall": {"kind": "task", "agency": A, "sla": "PT3H"},
        })
        r1 = self.submit(wid)                  # Tue 09:00
        self.clock_to("2026-12-01T10:00")
        r2 = self.submit(wid)                  # Tue 10:00
        before = self.w.log_size()
        r = self.plat.post("/v1/test/clock", {"advance": "PT48H"})  # -> Thu 10:00
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json.get("now"), Z("2026-12-03T10:00"),
                         "advance PT48H from Tue 10:00: expected now %s, got %r"
                         % (Z("2026-12-03T10:00"), r))
        expected = {
            # r1 opened Tue 09:00
            (r1, "SlaWarned", "wall"): "2026-12-01T11:24",
            (r1, "SlaBreached", "wall"): "2026-12-01T12:00",
            (r1, "SlaWarned", "h4"): "2026-12-01T12:12",
            (r1, "SlaBreached", "h4"): "2026-12-01T13:00",
            (r1, "SlaWarned", "d1"): "2026-12-01T15:24",
            (r1, "SlaBreached", "d1"): "2026-12-02T09:00",
            # r2 opened Tue 10:00
            (r2, "SlaWarned", "wall"): "2026-12-01T12:24",
            (r2, "SlaBreached", "wall"): "2026-12-01T13:00",
            (r2, "SlaWarned", "h4"): "2026-12-01T13:12",
            (r2, "SlaBreached", "h4"): "2026-12-01T14:00",
            (r2, "SlaWarned", "d1"): "2026-12-01T16:24",
            (r2, "SlaBreached", "d1"): "2026-12-02T10:00",
        }
        fired = [e for e in log_events(self.plat, before)
                 if e["type"] in ("SlaWarned", "SlaBreached")]
        got = {}
        for e in fired:
            key = (e["stream"].split("/", 1)[1], e["type"], e["data"]["step"])
            self.assertNotIn(key, got, "fired twice: %s" % (key,))
            got[key] = e["at"]
        self.assertEqual(got, {k: Z(v) for k, v in expected.items()},
                         "deadlines fired by one advance: expected (left), got (right)")
        ats = [e["at"] for e in fired]
        self.assertEqual(ats, sorted(ats), "expected the firings in due order by seq, got %s"
                         % [(e["type"], e["data"]["step"], e["at"]) for e in fired])


class TestOnBreachActions(ClockCase):

    def test_approve_deemed(self):
        """on_breach approve: SlaBreached then TaskDecided outcome approve
        deemed:true by the system, stamped with the due time; the next step
        opens at that time with its SLA counted from it."""
        A, B = self.w.A, self.w.B
        wid = self.publish({
            "a": {"kind": "task", "agency": A, "sla": "4 working hours", "on_breach": "approve"},
            "b": {"kind": "task", "agency": B, "after": ["a"], "sla": "1 working day"},
        })
        rid = self.submit(wid)
        self.clock_to("2026-12-01T12:59")
        self.assertCount(rid, "TaskDecided", "a", 0, "before the due time Tue 13:00")
        self.clock_to("2026-12-01T14:00")
        due = Z("2026-12-01T13:00")
        b = self.assertFired(rid, "SlaBreached", "a", due)
        self.assertEqual(b["data"].get("action"), "approve", "SlaBreached: expected action "
                         "approve, got %s" % b["data"])
        d = self.assertFired(rid, "TaskDecided", "a", due)
        self.assertEqual(d["data"].get("outcome"), "approve", d)
        self.assertIs(d["data"].get("deemed"), True, "TaskDecided: expected deemed true, got %s"
                      % d["data"])
        self.assertEqual((d.get("actor") or {}).get("kind"), "system",
                         "deemed approval: expected actor kind system, got %s" % d.get("actor"))
        evs = self.events(rid)
        self.assertLess(evs.index(b), evs.index(d), "SlaBreached must come before TaskDecided")
        s = self.step(rid, "a")
        self.assertEqual((s["state"], s.get("outcome")), ("approved", "approve"),
                         "step a after deemed approval: %s" % s)
        # b opens at Tue 13:00: 3.5h Tue + 4.5h Wed -> Wed 13:00; warn 6h24
        # -> 3.5h + 2h54 -> Wed 11:24.
        o = self.assertFired(rid, "StepOpened", "b", due)
        self.assertEqual(o["data"].get("due_at"), Z("2026-12-02T13:00"),
                         "b opened Tue 13:00 with 1 working day: expected due Wed 13:00, "
                         "got %s" % o["data"])
        self.assertEqual(o["data"].get("warn_at"), Z("2026-12-02T11:24"),
                         "b: expected warn_at Wed 11:24, got %s" % o["data"])
        self.w.decide(rid, "b", "approve", agency=B)
        self.assertEqual(self.view(rid)["status"], "completed")
        self.clock_to("2026-12-09T09:00")
        self.assertCount(rid, "SlaBreached", None, 1, "after completion, nothing fires")

    def test_reject_deemed(self):
        """on_breach reject: SlaBreached, TaskDecided reject deemed:true,
        RequestRejected; the other open step is cancelled."""
        A, B = self.w.A, self.w.B
        wid = self.publish({
            "a": {"kind": "task", "agency": A, "sla": "4 working hours", "on_breach": "reject"},
            "b": {"kind": "task", "agency": B, "sla": "1 working day"},
        })
        rid = self.submit(wid)
        self.clock_to("2026-12-02T12:00")
        due = Z("2026-12-01T13:00")
        b = self.assertFired(rid, "SlaBreached", "a", due)
        self.assertEqual(b["data"].get("action"), "reject", b["data"])
        d = self.assertFired(rid, "TaskDecided", "a", due)
        self.assertEqual((d["data"].get("outcome"), d["data"].get("deemed")), ("reject", True),
                         "expected TaskDecided reject deemed, got %s" % d["data"])
        self.assertEqual((d.get("actor") or {}).get("kind"), "system", d)
        rr = self.assertFired(rid, "RequestRejected", None, due)
        evs = self.events(rid)
        self.assertLess(evs.index(d), evs.index(rr))
        v = self.view(rid)
        self.assertEqual(v["status"], "rejected", v)
        self.assertEqual({s["name"]: s["state"] for s in v["steps"]},
                         {"a": "rejected", "b": "cancelled"}, v["steps"])
        # b was cancelled before its own warning (Tue 15:24) and due time.
        self.assertCount(rid, "SlaWarned", "b", 0, "b was cancelled at Tue 13:00")
        self.assertCount(rid, "SlaBreached", "b", 0, "b was cancelled at Tue 13:00")

    def test_escalate(self):
        """on_breach {escalate: B}: TaskEscalated from A to B with a fresh
        SLA counted from the breach; the task moves inboxes, sla back to
        ok; the fresh SLA's breach only notifies."""
        A, B = self.w.A, self.w.B
        wid = self.publish({
            "t": {"kind": "task", "agency": A, "sla": "1 working day",
                  "on_breach": {"escalate": B}},
        })
        rid = self.submit(wid)
        self.clock_to("2026-12-02T10:00")
        due1 = Z("2026-12-02T09:00")
        b = self.assertFired(rid, "SlaBreached", "t", due1)
        self.assertIn(b["data"].get("action"), ("escalate", {"escalate": B}),
                      "SlaBreached: expected action escalate, got %s" % b["data"])
        esc = self.assertFired(rid, "TaskEscalated", "t", due1)
        # Fresh 1 working day from Wed 09:00 -> Thu 09:00.
        due2 = Z("2026-12-03T09:00")
        self.assertEqual((esc["data"].get("from"), esc["data"].get("to"),
                          esc["data"].get("due_at")), (A, B, due2),
                         "TaskEscalated: expected from %s to %s due_at %s, got %s"
                         % (A, B, due2, esc["data"]))
        self.assertSla(rid, "t", "ok", state="open", due_at=due2, agency=B)
        self.assertEqual([t["step"] for t in self.w.inbox(B) if t["request_id"] == rid], ["t"],
                         "expected the task in %s's inbox" % B)
        self.assertEqual([t["step"] for t in self.w.inbox(A) if t["request_id"] == rid], [],
                         "expected the task gone from %s's inbox" % A)
        r = self.w.ag[A].post("/v1/tasks/%s/t/decision" % rid, {"outcome": "approve"})
        self.assertIn(r.status, (403, 409), "the first agency deciding an escalated task: "
                      "expected 403 or 409, got %r" % r)
        # Fresh warning at Wed 15:24, fresh breach Thu 09:00 (notify only).
        self.clock_to("2026-12-04T10:00")
        br = self.assertCount(rid, "SlaBreached", "t", 2, "after the fresh SLA ran out")
        self.assertEqual(br[1]["at"], due2, "second SlaBreached: expected at %s, got %s"
                         % (due2, br[1]))
        self.assertEqual(br[1]["data"].get("action"), "notify",
                         "a breach of the escalated SLA: expected action notify, got %s"
                         % br[1]["data"])
        self.assertCount(rid, "TaskEscalated", "t", 1, "no second escalation")
        self.assertSla(rid, "t", "breached", state="open", due_at=due2, agency=B)
        self.w.decide(rid, "t", "approve", agency=B)
        self.assertEqual(self.view(rid)["status"], "completed")

    def test_expire(self):
        """on_breach expire on a payment step (P3D): SlaBreached action
        expire then RequestExpired at the due time; status expired and every
        open step cancelled; the agency can no longer decide."""
        A = self.w.A
        wid = self.publish({
            "t": {"kind": "task", "agency": A},
            "fee": {"kind": "payment", "amount": "100", "sla": "P3D", "on_breach": "expire"},
        })
        rid = self.submit(wid)
        self.assertEqual(self.view(rid)["status"], "awaiting_payment")
        self.clock_to("2026-12-04T08:59")
        self.assertCount(rid, "RequestExpired", None, 0, "before Fri 09:00")
        w = self.assertFired(rid, "SlaWarned", "fee", Z("2026-12-03T18:36"),
                             "0.8 x 72h = 57h36 after Tue 09:00")
        self.assertEqual(w["data"].get("due_at"), Z("2026-12-04T09:00"), w)
        self.clock_to("2026-12-05T09:00")
        due = Z("2026-12-04T09:00")
        b = self.assertFired(rid, "SlaBreached", "fee", due)
        self.assertEqual(b["data"].get("action"), "expire", b["data"])
        self.assertFired(rid, "RequestExpired", None, due)
        v = self.view(rid)
        self.assertEqual(v["status"], "expired", v)
        self.assertEqual({s["name"]: s["state"] for s in v["steps"]},
                         {"t": "cancelled", "fee": "cancelled"}, v["steps"])
        self.w.decide(rid, "t", "approve", agency=A, expect=409)


class TestStopTheClock(ClockCase):

    def test_return_stops_and_info_resumes(self):
        """1 working day opened Tue 09:00 (due Wed 09:00, warn Tue 15:24),
        returned at Tue 11:00 after 2h used (6h left, 4h24 left to the
        warning). Nothing fires while it waits. Info at Thu 10:00: due Thu
        16:00, warn Thu 14:24. Info on Saturday: counting resumes Tue 12-08
        08:30 (Mon 12-07 is a holiday): due 14:30, warn 12:54."""
        A = self.w.A
        wid = self.publish({"t": {"kind": "task", "agency": A, "sla": "1 working day"}})
        r1 = self.submit(wid)
        r2 = self.submit(wid)
        self.clock_to("2026-12-01T11:00")
        for rid in (r1, r2):
            self.w.decide(rid, "t", "return", agency=A, reason="need the floor plan")
            v = self.view(rid)
            self.assertEqual((v["status"], step_of(v, "t")["state"]),
                             ("awaiting_info", "waiting_applicant"), v)
        self.clock_to("2026-12-03T10:00")   # past the old warn and due times
        for rid in (r1, r2):
            self.assertCount(rid, "SlaWarned", "t", 0, "while waiting for the applicant")
            self.assertCount(rid, "SlaBreached", "t", 0, "while waiting for the applicant")
        r = self.w.portal.post("/v1/requests/%s/info" % r1,
                               {"step": "t", "form": {"seats": 30}, "message": "here"})
        self.assertEqual(r.status, 200, "POST info: expected 200, got %r" % r)
        self.assertSla(r1, "t", "ok", due_at=Z("2026-12-03T16:00"))
        self.clock_to("2026-12-03T14:23")
        self.assertCount(r1, "SlaWarned", "t", 0, "Thu 14:23, moved warn_at is 14:24")
        self.clock_to("2026-12-03T14:30")
        self.assertFired(r1, "SlaWarned", "t", Z("2026-12-03T14:24"),
                         "warning moved with the stopped clock")
        self.clock_to("2026-12-03T15:59")
        self.assertCount(r1, "SlaBreached", "t", 0, "Thu 15:59, moved due is 16:00")
        self.clock_to("2026-12-03T16:30")
        self.assertFired(r1, "SlaBreached", "t", Z("2026-12-03T16:00"),
                         "breach at info time + the 6h that were left")
        self.assertCount(r2, "SlaBreached", "t", 0, "r2 still waits for the applicant")

        self.clock_to("2026-12-05T10:00")   # Saturday
        r = self.w.portal.post("/v1/requests/%s/info" % r2,
                               {"step": "t", "form": {"seats": 31}, "message": "here"})
        self.assertEqual(r.status, 200, r)
        self.assertSla(r2, "t", "ok", due_at=Z("2026-12-08T14:30"))
        self.clock_to("2026-12-08T12:53")
        self.assertCount(r2, "SlaWarned", "t", 0, "Tue 12-08 12:53, warn at 12:54")
        self.clock_to("2026-12-08T14:29")
        self.assertFired(r2, "SlaWarned", "t", Z("2026-12-08T12:54"))
        self.assertCount(r2, "SlaBreached", "t", 0, "Tue 12-08 14:29, due 14:30")
        self.clock_to("2026-12-08T15:00")
        self.assertFired(r2, "SlaBreached", "t", Z("2026-12-08T14:30"))

    def test_return_after_the_warning(self):
        """Warned at Tue 15:24, returned at Tue 16:00 (7h used, 1h left),
        info Wed 12-02 09:00 -> due Wed 10:00; the warning is not repeated."""
        A = self.w.A
        wid = self.publish({"t": {"kind": "task", "agency": A, "sla": "1 working day"}})
        rid = self.submit(wid)
        self.clock_to("2026-12-01T16:00")
        self.assertFired(rid, "SlaWarned", "t", Z("2026-12-01T15:24"))
        self.w.decide(rid, "t", "return", agency=A, reason="more")
        self.clock_to("2026-12-02T09:00")
        r = self.w.portal.post("/v1/requests/%s/info" % rid,
                               {"step": "t", "form": {"seats": 3}, "message": "m"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(step_of(r.json, "t").get("due_at"), Z("2026-12-02T10:00"),
                         "info answer: expected due_at Wed 10:00 (the 1h left), got %s"
                         % step_of(r.json, "t"))
        self.clock_to("2026-12-02T11:00")
        self.assertFired(rid, "SlaWarned", "t", Z("2026-12-01T15:24"),
                         "the warning already fired before the return: not again")
        self.assertFired(rid, "SlaBreached", "t", Z("2026-12-02T10:00"))


class TestCalendarChange(ClockCase):

    def test_holiday_declared_after_opening(self):
        """Opened Tue 09:00 on a calendar cal (= th-gov); at Tue 11:00
        Wed 12-02 is declared a holiday. d1 (1 working day) moves from Wed
        09:00 to Thu 09:00; d2 (2 working days) from Thu 09:00 to Fri 09:00
        and its warning from Wed 13:48 to Thu 13:48; the wall-clock step, a
        decided step, and a request on th-gov are left alone."""
        A = self.w.A
        cal = uniq("cal")
        r = self.plat.put("/v1/calendars/" + cal, TH_GOV)
        self.assertIn(r.status, (200, 201), r)
        steps = {
            "d1": {"kind": "task", "agency": A, "sla": "1 working day"},
            "d2": {"kind": "task", "agency": A, "sla": "2 working days"},
            "wall": {"kind": "task", "agency": A, "sla": "PT48H"},
            "done": {"kind": "task", "agency": A, "sla": "1 working day"},
        }
        wid = self.publish(steps, calendar=cal)
        ctl_wid = self.publish(steps, calendar="th-gov")
        rid = self.submit(wid)
        ctl = self.submit(ctl_wid)
        self.clock_to("2026-12-01T11:00")
        self.w.decide(rid, "done", "approve", agency=A)
        before = self.w.log_size()
        body = dict(TH_GOV, holidays=TH_GOV["holidays"] + ["2026-12-02"])
        r = self.plat.put("/v1/calendars/" + cal, body)
        self.assertIn(r.status, (200, 201), "PUT calendar with a new holiday: %r" % r)
        new = log_events(self.plat, before)
        self.assertIn("CalendarUpdated", types(new), types(new))
        resch = of_type(self.events(rid), "SlaRescheduled")
        got = {e["data"]["step"]: (e["data"].get("old_due_at"), e["data"].get("due_at"))
               for e in resch}
        self.assertEqual(got, {"d1": (Z("2026-12-02T09:00"), Z("2026-12-03T09:00")),
                               "d2": (Z("2026-12-03T09:00"), Z("2026-12-04T09:00"))},
                         "SlaRescheduled {step: (old_due_at, due_at)}: expected d1 and d2 "
                         "moved by one day (not wall, not the decided step), got %s" % got)
        self.assertEqual(len(resch), 2, "expected one SlaRescheduled per moved step: %s" % resch)
        for e in resch:
            self.assertEqual(e["at"], Z("2026-12-01T11:00"), "SlaRescheduled at: %s" % e)
        self.assertEqual(of_type(self.events(ctl), "SlaRescheduled"), [],
                         "a request on another calendar must not be rescheduled")
        self.assertSla(rid, "d1", "ok", due_at=Z("2026-12-03T09:00"))
        self.assertSla(rid, "d2", "ok", due_at=Z("2026-12-04T09:00"))
        self.assertSla(rid, "wall", "ok", due_at=Z("2026-12-03T09:00"))

        # Wed 16:00: past the old d1 due time and the old d2 warning.
        self.clock_to("2026-12-02T16:00")
        self.assertFired(rid, "SlaWarned", "d1", Z("2026-12-01T15:24"),
                         "d1's warning (Tue 15:24) is before the holiday and stays")
        self.assertCount(rid, "SlaBreached", "d1", 0, "d1 moved to Thu 09:00")
        self.assertCount(rid, "SlaWarned", "d2", 0, "d2's warning moved to Thu 13:48")
        self.assertFired(ctl, "SlaBreached", "d1", Z("2026-12-02T09:00"),
                         "the th-gov request keeps its due time")
        self.clock_to("2026-12-03T14:00")
        self.assertFired(rid, "SlaBreached", "d1", Z("2026-12-03T09:00"))
        self.assertFired(rid, "SlaWarned", "d2", Z("2026-12-03T13:48"))
        self.assertCount(rid, "SlaBreached", "d2", 0, "d2 due Fri 09:00")
        self.clock_to("2026-12-04T10:00")
        self.assertFired(rid, "SlaBreached", "d2", Z("2026-12-04T09:00"))
        for name in ("d1", "d2", "wall", "done"):
            self.assertLessEqual(len(of_type(self.events(rid), "SlaBreached", name)), 1, name)
        self.assertCount(rid, "SlaBreached", "done", 0, "a decided step never breaches")

    def test_holiday_removed_and_hours_changed(self):
        """On a calendar with Wed 12-02 a holiday, opened Tue 09:00, 1
        working day is due Thu 09:00. At Tue 11:00 the holiday is removed:
        due Wed 09:00. At Tue 11:30 the hours become 10:00-18:00: the 150
        minutes used stay used, 330 are left from Tue 11:30 -> Tue 17:00
        (not 18:00, which counting from the opening again would give); the
        warning (384 minutes) -> 234 left -> Tue 15:24."""
        A = self.w.A
        cal = uniq("cal")
        hol = dict(TH_GOV, holidays=TH_GOV["holidays"] + ["2026-12-02"])
        self.assertIn(self.plat.put("/v1/calendars/" + cal, hol).status, (200, 201))
        wid = self.publish({"t": {"kind": "task", "agency": A, "sla": "1 working day"}},
                           calendar=cal)
        rid = self.submit(wid)
        self.assertSla(rid, "t", "ok", due_at=Z("2026-12-03T09:00"))
        self.clock_to("2026-12-01T11:00")
        r = self.plat.put("/v1/calendars/" + cal, TH_GOV)
        self.assertIn(r.status, (200, 201), r)
        ev = of_type(self.events(rid), "SlaRescheduled", "t")
        self.assertEqual([(e["data"].get("old_due_at"), e["data"].get("due_at")) for e in ev],
                         [(Z("2026-12-03T09:00"), Z("2026-12-02T09:00"))],
                         "holiday removed: expected the due time moved back to Wed 09:00")
        self.clock_to("2026-12-01T11:30")
        r = self.plat.put("/v1/calendars/" + cal, dict(TH_GOV, hours=["10:00", "18:00"]))
        self.assertIn(r.status, (200, 201), r)
        ev = of_type(self.events(rid), "SlaRescheduled", "t")
        self.assertEqual(len(ev), 2, ev)
        self.assertEqual((ev[1]["data"].get("old_due_at"), ev[1]["data"].get("due_at")),
                         (Z("2026-12-02T09:00"), Z("2026-12-01T17:00")),
                         "hours changed to 10:00-18:00 at Tue 11:30 with 150 minutes used: "
                         "expected due Tue 17:00, got %s" % ev[1]["data"])
        self.clock_to("2026-12-01T15:23")
        self.assertCount(rid, "SlaWarned", "t", 0, "Tue 15:23")
        self.clock_to("2026-12-01T18:00")
        self.assertFired(rid, "SlaWarned", "t", Z("2026-12-01T15:24"))
        self.assertFired(rid, "SlaBreached", "t", Z("2026-12-01T17:00"))

    def test_holiday_after_return_moves_nothing_used(self):
        """A step returned to the applicant keeps its used time across a
        calendar change; the remaining 6h count on the new calendar."""
        A = self.w.A
        cal = uniq("cal")
        self.assertIn(self.plat.put("/v1/calendars/" + cal, TH_GOV).status, (200, 201))
        wid = self.publish({"t": {"kind": "task", "agency": A, "sla": "1 working day"}},
                           calendar=cal)
        rid = self.submit(wid)
        self.clock_to("2026-12-01T11:00")
        self.w.decide(rid, "t", "return", agency=A, reason="more")
        self.clock_to("2026-12-01T12:00")
        body = dict(TH_GOV, holidays=TH_GOV["holidays"] + ["2026-12-03"])
        r = self.plat.put("/v1/calendars/" + cal, body)
        self.assertIn(r.status, (200, 201), r)
        self.clock_to("2026-12-02T15:00")
        r = self.w.portal.post("/v1/requests/%s/info" % rid,
                               {"step": "t", "form": {"seats": 3}, "message": "m"})
        self.assertEqual(r.status, 200, r)
        # 6h left from Wed 15:00: 1.5h Wed, Thu is now a holiday, 4.5h Fri
        # -> Fri 13:00.
        self.assertSla(rid, "t", "ok", due_at=Z("2026-12-04T13:00"))


class TestRestart(ClockCase):

    def test_restart_with_pending_deadlines_fires_each_once(self):
        """Deadlines pending across SIGKILL and SIGTERM restarts fire exactly
        once each, at their due times, and never again after another
        restart. The clock after a restart starts at the last event's time."""
        A, B = self.w.A, self.w.B
        wid = self.publish({
            "n": {"kind": "task", "agency": A, "sla": "1 working day"},
            "ap": {"kind": "task", "agency": A, "sla": "4 working hours", "on_breach": "approve"},
            "next": {"kind": "task", "agency": B, "after": ["ap"], "sla": "1 working day"},
            "wall": {"kind": "task", "agency": A, "sla": "PT2H"},
        })
        rids = [self.submit(wid) for _ in range(3)]
        expect = {  # (type, step) -> at; every request the same
            ("SlaWarned", "wall"): "2026-12-01T10:36",
            ("SlaBreached", "wall"): "2026-12-01T11:00",
            ("SlaWarned", "ap"): "2026-12-01T12:12",
            ("SlaBreached", "ap"): "2026-12-01T13:00",
            ("TaskDecided", "ap"): "2026-12-01T13:00",
            ("StepOpened", "next"): "2026-12-01T13:00",
            ("SlaWarned", "n"): "2026-12-01T15:24",
            ("SlaWarned", "next"): "2026-12-02T11:24",
            ("SlaBreached", "n"): "2026-12-02T09:00",
            ("SlaBreached", "next"): "2026-12-02T13:00",
        }

        def check(upto, why):
            for rid in rids:
                evs = self.events(rid)
                for (typ, step), at in expect.items():
                    got = [e["at"] for e in of_type(evs, typ, step)]
                    want = [Z(at)] if at <= upto else []
                    self.assertEqual(got, want, "%s, request %s: %s of %s: expected %s, got %s"
                                     % (why, rid, typ, step, want, got))

        check("2026-12-01T09:00", "before any firing")
        self.restart("kill")
        check("2026-12-01T09:00", "after SIGKILL with nothing due")
        self.clock_to("2026-12-01T11:30")
        check("2026-12-01T11:30", "clock Tue 11:30 after a SIGKILL restart")

        self.restart("kill")
        # The clock restarts at the last event's time (Tue 11:00, the wall
        # breach): going back before it is refused, it is still allowed.
        r = self.plat.post("/v1/test/clock", {"now": "2026-12-01T10:59:00+07:00"})
        self.assertEqual(r.status, 409, "after a restart the clock must not go back before "
                         "the last event (Tue 11:00 +07:00): expected 409, got %r" % r)
        check("2026-12-01T11:30", "after a second SIGKILL")
        self.clock_to("2026-12-02T12:00")
        check("2026-12-02T12:00", "clock Wed 12:00 after a SIGKILL restart")

        self.restart("term")
        check("2026-12-02T12:00", "after SIGTERM")
        self.clock_to("2026-12-04T12:00")
        check("2026-12-04T12:00", "clock Fri 12:00 after a SIGTERM restart")

        self.restart("kill")
        self.clock_to("2026-12-20T12:00")
        check("2026-12-20T12:00", "after everything fired, another restart and weeks later")
        for rid in rids:
            v = self.view(rid)
            self.assertEqual({s["name"]: (s["state"], s["sla"]) for s in v["steps"]},
                             {"n": ("open", "breached"), "ap": ("approved", "breached"),
                              "next": ("open", "breached"), "wall": ("open", "breached")},
                             "steps of %s at the end" % rid)

    def test_restart_while_waiting_for_applicant(self):
        """A stopped clock survives a restart: returned at Tue 11:00 (6h
        left), SIGKILL, info at Thu 10:00 -> due Thu 16:00."""
        A = self.w.A
        wid = self.publish({"t": {"kind": "task", "agency": A, "sla": "1 working day"}})
        rid = self.submit(wid)
        self.clock_to("2026-12-01T11:00")
        self.w.decide(rid, "t", "return", agency=A, reason="more")
        self.restart("kill")
        self.clock_to("2026-12-03T10:00")
        self.assertCount(rid, "SlaBreached", "t", 0, "while waiting, across a restart")
        r = self.w.portal.post("/v1/requests/%s/info" % rid,
                               {"step": "t", "form": {"seats": 3}, "message": "m"})
        self.assertEqual(r.status, 200, r)
        self.assertSla(rid, "t", "ok", due_at=Z("2026-12-03T16:00"))
        self.restart("term")
        self.clock_to("2026-12-03T17:00")
        self.assertFired(rid, "SlaWarned", "t", Z("2026-12-03T14:24"))
        self.assertFired(rid, "SlaBreached", "t", Z("2026-12-03T16:00"))


    def test_escalated_task_across_restart(self):
        """Escalated at Wed 09:00 (fresh due Thu 09:00), SIGKILL, restart:
        the fresh SLA's breach fires once, notify only, no second
        escalation."""
        A, B = self.w.A, self.w.B
        wid = self.publish({"t": {"kind": "task", "agency": A, "sla": "1 working day",
                                  "on_breach": {"escalate": B}}})
        rid = self.submit(wid)
        self.clock_to("2026-12-02T10:00")
        self.assertFired(rid, "TaskEscalated", "t", Z("2026-12-02T09:00"))
        self.restart("kill")
        self.assertSla(rid, "t", "ok", due_at=Z("2026-12-03T09:00"), agency=B)
        self.clock_to("2026-12-03T10:00")
        br = self.assertCount(rid, "SlaBreached", "t", 2, "fresh SLA after a restart")
        self.assertEqual((br[1]["at"], br[1]["data"].get("action")),
                         (Z("2026-12-03T09:00"), "notify"), br[1])
        self.assertCount(rid, "TaskEscalated", "t", 1, "no second escalation")
        self.restart("term")
        self.clock_to("2026-12-10T10:00")
        self.assertCount(rid, "SlaBreached", "t", 2, "nothing more after another restart")
        self.assertSla(rid, "t", "breached", agency=B)

    def test_calendar_change_over_many_requests_survives_a_crash(self):
        """200 open requests on one calendar; a holiday is declared and the
        server is SIGKILLed right after the answer. After the restart each
        request has exactly one SlaRescheduled (the work resumes if it was
        cut) and its due time moved from Wed 09:00 to Thu 09:00."""
        A = self.w.A
        cal = uniq("cal")
        self.assertIn(self.plat.put("/v1/calendars/" + cal, TH_GOV).status, (200, 201))
        wid = self.publish({"t": {"kind": "task", "agency": A, "sla": "1 working day"}},
                           calendar=cal)
        portal = self.server.client(self.w.portal.token, keepalive=True)
        rids = []
        for _ in range(200):
            r = portal.post("/v1/requests", {"workflow": wid, "form": good_form()})
            self.assertEqual(r.status, 201, r)
            rids.append(r.json["id"])
        portal.close()
        self.clock_to("2026-12-01T10:00")
        body = dict(TH_GOV, holidays=TH_GOV["holidays"] + ["2026-12-02"])
        r = self.plat.put("/v1/calendars/" + cal, body)
        self.assertIn(r.status, (200, 201), r)
        self.restart("kill")
        # Let the resumed work finish: the log stops growing.
        last, stable = -1, 0
        for _ in range(100):
            n = self.w.log_size()
            stable = stable + 1 if n == last else 0
            last = n
            if stable >= 2:
                break
            time.sleep(0.1)
        bad = []
        for rid in rids:
            evs = of_type(self.events(rid), "SlaRescheduled", "t")
            got = [(e["data"].get("old_due_at"), e["data"].get("due_at")) for e in evs]
            if got != [(Z("2026-12-02T09:00"), Z("2026-12-03T09:00"))]:
                bad.append((rid, got))
            elif self.step(rid, "t").get("due_at") != Z("2026-12-03T09:00"):
                bad.append((rid, self.step(rid, "t")))
        self.assertEqual(bad, [], "expected every request rescheduled exactly once from "
                         "Wed 09:00 to Thu 09:00; wrong ones: %s" % bad[:5])
        self.clock_to("2026-12-03T10:00")
        late = [rid for rid in rids
                if [e["at"] for e in of_type(self.events(rid), "SlaBreached", "t")]
                != [Z("2026-12-03T09:00")]]
        self.assertEqual(late, [], "expected one breach at Thu 09:00 for each request")


class TestClockRoute(ClockCase):

    def test_clock_route(self):
        """/v1/test/clock: advance and now answer 200 {"now"}; back in time
        is 409; bad bodies are 422; only the platform may move it."""
        r = self.plat.post("/v1/test/clock", {"advance": "PT26H"})
        self.assertEqual((r.status, r.json), (200, {"now": Z("2026-12-02T11:00")}),
                         "advance PT26H from Tue 09:00: expected 200 {now: Wed 11:00}, got %r" % r)
        r = self.plat.post("/v1/test/clock", {"now": "2026-12-02T10:59:59+07:00"})
        self.assertEqual(r.status, 409, "clock back by 1 s: expected 409, got %r" % r)
        self.assertEqual(r.json["error"]["code"], "clock_backwards", r)
        r = self.plat.post("/v1/test/clock", {"now": "2026-12-02T04:00:00Z"})
        self.assertEqual((r.status, r.json), (200, {"now": Z("2026-12-02T11:00")}),
                         "now = the current time: expected 200, got %r" % r)
        for bad in ({}, {"advance": "soon"}, {"now": "tomorrow"},
                    {"advance": "PT1H", "now": "2026-12-03T00:00:00Z"}, {"later": "PT1H"}):
            r = self.plat.post("/v1/test/clock", bad)
            self.assertIn(r.status, (400, 422), "POST /v1/test/clock %s: expected 400/422, got %r"
                          % (bad, r))
        r = self.w.portal.post("/v1/test/clock", {"advance": "PT1H"})
        self.assertEqual(r.status, 403, "a portal moving the clock: expected 403, got %r" % r)
        r = self.w.anon.post("/v1/test/clock", {"advance": "PT1H"})
        self.assertEqual(r.status, 401, "no token: expected 401, got %r" % r)
        r = self.plat.post("/v1/test/clock", {"advance": "PT1H"})
        self.assertEqual(r.json, {"now": Z("2026-12-02T12:00")},
                         "after the refused calls the clock only moved by PT1H: %r" % r)

    def assertClock(self, client, z, what):
        """The clock stands exactly at z (RFC 3339 Z with ms): a millisecond
        earlier is 409 clock_backwards, z itself is 200 and moves nothing."""
        t = dt.datetime.strptime(z, "%Y-%m-%dT%H:%M:%S.%fZ") - dt.timedelta(milliseconds=1)
        r = client.post("/v1/test/clock", {"now": t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"})
        self.assertEqual((r.status, (r.json.get("error") or {}).get("code")),
                         (409, "clock_backwards"), "%s: expected the clock past %s, got %r"
                         % (what, t, r))
        r = client.post("/v1/test/clock", {"now": z})
        self.assertEqual((r.status, r.json), (200, {"now": z}),
                         "%s: expected the clock at %s, got %r" % (what, z, r))

    def test_starts_at_time_and_keeps_its_position(self):
        """--test-clock=TIME starts the clock at TIME (not at today's date);
        an advance that fires nothing is still kept across a SIGKILL and a
        SIGTERM; a restart with the same TIME resumes where the clock stood;
        a later TIME moves it forward; an earlier one does not move it back."""
        self.assertClock(self.plat, Z(self.START), "--test-clock=%s" % self.START)
        evs = self.plat.get("/v1/log?after=0&limit=1").json["events"]
        self.assertEqual(evs[0]["at"], Z(self.START),
                         "the first event of a new folder is stamped with TIME: %r" % evs[0])
        r = self.plat.post("/v1/test/clock", {"advance": "PT5H"})  # fires nothing
        self.assertEqual(r.json, {"now": Z("2026-12-01T14:00")}, r)
        for how in ("kill", "term"):
            self.restart(how)
            self.assertClock(self.plat, Z("2026-12-01T14:00"),
                             "after %s and a restart with --test-clock=%s" % (how, self.START))
        data = self.server.data_dir
        self.server.own_dir = False
        self.assertEqual(self.server.stop(), 0)
        later = Server(data_dir=data, extra_args=["--test-clock=2029-06-04T09:00:00+07:00"])
        try:
            for i in range(2):
                later.start()
                self.assertClock(later.client(later.admin_token()), "2029-06-04T02:00:00.000Z",
                                 "a later TIME moves the clock forward (start %d)" % (i + 1))
                self.assertEqual(later.stop(), 0)
        finally:
            later.stop()
        self.server = self.start_server(data_dir=data)  # the file's earlier TIME
        self.server.own_dir = True
        self.plat = self.server.client(self.server.admin_token())
        self.assertClock(self.plat, "2029-06-04T02:00:00.000Z",
                         "an earlier TIME never moves the clock back")

    def test_idempotency_expires_on_the_test_clock(self):
        """An Idempotency-Key is remembered for 24 hours of the engine's clock
        (SPEC §10: the test clock governs the 24-hour expiries)."""
        wid = self.w.workflow()
        body = json.dumps({"workflow": wid, "form": good_form()})
        key = {"Idempotency-Key": uniq("key")}
        r1 = self.w.portal.post("/v1/requests", raw=body, headers=key)
        self.assertEqual(r1.status, 201, r1)
        self.plat.post("/v1/test/clock", {"advance": "PT23H59M"})
        r2 = self.w.portal.post("/v1/requests", raw=body, headers=key)
        self.assertEqual((r2.status, r2.json.get("id")), (201, r1.json["id"]),
                         "within 24 h the key answers the first answer: %r" % r2)
        self.plat.post("/v1/test/clock", {"advance": "PT2M"})
        r3 = self.w.portal.post("/v1/requests", raw=body, headers=key)
        self.assertEqual(r3.status, 201, r3)
        self.assertNotEqual(r3.json["id"], r1.json["id"],
                            "after 24 h of the test clock the key is forgotten: %r" % r3)

    def test_bad_time_is_a_usage_error(self):
        """--test-clock=TIME with something that is not RFC 3339 exits 2."""
        p = subprocess.run([OSSE_BIN, "serve", "--data", tempfile.mkdtemp(prefix="osse-it-"),
                            "--listen", "127.0.0.1:0", "--test-clock=tomorrow"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 2, p)
        self.assertIn(b"RFC 3339", p.stderr)

    def test_no_route_without_flag(self):
        """Without --test-clock=TIME, /v1/test/clock does not exist (404)."""
        srv = Server().start()
        try:
            r = srv.client(srv.admin_token()).post("/v1/test/clock", {"advance": "PT1H"})
            self.assertEqual(r.status, 404, "without --test-clock=TIME: expected 404, got %r" % r)
        finally:
            rc = srv.stop()
            srv.cleanup()
        self.assertEqual(rc, 0)


class TestStats(ClockCase):

    def test_stats_and_metrics(self):
        """Four requests with one task (1 working day) opened Tue 09:00:
        r1 decided after 2 working hours, r2 after 4, r3 after 9 (Wed 10:00,
        breached), r4 open and breached. Stats for (agency, workflow): open
        1 (overdue), decided by a person 3, breaches 2, median 4 working hours,
        within SLA 2 of 3."""
        A = self.w.A
        wid = self.publish({"t": {"kind": "task", "agency": A, "sla": "1 working day"}})
        rids = [self.submit(wid) for _ in range(4)]
        self.clock_to("2026-12-01T11:00")
        self.w.decide(rids[0], "t", "approve", agency=A)
        self.clock_to("2026-12-01T13:00")
        self.w.decide(rids[1], "t", "reject", agency=A)
        self.clock_to("2026-12-02T10:00")
        self.w.decide(rids[2], "t", "approve", agency=A)

        r = self.w.auditor.get("/v1/stats")
        self.assertEqual(r.status, 200, "GET /v1/stats as auditor: %r" % r)
        rows = [s for s in r.json["rows"] if s.get("agency") == A and s.get("workflow") == wid]
        self.assertEqual(len(rows), 1, "expected one stats row for (%s, %s), got %s"
                         % (A, wid, r.json))
        s = rows[0]
        self.assertEqual((s.get("open"), s.get("overdue"), s.get("decided_by_person"),
                          s.get("decided_within_sla"), s.get("breaches")),
                         (1, 1, 3, 2, 2), "stats (open, overdue, decided_by_person, "
                         "decided_within_sla, breaches): expected (1, 1, 3, 2, 2), got %s" % s)
        self.assertIsInstance(s.get("median_decision_working_hours"), (int, float), s)
        self.assertAlmostEqual(s["median_decision_working_hours"], 4.0, places=2,
                               msg="median decision time of 2, 4 and 9 working hours: "
                               "expected 4, got %s" % s)
        self.assertIsInstance(s.get("share_within_sla"), (int, float), s)
        self.assertAlmostEqual(s["share_within_sla"], 2 / 3, places=2,
                               msg="share decided within SLA: expected 2/3, got %s" % s)
        self.assertEqual(self.plat.get("/v1/stats").status, 200)
        r = self.w.portal.get("/v1/stats")
        self.assertEqual(r.status, 403, "GET /v1/stats as a portal: expected 403, got %r" % r)

        r = self.w.anon.get("/metrics")
        self.assertEqual(r.status, 200, r)
        text = r.body.decode()

        def metric(name):
            for line in text.splitlines():
                m = re.match(r"^%s\{([^}]*)\}\s+(\S+)" % name, line)
                if not m:
                    continue
                labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
                if labels.get("agency") == A and labels.get("workflow") == wid:
                    return float(m.group(2))
            return None

        self.assertEqual(metric("osse_open_tasks"), 1,
                         "/metrics osse_open_tasks{agency=%s,workflow=%s}: expected 1" % (A, wid))
        self.assertEqual(metric("osse_sla_breaches"), 2,
                         "/metrics osse_sla_breaches{agency=%s,workflow=%s}: expected 2"
                         % (A, wid))


if __name__ == "__main__":
    main()
