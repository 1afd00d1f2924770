"""test_tracking_codes.py: a tracking code is on no other request ever, also
on none that left memory (engine/pii.c "Tracking codes", docs/design.md
"Closed requests on disk"), over real HTTP.

A code of a new request was once checked against the requests in memory
only; since ended requests leave memory (--request-cache, engine/cache.c) it
has to be checked against the disk too, on the pool: the reserve's refill
mints a code with each id there and drops one that a request's nam/ entry
has. To make collisions certain the code space is shrunk to 32 codes
(OSSE_TEST_CODE_RANDOM_CHARS=1, honoured only with --test-clock: one random
character, the other nine 'A').

One server (--test-clock, --request-cache 0: every ended request leaves
memory once durable, --key-reserve 12) gets requests of a licence workflow
that ends at its submission, one at a time, each while the reserve has an
entry at hand (osse_key_reserve_keys > 0: refills come between); when it has
none for a while, the server is restarted (the start's fill, read against
the disk); until a start finds no free code. Then: every code is distinct,
GET /v1/track/{code} shows each request's own licence, no code was minted
without the reserve (osse_tracking_codes_unchecked_total 0), the refills
gave up on codes they could not find ("tracking codes not found") and the
server still answers. Without the check on disk (refill_codes in pii.c
reading no nam/ entry) the codes repeat within the first run.

A server without a reserve (--key-reserve 0) mints the code on the loop
and counts it in osse_tracking_codes_unchecked_total.
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import FORM_FIELDS, Server, World, good_form, main, metric, uniq  # noqa: E402

CLOCK = "--test-clock=2030-01-07T09:00:00+07:00"
HOOK = "OSSE_TEST_CODE_RANDOM_CHARS"
SPACE = 32  # one random character of the alphabet's 32


class TestTrackingCodes(unittest.TestCase):

    def setUp(self):
        self.servers = []

    def tearDown(self):
        os.environ.pop(HOOK, None)
        for srv in self.servers:
            srv.cleanup()

    def server(self, *args):
        srv = Server(extra_args=[CLOCK, "--request-cache", "0"] + list(args))
        self.servers.append(srv)
        return srv.start()

    def at_hand(self, plat, wait=2.0):
        """The reserve's entries at hand, waiting up to `wait` seconds for a
        refill when there are none (0: none came)."""
        deadline = time.monotonic() + wait
        while True:
            n = metric(plat, "osse_key_reserve_keys")
            if n or time.monotonic() > deadline:
                return n
            time.sleep(0.02)

    def test_codes_unique_against_the_disk(self):
        os.environ[HOOK] = "1"
        srv = self.server("--key-reserve", "12")
        w = World(srv)
        lic = uniq("lic")
        w.publish({"id": lic, "title": "Licence", "form": FORM_FIELDS,
                   "steps": {"licence": {"kind": "issue",
                                         "number": "TC%s-{seq:4}" % lic[-4:].upper()}}})
        mine = {}  # request id -> tracking code
        starts = 0
        while True:
            plat = srv.client(w.admin_token)
            portal = srv.client(w.portal.token)
            self.assertEqual(metric(plat, "osse_tracking_codes_unchecked_total"), 0)
            fresh = metric(plat, "osse_key_reserve_keys")
            if fresh == 0:
                break  # a start found no free code: the space is used up
            while self.at_hand(plat):
                r = portal.post("/v1/requests", {"workflow": lic, "form": good_form()})
                self.assertEqual(r.status, 201, r)
                self.assertEqual(r.json["status"], "completed", r)
                code = r.json["tracking_code"]
                self.assertNotIn(code, set(mine.values()),
                                 "code %s repeats, after %d requests in %d starts" % (
                                     code, len(mine), starts + 1))
                mine[r.json["id"]] = code
            # Every ended request left memory (none pinned: no expiry).
            self.assertEqual(metric(plat, "osse_cache_requests_in_memory"), 0)
            self.assertEqual(metric(plat, "osse_tracking_codes_unchecked_total"), 0)
            self.assertEqual(metric(plat, "osse_key_reserve_misses_total"), 0)
            starts += 1
            self.assertLess(starts, 20, "the starts keep finding codes")
            self.assertEqual(srv.stop(), 0)
            srv.start()

        codes = list(mine.values())
        print("\n  %d codes of %d in %d starts" % (len(codes), SPACE, starts + 1))
        self.assertEqual(len(set(codes)), len(codes),
                         "codes repeat: %s" % sorted(c for c in codes if codes.count(c) > 1))
        # Nearly all 32 were found (16 draws for each id of a fill).
        self.assertGreaterEqual(len(codes), SPACE - 4, codes)
        self.assertLessEqual(len(codes), SPACE)
        for c in codes:
            self.assertRegex(c, r"^[A-Z2-9]A{9}$")
        plat = srv.client(w.admin_token)
        anon = srv.client("")
        for rid in mine:
            v = w.view(rid, plat)
            tr = anon.get("/v1/track/" + mine[rid])
            self.assertEqual(tr.status, 200, (rid, tr))
            self.assertEqual(tr.json["licence"]["number"], v["licence"]["number"], rid)
            self.assertEqual(tr.json["submitted_at"], v["submitted_at"], rid)
            self.assertEqual(tr.json["tracking_code"], v["tracking_code"], rid)
        # The refills gave up on codes they could not find, and the server
        # answers.
        with open(srv.log_path, "rb") as fh:
            self.assertIn(b'msg="tracking codes not found"', fh.read())
        self.assertEqual(metric(plat, "osse_key_reserve_keys"), 0)
        self.assertTrue(srv.alive())
        self.assertEqual(srv.stop(), 0)

    def test_unchecked_without_a_reserve(self):
        srv = self.server("--key-reserve", "0")
        w = World(srv)
        wid = w.workflow()
        self.assertEqual(metric(w.plat, "osse_tracking_codes_unchecked_total"), 0)
        code = w.submit(wid)["tracking_code"]
        self.assertRegex(code, r"^[A-HJ-NP-Z2-9]{10}$")
        self.assertEqual(metric(w.plat, "osse_tracking_codes_unchecked_total"), 1)
        self.assertEqual(metric(w.plat, "osse_key_reserve_misses_total"), 1)
        self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    main()
