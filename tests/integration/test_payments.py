"""test_payments.py: fees over real HTTP (SPEC §2 payment steps, §3
biller_id, §4 POST /v1/requests/{id}/payments and the tracking view's fee).

Each test class starts its own `osse serve --test-clock=2030-01-07T09:00:00+07:00`
on a fresh data directory; the clock moves only by POST /v1/test/clock.

What is checked:
- a payment step's sla must be wall-clock (422 at publish);
- biller_id on agencies: optional, exactly 15 digits, anything else 422
  with nothing written; shown by GET and PUT;
- a fee computed from the form (500 + 2 x seats): PaymentDue with amount,
  amount_satang, a reference [A-Z0-9]{12,20} and a Thai QR payload that
  independent code here parses (TLV, tag order, nested tag 30, the
  CRC-16/CCITT-FALSE recomputed) and checks against the amount, the
  reference and the agency's biller id; the request awaits payment and the
  tracking view's fee says so;
- without a collecting agency, or one without a biller id: qr null;
- POST .../payments in SPEC §4's order: bad shapes 422 (unknown field,
  types, amount format) with nothing written, 409 before the step opens,
  422 amount_mismatch and reference_mismatch, success (PaymentReceived by
  the payment principal, the request moves on to the licence and
  completes), the same transaction again answered as the first with
  nothing written (events and version unchanged) whatever the body, a
  second transaction for the paid step 409, a transaction reused on
  another request 409, a refused call leaving its transaction unused;
- an unpaid fee expiring on the test clock (on_breach: expire): the
  request expires, a payment then 409;
- an amount of 0: done at once, "0.00", no qr; a negative amount fails the
  step and ends the request;
- the route is the payment role's only (403 for the others, 401 without a
  token);
- `osse replay` of the data folder gives the live digest.

Python standard library only.
"""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from osse_harness import (FORM_FIELDS, Server, World, assert_error, detail_paths,  # noqa: E402
                          good_form, log_events, main, metric, run_osse, step_of, uniq)

START = "2030-01-07T09:00:00+07:00"
BILLER = "099400016550100"


# -- an independent reading of the Thai QR payload ---------------------------

