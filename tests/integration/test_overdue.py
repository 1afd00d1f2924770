"""test_overdue.py: delays told (SPEC §2 `overdue_notice`, §5
SlaOverdueNotice, §7 webhooks and subscriptions).

Every server starts with `--test-clock=2030-01-07T09:00:00+07:00` (a
Monday) on a fresh data directory; time moves only by POST /v1/test/clock.
The task's SLA is wall-clock (P3D) so that every instant below is plain
arithmetic: opened at 02:00Z on 2030-01-07, breached at 2030-01-10T02:00Z,
and with `overdue_notice: P7D` noticed on the 17th, the 24th, the 31st...

What is checked:
- publishing: overdue_notice must be a wall-clock duration of at least an
  hour (working time, zero, 30 minutes, a number: 422 naming the key);
- 22 days after the breach three notices {step, agency, due_at, notice
  1..3}, each at its own instant, none before; a decision stops them;
- a kill -9 between notices: after the restart none is repeated or lost;
- waiting for the applicant pauses them, the answer resumes them with the
  time that was left;
- after an escalation, notices count from the breach of the fresh SLA;
- a task step only (a payment step past its SLA gets none);
- an agency webhook and a subscription delivery carry SlaOverdueNotice;
- `osse replay` of the data folder gives the live digest.

Python standard library only.
"""

import datetime as dt
import http.server
import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (FORM_FIELDS, Server, World, assert_error, detail_paths,  # noqa: E402
                          good_form, main, run_osse, step_of, uniq)

START = "2030-01-07T09:00:00+07:00"
# Its subscription goes to http://127.0.0.1 (SPEC §7).
PRIVATE = "--allow-private-urls"
T0 = dt.datetime(2030, 1, 7, 2, 0, tzinfo=dt.timezone.utc)


def Z(days=0, hours=0):
    t = T0 + dt.timedelta(days=days, hours=hours)
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def events_of(client, rid):
    r = client.get("/v1/requests/%s/events" % rid)
    assert r.status == 200, r
    return r.json["events"]


def notices(client, rid):
    return [e for e in events_of(client, rid) if e["type"] == "SlaOverdueNotice"]


def task_workflow(wid, agency, on_breach=None, escalate_to=None, notice="P7D"):
    review = {"kind": "task", "agency": agency, "sla": "P3D"}
    if escalate_to:
        review["on_breach"] = {"escalate": escalate_to}
    elif on_breach:
        review["on_breach"] = on_breach
    d = {"id": wid, "title": "Overdue", "form": FORM_FIELDS,
         "steps": {"review": review,
                   "fee": {"kind": "payment", "amount": "100", "after": ["review"],
                           "sla": "P3D"}}}
    if notice:
        d["overdue_notice"] = notice
    return d


