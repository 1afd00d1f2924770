"""test_whole_service.py: SPEC §2's example definition, word for word, from
the citizen's first question to the licence in the public registry (issue
11: know, submit, pay, receive), over real HTTP.

The platform publishes the example (YAML, as SPEC §2 prints it) and sets up
its agencies: dopa with a lookup_url (a fake civil registry in this test),
dbd, bma-health, bma-director and fire-dept. Then:

- know: the public manual of the service says 15 working days and P30D,
  without a token;
- a small shop (40 m², 20 seats): the identity linkage answers alive, the
  commerce task is approved by its auto_approve rule, the fire step is
  skipped (when: area > 200), health decides; the fee is 540.00
  (500 + 2 * seats), paid once (a retried callback answers the same and
  writes nothing); the licence RST-2030-000001 is issued;
- a large restaurant (250 m², no seats given): commerce, health and fire are
  three parallel tasks; the fee is 500.00 (`?? 0`); the licence
  RST-2030-000002;
- receive: both licences are in the registry (newest first), the CSV holds
  their public fields and no personal one, the tracking view by code shows
  the licence and no form;
- `osse replay --data` gives the live digest and `--recheck` finds no
  difference.

The server starts with --test-clock=2030-01-07T09:00:00+07:00 (a Monday at
09:00 in Bangkok), so nothing depends on today's date.
"""

import http.server
import json
import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (OSSE_BIN, TH_GOV, Server, citizen_id, main,  # noqa: E402
                          replay_data, step_of)

CLOCK = "--test-clock=2030-01-07T09:00:00+07:00"

EXAMPLE = """\
id: restaurant-license            # [a-z0-9][a-z0-9-]{0,63}
title: Restaurant (food premises) licence
calendar: th-gov                  # default calendar for working-time SLAs
form:                             # the single e-form
  applicant_id:  {type: citizen_id, required: true, pii: true}
  applicant_name: {type: string, required: true, pii: true, max_length: 200}
  business_name: {type: string, required: true}
  area_sqm:      {type: number, required: true, min: 1}
  seats:         {type: integer, min: 0}
  district:      {type: enum, values: [bang-rak, pathum-wan, khlong-toei]}
  opening_date:  {type: date}
steps:                            # a map; `after` makes the graph
  identity:
    kind: linkage                 # ask a registry, record its answer
    agency: dopa                  # an agency with a lookup_url
    input: {citizen_id: form.applicant_id}
    require: data.identity.alive == true     # false => request rejected
    timeout: PT10S
    retries: 5
  commerce:
    kind: task                    # an agency decides
    agency: dbd
    after: [identity]
    sla: 1 working day
    auto_approve: form.area_sqm <= 50 && data.identity.alive == true
  health:
    kind: task
    agency: bma-health
    after: [identity]
    sla: 15 working days
    on_breach: {escalate: bma-director}
  fire:
    kind: task
    agency: fire-dept
    after: [identity]
    when: form.area_sqm > 200     # false => step skipped
    sla: 10 working days
    on_breach: approve            # deemed approval when the agency is silent
  fee:
    kind: payment
    after: [commerce, health, fire]   # fan-in: waits for all (skipped counts as done)
    amount: 500 + 2 * (form.seats ?? 0)  # THB, kept as integer satang
    sla: P30D
    on_breach: expire
  licence:
    kind: issue
    after: [fee]
    number: RST-{yyyy}-{seq:6}
    valid_for: P1Y
    public_fields: [business_name, district]
"""

AGENCIES = ["dopa", "dbd", "bma-health", "bma-director", "fire-dept"]


