"""test_cors.py: browser portals on other origins (`osse serve --cors-origin`,
docs/design.md "Browser portals on other origins").

Over real HTTP against the real binary, the headers a browser's CORS check
reads:
- without the flag nothing changes: no Access-Control-* header and no
  `Vary: Origin` on any answer, and an OPTIONS is the 405 it always was;
- with the flag (given twice: it repeats), a preflight from a listed
  origin for POST /v1/requests with Authorization and Content-Type answers
  204 with the methods that path has in the route table, the request headers
  osse reads, a max age, the origin itself and no credentials; a preflight
  on an unknown route is 404, from an origin not listed 403
  `origin_not_allowed` without any Access-Control-* header (exact bytes: a
  near miss is another origin);
- real answers to a listed origin carry Access-Control-Allow-Origin and the
  exposed headers, a 201 as much as a 401, 404, 405, an Idempotency-Key
  replay, a streamed CSV and the HTTP layer's own 413; every header those
  answers set that a page may need is in Access-Control-Expose-Headers;
  another origin's answers are the same answers without them;
- a bad --cors-origin (a wildcard, a path, upper case, a default port) is
  refused before anything starts.

Every server runs with --test-clock=TIME. Python standard library only.
"""

import os
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (FORM_FIELDS, OSSE_BIN, Server, ServerTestCase,  # noqa: E402
                          assert_error, good_form, main, parse_responses, uniq)

CLOCK = "--test-clock=2030-01-07T09:00:00+07:00"
PORTAL = "https://portal.example.go.th"
SECOND = "http://127.0.0.1:8081"
OTHER = "https://elsewhere.example"
# What a page's script may read beyond the CORS-safelisted answer headers.
SAFELISTED = {"cache-control", "content-language", "content-length", "content-type",
              "expires", "last-modified", "pragma"}
# Headers of the connection or of CORS itself, never read by a script.
NOT_FOR_PAGES = {"connection", "transfer-encoding", "vary", "x-content-type-options"}


def cors_headers(r_headers):
    return {k: v for k, v in r_headers.items() if k.startswith("access-control-")}


def listed(value):
    return {x.strip().lower() for x in value.split(",") if x.strip()}


def one_task(wid, agency):
    return {"id": wid, "title": "One task", "form": dict(FORM_FIELDS),
            "steps": {"review": {"kind": "task", "agency": agency}}}


class TestWithoutFlag(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=[CLOCK]).start()

    def test_nothing_changes(self):
        w = self.world()
        o = {"Origin": PORTAL}
        answers = [
            w.anon.get("/healthz", headers=o),
            w.anon.get("/v1/requests", headers=o),
            w.anon.get("/v1/nope", headers=o),
            w.portal.post("/v1/requests", {"workflow": "none", "form": {}}, headers=o),
            w.anon.call("OPTIONS", "/v1/requests",
                        headers=dict(o, **{"Access-Control-Request-Method": "POST"})),
        ]
        for r in answers:
            self.assertEqual(cors_headers(r.headers), {}, r)
            self.assertNotIn("vary", r.headers, r)
        self.assertEqual([r.status for r in answers], [200, 401, 404, 422, 405])
        self.assertEqual(listed(answers[-1].headers["allow"]), {"get", "post"})


