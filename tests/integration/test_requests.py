"""test_requests.py: the life of requests over HTTP (SPEC §2-§5, issue #2).

A three-agency workflow with a fan-out and a join
(intake(A) -> [review_b(B), review_c(C)] -> final(A)) is published in JSON
and in YAML; requests are submitted, decided, returned, answered, withdrawn
and rejected; inboxes, the tracking view, the public tracking, the request
list with its filters and cursor, the events, workflow versions and form
validation are checked against the contract.
"""

import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (REQUEST_STATUSES, STEP_STATES, TIME_RE, ServerTestCase,  # noqa: E402
                          assert_error, bad_citizen_id, citizen_id, detail_paths, good_form,
                          main, states, step_of, three_agency_workflow, uniq)


def yaml_of(wid, a, b, c):
    return """# the same tree as three_agency_workflow, written in YAML
id: %(wid)s
title: "Three agencies (YAML)"
calendar: th-gov
form:
  applicant_id:   {type: citizen_id, required: true, pii: true}
  applicant_name: {type: string, required: true, pii: true, max_length: 50}
  business_name:  {type: string, required: true}
  area_sqm:       {type: number, required: true, min: 1}
  seats:          {type: integer, min: 0}
  district:       {type: enum, values: [bang-rak, pathum-wan, khlong-toei]}
  opening_date:   {type: date}
  has_parking:    {type: boolean}
steps:
  intake:
    kind: task
    agency: %(a)s
    sla: 2 working days
  review_b:
    kind: task
    agency: %(b)s
    after: [intake]
    sla: 5 working days
  review_c:
    kind: task
    agency: %(c)s
    after: [intake]
    sla: P10D
  final:
    kind: task
    agency: %(a)s
    after: [review_b, review_c]
""" % {"wid": wid, "a": a, "b": b, "c": c}


def open_tasks(w, agency, client=None):
    return {(t["request_id"], t["step"]) for t in w.inbox(agency, client=client)}


class TestWorkflows(ServerTestCase):

    def test_publish_json_get_and_versions(self):
        w = self.world()
        wid = uniq("wf")
        d1 = three_agency_workflow(wid, w.A, w.B, w.C, title="Version one")
        r = w.plat.post("/v1/workflows", d1)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json, {"id": wid, "version": 1})
        r = w.plat.get("/v1/workflows/" + wid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["id"], wid)
        self.assertEqual(r.json["version"], 1)
        self.assertEqual(r.json["title"], "Version one")
        self.assertIsInstance(r.json["definition"], dict)
        self.assertEqual(r.json["definition"]["id"], wid)
        self.assertEqual(set(r.json["definition"]["steps"]),
                         {"intake", "review_b", "review_c", "final"})
        self.assertEqual(r.json["definition"]["steps"]["final"]["after"],
                         ["review_b", "review_c"])
        d2 = dict(d1, title="Version two")
        r = w.plat.post("/v1/workflows", d2)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json, {"id": wid, "version": 2})
        r = w.plat.get("/v1/workflows/" + wid)
        self.assertEqual((r.json["version"], r.json["title"]), (2, "Version two"), r)
        r = w.plat.get("/v1/workflows/%s/versions/1" % wid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["id"], r.json["version"], r.json["title"]),
                         (wid, 1, "Version one"), r)
        r = w.plat.get("/v1/workflows/%s/versions/2" % wid)
        self.assertEqual((r.status, r.json["title"]), (200, "Version two"), r)
        assert_error(self, w.plat.get("/v1/workflows/%s/versions/3" % wid), 404, "not_found")
        assert_error(self, w.plat.get("/v1/workflows/no-such-workflow"), 404, "not_found")

    def test_publish_yaml_same_tree_as_json(self):
        w = self.world()
        wid_y, wid_j = uniq("wfy"), uniq("wfj")
        r = w.plat.post("/v1/workflows", raw=yaml_of(wid_y, w.A, w.B, w.C),
                        content_type="application/yaml")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json, {"id": wid_y, "version": 1})
        d = three_agency_workflow(wid_j, w.A, w.B, w.C, title="Three agencies (YAML)")
        w.publish(d)
        gy = w.plat.get("/v1/workflows/" + wid_y).json["definition"]
        gj = w.plat.get("/v1/workflows/" + wid_j).json["definition"]
        gy["id"] = gj["id"] = "x"
        self.assertEqual(gy, gj, "YAML and JSON definitions give different trees")
        # A request on the YAML workflow works like one on the JSON one.
        sub = w.submit(wid_y)
        self.assertEqual(states(w.view(sub["id"]))["intake"], "open")

    def test_publish_unknown_agency_and_calendar(self):
        w = self.world()
        wid = uniq("wf")
        d = three_agency_workflow(wid, w.A, "no-such-agency", w.C, calendar="no-such-cal")
        before = w.log_size()
        r = w.plat.post("/v1/workflows", d)
        assert_error(self, r, 422, "invalid_definition")
        paths = detail_paths(r)
        self.assertTrue(any(p and p.startswith("steps.review_b") for p in paths), paths)
        self.assertTrue(any(p and p.startswith("calendar") for p in paths), paths)
        self.assertEqual(w.log_size(), before)
        assert_error(self, w.plat.get("/v1/workflows/" + wid), 404, "not_found")

    def test_invalid_definition_reports_every_problem(self):
        w = self.world()
        d = {
            "id": "Bad_Id!",
            "title": "broken",
            "form": {"x": {"type": "strnig"}, "y": {"type": "enum"}},
            "steps": {
                "a": {"kind": "task", "agency": w.A, "after": ["c"]},
                "b": {"kind": "task", "agency": w.B, "after": ["nowhere"]},
                "c": {"kind": "task", "agency": w.C, "after": ["a"]},
                "d": {"kind": "taks", "agency": w.A},
                "e": {"kind": "task", "agency": w.A, "colour": "red"},
            },
        }
        before = w.log_size()
        r = w.plat.post("/v1/workflows", d)
        assert_error(self, r, 422, "invalid_definition")
        paths = [p or "" for p in detail_paths(r)]
        for d_ in r.json["error"]["details"]:
            self.assertIsInstance(d_.get("message"), str, d_)
        want = ["id", "form.x", "form.y", "steps.b", "steps.d", "steps.e"]
        for prefix in want:
            self.assertTrue(any(p.startswith(prefix) for p in paths),
                            "no detail for %s in %s" % (prefix, paths))
        # the cycle a <-> c
        self.assertTrue(any(p.startswith("steps.a") or p.startswith("steps.c") for p in paths),
                        "no detail for the cycle in %s" % paths)
        self.assertGreaterEqual(len(paths), 7, paths)
        self.assertEqual(w.log_size(), before)


