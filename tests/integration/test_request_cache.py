"""test_request_cache.py: ended requests leave memory and are read back from
disk when a call names them (issue 13, engine/cache.c, docs/design.md
"Closed requests on disk"), over real HTTP.

One server (--test-clock=TIME at 2030-01-07T09:00:00+07:00, and
--request-cache 0: no ended request stays in memory once its record is
durable) gets requests that end in every way a call can later name them:
by id (the view, the events, a decision, a withdrawal, more information, a
payment, an erasure), by tracking code (the public tracking page), by
licence number (the registry, a revocation), by a payment's transaction
(the same transaction again, or on another request) and by an uploaded
file (the file it took). Each call is answered as it would be with the
request in memory: the same status and body as a server on the same data
folder with a cache big enough for all of them. /metrics shows that they
left memory (osse_cache_requests_in_memory is the open ones) and were read back.
A start trims the cache at once; a cache of 2 keeps at most 2 ended
requests (none pinned). `osse replay --data` finds every record and index
entry equal.

Keys on demand (storage/log.h kix/, storage/keystore.h): an ended request
out of memory is read back with its key, so its personal data reads plain
(not "[encrypted]"), on the server that evicted it and after restarts that
read only open work's keys ("keys read ... whole=no", 40 of them, read
on more than one thread where there are cores); a start on a data
folder whose keys have no locations (OSSE_TEST_FORGET_KEY_LOCATIONS=1, as
an older osse left it) reads the key store whole once and writes them, and
the next start reads by location again; an erasure of a request out of
memory removes its key from the key store's files.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (FORM_FIELDS, Server, World, good_form, main, metric,  # noqa: E402
                          replay_data, uniq, wrapped_keys)

CLOCK = "--test-clock=2030-01-07T09:00:00+07:00"
BILLER = "099400016550100"


class TestRequestCache(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=[CLOCK, "--request-cache", "0"]).start()

    @classmethod
    def tearDownClass(cls):
        srv = cls.server
        try:
            if srv.alive():
                assert srv.stop() == 0, srv.stderr_tail()
        finally:
            srv.cleanup()

    def restart(self, cache):
        if self.server.alive():
            self.server.stop()
        self.server.extra_args = [CLOCK, "--request-cache", cache]
        self.server.start()
        w = self.w
        w.plat = self.server.client(w.admin_token)
        for name in ("portal", "portal2", "auditor", "payment", "anon"):
            setattr(w, name, self.server.client(getattr(w, name).token))
        for ag in list(w.ag):
            w.ag[ag] = self.server.client(w.ag[ag].token)

    def answers(self, calls):
        """(status, body) of each (client name, method, path, body) call."""
        out = []
        for who, method, path, body in calls:
            c = getattr(self.w, who) if isinstance(who, str) else who
            r = c.get(path) if method == "GET" else c.post(path, body)
            out.append((r.status, r.body))
        return out

    def test_every_name_reads_back(self):
        self.w = w = World(self.server)
        r = w.plat.put("/v1/agencies/" + w.A, {"name": "Collector", "biller_id": BILLER})
        self.assertEqual(r.status, 200, r)
        # A licence at submission (no task): ended before the answer.
        lic = uniq("lic")
        w.publish({"id": lic, "title": "Licence", "form": FORM_FIELDS,
                   "steps": {"licence": {"kind": "issue", "valid_for": "P1Y",
                                         "number": "RB%s-{seq:4}" % lic[-4:].upper(),
                                         "public_fields": ["business_name"]}}})
        # A task, then a fee, then a licence.
        fee = uniq("fee")
        w.publish({"id": fee, "title": "Fee", "form": FORM_FIELDS,
                   "steps": {"review": {"kind": "task", "agency": w.B},
                             "fee": {"kind": "payment", "amount": "520", "agency": w.A,
                                     "after": ["review"]},
                             "licence": {"kind": "issue", "after": ["fee"],
                                         "valid_for": "P1Y",
                                         "number": "FE%s-{seq:4}" % fee[-4:].upper()}}})
        plain = w.workflow()  # one task for agency A
        before = metric(w.plat, "osse_cache_evicted_total")

        done = [w.submit(lic, good_form())["id"] for _ in range(3)]
        codes = {rid: w.view(rid)["tracking_code"] for rid in done}
        numbers = {rid: w.view(rid)["licence"]["number"] for rid in done}
        rejected = w.submit(plain)["id"]
        w.decide(rejected, "intake", "reject", agency=w.A, reason="no")
        open_one = w.submit(plain)["id"]
        paid = w.submit(fee, good_form())["id"]
        w.decide(paid, "review", "approve", agency=w.B)
        ref = [e for e in w.plat.get("/v1/requests/%s/events" % paid).json["events"]
               if e["type"] == "PaymentDue"][0]["data"]["reference"]
        tx = uniq("tx")
        pay = {"step": "fee", "amount": "520.00", "reference": ref, "transaction": tx}
        first = w.payment.post("/v1/requests/%s/payments" % paid, pay)
        self.assertEqual(first.status, 200, first)
        self.assertEqual(w.view(paid)["status"], "completed")
        unpaid = w.submit(fee, good_form())["id"]
        w.decide(unpaid, "review", "approve", agency=w.B)
        uref = [e for e in w.plat.get("/v1/requests/%s/events" % unpaid).json["events"]
                if e["type"] == "PaymentDue"][0]["data"]["reference"]

        # Every ended request left memory but the four valid licences, which
        # their expiries in the heap pin (a window of the due index, 4096
        # at most): the open ones and those are there.
        self.assertEqual(metric(w.plat, "osse_cache_ended_in_memory"), 4)
        self.assertEqual(metric(w.plat, "osse_cache_ended_pinned"), 4)
        self.assertEqual(metric(w.plat, "osse_cache_requests_in_memory"), 2 + 4)
        self.assertGreater(metric(w.plat, "osse_cache_evicted_total"), before)
        back = metric(w.plat, "osse_cache_read_back_total")

        reads = []
        for rid in done + [rejected, paid]:
            reads += [("plat", "GET", "/v1/requests/" + rid, None),
                      ("plat", "GET", "/v1/requests/%s/events" % rid, None),
                      ("auditor", "GET", "/v1/requests/" + rid, None)]
        for rid in done:
            reads += [("anon", "GET", "/v1/track/" + codes[rid], None),
                      ("anon", "GET", "/v1/public/licences/" + numbers[rid], None)]
        first_reads = self.answers(reads)
        for (st, body), call in zip(first_reads, reads):
            self.assertEqual(st, 200, (call, body))
        self.assertGreater(metric(w.plat, "osse_cache_read_back_total"), back)

        # Changes named by each name, on requests out of memory.
        writes = [
            # a decision on an ended request: 409 (not 404)
            ("ag_a", "POST", "/v1/tasks/%s/intake/decision" % rejected, {"outcome": "approve"}),
            ("portal", "POST", "/v1/requests/%s/withdraw" % done[0], {}),
            ("portal", "POST", "/v1/requests/%s/info" % rejected,
             {"step": "intake", "form": {}}),
            # the same transaction again: the first answer
            ("payment", "POST", "/v1/requests/%s/payments" % paid, pay),
            # the transaction of a request out of memory, on another: 409
            ("payment", "POST", "/v1/requests/%s/payments" % unpaid,
             dict(pay, reference=uref)),
            ("plat", "POST", "/v1/licences/%s/revoke" % numbers[done[1]],
             {"reason": "read back"}),
        ]
        w.ag_a = w.ag[w.A]
        got = self.answers(writes)
        self.assertEqual([s for s, _ in got], [409, 409, 409, 200, 409, 200], got)
        self.assertEqual(got[3][1], first.body)
        self.assertIn(b"transaction_reused", got[4][1])
        erase = w.plat.delete("/v1/requests/%s/personal-data" % done[2], body={"reason": "asked"})
        self.assertEqual(erase.status, 200, erase)
        self.assertEqual(w.view(done[2])["version"], w.view(done[2])["version"])
        self.assertEqual(w.anon.get("/v1/public/licences/" + numbers[done[1]]).json["status"],
                         "revoked")
        self.assertEqual(metric(w.plat, "osse_cache_requests_in_memory"), 2 + 4)

        # The same answers from a server that keeps every request in memory
        # (read at its start), then from one that keeps none again.
        after = self.answers(reads)
        for cache in ("1000000", "0"):
            self.restart(cache)
            self.assertEqual(self.answers(reads), after, "cache " + cache)
        # A start trims the cache at once, and each commit after: the three
        # valid licences stay (pinned), and the open requests.
        self.assertLessEqual(metric(w.plat, "osse_cache_ended_in_memory"), 3 + 1)
        w.submit(plain)
        self.assertEqual(metric(w.plat, "osse_cache_ended_in_memory"), 3)
        self.assertEqual(metric(w.plat, "osse_cache_requests_in_memory"), 3 + 3)
        # A cache of 1: the three pinned (off the cache's list) and the one
        # used last of the other two ended requests (rejected, the revoked
        # licence's).
        self.restart("1")
        self.assertEqual(self.answers(reads), after, "cache 1")
        w.submit(plain)
        self.assertEqual(metric(w.plat, "osse_cache_ended_pinned"), 3)
        self.assertEqual(metric(w.plat, "osse_cache_ended_in_memory"), 4)
        self.assertEqual(metric(w.plat, "osse_cache_requests_in_memory"), 4 + 4)
        live = w.plat.get("/v1/admin/digest").json["digest"]
        self.server.stop()
        digest, rec = replay_data(self.server.data_dir)
        self.assertEqual(digest, live)
        self.assertEqual((rec["missing"], rec["different"]), (0, 0), rec)
        ix = rec["indexes"]
        self.assertEqual((ix["missing"], ix["different"], ix["extra"]), (0, 0, 0), rec)
        self.restart("0")


FORGET = "OSSE_TEST_FORGET_KEY_LOCATIONS"


class TestKeysOnDemand(unittest.TestCase):

    def setUp(self):
        self.server = Server(extra_args=[CLOCK, "--request-cache", "0"]).start()

    def tearDown(self):
        os.environ.pop(FORGET, None)
        try:
            if self.server.alive():
                assert self.server.stop() == 0, self.server.stderr_tail()
        finally:
            self.server.cleanup()

    def start_log(self):
        """The last start's stderr."""
        with open(self.server.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace").split("===== start ")[-1]

    def restart(self, w, forget=False):
        self.server.stop()
        if forget:
            os.environ[FORGET] = "1"
        try:
            self.server.start()
        finally:
            os.environ.pop(FORGET, None)
        w.plat = self.server.client(w.admin_token)

    def test_keys_read_with_their_requests(self):
        w = World(self.server)
        wid = w.workflow()
        forms, ended = {}, []
        for _ in range(3):
            f = good_form()
            rid = w.submit(wid, f)["id"]
            w.decide(rid, "intake", "reject", agency=w.A, reason="no")
            forms[rid] = f
            ended.append(rid)
        # Open ones enough that a start reads their keys in parts, on
        # threads (engine.c keys_read_all: 16 keys a part at least).
        for _ in range(40):
            f = good_form()
            forms[w.submit(wid, f)["id"]] = f
        self.assertEqual(metric(w.plat, "osse_cache_ended_in_memory"), 0)

        def plain_everywhere(when):
            for rid, f in forms.items():
                form = w.view(rid)["form"]
                self.assertEqual(form["applicant_name"], f["applicant_name"], (when, rid))
                self.assertEqual(form["applicant_id"], f["applicant_id"], (when, rid))

        plain_everywhere("read back by the server that let them go")
        self.restart(w)
        log = self.start_log()
        self.assertIn("whole=no", log)
        self.assertNotIn("key locations written", log)
        plain_everywhere("after a start by location")
        # As an older osse left the folder: read whole once, locations
        # written, then by location again.
        self.restart(w, forget=True)
        log = self.start_log()
        self.assertIn("whole=yes", log)
        self.assertIn("key locations written", log)
        plain_everywhere("after the start that wrote the locations")
        self.restart(w)
        self.assertIn("whole=no", self.start_log())
        plain_everywhere("after a start by the written locations")

        # An erasure of a request out of memory removes its key from the
        # key store's files; the others stay and read plain.
        gone = ended[0]
        self.assertIn(gone, wrapped_keys(self.server.data_dir))
        r = w.plat.delete("/v1/requests/%s/personal-data" % gone, body={"reason": "asked"})
        self.assertEqual(r.status, 200, r)
        self.assertNotIn(gone, wrapped_keys(self.server.data_dir))
        del forms[gone]
        self.restart(w)
        self.assertEqual(w.view(gone)["form"]["applicant_name"], "[erased]")
        plain_everywhere("after the erasure")


if __name__ == "__main__":
    main()
