"""test_idempotency.py: remembered answers follow the last 24 hours, not
history (engine/commit.c, docs/design.md "Idempotency records by time"),
over real HTTP, on the test clock.

An Idempotency-Key's answer is remembered for 24 hours of the engine's
clock (SPEC §10). The records are kept in the order of their time (idt/
be64(at) key hash), so that a start reads the last day's, and each is
deleted once it has expired: from memory and disk as later answers are
remembered, at a start for those that expired while none was. The start
says what it read ("idempotency answers read answers= moved= deleted=");
GET /metrics counts what is in memory (osse_idempotency_answers). Until
this session every record ever was kept, and every start parsed them all.

A folder whose records an older osse wrote (idem/<key hash>; under
--test-clock, OSSE_TEST_IDEM_OLD_LAYOUT=1 writes them so) has the live ones
moved at its first start, and replays the same answers after it.
"""

import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import Server, World, good_form, main, metric, uniq  # noqa: E402

CLOCK = "--test-clock=2030-01-07T09:00:00+07:00"
OLD = "OSSE_TEST_IDEM_OLD_LAYOUT"


class TestIdempotencyRecords(unittest.TestCase):

    def setUp(self):
        self.srv = Server(extra_args=[CLOCK]).start()
        self.w = World(self.srv)
        self.wid = self.w.workflow()
        self.bodies = {}  # key -> the body sent with it, the same every time

    def tearDown(self):
        os.environ.pop(OLD, None)
        self.srv.cleanup()

    def submit(self, key):
        body = self.bodies.setdefault(key, json.dumps({"workflow": self.wid,
                                                        "form": good_form()}))
        portal = self.srv.client(self.w.portal.token)  # the port changes at each start
        return portal.post("/v1/requests", raw=body, headers={"Idempotency-Key": key})

    def restart(self, kill=False):
        if kill:
            self.srv.kill()
        else:
            self.assertEqual(self.srv.stop(), 0)
        self.srv.start()

    def last_read(self):
        """The last start's counts: (answers, moved, deleted)."""
        with open(self.srv.log_path, "rb") as fh:
            lines = [ln for ln in fh.read().decode().splitlines()
                     if 'msg="idempotency answers read"' in ln]
        self.assertTrue(lines)
        m = re.search(r"answers=(\d+) moved=(\d+) deleted=(\d+)", lines[-1])
        return tuple(int(x) for x in m.groups())

    def answers(self):
        return metric(self.srv.client(self.w.admin_token), "osse_idempotency_answers")

    def advance(self, iso):
        r = self.srv.client(self.w.admin_token).post("/v1/test/clock", {"advance": iso})
        self.assertEqual(r.status, 200, r)

    def replayed(self, key, rid):
        r = self.submit(key)
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["id"], rid, key)
        self.assertEqual(r.headers.get("idempotent-replayed"), "true", key)

    def test_a_day_not_history(self):
        first = {}
        for k in ("k1", "k2", "k3"):
            r = self.submit(k)
            self.assertEqual(r.status, 201, r)
            first[k] = r.json["id"]
        self.advance("PT12H")
        for k in ("k4", "k5"):
            first[k] = self.submit(k).json["id"]
        self.assertEqual(self.answers(), 5)

        # A start reads the five, and they answer as before.
        self.restart()
        self.assertEqual(self.last_read(), (5, 0, 0))
        self.assertEqual(self.answers(), 5)
        self.replayed("k1", first["k1"])
        self.replayed("k4", first["k4"])

        # 13 hours on, k1-k3 are 25 hours old: the next answer remembered
        # drops them from memory and deletes their records.
        self.advance("PT13H")
        r6 = self.submit("k6")
        self.assertEqual(r6.status, 201, r6)
        self.assertEqual(self.answers(), 3)  # k4, k5, k6
        self.restart(kill=True)  # the deletions went with k6's batch
        self.assertEqual(self.last_read(), (3, 0, 0))
        again = self.submit("k1")
        self.assertEqual(again.status, 201, again)
        self.assertNotEqual(again.json["id"], first["k1"], "k1 was forgotten")
        self.assertIsNone(again.headers.get("idempotent-replayed"))
        self.replayed("k5", first["k5"])

        # A day with no answer remembered: the start deletes the expired.
        self.advance("PT25H")
        self.restart()
        self.assertEqual(self.last_read(), (0, 0, 4))  # k4, k5, k6 and the new k1
        self.assertEqual(self.answers(), 0)
        self.restart()
        self.assertEqual(self.last_read(), (0, 0, 0), "the expired records are gone")

    def test_an_older_layout_is_moved(self):
        os.environ[OLD] = "1"  # read by the server at its start
        self.restart()
        ids = {k: self.submit(k).json["id"] for k in ("o1", "o2")}
        self.advance("PT23H")
        ids["o3"] = self.submit("o3").json["id"]
        self.advance("PT2H")  # o1 and o2 are 25 hours old, o3 2 hours
        os.environ.pop(OLD)
        self.restart()
        self.assertEqual(self.last_read(), (1, 1, 2))  # o3 moved; o1, o2 deleted
        self.replayed("o3", ids["o3"])
        fresh = self.submit("o1")
        self.assertNotEqual(fresh.json["id"], ids["o1"])
        self.restart()
        self.assertEqual(self.last_read(), (2, 0, 0))  # o3 in its new place, and the new o1
        self.replayed("o3", ids["o3"])


if __name__ == "__main__":
    main()
