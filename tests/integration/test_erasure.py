"""test_erasure.py: erasure and retention of personal data (SPEC §8), over
real HTTP.

- DELETE /v1/requests/{id}/personal-data is the platform's (403 for the
  others), 404 for an unknown request, 409 not_ended before the request
  ends, 422 for a reason missing, not a string, empty, too long or beside an
  unknown key, 400 for malformed JSON, and 409 already_erased once done;
  every refusal leaves the request's events as they were;
- after the 200, every reader's tracking view reads "[erased]" for every
  personal value and reason; the stored events keep their {"enc"};
  PersonalDataErased lists exactly the sorted paths that held a sealed value
  (form fields, a file field's sealed member, linkage answers); the export
  verifies; a restart and `osse replay` (data folder and export) show
  "[erased]" and give the live digest, and --recheck skips the erased
  request's rules;
- the request's wrapped key (its 72 bytes in <data>/keys/*.seg) is found in
  no file under the data folder after the 200, while another request's is;
- the file a pii field holds answers 410; a file of a field that is not pii
  still 200;
- a process stopped after PersonalDataErased is durable but before the key
  store's rewrite (the test hook OSSE_TEST_CRASH_BEFORE_KEY_REMOVAL, honoured
  only under a test clock, --test-clock=TIME) finishes the erasure at its next start;
- retention P30D: readable 29 days after the end, erased (reason
  "retention", once) after 31, also across restarts before and after the
  due time; an erased request is not erased again by retention.
"""

import http.client
import json
import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (assert_error, files_holding, main, OSSE_BIN, run_osse, Server, uniq,  # noqa: E402
                          World, wrapped_keys)
from test_views import Registry  # noqa: E402

CLOCK = "--test-clock=2030-01-07T09:00:00+07:00"
HOOK = "OSSE_TEST_CRASH_BEFORE_KEY_REMOVAL"


def holding(root, needle):
    return files_holding(root, [needle])[needle]


def sealed(v):
    return isinstance(v, dict) and set(v) == {"enc"} and isinstance(v["enc"], str)


def sealed_paths(events):
    """The paths that held a sealed value at the end of the request's life,
    from its stored events: form.<k> (or form.<k>.<member>) and data.<step>."""
    form = {}
    data = {}
    for ev in events:
        if ev["type"] in ("RequestSubmitted", "InfoProvided"):
            form.update(ev["data"].get("form") or {})
        if ev["type"] == "LinkageCompleted":
            data[ev["data"]["step"]] = ev["data"]["answer"]
    paths = []
    for k, v in form.items():
        if sealed(v):
            paths.append("form." + k)
        elif isinstance(v, dict):
            paths += ["form.%s.%s" % (k, m) for m, x in v.items() if sealed(x)]
    paths += ["data." + k for k, v in data.items() if sealed(v)]
    return sorted(paths)


def erasure_workflow(wid, reg, a, retention=None):
    d = {
        "id": wid, "title": "Erasure",
        "form": {
            "applicant_name": {"type": "string", "required": True, "pii": True},
            "income": {"type": "number", "required": True, "pii": True},
            "business_name": {"type": "string", "required": True},
            "id_card": {"type": "file", "pii": True},
            "plan": {"type": "file"},
        },
        "steps": {
            "identity": {"kind": "linkage", "agency": reg,
                         "input": {"name": "form.applicant_name"},
                         "require": "data.identity.alive == true", "timeout": "PT5S"},
            "screen": {"kind": "task", "agency": a, "after": ["identity"],
                       "auto_approve": "form.income >= 100"},
            "review": {"kind": "task", "agency": a, "after": ["screen"]},
        },
    }
    if retention:
        d["retention"] = retention
    return d


def simple_workflow(wid, a, retention):
    return {
        "id": wid, "title": "Retention",
        "retention": retention,
        "form": {"applicant_name": {"type": "string", "required": True, "pii": True},
                 "business_name": {"type": "string", "required": True}},
        "steps": {"review": {"kind": "task", "agency": a}},
    }