class CivilRegistry:
    """DOPA's lookup, faked: every citizen is alive; the calls are kept."""

    def __init__(self):
        self.calls = []
        reg = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                reg.calls.append(body)
                out = json.dumps({"citizen_id": body.get("citizen_id"), "alive": True}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/lookup" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class TestWholeService(unittest.TestCase):

    def setUp(self):
        self.registry = CivilRegistry()
        self.server = Server(extra_args=[CLOCK]).start()
        s = self.server
        self.plat = s.client(s.admin_token())
        self.assertIn(self.plat.put("/v1/calendars/th-gov", TH_GOV).status, (200, 201))
        self.ag = {}
        for a in AGENCIES:
            body = {"name": a.upper()}
            if a == "dopa":
                body["lookup_url"] = self.registry.url
            self.assertEqual(self.plat.put("/v1/agencies/" + a, body).status, 201)
            self.ag[a] = s.client(self.token("agency", agency=a))
        self.portal = s.client(self.token("portal"))
        self.gateway = s.client(self.token("payment"))
        self.anon = s.client("")

    def tearDown(self):
        self.server.stop()
        self.server.cleanup()
        self.registry.close()

    def token(self, role, agency=None):
        body = {"role": role, "name": role}
        if agency:
            body["agency"] = agency
        r = self.plat.post("/v1/principals", body)
        self.assertEqual(r.status, 201, r)
        return r.json["token"]

    def view(self, rid):
        r = self.plat.get("/v1/requests/" + rid)
        self.assertEqual(r.status, 200, r)
        return r.json

    def states(self, rid):
        return {s["name"]: s["state"] for s in self.view(rid)["steps"]}

    def looked_up(self, rid):
        """Waits (at most 10 s) until the identity lookup, which runs after
        the submission's answer, is recorded; returns the step states."""
        for _ in range(200):
            st = self.states(rid)
            if st["identity"] != "open":
                return st
            time.sleep(0.05)
        raise AssertionError("the identity lookup was never recorded: %s" % st)

    def decide(self, rid, step, agency):
        v = self.view(rid)["version"]
        r = self.ag[agency].post("/v1/tasks/%s/%s/decision" % (rid, step),
                                 {"outcome": "approve", "reason": "in order",
                                  "expected_version": v})
        self.assertEqual(r.status, 200, r)

    def pay(self, rid, transaction):
        fee = self.view(rid)["fee"]
        r = self.gateway.post("/v1/requests/%s/payments" % rid,
                              {"step": "fee", "amount": fee["amount"],
                               "reference": fee["reference"], "transaction": transaction})
        self.assertEqual(r.status, 200, r)
        return r

    def submit(self, **form):
        r = self.portal.post("/v1/requests", {"workflow": "restaurant-license", "form": form})
        self.assertEqual(r.status, 201, r)
        return r.json

    def test_know_submit_pay_receive(self):
        r = self.plat.post("/v1/workflows", raw=EXAMPLE, content_type="application/yaml")
        self.assertEqual(r.status, 201, r)

        # Know: the manual, public.
        m = self.anon.get("/v1/public/services/restaurant-license")
        self.assertEqual(m.status, 200, m)
        self.assertEqual((m.json["max_working_days"], m.json["max_other"]), (15, ["P30D"]), m.json)
        self.assertEqual(m.json["fee"]["expression"], "500 + 2 * (form.seats ?? 0)")

        # Submit: a small shop. Commerce approves itself, fire is skipped.
        small = self.submit(applicant_id=citizen_id(), applicant_name="Somchai Jaidee",
                            business_name="Baan Somchai", area_sqm=40, seats=20,
                            district="bang-rak")
        rid = small["id"]
        self.assertEqual(self.looked_up(rid), {"identity": "done", "commerce": "approved",
                                            "health": "open", "fire": "skipped",
                                            "fee": "pending", "licence": "pending"})
        self.assertEqual(len(self.registry.calls), 1)
        self.decide(rid, "health", "bma-health")
        v = self.view(rid)
        self.assertEqual((v["status"], v["fee"]["amount"], v["fee"]["paid"]),
                         ("awaiting_payment", "540.00", False), v)

        # Pay, and the gateway's retry: the same answer, nothing written.
        first = self.pay(rid, "GW-1")
        self.assertEqual(first.json["status"], "completed", first)
        seq = self.plat.get("/v1/log?limit=1000").json["events"][-1]["seq"]
        again = self.pay(rid, "GW-1")
        self.assertEqual(again.json, first.json)
        self.assertEqual(self.plat.get("/v1/log?limit=1000").json["events"][-1]["seq"], seq)

        # A large restaurant: three parallel tasks, a fee without seats.
        large = self.submit(applicant_id=citizen_id(), applicant_name="Malee Srisuk",
                            business_name="Malee Kitchen", area_sqm=250, district="pathum-wan")
        rid2 = large["id"]
        st = self.looked_up(rid2)
        self.assertEqual([st[k] for k in ("commerce", "health", "fire")], ["open"] * 3, st)
        self.decide(rid2, "fire", "fire-dept")
        self.decide(rid2, "commerce", "dbd")
        self.assertEqual(self.states(rid2)["fee"], "pending")  # fan-in waits for health
        self.decide(rid2, "health", "bma-health")
        self.assertEqual(self.view(rid2)["fee"]["amount"], "500.00")
        self.pay(rid2, "GW-2")

        # Receive: the licences, in the registry and the tracking view.
        numbers = [self.view(x)["licence"]["number"] for x in (rid, rid2)]
        self.assertEqual(numbers, ["RST-2030-000001", "RST-2030-000002"])
        reg = self.anon.get("/v1/public/licences?workflow=restaurant-license")
        self.assertEqual(reg.status, 200, reg)
        self.assertEqual([x["number"] for x in reg.json["licences"]], numbers[::-1])
        self.assertEqual(reg.json["licences"][1]["fields"],
                         {"business_name": "Baan Somchai", "district": "bang-rak"})
        one = self.anon.get("/v1/public/licences/" + numbers[0])
        self.assertEqual((one.status, one.json["status"]), (200, "valid"), one)
        self.assertEqual(one.json["document"]["number"], numbers[0])
        self.assertEqual(len(one.json["jws"].split(".")), 3)
        csv = self.anon.get("/v1/public/licences.csv?workflow=restaurant-license")
        self.assertEqual(csv.status, 200, csv)
        text = csv.body.decode()
        self.assertTrue(text.startswith("number,workflow,title,status,valid_from,valid_until,"
                                        "revoked_at,field.business_name,field.district\r\n"), text)
        self.assertIn("Baan Somchai", text)
        self.assertIn("Malee Kitchen", text)
        self.assertNotIn("Somchai Jaidee", text)  # the applicant's name is not public
        track = self.anon.get("/v1/track/" + small["tracking_code"].lower())
        self.assertEqual(track.status, 200, track)
        self.assertNotIn("form", track.json)
        self.assertEqual(track.json["licence"]["number"], numbers[0])
        self.assertEqual(step_of(track.json, "fire")["state"], "skipped")

        # The log replays to the live views and rechecks clean.
        live = self.plat.get("/v1/admin/digest").json["digest"]
        seen = self.snapshot((rid, rid2), small["tracking_code"], numbers)
        self.server.stop()
        out = subprocess.run([OSSE_BIN, "replay", "--data", self.server.data_dir, "--recheck"],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = out.stdout.splitlines()
        self.assertIn("recheck: 0 difference(s)", lines, out.stdout)
        self.assertEqual(lines[-1], live, out.stdout)
        # Every request's stored record is the one the replay rebuilt (issue 13).
        digest, rec = replay_data(self.server.data_dir)
        self.assertEqual(digest, live)
        self.assertEqual((rec["missing"], rec["different"]), (0, 0), rec)
        self.assertGreater(rec["equal"], 0, rec)

        # A start reads the records, not the log (issue 13), and every view
        # is what it was: after a clean stop, after a kill, and after a
        # start told to rebuild them from the whole log.
        for how, args, line in (("stop", [], "records read"), ("kill", [], "records read"),
                                ("stop", ["--rebuild-views"], "records written")):
            self.server.extra_args = [CLOCK] + args
            self.server.start()
            self.plat = self.server.client(self.server.admin_token())
            self.anon = self.server.client("")
            start = self.server.stderr_tail(400).split("===== start")[-1]
            self.assertIn('msg="%s"' % line, start)
            self.assertIn("requests=2 ", start)
            if args:
                self.assertIn('msg="log replayed"', start)
            self.assertEqual(self.plat.get("/v1/admin/digest").json["digest"], live, args)
            self.assertEqual(self.snapshot((rid, rid2), small["tracking_code"], numbers), seen)
            self.server.kill() if how == "kill" else self.server.stop()
        self.server.start()

    def snapshot(self, rids, code, numbers):
        """What every reader sees of the two requests: their views and
        events, the lists, inboxes, registry, statistics and the metrics'
        counts (not their latency histograms)."""
        paths = ["/v1/requests/%s" % r for r in rids] + \
            ["/v1/requests/%s/events" % r for r in rids] + \
            ["/v1/requests", "/v1/requests?status=completed", "/v1/stats",
             "/v1/stats?bucket=week", "/v1/workflows", "/v1/agencies", "/v1/principals"] + \
            ["/v1/agencies/%s/tasks?state=all" % a for a in AGENCIES]
        out = {p: self.plat.get(p).json for p in paths}
        for p in ["/v1/track/" + code, "/v1/public/licences", "/v1/public/services"] + \
                ["/v1/public/licences/" + n for n in numbers]:
            out[p] = self.anon.get(p).json
        out["csv"] = self.anon.get("/v1/public/licences.csv").body
        metrics = self.plat.get("/metrics").body.decode().splitlines()
        out["metrics"] = [m for m in metrics if m.startswith(("osse_requests", "osse_open_tasks",
                                                              "osse_sla_breaches"))]
        return out


if __name__ == "__main__":
    main()
