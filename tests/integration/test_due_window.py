"""test_due_window.py: licence expiries and retention erasures read from their
index on disk a window at a time (issue 13; docs/design.md "The indexes on
disk", engine/expiry.c), over real HTTP.

The server runs with the hidden `--due-window 1`: the heap of expiries holds
one entry of the index at a time, so every later one is read from disk.

- On the test clock (--test-clock=TIME at 2030-01-07T09:00:00+07:00): five
  licences (two of them due at the same instant, one revoked) and two
  requests with a retention period; after a restart (which reads only the
  first entry) each clock move fires exactly what fell due by then, once,
  also across a kill -9; a licence issued after the restart due before the
  first entry, and one due long after the last, expire on time too (the
  second waits in the pending list until its batch is durable).
- On the real clock: licences issued under a test clock set in 2020 (the
  past, so their valid_until is behind any real clock) all expire at the
  first start on the real clock, each read from disk after the one before
  through the libuv pool (this depends only on today being after March
  2020).

`osse replay --data` finds every index entry equal and none extra at the end
(an expired licence's entry is deleted with its batch).
"""

import http.client
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (FORM_FIELDS, Server, World, good_form, main,  # noqa: E402
                          replay_data, uniq)

START = "2030-01-07T09:00:00+07:00"
PAST = "2020-03-02T09:00:00+07:00"


def licence_workflow(wid, valid_for):
    return {"id": wid, "title": "Licence " + wid, "calendar": "th-gov",
            "form": json.loads(json.dumps(FORM_FIELDS)),
            "steps": {"licence": {"kind": "issue", "number": wid.upper() + "-{seq:3}",
                                  "valid_for": valid_for,
                                  "public_fields": ["business_name", "district"]}}}


def retention_workflow(wid, agency, retention):
    return {"id": wid, "title": "Retention", "retention": retention,
            "form": {"applicant_name": {"type": "string", "required": True, "pii": True},
                     "business_name": {"type": "string", "required": True}},
            "steps": {"review": {"kind": "task", "agency": agency}}}


class Base(unittest.TestCase):

    def start(self, data_dir=None, clock=START):
        args = ["--due-window", "1"] + (["--test-clock=" + clock] if clock else [])
        self.server = Server(data_dir=data_dir, extra_args=args).start()
        if data_dir is not None:
            self.server.own_dir = True

    def tearDown(self):
        srv = self.server
        try:
            if srv.alive():
                self.assertEqual(srv.stop(), 0, srv.stderr_tail(60))
        finally:
            srv.cleanup()

    def restart(self, kill=False, clock=START):
        self.server.own_dir = False
        if kill:
            self.server.kill()
        else:
            self.assertEqual(self.server.stop(), 0, self.server.stderr_tail())
        self.start(self.server.data_dir, clock)
        w = self.w
        w.plat = self.server.client(w.admin_token)
        w.portal = self.server.client(w.portal.token)
        w.anon = self.server.client("")
        w.ag = {a: self.server.client(c.token) for a, c in w.ag.items()}

    def issue(self, wid):
        rid = self.w.submit(wid, good_form())["id"]
        v = self.w.view(rid)
        self.assertEqual(v["status"], "completed", v)
        return rid, v["licence"]["number"]

    def status(self, number):
        r = self.w.anon.get("/v1/public/licences/" + number)
        self.assertEqual(r.status, 200, r)
        return r.json["status"]

    def count(self, rid, typ):
        r = self.w.plat.get("/v1/requests/%s/events" % rid)
        self.assertEqual(r.status, 200, r)
        return sum(1 for e in r.json["events"] if e["type"] == typ)


