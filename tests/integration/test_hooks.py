"""test_hooks.py: outbound webhooks and portal subscriptions over real HTTP
(SPEC §7, §5 NotificationDelivered/NotificationFailed).

A real HTTP receiver on 127.0.0.1 (http.server in a thread) plays an agency
or a portal: it checks every Osse-Signature (HMAC-SHA256 of "<t>.<body>" with
the secret osse gave: the agency's webhook_secret from PUT /v1/agencies, or
the subscription's secret from PUT /v1/subscriptions) and the Osse-Delivery
header, and records what came.

What is checked:
- a task opens -> the agency gets a signed StepOpened webhook with the task
  as its inbox shows it and no form data; NotificationDelivered lands in
  delivery/<request id>, listed by GET /v1/requests/{id}/events in seq order
  with the request's own events, and the request's version does not move;
- a receiver answering 500 three times then 200 -> one NotificationDelivered
  with attempts = 4, every attempt with the same Osse-Delivery;
- the receiver down while osse is killed (SIGKILL) and restarted -> the
  delivery still arrives after the restart;
- a receiver that accepts connections and never answers delays neither
  another agency's webhook nor the API;
- a portal's subscription to RequestCompleted gets it for its own requests,
  signed with its own secret, and not for another portal's; the PUT's
  validation and ownership rules; /metrics gauges.

The servers run with the hidden `--hook-retry-base-ms 200` so that retries
come within seconds (the default schedule starts at one second).

Python standard library only.
"""

import hashlib
import hmac
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (FORM_FIELDS, OSSE_BIN, Server, ServerTestCase, World, assert_error, free_port,  # noqa: E402
                          main, uniq)

FAST = ["--hook-retry-base-ms", "200"]


class Receiver:
    """An HTTP receiver on 127.0.0.1. secret: bytes to check signatures
    with. fail: how many first requests get 500. port: a fixed port (to come
    back up on the port a delivery targets)."""

    def __init__(self, secret=None, fail=0, port=0):
        self.secret = secret
        self.fail = fail
        self.got = []      # (headers dict, raw body, parsed body) of 2xx answers
        self.attempts = []  # every request's Osse-Delivery
        self.bad = []      # signature or header problems
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                rec.check(self.headers, body)
                with rec.cond:
                    rec.attempts.append(self.headers.get("Osse-Delivery"))
                    failing = len(rec.attempts) <= rec.fail
                    if not failing:
                        rec.got.append((dict(self.headers), body, json.loads(body)))
                    rec.cond.notify_all()
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d/hook" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def check(self, headers, body):
        problems = []
        if headers.get("Content-Type") != "application/json":
            problems.append("content-type %r" % headers.get("Content-Type"))
        did = headers.get("Osse-Delivery")
        sig = headers.get("Osse-Signature", "")
        parts = dict(p.split("=", 1) for p in sig.split(",") if "=" in p)
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = {}
        if not did or parsed.get("id") != did:
            problems.append("Osse-Delivery %r vs body id %r" % (did, parsed.get("id")))
        if "t" not in parts or "v1" not in parts:
            problems.append("signature %r" % sig)
        elif self.secret is not None:
            want = hmac.new(self.secret, parts["t"].encode() + b"." + body,
                            hashlib.sha256).hexdigest()
            if not hmac.compare_digest(want, parts["v1"]):
                problems.append("bad signature %r" % sig)
            if abs(int(parts["t"]) - time.time()) > 300:
                problems.append("t %s is not now" % parts["t"])
        if problems:
            with self.lock:
                self.bad.append(problems)

    def wait(self, n=1, timeout=10.0):
        """Waits until n deliveries were accepted; returns them."""
        end = time.monotonic() + timeout
        with self.cond:
            while len(self.got) < n:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return list(self.got)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()



def one_task_workflow(wid, agency):
    return {"id": wid, "title": "One task", "form": json.loads(json.dumps(FORM_FIELDS)),
            "steps": {"review": {"kind": "task", "agency": agency}}}


def set_hook(w, agency, url):
    r = w.plat.put("/v1/agencies/" + agency, {"name": "Agency " + agency, "webhook_url": url})
    assert r.status == 200, r
    assert r.json["webhook_url"] == url, r
    return r.json["webhook_secret"].encode()


