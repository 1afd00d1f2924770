"""test_discovery.py: the catalog lists and a subscription's own routes
(SPEC §4 lists, §5 SubscriptionDeleted, §7).

- GET /v1/workflows, /v1/agencies, /v1/calendars, /v1/principals and
  /v1/subscriptions (platform, auditor; a portal its own subscriptions)
  answer {"<things>":[...],"next_cursor"}, each entry exactly as its own GET
  answers it, never a secret, a token or a token hash; limit/cursor page
  through them in id order without repeats or gaps.
- GET and DELETE /v1/subscriptions/{id}: its owner and the platform; another
  portal 403, unknown 404. DELETE answers {"id","deleted":true}, records
  SubscriptionDeleted in subscription/<id>, ends every pending delivery as
  NotificationFailed ("the subscription was deleted") and makes no new ones,
  also after a restart; the same id may be PUT again (a new subscription,
  with a new secret). The views' digest equals `osse replay`'s.

Python standard library only.
"""

import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (OSSE_BIN, FailingReceiver, Server, ServerTestCase,  # noqa: E402
                          World, assert_error, main, uniq)

FAST = ["--hook-retry-base-ms", "200"]
LISTS = ("workflows", "calendars", "agencies", "principals", "subscriptions")


def everything(client, what, limit=None):
    """Every entry of a list, following next_cursor."""
    out, cursor = [], None
    for _ in range(10000):
        q = []
        if limit:
            q.append("limit=%d" % limit)
        if cursor:
            q.append("cursor=" + cursor)
        r = client.get("/v1/%s%s" % (what, "?" + "&".join(q) if q else ""))
        assert r.status == 200, r
        assert set(r.json) == {what, "next_cursor"}, r
        out += r.json[what]
        cursor = r.json["next_cursor"]
        if cursor is None:
            return out
        assert r.json[what], r
    raise AssertionError("paging does not end")


def by_id(entries):
    return {e["id"]: e for e in entries}

def pending(client):
    m = client.get("/metrics").body.decode()
    return [float(line.split()[-1]) for line in m.splitlines()
            if line.startswith("osse_hook_deliveries_pending ")][0]