class TestWithFlag(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=[CLOCK, "--cors-origin", PORTAL,
                                        "--cors-origin", SECOND]).start()

    def preflight(self, path, origin=PORTAL, method="POST",
                  headers="authorization, content-type"):
        h = {"Origin": origin, "Access-Control-Request-Method": method}
        if headers:
            h["Access-Control-Request-Headers"] = headers
        return self.server.client("").call("OPTIONS", path, headers=h)

    def assertAllowed(self, r, origin=PORTAL):
        self.assertEqual(r.headers.get("access-control-allow-origin"), origin, r)
        self.assertIn("origin", listed(r.headers.get("vary", "")), r)
        self.assertNotIn("access-control-allow-credentials", r.headers, r)
        exposed = listed(r.headers.get("access-control-expose-headers", ""))
        # Every header this answer sets that a page may need to read.
        for name in r.headers:
            if name in SAFELISTED or name in NOT_FOR_PAGES or name.startswith("access-control-"):
                continue
            self.assertIn(name, exposed, (name, r.headers))
        return exposed

    def assertNotAllowed(self, r):
        self.assertEqual(cors_headers(r.headers), {}, r)
        # The answer differs by Origin: a cache must know.
        self.assertIn("origin", listed(r.headers.get("vary", "")), r)

    def test_preflight_for_a_post_route(self):
        r = self.preflight("/v1/requests")
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.body, b"")
        self.assertAllowed(r)
        # The methods of that path in the route table, no more.
        self.assertEqual(listed(r.headers["access-control-allow-methods"]), {"get", "post"})
        self.assertTrue({"authorization", "content-type", "idempotency-key"} <=
                        listed(r.headers["access-control-allow-headers"]), r.headers)
        self.assertGreater(int(r.headers["access-control-max-age"]), 0)
        # Another path, other methods; the second origin as much as the first.
        r = self.preflight("/v1/subscriptions/s-1", origin=SECOND, method="PUT")
        self.assertEqual(r.status, 204, r)
        self.assertAllowed(r, SECOND)
        self.assertEqual(listed(r.headers["access-control-allow-methods"]),
                         {"get", "put", "delete"})
        r = self.preflight("/v1/files", headers="authorization, content-type, osse-filename")
        self.assertIn("osse-filename", listed(r.headers["access-control-allow-headers"]))
        # A test-only route is no route without the test clock's: here it is.
        r = self.preflight("/v1/test/clock")
        self.assertEqual((r.status, r.headers["access-control-allow-methods"]), (204, "POST"), r)

    def test_preflight_unknown_route_and_other_origins(self):
        r = self.preflight("/v1/nope")
        assert_error(self, r, 404, "not_found")
        self.assertAllowed(r)
        r = self.preflight("/v1/requests/a/b/c/d/e/f/g/h/i/j")
        assert_error(self, r, 404, "not_found")
        self.assertAllowed(r)
        # Not listed, or a near miss of a listed one: refused, and no header
        # a browser would take for a yes.
        for origin in (OTHER, PORTAL + "/", PORTAL.upper(), "http://portal.example.go.th",
                       PORTAL + ":443", "null", SECOND.replace("8081", "8082")):
            for path in ("/v1/requests", "/v1/nope"):
                r = self.preflight(path, origin=origin)
                assert_error(self, r, 403, "origin_not_allowed", (origin, path, r))
                self.assertNotAllowed(r)
        # An OPTIONS that is no preflight (no Origin): as without the flag.
        r = self.server.client("").call("OPTIONS", "/v1/requests")
        assert_error(self, r, 405, "method_not_allowed")
        self.assertEqual(cors_headers(r.headers), {}, r)

    def test_real_answers_carry_the_headers(self):
        w = self.world()
        o = {"Origin": PORTAL}
        wid = uniq("wf")
        w.publish(one_task(wid, w.A))
        # 201, and its Idempotency-Key replay.
        body = {"workflow": wid, "form": good_form()}
        h = dict(o, **{"Idempotency-Key": uniq("k")})
        r = w.portal.post("/v1/requests", body, headers=h)
        self.assertEqual(r.status, 201, r)
        exposed = self.assertAllowed(r)
        self.assertTrue({"etag", "retry-after", "idempotent-replayed", "www-authenticate",
                         "allow"} <= exposed, exposed)
        again = w.portal.post("/v1/requests", body, headers=h)
        self.assertEqual((again.status, again.headers.get("idempotent-replayed")),
                         (201, "true"), again)
        self.assertAllowed(again)
        # Errors the portal must be able to read.
        r = w.anon.get("/v1/requests/" + r.json["id"], headers=o)
        assert_error(self, r, 401, "unauthorized")
        self.assertAllowed(r)
        r = w.portal.get("/v1/nope", headers=o)
        assert_error(self, r, 404, "not_found")
        self.assertAllowed(r)
        r = w.portal.call("PATCH", "/v1/requests", headers=o)
        assert_error(self, r, 405, "method_not_allowed")
        self.assertAllowed(r)
        r = w.ag[w.A].post("/v1/requests", body, headers=o)
        assert_error(self, r, 403, "forbidden")
        self.assertAllowed(r)
        # A file read back: its ETag is for the page to read.
        up = w.portal.post("/v1/files", raw=b"%PDF-1.4 x", content_type="application/pdf",
                           headers=o)
        self.assertEqual(up.status, 201, up)
        g = w.portal.get("/v1/files/" + up.json["id"], headers=o)
        self.assertEqual(g.status, 200, g)
        self.assertIn("etag", g.headers)
        self.assertAllowed(g)
        # A streamed answer.
        r = w.anon.get("/v1/public/licences.csv", headers=o)
        self.assertEqual(r.status, 200, r)
        self.assertAllowed(r)
        # Another origin gets the same answers, without the headers.
        for r in (w.anon.get("/v1/public/services", headers={"Origin": OTHER}),
                  w.anon.get("/v1/requests", headers={"Origin": OTHER}),
                  w.anon.get("/healthz")):
            self.assertIn(r.status, (200, 401), r)
            self.assertNotAllowed(r)

    def test_http_layers_own_errors(self):
        # A body over 1 MiB is refused by the HTTP layer before it is read;
        # a page on a listed origin still reads why.
        for origin, allowed in ((PORTAL, True), (OTHER, False)):
            s = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
            try:
                s.sendall(("POST /v1/requests HTTP/1.1\r\nHost: x\r\nOrigin: %s\r\n"
                           "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                           % (origin, 2 << 20)).encode())
                buf = b""
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    buf += b
            finally:
                s.close()
            resps, _ = parse_responses(buf)
            self.assertEqual(resps[0][0], 413, buf)
            hdrs = resps[0][1]
            self.assertEqual(hdrs.get("access-control-allow-origin"),
                             origin if allowed else None, hdrs)
            self.assertEqual(hdrs.get("vary"), "Origin", hdrs)


class TestFlagChecked(unittest.TestCase):
    def test_bad_origins_refused_before_start(self):
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "data")
            for bad in ("*", "null", "portal.example.go.th", "https://portal.example.go.th/",
                        "https://portal.example.go.th/path", "https://Portal.example.go.th",
                        "https://portal.example.go.th:443", "http://portal.example.go.th:80",
                        "https://portal.example.go.th:99999", "https://user@portal.example",
                        "https://", "ftp://portal.example.go.th",
                        "https://portal.example.go.th," + SECOND):
                p = subprocess.run([OSSE_BIN, "serve", "--data", data, "--listen",
                                    "127.0.0.1:0", CLOCK, "--cors-origin", bad],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   stdin=subprocess.DEVNULL, timeout=60)
                err = p.stderr.decode("utf-8", "replace")
                self.assertEqual(p.returncode, 2, (bad, err))
                self.assertIn("--cors-origin", err, bad)
                self.assertFalse(os.path.exists(data), bad)  # nothing started
            p = subprocess.run([OSSE_BIN, "serve", "--data", data, "--cors-origin"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            self.assertEqual(p.returncode, 2)
        # The flag is in the help, from the one table.
        p = subprocess.run([OSSE_BIN, "help", "serve"], stdout=subprocess.PIPE, timeout=60)
        self.assertIn(b"--cors-origin ORIGIN", p.stdout)


if __name__ == "__main__":
    main()