def crc16_ccitt_false(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def tlv(s):
    """'000201...' -> [(tag, value), ...]; fails on a malformed list."""
    out, i = [], 0
    while i < len(s):
        tag, n = s[i:i + 2], s[i + 2:i + 4]
        assert re.fullmatch(r"\d\d", tag) and re.fullmatch(r"\d\d", n), (s, i)
        n = int(n)
        value = s[i + 4:i + 4 + n]
        assert len(value) == n, (s, i)
        out.append((tag, value))
        i += 4 + n
    return out


def check_qr(tc, qr, biller, reference, amount):
    tc.assertIsInstance(qr, str)
    fields = tlv(qr)
    tags = [t for t, _ in fields]
    tc.assertEqual(tags[:3], ["00", "01", "30"], qr)
    tc.assertEqual(tags[-1], "63", qr)
    # The tags SPEC names, in its order (others may only come before 63).
    named = [t for t in tags if t in ("00", "01", "30", "53", "54", "58", "63")]
    tc.assertEqual(named, ["00", "01", "30", "53", "54", "58", "63"], qr)
    d = dict(fields)
    tc.assertEqual(d["00"], "01")
    tc.assertEqual(d["01"], "12")
    sub = tlv(d["30"])
    tc.assertEqual(sub[:3], [("00", "A000000677010112"), ("01", biller), ("02", reference)], qr)
    tc.assertEqual(d["53"], "764")
    tc.assertEqual(d["54"], amount)
    tc.assertEqual(d["58"], "TH")
    tc.assertRegex(d["63"], r"^[0-9A-F]{4}$")
    tc.assertTrue(qr.endswith("6304" + d["63"]))
    tc.assertEqual(int(d["63"], 16), crc16_ccitt_false(qr[:-4].encode()), qr)


def fee_workflow(wid, collector, amount="500 + 2 * (form.seats ?? 0)", sla=None,
                 on_breach=None, reviewer=None):
    """review (task, optional) -> fee (payment) -> licence (issue)."""
    steps = {}
    after = []
    if reviewer:
        steps["review"] = {"kind": "task", "agency": reviewer}
        after = ["review"]
    fee = {"kind": "payment", "amount": amount, "after": after}
    if collector:
        fee["agency"] = collector
    if sla:
        fee["sla"] = sla
    if on_breach:
        fee["on_breach"] = on_breach
    steps["fee"] = fee
    steps["licence"] = {"kind": "issue", "after": ["fee"], "valid_for": "P1Y",
                        "number": "PAY%s-{seq:6}" % wid.split("-")[-1].upper()}
    return {"id": wid, "title": "Fee test", "form": FORM_FIELDS, "steps": steps}


def events_of(client, rid):
    r = client.get("/v1/requests/%s/events" % rid)
    assert r.status == 200, r
    return r.json["events"]


def of_type(events, typ):
    return [e for e in events if e["type"] == typ]


class PaymentCase(unittest.TestCase):
    """One server for the class, on the fixed test clock."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server(extra_args=["--test-clock=" + START]).start()
        cls.w = World(cls.server)
        cls.plat = cls.w.plat
        r = cls.plat.put("/v1/agencies/" + cls.w.A, {"name": "Collector", "biller_id": BILLER})
        assert r.status == 200, r

    @classmethod
    def tearDownClass(cls):
        srv = cls.server
        rc = srv.stop() if srv.alive() else "dead"
        if rc != 0:
            srv.own_dir = False
        srv.cleanup()
        if rc != 0:
            raise AssertionError("osse exited with %s:\n%s" % (rc, srv.stderr_tail(60)))

    def publish(self, **kw):
        wid = uniq("pay")
        self.w.publish(fee_workflow(wid, **kw))
        return wid

    def pay(self, rid, body, client=None):
        return (client or self.w.payment).post("/v1/requests/%s/payments" % rid, body)

    def due(self, rid):
        evs = of_type(events_of(self.plat, rid), "PaymentDue")
        self.assertEqual(len(evs), 1, evs)
        return evs[0]["data"]

    # -- biller_id ---------------------------------------------------------

    def test_a_biller_id(self):
        ag = uniq("bill")
        r = self.plat.put("/v1/agencies/" + ag, {"name": "Biller", "biller_id": BILLER})
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json["biller_id"], BILLER)
        self.assertEqual(self.plat.get("/v1/agencies/" + ag).json["biller_id"], BILLER)
        size = self.w.log_size()
        for bad in ("09940001655010", "0994000165501000", "09940001655010A", 99400016550100,
                    "", " 099400016550100", "٠٩٩٤٠٠٠١٦٥٥٠١٠٠"):
            r = self.plat.put("/v1/agencies/" + ag, {"name": "Biller", "biller_id": bad})
            assert_error(self, r, 422)
            self.assertIn("biller_id", detail_paths(r), r)
        self.assertEqual(self.w.log_size(), size, "a refused PUT wrote something")
        # Optional: without it the agency has none.
        r = self.plat.put("/v1/agencies/" + ag, {"name": "Biller"})
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.json.get("biller_id"))

    def test_a_payment_sla_is_wall_clock(self):
        d = fee_workflow(uniq("pay"), collector=self.w.A, sla="5 working days",
                         on_breach="expire")
        d["calendar"] = "th-gov"
        r = self.plat.post("/v1/workflows", d)
        assert_error(self, r, 422, "invalid_definition")
        self.assertIn("steps.fee.sla", detail_paths(r), r)

    # -- the fee and its QR ------------------------------------------------

    def test_b_fee_due_with_qr(self):
        wid = self.publish(collector=self.w.A)
        rid = self.w.submit(wid, good_form(seats=10))["id"]
        v = self.w.view(rid)
        self.assertEqual(v["status"], "awaiting_payment")
        self.assertEqual(step_of(v, "fee")["state"], "open")
        d = self.due(rid)
        self.assertEqual(d["step"], "fee")
        self.assertEqual(d["amount"], "520.00")
        self.assertEqual(d["amount_satang"], 52000)
        self.assertRegex(d["reference"], r"^[A-Z0-9]{12,20}$")
        check_qr(self, d["qr"], BILLER, d["reference"], "520.00")
        self.assertEqual(v["fee"], {"amount": "520.00", "paid": False,
                                    "reference": d["reference"], "qr": d["qr"]})
        # The public tracking view shows the fee too (no personal data in it).
        t = self.w.anon.get("/v1/track/" + v["tracking_code"])
        self.assertEqual(t.status, 200, t)
        self.assertEqual(t.json["fee"], v["fee"])
        # References differ between requests.
        rid2 = self.w.submit(wid, good_form(seats=10))["id"]
        self.assertNotEqual(self.due(rid2)["reference"], d["reference"])

    def test_c_no_qr_without_biller(self):
        for collector in (None, self.w.B):  # B has no biller_id
            wid = self.publish(collector=collector)
            rid = self.w.submit(wid, good_form(seats=1))["id"]
            d = self.due(rid)
            self.assertEqual(d["amount"], "502.00")
            self.assertIsNone(d["qr"])
            self.assertRegex(d["reference"], r"^[A-Z0-9]{12,20}$")
            self.assertEqual(self.w.view(rid)["fee"]["qr"], None)

    # -- the payment call --------------------------------------------------

    def test_d_payment_order_of_checks(self):
        wid = self.publish(collector=self.w.A, reviewer=self.w.B)
        rid = self.w.submit(wid, good_form(seats=10))["id"]
        base = {"step": "fee", "amount": "520.00", "reference": "ABCDEFGHJKLMN234",
                "transaction": uniq("tx")}
        # Before the fee is due: 409, naming the state.
        r = self.pay(rid, base)
        assert_error(self, r, 409)
        self.assertIn("pending", r.json["error"]["message"])
        self.w.decide(rid, "review", "approve")
        d = self.due(rid)
        ref = d["reference"]
        tx = uniq("tx")
        good = {"step": "fee", "amount": "520.00", "reference": ref, "transaction": tx}
        v0 = self.w.view(rid)["version"]
        size = self.w.log_size()
        # Shapes.
        for bad, path in ((dict(good, extra=1), "extra"),
                          (dict(good, amount=520), "amount"),
                          (dict(good, amount="520"), "amount"),
                          (dict(good, amount="520.0"), "amount"),
                          (dict(good, amount="-520.00"), "amount"),
                          (dict(good, amount="520.00 "), "amount"),
                          (dict(good, amount="1e3.00"), "amount"),
                          (dict(good, reference=7), "reference"),
                          (dict(good, step=None), "step"),
                          (dict(good, step="licence"), "step"),
                          (dict(good, step="nope"), "step"),
                          (dict(good, transaction=""), "transaction"),
                          (dict(good, transaction=5), "transaction"),
                          (dict(good, transaction="x" * 129), "transaction"),
                          ({k: v for k, v in good.items() if k != "reference"}, "reference")):
            r = self.pay(rid, bad)
            assert_error(self, r, 422, msg=(bad, r))
            self.assertIn(path, detail_paths(r), (bad, r))
        assert_error(self, self.pay(rid, [good]), 422)
        # Mismatches.
        r = self.pay(rid, dict(good, amount="521.00"))
        assert_error(self, r, 422, "amount_mismatch")
        r = self.pay(rid, dict(good, amount="52.00"))
        assert_error(self, r, 422, "amount_mismatch")
        r = self.pay(rid, dict(good, reference=ref[:-1] + ("A" if ref[-1] != "A" else "B")))
        assert_error(self, r, 422, "reference_mismatch")
        r = self.pay(rid, dict(good, reference=ref.lower()))
        assert_error(self, r, 422, "reference_mismatch")
        # Both wrong: the amount is checked first.
        r = self.pay(rid, dict(good, amount="1.00", reference="X" * 16))
        assert_error(self, r, 422, "amount_mismatch")
        # Not the payment role.
        for client in (self.w.portal, self.plat, self.w.ag[self.w.A], self.w.auditor):
            assert_error(self, self.pay(rid, good, client=client), 403)
        assert_error(self, self.pay(rid, good, client=self.w.anon), 401)
        self.assertEqual(self.w.log_size(), size, "a refused payment wrote something")
        self.assertEqual(self.w.view(rid)["version"], v0)

        # Success: the refused calls did not use up tx.
        r = self.pay(rid, good)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(set(r.json), {"id", "status", "fee"}, r)
        self.assertEqual(r.json["id"], rid)
        self.assertEqual(r.json["status"], "completed")
        self.assertEqual(r.json["fee"], {"amount": "520.00", "paid": True, "reference": ref,
                                         "qr": d["qr"]})
        first = r.json
        evs = events_of(self.plat, rid)
        pr = of_type(evs, "PaymentReceived")
        self.assertEqual(len(pr), 1, evs)
        self.assertEqual(pr[0]["data"], {"step": "fee", "amount": "520.00", "reference": ref,
                                         "transaction": tx})
        self.assertEqual(pr[0]["actor"]["kind"], "payment")
        v = self.w.view(rid)
        self.assertEqual(step_of(v, "fee")["state"], "done")
        self.assertEqual(step_of(v, "licence")["state"], "done")
        self.assertEqual(v["status"], "completed")
        self.assertTrue(v["fee"]["paid"])
        self.assertIsNotNone(v["licence"])
        self.assertNotIn("form", r.json)

        # The same transaction again: the first answer, nothing written, even
        # with another body.
        size, version = self.w.log_size(), v["version"]
        for body in (good, dict(good, amount="1.00"), dict(good, step="x", extra=1),
                     {"transaction": tx}):
            r = self.pay(rid, body)
            self.assertEqual((r.status, r.json), (200, first), (body, r))
        self.assertEqual(self.w.log_size(), size)
        self.assertEqual(self.w.view(rid)["version"], version)
        self.assertEqual(len(events_of(self.plat, rid)), len(evs))

        # Another transaction for the paid step: 409.
        r = self.pay(rid, dict(good, transaction=uniq("tx")))
        assert_error(self, r, 409)
        self.assertIn("done", r.json["error"]["message"])

        # The transaction on another request: 409 transaction_reused.
        rid2 = self.w.submit(wid, good_form(seats=10))["id"]
        self.w.decide(rid2, "review", "approve")
        ref2 = self.due(rid2)["reference"]
        size2 = self.w.log_size()
        r = self.pay(rid2, dict(good, reference=ref2))
        assert_error(self, r, 409, "transaction_reused")
        self.assertEqual(self.w.log_size(), size2)
        self.assertEqual(self.w.view(rid2)["status"], "awaiting_payment")
        # Another payment principal may use the same gateway id.
        other = self.server.client(self.w.principal("payment")["token"])
        r = self.pay(rid2, dict(good, reference=ref2), client=other)
        self.assertEqual((r.status, r.json["status"]), (200, "completed"), r)
        # 404 for an unknown request.
        assert_error(self, self.pay("r-nope", good), 404)

    def test_e_fee_expires(self):
        wid = self.publish(collector=self.w.A, sla="P30D", on_breach="expire")
        rid = self.w.submit(wid, good_form(seats=0))["id"]
        d = self.due(rid)
        self.assertEqual(d["amount"], "500.00")
        r = self.plat.post("/v1/test/clock", {"advance": "P29D"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.w.view(rid)["status"], "awaiting_payment")
        r = self.plat.post("/v1/test/clock", {"advance": "P2D"})
        self.assertEqual(r.status, 200, r)
        v = self.w.view(rid)
        self.assertEqual(v["status"], "expired")
        self.assertEqual(step_of(v, "fee")["state"], "cancelled")
        self.assertFalse(v["fee"]["paid"])
        size = self.w.log_size()
        r = self.pay(rid, {"step": "fee", "amount": "500.00", "reference": d["reference"],
                           "transaction": uniq("tx")})
        assert_error(self, r, 409)
        self.assertIn("expired", r.json["error"]["message"])
        self.assertEqual(self.w.log_size(), size)

    def test_f_zero_and_negative(self):
        wid = self.publish(collector=self.w.A, amount="form.seats * 0")
        rid = self.w.submit(wid, good_form(seats=3))["id"]
        d = self.due(rid)
        self.assertEqual((d["amount"], d["amount_satang"], d["qr"]), ("0.00", 0, None))
        v = self.w.view(rid)
        self.assertEqual(step_of(v, "fee")["state"], "done")
        self.assertEqual(v["status"], "completed")
        self.assertEqual(v["fee"]["amount"], "0.00")
        self.assertTrue(v["fee"]["paid"])
        self.assertIsNone(v["fee"]["qr"])
        r = self.pay(rid, {"step": "fee", "amount": "0.00", "reference": "X" * 16,
                           "transaction": uniq("tx")})
        assert_error(self, r, 409)

        wid = self.publish(collector=self.w.A, amount="100 - form.seats * 10")
        rid = self.w.submit(wid, good_form(seats=11))["id"]
        v = self.w.view(rid)
        self.assertEqual(step_of(v, "fee")["state"], "failed")
        self.assertEqual(v["status"], "rejected")
        self.assertEqual(of_type(events_of(self.plat, rid), "PaymentDue"), [])
        self.assertEqual(len(of_type(events_of(self.plat, rid), "StepFailed")), 1)

    def test_z_replay_digest(self):
        # After everything above (tests run in name order).
        live = self.plat.get("/v1/admin/digest").json
        out = run_osse("replay", "--data", self.server.data_dir).stdout.decode().split()
        self.assertEqual(out[-1], live["digest"])


class PaymentRestart(unittest.TestCase):
    """The transaction index is a projection: after a kill -9 a retried
    callback is still answered as the first, and a reused one refused."""

    def test_restart_keeps_transactions(self):
        srv = Server(extra_args=["--test-clock=" + START]).start()
        try:
            w = World(srv)
            r = w.plat.put("/v1/agencies/" + w.A, {"name": "Collector", "biller_id": BILLER})
            self.assertEqual(r.status, 200, r)
            wid = uniq("pay")
            w.publish(fee_workflow(wid, collector=w.A))
            rid = w.submit(wid, good_form(seats=5))["id"]
            rid2 = w.submit(wid, good_form(seats=5))["id"]
            ref = of_type(events_of(w.plat, rid), "PaymentDue")[0]["data"]["reference"]
            body = {"step": "fee", "amount": "510.00", "reference": ref, "transaction": "T-1"}
            first = w.payment.post("/v1/requests/%s/payments" % rid, body)
            self.assertEqual(first.status, 200, first)
            size = w.log_size()
            srv.kill()
            srv.start()
            pay = srv.client(w.payment.token)
            plat = srv.client(srv.admin_token())
            r = pay.post("/v1/requests/%s/payments" % rid, body)
            self.assertEqual((r.status, r.json), (200, first.json))
            r = pay.post("/v1/requests/%s/payments" % rid2, body)
            assert_error(self, r, 409, "transaction_reused")
            self.assertEqual(log_events(plat)[-1]["seq"], size)
        finally:
            srv.kill()
            srv.cleanup()

    def inspected_fee(self, w, tx, expires=True):
        """fee -> inspect (a task of w.A) -> licence, one request of it:
        (its id, the payment's body for transaction tx)."""
        wid = uniq("pay")
        d = fee_workflow(wid, collector=None)
        d["steps"]["inspect"] = {"kind": "task", "agency": w.A, "after": ["fee"]}
        d["steps"]["licence"]["after"] = ["inspect"]
        if not expires:
            d["steps"]["licence"].pop("valid_for")  # no expiry to keep it in memory
        w.publish(d)
        rid = w.submit(wid, good_form(seats=5))["id"]
        ref = of_type(events_of(w.plat, rid), "PaymentDue")[0]["data"]["reference"]
        return rid, {"step": "fee", "amount": "510.00", "reference": ref, "transaction": tx}

    def test_a_retry_answers_the_first_status_after_the_request_moved_on(self):
        """fee -> inspect (a task) -> licence: the payment answers
        in_progress (the inspection opened); once the inspection approved
        and the request completed, a retried callback still answers
        in_progress, also after a kill -9, and writes nothing."""
        srv = Server(extra_args=["--test-clock=" + START]).start()
        try:
            w = World(srv)
            rid, body = self.inspected_fee(w, "T-9")
            first = w.payment.post("/v1/requests/%s/payments" % rid, body)
            self.assertEqual((first.status, first.json["status"]), (200, "in_progress"), first)
            w.decide(rid, "inspect", "approve")
            self.assertEqual(w.view(rid)["status"], "completed")
            size = w.log_size()
            r = w.payment.post("/v1/requests/%s/payments" % rid, body)
            self.assertEqual((r.status, r.json), (200, first.json))
            srv.kill()
            srv.start()
            pay = srv.client(w.payment.token)
            r = pay.post("/v1/requests/%s/payments" % rid, body)
            self.assertEqual((r.status, r.json), (200, first.json))
            self.assertEqual(log_events(srv.client(srv.admin_token()))[-1]["seq"], size)
        finally:
            srv.kill()
            srv.cleanup()

    def test_an_open_request_answers_its_first_status_after_a_restart(self):
        """fee -> inspect (a task): the payment answers in_progress; the
        inspection returns the request to the applicant (awaiting_info),
        and a retried callback still answers in_progress, also after a
        kill -9, when the answer is read from disk on demand (a start reads
        none: osse_payment_answers 0), and writes nothing. Once the request
        has ended and left memory, its answer has left too."""
        srv = Server(extra_args=["--test-clock=" + START]).start()
        try:
            w = World(srv)
            rid, body = self.inspected_fee(w, "T-7", expires=False)
            first = w.payment.post("/v1/requests/%s/payments" % rid, body)
            self.assertEqual((first.status, first.json["status"]), (200, "in_progress"), first)
            w.decide(rid, "inspect", "return", reason="a clearer floor plan, please")
            self.assertEqual(w.view(rid)["status"], "awaiting_info")
            r = w.payment.post("/v1/requests/%s/payments" % rid, body)
            self.assertEqual((r.status, r.json["status"]), (200, "in_progress"), r)
            size = w.log_size()
            srv.kill()
            srv.start()
            plat = srv.client(srv.admin_token())
            self.assertEqual(metric(plat, "osse_payment_answers"), 0)
            pay = srv.client(w.payment.token)
            r = pay.post("/v1/requests/%s/payments" % rid, body)
            self.assertEqual((r.status, r.json["status"]), (200, "in_progress"), r)
            self.assertEqual(r.json["fee"], first.json["fee"])
            self.assertEqual(metric(plat, "osse_payment_answers"), 1)
            self.assertEqual(log_events(plat)[-1]["seq"], size)
            # A start that replays the whole log (every request in memory,
            # none evicted) reads no answer either, and finds it on demand.
            self.assertEqual(srv.stop(), 0)
            srv.extra_args.append("--rebuild-views")
            srv.start()
            srv.extra_args.remove("--rebuild-views")
            plat = srv.client(srv.admin_token())
            self.assertEqual(metric(plat, "osse_payment_answers"), 0)
            pay = srv.client(w.payment.token)
            r = pay.post("/v1/requests/%s/payments" % rid, body)
            self.assertEqual((r.status, r.json["status"]), (200, "in_progress"), r)
            self.assertEqual(log_events(plat)[-1]["seq"], size)
            # The applicant answers, the inspection approves, the request
            # completes and leaves memory (--request-cache 0) with its answer.
            portal = srv.client(w.portal.token)
            info = portal.post("/v1/requests/%s/info" % rid, {"step": "inspect", "form": {"seats": 5}})
            self.assertEqual(info.status, 200, info)
            r = srv.client(w.ag[w.A].token).post("/v1/tasks/%s/inspect/decision" % rid,
                                                 {"outcome": "approve"})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(srv.client(w.portal.token).get("/v1/requests/" + rid)
                             .json["status"], "completed")
            self.assertEqual(metric(plat, "osse_cache_requests_in_memory"), 0)
            self.assertEqual(metric(plat, "osse_payment_answers"), 0)
            r = pay.post("/v1/requests/%s/payments" % rid, body)
            self.assertEqual((r.status, r.json["status"]), (200, "in_progress"), r)
        finally:
            srv.kill()
            srv.cleanup()


if __name__ == "__main__":
    main()
