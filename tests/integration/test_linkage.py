"""test_linkage.py: linkage steps over real HTTP (SPEC §2 `linkage`, `input`,
`require`, `timeout`, `retries`; §5 LinkageCompleted, LinkageFailed; §6
replay and --recheck).

A real lookup server (http.server in a thread on 127.0.0.1) plays the
registry: what it answers is scripted per citizen id, and it keeps every call
it received (headers and body).

What is checked:
- an answer {"alive": true}: LinkageCompleted with the answer (stored sealed,
  {"enc":...}, as are the require's inputs read from it, SPEC §8), the attempt
  count and the `require` record (rule, inputs, result); the step done, the
  next tasks open, and an auto_approve reading data.identity.alive approves;
- {"alive": false}: the request rejected, the require record with result
  false, the unfinished steps cancelled;
- 500, 500, then 200 with retries 3: completed with attempts 3;
- a registry that never answers (timeout PT1S, retries 1) and one that always
  answers 500: LinkageFailed with attempts 2, the step failed, the request
  rejected; an agency without lookup_url fails the step at once;
- the call itself: POST of exactly the evaluated input object, Content-Type
  application/json, Osse-Request, Osse-Step and a valid Osse-Signature;
- an answer that arrives after the request was withdrawn is dropped;
- kill -9 while the registry holds the call: after the restart the call is
  made again and completes;
- `osse replay --data DIR` gives the live GET /v1/admin/digest, and
  `--recheck` finds no difference.

Python standard library only.
"""

import hashlib
import hmac
import http.server
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (OSSE_BIN, Server, ServerTestCase, World, citizen_id,  # noqa: E402
                          main, uniq)


class Registry:
    """The lookup server. script[citizen_id] is a list of actions, one per
    call (the last repeats): ("json", status, value), ("slow", seconds,
    status, value) (answers after a delay), ("hang", seconds) (never answers)
    or ("hold",) (never answers; waits until close())."""

    def __init__(self):
        self.script = {}
        self.calls = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        reg = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                cid = body.get("citizen_id") if isinstance(body, dict) else None
                with reg.lock:
                    k = sum(1 for c in reg.calls if c["cid"] == cid)
                    reg.calls.append({"cid": cid, "raw": raw, "body": body, "at": time.time(),
                                      "headers": {h.lower(): v for h, v in self.headers.items()}})
                    acts = reg.script.get(cid) or [("json", 404, {"error": "unknown"})]
                    act = acts[min(k, len(acts) - 1)]
                try:
                    if act[0] == "hang":
                        time.sleep(act[1])
                        return
                    if act[0] == "slow":
                        time.sleep(act[1])
                        act = ("json",) + tuple(act[2:])
                    elif act[0] == "hold":
                        reg.released.wait(30)
                        return
                    out = json.dumps(act[2]).encode()
                    self.send_response(act[1])
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d/lookup" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def calls_for(self, cid):
        with self.lock:
            return [c for c in self.calls if c["cid"] == cid]

    def close(self):
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def of_type(events, typ, step=None):
    return [e for e in events if e["type"] == typ
            and (step is None or (e.get("data") or {}).get("step") == step)]


REQUIRE = "data.identity.alive == true"
AUTO = "form.area_sqm <= 50 && data.identity.alive == true"