class Base(unittest.TestCase):
    env = None

    def setUp(self):
        self.reg = Registry({"alive": True, "address": "Registryaddress-1"})
        self.server = Server(extra_args=[CLOCK, "--allow-private-urls"]).start()
        self.w = World(self.server)
        self.regag = "reg-" + uniq("a")
        r = self.w.plat.put("/v1/agencies/" + self.regag,
                            {"name": "Registry", "lookup_url": self.reg.url})
        self.assertIn(r.status, (200, 201), r)

    def tearDown(self):
        # A clean stop exits 0 (sanitizer builds report leaks there).
        try:
            if self.server.alive():
                self.assertEqual(self.server.stop(), 0, self.server.stderr_tail())
        finally:
            self.server.cleanup()
            self.reg.close()

    def restart(self, env=None):
        """Stops (SIGTERM) and starts the server on the same data; clients
        are made anew (the port changes)."""
        srv = self.server
        if srv.alive():
            self.assertEqual(srv.stop(), 0, srv.stderr_tail())
        old = dict(os.environ)
        try:
            os.environ.pop(HOOK, None)
            if env:
                os.environ.update(env)
            srv.start()
        finally:
            os.environ.clear()
            os.environ.update(old)
        for name in ("plat", "portal", "portal2", "auditor", "payment", "anon"):
            setattr(self.w, name, srv.client(getattr(self.w, name).token))
        for a in list(self.w.ag):
            self.w.ag[a] = srv.client(self.w.ag[a].token)

    def events(self, rid, client=None):
        r = (client or self.w.plat).get("/v1/requests/%s/events" % rid)
        self.assertEqual(r.status, 200, r)
        return r.json["events"]

    def wait_step(self, rid, step, states=("done",)):
        for _ in range(200):
            v = self.w.view(rid)
            s = [x for x in v["steps"] if x["name"] == step][0]
            if s["state"] in states:
                return v
            time.sleep(0.05)
        self.fail("step %s of %s never reached %s: %s" % (step, rid, states, v))

    def upload(self, data, name):
        r = self.w.portal.post("/v1/files", raw=data, content_type="application/pdf",
                               headers={"Osse-Filename": name})
        self.assertEqual(r.status, 201, r)
        return r.json["id"]

    def ended_request(self, wid, reason="Rejectreason-x"):
        """A request of erasure_workflow, rejected by its reviewer with a
        reason: (request id, its id_card file id, its plan file id)."""
        card = self.upload(b"%PDF-card " + uniq("c").encode(), "Cardname-" + uniq("n") + ".pdf")
        plan = self.upload(b"%PDF-plan " + uniq("p").encode(), "plan.pdf")
        form = {"applicant_name": "Markername-" + uniq("n"), "income": 4321.5,
                "business_name": "Plainshop", "id_card": card, "plan": plan}
        rid = self.w.submit(wid, form)["id"]
        self.wait_step(rid, "review", ("open",))
        self.w.decide(rid, "review", "reject", agency=self.w.A, reason=reason)
        self.assertEqual(self.w.view(rid)["status"], "rejected")
        return rid, card, plan

    def erase(self, rid, reason="The applicant asked (PDPA s.33)", client=None, **kw):
        return (client or self.w.plat).call("DELETE", "/v1/requests/%s/personal-data" % rid,
                                            {"reason": reason}, **kw)


