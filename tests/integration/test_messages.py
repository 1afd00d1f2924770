"""test_messages.py: errors that say what is wrong (SPEC §11, §1).

- An empty body on a route that needs one is 422 and names what the route
  wants (from the route table); a route whose keys are all optional still
  takes an empty body as {}.
- A 403 for a role names the roles the route needs and the token's role.
- Each 405 carries its own Allow header, also when several are answered
  together: requests pipelined behind a write are held until it is durable
  and then sent in one batch, and their Allow headers must not be swapped.

Python standard library only.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (TH_GOV, ServerTestCase, World, assert_error, main,  # noqa: E402
                          raw_responses, uniq)


class TestMessages(ServerTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.w = World(cls.server)
        cls.wid = cls.w.workflow()

    def test_empty_body_names_what_the_route_wants(self):
        w = self.w
        for client, method, path, words in (
                (w.portal, "POST", "/v1/requests", ["workflow", "form"]),
                (w.portal, "PUT", "/v1/subscriptions/" + uniq("s"), ["url", "events"]),
                (w.plat, "POST", "/v1/principals", ["role"]),
                (w.plat, "PUT", "/v1/agencies/" + uniq("ag"), ["name"]),
                (w.plat, "PUT", "/v1/calendars/" + uniq("cal"), ["utc_offset", "workdays"]),
                (w.plat, "POST", "/v1/workflows", ["definition"])):
            for raw in ("", "  \r\n"):
                with self.subTest(route=(method, path), raw=raw):
                    before = w.log_size()
                    r = client.call(method, path, raw=raw)
                    assert_error(self, r, 422, "invalid_request")
                    msg = r.json["error"]["message"]
                    self.assertIn("empty", msg)
                    for word in words:
                        self.assertIn(word, msg)
                    self.assertEqual(w.log_size(), before)
        # Every key optional: an empty body is {}.
        rid = w.submit(self.wid)["id"]
        r = w.portal.post("/v1/requests/%s/withdraw" % rid, raw="")
        self.assertEqual((r.status, r.json.get("status")), (200, "withdrawn"), r)

    def test_403_names_the_roles_it_needed(self):
        w = self.w
        for client, have, method, path, need in (
                (w.portal, "portal", "GET", "/v1/log", ["platform", "auditor"]),
                (w.ag[w.A], "agency", "POST", "/v1/requests", ["platform", "portal"]),
                (w.auditor, "auditor", "POST", "/v1/principals", ["platform"]),
                (w.payment, "payment", "GET", "/v1/requests", ["platform", "portal", "auditor"])):
            with self.subTest(route=(method, path), role=have):
                r = client.call(method, path, body={} if method == "POST" else None)
                assert_error(self, r, 403, "forbidden")
                msg = r.json["error"]["message"]
                needs, _, token = msg.partition(";")
                for role in need:
                    self.assertIn(role, needs, msg)
                self.assertIn(have, token, msg)
                self.assertNotIn(have, needs, msg)

    def test_pipelined_405s_keep_their_own_allow(self):
        tok = self.w.admin_token
        expect = [("DELETE", "/v1/requests", "GET, POST"), ("POST", "/v1/log", "GET"),
                  ("PATCH", "/v1/principals/p-x", "DELETE"), ("PUT", "/healthz", "GET")]
        for _ in range(5):
            cal = json.dumps(TH_GOV).encode()
            # A write first: the answers behind it wait for its fsync and
            # then leave together.
            data = (b"PUT /v1/calendars/" + uniq("cal").encode() + b" HTTP/1.1\r\nHost: x\r\n"
                    b"Authorization: Bearer " + tok.encode() + b"\r\n"
                    b"Content-Type: application/json\r\nContent-Length: " +
                    str(len(cal)).encode() + b"\r\n\r\n" + cal)
            for method, path, _ in expect:
                data += ("%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                         "Content-Length: 0\r\n\r\n" % (method, path, tok)).encode()
            resps = raw_responses(self.server.port, data, 1 + len(expect), timeout=10)
            self.assertEqual([r[0] for r in resps], [201] + [405] * len(expect), resps)
            got = [sorted(m.strip() for m in (r[1].get("allow") or "").split(","))
                   for r in resps[1:]]
            self.assertEqual(got, [sorted(a.split(", ")) for _, _, a in expect], resps)


if __name__ == "__main__":
    main()
