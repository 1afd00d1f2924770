"""test_receivers.py: the webhook receivers of examples/receivers/ (Python,
Node, shell with socat and openssl) against the real server (SPEC §7).

For each receiver: it runs as its header comment says, on a free port of
127.0.0.1, with a state folder of its own; osse (--allow-private-urls,
--test-clock=TIME) is pointed at it through the real API (the Python one as
an agency's webhook_url by PUT /v1/agencies, the Node one as a portal's
subscription by PUT /v1/subscriptions, the shell one by subscribe.sh, curl),
with a small recording relay in between so that the test holds osse's exact
deliveries (bytes and headers). Real requests make real deliveries; then:
- every delivery was answered 200, processed once (a line of its
  events.jsonl equal to the body osse sent, whose signature the test checks
  itself with the secret) and is NotificationDelivered in osse;
- forgeries of a delivery never seen are refused and process nothing: a
  wrong key, no signature, a signature of other bytes, a stale t (correctly
  signed), an Osse-Delivery header other than the signed body's id; the
  same delivery signed correctly is then processed (so that the refusals
  were for the signature, not for anything else);
- a replay of a real delivery (same Osse-Delivery, body and signature), the
  same delivery signed afresh (as osse's retries are), and a replay after a
  restart of the receiver are answered 2xx and not processed again.

socat and node must be installed (tests/deps.sh). Python standard library only.
"""

import hashlib
import hmac
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import FORM_FIELDS, Server, ServerTestCase, free_port, good_form, uniq  # noqa: E402

