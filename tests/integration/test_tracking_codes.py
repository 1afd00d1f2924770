"""test_tracking_codes.py: a tracking code is on no other request ever, by
construction (engine/trackcode.h: a keyed permutation of the request's
first seq), over real HTTP, across clean restarts and a kill -9.

The code space is shrunk to 2^10 codes (OSSE_TEST_CODE_BITS=10, honoured
only with --test-clock): 1,024 seqs, about two hundred requests of a licence
workflow that ends at its submission. One server (--request-cache 0: every
ended request leaves memory once durable) gets them one at a time, restarted
every 40 and killed with SIGKILL once, until a submission is refused: 503
tracking_codes_exhausted, and nothing changed. Then every code is distinct,
11 characters whose check character is right, and GET /v1/track/{code}
(also in lower case) shows each request's own licence, and every other code
of the domain is not found (404). A code made any other
way repeats here: a random one within 2^10 (the birthday bound at two
hundred), a permutation whose key changed at a start across the runs.

A server without a reserve (--key-reserve 0) makes its codes the same way.
"""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (FORM_FIELDS, Server, World, assert_error, good_form, main,  # noqa: E402
                          uniq)

CLOCK = "--test-clock=2030-01-07T09:00:00+07:00"
HOOK = "OSSE_TEST_CODE_BITS"
CODE = re.compile(r"^[A-HJ-NP-Z2-9]{11}$")
ALPHA = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def check_ok(code):
    """Luhn mod 32 over the 11 characters (engine/trackcode.c)."""
    total, factor = 0, 1
    for ch in reversed(code):
        a = factor * ALPHA.index(ch)
        total += a // 32 + a % 32
        factor = 1 if factor == 2 else 2
    return total % 32 == 0


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

    def test_codes_unique_by_construction(self):
        os.environ[HOOK] = "10"
        srv = self.server("--key-reserve", "12")
        w = World(srv)
        lic = uniq("lic")
        w.publish({"id": lic, "title": "Licence", "form": FORM_FIELDS,
                   "steps": {"licence": {"kind": "issue",
                                         "number": "TC%s-{seq:4}" % lic[-4:].upper()}}})
        mine = {}  # request id -> tracking code
        starts, killed = 1, False
        while True:
            portal = srv.client(w.portal.token)
            r = portal.post("/v1/requests", {"workflow": lic, "form": good_form()})
            if r.status == 503:
                assert_error(self, r, 503, "tracking_codes_exhausted")
                break
            self.assertEqual(r.status, 201, r)
            self.assertEqual(r.json["status"], "completed", r)
            code = r.json["tracking_code"]
            self.assertRegex(code, CODE)
            self.assertTrue(check_ok(code), code)
            self.assertTrue(code.startswith("A" * 8), code)  # 10 bits: two characters
            self.assertNotIn(code, set(mine.values()),
                             "code %s repeats, after %d requests in %d starts" % (
                                 code, len(mine), starts))
            mine[r.json["id"]] = code
            self.assertLess(len(mine), 1024, "the domain is not used up")
            if len(mine) % 40 == 0:
                if not killed and len(mine) == 80:
                    srv.kill()  # kill -9: every answered request is durable
                    killed = True
                else:
                    self.assertEqual(srv.stop(), 0)
                srv.start()
                starts += 1

        print("\n  %d codes of 1,024 seqs in %d starts" % (len(mine), starts))
        self.assertTrue(killed)
        self.assertGreater(len(mine), 100)
        self.assertEqual(len(set(mine.values())), len(mine))
        plat = srv.client(w.admin_token)
        anon = srv.client("")
        # The refused submission changed nothing: no request more.
        listed, cursor = set(), ""
        while True:
            lst = plat.get("/v1/requests?workflow=%s&limit=100%s" % (
                lic, "&cursor=" + cursor if cursor else ""))
            self.assertEqual(lst.status, 200, lst)
            listed |= {it["id"] for it in lst.json["requests"]}
            cursor = lst.json.get("next_cursor")
            if not cursor:
                break
        self.assertEqual(listed, set(mine))
        again = srv.client(w.portal.token).post("/v1/requests",
                                                {"workflow": lic, "form": good_form()})
        assert_error(self, again, 503, "tracking_codes_exhausted")
        for rid, code in mine.items():
            v = w.view(rid, plat)
            self.assertEqual(v["tracking_code"], code, rid)
            for c in (code, code.lower()):
                tr = anon.get("/v1/track/" + c)
                self.assertEqual(tr.status, 200, (rid, tr))
                self.assertEqual(tr.json["licence"]["number"], v["licence"]["number"], rid)
                self.assertEqual(tr.json["submitted_at"], v["submitted_at"], rid)
        # Every code of the domain: those of the requests track them, the
        # others (the seq of another event, or of none) name nothing. A code
        # names its request by the event at its seq (engine/cache.c), and
        # these requests left memory (--request-cache 0).
        mine_codes = set(mine.values())
        for v in range(1024):
            digits = "A" * 8 + ALPHA[v // 32] + ALPHA[v % 32]
            code = next(digits + c for c in ALPHA if check_ok(digits + c))
            tr = anon.get("/v1/track/" + code)
            self.assertEqual(tr.status, 200 if code in mine_codes else 404, (code, tr))
        self.assertTrue(srv.alive())
        self.assertEqual(srv.stop(), 0)

    def test_without_a_reserve(self):
        srv = self.server("--key-reserve", "0")
        w = World(srv)
        wid = w.workflow()
        codes = [w.submit(wid)["tracking_code"] for _ in range(5)]
        for code in codes:
            self.assertRegex(code, CODE)
            self.assertTrue(check_ok(code), code)
        self.assertEqual(len(set(codes)), 5)
        anon = srv.client("")
        self.assertEqual(anon.get("/v1/track/" + codes[0]).status, 200)
        self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    main()
