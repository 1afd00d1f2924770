"""test_errors.py: SPEC §11 errors, idempotency, conflicts, keep-alive and
pipelining.

Each bad input gets its status and a JSON error body, and changes nothing:
the log's size (from /v1/log) is the same before and after. Idempotent
retries return the first answer byte for byte and write nothing.
"""

import json
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (Resp, ServerTestCase, World, assert_error, good_form,  # noqa: E402
                          main, parse_responses, raw_exchange, raw_responses, states, uniq)

POSITION_RE = re.compile(r"(line|column|col|position|offset|byte|char)\D{0,3}\d+", re.I)


def first_response(data):
    resps, _ = parse_responses(data)
    if not resps:
        return None
    st, h, b = resps[0]
    return Resp(st, h, b)


class TestErrors(ServerTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        w = cls.w = World(cls.server)
        cls.wid = w.workflow()
        cls.tok = w.portal.token

    def setUp(self):
        self.before = self.w.log_size()

    def assertNoChange(self):
        self.assertEqual(self.w.log_size(), self.before, "the refused call changed the log")

    def raw(self, data, **kw):
        return raw_exchange(self.server.port, data, **kw)

    def head(self, method, path, extra="", body=b"", token=True):
        h = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (method, path)
        if token:
            h += "Authorization: Bearer %s\r\n" % self.tok
        h += extra
        if body or method in ("POST", "PUT"):
            h += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        return h.encode() + b"\r\n" + body

    # --- malformed HTTP and limits -----------------------------------------

    def test_malformed_http_is_400(self):
        for data in (b"GARBAGE\r\n\r\n",
                     b"GET /healthz HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n",
                     b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
                     b"POST /v1/requests HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                     b"POST /v1/requests HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                     b"GET /he\x00althz HTTP/1.1\r\n\r\n"):
            with self.subTest(data=data):
                r = first_response(self.raw(data, timeout=3))
                self.assertIsNotNone(r, "no answer to %r" % data)
                assert_error(self, r, 400, "bad_request")
        self.assertNoChange()
        self.assertTrue(self.server.alive())
        self.assertEqual(self.w.anon.get("/healthz").status, 200)

    def test_body_over_1mib_is_413(self):
        doc = json.dumps({"workflow": self.wid, "form": good_form()}).encode()
        big = doc[:-1] + b" " * (1024 * 1024 + 1 - len(doc)) + b"}"
        self.assertEqual(len(big), 1024 * 1024 + 1)
        data = self.head("POST", "/v1/requests", body=big)
        r = first_response(self.raw(data, timeout=5))
        self.assertIsNotNone(r, "no answer to a body over 1 MiB")
        assert_error(self, r, 413, "payload_too_large")
        # Announced but not sent: may be refused before it is read.
        data = self.head("POST", "/v1/requests", body=b"")
        data = data.replace(b"Content-Length: 0", b"Content-Length: 5000000")
        r = first_response(self.raw(data, timeout=5))
        self.assertIsNotNone(r)
        assert_error(self, r, 413, "payload_too_large")
        # Chunked bodies count too.
        chunk = b"x" * 65536
        chunks = [b"POST /v1/requests HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                  b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                  % self.tok.encode()]
        chunks += [b"10000\r\n" + chunk + b"\r\n"] * 17 + [b"0\r\n\r\n"]
        r = first_response(self.raw(None, chunks=chunks, timeout=5))
        self.assertIsNotNone(r)
        assert_error(self, r, 413, "payload_too_large")
        self.assertNoChange()

    def test_body_of_exactly_1mib_is_read(self):
        doc = json.dumps({"workflow": self.wid, "form": good_form()}).encode()
        body = doc[:-1] + b" " * (1024 * 1024 - len(doc)) + b"}"
        self.assertEqual(len(body), 1024 * 1024)
        r = self.w.portal.post("/v1/requests", raw=body)
        self.assertEqual(r.status, 201, r)

    def test_headers_over_16kib_is_431(self):
        data = self.head("GET", "/v1/requests", extra="X-Pad: %s\r\n" % ("a" * 17000))
        r = first_response(self.raw(data, timeout=5))
        self.assertIsNotNone(r)
        assert_error(self, r, 431, "headers_too_large")
        many = "".join("X-H%d: %s\r\n" % (i, "b" * 100) for i in range(200))
        data = self.head("POST", "/v1/requests", extra=many,
                         body=json.dumps({"workflow": self.wid, "form": good_form()}).encode())
        r = first_response(self.raw(data, timeout=5))
        self.assertIsNotNone(r)
        assert_error(self, r, 431, "headers_too_large")
        self.assertNoChange()
        # Headers a little under the limit are fine.
        r = self.w.portal.get("/v1/requests?limit=1", headers={"X-Pad": "c" * 12000})
        self.assertEqual(r.status, 200, r)

    def test_invalid_json_is_400_with_position(self):
        for raw in ('{"workflow": "%s", "form": {' % self.wid,
                    '{"workflow": "%s",\n "form": {"a": tru}}' % self.wid,
                    "[1, 2", "{'a': 1}", '{"workflow": "x"} trailing'):
            with self.subTest(body=raw):
                r = self.w.portal.post("/v1/requests", raw=raw)
                assert_error(self, r, 400, "invalid_json")
                self.assertRegex(r.json["error"]["message"], POSITION_RE)
        # An empty body is no JSON at all: refused either as invalid JSON or
        # as a request without its required keys.
        r = self.w.portal.post("/v1/requests", raw="")
        self.assertIn((r.status, r.error_code), ((400, "invalid_json"), (422, "invalid_request")), r)
        r = self.w.ag[self.w.A].post("/v1/tasks/x/intake/decision", raw='{"outcome":')
        self.assertIn(r.status, (400, 404), r)
        r = self.w.plat.put("/v1/agencies/" + self.w.A, raw="{nope")
        assert_error(self, r, 400, "invalid_json")
        self.assertNoChange()

    def test_invalid_yaml_definition_is_400_with_position(self):
        y = "id: broken\ntitle: x\nsteps:\n  a: {kind: task, agency: %s\n  b: [\n" % self.w.A
        r = self.w.plat.post("/v1/workflows", raw=y, content_type="application/yaml")
        assert_error(self, r, 400, "invalid_yaml")
        self.assertRegex(r.json["error"]["message"], POSITION_RE)
        y = "id: broken\n  title: : x\n\t- bad indent\n"
        r = self.w.plat.post("/v1/workflows", raw=y, content_type="application/yaml")
        assert_error(self, r, 400, "invalid_yaml")
        # Duplicate keys are an error, not a silent overwrite.
        y = "id: dup-%s\nid: dup2\ntitle: x\nsteps: {}\n" % uniq("d")
        r = self.w.plat.post("/v1/workflows", raw=y, content_type="application/yaml")
        self.assertIn(r.status, (400, 422), r)
        self.assertNoChange()

    def test_unknown_route_is_404(self):
        for m, p in (("GET", "/v1/nope"), ("GET", "/"), ("POST", "/v1/requests/x/y/z"),
                     ("GET", "/v1/requests/no-such-request"),
                     ("GET", "/v1/requests/no-such-request/events"),
                     ("POST", "/v1/tasks/no-such-request/intake/decision"),
                     ("GET", "/v1/agencies/no-such-agency/tasks"),
                     ("GET", "/v1/workflows/no-such-workflow")):
            with self.subTest(route=(m, p)):
                body = {"outcome": "approve"} if m == "POST" else None
                c = self.w.ag[self.w.A] if "/decision" in p else self.w.plat
                r = c.call(m, p, body=body)
                assert_error(self, r, 404, "not_found")
        self.assertNoChange()

    def test_wrong_method_is_405(self):
        rid = self.w.submit(self.wid)["id"]
        self.before = self.w.log_size()
        for m, p in (("DELETE", "/v1/requests"), ("PUT", "/v1/requests/" + rid),
                     ("GET", "/v1/tasks/%s/intake/decision" % rid),
                     ("POST", "/healthz"), ("DELETE", "/v1/workflows/" + self.wid),
                     ("PATCH", "/v1/requests/%s/withdraw" % rid), ("GET", "/v1/principals/x"),
                     ("POST", "/v1/agencies/" + self.w.A)):
            with self.subTest(route=(m, p)):
                r = self.w.plat.call(m, p, body={} if m != "GET" else None)
                assert_error(self, r, 405, "method_not_allowed")
        self.assertNoChange()

    def test_unknown_keys_and_wrong_types_are_422(self):
        w = self.w
        rid = w.submit(self.wid)["id"]
        v = w.view(rid)
        self.before = w.log_size()
        cases = [
            (w.portal, "/v1/requests", {"workflow": self.wid, "form": good_form(), "bogus": 1}),
            (w.portal, "/v1/requests", {"workflow": 7, "form": good_form()}),
            (w.portal, "/v1/requests", ["not", "an", "object"]),
            (w.ag[w.A], "/v1/tasks/%s/intake/decision" % rid, {"outcome": "approve", "x": 1}),
            (w.ag[w.A], "/v1/tasks/%s/intake/decision" % rid, {"outcome": "maybe"}),
            (w.ag[w.A], "/v1/tasks/%s/intake/decision" % rid, {}),
            (w.ag[w.A], "/v1/tasks/%s/intake/decision" % rid,
             {"outcome": "approve", "expected_version": "3"}),
            (w.ag[w.A], "/v1/tasks/%s/intake/decision" % rid, {"outcome": "approve", "reason": 5}),
            (w.portal, "/v1/requests/%s/withdraw" % rid, {"reason": "x", "when": "now"}),
            (w.plat, "/v1/principals", {"role": "portal", "name": "x", "admin": True}),
        ]
        for c, p, b in cases:
            with self.subTest(path=p, body=b):
                r = c.post(p, b)
                assert_error(self, r, 422)
                self.assertIn(r.json["error"]["code"], ("invalid_request", "invalid_form"), r)
        r = w.plat.put("/v1/agencies/" + w.A, {"name": "x", "colour": "red"})
        assert_error(self, r, 422, "invalid_request")
        r = w.plat.put("/v1/calendars/th-gov", {"utc_offset": "+07:00", "workdays": ["mon"],
                                                "hours": ["08:30", "16:30"], "holidays": [],
                                                "extra": 1})
        assert_error(self, r, 422)
        self.assertNoChange()
        self.assertEqual(w.view(rid), v)

    # --- idempotency and conflicts -----------------------------------------

    def test_idempotent_submission(self):
        w = self.w
        key = uniq("key")
        body = json.dumps({"workflow": self.wid, "form": good_form()})
        r1 = w.portal.post("/v1/requests", raw=body, headers={"Idempotency-Key": key})
        self.assertEqual(r1.status, 201, r1)
        size = w.log_size()
        r2 = w.portal.post("/v1/requests", raw=body, headers={"Idempotency-Key": key})
        self.assertEqual((r2.status, r2.body), (r1.status, r1.body))
        self.assertEqual(w.log_size(), size, "a retry wrote events")
        # Same key, other body: refused, nothing written.
        other = json.dumps({"workflow": self.wid, "form": good_form()})
        r3 = w.portal.post("/v1/requests", raw=other, headers={"Idempotency-Key": key})
        assert_error(self, r3, 422, "idempotency_mismatch")
        self.assertEqual(w.log_size(), size)
        # The body is compared raw: the same JSON spelled differently is another body.
        r4 = w.portal.post("/v1/requests", raw=body + " ", headers={"Idempotency-Key": key})
        assert_error(self, r4, 422, "idempotency_mismatch")
        # Scoped to the principal: another portal with the same key and body submits anew.
        r5 = w.portal2.post("/v1/requests", raw=body, headers={"Idempotency-Key": key})
        self.assertEqual(r5.status, 201, r5)
        self.assertNotEqual(r5.json["id"], r1.json["id"])
        # Without a key, the same body is a new request.
        r6 = w.portal.post("/v1/requests", raw=body)
        self.assertEqual(r6.status, 201, r6)
        self.assertNotEqual(r6.json["id"], r1.json["id"])
        # The first request exists once.
        ids = [q["id"] for q in w.plat.get("/v1/requests?workflow=%s&limit=100" % self.wid)
               .json["requests"]]
        self.assertEqual(ids.count(r1.json["id"]), 1)

    def test_idempotent_decision_and_scope_per_path(self):
        w = self.w
        rid = w.submit(self.wid)["id"]
        rid2 = w.submit(self.wid)["id"]
        key = uniq("key")
        h = {"Idempotency-Key": key}
        a = w.ag[w.A]
        r1 = a.post("/v1/tasks/%s/intake/decision" % rid, {"outcome": "approve"}, headers=h)
        self.assertEqual(r1.status, 200, r1)
        size = w.log_size()
        r2 = a.post("/v1/tasks/%s/intake/decision" % rid, {"outcome": "approve"}, headers=h)
        self.assertEqual((r2.status, r2.body), (r1.status, r1.body),
                         "a retried decision is not answered with the first answer")
        self.assertEqual(w.log_size(), size)
        # Same key on another path is another key.
        r3 = a.post("/v1/tasks/%s/intake/decision" % rid2, {"outcome": "approve"}, headers=h)
        self.assertEqual(r3.status, 200, r3)
        self.assertEqual(states(r3.json)["review_b"], "open")
        # A key used on a decision does not collide with a submission.
        r4 = w.portal.post("/v1/requests", {"workflow": self.wid, "form": good_form()}, headers=h)
        self.assertEqual(r4.status, 201, r4)
        # A failed first attempt: the retry with the same key and body
        # gets the same failure; nothing was written.
        size = w.log_size()
        e1 = a.post("/v1/tasks/%s/intake/decision" % rid, {"outcome": "approve"},
                    headers={"Idempotency-Key": uniq("k")})
        assert_error(self, e1, 409, "conflict")
        self.assertEqual(w.log_size(), size)

    def test_stale_expected_version_is_409(self):
        w = self.w
        sub = w.submit(self.wid)
        rid, v0 = sub["id"], sub["version"]
        view = w.decide(rid, "intake", "approve", agency=w.A, expected_version=v0)
        v1 = view["version"]
        self.assertGreater(v1, v0)
        size = w.log_size()
        r = w.ag[w.B].post("/v1/tasks/%s/review_b/decision" % rid,
                           {"outcome": "approve", "expected_version": v0})
        assert_error(self, r, 409, "conflict")
        r = w.ag[w.B].post("/v1/tasks/%s/review_b/decision" % rid,
                           {"outcome": "approve", "expected_version": v1 + 5})
        assert_error(self, r, 409, "conflict")
        self.assertEqual(w.log_size(), size)
        self.assertEqual(w.view(rid), view)
        r = w.ag[w.B].post("/v1/tasks/%s/review_b/decision" % rid,
                           {"outcome": "approve", "expected_version": v1})
        self.assertEqual(r.status, 200, r)

    def test_decision_on_a_step_not_open_is_409(self):
        w = self.w
        rid = w.submit(self.wid)["id"]
        size = w.log_size()
        # pending
        r = w.ag[w.A].post("/v1/tasks/%s/final/decision" % rid, {"outcome": "approve"})
        assert_error(self, r, 409, "conflict")
        self.assertEqual(w.log_size(), size)
        w.decide(rid, "intake", "approve", agency=w.A)
        size = w.log_size()
        # already decided
        for outcome in ("approve", "reject", "return"):
            r = w.ag[w.A].post("/v1/tasks/%s/intake/decision" % rid, {"outcome": outcome})
            assert_error(self, r, 409, "conflict")
        # unknown step
        r = w.ag[w.A].post("/v1/tasks/%s/no_such_step/decision" % rid, {"outcome": "approve"})
        self.assertIn(r.status, (404, 422), r)
        self.assertEqual(w.log_size(), size)

    # --- keep-alive and pipelining -----------------------------------------

    def test_keep_alive(self):
        c = self.server.client(self.w.portal.token, keepalive=True)
        try:
            for i in range(20):
                r = c.get("/v1/workflows/" + self.wid if i % 2 else "/healthz")
                self.assertEqual(r.status, 200, r)
            sock = c.conn.sock
            r = c.post("/v1/requests", {"workflow": self.wid, "form": good_form()})
            self.assertEqual(r.status, 201, r)
            self.assertIs(c.conn.sock, sock, "the connection was not kept alive")
            r = c.get("/v1/requests/" + r.json["id"])
            self.assertEqual(r.status, 200, r)
            # An error answer keeps the connection too.
            r = c.get("/v1/nope")
            self.assertEqual(r.status, 404)
            r = c.get("/healthz")
            self.assertEqual(r.status, 200)
        finally:
            c.close()

    def test_pipelining_answers_in_order(self):
        tok = self.w.portal.token
        sub = json.dumps({"workflow": self.wid, "form": good_form()}).encode()
        reqs = (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /v1/requests HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok.encode() +
            b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(sub)).encode() +
            b"\r\n\r\n" + sub +
            b"GET /v1/track/NOSUCHCODE HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /v1/workflows/" + self.wid.encode() + b" HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + tok.encode() + b"\r\n\r\n"
        )
        resps = raw_responses(self.server.port, reqs, 4, timeout=10)
        self.assertEqual([r[0] for r in resps], [200, 201, 404, 200], resps)
        self.assertIn("tracking_code", json.loads(resps[1][2]))
        self.assertEqual(json.loads(resps[3][2])["id"], self.wid)
        # Two requests in one write get two answers in order.
        two = (b"GET /v1/track/NOSUCHCODE HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        resps = raw_responses(self.server.port, two, 2, timeout=10)
        self.assertEqual([r[0] for r in resps], [404, 200], resps)

    def test_connection_close_and_split_request(self):
        # A request that arrives byte by byte is still served.
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        try:
            for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n":
                s.sendall(bytes([b]))
            data = b""
            while True:
                x = s.recv(4096)
                if not x:
                    break
                data += x
        finally:
            s.close()
        resps, _ = parse_responses(data)
        self.assertEqual([r[0] for r in resps], [200])

    def test_incomplete_headers_are_closed_by_time(self):
        """SPEC §11: a connection whose headers are incomplete after a few
        seconds is closed, and meanwhile other clients are served."""
        slow = [socket.create_connection(("127.0.0.1", self.server.port), timeout=20)
                for _ in range(20)]
        try:
            for s in slow:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            t0 = time.time()
            self.assertEqual(self.w.anon.get("/healthz").status, 200)
            self.assertLess(time.time() - t0, 2, "slow clients hold the others up")
            for s in slow:
                try:
                    while s.recv(4096):
                        pass  # a 408 answer is allowed before the close
                except ConnectionResetError:
                    pass
            waited = time.time() - t0
            self.assertLess(waited, 20, "incomplete headers were not closed in time")
        finally:
            for s in slow:
                s.close()

    def test_log_paging_next(self):
        w = self.w
        w.submit(self.wid)
        r = w.plat.get("/v1/log?after=0&limit=3")
        self.assertEqual(r.status, 200, r)
        self.assertEqual([e["seq"] for e in r.json["events"]], [1, 2, 3])
        self.assertIsNotNone(r.json["next"])
        for e in r.json["events"]:
            for k in ("seq", "stream", "version", "type", "at", "actor", "data", "leaf_hash"):
                self.assertIn(k, e)
            self.assertRegex(e["leaf_hash"], r"^[0-9a-f]{64}$")
        r2 = w.plat.get("/v1/log?after=%d&limit=3" % r.json["next"])
        self.assertEqual(r2.json["events"][0]["seq"], 4, "`next` is not the seq to continue after")
        size = w.log_size()
        r = w.plat.get("/v1/log?after=%d&limit=10" % (size - 1))
        self.assertEqual([e["seq"] for e in r.json["events"]], [size])
        self.assertIsNone(r.json["next"])
        r = w.plat.get("/v1/log?after=%d&limit=10" % size)
        self.assertEqual((r.json["events"], r.json["next"]), ([], None))

    def test_server_survives_all_of_it(self):
        time.sleep(0.1)
        self.assertTrue(self.server.alive(), self.server.stderr_tail())
        self.assertEqual(self.w.anon.get("/healthz").status, 200)


if __name__ == "__main__":
    main()
