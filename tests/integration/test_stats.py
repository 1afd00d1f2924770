"""test_stats.py: GET /v1/stats tells the truth (SPEC §10).

One `osse serve --test-clock=TIME` per test, the clock starting at Monday
2030-01-07 09:00 +07:00 (02:00Z) on th-gov (Monday to Friday 08:30-16:30 +07:00, no
holiday in January 2030). Every request is submitted at that instant; each
task has an SLA of 1 working day, due Tuesday 09:00 +07:00 (02:00Z).

  wf1 (A, notify):   r1 decided Mon 11:00 (2 working hours), r2 Mon 13:00
                     (4), r3 Tue 10:00 (9, after its breach), r4 never (breached)
  wf2 (A, auto_approve): approved by its rule at submission
  wf3 (A, on_breach approve): deemed approved at the breach, Tue 09:00
  wf4 (A, on_breach escalate to B): both breach Tue 09:00 and move to B with
                     a fresh SLA (due Wed 09:00); B decides e1 Tue 11:00 (2
                     working hours after the escalation) and lets e2 breach too
  the clock ends at Wed 10:00 +07:00 (03:00Z).

What is checked: the shape; a person's decisions, within the SLA and their
median in working hours (odd and even counts); automatic and deemed
approvals are not decisions by a person; a breach stays with the agency that
breached after an escalation, and the agency escalated to is charged only
with its own; escalated_away; open and overdue; from/to; bucket=day and
bucket=week (weeks start Monday 00:00 UTC) with decisions in the bucket of
their time and open/overdue as of each bucket's end; /metrics agrees; bad
parameters are 422. The stints that ended are read from an index on disk
by end time (engine/stats.c): a `from` between a stint's start and end, at
and a millisecond after an end, after every end; a returned and resumed
task from a time; buckets by day and week across a month; the same answers
after a clean stop and a kill -9, and osse replay finds the index equal.

Python standard library only.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import assert_error, good_form, main, replay_data  # noqa: E402
from test_sla import ClockCase  # noqa: E402
KEYS = {"agency", "workflow", "open", "overdue", "decided_by_person", "decided_within_sla",
        "share_within_sla", "auto_approved", "deemed_approved", "escalated_away", "breaches",
        "median_decision_working_hours"}
# B's one decision of e1: 2 working hours after the escalation, within its SLA.
B_DECIDED = {"decided_by_person": 1, "decided_within_sla": 1, "share_within_sla": 1.0,
             "median_decision_working_hours": 2.0}
ZERO = {"open": 0, "overdue": 0, "decided_by_person": 0, "decided_within_sla": 0,
        "share_within_sla": None, "auto_approved": 0, "deemed_approved": 0,
        "escalated_away": 0, "breaches": 0, "median_decision_working_hours": None}


class TestStats(ClockCase):
    """test_sla's case (a fresh server per test, its clock starting at START,
    a World on it), at a Monday of this file's own, with the scenario above."""

    START = "2030-01-07T09:00"

    def setUp(self):
        super().setUp()
        self.scenario()

    def at(self, local):
        self.clock_to(local)

    def scenario(self):
        w = self.w
        A, B = w.A, w.B
        day = "1 working day"
        self.wf1 = self.publish({"t": {"kind": "task", "agency": A, "sla": day}})
        self.wf2 = self.publish({"t": {"kind": "task", "agency": A, "sla": day,
                                       "auto_approve": "form.area_sqm <= 50"}})
        self.wf3 = self.publish({"t": {"kind": "task", "agency": A, "sla": day,
                                       "on_breach": "approve"}})
        self.wf4 = self.publish({"t": {"kind": "task", "agency": A, "sla": day,
                                       "on_breach": {"escalate": B}}})
        big = good_form(area_sqm=120)
        r = [w.submit(self.wf1, form=big)["id"] for _ in range(4)]
        w.submit(self.wf2, form=good_form(area_sqm=30))
        w.submit(self.wf3, form=big)
        e = [w.submit(self.wf4, form=big)["id"] for _ in range(2)]
        self.at("2030-01-07T11:00")
        w.decide(r[0], "t", "approve", agency=A)
        self.at("2030-01-07T13:00")
        w.decide(r[1], "t", "reject", agency=A)
        self.at("2030-01-08T10:00")
        w.decide(r[2], "t", "approve", agency=A)
        self.at("2030-01-08T11:00")
        w.decide(e[0], "t", "approve", agency=B)
        self.at("2030-01-09T10:00")

    def stats(self, query="", client=None):
        r = (client or self.w.auditor).get("/v1/stats" + query)
        self.assertEqual(r.status, 200, "GET /v1/stats%s: %r" % (query, r))
        return r.json

    def rows(self, rows):
        """{(agency, workflow): row} for this test's agencies, checking keys."""
        out = {}
        for row in rows:
            self.assertEqual(set(row), KEYS, row)
            if row["agency"] in self.w.agencies:
                out[(row["agency"], row["workflow"])] = row
        return out

    def assertRow(self, rows, agency, wid, why, **want):
        row = rows.get((agency, wid))
        self.assertIsNotNone(row, "%s: no row for (%s, %s) in %s" % (why, agency, wid, rows))
        expect = dict(ZERO, **want)
        got = {k: row[k] for k in expect}
        for k in ("share_within_sla", "median_decision_working_hours"):
            if isinstance(got[k], float) and isinstance(expect[k], (int, float)):
                self.assertAlmostEqual(got[k], expect[k], places=6, msg="%s: %s" % (why, k))
                got[k] = expect[k]
        self.assertEqual(got, expect, "%s: row (%s, %s)" % (why, agency, wid))

    def assertMonday(self, rows, why):
        """Monday: two decisions (median of 2 and 4 working hours), the
        automatic approval, everything else open and not yet breached; B
        has had no task yet."""
        A = self.w.A
        self.assertRow(rows, A, self.wf1, why, open=2, decided_by_person=2,
                       decided_within_sla=2, share_within_sla=1.0,
                       median_decision_working_hours=3.0)
        self.assertRow(rows, A, self.wf2, why, auto_approved=1)
        self.assertRow(rows, A, self.wf3, why, open=1)
        self.assertRow(rows, A, self.wf4, why, open=2)
        self.assertEqual(set(rows), {(A, self.wf1), (A, self.wf2), (A, self.wf3), (A, self.wf4)},
                         why)

    def test_whole_range(self):
        w = self.w
        A, B = w.A, w.B
        out = self.stats()
        self.assertEqual(set(out), {"rows"}, "no buckets without bucket=: %s" % out)
        rows = self.rows(out["rows"])
        self.assertEqual(set(rows), {(A, self.wf1), (A, self.wf2), (A, self.wf3), (A, self.wf4),
                                     (B, self.wf4)})
        self.assertRow(rows, A, self.wf1, "person", open=1, overdue=1, decided_by_person=3,
                       decided_within_sla=2, share_within_sla=2 / 3, breaches=2,
                       median_decision_working_hours=4.0)
        self.assertRow(rows, A, self.wf2, "automatic approval", auto_approved=1)
        self.assertRow(rows, A, self.wf3, "deemed approval", deemed_approved=1, breaches=1)
        self.assertRow(rows, A, self.wf4, "escalated away", escalated_away=2, breaches=2)
        self.assertRow(rows, B, self.wf4, "escalated to", open=1, overdue=1, breaches=1,
                       **B_DECIDED)
        self.assertEqual(self.stats(client=self.plat)["rows"], out["rows"])
        r = w.portal.get("/v1/stats")
        self.assertEqual(r.status, 403, r)

    def test_from_and_to(self):
        A, B = self.w.A, self.w.B
        # Up to Tuesday 00:00Z.
        rows = self.rows(self.stats("?to=2030-01-08T00:00:00Z")["rows"])
        self.assertMonday(rows, "to Tuesday")
        # The same instant with an offset (its `+` sent unencoded, as
        # browsers do not), and as a date.
        for q in ("?to=2030-01-08T07:00:00%2B07:00", "?to=2030-01-08T07:00:00+07:00",
                  "?to=2030-01-08"):
            self.assertEqual(self.rows(self.stats(q)["rows"]), rows, q)
        # From Tuesday: r3's decision and the breaches.
        rows = self.rows(self.stats("?from=2030-01-08T00:00:00Z")["rows"])
        self.assertRow(rows, A, self.wf1, "from", open=1, overdue=1, decided_by_person=1,
                       share_within_sla=0.0, breaches=2, median_decision_working_hours=9.0)
        self.assertRow(rows, A, self.wf2, "from")
        self.assertRow(rows, A, self.wf3, "from", deemed_approved=1, breaches=1)
        self.assertRow(rows, B, self.wf4, "from", open=1, overdue=1, breaches=1, **B_DECIDED)
        # Tuesday only.
        rows = self.rows(self.stats("?from=2030-01-08&to=2030-01-09")["rows"])
        self.assertRow(rows, B, self.wf4, "Tuesday", open=1, **B_DECIDED)
        self.assertRow(rows, A, self.wf4, "Tuesday", escalated_away=2, breaches=2)

    def test_buckets_by_day(self):
        A, B = self.w.A, self.w.B
        out = self.stats("?bucket=day")
        self.assertEqual([b["start"] for b in out["buckets"]],
                         ["2030-01-07T00:00:00.000Z", "2030-01-08T00:00:00.000Z",
                          "2030-01-09T00:00:00.000Z"], out["buckets"])
        mon, tue, wed = [self.rows(b["rows"]) for b in out["buckets"]]
        self.assertMonday(mon, "Monday's bucket")
        self.assertRow(tue, A, self.wf1, "Tuesday", open=1, overdue=1, decided_by_person=1,
                       share_within_sla=0.0, breaches=2, median_decision_working_hours=9.0)
        self.assertRow(tue, A, self.wf3, "Tuesday", deemed_approved=1, breaches=1)
        self.assertRow(tue, A, self.wf4, "Tuesday", escalated_away=2, breaches=2)
        self.assertRow(tue, B, self.wf4, "Tuesday", open=1, **B_DECIDED)
        self.assertEqual(set(tue), {(A, self.wf1), (A, self.wf3), (A, self.wf4),
                                    (B, self.wf4)}, "rows of Tuesday")
        self.assertRow(wed, A, self.wf1, "Wednesday", open=1, overdue=1)
        self.assertRow(wed, B, self.wf4, "Wednesday", open=1, overdue=1, breaches=1)
        self.assertEqual(set(wed), {(A, self.wf1), (B, self.wf4)}, "rows of Wednesday")
        self.assertEqual(self.rows(out["rows"]), self.rows(self.stats()["rows"]))

    def test_buckets_by_week(self):
        out = self.stats("?bucket=week")
        self.assertEqual([b["start"] for b in out["buckets"]], ["2030-01-07T00:00:00.000Z"])
        self.assertEqual(self.rows(out["buckets"][0]["rows"]), self.rows(out["rows"]))
        # A range that begins mid-week starts with that week's Monday.
        out = self.stats("?bucket=week&from=2030-01-09T00:00:00Z&to=2030-01-15T00:00:00Z")
        self.assertEqual([b["start"] for b in out["buckets"]], ["2030-01-07T00:00:00.000Z"])

    def test_returned_tasks_are_not_open(self):
        """After the scenario (Wed 10:00), agency C with two tasks of one
        working day: ra returned after 1 working hour, answered a day later
        and approved 1 working hour after; rb breached Thu 10:00, returned,
        answered Fri 09:00. While the applicant has a task it is neither
        open nor overdue, and that time is not decision time."""
        w = self.w
        C = w.C
        wf5 = self.publish({"t": {"kind": "task", "agency": C, "sla": "1 working day"}})
        ra, rb = [w.submit(wf5)["id"] for _ in range(2)]

        def row():
            return self.rows(self.stats()["rows"])

        self.at("2030-01-09T11:00")
        w.decide(ra, "t", "return", agency=C, reason="which district?")
        self.assertRow(row(), C, wf5, "ra returned", open=1)
        self.at("2030-01-10T11:00")
        self.assertRow(row(), C, wf5, "rb breached", open=1, overdue=1, breaches=1)
        r = w.portal.post("/v1/requests/%s/info" % ra, {"step": "t", "message": "bang-rak"})
        self.assertEqual(r.status, 200, r)
        w.decide(rb, "t", "return", agency=C, reason="seats?")
        self.assertRow(row(), C, wf5, "ra answered, rb returned", open=1, breaches=1)
        self.at("2030-01-10T12:00")
        w.decide(ra, "t", "approve", agency=C)
        self.at("2030-01-11T09:00")
        r = w.portal.post("/v1/requests/%s/info" % rb, {"step": "t", "message": "40"})
        self.assertEqual(r.status, 200, r)
        self.assertRow(row(), C, wf5, "rb answered after its breach", open=1, overdue=1,
                       breaches=1, decided_by_person=1, decided_within_sla=1,
                       share_within_sla=1.0, median_decision_working_hours=2.0)

    def test_from_between_a_start_and_an_end(self):
        """The stints that ended are read from the index on disk from the
        first end time that can count: a `from` between a stint's start and
        its end counts its end; one after its end counts nothing of it, but
        the (agency, workflow) keeps its row."""
        A, B = self.w.A, self.w.B
        # Mon 12:00: r1 (decided 11:00) is before, r2 (13:00, 4 hours) and
        # r3 (Tue 10:00, 9 hours, after its breach) after; both breaches
        # (Tue 09:00) and r4 still open and overdue; the automatic approval
        # (at submission) is before: its row is there with zeros.
        rows = self.rows(self.stats("?from=2030-01-07T05:00:00Z")["rows"])
        self.assertRow(rows, A, self.wf1, "from Mon 12:00", open=1, overdue=1,
                       decided_by_person=2, decided_within_sla=1, share_within_sla=0.5,
                       breaches=2, median_decision_working_hours=6.5)
        self.assertRow(rows, A, self.wf2, "from Mon 12:00")
        self.assertRow(rows, A, self.wf3, "from Mon 12:00", deemed_approved=1, breaches=1)
        self.assertRow(rows, A, self.wf4, "from Mon 12:00", escalated_away=2, breaches=2)
        self.assertRow(rows, B, self.wf4, "from Mon 12:00", open=1, overdue=1, breaches=1,
                       **B_DECIDED)
        # A breach after the due time, before the decision: from between
        # them (Tue 09:30) counts r3's decision, late, and not the breaches.
        rows = self.rows(self.stats("?from=2030-01-08T02:30:00Z")["rows"])
        self.assertRow(rows, A, self.wf1, "from Tue 09:30", open=1, overdue=1,
                       decided_by_person=1, share_within_sla=0.0,
                       median_decision_working_hours=9.0)
        self.assertRow(rows, A, self.wf3, "from Tue 09:30")
        self.assertRow(rows, A, self.wf4, "from Tue 09:30")
        # The escalation's own instant (Tue 09:00) is in a range from it,
        # and not in one from a millisecond later.
        rows = self.rows(self.stats("?from=2030-01-08T02:00:00Z")["rows"])
        self.assertRow(rows, A, self.wf4, "from the escalation", escalated_away=2, breaches=2)
        self.assertRow(rows, A, self.wf3, "from the escalation", deemed_approved=1, breaches=1)
        rows = self.rows(self.stats("?from=2030-01-08T02:00:00.001Z")["rows"])
        self.assertRow(rows, A, self.wf4, "a millisecond after the escalation")
        self.assertRow(rows, A, self.wf3, "a millisecond after the escalation")
        self.assertRow(rows, B, self.wf4, "a millisecond after the escalation", open=1,
                       overdue=1, breaches=1, **B_DECIDED)
        # After every end: only what is held at the range's last instant.
        rows = self.rows(self.stats("?from=2030-01-09T00:00:00Z")["rows"])
        self.assertRow(rows, A, self.wf1, "from Wednesday", open=1, overdue=1)
        self.assertRow(rows, B, self.wf4, "from Wednesday", open=1, overdue=1, breaches=1)
        for wid in (self.wf2, self.wf3, self.wf4):
            self.assertRow(rows, A, wid, "from Wednesday")
        self.assertEqual(len(rows), 5, rows)
        # A range that ends before B's stints began has no row for B.
        rows = self.rows(self.stats("?from=2030-01-07T05:00:00Z&to=2030-01-08T01:00:00Z")["rows"])
        self.assertNotIn((B, self.wf4), rows)
        self.assertRow(rows, A, self.wf4, "Mon 12:00 to Tue 08:00", open=2)

    def test_returned_and_resumed_from_a_time(self):
        """ra returned (Wed 11:00), answered and approved Thu 12:00 (2
        working hours); rb breached Thu 10:00, returned Thu 11:00, answered
        Fri 09:00 and held since. From Thu 11:30 (after rb's return and
        breach, before ra's decision): the returned stints are in nothing,
        ra's decision counts, rb's resumed stint is held and overdue (from
        memory, not the index)."""
        w = self.w
        C = w.C
        wf5 = self.publish({"t": {"kind": "task", "agency": C, "sla": "1 working day"}})
        ra, rb = [w.submit(wf5)["id"] for _ in range(2)]
        self.at("2030-01-09T11:00")
        w.decide(ra, "t", "return", agency=C, reason="which district?")
        self.at("2030-01-10T11:00")
        r = w.portal.post("/v1/requests/%s/info" % ra, {"step": "t", "message": "bang-rak"})
        self.assertEqual(r.status, 200, r)
        w.decide(rb, "t", "return", agency=C, reason="seats?")
        self.at("2030-01-10T12:00")
        w.decide(ra, "t", "approve", agency=C)
        self.at("2030-01-11T09:00")
        r = w.portal.post("/v1/requests/%s/info" % rb, {"step": "t", "message": "40"})
        self.assertEqual(r.status, 200, r)
        rows = self.rows(self.stats("?from=2030-01-10T04:30:00Z")["rows"])
        self.assertRow(rows, C, wf5, "from Thu 11:30", open=1, overdue=1, decided_by_person=1,
                       decided_within_sla=1, share_within_sla=1.0,
                       median_decision_working_hours=2.0)
        # Up to Thu 10:30: ra waits for the applicant (in nothing), rb is
        # held and overdue since its breach.
        rows = self.rows(self.stats("?from=2030-01-09T00:00:00Z&to=2030-01-10T03:30:00Z")["rows"])
        self.assertRow(rows, C, wf5, "Wed to Thu 10:30", open=1, overdue=1, breaches=1)
        out = self.stats("?bucket=day&from=2030-01-09")
        days = {b["start"][:10]: self.rows(b["rows"]).get((C, wf5)) for b in out["buckets"]}
        self.assertEqual(sorted(days), ["2030-01-09", "2030-01-10", "2030-01-11"])
        # Wednesday's end: rb held (ra returned); Thursday's: rb returned
        # after its breach, ra decided; Friday (now): rb held again, overdue.
        for day, want in (("2030-01-09", dict(open=1)),
                          ("2030-01-10", dict(breaches=1, decided_by_person=1,
                                              decided_within_sla=1, share_within_sla=1.0,
                                              median_decision_working_hours=2.0)),
                          ("2030-01-11", dict(open=1, overdue=1))):
            self.assertRow({(C, wf5): days[day]}, C, wf5, day, **want)

    def test_buckets_across_a_month(self):
        """Agency C decides one task in the week of Jan 7 (1 working hour)
        and one in the week of Jan 21 (2); the clock goes on to Mon Feb 4
        09:00. Buckets by day run from `from` to the last instant (now),
        by week from the Monday before `from`; r4 (A) and e2 (B) stay open
        and overdue in every one after their breach."""
        w = self.w
        A, B, C = w.A, w.B, w.C
        wf5 = self.publish({"t": {"kind": "task", "agency": C, "sla": "1 working day"}})
        c1 = w.submit(wf5)["id"]
        self.at("2030-01-09T11:00")
        w.decide(c1, "t", "approve", agency=C)
        self.at("2030-01-21T10:00")
        c2 = w.submit(wf5)["id"]
        self.at("2030-01-21T12:00")
        w.decide(c2, "t", "approve", agency=C)
        self.at("2030-02-04T09:00")
        out = self.stats("?bucket=day&from=2030-01-09&to=2030-02-09")
        starts = [b["start"] for b in out["buckets"]]
        want = ["2030-01-%02dT00:00:00.000Z" % d for d in range(9, 32)] + \
            ["2030-02-%02dT00:00:00.000Z" % d for d in range(1, 5)]
        self.assertEqual(starts, want, "days up to now")
        for b in out["buckets"]:
            day, rows = b["start"][:10], self.rows(b["rows"])
            self.assertRow(rows, A, self.wf1, day, open=1, overdue=1)
            self.assertRow(rows, B, self.wf4, day, open=1, overdue=1,
                           breaches=1 if day == "2030-01-09" else 0)
            if day == "2030-01-09":
                self.assertRow(rows, C, wf5, day, decided_by_person=1, decided_within_sla=1,
                               share_within_sla=1.0, median_decision_working_hours=1.0)
            elif day == "2030-01-21":
                self.assertRow(rows, C, wf5, day, decided_by_person=1, decided_within_sla=1,
                               share_within_sla=1.0, median_decision_working_hours=2.0)
            else:
                self.assertNotIn((C, wf5), rows, day)
            self.assertEqual(set(rows) - {(A, self.wf1), (B, self.wf4), (C, wf5)}, set(), day)
        rows = self.rows(out["rows"])
        self.assertRow(rows, C, wf5, "the month", decided_by_person=2, decided_within_sla=2,
                       share_within_sla=1.0, median_decision_working_hours=1.5)
        out = self.stats("?bucket=week&from=2030-01-01&to=2030-02-01")
        self.assertEqual([b["start"][:10] for b in out["buckets"]],
                         ["2029-12-31", "2030-01-07", "2030-01-14", "2030-01-21",
                          "2030-01-28"])
        weeks = [self.rows(b["rows"]) for b in out["buckets"]]
        self.assertEqual(weeks[0], {}, "the week before the first request")
        self.assertRow(weeks[1], C, wf5, "week of Jan 7", decided_by_person=1,
                       decided_within_sla=1, share_within_sla=1.0,
                       median_decision_working_hours=1.0)
        self.assertNotIn((C, wf5), weeks[2])
        self.assertRow(weeks[3], C, wf5, "week of Jan 21", decided_by_person=1,
                       decided_within_sla=1, share_within_sla=1.0,
                       median_decision_working_hours=2.0)
        for i in (2, 3, 4):
            self.assertRow(weeks[i], A, self.wf1, "week %d" % i, open=1, overdue=1)
            self.assertRow(weeks[i], B, self.wf4, "week %d" % i, open=1, overdue=1)
        # Without from, the buckets begin with the first request's day.
        out = self.stats("?bucket=week")
        self.assertEqual([b["start"][:10] for b in out["buckets"]],
                         ["2030-01-07", "2030-01-14", "2030-01-21", "2030-01-28",
                          "2030-02-04"])

    QUERIES = ("", "?bucket=day", "?bucket=week", "?from=2030-01-08",
               "?from=2030-01-07T05:00:00Z", "?from=2030-01-08T02:30:00Z&bucket=day",
               "?from=2030-01-09T00:00:00Z", "?to=2030-01-08T00:00:00Z&bucket=day")

    def test_same_after_a_restart(self):
        """The counts are a projection of the log: a clean stop and a kill
        -9, then a start that reads the records and indexes, give the same
        answers; osse replay finds every stint's entry equal."""
        before = [self.stats(q) for q in self.QUERIES]
        for how in ("stop", "kill"):
            self.restart(how)
            self.assertEqual([self.stats(q) for q in self.QUERIES], before, how)
        self.server.stop()
        _, rec = replay_data(self.server.data_dir)
        ix = rec["indexes"]
        self.assertEqual((ix["missing"], ix["different"], ix["extra"]), (0, 0, 0), ix)
        # 8 requests in the list, 8 ended stints (r1-r3, the automatic and
        # the deemed approval, two escalations away, e1's decision), the
        # 6 task steps that ended, in both orders of the inboxes' history;
        # no lookup entry for a tracking code (engine/trackcode.h: one names
        # its request by the seq it permutes).
        self.assertEqual(ix["equal"], 8 + 8 + 2 * 6, ix)

    def test_metrics_agree(self):
        A, B = self.w.A, self.w.B
        text = self.w.anon.get("/metrics").body.decode()

        def metric(name, agency, wid):
            for line in text.splitlines():
                m = re.match(r"^%s\{([^}]*)\}\s+(\S+)" % name, line)
                if m:
                    labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
                    if labels.get("agency") == agency and labels.get("workflow") == wid:
                        return float(m.group(2))
            return None

        self.assertEqual(metric("osse_sla_breaches", A, self.wf4), 2)
        self.assertEqual(metric("osse_sla_breaches", B, self.wf4), 1)
        self.assertEqual(metric("osse_open_tasks", B, self.wf4), 1)
        self.assertEqual(metric("osse_open_tasks", A, self.wf1), 1)

    def test_bad_parameters(self):
        for q in ("?bucket=month", "?from=yesterday", "?to=2030-13-01",
                  "?from=2030-01-09&to=2030-01-08", "?from=2030-01-08&to=2030-01-08",
                  "?agency=x", "?bucket=day&from=2020-01-01"):
            assert_error(self, self.w.auditor.get("/v1/stats" + q), 422, "invalid_request",
                         "GET /v1/stats%s" % q)


if __name__ == "__main__":
    main()