class TestRequests(ServerTestCase):

    def test_fan_out_join_and_complete(self):
        w = self.world()
        wid = w.workflow()
        form = good_form()
        r = w.portal.post("/v1/requests", {"workflow": wid, "form": form})
        self.assertEqual(r.status, 201, r)
        sub = r.json
        for k in ("id", "tracking_code", "status", "version", "workflow_version"):
            self.assertIn(k, sub)
        self.assertEqual(sub["status"], "in_progress")
        self.assertEqual(sub["workflow_version"], 1)
        rid = sub["id"]
        v = w.view(rid)
        self.assertEqual(v["version"], sub["version"])
        self.assertEqual(states(v), {"intake": "open", "review_b": "pending",
                                     "review_c": "pending", "final": "pending"})
        self.assertEqual(open_tasks(w, w.A), {(rid, "intake")})
        self.assertEqual(open_tasks(w, w.B), set())
        self.assertEqual(open_tasks(w, w.C), set())
        # The agency sees the same inbox with its own token.
        self.assertEqual(open_tasks(w, w.A, client=w.ag[w.A]), {(rid, "intake")})

        v = w.decide(rid, "intake", "approve", agency=w.A, reason="documents complete",
                     expected_version=v["version"])
        self.assertEqual(v["status"], "in_progress")
        self.assertEqual(states(v), {"intake": "approved", "review_b": "open",
                                     "review_c": "open", "final": "pending"})
        self.assertEqual(step_of(v, "intake")["outcome"], "approve")
        self.assertEqual(step_of(v, "intake")["reason"], "documents complete")
        self.assertEqual(open_tasks(w, w.A), set())
        self.assertEqual(open_tasks(w, w.B), {(rid, "review_b")})
        self.assertEqual(open_tasks(w, w.C), {(rid, "review_c")})

        v = w.decide(rid, "review_b", "approve", agency=w.B, expected_version=v["version"])
        self.assertEqual(states(v)["final"], "pending", "join opened before all its after steps")
        self.assertEqual(open_tasks(w, w.A), set())
        v = w.decide(rid, "review_c", "approve", agency=w.C, expected_version=v["version"])
        self.assertEqual(states(v)["final"], "open")
        self.assertEqual(open_tasks(w, w.A), {(rid, "final")})
        self.assertEqual(open_tasks(w, w.B) | open_tasks(w, w.C), set())
        v = w.decide(rid, "final", "approve", agency=w.A, expected_version=v["version"])
        self.assertEqual(v["status"], "completed")
        self.assertEqual(set(states(v).values()), {"approved"})
        for s in v["steps"]:
            self.assertTrue(TIME_RE.match(s["decided_at"] or ""), s)
        self.assertEqual(open_tasks(w, w.A) | open_tasks(w, w.B) | open_tasks(w, w.C), set())
        self.assertEqual(w.view(rid), v)

    def test_inboxes_hold_exactly_the_open_tasks(self):
        w = self.world()
        wid = w.workflow()
        rids = [w.submit(wid)["id"] for _ in range(5)]
        w.decide(rids[0], "intake", "approve", agency=w.A)
        w.decide(rids[1], "intake", "approve", agency=w.A)
        w.decide(rids[1], "review_c", "approve", agency=w.C)
        w.decide(rids[2], "intake", "reject", agency=w.A)
        w.decide(rids[3], "intake", "return", agency=w.A)
        self.assertEqual(open_tasks(w, w.A), {(rids[4], "intake")})
        self.assertEqual(open_tasks(w, w.B), {(rids[0], "review_b"), (rids[1], "review_b")})
        self.assertEqual(open_tasks(w, w.C), {(rids[0], "review_c")})
        # Shape of an inbox page (SPEC §4) and its pagination.
        r = w.ag[w.B].get("/v1/agencies/%s/tasks?state=open&limit=1" % w.B)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(set(r.json), {"tasks", "next_cursor"})
        self.assertEqual(len(r.json["tasks"]), 1)
        self.assertIsNotNone(r.json["next_cursor"])
        t = r.json["tasks"][0]
        for k in ("request_id", "step", "workflow", "state", "opened_at", "due_at", "sla"):
            self.assertIn(k, t)
        self.assertEqual(t["workflow"], wid)
        self.assertEqual(t["state"], "open")
        self.assertTrue(TIME_RE.match(t["opened_at"]), t)
        # SLA deadlines come with a later issue: due_at may still be null.
        self.assertTrue(t["due_at"] is None or TIME_RE.match(t["due_at"]), t)
        self.assertEqual(t["sla"], "ok")
        paged = w.inbox(w.B, client=w.ag[w.B], limit=1)
        self.assertEqual(len(paged), 2)
        self.assertEqual({(x["request_id"], x["step"]) for x in paged},
                         {(rids[0], "review_b"), (rids[1], "review_b")})

    def test_reject_cancels_open_and_pending_steps(self):
        w = self.world()
        wid = w.workflow()
        rid = w.submit(wid)["id"]
        w.decide(rid, "intake", "approve", agency=w.A)
        v = w.decide(rid, "review_b", "reject", agency=w.B, reason="zoning")
        self.assertEqual(v["status"], "rejected")
        self.assertEqual(states(v), {"intake": "approved", "review_b": "rejected",
                                     "review_c": "cancelled", "final": "cancelled"})
        self.assertEqual(step_of(v, "review_b")["reason"], "zoning")
        self.assertEqual(open_tasks(w, w.C), set())
        self.assertEqual(open_tasks(w, w.A), set())
        before = w.log_size()
        r = w.ag[w.C].post("/v1/tasks/%s/review_c/decision" % rid, {"outcome": "approve"})
        assert_error(self, r, 409, "conflict")
        self.assertEqual(w.log_size(), before)
        types = [e["type"] for e in w.plat.get("/v1/requests/%s/events" % rid).json["events"]]
        self.assertEqual(types[-1], "RequestRejected", types)

    def test_return_then_info_and_back(self):
        w = self.world()
        wid = w.workflow()
        sub = w.submit(wid, form=good_form(business_name="Old name"))
        rid = sub["id"]
        v = w.decide(rid, "intake", "return", agency=w.A, reason="need a better name")
        self.assertEqual(v["status"], "awaiting_info")
        self.assertEqual(states(v)["intake"], "waiting_applicant")
        self.assertEqual(open_tasks(w, w.A), set())
        # The agency cannot decide a task that waits for the applicant.
        r = w.ag[w.A].post("/v1/tasks/%s/intake/decision" % rid, {"outcome": "approve"})
        assert_error(self, r, 409, "conflict")
        # Information with a bad field is refused with the field's path.
        before = w.log_size()
        r = w.portal.post("/v1/requests/%s/info" % rid,
                          {"step": "intake", "form": {"area_sqm": "big"}, "message": "x"})
        assert_error(self, r, 422, "invalid_form")
        self.assertIn("form.area_sqm", detail_paths(r))
        # Information for a step that is not waiting is a conflict.
        r = w.portal.post("/v1/requests/%s/info" % rid,
                          {"step": "review_b", "form": {}, "message": "x"})
        self.assertIn(r.status, (409, 422), r)
        self.assertEqual(w.log_size(), before)
        r = w.portal.post("/v1/requests/%s/info" % rid,
                          {"step": "intake", "form": {"business_name": "New name"},
                           "message": "renamed"})
        self.assertEqual(r.status, 200, r)
        v = r.json
        self.assertEqual(v["status"], "in_progress")
        self.assertEqual(states(v)["intake"], "open")
        self.assertEqual(v["form"]["business_name"], "New name")
        self.assertEqual(open_tasks(w, w.A), {(rid, "intake")})
        v = w.decide(rid, "intake", "approve", agency=w.A)
        self.assertEqual(states(v)["review_b"], "open")
        types = [e["type"] for e in w.plat.get("/v1/requests/%s/events" % rid).json["events"]]
        self.assertIn("InfoProvided", types)
        # A return further on, answered, then the request completes.
        v = w.decide(rid, "review_c", "return", agency=w.C)
        self.assertEqual(v["status"], "awaiting_info")
        v = w.decide(rid, "review_b", "approve", agency=w.B)
        self.assertEqual(v["status"], "awaiting_info")
        self.assertEqual(states(v)["final"], "pending")
        r = w.portal.post("/v1/requests/%s/info" % rid,
                          {"step": "review_c", "form": {"seats": 30}, "message": "more seats"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "in_progress")
        w.decide(rid, "review_c", "approve", agency=w.C)
        v = w.decide(rid, "final", "approve", agency=w.A)
        self.assertEqual(v["status"], "completed")

    def test_withdraw(self):
        w = self.world()
        wid = w.workflow()
        rid = w.submit(wid)["id"]
        w.decide(rid, "intake", "approve", agency=w.A)
        r = w.portal.post("/v1/requests/%s/withdraw" % rid, {"reason": "changed my mind"})
        self.assertEqual(r.status, 200, r)
        v = r.json
        self.assertEqual(v["status"], "withdrawn")
        self.assertEqual(states(v), {"intake": "approved", "review_b": "cancelled",
                                     "review_c": "cancelled", "final": "cancelled"})
        self.assertEqual(open_tasks(w, w.B) | open_tasks(w, w.C), set())
        before = w.log_size()
        r = w.portal.post("/v1/requests/%s/withdraw" % rid, {"reason": "again"})
        assert_error(self, r, 409, "conflict")
        r = w.ag[w.B].post("/v1/tasks/%s/review_b/decision" % rid, {"outcome": "approve"})
        assert_error(self, r, 409, "conflict")
        self.assertEqual(w.log_size(), before)
        # Withdrawing while awaiting information works too.
        rid2 = w.submit(wid)["id"]
        w.decide(rid2, "intake", "return", agency=w.A)
        r = w.portal.post("/v1/requests/%s/withdraw" % rid2, {"reason": "no time"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "withdrawn")
        self.assertEqual(set(states(r.json).values()), {"cancelled"})

    def test_new_version_leaves_running_requests_on_the_old_one(self):
        w = self.world()
        wid = uniq("wf")
        w.publish(three_agency_workflow(wid, w.A, w.B, w.C, title="v1"))
        r1 = w.submit(wid)
        self.assertEqual(r1["workflow_version"], 1)
        w.decide(r1["id"], "intake", "approve", agency=w.A)
        # Version 2 drops review_c: intake -> review_b -> final.
        d2 = three_agency_workflow(wid, w.A, w.B, w.C, title="v2")
        del d2["steps"]["review_c"]
        d2["steps"]["final"]["after"] = ["review_b"]
        self.assertEqual(w.publish(d2), {"id": wid, "version": 2})
        r2 = w.submit(wid)
        self.assertEqual(r2["workflow_version"], 2)
        v1 = w.view(r1["id"])
        self.assertEqual(v1["workflow_version"], 1)
        self.assertEqual(set(states(v1)), {"intake", "review_b", "review_c", "final"})
        v2 = w.view(r2["id"])
        self.assertEqual(v2["workflow_version"], 2)
        self.assertEqual(set(states(v2)), {"intake", "review_b", "final"})
        # The old request still needs review_c before final opens.
        v1 = w.decide(r1["id"], "review_b", "approve", agency=w.B)
        self.assertEqual(states(v1)["final"], "pending")
        v1 = w.decide(r1["id"], "review_c", "approve", agency=w.C)
        self.assertEqual(states(v1)["final"], "open")
        v1 = w.decide(r1["id"], "final", "approve", agency=w.A)
        self.assertEqual((v1["status"], v1["workflow_version"]), ("completed", 1))
        w.decide(r2["id"], "intake", "approve", agency=w.A)
        v2 = w.decide(r2["id"], "review_b", "approve", agency=w.B)
        self.assertEqual(states(v2)["final"], "open")

    def test_tracking_view_shape_and_public_tracking(self):
        w = self.world()
        wid = w.workflow()
        form = good_form(has_parking=True)
        sub = w.submit(wid, form=form)
        rid, code = sub["id"], sub["tracking_code"]
        w.decide(rid, "intake", "approve", agency=w.A, reason="ok")
        v = w.view(rid)
        for k in ("id", "workflow", "workflow_version", "status", "version", "submitted_at",
                  "form", "steps", "timeline"):
            self.assertIn(k, v)
        self.assertEqual(v["id"], rid)
        self.assertEqual(v["workflow"], wid)
        self.assertIn(v["status"], REQUEST_STATUSES)
        self.assertIsInstance(v["version"], int)
        self.assertTrue(TIME_RE.match(v["submitted_at"]), v["submitted_at"])
        self.assertEqual(v["form"], form)
        self.assertEqual([s["name"] for s in v["steps"]],
                         ["intake", "review_b", "review_c", "final"])
        for s in v["steps"]:
            for k in ("name", "kind", "agency", "state", "opened_at", "due_at", "decided_at",
                      "sla", "outcome", "reason"):
                self.assertIn(k, s)
            self.assertEqual(s["kind"], "task")
            self.assertIn(s["state"], STEP_STATES)
            for k in ("opened_at", "due_at", "decided_at"):
                self.assertTrue(s[k] is None or TIME_RE.match(s[k]), (k, s))
        self.assertEqual([s["agency"] for s in v["steps"]], [w.A, w.B, w.C, w.A])
        intake = step_of(v, "intake")
        self.assertTrue(intake["opened_at"] and intake["decided_at"], intake)
        self.assertIn(step_of(v, "review_b")["sla"], ("ok", "warned", "breached"))
        self.assertIsNone(step_of(v, "final")["opened_at"])
        self.assertIsInstance(v["timeline"], list)
        self.assertGreaterEqual(len(v["timeline"]), 4)
        for t in v["timeline"]:
            self.assertEqual(set(t) >= {"at", "type", "text"}, True, t)
            self.assertTrue(TIME_RE.match(t["at"]), t)
        self.assertEqual([t["at"] for t in v["timeline"]],
                         sorted(t["at"] for t in v["timeline"]))
        # Public tracking: no token, no form, no personal data.
        r = w.anon.get("/v1/track/" + code)
        self.assertEqual(r.status, 200, r)
        pub = r.json
        self.assertEqual(pub["status"], v["status"])
        self.assertEqual(states(pub), states(v))
        self.assertIn("timeline", pub)
        self.assertIsNone(pub.get("form"), pub)
        text = r.body.decode()
        for secret in (form["applicant_id"], form["applicant_name"], form["business_name"]):
            self.assertNotIn(secret, text, "tracking by code shows form data")
        assert_error(self, w.anon.get("/v1/track/NOSUCHCODE123"), 404, "not_found")

    def test_list_filters_and_cursor(self):
        w = self.world()
        wid_x = w.workflow()
        wid_y = uniq("wf")
        w.publish({"id": wid_y, "title": "two steps", "form": {"n": {"type": "integer"}},
                   "steps": {"intake": {"kind": "task", "agency": w.A},
                             "review_b": {"kind": "task", "agency": w.B,
                                          "after": ["intake"]}}})
        xs = []
        for i in range(5):
            xs.append(w.submit(wid_x)["id"])
            if i == 2:
                y1 = w.submit(wid_y, form={"n": 1})["id"]
        y2 = w.submit(wid_y, form={"n": 2}, portal=w.portal2)["id"]
        for rid in xs[:4]:
            w.decide(rid, "intake", "approve", agency=w.A)
        w.decide(xs[1], "review_b", "reject", agency=w.B)

        def pages(client, query, limit):
            ids, cursor, n = [], None, 0
            while True:
                path = "/v1/requests?%s&limit=%d" % (query, limit)
                if cursor:
                    path += "&cursor=" + cursor
                r = client.get(path)
                self.assertEqual(r.status, 200, r)
                self.assertIn("next_cursor", r.json)
                self.assertLessEqual(len(r.json["requests"]), limit)
                ids += [q["id"] for q in r.json["requests"]]
                cursor = r.json["next_cursor"]
                n += 1
                self.assertLess(n, 50)
                if cursor is None:
                    return ids, n

        ids, n = pages(w.plat, "workflow=" + wid_x, 2)
        self.assertEqual(ids, list(reversed(xs)), "not newest first or not all")
        self.assertEqual(n, 3)
        r = w.plat.get("/v1/requests?workflow=%s&limit=10" % wid_x)
        self.assertIsNone(r.json["next_cursor"])
        q = r.json["requests"][0]
        self.assertEqual((q["id"], q["workflow"], q["status"]), (xs[4], wid_x, "in_progress"))
        ids, _ = pages(w.plat, "workflow=%s&status=rejected" % wid_x, 2)
        self.assertEqual(ids, [xs[1]])
        ids, _ = pages(w.plat, "workflow=%s&status=in_progress" % wid_x, 2)
        self.assertEqual(ids, [xs[4], xs[3], xs[2], xs[0]])
        # wid_y has no step for C: filtering by C lists only wid_x requests.
        ids, _ = pages(w.auditor, "agency=" + w.C, 3)
        self.assertEqual([i for i in ids if i in (y1, y2)], [])
        self.assertEqual([i for i in ids if i in xs and i != xs[4]], [xs[3], xs[2], xs[1], xs[0]])
        ids, _ = pages(w.plat, "workflow=" + wid_y, 1)
        self.assertEqual(ids, [y2, y1])
        # A portal lists only its own requests.
        ids, _ = pages(w.portal2, "workflow=" + wid_y, 5)
        self.assertEqual(ids, [y2])
        ids, _ = pages(w.portal2, "workflow=" + wid_x, 5)
        self.assertEqual(ids, [])
        ids, _ = pages(w.portal, "workflow=" + wid_y, 5)
        self.assertEqual(ids, [y1])

    def test_list_agency_filter_means_a_task_given(self):
        """?agency= lists the requests in which the agency has a task (one
        that has reached it: open or decided), the same rule as its read
        access in SPEC §1 - not requests where its step is still pending."""
        w = self.world()
        wid = w.workflow()
        r1 = w.submit(wid)["id"]
        r2 = w.submit(wid)["id"]
        w.decide(r1, "intake", "approve", agency=w.A)
        r = w.plat.get("/v1/requests?agency=%s&limit=50" % w.C)
        self.assertEqual(r.status, 200, r)
        self.assertEqual([q["id"] for q in r.json["requests"]], [r1],
                         "request %s, where C's step is still pending, is listed for C" % r2)

    def test_events_in_order_with_stream_versions(self):
        w = self.world()
        wid = w.workflow()
        sub = w.submit(wid)
        rid = sub["id"]
        w.decide(rid, "intake", "approve", agency=w.A)
        v = w.decide(rid, "review_b", "approve", agency=w.B)
        r = w.portal.get("/v1/requests/%s/events" % rid)
        self.assertEqual(r.status, 200, r)
        evs = r.json["events"]
        for e in evs:
            for k in ("seq", "stream", "version", "type", "at", "actor", "data"):
                self.assertIn(k, e)
            self.assertTrue(TIME_RE.match(e["at"]), e)
            self.assertIn(e["actor"]["kind"], ("portal", "agency", "platform", "payment", "system"))
        reqevs = [e for e in evs if e["stream"] == "request/" + rid]
        self.assertEqual([e["version"] for e in reqevs], list(range(1, len(reqevs) + 1)))
        seqs = [e["seq"] for e in evs]
        self.assertEqual(seqs, sorted(seqs))
        self.assertEqual(len(set(seqs)), len(seqs))
        self.assertEqual(reqevs[-1]["version"], v["version"])
        types = [e["type"] for e in reqevs]
        self.assertEqual(types[0], "RequestSubmitted")
        self.assertEqual(reqevs[0]["actor"]["kind"], "portal")
        self.assertEqual(reqevs[1]["type"], "StepOpened")
        self.assertEqual(reqevs[1]["data"].get("step"), "intake")
        decided = [e for e in reqevs if e["type"] == "TaskDecided"]
        self.assertEqual([(e["data"]["step"], e["data"]["outcome"]) for e in decided],
                         [("intake", "approve"), ("review_b", "approve")])
        self.assertTrue(all(e["actor"]["kind"] == "agency" for e in decided))
        opened = [e["data"]["step"] for e in reqevs if e["type"] == "StepOpened"]
        self.assertEqual(sorted(opened), ["intake", "review_b", "review_c"])
        self.assertEqual(len(reqevs), sub["version"] + len(decided) + 2)
        # The same events appear in the global log with the same seqs.
        log = {e["seq"]: e for e in w.log_events(after=reqevs[0]["seq"] - 1)}
        for e in reqevs:
            self.assertEqual(log[e["seq"]]["type"], e["type"])
            self.assertEqual(log[e["seq"]]["stream"], e["stream"])
            self.assertEqual(log[e["seq"]]["version"], e["version"])

    def test_form_validation_reports_every_field(self):
        w = self.world()
        wid = w.workflow()
        before = w.log_size()
        bad = {
            "applicant_id": bad_citizen_id(),        # check digit
            # applicant_name missing                  (required)
            "business_name": 12,                     # type
            "area_sqm": 0,                           # min 1
            "seats": 2.5,                            # integer
            "district": "silom",                     # enum
            "opening_date": "2026-02-30",            # date
            "has_parking": "yes",                    # boolean
            "colour": "red",                         # unknown field
        }
        r = w.portal.post("/v1/requests", {"workflow": wid, "form": bad})
        assert_error(self, r, 422, "invalid_form")
        paths = set(detail_paths(r))
        want = {"form." + k for k in ("applicant_id", "applicant_name", "business_name",
                                      "area_sqm", "seats", "district", "opening_date",
                                      "has_parking", "colour")}
        self.assertEqual(want - paths, set(), "missing field errors; got %s" % sorted(paths))
        for d in r.json["error"]["details"]:
            self.assertTrue(d.get("message"), d)
        # Each rule alone.
        cases = [
            ({"applicant_id": "123456789012"}, "form.applicant_id"),          # 12 digits
            ({"applicant_id": "12345678901x3"}, "form.applicant_id"),
            ({"applicant_id": 1234567890123}, "form.applicant_id"),           # not a string
            ({"applicant_name": "x" * 51}, "form.applicant_name"),            # max_length
            ({"area_sqm": "42"}, "form.area_sqm"),
            ({"seats": -1}, "form.seats"),
            ({"opening_date": "15/01/2027"}, "form.opening_date"),
            ({"district": "BANG-RAK"}, "form.district"),
        ]
        for over, path in cases:
            r = w.portal.post("/v1/requests", {"workflow": wid, "form": good_form(**over)})
            assert_error(self, r, 422, "invalid_form", msg="%s: %r" % (over, r))
            self.assertEqual(detail_paths(r), [path], over)
        # Optional fields may be absent; a valid id passes.
        f = good_form(applicant_id=citizen_id())
        for k in ("seats", "district", "opening_date"):
            del f[k]
        self.assertEqual(w.portal.post("/v1/requests", {"workflow": wid, "form": f}).status, 201)
        after_ok = w.log_size()
        self.assertGreater(after_ok, before)
        # Unknown workflow, no form: invalid_request.
        r = w.portal.post("/v1/requests", {"workflow": "no-such-wf", "form": good_form()})
        assert_error(self, r, 422, "invalid_request")
        r = w.portal.post("/v1/requests", {"workflow": wid})
        self.assertEqual(r.status, 422, r)
        r = w.portal.post("/v1/requests", {"workflow": wid, "form": [1, 2]})
        self.assertEqual(r.status, 422, r)
        self.assertEqual(w.log_size(), after_ok)


if __name__ == "__main__":
    random.seed()
    main()
