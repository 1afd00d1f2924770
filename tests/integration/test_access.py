"""test_access.py: every role boundary of SPEC §1 over HTTP.

No token, an unknown token or a revoked one is 401; a known token without the
right is 403; a refused call changes nothing (the log does not grow). Public
routes work without a token.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (TH_GOV, ServerTestCase, assert_error, good_form, main,  # noqa: E402
                          three_agency_workflow, uniq)


class TestAccess(ServerTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from osse_harness import World
        w = cls.w = World(cls.server)
        cls.wid = w.workflow()
        # r1: intake approved (A decided; B and C have tasks); r2: only intake open.
        cls.r1 = w.submit(cls.wid)
        w.decide(cls.r1["id"], "intake", "approve", agency=w.A)
        cls.r2 = w.submit(cls.wid)
        cls.r3 = w.submit(cls.wid, portal=w.portal2)
        # A workflow in which agency C has no step at all.
        cls.wid2 = uniq("wf2")
        w.publish({"id": cls.wid2, "title": "A and B only", "form": {"n": {"type": "integer"}},
                   "steps": {"intake": {"kind": "task", "agency": w.A},
                             "review_b": {"kind": "task", "agency": w.B, "after": ["intake"]}}})
        cls.r4 = w.submit(cls.wid2, form={"n": 1})

    def every_route(self):
        """(method, path, body) for every authenticated route of §3 and §4."""
        w, r1 = self.w, self.r1["id"]
        return [
            ("POST", "/v1/workflows", three_agency_workflow(uniq("wf"), w.A, w.B, w.C)),
            ("GET", "/v1/workflows/" + self.wid, None),
            ("GET", "/v1/workflows/%s/versions/1" % self.wid, None),
            ("PUT", "/v1/calendars/th-gov", TH_GOV),
            ("PUT", "/v1/agencies/" + w.A, {"name": "x"}),
            ("POST", "/v1/principals", {"role": "portal", "name": "x"}),
            ("GET", "/v1/principals", None),
            ("POST", "/v1/requests", {"workflow": self.wid, "form": good_form()}),
            ("GET", "/v1/requests", None),
            ("GET", "/v1/requests/" + r1, None),
            ("GET", "/v1/requests/%s/events" % r1, None),
            ("POST", "/v1/requests/%s/info" % r1, {"step": "review_b", "form": {}, "message": "x"}),
            ("POST", "/v1/requests/%s/withdraw" % r1, {"reason": "x"}),
            ("GET", "/v1/agencies/%s/tasks" % w.B, None),
            ("POST", "/v1/tasks/%s/review_b/decision" % r1, {"outcome": "approve"}),
            ("GET", "/v1/log?after=0&limit=10", None),
        ]

    def assertRefused(self, client, method, path, body, status, token=None):
        before = self.w.log_size()
        r = client.call(method, path, body=body, token=token)
        assert_error(self, r, status, "unauthorized" if status == 401 else "forbidden",
                     msg="%s %s: want %d, got %r" % (method, path, status, r))
        self.assertEqual(self.w.log_size(), before, "%s %s changed the log" % (method, path))

    def test_no_token_is_401(self):
        for m, p, b in self.every_route():
            with self.subTest(route=(m, p)):
                self.assertRefused(self.w.anon, m, p, b, 401)

    def test_unknown_or_malformed_token_is_401(self):
        for tok in ("not-a-token", "x" * 64):
            for m, p, b in self.every_route():
                with self.subTest(route=(m, p), token=tok):
                    self.assertRefused(self.w.anon, m, p, b, 401, token=tok)
        for hdr in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "bearer"):
            with self.subTest(header=hdr):
                r = self.w.anon.get("/v1/requests", headers={"Authorization": hdr})
                assert_error(self, r, 401, "unauthorized")

    def test_revoked_token_is_401(self):
        w = self.w
        for role, agency in (("portal", None), ("agency", w.B), ("auditor", None),
                             ("platform", None)):
            with self.subTest(role=role):
                p = w.principal(role, agency=agency)
                path = "/v1/agencies/%s/tasks" % w.B if role == "agency" else "/v1/requests"
                self.assertEqual(w.anon.get(path, token=p["token"]).status, 200)
                ids = [x["id"] for x in w.plat.get("/v1/principals").json["principals"]]
                self.assertIn(p["id"], ids)
                r = w.plat.delete("/v1/principals/" + p["id"])
                self.assertEqual(r.status, 200, r)
                assert_error(self, w.anon.get(path, token=p["token"]), 401, "unauthorized")
                self.assertRefused(w.anon, "POST", "/v1/requests",
                                   {"workflow": self.wid, "form": good_form()}, 401,
                                   token=p["token"])

    def test_principals_list_never_shows_tokens(self):
        w = self.w
        p = w.principal("portal")
        r = w.plat.get("/v1/principals")
        self.assertEqual(r.status, 200, r)
        self.assertIsInstance(r.json["principals"], list)
        self.assertNotIn(p["token"], r.body.decode())
        mine = [x for x in r.json["principals"] if x["id"] == p["id"]]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["role"], "portal")
        with open(os.path.join(self.server.data_dir, "admin.token")) as f:
            self.assertTrue(f.read().strip())
        self.assertEqual(os.stat(os.path.join(self.server.data_dir, "admin.token")).st_mode & 0o077,
                         0, "admin.token is readable by others")
        # Bad principal bodies.
        for body in ({"role": "wizard", "name": "x"}, {"role": "agency", "name": "x"},
                     {"role": "agency", "agency": "no-such-agency", "name": "x"}):
            with self.subTest(body=body):
                r = w.plat.post("/v1/principals", body)
                assert_error(self, r, 422)

    def test_portal_boundaries(self):
        w, r1, r3 = self.w, self.r1["id"], self.r3["id"]
        for m, p, b in [
            ("POST", "/v1/workflows", three_agency_workflow(uniq("wf"), w.A, w.B, w.C)),
            ("PUT", "/v1/calendars/th-gov", TH_GOV),
            ("PUT", "/v1/agencies/" + w.A, {"name": "x"}),
            ("POST", "/v1/principals", {"role": "portal", "name": "x"}),
            ("GET", "/v1/principals", None),
            ("GET", "/v1/log?after=0&limit=10", None),
            ("GET", "/v1/agencies/%s/tasks" % w.B, None),
            ("POST", "/v1/tasks/%s/review_b/decision" % r1, {"outcome": "approve"}),
            # another portal's request
            ("GET", "/v1/requests/" + r3, None),
            ("GET", "/v1/requests/%s/events" % r3, None),
            ("POST", "/v1/requests/%s/withdraw" % r3, {"reason": "x"}),
            ("POST", "/v1/requests/%s/info" % r3, {"step": "intake", "form": {}, "message": "x"}),
        ]:
            with self.subTest(route=(m, p)):
                self.assertRefused(w.portal, m, p, b, 403)
        # its own request it may read
        self.assertEqual(w.portal.get("/v1/requests/" + r1).status, 200)
        self.assertEqual(w.portal.get("/v1/requests/%s/events" % r1).status, 200)
        self.assertEqual(w.portal2.get("/v1/requests/" + r3).status, 200)
        ids = {q["id"] for q in w.portal2.get("/v1/requests?workflow=" + self.wid)
               .json["requests"]}
        self.assertEqual(ids, {r3})

    def test_agency_boundaries(self):
        w, r1, r2 = self.w, self.r1["id"], self.r2["id"]
        b = w.ag[w.B]
        for m, p, body in [
            ("GET", "/v1/agencies/%s/tasks" % w.C, None),       # another agency's inbox
            ("GET", "/v1/agencies/%s/tasks" % w.A, None),
            ("POST", "/v1/tasks/%s/review_c/decision" % r1, {"outcome": "approve"}),  # C's task
            ("POST", "/v1/tasks/%s/intake/decision" % r2, {"outcome": "approve"}),    # A's task
            ("POST", "/v1/requests", {"workflow": self.wid, "form": good_form()}),
            ("POST", "/v1/requests/%s/withdraw" % r1, {"reason": "x"}),
            ("POST", "/v1/requests/%s/info" % r1, {"step": "review_b", "form": {}, "message": "x"}),
            ("POST", "/v1/workflows", three_agency_workflow(uniq("wf"), w.A, w.B, w.C)),
            ("PUT", "/v1/agencies/" + w.B, {"name": "mine"}),
            ("POST", "/v1/principals", {"role": "agency", "agency": w.B, "name": "x"}),
            ("GET", "/v1/principals", None),
            ("GET", "/v1/log?after=0&limit=10", None),
        ]:
            with self.subTest(route=(m, p)):
                self.assertRefused(b, m, p, body, 403)
        # What it may do: its inbox, the requests where it has a task.
        self.assertEqual(b.get("/v1/agencies/%s/tasks" % w.B).status, 200)
        self.assertEqual(b.get("/v1/requests/" + r1).status, 200)
        self.assertEqual(b.get("/v1/requests/%s/events" % r1).status, 200)
        self.assertEqual(w.ag[w.A].get("/v1/requests/" + r2).status, 200)
        self.assertEqual(w.ag[w.C].get("/v1/requests/" + r1).status, 200)
        # C has no step in r4's workflow: it may not read r4.
        r4 = self.r4["id"]
        for p in ("/v1/requests/" + r4, "/v1/requests/%s/events" % r4):
            with self.subTest(read=p):
                self.assertRefused(w.ag[w.C], "GET", p, None, 403)
        ids = [q["id"] for q in w.ag[w.C].get("/v1/requests?workflow=" + self.wid2)
               .json.get("requests", [])] if w.ag[w.C].get("/v1/requests").status == 200 else []
        self.assertNotIn(r4, ids)

    def test_agency_cannot_read_before_its_task_opens(self):
        """SPEC §1: an agency reads "the requests in which it has a task". In
        r2 only intake (agency A) is open; B's step is still pending, so B has
        no task in r2 yet (its inbox has none) and must not see the
        applicant's form."""
        w, r2 = self.w, self.r2["id"]
        self.assertEqual([t for t in w.inbox(w.B, client=w.ag[w.B], state=None)
                          if t["request_id"] == r2], [])
        for p in ("/v1/requests/" + r2, "/v1/requests/%s/events" % r2):
            with self.subTest(read=p):
                self.assertRefused(w.ag[w.B], "GET", p, None, 403)

    def test_auditor_changes_nothing(self):
        w, r1 = self.w, self.r1["id"]
        for m, p, b in [
            ("POST", "/v1/workflows", three_agency_workflow(uniq("wf"), w.A, w.B, w.C)),
            ("PUT", "/v1/calendars/th-gov", TH_GOV),
            ("PUT", "/v1/agencies/" + w.A, {"name": "x"}),
            ("POST", "/v1/principals", {"role": "portal", "name": "x"}),
            ("POST", "/v1/requests", {"workflow": self.wid, "form": good_form()}),
            ("POST", "/v1/requests/%s/info" % r1, {"step": "review_b", "form": {}, "message": "x"}),
            ("POST", "/v1/requests/%s/withdraw" % r1, {"reason": "x"}),
            ("POST", "/v1/tasks/%s/review_b/decision" % r1, {"outcome": "approve"}),
            ("DELETE", "/v1/principals/" + w.principal("portal")["id"], None),
        ]:
            with self.subTest(route=(m, p)):
                self.assertRefused(w.auditor, m, p, b, 403)
        # It reads everything.
        for p in ("/v1/requests/" + r1, "/v1/requests/" + self.r3["id"],
                  "/v1/requests/%s/events" % r1, "/v1/requests", "/v1/log?after=0&limit=5"):
            with self.subTest(read=p):
                self.assertEqual(w.auditor.get(p).status, 200, p)

    def test_payment_cannot_submit_or_read(self):
        w, r1 = self.w, self.r1["id"]
        for m, p, b in [
            ("POST", "/v1/requests", {"workflow": self.wid, "form": good_form()}),
            ("POST", "/v1/requests/%s/withdraw" % r1, {"reason": "x"}),
            ("POST", "/v1/tasks/%s/review_b/decision" % r1, {"outcome": "approve"}),
            ("POST", "/v1/workflows", three_agency_workflow(uniq("wf"), w.A, w.B, w.C)),
            ("POST", "/v1/principals", {"role": "portal", "name": "x"}),
            ("GET", "/v1/requests/" + r1, None),
            ("GET", "/v1/agencies/%s/tasks" % w.B, None),
            ("GET", "/v1/log?after=0&limit=10", None),
        ]:
            with self.subTest(route=(m, p)):
                self.assertRefused(w.payment, m, p, b, 403)

    def test_platform_may_do_what_others_may_not(self):
        w = self.w
        self.assertEqual(w.plat.get("/v1/agencies/%s/tasks" % w.B).status, 200)
        self.assertEqual(w.plat.get("/v1/requests/" + self.r3["id"]).status, 200)
        self.assertEqual(w.plat.get("/v1/log?after=0&limit=5").status, 200)
        # The platform may submit (SPEC §4).
        r = w.plat.post("/v1/requests", {"workflow": self.wid, "form": good_form()})
        self.assertEqual(r.status, 201, r)

    def test_public_routes_without_token(self):
        w = self.w
        r = w.anon.get("/healthz")
        self.assertEqual(r.status, 200, r)
        r = w.anon.get("/v1/track/" + self.r1["tracking_code"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "in_progress")
        # A bad token does not spoil a public route.
        r = w.anon.get("/v1/track/" + self.r1["tracking_code"], token="garbage")
        self.assertEqual(r.status, 200, r)


if __name__ == "__main__":
    main()