class TestDiscovery(ServerTestCase):

    @classmethod
    def setUpClass(cls):
        # The subscriptions below go to http://127.0.0.1 (SPEC §7).
        cls.server = Server(extra_args=["--allow-private-urls"]).start()
        w = cls.w = World(cls.server)
        cls.wid = w.workflow()
        w.workflow(cls.wid, title="Second")  # a second version: the list shows the latest
        cls.url = "http://127.0.0.1:9/hook"  # nothing listens: never delivered

    def sub(self, client, sid=None, events=("RequestCompleted",)):
        sid = sid or uniq("sub")
        r = client.put("/v1/subscriptions/" + sid, {"url": self.url, "events": list(events)})
        self.assertEqual(r.status, 201, r)
        return sid, r.json["secret"]

    def test_lists_answer_each_entry_as_its_own_get(self):
        w = self.w
        mine = [self.sub(w.portal), self.sub(w.portal)]
        other = [self.sub(w.portal2)]
        plat = [self.sub(w.plat)]
        secrets = [s for _, s in mine + other + plat] + list(w.secrets.values())
        tokens = [c.token for c in (w.plat, w.portal, w.portal2, w.auditor, w.payment)]
        for reader in (w.plat, w.auditor):
            got = {what: by_id(everything(reader, what)) for what in LISTS}
            text = json.dumps(got)
            for s in secrets + tokens:
                self.assertNotIn(s, text)
            self.assertNotIn("token", text)
            self.assertNotIn("secret", text)
            wf = got["workflows"][self.wid]
            self.assertEqual(wf, w.plat.get("/v1/workflows/" + self.wid).json)
            self.assertEqual((wf["version"], set(wf)), (2, {"id", "version", "title",
                                                            "definition"}))
            self.assertEqual(got["calendars"]["th-gov"], w.plat.get("/v1/calendars/th-gov").json)
            for ag in w.agencies:
                # The one agency's answer holds its secret; the list's never.
                one = w.plat.get("/v1/agencies/" + ag).json
                self.assertEqual(one.pop("webhook_secret"), w.secrets[ag])
                self.assertEqual(got["agencies"][ag], one)
                self.assertEqual(one["name"], "Agency " + ag)
            ps = got["principals"]
            self.assertIn(w.principal("portal")["id"], by_id(everything(reader, "principals")))
            for p in ps.values():
                self.assertEqual(set(p), {"id", "role", "agency", "name", "revoked",
                                          "created_at"}, p)
            subs = got["subscriptions"]
            for sid, _ in mine + other + plat:
                self.assertIn(sid, subs)
                self.assertEqual(subs[sid], w.plat.get("/v1/subscriptions/" + sid).json)
                self.assertEqual(set(subs[sid]), {"id", "url", "events", "owner", "version"})
        # A portal lists its own subscriptions only, as their GET answers them.
        for client, own, not_own in ((w.portal, mine, other + plat), (w.portal2, other, mine)):
            subs = by_id(everything(client, "subscriptions"))
            self.assertEqual(set(subs), {sid for sid, _ in own})
            for sid, _ in own:
                self.assertEqual(subs[sid], client.get("/v1/subscriptions/" + sid).json)
            for sid, _ in not_own:
                self.assertNotIn(sid, subs)

    def test_paging(self):
        w = self.w
        for i in range(5):
            self.assertEqual(w.plat.put("/v1/agencies/pg-%s-%d" % (w.sfx, i),
                                        {"name": "p%d" % i}).status, 201)
        for what in LISTS:
            with self.subTest(list=what):
                whole = [e["id"] for e in everything(w.plat, what)]
                self.assertEqual(whole, sorted(whole))
                self.assertEqual(len(whole), len(set(whole)))
                for limit in (1, 2, 3):
                    self.assertEqual([e["id"] for e in everything(w.plat, what, limit)], whole)
        r = w.plat.get("/v1/agencies?limit=2")
        self.assertEqual(len(r.json["agencies"]), 2)
        self.assertEqual(r.json["next_cursor"], r.json["agencies"][1]["id"])
        for q in ("limit=0", "limit=501", "limit=x", "state=open", "cursor=a&x=1"):
            with self.subTest(query=q):
                assert_error(self, w.plat.get("/v1/agencies?" + q), 422, "invalid_request")

    def test_get_and_delete_a_subscription(self):
        w = self.w
        sid, secret = self.sub(w.portal)
        r = w.portal.get("/v1/subscriptions/" + sid)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, {"id": sid, "url": self.url, "events": ["RequestCompleted"],
                                  "owner": r.json["owner"], "version": 1})
        self.assertNotIn(secret, r.body.decode())
        self.assertEqual(w.plat.get("/v1/subscriptions/" + sid).json, r.json)
        assert_error(self, w.portal2.get("/v1/subscriptions/" + sid), 403, "forbidden")
        assert_error(self, w.auditor.get("/v1/subscriptions/" + sid), 403, "forbidden")
        assert_error(self, w.ag[w.A].get("/v1/subscriptions/" + sid), 403, "forbidden")
        assert_error(self, w.portal.get("/v1/subscriptions/" + uniq("none")), 404, "not_found")
        assert_error(self, w.portal.delete("/v1/subscriptions/" + uniq("none")), 404, "not_found")
        before = w.log_size()
        assert_error(self, w.portal2.delete("/v1/subscriptions/" + sid), 403, "forbidden")
        self.assertEqual(w.log_size(), before)
        r = w.portal.delete("/v1/subscriptions/" + sid)
        self.assertEqual((r.status, r.json), (200, {"id": sid, "deleted": True}), r)
        ev = w.log_events(before)
        self.assertEqual([(e["stream"], e["version"], e["type"], e["data"]) for e in ev],
                         [("subscription/" + sid, 2, "SubscriptionDeleted", {"id": sid})])
        self.assertEqual(ev[0]["actor"]["kind"], "portal")
        assert_error(self, w.portal.get("/v1/subscriptions/" + sid), 404, "not_found")
        assert_error(self, w.portal.delete("/v1/subscriptions/" + sid), 404, "not_found")
        for c in (w.plat, w.portal):
            self.assertNotIn(sid, by_id(everything(c, "subscriptions")))
        # The id may be taken again, by anyone: a new subscription.
        r = w.portal2.put("/v1/subscriptions/" + sid, {"url": self.url, "events": ["StepOpened"]})
        self.assertEqual((r.status, r.json["version"]), (201, 3), r)
        self.assertNotEqual(r.json["secret"], secret)
        self.assertEqual(w.portal2.get("/v1/subscriptions/" + sid).json["events"], ["StepOpened"])
        assert_error(self, w.portal.get("/v1/subscriptions/" + sid), 403, "forbidden")
        # The platform may end anyone's.
        r = w.plat.delete("/v1/subscriptions/" + sid)
        self.assertEqual((r.status, r.json), (200, {"id": sid, "deleted": True}), r)