class Receiver:
    """Collects the JSON bodies POSTed to it."""

    def __init__(self):
        self.got = []
        self.cond = threading.Condition()
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with rec.cond:
                    rec.got.append(json.loads(body))
                    rec.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d/hook" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_for(self, pred, timeout=30):
        """The bodies once one satisfies pred (deliveries are real HTTP)."""
        end = time.monotonic() + timeout
        with self.cond:
            while not any(pred(b) for b in self.got):
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("no matching delivery in %r" % self.got)
                self.cond.wait(left)
            return list(self.got)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class OverdueCase(unittest.TestCase):

    def setUp(self):
        self.server = Server(extra_args=["--test-clock=" + START, PRIVATE]).start()
        self.w = World(self.server)
        self.plat = self.w.plat

    def tearDown(self):
        srv = self.server
        rc = srv.stop() if srv.alive() else "dead"
        if rc != 0:
            srv.own_dir = False
        srv.cleanup()
        if rc != 0:
            raise AssertionError("osse exited with %s:\n%s" % (rc, srv.stderr_tail(60)))

    def advance(self, d):
        r = self.plat.post("/v1/test/clock", {"advance": d})
        self.assertEqual(r.status, 200, r)

    def publish(self, **kw):
        wid = uniq("od")
        self.w.publish(task_workflow(wid, self.w.A, **kw))
        return wid

    def check_digest(self):
        live = self.plat.get("/v1/admin/digest").json
        out = run_osse("replay", "--data", self.server.data_dir).stdout.decode().split()
        self.assertEqual(out[-1], live["digest"])

    def test_a_publish_checks(self):
        for bad in ("5 working days", "P0D", "PT30M", 7, "soon", ["P7D"]):
            d = task_workflow(uniq("od"), self.w.A, notice=bad)
            r = self.plat.post("/v1/workflows", d)
            assert_error(self, r, 422, "invalid_definition", msg=(bad, r))
            self.assertIn("overdue_notice", detail_paths(r), (bad, r))
        self.publish(notice="PT1H")

    def test_b_every_period_until_decided(self):
        wid = self.publish()
        rid = self.w.submit(wid, good_form())["id"]
        self.advance("P3D")  # the breach
        self.assertEqual(notices(self.plat, rid), [])
        self.advance("PT167H")  # one hour short of the first notice
        self.assertEqual(notices(self.plat, rid), [])
        self.advance("PT1H")
        self.assertEqual(len(notices(self.plat, rid)), 1)
        self.advance("P14D")  # 22 days after the breach in all
        got = notices(self.plat, rid)
        self.assertEqual([n["at"] for n in got], [Z(10), Z(17), Z(24)])
        self.assertEqual([n["data"] for n in got],
                         [{"step": "review", "agency": self.w.A, "due_at": Z(3), "notice": k}
                          for k in (1, 2, 3)])
        self.assertEqual({n["actor"]["kind"] for n in got}, {"system"})
        # The timeline says so too.
        tl = [t for t in self.w.view(rid)["timeline"] if t["type"] == "SlaOverdueNotice"]
        self.assertEqual(len(tl), 3)
        self.w.decide(rid, "review", "approve")
        self.advance("P30D")
        self.assertEqual(len(notices(self.plat, rid)), 3)
        # A payment step past its SLA gets no notice.
        self.assertEqual(step_of(self.w.view(rid), "fee")["sla"], "breached")
        self.assertEqual([n["data"]["step"] for n in notices(self.plat, rid)], ["review"] * 3)
        self.check_digest()

    def test_c_kill_between_notices(self):
        wid = self.publish()
        rid = self.w.submit(wid, good_form())["id"]
        self.advance("P11D")  # breach + 8 days: one notice
        self.assertEqual(len(notices(self.plat, rid)), 1)
        data = self.server.data_dir
        self.server.kill()
        self.server = Server(data_dir=data, extra_args=["--test-clock=" + START, PRIVATE]).start()
        self.plat = self.server.client(self.server.admin_token())
        self.assertEqual(len(notices(self.plat, rid)), 1)
        self.advance("P14D")  # breach + 22 days
        got = notices(self.plat, rid)
        self.assertEqual([n["at"] for n in got], [Z(10), Z(17), Z(24)])
        self.assertEqual([n["data"]["notice"] for n in got], [1, 2, 3])
        # Killed right after a notice fired: nothing repeats.
        self.server.kill()
        self.server = Server(data_dir=data, extra_args=["--test-clock=" + START, PRIVATE]).start()
        self.plat = self.server.client(self.server.admin_token())
        self.advance("PT1H")
        self.assertEqual(len(notices(self.plat, rid)), 3)
        self.advance("P7D")
        self.assertEqual([n["at"] for n in notices(self.plat, rid)],
                         [Z(10), Z(17), Z(24), Z(31)])
        self.check_digest()

    def test_d_paused_while_waiting_for_the_applicant(self):
        wid = self.publish()
        rid = self.w.submit(wid, good_form())["id"]
        self.advance("P6D")  # breach + 3 days
        self.w.decide(rid, "review", "return", reason="more papers")
        self.advance("P10D")  # waiting: no notice
        self.assertEqual(notices(self.plat, rid), [])
        r = self.w.portal.post("/v1/requests/%s/info" % rid, {"step": "review", "message": "ok"})
        self.assertEqual(r.status, 200, r)
        # 4 days were left until the first notice when it was returned.
        self.advance("PT95H")
        self.assertEqual(notices(self.plat, rid), [])
        self.advance("PT1H")
        got = notices(self.plat, rid)
        self.assertEqual([n["at"] for n in got], [Z(20)])
        self.advance("P7D")
        self.assertEqual([n["at"] for n in notices(self.plat, rid)], [Z(20), Z(27)])
        self.check_digest()

    def test_e_after_escalation_the_fresh_breach(self):
        wid = self.publish(escalate_to=self.w.B)
        rid = self.w.submit(wid, good_form())["id"]
        self.advance("P3D")  # breach: escalated to B with a fresh P3D
        self.assertEqual(self.w.agency_of_step(rid, "review"), self.w.B)
        self.advance("P3D")  # the fresh SLA breaches at day 6 (notify only)
        self.assertEqual(notices(self.plat, rid), [])
        self.advance("P7D")
        got = notices(self.plat, rid)
        self.assertEqual([n["at"] for n in got], [Z(13)])
        self.assertEqual(got[0]["data"], {"step": "review", "agency": self.w.B, "due_at": Z(6),
                                          "notice": 1})

    def test_f_webhook_and_subscription(self):
        rec = Receiver()
        try:
            r = self.plat.put("/v1/agencies/" + self.w.A,
                              {"name": "A", "webhook_url": rec.url})
            self.assertEqual(r.status, 200, r)
            sid = uniq("sub")
            r = self.w.portal.put("/v1/subscriptions/" + sid,
                                  {"url": rec.url, "events": ["SlaOverdueNotice"]})
            self.assertEqual(r.status, 201, r)
            wid = self.publish()
            rid = self.w.submit(wid, good_form())["id"]
            self.advance("P10D")
            od = lambda: [b for b in rec.got if b.get("type") == "SlaOverdueNotice"]
            rec.wait_for(lambda _: len(od()) >= 2)
            hook = [b for b in od() if "task" in b]
            sub = [b for b in od() if "event" in b]
            self.assertEqual((len(hook), len(sub)), (1, 1), od())
            # The agency's webhook: its task, as for SlaBreached.
            self.assertEqual(hook[0]["task"]["request_id"], rid)
            self.assertEqual(hook[0]["task"]["step"], "review")
            self.assertEqual(hook[0]["request"]["id"], rid)
            # The portal's subscription: the event itself.
            self.assertEqual(sub[0]["event"]["data"],
                             {"step": "review", "agency": self.w.A, "due_at": Z(3), "notice": 1})
            self.assertEqual(sub[0]["request"]["id"], rid)
        finally:
            rec.close()


if __name__ == "__main__":
    main()