class Erasure(Base):

    def assert_erased_view(self, v, who):
        f = v["form"]
        self.assertEqual(f["applicant_name"], "[erased]", who)
        self.assertEqual(f["income"], "[erased]", who)
        self.assertEqual(f["business_name"], "Plainshop", who)
        card = f["id_card"]
        self.assertTrue(card == "[erased]" or (isinstance(card, dict) and
                                               card.get("name") == "[erased]"), (who, card))
        self.assertEqual(v["reason"], "[erased]", who)
        review = [s for s in v["steps"] if s["name"] == "review"][0]
        self.assertEqual(review["reason"], "[erased]", who)
        self.assertNotIn('"enc"', json.dumps(v), who)
        self.assertNotIn("Markername", json.dumps(v), who)

    def test_refusals_then_erasure(self):
        w, srv = self.w, self.server
        wid = uniq("er")
        w.publish(erasure_workflow(wid, self.regag, w.A))
        # Not ended: 409 not_ended, nothing changes.
        open_rid = w.submit(wid, {"applicant_name": "Openname", "income": 5,
                                  "business_name": "Plainshop"})["id"]
        self.wait_step(open_rid, "screen", ("open",))
        before = self.events(open_rid)
        assert_error(self, self.erase(open_rid), 409, "not_ended")
        self.assertEqual(self.events(open_rid), before)

        rid, card, plan = self.ended_request(wid)
        other, other_card, _ = self.ended_request(wid)
        before = self.events(rid)
        version = w.view(rid)["version"]

        for who, client in (("portal", w.portal), ("agency", w.ag[w.A]),
                            ("auditor", w.auditor), ("payment", w.payment)):
            assert_error(self, self.erase(rid, client=client), 403, "forbidden", who)
        assert_error(self, self.erase(rid, client=w.anon), 401, "unauthorized")
        assert_error(self, self.erase("r-nosuch"), 404, "not_found")
        path = "/v1/requests/%s/personal-data" % rid
        for body in ({}, {"reason": None}, {"reason": 5}, {"reason": ""}, {"reason": ["x"]},
                     {"reason": "x" * 1001}, {"reason": "ok", "extra": 1}):
            assert_error(self, w.plat.call("DELETE", path, body), 422, "invalid_request",
                         repr(body)[:60])
        r = w.plat.call("DELETE", path, raw=b"{")
        assert_error(self, r, 400)
        r = w.plat.call("DELETE", path)
        assert_error(self, r, 422, "invalid_request")
        self.assertEqual(self.events(rid), before, "every refusal changes nothing")
        self.assertEqual(w.view(rid)["version"], version)

        key = wrapped_keys(srv.data_dir)[rid]
        other_key = wrapped_keys(srv.data_dir)[other]
        card_key = wrapped_keys(srv.data_dir)[card]
        self.assertTrue(holding(srv.data_dir, card_key), "a file's key is filed")
        self.assertEqual(len(key), 72)
        self.assertTrue(holding(srv.data_dir, key), "the search can find the key")

        # The erasure, with an Idempotency-Key.
        reason = "The applicant asked (PDPA s.33) " + "x" * 900
        r = self.erase(rid, reason, headers={"Idempotency-Key": "erase-" + rid})
        self.assertEqual(r.status, 200, r)
        want = sealed_paths(before)
        self.assertIn("form.applicant_name", want)
        self.assertIn("form.income", want)
        self.assertIn("data.identity", want)
        self.assertTrue("form.id_card" in want or "form.id_card.name" in want, want)
        self.assertNotIn("form.business_name", want)
        self.assertEqual(r.json, {"id": rid, "status": "rejected", "fields": want,
                                  "reason": reason, "version": version + 1})
        again = self.erase(rid, reason, headers={"Idempotency-Key": "erase-" + rid})
        self.assertEqual((again.status, again.json), (200, r.json), "the same key: the answer")
        self.assertEqual(again.headers.get("idempotent-replayed"), "true")
        assert_error(self, self.erase(rid), 409, "already_erased")

        # The key left the filesystem: in no file under the data folder.
        self.assertEqual(holding(srv.data_dir, key), [])
        self.assertNotIn(rid, wrapped_keys(srv.data_dir))
        self.assertTrue(holding(srv.data_dir, other_key), "another request keeps its key")
        # The pii field's file key went with the request's; a file of a
        # field that is not pii keeps its key, as another request's file.
        keys = wrapped_keys(srv.data_dir)
        self.assertEqual(holding(srv.data_dir, card_key), [], "the pii file's key")
        self.assertNotIn(card, keys)
        self.assertIn(plan, keys)
        self.assertIn(other_card, keys)

        # Every reader: "[erased]".
        for who, client in (("portal", w.portal), ("platform", w.plat), ("agency", w.ag[w.A]),
                            ("auditor", w.auditor)):
            v = w.view(rid, client)
            self.assert_erased_view(v, who)
            self.assertIn("erased_at", v)
        self.assertEqual(w.view(other, w.plat)["reason"], "Rejectreason-x")
        self.assertEqual(w.view(other, w.auditor)["reason"], "[withheld]")

        # The stored events: the same ciphertext, then one PersonalDataErased.
        after = self.events(rid)
        self.assertEqual(after[:len(before)], before)
        self.assertEqual([e["type"] for e in after[len(before):]], ["PersonalDataErased"])
        pde = after[-1]
        self.assertEqual(pde["data"], {"fields": want, "reason": reason})
        self.assertEqual(pde["actor"]["kind"], "platform")
        self.assertTrue(sealed(after[0]["data"]["form"]["applicant_name"]))

        # Files: the pii field's is gone, the other field's and another
        # request's are there.
        for client in (w.plat, w.portal):
            assert_error(self, client.get("/v1/files/" + card), 410, "gone")
        self.assertEqual(w.plat.get("/v1/files/" + plan).status, 200)
        self.assertEqual(w.plat.get("/v1/files/" + other_card).status, 200)

        live = w.plat.get("/v1/admin/digest").json
        pub = w.anon.get("/v1/log/public-key").json["verifier_key"]
        data = srv.data_dir
        self.assertEqual(srv.stop(), 0)
        self.assertEqual(holding(data, key), [])
        with tempfile.TemporaryDirectory() as tmp:
            exp = os.path.join(tmp, "log.bin")
            with open(exp, "wb") as f:
                f.write(run_osse("export", "--data", data).stdout)
            run_osse("verify", exp, "--key", pub)
            for args in (["--data", data], [exp, "--key", pub]):
                out = run_osse("replay", *args, "--recheck").stdout.decode().splitlines()
                self.assertEqual(out[-1], live["digest"], (args, out))
                self.assertIn("recheck: 0 difference(s)", out)
                # identity's require read data.identity, screen's
                # auto_approve form.income: the erased request's two are
                # skipped, the others' not checkable.
                self.assertIn("recheck: 2 rule(s) skipped: their requests' personal data was "
                              "erased", out)
                self.assertTrue(any("rule(s) not checkable" in ln for ln in out), out)

        # After a restart: the same.
        self.restart()
        self.assert_erased_view(w.view(rid, w.portal), "portal after restart")
        self.assertEqual(w.plat.get("/v1/admin/digest").json["digest"], live["digest"])
        assert_error(self, w.plat.get("/v1/files/" + card), 410, "gone")
        assert_error(self, self.erase(rid), 409, "already_erased")
        self.assertEqual(w.view(other)["form"]["income"], 4321.5, "others still open")

    def test_interrupted_erasure_is_finished_at_start(self):
        w, srv = self.w, self.server
        wid = uniq("er")
        w.publish(erasure_workflow(wid, self.regag, w.A))
        rid, card, _ = self.ended_request(wid)
        key = wrapped_keys(srv.data_dir)[rid]
        card_key = wrapped_keys(srv.data_dir)[card]
        self.restart(env={HOOK: "1"})
        try:
            r = self.erase(rid)
            self.fail("the hook should have stopped the server: %s" % r)
        except (ConnectionError, OSError, http.client.HTTPException):
            pass
        for _ in range(200):
            if not srv.alive():
                break
            time.sleep(0.05)
        self.assertFalse(srv.alive())
        self.assertEqual(srv.proc.returncode, 137)
        srv._close_pipe()
        # The event is durable, the key still filed.
        self.assertTrue(holding(srv.data_dir, key), "the window: the key is still there")
        self.restart()
        self.assertEqual(holding(srv.data_dir, key), [], "the start finished the erasure")
        self.assertEqual(holding(srv.data_dir, card_key), [], "and the pii file's key")
        self.assertNotIn(rid, wrapped_keys(srv.data_dir))
        self.assertNotIn(card, wrapped_keys(srv.data_dir))
        evs = self.events(rid)
        self.assertEqual([e["type"] for e in evs].count("PersonalDataErased"), 1)
        for client in (w.portal, w.plat, w.auditor):
            v = w.view(rid, client)
            self.assertEqual(v["form"]["applicant_name"], "[erased]")
            self.assertEqual(v["reason"], "[erased]")
        assert_error(self, w.plat.get("/v1/files/" + card), 410, "gone")
        assert_error(self, self.erase(rid), 409, "already_erased")