class TestLinkage(ServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.reg = Registry()
        cls.server = Server().start()
        cls.w = World(cls.server)

    @classmethod
    def tearDownClass(cls):
        cls.reg.close()
        super().tearDownClass()

    def setUp(self):
        self.w.plat = self.server.client(self.w.admin_token)
        self.plat = self.w.plat
        self.agency = "reg-" + uniq("a")
        r = self.plat.put("/v1/agencies/" + self.agency,
                          {"name": "Registry", "lookup_url": self.reg.url})
        self.assertIn(r.status, (200, 201), r)
        self.secret = r.json["webhook_secret"]

    def publish(self, timeout="PT2S", retries=3, agency=None, require=REQUIRE, auto=AUTO):
        wid = uniq("wf")
        d = {"id": wid, "title": "Linkage " + wid, "calendar": "th-gov",
             "form": {"applicant_id": {"type": "citizen_id", "required": True, "pii": True},
                      "area_sqm": {"type": "number", "required": True, "min": 1}},
             "steps": {
                 "identity": {"kind": "linkage", "agency": agency or self.agency,
                              "input": {"citizen_id": "form.applicant_id"},
                              "require": require, "timeout": timeout, "retries": retries},
                 "commerce": {"kind": "task", "agency": self.w.A, "after": ["identity"],
                              "auto_approve": auto},
                 "health": {"kind": "task", "agency": self.w.B, "after": ["identity"]},
             }}
        r = self.plat.post("/v1/workflows", d)
        self.assertEqual(r.status, 201, r)
        return wid

    def submit(self, wid, script):
        cid = citizen_id()
        self.reg.script[cid] = script
        form = {"applicant_id": cid, "area_sqm": 42.5}
        r = self.w.portal.post("/v1/requests", {"workflow": wid, "form": form})
        self.assertEqual(r.status, 201, r)
        return r.json["id"], cid

    def events(self, rid):
        r = self.plat.get("/v1/requests/%s/events" % rid)
        self.assertEqual(r.status, 200, r)
        return r.json["events"]

    def assertSealed(self, v, msg=None):
        """A personal value as stored: {"enc":"<base64>"} (SPEC §8)."""
        self.assertIsInstance(v, dict, msg)
        self.assertEqual(list(v), ["enc"], msg)
        self.assertIsInstance(v["enc"], str, msg)

    def wait_for(self, rid, typ, timeout=15):
        end = time.time() + timeout
        while time.time() < end:
            evs = self.events(rid)
            if of_type(evs, typ):
                return evs
            time.sleep(0.05)
        self.fail("no %s for %s within %ss; events %s" % (
            typ, rid, timeout, [e["type"] for e in self.events(rid)]))

    def states(self, rid):
        return {s["name"]: s["state"] for s in self.w.view(rid)["steps"]}

    # ------------------------------------------------------------------

    def test_a_alive_completes_and_auto_approves(self):
        wid = self.publish()
        rid, cid = self.submit(wid, [("json", 200, {"alive": True, "name": "Somchai"})])
        evs = self.wait_for(rid, "LinkageCompleted")
        lc = of_type(evs, "LinkageCompleted", "identity")
        self.assertEqual(len(lc), 1, evs)
        d = lc[0]["data"]
        # The answer is personal (SPEC §8): stored sealed, as are the inputs
        # the require read from it.
        self.assertSealed(d["answer"], d)
        self.assertNotIn("Somchai", json.dumps(evs))
        self.assertEqual(d["attempts"], 1, d)
        self.assertEqual(d["rule"], REQUIRE, d)
        self.assertEqual(set(d["inputs"]), {"data.identity.alive"}, d)
        self.assertSealed(d["inputs"]["data.identity.alive"], d)
        self.assertIs(d["result"], True, d)
        self.assertEqual(lc[0]["actor"]["kind"], "system", lc[0])
        aa = of_type(evs, "TaskAutoApproved", "commerce")
        self.assertEqual(len(aa), 1, [e["type"] for e in evs])
        inputs = aa[0]["data"]["inputs"]
        self.assertEqual(inputs["form.area_sqm"], 42.5, aa[0])  # not personal: plain
        self.assertEqual(set(inputs), {"form.area_sqm", "data.identity.alive"}, aa[0])
        self.assertSealed(inputs["data.identity.alive"], aa[0])
        self.assertEqual(self.states(rid),
                         {"identity": "done", "commerce": "approved", "health": "open"})
        v = self.w.view(rid)
        self.assertEqual(v["status"], "in_progress", v)
        # (e) the call itself
        calls = self.reg.calls_for(cid)
        self.assertEqual(len(calls), 1, calls)
        c = calls[0]
        self.assertEqual(c["body"], {"citizen_id": cid}, c)
        h = c["headers"]
        self.assertTrue(h.get("content-type", "").startswith("application/json"), h)
        self.assertEqual(h.get("osse-request"), rid, h)
        self.assertEqual(h.get("osse-step"), "identity", h)
        sig = dict(p.split("=", 1) for p in h["osse-signature"].split(","))
        want = hmac.new(self.secret.encode(), sig["t"].encode() + b"." + c["raw"],
                        hashlib.sha256).hexdigest()
        self.assertEqual(sig["v1"], want, h)

    def test_b_not_alive_rejects(self):
        wid = self.publish()
        rid, _ = self.submit(wid, [("json", 200, {"alive": False})])
        evs = self.wait_for(rid, "RequestRejected")
        d = of_type(evs, "LinkageCompleted", "identity")[0]["data"]
        self.assertSealed(d["answer"], d)
        self.assertEqual(d["rule"], REQUIRE, d)
        self.assertEqual(set(d["inputs"]), {"data.identity.alive"}, d)
        self.assertSealed(d["inputs"]["data.identity.alive"], d)
        self.assertIs(d["result"], False, d)
        rej = of_type(evs, "RequestRejected")[0]["data"]
        self.assertEqual(rej["step"], "identity", rej)
        self.assertIn("requirement", rej["reason"], rej)
        self.assertEqual(of_type(evs, "StepOpened", "commerce"), [], evs)
        v = self.w.view(rid)
        self.assertEqual(v["status"], "rejected", v)
        self.assertEqual(self.states(rid),
                         {"identity": "done", "commerce": "cancelled", "health": "cancelled"})

    def test_b_require_error_rejects_and_is_recorded(self):
        """A require that cannot be evaluated (null >= 20) or gives no
        boolean fails: recorded with its error, the request rejected."""
        for rule, answer, inputs in (("data.identity.age >= 20", {"alive": True},
                                      {"data.identity.age": None}),
                                     ("data.identity.alive", {"alive": "yes"},
                                      {"data.identity.alive": "yes"})):
            wid = self.publish(require=rule)
            rid, _ = self.submit(wid, [("json", 200, answer)])
            evs = self.wait_for(rid, "RequestRejected")
            d = of_type(evs, "LinkageCompleted", "identity")[0]["data"]
            self.assertEqual(d["rule"], rule, d)
            self.assertEqual(set(d["inputs"]), set(inputs), d)
            for v in d["inputs"].values():
                self.assertSealed(v, d)
            self.assertNotIn("result", d)
            self.assertTrue(d["error"], d)
            rej = of_type(evs, "RequestRejected")[0]["data"]
            self.assertIn("could not be evaluated", rej["reason"], rej)
            self.assertEqual(self.w.view(rid)["status"], "rejected")

    def test_c_retries_then_completes(self):
        wid = self.publish(retries=3)
        t0 = time.time()
        rid, cid = self.submit(wid, [("json", 500, {"e": 1}), ("json", 500, {"e": 2}),
                                     ("json", 200, {"alive": True})])
        evs = self.wait_for(rid, "LinkageCompleted")
        d = of_type(evs, "LinkageCompleted", "identity")[0]["data"]
        self.assertEqual(d["attempts"], 3, d)
        self.assertEqual(len(self.reg.calls_for(cid)), 3)
        ats = [c["at"] for c in self.reg.calls_for(cid)]
        # backoff 0.5 s then 1 s
        self.assertGreaterEqual(ats[1] - ats[0], 0.4, ats)
        self.assertGreaterEqual(ats[2] - ats[1], 0.9, ats)
        self.assertLess(time.time() - t0, 10)
        self.assertEqual(self.states(rid)["identity"], "done")

    def test_d_failures_reject(self):
        wid = self.publish(timeout="PT1S", retries=1)
        hang, hcid = self.submit(wid, [("hang", 4)])
        err, ecid = self.submit(wid, [("json", 500, {"e": 1})])
        for rid, cid in ((hang, hcid), (err, ecid)):
            evs = self.wait_for(rid, "RequestRejected")
            lf = of_type(evs, "LinkageFailed", "identity")
            self.assertEqual(len(lf), 1, evs)
            self.assertEqual(lf[0]["data"]["attempts"], 2, lf)
            self.assertTrue(lf[0]["data"]["error"], lf)
            self.assertEqual(of_type(evs, "LinkageCompleted"), [], evs)
            self.assertEqual(len(self.reg.calls_for(cid)), 2)
            v = self.w.view(rid)
            self.assertEqual(v["status"], "rejected", v)
            self.assertEqual(self.states(rid),
                             {"identity": "failed", "commerce": "cancelled",
                              "health": "cancelled"})
        self.assertIn("500", of_type(self.events(err), "LinkageFailed")[0]["data"]["error"])

    def test_d_no_lookup_url_fails_at_once(self):
        bare = "bare-" + uniq("a")
        r = self.plat.put("/v1/agencies/" + bare, {"name": "No lookup"})
        self.assertIn(r.status, (200, 201), r)
        wid = self.publish(agency=bare)
        rid, cid = self.submit(wid, [("json", 200, {"alive": True})])
        evs = self.events(rid)  # at once: in the submission's own events
        lf = of_type(evs, "LinkageFailed", "identity")
        self.assertEqual(len(lf), 1, evs)
        self.assertIn("lookup_url", lf[0]["data"]["error"])
        self.assertEqual(self.w.view(rid)["status"], "rejected")
        self.assertEqual(self.reg.calls_for(cid), [])

    def test_e_answer_after_withdrawal_is_dropped(self):
        wid = self.publish()
        rid, cid = self.submit(wid, [("slow", 0.8, 200, {"alive": True})])
        end = time.time() + 10
        while not self.reg.calls_for(cid) and time.time() < end:
            time.sleep(0.02)
        r = self.w.portal.post("/v1/requests/%s/withdraw" % rid, {"reason": "changed my mind"})
        self.assertEqual(r.status, 200, r)
        time.sleep(1.5)
        evs = self.events(rid)
        self.assertEqual(of_type(evs, "LinkageCompleted"), [], evs)
        self.assertEqual(evs[-1]["type"], "RequestWithdrawn", [e["type"] for e in evs])
        self.assertEqual(self.states(rid)["identity"], "cancelled")

    def test_f_kill_while_held_then_restart(self):
        wid = self.publish(timeout="PT20S", retries=0)
        rid, cid = self.submit(wid, [("hold",), ("json", 200, {"alive": True})])
        end = time.time() + 10
        while not self.reg.calls_for(cid) and time.time() < end:
            time.sleep(0.02)
        self.assertEqual(len(self.reg.calls_for(cid)), 1)
        self.server.kill()
        self.server.start()
        self.w.plat = self.plat = self.server.client(self.w.admin_token)
        for c in (self.w.portal, self.w.auditor):
            c.port = self.server.port
        for c in self.w.ag.values():
            c.port = self.server.port
        evs = self.wait_for(rid, "LinkageCompleted")
        d = of_type(evs, "LinkageCompleted", "identity")[0]["data"]
        self.assertSealed(d["answer"], d)
        self.assertEqual(d["attempts"], 1, "the attempt count restarts after a restart")
        self.assertEqual(len(self.reg.calls_for(cid)), 2)
        self.assertEqual(self.states(rid)["commerce"], "approved")

    def test_z_replay_digest_and_recheck(self):
        # Something of every kind first, so that the log holds them all.
        wid = self.publish(timeout="PT1S", retries=0)
        ok, _ = self.submit(wid, [("json", 200, {"alive": True})])
        no, _ = self.submit(wid, [("json", 200, {"alive": False})])
        bad, _ = self.submit(wid, [("json", 503, {})])
        # An auto_approve that reads a non-boolean answer: RuleFailed.
        wid2 = self.publish(require="data.identity.alive != null", auto="data.identity.alive")
        odd, _ = self.submit(wid2, [("json", 200, {"alive": "yes"})])
        for rid in (ok, no, bad):
            self.wait_for(rid, "LinkageCompleted" if rid != bad else "LinkageFailed")
        evs = self.wait_for(odd, "RuleFailed")
        self.assertEqual(of_type(evs, "RuleFailed", "commerce")[0]["data"]["error"],
                         "the result is not a boolean")
        time.sleep(0.2)
        live = self.plat.get("/v1/admin/digest")
        self.assertEqual(live.status, 200, live)
        out = subprocess.run([OSSE_BIN, "replay", "--data", self.server.data_dir, "--recheck"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        lines = out.stdout.strip().splitlines()
        self.assertIn("recheck: 0 difference(s)", lines, out.stdout)
        self.assertEqual(lines[-1], live.json["digest"], out.stdout)
        self.assertEqual(lines[-2], "events %d" % live.json["size"], out.stdout)


if __name__ == "__main__":
    main()
