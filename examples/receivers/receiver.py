#!/usr/bin/env python3
"""receiver.py: a webhook receiver for osse's deliveries (SPEC §7), for an
agency (its webhook_url) or a portal (a subscription's url). Python 3
standard library only.

Run it:

    OSSE_WEBHOOK_SECRET=<the secret> python3 receiver.py --port 8099 --dir ./inbox

where the secret is the agency's `webhook_secret` (PUT /v1/agencies/{id})
or the subscription's `secret` (PUT /v1/subscriptions/{id}), and point the
agency or subscription at http://HOST:8099/ (osse wants https: unless it
runs with --allow-private-urls: put a TLS proxy in front in production).

What it guarantees:
- only deliveries signed with the secret are processed: `Osse-Signature:
  t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` (one v1= per
  secret osse signs with; during a rotation two, and either may match),
  compared in constant time; a missing or bad signature, a body changed by
  one byte, or a t more than --tolerance seconds (default 300) from this
  machine's clock is 401 and processes nothing;
- each delivery is processed once: osse delivers at least once and signs
  each attempt afresh, so a retry or a replayed capture is answered 200
  and not processed again. The key is the body's "id", which the signature
  covers; the Osse-Delivery header, which it does not, must equal it (400
  otherwise). Processed ids are kept in DIR/seen (one a line), read again at
  start, so a restart does not process a delivery twice;
- an event is acknowledged (2xx) only once it is recorded (a line of
  DIR/events.jsonl, the body as it came, and a line on stdout); if that
  fails the answer is 500 and osse tries again later.
"""

import argparse
import hashlib
import hmac
import http.server
import json
import os
import re
import sys
import threading
import time

MAX_BODY = 1 << 20
ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def signature_ok(secret, header, body, tolerance, now=None):
    """True when one v1= of header is the HMAC of "<t>.<body>" and t is
    within tolerance seconds of now. header: the Osse-Signature value."""
    t, sigs = None, []
    for part in (header or "").split(","):
        k, _, v = part.strip().partition("=")
        if k == "t" and v.isdigit():
            t = v
        elif k == "v1":
            sigs.append(v)
    if t is None or not sigs:
        return False, "no t= or v1= in Osse-Signature"
    if abs(int(t) - (time.time() if now is None else now)) > tolerance:
        return False, "the signature's time is more than %ds away" % tolerance
    want = hmac.new(secret, t.encode() + b"." + body, hashlib.sha256).hexdigest()
    # Every v1 is compared, each in constant time.
    if not any([hmac.compare_digest(want, s) for s in sigs]):
        return False, "no v1= matches"
    return True, ""


class Receiver:
    def __init__(self, secret, state_dir, tolerance):
        self.secret = secret
        self.tolerance = tolerance
        os.makedirs(state_dir, exist_ok=True)
        self.seen_path = os.path.join(state_dir, "seen")
        self.events_path = os.path.join(state_dir, "events.jsonl")
        self.lock = threading.Lock()
        self.seen = set()
        if os.path.exists(self.seen_path):
            with open(self.seen_path) as f:
                self.seen = {line.strip() for line in f if line.strip()}

    def process(self, delivery_id, body):
        """Records the event once; returns True for a new one. Raises OSError
        when it cannot be recorded (nothing marked seen then)."""
        with self.lock:
            if delivery_id in self.seen:
                return False
            # The event first, then its id: a crash between the two makes a
            # retry record it again (once more), never lose it.
            with open(self.events_path, "ab") as f:
                f.write(body.replace(b"\n", b" ") + b"\n")
                f.flush()
                os.fsync(f.fileno())
            with open(self.seen_path, "a") as f:
                f.write(delivery_id + "\n")
                f.flush()
                os.fsync(f.fileno())
            self.seen.add(delivery_id)
        event = json.loads(body)
        print("processed %s %s" % (delivery_id, event.get("type")), flush=True)
        return True


def handler_for(rec):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            sys.stderr.write("receiver: " + fmt % args + "\n")

        def answer(self, status, text):
            data = (text + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.answer(405, "deliveries are POSTed")

        def do_POST(self):
            try:
                n = int(self.headers.get("Content-Length", ""))
            except ValueError:
                return self.answer(411, "a Content-Length is required")
            if n < 0 or n > MAX_BODY:
                return self.answer(413, "too large")
            body = self.rfile.read(n)
            ok, why = signature_ok(rec.secret, self.headers.get("Osse-Signature"), body,
                                   rec.tolerance)
            if not ok:
                return self.answer(401, "bad signature: " + why)
            try:
                event = json.loads(body)
                did = event["id"]
            except (ValueError, KeyError, TypeError):
                return self.answer(400, "the body is not a delivery")
            if not isinstance(did, str) or not ID_RE.match(did) or \
                    self.headers.get("Osse-Delivery") != did:
                return self.answer(400, "Osse-Delivery does not match the body's id")
            try:
                new = rec.process(did, body)
            except OSError as e:
                return self.answer(500, "cannot record it: %s" % e)
            self.answer(200, "processed" if new else "already processed")

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8099)
    ap.add_argument("--dir", default="./inbox", help="where seen ids and events are kept")
    ap.add_argument("--tolerance", type=int, default=300,
                    help="seconds a signature's t may be from now")
    a = ap.parse_args()
    secret = os.environ.get("OSSE_WEBHOOK_SECRET")
    if not secret:
        sys.exit("receiver: set OSSE_WEBHOOK_SECRET to the webhook or subscription secret")
    rec = Receiver(secret.encode(), a.dir, a.tolerance)
    httpd = http.server.ThreadingHTTPServer((a.host, a.port), handler_for(rec))
    print("receiver: listening on %s:%d" % httpd.server_address[:2], flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