SRC = os.path.abspath(os.environ.get("OSSE_SRC") or
                      os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLES = os.path.join(SRC, "examples", "receivers")
CLOCK = "--test-clock=2030-01-07T09:00:00+07:00"
FAST = ["--hook-retry-base-ms", "200"]



def sign(secret, body, t=None):
    t = int(time.time()) if t is None else t
    return "t=%d,v1=%s" % (t, hmac.new(secret, b"%d." % t + body, hashlib.sha256).hexdigest())


def signature_good(secret, header, body):
    parts = [p.split("=", 1) for p in header.split(",")]
    t = [v for k, v in parts if k == "t"][0]
    want = hmac.new(secret, t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(want, v) for k, v in parts if k == "v1")


def post(port, body, headers):
    """POSTs body to the receiver: (status, answer text)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        h = {"Content-Type": "application/json"}
        h.update({k: v for k, v in headers.items() if v is not None})
        c.request("POST", "/", body=body, headers=h)
        r = c.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        c.close()


class Relay:
    """osse -> relay -> receiver: passes each POST on as it came (headers
    and body) and records it with the receiver's status."""

    def __init__(self):
        self.target = None
        self.got = []  # (headers dict, body bytes, receiver's status)
        self.lock = threading.Lock()
        relay = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hdrs = {k: v for k, v in self.headers.items()
                        if k.lower() in ("content-type", "osse-delivery", "osse-signature")}
                try:
                    status, _ = post(relay.target, body, hdrs)
                except OSError:
                    status = 502
                with relay.lock:
                    relay.got.append((hdrs, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d/hook" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def deliveries(self):
        with self.lock:
            return list(self.got)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class ReceiverProcess:
    def __init__(self, kind, secret, tmp):
        self.kind = kind
        self.secret = secret
        self.dir = os.path.join(tmp, "state")
        self.log = os.path.join(tmp, "receiver.log")
        self.port = free_port()
        self.proc = None

    def argv(self):
        if self.kind == "python":
            return [sys.executable, os.path.join(EXAMPLES, "receiver.py"), "--port",
                    str(self.port), "--dir", self.dir]
        if self.kind == "node":
            return [shutil.which("node"), os.path.join(EXAMPLES, "receiver.js"), "--port",
                    str(self.port), "--dir", self.dir]
        return ["bash", os.path.join(EXAMPLES, "receiver.sh"), str(self.port), self.dir]

    def start(self):
        env = dict(os.environ, OSSE_WEBHOOK_SECRET=self.secret.decode())
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, env=env)
        end = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > end:
                    raise AssertionError("the %s receiver did not listen:\n%s"
                                         % (self.kind, self.log_text()))
                time.sleep(0.05)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_text(self):
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.read()[-3000:]
        except OSError:
            return "(no log)"

    def events(self):
        try:
            with open(os.path.join(self.dir, "events.jsonl"), "rb") as f:
                return [line for line in f.read().split(b"\n") if line]
        except OSError:
            return []


def one_task(wid, agency):
    return {"id": wid, "title": "One task", "form": json.loads(json.dumps(FORM_FIELDS)),
            "steps": {"review": {"kind": "task", "agency": agency}}}


class TestReceivers(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=FAST + ["--allow-private-urls", CLOCK]).start()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="osse-recv-")
        self.relay = Relay()
        self.rec = None

    def tearDown(self):
        if self.rec:
            self.rec.stop()
        self.relay.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def wait_processed(self, n, timeout=30.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = self.relay.deliveries()
            if len(got) >= n and all(s == 200 for _, _, s in got) and \
                    len(self.rec.events()) >= n:
                break
            time.sleep(0.05)
        return self.relay.deliveries()

    def journey(self, kind, hook):
        """hook(world, relay url) -> (the secret, who submits): points osse at
        the relay. Then requests, checks, forgeries and replays."""
        w = self.world()
        secret, portal = hook(w, self.relay.url)
        self.rec = ReceiverProcess(kind, secret, self.tmp).start()
        self.relay.target = self.rec.port
        wid = uniq("wf")
        w.publish(one_task(wid, w.A))
        rids = []
        for _ in range(2):
            r = portal.post("/v1/requests", {"workflow": wid, "form": good_form()})
            self.assertEqual(r.status, 201, r)
            rids.append(r.json["id"])
            w.decide(rids[-1], "review", "approve", agency=w.A)
        n = 2 if kind == "python" else 4  # StepOpened each; or submitted + completed each
        got = self.wait_processed(n)
        time.sleep(0.3)  # nothing more comes
        got = self.relay.deliveries()
        self.assertEqual(len(got), n, (got, self.rec.log_text()))
        self.assertEqual([s for _, _, s in got], [200] * n, self.rec.log_text())
        bodies = [b for _, b, _ in got]
        self.assertEqual(sorted(self.rec.events()), sorted(bodies), self.rec.log_text())
        for hdrs, body, _ in got:
            self.assertTrue(signature_good(secret, hdrs["Osse-Signature"], body))
            self.assertEqual(json.loads(body)["id"], hdrs["Osse-Delivery"])
        types = sorted(json.loads(b)["type"] for b in bodies)
        self.assertEqual(types, ["StepOpened"] * 2 if kind == "python" else
                         ["RequestCompleted"] * 2 + ["RequestSubmitted"] * 2)
        self.assertEqual({json.loads(b)["request"]["id"] for b in bodies}, set(rids))
        for rid in rids:
            end = time.monotonic() + 10
            while True:
                evs = w.plat.get("/v1/requests/%s/events" % rid).json["events"]
                nd = [e for e in evs if e["type"] == "NotificationDelivered"]
                if len(nd) == n // 2 or time.monotonic() > end:
                    break
                time.sleep(0.05)
            self.assertEqual(len(nd), n // 2, evs)

        port = self.rec.port
        hdrs, body, _ = got[0]
        real_id = hdrs["Osse-Delivery"]
        # Forgeries of a delivery never seen: refused, nothing processed.
        new_id = "d-forged" + uniq("x")[2:]
        forged = body.replace(real_id.encode(), new_id.encode())
        self.assertNotEqual(forged, body)
        for why, sig, did in (
                ("another key", sign(b"not the secret", forged), new_id),
                ("no signature", None, new_id),
                ("the signature of other bytes", hdrs["Osse-Signature"], new_id),
                ("a stale t", sign(secret, forged, int(time.time()) - 3600), new_id),
                ("a t from the future", sign(secret, forged, int(time.time()) + 3600), new_id),
                ("an empty v1", "t=%d,v1=" % int(time.time()), new_id),
                ("the header is not the body's id", sign(secret, forged), real_id)):
            status, text = post(port, forged, {"Osse-Delivery": did, "Osse-Signature": sig})
            self.assertIn(status, (400, 401), (kind, why, status, text))
            if why.startswith("the header"):
                self.assertEqual(status, 400, (kind, why, text))
            else:
                self.assertEqual(status, 401, (kind, why, text))
        self.assertEqual(len(self.rec.events()), n, self.rec.log_text())
        # The same bytes signed with the secret: processed (the refusals
        # above were for their signatures).
        status, text = post(port, forged, {"Osse-Delivery": new_id,
                                           "Osse-Signature": sign(secret, forged)})
        self.assertEqual(status, 200, (kind, text))
        self.assertEqual(len(self.rec.events()), n + 1)
        self.assertEqual(self.rec.events().count(forged), 1)

        # Replays: acknowledged, processed once.
        for _ in range(2):
            status, text = post(port, body, hdrs)
            self.assertEqual(status, 200, (kind, text))
        status, text = post(port, body, {"Osse-Delivery": real_id,
                                         "Osse-Signature": sign(secret, body)})
        self.assertEqual(status, 200, (kind, text))
        self.rec.stop()
        self.rec.start()
        status, text = post(port, body, hdrs)
        self.assertEqual(status, 200, (kind, text))
        self.assertEqual(len(self.rec.events()), n + 1, self.rec.log_text())
        self.assertEqual(self.rec.events().count(body), 1)

    def test_python_agency_receiver(self):
        def hook(w, url):
            r = w.plat.put("/v1/agencies/" + w.A, {"name": "Agency " + w.A, "webhook_url": url})
            self.assertEqual(r.status, 200, r)
            return r.json["webhook_secret"].encode(), w.portal
        self.journey("python", hook)

    def test_node_portal_receiver(self):
        self.assertIsNotNone(shutil.which("node"), "node is not installed (tests/deps.sh)")

        def hook(w, url):
            r = w.portal.put("/v1/subscriptions/" + uniq("sub"),
                             {"url": url, "events": ["RequestSubmitted", "RequestCompleted"]})
            self.assertEqual(r.status, 201, r)
            return r.json["secret"].encode(), w.portal
        self.journey("node", hook)

    def test_shell_portal_receiver(self):
        for tool in ("socat", "openssl", "curl", "flock"):
            self.assertIsNotNone(shutil.which(tool), "%s is not installed (tests/deps.sh)" % tool)

        def hook(w, url):
            token = w.principal("portal")["token"]
            env = dict(os.environ, OSSE_URL="http://127.0.0.1:%d" % self.server.port,
                       OSSE_TOKEN=token)
            p = subprocess.run(["bash", os.path.join(EXAMPLES, "subscribe.sh"), uniq("sub"), url,
                                "RequestSubmitted", "RequestCompleted"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            secret = p.stdout.decode().strip()
            self.assertRegex(secret, r"^[A-Za-z0-9_-]{43}$")
            # An error answer is said, and exits 1.
            bad = subprocess.run(["bash", os.path.join(EXAMPLES, "subscribe.sh"), "Bad_Id", url,
                                  "RequestSubmitted"], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, timeout=60)
            self.assertEqual((bad.returncode, bad.stdout), (1, b""), bad.stderr)
            self.assertIn(b"404", bad.stderr)
            return secret.encode(), self.server.client(token)
        self.journey("shell", hook)


if __name__ == "__main__":
    unittest.main(verbosity=2)