class TestTestClock(Base):

    def advance(self, d):
        r = self.w.plat.post("/v1/test/clock", {"advance": d})
        self.assertEqual(r.status, 200, r)

    def expect(self, when, valid=(), expired=(), revoked=(), erased=(), kept=()):
        for rid, n in valid:
            self.assertEqual(self.status(n), "valid", (when, n))
        for rid, n in expired:
            self.assertEqual(self.status(n), "expired", (when, n))
            self.assertEqual(self.count(rid, "LicenceExpired"), 1, (when, n))
        for rid, n in revoked:
            self.assertEqual(self.status(n), "revoked", (when, n))
            self.assertEqual(self.count(rid, "LicenceExpired"), 0, (when, n))
        for rid in erased:
            self.assertEqual(self.count(rid, "PersonalDataErased"), 1, (when, rid))
        for rid in kept:
            self.assertEqual(self.count(rid, "PersonalDataErased"), 0, (when, rid))

    def test_window_of_one_on_the_test_clock(self):
        self.start()
        self.w = w = World(self.server)
        wids = {}
        for v in ("PT2H", "P10D", "P20D", "P400D"):
            wids[v] = "dw-" + uniq("l").lower()
            w.publish(licence_workflow(wids[v], v))
        ret = uniq("rt")
        w.publish(retention_workflow(ret, w.A, "P15D"))
        l1 = self.issue(wids["PT2H"])
        l2 = self.issue(wids["P10D"])
        l3 = self.issue(wids["P10D"])  # due at the same instant as l2
        l5 = self.issue(wids["P10D"])
        l4 = self.issue(wids["P20D"])
        r = w.plat.post("/v1/licences/%s/revoke" % l5[1], {"reason": "fraud"})
        self.assertEqual(r.status, 200, r)
        rets = []
        for _ in range(2):
            rid = w.submit(ret, {"applicant_name": "Somchai", "business_name": "Shop"})["id"]
            w.decide(rid, "review", "approve", agency=w.A)
            rets.append(rid)

        # The start reads one entry of the index (l1's expiry).
        self.restart()
        # Issued now, due before l1's: held at once, not read from disk.
        l0 = self.issue(wids["PT2H"])
        self.advance("PT1H")
        self.expect("1h", valid=[l0, l1, l2, l3, l4])
        self.advance("PT90M")
        self.expect("2h30", expired=[l0, l1], valid=[l2, l3, l4], revoked=[l5], kept=rets)
        # Due far beyond what the heap holds: waits for its batch, then on disk.
        l6 = self.issue(wids["P400D"])
        self.advance("P10D")
        self.expect("10d", expired=[l0, l1, l2, l3], valid=[l4, l6], revoked=[l5], kept=rets)

        self.restart(kill=True, clock=START)
        self.advance("P6D")
        self.expect("16d", expired=[l2, l3], valid=[l4, l6], erased=rets)
        self.advance("P5D")
        self.expect("21d", expired=[l4], valid=[l6], revoked=[l5], erased=rets)
        self.restart()
        self.advance("P400D")
        self.expect("421d", expired=[l0, l1, l2, l3, l4, l6], revoked=[l5], erased=rets)

        self.server.stop()
        _, rec = replay_data(self.server.data_dir)
        ix = rec["indexes"]
        self.assertEqual((ix["missing"], ix["different"], ix["extra"]), (0, 0, 0), rec)


    def test_issued_while_the_index_is_read(self):
        """A licence issued in the same instant as a clock move: the move's
        read of the index may not yet see the licence's batch (it is not
        durable), so the entry waits in the pending list and joins the heap
        when the read is back. Whichever came first, a licence whose
        valid_until is not after the clock is expired, once. Sent on two
        connections without waiting for the first answer, twenty times."""
        self.start()
        self.w = w = World(self.server)
        wid = "dw-" + uniq("p").lower()
        w.publish(licence_workflow(wid, "PT1H"))
        self.issue(wid)  # the index is not empty: the heap holds its first entry only
        self.restart()
        port = self.server.port
        body = json.dumps({"workflow": wid, "form": good_form()}).encode()
        rids = []
        for i in range(20):
            a = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            b = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            a.request("POST", "/v1/requests", body=body,
                      headers={"Authorization": "Bearer " + w.portal.token,
                               "Content-Type": "application/json"})
            b.request("POST", "/v1/test/clock", body=json.dumps({"advance": "PT2H"}).encode(),
                      headers={"Authorization": "Bearer " + w.admin_token,
                               "Content-Type": "application/json"})
            ra, rb = a.getresponse(), b.getresponse()
            ja, jb = json.loads(ra.read()), json.loads(rb.read())
            self.assertEqual((ra.status, rb.status), (201, 200), (ja, jb))
            rids.append(ja["id"])
            a.close()
            b.close()
        now = w.plat.post("/v1/test/clock", {"advance": "PT1S"}).json["now"]
        for rid in rids:
            v = w.view(rid)
            lic = v["licence"]
            due = lic["valid_until"] <= now
            self.assertEqual(self.status(lic["number"]), "expired" if due else "valid",
                             (rid, lic["valid_until"], now))
            self.assertEqual(self.count(rid, "LicenceExpired"), 1 if due else 0, rid)


class TestRealClock(Base):

    def test_expired_while_down_on_the_real_clock(self):
        self.start(clock=PAST)
        self.w = w = World(self.server)
        wid = "dw-" + uniq("r").lower()
        w.publish(licence_workflow(wid, "PT1H"))
        wid2 = "dw-" + uniq("r").lower()
        w.publish(licence_workflow(wid2, "PT3H"))
        lics = [self.issue(wid) for _ in range(3)] + [self.issue(wid2) for _ in range(2)]
        for _, n in lics:
            self.assertEqual(self.status(n), "valid")
        # No test clock: osse's clock is the real one, years past every
        # valid_until; each expiry is read from disk after the one before.
        self.restart(clock=None)
        for _ in range(400):
            if all(self.status(n) == "expired" for _, n in lics):
                break
            time.sleep(0.05)
        self.assertEqual([self.status(n) for _, n in lics], ["expired"] * len(lics))
        for rid, n in lics:
            self.assertEqual(self.count(rid, "LicenceExpired"), 1, n)


if __name__ == "__main__":
    main()