def events_of(client, rid):
    r = client.get("/v1/requests/%s/events" % rid)
    assert r.status == 200, r
    return r.json["events"]


def wait_events(client, rid, type_, n=1, timeout=10.0):
    end = time.monotonic() + timeout
    while True:
        evs = [e for e in events_of(client, rid) if e["type"] == type_]
        if len(evs) >= n or time.monotonic() > end:
            return evs
        time.sleep(0.05)


class TestHooks(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        # The subscriptions' receivers are http://127.0.0.1 (SPEC §7).
        cls.server = Server(extra_args=FAST + ["--allow-private-urls",
                                               "--test-clock=2030-01-07T09:00:00+07:00"]).start()

    def setUp(self):
        self.receivers = []

    def tearDown(self):
        for r in self.receivers:
            r.close()

    def receiver(self, **kw):
        r = Receiver(**kw)
        self.receivers.append(r)
        return r

    def test_a_task_opens_webhook_delivered(self):
        w = self.world()
        rec = self.receiver()
        rec.secret = set_hook(w, w.A, rec.url)
        wid = uniq("wf")
        w.publish(one_task_workflow(wid, w.A))
        req = w.submit(wid)
        rid = req["id"]
        got = rec.wait(1)
        self.assertEqual(len(got), 1, rec.attempts)
        self.assertEqual(rec.bad, [])
        headers, raw, body = got[0]
        self.assertEqual(set(body), {"id", "type", "at", "task", "request"})
        self.assertEqual(body["type"], "StepOpened")
        self.assertEqual(body["task"]["request_id"], rid)
        self.assertEqual(body["task"]["step"], "review")
        self.assertEqual(body["task"]["state"], "open")
        self.assertEqual(body["task"]["workflow"], wid)
        self.assertEqual(body["request"]["id"], rid)
        self.assertEqual(body["request"]["status"], "in_progress")
        # The inbox shows no form: neither does the webhook.
        self.assertNotIn(b"Somchai", raw)
        self.assertNotIn(b"applicant", raw)
        inbox = w.inbox(w.A)
        self.assertEqual([t for t in inbox if t["request_id"] == rid][0]["opened_at"],
                         body["task"]["opened_at"])
        nd = wait_events(w.plat, rid, "NotificationDelivered")
        self.assertEqual(len(nd), 1)
        d = nd[0]
        self.assertEqual(d["stream"], "delivery/" + rid)
        self.assertEqual(d["version"], 1)
        self.assertEqual(d["data"]["delivery"], body["id"])
        self.assertEqual(d["data"]["delivery"], headers["Osse-Delivery"])
        self.assertEqual(d["data"]["receiver"], "agency:" + w.A)
        self.assertEqual(d["data"]["type"], "StepOpened")
        self.assertEqual(d["data"]["attempts"], 1)
        self.assertEqual(d["data"]["status"], 200)
        # The request's version did not move; both streams in seq order.
        view = w.view(rid)
        self.assertEqual(view["version"], req["version"])
        evs = events_of(w.plat, rid)
        self.assertEqual([e["seq"] for e in evs], sorted(e["seq"] for e in evs))
        self.assertEqual({e["stream"] for e in evs}, {"request/" + rid, "delivery/" + rid})
        self.assertEqual(events_of(w.ag[w.A], rid), evs)
        # The agency decides with the version it reads: deliveries never
        # make expected_version stale.
        w.decide(rid, "review", "approve", expected_version=view["version"])

    def test_b_retries_then_delivered_once(self):
        w = self.world()
        rec = self.receiver(fail=3)
        rec.secret = set_hook(w, w.A, rec.url)
        wid = uniq("wf")
        w.publish(one_task_workflow(wid, w.A))
        rid = w.submit(wid)["id"]
        got = rec.wait(1, timeout=15)
        self.assertEqual(len(got), 1, rec.attempts)
        self.assertEqual(rec.bad, [])
        self.assertEqual(len(rec.attempts), 4)
        self.assertEqual(len(set(rec.attempts)), 1, rec.attempts)
        nd = wait_events(w.plat, rid, "NotificationDelivered")
        time.sleep(0.5)
        nd = [e for e in events_of(w.plat, rid) if e["type"] == "NotificationDelivered"]
        self.assertEqual(len(nd), 1, nd)
        self.assertEqual(nd[0]["data"]["attempts"], 4)
        self.assertEqual([e for e in events_of(w.plat, rid) if e["type"] == "NotificationFailed"],
                         [])

    def test_a2_sla_escalation_and_info(self):
        w = self.world()
        ra, rb = self.receiver(), self.receiver()
        ra.secret = set_hook(w, w.A, ra.url)
        rb.secret = set_hook(w, w.B, rb.url)
        wid = uniq("wf")
        d = one_task_workflow(wid, w.A)
        d["steps"]["review"].update({"sla": "PT1H", "on_breach": {"escalate": w.B}})
        w.publish(d)
        rid = w.submit(wid)["id"]
        self.assertEqual(ra.wait(1)[0][2]["type"], "StepOpened")
        r = w.plat.post("/v1/test/clock", {"advance": "PT1H50M"})
        self.assertEqual(r.status, 200, r)
        got_a = ra.wait(3)
        got_b = rb.wait(2)
        # Attempts to one receiver run in parallel (4 at a time): the order
        # of arrival is not the order of the events; `at` is.
        got_a = sorted((g[2] for g in got_a), key=lambda b: b["at"])
        got_b = sorted((g[2] for g in got_b), key=lambda b: b["at"])
        self.assertEqual([b["type"] for b in got_a], ["StepOpened", "SlaWarned", "SlaBreached"])
        self.assertEqual([b["type"] for b in got_b], ["TaskEscalated", "SlaWarned"])
        self.assertEqual(got_b[0]["task"]["agency"], w.B)
        self.assertEqual(got_a[2]["task"]["sla"], "breached")
        w.decide(rid, "review", "return", agency=w.B)
        r = w.portal.post("/v1/requests/%s/info" % rid, {"step": "review", "message": "here"})
        self.assertEqual(r.status, 200, r)
        info = [g[2] for g in rb.wait(3) if g[2]["type"] == "InfoProvided"]
        self.assertEqual(len(info), 1)
        self.assertEqual(info[0]["task"]["state"], "open")
        self.assertEqual((ra.bad, rb.bad), ([], []))
        nd = wait_events(w.plat, rid, "NotificationDelivered", n=6)
        self.assertEqual(len(nd), 6)
        self.assertEqual([e["version"] for e in nd], [1, 2, 3, 4, 5, 6])
        evs = events_of(w.plat, rid)
        self.assertEqual(w.view(rid)["version"],
                         len([e for e in evs if e["stream"] == "request/" + rid]))

    def test_d_hanging_receiver_delays_nobody(self):
        w = self.world()
        # A listener that accepts connections (kernel backlog) and never answers.
        hang = socket.socket()
        hang.bind(("127.0.0.1", 0))
        hang.listen(64)
        try:
            set_hook(w, w.B, "http://127.0.0.1:%d/hook" % hang.getsockname()[1])
            rec = self.receiver()
            rec.secret = set_hook(w, w.A, rec.url)
            wid_b, wid_a = uniq("wf"), uniq("wf")
            w.publish(one_task_workflow(wid_b, w.B))
            w.publish(one_task_workflow(wid_a, w.A))
            for _ in range(8):
                w.submit(wid_b)
            t0 = time.monotonic()
            rid = w.submit(wid_a)["id"]
            api = [time.monotonic() - t0]
            for _ in range(5):
                t = time.monotonic()
                self.assertEqual(w.plat.get("/healthz").status, 200)
                w.view(rid)
                api.append(time.monotonic() - t)
            got = rec.wait(1, timeout=5)
            took = time.monotonic() - t0
            self.assertEqual(len(got), 1)
            self.assertEqual(got[0][2]["task"]["request_id"], rid)
            self.assertLess(took, 3.0, "another agency's delivery took %.2fs" % took)
            self.assertLess(max(api), 1.0, "API calls took %s" % api)
            print("\n  other agency's webhook after %.0f ms; slowest API call %.0f ms"
                  % (took * 1000, max(api) * 1000))
            m = w.plat.get("/metrics").body.decode()
            self.assertIn("osse_hook_deliveries_pending", m)
            self.assertIn("osse_hook_attempts_in_flight", m)
            pending = [float(line.split()[-1]) for line in m.splitlines()
                       if line.startswith("osse_hook_deliveries_pending ")]
            inflight = [float(line.split()[-1]) for line in m.splitlines()
                        if line.startswith("osse_hook_attempts_in_flight ")]
            self.assertGreaterEqual(pending[0], 8)
            self.assertGreaterEqual(inflight[0], 1)
        finally:
            hang.close()

    def test_e_subscription(self):
        w = self.world()
        sid = uniq("sub")
        rec = self.receiver()
        r = w.portal.put("/v1/subscriptions/" + sid,
                         {"url": rec.url, "events": ["RequestCompleted"]})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(set(r.json), {"id", "url", "events", "secret", "version"})
        self.assertEqual(r.json["events"], ["RequestCompleted"])
        self.assertEqual(r.json["version"], 1)
        secret = r.json["secret"]
        self.assertRegex(secret, r"^[A-Za-z0-9_-]{43}$")
        rec.secret = secret.encode()
        # The same again: nothing changes, the secret stays.
        r = w.portal.put("/v1/subscriptions/" + sid,
                         {"url": rec.url, "events": ["RequestCompleted"]})
        self.assertEqual((r.status, r.json["secret"], r.json["version"]), (200, secret, 1), r)
        # Another portal may not take it over.
        r = w.portal2.put("/v1/subscriptions/" + sid, {"url": rec.url, "events": ["StepOpened"]})
        assert_error(self, r, 403, "forbidden")
        # Validation.
        for bad in ({"url": rec.url, "events": ["RequestCompleted"], "x": 1},
                    {"url": "ftp://x", "events": ["RequestCompleted"]},
                    {"url": rec.url, "events": []},
                    {"url": rec.url, "events": ["NoSuchEvent"]},
                    {"url": rec.url, "events": ["NotificationDelivered"]},
                    {"url": rec.url}, [1]):
            assert_error(self, w.portal.put("/v1/subscriptions/" + sid, bad), 422)
        assert_error(self, w.portal.put("/v1/subscriptions/Bad_Id",
                                        {"url": rec.url, "events": ["RequestCompleted"]}), 404)
        self.assertEqual(w.ag[w.A].put("/v1/subscriptions/" + uniq("s"),
                                       {"url": rec.url, "events": ["RequestCompleted"]}).status,
                         403)
        wid = uniq("wf")
        w.publish(one_task_workflow(wid, w.A))
        other = w.submit(wid, portal=w.portal2)["id"]
        w.decide(other, "review", "approve", agency=w.A)
        rid = w.submit(wid)["id"]
        w.decide(rid, "review", "approve", agency=w.A)
        got = rec.wait(1)
        time.sleep(0.5)
        got = rec.wait(1)
        self.assertEqual(rec.bad, [])
        self.assertEqual(len(got), 1, [g[2] for g in got])
        body = got[0][2]
        self.assertEqual(set(body), {"id", "type", "at", "request", "event"})
        self.assertEqual(body["type"], "RequestCompleted")
        self.assertEqual(body["request"]["id"], rid)
        self.assertEqual(body["request"]["status"], "completed")
        self.assertEqual(body["event"]["type"], "RequestCompleted")
        evs = events_of(w.plat, rid)
        done = [e for e in evs if e["type"] == "RequestCompleted"][0]
        self.assertEqual(body["event"]["seq"], done["seq"])
        self.assertEqual(body["event"]["at"], done["at"])
        nd = wait_events(w.plat, rid, "NotificationDelivered")
        self.assertEqual(nd[0]["data"]["receiver"], "subscription:" + sid)
        self.assertEqual(nd[0]["data"]["type"], "RequestCompleted")
        # An update keeps the secret and moves the version.
        r = w.portal.put("/v1/subscriptions/" + sid,
                         {"url": rec.url, "events": ["RequestCompleted", "StepOpened"]})
        self.assertEqual((r.status, r.json["secret"], r.json["version"]), (200, secret, 2), r)


class TestHooksRestart(unittest.TestCase):
    def restart_while_down(self, crash):
        srv = Server(extra_args=FAST).start()
        rec = None
        try:
            w = World(srv)
            port = free_port()
            secret = set_hook(w, w.A, "http://127.0.0.1:%d/hook" % port)
            wid = uniq("wf")
            w.publish(one_task_workflow(wid, w.A))
            rid = w.submit(wid)["id"]
            time.sleep(0.8)  # a few failed attempts (connection refused)
            if crash:
                srv.kill()
            else:
                self.assertEqual(srv.stop(), 0, srv.stderr_tail())
            srv.start()
            time.sleep(0.3)
            rec = Receiver(secret=secret, port=port)
            got = rec.wait(1, timeout=15)
            self.assertEqual(len(got), 1, rec.attempts)
            self.assertEqual(rec.bad, [])
            self.assertEqual(got[0][2]["task"]["request_id"], rid)
            plat = srv.client(srv.admin_token())
            nd = wait_events(plat, rid, "NotificationDelivered")
            self.assertEqual(len(nd), 1)
            self.assertGreaterEqual(nd[0]["data"]["attempts"], 2)
            self.assertEqual(plat.get("/v1/requests/" + rid).json["version"], 2)
            digest = plat.get("/v1/admin/digest").json
            # A clean stop with nothing pending; a replay of the log gives the
            # live views' digest and sends nothing; a restart sends nothing again.
            self.assertEqual(srv.stop(), 0)
            out = subprocess.run([OSSE_BIN, "replay", "--data", srv.data_dir],
                                 capture_output=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(out.stdout.decode().strip().splitlines()[-1], digest["digest"])
            srv.start()
            time.sleep(0.5)
            self.assertEqual(len(rec.got), 1)
            self.assertEqual(len(rec.attempts), 1)
            self.assertEqual(srv.stop(), 0, srv.stderr_tail())
        finally:
            if rec:
                rec.close()
            srv.cleanup()

    def test_c_delivery_survives_kill_while_receiver_down(self):
        self.restart_while_down(crash=True)

    def test_c_delivery_survives_sigterm_while_receiver_down(self):
        self.restart_while_down(crash=False)


class TestHooksGiveUp(ServerTestCase):
    """A receiver that never succeeds: with the retry span shortened (hidden
    --hook-retry-span-ms), the delivery is given up and recorded once as
    NotificationFailed, and nothing is resent after a restart."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=["--hook-retry-base-ms", "50",
                                        "--hook-retry-span-ms", "400"]).start()

    def test_f_given_up_recorded_once(self):
        w = self.world()
        rec = Receiver(fail=10 ** 6)
        try:
            rec.secret = set_hook(w, w.A, rec.url)
            wid = uniq("wf")
            w.publish(one_task_workflow(wid, w.A))
            rid = w.submit(wid)["id"]
            nf = wait_events(w.plat, rid, "NotificationFailed", timeout=20)
            self.assertEqual(len(nf), 1, events_of(w.plat, rid))
            d = nf[0]["data"]
            self.assertEqual(nf[0]["stream"], "delivery/" + rid)
            self.assertEqual(d["receiver"], "agency:" + w.A)
            self.assertEqual(d["type"], "StepOpened")
            self.assertGreater(d["attempts"], 1)
            with rec.lock:
                self.assertEqual(len(rec.attempts), d["attempts"])
                self.assertEqual(len(set(rec.attempts)), 1)
            self.assertIn("500", d.get("error", ""))
            self.assertEqual(rec.bad, [])
            # Given up is final: a restart does not try again.
            self.assertEqual(self.server.stop(), 0)
            self.server.start()
            time.sleep(1.0)
            with rec.lock:
                self.assertEqual(len(rec.attempts), d["attempts"])
            plat = self.server.client(self.server.admin_token())
            evs = events_of(plat, rid)
            self.assertEqual([e["type"] for e in evs].count("NotificationFailed"), 1)
            self.assertEqual([e["type"] for e in evs].count("NotificationDelivered"), 0)
        finally:
            rec.close()


if __name__ == "__main__":
    main()
