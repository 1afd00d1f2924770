"""test_list_index.py: the request list read from its index on disk (issue 13,
docs/design.md "The indexes on disk"), over real HTTP.

One server (--test-clock=TIME at 2030-01-07T09:00:00+07:00) gets 150
requests in two workflows from two portals; some are approved, some
rejected, some withdrawn, some breach their SLA once the clock moves. A
model of what each request is (workflow, portal, status, agencies given a
task, breached) is kept from the answers, and every page of
GET /v1/requests at several limits and under every filter, for the
platform and for each portal, must be exactly the model's requests newest
first, with next_cursor only when one more exists. The same after a clean
restart, after a kill -9, and after a restart with --rebuild-views; and
`osse replay --data` finds every index entry equal, none missing,
different or extra. Cursors that no server gives are 422 and change
nothing.
"""

import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import Server, World, assert_error, main, replay_data, uniq  # noqa: E402

CLOCK = "--test-clock=2030-01-07T09:00:00+07:00"
STATUSES = ("in_progress", "rejected", "withdrawn", "completed")


class TestListIndex(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=[CLOCK]).start()

    @classmethod
    def tearDownClass(cls):
        srv = cls.server
        try:
            if srv.alive():
                assert srv.stop() == 0, srv.stderr_tail()
        finally:
            srv.cleanup()

    def restart(self, *extra):
        self.server.extra_args = [CLOCK] + list(extra)
        self.server.start()
        self.w.plat = self.server.client(self.w.admin_token)
        # The World's clients keep their tokens: new connections to the new port.
        for name in ("portal", "portal2", "auditor"):
            old = getattr(self.w, name)
            setattr(self.w, name, self.server.client(old.token))
        for ag in list(self.w.ag):
            self.w.ag[ag] = self.server.client(self.w.ag[ag].token)

    def pages(self, client, query, limit):
        ids, cursor = [], None
        for n in range(1000):
            path = "/v1/requests?%slimit=%d" % (query + "&" if query else "", limit)
            if cursor:
                path += "&cursor=" + cursor
            r = client.get(path)
            self.assertEqual(r.status, 200, (path, r))
            page = r.json["requests"]
            self.assertLessEqual(len(page), limit)
            ids += [q["id"] for q in page]
            for q in page:
                m = self.model[q["id"]]
                self.assertEqual((q["workflow"], q["status"], q["version"], q["tracking_code"]),
                                 (m["workflow"], m["status"], m["version"], m["code"]), q)
            cursor = r.json["next_cursor"]
            if cursor is None:
                return ids
            self.assertEqual(len(page), limit, "a next_cursor after a short page")
        self.fail("more than 1000 pages")

    def expect(self, who, **flt):
        out = []
        for rid in reversed(self.order):
            m = self.model[rid]
            if who is not None and m["portal"] != who:
                continue
            if "workflow" in flt and m["workflow"] != flt["workflow"]:
                continue
            if "status" in flt and m["status"] != flt["status"]:
                continue
            if "agency" in flt and flt["agency"] not in m["agencies"]:
                continue
            if "breached" in flt and m["breached"] != (flt["breached"] == "true"):
                continue
            out.append(rid)
        return out

    def refresh(self):
        """The model's version, status and breach from each request's view."""
        for rid, m in self.model.items():
            v = self.w.view(rid)
            m["status"], m["version"] = v["status"], v["version"]
            m["breached"] = any(s.get("sla") == "breached" for s in v["steps"])
            m["agencies"] = {s["agency"] for s in v["steps"]
                             if s.get("agency") and s.get("opened_at")}

    def check_all(self, when):
        self.refresh()
        w = self.w
        portals = {"p1": w.portal, "p2": w.portal2}
        queries = [{}, {"workflow": self.wx}, {"workflow": self.wy}, {"agency": w.B},
                   {"agency": w.C}, {"breached": "true"}, {"breached": "false"},
                   {"workflow": self.wx, "status": "rejected"}]
        queries += [{"status": s} for s in STATUSES]
        for flt in queries:
            q = "&".join("%s=%s" % kv for kv in sorted(flt.items()))
            for limit in (1, 7, 500):
                if limit == 1 and flt:
                    continue  # 150 pages each: once, unfiltered, is enough
                self.assertEqual(self.pages(w.plat, q, limit), self.expect(None, **flt),
                                 "%s: platform, %r, limit %d" % (when, flt, limit))
            for name, client in portals.items():
                self.assertEqual(self.pages(client, q, 9), self.expect(name, **flt),
                                 "%s: portal %s, %r" % (when, name, flt))
        self.assertEqual(self.pages(w.auditor, "agency=" + w.C, 11),
                         self.expect(None, agency=w.C))

    def test_list_from_disk(self):
        self.w = w = World(self.server)
        rng = random.Random(13)
        self.wx = w.workflow()
        self.wy = uniq("wf")
        w.publish({"id": self.wy, "title": "two steps", "calendar": "th-gov",
                   "form": {"n": {"type": "integer"}},
                   "steps": {"intake": {"kind": "task", "agency": w.A, "sla": "1 working day"},
                             "review_b": {"kind": "task", "agency": w.B,
                                          "after": ["intake"]}}})
        self.model, self.order = {}, []
        for i in range(150):
            wf = self.wx if rng.random() < 0.6 else self.wy
            portal = "p1" if rng.random() < 0.7 else "p2"
            client = w.portal if portal == "p1" else w.portal2
            form = None if wf == self.wx else {"n": i}
            got = w.submit(wf, form=form, portal=client)
            self.model[got["id"]] = {"workflow": wf, "portal": portal,
                                     "code": got["tracking_code"]}
            self.order.append(got["id"])
        for rid in self.order:
            roll = rng.random()
            if roll < 0.3:
                w.decide(rid, "intake", "approve", agency=w.A)
            elif roll < 0.4:
                w.decide(rid, "intake", "reject", agency=w.A, reason="no")
            elif roll < 0.45:
                client = w.portal if self.model[rid]["portal"] == "p1" else w.portal2
                r = client.post("/v1/requests/%s/withdraw" % rid, {"reason": "changed my mind"})
                self.assertEqual(r.status, 200, r)
        # Two working days later: the open intakes of the second workflow
        # (1 working day) and of the first (2) have breached.
        r = w.plat.post("/v1/test/clock", {"advance": "P3D"})
        self.assertEqual(r.status, 200, r)
        self.check_all("live")
        self.assertTrue(self.expect(None, breached="true"), "nothing breached: a weak test")
        self.assertTrue(self.expect(None, status="rejected"), "nothing rejected: a weak test")

        # Cursors no server gives: 422, and nothing changes.
        for bad in ("0", "-1", "abc", "01", "1.5", "99999999999999999999", ""):
            r = w.plat.get("/v1/requests?cursor=" + bad)
            assert_error(self, r, 422, "invalid_request")
        # A cursor past every request: an empty last page.
        r = w.plat.get("/v1/requests?cursor=1")
        self.assertEqual((r.status, r.json["requests"], r.json["next_cursor"]), (200, [], None))

        self.server.stop()
        self.restart()
        self.check_all("after a clean restart")
        w.decide(self.order[-1], "intake", "approve", agency=w.A)
        self.server.kill()
        self.restart()
        self.check_all("after a kill -9")
        self.server.stop()
        self.restart("--rebuild-views")
        self.check_all("after --rebuild-views")
        self.server.stop()
        _, rec = replay_data(self.server.data_dir)
        ix = rec["indexes"]
        self.assertEqual((ix["missing"], ix["different"], ix["extra"]), (0, 0, 0), rec)
        self.assertGreaterEqual(ix["equal"], len(self.order), rec)
        self.restart()


if __name__ == "__main__":
    main()