class Retention(Base):

    def clock(self, advance):
        r = self.w.plat.post("/v1/test/clock", {"advance": advance})
        self.assertEqual(r.status, 200, r)

    def erasures(self, rid):
        return [e for e in self.events(rid) if e["type"] == "PersonalDataErased"]

    def new_request(self, wid, end=True):
        rid = self.w.submit(wid, {"applicant_name": "Markername-" + uniq("n"),
                                  "business_name": "Plainshop"})["id"]
        if end:
            self.w.decide(rid, "review", "approve", agency=self.w.A)
            self.assertEqual(self.w.view(rid)["status"], "completed")
        return rid

    def wait_key_gone(self, rid):
        for _ in range(200):
            if rid not in wrapped_keys(self.server.data_dir):
                return
            time.sleep(0.05)
        self.fail("the key of %s stays in the key store" % rid)

    def test_definition_key(self):
        w = self.w
        for bad in ("P0D", "PT59M", "5 working days", 30, "soon"):
            d = simple_workflow(uniq("rt"), w.A, bad)
            r = w.plat.post("/v1/workflows", d)
            self.assertEqual(r.status, 422, (bad, r))
            self.assertIn("retention", json.dumps(r.json), r)
        for good in ("PT1H", "P30D", "P5Y"):
            d = simple_workflow(uniq("rt"), w.A, good)
            self.assertEqual(w.plat.post("/v1/workflows", d).status, 201, good)

    def test_retention_erases_once(self):
        w = self.w
        d = simple_workflow(uniq("rt"), w.A, "P30D")
        w.publish(d)
        rid = self.new_request(d["id"])
        more = [self.new_request(d["id"]) for _ in range(3)]
        erased_first = self.new_request(d["id"])
        still_open = self.new_request(d["id"], end=False)
        self.assertEqual(self.erase(erased_first).status, 200)
        key = wrapped_keys(self.server.data_dir)[rid]

        self.clock("P29D")
        v = w.view(rid, w.portal)
        self.assertTrue(v["form"]["applicant_name"].startswith("Markername-"), v)
        self.assertEqual(self.erasures(rid), [])

        # A restart between the end and the due time: the timer survives.
        self.restart()
        self.clock("P2D")
        evs = self.erasures(rid)
        self.assertEqual(len(evs), 1, evs)
        self.assertEqual(evs[0]["data"], {"fields": ["form.applicant_name"],
                                          "reason": "retention"})
        self.assertEqual(evs[0]["actor"]["kind"], "system")
        # Stamped with its due time: 30 days after the end.
        ended = [e for e in self.events(rid) if e["type"] == "RequestCompleted"][0]["at"]
        self.assertEqual(evs[0]["at"][:10], "2030-02-06", (ended, evs[0]["at"]))
        for client in (w.portal, w.plat, w.auditor):
            self.assertEqual(w.view(rid, client)["form"]["applicant_name"], "[erased]")
        self.wait_key_gone(rid)
        self.assertEqual(holding(self.server.data_dir, key), [])
        # Erasures due together leave the key store in one rewrite.
        for x in more:
            self.assertEqual(len(self.erasures(x)), 1)
            self.wait_key_gone(x)
        with open(self.server.log_path, encoding="utf-8", errors="replace") as fh:
            self.assertIn("requests=4 keys=4", fh.read())
        self.assertEqual(len(self.erasures(erased_first)), 1, "no second erasure by retention")
        self.assertEqual(self.erasures(still_open), [], "not ended: not erased")

        # Restarts and more time: nothing more.
        self.restart()
        self.clock("P400D")
        self.restart()
        self.clock("PT1H")
        self.assertEqual(len(self.erasures(rid)), 1)
        self.assertEqual(len(self.erasures(erased_first)), 1)
        self.assertEqual(self.erasures(still_open), [])

    def test_due_while_stopped(self):
        """Due while the server was down: fires at the next start's first
        move of the clock (the clock resumes where it stood)."""
        w = self.w
        d = simple_workflow(uniq("rt"), w.A, "PT2H")
        w.publish(d)
        rid = self.new_request(d["id"])
        self.restart()
        self.clock("PT3H")
        self.assertEqual(len(self.erasures(rid)), 1)
        self.assertEqual(w.view(rid)["form"]["applicant_name"], "[erased]")


if __name__ == "__main__":
    main()