class TestDeleteStopsDeliveries(unittest.TestCase):
    def test_pending_deliveries_end_and_no_new_ones(self):
        srv = Server(extra_args=FAST + ["--allow-private-urls"]).start()
        rec = FailingReceiver()
        try:
            w = World(srv)
            wid = w.workflow()
            sid = uniq("sub")
            r = w.portal.put("/v1/subscriptions/" + sid,
                             {"url": rec.url, "events": ["RequestSubmitted", "StepOpened"]})
            self.assertEqual(r.status, 201, r)
            rid = w.submit(wid)["id"]
            self.assertEqual(pending(w.plat), 2)  # RequestSubmitted, StepOpened (intake)
            deadline = time.monotonic() + 10
            while rec.count() < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertGreaterEqual(rec.count(), 2)
            r = w.portal.delete("/v1/subscriptions/" + sid)
            self.assertEqual(r.status, 200, r)
            at_delete = rec.count()
            self.assertEqual(pending(w.plat), 0)
            evs = w.plat.get("/v1/requests/%s/events" % rid).json["events"]
            failed = [e for e in evs if e["type"] == "NotificationFailed"]
            self.assertEqual(len(failed), 2, evs)
            for e in failed:
                self.assertEqual(e["stream"], "delivery/" + rid)
                self.assertEqual(e["data"]["receiver"], "subscription:" + sid)
                self.assertEqual(e["data"]["error"], "the subscription was deleted")
            self.assertEqual({e["data"]["type"] for e in failed}, {"RequestSubmitted",
                                                                   "StepOpened"})
            self.assertFalse([e for e in evs if e["type"] == "NotificationDelivered"])
            # New events it listed make no delivery.
            rid2 = w.submit(wid)["id"]
            self.assertEqual(pending(w.plat), 0)
            # Retries stop: at most the attempts already on the wire finish.
            time.sleep(1.5)
            self.assertLessEqual(rec.count(), at_delete + 2)
            live = w.plat.get("/v1/admin/digest").json
            self.assertEqual(srv.stop(), 0, srv.stderr_tail())
            p = subprocess.run([OSSE_BIN, "replay", "--data", srv.data_dir],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout.decode().split()[-1], live["digest"])
            # Nothing pending comes back after a restart either.
            srv.start()
            plat = srv.client(srv.admin_token())
            self.assertEqual(pending(plat), 0)
            self.assertEqual(plat.get("/v1/admin/digest").json, live)
            evs = plat.get("/v1/requests/%s/events" % rid2).json["events"]
            self.assertFalse([e for e in evs if e["type"].startswith("Notification")], evs)
        finally:
            rec.close()
            srv.cleanup()


if __name__ == "__main__":
    main()
